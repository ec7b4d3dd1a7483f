//! The fan-out worker's event source mapping, run locally: DynamoDB Local's
//! stream of the connections table → [`crate::worker::handle`], with the
//! semantics Lambda gives the mapping declared in `template.yaml`
//! ([`Mapping::TEMPLATE`]; a test checks the two agree):
//!
//! - only new job items pass the filter (`INSERT` with a string `fr`);
//! - batches of [`Mapping::batch_size`] records; a shard's records are
//!   split over [`Mapping::parallelization`] lanes by partition key, each
//!   lane in order (Lambda's `ParallelizationFactor`: in order per key);
//! - a record reported in `batchItemFailures`, or whose invocation died, is
//!   retried up to [`Mapping::max_retry_attempts`] times; a record older
//!   than [`Mapping::max_record_age_secs`] is not invoked; either way it
//!   then goes to the on-failure destination ([`Destination`]).
//!
//! `medkit serve --fanout stream` runs it; tests and the failure-injection
//! benchmark drive it on DynamoDB Local. Built only with the `local-mapping`
//! feature: no Lambda links it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_dynamodbstreams::Client;
use aws_sdk_dynamodbstreams::error::ProvideErrorMetadata;
use aws_sdk_dynamodbstreams::types::{AttributeValue, Record, ShardIteratorType};
use bytes::Bytes;
use medkit::app::SharedApp;
use medkit::delivery::{PostFuture, Poster};
use medkit::ids::ConnectionId;
use medkit::store::ConnectionStore;
use medkit::store::dynamo::stream::StreamEvent;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

/// The event source mapping's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mapping {
    pub batch_size: usize,
    pub parallelization: usize,
    pub max_retry_attempts: u32,
    pub max_record_age_secs: i64,
}

impl Mapping {
    /// What template.yaml declares for the fan-out function's `Jobs` event.
    pub const TEMPLATE: Mapping = Mapping {
        batch_size: 1,
        parallelization: 10,
        max_retry_attempts: 2,
        max_record_age_secs: 60,
    };
}

/// A record the mapping gave up on, as the on-failure destination (an SQS
/// queue in AWS) receives it: why, and where it was on the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedRecord {
    pub reason: &'static str,
    pub sequence_number: String,
    pub partition_key: String,
    pub invocations: u32,
}

/// The on-failure destination: records kept for inspection (the dev server
/// shows them at `GET /dev/fanout-failures`) and logged.
#[derive(Debug, Default)]
pub struct Destination {
    records: Mutex<Vec<FailedRecord>>,
}

impl Destination {
    pub fn records(&self) -> Vec<FailedRecord> {
        self.records.lock().unwrap().clone()
    }

    fn push(&self, r: FailedRecord) {
        tracing::error!(reason = r.reason, sequence = %r.sequence_number, invocations = r.invocations, "fan-out record sent to the on-failure destination");
        self.records.lock().unwrap().push(r);
    }
}

/// Counts what the mapping did (for tests and the benchmark).
#[derive(Debug, Default)]
pub struct Counters {
    pub invocations: std::sync::atomic::AtomicU64,
    pub retries: std::sync::atomic::AtomicU64,
    pub crashed: std::sync::atomic::AtomicU64,
}

/// Makes invocations die part-way, as a timed-out or out-of-memory worker
/// does: once [`tripped`](Self::trip), the running invocation is dropped
/// where it stands (what it posted stays posted; nothing after returns) and
/// the mapping retries its batch.
#[derive(Debug, Default)]
pub struct KillSwitch {
    notify: tokio::sync::Notify,
    dead: std::sync::atomic::AtomicBool,
}

