//! Contract suite of the connection port and the fan-out over it, run against
//! both adapters: embedded always, DynamoDB when DynamoDB Local is configured
//! (always in CI).

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use bytes::Bytes;
use medkit::auth::Role;
use medkit::clock::now_secs;
use medkit::delivery::fanout::Fanout;
use medkit::delivery::{PostError, PostFuture, Poster};
use medkit::gamelink::session::{Login, MAX_SUBSCRIPTIONS, Session};
use medkit::ids::{ChannelId, ClientId, ConnectionId, UserId, ViewerId};
use medkit::limits::SENDS;
use medkit::realtime::job::Recipients;
use medkit::realtime::rate::SENDS_PER_WINDOW;
use medkit::realtime::subscription::Subscription;
use medkit::realtime::{Connection, EXTENSION_SHARDS, new_connection_id};
use medkit::store::embedded::EmbeddedStore;
use medkit::store::{ConnectionStore, LimitStore, Store};

fn client(c: &str) -> ClientId {
    ClientId::parse(c).unwrap()
}

fn channel(c: &str) -> ChannelId {
    ChannelId::parse(c).unwrap()
}

fn viewer(v: &str) -> ViewerId {
    ViewerId::parse(v).unwrap()
}

fn conn(cl: &str, ch: Option<&str>, opaque: &str, user: Option<&str>) -> Connection {
    let now = now_secs();
    Connection {
        id: new_connection_id(),
        client_id: client(cl),
        channel_id: ch.map(channel),
        opaque_user_id: Some(viewer(opaque)),
        user_id: user.map(|u| UserId::parse(u).unwrap()),
        role: Role::Viewer,
        pin_issued: false,
        connected_at: now,
        expires_at: now + 7200,
    }
}

fn sorted(mut ids: Vec<ConnectionId>) -> Vec<ConnectionId> {
    ids.sort();
    ids
}

async fn all_shards<S: ConnectionStore>(s: &S, cl: &str) -> Vec<ConnectionId> {
    let mut all = Vec::new();
    for shard in 0..EXTENSION_SHARDS {
        all.extend(s.shard_connections(&client(cl), shard).await.unwrap());
    }
    sorted(all)
}

async fn connections_are_found_by_channel_viewer_and_shard<S: Store>(s: S) {
    let a1 = conn("c1", Some("A"), "U1", Some("777"));
    let a2 = conn("c1", Some("A"), "U2", None);
    let b1 = conn("c1", Some("B"), "U1", Some("777"));
    let other = conn("c2", Some("A"), "U1", None);
    for c in [&a1, &a2, &b1, &other] {
        s.add_connection(c).await.unwrap();
    }
    let ch_a = s
        .channel_connections(&client("c1"), &channel("A"))
        .await
        .unwrap();
    assert_eq!(sorted(ch_a), sorted(vec![a1.id.clone(), a2.id.clone()]));
    let u1 = s
        .viewer_connections(&client("c1"), &viewer("U1"))
        .await
        .unwrap();
    let mut u1_ids: Vec<_> = u1.iter().map(|c| c.id.clone()).collect();
    u1_ids.sort();
    assert_eq!(u1_ids, sorted(vec![a1.id.clone(), b1.id.clone()]));
    assert!(u1.contains(&a1), "records come back whole");
    // By Twitch user id too.
    let by_user = s
        .viewer_connections(&client("c1"), &viewer("777"))
        .await
        .unwrap();
    assert_eq!(by_user.len(), 2);
    assert_eq!(
        all_shards(&s, "c1").await,
        sorted(vec![a1.id.clone(), a2.id.clone(), b1.id.clone()])
    );

    // Disconnect removes it from every index; a second time finds nothing.
    assert_eq!(s.remove_connection(&a1.id).await.unwrap(), Some(a1.clone()));
    assert_eq!(s.remove_connection(&a1.id).await.unwrap(), None);
    let ch_a = s
        .channel_connections(&client("c1"), &channel("A"))
        .await
        .unwrap();
    assert_eq!(ch_a, vec![a2.id.clone()]);
    let u1 = s
        .viewer_connections(&client("c1"), &viewer("U1"))
        .await
        .unwrap();
    assert_eq!(u1, vec![b1.clone()]);
    assert_eq!(
        all_shards(&s, "c1").await,
        sorted(vec![a2.id.clone(), b1.id.clone()])
    );
    assert_eq!(all_shards(&s, "c2").await, vec![other.id.clone()]);
}

