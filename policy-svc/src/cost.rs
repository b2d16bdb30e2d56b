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

/// Expected cost per month of keeping `size` bytes on `tier` while it is
/// read `reads_per_month` times, `bytes_per_read` bytes each.
pub fn monthly_usd(tier: &Tier, size: u64, reads_per_month: f64, bytes_per_read: u64) -> f64 {
    monthly_storage_usd(tier, size) + reads_per_month.max(0.0) * read_usd(tier, bytes_per_read)
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
        assert!(monthly_usd(&ia, gb, 0.9, gb) < monthly_usd(&std, gb, 0.9, gb));
        assert!(monthly_usd(&ia, gb, 1.2, gb) > monthly_usd(&std, gb, 1.2, gb));
    }

    #[test]
    fn break_even_days_cases() {
        assert_eq!(break_even_days(0.0, 1.0), Some(0.0));
        assert_eq!(break_even_days(1.0, 0.0), None);
        assert_eq!(break_even_days(1.0, -1.0), None);
        assert!(close(break_even_days(1.0, 2.0).unwrap(), 15.0));
    }
}
