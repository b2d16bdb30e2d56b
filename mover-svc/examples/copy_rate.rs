//! Times the direct file copy (`mover_svc::local::copy`) on its own, without
//! Kafka, SQLite or the job protocol, beside one SHA-256 pass over the same
//! bytes: how far the copy is from what hashing allows.
//!
//!   cargo run --release -p mover-svc --example copy_rate -- SOURCE [DEST_DIR]
//!
//! SOURCE should be in the page cache (read it once first) so the figures
//! are the CPU's, not the disk's.

use std::{fs::File, io::Read, path::PathBuf, time::Instant};

use sha2::{Digest, Sha256};

/// CPU time this process has used, all threads.
#[cfg(target_os = "linux")]
fn cpu_seconds() -> f64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    t.tv_sec as f64 + t.tv_nsec as f64 * 1e-9
}

#[cfg(not(target_os = "linux"))]
fn cpu_seconds() -> f64 {
    f64::NAN
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

    let (t, c) = (Instant::now(), cpu_seconds());
    // 1 MiB reads into a page-aligned buffer, as the copy's.
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; (1 << 20) + 4096];
    let start = buf.as_ptr().align_offset(4096).min(4096);
    let chunk = &mut buf[start..start + (1 << 20)];
    let mut file = File::open(&source)?;
    loop {
        let n = file.read(chunk)?;
        if n == 0 {
            break;
        }
        hasher.update(&chunk[..n]);
    }
    let _ = hasher.finalize();
    let sha_s = t.elapsed().as_secs_f64();
    println!(
        "read+sha256: {:.1} MiB/s, {:.2} s CPU",
        mib / sha_s,
        cpu_seconds() - c
    );

    for fsync in [false, true] {
        let dest = dest_dir.join(format!("copy_rate.{}.out", std::process::id()));
        let (t, c) = (Instant::now(), cpu_seconds());
        let out = mover_svc::local::copy(File::open(&source)?, len, &dest, fsync, |_, _| {})
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
