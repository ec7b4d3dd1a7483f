//! The store ports: one trait per data family, saying what the domain needs
//! (`cast_vote`, `redeem`, …), never generic get/put. They speak
//! [`StoreError`] or a domain error (`RedeemError`, `AppendError`, or the
//! error a caller's closure returns). Two adapters implement every port,
//! file for file: [`dynamo`] (production) and `embedded` (redb, for
//! `medkit serve` and tests; feature `embedded`). [`layout`] is how both lay
//! data out (keys, item kinds, code chunks); [`codec`] how both store a JSON
//! document.
//!
//! Every item has a partition key starting with the extension's client id, a
//! sort key, and an `expires_at` (epoch seconds, DynamoDB TTL). Readers
//! ignore expired items because TTL deletion is lazy.

pub mod codec;
pub mod dynamo;
#[cfg(feature = "embedded")]
pub mod embedded;
mod faults;
pub mod layout;

use std::future::Future;

use serde_json::Value;

pub use faults::Faults;
pub use layout::DocKey;

use crate::aggregate::AggKey;
use crate::aggregate::accumulate::Entry;
use crate::aggregate::vote::{Ballot, Sums};
use crate::codes::{AppendError, RedeemError, SetInfo, SetUpload, Standing};
use crate::error::StoreError;
use crate::gamelink::session::Session;
use crate::ids::{ChannelId, ClientId, ConnectionId, UserId, ViewerId};
use crate::limits::Limit;
use crate::purchases::{Purchase, State as PurchaseState};
use crate::realtime::Connection;
use crate::realtime::job::Job;
use crate::realtime::subscription::Subscription;

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

    /// Removes a document (absent is fine).
    fn delete_doc(&self, key: &DocKey) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Atomic read-modify-write: `change` gets the current document (None when
    /// absent) and returns the new one, or its own error, which leaves the
    /// document unchanged and is returned as it is. `change` may run more
    /// than once under contention.
    fn update_doc<F, E>(
        &self,
        key: &DocKey,
        ttl_secs: i64,
        change: F,
    ) -> impl Future<Output = Result<Value, E>> + Send
    where
        F: FnMut(Option<Value>) -> Result<Value, E> + Send + 'static,
        E: From<StoreError> + Send + 'static;

    /// Read-modify-writes of several documents, all or nothing: `change(i,
    /// current)` returns the new document of `keys[i]`; when any call fails,
    /// or the documents would exceed `documents::MAX_ATOMIC_BYTES` stored
    /// (`TooLarge`), nothing is written. Keys are distinct, at most
    /// `documents::MAX_ATOMIC_IDS`. `change` may run again under contention.
    fn update_docs<F, E>(
        &self,
        keys: &[DocKey],
        ttl_secs: i64,
        change: F,
    ) -> impl Future<Output = Result<Vec<Value>, E>> + Send
    where
        F: FnMut(usize, Option<Value>) -> Result<Value, E> + Send + 'static,
        E: From<StoreError> + Send + 'static;
}

/// What a PIN resolves to when it is claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedPin {
    pub token_id: String,
}

