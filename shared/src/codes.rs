//! Game codes (CONTRACT §5): validation of uploads, marks and redeems, and
//! why a redeem or an append is refused. Pure rules; how a set is stored is
//! `store::layout` and the adapters.

use serde_json::Value;

use crate::error::ApiError;
use crate::ids::UserId;

/// Code-set slots (prizes) 0..9.
pub const MAX_SLOTS: usize = 10;
/// A code is shorter than 64 characters.
pub const MAX_CODE_CHARS: usize = 63;
/// A set holds fewer than 1,000,000 codes.
pub const MAX_CODES_PER_SET: usize = 999_999;
/// Everything about a set expires this long after its upload.
pub const SET_TTL_SECS: i64 = 90 * 24 * 3600;
/// Most users one `mark_from_list` call names.
pub const MAX_MARK_USERS: usize = 10_000;
/// Most (user, prize) marks one request makes: each is a conditional write,
/// 64 in flight, so a request stays well inside its time limit (API
/// Gateway's 30 s, the function's 60 s). More winners are marked in pages
/// with `mark_from_list`.
pub const MAX_MARKS_PER_REQUEST: usize = 10_000;
/// Highest cap one mark may give a user for one slot.
pub const MAX_PRIZE_LIMIT: u32 = 1000;

/// One set of a `PUT codes` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetUpload {
    pub slot: usize,
    pub name: String,
    pub codes: Vec<String>,
}

/// A validated `PUT codes` body (`append` from `?append=true`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    pub sets: Vec<SetUpload>,
    pub append: bool,
}

fn bad(reason: impl Into<String>) -> ApiError {
    ApiError::bad_request(reason)
}

fn strings(v: &Value, what: &str) -> Result<Vec<String>, ApiError> {
    v.as_array()
        .ok_or_else(|| bad(format!("{what} must be an array of strings")))?
        .iter()
        .map(|x| {
            x.as_str()
                .map(str::to_string)
                .ok_or_else(|| bad(format!("{what} must be an array of strings")))
        })
        .collect()
}

fn slot(v: &Value, what: &str) -> Result<usize, ApiError> {
    v.as_u64()
        .map(|n| n as usize)
        .filter(|n| *n < MAX_SLOTS)
        .ok_or_else(|| bad(format!("{what} must be a slot number 0..{}", MAX_SLOTS - 1)))
}

/// Where a set's [`fingerprint`] starts (FNV-1a's offset basis).
pub const FINGERPRINT_START: u64 = 0xcbf2_9ce4_8422_2325;

