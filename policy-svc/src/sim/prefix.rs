//! The prefix priors of a trace, day by day: every object's creation, reads
//! and deletion replayed in time order through the daemon's own per-prefix
//! statistics ([`crate::prefix::PrefixStats`]), with the prior of each
//! prefix taken at the start of each day, for the per-object replays to
//! look up causally.

use std::collections::HashMap;

use crate::{
    predict::PrefixPrior,
    prefix::{self, LOOKBACK_MS, PrefixStats},
    store::RECENT_READS_KEPT,
};

use super::trace::Object;

/// Above this many prefixes, the rest share one.
const MAX_PREFIXES: usize = 4096;
const OVERFLOW: &str = "\u{0}overflow";

/// Per prefix, its prior on each day of the trace.
#[derive(Debug, Clone, Default)]
pub struct PrefixPriors {
    first_day: i64,
    ids: HashMap<String, usize>,
    /// `[prefix][day - first_day]`.
    priors: Vec<Vec<Option<PrefixPrior>>>,
}

/// What happens to an object, in the order the daemon would see it.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Created,
    Read(usize),
    Deleted,
}

impl PrefixPriors {
    /// Replays `objects` (keys in `keys`) over `[start_ms, end_ms]`.
    pub fn build(objects: &[Object], keys: &[String], start_ms: i64, end_ms: i64) -> Self {
        let first_day = prefix::day_of(start_ms);
        let days = (prefix::day_of(end_ms) - first_day + 1).max(1) as usize;
        let mut out = PrefixPriors {
            first_day,
            ..Default::default()
        };
        let mut happenings: Vec<(i64, Kind, usize)> = Vec::new();
        let mut prefix_ids = Vec::with_capacity(objects.len());
        for (o, obj) in objects.iter().enumerate() {
            prefix_ids.push(out.id_or_insert(prefix::prefix_of(&keys[obj.key as usize])));
            happenings.push((obj.created_ms, Kind::Created, o));
            happenings.extend((0..obj.reads.len()).map(|i| (obj.reads[i].0, Kind::Read(i), o)));
            if let Some(gone) = obj.deleted_ms {
                happenings.push((gone, Kind::Deleted, o));
            }
        }
        happenings.sort_unstable();
        let mut stats: Vec<PrefixStats> = vec![PrefixStats::new(start_ms); out.ids.len()];
        out.priors = vec![Vec::with_capacity(days); out.ids.len()];
        // The prior on day d depends only on the days before it, so each
        // prefix's priors are taken up to an event's day before applying it.
        let take = |stats: &mut PrefixStats, priors: &mut Vec<Option<PrefixPrior>>, to: usize| {
            while priors.len() <= to.min(days - 1) {
                let day_ms = (first_day + priors.len() as i64) * 86_400_000;
                priors.push(stats.prior(day_ms));
            }
        };
        for (at, kind, o) in happenings {
            let (obj, p) = (&objects[o], prefix_ids[o]);
            let day = (prefix::day_of(at) - first_day).max(0) as usize;
            take(&mut stats[p], &mut out.priors[p], day);
            let s = &mut stats[p];
            match kind {
                Kind::Created => s.created(obj.created_ms),
                Kind::Deleted => s.deleted(obj.created_ms, at),
                Kind::Read(i) => {
                    // The reads the daemon would still hold for the object.
                    let from = obj.reads[..i].partition_point(|r| r.0 < at - LOOKBACK_MS);
                    let from = from.max(i.saturating_sub(RECENT_READS_KEPT));
                    let before: Vec<i64> = obj.reads[from..i].iter().map(|r| r.0).collect();
                    s.read(obj.created_ms, at, &before);
                }
            }
        }
        for (s, priors) in stats.iter_mut().zip(&mut out.priors) {
            take(s, priors, days - 1);
        }
        out
    }

    fn id_or_insert(&mut self, prefix: &str) -> usize {
        if let Some(&id) = self.ids.get(prefix) {
            return id;
        }
        if self.ids.len() >= MAX_PREFIXES {
            return self.id_or_insert(OVERFLOW);
        }
        let id = self.ids.len();
        self.ids.insert(prefix.to_owned(), id);
        id
    }

    /// The id of `key`'s prefix.
    pub fn id(&self, key: &str) -> Option<usize> {
        self.ids
            .get(prefix::prefix_of(key))
            .or_else(|| self.ids.get(OVERFLOW))
            .copied()
    }

    /// The prior of prefix `id` on the day of `now_ms`.
    pub fn prior(&self, id: usize, now_ms: i64) -> Option<PrefixPrior> {
        let priors = self.priors.get(id)?;
        let day = (prefix::day_of(now_ms) - self.first_day).max(0) as usize;
        priors.get(day.min(priors.len().checked_sub(1)?)).copied()?
    }
}
