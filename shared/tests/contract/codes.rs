//! Contract suite of the game-code port, on both adapters: uploads and
//! appends, caps that never shrink, and race-free redemption (CONTRACT §5).

use std::collections::HashSet;

use medkit::clock::now_secs;
use medkit::codes::{RedeemError, SET_TTL_SECS, SetInfo, SetUpload};
use medkit::ids::{ClientId, UserId};
use medkit::store::embedded::EmbeddedStore;
use medkit::store::{CodeStore, Store};

fn client() -> ClientId {
    ClientId::parse("client1").unwrap()
}

fn user(i: usize) -> UserId {
    UserId::parse(format!("u{i}")).unwrap()
}

fn codes(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i:07}")).collect()
}

async fn upload<S: Store>(s: &S, slot: usize, name: &str, codes: Vec<String>) -> SetInfo {
    let set = SetUpload {
        slot,
        name: name.into(),
        codes,
    };
    s.put_set(&client(), &set, now_secs() + SET_TTL_SECS)
        .await
        .unwrap()
}

async fn set_in<S: Store>(s: &S, slot: usize) -> SetInfo {
    s.sets(&client())
        .await
        .unwrap()
        .into_iter()
        .find(|x| x.slot == slot)
        .unwrap()
}

async fn make_eligible<S: Store>(s: &S, users: &[UserId], slot: usize, cap: u32) {
    let set = set_in(s, slot).await;
    s.raise_caps(&client(), users, &[(set, cap)], now_secs() + SET_TTL_SECS)
        .await
        .unwrap();
}

