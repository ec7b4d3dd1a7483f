//! Lambda entry point of the `purchases` function: the app from the
//! environment, then API Gateway HTTP API events through its router.

#[tokio::main]
async fn main() -> Result<(), medkit::lambda::Error> {
    medkit::lambda::run_http(&[], medkit_purchases::router).await
}
