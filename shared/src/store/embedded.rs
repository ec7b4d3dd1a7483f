//! Embedded adapter on redb: a file by default (data survives restarts), or in
//! memory for tests and `--memory`. One table of `pk \0 sk` → record, so the
//! key layout mirrors the DynamoDB adapter's. redb runs one write transaction
//! at a time, which makes every read-modify-write here atomic.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde_json::Value;

use super::codec::{self, Encoded};
use super::{
    AggregateStore, AuthStore, ClaimedPin, DocKey, DocumentStore, SINGLE, agg_kinds, auth_keys,
    entry_sk, parse_rank_count_sk, rank_count_sk,
};
use crate::aggregate::AggKey;
use crate::aggregate::accumulate::Entry;
use crate::aggregate::rank::Holder;
use crate::aggregate::vote::{Ballot, BucketedSums, Sums, replace_ballot};
use crate::auth::now_secs;
use crate::codes::{self, CHUNK_CODES, RedeemError, SetInfo, SetUpload, Standing};
use crate::error::{ApiError, StoreError};
use crate::ids::ViewerId;
use crate::ids::{ChannelId, ClientId, UserId};
use crate::store::{CodeStore, Faults, code_keys};

const ITEMS: TableDefinition<&str, &[u8]> = TableDefinition::new("items");

/// A stored record: expiry, a version, and an optional encoded document.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Record {
    pub expires_at: i64,
    pub body: Body,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Body {
    Empty,
    Doc(Encoded),
    Text(String),
    Bytes(Vec<u8>),
}

impl Record {
    fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.expires_at.to_be_bytes().to_vec();
        match &self.body {
            Body::Empty => out.push(0),
            Body::Doc(Encoded::Plain(s)) => {
                out.push(1);
                out.extend_from_slice(s.as_bytes());
            }
            Body::Doc(Encoded::Zlib(b)) => {
                out.push(2);
                out.extend_from_slice(b);
            }
            Body::Text(s) => {
                out.push(3);
                out.extend_from_slice(s.as_bytes());
            }
            Body::Bytes(b) => {
                out.push(4);
                out.extend_from_slice(b);
            }
        }
        out
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, StoreError> {
        let bad = || StoreError::Internal("corrupt embedded record".into());
        if bytes.len() < 9 {
            return Err(bad());
        }
        let expires_at = i64::from_be_bytes(bytes[..8].try_into().map_err(|_| bad())?);
        let rest = &bytes[9..];
        let text = || String::from_utf8(rest.to_vec()).map_err(|_| bad());
        let body = match bytes[8] {
            0 => Body::Empty,
            1 => Body::Doc(Encoded::Plain(text()?)),
            2 => Body::Doc(Encoded::Zlib(rest.to_vec())),
            3 => Body::Text(text()?),
            4 => Body::Bytes(rest.to_vec()),
            _ => return Err(bad()),
        };
        Ok(Record { expires_at, body })
    }

    fn live(self, now: i64) -> Option<Self> {
        (self.expires_at > now).then_some(self)
    }

    fn doc(&self) -> Result<Option<Value>, StoreError> {
        match &self.body {
            Body::Doc(enc) => codec::decode(enc).map(Some),
            _ => Ok(None),
        }
    }
}

fn key(pk: &str, sk: &str) -> String {
    format!("{pk}\0{sk}")
}

fn internal(e: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(e.to_string())
}

#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
    writer: Arc<Writer>,
    faults: Arc<Faults>,
    /// WebSocket connections: in memory, they die with the process.
    live: Arc<super::live::LiveConnections>,
}

/// What a write job hands back after running: called with the outcome of the
/// commit, it delivers the job's result to the waiting request.
type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
type Job = Box<dyn for<'t> FnOnce(&mut Batch<'t>) -> Completion + Send>;

/// What the jobs of one group commit share: the table, and a write-back
/// cache of vote sums. Votes on a hot poll arrive together; each one reads
/// and rewrites the poll's sums, so the batch keeps them decoded and writes
/// each poll's sums once, at commit.
pub(crate) struct Batch<'t> {
    table: redb::Table<'t, &'static str, &'static [u8]>,
    sums: HashMap<String, BucketedSums>,
}

impl Batch<'_> {
    /// Makes sure the sums record `k` is in the cache (decoded once per batch).
    fn load_sums(&mut self, k: &str) -> Result<(), StoreError> {
        if !self.sums.contains_key(k) {
            let sums = get_sums(&self.table, k, i64::MIN)?.unwrap_or_default();
            self.sums.insert(k.to_string(), sums);
        }
        Ok(())
    }

    /// Writes the cached sums back: empty ones are removed.
    fn flush(&mut self) -> Result<(), StoreError> {
        for (k, sums) in self.sums.drain() {
            match sums.0.keys().next_back() {
                Some(latest) => put_record(
                    &mut self.table,
                    &k,
                    &Record {
                        expires_at: *latest,
                        body: Body::Bytes(sums.to_bytes()),
                    },
                )?,
                None => {
                    self.table.remove(k.as_str()).map_err(internal)?;
                }
            }
        }
        Ok(())
    }
}

