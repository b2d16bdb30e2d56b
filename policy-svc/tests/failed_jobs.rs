//! A job that ends FAILED is retried later, with backoff, under a key of
//! its own: the failed key would only ever answer DUPLICATE. Events do not
//! cut the backoff short, and the cycle's byte budget never strands an object
//! larger than it.
#![allow(clippy::unwrap_used)]

mod common;

use common::{WALL, apply, status_of, tiers};
use policy_svc::{
    engine::{self, Budget, Payload},
    rules::RuleParams,
    store::Store,
};
use strata_proto::{AccessEvent, MigrationJob, MigrationStatus, Op, State, pb, time, validate};

const DAY: i64 = 86_400_000;
const HOUR: i64 = 3_600_000;

fn params() -> RuleParams {
    RuleParams {
        promote_reads: 3,
        promote_window_ms: 7 * DAY,
        min_object_bytes: 0,
        cost: None,
    }
}

async fn decide(store: &Store, wall: i64) -> Vec<MigrationJob> {
    let budget = Budget {
        max_jobs: 10,
        max_bytes: u64::MAX,
        job_timeout_ms: 0,
    };
    decide_within(store, wall, budget).await
}

async fn decide_within(store: &Store, wall: i64, budget: Budget) -> Vec<MigrationJob> {
    store
        .transaction(move |tx| engine::decide_cycle(tx, &tiers(), &params(), budget, wall))
        .await
        .unwrap()
}

/// A 4 KiB object written at `WALL`.
fn written(key: &str) -> Payload {
    Payload::Event(AccessEvent {
        object_key: key.into(),
        op: Op::Put as i32,
        size_bytes: 4096,
        ts: Some(time::from_millis(WALL)),
        ..Default::default()
    })
}

fn failed(job: &MigrationJob) -> Payload {
    Payload::Status(MigrationStatus {
        state: State::Failed as i32,
        attempt: 5,
        error: Some(pb::Error {
            class: "transient".into(),
            message: "store unreachable".into(),
        }),
        current_tier: job.from_tier.clone(),
        ..status_of(job)
    })
}

/// The mover's report that `job` (of a 4 KiB object) moved it.
fn completed(job: &MigrationJob) -> Payload {
    Payload::Status(MigrationStatus {
        state: State::Completed as i32,
        generation: job.generation + 1,
        bytes: 4096,
        ..status_of(job)
    })
}

/// The mover's refusal of a job whose destination key holds another
/// object: nothing was done, and the move may go through once it is gone.
fn occupied(job: &MigrationJob) -> Payload {
    let Payload::Status(failed) = failed(job) else {
        unreachable!()
    };
    Payload::Status(MigrationStatus {
        state: State::Rejected as i32,
        attempt: 0,
        error: Some(pb::Error {
            class: "occupied".into(),
            message: "file:///cold/logs/a already holds another object".into(),
        }),
        ..failed
    })
}

#[tokio::test]
async fn a_failed_job_is_retried_after_a_backoff_under_a_new_key() {
    retried_after_backoff(failed, "FAILED transient: store unreachable").await;
}

#[tokio::test]
async fn a_job_refused_for_an_occupied_destination_is_retried_after_a_backoff() {
    let said = "REJECTED occupied: file:///cold/logs/a already holds another object";
    retried_after_backoff(occupied, said).await;
}

