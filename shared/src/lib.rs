//! medkit: the shared core of a MEDKit-compatible backend for Twitch extensions.
//!
//! - [`auth`]: tokens (verify, mint), roles and the [`auth::Caller`]
//! - [`registry`]: which extensions exist and their secrets
//! - [`error`]: [`error::ApiError`] → status + `{"reason"}`
//! - [`store`]: ports and their DynamoDB / embedded adapters
//! - [`aggregate`]: votes, rankings, accumulate (pure domain logic)
//! - [`codes`]: game-code rules (uploads, marks, redeems, chunking)
//! - [`documents`]: state, config and JSON-store rules (limits, patching)
//! - [`notify`]: the `Notifier` port for real-time events
//! - [`realtime`]: envelopes, connections and the fan-out to WebSocket clients
//! - [`http`]: request/response plumbing shared by every function's router
//! - [`app`]: what every handler gets: config, registry, store, notifier

pub mod aggregate;
pub mod app;
pub mod auth;
pub mod codes;
pub mod config;
pub mod documents;
pub mod error;
pub mod http;
pub mod ids;
pub mod logging;
pub mod notify;
pub mod random;
pub mod realtime;
pub mod registry;
pub mod runtime_stub;
pub mod store;
pub mod testing;
