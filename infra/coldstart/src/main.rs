//! Cold start of every function, locally: time from exec of its (x86_64,
//! release-profile) `bootstrap` to its first response, through a local
//! Runtime API stub, median of N starts; beside a hello-world
//! `lambda_runtime` function built with the same profile, in the same run.
//! Also "init": exec until the function first asks for an event (config,
//! SDK clients, runtime start), before any event work.
//!
//!   bash infra/scripts/bench-coldstart.sh [STARTS]
//!
//! Events need no network: an HTTP request refused for its missing token
//! (routing, the JSON error), a WebSocket `$default` ping, an empty stream
//! batch. Bounded: each start waits at most 20 s.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use medkit::testing::runtime_stub::{Running, RuntimeStub, medkit_env, unauthenticated_http_event};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(20);

fn ping_event() -> String {
    json!({
        "requestContext": {"routeKey": "$default", "eventType": "MESSAGE", "connectionId": "Zm9vYmFyMTIzNA",
            "connectedAt": 0, "requestTimeEpoch": 0, "requestId": "r", "apiId": "local",
            "stage": "live", "domainName": "local", "messageId": "m", "extendedRequestId": "e",
            "messageDirection": "IN", "requestTime": "01/Jan/2026:00:00:00 +0000",
            "identity": {"sourceIp": "127.0.0.1"}},
        "body": "{\"type\":\"ping\"}", "isBase64Encoded": false
    })
    .to_string()
}

struct Figures {
    first_response: Vec<Duration>,
    init: Vec<Duration>,
}

async fn measure(bin: &Path, event: &str, starts: usize) -> Result<Figures, String> {
    let stub = RuntimeStub::start().await;
    let mut f = Figures {
        first_response: Vec::new(),
        init: Vec::new(),
    };
    for _ in 0..starts {
        let id = stub.push(event.to_string());
        let mut cmd = stub.command(bin);
        cmd.envs(medkit_env())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let t0 = Instant::now();
        let child = Running(cmd.spawn().map_err(|e| format!("{}: {e}", bin.display()))?);
        let outcome = stub
            .outcome(&id, WAIT)
            .await
            .ok_or_else(|| format!("{}: no answer within {WAIT:?}", bin.display()))?;
        f.first_response.push(outcome.at() - t0);
        if let Some(p) = stub.first_poll_after(t0) {
            f.init.push(p - t0);
        }
        drop(child);
    }
    Ok(f)
}

fn median(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v[v.len() / 2]
}

fn p90(v: &[Duration]) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v[(v.len() * 9 / 10).min(v.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

#[tokio::main]
async fn main() {
    let starts: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("STARTS must be a number"))
        .unwrap_or(20)
        .clamp(1, 500);
    let dir: PathBuf = std::env::current_exe()
        .expect("exe")
        .parent()
        .expect("target dir")
        .to_path_buf();
    let http = unauthenticated_http_event("/v1/e/channel_state");
    let functions: [(&str, String); 8] = [
        ("hello-lambda", "{}".into()),
        ("medkit-stores", http.clone()),
        ("medkit-auth", http.clone()),
        ("medkit-aggregate", http.clone()),
        ("medkit-codes", http.clone()),
        ("medkit-broadcast", http),
        ("medkit-socket", ping_event()),
        ("medkit-fanout", r#"{"Records": []}"#.into()),
    ];
    println!("cold start, {starts} starts each, x86_64 release bootstraps, local Runtime API");
    println!("| function | first response (median) | p90 | init (median) | vs hello-world |");
    println!("|---|---|---|---|---|");
    let mut hello = None;
    for (name, event) in functions {
        let bin = dir.join(name);
        if !bin.exists() {
            eprintln!(
                "{} is missing: build with infra/scripts/bench-coldstart.sh",
                bin.display()
            );
            std::process::exit(2);
        }
        let f = match measure(&bin, &event, starts).await {
            Ok(f) => f,
            Err(e) => {
                eprintln!("coldstart: {e}");
                std::process::exit(1);
            }
        };
        let med = median(&f.first_response);
        let base = *hello.get_or_insert(med);
        println!(
            "| {name} | {} | {} | {} | {:.2}x |",
            ms(med),
            ms(p90(&f.first_response)),
            if f.init.is_empty() {
                "n/a".into()
            } else {
                ms(median(&f.init))
            },
            med.as_secs_f64() / base.as_secs_f64(),
        );
    }
}
