//! Identity bookkeeping on DynamoDB (the auth table): users who shared
//! identity, PINs and the tokens they bind.

use aws_sdk_dynamodb::types::{Put, ReturnValue, TransactWriteItem};

use super::DynamoStore;
use super::items::{Item, accepted, condition_failed, key, n, s, sdk_err, text};
use crate::clock::now_secs;
use crate::error::StoreError;
use crate::ids::{ChannelId, ClientId, UserId};
use crate::store::layout::{SINGLE, auth_keys};
use crate::store::{AuthStore, ClaimedPin};

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
        accepted(out)
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
