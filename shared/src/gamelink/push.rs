//! Updates medkit pushes to subscribed games, in the library's shapes
//! (`schema/state.h`, `schema/game_config.h`): `meta.action` is `update`,
//! `meta.request_id` the library's id for updates, and `meta.target` what
//! the library dispatches on.

use serde_json::{Value, json};

use super::envelope::{MAX_FRAME_BYTES, Meta, reply};
use super::state::StateTarget;
use crate::ids::ChannelId;
use crate::realtime::subscription::Subscription;

/// One update and who receives it.
#[derive(Debug, Clone, PartialEq)]
pub struct Push {
    pub to: Subscription,
    pub frame: String,
}

/// An update of `target` with `data` for `to`, if its frame fits one
/// WebSocket frame (API Gateway's 128 KB); one that does not is logged and
/// not sent (the figures it would carry can be read with `get`).
pub fn fitting(to: Subscription, target: &str, data: &Value, now_ms: i64) -> Option<Push> {
    let frame = reply(&Meta::update(target), data, now_ms);
    if frame.len() > MAX_FRAME_BYTES {
        tracing::warn!(bytes = frame.len(), target, "update too large to push");
        return None;
    }
    Some(Push { to, frame })
}

/// The topic of a state document's subscribers.
pub fn state_topic(target: StateTarget) -> String {
    format!("state:{}", target.as_str())
}

/// The topic of a config document's subscribers.
pub fn config_topic(target: StateTarget) -> String {
    format!("config:{}", target.as_str())
}

fn to(target: StateTarget, channel: Option<&ChannelId>, topic: String) -> Option<Subscription> {
    match (target, channel) {
        (StateTarget::Channel, Some(ch)) => Some(Subscription::channel(ch, topic)),
        (StateTarget::Channel, None) => None,
        (StateTarget::Extension, _) => Some(Subscription::extension(topic)),
    }
}

/// A state document's new value: target `channel` or `extension` (the
/// library dispatches `channel`), `{topic_id, state}`.
pub fn state_update(
    target: StateTarget,
    channel: Option<&ChannelId>,
    state: &Value,
    now_ms: i64,
) -> Option<Push> {
    let data = json!({"topic_id": target.as_str(), "state": state});
    Some(Push {
        to: to(target, channel, state_topic(target))?,
        frame: reply(&Meta::update(target.as_str()), &data, now_ms),
    })
}

/// A config document's new value: target `config`, `{config, config_id}`.
pub fn config_update(
    target: StateTarget,
    channel: Option<&ChannelId>,
    config: &Value,
    now_ms: i64,
) -> Option<Push> {
    let data = json!({"config": config, "config_id": target.as_str()});
    Some(Push {
        to: to(target, channel, config_topic(target))?,
        frame: reply(&Meta::update("config"), &data, now_ms),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_have_the_librarys_targets() {
        let ch = ChannelId::parse("42").unwrap();
        let p = state_update(StateTarget::Channel, Some(&ch), &json!({"a": 1}), 7).unwrap();
        assert_eq!(p.to, Subscription::channel(&ch, "state:channel"));
        let v: Value = serde_json::from_str(&p.frame).unwrap();
        assert_eq!(v["meta"]["target"], "channel");
        assert_eq!(v["meta"]["action"], "update");
        assert_eq!(v["data"], json!({"topic_id": "channel", "state": {"a": 1}}));
        let p = config_update(StateTarget::Extension, None, &json!({}), 7).unwrap();
        assert_eq!(p.to, Subscription::extension("config:extension"));
        let v: Value = serde_json::from_str(&p.frame).unwrap();
        assert_eq!(v["meta"]["target"], "config");
        assert_eq!(v["data"]["config_id"], "extension");
        assert!(state_update(StateTarget::Channel, None, &json!({}), 1).is_none());
    }
}
