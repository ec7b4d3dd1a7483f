//! Embedded adapter on redb: a file by default (data survives restarts), or in
//! memory for tests and `--memory`. One file per port, mirroring the DynamoDB
//! adapter: [`documents`], [`auth`], [`aggregate`], [`codes`],
//! [`connections`] and [`limits`] (in memory: sockets die with the process);
//! [`records`] holds the record format and helpers they share, [`writer`]
//! the group commit, [`sweep`] the removal of expired records. redb runs one
//! write transaction at a time, which makes every read-modify-write here
//! atomic.

mod aggregate;
mod auth;
mod codes;
mod connections;
mod documents;
mod limits;
mod purchases;
mod records;
pub mod sweep;
mod writer;

use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableDatabase};

use records::{ITEMS, internal};
use writer::{Batch, WriteJob, Writer};

use crate::error::StoreError;
use crate::store::Faults;

/// The page cache of a database file unless configured (`--cache-mb`).
pub const DEFAULT_CACHE_BYTES: usize = 64 << 20;

#[derive(Clone)]
pub struct EmbeddedStore {
    db: Arc<Database>,
    writer: Arc<Writer>,
    faults: Arc<Faults>,
    /// WebSocket connections: in memory, they die with the process.
    live: Arc<connections::LiveConnections>,
    /// Budgets' counters: in memory too.
    limits: Arc<limits::Counters>,
}

impl EmbeddedStore {
    /// Opens (or creates) a database file, with a page cache of
    /// [`DEFAULT_CACHE_BYTES`].
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with_cache(path, DEFAULT_CACHE_BYTES)
    }

    /// Opens (or creates) a database file with a page cache of `cache_bytes`
    /// (redb's own default is 1 GiB, which a long-running server fills).
    pub fn open_with_cache(path: &Path, cache_bytes: usize) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(internal)?;
        }
        let db = Database::builder()
            .set_cache_size(cache_bytes)
            .create(path)
            .map_err(internal)?;
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
            limits: Default::default(),
        })
    }

    /// Failure injection for tests.
    #[cfg(feature = "testing")]
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
        let job: WriteJob = Box::new(move |batch| {
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
        self.writer.submit(job).map_err(E::from)?;
        rx.await
            .map_err(|_| E::from(internal("the write was not completed")))?
    }
}
