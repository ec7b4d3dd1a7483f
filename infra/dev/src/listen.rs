//! The dev server's HTTP listener: every connection gets a deadline for its
//! request headers (which also ends idle keep-alive connections), every
//! request one for its whole exchange (a 408 past it), and every request
//! the peer's address (`ConnectInfo`). `axum::serve` offers none of the
//! timeouts, so connections are served with hyper directly.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use medkit::error::ApiError;
use tower::ServiceExt;

/// Largest request head (request line and headers) accepted.
const MAX_HEAD_BYTES: usize = 64 * 1024;

pub struct Timeouts {
    pub header: Duration,
    pub request: Duration,
}

/// Serves `router` on `listener` until Ctrl-C.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    timeouts: Timeouts,
) -> Result<(), String> {
    let router = router.layer(middleware::from_fn_with_state(timeouts.request, within));
    let shutdown = tokio::signal::ctrl_c();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    continue;
                }
            },
            _ = &mut shutdown => return Ok(()),
        };
        let service = router.clone().map_request(move |mut req: Request<_>| {
            req.extensions_mut().insert(ConnectInfo(peer));
            req
        });
        let header = timeouts.header;
        tokio::spawn(async move {
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(header)
                .max_buf_size(MAX_HEAD_BYTES);
            let io = TokioIo::new(stream);
            let served = builder
                .serve_connection_with_upgrades(io, TowerToHyperService::new(service))
                .await;
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
        });
    }
}

/// 408 when a request (reading its body included) takes longer than `limit`.
async fn within(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(res) => res,
        Err(_) => ApiError::RequestTimeout.into_response(),
    }
}

/// Whether a peer may use the emulated Management API (API Gateway's
/// trusts its IAM-signed callers; this one trusts this machine only).
pub fn is_local(peer: &SocketAddr) -> bool {
    peer.ip().is_loopback()
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_loopback_peers_are_local() {
        for (addr, local) in [
            ("127.0.0.1:9", true),
            ("127.8.9.10:9", true),
            ("[::1]:9", true),
            ("10.0.0.5:9", false),
            ("192.168.1.2:9", false),
            ("[2001:db8::1]:9", false),
        ] {
            assert_eq!(super::is_local(&addr.parse().unwrap()), local, "{addr}");
        }
    }
}