impl KillSwitch {
    pub fn trip(&self) {
        self.dead.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    fn is_dead(&self) -> bool {
        self.dead.load(Ordering::SeqCst)
    }

    /// A new invocation starts alive.
    fn revive(&self) {
        self.dead.store(false, Ordering::SeqCst);
    }
}

/// A poster that trips a [`KillSwitch`] once, right after its `after`-th
/// post: the invocation making it dies part-way through its recipients.
pub struct CrashAfter {
    inner: Arc<dyn Poster>,
    after: usize,
    posts: AtomicUsize,
    kill: Arc<KillSwitch>,
}

impl CrashAfter {
    pub fn new(inner: Arc<dyn Poster>, after: usize, kill: Arc<KillSwitch>) -> Self {
        CrashAfter {
            inner,
            after,
            posts: AtomicUsize::new(0),
            kill,
        }
    }
}

impl Poster for CrashAfter {
    fn post<'a>(&'a self, id: &'a ConnectionId, frame: &'a Bytes) -> PostFuture<'a> {
        Box::pin(async move {
            let r = self.inner.post(id, frame).await;
            if self.posts.fetch_add(1, Ordering::SeqCst) + 1 == self.after {
                self.kill.trip();
            } else if self.kill.is_dead() {
                // The process is gone: this post's answer is never seen.
                std::future::pending::<()>().await;
            }
            r
        })
    }
    fn close<'a>(&'a self, id: &'a ConnectionId) -> PostFuture<'a> {
        self.inner.close(id)
    }
}

/// Everything one run of the mapping needs.
pub struct Runner<S> {
    pub app: SharedApp<S>,
    pub streams: Client,
    pub stream_arn: String,
    pub mapping: Mapping,
    pub destination: Arc<Destination>,
    pub counters: Arc<Counters>,
    pub kill: Arc<KillSwitch>,
    /// When it was made (seconds): see `read_shard`.
    pub started_at: i64,
}

/// How often an idle shard is read again.
const POLL_EVERY: Duration = Duration::from_millis(50);
/// How often the stream is described for new shards.
const DESCRIBE_EVERY: Duration = Duration::from_secs(2);

