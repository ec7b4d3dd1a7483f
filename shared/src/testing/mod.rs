//! Test support shared by every crate's tests (feature `testing`): stores on
//! fresh tables, apps over them, requests through a router, the sample
//! events, a recording poster, and a stand-in for the Lambda Runtime API.
//!
//! The DynamoDB half runs when `MEDKIT_TEST_DYNAMODB_ENDPOINT` names a
//! DynamoDB Local (the test script starts one). Without it those tests say
//! plainly that they did not run, unless `MEDKIT_REQUIRE_DYNAMODB=1` (CI),
//! where a missing endpoint fails them.

pub mod helix;
pub mod round_trips;
pub mod runtime_stub;

pub use round_trips::{RoundTripCounter, counted_dynamo_store};

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use crate::app::{App, SharedApp};
use crate::auth::{self, Claims, Role};
use crate::delivery::local::{LocalHub, NoPoster};
use crate::delivery::{PostError, PostFuture, Poster};
use crate::env::Env;
use crate::expiry::Expiry;
use crate::ids::{ClientId, ConnectionId};
use crate::registry::Registry;
use crate::store::dynamo::{DynamoStore, Tables};

pub const ENDPOINT_VAR: &str = "MEDKIT_TEST_DYNAMODB_ENDPOINT";
pub const REQUIRE_VAR: &str = "MEDKIT_REQUIRE_DYNAMODB";

/// A DynamoDB store on freshly created tables with a unique prefix, and a
/// counter of its round trips; None (after saying so) when not configured.
pub async fn dynamo_store(test: &str) -> Option<(DynamoStore, RoundTripCounter)> {
    let Some(endpoint) = std::env::var(ENDPOINT_VAR).ok().filter(|e| !e.is_empty()) else {
        if std::env::var(REQUIRE_VAR).is_ok_and(|v| v == "1") {
            panic!("{REQUIRE_VAR}=1 but {ENDPOINT_VAR} is not set");
        }
        eprintln!(
            "DYNAMODB TEST NOT RUN: {test} (set {ENDPOINT_VAR}, or run infra/scripts/test.sh)"
        );
        return None;
    };
    let prefix = format!("t{}-", crate::random::token_id(10));
    let (store, counter) = counted_dynamo_store(&endpoint, Tables::with_prefix(&prefix));
    store
        .ensure_tables()
        .await
        .expect("create test tables in DynamoDB Local");
    counter.reset();
    Some((store, counter))
}

/// `n` letters zlib cannot shrink much (a pseudo-random walk): payloads
/// that must be fragmented rather than compressed.
pub fn incompressible(n: usize) -> String {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            char::from(b'a' + (x % 26) as u8)
        })
        .collect()
}

/// The test extension: client id and raw secret.
pub const CLIENT_ID: &str = "testclient";
pub const SECRET: &[u8] = b"test secret, never used outside tests";

pub fn registry() -> Registry {
    let mut r = Registry::default();
    r.add(ClientId::parse(CLIENT_ID).unwrap(), SECRET);
    r
}

/// An app over `store` with the test extension and an observable event hub.
pub fn app<S>(store: S, env: Env) -> (SharedApp<S>, LocalHub) {
    app_with_poster(store, env, Arc::new(NoPoster))
}

/// A token of the test extension; `user` shares identity when given.
pub fn token(role: Role, channel: &str, user: Option<&str>) -> String {
    sign(auth::claims_for(role, channel, user, 3600))
}

/// Signs arbitrary claims with the test extension's secret.
pub fn sign(claims: Claims) -> String {
    let reg = registry();
    auth::mint(reg.get(CLIENT_ID).unwrap(), claims)
}

