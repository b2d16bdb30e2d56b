//! The first decision rule, a pure function of one object's state, the
//! ordered tiers and the event-time clock (design §6), and the switch to the
//! cost model behind the same [`decide`] signature.
//!
//! - An object with at least `promote_reads` reads within `promote_window`
//!   moves to the fastest tier.
//! - Otherwise an object idle at least a slower tier's `idle_days` moves down
//!   to the slowest such tier.
//! - Objects below `min_object_bytes` stay; a pinned object goes to its pin.
//!
//! With `cost` set (`--rule cost`), [`decide`] applies the cost model
//! instead ([`crate::placement::evaluate`]), the same code the simulator runs.

use strata_runtime::tiers::TierConfig;

use crate::{
    placement::{self, CostParams, CostView},
    predict::{self, Evidence, PrefixPrior},
};

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;

/// Knobs of the rule (policy-svc flags).
#[derive(Debug, Clone)]
pub struct RuleParams {
    pub promote_reads: u32,
    pub promote_window_ms: i64,
    pub min_object_bytes: u64,
    /// The cost decision's knobs; `Some` selects it over the idle rule.
    pub cost: Option<CostParams>,
}

/// What the rule needs to know about one object.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectView {
    pub key: String,
    pub size: u64,
    pub first_seen_ms: i64,
    pub tier_since_ms: i64,
    pub last_move_ms: Option<i64>,
    /// Decayed read counts, for the cost decision's prediction.
    pub evidence: Evidence,
    /// What the object's prefix says of it ([`crate::prefix`]).
    pub prior: Option<PrefixPrior>,
    pub bytes_per_read: u64,
    pub tier: String,
    /// Event time of the last access (or first sighting).
    pub last_access_ms: i64,
    /// Event times of the most recent reads, at most `promote_reads` of them.
    pub recent_reads: Vec<i64>,
    pub pinned: Option<String>,
}

/// The rule's verdict.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Stay; look again at `next_due_ms` (`None`: only when something happens).
    Stay {
        why: String,
        next_due_ms: Option<i64>,
    },
    /// Move to `to`.
    Move {
        to: String,
        why: String,
        rule: &'static str,
    },
}

/// Reads of `obj` within the promotion window ending at `now_ms`.
pub fn reads_in_window(obj: &ObjectView, params: &RuleParams, now_ms: i64) -> usize {
    obj.recent_reads
        .iter()
        .filter(|&&t| t > now_ms - params.promote_window_ms && t <= now_ms)
        .count()
}

/// What the cost decision sees of `obj` at `reads_30d` predicted reads;
/// `None` when its tier is not configured.
pub fn cost_view<'a>(
    obj: &'a ObjectView,
    tiers: &TierConfig,
    reads_30d: f64,
) -> Option<CostView<'a>> {
    Some(CostView {
        key: &obj.key,
        size: obj.size,
        tier: tiers.rank(&obj.tier)?,
        first_seen_ms: obj.first_seen_ms,
        tier_since_ms: obj.tier_since_ms,
        last_move_ms: obj.last_move_ms,
        last_read_ms: obj.evidence.last_read_ms,
        reads_seen: obj.evidence.reads,
        reads_span_days: placement::reads_span_days(obj.recent_reads.iter().copied()),
        reads_30d,
        bytes_per_read: obj.bytes_per_read,
        pinned: obj.pinned.as_deref().and_then(|p| tiers.rank(p)),
    })
}

/// The cost decision on `obj`, in the rule's terms.
pub fn decide_cost(
    obj: &ObjectView,
    tiers: &TierConfig,
    params: &CostParams,
    now_ms: i64,
) -> Decision {
    let reads_30d = predict::reads_30d(&obj.evidence, obj.first_seen_ms, now_ms, obj.prior, params);
    let Some(view) = cost_view(obj, tiers, reads_30d) else {
        return Decision::Stay {
            why: format!("tier {:?} is not configured", obj.tier),
            next_due_ms: None,
        };
    };
    let eval = placement::evaluate(&view, &tiers.tiers, params, now_ms);
    let why = eval.describe(&view, &tiers.tiers);
    match eval.target {
        Some(to) => Decision::Move {
            to: tiers.tiers[to].name.clone(),
            why,
            rule: eval.rule,
        },
        None => Decision::Stay {
            why,
            next_due_ms: eval.next_due_ms,
        },
    }
}