impl<S: ConnectionStore> Runner<S> {
    /// Starts reading the stream from its current end: returns once every
    /// open shard has an iterator (so nothing written afterwards is missed),
    /// with the task that goes on reading (abort it to stop). Shards that
    /// appear later are read from their start.
    pub async fn start(self) -> Result<tokio::task::JoinHandle<()>, String> {
        let me = Arc::new(self);
        let lanes: Arc<Vec<mpsc::UnboundedSender<Record>>> = Arc::new(
            (0..me.mapping.parallelization)
                .map(|_| {
                    let (tx, rx) = mpsc::unbounded_channel();
                    tokio::spawn(me.clone().lane(rx));
                    tx
                })
                .collect(),
        );
        let mut known: HashSet<String> = HashSet::new();
        for shard in me.shards().await? {
            let it = me.iterator(&shard, ShardIteratorType::Latest).await?;
            tokio::spawn(me.clone().read_shard(shard.clone(), it, lanes.clone()));
            known.insert(shard);
        }
        Ok(tokio::spawn(async move {
            loop {
                tokio::time::sleep(DESCRIBE_EVERY).await;
                let shards = match me.shards().await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot describe the jobs stream");
                        continue;
                    }
                };
                for shard in shards {
                    if known.contains(&shard) {
                        continue;
                    }
                    match me.iterator(&shard, ShardIteratorType::TrimHorizon).await {
                        Ok(it) => {
                            tokio::spawn(me.clone().read_shard(shard.clone(), it, lanes.clone()));
                            known.insert(shard);
                        }
                        Err(e) => tracing::warn!(shard, error = %e, "cannot read a stream shard"),
                    }
                }
            }
        }))
    }

    async fn iterator(
        &self,
        shard: &str,
        start: ShardIteratorType,
    ) -> Result<Option<String>, String> {
        self.streams
            .get_shard_iterator()
            .stream_arn(&self.stream_arn)
            .shard_id(shard)
            .shard_iterator_type(start)
            .send()
            .await
            .map(|o| o.shard_iterator().map(str::to_string))
            .map_err(|e| aws_sdk_dynamodbstreams::error::DisplayErrorContext(&e).to_string())
    }

    async fn shards(&self) -> Result<Vec<String>, String> {
        let out = self
            .streams
            .describe_stream()
            .stream_arn(&self.stream_arn)
            .send()
            .await
            .map_err(|e| aws_sdk_dynamodbstreams::error::DisplayErrorContext(&e).to_string())?;
        Ok(out
            .stream_description()
            .map(|d| {
                d.shards()
                    .iter()
                    .filter_map(|s| s.shard_id().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default())
    }

    async fn read_shard(
        self: Arc<Self>,
        shard: String,
        mut iterator: Option<String>,
        lanes: Arc<Vec<mpsc::UnboundedSender<Record>>>,
    ) {
        // Records written before the mapping started are not its to deliver
        // (a restart on an old table); they are skipped when a shard has to
        // be read again from its start.
        let mut skip_before: Option<i64> = None;
        while let Some(it) = iterator {
            let out = match self.streams.get_records().shard_iterator(&it).send().await {
                Ok(o) => o,
                Err(e) => {
                    let code = e.code().unwrap_or("unknown").to_string();
                    tokio::time::sleep(POLL_EVERY * 4).await;
                    // DynamoDB Local can refuse a LATEST iterator taken on an
                    // empty shard as trimmed; an iterator also expires after
                    // 15 minutes. Either way: read again from the start.
                    if code == "TrimmedDataAccessException" || code == "ExpiredIteratorException" {
                        skip_before = Some(self.started_at);
                        match self.iterator(&shard, ShardIteratorType::TrimHorizon).await {
                            Ok(fresh) => iterator = fresh,
                            Err(e) => {
                                tracing::warn!(shard, error = %e, "cannot read a stream shard again");
                                iterator = Some(it);
                            }
                        }
                    } else {
                        tracing::warn!(shard, code, "cannot read stream records; trying again");
                        iterator = Some(it);
                    }
                    continue;
                }
            };
            let records = out.records();
            // By the job's own send time: the stream's creation time may be
            // rounded down to the minute.
            let fresh =
                |r: &&Record| skip_before.is_none_or(|t| sent_secs(r).is_none_or(|c| c >= t));
            for record in records.iter().filter(|r| passes_filter(r)).filter(fresh) {
                let lane = lane_of(&partition_key(record), lanes.len());
                let _ = lanes[lane].send(record.clone());
            }
            if records.is_empty() {
                tokio::time::sleep(POLL_EVERY).await;
            }
            iterator = out.next_shard_iterator().map(str::to_string);
        }
    }

    /// One lane: its records in order, each invoked until it succeeds or
    /// the mapping gives up on it.
    async fn lane(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<Record>) {
        let batch = self.mapping.batch_size.max(1);
        let mut pending: Vec<Record> = Vec::new();
        while let Some(first) = rx.recv().await {
            pending.push(first);
            while pending.len() < batch
                && let Ok(more) = rx.try_recv()
            {
                pending.push(more);
            }
            for chunk in std::mem::take(&mut pending).chunks(batch) {
                self.deliver_batch(chunk.to_vec()).await;
            }
        }
    }

    async fn deliver_batch(&self, mut batch: Vec<Record>) {
        use std::sync::atomic::Ordering::Relaxed;
        let now = medkit::clock::now_secs();
        batch.retain(|r| {
            let age = now - created_secs(r).unwrap_or(now);
            if age > self.mapping.max_record_age_secs {
                self.destination
                    .push(failed(r, "record older than the maximum age", 0));
                return false;
            }
            true
        });
        let mut invocations = 0;
        while !batch.is_empty() {
            invocations += 1;
            self.counters.invocations.fetch_add(1, Relaxed);
            let event = match lambda_event(&batch) {
                Ok(e) => e,
                Err(e) => {
                    tracing::error!(error = %e, "a stream record does not make a Lambda event");
                    return;
                }
            };
            self.kill.revive();
            let outcome = tokio::select! {
                r = crate::worker::handle(&self.app, event) => Some(r),
                _ = self.kill.notify.notified() => None,
            };
            let retry: Vec<Record> = match outcome {
                Some(response) => {
                    let failed: HashSet<String> = response
                        .batch_item_failures
                        .into_iter()
                        .map(|f| f.item_identifier)
                        .collect();
                    // Lambda retries from the first failed record on.
                    match batch.iter().position(|r| failed.contains(&sequence(r))) {
                        Some(i) => batch.split_off(i),
                        None => Vec::new(),
                    }
                }
                None => {
                    self.counters.crashed.fetch_add(1, Relaxed);
                    tracing::warn!("fan-out invocation died; its batch is retried");
                    batch.clone()
                }
            };
            if retry.is_empty() {
                return;
            }
            if invocations > self.mapping.max_retry_attempts {
                for r in &retry {
                    self.destination
                        .push(failed(r, "retries exhausted", invocations));
                }
                return;
            }
            self.counters.retries.fetch_add(1, Relaxed);
            tokio::time::sleep(Duration::from_millis(200 * u64::from(invocations))).await;
            batch = retry;
        }
    }
}

/// The template's filter: `{"eventName": ["INSERT"], "dynamodb": {"NewImage":
/// {"fr": {"S": [{"exists": true}]}}}}`.
fn passes_filter(r: &Record) -> bool {
    let insert = r.event_name().map(|e| e.as_str()) == Some("INSERT");
    let frame = r
        .dynamodb()
        .and_then(|d| d.new_image())
        .and_then(|i| i.get(medkit::store::dynamo::connections::JOB_FRAME))
        .is_some_and(|v| v.is_s());
    insert && frame
}

fn partition_key(r: &Record) -> String {
    r.dynamodb()
        .and_then(|d| d.keys())
        .and_then(|k| k.get("pk"))
        .and_then(|v| v.as_s().ok())
        .cloned()
        .unwrap_or_default()
}

fn sequence(r: &Record) -> String {
    r.dynamodb()
        .and_then(|d| d.sequence_number())
        .unwrap_or_default()
        .to_string()
}

fn created_secs(r: &Record) -> Option<i64> {
    r.dynamodb()?
        .approximate_creation_date_time()
        .map(|t| t.secs())
}

/// The job's send time (`at`), if it has one.
fn sent_secs(r: &Record) -> Option<i64> {
    r.dynamodb()?
        .new_image()?
        .get(medkit::store::dynamo::connections::JOB_SENT_AT)?
        .as_n()
        .ok()?
        .parse()
        .ok()
}

fn lane_of(key: &str, lanes: usize) -> usize {
    (medkit::hash::stable_hash(key) as usize) % lanes.max(1)
}

fn failed(r: &Record, reason: &'static str, invocations: u32) -> FailedRecord {
    FailedRecord {
        reason,
        sequence_number: sequence(r),
        partition_key: partition_key(r),
        invocations,
    }
}

/// The records as Lambda hands them to the function (`Records`, each with
/// `eventName` and `dynamodb` {`Keys`, `NewImage`, `SequenceNumber`}),
/// parsed by the worker's own event type.
fn lambda_event(batch: &[Record]) -> Result<StreamEvent, serde_json::Error> {
    let records: Vec<Value> = batch
        .iter()
        .map(|r| {
            let d = r.dynamodb();
            json!({
                "eventName": r.event_name().map(|e| e.as_str()),
                "eventSource": "aws:dynamodb",
                "dynamodb": {
                    "Keys": d.and_then(|d| d.keys()).map(image),
                    "NewImage": d.and_then(|d| d.new_image()).map(image),
                    "SequenceNumber": d.and_then(|d| d.sequence_number()),
                    "StreamViewType": "NEW_IMAGE",
                },
            })
        })
        .collect();
    serde_json::from_value(json!({ "Records": records }))
}

fn image(attrs: &HashMap<String, AttributeValue>) -> Value {
    Value::Object(
        attrs
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), attribute(v)?)))
            .collect::<Map<_, _>>(),
    )
}

fn attribute(v: &AttributeValue) -> Option<Value> {
    Some(match v {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        AttributeValue::Ss(ss) => json!({ "SS": ss }),
        AttributeValue::Ns(ns) => json!({ "NS": ns }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::Mapping;

    /// The local mapping runs with what template.yaml declares.
    #[test]
    fn the_template_declares_these_mapping_settings() {
        let template = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../template.yaml"),
        )
        .expect("template.yaml at the workspace root");
        let jobs = template
            .split("        Jobs:\n")
            .nth(1)
            .expect("the fan-out function's Jobs event");
        let m = Mapping::TEMPLATE;
        for line in [
            format!("BatchSize: {}", m.batch_size),
            format!("ParallelizationFactor: {}", m.parallelization),
            format!("MaximumRetryAttempts: {}", m.max_retry_attempts),
            format!("MaximumRecordAgeInSeconds: {}", m.max_record_age_secs),
        ] {
            assert!(
                jobs.contains(&line),
                "template.yaml's Jobs mapping lacks {line}"
            );
        }
        assert!(
            m.max_record_age_secs == medkit::realtime::job::MAX_EVENT_AGE_SECS,
            "the mapping and the worker drop stale events at the same age"
        );
    }
}
