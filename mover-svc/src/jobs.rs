//! The job loop: reads `migration_jobs`, runs up to N jobs at once (never
//! two on one object, so each object's jobs keep their order), dead-letters
//! what it cannot decode, and stores an offset only when every message of
//! its partition up to it has a durable, reported outcome (I6).
//!
//! A job holds its slot until its outcome is in the ledger and its status
//! queued; waiting for the broker's ack of that status happens beside the
//! slots, so a slow ack does not idle the copies.

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use anyhow::Context;
use backon::{BackoffBuilder, ExponentialBuilder};
use futures::{FutureExt, StreamExt, future::BoxFuture, stream::FuturesUnordered};
use rdkafka::{
    Message, Offset, TopicPartitionList,
    consumer::{Consumer, StreamConsumer},
    message::OwnedMessage,
};
use strata_proto::{MigrationJob, time, validate};
use strata_runtime::kafka::{self, Publisher};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::mover::{Mover, Outcome, UnknownTier};

/// Offsets in flight per partition, and how far each partition may commit.
#[derive(Debug, Default)]
pub struct OffsetTracker {
    partitions: HashMap<(String, i32), Partition>,
}

#[derive(Debug, Default)]
struct Partition {
    in_flight: BTreeSet<i64>,
    /// One past the highest offset started.
    next: i64,
}

impl OffsetTracker {
    /// Records that the message at `offset` started.
    pub fn start(&mut self, topic: &str, partition: i32, offset: i64) {
        let p = self
            .partitions
            .entry((topic.to_owned(), partition))
            .or_default();
        p.in_flight.insert(offset);
        p.next = p.next.max(offset + 1);
    }

    /// Records that the message at `offset` is done; returns the offset to
    /// store for its partition: the next one to read, which is the lowest
    /// still in flight, or one past the highest started when none is.
    pub fn finish(&mut self, topic: &str, partition: i32, offset: i64) -> Option<i64> {
        let p = self.partitions.get_mut(&(topic.to_owned(), partition))?;
        p.in_flight.remove(&offset);
        Some(p.in_flight.first().copied().unwrap_or(p.next))
    }
}

/// Where a job's message sits in its topic.
#[derive(Debug, Clone)]
struct Position {
    topic: String,
    partition: i32,
    offset: i64,
}

/// What a finished task reports back.
struct Done {
    at: Position,
    job: MigrationJob,
    /// `None` when the job was interrupted by shutdown or set aside (its
    /// tier is gone): its offset stays open.
    outcome: Option<Outcome>,
}

/// An outcome's delivery, settled.
struct Acked {
    at: Position,
    job: MigrationJob,
    result: anyhow::Result<()>,
}

