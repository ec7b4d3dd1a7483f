//! A send (CONTRACT §6), whoever makes it: the REST broadcast endpoints and
//! a game's GameLink `broadcast`. Steps 2–4 of every send: build the
//! envelope (over 4 KB compressed; still over → 413, nothing sent), count it
//! against its budget (100 sends per 5 minutes; 429 past it), and fan it out
//! to the recipients' connections.

use serde_json::Value;

use crate::delivery::fanout::{Fanout, Report};
use crate::env::Env;
use crate::error::ApiError;
use crate::ids::{ChannelId, ClientId, ViewerId};
use crate::limits::SENDS;
use crate::realtime::envelope::{self, Kind, Stamp, Target, Topic};
use crate::realtime::job::{Recipients, RelayTarget};
use crate::realtime::rate::{self, Budget, RATE_WINDOW_SECS, SENDS_PER_WINDOW};
use crate::store::{ConnectionStore, LimitStore};

/// Where a send goes: one channel, or every channel of the extension.
pub enum Scope {
    Channel(ChannelId),
    Extension,
}

/// What is sent: a named event, to a channel's viewers or to one viewer.
pub struct Message {
    pub event: String,
    pub target: Target,
    pub data: Value,
}

/// Sends `message`. `own` names the viewer whose `whisper_self` this is: it
/// spends that viewer's budget, never the channel's.
pub async fn send<S: ConnectionStore + LimitStore>(
    env: Env,
    fanout: &Fanout<'_, S>,
    client: &ClientId,
    scope: Scope,
    message: Message,
    own: Option<&ViewerId>,
) -> Result<Report, ApiError> {
    let envelope = envelope::message(env, client, &message.event, &message.data)?;
    let (budget, whose) = {
        let b = match (&scope, own) {
            (_, Some(viewer)) => Budget::Viewer(viewer),
            (Scope::Channel(ch), None) => Budget::Channel(ch),
            (Scope::Extension, None) => Budget::Extension,
        };
        (b.key(), b.whose())
    };
    let channel = match &scope {
        Scope::Channel(ch) => Some(ch.clone()),
        Scope::Extension => None,
    };
    let (topic, to) = match (scope, message.target) {
        (Scope::Channel(ch), Target::Broadcast) => (Topic::Broadcast, Recipients::Channel(ch)),
        (Scope::Channel(ch), Target::Whisper(v)) => {
            (Topic::Whisper(v.clone()), Recipients::ChannelViewer(ch, v))
        }
        (Scope::Extension, Target::Broadcast) => (Topic::Global, Recipients::Extension),
        (Scope::Extension, Target::Whisper(v)) => {
            (Topic::Whisper(v.clone()), Recipients::Viewer(v))
        }
    };
    let now = crate::clock::now_secs();
    if !fanout.store.spend(client, &budget, SENDS, now).await? {
        let wait = rate::seconds_left(now);
        return Err(ApiError::RateLimited(format!(
            "more than {SENDS_PER_WINDOW} sends {whose} in {} minutes; try again in {wait} s",
            RATE_WINDOW_SECS / 60
        )));
    }
    let frame = envelope::frame(&topic, &envelope, &Stamp::new(), Kind::Message);
    let report = fanout.deliver(client, &to, &frame).await?;
    fanout
        .relay(client, RelayTarget::of(channel.as_ref(), &topic), &envelope)
        .await;
    tracing::info!(
        event = %message.event,
        topic = %topic.as_string(),
        sent = report.sent,
        gone = report.gone,
        failed = report.failed,
        queued = report.queued,
        "broadcast"
    );
    Ok(report)
}
