//! The Twitch relay (issue #18) against the Helix stand-in: what a send
//! becomes on Twitch, how throttles, errors and refusals are handled, the
//! channel's budget, and the fan-out worker's relay job (the Lambda path).

use std::sync::Arc;
use std::time::Duration;

use axum::http::Method;
use medkit::auth::Role;
use medkit::clock::now_secs;
use medkit::delivery::Relay;
use medkit::delivery::twitch::{TwitchConfig, TwitchRelay};
use medkit::env::Env;
use medkit::ids::{ChannelId, ClientId, ConnectionId, ViewerId};
use medkit::limits::TWITCH_MESSAGES;
use medkit::realtime::Connection;
use medkit::realtime::envelope::Topic;
use medkit::realtime::job::{Job, JobPart, RelayTarget};
use medkit::realtime::pubsub::{self, MAX_PUBSUB_BYTES};
use medkit::store::embedded::EmbeddedStore;
use medkit::store::{ConnectionStore, LimitStore};
use medkit::testing::helix::HelixStandIn;
use medkit::testing::{
    CLIENT_ID, RecordingPoster, SECRET, app_with_poster, bearer, ok, registry, token,
};
use medkit_broadcast::worker;
use serde_json::{Value, json};

const OWNER: &str = "424242";

fn client() -> ClientId {
    ClientId::parse(CLIENT_ID).unwrap()
}

fn channel(ch: &str) -> RelayTarget {
    RelayTarget::Channel(ChannelId::parse(ch).unwrap(), Topic::Broadcast)
}

async fn relay_to(
    helix: &HelixStandIn,
    owner: &str,
) -> (TwitchRelay<EmbeddedStore>, EmbeddedStore) {
    let store = EmbeddedStore::in_memory();
    let relay = relay_of(helix, CLIENT_ID, owner, &registry(), store.clone());
    (relay, store)
}

/// A relay of extension `client` (in `registry`) owned by `owner`, posting
/// to `helix`, counting its budget in `store`.
fn relay_of(
    helix: &HelixStandIn,
    client: &str,
    owner: &str,
    registry: &medkit::registry::Registry,
    store: EmbeddedStore,
) -> TwitchRelay<EmbeddedStore> {
    let entry = format!("{client}={owner}");
    let config = TwitchConfig::parse([entry.as_str()], Some(&helix.base))
        .unwrap()
        .unwrap();
    TwitchRelay::new(&config, registry, store)
        .unwrap()
        .with_helix()
}

fn envelope(event: &str, data: Value) -> String {
    json!({"event": format!("production:{CLIENT_ID}:{event}"), "data": data}).to_string()
}

fn job(target: RelayTarget, message: String) -> Job {
    Job::new(client(), JobPart::Twitch(target), message)
}

#[tokio::test]
async fn each_target_reaches_helix_as_twitch_wants_it() {
    let helix = HelixStandIn::start(CLIENT_ID, SECRET, OWNER).await;
    let (relay, _) = relay_to(&helix, OWNER).await;
    let small = envelope("score", json!({"red": 5}));
    let whisper = RelayTarget::Channel(
        ChannelId::parse("10").unwrap(),
        Topic::Whisper(ViewerId::parse("U7").unwrap()),
    );
    for target in [channel("10"), whisper, RelayTarget::Global] {
        let r = relay.deliver(&job(target, small.clone())).await;
        assert_eq!((r.sent, r.refused, r.dropped), (1, 0, 0));
    }
    let got = helix.accepted();
    let seen: Vec<(&str, Option<&str>)> = got
        .iter()
        .map(|a| (a.target.as_str(), a.channel.as_deref()))
        .collect();
    assert_eq!(
        seen,
        [
            ("broadcast", Some("10")),
            ("whisper-U7", Some("10")),
            ("global", None)
        ]
    );
    assert!(got.iter().all(|a| a.message == small), "JSON goes as it is");
    assert_eq!(helix.answers(), [204, 204, 204]);
}

#[tokio::test]
async fn a_12_kb_message_arrives_in_fragments_within_5_kb() {
    let helix = HelixStandIn::start(CLIENT_ID, SECRET, OWNER).await;
    let (relay, _) = relay_to(&helix, OWNER).await;
    let big = envelope(
        "map",
        json!({"tiles": medkit::testing::incompressible(12 * 1024)}),
    );
    let r = relay.deliver(&job(channel("10"), big.clone())).await;
    assert!(r.sent >= 2, "{r:?}");
    let got = helix.accepted();
    assert_eq!(got.len(), r.sent);
    let messages: Vec<String> = got.into_iter().map(|a| a.message).collect();
    for (i, m) in messages.iter().enumerate() {
        assert!(m.len() <= MAX_PUBSUB_BYTES, "part {i}: {} bytes", m.len());
        assert!(m.starts_with(&format!("<{i},{}>", messages.len())));
    }
    let joined = pubsub::reassemble(&messages).unwrap();
    assert_eq!(joined, serde_json::from_str::<Value>(&big).unwrap());
    // A compressible one of the same size goes in one compressed message.
    let plain = envelope("map", json!({"tiles": "ab".repeat(6 * 1024)}));
    assert_eq!(relay.deliver(&job(channel("10"), plain)).await.sent, 1);
}

