//! Aggregates on DynamoDB, built for hot polls.
//!
//! A single item takes about 1000 writes/s, and a poll in a big channel can
//! take more votes than that. So nothing every vote writes is a single item:
//!
//! - **Vote sums** are split over [`VOTE_SHARDS`] items (own partitions). A
//!   vote adds its delta to one shard picked at random; readers fetch all
//!   shards in one BatchGetItem and add them up. Inside a shard the sums are
//!   kept per expiry bucket (attributes `b<bucket>n|s|q|v<slot>`, see
//!   `aggregate::window`), so a ballot and its share of the sums expire
//!   together.
//! - **Ballots** are one item per voter, spread over [`VOTE_SHARDS`]
//!   partitions by a stable hash of the voter, so listing them (vote logs,
//!   winners) is a handful of Queries, never a Scan.
//! - A vote is one TransactWriteItems: the ballot (conditioned on the version
//!   read) and the shard's delta together, so the sums never drift from the
//!   ballots, whatever races. Conflicts are retried from a fresh read.
//!
//! Rankings use the same pattern: holders (one per voter) and counts per
//! (bucket, key) in [`RANK_SHARDS`] partitions. Accumulated entries go to
//! their channel's partition and to a sharded extension-wide copy, in one
//! BatchWriteItem.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{
    AttributeValue, Put, PutRequest, TransactWriteItem, Update, WriteRequest,
};
use tokio::task::JoinSet;

use super::DynamoStore;
use super::generation::{SWEEP_BUDGET, head_pk, partition};
use super::items::{Item, is_live, key, lost_race, n, num, retry_after, s, sdk_err, text};
use crate::aggregate::AggKey;
use crate::aggregate::accumulate::Entry;
use crate::aggregate::vote::{Ballot, BucketedSums, SPECIFIC_SLOTS, Sums, replace_ballot};
use crate::clock::now_secs;
use crate::error::StoreError;
use crate::hash::stable_hash;
use crate::ids::ViewerId;
use crate::store::AggregateStore;
use crate::store::layout::{
    SINGLE, agg_kinds, aggregate_partition, entry_sk, parse_rank_count_sk, rank_count_sk,
};

/// Shards of a poll's sums and of its ballots: ~8 × 500 transactional
/// votes/s per poll before DynamoDB throttles a partition.
pub const VOTE_SHARDS: u32 = 8;
/// Shards of a ranking's counts and holders.
pub const RANK_SHARDS: u32 = 4;
/// Shards of an id's extension-wide copy of accumulated entries.
pub const ENTRY_SHARDS: u32 = 4;
/// Attempts of one vote or rank change before giving up with 409.
const ATTEMPTS: usize = 10;
/// Shard items outlive their newest bucket by this much, so a writer with a
/// slightly slower clock never shortens another's expiry.
const SHARD_EXPIRY_MARGIN: i64 = 24 * 3600;

fn shard_pk(base: &str, shard: u32) -> String {
    format!("{base}|{shard}")
}

fn voter_shard(voter: &str, shards: u32) -> u32 {
    stable_hash(voter) % shards
}

fn random_shard(shards: u32) -> u32 {
    u32::from_le_bytes(crate::random::bytes::<4>()) % shards
}

fn internal(e: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(e.to_string())
}

/// Attribute name of one figure of one bucket in a vote shard.
fn sums_attr(bucket: i64, figure: &str) -> String {
    format!("b{bucket}{figure}")
}

/// The bucket and figure (`n`, `s`, `q`, `v<slot>`) an attribute holds.
fn parse_sums_attr(name: &str) -> Option<(i64, &str)> {
    let rest = name.strip_prefix('b')?;
    let split = rest.find(|c: char| !c.is_ascii_digit())?;
    Some((rest[..split].parse().ok()?, &rest[split..]))
}

