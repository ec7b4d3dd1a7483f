//! Both halves of API Gateway's WebSocket support, locally, at the URL shapes
//! of a deployed stage:
//!
//! - the WebSocket API at `ws://HOST:PORT/ws?client_id=…&token=…`, running
//!   the socket function's own `$connect` / `$disconnect` / `$default` code;
//!   without a token (`/ws?client_id=…`, or the GameLink SDK's own URL,
//!   `ws://HOST:PORT/<version>/<client id>`) it is a game's connection;
//! - the Management API at `http://HOST:PORT/ws/@connections/{id}`
//!   (POST a frame, GET the connection, DELETE it; 410 `GoneException` for an
//!   unknown id, 429 `LimitExceededException` when the client's outbox is
//!   full), which the broadcast code's `aws-sdk-apigatewaymanagement` client
//!   can be pointed at (`--fanout api`). It answers loopback peers only
//!   (403 to anyone else), whatever `--host` the server listens on.
//!
//! Each socket has a bounded outbox drained by its own task, so a client that
//! never reads fills only its own outbox; posts to it then fail fast (429)
//! and never hold up delivery to the others.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::{SinkExt, StreamExt};
use medkit::app::SharedApp;
use medkit::clock::now_secs;
use medkit::delivery::{PostError, PostFuture, Poster};
use medkit::ids::ConnectionId;
use medkit::realtime::{CONNECTION_TTL_SECS, new_connection_id};
use medkit_socket::gamelink::{self, GameStore};
use serde_json::json;
use tokio::sync::mpsc;

/// Frames waiting for one slow client before posts to it are refused.
const OUTBOX: usize = 64;
/// API Gateway's largest WebSocket message.
const MAX_FRAME_BYTES: usize = 128 * 1024;

/// The open sockets of this process, by connection id.
#[derive(Default)]
pub struct Sockets {
    open: Mutex<HashMap<ConnectionId, Handle>>,
    /// Posts to the Management API that fail (500), per thousand
    /// (`--inject-post-failures`, tests and benchmarks).
    fail_per_mille: u32,
}

struct Handle {
    outbox: mpsc::Sender<Message>,
    connected_at: i64,
    last_active_at: i64,
    source_ip: String,
    user_agent: String,
}

impl Sockets {
    pub fn with_faults(fail_per_mille: u32) -> Self {
        Sockets {
            fail_per_mille,
            ..Self::default()
        }
    }

    /// Whether this Management API post is one to fail.
    fn injected_failure(&self) -> bool {
        self.fail_per_mille > 0
            && u32::from(u16::from_le_bytes(medkit::random::bytes::<2>())) % 1000
                < self.fail_per_mille
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ConnectionId, Handle>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues one frame for a connection: `PostToConnection`.
    pub fn post(&self, id: &ConnectionId, frame: Message) -> Result<(), PostError> {
        let open = self.lock();
        let handle = open.get(id).ok_or(PostError::Gone)?;
        handle.outbox.try_send(frame).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => PostError::Throttled,
            mpsc::error::TrySendError::Closed(_) => PostError::Gone,
        })
    }

    /// Closes a connection (`DeleteConnection`): the close frame goes
    /// through its outbox, after what is queued; when that is full the
    /// socket's handle is dropped, which ends its task.
    pub fn close(&self, id: &ConnectionId) {
        let mut open = self.lock();
        let close = Message::Close(Some(CloseFrame {
            code: 1000,
            reason: "closed by the server".into(),
        }));
        if open
            .get(id)
            .is_some_and(|h| h.outbox.try_send(close).is_err())
        {
            open.remove(id);
        }
    }

    fn touch(&self, id: &ConnectionId) {
        if let Some(h) = self.lock().get_mut(id) {
            h.last_active_at = now_secs();
        }
    }
}

/// The fan-out's poster in the dev server: straight into the sockets'
/// outboxes, with the Management API's answers (410, 429).
pub struct DirectPoster(pub Arc<Sockets>);

