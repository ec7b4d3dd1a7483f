//! How both adapters lay data out: partition and sort keys, item kinds, and
//! how a code set is cut into chunks. One module, so the DynamoDB table and
//! the embedded file hold the same keys. Every partition key starts with the
//! extension's client id; ids never contain `|` (see `ids`), which separates
//! the parts.

use crate::aggregate::AggKey;
use crate::ids::{ChannelId, ClientId, JsonKey, ViewerId};

/// Sort key of items that are alone in their partition.
pub const SINGLE: &str = "-";

/// Which JSON document a store operation targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocKey {
    pk: String,
}

impl DocKey {
    fn new(client: &ClientId, kind: &str, rest: &[&str]) -> Self {
        let mut pk = format!("{client}|{kind}");
        for part in rest {
            pk.push('|');
            pk.push_str(part);
        }
        DocKey { pk }
    }
    pub fn extension_state(c: &ClientId) -> Self {
        Self::new(c, "xs", &[])
    }
    pub fn channel_state(c: &ClientId, ch: &ChannelId) -> Self {
        Self::new(c, "cs", &[ch.as_str()])
    }
    pub fn viewer_state(c: &ClientId, ch: &ChannelId, v: &ViewerId) -> Self {
        Self::new(c, "vs", &[ch.as_str(), v.as_str()])
    }
    pub fn extension_viewer_state(c: &ClientId, v: &ViewerId) -> Self {
        Self::new(c, "xv", &[v.as_str()])
    }
    pub fn hidden_state(c: &ClientId) -> Self {
        Self::new(c, "hs", &[])
    }
    pub fn extension_config(c: &ClientId) -> Self {
        Self::new(c, "xc", &[])
    }
    pub fn channel_config(c: &ClientId, ch: &ChannelId) -> Self {
        Self::new(c, "cc", &[ch.as_str()])
    }
    /// `channel` is None for `global…` keys, which are extension-wide.
    pub fn json_store(c: &ClientId, ch: Option<&ChannelId>, key: &JsonKey) -> Self {
        match ch {
            Some(ch) => Self::new(c, "js", &[ch.as_str(), key.as_str()]),
            None => Self::new(c, "jg", &[key.as_str()]),
        }
    }
    /// Every trivia question of the extension (≤ 64), one document.
    pub fn trivia_questions(c: &ClientId) -> Self {
        Self::new(c, "tq", &[])
    }
    /// A viewer's trivia answers, `{question: option}`.
    pub fn trivia_answers(c: &ClientId, v: &ViewerId) -> Self {
        Self::new(c, "ta", &[v.as_str()])
    }
    /// A channel's broadcaster's trivia answers (for the leaderboard).
    pub fn trivia_broadcaster(c: &ClientId, ch: &ChannelId) -> Self {
        Self::new(c, "tb", &[ch.as_str()])
    }
    /// A GameLink poll's definition (its votes are the vote aggregate of
    /// the same id in the channel).
    pub fn game_poll(c: &ClientId, ch: &ChannelId, poll: &str) -> Self {
        Self::new(c, "gp", &[ch.as_str(), poll])
    }
    /// A GameLink match: its channels (`gamelink::matches::Match`).
    pub fn game_match(c: &ClientId, id: &str) -> Self {
        Self::new(c, "gx", &[id])
    }
    /// A match poll's own record (`gamelink::matches::MatchPoll`); each
    /// channel's part is that channel's [`DocKey::game_poll`].
    pub fn game_match_poll(c: &ClientId, id: &str, poll: &str) -> Self {
        Self::new(c, "gy", &[id, poll])
    }
    /// A channel's game metadata (GameLink `set gameMetadata`).
    pub fn game_metadata(c: &ClientId, ch: &ChannelId) -> Self {
        Self::new(c, "gm", &[ch.as_str()])
    }
    pub fn partition_key(&self) -> &str {
        &self.pk
    }
}

/// `<client>|<kind>|<channel or empty>|<id>`: the partition of one kind of
/// item (see [`agg_kinds`]) of an aggregate.
pub fn aggregate_partition(agg: &AggKey, kind: &str) -> String {
    let scope = agg.scope.as_ref().map(ChannelId::as_str).unwrap_or("");
    format!("{}|{kind}|{scope}|{}", agg.client, agg.id)
}

/// Keys of the code family, shared by both adapters.
pub mod code_keys {
    use crate::ids::{ClientId, UserId};
    /// Set metadata; sort key = slot.
    pub fn sets(c: &ClientId) -> String {
        format!("{c}|sets")
    }
    pub fn slot_sk(slot: usize) -> String {
        format!("{slot}")
    }
    /// Chunks of one generation of a set; sort key = chunk number.
    pub fn chunks(c: &ClientId, slot: usize, generation: &str) -> String {
        format!("{c}|chunks|{slot}|{generation}")
    }
    pub fn chunk_sk(n: usize) -> String {
        format!("{n:06}")
    }
    /// A user's standings; sort key = `<slot>|<generation>`.
    pub fn standing(c: &ClientId, u: &UserId) -> String {
        format!("{c}|prize|{u}")
    }
    pub fn standing_sk(slot: usize, generation: &str) -> String {
        format!("{slot}|{generation}")
    }
    /// Code values the extension handed out, whatever set they came from;
    /// sort key = the code. Spread over 16 partitions by the code's hash.
    pub fn given(c: &ClientId, code: &str) -> String {
        format!("{c}|given|{}", crate::hash::stable_hash(code) % 16)
    }
}

