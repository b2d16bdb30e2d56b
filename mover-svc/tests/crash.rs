//! The crash harness (design §5, I1–I6): mover-svc as a separate process,
//! killed at every fault point of the move protocol and at random moments
//! over hundreds of jobs, restarted each time, against librdkafka's mock
//! cluster and real stores: `file://` tiers, buckets on an S3 server (moto)
//! and containers on an Azure Blob server (Azurite), started by the test. Afterwards every object must sit whole at
//! its catalog tier with its SHA-256, no tier may hold an orphan copy (nor
//! an S3 bucket an open multipart upload), and every job must have
//! completed exactly once in effect.
//!
//! Needs the fault points: `cargo test -p mover-svc --features fault-injection --test crash`.
//! `STRATA_CRASH_JOBS` sets the number of jobs on files (default 200); S3
//! and Azure, whose servers are slower, take half as many.

#![cfg(feature = "fault-injection")]
#![allow(clippy::unwrap_used)]

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use futures::TryStreamExt;
use object_store::{ObjectStoreExt, PutPayload};
use rand::{Rng, SeedableRng, rngs::StdRng};
use rdkafka::{
    ClientConfig,
    mocking::MockCluster,
    producer::{FutureProducer, FutureRecord},
};
use sha2::{Digest, Sha256};
use strata_proto::{MigrationJob, codec};
use strata_runtime::tiers::{TierConfig, TierStore};
use strata_testkit::{Azurite, Moto};

const TIERS: [&str; 3] = ["hot", "warm", "cold"];

struct Object {
    key: String,
    sha256: String,
    to: &'static str,
}

fn spawn_mover(brokers: &str, root: &Path, fault: Option<(&str, u32)>) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mover-svc"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("KAFKA_BROKERS", brokers)
        .env("STRATA_TIERS", root.join("tiers.toml"))
        .env("STRATA_DATA_DIR", root)
        .env("STRATA_MOVER_ADDR", "127.0.0.1:0")
        .env("STRATA_CREATE_TOPICS", "false")
        .env("STRATA_MOVER_PART_MIB", "5")
        .env("STRATA_MOVER_RETRY_MIN_MS", "10")
        // A restarted member should not wait out its dead predecessor's session.
        .env(
            "STRATA_KAFKA_OPTIONS",
            "session.timeout.ms=3000,heartbeat.interval.ms=500",
        )
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some((point, hit)) = fault {
        cmd.env("STRATA_FAULT_POINT", point)
            .env("STRATA_FAULT_HIT", hit.to_string());
    }
    cmd.spawn().unwrap()
}

/// Waits for `child` to exit on its own up to `limit`, then SIGKILLs it.
fn wait_or_kill(child: &mut Child, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    false
}

fn completed_jobs(db: &Path) -> usize {
    let Ok(conn) =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return 0;
    };
    conn.query_row(
        "SELECT COUNT(*) FROM ledger WHERE state = 'COMPLETED'",
        [],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n as usize)
    .unwrap_or(0)
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

/// Where the harness's tiers live.
enum Stores {
    /// `file://` folders beside the mover's state.
    Files,
    /// A bucket per tier on an S3 server.
    S3(Moto),
    /// A container per tier on an Azure Blob server.
    Azure(Azurite),
}

impl Stores {
    /// The tier file the mover reads.
    fn tier_file(&self, root: &Path) -> String {
        let mut tiers = String::new();
        for name in TIERS {
            let (url, options): (String, Vec<(&str, &str)>) = match self {
                Stores::Files => (format!("file://{}/{name}", root.display()), Vec::new()),
                Stores::S3(moto) => (format!("s3://crash-{name}"), moto.tier_options().to_vec()),
                Stores::Azure(azurite) => (
                    format!("az://crash-{name}"),
                    azurite.tier_options().to_vec(),
                ),
            };
            tiers.push_str(&format!(
                "[[tiers]]\nname = '{name}'\nurl = '{url}'\n[tiers.options]\n"
            ));
            for (k, v) in options {
                tiers.push_str(&format!("{k} = '{v}'\n"));
            }
        }
        tiers
    }

