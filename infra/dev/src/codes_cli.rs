//! `medkit codes upload|status`: game-code sets of any size, uploaded to the
//! dev server or a deployed stage in parts (`PUT codes`, then
//! `PUT codes?append=true`), each part under the ~6 MB Lambda request limit.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};
use medkit::auth::{self, Role};
use medkit::codes::{MAX_CODES_PER_SET, MAX_SLOTS, check_code};
use serde_json::{Value, json};

#[derive(Subcommand)]
pub enum CodesCommand {
    /// Upload a file of codes (one per line) as the set of a slot, replacing it.
    Upload(UploadArgs),
    /// Show every set: name, codes remaining, codes handed out.
    Status(Connection),
}

#[derive(Args)]
pub struct Connection {
    /// Base URL: the dev server, or the deployed stage's RestUrl.
    #[arg(long, env = "MEDKIT_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The extension's client id (the dev server prints the demo one).
    #[arg(long, env = "MEDKIT_CLIENT_ID", default_value = "medkit-demo")]
    client_id: String,
    /// The extension secret, base64; signs a short-lived backend token.
    #[arg(long, env = "MEDKIT_SECRET", hide_env_values = true)]
    secret: String,
}

#[derive(Args)]
pub struct UploadArgs {
    #[command(flatten)]
    conn: Connection,
    /// Slot (prize) 0..9.
    #[arg(long)]
    slot: usize,
    /// The set's name.
    #[arg(long)]
    name: String,
    /// Bytes of JSON per request (API Gateway and Lambda stop near 6 MB;
    /// 1 MB, ~50,000 codes, is a few DynamoDB writes and a second or two on
    /// a slow uplink, far inside API Gateway's 30 s).
    #[arg(long, default_value_t = 1_000_000)]
    part_bytes: usize,
    /// A file with one code per line (blank lines are skipped).
    file: PathBuf,
}

pub async fn run(cmd: CodesCommand) -> Result<(), String> {
    // reqwest's TLS is built without a default crypto provider: use ring,
    // the one the AWS SDK uses too.
    let _ = rustls::crypto::ring::default_provider().install_default();
    match cmd {
        CodesCommand::Upload(args) => upload(args).await,
        CodesCommand::Status(conn) => status(conn).await,
    }
}

struct Api {
    http: reqwest::Client,
    base: String,
    auth: String,
}

impl Api {
    fn new(conn: &Connection) -> Result<Self, String> {
        let client =
            medkit::ids::ClientId::parse(conn.client_id.as_str()).map_err(|e| e.to_string())?;
        let secret = medkit::registry::decode_secret(&conn.secret)
            .filter(|s| !s.is_empty())
            .ok_or("--secret is not valid base64")?;
        let mut registry = medkit::registry::Registry::default();
        registry.add(client.clone(), &secret);
        let ext = registry.get(client.as_str()).expect("just added");
        let token = auth::mint(ext, auth::claims_for(Role::Backend, "0", None, 900));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Api {
            http,
            base: format!("{}/v1/e", conn.url.trim_end_matches('/')),
            auth: format!("{client} {token}"),
        })
    }

    /// One request; 429/503 and connection failures are retried with backoff.
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<String>,
    ) -> Result<Value, String> {
        let mut last = String::new();
        for attempt in 0..5u32 {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(500 << attempt)).await;
            }
            let mut req = self
                .http
                .request(method.clone(), format!("{}/{path}", self.base))
                .header("Authorization", &self.auth);
            if let Some(b) = &body {
                req = req
                    .header("Content-Type", "application/json")
                    .body(b.clone());
            }
            match req.send().await {
                Ok(res) => {
                    let status = res.status();
                    let value: Value = res.json().await.unwrap_or(Value::Null);
                    if status.is_success() {
                        return Ok(value);
                    }
                    let reason = value["reason"]
                        .as_str()
                        .unwrap_or("no reason given")
                        .to_string();
                    last = format!("{status}: {reason}");
                    if status != reqwest::StatusCode::TOO_MANY_REQUESTS
                        && status != reqwest::StatusCode::SERVICE_UNAVAILABLE
                    {
                        return Err(last);
                    }
                }
                Err(e) => last = format!("cannot reach {}: {e}", self.base),
            }
        }
        Err(last)
    }
}

