//! The move protocol in action (design §5): de-duplicate, validate against
//! the catalog, copy with SHA-256, verify by reading back, switch the
//! catalog, delete the source, report each step. Every step is in the ledger
//! before the next begins, so a restart resumes from it.

use std::{collections::HashMap, sync::Arc, time::Duration};

use anyhow::Context;
use backon::{BackoffBuilder, ExponentialBuilder};
use futures::FutureExt;
use object_store::ObjectMeta;
use strata_proto::{MigrationJob, MigrationStatus, State, codec::Encoding, pb, time};
use strata_runtime::{
    kafka::{self, Delivery, Publisher},
    tiers::TierStore,
};
use tokio::{sync::Semaphore, time::Instant};

use crate::{
    archive,
    db::{Db, Queued},
    durable::Syncs,
    fault,
    protocol::{self, Arrival, LedgerRow, OrphanRow, Resume, Seen, Sweep, VerifyError},
    transfer::{self, Deleted, Digest256, MoveError, Publish},
    uploads,
};

/// Tuning of copies and retries.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Multipart part size; objects up to this size are one PUT.
    pub part_size: usize,
    /// Parts buffered at most per copy: memory ≈ part_size × this.
    pub parts_in_flight: usize,
    /// Attempts at copy-and-verify before a job FAILS.
    pub max_attempts: u32,
    /// Bound on the time one job's copy is tried, attempts and waits
    /// together: no attempt starts past it.
    pub max_retry_elapsed: Duration,
    /// First retry delay; doubles with jitter.
    pub min_retry_delay: Duration,
    /// How often a long copy reports COPYING with the bytes done; `None`: never.
    pub progress_every: Option<Duration>,
    /// Copies at once, over all jobs: a job holds a slot while it copies
    /// and verifies (the stores' load), and not while it accepts, waits for
    /// a file tier's group sync, switches, deletes or waits to retry.
    pub copy_slots: Arc<Semaphore>,
}

/// Where statuses go.
#[derive(Clone)]
pub struct StatusSink {
    pub publisher: Publisher,
    pub topic: String,
    pub encoding: Encoding,
}

/// A job's outcome: recorded in the ledger and queued on `migration_status`.
/// Its offset may be stored once [`Outcome::delivered`] returns.
#[must_use = "a job's offset may be stored only once its outcome is delivered"]
pub struct Outcome(Option<Delivery>);

impl Outcome {
    /// Waits for the broker's ack of the outcome's status.
    pub async fn delivered(self) -> anyhow::Result<()> {
        match self.0 {
            Some(delivery) => delivery.acked().await.context("deliver outcome status"),
            None => Ok(()),
        }
    }
}

/// Performs jobs against the tiers' stores, recording each step.
pub struct Mover {
    pub db: Db,
    pub tiers: HashMap<String, TierStore>,
    /// Group syncs of the file tiers that fsync ([`crate::durable`]).
    pub syncs: Syncs,
    pub status: StatusSink,
    pub settings: Settings,
}

/// The error class of a COMPLETED job whose source copy could not be deleted.
pub const SOURCE_NOT_DELETED: &str = "source_not_deleted";

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// A job in the ledger names a tier the configuration no longer has: it
/// can only go on once the tier is configured again (then at a start).
#[derive(Debug, thiserror::Error)]
#[error("tier {0:?} is not configured")]
pub struct UnknownTier(pub String);

/// A step's failure: the job's own (it ends FAILED or is retried), or the
/// mover's infrastructure (SQLite, Kafka), which leaves the job in the
/// ledger to be resumed.
enum StepError {
    /// With the destination's ETag as the attempt's write was answered,
    /// when its copy is at the key.
    Move(MoveError, Option<String>),
    Infra(anyhow::Error),
}

impl From<MoveError> for StepError {
    fn from(e: MoveError) -> Self {
        StepError::Move(e, None)
    }
}
impl From<anyhow::Error> for StepError {
    fn from(e: anyhow::Error) -> Self {
        StepError::Infra(e)
    }
}

/// An attempt's copy, verified.
struct Verified {
    digest: Digest256,
    /// The copy's ETag as its write was answered, when known.
    written: Option<String>,
    /// The source as the copy read it.
    source: Option<Seen>,
    /// The VERIFYING write, queued, to be heard after the switch.
    verifying: Queued<()>,
}

/// What a job's destination key holds, before the job starts.
enum Destination {
    /// Nothing: the copy is put there only if that is still so.
    Empty,
    /// What the job may write over: an orphan copy of the mover's own, the
    /// source's very bytes.
    Replaceable,
    /// Another object: which.
    Occupied(String),
    /// A HEAD of the key was refused for good: nothing can be known.
    Unknown(MoveError),
}

/// What a discard knows of the copy the job's last attempt put at its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Written<'a> {
    /// The store answered its write with this ETag.
    ETag(&'a str),
    /// Nothing, or a write whose answer was lost.
    Unknown,
    /// Whatever the attempt did before a crash: on an archived tier, which
    /// cannot be read back, an object of the source's size there counts as
    /// its copy, as the verify of a copy there trusts its size.
    BeforeCrash,
}

impl Written<'_> {
    /// The attempt's write, answered with `e_tag` if it is known.
    fn answered(e_tag: Option<&str>) -> Written<'_> {
        e_tag.map_or(Written::Unknown, Written::ETag)
    }

    /// Whether `there` is the copy the attempt wrote, by its ETag.
    fn wrote(self, there: &ObjectMeta) -> bool {
        matches!(self, Written::ETag(e_tag) if there.e_tag.as_deref() == Some(e_tag))
    }
}

/// What a discard left at a job's destination key.
enum Discarded {
    /// Nothing of the job's: the next copy is put there only if the key is
    /// still empty.
    Emptied,
    /// A copy of the job's own: the live copy (the catalog names the
    /// tier), or one its store refused to delete (on record as an orphan).
    /// The next copy is written over it.
    Left,
    /// Another object, written at the key while the job ran: kept. Which.
    Other(String),
}

impl Discarded {
    /// How the next copy may be put at the key, or which other object
    /// holds it.
    fn next_publish(self) -> Result<Publish, String> {
        match self {
            Discarded::Emptied => Ok(Publish::IfAbsent),
            Discarded::Left => Ok(Publish::Replace),
            Discarded::Other(there) => Err(there),
        }
    }
}

/// How a job's next copy attempt begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct NextAttempt {
    /// Accepting the job wrote the attempt's COPYING to the ledger already
    /// (a first attempt); otherwise the attempt writes it (a retry, a resume).
    copying_recorded: bool,
    /// Over what the attempt's copy may be written.
    publish: Publish,
}

impl NextAttempt {
    /// An attempt after a discard of the destination that left it so.
    fn after_discard(publish: Publish) -> Self {
        NextAttempt {
            copying_recorded: false,
            publish,
        }
    }
}

