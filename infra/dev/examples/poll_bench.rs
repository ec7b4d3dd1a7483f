//! GameLink poll benchmark (issue #13): N viewers vote on one poll while G
//! games subscribe to it, on `medkit serve`, on loopback. Prints the time
//! from a vote's answer to the first update at a game that includes it
//! (p50/p99 over every vote at every game, the 1 s coalescing included),
//! and votes/s beside the same run with no game subscribed (the baseline,
//! measured in the same process against the same server).
//!
//!   bash infra/scripts/bench-polls.sh                 (release, raised fd limit)
//!   cargo run --release -p medkit-dev --example poll_bench -- --viewers 1000 --games 1000
//!
//! Every loop is bounded (connects and waits have deadlines) and only
//! loopback addresses are used.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use medkit::auth::{self, Role};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;

#[path = "common/child.rs"]
mod child;
use child::{Server, arg, medkit_binary, viewer_tokens};

const CLIENT_ID: &str = "bench";
const CHANNEL: &str = "42";
/// Votes and connects in flight at once.
const CONCURRENCY: usize = 64;
const DEADLINE: Duration = Duration::from_secs(120);

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn frame(action: &str, id: u16, target: &str, data: Value) -> String {
    let mut params = json!({"request_id": id});
    if !target.is_empty() {
        params["target"] = json!(target);
    }
    json!({"action": action, "data": data, "params": params}).to_string()
}

/// Sends a request and waits for its reply (skipping updates).
async fn request(ws: &mut Ws, f: String, id: u16) -> Result<Value, String> {
    ws.send(Message::Text(f.into()))
        .await
        .map_err(|e| e.to_string())?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .map_err(|_| "no reply in 10 s".to_string())?
            .ok_or("closed")?
            .map_err(|e| e.to_string())?;
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(t.as_str()).map_err(|e| e.to_string())?;
            if v["meta"]["request_id"] == id {
                if v.get("errors").is_some() {
                    return Err(format!("refused: {v}"));
                }
                return Ok(v["data"].clone());
            }
        }
    }
}

async fn game(ws_url: &str, refresh: &str) -> Result<Ws, String> {
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url)
        .await
        .map_err(|e| e.to_string())?;
    request(
        &mut ws,
        frame(
            "authenticate",
            1,
            "",
            json!({"client_id": CLIENT_ID, "refresh": refresh}),
        ),
        1,
    )
    .await?;
    Ok(ws)
}

struct Run {
    votes_per_s: f64,
    /// Seconds from each vote's answer to its first inclusion at each game.
    latencies: Vec<f64>,
}

