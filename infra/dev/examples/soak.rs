//! Soak (issue #15, item 9): minutes of steady mixed load on `medkit serve`
//! (embedded store, a data file), on loopback. State reads and writes,
//! votes, redeems, accumulate entries and broadcasts to `--sockets`
//! connected sockets, each kind at its own fixed rate. Every item's expiry is
//! capped (`--expiry-cap-secs`) so the sweeper's bound on the file shows in
//! minutes. Each minute it prints, per request kind, the count, p99 and the
//! 4xx/5xx answers, the server's resident memory and the data file's size;
//! at the end, the growth of both after warm-up against the first
//! post-warm-up minute (the baseline of the same run).
//!
//!   bash infra/scripts/soak.sh [MINUTES]          (release, raised fd limit)
//!
//! Every loop is bounded by the run's deadline, requests by a 10 s timeout,
//! and only loopback addresses are used.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use medkit::auth::{self, Role};
use serde_json::{Value, json};
use tokio::sync::{Mutex, Semaphore};

#[path = "common/child.rs"]
mod child;
use child::{Server, arg, medkit_binary};

const CLIENT_ID: &str = "soak";
const CHANNELS: usize = 20;
const VIEWERS: usize = 2000;
/// Requests in flight at once, across kinds.
const IN_FLIGHT: usize = 128;

/// One kind of request and its rate.
#[derive(Clone, Copy)]
struct Kind {
    name: &'static str,
    per_sec: u64,
}

const KINDS: [Kind; 7] = [
    Kind {
        name: "state_read",
        per_sec: 100,
    },
    Kind {
        name: "state_write",
        per_sec: 50,
    },
    Kind {
        name: "channel_state",
        per_sec: 2,
    },
    Kind {
        name: "vote",
        per_sec: 60,
    },
    Kind {
        name: "accumulate",
        per_sec: 40,
    },
    Kind {
        name: "redeem",
        per_sec: 10,
    },
    // 20 channels × 100 sends per 5 minutes each.
    Kind {
        name: "broadcast",
        per_sec: 6,
    },
];

/// What one minute saw of one kind: latencies (µs) and refusals.
#[derive(Default)]
struct Window {
    micros: Vec<u32>,
    client_errors: u64,
    server_errors: u64,
    failed: u64,
}

struct Tokens {
    viewers: Vec<String>,
    casters: Vec<String>,
}

fn channel_of(i: usize) -> String {
    format!("{}", 5000 + i % CHANNELS)
}

fn user_of(i: usize) -> String {
    format!("{}", 100_000 + i)
}

/// The request the `n`th tick of `kind` sends: method, path and query, token, body.
fn request(kind: &str, n: usize, t: &Tokens) -> (reqwest::Method, String, String, Option<Value>) {
    use reqwest::Method;
    let v = n % VIEWERS;
    let viewer = t.viewers[v].clone();
    match kind {
        "state_read" => (Method::GET, "viewer_state".into(), viewer, None),
        "state_write" => (
            Method::POST,
            "viewer_state".into(),
            viewer,
            Some(json!({"n": n, "seen": [n % 7, n % 11], "note": "soak"})),
        ),
        "channel_state" => (
            Method::POST,
            "channel_state".into(),
            t.casters[n % CHANNELS].clone(),
            Some(json!({"round": n, "scores": {"a": n % 13, "b": n % 17}})),
        ),
        "vote" => (
            Method::POST,
            format!("vote?id=poll{}", n % 10),
            viewer,
            Some(json!({"value": (n % 5) as i64})),
        ),
        "accumulate" => (
            Method::POST,
            format!("accumulate?id=clicks{}", n % 4),
            viewer,
            Some(json!({"x": n % 1920, "y": n % 1080})),
        ),
        "redeem" => (
            Method::POST,
            "codes/redeem".into(),
            viewer,
            Some(json!({"all_prizes": 0})),
        ),
        _ => {
            let c = n % CHANNELS;
            (
                Method::POST,
                "broadcast".into(),
                t.casters[c].clone(),
                Some(
                    json!({"target": "broadcast", "event": "tick", "channel_id": channel_of(c),
                            "data": {"n": n}}),
                ),
            )
        }
    }
}

fn p99(micros: &mut [u32]) -> f64 {
    if micros.is_empty() {
        return 0.0;
    }
    micros.sort_unstable();
    let i = ((micros.len() as f64) * 0.99).ceil() as usize - 1;
    micros[i.min(micros.len() - 1)] as f64 / 1000.0
}

