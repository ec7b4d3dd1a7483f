//! Fan-out benchmark (issue #5): one broadcast to N WebSocket connections on
//! `medkit serve`, on loopback, timed until the last connection received it;
//! beside a baseline measured in the same run: a bare axum WebSocket server
//! (the same stack medkit serve uses) writing the same frame straight to N
//! sockets of the same client, triggered the same way (one HTTP POST).
//! Also the server's resident memory per idle connection.
//!
//!   bash infra/scripts/bench-fanout.sh        (release build, raised fd limit)
//!   cargo run --release -p medkit-dev --example fanout_bench -- \
//!       --connections 1000,10000 --rounds 5
//!
//! Every loop is bounded: connects have a deadline, each round waits at most
//! 30 s, and only loopback addresses are used.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::extract::ws::{Message, Utf8Bytes, WebSocketUpgrade};
use axum::routing::{get, post};
use futures_util::{SinkExt, StreamExt};
use medkit::auth::{self, Role};
use medkit::registry::Registry;
use tokio::sync::{Notify, broadcast};

#[path = "common/child.rs"]
mod child;
use child::{Server, medkit_binary, viewer_tokens};

const CLIENT_ID: &str = "bench";
const CHANNEL: &str = "42";
/// Connects in flight at once (below the listen backlog).
const CONNECT_CONCURRENCY: usize = 256;
const ROUND_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_DEADLINE: Duration = Duration::from_secs(120);

struct Args {
    connections: Vec<usize>,
    rounds: usize,
    modes: Vec<Mode>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Mode {
    Baseline,
    Direct,
    Api,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Mode::Baseline => "baseline: bare axum ws, direct writes",
            Mode::Direct => "medkit serve --fanout direct",
            Mode::Api => "medkit serve --fanout api (Management API over HTTP)",
        }
    }
}

fn parse_args() -> Result<Option<Args>, String> {
    let mut args = Args {
        connections: vec![1000, 10_000],
        rounds: 5,
        modes: vec![Mode::Baseline, Mode::Direct, Mode::Api],
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--connections" => {
                args.connections = value()?
                    .split(',')
                    .map(|n| n.trim().parse().map_err(|_| format!("bad count {n:?}")))
                    .collect::<Result<_, _>>()?;
            }
            "--rounds" => {
                args.rounds = value()?.parse().map_err(|_| "bad --rounds")?;
                if !(1..=50).contains(&args.rounds) {
                    return Err(
                        "--rounds must be 1..=50 (the channel's send limit is 100 per 5 min)"
                            .into(),
                    );
                }
            }
            "--serve-baseline" => return Ok(None),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(Some(args))
}

fn main() {
    let args = match parse_args() {
        Ok(Some(a)) => a,
        Ok(None) => return serve_baseline(),
        Err(e) => {
            eprintln!("fanout_bench: {e}");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    if let Err(e) = rt.block_on(run(args)) {
        eprintln!("fanout_bench: {e}");
        std::process::exit(1);
    }
}

// ---------------------------------------------------------------- baseline

/// The baseline server (a child process, like medkit serve): every socket's
/// task waits for the next frame and writes it; `POST /send` hands the body
/// to all of them at once.
fn serve_baseline() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (tx, _) = broadcast::channel::<Utf8Bytes>(16);
        let app = axum::Router::new()
            .route(
                "/ws",
                get(
                    |State(tx): State<broadcast::Sender<Utf8Bytes>>, ws: WebSocketUpgrade| async move {
                        let mut rx = tx.subscribe();
                        // The same socket buffers as medkit serve's.
                        ws.read_buffer_size(4096).write_buffer_size(0).on_upgrade(move |socket| async move {
                            let (mut sink, mut stream) = socket.split();
                            loop {
                                tokio::select! {
                                    frame = rx.recv() => match frame {
                                        Ok(f) => if sink.send(Message::Text(f)).await.is_err() { break },
                                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                                        Err(_) => break,
                                    },
                                    incoming = stream.next() => if !matches!(incoming, Some(Ok(_))) { break },
                                }
                            }
                        })
                    },
                ),
            )
            .route(
                "/send",
                post(|State(tx): State<broadcast::Sender<Utf8Bytes>>, body: String| async move {
                    let _ = tx.send(body.into());
                    "{}"
                }),
            )
            .with_state(tx);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        println!("medkit listening on http://{}", listener.local_addr().unwrap());
        axum::serve(listener, app).await.expect("serve");
    });
}

