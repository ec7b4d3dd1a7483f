//! Lambda entry point of the timers function: SQS events of the timers
//! queue (template.yaml), each message a timer that is due.

use medkit::config::ENV_TIMERS_QUEUE_URL;

#[tokio::main]
async fn main() -> Result<(), medkit::lambda::Error> {
    medkit::lambda::run_events(
        &[ENV_TIMERS_QUEUE_URL],
        medkit::lambda::SQS_TIMERS,
        medkit_aggregate::timers::invocation,
    )
    .await
}
