//! The `state` target's verbs (`schema/state.h`): `get`, `set` and `patch`
//! name their document by `state_id`, `subscribe` and `unsubscribe` by
//! `topic_id` (`schema/subscription.h`); both are `channel` or `extension`.

use serde_json::Value;

use super::envelope::GamelinkError;

/// Which state document a request is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StateTarget {
    Channel,
    Extension,
}

impl StateTarget {
    pub fn as_str(self) -> &'static str {
        match self {
            StateTarget::Channel => "channel",
            StateTarget::Extension => "extension",
        }
    }
}

/// The state document `action` names in its body.
pub fn target_of(action: &str, data: &Value) -> Result<StateTarget, GamelinkError> {
    let field = match action {
        "subscribe" | "unsubscribe" => "topic_id",
        _ => "state_id",
    };
    match data.get(field).and_then(Value::as_str) {
        Some("channel") => Ok(StateTarget::Channel),
        Some("extension") => Ok(StateTarget::Extension),
        _ => Err(GamelinkError::bad_request(format!(
            "{action} state needs {field}: \"channel\" or \"extension\""
        ))),
    }
}

/// Which config a `config` request is about (`schema/game_config.h`): `get`
/// may also ask for both at once (`combined`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigTarget {
    One(StateTarget),
    Combined,
}

/// The config `action` names in its body's `config_id`. `set` and `patch`
/// name none: a game writes its channel's config.
pub fn config_target_of(action: &str, data: &Value) -> Result<ConfigTarget, GamelinkError> {
    if matches!(action, "set" | "patch") {
        return Ok(ConfigTarget::One(StateTarget::Channel));
    }
    match data.get("config_id").and_then(Value::as_str) {
        Some("channel") => Ok(ConfigTarget::One(StateTarget::Channel)),
        Some("extension") => Ok(ConfigTarget::One(StateTarget::Extension)),
        Some("combined") if action == "get" => Ok(ConfigTarget::Combined),
        _ => Err(GamelinkError::bad_request(format!(
            "{action} config needs config_id: \"channel\" or \"extension\"{}",
            if action == "get" {
                " or \"combined\""
            } else {
                ""
            }
        ))),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn targets_are_read_from_the_field_each_verb_uses() {
        assert_eq!(
            target_of("get", &json!({"state_id": "channel"})).unwrap(),
            StateTarget::Channel
        );
        assert_eq!(
            target_of("patch", &json!({"state_id": "extension", "state": []})).unwrap(),
            StateTarget::Extension
        );
        assert_eq!(
            target_of("subscribe", &json!({"topic_id": "channel"})).unwrap(),
            StateTarget::Channel
        );
        // The other verb's field does not count.
        let e = target_of("subscribe", &json!({"state_id": "channel"})).unwrap_err();
        assert!(e.detail.contains("topic_id"), "{}", e.detail);
        assert_eq!(
            target_of("get", &json!({"state_id": "viewer"}))
                .unwrap_err()
                .number,
            400
        );
        assert_eq!(target_of("set", &Value::Null).unwrap_err().number, 400);
        assert_eq!(StateTarget::Extension.as_str(), "extension");
    }

    #[test]
    fn config_targets() {
        let one = |t| ConfigTarget::One(t);
        assert_eq!(
            config_target_of("get", &json!({"config_id": "combined"})).unwrap(),
            ConfigTarget::Combined
        );
        assert_eq!(
            config_target_of("subscribe", &json!({"config_id": "extension"})).unwrap(),
            one(StateTarget::Extension)
        );
        assert_eq!(
            config_target_of("set", &json!({"config": {}})).unwrap(),
            one(StateTarget::Channel)
        );
        let e = config_target_of("subscribe", &json!({"config_id": "combined"})).unwrap_err();
        assert!(!e.detail.contains("combined"), "{}", e.detail);
        assert_eq!(config_target_of("get", &json!({})).unwrap_err().number, 400);
    }
}
