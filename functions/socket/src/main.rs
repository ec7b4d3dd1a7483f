//! Lambda entry point of the `socket` function (API Gateway WebSocket API:
//! `$connect`, `$disconnect`, `$default`). `lambda_http` cannot parse these
//! events, so this is a plain `lambda_runtime` function.
#![recursion_limit = "256"]

use aws_lambda_events::apigw::{ApiGatewayProxyResponse, ApiGatewayWebsocketProxyRequest};
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    medkit::logging::init_json();
    let app = medkit::app::from_env()
        .await
        .inspect_err(|e| tracing::error!(error = %e, "init failed"))?;
    let app = &app;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayWebsocketProxyRequest>| async move {
            let started = std::time::Instant::now();
            let route = event.payload.request_context.route_key.clone();
            let response = medkit_socket::handle(app, event.payload).await;
            let status = u16::try_from(response.status_code).unwrap_or(500);
            let route = route.as_deref().unwrap_or("unknown");
            medkit::logging::invocation(&event.context.request_id, route, status, started);
            Ok::<ApiGatewayProxyResponse, Error>(response)
        },
    ))
    .await
}
