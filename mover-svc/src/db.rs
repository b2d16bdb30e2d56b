//! mover-svc's SQLite: the catalog (where each object lives) and the ledger
//! (how far each job got). Every method is atomic; the switch changes the
//! catalog and the ledger together (design §4, §5).
//!
//! One thread owns the connection. Requests queue to it and it commits them
//! in groups: whatever arrived while the last group ran goes into the next
//! transaction, each request in a savepoint of its own, and a caller hears
//! back only once its group is committed. Concurrent jobs so share commits
//! (and the disk sync of a switch) instead of taking turns on a lock.

use std::{
    path::Path,
    sync::mpsc::{Receiver, Sender},
};

use anyhow::{Context, anyhow};
use object_store::ObjectMeta;
use rusqlite::{Connection, OptionalExtension, Row, params};
use strata_proto::{MigrationJob, State, time};
use strata_runtime::sqlite::{self, Durability};

use crate::{
    protocol::{CatalogRow, LedgerRow, OrphanRow, Seen},
    transfer::Digest256,
};

const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/001-catalog-and-ledger.sql"),
    include_str!("../migrations/002-orphans.sql"),
    include_str!("../migrations/003-upload-ids.sql"),
    include_str!("../migrations/004-unfinished-by-comparisons.sql"),
    include_str!("../migrations/005-source-seen.sql"),
];

/// Every job that has not ended, oldest first; its WHERE is the condition
/// of the index `ledger_unfinished` (migration 004), so the index serves it.
const UNFINISHED: &str = "SELECT * FROM ledger
     WHERE state <> 'COMPLETED' AND state <> 'FAILED' AND state <> 'REJECTED'
     ORDER BY created_at_ms";

/// Orphans one sweep takes at most.
const SWEEP_BATCH: usize = 256;

/// Requests one transaction may hold at most.
const MAX_GROUP: usize = 256;

/// The catalog and ledger, shared by the job loop and the HTTP lookups.
/// Cloning shares the one database thread; it stops when the last clone drops.
#[derive(Clone)]
pub struct Db {
    requests: Sender<Request>,
}

/// A request to the database thread.
struct Request {
    /// Must survive power loss once answered (`synchronous=FULL`).
    durable: bool,
    call: Box<dyn Call>,
}

/// A request queued to the database thread and not waited for yet. The
/// thread runs requests in the order they were queued, so one queued after
/// it (by the same task) is answered after it.
#[must_use = "a queued request's failure is only heard through its answer"]
pub struct Queued<R>(tokio::sync::oneshot::Receiver<anyhow::Result<R>>);

impl<R> Queued<R> {
    /// Waits until the request's group is committed (or failed).
    pub async fn answer(self) -> anyhow::Result<R> {
        self.0.await.context("the database thread has stopped")?
    }
}

/// A caller's work and the way back to it.
trait Call: Send {
    /// Runs in the group's transaction; `false` rolls its savepoint back.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Answers the caller once the group is committed (`None`) or failed.
    fn answer(self: Box<Self>, group_error: Option<&rusqlite::Error>);
}

struct Pending<F, R> {
    work: Option<F>,
    result: Option<rusqlite::Result<R>>,
    reply: tokio::sync::oneshot::Sender<anyhow::Result<R>>,
}

impl<F, R> Call for Pending<F, R>
where
    F: FnOnce(&Connection) -> rusqlite::Result<R> + Send,
    R: Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let Some(work) = self.work.take() else {
            return false;
        };
        let result = work(conn);
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn answer(self: Box<Self>, group_error: Option<&rusqlite::Error>) {
        let answer = match (group_error, self.result) {
            (Some(e), _) => Err(anyhow!("sqlite transaction: {e}")),
            (None, Some(result)) => result.context("sqlite"),
            (None, None) => Err(anyhow!("sqlite: request not run")),
        };
        // The caller may be gone (shutdown): then nobody needs the answer.
        let _ = self.reply.send(answer);
    }
}

fn state_name(state: State) -> &'static str {
    state.as_str_name()
}

fn ledger_row(r: &Row<'_>) -> rusqlite::Result<LedgerRow> {
    let state: String = r.get("state")?;
    let error_class: Option<String> = r.get("error_class")?;
    let error_message: Option<String> = r.get("error_message")?;
    Ok(LedgerRow {
        job_key: r.get("job_key")?,
        object_key: r.get("object_key")?,
        from_tier: r.get("from_tier")?,
        to_tier: r.get("to_tier")?,
        generation: r.get::<_, i64>("generation")? as u64,
        size_bytes: r.get::<_, i64>("size_bytes")? as u64,
        state: State::from_str_name(&state).unwrap_or(State::Unspecified),
        attempt: r.get("attempt")?,
        sha256: r.get("sha256")?,
        bytes: r.get::<_, Option<i64>>("bytes")?.map(|b| b as u64),
        new_generation: r.get::<_, Option<i64>>("new_generation")?.map(|g| g as u64),
        source: match r.get::<_, Option<i64>>("source_size")? {
            Some(size) => Some(Seen {
                size: size as u64,
                e_tag: r.get("source_e_tag")?,
                modified_ms: r.get::<_, Option<i64>>("source_modified_ms")?.unwrap_or(0),
            }),
            None => None,
        },
        error: error_class.map(|c| (c, error_message.unwrap_or_default())),
    })
}

