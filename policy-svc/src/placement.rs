//! The cost-based decision (design §6), a pure function shared by the daemon
//! (`--rule cost`) and the simulator: predict reads, price every eligible
//! tier, and move to the best one only when the saving over the horizon
//! repays the move's one-time cost.
//!
//! Guards against churn: a tier must beat the current one by `hysteresis`
//! (a fraction of the current monthly cost) and repay the move within the
//! horizon, and an object stays `min_residency_days` after a move. The
//! latency SLO of the key's prefix and pins are hard constraints.

use std::fmt::Write as _;

use strata_runtime::tiers::{Tier, TierConfig};

use crate::cost::{self, MONTH_DAYS};

/// Milliseconds in a day.
const DAY: f64 = 86_400_000.0;

/// Knobs of the cost decision.
#[derive(Debug, Clone)]
pub struct CostParams {
    /// Days over which a move's saving must repay its one-time cost.
    pub horizon_days: f64,
    /// A better tier must save at least this fraction of the current
    /// monthly cost (hysteresis: no ping-pong around a break-even point).
    pub hysteresis: f64,
    /// Days an object stays after a move before it may move again by choice.
    pub min_residency_days: f64,
    /// Objects smaller than this never move.
    pub min_object_bytes: u64,
    /// Longest-prefix latency SLOs: (key prefix, max first-byte ms).
    pub slos: Vec<(String, f64)>,
    /// The SLO of keys no prefix matches; `None`: any latency.
    pub default_slo_ms: Option<f64>,
    /// Longest-prefix pins: (key prefix, tier name).
    pub pins: Vec<(String, String)>,
    /// Reads per 30 days assumed of a new object before evidence arrives;
    /// it fades as the object ages without reads.
    pub prior_reads_30d: f64,
    /// Days over which the prior halves its weight.
    pub prior_days: f64,
    /// Weight of the prior against an object's own reads, in days of
    /// observation (see [`crate::predict`]).
    pub prior_weight_days: f64,
    /// Days between re-evaluations of an object that stays.
    pub recheck_days: f64,
}

impl Default for CostParams {
    fn default() -> Self {
        CostParams {
            horizon_days: 60.0,
            hysteresis: 0.3,
            min_residency_days: 3.0,
            min_object_bytes: 0,
            slos: Vec::new(),
            default_slo_ms: None,
            pins: Vec::new(),
            prior_reads_30d: 1.0,
            prior_days: 1.0,
            prior_weight_days: 15.0,
            recheck_days: 2.0,
        }
    }
}

impl CostParams {
    /// The SLO (max first-byte ms) for `key`, longest prefix first.
    pub fn slo_ms(&self, key: &str) -> Option<f64> {
        longest_prefix(&self.slos, key)
            .copied()
            .or(self.default_slo_ms)
    }

    /// The tier `key` is pinned to by prefix.
    pub fn pin(&self, key: &str) -> Option<&str> {
        longest_prefix(&self.pins, key).map(String::as_str)
    }

    /// Fails for a pin to a tier that is not among `tiers` (a pin that
    /// would otherwise never apply).
    pub fn check_pins(&self, tiers: &[&str]) -> anyhow::Result<()> {
        match self
            .pins
            .iter()
            .find(|(_, tier)| !tiers.contains(&tier.as_str()))
        {
            Some((prefix, tier)) => anyhow::bail!(
                "--pins {prefix:?}={tier:?}: no tier is named {tier:?} (tiers: {})",
                tiers.join(", ")
            ),
            None => Ok(()),
        }
    }
}

fn longest_prefix<'a, T>(rules: &'a [(String, T)], key: &str) -> Option<&'a T> {
    rules
        .iter()
        .filter(|(prefix, _)| key.starts_with(prefix.as_str()))
        .max_by_key(|(prefix, _)| prefix.len())
        .map(|(_, v)| v)
}

/// Parses `prefix=value` pairs separated by commas (flags `--slo`, `--pin`).
pub fn parse_pairs(raw: &str) -> anyhow::Result<Vec<(String, String)>> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|pair| {
            pair.split_once('=')
                .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
                .ok_or_else(|| anyhow::anyhow!("{pair:?} is not prefix=value"))
        })
        .collect()
}

