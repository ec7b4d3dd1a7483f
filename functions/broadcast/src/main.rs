//! Lambda entry point of the `broadcast` function: the broadcast endpoints on
//! API Gateway HTTP API events. Needs `MEDKIT_WS_ENDPOINT` (the WebSocket
//! stage's Management API) and fails at init naming it when absent.
#![recursion_limit = "256"]

use medkit::config::{ConfigError, ENV_WS_ENDPOINT};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    medkit::logging::init_json();
    if std::env::var(ENV_WS_ENDPOINT).map_or(true, |v| v.trim().is_empty()) {
        let e = ConfigError::Missing(ENV_WS_ENDPOINT);
        tracing::error!(error = %e, "init failed");
        return Err(e.into());
    }
    let app = medkit::app::from_env()
        .await
        .inspect_err(|e| tracing::error!(error = %e, "init failed"))?;
    lambda_http::run(medkit_broadcast::router(app)).await
}