fn rss_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn mb(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

async fn call(
    http: &reqwest::Client,
    base: &str,
    (method, path, token, body): (reqwest::Method, String, String, Option<Value>),
) -> Result<u16, String> {
    let mut req = http
        .request(method, format!("{base}/v1/e/{path}"))
        .header("Authorization", format!("{CLIENT_ID} {token}"))
        .timeout(Duration::from_secs(10));
    if let Some(b) = body {
        req = req.body(b.to_string());
    }
    let res = req.send().await.map_err(|e| e.to_string())?;
    let status = res.status().as_u16();
    res.bytes().await.map_err(|e| e.to_string())?;
    Ok(status)
}

/// Uploads one code set and makes every viewer eligible for plenty of it.
async fn set_up_codes(
    http: &reqwest::Client,
    base: &str,
    admin: &str,
    codes: usize,
) -> Result<(), String> {
    let set: Vec<String> = (0..codes).map(|i| format!("SOAK{i:07}")).collect();
    let users: Vec<String> = (0..VIEWERS).map(user_of).collect();
    for (path, body) in [
        ("codes", json!({"codes": [set], "names": ["Soak prize"]})),
        (
            "codes/mark_from_list",
            json!({"users": users, "prizes": [0], "prize_limits": [1000]}),
        ),
    ] {
        let method = if path == "codes" {
            reqwest::Method::PUT
        } else {
            reqwest::Method::POST
        };
        let status = call(http, base, (method, path.into(), admin.into(), Some(body))).await?;
        if status != 200 {
            return Err(format!("{path}: {status}"));
        }
    }
    Ok(())
}

/// Connects `n` sockets (spread over the channels) and counts their frames.
async fn connect_sockets(
    base: &str,
    viewers: &[String],
    n: usize,
    frames: Arc<AtomicU64>,
) -> Result<Arc<AtomicU64>, String> {
    let ws_base = base.replacen("http", "ws", 1);
    let closed = Arc::new(AtomicU64::new(0));
    for i in 0..n {
        let url = format!(
            "{ws_base}/ws?client_id={CLIENT_ID}&token={}",
            viewers[i % VIEWERS]
        );
        let (ws, _) = tokio::time::timeout(
            Duration::from_secs(10),
            tokio_tungstenite::connect_async(url),
        )
        .await
        .map_err(|_| format!("socket {i}: no handshake in 10 s"))?
        .map_err(|e| format!("socket {i}: {e}"))?;
        let (frames, closed) = (frames.clone(), closed.clone());
        tokio::spawn(async move {
            let (_tx, mut rx) = ws.split();
            while let Some(Ok(m)) = rx.next().await {
                if m.is_text() {
                    frames.fetch_add(1, Ordering::Relaxed);
                }
            }
            closed.fetch_add(1, Ordering::Relaxed);
        });
    }
    Ok(closed)
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let minutes: u64 = arg("--minutes", 10);
    let warmup = arg("--warmup-minutes", 2).min(minutes.saturating_sub(1));
    let sockets: usize = arg("--sockets", 1000);
    let cap: u64 = arg("--expiry-cap-secs", 60);
    let (registry, secret_b64) = child::bench_extension(CLIENT_ID, 31, 3);
    let ext = registry.get(CLIENT_ID).expect("registered");
    let data_dir = std::env::temp_dir().join(format!("medkit-soak-{}", std::process::id()));
    std::fs::create_dir_all(&data_dir).map_err(|e| e.to_string())?;
    let file: PathBuf = data_dir.join("medkit.redb");
    let server = Server::spawn(
        Command::new(medkit_binary()?)
            .args(["serve", "--port", "0", "--data-dir"])
            .arg(&data_dir)
            .args(["--expiry-cap-secs", &cap.to_string(), "--extension"])
            .arg(format!("{CLIENT_ID}:{secret_b64}"))
            .env("RUST_LOG", "warn")
            .env_remove("MEDKIT_EXTENSIONS")
            .stderr(Stdio::null()),
    )?;
    let pid = server.child.id();
    let base = server.base.clone();
    let ttl = (minutes as i64 + 10) * 60;
    let mint = |role: Role, channel: &str, user: Option<&str>| {
        auth::mint(ext, auth::claims_for(role, channel, user, ttl))
    };
    let tokens = Arc::new(Tokens {
        viewers: (0..VIEWERS)
            .map(|i| mint(Role::Viewer, &channel_of(i), Some(&user_of(i))))
            .collect(),
        casters: (0..CHANNELS)
            .map(|c| mint(Role::Broadcaster, &channel_of(c), Some(&channel_of(c))))
            .collect(),
    });
    let admin = mint(Role::Admin, &channel_of(0), None);
    let http = reqwest::Client::new();
    let redeem_rate = KINDS
        .iter()
        .find(|k| k.name == "redeem")
        .map_or(0, |k| k.per_sec);
    set_up_codes(
        &http,
        &base,
        &admin,
        (redeem_rate * minutes * 60 * 5 / 4) as usize + 100,
    )
    .await?;
    let frames = Arc::new(AtomicU64::new(0));
    let closed = connect_sockets(&base, &tokens.viewers, sockets, frames.clone()).await?;
    println!(
        "soak: {minutes} min ({warmup} warm-up), {sockets} sockets on {CHANNELS} channels, \
         {VIEWERS} viewers, expiry capped at {cap} s, server pid {pid}"
    );
    println!(
        "rates per second: {}",
        KINDS
            .iter()
            .map(|k| format!("{} {}", k.name, k.per_sec))
            .collect::<Vec<_>>()
            .join(", ")
    );

    let windows: Arc<Mutex<BTreeMap<(u64, &'static str), Window>>> = Arc::default();
    let start = Instant::now();
    let end = start + Duration::from_secs(minutes * 60);
    let gate = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut drivers = Vec::new();
    for kind in KINDS {
        let (http, base, tokens, windows, gate) = (
            http.clone(),
            base.clone(),
            tokens.clone(),
            windows.clone(),
            gate.clone(),
        );
        drivers.push(tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / kind.per_sec));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut n = 0usize;
            while Instant::now() < end {
                tick.tick().await;
                let permit = gate.clone().acquire_owned().await.expect("open");
                let req = request(kind.name, n, &tokens);
                n += 1;
                let (http, base, windows) = (http.clone(), base.clone(), windows.clone());
                tokio::spawn(async move {
                    let t0 = Instant::now();
                    let result = call(&http, &base, req).await;
                    let minute = start.elapsed().as_secs() / 60;
                    let mut w = windows.lock().await;
                    let w = w.entry((minute, kind.name)).or_default();
                    w.micros
                        .push(t0.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    match result {
                        Ok(s) if s >= 500 => w.server_errors += 1,
                        Ok(s) if s >= 400 => w.client_errors += 1,
                        Ok(_) => {}
                        Err(_) => w.failed += 1,
                    }
                    drop(permit);
                });
            }
        }));
    }

    let mut rss = Vec::new();
    let mut files = Vec::new();
    let (mut total_5xx, mut total_failed, mut total_4xx) = (0u64, 0u64, 0u64);
    for minute in 0..minutes {
        let due = start + Duration::from_secs((minute + 1) * 60);
        tokio::time::sleep_until(due.into()).await;
        // Requests of the minute still in flight finish within their timeout.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (r, f) = (
            rss_bytes(pid),
            std::fs::metadata(&file).map_or(0, |m| m.len()),
        );
        rss.push(r);
        files.push(f);
        let mut w = windows.lock().await;
        let mut line = format!(
            "min {:>2}  rss {:>6.1} MB  file {:>6.1} MB  frames {:>9}",
            minute + 1,
            mb(r),
            mb(f),
            frames.load(Ordering::Relaxed)
        );
        for kind in KINDS {
            if let Some(win) = w.get_mut(&(minute, kind.name)) {
                total_5xx += win.server_errors;
                total_4xx += win.client_errors;
                total_failed += win.failed;
                line += &format!(
                    " | {} {} p99 {:.1} ms{}{}",
                    kind.name,
                    win.micros.len(),
                    p99(&mut win.micros),
                    if win.client_errors > 0 {
                        format!(" 4xx {}", win.client_errors)
                    } else {
                        String::new()
                    },
                    if win.server_errors + win.failed > 0 {
                        format!(" 5xx {} failed {}", win.server_errors, win.failed)
                    } else {
                        String::new()
                    },
                );
            }
        }
        println!("{line}");
    }
    for d in drivers {
        let _ = d.await;
    }
    let _ =
        tokio::time::timeout(Duration::from_secs(11), gate.acquire_many(IN_FLIGHT as u32)).await;

    let base_i = warmup.saturating_sub(1) as usize;
    let (rss0, file0) = (rss[base_i], files[base_i]);
    let rss_max = *rss[base_i..].iter().max().unwrap_or(&rss0);
    let file_max = *files[base_i..].iter().max().unwrap_or(&file0);
    let growth = |max: u64, base: u64| (max as f64 / base.max(1) as f64 - 1.0) * 100.0;
    println!(
        "after warm-up (end of minute {}): rss {:.1} MB, highest later {:.1} MB (+{:.1}%, target ≤ 10%); \
         file {:.1} MB, highest later {:.1} MB (+{:.1}%)",
        base_i + 1,
        mb(rss0),
        mb(rss_max),
        growth(rss_max, rss0),
        mb(file0),
        mb(file_max),
        growth(file_max, file0),
    );
    println!(
        "answers: {total_5xx} server errors, {total_failed} failed requests, {total_4xx} refusals (4xx); \
         sockets closed early: {}; frames received: {}",
        closed.load(Ordering::Relaxed),
        frames.load(Ordering::Relaxed)
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&data_dir);
    Ok(())
}
