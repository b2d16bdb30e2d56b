//! Restart in the middle of a stream: a batch lost in a crash, then a replay
//! from an older committed offset, leaves exactly the state of an
//! uninterrupted run (offsets live in the same SQLite transaction).
#![allow(clippy::unwrap_used)]

mod common;

use common::{WALL, tiers};
use policy_svc::{
    engine::{self, Input, Payload},
    store::{self, Store},
};
use strata_proto::{AccessEvent, Op, time};

/// 400 events on two partitions: PUTs, GETs and a few DELETEs of 25 keys.
fn stream() -> Vec<Input> {
    let mut offsets = [0i64; 2];
    (0..400)
        .map(|i| {
            let key = format!("data/{:02}", (i * 7) % 25);
            let partition = (i % 25 % 2) as i32;
            let op = match i % 13 {
                0 => Op::Put,
                5 => Op::Delete,
                _ => Op::Get,
            };
            let event = AccessEvent {
                object_key: key,
                op: op as i32,
                size_bytes: 1000 + i as u64,
                ts: Some(time::from_millis(WALL - 86_400_000 * 90 + i * 3_600_000)),
                ..Default::default()
            };
            let offset = offsets[partition as usize];
            offsets[partition as usize] += 1;
            Input {
                topic: "access_events".into(),
                partition,
                offset,
                payload: Payload::Event(event),
            }
        })
        .collect()
}

async fn apply(store: &Store, inputs: &[Input]) {
    let inputs = inputs.to_vec();
    store
        .transaction(move |tx| engine::apply_batch(tx, &inputs, &tiers(), WALL))
        .await
        .unwrap();
}

/// Every object row, the prefix statistics, the stored offsets and the clock.
async fn dump(store: &Store) -> String {
    store
        .transaction(|tx| {
            let keys: Vec<String> = {
                let mut stmt = tx.prepare("SELECT object_key FROM objects ORDER BY object_key")?;
                stmt.query_map([], |r| r.get(0))?
                    .collect::<Result<_, _>>()?
            };
            let rows: Vec<_> = keys
                .iter()
                .map(|k| store::load(tx, k))
                .collect::<Result<_, _>>()?;
            let prefixes: Vec<(String, String)> = {
                let mut stmt = tx.prepare("SELECT prefix, stats FROM prefixes ORDER BY prefix")?;
                stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<_, _>>()?
            };
            assert!(!prefixes.is_empty(), "the events' prefix is counted");
            let offsets = engine::stored_offsets(tx, "access_events")?;
            let clock = store::read_clock(tx)?;
            Ok(format!("{rows:?}\n{prefixes:?}\n{offsets:?}\n{clock:?}"))
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn a_restart_mid_stream_ends_in_the_uninterrupted_state() {
    let dir = tempfile::tempdir().unwrap();
    let events = stream();

    let straight = Store::open(&dir.path().join("straight.db")).unwrap();
    for batch in events.chunks(50) {
        apply(&straight, batch).await;
    }

    let path = dir.path().join("restarted.db");
    let store = Store::open(&path).unwrap();
    for batch in events[..130].chunks(50) {
        apply(&store, batch).await;
    }
    // A crash while applying the next batch: its transaction never commits.
    let lost = events[130..170].to_vec();
    let crashed: anyhow::Result<()> = store
        .transaction(move |tx| {
            engine::apply_batch(tx, &lost, &tiers(), WALL)?;
            anyhow::bail!("killed before commit")
        })
        .await;
    assert!(crashed.is_err());
    drop(store);
    // Restart: Kafka's committed offsets lag behind SQLite's, so the broker
    // delivers again from an older position; replays are skipped by offset.
    let store = Store::open(&path).unwrap();
    let mut replayed = 0;
    for batch in events[90..].chunks(40) {
        let inputs = batch.to_vec();
        let applied = store
            .transaction(move |tx| engine::apply_batch(tx, &inputs, &tiers(), WALL))
            .await
            .unwrap();
        replayed += applied.replayed;
    }
    assert_eq!(replayed, 40, "events 90..130 were applied before the crash");
    assert_eq!(dump(&store).await, dump(&straight).await);
}

#[tokio::test]
async fn an_event_sent_twice_with_one_event_id_is_applied_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("p.db")).unwrap();
    let read = |id: &str| AccessEvent {
        event_id: id.into(),
        object_key: "data/a".into(),
        op: Op::Get as i32,
        size_bytes: 10,
        ts: Some(time::from_millis(WALL - 1000)),
        ..Default::default()
    };
    let inputs: Vec<Input> = [read("e1"), read("e1"), read("e2")]
        .into_iter()
        .enumerate()
        .map(|(offset, event)| Input {
            topic: "access_events".into(),
            partition: 0,
            offset: offset as i64,
            payload: Payload::Event(event),
        })
        .collect();
    // Sent again as separate messages, in separate batches.
    for input in inputs.chunks(1) {
        apply(&store, input).await;
    }
    let o = store.object("data/a").await.unwrap().unwrap();
    assert_eq!(o.reads_total, 2, "e1 counted once, e2 once");
}