#[tokio::test]
async fn throttles_and_server_errors_are_retried_with_backoff() {
    let helix = HelixStandIn::start(CLIENT_ID, SECRET, OWNER).await;
    let (relay, _) = relay_to(&helix, OWNER).await;
    helix.fail_next(&[429, 503, 500]);
    let started = std::time::Instant::now();
    let r = relay
        .deliver(&job(channel("10"), envelope("e", json!(1))))
        .await;
    assert_eq!((r.sent, r.refused, r.dropped), (1, 0, 0));
    assert_eq!(helix.answers(), [429, 503, 500, 204]);
    // 250 + 500 + 1000 ms of backoff at least (a 429's reset may add more).
    assert!(started.elapsed() >= Duration::from_millis(1750));
    assert_eq!(relay.counts().snapshot(), (1, 0, 0, 3));
    // Still failing after every try: given up, counted, not retried forever.
    helix.fail_next(&[503; 5]);
    let r = relay
        .deliver(&job(channel("10"), envelope("e", json!(2))))
        .await;
    assert_eq!((r.sent, r.dropped), (0, 1));
    assert_eq!(helix.answers().len(), 4 + 5);
}

#[tokio::test]
async fn a_refusal_is_final_and_counted() {
    let helix = HelixStandIn::start(CLIENT_ID, SECRET, OWNER).await;
    // Configured with the wrong owner: Twitch answers 401 and that is final.
    let (relay, _) = relay_to(&helix, "1").await;
    let big = envelope(
        "map",
        json!({"tiles": medkit::testing::incompressible(12 * 1024)}),
    );
    let r = relay.deliver(&job(channel("10"), big)).await;
    assert_eq!(r.sent, 0);
    assert!(r.refused >= 2, "every fragment of the send: {r:?}");
    assert_eq!(helix.answers(), [401], "one request, no retry");
    assert_eq!(helix.refusals()[0].1, "user_id is not the extension owner");
    assert_eq!(relay.counts().snapshot().1, r.refused as u64);
}

#[tokio::test]
async fn the_channels_100_messages_a_minute_are_never_exceeded() {
    let helix = HelixStandIn::start(CLIENT_ID, SECRET, OWNER).await;
    let (relay, store) = relay_to(&helix, OWNER).await;
    // Far enough from the window's end that it does not turn over mid-test.
    while TWITCH_MESSAGES.seconds_left(now_secs()) < 15 {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for n in 0..100 {
        let r = relay
            .deliver(&job(channel("10"), envelope("e", json!(n))))
            .await;
        assert_eq!(r.sent, 1, "message {n}");
    }
    // The 101st waits for the next window (at least 13 s away); with less
    // time than that left (a Lambda's deadline: 10 s), it is given up and
    // counted, never sent into a 429.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let r = medkit::budget::until(
        deadline,
        relay.deliver(&job(channel("10"), envelope("e", json!(101)))),
    )
    .await;
    assert_eq!((r.sent, r.dropped), (0, 1));
    assert_eq!(helix.answers().len(), 100);
    assert!(!helix.answers().contains(&429));
    // Another channel has a budget of its own.
    let r = relay
        .deliver(&job(channel("11"), envelope("e", json!(0))))
        .await;
    assert_eq!(r.sent, 1);
    // The budget is the store's (shared by every Lambda instance): spent.
    let spent = store
        .spend(&client(), "t|10", TWITCH_MESSAGES, now_secs())
        .await
        .unwrap();
    assert!(!spent);
}

