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
}
