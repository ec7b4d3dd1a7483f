//! `vote` and `vote_logs`: one weighted ballot per viewer; VoteData from the
//! store's running sums; `vote_update:<id>` events, throttled per poll.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Extension;
use axum::extract::State;
use axum::response::Response;
use medkit::aggregate::AggKey;
use medkit::aggregate::vote::{Ballot, Sums, VoteInput, update_event};
use medkit::aggregate::window::expiry_bucket;
use medkit::app::SharedApp;
use medkit::auth::Caller;
use medkit::clock::{now_ms, now_secs};
use medkit::delivery::timers::{Due, Timer};
use medkit::error::ApiError;
use medkit::game_polls;
use medkit::gamelink::poll::Poll;
use medkit::http::{JsonBody, QueryMap, ok, ok_text};
use medkit::store::{AggregateStore, AuthStore, DocumentStore, LimitStore};
use medkit::timers;
use serde_json::json;

use crate::{CHANNEL_OWNERS, PRIVILEGED, agg_key, spend_new_aggregate};

/// Most ballots one `vote_logs` answer lists (the earliest cast), keeping the
/// response well under API Gateway/Lambda's 6 MB payload limit.
pub const MAX_LOG_ENTRIES: usize = 25_000;

/// At most one `vote_update` per poll in this window (CONTRACT §4).
pub const NOTICE_WINDOW: Duration = Duration::from_secs(5);
/// At most one update of a GameLink poll to its games in this window: the
/// last change always reaches them within it.
pub const GAME_NOTICE_WINDOW: Duration = Duration::from_secs(1);

/// Throttles `vote_update` events per poll: the first vote of a window is
/// announced at once; later votes in the window set one trailing timer at
/// its end, so listeners always end up with the final figures. In memory,
/// so per Lambda instance: with n instances a poll may send up to n events
/// (and n trailing ones) per window, never fewer than the final figures.
pub struct VoteNotices {
    polls: Mutex<HashMap<AggKey, Instant>>,
    window: Duration,
}

impl Default for VoteNotices {
    fn default() -> Self {
        Self::every(NOTICE_WINDOW)
    }
}

/// The throttle of GameLink poll updates ([`GAME_NOTICE_WINDOW`]).
pub struct GameNotices(pub VoteNotices);

impl Default for GameNotices {
    fn default() -> Self {
        GameNotices(VoteNotices::every(GAME_NOTICE_WINDOW))
    }
}

#[derive(Debug, PartialEq, Eq)]
pub enum Notice {
    Now,
    After(Duration),
    Skip,
}

impl VoteNotices {
    /// At most one notice per poll per `window`.
    pub fn every(window: Duration) -> Self {
        VoteNotices {
            polls: Mutex::default(),
            window,
        }
    }

    /// What a change at `now` sends. The map holds, per poll, the moment of
    /// its last notice, sent or set for later: a change before that moment
    /// is covered by the trailing notice already set; one within a window
    /// after it sets the next trailing notice; later ones are sent now.
    pub fn decide(&self, poll: &AggKey, now: Instant) -> Notice {
        let mut polls = self.polls.lock().unwrap_or_else(|p| p.into_inner());
        if polls.len() > 10_000 {
            let window = self.window;
            polls.retain(|_, last| *last > now || now.duration_since(*last) < window);
        }
        match polls.get_mut(poll) {
            Some(last) if *last > now => Notice::Skip,
            Some(last) if now.duration_since(*last) < self.window => {
                *last += self.window;
                Notice::After(*last - now)
            }
            _ => {
                polls.insert(poll.clone(), now);
                Notice::Now
            }
        }
    }
}

/// Announces the poll's new figures, within the throttle.
async fn announce<S: AggregateStore + DocumentStore>(
    app: &SharedApp<S>,
    notices: &VoteNotices,
    poll: &AggKey,
    sums: &Sums,
) {
    match notices.decide(poll, Instant::now()) {
        Notice::Now => app.notifier.notify(update_event(poll, sums)).await,
        Notice::After(wait) => {
            let timer = Timer::VoteFigures(poll.clone());
            timers::set(app, Due::after(now_ms(), wait.as_millis() as i64, timer)).await;
        }
        Notice::Skip => {}
    }
}

/// Tells a GameLink poll's subscribed games its new figures, at most once
/// per [`GAME_NOTICE_WINDOW`], the last change always within it.
async fn announce_to_games<S: AggregateStore + DocumentStore>(
    app: &SharedApp<S>,
    notices: &GameNotices,
    poll: &AggKey,
    definition: &Poll,
    sums: &Sums,
) {
    let Some(channel) = &poll.scope else {
        return;
    };
    if let Some(match_id) = &definition.match_id {
        announce_to_match(app, notices, &poll.client, match_id, &poll.id).await;
    }
    match notices.0.decide(poll, Instant::now()) {
        Notice::Now => {
            game_polls::push_update(app, &poll.client, channel, definition, sums).await;
        }
        Notice::After(wait) => {
            let timer = Timer::PollFigures {
                client: poll.client.clone(),
                channel: channel.clone(),
                poll_id: poll.id.clone(),
            };
            timers::set(app, Due::after(now_ms(), wait.as_millis() as i64, timer)).await;
        }
        Notice::Skip => {}
    }
}

