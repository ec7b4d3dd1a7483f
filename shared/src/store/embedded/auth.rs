//! Identity bookkeeping on the embedded store: users who shared identity,
//! PINs and the tokens they bind.

use super::EmbeddedStore;
use super::records::{Body, Record, get_record, internal, key, put_record, scan_partition};
use crate::clock::now_secs;
use crate::error::StoreError;
use crate::ids::{ChannelId, ClientId, UserId};
use crate::store::layout::{SINGLE, auth_keys};
use crate::store::{AuthStore, ClaimedGamePin, ClaimedPin};

/// Binds a PIN-issued token to its channel, and indexes it by channel (for
/// revocation), until `expires_at`.
fn bind_pin_token(
    t: &mut redb::Table<&str, &[u8]>,
    client: &ClientId,
    token_id: &str,
    channel: &ChannelId,
    expires_at: i64,
) -> Result<(), StoreError> {
    let binding = Record {
        expires_at,
        body: Body::Text(channel.to_string()),
    };
    put_record(
        t,
        &key(&auth_keys::pin_token(client, token_id), SINGLE),
        &binding,
    )?;
    let index = Record {
        expires_at,
        body: Body::Empty,
    };
    put_record(
        t,
        &key(&auth_keys::pin_channel(client, channel), token_id),
        &index,
    )
}

/// Puts a PIN record unless a live one holds that PIN.
fn put_pin_record(
    t: &mut redb::Table<&str, &[u8]>,
    k: &str,
    rec: &Record,
) -> Result<bool, StoreError> {
    if get_record(t, k, now_secs())?.is_some() {
        return Ok(false);
    }
    put_record(t, k, rec)?;
    Ok(true)
}

/// Removes a live PIN record (the claim: the writer runs one at a time, so
/// only one caller gets it) and returns it.
fn take_pin_record(
    t: &mut redb::Table<&str, &[u8]>,
    k: &str,
) -> Result<Option<Record>, StoreError> {
    let Some(rec) = get_record(t, k, now_secs())? else {
        return Ok(None);
    };
    t.remove(k).map_err(internal)?;
    Ok(Some(rec))
}

impl AuthStore for EmbeddedStore {
    async fn remember_user(
        &self,
        client: &ClientId,
        user: &UserId,
        ttl_secs: i64,
    ) -> Result<(), StoreError> {
        let k = key(&auth_keys::users(client), user.as_str());
        let now = now_secs();
        // user_info calls this on every page load: skip the (fsync'd) write
        // while the record has more than half its lifetime left.
        let probe = k.clone();
        let fresh = self
            .read(move |t| {
                let rec = get_record(t, &probe, now)?;
                Ok(rec.is_some_and(|r| r.expires_at > now + ttl_secs / 2))
            })
            .await?;
        if fresh {
            return Ok(());
        }
        let rec = Record {
            expires_at: now + ttl_secs,
            body: Body::Empty,
        };
        self.write(move |t| put_record(t, &k, &rec)).await
    }

    async fn list_users(
        &self,
        client: &ClientId,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let pk = auth_keys::users(client);
        let after = after.map(str::to_string);
        self.read(move |t| {
            let rows = scan_partition(t, &pk, after.as_deref(), limit, now_secs())?;
            Ok(rows.into_iter().map(|(sk, _)| sk).collect())
        })
        .await
    }

    async fn create_pin(
        &self,
        client: &ClientId,
        pin: &str,
        token_id: &str,
        ttl_secs: i64,
    ) -> Result<bool, StoreError> {
        let k = key(&auth_keys::pin(client, pin), SINGLE);
        let rec = Record {
            expires_at: now_secs() + ttl_secs,
            body: Body::Text(token_id.to_string()),
        };
        self.write(move |t| put_pin_record(t, &k, &rec)).await
    }

    async fn claim_pin(
        &self,
        client: &ClientId,
        pin: &str,
        channel: &ChannelId,
        token_expires_at: i64,
    ) -> Result<Option<ClaimedPin>, StoreError> {
        let pin_key = key(&auth_keys::pin(client, pin), SINGLE);
        let client = client.clone();
        let channel = channel.clone();
        self.write(move |t| {
            let Some(rec) = take_pin_record(t, &pin_key)? else {
                return Ok(None);
            };
            let Body::Text(token_id) = rec.body else {
                return Err(StoreError::Internal("PIN record without token".into()));
            };
            bind_pin_token(t, &client, &token_id, &channel, token_expires_at)?;
            Ok(Some(ClaimedPin { token_id }))
        })
        .await
    }

    async fn pin_token_channel(
        &self,
        client: &ClientId,
        token_id: &str,
    ) -> Result<Option<ChannelId>, StoreError> {
        let k = key(&auth_keys::pin_token(client, token_id), SINGLE);
        self.read(move |t| match get_record(t, &k, now_secs())? {
            Some(Record {
                body: Body::Text(ch),
                ..
            }) => ChannelId::parse(ch)
                .map(Some)
                .map_err(|_| internal("stored channel id")),
            _ => Ok(None),
        })
        .await
    }

    async fn channel_has_pin_tokens(
        &self,
        client: &ClientId,
        channel: &ChannelId,
    ) -> Result<bool, StoreError> {
        let pk = auth_keys::pin_channel(client, channel);
        self.read(move |t| Ok(!scan_partition(t, &pk, None, 1, now_secs())?.is_empty()))
            .await
    }

    async fn create_game_pin(
        &self,
        client: &ClientId,
        pin: &str,
        channel: &ChannelId,
        token_id: &str,
        ttl_secs: i64,
    ) -> Result<bool, StoreError> {
        let k = key(&auth_keys::game_pin(client, pin), SINGLE);
        // Ids never contain `|`: the token id and the channel, one record.
        let rec = Record {
            expires_at: now_secs() + ttl_secs,
            body: Body::Text(format!("{token_id}|{channel}")),
        };
        self.write(move |t| put_pin_record(t, &k, &rec)).await
    }

    async fn claim_game_pin(
        &self,
        client: &ClientId,
        pin: &str,
        token_expires_at: i64,
    ) -> Result<Option<ClaimedGamePin>, StoreError> {
        let pin_key = key(&auth_keys::game_pin(client, pin), SINGLE);
        let client = client.clone();
        self.write(move |t| {
            let Some(rec) = take_pin_record(t, &pin_key)? else {
                return Ok(None);
            };
            let bad = || StoreError::Internal("malformed GameLink PIN record".into());
            let Body::Text(text) = rec.body else {
                return Err(bad());
            };
            let (token_id, channel) = text.split_once('|').ok_or_else(bad)?;
            let channel = ChannelId::parse(channel).map_err(|_| bad())?;
            bind_pin_token(t, &client, token_id, &channel, token_expires_at)?;
            Ok(Some(ClaimedGamePin {
                token_id: token_id.to_string(),
                channel,
            }))
        })
        .await
    }

    async fn revoke_pin_tokens(
        &self,
        client: &ClientId,
        channel: &ChannelId,
    ) -> Result<usize, StoreError> {
        let pk = auth_keys::pin_channel(client, channel);
        let client = client.clone();
        self.write(move |t| {
            let rows = scan_partition(t, &pk, None, usize::MAX, i64::MIN)?;
            let now = now_secs();
            let mut live = 0;
            for (token_id, rec) in &rows {
                if rec.expires_at > now {
                    live += 1;
                }
                t.remove(key(&pk, token_id).as_str()).map_err(internal)?;
                t.remove(key(&auth_keys::pin_token(&client, token_id), SINGLE).as_str())
                    .map_err(internal)?;
            }
            Ok(live)
        })
        .await
    }
}
