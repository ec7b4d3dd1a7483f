//! Game codes on DynamoDB.
//!
//! Attribute names are short and never DynamoDB reserved words: metadata
//! `nm` name, `g` generation, `tot` total, `cur` cursor, `ret` returned pool,
//! `exh`/`scn` exhausted/scanned times, `alock`/`alx` append lock and its
//! expiry, `parts` the part ids appended; standing `lim`
//! cap, `hd` codes held; chunk `c`; claim `u` user.
//!
//! A set is a metadata item (name, generation, total, `cursor`) plus its
//! codes in chunks of 1000 (one item each, written with BatchWriteItem). A
//! million codes are 1000 chunk items; the metadata never holds codes.
//!
//! Redeem, without contention in 3 round trips:
//! 1. GetItem of the user's standing (cap, codes held): eligibility;
//! 2. `ADD cursor 1` on the metadata, conditioned on `cursor < total` and on
//!    the generation: DynamoDB serialises these, so every caller gets its own
//!    index, with no retries however many redeem at once;
//! 3. TransactWriteItems: a *claim item* for that index (condition: it does
//!    not exist yet) and the code appended to the user's standing
//!    (condition: still under the cap).
//!
//! The claim item is what makes a code someone's: an index can be claimed
//! once, so no code is ever given twice. If a request dies between 2 and 3
//! its index has no claim: when the cursor reaches the end, redeems look for
//! such gaps (indices below the cursor without a claim, once a grace period
//! has passed) and put them in a `returned` pool that later redeems take
//! from, so no code is lost either. Indices whose step 3 failed on the cap go
//! to the pool at once. The chunk read is cached per process: chunks of a
//! generation never change (an append only extends the last one).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{
    AttributeValue, Put, PutRequest, ReturnValue, ReturnValuesOnConditionCheckFailure,
    TransactWriteItem, Update, WriteRequest,
};
use tokio::task::JoinSet;

use super::DynamoStore;
use super::items::{
    Item, condition_failed, is_live, key, n, num, retry_after, s, sdk_err, text,
    unless_condition_failed,
};
use crate::clock::now_secs;
use crate::codes::{self, AppendError, RedeemError, SetInfo, SetUpload, Standing};
use crate::error::StoreError;
use crate::ids::{ClientId, UserId};
use crate::store::CodeStore;
use crate::store::layout::{self, code_keys};

/// Claim items of a set are spread over this many partitions.
const CLAIM_SHARDS: usize = 4;
/// How long after a set ran out redeems wait before treating unclaimed
/// indices as lost (a live request takes well under the 10 s Lambda timeout).
pub const RECOVERY_GRACE_SECS: i64 = 30;
/// How long an append's lock holds if its holder dies: longer than the
/// codes function's 60 s timeout, so a live append is never overtaken.
pub const APPEND_LOCK_SECS: i64 = 120;
/// How long a process trusts the generation of a slot it read.
const GENERATION_TTL: Duration = Duration::from_secs(5);
/// Attempts of one redeem (lost races on the cap, pool pops) before 409.
const ATTEMPTS: usize = 12;
/// Codes one redeem skips, because an earlier set handed them out, before
/// 409 (the next redeem goes on from there).
const MAX_SKIPS: usize = 100;

/// Per-process caches: a slot's generation (short-lived) and chunks
/// (immutable per generation, except the last one growing on append).
#[derive(Default)]
pub struct CodeCache {
    generations: Mutex<HashMap<(ClientId, usize), (String, Instant)>>,
    chunks: Mutex<HashMap<String, std::sync::Arc<Vec<String>>>>,
}

fn internal(e: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(e.to_string())
}

fn claims_pk(c: &ClientId, slot: usize, generation: &str, index: usize) -> String {
    format!("{c}|claims|{slot}|{generation}|{}", index % CLAIM_SHARDS)
}

fn index_sk(index: usize) -> String {
    format!("{index:07}")
}

fn set_info(slot: usize, item: &Item, distributed: usize) -> Option<SetInfo> {
    Some(SetInfo {
        slot,
        name: text(item, "nm")?.to_string(),
        generation: text(item, "g")?.to_string(),
        total: num(item, "tot")? as usize,
        distributed,
    })
}

