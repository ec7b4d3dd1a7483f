//! JSON documents (state, config, the JSON store) on the embedded store:
//! one record per document.

use serde_json::Value;

use super::EmbeddedStore;
use super::records::{Body, Record, get_record, internal, key, put_record};
use crate::clock::now_secs;
use crate::documents::MAX_ATOMIC_BYTES;
use crate::error::StoreError;
use crate::store::codec;
use crate::store::layout::SINGLE;
use crate::store::{DocKey, DocumentStore};

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

    async fn delete_doc(&self, key_: &DocKey) -> Result<(), StoreError> {
        let k = key(key_.partition_key(), SINGLE);
        self.write(move |t| {
            t.remove(k.as_str()).map_err(internal)?;
            Ok(())
        })
        .await
    }

    async fn update_doc<F, E>(
        &self,
        key_: &DocKey,
        ttl_secs: i64,
        mut change: F,
    ) -> Result<Value, E>
    where
        F: FnMut(Option<Value>) -> Result<Value, E> + Send + 'static,
        E: From<StoreError> + Send + 'static,
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
            Ok::<_, E>(new)
        })
        .await
    }

    /// One write transaction: every change is computed before anything is
    /// written.
    async fn update_docs<F, E>(
        &self,
        keys: &[DocKey],
        ttl_secs: i64,
        mut change: F,
    ) -> Result<Vec<Value>, E>
    where
        F: FnMut(usize, Option<Value>) -> Result<Value, E> + Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let ks: Vec<String> = keys
            .iter()
            .map(|k| key(k.partition_key(), SINGLE))
            .collect();
        self.write(move |t| {
            let now = now_secs();
            let mut records = Vec::with_capacity(ks.len());
            let mut news = Vec::with_capacity(ks.len());
            for (i, k) in ks.iter().enumerate() {
                let current = match get_record(t, k, now)? {
                    Some(rec) => rec.doc()?,
                    None => None,
                };
                let new = change(i, current)?;
                let body = codec::encode(&new)?;
                records.push((k, body));
                news.push(new);
            }
            let bytes: usize = records.iter().map(|(_, b)| b.len()).sum();
            if bytes > MAX_ATOMIC_BYTES {
                return Err(StoreError::TooLarge(bytes).into());
            }
            for (k, body) in records {
                let rec = Record {
                    expires_at: now + ttl_secs,
                    body: Body::Doc(body),
                };
                put_record(t, k, &rec)?;
            }
            Ok::<_, E>(news)
        })
        .await
    }
}
