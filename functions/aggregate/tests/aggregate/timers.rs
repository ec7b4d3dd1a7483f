//! The timers function (SQS events of the timers queue) through its Lambda
//! handler, on the embedded store and on DynamoDB Local; the REST vote on
//! the Lambda path setting its trailing timers through the queue; the
//! built bootstrap under a local Runtime API.

use std::sync::{Arc, Mutex};

use axum::http::Method;
use medkit::aggregate::AggKey;
use medkit::aggregate::vote::Ballot;
use medkit::aggregate::window::expiry_bucket;
use medkit::app::{App, SharedApp};
use medkit::clock::{now_ms, now_secs};
use medkit::delivery::local::NoPoster;
use medkit::delivery::timers::{Due, MatchPollRun, PollRun, Timer};
use medkit::delivery::{Notifier, NotifyFuture};
use medkit::env::Env;
use medkit::expiry::Expiry;
use medkit::game_matches;
use medkit::game_polls;
use medkit::gamelink::matches::MatchPoll;
use medkit::gamelink::poll::{Poll, parse_create};
use medkit::gamelink::push::Push;
use medkit::ids::{ChannelId, ClientId};
use medkit::realtime::event::Event;
use medkit::store::embedded::EmbeddedStore;
use medkit::store::{AggregateStore, AuthStore, DocumentStore, LimitStore};
use medkit::testing::runtime_stub::{
    RuntimeStub, assert_init_fails_naming, assert_survives_malformed,
};
use medkit::testing::{self, CLIENT_ID, RecordingTimers, RoundTripCounter};
use medkit_aggregate::timers::{QueueEvent, handle};
use serde_json::{Value, json};

const CHANNEL: &str = "10";

/// A notifier that keeps what it is given: events for viewers, pushes for
/// games (the delivery itself is tested with the fan-out).
#[derive(Default)]
struct Heard {
    events: Mutex<Vec<Event>>,
    pushes: Mutex<Vec<Push>>,
}

impl Heard {
    fn events(&self) -> Vec<Event> {
        std::mem::take(&mut *self.events.lock().unwrap())
    }
    /// The poll bodies pushed since the last call.
    fn polls(&self) -> Vec<Value> {
        std::mem::take(&mut *self.pushes.lock().unwrap())
            .into_iter()
            .map(|p| serde_json::from_str::<Value>(&p.frame).unwrap()["data"].clone())
            .collect()
    }
}

impl Notifier for Heard {
    fn notify(&self, event: Event) -> NotifyFuture<'_> {
        self.events.lock().unwrap().push(event);
        Box::pin(async {})
    }
    fn push(&self, _: ClientId, push: Push) -> NotifyFuture<'_> {
        self.pushes.lock().unwrap().push(push);
        Box::pin(async {})
    }
}

struct Fixture<S> {
    app: SharedApp<S>,
    heard: Arc<Heard>,
    queue: Arc<RecordingTimers>,
}

/// An app as a Lambda has it: timers go to a queue (here, one that records).
fn fixture<S>(store: S) -> Fixture<S> {
    let heard = Arc::new(Heard::default());
    let queue = Arc::new(RecordingTimers::default());
    let app = Arc::new(App {
        env: Env::Sandbox,
        registry: testing::registry(),
        store,
        notifier: heard.clone(),
        poster: Arc::new(NoPoster),
        timers: Some(queue.clone()),
        expiry: Expiry::default(),
        tokens: Default::default(),
        relay: None,
    });
    Fixture { app, heard, queue }
}

fn ids() -> (ClientId, ChannelId) {
    (
        ClientId::parse(CLIENT_ID).unwrap(),
        ChannelId::parse(CHANNEL).unwrap(),
    )
}

/// An SQS event of these bodies (message ids m0, m1, …).
fn queue_event(bodies: &[String]) -> QueueEvent {
    let records: Vec<Value> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| json!({"messageId": format!("m{i}"), "body": b, "eventSource": "aws:sqs"}))
        .collect();
    serde_json::from_value(json!({ "Records": records })).unwrap()
}

async fn fire<S: DocumentStore + AggregateStore>(f: &Fixture<S>, timers: &[Due]) -> Value {
    let bodies: Vec<String> = timers.iter().map(Due::encode).collect();
    serde_json::to_value(handle(&f.app, queue_event(&bodies)).await).unwrap()
}

