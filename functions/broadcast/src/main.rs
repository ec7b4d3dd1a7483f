//! Lambda entry point of the `broadcast` function: the broadcast endpoints on
//! API Gateway HTTP API events. Needs `MEDKIT_WS_ENDPOINT` (the WebSocket
//! stage's Management API) and fails at init naming it when absent.
#![recursion_limit = "256"]

use medkit::config::ENV_WS_ENDPOINT;

#[tokio::main]
async fn main() -> Result<(), medkit::lambda::Error> {
    medkit::lambda::run_http(&[ENV_WS_ENDPOINT], medkit_broadcast::router).await
}