async fn expired_connections_are_not_found<S: Store>(s: S) {
    let mut old = conn("c1", Some("E"), "U5", None);
    old.expires_at = now_secs() - 1;
    s.add_connection(&old).await.unwrap();
    let fresh = conn("c1", Some("E"), "U6", None);
    s.add_connection(&fresh).await.unwrap();
    let ids = s
        .channel_connections(&client("c1"), &channel("E"))
        .await
        .unwrap();
    assert_eq!(ids, vec![fresh.id.clone()]);
    assert!(
        s.viewer_connections(&client("c1"), &viewer("U5"))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(all_shards(&s, "c1").await, vec![fresh.id]);
}

async fn sends_are_limited_per_scope_and_window<S: Store>(s: S) {
    let c = client("c1");
    // The start of a window, so all sends fall in the same one.
    let now = now_secs() / 300 * 300 + 1;
    for i in 0..SENDS_PER_WINDOW {
        assert!(s.spend(&c, "A", SENDS, now).await.unwrap(), "send {i}");
    }
    assert!(!s.spend(&c, "A", SENDS, now + 10).await.unwrap(), "101st");
    assert!(
        !s.spend(&c, "A", SENDS, now + 10).await.unwrap(),
        "still full"
    );
    assert!(
        s.spend(&c, "B", SENDS, now).await.unwrap(),
        "another channel"
    );
    assert!(
        s.spend(&client("c2"), "A", SENDS, now).await.unwrap(),
        "another extension"
    );
    // A refund gives one use back; refunding an unused budget is harmless.
    s.refund(&c, "A", SENDS, now + 20).await.unwrap();
    assert!(s.spend(&c, "A", SENDS, now + 20).await.unwrap(), "refunded");
    assert!(
        !s.spend(&c, "A", SENDS, now + 20).await.unwrap(),
        "and no more"
    );
    s.refund(&c, "Z", SENDS, now).await.unwrap();
    assert!(
        s.spend(&c, "A", SENDS, now + 300).await.unwrap(),
        "next window"
    );
}

async fn distinct_items_are_limited_per_window<S: Store>(s: S) {
    let c = client("c1");
    let limit = medkit::limits::Limit {
        max: 3,
        window_secs: 3600,
    };
    let now = now_secs() / 3600 * 3600 + 1;
    for item in ["p1", "p2", "p3", "p1", "p2"] {
        assert!(
            s.spend_distinct(&c, "v", item, limit, now).await.unwrap(),
            "{item}"
        );
    }
    assert!(
        !s.spend_distinct(&c, "v", "p4", limit, now + 5)
            .await
            .unwrap(),
        "a 4th"
    );
    assert!(
        s.spend_distinct(&c, "v", "p3", limit, now + 5)
            .await
            .unwrap(),
        "seen before"
    );
    assert!(
        s.spend_distinct(&c, "w", "p4", limit, now).await.unwrap(),
        "another budget"
    );
    assert!(
        s.spend_distinct(&c, "v", "p4", limit, now + 3600)
            .await
            .unwrap(),
        "next window"
    );
}

/// A poster that records what it delivered, answers 410 for some ids and
/// throttles others a few times first.
#[derive(Default)]
struct FakePoster {
    delivered: Mutex<Vec<(ConnectionId, Bytes)>>,
    gone: HashSet<ConnectionId>,
    throttles: Mutex<HashMap<ConnectionId, u32>>,
}

impl Poster for FakePoster {
    fn post<'a>(&'a self, id: &'a ConnectionId, frame: &'a Bytes) -> PostFuture<'a> {
        Box::pin(async move {
            if self.gone.contains(id) {
                return Err(PostError::Gone);
            }
            if let Some(n) = self.throttles.lock().unwrap().get_mut(id)
                && *n > 0
            {
                *n -= 1;
                return Err(PostError::Throttled);
            }
            self.delivered
                .lock()
                .unwrap()
                .push((id.clone(), frame.clone()));
            Ok(())
        })
    }

    fn close<'a>(&'a self, _: &'a ConnectionId) -> PostFuture<'a> {
        Box::pin(async { Ok(()) })
    }
}

