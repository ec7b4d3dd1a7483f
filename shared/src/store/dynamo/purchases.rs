//! Bits purchases on DynamoDB (the purchases table):
//!
//! - `<client>|tx|<transaction id>` / `#`: the exactly-once guard, holding
//!   the record as first recorded (a repeated submission answers with it);
//! - `<client>|txch|<channel>` / `<transaction id>`: the record in its
//!   channel's partition (one Query lists a channel), with its state in
//!   `st` (and a validating game's `dt`), which one conditional UpdateItem
//!   moves.
//!
//! A first submission is one TransactWriteItems (both items, the guard's
//! condition deciding); a repeat one more GetItem; a state change one
//! UpdateItem (its failed condition returns the item as it is).

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Put, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};

use super::DynamoStore;
use super::items::{Item, key, lost_race, n, retry_after, s, sdk_err, text};
use crate::clock::now_secs;
use crate::error::StoreError;
use crate::ids::{ChannelId, ClientId};
use crate::purchases::{KEEP_SECS, Purchase, State, newest_first};
use crate::store::layout::{SINGLE, purchase_keys};
use crate::store::{Moved, PurchaseStore, Recorded};

const RECORD: &str = "rec";
const STATE: &str = "st";
const DETAILS: &str = "dt";
/// Tries of a first submission that meets a concurrent one in flight.
const RECORD_ATTEMPTS: usize = 5;

fn item(pk: &str, sk: &str, p: &Purchase) -> Result<Item, StoreError> {
    let mut item = key(pk, sk);
    let rec = serde_json::to_string(p).map_err(|e| StoreError::Internal(e.to_string()))?;
    item.insert(RECORD.into(), s(rec));
    item.insert(STATE.into(), s(p.state.as_str()));
    item.insert("expires_at".into(), n(p.recorded_at + KEEP_SECS));
    Ok(item)
}

fn state_of(text: &str) -> Option<State> {
    [
        State::Received,
        State::Delivered,
        State::Validated,
        State::Refunded,
    ]
    .into_iter()
    .find(|s| s.as_str() == text)
}

/// The purchase an item holds, with its current state and details.
fn purchase_of(item: &Item) -> Result<Purchase, StoreError> {
    let bad = || StoreError::Internal("a stored purchase does not read".into());
    let mut p: Purchase =
        serde_json::from_str(text(item, RECORD).ok_or_else(bad)?).map_err(|_| bad())?;
    if let Some(st) = text(item, STATE).and_then(state_of) {
        p.state = st;
    }
    if let Some(d) = text(item, DETAILS) {
        p.details = Some(d.to_string());
    }
    Ok(p)
}

impl PurchaseStore for DynamoStore {
    async fn record_purchase(
        &self,
        client: &ClientId,
        p: &Purchase,
    ) -> Result<Recorded, StoreError> {
        let table = self.tables.purchases.as_str();
        let channel = ChannelId::parse(p.channel.as_str())
            .map_err(|_| StoreError::Internal("a purchase's channel id".into()))?;
        let guard_pk = purchase_keys::transaction(client, &p.id);
        let put = |item: Item, guarded: bool| {
            let mut b = Put::builder().table_name(table).set_item(Some(item));
            if guarded {
                // An expired guard (past the keeping period) is no guard.
                b = b
                    .condition_expression("attribute_not_exists(pk) OR expires_at <= :now")
                    .expression_attribute_values(":now", n(now_secs()));
            }
            b.build()
                .map(|p| TransactWriteItem::builder().put(p).build())
                .map_err(|e| StoreError::Internal(e.to_string()))
        };
        // A concurrent submission's transaction may be in flight: then the
        // guard is not readable yet, and this one tries again.
        for attempt in 0..RECORD_ATTEMPTS {
            let written = self
                .client
                .transact_write_items()
                .transact_items(put(item(&guard_pk, SINGLE, p)?, true)?)
                .transact_items(put(
                    item(&purchase_keys::channel(client, &channel), &p.id, p)?,
                    false,
                )?)
                .send()
                .await;
            match written {
                Ok(_) if self.faults.take_purchase_crash() => {
                    return Err(StoreError::Unavailable(
                        "injected: crashed after recording".into(),
                    ));
                }
                Ok(_) => return Ok(Recorded::New(p.clone())),
                Err(e) if lost_race(&e) => {
                    if let Some(first) = self.get_item(table, &guard_pk, SINGLE).await? {
                        return Ok(Recorded::Known(purchase_of(&first)?));
                    }
                    if !retry_after(attempt).await {
                        break;
                    }
                }
                Err(e) => return Err(sdk_err(e)),
            }
        }
        Err(StoreError::Contention)
    }

    async fn purchase(
        &self,
        client: &ClientId,
        channel: &ChannelId,
        id: &str,
    ) -> Result<Option<Purchase>, StoreError> {
        let pk = purchase_keys::channel(client, channel);
        match self.get_item(&self.tables.purchases, &pk, id).await? {
            Some(item) => purchase_of(&item).map(Some),
            None => Ok(None),
        }
    }

    async fn channel_purchases(
        &self,
        client: &ClientId,
        channel: &ChannelId,
    ) -> Result<Vec<Purchase>, StoreError> {
        let pk = purchase_keys::channel(client, channel);
        let items = self
            .query_partition(&self.tables.purchases, &pk, None, usize::MAX)
            .await?;
        let all = items
            .iter()
            .map(purchase_of)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(newest_first(all))
    }

    async fn move_purchase(
        &self,
        client: &ClientId,
        channel: &ChannelId,
        id: &str,
        from: &[State],
        to: State,
        details: Option<String>,
    ) -> Result<Moved, StoreError> {
        let pk = purchase_keys::channel(client, channel);
        let names: Vec<String> = (0..from.len()).map(|i| format!(":f{i}")).collect();
        let mut update = self
            .client
            .update_item()
            .table_name(self.tables.purchases.as_str())
            .set_key(Some(key(&pk, id)))
            .condition_expression(format!(
                "attribute_exists(pk) AND expires_at > :now AND {STATE} IN ({})",
                names.join(", ")
            ))
            .expression_attribute_values(":now", n(now_secs()))
            .expression_attribute_values(":to", s(to.as_str()))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        for (name, st) in names.iter().zip(from) {
            update = update.expression_attribute_values(name.as_str(), s(st.as_str()));
        }
        update = match details {
            Some(d) => update
                .update_expression(format!("SET {STATE} = :to, {DETAILS} = :dt"))
                .expression_attribute_values(":dt", AttributeValue::S(d)),
            None => update.update_expression(format!("SET {STATE} = :to")),
        };
        match update.send().await {
            Ok(out) => purchase_of(&out.attributes.unwrap_or_default()).map(Moved::Done),
            Err(e) => match e.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(c)) => match c.item() {
                    Some(old)
                        if old
                            .get("expires_at")
                            .and_then(|v| v.as_n().ok())
                            .and_then(|v| v.parse::<i64>().ok())
                            .is_some_and(|t| t > now_secs()) =>
                    {
                        purchase_of(old).map(Moved::Refused)
                    }
                    _ => Ok(Moved::Absent),
                },
                _ => Err(sdk_err(e)),
            },
        }
    }
}
