//! The cost model: what storing, reading, writing and moving an object costs
//! on each tier, as pure functions of the tier's prices (design §4, §6).
//!
//! Units: sizes in bytes, a GB is 10^9 bytes, a month is 30 days, money in
//! USD. Storage is billed on `max(size, min_billable_bytes) + overhead_bytes`;
//! leaving a tier (by a move or a delete) before `min_storage_days` pays the
//! storage of the days left (pro rata), as S3, Azure and GCS charge it.

use strata_runtime::tiers::Tier;

/// Days in a billing month.
pub const MONTH_DAYS: f64 = 30.0;
/// Bytes in a billed GB.
pub const GB: f64 = 1e9;

/// Cost split the way the simulator reports it.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Breakdown {
    pub storage: f64,
    pub retrieval: f64,
    pub requests: f64,
    pub early_delete: f64,
    pub transitions: f64,
}

impl Breakdown {
    /// The sum of all parts.
    pub fn total(&self) -> f64 {
        self.storage + self.retrieval + self.requests + self.early_delete + self.transitions
    }

    /// Adds `other` part by part.
    pub fn add(&mut self, other: &Breakdown) {
        self.storage += other.storage;
        self.retrieval += other.retrieval;
        self.requests += other.requests;
        self.early_delete += other.early_delete;
        self.transitions += other.transitions;
    }
}

/// GB billed for storing an object of `size` bytes on `tier`.
pub fn billed_gb(tier: &Tier, size: u64) -> f64 {
    (size.max(tier.min_billable_bytes) + tier.overhead_bytes) as f64 / GB
}

/// Storage of `size` bytes on `tier` for `days`.
pub fn storage_usd(tier: &Tier, size: u64, days: f64) -> f64 {
    billed_gb(tier, size) * tier.storage_usd_per_gb_month * days.max(0.0) / MONTH_DAYS
}

/// A price of an auto-tiering tier: from idle day, to idle day, USD per
/// GB-month.
type Segment = (f64, f64, f64);

/// The prices of an auto-tiering tier, and its monitoring fee per object
/// and month; `None` when `tier` does not auto-tier an object of `size`
/// bytes (a plain tier, or an object under its minimum size).
/// (An iterator, not a list: the decision prices every object on every
/// tier, and the allocation cost the simulator 4 % of its time.)
fn idle_segments(tier: &Tier, size: u64) -> Option<(impl Iterator<Item = Segment> + '_, f64)> {
    let auto = tier.auto_tiering.as_ref().filter(|a| size >= a.min_bytes)?;
    let steps = auto
        .steps
        .iter()
        .map(|s| (s.idle_days, s.storage_usd_per_gb_month));
    let starts = std::iter::once((0.0, tier.storage_usd_per_gb_month)).chain(steps.clone());
    let ends = steps
        .map(|(days, _)| days)
        .chain(std::iter::once(f64::INFINITY));
    let segments = starts
        .zip(ends)
        .map(|((from, price), to)| (from, to, price));
    Some((segments, auto.monitoring_usd_per_1k / 1000.0))
}

/// Storage of `size` bytes on `tier` for `days`, starting `idle_days` after
/// the object's last read (or its arrival there, if later): [`storage_usd`]
/// on a plain tier; on an auto-tiering tier, each day at the price of its
/// idle age then, plus the monitoring fee.
pub fn storage_idle_usd(tier: &Tier, size: u64, idle_days: f64, days: f64) -> f64 {
    let Some((segments, fee)) = idle_segments(tier, size) else {
        return storage_usd(tier, size, days);
    };
    let (from, to) = (idle_days.max(0.0), idle_days.max(0.0) + days.max(0.0));
    let gb_days: f64 = segments
        .map(|(lo, hi, price)| price * (to.min(hi) - from.max(lo)).max(0.0))
        .sum();
    (billed_gb(tier, size) * gb_days + fee * days.max(0.0)) / MONTH_DAYS
}

/// The monthly storage rate of `bytes` on `tier` now, for an object idle
/// `idle_days` there, without the per-object billing minimums (what a
/// summary of bytes per tier can bill): the tier's price, or on an
/// auto-tiering tier the price of the object's idle step plus its
/// monitoring fee.
pub fn storage_rate_now(tier: &Tier, bytes: u64, idle_days: f64) -> f64 {
    let gb = bytes as f64 / GB;
    match idle_segments(tier, bytes) {
        None => gb * tier.storage_usd_per_gb_month,
        Some((segments, fee)) => {
            let price = segments
                .take_while(|&(from, _, _)| from <= idle_days.max(0.0))
                .last()
                .map_or(tier.storage_usd_per_gb_month, |(_, _, price)| price);
            gb * price + fee
        }
    }
}