impl Poster for DirectPoster {
    fn post<'a>(&'a self, id: &'a ConnectionId, frame: &'a Bytes) -> PostFuture<'a> {
        let result = match Utf8Bytes::try_from(frame.clone()) {
            Ok(text) => self.0.post(id, Message::Text(text)),
            Err(_) => self.0.post(id, Message::Binary(frame.clone())),
        };
        Box::pin(async move { result })
    }

    fn close<'a>(&'a self, id: &'a ConnectionId) -> PostFuture<'a> {
        self.0.close(id);
        Box::pin(async { Ok(()) })
    }
}

struct WsState<S> {
    app: SharedApp<S>,
    sockets: Arc<Sockets>,
}

impl<S> Clone for WsState<S> {
    fn clone(&self) -> Self {
        WsState {
            app: self.app.clone(),
            sockets: self.sockets.clone(),
        }
    }
}

pub fn routes<S: GameStore>(app: SharedApp<S>, sockets: Arc<Sockets>) -> Router {
    Router::new()
        .route("/ws", get(upgrade::<S>))
        // The GameLink SDK's URL: `/<version>/<client id>`.
        .route("/{version}/{client_id}", get(upgrade_game::<S>))
        .route(
            "/ws/@connections/{id}",
            post(post_to_connection::<S>)
                .get(get_connection::<S>)
                .delete(delete_connection::<S>)
                .route_layer(axum::middleware::from_fn(local_peers_only)),
        )
        .layer(DefaultBodyLimit::max(MAX_FRAME_BYTES))
        .with_state(WsState { app, sockets })
}

/// `$connect`: verify, record, then upgrade; a refusal is the handshake's status.
async fn upgrade<S: GameStore>(
    State(st): State<WsState<S>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let id = new_connection_id();
    let client_id = query.get("client_id").map(String::as_str);
    let Some(token) = query.get("token").map(String::as_str) else {
        // No token: a game, which authenticates in-band.
        return open_game(st, peer, &headers, ws, id, client_id).await;
    };
    let conn = match medkit_socket::connect(&st.app, id.clone(), client_id, Some(token)).await {
        Ok(conn) => conn,
        Err(e) => return e.into_response(),
    };
    let rx = register(&st, &id, peer, &headers);
    let expires_at = conn.expires_at;
    finish_upgrade(ws, &st, &id, MAX_FRAME_BYTES)
        .on_upgrade(move |socket| run(socket, id, expires_at, rx, st))
}

/// A game's connection at the SDK's URL, `/<version>/<client id>`.
async fn upgrade_game<S: GameStore>(
    State(st): State<WsState<S>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((version, client_id)): Path<(String, String)>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let path = format!("/{version}/{client_id}");
    let Some(client_id) = gamelink::client_id_from_path(&path) else {
        return medkit::error::ApiError::not_found(
            "no such route: a GameLink URL is /<major>.<minor>.<patch>/<client id>",
        )
        .into_response();
    };
    open_game(st, peer, &headers, ws, new_connection_id(), Some(client_id)).await
}

async fn open_game<S: GameStore>(
    st: WsState<S>,
    peer: SocketAddr,
    headers: &HeaderMap,
    ws: WebSocketUpgrade,
    id: ConnectionId,
    client_id: Option<&str>,
) -> Response {
    let session = match gamelink::open(&st.app, id.clone(), client_id).await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    let rx = register(&st, &id, peer, headers);
    // A frame over the limit gets its error reply (413) and the game carries
    // on; only one over twice the limit ends the connection.
    finish_upgrade(ws, &st, &id, 2 * MAX_FRAME_BYTES)
        .on_upgrade(move |socket| run_game(socket, id, session.expires_at, rx, st))
}

