//! The timers service: setting a timer and firing it.
//!
//! With a [`TimerQueue`] configured (a Lambda with `MEDKIT_TIMERS_QUEUE_URL`)
//! a timer is a delayed SQS message that the timers function receives
//! ([`receive`]); without one (`medkit serve`, tests) it is a sleep in this
//! process, which stays up. Either way [`fire`] does the work, and a timer
//! only announces: a poll's status is derived from its times on every read.

use std::time::Duration;

use crate::aggregate::vote::update_event;
use crate::app::{App, SharedApp};
use crate::clock::{now_ms, now_secs};
use crate::delivery::timers::{Due, MatchPollRun, PollRun, Timer};
use crate::error::StoreError;
use crate::game_matches;
use crate::game_polls;
use crate::gamelink::matches::MatchPoll;
use crate::gamelink::poll::{Poll, Status};
use crate::ids::{ChannelId, ClientId};
use crate::store::{AggregateStore, DocumentStore};

/// A message that arrives this early is held until it is due rather than
/// sent round again (SQS rounds delays up to whole seconds, so this only
/// absorbs clock differences between machines).
const HOLD_EARLY_MS: i64 = 2_000;

/// Sets `due`: durably when the app has a timer queue, else in process. A
/// queue that refuses it is logged (what the timer would announce can still
/// be read: the state it announces is derived on every read).
pub async fn set<S: DocumentStore + AggregateStore>(app: &SharedApp<S>, due: Due) {
    match &app.timers {
        Some(queue) => {
            if let Err(e) = queue.enqueue(&due).await {
                tracing::warn!(error = %e, timer = %due.encode(), "timer not set");
            }
        }
        None => {
            let app = app.clone();
            tokio::spawn(async move {
                tokio::time::sleep(wait(&due)).await;
                if let Err(e) = fire(&app, &due.timer).await {
                    tracing::warn!(error = %e, "timer failed");
                }
            });
        }
    }
}

fn wait(due: &Due) -> Duration {
    Duration::from_millis((due.at_ms - now_ms()).max(0) as u64)
}

/// The timers of a GameLink poll's run: its start, if it is still to come,
/// and its end, if it has one.
pub async fn poll_times<S: DocumentStore + AggregateStore>(
    app: &SharedApp<S>,
    client: &ClientId,
    channel: &ChannelId,
    poll: &Poll,
) {
    let run = PollRun {
        client: client.clone(),
        channel: channel.clone(),
        poll_id: poll.poll_id.clone(),
        run: poll.run.clone(),
    };
    if poll.config.starts_at > now_secs() {
        let at_ms = poll.config.starts_at * 1000;
        set(
            app,
            Due {
                at_ms,
                timer: Timer::PollStarts(run.clone()),
            },
        )
        .await;
    }
    if poll.config.ends_at > 0 {
        let at_ms = poll.config.ends_at * 1000;
        set(
            app,
            Due {
                at_ms,
                timer: Timer::PollEnds(run),
            },
        )
        .await;
    }
}

/// The timers of a match poll's run: its start, if still to come, and its
/// end, if it has one.
pub async fn match_poll_times<S: DocumentStore + AggregateStore>(
    app: &SharedApp<S>,
    client: &ClientId,
    mp: &MatchPoll,
) {
    let run = MatchPollRun {
        client: client.clone(),
        match_id: mp.match_id.clone(),
        poll_id: mp.poll.poll_id.clone(),
        run: mp.poll.run.clone(),
    };
    let config = &mp.poll.config;
    if config.starts_at > now_secs() {
        let timer = Timer::MatchPollStarts(run.clone());
        set(
            app,
            Due {
                at_ms: config.starts_at * 1000,
                timer,
            },
        )
        .await;
    }
    if config.ends_at > 0 {
        let timer = Timer::MatchPollEnds(run);
        set(
            app,
            Due {
                at_ms: config.ends_at * 1000,
                timer,
            },
        )
        .await;
    }
}

/// Does what a timer says. A store failure is returned so a queued timer is
/// tried again; firing twice is harmless (an update repeated, an expiry
/// already claimed).
pub async fn fire<S: DocumentStore + AggregateStore>(
    app: &App<S>,
    timer: &Timer,
) -> Result<(), StoreError> {
    match timer {
        Timer::PollStarts(run) => {
            let poll =
                game_polls::load(&app.store, &run.client, &run.channel, &run.poll_id).await?;
            match poll {
                Some(p) if p.run == run.run && p.status(now_secs()) == Status::Active => {
                    game_polls::announce(app, &run.client, &run.channel, &p).await
                }
                _ => Ok(()),
            }
        }
        Timer::PollEnds(run) => {
            game_polls::expire(app, &run.client, &run.channel, &run.poll_id, &run.run).await
        }
        Timer::PollFigures {
            client,
            channel,
            poll_id,
        } => match game_polls::load(&app.store, client, channel, poll_id).await? {
            Some(p) => game_polls::announce(app, client, channel, &p).await,
            None => Ok(()),
        },
        Timer::VoteFigures(poll) => {
            let (sums, _) = app.store.vote_totals(poll, None).await?;
            app.notifier.notify(update_event(poll, &sums)).await;
            Ok(())
        }
        Timer::MatchPollStarts(run) => {
            let mp = game_matches::load_poll(&app.store, &run.client, &run.match_id, &run.poll_id)
                .await?;
            match mp {
                Some(mp)
                    if mp.poll.run == run.run && mp.poll.status(now_secs()) == Status::Active =>
                {
                    game_matches::announce(app, &run.client, &mp).await
                }
                _ => Ok(()),
            }
        }
        Timer::MatchPollEnds(run) => {
            game_matches::expire(app, &run.client, &run.match_id, &run.poll_id, &run.run).await
        }
        Timer::MatchPollFigures {
            client,
            match_id,
            poll_id,
        } => match game_matches::load_poll(&app.store, client, match_id, poll_id).await? {
            Some(mp) => game_matches::announce(app, client, &mp).await,
            None => Ok(()),
        },
    }
}

/// What became of one queued timer message.
#[derive(Debug, PartialEq, Eq)]
pub enum Received {
    Fired,
    /// Not due yet (due beyond SQS's longest delay): queued again.
    Requeued,
    /// A body this version cannot read: logged and dropped, since trying
    /// again would never succeed.
    Dropped,
}

/// The timers function's work for one message body: fire it when due,
/// queue it again when it came early. An error means "deliver it again".
pub async fn receive<S: DocumentStore + AggregateStore>(
    app: &App<S>,
    body: &str,
) -> Result<Received, StoreError> {
    let due = match Due::decode(body) {
        Ok(d) => d,
        Err(why) => {
            tracing::error!(%why, "timer message dropped");
            return Ok(Received::Dropped);
        }
    };
    let early_ms = due.at_ms - now_ms();
    if early_ms > HOLD_EARLY_MS
        && let Some(queue) = &app.timers
    {
        queue.enqueue(&due).await?;
        return Ok(Received::Requeued);
    }
    tokio::time::sleep(wait(&due)).await;
    fire(app, &due.timer).await?;
    Ok(Received::Fired)
}
