//! policy-svc's SQLite state: one row per object, the consumed offsets
//! (committed in the same transaction as the state they produced), the job
//! outbox and the event-time clock.

use std::{path::Path, sync::Arc};

use anyhow::Context;
use rusqlite::{Connection, OptionalExtension, Row, Transaction, params};
use serde::Serialize;
use strata_runtime::sqlite::{self, Durability};
use tokio::sync::Mutex;

use crate::{
    predict::PrefixPrior,
    prefix::{self, PrefixStats},
};

const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/001-objects.sql"),
    include_str!("../migrations/002-prefixes.sql"),
    include_str!("../migrations/003-retry-after.sql"),
    include_str!("../migrations/004-seen-events-by-time.sql"),
    include_str!("../migrations/005-outbox-without-published.sql"),
    include_str!("../migrations/006-last-failure.sql"),
    include_str!("../migrations/007-inflight-since.sql"),
];

/// "Not due until something happens."
pub const NEVER: i64 = i64::MAX;

/// How many recent read times an object keeps (for the promotion window).
pub const RECENT_READS_KEPT: usize = 16;

/// Half-lives of the decayed read rates, in days.
pub const HALF_LIVES_DAYS: [f64; 3] = [1.0, 7.0, 30.0];

/// How long event ids are remembered (wall time) to drop an event sent twice.
pub const EVENT_ID_MEMORY_DAYS: i64 = 7;

/// One object's row.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRow {
    pub object_key: String,
    pub size: u64,
    pub tier: String,
    pub generation: u64,
    pub first_seen_ms: i64,
    pub last_access_ms: i64,
    pub reads_total: u64,
    pub bytes_read: u64,
    pub decay_ts_ms: i64,
    /// Decayed read counts, half-lives of [`HALF_LIVES_DAYS`].
    pub rates: [f64; 3],
    pub recent_reads: Vec<i64>,
    pub tier_since_ms: i64,
    pub inflight_job: Option<String>,
    pub inflight_to: Option<String>,
    /// When the job in flight was made, wall time (0: none).
    pub inflight_since_ms: i64,
    pub last_move_ms: Option<i64>,
    pub failures: u32,
    pub pinned: Option<String>,
    pub deleted: bool,
    pub due_ms: i64,
    /// When the backoff after a failed job ends (0: none): access events
    /// make the object due, but not before this.
    pub retry_after_ms: i64,
    /// What the mover said when the last job failed or was refused, until
    /// the object moves.
    pub last_failure: Option<String>,
}

impl ObjectRow {
    /// A newly seen object on `tier`, last touched at `ts_ms`.
    pub fn new(key: &str, size: u64, tier: &str, ts_ms: i64) -> Self {
        ObjectRow {
            object_key: key.to_owned(),
            size,
            tier: tier.to_owned(),
            generation: 0,
            first_seen_ms: ts_ms,
            last_access_ms: ts_ms,
            reads_total: 0,
            bytes_read: 0,
            decay_ts_ms: ts_ms,
            rates: [0.0; 3],
            recent_reads: Vec::new(),
            tier_since_ms: ts_ms,
            inflight_job: None,
            inflight_to: None,
            inflight_since_ms: 0,
            last_move_ms: None,
            failures: 0,
            pinned: None,
            deleted: false,
            due_ms: ts_ms,
            retry_after_ms: 0,
            last_failure: None,
        }
    }

    /// A deleted object seen again at `ts_ms` (written anew): alive, with
    /// no age or reads before `ts_ms`; its tier, generation, job in flight,
    /// failures (their backoff and the last one's message) and pin stay.
    pub fn revive(&mut self, ts_ms: i64) {
        let fresh = ObjectRow::new(&self.object_key, self.size, &self.tier, ts_ms);
        *self = ObjectRow {
            generation: self.generation,
            inflight_job: self.inflight_job.take(),
            inflight_to: self.inflight_to.take(),
            inflight_since_ms: self.inflight_since_ms,
            last_move_ms: self.last_move_ms,
            failures: self.failures,
            pinned: self.pinned.take(),
            due_ms: self.due_ms.min(ts_ms),
            retry_after_ms: self.retry_after_ms,
            last_failure: self.last_failure.take(),
            ..fresh
        };
    }

