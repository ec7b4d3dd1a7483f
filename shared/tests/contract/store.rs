//! One contract suite for the store ports, run against both adapters: the
//! embedded store always, DynamoDB when DynamoDB Local is configured.

use std::sync::Arc;

use medkit::error::{ApiError, StoreError};
use medkit::ids::{ChannelId, ClientId, UserId, ViewerId};
use medkit::store::embedded::EmbeddedStore;
use medkit::store::{AuthStore, DocKey, DocumentStore, Store};
use serde_json::{Value, json};

fn client() -> ClientId {
    ClientId::parse("client1").unwrap()
}

fn channel(s: &str) -> ChannelId {
    ChannelId::parse(s).unwrap()
}

const DAY: i64 = 86400;

async fn documents_round_trip<S: Store>(s: S) {
    let key = DocKey::channel_state(&client(), &channel("10"));
    assert_eq!(s.get_doc(&key).await.unwrap(), None);
    s.put_doc(&key, &json!({"a": 1}), DAY).await.unwrap();
    assert_eq!(s.get_doc(&key).await.unwrap(), Some(json!({"a": 1})));
    s.put_doc(&key, &json!({"b": [1, 2]}), DAY).await.unwrap();
    assert_eq!(s.get_doc(&key).await.unwrap(), Some(json!({"b": [1, 2]})));
    // Keys of other kinds and channels are separate documents.
    let other = DocKey::channel_config(&client(), &channel("10"));
    assert_eq!(s.get_doc(&other).await.unwrap(), None);
    let other_ext = DocKey::channel_state(&ClientId::parse("client2").unwrap(), &channel("10"));
    assert_eq!(s.get_doc(&other_ext).await.unwrap(), None);
    // Deleted, and deleting what is absent is fine; the others stay.
    s.put_doc(&other, &json!({"c": 1}), DAY).await.unwrap();
    s.delete_doc(&key).await.unwrap();
    s.delete_doc(&key).await.unwrap();
    assert_eq!(s.get_doc(&key).await.unwrap(), None);
    assert_eq!(s.get_doc_text(&key).await.unwrap(), None);
    assert_eq!(s.get_doc(&other).await.unwrap(), Some(json!({"c": 1})));
}

async fn large_documents_are_compressed_and_oversized_refused<S: Store>(s: S) {
    let key = DocKey::extension_state(&client());
    // ~450 KB of compressible JSON: over DynamoDB's 400 KB item limit uncompressed.
    let big = json!({"rows": (0..12000).map(|i| json!({"id": i, "name": "viewer name here"})).collect::<Vec<_>>(),
                      "pad": "abc".repeat(20000)});
    assert!(serde_json::to_vec(&big).unwrap().len() > 400 * 1024);
    s.put_doc(&key, &big, DAY).await.unwrap();
    assert_eq!(s.get_doc(&key).await.unwrap(), Some(big.clone()));
    // Incompressible data that would not fit: refused, the old value stays.
    let mut x: u64 = 88172645463325252;
    let noise: String = (0..499 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let c = (b'(' + (x % 87) as u8) as char;
            if c == '\\' { 'a' } else { c }
        })
        .collect();
    let err = s
        .put_doc(&key, &json!({ "noise": noise }), DAY)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::TooLarge(_)), "{err:?}");
    assert_eq!(s.get_doc(&key).await.unwrap(), Some(big));
}

async fn update_is_read_modify_write<S: Store>(s: S) {
    let key = DocKey::hidden_state(&client());
    let v = s
        .update_doc(&key, DAY, |cur| {
            assert_eq!(cur, None);
            Ok::<_, ApiError>(json!({"n": 1}))
        })
        .await
        .unwrap();
    assert_eq!(v, json!({"n": 1}));
    // A refused change leaves the document as it was.
    let err = s
        .update_doc(&key, DAY, |_| Err(ApiError::bad_request("nope")))
        .await
        .unwrap_err();
    assert_eq!(err, ApiError::bad_request("nope"));
    assert_eq!(s.get_doc(&key).await.unwrap(), Some(json!({"n": 1})));
}

fn increment(cur: Option<Value>) -> Result<Value, ApiError> {
    let n = cur.and_then(|v| v["n"].as_i64()).unwrap_or(0);
    Ok(json!({ "n": n + 1 }))
}

