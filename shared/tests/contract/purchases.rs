//! The purchases port on both adapters: a transaction id is recorded once
//! per extension (concurrent submissions too), a repeat answers with the
//! first record, a channel lists its purchases newest first, and a state
//! moves only from the states it may move from.

use std::sync::Arc;

use medkit::clock::now_secs;
use medkit::ids::{ChannelId, ClientId};
use medkit::purchases::{Purchase, State};
use medkit::store::embedded::EmbeddedStore;
use medkit::store::{Moved, PurchaseStore, Recorded};

fn client() -> ClientId {
    ClientId::parse("shop").unwrap()
}

fn channel(c: &str) -> ChannelId {
    ChannelId::parse(c).unwrap()
}

fn purchase(id: &str, ch: &str, sku: &str, at: i64) -> Purchase {
    Purchase {
        id: id.into(),
        muxy_id: format!("m-{id}"),
        channel: ch.into(),
        sku: sku.into(),
        display_name: "Hat".into(),
        user_id: "555".into(),
        username: "Viewer".into(),
        cost: 100,
        currency: "bits".into(),
        timestamp: at,
        state: State::Received,
        sandbox: false,
        details: None,
        recorded_at: now_secs(),
    }
}

async fn purchases_are_recorded_once_and_move_forward<S: PurchaseStore + Clone>(s: S) {
    let c = client();
    let first = purchase("tx-1", "10", "hat", 1_000);
    assert_eq!(
        s.record_purchase(&c, &first).await.unwrap(),
        Recorded::New(first.clone())
    );
    // The same transaction again, with other facts: the first stands.
    let mut again = purchase("tx-1", "10", "cape", 2_000);
    again.muxy_id = "other".into();
    assert_eq!(
        s.record_purchase(&c, &again).await.unwrap(),
        Recorded::Known(first.clone())
    );
    s.record_purchase(&c, &purchase("tx-2", "10", "cape", 3_000))
        .await
        .unwrap();
    s.record_purchase(&c, &purchase("tx-3", "11", "hat", 4_000))
        .await
        .unwrap();
    let listed = s.channel_purchases(&c, &channel("10")).await.unwrap();
    let ids: Vec<&str> = listed.iter().map(|p| p.id.as_str()).collect();
    assert_eq!(ids, ["tx-2", "tx-1"], "newest first, this channel only");
    assert!(
        s.purchase(&c, &channel("11"), "tx-1")
            .await
            .unwrap()
            .is_none()
    );

    // Delivered, then validated once; a second validation is refused.
    let open = [State::Received, State::Delivered];
    let moved = s
        .move_purchase(
            &c,
            &channel("10"),
            "tx-1",
            &[State::Received],
            State::Delivered,
            None,
        )
        .await
        .unwrap();
    assert!(
        matches!(moved, Moved::Done(ref p) if p.state == State::Delivered),
        "{moved:?}"
    );
    let moved = s
        .move_purchase(
            &c,
            &channel("10"),
            "tx-1",
            &open,
            State::Validated,
            Some("given".into()),
        )
        .await
        .unwrap();
    let Moved::Done(done) = moved else {
        panic!("validated: {moved:?}")
    };
    assert_eq!(
        (done.state, done.details.as_deref()),
        (State::Validated, Some("given"))
    );
    let again = s
        .move_purchase(&c, &channel("10"), "tx-1", &open, State::Validated, None)
        .await
        .unwrap();
    assert!(
        matches!(again, Moved::Refused(ref p) if p.state == State::Validated),
        "{again:?}"
    );
    let stored = s
        .purchase(&c, &channel("10"), "tx-1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.state, State::Validated);
    assert_eq!(stored.details.as_deref(), Some("given"));
    // Another channel's game cannot reach it; an unknown id is absent.
    for (ch, id) in [("11", "tx-1"), ("10", "tx-9")] {
        let m = s
            .move_purchase(&c, &channel(ch), id, &open, State::Validated, None)
            .await
            .unwrap();
        assert_eq!(m, Moved::Absent, "{ch} {id}");
    }
    // Another extension's transaction of the same id is its own.
    let other = ClientId::parse("other-shop").unwrap();
    assert!(matches!(
        s.record_purchase(&other, &purchase("tx-1", "10", "hat", 1))
            .await
            .unwrap(),
        Recorded::New(_)
    ));
}

/// 100 concurrent submissions of one transaction: one is recorded, the
/// others answer with it.
async fn concurrent_submissions_record_one<S: PurchaseStore + Clone>(s: S) {
    let c = Arc::new(client());
    let runs = (0..100).map(|i| {
        let (s, c) = (s.clone(), c.clone());
        tokio::spawn(async move {
            let mut p = purchase("tx-race", "10", "hat", 1_000);
            p.muxy_id = format!("m{i}");
            s.record_purchase(&c, &p).await.unwrap()
        })
    });
    let outcomes: Vec<Recorded> = futures_util::future::join_all(runs)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let new: Vec<&Purchase> = outcomes
        .iter()
        .filter_map(|o| match o {
            Recorded::New(p) => Some(p),
            Recorded::Known(_) => None,
        })
        .collect();
    assert_eq!(new.len(), 1, "exactly one recorded");
    for o in &outcomes {
        if let Recorded::Known(p) = o {
            assert_eq!(
                p.muxy_id, new[0].muxy_id,
                "every repeat answers with the first"
            );
        }
    }
    assert_eq!(
        s.channel_purchases(&c, &channel("10")).await.unwrap().len(),
        1
    );
}

contract! {
    purchases_are_recorded_once_and_move_forward;
    concurrent_submissions_record_one;
}

/// DynamoDB round trips: a first submission 1, a repeat 2, a state change 1.
#[tokio::test]
async fn dynamodb_round_trips_per_purchase_operation() {
    let Some((s, rt)) = medkit::testing::dynamo_store("purchase round trips").await else {
        return;
    };
    let c = client();
    rt.reset();
    s.record_purchase(&c, &purchase("tx-rt", "10", "hat", 1))
        .await
        .unwrap();
    assert_eq!(rt.get(), 1, "a first submission");
    rt.reset();
    s.record_purchase(&c, &purchase("tx-rt", "10", "hat", 1))
        .await
        .unwrap();
    assert_eq!(rt.get(), 2, "a repeat");
    rt.reset();
    s.move_purchase(
        &c,
        &channel("10"),
        "tx-rt",
        &[State::Received],
        State::Validated,
        None,
    )
    .await
    .unwrap();
    assert_eq!(rt.get(), 1, "a validation");
}
