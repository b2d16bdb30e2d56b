//! Where events saw an object: an object first seen without a tier is
//! assumed on the first tier, and a later event naming its tier (an
//! inventory listing) corrects that until the mover has moved it; from then
//! on the mover's statuses say where it is, the newest generation winning.
#![allow(clippy::unwrap_used)]

mod common;

use common::{WALL, apply};
use policy_svc::{engine::Payload, store::Store};
use strata_proto::{AccessEvent, MigrationStatus, Op, State, time};

fn seen(op: Op, tier: &str, ts: i64) -> Payload {
    Payload::Event(AccessEvent {
        object_key: "logs/a".into(),
        op: op as i32,
        size_bytes: 4096,
        tier: tier.into(),
        ts: Some(time::from_millis(ts)),
        ..Default::default()
    })
}

async fn tier(store: &Store) -> String {
    store.object("logs/a").await.unwrap().unwrap().tier
}

#[tokio::test]
async fn an_assumed_tier_gives_way_to_an_observed_one_until_the_mover_moves_the_object() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("policy.db")).unwrap();
    apply(&store, 0, seen(Op::Get, "", WALL - 1000), WALL).await;
    assert_eq!(tier(&store).await, "hot", "assumed: the first tier");
    apply(&store, 1, seen(Op::Inventory, "cold", WALL - 900), WALL).await;
    assert_eq!(tier(&store).await, "cold", "the listing says where it is");
    // A tier the configuration does not have changes nothing.
    apply(&store, 2, seen(Op::Inventory, "tape", WALL - 800), WALL).await;
    assert_eq!(tier(&store).await, "cold");

    // The mover moves it to hot (generation 1): a stale listing of cold
    // no longer counts.
    let completed = MigrationStatus {
        job_key: strata_proto::job_key("logs/a", "cold", "hot", 0),
        object_key: "logs/a".into(),
        state: State::Completed as i32,
        from_tier: "cold".into(),
        to_tier: "hot".into(),
        generation: 1,
        bytes: 4096,
        ..Default::default()
    };
    apply(&store, 3, Payload::Status(completed.clone()), WALL).await;
    assert_eq!(tier(&store).await, "hot");
    apply(&store, 4, seen(Op::Inventory, "cold", WALL - 700), WALL).await;
    assert_eq!(tier(&store).await, "hot");

    // Moved on to cold (generation 2), then a late DUPLICATE of the first
    // move arrives: old news, the object stays where the newer move put it.
    let second = MigrationStatus {
        job_key: strata_proto::job_key("logs/a", "hot", "cold", 1),
        from_tier: "hot".into(),
        to_tier: "cold".into(),
        generation: 2,
        ..completed.clone()
    };
    apply(&store, 5, Payload::Status(second), WALL).await;
    let late = MigrationStatus {
        state: State::Duplicate as i32,
        result: State::Completed as i32,
        ..completed
    };
    apply(&store, 6, Payload::Status(late), WALL).await;
    let o = store.object("logs/a").await.unwrap().unwrap();
    assert_eq!((o.tier.as_str(), o.generation), ("cold", 2));
}

/// An event time decades ahead (a unit mistake, a bad producer) must not
/// move the policy's clock there, which would age every object at once:
/// it is taken as a day ahead of the wall clock at most.
#[tokio::test]
async fn an_event_from_the_far_future_moves_the_clock_a_day_at_most() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("policy.db")).unwrap();
    let fifty_years = 50 * 365 * policy_svc::rules::DAY_MS;
    apply(&store, 0, seen(Op::Get, "", WALL + fifty_years), WALL).await;
    let day_ahead = WALL + policy_svc::engine::MAX_AHEAD_MS;
    assert_eq!(store.clock().await.unwrap().now(WALL), day_ahead);
    let o = store.object("logs/a").await.unwrap().unwrap();
    assert_eq!(o.last_access_ms, day_ahead);
    // A sender whose clock runs an hour ahead is taken at its word.
    let hour = 3_600_000;
    apply(
        &store,
        1,
        seen(Op::Get, "", day_ahead + hour),
        WALL + 2 * hour,
    )
    .await;
    let o = store.object("logs/a").await.unwrap().unwrap();
    assert_eq!(o.last_access_ms, day_ahead + hour);
}

/// A DELETE ends an object (design §6): written again, the key is a new
/// object, its age and reads counted from the new write, as the simulator
/// takes it; where it is stays as the mover last reported.
#[tokio::test]
async fn an_object_written_again_after_a_delete_starts_afresh() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("policy.db")).unwrap();
    let day = policy_svc::rules::DAY_MS;
    let start = WALL - 100 * day;
    apply(&store, 0, seen(Op::Put, "cold", start), WALL).await;
    for i in 1..=5 {
        apply(&store, i, seen(Op::Get, "", start + i * day), WALL).await;
    }
    apply(&store, 6, seen(Op::Delete, "", start + 10 * day), WALL).await;
    assert!(store.object("logs/a").await.unwrap().unwrap().deleted);
    // Events from before the delete, come in late (a listing made before
    // it, a GET delayed), are the deleted object's: it stays deleted.
    apply(
        &store,
        7,
        seen(Op::Inventory, "cold", start + 9 * day),
        WALL,
    )
    .await;
    apply(&store, 8, seen(Op::Get, "", start + 8 * day), WALL).await;
    assert!(store.object("logs/a").await.unwrap().unwrap().deleted);
    let again = start + 50 * day;
    apply(&store, 9, seen(Op::Put, "", again), WALL).await;
    let o = store.object("logs/a").await.unwrap().unwrap();
    assert!(!o.deleted);
    assert_eq!((o.first_seen_ms, o.reads_total), (again, 0));
    assert!(o.recent_reads.is_empty() && o.rates == [0.0; 3], "{o:?}");
    assert_eq!(o.tier, "cold");
}