/// Concurrent read-modify-writes lose nothing: every acknowledged update is
/// in the final value, and the only failure allowed is a clean 409.
async fn concurrent_updates_lose_nothing<S: Store>(s: S, writers: usize) {
    let key = DocKey::channel_state(&client(), &channel("hot"));
    let s = Arc::new(s);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..writers {
        let (s, key) = (s.clone(), key.clone());
        tasks.spawn(async move { s.update_doc(&key, DAY, increment).await });
    }
    let mut acknowledged = 0;
    while let Some(res) = tasks.join_next().await {
        match res.unwrap() {
            Ok(_) => acknowledged += 1,
            Err(ApiError::Conflict(_)) => {}
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }
    let final_n = s.get_doc(&key).await.unwrap().unwrap()["n"]
        .as_i64()
        .unwrap();
    assert_eq!(final_n, acknowledged as i64);
    assert!(
        acknowledged * 2 >= writers,
        "only {acknowledged} of {writers} got through"
    );
}

/// Several documents updated together, all or nothing: a change that fails
/// for one key leaves every key as it was, and so does a set of documents
/// too large for one atomic write.
async fn multi_updates_are_all_or_nothing<S: Store>(s: S) {
    let v = |id: &str| DocKey::extension_viewer_state(&client(), &ViewerId::parse(id).unwrap());
    let keys: Vec<DocKey> = ["a", "b", "c"].iter().map(|id| v(id)).collect();
    s.put_doc(&keys[0], &json!({"n": 1}), DAY).await.unwrap();
    let news = s
        .update_docs(&keys, DAY, |i, cur| {
            increment(cur).map(|mut d| {
                d["i"] = json!(i);
                d
            })
        })
        .await
        .unwrap();
    assert_eq!(
        news,
        vec![
            json!({"n": 2, "i": 0}),
            json!({"n": 1, "i": 1}),
            json!({"n": 1, "i": 2})
        ]
    );
    // The last change fails: the first two are not written either.
    let err = s
        .update_docs(&keys, DAY, |i, cur| {
            if i == 2 {
                Err(ApiError::bad_request("nope"))
            } else {
                increment(cur)
            }
        })
        .await
        .unwrap_err();
    assert_eq!(err, ApiError::bad_request("nope"));
    let docs = s.get_docs(&keys).await.unwrap();
    assert_eq!(docs[0], Some(json!({"n": 2, "i": 0})), "unchanged");
    assert_eq!(docs[1], Some(json!({"n": 1, "i": 1})), "unchanged");
    // Documents that cannot be compressed much (pseudo-random letters,
    // ~65 KB each stored), 70 of them: more than one atomic write takes.
    let many: Vec<DocKey> = (0..70).map(|i| v(&format!("big{i}"))).collect();
    let noise = |i: usize| -> String {
        let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ (i as u64 + 1);
        (0..90_000)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                char::from(b'A' + (x % 58) as u8)
            })
            .filter(char::is_ascii_alphanumeric)
            .collect()
    };
    let err = s
        .update_docs(&many, DAY, move |i, _| {
            Ok::<_, ApiError>(json!({ "x": noise(i) }))
        })
        .await
        .unwrap_err();
    assert!(matches!(err, ApiError::TooLarge(_)), "{err:?}");
    let docs = s.get_docs(&many).await.unwrap();
    assert!(docs.iter().all(Option::is_none), "nothing written");
}

async fn multi_get_keeps_order<S: Store>(s: S) {
    let v = |id: &str| DocKey::extension_viewer_state(&client(), &ViewerId::parse(id).unwrap());
    s.put_doc(&v("a"), &json!({"who": "a"}), DAY).await.unwrap();
    s.put_doc(&v("c"), &json!({"who": "c"}), DAY).await.unwrap();
    let keys: Vec<DocKey> = ["c", "b", "a", "c"].iter().map(|id| v(id)).collect();
    let docs = s.get_docs(&keys).await.unwrap();
    assert_eq!(
        docs,
        vec![
            Some(json!({"who": "c"})),
            None,
            Some(json!({"who": "a"})),
            Some(json!({"who": "c"}))
        ]
    );
    // More than one batch (DynamoDB takes 100 keys per request).
    let many: Vec<DocKey> = (0..250).map(|i| v(&format!("u{i}"))).collect();
    s.put_doc(&many[249], &json!({"last": true}), DAY)
        .await
        .unwrap();
    let docs = s.get_docs(&many).await.unwrap();
    assert_eq!(docs.iter().filter(|d| d.is_some()).count(), 1);
    assert_eq!(docs[249], Some(json!({"last": true})));
}

async fn expired_documents_are_invisible<S: Store>(s: S) {
    let key = DocKey::channel_config(&client(), &channel("old"));
    s.put_doc(&key, &json!({"stale": true}), -10).await.unwrap();
    assert_eq!(s.get_doc(&key).await.unwrap(), None);
    assert_eq!(
        s.get_docs(std::slice::from_ref(&key)).await.unwrap(),
        vec![None]
    );
    let v = s
        .update_doc(&key, DAY, |cur| {
            assert_eq!(cur, None, "an expired document reads as absent");
            Ok::<_, ApiError>(json!({"fresh": true}))
        })
        .await
        .unwrap();
    assert_eq!(v, json!({"fresh": true}));
    assert_eq!(s.get_doc(&key).await.unwrap(), Some(json!({"fresh": true})));
}

