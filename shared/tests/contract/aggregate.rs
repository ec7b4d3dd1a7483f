//! Contract suite of the aggregate port (votes, rankings, accumulate), run
//! against both adapters: embedded always, DynamoDB when DynamoDB Local is
//! configured (always in CI).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use medkit::aggregate::AggKey;
use medkit::aggregate::accumulate::Entry;
use medkit::aggregate::rank::top_scores;
use medkit::aggregate::vote::{Ballot, Sums};
use medkit::aggregate::window::expiry_bucket;
use medkit::clock::now_secs;
use medkit::error::StoreError;
use medkit::ids::{AggregateId, ChannelId, ClientId, ViewerId};
use medkit::store::embedded::EmbeddedStore;
use medkit::store::{AggregateStore, Store};

const WEEK: i64 = 7 * 86400;

fn poll(channel: &str, id: &str) -> AggKey {
    AggKey::for_caller(
        &ClientId::parse("client1").unwrap(),
        Some(&ChannelId::parse(channel).unwrap()),
        &AggregateId::parse(id).unwrap(),
    )
    .unwrap()
}

fn ballot(voter: &str, value: i64, weight: i64) -> Ballot {
    Ballot {
        voter: voter.into(),
        user_id: format!("user-{voter}"),
        value,
        weight,
        cast_at: now_secs(),
        bucket: expiry_bucket(now_secs(), WEEK),
    }
}

fn viewer(v: &str) -> ViewerId {
    ViewerId::parse(v).unwrap()
}

/// The sums the given ballots add up to: what the store must report.
fn recompute(ballots: &[Ballot]) -> Sums {
    let mut s = Sums::default();
    for b in ballots {
        s.add(b.value, b.weight);
    }
    s
}

async fn votes_replace_and_total<S: Store>(s: S) {
    let p = poll("10", "default");
    let after_first = s.cast_vote(&p, ballot("A1", 3, 2)).await.unwrap();
    assert_eq!(after_first, Sums::of(3, 2));
    s.cast_vote(&p, ballot("A2", 40, 1)).await.unwrap();
    // A1 changes their vote: the old ballot leaves the sums.
    let after = s.cast_vote(&p, ballot("A1", 5, 1)).await.unwrap();
    let mut expected = Sums::of(5, 1);
    expected.add(40, 1);
    assert_eq!(after, expected);
    let (totals, mine) = s.vote_totals(&p, Some(&viewer("A1"))).await.unwrap();
    assert_eq!(totals, expected);
    assert_eq!(mine.unwrap().value, 5);
    let (_, nobody) = s.vote_totals(&p, Some(&viewer("A9"))).await.unwrap();
    assert_eq!(nobody, None);
    let mut ballots = s.ballots(&p).await.unwrap();
    ballots.sort_by(|a, b| a.voter.cmp(&b.voter));
    assert_eq!(ballots.len(), 2);
    assert_eq!((ballots[0].voter.as_str(), ballots[0].value), ("A1", 5));
    assert_eq!(ballots[1].user_id, "user-A2");
    // Polls are separate per id, per channel, and global ids are extension-wide.
    assert_eq!(
        s.vote_totals(&poll("11", "default"), None).await.unwrap().0,
        Sums::default()
    );
    assert_eq!(
        s.vote_totals(&poll("10", "other"), None).await.unwrap().0,
        Sums::default()
    );
    s.cast_vote(&poll("10", "global-q"), ballot("A1", 1, 1))
        .await
        .unwrap();
    assert_eq!(
        s.vote_totals(&poll("99", "global-q"), None)
            .await
            .unwrap()
            .0,
        Sums::of(1, 1)
    );
    // Deleting removes ballots and sums; a missing poll deletes fine.
    s.delete_poll(&p).await.unwrap();
    assert_eq!(s.vote_totals(&p, None).await.unwrap().0, Sums::default());
    assert!(s.ballots(&p).await.unwrap().is_empty());
    s.delete_poll(&poll("10", "never")).await.unwrap();
    let again = s.cast_vote(&p, ballot("A1", 2, 1)).await.unwrap();
    assert_eq!(
        again,
        Sums::of(2, 1),
        "a voter of a deleted poll starts afresh"
    );
}

