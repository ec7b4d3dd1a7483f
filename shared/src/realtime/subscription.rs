//! What a game subscribes to, and how the store names it. A subscription is
//! a scope (a channel, or the whole extension) and a topic; the store finds
//! a topic's subscribers by [`Subscription::key`] in one query.

use crate::ids::{ChannelId, ClientId};

/// Whose updates.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    Channel(ChannelId),
    Extension,
}

/// Longest topic accepted (`poll:` and a poll id).
pub const MAX_TOPIC: usize = 160;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Subscription {
    pub scope: Scope,
    /// `state:channel`, `state:extension`, `config:channel`,
    /// `config:extension`, `poll:<id>`, `datastream`, …
    pub topic: String,
}

impl Subscription {
    pub fn channel(channel: &ChannelId, topic: impl Into<String>) -> Self {
        Subscription {
            scope: Scope::Channel(channel.clone()),
            topic: topic.into(),
        }
    }

    pub fn extension(topic: impl Into<String>) -> Self {
        Subscription {
            scope: Scope::Extension,
            topic: topic.into(),
        }
    }

    /// `<channel>|<topic>`, or `*|<topic>` extension-wide (channel ids have
    /// no `|` and are never `*`).
    pub fn encode(&self) -> String {
        match &self.scope {
            Scope::Channel(ch) => format!("{ch}|{}", self.topic),
            Scope::Extension => format!("*|{}", self.topic),
        }
    }

    pub fn decode(text: &str) -> Option<Self> {
        let (scope, topic) = text.split_once('|')?;
        if topic.is_empty() || topic.len() > MAX_TOPIC {
            return None;
        }
        let scope = match scope {
            "*" => Scope::Extension,
            ch => Scope::Channel(ChannelId::parse(ch).ok()?),
        };
        Some(Subscription {
            scope,
            topic: topic.to_string(),
        })
    }

    /// The store's key of this topic's subscribers: `<client>|sub|<encoded>`.
    pub fn key(&self, client: &ClientId) -> String {
        format!("{client}|sub|{}", self.encode())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_survive_their_text_form() {
        let ch = ChannelId::parse("42").unwrap();
        for s in [
            Subscription::channel(&ch, "state:channel"),
            Subscription::extension("config:extension"),
            Subscription::channel(&ch, "poll:a|b"),
        ] {
            assert_eq!(Subscription::decode(&s.encode()), Some(s.clone()));
        }
        assert_eq!(
            Subscription::channel(&ch, "datastream").key(&ClientId::parse("c").unwrap()),
            "c|sub|42|datastream"
        );
        assert_eq!(Subscription::decode("42|"), None);
        assert_eq!(Subscription::decode("nobar"), None);
    }
}
