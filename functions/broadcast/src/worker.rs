//! The fan-out worker: delivers the jobs an extension-wide send (or an event
//! notification) queued as items on the connections table. The table's
//! stream, filtered to new job items, invokes it (the event source mapping
//! in template.yaml: batches of one, in order per partition key, so a
//! channel's jobs arrive in send order; see `store::dynamo::connections`).
//!
//! Delivery semantics (README, "Real-time delivery"):
//! - every frame carries its send's id and order (`envelope::Stamp`); the
//!   messenger drops a frame it has seen, and a snapshot older than the
//!   last it showed, so a job retried after its worker died mid-way (time
//!   out, out of memory) shows nothing twice;
//! - recipients whose posts fail get a follow-up job of their own, queued
//!   durably, after 250 ms, 500 ms and 1 s; when the last still fails, the job is
//!   reported in `batchItemFailures`, so the mapping retries it and then
//!   sends it to the on-failure destination (an SQS queue);
//! - a job older than `MAX_EVENT_AGE_SECS` is dropped, not delivered late;
//! - a job whose store query fails is reported for retry; a malformed
//!   record is logged and skipped, as no retry can fix it.

use medkit::app::{App, SharedApp};
use medkit::delivery::fanout::JobOutcome;
use medkit::lambda::{BatchResponse, Handled};
use medkit::realtime::job::JobPart;
use medkit::store::ConnectionStore;
use medkit::store::dynamo::stream::StreamEvent;

/// Delivers every job of one stream batch, concurrently.
pub async fn handle<S: ConnectionStore>(app: &App<S>, event: StreamEvent) -> BatchResponse {
    let runs = event.records.iter().map(|record| async move {
        let Some(job) = record.job() else {
            tracing::warn!(event = ?record.event_name(), "stream record is not a fan-out job; skipped");
            return None;
        };
        let part = job_label(&job.part);
        match app.fanout().work(&job).await {
            Ok(JobOutcome::Delivered(r)) => {
                tracing::info!(client = %job.client_id, part, attempt = job.attempt, sent = r.sent, gone = r.gone, "job delivered");
                None
            }
            Ok(JobOutcome::FollowedUp(r, jobs)) => {
                tracing::warn!(client = %job.client_id, part, attempt = job.attempt, sent = r.sent, gone = r.gone, failed = r.failed, follow_ups = jobs, "some posts failed; follow-up queued");
                None
            }
            Ok(JobOutcome::Exhausted(r)) => {
                tracing::error!(client = %job.client_id, part, attempt = job.attempt, sent = r.sent, failed = r.failed, "posts still failing after every follow-up; handed back for the on-failure destination");
                record.sequence_number().map(str::to_string)
            }
            Ok(JobOutcome::Stale) => {
                tracing::warn!(client = %job.client_id, part, attempt = job.attempt, age = ?job.sent_at.map(|t| medkit::clock::now_secs() - t), "job too old; dropped");
                None
            }
            Err(e) => {
                tracing::warn!(client = %job.client_id, part, error = %e, "job failed; Lambda will retry it");
                record.sequence_number().map(str::to_string)
            }
        }
    });
    BatchResponse::of(futures_util::future::join_all(runs).await)
}

/// One Lambda invocation: [`handle`], logged as route `fanout` with 200 when
/// every job was delivered, 207 when some are handed back for retry.
pub async fn invocation<S: ConnectionStore>(
    app: SharedApp<S>,
    event: StreamEvent,
) -> Handled<BatchResponse> {
    handle(&app, event).await.handled("fanout")
}

/// A job's part for logs (a follow-up's ids are not logged).
fn job_label(part: &JobPart) -> String {
    match part {
        JobPart::Channel(ch) => format!("channel {ch}"),
        JobPart::Shard(n) => format!("shard {n}"),
        JobPart::Retry(ids) => format!("follow-up for {} connections", ids.len()),
        JobPart::Subscribers(sub) => format!("games subscribed to {}", sub.topic),
        JobPart::Twitch(t) => format!("Twitch relay {}", t.encode()),
    }
}