/// 200 voters change their vote several times, all at once, and each voter
/// also races two requests of their own: the sums must equal what the final
/// ballots add up to, exactly.
async fn concurrent_votes_are_exact<S: Store>(s: S, voters: usize) {
    let p = poll("20", "hot");
    let mut tasks = tokio::task::JoinSet::new();
    for v in 0..voters {
        let s = s.clone();
        let p = p.clone();
        tasks.spawn(async move {
            let voter = format!("V{v}");
            for round in 0..3i64 {
                let value = (v as i64 * 7 + round * 13) % 50 - 10;
                let weight = 1 + (v as i64 + round) % 3;
                s.cast_vote(&p, ballot(&voter, value, weight))
                    .await
                    .unwrap();
            }
            // Two requests of the same voter racing each other.
            let a = s.cast_vote(&p, ballot(&voter, 1, 1));
            let b = s.cast_vote(&p, ballot(&voter, 2, 2));
            let (ra, rb) = tokio::join!(a, b);
            ra.unwrap();
            rb.unwrap();
        });
    }
    while let Some(t) = tasks.join_next().await {
        t.unwrap();
    }
    let ballots = s.ballots(&p).await.unwrap();
    assert_eq!(ballots.len(), voters, "one ballot per voter");
    for b in &ballots {
        assert!(
            (b.value, b.weight) == (1, 1) || (b.value, b.weight) == (2, 2),
            "the last ballot is one of the racing pair: {b:?}"
        );
    }
    let (totals, _) = s.vote_totals(&p, None).await.unwrap();
    let expected = recompute(&ballots);
    assert_eq!(totals, expected);
    assert_eq!(totals.n, ballots.iter().map(|b| b.weight).sum::<i64>());
    println!(
        "{voters} voters: count {} sum {} (exact)",
        totals.n, totals.s
    );
}