/// What `tier` holds at `key`, if it is the copy a job switched to
/// (`digest`): the same size and, read back, the same SHA-256 (where it
/// cannot be read, on an archived tier or without read permission, the
/// same size, as an archived copy's verify trusts). `None` when it is
/// another object, gone, or cannot be looked at for good; an error that
/// may pass is returned.
async fn own_copy(
    tier: &TierStore,
    key: &str,
    digest: &Digest256,
) -> Result<Option<Seen>, MoveError> {
    let found = match transfer::head(tier, key).await {
        Ok(found) if found.size == digest.bytes => found,
        Err(e) if e.is_retryable() => return Err(e),
        Ok(_) | Err(_) => return Ok(None),
    };
    if !tier.archived {
        match transfer::read_digest(tier, key).await {
            Ok(read) if read == *digest => {}
            Err(e) if e.is_retryable() => return Err(e),
            Err(e) if !matches!(e, MoveError::NotFound(_)) => {}
            Ok(_) | Err(_) => return Ok(None),
        }
    }
    Ok(Some(Seen::of(&found)))
}

/// Says that `dst` holds `found` at `job`'s key, another object than the
/// one the job moves.
fn another_object(dst: &TierStore, job: &MigrationJob, found: &ObjectMeta) -> String {
    format!(
        "{} already holds another object ({} bytes, modified {}); \
         a move never overwrites one: remove or rename it before moving this object here",
        dst.url_of(&job.object_key),
        found.size,
        found.last_modified.to_rfc3339(),
    )
}

fn job_of(row: &LedgerRow) -> MigrationJob {
    MigrationJob {
        job_key: row.job_key.clone(),
        object_key: row.object_key.clone(),
        from_tier: row.from_tier.clone(),
        to_tier: row.to_tier.clone(),
        generation: row.generation,
        size_bytes: row.size_bytes,
        ..Default::default()
    }
}

/// The copy of `key` a store refused to delete, as a HEAD finds it (what
/// tells it later from an object written at the key since); `None` when it
/// is gone after all.
async fn copy_left(tier: &TierStore, key: &str) -> anyhow::Result<Option<ObjectMeta>> {
    match transfer::head(tier, key).await {
        Ok(left) => Ok(Some(left)),
        Err(MoveError::NotFound(_)) => Ok(None),
        Err(e) => {
            Err(anyhow::Error::new(e).context(format!("head the copy left on {}", tier.name)))
        }
    }
}

/// Gives a job without a key the one its fields make (design §3).
pub(crate) fn fill_job_key(job: &mut MigrationJob) {
    if job.job_key.is_empty() {
        job.job_key = strata_proto::retry_job_key(
            &job.object_key,
            &job.from_tier,
            &job.to_tier,
            job.generation,
            job.retry,
        );
    }
}

/// Fills a status of a job whose catalog switch is done (SWITCHED, COMPLETED).
pub(crate) fn switched(
    s: &mut MigrationStatus,
    job: &MigrationJob,
    generation: u64,
    digest: &Digest256,
    attempt: u32,
) {
    s.generation = generation;
    s.sha256 = digest.sha256.clone();
    s.bytes = digest.bytes;
    s.attempt = attempt;
    s.current_tier = job.to_tier.clone();
}

impl Mover {
    /// The store of the tier `name`. A job in the ledger may name a tier the
    /// configuration no longer has: that is the mover's error (the job stays
    /// in the ledger until the tier is back), not a panic.
    pub(crate) fn tier(&self, name: &str) -> anyhow::Result<&TierStore> {
        self.tiers
            .get(name)
            .ok_or_else(|| anyhow::Error::new(UnknownTier(name.to_owned())))
    }

    /// Handles one job from `migration_jobs`. `Ok` means the job's outcome
    /// is durable and its status queued (the offset may be stored once the
    /// [`Outcome`] is delivered); `Err` means the mover itself failed and the
    /// job should be handled again later.
    pub async fn handle(&self, mut job: MigrationJob) -> anyhow::Result<Outcome> {
        fill_job_key(&mut job);
        let started = Instant::now();
        let (ledger, catalog) = self.db.lookup(&job.job_key, &job.object_key).await?;
        if ledger.is_none()
            && (!self.tiers.contains_key(&job.from_tier) || !self.tiers.contains_key(&job.to_tier))
        {
            let message = format!("unknown tier in {} -> {}", job.from_tier, job.to_tier);
            return self
                .reject(&job, "invalid", &message, catalog.as_ref(), started)
                .await;
        }
        let register_size = match protocol::on_arrival(ledger.as_ref(), catalog.as_ref(), &job) {
            Arrival::Duplicate(row) => return self.report_duplicate(&job, &row, started).await,
            Arrival::Resume(row) => return self.resume(row).await,
            Arrival::Stale { message } => {
                return self
                    .reject(&job, "stale", &message, catalog.as_ref(), started)
                    .await;
            }
            Arrival::Start => None,
            Arrival::Register => {
                match transfer::head(self.tier(&job.from_tier)?, &job.object_key).await {
                    Ok(meta) => Some(meta.size),
                    Err(e) if e.is_retryable() => {
                        return Err(anyhow::Error::new(e).context("head source"));
                    }
                    Err(e) => {
                        return self
                            .reject(&job, e.class(), &e.to_string(), None, started)
                            .await;
                    }
                }
            }
        };
        // Before the ledger row: from there on, what the destination key
        // holds counts as the job's own copy, discarded if the job fails.
        let decided = match self
            .destination(&job, register_size, catalog.as_ref())
            .await?
        {
            Destination::Empty => Ok(Publish::IfAbsent),
            Destination::Replaceable => Ok(Publish::Replace),
            Destination::Occupied(message) => {
                metrics::counter!("strata_mover_occupied_total").increment(1);
                Err(("occupied", message))
            }
            Destination::Unknown(e) => Err((e.class(), e.to_string())),
        };
        let publish = match decided {
            Ok(publish) => publish,
            Err((class, message)) => {
                return self
                    .reject(&job, class, &message, catalog.as_ref(), started)
                    .await;
            }
        };
        // The ledger row says COPYING at attempt 1 from here on.
        self.db.accept(&job, register_size).await?;
        fault::point("accepted");
        self.step(&job, State::Accepted, started, |s| {
            s.current_tier = job.from_tier.clone()
        })?;
        // A registered object has no checksum yet; a known one keeps its own.
        let catalog_sha = catalog.and_then(|c| c.sha256);
        let first = NextAttempt {
            copying_recorded: true,
            publish,
        };
        self.execute(&job, 0, catalog_sha, first, started).await
    }

