//! Fixed-window budgets on DynamoDB, in the connections table: a budget's
//! window is the item `<client>|rate|<key>` / `<window start>` with a
//! counter `n` (or a string set `ids` of distinct items), one conditional
//! `ADD` per use. Items outlive their window by
//! a minute (TTL).

use super::DynamoStore;
use super::connections::joined;
use aws_sdk_dynamodb::types::AttributeValue;

use super::items::{condition_failed, key, n, s, sdk_err};
use crate::error::StoreError;
use crate::ids::ClientId;
use crate::limits::Limit;
use crate::store::LimitStore;

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
        match out {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(sdk_err(e)),
        }
    }

    async fn spend_distinct(
        &self,
        client: &ClientId,
        budget: &str,
        item: &str,
        limit: Limit,
        now: i64,
    ) -> Result<bool, StoreError> {
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
        match out {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(sdk_err(e)),
        }
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
