//! Stand-in adapters of the delivery ports: for functions with no WebSocket
//! API configured, an in-process hub that tests subscribe to, and the dev
//! server's in-order background delivery.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::{broadcast, mpsc};

use super::{Notifier, NotifyFuture, PostError, PostFuture, Poster};
use crate::gamelink::push::Push;
use crate::ids::{ClientId, ConnectionId};
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

/// One notification waiting for [`Background`]'s worker.
enum Work {
    Event(Event),
    Push(ClientId, Push),
}

/// Delivers off the request path, in the order notifications were made:
/// what the connections table's stream does on AWS, for `medkit serve`
/// without a job queue. A write answers without waiting for its fan-out (a
/// vote is not held up by a push to a thousand games), and one worker keeps
/// a channel's updates in order. Bounded: when `CAPACITY` notifications
/// wait, the next write waits for room rather than dropping one.
pub struct Background {
    tx: mpsc::Sender<Work>,
}

impl Background {
    const CAPACITY: usize = 10_000;

    /// Starts the worker (on the current Tokio runtime) in front of `inner`.
    pub fn start(inner: Arc<dyn Notifier>) -> Self {
        let (tx, mut rx) = mpsc::channel(Self::CAPACITY);
        tokio::spawn(async move {
            while let Some(work) = rx.recv().await {
                match work {
                    Work::Event(e) => inner.notify(e).await,
                    Work::Push(client, p) => inner.push(client, p).await,
                }
            }
        });
        Background { tx }
    }

    async fn queue(&self, work: Work) {
        if self.tx.send(work).await.is_err() {
            tracing::warn!("notification dropped: the delivery worker has stopped");
        }
    }
}

impl Notifier for Background {
    fn notify(&self, event: Event) -> NotifyFuture<'_> {
        Box::pin(self.queue(Work::Event(event)))
    }

    fn push(&self, client: ClientId, push: Push) -> NotifyFuture<'_> {
        Box::pin(self.queue(Work::Push(client, push)))
    }
}
