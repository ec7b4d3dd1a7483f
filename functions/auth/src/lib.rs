//! The `auth` function: sandbox tokens, user info, the PIN flow and the list
//! of users who shared identity (CONTRACT §2, §3 `user_ids`).

use std::net::{IpAddr, SocketAddr};

use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Request};
use axum::response::Response;
use axum::routing::{get, post};
use medkit::app::SharedApp;
use medkit::auth::{self, Caller, Claims, Role};
use medkit::clock::{now_ms, now_secs};
use medkit::documents::MAX_IDS;
use medkit::env::Env;
use medkit::error::ApiError;
use medkit::http::{JsonBody, QueryMap, finish, ok};
use medkit::ids::{ChannelId, UserId};
use medkit::limits::{PIN_FAILURES_PER_CHANNEL, PIN_FAILURES_PER_EXTENSION};
use medkit::store::{AuthStore, ConnectionStore, LimitStore};
use serde_json::{Value, json};

/// Sandbox tokens live about 30 minutes; the client refreshes every 25.
pub const SANDBOX_TOKEN_SECS: i64 = 30 * 60;
/// A PIN can be entered for 5 minutes.
pub const PIN_SECS: i64 = 5 * 60;
/// A PIN-issued token (a game's) lasts 30 days unless revoked.
pub const PIN_TOKEN_SECS: i64 = 30 * 24 * 3600;

/// A string or number field of a JSON body (ids arrive either way).
fn id_field(body: &Value, names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| match body.get(n) {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(x)) => Some(x.to_string()),
        _ => None,
    })
}

/// `POST authtoken?role=` (sandbox only, no auth): mint a token for any role.
async fn authtoken<S: AuthStore>(
    State(app): State<SharedApp<S>>,
    query: QueryMap,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    if app.env == Env::Production {
        return Err(ApiError::not_found("no such endpoint"));
    }
    if !body.is_object() {
        return Err(ApiError::bad_request("body must be a JSON object"));
    }
    let client_id = id_field(&body, &["app_id", "extension_id"])
        .ok_or_else(|| ApiError::bad_request("app_id is required"))?;
    let ext = app
        .registry
        .get(&client_id)
        .ok_or_else(|| ApiError::bad_request("No such extension found"))?;
    let role_name = query
        .get("role")
        .filter(|r| !r.is_empty())
        .map(str::to_string)
        .or_else(|| id_field(&body, &["role"]))
        .unwrap_or_else(|| "viewer".into());
    let role = Role::parse(&role_name)
        .ok_or_else(|| ApiError::bad_request(format!("unknown role {role_name:?}")))?;
    let channel = id_field(&body, &["channel_id"])
        .ok_or_else(|| ApiError::bad_request("channel_id is required"))?;
    ChannelId::parse(channel.as_str())?;
    let user = id_field(&body, &["user_id"]);
    if let Some(u) = &user {
        UserId::parse(u.as_str())?;
    }
    let mut claims = auth::claims_for(role, &channel, user.as_deref(), SANDBOX_TOKEN_SECS);
    claims.iss = Some("muxy".into());
    claims.aud = Some("muxy.io".into());
    claims.allowed_stage = Some("sandbox".into());
    Ok(ok(json!({ "token": auth::mint(ext, claims) })))
}

/// The caller's address: API Gateway's source IP in Lambda, the socket peer in
/// the dev server, else the first `X-Forwarded-For` entry.
fn client_ip<B>(req: &Request<B>) -> Option<IpAddr> {
    if let Some(lambda_http::request::RequestContext::ApiGatewayV2(ctx)) =
        req.extensions()
            .get::<lambda_http::request::RequestContext>()
        && let Some(ip) = ctx.http.source_ip.as_deref().and_then(|s| s.parse().ok())
    {
        return Some(ip);
    }
    if let Some(ConnectInfo(addr)) = req.extensions().get::<ConnectInfo<SocketAddr>>() {
        return Some(addr.ip());
    }
    forwarded_for(req.headers())
}

fn forwarded_for(headers: &HeaderMap) -> Option<IpAddr> {
    headers
        .get("x-forwarded-for")?
        .to_str()
        .ok()?
        .split(',')
        .next()?
        .trim()
        .parse()
        .ok()
}

/// IPv4 with the last octet zeroed (IPv6: the last 80 bits), for privacy.
pub fn anonymize(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            format!("{a}.{b}.{c}.0")
        }
        IpAddr::V6(v6) => {
            let mut seg = v6.segments();
            seg[3..].fill(0);
            std::net::Ipv6Addr::from(seg).to_string()
        }
    }
}

