//! Applying consumed messages to the state, and the decision cycle. Both
//! run inside one SQLite transaction each: a batch's state changes commit
//! together with its offsets; a cycle's jobs commit together with the
//! objects they mark in flight.

use std::collections::{BTreeMap, BTreeSet, HashMap, btree_map::Entry};

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use strata_proto::{AccessEvent, MigrationJob, MigrationStatus, Op, Reason, State, codec, time};
use strata_runtime::tiers::TierConfig;

use crate::{
    cost,
    placement::{self, CostParams},
    predict::PrefixPrior,
    prefix::{self, LOOKBACK_MS, PrefixStats},
    rules::{self, DAY_MS, Decision, ObjectView, RuleParams},
    store::{self, Clock, NEVER, ObjectRow},
};

/// One consumed message, decoded.
#[derive(Debug, Clone)]
pub enum Payload {
    Event(AccessEvent),
    Status(MigrationStatus),
    /// Rejected (already dead-lettered): only its offset advances.
    Skip,
}

/// A consumed message with its position.
#[derive(Debug, Clone)]
pub struct Input {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub payload: Payload,
}

/// What a batch did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub events: usize,
    pub statuses: usize,
    /// Messages at offsets already applied (a replay after a crash or rebalance).
    pub replayed: usize,
}

/// The objects and prefixes a batch touches: each read once and written
/// once, when the batch ends, however many of its events name it (a hot
/// object's reads cost one row write per batch, not one each).
#[derive(Default)]
struct Touched {
    /// Rows as the batch left them; `None`: not in the table.
    rows: BTreeMap<String, Option<ObjectRow>>,
    changed: BTreeSet<String>,
    /// Statistics of the prefixes of the objects the batch changed.
    prefixes: BTreeMap<String, PrefixStats>,
}

impl Touched {
    fn load(&mut self, tx: &Transaction<'_>, key: &str) -> rusqlite::Result<Option<ObjectRow>> {
        if let Some(row) = self.rows.get(key) {
            return Ok(row.clone());
        }
        let row = store::load(tx, key)?;
        self.rows.insert(key.to_owned(), row.clone());
        Ok(row)
    }

    fn save(&mut self, o: ObjectRow) {
        self.changed.insert(o.object_key.clone());
        self.rows.insert(o.object_key.clone(), Some(o));
    }

    /// The statistics of `key`'s prefix, as of `now_ms` when new.
    fn prefix(
        &mut self,
        tx: &Transaction<'_>,
        key: &str,
        now_ms: i64,
    ) -> rusqlite::Result<&mut PrefixStats> {
        let prefix = prefix::prefix_of(key);
        Ok(match self.prefixes.entry(prefix.to_owned()) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                let stats = store::load_prefix(tx, prefix)?;
                e.insert(stats.unwrap_or_else(|| PrefixStats::new(now_ms)))
            }
        })
    }

    fn write(self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        for key in &self.changed {
            if let Some(Some(o)) = self.rows.get(key) {
                store::save(tx, o)?;
            }
        }
        for (prefix, stats) in &self.prefixes {
            store::save_prefix(tx, prefix, stats)?;
        }
        Ok(())
    }
}

