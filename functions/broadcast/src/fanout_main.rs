//! Lambda entry point of the fan-out worker: DynamoDB stream events of the
//! connections table (job items only, by the event source mapping's filter).
#![recursion_limit = "256"]

use medkit::config::ENV_WS_ENDPOINT;

#[tokio::main]
async fn main() -> Result<(), medkit::lambda::Error> {
    medkit::lambda::run_events(
        &[ENV_WS_ENDPOINT],
        None,
        medkit_broadcast::worker::invocation,
    )
    .await
}
