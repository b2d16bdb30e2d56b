//! The job loop: reads `migration_jobs`, runs up to N jobs at once (never
//! two on one object, so each object's jobs keep their order), dead-letters
//! what it cannot decode, and stores an offset only when every message of
//! its partition up to it has a durable, reported outcome (I6).
//!
//! A job holds its place (one of `--jobs-in-flight`) until its outcome is
//! in the ledger and its status queued; waiting for the broker's ack of
//! that status happens beside the places, so a slow ack does not idle the
//! copies.
//!
//! The loop reads a bounded number of jobs ahead of its places; past that it
//! pauses the partitions but goes on polling, so a long copy never costs
//! the mover its group membership (`max.poll.interval.ms`), which would
//! deliver the jobs in hand again.
//!
//! Orphan copies (a source the store refused to delete for good) are tried
//! again when due, each holding its object as a job does.

use std::{
    collections::{BTreeSet, HashMap, HashSet, VecDeque},
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

use crate::{
    batch::{self, Ended},
    mover::{Mover, Outcome, UnknownTier},
};

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

/// Jobs read ahead of the loop's capacity at most; past this many waiting,
/// or [`READ_AHEAD_BYTES`] of their messages, the partitions are paused
/// until half of them have started. A pause drops what librdkafka had
/// fetched, and after the resume the first messages come about a quarter
/// of a second later (measured on librdkafka's mock cluster, whatever the
/// loop's own turn); the half left must outlast that. At 1,024 it did not:
/// 512 small jobs take about 0.2 s, so each pause idled the slots and
/// halved the small-object rate (1,100 against 2,400 jobs/s at concurrency
/// 16 over 10,000 jobs). 8,192 jobs left take seconds. A waiting job holds
/// its decoded job and position, not its message: a few hundred bytes.
const READ_AHEAD: usize = 16_384;

/// Bytes of waiting messages at most (jobs with long reasons).
const READ_AHEAD_BYTES: usize = 8 << 20;

/// How often the loop turns (and so polls the consumer) when nothing else
/// happens.
const POLL_AT_LEAST_EVERY: Duration = Duration::from_millis(250);

/// Jobs read but not started, in the order read. A job may start once its
/// object is idle and no job of its object read before it still waits: each
/// object's jobs keep their order, and a busy object does not hold up others.
#[derive(Debug)]
struct Waiting<M> {
    jobs: VecDeque<(M, MigrationJob, usize)>,
    /// The waiting messages' sizes, summed.
    bytes: usize,
}

impl<M> Default for Waiting<M> {
    fn default() -> Self {
        Self {
            jobs: VecDeque::new(),
            bytes: 0,
        }
    }
}

impl<M> Waiting<M> {
    /// Queues a job whose message is `size` bytes.
    fn push(&mut self, msg: M, job: MigrationJob, size: usize) {
        self.bytes += size;
        self.jobs.push_back((msg, job, size));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.jobs.len()
    }

    /// Whether the loop should stop reading.
    fn is_full(&self) -> bool {
        self.jobs.len() >= READ_AHEAD || self.bytes >= READ_AHEAD_BYTES
    }

    /// Whether the loop may read again once it stopped.
    fn has_room(&self) -> bool {
        self.jobs.len() <= READ_AHEAD / 2 && self.bytes <= READ_AHEAD_BYTES / 2
    }

    /// Takes the first job whose object is not `busy`. No earlier job of
    /// its object waits: that one's object would be idle too, and first.
    fn take_startable(&mut self, busy: &HashSet<String>) -> Option<(M, MigrationJob)> {
        let i = self
            .jobs
            .iter()
            .position(|(_, job, _)| !busy.contains(&job.object_key))?;
        let (msg, job, size) = self.jobs.remove(i)?;
        self.bytes -= size;
        Some((msg, job))
    }
}

/// The partitions the loop has paused. librdkafka keeps a partition paused
/// across a rebalance, so every partition ever paused is resumed, assigned
/// now or not.
#[derive(Debug, Default)]
struct Intake {
    paused: BTreeSet<(String, i32)>,
}

impl Intake {
    fn is_paused(&self) -> bool {
        !self.paused.is_empty()
    }

    /// Pauses every partition assigned now. Fetched messages not yet read
    /// are dropped; a resume fetches from the next unread one.
    fn pause(&mut self, consumer: &StreamConsumer) {
        let assignment = match consumer.assignment() {
            Ok(assignment) => assignment,
            Err(e) => {
                tracing::warn!(error = %e, "could not read the assignment to pause it");
                return;
            }
        };
        let new: Vec<_> = assignment
            .elements()
            .iter()
            .map(|e| (e.topic().to_owned(), e.partition()))
            .filter(|p| !self.paused.contains(p))
            .collect();
        if new.is_empty() {
            return;
        }
        match consumer.pause(&assignment) {
            Ok(()) => {
                tracing::debug!(partitions = new.len(), "jobs read ahead; partitions paused");
                self.paused.extend(new);
            }
            Err(e) => tracing::warn!(error = %e, "could not pause partitions"),
        }
    }

    fn resume(&mut self, consumer: &StreamConsumer) {
        if self.paused.is_empty() {
            return;
        }
        let mut tpl = TopicPartitionList::new();
        for (topic, partition) in &self.paused {
            tpl.add_partition(topic, *partition);
        }
        match consumer.resume(&tpl) {
            Ok(()) => self.paused.clear(),
            Err(e) => tracing::warn!(error = %e, "could not resume partitions"),
        }
    }
}

/// Where a job's message sits in its topic.
#[derive(Debug, Clone)]
struct Position {
    topic: String,
    partition: i32,
    offset: i64,
}

impl Position {
    fn of(msg: &OwnedMessage) -> Self {
        Self {
            topic: msg.topic().to_owned(),
            partition: msg.partition(),
            offset: msg.offset(),
        }
    }
}

/// What a finished task reports back.
struct Done {
    at: Position,
    job: MigrationJob,
    /// `None` when the job was interrupted by shutdown or set aside (its
    /// tier is gone): its offset stays open.
    outcome: Option<Outcome>,
}

/// A job's work to go on with, alone.
type GoOn = BoxFuture<'static, anyhow::Result<Outcome>>;

/// What a finished task hands back: its jobs that are done, and the jobs
/// of a batch that go on alone (each to a task of its own).
struct Landed {
    done: Vec<Done>,
    alone: Vec<(Position, MigrationJob, GoOn)>,
}

impl Landed {
    /// Starts a task for each job that goes on alone (it keeps its place);
    /// answers the jobs that are done.
    fn go_on(
        self,
        tasks: &mut JoinSet<Landed>,
        mover: &Arc<Mover>,
        stop: &CancellationToken,
    ) -> Vec<Done> {
        for (at, job, go_on) in self.alone {
            dispatch(tasks, mover, stop, at, job, Some(go_on));
        }
        self.done
    }
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
    let mut tasks: JoinSet<Landed> = JoinSet::new();
    // Places the tasks hold: one per job, a batch's jobs included.
    let mut places_taken = 0;
    let mut acks: FuturesUnordered<BoxFuture<'static, Acked>> = FuturesUnordered::new();
    let mut busy: HashSet<String> = HashSet::new();
    let mut tracker = OffsetTracker::default();
    let mut waiting: Waiting<Position> = Waiting::default();
    let mut intake = Intake::default();
    // Deletes of orphan copies that came due; each holds its object as a job does.
    let mut sweeps: JoinSet<String> = JoinSet::new();
    let mut orphan_check = tokio::time::interval_at(
        tokio::time::Instant::now() + ORPHAN_CHECK_EVERY,
        ORPHAN_CHECK_EVERY,
    );
    orphan_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut keepalive = tokio::time::interval(POLL_AT_LEAST_EVERY);
    keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Small jobs between file tiers start in batches; the rest alone.
        let mut small = Vec::new();
        while places_taken < concurrency
            && let Some((at, job)) = waiting.take_startable(&busy)
        {
            busy.insert(job.object_key.clone());
            places_taken += 1;
            if mover.batchable(&job) {
                small.push((at, job));
                if small.len() == batch::MAX_JOBS {
                    dispatch_batch(&mut tasks, &mover, stop, std::mem::take(&mut small));
                }
            } else {
                dispatch(&mut tasks, &mover, stop, at, job, None);
            }
        }
        dispatch_batch(&mut tasks, &mover, stop, small);
        if waiting.is_full() {
            intake.pause(consumer);
        } else if waiting.has_room() {
            intake.resume(consumer);
        }
        tokio::select! {
            () = stop.cancelled() => break,
            Some(landed) = tasks.join_next(), if !tasks.is_empty() => {
                let landed = landed.context("job task panicked")?;
                for done in landed.go_on(&mut tasks, &mover, stop) {
                    places_taken -= 1;
                    busy.remove(&done.job.object_key);
                    if let Some(outcome) = done.outcome {
                        acks.push(await_ack(done.at, done.job, outcome));
                    }
                }
            }
            Some(acked) = acks.next(), if !acks.is_empty() => {
                settle(consumer, &mut tracker, &mut acks, &mover, acked);
            }
            _ = orphan_check.tick() => sweep_due(&mut sweeps, &mut busy, &mover).await,
            Some(swept) = sweeps.join_next(), if !sweeps.is_empty() => {
                busy.remove(&swept.context("orphan sweep panicked")?);
            }
            // Each turn of the loop polls the consumer (the receive below),
            // paused or not: the group sees the mover alive however long
            // its copies take (`max.poll.interval.ms`).
            _ = keepalive.tick() => {}
            msg = consumer.recv() => {
                let msg = match msg {
                    Ok(msg) => msg.detach(),
                    Err(e) => {
                        tracing::warn!(error = %e, "kafka receive failed");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        continue;
                    }
                };
                let mut receiving = Receiving { consumer, publisher, stop, tracker: &mut tracker, intake: &mut intake, waiting: &mut waiting };
                if !receiving.take(msg).await {
                    return Ok(());
                }
                // What else the client has in hand waits too, so that small
                // jobs start in full batches.
                for _ in 1..DRAIN_AT_MOST {
                    if receiving.waiting.is_full() {
                        break;
                    }
                    let msg = match consumer.recv().now_or_never() {
                        Some(Ok(msg)) => msg,
                        Some(Err(e)) => {
                            tracing::warn!(error = %e, "kafka receive failed");
                            break;
                        }
                        None => break,
                    };
                    if !receiving.take(msg.detach()).await {
                        return Ok(());
                    }
                }
            }
        }
    }
    // Shutdown: finish the jobs in hand and their acks (the caller bounds
    // this with a grace period).
    while let Some(landed) = tasks.join_next().await {
        let landed = landed.context("job task panicked")?;
        for done in landed.go_on(&mut tasks, &mover, stop) {
            if let Some(outcome) = done.outcome {
                acks.push(await_ack(done.at, done.job, outcome));
            }
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

/// Messages the loop takes in at most in one turn: one received, then those
/// the client already holds.
const DRAIN_AT_MOST: usize = 1024;

/// What receiving a message touches.
struct Receiving<'a> {
    consumer: &'a StreamConsumer,
    publisher: &'a Publisher,
    stop: &'a CancellationToken,
    tracker: &'a mut OffsetTracker,
    intake: &'a mut Intake,
    waiting: &'a mut Waiting<Position>,
}

impl Receiving<'_> {
    /// Queues a received job, or dead-letters a message that is none.
    /// `false` when the mover stops while a dead letter cannot be sent.
    async fn take(&mut self, msg: OwnedMessage) -> bool {
        // In flight from here: no offset past it is stored until it is done.
        let at = Position::of(&msg);
        self.tracker.start(&at.topic, at.partition, at.offset);
        if self.intake.is_paused() {
            // From a partition assigned since the pause.
            self.intake.pause(self.consumer);
        }
        match decode(&msg) {
            Ok(job) => {
                let size = msg.payload().map_or(0, <[u8]>::len) + msg.key().map_or(0, <[u8]>::len);
                self.waiting.push(at, job, size);
            }
            Err((class, error)) => {
                let sent = self
                    .publisher
                    .dead_letter_until_sent(&msg, class, &error, self.stop);
                if !sent.await {
                    return false;
                }
                if let Some(next) = self.tracker.finish(&at.topic, at.partition, at.offset) {
                    store(self.consumer, &at.topic, at.partition, next);
                }
            }
        }
        true
    }
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
/// keeps its place and its object meanwhile.
fn interrupted_delays() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_secs(2))
        .with_max_delay(MAX_INTERRUPTED_DELAY)
        .with_jitter()
        .without_max_times()
        .build()
}

