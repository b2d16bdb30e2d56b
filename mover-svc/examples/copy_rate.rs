//! Times the direct file copy (`mover_svc::local::copy`) on its own, without
//! Kafka, SQLite or the job protocol, beside one SHA-256 pass over the same
//! bytes: how far the copy is from what hashing allows.
//!
//!   cargo run --release -p mover-svc --example copy_rate -- SOURCE [DEST_DIR]
//!
//! SOURCE is read into the page cache before each copy (the copy releases
//! it), so the figures are the CPU's, not the disk's.

use std::{fs::File, io::Read, path::PathBuf, time::Instant};

use sha2::{Digest, Sha256};

mod common;
use common::cpu_seconds;

/// One pass over `source` in 1 MiB reads into a page-aligned buffer, as
/// the copy reads, hashing as it goes: (seconds, CPU seconds).
fn read_and_hash(source: &std::path::Path) -> anyhow::Result<(f64, f64)> {
    let (t, c) = (Instant::now(), cpu_seconds());
    let mut hasher = Sha256::new();
    let mut chunk = mover_svc::local::Chunk::new();
    let mut file = File::open(source)?;
    loop {
        let n = file.read(chunk.fill(1 << 20))?;
        if n == 0 {
            break;
        }
        hasher.update(&chunk.bytes()[..n]);
    }
    let _ = hasher.finalize();
    Ok((t.elapsed().as_secs_f64(), cpu_seconds() - c))
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let source = PathBuf::from(
        args.next()
            .ok_or_else(|| anyhow::anyhow!("usage: copy_rate SOURCE [DEST_DIR]"))?,
    );
    let dest_dir = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let len = std::fs::metadata(&source)?.len();
    let mib = len as f64 / (1 << 20) as f64;

    read_and_hash(&source)?; // Into the page cache.
    let (sha_s, sha_cpu) = read_and_hash(&source)?;
    println!(
        "read+sha256: {:.1} MiB/s, {:.2} s CPU",
        mib / sha_s,
        sha_cpu
    );

    for fsync in [false, true] {
        // The copy releases the source from the page cache: read it back in.
        read_and_hash(&source)?;
        let dest = dest_dir.join(format!("copy_rate.{}.out", std::process::id()));
        let (t, c) = (Instant::now(), cpu_seconds());
        let put = mover_svc::local::Put {
            fsync,
            publish: mover_svc::transfer::Publish::Replace,
            sha256: None,
        };
        let out = mover_svc::local::copy(File::open(&source)?, len, &dest, &put, |_, _| {})
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let s = t.elapsed().as_secs_f64();
        anyhow::ensure!(out.copied == out.read_back, "digests differ");
        println!(
            "copy (fsync={fsync}): {:.1} MiB/s, {:.2} s CPU, {:.2} of one read+sha256 pass at half rate",
            mib / s,
            cpu_seconds() - c,
            (mib / s) / (mib / sha_s / 2.0)
        );
        std::fs::remove_file(&dest)?;
    }
    Ok(())
}
