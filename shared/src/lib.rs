//! medkit: the shared core of a MEDKit-compatible backend for Twitch extensions.
//!
//! Modules in layers; each imports only from the layers before it.
//!
//! 1. **Base:** [`ids`], [`clock`], [`budget`] (a request's time left), [`env`], [`error`] (`ApiError`,
//!    `StoreError`), [`random`], [`hash`], [`logging`]. No HTTP, no SDK.
//! 2. **Domain:** [`registry`], [`hs256`] and [`auth`] (extensions and their
//!    keys, the token signature, tokens and the `Caller`), [`expiry`], [`documents`], [`aggregate`], [`codes`],
//!    [`realtime`] (connections, envelopes, jobs, events, the rate window),
//!    [`gamelink`] (the game protocol's frames and verbs).
//!    Pure rules and types.
//! 3. **Ports:** [`store`] (one trait per data family) and [`delivery`]
//!    (`Poster`, `Notifier`, `TimerQueue`): traits only.
//! 4. **Adapters and services:** `store::dynamo`, `store::embedded` (feature
//!    `embedded`), [`aws`] (SDK set-up), `delivery::fanout`,
//!    `delivery::management`, `delivery::local`, `delivery::sqs`.
//! 5. **Edge:** [`http`] (extractors, the error → `{"reason"}` mapping, router
//!    layers), [`app`], [`config`], [`lambda`] (a Lambda's composition root),
//!    the services that need the app: [`stores`], [`game_polls`],
//!    [`game_matches`], [`timers`].
//!
//! Feature `testing` adds [`testing`] (test support, never in a Lambda).

// 1. base
pub mod budget;
pub mod clock;
pub mod env;
pub mod error;
pub mod hash;
pub mod ids;
pub mod logging;
pub mod random;

// 2. domain
pub mod aggregate;
pub mod auth;
pub mod codes;
pub mod documents;
pub mod expiry;
pub mod gamelink;
pub mod hs256;
pub mod limits;
pub mod purchases;
pub mod realtime;
pub mod registry;

// 3. ports (with their adapters and services below them, 4.)
pub mod aws;
pub mod delivery;
pub mod store;

// 5. edge
pub mod app;
pub mod config;
pub mod game_matches;
pub mod game_polls;
pub mod http;
pub mod lambda;
pub mod stores;
pub mod timers;

#[cfg(feature = "testing")]
pub mod testing;
