//! Matches: a game server's collection of channels, worked on as one
//! (`match` and `match_poll` in the library's schema, `schema/matches.h`).
//!
//! Only a server session runs them: one authenticated with a token the
//! extension itself signed (role `backend` or `admin`), since a match
//! broadcasts to, and polls the viewers of, channels that are not the
//! caller's own. A broadcaster's game (a PIN login) is refused.
//!
//! A match poll is one poll per channel of the match (each a channel poll
//! with `match_id` set, so viewers vote with the REST `vote?id=<poll_id>` on
//! their channel and its rules apply), plus the match's own record of it;
//! its subscribers receive every channel's results and the overall result.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::envelope::GamelinkError;
use super::poll::{Poll, Status};
use crate::aggregate::vote::Sums;
use crate::ids::{AggregateId, ChannelId};
use crate::realtime::subscription::Subscription;

/// Channels one match holds, at most: every `match_poll` update carries
/// each channel's results (about 300 bytes each with 32 options), and an
/// update must fit one 128 KB frame.
pub const MAX_MATCH_CHANNELS: usize = 100;
/// A match nobody touched (no `keepalive`, no other verb) for this long is
/// forgotten, and so are its polls' records.
pub const MATCH_IDLE_SECS: i64 = 3600;
/// Channel ids one `add_channels` / `remove_channels` names, at most.
pub const MAX_CHANNELS_PER_REQUEST: usize = MAX_MATCH_CHANNELS;

/// A match as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Match {
    pub id: String,
    /// Sorted, without repeats.
    pub channels: Vec<String>,
    pub created_at: i64,
}

impl Match {
    pub fn new(id: &AggregateId, now: i64) -> Self {
        Match {
            id: id.as_str().to_string(),
            channels: Vec::new(),
            created_at: now,
        }
    }

    /// Adds channels (repeats are fine); refused, changing nothing, past
    /// [`MAX_MATCH_CHANNELS`].
    pub fn add(&mut self, channels: &[ChannelId]) -> Result<(), GamelinkError> {
        let mut all = self.channels.clone();
        all.extend(channels.iter().map(|c| c.as_str().to_string()));
        all.sort();
        all.dedup();
        if all.len() > MAX_MATCH_CHANNELS {
            return Err(GamelinkError::bad_request(format!(
                "a match holds at most {MAX_MATCH_CHANNELS} channels"
            )));
        }
        self.channels = all;
        Ok(())
    }

    /// Removes channels (absent ones are fine).
    pub fn remove(&mut self, channels: &[ChannelId]) {
        self.channels
            .retain(|c| !channels.iter().any(|r| r.as_str() == c));
    }

    pub fn channel_ids(&self) -> Vec<ChannelId> {
        self.channels
            .iter()
            .filter_map(|c| ChannelId::parse(c.as_str()).ok())
            .collect()
    }
}

/// A match poll's own record: the poll, and the channels it runs in (the
/// match's channels when it was created).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatchPoll {
    pub match_id: String,
    pub poll: Poll,
    pub channels: Vec<String>,
}

impl MatchPoll {
    pub fn channel_ids(&self) -> Vec<ChannelId> {
        self.channels
            .iter()
            .filter_map(|c| ChannelId::parse(c.as_str()).ok())
            .collect()
    }

    /// The body of a `match_poll` update: every channel's results (`per`,
    /// the channels' sums in the order of [`MatchPoll::channels`]) and the
    /// overall result, each with the poll's status.
    pub fn body(&self, per: &[Sums], now: i64) -> Value {
        let status = self.poll.status(now);
        let mut overall = Sums::default();
        let mut results = BTreeMap::new();
        for (channel, sums) in self.channels.iter().zip(per) {
            overall.merge(sums);
            results.insert(channel.clone(), self.result(sums, status));
        }
        json!({
            "match_id": self.match_id,
            "poll_id": self.poll.poll_id,
            "overall": self.result(&overall, status),
            "results": results,
        })
    }

    /// One result as the library reads it (`MatchPollResult`).
    fn result(&self, sums: &Sums, status: Status) -> Value {
        let results: Vec<i64> = sums
            .v
            .iter()
            .take(self.poll.options.len())
            .copied()
            .collect();
        json!({
            "results": results,
            "stddev": sums.stddev(),
            "mean": sums.mean(),
            "sum": sums.s,
            "count": sums.n,
            "status": status.as_str(),
        })
    }
}

