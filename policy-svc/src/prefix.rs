//! Per-prefix statistics: what the objects sharing a key prefix say about
//! when a new or quiet one will be read. They give the prediction its prior
//! ([`PrefixPrior`]). The daemon keeps one [`PrefixStats`] per prefix in
//! its SQLite state and updates it with the events it applies; the
//! simulator replays a trace through the same code in time order
//! ([`crate::sim::prefix`]), so both predict alike.
//!
//! Kept per day, for the last [`KEPT_DAYS`] days:
//! - reads, and reads of mature objects (at least [`MATURE_DAYS`] old: a
//!   prefix of young objects says little yet about how often they are read);
//! - object-days, of all live objects and of the mature ones;
//! - for each idle time `a` of [`IDLE_STEPS_DAYS`]: the mature reads that
//!   were followed by at least `a` without another read of the object ("at
//!   risk"), and the reads that came in the [`FOLLOW_DAYS`] after that idle
//!   time (follow-ups). A burst's reads come close together: once its
//!   object has been idle for a day, its follow-ups stop, while a steady
//!   reader's go on at its rate whatever the idle time.
//!
//! The prior on day `d` uses complete days only: the reads and object-days
//! of the [`WINDOW_DAYS`] days before `d`, and the follow-ups of reads whose
//! follow-up windows have all closed.

use serde::{Deserialize, Serialize};

use crate::predict::{IDLE_STEPS, IDLE_STEPS_DAYS, PrefixPrior};

const DAY_MS: i64 = 86_400_000;
/// Days of reads and object-days the prior averages over.
pub const WINDOW_DAYS: i64 = 30;
/// Days after an idle time in which a read counts as a follow-up.
pub const FOLLOW_DAYS: f64 = 3.0;
/// Age from which an object's reads count toward the prefix's read rate.
pub const MATURE_DAYS: i64 = 30;
/// Object-days a prefix needs in the window before its rate is trusted.
pub const MIN_OBJECT_DAYS: f64 = 30.0;
/// Segments of a key's folder that name its prefix at most (`a/b/c/d/`),
/// so that keys with ids in their folders share a few prefixes.
pub const PREFIX_DEPTH: usize = 4;
/// How far back a read looks for the reads it follows up.
pub const LOOKBACK_MS: i64 =
    ((IDLE_STEPS_DAYS[IDLE_STEPS - 1] + FOLLOW_DAYS) * DAY_MS as f64) as i64;
/// Days between a read and the day its follow-ups are complete.
const FOLLOW_LAG_DAYS: i64 = (LOOKBACK_MS + DAY_MS - 1) / DAY_MS + 1;
/// Days kept: the window, the follow-up lag, and today.
pub const KEPT_DAYS: i64 = WINDOW_DAYS + FOLLOW_LAG_DAYS + 1;

/// The prefix of `key`: its folder (everything up to the last `/`), cut
/// after [`PREFIX_DEPTH`] segments; the empty prefix for keys without one.
pub fn prefix_of(key: &str) -> &str {
    let Some(last) = key.rfind('/') else {
        return "";
    };
    let folder = &key[..=last];
    match folder.match_indices('/').nth(PREFIX_DEPTH - 1) {
        Some((i, _)) => &folder[..=i],
        None => folder,
    }
}

/// The day of `ms` since the Unix epoch.
pub fn day_of(ms: i64) -> i64 {
    ms.div_euclid(DAY_MS)
}

/// One prefix's statistics. Days are counted since the Unix epoch; the
/// per-day series are rings indexed by `day % KEPT_DAYS`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrefixStats {
    /// The newest day the series hold (today, as far as this prefix knows).
    day: i64,
    /// Objects alive now, and how many of them are mature.
    live: f64,
    mature: f64,
    /// Objects that become mature on day `m`, at `m % (MATURE_DAYS + 1)`,
    /// for the days after `day`.
    maturing: Vec<f64>,
    reads: Vec<f64>,
    mature_reads: Vec<f64>,
    object_days: Vec<f64>,
    mature_object_days: Vec<f64>,
    /// Per day of the earlier read, per idle step.
    at_risk: Vec<[f64; IDLE_STEPS]>,
    follows: Vec<[f64; IDLE_STEPS]>,
}

fn ring(day: i64) -> usize {
    day.rem_euclid(KEPT_DAYS) as usize
}

fn maturing_slot(day: i64) -> usize {
    day.rem_euclid(MATURE_DAYS + 1) as usize
}

fn is_mature(created_ms: i64, at_ms: i64) -> bool {
    at_ms >= created_ms + MATURE_DAYS * DAY_MS
}

