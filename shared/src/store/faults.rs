//! Failures tests inject into a store, to show what a crash at the worst
//! moment does. The knobs exist only with the `testing` feature; without it
//! this is an empty type whose checks are always false, so no Lambda carries
//! them.

#[cfg(feature = "testing")]
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

/// Injected failures of one store (shared by its clones).
#[derive(Debug, Default)]
pub struct Faults {
    #[cfg(feature = "testing")]
    redeem_crashes: AtomicUsize,
    #[cfg(feature = "testing")]
    append_crashes: AtomicUsize,
    #[cfg(feature = "testing")]
    lost_doc_answers: AtomicUsize,
    #[cfg(feature = "testing")]
    lost_vote_races: AtomicUsize,
    #[cfg(feature = "testing")]
    purchase_crashes: AtomicUsize,
    /// 0: off; else 1 + the BatchWriteItem calls that still succeed.
    #[cfg(feature = "testing")]
    batch_writes_left: AtomicUsize,
}

/// A knob that makes the next `n` operations of a kind fail: `$arm(n)` for
/// tests, `$take()` (one atomic update when unused) for the store.
macro_rules! countdown {
    ($(#[$doc:meta])* $arm:ident, $take:ident, $field:ident) => {
        impl Faults {
            $(#[$doc])*
            #[cfg(feature = "testing")]
            pub fn $arm(&self, n: usize) {
                self.$field.store(n, SeqCst);
            }

            /// Whether this operation should fail now.
            #[cfg(feature = "testing")]
            pub(crate) fn $take(&self) -> bool {
                self.$field
                    .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
                    .is_ok()
            }

            #[cfg(not(feature = "testing"))]
            pub(crate) fn $take(&self) -> bool {
                false
            }
        }
    };
}

countdown!(
    /// The next `n` redeems fail right after taking a code and before
    /// recording it for the user.
    crash_redeems_after_claim,
    take_redeem_crash,
    redeem_crashes
);
countdown!(
    /// The next `n` appends (on DynamoDB) die right after taking the slot's
    /// append lock, before writing or releasing anything.
    crash_appends_after_lock,
    take_append_crash,
    append_crashes
);
countdown!(
    /// The next `n` document updates (on DynamoDB) are applied, and then
    /// their answer is lost: the store sees a failed condition, as when the
    /// SDK retries a write whose first try landed but timed out.
    lose_doc_write_answers,
    take_lost_doc_answer,
    lost_doc_answers
);
countdown!(
    /// The next `n` vote attempts (on DynamoDB) lose their race, as when
    /// other voters' transactions keep winning: the vote retries.
    lose_vote_races,
    take_lost_vote_race,
    lost_vote_races
);

countdown!(
    /// The next `n` purchase recordings are made durable, and then the
    /// process dies before anything else happens (its answer, the push to
    /// the games): the store answers with an error.
    crash_purchases_after_record,
    take_purchase_crash,
    purchase_crashes
);

impl Faults {
    /// After `n` more BatchWriteItem calls (on DynamoDB), every one fails,
    /// as when a function runs out of time in the middle of a large delete.
    #[cfg(feature = "testing")]
    pub fn fail_batch_writes_after(&self, n: usize) {
        self.batch_writes_left.store(n + 1, SeqCst);
    }

    #[cfg(feature = "testing")]
    pub(crate) fn take_batch_write_failure(&self) -> bool {
        let left = self
            .batch_writes_left
            .fetch_update(SeqCst, SeqCst, |n| (n > 1).then(|| n - 1));
        // Err(1): armed and used up; Err(0): off.
        left == Err(1)
    }

    #[cfg(not(feature = "testing"))]
    pub(crate) fn take_batch_write_failure(&self) -> bool {
        false
    }
}
