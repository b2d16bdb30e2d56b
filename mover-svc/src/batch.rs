//! Small jobs between two `file://` tiers, a batch at a time.
//!
//! A small object's file work (copy with SHA-256, read back, rename, delete)
//! takes about a tenth of a millisecond; alone, each job also pays five
//! ledger requests, a copy slot, a blocking task for its copy and a wait
//! for the group sync, each a hand-off between threads. A batch takes the
//! same steps for up to [`MAX_JOBS`] jobs together: one ledger request per
//! step, one copy slot, one blocking task that copies the objects one after
//! another, one group sync per destination tier. Each job keeps the
//! protocol's order and its statuses (design §5): accepted, copied, synced,
//! verified, switched in a durable commit, source deleted, completed.
//!
//! The ledger records what it does on a job's own path, so a restart resumes
//! a batch's jobs one by one, from their rows (`Mover::recover`). The one
//! difference: no VERIFYING row is written (the switch records the copy's
//! digest), and a COPYING row resumes as a VERIFYING one would (the copy is
//! discarded and made again).
//!
//! A job that leaves the common path (it is a duplicate or stale, its copy
//! or verification failed, its switch found the catalog moved on, its
//! source would not go, the ledger or the broker failed) goes on alone from
//! where it stands, as [`Ended::Alone`], with the same code a job alone
//! runs: the batch never decides a failure itself.

use std::{collections::BTreeSet, path::PathBuf, sync::Arc};

use futures::{FutureExt, future::BoxFuture};
use strata_proto::{MigrationJob, State};
use strata_runtime::{
    kafka::{self, Delivery},
    limits::Limits,
    tiers::TierStore,
};
use tokio::time::Instant;

use crate::{
    fault, local,
    mover::{self, Mover, Outcome},
    protocol::{self, Arrival, Seen, VerifyError},
    transfer::{self, Digest256, MoveError, Publish},
};

/// Jobs in one batch at most.
pub const MAX_JOBS: usize = 16;

/// Objects up to this size go in batches: the direct copy reads, hashes,
/// writes and reads back such an object in one go ([`local::copy`]).
pub const MAX_BYTES: u64 = local::ONE_CHUNK;

/// What became of a job of a batch.
pub enum Ended {
    /// Its outcome is recorded and its status queued.
    Done(Outcome),
    /// It goes on alone: the future ends it as a job alone ends. An `Err`
    /// is the mover's own failure, after which the job loop handles the
    /// job again from its ledger row, after a wait (or at the next start
    /// when stopping), as it does for a job alone.
    Alone(BoxFuture<'static, anyhow::Result<Outcome>>),
}

impl Mover {
    /// Whether `job` may go in a batch: a small object (by the job's word;
    /// the catalog's is checked again) between two configured `file://`
    /// tiers.
    pub fn batchable(&self, job: &MigrationJob) -> bool {
        let local = |name: &str| self.tiers.get(name).is_some_and(|t| t.local.is_some());
        job.size_bytes <= MAX_BYTES
            && job.from_tier != job.to_tier
            && local(&job.from_tier)
            && local(&job.to_tier)
    }
}

/// A job still on the batch's path.
struct Job {
    /// Its place in the batch.
    index: usize,
    job: MigrationJob,
    /// The catalog's checksum of the object, when it has one.
    catalog_sha: Option<String>,
    /// The size found at the job's `from_tier` of an object the catalog has
    /// not seen, registered there as the job is accepted.
    register_size: Option<u64>,
    /// The object's files on its `from_tier` and its `to_tier`, named once
    /// for every step, or why they cannot be (a key no file can have).
    files: Result<(PathBuf, PathBuf), MoveError>,
}

/// What one copy of the batch needs on its blocking thread.
struct CopyWork {
    source: PathBuf,
    dest: PathBuf,
    /// How the copy is put at its key: only where the key is free (it was
    /// when the batch looked), fsynced where the tier fsyncs but has no
    /// group sync, of the catalog's checksum.
    put: local::Put,
    limits: [Arc<Limits>; 2],
}

/// The batch's jobs and what became of each.
struct Batch<'a> {
    mover: &'a Arc<Mover>,
    started: Instant,
    ended: Vec<Option<Ended>>,
    /// The acks of the step statuses queued, watched together at the end.
    acks: Vec<Delivery>,
}