    /// Whether a job may write at its destination key: over nothing, over
    /// an orphan copy the mover left there itself
    /// ([`protocol::may_write`]), and over an object of the source's size
    /// (`register_size`, else the catalog's) whose bytes are the source's
    /// ([`Mover::same_bytes`]), which
    /// loses nothing: a copy made by hand, or one whose ledger row a power
    /// cut took. Anything else is another object, which a move must not
    /// overwrite; nor a key whose HEAD is refused for good. `Err` (a
    /// request failed for now, the ledger) leaves the job to be handled
    /// again later, as a failed HEAD of its source does.
    async fn destination(
        &self,
        job: &MigrationJob,
        register_size: Option<u64>,
        catalog: Option<&protocol::CatalogRow>,
    ) -> anyhow::Result<Destination> {
        let dst = self.tier(&job.to_tier)?;
        let found = match transfer::head(dst, &job.object_key).await {
            Ok(found) => found,
            Err(MoveError::NotFound(_)) => return Ok(Destination::Empty),
            Err(e) if e.is_retryable() => {
                return Err(anyhow::Error::new(e).context("head destination"));
            }
            // Write-only credentials, a key the store refuses: what is
            // there cannot be known, so it is not written over.
            Err(e) => return Ok(Destination::Unknown(e)),
        };
        let size = register_size.or(catalog.map(|c| c.size));
        let catalog_sha = catalog.and_then(|c| c.sha256.as_deref());
        if self.nothing_to_lose(job, &found, size, catalog_sha).await? {
            return Ok(Destination::Replaceable);
        }
        Ok(Destination::Occupied(another_object(dst, job, &found)))
    }

    /// Ends a job whose destination key holds another object, written
    /// there while the job ran, which it keeps: FAILED `occupied`.
    async fn occupied(
        &self,
        job: &MigrationJob,
        attempt: u32,
        message: String,
        started: Instant,
    ) -> anyhow::Result<Outcome> {
        metrics::counter!("strata_mover_occupied_total").increment(1);
        self.fail(job, attempt, &MoveError::Occupied(message), started)
            .await
    }

    /// Whether writing over or deleting `found`, at `job`'s destination
    /// key, loses nothing: it is an orphan copy of the mover's own
    /// ([`protocol::may_write`]), or an object of the source's size
    /// (`size`) whose bytes are the source's ([`Mover::same_bytes`]).
    async fn nothing_to_lose(
        &self,
        job: &MigrationJob,
        found: &ObjectMeta,
        size: Option<u64>,
        catalog_sha: Option<&str>,
    ) -> anyhow::Result<bool> {
        let orphan = self.db.orphan(&job.object_key, &job.to_tier).await?;
        if protocol::may_write(protocol::identity(found), orphan.as_ref()) {
            return Ok(true);
        }
        Ok(size == Some(found.size) && self.same_bytes(job, catalog_sha).await?)
    }

    /// Whether `job`'s destination key holds the bytes its source holds,
    /// both read and hashed now (under a copy slot, as a copy is), and
    /// whose checksum is the catalog's (`catalog_sha`) when it has one:
    /// then a failed attempt that discards the destination still leaves
    /// them at the source. An object that cannot be read (archived,
    /// refused) counts as other bytes.
    async fn same_bytes(
        &self,
        job: &MigrationJob,
        catalog_sha: Option<&str>,
    ) -> anyhow::Result<bool> {
        let _slot = self
            .settings
            .copy_slots
            .acquire()
            .await
            .context("copy slots closed: stopping")?;
        let digest =
            async |tier: &str| match transfer::read_digest(self.tier(tier)?, &job.object_key).await
            {
                Ok(d) => Ok(Some(d)),
                Err(e) if e.is_retryable() => {
                    Err(anyhow::Error::new(e).context(format!("read {} on {tier}", job.object_key)))
                }
                Err(_) => Ok(None),
            };
        let Some(there) = digest(&job.to_tier).await? else {
            return Ok(false);
        };
        let Some(source) = digest(&job.from_tier).await? else {
            return Ok(false);
        };
        Ok(there == source && catalog_sha.is_none_or(|sha| sha == source.sha256))
    }

    /// Resumes every unfinished job in the ledger; run before consuming.
    /// Returns how many were resumed. A job that cannot be resumed now (its
    /// tier is gone from the configuration, its store refuses) is logged and
    /// left in the ledger, so that one object cannot keep the mover from
    /// starting. Its offset was normally never stored, so the job is
    /// consumed again and handled then (set aside again while its tier is
    /// missing), before any later job of the same object (same key, same
    /// partition). Where the offset was stored (power loss undid the end
    /// the ledger had recorded), the job is resumed at a later start.
    /// Then tries to delete every orphan copy on record.
    pub async fn recover(&self) -> anyhow::Result<usize> {
        let rows = self.db.unfinished().await?;
        let mut resumed = 0;
        for row in rows {
            let (job_key, object_key) = (row.job_key.clone(), row.object_key.clone());
            tracing::info!(%job_key, %object_key, state = ?row.state, "resuming job");
            match self.resume(row).await {
                Ok(outcome) => {
                    // The job's effects are in the ledger; a status the
                    // broker did not take (unreachable past the delivery
                    // timeout) is not worth a crash loop: the job's message,
                    // whose offset was not stored, comes again and is
                    // answered DUPLICATE with the job's end.
                    if let Err(e) = outcome.delivered().await {
                        tracing::warn!(%job_key, %object_key, error = format!("{e:#}"), "resumed job's status not delivered; it is answered again when its job is consumed");
                    }
                    resumed += 1;
                }
                Err(e) => {
                    tracing::error!(%job_key, %object_key, error = format!("{e:#}"), "job not resumed; it stays in the ledger until its job is consumed again");
                }
            }
        }
        // Every start tries a batch of orphans again, due or not: restarting
        // the mover is how an operator who fixed a permission says so. The
        // rest follow as they come due.
        let orphans = self.db.orphans_due(i64::MAX).await?;
        let mut deleted = 0;
        for orphan in &orphans {
            match self.sweep_orphan(orphan).await {
                Ok(gone) => deleted += usize::from(gone),
                Err(e) => {
                    tracing::error!(object_key = %orphan.object_key, tier = %orphan.tier, error = format!("{e:#}"), "orphan not swept");
                }
            }
        }
        if !orphans.is_empty() {
            tracing::info!(orphans = orphans.len(), deleted, "orphan copies swept");
        }
        Ok(resumed)
    }

