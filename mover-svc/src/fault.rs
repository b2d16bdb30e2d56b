//! Fault points for the crash harness: with the `fault-injection` feature
//! (test builds only), `STRATA_FAULT_POINT=<name>` makes the process abort,
//! as abruptly as a kill -9, the `STRATA_FAULT_HIT`-th time (default 1) it
//! reaches that point. Without the feature every point compiles to nothing.

/// Every fault point, in protocol order.
pub const POINTS: &[&str] = &[
    "accepted",
    "copying",
    "mid-copy",
    "copied",
    "verifying",
    "verified",
    "switched",
    "deleted",
    "completed",
];

/// Aborts here when this point is the one switched on and its hit has come.
#[cfg(feature = "fault-injection")]
pub fn point(name: &str) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static HITS: AtomicU64 = AtomicU64::new(0);
    if std::env::var("STRATA_FAULT_POINT").is_ok_and(|p| p == name) {
        let target: u64 = std::env::var("STRATA_FAULT_HIT")
            .ok()
            .and_then(|h| h.parse().ok())
            .unwrap_or(1);
        if HITS.fetch_add(1, Ordering::SeqCst) + 1 == target {
            eprintln!("fault point {name}: aborting");
            std::process::abort();
        }
    }
}

/// Aborts here when this point is the one switched on (feature off: never).
#[cfg(not(feature = "fault-injection"))]
#[inline(always)]
pub fn point(_name: &str) {}
