//! The AWS fan-out path on the local Lambda topology (`medkit serve --fanout
//! stream` on DynamoDB Local): jobs are items on the connections table, its
//! stream feeds the fan-out worker under the template's event source
//! mapping, and the worker posts through the server's Management API, which
//! can be made to fail (`--inject-post-failures`) or the worker to die
//! part-way (`--inject-worker-crash-after`). Issue #19.
//!
//! Viewers here dedupe by frame id as the messenger does
//! (`clients/js/messenger.js`), and the tests count what arrived on the wire.

use std::time::{Duration, Instant};

use medkit::realtime::envelope::decode_message;
use reqwest::Method as M;
use serde_json::{Value, json};

use crate::common::{dynamodb, send};
use crate::realtime::{Ctx, Ws, next_frame};

/// A server on the stream topology, on tables of its own.
fn stream_server(endpoint: &str, extra: &[&str]) -> Ctx {
    let prefix = format!("s{}-", medkit::random::token_id(8));
    let mut args = vec![
        "--dynamodb-endpoint",
        endpoint,
        "--table-prefix",
        &prefix,
        "--fanout",
        "stream",
    ];
    args.extend_from_slice(extra);
    Ctx::start(&args)
}

/// Every frame a socket receives until `quiet` passes with none (or
/// `limit` passes), in arrival order.
async fn drain(ws: &mut Ws, quiet: Duration, limit: Duration) -> Vec<Value> {
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    while Instant::now() < deadline {
        match next_frame(ws, quiet).await {
            Some(f) => got.push(f),
            None => break,
        }
    }
    got
}

/// The broadcaster writes channel 1001's state `{"round": round}`: one
/// `channel_state_update` event, queued as a job on the stream.
async fn write_state(ctx: &Ctx, caster: &str, round: i64) {
    let (s, v) = send(
        M::POST,
        &ctx.url("channel_state"),
        Some(&ctx.auth(caster)),
        Some(json!({ "round": round })),
    )
    .await;
    assert_eq!(s, 200, "{v}");
}

/// [`drain`] on every socket at once.
async fn drain_all(sockets: &mut [Ws], quiet: Duration, limit: Duration) -> Vec<Vec<Value>> {
    futures_util::future::join_all(sockets.iter_mut().map(|ws| drain(ws, quiet, limit))).await
}

/// What a messenger shows of `frames`: each id once.
fn deduped(frames: &[Value]) -> Vec<&Value> {
    let mut seen = std::collections::HashSet::new();
    frames
        .iter()
        .filter(|f| seen.insert(f["id"].as_str().expect("frames carry an id").to_string()))
        .collect()
}

fn event_data(frame: &Value) -> Value {
    decode_message(frame["message"].as_str().unwrap()).unwrap()["data"].clone()
}