impl Batch<'_> {
    /// `job` goes on alone through [`Mover::handle`], which finds it new, a
    /// duplicate or stale, as the batch's lookup did.
    fn alone(&mut self, index: usize, job: &MigrationJob) {
        let (mover, job) = (self.mover.clone(), job.clone());
        self.ended[index] = Some(Ended::Alone(async move { mover.handle(job).await }.boxed()));
    }

    /// The mover itself failed `job` (the ledger, the broker, a stop): it
    /// goes on alone as a job alone does after such a failure, handled
    /// again from its ledger row after a wait, or left to the next start
    /// when the mover is stopping.
    fn interrupted(&mut self, job: Job, error: anyhow::Error) {
        self.ended[job.index] = Some(Ended::Alone(futures::future::ready(Err(error)).boxed()));
    }

    /// [`Batch::interrupted`] for every job of `jobs`.
    fn all_interrupted(&mut self, jobs: Vec<Job>, error: &anyhow::Error) {
        tracing::warn!(
            jobs = jobs.len(),
            error = format!("{error:#}"),
            "batch step failed; its jobs go on alone"
        );
        for job in jobs {
            self.interrupted(job, anyhow::anyhow!("{error:#}"));
        }
    }

    /// `job`'s first attempt (its copy, the group sync after it, or the
    /// verification) failed: it goes on alone from there, to a retry or
    /// its end.
    fn copy_failed(&mut self, job: Job, error: MoveError) {
        let (mover, started) = (self.mover.clone(), self.started);
        let Job {
            index,
            job,
            catalog_sha,
            ..
        } = job;
        self.ended[index] = Some(Ended::Alone(
            async move {
                mover
                    .after_failed_copy(&job, 1, error, catalog_sha, started)
                    .await
            }
            .boxed(),
        ));
    }

    /// Queues each job's status of the step `state`; answers the jobs whose
    /// status was queued (the others, which the broker refused, are
    /// interrupted).
    fn step(
        &mut self,
        jobs: Vec<Job>,
        state: State,
        fill: impl Fn(&Job, &mut strata_proto::MigrationStatus),
    ) -> Vec<Job> {
        let mut kept = Vec::with_capacity(jobs.len());
        for job in jobs {
            match self.queue(&job.job, state, |s| fill(&job, s)) {
                Ok(()) => kept.push(job),
                Err(e) => self.interrupted(job, e),
            }
        }
        kept
    }

    /// Queues the status of `job`'s step to `state` ([`Mover::step`]).
    fn queue(
        &mut self,
        job: &MigrationJob,
        state: State,
        fill: impl FnOnce(&mut strata_proto::MigrationStatus),
    ) -> anyhow::Result<()> {
        let delivery = self.mover.send_status(job, state, self.started, fill)?;
        self.acks.push(delivery);
        Ok(())
    }
}

/// Runs a batch of jobs whose objects no other job holds (each
/// [`Mover::batchable`]); answers what became of each, in their order.
pub async fn run(mover: &Arc<Mover>, mut jobs: Vec<MigrationJob>) -> Vec<Ended> {
    for job in &mut jobs {
        mover::fill_job_key(job);
    }
    debug_assert_eq!(
        jobs.iter()
            .map(|j| &j.object_key)
            .collect::<BTreeSet<_>>()
            .len(),
        jobs.len(),
        "two jobs of one object in a batch"
    );
    tracing::debug!(jobs = jobs.len(), "batch of small jobs");
    metrics::counter!("strata_mover_batches_total").increment(1);
    metrics::counter!("strata_mover_batched_jobs_total").increment(jobs.len() as u64);
    let mut batch = Batch {
        mover,
        started: Instant::now(),
        ended: jobs.iter().map(|_| None).collect(),
        acks: Vec::with_capacity(jobs.len() * 4),
    };
    let copied = start_and_copy(&mut batch, jobs).await;
    let switched = switch(&mut batch, copied).await;
    delete_and_complete(&mut batch, switched).await;
    kafka::watch_acks(batch.acks);
    batch
        .ended
        .into_iter()
        .map(|ended| ended.expect("every job of a batch ends or goes on alone"))
        .collect()
}

