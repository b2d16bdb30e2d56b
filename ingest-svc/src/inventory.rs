//! Inventory: list every tier's store and publish an INVENTORY event per
//! object, so that objects nobody reads are known too (they are the ones to
//! move down). An INVENTORY event's `ts` is the object's last-modified time.
//!
//! A listing entry that cannot be read is logged and skipped: on a
//! `file://` tier one bad name hides nothing else. A listing that fails
//! (a store's page, after object_store's retries; a tier's folder that
//! cannot be read) ends that tier's listing: the other tiers are still
//! listed, and the run then fails, naming the tier, so that it is run
//! again soon rather than at the next interval. A fault that stays (a
//! store key object_store refuses to parse ends its page) fails every run
//! alike, each one warned and counted
//! (`strata_ingest_inventory_cut_short_total`). A stop request ends the
//! listing where it is.

use std::{
    path::{Path, PathBuf},
    sync::atomic::{AtomicUsize, Ordering},
};

use futures::{StreamExt, TryStreamExt, stream::BoxStream};
use object_store::ObjectStoreExt;
use strata_proto::{AccessEvent, Op, codec::Encoding, time, validate};
use strata_runtime::{kafka::Publisher, tiers::TierStore};
use tokio_util::sync::CancellationToken;

/// Events published at once while an inventory runs.
const IN_FLIGHT: usize = 256;

/// Lists `tiers` and publishes their objects to `topic` until done or
/// `stop`; returns the count published.
pub async fn run_once(
    tiers: &[TierStore],
    publisher: &Publisher,
    topic: &str,
    encoding: Encoding,
    stop: &CancellationToken,
) -> anyhow::Result<usize> {
    let mut total = 0;
    let mut cut_short = Vec::new();
    for tier in tiers {
        if stop.is_cancelled() {
            break;
        }
        let now_ms = time::now_millis();
        let skipped = AtomicUsize::new(0);
        let skipped = &skipped;
        // The first error of a listing that ends at its errors.
        let failed: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        let failed = &failed;
        let published = listing(tier)
            .take_until(stop.cancelled())
            .filter_map(|listed| async move {
                match listed {
                    Ok(listed) => {
                        let event = event_of(tier, listed, now_ms);
                        if event.is_none() {
                            skipped.fetch_add(1, Ordering::Relaxed);
                        }
                        event
                    }
                    Err(Unlisted::Entry(e)) => {
                        tracing::warn!(tier = %tier.name, error = %e, "skipping a listing entry that cannot be read");
                        None
                    }
                    Err(Unlisted::Listing(e)) => {
                        let _ = failed.set(e);
                        None
                    }
                }
            })
            .map(|event| async move {
                publisher.publish(topic, &event.object_key, &event, encoding).await
            })
            .buffer_unordered(IN_FLIGHT)
            .try_fold(0usize, |n, ()| async move { Ok(n + 1) })
            .await?;
        let skipped = skipped.load(Ordering::Relaxed);
        tracing::info!(tier = %tier.name, objects = published, skipped, "inventory published");
        if skipped > 0 {
            tracing::warn!(tier = %tier.name, skipped, "inventory skipped names Strata does not take as keys (`RUST_LOG=ingest_svc=debug` lists them)");
        }
        metrics::counter!("strata_ingest_inventory_skipped_total", "tier" => tier.name.clone())
            .increment(skipped as u64);
        metrics::counter!("strata_ingest_inventory_objects_total", "tier" => tier.name.clone())
            .increment(published as u64);
        metrics::counter!("strata_ingest_events_total", "source" => "inventory")
            .increment(published as u64);
        total += published;
        if let Some(error) = failed.get() {
            tracing::warn!(tier = %tier.name, objects = published, %error, "inventory listing cut short");
            metrics::counter!("strata_ingest_inventory_cut_short_total", "tier" => tier.name.clone())
                .increment(1);
            cut_short.push(format!(
                "tier {} (after {published} objects): {error}",
                tier.name
            ));
        }
    }
    anyhow::ensure!(
        cut_short.is_empty(),
        "{total} objects published, but a listing failed: {}",
        cut_short.join("; ")
    );
    Ok(total)
}