/// Applies a batch, skipping messages whose offsets were already applied,
/// and records the next offsets, all in `tx`.
pub fn apply_batch(
    tx: &Transaction<'_>,
    inputs: &[Input],
    tiers: &TierConfig,
    wall_ms: i64,
) -> anyhow::Result<Applied> {
    let mut next: HashMap<(&str, i32), i64> = HashMap::new();
    let mut clock = store::read_clock(tx)?;
    let mut applied = Applied::default();
    let mut touched = Touched::default();
    for input in inputs {
        let pos = (input.topic.as_str(), input.partition);
        let stored = match next.get(&pos) {
            Some(n) => *n,
            None => tx
                .query_row(
                    "SELECT next_offset FROM offsets WHERE topic = ?1 AND partition = ?2",
                    params![input.topic, input.partition],
                    |r| r.get(0),
                )
                .optional()?
                .unwrap_or(0),
        };
        if input.offset < stored {
            applied.replayed += 1;
            next.insert(pos, stored);
            continue;
        }
        match &input.payload {
            Payload::Event(event) => {
                apply_event(tx, &mut touched, event, tiers, &mut clock, wall_ms)?;
                applied.events += 1;
            }
            Payload::Status(status) => {
                apply_status(tx, &mut touched, status, tiers, clock.now(wall_ms))?;
                applied.statuses += 1;
            }
            Payload::Skip => {}
        }
        // A stored offset is the next one to read: one past this message.
        next.insert(pos, input.offset + 1);
    }
    touched.write(tx)?;
    for ((topic, partition), offset) in next {
        tx.execute(
            "INSERT INTO offsets (topic, partition, next_offset) VALUES (?1, ?2, ?3)
             ON CONFLICT (topic, partition) DO UPDATE SET next_offset = MAX(next_offset, excluded.next_offset)",
            params![topic, partition, offset],
        )?;
    }
    store::write_clock(tx, clock)?;
    Ok(applied)
}

/// The next offset to read per partition of `topic`, as stored.
pub fn stored_offsets(conn: &Connection, topic: &str) -> rusqlite::Result<Vec<(i32, i64)>> {
    let mut stmt = conn.prepare("SELECT partition, next_offset FROM offsets WHERE topic = ?1")?;
    let rows = stmt.query_map([topic], |r| Ok((r.get(0)?, r.get(1)?)))?;
    rows.collect()
}

/// How long a failed job waits at least for its source's restore. The
/// mover asked for one when the job failed `restoring` (its source is
/// archived); it takes about the source tier's first-byte time at the
/// standard retrieval (hours on S3 Glacier Flexible Retrieval and Deep
/// Archive, Azure Archive), four times that at `Bulk`, minutes at S3's
/// `Expedited` and an hour at Azure's `High` (the tier's `restore_tier`),
/// and a tenth more to be safe. An auto-tiering tier reads in milliseconds
/// until its store archives an object (S3 Intelligent-Tiering's opt-in
/// Archive Access tier); a restore from there takes up to 5 hours. A retry
/// sooner would only find it under way.
fn restore_ms(s: &MigrationStatus, tiers: &TierConfig) -> i64 {
    let restoring = s.error.as_ref().is_some_and(|e| e.class == "restoring");
    let Some(tier) = tiers.get(&s.from_tier).filter(|_| restoring) else {
        return 0;
    };
    const MINUTE_MS: f64 = 60_000.0;
    let standard_ms = if tier.auto_tiering.is_some() {
        300.0 * MINUTE_MS
    } else {
        tier.first_byte_ms
    };
    let expected_ms = match tier.restore_tier.as_deref() {
        Some("Expedited") => 5.0 * MINUTE_MS,
        Some("High") => 60.0 * MINUTE_MS,
        Some("Bulk") => 4.0 * standard_ms,
        _ => standard_ms,
    };
    (expected_ms * 1.1) as i64
}

/// How far past the wall clock an event's time may be taken: a sender's
/// clock that runs ahead, not a time decades off (a unit mistake, a bad
/// producer), which would move the clock and age every object at once.
pub const MAX_AHEAD_MS: i64 = DAY_MS;