/// Most write jobs committed together.
const MAX_BATCH: usize = 512;

/// Group commit: one thread owns redb's (single) write transaction and runs
/// every queued write job in it, then commits once for the whole batch. One
/// fsync then covers many requests, so concurrent writers (votes on a hot
/// poll) are not bounded by the disk's sync rate. Each job still sees the
/// writes of the jobs before it, so read-modify-write stays atomic.
struct Writer {
    jobs: Option<std::sync::mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Writer {
    /// The last store handle is gone: let the thread finish its queue and
    /// release the database, so the file can be opened again at once.
    fn drop(&mut self) {
        self.jobs.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Writer {
    fn start(db: Arc<Database>) -> Self {
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let thread = std::thread::Builder::new()
            .name("medkit-redb-writer".into())
            .spawn(move || {
                // Ends when every sender (every store clone) is gone.
                while let Ok(first) = queue.recv() {
                    let mut batch = vec![first];
                    while batch.len() < MAX_BATCH {
                        match queue.try_recv() {
                            Ok(job) => batch.push(job),
                            Err(_) => break,
                        }
                    }
                    commit_batch(&db, batch);
                }
            })
            .expect("spawn the embedded store's writer thread");
        Writer {
            jobs: Some(jobs),
            thread: Some(thread),
        }
    }
}

/// Runs a batch in one transaction. A job that fails must not have written
/// anything (every job validates before it writes), so the others commit.
/// Jobs dropped unrun (the transaction could not start, a job panicked) tell
/// their callers through the closed channel.
fn commit_batch(db: &Database, batch: Vec<Job>) {
    let tx = match db.begin_write() {
        Ok(tx) => tx,
        Err(e) => {
            tracing::error!(cause = %e, "embedded store: cannot begin a write transaction");
            return;
        }
    };
    let mut done: Vec<Completion> = Vec::with_capacity(batch.len());
    {
        let table = match tx.open_table(ITEMS) {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(cause = %e, "embedded store: cannot open the table");
                return;
            }
        };
        let mut batch_state = Batch {
            table,
            sums: HashMap::new(),
        };
        for job in batch {
            let run = std::panic::AssertUnwindSafe(|| job(&mut batch_state));
            match std::panic::catch_unwind(run) {
                Ok(completion) => done.push(completion),
                Err(_) => {
                    tracing::error!("embedded store: a write job panicked; batch abandoned");
                    return;
                }
            }
        }
        if let Err(e) = batch_state.flush() {
            tracing::error!(cause = %e, "embedded store: cannot write vote sums; batch abandoned");
            return;
        }
    }
    let outcome = tx.commit().map_err(internal);
    if let Err(e) = &outcome {
        tracing::error!(cause = %e, "embedded store: commit failed");
    }
    for completion in done {
        completion(outcome.as_ref().map(|_| ()).map_err(internal));
    }
}

impl EmbeddedStore {
    /// Opens (or creates) a database file.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(internal)?;
        }
        let db = Database::create(path).map_err(internal)?;
        Self::init(db)
    }

    /// A fresh store that lives only in memory.
    pub fn in_memory() -> Self {
        let db = Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .expect("in-memory redb");
        Self::init(db).expect("in-memory redb table")
    }

    fn init(db: Database) -> Result<Self, StoreError> {
        let tx = db.begin_write().map_err(internal)?;
        tx.open_table(ITEMS).map_err(internal)?;
        tx.commit().map_err(internal)?;
        let db = Arc::new(db);
        let writer = Arc::new(Writer::start(db.clone()));
        Ok(EmbeddedStore {
            db,
            writer,
            faults: Arc::new(Faults::default()),
            live: Default::default(),
        })
    }

    pub(crate) fn live(&self) -> &super::live::LiveConnections {
        &self.live
    }

