//! Lambda entry point of the `broadcast` function: the broadcast endpoints on
//! API Gateway HTTP API events. Needs `MEDKIT_WS_ENDPOINT` (the WebSocket
//! stage's Management API) and fails at init naming it when absent.
#![recursion_limit = "256"]

use medkit::config::{ENV_WS_ENDPOINT, require_set};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    medkit::logging::init_json();
    require_set(ENV_WS_ENDPOINT).inspect_err(|e| tracing::error!(error = %e, "init failed"))?;
    let app = medkit::app::from_env()
        .await
        .inspect_err(|e| tracing::error!(error = %e, "init failed"))?;
    lambda_http::run(medkit_broadcast::router(app)).await
}
