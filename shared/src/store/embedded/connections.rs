//! The embedded adapter's [`ConnectionStore`]: in memory, on purpose. A
//! WebSocket connection lives exactly as long as the process that holds its
//! socket, so a connection written to the database file would be a lie after
//! a restart.

use std::collections::{HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use super::EmbeddedStore;
use crate::clock::now_secs;
use crate::error::StoreError;
use crate::gamelink::session::{MAX_SUBSCRIPTIONS, Session};
use crate::ids::{ChannelId, ClientId, ConnectionId, ViewerId};
use crate::realtime::Connection;
use crate::realtime::job::Job;
use crate::realtime::subscription::Subscription;
use crate::store::ConnectionStore;

#[derive(Default)]
pub(super) struct LiveConnections {
    inner: Mutex<Index>,
}

/// The records and the three ways fan-out finds them.
#[derive(Default)]
struct Index {
    by_id: HashMap<ConnectionId, Connection>,
    by_channel: HashMap<(ClientId, ChannelId), HashSet<ConnectionId>>,
    /// Opaque ids and Twitch user ids alike.
    by_viewer: HashMap<(ClientId, String), HashSet<ConnectionId>>,
    by_shard: HashMap<(ClientId, u32), HashSet<ConnectionId>>,
    /// GameLink sessions, with the subscriptions each holds.
    sessions: HashMap<ConnectionId, (Session, HashSet<Subscription>)>,
    subscribers: HashMap<(ClientId, Subscription), HashSet<ConnectionId>>,
}

fn viewer_keys(c: &Connection) -> Vec<(ClientId, String)> {
    let opaque = c.opaque_user_id.as_ref().map(|o| o.as_str().to_string());
    let user = c.user_id.as_ref().map(|u| u.as_str().to_string());
    opaque
        .into_iter()
        .chain(user)
        .map(|v| (c.client_id.clone(), v))
        .collect()
}

impl Index {
    fn insert(&mut self, c: Connection) {
        self.remove(&c.id);
        if let Some(ch) = &c.channel_id {
            self.by_channel
                .entry((c.client_id.clone(), ch.clone()))
                .or_default()
                .insert(c.id.clone());
        }
        for k in viewer_keys(&c) {
            self.by_viewer.entry(k).or_default().insert(c.id.clone());
        }
        self.by_shard
            .entry((c.client_id.clone(), c.shard()))
            .or_default()
            .insert(c.id.clone());
        self.by_id.insert(c.id.clone(), c);
    }

    fn remove(&mut self, id: &ConnectionId) -> Option<Connection> {
        self.remove_session(id);
        let c = self.by_id.remove(id)?;
        if let Some(ch) = &c.channel_id {
            unlink(&mut self.by_channel, (c.client_id.clone(), ch.clone()), id);
        }
        for k in viewer_keys(&c) {
            unlink(&mut self.by_viewer, k, id);
        }
        unlink(&mut self.by_shard, (c.client_id.clone(), c.shard()), id);
        Some(c)
    }

    fn remove_session(&mut self, id: &ConnectionId) {
        if let Some((session, subs)) = self.sessions.remove(id) {
            for sub in subs {
                unlink(&mut self.subscribers, (session.client_id.clone(), sub), id);
            }
        }
    }

    /// The live ones among `ids`; expired ones are dropped on the way.
    fn live(&mut self, ids: Vec<ConnectionId>, now: i64) -> Vec<Connection> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            match self.by_id.get(&id) {
                Some(c) if c.expires_at > now => out.push(c.clone()),
                Some(_) => {
                    self.remove(&id);
                }
                None => {}
            }
        }
        out
    }
}

fn unlink<K: std::hash::Hash + Eq>(
    map: &mut HashMap<K, HashSet<ConnectionId>>,
    key: K,
    id: &ConnectionId,
) {
    if let Some(set) = map.get_mut(&key) {
        set.remove(id);
        if set.is_empty() {
            map.remove(&key);
        }
    }
}

fn members<K: std::hash::Hash + Eq>(
    map: &HashMap<K, HashSet<ConnectionId>>,
    key: &K,
) -> Vec<ConnectionId> {
    map.get(key)
        .map(|s| s.iter().cloned().collect())
        .unwrap_or_default()
}