/// A decision whose job ends with the status `end` makes is made again
/// after a backoff, under a new key, and again after a longer one; the
/// object keeps what the status `said` until a job of it completes.
async fn retried_after_backoff(end: fn(&MigrationJob) -> Payload, said: &str) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("policy.db")).unwrap();
    apply(&store, 0, written("logs/a"), WALL).await;

    // Idle past 30 days: the first job, the decision's own key.
    let later = WALL + 31 * DAY;
    let first = decide(&store, later).await;
    assert_eq!(first.len(), 1);
    let first = &first[0];
    assert_eq!((first.retry, first.to_tier.as_str()), (0, "cold"));
    assert_eq!(
        first.job_key,
        strata_proto::job_key("logs/a", "hot", "cold", first.generation)
    );

    apply(&store, 1, end(first), later).await;
    let last_failure = |store: &Store| {
        let store = store.clone();
        async move { store.object("logs/a").await.unwrap().unwrap().last_failure }
    };
    assert_eq!(last_failure(&store).await.as_deref(), Some(said));
    // Backing off: not right away.
    assert!(decide(&store, later + HOUR).await.is_empty());
    // Then the same decision again, as retry 1 with a key of its own.
    let second = decide(&store, later + 3 * HOUR).await;
    assert_eq!(second.len(), 1);
    let second = &second[0];
    assert_eq!((second.retry, second.to_tier.as_str()), (1, "cold"));
    assert_ne!(second.job_key, first.job_key);
    assert_eq!(validate::migration_job(second), Ok(()));

    // A second failure backs off longer, and the next retry is yet another key.
    apply(&store, 2, end(second), later + 3 * HOUR).await;
    assert!(decide(&store, later + 6 * HOUR).await.is_empty());
    let third = decide(&store, later + 8 * HOUR).await;
    assert_eq!(third.len(), 1);
    assert_eq!(third[0].retry, 2);
    assert_ne!(third[0].job_key, second.job_key);

    // The retry moves it: the failure is forgotten.
    apply(&store, 3, completed(&third[0]), later + 8 * HOUR).await;
    assert_eq!(last_failure(&store).await, None);
}

/// A job whose outcome never comes (its message lost with the topic's
/// retention, say) holds its object in flight only until the job timeout:
/// then the decision is made again, and the same decision is the same job
/// key, which the mover answers with its outcome if it ran the job. The
/// answer ends it. With no timeout (0) the object waits for its answer.
#[tokio::test]
async fn a_job_never_answered_is_made_again_after_the_timeout() {
    let timeout = |job_timeout_ms| Budget {
        max_jobs: 10,
        max_bytes: u64::MAX,
        job_timeout_ms,
    };
    let later = WALL + 31 * DAY;
    for budget in [timeout(24 * HOUR), timeout(0)] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("policy.db")).unwrap();
        apply(&store, 0, written("logs/a"), WALL).await;
        let first = decide_within(&store, later, budget).await;
        assert_eq!(first.len(), 1);
        // In flight, unanswered: nothing new within the timeout.
        let within = decide_within(&store, later + 23 * HOUR, budget).await;
        assert!(within.is_empty(), "{within:?}");
        let after = decide_within(&store, later + 25 * HOUR, budget).await;
        if budget.job_timeout_ms == 0 {
            assert!(after.is_empty(), "{after:?}");
            continue;
        }
        assert_eq!(after.len(), 1, "made again after the timeout");
        assert_eq!(after[0].job_key, first[0].job_key, "under the same key");
        apply(&store, 1, completed(&after[0]), later + 26 * HOUR).await;
        let o = store.object("logs/a").await.unwrap().unwrap();
        assert_eq!((o.tier.as_str(), o.inflight_job), ("cold", None));
        let done = decide_within(&store, later + 60 * HOUR, budget).await;
        assert!(done.is_empty(), "{done:?}");
    }
}

/// An object that a move the policy did not make (an operator's) puts
/// elsewhere, or that a stale refusal finds elsewhere, forgets what its
/// last failed job said: that is past.
#[tokio::test]
async fn a_failure_is_forgotten_once_the_object_is_elsewhere() {
    let later = WALL + 31 * DAY;
    for (offset, elsewhere) in [(0, "operator"), (1, "stale")] {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("policy.db")).unwrap();
        apply(&store, 0, written("logs/a"), WALL).await;
        let first = decide(&store, later).await.remove(0);
        apply(&store, 1, failed(&first), later).await;
        let second = decide(&store, later + 3 * HOUR).await.remove(0);
        let status = if elsewhere == "operator" {
            MigrationStatus {
                // An operator's own job, made at another generation.
                job_key: strata_proto::job_key("logs/a", "hot", "cold", first.generation + 7),
                object_key: "logs/a".into(),
                state: State::Completed as i32,
                from_tier: "hot".into(),
                to_tier: "cold".into(),
                generation: first.generation + 1,
                bytes: 4096,
                ..Default::default()
            }
        } else {
            MigrationStatus {
                state: State::Rejected as i32,
                error: Some(pb::Error {
                    class: "stale".into(),
                    message: "catalog has logs/a at tier cold".into(),
                }),
                current_tier: "cold".into(),
                generation: first.generation + 1,
                ..status_of(&second)
            }
        };
        apply(
            &store,
            2 + offset,
            Payload::Status(status),
            later + 3 * HOUR,
        )
        .await;
        let row = store.object("logs/a").await.unwrap().unwrap();
        assert_eq!(
            (row.tier.as_str(), row.last_failure),
            ("cold", None),
            "{elsewhere}"
        );
    }
}

