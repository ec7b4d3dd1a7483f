//! Twitch relay figures (issue #18).
//!
//! 1. Messages per send and their sizes: what `realtime::pubsub::messages`
//!    makes of envelopes from 200 B to 40 KB (plain JSON, compressible,
//!    incompressible).
//! 2. Latency on `medkit serve` (release build, loopback): N channel
//!    broadcasts, one after another, to a server with the relay off (the
//!    baseline, same run) and one with it on, posting to the project's Helix
//!    stand-in. Per broadcast: the REST request's time, the time until a
//!    WebSocket viewer has the frame, and (relay on) until Helix accepted it.
//!
//!   bash infra/scripts/bench-relay.sh [BROADCASTS]      (default 90)
//!
//! Bounded: at most 95 broadcasts per server (the channel's send budget is
//! 100 per 5 minutes), each waited for at most 10 s; loopback only.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use medkit::auth::{self, Role};
use medkit::realtime::pubsub;
use medkit::testing::helix::HelixStandIn;
use serde_json::json;

#[path = "common/child.rs"]
mod child;
use child::{Server, arg, bench_extension, medkit_binary};

const CLIENT_ID: &str = "relaybench";
const CHANNEL: &str = "42";
const OWNER: &str = "4242";
const WAIT: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> Result<(), String> {
    let n: usize = arg("--broadcasts", 90).min(95);
    // reqwest's TLS stack needs a provider even for plain http.
    let _ = rustls::crypto::ring::default_provider().install_default();
    forms();
    let (registry, secret_b64) = bench_extension(CLIENT_ID, 7, 3);
    let secret = medkit::registry::decode_secret(&secret_b64).expect("base64");
    let ext = registry.get(CLIENT_ID).expect("the bench extension");
    let helix = HelixStandIn::start(CLIENT_ID, &secret, OWNER).await;
    let off = run(ext, &secret_b64, None, n).await?;
    let on = run(ext, &secret_b64, Some(&helix), n).await?;
    // Twitch down: every answer a 503, retried with backoff in the
    // background. The requests and the sockets must not notice.
    let down = HelixStandIn::start(CLIENT_ID, &secret, OWNER).await;
    down.fail_next(&vec![503; 10 * n]);
    let failing = run(ext, &secret_b64, Some(&down), n).await?;
    println!("\nlatency over {n} channel broadcasts, one at a time (ms):");
    println!("  {:<44} {:>8} {:>8}", "", "p50", "p99");
    let row = |label: &str, v: &[f64]| {
        println!("  {label:<44} {:>8.2} {:>8.2}", pct(v, 0.50), pct(v, 0.99))
    };
    row("relay off: REST request (baseline)", &off.rest);
    row("relay off: send -> WebSocket frame", &off.ws);
    row("relay on:  REST request", &on.rest);
    row("relay on:  send -> WebSocket frame", &on.ws);
    row("relay on:  send -> Helix accepted", &on.helix);
    let added: Vec<f64> = on.helix.iter().zip(&on.ws).map(|(h, w)| h - w).collect();
    row("relay on:  Helix after the WebSocket frame", &added);
    row("Twitch down (all 503): REST request", &failing.rest);
    row(
        "Twitch down (all 503): send -> WebSocket frame",
        &failing.ws,
    );
    println!(
        "ratio REST request on/off: p50 {:.2}x, p99 {:.2}x",
        pct(&on.rest, 0.5) / pct(&off.rest, 0.5),
        pct(&on.rest, 0.99) / pct(&off.rest, 0.99)
    );
    println!(
        "ratio REST request Twitch down/relay off: p50 {:.2}x, p99 {:.2}x",
        pct(&failing.rest, 0.5) / pct(&off.rest, 0.5),
        pct(&failing.rest, 0.99) / pct(&off.rest, 0.99)
    );
    println!(
        "messages Helix accepted: {} for {n} broadcasts; answers other than 204: {}",
        helix.accepted().len(),
        helix.answers().iter().filter(|s| **s != 204).count()
    );
    Ok(())
}

