//! JSON documents (state, config, the JSON store) on DynamoDB: one item per
//! document in the stores table, `d` plain JSON or `z` zlib bytes, a
//! version `ver` that guards read-modify-writes, and `wt`, the token of the
//! write that made it (12 characters; see `update_doc`).

use std::collections::HashMap;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, TransactWriteItem, Update};
use serde_json::Value;

use super::DynamoStore;
use super::items::{
    Item, condition_failed, is_live, key, lost_race, n, num, retry_after, s, sdk_err, text,
};
use crate::clock::now_secs;
use crate::documents::MAX_ATOMIC_BYTES;
use crate::error::StoreError;
use crate::store::codec::{self, Encoded};
use crate::store::layout::SINGLE;
use crate::store::{DocKey, DocumentStore};

/// Attempts of one optimistic read-modify-write before giving up with 409.
const UPDATE_ATTEMPTS: usize = 8;

/// The document of an item: `d` holds plain JSON text, `z` zlib bytes.
fn item_doc(item: &Item) -> Result<Option<Value>, StoreError> {
    match (item.get("d"), item.get("z")) {
        (Some(AttributeValue::S(t)), _) => codec::decode_plain(t).map(Some),
        (_, Some(AttributeValue::B(b))) => codec::decode_zlib(b.as_ref()).map(Some),
        _ => Ok(None),
    }
}

/// `SET` clause and values writing an encoded document, bumping the version.
/// The update expression writing a document: its body, a new version, its
/// expiry and the writer's token `wt` (random per write), by which a writer
/// whose answer was lost recognises its own write.
fn doc_update(
    enc: Encoded,
    expires_at: i64,
    token: &str,
) -> (String, HashMap<String, AttributeValue>) {
    let (set, remove, body) = match enc {
        Encoded::Plain(t) => ("d", "z", s(t)),
        Encoded::Zlib(b) => ("z", "d", AttributeValue::B(Blob::new(b))),
    };
    let expr = format!(
        "SET {set} = :body, ver = if_not_exists(ver, :zero) + :one, expires_at = :exp, wt = :wt REMOVE {remove}"
    );
    let values = HashMap::from([
        (":body".to_string(), body),
        (":zero".to_string(), n(0)),
        (":one".to_string(), n(1)),
        (":exp".to_string(), n(expires_at)),
        (":wt".to_string(), s(token)),
    ]);
    (expr, values)
}

impl DocumentStore for DynamoStore {
    async fn get_doc(&self, k: &DocKey) -> Result<Option<Value>, StoreError> {
        match self
            .get_item(&self.tables.stores, k.partition_key(), SINGLE)
            .await?
        {
            Some(item) => item_doc(&item),
            None => Ok(None),
        }
    }

    async fn get_doc_text(&self, k: &DocKey) -> Result<Option<String>, StoreError> {
        let item = self
            .get_item(&self.tables.stores, k.partition_key(), SINGLE)
            .await?;
        match item.as_ref().map(|i| (i.get("d"), i.get("z"))) {
            Some((Some(AttributeValue::S(t)), _)) => Ok(Some(t.clone())),
            Some((_, Some(AttributeValue::B(b)))) => {
                codec::decode_text(Encoded::Zlib(b.as_ref().to_vec())).map(Some)
            }
            _ => Ok(None),
        }
    }

    async fn get_docs(&self, keys: &[DocKey]) -> Result<Vec<Option<Value>>, StoreError> {
        let mut unique: Vec<&str> = keys.iter().map(|k| k.partition_key()).collect();
        unique.sort_unstable();
        unique.dedup();
        let wanted = unique.iter().map(|pk| key(pk, SINGLE)).collect();
        let mut found: HashMap<String, Value> = HashMap::new();
        for item in self.batch_get(&self.tables.stores, wanted).await? {
            if let (Some(pk), Some(doc)) = (text(&item, "pk"), item_doc(&item)?) {
                found.insert(pk.to_string(), doc);
            }
        }
        Ok(keys
            .iter()
            .map(|k| found.get(k.partition_key()).cloned())
            .collect())
    }