// ---------------------------------------------------------------- servers

/// Starts the server of `mode`: the baseline (this program again) or `medkit serve`.
fn start_server(mode: Mode, secret_b64: &str) -> Result<Server, String> {
    let mut cmd = match mode {
        Mode::Baseline => {
            let mut c = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
            c.arg("--serve-baseline");
            c
        }
        Mode::Direct | Mode::Api => {
            let mut c = Command::new(medkit_binary()?);
            c.args(["serve", "--memory", "--port", "0", "--extension"])
                .arg(format!("{CLIENT_ID}:{secret_b64}"))
                .args(["--fanout", if mode == Mode::Api { "api" } else { "direct" }]);
            c
        }
    };
    Server::spawn(
        cmd.env("RUST_LOG", "warn")
            .env_remove("MEDKIT_EXTENSIONS")
            .stderr(Stdio::null()),
    )
}

/// The server's resident memory, from /proc.
fn rss_kib(server: &Server) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

// ---------------------------------------------------------------- clients

/// Receipts of the current round's marker across all connections.
struct Receipts {
    marker: std::sync::Mutex<String>,
    count: AtomicUsize,
    expected: AtomicUsize,
    all_in: Notify,
}

impl Receipts {
    fn saw(&self, text: &str) {
        let hit = {
            let marker = self.marker.lock().unwrap();
            !marker.is_empty() && text.contains(marker.as_str())
        };
        if hit
            && self.count.fetch_add(1, Ordering::AcqRel) + 1
                == self.expected.load(Ordering::Acquire)
        {
            self.all_in.notify_one();
        }
    }
}

async fn open_connections(
    ws_base: &str,
    tokens: Vec<String>,
    receipts: Arc<Receipts>,
) -> Result<Vec<tokio::task::JoinHandle<()>>, String> {
    let n = tokens.len();
    let deadline = Instant::now() + CONNECT_DEADLINE;
    let urls: Vec<String> = tokens
        .into_iter()
        .map(|t| format!("{ws_base}?client_id={CLIENT_ID}&token={t}"))
        .collect();
    let mut connected = futures_util::stream::iter(urls)
        .map(|url| async move { tokio_tungstenite::connect_async(url).await })
        .buffer_unordered(CONNECT_CONCURRENCY);
    let mut readers = Vec::with_capacity(n);
    while let Some(res) = connected.next().await {
        if Instant::now() > deadline {
            return Err(format!("connecting took over {CONNECT_DEADLINE:?}"));
        }
        let (ws, _) = res.map_err(|e| format!("connect failed after {}: {e}", readers.len()))?;
        let receipts = receipts.clone();
        readers.push(tokio::spawn(async move {
            let (_sink, mut stream) = ws.split();
            while let Some(Ok(msg)) = stream.next().await {
                if let tokio_tungstenite::tungstenite::Message::Text(t) = msg {
                    receipts.saw(t.as_str());
                }
            }
        }));
    }
    Ok(readers)
}

// ---------------------------------------------------------------- run

struct Figures {
    connect: Duration,
    rss_per_conn_kib: Option<f64>,
    rounds: Vec<Duration>,
}

