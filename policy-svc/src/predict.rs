//! Prediction of an object's reads (design §6): its own read history
//! shrunk toward a prior, plus the reads that tend to follow a recent read.
//!
//! - Long-run rate, per day: `(n / (1 + β) + λ0 k) / (A + k)`, where `n`
//!   is the object's lifetime read count (less the share that were
//!   follow-ups of a burst), `A` its age in days, `λ0` the prior rate and
//!   `k` the prior's weight in days (a gamma-Poisson posterior mean). Once
//!   the object has gone unread for several of its mean gaps, the recent
//!   rate caps it: the same with `c30`, the count decayed with a 30-day
//!   half-life, over that decay's exposure `E`. Before any read, the
//!   recent rate alone.
//! - Bursts: `β(idle)` more reads, where `idle` is the time since the
//!   object's last read and `β(a)` the reads its prefix saw follow a read
//!   after `a` without another one ([`crate::prefix`]): a read in a bursty
//!   prefix predicts the rest of its burst, and a day of quiet its end.
//!   Before its prefix has seen bursts, an object's own run (its reads
//!   each within a day of the next) predicts as many more reads as it has
//!   had, until a day of quiet ([`own_followups`]).
//!
//! The prior comes from the object's prefix when known (its neighbours'
//! recent read rate, [`PrefixPrior`]); otherwise a default that fades as
//! the object ages without reads.

use crate::placement::CostParams;

const DAY: f64 = 86_400_000.0;

/// Idle times after a read at which the prefix counts follow-ups, days.
pub const IDLE_STEPS_DAYS: [f64; IDLE_STEPS] = [0.0, 0.5, 1.0, 2.0];
/// How many idle steps there are.
pub const IDLE_STEPS: usize = 4;

/// What an object's prefix says about it, from its neighbours' recent past.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PrefixPrior {
    /// Reads per object and 30 days in the prefix.
    pub reads_30d: f64,
    /// Reads that followed a read of the same object within a few days,
    /// per read, after each idle time of [`IDLE_STEPS_DAYS`] without one.
    pub followups: [f64; IDLE_STEPS],
    /// From young objects only: it may raise the default prior, not lower it.
    pub provisional: bool,
}

/// An object's own read history: decayed counts and its lifetime totals.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Evidence {
    /// Reads decayed with a 30-day half-life, as of `ts_ms`.
    pub c30: f64,
    pub ts_ms: i64,
    /// Reads in the object's lifetime (not decayed).
    pub reads: f64,
    /// The newest read, if any.
    pub last_read_ms: Option<i64>,
    /// Reads in the object's current run: the newest and those before it
    /// each within [`RUN_GAP_MS`] of the next, among its recent reads
    /// ([`run_length`]).
    pub run: u32,
}

/// Reads closer than this to each other belong to one run.
pub const RUN_GAP_MS: i64 = 86_400_000;

/// The reads in the run that ends with the newest of `recent` (read times,
/// oldest first): 0 without reads.
pub fn run_length<I>(recent: I) -> u32
where
    I: IntoIterator<Item = i64>,
    I::IntoIter: DoubleEndedIterator,
{
    let mut reads = recent.into_iter().rev();
    let Some(mut next) = reads.next() else {
        return 0;
    };
    let mut run = 1;
    for t in reads {
        if next - t > RUN_GAP_MS {
            break;
        }
        run += 1;
        next = t;
    }
    run
}

fn decay(ms: i64, half_life_days: f64) -> f64 {
    0.5f64.powf(ms.max(0) as f64 / DAY / half_life_days)
}

impl Evidence {
    /// Counts a read at `ts_ms` (a late read weighs by its age).
    pub fn observe(&mut self, ts_ms: i64) {
        if ts_ms >= self.ts_ms {
            let dt = ts_ms - self.ts_ms;
            self.c30 = self.c30 * decay(dt, 30.0) + 1.0;
            self.ts_ms = ts_ms;
        } else {
            self.c30 += decay(self.ts_ms - ts_ms, 30.0);
        }
        self.reads += 1.0;
        self.last_read_ms = Some(self.last_read_ms.map_or(ts_ms, |t| t.max(ts_ms)));
    }

    /// The 30-day decayed count at `now_ms`.
    pub fn c30_at(&self, now_ms: i64) -> f64 {
        self.c30 * decay(now_ms - self.ts_ms, 30.0)
    }
}

