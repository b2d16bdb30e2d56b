//! mover-svc in-process against librdkafka's mock cluster and real `file://`
//! tiers in a temporary folder: moves, duplicates, stale jobs, destinations
//! that cannot exist, poison messages, recovery of a job interrupted
//! mid-copy, and a copy that outlasts the consumer's poll interval.

#![allow(clippy::unwrap_used)]

use std::{path::Path, time::Duration};

use clap::Parser;
use rdkafka::{
    ClientConfig, Message,
    consumer::{Consumer, StreamConsumer},
    message::{Header, Headers, OwnedHeaders},
    mocking::MockCluster,
    producer::{FutureProducer, FutureRecord, Producer},
};
use sha2::{Digest, Sha256};
use strata_proto::{MigrationJob, MigrationStatus, State, codec};
use tokio::sync::oneshot;

const TOPICS: [&str; 4] = [
    "migration_jobs",
    "migration_status",
    "migration_jobs.dlq",
    "access_events",
];

struct Harness {
    brokers: String,
    dir: tempfile::TempDir,
    producer: FutureProducer,
    statuses: StreamConsumer,
    /// Every status read so far, in order.
    seen: std::sync::Mutex<Vec<MigrationStatus>>,
    stop_tx: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    /// Declared last so it is dropped last: clients close against a live cluster.
    _cluster: MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Harness {
    async fn new() -> Self {
        strata_runtime::telemetry::init_tracing(strata_runtime::telemetry::LogFormat::Text);
        let cluster = MockCluster::new(1).unwrap();
        for topic in TOPICS {
            cluster.create_topic(topic, 1, 1).unwrap();
        }
        let brokers = cluster.bootstrap_servers();
        let dir = tempfile::tempdir().unwrap();
        let mut tiers = String::new();
        for name in ["hot", "warm", "cold"] {
            tiers.push_str(&format!(
                "[[tiers]]\nname = '{name}'\nurl = 'file://{}/{name}'\n",
                dir.path().display()
            ));
        }
        std::fs::write(dir.path().join("tiers.toml"), tiers).unwrap();
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .create()
            .unwrap();
        let statuses: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &brokers)
            .set("group.id", "test-observer")
            .set("auto.offset.reset", "earliest")
            .create()
            .unwrap();
        statuses.subscribe(&["migration_status"]).unwrap();
        let mut h = Harness {
            brokers,
            dir,
            producer,
            statuses,
            seen: std::sync::Mutex::default(),
            stop_tx: None,
            task: None,
            _cluster: cluster,
        };
        h.start();
        h
    }

    fn start(&mut self) {
        self.start_with(&[]);
    }

    fn start_with(&mut self, extra: &[&str]) {
        let root = self.dir.path().display().to_string();
        let cli = mover_svc::config::Cli::try_parse_from(
            [
                "mover-svc",
                "--brokers",
                &self.brokers,
                "--tiers",
                &format!("{root}/tiers.toml"),
                "--data-dir",
                &root,
                "--http-addr",
                "127.0.0.1:0",
                "--retry-min-ms",
                "10",
                "--max-attempts",
                "2",
                // The mock cluster does not answer CreateTopics; the test made them.
                "--create-topics",
                "false",
            ]
            .into_iter()
            .chain(extra.iter().copied()),
        )
        .unwrap();
        let (stop_tx, stop_rx) = oneshot::channel();
        self.stop_tx = Some(stop_tx);
        self.task = Some(tokio::spawn(mover_svc::run(cli.config, async move {
            let _ = stop_rx.await;
        })));
    }