/// Why a listing gave no object.
enum Unlisted {
    /// One entry could not be read (a file tier's file); the rest are listed.
    Entry(String),
    /// The listing itself failed and ends here: a store's page, a file
    /// tier's folder that cannot be read.
    Listing(String),
}

/// An object a listing found.
struct Listed {
    /// Its key, or `None` for a name that is no key Strata takes.
    key: Option<String>,
    /// The name as listed, for the log.
    name: String,
    size: u64,
    modified_ms: i64,
}

/// The objects of `tier`. A `file://` tier is walked here rather than
/// listed through object_store, whose listing of a folder ends at the first
/// name it cannot parse: here such a name is one skipped entry.
fn listing(tier: &TierStore) -> BoxStream<'_, Result<Listed, Unlisted>> {
    if let Some(local) = &tier.local {
        return walk(local.root.clone());
    }
    let prefix = (!tier.prefix.as_ref().is_empty()).then_some(&tier.prefix);
    tier.store
        .list(prefix)
        .filter_map(move |listed| async move {
            let meta = match listed {
                Ok(meta) => meta,
                Err(e) => return Some(Err(Unlisted::Listing(e.to_string()))),
            };
            if meta.size == 0 && is_folder_marker(tier, &meta.location).await {
                tracing::debug!(name = %meta.location, tier = %tier.name, "skipping a folder marker");
                return None;
            }
            Some(Ok(Listed {
                key: tier.key_of(&meta.location),
                name: meta.location.to_string(),
                size: meta.size,
                modified_ms: meta.last_modified.timestamp_millis(),
            }))
        })
        .boxed()
}

/// Whether an empty listed object is a folder marker: the empty `photos/`
/// that consoles and tools write for a folder on S3 or GCS, which
/// object_store lists as `photos`, an object no one can read (a HEAD of it
/// finds nothing). A real empty object is found.
async fn is_folder_marker(tier: &TierStore, location: &object_store::path::Path) -> bool {
    matches!(
        tier.store.head(location).await,
        Err(object_store::Error::NotFound { .. })
    )
}

/// The files under `root`, walked on a blocking thread and handed over a
/// bounded channel (memory stays flat on any tree; dropping the stream
/// stops the walk).
fn walk(root: PathBuf) -> BoxStream<'static, Result<Listed, Unlisted>> {
    let (tx, rx) = tokio::sync::mpsc::channel(IN_FLIGHT);
    tokio::task::spawn_blocking(move || {
        // Links inside the tier are not followed (a tier's folder may be
        // one): a key must name a file under the tier's folder, never one
        // a link reaches elsewhere, which a move would copy and delete.
        let entries = walkdir::WalkDir::new(&root)
            .min_depth(1)
            .follow_links(false);
        for entry in entries {
            let listed = match entry {
                // A tier's folder not made yet holds no object; one that
                // cannot be read fails the listing, not one entry.
                Err(e) if e.depth() == 0 => match e.io_error().map(std::io::Error::kind) {
                    Some(std::io::ErrorKind::NotFound) => return,
                    _ => Err(Unlisted::Listing(e.to_string())),
                },
                Err(e) => Err(Unlisted::Entry(e.to_string())),
                Ok(entry) => match listed_file(&root, &entry) {
                    Ok(Some(listed)) => Ok(listed),
                    Ok(None) => continue, // A folder.
                    Err(e) => Err(Unlisted::Entry(e)),
                },
            };
            if tx.blocking_send(listed).is_err() {
                return; // The inventory stopped.
            }
        }
    });
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
    .boxed()
}

/// A walked entry as listed; `None` for anything but a file.
fn listed_file(root: &Path, entry: &walkdir::DirEntry) -> Result<Option<Listed>, String> {
    let path = entry.path();
    // Folders, and links (not followed), are not objects.
    if !entry.file_type().is_file() {
        return Ok(None);
    }
    let meta = entry
        .metadata()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let relative = path.strip_prefix(root).unwrap_or(path);
    let segments: Option<Vec<&str>> = relative
        .components()
        .map(|c| c.as_os_str().to_str())
        .collect();
    let modified_ms = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as i64);
    Ok(Some(Listed {
        key: segments.map(|s| s.join("/")),
        name: relative.display().to_string(),
        size: meta.len(),
        modified_ms,
    }))
}

