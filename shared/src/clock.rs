//! The wall clock, in the units every stored expiry and token uses.

/// Current time in seconds since the epoch.
pub fn now_secs() -> i64 {
    now_ms() / 1000
}

/// Current time in milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
