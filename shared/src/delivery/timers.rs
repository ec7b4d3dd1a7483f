//! Timers: what must happen later, and the port that keeps it.
//!
//! A Lambda's execution environment freezes after its response, so a
//! `tokio::spawn`ed sleep there runs at the next invocation, or never. A
//! moment that matters (a poll's start and end, the trailing update of a
//! throttled poll) is therefore a [`Due`] handed to a [`TimerQueue`]: on AWS
//! an SQS queue whose delayed messages a timers function receives
//! (`delivery::sqs`); without one (`medkit serve`, tests) the `timers`
//! service sleeps in process, where the process stays up.
//!
//! A timer only announces: a poll's status is derived from its times on
//! every read, so a late or lost timer can never leave it active.

use std::future::Future;
use std::pin::Pin;

use serde::{Deserialize, Serialize};

use crate::aggregate::AggKey;
use crate::error::StoreError;
use crate::ids::{ChannelId, ClientId};

/// What happens when a timer fires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Timer {
    /// A GameLink poll's start: its `active` update, if that run still exists.
    PollStarts(PollRun),
    /// Its end: the one `expired` update.
    PollEnds(PollRun),
    /// The trailing update of a throttled GameLink poll (its latest figures).
    PollFigures {
        client: ClientId,
        channel: ChannelId,
        poll_id: String,
    },
    /// The trailing `vote_update:<id>` of a throttled REST poll.
    VoteFigures(AggKey),
    /// A match poll's start (`active` to the match's subscribers).
    MatchPollStarts(MatchPollRun),
    /// Its end: the one `expired` update.
    MatchPollEnds(MatchPollRun),
    /// A match poll's latest figures (every channel's, read off the vote path).
    MatchPollFigures {
        client: ClientId,
        match_id: String,
        poll_id: String,
    },
}

/// One run of a match poll (see [`PollRun`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchPollRun {
    pub client: ClientId,
    pub match_id: String,
    pub poll_id: String,
    pub run: String,
}

/// One run of a GameLink poll: a poll deleted and created again is a new
/// run, which the old run's timers never touch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollRun {
    pub client: ClientId,
    pub channel: ChannelId,
    pub poll_id: String,
    pub run: String,
}

/// A timer and when it fires (milliseconds since the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due {
    pub at_ms: i64,
    pub timer: Timer,
}

/// The wire form of a [`Due`] (an SQS message body): short field names, ids
/// as strings, checked again when read.
#[derive(Serialize, Deserialize)]
struct Wire {
    /// `poll_starts` | `poll_ends` | `poll_figures` | `vote_figures`.
    k: String,
    at: i64,
    c: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ch: Option<String>,
    /// A match's id (the match timers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    m: Option<String>,
    p: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    r: Option<String>,
}

impl Due {
    /// `timer`, `after_ms` from `now_ms`.
    pub fn after(now_ms: i64, after_ms: i64, timer: Timer) -> Self {
        Due {
            at_ms: now_ms + after_ms.max(0),
            timer,
        }
    }

    pub fn encode(&self) -> String {
        let mut wire = Wire {
            k: String::new(),
            at: self.at_ms,
            c: String::new(),
            ch: None,
            m: None,
            p: String::new(),
            r: None,
        };
        let (k, client) = match &self.timer {
            Timer::PollStarts(run) | Timer::PollEnds(run) => {
                wire.ch = Some(run.channel.to_string());
                wire.p = run.poll_id.clone();
                wire.r = Some(run.run.clone());
                let k = match self.timer {
                    Timer::PollStarts(_) => "poll_starts",
                    _ => "poll_ends",
                };
                (k, &run.client)
            }
            Timer::PollFigures {
                client,
                channel,
                poll_id,
            } => {
                wire.ch = Some(channel.to_string());
                wire.p = poll_id.clone();
                ("poll_figures", client)
            }
            Timer::VoteFigures(key) => {
                wire.ch = key.scope.as_ref().map(ToString::to_string);
                wire.p = key.id.clone();
                ("vote_figures", &key.client)
            }
            Timer::MatchPollStarts(run) | Timer::MatchPollEnds(run) => {
                wire.m = Some(run.match_id.clone());
                wire.p = run.poll_id.clone();
                wire.r = Some(run.run.clone());
                let k = match self.timer {
                    Timer::MatchPollStarts(_) => "match_poll_starts",
                    _ => "match_poll_ends",
                };
                (k, &run.client)
            }
            Timer::MatchPollFigures {
                client,
                match_id,
                poll_id,
            } => {
                wire.m = Some(match_id.clone());
                wire.p = poll_id.clone();
                ("match_poll_figures", client)
            }
        };
        wire.k = k.into();
        wire.c = client.to_string();
        serde_json::to_string(&wire).unwrap_or_default()
    }

