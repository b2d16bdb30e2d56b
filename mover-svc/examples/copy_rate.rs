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

fn cpu_seconds() -> f64 {
    // utime + stime of this process (fields 14 and 15 of /proc/self/stat),
    // in clock ticks of USER_HZ, which Linux fixes at 100 for user space.
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, s)| s).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
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
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut file = File::open(&source)?;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
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
