//! Lambda entry point of the `codes` function: the app from the environment,
//! then API Gateway HTTP API events through the function's router.

#[tokio::main]
async fn main() -> Result<(), medkit::lambda::Error> {
    medkit::lambda::run_http(&[], medkit_codes::router).await
}
