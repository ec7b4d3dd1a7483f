//! The document endpoints' rules and operations (CONTRACT §3), shared by
//! the REST `stores` function and GameLink's `state` and `config` verbs, so
//! both read and write the same documents under the same rules and every
//! write notifies both audiences: viewers (the event, if the document has
//! one) and subscribed games (the GameLink update).

use serde_json::Value;

use crate::app::App;
use crate::auth::{Caller, Role};
use crate::clock::now_ms;
use crate::documents::{self, MAX_DOC_BYTES, Patch};
use crate::error::ApiError;
use crate::gamelink::push::{self, Push};
use crate::gamelink::state::StateTarget;
use crate::ids::{ChannelId, ClientId};
use crate::realtime::event::{Audience, Event};
use crate::store::{DocKey, DocumentStore};

/// The document endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Doc {
    ExtensionState,
    ChannelState,
    ViewerState,
    ExtensionViewerState,
    HiddenState,
    ExtensionConfig,
    ChannelConfig,
}

pub const PRIVILEGED: &[Role] = &[Role::Admin, Role::Backend];
pub const CHANNEL_WRITERS: &[Role] = &[Role::Broadcaster, Role::Admin, Role::Backend];

impl Doc {
    pub fn name(self) -> &'static str {
        match self {
            Doc::ExtensionState => "extension state",
            Doc::ChannelState => "channel state",
            Doc::ViewerState => "viewer state",
            Doc::ExtensionViewerState => "extension viewer state",
            Doc::HiddenState => "hidden state",
            Doc::ExtensionConfig => "extension config",
            Doc::ChannelConfig => "channel config",
        }
    }

    /// Roles that may read; None = any role (per-viewer docs check identity instead).
    pub fn readers(self) -> Option<&'static [Role]> {
        match self {
            Doc::HiddenState => Some(PRIVILEGED),
            _ => None,
        }
    }

    pub fn writers(self) -> Option<&'static [Role]> {
        match self {
            Doc::ExtensionState | Doc::HiddenState | Doc::ExtensionConfig => Some(PRIVILEGED),
            Doc::ChannelState | Doc::ChannelConfig => Some(CHANNEL_WRITERS),
            Doc::ViewerState | Doc::ExtensionViewerState => None,
        }
    }

    /// The caller's own document of this kind.
    pub fn key(self, c: &Caller) -> Result<DocKey, ApiError> {
        let client = &c.client_id;
        Ok(match self {
            Doc::ExtensionState => DocKey::extension_state(client),
            Doc::ChannelState => DocKey::channel_state(client, c.channel()?),
            Doc::ViewerState => DocKey::viewer_state(client, c.channel()?, &c.viewer_id()?),
            Doc::ExtensionViewerState => DocKey::extension_viewer_state(client, &c.viewer_id()?),
            Doc::HiddenState => DocKey::hidden_state(client),
            Doc::ExtensionConfig => DocKey::extension_config(client),
            Doc::ChannelConfig => DocKey::channel_config(client, c.channel()?),
        })
    }

    /// The caller's document, once the caller may read it (403 otherwise).
    pub fn readable_key(self, c: &Caller) -> Result<DocKey, ApiError> {
        if let Some(roles) = self.readers() {
            c.require(roles)?;
        }
        self.key(c)
    }

    /// The caller's document, once the caller may write it (403 otherwise).
    pub fn writable_key(self, c: &Caller) -> Result<DocKey, ApiError> {
        if let Some(roles) = self.writers() {
            c.require(roles)?;
        }
        self.key(c)
    }

    pub fn ttl<S>(self, app: &App<S>) -> i64 {
        match self {
            Doc::ExtensionConfig | Doc::ChannelConfig => app.expiry.config_secs,
            _ => app.expiry.state_secs,
        }
    }

    /// The event a write emits, if any.
    pub fn event(self, c: &Caller, new: &Value) -> Option<Event> {
        match self {
            Doc::ChannelState => Some(Event {
                client_id: c.client_id.clone(),
                audience: Audience::Channel(c.channel_id.clone()?),
                name: "channel_state_update".into(),
                data: new.clone(),
                games: None,
            }),
            _ => None,
        }
    }

    /// The update a write pushes to subscribed games, if any: state and
    /// config of the channel and of the extension.
    pub fn push(
        self,
        client: &ClientId,
        channel: Option<&ChannelId>,
        new: &Value,
    ) -> Option<(ClientId, Push)> {
        let now = now_ms();
        let push = match self {
            Doc::ChannelState => push::state_update(StateTarget::Channel, channel, new, now),
            Doc::ExtensionState => push::state_update(StateTarget::Extension, None, new, now),
            Doc::ChannelConfig => push::config_update(StateTarget::Channel, channel, new, now),
            Doc::ExtensionConfig => push::config_update(StateTarget::Extension, None, new, now),
            _ => None,
        }?;
        // API Gateway posts at most 128 KB: a bigger document reaches games
        // only when they `get` it.
        if push.frame.len() > crate::gamelink::envelope::MAX_FRAME_BYTES {
            tracing::warn!(
                bytes = push.frame.len(),
                document = self.name(),
                "update too large to push to games"
            );
            return None;
        }
        Some((client.clone(), push))
    }
}