async fn fanout_removes_gone_connections_and_retries_throttled_ones<S: Store>(s: S) {
    let conns: Vec<Connection> = (0..20)
        .map(|i| conn("c1", Some("F"), &format!("V{i}"), None))
        .collect();
    for c in &conns {
        s.add_connection(c).await.unwrap();
    }
    let poster = FakePoster {
        gone: [conns[3].id.clone(), conns[7].id.clone()].into(),
        throttles: Mutex::new([(conns[5].id.clone(), 2)].into()),
        ..FakePoster::default()
    };
    let fanout = Fanout {
        store: &s,
        poster: &poster,
        relay: None,
    };
    let report = fanout
        .deliver(&client("c1"), &Recipients::Channel(channel("F")), "frame")
        .await
        .unwrap();
    assert_eq!((report.sent, report.gone, report.failed), (18, 2, 0));
    let delivered: HashSet<ConnectionId> = poster
        .delivered
        .lock()
        .unwrap()
        .iter()
        .map(|(id, f)| {
            assert_eq!(&f[..], b"frame");
            id.clone()
        })
        .collect();
    assert_eq!(delivered.len(), 18, "each live connection exactly once");
    assert!(
        delivered.contains(&conns[5].id),
        "throttled, then delivered"
    );
    let left = s
        .channel_connections(&client("c1"), &channel("F"))
        .await
        .unwrap();
    assert_eq!(left.len(), 18, "the gone ones were deleted");
    assert!(!left.contains(&conns[3].id) && !left.contains(&conns[7].id));
}

/// Deleting gone connections fits what the request's deadline leaves: with
/// less than a worst-case attempt left, the send still answers (the gone
/// ones counted) and leaves their items to expire.
async fn gone_connections_are_deleted_only_within_the_deadline<S: Store>(s: S) {
    let conns: Vec<Connection> = (0..6)
        .map(|i| conn("c1", Some("G"), &format!("V{i}"), None))
        .collect();
    for c in &conns {
        s.add_connection(c).await.unwrap();
    }
    let poster = FakePoster {
        gone: conns.iter().map(|c| c.id.clone()).collect(),
        ..FakePoster::default()
    };
    let fanout = Fanout {
        store: &s,
        poster: &poster,
        relay: None,
    };
    let (c1, to) = (client("c1"), Recipients::Channel(channel("G")));
    let send = fanout.deliver(&c1, &to, "f");
    let near = tokio::time::Instant::now() + medkit::budget::ATTEMPT_RESERVE / 2;
    let report = medkit::budget::until(near, send).await.unwrap();
    assert_eq!((report.sent, report.gone), (0, 6));
    let left = s
        .channel_connections(&client("c1"), &channel("G"))
        .await
        .unwrap();
    assert_eq!(left.len(), 6, "no time for the deletes: left to expire");
    // With time, they go.
    fanout
        .deliver(&client("c1"), &Recipients::Channel(channel("G")), "f")
        .await
        .unwrap();
    let left = s
        .channel_connections(&client("c1"), &channel("G"))
        .await
        .unwrap();
    assert!(left.is_empty(), "{} left", left.len());
}

async fn extension_wide_sends_reach_every_channel_once<S: Store>(s: S) {
    let mut ids = Vec::new();
    for i in 0..60 {
        let c = conn("c1", Some(&format!("ch{}", i % 7)), &format!("W{i}"), None);
        ids.push(c.id.clone());
        s.add_connection(&c).await.unwrap();
    }
    s.add_connection(&conn("c2", Some("ch0"), "X", None))
        .await
        .unwrap();
    let poster = FakePoster::default();
    let fanout = Fanout {
        store: &s,
        poster: &poster,
        relay: None,
    };
    let report = fanout
        .deliver(&client("c1"), &Recipients::Extension, "g")
        .await
        .unwrap();
    // No queue here: the jobs ran in this process, one per shard.
    assert_eq!((report.sent, report.queued), (60, 0));
    let got = sorted(
        poster
            .delivered
            .lock()
            .unwrap()
            .iter()
            .map(|(i, _)| i.clone())
            .collect(),
    );
    assert_eq!(got, sorted(ids));

    // A whisper extension-wide reaches the viewer on every channel it is on.
    let poster = FakePoster::default();
    let fanout = Fanout {
        store: &s,
        poster: &poster,
        relay: None,
    };
    let r = fanout
        .deliver(&client("c1"), &Recipients::Viewer(viewer("W3")), "w")
        .await
        .unwrap();
    assert_eq!(r.sent, 1);
    let r = fanout
        .deliver(
            &client("c1"),
            &Recipients::ChannelViewer(channel("ch0"), viewer("W3")),
            "w",
        )
        .await
        .unwrap();
    assert_eq!(r.sent, 0, "W3 is on ch3, not ch0");
}

