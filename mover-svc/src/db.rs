//! mover-svc's SQLite: the catalog (where each object lives) and the ledger
//! (how far each job got). Every method is one transaction; the switch
//! changes the catalog and the ledger together (design §4, §5).

use std::{path::Path, sync::Arc};

use anyhow::Context;
use rusqlite::{Connection, OptionalExtension, Row, params};
use strata_proto::{MigrationJob, State};
use strata_runtime::sqlite::{self, Durability};
use tokio::sync::Mutex;

use crate::protocol::{CatalogRow, LedgerRow};

const MIGRATIONS: &[&str] = &[include_str!("../migrations/001-catalog-and-ledger.sql")];

/// The catalog and ledger, shared by the job loop and the HTTP lookups.
#[derive(Clone)]
pub struct Db {
    conn: Arc<Mutex<Connection>>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
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

impl Db {
    /// Opens (creating) the database. A step recorded here survives a crash
    /// of the process at once; the switch also survives power loss, and
    /// takes every step recorded before it to the disk (see [`Db::switch`]).
    /// The steps before a switch need no more: if power loss forgets one,
    /// the source is untouched and the catalog unchanged, so nothing is lost.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let conn = sqlite::open(path, Durability::Normal, MIGRATIONS)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` on the connection on a blocking thread.
    async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<R> + Send + 'static,
    ) -> anyhow::Result<R> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = conn.blocking_lock();
            f(&mut guard)
        })
        .await
        .context("sqlite task panicked")?
        .context("sqlite")
    }

    /// The ledger row of `job_key`.
    pub async fn ledger(&self, job_key: &str) -> anyhow::Result<Option<LedgerRow>> {
        let key = job_key.to_owned();
        self.call(move |c| ledger_of(c, &key)).await
    }

    /// The ledger row of `job_key` and the catalog row of `object_key`, read together.
    pub async fn lookup(
        &self,
        job_key: &str,
        object_key: &str,
    ) -> anyhow::Result<(Option<LedgerRow>, Option<CatalogRow>)> {
        let (job_key, object_key) = (job_key.to_owned(), object_key.to_owned());
        self.call(move |c| Ok((ledger_of(c, &job_key)?, catalog_of(c, &object_key)?)))
            .await
    }

    /// The catalog row of `object_key`.
    pub async fn catalog(&self, object_key: &str) -> anyhow::Result<Option<CatalogRow>> {
        let key = object_key.to_owned();
        self.call(move |c| catalog_of(c, &key)).await
    }

    /// Records a job as ACCEPTED; when `register_size` is given, first
    /// registers the object at the job's `from_tier` and generation (an
    /// object the catalog has not seen, found there by a HEAD).
    pub async fn accept(
        &self,
        job: &MigrationJob,
        register_size: Option<u64>,
    ) -> anyhow::Result<()> {
        let job = job.clone();
        self.call(move |c| {
            let tx = c.transaction()?;
            let now = now_ms();
            if let Some(size) = register_size {
                tx.execute(
                    "INSERT INTO catalog (object_key, tier, generation, sha256, size, updated_at_ms)
                     VALUES (?1, ?2, ?3, NULL, ?4, ?5) ON CONFLICT (object_key) DO NOTHING",
                    params![job.object_key, job.from_tier, job.generation as i64, size as i64, now],
                )?;
            }
            insert_ledger(&tx, &job, State::Accepted, None)?;
            tx.commit()
        })
        .await
    }

    /// Records a job that ended before it started (stale, not found).
    pub async fn reject(
        &self,
        job: &MigrationJob,
        class: &str,
        message: &str,
    ) -> anyhow::Result<()> {
        let (job, error) = (job.clone(), (class.to_owned(), message.to_owned()));
        self.call(move |c| insert_ledger(c, &job, State::Rejected, Some(&error)).map(|_| ()))
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
        let key = job_key.to_owned();
        let copied = copied.map(|(sha, len)| (sha.to_owned(), len as i64));
        self.call(move |c| {
            let (sha, len) = copied.unzip();
            c.execute(
                "UPDATE ledger SET state = ?2, attempt = ?3,
                    sha256 = COALESCE(?4, sha256), bytes = COALESCE(?5, bytes), updated_at_ms = ?6
                 WHERE job_key = ?1",
                params![key, state_name(state), attempt, sha, len, now_ms()],
            )
            .map(|_| ())
        })
        .await
    }

    /// Ends a job in `state` (FAILED or REJECTED) with the error's class and message.
    pub async fn end(
        &self,
        job_key: &str,
        state: State,
        attempt: u32,
        class: &str,
        message: &str,
    ) -> anyhow::Result<()> {
        let (key, class, message) = (job_key.to_owned(), class.to_owned(), message.to_owned());
        self.call(move |c| {
            c.execute(
                "UPDATE ledger SET state = ?2, attempt = ?3, error_class = ?4,
                    error_message = ?5, updated_at_ms = ?6 WHERE job_key = ?1",
                params![key, state_name(state), attempt, class, message, now_ms()],
            )
            .map(|_| ())
        })
        .await
    }

    /// The pointer switch: in one transaction, points the catalog at the
    /// job's `to_tier` with the verified digest and a new generation, only if
    /// it still names `from_tier` at the job's generation, and marks the job
    /// SWITCHED. Returns the new generation, or `None` when the catalog had
    /// moved on (nothing changed).
    ///
    /// The one commit that waits for the disk (`synchronous=FULL`): the source
    /// is deleted after it, so it must survive power loss. In WAL mode that
    /// sync also makes every earlier commit durable.
    pub async fn switch(
        &self,
        job: &MigrationJob,
        sha256: &str,
        size: u64,
    ) -> anyhow::Result<Option<u64>> {
        let (job, sha) = (job.clone(), sha256.to_owned());
        self.call(move |c| {
            c.pragma_update(None, "synchronous", "FULL")?;
            let switched = switch_tx(c, &job, &sha, size);
            c.pragma_update(None, "synchronous", "NORMAL")?;
            switched
        })
        .await
    }

    /// Every job that has not ended, oldest first.
    pub async fn unfinished(&self) -> anyhow::Result<Vec<LedgerRow>> {
        self.call(|c| {
            let mut stmt = c.prepare(
                "SELECT * FROM ledger WHERE state NOT IN ('COMPLETED', 'FAILED', 'REJECTED')
                 ORDER BY created_at_ms",
            )?;
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

/// The switch's transaction (see [`Db::switch`]).
fn switch_tx(
    c: &mut Connection,
    job: &MigrationJob,
    sha: &str,
    size: u64,
) -> rusqlite::Result<Option<u64>> {
    let tx = c.transaction()?;
    let now = now_ms();
    let changed = tx.execute(
        "UPDATE catalog SET tier = ?2, generation = generation + 1, sha256 = ?3, size = ?4,
            updated_at_ms = ?5
         WHERE object_key = ?1 AND tier = ?6 AND generation = ?7",
        params![
            job.object_key,
            job.to_tier,
            sha,
            size as i64,
            now,
            job.from_tier,
            job.generation as i64
        ],
    )?;
    if changed != 1 {
        return Ok(None);
    }
    let new_generation = job.generation + 1;
    tx.execute(
        "UPDATE ledger SET state = 'SWITCHED', new_generation = ?2, updated_at_ms = ?3
         WHERE job_key = ?1",
        params![job.job_key, new_generation as i64, now],
    )?;
    tx.commit()?;
    Ok(Some(new_generation))
}

fn insert_ledger(
    c: &Connection,
    job: &MigrationJob,
    state: State,
    error: Option<&(String, String)>,
) -> rusqlite::Result<usize> {
    let now = now_ms();
    c.execute(
        "INSERT INTO ledger (job_key, object_key, from_tier, to_tier, generation, size_bytes, state,
            attempt, error_class, error_message, created_at_ms, updated_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, ?8, ?9, ?10, ?10)
         ON CONFLICT (job_key) DO NOTHING",
        params![
            job.job_key,
            job.object_key,
            job.from_tier,
            job.to_tier,
            job.generation as i64,
            job.size_bytes as i64,
            state_name(state),
            error.map(|e| &e.0),
            error.map(|e| &e.1),
            now
        ],
    )
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

    #[tokio::test]
    async fn switch_happens_once_and_only_from_the_expected_row() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("m.db")).unwrap();
        db.accept(&job(0), Some(3)).await.unwrap();
        assert_eq!(db.catalog("k").await.unwrap().unwrap().tier, "hot");
        assert_eq!(db.switch(&job(0), "ab", 3).await.unwrap(), Some(1));
        let row = db.catalog("k").await.unwrap().unwrap();
        assert_eq!(
            (row.tier.as_str(), row.generation, row.sha256.as_deref()),
            ("warm", 1, Some("ab"))
        );
        assert_eq!(
            db.ledger(&job(0).job_key).await.unwrap().unwrap().state,
            State::Switched
        );
        // The same switch again finds generation 1, not 0: nothing changes.
        assert_eq!(db.switch(&job(0), "cd", 3).await.unwrap(), None);
        assert_eq!(
            db.catalog("k").await.unwrap().unwrap().sha256.as_deref(),
            Some("ab")
        );
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
