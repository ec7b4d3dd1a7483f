//! GameLink sessions and their subscriptions on DynamoDB (the connections
//! table).
//!
//! - A session is the connection's own item (`conn|<id>` / `-`) marked
//!   `gl`, with `cl` client, `oa` opened at, `expires_at`, and once logged
//!   in `ch` channel, `tk` token id, `gid` game id; `sb` is the string set
//!   of its subscriptions (encoded, see `Subscription::encode`). It has none
//!   of the index attributes, so no viewer send ever reaches a game.
//! - A subscription is an item `<client>|sub|<encoded>` / `<connection id>`
//!   expiring with its session: a topic's subscribers are one Query.
//! - Subscribing is one TransactWriteItems (the session's `sb`, conditioned
//!   on the session existing and holding fewer than the maximum, and the
//!   subscription item); forgetting a session deletes its subscription
//!   items in one BatchWriteItem.

use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};

use super::DynamoStore;
use super::items::{Item, is_live, key, lost_race, n, num, s, sdk_err, text};
use crate::clock::now_secs;
use crate::error::StoreError;
use crate::gamelink::session::{Login, MAX_SUBSCRIPTIONS, Session};
use crate::ids::{ChannelId, ClientId, ConnectionId};
use crate::realtime::subscription::Subscription;
use crate::store::layout::SINGLE;

/// Marks a connection item that is a GameLink session.
pub const SESSION: &str = "gl";
/// A session's subscriptions.
const SUBSCRIPTIONS: &str = "sb";

fn conn_pk(id: &ConnectionId) -> String {
    format!("conn|{id}")
}

pub(super) fn session_item(session: &Session) -> Item {
    let mut item = key(&conn_pk(&session.id), SINGLE);
    item.insert(SESSION.into(), n(1));
    item.insert("cl".into(), s(session.client_id.as_str()));
    item.insert("oa".into(), n(session.opened_at));
    item.insert("expires_at".into(), n(session.expires_at));
    if session.server {
        item.insert("sv".into(), n(1));
    }
    if let Some(login) = &session.login {
        item.insert("ch".into(), s(login.channel.as_str()));
        item.insert("tk".into(), s(login.token_id.clone()));
        if let Some(g) = &login.game_id {
            item.insert("gid".into(), s(g.clone()));
        }
    }
    item
}

pub(super) fn item_session(item: &Item) -> Option<Session> {
    if !item.contains_key(SESSION) {
        return None;
    }
    let id = ConnectionId::parse(text(item, "pk")?.strip_prefix("conn|")?).ok()?;
    let login = match text(item, "ch") {
        Some(ch) => Some(Login {
            channel: ChannelId::parse(ch).ok()?,
            token_id: text(item, "tk")?.to_string(),
            game_id: text(item, "gid").map(str::to_string),
        }),
        None => None,
    };
    Some(Session {
        id,
        client_id: ClientId::parse(text(item, "cl")?).ok()?,
        opened_at: num(item, "oa")?,
        expires_at: num(item, "expires_at")?,
        login,
        server: item.contains_key("sv"),
    })
}

/// The subscription items a session item lists.
fn subscription_keys(item: &Item) -> Vec<Item> {
    let (Some(client), Some(id)) = (
        text(item, "cl"),
        text(item, "pk").and_then(|p| p.strip_prefix("conn|")),
    ) else {
        return Vec::new();
    };
    let Some(AttributeValue::Ss(subs)) = item.get(SUBSCRIPTIONS) else {
        return Vec::new();
    };
    subs.iter()
        .map(|enc| key(&format!("{client}|sub|{enc}"), id))
        .collect()
}

impl DynamoStore {
    /// Replaces the session's fields, keeping the subscriptions it holds.
    pub(super) async fn write_session(&self, session: &Session) -> Result<(), StoreError> {
        let mut item = session_item(session);
        item.remove("pk");
        item.remove("sk");
        let mut sets = Vec::new();
        let mut update = self
            .client
            .update_item()
            .table_name(&self.tables.connections)
            .set_key(Some(key(&conn_pk(&session.id), SINGLE)));
        for (i, (name, value)) in item.into_iter().enumerate() {
            sets.push(format!("#a{i} = :v{i}"));
            update = update
                .expression_attribute_names(format!("#a{i}"), name)
                .expression_attribute_values(format!(":v{i}"), value);
        }
        update
            .update_expression(format!("SET {}", sets.join(", ")))
            .send()
            .await
            .map_err(sdk_err)?;
        Ok(())
    }

    pub(super) async fn read_session(
        &self,
        id: &ConnectionId,
    ) -> Result<Option<Session>, StoreError> {
        let item = self
            .get_item(&self.tables.connections, &conn_pk(id), SINGLE)
            .await?;
        Ok(item.as_ref().and_then(item_session))
    }