fn catalog_row(r: &Row<'_>) -> rusqlite::Result<CatalogRow> {
    Ok(CatalogRow {
        object_key: r.get("object_key")?,
        tier: r.get("tier")?,
        generation: r.get::<_, i64>("generation")? as u64,
        sha256: r.get("sha256")?,
        size: r.get::<_, i64>("size")? as u64,
        updated_at_ms: r.get("updated_at_ms")?,
    })
}

fn orphan_row(r: &Row<'_>) -> rusqlite::Result<OrphanRow> {
    Ok(OrphanRow {
        object_key: r.get("object_key")?,
        tier: r.get("tier")?,
        job_key: r.get("job_key")?,
        size: r.get::<_, i64>("size")? as u64,
        e_tag: r.get("e_tag")?,
        modified_ms: r.get("modified_ms")?,
        error_class: r.get("error_class")?,
        error_message: r.get("error_message")?,
        attempts: r.get("attempts")?,
        since_ms: r.get("since_ms")?,
        next_at_ms: r.get("next_at_ms")?,
    })
}

/// Runs one statement without parameters, prepared once per connection.
fn exec(c: &Connection, sql: &str) -> rusqlite::Result<()> {
    c.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// The database thread: takes requests in groups until every [`Db`] is gone.
fn serve(conn: Connection, requests: Receiver<Request>) {
    let mut durable_now = false;
    while let Ok(first) = requests.recv() {
        let mut group = vec![first];
        group.extend(requests.try_iter().take(MAX_GROUP - 1));
        let durable = group.iter().any(|r| r.durable);
        // The level cannot change inside a transaction, so it is set per group.
        if durable != durable_now {
            let level = if durable { "FULL" } else { "NORMAL" };
            match conn.pragma_update(None, "synchronous", level) {
                Ok(()) => durable_now = durable,
                Err(e) => {
                    answer_all(group, &e);
                    continue;
                }
            }
        }
        if let Err(e) = exec(&conn, "BEGIN IMMEDIATE") {
            answer_all(group, &e);
            continue;
        }
        let mut calls = Vec::with_capacity(group.len());
        let mut failed = None;
        for Request { mut call, .. } in group {
            // A failed request undoes its own writes, not its neighbours';
            // once a savepoint itself fails, the rest hear the group's error.
            if failed.is_none() {
                let step = exec(&conn, "SAVEPOINT request").and_then(|()| {
                    if !call.run(&conn) {
                        exec(&conn, "ROLLBACK TO request")?;
                    }
                    exec(&conn, "RELEASE request")
                });
                failed = step.err();
            }
            calls.push(call);
        }
        let committed = match failed {
            Some(e) => Err(e),
            None => exec(&conn, "COMMIT"),
        };
        match committed {
            Ok(()) => calls.into_iter().for_each(|call| call.answer(None)),
            Err(e) => {
                let _ = exec(&conn, "ROLLBACK");
                calls.into_iter().for_each(|call| call.answer(Some(&e)));
            }
        }
    }
}

/// Fails every request of a group that could not begin.
fn answer_all(group: Vec<Request>, error: &rusqlite::Error) {
    for request in group {
        request.call.answer(Some(error));
    }
}

impl Db {
    /// Opens (creating) the database and starts its thread. A step recorded
    /// here survives a crash of the process at once; the switch also survives
    /// power loss, and takes every step recorded before it to the disk (see
    /// [`Db::switch`]). The steps before a switch need no more: if power loss
    /// forgets one, the source is untouched and the catalog unchanged, so
    /// nothing is lost.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let conn = sqlite::open(path, Durability::Normal, MIGRATIONS)?;
        let (requests, queue) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("mover-sqlite".into())
            .spawn(move || serve(conn, queue))
            .context("start the database thread")?;
        Ok(Self { requests })
    }

    /// Runs `f` in the next group; answers once that group is committed.
    async fn call<R: Send + 'static>(
        &self,
        durable: bool,
        f: impl FnOnce(&Connection) -> rusqlite::Result<R> + Send + 'static,
    ) -> anyhow::Result<R> {
        self.enqueue(durable, f)?.answer().await
    }

    /// Queues `f` for the next group without waiting for it.
    fn enqueue<R: Send + 'static>(
        &self,
        durable: bool,
        f: impl FnOnce(&Connection) -> rusqlite::Result<R> + Send + 'static,
    ) -> anyhow::Result<Queued<R>> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let call = Box::new(Pending {
            work: Some(f),
            result: None,
            reply,
        });
        self.requests
            .send(Request { durable, call })
            .map_err(|_| anyhow!("the database thread has stopped"))?;
        Ok(Queued(answer))
    }

    /// The ledger row of `job_key`.
    pub async fn ledger(&self, job_key: &str) -> anyhow::Result<Option<LedgerRow>> {
        let key = job_key.to_owned();
        self.call(false, move |c| ledger_of(c, &key)).await
    }

    /// The ledger row of `job_key` and the catalog row of `object_key`, read together.
    pub async fn lookup(
        &self,
        job_key: &str,
        object_key: &str,
    ) -> anyhow::Result<(Option<LedgerRow>, Option<CatalogRow>)> {
        let (job_key, object_key) = (job_key.to_owned(), object_key.to_owned());
        self.call(false, move |c| {
            Ok((ledger_of(c, &job_key)?, catalog_of(c, &object_key)?))
        })
        .await
    }

    /// [`Db::lookup`] of many jobs (`(job_key, object_key)`) in one request.
    pub async fn lookup_many(
        &self,
        keys: Vec<(String, String)>,
    ) -> anyhow::Result<Vec<(Option<LedgerRow>, Option<CatalogRow>)>> {
        self.call(false, move |c| {
            keys.iter()
                .map(|(job_key, object_key)| {
                    Ok((ledger_of(c, job_key)?, catalog_of(c, object_key)?))
                })
                .collect()
        })
        .await
    }

    /// The catalog row of `object_key`.
    pub async fn catalog(&self, object_key: &str) -> anyhow::Result<Option<CatalogRow>> {
        let key = object_key.to_owned();
        self.call(false, move |c| catalog_of(c, &key)).await
    }

    /// Records an accepted job as COPYING at its first attempt, the copy
    /// being its next step (ACCEPTED and COPYING resume alike, so one write
    /// serves both). When `register_size` is given, first registers the
    /// object at the job's `from_tier` and generation (an object the catalog
    /// has not seen, found there by a HEAD).
    pub async fn accept(
        &self,
        job: &MigrationJob,
        register_size: Option<u64>,
    ) -> anyhow::Result<()> {
        let job = job.clone();
        self.call(false, move |c| accept_rows(c, &job, register_size))
            .await
    }

    /// [`Db::accept`] of many jobs (each with its `register_size`),
    /// together: all or none.
    pub async fn accept_many(&self, jobs: Vec<(MigrationJob, Option<u64>)>) -> anyhow::Result<()> {
        self.call(false, move |c| {
            jobs.iter()
                .try_for_each(|(job, register_size)| accept_rows(c, job, *register_size))
        })
        .await
    }

    /// Records a job that ended before it started (stale, not found);
    /// durable, as [`Db::end`] is.
    pub async fn reject(
        &self,
        job: &MigrationJob,
        class: &str,
        message: &str,
    ) -> anyhow::Result<()> {
        let (job, error) = (job.clone(), (class.to_owned(), message.to_owned()));
        self.call(true, move |c| {
            insert_ledger(c, &job, State::Rejected, 0, Some(&error)).map(|_| ())
        })
        .await
    }

    /// Moves a job to `state` at `attempt`, with the copy's digest once known.
    pub async fn set_state(
        &self,
        job_key: &str,
        state: State,
        attempt: u32,
        copied: Option<(&str, u64)>,
    ) -> anyhow::Result<()> {
        self.queue_state(job_key, state, attempt, copied)?
            .answer()
            .await
    }

    /// [`Db::set_state`] without waiting: the write is queued ahead of
    /// whatever the caller asks next.
    pub fn queue_state(
        &self,
        job_key: &str,
        state: State,
        attempt: u32,
        copied: Option<(&str, u64)>,
    ) -> anyhow::Result<Queued<()>> {
        let key = job_key.to_owned();
        let copied = copied.map(|(sha, len)| (sha.to_owned(), len));
        self.enqueue(false, move |c| {
            let copied = copied.as_ref().map(|(sha, len)| (sha.as_str(), *len));
            update_state(c, &key, state, attempt, copied)
        })
    }

    /// Marks many jobs COMPLETED at `attempt`, together.
    pub async fn complete_many(&self, job_keys: Vec<String>, attempt: u32) -> anyhow::Result<()> {
        self.call(false, move |c| {
            job_keys
                .iter()
                .try_for_each(|key| update_state(c, key, State::Completed, attempt, None))
        })
        .await
    }

    /// Records the multipart upload a job's copy has just started (`None`:
    /// forgets the one recorded, once it is aborted).
    pub async fn record_upload(
        &self,
        job_key: &str,
        upload_id: Option<&str>,
    ) -> anyhow::Result<()> {
        self.queue_upload(job_key, upload_id)?.answer().await
    }

    /// [`Db::record_upload`], queued at once: no await point lies between
    /// an upload's creation and its record being queued.
    pub fn queue_upload(
        &self,
        job_key: &str,
        upload_id: Option<&str>,
    ) -> anyhow::Result<Queued<()>> {
        let (key, id) = (job_key.to_owned(), upload_id.map(str::to_owned));
        self.enqueue(false, move |c| {
            c.prepare_cached("UPDATE ledger SET upload_id = ?2 WHERE job_key = ?1")?
                .execute(params![key, id])
                .map(drop)
        })
    }

    /// The multipart upload a job's copy started last, if any.
    pub async fn upload_of(&self, job_key: &str) -> anyhow::Result<Option<String>> {
        let key = job_key.to_owned();
        self.call(false, move |c| {
            c.prepare_cached("SELECT upload_id FROM ledger WHERE job_key = ?1")?
                .query_row([key], |r| r.get(0))
                .optional()
                .map(Option::flatten)
        })
        .await
    }

    /// Ends a job in `state` (FAILED or REJECTED) with the error's class and
    /// message. Durable (`synchronous=FULL`) like the switch: the outcome is
    /// reported and the job's offset stored after it, and a FAILED row lost
    /// to power loss would resume as COPYING and might complete after all.
    pub async fn end(
        &self,
        job_key: &str,
        state: State,
        attempt: u32,
        class: &str,
        message: &str,
    ) -> anyhow::Result<()> {
        let (key, class, message) = (job_key.to_owned(), class.to_owned(), message.to_owned());
        self.call(true, move |c| {
            c.prepare_cached(
                "UPDATE ledger SET state = ?2, attempt = ?3, error_class = ?4,
                    error_message = ?5, updated_at_ms = ?6 WHERE job_key = ?1",
            )?
            .execute(params![
                key,
                state_name(state),
                attempt,
                class,
                message,
                time::now_millis()
            ])
            .map(|_| ())
        })
        .await
    }

    /// The pointer switch: atomically points the catalog at the
    /// job's `to_tier` with the verified digest and a new generation, only if
    /// it still names `from_tier` at the job's generation, and marks the job
    /// SWITCHED with that digest and the source as the copy read it (a
    /// resume completes the job with them).
    /// Returns the new generation, or `None` when the catalog had moved on
    /// (nothing changed).
    ///
    /// Waits for the disk (`synchronous=FULL`), as a job's end does: the
    /// source is deleted after it, so it must survive power loss. In WAL mode
    /// that sync also makes every earlier commit durable. Switches that queue
    /// together share one sync.
    pub async fn switch(
        &self,
        job: &MigrationJob,
        copied: &Digest256,
        source: Option<&Seen>,
    ) -> anyhow::Result<Option<u64>> {
        let (job, copied, source) = (job.clone(), copied.clone(), source.cloned());
        self.call(true, move |c| {
            switch_rows(c, &job, &copied, source.as_ref())
        })
        .await
    }

    /// [`Db::switch`] of many verified copies in one request. Answers each
    /// job's new generation or `None`, in order.
    pub async fn switch_many(
        &self,
        verified: Vec<(MigrationJob, Digest256, Option<Seen>)>,
    ) -> anyhow::Result<Vec<Option<u64>>> {
        self.call(true, move |c| {
            verified
                .iter()
                .map(|(job, copied, source)| switch_rows(c, job, copied, source.as_ref()))
                .collect()
        })
        .await
    }

    /// Completes a switched job whose source copy its store refused to
    /// delete for good: the job ends COMPLETED with `job_error` (the object
    /// did move), and the copy is recorded as an orphan that refused with
    /// `refusal`, to be deleted again from `retry_at_ms`. One durable
    /// transaction, as [`Db::end`] is.
    pub async fn complete_leaving_orphan(
        &self,
        job: &MigrationJob,
        attempt: u32,
        job_error: (&str, &str),
        refusal: (&str, &str),
        left: &ObjectMeta,
        retry_at_ms: i64,
    ) -> anyhow::Result<()> {
        let job = job.clone();
        let left = Seen::of(left);
        let job_error = (job_error.0.to_owned(), job_error.1.to_owned());
        let refusal = (refusal.0.to_owned(), refusal.1.to_owned());
        self.call(true, move |c| {
            let now = time::now_millis();
            c.prepare_cached(
                "UPDATE ledger SET state = 'COMPLETED', attempt = ?2, error_class = ?3,
                    error_message = ?4, updated_at_ms = ?5 WHERE job_key = ?1",
            )?
            .execute(params![job.job_key, attempt, job_error.0, job_error.1, now])?;
            insert_orphan(
                c,
                &job.object_key,
                &job.from_tier,
                &job.job_key,
                &left,
                &refusal,
                retry_at_ms,
            )
        })
        .await
    }

    /// Undoes the switch of `job` (to `generation`) whose source key was
    /// found holding another version than the one copied (`now`, written
    /// there after the copy read it): the catalog names the job's
    /// `from_tier` again, at a new generation, with that version's size and
    /// no checksum, if it still names `to_tier` at `generation`; the job
    /// ends FAILED with `error`; and the copy, when `copy` describes it
    /// (else it is not known to be the job's), is recorded as an orphan due
    /// at once. One durable transaction. Returns the catalog's new
    /// generation, `None` when it had moved on (then only the job ends).
    pub async fn undo_switch(
        &self,
        job: &MigrationJob,
        attempt: u32,
        generation: u64,
        now: &Seen,
        copy: Option<&Seen>,
        error: (&str, &str),
    ) -> anyhow::Result<Option<u64>> {
        let (job, now, copy) = (job.clone(), now.clone(), copy.cloned());
        let error = (error.0.to_owned(), error.1.to_owned());
        self.call(true, move |c| {
            let at = time::now_millis();
            let changed = c
                .prepare_cached(
                    "UPDATE catalog SET tier = ?2, generation = generation + 1, sha256 = NULL,
                        size = ?3, updated_at_ms = ?4
                     WHERE object_key = ?1 AND tier = ?5 AND generation = ?6",
                )?
                .execute(params![
                    job.object_key,
                    job.from_tier,
                    now.size as i64,
                    at,
                    job.to_tier,
                    generation as i64
                ])?;
            // The generation the job left the catalog at, for a DUPLICATE of
            // it to report, when the undo set it.
            let undone = (changed == 1).then_some(generation + 1);
            c.prepare_cached(
                "UPDATE ledger SET state = 'FAILED', attempt = ?2, error_class = ?3,
                    error_message = ?4, updated_at_ms = ?5,
                    new_generation = coalesce(?6, new_generation)
                 WHERE job_key = ?1",
            )?
            .execute(params![
                job.job_key,
                attempt,
                error.0,
                error.1,
                at,
                undone.map(|g| g as i64)
            ])?;
            let Some(undone) = undone else {
                return Ok(None);
            };
            if let Some(copy) = &copy {
                insert_orphan(
                    c,
                    &job.object_key,
                    &job.to_tier,
                    &job.job_key,
                    copy,
                    &error,
                    at,
                )?;
            }
            Ok(Some(undone))
        })
        .await
    }

    /// Records a copy on `tier` that a job of `job_key` could not discard,
    /// its store refusing for good, as an orphan to be deleted again from
    /// `retry_at_ms`. Durable.
    pub async fn record_orphan(
        &self,
        job_key: &str,
        object_key: &str,
        tier: &str,
        refusal: (&str, &str),
        left: &ObjectMeta,
        retry_at_ms: i64,
    ) -> anyhow::Result<()> {
        let (job_key, object_key, tier) =
            (job_key.to_owned(), object_key.to_owned(), tier.to_owned());
        let left = Seen::of(left);
        let refusal = (refusal.0.to_owned(), refusal.1.to_owned());
        self.call(true, move |c| {
            insert_orphan(
                c,
                &object_key,
                &tier,
                &job_key,
                &left,
                &refusal,
                retry_at_ms,
            )
        })
        .await
    }

    /// The `limit` oldest orphan copies.
    pub async fn orphans(&self, limit: usize) -> anyhow::Result<Vec<OrphanRow>> {
        self.call(false, move |c| {
            c.prepare_cached("SELECT * FROM orphans ORDER BY since_ms, object_key, tier LIMIT ?1")?
                .query_map([limit as i64], orphan_row)?
                .collect()
        })
        .await
    }

    /// The orphan on record at `object_key` on `tier`, if any.
    pub async fn orphan(&self, object_key: &str, tier: &str) -> anyhow::Result<Option<OrphanRow>> {
        let (key, tier) = (object_key.to_owned(), tier.to_owned());
        self.call(false, move |c| {
            c.prepare_cached("SELECT * FROM orphans WHERE object_key = ?1 AND tier = ?2")?
                .query_row([key, tier], orphan_row)
                .optional()
        })
        .await
    }

    /// How many orphan copies are on record.
    pub async fn orphan_count(&self) -> anyhow::Result<u64> {
        self.call(false, |c| {
            c.prepare_cached("SELECT COUNT(*) FROM orphans")?
                .query_row([], |r| r.get::<_, i64>(0))
                .map(|n| n as u64)
        })
        .await
    }

    /// The orphans whose next delete is due at `now_ms`, most overdue first
    /// (a bounded batch).
    pub async fn orphans_due(&self, now_ms: i64) -> anyhow::Result<Vec<OrphanRow>> {
        self.call(false, move |c| {
            c.prepare_cached(
                "SELECT * FROM orphans WHERE next_at_ms <= ?1 ORDER BY next_at_ms LIMIT ?2",
            )?
            .query_map(params![now_ms, SWEEP_BATCH as i64], orphan_row)?
            .collect()
        })
        .await
    }

    /// Forgets an orphan: its copy is gone, or is the live one again.
    pub async fn forget_orphan(&self, object_key: &str, tier: &str) -> anyhow::Result<()> {
        let (key, tier) = (object_key.to_owned(), tier.to_owned());
        self.call(false, move |c| {
            c.prepare_cached("DELETE FROM orphans WHERE object_key = ?1 AND tier = ?2")?
                .execute([key, tier])
                .map(drop)
        })
        .await
    }

    /// Records another refused delete of an orphan, due again at `retry_at_ms`.
    pub async fn orphan_refused(
        &self,
        orphan: &OrphanRow,
        class: &str,
        message: &str,
        retry_at_ms: i64,
    ) -> anyhow::Result<()> {
        let (key, tier) = (orphan.object_key.clone(), orphan.tier.clone());
        let (class, message) = (class.to_owned(), message.to_owned());
        self.call(false, move |c| {
            c.prepare_cached(
                "UPDATE orphans SET attempts = attempts + 1, error_class = ?3,
                    error_message = ?4, next_at_ms = ?5 WHERE object_key = ?1 AND tier = ?2",
            )?
            .execute(params![key, tier, class, message, retry_at_ms])
            .map(drop)
        })
        .await
    }

    /// Every job that has not ended, oldest first.
    pub async fn unfinished(&self) -> anyhow::Result<Vec<LedgerRow>> {
        self.call(false, |c| {
            let mut stmt = c.prepare(UNFINISHED)?;
            stmt.query_map([], ledger_row)?.collect()
        })
        .await
    }
}

