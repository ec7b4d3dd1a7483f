//! A local stand-in for the Lambda Runtime API (`AWS_LAMBDA_RUNTIME_API`),
//! for tests and the cold-start benchmark: it hands a function's
//! `bootstrap` the events pushed to it and records what comes back
//! (response, invocation error, init error) and when.
//!
//! Only the four routes a runtime uses are served:
//! `GET /2018-06-01/runtime/invocation/next`,
//! `POST …/invocation/{id}/response`, `POST …/invocation/{id}/error` and
//! `POST …/init/error`. It listens on loopback only.

use std::collections::{HashMap, VecDeque};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::Notify;

/// What a function answered to one event.
#[derive(Debug, Clone)]
pub enum Outcome {
    Response { body: Bytes, at: Instant },
    Error { body: Bytes, at: Instant },
}

impl Outcome {
    pub fn body_json(&self) -> serde_json::Value {
        let body = match self {
            Outcome::Response { body, .. } | Outcome::Error { body, .. } => body,
        };
        serde_json::from_slice(body).unwrap_or(serde_json::Value::Null)
    }
    pub fn at(&self) -> Instant {
        match self {
            Outcome::Response { at, .. } | Outcome::Error { at, .. } => *at,
        }
    }
}

#[derive(Default)]
struct Inner {
    queue: Mutex<VecDeque<(String, Bytes)>>,
    queued: Notify,
    outcomes: Mutex<HashMap<String, Outcome>>,
    init_error: Mutex<Option<Bytes>>,
    answered: Notify,
    next_id: Mutex<u64>,
    /// When the function asked for its next event (the first one after a
    /// start marks the end of its init).
    polls: Mutex<Vec<Instant>>,
}

/// A running stub; dropped with its runtime's tasks.
#[derive(Clone)]
pub struct RuntimeStub {
    addr: String,
    inner: Arc<Inner>,
}

impl RuntimeStub {
    pub async fn start() -> RuntimeStub {
        let inner = Arc::new(Inner::default());
        let app = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(respond),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(fail))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr").to_string();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        RuntimeStub { addr, inner }
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Queues an event (any bytes: malformed ones too); returns its request id.
    pub fn push(&self, event: impl Into<Bytes>) -> String {
        let id = {
            let mut n = self.inner.next_id.lock().unwrap();
            *n += 1;
            format!("req-{n}")
        };
        self.inner
            .queue
            .lock()
            .unwrap()
            .push_back((id.clone(), event.into()));
        self.inner.queued.notify_one();
        id
    }

    /// Waits (bounded) for the function's answer to one event.
    pub async fn outcome(&self, id: &str, wait: Duration) -> Option<Outcome> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let answered = self.inner.answered.notified();
            if let Some(o) = self.inner.outcomes.lock().unwrap().get(id) {
                return Some(o.clone());
            }
            if tokio::time::timeout_at(deadline, answered).await.is_err() {
                return None;
            }
        }
    }

    /// The first time the function asked for an event after `since`.
    pub fn first_poll_after(&self, since: Instant) -> Option<Instant> {
        let polls = self.inner.polls.lock().unwrap();
        polls.iter().copied().find(|t| *t >= since)
    }

    /// What the function reported through `init/error`, if anything.
    pub fn init_error(&self) -> Option<serde_json::Value> {
        self.inner
            .init_error
            .lock()
            .unwrap()
            .as_ref()
            .map(|b| serde_json::from_slice(b).unwrap_or(serde_json::Value::Null))
    }

    /// A command for a `bootstrap` with the environment Lambda gives every
    /// function, pointed at this stub; add the function's own variables.
    pub fn command(&self, bootstrap: &std::path::Path) -> Command {
        let mut cmd = Command::new(bootstrap);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", &self.addr)
            .env("AWS_LAMBDA_FUNCTION_NAME", "medkit-local")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/medkit-local")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "local")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_ACCESS_KEY_ID", "local")
            .env("AWS_SECRET_ACCESS_KEY", "local")
            .env("AWS_EC2_METADATA_DISABLED", "true");
        cmd
    }
}

/// The environment every medkit function reads (sample extension, table
/// names, a loopback WebSocket endpoint), for `RuntimeStub::command`.
pub fn medkit_env() -> Vec<(&'static str, &'static str)> {
    vec![
        ("MEDKIT_ENV", "sandbox"),
        (
            "MEDKIT_EXTENSIONS",
            "sample-client:c2FtcGxlLWV2ZW50cy1zZWNyZXQtbm90LWZvci1wcm9kdWN0aW9u",
        ),
        ("MEDKIT_STORES_TABLE", "stores"),
        ("MEDKIT_AUTH_TABLE", "auth"),
        ("MEDKIT_AGGREGATES_TABLE", "aggregates"),
        ("MEDKIT_CODES_TABLE", "codes"),
        ("MEDKIT_CONNECTIONS_TABLE", "connections"),
        ("MEDKIT_PURCHASES_TABLE", "purchases"),
        ("MEDKIT_WS_ENDPOINT", "http://127.0.0.1:9/ws"),
        (
            "MEDKIT_TIMERS_QUEUE_URL",
            "http://127.0.0.1:9/000000000000/timers",
        ),
        ("RUST_LOG", "warn"),
    ]
}