fn event(key: &str, op: Op, size: u64, ts: i64) -> Payload {
    Payload::Event(AccessEvent {
        object_key: key.into(),
        op: op as i32,
        size_bytes: size,
        ts: Some(time::from_millis(ts)),
        ..Default::default()
    })
}

/// A switch the mover undid (the source was written again after the copy
/// read it): SWITCHED, then FAILED `source_changed` naming the source's
/// tier at a newer generation. The object is where that status says, and
/// the retry after the backoff moves it from there, at that generation
/// (a job from the tier of the undone switch would be refused as stale).
#[tokio::test]
async fn a_switch_undone_puts_the_object_back_where_the_failure_says() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("policy.db")).unwrap();
    apply(&store, 0, written("logs/a"), WALL).await;
    let later = WALL + 31 * DAY;
    let job = decide(&store, later).await.remove(0);
    assert_eq!((job.from_tier.as_str(), job.generation), ("hot", 0));
    let status = |state: State, generation: u64, current_tier: &str| {
        let Payload::Status(failed) = failed(&job) else {
            unreachable!()
        };
        Payload::Status(MigrationStatus {
            state: state as i32,
            generation,
            current_tier: current_tier.into(),
            error: (state == State::Failed).then(|| pb::Error {
                class: "source_changed".into(),
                message: "written again after the copy read it".into(),
            }),
            ..failed
        })
    };
    apply(&store, 1, status(State::Switched, 1, "cold"), later).await;
    let o = store.object("logs/a").await.unwrap().unwrap();
    assert_eq!((o.tier.as_str(), o.generation), ("cold", 1));
    apply(&store, 2, status(State::Failed, 2, "hot"), later).await;
    let o = store.object("logs/a").await.unwrap().unwrap();
    assert_eq!((o.tier.as_str(), o.generation), ("hot", 2), "{o:?}");
    assert!(o.inflight_job.is_none());
    assert!(decide(&store, later + HOUR).await.is_empty(), "backing off");
    let retry = decide(&store, later + 3 * HOUR).await;
    assert_eq!(retry.len(), 1);
    let retry = &retry[0];
    assert_eq!(
        (
            retry.from_tier.as_str(),
            retry.to_tier.as_str(),
            retry.generation
        ),
        ("hot", "cold", 2)
    );
}

#[tokio::test]
async fn events_during_a_backoff_do_not_retry_the_failed_move_early() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("policy.db")).unwrap();
    apply(&store, 0, event("logs/a", Op::Put, 4096, WALL), WALL).await;
    let later = WALL + 31 * DAY;
    let first = decide(&store, later).await;
    assert_eq!(first.len(), 1);
    apply(&store, 1, failed(&first[0]), later).await;

    // A HEAD during the two-hour backoff (it does not change the decision,
    // idle time counts from reads) must not make the object due before it ends.
    for (offset, minutes) in (2..).zip([10, 40, 70, 100]) {
        let ts = later + minutes * 60_000;
        apply(&store, offset, event("logs/a", Op::Head, 0, ts), ts).await;
        assert!(decide(&store, ts).await.is_empty(), "at +{minutes} min");
    }
    let retry = decide(&store, later + 2 * HOUR + 60_000).await;
    assert_eq!(retry.len(), 1);
    assert_eq!(retry[0].retry, 1);
}

#[tokio::test]
async fn an_object_larger_than_the_byte_budget_moves_alone_and_the_rest_follow() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("policy.db")).unwrap();
    // The big object is due first; three small ones after it.
    apply(&store, 0, event("logs/big", Op::Put, 10 << 30, WALL), WALL).await;
    for (i, key) in ["logs/s1", "logs/s2", "logs/s3"].into_iter().enumerate() {
        let ts = WALL + (i as i64 + 1) * 60_000;
        apply(&store, i as i64 + 1, event(key, Op::Put, 4096, ts), ts).await;
    }
    let budget = Budget {
        max_jobs: 10,
        max_bytes: 1 << 30,
        job_timeout_ms: 0,
    };
    let later = WALL + 31 * DAY;
    let first = decide_within(&store, later, budget).await;
    let keys: Vec<_> = first.iter().map(|j| j.object_key.as_str()).collect();
    assert_eq!(keys, ["logs/big"], "the big object goes, alone");
    let second = decide_within(&store, later + 5_000, budget).await;
    let keys: Vec<_> = second.iter().map(|j| j.object_key.as_str()).collect();
    assert_eq!(keys, ["logs/s1", "logs/s2", "logs/s3"]);
}