/// Looks the jobs up, accepts those that start, copies them and waits for
/// the copies' group syncs. Answers each job with its copy and read-back.
async fn start_and_copy(
    batch: &mut Batch<'_>,
    jobs: Vec<MigrationJob>,
) -> Vec<(Job, local::Copied)> {
    let mover = batch.mover;
    let keys = jobs
        .iter()
        .map(|j| (j.job_key.clone(), j.object_key.clone()))
        .collect();
    let found = match mover.db.lookup_many(keys).await {
        Ok(found) => found,
        Err(e) => {
            let jobs = jobs.into_iter().enumerate();
            batch.all_interrupted(
                jobs.map(|(index, job)| Job {
                    files: files_of(mover, &job),
                    index,
                    job,
                    catalog_sha: None,
                    register_size: None,
                })
                .collect(),
                &e,
            );
            return Vec::new();
        }
    };
    // Only new jobs of small objects take the batch's path: those the
    // catalog knows at the job's tier and generation, and those it has not
    // seen that are found at the job's tier.
    let mut starting = Vec::with_capacity(jobs.len());
    let mut unseen = Vec::new();
    for (index, (job, (ledger, catalog))) in jobs.into_iter().zip(found).enumerate() {
        let job = Job {
            files: files_of(mover, &job),
            index,
            job,
            catalog_sha: None,
            register_size: None,
        };
        match (
            protocol::on_arrival(ledger.as_ref(), catalog.as_ref(), &job.job),
            catalog,
        ) {
            (Arrival::Start, Some(c)) if c.size <= MAX_BYTES => starting.push(Job {
                catalog_sha: c.sha256,
                ..job
            }),
            (Arrival::Register, _) => unseen.push(job),
            _ => batch.alone(index, &job.job),
        }
    }
    starting.extend(register(batch, unseen).await);
    let starting = vacant(batch, starting).await;
    if starting.is_empty() {
        return Vec::new();
    }
    let accepted = starting
        .iter()
        .map(|j| (j.job.clone(), j.register_size))
        .collect();
    if let Err(e) = mover.db.accept_many(accepted).await {
        batch.all_interrupted(starting, &e);
        return Vec::new();
    }
    for _ in &starting {
        fault::point("accepted");
    }
    let starting = batch.step(starting, State::Accepted, |j, s| {
        s.current_tier = j.job.from_tier.clone()
    });
    // Closed when the mover stops: the jobs resume at the next start.
    let Ok(slot) = mover.settings.copy_slots.clone().acquire_owned().await else {
        batch.all_interrupted(starting, &anyhow::anyhow!("copy slots closed: stopping"));
        return Vec::new();
    };
    for _ in &starting {
        fault::point("copying");
    }
    let starting = batch.step(starting, State::Copying, |j, s| {
        s.attempt = 1;
        s.current_tier = j.job.from_tier.clone();
    });

    // Paths and rate limits on this side; the files on a blocking thread.
    let mut work = Vec::with_capacity(starting.len());
    let mut copying = Vec::with_capacity(starting.len());
    for job in starting {
        match copy_work(mover, &job).await {
            Ok(w) => {
                work.push(w);
                copying.push(job);
            }
            Err(e) => batch.copy_failed(job, e),
        }
    }
    let runtime = tokio::runtime::Handle::current();
    let results = tokio::task::spawn_blocking(move || {
        work.into_iter()
            .map(|w| {
                local::copy_file(&w.source, &w.dest, &w.put, |_, chunk| {
                    fault::point("mid-copy");
                    for limit in w.limits.iter().filter(|l| !l.is_unlimited()) {
                        runtime.block_on(limit.bytes(chunk));
                    }
                })
            })
            .collect::<Vec<_>>()
    })
    .await;
    drop(slot);
    let results = match results {
        Ok(results) => results,
        Err(e) => {
            let error = MoveError::Transient(format!("copy task failed: {e}"));
            for job in copying {
                batch.copy_failed(job, error.clone());
            }
            return Vec::new();
        }
    };

    // One group sync per destination tier, begun after every copy is written.
    let tiers: BTreeSet<&str> = copying.iter().map(|j| j.job.to_tier.as_str()).collect();
    let mut unsynced = Vec::new();
    for tier in tiers {
        if let Some(sync) = mover.syncs.of(tier)
            && let Err(e) = sync.sync().await
        {
            unsynced.push((tier.to_owned(), e));
        }
    }
    let mut copied = Vec::with_capacity(copying.len());
    for (job, result) in copying.into_iter().zip(results) {
        let synced = unsynced
            .iter()
            .find(|(tier, _)| *tier == job.job.to_tier)
            .map(|(_, e)| e.clone());
        match (result, synced) {
            (Ok(c), None) => copied.push((job, c)),
            (Err(e), _) | (Ok(_), Some(e)) => batch.copy_failed(job, e),
        }
    }
    copied
}