/// A stable, non-secret id per viewer for visualisations (FNV-1a of client + viewer).
fn visualization_id(client: &str, viewer: &str) -> String {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in client.bytes().chain([0]).chain(viewer.bytes()) {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

/// `GET user_info`: the client calls it right after auth and waits for it.
/// A viewer who shared identity is recorded for `user_ids` (one write).
async fn user_info<S: AuthStore>(
    State(app): State<SharedApp<S>>,
    caller: Caller,
    req: Request<axum::body::Body>,
) -> Result<Response, ApiError> {
    if let Some(user) = &caller.user_id {
        app.store
            .remember_user(&caller.client_id, user, app.expiry.users_secs)
            .await?;
    }
    let viewer = caller
        .viewer_id()
        .map(|v| v.to_string())
        .unwrap_or_default();
    Ok(ok(json!({
        "ip_address": client_ip(&req).map(anonymize).unwrap_or_else(|| "0.0.0.0".into()),
        "registered": caller.user_id.is_some(),
        "visualization_id": visualization_id(caller.client_id.as_str(), &viewer),
        "server_time": now_ms(),
    })))
}

/// `GET user_ids?cursor=` (admin, backend): users who shared identity, 1000 a page.
async fn user_ids<S: AuthStore>(
    State(app): State<SharedApp<S>>,
    caller: Caller,
    query: QueryMap,
) -> Result<Response, ApiError> {
    caller.require_privileged()?;
    let after = match query.get("cursor").filter(|c| !c.is_empty() && *c != "0") {
        None => None,
        Some(c) => Some(decode_cursor(c).ok_or_else(|| ApiError::bad_request("malformed cursor"))?),
    };
    let users = app
        .store
        .list_users(&caller.client_id, after.as_deref(), MAX_IDS)
        .await?;
    let next = match users.last() {
        Some(last) if users.len() == MAX_IDS => encode_cursor(last),
        _ => "0".to_string(),
    };
    let results: Vec<Value> = users.iter().map(|u| json!({ "twitch_id": u })).collect();
    Ok(ok(json!({ "next": next, "results": results })))
}

/// Cursor = the page's last user id, base64url: opaque, and never "0" (= done).
fn encode_cursor(last: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(last)
}

fn decode_cursor(cursor: &str) -> Option<String> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()?;
    String::from_utf8(bytes)
        .ok()
        .filter(|s| UserId::parse(s.as_str()).is_ok())
}

/// `POST pin` (no auth): a token for a program without a browser, inert until
/// a broadcaster enters the PIN.
async fn create_pin<S: AuthStore>(
    State(app): State<SharedApp<S>>,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let client_id = id_field(&body, &["identifier"])
        .ok_or_else(|| ApiError::bad_request("identifier (the extension client id) is required"))?;
    let ext = app
        .registry
        .get(&client_id)
        .ok_or_else(|| ApiError::bad_request("No such extension found"))?;
    let token_id = medkit::random::token_id(24);
    // 32^6 ≈ 10^9 PINs: a collision with a live one is rare; retry a few times.
    for _ in 0..5 {
        let pin = medkit::random::pin();
        if app
            .store
            .create_pin(&ext.client_id, &pin, &token_id, PIN_SECS)
            .await?
        {
            let claims = Claims {
                exp: now_secs() + PIN_TOKEN_SECS,
                iat: Some(now_secs()),
                channel_id: Some(String::new()),
                role: Some(Role::Broadcaster.as_str().into()),
                opaque_user_id: Some(format!("P{token_id}")),
                pin_token: Some(token_id),
                ..Claims::default()
            };
            return Ok(ok(json!({ "token": auth::mint(ext, claims), "pin": pin })));
        }
    }
    Err(ApiError::Unavailable)
}

/// `POST gamelink/token` (broadcaster): a PIN for a game to log in with over
/// GameLink (`authenticate`), for 5 minutes and once. The game's session is
/// bound to this channel and ends with `DELETE pin`, like the other PINs'.
async fn gamelink_token<S: AuthStore>(
    State(app): State<SharedApp<S>>,
    caller: Caller,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Broadcaster])?;
    let channel = caller.channel()?;
    let token_id = medkit::random::token_id(24);
    // As for `POST pin`: a collision with a live PIN is rare; retry a few times.
    for _ in 0..5 {
        let pin = medkit::random::pin();
        if app
            .store
            .create_game_pin(&caller.client_id, &pin, channel, &token_id, PIN_SECS)
            .await?
        {
            tracing::info!("GameLink PIN issued");
            return Ok(ok(json!({ "token": pin })));
        }
    }
    Err(ApiError::Unavailable)
}

