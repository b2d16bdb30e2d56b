//! `policy-svc simulate`: replays a trace through the same decision code as
//! the daemon, without Kafka, and prices Strata beside the baselines.
//!
//! # Layout
//! - [`trace`]: trace formats and object lifetimes.
//! - [`ledger`]: what a policy's placements cost.
//! - [`policies`]: Strata and the baselines, per object.
//! - [`optimum`]: the offline optimum by dynamic programming.
//! - [`prefix`]: the prediction's prefix priors, day by day, from the daemon's statistics.
//! - [`chart`]: cumulative cost per policy as SVG.
//! - [`synth`]: synthetic traces of known structure.

pub mod chart;
pub mod ledger;
pub mod optimum;
pub mod policies;
pub mod prefix;
pub mod synth;
pub mod trace;

use std::{
    fmt::Write as _,
    io::{IsTerminal, Write as _},
    path::PathBuf,
};

use anyhow::Context;
use serde_json::json;
use strata_runtime::tiers::TierConfig;

use crate::{
    config::CostArgs,
    placement::{self, CostParams},
    presets,
};
use ledger::Ledger;
use policies::Policy;
use strata_runtime::trace::TraceArgs;
use trace::Trace;

/// Flags of `policy-svc simulate`.
#[derive(Debug, Clone, clap::Args)]
pub struct SimulateArgs {
    #[command(flatten)]
    pub trace: TraceArgs,
    /// A tier file (presets allowed); default the five AWS S3 classes.
    #[arg(long)]
    pub tiers: Option<PathBuf>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Draw the cumulative cost per policy to this SVG file.
    #[arg(long)]
    pub chart: Option<PathBuf>,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
    #[command(flatten)]
    pub cost: CostArgs,
}

/// Flags of `policy-svc synth`.
#[derive(Debug, Clone, clap::Args)]
pub struct SynthArgs {
    /// Where to write the CSV trace.
    #[arg(long)]
    pub out: PathBuf,
    /// Seed of the generator.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Multiplies the object and read counts of the sample mix (about
    /// 40,000 events at 1, 10^7 at 250).
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
}

/// Runs `synth`: writes a synthetic trace.
pub fn run_synth(args: &SynthArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.scale > 0.0 && args.scale <= 1000.0,
        "--scale {}: must be above 0 and at most 1000 (about 4 x 10^7 events)",
        args.scale
    );
    let trace = synth::generate(synth::Mix::SAMPLE.scaled(args.scale), args.seed);
    let file = std::fs::File::create(&args.out)
        .with_context(|| format!("create {}", args.out.display()))?;
    let mut out = std::io::BufWriter::new(file);
    synth::write_csv(&trace, &mut out)?;
    out.flush()?;
    eprintln!(
        "{} events, {} keys -> {}",
        trace.events.len(),
        trace.keys.len(),
        args.out.display()
    );
    Ok(())
}

/// The outcome of a simulation.
#[derive(Debug, Clone)]
pub struct Report {
    pub events: usize,
    /// Lines of the trace skipped (operations other than reads, writes,
    /// deletes).
    pub skipped: u64,
    pub objects: usize,
    pub span_days: f64,
    pub tiers: Vec<String>,
    pub policies: Vec<(Policy, Ledger)>,
    pub start_ms: i64,
    pub end_ms: i64,
}

impl Report {
    /// The ledger of `policy`.
    pub fn ledger(&self, policy: Policy) -> &Ledger {
        self.policies
            .iter()
            .find(|(p, _)| *p == policy)
            .map(|(_, l)| l)
            .unwrap_or_else(|| unreachable!("every policy runs"))
    }

    /// Total cost of `policy`, USD.
    pub fn total(&self, policy: Policy) -> f64 {
        self.ledger(policy).cost.total()
    }
}

