//! A stand-in for Helix's Send Extension PubSub Message on loopback (the
//! Twitch relay's tests): it checks every request as Twitch documents it and
//! records what it accepted.
//!
//! - `Client-Id` names the extension; `Authorization: Bearer <JWT>` is
//!   signed HS256 with its secret, unexpired, role `external`, `user_id` the
//!   owner's, `channel_id` the body's `broadcaster_id` (`all` for a global
//!   message), `pubsub_perms.send` naming the target.
//! - The body has exactly `target` (one of `broadcast`, `global`,
//!   `whisper-<id>`), `broadcaster_id` (unless global), `is_global_broadcast`
//!   (true only for `global`) and `message`, a string of at most 5 KB.
//! - 100 messages per minute per channel (and per extension for global):
//!   past that, 429 with `Ratelimit-Reset`.
//! - [`HelixStandIn::fail_next`] makes the next answers fail (429, 500, 503).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};

/// One message Helix accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Accepted {
    /// `broadcast`, `global` or `whisper-<id>`.
    pub target: String,
    /// None for a global message.
    pub channel: Option<String>,
    pub message: String,
    /// When it was accepted (latency figures).
    pub at: std::time::Instant,
}

#[derive(Default)]
struct Seen {
    accepted: Vec<Accepted>,
    /// Every answer, in order: the status.
    answers: Vec<u16>,
    /// Refusals: status and reason.
    refusals: Vec<(u16, String)>,
    faults: VecDeque<u16>,
    /// Messages per (channel or `all`, minute).
    counts: HashMap<(String, i64), u32>,
}

struct Config {
    client_id: String,
    owner: String,
    key: DecodingKey,
}

#[derive(Clone)]
pub struct HelixStandIn {
    /// `http://127.0.0.1:<port>/helix`: what `--helix-url` takes.
    pub base: String,
    seen: Arc<Mutex<Seen>>,
}

type Shared = (Arc<Config>, Arc<Mutex<Seen>>);

