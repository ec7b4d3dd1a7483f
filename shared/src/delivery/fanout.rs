//! Fan-out: find a send's recipients in the connection store and post the
//! frame to each through a [`Poster`] (the API Gateway Management API in
//! AWS, the dev server's sockets locally), at most [`POST_CONCURRENCY`] posts
//! in flight.
//!
//! - A connection that is gone (410) is deleted; the others still receive.
//! - Throttled posts and transport errors are retried with backoff, a few
//!   times; a queued job's recipients whose posts still fail get a follow-up
//!   job of their own ([`Fanout::work`], what the fan-out worker runs).
//! - A slow or dead socket costs one post, never the others' delivery.
//! - Extension-wide sends are split into [`EXTENSION_SHARDS`] jobs. In AWS the
//!   store queues them (items on the connections table's stream) and each job
//!   runs in its own invocation of the fan-out worker; without a queue (the
//!   dev server) the jobs run here, concurrently. Nothing loops over every
//!   connection of every channel in one place.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;

use crate::delivery::{Notifier, NotifyFuture, PostError, Poster, Relay};
use crate::env::Env;
use crate::error::StoreError;
use crate::gamelink::push::Push;
use crate::ids::{ChannelId, ClientId, ConnectionId, ViewerId};
use crate::realtime::EXTENSION_SHARDS;
use crate::realtime::envelope::{self, Topic};
use crate::realtime::event::{Audience, Event};
use crate::realtime::job::{GameUpdate, Job, JobPart, Recipients, RelayTarget};
use crate::store::ConnectionStore;

/// Posts in flight per fan-out (per job in AWS).
pub const POST_CONCURRENCY: usize = 64;
/// Time a job spends deleting connections it found gone (64 at a time:
/// ~50,000 DeleteItems at DynamoDB's latency); the rest expire by TTL.
pub const FORGET_BUDGET: std::time::Duration = std::time::Duration::from_secs(10);
/// Attempts of a throttled post.
const POST_ATTEMPTS: u32 = 4;

/// What became of a queued job ([`Fanout::work`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobOutcome {
    /// Every recipient was posted to (or found gone).
    Delivered(Report),
    /// Some posts failed; follow-up jobs (this many) were queued for them.
    FollowedUp(Report, usize),
    /// Some posts failed and no follow-up is left: report the job failed, so
    /// the event source mapping retries it and then hands it to the
    /// on-failure destination.
    Exhausted(Report),
    /// Older than `MAX_EVENT_AGE_SECS`: dropped, not delivered late.
    Stale,
}

/// What a fan-out did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    pub sent: usize,
    /// Connections found gone and deleted.
    pub gone: usize,
    pub failed: usize,
    /// Jobs handed to workers (delivered later, elsewhere).
    pub queued: usize,
}

impl Report {
    fn add(&mut self, o: Report) {
        self.sent += o.sent;
        self.gone += o.gone;
        self.failed += o.failed;
        self.queued += o.queued;
    }
}

/// The recipients of a job whose posts failed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Undelivered {
    /// Those of the job's own frame.
    pub failed: Vec<ConnectionId>,
    /// Those of its games' update.
    pub failed_games: Vec<ConnectionId>,
}

/// The fan-out over a connection store and a poster, and the Twitch relay
/// when one is configured.
pub struct Fanout<'a, S> {
    pub store: &'a S,
    pub poster: &'a dyn Poster,
    pub relay: Option<&'a dyn Relay>,
}

