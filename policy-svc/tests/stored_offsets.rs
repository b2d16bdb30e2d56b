//! The daemon against librdkafka's mock cluster: when SQLite has lost its
//! last commits (what power loss does to `synchronous=NORMAL`) while Kafka
//! kept the offsets stored after them, the restarted daemon starts each
//! partition at SQLite's offset, applies the lost events again, and ends in
//! the state of a run that lost nothing. And when its topic is made again
//! (a new log, from offset 0), the daemon applies the new log's events
//! rather than skipping them as a replay of what it applied from the old.
#![allow(clippy::unwrap_used)]

use std::{path::Path, time::Duration};

use clap::Parser;
use rdkafka::{
    ClientConfig, Offset, TopicPartitionList,
    consumer::{BaseConsumer, CommitMode, Consumer},
    mocking::MockCluster,
    producer::{DefaultProducerContext, FutureProducer, FutureRecord, Producer},
};
use rusqlite::OptionalExtension;
use strata_proto::{AccessEvent, Op, codec, time};
use tokio::sync::oneshot;

const TOPICS: [&str; 5] = [
    "access_events",
    "migration_status",
    "migration_jobs",
    "access_events.dlq",
    "migration_status.dlq",
];
const KEYS: usize = 10;

struct Daemon {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

fn start(brokers: &str, dir: &Path) -> Daemon {
    let root = dir.display().to_string();
    let cli = policy_svc::config::Cli::try_parse_from([
        "policy-svc",
        "--brokers",
        brokers,
        "--tiers",
        &format!("{root}/tiers.toml"),
        "--data-dir",
        &root,
        "--http-addr",
        "127.0.0.1:0",
        // The mock cluster does not answer CreateTopics; the test made them.
        "--create-topics",
        "false",
    ])
    .unwrap();
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(policy_svc::run(cli.config, async move {
        let _ = stopped.await;
    }));
    Daemon { stop, task }
}

async fn stop(daemon: Daemon) {
    let _ = daemon.stop.send(());
    tokio::time::timeout(Duration::from_secs(30), daemon.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

/// Publishes reads `from..to` of the stream: read `i` is of key `i % KEYS`.
async fn publish(producer: &FutureProducer, from: usize, to: usize) {
    let now = time::now_millis();
    for i in from..to {
        let key = format!("data/k{:02}", i % KEYS);
        let event = AccessEvent {
            object_key: key.clone(),
            op: Op::Get as i32,
            size_bytes: 1000,
            ts: Some(time::from_millis(now - 1000 + i as i64)),
            ..Default::default()
        };
        let payload = codec::encode(&event, codec::Encoding::Json);
        let record = FutureRecord::to("access_events")
            .key(&key)
            .payload(&payload);
        producer.send(record, Duration::from_secs(5)).await.unwrap();
    }
}

fn db_path(dir: &Path) -> std::path::PathBuf {
    dir.join("state/policy.db")
}

/// The next offset SQLite stored for `access_events`, partition 0.
fn stored_offset(dir: &Path) -> Option<i64> {
    let conn = rusqlite::Connection::open(db_path(dir)).ok()?;
    conn.query_row(
        "SELECT next_offset FROM offsets WHERE topic = 'access_events' AND partition = 0",
        [],
        |r| r.get(0),
    )
    .optional()
    .ok()
    .flatten()
}

async fn until_stored(dir: &Path, next: i64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while stored_offset(dir) != Some(next) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "SQLite's offset is {:?}, not {next}",
            stored_offset(dir)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Reads counted per key, in key order.
fn reads(dir: &Path) -> Vec<(String, i64)> {
    let conn = rusqlite::Connection::open(db_path(dir)).unwrap();
    let mut stmt = conn
        .prepare("SELECT object_key, reads_total FROM objects ORDER BY object_key")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Copies the database files (a closed database is its main file alone,
/// but a WAL or shared-memory file left beside it is copied too).
fn copy_db(from: &Path, to: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let (src, dst) = (
            format!("{}{suffix}", from.display()),
            format!("{}{suffix}", to.display()),
        );
        let _ = std::fs::remove_file(&dst);
        if Path::new(&src).exists() {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// A mock cluster with the daemon's topics, and a producer to it.
fn cluster() -> (
    MockCluster<'static, DefaultProducerContext>,
    String,
    FutureProducer,
) {
    let cluster = MockCluster::new(1).unwrap();
    for topic in TOPICS {
        cluster.create_topic(topic, 1, 1).unwrap();
    }
    let brokers = cluster.bootstrap_servers();
    let producer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    (cluster, brokers, producer)
}

/// A data folder with two memory tiers.
fn data_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tiers.toml"),
        "[[tiers]]\nname='hot'\nurl='memory://'\n[[tiers]]\nname='cold'\nurl='memory://'\n",
    )
    .unwrap();
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_lost_after_their_offsets_were_stored_in_kafka_are_applied_again() {
    strata_runtime::telemetry::init_tracing(strata_runtime::telemetry::LogFormat::Text);
    let (_cluster, brokers, producer) = cluster();
    let dir = data_dir();

    // First half of the stream, applied; the database as it is then.
    let daemon = start(&brokers, dir.path());
    publish(&producer, 0, 100).await;
    until_stored(dir.path(), 100).await;
    stop(daemon).await;
    let snapshot = dir.path().join("snapshot.db");
    copy_db(&db_path(dir.path()), &snapshot);

    // Second half, applied, its offsets stored and committed in Kafka.
    let daemon = start(&brokers, dir.path());
    publish(&producer, 100, 200).await;
    until_stored(dir.path(), 200).await;
    stop(daemon).await;
    let whole = reads(dir.path());
    assert_eq!(whole.len(), KEYS);
    assert!(whole.iter().all(|(_, n)| *n == 20), "{whole:?}");

    // Power loss: SQLite is back at the first half; Kafka's group is at 200.
    copy_db(&snapshot, &db_path(dir.path()));
    assert_eq!(stored_offset(dir.path()), Some(100));
    let daemon = start(&brokers, dir.path());
    until_stored(dir.path(), 200).await;
    stop(daemon).await;
    assert_eq!(reads(dir.path()), whole);
    producer.flush(Duration::from_secs(1)).unwrap();
}

/// A data folder whose database applied reads 0..100 (10 of each key) on
/// a cluster gone since: SQLite's offset of `access_events` is 100.
async fn applied_on_a_cluster_gone_since() -> tempfile::TempDir {
    let dir = data_dir();
    let (_old, brokers, producer) = cluster();
    let daemon = start(&brokers, dir.path());
    publish(&producer, 0, 100).await;
    until_stored(dir.path(), 100).await;
    stop(daemon).await;
    producer.flush(Duration::from_secs(1)).unwrap();
    dir
}

/// The topic made again (here: a new cluster) starts a new log at offset 0,
/// below the offset SQLite stored for the old one: its events are applied,
/// not skipped as a replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_events_of_a_topic_made_again_are_applied() {
    strata_runtime::telemetry::init_tracing(strata_runtime::telemetry::LogFormat::Text);
    let dir = applied_on_a_cluster_gone_since().await;
    assert!(reads(dir.path()).iter().all(|(_, n)| *n == 10));

    let (_new, brokers, producer) = cluster();
    publish(&producer, 100, 130).await;
    let daemon = start(&brokers, dir.path());
    until_stored(dir.path(), 30).await;
    stop(daemon).await;
    let after = reads(dir.path());
    assert_eq!(after.len(), KEYS);
    assert!(after.iter().all(|(_, n)| *n == 13), "{after:?}");
    producer.flush(Duration::from_secs(1)).unwrap();
}

/// A log that ends before SQLite's offset, but of which the group has an
/// offset in Kafka (a log cut short, a mirrored cluster), is not taken for
/// a new one: reading it from its start would count its reads twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_log_the_group_has_an_offset_in_is_kept() {
    strata_runtime::telemetry::init_tracing(strata_runtime::telemetry::LogFormat::Text);
    let dir = applied_on_a_cluster_gone_since().await;

    let (_new, brokers, producer) = cluster();
    publish(&producer, 100, 130).await;
    let group: BaseConsumer = group_config(&brokers, "strata-policy").create().unwrap();
    let mut at = TopicPartitionList::new();
    at.add_partition_offset("access_events", 0, Offset::Offset(20))
        .unwrap();
    group.commit(&at, CommitMode::Sync).unwrap();
    restart_new_logs(&brokers, "strata-policy", dir.path()).await;
    assert_eq!(stored_offset(dir.path()), Some(100));

    // Without the group's offset, the same log is a new one.
    restart_new_logs(&brokers, "another-group", dir.path()).await;
    assert_eq!(stored_offset(dir.path()), Some(0));
}

/// A client of `group` on `brokers`.
fn group_config(brokers: &str, group: &str) -> ClientConfig {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .clone()
}

/// The start's look for new logs of `access_events`, as `group`.
async fn restart_new_logs(brokers: &str, group: &str, dir: &Path) {
    let (config, db) = (group_config(brokers, group), db_path(dir));
    tokio::task::spawn_blocking(move || {
        policy_svc::assign::restart_new_logs(&config, &db, &["access_events"]);
    })
    .await
    .unwrap();
}
