//! The policies the simulator compares, each replayed over one object's
//! lifetime: Strata (the daemon's cost decision, [`placement::evaluate`]),
//! always-hot, fixed age rules, S3 Intelligent-Tiering's rule, and the
//! offline optimum ([`super::optimum`]).

use strata_runtime::tiers::Tier;

use crate::{
    placement::{self, CostParams, CostView},
    predict::{self, Evidence, PrefixPrior},
    presets,
    store::RECENT_READS_KEPT,
};

use super::{
    ledger::{Account, Ledger},
    optimum::{self, Step},
    trace::Object,
};

const DAY_MS: i64 = 86_400_000;

/// A policy under comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    Strata,
    AlwaysHot,
    Age,
    IntelligentTiering,
    Optimum,
}

impl Policy {
    /// Every policy, in report order.
    pub const ALL: [Policy; 5] = [
        Policy::Strata,
        Policy::AlwaysHot,
        Policy::Age,
        Policy::IntelligentTiering,
        Policy::Optimum,
    ];

    /// The policy's name in reports and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Policy::Strata => "strata",
            Policy::AlwaysHot => "always-hot",
            Policy::Age => "age-30-90-180",
            Policy::IntelligentTiering => "intelligent-tiering",
            Policy::Optimum => "optimum",
        }
    }
}

/// The tiers a replay prices with, and what the baselines take of them.
pub struct Setup<'a> {
    pub tiers: &'a [Tier],
    /// The tiers that do not auto-tier, fastest first: the age rules' and
    /// Intelligent-Tiering's ladder.
    plain: Vec<usize>,
    /// S3 Intelligent-Tiering's rule priced on the first plain tiers, as the
    /// one tier its baseline keeps every object on.
    rule: [Tier; 1],
}

impl<'a> Setup<'a> {
    pub fn new(tiers: &'a [Tier]) -> Self {
        let mut plain: Vec<usize> = (0..tiers.len())
            .filter(|&i| tiers[i].auto_tiering.is_none())
            .collect();
        if plain.is_empty() {
            plain = (0..tiers.len()).collect();
        }
        let lower: Vec<&Tier> = plain.iter().skip(1).take(2).map(|&i| &tiers[i]).collect();
        Setup {
            tiers,
            rule: [presets::intelligent_tiering_rule(&tiers[plain[0]], &lower)],
            plain,
        }
    }

    /// The `n`th plain tier, or the last when there are fewer.
    fn plain(&self, n: usize) -> usize {
        self.plain[n.min(self.plain.len() - 1)]
    }
}

/// Replays `obj` (key `key`) under `policy`, charging `ledger`; the trace
/// ends at `end_ms`. `prior` gives Strata its prefix prior at a time.
#[allow(clippy::too_many_arguments)]
pub fn run(
    policy: Policy,
    obj: &Object,
    key: &str,
    setup: &Setup<'_>,
    params: &CostParams,
    end_ms: i64,
    prior: &dyn Fn(i64) -> Option<PrefixPrior>,
    ledger: &mut Ledger,
) {
    let slo = params.slo_ms(key);
    let end = obj.deleted_ms.unwrap_or(end_ms);
    let deleted = obj.deleted_ms.is_some();
    // Intelligent-Tiering's objects are written to it and stay there.
    let tiers = match policy {
        Policy::IntelligentTiering => &setup.rule[..],
        _ => setup.tiers,
    };
    let mut acct = Account::open(tiers, ledger, obj.size, slo, obj.created_ms, obj.put);
    match policy {
        Policy::Strata => strata(&mut acct, obj, key, params, end, prior),
        Policy::AlwaysHot | Policy::IntelligentTiering => {
            for &(t, bytes) in &obj.reads {
                acct.read(t, bytes);
            }
        }
        Policy::Age => {
            let last = setup.plain(usize::MAX);
            let rules = [(30, setup.plain(1)), (90, setup.plain(2)), (180, last)];
            let mut reads = obj.reads.iter().peekable();
            for (days, to) in rules {
                let at = obj.created_ms + days * DAY_MS;
                while let Some(&&(t, bytes)) = reads.peek().filter(|r| r.0 < at) {
                    acct.read(t, bytes);
                    reads.next();
                }
                if at < end {
                    acct.move_to(at, to);
                }
            }
            for &(t, bytes) in reads {
                acct.read(t, bytes);
            }
        }
        Policy::Optimum => {
            let eligible: Vec<bool> = tiers
                .iter()
                .map(|t| slo.is_none_or(|s| t.first_byte_ms <= s))
                .collect();
            let (steps, _) = optimum::plan(obj, tiers, &eligible, end, deleted);
            for step in steps {
                match step {
                    Step::Move { at_ms, to } => acct.move_to(at_ms, to),
                    Step::Read { at_ms, bytes } => acct.read(at_ms, bytes),
                }
            }
        }
    }
    acct.close(end, deleted);
}

