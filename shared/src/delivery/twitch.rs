//! The Twitch relay (issue #18): delivers relay jobs to Helix's Send
//! Extension PubSub Message (`POST <helix>/extensions/pubsub`), so an
//! unmodified MEDKit front end on Twitch hears broadcasts and events through
//! Twitch's own messenger.
//!
//! - Each request carries `Client-Id` and a JWT signed HS256 with the
//!   extension's secret: role `external`, the owner's user id, the channel
//!   (`all` for `global`), send permission for the one target, a minute's
//!   expiry (`realtime::pubsub::helix_claims`).
//! - A send becomes one to [`MAX_FRAGMENTS`](crate::realtime::pubsub) message
//!   strings (`realtime::pubsub::messages`); each spends the channel's
//!   budget ([`TWITCH_MESSAGES`], counted in the store, so every Lambda
//!   instance shares it). Past it, the job waits for the next window rather
//!   than sending into a 429.
//! - 429 and 5xx answers, and requests that did not get through, are retried
//!   with backoff (a 429 waits for its `Ratelimit-Reset`); any other refusal
//!   is logged with Twitch's reason and counted, never retried.
//! - TLS trusts the Mozilla root set compiled in (`webpki-roots`): Twitch's
//!   certificates do not chain to the Amazon roots the AWS clients trust, and
//!   reading the system's bundle costs every cold start.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use tokio::sync::mpsc;

use crate::delivery::{Relay, RelayFuture, RelayReport};
use crate::ids::{ChannelId, ClientId};
use crate::limits::TWITCH_MESSAGES;
use crate::realtime::job::{Job, JobPart, RelayTarget};
use crate::realtime::pubsub;
use crate::registry::Registry;
use crate::store::LimitStore;

/// Helix, unless configured otherwise (a stand-in, in tests).
pub const HELIX_URL: &str = "https://api.twitch.tv/helix";
/// Tries of one message: the first and four retries, 250 ms to 2 s apart.
const ATTEMPTS: u32 = 5;
/// One request to Helix, answer included.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a 429's `Ratelimit-Reset` is waited for.
const MAX_RESET_WAIT: Duration = Duration::from_secs(30);
/// How long a job waits for its channel's budget before its remaining
/// messages are given up (logged and counted): real-time messages are worth
/// little a minute late, and the fan-out worker has 60 s.
const BUDGET_PATIENCE: Duration = Duration::from_secs(40);
/// Relay jobs one channel may have waiting in this process (the dev
/// server); past it a job is dropped, logged and counted.
const LANE_CAPACITY: usize = 1000;
/// Time one more message needs: a try and a second to answer.
const MESSAGE_RESERVE: Duration = Duration::from_secs(6);
/// Bytes of a refusal's body read for its reason.
const MAX_REASON_BYTES: usize = 4096;

/// Which extensions are relayed, and where Helix is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwitchConfig {
    /// No trailing slash.
    pub helix_url: String,
    /// Each relayed extension and its owner's Twitch user id.
    pub owners: Vec<(ClientId, String)>,
}

impl TwitchConfig {
    /// `<client id>=<owner user id>` entries (`--twitch-relay`,
    /// `MEDKIT_TWITCH_RELAY`, comma-separated); None when there are none.
    /// The Helix URL must be https, or http on a loopback host.
    pub fn parse<'a>(
        entries: impl IntoIterator<Item = &'a str>,
        helix_url: Option<&str>,
    ) -> Result<Option<Self>, String> {
        let mut owners = Vec::new();
        for entry in entries.into_iter().map(str::trim).filter(|e| !e.is_empty()) {
            let (client, owner) = entry.split_once('=').ok_or_else(|| {
                format!("{entry:?} is not of the form <client id>=<owner user id>")
            })?;
            let client = ClientId::parse(client.trim())
                .map_err(|_| format!("{entry:?}: the client id is not valid"))?;
            let owner = owner.trim();
            if owner.is_empty() || owner.len() > 32 || !owner.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!(
                    "{entry:?}: the owner's user id is the extension owner's numeric Twitch id"
                ));
            }
            if owners.iter().any(|(c, _)| c == &client) {
                return Err(format!("extension {client} is named twice"));
            }
            owners.push((client, owner.to_string()));
        }
        if owners.is_empty() {
            return Ok(None);
        }
        let helix_url = helix_url
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .unwrap_or(HELIX_URL)
            .trim_end_matches('/')
            .to_string();
        check_url(&helix_url)?;
        Ok(Some(TwitchConfig { helix_url, owners }))
    }
}