/// Runs the loop until `stop`, then waits for the jobs in flight.
pub async fn run(
    consumer: &StreamConsumer,
    mover: Arc<Mover>,
    publisher: &Publisher,
    stop: &CancellationToken,
    concurrency: usize,
) -> anyhow::Result<()> {
    let concurrency = concurrency.max(1);
    let mut tasks: JoinSet<Done> = JoinSet::new();
    let mut acks: FuturesUnordered<BoxFuture<'static, Acked>> = FuturesUnordered::new();
    let mut busy: HashSet<String> = HashSet::new();
    let mut tracker = OffsetTracker::default();
    // A job whose object is busy waits here; nothing more is read meanwhile.
    let mut parked: Option<(OwnedMessage, MigrationJob)> = None;
    // Deletes of orphan copies that came due; each holds its object as a job does.
    let mut sweeps: JoinSet<String> = JoinSet::new();
    let mut orphan_check = tokio::time::interval_at(
        tokio::time::Instant::now() + ORPHAN_CHECK_EVERY,
        ORPHAN_CHECK_EVERY,
    );
    orphan_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if let Some((_, job)) = &parked
            && !busy.contains(&job.object_key)
            && tasks.len() < concurrency
            && let Some((msg, job)) = parked.take()
        {
            dispatch(&mut tasks, &mut busy, &mut tracker, &mover, stop, msg, job);
        }
        let can_read = parked.is_none() && tasks.len() < concurrency;
        tokio::select! {
            () = stop.cancelled() => break,
            Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                let done = done.context("job task panicked")?;
                busy.remove(&done.job.object_key);
                if let Some(outcome) = done.outcome {
                    acks.push(await_ack(done.at, done.job, outcome));
                }
            }
            Some(acked) = acks.next(), if !acks.is_empty() => {
                settle(consumer, &mut tracker, &mut acks, &mover, acked);
            }
            _ = orphan_check.tick() => sweep_due(&mut sweeps, &mut busy, &mover).await,
            Some(swept) = sweeps.join_next(), if !sweeps.is_empty() => {
                busy.remove(&swept.context("orphan sweep panicked")?);
            }
            msg = consumer.recv(), if can_read => {
                let msg = match msg {
                    Ok(msg) => msg.detach(),
                    Err(e) => {
                        tracing::warn!(error = %e, "kafka receive failed");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                match decode(&msg) {
                    Ok(job) if busy.contains(&job.object_key) => parked = Some((msg, job)),
                    Ok(job) => dispatch(&mut tasks, &mut busy, &mut tracker, &mover, stop, msg, job),
                    Err((class, error)) => {
                        tracing::warn!(partition = msg.partition(), offset = msg.offset(), error, "rejected migration job");
                        while let Err(e) = publisher.dead_letter(&msg, class, &error).await {
                            tracing::error!(error = %e, "dead-letter failed; retrying");
                            if stop.is_cancelled() {
                                return Ok(());
                            }
                            tokio::time::sleep(Duration::from_secs(2)).await;
                        }
                        tracker.start(msg.topic(), msg.partition(), msg.offset());
                        if let Some(next) = tracker.finish(msg.topic(), msg.partition(), msg.offset()) {
                            store(consumer, msg.topic(), msg.partition(), next);
                        }
                    }
                }
            }
        }
    }
    // Shutdown: finish the jobs in hand and their acks (the caller bounds
    // this with a grace period).
    while let Some(done) = tasks.join_next().await {
        let done = done.context("job task panicked")?;
        if let Some(outcome) = done.outcome {
            acks.push(await_ack(done.at, done.job, outcome));
        }
    }
    while let Some(acked) = acks.next().await {
        if acked.result.is_ok() {
            settle(consumer, &mut tracker, &mut acks, &mover, acked);
        }
    }
    while sweeps.join_next().await.is_some() {}
    Ok(())
}

/// How often the loop looks for orphan copies whose next delete is due.
const ORPHAN_CHECK_EVERY: Duration = Duration::from_secs(60);

/// Starts a delete of each orphan copy that is due, unless a job holds its
/// object (then it waits for the next check).
async fn sweep_due(sweeps: &mut JoinSet<String>, busy: &mut HashSet<String>, mover: &Arc<Mover>) {
    let due = match mover.db.orphans_due(time::now_millis()).await {
        Ok(due) => due,
        Err(e) => {
            tracing::warn!(error = format!("{e:#}"), "could not list orphans");
            return;
        }
    };
    for orphan in due {
        if !busy.insert(orphan.object_key.clone()) {
            continue;
        }
        let mover = mover.clone();
        sweeps.spawn(async move {
            if let Err(e) = mover.sweep_orphan(&orphan).await {
                tracing::warn!(object_key = %orphan.object_key, tier = %orphan.tier, error = format!("{e:#}"), "orphan not swept");
            }
            orphan.object_key
        });
    }
}

fn await_ack(at: Position, job: MigrationJob, outcome: Outcome) -> BoxFuture<'static, Acked> {
    async move {
        let result = outcome.delivered().await;
        Acked { at, job, result }
    }
    .boxed()
}

/// Stores the offset of a delivered outcome. An undelivered one is reported
/// again: the ledger holds the outcome, so handling the job anew answers
/// DUPLICATE with it, and touches no object.
fn settle(
    consumer: &StreamConsumer,
    tracker: &mut OffsetTracker,
    acks: &mut FuturesUnordered<BoxFuture<'static, Acked>>,
    mover: &Arc<Mover>,
    acked: Acked,
) {
    let Acked { at, job, result } = acked;
    match result {
        Ok(()) => {
            if let Some(next) = tracker.finish(&at.topic, at.partition, at.offset) {
                store(consumer, &at.topic, at.partition, next);
            }
        }
        Err(e) => {
            tracing::error!(job_key = %job.job_key, error = format!("{e:#}"), "outcome not delivered; reporting it again");
            let mover = mover.clone();
            acks.push(
                async move {
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    let result = match mover.handle(job.clone()).await {
                        Ok(outcome) => outcome.delivered().await,
                        Err(e) => Err(e),
                    };
                    Acked { at, job, result }
                }
                .boxed(),
            );
        }
    }
}