fn now(timer: Timer) -> Due {
    Due::after(now_ms(), 0, timer)
}

async fn vote<S: AggregateStore>(store: &S, poll: &AggKey, voter: &str, value: i64) {
    let ballot = Ballot {
        voter: voter.into(),
        user_id: String::new(),
        value,
        weight: 1,
        cast_at: now_secs(),
        bucket: expiry_bucket(now_secs(), Expiry::default().votes_secs),
    };
    store.cast_vote(poll, ballot).await.unwrap();
}

/// Stores a game's poll `boss` with these config fields (`ended`: as if
/// its end had come a second ago); returns it.
async fn game_poll<S: DocumentStore>(store: &S, config: Value) -> Poll {
    let (client, channel) = ids();
    let ended = config.get("ended").is_some();
    let mut config = config;
    config.as_object_mut().unwrap().remove("ended");
    let data = json!({"poll_id": "boss", "prompt": "?", "options": ["a", "b"], "config": config});
    let mut poll = parse_create(&data, now_secs(), medkit::random::token_id(12)).unwrap();
    if ended {
        poll.config.ends_at = now_secs() - 1;
    }
    store
        .put_doc(
            &game_polls::key(&client, &channel, "boss"),
            &serde_json::to_value(&poll).unwrap(),
            3600,
        )
        .await
        .unwrap();
    poll
}

fn run_of(poll: &Poll) -> PollRun {
    let (client, channel) = ids();
    PollRun {
        client,
        channel,
        poll_id: poll.poll_id.clone(),
        run: poll.run.clone(),
    }
}

/// Every kind of timer does what it says, once due, on this store; on
/// DynamoDB (`rt`) each firing's round trips are counted.
async fn timers_fire_what_they_say<S: DocumentStore + AggregateStore>(
    store: S,
    rt: Option<&RoundTripCounter>,
) {
    let f = fixture(store);
    let trips = |expected: usize, what: &str| {
        if let Some(rt) = rt {
            assert_eq!(rt.get(), expected, "round trips of {what}");
            rt.reset();
        }
    };
    let (client, channel) = ids();
    // A REST poll's trailing figures.
    let poll = AggKey {
        client: client.clone(),
        scope: Some(channel.clone()),
        id: "poll1".into(),
    };
    vote(&f.app.store, &poll, "v1", 2).await;
    vote(&f.app.store, &poll, "v2", 4).await;
    rt.inspect(|rt| rt.reset());
    let out = fire(&f, &[now(Timer::VoteFigures(poll.clone()))]).await;
    trips(1, "a vote's trailing figures (the poll's sums)");
    assert_eq!(out, json!({"batchItemFailures": []}));
    let events = f.heard.events();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].name, "vote_update:poll1");
    assert_eq!(events[0].data["stats"]["count"], 2);
    assert_eq!(events[0].data["stats"]["sum"], 6);

    // A game's poll that is already over: its one `expired` update.
    let ended = game_poll(&f.app.store, json!({"ended": true})).await;
    vote(
        &f.app.store,
        &game_polls::votes(&client, &channel, "boss"),
        "v1",
        1,
    )
    .await;
    let mut stale = run_of(&ended);
    stale.run = "an-older-run".into();
    rt.inspect(|rt| rt.reset());
    fire(&f, &[now(Timer::PollEnds(stale))]).await;
    trips(1, "another run's end (the definition read)");
    assert!(
        f.heard.polls().is_empty(),
        "another run's timer touches nothing"
    );
    fire(&f, &[now(Timer::PollEnds(run_of(&ended)))]).await;
    trips(3, "an end (the definition, its claim, the sums)");
    let pushed = f.heard.polls();
    assert_eq!(pushed.len(), 1, "{pushed:?}");
    assert_eq!(pushed[0]["poll"]["status"], "expired");
    assert_eq!(pushed[0]["results"][1], 1, "{}", pushed[0]);
    // Delivered again (SQS is at least once): nothing more.
    fire(&f, &[now(Timer::PollEnds(run_of(&ended)))]).await;
    trips(
        1,
        "an end delivered again (the definition, claimed already)",
    );
    assert!(f.heard.polls().is_empty(), "one expired update per run");
    // Its trailing figures (any run).
    let figures = Timer::PollFigures {
        client: client.clone(),
        channel: channel.clone(),
        poll_id: "boss".into(),
    };
    fire(&f, &[now(figures)]).await;
    trips(
        2,
        "a game poll's trailing figures (the definition, the sums)",
    );
    assert_eq!(f.heard.polls().len(), 1);

    // A poll that has started: `active`; one that has not: nothing yet.
    let started = game_poll(&f.app.store, json!({})).await;
    fire(&f, &[now(Timer::PollStarts(run_of(&started)))]).await;
    let pushed = f.heard.polls();
    assert_eq!(pushed.len(), 1);
    assert_eq!(pushed[0]["poll"]["status"], "active");
    let later = game_poll(&f.app.store, json!({"startsIn": 600})).await;
    fire(&f, &[now(Timer::PollStarts(run_of(&later)))]).await;
    assert!(f.heard.polls().is_empty(), "not started: nothing to say");
    assert!(f.queue.take().is_empty(), "nothing went round again");
}

