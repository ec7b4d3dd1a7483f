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

use crate::aggregate::AggKey;
use crate::app::App;
use crate::clock::{now_ms, now_secs};
use crate::error::StoreError;
use crate::gamelink::poll::{Poll, Status};
use crate::gamelink::push::{Push, fitting};
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
    let body = poll.body(sums, now_secs());
    fitting(
        subscription(channel, &poll.poll_id),
        "poll",
        &body,
        now_ms(),
    )
}

/// How long a poll's definition is kept: as long as its votes.
pub fn ttl_secs<S>(app: &App<S>) -> i64 {
    app.expiry.votes_secs
}

/// Tells the poll's subscribed games its current figures; the read of its
/// votes may fail (a timer then tries again).
pub async fn announce<S: AggregateStore>(
    app: &App<S>,
    client: &ClientId,
    channel: &ChannelId,
    poll: &Poll,
) -> Result<(), StoreError> {
    let (sums, _) = app
        .store
        .vote_totals(&votes(client, channel, &poll.poll_id), None)
        .await?;
    push_update(app, client, channel, poll, &sums).await;
    Ok(())
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

/// Claims the one `expired` update of run `run` of the record at `key` (a
/// channel's poll, or a match poll's record: `poll_of` finds the poll in
/// it), with one atomic write: the record as claimed, or None when it is
/// gone, another run, not over yet or claimed already. A store failure is
/// returned (no claim was made, so trying again is safe).
pub async fn claim_expiry<S, R>(
    app: &App<S>,
    key: &DocKey,
    run: &str,
    poll_of: fn(&mut R) -> &mut Poll,
) -> Result<Option<R>, StoreError>
where
    S: DocumentStore,
    R: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
{
    let run_owned = run.to_string();
    let claimed = app
        .store
        .update_doc(key, ttl_secs(app), move |cur| {
            let mut record: R = cur
                .and_then(|v| serde_json::from_value(v).ok())
                .ok_or(NotYours::Nothing)?;
            let poll = poll_of(&mut record);
            if poll.run != run_owned
                || poll.expiry_sent
                || poll.status(now_secs()) != Status::Expired
            {
                return Err(NotYours::Nothing);
            }
            poll.expiry_sent = true;
            serde_json::to_value(&record)
                .map_err(|e| NotYours::Store(StoreError::Internal(e.to_string())))
        })
        .await;
    match claimed {
        Ok(v) => match serde_json::from_value(v) {
            Ok(record) => Ok(Some(record)),
            Err(e) => {
                tracing::error!(error = %e, "a stored poll record does not parse");
                Ok(None)
            }
        },
        Err(NotYours::Nothing) => Ok(None),
        Err(NotYours::Store(e)) => Err(e),
    }
}

/// Sends the poll's one `expired` update, if this run of the poll is over
/// and nobody sent it yet. A store failure is returned (the claim was not
/// made, so trying again is safe).
pub async fn expire<S: DocumentStore + AggregateStore>(
    app: &App<S>,
    client: &ClientId,
    channel: &ChannelId,
    poll_id: &str,
    run: &str,
) -> Result<(), StoreError> {
    let key = key(client, channel, poll_id);
    let claimed = claim_expiry(app, &key, run, |p: &mut Poll| p).await?;
    // Claimed: the update goes now or never (a retry finds it sent).
    if let Some(poll) = claimed
        && let Err(e) = announce(app, client, channel, &poll).await
    {
        tracing::warn!(error = %e, "poll expiry not sent");
    }
    Ok(())
}