/// What the decision knows of one object.
#[derive(Debug, Clone, PartialEq)]
pub struct CostView<'a> {
    pub key: &'a str,
    pub size: u64,
    /// Index of its tier in the tier list.
    pub tier: usize,
    pub first_seen_ms: i64,
    pub tier_since_ms: i64,
    pub last_move_ms: Option<i64>,
    /// Its last read, if it has been read.
    pub last_read_ms: Option<i64>,
    /// Reads seen in its lifetime.
    pub reads_seen: f64,
    /// Days from the oldest to the newest of its recent reads, when it has
    /// at least three; else 0.
    pub reads_span_days: f64,
    /// Predicted reads per 30 days ([`crate::predict::reads_30d`]).
    pub reads_30d: f64,
    /// Typical bytes per read (the whole object unless ranges were seen).
    pub bytes_per_read: u64,
    /// A pin set on the object itself (index), before prefix pins.
    pub pinned: Option<usize>,
}

/// Why an evaluation ended as it did; [`Evaluation::describe`] words it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Why {
    Pinned,
    TooSmall { min_bytes: u64 },
    NoTierMeetsSlo { slo_ms: f64 },
    BreaksSlo { slo_ms: f64 },
    OnlyEligible,
    NotWorthIt,
    Residency { days: f64 },
    Saves,
}

/// The full evaluation of one object: what the daemon decides on and what
/// `/explain` and a job's reason show.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// Monthly cost on each tier at the predicted reads; `None`: ineligible.
    pub monthly_usd: Vec<Option<f64>>,
    /// The move, if one is decided.
    pub target: Option<usize>,
    /// The best candidate tier (the target, or the one not worth moving to).
    pub candidate: Option<usize>,
    /// The rule that decided (`cost`, `slo`, `pin`, `stay`).
    pub rule: &'static str,
    /// One-time cost of the candidate move (transition + early delete).
    pub one_time_usd: f64,
    pub early_delete_usd: f64,
    /// Monthly saving of the candidate over the current tier.
    pub saving_per_month: f64,
    pub break_even_days: Option<f64>,
    pub why: Why,
    /// When to look again if nothing happens; `None`: only on news.
    pub next_due_ms: Option<i64>,
}

impl Evaluation {
    /// The evaluation in words, for job reasons, `/explain` and logs.
    pub fn describe(&self, obj: &CostView<'_>, tiers: &[Tier]) -> String {
        let name = |i: usize| tiers.get(i).map_or("?", |t| t.name.as_str());
        let current = name(obj.tier);
        let candidate = self.candidate.map_or("-", name);
        let mut s = format!("{:.2} reads/30d predicted", obj.reads_30d);
        if let Some(Some(m)) = self.monthly_usd.get(obj.tier) {
            let _ = write!(s, "; {current} ${m:.6}/month");
        }
        if let Some(Some(m)) = self.candidate.and_then(|c| self.monthly_usd.get(c)) {
            let _ = write!(
                s,
                ", best {candidate} ${m:.6}/month, move ${:.6}",
                self.one_time_usd
            );
        }
        let _ = match self.why {
            Why::Pinned => write!(s, ": pinned to {candidate}"),
            Why::TooSmall { min_bytes } => write!(
                s,
                ": {} bytes < minimum {min_bytes} bytes, never moved",
                obj.size
            ),
            Why::NoTierMeetsSlo { slo_ms } => write!(s, ": no tier meets the {slo_ms} ms SLO"),
            Why::BreaksSlo { slo_ms } => write!(
                s,
                ": {current} breaks the {slo_ms} ms SLO of this prefix; move {current} -> {candidate}"
            ),
            Why::OnlyEligible => write!(s, ": {current} is the only eligible tier"),
            Why::NotWorthIt => write!(
                s,
                ": the saving does not repay the move and one surprise read within the horizon, or is under the hysteresis margin; stay"
            ),
            Why::Residency { days } => {
                write!(
                    s,
                    ": moved {days:.1} days ago, under the minimum residency; stay"
                )
            }
            Why::Saves => write!(
                s,
                ": pays back in {:.1} days; move {current} -> {candidate}",
                self.break_even_days.unwrap_or(f64::INFINITY)
            ),
        };
        s
    }
}