/// The topic of a match's poll subscribers (`subscribe match_poll
/// {topic_id: <match id>}`): extension-wide, since a server session has no
/// channel.
pub fn poll_subscription(match_id: &str) -> Subscription {
    Subscription::extension(format!("match_poll:{match_id}"))
}

/// A match id (`id`, or `match_id` in a broadcast): the same rules as a
/// poll id.
pub fn match_id_of(data: &Value, field: &str) -> Result<AggregateId, GamelinkError> {
    let raw = data
        .get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| GamelinkError::bad_request(format!("{field} (the match id) is required")))?;
    AggregateId::parse(raw).map_err(|e| GamelinkError::bad_request(format!("{field}: {e}")))
}

/// The `channel_ids` of an `add_channels` / `remove_channels` body.
pub fn channels_of(data: &Value) -> Result<Vec<ChannelId>, GamelinkError> {
    let list = data
        .get("channel_ids")
        .and_then(Value::as_array)
        .ok_or_else(|| GamelinkError::bad_request("channel_ids is a list of channel ids"))?;
    if list.len() > MAX_CHANNELS_PER_REQUEST {
        return Err(GamelinkError::bad_request(format!(
            "at most {MAX_CHANNELS_PER_REQUEST} channel ids at a time"
        )));
    }
    list.iter()
        .map(|c| {
            c.as_str()
                .and_then(|c| ChannelId::parse(c).ok())
                .ok_or_else(|| {
                    GamelinkError::bad_request(format!("{c} is not a channel id (a string)"))
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gamelink::poll::parse_create;

    fn ch(ids: &[&str]) -> Vec<ChannelId> {
        ids.iter().map(|c| ChannelId::parse(*c).unwrap()).collect()
    }

    #[test]
    fn a_match_holds_each_channel_once_and_a_bounded_number() {
        let mut m = Match::new(&AggregateId::parse("m").unwrap(), 1);
        m.add(&ch(&["1002", "1001", "1002"])).unwrap();
        assert_eq!(m.channels, ["1001", "1002"]);
        m.remove(&ch(&["1001", "9"]));
        assert_eq!(m.channels, ["1002"]);
        let many: Vec<String> = (0..MAX_MATCH_CHANNELS)
            .map(|i| format!("{}", 5000 + i))
            .collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let before = m.clone();
        assert!(m.add(&ch(&many)).is_err(), "101 channels");
        assert_eq!(m, before, "a refusal changes nothing");
    }

    #[test]
    fn a_match_poll_update_has_every_channel_and_the_overall() {
        let data = json!({"poll_id": "p", "prompt": "?", "options": ["a", "b"]});
        let poll = parse_create(&data, 1000, "r".into()).unwrap();
        let mp = MatchPoll {
            match_id: "m".into(),
            poll,
            channels: vec!["1001".into(), "1002".into()],
        };
        let (mut a, mut b) = (Sums::default(), Sums::default());
        a.add(0, 1);
        b.add(1, 3);
        let body = mp.body(&[a, b], 1001);
        assert_eq!(body["match_id"], "m");
        assert_eq!(body["poll_id"], "p");
        assert_eq!(body["results"]["1001"]["results"], json!([1, 0]));
        assert_eq!(body["results"]["1002"]["results"], json!([0, 3]));
        assert_eq!(body["overall"]["results"], json!([1, 3]));
        assert_eq!(body["overall"]["count"], 4);
        assert_eq!(body["overall"]["status"], "active");
    }

    #[test]
    fn bodies_name_their_match_and_channels() {
        assert!(match_id_of(&json!({}), "id").is_err());
        assert!(match_id_of(&json!({"id": 5}), "id").is_err());
        assert_eq!(
            match_id_of(&json!({"id": "m-1"}), "id").unwrap().as_str(),
            "m-1"
        );
        assert!(channels_of(&json!({"channel_ids": "1001"})).is_err());
        assert!(channels_of(&json!({"channel_ids": [1001]})).is_err());
        assert!(channels_of(&json!({"channel_ids": ["a|b"]})).is_err());
        assert_eq!(
            channels_of(&json!({"channel_ids": ["1001"]}))
                .unwrap()
                .len(),
            1
        );
    }
}
