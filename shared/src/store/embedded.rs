//! Embedded adapter on redb: a file by default (data survives restarts), or in
//! memory for tests and `--memory`. One table of `pk \0 sk` → record, so the
//! key layout mirrors the DynamoDB adapter's. redb runs one write transaction
//! at a time, which makes every read-modify-write here atomic.

use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde_json::Value;

use super::codec::{self, Encoded};
use super::{AuthStore, ClaimedPin, DocKey, DocumentStore, SINGLE, auth_keys};
use crate::auth::now_secs;
use crate::error::{ApiError, StoreError};
use crate::ids::{ChannelId, ClientId, UserId};

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
        Ok(EmbeddedStore { db: Arc::new(db) })
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

    /// Runs a closure in one write transaction; it commits only if the closure succeeds.
    async fn write<T: Send + 'static, E: From<StoreError> + Send + 'static>(
        &self,
        f: impl FnOnce(&mut redb::Table<&str, &[u8]>) -> Result<T, E> + Send + 'static,
    ) -> Result<T, E> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let tx = db.begin_write().map_err(internal)?;
            let out = {
                let mut table = tx.open_table(ITEMS).map_err(internal)?;
                f(&mut table)?
            };
            tx.commit().map_err(internal)?;
            Ok(out)
        })
        .await
        .map_err(internal)?
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
        ] {
            let rec = Record {
                expires_at: 1234,
                body,
            };
            assert_eq!(Record::from_bytes(&rec.to_bytes()).unwrap(), rec);
        }
        assert!(Record::from_bytes(&[1, 2]).is_err());
    }
}
