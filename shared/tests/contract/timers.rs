//! The SQS timer queue against an SQS emulator (moto, started by
//! infra/scripts/test.sh): a timer sent with its delay is not received
//! before it, arrives after it with the body the timers function reads,
//! and one due beyond SQS's 15 minutes is sent with the longest delay.

use std::time::{Duration, Instant};

use aws_sdk_sqs::types::QueueAttributeName;
use medkit::aggregate::AggKey;
use medkit::clock::now_ms;
use medkit::delivery::sqs::SqsTimers;
use medkit::delivery::timers::{Due, Timer, TimerQueue};
use medkit::ids::{ChannelId, ClientId};

const ENDPOINT_VAR: &str = "MEDKIT_TEST_SQS_ENDPOINT";
const REQUIRE_VAR: &str = "MEDKIT_REQUIRE_SQS";

/// A fresh queue on the emulator and a client of it; None (after saying
/// so) when no emulator is configured.
async fn queue(test: &str) -> Option<(aws_sdk_sqs::Client, String, aws_types::SdkConfig)> {
    let Some(endpoint) = std::env::var(ENDPOINT_VAR).ok().filter(|e| !e.is_empty()) else {
        if std::env::var(REQUIRE_VAR).is_ok_and(|v| v == "1") {
            panic!("{REQUIRE_VAR}=1 but {ENDPOINT_VAR} is not set");
        }
        eprintln!("SQS TEST NOT RUN: {test} (set {ENDPOINT_VAR}, or run infra/scripts/test.sh)");
        return None;
    };
    let conf = medkit::aws::local_config(&endpoint);
    let client = aws_sdk_sqs::Client::new(&conf);
    let name = format!("timers-{}", medkit::random::token_id(8));
    let url = client
        .create_queue()
        .queue_name(name)
        .send()
        .await
        .expect("create a queue on the emulator")
        .queue_url
        .expect("a queue URL");
    Some((client, url, conf))
}

async fn receive(client: &aws_sdk_sqs::Client, url: &str) -> Vec<aws_sdk_sqs::types::Message> {
    client
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
        .send()
        .await
        .expect("receive")
        .messages
        .unwrap_or_default()
}

fn timer() -> Timer {
    Timer::VoteFigures(AggKey {
        client: ClientId::parse("client").unwrap(),
        scope: Some(ChannelId::parse("10").unwrap()),
        id: "poll1".into(),
    })
}

#[tokio::test]
async fn a_timer_waits_in_the_queue_until_due() {
    let Some((client, url, conf)) = queue("a_timer_waits_in_the_queue_until_due").await else {
        return;
    };
    let timers = SqsTimers::from_conf(&conf, &url);
    let due = Due::after(now_ms(), 2_000, timer());
    let sent = Instant::now();
    timers.enqueue(&due).await.expect("send the timer");
    assert!(
        receive(&client, &url).await.is_empty(),
        "delivered before its delay"
    );
    let mut got = Vec::new();
    while got.is_empty() && sent.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        got = receive(&client, &url).await;
    }
    assert!(
        sent.elapsed() >= Duration::from_millis(1_900),
        "{:?}",
        sent.elapsed()
    );
    assert_eq!(got.len(), 1, "one message");
    let body = got[0].body().expect("a body");
    assert_eq!(Due::decode(body).unwrap(), due);
}

#[tokio::test]
async fn a_timer_beyond_fifteen_minutes_is_sent_with_the_longest_delay() {
    let Some((client, url, conf)) = queue("a_timer_beyond_fifteen_minutes").await else {
        return;
    };
    let timers = SqsTimers::from_conf(&conf, &url);
    let due = Due::after(now_ms(), 3 * 3_600_000, timer());
    timers.enqueue(&due).await.expect("send the timer");
    // Waiting, not visible: one delayed message.
    let attrs = client
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .expect("queue attributes");
    let delayed = attrs
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::ApproximateNumberOfMessagesDelayed))
        .cloned();
    assert_eq!(delayed.as_deref(), Some("1"));
    assert!(receive(&client, &url).await.is_empty());
}

#[tokio::test]
async fn an_unreachable_queue_is_an_error_not_a_hang() {
    let conf = medkit::aws::local_config("http://127.0.0.1:9");
    let timers = SqsTimers::from_conf(&conf, "http://127.0.0.1:9/000000000000/timers");
    let started = Instant::now();
    let out = timers.enqueue(&Due::after(now_ms(), 1_000, timer())).await;
    assert!(out.is_err());
    assert!(started.elapsed() < Duration::from_secs(30));
}
