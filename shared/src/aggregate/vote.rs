//! Votes: one ballot per viewer, weighted by `count`; VoteData computed from
//! running sums (count, Σv·w, Σv²·w, and the weight per value 0..31), so the
//! standard deviation is exact and reads never touch the ballots.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{AggKey, window};
use crate::error::ApiError;
use crate::realtime::event::{Audience, Event};

pub const SPECIFIC_SLOTS: usize = 32;
pub const MIN_VALUE: i64 = -1000;
pub const MAX_VALUE: i64 = 1000;
pub const MAX_WEIGHT: i64 = 30;

/// The `vote_update:<id>` event a poll's listeners receive with its figures
/// (CONTRACT §4): on the poll's channel, or extension-wide for a `global` id.
pub fn update_event(poll: &AggKey, sums: &Sums) -> Event {
    Event {
        client_id: poll.client.clone(),
        audience: match &poll.scope {
            Some(ch) => Audience::Channel(ch.clone()),
            None => Audience::Extension,
        },
        name: format!("vote_update:{}", poll.id),
        data: json!({"id": poll.id, "stats": sums.vote_data(None)}),
        games: None,
    }
}

/// A validated `POST vote` body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VoteInput {
    pub value: i64,
    pub weight: i64,
}

impl VoteInput {
    pub fn parse(body: &Value) -> Result<Self, ApiError> {
        let obj = body.as_object().ok_or_else(|| {
            ApiError::bad_request("expected a JSON object {\"value\": <integer>}")
        })?;
        let value = match obj.get("value") {
            None | Some(Value::Null) => {
                return Err(ApiError::bad_request("value is required"));
            }
            Some(v) => integer(v).ok_or_else(|| {
                ApiError::bad_request(format!("value must be an integer, got {v}"))
            })?,
        };
        if !(MIN_VALUE..=MAX_VALUE).contains(&value) {
            return Err(ApiError::bad_request(format!(
                "value must be between {MIN_VALUE} and {MAX_VALUE}"
            )));
        }
        let weight = match obj.get("count") {
            None | Some(Value::Null) => 1,
            Some(v) => {
                integer(v).ok_or_else(|| ApiError::bad_request("count must be an integer"))?
            }
        };
        if !(1..=MAX_WEIGHT).contains(&weight) {
            return Err(ApiError::bad_request(format!(
                "count must be between 1 and {MAX_WEIGHT}"
            )));
        }
        Ok(VoteInput { value, weight })
    }
}

/// An integer, also written as a float with no fraction (`3.0`), as JavaScript may.
fn integer(v: &Value) -> Option<i64> {
    if let Some(i) = v.as_i64() {
        return Some(i);
    }
    v.as_f64()
        .filter(|f| f.fract() == 0.0 && f.abs() < 1e15)
        .map(|f| f as i64)
}

/// One viewer's ballot as stored: enough to recompute the tallies and to
/// mark winners from a poll later (game codes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ballot {
    /// Who voted: the opaque user id (stable per viewer and extension).
    pub voter: String,
    /// Twitch user id, "" when the viewer did not share identity.
    pub user_id: String,
    pub value: i64,
    pub weight: i64,
    /// When it was cast, epoch seconds.
    pub cast_at: i64,
    /// Its expiry bucket (see `window`).
    pub bucket: i64,
}

impl Ballot {
    pub fn is_live(&self, now: i64) -> bool {
        window::is_live(self.bucket, now)
    }

    /// One entry of `vote_logs`.
    pub fn log_entry(&self) -> Value {
        let identifier = if self.user_id.is_empty() {
            &self.voter
        } else {
            &self.user_id
        };
        json!({
            "identifier": identifier,
            "opaque": self.voter,
            "user_id": self.user_id,
            "value": self.value,
            "count": self.weight,
            "timestamp": self.cast_at,
        })
    }
}

/// Running sums of a set of ballots. Additive: shards and buckets merge by
/// adding, and replacing a ballot is `sub(old) + add(new)`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sums {
    /// Total weight.
    pub n: i64,
    /// Σ value · weight.
    pub s: i64,
    /// Σ value² · weight.
    pub q: i64,
    /// Weight of ballots per value 0..31.
    pub v: [i64; SPECIFIC_SLOTS],
}

