//! `authenticate`: a PIN the broadcaster got from `POST gamelink/token`
//! (once, within its 5 minutes), or the refresh token an earlier PIN login
//! returned. The answer is `{jwt, refresh, twitch_name, twitch_id}`: a
//! broadcaster token for the PIN's channel (a PIN-issued one: `DELETE pin`
//! revokes it, and the refresh token with it) and the refresh token.

use medkit::app::App;
use medkit::auth::{self, Claims, REFRESH_ROLE, Role};
use medkit::clock::now_secs;
use medkit::gamelink::authentication::{self, Login};
use medkit::gamelink::envelope::GamelinkError;
use medkit::gamelink::session::{self, Session};
use medkit::ids::ChannelId;
use medkit::limits::PIN_FAILURES_PER_EXTENSION;
use medkit::realtime::CONNECTION_TTL_SECS;
use serde_json::{Value, json};

use super::GameStore;

/// How long a refresh token (and the PIN login it came from) lasts.
pub const REFRESH_SECS: i64 = 30 * 24 * 3600;
/// The budget of wrong GameLink PINs, per extension (a right one gives its
/// use back), so guessing is refused with a 429 before a PIN is looked up.
const WRONG_PINS: &str = "gamepin|x";

pub async fn authenticate<S: GameStore>(
    app: &App<S>,
    session: &Session,
    data: &Value,
) -> Result<Value, GamelinkError> {
    if session.login.is_some() || session.server {
        return Err(GamelinkError::conflict(
            "this connection is already authenticated",
        ));
    }
    let creds = authentication::parse(data)?;
    if creds.client_id != session.client_id {
        return Err(GamelinkError::unauthorized(
            "client_id is not the extension this connection was opened for",
        ));
    }
    let ext = app
        .registry
        .get(session.client_id.as_str())
        .ok_or_else(|| GamelinkError::unauthorized("unknown extension"))?;
    let now = now_secs();
    let (token_id, channel, refresh) = match creds.login {
        Login::Server(jwt) => return as_server(app, session, &jwt).await,
        Login::Pin(pin) => {
            let (token_id, channel) = claim_pin(app, session, &pin, now).await?;
            let claims = Claims {
                exp: now + REFRESH_SECS,
                iat: Some(now),
                channel_id: Some(channel.to_string()),
                role: Some(REFRESH_ROLE.into()),
                pin_token: Some(token_id.clone()),
                ..Claims::default()
            };
            let refresh = auth::mint(ext, claims);
            (token_id, channel, refresh)
        }
        Login::Refresh(refresh) => {
            let r = auth::verify_refresh(ext, &refresh)?;
            let channel = app
                .store
                .pin_token_channel(&session.client_id, &r.token_id)
                .await?
                .ok_or_else(|| {
                    GamelinkError::unauthorized(
                        "this refresh token was revoked: log in with a new PIN",
                    )
                })?;
            (r.token_id, channel, refresh)
        }
    };
    let exp = now + CONNECTION_TTL_SECS;
    let jwt = auth::mint(
        ext,
        Claims {
            exp,
            iat: Some(now),
            channel_id: Some(channel.to_string()),
            role: Some(Role::Broadcaster.as_str().into()),
            user_id: Some(channel.to_string()),
            opaque_user_id: Some(format!("U{channel}")),
            pin_token: Some(token_id.clone()),
            ..Claims::default()
        },
    );
    let login = session::Login {
        channel: channel.clone(),
        token_id,
        game_id: creds.game_id,
    };
    let logged_in = session.clone().logged_in(login, exp);
    app.store.put_session(&logged_in).await?;
    app.store
        .subscribe(&logged_in, &session::channel_games(&channel))
        .await?;
    tracing::info!(connection = %session.id.redacted(), client = %session.client_id, %channel, "game authenticated");
    // medkit knows no Twitch display names: the channel id stands for one.
    Ok(json!({
        "jwt": jwt,
        "refresh": refresh,
        "twitch_name": channel.as_str(),
        "twitch_id": channel.as_str(),
    }))
}

/// A game server's login: a token the extension signed, verified exactly
/// like a REST request's (pinned algorithm, `exp`, this client id's
/// secrets), with a role that acts for the whole extension. The session
/// runs matches and has no channel; the answer echoes the token (no
/// refresh token: the server signs a new one itself).
async fn as_server<S: GameStore>(
    app: &App<S>,
    session: &Session,
    jwt: &str,
) -> Result<Value, GamelinkError> {
    let header = format!("{} {jwt}", session.client_id);
    let caller = app.tokens.verify(&app.registry, app.env, Some(&header))?;
    if !matches!(caller.role, Role::Backend | Role::Admin) {
        return Err(GamelinkError::forbidden(
            "a game server logs in with a backend or admin token; a broadcaster's game uses a PIN",
        ));
    }
    let logged_in = session.clone().logged_in_as_server(caller.expires_at);
    app.store.put_session(&logged_in).await?;
    tracing::info!(connection = %session.id.redacted(), client = %session.client_id, "game server authenticated");
    Ok(json!({"jwt": jwt, "refresh": "", "twitch_name": "", "twitch_id": ""}))
}

/// Claims a PIN once, spending from the extension's budget of wrong PINs.
async fn claim_pin<S: GameStore>(
    app: &App<S>,
    session: &Session,
    pin: &str,
    now: i64,
) -> Result<(String, ChannelId), GamelinkError> {
    let client = &session.client_id;
    let limit = PIN_FAILURES_PER_EXTENSION;
    if !app.store.spend(client, WRONG_PINS, limit, now).await? {
        return Err(limit
            .refusal("wrong GameLink PINs for this extension", now)
            .into());
    }
    let claimed = app
        .store
        .claim_game_pin(client, pin, now + REFRESH_SECS)
        .await?;
    match claimed {
        Some(c) => {
            // A right PIN is no wrong guess.
            app.store.refund(client, WRONG_PINS, limit, now).await?;
            Ok((c.token_id, c.channel))
        }
        None => Err(GamelinkError::unauthorized(
            "no such PIN: it is wrong, was used already, or expired (PINs last 5 minutes)",
        )),
    }
}