fn check_url(url: &str) -> Result<(), String> {
    let uri: http::Uri = url
        .parse()
        .map_err(|_| format!("the Helix URL {url:?} is not a URL"))?;
    let host = uri.host().unwrap_or_default();
    match uri.scheme_str() {
        Some("https") if !host.is_empty() => Ok(()),
        Some("http") if ["127.0.0.1", "localhost", "[::1]", "::1"].contains(&host) => Ok(()),
        _ => Err(format!(
            "the Helix URL {url:?} must be https (http only on a loopback host)"
        )),
    }
}

/// What the relay did since start-up (also in its logs).
#[derive(Debug, Default)]
pub struct RelayCounts {
    pub sent: AtomicU64,
    pub refused: AtomicU64,
    pub dropped: AtomicU64,
    pub retried: AtomicU64,
}

impl RelayCounts {
    fn add(&self, r: &RelayReport) {
        self.sent.fetch_add(r.sent as u64, Ordering::Relaxed);
        self.refused.fetch_add(r.refused as u64, Ordering::Relaxed);
        self.dropped.fetch_add(r.dropped as u64, Ordering::Relaxed);
    }

    /// `(sent, refused, dropped, retried)`.
    pub fn snapshot(&self) -> (u64, u64, u64, u64) {
        (
            self.sent.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed),
            self.dropped.load(Ordering::Relaxed),
            self.retried.load(Ordering::Relaxed),
        )
    }
}

/// The relay of a function that only queues relay jobs (every Lambda but
/// the fan-out worker, whose store always queues): it knows which
/// extensions are relayed, and nothing of Helix, so it links no HTTP
/// client, signing or splitting.
pub struct QueueingRelay {
    relayed: Vec<ClientId>,
}

impl QueueingRelay {
    pub fn new(config: &TwitchConfig) -> Self {
        QueueingRelay {
            relayed: config.owners.iter().map(|(c, _)| c.clone()).collect(),
        }
    }
}

impl Relay for QueueingRelay {
    fn relays(&self, client: &ClientId) -> bool {
        self.relayed.contains(client)
    }

    fn submit(&self, job: Job) {
        tracing::error!(client = %job.client_id, "not relayed to Twitch: this function has no job queue and no Helix client");
    }

    fn deliver<'a>(&'a self, job: &'a Job) -> RelayFuture<'a> {
        tracing::error!(client = %job.client_id, "not relayed to Twitch: only the fan-out worker posts relay jobs");
        Box::pin(async {
            RelayReport {
                refused: 1,
                ..RelayReport::default()
            }
        })
    }
}

/// A relayed extension: its owner and the key its JWTs are signed with.
struct Owner {
    user_id: String,
    key: EncodingKey,
}

type HttpClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// The relay over Helix; `L` counts the channels' budgets.
pub struct TwitchRelay<L> {
    inner: Arc<Inner<L>>,
}

