//! Stand-in adapters of the delivery ports: for functions with no WebSocket
//! API configured, and an in-process hub that tests subscribe to.

use bytes::Bytes;
use tokio::sync::broadcast;

use super::{Notifier, NotifyFuture, PostError, PostFuture, Poster};
use crate::ids::ConnectionId;
use crate::realtime::event::Event;

/// A poster for functions with no WebSocket API configured: every post fails.
pub struct NoPoster;

impl Poster for NoPoster {
    fn post<'a>(&'a self, _: &'a ConnectionId, _: &'a Bytes) -> PostFuture<'a> {
        Box::pin(async { Err(PostError::Failed("no WebSocket API configured".into())) })
    }
    fn close<'a>(&'a self, _: &'a ConnectionId) -> PostFuture<'a> {
        Box::pin(async { Err(PostError::Failed("no WebSocket API configured".into())) })
    }
}

/// Drops events (a function with no real-time wiring yet).
pub struct NoopNotifier;

impl Notifier for NoopNotifier {
    fn notify(&self, event: Event) -> NotifyFuture<'_> {
        tracing::debug!(event = %event.name, "notification dropped: no real-time delivery configured");
        Box::pin(async {})
    }
}

/// In-process hub: the dev server and tests subscribe to every event.
#[derive(Clone)]
pub struct LocalHub {
    tx: broadcast::Sender<Event>,
}

impl LocalHub {
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(1024);
        LocalHub { tx }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}

impl Default for LocalHub {
    fn default() -> Self {
        Self::new()
    }
}

impl Notifier for LocalHub {
    fn notify(&self, event: Event) -> NotifyFuture<'_> {
        // No subscribers is fine: nobody is listening.
        let _ = self.tx.send(event);
        Box::pin(async {})
    }
}