/// Finds the sizes of objects the catalog has not seen, at their jobs'
/// `from_tier`, in one blocking task. Answers the small ones found; the
/// others go on alone (where a missing object is rejected, a large one
/// copied alone).
async fn register(batch: &mut Batch<'_>, unseen: Vec<Job>) -> Vec<Job> {
    if unseen.is_empty() {
        return unseen;
    }
    // Not looked up (the task failed): every job goes on alone.
    let found_at = stat_files(batch.mover, &unseen, Side::Source)
        .await
        .unwrap_or_else(|| unseen.iter().map(|_| None).collect());
    let mut found = Vec::with_capacity(unseen.len());
    for (job, meta) in unseen.into_iter().zip(found_at) {
        match meta
            .and_then(Result::ok)
            .filter(|m| m.is_file())
            .map(|m| m.len())
        {
            Some(size) if size <= MAX_BYTES => found.push(Job {
                register_size: Some(size),
                ..job
            }),
            _ => batch.alone(job.index, &job.job),
        }
    }
    found
}

/// Keeps the jobs whose destination file is not there; the others (and
/// those whose look-up failed otherwise) go on alone, where
/// [`Mover::handle`] tells what a job may write over (an orphan copy of
/// the mover's own, the same bytes) from another object, which refuses
/// the job.
async fn vacant(batch: &mut Batch<'_>, jobs: Vec<Job>) -> Vec<Job> {
    // Not looked up (the task failed): every job goes on alone.
    let found_at = stat_files(batch.mover, &jobs, Side::Destination)
        .await
        .unwrap_or_else(|| jobs.iter().map(|_| None).collect());
    let mut free = Vec::with_capacity(jobs.len());
    for (job, meta) in jobs.into_iter().zip(found_at) {
        match meta {
            Some(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => free.push(job),
            _ => batch.alone(job.index, &job.job),
        }
    }
    free
}

/// Which of a job's two files.
#[derive(Clone, Copy)]
enum Side {
    Source,
    Destination,
}

/// What looking up each job's file on `side` found, in one blocking task
/// (`None`: the job has no path), a request counted on its tier for each,
/// as the HEAD a job alone sends. One answer per job; `None` if the task
/// failed.
async fn stat_files(
    mover: &Mover,
    jobs: &[Job],
    side: Side,
) -> Option<Vec<Option<std::io::Result<std::fs::Metadata>>>> {
    let mut paths: Vec<Option<PathBuf>> = Vec::with_capacity(jobs.len());
    for job in jobs {
        let (tier_name, path) = match side {
            Side::Source => (&job.job.from_tier, job.files.as_ref().ok().map(|f| &f.0)),
            Side::Destination => (&job.job.to_tier, job.files.as_ref().ok().map(|f| &f.1)),
        };
        if path.is_some()
            && let Ok(tier) = tier(mover, tier_name)
        {
            tier.limits.op().await;
        }
        paths.push(path.cloned());
    }
    tokio::task::spawn_blocking(move || {
        let look = |path: PathBuf| match side {
            // A source file reached through a symbolic link is no object
            // of the tier (`local::through_link`): not registered here.
            Side::Source => local::metadata_without_links(&path),
            Side::Destination => std::fs::metadata(path),
        };
        paths.into_iter().map(|path| path.map(look)).collect()
    })
    .await
    .ok()
}

/// The files of `job`'s object on its `from_tier` and its `to_tier`.
fn files_of(mover: &Mover, job: &MigrationJob) -> Result<(PathBuf, PathBuf), MoveError> {
    let file_on = |name: &str| file(tier(mover, name)?, &job.object_key);
    Ok((file_on(&job.from_tier)?, file_on(&job.to_tier)?))
}

fn tier<'a>(mover: &'a Mover, name: &str) -> Result<&'a TierStore, MoveError> {
    mover
        .tier(name)
        .map_err(|e| MoveError::Permanent(format!("{e:#}")))
}