#[tokio::test]
async fn timers_fire_what_they_say_on_the_embedded_store() {
    timers_fire_what_they_say(EmbeddedStore::in_memory(), None).await;
}

#[tokio::test]
async fn timers_fire_what_they_say_on_dynamodb() {
    if let Some((store, rt)) = testing::dynamo_store("timers_fire_what_they_say").await {
        timers_fire_what_they_say(store, Some(&rt)).await;
    }
}

#[tokio::test]
async fn a_timer_beyond_the_longest_delay_goes_round_again_unchanged() {
    let f = fixture(EmbeddedStore::in_memory());
    let (client, channel) = ids();
    let far = Due::after(
        now_ms(),
        3_600_000,
        Timer::PollFigures {
            client,
            channel,
            poll_id: "boss".into(),
        },
    );
    let started = std::time::Instant::now();
    let out = fire(&f, std::slice::from_ref(&far)).await;
    assert_eq!(out, json!({"batchItemFailures": []}));
    assert_eq!(f.queue.take(), vec![far]);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(1),
        "not held"
    );
    assert!(f.heard.polls().is_empty());
}

#[tokio::test]
async fn a_timer_a_moment_early_is_held_until_due() {
    let f = fixture(EmbeddedStore::in_memory());
    let (client, channel) = ids();
    let poll = AggKey {
        client,
        scope: Some(channel),
        id: "poll1".into(),
    };
    let due = Due::after(now_ms(), 700, Timer::VoteFigures(poll));
    fire(&f, std::slice::from_ref(&due)).await;
    assert!(now_ms() >= due.at_ms, "fired before it was due");
    assert_eq!(f.heard.events().len(), 1);
    assert!(f.queue.take().is_empty());
}