/// What a GameLink PIN resolves to when a game claims it: the PIN-issued
/// token it binds (the game's refresh token) and the broadcaster's channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedGamePin {
    pub token_id: String,
    pub channel: ChannelId,
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

    /// Stores a GameLink PIN a broadcaster asked for: it will bind `token_id`
    /// to `channel` when a game claims it. False when that PIN is live.
    fn create_game_pin(
        &self,
        client: &ClientId,
        pin: &str,
        channel: &ChannelId,
        token_id: &str,
        ttl_secs: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Consumes a live GameLink PIN (once: a second claim finds nothing) and
    /// binds its token to its channel until `token_expires_at`, as
    /// `claim_pin` does, so `pin_token_channel` resolves it and
    /// `revoke_pin_tokens` revokes it.
    fn claim_game_pin(
        &self,
        client: &ClientId,
        pin: &str,
        token_expires_at: i64,
    ) -> impl Future<Output = Result<Option<ClaimedGamePin>, StoreError>> + Send;

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

    /// Live entries observed after `start` and, when given, before `before`
    /// (ms), newest first, at most `limit`. `acc.scope` None reads every
    /// channel's entries.
    fn entries(
        &self,
        acc: &AggKey,
        start: i64,
        before: Option<i64>,
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
    /// refused when the set would reach 1,000,000 codes or another append to
    /// the slot is under way. An append naming a `part` the set already
    /// took adds nothing and answers the set as it is (a retried request).
    fn append_codes(
        &self,
        client: &ClientId,
        slot: usize,
        codes: &[String],
        part: Option<&str>,
    ) -> impl Future<Output = Result<Option<SetInfo>, AppendError>> + Send;

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

/// Open WebSocket connections (real-time delivery) and fan-out jobs.
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
    /// The channel's connections made with PIN-issued tokens.
    fn pin_connections(
        &self,
        client: &ClientId,
        channel: &ChannelId,
    ) -> impl Future<Output = Result<Vec<ConnectionId>, StoreError>> + Send;
    /// The connections of one extension-wide part (see `realtime::shard_of`).
    fn shard_connections(
        &self,
        client: &ClientId,
        shard: u32,
    ) -> impl Future<Output = Result<Vec<ConnectionId>, StoreError>> + Send;
    /// Hands fan-out jobs to workers that run each on its own; false when
    /// this store has no workers (the caller runs the jobs itself).
    fn queue_jobs(&self, jobs: &[Job]) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Records a GameLink session (a game's connection), replacing the
    /// record of that id: on open, and again when it logs in. A session is
    /// not a viewer's connection: channel and extension-wide sends never
    /// reach it, only the topics it subscribes to. `remove_connection`
    /// forgets it with its subscriptions.
    fn put_session(&self, s: &Session) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The live session of a connection, if it is one.
    fn session(
        &self,
        id: &ConnectionId,
    ) -> impl Future<Output = Result<Option<Session>, StoreError>> + Send;

    /// Adds a subscription to a logged-in session (idempotent); false,
    /// recording nothing, when the session holds
    /// `gamelink::session::MAX_SUBSCRIPTIONS` others already (or is gone).
    fn subscribe(
        &self,
        s: &Session,
        sub: &Subscription,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Removes a subscription (absent is fine).
    fn unsubscribe(
        &self,
        s: &Session,
        sub: &Subscription,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The live sessions subscribed to `sub`.
    fn subscribers(
        &self,
        client: &ClientId,
        sub: &Subscription,
    ) -> impl Future<Output = Result<Vec<ConnectionId>, StoreError>> + Send;
}

/// Fixed-window budgets (`limits`): broadcasts, wrong PINs. DynamoDB keeps
/// the counters in the connections table; the embedded store in memory
/// (they are per process there, like its sockets).
pub trait LimitStore: Send + Sync + 'static {
    /// Records one use of the budget `key` under `limit` in the window of
    /// `now`; false, recording nothing, when that window's budget is spent.
    fn spend(
        &self,
        client: &ClientId,
        key: &str,
        limit: Limit,
        now: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Records that the budget `key`'s window has seen `item` (a poll a
    /// viewer takes part in); false, recording nothing, when the window
    /// already holds `limit.max` distinct items and `item` is not one of
    /// them. Seeing an item again is free.
    fn spend_distinct(
        &self,
        client: &ClientId,
        key: &str,
        item: &str,
        limit: Limit,
        now: i64,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Gives back one use `spend` recorded in the window of `now` (an
    /// attempt that turned out right counts no more).
    fn refund(
        &self,
        client: &ClientId,
        key: &str,
        limit: Limit,
        now: i64,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// What became of a purchase's recording.
#[derive(Debug, Clone, PartialEq)]
pub enum Recorded {
    /// Recorded now.
    New(Purchase),
    /// Its transaction id was recorded before: that record, unchanged.
    Known(Purchase),
}

/// What became of a change of a purchase's state.
#[derive(Debug, Clone, PartialEq)]
pub enum Moved {
    /// Changed: the purchase after it.
    Done(Purchase),
    /// In none of the states it could move from: the purchase as it is.
    Refused(Purchase),
    /// No such purchase in the channel.
    Absent,
}

/// Bits purchases (`purchases`): each recorded once per transaction id and
/// extension, kept [`crate::purchases::KEEP_SECS`], listed per channel.
pub trait PurchaseStore: Send + Sync + 'static {
    /// Records `p` unless its transaction id is known to the extension.
    fn record_purchase(
        &self,
        client: &ClientId,
        p: &Purchase,
    ) -> impl Future<Output = Result<Recorded, StoreError>> + Send;

    /// A channel's purchase by transaction id.
    fn purchase(
        &self,
        client: &ClientId,
        channel: &ChannelId,
        id: &str,
    ) -> impl Future<Output = Result<Option<Purchase>, StoreError>> + Send;

    /// A channel's purchases, newest first, at most
    /// [`crate::purchases::MAX_LISTED`].
    fn channel_purchases(
        &self,
        client: &ClientId,
        channel: &ChannelId,
    ) -> impl Future<Output = Result<Vec<Purchase>, StoreError>> + Send;

    /// Moves a channel's purchase to `to` (with `details`) if its state is
    /// one of `from`: atomically, so two games validating it both see one
    /// of them win.
    fn move_purchase(
        &self,
        client: &ClientId,
        channel: &ChannelId,
        id: &str,
        from: &[PurchaseState],
        to: PurchaseState,
        details: Option<String>,
    ) -> impl Future<Output = Result<Moved, StoreError>> + Send;
}

/// Everything a deployment's store provides. Only composition roots (each
/// function's `main`, the dev server, tests) name it; handlers ask for the
/// ports they use.
pub trait Store:
    DocumentStore
    + AuthStore
    + AggregateStore
    + CodeStore
    + ConnectionStore
    + LimitStore
    + PurchaseStore
    + Clone
{
}
impl<T> Store for T where
    T: DocumentStore
        + AuthStore
        + AggregateStore
        + CodeStore
        + ConnectionStore
        + LimitStore
        + PurchaseStore
        + Clone
{
}