/// Replays `trace` under every policy. `progress` is called with the share done.
pub fn simulate(
    trace: &Trace,
    tiers: &TierConfig,
    params: &CostParams,
    chart_buckets: usize,
    mut progress: impl FnMut(f64),
) -> Report {
    let objects = trace::objects(trace);
    let start_ms = trace.events.first().map_or(0, |e| e.ts_ms);
    let end_ms = trace.events.last().map_or(0, |e| e.ts_ms);
    let charted =
        (chart_buckets > 0).then_some((start_ms, end_ms.max(start_ms + 1), chart_buckets));
    let mut ledgers: Vec<Ledger> = Policy::ALL.iter().map(|_| Ledger::new(charted)).collect();
    let step = (objects.len() / 200).max(1);
    let priors = prefix::PrefixPriors::build(&objects, &trace.keys, start_ms, end_ms);
    let setup = policies::Setup::new(&tiers.tiers);
    for (i, obj) in objects.iter().enumerate() {
        let key = &trace.keys[obj.key as usize];
        let id = priors.id(key);
        let prior = |now: i64| id.and_then(|id| priors.prior(id, now));
        for (policy, ledger) in Policy::ALL.iter().zip(&mut ledgers) {
            policies::run(*policy, obj, key, &setup, params, end_ms, &prior, ledger);
        }
        if i % step == 0 {
            progress(i as f64 / objects.len() as f64);
        }
    }
    progress(1.0);
    Report {
        events: trace.events.len(),
        skipped: trace.skipped,
        objects: objects.len(),
        span_days: (end_ms - start_ms) as f64 / 86_400_000.0,
        tiers: tiers.tiers.iter().map(|t| t.name.clone()).collect(),
        policies: Policy::ALL.into_iter().zip(ledgers).collect(),
        start_ms,
        end_ms,
    }
}

/// The report as a text table.
pub fn table(report: &Report) -> String {
    let optimum = report.total(Policy::Optimum);
    let skipped = match report.skipped {
        0 => String::new(),
        n => format!(" ({n} lines of other operations skipped)"),
    };
    let mut out = format!(
        "{} events{skipped}, {} objects, {:.1} days; tiers: {}\n\n",
        report.events,
        report.objects,
        report.span_days,
        report.tiers.join(", ")
    );
    let _ = writeln!(
        out,
        "| policy | total $ | storage $ | retrieval $ | requests $ | early delete $ | transitions $ | moves | SLO violations | vs optimum |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (policy, l) in &report.policies {
        let c = &l.cost;
        let ratio = if optimum > 0.0 {
            c.total() / optimum
        } else {
            1.0
        };
        let _ = writeln!(
            out,
            "| {} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {:.4} | {} | {} | {:.3}x |",
            policy.name(),
            c.total(),
            c.storage,
            c.retrieval,
            c.requests,
            c.early_delete,
            c.transitions,
            l.moves,
            l.slo_violations,
            ratio
        );
    }
    out
}

/// The report as one JSON object: `policies.<name>.total_usd` and the parts.
pub fn to_json(report: &Report) -> serde_json::Value {
    let policies: serde_json::Map<String, serde_json::Value> = report
        .policies
        .iter()
        .map(|(p, l)| {
            let c = &l.cost;
            (
                p.name().to_owned(),
                json!({
                    "total_usd": c.total(),
                    "storage_usd": c.storage,
                    "retrieval_usd": c.retrieval,
                    "requests_usd": c.requests,
                    "early_delete_usd": c.early_delete,
                    "transitions_usd": c.transitions,
                    "moves": l.moves,
                    "slo_violations": l.slo_violations,
                }),
            )
        })
        .collect();
    json!({
        "events": report.events,
        "skipped": report.skipped,
        "objects": report.objects,
        "span_days": report.span_days,
        "tiers": report.tiers,
        "policies": policies,
    })
}

/// The longest trace the simulator takes, in days: twenty years. Its
/// prefix statistics are kept per day, so a stray timestamp in other units
/// (seconds or microseconds among milliseconds: decades off) must be
/// refused, not allocated for.
const MAX_SPAN_DAYS: i64 = 7_305;

/// Refuses a trace whose events span more than [`MAX_SPAN_DAYS`].
fn check_span(trace: &Trace) -> anyhow::Result<()> {
    let (Some(first), Some(last)) = (trace.events.first(), trace.events.last()) else {
        return Ok(());
    };
    let days = (last.ts_ms.saturating_sub(first.ts_ms)) / 86_400_000;
    anyhow::ensure!(
        days <= MAX_SPAN_DAYS,
        "the trace spans {days} days, from {} ms ({:?}) to {} ms ({:?}); the simulator takes \
         at most twenty years: is a timestamp in other units (seconds, microseconds)?",
        first.ts_ms,
        trace.keys[first.key as usize],
        last.ts_ms,
        trace.keys[last.key as usize],
    );
    Ok(())
}