async fn sets_upload_replace_and_delete<S: Store>(s: S) {
    upload(&s, 3, "gold", codes("g", 3)).await;
    upload(&s, 0, "silver", codes("s", 2)).await;
    let sets = s.sets(&client()).await.unwrap();
    assert_eq!(sets.iter().map(|x| x.slot).collect::<Vec<_>>(), vec![0, 3]);
    assert_eq!(
        (sets[1].name.as_str(), sets[1].total, sets[1].remaining()),
        ("gold", 3, 3)
    );
    // Appending to an empty slot is refused; to a set, extends it.
    assert!(
        s.append_codes(&client(), 5, &codes("x", 1), None)
            .await
            .unwrap()
            .is_none()
    );
    let grown = s
        .append_codes(&client(), 3, &codes("h", 2), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(grown.total, 5);
    // Distribution is linear, in upload order, appended codes last.
    make_eligible(&s, &[user(1)], 3, 5).await;
    let mut got = Vec::new();
    for _ in 0..5 {
        got.push(s.redeem(&client(), &user(1), 3).await.unwrap().0);
    }
    assert_eq!(
        got,
        vec![
            "g-0000000",
            "g-0000001",
            "g-0000002",
            "h-0000000",
            "h-0000001"
        ]
    );
    assert_eq!(set_in(&s, 3).await.distributed, 5);
    // Replacing a slot resets its distribution and its eligibility.
    upload(&s, 3, "gold 2", codes("n", 2)).await;
    let fresh = set_in(&s, 3).await;
    assert_eq!((fresh.total, fresh.distributed), (2, 0));
    assert!(matches!(
        s.redeem(&client(), &user(1), 3).await,
        Err(RedeemError::NotEligible(3))
    ));
    let gone = s.delete_sets(&client()).await.unwrap();
    assert_eq!(gone.len(), 2);
    assert!(s.sets(&client()).await.unwrap().is_empty());
    assert!(matches!(
        s.redeem(&client(), &user(1), 3).await,
        Err(RedeemError::NoSet(3))
    ));
}

async fn appends_cross_chunk_boundaries<S: Store>(s: S) {
    upload(&s, 1, "big", codes("a", 998)).await;
    s.append_codes(&client(), 1, &codes("b", 3), None)
        .await
        .unwrap()
        .unwrap();
    s.append_codes(&client(), 1, &codes("c", 1001), None)
        .await
        .unwrap()
        .unwrap();
    let users: Vec<UserId> = (0..2002).map(user).collect();
    make_eligible(&s, &users, 1, 1).await;
    let mut tasks = tokio::task::JoinSet::new();
    for u in users {
        let s = s.clone();
        tasks.spawn(async move { s.redeem(&client(), &u, 1).await.unwrap().0 });
    }
    let mut got = HashSet::new();
    while let Some(code) = tasks.join_next().await {
        assert!(got.insert(code.unwrap()), "a code given twice");
    }
    let expected: HashSet<String> = codes("a", 998)
        .into_iter()
        .chain(codes("b", 3))
        .chain(codes("c", 1001))
        .collect();
    assert_eq!(got, expected);
}

/// 1,000 eligible users race for 500 codes: exactly 500 distinct codes go
/// out, everybody else hears the set is exhausted.
async fn concurrent_redeems_hand_out_each_code_once<S: Store>(s: S) {
    upload(&s, 2, "prize", codes("p", 500)).await;
    let users: Vec<UserId> = (0..1000).map(user).collect();
    make_eligible(&s, &users, 2, 1).await;
    let mut tasks = tokio::task::JoinSet::new();
    for u in users {
        let s = s.clone();
        tasks.spawn(async move { s.redeem(&client(), &u, 2).await });
    }
    let (mut got, mut exhausted) = (HashSet::new(), 0);
    while let Some(r) = tasks.join_next().await {
        match r.unwrap() {
            Ok((code, held)) => {
                assert_eq!(held, vec![code.clone()]);
                assert!(got.insert(code), "a code given twice");
            }
            Err(RedeemError::Exhausted(2)) => exhausted += 1,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!((got.len(), exhausted), (500, 500));
    assert_eq!(got, codes("p", 500).into_iter().collect());
    let deleted = s.delete_sets(&client()).await.unwrap();
    assert_eq!(deleted[0].distributed, 500);
}

async fn a_cap_of_two_gives_two<S: Store>(s: S) {
    upload(&s, 4, "limited", codes("l", 50)).await;
    make_eligible(&s, &[user(7)], 4, 2).await;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let s = s.clone();
        tasks.spawn(async move { s.redeem(&client(), &user(7), 4).await });
    }
    let mut ok = Vec::new();
    while let Some(r) = tasks.join_next().await {
        match r.unwrap() {
            Ok((code, _)) => ok.push(code),
            Err(RedeemError::NotEligible(4)) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(ok.len(), 2, "{ok:?}");
    let set = set_in(&s, 4).await;
    let standing = s.standings(&client(), &user(7), &[set]).await.unwrap();
    assert_eq!(standing[0].held.len(), 2);
    assert_eq!(standing[0].claimable(), 0);
}

async fn caps_never_shrink<S: Store>(s: S) {
    upload(&s, 0, "a", codes("a", 5)).await;
    make_eligible(&s, &[user(1), user(2)], 0, 3).await;
    make_eligible(&s, &[user(1)], 0, 1).await;
    let set = set_in(&s, 0).await;
    let st = s
        .standings(&client(), &user(1), std::slice::from_ref(&set))
        .await
        .unwrap();
    assert_eq!(st[0].cap, 3);
    let nobody = s.standings(&client(), &user(9), &[set]).await.unwrap();
    assert_eq!(nobody[0].claimable(), 0);
}

/// A redeem that dies after taking a code and before recording it loses no
/// code and gives none twice.
async fn a_crash_mid_redeem_loses_nothing<S: Store>(s: S, faults: &medkit::store::Faults) {
    upload(&s, 6, "crash", codes("k", 5)).await;
    let users: Vec<UserId> = (0..6).map(user).collect();
    make_eligible(&s, &users, 6, 1).await;
    faults.crash_redeems_after_claim(2);
    for u in &users[..2] {
        let err = s.redeem(&client(), u, 6).await.unwrap_err();
        assert!(matches!(err, RedeemError::Store(_)), "{err:?}");
    }
    let mut got = HashSet::new();
    for u in &users {
        match s.redeem(&client(), u, 6).await {
            Ok((code, _)) => assert!(got.insert(code), "a code given twice"),
            Err(RedeemError::Exhausted(6)) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(
        got,
        codes("k", 5).into_iter().collect(),
        "every code handed out once"
    );
    assert_eq!(set_in(&s, 6).await.distributed, 5);
}

async fn sets_stop_below_a_million_codes<S: Store>(s: S) {
    upload(&s, 8, "huge", codes("h", 999_998)).await;
    let err = s
        .append_codes(&client(), 8, &codes("x", 2), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("1000000"), "{err}");
    assert_eq!(
        set_in(&s, 8).await.total,
        999_998,
        "a refused append changes nothing"
    );
    let full = s
        .append_codes(&client(), 8, &codes("y", 1), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(full.total, 999_999);
}

async fn expired_sets_are_invisible<S: Store>(s: S) {
    let set = SetUpload {
        slot: 9,
        name: "short-lived".into(),
        codes: codes("e", 3),
    };
    // Live long enough to be marked even on a loaded machine (DynamoDB Local
    // under a parallel test run can take seconds), then wait until the
    // expiry second has passed.
    let expires = now_secs() + 6;
    s.put_set(&client(), &set, expires).await.unwrap();
    make_eligible(&s, &[user(1)], 9, 1).await;
    while now_secs() <= expires {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert!(s.sets(&client()).await.unwrap().is_empty());
    assert!(matches!(
        s.redeem(&client(), &user(1), 9).await,
        Err(RedeemError::NoSet(9))
    ));
    assert!(
        s.append_codes(&client(), 9, &codes("f", 1), None)
            .await
            .unwrap()
            .is_none()
    );
}

/// Issue #15, item 1: a rename re-issued codes already handed out. A PUT of
/// the same codes under a new name keeps the set's distribution and caps;
/// and no code value is handed out twice while it is retained, even when a
/// later upload contains it again.
async fn a_rename_never_reissues_a_code<S: Store>(s: S) {
    let three: Vec<String> = ["A1", "A2", "A3"].map(String::from).to_vec();
    let first = upload(&s, 0, "Hat", three.clone()).await;
    let (u501, u502) = (UserId::parse("501").unwrap(), UserId::parse("502").unwrap());
    make_eligible(&s, &[u501.clone(), u502.clone()], 0, 1).await;
    assert_eq!(s.redeem(&client(), &u501, 0).await.unwrap().0, "A1");
    // Same codes, new name: a rename.
    let renamed = upload(&s, 0, "Fancy Hat", three.clone()).await;
    assert_eq!(renamed.generation, first.generation, "the set is the same");
    let listed = set_in(&s, 0).await;
    assert_eq!((listed.name.as_str(), listed.distributed), ("Fancy Hat", 1));
    make_eligible(&s, &[u501.clone(), u502.clone()], 0, 1).await;
    assert_eq!(s.redeem(&client(), &u502, 0).await.unwrap().0, "A2");
    let again = s.redeem(&client(), &u501, 0).await;
    assert!(
        matches!(again, Err(RedeemError::NotEligible(0))),
        "the cap of 1 survives the rename: {again:?}"
    );
    // Different codes that include ones already given: a new set, whose
    // redeems skip the values handed out before.
    upload(
        &s,
        0,
        "Hat 2",
        ["A2", "B1", "A1", "B2"].map(String::from).to_vec(),
    )
    .await;
    let u503 = UserId::parse("503").unwrap();
    make_eligible(&s, &[u501.clone(), u503.clone()], 0, 2).await;
    let mut given = vec![
        s.redeem(&client(), &u501, 0).await.unwrap().0,
        s.redeem(&client(), &u503, 0).await.unwrap().0,
    ];
    given.sort();
    assert_eq!(given, vec!["B1", "B2"]);
    let left = s.redeem(&client(), &u503, 0).await;
    assert!(
        matches!(left, Err(RedeemError::Exhausted(0))),
        "A1 and A2 were given already: {left:?}"
    );
}

macro_rules! contract {
    ($($name:ident);* $(;)?) => {
        mod embedded {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(EmbeddedStore::in_memory()).await;
                }
            )*
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn a_crash_mid_redeem_loses_nothing() {
                let s = EmbeddedStore::in_memory();
                super::a_crash_mid_redeem_loses_nothing(s.clone(), s.faults()).await;
            }
        }
        mod dynamodb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    if let Some((s, _)) = medkit::testing::dynamo_store(stringify!($name)).await {
                        super::$name(s).await;
                    }
                }
            )*
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn a_crash_mid_redeem_loses_nothing() {
                if let Some((s, _)) = medkit::testing::dynamo_store("a_crash_mid_redeem_loses_nothing").await {
                    // No grace period: the lost indices are looked for at once.
                    let s = s.with_code_recovery_grace(0);
                    super::a_crash_mid_redeem_loses_nothing(s.clone(), s.faults()).await;
                }
            }
        }
    };
}

contract! {
    sets_upload_replace_and_delete;
    appends_cross_chunk_boundaries;
    concurrent_redeems_hand_out_each_code_once;
    a_cap_of_two_gives_two;
    caps_never_shrink;
    sets_stop_below_a_million_codes;
    expired_sets_are_invisible;
    a_rename_never_reissues_a_code;
}

/// DynamoDB requests of one upload part of 200,000 codes (what `medkit codes
/// upload` sends per ~4 MB request), and of an append.
#[tokio::test]
async fn dynamodb_round_trips_per_upload_part() {
    let Some((s, rt)) = medkit::testing::dynamo_store("dynamodb_round_trips_per_upload_part").await
    else {
        return;
    };
    rt.reset();
    upload(&s, 0, "big", codes("a", 200_000)).await;
    let put = rt.get();
    rt.reset();
    s.append_codes(&client(), 0, &codes("b", 200_000), None)
        .await
        .unwrap()
        .unwrap();
    let append = rt.get();
    println!("round trips: PUT part of 200,000 codes = {put}, append part = {append}");
    // 200 chunk items in 25-item BatchWriteItems, plus the metadata reads and writes.
    assert_eq!(put, 1 + 8 + 1);
    assert_eq!(append, 1 + 1 + 8 + 1);
}

/// Issue #19, finding 3: each DynamoDB process caches a slot's generation
/// for a few seconds and only the process that replaced the set forgets it.
/// A viewer marked for the new set was refused ("not eligible") by any
/// other warm instance. A refusal on a cached generation now reads it again.
#[tokio::test]
async fn a_set_replaced_on_another_instance_is_redeemed_at_once() {
    let Some((a, _)) = medkit::testing::dynamo_store("a_set_replaced_on_another_instance").await
    else {
        return;
    };
    let endpoint = std::env::var(medkit::testing::ENDPOINT_VAR).unwrap();
    // A second Lambda instance on the same tables, with its own caches.
    let (b, _) = medkit::testing::counted_dynamo_store(&endpoint, a.tables().clone());
    let (first, second) = (user(1), user(2));
    upload(&a, 4, "old", codes("old", 5)).await;
    make_eligible(&a, std::slice::from_ref(&first), 4, 1).await;
    let (code, _) = a.redeem(&client(), &first, 4).await.unwrap();
    assert!(code.starts_with("old"), "{code}");
    // The other instance replaces the set and marks a viewer for it.
    upload(&b, 4, "new", codes("new", 5)).await;
    make_eligible(&b, std::slice::from_ref(&second), 4, 1).await;
    let (code, _) = a.redeem(&client(), &second, 4).await.unwrap();
    assert!(code.starts_with("new"), "{code}");
    // Someone not marked is still refused.
    assert!(matches!(
        a.redeem(&client(), &user(3), 4).await,
        Err(RedeemError::NotEligible(4))
    ));
}

/// Issue #19, finding 4 (appends): a client retrying a part that was in
/// fact written (its answer lost to a timeout) appended the codes twice.
/// A part id makes the retry a no-op.
async fn a_retried_part_is_appended_once<S: Store>(s: S) {
    upload(&s, 6, "keys", codes("k", 3)).await;
    for _ in 0..3 {
        let info = s
            .append_codes(&client(), 6, &codes("p", 2), Some("upload1-1"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(info.total, 5, "the part counts once");
    }
    let info = s
        .append_codes(&client(), 6, &codes("q", 2), Some("upload1-2"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.total, 7, "another part is appended");
    assert_eq!(set_in(&s, 6).await.total, 7);
    // A new upload (a replacing PUT) forgets the parts of the old one.
    upload(&s, 6, "keys", codes("r", 1)).await;
    let info = s
        .append_codes(&client(), 6, &codes("p", 2), Some("upload1-1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.total, 3);
}

#[tokio::test]
async fn a_retried_part_is_appended_once_embedded() {
    a_retried_part_is_appended_once(EmbeddedStore::in_memory()).await;
}

#[tokio::test]
async fn a_retried_part_is_appended_once_dynamodb() {
    if let Some((s, _)) = medkit::testing::dynamo_store("a_retried_part_is_appended_once").await {
        a_retried_part_is_appended_once(s).await;
    }
}

/// Issue #19, finding 4 (appends): an append killed after taking the slot's
/// lock left it forever, so every later append was 409. The lock now
/// expires (120 s, past the function's 60 s timeout; 5 s here, so the
/// second append is still refused on a loaded machine).
#[tokio::test]
async fn a_crashed_append_does_not_lock_the_slot_for_good() {
    let Some((s, _)) = medkit::testing::dynamo_store("a_crashed_append").await else {
        return;
    };
    let s = s.with_append_lock_secs(5);
    upload(&s, 7, "keys", codes("k", 2)).await;
    s.faults().crash_appends_after_lock(1);
    let locked_at = now_secs();
    assert!(
        s.append_codes(&client(), 7, &codes("a", 1), None)
            .await
            .is_err()
    );
    assert!(matches!(
        s.append_codes(&client(), 7, &codes("a", 1), None).await,
        Err(medkit::codes::AppendError::Busy)
    ));
    // The lock is taken at `locked_at` or later and lasts 5 s.
    while now_secs() <= locked_at + 6 {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let info = s
        .append_codes(&client(), 7, &codes("a", 1), None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(info.total, 3);
}
