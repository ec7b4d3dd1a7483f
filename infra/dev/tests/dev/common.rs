//! Shared by the binary's end-to-end tests: a `medkit serve` child process
//! and a small HTTP helper.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub struct Server {
    pub child: Child,
    pub base: String,
    pub banner: Vec<String>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    pub fn start(args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_medkit"))
            .args(["serve", "--port", "0"])
            .args(args)
            .env_remove("MEDKIT_EXTENSIONS")
            .env_remove("MEDKIT_ENV")
            .env(
                "RUST_LOG",
                std::env::var("MEDKIT_TEST_SERVER_LOG").unwrap_or("warn".into()),
            )
            .stdout(Stdio::piped())
            .stderr(if std::env::var("MEDKIT_TEST_SERVER_LOG").is_ok() {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut banner = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let Some(Ok(line)) = lines.next() else { break };
            let done = line.contains("broadcaster:") || line.contains("extensions:");
            banner.push(line);
            if done {
                break;
            }
        }
        // Keep reading the server's output, so it never writes to a closed pipe.
        std::thread::spawn(move || for _ in lines {});
        let base = banner
            .iter()
            .find_map(|l| l.strip_prefix("medkit listening on "))
            .unwrap_or_else(|| panic!("no URL in banner: {banner:?}"))
            .to_string();
        Server {
            child,
            base,
            banner,
        }
    }

    pub fn banner_value(&self, key: &str) -> String {
        self.banner
            .iter()
            .find_map(|l| l.trim().strip_prefix(key).map(|v| v.trim().to_string()))
            .unwrap_or_else(|| panic!("{key} not in banner {:?}", self.banner))
    }
}

pub async fn send(
    method: reqwest::Method,
    url: &str,
    auth: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    // reqwest's TLS is built without a default crypto provider (as in the binary).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::new();
    let mut req = client.request(method, url).timeout(Duration::from_secs(10));
    if let Some(a) = auth {
        req = req.header("Authorization", a);
    }
    if let Some(b) = body {
        req = req
            .header(
                "Content-Type",
                "application/x-www-form-urlencoded; charset=UTF-8",
            )
            .body(b.to_string());
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    assert_eq!(res.headers()["content-type"], "application/json");
    (status, res.json().await.unwrap())
}

/// The DynamoDB Local the test suite runs (infra/scripts/test.sh), or None
/// (a test that needs it then says it did not run; CI requires it).
pub fn dynamodb() -> Option<String> {
    let e = std::env::var("MEDKIT_TEST_DYNAMODB_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty());
    if e.is_none() {
        if std::env::var("MEDKIT_REQUIRE_DYNAMODB").is_ok_and(|v| v == "1") {
            panic!("DynamoDB Local is required but not configured");
        }
        eprintln!("DYNAMODB TEST NOT RUN: this test needs DynamoDB Local");
    }
    e
}