    /// A message body back into its timer; a body this version cannot read
    /// says why (it is logged and dropped, never retried forever).
    pub fn decode(body: &str) -> Result<Due, String> {
        let w: Wire = serde_json::from_str(body).map_err(|e| format!("not a timer: {e}"))?;
        let bad = |e: crate::error::ApiError| e.to_string();
        let client = ClientId::parse(w.c).map_err(bad)?;
        let channel = w.ch.map(ChannelId::parse).transpose().map_err(bad)?;
        let need_channel = || channel.clone().ok_or("this timer names no channel");
        let run = |run: Option<String>| -> Result<PollRun, String> {
            Ok(PollRun {
                client: client.clone(),
                channel: need_channel()?,
                poll_id: w.p.clone(),
                run: run.ok_or("this timer names no run")?,
            })
        };
        let timer = match w.k.as_str() {
            "poll_starts" => Timer::PollStarts(run(w.r)?),
            "poll_ends" => Timer::PollEnds(run(w.r)?),
            "poll_figures" => Timer::PollFigures {
                client: client.clone(),
                channel: need_channel()?,
                poll_id: w.p.clone(),
            },
            "vote_figures" => Timer::VoteFigures(AggKey {
                client: client.clone(),
                scope: channel.clone(),
                id: w.p.clone(),
            }),
            "match_poll_starts" | "match_poll_ends" => {
                let run = MatchPollRun {
                    client: client.clone(),
                    match_id: w.m.clone().ok_or("this timer names no match")?,
                    poll_id: w.p.clone(),
                    run: w.r.clone().ok_or("this timer names no run")?,
                };
                if w.k == "match_poll_starts" {
                    Timer::MatchPollStarts(run)
                } else {
                    Timer::MatchPollEnds(run)
                }
            }
            "match_poll_figures" => Timer::MatchPollFigures {
                client: client.clone(),
                match_id: w.m.clone().ok_or("this timer names no match")?,
                poll_id: w.p.clone(),
            },
            other => return Err(format!("unknown timer kind {other:?}")),
        };
        Ok(Due { at_ms: w.at, timer })
    }
}

pub type TimerFuture<'a> = Pin<Box<dyn Future<Output = Result<(), StoreError>> + Send + 'a>>;

/// Keeps timers durably until they are due and hands each to whatever
/// fires them (the timers function). Object-safe: a process picks its
/// adapter at start-up.
pub trait TimerQueue: Send + Sync {
    fn enqueue<'a>(&'a self, due: &'a Due) -> TimerFuture<'a>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> (ClientId, ChannelId) {
        (
            ClientId::parse("client").unwrap(),
            ChannelId::parse("1234").unwrap(),
        )
    }

    #[test]
    fn every_timer_survives_its_wire_form() {
        let (client, channel) = ids();
        let run = PollRun {
            client: client.clone(),
            channel: channel.clone(),
            poll_id: "p-1".into(),
            run: "r1".into(),
        };
        let timers = [
            Timer::PollStarts(run.clone()),
            Timer::PollEnds(run),
            Timer::PollFigures {
                client: client.clone(),
                channel: channel.clone(),
                poll_id: "p-1".into(),
            },
            Timer::VoteFigures(AggKey {
                client: client.clone(),
                scope: Some(channel),
                id: "poll".into(),
            }),
            Timer::VoteFigures(AggKey {
                client: client.clone(),
                scope: None,
                id: "global-poll".into(),
            }),
            Timer::MatchPollStarts(MatchPollRun {
                client: client.clone(),
                match_id: "m1".into(),
                poll_id: "p".into(),
                run: "r2".into(),
            }),
            Timer::MatchPollEnds(MatchPollRun {
                client: client.clone(),
                match_id: "m1".into(),
                poll_id: "p".into(),
                run: "r2".into(),
            }),
            Timer::MatchPollFigures {
                client,
                match_id: "m1".into(),
                poll_id: "p".into(),
            },
        ];
        for timer in timers {
            let due = Due::after(1_000, 250, timer);
            assert_eq!(due.at_ms, 1_250);
            assert_eq!(Due::decode(&due.encode()).unwrap(), due);
        }
    }

    #[test]
    fn bodies_that_are_no_timer_say_why() {
        for (body, why) in [
            ("{}", "not a timer"),
            (
                r#"{"k":"later","at":1,"c":"client","p":"x"}"#,
                "unknown timer",
            ),
            (
                r#"{"k":"poll_ends","at":1,"c":"client","p":"x"}"#,
                "no channel",
            ),
            (
                r#"{"k":"poll_ends","at":1,"c":"client","ch":"1","p":"x"}"#,
                "no run",
            ),
            (
                r#"{"k":"poll_ends","at":1,"c":"","ch":"1","p":"x","r":"a"}"#,
                "",
            ),
        ] {
            let e = Due::decode(body).unwrap_err();
            assert!(e.contains(why), "{body}: {e}");
        }
    }
}