fn ledger_of(c: &Connection, job_key: &str) -> rusqlite::Result<Option<LedgerRow>> {
    c.prepare_cached("SELECT * FROM ledger WHERE job_key = ?1")?
        .query_row([job_key], ledger_row)
        .optional()
}

fn catalog_of(c: &Connection, object_key: &str) -> rusqlite::Result<Option<CatalogRow>> {
    c.prepare_cached("SELECT * FROM catalog WHERE object_key = ?1")?
        .query_row([object_key], catalog_row)
        .optional()
}

/// The switch's writes (see [`Db::switch`]); atomic in the request's savepoint.
fn switch_rows(
    c: &Connection,
    job: &MigrationJob,
    copied: &Digest256,
    source: Option<&Seen>,
) -> rusqlite::Result<Option<u64>> {
    let (sha, size) = (&copied.sha256, copied.bytes);
    let now = time::now_millis();
    let changed = c
        .prepare_cached(
            "UPDATE catalog SET tier = ?2, generation = generation + 1, sha256 = ?3, size = ?4,
                updated_at_ms = ?5
             WHERE object_key = ?1 AND tier = ?6 AND generation = ?7",
        )?
        .execute(params![
            job.object_key,
            job.to_tier,
            sha,
            size as i64,
            now,
            job.from_tier,
            job.generation as i64
        ])?;
    if changed != 1 {
        return Ok(None);
    }
    let new_generation = job.generation + 1;
    c.prepare_cached(
        "UPDATE ledger SET state = 'SWITCHED', new_generation = ?2, sha256 = ?3, bytes = ?4,
            updated_at_ms = ?5, source_size = ?6, source_e_tag = ?7, source_modified_ms = ?8
         WHERE job_key = ?1",
    )?
    .execute(params![
        job.job_key,
        new_generation as i64,
        sha,
        size as i64,
        now,
        source.map(|s| s.size as i64),
        source.and_then(|s| s.e_tag.as_deref()),
        source.map(|s| s.modified_ms)
    ])?;
    Ok(Some(new_generation))
}

