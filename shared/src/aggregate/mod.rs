//! Aggregation domain (CONTRACT §4): votes, rankings and accumulated entries.
//! Pure logic only — validation, vote maths, expiry buckets. Storage is the
//! `AggregateStore` port in `store/`.

pub mod accumulate;
pub mod rank;
pub mod trivia;
pub mod vote;
pub mod window;

use crate::error::ApiError;
use crate::ids::{AggregateId, ChannelId, ClientId};

/// Which aggregate an operation targets: per channel, or extension-wide
/// (`scope` None) for ids starting with `global`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AggKey {
    pub client: ClientId,
    pub scope: Option<ChannelId>,
    pub id: String,
}

impl AggKey {
    /// The aggregate `id` as a caller in `channel` names it.
    pub fn for_caller(
        client: &ClientId,
        channel: Option<&ChannelId>,
        id: &AggregateId,
    ) -> Result<Self, ApiError> {
        let scope = if id.is_global() {
            None
        } else {
            Some(
                channel
                    .ok_or_else(|| ApiError::bad_request("this token names no channel"))?
                    .clone(),
            )
        };
        Ok(AggKey {
            client: client.clone(),
            scope,
            id: id.as_str().to_string(),
        })
    }

    /// A short stable name of this aggregate, for a viewer's budget of
    /// distinct polls and rankings (`limits::NEW_AGGREGATES_PER_VIEWER`).
    pub fn fingerprint(&self, kind: &str) -> String {
        let scope = self.scope.as_ref().map(ChannelId::as_str).unwrap_or("");
        let h = crate::hash::stable_hash(&format!("{scope}|{}", self.id));
        format!("{kind}{h:08x}")
    }

    /// An extension-wide aggregate the service itself keeps (trivia tallies).
    /// Its id may contain characters a caller's id cannot, so the two never meet.
    pub fn internal(client: &ClientId, id: String) -> Self {
        AggKey {
            client: client.clone(),
            scope: None,
            id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_ids_are_extension_wide() {
        let c = ClientId::parse("c").unwrap();
        let ch = ChannelId::parse("7").unwrap();
        let k = AggKey::for_caller(&c, Some(&ch), &AggregateId::parse("poll").unwrap()).unwrap();
        assert_eq!(k.scope, Some(ch.clone()));
        let g =
            AggKey::for_caller(&c, Some(&ch), &AggregateId::parse("global-x").unwrap()).unwrap();
        assert_eq!(g.scope, None);
        assert!(AggKey::for_caller(&c, None, &AggregateId::parse("p").unwrap()).is_err());
    }
}