/// Days since `obj` was last read or arrived on its tier, whichever is later:
/// how long an auto-tiering tier has seen it idle.
pub fn idle_days(obj: &CostView<'_>, now_ms: i64) -> f64 {
    let since = obj
        .last_read_ms
        .map_or(obj.tier_since_ms, |r| r.max(obj.tier_since_ms));
    (now_ms - since).max(0) as f64 / DAY
}

/// The expected monthly cost of `obj` on `tiers[i]` at its predicted reads,
/// over the horizon: on its own tier from its idle age there, on any other
/// from arrival ([`cost::expected_monthly_usd`]).
pub fn monthly_on(
    obj: &CostView<'_>,
    tiers: &[Tier],
    i: usize,
    params: &CostParams,
    now_ms: i64,
) -> f64 {
    let tier = &tiers[i];
    let idle = if i == obj.tier {
        idle_days(obj, now_ms)
    } else {
        0.0
    };
    // An auto-tiering tier saves only over long gaps, and an object handed
    // to it pays its fee for good or a copy to leave. Between a steady
    // reader's reads the prediction can call it cooling off; its lifetime
    // average cannot, so a move into the tier is priced at the higher of
    // the two.
    let reads_30d = if tier.auto_tiering.is_some() && i != obj.tier {
        let age_days = ((now_ms - obj.first_seen_ms).max(0) as f64 / DAY).max(1.0);
        obj.reads_30d.max(obj.reads_seen / age_days * MONTH_DAYS)
    } else {
        obj.reads_30d
    };
    cost::expected_monthly_usd(
        tier,
        obj.size,
        reads_30d,
        obj.bytes_per_read,
        idle,
        horizon_days(obj, params),
    )
}

/// [`CostView::reads_span_days`] of an object whose recent read times,
/// oldest first, are `recent`.
pub fn reads_span_days<I>(recent: I) -> f64
where
    I: IntoIterator<Item = i64>,
    I::IntoIter: DoubleEndedIterator + ExactSizeIterator + Clone,
{
    let mut reads = recent.into_iter();
    match (reads.len(), reads.clone().next_back(), reads.next()) {
        (3.., Some(newest), Some(oldest)) => (newest - oldest).max(0) as f64 / DAY,
        _ => 0.0,
    }
}

/// The horizon of `obj`'s decision: the configured one, or as long as it
/// has been read steadily (up to a year), so a reader of long standing is
/// not priced as if its pattern might end in two months.
pub fn horizon_days(obj: &CostView<'_>, params: &CostParams) -> f64 {
    params.horizon_days.max(obj.reads_span_days.min(365.0))
}

/// A tier a move could go to, and what the move would gain and cost.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    to: usize,
    /// Saving over the horizon less the move's one-time cost.
    net: f64,
    saving: f64,
    transition: f64,
    early: f64,
}

