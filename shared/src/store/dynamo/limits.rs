//! Fixed-window budgets on DynamoDB, in the connections table: a budget's
//! window is the item `<client>|rate|<key>` / `<window start>` with a
//! counter `n` (or a string set `ids` of distinct items), one conditional
//! `ADD` per use. Items outlive their window by
//! a minute (TTL).

use super::DynamoStore;
use super::connections::joined;
use std::collections::HashSet;
use std::sync::Mutex;

use aws_sdk_dynamodb::types::AttributeValue;

use super::items::{accepted, condition_failed, key, n, s, sdk_err};
use crate::error::StoreError;
use crate::ids::ClientId;
use crate::limits::Limit;
use crate::store::LimitStore;

/// The (budget, item, window) triples this process has recorded with
/// `spend_distinct`: seeing one again changes nothing, so it needs no
/// request (a viewer changing a vote on a warm instance). Bounded: cleared
/// when full.
#[derive(Default)]
pub(super) struct Seen(Mutex<HashSet<(String, String, i64)>>);

impl Seen {
    const CAPACITY: usize = 50_000;

    fn contains(&self, entry: &(String, String, i64)) -> bool {
        self.lock().contains(entry)
    }

    fn insert(&self, entry: (String, String, i64)) {
        let mut seen = self.lock();
        if seen.len() >= Self::CAPACITY {
            seen.clear();
        }
        seen.insert(entry);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<(String, String, i64)>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl DynamoStore {
    fn budget_key(
        client: &ClientId,
        budget: &str,
        limit: Limit,
        now: i64,
    ) -> std::collections::HashMap<String, AttributeValue> {
        key(
            &joined(client, &format!("rate|{budget}")),
            &limit.window(now).to_string(),
        )
    }
}

impl LimitStore for DynamoStore {
    async fn spend(
        &self,
        client: &ClientId,
        budget: &str,
        limit: Limit,
        now: i64,
    ) -> Result<bool, StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.tables.connections)
            .set_key(Some(Self::budget_key(client, budget, limit, now)))
            .update_expression("ADD n :one SET expires_at = :exp")
            .condition_expression("attribute_not_exists(n) OR n < :max")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":max", n(limit.max as i64))
            .expression_attribute_values(":exp", n(limit.window(now) + limit.window_secs + 60))
            .send()
            .await;
        accepted(out)
    }

    async fn spend_distinct(
        &self,
        client: &ClientId,
        budget: &str,
        item: &str,
        limit: Limit,
        now: i64,
    ) -> Result<bool, StoreError> {
        let seen = (
            format!("{client}|{budget}"),
            item.to_string(),
            limit.window(now),
        );
        if self.seen.contains(&seen) {
            return Ok(true);
        }
        let out = self
            .client
            .update_item()
            .table_name(&self.tables.connections)
            .set_key(Some(Self::budget_key(client, budget, limit, now)))
            .update_expression("ADD ids :set SET expires_at = :exp")
            .condition_expression(
                "attribute_not_exists(ids) OR size(ids) < :max OR contains(ids, :item)",
            )
            .expression_attribute_values(":set", AttributeValue::Ss(vec![item.to_string()]))
            .expression_attribute_values(":item", s(item))
            .expression_attribute_values(":max", n(limit.max as i64))
            .expression_attribute_values(":exp", n(limit.window(now) + limit.window_secs + 60))
            .send()
            .await;
        let made = accepted(out)?;
        if made {
            self.seen.insert(seen);
        }
        Ok(made)
    }

    async fn refund(
        &self,
        client: &ClientId,
        budget: &str,
        limit: Limit,
        now: i64,
    ) -> Result<(), StoreError> {
        let out = self
            .client
            .update_item()
            .table_name(&self.tables.connections)
            .set_key(Some(Self::budget_key(client, budget, limit, now)))
            .update_expression("ADD n :minus")
            .condition_expression("n > :zero")
            .expression_attribute_values(":minus", n(-1))
            .expression_attribute_values(":zero", n(0))
            .send()
            .await;
        match out {
            // Nothing to give back (a new window began): fine.
            Err(e) if condition_failed(&e) => Ok(()),
            other => other.map(|_| ()).map_err(sdk_err),
        }
    }
}
