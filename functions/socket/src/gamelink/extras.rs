//! The smaller targets: a game's `broadcast` to its channel's extension
//! pages, `drops` (medkit has no Twitch Drops source: always none), and
//! `gameMetadata` (stored per channel, acknowledged).

use medkit::app::App;
use medkit::auth::Caller;
use medkit::delivery::send::{self, Message, Scope};
use medkit::documents;
use medkit::gamelink::envelope::GamelinkError;
use medkit::realtime::envelope::{self, Target};
use medkit::store::DocKey;
use serde_json::{Value, json};

use super::GameStore;

/// Largest game metadata stored (the logo is an image as a data URL).
const MAX_METADATA_BYTES: usize = 100 * 1024;

/// `broadcast {topic, data}`: `sdk.listen(topic)` hears `data` on the
/// channel's extension pages, through the same envelope, rate budget and
/// fan-out as a REST `broadcast` by the broadcaster.
pub async fn broadcast<S: GameStore>(
    app: &App<S>,
    caller: &Caller,
    data: &Value,
) -> Result<Value, GamelinkError> {
    let topic = match data.get("topic") {
        Some(Value::String(t)) => t.clone(),
        _ => {
            return Err(GamelinkError::bad_request(
                "broadcast needs topic: a string",
            ));
        }
    };
    envelope::validate_event(&topic)?;
    let message = Message {
        event: topic,
        target: Target::Broadcast,
        data: data.get("data").cloned().unwrap_or_else(|| json!({})),
    };
    let channel = caller.channel()?.clone();
    let fanout = app.fanout();
    send::send(
        app.env,
        &fanout,
        &caller.client_id,
        Scope::Channel(channel),
        message,
        None,
    )
    .await?;
    Ok(json!({"ok": true}))
}

/// `get drops` answers that there are none; `validate drops` that there
/// was nothing to validate.
pub fn drops(verb: &str) -> Result<Value, GamelinkError> {
    match verb {
        "get" => Ok(json!({"drops": []})),
        "validate" => Err(GamelinkError::not_found(
            "no such drop: this server has no Twitch Drops source",
        )),
        other => Err(GamelinkError::bad_request(format!(
            "unknown drops action {other:?}: get or validate"
        ))),
    }
}

/// `set gameMetadata {name, logo, theme}`.
pub async fn game_metadata<S: GameStore>(
    app: &App<S>,
    caller: &Caller,
    data: &Value,
) -> Result<Value, GamelinkError> {
    let Value::Object(fields) = data else {
        return Err(GamelinkError::bad_request(
            "gameMetadata needs {name, logo, theme}",
        ));
    };
    for (name, value) in fields {
        if !matches!(name.as_str(), "name" | "logo" | "theme") || !value.is_string() {
            return Err(GamelinkError::bad_request(format!(
                "gameMetadata has name, logo and theme, each a string (not {name:?})"
            )));
        }
    }
    documents::check_size(data, MAX_METADATA_BYTES, "game metadata")?;
    let key = DocKey::game_metadata(&caller.client_id, caller.channel()?);
    app.store.put_doc(&key, data, app.expiry.state_secs).await?;
    Ok(json!({"ok": true}))
}
