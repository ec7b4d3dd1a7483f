//! Real-time delivery: the two ports through which frames and events reach
//! WebSocket clients, and what implements them.
//!
//! - [`Poster`]: delivers one frame to one connection. Adapters:
//!   [`management::ManagementPoster`] (the API Gateway Management API, in
//!   Lambda and `medkit serve --fanout api`), the dev server's sockets, and
//!   [`local::NoPoster`].
//! - [`Notifier`]: delivers an event to its audience, best effort (a write
//!   that was accepted stays accepted even if its notification is lost).
//!   Adapters: [`fanout::FanoutNotifier`], [`local::LocalHub`] (in process,
//!   for tests) and [`local::NoopNotifier`].
//! - [`fanout`]: the service that finds a send's recipients in the
//!   connection store and posts to each.
//! - [`send`]: a send's envelope, budget and fan-out (REST and GameLink).
//! - [`timers::TimerQueue`]: keeps timers until they are due. Adapter:
//!   [`sqs::SqsTimers`]; without one, timers sleep in process.
//! - [`Relay`]: delivers sends to Twitch's Extension PubSub too (issue
//!   #18). Adapter: [`twitch::TwitchRelay`] (Helix over HTTPS).

pub mod fanout;
pub mod local;
pub mod management;
pub mod send;
pub mod sqs;
pub mod timers;
pub mod twitch;

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;

use crate::gamelink::push::Push;
use crate::ids::{ClientId, ConnectionId};
use crate::realtime::event::Event;
use crate::realtime::job::Job;

/// Why one post failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostError {
    /// The connection no longer exists (410): forget it.
    Gone,
    /// Too many requests: try again later.
    Throttled,
    /// The request did not get through or timed out (a pooled connection
    /// that died while the instance was frozen): worth trying again now.
    Transient(String),
    /// Anything else; the cause is logged by the caller.
    Failed(String),
}

pub type PostFuture<'a> = Pin<Box<dyn Future<Output = Result<(), PostError>> + Send + 'a>>;

/// Delivers one frame to one connection, and closes connections.
pub trait Poster: Send + Sync {
    fn post<'a>(&'a self, id: &'a ConnectionId, frame: &'a Bytes) -> PostFuture<'a>;
    /// Closes a connection (its token was revoked); one already gone is
    /// closed too (`Ok`).
    fn close<'a>(&'a self, id: &'a ConnectionId) -> PostFuture<'a>;
}

pub type NotifyFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Object-safe so one process can pick its adapter at start-up.
pub trait Notifier: Send + Sync {
    fn notify(&self, event: Event) -> NotifyFuture<'_>;

    /// Delivers a GameLink update to the games subscribed to its topic;
    /// adapters without games drop it.
    fn push(&self, client: ClientId, push: Push) -> NotifyFuture<'_> {
        let _ = (client, push);
        Box::pin(async {})
    }
}

/// What one relay job came to (counted in messages: a large send is
/// several).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RelayReport {
    /// Messages Twitch accepted.
    pub sent: usize,
    /// Messages Twitch refused for good (a 4xx other than 429), or that
    /// could not be made (over the fragment limit); logged with the reason.
    pub refused: usize,
    /// Messages given up on: still throttled or failing after every retry,
    /// or too old to be worth sending; logged.
    pub dropped: usize,
}

pub type RelayFuture<'a> = Pin<Box<dyn Future<Output = RelayReport> + Send + 'a>>;

/// Sends to Twitch's Extension PubSub: a relay job
/// (`realtime::job::JobPart::Twitch`, its frame the envelope's message) is
/// queued where fan-out jobs are; the fan-out worker calls [`deliver`]
/// (`Relay::deliver`). A process without a job queue (the dev server) hands
/// it to [`submit`](Relay::submit), which delivers it off the request path.
pub trait Relay: Send + Sync {
    /// Whether this extension's sends are relayed.
    fn relays(&self, client: &ClientId) -> bool;
    /// Delivers `job` later, in order with the channel's other relay jobs.
    fn submit(&self, job: Job);
    /// Delivers `job` now: waits for the channel's budget, retries
    /// throttles and server errors.
    fn deliver<'a>(&'a self, job: &'a Job) -> RelayFuture<'a>;
}