impl LiveConnections {
    fn lock(&self) -> MutexGuard<'_, Index> {
        // Every update leaves the index consistent before it can panic.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Live ids of one index entry, the expired ones pruned.
    fn ids_of(&self, pick: impl FnOnce(&Index) -> Vec<ConnectionId>) -> Vec<ConnectionId> {
        let now = now_secs();
        let mut index = self.lock();
        let ids = pick(&index);
        // Expiry is rare (2 h); check it without cloning whole records.
        if ids
            .iter()
            .all(|id| index.by_id.get(id).is_some_and(|c| c.expires_at > now))
        {
            return ids;
        }
        index.live(ids, now).into_iter().map(|c| c.id).collect()
    }
}

impl ConnectionStore for EmbeddedStore {
    async fn add_connection(&self, c: &Connection) -> Result<(), StoreError> {
        self.live.lock().insert(c.clone());
        Ok(())
    }

    async fn remove_connection(&self, id: &ConnectionId) -> Result<Option<Connection>, StoreError> {
        Ok(self.live.lock().remove(id))
    }

    async fn channel_connections(
        &self,
        client: &ClientId,
        channel: &ChannelId,
    ) -> Result<Vec<ConnectionId>, StoreError> {
        let key = (client.clone(), channel.clone());
        Ok(self.live.ids_of(|i| members(&i.by_channel, &key)))
    }

    async fn viewer_connections(
        &self,
        client: &ClientId,
        viewer: &ViewerId,
    ) -> Result<Vec<Connection>, StoreError> {
        let key = (client.clone(), viewer.as_str().to_string());
        let mut index = self.live.lock();
        let ids = members(&index.by_viewer, &key);
        Ok(index.live(ids, now_secs()))
    }

    async fn pin_connections(
        &self,
        client: &ClientId,
        channel: &ChannelId,
    ) -> Result<Vec<ConnectionId>, StoreError> {
        let key = (client.clone(), channel.clone());
        Ok(self.live.ids_of(|i| {
            members(&i.by_channel, &key)
                .into_iter()
                .filter(|id| i.by_id.get(id).is_some_and(|c| c.pin_issued))
                .collect()
        }))
    }

    async fn shard_connections(
        &self,
        client: &ClientId,
        shard: u32,
    ) -> Result<Vec<ConnectionId>, StoreError> {
        let key = (client.clone(), shard);
        Ok(self.live.ids_of(|i| members(&i.by_shard, &key)))
    }

    async fn queue_jobs(&self, _jobs: &[Job]) -> Result<bool, StoreError> {
        Ok(false)
    }

    async fn put_session(&self, session: &Session) -> Result<(), StoreError> {
        let mut index = self.live.lock();
        let subs = match index.sessions.remove(&session.id) {
            Some((_, subs)) => subs,
            None => HashSet::new(),
        };
        index
            .sessions
            .insert(session.id.clone(), (session.clone(), subs));
        Ok(())
    }

    async fn session(&self, id: &ConnectionId) -> Result<Option<Session>, StoreError> {
        let now = now_secs();
        let mut index = self.live.lock();
        match index.sessions.get(id) {
            Some((s, _)) if !s.is_over(now) => Ok(Some(s.clone())),
            Some(_) => {
                index.remove_session(id);
                Ok(None)
            }
            None => Ok(None),
        }
    }

    async fn subscribe(&self, session: &Session, sub: &Subscription) -> Result<bool, StoreError> {
        let mut index = self.live.lock();
        let Some((_, subs)) = index.sessions.get_mut(&session.id) else {
            return Ok(false);
        };
        if !subs.contains(sub) {
            if subs.len() >= MAX_SUBSCRIPTIONS {
                return Ok(false);
            }
            subs.insert(sub.clone());
        }
        index
            .subscribers
            .entry((session.client_id.clone(), sub.clone()))
            .or_default()
            .insert(session.id.clone());
        Ok(true)
    }

    async fn unsubscribe(&self, session: &Session, sub: &Subscription) -> Result<(), StoreError> {
        let mut index = self.live.lock();
        if let Some((_, subs)) = index.sessions.get_mut(&session.id) {
            subs.remove(sub);
        }
        let key = (session.client_id.clone(), sub.clone());
        unlink(&mut index.subscribers, key, &session.id);
        Ok(())
    }

    async fn subscribers(
        &self,
        client: &ClientId,
        sub: &Subscription,
    ) -> Result<Vec<ConnectionId>, StoreError> {
        let now = now_secs();
        let mut index = self.live.lock();
        let ids = members(&index.subscribers, &(client.clone(), sub.clone()));
        let (live, over): (Vec<_>, Vec<_>) = ids
            .into_iter()
            .partition(|id| index.sessions.get(id).is_some_and(|(s, _)| !s.is_over(now)));
        for id in over {
            index.remove_session(&id);
        }
        Ok(live)
    }
}