/// Part 1: message counts and sizes per envelope.
fn forms() {
    println!("messages per send (Twitch's limit: 5,120 bytes each):");
    let envelope = |data: serde_json::Value| {
        json!({"event": format!("production:{CLIENT_ID}:e"), "data": data}).to_string()
    };
    let cases = [
        ("200 B JSON", envelope(json!({"t": "a".repeat(150)}))),
        ("4 KB JSON", envelope(json!({"t": "a b c ".repeat(660)}))),
        (
            "12 KB compressible",
            envelope(json!({"t": "score red 5 ".repeat(1024)})),
        ),
        (
            "12 KB incompressible",
            envelope(json!({"t": medkit::testing::incompressible(12 * 1024)})),
        ),
        (
            "40 KB incompressible",
            envelope(json!({"t": medkit::testing::incompressible(40 * 1024)})),
        ),
        (
            "200 KB incompressible",
            envelope(json!({"t": medkit::testing::incompressible(200 * 1024)})),
        ),
    ];
    for (label, e) in cases {
        match pubsub::messages(&e) {
            Some(m) => {
                let sizes: Vec<usize> = m.iter().map(String::len).collect();
                let form = match m[0].as_bytes()[0] {
                    b'{' => "JSON",
                    b'<' => "fragments of base64(zlib)",
                    _ => "base64(zlib)",
                };
                println!(
                    "  {label:<22} {:>6} B -> {} message(s), {form}, sizes {:?}",
                    e.len(),
                    m.len(),
                    sizes
                );
            }
            None => println!(
                "  {label:<22} {:>6} B -> not relayed (over {} messages)",
                e.len(),
                pubsub::MAX_FRAGMENTS
            ),
        }
    }
}

struct Times {
    rest: Vec<f64>,
    ws: Vec<f64>,
    helix: Vec<f64>,
}

async fn run(
    ext: &medkit::registry::Extension,
    secret_b64: &str,
    helix: Option<&HelixStandIn>,
    n: usize,
) -> Result<Times, String> {
    // A Helix that fails everything accepts nothing to wait for.
    let accepting = !helix.is_some_and(HelixStandIn::failing);
    let mut cmd = Command::new(medkit_binary()?);
    cmd.args(["serve", "--memory", "--port", "0", "--env", "production"])
        .arg("--extension")
        .arg(format!("{CLIENT_ID}:{secret_b64}"))
        .env_remove("MEDKIT_TWITCH_RELAY")
        .env("RUST_LOG", "error")
        .stderr(Stdio::null());
    if let Some(h) = helix {
        cmd.args(["--twitch-relay", &format!("{CLIENT_ID}={OWNER}")])
            .args(["--helix-url", &h.base]);
    }
    let server = Server::spawn(&mut cmd)?;
    let viewer = auth::mint(
        ext,
        auth::claims_for(Role::Viewer, CHANNEL, Some("7"), 3600),
    );
    let caster = auth::mint(
        ext,
        auth::claims_for(Role::Broadcaster, CHANNEL, Some(CHANNEL), 3600),
    );
    let url = format!(
        "{}/ws?client_id={CLIENT_ID}&token={viewer}",
        server.base.replacen("http://", "ws://", 1)
    );
    let (mut ws, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
        .await
        .map_err(|_| "connect timed out")?
        .map_err(|e| format!("connect: {e}"))?;
    let http = reqwest::Client::new();
    let before = helix.map_or(0, |h| h.accepted().len());
    let mut times = Times {
        rest: Vec::new(),
        ws: Vec::new(),
        helix: Vec::new(),
    };
    for i in 0..n {
        let body = json!({"target": "broadcast", "event": "score", "data": {"i": i}});
        let t0 = Instant::now();
        let res = http
            .post(format!("{}/v1/e/broadcast", server.base))
            .header("authorization", format!("{CLIENT_ID} {caster}"))
            .json(&body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let rest = t0.elapsed();
        if !res.status().is_success() {
            return Err(format!("broadcast {i}: {}", res.status()));
        }
        tokio::time::timeout(WAIT, ws.next())
            .await
            .map_err(|_| format!("broadcast {i}: no frame"))?;
        let frame = t0.elapsed();
        times.rest.push(ms(rest));
        times.ws.push(ms(frame));
        if let Some(h) = helix.filter(|_| accepting) {
            let got = h.wait_for(before + i + 1, WAIT.as_secs()).await;
            let a = got
                .get(before + i)
                .ok_or(format!("broadcast {i}: not relayed"))?;
            times.helix.push(ms(a.at.saturating_duration_since(t0)));
        }
    }
    Ok(times)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn pct(v: &[f64], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    s[((s.len() - 1) as f64 * p).round() as usize]
}
