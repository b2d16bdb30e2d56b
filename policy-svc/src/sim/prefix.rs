//! Per-prefix statistics of a trace, causal by day, for the prefix prior of
//! the prediction ([`crate::predict::PrefixPrior`]): on day d, the reads per
//! object over the 30 days before d, and the reads that followed a read of
//! the same object within 3 days, over reads that ended before d.

use std::collections::HashMap;

use crate::predict::PrefixPrior;

use super::trace::Object;

const DAY: i64 = 86_400_000;
const WINDOW_DAYS: usize = 30;
const FOLLOW_DAYS: i64 = 3;
/// Above this many prefixes, the rest share one.
const MAX_PREFIXES: usize = 4096;
/// Object-days a prefix needs in the window before it is trusted.
const MIN_OBJECT_DAYS: f64 = 30.0;

/// The prefix of a key: everything up to its last `/` (the empty prefix for
/// keys without one).
pub fn prefix_of(key: &str) -> &str {
    key.rfind('/').map_or("", |i| &key[..=i])
}

/// Cumulative daily series per prefix.
#[derive(Debug, Clone, Default)]
pub struct PrefixStats {
    start_ms: i64,
    ids: HashMap<String, usize>,
    /// Per prefix, cumulative sums from day 0: reads, follow-ups, object-days.
    cum: Vec<[Vec<f64>; 3]>,
}

impl PrefixStats {
    /// Builds the statistics of `objects` (keys in `keys`) over `[start, end]`.
    pub fn build(objects: &[Object], keys: &[String], start_ms: i64, end_ms: i64) -> Self {
        let days = ((end_ms - start_ms) / DAY + 2).max(1) as usize;
        let mut stats = PrefixStats {
            start_ms,
            ..Default::default()
        };
        let mut daily: Vec<[Vec<f64>; 3]> = Vec::new();
        for obj in objects {
            let p = stats.id_or_insert(prefix_of(&keys[obj.key as usize]));
            if p == daily.len() {
                daily.push([vec![0.0; days], vec![0.0; days], vec![0.0; days + 1]]);
            }
            let day = |t: i64| (((t - start_ms) / DAY).max(0) as usize).min(days - 1);
            let series = &mut daily[p];
            for (i, &(t, _)) in obj.reads.iter().enumerate() {
                series[0][day(t)] += 1.0;
                let follow = obj.reads[i + 1..]
                    .iter()
                    .take_while(|r| r.0 <= t + FOLLOW_DAYS * DAY)
                    .count();
                series[1][day(t)] += follow as f64;
            }
            // Live object-days as a difference array.
            series[2][day(obj.created_ms)] += 1.0;
            series[2][day(obj.deleted_ms.unwrap_or(end_ms)) + 1] -= 1.0;
        }
        for [reads, follows, live] in daily {
            let mut running = 0.0;
            let live: Vec<f64> = live[..days]
                .iter()
                .map(|d| {
                    running += d;
                    running
                })
                .collect();
            let cumulative = |v: &[f64]| {
                let mut acc = 0.0;
                std::iter::once(0.0)
                    .chain(v.iter().map(|x| {
                        acc += x;
                        acc
                    }))
                    .collect::<Vec<f64>>()
            };
            stats
                .cum
                .push([cumulative(&reads), cumulative(&follows), cumulative(&live)]);
        }
        stats
    }

    fn id_or_insert(&mut self, prefix: &str) -> usize {
        if let Some(&id) = self.ids.get(prefix) {
            return id;
        }
        if self.ids.len() >= MAX_PREFIXES {
            return self.id_or_insert("\u{0}overflow");
        }
        let id = self.ids.len();
        self.ids.insert(prefix.to_owned(), id);
        id
    }

    /// The id of `key`'s prefix.
    pub fn id(&self, key: &str) -> Option<usize> {
        self.ids
            .get(prefix_of(key))
            .or_else(|| self.ids.get("\u{0}overflow"))
            .copied()
    }

    /// The prior of prefix `id` at `now_ms`, from complete days before it.
    pub fn prior(&self, id: usize, now_ms: i64) -> Option<PrefixPrior> {
        let [reads, follows, live] = self.cum.get(id)?;
        let d = (((now_ms - self.start_ms) / DAY).max(0) as usize).min(reads.len() - 1);
        let from = d.saturating_sub(WINDOW_DAYS);
        let object_days = live[d] - live[from];
        if object_days < MIN_OBJECT_DAYS {
            return None;
        }
        let reads_30d = (reads[d] - reads[from]) / object_days * 30.0;
        // Follow-ups are complete only for reads at least FOLLOW_DAYS old.
        let to = d.saturating_sub(FOLLOW_DAYS as usize + 1);
        let from = to.saturating_sub(WINDOW_DAYS);
        let (r, f) = (reads[to] - reads[from], follows[to] - follows[from]);
        Some(PrefixPrior {
            reads_30d,
            followups: f / (r + 1.0),
        })
    }
}
