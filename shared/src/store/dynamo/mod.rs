//! DynamoDB adapter. One table per data family (`pk`/`sk` strings, TTL on
//! `expires_at`, PAY_PER_REQUEST). No Scan anywhere; conditional writes for
//! read-modify-write; SDK errors become domain errors here.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, DeleteRequest, KeySchemaElement, KeyType,
    KeysAndAttributes, Put, ReturnValue, ScalarAttributeType, TimeToLiveSpecification,
    TransactWriteItem, WriteRequest,
};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::config_bag::ConfigBag;
use serde_json::Value;

pub mod aggregate;
pub mod codes;
pub mod connections;

use super::codec::{self, Encoded};
use super::{AuthStore, ClaimedPin, DocKey, DocumentStore, SINGLE, auth_keys};
use crate::auth::now_secs;
use crate::error::{ApiError, StoreError};
use crate::ids::{ChannelId, ClientId, UserId};

/// Table names, one per data family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
    pub stores: String,
    pub auth: String,
    pub aggregates: String,
    pub codes: String,
    pub connections: String,
}

impl Tables {
    /// `<prefix>stores`, `<prefix>auth`, `<prefix>aggregates`: what the dev
    /// server and tests create.
    pub fn with_prefix(prefix: &str) -> Self {
        Tables {
            stores: format!("{prefix}stores"),
            auth: format!("{prefix}auth"),
            aggregates: format!("{prefix}aggregates"),
            codes: format!("{prefix}codes"),
            connections: format!("{prefix}connections"),
        }
    }

    fn all(&self) -> [&String; 4] {
        [&self.stores, &self.auth, &self.aggregates, &self.codes]
    }
}

/// Attempts of one optimistic read-modify-write before giving up with 409.
const UPDATE_ATTEMPTS: usize = 8;
/// Items per BatchGetItem (the API's limit).
const BATCH_GET: usize = 100;
/// Items per BatchWriteItem (the API's limit).
const BATCH_WRITE: usize = 25;
/// Bounded retries of unprocessed batch items.
const BATCH_RETRIES: usize = 8;

#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    tables: Arc<Tables>,
    /// Shards of each poll's sums and ballots (see `aggregate`).
    vote_shards: u32,
    /// Code-set generations and chunks seen by this process (see `codes`).
    code_cache: Arc<codes::CodeCache>,
    /// Seconds before unclaimed code indices count as lost (see `codes`).
    recovery_grace: i64,
    faults: Arc<super::Faults>,
    /// Whether fan-out jobs go to the connections table's stream (in AWS,
    /// where a worker function consumes it); else the caller runs them.
    fanout_queue: bool,
}

/// The roots AWS endpoints chain to (Amazon Trust Services).
const AWS_ROOTS: &[u8] = include_bytes!("../../../certs/aws-roots.pem");

/// SDK configuration with one TLS stack (rustls + ring), bounded timeouts and
/// retries, so an unreachable store answers 503 quickly instead of hanging.
///
/// Against AWS itself (no endpoint override) TLS trusts only the Amazon
/// roots, compiled in: loading the system's CA bundle was ~3 ms of every
/// cold start (about half of a function's init). An overridden endpoint may
/// be anything, so it gets the system's roots.
pub async fn sdk_config(endpoint: Option<&str>) -> aws_config::SdkConfig {
    use aws_smithy_http_client::tls;
    let trust = match endpoint {
        None => tls::TrustStore::empty()
            .with_native_roots(false)
            .with_pem_certificate(AWS_ROOTS),
        Some(_) => tls::TrustStore::default(),
    };
    let tls_context = tls::TlsContext::builder()
        .with_trust_store(trust)
        .build()
        .expect("the compiled-in roots parse");
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .tls_context(tls_context)
        .build_https();
    // DynamoDB Local (an endpoint override) is one JVM on the same machine as
    // its load: it can take seconds under a test's burst of transactions.
    let slow = if endpoint.is_some() { 10 } else { 1 };
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(2))
        .operation_attempt_timeout(Duration::from_secs(3 * slow))
        .operation_timeout(Duration::from_secs(8 * slow))
        .build();
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http)
        .timeout_config(timeouts)
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(3));
    // In Lambda the region and the role's credentials are in the
    // environment: naming them skips the default provider chains (profile
    // files, SSO, IMDS), ~0.3 ms of a cold start.
    let in_lambda = std::env::var_os("AWS_LAMBDA_FUNCTION_NAME").is_some()
        && std::env::var_os("AWS_ACCESS_KEY_ID").is_some();
    if let (None, true, Ok(region)) = (endpoint, in_lambda, std::env::var("AWS_REGION")) {
        loader = loader
            .region(aws_sdk_dynamodb::config::Region::new(region))
            .credentials_provider(
                aws_config::environment::EnvironmentVariableCredentialsProvider::new(),
            );
    }
    if let Some(url) = endpoint {
        // A local endpoint (DynamoDB Local) needs no real account: fixed dummy
        // credentials and a default region, so the SDK never probes for them.
        loader = loader
            .endpoint_url(url)
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "local",
                "local",
                None,
                None,
                "medkit-local",
            ))
            .region(aws_sdk_dynamodb::config::Region::new(
                std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()),
            ));
    }
    loader.load().await
}

