//! Fixed-window limits on what one caller (or one channel) may do, and the
//! budgets medkit enforces with them. Each budget has a key of its own; the
//! stores count uses per key and window (see `store::LimitStore`).

use crate::error::ApiError;

/// At most `max` uses in each window of `window_secs` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub max: u32,
    pub window_secs: i64,
}

impl Limit {
    /// The start of the window `now` falls in (both adapters count by it).
    pub fn window(&self, now: i64) -> i64 {
        now - now.rem_euclid(self.window_secs)
    }

    /// Seconds from `now` until its window ends (when a refused caller may retry).
    pub fn seconds_left(&self, now: i64) -> i64 {
        self.window_secs - now.rem_euclid(self.window_secs)
    }

    /// The 429 for a spent budget: what was refused, and when to retry.
    pub fn refusal(&self, what: &str, now: i64) -> ApiError {
        ApiError::RateLimited(format!(
            "more than {} {what} in {}; try again in {} s",
            self.max,
            span(self.window_secs),
            self.seconds_left(now)
        ))
    }
}

fn span(secs: i64) -> String {
    match secs {
        s if s % 3600 == 0 => format!("{} hour{}", s / 3600, if s == 3600 { "" } else { "s" }),
        s if s % 60 == 0 => format!("{} minutes", s / 60),
        s => format!("{s} seconds"),
    }
}

/// Broadcasts per budget (a channel's senders, the extension, one viewer's
/// own whispers): 100 per 5 minutes.
pub const SENDS: Limit = Limit {
    max: 100,
    window_secs: 300,
};

/// Messages to Twitch's Extension PubSub per extension and channel (and
/// for `global`, per extension): Twitch's own limit, 100 per minute.
pub const TWITCH_MESSAGES: Limit = Limit {
    max: 100,
    window_secs: 60,
};

/// Wrong PINs one broadcaster may enter per PIN lifetime (5 minutes).
pub const PIN_FAILURES_PER_CHANNEL: Limit = Limit {
    max: 5,
    window_secs: 300,
};

/// Wrong PINs the whole extension may see per PIN lifetime, however many
/// broadcasters guess: so every live PIN faces at most this many guesses.
pub const PIN_FAILURES_PER_EXTENSION: Limit = Limit {
    max: 100,
    window_secs: 300,
};

/// Datastream posts per channel per minute (each up to
/// `gamelink::datastream::MAX_EVENTS` events), whoever posts them.
pub const DATASTREAM_POSTS_PER_CHANNEL: Limit = Limit {
    max: 600,
    window_secs: 60,
};

/// Datastream posts one viewer may make per minute.
pub const DATASTREAM_POSTS_PER_VIEWER: Limit = Limit {
    max: 30,
    window_secs: 60,
};

/// Entries one viewer may add to one accumulate id per minute.
pub const ENTRIES_PER_VIEWER: Limit = Limit {
    max: 10,
    window_secs: 60,
};

/// Polls and rankings one viewer may start taking part in per hour (a first
/// vote, a first rank key; changing one's vote is free).
pub const NEW_AGGREGATES_PER_VIEWER: Limit = Limit {
    max: 50,
    window_secs: 3600,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_and_refusals() {
        assert_eq!(SENDS.window(601), 600);
        assert_eq!(SENDS.seconds_left(601), 299);
        let e = NEW_AGGREGATES_PER_VIEWER.refusal("new polls or rankings", 3601);
        assert_eq!(
            e.to_string(),
            "more than 50 new polls or rankings in 1 hour; try again in 3599 s"
        );
        assert!(SENDS.refusal("sends", 0).to_string().contains("5 minutes"));
    }
}