/// Codes handed out, from the metadata alone: indices taken from the cursor
/// minus those waiting in the pool. Viewers ask for it on every eligibility
/// check, so it must not count claim items; it can only run ahead of the
/// claims by redeems in flight or lost and not yet recovered.
fn handed_out(meta: &Item) -> usize {
    let issued = num(meta, "cur")
        .unwrap_or(0)
        .min(num(meta, "tot").unwrap_or(0)) as usize;
    issued.saturating_sub(numbers(meta, "ret").len())
}

/// A fingerprint as the metadata stores it (`fp`, 16 hex digits).
fn fingerprint_text(f: u64) -> String {
    format!("{f:016x}")
}

fn numbers(item: &Item, name: &str) -> Vec<usize> {
    match item.get(name) {
        Some(AttributeValue::L(l)) => l
            .iter()
            .filter_map(|v| v.as_n().ok()?.parse().ok())
            .collect(),
        _ => Vec::new(),
    }
}

fn standing_of(item: Option<&Item>) -> Standing {
    let Some(item) = item else {
        return Standing::default();
    };
    let held = match item.get("hd") {
        Some(AttributeValue::L(l)) => l.iter().filter_map(|v| v.as_s().ok().cloned()).collect(),
        _ => Vec::new(),
    };
    Standing {
        cap: num(item, "lim").unwrap_or(0) as u32,
        held,
    }
}

/// What step 2 of a redeem got.
enum Taken {
    Index(usize),
    Exhausted(Item),
    NoSet,
}

impl DynamoStore {
    /// Marks an index as spent without a user (its code was handed out by
    /// an earlier set), so recovering lost indices never returns it.
    async fn burn_index(
        &self,
        client: &ClientId,
        slot: usize,
        generation: &str,
        index: usize,
    ) -> Result<(), StoreError> {
        let mut claim = key(
            &claims_pk(client, slot, generation, index),
            &index_sk(index),
        );
        claim.insert("u".into(), s(""));
        claim.insert("expires_at".into(), n(now_secs() + codes::SET_TTL_SECS));
        let out = self
            .client
            .put_item()
            .table_name(self.codes_table())
            .set_item(Some(claim))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        unless_condition_failed(out)
    }

    /// A PUT of the codes the live set has (same fingerprint and total) is
    /// a rename: one UpdateItem of the name, conditioned on the generation
    /// and fingerprint read, so distribution and caps stay. None when it is
    /// not one (or the set changed meanwhile): the PUT replaces the set.
    async fn rename(
        &self,
        client: &ClientId,
        set: &SetUpload,
        old: Option<&Item>,
        fingerprint: &str,
    ) -> Result<Option<SetInfo>, StoreError> {
        let Some(old) = old.filter(|m| is_live(m, now_secs())) else {
            return Ok(None);
        };
        let same =
            text(old, "fp") == Some(fingerprint) && num(old, "tot") == Some(set.codes.len() as i64);
        let Some(generation) = text(old, "g").filter(|_| same) else {
            return Ok(None);
        };
        let renamed = self
            .client
            .update_item()
            .table_name(self.codes_table())
            .set_key(Some(key(
                &code_keys::sets(client),
                &code_keys::slot_sk(set.slot),
            )))
            .update_expression("SET nm = :nm")
            .condition_expression("g = :gen AND fp = :fp")
            .expression_attribute_values(":nm", s(set.name.as_str()))
            .expression_attribute_values(":gen", s(generation))
            .expression_attribute_values(":fp", s(fingerprint))
            .send()
            .await;
        match renamed {
            Ok(_) => Ok(set_info(set.slot, old, handed_out(old)).map(|mut i| {
                i.name = set.name.clone();
                i
            })),
            Err(e) if condition_failed(&e) => Ok(None),
            Err(e) => Err(sdk_err(e)),
        }
    }

    fn codes_table(&self) -> &str {
        &self.tables.codes
    }

    async fn set_meta(&self, client: &ClientId, slot: usize) -> Result<Option<Item>, StoreError> {
        let (pk, sk) = (code_keys::sets(client), code_keys::slot_sk(slot));
        let item = self.get_raw(self.codes_table(), &pk, &sk).await?;
        Ok(item.filter(|i| is_live(i, now_secs())))
    }