    async fn put_doc(&self, k: &DocKey, doc: &Value, ttl_secs: i64) -> Result<(), StoreError> {
        let token = crate::random::token_id(12);
        let (expr, values) = doc_update(codec::encode(doc)?, now_secs() + ttl_secs, &token);
        self.client
            .update_item()
            .table_name(self.tables.stores.as_str())
            .set_key(Some(key(k.partition_key(), SINGLE)))
            .update_expression(expr)
            .set_expression_attribute_values(Some(values))
            .send()
            .await
            .map_err(sdk_err)?;
        Ok(())
    }

    async fn delete_doc(&self, k: &DocKey) -> Result<(), StoreError> {
        self.client
            .delete_item()
            .table_name(self.tables.stores.as_str())
            .set_key(Some(key(k.partition_key(), SINGLE)))
            .send()
            .await
            .map_err(sdk_err)?;
        Ok(())
    }

    /// GetItem then UpdateItem conditioned on the version read: 2 round trips
    /// without contention; retried with backoff when another writer won.
    ///
    /// A write is applied once even when its answer is lost: the SDK retries
    /// a timed-out call, whose first try may have landed (the retry then
    /// fails its condition), and a timeout may hide a landed write. Each
    /// write carries a token; before trying again, the item read back is
    /// checked for it, so a change (a JSON Patch, say) is never applied twice.
    async fn update_doc<F, E>(&self, k: &DocKey, ttl_secs: i64, mut change: F) -> Result<Value, E>
    where
        F: FnMut(Option<Value>) -> Result<Value, E> + Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let table = self.tables.stores.as_str();
        let pk = k.partition_key();
        // The last write sent whose outcome is unknown: its token and value.
        let mut unsure: Option<(String, Value)> = None;
        for attempt in 0..UPDATE_ATTEMPTS {
            // Read expired items too: their version still guards the write.
            let item = self.get_raw(table, pk, SINGLE).await?;
            if let (Some((token, new)), Some(item)) = (&unsure, &item)
                && text(item, "wt") == Some(token.as_str())
            {
                return Ok(new.clone());
            }
            let now = now_secs();
            let (current, version) = match &item {
                Some(item) => {
                    let doc = if is_live(item, now) {
                        item_doc(item)?
                    } else {
                        None
                    };
                    (doc, num(item, "ver"))
                }
                None => (None, None),
            };
            let new = change(current)?;
            let token = crate::random::token_id(12);
            let (expr, mut values) = doc_update(codec::encode(&new)?, now + ttl_secs, &token);
            let condition = version_condition(version, &mut values);
            let written = self
                .client
                .update_item()
                .table_name(table)
                .set_key(Some(key(pk, SINGLE)))
                .update_expression(expr)
                .condition_expression(condition)
                .set_expression_attribute_values(Some(values))
                .send()
                .await;
            let lost = written.is_ok() && self.faults.take_lost_doc_answer();
            match written {
                Ok(_) if !lost => return Ok(new),
                Ok(_) => {
                    unsure = Some((token, new));
                    if !retry_after(attempt).await {
                        break;
                    }
                }
                Err(e) if condition_failed(&e) => {
                    // Another writer won, or our own write landed and the
                    // SDK's retry of it failed: the next read tells.
                    unsure = Some((token, new));
                    if !retry_after(attempt).await {
                        break;
                    }
                }
                Err(e) if outcome_unknown(&e) => {
                    // A timeout may hide a landed write: read once to know.
                    let item = self.get_raw(table, pk, SINGLE).await?;
                    if item.as_ref().and_then(|i| text(i, "wt")) == Some(token.as_str()) {
                        return Ok(new);
                    }
                    return Err(sdk_err(e).into());
                }
                Err(e) => return Err(sdk_err(e).into()),
            }
        }
        // The last try's outcome may be in the item.
        if let Some((token, new)) = unsure
            && let Some(item) = self.get_raw(table, pk, SINGLE).await?
            && text(&item, "wt") == Some(token.as_str())
        {
            return Ok(new);
        }
        Err(StoreError::Contention.into())
    }

    /// One BatchGetItem and one TransactWriteItems (each item conditioned on
    /// the version read) without contention; all again when another writer
    /// won. The transaction's items carry one write token, so a lost answer
    /// is recognised by reading one of them back.
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
        let table = self.tables.stores.as_str();
        let Some(first) = keys.first().map(DocKey::partition_key) else {
            return Ok(Vec::new());
        };
        let wanted: Vec<Item> = keys
            .iter()
            .map(|k| key(k.partition_key(), SINGLE))
            .collect();
        let mut unsure: Option<(String, Vec<Value>)> = None;
        for attempt in 0..UPDATE_ATTEMPTS {
            let items = self
                .batch_get_filtered(table, wanted.clone(), false)
                .await?;
            let by_pk: HashMap<&str, &Item> = items
                .iter()
                .filter_map(|i| Some((text(i, "pk")?, i)))
                .collect();
            if let Some((token, news)) = &unsure
                && by_pk.get(first).and_then(|i| text(i, "wt")) == Some(token.as_str())
            {
                return Ok(news.clone());
            }
            let now = now_secs();
            let token = crate::random::token_id(12);
            let (mut txn, mut news, mut bytes) = (Vec::new(), Vec::new(), 0);
            for (i, k) in keys.iter().enumerate() {
                let item = by_pk.get(k.partition_key()).copied();
                let current = match item {
                    Some(item) if is_live(item, now) => item_doc(item)?,
                    _ => None,
                };
                let new = change(i, current)?;
                let enc = codec::encode(&new)?;
                bytes += enc.len();
                let version = item.and_then(|i| num(i, "ver"));
                txn.push(doc_txn_update(
                    table,
                    k,
                    enc,
                    now + ttl_secs,
                    &token,
                    version,
                )?);
                news.push(new);
            }
            if bytes > MAX_ATOMIC_BYTES {
                return Err(StoreError::TooLarge(bytes).into());
            }
            let sent = self
                .client
                .transact_write_items()
                .set_transact_items(Some(txn))
                .client_request_token(&token)
                .send()
                .await;
            match sent {
                Ok(_) => return Ok(news),
                Err(e) if lost_race(&e) => {
                    if !retry_after(attempt).await {
                        break;
                    }
                }
                Err(e) if outcome_unknown(&e) => {
                    // The transaction may have landed: the next read tells.
                    unsure = Some((token, news));
                    if !retry_after(attempt).await {
                        break;
                    }
                }
                Err(e) => return Err(sdk_err(e).into()),
            }
        }
        if let Some((token, news)) = unsure
            && let Some(item) = self.get_raw(table, first, SINGLE).await?
            && text(&item, "wt") == Some(token.as_str())
        {
            return Ok(news);
        }
        Err(StoreError::Contention.into())
    }
}