impl Sums {
    pub fn of(value: i64, weight: i64) -> Self {
        let mut sums = Sums::default();
        sums.add(value, weight);
        sums
    }

    /// Adds a ballot (a negative weight removes one).
    pub fn add(&mut self, value: i64, weight: i64) {
        self.n += weight;
        self.s += value * weight;
        self.q += value * value * weight;
        if let Some(slot) = specific_slot(value) {
            self.v[slot] += weight;
        }
    }

    pub fn merge(&mut self, other: &Sums) {
        self.n += other.n;
        self.s += other.s;
        self.q += other.q;
        for (a, b) in self.v.iter_mut().zip(other.v.iter()) {
            *a += b;
        }
    }

    pub fn is_zero(&self) -> bool {
        *self == Sums::default()
    }

    pub fn mean(&self) -> f64 {
        if self.n == 0 {
            0.0
        } else {
            self.s as f64 / self.n as f64
        }
    }

    /// Population standard deviation: sqrt((n·Σv²w − (Σvw)²) / n²), the
    /// numerator in exact integer arithmetic.
    pub fn stddev(&self) -> f64 {
        if self.n <= 0 {
            return 0.0;
        }
        let n = self.n as i128;
        let num = n * self.q as i128 - (self.s as i128) * (self.s as i128);
        if num <= 0 {
            return 0.0;
        }
        (num as f64).sqrt() / self.n as f64
    }

    /// VoteData; `vote` is the caller's current value, when they voted.
    pub fn vote_data(&self, vote: Option<i64>) -> Value {
        serde_json::to_value(self.view(vote)).unwrap_or(Value::Null)
    }

    /// VoteData as JSON text, straight from the sums (the hot path of
    /// `POST vote`: no intermediate `Value`).
    pub fn vote_data_text(&self, vote: Option<i64>) -> String {
        serde_json::to_string(&self.view(vote)).unwrap_or_else(|_| "{}".into())
    }

    fn view(&self, vote: Option<i64>) -> VoteData<'_> {
        VoteData {
            count: self.n,
            sum: self.s,
            mean: self.mean(),
            stddev: self.stddev(),
            specific: &self.v,
            vote,
        }
    }
}

/// The wire shape of VoteData (CONTRACT §4).
#[derive(Serialize)]
struct VoteData<'a> {
    count: i64,
    sum: i64,
    mean: f64,
    stddev: f64,
    specific: &'a [i64; SPECIFIC_SLOTS],
    #[serde(skip_serializing_if = "Option::is_none")]
    vote: Option<i64>,
}

/// The `specific` slot a value counts in, if any.
pub fn specific_slot(value: i64) -> Option<usize> {
    usize::try_from(value).ok().filter(|v| *v < SPECIFIC_SLOTS)
}

/// A poll's sums per expiry bucket (the embedded adapter stores this as one
/// record; the DynamoDB adapter spreads it over shard items).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketedSums(pub BTreeMap<i64, Sums>);

impl BucketedSums {
    pub fn add(&mut self, bucket: i64, value: i64, weight: i64) {
        let entry = self.0.entry(bucket).or_default();
        entry.add(value, weight);
        if entry.is_zero() {
            self.0.remove(&bucket);
        }
    }

    /// The sums of the buckets still live at `now`.
    pub fn live(&self, now: i64) -> Sums {
        let mut total = Sums::default();
        for (_, sums) in self.0.range(now + 1..) {
            total.merge(sums);
        }
        total
    }