async fn next(State(inner): State<Arc<Inner>>) -> Response {
    inner.polls.lock().unwrap().push(Instant::now());
    loop {
        let queued = inner.queued.notified();
        if let Some((id, event)) = inner.queue.lock().unwrap().pop_front() {
            let mut headers = HeaderMap::new();
            let deadline = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis()
                + 30_000;
            let h = |v: &str| HeaderValue::from_str(v).expect("header value");
            headers.insert("lambda-runtime-aws-request-id", h(&id));
            headers.insert("lambda-runtime-deadline-ms", h(&deadline.to_string()));
            headers.insert(
                "lambda-runtime-invoked-function-arn",
                h("arn:aws:lambda:us-east-1:000000000000:function:medkit-local"),
            );
            headers.insert(
                "lambda-runtime-trace-id",
                h("Root=1-00000000-000000000000000000000000"),
            );
            return (StatusCode::OK, headers, event).into_response();
        }
        queued.await;
    }
}

fn record(inner: &Inner, id: String, outcome: Outcome) -> StatusCode {
    inner.outcomes.lock().unwrap().insert(id, outcome);
    inner.answered.notify_waiters();
    StatusCode::ACCEPTED
}

async fn respond(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    let at = Instant::now();
    record(&inner, id, Outcome::Response { body, at })
}

async fn fail(State(inner): State<Arc<Inner>>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    let at = Instant::now();
    record(&inner, id, Outcome::Error { body, at })
}

async fn init_error(State(inner): State<Arc<Inner>>, body: Bytes) -> StatusCode {
    *inner.init_error.lock().unwrap() = Some(body);
    inner.answered.notify_waiters();
    StatusCode::ACCEPTED
}

/// Runs a function's `bootstrap` that is expected to fail at init (bad
/// environment): waits at most `wait`, returns its exit code and output
/// (stdout and stderr together). A process still running is killed and
/// reported as `None`.
pub fn run_to_exit(mut cmd: Command, wait: Duration) -> (Option<i32>, String) {
    use std::io::Read;
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn the bootstrap");
    let deadline = Instant::now() + wait;
    let code = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_string(&mut out);
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_string(&mut out);
    }
    (code, out)
}

/// A child process killed when dropped (a served function under test).
pub struct Running(pub std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An HTTP API (payload 2.0) request with no `Authorization` header: every
/// HTTP function answers it without touching a table (401 on a known route,
/// 404 elsewhere).
pub fn unauthenticated_http_event(path: &str) -> String {
    serde_json::json!({
        "version": "2.0", "routeKey": "$default", "rawPath": path,
        "rawQueryString": "", "headers": {"content-type": "application/json"},
        "requestContext": {"accountId": "1", "apiId": "local", "domainName": "local",
            "domainPrefix": "local", "http": {"method": "GET", "path": path,
            "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "medkit-test"},
            "requestId": "r", "routeKey": "$default", "stage": "$default",
            "time": "01/Jan/2026:00:00:00 +0000", "timeEpoch": 0},
        "isBase64Encoded": false
    })
    .to_string()
}

/// Test: the bootstrap exits at init, non-zero, with output naming `var`,
/// when `var` is missing (`value` None) or set to `value`; never a panic.
pub fn assert_init_fails_naming(
    stub: &RuntimeStub,
    bootstrap: &std::path::Path,
    var: &str,
    value: Option<&str>,
) {
    let mut cmd = stub.command(bootstrap);
    cmd.envs(medkit_env().into_iter().filter(|(k, _)| *k != var));
    if let Some(v) = value {
        cmd.env(var, v);
    }
    let (code, out) = run_to_exit(cmd, Duration::from_secs(20));
    assert!(
        matches!(code, Some(c) if c != 0),
        "{var}: exit {code:?}: {out}"
    );
    assert!(out.contains(var), "{var} is not named: {out}");
    assert!(
        !out.contains("panicked"),
        "{var}: a panic, not an init error: {out}"
    );
}

/// Test: each malformed event becomes an invocation error (with
/// `errorType` and `errorMessage`) and the valid event after them is still
/// answered; returns that answer.
pub async fn assert_survives_malformed(
    stub: &RuntimeStub,
    bootstrap: &std::path::Path,
    malformed: &[&str],
    valid: String,
) -> Outcome {
    let mut cmd = stub.command(bootstrap);
    cmd.envs(medkit_env())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let _function = Running(cmd.spawn().expect("spawn the bootstrap"));
    let bad: Vec<String> = malformed.iter().map(|m| stub.push(m.to_string())).collect();
    let good = stub.push(valid);
    let wait = Duration::from_secs(20);
    for id in &bad {
        match stub.outcome(id, wait).await {
            Some(o @ Outcome::Error { .. }) => {
                let body = o.body_json();
                assert!(body["errorType"].is_string(), "{body}");
                assert!(body["errorMessage"].is_string(), "{body}");
            }
            other => panic!("{id}: expected an invocation error, got {other:?}"),
        }
    }
    match stub.outcome(&good, wait).await {
        Some(o @ Outcome::Response { .. }) => o,
        other => panic!("the function stopped serving: {other:?}"),
    }
}