fn apply_event(
    tx: &Transaction<'_>,
    touched: &mut Touched,
    e: &AccessEvent,
    tiers: &TierConfig,
    clock: &mut Clock,
    wall_ms: i64,
) -> anyhow::Result<()> {
    if !e.event_id.is_empty() {
        let fresh = tx
            .prepare_cached(
                "INSERT INTO seen_events (event_id, ts_ms) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
            )?
            .execute(params![e.event_id, wall_ms])?;
        if fresh == 0 {
            return Ok(());
        }
    }
    // Validated upstream: ts is set (the record timestamp when the event had none).
    let ts = e.ts.as_ref().map(time::to_millis).unwrap_or(wall_ms);
    let ts = if ts > wall_ms + MAX_AHEAD_MS {
        metrics::counter!("strata_policy_future_events_total").increment(1);
        tracing::warn!(object_key = %e.object_key, ts, wall_ms, "event time more than a day ahead of the wall clock; taken as a day ahead");
        wall_ms + MAX_AHEAD_MS
    } else {
        ts
    };
    clock.observe(ts, wall_ms);
    let op = e.op();
    let existing = touched.load(tx, &e.object_key)?;
    if op == Op::Delete {
        if let Some(mut o) = existing.filter(|o| !o.deleted) {
            o.deleted = true;
            // A deleted object's last event is its delete: what comes in
            // from before it (a listing made before, a late GET) is the
            // deleted object's, and changes nothing.
            o.last_access_ms = o.last_access_ms.max(ts);
            touched
                .prefix(tx, &o.object_key, ts)?
                .deleted(o.first_seen_ms, ts);
            touched.save(o);
        }
        return Ok(());
    }
    // What the decision depended on before this event: an inventory that
    // finds an object as it was does not make it due.
    let before = existing
        .as_ref()
        .map(|o| (o.size, o.tier.clone(), o.deleted));
    let mut o = match existing {
        Some(o) => o,
        None => {
            let tier = match &e.tier {
                t if !t.is_empty() && tiers.get(t).is_some() => t.clone(),
                _ => tiers.tiers[0].name.clone(),
            };
            let o = ObjectRow::new(&e.object_key, e.size_bytes, &tier, ts);
            touched
                .prefix(tx, &o.object_key, ts)?
                .created(o.first_seen_ms);
            o
        }
    };
    if o.deleted && ts < o.last_access_ms {
        return Ok(());
    }
    if e.size_bytes > 0 {
        o.size = e.size_bytes;
    }
    // Where an event saw the object, for an object the mover has never
    // moved (generation 0) and that has no job in flight: its first event
    // may not have named a tier, and the first tier was then assumed.
    // Once the mover has moved it, the mover's statuses say where it is.
    if o.generation == 0
        && o.inflight_job.is_none()
        && !e.tier.is_empty()
        && e.tier != o.tier
        && tiers.get(&e.tier).is_some()
    {
        // Nothing moved it since it was first seen: it was there all along.
        o.tier = e.tier.clone();
        o.tier_since_ms = o.first_seen_ms.min(ts);
    }
    if o.deleted {
        // Written again after a delete: a new object (design §6: a DELETE
        // ends one), its age and reads from now, as the simulator takes it;
        // alive again for its prefix too. Where it is stays as the mover
        // last reported.
        o.revive(ts);
        touched
            .prefix(tx, &o.object_key, ts)?
            .created(o.first_seen_ms);
    }
    match op {
        Op::Get => {
            let bytes = if e.bytes_read > 0 {
                e.bytes_read
            } else {
                o.size
            };
            // The reads this one may follow up, as the simulator sees them.
            let before: Vec<i64> = o
                .recent_reads
                .iter()
                .copied()
                .filter(|&t| t <= ts && t >= ts - LOOKBACK_MS)
                .collect();
            touched
                .prefix(tx, &o.object_key, ts)?
                .read(o.first_seen_ms, ts, &before);
            o.record_read(ts, bytes);
        }
        Op::Put => o.last_access_ms = o.last_access_ms.max(ts),
        Op::Inventory | Op::Head | Op::Delete | Op::Unspecified => {}
    }
    // Due again now, unless a failed job's backoff is still running: events
    // of an object whose moves keep failing must not retry them at once.
    // An inventory's time is the object's last modification, often months
    // back: an hourly listing would otherwise put every object it lists
    // ahead of those just read, each hour. It makes an object due only
    // when it is new or found changed, and then at the clock's now.
    if op == Op::Inventory {
        let unchanged = before
            .as_ref()
            .is_some_and(|b| *b == (o.size, o.tier.clone(), o.deleted));
        if unchanged {
            return Ok(());
        }
        let now = clock.now(wall_ms).max(o.retry_after_ms);
        o.due_ms = if before.is_none() {
            now
        } else {
            o.due_ms.min(now)
        };
    } else {
        o.due_ms = o.due_ms.min(ts.max(o.retry_after_ms));
    }
    touched.save(o);
    Ok(())
}