impl<L> Clone for TwitchRelay<L> {
    fn clone(&self) -> Self {
        TwitchRelay {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<L> {
    helix_url: String,
    owners: HashMap<ClientId, Owner>,
    limits: L,
    /// How requests reach Helix ([`TwitchRelay::with_helix`]); None in a
    /// function that only queues relay jobs, which then links no HTTP
    /// client and no roots.
    helix: Option<Box<dyn HelixTransport>>,
    /// This process's queues, one per channel (and one for `global`).
    lanes: Mutex<HashMap<String, mpsc::Sender<Job>>>,
    counts: RelayCounts,
}

/// Why one message was not accepted.
enum Failure {
    /// For good (a 4xx other than 429): do not retry.
    Refused(String),
    /// Worth another try after `wait` (429, 5xx, no answer).
    Retry(String, Duration),
}

impl<L: LimitStore> TwitchRelay<L> {
    /// Every configured extension must be in `registry` (its secret signs).
    pub fn new(config: &TwitchConfig, registry: &Registry, limits: L) -> Result<Self, String> {
        let mut owners = HashMap::new();
        for (client, user_id) in &config.owners {
            let ext = registry
                .get(client.as_str())
                .ok_or_else(|| format!("relayed extension {client} is not configured"))?;
            owners.insert(
                client.clone(),
                Owner {
                    user_id: user_id.clone(),
                    key: ext.secrets[0].encoding.clone(),
                },
            );
        }
        Ok(TwitchRelay {
            inner: Arc::new(Inner {
                helix_url: config.helix_url.clone(),
                owners,
                limits,
                helix: None,
                lanes: Mutex::new(HashMap::new()),
                counts: RelayCounts::default(),
            }),
        })
    }

    pub fn counts(&self) -> &RelayCounts {
        &self.inner.counts
    }

    /// The relay that posts to Helix (the fan-out worker, the dev server).
    /// Without it, [`Relay::deliver`] can only log and drop: what a
    /// function that queues relay jobs and never delivers one links.
    pub fn with_helix(self) -> Self {
        let mut inner = Arc::try_unwrap(self.inner)
            .unwrap_or_else(|_| panic!("with_helix before the relay is shared"));
        inner.helix = Some(Box::new(HyperHelix {
            endpoint: format!("{}/extensions/pubsub", inner.helix_url),
            http: OnceLock::new(),
        }));
        TwitchRelay {
            inner: Arc::new(inner),
        }
    }
}

/// One POST to Helix's Send Extension PubSub Message.
trait HelixTransport: Send + Sync {
    fn post<'a>(
        &'a self,
        client: &'a ClientId,
        jwt: &'a str,
        body: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), Failure>> + Send + 'a>>;
}

/// Helix over hyper and rustls, the Mozilla roots compiled in.
struct HyperHelix {
    endpoint: String,
    /// Built on first use.
    http: OnceLock<HttpClient>,
}

impl HelixTransport for HyperHelix {
    fn post<'a>(
        &'a self,
        client: &'a ClientId,
        jwt: &'a str,
        body: &'a str,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), Failure>> + Send + 'a>> {
        Box::pin(self.post_once(client, jwt, body))
    }
}

impl<L: LimitStore> Relay for TwitchRelay<L> {
    fn relays(&self, client: &ClientId) -> bool {
        self.inner.owners.contains_key(client)
    }

    fn submit(&self, job: Job) {
        let lane = lane_key(&job);
        let mut lanes = self.inner.lanes.lock().expect("lanes lock");
        let tx = lanes.entry(lane).or_insert_with(|| {
            let (tx, mut rx) = mpsc::channel::<Job>(LANE_CAPACITY);
            let inner = self.inner.clone();
            tokio::spawn(async move {
                while let Some(job) = rx.recv().await {
                    inner.deliver(&job).await;
                }
            });
            tx
        });
        if let Err(e) = tx.try_send(job) {
            let job = match e {
                mpsc::error::TrySendError::Full(j) | mpsc::error::TrySendError::Closed(j) => j,
            };
            self.inner.counts.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(client = %job.client_id, lane = %lane_key(&job), capacity = LANE_CAPACITY, "not relayed to Twitch: the channel's relay queue is full");
        }
    }

    fn deliver<'a>(&'a self, job: &'a Job) -> RelayFuture<'a> {
        Box::pin(self.inner.deliver(job))
    }
}

fn lane_key(job: &Job) -> String {
    match &job.part {
        JobPart::Twitch(t) => format!(
            "{}|{}",
            job.client_id,
            t.channel().map_or("*", ChannelId::as_str)
        ),
        _ => job.client_id.to_string(),
    }
}

impl<L: LimitStore> Inner<L> {
    async fn deliver(&self, job: &Job) -> RelayReport {
        let report = self.relay(job).await;
        self.counts.add(&report);
        report
    }

    async fn relay(&self, job: &Job) -> RelayReport {
        let mut report = RelayReport::default();
        let JobPart::Twitch(target) = &job.part else {
            return report;
        };
        let Some(owner) = self.owners.get(&job.client_id) else {
            tracing::warn!(client = %job.client_id, "a relay job for an extension that is not relayed; skipped");
            return report;
        };
        if job.is_stale(crate::clock::now_secs()) {
            report.dropped = 1;
            tracing::warn!(client = %job.client_id, target = %target.encode(), "not relayed to Twitch: older than a minute");
            return report;
        }
        let Some(messages) = pubsub::messages(&job.frame) else {
            report.refused = 1;
            tracing::warn!(client = %job.client_id, target = %target.encode(), bytes = job.frame.len(), "not relayed to Twitch: more than {} messages of 5 KB", pubsub::MAX_FRAGMENTS);
            return report;
        };
        let started = tokio::time::Instant::now();
        let patience =
            crate::budget::left().map_or(BUDGET_PATIENCE, |left| left.min(BUDGET_PATIENCE));
        for (i, message) in messages.iter().enumerate() {
            let left = messages.len() - i;
            if crate::budget::left().is_some_and(|t| t < MESSAGE_RESERVE) {
                report.dropped += left;
                tracing::warn!(client = %job.client_id, target = %target.encode(), messages = left, "not relayed to Twitch: the invocation's time ran out");
                break;
            }
            if !self
                .wait_for_budget(&job.client_id, target, started + patience)
                .await
            {
                report.dropped += left;
                tracing::warn!(client = %job.client_id, target = %target.encode(), messages = left, "not relayed to Twitch: the channel's 100 messages a minute stayed spent");
                break;
            }
            match self.post(&job.client_id, owner, target, message).await {
                Ok(()) => report.sent += 1,
                Err(Failure::Refused(reason)) => {
                    report.refused += left;
                    tracing::warn!(client = %job.client_id, target = %target.encode(), %reason, "Twitch refused a relayed message");
                    break;
                }
                Err(Failure::Retry(reason, _)) => {
                    report.dropped += left;
                    tracing::warn!(client = %job.client_id, target = %target.encode(), %reason, attempts = ATTEMPTS, "not relayed to Twitch: still failing after every retry");
                    break;
                }
            }
        }
        tracing::info!(client = %job.client_id, target = %target.encode(), messages = messages.len(), sent = report.sent, refused = report.refused, dropped = report.dropped, "relayed to Twitch");
        report
    }

    /// Spends one message of the target's budget, waiting for the next
    /// window while it is spent; false past `deadline`.
    async fn wait_for_budget(
        &self,
        client: &ClientId,
        target: &RelayTarget,
        deadline: tokio::time::Instant,
    ) -> bool {
        let key = format!("t|{}", target.channel().map_or("*", ChannelId::as_str));
        loop {
            let now = crate::clock::now_secs();
            match self.limits.spend(client, &key, TWITCH_MESSAGES, now).await {
                Ok(true) => return true,
                Ok(false) => {
                    let wait = Duration::from_secs(TWITCH_MESSAGES.seconds_left(now) as u64)
                        + Duration::from_millis(jitter_ms());
                    if tokio::time::Instant::now() + wait > deadline {
                        return false;
                    }
                    tracing::info!(%client, target = %target.encode(), wait_ms = wait.as_millis() as u64, "relay waits for the channel's Twitch budget");
                    tokio::time::sleep(wait).await;
                }
                Err(e) => {
                    // The count is unreadable: send anyway; Twitch's own 429
                    // (retried) still guards the limit.
                    tracing::warn!(%client, error = %e, "relay budget not counted");
                    return true;
                }
            }
        }
    }

    /// Posts one message, retrying 429, 5xx and transport failures.
    async fn post(
        &self,
        client: &ClientId,
        owner: &Owner,
        target: &RelayTarget,
        message: &str,
    ) -> Result<(), Failure> {
        let (topic, global) = pubsub::target_of(&target.topic());
        let body = pubsub::helix_body(target.channel(), &topic, global, message).to_string();
        let Some(helix) = &self.helix else {
            return Err(Failure::Refused(
                "this function has no Helix client (only the fan-out worker posts)".into(),
            ));
        };
        let mut attempt = 0;
        loop {
            let jwt = self.sign(owner, target.channel(), &topic);
            match helix.post(client, &jwt, &body).await {
                Ok(()) => return Ok(()),
                Err(Failure::Retry(reason, wait))
                    if attempt + 1 < ATTEMPTS && time_for(wait.max(backoff(attempt))) =>
                {
                    self.counts.retried.fetch_add(1, Ordering::Relaxed);
                    let wait = wait.max(backoff(attempt));
                    tracing::info!(%client, %topic, %reason, attempt, wait_ms = wait.as_millis() as u64, "relay retries");
                    tokio::time::sleep(wait).await;
                    attempt += 1;
                }
                Err(other) => return Err(other),
            }
        }
    }

    fn sign(&self, owner: &Owner, channel: Option<&ChannelId>, topic: &str) -> String {
        crate::hs256::install();
        let claims = pubsub::helix_claims(&owner.user_id, channel, topic, crate::clock::now_secs());
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &owner.key)
            .expect("HS256 signing cannot fail")
    }
}

impl HyperHelix {
    async fn post_once(&self, client: &ClientId, jwt: &str, body: &str) -> Result<(), Failure> {
        let request = http::Request::post(&self.endpoint)
            .header("Client-Id", client.as_str())
            .header("Authorization", format!("Bearer {jwt}"))
            .header("Content-Type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| Failure::Refused(format!("request not built: {e}")))?;
        let answer = tokio::time::timeout(ATTEMPT_TIMEOUT, self.http().request(request)).await;
        let response = match answer {
            Err(_) => return Err(Failure::Retry("no answer in 5 s".into(), Duration::ZERO)),
            Ok(Err(e)) => return Err(Failure::Retry(format!("not sent: {e}"), Duration::ZERO)),
            Ok(Ok(r)) => r,
        };
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let reset = reset_wait(response.headers());
        let reason = reason_of(response.into_body()).await;
        let reason = format!("{status}: {reason}");
        match status.as_u16() {
            429 => Err(Failure::Retry(reason, reset.unwrap_or(Duration::ZERO))),
            500.. => Err(Failure::Retry(reason, Duration::ZERO)),
            _ => Err(Failure::Refused(reason)),
        }
    }

    fn http(&self) -> &HttpClient {
        self.http.get_or_init(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
            let connector = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(tls)
                .https_or_http()
                .enable_http1()
                .build();
            Client::builder(hyper_util::rt::TokioExecutor::new()).build(connector)
        })
    }
}

/// Whether the invocation (if it has a deadline) leaves time to wait
/// `wait` and try once more.
fn time_for(wait: Duration) -> bool {
    crate::budget::left().is_none_or(|t| t >= wait + MESSAGE_RESERVE)
}

/// 250 ms, 500 ms, 1 s, 2 s, plus up to 50 ms of jitter.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis((250 << attempt.min(3)) + jitter_ms())
}