impl PrefixStats {
    /// Empty statistics as of `now_ms`.
    pub fn new(now_ms: i64) -> Self {
        let kept = KEPT_DAYS as usize;
        PrefixStats {
            day: day_of(now_ms),
            live: 0.0,
            mature: 0.0,
            maturing: vec![0.0; MATURE_DAYS as usize + 1],
            reads: vec![0.0; kept],
            mature_reads: vec![0.0; kept],
            object_days: vec![0.0; kept],
            mature_object_days: vec![0.0; kept],
            at_risk: vec![[0.0; IDLE_STEPS]; kept],
            follows: vec![[0.0; IDLE_STEPS]; kept],
        }
    }

    /// Moves today forward to the day of `now_ms`; the days in between had
    /// no reads and the live objects of now. Never moves back.
    pub fn advance(&mut self, now_ms: i64) {
        let to = day_of(now_ms);
        if to <= self.day {
            return;
        }
        // Days too old for a slot only hand over their maturing objects
        // (the ring of those holds the 31 days after `day`, so 31 suffice).
        let first_slot = (to - KEPT_DAYS + 1).max(self.day + 1);
        for d in self.day + 1..first_slot.min(self.day + 2 + MATURE_DAYS) {
            self.mature_on(d);
        }
        for d in first_slot..=to {
            self.mature_on(d);
            let i = ring(d);
            self.reads[i] = 0.0;
            self.mature_reads[i] = 0.0;
            self.object_days[i] = self.live;
            self.mature_object_days[i] = self.mature;
            self.at_risk[i] = [0.0; IDLE_STEPS];
            self.follows[i] = [0.0; IDLE_STEPS];
        }
        self.day = to;
    }

    fn mature_on(&mut self, d: i64) {
        let m = maturing_slot(d);
        self.mature += self.maturing[m];
        self.maturing[m] = 0.0;
    }

    /// Whether day `d` is still in the series.
    fn kept(&self, d: i64) -> bool {
        d <= self.day && d > self.day - KEPT_DAYS
    }

    /// An object of this prefix, first seen at `created_ms`, appeared.
    pub fn created(&mut self, created_ms: i64) {
        self.advance(created_ms);
        self.live += 1.0;
        let (c, m) = (day_of(created_ms), day_of(created_ms) + MATURE_DAYS);
        for d in c.max(self.day - KEPT_DAYS + 1)..=self.day {
            self.object_days[ring(d)] += 1.0;
            if d >= m {
                self.mature_object_days[ring(d)] += 1.0;
            }
        }
        if m <= self.day {
            self.mature += 1.0;
        } else {
            self.maturing[maturing_slot(m)] += 1.0;
        }
    }

    /// An object first seen at `created_ms` was deleted at `at_ms`.
    pub fn deleted(&mut self, created_ms: i64, at_ms: i64) {
        self.advance(at_ms);
        self.live = (self.live - 1.0).max(0.0);
        let m = day_of(created_ms) + MATURE_DAYS;
        if m <= self.day {
            self.mature = (self.mature - 1.0).max(0.0);
        } else {
            let slot = &mut self.maturing[maturing_slot(m)];
            *slot = (*slot - 1.0).max(0.0);
        }
    }

    /// A read at `at_ms` of an object first seen at `created_ms`, whose
    /// earlier reads within [`LOOKBACK_MS`] were at `before` (ascending,
    /// none later than `at_ms`).
    pub fn read(&mut self, created_ms: i64, at_ms: i64, before: &[i64]) {
        self.advance(at_ms);
        let d = day_of(at_ms);
        if self.kept(d) {
            let i = ring(d);
            self.reads[i] += 1.0;
            if is_mature(created_ms, at_ms) {
                self.mature_reads[i] += 1.0;
                // At risk at every idle step until a read comes sooner.
                for n in &mut self.at_risk[i] {
                    *n += 1.0;
                }
            }
        }
        for (j, &p) in before.iter().enumerate() {
            if !is_mature(created_ms, p) || !self.kept(day_of(p)) {
                continue;
            }
            let i = ring(day_of(p));
            let last = j + 1 == before.len();
            let next = before.get(j + 1).copied().unwrap_or(at_ms);
            for (step, &days) in IDLE_STEPS_DAYS.iter().enumerate() {
                let idle = (days * DAY_MS as f64) as i64;
                let follow = (FOLLOW_DAYS * DAY_MS as f64) as i64;
                // This read ends `p`'s idle time short of the step.
                if last && at_ms - p < idle {
                    self.at_risk[i][step] -= 1.0;
                }
                // `p` stayed idle for the step, and this read follows it.
                if next - p >= idle && at_ms - p >= idle && at_ms - p <= idle + follow {
                    self.follows[i][step] += 1.0;
                }
            }
        }
    }