/// A vote on a channel's part of a match poll: the match's subscribers get
/// every channel's figures, at most once per [`GAME_NOTICE_WINDOW`], always
/// through a timer (due now or at the window's end), since reading every
/// channel's figures does not belong on a vote's path.
async fn announce_to_match<S: AggregateStore + DocumentStore>(
    app: &SharedApp<S>,
    notices: &GameNotices,
    client: &medkit::ids::ClientId,
    match_id: &str,
    poll_id: &str,
) {
    let throttle = AggKey {
        client: client.clone(),
        scope: None,
        id: format!("match|{match_id}|{poll_id}"),
    };
    let wait = match notices.0.decide(&throttle, Instant::now()) {
        Notice::Now => Duration::ZERO,
        Notice::After(wait) => wait,
        Notice::Skip => return,
    };
    let timer = Timer::MatchPollFigures {
        client: client.clone(),
        match_id: match_id.to_string(),
        poll_id: poll_id.to_string(),
    };
    timers::set(app, Due::after(now_ms(), wait.as_millis() as i64, timer)).await;
}

pub async fn cast<S: DocumentStore + AggregateStore + AuthStore + LimitStore>(
    State(app): State<SharedApp<S>>,
    Extension(notices): Extension<Arc<VoteNotices>>,
    Extension(game_notices): Extension<Arc<GameNotices>>,
    caller: Caller,
    query: QueryMap,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let (_, poll) = agg_key(&caller, &query)?;
    let input = VoteInput::parse(&body)?;
    let voter = caller.voter_id()?;
    // A poll a game created has rules of its own: read them beside the budget.
    let definition = async {
        match &poll.scope {
            Some(ch) => Ok(game_polls::load(&app.store, &caller.client_id, ch, &poll.id).await?),
            None => Ok::<_, ApiError>(None),
        }
    };
    let ((), definition) = tokio::try_join!(
        spend_new_aggregate(&app, &caller, &voter, &poll, "v"),
        definition
    )?;
    let now = now_secs();
    if let Some(d) = &definition {
        d.admits(input.value, input.weight, caller.user_id.is_some(), now)?;
    }
    let ballot = Ballot {
        voter: voter.to_string(),
        user_id: caller
            .user_id
            .as_ref()
            .map(|u| u.to_string())
            .unwrap_or_default(),
        value: input.value,
        weight: input.weight,
        cast_at: now,
        bucket: expiry_bucket(now, app.expiry.votes_secs),
    };
    let sums = app.store.cast_vote(&poll, ballot).await?;
    // Both at once: each may set a timer (one SQS message on AWS).
    let games = async {
        if let Some(d) = &definition {
            announce_to_games(&app, &game_notices, &poll, d, &sums).await;
        }
    };
    tokio::join!(announce(&app, &notices, &poll, &sums), games);
    Ok(ok_text(sums.vote_data_text(Some(input.value))))
}

pub async fn read<S: AggregateStore + AuthStore>(
    State(app): State<SharedApp<S>>,
    caller: Caller,
    query: QueryMap,
) -> Result<Response, ApiError> {
    let (_, poll) = agg_key(&caller, &query)?;
    let voter = caller.voter_id().ok();
    let (sums, mine) = app.store.vote_totals(&poll, voter.as_ref()).await?;
    Ok(ok_text(sums.vote_data_text(mine.map(|b| b.value))))
}

pub async fn clear<S: AggregateStore + AuthStore>(
    State(app): State<SharedApp<S>>,
    caller: Caller,
    query: QueryMap,
) -> Result<Response, ApiError> {
    let (id, poll) = agg_key(&caller, &query)?;
    // An extension-wide poll belongs to every channel: only the extension clears it.
    caller.require(if id.is_global() {
        PRIVILEGED
    } else {
        CHANNEL_OWNERS
    })?;
    app.store.delete_poll(&poll).await?;
    Ok(ok(json!({})))
}

pub async fn logs<S: AggregateStore + AuthStore>(
    State(app): State<SharedApp<S>>,
    caller: Caller,
    query: QueryMap,
) -> Result<Response, ApiError> {
    caller.require(PRIVILEGED)?;
    let (_, poll) = agg_key(&caller, &query)?;
    let mut ballots = app.store.ballots(&poll).await?;
    ballots.sort_by(|a, b| {
        a.cast_at
            .cmp(&b.cast_at)
            .then_with(|| a.voter.cmp(&b.voter))
    });
    let total = ballots.len();
    let result: Vec<_> = ballots
        .iter()
        .take(MAX_LOG_ENTRIES)
        .map(Ballot::log_entry)
        .collect();
    let mut out = json!({ "result": result });
    if total > MAX_LOG_ENTRIES {
        tracing::warn!(total, "vote_logs truncated");
        out["truncated"] = json!(true);
        out["total"] = json!(total);
    }
    Ok(ok(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use medkit::ids::{AggregateId, ChannelId, ClientId};

    #[test]
    fn notices_lead_then_trail_once_per_window() {
        let n = VoteNotices::default();
        let poll = AggKey::for_caller(
            &ClientId::parse("c").unwrap(),
            Some(&ChannelId::parse("1").unwrap()),
            &AggregateId::parse("p").unwrap(),
        )
        .unwrap();
        let t0 = Instant::now();
        assert_eq!(n.decide(&poll, t0), Notice::Now);
        assert_eq!(
            n.decide(&poll, t0 + Duration::from_secs(1)),
            Notice::After(Duration::from_secs(4))
        );
        assert_eq!(n.decide(&poll, t0 + Duration::from_secs(2)), Notice::Skip);
        // After the trailing notice (t0 + 5 s), within its window: the next.
        assert_eq!(
            n.decide(&poll, t0 + Duration::from_secs(6)),
            Notice::After(Duration::from_secs(4))
        );
        assert_eq!(n.decide(&poll, t0 + Duration::from_secs(9)), Notice::Skip);
        // A window after the last notice (t0 + 10 s): at once.
        assert_eq!(n.decide(&poll, t0 + Duration::from_secs(15)), Notice::Now);
        assert_eq!(
            n.decide(&poll, t0 + Duration::from_secs(16)),
            Notice::After(Duration::from_secs(4))
        );
    }
}