    pub(super) async fn add_subscription(
        &self,
        session: &Session,
        sub: &Subscription,
    ) -> Result<bool, StoreError> {
        let table = self.tables.connections.as_str();
        let enc = sub.encode();
        let to_txn = |e: aws_sdk_dynamodb::error::BuildError| StoreError::Internal(e.to_string());
        let mark = Update::builder()
            .table_name(table)
            .set_key(Some(key(&conn_pk(&session.id), SINGLE)))
            .update_expression("ADD sb :one")
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(sb) OR size(sb) < :max \
                 OR contains(sb, :enc))",
            )
            .expression_attribute_values(":one", AttributeValue::Ss(vec![enc.clone()]))
            .expression_attribute_values(":enc", s(enc))
            .expression_attribute_values(":max", n(MAX_SUBSCRIPTIONS as i64))
            .build()
            .map_err(to_txn)?;
        let mut entry = key(&sub.key(&session.client_id), session.id.as_str());
        entry.insert("expires_at".into(), n(session.expires_at));
        let put = Put::builder()
            .table_name(table)
            .set_item(Some(entry))
            .build()
            .map_err(to_txn)?;
        let out = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().update(mark).build())
            .transact_items(TransactWriteItem::builder().put(put).build())
            .send()
            .await;
        match out {
            Ok(_) => Ok(true),
            // The session is gone or full (a conflicting transaction is
            // retryable, and reported as such).
            Err(e) if lost_race(&e) && !conflicted(&e) => Ok(false),
            Err(e) => Err(sdk_err(e)),
        }
    }

    pub(super) async fn remove_subscription(
        &self,
        session: &Session,
        sub: &Subscription,
    ) -> Result<(), StoreError> {
        let table = &self.tables.connections;
        let unmark = self
            .client
            .update_item()
            .table_name(table)
            .set_key(Some(key(&conn_pk(&session.id), SINGLE)))
            .update_expression("DELETE sb :one")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":one", AttributeValue::Ss(vec![sub.encode()]))
            .send();
        let delete = self
            .client
            .delete_item()
            .table_name(table)
            .set_key(Some(key(&sub.key(&session.client_id), session.id.as_str())))
            .send();
        let (unmarked, deleted) = tokio::join!(unmark, delete);
        super::items::unless_condition_failed(unmarked)?;
        deleted.map_err(sdk_err)?;
        Ok(())
    }

    pub(super) async fn list_subscribers(
        &self,
        client: &ClientId,
        sub: &Subscription,
    ) -> Result<Vec<ConnectionId>, StoreError> {
        let now = now_secs();
        let items = self
            .query_partition(&self.tables.connections, &sub.key(client), None, usize::MAX)
            .await?;
        Ok(items
            .iter()
            .filter(|i| is_live(i, now))
            .filter_map(|i| ConnectionId::parse(text(i, "sk")?).ok())
            .collect())
    }

    /// After a connection item was deleted: the subscription items its
    /// session listed (none for a viewer's connection).
    pub(super) async fn forget_subscriptions(&self, old: &Item) -> Result<(), StoreError> {
        let keys = subscription_keys(old);
        if keys.is_empty() {
            return Ok(());
        }
        self.batch_delete(&self.tables.connections, keys).await
    }
}

/// Whether a cancelled transaction met another one (retryable), rather than
/// a false condition.
fn conflicted<R>(
    e: &aws_sdk_dynamodb::error::SdkError<
        aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
        R,
    >,
) -> bool {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    match e.as_service_error() {
        Some(TransactWriteItemsError::TransactionCanceledException(c)) => c
            .cancellation_reasons()
            .iter()
            .any(|r| r.code() == Some("TransactionConflict")),
        Some(TransactWriteItemsError::TransactionInProgressException(_)) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_survives_its_item_form() {
        let id = ConnectionId::parse("Ab1=").unwrap();
        let opened = Session::opened(id, ClientId::parse("cid").unwrap(), 100);
        assert_eq!(item_session(&session_item(&opened)), Some(opened.clone()));
        let login = Login {
            channel: ChannelId::parse("42").unwrap(),
            token_id: "tok".into(),
            game_id: Some("g".into()),
        };
        let s = opened.logged_in(login, 900);
        let item = session_item(&s);
        assert_eq!(item_session(&item), Some(s));
        // Not a viewer's connection: none of the index attributes.
        for index in ["gc", "gx", "go", "gu", "ro"] {
            assert!(!item.contains_key(index), "{index}");
        }
        let mut listed = item.clone();
        listed.insert(
            SUBSCRIPTIONS.into(),
            AttributeValue::Ss(vec!["42|state:channel".into()]),
        );
        let keys = subscription_keys(&listed);
        assert_eq!(keys, vec![key("cid|sub|42|state:channel", "Ab1=")]);
    }
}