fn apply_status(
    tx: &Transaction<'_>,
    touched: &mut Touched,
    s: &MigrationStatus,
    tiers: &TierConfig,
    now_ms: i64,
) -> anyhow::Result<()> {
    let state = match s.state() {
        State::Duplicate => s.result(),
        other => other,
    };
    if !matches!(
        state,
        State::Switched | State::Completed | State::Failed | State::Rejected
    ) {
        return Ok(());
    }
    let mut o = match touched.load(tx, &s.object_key)? {
        Some(o) => o,
        // A move the policy did not decide (an operator's): learn the object.
        None if state == State::Completed => {
            touched.prefix(tx, &s.object_key, now_ms)?.created(now_ms);
            ObjectRow::new(&s.object_key, s.bytes, &s.to_tier, now_ms)
        }
        None => return Ok(()),
    };
    let ours = o.inflight_job.as_deref() == Some(s.job_key.as_str());
    match state {
        State::Switched | State::Completed => {
            // A late report of an older move (a DUPLICATE of it, say) has a
            // generation below the one known: the object has moved since.
            if s.generation >= o.generation {
                if o.tier != s.to_tier || o.generation < s.generation {
                    o.tier_since_ms = now_ms;
                    o.last_move_ms = Some(now_ms);
                    // Moved (by this job or another's): what the last
                    // failed job said is past.
                    o.last_failure = None;
                    // Moved by a job not in flight (an operator's, or one
                    // that timed out): decided again on its new tier.
                    if o.inflight_job.is_none() {
                        o.due_ms = o.due_ms.min(now_ms);
                    }
                }
                o.tier = s.to_tier.clone();
                o.generation = s.generation;
                if s.bytes > 0 {
                    o.size = s.bytes;
                }
            }
            if state == State::Completed && ours {
                o.inflight_job = None;
                o.inflight_to = None;
                o.inflight_since_ms = 0;
                o.failures = 0;
                o.last_failure = None;
                o.due_ms = now_ms;
            }
        }
        State::Failed | State::Rejected if ours => {
            o.inflight_job = None;
            o.inflight_to = None;
            o.inflight_since_ms = 0;
            if !s.current_tier.is_empty() && s.error.as_ref().is_some_and(|e| e.class == "stale") {
                // The catalog knows better: take its tier and generation and decide again.
                o.last_failure = None;
                o.tier = s.current_tier.clone();
                o.generation = s.generation;
                o.due_ms = now_ms;
            } else {
                // A failure after which the catalog names a newer
                // generation (a switch undone: the source was written
                // again after the copy) says where the object is now.
                if !s.current_tier.is_empty() && s.generation > o.generation {
                    o.tier = s.current_tier.clone();
                    o.generation = s.generation;
                    o.tier_since_ms = now_ms;
                }
                o.failures += 1;
                o.last_failure = Some(failure_of(s, state));
                let backoff_hours = 1i64 << o.failures.min(7);
                o.retry_after_ms =
                    now_ms.saturating_add((backoff_hours * DAY_MS / 24).max(restore_ms(s, tiers)));
                o.due_ms = o.retry_after_ms;
            }
        }
        _ => return Ok(()),
    }
    touched.save(o);
    Ok(())
}

/// Longest mover message kept as an object's last failure.
const FAILURE_KEPT_BYTES: usize = 1024;

