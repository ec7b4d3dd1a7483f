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

pub mod fanout;
pub mod local;
pub mod management;
pub mod send;
pub mod sqs;
pub mod timers;

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;

use crate::gamelink::push::Push;
use crate::ids::{ClientId, ConnectionId};
use crate::realtime::event::Event;

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