/// Records an accepted socket; its outbox's receiving end comes back.
fn register<S>(
    st: &WsState<S>,
    id: &ConnectionId,
    peer: SocketAddr,
    headers: &HeaderMap,
) -> mpsc::Receiver<Message> {
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let (outbox, rx) = mpsc::channel(OUTBOX);
    let now = now_secs();
    st.sockets.lock().insert(
        id.clone(),
        Handle {
            outbox,
            connected_at: now,
            last_active_at: now,
            source_ip: peer.ip().to_string(),
            user_agent,
        },
    );
    rx
}

fn finish_upgrade<S: GameStore>(
    ws: WebSocketUpgrade,
    st: &WsState<S>,
    id: &ConnectionId,
    max_message: usize,
) -> WebSocketUpgrade<impl axum::extract::ws::OnFailedUpgrade> {
    let on_fail = st.clone();
    let fail_id = id.clone();
    ws.max_message_size(max_message)
        // Small buffers: an idle connection should cost little.
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .on_failed_upgrade(move |_| {
            tokio::spawn(async move { forget(&on_fail, &fail_id).await });
        })
}

/// A game's connection: every frame gets its one reply from the socket
/// function's GameLink code; pushes arrive through the outbox. It is closed
/// when its session is over: not authenticated within the login window, or
/// past its token's expiry.
async fn run_game<S: GameStore>(
    socket: WebSocket,
    id: ConnectionId,
    expires_at: i64,
    mut outbox: mpsc::Receiver<Message>,
    st: WsState<S>,
) {
    let (mut sink, mut stream) = socket.split();
    let until = |at: i64| {
        let left = (at - now_secs()).clamp(0, CONNECTION_TTL_SECS);
        tokio::time::Instant::now() + Duration::from_secs(left as u64)
    };
    let lifetime = tokio::time::sleep_until(until(expires_at));
    tokio::pin!(lifetime);
    loop {
        tokio::select! {
            frame = outbox.recv() => {
                let Some(frame) = frame else { break };
                let closing = matches!(frame, Message::Close(_));
                if sink.send(frame).await.is_err() || closing {
                    break;
                }
            }
            incoming = stream.next() => {
                let text = match incoming {
                    Some(Ok(Message::Text(text))) => text.to_string(),
                    Some(Ok(Message::Binary(b))) => String::from_utf8_lossy(&b).into_owned(),
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                        st.sockets.touch(&id);
                        continue;
                    }
                    Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                };
                st.sockets.touch(&id);
                let answer = gamelink::answer(&st.app, &id, &text).await;
                if sink.send(Message::Text(answer.reply.into())).await.is_err() {
                    break;
                }
                if answer.close {
                    let _ = sink.send(session_over()).await;
                    break;
                }
            }
            _ = &mut lifetime => {
                // Logged in since: live on until the session's own end.
                match st.app.store.session(&id).await {
                    Ok(Some(s)) if s.login.is_some() => {
                        lifetime.as_mut().reset(until(s.expires_at));
                    }
                    _ => {
                        let _ = sink.send(session_over()).await;
                        break;
                    }
                }
            }
        }
    }
    forget(&st, &id).await;
}

fn session_over() -> Message {
    Message::Close(Some(CloseFrame {
        code: 1008,
        reason: format!(
            "not authenticated within {} s, or the session's token expired",
            medkit::gamelink::session::LOGIN_WINDOW_SECS
        )
        .into(),
    }))
}

