//! Group syncs of `file://` tiers. A direct copy between two file tiers
//! writes its file and renames it into place without an fsync of its own;
//! before the copy counts as done, it waits for a `syncfs(2)` of the
//! destination's file system that began after its writes ended. Copies that
//! wait together share one sync, so a burst of small objects pays one disk
//! flush per group instead of two per object (the file, then its folder),
//! the way the ledger's group commit shares one for their switches.
//!
//! A sync covers every file and folder entry written before it started, so
//! the switch that follows still only ever names a copy that survives power
//! loss (I1), as with per-file fsyncs.

use std::{
    collections::HashMap,
    path::Path,
    sync::{Arc, mpsc},
};

use strata_runtime::tiers::TierStore;

use crate::transfer::MoveError;

type Waiter = tokio::sync::oneshot::Sender<Result<(), String>>;

/// One file system's sync thread. Cloning shares it; it stops when the last
/// clone drops.
#[derive(Clone)]
pub struct GroupSync {
    waiters: mpsc::Sender<Waiter>,
}

impl GroupSync {
    /// Starts the sync thread of the file system holding `root`; `None`
    /// where there is no `syncfs` (not Linux), so copies fsync each file.
    pub fn start(root: &Path) -> std::io::Result<Option<Self>> {
        #[cfg(target_os = "linux")]
        {
            std::fs::create_dir_all(root)?;
            let dir = std::fs::File::open(root)?;
            let syncfs = move || rustix::fs::syncfs(&dir).map_err(std::io::Error::from);
            Self::start_with(syncfs).map(Some)
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = root;
            Ok(None)
        }
    }

    /// Starts a sync thread that calls `sync` once for each group of
    /// waiters: every waiter queued while the last call ran.
    pub fn start_with(
        sync: impl FnMut() -> std::io::Result<()> + Send + 'static,
    ) -> std::io::Result<Self> {
        let (waiters, queue) = mpsc::channel::<Waiter>();
        std::thread::Builder::new()
            .name("mover-syncfs".into())
            .spawn(move || serve(sync, &queue))?;
        Ok(GroupSync { waiters })
    }

    /// Returns once a sync that began after this call has ended.
    pub async fn sync(&self) -> Result<(), MoveError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.waiters
            .send(tx)
            .map_err(|_| MoveError::Transient("sync thread stopped".into()))?;
        rx.await
            .map_err(|_| MoveError::Transient("sync thread stopped".into()))?
            .map_err(|e| MoveError::Transient(format!("syncfs: {e}")))
    }
}

/// Takes every waiter queued while the last sync ran, syncs once, answers them.
fn serve(mut sync: impl FnMut() -> std::io::Result<()>, queue: &mpsc::Receiver<Waiter>) {
    while let Ok(first) = queue.recv() {
        let group: Vec<Waiter> = std::iter::once(first).chain(queue.try_iter()).collect();
        let result = sync().map_err(|e| e.to_string());
        metrics::counter!("strata_mover_syncfs_total").increment(1);
        for waiter in group {
            // A waiter gone (its job stopped) needs no answer.
            let _ = waiter.send(result.clone());
        }
    }
}

/// The group syncs of the tiers that fsync, by tier name.
#[derive(Clone, Default)]
pub struct Syncs(Arc<HashMap<String, GroupSync>>);

/// Syncs made otherwise, by tier name (tests time their syncs).
impl FromIterator<(String, GroupSync)> for Syncs {
    fn from_iter<I: IntoIterator<Item = (String, GroupSync)>>(syncs: I) -> Self {
        Syncs(Arc::new(syncs.into_iter().collect()))
    }
}

impl Syncs {
    /// A sync thread for each `file://` tier that fsyncs its writes.
    pub fn for_tiers<'a>(tiers: impl IntoIterator<Item = &'a TierStore>) -> anyhow::Result<Self> {
        let mut syncs = HashMap::new();
        for tier in tiers {
            let Some(local) = tier.local.as_ref().filter(|l| l.fsync) else {
                continue;
            };
            if let Some(sync) = GroupSync::start(&local.root)? {
                syncs.insert(tier.name.clone(), sync);
            }
        }
        Ok(Syncs(Arc::new(syncs)))
    }

    /// The group sync of tier `name`, if it has one.
    pub fn of(&self, name: &str) -> Option<&GroupSync> {
        self.0.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn concurrent_waiters_are_all_answered() {
        let dir = tempfile::tempdir().unwrap();
        let Some(sync) = GroupSync::start(dir.path()).unwrap() else {
            return; // No syncfs here.
        };
        let waits: Vec<_> = (0..16)
            .map(|_| {
                let sync = sync.clone();
                tokio::spawn(async move { sync.sync().await })
            })
            .collect();
        for wait in waits {
            wait.await.unwrap().unwrap();
        }
        sync.sync().await.unwrap();
    }
}