/// A JWT of any claims and header `alg`, signed HS256 with `secret` (what
/// Twitch's Bits receipts are; a wrong `alg` or secret forges one).
pub fn sign_json(claims: &Value, alg: &str, secret: &[u8]) -> String {
    use base64::Engine;
    use hmac::{KeyInit, Mac};
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(serde_json::json!({"alg": alg, "typ": "JWT"}).to_string());
    let payload = b64.encode(claims.to_string());
    let signed = format!("{header}.{payload}");
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("any key length");
    mac.update(signed.as_bytes());
    format!("{signed}.{}", b64.encode(mac.finalize().into_bytes()))
}

/// `Authorization` header value for a token of the test extension.
pub fn bearer(token: &str) -> String {
    format!("{CLIENT_ID} {token}")
}

/// One request through a router: status and JSON body (Null when empty).
pub async fn call(
    router: &Router,
    method: Method,
    uri: &str,
    auth: Option<&str>,
    body: Option<&str>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    // The official client labels JSON bodies as form data.
    req = req.header(
        "content-type",
        "application/x-www-form-urlencoded; charset=UTF-8",
    );
    let req = req
        .body(
            body.map(|b| Body::from(b.to_string()))
                .unwrap_or_else(Body::empty),
        )
        .unwrap();
    let res = router.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let is_json = res
        .headers()
        .get("content-type")
        .is_some_and(|v| v == "application/json");
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        assert!(
            is_json,
            "every response body is JSON; got {:?}",
            String::from_utf8_lossy(&bytes)
        );
        serde_json::from_slice(&bytes).unwrap()
    };
    (status, value)
}

/// One request that must succeed (200); its JSON body.
pub async fn ok(
    router: &Router,
    method: Method,
    uri: &str,
    auth: &str,
    body: Option<&str>,
) -> Value {
    let (s, v) = call(router, method, uri, Some(auth), body).await;
    assert_eq!(s, StatusCode::OK, "{uri}: {v}");
    v
}

/// One request that must be refused with `expected` and a reason; the reason.
pub async fn refused(
    router: &Router,
    method: Method,
    uri: &str,
    auth: &str,
    body: Option<&str>,
    expected: StatusCode,
) -> String {
    let (s, v) = call(router, method, uri, Some(auth), body).await;
    reason(s, &v, expected)
}

/// Asserts a 4xx/5xx with a non-empty `reason`, and returns the reason.
pub fn reason(status: StatusCode, body: &Value, expected: StatusCode) -> String {
    assert_eq!(status, expected, "body: {body}");
    let r = body["reason"]
        .as_str()
        .unwrap_or_else(|| panic!("no reason in {body}"));
    assert!(!r.is_empty());
    r.to_string()
}

/// A poster that records every frame it is given (as JSON) and answers 410
/// for the ids in `gone`.
#[derive(Default)]
pub struct RecordingPoster {
    pub delivered: std::sync::Mutex<Vec<(ConnectionId, Value)>>,
    /// The connections it was asked to close, in order.
    pub closed: std::sync::Mutex<Vec<ConnectionId>>,
    pub gone: std::sync::Mutex<std::collections::HashSet<ConnectionId>>,
}

impl RecordingPoster {
    /// What was delivered since the last call.
    pub fn take(&self) -> Vec<(ConnectionId, Value)> {
        std::mem::take(&mut *self.delivered.lock().unwrap())
    }
}

impl Poster for RecordingPoster {
    fn post<'a>(&'a self, id: &'a ConnectionId, frame: &'a bytes::Bytes) -> PostFuture<'a> {
        Box::pin(async move {
            if self.gone.lock().unwrap().contains(id) {
                return Err(PostError::Gone);
            }
            let v = serde_json::from_slice(frame).expect("frames are JSON");
            self.delivered.lock().unwrap().push((id.clone(), v));
            Ok(())
        })
    }

    fn close<'a>(&'a self, id: &'a ConnectionId) -> PostFuture<'a> {
        self.closed.lock().unwrap().push(id.clone());
        Box::pin(async { Ok(()) })
    }
}

