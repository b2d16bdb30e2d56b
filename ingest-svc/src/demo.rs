//! The demo workload: real objects of realistic sizes in the fastest tier
//! and a skewed stream of reads with event times spread over weeks, so that
//! placements change as a person watches. Seeded: the same seed, the same
//! workload.
//!
//! - A hot fifth of the objects is read until the end of the span.
//! - The rest are read for a few days after they are written, then never.
//! - A few objects start in the slowest tier and are read heavily at the
//!   end ("revived"), so they come back up.
//!
//! Each event's id is made of the demo's settings and the event's place in
//! it, and each object's bytes of the seed and the object's number, so a
//! run stopped part way goes on with `--resume`: the objects not yet
//! written are written, and the events published again are counted once.

use anyhow::Context;
use object_store::{ObjectStoreExt, PutOptions, PutPayload};
use rand::{Rng, SeedableRng, rngs::StdRng};
use sha2::{Digest, Sha256};
use strata_proto::{AccessEvent, Op, codec::Encoding, time};
use strata_runtime::{kafka::Publisher, tiers::TierStore};

use crate::config::DemoArgs;

const DAY_MS: i64 = 86_400_000;

/// One object of the workload and where it starts.
struct DemoObject {
    key: String,
    size: u64,
    tier: usize,
}

/// A size drawn log-uniformly between 16 KiB and 4 MiB.
fn size(rng: &mut StdRng) -> u64 {
    let (lo, hi) = (((16u64 << 10) as f64).ln(), ((4u64 << 20) as f64).ln());
    rng.random_range(lo..=hi).exp() as u64
}

/// The demo's id: a digest of what shapes its workload, so that the
/// same demo run again gives its events the same ids.
fn demo_id(args: &DemoArgs) -> String {
    let mut hasher = Sha256::new();
    hasher.update(format!(
        "{}\n{}\n{}\n{}\n{}",
        args.prefix, args.seed, args.objects, args.revived, args.days
    ));
    hex::encode(&hasher.finalize()[..8])
}

/// The bytes of the `i`th object: drawn from the seed and `i` alone, so
/// that an object written by a resumed run is the one the first run
/// would have written.
fn bytes_of(seed: u64, i: usize, size: u64) -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(seed ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let mut bytes = vec![0u8; size as usize];
    rng.fill(&mut bytes[..]);
    bytes
}

/// Builds the events of the workload, each with its id, sorted by event
/// time.
fn events(
    args: &DemoArgs,
    objects: &[DemoObject],
    tiers: &[TierStore],
    now_ms: i64,
    rng: &mut StdRng,
) -> Vec<AccessEvent> {
    let span = i64::from(args.days.max(1)) * DAY_MS;
    let mut out = Vec::new();
    let event = |key: &str, op: Op, size: u64, ts: i64, tier: &str| AccessEvent {
        object_key: key.to_owned(),
        op: op as i32,
        size_bytes: size,
        ts: Some(time::from_millis(ts)),
        tier: tier.to_owned(),
        source: "demo".into(),
        ..Default::default()
    };
    for (i, o) in objects.iter().enumerate() {
        let tier = &tiers[o.tier].name;
        let created = now_ms - rng.random_range(span / 4..=span);
        out.push(event(&o.key, Op::Put, o.size, created, tier));
        if o.tier > 0 {
            // Revived: a burst of reads in the last two days.
            for _ in 0..rng.random_range(4..8) {
                out.push(event(
                    &o.key,
                    Op::Get,
                    o.size,
                    now_ms - rng.random_range(0..2 * DAY_MS),
                    tier,
                ));
            }
        } else if i % 5 == 0 {
            // The hot set: read every few days until now.
            let mut t = created;
            while t < now_ms {
                out.push(event(&o.key, Op::Get, o.size, t, tier));
                t += rng.random_range(DAY_MS / 2..4 * DAY_MS);
            }
        } else {
            // Written, read for a few days, then never again (none after
            // now: a short span writes some objects less than five days ago).
            for _ in 0..rng.random_range(0..5) {
                out.push(event(
                    &o.key,
                    Op::Get,
                    o.size,
                    (created + rng.random_range(0..5 * DAY_MS)).min(now_ms),
                    tier,
                ));
            }
        }
    }
    let id = demo_id(args);
    for (n, e) in out.iter_mut().enumerate() {
        e.event_id = format!("demo-{id}-{n}");
    }
    out.sort_by_key(|e| e.ts.as_ref().map(time::to_millis));
    out
}