/// Evaluates `obj` at `now_ms` against the ordered `tiers`.
pub fn evaluate(
    obj: &CostView<'_>,
    tiers: &[Tier],
    params: &CostParams,
    now_ms: i64,
) -> Evaluation {
    let slo = params.slo_ms(obj.key);
    let eligible = |t: &Tier| slo.is_none_or(|s| t.first_byte_ms <= s);
    let monthly: Vec<Option<f64>> = tiers
        .iter()
        .enumerate()
        .map(|(i, t)| eligible(t).then(|| monthly_on(obj, tiers, i, params, now_ms)))
        .collect();
    let resident_days = (now_ms - obj.tier_since_ms).max(0) as f64 / DAY;
    let current = &tiers[obj.tier];
    let mut eval = Evaluation {
        monthly_usd: monthly,
        target: None,
        candidate: None,
        rule: "stay",
        one_time_usd: 0.0,
        early_delete_usd: 0.0,
        saving_per_month: 0.0,
        break_even_days: Some(0.0),
        why: Why::NotWorthIt,
        next_due_ms: None,
    };
    let monthly = &eval.monthly_usd.clone();
    let cost_of_move = |to: usize| cost::move_usd(current, &tiers[to], obj.size, resident_days);
    let forced = |eval: &mut Evaluation, to: usize, rule: &'static str, why: Why| {
        let (transition, early) = cost_of_move(to);
        eval.target = (to != obj.tier).then_some(to);
        eval.candidate = Some(to);
        eval.rule = if to == obj.tier { "stay" } else { rule };
        eval.one_time_usd = transition + early;
        eval.early_delete_usd = early;
        eval.why = why;
    };
    // Pins first: the object's own, then its prefix's.
    let pin = obj.pinned.or_else(|| {
        params
            .pin(obj.key)
            .and_then(|name| tiers.iter().position(|t| t.name == name))
    });
    if let Some(pin) = pin {
        forced(&mut eval, pin, "pin", Why::Pinned);
        return eval;
    }
    if obj.size < params.min_object_bytes {
        eval.why = Why::TooSmall {
            min_bytes: params.min_object_bytes,
        };
        return eval;
    }
    let cheapest = (0..tiers.len())
        .filter(|&i| monthly[i].is_some())
        .min_by(|&a, &b| {
            monthly[a]
                .partial_cmp(&monthly[b])
                .unwrap_or(std::cmp::Ordering::Equal)
        });
    let Some(cheapest) = cheapest else {
        eval.why = Why::NoTierMeetsSlo {
            slo_ms: slo.unwrap_or_default(),
        };
        return eval;
    };
    let Some(current_monthly) = monthly[obj.tier] else {
        // The current tier breaks the SLO: move now, to the cheapest that meets it.
        let why = Why::BreaksSlo {
            slo_ms: slo.unwrap_or_default(),
        };
        forced(&mut eval, cheapest, "slo", why);
        return eval;
    };
    // The best candidate: the largest net saving over the horizon among the
    // tiers that clear both margins (else the largest net saving, reported
    // as not worth it).
    let horizon_months = horizon_days(obj, params) / MONTH_DAYS;
    let mut best: Option<Candidate> = None;
    let mut best_ok: Option<Candidate> = None;
    for (to, m) in monthly.iter().enumerate() {
        let Some(m) = m else { continue };
        if to == obj.tier {
            continue;
        }
        let saving = current_monthly - m;
        let (transition, early) = cost_of_move(to);
        let net = saving * horizon_months - transition - early;
        // A read while the object is still within the target's minimum
        // storage would most likely bring it back, paying the target's
        // read-out on top of the reads priced above: a move to a tier whose
        // reads cost more must also repay that return at the odds of a read
        // in that window (Poisson at the predicted rate).
        let target = &tiers[to];
        let extra_read = cost::read_usd(target, obj.size) - cost::read_usd(current, obj.size);
        let window_reads = obj.reads_30d.max(0.0) * target.min_storage_days / MONTH_DAYS;
        let surprise = extra_read.max(0.0) * (1.0 - (-window_reads).exp());
        let c = Candidate {
            to,
            net,
            saving,
            transition,
            early,
        };
        // The margin guards against a wrong prediction. An auto-tiering tier
        // prices what the object's reads turn out to be, so a move into one
        // needs none once the object has been read (its lifetime rate, in
        // `monthly_on`, then bounds its price from below). Before that, this
        // decision is what adapts: an object that turns out hot would pay
        // the tier's fee for good, or a copy to leave it.
        let margin_waived = target.auto_tiering.is_some() && obj.reads_seen >= 1.0;
        let clears =
            net > surprise && (margin_waived || saving >= params.hysteresis * current_monthly);
        if best.is_none_or(|b| net > b.net) {
            best = Some(c);
        }
        if clears && best_ok.is_none_or(|b| net > b.net) {
            best_ok = Some(c);
        }
    }
    let Some(c) = best_ok.or(best) else {
        eval.why = Why::OnlyEligible;
        return eval;
    };
    eval.candidate = Some(c.to);
    eval.one_time_usd = c.transition + c.early;
    eval.early_delete_usd = c.early;
    eval.saving_per_month = c.saving;
    eval.break_even_days = cost::break_even_days(c.transition + c.early, c.saving);
    if best_ok.is_none() {
        eval.why = Why::NotWorthIt;
        // Nothing left to gain on the cheapest tier while reads only fade.
        let recheck = now_ms + (params.recheck_days * DAY) as i64;
        eval.next_due_ms = (cheapest != obj.tier || obj.reads_30d > 0.0).then_some(recheck);
        return eval;
    }
    let to = c.to;
    let since_move = obj.last_move_ms.map(|t| (now_ms - t) as f64 / DAY);
    if let Some(days) = since_move.filter(|&d| d < params.min_residency_days) {
        eval.why = Why::Residency { days };
        eval.next_due_ms = obj
            .last_move_ms
            .map(|t| t + (params.min_residency_days * DAY) as i64);
        return eval;
    }
    eval.why = Why::Saves;
    eval.target = Some(to);
    eval.rule = "cost";
    eval
}