fn decode(msg: &OwnedMessage) -> Result<MigrationJob, (&'static str, String)> {
    let job: MigrationJob = kafka::decode(msg).map_err(|e| ("decode", e.to_string()))?;
    validate::migration_job(&job).map_err(|e| ("validate", e.to_string()))?;
    Ok(job)
}

/// The longest wait between attempts at an interrupted job.
const MAX_INTERRUPTED_DELAY: Duration = Duration::from_secs(300);

/// Waits between attempts at a job whose step failed on the mover's side
/// or at a clean-up (SQLite, Kafka, a delete the store refused): from 2 s,
/// doubling with jitter up to five minutes, without end, since the job
/// must neither be lost nor hammer a store that refuses it. Such a job
/// keeps its slot and its object meanwhile.
fn interrupted_delays() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_secs(2))
        .with_max_delay(MAX_INTERRUPTED_DELAY)
        .with_jitter()
        .without_max_times()
        .build()
}

fn dispatch(
    tasks: &mut JoinSet<Done>,
    busy: &mut HashSet<String>,
    tracker: &mut OffsetTracker,
    mover: &Arc<Mover>,
    stop: &CancellationToken,
    msg: OwnedMessage,
    job: MigrationJob,
) {
    tracker.start(msg.topic(), msg.partition(), msg.offset());
    busy.insert(job.object_key.clone());
    let (mover, stop) = (mover.clone(), stop.clone());
    let at = Position {
        topic: msg.topic().to_owned(),
        partition: msg.partition(),
        offset: msg.offset(),
    };
    tasks.spawn(async move {
        let mut delays = interrupted_delays();
        let outcome = loop {
            match mover.handle(job.clone()).await {
                Ok(outcome) => break Some(outcome),
                // Waiting for the tier would hold a job slot for good: the
                // job stays in the ledger, its offset in flight, and a start
                // with the tier configured resumes it.
                Err(e) if e.downcast_ref::<UnknownTier>().is_some() => {
                    tracing::error!(job_key = %job.job_key, error = format!("{e:#}"), "job set aside until a start with its tier");
                    break None;
                }
                Err(e) => {
                    let delay = delays.next().unwrap_or(MAX_INTERRUPTED_DELAY);
                    tracing::error!(job_key = %job.job_key, error = format!("{e:#}"), ?delay, "job interrupted; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        // Its offset stays in flight: nothing after it is committed.
                        () = stop.cancelled() => break None,
                    }
                }
            }
        };
        Done { at, job, outcome }
    });
}

fn store(consumer: &StreamConsumer, topic: &str, partition: i32, next: i64) {
    let mut tpl = TopicPartitionList::new();
    // A stored offset is the next one to read, not the last one processed.
    if let Err(e) = tpl
        .add_partition_offset(topic, partition, Offset::Offset(next))
        .and_then(|()| consumer.store_offsets(&tpl))
    {
        // After a revoke the partition is another member's: it re-reads
        // from the last commit and the ledger answers DUPLICATE.
        tracing::debug!(topic, partition, next, error = %e, "could not store offset");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interrupted_job_waits_longer_each_time_up_to_a_bound() {
        let delays: Vec<_> = interrupted_delays().take(12).collect();
        assert_eq!(delays.len(), 12, "no end to the attempts");
        assert!(delays[0] >= Duration::from_secs(2), "{delays:?}");
        // Jitter adds up to one delay; the doubling wins over it.
        assert!(delays[3] > Duration::from_secs(8), "{delays:?}");
        assert!(
            delays.iter().all(|d| *d <= 2 * MAX_INTERRUPTED_DELAY),
            "{delays:?}"
        );
        assert!(delays[11] >= MAX_INTERRUPTED_DELAY, "{delays:?}");
    }

    #[test]
    fn offsets_commit_only_past_a_contiguous_finished_prefix() {
        let mut t = OffsetTracker::default();
        for offset in 10..13 {
            t.start("jobs", 0, offset);
        }
        t.start("jobs", 1, 5);
        // 11 finishes first: 10 is still running, so 10 is the next to read.
        assert_eq!(t.finish("jobs", 0, 11), Some(10));
        assert_eq!(t.finish("jobs", 0, 10), Some(12));
        assert_eq!(t.finish("jobs", 0, 12), Some(13));
        // Partitions are independent.
        assert_eq!(t.finish("jobs", 1, 5), Some(6));
        assert_eq!(t.finish("jobs", 7, 0), None);
    }
}
