//! Failures tests inject into a store, to show what a crash at the worst
//! moment does. The knobs exist only with the `testing` feature; without it
//! this is an empty type whose checks are always false, so no Lambda carries
//! them.

/// Injected failures of one store (shared by its clones).
#[derive(Debug, Default)]
pub struct Faults {
    #[cfg(feature = "testing")]
    redeem_crashes: std::sync::atomic::AtomicUsize,
    #[cfg(feature = "testing")]
    append_crashes: std::sync::atomic::AtomicUsize,
    #[cfg(feature = "testing")]
    lost_doc_answers: std::sync::atomic::AtomicUsize,
    #[cfg(feature = "testing")]
    lost_vote_races: std::sync::atomic::AtomicUsize,
    /// 0: off; else 1 + the BatchWriteItem calls that still succeed.
    #[cfg(feature = "testing")]
    batch_writes_left: std::sync::atomic::AtomicUsize,
}

impl Faults {
    /// The next `n` redeems fail right after taking a code and before
    /// recording it for the user.
    #[cfg(feature = "testing")]
    pub fn crash_redeems_after_claim(&self, n: usize) {
        self.redeem_crashes
            .store(n, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether this redeem should crash now (one atomic load when unused).
    #[cfg(feature = "testing")]
    pub(crate) fn take_redeem_crash(&self) -> bool {
        use std::sync::atomic::Ordering;
        self.redeem_crashes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    #[cfg(not(feature = "testing"))]
    pub(crate) fn take_redeem_crash(&self) -> bool {
        false
    }

    /// The next `n` appends (on DynamoDB) die right after taking the slot's
    /// append lock, before writing or releasing anything.
    #[cfg(feature = "testing")]
    pub fn crash_appends_after_lock(&self, n: usize) {
        self.append_crashes
            .store(n, std::sync::atomic::Ordering::SeqCst);
    }

    #[cfg(feature = "testing")]
    pub(crate) fn take_append_crash(&self) -> bool {
        use std::sync::atomic::Ordering;
        self.append_crashes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    #[cfg(not(feature = "testing"))]
    pub(crate) fn take_append_crash(&self) -> bool {
        false
    }

    /// The next `n` document updates (on DynamoDB) are applied, and then
    /// their answer is lost: the store sees a failed condition, as when the
    /// SDK retries a write whose first try landed but timed out.
    #[cfg(feature = "testing")]
    pub fn lose_doc_write_answers(&self, n: usize) {
        self.lost_doc_answers
            .store(n, std::sync::atomic::Ordering::SeqCst);
    }

    #[cfg(feature = "testing")]
    pub(crate) fn take_lost_doc_answer(&self) -> bool {
        use std::sync::atomic::Ordering;
        self.lost_doc_answers
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    #[cfg(not(feature = "testing"))]
    pub(crate) fn take_lost_doc_answer(&self) -> bool {
        false
    }

    /// After `n` more BatchWriteItem calls (on DynamoDB), every one fails,
    /// as when a function runs out of time in the middle of a large delete.
    #[cfg(feature = "testing")]
    pub fn fail_batch_writes_after(&self, n: usize) {
        self.batch_writes_left
            .store(n + 1, std::sync::atomic::Ordering::SeqCst);
    }

    #[cfg(feature = "testing")]
    pub(crate) fn take_batch_write_failure(&self) -> bool {
        use std::sync::atomic::Ordering;
        let left = self
            .batch_writes_left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n > 1).then(|| n - 1)
            });
        // Err(1): armed and used up; Err(0): off.
        left == Err(1)
    }

    #[cfg(not(feature = "testing"))]
    pub(crate) fn take_batch_write_failure(&self) -> bool {
        false
    }

    /// The next `n` vote attempts (on DynamoDB) lose their race, as when
    /// other voters' transactions keep winning: the vote retries.
    #[cfg(feature = "testing")]
    pub fn lose_vote_races(&self, n: usize) {
        self.lost_vote_races
            .store(n, std::sync::atomic::Ordering::SeqCst);
    }

    #[cfg(feature = "testing")]
    pub(crate) fn take_lost_vote_race(&self) -> bool {
        use std::sync::atomic::Ordering;
        self.lost_vote_races
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    #[cfg(not(feature = "testing"))]
    pub(crate) fn take_lost_vote_race(&self) -> bool {
        false
    }
}