async fn measure(
    mode: Mode,
    n: usize,
    rounds: usize,
    registry: &Registry,
    secret_b64: &str,
) -> Result<Figures, String> {
    let server = start_server(mode, secret_b64)?;
    let ext = registry.get(CLIENT_ID).expect("bench extension");
    let http = reqwest::Client::new();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let rss_before = rss_kib(&server);
    let tokens = viewer_tokens(ext, CHANNEL, n);
    let receipts = Arc::new(Receipts {
        marker: Default::default(),
        count: AtomicUsize::new(0),
        expected: AtomicUsize::new(n),
        all_in: Notify::new(),
    });
    let ws_base = format!("{}/ws", server.base.replacen("http", "ws", 1));
    let t = Instant::now();
    let readers = open_connections(&ws_base, tokens, receipts.clone()).await?;
    let connect = t.elapsed();
    // Let the server settle before reading its memory.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_per_conn_kib = match (rss_before, rss_kib(&server)) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / n as f64),
        _ => None,
    };
    let caster = auth::mint(
        ext,
        auth::claims_for(Role::Broadcaster, CHANNEL, Some(CHANNEL), 3600),
    );
    let mut times = Vec::with_capacity(rounds);
    for round in 0..rounds {
        let marker = format!("bench-{}-{round}-{n}", mode as u8);
        *receipts.marker.lock().unwrap() = marker.clone();
        receipts.count.store(0, Ordering::Release);
        let all_in = receipts.all_in.notified();
        tokio::pin!(all_in);
        all_in.as_mut().enable();
        let t0 = Instant::now();
        let res = match mode {
            Mode::Baseline => {
                // The same frame medkit serve would write.
                let frame = serde_json::json!({
                    "topic": "broadcast",
                    "message": serde_json::json!({"event": format!("sandbox:{CLIENT_ID}:tick"), "data": {"m": marker}}).to_string(),
                });
                http.post(format!("{}/send", server.base))
                    .body(frame.to_string())
                    .send()
                    .await
            }
            _ => {
                http.post(format!("{}/v1/e/broadcast", server.base))
                    .header("Authorization", format!("{CLIENT_ID} {caster}"))
                    .body(serde_json::json!({"target": "broadcast", "event": "tick", "channel_id": CHANNEL, "data": {"m": marker}}).to_string())
                    .send()
                    .await
            }
        };
        let status = res.map_err(|e| e.to_string())?.status();
        if !status.is_success() {
            return Err(format!("{mode:?}: the send was refused ({status})"));
        }
        if tokio::time::timeout(ROUND_TIMEOUT, all_in).await.is_err() {
            return Err(format!(
                "{mode:?}: only {} of {n} received round {round} within {ROUND_TIMEOUT:?}",
                receipts.count.load(Ordering::Acquire)
            ));
        }
        times.push(t0.elapsed());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for r in readers {
        r.abort();
    }
    drop(server);
    // Let the kernel reap the closed sockets before the next server.
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(Figures {
        connect,
        rss_per_conn_kib,
        rounds: times,
    })
}

fn median(d: &[Duration]) -> Duration {
    let mut v = d.to_vec();
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

async fn run(args: Args) -> Result<(), String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (registry, secret_b64) = child::bench_extension(CLIENT_ID, 37, 11);
    println!(
        "fan-out benchmark: {} round(s) per configuration, loopback, one machine",
        args.rounds
    );
    println!(
        "| N | server | connect all | RSS / idle conn | last receipt (median) | best | per receiver | vs baseline |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for &n in &args.connections {
        let mut baseline: Option<Duration> = None;
        for &mode in &args.modes {
            let f = measure(mode, n, args.rounds, &registry, &secret_b64).await?;
            let med = median(&f.rounds);
            let best = *f.rounds.iter().min().expect("rounds");
            if mode == Mode::Baseline {
                baseline = Some(med);
            }
            let ratio = baseline
                .map(|b| format!("{:.2}x", med.as_secs_f64() / b.as_secs_f64()))
                .unwrap_or_else(|| "-".into());
            println!(
                "| {n} | {} | {} | {} | {} | {} | {:.2} µs | {ratio} |",
                mode.label(),
                ms(f.connect),
                f.rss_per_conn_kib
                    .map(|k| format!("{k:.1} KiB"))
                    .unwrap_or_else(|| "n/a".into()),
                ms(med),
                ms(best),
                med.as_secs_f64() * 1e6 / n as f64,
            );
        }
    }
    Ok(())
}
