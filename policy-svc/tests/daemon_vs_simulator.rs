//! The daemon decides as the simulator says Strata does. A synthetic trace
//! goes through policy-svc's engine as live traffic would: its events
//! applied in batches, a decision cycle every few hours of event time, each
//! job answered COMPLETED in the next batch, as the mover would. The moves
//! the daemon made, priced by the simulator's own ledger, must cost what
//! `simulate` reports for Strata, within a few percent (the daemon decides
//! once a cycle, the simulator at the exact moment a decision falls due).
#![allow(clippy::unwrap_used)]

// Only its job statuses: the tiers and clock here are the trace's.
#[allow(dead_code)]
mod common;

use std::collections::HashMap;

use policy_svc::{
    engine::{self, Budget, Input, Payload},
    placement::CostParams,
    presets,
    rules::RuleParams,
    sim::{
        self,
        ledger::{Account, Ledger},
        policies::Policy,
        synth::{self, Mix},
        trace::{self, Op as TraceOp},
    },
    store::Store,
};
use strata_proto::{AccessEvent, MigrationStatus, Op, State, time};
use strata_runtime::tiers::TierConfig;

const HOUR: i64 = 3_600_000;
/// Event time between two decision cycles.
const CYCLE: i64 = 6 * HOUR;

fn access_event(trace: &trace::Trace, e: &trace::Event) -> AccessEvent {
    let op = match e.op {
        TraceOp::Get => Op::Get,
        TraceOp::Put => Op::Put,
        TraceOp::Delete => Op::Delete,
        TraceOp::Head => Op::Head,
    };
    AccessEvent {
        object_key: trace.keys[e.key as usize].clone(),
        op: op as i32,
        size_bytes: e.size,
        bytes_read: if e.op == TraceOp::Get { e.bytes } else { 0 },
        ts: Some(time::from_millis(e.ts_ms)),
        ..Default::default()
    }
}

#[tokio::test]
async fn the_daemon_decides_as_the_simulator_does() {
    compare(presets::aws_s3()).await;
}

/// With Intelligent-Tiering as a tier the daemon hands it objects, as the
/// simulator does, billed by idle age in both.
#[tokio::test]
async fn the_daemon_uses_intelligent_tiering_as_the_simulator_does() {
    let into_it = compare(presets::aws_s3_intelligent()).await;
    assert!(into_it > 0, "no object handed to intelligent-tiering");
}

/// Runs the trace through the daemon and the simulator on `tiers` and
/// compares their costs; returns how many of the daemon's moves went to an
/// auto-tiering tier.
async fn compare(tiers: TierConfig) -> usize {
    // The sample's mix at a tenth: about 4,000 events over two years.
    let trace = synth::generate(Mix::SAMPLE.scaled(0.1), 3);
    let cost = CostParams {
        default_slo_ms: Some(1000.0),
        ..CostParams::default()
    };
    let report = sim::simulate(&trace, &tiers, &cost, 0, |_| {});

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("policy.db")).unwrap();
    let params = RuleParams {
        promote_reads: 3,
        promote_window_ms: 7 * 24 * HOUR,
        min_object_bytes: 0,
        cost: Some(cost.clone()),
    };
    let budget = Budget {
        max_jobs: 100_000,
        max_bytes: u64::MAX,
        // The daemon's default: every job here is answered a cycle later.
        job_timeout_ms: 24 * HOUR,
    };
    // Per key, the daemon's moves: (event time decided, tier index).
    let mut moves: HashMap<String, Vec<(i64, usize)>> = HashMap::new();
    let mut answers: Vec<Payload> = Vec::new();
    let (mut offset, mut jobs_made) = (0i64, 0usize);
    let mut events = trace.events.iter().peekable();
    let end = trace.events.last().unwrap().ts_ms;
    let mut wall = trace.events[0].ts_ms;
    while wall <= end + CYCLE {
        wall += CYCLE;
        let mut payloads: Vec<Payload> = std::mem::take(&mut answers);
        while let Some(e) = events.next_if(|e| e.ts_ms < wall) {
            payloads.push(Payload::Event(access_event(&trace, e)));
        }
        let inputs: Vec<Input> = payloads
            .into_iter()
            .map(|payload| {
                offset += 1;
                Input {
                    topic: "access_events".into(),
                    partition: 0,
                    offset,
                    payload,
                }
            })
            .collect();
        let (tiers_a, tiers_b, params) = (tiers.clone(), tiers.clone(), params.clone());
        let (now, jobs) = store
            .transaction(move |tx| {
                engine::apply_batch(tx, &inputs, &tiers_a, wall)?;
                let now = policy_svc::store::read_clock(tx)?.now(wall);
                Ok((
                    now,
                    engine::decide_cycle(tx, &tiers_b, &params, budget, wall)?,
                ))
            })
            .await
            .unwrap();
        for job in jobs {
            jobs_made += 1;
            let to = tiers.rank(&job.to_tier).unwrap();
            moves
                .entry(job.object_key.clone())
                .or_default()
                .push((now, to));
            answers.push(Payload::Status(MigrationStatus {
                state: State::Completed as i32,
                generation: job.generation + 1,
                bytes: job.size_bytes,
                current_tier: job.to_tier.clone(),
                ..common::status_of(&job)
            }));
        }
    }

    // The daemon's placements, priced as the simulator prices Strata's.
    let mut ledger = Ledger::new(None);
    let trace_end = end;
    for obj in trace::objects(&trace) {
        let key = &trace.keys[obj.key as usize];
        let gone = obj.deleted_ms.unwrap_or(trace_end);
        let mut acct = Account::open(
            &tiers.tiers,
            &mut ledger,
            obj.size,
            cost.slo_ms(key),
            obj.created_ms,
            obj.put,
        );
        let mut steps: Vec<(i64, Option<usize>, u64)> = obj
            .reads
            .iter()
            .map(|&(t, bytes)| (t, None, bytes))
            .collect();
        steps.extend(
            moves
                .get(key)
                .into_iter()
                .flatten()
                .filter(|(t, _)| *t >= obj.created_ms && *t < gone)
                .map(|&(t, to)| (t, Some(to), 0)),
        );
        steps.sort_by_key(|s| (s.0, s.1.is_some()));
        for (t, to, bytes) in steps {
            match to {
                Some(to) => acct.move_to(t, to),
                None => acct.read(t, bytes),
            }
        }
        acct.close(gone, obj.deleted_ms.is_some());
    }
    let daemon = ledger.cost.total();
    let simulated = report.total(Policy::Strata);
    let (hot, it) = (
        report.total(Policy::AlwaysHot),
        report.total(Policy::IntelligentTiering),
    );
    eprintln!(
        "daemon ${daemon:.4} ({jobs_made} jobs, {} SLO violations), simulator's strata ${simulated:.4} ({} moves), intelligent-tiering ${it:.4}, always-hot ${hot:.4}",
        ledger.slo_violations,
        report.ledger(Policy::Strata).moves
    );
    assert!(jobs_made > 0);
    assert!(
        (daemon - simulated).abs() <= 0.05 * simulated,
        "daemon ${daemon} vs simulated strata ${simulated}"
    );
    assert!(daemon < it, "daemon ${daemon} vs intelligent-tiering ${it}");
    assert_eq!(ledger.slo_violations, 0);
    moves
        .values()
        .flatten()
        .filter(|(_, to)| tiers.tiers[*to].auto_tiering.is_some())
        .count()
}
