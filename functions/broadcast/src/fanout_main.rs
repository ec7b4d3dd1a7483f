//! Lambda entry point of the fan-out worker: DynamoDB stream events of the
//! connections table (job items only, by the event source mapping's filter).
#![recursion_limit = "256"]

use medkit::config::ENV_WS_ENDPOINT;

#[tokio::main]
async fn main() -> Result<(), medkit::lambda::Error> {
    // The one function that posts relay jobs to Twitch.
    medkit::lambda::run_events_with(
        &[ENV_WS_ENDPOINT],
        None,
        medkit::lambda::HELIX,
        medkit_broadcast::worker::invocation,
    )
    .await
}