/// The condition that the document still has the version read (or, read
/// absent, still does not exist); adds its value.
fn version_condition(
    version: Option<i64>,
    values: &mut HashMap<String, AttributeValue>,
) -> &'static str {
    match version {
        Some(v) => {
            values.insert(":ver".into(), n(v));
            "ver = :ver"
        }
        None => "attribute_not_exists(pk)",
    }
}

/// One document's write in a transaction, conditioned on the version read.
fn doc_txn_update(
    table: &str,
    k: &DocKey,
    enc: Encoded,
    expires_at: i64,
    token: &str,
    version: Option<i64>,
) -> Result<TransactWriteItem, StoreError> {
    let (expr, mut values) = doc_update(enc, expires_at, token);
    let condition = version_condition(version, &mut values);
    Update::builder()
        .table_name(table)
        .set_key(Some(key(k.partition_key(), SINGLE)))
        .update_expression(expr)
        .condition_expression(condition)
        .set_expression_attribute_values(Some(values))
        .build()
        .map(|u| TransactWriteItem::builder().update(u).build())
        .map_err(|e| StoreError::Internal(e.to_string()))
}

/// Whether a failed call may still have been applied (it timed out, or its
/// answer never arrived).
fn outcome_unknown<E, R>(e: &aws_sdk_dynamodb::error::SdkError<E, R>) -> bool {
    use aws_sdk_dynamodb::error::SdkError;
    matches!(
        e,
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_)
    )
}