    async fn resume(&self, row: LedgerRow) -> anyhow::Result<Outcome> {
        let job = job_of(&row);
        let started = Instant::now();
        match protocol::resume_from(row.state) {
            Resume::DiscardAndCopy => {
                let discarded = self.discard_destination(&job, Written::BeforeCrash).await?;
                let publish = match discarded.next_publish() {
                    Ok(publish) => publish,
                    Err(there) => {
                        let message = format!("{there} (written there while the job ran)");
                        return self.occupied(&job, row.attempt, message, started).await;
                    }
                };
                let next = NextAttempt::after_discard(publish);
                let catalog_sha = self
                    .db
                    .catalog(&job.object_key)
                    .await?
                    .and_then(|c| c.sha256);
                self.execute(&job, row.attempt, catalog_sha, next, started)
                    .await
            }
            Resume::DeleteSource => {
                let generation = row.new_generation.unwrap_or(row.generation + 1);
                let digest = Digest256 {
                    sha256: row.sha256.clone().unwrap_or_default(),
                    bytes: row.bytes.unwrap_or_default(),
                };
                self.ensure_catalog_moved_on(&job).await?;
                let switched = (generation, &digest);
                self.finish(&job, row.attempt, switched, row.source.as_ref(), started)
                    .await
            }
            Resume::Nothing => Ok(Outcome(None)),
        }
    }

    /// Copy and verify with retries, then switch, delete and complete.
    /// `catalog_sha` is the catalog's checksum of the object, when it has one;
    /// `next` says how the first attempt begins.
    async fn execute(
        &self,
        job: &MigrationJob,
        attempts_before: u32,
        catalog_sha: Option<String>,
        next: NextAttempt,
        started: Instant,
    ) -> anyhow::Result<Outcome> {
        self.attempts(job, attempts_before, catalog_sha, next, started, None)
            .await
    }

    /// Goes on with a job whose copy attempt `attempt` failed with `error`
    /// elsewhere (in a batch, [`crate::batch`]): discards the copy, then
    /// retries or fails as [`Mover::execute`] does after a failed attempt.
    pub(crate) async fn after_failed_copy(
        &self,
        job: &MigrationJob,
        attempt: u32,
        error: MoveError,
        catalog_sha: Option<String>,
        started: Instant,
    ) -> anyhow::Result<Outcome> {
        // The failed attempt's copy is discarded first, which sets `next`.
        let next = NextAttempt::after_discard(Publish::IfAbsent);
        self.attempts(job, attempt, catalog_sha, next, started, Some(error))
            .await
    }

    /// The attempts of [`Mover::execute`]; `failed` is an attempt already
    /// made (the `attempts_before`-th) that failed.
    async fn attempts(
        &self,
        job: &MigrationJob,
        attempts_before: u32,
        catalog_sha: Option<String>,
        mut next: NextAttempt,
        started: Instant,
        mut failed: Option<MoveError>,
    ) -> anyhow::Result<Outcome> {
        let mut delays = ExponentialBuilder::default()
            .with_min_delay(self.settings.min_retry_delay)
            .with_max_delay(Duration::from_secs(60))
            .with_jitter()
            .with_max_times(self.settings.max_attempts.saturating_sub(1) as usize)
            .build();
        // The time bound counts the attempts as well as the waits between them.
        let retrying_since = Instant::now();
        let mut attempt = attempts_before;
        let verified = loop {
            let (error, written) = match failed.take() {
                Some(error) => (error, None),
                None => {
                    attempt += 1;
                    match self
                        .copy_and_verify(job, attempt, catalog_sha.as_deref(), next, started)
                        .await
                    {
                        Ok(verified) => break verified,
                        Err(StepError::Infra(e)) => return Err(e),
                        Err(StepError::Move(e, written)) => (e, written),
                    }
                }
            };
            let error = match error {
                MoveError::Archived(message) => self.restore_archived(job, message).await,
                other => other,
            };
            let written = Written::answered(written.as_deref());
            next = match self.discard_destination(job, written).await?.next_publish() {
                Ok(publish) => NextAttempt::after_discard(publish),
                Err(there) => {
                    let message = match &error {
                        MoveError::Occupied(_) => there,
                        other => format!("{there} (written there while the job ran; {other})"),
                    };
                    return self.occupied(job, attempt, message, started).await;
                }
            };
            // A create-only write that found the job's own bytes at the key
            // (a killed mover's write landing late), now emptied, goes again.
            let retryable = error.is_retryable() || matches!(error, MoveError::Occupied(_));
            let delay = delays.next().filter(|delay| {
                retryable && retrying_since.elapsed() + *delay <= self.settings.max_retry_elapsed
            });
            match delay {
                Some(delay) => {
                    tracing::warn!(job_key = %job.job_key, attempt, error = %error, ?delay, "copy failed, retrying");
                    metrics::counter!("strata_mover_retries_total", "class" => error.class())
                        .increment(1);
                    tokio::time::sleep(delay).await;
                }
                None => return self.fail(job, attempt, &error, started).await,
            }
        };
        let Verified {
            digest,
            written,
            source,
            verifying,
        } = verified;
        // The switch queues behind the VERIFYING write, often into its group.
        let switch = self.db.switch(job, &digest, source.as_ref()).await;
        verifying.answer().await?;
        let Some(generation) = switch? else {
            return self
                .stale_after_copy(job, written.as_deref(), started)
                .await;
        };
        fault::point("switched");
        self.step(job, State::Switched, started, |s| {
            switched(s, job, generation, &digest, attempt)
        })?;
        // The switch just made the catalog name `to_tier`, and no other job
        // of this object runs meanwhile: the source may go.
        self.finish(
            job,
            attempt,
            (generation, &digest),
            source.as_ref(),
            started,
        )
        .await
    }

    /// Ends a job whose switch found that the catalog had moved on while
    /// it copied (an operator, another mover): the copy goes, the job is
    /// REJECTED as stale.
    pub(crate) async fn stale_after_copy(
        &self,
        job: &MigrationJob,
        written: Option<&str>,
        started: Instant,
    ) -> anyhow::Result<Outcome> {
        // Whatever the discard finds there stays if it is not the job's
        // copy, told by the ETag its write was answered with (`written`).
        self.discard_destination(job, Written::answered(written))
            .await?;
        let catalog = self.db.catalog(&job.object_key).await?;
        self.reject(
            job,
            "stale",
            "catalog changed during the copy",
            catalog.as_ref(),
            started,
        )
        .await
    }

