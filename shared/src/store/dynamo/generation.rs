//! Generations of polls and rankings, so that deleting one is a single write.
//!
//! A poll's items (sum shards and ballots; a ranking's holders and counts)
//! live in partitions named after the poll's *generation*, and a small head
//! item holds the current one (no head: generation 0, the layout from before
//! generations). Deleting adds 1 to the generation: from that write on,
//! readers and writers use new, empty partitions. So a delete is never cut
//! off half-way, however many items the poll has, and never races a vote:
//! a vote reads the head in the same BatchGetItem as its ballot and shards
//! and writes in the generation it read, both items in one transaction, so
//! a vote that lands after the delete belongs wholly to the deleted poll.
//!
//! The old generation's items are then deleted within [`SWEEP_BUDGET`];
//! whatever is left is invisible and expires by TTL (votes 7 days, ranks
//! 24 hours by default). Heads have no TTL: one ~60-byte item per poll
//! ever deleted, since a head that expired would bring an old generation back.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::ReturnValue;

use super::DynamoStore;
use super::items::{Item, key, n, num, s, sdk_err, text};
use crate::aggregate::AggKey;
use crate::error::StoreError;
use crate::store::layout::{SINGLE, aggregate_partition};

/// Time a delete spends removing the old generation's items before it
/// answers (a function has 10 s; the rest expires by TTL).
pub const SWEEP_BUDGET: Duration = Duration::from_secs(3);
/// Partitions swept at once (each sends up to 8 BatchWriteItems at once).
const PARTITIONS_IN_FLIGHT: usize = 4;
/// Items per page of the sweep (one Query page, then its BatchWriteItems).
const SWEEP_PAGE: i32 = 1000;
/// Generations remembered by one process; a guess, always checked (below).
const REMEMBERED: usize = 10_000;
/// Reads that found a newer generation than guessed, before giving up (a
/// poll deleted this many times during one read).
const GENERATION_RETRIES: usize = 3;

/// The generation each head had when this process last read it. Only a
/// guess: every read fetches the head with the items it guessed, and starts
/// again when the guess was wrong (after another instance's delete).
#[derive(Default)]
pub struct Generations(Mutex<HashMap<String, i64>>);

impl Generations {
    fn guess(&self, head: &str) -> i64 {
        let seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        seen.get(head).copied().unwrap_or(0)
    }

    fn learn(&self, head: &str, generation: i64) {
        let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= REMEMBERED && !seen.contains_key(head) {
            seen.clear();
        }
        seen.insert(head.to_string(), generation);
    }
}

/// The head partition of an aggregate (`head_kind` tells polls from rankings).
pub(super) fn head_pk(agg: &AggKey, head_kind: &str) -> String {
    aggregate_partition(agg, head_kind)
}

/// The base partition of `kind` in a generation. Ids cannot contain `|`, so
/// `…|<id>|g<n>` never collides with another id's generation 0.
pub(super) fn partition(agg: &AggKey, kind: &str, generation: i64) -> String {
    let base = aggregate_partition(agg, kind);
    if generation == 0 {
        base
    } else {
        format!("{base}|g{generation}")
    }
}

fn generation_of(head: Option<&Item>) -> i64 {
    head.and_then(|h| num(h, "g")).unwrap_or(0)
}

impl DynamoStore {
    /// One BatchGetItem of the head and the items `keys(generation)` names
    /// for the guessed generation; again only when the guess was wrong.
    /// Returns the generation and the items found (without the head).
    pub(super) async fn get_in_generation(
        &self,
        head: &str,
        keys: impl Fn(i64) -> Vec<Item>,
        live_only: bool,
    ) -> Result<(i64, Vec<Item>), StoreError> {
        let table = self.tables.aggregates.clone();
        let mut guess = self.generations.guess(head);
        for _ in 0..=GENERATION_RETRIES {
            let mut wanted = keys(guess);
            wanted.push(key(head, SINGLE));
            let mut items = self.batch_get_filtered(&table, wanted, live_only).await?;
            let at = items.iter().position(|i| text(i, "pk") == Some(head));
            let found = generation_of(at.map(|i| &items[i]));
            if found == guess {
                if let Some(i) = at {
                    items.swap_remove(i);
                }
                return Ok((found, items));
            }
            self.generations.learn(head, found);
            guess = found;
        }
        Err(StoreError::Contention)
    }

