//! The simulator on synthetic workloads of known structure: Strata against
//! every online baseline and the offline optimum, asserted on cost.
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

const NONE: Mix = Mix {
    days: 730,
    hot: 0,
    hot_reads: 0,
    cold: 0,
    reports: 0,
    bursts: 0,
};

fn report(mix: Mix) -> sim::Report {
    let trace = synth::generate(mix, 7);
    let params = CostParams {
        default_slo_ms: Some(1000.0),
        ..CostParams::default()
    };
    sim::simulate(&trace, &presets::aws_s3(), &params, 0, |_| {})
}

/// Strata must cost less than each of `beats` and at most `within` times
/// the optimum. The goal is every online baseline and 1.10 on each
/// workload; the bounds below are what the current decision achieves (see
/// docs/simulator.md, "Where it stands"), kept as regression guards, with
/// each workload's gap to the goal said where it is asserted.
fn check(name: &str, mix: Mix, beats: &[Policy], within: f64) {
    let r = report(mix);
    let strata = r.total(Policy::Strata);
    let optimum = r.total(Policy::Optimum);
    eprintln!("{name}:\n{}", sim::table(&r));
    for &baseline in beats {
        let other = r.total(baseline);
        assert!(
            strata < other,
            "{name}: strata {strata} >= {} {other}",
            baseline.name()
        );
    }
    for policy in Policy::ALL {
        assert!(
            optimum <= r.total(policy) * 1.0001,
            "{name}: {} beats the optimum",
            policy.name()
        );
    }
    assert!(
        strata <= optimum * within,
        "{name}: strata {strata} vs optimum {optimum}"
    );
    assert_eq!(r.ledger(Policy::Strata).slo_violations, 0);
}

const ONLINE: [Policy; 3] = [Policy::AlwaysHot, Policy::Age, Policy::IntelligentTiering];

/// Every object here is read more than once a month (Zipf(1) over 100
/// objects puts even the last at 1.6 reads a month, at random times), above
/// Standard-IA's break-even, so the right online placement is Standard:
/// Strata moves nothing and costs what always-hot does. Intelligent-Tiering
/// is cheaper because its moves down after 30 idle days cost nothing and
/// its reads pay no retrieval; under tier billing, where a Poisson reader's
/// next gap cannot be foreseen, no online policy gets that gain (goal
/// unmet).
#[test]
fn zipf_hot_set() {
    let mix = Mix {
        hot: 100,
        hot_reads: 20_000,
        ..NONE
    };
    check("hot", mix, &[Policy::Age], 1.04);
    let r = report(mix);
    assert!(r.total(Policy::Strata) <= r.total(Policy::AlwaysHot) * (1.0 + 1e-9));
}

#[test]
fn cold_tail_never_read_again() {
    check("cold", Mix { cold: 500, ..NONE }, &ONLINE, 1.01);
}

/// Reports written while their prefix has no history look like the cold
/// tail until their first read (Glacier IR after a few days), then come back
/// once; after that the lifetime rate keeps them on Standard, and later
/// reports, whose prefix is known, stay there from the start. Within the
/// goal's 1.10, but 4 % above always-hot and Intelligent-Tiering (goal
/// unmet): the optimum's edge is Standard-IA for readers of exactly one
/// read a month, a 2 % saving that the hysteresis margin refuses online.
#[test]
fn monthly_reports() {
    check(
        "reports",
        Mix {
            reports: 200,
            ..NONE
        },
        &[Policy::Age],
        1.08,
    );
}

/// Below every online baseline, Intelligent-Tiering included, but no
/// online policy reaches 1.10 here: the first read of each burst comes from
/// Glacier IR (a retrieval the optimum, moving up the day before, does not
/// pay), 0.30x of the optimum on its own. The prefix's follow-ups bring the
/// object up at that read and, once it has been idle a day, down again.
#[test]
fn burst_after_a_quiet_year() {
    check(
        "bursts",
        Mix {
            bursts: 200,
            ..NONE
        },
        &ONLINE,
        1.34,
    );
}

/// The goal: every online baseline, and 1.10 of the optimum (met).
#[test]
fn the_sample_mix() {
    check("sample", Mix::SAMPLE, &ONLINE, 1.06);
}