/// An object's last failure as a status tells it: `FAILED transient:
/// store unreachable`, the message cut to [`FAILURE_KEPT_BYTES`].
fn failure_of(s: &MigrationStatus, state: State) -> String {
    let (class, message) = s
        .error
        .as_ref()
        .map_or(("", ""), |e| (e.class.as_str(), e.message.as_str()));
    let message = strata_runtime::shortened(message, FAILURE_KEPT_BYTES);
    format!("{} {class}: {message}", state.as_str_name())
}

/// Limits of one decision cycle.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    /// Jobs made per cycle at most.
    pub max_jobs: usize,
    /// Bytes moved per cycle at most; an object larger than this is moved
    /// alone in a cycle of its own.
    pub max_bytes: u64,
    /// A job whose outcome has not been heard this long (wall time, ms)
    /// leaves its object to be decided again; 0: never.
    pub job_timeout_ms: i64,
}

/// Objects whose job timed out that one cycle decides again at most.
const TIMED_OUT_PER_CYCLE: i64 = 1000;

/// The view of an object the rule sees, with its prefix's prior.
pub fn view(o: &ObjectRow, prior: Option<PrefixPrior>) -> ObjectView {
    ObjectView {
        key: o.object_key.clone(),
        first_seen_ms: o.first_seen_ms,
        tier_since_ms: o.tier_since_ms,
        last_move_ms: o.last_move_ms,
        prior,
        evidence: crate::predict::Evidence {
            c30: o.rates[2],
            ts_ms: o.decay_ts_ms,
            reads: o.reads_total as f64,
            last_read_ms: o.recent_reads.last().copied(),
            run: crate::predict::run_length(o.recent_reads.iter().copied()),
        },
        bytes_per_read: o.bytes_per_read(),
        size: o.size,
        tier: o.tier.clone(),
        last_access_ms: o.last_access_ms,
        recent_reads: o.recent_reads.clone(),
        pinned: o.pinned.clone(),
    }
}

/// The reason carried by a job (and shown by `/explain`): the rule's words
/// plus the cost arithmetic at the reads the rule in effect predicts.
pub fn reason(
    obj: &ObjectView,
    to: &str,
    why: &str,
    rule: &str,
    tiers: &TierConfig,
    params: &RuleParams,
    now_ms: i64,
) -> Reason {
    let predicted = rules::predicted_reads_30d(obj, params, now_ms);
    let default = CostParams::default();
    let cost_params = params.cost.as_ref().unwrap_or(&default);
    let monthly: HashMap<String, f64> = rules::cost_view(obj, tiers, predicted)
        .map(|view| {
            (0..tiers.tiers.len())
                .map(|i| {
                    let usd = placement::monthly_on(&view, &tiers.tiers, i, cost_params, now_ms);
                    (tiers.tiers[i].name.clone(), usd)
                })
                .collect()
        })
        .unwrap_or_default();
    let resident_days = (now_ms - obj.tier_since_ms) as f64 / DAY_MS as f64;
    let move_cost = match (tiers.get(&obj.tier), tiers.get(to)) {
        (Some(from), Some(dest)) if from.name != dest.name => {
            let (transition, early) = cost::move_usd(from, dest, obj.size, resident_days);
            transition + early
        }
        _ => 0.0,
    };
    let saving_per_month =
        monthly.get(&obj.tier).copied().unwrap_or(0.0) - monthly.get(to).copied().unwrap_or(0.0);
    let break_even_days =
        cost::break_even_days(move_cost, saving_per_month).unwrap_or(f64::INFINITY);
    Reason {
        summary: why.to_owned(),
        predicted_reads_30d: predicted,
        monthly_cost_usd: monthly,
        move_cost_usd: move_cost,
        break_even_days: if break_even_days.is_finite() {
            break_even_days
        } else {
            -1.0
        },
        rule: rule.to_owned(),
    }
}

/// The priors of the prefixes a decision cycle meets, each read once.
#[derive(Default)]
pub struct Priors(HashMap<String, Option<PrefixPrior>>);