/// Partition kinds of the aggregate family, shared by both adapters.
pub mod agg_kinds {
    /// Vote sums (DynamoDB: one item per shard; embedded: one record).
    pub const VOTE_SUMS: &str = "vs";
    /// Ballots, sort key = voter.
    pub const BALLOTS: &str = "vb";
    /// Rank key holders, sort key = voter.
    pub const RANK_HOLDERS: &str = "rh";
    /// Rank counts, sort key = `<bucket>|<key>`.
    pub const RANK_COUNTS: &str = "rc";
    /// Accumulated entries, sort key = `<ms>|<random>`.
    pub const ENTRIES: &str = "ac";
    /// A poll's generation (DynamoDB only; see `store::dynamo::generation`).
    pub const VOTE_HEAD: &str = "vg";
    /// A ranking's generation (DynamoDB only).
    pub const RANK_HEAD: &str = "rg";
}

/// Sort key of a rank count: the bucket, zero-padded so keys sort by bucket.
pub fn rank_count_sk(bucket: i64, key: &str) -> String {
    format!("{bucket:012}|{key}")
}

pub fn parse_rank_count_sk(sk: &str) -> Option<(i64, &str)> {
    let (b, key) = sk.split_once('|')?;
    Some((b.parse().ok()?, key))
}

/// Sort key of an accumulated entry: time first, so ranges select by time.
pub fn entry_sk(observed_ms: i64) -> String {
    format!("{observed_ms:013}|{}", crate::random::token_id(6))
}

/// Partition keys of the auth family, shared by both adapters.
pub mod auth_keys {
    use crate::ids::{ChannelId, ClientId};
    pub fn users(c: &ClientId) -> String {
        format!("{c}|users")
    }
    pub fn pin(c: &ClientId, pin: &str) -> String {
        format!("{c}|pin|{pin}")
    }
    /// A GameLink PIN (a broadcaster's, for a game to enter).
    pub fn game_pin(c: &ClientId, pin: &str) -> String {
        format!("{c}|gamepin|{pin}")
    }
    pub fn pin_token(c: &ClientId, token_id: &str) -> String {
        format!("{c}|pintoken|{token_id}")
    }
    pub fn pin_channel(c: &ClientId, ch: &ChannelId) -> String {
        format!("{c}|pinchannel|{ch}")
    }
}

/// Purchases: one item per transaction id (the exactly-once guard, with
/// the record), and the same record in the channel's partition (listing,
/// state changes) under the transaction id.
pub mod purchase_keys {
    use crate::ids::{ChannelId, ClientId};
    pub fn transaction(c: &ClientId, id: &str) -> String {
        format!("{c}|tx|{id}")
    }
    pub fn channel(c: &ClientId, ch: &ChannelId) -> String {
        format!("{c}|txch|{ch}")
    }
}

/// Codes per stored chunk: 1000 × < 64 bytes stays far below DynamoDB's
/// 400 KB item limit, and one chunk read serves 1000 redeems.
pub const CHUNK_CODES: usize = 1000;

/// Where code `index` of a set is stored: (chunk number, position in it).
pub fn chunk_of(index: usize) -> (usize, usize) {
    (index / CHUNK_CODES, index % CHUNK_CODES)
}

/// A chunk as stored: its codes, one per line (codes never contain one).
pub fn encode_chunk(codes: &[String]) -> String {
    codes.join("\n")
}

pub fn decode_chunk(text: &str) -> Vec<&str> {
    text.split('\n').collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::AggregateId;

    #[test]
    fn aggregate_partitions_name_their_scope() {
        let c = ClientId::parse("c").unwrap();
        let ch = ChannelId::parse("7").unwrap();
        let k = AggKey::for_caller(&c, Some(&ch), &AggregateId::parse("poll").unwrap()).unwrap();
        assert_eq!(aggregate_partition(&k, "vt"), "c|vt|7|poll");
        let g =
            AggKey::for_caller(&c, Some(&ch), &AggregateId::parse("global-x").unwrap()).unwrap();
        assert_eq!(aggregate_partition(&g, "vt"), "c|vt||global-x");
    }

    #[test]
    fn chunks_round_trip() {
        assert_eq!(chunk_of(0), (0, 0));
        assert_eq!(chunk_of(1999), (1, 999));
        let codes = vec!["a".to_string(), "b c".to_string()];
        assert_eq!(decode_chunk(&encode_chunk(&codes)), vec!["a", "b c"]);
    }
}
