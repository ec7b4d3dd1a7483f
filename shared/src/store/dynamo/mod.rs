//! DynamoDB adapter, one file per port: [`documents`], [`auth`],
//! [`aggregate`] (with [`generation`]), [`codes`], [`connections`], [`limits`]; [`items`] holds the item
//! helpers and requests they share, [`schema`] the tables, [`stream`] the
//! connections table's stream as the fan-out worker receives it.
//!
//! One table per data family (`pk`/`sk` strings, TTL on `expires_at`,
//! PAY_PER_REQUEST). No Scan anywhere; conditional writes for
//! read-modify-write; SDK errors become [`StoreError`](crate::error::StoreError)s here.

pub mod aggregate;
mod auth;
pub mod codes;
pub mod connections;
mod documents;
mod generation;
mod items;
mod limits;
mod purchases;
mod schema;
mod sessions;
pub mod stream;

use std::sync::Arc;

use aws_sdk_dynamodb::Client;

pub use schema::Tables;

use crate::store::Faults;

#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    tables: Arc<Tables>,
    /// Shards of each poll's sums and ballots (see `aggregate`).
    vote_shards: u32,
    /// Poll and ranking generations seen by this process (see `generation`).
    generations: Arc<generation::Generations>,
    /// Code-set generations and chunks seen by this process (see `codes`).
    code_cache: Arc<codes::CodeCache>,
    /// Seconds before unclaimed code indices count as lost (see `codes`).
    recovery_grace: i64,
    /// Seconds an append's lock holds (see `codes`).
    append_lock_secs: i64,
    faults: Arc<Faults>,
    /// Distinct items this process has recorded in budgets (see `limits`).
    seen: Arc<limits::Seen>,
    /// Whether fan-out jobs go to the connections table's stream (in AWS,
    /// where a worker function consumes it); else the caller runs them.
    fanout_queue: bool,
}

impl DynamoStore {
    pub fn new(client: Client, tables: Tables) -> Self {
        DynamoStore {
            client,
            tables: Arc::new(tables),
            vote_shards: aggregate::VOTE_SHARDS,
            generations: Default::default(),
            code_cache: Default::default(),
            recovery_grace: codes::RECOVERY_GRACE_SECS,
            append_lock_secs: codes::APPEND_LOCK_SECS,
            faults: Default::default(),
            seen: Default::default(),
            fanout_queue: false,
        }
    }

    /// Queue extension-wide fan-out jobs on the connections table's stream
    /// (only where a fan-out worker consumes it: the SAM stack).
    pub fn with_fanout_queue(mut self) -> Self {
        self.fanout_queue = true;
        self
    }

    /// A store at an endpoint on this machine (DynamoDB Local).
    pub fn connect(endpoint: &str, tables: Tables) -> Self {
        Self::new(Client::new(&crate::aws::local_config(endpoint)), tables)
    }

    /// Failure injection for tests.
    #[cfg(feature = "testing")]
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    pub fn tables(&self) -> &Tables {
        &self.tables
    }
}
