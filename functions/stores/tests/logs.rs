//! The Lambda's JSON log lines: one per request with the invocation's id,
//! route, status, latency and cold-start flag, and never a token, a query
//! string or a body. (Its own test binary: it installs the global logger.)

use std::io::Write;
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

#[tokio::test]
async fn one_json_line_per_request_with_no_secrets() {
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
}