impl Priors {
    /// The prior of `key`'s prefix at `now_ms`.
    pub fn of(
        &mut self,
        tx: &Transaction<'_>,
        key: &str,
        now_ms: i64,
    ) -> rusqlite::Result<Option<PrefixPrior>> {
        let prefix = prefix::prefix_of(key);
        if let Some(prior) = self.0.get(prefix) {
            return Ok(*prior);
        }
        let prior = store::prefix_prior(tx, key, now_ms)?;
        self.0.insert(prefix.to_owned(), prior);
        Ok(prior)
    }
}

/// Makes due (at `now`) the objects whose job in flight was made before
/// `made_before` (wall time) and never heard of since: its message lost
/// (the jobs topic's retention passed while the mover was down, the topic
/// recreated), or its status. The same decision made again is the same job
/// key, which the mover answers `DUPLICATE` with its outcome if it ran it,
/// or runs; a job still running when its key comes again is answered once
/// it ends (one job per object at a time). Another decision since is
/// another job, which the mover takes after that one.
fn timed_out(tx: &Transaction<'_>, made_before: i64, now: i64) -> anyhow::Result<()> {
    let mut stmt = tx.prepare_cached(&format!(
        "SELECT {} FROM objects WHERE inflight_job IS NOT NULL AND inflight_since_ms < ?1
         ORDER BY inflight_since_ms LIMIT ?2",
        store::OBJECT_COLUMNS
    ))?;
    let rows: Vec<ObjectRow> = stmt
        .query_map(params![made_before, TIMED_OUT_PER_CYCLE], store::object_row)?
        .collect::<Result<_, _>>()?;
    for mut o in rows {
        tracing::warn!(
            key = %o.object_key,
            job_key = o.inflight_job.as_deref().unwrap_or_default(),
            "no outcome heard of the object's job: deciding it again"
        );
        metrics::counter!("strata_policy_jobs_timed_out_total").increment(1);
        o.inflight_job = None;
        o.inflight_to = None;
        o.inflight_since_ms = 0;
        o.due_ms = now;
        store::save(tx, &o)?;
    }
    Ok(())
}