/// A vote shard item as per-bucket sums (every bucket, live or not).
fn shard_sums(item: &Item) -> BucketedSums {
    let mut out = BucketedSums::default();
    for (name, value) in item {
        let (Some((bucket, figure)), AttributeValue::N(v)) = (parse_sums_attr(name), value) else {
            continue;
        };
        let Ok(v) = v.parse::<i64>() else { continue };
        let sums = out.0.entry(bucket).or_default();
        match figure {
            "n" => sums.n += v,
            "s" => sums.s += v,
            "q" => sums.q += v,
            _ => {
                if let Some(slot) = figure
                    .strip_prefix('v')
                    .and_then(|x| x.parse::<usize>().ok())
                    .filter(|x| *x < SPECIFIC_SLOTS)
                {
                    sums.v[slot] += v;
                }
            }
        }
    }
    out
}

/// `ADD` terms for a delta, one per non-zero figure.
fn delta_terms(delta: &BucketedSums) -> Vec<(String, i64)> {
    let mut terms = Vec::new();
    for (bucket, d) in &delta.0 {
        for (figure, v) in [("n", d.n), ("s", d.s), ("q", d.q)] {
            if v != 0 {
                terms.push((sums_attr(*bucket, figure), v));
            }
        }
        for (slot, v) in d.v.iter().enumerate() {
            if *v != 0 {
                terms.push((sums_attr(*bucket, &format!("v{slot}")), *v));
            }
        }
    }
    terms
}

fn ballot_item(pk: &str, b: &Ballot, version: i64) -> Item {
    let mut item = key(pk, &b.voter);
    item.insert("u".into(), s(b.user_id.as_str()));
    item.insert("v".into(), n(b.value));
    item.insert("w".into(), n(b.weight));
    item.insert("t".into(), n(b.cast_at));
    item.insert("b".into(), n(b.bucket));
    item.insert("ver".into(), n(version));
    item.insert("expires_at".into(), n(b.bucket));
    item
}

fn parse_ballot(item: &Item) -> Result<Ballot, StoreError> {
    let bad = || internal("malformed ballot item");
    Ok(Ballot {
        voter: text(item, "sk").ok_or_else(bad)?.to_string(),
        user_id: text(item, "u").unwrap_or_default().to_string(),
        value: num(item, "v").ok_or_else(bad)?,
        weight: num(item, "w").ok_or_else(bad)?,
        cast_at: num(item, "t").ok_or_else(bad)?,
        bucket: num(item, "b").ok_or_else(bad)?,
    })
}

/// The condition that the item still has the version that was read.
fn version_condition(version: Option<i64>) -> (&'static str, Option<AttributeValue>) {
    match version {
        Some(v) => ("ver = :ver", Some(n(v))),
        None => ("attribute_not_exists(pk)", None),
    }
}

fn txn_put(table: &str, item: Item, version: Option<i64>) -> Result<TransactWriteItem, StoreError> {
    let (cond, ver) = version_condition(version);
    Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression(cond)
        .set_expression_attribute_values(ver.map(|v| HashMap::from([(":ver".to_string(), v)])))
        .build()
        .map(|p| TransactWriteItem::builder().put(p).build())
        .map_err(internal)
}

fn txn_update(
    table: &str,
    k: Item,
    expr: String,
    values: HashMap<String, AttributeValue>,
    names: Option<HashMap<String, String>>,
) -> Result<TransactWriteItem, StoreError> {
    Update::builder()
        .table_name(table)
        .set_key(Some(k))
        .update_expression(expr)
        .set_expression_attribute_values(Some(values))
        .set_expression_attribute_names(names)
        .build()
        .map(|u| TransactWriteItem::builder().update(u).build())
        .map_err(internal)
}

/// Most expired attributes one vote removes (bounds the expression's size;
/// later votes remove the rest).
const MAX_REMOVALS: usize = 48;