    /// The slot's current generation, from the process cache when fresh
    /// (then `true`: another instance may have replaced the set since).
    async fn generation(
        &self,
        client: &ClientId,
        slot: usize,
    ) -> Result<Option<(String, bool)>, StoreError> {
        let k = (client.clone(), slot);
        if let Some((g, at)) = self.code_cache.generations.lock().unwrap().get(&k)
            && at.elapsed() < GENERATION_TTL
        {
            return Ok(Some((g.clone(), true)));
        }
        let generation = self
            .set_meta(client, slot)
            .await?
            .and_then(|m| text(&m, "g").map(str::to_string));
        if let Some(g) = &generation {
            self.code_cache
                .generations
                .lock()
                .unwrap()
                .insert(k, (g.clone(), Instant::now()));
        }
        Ok(generation.map(|g| (g, false)))
    }

    fn forget_generation(&self, client: &ClientId, slot: usize) {
        self.code_cache
            .generations
            .lock()
            .unwrap()
            .remove(&(client.clone(), slot));
    }

    async fn code_at(
        &self,
        client: &ClientId,
        slot: usize,
        generation: &str,
        index: usize,
    ) -> Result<String, StoreError> {
        let (chunk, offset) = layout::chunk_of(index);
        let pk = code_keys::chunks(client, slot, generation);
        let ck = format!("{pk}#{chunk}");
        if let Some(c) = self.code_cache.chunks.lock().unwrap().get(&ck)
            && let Some(code) = c.get(offset)
        {
            return Ok(code.clone());
        }
        let item = self
            .get_raw(self.codes_table(), &pk, &code_keys::chunk_sk(chunk))
            .await?
            .ok_or_else(|| internal("missing code chunk"))?;
        let codes: Vec<String> = layout::decode_chunk(text(&item, "c").unwrap_or_default())
            .into_iter()
            .map(str::to_string)
            .collect();
        let code = codes
            .get(offset)
            .cloned()
            .ok_or_else(|| internal("code index beyond its chunk"))?;
        let mut cache = self.code_cache.chunks.lock().unwrap();
        if cache.len() > 256 {
            cache.clear();
        }
        cache.insert(ck, std::sync::Arc::new(codes));
        Ok(code)
    }

    /// Writes `codes` as chunks starting at `first_index`; a partial last
    /// chunk is read and extended (appends hold the slot's append lock).
    async fn write_chunks(
        &self,
        pk: &str,
        first_index: usize,
        codes_in: &[String],
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let mut requests = Vec::new();
        let mut index = first_index;
        let mut rest = codes_in;
        while !rest.is_empty() {
            let (chunk, offset) = layout::chunk_of(index);
            let take = (layout::CHUNK_CODES - offset).min(rest.len());
            let mut body = String::new();
            if offset > 0 {
                let item = self
                    .get_raw(self.codes_table(), pk, &code_keys::chunk_sk(chunk))
                    .await?;
                body = item
                    .as_ref()
                    .and_then(|i| text(i, "c"))
                    .ok_or_else(|| internal("missing partial chunk"))?
                    .to_string();
                body.push('\n');
            }
            body.push_str(&layout::encode_chunk(&rest[..take]));
            let mut item = key(pk, &code_keys::chunk_sk(chunk));
            item.insert("c".into(), s(body));
            item.insert("expires_at".into(), n(expires_at));
            requests.push(
                PutRequest::builder()
                    .set_item(Some(item))
                    .build()
                    .map(|p| WriteRequest::builder().put_request(p).build())
                    .map_err(internal)?,
            );
            index += take;
            rest = &rest[take..];
        }
        let table = self.codes_table().to_string();
        self.batch_write(&table, requests).await
    }