/// The INVENTORY event of a listed object, or `None` (logged) for one
/// Strata cannot take: a name that is no key it accepts, a size over
/// 5 TiB. A modification time before 2000 counts as 2000-01-01, one in the
/// future as now.
fn event_of(tier: &TierStore, listed: Listed, now_ms: i64) -> Option<AccessEvent> {
    let Some(key) = listed.key.filter(|key| tier.location(key).is_ok()) else {
        tracing::debug!(name = %listed.name, tier = %tier.name, "skipping object whose key Strata refuses");
        return None;
    };
    let modified_ms = listed.modified_ms.min(now_ms).max(validate::MIN_TS_MS);
    let event = AccessEvent {
        object_key: key,
        op: Op::Inventory as i32,
        size_bytes: listed.size,
        ts: Some(time::from_millis(modified_ms)),
        tier: tier.name.clone(),
        source: "inventory".into(),
        ..Default::default()
    };
    match validate::access_event(&event) {
        Ok(()) => Some(event),
        Err(e) => {
            tracing::warn!(name = %listed.name, tier = %tier.name, error = %e, "skipping object Strata cannot take");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use strata_runtime::tiers::TierConfig;

    use super::*;

    fn open_tiers(toml: &str) -> Vec<TierStore> {
        TierConfig::parse(toml, &[])
            .unwrap()
            .tiers
            .iter()
            .map(|t| t.open().unwrap())
            .collect()
    }

    /// One inventory of `tiers` to `kafka`'s `access_events`.
    async fn inventory(
        tiers: &[TierStore],
        kafka: &crate::testing::MockKafka,
    ) -> anyhow::Result<usize> {
        let stop = CancellationToken::new();
        run_once(
            tiers,
            &kafka.publisher,
            "access_events",
            Encoding::Json,
            &stop,
        )
        .await
    }

    /// A tier file's S3 tier on `moto`.
    fn moto_tier(moto: &strata_testkit::Moto, name: &str, url: &str) -> String {
        let mut toml = format!("[[tiers]]\nname = '{name}'\nurl = '{url}'\n[tiers.options]\n");
        for (k, v) in moto.tier_options() {
            toml.push_str(&format!("{k} = '{v}'\n"));
        }
        toml
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unreadable_names_are_skipped_and_odd_times_clamped() {
        strata_runtime::telemetry::init_tracing(strata_runtime::telemetry::LogFormat::Text);
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("hot");
        std::fs::create_dir_all(&root).unwrap();
        // Names object_store cannot turn into a path (its own listing ended
        // at the first it met), and a file last modified in 1970.
        std::fs::write(root.join("a\u{1}bad"), b"x").unwrap();
        std::fs::write(root.join("new.txt"), b"new").unwrap();
        let old = std::fs::File::create(root.join("old.txt")).unwrap();
        old.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(60))
            .unwrap();
        std::fs::write(root.join("z\u{2}bad"), b"x").unwrap();
        // Links are not followed: to a folder outside the tier (another
        // tier's), to a file there, and to one of the tier's own files.
        let outside = dir.path().join("warm");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("theirs.txt"), b"not hot's").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("linked")).unwrap();
        std::os::unix::fs::symlink(outside.join("theirs.txt"), root.join("l.txt")).unwrap();
        std::os::unix::fs::symlink(root.join("new.txt"), root.join("again.txt")).unwrap();
        let toml = format!(
            "[[tiers]]\nname = 'hot'\nurl = 'file://{}'\n",
            root.display()
        );
        let tiers = open_tiers(&toml);

        let kafka = crate::testing::MockKafka::start();
        let (brokers, publisher) = (&kafka.brokers, &kafka.publisher);
        let stop = CancellationToken::new();
        let published = run_once(&tiers, publisher, "access_events", Encoding::Json, &stop)
            .await
            .unwrap();
        assert_eq!(published, 2);

        let mut events =
            crate::testing::consume(brokers, "access_events", "inventory-reader", 2).await;
        for event in &events {
            assert_eq!(validate::access_event(event), Ok(()));
        }
        events.sort_by(|a, b| a.object_key.cmp(&b.object_key));
        assert_eq!(events[0].object_key, "new.txt");
        assert_eq!(events[1].object_key, "old.txt");
        assert_eq!(
            time::to_millis(events[1].ts.as_ref().unwrap()),
            validate::MIN_TS_MS,
            "1970 counts as 2000-01-01"
        );

        // Stopped before it starts: nothing is listed.
        stop.cancel();
        let none = run_once(&tiers, publisher, "access_events", Encoding::Json, &stop)
            .await
            .unwrap();
        assert_eq!(none, 0);
    }

    /// A store's listing that fails (here its bucket is missing) fails the
    /// run, naming the tier, so that it runs again soon; the tiers after
    /// it are listed all the same.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_listing_fails_the_run_after_the_other_tiers() {
        let moto = strata_testkit::Moto::start();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("kept.txt"), b"kept").unwrap();
        let mut toml = moto_tier(&moto, "cold", "s3://no-such-bucket");
        toml.push_str(&format!(
            "[[tiers]]\nname = 'hot'\nurl = 'file://{}'\n",
            dir.path().display()
        ));
        let tiers = open_tiers(&toml);

        let kafka = crate::testing::MockKafka::start();
        let error = inventory(&tiers, &kafka).await.unwrap_err().to_string();
        assert!(
            error.contains("1 objects published") && error.contains("tier cold (after 0 objects)"),
            "{error}"
        );
        let events = crate::testing::consume(&kafka.brokers, "access_events", "inv", 1).await;
        assert_eq!(events[0].object_key, "kept.txt");
    }

    /// A file tier's folder gone since the start (it is made when the tier
    /// opens) lists no object; one that cannot be read (here a link to
    /// itself) fails the run, naming its tier.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_gone_tier_folder_is_empty_and_an_unreadable_one_fails() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("hot");
        let tiers = open_tiers(&format!(
            "[[tiers]]\nname = 'hot'\nurl = 'file://{}'\n",
            root.display()
        ));
        let kafka = crate::testing::MockKafka::start();
        std::fs::remove_dir(&root).unwrap();
        assert_eq!(inventory(&tiers, &kafka).await.unwrap(), 0);

        std::os::unix::fs::symlink(&root, &root).unwrap();
        let error = inventory(&tiers, &kafka).await.unwrap_err().to_string();
        assert!(error.contains("tier hot (after 0 objects)"), "{error}");
    }

    /// On S3, a folder's marker object (`folder/`, empty) is no object to
    /// tier; an empty object is.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn folder_markers_are_not_listed_as_objects() {
        let moto = strata_testkit::Moto::start();
        moto.create_bucket("inventory");
        for key in ["folder/", "empty.txt"] {
            let response = moto.request("PUT", &format!("/inventory/{key}"));
            assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        }
        let tier = open_tiers(&moto_tier(&moto, "cold", "s3://inventory")).remove(0);
        let inside = tier.location("folder/a.txt").unwrap();
        tier.store
            .put(&inside, b"data".to_vec().into())
            .await
            .unwrap();

        let kafka = crate::testing::MockKafka::start();
        let published = inventory(&[tier], &kafka).await.unwrap();
        assert_eq!(published, 2);
        let mut events = crate::testing::consume(&kafka.brokers, "access_events", "inv", 2).await;
        events.sort_by(|a, b| a.object_key.cmp(&b.object_key));
        let listed: Vec<(&str, u64)> = events
            .iter()
            .map(|e| (e.object_key.as_str(), e.size_bytes))
            .collect();
        assert_eq!(listed, [("empty.txt", 0), ("folder/a.txt", 4)]);
    }
}