/// The tier holding `key` already, if any.
async fn tier_holding(key: &str, tiers: &[TierStore]) -> anyhow::Result<Option<String>> {
    for tier in tiers {
        match tier.store.head(&tier.location(key)?).await {
            Ok(_) => return Ok(Some(tier.name.clone())),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e).with_context(|| format!("look for {}", tier.url_of(key))),
        }
    }
    Ok(None)
}

/// Creates the objects and publishes the events; returns (objects written,
/// events published), (0, 0) when an earlier run's objects are there
/// already and `--resume` was not given.
pub async fn run(
    args: &DemoArgs,
    tiers: &[TierStore],
    publisher: &Publisher,
    topic: &str,
    encoding: Encoding,
) -> anyhow::Result<(usize, usize)> {
    anyhow::ensure!(!tiers.is_empty(), "no tiers configured");
    let mut rng = StdRng::seed_from_u64(args.seed);
    let slowest = tiers.len() - 1;
    let objects: Vec<DemoObject> = (0..args.objects + args.revived)
        .map(|i| DemoObject {
            key: format!(
                "{}/{}/object-{i:04}.bin",
                args.prefix,
                ["logs", "reports", "images", "datasets"][i % 4]
            ),
            size: size(&mut rng),
            tier: if i >= args.objects { slowest } else { 0 },
        })
        .collect();
    let mut missing: Vec<usize> = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        match tier_holding(&o.key, tiers).await? {
            // An earlier run's object, perhaps moved since: writing it
            // again would leave a second copy the catalog does not know.
            Some(tier) if !args.resume => {
                tracing::info!(
                    key = %o.key,
                    %tier,
                    "demo objects already there from an earlier run: nothing written or published \
                     (--resume goes on with a run that was stopped; another --prefix, or an empty \
                     data folder, starts a new demo)"
                );
                return Ok((0, 0));
            }
            Some(_) => {}
            None => missing.push(i),
        }
    }
    for &i in &missing {
        let o = &objects[i];
        let tier = &tiers[o.tier];
        let bytes = bytes_of(args.seed, i, o.size);
        let location = tier.location(&o.key)?;
        let opts = PutOptions {
            attributes: tier.attributes.clone(),
            ..PutOptions::default()
        };
        tier.store
            .put_opts(&location, PutPayload::from(bytes), opts)
            .await
            .with_context(|| format!("create demo object {}", tier.url_of(&o.key)))?;
    }
    let now_ms = strata_proto::time::now_millis();
    let events = events(args, &objects, tiers, now_ms, &mut rng);
    // At a low rate, chunks as small as a second's events.
    let chunk_len = match args.rate {
        0 => 256,
        rate => usize::try_from(rate).unwrap_or(256).clamp(1, 256),
    };
    let started = tokio::time::Instant::now();
    let mut published = 0;
    for chunk in events.chunks(chunk_len) {
        let sends = chunk
            .iter()
            .map(|e| publisher.publish(topic, &e.object_key, e, encoding));
        futures::future::try_join_all(sends).await?;
        metrics::counter!("strata_ingest_events_total", "source" => "demo")
            .increment(chunk.len() as u64);
        published += chunk.len() as u64;
        crate::replay::pace(args.rate, published, started).await;
    }
    tracing::info!(
        objects = objects.len(),
        written = missing.len(),
        events = events.len(),
        "demo workload published"
    );
    Ok((missing.len(), events.len()))
}

#[cfg(test)]
mod tests {
    use strata_runtime::tiers::TierConfig;

    use super::*;
    use crate::testing::MockKafka;

    /// Two memory tiers, hot and cold.
    fn hot_and_cold() -> Vec<TierStore> {
        let config = TierConfig::parse(
            "[[tiers]]\nname='hot'\nurl='memory://'\n[[tiers]]\nname='cold'\nurl='memory://'\n",
            &[],
        )
        .unwrap();
        config.tiers.iter().map(|t| t.open().unwrap()).collect()
    }

    async fn read(tier: &TierStore, path: &object_store::path::Path) -> bytes::Bytes {
        tier.store.get(path).await.unwrap().bytes().await.unwrap()
    }

