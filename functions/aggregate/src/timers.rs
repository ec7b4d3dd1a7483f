//! The timers function: receives the timers that polls set (a GameLink
//! poll's start and end, a throttled poll's trailing update) from their SQS
//! queue, when SQS's delay has run out, and fires each
//! (`medkit::timers::receive`). A timer due beyond SQS's longest delay goes
//! round the queue again; one that fails on the store is handed back for
//! SQS to deliver again; a body no version can read is logged and dropped.

use medkit::app::SharedApp;
use medkit::lambda::{BatchResponse, Handled};
use medkit::store::{AggregateStore, DocumentStore};
use medkit::timers::{self, Received};
use serde::Deserialize;

/// The part of an SQS event the function reads.
#[derive(Debug, Deserialize)]
pub struct QueueEvent {
    #[serde(rename = "Records", default)]
    pub records: Vec<QueueMessage>,
}

#[derive(Debug, Deserialize)]
pub struct QueueMessage {
    #[serde(rename = "messageId")]
    pub message_id: String,
    #[serde(default)]
    pub body: String,
}

/// Fires every timer of one batch, concurrently.
pub async fn handle<S: DocumentStore + AggregateStore>(
    app: &SharedApp<S>,
    event: QueueEvent,
) -> BatchResponse {
    let runs = event.records.iter().map(|m| async move {
        match timers::receive(app, &m.body).await {
            Ok(Received::Fired) => {
                tracing::info!(message = %m.message_id, "timer fired");
                None
            }
            Ok(Received::Requeued) => {
                tracing::info!(message = %m.message_id, "timer not due yet; queued again");
                None
            }
            Ok(Received::Dropped) => None,
            Err(e) => {
                tracing::warn!(message = %m.message_id, error = %e, "timer failed; SQS will deliver it again");
                Some(m.message_id.clone())
            }
        }
    });
    BatchResponse::of(futures_util::future::join_all(runs).await)
}

/// One Lambda invocation, logged as route `timers`.
pub async fn invocation<S: DocumentStore + AggregateStore>(
    app: SharedApp<S>,
    event: QueueEvent,
) -> Handled<BatchResponse> {
    handle(&app, event).await.handled("timers")
}