    /// One attempt: copy, then verify.
    async fn copy_and_verify(
        &self,
        job: &MigrationJob,
        attempt: u32,
        catalog_sha: Option<&str>,
        next: NextAttempt,
        started: Instant,
    ) -> Result<Verified, StepError> {
        let (src, dst) = (self.tier(&job.from_tier)?, self.tier(&job.to_tier)?);
        if !next.copying_recorded {
            self.db
                .set_state(&job.job_key, State::Copying, attempt, None)
                .await?;
        }
        // Closed when the mover stops: the job resumes at the next start.
        let slot = self
            .settings
            .copy_slots
            .acquire()
            .await
            .context("copy slots closed: stopping")?;
        fault::point("copying");
        self.step(job, State::Copying, started, |s| {
            s.attempt = attempt;
            s.current_tier = job.from_tier.clone();
        })?;
        // The copy reports bytes done through a watch; a ticker beside it
        // publishes them, so a long copy shows progress.
        let (done_tx, done_rx) = tokio::sync::watch::channel(0u64);
        // A multipart upload's id goes to the ledger before its first part,
        // so a resume after a crash can abort it (`discard_destination`).
        let record_upload = |id: String| {
            let queued = self.db.queue_upload(&job.job_key, Some(&id));
            async move { queued?.answer().await }.boxed()
        };
        let plan = transfer::CopyPlan {
            part_size: self.settings.part_size,
            parts_in_flight: self.settings.parts_in_flight,
            dest_sync: self.syncs.of(&job.to_tier),
            record_upload: Some(&record_upload),
            publish: next.publish,
            catalog_sha,
        };
        let copy = transfer::copy(src, dst, &job.object_key, plan, |done| {
            fault::point("mid-copy");
            done_tx.send_replace(done);
        });
        tokio::pin!(copy);
        // Without progress reports the ticker never fires (a year away).
        let every = self
            .settings
            .progress_every
            .unwrap_or(Duration::from_secs(365 * 86_400));
        let mut ticker = tokio::time::interval_at(Instant::now() + every, every);
        // A slow publish must not be followed by a burst of catch-up ticks.
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let copied = loop {
            tokio::select! {
                result = &mut copy => break result?,
                _ = ticker.tick(), if self.settings.progress_every.is_some() => {
                    let done = *done_rx.borrow();
                    // Best effort: giving up here would drop a copy that a
                    // blocking thread finishes unwatched, beside its retry.
                    if let Err(e) = self.step(job, State::Copying, started, |s| {
                        s.attempt = attempt;
                        s.bytes = done;
                        s.current_tier = job.from_tier.clone();
                    }) {
                        tracing::warn!(job_key = %job.job_key, error = format!("{e:#}"), "progress status not queued");
                    }
                }
            }
        };
        if copied.only_sync_left() {
            // The slot goes to the next copy while this one waits for the
            // disk, so that one group sync covers every copy waiting.
            drop(slot);
        }
        let transfer::Copied {
            digest: copied,
            read_back,
            e_tag,
            source,
        } = copied.synced().await?;
        fault::point("copied");
        metrics::counter!("strata_mover_bytes_copied_total").increment(copied.bytes);

        // Queued, not waited for: nothing irreversible happens before the
        // switch, which the database thread commits after it.
        let verifying = self.db.queue_state(
            &job.job_key,
            State::Verifying,
            attempt,
            Some((&copied.sha256, copied.bytes)),
        )?;
        fault::point("verifying");
        self.step(job, State::Verifying, started, |s| {
            s.attempt = attempt;
            s.sha256 = copied.sha256.clone();
            s.bytes = copied.bytes;
            s.current_tier = job.from_tier.clone();
        })?;
        let read_back = match read_back {
            Some(read_back) => Ok(read_back),
            None if dst.archived => transfer::archived_digest(dst, &job.object_key, &copied).await,
            None => transfer::read_digest(dst, &job.object_key).await,
        };
        let verified = read_back.and_then(|read_back| {
            protocol::verify(
                &copied.sha256,
                copied.bytes,
                &read_back.sha256,
                read_back.bytes,
                catalog_sha,
            )
            .map_err(|e| match e {
                VerifyError::Catalog { .. } => MoveError::SourceChanged(e.to_string()),
                other => MoveError::VerifyMismatch(other.to_string()),
            })
        });
        if let Err(e) = verified {
            // The ledger's own failure comes first: then the job resumes.
            verifying.answer().await?;
            return Err(StepError::Move(e, e_tag));
        }
        fault::point("verified");
        // Azure's Archive tier, set now that the copy has been read back.
        if let Err(e) = archive::seal(dst, &job.object_key).await {
            verifying.answer().await?;
            return Err(StepError::Move(e, e_tag));
        }
        Ok(Verified {
            digest: copied,
            written: e_tag,
            source,
            verifying,
        })
    }

    /// Asks the source's store to restore an archived source, once per
    /// failed job. The job's error says where the restore stands:
    /// `restoring` once asked for (the policy's retry waits for it),
    /// `archived` when it could not be asked for.
    async fn restore_archived(&self, job: &MigrationJob, message: String) -> MoveError {
        let Ok(src) = self.tier(&job.from_tier) else {
            return MoveError::Archived(message);
        };
        match archive::request_restore(src, &job.object_key).await {
            Some(Ok(restore)) => {
                metrics::counter!("strata_mover_restore_requests_total", "tier" => job.from_tier.clone())
                    .increment(1);
                tracing::info!(job_key = %job.job_key, object_key = %job.object_key, tier = %job.from_tier, ?restore, "archived source: restore asked for");
                MoveError::Restoring(format!("{message}; {}", restore.describe(src)))
            }
            Some(Err(e)) => {
                tracing::warn!(job_key = %job.job_key, object_key = %job.object_key, error = %e, "archived source: restore request failed");
                MoveError::Archived(format!(
                    "{message}; the restore request failed ({e}): restore it, then send the job again"
                ))
            }
            None => MoveError::Archived(format!(
                "{message}; tier {} cannot ask for it: restore it, then send the job again",
                job.from_tier
            )),
        }
    }

    /// I2 guard for a job found switched in the ledger (a resume): never
    /// delete the copy the catalog names.
    async fn ensure_catalog_moved_on(&self, job: &MigrationJob) -> anyhow::Result<()> {
        let catalog = self.db.catalog(&job.object_key).await?;
        if catalog.is_some_and(|c| c.tier == job.from_tier) {
            anyhow::bail!(
                "refusing to delete {} from {}: the catalog still names it",
                job.object_key,
                job.from_tier
            );
        }
        Ok(())
    }

    /// Deletes the source of a job whose switch is committed (to the
    /// generation and digest `switched`), and completes it. The source goes
    /// only if its key still holds what the copy read (`source`, when
    /// known): a version written there since is kept, and the switch undone
    /// ([`Mover::source_rewritten`]).
    pub(crate) async fn finish(
        &self,
        job: &MigrationJob,
        attempt: u32,
        (generation, digest): (u64, &Digest256),
        source: Option<&Seen>,
        started: Instant,
    ) -> anyhow::Result<Outcome> {
        let src = self.tier(&job.from_tier)?;
        let deleted = match source {
            Some(seen) => transfer::delete_if_same(src, &job.object_key, seen.identity()).await,
            None => transfer::delete(src, &job.object_key)
                .await
                .map(|()| Deleted::Gone),
        };
        let left = match deleted {
            Ok(Deleted::Gone) => None,
            Ok(Deleted::Kept(now)) => {
                return self
                    .source_rewritten(job, attempt, (generation, digest), &now, started)
                    .await;
            }
            // Waiting would hold the job and its object for as long as the
            // store refuses (no delete permission, a locked version). The
            // object has moved, so the job completes and the copy is kept on
            // record.
            Err(refusal) if !refusal.is_retryable() => {
                self.leave_orphan(job, attempt, &refusal).await?
            }
            Err(e) => return Err(anyhow::Error::new(e).context("delete source")),
        };
        if left.is_none() {
            fault::point("deleted");
            self.db
                .set_state(&job.job_key, State::Completed, attempt, None)
                .await?;
        }
        self.completed(job, attempt, generation, digest, started, left)
    }