    /// Counts one read at `ts_ms` of `bytes` bytes: decayed rates, recent
    /// read times, totals. Out-of-order reads decay by their age.
    pub fn record_read(&mut self, ts_ms: i64, bytes: u64) {
        let day = crate::rules::DAY_MS as f64;
        let (advance, weight_age) = if ts_ms >= self.decay_ts_ms {
            (ts_ms - self.decay_ts_ms, 0)
        } else {
            (0, self.decay_ts_ms - ts_ms)
        };
        for (rate, half_life) in self.rates.iter_mut().zip(HALF_LIVES_DAYS) {
            let decay = |ms: i64| 0.5f64.powf(ms as f64 / day / half_life);
            *rate = *rate * decay(advance) + decay(weight_age);
        }
        self.decay_ts_ms = self.decay_ts_ms.max(ts_ms);
        let at = self.recent_reads.partition_point(|&t| t <= ts_ms);
        self.recent_reads.insert(at, ts_ms);
        if self.recent_reads.len() > RECENT_READS_KEPT {
            self.recent_reads.remove(0);
        }
        self.reads_total += 1;
        self.bytes_read = self.bytes_read.saturating_add(bytes);
        self.last_access_ms = self.last_access_ms.max(ts_ms);
    }

    /// Bytes per read on average (the whole object before any read).
    pub fn bytes_per_read(&self) -> u64 {
        self.bytes_read
            .checked_div(self.reads_total)
            .unwrap_or(self.size)
    }
}

/// The columns of `objects` in the order [`object_row`] reads them, as a
/// literal so that queries can be built with `concat!` at compile time.
macro_rules! object_columns {
    () => {
        "object_key, size, tier, generation, first_seen_ms, last_access_ms, reads_total, \
         bytes_read, decay_ts_ms, rate_1d, rate_7d, rate_30d, recent_reads, tier_since_ms, \
         inflight_job, inflight_to, last_move_ms, failures, pinned, deleted, due_ms, \
         retry_after_ms, last_failure, inflight_since_ms"
    };
}

/// The columns of `objects` in the order [`object_row`] reads them.
pub const OBJECT_COLUMNS: &str = object_columns!();

/// Reads one `objects` row selected as [`OBJECT_COLUMNS`] (by position:
/// looking columns up by name costs more than the rest of the row).
pub fn object_row(r: &Row<'_>) -> rusqlite::Result<ObjectRow> {
    let recent: String = r.get(12)?;
    Ok(ObjectRow {
        object_key: r.get(0)?,
        size: r.get::<_, i64>(1)? as u64,
        tier: r.get(2)?,
        generation: r.get::<_, i64>(3)? as u64,
        first_seen_ms: r.get(4)?,
        last_access_ms: r.get(5)?,
        reads_total: r.get::<_, i64>(6)? as u64,
        bytes_read: r.get::<_, i64>(7)? as u64,
        decay_ts_ms: r.get(8)?,
        rates: [r.get(9)?, r.get(10)?, r.get(11)?],
        recent_reads: serde_json::from_str(&recent).unwrap_or_default(),
        tier_since_ms: r.get(13)?,
        inflight_job: r.get(14)?,
        inflight_to: r.get(15)?,
        last_move_ms: r.get(16)?,
        failures: r.get(17)?,
        pinned: r.get(18)?,
        deleted: r.get(19)?,
        due_ms: r.get(20)?,
        retry_after_ms: r.get(21)?,
        last_failure: r.get(22)?,
        inflight_since_ms: r.get(23)?,
    })
}

/// Loads one object inside a transaction.
pub fn load(tx: &Connection, key: &str) -> rusqlite::Result<Option<ObjectRow>> {
    tx.prepare_cached(concat!(
        "SELECT ",
        object_columns!(),
        " FROM objects WHERE object_key = ?1"
    ))?
    .query_row([key], object_row)
    .optional()
}

/// Writes one object inside a transaction.
pub fn save(tx: &Connection, o: &ObjectRow) -> rusqlite::Result<()> {
    let recent = serde_json::to_string(&o.recent_reads).unwrap_or_else(|_| "[]".into());
    tx.prepare_cached(
        "INSERT OR REPLACE INTO objects (object_key, size, tier, generation, first_seen_ms,
            last_access_ms, reads_total, bytes_read, decay_ts_ms, rate_1d, rate_7d, rate_30d,
            recent_reads, tier_since_ms, inflight_job, inflight_to, last_move_ms, failures,
            pinned, deleted, due_ms, retry_after_ms, last_failure, inflight_since_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,
            ?19, ?20, ?21, ?22, ?23, ?24)",
    )?
    .execute(params![
        o.object_key,
        o.size as i64,
        o.tier,
        o.generation as i64,
        o.first_seen_ms,
        o.last_access_ms,
        o.reads_total as i64,
        o.bytes_read as i64,
        o.decay_ts_ms,
        o.rates[0],
        o.rates[1],
        o.rates[2],
        recent,
        o.tier_since_ms,
        o.inflight_job,
        o.inflight_to,
        o.last_move_ms,
        o.failures,
        o.pinned,
        o.deleted,
        o.due_ms,
        o.retry_after_ms,
        o.last_failure,
        o.inflight_since_ms,
    ])?;
    Ok(())
}