/// A channel's state events come through the stream worker, in the order of
/// the writes (the channel's jobs share a partition key, processed in
/// order), each with an increasing `seq`.
#[tokio::test]
async fn state_events_arrive_through_the_stream_in_order() {
    let Some(endpoint) = dynamodb() else { return };
    let ctx = stream_server(&endpoint, &[]);
    let mut ws = ctx.viewer_socket("1001", "81").await;
    let caster = ctx.token("broadcaster", "1001", Some("1001")).await;
    for round in 0..8 {
        write_state(&ctx, &caster, round).await;
    }
    let frames = drain(&mut ws, Duration::from_secs(3), Duration::from_secs(30)).await;
    let rounds: Vec<Value> = frames
        .iter()
        .map(|f| event_data(f)["round"].clone())
        .collect();
    assert_eq!(rounds, (0..8).map(|r| json!(r)).collect::<Vec<_>>());
    assert!(frames.iter().all(|f| f["snapshot"] == json!(true)));
    let seqs: Vec<u64> = frames.iter().map(|f| f["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
}

/// Issue #19, finding 1: posts that failed were counted and dropped. With
/// one post in ten failing, every viewer still gets every extension-wide
/// send (16 shard jobs through the stream) exactly once after dedupe.
#[tokio::test]
async fn failed_posts_are_retried_until_every_viewer_has_the_frame() {
    let Some(endpoint) = dynamodb() else { return };
    let ctx = stream_server(&endpoint, &["--inject-post-failures", "100"]);
    let mut viewers = Vec::new();
    for i in 0..24 {
        let channel = if i % 2 == 0 { "1001" } else { "2002" };
        viewers.push(ctx.viewer_socket(channel, &format!("9{i}")).await);
    }
    let admin = ctx.token("admin", "1001", None).await;
    for n in 0..4 {
        let (s, v) = ctx
            .post(
                "extension_broadcast",
                &admin,
                json!({"target": "broadcast", "event": "season", "data": {"n": n}}),
            )
            .await;
        assert_eq!(s, 200, "{v}");
    }
    let mut wire = 0;
    for frames in drain_all(
        &mut viewers,
        Duration::from_secs(6),
        Duration::from_secs(40),
    )
    .await
    {
        wire += frames.len();
        let mut shown: Vec<i64> = deduped(&frames)
            .iter()
            .map(|f| event_data(f)["n"].as_i64().unwrap())
            .collect();
        shown.sort();
        assert_eq!(shown, vec![0, 1, 2, 3], "every send once");
    }
    println!(
        "{} viewers x 4 sends: {wire} frames on the wire",
        viewers.len()
    );
}

/// Issue #19, finding 1: a worker that dies part-way (time out, out of
/// memory) has its whole job retried, so viewers it had reached get the
/// frame again; the frame's id lets them drop the copy.
#[tokio::test]
async fn a_job_retried_after_its_worker_died_is_shown_once() {
    let Some(endpoint) = dynamodb() else { return };
    let ctx = stream_server(&endpoint, &["--inject-worker-crash-after", "3"]);
    let mut viewers = Vec::new();
    for i in 0..12 {
        viewers.push(ctx.viewer_socket("1001", &format!("7{i}")).await);
    }
    let caster = ctx.token("broadcaster", "1001", Some("1001")).await;
    write_state(&ctx, &caster, 1).await;
    let mut wire = 0;
    for frames in drain_all(
        &mut viewers,
        Duration::from_secs(3),
        Duration::from_secs(30),
    )
    .await
    {
        wire += frames.len();
        let shown = deduped(&frames);
        assert_eq!(shown.len(), 1, "shown once: {frames:?}");
        assert_eq!(event_data(shown[0])["round"], json!(1));
    }
    assert!(
        wire > viewers.len(),
        "the retried job posted again to viewers already served ({wire} frames)"
    );
    let (_, seen) = send(
        M::GET,
        &format!("{}/dev/fanout-failures", ctx.server.base),
        None,
        None,
    )
    .await;
    assert_eq!(seen["crashed"], 1, "{seen}");
    assert_eq!(seen["failures"], json!([]), "the retry delivered it");
}

/// Issue #19, finding 1: a job that keeps failing vanished. Now, when every
/// follow-up and the mapping's retries are spent, its record goes to the
/// on-failure destination, which the dev server shows.
#[tokio::test]
async fn a_job_that_keeps_failing_goes_to_the_on_failure_destination() {
    let Some(endpoint) = dynamodb() else { return };
    let ctx = stream_server(&endpoint, &["--inject-post-failures", "1000"]);
    let mut ws = ctx.viewer_socket("1001", "61").await;
    let caster = ctx.token("broadcaster", "1001", Some("1001")).await;
    write_state(&ctx, &caster, 1).await;
    let failures_url = format!("{}/dev/fanout-failures", ctx.server.base);
    let deadline = Instant::now() + Duration::from_secs(45);
    let failures = loop {
        let (s, v) = send(M::GET, &failures_url, None, None).await;
        assert_eq!(s, 200);
        let list = v["failures"].as_array().unwrap().clone();
        if !list.is_empty() || Instant::now() > deadline {
            break list;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(failures.len(), 1, "{failures:?}");
    assert_eq!(failures[0]["reason"], "retries exhausted");
    // The send's own job and 3 follow-ups, then the mapping's 2 retries of
    // the last follow-up: 3 invocations of the record it gave up on.
    assert_eq!(failures[0]["invocations"], 3);
    assert!(
        failures[0]["partition_key"]
            .as_str()
            .unwrap()
            .contains("|job|r:"),
        "the follow-up, not the channel's job, was given up on"
    );
    assert!(
        next_frame(&mut ws, Duration::from_millis(300))
            .await
            .is_none()
    );
}
