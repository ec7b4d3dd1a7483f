//! The `poll` target: `create`, `get`, `delete`, `reconfigure` (`endsAt:
//! -1` stops it now; `disabled`), `subscribe` / `unsubscribe` (`topic_id`:
//! the poll id). Viewers vote with the REST `vote?id=<poll id>`, where the
//! poll's rules are enforced (see `medkit::gamelink::poll::Poll::admits`).

use medkit::aggregate::vote::Sums;
use medkit::app::SharedApp;
use medkit::clock::now_secs;
use medkit::game_polls;
use medkit::gamelink::envelope::GamelinkError;
use medkit::gamelink::poll::{self, Poll, Status};
use medkit::gamelink::session::Session;
use medkit::ids::{ChannelId, ClientId};
use medkit::timers;
use serde_json::{Value, json};

use super::documents::follow;
use super::{GameStore, Refused, stored};

/// A poll (and its definition) lasts as long as votes do.
fn ttl<S>(app: &SharedApp<S>) -> i64 {
    game_polls::ttl_secs(app)
}

fn channel_of(session: &Session) -> Result<&ChannelId, GamelinkError> {
    session
        .login
        .as_ref()
        .map(|l| &l.channel)
        .ok_or_else(|| GamelinkError::unauthorized("authenticate first"))
}

async fn existing<S: GameStore>(
    app: &SharedApp<S>,
    client: &ClientId,
    channel: &ChannelId,
    poll_id: &str,
) -> Result<Poll, GamelinkError> {
    game_polls::load(&app.store, client, channel, poll_id)
        .await?
        .ok_or_else(|| GamelinkError::not_found(format!("no poll {poll_id:?} in this channel")))
}

/// The poll's current figures.
async fn sums<S: GameStore>(
    app: &SharedApp<S>,
    client: &ClientId,
    channel: &ChannelId,
    poll_id: &str,
) -> Result<Sums, GamelinkError> {
    let votes = game_polls::votes(client, channel, poll_id);
    Ok(app.store.vote_totals(&votes, None).await?.0)
}

/// Tells the poll's subscribers, and answers the request, with the same
/// figures (one read of them).
async fn announce_and_answer<S: GameStore>(
    app: &SharedApp<S>,
    client: &ClientId,
    channel: &ChannelId,
    poll: &Poll,
    announce: bool,
) -> Result<Value, GamelinkError> {
    let sums = sums(app, client, channel, &poll.poll_id).await?;
    if announce {
        game_polls::push_update(app, client, channel, poll, &sums).await;
    }
    Ok(poll.body(&sums, now_secs()))
}

pub async fn poll<S: GameStore>(
    app: &SharedApp<S>,
    session: &Session,
    verb: &str,
    data: &Value,
) -> Result<Value, GamelinkError> {
    let client = &session.client_id;
    let channel = channel_of(session)?;
    match verb {
        "create" => create(app, client, channel, data).await,
        "get" => {
            let id = poll::poll_id_of(data, "poll_id")?;
            // The definition and the figures side by side.
            let (p, sums) = tokio::try_join!(
                existing(app, client, channel, id.as_str()),
                sums(app, client, channel, id.as_str())
            )?;
            Ok(p.body(&sums, now_secs()))
        }
        "delete" => {
            let id = poll::poll_id_of(data, "poll_id")?;
            app.store
                .delete_doc(&game_polls::key(client, channel, id.as_str()))
                .await?;
            app.store
                .delete_poll(&game_polls::votes(client, channel, id.as_str()))
                .await?;
            Ok(json!({"ok": true}))
        }
        "reconfigure" => reconfigure(app, client, channel, data).await,
        "subscribe" | "unsubscribe" => {
            let id = poll::poll_id_of(data, "topic_id")?;
            let sub = game_polls::subscription(channel, id.as_str());
            follow(app, session, verb, Some(sub)).await
        }
        other => Err(GamelinkError::bad_request(format!(
            "unknown poll action {other:?}: create, get, delete, reconfigure, subscribe or \
             unsubscribe"
        ))),
    }
}

async fn create<S: GameStore>(
    app: &SharedApp<S>,
    client: &ClientId,
    channel: &ChannelId,
    data: &Value,
) -> Result<Value, GamelinkError> {
    let now = now_secs();
    let poll = poll::parse_create(data, now, medkit::random::token_id(12))?;
    let new = poll.clone();
    // Atomically, so two creates of one id cannot both win.
    app.store
        .update_doc(
            &game_polls::key(client, channel, &poll.poll_id),
            ttl(app),
            move |cur| match cur {
                Some(_) => Err(Refused::Game(GamelinkError::conflict(
                    "a poll with this id exists in this channel: delete it first",
                ))),
                None => stored(&new),
            },
        )
        .await
        .map_err(GamelinkError::from)?;
    timers::poll_times(app, client, channel, &poll).await;
    tracing::info!(%channel, poll = %poll.poll_id, options = poll.options.len(), "GameLink poll created");
    let active = poll.status(now) == Status::Active;
    announce_and_answer(app, client, channel, &poll, active).await
}

async fn reconfigure<S: GameStore>(
    app: &SharedApp<S>,
    client: &ClientId,
    channel: &ChannelId,
    data: &Value,
) -> Result<Value, GamelinkError> {
    let id = poll::poll_id_of(data, "poll_id")?;
    let config = data.get("config").cloned().unwrap_or(Value::Null);
    let now = now_secs();
    let claimed_by_us = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let claimed = claimed_by_us.clone();
    let written = app
        .store
        .update_doc(
            &game_polls::key(client, channel, id.as_str()),
            ttl(app),
            move |cur| {
                let mut poll: Poll = cur
                    .and_then(|v| serde_json::from_value(v).ok())
                    .ok_or_else(|| {
                        Refused::Game(GamelinkError::not_found("no such poll in this channel"))
                    })?;
                poll.reconfigure(&config, now).map_err(Refused::Game)?;
                // Over now and not announced: this write claims the one
                // `expired` update (a timer finds it sent).
                let announce = poll.status(now) == Status::Expired && !poll.expiry_sent;
                poll.expiry_sent |= announce;
                // The last run of this closure is the write that landed.
                claimed.store(announce, std::sync::atomic::Ordering::Relaxed);
                stored(&poll)
            },
        )
        .await
        .map_err(GamelinkError::from)?;
    let announce = claimed_by_us.load(std::sync::atomic::Ordering::Relaxed);
    let poll: Poll = serde_json::from_value(written)
        .map_err(|e| GamelinkError::from(medkit::error::StoreError::Internal(e.to_string())))?;
    if poll.status(now) != Status::Expired {
        // A new end: its timer.
        timers::poll_times(app, client, channel, &poll).await;
    }
    announce_and_answer(app, client, channel, &poll, announce).await
}