    /// Ends a switched job whose source key holds another version than the
    /// one copied, written there after the copy read it (an application
    /// updating the object where the catalog named it): that version stays,
    /// the catalog names the source's tier again (a new generation, its
    /// size, no checksum), and the job FAILS `source_changed`. The copy,
    /// which no catalog names now, is recorded as an orphan and swept at
    /// once, if it still holds the bytes the job moved (read back); else it
    /// is not known to be the job's, and stays. `now` is the version the
    /// source's conditional delete found.
    async fn source_rewritten(
        &self,
        job: &MigrationJob,
        attempt: u32,
        (generation, digest): (u64, &Digest256),
        now: &ObjectMeta,
        started: Instant,
    ) -> anyhow::Result<Outcome> {
        let (src, dst) = (self.tier(&job.from_tier)?, self.tier(&job.to_tier)?);
        let now = Seen::of(now);
        // Until the copy is known to be the job's or not, nothing changes:
        // a failed look leaves the job switched, to be resumed.
        let copy = own_copy(dst, &job.object_key, digest)
            .await
            .context("look at the copy of a switch to undo")?;
        // The class a change of the source has (`MoveError::SourceChanged`),
        // with a message of its own: the change came after the copy.
        let class = MoveError::SourceChanged(String::new()).class();
        let message = format!(
            "{} was written again after the copy read it: that version is kept and \
             the catalog names it again; the job's copy is discarded",
            src.url_of(&job.object_key)
        );
        let undone = self
            .db
            .undo_switch(
                job,
                attempt,
                generation,
                &now,
                copy.as_ref(),
                (class, &message),
            )
            .await?;
        tracing::warn!(job_key = %job.job_key, object_key = %job.object_key, tier = %job.from_tier, "source written again after the copy: kept, switch undone");
        if undone.is_some()
            && copy.is_some()
            && let Some(orphan) = self.db.orphan(&job.object_key, &job.to_tier).await?
        {
            self.sweep_orphan(&orphan).await?;
        }
        metrics::counter!("strata_mover_jobs_total", "state" => "FAILED").increment(1);
        let outcome = self.report(job, State::Failed, started, |s| {
            s.attempt = attempt;
            s.error = Some(pb::Error {
                class: class.into(),
                message,
            });
            // Where the catalog has the object, when the undo set it.
            if let Some(undone) = undone {
                s.current_tier = job.from_tier.clone();
                s.generation = undone;
            }
        })?;
        Ok(outcome)
    }

    /// Reports a job whose end is recorded COMPLETED; `left` names a source
    /// copy left behind.
    pub(crate) fn completed(
        &self,
        job: &MigrationJob,
        attempt: u32,
        generation: u64,
        digest: &Digest256,
        started: Instant,
        left: Option<pb::Error>,
    ) -> anyhow::Result<Outcome> {
        fault::point("completed");
        metrics::counter!("strata_mover_jobs_total", "state" => "COMPLETED").increment(1);
        metrics::histogram!("strata_mover_job_seconds").record(started.elapsed().as_secs_f64());
        tracing::info!(job_key = %job.job_key, object_key = %job.object_key, from = %job.from_tier, to = %job.to_tier, generation, "job completed");
        self.report(job, State::Completed, started, |s| {
            switched(s, job, generation, digest, attempt);
            s.error = left;
        })
    }

    /// Ends a switched job whose source copy its store refused to delete
    /// for good: COMPLETED in the ledger, with the returned error naming the
    /// copy, which is recorded as an orphan and deleted once allowed. `None`
    /// when the copy is gone after all (the job completes as usual).
    async fn leave_orphan(
        &self,
        job: &MigrationJob,
        attempt: u32,
        refusal: &MoveError,
    ) -> anyhow::Result<Option<pb::Error>> {
        // What is left, so that a later delete can tell it from an object
        // written at the key since.
        let Some(left) = copy_left(self.tier(&job.from_tier)?, &job.object_key).await? else {
            return Ok(None);
        };
        let message = format!(
            "moved, but the copy on tier {} was left behind: its store refused to delete it ({refusal}); \
             the mover deletes it once the store allows (GET /v1/orphans)",
            job.from_tier
        );
        let retry_at = time::now_millis() + millis(protocol::orphan_retry_delay(1));
        self.db
            .complete_leaving_orphan(
                job,
                attempt,
                (SOURCE_NOT_DELETED, &message),
                (refusal.class(), &refusal.to_string()),
                &left,
                retry_at,
            )
            .await?;
        self.count_orphans().await;
        tracing::warn!(job_key = %job.job_key, object_key = %job.object_key, tier = %job.from_tier, error = %refusal, "source copy left as an orphan");
        Ok(Some(pb::Error {
            class: SOURCE_NOT_DELETED.into(),
            message,
        }))
    }

    /// Tries again to delete an orphan copy: unless the catalog names its
    /// tier again, or the key holds another object now. Returns whether the
    /// orphan is gone from the record. A sweep that fails is put off as a
    /// refused delete is. Must not run beside a job of the same object: the
    /// job loop holds the object meanwhile, and recovery runs before any job.
    pub async fn sweep_orphan(&self, orphan: &OrphanRow) -> anyhow::Result<bool> {
        let swept = self.try_sweep(orphan).await;
        let gone = match &swept {
            Ok(sweep) => {
                let what = match sweep {
                    Sweep::Delete => "orphan copy deleted",
                    Sweep::KeepCopy => "the key holds the catalog's copy or a newer object; kept",
                    Sweep::Gone => "orphan copy gone",
                };
                tracing::info!(object_key = %orphan.object_key, tier = %orphan.tier, "{what}");
                self.db
                    .forget_orphan(&orphan.object_key, &orphan.tier)
                    .await?;
                true
            }
            Err(e) => {
                let delay = protocol::orphan_retry_delay(orphan.attempts + 1);
                tracing::warn!(object_key = %orphan.object_key, tier = %orphan.tier, error = %e, ?delay, "orphan copy still not deleted");
                let retry_at = time::now_millis() + millis(delay);
                self.db
                    .orphan_refused(orphan, e.class(), &e.to_string(), retry_at)
                    .await?;
                false
            }
        };
        self.count_orphans().await;
        Ok(gone)
    }