    /// Failure injection for tests.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Runs a read-only closure. Inline on the async thread: redb reads are
    /// MVCC snapshots that never wait for a writer and take microseconds,
    /// cheaper than a hop to the blocking pool (measured in BENCHMARKS.md).
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&redb::ReadOnlyTable<&str, &[u8]>) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let tx = self.db.begin_read().map_err(internal)?;
        let table = tx.open_table(ITEMS).map_err(internal)?;
        f(&table)
    }

    /// Runs a closure in the writer's next transaction (group commit) and
    /// returns its result once that transaction is durable. The closure must
    /// not write anything before it can still fail.
    async fn write<T: Send + 'static, E: From<StoreError> + Send + 'static>(
        &self,
        f: impl FnOnce(&mut redb::Table<&str, &[u8]>) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E> {
        self.write_batch(move |b| f(&mut b.table)).await
    }

    /// `write` for jobs that use the batch's vote-sums cache.
    async fn write_batch<T: Send + 'static, E: From<StoreError> + Send + 'static>(
        &self,
        f: impl for<'t> FnOnce(&mut Batch<'t>) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E> {
        let (tx, rx) = tokio::sync::oneshot::channel::<Result<T, E>>();
        let job: Job = Box::new(move |batch| {
            let out = f(batch);
            Box::new(move |commit: Result<(), StoreError>| {
                let result = match (out, commit) {
                    (Ok(v), Ok(())) => Ok(v),
                    (Err(e), _) => Err(e),
                    (Ok(_), Err(e)) => Err(E::from(e)),
                };
                let _ = tx.send(result);
            })
        });
        self.writer
            .jobs
            .as_ref()
            .ok_or_else(|| E::from(internal("the embedded store is closing")))?
            .send(job)
            .map_err(|_| E::from(internal("the embedded store's writer has stopped")))?;
        rx.await
            .map_err(|_| E::from(internal("the write was not completed")))?
    }
}

fn get_record(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    k: &str,
    now: i64,
) -> Result<Option<Record>, StoreError> {
    match table.get(k).map_err(internal)? {
        Some(v) => Ok(Record::from_bytes(v.value())?.live(now)),
        None => Ok(None),
    }
}

fn put_record(
    table: &mut redb::Table<&str, &[u8]>,
    k: &str,
    rec: &Record,
) -> Result<(), StoreError> {
    table
        .insert(k, rec.to_bytes().as_slice())
        .map_err(internal)?;
    Ok(())
}

/// Live keys under `pk`, strictly after `after`, at most `limit`.
fn scan_partition(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    pk: &str,
    after: Option<&str>,
    limit: usize,
    now: i64,
) -> Result<Vec<(String, Record)>, StoreError> {
    let prefix = format!("{pk}\0");
    let start = key(pk, after.unwrap_or(""));
    let mut out = Vec::new();
    for entry in table.range(start.as_str()..).map_err(internal)? {
        let (k, v) = entry.map_err(internal)?;
        let Some(sk) = k.value().strip_prefix(prefix.as_str()) else {
            break;
        };
        if after.is_some_and(|a| sk == a) {
            continue;
        }
        if let Some(rec) = Record::from_bytes(v.value())?.live(now) {
            out.push((sk.to_string(), rec));
            if out.len() == limit {
                break;
            }
        }
    }
    Ok(out)
}

impl DocumentStore for EmbeddedStore {
    async fn get_doc(&self, key_: &DocKey) -> Result<Option<Value>, StoreError> {
        let k = key(key_.partition_key(), SINGLE);
        self.read(move |t| match get_record(t, &k, now_secs())? {
            Some(rec) => rec.doc(),
            None => Ok(None),
        })
        .await
    }

    async fn get_doc_text(&self, key_: &DocKey) -> Result<Option<String>, StoreError> {
        let k = key(key_.partition_key(), SINGLE);
        self.read(move |t| match get_record(t, &k, now_secs())? {
            Some(Record {
                body: Body::Doc(enc),
                ..
            }) => codec::decode_text(enc).map(Some),
            _ => Ok(None),
        })
        .await
    }

    async fn get_docs(&self, keys: &[DocKey]) -> Result<Vec<Option<Value>>, StoreError> {
        let ks: Vec<String> = keys
            .iter()
            .map(|k| key(k.partition_key(), SINGLE))
            .collect();
        self.read(move |t| {
            let now = now_secs();
            ks.iter()
                .map(|k| match get_record(t, k, now)? {
                    Some(rec) => rec.doc(),
                    None => Ok(None),
                })
                .collect()
        })
        .await
    }

    async fn put_doc(&self, key_: &DocKey, doc: &Value, ttl_secs: i64) -> Result<(), StoreError> {
        let rec = Record {
            expires_at: now_secs() + ttl_secs,
            body: Body::Doc(codec::encode(doc)?),
        };
        let k = key(key_.partition_key(), SINGLE);
        self.write(move |t| put_record(t, &k, &rec)).await
    }

    async fn update_doc<F>(
        &self,
        key_: &DocKey,
        ttl_secs: i64,
        mut change: F,
    ) -> Result<Value, ApiError>
    where
        F: FnMut(Option<Value>) -> Result<Value, ApiError> + Send + 'static,
    {
        let k = key(key_.partition_key(), SINGLE);
        self.write(move |t| {
            let now = now_secs();
            let current = match get_record(t, &k, now)? {
                Some(rec) => rec.doc()?,
                None => None,
            };
            let new = change(current)?;
            let rec = Record {
                expires_at: now + ttl_secs,
                body: Body::Doc(codec::encode(&new)?),
            };
            put_record(t, &k, &rec)?;
            Ok::<_, ApiError>(new)
        })
        .await
    }
}