impl<S: ConnectionStore> Fanout<'_, S> {
    /// Delivers `frame` to `to` now (extension-wide: queued as jobs when the
    /// store can, else run here).
    pub async fn deliver(
        &self,
        client: &ClientId,
        to: &Recipients,
        frame: &str,
    ) -> Result<Report, StoreError> {
        let ids = match to {
            Recipients::Channel(ch) => self.store.channel_connections(client, ch).await?,
            Recipients::ChannelViewer(ch, v) => self.viewer_ids(client, v, Some(ch)).await?,
            Recipients::Viewer(v) => self.viewer_ids(client, v, None).await?,
            Recipients::Extension => {
                let jobs = (0..EXTENSION_SHARDS)
                    .map(|shard| Job::new(client.clone(), JobPart::Shard(shard), frame.to_string()))
                    .collect();
                return self.queue_or_run(jobs).await;
            }
        };
        Ok(self.post_all(ids, Bytes::from(frame.to_string())).await.0)
    }

    /// Like [`deliver`](Self::deliver), but a channel send goes to a worker
    /// when the store can queue it: notifications must not hold up the write
    /// that caused them.
    pub async fn enqueue(
        &self,
        client: &ClientId,
        to: &Recipients,
        frame: &str,
    ) -> Result<Report, StoreError> {
        match to {
            Recipients::Channel(ch) => {
                let job = Job::new(
                    client.clone(),
                    JobPart::Channel(ch.clone()),
                    frame.to_string(),
                );
                self.queue_or_run(vec![job]).await
            }
            _ => self.deliver(client, to, frame).await,
        }
    }

    /// Delivers one job once; the ids whose posts failed come back with the
    /// report (those of its games' update apart).
    pub async fn run_job(&self, job: &Job) -> Result<(Report, Undelivered), StoreError> {
        let (mut report, failed) = self.run_part(job).await?;
        let mut undelivered = Undelivered {
            failed,
            failed_games: Vec::new(),
        };
        if let Some(games) = &job.games {
            let ids = self.store.subscribers(&job.client_id, &games.to).await?;
            let (r, failed) = self.post_all(ids, Bytes::from(games.frame.clone())).await;
            report.add(r);
            undelivered.failed_games = failed;
        }
        Ok((report, undelivered))
    }

    async fn run_part(&self, job: &Job) -> Result<(Report, Vec<ConnectionId>), StoreError> {
        let ids = match &job.part {
            JobPart::Channel(ch) => self.store.channel_connections(&job.client_id, ch).await?,
            JobPart::Shard(s) => self.store.shard_connections(&job.client_id, *s).await?,
            JobPart::Retry(ids) => ids.clone(),
            JobPart::Subscribers(sub) => self.store.subscribers(&job.client_id, sub).await?,
            // No connections: `work` relays it.
            JobPart::Twitch(_) => Vec::new(),
        };
        Ok(self.post_all(ids, Bytes::from(job.frame.clone())).await)
    }

    /// Relays a send to Twitch when its extension is relayed: a job queued
    /// where fan-out jobs are, or (no queue) handed to the relay's own
    /// delivery. Either way nothing here waits on Twitch. `message` is the
    /// envelope's message string (JSON or base64(zlib)).
    pub async fn relay(&self, client: &ClientId, target: Option<RelayTarget>, message: &str) {
        let Some(relay) = self.relay.filter(|r| r.relays(client)) else {
            return;
        };
        let Some(target) = target else {
            tracing::info!(%client, "not relayed to Twitch: an extension-wide whisper names no channel");
            return;
        };
        let job = Job::new(client.clone(), JobPart::Twitch(target), message.to_string());
        match self.store.queue_jobs(std::slice::from_ref(&job)).await {
            Ok(true) => {}
            Ok(false) => relay.submit(job),
            Err(e) => {
                tracing::warn!(%client, error = %e, "not relayed to Twitch: the relay job was not queued")
            }
        }
    }

    /// What a fan-out worker does with a queued job (see [`JobOutcome`]): a
    /// stale job is dropped; a follow-up waits its backoff first; recipients
    /// whose posts failed get a follow-up job of their own, durably queued,
    /// so the others are not posted to again.
    pub async fn work(&self, job: &Job) -> Result<JobOutcome, StoreError> {
        if job.is_stale(crate::clock::now_secs()) {
            return Ok(JobOutcome::Stale);
        }
        tokio::time::sleep(job.backoff()).await;
        if let JobPart::Twitch(_) = job.part {
            return Ok(self.work_relay(job).await);
        }
        let (report, undelivered) = self.run_job(job).await?;
        if undelivered.failed.is_empty() && undelivered.failed_games.is_empty() {
            return Ok(JobOutcome::Delivered(report));
        }
        match job.follow_ups(undelivered.failed, undelivered.failed_games) {
            Some(jobs) => {
                if !self.store.queue_jobs(&jobs).await? {
                    return Err(StoreError::Internal("no job queue for follow-ups".into()));
                }
                Ok(JobOutcome::FollowedUp(report, jobs.len()))
            }
            None => Ok(JobOutcome::Exhausted(report)),
        }
    }

    /// A relay job in the fan-out worker: Twitch's refusals are final
    /// (logged by the relay); throttles and errors were retried there.
    async fn work_relay(&self, job: &Job) -> JobOutcome {
        let Some(relay) = self.relay else {
            tracing::warn!(client = %job.client_id, "a relay job, but this worker has no relay configured (MEDKIT_TWITCH_RELAY); skipped");
            return JobOutcome::Delivered(Report::default());
        };
        let r = relay.deliver(job).await;
        JobOutcome::Delivered(Report {
            sent: r.sent,
            failed: r.refused + r.dropped,
            ..Report::default()
        })
    }

    async fn queue_or_run(&self, jobs: Vec<Job>) -> Result<Report, StoreError> {
        if self.store.queue_jobs(&jobs).await? {
            return Ok(Report {
                queued: jobs.len(),
                ..Report::default()
            });
        }
        let runs = futures_util::future::join_all(jobs.iter().map(|j| self.run_job(j))).await;
        let mut report = Report::default();
        for r in runs {
            report.add(r?.0);
        }
        Ok(report)
    }

    async fn viewer_ids(
        &self,
        client: &ClientId,
        viewer: &ViewerId,
        channel: Option<&ChannelId>,
    ) -> Result<Vec<ConnectionId>, StoreError> {
        Ok(self
            .store
            .viewer_connections(client, viewer)
            .await?
            .into_iter()
            .filter(|c| channel.is_none() || c.channel_id.as_ref() == channel)
            .map(|c| c.id)
            .collect())
    }

    /// Closes connections whose tokens were revoked: each is forgotten by the
    /// store (so nothing reaches it, even if closing fails) and closed
    /// through the poster. Returns how many the poster closed.
    pub async fn close_all(&self, ids: Vec<ConnectionId>) -> usize {
        let outcomes: Vec<bool> = futures_util::stream::iter(ids)
            .map(|id| async move {
                if let Err(e) = self.store.remove_connection(&id).await {
                    tracing::warn!(connection = %id.redacted(), error = %e, "could not forget a revoked connection");
                }
                match self.poster.close(&id).await {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::warn!(connection = %id.redacted(), error = ?e, "could not close a revoked connection");
                        false
                    }
                }
            })
            .buffer_unordered(POST_CONCURRENCY)
            .collect()
            .await;
        outcomes.into_iter().filter(|closed| *closed).count()
    }

    /// Posts to every id, bounded concurrency; gone connections are deleted.
    /// The ids whose posts failed come back with the report.
    pub async fn post_all(
        &self,
        ids: Vec<ConnectionId>,
        frame: Bytes,
    ) -> (Report, Vec<ConnectionId>) {
        let frame = &frame;
        let outcomes: Vec<(ConnectionId, Result<(), PostError>)> = futures_util::stream::iter(ids)
            .map(|id| async move {
                let r = post_with_retry(self.poster, &id, frame).await;
                (id, r)
            })
            .buffer_unordered(POST_CONCURRENCY)
            .collect()
            .await;
        let mut report = Report::default();
        let mut failed = Vec::new();
        let mut gone = Vec::new();
        for (id, outcome) in outcomes {
            match outcome {
                Ok(()) => report.sent += 1,
                Err(PostError::Gone) => {
                    report.gone += 1;
                    gone.push(id);
                }
                Err(e) => {
                    report.failed += 1;
                    tracing::warn!(connection = %id.redacted(), error = ?e, "post failed");
                    failed.push(id);
                }
            }
        }
        self.forget_gone(gone).await;
        (report, failed)
    }

    /// Deletes connections found gone, concurrently (after a long stream
    /// break, many may be), for at most [`FORGET_BUDGET`]: the job must end
    /// well inside its function's time, and a connection left behind is
    /// harmless (it is found gone again, and expires with its token).
    async fn forget_gone(&self, gone: Vec<ConnectionId>) {
        let total = gone.len();
        let deleted = std::sync::atomic::AtomicUsize::new(0);
        let deleting = futures_util::stream::iter(gone).for_each_concurrent(
            POST_CONCURRENCY,
            |id| {
                let deleted = &deleted;
                async move {
                    match self.store.remove_connection(&id).await {
                        Ok(_) => {
                            deleted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                        Err(e) => {
                            tracing::warn!(connection = %id.redacted(), error = %e, "could not delete a gone connection")
                        }
                    }
                }
            },
        );
        // Inside a request, only what its deadline leaves (see `budget`).
        let budget = crate::budget::left().map_or(FORGET_BUDGET, |left| {
            left.saturating_sub(crate::budget::ATTEMPT_RESERVE)
                .min(FORGET_BUDGET)
        });
        if budget.is_zero() {
            tracing::warn!(
                total,
                "gone connections left to expire: no time to delete them"
            );
            return;
        }
        if tokio::time::timeout(budget, deleting).await.is_err() {
            let deleted = deleted.load(std::sync::atomic::Ordering::Relaxed);
            tracing::warn!(
                total,
                deleted,
                "gone connections left to expire: the deletes ran out of time"
            );
        }
    }
}

