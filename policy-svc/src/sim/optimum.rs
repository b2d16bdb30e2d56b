//! The offline optimum: for one object whose whole future is known, the
//! cheapest sequence of moves under the same cost model, by dynamic
//! programming over (tier, arrival time) at each decision point.
//!
//! Decision points are the object's creation, each read (a move may come
//! just before or just after it), and the moment the minimum storage
//! duration of the tier it is on runs out (moving earlier prepays the same
//! days, moving later pays more storage). The arrival time matters only
//! while the early-delete charge runs; states are pruned to the Pareto
//! front of (arrival, cost) per tier, which keeps the search small.

use strata_runtime::tiers::Tier;

use crate::cost;

use super::trace::Object;

const DAY: f64 = 86_400_000.0;
/// Arrival of a state past its tier's minimum duration: no charge pending.
const SETTLED: i64 = i64::MIN;

/// One step of a plan, replayed by the simulator.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Step {
    Move { at_ms: i64, to: usize },
    Read { at_ms: i64, bytes: u64 },
}

#[derive(Debug, Clone, Copy)]
struct Node {
    tier: usize,
    arrival: i64,
    cost: f64,
    parent: u32,
    /// A move made on the edge into this node (time, tier).
    moved: Option<(i64, usize)>,
    /// On a read edge: whether the read came before the move.
    read_first: bool,
}

fn arrival_key(tier: &Tier, arrival: i64, now: i64) -> i64 {
    if arrival == SETTLED || (now - arrival) as f64 >= tier.min_storage_days * DAY {
        SETTLED
    } else {
        arrival
    }
}

fn resident_days(arrival: i64, now: i64) -> f64 {
    if arrival == SETTLED {
        f64::INFINITY
    } else {
        (now - arrival) as f64 / DAY
    }
}

/// At most this many states per tier survive a step (those with the least
/// cost plus pending early-delete charge); exact whenever fewer are on the
/// Pareto front, which holds in every test and nearly every object.
const MAX_STATES_PER_TIER: usize = 8;

/// Keeps, per tier, the Pareto front of (arrival, cost): a state is dropped
/// when an earlier arrival costs no more (it never owes more early-delete
/// charge), or when a later one costs no more even after paying its whole
/// pending charge now. `scratch` holds the candidates; survivors move to
/// `arena`, and their indices are returned.
fn prune(
    scratch: &mut Vec<Node>,
    arena: &mut Vec<Node>,
    tiers: &[Tier],
    size: u64,
    now: i64,
) -> Vec<usize> {
    let pending =
        |n: &Node| cost::early_delete_usd(&tiers[n.tier], size, resident_days(n.arrival, now));
    scratch.sort_by(|a, b| {
        (a.tier, a.arrival)
            .cmp(&(b.tier, b.arrival))
            .then(a.cost.total_cmp(&b.cost))
    });
    let mut kept: Vec<usize> = Vec::new();
    let mut start = 0;
    while start < scratch.len() {
        let tier = scratch[start].tier;
        let end = start
            + scratch[start..]
                .iter()
                .take_while(|n| n.tier == tier)
                .count();
        // Earliest arrival first: keep strictly decreasing costs.
        let mut front: Vec<Node> = Vec::new();
        for n in &scratch[start..end] {
            if front.last().is_some_and(|f| n.cost >= f.cost) {
                continue;
            }
            // A later, cheaper state with its charge paid dominates earlier ones.
            let with_charge = n.cost + pending(n);
            front.retain(|f| f.cost + pending(f) < with_charge);
            front.push(*n);
        }
        if front.len() > MAX_STATES_PER_TIER {
            front.sort_by(|a, b| (a.cost + pending(a)).total_cmp(&(b.cost + pending(b))));
            front.truncate(MAX_STATES_PER_TIER);
        }
        for n in front {
            arena.push(n);
            kept.push(arena.len() - 1);
        }
        start = end;
    }
    scratch.clear();
    kept
}