impl DynamoStore {
    pub fn new(client: Client, tables: Tables) -> Self {
        DynamoStore {
            client,
            tables: Arc::new(tables),
            vote_shards: aggregate::VOTE_SHARDS,
            code_cache: Default::default(),
            recovery_grace: codes::RECOVERY_GRACE_SECS,
            faults: Default::default(),
            fanout_queue: false,
        }
    }

    /// Queue extension-wide fan-out jobs on the connections table's stream
    /// (only where a fan-out worker consumes it: the SAM stack).
    pub fn with_fanout_queue(mut self) -> Self {
        self.fanout_queue = true;
        self
    }

    /// A store from an SDK config (endpoint override for DynamoDB Local).
    pub async fn connect(endpoint: Option<&str>, tables: Tables) -> Self {
        let conf = sdk_config(endpoint).await;
        Self::new(Client::new(&conf), tables)
    }

    /// Failure injection for tests.
    pub fn faults(&self) -> &super::Faults {
        &self.faults
    }

    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    /// Creates the tables with TTL if they do not exist (dev server and tests;
    /// in AWS the SAM template owns them).
    pub async fn ensure_tables(&self) -> Result<(), StoreError> {
        for name in self.tables.all() {
            let created = self
                .client
                .create_table()
                .table_name(name.as_str())
                .billing_mode(BillingMode::PayPerRequest)
                .attribute_definitions(attr_def("pk"))
                .attribute_definitions(attr_def("sk"))
                .key_schema(key_schema("pk", KeyType::Hash))
                .key_schema(key_schema("sk", KeyType::Range))
                .send()
                .await;
            self.finish_create(name.as_str(), created).await?;
        }
        self.ensure_connections_table().await
    }

    /// After a CreateTable: TTL on `expires_at` for a new table; a table
    /// that already exists is fine.
    async fn finish_create<O, R>(
        &self,
        table: &str,
        created: Result<
            O,
            aws_sdk_dynamodb::error::SdkError<
                aws_sdk_dynamodb::operation::create_table::CreateTableError,
                R,
            >,
        >,
    ) -> Result<(), StoreError>
    where
        R: std::fmt::Debug,
    {
        match created {
            Ok(_) => {
                let ttl = TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name("expires_at")
                    .build()
                    .map_err(|e| StoreError::Internal(e.to_string()))?;
                self.client
                    .update_time_to_live()
                    .table_name(table)
                    .time_to_live_specification(ttl)
                    .send()
                    .await
                    .map_err(sdk_err)?;
                Ok(())
            }
            Err(e) if e.code() == Some("ResourceInUseException") => Ok(()),
            Err(e) => Err(sdk_err(e)),
        }
    }

    /// One live item (consistent read).
    async fn get_item(&self, table: &str, pk: &str, sk: &str) -> Result<Option<Item>, StoreError> {
        Ok(self
            .get_raw(table, pk, sk)
            .await?
            .filter(|i| is_live(i, now_secs())))
    }

    /// One item, expired or not (consistent read): read-modify-writes need
    /// the version of an expired item too.
    async fn get_raw(&self, table: &str, pk: &str, sk: &str) -> Result<Option<Item>, StoreError> {
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

    async fn put_item(&self, table: &str, item: Item) -> Result<(), StoreError> {
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
    async fn query_partition(
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
    async fn batch_get(&self, table: &str, keys: Vec<Item>) -> Result<Vec<Item>, StoreError> {
        self.batch_get_filtered(table, keys, true).await
    }

    async fn batch_get_filtered(
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

    async fn batch_delete(&self, table: &str, keys: Vec<Item>) -> Result<(), StoreError> {
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

    /// BatchWriteItem in chunks of 25, unprocessed items retried with backoff.
    async fn batch_write(
        &self,
        table: &str,
        requests: Vec<WriteRequest>,
    ) -> Result<(), StoreError> {
        for chunk in requests.chunks(BATCH_WRITE) {
            let mut pending: Vec<WriteRequest> = chunk.to_vec();
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
        }
        Ok(())
    }
}

type Item = HashMap<String, AttributeValue>;

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn key(pk: &str, sk: &str) -> Item {
    HashMap::from([("pk".to_string(), s(pk)), ("sk".to_string(), s(sk))])
}

fn attr_def(name: &str) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .expect("complete attribute definition")
}

fn key_schema(name: &str, kind: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .expect("complete key schema")
}

fn num(item: &Item, name: &str) -> Option<i64> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().ok(),
        _ => None,
    }
}

fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Some(v),
        _ => None,
    }
}

