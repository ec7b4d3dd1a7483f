//! The send-rate limit: sends per scope (a channel, or the extension) per
//! fixed window. Both adapters count in the same windows.

/// Sends per channel per window (429 past it).
pub const SENDS_PER_WINDOW: u32 = 100;
pub const RATE_WINDOW_SECS: i64 = 300;

/// The start of the rate window `now` falls in (both adapters key counts by it).
pub fn rate_window(now: i64) -> i64 {
    now - now.rem_euclid(RATE_WINDOW_SECS)
}

/// Seconds from `now` until its window ends (when a refused sender may retry).
pub fn seconds_left(now: i64) -> i64 {
    RATE_WINDOW_SECS - now.rem_euclid(RATE_WINDOW_SECS)
}