/// Loads one prefix's statistics inside a transaction.
pub fn load_prefix(tx: &Connection, prefix: &str) -> rusqlite::Result<Option<PrefixStats>> {
    let json: Option<String> = tx
        .prepare_cached("SELECT stats FROM prefixes WHERE prefix = ?1")?
        .query_row([prefix], |r| r.get(0))
        .optional()?;
    // A row that no longer parses (an older layout) starts over empty.
    Ok(json.and_then(|j| serde_json::from_str(&j).ok()))
}

/// Writes one prefix's statistics inside a transaction.
pub fn save_prefix(tx: &Connection, prefix: &str, stats: &PrefixStats) -> rusqlite::Result<()> {
    let json = serde_json::to_string(stats)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
    tx.prepare_cached("INSERT OR REPLACE INTO prefixes (prefix, stats) VALUES (?1, ?2)")?
        .execute(params![prefix, json])?;
    Ok(())
}

/// The prior of `key`'s prefix at `now_ms`, if the prefix says enough.
pub fn prefix_prior(
    tx: &Connection,
    key: &str,
    now_ms: i64,
) -> rusqlite::Result<Option<PrefixPrior>> {
    Ok(load_prefix(tx, prefix::prefix_of(key))?.and_then(|mut s| s.prior(now_ms)))
}

/// The event-time clock's persisted state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Clock {
    /// Newest event time seen, ms; 0 before any event.
    pub max_event_ms: i64,
    /// Wall time when `max_event_ms` last advanced.
    pub wall_at_ms: i64,
}

impl Clock {
    /// Event-time now: the newest event time, advanced by the wall time that
    /// has passed since it was seen (so a quiet system still ages its
    /// objects). Before any event, wall time.
    pub fn now(&self, wall_ms: i64) -> i64 {
        if self.max_event_ms == 0 {
            return wall_ms;
        }
        self.max_event_ms + (wall_ms - self.wall_at_ms).max(0)
    }

    /// Takes an event time into account.
    pub fn observe(&mut self, event_ms: i64, wall_ms: i64) {
        if event_ms > self.now(wall_ms) || self.max_event_ms == 0 {
            self.max_event_ms = event_ms;
            self.wall_at_ms = wall_ms;
        }
    }
}

/// The policy's database.
#[derive(Clone)]
pub struct Store {
    conn: Arc<Mutex<Connection>>,
    /// A read-only connection for the HTTP API. In WAL mode its reads see
    /// the last commit without waiting for the writer, nor the writer for
    /// them: a summary that reads every object does not hold up the
    /// consumer and the decisions meanwhile.
    reader: Arc<Mutex<Connection>>,
}

impl Store {
    /// Opens (creating) the database. Crash-safe, not power-loss-safe: the
    /// offsets live in the same transactions, and the consumer starts at
    /// them ([`crate::assign`]), so a lost tail is consumed again.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let conn = sqlite::open(path, Durability::Normal, MIGRATIONS)?;
        let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
        let conn = Arc::new(Mutex::new(conn));
        // Without WAL (a file system without shared memory) a reader's
        // lock would make the writer's commits wait, and fail after the
        // busy timeout: the API then reads on the writer's connection.
        let reader = if mode.eq_ignore_ascii_case("wal") {
            let reader = Connection::open_with_flags(
                path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                    | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .with_context(|| format!("open sqlite {} to read", path.display()))?;
            reader.busy_timeout(std::time::Duration::from_secs(5))?;
            // A summary's GROUP BY sorts in memory, not in /tmp.
            reader.pragma_update(None, "temp_store", "MEMORY")?;
            Arc::new(Mutex::new(reader))
        } else {
            tracing::warn!(%mode, "sqlite is not in WAL mode: the HTTP API reads on the writer's connection");
            conn.clone()
        };
        Ok(Self { conn, reader })
    }