impl AuthStore for EmbeddedStore {
    async fn remember_user(
        &self,
        client: &ClientId,
        user: &UserId,
        ttl_secs: i64,
    ) -> Result<(), StoreError> {
        let k = key(&auth_keys::users(client), user.as_str());
        let now = now_secs();
        // user_info calls this on every page load: skip the (fsync'd) write
        // while the record has more than half its lifetime left.
        let probe = k.clone();
        let fresh = self
            .read(move |t| {
                let rec = get_record(t, &probe, now)?;
                Ok(rec.is_some_and(|r| r.expires_at > now + ttl_secs / 2))
            })
            .await?;
        if fresh {
            return Ok(());
        }
        let rec = Record {
            expires_at: now + ttl_secs,
            body: Body::Empty,
        };
        self.write(move |t| put_record(t, &k, &rec)).await
    }

    async fn list_users(
        &self,
        client: &ClientId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let pk = auth_keys::users(client);
        let after = after.map(str::to_string);
        self.read(move |t| {
            let rows = scan_partition(t, &pk, after.as_deref(), limit, now_secs())?;
            Ok(rows.into_iter().map(|(sk, _)| sk).collect())
        })
        .await
    }

    async fn create_pin(
        &self,
        client: &ClientId,
        pin: &str,
        token_id: &str,
        ttl_secs: i64,
    ) -> Result<bool, StoreError> {
        let k = key(&auth_keys::pin(client, pin), SINGLE);
        let rec = Record {
            expires_at: now_secs() + ttl_secs,
            body: Body::Text(token_id.to_string()),
        };
        self.write(move |t| {
            if get_record(t, &k, now_secs())?.is_some() {
                return Ok(false);
            }
            put_record(t, &k, &rec)?;
            Ok(true)
        })
        .await
    }

    async fn claim_pin(
        &self,
        client: &ClientId,
        pin: &str,
        channel: &ChannelId,
        token_expires_at: i64,
    ) -> Result<Option<ClaimedPin>, StoreError> {
        let pin_key = key(&auth_keys::pin(client, pin), SINGLE);
        let client = client.clone();
        let channel = channel.clone();
        self.write(move |t| {
            let Some(rec) = get_record(t, &pin_key, now_secs())? else {
                return Ok(None);
            };
            t.remove(pin_key.as_str()).map_err(internal)?;
            let Body::Text(token_id) = rec.body else {
                return Err(StoreError::Internal("PIN record without token".into()));
            };
            let binding = Record {
                expires_at: token_expires_at,
                body: Body::Text(channel.to_string()),
            };
            put_record(
                t,
                &key(&auth_keys::pin_token(&client, &token_id), SINGLE),
                &binding,
            )?;
            let index = Record {
                expires_at: token_expires_at,
                body: Body::Empty,
            };
            put_record(
                t,
                &key(&auth_keys::pin_channel(&client, &channel), &token_id),
                &index,
            )?;
            Ok(Some(ClaimedPin { token_id }))
        })
        .await
    }

    async fn pin_token_channel(
        &self,
        client: &ClientId,
        token_id: &str,
    ) -> Result<Option<ChannelId>, StoreError> {
        let k = key(&auth_keys::pin_token(client, token_id), SINGLE);
        self.read(move |t| match get_record(t, &k, now_secs())? {
            Some(Record {
                body: Body::Text(ch),
                ..
            }) => ChannelId::parse(ch)
                .map(Some)
                .map_err(|_| internal("stored channel id")),
            _ => Ok(None),
        })
        .await
    }

    async fn channel_has_pin_tokens(
        &self,
        client: &ClientId,
        channel: &ChannelId,
    ) -> Result<bool, StoreError> {
        let pk = auth_keys::pin_channel(client, channel);
        self.read(move |t| Ok(!scan_partition(t, &pk, None, 1, now_secs())?.is_empty()))
            .await
    }

    async fn revoke_pin_tokens(
        &self,
        client: &ClientId,
        channel: &ChannelId,
    ) -> Result<usize, StoreError> {
        let pk = auth_keys::pin_channel(client, channel);
        let client = client.clone();
        self.write(move |t| {
            let rows = scan_partition(t, &pk, None, usize::MAX, i64::MIN)?;
            let now = now_secs();
            let mut live = 0;
            for (token_id, rec) in &rows {
                if rec.expires_at > now {
                    live += 1;
                }
                t.remove(key(&pk, token_id).as_str()).map_err(internal)?;
                t.remove(key(&auth_keys::pin_token(&client, token_id), SINGLE).as_str())
                    .map_err(internal)?;
            }
            Ok(live)
        })
        .await
    }
}

fn get_json<T: serde::de::DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    k: &str,
    now: i64,
) -> Result<Option<T>, StoreError> {
    match get_record(table, k, now)? {
        Some(Record {
            body: Body::Text(t),
            ..
        }) => serde_json::from_str(&t).map(Some).map_err(internal),
        Some(_) => Err(internal("unexpected record kind")),
        None => Ok(None),
    }
}

