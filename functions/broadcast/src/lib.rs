//! The `broadcast` function (CONTRACT §6): `broadcast`, `extension_broadcast`,
//! `whisper_self` and `pusher_broadcast`, each as POST and as GET with a body
//! (the MEDKit docs say GET); and `datastream`, events for a channel's games. Every send:
//!
//! 1. checks the caller's role and channel,
//! 2. builds the envelope (over 4 KB compressed; still over → 413, nothing sent),
//! 3. counts against the channel's 100 sends per 5 minutes (429 past it),
//! 4. fans out to the recipients' WebSocket connections (see
//!    `medkit::realtime::fanout`) and answers `{}`.
//!
//! [`worker`] is the fan-out worker that delivers queued jobs in AWS;
//! [`mapping`] (feature `local-mapping`) runs its event source mapping on
//! DynamoDB Local.

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use medkit::app::SharedApp;
use medkit::auth::{Caller, Role};
use medkit::delivery::{
    self,
    send::{Message, Scope},
};
use medkit::env::Env;
use medkit::error::ApiError;
use medkit::gamelink;
use medkit::http::{JsonBody, finish, ok};
use medkit::ids::{ChannelId, ClientId, ViewerId};
use medkit::limits::{DATASTREAM_POSTS_PER_CHANNEL, DATASTREAM_POSTS_PER_VIEWER};
use medkit::realtime::envelope::{self, Target};
use medkit::store::{AuthStore, ConnectionStore, LimitStore};
use serde_json::{Value, json};

#[cfg(feature = "local-mapping")]
pub mod mapping;
pub mod worker;

/// Who may send to a channel (a broadcaster only to their own).
const CHANNEL_SENDERS: &[Role] = &[Role::Broadcaster, Role::Admin, Role::Backend];

/// A send as its body describes it.
#[derive(Debug)]
struct SendRequest {
    event: String,
    target: Target,
    data: Value,
}

impl SendRequest {
    /// `event` (required), `target` (required unless `default_target`), `data` (any JSON, `{}` if absent).
    fn parse(body: &Value, default_target: Option<Target>) -> Result<Self, ApiError> {
        let obj = body
            .as_object()
            .ok_or_else(|| ApiError::bad_request("the body must be a JSON object"))?;
        let event = match obj.get("event") {
            Some(Value::String(e)) => e.clone(),
            Some(_) => return Err(ApiError::bad_request("event must be a string")),
            None => return Err(ApiError::bad_request("event is required")),
        };
        envelope::validate_event(&event)?;
        let target = match (obj.get("target"), default_target) {
            (Some(Value::String(t)), _) => Target::parse(t)?,
            (Some(_), _) => return Err(ApiError::bad_request("target must be a string")),
            (None, Some(t)) => t,
            (None, None) => {
                return Err(ApiError::bad_request(
                    "target is required: \"broadcast\" or \"whisper-<user id>\"",
                ));
            }
        };
        let data = obj.get("data").cloned().unwrap_or_else(|| json!({}));
        Ok(SendRequest {
            event,
            target,
            data,
        })
    }
}

/// The channel a channel send is for: `channel_id` or `user_id` in the body
/// (MEDKit names the channel `user_id`), else the token's. A broadcaster may
/// only send to their own channel.
fn target_channel(caller: &Caller, body: &Value) -> Result<ChannelId, ApiError> {
    let named = match body.get("channel_id").or_else(|| body.get("user_id")) {
        None | Some(Value::Null) => None,
        Some(Value::String(c)) if !c.is_empty() => Some(ChannelId::parse(c.as_str())?),
        Some(Value::Number(n)) => Some(ChannelId::parse(n.to_string())?),
        Some(_) => {
            return Err(ApiError::bad_request(
                "channel_id (or user_id) must be a channel id string",
            ));
        }
    };
    match (named, caller.role) {
        (Some(ch), Role::Broadcaster) if caller.channel_id.as_ref() != Some(&ch) => Err(
            ApiError::forbidden("a broadcaster may only send to their own channel"),
        ),
        (Some(ch), _) => Ok(ch),
        (None, _) => caller.channel().cloned().map_err(|_| {
            ApiError::bad_request("name the channel: channel_id (or user_id) is required")
        }),
    }
}

/// `pusher_broadcast` carries the event already scoped
/// (`<env>:<client_id>:<event>`, what the official client's Pusher
/// messenger sends): take the bare name back.
fn unscoped<'a>(env: Env, client: &ClientId, event: &'a str) -> &'a str {
    let prefix = format!("{}:{client}:", env.as_str());
    event.strip_prefix(prefix.as_str()).unwrap_or(event)
}

/// Steps 2–4 of every send (see `medkit::delivery::send`).
async fn send<S: ConnectionStore + LimitStore>(
    app: &SharedApp<S>,
    client: &ClientId,
    scope: Scope,
    req: SendRequest,
    own: Option<&ViewerId>,
) -> Result<Response, ApiError> {
    let message = Message {
        event: req.event,
        target: req.target,
        data: req.data,
    };
    delivery::send::send(app.env, &app.fanout(), client, scope, message, own).await?;
    Ok(ok(json!({})))
}

