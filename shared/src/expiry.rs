//! How long each kind of stored item lives after its last write.

const DAY: i64 = 24 * 3600;

/// How long each kind of item lives after its last write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expiry {
    pub state_secs: i64,
    pub config_secs: i64,
    pub json_store_secs: i64,
    pub users_secs: i64,
    /// Votes: a ballot counts for 7 days after it was cast (CONTRACT §4).
    pub votes_secs: i64,
    /// Rank keys and accumulated entries: 24 hours.
    pub rank_secs: i64,
    pub accumulate_secs: i64,
    /// Trivia answers and team membership: as long as state.
    pub trivia_secs: i64,
}

impl Expiry {
    pub fn with_state_days(days: i64) -> Self {
        Expiry {
            state_secs: days * DAY,
            // Configuration is set once and read for months: a year after the last write.
            config_secs: 365 * DAY,
            json_store_secs: days * DAY,
            users_secs: 365 * DAY,
            votes_secs: 7 * DAY,
            rank_secs: DAY,
            accumulate_secs: DAY,
            trivia_secs: days * DAY,
        }
    }
}

impl Default for Expiry {
    fn default() -> Self {
        Self::with_state_days(30)
    }
}