    async fn stop(&mut self) {
        if let Some(tx) = self.stop_tx.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .unwrap()
                .unwrap()
                .unwrap();
        }
    }

    /// Adds a `file://` tier named `name` to the tier file, with `extra`
    /// TOML lines; a start after this sees it.
    fn add_tier(&self, name: &str, extra: &str) {
        let tiers = self.dir.path().join("tiers.toml");
        let mut config = std::fs::read_to_string(&tiers).unwrap();
        config.push_str(&format!(
            "[[tiers]]\nname = '{name}'\nurl = 'file://{}/{name}'\n{extra}",
            self.dir.path().display()
        ));
        std::fs::write(&tiers, config).unwrap();
    }

    fn path(&self, tier: &str, key: &str) -> std::path::PathBuf {
        self.dir.path().join(tier).join(key)
    }

    fn put(&self, tier: &str, key: &str, bytes: &[u8]) {
        let path = self.path(tier, key);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    async fn send_raw(&self, key: &str, value: &[u8]) {
        let headers = OwnedHeaders::new().insert(Header {
            key: "content-type",
            value: Some("application/json"),
        });
        let record = FutureRecord::to("migration_jobs")
            .key(key)
            .payload(value)
            .headers(headers);
        self.producer
            .send(record, Duration::from_secs(5))
            .await
            .unwrap();
    }

    async fn send_job(&self, key: &str, from: &str, to: &str, generation: u64) -> String {
        let job = MigrationJob {
            job_key: strata_proto::job_key(key, from, to, generation),
            object_key: key.into(),
            from_tier: from.into(),
            to_tier: to.into(),
            generation,
            ..Default::default()
        };
        self.send_raw(key, &codec::encode(&job, codec::Encoding::Json))
            .await;
        job.job_key
    }

    /// Puts each of `keys` on `hot` (`data`, or the key's own bytes) and
    /// sends its job to `to`; answers each key with its job key.
    async fn put_and_send(
        &self,
        keys: impl IntoIterator<Item = String>,
        to: &str,
        data: Option<&[u8]>,
    ) -> Vec<(String, String)> {
        let mut jobs = Vec::new();
        for key in keys {
            self.put("hot", &key, data.unwrap_or(key.as_bytes()));
            let job = self.send_job(&key, "hot", to, 0).await;
            jobs.push((key, job));
        }
        jobs
    }

    /// Every status of `job_key` seen so far, reading on until there are
    /// `terminal_count` terminal ones ([`Harness::until`]).
    async fn until_terminal(&self, job_key: &str, terminal_count: usize) -> Vec<MigrationStatus> {
        self.until(job_key, |seen| {
            seen.iter().filter(|s| s.state().is_terminal()).count() >= terminal_count
        })
        .await
    }

    /// Every status of `job_key` seen so far, reading on until `done` says
    /// they are enough. Statuses of other jobs read on the way are kept for
    /// later calls.
    async fn until(
        &self,
        job_key: &str,
        done: impl Fn(&[MigrationStatus]) -> bool,
    ) -> Vec<MigrationStatus> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let seen: Vec<MigrationStatus> = {
                let all = self.seen.lock().unwrap();
                all.iter()
                    .filter(|s| s.job_key == job_key)
                    .cloned()
                    .collect()
            };
            if done(&seen) {
                return seen;
            }
            let msg = tokio::time::timeout_at(deadline, self.statuses.recv())
                .await
                .unwrap_or_else(|_| panic!("{job_key} did not get there; saw {seen:?}"))
                .unwrap();
            let status: MigrationStatus = codec::decode(msg.payload().unwrap(), None).unwrap();
            self.seen.lock().unwrap().push(status);
        }
    }
}

