//! Times the file work of small jobs on its own: what mover-svc's protocol
//! asks of the file system for each object moved between two `file://`
//! tiers, without Kafka, SQLite or the hand-offs between threads. For each
//! object: a copy hashed with SHA-256 into a staged file, read back, linked
//! into place (`mover_svc::local::copy_file`); for each batch of a thread's
//! objects, one `syncfs` of the destination (as the group sync does), then
//! the unlink of each source and of the folders that leaves empty
//! (`mover_svc::local::delete_files`, as a batch's deletes do). Its rate
//! bounds what mover-svc can reach on the same disk; the gap between the
//! two is the cost of coordination (ledger, statuses, threads).
//!
//!   cargo run --release -p mover-svc --example small_rate -- SOURCE_DIR DEST_DIR [THREADS]
//!
//! Every file under SOURCE_DIR is moved to the same path under DEST_DIR:
//! the sources are deleted.

use std::{
    path::{Path, PathBuf},
    sync::atomic::{AtomicUsize, Ordering},
    time::Instant,
};

mod common;
use common::cpu_seconds;

/// Objects a thread copies before it syncs and deletes their sources.
const BATCH: usize = 16;

/// Every file under `dir`, as paths relative to it.
fn files_under(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut folders = vec![PathBuf::new()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(dir.join(&folder))? {
            let entry = entry?;
            let relative = folder.join(entry.file_name());
            if entry.file_type()?.is_dir() {
                folders.push(relative);
            } else {
                found.push(relative);
            }
        }
    }
    Ok(found)
}

/// Makes what was written on `folder`'s file system durable: one `syncfs`,
/// as the mover's group sync does (`fsync` of the folder where there is no
/// `syncfs`).
fn sync(folder: &std::fs::File) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    return rustix::fs::syncfs(folder).map_err(std::io::Error::from);
    #[cfg(not(target_os = "linux"))]
    folder.sync_all()
}

/// Moves the files of `files` that the shared `next` hands this thread.
fn mover(source: &Path, dest: &Path, files: &[PathBuf], next: &AtomicUsize) -> anyhow::Result<()> {
    let dest_folder = std::fs::File::open(dest)?;
    // As the mover's batches write: only where no file is, synced by folder.
    let put = mover_svc::local::Put {
        fsync: false,
        publish: mover_svc::transfer::Publish::IfAbsent,
        sha256: None,
    };
    loop {
        let start = next.fetch_add(BATCH, Ordering::Relaxed);
        if start >= files.len() {
            return Ok(());
        }
        let batch = &files[start..files.len().min(start + BATCH)];
        for file in batch {
            let (from, to) = (source.join(file), dest.join(file));
            let copied = mover_svc::local::copy_file(&from, &to, &put, |_, _| {})
                .map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
            anyhow::ensure!(
                copied.copied == copied.read_back,
                "{}: read back differs",
                file.display()
            );
        }
        sync(&dest_folder)?;
        let sources: Vec<(PathBuf, PathBuf)> = batch
            .iter()
            .map(|file| (source.join(file), source.to_path_buf()))
            .collect();
        let gone = mover_svc::local::delete_files(&sources, |_, _| true);
        anyhow::ensure!(gone.iter().all(|g| *g), "a source was not deleted");
    }
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: small_rate SOURCE_DIR DEST_DIR [THREADS]";
    let source = PathBuf::from(args.next().ok_or_else(|| anyhow::anyhow!(usage))?);
    let dest = PathBuf::from(args.next().ok_or_else(|| anyhow::anyhow!(usage))?);
    let threads: usize = match args.next() {
        Some(n) => n.parse().map_err(|_| anyhow::anyhow!(usage))?,
        None => 4,
    };
    std::fs::create_dir_all(&dest)?;
    let files = files_under(&source)?;
    let next = AtomicUsize::new(0);
    let (t, c) = (Instant::now(), cpu_seconds());
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads.max(1))
            .map(|_| scope.spawn(|| mover(&source, &dest, &files, &next)))
            .collect();
        workers
            .into_iter()
            .try_for_each(|w| w.join().map_err(|_| anyhow::anyhow!("a thread panicked"))?)
    })?;
    let (s, cpu) = (t.elapsed().as_secs_f64(), cpu_seconds() - c);
    println!(
        "{} objects moved in {s:.2} s: {:.1} objects/s, {cpu:.2} s CPU ({:.3} ms an object), {threads} threads",
        files.len(),
        files.len() as f64 / s,
        cpu * 1e3 / files.len().max(1) as f64,
    );
    Ok(())
}