    /// The sweep's decision, carried out.
    async fn try_sweep(&self, orphan: &OrphanRow) -> Result<Sweep, MoveError> {
        let infra = |e: anyhow::Error| MoveError::Transient(format!("{e:#}"));
        let tier = self.tier(&orphan.tier).map_err(infra)?;
        let catalog = self.db.catalog(&orphan.object_key).await.map_err(infra)?;
        let found = match transfer::head(tier, &orphan.object_key).await {
            Ok(meta) => Some(meta),
            Err(MoveError::NotFound(_)) => None,
            Err(e) => return Err(e),
        };
        let sweep = protocol::sweep(
            orphan,
            catalog.as_ref(),
            found.as_ref().map(protocol::identity),
        );
        if sweep == Sweep::Delete
            && let Some(found) = &found
            && let Deleted::Kept(_) =
                transfer::delete_if_same(tier, &orphan.object_key, protocol::identity(found))
                    .await?
        {
            // Written over between the look and the delete.
            return Ok(Sweep::KeepCopy);
        }
        Ok(sweep)
    }

    /// Sets the `strata_mover_orphans` gauge from the record.
    async fn count_orphans(&self) {
        match self.db.orphan_count().await {
            Ok(n) => metrics::gauge!("strata_mover_orphans").set(n as f64),
            Err(e) => tracing::warn!(error = format!("{e:#}"), "could not count orphans"),
        }
    }

    /// Removes what a failed, interrupted or stale attempt of `job` left at
    /// its destination key, if it is the job's own: the copy the attempt
    /// wrote (the store answered its write with the ETag `written`), or
    /// anything whose loss loses nothing ([`Mover::nothing_to_lose`]: an
    /// orphan of the mover's own, the source's bytes). Anything else is an
    /// object written at the key while the job ran: kept. The catalog's
    /// live copy (the catalog names that tier) is kept too. Then lets go of
    /// the job's uploads and staged files: all of the key's, or, when
    /// another object is there, the upload the job recorded alone (its
    /// writer's may be open).
    async fn discard_destination(
        &self,
        job: &MigrationJob,
        written: Written<'_>,
    ) -> anyhow::Result<Discarded> {
        let catalog = self.db.catalog(&job.object_key).await?;
        if catalog.as_ref().is_some_and(|c| c.tier == job.to_tier) {
            return Ok(Discarded::Left);
        }
        let dst = self.tier(&job.to_tier)?;
        let mut found = self.look(job, dst).await?;
        if let Some(there) = &found
            && !written.wrote(there)
        {
            let size = catalog.as_ref().map(|c| c.size);
            let catalog_sha = catalog.as_ref().and_then(|c| c.sha256.as_deref());
            let archived_copy =
                dst.archived && written == Written::BeforeCrash && size == Some(there.size);
            if !archived_copy {
                if !self.nothing_to_lose(job, there, size, catalog_sha).await? {
                    return self
                        .keep_other(job, dst, another_object(dst, job, there))
                        .await;
                }
                // The reads took time: the key must still hold what they read.
                let now = self.look(job, dst).await?;
                if let Some(now) = &now
                    && protocol::identity(now) != protocol::identity(there)
                {
                    return self
                        .keep_other(job, dst, another_object(dst, job, now))
                        .await;
                }
                found = now;
            }
        }
        let mut discarded = Discarded::Emptied;
        if let Some(there) = found {
            match transfer::delete_if_same(dst, &job.object_key, protocol::identity(&there)).await {
                Ok(Deleted::Gone) => {}
                // Written at the key between the look and the delete: kept.
                Ok(Deleted::Kept(now)) => {
                    return self
                        .keep_other(job, dst, another_object(dst, job, &now))
                        .await;
                }
                // Waiting would hold the job and its object for as long as
                // the store refuses (no delete permission, an immutability
                // policy): the copy, never the catalog's, goes on record to
                // be deleted once allowed.
                Err(refusal) if !refusal.is_retryable() => {
                    self.leave_discarded(job, &refusal, &there).await?;
                    discarded = Discarded::Left;
                }
                Err(e) => return Err(anyhow::Error::new(e).context("discard destination copy")),
            }
        }
        if dst.multipart.is_some() {
            self.abort_uploads(job, dst, true).await?;
        }
        let staged = transfer::remove_staged(dst, &job.object_key)
            .await
            .map_err(anyhow::Error::new)
            .context("remove staged upload")?;
        if staged > 0 {
            tracing::info!(job_key = %job.job_key, staged, "removed interrupted upload");
        }
        Ok(discarded)
    }

    /// What `job`'s destination key holds, for a discard: `Err` when the
    /// key cannot be looked at, for now or for good; the job is then
    /// handled again later, nothing at its key touched.
    async fn look(
        &self,
        job: &MigrationJob,
        dst: &TierStore,
    ) -> anyhow::Result<Option<ObjectMeta>> {
        match transfer::head(dst, &job.object_key).await {
            Ok(found) => Ok(Some(found)),
            Err(MoveError::NotFound(_)) => Ok(None),
            Err(e) => Err(anyhow::Error::new(e).context("head destination before a discard")),
        }
    }

    /// The end of a discard that found another object at the key (`there`
    /// says which): kept, and only the upload the job recorded let go.
    async fn keep_other(
        &self,
        job: &MigrationJob,
        dst: &TierStore,
        there: String,
    ) -> anyhow::Result<Discarded> {
        tracing::warn!(job_key = %job.job_key, object_key = %job.object_key, tier = %job.to_tier, there, "another object at the destination key, kept");
        if dst.multipart.is_some() {
            self.abort_uploads(job, dst, false).await?;
        }
        Ok(Discarded::Other(there))
    }

