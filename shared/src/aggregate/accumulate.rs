//! Accumulated entries: small JSON payloads collected from viewers, read back
//! newest first by the broadcaster (own channel) or the extension (all).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::ApiError;

/// Largest accepted entry, serialized.
pub const MAX_ENTRY_BYTES: usize = 256;
/// Most entries one `GET accumulate` returns (the newest ones).
pub const MAX_ENTRIES: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// When it was received, epoch milliseconds.
    pub observed: i64,
    pub channel_id: String,
    pub opaque_user_id: String,
    /// "" when the viewer did not share identity.
    pub user_id: String,
    /// The entry as JSON text (already validated, at most 256 bytes).
    pub data: String,
}

/// The body of `POST accumulate`, serialized and size-checked.
pub fn entry_data(body: &Value) -> Result<String, ApiError> {
    let text = serde_json::to_string(body).map_err(|_| ApiError::bad_request("invalid JSON"))?;
    if text.len() > MAX_ENTRY_BYTES {
        return Err(ApiError::bad_request(format!(
            "an accumulate entry is at most {MAX_ENTRY_BYTES} bytes of JSON; this one is {}",
            text.len()
        )));
    }
    Ok(text)
}

/// `start` (ms) of `GET accumulate`: absent, empty or `undefined` (what the
/// official client sends without one) mean 0.
pub fn parse_start(raw: Option<&str>) -> Result<i64, ApiError> {
    match raw.map(str::trim) {
        None | Some("") | Some("undefined") | Some("null") => Ok(0),
        Some(s) => s
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite() && *f >= 0.0)
            .map(|f| f as i64)
            .ok_or_else(|| {
                ApiError::bad_request("start must be a time in milliseconds since the epoch")
            }),
    }
}

/// `before` (ms) of `GET accumulate`, to page back past the newest
/// [`MAX_ENTRIES`]: entries observed strictly before it. Absent (or empty,
/// `undefined`): no bound.
pub fn parse_before(raw: Option<&str>) -> Result<Option<i64>, ApiError> {
    match raw.map(str::trim) {
        None | Some("") | Some("undefined") | Some("null") => Ok(None),
        Some(_) => parse_start(raw).map(Some).map_err(|_| {
            ApiError::bad_request("before must be a time in milliseconds since the epoch")
        }),
    }
}

/// `GET accumulate` body: entries newest first; `latest` is the newest
/// entry's time (or `start` when there is none), the next call's `start`.
pub fn accumulate_data(entries: &[Entry], start: i64) -> Value {
    let latest = entries.first().map(|e| e.observed).unwrap_or(start);
    let data: Vec<Value> = entries
        .iter()
        .map(|e| {
            json!({
                "observed": e.observed,
                "channel_id": e.channel_id,
                "opaque_user_id": e.opaque_user_id,
                "user_id": e.user_id,
                "data": serde_json::from_str::<Value>(&e.data).unwrap_or(Value::Null),
            })
        })
        .collect();
    json!({ "latest": latest, "data": data })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_bounded() {
        assert_eq!(entry_data(&json!({"a": 1})).unwrap(), r#"{"a":1}"#);
        assert!(entry_data(&json!("x".repeat(MAX_ENTRY_BYTES - 2))).is_ok());
        assert!(entry_data(&json!("x".repeat(MAX_ENTRY_BYTES - 1))).is_err());
    }

    #[test]
    fn start_is_lenient_about_undefined() {
        assert_eq!(parse_start(None).unwrap(), 0);
        assert_eq!(parse_start(Some("undefined")).unwrap(), 0);
        assert_eq!(
            parse_start(Some("1700000000000")).unwrap(),
            1_700_000_000_000
        );
        assert!(parse_start(Some("soon")).is_err());
        assert!(parse_start(Some("-5")).is_err());
    }
}