/// `∫ e^(-rate t) dt` over `[a, b]`.
fn decay_integral(rate: f64, a: f64, b: f64) -> f64 {
    if b <= a {
        return 0.0;
    }
    if rate <= 0.0 {
        return b - a;
    }
    -(-rate * (b - a)).exp_m1() / rate * (-rate * a).exp()
}

/// Expected storage cost per month of `size` bytes on `tier` over the next
/// `horizon_days`, read as a Poisson process of `reads_30d` reads per 30
/// days, starting `idle_days` after the last read: on a plain tier its
/// monthly storage; on an auto-tiering tier the price at each day's expected
/// idle age. At day `t` the object is unread since the start with
/// probability `e^(-rt)` (idle age `idle_days + t`), else last read `u < t`
/// days ago with density `r e^(-ru)`; both integrals are in closed form.
pub fn expected_storage_per_month(
    tier: &Tier,
    size: u64,
    reads_30d: f64,
    idle_days: f64,
    horizon_days: f64,
) -> f64 {
    let Some((segments, fee)) = idle_segments(tier, size) else {
        return monthly_storage_usd(tier, size);
    };
    let (rate, s, h) = (
        reads_30d.max(0.0) / MONTH_DAYS,
        idle_days.max(0.0),
        horizon_days.max(1.0),
    );
    let mut price_days = 0.0;
    for (lo, hi, price) in segments {
        // Unread since now: idle age s + t lies in [lo, hi).
        let unread = decay_integral(rate, (lo - s).max(0.0), (hi - s).min(h));
        // Read since: the last read u days ago, u in [lo, hi), u < t.
        let m = hi.min(h);
        let mut read = 0.0;
        if h > lo {
            let at_lo = (-rate * lo).exp();
            read += at_lo * (m - lo) - decay_integral(rate, lo, m);
            if h > hi {
                read += (at_lo - (-rate * hi).exp()) * (h - hi);
            }
        }
        price_days += price * (unread + read);
    }
    billed_gb(tier, size) * price_days / h + fee
}

/// Expected cost per month of keeping `size` bytes on `tier`, `idle_days`
/// after its last read, while it is read `reads_30d` times a month,
/// `bytes_per_read` each, over the next `horizon_days`: storage
/// ([`expected_storage_per_month`]) and reads.
pub fn expected_monthly_usd(
    tier: &Tier,
    size: u64,
    reads_30d: f64,
    bytes_per_read: u64,
    idle_days: f64,
    horizon_days: f64,
) -> f64 {
    expected_storage_per_month(tier, size, reads_30d, idle_days, horizon_days)
        + reads_30d.max(0.0) * read_usd(tier, bytes_per_read)
}

/// Storage per month of `size` bytes on `tier`.
pub fn monthly_storage_usd(tier: &Tier, size: u64) -> f64 {
    storage_usd(tier, size, MONTH_DAYS)
}

/// Retrieval charge of reading `bytes` from `tier`.
pub fn retrieval_usd(tier: &Tier, bytes: u64) -> f64 {
    tier.retrieval_usd_per_gb * bytes as f64 / GB
}

/// One GET request on `tier`.
pub fn get_request_usd(tier: &Tier) -> f64 {
    tier.get_usd_per_1k / 1000.0
}

/// One PUT request on `tier`.
pub fn put_request_usd(tier: &Tier) -> f64 {
    tier.put_usd_per_1k / 1000.0
}

/// One read of `bytes` from `tier`: request and retrieval.
pub fn read_usd(tier: &Tier, bytes: u64) -> f64 {
    get_request_usd(tier) + retrieval_usd(tier, bytes)
}

/// The pro-rata charge for leaving `tier` after `resident_days` there.
pub fn early_delete_usd(tier: &Tier, size: u64, resident_days: f64) -> f64 {
    storage_usd(tier, size, tier.min_storage_days - resident_days.max(0.0))
}