fn put_json<T: serde::Serialize>(
    table: &mut redb::Table<&str, &[u8]>,
    k: &str,
    value: &T,
    expires_at: i64,
) -> Result<(), StoreError> {
    let text = serde_json::to_string(value).map_err(internal)?;
    put_record(
        table,
        k,
        &Record {
            expires_at,
            body: Body::Text(text),
        },
    )
}

fn get_sums(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    k: &str,
    now: i64,
) -> Result<Option<BucketedSums>, StoreError> {
    match get_record(table, k, now)? {
        Some(Record {
            body: Body::Bytes(b),
            ..
        }) => BucketedSums::from_bytes(&b)
            .map(Some)
            .ok_or_else(|| internal("malformed vote sums")),
        Some(_) => Err(internal("unexpected record kind")),
        None => Ok(None),
    }
}

/// Removes every item of a partition, live or expired.
fn remove_partition(table: &mut redb::Table<&str, &[u8]>, pk: &str) -> Result<(), StoreError> {
    let keys: Vec<String> = scan_partition(table, pk, None, usize::MAX, i64::MIN)?
        .into_iter()
        .map(|(sk, _)| key(pk, &sk))
        .collect();
    for k in keys {
        table.remove(k.as_str()).map_err(internal)?;
    }
    Ok(())
}

/// Adds `delta` to the rank count of (`bucket`, `key`); a count of 0 is removed.
fn bump_rank_count(
    table: &mut redb::Table<&str, &[u8]>,
    pk: &str,
    bucket: i64,
    rank_key: &str,
    delta: i64,
) -> Result<(), StoreError> {
    let k = key(pk, &rank_count_sk(bucket, rank_key));
    let n = get_json::<i64>(table, &k, i64::MIN)?.unwrap_or(0) + delta;
    if n == 0 {
        table.remove(k.as_str()).map_err(internal)?;
        Ok(())
    } else {
        put_json(table, &k, &n, bucket)
    }
}

/// The extension-wide copy of an entry's partition (admin reads every channel).
fn all_channels(acc: &AggKey) -> AggKey {
    AggKey {
        scope: None,
        ..acc.clone()
    }
}

impl AggregateStore for EmbeddedStore {
    async fn cast_vote(&self, poll: &AggKey, ballot: Ballot) -> Result<Sums, StoreError> {
        let sums_k = key(&poll.partition(agg_kinds::VOTE_SUMS), SINGLE);
        let ballot_k = key(&poll.partition(agg_kinds::BALLOTS), &ballot.voter);
        self.write_batch(move |b| {
            let now = now_secs();
            let old: Option<Ballot> = get_json(&b.table, &ballot_k, now)?;
            b.load_sums(&sums_k)?;
            put_json(&mut b.table, &ballot_k, &ballot, ballot.bucket)?;
            // Nothing below can fail: the ballot and its sums change together.
            let sums = b.sums.get_mut(&sums_k).expect("loaded above");
            replace_ballot(sums, old.as_ref(), &ballot);
            sums.prune(now);
            Ok(sums.live(now))
        })
        .await
    }

    async fn vote_totals(
        &self,
        poll: &AggKey,
        voter: Option<&ViewerId>,
    ) -> Result<(Sums, Option<Ballot>), StoreError> {
        let sums_k = key(&poll.partition(agg_kinds::VOTE_SUMS), SINGLE);
        let ballot_k = voter.map(|v| key(&poll.partition(agg_kinds::BALLOTS), v.as_str()));
        self.read(move |t| {
            let now = now_secs();
            let sums = get_sums(t, &sums_k, now)?;
            let ballot = match ballot_k {
                Some(k) => get_json(t, &k, now)?,
                None => None,
            };
            Ok((sums.map(|s| s.live(now)).unwrap_or_default(), ballot))
        })
        .await
    }

    async fn ballots(&self, poll: &AggKey) -> Result<Vec<Ballot>, StoreError> {
        let pk = poll.partition(agg_kinds::BALLOTS);
        self.read(move |t| {
            scan_partition(t, &pk, None, usize::MAX, now_secs())?
                .into_iter()
                .map(|(_, rec)| match rec.body {
                    Body::Text(text) => serde_json::from_str(&text).map_err(internal),
                    _ => Err(internal("unexpected record kind")),
                })
                .collect()
        })
        .await
    }

    async fn delete_poll(&self, poll: &AggKey) -> Result<(), StoreError> {
        let ballots = poll.partition(agg_kinds::BALLOTS);
        let sums = poll.partition(agg_kinds::VOTE_SUMS);
        self.write_batch(move |b| {
            remove_partition(&mut b.table, &ballots)?;
            remove_partition(&mut b.table, &sums)?;
            // Votes earlier in this batch must not write the sums back.
            b.sums.remove(&key(&sums, SINGLE));
            Ok(())
        })
        .await
    }

