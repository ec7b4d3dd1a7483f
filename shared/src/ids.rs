//! Identifier newtypes, validated once at the edge so the rest of the code and
//! every storage key can trust them.

use std::fmt;

use crate::error::ApiError;

/// Longest id we accept anywhere. Twitch ids are short; this bounds key sizes.
pub const MAX_ID_LEN: usize = 128;

fn check(kind: &str, s: &str) -> Result<(), ApiError> {
    if s.is_empty() {
        return Err(ApiError::bad_request(format!("{kind} is empty")));
    }
    if s.len() > MAX_ID_LEN {
        return Err(ApiError::bad_request(format!(
            "{kind} is longer than {MAX_ID_LEN} characters"
        )));
    }
    // `|` separates the parts of storage keys; control characters have no business in ids.
    if s.chars().any(|c| c == '|' || c.is_control()) {
        return Err(ApiError::bad_request(format!(
            "{kind} contains a '|' or a control character"
        )));
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub fn parse(s: impl Into<String>) -> Result<Self, ApiError> {
                let s = s.into();
                check($kind, &s)?;
                Ok(Self(s))
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }
    };
}

id_type!(
    /// A Twitch extension's client id; every storage key starts with it.
    ClientId, "client id"
);
id_type!(
    /// A Twitch channel id.
    ChannelId, "channel id"
);
id_type!(
    /// Who a viewer is to the stores: the Twitch user id when shared, else the opaque id.
    ViewerId, "viewer id"
);
id_type!(
    /// A Twitch user id (shared identity).
    UserId, "user id"
);
id_type!(
    /// A JSON-store key (`json_store?id=`). Keys starting `global` are extension-wide.
    JsonKey, "json store id"
);

id_type!(
    /// A poll, ranking or accumulate id (`vote?id=`). Ids starting `global`
    /// are extension-wide.
    AggregateId, "id"
);

id_type!(
    /// A WebSocket connection, as API Gateway (or the dev server) names it.
    ConnectionId, "connection id"
);

impl ConnectionId {
    /// The id as logs show it: its first four characters. A connection id is
    /// all it takes to post to that connection through the Management API
    /// (on AWS with IAM credentials, on the dev server with none), so logs
    /// never carry it whole.
    pub fn redacted(&self) -> String {
        let head: String = self.0.chars().take(4).collect();
        format!("{head}…")
    }
}

impl AggregateId {
    pub fn is_global(&self) -> bool {
        self.0.starts_with("global")
    }

    /// The `id` query parameter, `default` when absent or empty.
    pub fn from_query(raw: Option<&str>) -> Result<Self, ApiError> {
        Self::parse(raw.filter(|s| !s.is_empty()).unwrap_or("default"))
    }
}

impl JsonKey {
    pub fn is_global(&self) -> bool {
        self.0.starts_with("global")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_reject_separators_and_bounds() {
        assert!(ChannelId::parse("12345").is_ok());
        assert!(ChannelId::parse("").is_err());
        assert!(ChannelId::parse("a|b").is_err());
        assert!(ChannelId::parse("a\nb").is_err());
        assert!(ChannelId::parse("x".repeat(MAX_ID_LEN)).is_ok());
        assert!(ChannelId::parse("x".repeat(MAX_ID_LEN + 1)).is_err());
    }

    #[test]
    fn global_json_keys() {
        assert!(JsonKey::parse("global-scores").unwrap().is_global());
        assert!(!JsonKey::parse("scores").unwrap().is_global());
    }
}