    /// Runs `f` in one transaction on a blocking thread.
    pub async fn transaction<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> anyhow::Result<R> + Send + 'static,
    ) -> anyhow::Result<R> {
        in_transaction(&self.conn, f).await
    }

    /// Runs `f` in one read transaction (a snapshot of the last commit) on
    /// the read-only connection, on a blocking thread.
    pub async fn read<R: Send + 'static>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> anyhow::Result<R> + Send + 'static,
    ) -> anyhow::Result<R> {
        in_transaction(&self.reader, f).await
    }

    /// Forgets the event ids seen (wall time) before `before_ms`: an event
    /// sent again later than that is applied again. Returns how many.
    pub async fn forget_event_ids(&self, before_ms: i64) -> anyhow::Result<usize> {
        self.transaction(move |tx| {
            Ok(tx.execute("DELETE FROM seen_events WHERE ts_ms < ?1", [before_ms])?)
        })
        .await
    }

    /// One object's row.
    pub async fn object(&self, key: &str) -> anyhow::Result<Option<ObjectRow>> {
        let key = key.to_owned();
        self.read(move |tx| Ok(load(tx, &key)?)).await
    }

    /// The clock as stored.
    pub async fn clock(&self) -> anyhow::Result<Clock> {
        self.transaction(|tx| Ok(read_clock(tx)?)).await
    }

    /// Jobs not yet acknowledged by Kafka: (job key, object key, payload).
    pub async fn outbox(&self) -> anyhow::Result<Vec<(String, String, Vec<u8>)>> {
        self.transaction(|tx| {
            let mut stmt = tx.prepare(
                "SELECT job_key, object_key, payload FROM jobs ORDER BY created_ms LIMIT 1000",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            Ok(rows.collect::<Result<_, _>>()?)
        })
        .await
    }

    /// Removes jobs Kafka acknowledged from the outbox: it holds a job only
    /// until then (a job decided again is queued again).
    pub async fn remove_published(&self, job_keys: Vec<String>) -> anyhow::Result<()> {
        self.transaction(move |tx| {
            let mut stmt = tx.prepare_cached("DELETE FROM jobs WHERE job_key = ?1")?;
            for key in job_keys {
                stmt.execute([key])?;
            }
            Ok(())
        })
        .await
    }
}

/// Runs `f` in one transaction of `conn` on a blocking thread.
async fn in_transaction<R: Send + 'static>(
    conn: &Arc<Mutex<Connection>>,
    f: impl FnOnce(&Transaction<'_>) -> anyhow::Result<R> + Send + 'static,
) -> anyhow::Result<R> {
    let conn = conn.clone();
    tokio::task::spawn_blocking(move || {
        let mut guard = conn.blocking_lock();
        let tx = guard.transaction()?;
        let result = f(&tx)?;
        tx.commit()?;
        Ok(result)
    })
    .await
    .context("sqlite task panicked")?
}

/// Live objects and bytes per (tier, tier of the job in flight). Bytes are
/// added up as a float (`TOTAL`, exact up to 2^53, 8 PiB): `SUM` fails once
/// its total passes 2^63, which 1.7 million objects of 5 TiB reach.
pub fn tier_totals(tx: &Connection) -> rusqlite::Result<Vec<TierTotal>> {
    let mut stmt = tx.prepare(
        "SELECT tier, inflight_to, COUNT(*), TOTAL(size) FROM objects
         WHERE deleted = 0 GROUP BY tier, inflight_to",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(TierTotal {
            tier: r.get(0)?,
            moving_to: r.get(1)?,
            objects: r.get::<_, i64>(2)? as u64,
            bytes: r.get::<_, f64>(3)? as u64,
        })
    })?;
    rows.collect()
}

/// Folds `f` over the live objects on `tier` or on their way to it, one row
/// at a time (a summary of an auto-tiering tier, whose bill depends on each
/// object's idle time).
pub fn fold_tier_objects<A>(
    tx: &Connection,
    tier: &str,
    init: A,
    mut f: impl FnMut(A, TierObject) -> A,
) -> rusqlite::Result<A> {
    let mut stmt = tx.prepare(
        "SELECT size, tier = ?1, COALESCE(inflight_to, tier) = ?1,
                MAX(COALESCE(json_extract(recent_reads, '$[#-1]'), 0), tier_since_ms)
         FROM objects WHERE deleted = 0 AND (tier = ?1 OR inflight_to = ?1)",
    )?;
    let mut rows = stmt.query([tier])?;
    let mut acc = init;
    while let Some(r) = rows.next()? {
        acc = f(
            acc,
            TierObject {
                size: r.get::<_, i64>(0)? as u64,
                on_tier: r.get(1)?,
                after_jobs: r.get(2)?,
                idle_since_ms: r.get(3)?,
            },
        );
    }
    Ok(acc)
}

