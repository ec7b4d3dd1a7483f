//! GameLink polls (`schema/poll.h`): a game creates a poll with a prompt,
//! options and a configuration; viewers vote with the REST `vote?id=<poll
//! id>` (one ballot each, as every MEDKit vote); subscribed games receive
//! `{poll: {poll_id, prompt, status, options, user_data}, results, mean,
//! sum, count}`. The status is derived from the poll's times on every read,
//! so nothing late can leave a poll active past its end.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::envelope::GamelinkError;
use crate::aggregate::vote::{SPECIFIC_SLOTS, Sums};
use crate::error::ApiError;
use crate::ids::AggregateId;

/// Options a poll may have: one per vote value the sums count.
pub const MAX_OPTIONS: usize = SPECIFIC_SLOTS;
const MAX_PROMPT: usize = 512;
const MAX_OPTION: usize = 256;
/// Largest `user_data` kept with a poll.
const MAX_USER_DATA_BYTES: usize = 16 * 1024;
/// How far ahead a poll may start or end (a year).
const MAX_HORIZON_SECS: i64 = 365 * 24 * 3600;

/// What a subscribed game is told about a poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Not yet started (`startsAt` ahead): no votes, no updates.
    Pending,
    Active,
    Expired,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Active => "active",
            Status::Expired => "expired",
        }
    }
}

/// A poll's rules, in absolute epoch seconds (0: none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PollConfig {
    /// Only viewers who share their Twitch identity may vote.
    pub user_id_voting: bool,
    /// Votes (the ballot's `count`) one viewer may give in all.
    pub total_votes_per_user: i64,
    /// Votes one viewer may give one option.
    pub votes_per_option: i64,
    pub disabled: bool,
    pub starts_at: i64,
    pub ends_at: i64,
}

/// A poll as the store keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Poll {
    pub poll_id: String,
    pub prompt: String,
    pub options: Vec<String>,
    pub config: PollConfig,
    pub user_data: Value,
    /// This poll's own id: a poll deleted and created again under the same
    /// `poll_id` has another, so nothing scheduled for the old one touches it.
    pub run: String,
    pub created_at: i64,
    /// Set once its `expired` update was sent (at most one is).
    #[serde(default)]
    pub expiry_sent: bool,
    /// The match it is a channel's part of (`gamelink::matches`): its
    /// updates go to the match's subscribers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_id: Option<String>,
}

fn int(config: &Value, field: &str, default: i64) -> Result<i64, GamelinkError> {
    match config.get(field) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_i64()
            .ok_or_else(|| GamelinkError::bad_request(format!("config.{field} is an integer"))),
    }
}

fn flag(config: &Value, field: &str) -> Result<bool, GamelinkError> {
    match config.get(field) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(GamelinkError::bad_request(format!(
            "config.{field} is a boolean"
        ))),
    }
}

/// A time field: absolute (`startsAt`), or relative to now (`startsIn`).
fn moment(config: &Value, at: &str, within: &str, now: i64) -> Result<i64, GamelinkError> {
    let (abs, rel) = (int(config, at, 0)?, int(config, within, 0)?);
    let t = match (abs, rel) {
        (0, 0) => return Ok(0),
        (a, 0) => a,
        (0, r) if r > 0 => now + r,
        (0, _) => {
            return Err(GamelinkError::bad_request(format!(
                "config.{within} is positive"
            )));
        }
        _ => {
            return Err(GamelinkError::bad_request(format!(
                "give config.{at} or config.{within}, not both"
            )));
        }
    };
    if t < 0 || t > now + MAX_HORIZON_SECS {
        return Err(GamelinkError::bad_request(format!(
            "config.{at} is epoch seconds within a year from now"
        )));
    }
    Ok(t)
}

/// The poll id of a request body (`poll_id`, or `topic_id` for the
/// subscription verbs): a MEDKit vote id, so viewers vote on it as is.
pub fn poll_id_of(data: &Value, field: &str) -> Result<AggregateId, GamelinkError> {
    let raw = data
        .get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| GamelinkError::bad_request(format!("{field} (the poll id) is required")))?;
    AggregateId::parse(raw).map_err(|e| GamelinkError::bad_request(format!("{field}: {e}")))
}