fn states(statuses: &[MigrationStatus]) -> Vec<State> {
    statuses.iter().map(|s| s.state()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moves_once_and_answers_a_repeat_with_duplicate() {
    let mut h = Harness::new().await;
    let bytes = vec![7u8; 300_000];
    h.put("hot", "a/b.bin", &bytes);
    let job = h.send_job("a/b.bin", "hot", "cold", 0).await;
    h.send_job("a/b.bin", "hot", "cold", 0).await;
    let seen = h.until_terminal(&job, 2).await;
    assert_eq!(
        states(&seen),
        [
            State::Accepted,
            State::Copying,
            State::Verifying,
            State::Switched,
            State::Completed,
            State::Duplicate
        ]
    );
    let completed = &seen[4];
    assert_eq!((completed.generation, completed.bytes), (1, 300_000));
    assert_eq!(completed.sha256, sha(&bytes));
    assert_eq!(seen[5].result(), State::Completed);
    assert_eq!(std::fs::read(h.path("cold", "a/b.bin")).unwrap(), bytes);
    assert!(
        !h.path("hot", "a/b.bin").exists(),
        "source deleted after the switch"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_and_missing_jobs_are_rejected_without_touching_anything() {
    let mut h = Harness::new().await;
    h.put("hot", "k", b"payload");
    let first = h.send_job("k", "hot", "warm", 0).await;
    assert_eq!(
        h.until_terminal(&first, 1).await.last().unwrap().state(),
        State::Completed
    );
    // The object is now at warm, generation 1: a job that saw generation 0 is stale.
    let stale = h.send_job("k", "warm", "cold", 0).await;
    let seen = h.until_terminal(&stale, 1).await;
    let rejected = seen.last().unwrap();
    assert_eq!(states(&seen), [State::Rejected]);
    assert_eq!(rejected.error.as_ref().unwrap().class, "stale");
    assert_eq!(
        (rejected.current_tier.as_str(), rejected.generation),
        ("warm", 1)
    );
    assert!(h.path("warm", "k").exists() && !h.path("cold", "k").exists());
    // The stale job again: a DUPLICATE that, as the REJECTED, says where
    // the object is now.
    h.send_job("k", "warm", "cold", 0).await;
    let seen = h.until_terminal(&stale, 2).await;
    let duplicate = seen.last().unwrap();
    assert_eq!(
        (duplicate.state(), duplicate.result()),
        (State::Duplicate, State::Rejected)
    );
    assert_eq!(
        (duplicate.current_tier.as_str(), duplicate.generation),
        ("warm", 1)
    );
    // An object that is nowhere: rejected at once, no retries.
    let missing = h.send_job("ghost", "hot", "cold", 0).await;
    let seen = h.until_terminal(&missing, 1).await;
    assert_eq!(states(&seen), [State::Rejected]);
    assert_eq!(seen[0].error.as_ref().unwrap().class, "not_found");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_that_cannot_exist_end_the_job_at_once_and_the_mover_goes_on() {
    let mut h = Harness::new().await;
    // Sources that cannot exist (a folder on the path is a file, a name
    // longer than the file system allows) are not found: rejected at once.
    h.put("hot", "s", b"a file");
    let long = format!("x/{}", "n".repeat(300));
    for key in ["s/t", long.as_str()] {
        let job = h.send_job(key, "hot", "warm", 0).await;
        let seen = h.until_terminal(&job, 1).await;
        assert_eq!(states(&seen), [State::Rejected], "{key}: {seen:?}");
        assert_eq!(seen[0].error.as_ref().unwrap().class, "not_found");
    }
    // On warm, `a` is a file, so `a/b` can never be written there: the
    // copy fails for good, and its clean-up finds nothing to remove.
    h.put("warm", "a", b"a file where a folder would be");
    h.put("hot", "a/b", b"payload");
    let blocked = h.send_job("a/b", "hot", "warm", 0).await;
    let seen = h.until_terminal(&blocked, 1).await;
    assert_eq!(
        states(&seen),
        [State::Accepted, State::Copying, State::Failed],
        "{seen:?}"
    );
    assert_eq!(seen[2].error.as_ref().unwrap().class, "permanent");
    assert_eq!(std::fs::read(h.path("hot", "a/b")).unwrap(), b"payload");
    assert_eq!(
        std::fs::read(h.path("warm", "a")).unwrap(),
        b"a file where a folder would be"
    );
    // Not wedged: the next job runs.
    h.put("hot", "c", b"next");
    let next = h.send_job("c", "hot", "warm", 0).await;
    let seen = h.until_terminal(&next, 1).await;
    assert_eq!(seen.last().unwrap().state(), State::Completed);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_job_is_dead_lettered_and_the_next_job_runs() {
    let mut h = Harness::new().await;
    h.send_raw("bad", b"{\"objectKey\": 12").await;
    h.send_raw(
        "../etc/passwd",
        br#"{"objectKey":"../etc/passwd","fromTier":"hot","toTier":"cold"}"#,
    )
    .await;
    h.put("hot", "after", b"x");
    let job = h.send_job("after", "hot", "cold", 0).await;
    assert_eq!(
        h.until_terminal(&job, 1).await.last().unwrap().state(),
        State::Completed
    );

    let dlq: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &h.brokers)
        .set("group.id", "test-dlq")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    dlq.subscribe(&["migration_jobs.dlq"]).unwrap();
    let mut classes = Vec::new();
    for _ in 0..2 {
        let msg = tokio::time::timeout(Duration::from_secs(10), dlq.recv())
            .await
            .unwrap()
            .unwrap();
        let header = |name: &str| {
            let headers = msg.headers().unwrap();
            let h = headers.iter().find(|h| h.key == name).unwrap();
            String::from_utf8(h.value.unwrap().to_vec()).unwrap()
        };
        assert_eq!(header("x-strata-source-topic"), "migration_jobs");
        classes.push(header("x-strata-error-class"));
    }
    assert_eq!(classes, ["decode", "validate"]);
    assert!(!Path::new("/etc/passwd.strata-test").exists());
    h.stop().await;
}

/// What a kill -9 during COPYING of `key` from hot to cold leaves, with
/// `source` on hot and `at_destination` on cold: the ledger says COPYING,
/// the catalog still names the source. The mover must be stopped.
async fn interrupted_mid_copy(
    h: &Harness,
    key: &str,
    source: &[u8],
    at_destination: &[u8],
) -> MigrationJob {
    h.put("hot", key, source);
    h.put("cold", key, at_destination);
    let job = MigrationJob {
        job_key: strata_proto::job_key(key, "hot", "cold", 0),
        object_key: key.into(),
        from_tier: "hot".into(),
        to_tier: "cold".into(),
        generation: 0,
        size_bytes: source.len() as u64,
        ..Default::default()
    };
    let db = mover_svc::db::Db::open(&h.dir.path().join("state/mover.db")).unwrap();
    db.accept(&job, Some(source.len() as u64)).await.unwrap();
    db.set_state(&job.job_key, State::Copying, 1, None)
        .await
        .unwrap();
    job
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_resumes_a_job_interrupted_mid_copy() {
    let mut h = Harness::new().await;
    h.stop().await;
    // What a kill -9 during COPYING leaves: the ledger says COPYING, the
    // catalog still names the source, and the attempt's copy may sit at the
    // destination (a copy is put there whole or not at all).
    let bytes: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let job = interrupted_mid_copy(&h, "big.bin", &bytes, &bytes).await;
    h.start();
    let seen = h.until_terminal(&job.job_key, 1).await;
    let last = seen.last().unwrap();
    assert_eq!(last.state(), State::Completed);
    assert_eq!(last.attempt, 2, "the interrupted attempt counts");
    assert_eq!(last.sha256, sha(&bytes));
    assert_eq!(std::fs::read(h.path("cold", "big.bin")).unwrap(), bytes);
    assert!(!h.path("hot", "big.bin").exists());
    // The job arriving now (a redelivery) is a duplicate, not a second move.
    h.send_job("big.bin", "hot", "cold", 0).await;
    assert_eq!(
        states(&h.until_terminal(&job.job_key, 2).await)[seen.len()..],
        [State::Duplicate]
    );
    h.stop().await;
    h.producer.flush(Duration::from_secs(1)).unwrap();
}

/// A job interrupted mid-copy whose destination key holds another object
/// when it resumes (an application wrote it there meanwhile) keeps it: the
/// resume discards only the job's own copy, and the job FAILS `occupied`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_job_keeps_another_object_found_at_its_key() {
    let mut h = Harness::new().await;
    h.stop().await;
    let bytes = b"the object moved".repeat(1000);
    let theirs = b"written at the key while the mover was down";
    let job = interrupted_mid_copy(&h, "taken.bin", &bytes, theirs).await;
    h.start();
    let seen = h.until_terminal(&job.job_key, 1).await;
    let last = seen.last().unwrap();
    assert_eq!(last.state(), State::Failed);
    let error = last.error.as_ref().unwrap();
    assert_eq!(error.class, "occupied", "{error:?}");
    assert!(error.message.contains("taken.bin"), "{error:?}");
    assert_eq!(std::fs::read(h.path("cold", "taken.bin")).unwrap(), theirs);
    assert_eq!(std::fs::read(h.path("hot", "taken.bin")).unwrap(), bytes);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ledger_job_on_a_tier_no_longer_configured_waits_for_it_and_blocks_nothing_else() {
    let mut h = Harness::new().await;
    h.stop().await;
    // A job left COPYING towards `archive`, a tier then removed from the
    // configuration: the mover must start, serve other jobs, and finish
    // that one once the tier is back.
    h.put("hot", "old.bin", b"keep me");
    let job = MigrationJob {
        job_key: strata_proto::job_key("old.bin", "hot", "archive", 0),
        object_key: "old.bin".into(),
        from_tier: "hot".into(),
        to_tier: "archive".into(),
        generation: 0,
        size_bytes: 7,
        ..Default::default()
    };
    {
        let db = mover_svc::db::Db::open(&h.dir.path().join("state/mover.db")).unwrap();
        db.accept(&job, Some(7)).await.unwrap();
    }
    // One job at a time, and the set-aside job consumed again first (its
    // offset was never stored): it must not hold the only place.
    h.start_with(&["--concurrency", "1", "--jobs-in-flight", "1"]);
    h.send_raw("old.bin", &codec::encode(&job, codec::Encoding::Json))
        .await;
    h.put("hot", "other", b"x");
    let other = h.send_job("other", "hot", "warm", 0).await;
    let seen = h.until_terminal(&other, 1).await;
    assert_eq!(seen.last().unwrap().state(), State::Completed);
    assert_eq!(std::fs::read(h.path("hot", "old.bin")).unwrap(), b"keep me");
    h.stop().await;

    h.add_tier("archive", "");
    h.start();
    let seen = h.until_terminal(&job.job_key, 1).await;
    assert_eq!(seen.last().unwrap().state(), State::Completed, "{seen:?}");
    assert_eq!(
        std::fs::read(h.path("archive", "old.bin")).unwrap(),
        b"keep me"
    );
    assert!(!h.path("hot", "old.bin").exists());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_jobs_keep_each_objects_order_and_report_progress() {
    let mut h = Harness::new().await;
    h.stop().await;
    h.start_with(&[
        "--concurrency",
        "4",
        "--progress-secs",
        "0.001",
        "--part-mib",
        "5",
    ]);
    let big: Vec<u8> = (0..12_000_000u32).map(|i| (i % 253) as u8).collect();
    h.put("hot", "big", &big);
    let singles = h
        .put_and_send((0..12).map(|i| format!("small/{i}")), "warm", None)
        .await;
    // Two jobs on one object, back to back: the second needs the first's
    // generation, so it only succeeds if they run in order.
    let first = h.send_job("big", "hot", "warm", 0).await;
    let second = h.send_job("big", "warm", "cold", 1).await;
    let mut all = Vec::new();
    for job in singles.iter().map(|(_, job)| job).chain([&first, &second]) {
        let seen = h.until_terminal(job, 1).await;
        assert_eq!(seen.last().unwrap().state(), State::Completed, "{seen:?}");
        all.extend(seen);
    }
    assert_eq!(std::fs::read(h.path("cold", "big")).unwrap(), big);
    assert!(!h.path("warm", "big").exists() && !h.path("hot", "big").exists());
    let progress: Vec<u64> = all
        .iter()
        .filter(|s| s.job_key == first && s.state() == State::Copying && s.bytes > 0)
        .map(|s| s.bytes)
        .collect();
    assert!(!progress.is_empty(), "a 12 MB copy reported no progress");
    assert!(progress.iter().all(|&b| b <= big.len() as u64));
    h.stop().await;
}

/// A stop while jobs wait for the only copy slot: the mover does not copy
/// them through its grace period; they stay in the ledger, and the next
/// start completes every one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_leaves_jobs_waiting_for_a_copy_slot_to_the_next_start() {
    let mut h = Harness::new().await;
    h.stop().await;
    // 1 MiB/s: each 3 MiB copy takes seconds, far less than the grace period.
    h.add_tier("slow", "max_bytes_per_sec = 1048576\n");
    h.start_with(&["--concurrency", "1", "--jobs-in-flight", "4"]);
    let data = vec![3u8; 3 << 20];
    let jobs = h
        .put_and_send((0..4).map(|i| format!("queued/{i}")), "slow", Some(&data))
        .await;
    // Every job in hand: the first copying, the others waiting for its slot.
    let last = &jobs[3].1;
    h.until(last, |seen| {
        seen.iter().any(|s| s.state() == State::Accepted)
    })
    .await;
    stop_then_complete(&mut h, &jobs, &data).await;
}

/// Stops the mover while `jobs` (moving `data` from hot to slow) are in
/// hand, checks that not all were copied through the stop, starts it again
/// and checks that each completes; answers each job's COMPLETED status.
async fn stop_then_complete(
    h: &mut Harness,
    jobs: &[(String, String)],
    data: &[u8],
) -> Vec<MigrationStatus> {
    h.stop().await;
    let moved = jobs
        .iter()
        .filter(|(key, _)| h.path("slow", key).exists())
        .count();
    assert!(moved < jobs.len(), "all {moved} copied during the stop");
    h.start();
    let mut ends = Vec::new();
    for (key, job) in jobs {
        let seen = h.until_terminal(job, 1).await;
        let end = seen.last().unwrap().clone();
        assert_eq!(end.state(), State::Completed, "{seen:?}");
        assert_eq!(std::fs::read(h.path("slow", key)).unwrap(), data);
        assert!(!h.path("hot", key).exists(), "{key}");
        ends.push(end);
    }
    h.stop().await;
    ends
}

/// The same for small jobs, which go in batches: a batch waiting for the
/// only copy slot when the mover stops is left in the ledger at its first
/// attempt (not resumed on the way out), and the next start completes
/// every job, the interrupted ones at their second attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_leaves_a_batch_waiting_for_a_copy_slot_to_the_next_start() {
    let mut h = Harness::new().await;
    h.stop().await;
    // 1 MiB/s: a batch of sixteen 256 KiB copies takes about 4 s.
    h.add_tier("slow", "max_bytes_per_sec = 1048576\n");
    let data = vec![5u8; 256 << 10];
    let jobs = h
        .put_and_send(
            (0..32).map(|i| format!("batched/{i:02}")),
            "slow",
            Some(&data),
        )
        .await;
    h.start_with(&["--concurrency", "1", "--jobs-in-flight", "32"]);
    // Every job accepted: one batch copying, the rest waiting for its slot.
    for (_, job) in &jobs {
        h.until(job, |seen| {
            seen.iter().any(|s| s.state() == State::Accepted)
        })
        .await;
    }
    let ends = stop_then_complete(&mut h, &jobs, &data).await;
    for ((key, _), end) in jobs.iter().zip(ends) {
        assert!(end.attempt <= 2, "{key} ended at attempt {}", end.attempt);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consuming_the_whole_topic_again_copies_and_deletes_nothing() {
    let mut h = Harness::new().await;
    let jobs = h
        .put_and_send((0..5).map(|i| format!("replay/{i}")), "warm", None)
        .await;
    for (_, job) in &jobs {
        assert_eq!(
            h.until_terminal(job, 1).await.last().unwrap().state(),
            State::Completed
        );
    }
    h.stop().await;
    let before: Vec<_> = (0..5)
        .map(|i| {
            std::fs::metadata(h.path("warm", &format!("replay/{i}")))
                .unwrap()
                .modified()
                .unwrap()
        })
        .collect();
    // A new consumer group reads migration_jobs from the beginning.
    h.start_with(&["--group-id", "strata-mover-replay"]);
    for (_, job) in &jobs {
        let seen = h.until_terminal(job, 2).await;
        let replayed: Vec<State> = seen
            .iter()
            .skip_while(|s| s.state() != State::Completed)
            .skip(1)
            .map(|s| s.state())
            .collect();
        assert_eq!(replayed, [State::Duplicate], "replay did more than answer");
    }
    for (i, modified) in before.iter().enumerate() {
        let key = format!("replay/{i}");
        assert_eq!(
            std::fs::metadata(h.path("warm", &key))
                .unwrap()
                .modified()
                .unwrap(),
            *modified,
            "{key} rewritten"
        );
        assert!(!h.path("hot", &key).exists());
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_longer_than_the_poll_interval_keeps_the_group_and_is_not_delivered_again() {
    let mut h = Harness::new().await;
    h.stop().await;
    // A tier capped at 100 kB/s: the copy below takes at least 9 s, half
    // again the poll interval (the mock cluster's shortest session is 6 s),
    // while it holds the only slot.
    h.add_tier("slow", "max_bytes_per_sec = 100000\n");
    h.start_with(&[
        "--concurrency",
        "1",
        "--kafka-options",
        "max.poll.interval.ms=6000,session.timeout.ms=6000",
    ]);
    let bytes = vec![3u8; 1_000_000];
    h.put("hot", "slow.bin", &bytes);
    h.put("hot", "next", b"next");
    let slow = h.send_job("slow.bin", "hot", "slow", 0).await;
    let next = h.send_job("next", "hot", "warm", 0).await;
    let seen = h.until_terminal(&slow, 1).await;
    let completed = seen.last().unwrap();
    assert_eq!(completed.state(), State::Completed, "{seen:?}");
    assert!(completed.elapsed_ms > 6_000, "{completed:?}");
    let seen = h.until_terminal(&next, 1).await;
    assert_eq!(seen.last().unwrap().state(), State::Completed, "{seen:?}");
    assert_eq!(std::fs::read(h.path("slow", "slow.bin")).unwrap(), bytes);
    // Had the mover left the group, its slow job (its offset not stored
    // yet) would be delivered again and answered DUPLICATE, before a job
    // sent now.
    h.put("hot", "marker", b"m");
    let marker = h.send_job("marker", "hot", "warm", 0).await;
    h.until_terminal(&marker, 1).await;
    let slow_states = states(&h.until_terminal(&slow, 1).await);
    assert!(
        !slow_states.contains(&State::Duplicate),
        "delivered again: {slow_states:?}"
    );
    h.stop().await;
}

/// The metric `name` as the process's `/metrics` renders it (0 if absent).
fn metric(name: &str) -> f64 {
    let rendered = strata_runtime::telemetry::prometheus().render();
    rendered
        .lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Small jobs queued while the mover was down start in batches when it
/// starts: the loop takes in what the client holds before it starts jobs.
/// Each job still reports every step, in order, and moves once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_small_jobs_go_in_batches_and_each_reports_every_step() {
    let mut h = Harness::new().await;
    h.stop().await;
    let jobs = h
        .put_and_send((0..48).map(|i| format!("queued/{i:02}")), "warm", None)
        .await;
    let batched_before = metric("strata_mover_batched_jobs_total");
    h.start();
    for (key, job) in &jobs {
        let seen = h.until_terminal(job, 1).await;
        assert_eq!(
            states(&seen),
            [
                State::Accepted,
                State::Copying,
                State::Verifying,
                State::Switched,
                State::Completed
            ],
            "{key}"
        );
        assert_eq!(std::fs::read(h.path("warm", key)).unwrap(), key.as_bytes());
        assert!(!h.path("hot", key).exists(), "{key} left at the source");
    }
    let batched = metric("strata_mover_batched_jobs_total") - batched_before;
    assert!(
        batched >= 16.0,
        "only {batched} of 48 queued jobs went in batches"
    );
    h.stop().await;
}
