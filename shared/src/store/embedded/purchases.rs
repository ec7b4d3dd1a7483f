//! Bits purchases on the embedded store: the record under its transaction
//! id (the exactly-once guard) and again in its channel's partition (the
//! listing), both written by one writer transaction.

use super::EmbeddedStore;
use super::records::{Record, get_json, key, put_json, scan_partition};
use crate::clock::now_secs;
use crate::error::StoreError;
use crate::ids::{ChannelId, ClientId};
use crate::purchases::{KEEP_SECS, Purchase, State, newest_first};
use crate::store::layout::{SINGLE, purchase_keys};
use crate::store::{Moved, PurchaseStore, Recorded};

fn guard_key(client: &ClientId, id: &str) -> String {
    key(&purchase_keys::transaction(client, id), SINGLE)
}

fn channel_key(client: &ClientId, channel: &ChannelId, id: &str) -> String {
    key(&purchase_keys::channel(client, channel), id)
}

impl PurchaseStore for EmbeddedStore {
    async fn record_purchase(
        &self,
        client: &ClientId,
        p: &Purchase,
    ) -> Result<Recorded, StoreError> {
        let guard = guard_key(client, &p.id);
        let channel = ChannelId::parse(p.channel.as_str())
            .map_err(|_| StoreError::Internal("a purchase's channel id".into()))?;
        let listed = channel_key(client, &channel, &p.id);
        let p = p.clone();
        let recorded = self
            .write(move |t| {
                if let Some(first) = get_json::<Purchase>(t, &guard, now_secs())? {
                    return Ok(Recorded::Known(first));
                }
                let expires_at = p.recorded_at + KEEP_SECS;
                put_json(t, &guard, &p, expires_at)?;
                put_json(t, &listed, &p, expires_at)?;
                Ok(Recorded::New(p))
            })
            .await?;
        if matches!(recorded, Recorded::New(_)) && self.faults.take_purchase_crash() {
            return Err(StoreError::Unavailable(
                "injected: crashed after recording".into(),
            ));
        }
        Ok(recorded)
    }

    async fn purchase(
        &self,
        client: &ClientId,
        channel: &ChannelId,
        id: &str,
    ) -> Result<Option<Purchase>, StoreError> {
        let k = channel_key(client, channel, id);
        self.read(move |t| get_json(t, &k, now_secs())).await
    }

    async fn channel_purchases(
        &self,
        client: &ClientId,
        channel: &ChannelId,
    ) -> Result<Vec<Purchase>, StoreError> {
        let pk = purchase_keys::channel(client, channel);
        self.read(move |t| {
            let rows = scan_partition(t, &pk, None, usize::MAX, now_secs())?;
            let all: Vec<Purchase> = rows
                .into_iter()
                .filter_map(|(_, rec): (String, Record)| rec.json().ok())
                .collect();
            Ok(newest_first(all))
        })
        .await
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
        let listed = channel_key(client, channel, id);
        let from = from.to_vec();
        self.write(move |t| {
            let Some(mut p) = get_json::<Purchase>(t, &listed, now_secs())? else {
                return Ok(Moved::Absent);
            };
            if !from.contains(&p.state) {
                return Ok(Moved::Refused(p));
            }
            p.state = to;
            if details.is_some() {
                p.details = details;
            }
            let expires_at = p.recorded_at + KEEP_SECS;
            // The guard keeps the first answer: a repeated submission
            // answers as the first did.
            put_json(t, &listed, &p, expires_at)?;
            Ok(Moved::Done(p))
        })
        .await
    }
}
