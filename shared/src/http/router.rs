//! What every function's router is wrapped in: CORS, the body limit, JSON
//! 404/405, and one log line per request.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request};
use axum::http::{Method, header};
use axum::response::Response;
use tower::{Layer, Service};
use tower_http::cors::{Any, CorsLayer};

use crate::error::ApiError;

/// Cap on any request body. Stores allow 500 KB of JSON; leave room for whitespace.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
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