async fn broadcast<S: ConnectionStore + LimitStore + AuthStore>(
    State(app): State<SharedApp<S>>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    caller.require(CHANNEL_SENDERS)?;
    let req = SendRequest::parse(&body, None)?;
    let channel = target_channel(&caller, &body)?;
    send(&app, &caller.client_id, Scope::Channel(channel), req, None).await
}

async fn pusher_broadcast<S: ConnectionStore + LimitStore + AuthStore>(
    State(app): State<SharedApp<S>>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    caller.require(CHANNEL_SENDERS)?;
    let mut req = SendRequest::parse(&body, None)?;
    req.event = unscoped(app.env, &caller.client_id, &req.event).to_string();
    envelope::validate_event(&req.event)?;
    let channel = target_channel(&caller, &body)?;
    send(&app, &caller.client_id, Scope::Channel(channel), req, None).await
}

async fn extension_broadcast<S: ConnectionStore + LimitStore + AuthStore>(
    State(app): State<SharedApp<S>>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    caller.require_privileged()?;
    let req = SendRequest::parse(&body, None)?;
    send(&app, &caller.client_id, Scope::Extension, req, None).await
}

/// To the caller's own connections on the caller's channel (other instances
/// of the extension the same viewer has open).
async fn whisper_self<S: ConnectionStore + LimitStore + AuthStore>(
    State(app): State<SharedApp<S>>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let me: ViewerId = caller.voter_id()?;
    let channel = caller.channel()?.clone();
    let req = SendRequest::parse(&body, Some(Target::Whisper(me.clone())))?;
    if req.target != Target::Whisper(me.clone()) {
        return Err(ApiError::bad_request(
            "whisper_self sends to the caller only; leave out target",
        ));
    }
    send(
        &app,
        &caller.client_id,
        Scope::Channel(channel),
        req,
        Some(&me),
    )
    .await
}

/// `POST datastream` (any role of a channel): events for the channel's
/// games that subscribed to `datastream`, pushed as one update (`{events:
/// [{event, timestamp}]}`, in order). Budgets: the channel's, and a
/// viewer's own.
async fn datastream<S: ConnectionStore + LimitStore + AuthStore>(
    State(app): State<SharedApp<S>>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let channel = caller.channel()?.clone();
    let events = gamelink::datastream::events_of(&body)?;
    let now = medkit::clock::now_secs();
    let client = &caller.client_id;
    let mut budgets = vec![(
        format!("ds|c|{channel}"),
        DATASTREAM_POSTS_PER_CHANNEL,
        "datastream posts to this channel",
    )];
    if matches!(caller.role, Role::Viewer) {
        budgets.push((
            format!("ds|v|{}", caller.voter_id()?),
            DATASTREAM_POSTS_PER_VIEWER,
            "datastream posts of yours",
        ));
    }
    for (i, (key, limit, what)) in budgets.iter().enumerate() {
        if !app.store.spend(client, key, *limit, now).await? {
            // A refused post costs nothing.
            for (spent, limit, _) in &budgets[..i] {
                app.store.refund(client, spent, *limit, now).await?;
            }
            return Err(limit.refusal(what, now));
        }
    }
    let push = gamelink::datastream::update(&channel, events, medkit::clock::now_ms());
    app.notifier.push(client.clone(), push).await;
    Ok(ok(json!({})))
}

pub fn routes<S: ConnectionStore + LimitStore + AuthStore>() -> Router<SharedApp<S>> {
    Router::new()
        .route("/v1/e/broadcast", get(broadcast::<S>).post(broadcast::<S>))
        .route(
            "/v1/e/pusher_broadcast",
            get(pusher_broadcast::<S>).post(pusher_broadcast::<S>),
        )
        .route(
            "/v1/e/extension_broadcast",
            get(extension_broadcast::<S>).post(extension_broadcast::<S>),
        )
        .route(
            "/v1/e/whisper_self",
            get(whisper_self::<S>).post(whisper_self::<S>),
        )
        .route("/v1/e/datastream", post(datastream::<S>))
}

/// The complete router this function serves.
pub fn router<S: ConnectionStore + LimitStore + AuthStore>(app: SharedApp<S>) -> Router {
    finish(routes::<S>().with_state(app))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pusher_events_lose_only_their_own_scope() {
        let c = ClientId::parse("abc").unwrap();
        assert_eq!(unscoped(Env::Sandbox, &c, "sandbox:abc:score"), "score");
        assert_eq!(unscoped(Env::Sandbox, &c, "score"), "score");
        assert_eq!(
            unscoped(Env::Sandbox, &c, "production:abc:score"),
            "production:abc:score"
        );
    }
}