impl HelixStandIn {
    /// Serves on a free loopback port for extension `client_id` (raw
    /// `secret`) owned by `owner`.
    pub async fn start(client_id: &str, secret: &[u8], owner: &str) -> Self {
        let config = Arc::new(Config {
            client_id: client_id.into(),
            owner: owner.into(),
            key: DecodingKey::from_secret(secret),
        });
        let seen = Arc::new(Mutex::new(Seen::default()));
        let app = Router::new()
            .route("/helix/extensions/pubsub", post(pubsub))
            .with_state((config, seen.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        HelixStandIn {
            base: format!("http://{addr}/helix"),
            seen,
        }
    }

    /// The next answers are these statuses, whatever the request.
    pub fn fail_next(&self, statuses: &[u16]) {
        self.seen.lock().unwrap().faults.extend(statuses);
    }

    /// Whether answers are still queued to fail.
    pub fn failing(&self) -> bool {
        !self.seen.lock().unwrap().faults.is_empty()
    }

    pub fn accepted(&self) -> Vec<Accepted> {
        self.seen.lock().unwrap().accepted.clone()
    }

    /// Every status answered, in order.
    pub fn answers(&self) -> Vec<u16> {
        self.seen.lock().unwrap().answers.clone()
    }

    pub fn refusals(&self) -> Vec<(u16, String)> {
        self.seen.lock().unwrap().refusals.clone()
    }

    /// Waits (at most `secs`) until `n` messages were accepted.
    pub async fn wait_for(&self, n: usize, secs: u64) -> Vec<Accepted> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        loop {
            let got = self.accepted();
            if got.len() >= n || std::time::Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

async fn pubsub(
    State((config, seen)): State<Shared>,
    headers: HeaderMap,
    body: String,
) -> Response {
    let mut seen = seen.lock().unwrap();
    let injected = seen.faults.pop_front();
    let (status, reason) = match injected {
        Some(fault) => (fault, "injected".to_string()),
        None => match check(&config, &headers, &body) {
            Err((status, reason)) => (status, reason),
            Ok(accepted) => {
                let now = crate::clock::now_secs();
                let bucket = (
                    accepted.channel.clone().unwrap_or_else(|| "all".into()),
                    now / 60,
                );
                let count = seen.counts.entry(bucket).or_default();
                if *count >= 100 {
                    (429, "rate limited".to_string())
                } else {
                    *count += 1;
                    seen.accepted.push(accepted);
                    (204, String::new())
                }
            }
        },
    };
    seen.answers.push(status);
    let code = StatusCode::from_u16(status).unwrap();
    if status == 204 {
        return code.into_response();
    }
    seen.refusals.push((status, reason.clone()));
    let body = json!({"error": code.canonical_reason(), "status": status, "message": reason});
    let mut response = (
        code,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response();
    if status == 429 {
        // An injected throttle lifts in a second; the real limit at the
        // next minute.
        let now = crate::clock::now_secs();
        let reset = if injected.is_some() {
            now + 1
        } else {
            (now / 60 + 1) * 60
        };
        response
            .headers_mut()
            .insert("ratelimit-reset", reset.to_string().parse().unwrap());
    }
    response
}

fn check(config: &Config, headers: &HeaderMap, body: &str) -> Result<Accepted, (u16, String)> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if header("client-id") != Some(config.client_id.as_str()) {
        return Err((401, "Client-Id header is missing or wrong".into()));
    }
    if !header("content-type").is_some_and(|c| c.starts_with("application/json")) {
        return Err((400, "Content-Type must be application/json".into()));
    }
    let jwt = header("authorization")
        .and_then(|a| a.strip_prefix("Bearer "))
        .ok_or((401, "missing bearer token".to_string()))?;
    crate::hs256::install();
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_required_spec_claims(&["exp"]);
    validation.validate_aud = false;
    let claims = jsonwebtoken::decode::<Value>(jwt, &config.key, &validation)
        .map_err(|e| (401, format!("invalid JWT: {e}")))?
        .claims;
    if claims["role"] != "external" {
        return Err((401, "role must be external".into()));
    }
    if claims["user_id"] != config.owner.as_str() {
        return Err((401, "user_id is not the extension owner".into()));
    }
    let body: Value =
        serde_json::from_str(body).map_err(|_| (400, "body is not JSON".to_string()))?;
    let obj = body
        .as_object()
        .ok_or((400, "body is not an object".to_string()))?;
    let allowed = ["target", "broadcaster_id", "is_global_broadcast", "message"];
    if let Some(k) = obj.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err((400, format!("unknown field {k}")));
    }
    let target = match body["target"].as_array().map(Vec::as_slice) {
        Some([Value::String(t)]) => t.clone(),
        _ => return Err((400, "target must hold exactly one topic".into())),
    };
    let valid_target = target == "broadcast"
        || target == "global"
        || target
            .strip_prefix("whisper-")
            .is_some_and(|id| !id.is_empty());
    if !valid_target {
        return Err((400, format!("unknown target {target}")));
    }
    let global = body["is_global_broadcast"]
        .as_bool()
        .ok_or((400, "is_global_broadcast must be a boolean".to_string()))?;
    if global != (target == "global") {
        return Err((
            400,
            "is_global_broadcast is true exactly for target global".into(),
        ));
    }
    let channel = match (&body["broadcaster_id"], global) {
        (Value::Null, true) => None,
        (Value::String(ch), false) if !ch.is_empty() => Some(ch.clone()),
        _ => return Err((400, "broadcaster_id is required unless global".into())),
    };
    let expected = channel.as_deref().unwrap_or("all");
    if claims["channel_id"] != expected {
        return Err((401, "channel_id does not match broadcaster_id".into()));
    }
    if !claims["pubsub_perms"]["send"]
        .as_array()
        .is_some_and(|s| s.iter().any(|t| t == target.as_str()))
    {
        return Err((401, format!("pubsub_perms.send does not allow {target}")));
    }
    let message = body["message"]
        .as_str()
        .ok_or((400, "message must be a string".to_string()))?;
    if message.len() > 5 * 1024 {
        return Err((422, "message is over 5 KB".into()));
    }
    Ok(Accepted {
        target,
        channel,
        message: message.to_string(),
        at: std::time::Instant::now(),
    })
}