    async fn set_rank_key(
        &self,
        rank: &AggKey,
        voter: &ViewerId,
        rank_key: &str,
        bucket: i64,
    ) -> Result<Option<String>, StoreError> {
        let holder_k = key(&rank.partition(agg_kinds::RANK_HOLDERS), voter.as_str());
        let counts = rank.partition(agg_kinds::RANK_COUNTS);
        let new = Holder {
            key: rank_key.to_string(),
            bucket,
        };
        self.write(move |t| {
            let old: Option<Holder> = get_json(t, &holder_k, now_secs())?;
            if old.as_ref() == Some(&new) {
                return Ok(old.map(|h| h.key));
            }
            if let Some(o) = &old {
                bump_rank_count(t, &counts, o.bucket, &o.key, -1)?;
            }
            bump_rank_count(t, &counts, new.bucket, &new.key, 1)?;
            put_json(t, &holder_k, &new, new.bucket)?;
            Ok(old.map(|h| h.key))
        })
        .await
    }

    async fn rank_key(
        &self,
        rank: &AggKey,
        voter: &ViewerId,
    ) -> Result<Option<String>, StoreError> {
        let holder_k = key(&rank.partition(agg_kinds::RANK_HOLDERS), voter.as_str());
        self.read(move |t| Ok(get_json::<Holder>(t, &holder_k, now_secs())?.map(|h| h.key)))
            .await
    }

    async fn rank_counts(&self, rank: &AggKey) -> Result<Vec<(String, i64)>, StoreError> {
        let pk = rank.partition(agg_kinds::RANK_COUNTS);
        self.read(move |t| {
            let mut out = Vec::new();
            for (sk, rec) in scan_partition(t, &pk, None, usize::MAX, now_secs())? {
                let (Some((_, rank_key)), Body::Text(n)) = (parse_rank_count_sk(&sk), rec.body)
                else {
                    return Err(internal("malformed rank count"));
                };
                out.push((rank_key.to_string(), n.parse().map_err(internal)?));
            }
            Ok(out)
        })
        .await
    }

    async fn delete_rank(&self, rank: &AggKey) -> Result<(), StoreError> {
        let holders = rank.partition(agg_kinds::RANK_HOLDERS);
        let counts = rank.partition(agg_kinds::RANK_COUNTS);
        self.write(move |t| {
            remove_partition(t, &holders)?;
            remove_partition(t, &counts)
        })
        .await
    }

    async fn add_entry(
        &self,
        acc: &AggKey,
        entry: &Entry,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let sk = entry_sk(entry.observed);
        let own = key(&acc.partition(agg_kinds::ENTRIES), &sk);
        let all = key(&all_channels(acc).partition(agg_kinds::ENTRIES), &sk);
        let entry = entry.clone();
        self.write(move |t| {
            put_json(t, &own, &entry, expires_at)?;
            if all != own {
                put_json(t, &all, &entry, expires_at)?;
            }
            Ok(())
        })
        .await
    }

    async fn entries(
        &self,
        acc: &AggKey,
        start: i64,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        let pk = acc.partition(agg_kinds::ENTRIES);
        self.read(move |t| {
            let now = now_secs();
            let from = key(&pk, &format!("{:013}", start.saturating_add(1)));
            let end = format!("{pk}\u{1}");
            let mut out = Vec::new();
            for row in t
                .range(from.as_str()..end.as_str())
                .map_err(internal)?
                .rev()
            {
                let (_, v) = row.map_err(internal)?;
                if let Some(Record {
                    body: Body::Text(text),
                    ..
                }) = Record::from_bytes(v.value())?.live(now)
                {
                    out.push(serde_json::from_str(&text).map_err(internal)?);
                    if out.len() == limit {
                        break;
                    }
                }
            }
            Ok(out)
        })
        .await
    }
}

/// A set's metadata record. The embedded store runs one writer, so a redeem
/// is one transaction: take the next index, record the code for the user.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct SetMeta {
    name: String,
    generation: String,
    total: usize,
    /// Next index never handed out.
    cursor: usize,
    distributed: usize,
}

impl SetMeta {
    fn info(&self, slot: usize) -> SetInfo {
        SetInfo {
            slot,
            name: self.name.clone(),
            generation: self.generation.clone(),
            total: self.total,
            distributed: self.distributed,
        }
    }
}

/// Writes `codes` as chunks of a set, the first one numbered `first_chunk`
/// (appends start a new chunk, so chunk numbers and indices line up again
/// through `index_of`).
fn put_chunks(
    t: &mut redb::Table<&str, &[u8]>,
    pk: &str,
    first_index: usize,
    codes: &[String],
    expires_at: i64,
) -> Result<(), StoreError> {
    // Fill the partial chunk the set ends with first, then whole chunks.
    let mut index = first_index;
    let mut rest = codes;
    while !rest.is_empty() {
        let (chunk, offset) = codes::chunk_of(index);
        let take = (CHUNK_CODES - offset).min(rest.len());
        let k = key(pk, &code_keys::chunk_sk(chunk));
        let mut text = match get_record(t, &k, i64::MIN)? {
            Some(Record {
                body: Body::Text(t),
                ..
            }) if offset > 0 => t,
            _ => String::new(),
        };
        if offset > 0 {
            text.push('\n');
        }
        text.push_str(&codes::encode_chunk(&rest[..take]));
        put_record(
            t,
            &k,
            &Record {
                expires_at,
                body: Body::Text(text),
            },
        )?;
        index += take;
        rest = &rest[take..];
    }
    Ok(())
}

