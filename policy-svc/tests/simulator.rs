//! The simulator on synthetic workloads of known structure: Strata against
//! every online baseline and the offline optimum, asserted on cost, over
//! four seeds each, with the five AWS S3 classes (like for like with
//! Intelligent-Tiering's rule) and with Intelligent-Tiering as a sixth tier
//! Strata may use.
#![allow(clippy::unwrap_used)]

use policy_svc::{
    placement::CostParams,
    presets,
    sim::{
        self,
        policies::Policy,
        synth::{self, Mix},
    },
};
use strata_runtime::tiers::TierConfig;

const NONE: Mix = Mix {
    days: 730,
    hot: 0,
    hot_reads: 0,
    cold: 0,
    reports: 0,
    bursts: 0,
};

const SEEDS: [u64; 4] = [7, 8, 9, 10];

/// Which tiers a check runs on.
#[derive(Clone, Copy)]
enum Tiers {
    /// Standard, Standard-IA, Glacier IR, Glacier Flexible, Deep Archive.
    Five,
    /// The five and S3 Intelligent-Tiering.
    WithIntelligent,
}

impl Tiers {
    fn config(self) -> TierConfig {
        match self {
            Tiers::Five => presets::aws_s3(),
            Tiers::WithIntelligent => presets::aws_s3_intelligent(),
        }
    }
}

fn report(mix: Mix, seed: u64, tiers: Tiers) -> sim::Report {
    let trace = synth::generate(mix, seed);
    let params = CostParams {
        default_slo_ms: Some(1000.0),
        ..CostParams::default()
    };
    sim::simulate(&trace, &tiers.config(), &params, 0, |_| {})
}

/// On every seed, Strata must cost less than each of `beats` and at most
/// `within` times the optimum, and no policy may beat the optimum. The
/// issue's goal is every online baseline and 1.10 on each workload; the
/// bounds below are what the current decision achieves on all four seeds
/// (see docs/simulator.md, "Where it stands"), kept as regression guards,
/// with each workload's gap to the goal said where it is asserted.
fn check(name: &str, mix: Mix, tiers: Tiers, beats: &[Policy], within: f64) -> Vec<sim::Report> {
    SEEDS
        .iter()
        .map(|&seed| {
            let r = report(mix, seed, tiers);
            let strata = r.total(Policy::Strata);
            let optimum = r.total(Policy::Optimum);
            eprintln!("{name}, seed {seed}:\n{}", sim::table(&r));
            for &baseline in beats {
                let other = r.total(baseline);
                assert!(
                    strata < other,
                    "{name} seed {seed}: strata {strata} >= {} {other}",
                    baseline.name()
                );
            }
            for policy in Policy::ALL {
                assert!(
                    optimum <= r.total(policy) * 1.0001,
                    "{name} seed {seed}: {} beats the optimum",
                    policy.name()
                );
            }
            assert!(
                strata <= optimum * within,
                "{name} seed {seed}: strata {strata} vs optimum {optimum}"
            );
            assert_eq!(r.ledger(Policy::Strata).slo_violations, 0);
            r
        })
        .collect()
}

const ONLINE: [Policy; 3] = [Policy::AlwaysHot, Policy::Age, Policy::IntelligentTiering];

const HOT: Mix = Mix {
    hot: 100,
    hot_reads: 20_000,
    ..NONE
};

/// Every object here is read more than once a month (Zipf(1) over 100
/// objects puts even the last at 1.6 reads a month, at random times), above
/// Standard-IA's break-even, so on the five classes the right online
/// placement is Standard: Strata moves nothing and costs what always-hot
/// does. Intelligent-Tiering is cheaper because its moves down after 30
/// idle days cost nothing and its reads pay no retrieval; under tier
/// billing, where a Poisson reader's next gap cannot be foreseen, no online
/// policy gets that gain.
#[test]
fn zipf_hot_set_on_the_five_classes() {
    for r in check("hot", HOT, Tiers::Five, &[Policy::Age], 1.04) {
        assert!(r.total(Policy::Strata) <= r.total(Policy::AlwaysHot) * (1.0 + 1e-9));
    }
}

/// With Intelligent-Tiering as a tier, Strata hands it the sparse readers
/// and keeps the frequent ones on Standard (no monitoring fee): it costs
/// about what Intelligent-Tiering does, within 0.3 % either way (below it
/// on three seeds of four; goal unmet), and less than always-hot.
#[test]
fn zipf_hot_set_with_intelligent_tiering() {
    let reports = check(
        "hot+it",
        HOT,
        Tiers::WithIntelligent,
        &[Policy::AlwaysHot, Policy::Age],
        1.02,
    );
    for r in reports {
        let (strata, it) = (r.total(Policy::Strata), r.total(Policy::IntelligentTiering));
        assert!(strata <= it * 1.003, "strata {strata} it {it}");
        assert!(
            r.ledger(Policy::Strata).moves > 0,
            "the sparse readers move"
        );
    }
}

#[test]
fn cold_tail_never_read_again() {
    for tiers in [Tiers::Five, Tiers::WithIntelligent] {
        check("cold", Mix { cold: 500, ..NONE }, tiers, &ONLINE, 1.01);
    }
}

/// Reports written while their prefix has no history look like the cold
/// tail until their first read (Glacier IR after a few days), then come
/// back once; after that the lifetime rate keeps them on Standard, and
/// later reports, whose prefix is known, stay there from the start. A
/// report read steadily is priced over the span of its reads (up to a
/// year) rather than the 60-day horizon, so one left on Glacier IR comes
/// back: at one read a month its retrieval repays in 82 days (before that,
/// seed 9 reached 1.20x). Within 1.10x of the optimum and below the age
/// rules on every seed, but above always-hot and Intelligent-Tiering by
/// 3 % to 6 % (goal unmet): the optimum's edge is Standard-IA for readers
/// of exactly one read a month, a 2 % saving that the hysteresis margin
/// refuses online, and the first trip to Glacier IR.
#[test]
fn monthly_reports() {
    for tiers in [Tiers::Five, Tiers::WithIntelligent] {
        let mix = Mix {
            reports: 200,
            ..NONE
        };
        for r in check("reports", mix, tiers, &[Policy::Age], 1.10) {
            let (strata, hot) = (r.total(Policy::Strata), r.total(Policy::AlwaysHot));
            assert!(strata <= hot * 1.06, "strata {strata} always-hot {hot}");
        }
    }
}

/// Below every online baseline (Intelligent-Tiering by 0.1 % to 2 %, by
/// seed), but no online policy reaches 1.10 here: the first read of each
/// burst comes from Glacier IR (a retrieval the optimum, moving up the day
/// before, does not pay), 0.30x of the optimum on its own. The prefix's
/// follow-ups, and before it has seen a burst the object's own run, bring
/// the object up early in its burst and, once it has been idle a day, down
/// again.
#[test]
fn burst_after_a_quiet_year() {
    for tiers in [Tiers::Five, Tiers::WithIntelligent] {
        let mix = Mix {
            bursts: 200,
            ..NONE
        };
        check("bursts", mix, tiers, &ONLINE, 1.35);
    }
}

/// The goal: every online baseline, and 1.10 of the optimum (met).
#[test]
fn the_sample_mix() {
    for tiers in [Tiers::Five, Tiers::WithIntelligent] {
        check("sample", Mix::SAMPLE, tiers, &ONLINE, 1.07);
    }
}