    /// Copies on `tiers` that no catalog row names: staged uploads and
    /// leftovers on file tiers, objects and open multipart uploads in buckets.
    async fn orphans(
        &self,
        root: &Path,
        tiers: &BTreeMap<&str, TierStore>,
        expected: &BTreeSet<(String, String)>,
    ) -> Vec<String> {
        let mut orphans = Vec::new();
        for (name, tier) in tiers {
            match self {
                Stores::Files => {
                    let mut files = Vec::new();
                    files_under(&root.join(name), &mut files);
                    for file in files {
                        let key = file.strip_prefix(root.join(name)).unwrap();
                        let key = key.to_string_lossy().into_owned();
                        if !expected.contains(&(name.to_string(), key)) {
                            orphans.push(file.display().to_string());
                        }
                    }
                }
                Stores::S3(_) | Stores::Azure(_) => {
                    let listed: Vec<_> = tier.store.list(None).try_collect().await.unwrap();
                    for meta in listed {
                        let key = tier.key_of(&meta.location).unwrap_or_default();
                        if !expected.contains(&(name.to_string(), key.clone())) {
                            orphans.push(format!("{}/{key}", tier.url));
                        }
                    }
                    // Azure drops uncommitted blocks by itself; S3 bills an
                    // upload's parts until it is aborted.
                    if let Stores::S3(moto) = self {
                        for _ in 0..moto.open_uploads(&format!("crash-{name}")) {
                            orphans.push(format!("an open multipart upload in crash-{name}"));
                        }
                    }
                }
            }
        }
        orphans
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_every_step_and_at_random_nothing_is_lost_or_orphaned() {
    harness(Stores::Files, jobs(200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_s3_killed_at_every_step_and_at_random_nothing_is_lost_or_orphaned() {
    let moto = Moto::start();
    for name in TIERS {
        moto.create_bucket(&format!("crash-{name}"));
    }
    harness(Stores::S3(moto), jobs(200) / 2).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_azure_killed_at_every_step_and_at_random_nothing_is_lost_or_orphaned() {
    let azurite = Azurite::start();
    for name in TIERS {
        azurite.create_container(&format!("crash-{name}")).await;
    }
    harness(Stores::Azure(azurite), jobs(200) / 2).await;
}

/// `STRATA_CRASH_JOBS`, or `default`.
fn jobs(default: usize) -> usize {
    std::env::var("STRATA_CRASH_JOBS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

async fn harness(stores: Stores, jobs: usize) {
    let mut rng = StdRng::seed_from_u64(7);
    let cluster = MockCluster::new(1).unwrap();
    for topic in ["migration_jobs", "migration_status", "migration_jobs.dlq"] {
        cluster.create_topic(topic, 2, 1).unwrap();
    }
    let brokers = cluster.bootstrap_servers();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let tier_file = stores.tier_file(root);
    std::fs::write(root.join("tiers.toml"), &tier_file).unwrap();
    let tiers: BTreeMap<&str, TierStore> = TIERS
        .iter()
        .map(|name| {
            let config = TierConfig::parse(&tier_file, &[]).unwrap();
            (*name, config.get(name).unwrap().open().unwrap())
        })
        .collect();

    // Objects: mostly small, every 25th larger than a part (multipart).
    let mut objects = Vec::new();
    for i in 0..jobs {
        let size = if i % 25 == 0 {
            11 << 20
        } else {
            rng.random_range(1..64 << 10)
        };
        let mut bytes = vec![0u8; size];
        rng.fill(&mut bytes[..]);
        let key = format!("obj/{:02}/{i:05}.bin", i % 17);
        let hot = &tiers["hot"];
        hot.store
            .put(
                &hot.location(&key).unwrap(),
                PutPayload::from(bytes.clone()),
            )
            .await
            .unwrap();
        let to = if i % 2 == 0 { "warm" } else { "cold" };
        objects.push(Object {
            key,
            sha256: hex::encode(Sha256::digest(&bytes)),
            to,
        });
    }
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &brokers)
        .create()
        .unwrap();
    for (i, o) in objects.iter().enumerate() {
        let job = MigrationJob {
            object_key: o.key.clone(),
            from_tier: "hot".into(),
            to_tier: o.to.into(),
            generation: 0,
            ..Default::default()
        };
        let value = codec::encode(&job, codec::Encoding::Protobuf);
        // Every tenth job is published twice: a duplicate must not move twice.
        for _ in 0..if i % 10 == 0 { 2 } else { 1 } {
            let record = FutureRecord::to("migration_jobs")
                .key(&o.key)
                .payload(&value);
            producer.send(record, Duration::from_secs(5)).await.unwrap();
        }
    }

    let db = root.join("state/mover.db");
    let mut crashes = 0;
    // Each fault point twice, at an early and a later hit.
    for point in mover_svc::fault::POINTS {
        for hit in [1, rng.random_range(2..6)] {
            let mut child = spawn_mover(&brokers, root, Some((point, hit)));
            if wait_or_kill(&mut child, Duration::from_secs(20)) {
                crashes += 1;
            }
        }
    }
    // Then SIGKILL at random moments.
    let mut random_kills = 0;
    while completed_jobs(&db) < jobs && random_kills < 40 {
        let mut child = spawn_mover(&brokers, root, None);
        std::thread::sleep(Duration::from_millis(rng.random_range(200..1500)));
        child.kill().unwrap();
        child.wait().unwrap();
        random_kills += 1;
    }
    // Finally a clean run until every job is done, stopped with SIGTERM.
    let mut child = spawn_mover(&brokers, root, None);
    let deadline = Instant::now() + Duration::from_secs(120);
    while completed_jobs(&db) < jobs && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(
        wait_or_kill(&mut child, Duration::from_secs(30)),
        "mover did not stop on SIGTERM"
    );

    // I1: every catalog key is whole at its tier with its SHA-256 (and the
    // tier is the job's destination); I3: moved once (generation 1).
    let conn = rusqlite::Connection::open(&db).unwrap();
    let catalog: BTreeMap<String, (String, u64, Option<String>)> = conn
        .prepare("SELECT object_key, tier, generation, sha256 FROM catalog")
        .unwrap()
        .query_map([], |r| {
            Ok((
                r.get(0)?,
                (r.get(1)?, r.get::<_, i64>(2)? as u64, r.get(3)?),
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut lost = 0;
    let mut expected = BTreeSet::new();
    for o in &objects {
        let mut whole = false;
        if let Some((tier, generation, sha)) = catalog.get(&o.key) {
            expected.insert((tier.clone(), o.key.clone()));
            let store = &tiers[tier.as_str()];
            let held = match store.store.get(&store.location(&o.key).unwrap()).await {
                Ok(got) => Some(hex::encode(Sha256::digest(got.bytes().await.unwrap()))),
                Err(_) => None,
            };
            whole = tier == o.to
                && *generation == 1
                && sha.as_deref() == Some(&o.sha256)
                && held.as_deref() == Some(&o.sha256);
        }
        if !whole {
            lost += 1;
            eprintln!(
                "lost or misplaced: {} (catalog {:?})",
                o.key,
                catalog.get(&o.key)
            );
        }
    }
    // No orphans: nothing on any tier but the catalog's copies.
    let orphans = stores.orphans(root, &tiers, &expected).await;
    for orphan in &orphans {
        eprintln!("orphan: {orphan}");
    }
    let completed = completed_jobs(&db);
    println!("crashes={crashes} random_kills={random_kills}");
    println!(
        "lost={lost} orphans={} completed={completed}/{jobs}",
        orphans.len()
    );
    assert!(
        crashes >= mover_svc::fault::POINTS.len(),
        "fault points were not reached: {crashes} crashes"
    );
    assert_eq!((lost, orphans.len(), completed), (0, 0, jobs));
}