/// Reads and checks the file: every code as the server will check it, with
/// the line number of the first bad one.
fn read_codes(file: &PathBuf) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let mut codes = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.trim();
        if code.is_empty() {
            continue;
        }
        check_code(code).map_err(|e| format!("{}:{}: {e}", file.display(), n + 1))?;
        codes.push(code.to_string());
    }
    if codes.is_empty() {
        return Err(format!("{}: no codes", file.display()));
    }
    if codes.len() > MAX_CODES_PER_SET {
        return Err(format!(
            "{} codes: a set holds fewer than {}",
            codes.len(),
            MAX_CODES_PER_SET + 1
        ));
    }
    Ok(codes)
}

/// Cuts the codes into parts whose JSON stays under `max_bytes`.
fn parts(codes: &[String], max_bytes: usize) -> Vec<&[String]> {
    let mut out = Vec::new();
    let (mut start, mut size) = (0, 0);
    for (i, c) in codes.iter().enumerate() {
        let cost = c.len() + 3; // quotes and comma (codes need no escaping)
        if size + cost > max_bytes && i > start {
            out.push(&codes[start..i]);
            start = i;
            size = 0;
        }
        size += cost;
    }
    out.push(&codes[start..]);
    out
}

fn progress(done: usize, total: usize) {
    let width = 30;
    let filled = done * width / total.max(1);
    eprint!(
        "\r[{}{}] {:>3}% {done}/{total} codes",
        "#".repeat(filled),
        ".".repeat(width - filled),
        done * 100 / total.max(1)
    );
    let _ = std::io::stderr().flush();
}

async fn upload(args: UploadArgs) -> Result<(), String> {
    if args.slot >= MAX_SLOTS {
        return Err(format!("--slot is 0..{}", MAX_SLOTS - 1));
    }
    let codes = read_codes(&args.file)?;
    let api = Api::new(&args.conn)?;
    let parts = parts(&codes, args.part_bytes.clamp(1024, 6_000_000));
    let started = Instant::now();
    let (mut sent, mut bytes) = (0, 0);
    // Each append names its part, so a retry of one that was in fact
    // written (its answer lost) adds nothing twice.
    let upload_id = medkit::random::token_id(10);
    progress(0, codes.len());
    for (i, part) in parts.iter().enumerate() {
        let body =
            json!({"codes": [part], "names": [args.name], "indices": [args.slot]}).to_string();
        bytes += body.len();
        let path = if i == 0 {
            "codes".to_string()
        } else {
            format!("codes?append=true&part={upload_id}-{i}")
        };
        let path = path.as_str();
        api.send(reqwest::Method::PUT, path, Some(body))
            .await
            .map_err(|e| format!("\npart {} of {} failed: {e}", i + 1, parts.len()))?;
        sent += part.len();
        progress(sent, codes.len());
    }
    eprintln!();
    println!(
        "uploaded {} codes to slot {} ({:?}) in {} request(s), {} bytes, {:.1} s",
        codes.len(),
        args.slot,
        args.name,
        parts.len(),
        bytes,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

async fn status(conn: Connection) -> Result<(), String> {
    let api = Api::new(&conn)?;
    let v = api.send(reqwest::Method::GET, "codes", None).await?;
    let slots = v["slots"].as_array().cloned().unwrap_or_default();
    if slots.is_empty() {
        println!("no code sets");
        return Ok(());
    }
    println!(
        "{:<5} {:<24} {:>10} {:>12}",
        "slot", "name", "remaining", "distributed"
    );
    for (i, slot) in slots.iter().enumerate() {
        println!(
            "{:<5} {:<24} {:>10} {:>12}",
            slot.to_string(),
            v["names"][i].as_str().unwrap_or(""),
            v["remaining"][i].to_string(),
            v["distributed"][i].to_string()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_stay_under_the_limit_and_keep_order() {
        let codes: Vec<String> = (0..1000).map(|i| format!("C{i:05}")).collect();
        let p = parts(&codes, 900);
        assert!(p.len() > 1);
        assert!(
            p.iter()
                .all(|x| x.iter().map(|c| c.len() + 3).sum::<usize>() <= 900)
        );
        assert_eq!(p.concat(), codes);
        assert_eq!(parts(&codes, 10_000_000).len(), 1);
    }
}