/// [`Db::accept`]'s writes.
fn accept_rows(
    c: &Connection,
    job: &MigrationJob,
    register_size: Option<u64>,
) -> rusqlite::Result<()> {
    if let Some(size) = register_size {
        c.prepare_cached(
            "INSERT INTO catalog (object_key, tier, generation, sha256, size, updated_at_ms)
             VALUES (?1, ?2, ?3, NULL, ?4, ?5) ON CONFLICT (object_key) DO NOTHING",
        )?
        .execute(params![
            job.object_key,
            job.from_tier,
            job.generation as i64,
            size as i64,
            time::now_millis()
        ])?;
    }
    insert_ledger(c, job, State::Copying, 1, None).map(drop)
}

/// Moves a ledger row to `state` at `attempt`, with the copy's digest once known.
fn update_state(
    c: &Connection,
    job_key: &str,
    state: State,
    attempt: u32,
    copied: Option<(&str, u64)>,
) -> rusqlite::Result<()> {
    let (sha, len) = copied.map(|(sha, len)| (sha, len as i64)).unzip();
    c.prepare_cached(
        "UPDATE ledger SET state = ?2, attempt = ?3,
            sha256 = COALESCE(?4, sha256), bytes = COALESCE(?5, bytes), updated_at_ms = ?6
         WHERE job_key = ?1",
    )?
    .execute(params![
        job_key,
        state_name(state),
        attempt,
        sha,
        len,
        time::now_millis()
    ])
    .map(drop)
}