    /// Keys of every item of a partition (for deletes).
    async fn partition_keys(&self, pk: String) -> Result<Vec<Item>, StoreError> {
        let mut keys = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(self.codes_table())
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(pk.as_str()))
                .projection_expression("pk, sk")
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(sdk_err)?;
            keys.extend(page.items.unwrap_or_default());
            match page.last_evaluated_key {
                Some(k) => start = Some(k),
                None => return Ok(keys),
            }
        }
    }

    /// Indices claimed so far (one Query per claim shard, in parallel).
    async fn claimed(
        &self,
        client: &ClientId,
        slot: usize,
        generation: &str,
    ) -> Result<HashSet<usize>, StoreError> {
        let mut tasks = JoinSet::new();
        for shard in 0..CLAIM_SHARDS {
            let me = self.clone();
            let pk = claims_pk(client, slot, generation, shard);
            tasks.spawn(async move { me.partition_keys(pk).await });
        }
        let mut out = HashSet::new();
        while let Some(done) = tasks.join_next().await {
            for item in done.map_err(internal)?? {
                if let Some(i) = text(&item, "sk").and_then(|k| k.parse().ok()) {
                    out.insert(i);
                }
            }
        }
        Ok(out)
    }

    /// Step 2 of a redeem: the next index, from the cursor or the pool.
    async fn take_index(
        &self,
        client: &ClientId,
        slot: usize,
        generation: &str,
    ) -> Result<Taken, StoreError> {
        let meta_key = key(&code_keys::sets(client), &code_keys::slot_sk(slot));
        let out = self
            .client
            .update_item()
            .table_name(self.codes_table())
            .set_key(Some(meta_key.clone()))
            .update_expression("ADD cur :one")
            .condition_expression("g = :gen AND cur < tot AND expires_at > :now")
            .expression_attribute_values(":now", n(now_secs()))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":gen", s(generation))
            .return_values(ReturnValue::UpdatedNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match out {
            Ok(o) => {
                let cursor = o
                    .attributes
                    .as_ref()
                    .and_then(|a| num(a, "cur"))
                    .ok_or_else(|| internal("no cursor returned"))?;
                Ok(Taken::Index(cursor as usize - 1))
            }
            Err(e) => {
                let old = e
                    .as_service_error()
                    .filter(|se| se.is_conditional_check_failed_exception())
                    .map(|se| match se {
                        aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(c) => c.item.clone(),
                        _ => None,
                    });
                match old {
                    None => Err(sdk_err(e)),
                    Some(None) => Ok(Taken::NoSet),
                    Some(Some(item))
                        if text(&item, "g") != Some(generation) || !is_live(&item, now_secs()) =>
                    {
                        Ok(Taken::NoSet)
                    }
                    Some(Some(item)) => Ok(Taken::Exhausted(item)),
                }
            }
        }
    }

    /// The set ran out: take an index from the pool, refilling the pool
    /// from unclaimed indices once the grace period has passed.
    async fn take_returned(
        &self,
        client: &ClientId,
        slot: usize,
        generation: &str,
        meta: Item,
    ) -> Result<Option<usize>, StoreError> {
        let meta_key = key(&code_keys::sets(client), &code_keys::slot_sk(slot));
        let mut meta = meta;
        for attempt in 0..ATTEMPTS {
            if let Some(first) = numbers(&meta, "ret").first().copied() {
                let popped = self
                    .client
                    .update_item()
                    .table_name(self.codes_table())
                    .set_key(Some(meta_key.clone()))
                    .update_expression("REMOVE ret[0]")
                    .condition_expression("g = :gen AND ret[0] = :x")
                    .expression_attribute_values(":gen", s(generation))
                    .expression_attribute_values(":x", n(first as i64))
                    .send()
                    .await;
                match popped {
                    Ok(_) => return Ok(Some(first)),
                    Err(e) if condition_failed(&e) => {
                        if !retry_after(attempt).await {
                            return Err(StoreError::Contention);
                        }
                        match self.set_meta(client, slot).await? {
                            Some(m) => meta = m,
                            None => return Ok(None),
                        }
                        continue;
                    }
                    Err(e) => return Err(sdk_err(e)),
                }
            }
            // The pool is empty: look for lost indices, at most once per grace period.
            let now = now_secs();
            let since = match num(&meta, "scn").or_else(|| num(&meta, "exh")) {
                Some(t) => t,
                None => {
                    self.mark(&meta_key, generation, "exh", now).await?;
                    now
                }
            };
            if now - since < self.recovery_grace {
                return Ok(None);
            }
            let claimed = self.claimed(client, slot, generation).await?;
            let issued = (num(&meta, "cur").unwrap_or(0) as usize)
                .min(num(&meta, "tot").unwrap_or(0) as usize);
            let pooled: HashSet<usize> = numbers(&meta, "ret").into_iter().collect();
            let lost: Vec<AttributeValue> = (0..issued)
                .filter(|i| !claimed.contains(i) && !pooled.contains(i))
                .map(|i| n(i as i64))
                .collect();
            self.mark(&meta_key, generation, "scn", now).await?;
            if lost.is_empty() {
                return Ok(None);
            }
            tracing::warn!(
                slot,
                lost = lost.len(),
                "recovered codes lost by interrupted redeems"
            );
            self.return_indices(&meta_key, generation, lost).await?;
            meta = match self.set_meta(client, slot).await? {
                Some(m) => m,
                None => return Ok(None),
            };
        }
        Ok(None)
    }

    async fn mark(
        &self,
        meta_key: &Item,
        generation: &str,
        attr: &str,
        at: i64,
    ) -> Result<(), StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(self.codes_table())
            .set_key(Some(meta_key.clone()))
            .update_expression(format!("SET {attr} = :at"))
            .condition_expression("g = :gen")
            .expression_attribute_values(":at", n(at))
            .expression_attribute_values(":gen", s(generation))
            .send()
            .await;
        unless_condition_failed(out)
    }

    async fn return_indices(
        &self,
        meta_key: &Item,
        generation: &str,
        indices: Vec<AttributeValue>,
    ) -> Result<(), StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(self.codes_table())
            .set_key(Some(meta_key.clone()))
            .update_expression("SET ret = list_append(if_not_exists(ret, :empty), :idx)")
            .condition_expression("g = :gen")
            .expression_attribute_values(":empty", AttributeValue::L(vec![]))
            .expression_attribute_values(":idx", AttributeValue::L(indices))
            .expression_attribute_values(":gen", s(generation))
            .send()
            .await;
        unless_condition_failed(out)
    }

    /// How long after a set ran out unclaimed indices count as lost
    /// (default 30 s; tests of the crash recovery use 0).
    /// A shorter append lock (tests of a crashed append).
    pub fn with_append_lock_secs(mut self, secs: i64) -> Self {
        self.append_lock_secs = secs;
        self
    }

    pub fn with_code_recovery_grace(mut self, secs: i64) -> Self {
        self.recovery_grace = secs;
        self
    }
}

