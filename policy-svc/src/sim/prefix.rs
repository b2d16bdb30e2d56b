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
/// Only objects at least this old count toward the prefix's read rate: a
/// prefix of young objects says little yet about when they will be read.
const MATURE_DAYS: i64 = 30;
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
    /// Per prefix, cumulative sums from day 0 over mature objects: reads,
    /// follow-ups, object-days; then over all objects: reads, object-days.
    cum: Vec<[Vec<f64>; 5]>,
}

impl PrefixStats {
    /// Builds the statistics of `objects` (keys in `keys`) over `[start, end]`.
    pub fn build(objects: &[Object], keys: &[String], start_ms: i64, end_ms: i64) -> Self {
        let days = ((end_ms - start_ms) / DAY + 2).max(1) as usize;
        let mut stats = PrefixStats {
            start_ms,
            ..Default::default()
        };
        let mut daily: Vec<[Vec<f64>; 5]> = Vec::new();
        for obj in objects {
            let p = stats.id_or_insert(prefix_of(&keys[obj.key as usize]));
            if p == daily.len() {
                let zeros = || vec![0.0; days + 1];
                daily.push([zeros(), zeros(), zeros(), zeros(), zeros()]);
            }
            let day = |t: i64| (((t - start_ms) / DAY).max(0) as usize).min(days - 1);
            let series = &mut daily[p];
            let mature = obj.created_ms + MATURE_DAYS * DAY;
            for (i, &(t, _)) in obj.reads.iter().enumerate() {
                series[3][day(t)] += 1.0;
                if t < mature {
                    continue;
                }
                series[0][day(t)] += 1.0;
                let follow = obj.reads[i + 1..]
                    .iter()
                    .take_while(|r| r.0 <= t + FOLLOW_DAYS * DAY)
                    .count();
                series[1][day(t)] += follow as f64;
            }
            // Live object-days as a difference array.
            let gone = obj.deleted_ms.unwrap_or(end_ms);
            series[4][day(obj.created_ms)] += 1.0;
            series[4][day(gone) + 1] -= 1.0;
            if mature < gone {
                series[2][day(mature)] += 1.0;
                series[2][day(gone) + 1] -= 1.0;
            }
        }
        for [reads, follows, live, all_reads, all_live] in daily {
            let running = |v: &[f64]| {
                let mut acc = 0.0;
                v[..days]
                    .iter()
                    .map(|d| {
                        acc += d;
                        acc
                    })
                    .collect::<Vec<f64>>()
            };
            let (live, all_live) = (running(&live), running(&all_live));
            let cumulative = |v: &[f64]| {
                let mut acc = 0.0;
                std::iter::once(0.0)
                    .chain(v.iter().map(|x| {
                        acc += x;
                        acc
                    }))
                    .collect::<Vec<f64>>()
            };
            stats.cum.push([
                cumulative(&reads[..days]),
                cumulative(&follows[..days]),
                cumulative(&live),
                cumulative(&all_reads[..days]),
                cumulative(&all_live),
            ]);
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

    /// The prior of prefix `id` at `now_ms`, from complete days before it:
    /// from its mature objects when there are enough, else (provisional,
    /// a floor under the default prior) from all its objects.
    pub fn prior(&self, id: usize, now_ms: i64) -> Option<PrefixPrior> {
        let [reads, follows, live, all_reads, all_live] = self.cum.get(id)?;
        let d = (((now_ms - self.start_ms) / DAY).max(0) as usize).min(reads.len() - 1);
        let from = d.saturating_sub(WINDOW_DAYS);
        let object_days = live[d] - live[from];
        if object_days < MIN_OBJECT_DAYS {
            let all_days = all_live[d] - all_live[from];
            return (all_days >= MIN_OBJECT_DAYS).then(|| PrefixPrior {
                reads_30d: (all_reads[d] - all_reads[from]) / all_days * 30.0,
                followups: 0.0,
                provisional: true,
            });
        }
        let reads_30d = (reads[d] - reads[from]) / object_days * 30.0;
        // Follow-ups are complete only for reads at least FOLLOW_DAYS old.
        let to = d.saturating_sub(FOLLOW_DAYS as usize + 1);
        let from = to.saturating_sub(WINDOW_DAYS);
        let (r, f) = (reads[to] - reads[from], follows[to] - follows[from]);
        Some(PrefixPrior {
            reads_30d,
            followups: f / (r + 1.0),
            provisional: false,
        })
    }
}