/// The daemon's view of the tiers: the evaluation by tier name.
pub fn tier_names(tiers: &TierConfig) -> Vec<&str> {
    tiers.tiers.iter().map(|t| t.name.as_str()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presets;

    const GB: u64 = 1_000_000_000;
    const NOW: i64 = 1000 * 86_400_000;

    fn days(d: f64) -> i64 {
        (d * DAY) as i64
    }

    fn obj(tier: usize, reads_30d: f64) -> CostView<'static> {
        CostView {
            key: "data/x",
            size: GB,
            tier,
            first_seen_ms: NOW - days(400.0),
            tier_since_ms: NOW - days(200.0),
            last_move_ms: None,
            last_read_ms: None,
            reads_seen: 0.0,
            reads_span_days: 0.0,
            reads_30d,
            bytes_per_read: GB,
            pinned: None,
        }
    }

    #[test]
    fn a_steady_reader_is_priced_over_the_span_of_its_reads() {
        // A read a month on Glacier IR: coming back repays its retrieval
        // in about 82 days, past the 60-day horizon.
        let steady = CostView {
            last_read_ms: Some(NOW - days(5.0)),
            reads_seen: 15.0,
            ..obj(2, 1.0)
        };
        assert_eq!(horizon_days(&steady, &instant()), 60.0);
        assert_eq!(target(&steady, &instant()), None);
        // Read so for 14 months: priced over a year, it comes back.
        let long_standing = CostView {
            reads_span_days: reads_span_days((0..15).map(|m| NOW - days(425.0 - 30.0 * m as f64))),
            ..steady
        };
        assert_eq!(horizon_days(&long_standing, &instant()), 365.0);
        assert!(target(&long_standing, &instant()).is_some_and(|t| t < 2));
        // Two reads are no pattern yet, however far apart.
        assert_eq!(reads_span_days([0, days(300.0)]), 0.0);
    }

    fn instant() -> CostParams {
        CostParams {
            default_slo_ms: Some(1000.0),
            ..CostParams::default()
        }
    }

    fn target(o: &CostView<'_>, params: &CostParams) -> Option<usize> {
        evaluate(o, &presets::aws_s3().tiers, params, NOW).target
    }

    #[test]
    fn unread_objects_go_to_the_cheapest_tier_the_slo_allows() {
        assert_eq!(target(&obj(0, 0.0), &instant()), Some(2), "glacier-ir");
        assert_eq!(
            target(&obj(0, 0.0), &CostParams::default()),
            Some(4),
            "deep archive"
        );
        // Read about twice a month: Standard stays cheapest.
        assert_eq!(target(&obj(0, 2.0), &instant()), None);
        // Half a read a month: Standard-IA.
        let loose = CostParams {
            hysteresis: 0.2,
            ..instant()
        };
        assert_eq!(target(&obj(0, 0.5), &loose), Some(1));
        // Under the default 30% margin, a 24% saving is not worth a move.
        assert_eq!(target(&obj(0, 0.5), &instant()), None);
    }

    #[test]
    fn reads_bring_an_object_up_when_the_saving_repays_the_retrieval() {
        assert_eq!(target(&obj(2, 5.0), &instant()), Some(0));
        let e = evaluate(&obj(2, 5.0), &presets::aws_s3().tiers, &instant(), NOW);
        assert_eq!(e.rule, "cost");
        assert!(e.break_even_days.unwrap() < 60.0);
        let words = e.describe(&obj(2, 5.0), &presets::aws_s3().tiers);
        assert!(words.contains("glacier-ir -> standard"), "{words}");
    }

    #[test]
    fn a_move_must_repay_its_one_time_cost_within_the_horizon() {
        // Barely worth it per month, but the retrieval of the move is not
        // repaid over a short horizon.
        let short = CostParams {
            horizon_days: 10.0,
            hysteresis: 0.0,
            ..instant()
        };
        assert_eq!(target(&obj(2, 0.9), &short), None);
        let long = CostParams {
            horizon_days: 365.0,
            ..short
        };
        assert_eq!(target(&obj(2, 0.9), &long), Some(1));
    }

    #[test]
    fn early_delete_charges_keep_young_objects_in_place() {
        // Ten days on Standard-IA (30-day minimum): Glacier IR saves
        // $0.0085/month, but leaving now also pays 20 days of Standard-IA.
        let young = CostView {
            tier_since_ms: NOW - days(10.0),
            ..obj(1, 0.0)
        };
        let tiers = presets::aws_s3().tiers;
        let e = evaluate(&young, &tiers, &instant(), NOW);
        assert_eq!(e.target, None, "{:?}", e.why);
        assert!(e.early_delete_usd > 0.008, "{e:?}");
        let settled = CostView {
            tier_since_ms: NOW - days(40.0),
            ..young
        };
        let e = evaluate(&settled, &tiers, &instant(), NOW);
        assert_eq!(
            (e.target, e.early_delete_usd),
            (Some(2), 0.0),
            "{:?}",
            e.why
        );
    }

    #[test]
    fn small_objects_stay_where_billed_minimums_make_moving_dearer() {
        let small = CostView {
            size: 1000,
            bytes_per_read: 1000,
            ..obj(0, 0.0)
        };
        // 1 KB is billed as 128 KB on IA and Glacier IR: Standard is cheapest.
        assert_eq!(target(&small, &instant()), None);
        let floor = CostParams {
            min_object_bytes: 2 * GB,
            ..instant()
        };
        assert_eq!(target(&obj(0, 0.0), &floor), None);
    }

    #[test]
    fn slo_and_pins_are_hard_constraints() {
        let slo = CostParams {
            slos: vec![("db/".into(), 100.0)],
            ..CostParams::default()
        };
        let db = CostView {
            key: "db/table",
            ..obj(4, 0.0)
        };
        let e = evaluate(&db, &presets::aws_s3().tiers, &slo, NOW);
        assert_eq!((e.target, e.rule), (Some(2), "slo"), "{:?}", e.why);
        assert_eq!(e.monthly_usd[3], None, "glacier flexible is too slow");
        let pinned = CostParams {
            pins: vec![("data/".into(), "standard".into())],
            ..instant()
        };
        assert_eq!(target(&obj(0, 0.0), &pinned), None);
        assert_eq!(target(&obj(3, 0.0), &pinned), Some(0));
        let own_pin = CostView {
            pinned: Some(1),
            ..obj(0, 0.0)
        };
        assert_eq!(target(&own_pin, &instant()), Some(1));
        // A pin to a tier there is not, a typo, is refused, not ignored.
        let aws = presets::aws_s3();
        let names = tier_names(&aws);
        assert!(pinned.check_pins(&names).is_ok());
        let typo = CostParams {
            pins: vec![("data/".into(), "standrad".into())],
            ..instant()
        };
        let e = typo.check_pins(&names).unwrap_err().to_string();
        assert!(e.contains("\"standrad\"") && e.contains("standard"), "{e}");
    }

    #[test]
    fn minimum_residency_after_a_move() {
        let moved = CostView {
            last_move_ms: Some(NOW - days(2.0)),
            tier_since_ms: NOW - days(2.0),
            ..obj(0, 0.0)
        };
        let e = evaluate(&moved, &presets::aws_s3().tiers, &instant(), NOW);
        assert_eq!(e.target, None);
        assert_eq!(e.next_due_ms, Some(NOW + days(1.0)));
    }

    #[test]
    fn no_ping_pong_on_an_object_read_about_once_a_month() {
        let tiers = presets::aws_s3().tiers;
        let params = instant();
        let (mut tier, mut since, mut last_move) = (0usize, 0i64, None);
        let (mut evidence, mut moves) = (crate::predict::Evidence::default(), Vec::new());
        // Two years, a read every 28 to 32 days, decided every day.
        let mut next_read = days(30.0);
        for day in 0..730 {
            let now = days(day as f64);
            if now >= next_read {
                evidence.observe(now);
                next_read += days(28.0 + (day % 5) as f64);
            }
            let view = CostView {
                key: "reports/monthly.csv",
                size: GB,
                tier,
                first_seen_ms: 0,
                tier_since_ms: since,
                last_move_ms: last_move,
                last_read_ms: evidence.last_read_ms,
                reads_seen: evidence.reads,
                reads_span_days: 0.0,
                reads_30d: crate::predict::reads_30d(&evidence, 0, now, None, &params),
                bytes_per_read: GB,
                pinned: None,
            };
            if let Some(to) = evaluate(&view, &tiers, &params, now).target {
                tier = to;
                since = now;
                last_move = Some(now);
                moves.push(day);
            }
        }
        // It learns the rate within a few months, then stays put.
        assert!(moves.len() <= 3, "moves on days {moves:?}");
        assert!(moves.iter().all(|&d| d < 120), "moves on days {moves:?}");
    }

    #[test]
    fn a_move_down_repays_the_likely_return() {
        // 0.4 reads a month: Glacier IR is cheapest in expectation, but a
        // read within its 90 days is likely and would pay its read-out
        // twice; Standard-IA (looser margin) is where it may go.
        let loose = CostParams {
            hysteresis: 0.2,
            ..instant()
        };
        assert_eq!(target(&obj(0, 0.4), &loose), Some(1));
        let e = evaluate(&obj(0, 0.4), &presets::aws_s3().tiers, &loose, NOW);
        assert!(e.monthly_usd[2] < e.monthly_usd[1], "{e:?}");
        // Unread: nothing to return for.
        assert_eq!(target(&obj(0, 0.0), &loose), Some(2));
    }

    /// Intelligent-Tiering as a tier: index 1 of the six AWS tiers.
    const IT: usize = 1;

    fn read_object(tier: usize, reads_30d: f64, reads_seen: f64) -> CostView<'static> {
        CostView {
            last_read_ms: Some(NOW - days(5.0)),
            reads_seen,
            ..obj(tier, reads_30d)
        }
    }

    fn on_six(o: &CostView<'_>) -> Evaluation {
        evaluate(o, &presets::aws_s3_intelligent().tiers, &instant(), NOW)
    }

    #[test]
    fn a_sparse_reader_goes_to_intelligent_tiering_once_it_has_been_read() {
        // About a read a month over 400 days: Standard-IA saves 2 %, under
        // the margin; Intelligent-Tiering needs none and saves its long gaps.
        let sparse = read_object(0, 1.0, 13.0);
        let e = on_six(&sparse);
        assert_eq!(
            e.target,
            Some(IT),
            "{}",
            e.describe(&sparse, &presets::aws_s3_intelligent().tiers)
        );
        // Never read: the prior alone does not hand it over.
        let unread = CostView {
            last_read_ms: None,
            reads_seen: 0.0,
            reads_span_days: 0.0,
            ..sparse
        };
        assert_eq!(on_six(&unread).target, None);
        // Read ten times a month: Standard, no fee.
        assert_eq!(on_six(&read_object(0, 10.0, 130.0)).target, None);
    }

    #[test]
    fn intelligent_tiering_is_priced_at_no_less_than_the_lifetime_rate() {
        // Predicted cooling off, but read 15 times a month over its life:
        // priced as that, Intelligent-Tiering saves less than its fee.
        let steady = read_object(0, 0.5, 200.0);
        let e = on_six(&steady);
        assert_eq!(e.target, None, "{:?}", e.why);
        assert!(e.monthly_usd[IT] > e.monthly_usd[0], "{e:?}");
    }

    #[test]
    fn an_object_in_intelligent_tiering_stays_as_its_reads_change() {
        // Read often again: Standard saves only the fee, under the margin.
        let hot = CostView {
            tier_since_ms: NOW - days(100.0),
            ..read_object(IT, 10.0, 30.0)
        };
        assert_eq!(on_six(&hot).target, None);
        // Unread for 100 days: billed at Glacier IR's price already.
        let cold = CostView {
            tier_since_ms: NOW - days(200.0),
            last_read_ms: Some(NOW - days(100.0)),
            ..read_object(IT, 0.0, 3.0)
        };
        let e = on_six(&cold);
        assert_eq!(e.target, None, "{:?}", e.why);
        let fee = 0.0025 / 1000.0;
        let at_floor = e.monthly_usd[IT].unwrap();
        assert!((at_floor - (0.004 + fee)).abs() < 1e-9, "{at_floor}");
    }
}