/// Whether a move from `from` to `to` leaves a provider (and pays egress).
pub fn crosses_provider(from: &Tier, to: &Tier) -> bool {
    match (&from.provider, &to.provider) {
        (Some(a), Some(b)) => a != b,
        _ => false,
    }
}

/// The one-time cost of moving `size` bytes from `from` to `to` after
/// `resident_days` on `from`: read it out (GET and retrieval), egress when it
/// leaves a provider, write it in (PUT), and the early-delete charge of the
/// tier it leaves. Split as (transition, early delete).
pub fn move_usd(from: &Tier, to: &Tier, size: u64, resident_days: f64) -> (f64, f64) {
    let egress = if crosses_provider(from, to) {
        from.egress_usd_per_gb * size as f64 / GB
    } else {
        0.0
    };
    let transition = read_usd(from, size) + egress + put_request_usd(to);
    (transition, early_delete_usd(from, size, resident_days))
}

/// Days for a saving of `saving_per_month` to repay `one_time`; `None` when
/// it never does.
pub fn break_even_days(one_time: f64, saving_per_month: f64) -> Option<f64> {
    if one_time <= 0.0 {
        return Some(0.0);
    }
    (saving_per_month > 0.0).then(|| one_time / saving_per_month * MONTH_DAYS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presets;

    fn aws(i: usize) -> Tier {
        presets::aws_s3().tiers[i].clone()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 + 1e-9 * b.abs()
    }

    #[test]
    fn storage_follows_size_days_and_billed_minimums() {
        let (std, ia, glacier) = (aws(0), aws(1), aws(3));
        assert!(close(storage_usd(&std, 1_000_000_000, 30.0), 0.023));
        assert!(close(storage_usd(&std, 1_000_000_000, 15.0), 0.0115));
        // A 1 KB object on Standard-IA is billed as 128 KB.
        assert!(close(
            monthly_storage_usd(&ia, 1000),
            131_072.0 / GB * 0.0125
        ));
        // Glacier adds 40 KB per object.
        assert!(close(
            monthly_storage_usd(&glacier, 1_000_000),
            (1_000_000.0 + 40_960.0) / GB * 0.0036
        ));
    }

    #[test]
    fn early_delete_is_pro_rata_for_the_days_left() {
        let ia = aws(1);
        let gb = 1_000_000_000;
        assert!(close(early_delete_usd(&ia, gb, 10.0), 0.0125 * 20.0 / 30.0));
        assert_eq!(early_delete_usd(&ia, gb, 30.0), 0.0);
        assert_eq!(early_delete_usd(&ia, gb, 45.0), 0.0);
        assert_eq!(early_delete_usd(&aws(0), gb, 0.0), 0.0);
        // Leaving Deep Archive on day 0 pays 180 days.
        assert!(close(
            early_delete_usd(&aws(4), gb, 0.0),
            0.00099 * 6.0 + 40_960.0 / GB * 0.00099 * 6.0
        ));
    }

    #[test]
    fn moves_pay_read_out_write_in_early_delete_and_egress() {
        let (ia, std) = (aws(1), aws(0));
        let gb = 1_000_000_000;
        let (transition, early) = move_usd(&ia, &std, gb, 0.0);
        assert!(close(transition, 0.001 / 1000.0 + 0.01 + 0.005 / 1000.0));
        assert!(close(early, 0.0125));
        let mut gcs = presets::tier_config(&[("g", "gcs-standard")])
            .unwrap()
            .tiers[0]
            .clone();
        assert!(crosses_provider(&std, &gcs));
        let (with_egress, _) = move_usd(&std, &gcs, gb, 100.0);
        assert!(close(with_egress, 0.0004 / 1000.0 + 0.09 + 0.005 / 1000.0));
        gcs.provider = None;
        assert!(!crosses_provider(&std, &gcs), "unknown provider: no egress");
    }

    #[test]
    fn standard_to_ia_breaks_even_near_one_full_read_a_month() {
        // prices.md: Standard -> Standard-IA pays only when read in full
        // less than about once a month.
        let (std, ia) = (aws(0), aws(1));
        let gb = 1_000_000_000;
        let monthly = |t: &Tier, reads: f64| expected_monthly_usd(t, gb, reads, gb, 0.0, 60.0);
        assert!(monthly(&ia, 0.9) < monthly(&std, 0.9));
        assert!(monthly(&ia, 1.2) > monthly(&std, 1.2));
    }

    fn intelligent() -> Tier {
        presets::aws_s3_intelligent().tiers[1].clone()
    }

    #[test]
    fn auto_tiering_bills_by_idle_age_with_a_fee_above_its_floor() {
        let it = intelligent();
        let gb = 1_000_000_000;
        let fee = 0.0025 / 1000.0;
        // 120 days unread: 30 at Standard, 60 at IA, 30 at Glacier IR.
        let expected = (30.0 * 0.023 + 60.0 * 0.0125 + 30.0 * 0.004) / 30.0 + 4.0 * fee;
        assert!(close(storage_idle_usd(&it, gb, 0.0, 120.0), expected));
        // Starting 100 days idle: all at the lowest price.
        assert!(close(storage_idle_usd(&it, gb, 100.0, 30.0), 0.004 + fee));
        // Under 128 KB: the first price, no fee, however long unread.
        let small = 100_000;
        assert!(close(
            storage_idle_usd(&it, small, 200.0, 30.0),
            small as f64 / GB * 0.023
        ));
        // A plain tier ignores the idle age.
        assert_eq!(
            storage_idle_usd(&aws(1), gb, 500.0, 30.0),
            storage_usd(&aws(1), gb, 30.0)
        );
    }

    #[test]
    fn the_rate_now_is_the_idle_steps_price_plus_the_fee() {
        let it = intelligent();
        let gb = 1_000_000_000;
        let fee = 0.0025 / 1000.0;
        for (idle, price) in [(0.0, 0.023), (29.9, 0.023), (30.0, 0.0125), (95.0, 0.004)] {
            assert!(
                close(storage_rate_now(&it, gb, idle), price + fee),
                "{idle}"
            );
        }
        // Under the floor: the first price, no fee; a plain tier: its price,
        // without Standard-IA's 128 KB minimum.
        assert!(close(
            storage_rate_now(&it, 1000, 95.0),
            1000.0 / GB * 0.023
        ));
        assert!(close(
            storage_rate_now(&aws(1), 1000, 95.0),
            1000.0 / GB * 0.0125
        ));
    }

    /// The closed form against the mean of simulated Poisson readers.
    #[test]
    fn expected_auto_tiering_cost_matches_simulated_readers() {
        let it = intelligent();
        let gb = 1_000_000_000;
        let horizon = 120.0;
        let mut rng = crate::sim::synth::Rng::new(5);
        for (reads_30d, idle) in [
            (0.0, 0.0),
            (0.5, 0.0),
            (1.6, 10.0),
            (1.0, 40.0),
            (8.0, 95.0),
        ] {
            let rate = reads_30d / MONTH_DAYS;
            let runs = 20_000;
            let mut total = 0.0;
            for _ in 0..runs {
                let (mut t, mut since) = (0.0, -idle);
                loop {
                    let gap = if rate > 0.0 {
                        -(1.0 - rng.unit()).ln() / rate
                    } else {
                        f64::INFINITY
                    };
                    let next = (t + gap).min(horizon);
                    total += storage_idle_usd(&it, gb, t - since, next - t);
                    if next >= horizon {
                        break;
                    }
                    (t, since) = (next, next);
                }
            }
            let simulated = total / runs as f64 * MONTH_DAYS / horizon;
            let closed = expected_storage_per_month(&it, gb, reads_30d, idle, horizon);
            assert!(
                (simulated - closed).abs() <= 0.01 * closed,
                "{reads_30d} reads/30d from {idle} days idle: simulated {simulated} closed {closed}"
            );
        }
        // Read far more than once a month it costs Standard plus the fee;
        // on a plain tier the expectation is the monthly storage.
        let hot = expected_storage_per_month(&it, gb, 300.0, 0.0, 60.0);
        assert!(close(hot, 0.023 + 0.0025 / 1000.0), "{hot}");
        assert_eq!(
            expected_storage_per_month(&aws(2), gb, 1.0, 50.0, 60.0),
            monthly_storage_usd(&aws(2), gb)
        );
    }

    #[test]
    fn break_even_days_cases() {
        assert_eq!(break_even_days(0.0, 1.0), Some(0.0));
        assert_eq!(break_even_days(1.0, 0.0), None);
        assert_eq!(break_even_days(1.0, -1.0), None);
        assert!(close(break_even_days(1.0, 2.0).unwrap(), 15.0));
    }
}
