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

    /// Every lifetime at most `secs` (the dev server's soak flag).
    pub fn capped(self, secs: i64) -> Self {
        Expiry {
            state_secs: self.state_secs.min(secs),
            config_secs: self.config_secs.min(secs),
            json_store_secs: self.json_store_secs.min(secs),
            users_secs: self.users_secs.min(secs),
            votes_secs: self.votes_secs.min(secs),
            rank_secs: self.rank_secs.min(secs),
            accumulate_secs: self.accumulate_secs.min(secs),
            trivia_secs: self.trivia_secs.min(secs),
        }
    }
}

impl Default for Expiry {
    fn default() -> Self {
        Self::with_state_days(30)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cap_shortens_every_lifetime_and_lengthens_none() {
        let e = Expiry::default().capped(60);
        assert_eq!(e.state_secs, 60);
        assert_eq!(e.config_secs, 60);
        assert_eq!(e.votes_secs, 60);
        assert_eq!(e.accumulate_secs, 60);
        assert_eq!(Expiry::default().capped(i64::MAX), Expiry::default());
    }
}