fn is_live(item: &Item, now: i64) -> bool {
    num(item, "expires_at").is_none_or(|e| e > now)
}

/// The document of an item: `d` holds plain JSON text, `z` zlib bytes.
fn item_doc(item: &Item) -> Result<Option<Value>, StoreError> {
    match (item.get("d"), item.get("z")) {
        (Some(AttributeValue::S(t)), _) => codec::decode_plain(t).map(Some),
        (_, Some(AttributeValue::B(b))) => codec::decode_zlib(b.as_ref()).map(Some),
        _ => Ok(None),
    }
}

/// `SET` clause and values writing an encoded document, bumping the version.
fn doc_update(enc: Encoded, expires_at: i64) -> (String, HashMap<String, AttributeValue>) {
    let (set, remove, body) = match enc {
        Encoded::Plain(t) => ("d", "z", s(t)),
        Encoded::Zlib(b) => ("z", "d", AttributeValue::B(Blob::new(b))),
    };
    let expr = format!(
        "SET {set} = :body, ver = if_not_exists(ver, :zero) + :one, expires_at = :exp REMOVE {remove}"
    );
    let values = HashMap::from([
        (":body".to_string(), body),
        (":zero".to_string(), n(0)),
        (":one".to_string(), n(1)),
        (":exp".to_string(), n(expires_at)),
    ]);
    (expr, values)
}

/// Throttling and server-side faults are retryable (503); the rest are bugs
/// or misconfiguration (500, cause logged).
fn sdk_err<E, R>(e: SdkError<E, R>) -> StoreError
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
fn condition_failed<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    e.code() == Some("ConditionalCheckFailedException")
}

/// A conditional write whose failed condition means "nothing to do".
fn unless_condition_failed<T, E, R>(out: Result<T, SdkError<E, R>>) -> Result<(), StoreError>
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

async fn backoff(attempt: usize) {
    let jitter = crate::random::bytes::<1>()[0] as u64 % 10;
    let ms = (5u64 << attempt.min(6)) + jitter;
    tokio::time::sleep(Duration::from_millis(ms)).await;
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
        let (expr, values) = doc_update(codec::encode(doc)?, now_secs() + ttl_secs);
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

    /// GetItem then UpdateItem conditioned on the version read: 2 round trips
    /// without contention; retried with backoff when another writer won.
    async fn update_doc<F>(
        &self,
        k: &DocKey,
        ttl_secs: i64,
        mut change: F,
    ) -> Result<Value, ApiError>
    where
        F: FnMut(Option<Value>) -> Result<Value, ApiError> + Send + 'static,
    {
        let table = self.tables.stores.as_str();
        let pk = k.partition_key();
        for attempt in 0..UPDATE_ATTEMPTS {
            // Read expired items too: their version still guards the write.
            let item = self.get_raw(table, pk, SINGLE).await?;
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
            let (expr, mut values) = doc_update(codec::encode(&new)?, now + ttl_secs);
            let condition = match version {
                Some(v) => {
                    values.insert(":ver".into(), n(v));
                    "ver = :ver"
                }
                None => "attribute_not_exists(pk)",
            };
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
            match written {
                Ok(_) => return Ok(new),
                Err(e) if condition_failed(&e) => {
                    backoff(attempt).await;
                }
                Err(e) => return Err(sdk_err(e).into()),
            }
        }
        Err(StoreError::Contention.into())
    }
}

impl AuthStore for DynamoStore {
    async fn remember_user(
        &self,
        client: &ClientId,
        user: &UserId,
        ttl_secs: i64,
    ) -> Result<(), StoreError> {
        let mut item = key(&auth_keys::users(client), user.as_str());
        item.insert("expires_at".into(), n(now_secs() + ttl_secs));
        self.put_item(&self.tables.auth, item).await
    }

    async fn list_users(
        &self,
        client: &ClientId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let items = self
            .query_partition(&self.tables.auth, &auth_keys::users(client), after, limit)
            .await?;
        Ok(items
            .iter()
            .filter_map(|i| text(i, "sk").map(str::to_string))
            .collect())
    }