/// Starts a task for a job whose object the caller marked busy: it runs
/// `go_on` if given (a job leaving a batch), else [`Mover::handle`], and
/// handles the job again after the mover's own failures.
fn dispatch(
    tasks: &mut JoinSet<Landed>,
    mover: &Arc<Mover>,
    stop: &CancellationToken,
    at: Position,
    job: MigrationJob,
    mut go_on: Option<GoOn>,
) {
    let (mover, stop) = (mover.clone(), stop.clone());
    tasks.spawn(async move {
        let mut delays = interrupted_delays();
        let outcome = loop {
            let result = match go_on.take() {
                Some(go_on) => go_on.await,
                None => mover.handle(job.clone()).await,
            };
            match result {
                Ok(outcome) => break Some(outcome),
                // Waiting for the tier would hold a job place for good: the
                // job stays in the ledger, its offset in flight, and a start
                // with the tier configured resumes it.
                Err(e) if e.downcast_ref::<UnknownTier>().is_some() => {
                    tracing::error!(job_key = %job.job_key, error = format!("{e:#}"), "job set aside until a start with its tier");
                    break None;
                }
                // Stopping (its copy slot refused, say): it resumes at the
                // next start, its offset still in flight.
                Err(e) if stop.is_cancelled() => {
                    tracing::info!(job_key = %job.job_key, error = format!("{e:#}"), "job left for the next start");
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
        Landed {
            done: vec![Done { at, job, outcome }],
            alone: Vec::new(),
        }
    });
}

/// Starts a task for a batch of small jobs ([`batch`]) whose objects the
/// caller marked busy; a single job starts alone.
fn dispatch_batch(
    tasks: &mut JoinSet<Landed>,
    mover: &Arc<Mover>,
    stop: &CancellationToken,
    mut jobs: Vec<(Position, MigrationJob)>,
) {
    if jobs.len() <= 1 {
        if let Some((at, job)) = jobs.pop() {
            dispatch(tasks, mover, stop, at, job, None);
        }
        return;
    }
    let mover = mover.clone();
    tasks.spawn(async move {
        let (places, batch): (Vec<Position>, Vec<MigrationJob>) = jobs.into_iter().unzip();
        let ended = batch::run(&mover, batch.clone()).await;
        let mut landed = Landed {
            done: Vec::with_capacity(ended.len()),
            alone: Vec::new(),
        };
        for ((at, job), ended) in places.into_iter().zip(batch).zip(ended) {
            match ended {
                Ended::Done(outcome) => landed.done.push(Done {
                    at,
                    job,
                    outcome: Some(outcome),
                }),
                Ended::Alone(go_on) => landed.alone.push((at, job, go_on)),
            }
        }
        landed
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

    fn job_of(key: &str) -> MigrationJob {
        MigrationJob {
            object_key: key.into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_waiting_job_starts_after_its_objects_earlier_jobs_and_not_behind_others() {
        let mut waiting = Waiting::default();
        for (offset, key) in [(0, "a"), (1, "a"), (2, "b"), (3, "c")] {
            waiting.push(offset, job_of(key), 100);
        }
        let busy = HashSet::from(["b".to_string()]);
        let started = |w: &mut Waiting<i32>, busy: &HashSet<String>| {
            w.take_startable(busy).map(|(offset, _)| offset)
        };
        // a's first job, then c: a's second waits for its first, b is busy.
        assert_eq!(started(&mut waiting, &busy), Some(0));
        let busy = HashSet::from(["a".to_string(), "b".to_string()]);
        assert_eq!(started(&mut waiting, &busy), Some(3));
        assert_eq!(started(&mut waiting, &busy), None);
        let busy = HashSet::from(["b".to_string()]);
        assert_eq!(started(&mut waiting, &busy), Some(1));
        assert_eq!(started(&mut waiting, &busy), None);
        assert_eq!(started(&mut waiting, &HashSet::new()), Some(2));
        assert_eq!((waiting.len(), waiting.bytes), (0, 0));
    }

    #[test]
    fn reading_stops_at_the_job_or_byte_bound_and_resumes_at_half() {
        let mut waiting = Waiting::default();
        waiting.push(0, job_of("a"), READ_AHEAD_BYTES - 1);
        assert!(!waiting.is_full());
        waiting.push(1, job_of("b"), 1);
        assert!(waiting.is_full(), "the bytes bound");
        waiting.take_startable(&HashSet::new());
        assert!(!waiting.is_full() && waiting.has_room());

        let mut waiting = Waiting::default();
        for i in 0..READ_AHEAD {
            waiting.push(i, job_of(&i.to_string()), 10);
        }
        assert!(waiting.is_full(), "the jobs bound");
        while waiting.len() > READ_AHEAD / 2 {
            assert!(!waiting.has_room());
            waiting.take_startable(&HashSet::new());
        }
        assert!(waiting.has_room());
    }

    #[test]
    fn an_object_with_two_waiting_jobs_starts_only_the_first() {
        let mut waiting = Waiting::default();
        waiting.push(5, job_of("x"), 100);
        waiting.push(6, job_of("x"), 100);
        let first = waiting.take_startable(&HashSet::new()).map(|(o, _)| o);
        assert_eq!(first, Some(5));
        // The caller marks x busy once 5 starts; 6 waits for it.
        assert!(
            waiting
                .take_startable(&HashSet::from(["x".to_string()]))
                .is_none()
        );
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
