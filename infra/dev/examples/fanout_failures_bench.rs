//! Failure-injection benchmark (issue #19): N WebSocket viewers (10,000 by
//! default) on `medkit serve --fanout stream` (the AWS path: jobs on
//! DynamoDB Local's stream, the fan-out worker under the template's event
//! source mapping, posts through the Management API), with a share of the
//! Management API's posts failing (5% by default). Each round is one
//! extension-wide send (16 shard jobs). Printed per configuration: frames on
//! the wire, frames each viewer shows after dropping seen ids (as the
//! messenger does), viewers missing the frame or shown it twice, and the time
//! until the last viewer had it; beside the same run with no failures (the
//! baseline, same machine, same run).
//!
//!   bash infra/scripts/bench-fanout-failures.sh          (starts DynamoDB Local)
//!   cargo run --release -p medkit-dev --example fanout_failures_bench -- \
//!       --dynamodb-endpoint http://127.0.0.1:8000 --viewers 10000 --rounds 3 --failures 50
//!
//! Bounded: connects have a deadline, each round waits at most 90 s, loopback only.

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use medkit::auth::{self, Role};
use medkit::registry::Registry;

#[path = "common/child.rs"]
mod child;
use child::{Server, medkit_binary};

const CLIENT_ID: &str = "bench";
const CHANNEL: &str = "42";
const CONNECT_CONCURRENCY: usize = 256;
const CONNECT_DEADLINE: Duration = Duration::from_secs(180);
const ROUND_TIMEOUT: Duration = Duration::from_secs(90);
/// After the last viewer has a round's frame, late copies are awaited this long.
const SETTLE: Duration = Duration::from_secs(3);

struct Args {
    endpoint: String,
    viewers: usize,
    rounds: usize,
    /// Failing posts per thousand.
    failures: u32,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        endpoint: String::new(),
        viewers: 10_000,
        rounds: 3,
        failures: 50,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--dynamodb-endpoint" => a.endpoint = value()?,
            "--viewers" => a.viewers = value()?.parse().map_err(|_| "bad --viewers")?,
            "--rounds" => a.rounds = value()?.parse().map_err(|_| "bad --rounds")?,
            "--failures" => a.failures = value()?.parse().map_err(|_| "bad --failures")?,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let loopback = ["http://127.", "http://localhost"];
    if !loopback.iter().any(|p| a.endpoint.starts_with(p)) {
        return Err("--dynamodb-endpoint must be a loopback URL (DynamoDB Local)".into());
    }
    if !(1..=20).contains(&a.rounds) || !(1..=20_000).contains(&a.viewers) || a.failures > 500 {
        return Err("--rounds 1..=20, --viewers 1..=20000, --failures 0..=500".into());
    }
    Ok(a)
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("fanout_failures_bench: {e}");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if let Err(e) = rt.block_on(run(args)) {
        eprintln!("fanout_failures_bench: {e}");
        std::process::exit(1);
    }
}

fn start_server(args: &Args, failures: u32, secret_b64: &str) -> Result<Server, String> {
    let prefix = format!("bench{}-", medkit::random::token_id(6));
    Server::spawn(
        Command::new(medkit_binary()?)
            .args(["serve", "--port", "0", "--fanout", "stream", "--extension"])
            .arg(format!("{CLIENT_ID}:{secret_b64}"))
            .args([
                "--dynamodb-endpoint",
                &args.endpoint,
                "--table-prefix",
                &prefix,
            ])
            .args(["--inject-post-failures", &failures.to_string()])
            .env("RUST_LOG", "warn")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("MEDKIT_EXTENSIONS")
            .stderr(server_log(failures)),
    )
}

/// The server's log: `BENCH_SERVER_LOG=<dir>` keeps it there, else dropped.
fn server_log(failures: u32) -> Stdio {
    match std::env::var("BENCH_SERVER_LOG") {
        Ok(dir) => std::fs::File::create(format!("{dir}/medkit-{failures}.log"))
            .map(Stdio::from)
            .unwrap_or(Stdio::null()),
        Err(_) => Stdio::null(),
    }
}

/// What one viewer saw: every frame id, and each round's marker once shown.
#[derive(Default)]
struct Viewer {
    ids: Mutex<HashSet<String>>,
    shown_markers: Mutex<Vec<String>>,
}

struct Tally {
    wire: AtomicUsize,
    viewers: Vec<Arc<Viewer>>,
}

impl Tally {
    fn saw(&self, v: &Viewer, text: &str) {
        self.wire.fetch_add(1, Ordering::Relaxed);
        let Ok(frame) = serde_json::from_str::<serde_json::Value>(text) else {
            return;
        };
        let Some(id) = frame["id"].as_str() else {
            return;
        };
        if !v.ids.lock().unwrap().insert(id.to_string()) {
            return; // a duplicate: the messenger drops it
        }
        let message = frame["message"].as_str().unwrap_or_default();
        if let Some(env) = medkit::realtime::envelope::decode_message(message)
            && let Some(m) = env["data"]["m"].as_str()
        {
            v.shown_markers.lock().unwrap().push(m.to_string());
        }
    }
}

