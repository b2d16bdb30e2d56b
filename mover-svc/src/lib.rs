//! mover-svc: consumes `migration_jobs` and performs each one safely (copy,
//! SHA-256 verify, atomic catalog switch, delete of the source), reporting
//! every step on `migration_status`.
//!
//! # Layout
//! - [`config`]: flags and environment.
//! - [`protocol`]: the pure decisions of the move protocol.
//! - [`db`]: the catalog and the ledger in SQLite.
//! - [`transfer`]: streaming copy, read-back and delete on object stores.
//! - [`local`]: the direct copy between two `file://` tiers.
//! - [`archive`]: archive classes: restores of archived sources, Azure's
//!   Archive tier set on verified copies.
//! - [`uploads`]: the multipart uploads open for a key on S3.
//! - [`signed`]: the requests the mover signs itself, where object_store
//!   has no call.
//! - [`durable`]: group syncs that make file tier copies durable.
//! - [`mover`]: the protocol in action.
//! - [`batch`]: small jobs between two `file://` tiers, in batches.
//! - [`jobs`]: the Kafka job loop: concurrency, ordering per object, offsets.
//! - [`fault`]: crash points for the crash harness (test builds only).
//! - [`api`]: HTTP lookups.
//! - [`tail`]: the `tail-status` subcommand.

pub mod api;
pub mod archive;
pub mod batch;
pub mod config;
pub mod db;
pub mod durable;
pub mod fault;
pub mod jobs;
pub mod local;
pub mod mover;
pub mod protocol;
pub mod signed;
pub mod tail;
pub mod transfer;
pub mod uploads;

use std::{collections::HashMap, future::Future, sync::Arc, time::Duration};

use anyhow::Context;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use strata_runtime::{
    http::{self, Readiness},
    kafka::{self, Publisher},
    shutdown,
    tiers::TierStore,
};
use tokio::sync::Semaphore;

pub use config::Config;
use mover::{Mover, Settings, StatusSink};

/// Jobs in flight per copy slot (`--concurrency`) unless
/// `--jobs-in-flight` says otherwise. A job holds a slot only while it
/// copies and verifies; the others meanwhile accept, switch, delete and
/// report, each waiting on a ledger commit or a group sync that it shares
/// with its neighbours. Small jobs between file tiers go in batches of 16
/// ([`batch`]), each batch waiting for two disk flushes in turn (the group
/// sync of its copies, then the durable commit of its switches): at 16
/// jobs per slot (64 in all at four slots: four batches) the copies idled
/// through those waits (4,400 objects/s on a journaled ext4); at 64 per
/// slot (256 in all: sixteen batches) about 6,200; 128 per slot did no
/// better (docs/performance.md, 2026-12-06). Jobs that do not go in
/// batches wait for a copy slot in the places meanwhile; at 16 and 64 per
/// slot they did alike.
const JOBS_PER_COPY_SLOT: usize = 64;

/// What the HTTP handlers share.
#[derive(Clone)]
pub struct AppState {
    pub db: db::Db,
    pub tiers: Arc<HashMap<String, TierStore>>,
}

/// Runs the mover until `shutdown` resolves: recovery of unfinished jobs,
/// then the job loop, with the HTTP API alongside.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    config.check()?;
    let stop = shutdown::token(shutdown);
    let ready = Readiness::default();

    let tiers: HashMap<String, TierStore> = config
        .common
        .open_tiers()?
        .into_iter()
        .map(|t| (t.name.clone(), t))
        .collect();
    let db = db::Db::open(&config.db_path())?;
    // Ordered: progress statuses are queued, and the acknowledged final
    // status of a job vouches for them.
    let publisher = Publisher::try_new_ordered(&config.common)?;
    let state = AppState {
        db: db.clone(),
        tiers: Arc::new(tiers.clone()),
    };
    let api = api::routes(state);
    let http_task = http::serve(
        config.http_addr,
        api,
        &config.common,
        ready.clone(),
        stop.clone(),
    )
    .await?;

    kafka::ensure_topics(&config.common, &config.common.all_topics()).await?;
    let mover = Mover {
        db,
        syncs: durable::Syncs::for_tiers(tiers.values()).context("start file tier syncs")?,
        tiers,
        status: StatusSink {
            publisher: publisher.clone(),
            topic: config.common.topic_migration_status.clone(),
            encoding: config.status_encoding,
        },
        settings: Settings {
            part_size: config.part_mib.max(5) << 20,
            parts_in_flight: config.parts_in_flight.max(1),
            max_attempts: config.max_attempts.max(1),
            max_retry_elapsed: Duration::from_secs(config.retry_max_secs),
            min_retry_delay: Duration::from_millis(config.retry_min_ms),
            progress_every: (config.progress_secs > 0.0)
                .then(|| Duration::from_secs_f64(config.progress_secs)),
            copy_slots: Arc::new(Semaphore::new(config.concurrency.max(1))),
        },
    };
    // A stop hands out no more copy slots: a job still waiting for one stays
    // in the ledger and resumes at the next start, rather than copying
    // through the grace period.
    let (slots, stopping) = (mover.settings.copy_slots.clone(), stop.clone());
    tokio::spawn(async move {
        stopping.cancelled().await;
        slots.close();
    });
    let resumed = mover.recover().await.context("resume unfinished jobs")?;
    tracing::info!(resumed, "recovery done");

    let consumer: StreamConsumer = kafka::consumer_config(&config.common, &config.group_id)
        .create()
        .context("create kafka consumer")?;
    consumer.subscribe(&[config.common.topic_migration_jobs.as_str()])?;
    ready.set_ready();
    tracing::info!(topic = %config.common.topic_migration_jobs, group = %config.group_id, "mover ready");

    let grace = config.common.shutdown_grace();
    let job_loop = jobs::run(
        &consumer,
        Arc::new(mover),
        &publisher,
        &stop,
        config
            .jobs_in_flight
            .unwrap_or(config.concurrency.max(1) * JOBS_PER_COPY_SLOT),
    );
    tokio::select! {
        result = job_loop => result?,
        () = async { stop.cancelled().await; tokio::time::sleep(grace).await } => {
            tracing::warn!(?grace, "grace period over; the job in hand resumes at next start");
        }
    }
    if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
        tracing::debug!(error = %e, "final commit (nothing to commit, or broker gone)");
    }
    publisher.flush(Duration::from_secs(5));
    stop.cancel();
    http_task.await.context("http task")??;
    tracing::info!("mover stopped");
    Ok(())
}