    /// Aborts the multipart uploads a job may have left open on `dst`, best
    /// effort and once: a store that will not abort (no AbortMultipartUpload
    /// permission) leaves them to its lifecycle rule. With `every_one`, on
    /// S3 every upload open for the key, whether its id reached the ledger
    /// or not (a kill -9 during the create request); otherwise, elsewhere,
    /// and when S3 will not list them, the one the ledger recorded.
    async fn abort_uploads(
        &self,
        job: &MigrationJob,
        dst: &TierStore,
        every_one: bool,
    ) -> anyhow::Result<()> {
        let recorded = self.db.upload_of(&job.job_key).await?;
        let listed = match &dst.s3 {
            Some(s3) if every_one => {
                let location = dst.location(&job.object_key)?;
                match uploads::open(dst, s3, &location).await {
                    Ok(ids) => Some(ids),
                    Err(e) => {
                        tracing::warn!(job_key = %job.job_key, error = %e, "could not list the key's open uploads");
                        None
                    }
                }
            }
            _ => None,
        };
        // The recorded one too: a listing of over a thousand uploads of
        // one key could leave it out.
        let mut ids: Vec<String> = listed.unwrap_or_default();
        if let Some(id) = &recorded
            && !ids.contains(id)
        {
            ids.push(id.clone());
        }
        for id in &ids {
            if let Err(e) = transfer::abort_upload(dst, &job.object_key, id).await {
                tracing::warn!(job_key = %job.job_key, error = %e, "could not abort an interrupted upload");
            }
        }
        if !ids.is_empty() {
            tracing::info!(job_key = %job.job_key, uploads = ids.len(), "interrupted uploads aborted");
        }
        if recorded.is_some() {
            self.db.record_upload(&job.job_key, None).await?;
        }
        Ok(())
    }

    /// Records a destination copy its store refused to delete for good as
    /// an orphan, as the discard found it (`left`): the sweep deletes it
    /// once allowed, and keeps it if the catalog comes to name its tier or
    /// another object is written at its key.
    async fn leave_discarded(
        &self,
        job: &MigrationJob,
        refusal: &MoveError,
        left: &ObjectMeta,
    ) -> anyhow::Result<()> {
        let retry_at = time::now_millis() + millis(protocol::orphan_retry_delay(1));
        self.db
            .record_orphan(
                &job.job_key,
                &job.object_key,
                &job.to_tier,
                (refusal.class(), &refusal.to_string()),
                left,
                retry_at,
            )
            .await?;
        self.count_orphans().await;
        tracing::warn!(job_key = %job.job_key, object_key = %job.object_key, tier = %job.to_tier, error = %refusal, "discarded copy left as an orphan");
        Ok(())
    }

    async fn fail(
        &self,
        job: &MigrationJob,
        attempt: u32,
        error: &MoveError,
        started: Instant,
    ) -> anyhow::Result<Outcome> {
        tracing::warn!(job_key = %job.job_key, object_key = %job.object_key, attempt, error = %error, "job failed");
        self.db
            .end(
                &job.job_key,
                State::Failed,
                attempt,
                error.class(),
                &error.to_string(),
            )
            .await?;
        metrics::counter!("strata_mover_jobs_total", "state" => "FAILED").increment(1);
        self.report(job, State::Failed, started, |s| {
            s.attempt = attempt;
            s.error = Some(pb::Error {
                class: error.class().into(),
                message: error.to_string(),
            });
            s.current_tier = job.from_tier.clone();
        })
    }

    async fn reject(
        &self,
        job: &MigrationJob,
        class: &str,
        message: &str,
        catalog: Option<&protocol::CatalogRow>,
        started: Instant,
    ) -> anyhow::Result<Outcome> {
        tracing::info!(job_key = %job.job_key, object_key = %job.object_key, class, message, "job rejected");
        if self.db.ledger(&job.job_key).await?.is_some() {
            self.db
                .end(&job.job_key, State::Rejected, 0, class, message)
                .await?;
        } else {
            self.db.reject(job, class, message).await?;
        }
        metrics::counter!("strata_mover_jobs_total", "state" => "REJECTED").increment(1);
        self.report(job, State::Rejected, started, |s| {
            s.error = Some(pb::Error {
                class: class.into(),
                message: message.into(),
            });
            if let Some(c) = catalog {
                s.current_tier = c.tier.clone();
                s.generation = c.generation;
            }
        })
    }

    async fn report_duplicate(
        &self,
        job: &MigrationJob,
        row: &LedgerRow,
        started: Instant,
    ) -> anyhow::Result<Outcome> {
        tracing::info!(job_key = %job.job_key, result = ?row.state, "duplicate job");
        metrics::counter!("strata_mover_jobs_total", "state" => "DUPLICATE").increment(1);
        let catalog = self.db.catalog(&job.object_key).await?;
        self.report(job, State::Duplicate, started, |s| {
            s.result = row.state as i32;
            s.generation = match (&catalog, row.state) {
                // As the REJECTED itself: where the object is now, so that
                // a policy that repeated a stale job can correct itself.
                (Some(c), State::Rejected) => c.generation,
                _ => row.new_generation.unwrap_or(row.generation),
            };
            s.sha256 = row.sha256.clone().unwrap_or_default();
            s.bytes = row.bytes.unwrap_or_default();
            s.attempt = row.attempt;
            s.error = row.error.as_ref().map(|(class, message)| pb::Error {
                class: class.clone(),
                message: message.clone(),
            });
            s.current_tier = catalog.map(|c| c.tier).unwrap_or_default();
        })
    }

    /// Queues the status of a step on the way. Not awaited: the outcome's
    /// status follows it on the same partition, and its ack vouches for both.
    pub(crate) fn step(
        &self,
        job: &MigrationJob,
        state: State,
        started: Instant,
        fill: impl FnOnce(&mut MigrationStatus),
    ) -> anyhow::Result<()> {
        let delivery = self.send_status(job, state, started, fill)?;
        kafka::watch_acks(vec![delivery]);
        Ok(())
    }

    /// Queues a status of `job`; answers its delivery, for the caller to
    /// await or watch ([`kafka::watch_acks`]).
    pub(crate) fn send_status(
        &self,
        job: &MigrationJob,
        state: State,
        started: Instant,
        fill: impl FnOnce(&mut MigrationStatus),
    ) -> anyhow::Result<Delivery> {
        let status = self.status_of(job, state, started, fill);
        let sink = &self.status;
        sink.publisher
            .send(&sink.topic, &job.object_key, &status, sink.encoding)
            .with_context(|| format!("publish {} status", state.as_str_name()))
    }

    /// Queues the status of a job's outcome; the caller awaits its delivery.
    fn report(
        &self,
        job: &MigrationJob,
        state: State,
        started: Instant,
        fill: impl FnOnce(&mut MigrationStatus),
    ) -> anyhow::Result<Outcome> {
        let delivery = self.send_status(job, state, started, fill)?;
        Ok(Outcome(Some(delivery)))
    }

    fn status_of(
        &self,
        job: &MigrationJob,
        state: State,
        started: Instant,
        fill: impl FnOnce(&mut MigrationStatus),
    ) -> MigrationStatus {
        let mut status = MigrationStatus {
            job_key: job.job_key.clone(),
            object_key: job.object_key.clone(),
            state: state as i32,
            from_tier: job.from_tier.clone(),
            to_tier: job.to_tier.clone(),
            generation: job.generation,
            ts: Some(time::from_millis(time::now_millis())),
            elapsed_ms: started.elapsed().as_millis() as u64,
            ..Default::default()
        };
        fill(&mut status);
        status
    }
}