/// The file of `key` on the `file://` tier `tier`.
fn file(tier: &TierStore, key: &str) -> Result<PathBuf, MoveError> {
    let local = tier
        .local
        .as_ref()
        .ok_or_else(|| MoveError::Permanent(format!("tier {} is not a file:// tier", tier.name)))?;
    local
        .file_of(&transfer::location(tier, key)?)
        .map_err(|e| MoveError::Permanent(format!("{e:#}")))
}

/// The files and limits of one job's copy; takes the copy's requests from
/// both tiers' operation caps.
async fn copy_work(mover: &Mover, job: &Job) -> Result<CopyWork, MoveError> {
    let (source, dest) = job.files.clone()?;
    let (src, dst) = (
        tier(mover, &job.job.from_tier)?,
        tier(mover, &job.job.to_tier)?,
    );
    src.limits.op().await;
    dst.limits.op().await;
    let fsync = dst.local.as_ref().is_some_and(|l| l.fsync);
    Ok(CopyWork {
        source,
        dest,
        put: local::Put {
            fsync: fsync && mover.syncs.of(&dst.name).is_none(),
            publish: Publish::IfAbsent,
            sha256: job.catalog_sha.clone(),
        },
        limits: [src.limits.clone(), dst.limits.clone()],
    })
}

/// A job of the batch whose switch is committed.
struct Switched {
    job: Job,
    generation: u64,
    digest: Digest256,
    /// The source file as copied.
    source: Option<Seen>,
}

/// Verifies each copy and switches the verified ones in one durable
/// commit. Answers each switched job with its new generation and digest.
async fn switch(batch: &mut Batch<'_>, copied: Vec<(Job, local::Copied)>) -> Vec<Switched> {
    let mover = batch.mover;
    let mut verified = Vec::with_capacity(copied.len());
    for (job, c) in copied {
        fault::point("copied");
        metrics::counter!("strata_mover_bytes_copied_total").increment(c.copied.bytes);
        fault::point("verifying");
        let queued = batch.queue(&job.job, State::Verifying, |s| {
            s.attempt = 1;
            s.sha256 = c.copied.sha256.clone();
            s.bytes = c.copied.bytes;
            s.current_tier = job.job.from_tier.clone();
        });
        if let Err(e) = queued {
            batch.interrupted(job, e);
            continue;
        }
        let check = protocol::verify(
            &c.copied.sha256,
            c.copied.bytes,
            &c.read_back.sha256,
            c.read_back.bytes,
            job.catalog_sha.as_deref(),
        );
        match check {
            Ok(()) => {
                fault::point("verified");
                verified.push((job, c.copied, c.e_tag, c.source));
            }
            Err(e @ VerifyError::Catalog { .. }) => {
                batch.copy_failed(job, MoveError::SourceChanged(e.to_string()))
            }
            Err(e) => batch.copy_failed(job, MoveError::VerifyMismatch(e.to_string())),
        }
    }
    if verified.is_empty() {
        return Vec::new();
    }
    let rows = verified
        .iter()
        .map(|(job, copied, _, source)| (job.job.clone(), copied.clone(), source.clone()))
        .collect();
    let generations = match mover.db.switch_many(rows).await {
        Ok(generations) => generations,
        Err(e) => {
            batch.all_interrupted(verified.into_iter().map(|(job, ..)| job).collect(), &e);
            return Vec::new();
        }
    };
    let mut switched = Vec::with_capacity(verified.len());
    for ((job, digest, e_tag, source), generation) in verified.into_iter().zip(generations) {
        let Some(generation) = generation else {
            let (mover, started, j) = (mover.clone(), batch.started, job.job.clone());
            batch.ended[job.index] = Some(Ended::Alone(
                async move {
                    let written = e_tag.as_deref();
                    mover.stale_after_copy(&j, written, started).await
                }
                .boxed(),
            ));
            continue;
        };
        fault::point("switched");
        let queued = batch.queue(&job.job, State::Switched, |s| {
            mover::switched(s, &job.job, generation, &digest, 1)
        });
        match queued {
            Ok(()) => switched.push(Switched {
                job,
                generation,
                digest,
                source,
            }),
            Err(e) => batch.interrupted(job, e),
        }
    }
    switched
}