/// The caller's document as stored, `None` when absent.
pub async fn read_text<S: DocumentStore>(
    app: &App<S>,
    caller: &Caller,
    doc: Doc,
) -> Result<Option<String>, ApiError> {
    let key = doc.readable_key(caller)?;
    Ok(app.store.get_doc_text(&key).await?)
}

/// Replaces the caller's document with `body` (a JSON object).
pub async fn replace<S: DocumentStore>(
    app: &App<S>,
    caller: &Caller,
    doc: Doc,
    body: Value,
) -> Result<Value, ApiError> {
    let key = doc.writable_key(caller)?;
    let new = documents::replacement(body, MAX_DOC_BYTES, doc.name())?;
    app.store.put_doc(&key, &new, doc.ttl(app)).await?;
    announce(app, caller, doc, &new).await;
    Ok(new)
}

/// Applies a JSON patch (RFC 6902 ops, or a merge patch) to the caller's
/// document, atomically.
pub async fn patch<S: DocumentStore>(
    app: &App<S>,
    caller: &Caller,
    doc: Doc,
    body: Value,
) -> Result<Value, ApiError> {
    let key = doc.writable_key(caller)?;
    let patch = Patch::parse(body)?;
    // `doc`, not its `&'static str` name: a captured reference makes the
    // future's `Send` depend on a lifetime the compiler cannot prove
    // general enough once it is awaited inside another generic future.
    let new = app
        .store
        .update_doc(&key, doc.ttl(app), move |cur| {
            patch.apply(cur, MAX_DOC_BYTES, doc.name())
        })
        .await?;
    announce(app, caller, doc, &new).await;
    Ok(new)
}

/// Tells viewers and games about a write (best effort: the write stands).
pub async fn announce<S>(app: &App<S>, caller: &Caller, doc: Doc, new: &Value) {
    let push = doc.push(&caller.client_id, caller.channel_id.as_ref(), new);
    match (doc.event(caller, new), push) {
        // One notification for both audiences: one job, one delivery.
        (Some(mut e), push) => {
            e.games = push.map(|(_, p)| p);
            app.notifier.notify(e).await;
        }
        (None, Some((client, push))) => app.notifier.push(client, push).await,
        (None, None) => {}
    }
}

/// The games' half of [`announce`], for a write to `channel`'s document
/// (an admin's map PATCH writes other channels than its own).
pub async fn announce_for<S>(
    app: &App<S>,
    client: &ClientId,
    channel: Option<&ChannelId>,
    doc: Doc,
    new: &Value,
) {
    if let Some((client, push)) = doc.push(client, channel, new) {
        app.notifier.push(client, push).await;
    }
}
