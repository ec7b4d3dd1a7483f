//! Group commit: one thread owns redb's (single) write transaction and runs
//! every queued write job in it, then commits once for the whole batch.

use std::collections::HashMap;
use std::sync::Arc;

use redb::Database;

use super::aggregate::get_sums;
use super::records::{Body, ITEMS, Record, internal, put_record};
use crate::aggregate::vote::BucketedSums;
use crate::error::StoreError;

/// What a write job hands back after running: called with the outcome of the
/// commit, it delivers the job's result to the waiting request.
pub(super) type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;
pub(super) type WriteJob = Box<dyn for<'t> FnOnce(&mut Batch<'t>) -> Completion + Send>;

/// What the jobs of one group commit share: the table, and a write-back
/// cache of vote sums. Votes on a hot poll arrive together; each one reads
/// and rewrites the poll's sums, so the batch keeps them decoded and writes
/// each poll's sums once, at commit.
pub(super) struct Batch<'t> {
    pub(super) table: redb::Table<'t, &'static str, &'static [u8]>,
    pub(super) sums: HashMap<String, BucketedSums>,
}

impl Batch<'_> {
    /// Makes sure the sums record `k` is in the cache (decoded once per batch).
    pub(super) fn load_sums(&mut self, k: &str) -> Result<(), StoreError> {
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
pub(super) struct Writer {
    jobs: Option<std::sync::mpsc::Sender<WriteJob>>,
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
    pub(super) fn start(db: Arc<Database>) -> Self {
        let (jobs, queue) = std::sync::mpsc::channel::<WriteJob>();
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

    /// Queues a job for the next batch.
    pub(super) fn submit(&self, job: WriteJob) -> Result<(), StoreError> {
        self.jobs
            .as_ref()
            .ok_or_else(|| internal("the embedded store is closing"))?
            .send(job)
            .map_err(|_| internal("the embedded store's writer has stopped"))
    }
}

/// Runs a batch in one transaction. A job that fails must not have written
/// anything (every job validates before it writes), so the others commit.
/// Jobs dropped unrun (the transaction could not start, a job panicked) tell
/// their callers through the closed channel.
fn commit_batch(db: &Database, batch: Vec<WriteJob>) {
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
