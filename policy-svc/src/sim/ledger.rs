//! What a policy's placements cost over a trace: one [`Ledger`] per policy,
//! charged by an [`Account`] per object as the policy stores, reads and
//! moves it, with the same cost functions the decision uses.

use strata_runtime::tiers::Tier;

use crate::cost::{self, Breakdown};

const DAY: f64 = 86_400_000.0;

/// A policy's totals over the trace.
#[derive(Debug, Clone, Default)]
pub struct Ledger {
    pub cost: Breakdown,
    pub moves: u64,
    pub slo_violations: u64,
    /// Cost per time bucket (for the chart); empty when not charted.
    pub buckets: Vec<f64>,
    /// Start and width of a bucket, ms.
    pub bucket_start_ms: i64,
    pub bucket_ms: i64,
}

impl Ledger {
    /// A ledger that also splits cost over `n` buckets from `start_ms` to `end_ms`.
    pub fn new(charted: Option<(i64, i64, usize)>) -> Self {
        let mut ledger = Ledger::default();
        if let Some((start, end, n)) = charted {
            ledger.buckets = vec![0.0; n.max(1)];
            ledger.bucket_start_ms = start;
            ledger.bucket_ms = ((end - start) / n.max(1) as i64).max(1);
        }
        ledger
    }

    fn bucket(&self, t: i64) -> usize {
        let i = (t - self.bucket_start_ms).max(0) / self.bucket_ms;
        (i as usize).min(self.buckets.len() - 1)
    }

    fn at(&mut self, t: i64, usd: f64) {
        if !self.buckets.is_empty() {
            let i = self.bucket(t);
            self.buckets[i] += usd;
        }
    }

    fn span(&mut self, from: i64, to: i64, usd: f64) {
        if self.buckets.is_empty() || to <= from {
            return self.at(from, usd);
        }
        let per_ms = usd / (to - from) as f64;
        let mut t = from;
        while t < to {
            let i = self.bucket(t);
            let edge = if i + 1 == self.buckets.len() {
                to
            } else {
                (self.bucket_start_ms + (i as i64 + 1) * self.bucket_ms).min(to)
            };
            let edge = edge.max(t + 1);
            self.buckets[i] += per_ms * (edge - t) as f64;
            t = edge;
        }
    }

    /// Adds another ledger (of the same shape).
    pub fn merge(&mut self, other: &Ledger) {
        self.cost.add(&other.cost);
        self.moves += other.moves;
        self.slo_violations += other.slo_violations;
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
    }
}

/// One object's placement under one policy, charging `ledger` as it goes.
pub struct Account<'a> {
    pub tiers: &'a [Tier],
    pub ledger: &'a mut Ledger,
    pub size: u64,
    /// The SLO of its key, max first-byte ms.
    pub slo_ms: Option<f64>,
    pub tier: usize,
    /// When it arrived on `tier`.
    pub since_ms: i64,
    /// Storage is charged up to here.
    pub charged_ms: i64,
    /// Its last read or arrival on `tier`, whichever is later (what an
    /// auto-tiering tier prices by).
    pub idle_since_ms: i64,
}

impl<'a> Account<'a> {
    /// An object created on the first tier at `created_ms` (a PUT pays a request).
    pub fn open(
        tiers: &'a [Tier],
        ledger: &'a mut Ledger,
        size: u64,
        slo_ms: Option<f64>,
        created_ms: i64,
        put: bool,
    ) -> Self {
        let account = Account {
            tiers,
            ledger,
            size,
            slo_ms,
            tier: 0,
            since_ms: created_ms,
            charged_ms: created_ms,
            idle_since_ms: created_ms,
        };
        if put {
            let usd = cost::put_request_usd(&tiers[0]);
            account.ledger.cost.requests += usd;
            account.ledger.at(created_ms, usd);
        }
        account
    }

    /// Charges storage up to `now_ms`.
    pub fn advance(&mut self, now_ms: i64) {
        if now_ms <= self.charged_ms {
            return;
        }
        let tier = &self.tiers[self.tier];
        let days = (now_ms - self.charged_ms) as f64 / DAY;
        let idle = (self.charged_ms - self.idle_since_ms) as f64 / DAY;
        let usd = cost::storage_idle_usd(tier, self.size, idle, days);
        self.ledger.cost.storage += usd;
        self.ledger.span(self.charged_ms, now_ms, usd);
        self.charged_ms = now_ms;
    }

    /// A read of `bytes` at `now_ms`.
    pub fn read(&mut self, now_ms: i64, bytes: u64) {
        self.advance(now_ms);
        let tier = &self.tiers[self.tier];
        if self.slo_ms.is_some_and(|slo| tier.first_byte_ms > slo) {
            self.ledger.slo_violations += 1;
        }
        let (request, retrieval) = (
            cost::get_request_usd(tier),
            cost::retrieval_usd(tier, bytes),
        );
        self.ledger.cost.requests += request;
        self.ledger.cost.retrieval += retrieval;
        self.ledger.at(now_ms, request + retrieval);
        self.idle_since_ms = now_ms;
    }

    /// Moves the object to `to` at `now_ms`.
    pub fn move_to(&mut self, now_ms: i64, to: usize) {
        if to == self.tier {
            return;
        }
        self.advance(now_ms);
        let resident = (now_ms - self.since_ms) as f64 / DAY;
        let (transition, early) =
            cost::move_usd(&self.tiers[self.tier], &self.tiers[to], self.size, resident);
        self.ledger.cost.transitions += transition;
        self.ledger.cost.early_delete += early;
        self.ledger.at(now_ms, transition + early);
        self.ledger.moves += 1;
        self.tier = to;
        self.since_ms = now_ms;
        self.idle_since_ms = now_ms;
    }

    /// The object's end: deleted at `now_ms` (early delete applies), or still
    /// alive when the trace ends (`deleted` false).
    pub fn close(mut self, now_ms: i64, deleted: bool) {
        self.advance(now_ms);
        if deleted {
            let resident = (now_ms - self.since_ms) as f64 / DAY;
            let usd = cost::early_delete_usd(&self.tiers[self.tier], self.size, resident);
            self.ledger.cost.early_delete += usd;
            self.ledger.at(now_ms, usd);
        }
    }
}
