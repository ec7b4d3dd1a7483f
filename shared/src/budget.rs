//! The time a request has left, so that retries stop in time to answer.
//!
//! On Lambda every invocation has a deadline (the function's timeout); a
//! request still retrying when it passes is killed, and API Gateway answers
//! 5xx while a write of it may have landed. So the HTTP functions run each
//! request [`until`] its invocation's deadline less [`ANSWER_MARGIN`], and
//! every retry loop of the store asks [`may_retry`] before another attempt:
//! it stops, answering 409/503, while a worst-case attempt still fits.
//!
//! The worst case of one attempt is two DynamoDB calls (a read, then a
//! conditional write) and one call after it (an event), each bounded by
//! the SDK's operation timeout on Lambda (`aws.rs`: 1 s per try, 2 s per
//! call). So a function's timeout is [`WORST_CASE`]: [`RETRY_WINDOW`] of
//! retries, then [`ATTEMPT_RESERVE`] and [`ANSWER_MARGIN`] (12 s; the HTTP
//! API gives up at 30 s). Contention retries take well under 2 s, so only a
//! store that hangs ever reaches the window's end. Outside a deadline (the
//! dev server, tests, the fan-out worker) the loops keep their attempt
//! counts alone.

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

/// Time kept between a request's deadline and its invocation's, to send
/// the answer.
pub const ANSWER_MARGIN: Duration = Duration::from_secs(1);
/// Time one more attempt of a retried store operation, and the call after
/// it, take at worst: three calls at the operation timeout of `aws`.
pub const ATTEMPT_RESERVE: Duration = Duration::from_secs(6);
/// Time a request may spend retrying before it must stop.
pub const RETRY_WINDOW: Duration = Duration::from_secs(5);
/// The time an HTTP function needs at worst: its timeout in `template.yaml`.
pub const WORST_CASE: Duration = RETRY_WINDOW
    .saturating_add(ATTEMPT_RESERVE)
    .saturating_add(ANSWER_MARGIN);

tokio::task_local! {
    static DEADLINE: Instant;
}

/// Runs `work` with `deadline` as its request's deadline.
pub async fn until<F: Future>(deadline: Instant, work: F) -> F::Output {
    DEADLINE.scope(deadline, work).await
}

/// Time left before the current request's deadline (None: it has none).
pub fn left() -> Option<Duration> {
    DEADLINE
        .try_with(|d| d.saturating_duration_since(Instant::now()))
        .ok()
}

/// Whether a retried store operation may start another attempt.
pub fn may_retry() -> bool {
    left().is_none_or(|l| l >= ATTEMPT_RESERVE)
}

/// A request's deadline from its invocation's (milliseconds since the
/// epoch, as the Lambda Runtime API gives it), less [`ANSWER_MARGIN`].
pub fn from_invocation_deadline(epoch_ms: u64) -> Instant {
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis() as u64;
    let left = Duration::from_millis(epoch_ms.saturating_sub(now_ms));
    Instant::now() + left.saturating_sub(ANSWER_MARGIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch_ms_in(d: Duration) -> u64 {
        (SystemTime::now().duration_since(UNIX_EPOCH).unwrap() + d).as_millis() as u64
    }

    #[tokio::test]
    async fn retries_stop_while_a_worst_case_attempt_still_fits() {
        assert_eq!(left(), None);
        assert!(may_retry(), "no deadline: attempt counts alone decide");
        // A 12 s invocation: 11 s for the request, retries allowed for 5 s.
        let deadline = from_invocation_deadline(epoch_ms_in(Duration::from_secs(12)));
        until(deadline, async {
            let l = left().unwrap();
            assert!(
                l <= Duration::from_secs(11) && l > Duration::from_secs(10),
                "{l:?}"
            );
            assert!(may_retry());
        })
        .await;
        // 6.5 s before the invocation's deadline: 5.5 s left, too little.
        let late = from_invocation_deadline(epoch_ms_in(Duration::from_millis(6500)));
        until(late, async { assert!(!may_retry()) }).await;
        // A deadline already past leaves nothing, never a negative time.
        let past = from_invocation_deadline(epoch_ms_in(Duration::ZERO).saturating_sub(5000));
        until(past, async { assert_eq!(left(), Some(Duration::ZERO)) }).await;
    }

    /// The HTTP functions' timeout in `template.yaml` (its Globals) is the
    /// worst case a request can take.
    #[test]
    fn the_template_gives_http_functions_the_worst_case() {
        let template = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../template.yaml"));
        let globals = &template[template.find("Globals:").unwrap()..];
        let timeout: u64 = globals
            .lines()
            .find_map(|l| l.trim().strip_prefix("Timeout:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert_eq!(Duration::from_secs(timeout), WORST_CASE);
    }
}
