//! Identity bookkeeping on DynamoDB (the auth table): users who shared
//! identity, PINs and the tokens they bind.

use aws_sdk_dynamodb::types::{Put, ReturnValue, TransactWriteItem};

use super::DynamoStore;
use super::items::{Item, accepted, condition_failed, key, n, s, sdk_err, text};
use crate::clock::now_secs;
use crate::error::StoreError;
use crate::ids::{ChannelId, ClientId, UserId};
use crate::store::layout::{SINGLE, auth_keys};
use crate::store::{AuthStore, ClaimedGamePin, ClaimedPin};

impl DynamoStore {
    /// Binds a PIN-issued token to its channel, and indexes it by channel
    /// (for revocation), until `expires_at`: one TransactWriteItems.
    async fn bind_pin_token(
        &self,
        client: &ClientId,
        token_id: &str,
        channel: &ChannelId,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let table = self.tables.auth.as_str();
        let mut binding = key(&auth_keys::pin_token(client, token_id), SINGLE);
        binding.insert("channel".into(), s(channel.as_str()));
        binding.insert("expires_at".into(), n(expires_at));
        let mut index = key(&auth_keys::pin_channel(client, channel), token_id);
        index.insert("expires_at".into(), n(expires_at));
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
        Ok(())
    }

    /// Deletes a live PIN item (the claim: only one caller can win it) and
    /// returns what it held.
    async fn take_pin_item(&self, pin_pk: &str) -> Result<Option<Item>, StoreError> {
        let deleted = self
            .client
            .delete_item()
            .table_name(self.tables.auth.as_str())
            .set_key(Some(key(pin_pk, SINGLE)))
            .condition_expression("attribute_exists(pk) AND expires_at > :now")
            .expression_attribute_values(":now", n(now_secs()))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        match deleted {
            Ok(out) => Ok(Some(out.attributes.unwrap_or_default())),
            Err(e) if condition_failed(&e) => Ok(None),
            Err(e) => Err(sdk_err(e)),
        }
    }

    /// Puts a PIN item unless a live one holds that PIN.
    async fn put_pin_item(&self, item: Item) -> Result<bool, StoreError> {
        let out = self
            .client
            .put_item()
            .table_name(self.tables.auth.as_str())
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk) OR expires_at <= :now")
            .expression_attribute_values(":now", n(now_secs()))
            .send()
            .await;
        accepted(out)
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
        let mut item = key(&auth_keys::pin(client, pin), SINGLE);
        item.insert("token".into(), s(token_id));
        item.insert("expires_at".into(), n(now_secs() + ttl_secs));
        self.put_pin_item(item).await
    }

    async fn claim_pin(
        &self,
        client: &ClientId,
        pin: &str,
        channel: &ChannelId,
        token_expires_at: i64,
    ) -> Result<Option<ClaimedPin>, StoreError> {
        let Some(old) = self.take_pin_item(&auth_keys::pin(client, pin)).await? else {
            return Ok(None);
        };
        let token_id = text(&old, "token")
            .ok_or_else(|| StoreError::Internal("PIN item without token".into()))?
            .to_string();
        self.bind_pin_token(client, &token_id, channel, token_expires_at)
            .await?;
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

    async fn create_game_pin(
        &self,
        client: &ClientId,
        pin: &str,
        channel: &ChannelId,
        token_id: &str,
        ttl_secs: i64,
    ) -> Result<bool, StoreError> {
        let mut item = key(&auth_keys::game_pin(client, pin), SINGLE);
        item.insert("token".into(), s(token_id));
        item.insert("channel".into(), s(channel.as_str()));
        item.insert("expires_at".into(), n(now_secs() + ttl_secs));
        self.put_pin_item(item).await
    }

    /// Round trips: 2 (the PIN's DeleteItem, the binding's TransactWriteItems).
    async fn claim_game_pin(
        &self,
        client: &ClientId,
        pin: &str,
        token_expires_at: i64,
    ) -> Result<Option<ClaimedGamePin>, StoreError> {
        let Some(old) = self
            .take_pin_item(&auth_keys::game_pin(client, pin))
            .await?
        else {
            return Ok(None);
        };
        let bad = || StoreError::Internal("malformed GameLink PIN item".into());
        let token_id = text(&old, "token").ok_or_else(bad)?.to_string();
        let channel = text(&old, "channel")
            .and_then(|c| ChannelId::parse(c).ok())
            .ok_or_else(bad)?;
        self.bind_pin_token(client, &token_id, &channel, token_expires_at)
            .await?;
        Ok(Some(ClaimedGamePin { token_id, channel }))
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
