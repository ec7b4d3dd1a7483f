//! The Twitch relay through the real binary (issue #18): `medkit serve
//! --twitch-relay <client>=<owner> --helix-url <stand-in>` relays
//! broadcasts, whispers, extension-wide sends and events to the Helix
//! stand-in, off the request path, while WebSocket delivery goes on as
//! before; on the local Lambda topology (`--fanout stream`, DynamoDB Local)
//! the fan-out worker relays the jobs from the table's stream.

use std::time::Duration;

use base64::Engine;
use medkit::realtime::envelope::decode_message;
use medkit::testing::helix::{Accepted, HelixStandIn};
use serde_json::{Value, json};

use crate::common::{Server, dynamodb};
use crate::realtime::{Ctx, next_frame};

const CLIENT: &str = "relaytest";
const SECRET: &[u8] = b"relay test secret, loopback only";
const OWNER: &str = "777";

fn start(helix: &HelixStandIn, extra: &[&str]) -> Ctx {
    let extension = format!(
        "{CLIENT}:{}",
        base64::engine::general_purpose::STANDARD.encode(SECRET)
    );
    let relay = format!("{CLIENT}={OWNER}");
    let mut args = vec![
        "--memory",
        "--extension",
        &extension,
        "--twitch-relay",
        &relay,
        "--helix-url",
        &helix.base,
    ];
    args.extend_from_slice(extra);
    let server = Server::start(&args);
    assert!(
        server.banner.iter().any(|l| l.contains("twitch relay:")),
        "{:?}",
        server.banner
    );
    Ctx {
        server,
        client_id: CLIENT.into(),
    }
}

fn envelope(a: &Accepted) -> Value {
    serde_json::from_str(&a.message).unwrap()
}

/// What the relay did for one broadcaster's sends and writes, wherever it
/// runs: each reaches Helix once, addressed as Twitch wants it.
async fn sends_and_events_reach_helix(ctx: &Ctx, helix: &HelixStandIn) {
    let caster = ctx.token("broadcaster", "1001", Some("1001")).await;
    let mut viewer = ctx.viewer_socket("1001", "2002").await;
    // Twitch fails twice first: retried; the socket hears it regardless.
    helix.fail_next(&[503, 429]);
    let (s, v) = ctx
        .post(
            "broadcast",
            &caster,
            json!({"target": "broadcast", "event": "score", "data": {"red": 5}}),
        )
        .await;
    assert_eq!(s, 200, "{v}");
    let frame = next_frame(&mut viewer, Duration::from_secs(5))
        .await
        .expect("the socket hears the broadcast");
    let heard = decode_message(frame["message"].as_str().unwrap()).unwrap();
    assert_eq!(heard["data"], json!({"red": 5}));
    let got = helix.wait_for(1, 20).await;
    assert_eq!(got.len(), 1, "{:?}", helix.refusals());
    assert_eq!(envelope(&got[0]), heard, "the same envelope on both paths");
    assert_eq!(
        (got[0].target.as_str(), got[0].channel.as_deref()),
        ("broadcast", Some("1001"))
    );
    assert_eq!(&helix.answers()[..2], [503, 429]);
    // A whisper to the viewer, and a state write's event.
    let (s, _) = ctx
        .post(
            "broadcast",
            &caster,
            json!({"target": "whisper-U2002", "event": "psst", "data": 1}),
        )
        .await;
    assert_eq!(s, 200);
    let got = helix.wait_for(2, 20).await;
    assert_eq!(got[1].target, "whisper-U2002");
    let (s, _) = ctx
        .post("channel_state", &caster, json!({"round": 3}))
        .await;
    assert_eq!(s, 200);
    let got = helix.wait_for(3, 20).await;
    assert_eq!(got.len(), 3, "{:?}", helix.refusals());
    let event = envelope(&got[2]);
    assert_eq!(
        event["event"],
        format!("sandbox:{CLIENT}:channel_state_update")
    );
    assert_eq!(event["data"]["round"], 3);
    assert!(helix.refusals().iter().all(|(s, _)| *s == 503 || *s == 429));
}

#[tokio::test]
async fn the_dev_server_relays_sends_and_events_to_helix() {
    let helix = HelixStandIn::start(CLIENT, SECRET, OWNER).await;
    let ctx = start(&helix, &[]);
    sends_and_events_reach_helix(&ctx, &helix).await;
    // Extension-wide: Twitch's `global`.
    let backend = ctx.token("backend", "1001", None).await;
    let (s, _) = ctx
        .post(
            "extension_broadcast",
            &backend,
            json!({"target": "broadcast", "event": "season", "data": {"n": 4}}),
        )
        .await;
    assert_eq!(s, 200);
    let got = helix.wait_for(4, 20).await;
    assert_eq!(
        (got[3].target.as_str(), got[3].channel.as_deref()),
        ("global", None)
    );
}

#[tokio::test]
async fn on_the_lambda_topology_the_fan_out_worker_relays() {
    let Some(endpoint) = dynamodb() else { return };
    let helix = HelixStandIn::start(CLIENT, SECRET, OWNER).await;
    let prefix = format!("r{}-", medkit::random::token_id(8));
    let ctx = start(
        &helix,
        &[
            "--dynamodb-endpoint",
            &endpoint,
            "--table-prefix",
            &prefix,
            "--fanout",
            "stream",
        ],
    );
    sends_and_events_reach_helix(&ctx, &helix).await;
}

#[test]
fn a_bad_relay_configuration_stops_the_server_with_a_reason() {
    for (relay, url, says) in [
        (
            "relaytest",
            "http://127.0.0.1:9/helix",
            "<client id>=<owner user id>",
        ),
        ("other=1", "http://127.0.0.1:9/helix", "not configured"),
        ("relaytest=1", "http://example.com/helix", "must be https"),
    ] {
        let extension = format!(
            "{CLIENT}:{}",
            base64::engine::general_purpose::STANDARD.encode(SECRET)
        );
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_medkit"))
            .args([
                "serve",
                "--memory",
                "--port",
                "0",
                "--extension",
                &extension,
            ])
            .args(["--twitch-relay", relay, "--helix-url", url])
            .env_remove("MEDKIT_TWITCH_RELAY")
            .output()
            .unwrap();
        assert!(!out.status.success(), "{relay}");
        let text = String::from_utf8_lossy(&out.stderr);
        assert!(text.contains(says), "{relay}: {text}");
        assert!(!text.contains("panicked"), "{text}");
    }
}