/// An object on a tier or on its way there ([`fold_tier_objects`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TierObject {
    pub size: u64,
    /// On the tier now (else on its way in).
    pub on_tier: bool,
    /// On the tier once the jobs in flight end: it stays or arrives.
    pub after_jobs: bool,
    /// Its last read or its arrival on its tier, whichever is later.
    pub idle_since_ms: i64,
}

/// Live objects on one tier, with a job in flight to `moving_to` or none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierTotal {
    pub tier: String,
    pub moving_to: Option<String>,
    pub objects: u64,
    pub bytes: u64,
}

/// Reads the clock inside a transaction.
pub fn read_clock(tx: &Connection) -> rusqlite::Result<Clock> {
    Ok(tx
        .query_row(
            "SELECT max_event_ms, wall_at_ms FROM clock WHERE id = 0",
            [],
            |r| {
                Ok(Clock {
                    max_event_ms: r.get(0)?,
                    wall_at_ms: r.get(1)?,
                })
            },
        )
        .optional()?
        .unwrap_or_default())
}

/// Writes the clock inside a transaction.
pub fn write_clock(tx: &Connection, clock: Clock) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT OR REPLACE INTO clock (id, max_event_ms, wall_at_ms) VALUES (0, ?1, ?2)",
        params![clock.max_event_ms, clock.wall_at_ms],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::DAY_MS;

    /// A database written by the release before `last_failure` (its five
    /// migrations, named here as they were) opens, gains the new column,
    /// and keeps its rows: migrations are only ever appended, since each
    /// runs at its index of `user_version`.
    #[tokio::test]
    async fn a_database_of_the_previous_release_migrates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("policy.db");
        let before = [
            include_str!("../migrations/001-objects.sql"),
            include_str!("../migrations/002-prefixes.sql"),
            include_str!("../migrations/003-retry-after.sql"),
            include_str!("../migrations/004-seen-events-by-time.sql"),
            include_str!("../migrations/005-outbox-without-published.sql"),
        ];
        let old = sqlite::open(&path, Durability::Normal, &before).unwrap();
        old.execute(
            "INSERT INTO objects (object_key, size, tier, generation, first_seen_ms,
                last_access_ms, reads_total, bytes_read, decay_ts_ms, rate_1d, rate_7d,
                rate_30d, recent_reads, tier_since_ms, failures, deleted, due_ms, inflight_job)
             VALUES ('a', 1, 'hot', 0, 0, 0, 0, 0, 0, 0, 0, 0, '[]', 0, 0, 0, 0, 'j')",
            [],
        )
        .unwrap();
        drop(old);

        let store = Store::open(&path).unwrap();
        let mut row = store.object("a").await.unwrap().unwrap();
        assert_eq!((row.tier.as_str(), row.last_failure), ("hot", None));
        // Its job in flight counts from the migration, not from the epoch.
        let since = strata_proto::time::now_millis() - row.inflight_since_ms;
        assert!((0..60_000).contains(&since), "{}", row.inflight_since_ms);
        row.last_failure = Some("FAILED transient: unreachable".into());
        assert_eq!(saved_and_loaded(&store, &row).await, Some(row));
    }

    /// Saves `row` in a transaction of its own and loads it back.
    async fn saved_and_loaded(store: &Store, row: &ObjectRow) -> Option<ObjectRow> {
        let saved = row.clone();
        store
            .transaction(move |tx| Ok(save(tx, &saved)?))
            .await
            .unwrap();
        store.object(&row.object_key).await.unwrap()
    }

    #[test]
    fn decayed_rates_halve_per_half_life_and_take_late_reads() {
        let mut o = ObjectRow::new("k", 1, "hot", 0);
        o.record_read(0, 1);
        o.record_read(DAY_MS, 1);
        // 1-day half-life: the first read weighs 0.5 a day later.
        assert!((o.rates[0] - 1.5).abs() < 1e-9, "{:?}", o.rates);
        // A late read, a day older than the newest, also weighs 0.5.
        o.record_read(0, 1);
        assert!((o.rates[0] - 2.0).abs() < 1e-9);
        assert_eq!(o.recent_reads, vec![0, 0, DAY_MS]);
        assert_eq!((o.reads_total, o.last_access_ms), (3, DAY_MS));
    }

    #[test]
    fn clock_follows_events_then_wall_time() {
        let mut c = Clock::default();
        assert_eq!(c.now(500), 500);
        c.observe(10_000, 500);
        assert_eq!(c.now(500), 10_000);
        assert_eq!(c.now(1_500), 11_000);
        // An older event does not move the clock back.
        c.observe(2_000, 1_500);
        assert_eq!(c.now(1_500), 11_000);
        c.observe(50_000, 1_600);
        assert_eq!(c.now(1_600), 50_000);
    }

    #[tokio::test]
    async fn old_event_ids_and_published_jobs_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("p.db")).unwrap();
        store
            .transaction(|tx| {
                for (id, ts) in [("old", 1_000), ("edge", 2_000), ("new", 3_000)] {
                    tx.execute("INSERT INTO seen_events VALUES (?1, ?2)", params![id, ts])?;
                }
                for key in ["sent", "pending"] {
                    tx.execute(
                        "INSERT INTO jobs (job_key, object_key, payload, created_ms)
                         VALUES (?1, 'k', x'00', 0)",
                        [key],
                    )?;
                }
                Ok(())
            })
            .await
            .unwrap();
        assert_eq!(store.forget_event_ids(2_000).await.unwrap(), 1);
        store.remove_published(vec!["sent".into()]).await.unwrap();
        let (ids, jobs) = store
            .transaction(|tx| {
                let ids: Vec<String> = tx
                    .prepare("SELECT event_id FROM seen_events ORDER BY ts_ms")?
                    .query_map([], |r| r.get(0))?
                    .collect::<Result<_, _>>()?;
                let jobs = job_keys(tx)?;
                Ok((ids, jobs))
            })
            .await
            .unwrap();
        assert_eq!(ids, ["edge", "new"]);
        assert_eq!(jobs, ["pending"]);
        let pending = store.outbox().await.unwrap();
        assert_eq!(pending.len(), 1);
        assert_eq!(pending[0].0, "pending");
    }

    fn job_keys(tx: &Connection) -> rusqlite::Result<Vec<String>> {
        tx.prepare("SELECT job_key FROM jobs ORDER BY job_key")?
            .query_map([], |r| r.get(0))?
            .collect()
    }

    #[tokio::test]
    async fn rows_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("p.db")).unwrap();
        let mut o = ObjectRow::new("a/b", 9, "warm", 5);
        o.record_read(7, 9);
        o.inflight_job = Some("j".into());
        assert_eq!(saved_and_loaded(&store, &o).await, Some(o));
    }

    /// A long read (a summary over every object) holds up no write, and
    /// sees the last commit before it began.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_long_read_does_not_hold_up_writes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("p.db")).unwrap();
        let put = |key: &'static str| {
            move |tx: &Transaction<'_>| Ok(save(tx, &ObjectRow::new(key, 1, "warm", 5))?)
        };
        store.transaction(put("a")).await.unwrap();
        let (began_tx, began_rx) = tokio::sync::oneshot::channel();
        let (go_on, wait) = std::sync::mpsc::channel::<()>();
        let read = tokio::spawn({
            let store = store.clone();
            async move {
                store
                    .read(move |tx| {
                        let before = tier_totals(tx)?;
                        began_tx.send(()).unwrap();
                        wait.recv().unwrap();
                        Ok((before, tier_totals(tx)?))
                    })
                    .await
            }
        });
        began_rx.await.unwrap();
        tokio::time::timeout(
            std::time::Duration::from_secs(10),
            store.transaction(put("b")),
        )
        .await
        .expect("a write must not wait for a read")
        .unwrap();
        go_on.send(()).unwrap();
        let (before, during) = read.await.unwrap().unwrap();
        assert_eq!(
            (before[0].objects, during[0].objects),
            (1, 1),
            "one snapshot"
        );
        assert!(
            store.object("b").await.unwrap().is_some(),
            "the next read sees the write"
        );
    }

    /// Totals past 2^63 bytes (SQLite's `SUM` fails there, and
    /// `/v1/summary` with it) still add up.
    #[tokio::test]
    async fn tier_totals_add_up_past_what_an_i64_holds() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("p.db")).unwrap();
        let size = 1u64 << 62;
        let totals = store
            .transaction(move |tx| {
                for key in ["a", "b", "c"] {
                    save(tx, &ObjectRow::new(key, size, "warm", 5))?;
                }
                Ok(tier_totals(tx)?)
            })
            .await
            .unwrap();
        assert_eq!(totals.len(), 1);
        assert_eq!((totals[0].objects, totals[0].bytes), (3, 3 * size));
    }
}
