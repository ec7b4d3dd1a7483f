//! The fan-out worker: delivers the jobs an extension-wide send (or an event
//! notification) queued as items on the connections table. The table's
//! stream, filtered to new job items, invokes it; with a batch size of 1 and
//! a parallelisation factor, jobs run in parallel invocations.
//!
//! The DynamoDB adapter decodes each record into a job
//! (`medkit::store::dynamo::stream`). A job whose delivery failed on the
//! store is reported in `batchItemFailures` so Lambda retries it (listeners dedupe identical envelopes for 5 s); a
//! malformed record is logged and skipped, as no retry can fix it.

use medkit::app::{App, SharedApp};
use medkit::lambda::Handled;
use medkit::store::ConnectionStore;
use medkit::store::dynamo::stream::StreamEvent;
use serde::Serialize;

/// The partial-batch response (`ReportBatchItemFailures`).
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct BatchResponse {
    #[serde(rename = "batchItemFailures")]
    pub batch_item_failures: Vec<ItemFailure>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct ItemFailure {
    #[serde(rename = "itemIdentifier")]
    pub item_identifier: String,
}

/// Delivers every job of one stream batch, concurrently.
pub async fn handle<S: ConnectionStore>(app: &App<S>, event: StreamEvent) -> BatchResponse {
    let runs = event.records.iter().map(|record| async move {
        let Some(job) = record.job() else {
            tracing::warn!(event = ?record.event_name(), "stream record is not a fan-out job; skipped");
            return None;
        };
        match app.fanout().run_job(&job).await {
            Ok(report) => {
                tracing::info!(client = %job.client_id, part = ?job.part, sent = report.sent, gone = report.gone, failed = report.failed, "job delivered");
                None
            }
            Err(e) => {
                tracing::warn!(client = %job.client_id, part = ?job.part, error = %e, "job failed; Lambda will retry it");
                record.sequence_number().map(str::to_string)
            }
        }
    });
    let failures = futures_util::future::join_all(runs).await;
    BatchResponse {
        batch_item_failures: failures
            .into_iter()
            .flatten()
            .map(|item_identifier| ItemFailure { item_identifier })
            .collect(),
    }
}

/// One Lambda invocation: [`handle`], logged as route `fanout` with 200 when
/// every job was delivered, 207 when some are handed back for retry.
pub async fn invocation<S: ConnectionStore>(
    app: SharedApp<S>,
    event: StreamEvent,
) -> Handled<BatchResponse> {
    let response = handle(&app, event).await;
    let status = if response.batch_item_failures.is_empty() {
        200
    } else {
        207
    };
    Handled {
        response,
        route: "fanout".into(),
        status,
    }
}
