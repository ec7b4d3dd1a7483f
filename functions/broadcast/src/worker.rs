//! The fan-out worker: delivers the jobs an extension-wide send (or an event
//! notification) queued as items on the connections table. The table's
//! stream, filtered to new job items, invokes it; with a batch size of 1 and
//! a parallelisation factor, jobs run in parallel invocations.
//!
//! Only the few fields the worker needs are parsed from the stream event. A
//! job whose delivery failed on the store is reported in `batchItemFailures`
//! so Lambda retries it (listeners dedupe identical envelopes for 5 s); a
//! malformed record is logged and skipped, as no retry can fix it.

use std::collections::HashMap;

use medkit::app::App;
use medkit::realtime::fanout::Job;
use medkit::store::Store;
use medkit::store::dynamo::connections::job_from_image;
use serde::{Deserialize, Serialize};

#[derive(Debug, Deserialize)]
pub struct StreamEvent {
    #[serde(rename = "Records", default)]
    pub records: Vec<StreamRecord>,
}

#[derive(Debug, Deserialize)]
pub struct StreamRecord {
    #[serde(rename = "eventName", default)]
    pub event_name: Option<String>,
    #[serde(default)]
    pub dynamodb: Option<StreamChange>,
}

#[derive(Debug, Deserialize)]
pub struct StreamChange {
    #[serde(rename = "NewImage", default)]
    pub new_image: Option<HashMap<String, Attribute>>,
    #[serde(rename = "SequenceNumber", default)]
    pub sequence_number: Option<String>,
}

/// A DynamoDB attribute value; only strings are read.
#[derive(Debug, Deserialize)]
pub struct Attribute {
    #[serde(rename = "S", default)]
    pub s: Option<String>,
}

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

fn job_of(record: &StreamRecord) -> Option<Job> {
    if record.event_name.as_deref() != Some("INSERT") {
        return None;
    }
    let image = record.dynamodb.as_ref()?.new_image.as_ref()?;
    let text = |name: &str| image.get(name).and_then(|a| a.s.as_deref());
    job_from_image(text("cl")?, text("sk")?, text("fr")?)
}

/// Delivers every job of one stream batch, concurrently.
pub async fn handle<S: Store>(app: &App<S>, event: StreamEvent) -> BatchResponse {
    let runs = event.records.iter().map(|record| async move {
        let Some(job) = job_of(record) else {
            tracing::warn!(event = ?record.event_name, "stream record is not a fan-out job; skipped");
            return None;
        };
        match app.fanout().run_job(&job).await {
            Ok(report) => {
                tracing::info!(client = %job.client_id, part = ?job.part, sent = report.sent, gone = report.gone, failed = report.failed, "job delivered");
                None
            }
            Err(e) => {
                tracing::warn!(client = %job.client_id, part = ?job.part, error = %e, "job failed; Lambda will retry it");
                record.dynamodb.as_ref()?.sequence_number.clone()
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
