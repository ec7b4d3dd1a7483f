//! The DynamoDB adapter's item helpers: attribute values, keys, SDK errors
//! turned into [`StoreError`]s, and the requests every port implementation
//! uses (consistent reads, paged queries, batches with retries).

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, DeleteRequest, KeysAndAttributes, WriteRequest};

use super::DynamoStore;
use crate::clock::now_secs;
use crate::error::StoreError;

/// Items per BatchGetItem (the API's limit).
const BATCH_GET: usize = 100;
/// Items per BatchWriteItem (the API's limit).
const BATCH_WRITE: usize = 25;
/// Bounded retries of unprocessed batch items.
const BATCH_RETRIES: usize = 8;
/// BatchWriteItem calls in flight for one large write or delete.
const BATCH_WRITES_IN_FLIGHT: usize = 8;

pub(super) type Item = HashMap<String, AttributeValue>;

pub(super) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(super) fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(super) fn key(pk: &str, sk: &str) -> Item {
    HashMap::from([("pk".to_string(), s(pk)), ("sk".to_string(), s(sk))])
}

pub(super) fn num(item: &Item, name: &str) -> Option<i64> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().ok(),
        _ => None,
    }
}

pub(super) fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Some(v),
        _ => None,
    }
}

pub(super) fn is_live(item: &Item, now: i64) -> bool {
    num(item, "expires_at").is_none_or(|e| e > now)
}

/// Throttling and server-side faults are retryable (503); the rest are bugs
/// or misconfiguration (500, cause logged).
pub(super) fn sdk_err<E, R>(e: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    const RETRYABLE: &[&str] = &[
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionConflictException",
    ];
    let detail = DisplayErrorContext(&e).to_string();
    match &e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            StoreError::Unavailable(detail)
        }
        SdkError::ServiceError(se) if RETRYABLE.contains(&se.err().code().unwrap_or_default()) => {
            StoreError::Unavailable(detail)
        }
        _ => StoreError::Internal(detail),
    }
}

/// Whether a request failed only because its condition expression was false.
pub(super) fn condition_failed<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    e.code() == Some("ConditionalCheckFailedException")
}

/// A conditional write's outcome: true when it was made, false when its
/// condition was false (the write refused), an error otherwise.
pub(super) fn accepted<T, E, R>(out: Result<T, SdkError<E, R>>) -> Result<bool, StoreError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    match out {
        Ok(_) => Ok(true),
        Err(e) if condition_failed(&e) => Ok(false),
        Err(e) => Err(sdk_err(e)),
    }
}

/// A conditional write whose failed condition means "nothing to do".
pub(super) fn unless_condition_failed<T, E, R>(
    out: Result<T, SdkError<E, R>>,
) -> Result<(), StoreError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    match out {
        Ok(_) => Ok(()),
        Err(e) if condition_failed(&e) => Ok(()),
        Err(e) => Err(sdk_err(e)),
    }
}

/// Whether a transaction failed only because another writer got there first
/// (a version condition or a concurrent transaction): worth a fresh attempt.
pub(super) fn lost_race<R>(
    e: &aws_sdk_dynamodb::error::SdkError<TransactWriteItemsError, R>,
) -> bool {
    match e.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(c)) => {
            c.cancellation_reasons().iter().any(|r| {
                matches!(
                    r.code(),
                    Some("ConditionalCheckFailed") | Some("TransactionConflict")
                )
            })
        }
        Some(TransactWriteItemsError::TransactionInProgressException(_)) => true,
        _ => false,
    }
}

/// Waits before another attempt of an operation that lost a race; `false`
/// (no wait) when the request's deadline leaves no room for another
/// attempt (see `budget`): the caller then gives up with 409/503.
pub(super) async fn retry_after(attempt: usize) -> bool {
    if !crate::budget::may_retry() {
        tracing::warn!(attempt, "retries stopped: the request's deadline is near");
        return false;
    }
    backoff(attempt).await;
    true
}

pub(super) async fn backoff(attempt: usize) {
    let jitter = crate::random::bytes::<1>()[0] as u64 % 10;
    let ms = (5u64 << attempt.min(6)) + jitter;
    tokio::time::sleep(Duration::from_millis(ms)).await;
}

impl DynamoStore {
    /// One live item (consistent read).
    pub(super) async fn get_item(
        &self,
        table: &str,
        pk: &str,
        sk: &str,
    ) -> Result<Option<Item>, StoreError> {
        Ok(self
            .get_raw(table, pk, sk)
            .await?
            .filter(|i| is_live(i, now_secs())))
    }

    /// One item, expired or not (consistent read): read-modify-writes need
    /// the version of an expired item too.
    pub(super) async fn get_raw(
        &self,
        table: &str,
        pk: &str,
        sk: &str,
    ) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(table)
            .set_key(Some(key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_err)?;
        Ok(out.item)
    }