    /// Compact binary form (bucket and 35 figures per bucket, little endian):
    /// what the embedded store keeps, read and rewritten by every vote.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.0.len() * 36 * 8);
        for (bucket, s) in &self.0 {
            for x in [*bucket, s.n, s.s, s.q].iter().chain(s.v.iter()) {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        const WORDS: usize = 4 + SPECIFIC_SLOTS;
        if !bytes.len().is_multiple_of(WORDS * 8) {
            return None;
        }
        let mut out = BucketedSums::default();
        for chunk in bytes.chunks_exact(WORDS * 8) {
            let word = |i: usize| i64::from_le_bytes(chunk[i * 8..i * 8 + 8].try_into().unwrap());
            let mut s = Sums {
                n: word(1),
                s: word(2),
                q: word(3),
                ..Sums::default()
            };
            for (slot, v) in s.v.iter_mut().enumerate() {
                *v = word(4 + slot);
            }
            out.0.insert(word(0), s);
        }
        Some(out)
    }

    /// Drops expired buckets; returns the latest expiry (None when empty).
    pub fn prune(&mut self, now: i64) -> Option<i64> {
        self.0.retain(|b, _| window::is_live(*b, now));
        self.0.keys().next_back().copied()
    }
}

/// Replaces `old` by `new` in the sums (the one step every adapter performs
/// atomically with storing the ballot).
pub fn replace_ballot(sums: &mut BucketedSums, old: Option<&Ballot>, new: &Ballot) {
    if let Some(old) = old {
        sums.add(old.bucket, old.value, -old.weight);
    }
    sums.add(new.bucket, new.value, new.weight);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ballot(value: i64, weight: i64, bucket: i64) -> Ballot {
        Ballot {
            voter: "A1".into(),
            user_id: String::new(),
            value,
            weight,
            cast_at: 0,
            bucket,
        }
    }

    #[test]
    fn vote_input_validation() {
        let ok = |v: Value| VoteInput::parse(&v).unwrap();
        assert_eq!(
            ok(json!({"value": 3})),
            VoteInput {
                value: 3,
                weight: 1
            }
        );
        assert_eq!(ok(json!({"value": -1000, "count": 30})).weight, 30);
        assert_eq!(ok(json!({"value": 2.0})).value, 2);
        for bad in [
            json!({}),
            json!({"value": null}),
            json!({"value": "3"}),
            json!({"value": 1.5}),
            json!({"value": 1001}),
            json!({"value": -1001}),
            json!({"value": 1, "count": 0}),
            json!({"value": 1, "count": 31}),
            json!({"value": 1, "count": "2"}),
            json!([1]),
        ] {
            assert!(VoteInput::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn vote_data_matches_the_definition() {
        // Ballots: 1×2, 3×1, 40×1 (40 is outside `specific`).
        let mut s = Sums::default();
        s.add(1, 2);
        s.add(3, 1);
        s.add(40, 1);
        assert_eq!((s.n, s.s, s.q), (4, 45, 1 + 1 + 9 + 1600));
        let mean = 45.0 / 4.0;
        let var =
            (2.0 * (1.0f64 - mean).powi(2) + (3.0 - mean).powi(2) + (40.0 - mean).powi(2)) / 4.0;
        assert!((s.mean() - mean).abs() < 1e-12);
        assert!((s.stddev() - var.sqrt()).abs() < 1e-9);
        let d = s.vote_data(Some(3));
        assert_eq!(d["specific"][1], 2);
        assert_eq!(d["specific"][3], 1);
        assert_eq!(d["specific"].as_array().unwrap().len(), 32);
        assert_eq!(d["vote"], 3);
        assert!(Sums::default().vote_data(None).get("vote").is_none());
        let text: Value = serde_json::from_str(&s.vote_data_text(Some(3))).unwrap();
        assert_eq!(text, d);
        assert_eq!(Sums::default().stddev(), 0.0);
    }

    #[test]
    fn replacing_ballots_and_expiring_buckets() {
        let mut b = BucketedSums::default();
        let first = ballot(5, 2, 100);
        replace_ballot(&mut b, None, &first);
        let second = ballot(7, 1, 200);
        replace_ballot(&mut b, Some(&first), &second);
        assert_eq!(b.0.len(), 1, "the emptied bucket is dropped");
        assert_eq!(b.live(0), Sums::of(7, 1));
        assert_eq!(b.live(199), Sums::of(7, 1));
        assert_eq!(b.live(200), Sums::default());
        replace_ballot(&mut b, None, &ballot(1, 1, 300));
        replace_ballot(&mut b, None, &ballot(40, 3, 300));
        assert_eq!(BucketedSums::from_bytes(&b.to_bytes()), Some(b.clone()));
        assert_eq!(BucketedSums::from_bytes(&[1, 2, 3]), None);
        assert_eq!(b.prune(250), Some(300));
        assert_eq!(b.0.len(), 1);
    }
}