/// One connection's life: drain its outbox, answer its messages, close it
/// when its record expires (its token's `exp`, at most API Gateway's 2
/// hours), then `$disconnect`.
async fn run<S: GameStore>(
    socket: WebSocket,
    id: ConnectionId,
    expires_at: i64,
    mut outbox: mpsc::Receiver<Message>,
    st: WsState<S>,
) {
    let (mut sink, mut stream) = socket.split();
    let left = (expires_at - now_secs()).clamp(0, CONNECTION_TTL_SECS);
    let lifetime = tokio::time::sleep(Duration::from_secs(left as u64));
    tokio::pin!(lifetime);
    loop {
        tokio::select! {
            frame = outbox.recv() => {
                let Some(frame) = frame else { break };
                let closing = matches!(frame, Message::Close(_));
                if sink.send(frame).await.is_err() || closing {
                    break;
                }
            }
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    st.sockets.touch(&id);
                    let reply = medkit_socket::reply(text.as_str());
                    if sink.send(Message::Text(reply.into())).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    let reply = medkit_socket::reply("");
                    if sink.send(Message::Text(reply.into())).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => st.sockets.touch(&id),
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
            },
            _ = &mut lifetime => {
                let _ = sink
                    .send(Message::Close(Some(CloseFrame {
                        code: 1001,
                        reason: "the connection's token expired, or its 2 hours passed".into(),
                    })))
                    .await;
                break;
            }
        }
    }
    forget(&st, &id).await;
}

/// `$disconnect`.
async fn forget<S: GameStore>(st: &WsState<S>, id: &ConnectionId) {
    st.sockets.lock().remove(id);
    if let Err(e) = medkit_socket::disconnect(&st.app, id).await {
        tracing::warn!(connection = %id.redacted(), error = %e, "disconnect not recorded");
    }
}

/// The Management API answers this machine only: anyone else holding a
/// connection id could post forged frames to it, or read its IP address.
async fn local_peers_only(
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if crate::listen::is_local(&peer) {
        next.run(req).await
    } else {
        mgmt_error(
            StatusCode::FORBIDDEN,
            "ForbiddenException",
            "the Management API answers this machine only",
        )
    }
}

/// A Management API error as the AWS SDK parses it.
fn mgmt_error(status: StatusCode, kind: &str, message: &str) -> Response {
    (
        status,
        [
            ("x-amzn-errortype", kind),
            ("content-type", "application/json"),
        ],
        json!({"message": message}).to_string(),
    )
        .into_response()
}

fn gone() -> Response {
    mgmt_error(StatusCode::GONE, "GoneException", "Gone")
}

fn connection_id(raw: &str) -> Option<ConnectionId> {
    ConnectionId::parse(raw).ok()
}

async fn post_to_connection<S: GameStore>(
    State(st): State<WsState<S>>,
    Path(raw): Path<String>,
    body: Bytes,
) -> Response {
    let Some(id) = connection_id(&raw) else {
        return gone();
    };
    let frame = match std::str::from_utf8(&body) {
        Ok(_) => Message::Text(Utf8Bytes::try_from(body).expect("checked UTF-8")),
        Err(_) => Message::Binary(body),
    };
    if st.sockets.injected_failure() {
        return mgmt_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            "injected failure",
        );
    }
    match st.sockets.post(&id, frame) {
        Ok(()) => StatusCode::OK.into_response(),
        Err(PostError::Gone) => gone(),
        Err(PostError::Throttled) => mgmt_error(
            StatusCode::TOO_MANY_REQUESTS,
            "LimitExceededException",
            "the client's buffer is full",
        ),
        Err(PostError::Failed(m) | PostError::Transient(m)) => {
            mgmt_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError", &m)
        }
    }
}