/// Reads a `create` body (`{poll_id, prompt, options, config?, user_data?}`).
pub fn parse_create(data: &Value, now: i64, run: String) -> Result<Poll, GamelinkError> {
    let poll_id = poll_id_of(data, "poll_id")?;
    let prompt = match data.get("prompt") {
        Some(Value::String(p)) if p.len() <= MAX_PROMPT => p.clone(),
        _ => {
            return Err(GamelinkError::bad_request(format!(
                "prompt is a string of at most {MAX_PROMPT} bytes"
            )));
        }
    };
    let options: Vec<String> = match data.get("options") {
        Some(Value::Array(list)) => list
            .iter()
            .map(|o| match o {
                Value::String(s) if s.len() <= MAX_OPTION => Ok(s.clone()),
                _ => Err(GamelinkError::bad_request(format!(
                    "each option is a string of at most {MAX_OPTION} bytes"
                ))),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err(GamelinkError::bad_request("options is a list of strings")),
    };
    if options.is_empty() || options.len() > MAX_OPTIONS {
        return Err(GamelinkError::bad_request(format!(
            "a poll has 1 to {MAX_OPTIONS} options"
        )));
    }
    let config = data.get("config").cloned().unwrap_or_else(|| json!({}));
    if !config.is_object() {
        return Err(GamelinkError::bad_request("config is an object"));
    }
    let distinct = int(&config, "distinctOptionsPerUser", 1)?;
    if distinct != 1 {
        return Err(GamelinkError::bad_request(
            "config.distinctOptionsPerUser must be 1: a viewer has one ballot per poll here \
             (its count may be up to votesPerOption)",
        ));
    }
    let total = int(&config, "totalVotesPerUser", 1)?;
    let per_option = int(&config, "votesPerOption", 1)?;
    if !(1..=1_000_000).contains(&total) || !(1..=1_000_000).contains(&per_option) {
        return Err(GamelinkError::bad_request(
            "config.totalVotesPerUser and config.votesPerOption are 1 to 1,000,000",
        ));
    }
    let starts_at = moment(&config, "startsAt", "startsIn", now)?;
    let ends_at = moment(&config, "endsAt", "endsIn", now)?;
    if ends_at != 0 && ends_at <= starts_at.max(now) {
        return Err(GamelinkError::bad_request(
            "config.endsAt is after now and after startsAt",
        ));
    }
    let user_data = data.get("user_data").cloned().unwrap_or(Value::Null);
    crate::documents::check_size(&user_data, MAX_USER_DATA_BYTES, "user_data")?;
    Ok(Poll {
        poll_id: poll_id.to_string(),
        prompt,
        options,
        config: PollConfig {
            user_id_voting: flag(&config, "userIDVoting")?,
            total_votes_per_user: total,
            votes_per_option: per_option,
            disabled: flag(&config, "disabled")?,
            starts_at,
            ends_at,
        },
        user_data,
        run,
        created_at: now,
        expiry_sent: false,
        match_id: None,
    })
}

/// What a `reconfigure` changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reconfigured {
    /// The poll ended with this change (it was not over before).
    pub ended: bool,
}

impl Poll {
    pub fn status(&self, now: i64) -> Status {
        let c = &self.config;
        if c.ends_at != 0 && now >= c.ends_at {
            Status::Expired
        } else if c.starts_at > now {
            Status::Pending
        } else {
            Status::Active
        }
    }

    /// Applies a `reconfigure` config: `endsAt` (-1: now), `disabled`.
    pub fn reconfigure(&mut self, config: &Value, now: i64) -> Result<Reconfigured, GamelinkError> {
        if !config.is_object() {
            return Err(GamelinkError::bad_request(
                "reconfigure needs config: {endsAt} or {disabled}",
            ));
        }
        let was_over = self.status(now) == Status::Expired;
        if let Some(d) = config.get("disabled") {
            self.config.disabled = d
                .as_bool()
                .ok_or_else(|| GamelinkError::bad_request("config.disabled is a boolean"))?;
        }
        match int(config, "endsAt", 0)? {
            0 => {}
            -1 => {
                if !was_over {
                    self.config.ends_at = now;
                }
            }
            t if t > now && t <= now + MAX_HORIZON_SECS && !was_over => self.config.ends_at = t,
            _ if was_over => {
                return Err(GamelinkError::conflict(
                    "the poll is over: it cannot be reopened",
                ));
            }
            _ => {
                return Err(GamelinkError::bad_request(
                    "config.endsAt is -1 (now) or epoch seconds ahead, within a year",
                ));
            }
        }
        Ok(Reconfigured {
            ended: !was_over && self.status(now) == Status::Expired,
        })
    }

    /// Whether a viewer's ballot is accepted now: the REST `vote` rule for a
    /// GameLink poll (the 4xx says why not).
    pub fn admits(
        &self,
        value: i64,
        count: i64,
        shares_identity: bool,
        now: i64,
    ) -> Result<(), ApiError> {
        match self.status(now) {
            Status::Pending => return Err(ApiError::conflict("this poll has not started yet")),
            Status::Expired => return Err(ApiError::conflict("this poll is over")),
            Status::Active => {}
        }
        if self.config.disabled {
            return Err(ApiError::conflict(
                "this poll is disabled: votes are paused",
            ));
        }
        if self.config.user_id_voting && !shares_identity {
            return Err(ApiError::forbidden(
                "this poll takes votes from viewers who share their identity only",
            ));
        }
        if value < 0 || value as usize >= self.options.len() {
            return Err(ApiError::bad_request(format!(
                "value is an option's index: 0 to {}",
                self.options.len() - 1
            )));
        }
        let cap = self
            .config
            .votes_per_option
            .min(self.config.total_votes_per_user);
        if count > cap {
            return Err(ApiError::bad_request(format!(
                "count is at most {cap} in this poll"
            )));
        }
        Ok(())
    }

    /// The body of `get` and of updates.
    pub fn body(&self, sums: &Sums, now: i64) -> Value {
        let results: Vec<i64> = sums.v.iter().take(self.options.len()).copied().collect();
        json!({
            "poll": {
                "poll_id": self.poll_id,
                "prompt": self.prompt,
                "status": self.status(now).as_str(),
                "options": self.options,
                "user_data": self.user_data,
            },
            "results": results,
            "mean": sums.mean(),
            "sum": sums.s,
            "count": sums.n,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(data: Value) -> Result<Poll, GamelinkError> {
        parse_create(&data, 1000, "r1".into())
    }

    #[test]
    fn a_poll_as_the_library_creates_it() {
        let p = create(json!({
            "poll_id": "boss", "prompt": "Which boss?", "options": ["slime", "dragon"],
            "config": {"userIDVoting": false, "distinctOptionsPerUser": 1, "totalVotesPerUser": 1,
                       "votesPerOption": 1, "disabled": false, "startsAt": 0, "endsAt": 0,
                       "startsIn": 0, "endsIn": 60},
            "user_data": {"round": 3}
        }))
        .unwrap();
        assert_eq!(p.config.ends_at, 1060);
        assert_eq!(p.status(1000), Status::Active);
        assert_eq!(p.status(1060), Status::Expired);
        // The library's plain CreatePoll: no config at all.
        let plain = create(json!({"poll_id": "p", "prompt": "?", "options": ["a"]})).unwrap();
        assert_eq!(plain.status(i64::MAX / 2), Status::Active, "no end");
        let later = create(json!({"poll_id": "p", "prompt": "?", "options": ["a"],
                                  "config": {"startsIn": 10}}))
        .unwrap();
        assert_eq!(later.status(1005), Status::Pending);
        assert_eq!(later.status(1010), Status::Active);
    }

    #[test]
    fn bad_polls_are_refused() {
        let many: Vec<String> = (0..=MAX_OPTIONS).map(|i| i.to_string()).collect();
        for bad in [
            json!({"prompt": "?", "options": ["a"]}),
            json!({"poll_id": "a|b", "prompt": "?", "options": ["a"]}),
            json!({"poll_id": "p", "prompt": "?", "options": []}),
            json!({"poll_id": "p", "prompt": "?", "options": many}),
            json!({"poll_id": "p", "prompt": "?", "options": [1]}),
            json!({"poll_id": "p", "options": ["a"]}),
            json!({"poll_id": "p", "prompt": "?", "options": ["a"], "config": {"distinctOptionsPerUser": 2}}),
            json!({"poll_id": "p", "prompt": "?", "options": ["a"], "config": {"endsAt": 900}}),
            json!({"poll_id": "p", "prompt": "?", "options": ["a"], "config": {"endsAt": 2000, "endsIn": 5}}),
            json!({"poll_id": "p", "prompt": "?", "options": ["a"], "config": {"startsIn": 50, "endsIn": 20}}),
            json!({"poll_id": "p", "prompt": "?", "options": ["a"], "config": {"votesPerOption": 0}}),
            json!({"poll_id": "p", "prompt": "?", "options": ["a"], "config": {"disabled": "no"}}),
        ] {
            assert_eq!(create(bad.clone()).unwrap_err().number, 400, "{bad}");
        }
    }

    #[test]
    fn stopping_ends_a_poll_once() {
        let mut p = create(json!({"poll_id": "p", "prompt": "?", "options": ["a", "b"]})).unwrap();
        assert!(p.reconfigure(&json!({"endsAt": -1}), 1100).unwrap().ended);
        assert_eq!(p.status(1100), Status::Expired);
        assert!(
            !p.reconfigure(&json!({"endsAt": -1}), 1200).unwrap().ended,
            "a repeated stop"
        );
        assert_eq!(
            p.reconfigure(&json!({"endsAt": 5000}), 1200)
                .unwrap_err()
                .number,
            409
        );
        let mut q = create(json!({"poll_id": "q", "prompt": "?", "options": ["a"]})).unwrap();
        q.reconfigure(&json!({"disabled": true}), 1001).unwrap();
        assert!(q.admits(0, 1, false, 1001).is_err());
    }

    #[test]
    fn votes_follow_the_polls_rules() {
        let p = create(json!({"poll_id": "p", "prompt": "?", "options": ["a", "b"],
                              "config": {"userIDVoting": true, "votesPerOption": 3,
                                         "totalVotesPerUser": 2, "startsIn": 10, "endsIn": 100}}))
        .unwrap();
        assert!(p.admits(0, 1, true, 1005).is_err(), "not started");
        assert!(p.admits(0, 1, true, 1010).is_ok());
        assert!(p.admits(1, 2, true, 1010).is_ok());
        assert!(p.admits(1, 3, true, 1010).is_err(), "over the total");
        assert!(p.admits(2, 1, true, 1010).is_err(), "no such option");
        assert!(p.admits(0, 1, false, 1010).is_err(), "identity required");
        assert!(p.admits(0, 1, true, 1100).is_err(), "over");
    }

    #[test]
    fn the_body_has_the_librarys_shape() {
        let p = create(
            json!({"poll_id": "p", "prompt": "?", "options": ["a", "b"], "user_data": {"x": 1}}),
        )
        .unwrap();
        let mut sums = Sums::default();
        sums.add(1, 1);
        sums.add(1, 1);
        sums.add(0, 1);
        let b = p.body(&sums, 1000);
        assert_eq!(b["results"], json!([1, 2]));
        assert_eq!(b["count"], 3);
        assert_eq!(b["sum"], 2);
        assert_eq!(b["poll"]["status"], "active");
        assert_eq!(b["poll"]["user_data"], json!({"x": 1}));
    }
}
