//! Expiry buckets. An aggregate's items expire some time after the write that
//! made them, but counters are shared by many writes. So every contribution
//! is filed under an *expiry bucket*: its expiry instant rounded up to a
//! multiple of `ttl / 8`. A ballot and its share of the counters carry the
//! same bucket, so they expire at the same instant, and a reader simply
//! ignores buckets that have passed. The counts therefore always equal what
//! the live ballots add up to, however long a poll runs; a contribution lives
//! between `ttl` and `ttl · 9/8` after its write.

/// Buckets per time-to-live: at most this many + 1 are live at once.
pub const BUCKETS_PER_TTL: i64 = 8;

/// The bucket (an epoch second, also its expiry) of a write at `now`.
pub fn expiry_bucket(now: i64, ttl_secs: i64) -> i64 {
    let width = (ttl_secs / BUCKETS_PER_TTL).max(1);
    ((now + ttl_secs) / width + 1) * width
}

/// Whether a bucket has not expired yet.
pub fn is_live(bucket: i64, now: i64) -> bool {
    bucket > now
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_round_expiry_up_within_an_eighth() {
        let ttl = 7 * 24 * 3600;
        for now in [0, 1, 75_599, 75_600, 1_764_000_123] {
            let b = expiry_bucket(now, ttl);
            assert!(b > now + ttl, "{now}");
            assert!(b <= now + ttl + ttl / 8, "{now}");
            assert_eq!(b % (ttl / 8), 0);
            assert!(is_live(b, now + ttl));
            assert!(!is_live(b, b));
        }
        // Writes close in time share a bucket.
        assert_eq!(expiry_bucket(100, 800), expiry_bucket(101, 800));
    }
}