fn code_at(
    t: &impl ReadableTable<&'static str, &'static [u8]>,
    pk: &str,
    index: usize,
) -> Result<String, StoreError> {
    let (chunk, offset) = codes::chunk_of(index);
    match get_record(t, &key(pk, &code_keys::chunk_sk(chunk)), i64::MIN)? {
        Some(Record {
            body: Body::Text(text),
            ..
        }) => codes::decode_chunk(&text)
            .get(offset)
            .map(|c| c.to_string())
            .ok_or_else(|| internal("code index beyond its chunk")),
        _ => Err(internal("missing code chunk")),
    }
}

fn set_expiry(
    t: &impl ReadableTable<&'static str, &'static [u8]>,
    k: &str,
) -> Result<i64, StoreError> {
    Ok(get_record(t, k, i64::MIN)?
        .map(|r| r.expires_at)
        .unwrap_or(0))
}

impl CodeStore for EmbeddedStore {
    async fn put_set(
        &self,
        client: &ClientId,
        set: &SetUpload,
        expires_at: i64,
    ) -> Result<SetInfo, StoreError> {
        let meta_k = key(&code_keys::sets(client), &code_keys::slot_sk(set.slot));
        let generation = crate::random::token_id(10);
        let chunks_pk = code_keys::chunks(client, set.slot, &generation);
        let meta = SetMeta {
            name: set.name.clone(),
            generation,
            total: set.codes.len(),
            cursor: 0,
            distributed: 0,
        };
        let codes = set.codes.clone();
        let slot = set.slot;
        let client = client.clone();
        self.write(move |t| {
            // The previous generation's chunks go with it.
            if let Some(old) = get_json::<SetMeta>(t, &meta_k, i64::MIN)? {
                remove_partition(t, &code_keys::chunks(&client, slot, &old.generation))?;
            }
            put_chunks(t, &chunks_pk, 0, &codes, expires_at)?;
            put_json(t, &meta_k, &meta, expires_at)?;
            Ok(meta.info(slot))
        })
        .await
    }

    async fn append_codes(
        &self,
        client: &ClientId,
        slot: usize,
        codes: &[String],
    ) -> Result<Option<SetInfo>, ApiError> {
        let meta_k = key(&code_keys::sets(client), &code_keys::slot_sk(slot));
        let codes = codes.to_vec();
        let client = client.clone();
        self.write(move |t| {
            let Some(mut meta) = get_json::<SetMeta>(t, &meta_k, now_secs())? else {
                return Ok(None);
            };
            codes::check_append(slot, meta.total, codes.len())?;
            let expires_at = set_expiry(t, &meta_k)?;
            let pk = code_keys::chunks(&client, slot, &meta.generation);
            put_chunks(t, &pk, meta.total, &codes, expires_at)?;
            meta.total += codes.len();
            put_json(t, &meta_k, &meta, expires_at)?;
            Ok(Some(meta.info(slot)))
        })
        .await
    }

    async fn sets(&self, client: &ClientId) -> Result<Vec<SetInfo>, StoreError> {
        let pk = code_keys::sets(client);
        self.read(move |t| {
            scan_partition(t, &pk, None, usize::MAX, now_secs())?
                .into_iter()
                .map(|(sk, rec)| {
                    let slot: usize = sk.parse().map_err(internal)?;
                    match rec.body {
                        Body::Text(text) => serde_json::from_str::<SetMeta>(&text)
                            .map(|m| m.info(slot))
                            .map_err(internal),
                        _ => Err(internal("unexpected record kind")),
                    }
                })
                .collect::<Result<Vec<_>, _>>()
                .map(|mut v| {
                    v.sort_by_key(|s| s.slot);
                    v
                })
        })
        .await
    }

    async fn delete_sets(&self, client: &ClientId) -> Result<Vec<SetInfo>, StoreError> {
        let sets = self.sets(client).await?;
        let pk = code_keys::sets(client);
        let client = client.clone();
        let gone = sets.clone();
        self.write(move |t| {
            for s in &gone {
                remove_partition(t, &code_keys::chunks(&client, s.slot, &s.generation))?;
            }
            remove_partition(t, &pk)
        })
        .await?;
        Ok(sets)
    }