async fn post_with_retry(
    poster: &dyn Poster,
    id: &ConnectionId,
    frame: &Bytes,
) -> Result<(), PostError> {
    let mut attempt = 0;
    loop {
        match poster.post(id, frame).await {
            // A throttle, or a transport error (a pooled connection that died
            // while the instance was frozen fails its first request).
            Err(PostError::Throttled | PostError::Transient(_)) if attempt + 1 < POST_ATTEMPTS => {
                let jitter = crate::random::bytes::<1>()[0] as u64 % 20;
                tokio::time::sleep(Duration::from_millis((25 << attempt) + jitter)).await;
                attempt += 1;
            }
            other => return other,
        }
    }
}

/// The `Notifier` that delivers events to connected viewers: a channel's
/// events on topic `broadcast`, extension-wide ones on `global`.
pub struct FanoutNotifier<S> {
    pub store: S,
    pub poster: Arc<dyn Poster>,
    pub env: Env,
    /// Events go to Twitch too when their extension is relayed.
    pub relay: Option<Arc<dyn Relay>>,
}

impl<S> FanoutNotifier<S> {
    fn fanout(&self) -> Fanout<'_, S> {
        Fanout {
            store: &self.store,
            poster: &*self.poster,
            relay: self.relay.as_deref(),
        }
    }
}