/// The cheapest plan for `obj`, which ends at `end_ms` (deleted or not);
/// only tiers with `eligible[i]` are used (the first tier is where it starts).
/// Returns the plan and its cost.
pub fn plan(
    obj: &Object,
    tiers: &[Tier],
    eligible: &[bool],
    end_ms: i64,
    deleted: bool,
) -> (Vec<Step>, f64) {
    let size = obj.size;
    let targets: Vec<usize> = (0..tiers.len()).filter(|&i| eligible[i]).collect();
    let mut arena = vec![Node {
        tier: 0,
        arrival: obj.created_ms,
        cost: 0.0,
        parent: u32::MAX,
        moved: None,
        read_first: false,
    }];
    let mut scratch: Vec<Node> = Vec::new();
    // Moves at creation.
    let mut layer: Vec<usize> = vec![0];
    for &b in targets.iter().filter(|&&b| b != 0) {
        let (t, e) = cost::move_usd(&tiers[0], &tiers[b], size, 0.0);
        arena.push(Node {
            tier: b,
            arrival: obj.created_ms,
            cost: t + e,
            parent: 0,
            moved: Some((obj.created_ms, b)),
            read_first: false,
        });
        layer.push(arena.len() - 1);
    }
    let mut t0 = obj.created_ms;
    let boundaries = obj
        .reads
        .iter()
        .map(|&(t, b)| (t, Some(b)))
        .chain([(end_ms, None)]);
    for (t1, read) in boundaries {
        let t1 = t1.clamp(t0, end_ms.max(t0));
        // The interval [t0, t1): stay, or move when the minimum duration ends.
        for &s in &layer {
            let n = arena[s];
            let here = &tiers[n.tier];
            // Each interval starts at a read or an arrival: idle from 0.
            let stay = cost::storage_idle_usd(here, size, 0.0, (t1 - t0) as f64 / DAY);
            scratch.push(Node {
                cost: n.cost + stay,
                parent: s as u32,
                moved: None,
                arrival: arrival_key(here, n.arrival, t1),
                ..n
            });
            if n.arrival == SETTLED || here.min_storage_days <= 0.0 {
                continue;
            }
            let expiry = n.arrival + (here.min_storage_days * DAY).ceil() as i64;
            if expiry <= t0 || expiry >= t1 {
                continue;
            }
            let before = cost::storage_idle_usd(here, size, 0.0, (expiry - t0) as f64 / DAY);
            for &b in targets.iter().filter(|&&b| b != n.tier) {
                let (t, e) = cost::move_usd(here, &tiers[b], size, here.min_storage_days);
                let after =
                    cost::storage_idle_usd(&tiers[b], size, 0.0, (t1 - expiry) as f64 / DAY);
                scratch.push(Node {
                    tier: b,
                    arrival: arrival_key(&tiers[b], expiry, t1),
                    cost: n.cost + before + t + e + after,
                    parent: s as u32,
                    moved: Some((expiry, b)),
                    read_first: false,
                });
            }
        }
        layer = prune(&mut scratch, &mut arena, tiers, size, t1);
        t0 = t1;
        let Some(bytes) = read else { break };
        // The read at t1, with an optional move just before or after it.
        for &s in &layer {
            let n = arena[s];
            let here = &tiers[n.tier];
            let read_here = cost::read_usd(here, bytes);
            scratch.push(Node {
                cost: n.cost + read_here,
                parent: s as u32,
                moved: None,
                ..n
            });
            for &b in targets.iter().filter(|&&b| b != n.tier) {
                let (t, e) = cost::move_usd(here, &tiers[b], size, resident_days(n.arrival, t1));
                let read_there = cost::read_usd(&tiers[b], bytes);
                scratch.push(Node {
                    tier: b,
                    arrival: arrival_key(&tiers[b], t1, t1),
                    cost: n.cost + t + e + read_here.min(read_there),
                    parent: s as u32,
                    moved: Some((t1, b)),
                    read_first: read_here <= read_there,
                });
            }
        }
        layer = prune(&mut scratch, &mut arena, tiers, size, t1);
    }
    let final_cost = |s: usize| {
        let n = &arena[s];
        let early = if deleted {
            cost::early_delete_usd(&tiers[n.tier], size, resident_days(n.arrival, end_ms))
        } else {
            0.0
        };
        n.cost + early
    };
    let best = layer
        .iter()
        .copied()
        .min_by(|&a, &b| final_cost(a).total_cmp(&final_cost(b)))
        .unwrap_or(0);
    let total = final_cost(best);
    // Walk back, then lay the moves out between the reads.
    let mut moves = Vec::new();
    let mut at = best;
    while at != 0 && at != u32::MAX as usize {
        let n = &arena[at];
        if let Some((t, to)) = n.moved {
            moves.push((t, to, n.read_first));
        }
        at = n.parent as usize;
    }
    moves.reverse();
    let mut steps = Vec::with_capacity(obj.reads.len() + moves.len());
    let mut moves = moves.into_iter().peekable();
    for &(t, bytes) in &obj.reads {
        while let Some(&(mt, to, read_first)) = moves.peek() {
            if mt < t || (mt == t && !read_first) {
                steps.push(Step::Move { at_ms: mt, to });
                moves.next();
            } else {
                break;
            }
        }
        steps.push(Step::Read { at_ms: t, bytes });
    }
    steps.extend(moves.map(|(at_ms, to, _)| Step::Move { at_ms, to }));
    (steps, total)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presets;

    /// Every plan that moves only at the decision points: per interval, the
    /// tier after the boundary and the tier after the minimum duration ends.
    fn brute_force(obj: &Object, tiers: &[Tier], end: i64, deleted: bool) -> f64 {
        let n = obj.reads.len() + 1;
        let t = tiers.len();
        let mut best = f64::INFINITY;
        let combos = (t * t).pow(n as u32);
        for mut code in 0..combos {
            let mut choice = Vec::with_capacity(n);
            for _ in 0..n {
                choice.push((code % t, (code / t) % t));
                code /= t * t;
            }
            if let Some(c) = evaluate(obj, tiers, end, deleted, &choice) {
                best = best.min(c);
            }
        }
        best
    }

    fn evaluate(
        obj: &Object,
        tiers: &[Tier],
        end: i64,
        deleted: bool,
        choice: &[(usize, usize)],
    ) -> Option<f64> {
        let size = obj.size;
        let (mut tier, mut arrival, mut cost) = (0usize, obj.created_ms, 0.0);
        let starts: Vec<i64> = std::iter::once(obj.created_ms)
            .chain(obj.reads.iter().map(|r| r.0))
            .collect();
        for (i, &(first, second)) in choice.iter().enumerate() {
            let t0 = starts[i];
            let t1 = if i + 1 < starts.len() {
                starts[i + 1]
            } else {
                end
            };
            // The boundary at t0: a read (except at creation), maybe a move.
            let read = (i > 0).then(|| obj.reads[i - 1].1);
            if first != tier {
                let (tr, e) = cost::move_usd(
                    &tiers[tier],
                    &tiers[first],
                    size,
                    (t0 - arrival) as f64 / DAY,
                );
                cost += tr + e;
                if let Some(b) = read {
                    cost += cost::read_usd(&tiers[tier], b).min(cost::read_usd(&tiers[first], b));
                }
                tier = first;
                arrival = t0;
            } else if let Some(b) = read {
                cost += cost::read_usd(&tiers[tier], b);
            }
            if second != tier {
                let min = tiers[tier].min_storage_days;
                let expiry = arrival + (min * DAY).ceil() as i64;
                if min <= 0.0 || expiry <= t0 || expiry >= t1 {
                    return None;
                }
                cost += cost::storage_idle_usd(&tiers[tier], size, 0.0, (expiry - t0) as f64 / DAY);
                let (tr, e) = cost::move_usd(&tiers[tier], &tiers[second], size, min);
                let after = (t1 - expiry) as f64 / DAY;
                cost += tr + e + cost::storage_idle_usd(&tiers[second], size, 0.0, after);
                tier = second;
                arrival = expiry;
            } else {
                cost += cost::storage_idle_usd(&tiers[tier], size, 0.0, (t1 - t0) as f64 / DAY);
            }
        }
        if deleted {
            cost += cost::early_delete_usd(&tiers[tier], size, (end - arrival) as f64 / DAY);
        }
        Some(cost)
    }

    #[test]
    fn the_dynamic_program_matches_brute_force_on_small_cases() {
        let all = presets::aws_s3_intelligent().tiers;
        // Standard, Standard-IA, Glacier IR; then Intelligent-Tiering for IA.
        let plain = [all[0].clone(), all[2].clone(), all[3].clone()];
        let auto = [all[0].clone(), all[1].clone(), all[3].clone()];
        for tiers in [plain, auto] {
            matches_brute_force(&tiers);
        }
    }

    fn matches_brute_force(tiers: &[Tier]) {
        let day = DAY as i64;
        let mut seed = 11u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for case in 0..60 {
            let reads = (next() % 4) as usize;
            let mut t = 0;
            let mut obj = Object {
                key: 0,
                size: 1_000_000 + next() % 2_000_000_000,
                created_ms: 0,
                put: true,
                reads: Vec::new(),
                deleted_ms: None,
            };
            for _ in 0..reads {
                t += (next() % 120) as i64 * day + (next() % day as u64) as i64;
                obj.reads.push((t, obj.size));
            }
            let end = t + (next() % 200) as i64 * day + 1;
            let deleted = case % 2 == 0;
            let (steps, dp) = plan(&obj, tiers, &[true; 3], end, deleted);
            let brute = brute_force(&obj, tiers, end, deleted);
            // The plan, replayed by the simulator's accounting, costs the same.
            let mut ledger = crate::sim::ledger::Ledger::default();
            let mut acct =
                crate::sim::ledger::Account::open(tiers, &mut ledger, obj.size, None, 0, true);
            for step in &steps {
                match *step {
                    Step::Move { at_ms, to } => acct.move_to(at_ms, to),
                    Step::Read { at_ms, bytes } => acct.read(at_ms, bytes),
                }
            }
            acct.close(end, deleted);
            let put = cost::put_request_usd(&tiers[0]);
            assert!(
                (ledger.cost.total() - put - dp).abs() <= 1e-9 * dp.max(1e-9),
                "case {case}: replay {} dp {dp}",
                ledger.cost.total() - put
            );
            assert!(
                (dp - brute).abs() <= 1e-9 * brute.max(1e-9),
                "case {case}: dp {dp} brute {brute} {obj:?} {steps:?}"
            );
        }
    }
}
