//! `vote` and `vote_logs`: one weighted ballot per viewer; VoteData from the
//! store's running sums; `vote_update:<id>` events, throttled per poll.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Extension;
use axum::extract::State;
use axum::response::Response;
use medkit::aggregate::AggKey;
use medkit::aggregate::vote::{Ballot, Sums, VoteInput};
use medkit::aggregate::window::expiry_bucket;
use medkit::app::SharedApp;
use medkit::auth::Caller;
use medkit::clock::now_secs;
use medkit::error::ApiError;
use medkit::game_polls;
use medkit::gamelink::poll::Poll;
use medkit::http::{JsonBody, QueryMap, ok, ok_text};
use medkit::ids::AggregateId;
use medkit::realtime::event::{Audience, Event};
use medkit::store::{AggregateStore, AuthStore, DocumentStore, LimitStore};
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
/// announced at once; later votes in the window schedule one trailing event
/// at its end, so listeners always end up with the final figures.
pub struct VoteNotices {
    polls: Mutex<HashMap<AggKey, Window>>,
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

struct Window {
    sent_at: Instant,
    trailing: bool,
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

    pub fn decide(&self, poll: &AggKey, now: Instant) -> Notice {
        let mut polls = self.polls.lock().unwrap_or_else(|p| p.into_inner());
        if polls.len() > 10_000 {
            polls.retain(|_, w| now.duration_since(w.sent_at) < self.window || w.trailing);
        }
        match polls.get_mut(poll) {
            Some(w) if now.duration_since(w.sent_at) < self.window => {
                if w.trailing {
                    Notice::Skip
                } else {
                    w.trailing = true;
                    Notice::After(self.window - now.duration_since(w.sent_at))
                }
            }
            _ => {
                polls.insert(
                    poll.clone(),
                    Window {
                        sent_at: now,
                        trailing: false,
                    },
                );
                Notice::Now
            }
        }
    }

    fn sent(&self, poll: &AggKey, at: Instant) {
        let mut polls = self.polls.lock().unwrap_or_else(|p| p.into_inner());
        polls.insert(
            poll.clone(),
            Window {
                sent_at: at,
                trailing: false,
            },
        );
    }
}

fn vote_event(poll: &AggKey, id: &AggregateId, sums: &Sums) -> Event {
    Event {
        client_id: poll.client.clone(),
        audience: match &poll.scope {
            Some(ch) => Audience::Channel(ch.clone()),
            None => Audience::Extension,
        },
        name: format!("vote_update:{id}"),
        data: json!({"id": id.as_str(), "stats": sums.vote_data(None)}),
        games: None,
    }
}

/// Announces the poll's new figures, within the throttle.
async fn announce<S: AggregateStore>(
    app: &SharedApp<S>,
    notices: &Arc<VoteNotices>,
    poll: &AggKey,
    id: &AggregateId,
    sums: &Sums,
) {
    match notices.decide(poll, Instant::now()) {
        Notice::Now => app.notifier.notify(vote_event(poll, id, sums)).await,
        Notice::After(wait) => {
            let (app, notices, poll, id) = (app.clone(), notices.clone(), poll.clone(), id.clone());
            tokio::spawn(async move {
                tokio::time::sleep(wait).await;
                match app.store.vote_totals(&poll, None).await {
                    Ok((sums, _)) => {
                        notices.sent(&poll, Instant::now());
                        app.notifier.notify(vote_event(&poll, &id, &sums)).await;
                    }
                    Err(e) => tracing::warn!(error = %e, "vote_update not sent"),
                }
            });
        }
        Notice::Skip => {}
    }
}

/// Tells a GameLink poll's subscribed games its new figures, at most once
/// per [`GAME_NOTICE_WINDOW`], the last change always within it.
async fn announce_to_games<S: AggregateStore>(
    app: &SharedApp<S>,
    notices: &Arc<GameNotices>,
    poll: &AggKey,
    definition: Poll,
    sums: &Sums,
) {
    let Some(channel) = poll.scope.clone() else {
        return;
    };
    match notices.0.decide(poll, Instant::now()) {
        Notice::Now => {
            game_polls::push_update(app, &poll.client, &channel, &definition, sums).await;
        }
        Notice::After(wait) => {
            let (app, notices, poll) = (app.clone(), notices.clone(), poll.clone());
            tokio::spawn(async move {
                tokio::time::sleep(wait).await;
                notices.0.sent(&poll, Instant::now());
                game_polls::announce(&app, &poll.client, &channel, &definition).await;
            });
        }
        Notice::Skip => {}
    }
}

pub async fn cast<S: DocumentStore + AggregateStore + AuthStore + LimitStore>(
    State(app): State<SharedApp<S>>,
    Extension(notices): Extension<Arc<VoteNotices>>,
    Extension(game_notices): Extension<Arc<GameNotices>>,
    caller: Caller,
    query: QueryMap,
    JsonBody(body): JsonBody,
) -> Result<Response, ApiError> {
    let (id, poll) = agg_key(&caller, &query)?;
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
    announce(&app, &notices, &poll, &id, &sums).await;
    if let Some(d) = definition {
        announce_to_games(&app, &game_notices, &poll, d, &sums).await;
    }
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
    use medkit::ids::{ChannelId, ClientId};

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
        n.sent(&poll, t0 + Duration::from_secs(5));
        assert_eq!(
            n.decide(&poll, t0 + Duration::from_secs(6)),
            Notice::After(Duration::from_secs(4))
        );
        assert_eq!(n.decide(&poll, t0 + Duration::from_secs(11)), Notice::Now);
    }
}