/// One poll: `games` subscribe (0 for the baseline), `viewers` vote.
async fn run(
    base: &str,
    http: &reqwest::Client,
    viewers: &[String],
    rounds: usize,
    creator: &mut Ws,
    games: Vec<Ws>,
    poll: &str,
) -> Result<Run, String> {
    let mut subscribed = Vec::with_capacity(games.len());
    for mut g in games {
        request(
            &mut g,
            frame("subscribe", 2, "poll", json!({"topic_id": poll})),
            2,
        )
        .await?;
        subscribed.push(g);
    }
    request(
        creator,
        frame(
            "create",
            3,
            "poll",
            json!({"poll_id": poll, "prompt": "?", "options": ["a", "b", "c"]}),
        ),
        3,
    )
    .await?;
    // Each game records (arrival, count) of every update.
    let started = Instant::now();
    // Every vote is counted once per viewer (a later ballot replaces the
    // earlier): a game has seen everything when the count reaches N and
    // the last round's figures arrived.
    let n = viewers.len();
    let ballots: Vec<(usize, &String)> = (0..rounds)
        .flat_map(|r| {
            viewers
                .iter()
                .enumerate()
                .map(move |(i, t)| (r * viewers.len() + i, t))
        })
        .collect();
    let total = ballots.len();
    let listeners: Vec<_> = subscribed
        .into_iter()
        .map(|mut g| {
            tokio::spawn(async move {
                let mut seen: Vec<(f64, i64)> = Vec::new();
                let deadline = tokio::time::Instant::now() + DEADLINE;
                loop {
                    // Done when 3 s pass with no update after all N counted.
                    let quiet = seen.last().is_some_and(|(_, c)| (*c as usize) >= n);
                    let wait = if quiet {
                        tokio::time::Instant::now() + Duration::from_secs(3)
                    } else {
                        deadline
                    };
                    match tokio::time::timeout_at(wait.min(deadline), g.next()).await {
                        Ok(Some(Ok(Message::Text(t)))) => {
                            let v: Value = serde_json::from_str(t.as_str()).unwrap_or_default();
                            if v["meta"]["target"] == "poll" {
                                let c = v["data"]["count"].as_i64().unwrap_or(0);
                                seen.push((started.elapsed().as_secs_f64(), c));
                            }
                        }
                        Ok(Some(Ok(_))) => {}
                        _ => break,
                    }
                }
                seen
            })
        })
        .collect();
    // Votes, CONCURRENCY in flight; each answer's time recorded.
    let acks = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let t0 = Instant::now();
    futures_util::stream::iter(ballots)
        .for_each_concurrent(CONCURRENCY, |(i, token)| {
            let acks = acks.clone();
            async move {
                let r = http
                    .post(format!("{base}/v1/e/vote?id={poll}"))
                    .header("Authorization", format!("{CLIENT_ID} {token}"))
                    .body(json!({"value": i % 3}).to_string())
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await;
                if matches!(&r, Ok(r) if r.status().is_success()) {
                    acks.lock().await.push(started.elapsed().as_secs_f64());
                }
            }
        })
        .await;
    let elapsed = t0.elapsed().as_secs_f64();
    let mut acks = acks.lock().await.clone();
    if acks.len() != total {
        return Err(format!("{} of {total} votes were accepted", acks.len()));
    }
    acks.sort_by(f64::total_cmp);
    let mut latencies = Vec::new();
    for l in listeners {
        let seen = l.await.map_err(|e| e.to_string())?;
        if seen.last().is_none_or(|(_, c)| (*c as usize) < n) {
            return Err(format!(
                "a game never saw all {n} ballots: {:?}",
                seen.last()
            ));
        }
        // A vote answered at t is included by the first update that left
        // the server after t: its latency is that update's arrival - t
        // (updates carry the figures as they were when sent).
        let mut next = 0;
        for &ack in &acks {
            while next < seen.len() && seen[next].0 < ack {
                next += 1;
            }
            match seen.get(next) {
                Some((at, _)) => latencies.push(at - ack),
                None => return Err("a vote after the last update a game saw".into()),
            }
        }
    }
    Ok(Run {
        votes_per_s: total as f64 / elapsed,
        latencies,
    })
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (n_viewers, n_games): (usize, usize) = (arg("--viewers", 1000), arg("--games", 1000));
    // Each viewer votes this many times (a changed ballot each time), so a
    // run lasts long enough to measure.
    let rounds: usize = arg("--rounds", 5);
    let (registry, secret_b64) = child::bench_extension(CLIENT_ID, 29, 7);
    let ext = registry.get(CLIENT_ID).expect("registered");
    let server = Server::spawn(
        Command::new(medkit_binary()?)
            .args(["serve", "--memory", "--port", "0", "--extension"])
            .arg(format!("{CLIENT_ID}:{secret_b64}"))
            .env("RUST_LOG", "warn")
            .env_remove("MEDKIT_EXTENSIONS")
            .stderr(Stdio::null()),
    )?;
    let base = server.base.clone();
    let ws_url = format!("{}/0.2.0/{CLIENT_ID}", base.replacen("http", "ws", 1));
    let http = reqwest::Client::new();
    // One PIN login; every other game logs in with its refresh token.
    let caster = auth::mint(
        ext,
        auth::claims_for(Role::Broadcaster, CHANNEL, Some(CHANNEL), 3600),
    );
    let pin: Value = http
        .post(format!("{base}/v1/e/gamelink/token"))
        .header("Authorization", format!("{CLIENT_ID} {caster}"))
        .body("{}")
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let (mut creator, _) = tokio_tungstenite::connect_async(&ws_url)
        .await
        .map_err(|e| e.to_string())?;
    let login = request(
        &mut creator,
        frame(
            "authenticate",
            1,
            "",
            json!({"client_id": CLIENT_ID, "pin": pin["token"]}),
        ),
        1,
    )
    .await?;
    let refresh = login["refresh"]
        .as_str()
        .ok_or("no refresh token")?
        .to_string();
    let viewers = viewer_tokens(ext, CHANNEL, n_viewers);
    println!(
        "GameLink polls on medkit serve (--memory): {n_viewers} viewers vote {rounds} times each, {CONCURRENCY} in flight"
    );
    let t = Instant::now();
    let mut games = Vec::with_capacity(n_games);
    let mut pending = futures_util::stream::iter(0..n_games)
        .map(|_| game(&ws_url, &refresh))
        .buffer_unordered(CONCURRENCY);
    while let Some(g) = tokio::time::timeout(DEADLINE, pending.next())
        .await
        .map_err(|_| "connecting games took too long")?
    {
        games.push(g?);
    }
    let connect = t.elapsed();
    // Warm-up (HTTP connections, allocations), not measured.
    run(
        &base,
        &http,
        &viewers,
        1,
        &mut creator,
        Vec::new(),
        "warm-up",
    )
    .await?;
    // The baseline with the same games connected, subscribed to nothing.
    let baseline = run(
        &base,
        &http,
        &viewers,
        rounds,
        &mut creator,
        Vec::new(),
        "baseline",
    )
    .await?;
    let with = run(
        &base,
        &http,
        &viewers,
        rounds,
        &mut creator,
        games,
        "with-games",
    )
    .await?;
    let mut lat = with.latencies.clone();
    lat.sort_by(f64::total_cmp);
    println!(
        "  {n_games} games connected and logged in (refresh token) in {:.2} s",
        connect.as_secs_f64()
    );
    println!(
        "  votes/s, no game subscribed (baseline): {:.0}",
        baseline.votes_per_s
    );
    println!(
        "  votes/s, {n_games} games subscribed:    {:.0}",
        with.votes_per_s
    );
    println!(
        "  ratio (with / baseline): {:.2}  (target ≥ 0.9)",
        with.votes_per_s / baseline.votes_per_s
    );
    println!(
        "  vote answered → update at a game: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms over {} (vote, game) pairs  (target p99 ≤ 1,200 ms)",
        percentile(&lat, 0.5) * 1000.0,
        percentile(&lat, 0.99) * 1000.0,
        lat.last().copied().unwrap_or(f64::NAN) * 1000.0,
        lat.len()
    );
    drop(server);
    Ok(())
}