/// A job that failed because its source is archived and being restored
/// (`restoring`) waits for that restore: about the source tier's first-byte
/// time (12 hours here), not the first backoff's 2 hours.
#[tokio::test]
async fn a_job_whose_source_is_being_restored_is_retried_once_the_restore_is_due() {
    let tiers = strata_runtime::tiers::TierConfig::parse(
        "[[tiers]]\nname='hot'\nurl='memory://'\n\
         [[tiers]]\nname='cold'\nurl='memory://'\nidle_days=30\nfirst_byte_ms=43200000\n",
        &[],
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("policy.db")).unwrap();
    let apply_with = |offset: i64, payload: Payload, wall: i64| {
        let tiers = tiers.clone();
        let input = engine::Input {
            topic: "t".into(),
            partition: 0,
            offset,
            payload,
        };
        store.transaction(move |tx| engine::apply_batch(tx, &[input], &tiers, wall))
    };
    // In cold, then read three times: promoted to hot.
    let seen = AccessEvent {
        object_key: "logs/a".into(),
        op: Op::Inventory as i32,
        size_bytes: 4096,
        tier: "cold".into(),
        ts: Some(time::from_millis(WALL)),
        ..Default::default()
    };
    apply_with(0, Payload::Event(seen), WALL).await.unwrap();
    for (i, minutes) in [1, 2, 3].into_iter().enumerate() {
        let read = event("logs/a", Op::Get, 4096, WALL + minutes * 60_000);
        apply_with(1 + i as i64, read, WALL + HOUR).await.unwrap();
    }
    let jobs = decide(&store, WALL + HOUR).await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(
        (jobs[0].from_tier.as_str(), jobs[0].to_tier.as_str()),
        ("cold", "hot")
    );

    let Payload::Status(mut archived) = failed(&jobs[0]) else {
        unreachable!()
    };
    archived.error = Some(pb::Error {
        class: "restoring".into(),
        message: "restore requested".into(),
    });
    apply_with(4, Payload::Status(archived), WALL + HOUR)
        .await
        .unwrap();
    // Not at the first backoff's 2 hours: the restore takes 12.
    assert!(decide(&store, WALL + 3 * HOUR).await.is_empty());
    assert!(decide(&store, WALL + 12 * HOUR).await.is_empty());
    let retry = decide(&store, WALL + 15 * HOUR).await;
    assert_eq!(retry.len(), 1);
    assert_eq!(retry[0].retry, 1);
}

/// A status may report a generation one above what a job may carry (the
/// move a job of the last valid generation makes). A job made from it would
/// be dead-lettered by the mover and never answered, leaving the object in
/// flight for good: the policy makes none, and the object stays where it is.
#[tokio::test]
async fn an_object_at_the_last_generation_gets_no_job_the_mover_would_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("policy.db")).unwrap();
    let last = validate::MAX_GENERATION + 1;
    let completed = MigrationStatus {
        job_key: strata_proto::job_key("logs/a", "cold", "hot", last - 1),
        object_key: "logs/a".into(),
        state: State::Completed as i32,
        from_tier: "cold".into(),
        to_tier: "hot".into(),
        generation: last,
        bytes: 4096,
        ts: Some(time::from_millis(WALL)),
        ..Default::default()
    };
    assert_eq!(validate::migration_status(&completed), Ok(()));
    apply(&store, 0, Payload::Status(completed), WALL).await;
    apply(&store, 1, written("logs/b"), WALL).await;

    // Both idle past 30 days: only the object that can still move gets a job.
    let jobs = decide(&store, WALL + 31 * DAY).await;
    let keys: Vec<&str> = jobs.iter().map(|j| j.object_key.as_str()).collect();
    assert_eq!(keys, ["logs/b"]);
    let a = store.object("logs/a").await.unwrap().unwrap();
    assert_eq!((a.tier.as_str(), a.generation), ("hot", last));
    assert_eq!(a.inflight_job, None);
    // Nor is it decided again every cycle.
    assert!(decide(&store, WALL + 40 * DAY).await.is_empty());
}
