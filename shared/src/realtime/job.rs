//! Who receives a send, and the parts a big fan-out is cut into.

use crate::ids::{ChannelId, ClientId, ConnectionId, ViewerId};
use crate::realtime::envelope::Topic;
use crate::realtime::subscription::Subscription;

/// A real-time event older than this (seconds since its send) is dropped
/// rather than delivered late: after a backlog, a viewer is better served by
/// the next update than by a minute-old one. The event source mapping's
/// `MaximumRecordAgeInSeconds` (template.yaml) is the same.
pub const MAX_EVENT_AGE_SECS: i64 = 60;
/// Follow-up jobs for recipients whose posts failed, at most; then the job
/// is reported failed and goes, after the mapping's retries, to the
/// on-failure destination.
pub const MAX_RETRY_JOBS: u32 = 3;
/// Recipients of one follow-up job, at most (its item stays far below
/// DynamoDB's 400 KB).
pub const RETRY_JOB_RECIPIENTS: usize = 1000;

/// Who receives a send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipients {
    /// Every connection on a channel.
    Channel(ChannelId),
    /// One viewer's connections on a channel.
    ChannelViewer(ChannelId, ViewerId),
    /// One viewer's connections on every channel.
    Viewer(ViewerId),
    /// Every connection of the extension.
    Extension,
}

/// One part of a fan-out that a worker delivers on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub client_id: ClientId,
    pub part: JobPart,
    /// The frame, stamped (`envelope::Stamp`): every copy and retry of it is
    /// recognisably the same send.
    pub frame: String,
    /// When the send was made (seconds since the epoch); None for a job
    /// that does not say (one queued by an older version, a hand-written
    /// sample event), which is never dropped as stale.
    pub sent_at: Option<i64>,
    /// 0 for a send's own job; n for the n-th follow-up of failed recipients.
    pub attempt: u32,
    /// A GameLink update that rides along: the games subscribed to its
    /// topic receive its frame in this same job (one stream record and one
    /// invocation for a channel's viewers and games alike).
    pub games: Option<GameUpdate>,
}

/// The games' half of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GameUpdate {
    pub to: Subscription,
    pub frame: String,
}

impl Job {
    /// A send's own job, made now.
    pub fn new(client_id: ClientId, part: JobPart, frame: String) -> Self {
        Job {
            client_id,
            part,
            frame,
            sent_at: Some(crate::clock::now_secs()),
            attempt: 0,
            games: None,
        }
    }

    /// Whether it is too old to deliver at `now` (see [`MAX_EVENT_AGE_SECS`]).
    pub fn is_stale(&self, now: i64) -> bool {
        self.sent_at
            .is_some_and(|sent| now - sent > MAX_EVENT_AGE_SECS)
    }

    /// The follow-up jobs for recipients whose posts failed (`failed` got
    /// the job's frame, `failed_games` its games' frame), or None when this
    /// job was the last follow-up allowed.
    pub fn follow_ups(
        &self,
        failed: Vec<ConnectionId>,
        failed_games: Vec<ConnectionId>,
    ) -> Option<Vec<Job>> {
        if self.attempt >= MAX_RETRY_JOBS {
            return None;
        }
        let retries = |ids: Vec<ConnectionId>, frame: &str| -> Vec<Job> {
            ids.chunks(RETRY_JOB_RECIPIENTS)
                .map(|ids| Job {
                    client_id: self.client_id.clone(),
                    part: JobPart::Retry(ids.to_vec()),
                    frame: frame.to_string(),
                    sent_at: self.sent_at,
                    attempt: self.attempt + 1,
                    games: None,
                })
                .collect()
        };
        let mut jobs = retries(failed, &self.frame);
        if let Some(g) = &self.games {
            jobs.extend(retries(failed_games, &g.frame));
        }
        Some(jobs)
    }

