//! GameLink matches as a service, shared by the socket function (the
//! `match` and `match_poll` verbs), the aggregate function (a vote on a
//! channel's part of a match poll) and the timers: where a match and its
//! polls live, their figures across channels, and the one `expired` update.

use futures_util::StreamExt;

use crate::aggregate::vote::Sums;
use crate::app::App;
use crate::clock::{now_ms, now_secs};
use crate::error::StoreError;
use crate::game_polls;
use crate::gamelink::matches::{MATCH_IDLE_SECS, Match, MatchPoll, poll_subscription};
use crate::gamelink::push::{Push, fitting};
use crate::ids::ClientId;
use crate::store::{AggregateStore, DocKey, DocumentStore};

/// Channels whose figures are read at once for one update.
const READS_IN_FLIGHT: usize = 16;

pub fn key(client: &ClientId, id: &str) -> DocKey {
    DocKey::game_match(client, id)
}

pub fn poll_key(client: &ClientId, id: &str, poll_id: &str) -> DocKey {
    DocKey::game_match_poll(client, id, poll_id)
}

/// How long a match is kept after its last verb.
pub fn match_ttl_secs() -> i64 {
    MATCH_IDLE_SECS
}

fn parsed<T: serde::de::DeserializeOwned>(doc: Option<serde_json::Value>) -> Option<T> {
    // A record that does not read back is none (and says so in the log).
    doc.and_then(|v| {
        serde_json::from_value(v)
            .inspect_err(|e| tracing::error!(error = %e, "a stored match record does not parse"))
            .ok()
    })
}

pub async fn load_match<S: DocumentStore>(
    store: &S,
    client: &ClientId,
    id: &str,
) -> Result<Option<Match>, StoreError> {
    Ok(parsed(store.get_doc(&key(client, id)).await?))
}

pub async fn load_poll<S: DocumentStore>(
    store: &S,
    client: &ClientId,
    id: &str,
    poll_id: &str,
) -> Result<Option<MatchPoll>, StoreError> {
    Ok(parsed(store.get_doc(&poll_key(client, id, poll_id)).await?))
}

/// Every channel's figures, in the order of the poll's channels (one read
/// per channel, [`READS_IN_FLIGHT`] at a time).
pub async fn figures<S: AggregateStore>(
    app: &App<S>,
    client: &ClientId,
    poll: &MatchPoll,
) -> Result<Vec<Sums>, StoreError> {
    let reads = poll.channel_ids().into_iter().map(|ch| async move {
        let key = game_polls::votes(client, &ch, &poll.poll.poll_id);
        app.store.vote_totals(&key, None).await.map(|(s, _)| s)
    });
    futures_util::stream::iter(reads)
        .buffered(READS_IN_FLIGHT)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

/// The `match_poll` update of these figures, if it fits a frame.
pub fn update(poll: &MatchPoll, per: &[Sums]) -> Option<Push> {
    let body = poll.body(per, now_secs());
    fitting(
        poll_subscription(&poll.match_id),
        "match_poll",
        &body,
        now_ms(),
    )
}

/// Tells the match's poll subscribers the poll's current figures.
pub async fn announce<S: AggregateStore>(
    app: &App<S>,
    client: &ClientId,
    poll: &MatchPoll,
) -> Result<(), StoreError> {
    let per = figures(app, client, poll).await?;
    if let Some(push) = update(poll, &per) {
        app.notifier.push(client.clone(), push).await;
    }
    Ok(())
}

/// Sends the match poll's one `expired` update, if this run is over and
/// nobody sent it yet (the same atomic claim as a channel's poll, on the
/// match poll's record).
pub async fn expire<S: DocumentStore + AggregateStore>(
    app: &App<S>,
    client: &ClientId,
    id: &str,
    poll_id: &str,
    run: &str,
) -> Result<(), StoreError> {
    let key = poll_key(client, id, poll_id);
    let claimed =
        game_polls::claim_expiry(app, &key, run, |mp: &mut MatchPoll| &mut mp.poll).await?;
    if let Some(mp) = claimed
        && let Err(e) = announce(app, client, &mp).await
    {
        tracing::warn!(error = %e, "match poll expiry not sent");
    }
    Ok(())
}