/// The reads per 30 days the rule in effect expects of `obj`: the cost
/// decision's prediction, or for the idle rule the 30-day decayed count.
pub fn predicted_reads_30d(obj: &ObjectView, params: &RuleParams, now_ms: i64) -> f64 {
    match &params.cost {
        Some(cost) => predict::reads_30d(&obj.evidence, obj.first_seen_ms, now_ms, obj.prior, cost),
        None => obj.evidence.c30_at(now_ms) * std::f64::consts::LN_2,
    }
}

/// Decides where `obj` belongs at `now_ms`.
pub fn decide(obj: &ObjectView, tiers: &TierConfig, params: &RuleParams, now_ms: i64) -> Decision {
    if let Some(cost) = &params.cost {
        return decide_cost(obj, tiers, cost, now_ms);
    }
    let stay = |why: String, next_due_ms| Decision::Stay { why, next_due_ms };
    if let Some(pin) = &obj.pinned {
        return if *pin == obj.tier {
            stay(format!("pinned to {pin}"), None)
        } else {
            Decision::Move {
                to: pin.clone(),
                why: format!("pinned to {pin}"),
                rule: "pin",
            }
        };
    }
    let Some(rank) = tiers.rank(&obj.tier) else {
        return stay(format!("tier {:?} is not configured", obj.tier), None);
    };
    if obj.size < params.min_object_bytes {
        return stay(
            format!(
                "{} bytes < minimum {} bytes: never moved",
                obj.size, params.min_object_bytes
            ),
            None,
        );
    }
    let reads = reads_in_window(obj, params, now_ms);
    let window_days = params.promote_window_ms as f64 / DAY_MS as f64;
    if rank > 0 && params.promote_reads > 0 && reads >= params.promote_reads as usize {
        let top = &tiers.tiers[0].name;
        let why = format!(
            "{reads} reads in {window_days:.0} days >= {}: promote {} -> {top}",
            params.promote_reads, obj.tier
        );
        return Decision::Move {
            to: top.clone(),
            why,
            rule: "promote-on-reads",
        };
    }
    let idle_ms = now_ms.saturating_sub(obj.last_access_ms).max(0);
    let idle_days = idle_ms as f64 / DAY_MS as f64;
    let target = tiers
        .tiers
        .iter()
        .rposition(|t| t.idle_days * DAY_MS as f64 <= idle_ms as f64)
        .unwrap_or(0);
    if target > rank {
        let to = &tiers.tiers[target];
        let why = format!(
            "idle {idle_days:.1} days >= {}: demote {} -> {}",
            to.idle_days, obj.tier, to.name
        );
        return Decision::Move {
            to: to.name.clone(),
            why,
            rule: "demote-when-idle",
        };
    }
    let next_due_ms = tiers.tiers.get(rank + 1).map(|next| {
        obj.last_access_ms
            .saturating_add((next.idle_days * DAY_MS as f64) as i64)
    });
    stay(
        format!(
            "idle {idle_days:.1} days, {reads} recent reads: {} fits",
            obj.tier
        ),
        next_due_ms,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiers() -> TierConfig {
        let mut raw = String::new();
        for (name, idle) in [("hot", 0), ("warm", 30), ("cold", 90), ("archive", 180)] {
            raw.push_str(&format!(
                "[[tiers]]\nname='{name}'\nurl='memory://'\nidle_days={idle}\n"
            ));
        }
        TierConfig::parse(&raw, &[]).unwrap()
    }

    fn params() -> RuleParams {
        RuleParams {
            promote_reads: 3,
            promote_window_ms: 7 * DAY_MS,
            min_object_bytes: 1024,
            cost: None,
        }
    }

    fn obj(tier: &str, idle_days: i64, reads: &[i64]) -> ObjectView {
        let now = 1000 * DAY_MS;
        ObjectView {
            key: "k".into(),
            first_seen_ms: 0,
            tier_since_ms: 0,
            last_move_ms: None,
            evidence: Evidence::default(),
            prior: None,
            bytes_per_read: 1 << 20,
            size: 1 << 20,
            tier: tier.into(),
            last_access_ms: now - idle_days * DAY_MS,
            recent_reads: reads.iter().map(|d| now - d * DAY_MS).collect(),
            pinned: None,
        }
    }

    fn target(o: &ObjectView) -> Option<String> {
        match decide(o, &tiers(), &params(), 1000 * DAY_MS) {
            Decision::Move { to, .. } => Some(to),
            Decision::Stay { .. } => None,
        }
    }

    #[test]
    fn idle_objects_go_down_to_the_slowest_tier_they_qualify_for() {
        assert_eq!(target(&obj("hot", 29, &[])), None);
        assert_eq!(target(&obj("hot", 30, &[])).as_deref(), Some("warm"));
        assert_eq!(target(&obj("hot", 60, &[])).as_deref(), Some("warm"));
        assert_eq!(target(&obj("hot", 100, &[])).as_deref(), Some("cold"));
        assert_eq!(target(&obj("warm", 400, &[])).as_deref(), Some("archive"));
        // Never demoted "up": an idle object on archive stays.
        assert_eq!(target(&obj("archive", 10, &[])), None);
    }

    #[test]
    fn enough_recent_reads_promote_to_the_top() {
        assert_eq!(target(&obj("cold", 0, &[0, 1, 2])).as_deref(), Some("hot"));
        // Two reads in the window, one too old: not enough.
        assert_eq!(target(&obj("cold", 0, &[0, 1, 8])), None);
        assert_eq!(target(&obj("hot", 0, &[0, 1, 2])), None);
    }

    #[test]
    fn small_and_pinned_objects() {
        let small = ObjectView {
            size: 10,
            ..obj("hot", 400, &[])
        };
        assert_eq!(target(&small), None);
        let pinned = ObjectView {
            pinned: Some("hot".into()),
            ..obj("hot", 400, &[])
        };
        assert_eq!(target(&pinned), None);
        let pinned_elsewhere = ObjectView {
            pinned: Some("cold".into()),
            ..obj("hot", 0, &[])
        };
        assert_eq!(target(&pinned_elsewhere).as_deref(), Some("cold"));
    }

    #[test]
    fn the_cost_rule_is_selectable_and_explains_itself() {
        let mut tiers = tiers();
        for (t, price) in tiers.tiers.iter_mut().zip([0.08, 0.03, 0.01, 0.002]) {
            t.storage_usd_per_gb_month = price;
            t.first_byte_ms = price.recip();
        }
        let params = RuleParams {
            cost: Some(CostParams {
                default_slo_ms: Some(200.0),
                ..CostParams::default()
            }),
            ..params()
        };
        // Idle for months: down to the cheapest tier within the 200 ms SLO.
        match decide(&obj("hot", 100, &[]), &tiers, &params, 1000 * DAY_MS) {
            Decision::Move { to, why, rule } => {
                assert_eq!((to.as_str(), rule), ("cold", "cost"), "{why}");
                assert!(why.contains("hot -> cold"), "{why}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn staying_objects_are_due_when_they_cross_the_next_threshold() {
        let o = obj("hot", 10, &[]);
        match decide(&o, &tiers(), &params(), 1000 * DAY_MS) {
            Decision::Stay { next_due_ms, .. } => {
                assert_eq!(next_due_ms, Some(o.last_access_ms + 30 * DAY_MS))
            }
            other => panic!("{other:?}"),
        }
        match decide(&obj("archive", 10, &[]), &tiers(), &params(), 1000 * DAY_MS) {
            Decision::Stay { next_due_ms, .. } => assert_eq!(next_due_ms, None),
            other => panic!("{other:?}"),
        }
    }
}
