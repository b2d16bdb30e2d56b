//! Times the ledger work of small jobs on its own: the SQLite requests a
//! batch of small jobs makes (`mover_svc::batch`), without files, Kafka or
//! anything else. Each batch of 16 jobs looks its jobs up, accepts them
//! (registering their objects, as jobs of objects the catalog has not seen
//! do), switches them in a durable commit and completes them; a few
//! batches run at once, as the mover's copy slots do, so their requests
//! share transactions as they do in the daemon. Prints the CPU time of the
//! whole process and of the database thread, per job.
//!
//!   cargo run --release -p mover-svc --example ledger_rate -- DB_FILE [JOBS] [BATCHES_AT_ONCE]
//!
//! DB_FILE must not exist (it is created, with its WAL beside it).

use std::{path::PathBuf, time::Instant};

use mover_svc::{db::Db, protocol::Seen, transfer::Digest256};
use strata_proto::MigrationJob;

mod common;
use common::{cpu_seconds, thread_cpu_seconds as thread_cpu};

/// Jobs in a batch (as `mover_svc::batch::MAX_JOBS`).
const BATCH: usize = mover_svc::batch::MAX_JOBS;

fn job(i: usize) -> MigrationJob {
    let object_key = format!("bench/{:02}/{i:06}", i % 64);
    MigrationJob {
        job_key: strata_proto::job_key(&object_key, "src", "dst", 0),
        object_key,
        from_tier: "src".into(),
        to_tier: "dst".into(),
        generation: 0,
        size_bytes: 4096,
        ..Default::default()
    }
}

/// One batch's requests, in the order `mover_svc::batch::run` makes them.
async fn batch(db: Db, jobs: Vec<MigrationJob>) -> anyhow::Result<()> {
    let keys = jobs
        .iter()
        .map(|j| (j.job_key.clone(), j.object_key.clone()))
        .collect();
    let found = db.lookup_many(keys).await?;
    anyhow::ensure!(
        found.iter().all(|(l, c)| l.is_none() && c.is_none()),
        "jobs seen before"
    );
    db.accept_many(
        jobs.iter()
            .map(|j| (j.clone(), Some(j.size_bytes)))
            .collect(),
    )
    .await?;
    let verified = jobs
        .iter()
        .map(|j| {
            let copied = Digest256 {
                sha256: "0".repeat(64),
                bytes: j.size_bytes,
            };
            // The source as a file copy sees it.
            let source = Seen {
                size: j.size_bytes,
                e_tag: Some("\"1a2b3c-61f0a1b2c3d4e-1000\"".into()),
                modified_ms: 1_767_225_600_000,
            };
            (j.clone(), copied, Some(source))
        })
        .collect();
    let generations = db.switch_many(verified).await?;
    anyhow::ensure!(
        generations.iter().all(Option::is_some),
        "a switch found the catalog moved on"
    );
    db.complete_many(jobs.iter().map(|j| j.job_key.clone()).collect(), 1)
        .await
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let path =
        PathBuf::from(args.next().ok_or_else(|| {
            anyhow::anyhow!("usage: ledger_rate DB_FILE [JOBS] [BATCHES_AT_ONCE]")
        })?);
    let jobs: usize = args.next().map_or(Ok(10_000), |n| n.parse())?;
    let at_once: usize = args.next().map_or(Ok(4), |n| n.parse())?;
    anyhow::ensure!(!path.exists(), "{} exists", path.display());
    let db = Db::open(&path)?;

    let (cpu0, db0, t0) = (cpu_seconds(), thread_cpu("mover-sqlite"), Instant::now());
    let all: Vec<MigrationJob> = (0..jobs).map(job).collect();
    let mut batches = all.chunks(BATCH).map(<[MigrationJob]>::to_vec);
    let mut running = tokio::task::JoinSet::new();
    loop {
        while running.len() < at_once {
            let Some(b) = batches.next() else { break };
            running.spawn(batch(db.clone(), b));
        }
        match running.join_next().await {
            Some(done) => done??,
            None => break,
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let (cpu, db_cpu) = (cpu_seconds() - cpu0, thread_cpu("mover-sqlite") - db0);
    println!(
        "{jobs} jobs in batches of {BATCH}, {at_once} at once: {secs:.2} s, {:.0} jobs/s; \
         CPU {cpu:.2} s ({:.1} us a job), database thread {db_cpu:.2} s ({:.1} us a job)",
        jobs as f64 / secs,
        cpu / jobs as f64 * 1e6,
        db_cpu / jobs as f64 * 1e6,
    );
    Ok(())
}