/// Deletes the switched jobs' sources in one blocking task and completes
/// them together. A source that does not go is left to [`Mover::finish`],
/// alone, which tries again and tells a refusal from a failure.
async fn delete_and_complete(batch: &mut Batch<'_>, switched: Vec<Switched>) {
    let mover = batch.mover;
    // Each source with its tier's folder, below which emptied folders go,
    // and the file as copied.
    let mut sources = Vec::with_capacity(switched.len());
    for Switched { job, source, .. } in &switched {
        let file = match (tier(mover, &job.job.from_tier), &job.files) {
            (Ok(t), Ok((file, _))) => {
                // A request each, as a delete through the store.
                t.limits.op().await;
                t.local
                    .as_ref()
                    .map(|l| (file.clone(), l.root.clone(), source.clone()))
            }
            _ => None,
        };
        sources.push(file);
    }
    let n = sources.len();
    let deleted = tokio::task::spawn_blocking(move || {
        let (mut at, mut files, mut seen) = (Vec::new(), Vec::new(), Vec::new());
        for (i, source) in sources.into_iter().enumerate() {
            if let Some((file, root, source)) = source {
                at.push(i);
                files.push((file, root));
                seen.push(source);
            }
        }
        // A file that is no longer the one copied (written again since),
        // looked at right before its unlink, is not deleted here: its job
        // goes on alone, which keeps it.
        let still = |i: usize, file: &std::path::Path| {
            local::holds(file, seen.get(i).and_then(Option::as_ref))
        };
        let gone = local::delete_files(&files, still);
        let mut deleted = vec![false; n];
        for (i, gone) in at.into_iter().zip(gone) {
            deleted[i] = gone;
        }
        deleted
    })
    .await
    .unwrap_or_default();
    let mut gone = Vec::with_capacity(switched.len());
    for (i, switched) in switched.into_iter().enumerate() {
        let Switched {
            job,
            generation,
            digest,
            source,
        } = switched;
        if deleted.get(i).copied().unwrap_or(false) {
            fault::point("deleted");
            gone.push((job, generation, digest));
            continue;
        }
        tracing::info!(job_key = %job.job.job_key, "source not deleted in the batch; its job goes on alone");
        let (mover, started) = (mover.clone(), batch.started);
        batch.ended[job.index] = Some(Ended::Alone(
            async move {
                let switched = (generation, &digest);
                mover
                    .finish(&job.job, 1, switched, source.as_ref(), started)
                    .await
            }
            .boxed(),
        ));
    }
    if gone.is_empty() {
        return;
    }
    let keys = gone
        .iter()
        .map(|(job, ..)| job.job.job_key.clone())
        .collect();
    if let Err(e) = mover.db.complete_many(keys, 1).await {
        batch.all_interrupted(gone.into_iter().map(|(job, ..)| job).collect(), &e);
        return;
    }
    for (job, generation, digest) in gone {
        match mover.completed(&job.job, 1, generation, &digest, batch.started, None) {
            Ok(outcome) => batch.ended[job.index] = Some(Ended::Done(outcome)),
            Err(e) => batch.interrupted(job, e),
        }
    }
}