fn jitter_ms() -> u64 {
    crate::random::bytes::<1>()[0] as u64 % 50
}

/// A 429's `Ratelimit-Reset` (seconds since the epoch) as a wait from now.
fn reset_wait(headers: &http::HeaderMap) -> Option<Duration> {
    let reset: i64 = headers
        .get("ratelimit-reset")?
        .to_str()
        .ok()?
        .parse()
        .ok()?;
    let secs = (reset - crate::clock::now_secs()).max(0) as u64;
    Some(Duration::from_secs(secs).min(MAX_RESET_WAIT))
}

/// Twitch's `message` from a refusal's body, else the body's start.
async fn reason_of(body: hyper::body::Incoming) -> String {
    let bytes = match Limited::new(body, MAX_REASON_BYTES).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return "(unreadable body)".into(),
    };
    let text = String::from_utf8_lossy(&bytes);
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(v) => v
            .get("message")
            .and_then(|m| m.as_str())
            .unwrap_or(&text)
            .chars()
            .take(200)
            .collect(),
        Err(_) => text.chars().take(200).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_names_each_extension_and_its_owner() {
        assert_eq!(TwitchConfig::parse(["", " "], None), Ok(None));
        let c = TwitchConfig::parse(["abc=123", " def = 456 "], None)
            .unwrap()
            .unwrap();
        assert_eq!(c.helix_url, HELIX_URL);
        assert_eq!(
            c.owners,
            vec![
                (ClientId::parse("abc").unwrap(), "123".to_string()),
                (ClientId::parse("def").unwrap(), "456".to_string())
            ]
        );
        let local = TwitchConfig::parse(["abc=1"], Some("http://127.0.0.1:9/helix/"))
            .unwrap()
            .unwrap();
        assert_eq!(local.helix_url, "http://127.0.0.1:9/helix");
        for (entries, url) in [
            (vec!["abc"], None),
            (vec!["abc="], None),
            (vec!["abc=12x"], None),
            (vec!["=12"], None),
            (vec!["abc=1", "abc=2"], None),
            (vec!["abc=1"], Some("http://example.com/helix")),
            (vec!["abc=1"], Some("ftp://127.0.0.1/")),
            (vec!["abc=1"], Some("not a url")),
        ] {
            assert!(
                TwitchConfig::parse(entries.clone(), url).is_err(),
                "{entries:?} {url:?}"
            );
        }
    }

    #[test]
    fn backoff_grows_and_stays_bounded() {
        assert!(
            backoff(0) >= Duration::from_millis(250) && backoff(0) < Duration::from_millis(300)
        );
        assert!(backoff(3) >= Duration::from_secs(2));
        assert!(backoff(9) < Duration::from_millis(2050));
    }

    #[test]
    fn a_429s_reset_is_waited_for_within_a_bound() {
        let mut h = http::HeaderMap::new();
        assert_eq!(reset_wait(&h), None);
        h.insert(
            "ratelimit-reset",
            (crate::clock::now_secs() + 3).to_string().parse().unwrap(),
        );
        let w = reset_wait(&h).unwrap();
        assert!(w <= Duration::from_secs(3) && w >= Duration::from_secs(2));
        h.insert("ratelimit-reset", "99999999999".parse().unwrap());
        assert_eq!(reset_wait(&h), Some(MAX_RESET_WAIT));
    }
}