impl<S: ConnectionStore> FanoutNotifier<S> {
    async fn send(&self, event: Event) {
        let (topic, to, relay_to) = match event.audience {
            Audience::Channel(ch) => (
                Topic::Broadcast,
                Recipients::Channel(ch.clone()),
                RelayTarget::Channel(ch, Topic::Broadcast),
            ),
            Audience::Extension => (Topic::Global, Recipients::Extension, RelayTarget::Global),
        };
        let message = match envelope::message(self.env, &event.client_id, &event.name, &event.data)
        {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(event = %event.name, error = %e, "event not delivered: too large");
                return;
            }
        };
        // Events carry whole documents or totals: only the latest matters.
        let frame = envelope::frame(
            &topic,
            &message,
            &envelope::Stamp::new(),
            envelope::Kind::Snapshot,
        );
        let fanout = self.fanout();
        fanout
            .relay(&event.client_id, Some(relay_to), &message)
            .await;
        let outcome = match (to, event.games) {
            // A channel's event and its games' update: one job.
            (Recipients::Channel(ch), Some(push)) => {
                let mut job = Job::new(event.client_id.clone(), JobPart::Channel(ch), frame);
                job.games = Some(GameUpdate {
                    to: push.to,
                    frame: push.frame,
                });
                fanout.queue_or_run(vec![job]).await
            }
            (to, games) => {
                if let Some(push) = games {
                    self.send_push(event.client_id.clone(), push).await;
                }
                fanout.enqueue(&event.client_id, &to, &frame).await
            }
        };
        match outcome {
            Ok(r) => tracing::debug!(event = %event.name, ?r, "event delivered"),
            Err(e) => tracing::warn!(event = %event.name, error = %e, "event not delivered"),
        }
    }
}

impl<S: ConnectionStore> FanoutNotifier<S> {
    /// A GameLink update: one job for the topic's subscribers, queued when
    /// the store can (the write that caused it does not wait on delivery).
    async fn send_push(&self, client: ClientId, push: Push) {
        let fanout = self.fanout();
        let topic = push.to.topic.clone();
        let job = Job::new(client, JobPart::Subscribers(push.to), push.frame);
        match fanout.queue_or_run(vec![job]).await {
            Ok(r) => tracing::debug!(%topic, ?r, "update pushed"),
            Err(e) => tracing::warn!(%topic, error = %e, "update not pushed"),
        }
    }
}

impl<S: ConnectionStore> Notifier for FanoutNotifier<S> {
    fn notify(&self, event: Event) -> NotifyFuture<'_> {
        Box::pin(self.send(event))
    }

    fn push(&self, client: ClientId, push: Push) -> NotifyFuture<'_> {
        Box::pin(self.send_push(client, push))
    }
}