fn insert_ledger(
    c: &Connection,
    job: &MigrationJob,
    state: State,
    attempt: u32,
    error: Option<&(String, String)>,
) -> rusqlite::Result<usize> {
    c.prepare_cached(
        "INSERT INTO ledger (job_key, object_key, from_tier, to_tier, generation, size_bytes, state,
            attempt, error_class, error_message, created_at_ms, updated_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11)
         ON CONFLICT (job_key) DO NOTHING",
    )?
    .execute(params![
        job.job_key,
        job.object_key,
        job.from_tier,
        job.to_tier,
        job.generation as i64,
        job.size_bytes as i64,
        state_name(state),
        attempt,
        error.map(|e| &e.0),
        error.map(|e| &e.1),
        time::now_millis()
    ])
}

/// Records (or records again) the orphan copy of `object_key` on `tier`.
fn insert_orphan(
    c: &Connection,
    object_key: &str,
    tier: &str,
    job_key: &str,
    left: &Seen,
    refusal: &(String, String),
    retry_at_ms: i64,
) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT INTO orphans (object_key, tier, job_key, size, e_tag, modified_ms,
            error_class, error_message, attempts, since_ms, next_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 1, ?9, ?10)
         ON CONFLICT (object_key, tier) DO UPDATE SET job_key = excluded.job_key,
            size = excluded.size, e_tag = excluded.e_tag,
            modified_ms = excluded.modified_ms,
            error_class = excluded.error_class, error_message = excluded.error_message,
            attempts = attempts + 1, next_at_ms = excluded.next_at_ms",
    )?
    .execute(params![
        object_key,
        tier,
        job_key,
        left.size as i64,
        left.e_tag,
        left.modified_ms,
        refusal.0,
        refusal.1,
        time::now_millis(),
        retry_at_ms
    ])
    .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(generation: u64) -> MigrationJob {
        MigrationJob {
            job_key: strata_proto::job_key("k", "hot", "warm", generation),
            object_key: "k".into(),
            from_tier: "hot".into(),
            to_tier: "warm".into(),
            generation,
            size_bytes: 3,
            ..Default::default()
        }
    }

    /// The opcodes of `sql` as SQLite would run it.
    fn opcodes(c: &Connection, sql: &str) -> Vec<String> {
        let mut stmt = c.prepare(&format!("EXPLAIN {sql}")).unwrap();
        // Explained, not run: its parameters stay unbound.
        let mut rows = stmt.raw_query();
        let mut ops = Vec::new();
        while let Some(row) = rows.next().unwrap() {
            ops.push(row.get(1).unwrap());
        }
        ops
    }

    #[test]
    fn ledger_writes_build_no_temporary_table_and_resume_uses_its_index() {
        let dir = tempfile::tempdir().unwrap();
        let c = sqlite::open(&dir.path().join("m.db"), Durability::Normal, MIGRATIONS).unwrap();
        // The partial index's condition is checked on every write of a row;
        // a `NOT IN` list there cost a temporary b-tree each time.
        let update = "UPDATE ledger SET state = ?2, updated_at_ms = ?3 WHERE job_key = ?1";
        let insert = "INSERT INTO ledger (job_key, object_key, from_tier, to_tier, generation,
            size_bytes, state, created_at_ms, updated_at_ms)
            VALUES (?1, ?2, ?3, ?4, 0, 0, ?5, ?6, ?6)";
        for sql in [update, insert] {
            let ops = opcodes(&c, sql);
            assert!(ops.iter().any(|op| op == "IdxInsert"), "{sql}: {ops:?}");
            assert!(
                !ops.iter().any(|op| op == "OpenEphemeral"),
                "{sql}: {ops:?}"
            );
        }
        let plan: Vec<String> = c
            .prepare(&format!("EXPLAIN QUERY PLAN {UNFINISHED}"))
            .unwrap()
            .query_map([], |r| r.get(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(
            plan.iter().any(|step| step.contains("ledger_unfinished")),
            "{plan:?}"
        );
    }

    #[tokio::test]
    async fn switch_happens_once_and_only_from_the_expected_row() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("m.db")).unwrap();
        db.accept(&job(0), Some(3)).await.unwrap();
        assert_eq!(db.catalog("k").await.unwrap().unwrap().tier, "hot");
        let copied = |sha: &str| Digest256 {
            sha256: sha.into(),
            bytes: 3,
        };
        let source = Seen {
            size: 3,
            e_tag: Some("\"e1\"".into()),
            modified_ms: 1_767_225_600_000,
        };
        let switched = db.switch(&job(0), &copied("ab"), Some(&source)).await;
        assert_eq!(switched.unwrap(), Some(1));
        let row = db.catalog("k").await.unwrap().unwrap();
        assert_eq!(
            (row.tier.as_str(), row.generation, row.sha256.as_deref()),
            ("warm", 1, Some("ab"))
        );
        let ledger = db.ledger(&job(0).job_key).await.unwrap().unwrap();
        assert_eq!(
            (ledger.state, ledger.source),
            (State::Switched, Some(source))
        );
        // The same switch again finds generation 1, not 0: nothing changes.
        assert_eq!(db.switch(&job(0), &copied("cd"), None).await.unwrap(), None);
        assert_eq!(
            db.catalog("k").await.unwrap().unwrap().sha256.as_deref(),
            Some("ab")
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_request_undoes_its_own_writes_and_no_one_elses() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("m.db")).unwrap();
        let failing = db.call(false, |c| {
            insert_ledger(c, &job(1), State::Accepted, 0, None)?;
            Err::<(), _>(rusqlite::Error::InvalidQuery)
        });
        let accepts = futures::future::join_all((2..40).map(|g| {
            let db = db.clone();
            async move { db.accept(&job(g), Some(3)).await }
        }));
        let (failing, accepts) = tokio::join!(failing, accepts);
        assert!(failing.is_err());
        assert!(accepts.iter().all(Result::is_ok));
        assert!(db.ledger(&job(1).job_key).await.unwrap().is_none());
        for g in 2..40 {
            assert!(db.ledger(&job(g).job_key).await.unwrap().is_some());
        }
    }

    #[tokio::test]
    async fn when_a_savepoint_fails_its_whole_group_hears_the_error_and_nothing_commits() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("m.db")).unwrap();
        // Hold the database thread in a group of its own while the next
        // group queues up behind it.
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let blocker = db
            .enqueue(false, move |_| {
                started_tx.send(()).unwrap();
                release_rx.recv().unwrap();
                Ok(())
            })
            .unwrap();
        started_rx.recv().unwrap();
        let before = db
            .enqueue(false, |c| {
                insert_ledger(c, &job(1), State::Accepted, 0, None).map(drop)
            })
            .unwrap();
        // Ends the group's transaction under it: its RELEASE then fails.
        let hostile = db.enqueue(false, |c| exec(c, "ROLLBACK")).unwrap();
        let after = db
            .enqueue(false, |c| {
                insert_ledger(c, &job(2), State::Accepted, 0, None).map(drop)
            })
            .unwrap();
        release_tx.send(()).unwrap();

        blocker.answer().await.unwrap();
        for (name, answer) in [("before", before), ("hostile", hostile), ("after", after)] {
            // The raw reply: a request dropped unanswered must fail this too.
            let result = answer
                .0
                .await
                .unwrap_or_else(|_| panic!("{name}: no answer"));
            assert!(result.is_err(), "{name}: answered Ok in a failed group");
        }
        // Nothing of the group was committed, and the thread serves on.
        assert!(db.ledger(&job(1).job_key).await.unwrap().is_none());
        assert!(db.ledger(&job(2).job_key).await.unwrap().is_none());
        db.accept(&job(3), Some(3)).await.unwrap();
        assert!(db.ledger(&job(3).job_key).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn ledger_survives_reopen_and_lists_unfinished() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.db");
        {
            let db = Db::open(&path).unwrap();
            db.accept(&job(0), Some(3)).await.unwrap();
            db.set_state(&job(0).job_key, State::Copying, 1, None)
                .await
                .unwrap();
            db.reject(&job(7), "stale", "x").await.unwrap();
        }
        let db = Db::open(&path).unwrap();
        let unfinished = db.unfinished().await.unwrap();
        assert_eq!(unfinished.len(), 1);
        assert_eq!(
            (unfinished[0].state, unfinished[0].attempt),
            (State::Copying, 1)
        );
        let rejected = db.ledger(&job(7).job_key).await.unwrap().unwrap();
        assert_eq!(rejected.error, Some(("stale".into(), "x".into())));
    }
}
