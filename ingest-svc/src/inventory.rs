//! Inventory: list every tier's store and publish an INVENTORY event per
//! object, so that objects nobody reads are known too (they are the ones to
//! move down). An INVENTORY event's `ts` is the object's last-modified time.

use futures::TryStreamExt;
use strata_proto::{AccessEvent, Op, codec::Encoding, time};
use strata_runtime::{kafka::Publisher, tiers::TierStore};

/// Events published at once while an inventory runs.
const IN_FLIGHT: usize = 256;

/// Lists `tiers` and publishes their objects to `topic`; returns the count.
pub async fn run_once(
    tiers: &[TierStore],
    publisher: &Publisher,
    topic: &str,
    encoding: Encoding,
) -> anyhow::Result<usize> {
    let mut total = 0;
    for tier in tiers {
        let prefix = (!tier.prefix.as_ref().is_empty()).then_some(&tier.prefix);
        let listed = tier.store.list(prefix);
        let published = listed
            .map_err(anyhow::Error::from)
            .try_filter_map(|meta| async move {
                let Some(key) = tier.key_of(&meta.location) else {
                    tracing::debug!(location = %meta.location, tier = %tier.name, "skipping object whose key Strata refuses");
                    return Ok(None);
                };
                Ok(Some(AccessEvent {
                    object_key: key,
                    op: Op::Inventory as i32,
                    size_bytes: meta.size,
                    ts: Some(time::from_millis(meta.last_modified.timestamp_millis())),
                    tier: tier.name.clone(),
                    source: "inventory".into(),
                    ..Default::default()
                }))
            })
            .map_ok(|event| async move {
                publisher.publish(topic, &event.object_key, &event, encoding).await
            })
            .try_buffer_unordered(IN_FLIGHT)
            .try_fold(0usize, |n, ()| async move { Ok(n + 1) })
            .await?;
        tracing::info!(tier = %tier.name, objects = published, "inventory published");
        metrics::counter!("strata_ingest_inventory_objects_total", "tier" => tier.name.clone())
            .increment(published as u64);
        total += published;
    }
    Ok(total)
}
