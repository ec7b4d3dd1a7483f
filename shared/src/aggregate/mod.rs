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

    /// An extension-wide aggregate the service itself keeps (trivia tallies).
    /// Its id may contain characters a caller's id cannot, so the two never meet.
    pub fn internal(client: &ClientId, id: String) -> Self {
        AggKey {
            client: client.clone(),
            scope: None,
            id,
        }
    }

    /// `<client>|<kind>|<channel or empty>|<id>`: the storage partition of
    /// one kind of item of this aggregate. Ids never contain `|`.
    pub fn partition(&self, kind: &str) -> String {
        let scope = self.scope.as_ref().map(ChannelId::as_str).unwrap_or("");
        format!("{}|{kind}|{scope}|{}", self.client, self.id)
    }
}

/// Stable 32-bit FNV-1a: picks a viewer's shard. It must never change between
/// releases (stored items are found through it), unlike std's hasher.
pub fn stable_hash(s: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in s.bytes() {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_ids_are_extension_wide() {
        let c = ClientId::parse("c").unwrap();
        let ch = ChannelId::parse("7").unwrap();
        let k = AggKey::for_caller(&c, Some(&ch), &AggregateId::parse("poll").unwrap()).unwrap();
        assert_eq!(k.partition("vt"), "c|vt|7|poll");
        let g =
            AggKey::for_caller(&c, Some(&ch), &AggregateId::parse("global-x").unwrap()).unwrap();
        assert_eq!(g.partition("vt"), "c|vt||global-x");
        assert!(AggKey::for_caller(&c, None, &AggregateId::parse("p").unwrap()).is_err());
    }

    #[test]
    fn stable_hash_is_fnv1a() {
        // Published FNV-1a test vectors: these must never change.
        assert_eq!(stable_hash(""), 0x811c_9dc5);
        assert_eq!(stable_hash("a"), 0xe40c_292c);
        assert_eq!(stable_hash("foobar"), 0xbf9c_f968);
    }
}
