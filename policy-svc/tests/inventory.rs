//! Inventories list every object of every tier, by default each hour, and
//! an INVENTORY event's time is the object's last modification, often
//! months back. A listing that finds an object as it was must leave its
//! decision's due time alone; a new or changed object is due at the clock's
//! now, not at its modification time, so that hourly listings never queue
//! every object ahead of those just read.
#![allow(clippy::unwrap_used)]

mod common;

use common::{WALL, apply, tiers};
use policy_svc::{
    engine::{self, Budget, Payload},
    rules::RuleParams,
    store::Store,
};
use strata_proto::{AccessEvent, Op, time};

const DAY: i64 = 86_400_000;

fn event(key: &str, op: Op, size: u64, ts: i64) -> Payload {
    Payload::Event(AccessEvent {
        object_key: key.into(),
        op: op as i32,
        size_bytes: size,
        tier: "hot".into(),
        ts: Some(time::from_millis(ts)),
        ..Default::default()
    })
}

async fn due_ms(store: &Store, key: &str) -> i64 {
    store.object(key).await.unwrap().unwrap().due_ms
}

#[tokio::test]
async fn an_inventory_makes_due_only_what_is_new_or_changed() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("policy.db")).unwrap();
    // A read now sets the clock; then the listing finds an object last
    // written ten days ago.
    apply(&store, 0, event("logs/read", Op::Get, 10, WALL), WALL).await;
    let modified = WALL - 10 * DAY;
    apply(
        &store,
        1,
        event("logs/a", Op::Inventory, 4096, modified),
        WALL,
    )
    .await;
    let a = store.object("logs/a").await.unwrap().unwrap();
    assert_eq!(a.first_seen_ms, modified, "its age counts from the write");
    assert_eq!(a.due_ms, WALL, "new: due now, not ten days back");

    // Decided: it stays hot until 30 idle days (the idle rule), so its
    // next decision is twenty days ahead.
    let params = RuleParams {
        promote_reads: 3,
        promote_window_ms: 7 * DAY,
        min_object_bytes: 0,
        cost: None,
    };
    let budget = Budget {
        max_jobs: 10,
        max_bytes: u64::MAX,
        job_timeout_ms: 0,
    };
    let jobs = store
        .transaction(move |tx| engine::decide_cycle(tx, &tiers(), &params, budget, WALL))
        .await
        .unwrap();
    assert!(jobs.is_empty());
    let next = due_ms(&store, "logs/a").await;
    assert!(next > WALL + 19 * DAY, "{next}");

    // The next hourly listing finds it as it was: still due then.
    apply(
        &store,
        2,
        event("logs/a", Op::Inventory, 4096, modified),
        WALL + 3_600_000,
    )
    .await;
    assert_eq!(due_ms(&store, "logs/a").await, next);

    // Rewritten since (a new size): due at the clock's now.
    let now = WALL + 7_200_000;
    apply(
        &store,
        3,
        event("logs/a", Op::Inventory, 8192, WALL + 3_600_000),
        now,
    )
    .await;
    let a = store.object("logs/a").await.unwrap().unwrap();
    assert_eq!((a.size, a.due_ms), (8192, now));
}