/// A fingerprint of a set's codes in order, extended code by code, so an
/// append continues the one stored: a `PUT` whose codes fingerprint as the
/// set's do is a rename (64-bit FNV-1a over each code and a separator; an
/// accidental match of two different uploads is ~2^-64).
pub fn fingerprint(from: u64, codes: &[String]) -> u64 {
    let mut h = from;
    for code in codes {
        for b in code.bytes().chain([0xff]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// A single code: non-empty, < 64 characters, one line.
pub fn check_code(code: &str) -> Result<(), ApiError> {
    if code.is_empty() {
        return Err(bad("a code is empty"));
    }
    if code.chars().count() > MAX_CODE_CHARS {
        return Err(bad(format!(
            "a code is at most {MAX_CODE_CHARS} characters (got {:?}…)",
            code.chars().take(16).collect::<String>()
        )));
    }
    if code.chars().any(char::is_control) {
        return Err(bad("a code contains a control character"));
    }
    Ok(())
}

impl Upload {
    pub fn parse(body: &Value, append: bool) -> Result<Self, ApiError> {
        let codes = body
            .get("codes")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("codes must be an array of arrays of codes"))?;
        let names = strings(
            body.get("names").ok_or_else(|| bad("names is required"))?,
            "names",
        )?;
        if codes.len() != names.len() {
            return Err(bad(format!(
                "codes has {} sets but names has {}",
                codes.len(),
                names.len()
            )));
        }
        if codes.is_empty() {
            return Err(bad("no code sets given"));
        }
        if codes.len() > MAX_SLOTS {
            return Err(bad(format!("at most {MAX_SLOTS} code sets")));
        }
        let slots: Vec<usize> = match body.get("indices") {
            None | Some(Value::Null) => (0..codes.len()).collect(),
            Some(v) => {
                let arr = v
                    .as_array()
                    .ok_or_else(|| bad("indices must be an array of slot numbers"))?;
                if arr.len() != codes.len() {
                    return Err(bad(format!(
                        "indices has {} entries but codes has {} sets",
                        arr.len(),
                        codes.len()
                    )));
                }
                arr.iter()
                    .map(|x| slot(x, "an index"))
                    .collect::<Result<_, _>>()?
            }
        };
        let mut seen_slots = slots.clone();
        seen_slots.sort_unstable();
        if seen_slots.windows(2).any(|w| w[0] == w[1]) {
            return Err(bad("a slot appears twice in indices"));
        }
        let mut seen_names = names.clone();
        seen_names.sort_unstable();
        if seen_names.windows(2).any(|w| w[0] == w[1]) {
            return Err(bad("set names must be unique"));
        }
        let mut sets = Vec::with_capacity(codes.len());
        for ((set, name), slot) in codes.iter().zip(names).zip(slots) {
            if name.trim().is_empty() || name.len() > 256 {
                return Err(bad("a set name is 1..256 bytes"));
            }
            let codes = strings(set, "each set of codes")?;
            if codes.is_empty() {
                return Err(bad(format!("set {name:?} has no codes")));
            }
            if codes.len() > MAX_CODES_PER_SET {
                return Err(bad(format!(
                    "a set holds fewer than {} codes (set {name:?} has {})",
                    MAX_CODES_PER_SET + 1,
                    codes.len()
                )));
            }
            for c in &codes {
                check_code(c)?;
            }
            sets.push(SetUpload { slot, name, codes });
        }
        Ok(Upload { sets, append })
    }
}

/// Longest part id of an append (`PUT codes?append=true&part=<id>`).
pub const MAX_PART_ID: usize = 64;

/// The id a client gives one part of an upload, so that retrying a part
/// that was in fact written adds nothing twice: 1–64 letters, digits, `-`,
/// `_` or `.`.
pub fn part_id(raw: &str) -> Result<&str, ApiError> {
    let ok = !raw.is_empty()
        && raw.len() <= MAX_PART_ID
        && raw
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(raw)
    } else {
        Err(bad(format!(
            "part must be 1 to {MAX_PART_ID} letters, digits, '-', '_' or '.'"
        )))
    }
}

/// An append of `adding` codes to a set of `total`: refused when the set
/// would reach 1,000,000 codes.
pub fn check_append(slot: usize, total: usize, adding: usize) -> Result<(), AppendError> {
    if total + adding > MAX_CODES_PER_SET {
        return Err(AppendError::Full {
            slot,
            total: total + adding,
        });
    }
    Ok(())
}

/// Why an append added nothing.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    #[error("slot {slot} would hold {total} codes; a set holds fewer than {}", MAX_CODES_PER_SET + 1)]
    Full { slot: usize, total: usize },
    #[error("another upload to this slot is in progress; try again")]
    Busy,
    #[error(transparent)]
    Store(#[from] crate::error::StoreError),
}

impl From<AppendError> for ApiError {
    fn from(e: AppendError) -> Self {
        match e {
            AppendError::Full { .. } => ApiError::bad_request(e.to_string()),
            AppendError::Busy => ApiError::conflict(e.to_string()),
            AppendError::Store(s) => s.into(),
        }
    }
}

/// `prizes` and `prize_limits` of a mark: which slots, and each one's cap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prizes(pub Vec<(usize, u32)>);

impl Prizes {
    pub fn parse(body: &Value) -> Result<Self, ApiError> {
        let prizes = body
            .get("prizes")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("prizes must be an array of slot numbers"))?;
        let limits = body
            .get("prize_limits")
            .and_then(Value::as_array)
            .ok_or_else(|| bad("prize_limits must be an array of numbers"))?;
        if prizes.len() != limits.len() {
            return Err(bad(format!(
                "prizes has {} entries but prize_limits has {}",
                prizes.len(),
                limits.len()
            )));
        }
        if prizes.is_empty() {
            return Err(bad("prizes is empty"));
        }
        let mut out = Vec::with_capacity(prizes.len());
        for (p, l) in prizes.iter().zip(limits) {
            let limit = l
                .as_u64()
                .filter(|n| (1..=MAX_PRIZE_LIMIT as u64).contains(n))
                .ok_or_else(|| bad(format!("a prize limit is 1..{MAX_PRIZE_LIMIT}")))?;
            out.push((slot(p, "a prize")?, limit as u32));
        }
        Ok(Prizes(out))
    }
}