/// The update of one vote shard: add the delta, push the shard's expiry
/// past its newest bucket, and drop attributes of expired buckets.
fn shard_update(
    table: &str,
    pk: &str,
    delta: &BucketedSums,
    current: Option<&Item>,
    now: i64,
) -> Result<TransactWriteItem, StoreError> {
    let mut values = HashMap::new();
    let mut adds = Vec::new();
    for (i, (attr, v)) in delta_terms(delta).into_iter().enumerate() {
        adds.push(format!("{attr} :d{i}"));
        values.insert(format!(":d{i}"), n(v));
    }
    let buckets: Vec<(&String, i64)> = current
        .into_iter()
        .flat_map(|item| item.keys())
        .filter_map(|name| Some((name, parse_sums_attr(name)?.0)))
        .collect();
    let newest = buckets
        .iter()
        .map(|(_, b)| *b)
        .chain(delta.0.keys().copied())
        .max()
        .unwrap_or(now);
    values.insert(":exp".into(), n(newest + SHARD_EXPIRY_MARGIN));
    let mut expr = format!("SET expires_at = :exp ADD {}", adds.join(", "));
    let dead: Vec<&str> = buckets
        .iter()
        .filter(|(_, b)| *b <= now)
        .map(|(name, _)| name.as_str())
        .take(MAX_REMOVALS)
        .collect();
    if !dead.is_empty() {
        expr.push_str(" REMOVE ");
        expr.push_str(&dead.join(", "));
    }
    txn_update(table, key(pk, SINGLE), expr, values, None)
}

impl DynamoStore {
    fn agg_table(&self) -> &str {
        &self.tables.aggregates
    }

