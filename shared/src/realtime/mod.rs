//! The real-time model (CONTRACT §6): viewers hold WebSocket connections (API
//! Gateway WebSocket API, or the dev server's emulation of it); sends and
//! events fan out to them (the service that delivers them is `delivery`).
//!
//! - [`envelope`]: the envelope, its 4 KB limit and compression, the frame
//! - [`event`]: events the backend emits (state and vote updates)
//! - [`job`]: who receives a send; the parts (jobs) of a big fan-out
//! - [`rate`]: the send-rate window
//! - [`subscription`]: the topics a game subscribes to (GameLink)

pub mod envelope;
pub mod event;
pub mod job;
pub mod pubsub;
pub mod rate;
pub mod subscription;

use crate::auth::{Caller, Role};
use crate::error::ApiError;
use crate::hash::stable_hash;
use crate::ids::{ChannelId, ClientId, ConnectionId, UserId, ViewerId};

/// API Gateway closes a WebSocket after 2 hours; the record lives as long.
pub const CONNECTION_TTL_SECS: i64 = 2 * 3600;
/// Extension-wide sends are split into this many parts, each a job that a
/// separate invocation delivers (see `delivery::fanout`).
pub const EXTENSION_SHARDS: u32 = 16;

/// One open connection, as `$connect` records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub id: ConnectionId,
    pub client_id: ClientId,
    pub channel_id: Option<ChannelId>,
    pub opaque_user_id: Option<ViewerId>,
    pub user_id: Option<UserId>,
    pub role: Role,
    /// Whether it connected with a PIN-issued token (closed when the
    /// channel's PINs are revoked).
    pub pin_issued: bool,
    pub connected_at: i64,
    /// Its token's `exp`, or API Gateway's 2 hours if that comes first:
    /// nothing is delivered to it afterwards.
    pub expires_at: i64,
}

impl Connection {
    /// The record for a verified caller connecting now.
    pub fn for_caller(id: ConnectionId, caller: &Caller, now: i64) -> Result<Self, ApiError> {
        let opaque_user_id =
            match &caller.opaque_user_id {
                Some(o) => Some(ViewerId::parse(o.as_str()).map_err(|_| {
                    ApiError::unauthorized("the token's opaque user id is malformed")
                })?),
                None => None,
            };
        Ok(Connection {
            id,
            client_id: caller.client_id.clone(),
            channel_id: caller.channel_id.clone(),
            opaque_user_id,
            user_id: caller.user_id.clone(),
            role: caller.role,
            pin_issued: caller.pin_token.is_some(),
            connected_at: now,
            expires_at: caller.expires_at.min(now + CONNECTION_TTL_SECS),
        })
    }

    /// Which extension-wide part this connection belongs to.
    pub fn shard(&self) -> u32 {
        shard_of(&self.id)
    }

    /// Whether a whisper to `viewer` reaches this connection: by opaque id,
    /// or by Twitch user id when the viewer shares it.
    pub fn is_viewer(&self, viewer: &ViewerId) -> bool {
        self.opaque_user_id.as_ref() == Some(viewer)
            || self.user_id.as_ref().map(|u| u.as_str()) == Some(viewer.as_str())
    }
}

pub fn shard_of(id: &ConnectionId) -> u32 {
    stable_hash(id.as_str()) % EXTENSION_SHARDS
}

/// A fresh connection id in API Gateway's style (16 URL-safe characters).
pub fn new_connection_id() -> ConnectionId {
    use base64::Engine;
    let id = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(crate::random::bytes::<12>());
    ConnectionId::parse(id).expect("base64 is a valid id")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Caller;

    fn caller(expires_at: i64, pin: bool) -> Caller {
        Caller {
            client_id: ClientId::parse("c").unwrap(),
            role: Role::Viewer,
            channel_id: Some(ChannelId::parse("1").unwrap()),
            opaque_user_id: Some("U1".into()),
            user_id: None,
            pin_token: pin.then(|| "tok".into()),
            expires_at,
        }
    }

    /// Finding 5 of issue #16: a connection was kept 2 hours whatever its
    /// token's `exp`; it now expires with its token (at most 2 hours).
    #[test]
    fn a_connection_expires_with_its_token() {
        let now = 1_000_000;
        let id = || ConnectionId::parse("conn").unwrap();
        let soon = Connection::for_caller(id(), &caller(now + 60, false), now).unwrap();
        assert_eq!(soon.expires_at, now + 60);
        let late = Connection::for_caller(id(), &caller(now + 86_400, true), now).unwrap();
        assert_eq!(late.expires_at, now + CONNECTION_TTL_SECS);
        assert!(late.pin_issued && !soon.pin_issued);
    }
}