/// Decides every object whose decision is due at the clock's now, within
/// `budget`; writes the jobs to the outbox and marks their objects in
/// flight. Returns the jobs made.
pub fn decide_cycle(
    tx: &Transaction<'_>,
    tiers: &TierConfig,
    params: &RuleParams,
    budget: Budget,
    wall_ms: i64,
) -> anyhow::Result<Vec<MigrationJob>> {
    let now = store::read_clock(tx)?.now(wall_ms);
    if budget.job_timeout_ms > 0 {
        timed_out(tx, wall_ms - budget.job_timeout_ms, now)?;
    }
    let due: Vec<ObjectRow> = {
        let mut stmt = tx.prepare_cached(&format!(
            "SELECT {} FROM objects WHERE inflight_job IS NULL AND deleted = 0 AND due_ms <= ?1
             ORDER BY due_ms LIMIT ?2",
            store::OBJECT_COLUMNS
        ))?;
        let limit = (budget.max_jobs * 8).max(1000) as i64;
        // One query reads the due rows whole; no second lookup per key.
        stmt.query_map(params![now, limit], store::object_row)?
            .collect::<Result<_, _>>()?
    };
    let (mut jobs, mut bytes) = (Vec::new(), 0u64);
    let mut priors = Priors::default();
    for mut o in due {
        let view = view(&o, priors.of(tx, &o.object_key, now)?);
        match rules::decide(&view, tiers, params, now) {
            Decision::Stay { next_due_ms, .. } => {
                o.due_ms = next_due_ms.filter(|&d| d > now).unwrap_or(NEVER);
            }
            Decision::Move { to, why, rule } => {
                // An object larger than the byte budget goes alone, first in
                // its cycle: skipping it would leave it due first forever.
                let over_bytes =
                    !jobs.is_empty() && bytes.saturating_add(o.size) > budget.max_bytes;
                if jobs.len() >= budget.max_jobs || over_bytes {
                    break; // Budget spent: the rest stay due for the next cycle.
                }
                // After FAILED outcomes the same decision is a retry with a
                // key of its own: the failed key would only answer DUPLICATE.
                let job = MigrationJob {
                    job_key: strata_proto::retry_job_key(
                        &o.object_key,
                        &o.tier,
                        &to,
                        o.generation,
                        o.failures,
                    ),
                    retry: o.failures,
                    object_key: o.object_key.clone(),
                    from_tier: o.tier.clone(),
                    to_tier: to.clone(),
                    generation: o.generation,
                    size_bytes: o.size,
                    reason: Some(reason(&view, &to, &why, rule, tiers, params, now)),
                    created_at: Some(time::from_millis(now)),
                };
                // A job the mover would refuse would never be answered and
                // leave the object in flight for good: a status can carry
                // a generation one above what a job may (the last move
                // there is), or a row can hold what an older version let in.
                if let Err(e) = strata_proto::validate::migration_job(&job) {
                    tracing::warn!(key = %o.object_key, error = %e, "not moving an object: its job would be invalid");
                    metrics::counter!("strata_policy_unmovable_total").increment(1);
                    o.due_ms = NEVER;
                    store::save(tx, &o)?;
                    continue;
                }
                tx.execute(
                    "INSERT INTO jobs (job_key, object_key, payload, created_ms) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (job_key) DO NOTHING",
                    params![job.job_key, job.object_key, codec::encode(&job, codec::Encoding::Protobuf), wall_ms],
                )?;
                bytes = bytes.saturating_add(o.size);
                o.inflight_job = Some(job.job_key.clone());
                o.inflight_to = Some(to);
                o.inflight_since_ms = wall_ms;
                o.due_ms = NEVER;
                jobs.push(job);
            }
        }
        store::save(tx, &o)?;
    }
    Ok(jobs)
}

#[cfg(test)]
mod tests {
    use strata_proto::pb;

    use super::*;

    /// The wait for a restore follows the source tier's first-byte time and
    /// its `restore_tier`, and only a restore that was asked for is waited on.
    #[test]
    fn a_restore_is_waited_for_as_long_as_its_tier_takes() {
        let hour = 3_600_000.0;
        let tiers = TierConfig::parse(
            "[[tiers]]\nname='deep'\nurl='memory://'\nfirst_byte_ms=43200000\n\
             [[tiers]]\nname='bulk'\nurl='memory://'\nfirst_byte_ms=43200000\nrestore_tier='Bulk'\n\
             [[tiers]]\nname='fast'\nurl='memory://'\nfirst_byte_ms=18000000\nrestore_tier='Expedited'\n\
             [[tiers]]\nname='az'\nurl='memory://'\nfirst_byte_ms=54000000\nrestore_tier='High'\n\
             [[tiers]]\nname='it'\nurl='memory://'\nfirst_byte_ms=10\n\
             [tiers.auto_tiering]\nsteps=[{idle_days=30, storage_usd_per_gb_month=0.0125}]\n",
            &[],
        )
        .unwrap();
        let failed = |from: &str, class: &str| MigrationStatus {
            from_tier: from.into(),
            error: Some(pb::Error {
                class: class.into(),
                message: String::new(),
            }),
            ..Default::default()
        };
        let wait = |from, class| restore_ms(&failed(from, class), &tiers) as f64 / hour;
        assert_eq!(wait("deep", "restoring"), 13.2);
        assert_eq!(wait("bulk", "restoring"), 52.8);
        assert_eq!(wait("fast", "restoring"), 5.5 / 60.0);
        assert_eq!(wait("az", "restoring"), 1.1);
        assert_eq!(wait("it", "restoring"), 5.5);
        // Not asked for, or another failure: the usual backoff alone.
        assert_eq!(wait("deep", "archived"), 0.0);
        assert_eq!(wait("deep", "transient"), 0.0);
    }
}