    async fn raise_caps(
        &self,
        client: &ClientId,
        users: &[UserId],
        caps: &[(SetInfo, u32)],
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let keys: Vec<(String, String, u32)> = users
            .iter()
            .flat_map(|u| {
                caps.iter().map(move |(set, cap)| {
                    (
                        code_keys::standing(client, u),
                        code_keys::standing_sk(set.slot, &set.generation),
                        *cap,
                    )
                })
            })
            .collect();
        self.write(move |t| {
            for (pk, sk, cap) in keys {
                let k = key(&pk, &sk);
                let mut st: Standing = get_json(t, &k, now_secs())?.unwrap_or_default();
                if st.cap < cap {
                    st.cap = cap;
                    put_json(t, &k, &st, expires_at)?;
                }
            }
            Ok(())
        })
        .await
    }

    async fn standings(
        &self,
        client: &ClientId,
        user: &UserId,
        sets: &[SetInfo],
    ) -> Result<Vec<Standing>, StoreError> {
        let pk = code_keys::standing(client, user);
        let sks: Vec<String> = sets
            .iter()
            .map(|s| code_keys::standing_sk(s.slot, &s.generation))
            .collect();
        self.read(move |t| {
            let now = now_secs();
            sks.iter()
                .map(|sk| Ok(get_json(t, &key(&pk, sk), now)?.unwrap_or_default()))
                .collect()
        })
        .await
    }

    async fn redeem(
        &self,
        client: &ClientId,
        user: &UserId,
        slot: usize,
    ) -> Result<(String, Vec<String>), RedeemError> {
        let meta_k = key(&code_keys::sets(client), &code_keys::slot_sk(slot));
        let (client, user) = (client.clone(), user.clone());
        let faults = self.faults.clone();
        self.write(move |t| {
            let now = now_secs();
            let mut meta: SetMeta = get_json(t, &meta_k, now)?.ok_or(RedeemError::NoSet(slot))?;
            let standing_k = key(
                &code_keys::standing(&client, &user),
                &code_keys::standing_sk(slot, &meta.generation),
            );
            let mut st: Standing = get_json(t, &standing_k, now)?.unwrap_or_default();
            if st.claimable() == 0 {
                return Err(RedeemError::NotEligible(slot));
            }
            if meta.cursor >= meta.total {
                return Err(RedeemError::Exhausted(slot));
            }
            let index = meta.cursor;
            let chunks = code_keys::chunks(&client, slot, &meta.generation);
            let code = code_at(t, &chunks, index)?;
            // A crash here aborts the whole transaction: the index is not
            // taken, nothing is recorded, nothing is lost.
            if faults.take_redeem_crash() {
                return Err(RedeemError::Store(StoreError::Unavailable(
                    "injected crash after claiming a code".into(),
                )));
            }
            meta.cursor += 1;
            meta.distributed += 1;
            st.held.push(code.clone());
            let expires_at = set_expiry(t, &meta_k)?;
            put_json(t, &meta_k, &meta, expires_at)?;
            put_json(t, &standing_k, &st, expires_at)?;
            Ok((code, st.held))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        for body in [
            Body::Empty,
            Body::Doc(Encoded::Plain("{}".into())),
            Body::Doc(Encoded::Zlib(vec![1, 2, 3])),
            Body::Text("abc".into()),
            Body::Bytes(vec![0, 255]),
        ] {
            let rec = Record {
                expires_at: 1234,
                body,
            };
            assert_eq!(Record::from_bytes(&rec.to_bytes()).unwrap(), rec);
        }
        assert!(Record::from_bytes(&[1, 2]).is_err());
    }

    /// Votes and a delete landing in the same group commit: the sums cache
    /// must not write a deleted poll's sums back.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn deletes_and_votes_in_one_batch_stay_consistent() {
        let store = EmbeddedStore::in_memory();
        let poll = AggKey::for_caller(
            &ClientId::parse("c").unwrap(),
            Some(&ChannelId::parse("1").unwrap()),
            &crate::ids::AggregateId::parse("p").unwrap(),
        )
        .unwrap();
        let now = now_secs();
        for round in 0..5 {
            let mut tasks = tokio::task::JoinSet::new();
            for v in 0..40 {
                let (s, p) = (store.clone(), poll.clone());
                tasks.spawn(async move {
                    if v == 20 {
                        s.delete_poll(&p).await.unwrap();
                        return;
                    }
                    let b = Ballot {
                        voter: format!("V{v}"),
                        user_id: String::new(),
                        value: v + round,
                        weight: 1,
                        cast_at: now,
                        bucket: now + 3600,
                    };
                    s.cast_vote(&p, b).await.unwrap();
                });
            }
            while tasks.join_next().await.is_some() {}
            let ballots = store.ballots(&poll).await.unwrap();
            let mut expected = Sums::default();
            for b in &ballots {
                expected.add(b.value, b.weight);
            }
            assert_eq!(store.vote_totals(&poll, None).await.unwrap().0, expected);
        }
    }
}