struct Round {
    wire: usize,
    missing: usize,
    shown_twice: usize,
    last_receipt: Duration,
}

async fn measure(
    args: &Args,
    failures: u32,
    registry: &Registry,
    secret_b64: &str,
) -> Result<Vec<Round>, String> {
    let server = start_server(args, failures, secret_b64)?;
    let ext = registry.get(CLIENT_ID).expect("bench extension");
    let tally = Arc::new(Tally {
        wire: AtomicUsize::new(0),
        viewers: (0..args.viewers).map(|_| Arc::default()).collect(),
    });
    let ws_base = format!("{}/ws", server.base.replacen("http", "ws", 1));
    let urls: Vec<(usize, String)> = (0..args.viewers)
        .map(|i| {
            let user = format!("{}", 300_000 + i);
            let t = auth::mint(
                ext,
                auth::claims_for(Role::Viewer, CHANNEL, Some(&user), 3600),
            );
            (i, format!("{ws_base}?client_id={CLIENT_ID}&token={t}"))
        })
        .collect();
    let deadline = Instant::now() + CONNECT_DEADLINE;
    let mut connected = futures_util::stream::iter(urls)
        .map(|(i, url)| async move { (i, tokio_tungstenite::connect_async(url).await) })
        .buffer_unordered(CONNECT_CONCURRENCY);
    let mut readers = Vec::new();
    while let Some((i, res)) = connected.next().await {
        if Instant::now() > deadline {
            return Err(format!("connecting took over {CONNECT_DEADLINE:?}"));
        }
        let (ws, _) = res.map_err(|e| format!("connect failed after {}: {e}", readers.len()))?;
        let tally = tally.clone();
        readers.push(tokio::spawn(async move {
            let v = tally.viewers[i].clone();
            let (_sink, mut stream) = ws.split();
            while let Some(Ok(msg)) = stream.next().await {
                if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
                    tally.saw(&v, t.as_str());
                }
            }
        }));
    }
    let admin = auth::mint(ext, auth::claims_for(Role::Admin, CHANNEL, None, 3600));
    let http = reqwest::Client::new();
    let mut rounds = Vec::new();
    for round in 0..args.rounds {
        let marker = format!("r{round}-{failures}");
        let wire_before = tally.wire.load(Ordering::Relaxed);
        let t0 = Instant::now();
        let res = http
            .post(format!("{}/v1/e/extension_broadcast", server.base))
            .header("Authorization", format!("{CLIENT_ID} {admin}"))
            .body(
                serde_json::json!({"target": "broadcast", "event": "tick", "data": {"m": marker}})
                    .to_string(),
            )
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !res.status().is_success() {
            return Err(format!("the send was refused ({})", res.status()));
        }
        let has = |v: &Viewer| v.shown_markers.lock().unwrap().contains(&marker);
        let mut last_receipt = None;
        while t0.elapsed() < ROUND_TIMEOUT {
            if tally.viewers.iter().all(|v| has(v)) {
                last_receipt = Some(t0.elapsed());
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(SETTLE).await;
        let count = |v: &Viewer| {
            v.shown_markers
                .lock()
                .unwrap()
                .iter()
                .filter(|m| **m == marker)
                .count()
        };
        rounds.push(Round {
            wire: tally.wire.load(Ordering::Relaxed) - wire_before,
            missing: tally.viewers.iter().filter(|v| count(v) == 0).count(),
            shown_twice: tally.viewers.iter().filter(|v| count(v) > 1).count(),
            last_receipt: last_receipt.unwrap_or(ROUND_TIMEOUT),
        });
    }
    for r in readers {
        r.abort();
    }
    Ok(rounds)
}

async fn run(args: Args) -> Result<(), String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (registry, secret_b64) = child::bench_extension(CLIENT_ID, 29, 5);
    println!(
        "fan-out with failures: {} viewers, {} extension-wide send(s), --fanout stream on DynamoDB Local",
        args.viewers, args.rounds
    );
    println!(
        "| posts failing | round | frames on the wire | viewers shown it once | missing | shown twice | last receipt | vs no failures |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let baseline = measure(&args, 0, &registry, &secret_b64).await?;
    let injected = measure(&args, args.failures, &registry, &secret_b64).await?;
    for (label, rounds, failures) in [("0%", &baseline, 0), ("", &injected, args.failures)] {
        let label = if label.is_empty() {
            format!("{:.1}%", failures as f64 / 10.0)
        } else {
            label.to_string()
        };
        for (i, r) in rounds.iter().enumerate() {
            let ratio = r.last_receipt.as_secs_f64() / baseline[i].last_receipt.as_secs_f64();
            println!(
                "| {label} | {i} | {} | {} | {} | {} | {:.0} ms | {ratio:.2}x |",
                r.wire,
                args.viewers - r.missing - r.shown_twice,
                r.missing,
                r.shown_twice,
                r.last_receipt.as_secs_f64() * 1e3,
            );
        }
    }
    Ok(())
}