async fn users_page_in_order<S: Store>(s: S) {
    let c = client();
    let ids: Vec<String> = (0..1203).map(|i| format!("{:05}", i * 7)).collect();
    let s = Arc::new(s);
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in ids.chunks(100) {
        let (s, c, chunk) = (s.clone(), c.clone(), chunk.to_vec());
        tasks.spawn(async move {
            for id in chunk {
                s.remember_user(&c, &UserId::parse(id).unwrap(), DAY)
                    .await
                    .unwrap();
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    // Remembering twice is harmless; an expired user is not listed.
    s.remember_user(&c, &UserId::parse("00007").unwrap(), DAY)
        .await
        .unwrap();
    s.remember_user(&c, &UserId::parse("zz-expired").unwrap(), -5)
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..10 {
        let page = s.list_users(&c, after.as_deref(), 500).await.unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().cloned();
        seen.extend(page);
    }
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(seen, expected);
    let other = ClientId::parse("client2").unwrap();
    assert!(s.list_users(&other, None, 10).await.unwrap().is_empty());
}

async fn pin_flow<S: Store>(s: S) {
    let c = client();
    let ch = channel("500");
    assert!(s.create_pin(&c, "ABC234", "tok1", 300).await.unwrap());
    assert!(
        !s.create_pin(&c, "ABC234", "tok2", 300).await.unwrap(),
        "a live PIN is unique"
    );
    assert!(!s.channel_has_pin_tokens(&c, &ch).await.unwrap());
    assert_eq!(
        s.claim_pin(&c, "ZZZ999", &ch, i64::MAX / 2).await.unwrap(),
        None
    );
    assert_eq!(
        s.pin_token_channel(&c, "tok1").await.unwrap(),
        None,
        "inert until claimed"
    );
    let far = medkit::clock::now_secs() + DAY;
    let claimed = s.claim_pin(&c, "ABC234", &ch, far).await.unwrap().unwrap();
    assert_eq!(claimed.token_id, "tok1");
    assert_eq!(
        s.claim_pin(&c, "ABC234", &ch, far).await.unwrap(),
        None,
        "a PIN is used once"
    );
    assert_eq!(
        s.pin_token_channel(&c, "tok1").await.unwrap(),
        Some(ch.clone())
    );
    assert!(s.channel_has_pin_tokens(&c, &ch).await.unwrap());
    assert_eq!(s.revoke_pin_tokens(&c, &ch).await.unwrap(), 1);
    assert_eq!(s.pin_token_channel(&c, "tok1").await.unwrap(), None);
    assert!(!s.channel_has_pin_tokens(&c, &ch).await.unwrap());
    // An expired PIN can neither be claimed nor block a new one.
    assert!(s.create_pin(&c, "OLD777", "tok3", -1).await.unwrap());
    assert_eq!(s.claim_pin(&c, "OLD777", &ch, far).await.unwrap(), None);
    assert!(s.create_pin(&c, "OLD777", "tok4", 300).await.unwrap());
}

/// GameLink PINs: a broadcaster's PIN, bound to their channel, that a game
/// claims once; the token it binds is revoked with the channel's others.
async fn game_pin_flow<S: Store>(s: S) {
    let c = client();
    let ch = channel("600");
    let far = medkit::clock::now_secs() + DAY;
    assert!(
        s.create_game_pin(&c, "GAME42", &ch, "gtok1", 300)
            .await
            .unwrap()
    );
    assert!(
        !s.create_game_pin(&c, "GAME42", &ch, "gtok2", 300)
            .await
            .unwrap(),
        "a live PIN is unique"
    );
    // The other PIN flow's PINs are another namespace.
    assert_eq!(s.claim_pin(&c, "GAME42", &ch, far).await.unwrap(), None);
    assert_eq!(
        s.pin_token_channel(&c, "gtok1").await.unwrap(),
        None,
        "inert until claimed"
    );
    assert_eq!(s.claim_game_pin(&c, "NOPE00", far).await.unwrap(), None);
    let claimed = s.claim_game_pin(&c, "GAME42", far).await.unwrap().unwrap();
    assert_eq!(
        (claimed.token_id.as_str(), &claimed.channel),
        ("gtok1", &ch)
    );
    assert_eq!(
        s.claim_game_pin(&c, "GAME42", far).await.unwrap(),
        None,
        "a PIN is used once"
    );
    assert_eq!(
        s.pin_token_channel(&c, "gtok1").await.unwrap(),
        Some(ch.clone())
    );
    // Another extension's PIN of the same text is not this one.
    let other = ClientId::parse("client2").unwrap();
    assert_eq!(s.claim_game_pin(&other, "GAME42", far).await.unwrap(), None);
    // Revoking the broadcaster's PINs revokes the game's token too.
    assert_eq!(s.revoke_pin_tokens(&c, &ch).await.unwrap(), 1);
    assert_eq!(s.pin_token_channel(&c, "gtok1").await.unwrap(), None);
    // An expired PIN can neither be claimed nor block a new one.
    assert!(
        s.create_game_pin(&c, "LATE11", &ch, "gtok3", -1)
            .await
            .unwrap()
    );
    assert_eq!(s.claim_game_pin(&c, "LATE11", far).await.unwrap(), None);
    assert!(
        s.create_game_pin(&c, "LATE11", &ch, "gtok4", 300)
            .await
            .unwrap()
    );
}

macro_rules! contract {
    ($($name:ident $(, $arg:expr)?);* $(;)?) => {
        mod embedded {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    super::$name(EmbeddedStore::in_memory() $(, $arg)?).await;
                }
            )*
            #[tokio::test]
            async fn file_store_survives_reopen() {
                let dir = std::env::temp_dir().join(format!("medkit-test-{}", medkit::random::token_id(8)));
                let path = dir.join("db.redb");
                let key = DocKey::extension_state(&client());
                {
                    let s = EmbeddedStore::open(&path).unwrap();
                    s.put_doc(&key, &json!({"kept": 1}), DAY).await.unwrap();
                }
                let s = EmbeddedStore::open(&path).unwrap();
                assert_eq!(s.get_doc(&key).await.unwrap(), Some(json!({"kept": 1})));
                let _ = std::fs::remove_dir_all(dir);
            }
        }
        mod dynamodb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $name() {
                    if let Some((s, _)) = medkit::testing::dynamo_store(stringify!($name)).await {
                        super::$name(s $(, $arg)?).await;
                    }
                }
            )*
        }
    };
}

