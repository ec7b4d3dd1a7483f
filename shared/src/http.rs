//! HTTP plumbing shared by every function's router: the caller extractor, the
//! body-as-JSON extractor (whatever the Content-Type says), lenient query
//! parsing, JSON responses, CORS, limits, 404/405 as JSON, request logs.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, MatchedPath, Request};
use axum::http::{HeaderValue, Method, StatusCode, header, request::Parts};
use axum::response::{IntoResponse, Response};
use serde_json::Value;
use tower::{Layer, Service};
use tower_http::cors::{Any, CorsLayer};

use crate::app::App;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::store::Store;

/// Cap on any request body. Stores allow 500 KB of JSON; leave room for whitespace.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

pub fn json_response(status: StatusCode, body: &Value) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        bytes,
    )
        .into_response()
}

/// A 200 response carrying JSON text as it is (already valid JSON).
pub fn ok_text(json: String) -> Response {
    (
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        json,
    )
        .into_response()
}

/// A 200 JSON response.
pub fn ok(body: Value) -> Response {
    json_response(StatusCode::OK, &body)
}

impl<S: Store> FromRequestParts<Arc<App<S>>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App<S>>) -> Result<Self, ApiError> {
        let header = match parts.headers.get(header::AUTHORIZATION) {
            None => None,
            Some(v) => Some(
                v.to_str()
                    .map_err(|_| ApiError::unauthorized("Authorization header is not text"))?,
            ),
        };
        authenticate(app, header).await
    }
}

/// The caller an `Authorization` value (`<client_id> <jwt>`) proves: the
/// same checks for REST requests and WebSocket connects.
pub async fn authenticate<S: crate::store::AuthStore>(
    app: &App<S>,
    header: Option<&str>,
) -> Result<Caller, ApiError> {
    let mut caller = app.tokens.verify(&app.registry, app.env, header)?;
    if let Some(token_id) = &caller.pin_token {
        // A PIN-issued token acts only once a broadcaster validated its PIN.
        let channel = app
            .store
            .pin_token_channel(&caller.client_id, token_id)
            .await?;
        caller.channel_id = Some(channel.ok_or_else(|| {
            ApiError::unauthorized("this PIN token is not validated yet, or was revoked")
        })?);
    }
    Ok(caller)
}

/// The request body parsed as JSON, whatever the Content-Type (the official
/// client labels JSON bodies as form data).
pub struct JsonBody(pub Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::too_large("the request body is larger than this endpoint accepts")
            } else {
                ApiError::bad_request("could not read the request body")
            }
        })?;
        parse_json(&bytes).map(JsonBody)
    }
}

pub fn parse_json(bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "request body is empty; expected JSON",
        ));
    }
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::bad_request(format!(
            "request body is not valid JSON (line {}, column {})",
            e.line(),
            e.column()
        ))
    })
}

/// Query parameters, parsed leniently: the official client does not encode ids.
pub struct QueryMap(pub HashMap<String, String>);

impl QueryMap {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// A required parameter, 400 when missing or empty.
    pub fn require(&self, name: &str) -> Result<&str, ApiError> {
        self.get(name)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| ApiError::bad_request(format!("query parameter {name} is required")))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for QueryMap {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Ok(QueryMap(parse_query(parts.uri.query().unwrap_or(""))))
    }
}

pub fn parse_query(q: &str) -> HashMap<String, String> {
    q.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

/// Decodes `%XX` escapes; anything malformed is kept as written.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_string())
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

async fn method_not_allowed() -> Response {
    json_response(
        StatusCode::METHOD_NOT_ALLOWED,
        &serde_json::json!({"reason": "method not allowed on this endpoint"}),
    )
}

/// Logs one line per request: Lambda request id, method, route, status,
/// latency, cold start. Never headers,
/// bodies or query strings (tokens and user data stay out of logs). A plain
/// tower layer rather than `middleware::from_fn`, which clones the inner
/// service on every call: when info logs are off it costs nothing.
#[derive(Clone, Copy)]
struct RequestLogLayer;

impl<S> Layer<S> for RequestLogLayer {
    type Service = RequestLog<S>;
    fn layer(&self, inner: S) -> RequestLog<S> {
        RequestLog { inner }
    }
}

#[derive(Clone)]
struct RequestLog<S> {
    inner: S,
}

type LoggedFuture<E> = Pin<Box<dyn Future<Output = Result<Response, E>> + Send>>;

impl<S> Service<Request> for RequestLog<S>
where
    S: Service<Request, Response = Response>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = LoggedFuture<S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let cold_start = crate::logging::cold_start();
        if !tracing::enabled!(tracing::Level::INFO) {
            return Box::pin(self.inner.call(req));
        }
        let started = Instant::now();
        // The Lambda invocation's id (absent on the dev server).
        let request_id = req
            .extensions()
            .get::<lambda_http::Context>()
            .map(|c| c.request_id.clone())
            .unwrap_or_default();
        let method = req.method().clone();
        let route = req
            .extensions()
            .get::<MatchedPath>()
            .map(|p| p.as_str().to_string())
            .unwrap_or_else(|| "unmatched".into());
        let fut = self.inner.call(req);
        Box::pin(async move {
            let res = fut.await?;
            let status = res.status().as_u16();
            let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
            if status >= 500 {
                tracing::warn!(request_id, %method, %route, status, latency_ms, cold_start, "request");
            } else {
                tracing::info!(request_id, %method, %route, status, latency_ms, cold_start, "request");
            }
            Ok(res)
        })
    }
}

pub fn cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(Any)
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .max_age(std::time::Duration::from_secs(86400))
        // Any origin gets the same answer, so caches need no `Vary`.
        .vary([])
}

/// Wraps a function's routes with what every deployment of them needs.
pub fn finish(routes: Router) -> Router {
    routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(RequestLogLayer)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(cors())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_is_parsed_leniently() {
        let q = parse_query("id=my poll&user_ids=a,b,c&x=%41%zz&flag");
        assert_eq!(q["id"], "my poll");
        assert_eq!(q["user_ids"], "a,b,c");
        assert_eq!(q["x"], "A%zz");
        assert_eq!(q["flag"], "");
        assert_eq!(parse_query("start=undefined")["start"], "undefined");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%4"), "%4");
    }

    #[test]
    fn json_body_errors_are_clear() {
        assert!(parse_json(b"").is_err());
        assert!(parse_json(b"  ").is_err());
        let err = parse_json(b"{nope").unwrap_err();
        assert!(matches!(err, ApiError::BadRequest(ref r) if r.contains("not valid JSON")));
        assert_eq!(parse_json(b"[1]").unwrap(), serde_json::json!([1]));
    }
}