    /// Live items of a partition with `sk >= from`, in sort order (or
    /// reversed), at most `limit`.
    /// Live items of `pk` with sort keys from `from` (and up to `to`,
    /// both inclusive), at most `limit`.
    async fn query_items(
        &self,
        pk: String,
        (from, to): (Option<String>, Option<String>),
        newest_first: bool,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError> {
        let mut out = Vec::new();
        let mut start = None;
        loop {
            let mut q = self
                .client
                .query()
                .table_name(self.agg_table())
                .filter_expression("expires_at > :now")
                .expression_attribute_values(":pk", s(pk.as_str()))
                .expression_attribute_values(":now", n(now_secs()))
                .scan_index_forward(!newest_first)
                .set_exclusive_start_key(start.take())
                .limit((limit - out.len()).min(1000) as i32)
                .consistent_read(true);
            q = match (&from, &to) {
                (Some(f), Some(t)) => q
                    .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
                    .expression_attribute_values(":from", s(f.as_str()))
                    .expression_attribute_values(":to", s(t.as_str())),
                (Some(f), None) => q
                    .key_condition_expression("pk = :pk AND sk >= :from")
                    .expression_attribute_values(":from", s(f.as_str())),
                (None, Some(t)) => q
                    .key_condition_expression("pk = :pk AND sk <= :to")
                    .expression_attribute_values(":to", s(t.as_str())),
                (None, None) => q.key_condition_expression("pk = :pk"),
            };
            let page = q.send().await.map_err(sdk_err)?;
            out.extend(page.items.unwrap_or_default());
            match page.last_evaluated_key {
                Some(k) if out.len() < limit => start = Some(k),
                _ => return Ok(out),
            }
        }
    }

    /// `query_items` over several partitions at once (shards), one task each.
    async fn query_shards(
        &self,
        pks: Vec<String>,
        range: (Option<String>, Option<String>),
        newest_first: bool,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError> {
        let mut tasks = JoinSet::new();
        for pk in pks {
            let me = self.clone();
            let range = range.clone();
            tasks.spawn(async move { me.query_items(pk, range, newest_first, limit).await });
        }
        let mut out = Vec::new();
        while let Some(done) = tasks.join_next().await {
            out.extend(done.map_err(internal)??);
        }
        Ok(out)
    }

    fn vote_shard_pks(&self, poll: &AggKey, generation: i64) -> Vec<String> {
        let base = partition(poll, agg_kinds::VOTE_SUMS, generation);
        (0..self.vote_shards).map(|k| shard_pk(&base, k)).collect()
    }

    fn ballot_pk(&self, poll: &AggKey, voter: &str, generation: i64) -> String {
        shard_pk(
            &partition(poll, agg_kinds::BALLOTS, generation),
            voter_shard(voter, self.vote_shards),
        )
    }

    fn ballot_pks(&self, poll: &AggKey, generation: i64) -> Vec<String> {
        let base = partition(poll, agg_kinds::BALLOTS, generation);
        (0..self.vote_shards).map(|k| shard_pk(&base, k)).collect()
    }

    /// The keys a vote reads: every sums shard and the voter's ballot.
    fn vote_keys(&self, poll: &AggKey, voter: Option<&str>, generation: i64) -> Vec<Item> {
        let mut keys: Vec<Item> = self
            .vote_shard_pks(poll, generation)
            .iter()
            .map(|pk| key(pk, SINGLE))
            .collect();
        if let Some(v) = voter {
            keys.push(key(&self.ballot_pk(poll, v, generation), v));
        }
        keys
    }

    /// The same store with `n` vote shards instead of [`VOTE_SHARDS`]. Only
    /// for measuring the design (1 = a single counter item): a deployment
    /// must never change it, since it decides where ballots are found.
    pub fn with_vote_shards(mut self, n: u32) -> Self {
        self.vote_shards = n.max(1);
        self
    }

    fn rank_holder_pk(rank: &AggKey, voter: &str, generation: i64) -> String {
        shard_pk(
            &partition(rank, agg_kinds::RANK_HOLDERS, generation),
            voter_shard(voter, RANK_SHARDS),
        )
    }

    fn rank_holder_pks(rank: &AggKey, generation: i64) -> Vec<String> {
        let base = partition(rank, agg_kinds::RANK_HOLDERS, generation);
        (0..RANK_SHARDS).map(|k| shard_pk(&base, k)).collect()
    }

    fn rank_count_pks(rank: &AggKey, generation: i64) -> Vec<String> {
        let base = partition(rank, agg_kinds::RANK_COUNTS, generation);
        (0..RANK_SHARDS).map(|k| shard_pk(&base, k)).collect()
    }

    /// A rank holder as stored (expired or not: its version guards writes).
    async fn rank_holder(
        &self,
        rank: &AggKey,
        voter: &str,
    ) -> Result<(i64, Option<Item>), StoreError> {
        let head = head_pk(rank, agg_kinds::RANK_HEAD);
        let (generation, items) = self
            .get_in_generation(
                &head,
                |g| vec![key(&Self::rank_holder_pk(rank, voter, g), voter)],
                false,
            )
            .await?;
        Ok((generation, items.into_iter().next()))
    }

    /// Starts a new generation and sweeps the old one's partitions.
    async fn delete_generation(
        &self,
        head: &str,
        old_pks: impl Fn(i64) -> Vec<String>,
    ) -> Result<(), StoreError> {
        let ended = self.next_generation(head).await?;
        let (deleted, complete) = self.sweep(old_pks(ended), SWEEP_BUDGET).await;
        tracing::info!(deleted, complete, "aggregate deleted");
        Ok(())
    }

    fn entry_shard_pks(acc: &AggKey) -> Vec<String> {
        let all = AggKey {
            scope: None,
            ..acc.clone()
        };
        let base = aggregate_partition(&all, agg_kinds::ENTRIES);
        (0..ENTRY_SHARDS).map(|k| shard_pk(&base, k)).collect()
    }
}

impl AggregateStore for DynamoStore {
    /// Round trips without contention: 2 (BatchGetItem of the ballot and
    /// every shard, then TransactWriteItems of ballot + one shard).
    /// The head (the poll's generation) is in the same BatchGetItem.
    async fn cast_vote(&self, poll: &AggKey, ballot: Ballot) -> Result<Sums, StoreError> {
        let table = self.agg_table().to_string();
        let head = head_pk(poll, agg_kinds::VOTE_HEAD);
        for attempt in 0..ATTEMPTS {
            // The ballot is read expired or not: its version guards the write.
            let (generation, items) = self
                .get_in_generation(
                    &head,
                    |g| self.vote_keys(poll, Some(&ballot.voter), g),
                    false,
                )
                .await?;
            let ballot_pk = self.ballot_pk(poll, &ballot.voter, generation);
            let shard_pks = self.vote_shard_pks(poll, generation);
            let now = now_secs();
            let mut shards: HashMap<&str, &Item> = HashMap::new();
            let mut old_item = None;
            for item in &items {
                match text(item, "pk") {
                    Some(pk) if pk == ballot_pk => old_item = Some(item),
                    Some(pk) => {
                        if let Some(pk) = shard_pks.iter().find(|p| p.as_str() == pk) {
                            shards.insert(pk.as_str(), item);
                        }
                    }
                    None => {}
                }
            }
            let version = old_item.and_then(|i| num(i, "ver"));
            let old = match old_item {
                Some(i) if is_live(i, now) => Some(parse_ballot(i)?),
                _ => None,
            };
            let mut delta = BucketedSums::default();
            replace_ballot(&mut delta, old.as_ref(), &ballot);
            let mut total = BucketedSums::default();
            for item in shards.values() {
                for (b, s) in &shard_sums(item).0 {
                    total.0.entry(*b).or_default().merge(s);
                }
            }
            for (b, s) in &delta.0 {
                total.0.entry(*b).or_default().merge(s);
            }

            let mut txn = vec![txn_put(
                &table,
                ballot_item(&ballot_pk, &ballot, version.unwrap_or(0) + 1),
                version,
            )?];
            if !delta.0.is_empty() {
                let shard = &shard_pks[random_shard(self.vote_shards) as usize];
                let current = shards.get(shard.as_str()).copied();
                txn.push(shard_update(&table, shard, &delta, current, now)?);
            }
            if self.faults.take_lost_vote_race() {
                // As if another voter's transaction had won this one.
                if !retry_after(attempt).await {
                    break;
                }
                continue;
            }
            let sent = self
                .client
                .transact_write_items()
                .set_transact_items(Some(txn))
                .send()
                .await;
            match sent {
                Ok(_) => return Ok(total.live(now)),
                Err(e) if lost_race(&e) => {
                    if !retry_after(attempt).await {
                        break;
                    }
                }
                Err(e) => return Err(sdk_err(e)),
            }
        }
        Err(StoreError::Contention)
    }

    /// One BatchGetItem: every shard (and the caller's ballot).
    async fn vote_totals(
        &self,
        poll: &AggKey,
        voter: Option<&ViewerId>,
    ) -> Result<(Sums, Option<Ballot>), StoreError> {
        let head = head_pk(poll, agg_kinds::VOTE_HEAD);
        let voter = voter.map(ViewerId::as_str);
        let (generation, items) = self
            .get_in_generation(&head, |g| self.vote_keys(poll, voter, g), true)
            .await?;
        let ballot_pk = voter.map(|v| self.ballot_pk(poll, v, generation));
        let now = now_secs();
        let mut total = Sums::default();
        let mut ballot = None;
        for item in items {
            if ballot_pk.as_deref() == text(&item, "pk") {
                ballot = Some(parse_ballot(&item)?);
            } else {
                total.merge(&shard_sums(&item).live(now));
            }
        }
        Ok((total, ballot))
    }

    /// One Query per ballot shard, in parallel.
    async fn ballots(&self, poll: &AggKey) -> Result<Vec<Ballot>, StoreError> {
        let head = head_pk(poll, agg_kinds::VOTE_HEAD);
        let now = now_secs();
        self.read_in_generation(&head, |g| {
            self.query_shards(self.ballot_pks(poll, g), (None, None), false, usize::MAX)
        })
        .await?
        .iter()
        .filter(|i| is_live(i, now))
        .map(parse_ballot)
        .collect()
    }

    /// One UpdateItem (a new generation), then a bounded sweep of the old.
    async fn delete_poll(&self, poll: &AggKey) -> Result<(), StoreError> {
        let head = head_pk(poll, agg_kinds::VOTE_HEAD);
        self.delete_generation(&head, |g| {
            let mut pks = self.ballot_pks(poll, g);
            pks.extend(self.vote_shard_pks(poll, g));
            pks
        })
        .await
    }

    /// Round trips: 1 when the key is unchanged, else 2 (GetItem of the
    /// holder, TransactWriteItems of holder + the two counts it moves).
    async fn set_rank_key(
        &self,
        rank: &AggKey,
        voter: &ViewerId,
        rank_key: &str,
        bucket: i64,
    ) -> Result<Option<String>, StoreError> {
        let table = self.agg_table().to_string();
        for attempt in 0..ATTEMPTS {
            let (generation, item) = self.rank_holder(rank, voter.as_str()).await?;
            let holder_pk = Self::rank_holder_pk(rank, voter.as_str(), generation);
            let counts = Self::rank_count_pks(rank, generation);
            let now = now_secs();
            let version = item.as_ref().and_then(|i| num(i, "ver"));
            let old = item
                .as_ref()
                .filter(|i| is_live(i, now))
                .and_then(|i| Some((text(i, "k")?.to_string(), num(i, "b")?)));
            if old
                .as_ref()
                .is_some_and(|(k, b)| k == rank_key && *b == bucket)
            {
                return Ok(old.map(|(k, _)| k));
            }
            let mut holder = key(&holder_pk, voter.as_str());
            holder.insert("k".into(), s(rank_key));
            holder.insert("b".into(), n(bucket));
            holder.insert("ver".into(), n(version.unwrap_or(0) + 1));
            holder.insert("expires_at".into(), n(bucket));
            let shard = &counts[random_shard(RANK_SHARDS) as usize];
            let bump = |k: &str, b: i64, delta: i64| {
                txn_update(
                    &table,
                    key(shard, &rank_count_sk(b, k)),
                    "SET expires_at = :exp ADD n :d".into(),
                    HashMap::from([(":exp".into(), n(b)), (":d".into(), n(delta))]),
                    None,
                )
            };
            let mut txn = vec![
                txn_put(&table, holder, version)?,
                bump(rank_key, bucket, 1)?,
            ];
            if let Some((k, b)) = &old {
                txn.push(bump(k, *b, -1)?);
            }
            let sent = self
                .client
                .transact_write_items()
                .set_transact_items(Some(txn))
                .send()
                .await;
            match sent {
                Ok(_) => return Ok(old.map(|(k, _)| k)),
                Err(e) if lost_race(&e) => {
                    if !retry_after(attempt).await {
                        break;
                    }
                }
                Err(e) => return Err(sdk_err(e)),
            }
        }
        Err(StoreError::Contention)
    }

    async fn rank_key(
        &self,
        rank: &AggKey,
        voter: &ViewerId,
    ) -> Result<Option<String>, StoreError> {
        let (_, item) = self.rank_holder(rank, voter.as_str()).await?;
        Ok(item
            .filter(|i| is_live(i, now_secs()))
            .and_then(|i| text(&i, "k").map(str::to_string)))
    }

    /// One Query per count shard, in parallel, over live buckets only.
    async fn rank_counts(&self, rank: &AggKey) -> Result<Vec<(String, i64)>, StoreError> {
        let from = format!("{:012}", now_secs() + 1);
        let head = head_pk(rank, agg_kinds::RANK_HEAD);
        let items = self
            .read_in_generation(&head, |g| {
                self.query_shards(
                    Self::rank_count_pks(rank, g),
                    (Some(from.clone()), None),
                    false,
                    usize::MAX,
                )
            })
            .await?;
        Ok(items
            .iter()
            .filter_map(|i| {
                let (_, k) = parse_rank_count_sk(text(i, "sk")?)?;
                Some((k.to_string(), num(i, "n")?))
            })
            .collect())
    }

    /// One UpdateItem (a new generation), then a bounded sweep of the old.
    async fn delete_rank(&self, rank: &AggKey) -> Result<(), StoreError> {
        let head = head_pk(rank, agg_kinds::RANK_HEAD);
        self.delete_generation(&head, |g| {
            let mut pks = Self::rank_holder_pks(rank, g);
            pks.extend(Self::rank_count_pks(rank, g));
            pks
        })
        .await
    }

    /// One BatchWriteItem: the channel's copy and the extension-wide copy.
    async fn add_entry(
        &self,
        acc: &AggKey,
        entry: &Entry,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let sk = entry_sk(entry.observed);
        let body = serde_json::to_string(entry).map_err(internal)?;
        let shard = voter_shard(&entry.channel_id, ENTRY_SHARDS) as usize;
        let mut pks = vec![Self::entry_shard_pks(acc).swap_remove(shard)];
        if acc.scope.is_some() {
            pks.push(aggregate_partition(acc, agg_kinds::ENTRIES));
        }
        let requests = pks
            .iter()
            .map(|pk| {
                let mut item = key(pk, &sk);
                item.insert("e".into(), s(body.as_str()));
                item.insert("expires_at".into(), n(expires_at));
                PutRequest::builder()
                    .set_item(Some(item))
                    .build()
                    .map(|p| WriteRequest::builder().put_request(p).build())
                    .map_err(internal)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let table = self.agg_table().to_string();
        self.batch_write(&table, requests).await
    }

    /// One Query for a channel; one per extension-wide shard (in parallel)
    /// for every channel.
    async fn entries(
        &self,
        acc: &AggKey,
        start: i64,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<Entry>, StoreError> {
        // Sort keys are `<ms:013>|<random>`: `<before:013>` sorts below every
        // entry of that millisecond, so BETWEEN leaves them out.
        let range = (
            Some(format!("{:013}", start.saturating_add(1))),
            before.map(|b| format!("{b:013}")),
        );
        let items = match acc.scope {
            Some(_) => {
                self.query_items(
                    aggregate_partition(acc, agg_kinds::ENTRIES),
                    range,
                    true,
                    limit,
                )
                .await?
            }
            None => {
                self.query_shards(Self::entry_shard_pks(acc), range, true, limit)
                    .await?
            }
        };
        let mut out = items
            .iter()
            .map(|i| {
                serde_json::from_str::<Entry>(text(i, "e").unwrap_or_default()).map_err(internal)
            })
            .collect::<Result<Vec<_>, _>>()?;
        out.sort_by_key(|e| std::cmp::Reverse(e.observed));
        out.truncate(limit);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_attributes_round_trip() {
        let mut delta = BucketedSums::default();
        delta.add(1_700_000_000, 3, 2);
        delta.add(1_700_086_400, 40, 1);
        let mut item: Item = key("p", SINGLE);
        item.insert("expires_at".into(), n(5));
        for (attr, v) in delta_terms(&delta) {
            item.insert(attr, n(v));
        }
        assert_eq!(shard_sums(&item), delta);
        assert_eq!(parse_sums_attr("b17n"), Some((17, "n")));
        assert_eq!(parse_sums_attr("b17v31"), Some((17, "v31")));
        assert_eq!(parse_sums_attr("bx"), None);
        assert_eq!(voter_shard("U123", VOTE_SHARDS), stable_hash("U123") % 8);
    }
}