/// A validated `codes/mark_from_poll` body.
#[derive(Debug, Clone, PartialEq)]
pub struct MarkFromPoll {
    pub poll_id: String,
    pub correct: i64,
    /// Ballots cast at or before this (epoch seconds) qualify.
    pub cutoff: i64,
    pub prizes: Prizes,
}

impl MarkFromPoll {
    pub fn parse(body: &Value) -> Result<Self, ApiError> {
        let poll_id = match body.get("poll_id") {
            None | Some(Value::Null) => "default".to_string(),
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(_) => return Err(bad("poll_id must be a non-empty string")),
        };
        let correct = body
            .get("correct")
            .and_then(Value::as_i64)
            .ok_or_else(|| bad("correct (the winning vote value) must be an integer"))?;
        let cutoff = body
            .get("cutoff_timestamp")
            .and_then(|v| v.as_i64().or_else(|| v.as_f64().map(|f| f as i64)))
            .ok_or_else(|| bad("cutoff_timestamp (epoch seconds) is required"))?;
        Ok(MarkFromPoll {
            poll_id,
            correct,
            cutoff,
            prizes: Prizes::parse(body)?,
        })
    }
}

/// A validated `codes/mark_from_list` body.
#[derive(Debug, Clone, PartialEq)]
pub struct MarkFromList {
    pub users: Vec<UserId>,
    pub prizes: Prizes,
}

impl MarkFromList {
    pub fn parse(body: &Value) -> Result<Self, ApiError> {
        let users = strings(
            body.get("users").ok_or_else(|| bad("users is required"))?,
            "users",
        )?;
        if users.is_empty() || users.len() > MAX_MARK_USERS {
            return Err(bad(format!("users names 1..{MAX_MARK_USERS} user ids")));
        }
        Ok(MarkFromList {
            users: users
                .into_iter()
                .map(UserId::parse)
                .collect::<Result<_, _>>()?,
            prizes: Prizes::parse(body)?,
        })
    }
}

/// The slot of a `codes/redeem` body: `{"all_prizes": n}` as the official
/// client sends it, or `{"prize": n}`.
pub fn redeem_slot(body: &Value) -> Result<usize, ApiError> {
    let v = body
        .get("all_prizes")
        .or_else(|| body.get("prize"))
        .ok_or_else(|| bad("all_prizes (or prize) is required: the slot to redeem from"))?;
    slot(v, "the prize")
}

/// A stored set, as `GET codes` and `DELETE codes` report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetInfo {
    pub slot: usize,
    pub name: String,
    /// Changes with every replacing upload; a user's eligibility and codes
    /// belong to one generation of a slot.
    pub generation: String,
    pub total: usize,
    /// Codes handed out. On DynamoDB this comes from the set's cursor, so it
    /// can run ahead of the recorded claims only by redeems in flight, or
    /// lost to a crash and not yet recovered.
    pub distributed: usize,
}

impl SetInfo {
    pub fn remaining(&self) -> usize {
        self.total.saturating_sub(self.distributed)
    }
}

/// A user's standing for one slot: their cap and the codes they hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Standing {
    pub cap: u32,
    pub held: Vec<String>,
}

impl Standing {
    pub fn claimable(&self) -> usize {
        (self.cap as usize).saturating_sub(self.held.len())
    }
}