#[tokio::test]
async fn a_rest_broadcast_reaches_its_sockets_and_twitch_without_waiting() {
    let helix = HelixStandIn::start(CLIENT_ID, SECRET, OWNER).await;
    let store = EmbeddedStore::in_memory();
    let viewer = Connection {
        id: ConnectionId::parse("A").unwrap(),
        client_id: client(),
        channel_id: Some(ChannelId::parse("10").unwrap()),
        opaque_user_id: Some(ViewerId::parse("U1").unwrap()),
        user_id: None,
        role: Role::Viewer,
        pin_issued: false,
        connected_at: now_secs(),
        expires_at: now_secs() + 3600,
    };
    store.add_connection(&viewer).await.unwrap();
    let poster = Arc::new(RecordingPoster::default());
    let (mut app, _) = app_with_poster(store.clone(), Env::Production, poster.clone());
    let (relay, _) = relay_to(&helix, OWNER).await;
    Arc::get_mut(&mut app).unwrap().relay = Some(Arc::new(relay));
    let router = medkit_broadcast::router(app);
    let caster = bearer(&token(Role::Broadcaster, "10", None));
    // Twitch is failing for a while: the request does not wait on it, and
    // the socket hears the broadcast at once.
    helix.fail_next(&[503, 503]);
    let broadcast = |body: Value| {
        let (router, caster) = (&router, &caster);
        async move {
            let body = body.to_string();
            ok(router, Method::POST, "/v1/e/broadcast", caster, Some(&body)).await
        }
    };
    broadcast(json!({"target": "broadcast", "event": "score", "data": {"n": 1}})).await;
    // Answered before Twitch accepted anything (its retries wait 750 ms).
    assert!(helix.accepted().is_empty(), "the request waited on Twitch");
    let frames = poster.take();
    assert_eq!(frames.len(), 1);
    let got = helix.wait_for(1, 10).await;
    assert_eq!(got.len(), 1, "relayed after the retries");
    assert_eq!(
        serde_json::from_str::<Value>(&got[0].message).unwrap(),
        json!({"event": format!("production:{CLIENT_ID}:score"), "data": {"n": 1}})
    );
    assert_eq!(helix.answers(), [503, 503, 204]);
    // A whisper goes to the viewer's topic, on the channel.
    broadcast(json!({"target": "whisper-U1", "event": "psst", "data": 1})).await;
    let got = helix.wait_for(2, 10).await;
    assert_eq!(got[1].target, "whisper-U1");
    assert_eq!(got[1].channel.as_deref(), Some("10"));
}

/// The Lambda path's worker: a relay job from the connections table's
/// stream (the sample event) is posted to Helix by `medkit-fanout`'s
/// handler.
#[tokio::test]
async fn the_fan_out_worker_relays_the_sample_job() {
    let secret = medkit::registry::decode_secret(medkit::testing::SAMPLE_SECRET_B64).unwrap();
    let helix = HelixStandIn::start(medkit::testing::SAMPLE_CLIENT_ID, &secret, OWNER).await;
    let store = EmbeddedStore::in_memory();
    let mut app = medkit::testing::sample_app(store.clone());
    let relay = relay_of(
        &helix,
        medkit::testing::SAMPLE_CLIENT_ID,
        OWNER,
        &app.registry,
        store,
    );
    Arc::get_mut(&mut app).unwrap().relay = Some(Arc::new(relay));
    let (name, text) = medkit::testing::sample_events("fanout")
        .into_iter()
        .find(|(n, _)| n.contains("twitch"))
        .expect("a sample relay job in events/fanout");
    let event = serde_json::from_str(&text).expect(&name);
    let r = worker::handle(&app, event).await;
    assert!(r.batch_item_failures.is_empty());
    let got = helix.accepted();
    assert_eq!(got.len(), 1, "{name}");
    assert_eq!(got[0].target, "broadcast");
    assert_eq!(got[0].channel.as_deref(), Some("1001"));
    assert_eq!(
        serde_json::from_str::<Value>(&got[0].message).unwrap()["data"],
        json!({"red": 5})
    );
}

/// Functions other than the fan-out worker only queue relay jobs: their
/// relay knows which extensions are relayed and nothing of Helix (so their
/// bootstraps link no HTTP client); a job handed to it is refused and
/// counted, never posted.
#[tokio::test]
async fn a_queueing_relay_posts_nothing() {
    use medkit::delivery::twitch::QueueingRelay;
    let helix = HelixStandIn::start(CLIENT_ID, SECRET, OWNER).await;
    let entry = format!("{CLIENT_ID}={OWNER}");
    let config = TwitchConfig::parse([entry.as_str()], Some(&helix.base))
        .unwrap()
        .unwrap();
    let relay = QueueingRelay::new(&config);
    assert!(relay.relays(&client()));
    assert!(!relay.relays(&ClientId::parse("other").unwrap()));
    let r = relay
        .deliver(&job(channel("10"), envelope("e", json!(1))))
        .await;
    assert_eq!((r.sent, r.refused), (0, 1));
    assert!(helix.answers().is_empty());
}