async fn get_connection<S: GameStore>(
    State(st): State<WsState<S>>,
    Path(raw): Path<String>,
) -> Response {
    let open = st.sockets.lock();
    let Some(h) = connection_id(&raw).and_then(|id| open.get(&id)) else {
        return gone();
    };
    let body = json!({
        "ConnectedAt": iso8601(h.connected_at),
        "LastActiveAt": iso8601(h.last_active_at),
        "Identity": {"SourceIp": h.source_ip, "UserAgent": h.user_agent},
    });
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn delete_connection<S: GameStore>(
    State(st): State<WsState<S>>,
    Path(raw): Path<String>,
) -> Response {
    let Some(id) = connection_id(&raw).filter(|id| st.sockets.lock().contains_key(id)) else {
        return gone();
    };
    // The socket's task sends the close frame, then runs `$disconnect`.
    st.sockets.close(&id);
    StatusCode::NO_CONTENT.into_response()
}

/// Epoch seconds as `YYYY-MM-DDTHH:MM:SSZ` (civil-from-days, proleptic Gregorian).
fn iso8601(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use medkit::auth::Role;
    use medkit::delivery::fanout::Fanout;
    use medkit::ids::{ChannelId, ClientId};
    use medkit::realtime::Connection;
    use medkit::realtime::job::Recipients;
    use medkit::store::ConnectionStore;
    use medkit::store::embedded::EmbeddedStore;

    fn open(sockets: &Sockets, id: &ConnectionId) -> mpsc::Receiver<Message> {
        let (outbox, rx) = mpsc::channel(OUTBOX);
        let handle = Handle {
            outbox,
            connected_at: 0,
            last_active_at: 0,
            source_ip: "127.0.0.1".into(),
            user_agent: String::new(),
        };
        sockets.lock().insert(id.clone(), handle);
        rx
    }

    /// A socket whose client never reads stops draining its outbox (its
    /// task is stuck on a full TCP send buffer); here the outbox's receiver
    /// is simply never read. Posts to it must fail fast (throttled) while
    /// every frame still reaches the reader beside it.
    #[tokio::test]
    async fn a_client_that_never_reads_does_not_stall_the_others() {
        let store = EmbeddedStore::in_memory();
        let sockets = Arc::new(Sockets::default());
        let client = ClientId::parse("cid").unwrap();
        let channel = ChannelId::parse("123").unwrap();
        let (stuck, reader) = (new_connection_id(), new_connection_id());
        for id in [&stuck, &reader] {
            let c = Connection {
                id: id.clone(),
                client_id: client.clone(),
                channel_id: Some(channel.clone()),
                opaque_user_id: None,
                user_id: None,
                role: Role::Viewer,
                pin_issued: false,
                connected_at: now_secs(),
                expires_at: now_secs() + CONNECTION_TTL_SECS,
            };
            store.add_connection(&c).await.unwrap();
        }
        let _never_read = open(&sockets, &stuck);
        let mut rx = open(&sockets, &reader);
        let sends = OUTBOX + 5;
        let received = tokio::spawn(async move {
            let mut n = 0;
            while n < sends {
                match rx.recv().await {
                    Some(Message::Text(t)) => {
                        assert_eq!(t.as_str(), format!("frame {n}"));
                        n += 1;
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
            n
        });
        let poster = DirectPoster(sockets.clone());
        let fanout = Fanout {
            store: &store,
            poster: &poster,
            relay: None,
        };
        let to = Recipients::Channel(channel);
        let mut stuck_failures = 0;
        // Bounded: a stalled fan-out fails the test instead of hanging it.
        tokio::time::timeout(Duration::from_secs(30), async {
            for i in 0..sends {
                let frame = format!("frame {i}");
                let report = fanout.deliver(&client, &to, &frame).await.unwrap();
                assert_eq!(report.sent + report.failed, 2, "{report:?}");
                assert!(report.sent >= 1, "the reader got frame {i}: {report:?}");
                stuck_failures += report.failed;
            }
        })
        .await
        .expect("fan-out stalled behind a client that never reads");
        let got = tokio::time::timeout(Duration::from_secs(10), received)
            .await
            .expect("reader starved")
            .unwrap();
        assert_eq!(got, sends);
        // The stuck outbox took OUTBOX frames; every later post to it failed.
        assert_eq!(stuck_failures, sends - OUTBOX);
        // Still connected: a full outbox is throttling, not a vanished client.
        assert!(sockets.lock().contains_key(&stuck));
    }

    #[test]
    fn iso8601_dates() {
        assert_eq!(super::iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::iso8601(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(super::iso8601(1_795_000_000), "2026-11-18T11:06:40Z");
    }
}
