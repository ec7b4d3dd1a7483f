//! Lambda entry point of the `socket` function (API Gateway WebSocket API:
//! `$connect`, `$disconnect`, `$default`). `lambda_http` cannot parse these
//! events, so they come through `lambda_runtime` as they are.
#![recursion_limit = "256"]

#[tokio::main]
async fn main() -> Result<(), medkit::lambda::Error> {
    medkit::lambda::run_events(&[], medkit::lambda::SQS_TIMERS, medkit_socket::invocation).await
}