    /// The prior on the day of `now_ms`, from the complete days before it:
    /// from the mature objects when they are enough, else (provisional: it
    /// may only raise the default prior) from all objects; `None` while the
    /// prefix has too few object-days for either.
    pub fn prior(&mut self, now_ms: i64) -> Option<PrefixPrior> {
        self.advance(now_ms);
        let today = self.day;
        let sum = |series: &[f64], from: i64, to: i64| -> f64 {
            (from..to).map(|d| series[ring(d)]).sum()
        };
        let window = today - WINDOW_DAYS;
        let object_days = sum(&self.mature_object_days, window, today);
        if object_days < MIN_OBJECT_DAYS {
            let all_days = sum(&self.object_days, window, today);
            return (all_days >= MIN_OBJECT_DAYS).then(|| PrefixPrior {
                reads_30d: sum(&self.reads, window, today) / all_days * 30.0,
                followups: [0.0; IDLE_STEPS],
                provisional: true,
            });
        }
        let reads_30d = sum(&self.mature_reads, window, today) / object_days * 30.0;
        let to = today - FOLLOW_LAG_DAYS;
        let mut followups = [0.0; IDLE_STEPS];
        for (step, f) in followups.iter_mut().enumerate() {
            let (at_risk, follows) = (to - WINDOW_DAYS..to).fold((0.0, 0.0), |(r, f), d| {
                (
                    r + self.at_risk[ring(d)][step],
                    f + self.follows[ring(d)][step],
                )
            });
            *f = follows / (at_risk.max(0.0) + 1.0);
        }
        Some(PrefixPrior {
            reads_30d,
            followups,
            provisional: false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: i64 = DAY_MS;

    #[test]
    fn prefixes_are_folders_cut_at_a_depth() {
        assert_eq!(prefix_of("reports/q1.csv"), "reports/");
        assert_eq!(prefix_of("a.bin"), "");
        assert_eq!(prefix_of("a/b/c/d/e/f.bin"), "a/b/c/d/");
        assert_eq!(prefix_of("a/b/"), "a/b/");
    }

    /// `n` objects created on day 0, each read every `every` days.
    fn steady(n: usize, every: i64, until_day: i64) -> PrefixStats {
        let mut s = PrefixStats::new(0);
        for _ in 0..n {
            s.created(0);
        }
        let mut last: Vec<Option<i64>> = vec![None; n];
        for day in (every..until_day).step_by(every as usize) {
            for prev in &mut last {
                let at = day * D;
                let before: Vec<i64> = prev
                    .filter(|&p| at - p <= LOOKBACK_MS)
                    .into_iter()
                    .collect();
                s.read(0, at, &before);
                *prev = Some(at);
            }
        }
        s
    }

    #[test]
    fn the_read_rate_of_mature_objects_over_the_window() {
        // Ten objects read every 3 days: 10 reads per 30 days each.
        let mut s = steady(10, 3, 120);
        let p = s.prior(120 * D).unwrap();
        assert!(!p.provisional);
        assert!((p.reads_30d - 10.0).abs() < 0.6, "{p:?}");
        // Each read is followed by the next one, three days on.
        assert!(p.followups[0] > 0.5 && p.followups[0] < 1.5, "{p:?}");
    }

    #[test]
    fn young_prefixes_are_provisional_and_empty_ones_unknown() {
        let mut s = PrefixStats::new(0);
        assert_eq!(s.prior(5 * D), None);
        for _ in 0..20 {
            s.created(0);
        }
        s.read(0, D, &[]);
        let p = s.prior(5 * D).unwrap();
        assert!(p.provisional, "{p:?}");
        // Deleted before they matured: unknown again once the window passes.
        for _ in 0..20 {
            s.deleted(0, 6 * D);
        }
        assert_eq!(s.prior(60 * D), None);
    }

    #[test]
    fn bursts_stop_following_up_after_an_idle_day() {
        // Objects created on day 0; on day 40 + i, object i is read 20
        // times, an hour apart.
        let mut s = PrefixStats::new(0);
        for _ in 0..30 {
            s.created(0);
        }
        for i in 0..30 {
            let mut before: Vec<i64> = Vec::new();
            for r in 0..20 {
                let at = (40 + i) * D + r * D / 24;
                s.read(0, at, &before);
                before.push(at);
            }
        }
        let p = s.prior(80 * D).unwrap();
        // Right after a read, about half a burst follows; a day later, none.
        assert!(p.followups[0] > 5.0, "{p:?}");
        assert!(p.followups[2] < 0.1, "{p:?}");
    }

    #[test]
    fn survives_a_round_trip_through_json() {
        let mut s = steady(3, 2, 50);
        let back: PrefixStats = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        let mut back = back;
        assert_eq!(back.prior(50 * D), s.prior(50 * D));
    }
}