/// Strata: the daemon's decision, evaluated at creation, after each read
/// and whenever the evaluation asks to look again.
fn strata(
    acct: &mut Account<'_>,
    obj: &Object,
    key: &str,
    params: &CostParams,
    end: i64,
    prior: &dyn Fn(i64) -> Option<PrefixPrior>,
) {
    let mut evidence = Evidence {
        ts_ms: obj.created_ms,
        ..Evidence::default()
    };
    let mut last_move: Option<i64> = None;
    // Bytes per read as the daemon counts them: the mean of the reads so
    // far, the whole object before any.
    let mut bytes_per_read = obj.size;
    let mut bytes_read: u64 = 0;
    // The reads so far: the daemon keeps the last RECENT_READS_KEPT.
    let mut seen = 0usize;
    let mut decide =
        |acct: &mut Account<'_>, evidence: &Evidence, seen: usize, bytes: u64, now: i64| {
            let reads_span_days = placement::reads_span_days(recent_reads(obj, seen));
            let view = CostView {
                key,
                size: obj.size,
                tier: acct.tier,
                first_seen_ms: obj.created_ms,
                tier_since_ms: acct.since_ms,
                last_move_ms: last_move,
                last_read_ms: evidence.last_read_ms,
                reads_seen: evidence.reads,
                reads_span_days,
                reads_30d: predict::reads_30d(evidence, obj.created_ms, now, prior(now), params),
                bytes_per_read: bytes,
                pinned: None,
            };
            let eval = placement::evaluate(&view, acct.tiers, params, now);
            if let Some(to) = eval.target {
                acct.move_to(now, to);
                last_move = Some(now);
                // The daemon decides again once the move is done and the
                // minimum residency over.
                return Some(now + ((params.min_residency_days * DAY_MS as f64) as i64).max(1));
            }
            eval.next_due_ms.map(|d| d.max(now + 1))
        };
    let mut due = decide(acct, &evidence, seen, bytes_per_read, obj.created_ms);
    for &(t, bytes) in &obj.reads {
        while let Some(d) = due.filter(|&d| d < t) {
            due = decide(acct, &evidence, seen, bytes_per_read, d);
        }
        acct.read(t, bytes);
        evidence.observe(t);
        seen += 1;
        evidence.run = predict::run_length(recent_reads(obj, seen));
        bytes_read = bytes_read.saturating_add(bytes);
        bytes_per_read = bytes_read / seen as u64;
        due = decide(acct, &evidence, seen, bytes_per_read, t);
    }
    while let Some(d) = due.filter(|&d| d < end) {
        due = decide(acct, &evidence, seen, bytes_per_read, d);
    }
}

/// The times of the reads the daemon would hold of `obj` after its first
/// `seen` reads: the last [`RECENT_READS_KEPT`], oldest first.
fn recent_reads(
    obj: &Object,
    seen: usize,
) -> impl DoubleEndedIterator<Item = i64> + ExactSizeIterator + Clone + '_ {
    obj.reads[seen.saturating_sub(RECENT_READS_KEPT)..seen]
        .iter()
        .map(|&(t, _)| t)
}
