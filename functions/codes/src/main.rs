//! Lambda entry point of the `codes` function: build the app once at init, then
//! serve API Gateway HTTP API events with the function's axum router.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    medkit::logging::init_json();
    let app = medkit::app::from_env()
        .await
        .inspect_err(|e| tracing::error!(error = %e, "init failed"))?;
    lambda_http::run(medkit_codes::router(app)).await
}
