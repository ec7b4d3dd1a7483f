//! Lambda entry point of the `aggregate` function: the app from the environment,
//! then API Gateway HTTP API events through the function's router.

#[tokio::main]
async fn main() -> Result<(), medkit::lambda::Error> {
    medkit::lambda::run_http_with(&[], medkit::lambda::SQS_TIMERS, medkit_aggregate::router).await
}