    /// Six objects and one revived, over 30 days.
    fn small_demo(seed: u64) -> DemoArgs {
        DemoArgs {
            objects: 6,
            revived: 1,
            days: 30,
            seed,
            prefix: "demo".into(),
            rate: 0,
            resume: false,
        }
    }

    /// Run again over the same data (run-local.sh, restarted), the demo
    /// writes no second copy of an object an earlier run's moves put
    /// elsewhere, and publishes none of its reads twice.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_second_run_over_the_same_tiers_writes_and_publishes_nothing() {
        let kafka = MockKafka::start();
        let tiers = hot_and_cold();
        let args = small_demo(7);
        let run = || demo_run(&args, &tiers, &kafka);
        let (objects, events) = run().await;
        assert_eq!(objects, 7);
        assert!(events > 7, "{events}");
        // The mover moves one to cold meanwhile.
        let key = "demo/logs/object-0000.bin";
        let hot_path = tiers[0].location(key).unwrap();
        let bytes = read(&tiers[0], &hot_path).await;
        let cold_path = tiers[1].location(key).unwrap();
        tiers[1].store.put(&cold_path, bytes.into()).await.unwrap();
        tiers[0].store.delete(&hot_path).await.unwrap();
        assert_eq!(run().await, (0, 0));
        let again = tiers[0].store.head(&hot_path).await;
        assert!(
            matches!(again, Err(object_store::Error::NotFound { .. })),
            "{again:?}"
        );
    }

    /// A run stopped part way (here: one object never written) goes on
    /// with `--resume`: the missing object is written with the bytes the
    /// first run gave it, and every event is published again under the id
    /// it had.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_resumed_run_writes_what_is_missing_and_repeats_the_event_ids() {
        let kafka = MockKafka::start();
        let tiers = hot_and_cold();
        let mut args = small_demo(11);
        let (objects, events) = demo_run(&args, &tiers, &kafka).await;
        assert_eq!(objects, 7);
        let key = "demo/images/object-0002.bin";
        let path = tiers[0].location(key).unwrap();
        let first = read(&tiers[0], &path).await;
        tiers[0].store.delete(&path).await.unwrap();

        args.resume = true;
        assert_eq!(demo_run(&args, &tiers, &kafka).await, (1, events));
        let again = read(&tiers[0], &path).await;
        assert_eq!(again, first, "the object the first run wrote");

        let published =
            crate::testing::consume(&kafka.brokers, "access_events", "demo-reader", 2 * events)
                .await;
        // Each id names the same access (key, operation, size) in both runs.
        fn by_id(run: &[AccessEvent]) -> std::collections::BTreeMap<&str, (&str, i32, u64)> {
            run.iter()
                .map(|e| {
                    (
                        e.event_id.as_str(),
                        (e.object_key.as_str(), e.op, e.size_bytes),
                    )
                })
                .collect()
        }
        let (one, two) = published.split_at(events);
        assert_eq!(by_id(one).len(), events, "every event has an id of its own");
        assert_eq!(by_id(one), by_id(two));
        assert!(one.iter().all(|e| e.event_id.starts_with("demo-")));
    }

    /// However short the span, no read is dated after now.
    #[test]
    fn no_event_is_dated_after_now() {
        let tiers = hot_and_cold();
        let now_ms = 1_800_000_000_000;
        for days in [1, 4, 19, 120] {
            let args = DemoArgs {
                objects: 200,
                revived: 0,
                days,
                ..small_demo(3)
            };
            let mut rng = StdRng::seed_from_u64(args.seed);
            let objects: Vec<DemoObject> = (0..args.objects)
                .map(|i| DemoObject {
                    key: format!("demo/object-{i}"),
                    size: 1,
                    tier: 0,
                })
                .collect();
            let events = events(&args, &objects, &tiers, now_ms, &mut rng);
            let latest = events
                .iter()
                .filter_map(|e| e.ts.as_ref())
                .map(time::to_millis)
                .max();
            assert!(
                latest.is_some_and(|t| t <= now_ms),
                "{days} days: {latest:?}"
            );
        }
    }

    async fn demo_run(args: &DemoArgs, tiers: &[TierStore], kafka: &MockKafka) -> (usize, usize) {
        run(
            args,
            tiers,
            &kafka.publisher,
            "access_events",
            Encoding::Json,
        )
        .await
        .unwrap()
    }
}