/// A timer queue that keeps what it is given, for tests of the Lambda path
/// (where timers go to SQS rather than sleep in process).
#[derive(Default)]
pub struct RecordingTimers {
    pub queued: std::sync::Mutex<Vec<crate::delivery::timers::Due>>,
}

impl RecordingTimers {
    /// What was queued since the last call.
    pub fn take(&self) -> Vec<crate::delivery::timers::Due> {
        std::mem::take(&mut *self.queued.lock().unwrap())
    }
}

impl crate::delivery::timers::TimerQueue for RecordingTimers {
    fn enqueue<'a>(
        &'a self,
        due: &'a crate::delivery::timers::Due,
    ) -> crate::delivery::timers::TimerFuture<'a> {
        self.queued.lock().unwrap().push(due.clone());
        Box::pin(async { Ok(()) })
    }
}

/// Like [`app`], delivering through `poster` (and recording events on the hub).
pub fn app_with_poster<S>(store: S, env: Env, poster: Arc<dyn Poster>) -> (SharedApp<S>, LocalHub) {
    let hub = LocalHub::new();
    let app = Arc::new(App {
        env,
        registry: registry(),
        store,
        notifier: Arc::new(hub.clone()),
        poster,
        expiry: Expiry::default(),
        timers: None,
        tokens: Default::default(),
        relay: None,
    });
    (app, hub)
}

/// The sample extension whose tokens the files in `events/` carry.
pub const SAMPLE_CLIENT_ID: &str = "sample-client";
pub const SAMPLE_SECRET_B64: &str = "c2FtcGxlLWV2ZW50cy1zZWNyZXQtbm90LWZvci1wcm9kdWN0aW9u";

/// An app for running the sample events (sandbox, the sample extension).
pub fn sample_app<S>(store: S) -> SharedApp<S> {
    sample_app_with_poster(store, Arc::new(NoPoster))
}

/// [`sample_app`] delivering through `poster`.
pub fn sample_app_with_poster<S>(store: S, poster: Arc<dyn Poster>) -> SharedApp<S> {
    let registry =
        Registry::parse([format!("{SAMPLE_CLIENT_ID}:{SAMPLE_SECRET_B64}").as_str()]).unwrap();
    Arc::new(App {
        env: Env::Sandbox,
        registry,
        store,
        notifier: Arc::new(LocalHub::new()),
        poster,
        expiry: Expiry::default(),
        timers: None,
        tokens: Default::default(),
        relay: None,
    })
}

/// The Lambda context `invoke` hands the router: request id `test-request-id`.
pub fn invocation_context() -> lambda_http::lambda_runtime::Context {
    let mut ctx = lambda_http::lambda_runtime::Context::default();
    ctx.request_id = "test-request-id".into();
    ctx
}

/// Runs one API Gateway event (JSON text) through `lambda_http`'s adapter —
/// what `lambda_http::run` does with each invocation — and returns the status
/// and the parsed JSON body of the API Gateway response.
pub async fn invoke(router: &Router, event_json: &str) -> (u16, Value) {
    use lambda_http::lambda_runtime::LambdaEvent;
    use lambda_http::request::LambdaRequest;
    let request: LambdaRequest = serde_json::from_str(event_json).expect("an API Gateway event");
    let mut adapter = lambda_http::Adapter::from(router.clone());
    let response = tower::Service::call(
        &mut adapter,
        LambdaEvent::new(request, invocation_context()),
    )
    .await
    .expect("router is infallible");
    let out = serde_json::to_value(&response).unwrap();
    let status = out["statusCode"].as_u64().unwrap() as u16;
    assert_eq!(
        out["headers"]["content-type"], "application/json",
        "responses are JSON: {out}"
    );
    let body = out["body"]
        .as_str()
        .map(|b| serde_json::from_str(b).unwrap())
        .unwrap_or(Value::Null);
    (status, body)
}

/// The sample event files of one function family, in name order.
pub fn sample_events(family: &str) -> Vec<(String, String)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../events")
        .join(family);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect()
}
