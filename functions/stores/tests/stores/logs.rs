//! The Lambda's JSON log lines: one per request with the invocation's id,
//! route, status, latency and cold-start flag, and never a token, a query
//! string or a body.
//!
//! The logger and the cold-start flag belong to the process, and the other
//! tests of this binary run beside this one; so the check runs in a process
//! of its own: [`one_json_line_per_request_with_no_secrets`] runs this binary
//! again with nothing but [`logs_of_one_process`], which does the work only
//! there (it returns at once when run with the rest).

use std::io::Write;
use std::process::Command;
use std::sync::{Arc, Mutex};

use medkit::store::embedded::EmbeddedStore;
use medkit::testing::{invoke, sample_app, sample_events};
use serde_json::Value;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Set for the child process that runs [`logs_of_one_process`] alone.
const ALONE: &str = "MEDKIT_TEST_LOGS_ALONE";
/// What the child prints once every check passed.
const CHECKED: &str = "log lines checked";

#[test]
fn one_json_line_per_request_with_no_secrets() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["logs::logs_of_one_process", "--exact", "--nocapture"])
        .env(ALONE, "1")
        .output()
        .expect("run this test binary again");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && printed.contains(CHECKED),
        "{printed}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn logs_of_one_process() {
    if std::env::var_os(ALONE).is_none() {
        return;
    }
    let logs = Captured::default();
    let writer = logs.clone();
    medkit::logging::init_json_with(move || writer.clone());

    let router = medkit_stores::router(sample_app(EmbeddedStore::in_memory()));
    let events = sample_events("stores");
    let (_, post) = &events[0];
    let (_, get) = &events[2];
    let token = serde_json::from_str::<Value>(get).unwrap()["headers"]["authorization"]
        .as_str()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .to_string();
    assert_eq!(invoke(&router, post).await.0, 200);
    assert_eq!(invoke(&router, get).await.0, 200);
    // A token in the query string and a refused request.
    let mut leaky: Value = serde_json::from_str(get).unwrap();
    leaky["rawQueryString"] = format!("token={token}").into();
    leaky["headers"]["authorization"] = "sample-client not-a-jwt-secret-ish".into();
    assert_eq!(invoke(&router, &leaky.to_string()).await.0, 401);

    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let requests: Vec<&Value> = lines.iter().filter(|l| l["message"] == "request").collect();
    assert_eq!(requests.len(), 3, "{text}");
    for (i, r) in requests.iter().enumerate() {
        assert_eq!(r["request_id"], "test-request-id", "{r}");
        assert_eq!(r["route"], "/v1/e/channel_state", "{r}");
        assert!(r["latency_ms"].as_f64().is_some(), "{r}");
        assert_eq!(
            r["cold_start"],
            i == 0,
            "only the first is a cold start: {r}"
        );
    }
    assert_eq!(requests[0]["method"], "POST");
    assert_eq!(requests[1]["status"], 200);
    assert_eq!(requests[2]["status"], 401);
    assert!(!text.contains(&token), "a token was logged: {text}");
    assert!(
        !text.contains("not-a-jwt-secret-ish"),
        "a credential was logged"
    );
    assert!(!text.contains("token="), "a query string was logged");
    assert!(!text.contains("teams"), "a body was logged");
    println!("{CHECKED}");
}