    /// How long a follow-up waits before it posts: 250 ms, 500 ms, 1 s (a
    /// failed post is most often a passing 500; real-time frames are worth
    /// little late).
    pub fn backoff(&self) -> std::time::Duration {
        match self.attempt {
            0 => std::time::Duration::ZERO,
            n => std::time::Duration::from_millis(250 << (n - 1).min(4)),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobPart {
    Channel(ChannelId),
    Shard(u32),
    /// Named connections whose posts failed (a follow-up job).
    Retry(Vec<ConnectionId>),
    /// The GameLink sessions subscribed to a topic.
    Subscribers(Subscription),
    /// Twitch's Extension PubSub (the relay, issue #18): the job's frame is
    /// the envelope's message string, not a WebSocket frame.
    Twitch(RelayTarget),
}

/// Where a relayed send goes on Twitch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RelayTarget {
    /// One channel's `broadcast` or `whisper-<id>`.
    Channel(ChannelId, Topic),
    /// Every channel of the extension (`global`).
    Global,
}

impl RelayTarget {
    /// Where a send to `topic` goes, `channel` being its channel (None: an
    /// extension-wide send). None for an extension-wide whisper: Twitch
    /// needs the channel a whisper is on.
    pub fn of(channel: Option<&ChannelId>, topic: &Topic) -> Option<Self> {
        match (channel, topic) {
            (_, Topic::Global) | (None, Topic::Broadcast) => Some(RelayTarget::Global),
            (Some(ch), t) => Some(RelayTarget::Channel(ch.clone(), t.clone())),
            (None, Topic::Whisper(_)) => None,
        }
    }

    pub fn channel(&self) -> Option<&ChannelId> {
        match self {
            RelayTarget::Channel(ch, _) => Some(ch),
            RelayTarget::Global => None,
        }
    }

    pub fn topic(&self) -> Topic {
        match self {
            RelayTarget::Channel(_, t) => t.clone(),
            RelayTarget::Global => Topic::Global,
        }
    }

    /// `<channel>:<topic>`, or `*:global`; ids never contain `:`.
    pub fn encode(&self) -> String {
        match self {
            RelayTarget::Channel(ch, t) => format!("{ch}:{}", t.as_string()),
            RelayTarget::Global => "*:global".into(),
        }
    }

    pub fn decode(s: &str) -> Option<Self> {
        let (ch, topic) = s.split_once(':')?;
        if ch == "*" {
            return (topic == "global").then_some(RelayTarget::Global);
        }
        let ch = ChannelId::parse(ch).ok()?;
        let topic = match topic {
            "broadcast" => Topic::Broadcast,
            t => Topic::Whisper(ViewerId::parse(t.strip_prefix("whisper-")?).ok()?),
        };
        Some(RelayTarget::Channel(ch, topic))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> Job {
        Job::new(
            ClientId::parse("c").unwrap(),
            JobPart::Shard(1),
            "{}".into(),
        )
    }

    #[test]
    fn follow_ups_are_chunked_counted_and_bounded() {
        let ids: Vec<ConnectionId> = (0..2500)
            .map(|i| ConnectionId::parse(format!("c{i}")).unwrap())
            .collect();
        let mut j = job();
        for attempt in 1..=MAX_RETRY_JOBS {
            let next = j.follow_ups(ids.clone(), vec![]).expect("a follow-up");
            assert_eq!(next.len(), 3);
            assert!(
                next.iter()
                    .all(|n| n.attempt == attempt && n.sent_at == j.sent_at)
            );
            let JobPart::Retry(first) = &next[0].part else {
                panic!("a retry part")
            };
            assert_eq!(first.len(), RETRY_JOB_RECIPIENTS);
            j = next.into_iter().next().unwrap();
            assert_eq!(j.backoff().as_millis(), 250 << (attempt - 1));
        }
        assert!(
            j.follow_ups(ids, vec![]).is_none(),
            "the last follow-up has none"
        );
    }

    #[test]
    fn a_games_follow_up_carries_the_games_frame() {
        let ch = ChannelId::parse("1").unwrap();
        let mut j = job();
        j.games = Some(GameUpdate {
            to: Subscription::channel(&ch, "state:channel"),
            frame: "game".into(),
        });
        let (v, g) = (
            ConnectionId::parse("v").unwrap(),
            ConnectionId::parse("g").unwrap(),
        );
        let next = j.follow_ups(vec![v.clone()], vec![g.clone()]).unwrap();
        let parts: Vec<(JobPart, &str)> = next
            .iter()
            .map(|n| (n.part.clone(), n.frame.as_str()))
            .collect();
        assert_eq!(
            parts,
            vec![
                (JobPart::Retry(vec![v]), "{}"),
                (JobPart::Retry(vec![g]), "game")
            ]
        );
        assert!(next.iter().all(|n| n.games.is_none()));
    }

    #[test]
    fn relay_targets_round_trip_and_whispers_need_a_channel() {
        let ch = ChannelId::parse("42").unwrap();
        let v = ViewerId::parse("U7").unwrap();
        let targets = [
            RelayTarget::of(Some(&ch), &Topic::Broadcast).unwrap(),
            RelayTarget::of(Some(&ch), &Topic::Whisper(v.clone())).unwrap(),
            RelayTarget::of(None, &Topic::Global).unwrap(),
        ];
        for t in &targets {
            assert_eq!(RelayTarget::decode(&t.encode()).as_ref(), Some(t));
        }
        assert_eq!(targets[1].encode(), "42:whisper-U7");
        assert_eq!(targets[2], RelayTarget::Global);
        assert_eq!(RelayTarget::of(None, &Topic::Whisper(v)), None);
        for bad in [
            "",
            "42",
            "42:whisper-",
            "*:broadcast",
            ":broadcast",
            "42:other",
        ] {
            assert_eq!(RelayTarget::decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn jobs_go_stale_after_a_minute() {
        let j = job();
        let sent = j.sent_at.unwrap();
        assert!(!j.is_stale(sent + MAX_EVENT_AGE_SECS));
        assert!(j.is_stale(sent + MAX_EVENT_AGE_SECS + 1));
        let undated = Job { sent_at: None, ..j };
        assert!(!undated.is_stale(i64::MAX));
    }
}