/// Why a redeem handed out nothing.
#[derive(Debug, thiserror::Error)]
pub enum RedeemError {
    #[error("no code set in slot {0}")]
    NoSet(usize),
    #[error("you are not eligible for (more) codes from slot {0}")]
    NotEligible(usize),
    #[error("every code of slot {0} has been handed out")]
    Exhausted(usize),
    #[error(transparent)]
    Store(#[from] crate::error::StoreError),
}

impl From<RedeemError> for ApiError {
    fn from(e: RedeemError) -> Self {
        match e {
            RedeemError::NoSet(_) => ApiError::not_found(e.to_string()),
            RedeemError::NotEligible(_) => ApiError::forbidden(e.to_string()),
            RedeemError::Exhausted(_) => ApiError::conflict(e.to_string()),
            RedeemError::Store(s) => s.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn uploads_validate() {
        let u = Upload::parse(
            &json!({"codes": [["A1", "A2"], ["B1"]], "names": ["gold", "silver"], "indices": [3, 0]}),
            false,
        )
        .unwrap();
        assert_eq!(u.sets[0].slot, 3);
        assert_eq!(u.sets[1].name, "silver");
        let default = Upload::parse(&json!({"codes": [["x"]], "names": ["n"]}), true).unwrap();
        assert_eq!((default.sets[0].slot, default.append), (0, true));
        let eleven: Vec<Value> = (0..11).map(|i| json!([format!("c{i}")])).collect();
        let eleven_names: Vec<String> = (0..11).map(|i| format!("n{i}")).collect();
        for bad in [
            json!({"codes": eleven, "names": eleven_names}),
            json!({"codes": [["a"]], "names": ["n"], "indices": [10]}),
            json!({"codes": [["a"]], "names": ["n"], "indices": [-1]}),
            json!({"codes": [["a"], ["b"]], "names": ["n"]}),
            json!({"codes": [["a"], ["b"]], "names": ["n", "n"]}),
            json!({"codes": [["a"], ["b"]], "names": ["n", "m"], "indices": [1, 1]}),
            json!({"codes": [[""]], "names": ["n"]}),
            json!({"codes": [["x".repeat(64)]], "names": ["n"]}),
            json!({"codes": [["a\nb"]], "names": ["n"]}),
            json!({"codes": [[]], "names": ["n"]}),
            json!({"codes": [[1]], "names": ["n"]}),
            json!({"codes": [], "names": []}),
            json!({"names": ["n"]}),
        ] {
            assert!(Upload::parse(&bad, false).is_err(), "{bad}");
        }
        assert!(check_code(&"x".repeat(63)).is_ok());
        assert!(check_code(&"é".repeat(63)).is_ok(), "characters, not bytes");
    }

    #[test]
    fn fingerprints_extend_across_appends() {
        let all: Vec<String> = ["A1", "A2", "A3"].map(String::from).to_vec();
        let whole = fingerprint(FINGERPRINT_START, &all);
        let parts = fingerprint(fingerprint(FINGERPRINT_START, &all[..1]), &all[1..]);
        assert_eq!(whole, parts);
        let other: Vec<String> = ["A1A2", "A3"].map(String::from).to_vec();
        assert_ne!(
            fingerprint(FINGERPRINT_START, &other),
            whole,
            "codes are separated"
        );
        let reordered: Vec<String> = ["A2", "A1", "A3"].map(String::from).to_vec();
        assert_ne!(
            fingerprint(FINGERPRINT_START, &reordered),
            whole,
            "order counts"
        );
    }

    #[test]
    fn a_million_codes_is_one_too_many() {
        let big: Vec<String> = (0..MAX_CODES_PER_SET + 1).map(|i| format!("{i}")).collect();
        let err = Upload::parse(&json!({"codes": [big], "names": ["n"]}), false).unwrap_err();
        assert!(err.to_string().contains("fewer than 1000000"), "{err}");
    }

    #[test]
    fn marks_and_redeems_validate() {
        let m = MarkFromPoll::parse(&json!({"correct": 2, "cutoff_timestamp": 1700000000,
            "prizes": [0, 4], "prize_limits": [1, 2]}))
        .unwrap();
        assert_eq!(m.poll_id, "default");
        assert_eq!(m.prizes, Prizes(vec![(0, 1), (4, 2)]));
        for bad in [
            json!({"correct": 2, "cutoff_timestamp": 1, "prizes": [0], "prize_limits": [1, 2]}),
            json!({"correct": "2", "cutoff_timestamp": 1, "prizes": [0], "prize_limits": [1]}),
            json!({"correct": 2, "prizes": [0], "prize_limits": [1]}),
            json!({"correct": 2, "cutoff_timestamp": 1, "prizes": [10], "prize_limits": [1]}),
            json!({"correct": 2, "cutoff_timestamp": 1, "prizes": [0], "prize_limits": [0]}),
        ] {
            assert!(MarkFromPoll::parse(&bad).is_err(), "{bad}");
        }
        let l =
            MarkFromList::parse(&json!({"users": ["1", "2"], "prizes": [1], "prize_limits": [3]}))
                .unwrap();
        assert_eq!(l.users.len(), 2);
        assert!(
            MarkFromList::parse(&json!({"users": [], "prizes": [1], "prize_limits": [3]})).is_err()
        );
        assert!(
            MarkFromList::parse(&json!({"users": ["a|b"], "prizes": [1], "prize_limits": [3]}))
                .is_err()
        );
        assert_eq!(redeem_slot(&json!({"all_prizes": 2})).unwrap(), 2);
        assert_eq!(redeem_slot(&json!({"prize": 9})).unwrap(), 9);
        assert!(redeem_slot(&json!({"prize": 10})).is_err());
        assert!(redeem_slot(&json!({})).is_err());
    }
}