    async fn create_pin(
        &self,
        client: &ClientId,
        pin: &str,
        token_id: &str,
        ttl_secs: i64,
    ) -> Result<bool, StoreError> {
        let now = now_secs();
        let mut item = key(&auth_keys::pin(client, pin), SINGLE);
        item.insert("token".into(), s(token_id));
        item.insert("expires_at".into(), n(now + ttl_secs));
        let out = self
            .client
            .put_item()
            .table_name(self.tables.auth.as_str())
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR expires_at <= :now")
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        match out {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(sdk_err(e)),
        }
    }

    async fn claim_pin(
        &self,
        client: &ClientId,
        pin: &str,
        channel: &ChannelId,
        token_expires_at: i64,
    ) -> Result<Option<ClaimedPin>, StoreError> {
        let table = self.tables.auth.as_str();
        // Deleting the PIN item is the claim: only one validator can win it.
        let deleted = self
            .client
            .delete_item()
            .table_name(table)
            .set_key(Some(key(&auth_keys::pin(client, pin), SINGLE)))
            .condition_expression("attribute_exists(pk) AND expires_at > :now")
            .expression_attribute_values(":now", n(now_secs()))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        let old = match deleted {
            Ok(out) => out.attributes.unwrap_or_default(),
            Err(e) if condition_failed(&e) => {
                return Ok(None);
            }
            Err(e) => return Err(sdk_err(e)),
        };
        let token_id = text(&old, "token")
            .ok_or_else(|| StoreError::Internal("PIN item without token".into()))?
            .to_string();
        let mut binding = key(&auth_keys::pin_token(client, &token_id), SINGLE);
        binding.insert("channel".into(), s(channel.as_str()));
        binding.insert("expires_at".into(), n(token_expires_at));
        let mut index = key(&auth_keys::pin_channel(client, channel), &token_id);
        index.insert("expires_at".into(), n(token_expires_at));
        let put = |item: Item| {
            Put::builder()
                .table_name(table)
                .set_item(Some(item))
                .build()
                .map(|p| TransactWriteItem::builder().put(p).build())
                .map_err(|e| StoreError::Internal(e.to_string()))
        };
        self.client
            .transact_write_items()
            .transact_items(put(binding)?)
            .transact_items(put(index)?)
            .send()
            .await
            .map_err(sdk_err)?;
        Ok(Some(ClaimedPin { token_id }))
    }

    async fn pin_token_channel(
        &self,
        client: &ClientId,
        token_id: &str,
    ) -> Result<Option<ChannelId>, StoreError> {
        let item = self
            .get_item(
                &self.tables.auth,
                &auth_keys::pin_token(client, token_id),
                SINGLE,
            )
            .await?;
        match item.as_ref().and_then(|i| text(i, "channel")) {
            Some(ch) => ChannelId::parse(ch)
                .map(Some)
                .map_err(|_| StoreError::Internal("stored channel id".into())),
            None => Ok(None),
        }
    }

    async fn channel_has_pin_tokens(
        &self,
        client: &ClientId,
        channel: &ChannelId,
    ) -> Result<bool, StoreError> {
        let items = self
            .query_partition(
                &self.tables.auth,
                &auth_keys::pin_channel(client, channel),
                None,
                1,
            )
            .await?;
        Ok(!items.is_empty())
    }

    async fn revoke_pin_tokens(
        &self,
        client: &ClientId,
        channel: &ChannelId,
    ) -> Result<usize, StoreError> {
        let table = self.tables.auth.as_str();
        let pk = auth_keys::pin_channel(client, channel);
        let items = self.query_partition(table, &pk, None, usize::MAX).await?;
        let mut keys = Vec::with_capacity(items.len() * 2);
        for item in &items {
            if let Some(token_id) = text(item, "sk") {
                keys.push(key(&auth_keys::pin_token(client, token_id), SINGLE));
                keys.push(key(&pk, token_id));
            }
        }
        self.batch_delete(table, keys).await?;
        Ok(items.len())
    }
}

/// Counts DynamoDB requests sent (each attempt), for tests and benchmarks.
#[derive(Debug, Clone, Default)]
pub struct RoundTripCounter(Arc<AtomicUsize>);

impl RoundTripCounter {
    pub fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
    pub fn reset(&self) {
        self.0.store(0, Ordering::SeqCst)
    }
}

impl Intercept for RoundTripCounter {
    fn name(&self) -> &'static str {
        "RoundTripCounter"
    }

    fn read_before_transmit(
        &self,
        _ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

impl DynamoStore {
    /// A store whose client counts its round trips.
    pub async fn connect_counted(
        endpoint: Option<&str>,
        tables: Tables,
    ) -> (Self, RoundTripCounter) {
        let counter = RoundTripCounter::default();
        let conf = aws_sdk_dynamodb::config::Builder::from(&sdk_config(endpoint).await)
            .interceptor(counter.clone())
            .build();
        (Self::new(Client::from_conf(conf), tables), counter)
    }
}
