//! GameLink over the WebSocket API: a game's connection (`$connect` with a
//! client id and no token), then one request per frame, each answered once.
//!
//! The session lives in the connection store, so each frame's handling
//! reads it there (one GetItem on AWS, where every frame is its own
//! invocation) and the dev server runs exactly the same code. One file per
//! target, one dispatch on `action` and `target` ([`answer`]).

mod authenticate;
mod documents;
mod extras;
mod matches;
mod poll;
mod purchases;

use medkit::app::{App, SharedApp};
use medkit::auth::{Caller, Role};
use medkit::clock::{now_ms, now_secs};
use medkit::error::ApiError;
use medkit::gamelink::envelope::{self, GamelinkError, Request};
use medkit::gamelink::session::{LOGIN_WINDOW_SECS, Session};
use medkit::ids::{ClientId, ConnectionId, UserId};
use medkit::store::{
    AggregateStore, AuthStore, ConnectionStore, DocumentStore, LimitStore, PurchaseStore,
};
use serde_json::Value;

/// The ports GameLink's verbs use.
pub trait GameStore:
    AggregateStore + AuthStore + ConnectionStore + DocumentStore + LimitStore + PurchaseStore
{
}
impl<T> GameStore for T where
    T: AggregateStore + AuthStore + ConnectionStore + DocumentStore + LimitStore + PurchaseStore
{
}

/// Why a conditional write of a record (a poll, a match) wrote nothing: the
/// game's request was refused, or the store failed.
pub(super) enum Refused {
    Game(GamelinkError),
    Store(medkit::error::StoreError),
}

impl From<medkit::error::StoreError> for Refused {
    fn from(e: medkit::error::StoreError) -> Self {
        Refused::Store(e)
    }
}

impl From<Refused> for GamelinkError {
    fn from(r: Refused) -> Self {
        match r {
            Refused::Game(e) => e,
            Refused::Store(e) => e.into(),
        }
    }
}

/// A record as the store keeps it (JSON).
pub(super) fn stored<T: serde::Serialize>(record: &T) -> Result<Value, Refused> {
    serde_json::to_value(record)
        .map_err(|e| Refused::Store(medkit::error::StoreError::Internal(e.to_string())))
}

/// What becomes of one frame: the reply to send back, and whether the
/// connection is to be closed after it (a session that is over).
#[derive(Debug)]
pub struct Answer {
    pub reply: String,
    pub close: bool,
}

/// `$connect` of a game: no token (authentication is in-band), the
/// extension's client id from the URL. The session is one small record
/// that lasts [`LOGIN_WINDOW_SECS`] unless the game logs in.
pub async fn open<S: ConnectionStore>(
    app: &App<S>,
    id: ConnectionId,
    client_id: Option<&str>,
) -> Result<Session, ApiError> {
    let client_id = client_id
        .filter(|c| !c.is_empty())
        .ok_or_else(|| ApiError::unauthorized("the extension's client id is required"))?;
    let ext = app
        .registry
        .get(client_id)
        .ok_or_else(|| ApiError::unauthorized("unknown extension"))?;
    let session = Session::opened(id, ext.client_id.clone(), now_secs());
    app.store.put_session(&session).await?;
    tracing::info!(connection = %session.id.redacted(), client = %session.client_id, "game connected");
    Ok(session)
}

/// Answers one frame of a game's connection.
pub async fn answer<S: GameStore>(app: &SharedApp<S>, id: &ConnectionId, frame: &str) -> Answer {
    let now = now_ms();
    let req = match envelope::parse_request(frame) {
        Ok(r) => r,
        Err(refusal) => {
            return Answer {
                reply: envelope::error_reply(&refusal.meta, &refusal.error, now),
                close: false,
            };
        }
    };
    let meta = req.meta();
    let session = match app.store.session(id).await {
        Ok(Some(s)) => s,
        Ok(None) => {
            let e = GamelinkError::unauthorized(format!(
                "this connection is closed: a game authenticates within {LOGIN_WINDOW_SECS} s \
                 of connecting, and a session ends with its token"
            ));
            return Answer {
                reply: envelope::error_reply(&meta, &e, now),
                close: true,
            };
        }
        Err(e) => {
            let e = GamelinkError::from(ApiError::from(e));
            return Answer {
                reply: envelope::error_reply(&meta, &e, now),
                close: false,
            };
        }
    };
    let outcome = dispatch(app, &session, &req).await;
    let reply = match outcome {
        Ok(data) => envelope::reply(&meta, &data, now_ms()),
        Err(e) => {
            tracing::info!(action = %req.action, target = %req.target, number = e.number, "GameLink request refused");
            envelope::error_reply(&meta, &e, now_ms())
        }
    };
    Answer {
        reply,
        close: false,
    }
}

