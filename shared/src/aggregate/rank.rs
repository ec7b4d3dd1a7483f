//! Rankings: each viewer holds one key; a key's score is how many viewers
//! hold it. Stored as a holder per viewer plus counters per (bucket, key).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::ApiError;

/// Longest rank key accepted, in bytes.
pub const MAX_KEY_BYTES: usize = 128;
/// How many keys `GET rank` returns.
pub const TOP: usize = 100;

/// The key a viewer holds, with the expiry bucket it counts in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub key: String,
    pub bucket: i64,
}

/// The `key` of a `POST rank` body.
pub fn parse_key(body: &Value) -> Result<String, ApiError> {
    let key = match body.get("key") {
        None | Some(Value::Null) => return Err(ApiError::bad_request("key is required")),
        Some(Value::String(s)) => s,
        Some(_) => return Err(ApiError::bad_request("key must be a string")),
    };
    check_key(key)?;
    Ok(key.clone())
}

pub fn check_key(key: &str) -> Result<(), ApiError> {
    if key.is_empty() {
        return Err(ApiError::bad_request("key is empty"));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(ApiError::bad_request(format!(
            "key is longer than {MAX_KEY_BYTES} bytes"
        )));
    }
    if key.chars().any(char::is_control) {
        return Err(ApiError::bad_request("key contains a control character"));
    }
    Ok(())
}

/// Sums per-key counts (several shards or buckets may hold parts of one
/// key's count), drops keys nobody holds, and sorts by score, then key.
pub fn top_scores(
    parts: impl IntoIterator<Item = (String, i64)>,
    limit: usize,
) -> Vec<(String, i64)> {
    let mut totals: std::collections::HashMap<String, i64> = Default::default();
    for (key, n) in parts {
        *totals.entry(key).or_default() += n;
    }
    let mut out: Vec<(String, i64)> = totals.into_iter().filter(|(_, n)| *n > 0).collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    out.truncate(limit);
    out
}

/// `GET rank` body.
pub fn rank_data(scores: &[(String, i64)]) -> Value {
    let data: Vec<Value> = scores
        .iter()
        .map(|(key, score)| json!({"key": key, "score": score}))
        .collect();
    json!({ "data": data })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_validated() {
        assert_eq!(parse_key(&json!({"key": "pizza"})).unwrap(), "pizza");
        for bad in [
            json!({}),
            json!({"key": ""}),
            json!({"key": 5}),
            json!({"key": "a\nb"}),
            json!({"key": "x".repeat(MAX_KEY_BYTES + 1)}),
        ] {
            assert!(parse_key(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn scores_merge_and_sort() {
        let parts = vec![
            ("b".to_string(), 2),
            ("a".to_string(), 1),
            ("b".to_string(), -1),
            ("c".to_string(), 3),
            ("a".to_string(), 0),
            ("d".to_string(), 1),
            ("e".to_string(), 1),
            ("e".to_string(), -1),
        ];
        let top = top_scores(parts, 3);
        assert_eq!(top, vec![("c".into(), 3), ("a".into(), 1), ("b".into(), 1)]);
    }
}