#[tokio::test]
async fn an_unreadable_body_is_dropped_and_a_store_failure_handed_back() {
    let f = fixture(EmbeddedStore::in_memory());
    let out = handle(
        &f.app,
        queue_event(&["not json".into(), r#"{"k":"later"}"#.into()]),
    )
    .await;
    assert!(out.batch_item_failures.is_empty(), "{out:?}");
    // A store that cannot be reached: the message is handed back to SQS.
    let unreachable = medkit::store::dynamo::DynamoStore::connect(
        "http://127.0.0.1:9",
        medkit::store::dynamo::Tables::with_prefix("none-"),
    );
    let f = fixture(unreachable);
    let (client, channel) = ids();
    let timer = Timer::VoteFigures(AggKey {
        client,
        scope: Some(channel),
        id: "poll1".into(),
    });
    let out = fire(&f, &[now(timer)]).await;
    assert_eq!(
        out,
        json!({"batchItemFailures": [{"itemIdentifier": "m0"}]})
    );
    assert!(f.heard.events().is_empty());
}

/// A vote on the Lambda path: the first of a window is announced at once,
/// the next sets one trailing timer in the queue (not a sleep that a frozen
/// instance would never finish), for viewers and for the poll's games.
async fn votes_set_their_trailing_timers_in_the_queue<S>(store: S)
where
    S: DocumentStore + AggregateStore + AuthStore + LimitStore,
{
    let f = fixture(store);
    game_poll(&f.app.store, json!({})).await;
    let router = medkit_aggregate::router(f.app.clone());
    let viewer = |u: &str| {
        testing::bearer(&testing::token(
            medkit::auth::Role::Viewer,
            CHANNEL,
            Some(u),
        ))
    };
    let before = now_ms();
    for (u, value) in [("1", 0), ("2", 1), ("3", 1)] {
        testing::ok(
            &router,
            Method::POST,
            "/v1/e/vote?id=boss",
            &viewer(u),
            Some(&format!(r#"{{"value":{value}}}"#)),
        )
        .await;
    }
    assert_eq!(f.heard.events().len(), 1, "the first vote's vote_update");
    assert_eq!(f.heard.polls().len(), 1, "the first vote's game update");
    let mut queued = f.queue.take();
    queued.sort_by_key(|d| d.at_ms);
    assert_eq!(queued.len(), 2, "one trailing timer each: {queued:?}");
    assert!(matches!(queued[0].timer, Timer::PollFigures { .. }));
    assert!(matches!(queued[1].timer, Timer::VoteFigures(_)));
    let after = now_ms();
    let within =
        |d: &Due, window_ms: i64| (before + window_ms - 50..=after + window_ms).contains(&d.at_ms);
    assert!(within(&queued[0], 1_000), "{queued:?}");
    assert!(within(&queued[1], 5_000), "{queued:?}");
    // When they fire: the last figures.
    let out = fire(
        &f,
        &[Due {
            at_ms: now_ms(),
            ..queued[1].clone()
        }],
    )
    .await;
    assert_eq!(out, json!({"batchItemFailures": []}));
    assert_eq!(f.heard.events()[0].data["stats"]["count"], 3);
}

#[tokio::test]
async fn votes_set_their_trailing_timers_in_the_queue_on_the_embedded_store() {
    votes_set_their_trailing_timers_in_the_queue(EmbeddedStore::in_memory()).await;
}

#[tokio::test]
async fn votes_set_their_trailing_timers_in_the_queue_on_dynamodb() {
    if let Some((store, _)) = testing::dynamo_store("votes_set_trailing_timers").await {
        votes_set_their_trailing_timers_in_the_queue(store).await;
    }
}

fn bootstrap() -> std::path::PathBuf {
    env!("CARGO_BIN_EXE_medkit-timers").into()
}

#[tokio::test]
async fn the_timers_bootstrap_needs_its_queue_and_survives_a_malformed_event() {
    let stub = RuntimeStub::start().await;
    assert_init_fails_naming(&stub, &bootstrap(), "MEDKIT_TIMERS_QUEUE_URL", None);
    let stub = RuntimeStub::start().await;
    let answer = assert_survives_malformed(
        &stub,
        &bootstrap(),
        &[r#"{"Records": "not a list"}"#],
        r#"{"Records": []}"#.into(),
    )
    .await;
    assert_eq!(answer.body_json()["batchItemFailures"], json!([]));
}

/// The sample events in events/timers (what `cargo lambda invoke` and the
/// README use): each is handled, none handed back; the one due in 2100
/// goes round the queue again.
#[tokio::test]
async fn the_sample_timer_events_run_through_the_handler() {
    let f = fixture(EmbeddedStore::in_memory());
    let events = testing::sample_events("timers");
    assert_eq!(events.len(), 3);
    for (name, text) in events {
        let event: QueueEvent = serde_json::from_str(&text).unwrap();
        let out = handle(&f.app, event).await;
        assert!(out.batch_item_failures.is_empty(), "{name}: {out:?}");
    }
    let events = f.heard.events();
    assert_eq!(events.len(), 1, "the vote figures");
    assert_eq!(events[0].name, "vote_update:poll1");
    let again = f.queue.take();
    assert_eq!(again.len(), 1, "{again:?}");
    assert!(matches!(again[0].timer, Timer::PollStarts(_)));
    assert_eq!(again[0].at_ms, 4_102_444_800_000);
}

/// Stores match `m1`'s poll `boss` over channels 10 and 11 (their parts and
/// the match's record), `ended` as if its end had come a second ago.
async fn match_poll<S: DocumentStore>(store: &S, ended: bool) -> MatchPoll {
    let client = ClientId::parse(CLIENT_ID).unwrap();
    let data = json!({"poll_id": "boss", "prompt": "?", "options": ["a", "b"]});
    let mut poll = parse_create(&data, now_secs(), medkit::random::token_id(12)).unwrap();
    poll.match_id = Some("m1".into());
    if ended {
        poll.config.ends_at = now_secs() - 1;
    }
    let mp = MatchPoll {
        match_id: "m1".into(),
        poll: poll.clone(),
        channels: vec!["10".into(), "11".into()],
    };
    for ch in mp.channel_ids() {
        let part = serde_json::to_value(&poll).unwrap();
        store
            .put_doc(&game_polls::key(&client, &ch, "boss"), &part, 3600)
            .await
            .unwrap();
    }
    let record = serde_json::to_value(&mp).unwrap();
    store
        .put_doc(
            &game_matches::poll_key(&client, "m1", "boss"),
            &record,
            3600,
        )
        .await
        .unwrap();
    mp
}

/// A match poll's timers: its figures carry every channel's results and
/// the overall; its end sends one `expired`, to the match's subscribers.
async fn match_timers_fire_what_they_say<S: DocumentStore + AggregateStore>(
    store: S,
    rt: Option<&RoundTripCounter>,
) {
    let f = fixture(store);
    let client = ClientId::parse(CLIENT_ID).unwrap();
    let mp = match_poll(&f.app.store, true).await;
    for (ch, voter, value) in [("10", "v1", 0), ("11", "v2", 1), ("11", "v3", 1)] {
        let ch = ChannelId::parse(ch).unwrap();
        vote(
            &f.app.store,
            &game_polls::votes(&client, &ch, "boss"),
            voter,
            value,
        )
        .await;
    }
    let figures = Timer::MatchPollFigures {
        client: client.clone(),
        match_id: "m1".into(),
        poll_id: "boss".into(),
    };
    rt.inspect(|rt| rt.reset());
    fire(&f, &[now(figures)]).await;
    if let Some(rt) = rt {
        assert_eq!(rt.get(), 3, "the record, then each channel's sums");
        rt.reset();
    }
    let pushed = std::mem::take(&mut *f.heard.pushes.lock().unwrap());
    assert_eq!(pushed.len(), 1);
    assert_eq!(
        pushed[0].to,
        medkit::gamelink::matches::poll_subscription("m1")
    );
    let body: Value = serde_json::from_str::<Value>(&pushed[0].frame).unwrap()["data"].clone();
    assert_eq!(body["results"]["10"]["results"], json!([1, 0]));
    assert_eq!(body["results"]["11"]["results"], json!([0, 2]));
    assert_eq!(body["overall"]["results"], json!([1, 2]));
    assert_eq!(body["overall"]["count"], 3);
    let run = MatchPollRun {
        client: client.clone(),
        match_id: "m1".into(),
        poll_id: "boss".into(),
        run: mp.poll.run.clone(),
    };
    for _ in 0..2 {
        fire(&f, &[now(Timer::MatchPollEnds(run.clone()))]).await;
    }
    let pushed = std::mem::take(&mut *f.heard.pushes.lock().unwrap());
    assert_eq!(pushed.len(), 1, "one expired update");
    let body: Value = serde_json::from_str::<Value>(&pushed[0].frame).unwrap()["data"].clone();
    assert_eq!(body["overall"]["status"], "expired");
}

#[tokio::test]
async fn match_timers_fire_what_they_say_on_the_embedded_store() {
    match_timers_fire_what_they_say(EmbeddedStore::in_memory(), None).await;
}

#[tokio::test]
async fn match_timers_fire_what_they_say_on_dynamodb() {
    if let Some((store, rt)) = testing::dynamo_store("match_timers").await {
        match_timers_fire_what_they_say(store, Some(&rt)).await;
    }
}

/// A REST vote on a channel's part of a match poll reads no other channel:
/// it sets the match's figures timer (due now), beside the channel's own.
#[tokio::test]
async fn a_vote_on_a_match_polls_part_sets_the_matchs_timer() {
    let f = fixture(EmbeddedStore::in_memory());
    match_poll(&f.app.store, false).await;
    let router = medkit_aggregate::router(f.app.clone());
    let viewer = testing::bearer(&testing::token(
        medkit::auth::Role::Viewer,
        CHANNEL,
        Some("1"),
    ));
    let before = now_ms();
    testing::ok(
        &router,
        Method::POST,
        "/v1/e/vote?id=boss",
        &viewer,
        Some(r#"{"value":1}"#),
    )
    .await;
    let queued = f.queue.take();
    let matched: Vec<_> = queued
        .iter()
        .filter(|d| matches!(d.timer, Timer::MatchPollFigures { .. }))
        .collect();
    assert_eq!(matched.len(), 1, "{queued:?}");
    assert!(
        matched[0].at_ms >= before && matched[0].at_ms <= now_ms(),
        "due now"
    );
}