impl CodeStore for DynamoStore {
    async fn put_set(
        &self,
        client: &ClientId,
        set: &SetUpload,
        expires_at: i64,
    ) -> Result<SetInfo, StoreError> {
        let generation = crate::random::token_id(10);
        let old = self.set_meta(client, set.slot).await?;
        let fingerprint =
            fingerprint_text(codes::fingerprint(codes::FINGERPRINT_START, &set.codes));
        if let Some(info) = self.rename(client, set, old.as_ref(), &fingerprint).await? {
            return Ok(info);
        }
        // Chunks first: the metadata never points at codes not yet written.
        self.write_chunks(
            &code_keys::chunks(client, set.slot, &generation),
            0,
            &set.codes,
            expires_at,
        )
        .await?;
        let mut item = key(&code_keys::sets(client), &code_keys::slot_sk(set.slot));
        item.insert("nm".into(), s(set.name.as_str()));
        item.insert("g".into(), s(generation.as_str()));
        item.insert("tot".into(), n(set.codes.len() as i64));
        item.insert("cur".into(), n(0));
        item.insert("fp".into(), s(fingerprint.as_str()));
        item.insert("expires_at".into(), n(expires_at));
        self.client
            .put_item()
            .table_name(self.codes_table())
            .set_item(Some(item))
            .send()
            .await
            .map_err(sdk_err)?;
        self.forget_generation(client, set.slot);
        if let Some(old_gen) = old.as_ref().and_then(|m| text(m, "g")) {
            let keys = self
                .partition_keys(code_keys::chunks(client, set.slot, old_gen))
                .await?;
            let table = self.codes_table().to_string();
            self.batch_delete(&table, keys).await?;
        }
        Ok(SetInfo {
            slot: set.slot,
            name: set.name.clone(),
            generation,
            total: set.codes.len(),
            distributed: 0,
        })
    }

