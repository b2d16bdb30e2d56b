//! What the engine's integration tests share: two tiers and a wall clock.
#![allow(clippy::unwrap_used)]

use strata_runtime::tiers::TierConfig;

/// Wall time of the tests, in ms since the epoch.
pub const WALL: i64 = 1_800_000_000_000;

/// `hot`, then `cold` after 30 idle days (the idle rule's tiers).
pub fn tiers() -> TierConfig {
    TierConfig::parse(
        "[[tiers]]\nname='hot'\nurl='memory://'\n[[tiers]]\nname='cold'\nurl='memory://'\nidle_days=30\n",
        &[],
    )
    .unwrap()
}