/// The reads a prefix's follow-ups predict after `idle_days` without a
/// read: linear between the steps of [`IDLE_STEPS_DAYS`], the last one's
/// beyond it.
pub fn followups_after(followups: &[f64; IDLE_STEPS], idle_days: f64) -> f64 {
    let steps = IDLE_STEPS_DAYS;
    for i in 1..IDLE_STEPS {
        if idle_days < steps[i] {
            let share = ((idle_days - steps[i - 1]) / (steps[i] - steps[i - 1])).clamp(0.0, 1.0);
            return followups[i - 1] + share * (followups[i] - followups[i - 1]);
        }
    }
    followups[IDLE_STEPS - 1]
}

/// The reads an object's own run predicts after `idle_days` without a
/// read: as many more as the run has had (a run of one predicts none),
/// fading to none once the object has been quiet for as long as a run
/// allows between reads. This is what a prefix's follow-ups say once its
/// bursts are known; the object's own run says it before, for the first
/// bursts of a prefix.
pub fn own_followups(run: u32, idle_days: f64) -> f64 {
    let fade = (1.0 - idle_days * DAY / RUN_GAP_MS as f64).max(0.0);
    f64::from(run.saturating_sub(1)) * fade
}

/// An object counts as cooled off, and its lifetime rate gives way to its
/// recent one, once it has gone unread for this many of its mean gaps
/// between steady reads: a Poisson reader does so with odds e^-5 (0.7 %).
const COOLED_GAPS: f64 = 5.0;

