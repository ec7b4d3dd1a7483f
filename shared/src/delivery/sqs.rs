//! The [`TimerQueue`] on AWS: an SQS queue with delayed messages.
//!
//! SQS delays a message by at most 15 minutes; a timer due later is sent
//! with the longest delay and sent again by the timers function when it
//! arrives early (`timers::receive`), so any moment is reachable with no
//! polling loop and no schedule to clean up.

use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::DisplayErrorContext;

use super::timers::{Due, TimerFuture, TimerQueue};
use crate::error::StoreError;

/// SQS's longest message delay, in seconds.
pub const MAX_DELAY_SECS: i64 = 900;

/// The delay to send `due` with at `now_ms`: the time left, rounded up to a
/// whole second (a timer never fires early because of rounding), at most
/// [`MAX_DELAY_SECS`].
pub fn delay_secs(due: &Due, now_ms: i64) -> i32 {
    let left_ms = (due.at_ms - now_ms).max(0);
    ((left_ms + 999) / 1000).min(MAX_DELAY_SECS) as i32
}

pub struct SqsTimers {
    client: Client,
    queue_url: String,
}

impl SqsTimers {
    /// The queue at `queue_url`, through the SDK configuration a Lambda
    /// built at init. When that configuration overrides the endpoint (a
    /// local emulator), the queue URL's own origin is the SQS endpoint.
    pub fn from_conf(conf: &aws_types::SdkConfig, queue_url: &str) -> Self {
        let mut builder = aws_sdk_sqs::config::Builder::from(conf);
        if conf.endpoint_url().is_some() {
            builder = builder.endpoint_url(origin(queue_url));
        }
        SqsTimers {
            client: Client::from_conf(builder.build()),
            queue_url: queue_url.to_string(),
        }
    }
}

/// `scheme://host[:port]` of a URL.
fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map(|i| i + 3).unwrap_or(0);
    match url[after_scheme..].find('/') {
        Some(i) => &url[..after_scheme + i],
        None => url,
    }
}

impl TimerQueue for SqsTimers {
    fn enqueue<'a>(&'a self, due: &'a Due) -> TimerFuture<'a> {
        Box::pin(async move {
            self.client
                .send_message()
                .queue_url(&self.queue_url)
                .message_body(due.encode())
                .delay_seconds(delay_secs(due, crate::clock::now_ms()))
                .send()
                .await
                .map(|_| ())
                .map_err(|e| StoreError::Unavailable(DisplayErrorContext(&e).to_string()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::AggKey;
    use crate::delivery::timers::Timer;
    use crate::ids::ClientId;

    fn due(at_ms: i64) -> Due {
        Due {
            at_ms,
            timer: Timer::VoteFigures(AggKey {
                client: ClientId::parse("c").unwrap(),
                scope: None,
                id: "global-p".into(),
            }),
        }
    }

    #[test]
    fn delays_round_up_and_stop_at_fifteen_minutes() {
        assert_eq!(delay_secs(&due(10_000), 10_000), 0);
        assert_eq!(delay_secs(&due(9_000), 10_000), 0, "already due");
        assert_eq!(delay_secs(&due(10_001), 10_000), 1);
        assert_eq!(delay_secs(&due(15_000), 10_000), 5);
        assert_eq!(delay_secs(&due(10_000 + 3_600_000), 10_000), 900);
    }

    #[test]
    fn a_queue_url_names_its_endpoint() {
        assert_eq!(
            origin("http://127.0.0.1:5000/123456789012/timers"),
            "http://127.0.0.1:5000"
        );
        assert_eq!(
            origin("https://sqs.us-east-1.amazonaws.com/1/q"),
            "https://sqs.us-east-1.amazonaws.com"
        );
        assert_eq!(origin("http://h:1"), "http://h:1");
    }
}