    pub(super) async fn put_item(&self, table: &str, item: Item) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(sdk_err)?;
        Ok(())
    }

    /// Live items of one partition after `after`, up to `limit`.
    pub(super) async fn query_partition(
        &self,
        table: &str,
        pk: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError> {
        let mut out = Vec::new();
        let mut start = after.map(|a| key(pk, a));
        loop {
            let page = self
                .client
                .query()
                .table_name(table)
                .key_condition_expression("pk = :pk")
                .filter_expression("expires_at > :now")
                .expression_attribute_values(":pk", s(pk))
                .expression_attribute_values(":now", n(now_secs()))
                .set_exclusive_start_key(start.take())
                .limit((limit - out.len()).min(1000) as i32)
                .consistent_read(true)
                .send()
                .await
                .map_err(sdk_err)?;
            out.extend(page.items.unwrap_or_default());
            match page.last_evaluated_key {
                Some(k) if out.len() < limit => start = Some(k),
                _ => return Ok(out),
            }
        }
    }

    /// Live items among `keys` (consistent reads), 100 keys per BatchGetItem,
    /// unprocessed keys retried with backoff. Expired items are dropped
    /// before anything decodes them.
    pub(super) async fn batch_get(
        &self,
        table: &str,
        keys: Vec<Item>,
    ) -> Result<Vec<Item>, StoreError> {
        self.batch_get_filtered(table, keys, true).await
    }

    pub(super) async fn batch_get_filtered(
        &self,
        table: &str,
        keys: Vec<Item>,
        live_only: bool,
    ) -> Result<Vec<Item>, StoreError> {
        let now = now_secs();
        let mut found = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(BATCH_GET) {
            let mut pending: Vec<Item> = chunk.to_vec();
            for attempt in 0..=BATCH_RETRIES {
                if pending.is_empty() {
                    break;
                }
                if attempt == BATCH_RETRIES {
                    return Err(StoreError::Unavailable("unprocessed batch reads".into()));
                }
                let ka = KeysAndAttributes::builder()
                    .set_keys(Some(pending))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| StoreError::Internal(e.to_string()))?;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(table, ka)
                    .send()
                    .await
                    .map_err(sdk_err)?;
                found.extend(
                    out.responses
                        .and_then(|mut r| r.remove(table))
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|i| !live_only || is_live(i, now)),
                );
                pending = out
                    .unprocessed_keys
                    .and_then(|mut m| m.remove(table))
                    .map(|ka| ka.keys)
                    .unwrap_or_default();
                if !pending.is_empty() {
                    backoff(attempt).await;
                }
            }
        }
        Ok(found)
    }

    pub(super) async fn batch_delete(
        &self,
        table: &str,
        keys: Vec<Item>,
    ) -> Result<(), StoreError> {
        let requests = keys
            .into_iter()
            .map(|k| {
                let del = DeleteRequest::builder().set_key(Some(k)).build();
                del.map(|d| WriteRequest::builder().delete_request(d).build())
                    .map_err(|e| StoreError::Internal(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.batch_write(table, requests).await
    }

    /// BatchWriteItem in chunks of 25, [`BATCH_WRITES_IN_FLIGHT`] chunks at
    /// once (a 25,000-item delete is 1,000 calls: in sequence it would not
    /// fit a function's time limit), unprocessed items retried with backoff.
    pub(super) async fn batch_write(
        &self,
        table: &str,
        requests: Vec<WriteRequest>,
    ) -> Result<(), StoreError> {
        use futures_util::StreamExt;
        let chunks: Vec<Vec<WriteRequest>> =
            requests.chunks(BATCH_WRITE).map(<[_]>::to_vec).collect();
        let mut written = futures_util::stream::iter(chunks)
            .map(|chunk| self.write_chunk(table, chunk))
            .buffer_unordered(BATCH_WRITES_IN_FLIGHT);
        while let Some(done) = written.next().await {
            done?;
        }
        Ok(())
    }

    async fn write_chunk(&self, table: &str, chunk: Vec<WriteRequest>) -> Result<(), StoreError> {
        if self.faults.take_batch_write_failure() {
            return Err(StoreError::Unavailable(
                "injected batch write failure".into(),
            ));
        }
        let mut pending = chunk;
        for attempt in 0..=BATCH_RETRIES {
            if pending.is_empty() {
                break;
            }
            if attempt == BATCH_RETRIES {
                return Err(StoreError::Unavailable("unprocessed batch writes".into()));
            }
            let out = self
                .client
                .batch_write_item()
                .request_items(table, pending)
                .send()
                .await
                .map_err(sdk_err)?;
            pending = out
                .unprocessed_items
                .and_then(|mut m| m.remove(table))
                .unwrap_or_default();
            if !pending.is_empty() {
                backoff(attempt).await;
            }
        }
        Ok(())
    }
}