    /// The current generation: the guess, checked by a GetItem that runs
    /// beside `read(guess)`; `read` runs again when the guess was wrong.
    pub(super) async fn read_in_generation<T, F, Fut>(
        &self,
        head: &str,
        read: F,
    ) -> Result<T, StoreError>
    where
        F: Fn(i64) -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let mut guess = self.generations.guess(head);
        for _ in 0..=GENERATION_RETRIES {
            let table = self.tables.aggregates.clone();
            let (found, out) = tokio::join!(self.get_raw(&table, head, SINGLE), read(guess));
            let found = generation_of(found?.as_ref());
            if found == guess {
                return out;
            }
            self.generations.learn(head, found);
            guess = found;
        }
        Err(StoreError::Contention)
    }

    /// Starts a new generation (one UpdateItem); returns the one it ended.
    pub(super) async fn next_generation(&self, head: &str) -> Result<i64, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.tables.aggregates)
            .set_key(Some(key(head, SINGLE)))
            .update_expression("ADD g :one")
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(sdk_err)?;
        let new = out
            .attributes
            .as_ref()
            .and_then(|a| num(a, "g"))
            .unwrap_or(1);
        self.generations.learn(head, new);
        Ok(new - 1)
    }

    /// Deletes the items of partitions nobody reads any more, a few
    /// partitions at a time and page by page, until done or `budget` is
    /// spent. Returns (items deleted, whether that was all). Errors are
    /// logged, not returned: the delete they follow has happened, and what
    /// is left expires by TTL.
    pub(super) async fn sweep(&self, pks: Vec<String>, budget: Duration) -> (usize, bool) {
        use futures_util::StreamExt;
        let deadline = Instant::now() + budget;
        let mut swept = futures_util::stream::iter(pks)
            .map(|pk| self.sweep_partition(pk, deadline))
            .buffer_unordered(PARTITIONS_IN_FLIGHT);
        let (mut deleted, mut complete) = (0, true);
        while let Some((n, done)) = swept.next().await {
            deleted += n;
            complete &= done;
        }
        (deleted, complete)
    }

    async fn sweep_partition(&self, pk: String, deadline: Instant) -> (usize, bool) {
        let table = &self.tables.aggregates;
        let mut deleted = 0;
        let mut start = None;
        loop {
            if Instant::now() >= deadline {
                return (deleted, false);
            }
            let page = self
                .client
                .query()
                .table_name(table)
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", s(pk.as_str()))
                .projection_expression("pk, sk")
                .set_exclusive_start_key(start.take())
                .limit(SWEEP_PAGE)
                .send()
                .await;
            let page = match page {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %sdk_err(e), "sweep stopped; the rest expires by TTL");
                    return (deleted, false);
                }
            };
            let keys: Vec<Item> = page.items.unwrap_or_default();
            let count = keys.len();
            if let Err(e) = self.batch_delete(table, keys).await {
                tracing::warn!(error = %e, "sweep stopped; the rest expires by TTL");
                return (deleted, false);
            }
            deleted += count;
            match page.last_evaluated_key {
                Some(k) => start = Some(k),
                None => return (deleted, true),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{AggregateId, ChannelId, ClientId};

    #[test]
    fn generations_name_distinct_partitions() {
        let agg = |id: &str| {
            AggKey::for_caller(
                &ClientId::parse("c").unwrap(),
                Some(&ChannelId::parse("1").unwrap()),
                &AggregateId::parse(id).unwrap(),
            )
            .unwrap()
        };
        let p = agg("poll");
        assert_eq!(partition(&p, "vb", 0), aggregate_partition(&p, "vb"));
        assert_ne!(partition(&p, "vb", 1), partition(&p, "vb", 0));
        assert_ne!(partition(&p, "vb", 1), partition(&p, "vb", 2));
        // Generation 0 of another id never looks like a later generation.
        assert!(AggregateId::parse("poll|g1").is_err());
        let cache = Generations::default();
        assert_eq!(cache.guess("h"), 0);
        cache.learn("h", 3);
        assert_eq!(cache.guess("h"), 3);
    }
}
