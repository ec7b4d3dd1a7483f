//! The datastream (`schema/datastream.h`): events any role of a channel
//! posts (`POST /v1/e/datastream`) reach the channel's games that
//! subscribed to `datastream`, as `{events: [{event, timestamp}]}`, in the
//! order they were posted (one update per post, its events in order).

use serde_json::{Value, json};

use super::envelope::{Meta, reply};
use super::push::Push;
use crate::error::ApiError;
use crate::ids::ChannelId;
use crate::realtime::subscription::Subscription;

/// Events one post may carry.
pub const MAX_EVENTS: usize = 100;
/// Largest post (its events as JSON), well inside one pushed frame.
pub const MAX_POST_BYTES: usize = 32 * 1024;
/// The topic games subscribe to.
pub const TOPIC: &str = "datastream";

/// The events of a post: `{"events": [e, …]}` or `{"event": e}`.
pub fn events_of(body: &Value) -> Result<Vec<Value>, ApiError> {
    let events = match (body.get("events"), body.get("event")) {
        (Some(Value::Array(list)), None) => list.clone(),
        (None, Some(one)) => vec![one.clone()],
        _ => {
            return Err(ApiError::bad_request(
                "the body is {\"event\": <any JSON>} or {\"events\": [<any JSON>, …]}",
            ));
        }
    };
    if events.is_empty() || events.len() > MAX_EVENTS {
        return Err(ApiError::bad_request(format!(
            "a post carries 1 to {MAX_EVENTS} events"
        )));
    }
    crate::documents::check_size(
        &Value::Array(events.clone()),
        MAX_POST_BYTES,
        "a datastream post",
    )?;
    Ok(events)
}

/// The update a post pushes to the channel's subscribed games.
pub fn update(channel: &ChannelId, events: Vec<Value>, now_ms: i64) -> Push {
    let events: Vec<Value> = events
        .into_iter()
        .map(|event| json!({"event": event, "timestamp": now_ms}))
        .collect();
    Push {
        to: Subscription::channel(channel, TOPIC),
        frame: reply(&Meta::update(TOPIC), &json!({ "events": events }), now_ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posts_are_one_event_or_a_list() {
        assert_eq!(
            events_of(&json!({"event": {"a": 1}})).unwrap(),
            vec![json!({"a": 1})]
        );
        assert_eq!(events_of(&json!({"events": [1, "two"]})).unwrap().len(), 2);
        for bad in [
            json!({}),
            json!({"events": []}),
            json!({"events": 3}),
            json!({"event": 1, "events": [2]}),
            json!({"events": vec![0; MAX_EVENTS + 1]}),
            json!({"event": "x".repeat(MAX_POST_BYTES)}),
        ] {
            assert!(events_of(&bad).is_err(), "{bad}");
        }
        let ch = ChannelId::parse("9").unwrap();
        let p = update(&ch, vec![json!("hi")], 42);
        let v: Value = serde_json::from_str(&p.frame).unwrap();
        assert_eq!(v["meta"]["target"], "datastream");
        assert_eq!(
            v["data"],
            json!({"events": [{"event": "hi", "timestamp": 42}]})
        );
        assert_eq!(p.to, Subscription::channel(&ch, "datastream"));
    }
}