    /// One append at a time per slot: a lock (`alock`) taken on the total
    /// read, which expires (`alx`) in case its holder died, so a crashed
    /// append never blocks the slot for good. Parts already taken (`parts`)
    /// are answered without writing.
    async fn append_codes(
        &self,
        client: &ClientId,
        slot: usize,
        new: &[String],
        part: Option<&str>,
    ) -> Result<Option<SetInfo>, AppendError> {
        let meta_key = key(&code_keys::sets(client), &code_keys::slot_sk(slot));
        let Some(meta) = self.set_meta(client, slot).await? else {
            return Ok(None);
        };
        if let Some(p) = part
            && matches!(meta.get("parts"), Some(AttributeValue::Ss(ss)) if ss.iter().any(|x| x == p))
        {
            return Ok(set_info(slot, &meta, 0));
        }
        let generation = text(&meta, "g").unwrap_or_default().to_string();
        let total = num(&meta, "tot").unwrap_or(0) as usize;
        codes::check_append(slot, total, new.len())?;
        let lock = crate::random::token_id(12);
        let now = now_secs();
        let locked = self
            .client
            .update_item()
            .table_name(self.codes_table())
            .set_key(Some(meta_key.clone()))
            .update_expression("SET alock = :lock, alx = :until")
            .condition_expression(
                "g = :gen AND tot = :total AND (attribute_not_exists(alock) OR alx < :now)",
            )
            .expression_attribute_values(":lock", s(lock.as_str()))
            .expression_attribute_values(":until", n(now + self.append_lock_secs))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":gen", s(generation.as_str()))
            .expression_attribute_values(":total", n(total as i64))
            .send()
            .await;
        if let Err(e) = locked {
            if condition_failed(&e) {
                return Err(AppendError::Busy);
            }
            return Err(sdk_err(e).into());
        }
        if self.faults.take_append_crash() {
            return Err(AppendError::Store(StoreError::Unavailable(
                "injected crash after taking the append lock".into(),
            )));
        }
        let expires_at = num(&meta, "expires_at").unwrap_or(0);
        let written = self
            .write_chunks(
                &code_keys::chunks(client, slot, &generation),
                total,
                new,
                expires_at,
            )
            .await;
        let mut release = self
            .client
            .update_item()
            .table_name(self.codes_table())
            .set_key(Some(meta_key))
            .condition_expression("alock = :lock")
            .expression_attribute_values(":lock", s(lock.as_str()));
        // The fingerprint continues over the appended codes (a set stored
        // before fingerprints keeps none).
        let fingerprint = text(&meta, "fp")
            .and_then(|f| u64::from_str_radix(f, 16).ok())
            .map(|f| fingerprint_text(codes::fingerprint(f, new)));
        let set_fp = if fingerprint.is_some() {
            ", fp = :fp"
        } else {
            ""
        };
        if let Some(fp) = &fingerprint
            && written.is_ok()
        {
            release = release.expression_attribute_values(":fp", s(fp.as_str()));
        }
        release = match (written.is_ok(), part) {
            (true, Some(p)) => release
                .update_expression(format!(
                    "SET tot = :total{set_fp} ADD parts :part REMOVE alock, alx"
                ))
                .expression_attribute_values(":total", n((total + new.len()) as i64))
                .expression_attribute_values(":part", AttributeValue::Ss(vec![p.to_string()])),
            (true, None) => release
                .update_expression(format!("SET tot = :total{set_fp} REMOVE alock, alx"))
                .expression_attribute_values(":total", n((total + new.len()) as i64)),
            (false, _) => release.update_expression("REMOVE alock, alx"),
        };
        let release = release.send().await;
        written?;
        release.map_err(sdk_err)?;
        let info = set_info(slot, &meta, 0).map(|mut i| {
            i.total = total + new.len();
            i
        });
        Ok(info)
    }

    async fn sets(&self, client: &ClientId) -> Result<Vec<SetInfo>, StoreError> {
        let out = self
            .client
            .query()
            .table_name(self.codes_table())
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(code_keys::sets(client)))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_err)?;
        let now = now_secs();
        let mut sets: Vec<SetInfo> = out
            .items
            .unwrap_or_default()
            .iter()
            .filter(|i| is_live(i, now))
            .filter_map(|item| {
                let slot = text(item, "sk")?.parse::<usize>().ok()?;
                set_info(slot, item, handed_out(item))
            })
            .collect();
        sets.sort_by_key(|s| s.slot);
        Ok(sets)
    }

    async fn delete_sets(&self, client: &ClientId) -> Result<Vec<SetInfo>, StoreError> {
        let sets = self.sets(client).await?;
        let mut keys = self.partition_keys(code_keys::sets(client)).await?;
        for set in &sets {
            keys.extend(
                self.partition_keys(code_keys::chunks(client, set.slot, &set.generation))
                    .await?,
            );
            self.forget_generation(client, set.slot);
        }
        let table = self.codes_table().to_string();
        self.batch_delete(&table, keys).await?;
        Ok(sets)
    }

    async fn raise_caps(
        &self,
        client: &ClientId,
        users: &[UserId],
        caps: &[(SetInfo, u32)],
        expires_at: i64,
    ) -> Result<(), StoreError> {
        // One conditional UpdateItem per (user, slot), 64 in flight (at most
        // MAX_MARKS_PER_REQUEST of them: ~1-2 s on DynamoDB).
        let mut jobs: Vec<(String, String, u32)> = Vec::new();
        for u in users {
            for (set, cap) in caps {
                jobs.push((
                    code_keys::standing(client, u),
                    code_keys::standing_sk(set.slot, &set.generation),
                    *cap,
                ));
            }
        }
        let mut tasks = JoinSet::new();
        for (pk, sk, cap) in jobs {
            while tasks.len() >= 64 {
                tasks
                    .join_next()
                    .await
                    .expect("a task")
                    .map_err(internal)??;
            }
            let me = self.clone();
            tasks.spawn(async move {
                let out = me
                    .client
                    .update_item()
                    .table_name(me.codes_table())
                    .set_key(Some(key(&pk, &sk)))
                    .update_expression("SET lim = :cap, expires_at = :exp")
                    .condition_expression("attribute_not_exists(lim) OR lim < :cap")
                    .expression_attribute_values(":cap", n(cap as i64))
                    .expression_attribute_values(":exp", n(expires_at))
                    .send()
                    .await;
                // A failed condition: already at least this high (caps never shrink).
                unless_condition_failed(out)
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.map_err(internal)??;
        }
        Ok(())
    }

    async fn standings(
        &self,
        client: &ClientId,
        user: &UserId,
        sets: &[SetInfo],
    ) -> Result<Vec<Standing>, StoreError> {
        let pk = code_keys::standing(client, user);
        let keys: Vec<Item> = sets
            .iter()
            .map(|s| key(&pk, &code_keys::standing_sk(s.slot, &s.generation)))
            .collect();
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let table = self.codes_table().to_string();
        let found = self.batch_get(&table, keys).await?;
        Ok(sets
            .iter()
            .map(|s| {
                let sk = code_keys::standing_sk(s.slot, &s.generation);
                standing_of(found.iter().find(|i| text(i, "sk") == Some(sk.as_str())))
            })
            .collect())
    }

    async fn redeem(
        &self,
        client: &ClientId,
        user: &UserId,
        slot: usize,
    ) -> Result<(String, Vec<String>), RedeemError> {
        let table = self.codes_table().to_string();
        // Attempts spent on races; codes skipped because an earlier set
        // handed them out spend none (but are bounded too).
        let (mut tries, mut skipped) = (0, 0);
        while tries < ATTEMPTS {
            let attempt = tries;
            tries += 1;
            let (generation, cached) = self
                .generation(client, slot)
                .await?
                .ok_or(RedeemError::NoSet(slot))?;
            let (standing_pk, standing_sk) = (
                code_keys::standing(client, user),
                code_keys::standing_sk(slot, &generation),
            );
            let standing_key = key(&standing_pk, &standing_sk);
            // 1. Eligibility.
            let standing_item = self.get_raw(&table, &standing_pk, &standing_sk).await?;
            let standing = standing_of(standing_item.as_ref().filter(|i| is_live(i, now_secs())));
            if standing.claimable() == 0 {
                if cached {
                    // The set may have been replaced on another instance and
                    // the user marked for the new one: read it again first.
                    self.forget_generation(client, slot);
                    continue;
                }
                return Err(RedeemError::NotEligible(slot));
            }
            // 2. An index of our own.
            let index = match self.take_index(client, slot, &generation).await? {
                Taken::Index(i) => i,
                Taken::NoSet => {
                    self.forget_generation(client, slot);
                    if attempt == 0 {
                        continue;
                    }
                    return Err(RedeemError::NoSet(slot));
                }
                Taken::Exhausted(meta) => {
                    match self.take_returned(client, slot, &generation, meta).await? {
                        Some(i) => i,
                        None => return Err(RedeemError::Exhausted(slot)),
                    }
                }
            };
            if self.faults.take_redeem_crash() {
                return Err(RedeemError::Store(StoreError::Unavailable(
                    "injected crash after claiming a code".into(),
                )));
            }
            let code = self.code_at(client, slot, &generation, index).await?;
            // 3. Claim it and record it, together.
            let mut claim = key(
                &claims_pk(client, slot, &generation, index),
                &index_sk(index),
            );
            claim.insert("u".into(), s(user.as_str()));
            let expires_at = match num_expiry(&standing_item) {
                0 => now_secs() + codes::SET_TTL_SECS,
                e => e,
            };
            claim.insert("expires_at".into(), n(expires_at));
            let put = Put::builder()
                .table_name(table.as_str())
                .set_item(Some(claim))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map_err(internal)?;
            // The value, whatever set it is in: never handed out twice.
            let mut given = key(&code_keys::given(client, &code), &code);
            given.insert("u".into(), s(user.as_str()));
            given.insert("expires_at".into(), n(now_secs() + codes::SET_TTL_SECS));
            let given = Put::builder()
                .table_name(table.as_str())
                .set_item(Some(given))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map_err(internal)?;
            let record = Update::builder()
                .table_name(table.as_str())
                .set_key(Some(standing_key))
                .update_expression("SET hd = list_append(if_not_exists(hd, :empty), :code)")
                .condition_expression(
                    "lim > size(hd) OR (attribute_not_exists(hd) AND lim > :zero)",
                )
                .expression_attribute_values(":empty", AttributeValue::L(vec![]))
                .expression_attribute_values(":code", AttributeValue::L(vec![s(code.as_str())]))
                .expression_attribute_values(":zero", n(0))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .build()
                .map_err(internal)?;
            let sent = self
                .client
                .transact_write_items()
                .transact_items(TransactWriteItem::builder().put(put).build())
                .transact_items(TransactWriteItem::builder().update(record).build())
                .transact_items(TransactWriteItem::builder().put(given).build())
                // A retry by the SDK of a transaction that landed succeeds
                // instead of failing on its own claim.
                .client_request_token(crate::random::token_id(16))
                .send()
                .await;
            match sent {
                Ok(_) => {
                    let mut held = standing.held;
                    held.push(code.clone());
                    return Ok((code, held));
                }
                Err(e) => {
                    let reasons: Vec<Option<String>> = match e.as_service_error() {
                        Some(aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c)) => {
                            c.cancellation_reasons().iter().map(|r| r.code().map(str::to_string)).collect()
                        }
                        _ => return Err(sdk_err(e).into()),
                    };
                    let failed = |i: usize| {
                        reasons.get(i).and_then(|r| r.as_deref()) == Some("ConditionalCheckFailed")
                    };
                    let claim_taken = failed(0);
                    if !claim_taken && failed(2) {
                        // An earlier set gave this code: the index is spent
                        // for good (a claim of nobody's), and the next one
                        // is tried at no attempt's cost.
                        self.burn_index(client, slot, &generation, index).await?;
                        skipped += 1;
                        if skipped > MAX_SKIPS {
                            return Err(StoreError::Contention.into());
                        }
                        tries -= 1;
                        continue;
                    }
                    if !claim_taken {
                        // Not recorded (the cap filled up meanwhile, or a
                        // conflict): the index goes back to the pool.
                        let meta_key = key(&code_keys::sets(client), &code_keys::slot_sk(slot));
                        self.return_indices(&meta_key, &generation, vec![n(index as i64)])
                            .await?;
                    }
                    if !retry_after(attempt).await {
                        break;
                    }
                }
            }
        }
        Err(StoreError::Contention.into())
    }
}

fn num_expiry(item: &Option<Item>) -> i64 {
    item.as_ref()
        .and_then(|i| num(i, "expires_at"))
        .unwrap_or(0)
}