fn logged_in(cl: &str, ch: &str, opened_at: i64) -> Session {
    let s = Session::opened(new_connection_id(), client(cl), opened_at);
    let login = Login {
        channel: channel(ch),
        token_id: "tok".into(),
        game_id: None,
    };
    s.logged_in(login, opened_at + 3600)
}

/// GameLink sessions: recorded, logged in, subscribed and found per topic
/// and scope; never among a channel's viewer connections; forgotten with
/// their subscriptions; over when their time is.
async fn sessions_and_subscriptions<S: Store>(s: S) {
    let now = now_secs();
    let pending = Session::opened(new_connection_id(), client("g1"), now);
    s.put_session(&pending).await.unwrap();
    assert_eq!(s.session(&pending.id).await.unwrap(), Some(pending.clone()));
    // A game server's session: no channel, and it reads back as a server's.
    let server =
        Session::opened(new_connection_id(), client("g1"), now).logged_in_as_server(now + 600);
    s.put_session(&server).await.unwrap();
    let read = s
        .session(&server.id)
        .await
        .unwrap()
        .expect("the server's session");
    assert!(read.server && read.login.is_none(), "{read:?}");
    assert_eq!(read, server);
    assert!(
        s.channel_connections(&client("g1"), &channel("7"))
            .await
            .unwrap()
            .is_empty()
    );
    let a = logged_in("g1", "7", now);
    let b = logged_in("g1", "7", now);
    let other = logged_in("g1", "8", now);
    let foreign = logged_in("g2", "7", now);
    for x in [&a, &b, &other, &foreign] {
        s.put_session(x).await.unwrap();
    }
    let state7 = Subscription::channel(&channel("7"), "state:channel");
    let ext = Subscription::extension("config:extension");
    assert!(s.subscribe(&a, &state7).await.unwrap());
    assert!(s.subscribe(&a, &state7).await.unwrap(), "idempotent");
    assert!(s.subscribe(&b, &state7).await.unwrap());
    assert!(s.subscribe(&b, &ext).await.unwrap());
    assert!(s.subscribe(&other, &ext).await.unwrap());
    assert!(s.subscribe(&foreign, &state7).await.unwrap());
    assert_eq!(
        sorted(s.subscribers(&client("g1"), &state7).await.unwrap()),
        sorted(vec![a.id.clone(), b.id.clone()])
    );
    assert_eq!(
        sorted(s.subscribers(&client("g1"), &ext).await.unwrap()),
        sorted(vec![b.id.clone(), other.id.clone()])
    );
    assert_eq!(
        s.subscribers(&client("g2"), &state7).await.unwrap(),
        vec![foreign.id.clone()]
    );
    // Logging in again (a new token) keeps the subscriptions.
    let mut renewed = a.clone();
    renewed.expires_at += 60;
    s.put_session(&renewed).await.unwrap();
    assert_eq!(s.session(&a.id).await.unwrap(), Some(renewed.clone()));
    assert_eq!(
        s.subscribers(&client("g1"), &state7).await.unwrap().len(),
        2
    );
    s.unsubscribe(&a, &state7).await.unwrap();
    s.unsubscribe(&a, &state7).await.unwrap();
    assert_eq!(
        s.subscribers(&client("g1"), &state7).await.unwrap(),
        vec![b.id.clone()]
    );
    // Forgetting a session forgets its subscriptions; a viewer's record is not returned.
    assert_eq!(s.remove_connection(&b.id).await.unwrap(), None);
    assert!(s.session(&b.id).await.unwrap().is_none());
    assert!(
        s.subscribers(&client("g1"), &state7)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.subscribers(&client("g1"), &ext).await.unwrap(),
        vec![other.id.clone()]
    );
    // A gone session cannot subscribe.
    assert!(!s.subscribe(&b, &state7).await.unwrap());
    // The limit per session.
    for i in 0..MAX_SUBSCRIPTIONS - 1 {
        let sub = Subscription::channel(&channel("8"), format!("poll:{i}"));
        assert!(s.subscribe(&other, &sub).await.unwrap(), "{i}");
    }
    let one_more = Subscription::channel(&channel("8"), "poll:last");
    assert!(!s.subscribe(&other, &one_more).await.unwrap());
    assert!(
        s.subscribers(&client("g1"), &one_more)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.subscribe(&other, &ext).await.unwrap(),
        "one it holds is fine"
    );
    // Over: an unauthenticated session past its window, a session past its token.
    let late = Session::opened(new_connection_id(), client("g1"), now - 31);
    s.put_session(&late).await.unwrap();
    assert!(s.session(&late.id).await.unwrap().is_none());
    let expired = logged_in("g1", "9", now - 7200);
    s.put_session(&expired).await.unwrap();
    assert!(s.session(&expired.id).await.unwrap().is_none());
}

