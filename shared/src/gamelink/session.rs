//! A game's session: one WebSocket connection, unauthenticated until its
//! `authenticate` succeeds. The handshake carries no token, so a session
//! that has not logged in within [`LOGIN_WINDOW_SECS`] is closed, and until
//! then it holds no subscriptions and is one small record.

use crate::ids::{ChannelId, ClientId, ConnectionId};
use crate::realtime::CONNECTION_TTL_SECS;
use crate::realtime::subscription::Subscription;

/// How long a connection may stay unauthenticated.
pub const LOGIN_WINDOW_SECS: i64 = 30;
/// Subscriptions one session may hold (the library's topics are a handful;
/// polls are one each).
pub const MAX_SUBSCRIPTIONS: usize = 64;

/// Every logged-in session of a channel is subscribed to this, so the
/// channel's games can be found: `DELETE pin` closes them.
pub fn channel_games(channel: &ChannelId) -> Subscription {
    Subscription::channel(channel, "games")
}

/// What a successful `authenticate` binds a session to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    pub channel: ChannelId,
    /// The PIN-issued token the refresh token names (revoked by `DELETE pin`).
    pub token_id: String,
    pub game_id: Option<String>,
}

/// One game connection, as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: ConnectionId,
    pub client_id: ClientId,
    pub opened_at: i64,
    /// Until login: `opened_at` + [`LOGIN_WINDOW_SECS`]; after: the session
    /// token's `exp`, at most API Gateway's 2 hours after opening.
    pub expires_at: i64,
    pub login: Option<Login>,
    /// Logged in with a token the extension signed (a game server): it runs
    /// matches across channels and has no channel of its own (`login` None).
    pub server: bool,
}

impl Session {
    /// A connection that just opened.
    pub fn opened(id: ConnectionId, client_id: ClientId, now: i64) -> Self {
        Session {
            id,
            client_id,
            opened_at: now,
            expires_at: now + LOGIN_WINDOW_SECS,
            login: None,
            server: false,
        }
    }

    /// The session once logged in with a token valid until `token_exp`.
    pub fn logged_in(mut self, login: Login, token_exp: i64) -> Self {
        self.expires_at = token_exp.min(self.opened_at + CONNECTION_TTL_SECS);
        self.login = Some(login);
        self
    }

    /// The session once logged in as a game server with the extension's
    /// token, valid until `token_exp`.
    pub fn logged_in_as_server(mut self, token_exp: i64) -> Self {
        self.expires_at = token_exp.min(self.opened_at + CONNECTION_TTL_SECS);
        self.login = None;
        self.server = true;
        self
    }

    /// Whether it should be closed at `now`: still unauthenticated past its
    /// window, or past its token's expiry.
    pub fn is_over(&self, now: i64) -> bool {
        now >= self.expires_at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_has_a_short_window_then_its_tokens_life() {
        let id = ConnectionId::parse("c1").unwrap();
        let s = Session::opened(id, ClientId::parse("cid").unwrap(), 1000);
        assert!(!s.is_over(1000 + LOGIN_WINDOW_SECS - 1));
        assert!(s.is_over(1000 + LOGIN_WINDOW_SECS));
        let login = Login {
            channel: ChannelId::parse("42").unwrap(),
            token_id: "t".into(),
            game_id: None,
        };
        let s2 = s.clone().logged_in(login.clone(), 1000 + 600);
        assert_eq!(s2.expires_at, 1600);
        let long = s.logged_in(login, 1000 + 10 * CONNECTION_TTL_SECS);
        assert_eq!(long.expires_at, 1000 + CONNECTION_TTL_SECS);
    }
}