/// Predicted reads per 30 days over the decision horizon.
///
/// The steady rate is the lifetime one (reads since first seen, a
/// gamma-Poisson posterior over the object's whole age): a steady reader's
/// estimate then neither swings between its reads nor forgets a quiet year
/// after a burst. Once the object has been unread for [`COOLED_GAPS`] of
/// its mean gaps, its behaviour has changed and the recent rate (the
/// 30-day decayed count) caps it.
pub fn reads_30d(
    evidence: &Evidence,
    first_seen_ms: i64,
    now_ms: i64,
    prior: Option<PrefixPrior>,
    params: &CostParams,
) -> f64 {
    let age = (now_ms - first_seen_ms).max(0) as f64 / DAY;
    let c30 = evidence.c30_at(now_ms);
    let exposure = 30.0 / std::f64::consts::LN_2 * (1.0 - 0.5f64.powf(age / 30.0));
    let default = params.prior_reads_30d / 30.0 * 0.5f64.powf(age / params.prior_days.max(1e-9));
    // The prefix's steady rate: its reads less their follow-ups.
    let (prior_per_day, followups) = match prior {
        Some(p) if p.provisional => ((p.reads_30d / 30.0).max(default), p.followups),
        Some(p) => (p.reads_30d / (1.0 + p.followups[0]) / 30.0, p.followups),
        None => (default, [0.0; IDLE_STEPS]),
    };
    let k = params.prior_weight_days.max(1e-9);
    // Reads that were follow-ups of a burst are predicted by the burst term,
    // not as a steady rate: the steady part of a count is count / (1 + β),
    // β the follow-ups per read.
    let per_read = followups[0];
    let recent = (c30 / (1.0 + per_read) + prior_per_day * k) / (exposure + k);
    let per_day = match evidence.last_read_ms {
        None => recent,
        Some(last) => {
            let lifetime = (evidence.reads / (1.0 + per_read) + prior_per_day * k) / (age + k);
            let idle = (now_ms - last).max(0) as f64 / DAY;
            if idle * lifetime > COOLED_GAPS {
                lifetime.min(recent)
            } else {
                lifetime
            }
        }
    };
    let burst = evidence.last_read_ms.map_or(0.0, |last| {
        let idle = (now_ms - last).max(0) as f64 / DAY;
        followups_after(&followups, idle).max(own_followups(evidence.run, idle))
    });
    let horizon = params.horizon_days.max(1.0);
    (per_day * horizon + burst) * 30.0 / horizon
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: i64 = 86_400_000;

    #[test]
    fn followups_fall_with_the_idle_time_between_steps() {
        let f = [10.0, 6.0, 2.0, 1.0];
        assert_eq!(followups_after(&f, 0.0), 10.0);
        assert!((followups_after(&f, 0.25) - 8.0).abs() < 1e-9);
        assert!((followups_after(&f, 1.5) - 1.5).abs() < 1e-9);
        assert_eq!(followups_after(&f, 30.0), 1.0);
    }

    #[test]
    fn evidence_decays_and_takes_late_reads() {
        let mut e = Evidence::default();
        e.observe(0);
        e.observe(30 * D);
        assert!((e.c30 - 1.5).abs() < 1e-9);
        e.observe(0);
        assert!((e.c30 - 2.0).abs() < 1e-9);
        assert!((e.c30_at(60 * D) - 1.0).abs() < 1e-9);
        assert_eq!((e.reads, e.last_read_ms), (3.0, Some(30 * D)));
    }

    #[test]
    fn own_reads_shrink_toward_the_prefix_prior() {
        let params = CostParams::default();
        let cold = Some(PrefixPrior {
            reads_30d: 0.0,
            followups: [0.0; IDLE_STEPS],
            provisional: false,
        });
        let fresh = Evidence::default();
        assert_eq!(reads_30d(&fresh, 0, 0, cold, &params), 0.0);
        // A steady read a month for a year: about one predicted.
        let mut monthly = Evidence::default();
        for m in 0..12 {
            monthly.observe(m * 30 * D);
        }
        let r = reads_30d(&monthly, 0, 345 * D, cold, &params);
        assert!((0.5..1.5).contains(&r), "{r}");
        // A read in a bursty prefix predicts its follow-ups.
        let bursty = Some(PrefixPrior {
            reads_30d: 0.1,
            followups: [20.0, 10.0, 1.0, 0.1],
            provisional: false,
        });
        let mut one = Evidence::default();
        one.observe(400 * D);
        assert!(reads_30d(&one, 0, 400 * D, bursty, &params) > 5.0);
        assert!(reads_30d(&one, 0, 400 * D, cold, &params) < 1.0);
    }

    #[test]
    fn a_steady_reader_holds_its_rate_between_reads_and_a_burst_ends() {
        let params = CostParams::default();
        let mut monthly = Evidence::default();
        for m in 1..=12 {
            monthly.observe(m * 30 * D);
        }
        // Just after a read and just before the next: the same prediction
        // within 10 % (the 30-day decayed count alone swings twofold).
        let after = reads_30d(&monthly, 0, 360 * D + D / 2, None, &params);
        let before = reads_30d(&monthly, 0, 389 * D, None, &params);
        assert!((0.8..1.2).contains(&after), "{after}");
        assert!((after - before).abs() < 0.1 * after, "{after} {before}");
        // Thirty reads in three days after a quiet year, in a prefix whose
        // bursts end after a day of quiet: two days after the last read,
        // far below a read a month.
        let bursty = Some(PrefixPrior {
            reads_30d: 0.1,
            followups: [15.0, 6.0, 0.2, 0.0],
            provisional: false,
        });
        let mut burst = Evidence::default();
        for i in 0..30 {
            burst.observe(400 * D + i * D / 10);
        }
        assert!(reads_30d(&burst, 0, 403 * D, bursty, &params) > 5.0);
        let later = reads_30d(&burst, 0, 405 * D, bursty, &params);
        assert!(later < 0.3, "{later}");
        // Unread for a long while after a steady year: the recent rate.
        let cooled = reads_30d(&monthly, 0, 700 * D, None, &params);
        assert!(cooled < 0.05, "{cooled}");
    }

    #[test]
    fn a_run_is_the_reads_each_within_a_day_of_the_next() {
        assert_eq!(run_length([]), 0);
        assert_eq!(run_length([5 * D]), 1);
        // The newest three are a run; the day-and-a-bit gap ends it.
        let reads = [0, D + D / 10, 2 * D + D / 5, 3 * D, 3 * D + 1];
        assert_eq!(run_length(reads), 3);
        assert_eq!(run_length([0, D / 2, D, 3 * D / 2]), 4);
    }

    #[test]
    fn an_objects_own_run_predicts_its_burst_where_the_prefix_knows_none() {
        let params = CostParams::default();
        // A prefix that has seen no bursts yet, and an object read eight
        // times in a few hours after a quiet year.
        let quiet = Some(PrefixPrior {
            reads_30d: 0.05,
            followups: [0.0; IDLE_STEPS],
            provisional: false,
        });
        let mut burst = Evidence::default();
        let times: Vec<i64> = (0..8).map(|i| 400 * D + i * D / 20).collect();
        for &t in &times {
            burst.observe(t);
        }
        burst.run = run_length(times.iter().copied());
        assert_eq!(burst.run, 8);
        let last = times[7];
        let now = last + D / 20;
        // Against the same reads counted as no run: about seven reads more
        // over the horizon (the run fades by 5 % in the hour since).
        let mut single = burst;
        single.run = 1;
        let lone = reads_30d(&single, 0, now, quiet, &params);
        let during = reads_30d(&burst, 0, now, quiet, &params);
        let more = (during - lone) * params.horizon_days / 30.0;
        assert!((6.0..7.0).contains(&more), "{more}");
        // A day of quiet ends the run.
        let after = reads_30d(&burst, 0, last + D + D / 20, quiet, &params);
        let lone_after = reads_30d(&single, 0, last + D + D / 20, quiet, &params);
        assert_eq!(after, lone_after);
    }
}