/// `POST validate_pin` (broadcaster): binds the PIN's token to the caller's
/// channel. Every attempt first spends from two budgets of wrong PINs, the
/// channel's and the extension's (a right PIN gives them back), so guessing
/// is refused with 429 before a PIN is even looked up.
async fn validate_pin<S: AuthStore + LimitStore>(
    State(app): State<SharedApp<S>>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Broadcaster])?;
    let pin = id_field(&body, &["pin"])
        .ok_or_else(|| ApiError::bad_request("pin is required"))?
        .trim()
        .to_ascii_uppercase();
    if pin.len() != 6 || !pin.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(ApiError::bad_request("a PIN is 6 letters or digits"));
    }
    let channel = caller.channel()?;
    let (client, now) = (&caller.client_id, now_secs());
    let ours = format!("pin|c|{channel}");
    let budgets = [
        (
            ours.as_str(),
            PIN_FAILURES_PER_CHANNEL,
            "wrong PINs from this channel",
        ),
        (
            "pin|x",
            PIN_FAILURES_PER_EXTENSION,
            "wrong PINs for this extension",
        ),
    ];
    for (i, (key, limit, what)) in budgets.iter().enumerate() {
        if !app.store.spend(client, key, *limit, now).await? {
            for (spent, limit, _) in &budgets[..i] {
                app.store.refund(client, spent, *limit, now).await?;
            }
            return Err(limit.refusal(what, now));
        }
    }
    let claimed = app
        .store
        .claim_pin(client, &pin, channel, now + PIN_TOKEN_SECS)
        .await?;
    match claimed {
        Some(_) => {
            // A right PIN is no wrong guess.
            for (key, limit, _) in &budgets {
                app.store.refund(client, key, *limit, now).await?;
            }
            Ok(ok(json!({})))
        }
        None => Err(ApiError::not_found("no such PIN, or it expired")),
    }
}

async fn pin_token_exists<S: AuthStore>(
    State(app): State<SharedApp<S>>,
    caller: Caller,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Broadcaster])?;
    let exists = app
        .store
        .channel_has_pin_tokens(&caller.client_id, caller.channel()?)
        .await?;
    Ok(ok(json!({ "exists": exists })))
}

/// `DELETE pin` (broadcaster): revokes the channel's PIN-issued tokens (the
/// GameLink refresh tokens too) and closes the sockets they opened, games'
/// sessions included, so none keeps receiving.
async fn revoke_pins<S: AuthStore + ConnectionStore>(
    State(app): State<SharedApp<S>>,
    caller: Caller,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Broadcaster])?;
    let (client, channel) = (&caller.client_id, caller.channel()?);
    let n = app.store.revoke_pin_tokens(client, channel).await?;
    let mut sockets = app.store.pin_connections(client, channel).await?;
    // Games logged in with the channel's GameLink PINs go too.
    let games = medkit::gamelink::session::channel_games(channel);
    sockets.extend(app.store.subscribers(client, &games).await?);
    let found = sockets.len();
    let closed = app.fanout().close_all(sockets).await;
    tracing::info!(revoked = n, sockets = found, closed, "PIN tokens revoked");
    Ok(ok(json!({})))
}

/// The routes, without the common layers (the dev server merges several functions).
pub fn routes<S: AuthStore + LimitStore + ConnectionStore>() -> Router<SharedApp<S>> {
    Router::new()
        .route("/v1/e/authtoken", post(authtoken::<S>))
        .route("/v1/e/user_info", get(user_info::<S>))
        .route("/v1/e/user_ids", get(user_ids::<S>))
        .route("/v1/e/pin", post(create_pin::<S>).delete(revoke_pins::<S>))
        .route("/v1/e/validate_pin", post(validate_pin::<S>))
        .route("/v1/e/pin_token_exists", get(pin_token_exists::<S>))
        .route("/v1/e/gamelink/token", post(gamelink_token::<S>))
}

/// The complete router this function serves.
pub fn router<S: AuthStore + LimitStore + ConnectionStore>(app: SharedApp<S>) -> Router {
    finish(routes::<S>().with_state(app))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_anonymized() {
        assert_eq!(anonymize("203.0.113.77".parse().unwrap()), "203.0.113.0");
        assert_eq!(
            anonymize("2001:db8:1:2:3:4:5:6".parse().unwrap()),
            "2001:db8:1::"
        );
    }

    #[test]
    fn cursors_round_trip_and_reject_garbage() {
        assert_eq!(
            decode_cursor(&encode_cursor("12345")).as_deref(),
            Some("12345")
        );
        assert_eq!(decode_cursor("!!!"), None);
        assert_ne!(encode_cursor("0"), "0");
    }
}
