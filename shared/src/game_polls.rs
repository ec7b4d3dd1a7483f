//! GameLink polls as a service, shared by the socket function (the `poll`
//! verbs) and the aggregate function (viewers' votes): where a poll's
//! definition lives (a document beside its votes), the updates its
//! subscribed games receive, and the moments it starts and ends.
//!
//! A poll's status is derived from its times on every read, so a late or
//! lost timer can never leave it active past its end; the timers only
//! announce. The one `expired` update a poll sends is claimed with an
//! atomic write of the definition (`expiry_sent`), so a stop and a timer,
//! or two timers, never send two.

use std::time::Duration;

use crate::aggregate::AggKey;
use crate::app::{App, SharedApp};
use crate::clock::{now_ms, now_secs};
use crate::error::StoreError;
use crate::gamelink::envelope::{MAX_FRAME_BYTES, Meta, reply};
use crate::gamelink::poll::{Poll, Status};
use crate::gamelink::push::Push;
use crate::ids::{ChannelId, ClientId};
use crate::realtime::subscription::Subscription;
use crate::store::{AggregateStore, DocKey, DocumentStore};

/// Where a channel's poll definition is kept.
pub fn key(client: &ClientId, channel: &ChannelId, poll_id: &str) -> DocKey {
    DocKey::game_poll(client, channel, poll_id)
}

/// The topic of a poll's subscribers.
pub fn subscription(channel: &ChannelId, poll_id: &str) -> Subscription {
    Subscription::channel(channel, format!("poll:{poll_id}"))
}

/// The channel's poll of that id, if a game created one.
pub async fn load<S: DocumentStore>(
    store: &S,
    client: &ClientId,
    channel: &ChannelId,
    poll_id: &str,
) -> Result<Option<Poll>, StoreError> {
    let Some(doc) = store.get_doc(&key(client, channel, poll_id)).await? else {
        return Ok(None);
    };
    // A definition that does not read back is no poll (and says so in the log).
    match serde_json::from_value(doc) {
        Ok(p) => Ok(Some(p)),
        Err(e) => {
            tracing::error!(error = %e, "a stored poll definition does not parse");
            Ok(None)
        }
    }
}

/// The votes of a channel's poll.
pub fn votes(client: &ClientId, channel: &ChannelId, poll_id: &str) -> AggKey {
    AggKey {
        client: client.clone(),
        scope: Some(channel.clone()),
        id: poll_id.to_string(),
    }
}

/// The update subscribed games receive: target `poll`.
pub fn update(
    poll: &Poll,
    channel: &ChannelId,
    sums: &crate::aggregate::vote::Sums,
) -> Option<Push> {
    let frame = reply(
        &Meta::update("poll"),
        &poll.body(sums, now_secs()),
        now_ms(),
    );
    if frame.len() > MAX_FRAME_BYTES {
        tracing::warn!(bytes = frame.len(), "poll update too large to push");
        return None;
    }
    Some(Push {
        to: subscription(channel, &poll.poll_id),
        frame,
    })
}

/// Tells the poll's subscribed games its current figures (best effort).
pub async fn announce<S: AggregateStore>(
    app: &App<S>,
    client: &ClientId,
    channel: &ChannelId,
    poll: &Poll,
) {
    match app
        .store
        .vote_totals(&votes(client, channel, &poll.poll_id), None)
        .await
    {
        Ok((sums, _)) => push_update(app, client, channel, poll, &sums).await,
        Err(e) => tracing::warn!(error = %e, "poll update not sent"),
    }
}

/// Tells the poll's subscribed games these figures (best effort).
pub async fn push_update<S>(
    app: &App<S>,
    client: &ClientId,
    channel: &ChannelId,
    poll: &Poll,
    sums: &crate::aggregate::vote::Sums,
) {
    if let Some(push) = update(poll, channel, sums) {
        app.notifier.push(client.clone(), push).await;
    }
}

/// Why a claim of the `expired` update found nothing to do.
#[derive(Debug)]
enum NotYours {
    Store(StoreError),
    /// Deleted, re-created (another run), not over yet, or already sent.
    Nothing,
}

impl From<StoreError> for NotYours {
    fn from(e: StoreError) -> Self {
        NotYours::Store(e)
    }
}

/// Sends the poll's one `expired` update, if this run of the poll is over
/// and nobody sent it yet.
pub async fn expire<S: DocumentStore + AggregateStore>(
    app: &App<S>,
    client: &ClientId,
    channel: &ChannelId,
    poll_id: &str,
    run: &str,
    ttl_secs: i64,
) {
    let run_owned = run.to_string();
    let claimed = app
        .store
        .update_doc(&key(client, channel, poll_id), ttl_secs, move |cur| {
            let mut poll: Poll = cur
                .and_then(|v| serde_json::from_value(v).ok())
                .ok_or(NotYours::Nothing)?;
            if poll.run != run_owned
                || poll.expiry_sent
                || poll.status(now_secs()) != Status::Expired
            {
                return Err(NotYours::Nothing);
            }
            poll.expiry_sent = true;
            serde_json::to_value(&poll)
                .map_err(|e| NotYours::Store(StoreError::Internal(e.to_string())))
        })
        .await;
    match claimed {
        Ok(v) => match serde_json::from_value::<Poll>(v) {
            Ok(poll) => announce(app, client, channel, &poll).await,
            Err(e) => tracing::error!(error = %e, "a stored poll definition does not parse"),
        },
        Err(NotYours::Nothing) => {}
        Err(NotYours::Store(e)) => tracing::warn!(error = %e, "poll expiry not sent"),
    }
}

/// In-process timers for a poll's start (its `active` update) and end (its
/// `expired` update). Each checks, when it fires, that the poll is still
/// this run, so a poll deleted and created again is never touched by the
/// old one's timers.
pub fn schedule<S: DocumentStore + AggregateStore>(
    app: &SharedApp<S>,
    client: &ClientId,
    channel: &ChannelId,
    poll: &Poll,
    ttl_secs: i64,
) {
    let now = now_secs();
    let at = |t: i64| Duration::from_secs((t - now).max(0) as u64);
    if poll.config.starts_at > now {
        let (app, client, channel) = (app.clone(), client.clone(), channel.clone());
        let (id, run, wait) = (
            poll.poll_id.clone(),
            poll.run.clone(),
            at(poll.config.starts_at),
        );
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            match load(&app.store, &client, &channel, &id).await {
                Ok(Some(p)) if p.run == run && p.status(now_secs()) == Status::Active => {
                    announce(&app, &client, &channel, &p).await
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "poll start not announced"),
            }
        });
    }
    if poll.config.ends_at > 0 {
        let (app, client, channel) = (app.clone(), client.clone(), channel.clone());
        let (id, run, wait) = (
            poll.poll_id.clone(),
            poll.run.clone(),
            at(poll.config.ends_at),
        );
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            expire(&app, &client, &channel, &id, &run, ttl_secs).await;
        });
    }
}