async fn dispatch<S: GameStore>(
    app: &SharedApp<S>,
    session: &Session,
    req: &Request,
) -> Result<Value, GamelinkError> {
    let (action, target) = (req.action.as_str(), req.target.as_str());
    if action == "authenticate" && target.is_empty() {
        return authenticate::authenticate(app, session, &req.data).await;
    }
    if session.login.is_none() && !session.server {
        return Err(GamelinkError::unauthorized(
            "authenticate first: {\"action\": \"authenticate\", \"data\": {\"pin\" or \
             \"refresh\", \"client_id\"}}",
        ));
    }
    match target {
        "match" => return matches::match_verbs(app, session, action, &req.data).await,
        "match_poll" => return matches::match_poll(app, session, action, &req.data).await,
        "matchmaking" => {
            return Err(GamelinkError::not_implemented(
                "matchmaking is not available on this server",
            ));
        }
        _ => {}
    }
    let Some(caller) = caller(session) else {
        return Err(GamelinkError::forbidden(
            "a game server's session runs matches (targets match and match_poll); a channel's \
             state, config, polls and broadcasts belong to its broadcaster's game (a PIN login)",
        ));
    };
    match target {
        "state" => documents::state(app, session, &caller, action, &req.data).await,
        "config" => documents::config(app, session, &caller, action, &req.data).await,
        "" if action == "broadcast" => extras::broadcast(app, &caller, &req.data).await,
        "drops" => extras::drops(action),
        "gameMetadata" if action == "set" => extras::game_metadata(app, &caller, &req.data).await,
        "twitchPurchaseBits" => purchases::bits(app, session, action, &req.data).await,
        "transaction" => purchases::transaction(app, session, action, &req.data).await,
        "datastream" => documents::datastream(app, session, action).await,
        "poll" => poll::poll(app, session, action, &req.data).await,
        _ => Err(GamelinkError::bad_request(format!(
            "unknown request: action {action:?} on target {target:?}"
        ))),
    }
}

/// The caller a logged-in session acts as: the broadcaster of its channel,
/// holding the PIN-issued token the game logged in with. The REST rules
/// apply to it as to that broadcaster's own requests.
fn caller(session: &Session) -> Option<Caller> {
    let login = session.login.as_ref()?;
    Some(Caller {
        client_id: session.client_id.clone(),
        role: Role::Broadcaster,
        channel_id: Some(login.channel.clone()),
        opaque_user_id: None,
        user_id: UserId::parse(login.channel.as_str()).ok(),
        pin_token: Some(login.token_id.clone()),
        expires_at: session.expires_at,
    })
}

/// The client id a GameLink URL names: `/<version>/<client id>`.
pub fn client_id_from_path(path: &str) -> Option<&str> {
    let mut parts = path.trim_matches('/').split('/');
    let (version, client) = (parts.next()?, parts.next()?);
    let is_version = version.split('.').count() == 3
        && version
            .split('.')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
    (is_version && parts.next().is_none() && ClientId::parse(client).is_ok()).then_some(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sdks_url_names_the_client() {
        assert_eq!(client_id_from_path("/0.2.0/abc123"), Some("abc123"));
        assert_eq!(client_id_from_path("/1.10.3/abc123/"), Some("abc123"));
        for bad in [
            "/ws",
            "/0.2/abc",
            "/0.2.0/",
            "/0.2.0/a/b",
            "/x.y.z/abc",
            "/0.2.0/a|b",
        ] {
            assert_eq!(client_id_from_path(bad), None, "{bad}");
        }
    }
}