async fn expired_ballots_leave_the_sums<S: Store>(s: S) {
    let p = poll("30", "short");
    let now = now_secs();
    let mut soon = ballot("E1", 4, 3);
    soon.bucket = now + 2;
    s.cast_vote(&p, soon).await.unwrap();
    s.cast_vote(&p, ballot("E2", 6, 1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let (totals, mine) = s.vote_totals(&p, Some(&viewer("E1"))).await.unwrap();
    assert_eq!(
        totals,
        Sums::of(6, 1),
        "the expired ballot no longer counts"
    );
    assert_eq!(mine, None);
    assert_eq!(s.ballots(&p).await.unwrap().len(), 1);
    // Voting again after expiry counts once, not twice.
    let after = s.cast_vote(&p, ballot("E1", 4, 3)).await.unwrap();
    let mut expected = Sums::of(6, 1);
    expected.add(4, 3);
    assert_eq!(after, expected);
}

async fn rank_keys_replace_and_count<S: Store>(s: S) {
    let r = poll("40", "words");
    let b = expiry_bucket(now_secs(), 86400);
    assert_eq!(
        s.set_rank_key(&r, &viewer("A1"), "pizza", b).await.unwrap(),
        None
    );
    s.set_rank_key(&r, &viewer("A2"), "pizza", b).await.unwrap();
    s.set_rank_key(&r, &viewer("A3"), "tacos", b).await.unwrap();
    // A user's new key replaces the old one, and says what it was.
    assert_eq!(
        s.set_rank_key(&r, &viewer("A2"), "sushi", b).await.unwrap(),
        Some("pizza".to_string())
    );
    // The same key again changes nothing.
    assert_eq!(
        s.set_rank_key(&r, &viewer("A2"), "sushi", b).await.unwrap(),
        Some("sushi".to_string())
    );
    let top = top_scores(s.rank_counts(&r).await.unwrap(), 100);
    assert_eq!(
        top,
        vec![
            ("pizza".into(), 1),
            ("sushi".into(), 1),
            ("tacos".into(), 1)
        ]
    );
    s.set_rank_key(&r, &viewer("A3"), "pizza", b).await.unwrap();
    let top = top_scores(s.rank_counts(&r).await.unwrap(), 100);
    assert_eq!(top, vec![("pizza".into(), 2), ("sushi".into(), 1)]);
    assert_eq!(
        s.rank_key(&r, &viewer("A3")).await.unwrap(),
        Some("pizza".into())
    );
    assert_eq!(s.rank_key(&r, &viewer("A9")).await.unwrap(), None);
    s.delete_rank(&r).await.unwrap();
    assert!(top_scores(s.rank_counts(&r).await.unwrap(), 100).is_empty());
    assert_eq!(s.rank_key(&r, &viewer("A3")).await.unwrap(), None);
}

async fn concurrent_rank_changes_are_exact<S: Store>(s: S, voters: usize) {
    let r = poll("41", "hot");
    let b = expiry_bucket(now_secs(), 86400);
    let keys = ["red", "green", "blue", "gold", "grey"];
    let mut tasks = tokio::task::JoinSet::new();
    for v in 0..voters {
        let s = s.clone();
        let r = r.clone();
        tasks.spawn(async move {
            let me = viewer(&format!("R{v}"));
            for round in 0..3 {
                let k = keys[(v + round) % keys.len()];
                s.set_rank_key(&r, &me, k, b).await.unwrap();
            }
            let (x, y) = tokio::join!(
                s.set_rank_key(&r, &me, "red", b),
                s.set_rank_key(&r, &me, "blue", b)
            );
            x.unwrap();
            y.unwrap();
        });
    }
    while let Some(t) = tasks.join_next().await {
        t.unwrap();
    }
    let mut expected: HashMap<String, i64> = HashMap::new();
    for v in 0..voters {
        let k = s
            .rank_key(&r, &viewer(&format!("R{v}")))
            .await
            .unwrap()
            .unwrap();
        assert!(k == "red" || k == "blue", "{k}");
        *expected.entry(k).or_default() += 1;
    }
    let top = top_scores(s.rank_counts(&r).await.unwrap(), 100);
    let got: HashMap<String, i64> = top.into_iter().collect();
    assert_eq!(got, expected);
    assert_eq!(got.values().sum::<i64>(), voters as i64);
}

/// Races deletes against writers: `voters` tasks call `write(v, round)`
/// every 5 ms until five deletes (10 ms apart) are over and each writer has
/// written twice more (at most 200 rounds), so writes land before, between
/// and after the deletes.
async fn race_deletes<W, WF, D, DF>(voters: usize, write: W, delete: D)
where
    W: Fn(usize, usize) -> WF + Clone + Send + 'static,
    WF: std::future::Future<Output = ()> + Send,
    D: Fn() -> DF + Send + 'static,
    DF: std::future::Future<Output = ()> + Send,
{
    let deleting = Arc::new(AtomicBool::new(true));
    let mut tasks = tokio::task::JoinSet::new();
    for v in 0..voters {
        let (write, deleting) = (write.clone(), deleting.clone());
        tasks.spawn(async move {
            let mut after = 0;
            for round in 0..200 {
                write(v, round).await;
                after += i32::from(!deleting.load(Ordering::SeqCst));
                if after == 2 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
    }
    let deleter = tokio::spawn(async move {
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            delete().await;
        }
        deleting.store(false, Ordering::SeqCst);
    });
    while let Some(t) = tasks.join_next().await {
        t.unwrap();
    }
    deleter.await.unwrap();
}

/// Deletes racing votes: voters keep casting new ballots while the poll is
/// deleted again and again. Whatever the interleaving, the sums afterwards
/// equal what the surviving ballots add up to (a delete is all or nothing
/// with respect to each vote).
async fn deletes_racing_votes_keep_sums_and_ballots_equal<S: Store>(s: S) {
    let p = poll("21", "racing");
    let (vs, vp) = (s.clone(), p.clone());
    let (ds, dp) = (s.clone(), p.clone());
    race_deletes(
        8,
        move |v, round| {
            let (s, p) = (vs.clone(), vp.clone());
            async move {
                let value = ((v * 5 + round * 3) % 20) as i64;
                s.cast_vote(&p, ballot(&format!("D{v}-{round}"), value, 1))
                    .await
                    .unwrap();
            }
        },
        move || {
            let (s, p) = (ds.clone(), dp.clone());
            async move { s.delete_poll(&p).await.unwrap() }
        },
    )
    .await;
    let ballots = s.ballots(&p).await.unwrap();
    let (totals, _) = s.vote_totals(&p, None).await.unwrap();
    assert_eq!(
        totals,
        recompute(&ballots),
        "{} ballots survive",
        ballots.len()
    );
    println!("{} ballots survive the deletes; sums agree", ballots.len());
}

/// The same for rankings: the counts equal the keys the voters still hold.
async fn deletes_racing_rank_changes_keep_counts_and_holders_equal<S: Store>(s: S) {
    let r = poll("42", "racing");
    let b = expiry_bucket(now_secs(), 86400);
    let voters = 8usize;
    let (vs, vr) = (s.clone(), r.clone());
    let (ds, dr) = (s.clone(), r.clone());
    race_deletes(
        voters,
        move |v, round| {
            let (s, r) = (vs.clone(), vr.clone());
            async move {
                let keys = ["red", "green", "blue"];
                let me = viewer(&format!("Q{v}"));
                s.set_rank_key(&r, &me, keys[(v + round) % keys.len()], b)
                    .await
                    .unwrap();
            }
        },
        move || {
            let (s, r) = (ds.clone(), dr.clone());
            async move { s.delete_rank(&r).await.unwrap() }
        },
    )
    .await;
    let mut expected: HashMap<String, i64> = HashMap::new();
    for v in 0..voters {
        if let Some(k) = s.rank_key(&r, &viewer(&format!("Q{v}"))).await.unwrap() {
            *expected.entry(k).or_default() += 1;
        }
    }
    let got: HashMap<String, i64> = top_scores(s.rank_counts(&r).await.unwrap(), 100)
        .into_iter()
        .collect();
    assert_eq!(got, expected);
}

fn entry(channel: &str, observed: i64, data: &str) -> Entry {
    Entry {
        observed,
        channel_id: channel.into(),
        opaque_user_id: "U1".into(),
        user_id: String::new(),
        data: data.into(),
    }
}

async fn entries_newest_first_per_channel_and_all<S: Store>(s: S) {
    let exp = now_secs() + 86400;
    for (ch, t) in [("50", 1000), ("50", 3000), ("51", 2000), ("50", 4000)] {
        s.add_entry(
            &poll(ch, "notes"),
            &entry(ch, t, &format!("{{\"t\":{t}}}")),
            exp,
        )
        .await
        .unwrap();
    }
    let mine = s.entries(&poll("50", "notes"), 0, None, 100).await.unwrap();
    let times: Vec<i64> = mine.iter().map(|e| e.observed).collect();
    assert_eq!(times, vec![4000, 3000, 1000]);
    assert_eq!(mine[0].data, r#"{"t":4000}"#);
    let since = s
        .entries(&poll("50", "notes"), 1000, None, 100)
        .await
        .unwrap();
    assert_eq!(since.len(), 2, "strictly after start");
    let limited = s.entries(&poll("50", "notes"), 0, None, 2).await.unwrap();
    assert_eq!(
        limited.iter().map(|e| e.observed).collect::<Vec<_>>(),
        vec![4000, 3000]
    );
    let mut all = poll("50", "notes");
    all.scope = None;
    let every = s.entries(&all, 0, None, 100).await.unwrap();
    assert_eq!(
        every.iter().map(|e| e.observed).collect::<Vec<_>>(),
        vec![4000, 3000, 2000, 1000]
    );
    assert_eq!(s.entries(&all, 0, None, 3).await.unwrap().len(), 3);
    // Paging backwards: strictly before `before`, newest first.
    let older = s
        .entries(&poll("50", "notes"), 0, Some(3000), 100)
        .await
        .unwrap();
    assert_eq!(
        older.iter().map(|e| e.observed).collect::<Vec<_>>(),
        vec![1000]
    );
    let between = s.entries(&all, 1000, Some(4000), 100).await.unwrap();
    assert_eq!(
        between.iter().map(|e| e.observed).collect::<Vec<_>>(),
        vec![3000, 2000]
    );
    // Expired entries are invisible.
    s.add_entry(
        &poll("52", "notes"),
        &entry("52", 5000, "1"),
        now_secs() - 1,
    )
    .await
    .unwrap();
    assert!(
        s.entries(&poll("52", "notes"), 0, None, 100)
            .await
            .unwrap()
            .is_empty()
    );
}

contract! {
    votes_replace_and_total;
    concurrent_votes_are_exact, 200;
    expired_ballots_leave_the_sums;
    rank_keys_replace_and_count;
    concurrent_rank_changes_are_exact, 200;
    deletes_racing_votes_keep_sums_and_ballots_equal;
    deletes_racing_rank_changes_keep_counts_and_holders_equal;
    entries_newest_first_per_channel_and_all;
}

/// DynamoDB round trips per aggregate operation (issue targets: vote ≤ 2,
/// vote totals 1, rank ≤ 2, accumulate 1).
#[tokio::test]
async fn dynamodb_round_trips_per_aggregate_operation() {
    let Some((s, rt)) =
        medkit::testing::dynamo_store("dynamodb_round_trips_per_aggregate_operation").await
    else {
        return;
    };
    let p = poll("60", "rt");
    let b = expiry_bucket(now_secs(), 86400);
    macro_rules! measure {
        ($what:literal, $expected:expr, $op:expr) => {{
            rt.reset();
            $op.await.unwrap();
            let n = rt.get();
            println!("round trips: {} = {n}", $what);
            assert_eq!(n, $expected, $what);
        }};
    }
    measure!("cast_vote (first)", 2, s.cast_vote(&p, ballot("A1", 1, 1)));
    measure!(
        "cast_vote (changed)",
        2,
        s.cast_vote(&p, ballot("A1", 2, 1))
    );
    measure!(
        "vote_totals (+ own ballot)",
        1,
        s.vote_totals(&p, Some(&viewer("A1")))
    );
    measure!(
        "set_rank_key (first)",
        2,
        s.set_rank_key(&p, &viewer("A1"), "k", b)
    );
    measure!(
        "set_rank_key (changed)",
        2,
        s.set_rank_key(&p, &viewer("A1"), "j", b)
    );
    measure!(
        "set_rank_key (same)",
        1,
        s.set_rank_key(&p, &viewer("A1"), "j", b)
    );
    measure!(
        "add_entry",
        1,
        s.add_entry(&p, &entry("60", 1, "1"), now_secs() + 60)
    );
    measure!("entries (channel)", 1, s.entries(&p, 0, None, 100));
}

/// A delete cut off part-way (its BatchWriteItems start failing after the
/// first few, as when the function runs out of time in a big poll) leaves no
/// half-deleted poll: it reads empty at once and its voters start afresh.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dynamodb_a_delete_cut_off_part_way_leaves_no_half_deleted_poll() {
    let Some((s, _)) = medkit::testing::dynamo_store(
        "dynamodb_a_delete_cut_off_part_way_leaves_no_half_deleted_poll",
    )
    .await
    else {
        return;
    };
    let p = poll("61", "big");
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..8 {
        let (s, p) = (s.clone(), p.clone());
        tasks.spawn(async move {
            for v in 0..20 {
                s.cast_vote(&p, ballot(&format!("B{t}-{v}"), v, 1))
                    .await
                    .unwrap();
            }
        });
    }
    while let Some(t) = tasks.join_next().await {
        t.unwrap();
    }
    s.faults().fail_batch_writes_after(2);
    let deleted = s.delete_poll(&p).await;
    let ballots = s.ballots(&p).await.unwrap();
    let (totals, _) = s.vote_totals(&p, None).await.unwrap();
    assert_eq!(totals, recompute(&ballots), "sums and ballots agree");
    assert!(deleted.is_ok(), "the delete happened: {deleted:?}");
    assert!(ballots.is_empty(), "{} ballots left", ballots.len());
    let again = s.cast_vote(&p, ballot("B0-3", 7, 2)).await.unwrap();
    assert_eq!(
        again,
        Sums::of(7, 2),
        "a voter of the deleted poll starts afresh"
    );
}

/// A vote that keeps losing its race retries while its request's deadline
/// leaves room for another attempt, then gives up (409) in time to answer,
/// instead of running past the function's timeout.
#[tokio::test]
async fn dynamodb_vote_retries_stop_at_the_requests_deadline() {
    use medkit::budget;
    let Some((s, rt)) =
        medkit::testing::dynamo_store("dynamodb_vote_retries_stop_at_the_requests_deadline").await
    else {
        return;
    };
    let p = poll("62", "contended");
    // No deadline (the dev server): the attempt count alone decides.
    s.faults().lose_vote_races(1000);
    rt.reset();
    let unbounded = s.cast_vote(&p, ballot("C1", 1, 1)).await;
    assert!(
        matches!(unbounded, Err(StoreError::Contention)),
        "{unbounded:?}"
    );
    let attempts = rt.get();
    // Plenty of time left: the same attempts.
    let roomy = tokio::time::Instant::now() + budget::ATTEMPT_RESERVE * 3;
    rt.reset();
    let within = budget::until(roomy, s.cast_vote(&p, ballot("C1", 1, 1))).await;
    assert!(matches!(within, Err(StoreError::Contention)), "{within:?}");
    assert_eq!(rt.get(), attempts, "one BatchGetItem per attempt");
    // Less than a worst-case attempt left: one attempt, then 409 at once.
    let near = tokio::time::Instant::now() + budget::ATTEMPT_RESERVE / 2;
    rt.reset();
    let cut = budget::until(near, s.cast_vote(&p, ballot("C1", 1, 1))).await;
    assert!(matches!(cut, Err(StoreError::Contention)), "{cut:?}");
    assert_eq!(rt.get(), 1);
    println!("attempts without a deadline: {attempts}; with less than a reserve left: 1");
    // The races over, the vote goes through.
    s.faults().lose_vote_races(0);
    assert_eq!(
        s.cast_vote(&p, ballot("C1", 4, 1)).await.unwrap(),
        Sums::of(4, 1)
    );
}