contract! {
    documents_round_trip;
    large_documents_are_compressed_and_oversized_refused;
    update_is_read_modify_write;
    concurrent_updates_lose_nothing, 20;
    multi_updates_are_all_or_nothing;
    multi_get_keeps_order;
    expired_documents_are_invisible;
    users_page_in_order;
    pin_flow;
    game_pin_flow;
}

/// DynamoDB round trips per store operation (the targets: reads 1,
/// writes 1, read-modify-write 2, a multi-get of ≤ 100 keys 1).
#[tokio::test]
async fn dynamodb_round_trips_per_operation() {
    let Some((s, rt)) = medkit::testing::dynamo_store("dynamodb_round_trips_per_operation").await
    else {
        return;
    };
    let key = DocKey::channel_state(&client(), &channel("rt"));
    let keys: Vec<DocKey> = (0..4)
        .map(|i| DocKey::channel_state(&client(), &channel(&i.to_string())))
        .collect();
    let user = UserId::parse("42").unwrap();
    macro_rules! measure {
        ($what:literal, $expected:expr, $op:expr) => {{
            rt.reset();
            $op.await.unwrap();
            let n = rt.get();
            println!("round trips: {} = {n}", $what);
            assert_eq!(n, $expected, $what);
        }};
    }
    measure!("get_doc", 1, s.get_doc(&key));
    measure!("put_doc", 1, s.put_doc(&key, &json!({"a": 1}), DAY));
    measure!("update_doc", 2, s.update_doc(&key, DAY, increment));
    measure!("get_docs(4 keys)", 1, s.get_docs(&keys));
    measure!(
        "update_docs(4 keys, all or nothing)",
        2,
        s.update_docs(&keys, DAY, |_, cur| increment(cur))
    );
    measure!("remember_user", 1, s.remember_user(&client(), &user, DAY));
}

/// Issue #19, finding 4: a document update whose write landed but whose
/// answer was lost (the SDK retries a timed-out call; the retry fails its
/// version condition) was read again and changed again: a JSON Patch
/// applied twice. Each write now carries a token, and the store recognises
/// its own write before trying again.
#[tokio::test]
async fn an_update_whose_answer_was_lost_is_applied_once() {
    let Some((s, _)) = medkit::testing::dynamo_store("an_update_whose_answer_was_lost").await
    else {
        return;
    };
    let key = DocKey::channel_state(&client(), &channel("lost"));
    s.put_doc(&key, &json!({"n": 0}), DAY).await.unwrap();
    for round in 1..=3 {
        s.faults().lose_doc_write_answers(1);
        let v = s.update_doc(&key, DAY, increment).await.unwrap();
        assert_eq!(v, json!({"n": round}), "the answer is the one write");
        assert_eq!(s.get_doc(&key).await.unwrap(), Some(json!({"n": round})));
    }
    // A change that another writer overtook is still retried and applied.
    let v = s.update_doc(&key, DAY, increment).await.unwrap();
    assert_eq!(v, json!({"n": 4}));
}
