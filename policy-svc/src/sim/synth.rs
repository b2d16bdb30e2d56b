//! Synthetic traces with known structure, for tests, the shipped sample and
//! benchmarks: a Zipf hot set, a long cold tail never read again, monthly
//! report files read once a month, and a burst after a quiet year.

use std::io::Write;

use super::trace::{Event, Op, Trace};

const DAY: i64 = 86_400_000;
/// 2025-01-01T00:00:00Z, where synthetic traces start.
pub const START_MS: i64 = 1_735_689_600_000;

/// A seeded generator (splitmix64): the same seed, the same trace.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.unit() * (hi - lo).max(1) as f64) as i64
    }

    /// Log-uniform size between `lo` and `hi` bytes.
    pub fn size(&mut self, lo: u64, hi: u64) -> u64 {
        let (a, b) = ((lo as f64).ln(), (hi as f64).ln());
        (a + self.unit() * (b - a)).exp() as u64
    }
}

/// How many objects of each kind, and over how long.
#[derive(Debug, Clone, Copy)]
pub struct Mix {
    pub days: i64,
    pub hot: usize,
    /// Reads of the hot set in total, Zipf(1) over its objects.
    pub hot_reads: usize,
    pub cold: usize,
    pub reports: usize,
    pub bursts: usize,
}

impl Mix {
    /// The mix of the shipped sample: two years, about 40,000 events.
    pub const SAMPLE: Mix = Mix {
        days: 730,
        hot: 200,
        hot_reads: 20_000,
        cold: 3000,
        reports: 400,
        bursts: 300,
    };

    /// The same mix with every count times `factor` (rounded; a kind the
    /// mix has keeps at least one), over the same days.
    pub fn scaled(self, factor: f64) -> Mix {
        let scale = |n: usize| {
            if n == 0 {
                0
            } else {
                ((n as f64 * factor).round() as usize).max(1)
            }
        };
        Mix {
            days: self.days,
            hot: scale(self.hot),
            hot_reads: scale(self.hot_reads),
            cold: scale(self.cold),
            reports: scale(self.reports),
            bursts: scale(self.bursts),
        }
    }
}

/// Generates a trace of `mix` from `seed`.
pub fn generate(mix: Mix, seed: u64) -> Trace {
    let mut rng = Rng::new(seed);
    let mut keys = Vec::new();
    let mut events = Vec::new();
    let span = mix.days * DAY;
    let add = |keys: &mut Vec<String>, name: String| {
        keys.push(name);
        (keys.len() - 1) as u32
    };
    let ev = |ts: i64, key: u32, op: Op, size: u64| Event {
        ts_ms: START_MS + ts,
        key,
        op,
        size,
        bytes: size,
    };
    // Zipf hot set, written at the start and read all along.
    let hot: Vec<(u32, u64)> = (0..mix.hot)
        .map(|i| {
            let k = add(&mut keys, format!("app/hot/{i:05}.bin"));
            let size = rng.size(1 << 20, 64 << 20);
            events.push(ev(rng.range(0, DAY), k, Op::Put, size));
            (k, size)
        })
        .collect();
    let weights: Vec<f64> = (1..=mix.hot.max(1)).map(|r| 1.0 / r as f64).collect();
    let total: f64 = weights.iter().sum();
    let mut cumulative = Vec::with_capacity(weights.len());
    let mut acc = 0.0;
    for w in &weights {
        acc += w / total;
        cumulative.push(acc);
    }
    for _ in 0..mix.hot_reads.min(if mix.hot == 0 { 0 } else { usize::MAX }) {
        let u = rng.unit();
        let i = cumulative.partition_point(|&c| c < u).min(mix.hot - 1);
        let (k, size) = hot[i];
        events.push(ev(rng.range(DAY, span), k, Op::Get, size));
    }
    // The cold tail: backups written over the first year, never read.
    for i in 0..mix.cold {
        let k = add(&mut keys, format!("backups/{i:06}.tar"));
        let size = rng.size(8 << 20, 512 << 20);
        events.push(ev(rng.range(0, span / 2), k, Op::Put, size));
    }
    // Monthly reports: each written once, then read about every 30 days.
    for i in 0..mix.reports {
        let k = add(&mut keys, format!("reports/{i:04}.csv"));
        let size = rng.size(4 << 20, 64 << 20);
        let mut t = rng.range(0, 60 * DAY);
        events.push(ev(t, k, Op::Put, size));
        loop {
            t += 30 * DAY + rng.range(-2 * DAY, 2 * DAY);
            if t >= span {
                break;
            }
            events.push(ev(t, k, Op::Get, size));
        }
    }
    // A burst after a quiet year: written early, read heavily for three
    // days in the second year, quiet again.
    for i in 0..mix.bursts {
        let k = add(&mut keys, format!("archive/{i:05}.parquet"));
        let size = rng.size(16 << 20, 256 << 20);
        let written = rng.range(0, 30 * DAY);
        events.push(ev(written, k, Op::Put, size));
        let burst = written + 365 * DAY + rng.range(0, 180 * DAY);
        for _ in 0..rng.range(10, 40) {
            events.push(ev(burst + rng.range(0, 3 * DAY), k, Op::Get, size));
        }
    }
    events.retain(|e| e.ts_ms < START_MS + span);
    events.sort_by_key(|e| e.ts_ms);
    Trace {
        keys,
        events,
        skipped: 0,
    }
}

/// Writes `trace` as the generic CSV (`ts,key,op,size`).
pub fn write_csv(trace: &Trace, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "ts,key,op,size")?;
    for e in &trace.events {
        let op = match e.op {
            Op::Get => "GET",
            Op::Put => "PUT",
            Op::Delete => "DELETE",
            Op::Head => "HEAD",
        };
        writeln!(
            out,
            "{},{},{op},{}",
            e.ts_ms, trace.keys[e.key as usize], e.size
        )?;
    }
    Ok(())
}