contract! {
    connections_are_found_by_channel_viewer_and_shard;
    expired_connections_are_not_found;
    sends_are_limited_per_scope_and_window;
    distinct_items_are_limited_per_window;
    fanout_removes_gone_connections_and_retries_throttled_ones;
    gone_connections_are_deleted_only_within_the_deadline;
    extension_wide_sends_reach_every_channel_once;
    sessions_and_subscriptions;
}

/// DynamoDB round trips: connect 1, disconnect 1, a send counted 1, a
/// channel's recipients 1 (one page), a whisper's 2 (in parallel).
#[tokio::test]
async fn dynamodb_round_trips_per_connection_operation() {
    let Some((s, rt)) =
        medkit::testing::dynamo_store("dynamodb_round_trips_per_connection_operation").await
    else {
        return;
    };
    let c = conn("c1", Some("R"), "U1", None);
    macro_rules! measure {
        ($what:expr, $expected:expr, $op:expr) => {{
            rt.reset();
            $op.await.unwrap();
            let n = rt.get();
            println!("round trips: {} = {n}", $what);
            assert_eq!(n, $expected, $what);
        }};
    }
    measure!("add_connection", 1, s.add_connection(&c));
    measure!(
        "spend (a send)",
        1,
        s.spend(&client("c1"), "R", SENDS, now_secs())
    );
    measure!(
        "channel_connections",
        1,
        s.channel_connections(&client("c1"), &channel("R"))
    );
    measure!(
        "viewer_connections",
        2,
        s.viewer_connections(&client("c1"), &viewer("U1"))
    );
    measure!("remove_connection", 1, s.remove_connection(&c.id));
}

/// Issue #19, finding 5: a pooled Management API connection that died while
/// the instance was frozen fails the next post as a transport error, which
/// was not retried: that recipient lost the frame. Here a loopback "API"
/// drops the first connection without answering (what a dead pooled socket
/// looks like to the SDK) and answers 200 after; the post is retried and
/// delivered.
#[tokio::test]
async fn a_post_on_a_dead_pooled_connection_is_retried() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = answered.clone();
    let server = tokio::spawn(async move {
        for n in 0..10 {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let mut buf = vec![0u8; 64 * 1024];
            let _ = sock.read(&mut buf).await;
            if n == 0 {
                drop(sock); // dead: no answer at all
                continue;
            }
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let _ = sock
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                .await;
        }
    });
    let poster =
        medkit::delivery::management::ManagementPoster::connect(&format!("http://{addr}/ws"))
            .unwrap();
    let s = EmbeddedStore::in_memory();
    let c = conn("c1", Some("F"), "V1", None);
    s.add_connection(&c).await.unwrap();
    let fanout = Fanout {
        store: &s,
        poster: &poster,
        relay: None,
    };
    let report = fanout
        .deliver(&client("c1"), &Recipients::Channel(channel("F")), "frame")
        .await
        .unwrap();
    assert_eq!((report.sent, report.failed), (1, 0), "{report:?}");
    assert_eq!(answered.load(std::sync::atomic::Ordering::SeqCst), 1);
    server.abort();
}
