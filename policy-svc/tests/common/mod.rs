//! What the engine's integration tests share: two tiers and a wall clock.
#![allow(clippy::unwrap_used)]

use policy_svc::{
    engine::{self, Input, Payload},
    store::Store,
};
use strata_proto::{MigrationJob, MigrationStatus};
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

/// Applies one message at `offset` of partition 0 of topic `t`, at wall
/// time `wall`, in a transaction of its own.
#[allow(dead_code)] // Not every test binary that includes `common` applies one at a time.
pub async fn apply(store: &Store, offset: i64, payload: Payload, wall: i64) {
    let input = Input {
        topic: "t".into(),
        partition: 0,
        offset,
        payload,
    };
    store
        .transaction(move |tx| engine::apply_batch(tx, &[input], &tiers(), wall))
        .await
        .unwrap();
}

/// The status fields that name `job`.
#[allow(dead_code)] // Not every test binary that includes `common` answers jobs.
pub fn status_of(job: &MigrationJob) -> MigrationStatus {
    MigrationStatus {
        job_key: job.job_key.clone(),
        object_key: job.object_key.clone(),
        from_tier: job.from_tier.clone(),
        to_tier: job.to_tier.clone(),
        generation: job.generation,
        ..Default::default()
    }
}
