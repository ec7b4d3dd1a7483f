//! The `state`, `config` and `datastream` targets: the same documents, rules and
//! notifications as the REST `stores` function (`medkit::stores`). A
//! game's writes reach viewers (`channel_state_update`) and the other
//! subscribed games; REST writes reach subscribed games.

use medkit::app::App;
use medkit::auth::Caller;
use medkit::gamelink::envelope::GamelinkError;
use medkit::gamelink::push::{config_topic, state_topic};
use medkit::gamelink::session::Session;
use medkit::gamelink::state::{self, ConfigTarget, StateTarget};
use medkit::realtime::subscription::Subscription;
use medkit::stores::{self, Doc};
use serde_json::{Value, json};

use super::GameStore;

fn state_doc(t: StateTarget) -> Doc {
    match t {
        StateTarget::Channel => Doc::ChannelState,
        StateTarget::Extension => Doc::ExtensionState,
    }
}

fn config_doc(t: StateTarget) -> Doc {
    match t {
        StateTarget::Channel => Doc::ChannelConfig,
        StateTarget::Extension => Doc::ExtensionConfig,
    }
}

/// The subscription of a document's topic, in the session's channel.
fn subscription(session: &Session, target: StateTarget, topic: String) -> Option<Subscription> {
    match target {
        StateTarget::Extension => Some(Subscription::extension(topic)),
        StateTarget::Channel => {
            let login = session.login.as_ref()?;
            Some(Subscription::channel(&login.channel, topic))
        }
    }
}

/// `field` of the body, which the verb requires.
fn body<'a>(data: &'a Value, field: &str, verb: &str) -> Result<&'a Value, GamelinkError> {
    data.get(field)
        .ok_or_else(|| GamelinkError::bad_request(format!("{verb} needs {field} in its data")))
}

async fn read<S: GameStore>(
    app: &App<S>,
    caller: &Caller,
    doc: Doc,
) -> Result<Value, GamelinkError> {
    let text = stores::read_text(app, caller, doc).await?;
    Ok(match text {
        Some(t) => serde_json::from_str(&t).unwrap_or_else(|_| json!({})),
        None => json!({}),
    })
}

/// `get`, `set` or `patch` of one document; `field` names the body's
/// value (the new document, or the patch's operations).
async fn read_or_write<S: GameStore>(
    app: &App<S>,
    caller: &Caller,
    doc: Doc,
    verb: &str,
    data: &Value,
    field: &str,
) -> Result<Value, GamelinkError> {
    if verb == "get" {
        return read(app, caller, doc).await;
    }
    let value = body(data, field, verb)?.clone();
    let written = if verb == "set" {
        stores::replace(app, caller, doc, value).await?
    } else {
        stores::patch(app, caller, doc, value).await?
    };
    Ok(written)
}

pub(super) async fn follow<S: GameStore>(
    app: &App<S>,
    session: &Session,
    verb: &str,
    sub: Option<Subscription>,
) -> Result<Value, GamelinkError> {
    let sub = sub.ok_or_else(|| GamelinkError::unauthorized("authenticate first"))?;
    if verb == "subscribe" {
        if !app.store.subscribe(session, &sub).await? {
            return Err(GamelinkError::conflict(format!(
                "a session holds at most {} subscriptions",
                medkit::gamelink::session::MAX_SUBSCRIPTIONS
            )));
        }
    } else {
        app.store.unsubscribe(session, &sub).await?;
    }
    Ok(json!({"ok": true}))
}

pub async fn state<S: GameStore>(
    app: &App<S>,
    session: &Session,
    caller: &Caller,
    verb: &str,
    data: &Value,
) -> Result<Value, GamelinkError> {
    let target = state::target_of(verb, data)?;
    let doc = state_doc(target);
    let state = match verb {
        "get" | "set" | "patch" => read_or_write(app, caller, doc, verb, data, "state").await?,
        "subscribe" | "unsubscribe" => {
            let sub = subscription(session, target, state_topic(target));
            return follow(app, session, verb, sub).await;
        }
        other => {
            return Err(GamelinkError::bad_request(format!(
                "unknown state action {other:?}: get, set, patch, subscribe or unsubscribe"
            )));
        }
    };
    Ok(json!({"ok": true, "state": state}))
}

pub async fn config<S: GameStore>(
    app: &App<S>,
    session: &Session,
    caller: &Caller,
    verb: &str,
    data: &Value,
) -> Result<Value, GamelinkError> {
    if !matches!(verb, "get" | "set" | "patch" | "subscribe" | "unsubscribe") {
        return Err(GamelinkError::bad_request(format!(
            "unknown config action {verb:?}: get, set, patch, subscribe or unsubscribe"
        )));
    }
    let target = match state::config_target_of(verb, data)? {
        ConfigTarget::Combined => {
            // Both in one store round trip.
            let keys = [
                Doc::ChannelConfig.readable_key(caller)?,
                Doc::ExtensionConfig.readable_key(caller)?,
            ];
            let mut docs = app.store.get_docs(&keys).await?.into_iter();
            let mut next = || docs.next().flatten().unwrap_or_else(|| json!({}));
            let (channel, extension) = (next(), next());
            return Ok(json!({
                "config": {"channel": channel, "extension": extension, "config_id": "combined"},
                "config_id": "combined",
            }));
        }
        ConfigTarget::One(t) => t,
    };
    let doc = config_doc(target);
    let config = match verb {
        "get" | "set" | "patch" => read_or_write(app, caller, doc, verb, data, "config").await?,
        _ => {
            let sub = subscription(session, target, config_topic(target));
            return follow(app, session, verb, sub).await;
        }
    };
    Ok(json!({"config": config, "config_id": target.as_str()}))
}

/// `subscribe` / `unsubscribe` `datastream`: the channel's events that
/// `POST /v1/e/datastream` carries.
pub async fn datastream<S: GameStore>(
    app: &App<S>,
    session: &Session,
    verb: &str,
) -> Result<Value, GamelinkError> {
    if !matches!(verb, "subscribe" | "unsubscribe") {
        return Err(GamelinkError::bad_request(format!(
            "unknown datastream action {verb:?}: subscribe or unsubscribe"
        )));
    }
    let sub = session
        .login
        .as_ref()
        .map(|l| Subscription::channel(&l.channel, medkit::gamelink::datastream::TOPIC));
    follow(app, session, verb, sub).await
}
