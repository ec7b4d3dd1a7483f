//! Lambda entry point of the fan-out worker: DynamoDB stream events of the
//! connections table (job items only, by the event source mapping's filter).
#![recursion_limit = "256"]

use lambda_runtime::{Error, LambdaEvent, service_fn};
use medkit::config::{ENV_WS_ENDPOINT, require_set};
use medkit_broadcast::worker::{self, BatchResponse, StreamEvent};

#[tokio::main]
async fn main() -> Result<(), Error> {
    medkit::logging::init_json();
    require_set(ENV_WS_ENDPOINT).inspect_err(|e| tracing::error!(error = %e, "init failed"))?;
    let app = medkit::app::from_env()
        .await
        .inspect_err(|e| tracing::error!(error = %e, "init failed"))?;
    let app = &app;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<StreamEvent>| async move {
            let started = std::time::Instant::now();
            let response = worker::handle(app, event.payload).await;
            // 200 when every job was delivered, 207 when some are handed back for retry.
            let status = if response.batch_item_failures.is_empty() {
                200
            } else {
                207
            };
            medkit::logging::invocation(&event.context.request_id, "fanout", status, started);
            Ok::<BatchResponse, Error>(response)
        },
    ))
    .await
}