/// Runs the subcommand: read, simulate, print.
pub fn run(args: &SimulateArgs) -> anyhow::Result<()> {
    let tiers = match &args.tiers {
        Some(path) => {
            let mut config = TierConfig::load(path, &[("STRATA_DATA_DIR", "/tmp".into())])?;
            presets::resolve(&mut config)?;
            config
        }
        None => presets::aws_s3(),
    };
    let params = args.cost.params()?;
    params.check_pins(&placement::tier_names(&tiers))?;
    let trace = args.trace.read()?;
    anyhow::ensure!(
        !trace.events.is_empty(),
        "the trace has no reads, writes or deletes to replay ({} lines of other operations \
         skipped)",
        trace.skipped
    );
    check_span(&trace)?;
    let bar = !args.quiet && std::io::stderr().is_terminal();
    let report = simulate(
        &trace,
        &tiers,
        &params,
        if args.chart.is_some() { 200 } else { 0 },
        |share| {
            if bar {
                let filled = (share * 40.0) as usize;
                eprint!(
                    "\r[{}{}] {:5.1}%",
                    "#".repeat(filled),
                    " ".repeat(40 - filled.min(40)),
                    share * 100.0
                );
                if share >= 1.0 {
                    eprintln!();
                }
            }
        },
    );
    if let Some(path) = &args.chart {
        std::fs::write(path, chart::svg(&report))
            .with_context(|| format!("write chart {}", path.display()))?;
    }
    let mut stdout = std::io::stdout().lock();
    if args.json {
        writeln!(
            stdout,
            "{}",
            serde_json::to_string_pretty(&to_json(&report))?
        )?;
    } else {
        write!(stdout, "{}", table(&report))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trace_spanning_more_than_twenty_years_is_refused() {
        let read = |lines: &str| {
            let raw = format!("ts,key,op,size\n{lines}");
            strata_runtime::trace::read(raw.as_bytes(), strata_runtime::trace::Format::Csv, 1.0)
        };
        let ms = 1_735_689_600_000i64;
        let fine = read(&format!("{ms},a,GET,1\n{},b,GET,1\n", ms + 86_400_000)).unwrap();
        assert!(check_span(&fine).is_ok());
        // A time in seconds among milliseconds (January 1970, 56 years
        // before the rest), and one two centuries later: still possible
        // trace times, but not one trace's.
        for far in [ms / 1000, ms + 200 * 365 * 86_400_000] {
            let apart = read(&format!("{ms},a,GET,1\n{far},b,GET,1\n")).unwrap();
            let e = check_span(&apart).unwrap_err().to_string();
            assert!(e.contains("\"b\"") && e.contains("other units"), "{e}");
        }
        let nineteen_years = ms + 19 * 365 * 86_400_000;
        let long = read(&format!("{ms},a,GET,1\n{nineteen_years},b,GET,1\n")).unwrap();
        assert!(check_span(&long).is_ok());
        // One in microseconds is beyond any trace time, refused as read.
        let micros = read(&format!("{ms},a,GET,1\n{},b,GET,1\n", ms * 1000));
        assert!(format!("{:#}", micros.unwrap_err()).contains("is it in milliseconds"));
    }

    /// `simulate` on a trace with nothing to replay, or pinning to a tier
    /// it does not have, and `synth` at a scale it cannot hold: clear
    /// errors.
    #[test]
    fn what_cannot_be_simulated_is_refused_by_name() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(subcommand)]
            command: crate::config::Command,
        }
        let dir = tempfile::tempdir().unwrap();
        let trace = dir.path().join("t.csv");
        std::fs::write(&trace, "ts,key,op,size\n1000,a,LIST,0\n2000,b,COPY,1\n").unwrap();
        let run_with = |extra: &[&str]| {
            let argv = [
                "policy-svc",
                "simulate",
                "--trace",
                trace.to_str().unwrap(),
                "--quiet",
            ];
            let cli = Cli::try_parse_from(argv.iter().chain(extra)).unwrap();
            let crate::config::Command::Simulate(args) = cli.command else {
                unreachable!("simulate parsed")
            };
            run(&args).unwrap_err().to_string()
        };
        let e = run_with(&[]);
        assert!(e.contains("no reads") && e.contains("2 lines"), "{e}");
        std::fs::write(&trace, "ts,key,op,size\n1000,a,GET,10\n").unwrap();
        let e = run_with(&["--pins", "a=tape"]);
        assert!(e.contains("\"tape\""), "{e}");
        let synth = |scale: f64| {
            let out = dir.path().join("s.csv");
            run_synth(&SynthArgs {
                out,
                seed: 1,
                scale,
            })
        };
        for scale in [0.0, -1.0, f64::NAN, 1e30] {
            assert!(
                synth(scale).unwrap_err().to_string().contains("--scale"),
                "{scale}"
            );
        }
    }
}
