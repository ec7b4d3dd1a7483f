//! Store ports (traits saying what the domain needs) and their two adapters:
//! DynamoDB for production, redb embedded for the dev server and tests.
//!
//! Storage layout shared by both adapters: every item has a partition key
//! `pk` starting with the extension's client id, a sort key `sk`, and an
//! `expires_at` (epoch seconds, DynamoDB TTL). Readers ignore expired items
//! because TTL deletion is lazy.

pub mod codec;
pub mod dynamo;
pub mod embedded;
mod live;

use std::future::Future;

use serde_json::Value;

use crate::aggregate::AggKey;
use crate::aggregate::accumulate::Entry;
use crate::aggregate::vote::{Ballot, Sums};
use crate::codes::{RedeemError, SetInfo, SetUpload, Standing};
use crate::error::{ApiError, StoreError};
use crate::ids::{ChannelId, ClientId, ConnectionId, JsonKey, UserId, ViewerId};
use crate::realtime::Connection;
use crate::realtime::fanout::Job;

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
    pub fn partition_key(&self) -> &str {
        &self.pk
    }
}

/// JSON documents: state, config and the JSON store.
pub trait DocumentStore: Send + Sync + 'static {
    /// One document, `None` when absent or expired.
    fn get_doc(
        &self,
        key: &DocKey,
    ) -> impl Future<Output = Result<Option<Value>, StoreError>> + Send;

    /// One document as the JSON text it was stored as: the hot path of a
    /// polled GET, which would otherwise parse and re-serialize it.
    fn get_doc_text(
        &self,
        key: &DocKey,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// Several documents in one go, in the order of `keys`.
    fn get_docs(
        &self,
        keys: &[DocKey],
    ) -> impl Future<Output = Result<Vec<Option<Value>>, StoreError>> + Send;

    /// Replaces a document; it expires `ttl_secs` after this write.
    fn put_doc(
        &self,
        key: &DocKey,
        doc: &Value,
        ttl_secs: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Atomic read-modify-write: `change` gets the current document (None when
    /// absent) and returns the new one, or an error that leaves it unchanged.
    /// `change` may run more than once under contention.
    fn update_doc<F>(
        &self,
        key: &DocKey,
        ttl_secs: i64,
        change: F,
    ) -> impl Future<Output = Result<Value, ApiError>> + Send
    where
        F: FnMut(Option<Value>) -> Result<Value, ApiError> + Send + 'static;
}

/// What a PIN resolves to when it is claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedPin {
    pub token_id: String,
}

/// Identity bookkeeping: users who shared identity, and the PIN flow.
pub trait AuthStore: Send + Sync + 'static {
    /// Records that `user` shared identity with the extension (idempotent).
    fn remember_user(
        &self,
        client: &ClientId,
        user: &UserId,
        ttl_secs: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Up to `limit` user ids in id order, strictly after `after`.
    fn list_users(
        &self,
        client: &ClientId,
        after: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;

    /// Stores a new PIN for a token; false when that PIN is already live.
    fn create_pin(
        &self,
        client: &ClientId,
        pin: &str,
        token_id: &str,
        ttl_secs: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Consumes a live PIN and binds its token to `channel` until `token_expires_at`.
    fn claim_pin(
        &self,
        client: &ClientId,
        pin: &str,
        channel: &ChannelId,
        token_expires_at: i64,
    ) -> impl Future<Output = Result<Option<ClaimedPin>, StoreError>> + Send;

    /// The channel a PIN-issued token was bound to, if it is bound and not revoked.
    fn pin_token_channel(
        &self,
        client: &ClientId,
        token_id: &str,
    ) -> impl Future<Output = Result<Option<ChannelId>, StoreError>> + Send;

    /// Whether the channel has any live PIN-issued token.
    fn channel_has_pin_tokens(
        &self,
        client: &ClientId,
        channel: &ChannelId,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Revokes every PIN-issued token of the channel; returns how many.
    fn revoke_pin_tokens(
        &self,
        client: &ClientId,
        channel: &ChannelId,
    ) -> impl Future<Output = Result<usize, StoreError>> + Send;
}

/// Votes, rankings and accumulated entries (CONTRACT §4). Every change of a
/// ballot or rank key is atomic with the counters it moves, so the counters
/// always equal what the live ballots add up to.
pub trait AggregateStore: Send + Sync + 'static {
    /// Stores `ballot` as its voter's only ballot in the poll (replacing any
    /// earlier one) and returns the poll's live sums including it.
    fn cast_vote(
        &self,
        poll: &AggKey,
        ballot: Ballot,
    ) -> impl Future<Output = Result<Sums, StoreError>> + Send;

    /// The poll's live sums, and `voter`'s live ballot when asked for.
    fn vote_totals(
        &self,
        poll: &AggKey,
        voter: Option<&ViewerId>,
    ) -> impl Future<Output = Result<(Sums, Option<Ballot>), StoreError>> + Send;

    /// Every live ballot of the poll (vote logs, marking winners).
    fn ballots(
        &self,
        poll: &AggKey,
    ) -> impl Future<Output = Result<Vec<Ballot>, StoreError>> + Send;

    /// Removes the poll: ballots and sums.
    fn delete_poll(&self, poll: &AggKey) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Makes `key` the voter's key in the ranking (expiring in `bucket`);
    /// returns the key the voter held before, if any.
    fn set_rank_key(
        &self,
        rank: &AggKey,
        voter: &ViewerId,
        key: &str,
        bucket: i64,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// The key the voter holds, if any.
    fn rank_key(
        &self,
        rank: &AggKey,
        voter: &ViewerId,
    ) -> impl Future<Output = Result<Option<String>, StoreError>> + Send;

    /// Live count per key (unsorted; parts of one key may come separately).
    fn rank_counts(
        &self,
        rank: &AggKey,
    ) -> impl Future<Output = Result<Vec<(String, i64)>, StoreError>> + Send;

    /// Removes the ranking: holders and counts.
    fn delete_rank(&self, rank: &AggKey) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Adds an entry to `acc` (its channel's scope); it expires at `expires_at`.
    fn add_entry(
        &self,
        acc: &AggKey,
        entry: &Entry,
        expires_at: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Live entries observed after `start` (ms), newest first, at most `limit`.
    /// `acc.scope` None reads every channel's entries.
    fn entries(
        &self,
        acc: &AggKey,
        start: i64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Entry>, StoreError>> + Send;
}

/// Game-code sets, eligibility and redemption (CONTRACT §5). A redeem hands
/// out the next code of the set exactly once, whatever the concurrency and
/// even if the request dies half way (see each adapter).
pub trait CodeStore: Send + Sync + 'static {
    /// Replaces the set of `set.slot` (a new generation, nothing handed out).
    fn put_set(
        &self,
        client: &ClientId,
        set: &SetUpload,
        expires_at: i64,
    ) -> impl Future<Output = Result<SetInfo, StoreError>> + Send;

    /// Adds codes to the existing set of `slot` (None when there is none);
    /// 400 when the set would reach 1,000,000 codes.
    fn append_codes(
        &self,
        client: &ClientId,
        slot: usize,
        codes: &[String],
    ) -> impl Future<Output = Result<Option<SetInfo>, ApiError>> + Send;

    /// The live sets, by slot.
    fn sets(
        &self,
        client: &ClientId,
    ) -> impl Future<Output = Result<Vec<SetInfo>, StoreError>> + Send;

    /// Removes every set; returns what they were.
    fn delete_sets(
        &self,
        client: &ClientId,
    ) -> impl Future<Output = Result<Vec<SetInfo>, StoreError>> + Send;

    /// Raises each user's cap for each (set, cap) to at least that cap.
    fn raise_caps(
        &self,
        client: &ClientId,
        users: &[UserId],
        caps: &[(SetInfo, u32)],
        expires_at: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The user's standing for each of `sets`, in order.
    fn standings(
        &self,
        client: &ClientId,
        user: &UserId,
        sets: &[SetInfo],
    ) -> impl Future<Output = Result<Vec<Standing>, StoreError>> + Send;

    /// Hands the user the next code of `slot`; returns it and every code
    /// the user now holds from that set.
    fn redeem(
        &self,
        client: &ClientId,
        user: &UserId,
        slot: usize,
    ) -> impl Future<Output = Result<(String, Vec<String>), RedeemError>> + Send;
}

/// Open WebSocket connections (real-time delivery) and the send rate limit.
/// Readers skip connections past `expires_at`.
pub trait ConnectionStore: Send + Sync + 'static {
    fn add_connection(&self, c: &Connection)
    -> impl Future<Output = Result<(), StoreError>> + Send;
    /// Forgets a connection; the record it had, if any.
    fn remove_connection(
        &self,
        id: &ConnectionId,
    ) -> impl Future<Output = Result<Option<Connection>, StoreError>> + Send;
    fn channel_connections(
        &self,
        client: &ClientId,
        channel: &ChannelId,
    ) -> impl Future<Output = Result<Vec<ConnectionId>, StoreError>> + Send;
    /// A viewer's connections on any channel, by opaque id or Twitch user id.
    fn viewer_connections(
        &self,
        client: &ClientId,
        viewer: &ViewerId,
    ) -> impl Future<Output = Result<Vec<Connection>, StoreError>> + Send;
    /// The connections of one extension-wide part (see `realtime::shard_of`).
    fn shard_connections(
        &self,
        client: &ClientId,
        shard: u32,
    ) -> impl Future<Output = Result<Vec<ConnectionId>, StoreError>> + Send;
    /// Records one send by `scope` (a channel, or `*` for extension-wide) in
    /// the current rate window; false, recording nothing, when it is full.
    fn count_send(
        &self,
        client: &ClientId,
        scope: &str,
        now: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// Hands fan-out jobs to workers that run each on its own; false when
    /// this store has no workers (the caller runs the jobs itself).
    fn queue_jobs(&self, jobs: &[Job]) -> impl Future<Output = Result<bool, StoreError>> + Send;
}

/// Failures tests can inject into a store, to show what a crash at the worst
/// moment does. Costs one atomic load per redeem when unused.
#[derive(Debug, Default)]
pub struct Faults {
    redeem_crashes: std::sync::atomic::AtomicUsize,
}

impl Faults {
    /// The next `n` redeems fail right after taking a code and before
    /// recording it for the user.
    pub fn crash_redeems_after_claim(&self, n: usize) {
        self.redeem_crashes
            .store(n, std::sync::atomic::Ordering::SeqCst);
    }

    pub(crate) fn take_redeem_crash(&self) -> bool {
        use std::sync::atomic::Ordering;
        self.redeem_crashes
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

/// Everything a deployment's store provides.
pub trait Store:
    DocumentStore + AuthStore + AggregateStore + CodeStore + ConnectionStore + Clone
{
}
impl<T: DocumentStore + AuthStore + AggregateStore + CodeStore + ConnectionStore + Clone> Store
    for T
{
}

/// Keys of the code family, shared by both adapters.
pub(crate) mod code_keys {
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
}

/// Partition kinds of the aggregate family, shared by both adapters.
pub(crate) mod agg_kinds {
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
}

/// Sort key of a rank count: the bucket, zero-padded so keys sort by bucket.
pub(crate) fn rank_count_sk(bucket: i64, key: &str) -> String {
    format!("{bucket:012}|{key}")
}

pub(crate) fn parse_rank_count_sk(sk: &str) -> Option<(i64, &str)> {
    let (b, key) = sk.split_once('|')?;
    Some((b.parse().ok()?, key))
}

/// Sort key of an accumulated entry: time first, so ranges select by time.
pub(crate) fn entry_sk(observed_ms: i64) -> String {
    format!("{observed_ms:013}|{}", crate::random::token_id(6))
}

/// Partition keys of the auth family, shared by both adapters.
pub(crate) mod auth_keys {
    use super::*;
    pub fn users(c: &ClientId) -> String {
        format!("{c}|users")
    }
    pub fn pin(c: &ClientId, pin: &str) -> String {
        format!("{c}|pin|{pin}")
    }
    pub fn pin_token(c: &ClientId, token_id: &str) -> String {
        format!("{c}|pintoken|{token_id}")
    }
    pub fn pin_channel(c: &ClientId, ch: &ChannelId) -> String {
        format!("{c}|pinchannel|{ch}")
    }
}
