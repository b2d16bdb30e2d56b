//! policy-svc's settings: flags with environment variables and defaults.

use std::{net::SocketAddr, path::PathBuf};

use clap::{Parser, Subcommand};
use strata_proto::codec::Encoding;
use strata_runtime::{args::CommonArgs, tiers::MAX_DAYS};

use crate::placement::{self, CostParams};

/// Strata's policy: aggregates access per object and decides placements.
#[derive(Debug, Parser)]
#[command(name = "policy-svc", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

impl Cli {
    /// Parses the command line, refusing cost flags written before
    /// `simulate`: those would set the daemon's knobs, which the simulator
    /// does not read (it has its own, after the subcommand).
    pub fn parse_checked() -> Self {
        use clap::{CommandFactory, FromArgMatches};
        let matches = Self::command().get_matches();
        let cli = Self::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        if matches!(cli.command, Some(Command::Simulate(_))) {
            let misplaced = cost_flags_given(&matches);
            if !misplaced.is_empty() {
                Self::command()
                    .error(
                        clap::error::ErrorKind::ArgumentConflict,
                        format!(
                            "{} before `simulate` would be ignored: write it after `simulate`",
                            misplaced.join(", ")
                        ),
                    )
                    .exit();
            }
        }
        cli
    }
}

/// The cost flags given on the command line at the level of `matches`.
fn cost_flags_given(matches: &clap::ArgMatches) -> Vec<String> {
    use clap::{Args, parser::ValueSource};
    CostArgs::augment_args(clap::Command::new("cost"))
        .get_arguments()
        .filter(|a| matches.value_source(a.get_id().as_str()) == Some(ValueSource::CommandLine))
        .filter_map(|a| a.get_long().map(|long| format!("--{long}")))
        .collect()
}

/// What to run; the daemon when none is given.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (the default).
    Serve,
    /// Replay a trace file through the decision code and price Strata
    /// beside the baselines (always-hot, age rules, Intelligent-Tiering,
    /// the offline optimum).
    Simulate(Box<crate::sim::SimulateArgs>),
    /// Write a synthetic trace (Zipf hot set, cold tail, monthly reports,
    /// bursts after a quiet year) as CSV.
    Synth(crate::sim::SynthArgs),
    /// Produce synthetic access events to a topic, or consume one at the
    /// raw client rate (for scripts/bench-policy.sh).
    #[command(hide = true)]
    BenchKafka(crate::bench::BenchKafkaArgs),
}

/// Which decision the daemon applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RuleKind {
    /// Idle days demote, reads within a window promote (the first rule).
    Idle,
    /// The cost model: cheapest eligible tier when the move repays itself.
    Cost,
}

/// Knobs of the cost decision, shared by the daemon and the simulator.
#[derive(Debug, Clone, clap::Args)]
pub struct CostArgs {
    /// Objects smaller than this never move.
    #[arg(long, env = "STRATA_MIN_OBJECT_BYTES", default_value_t = 0)]
    pub min_object_bytes: u64,

    /// Days over which a move's saving must repay its one-time cost; for an
    /// object read steadily for longer, the span of its recent reads (up to
    /// a year).
    #[arg(long, env = "STRATA_HORIZON_DAYS", default_value_t = 60.0)]
    pub horizon_days: f64,

    /// A better tier must save this fraction of the current monthly cost.
    #[arg(long, env = "STRATA_HYSTERESIS", default_value_t = 0.3)]
    pub hysteresis: f64,

    /// Days an object stays after a move before it may move again by choice.
    #[arg(long, env = "STRATA_MIN_RESIDENCY_DAYS", default_value_t = 3.0)]
    pub min_residency_days: f64,

    /// Latency SLOs by key prefix, `prefix=max_first_byte_ms,...`.
    #[arg(long, env = "STRATA_LATENCY_SLO", default_value = "")]
    pub slo: String,

    /// The SLO (max first-byte ms) of keys no `--slo` prefix matches; unset: any.
    #[arg(long, env = "STRATA_DEFAULT_SLO_MS")]
    pub default_slo_ms: Option<f64>,

    /// Pins by key prefix, `prefix=tier,...`.
    #[arg(long, env = "STRATA_PINS", default_value = "")]
    pub pins: String,

    /// Reads per 30 days assumed of a new object until reads are seen.
    #[arg(long, env = "STRATA_PRIOR_READS_30D", default_value_t = 1.0)]
    pub prior_reads_30d: f64,

    /// Days over which that prior halves.
    #[arg(long, env = "STRATA_PRIOR_DAYS", default_value_t = 1.0)]
    pub prior_days: f64,

    /// Weight of the prior against an object's own reads, days.
    #[arg(long, env = "STRATA_PRIOR_WEIGHT_DAYS", default_value_t = 15.0)]
    pub prior_weight_days: f64,

    /// Days between re-evaluations of an object that stays.
    #[arg(long, env = "STRATA_RECHECK_DAYS", default_value_t = 2.0)]
    pub recheck_days: f64,
}

impl CostArgs {
    /// The decision's parameters.
    pub fn params(&self) -> anyhow::Result<CostParams> {
        // Days are added to times in ms: a century at most keeps that sum
        // far from what an i64 holds.
        for (flag, value) in [
            ("--horizon-days", self.horizon_days),
            ("--prior-days", self.prior_days),
            ("--prior-weight-days", self.prior_weight_days),
            ("--recheck-days", self.recheck_days),
        ] {
            anyhow::ensure!(
                value > 0.0 && value <= MAX_DAYS,
                "{flag} must be a positive number of days, at most {MAX_DAYS}, not {value}"
            );
        }
        anyhow::ensure!(
            (0.0..1.0).contains(&self.hysteresis),
            "--hysteresis must be a fraction >= 0 and < 1, not {}",
            self.hysteresis
        );
        anyhow::ensure!(
            self.prior_reads_30d.is_finite() && self.prior_reads_30d >= 0.0,
            "--prior-reads-30d must be a number >= 0, not {}",
            self.prior_reads_30d
        );
        anyhow::ensure!(
            (0.0..=MAX_DAYS).contains(&self.min_residency_days),
            "--min-residency-days must be a number of days >= 0 and at most {MAX_DAYS}, not {}",
            self.min_residency_days
        );
        let slo_ms = |what: &str, ms: f64| {
            anyhow::ensure!(
                ms.is_finite() && ms >= 0.0,
                "{what} must be a number of ms >= 0, not {ms}"
            );
            Ok(ms)
        };
        if let Some(ms) = self.default_slo_ms {
            slo_ms("--default-slo-ms", ms)?;
        }
        let slos = placement::parse_pairs(&self.slo)?
            .into_iter()
            .map(|(prefix, ms)| {
                let ms: f64 = ms
                    .parse()
                    .map_err(|e| anyhow::anyhow!("--slo {prefix:?}={ms:?}: {e}"))?;
                let ms = slo_ms(&format!("--slo {prefix:?}"), ms)?;
                Ok((prefix, ms))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(CostParams {
            horizon_days: self.horizon_days,
            hysteresis: self.hysteresis,
            min_residency_days: self.min_residency_days,
            min_object_bytes: self.min_object_bytes,
            slos,
            default_slo_ms: self.default_slo_ms,
            pins: placement::parse_pairs(&self.pins)?,
            prior_reads_30d: self.prior_reads_30d,
            prior_days: self.prior_days,
            prior_weight_days: self.prior_weight_days,
            recheck_days: self.recheck_days,
        })
    }
}

/// The daemon's settings.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    #[command(flatten)]
    pub common: CommonArgs,

    /// HTTP address: health, metrics, explain and summary.
    #[arg(long, env = "STRATA_POLICY_ADDR", default_value = "127.0.0.1:8082")]
    pub http_addr: SocketAddr,

    /// Kafka consumer group of the policy.
    #[arg(long, env = "STRATA_POLICY_GROUP", default_value = "strata-policy")]
    pub group_id: String,

    /// SQLite file of the policy state; default `<data dir>/state/policy.db`.
    #[arg(long, env = "STRATA_POLICY_DB")]
    pub db: Option<PathBuf>,

    /// Seconds between decision cycles.
    #[arg(long, env = "STRATA_DECIDE_INTERVAL_SECS", default_value_t = 5.0)]
    pub decide_interval_secs: f64,

    /// Reads within the promotion window that move an object to the top tier.
    #[arg(long, env = "STRATA_PROMOTE_READS", default_value_t = 3)]
    pub promote_reads: u32,

    /// The promotion window, days of event time.
    #[arg(long, env = "STRATA_PROMOTE_WINDOW_DAYS", default_value_t = 7.0)]
    pub promote_window_days: f64,

    /// The decision: `cost` (the cost model) or `idle` (day counts per tier).
    #[arg(long, env = "STRATA_POLICY_RULE", value_enum, default_value = "cost")]
    pub rule: RuleKind,

    #[command(flatten)]
    pub cost: CostArgs,

    /// Jobs emitted at most per cycle.
    #[arg(long, env = "STRATA_MAX_JOBS_PER_CYCLE", default_value_t = 100)]
    pub max_jobs_per_cycle: usize,

    /// Bytes moved at most per cycle (sum of job sizes), GiB; an object
    /// larger than this is moved alone in a cycle.
    #[arg(long, env = "STRATA_MAX_GIB_PER_CYCLE", default_value_t = 100.0)]
    pub max_gib_per_cycle: f64,

    /// Hours after which a job whose outcome was never heard (its message
    /// lost with the jobs topic's retention, say) leaves its object to be
    /// decided again: the same decision is the same job key, which the
    /// mover answers with its outcome if it ran it. 0: never.
    #[arg(long, env = "STRATA_JOB_TIMEOUT_HOURS", default_value_t = 24.0)]
    pub job_timeout_hours: f64,

    /// Messages applied at most per SQLite transaction.
    #[arg(long, env = "STRATA_POLICY_BATCH", default_value_t = 5000)]
    pub batch: usize,

    /// Encoding of `migration_jobs` values.
    #[arg(long, env = "STRATA_JOB_ENCODING", default_value = "protobuf")]
    pub job_encoding: Encoding,
}

impl Config {
    /// Refuses settings the daemon cannot run with, naming the flag; the
    /// cost knobs are checked by [`CostArgs::params`].
    pub fn check(&self) -> anyhow::Result<()> {
        let day = 86_400.0;
        anyhow::ensure!(
            (0.05..=day).contains(&self.decide_interval_secs),
            "--decide-interval-secs must lie between 0.05 and {day} (a day), not {}",
            self.decide_interval_secs
        );
        anyhow::ensure!(
            self.promote_window_days > 0.0 && self.promote_window_days <= MAX_DAYS,
            "--promote-window-days must be a positive number of days, at most {MAX_DAYS}, not {}",
            self.promote_window_days
        );
        anyhow::ensure!(
            self.max_gib_per_cycle.is_finite() && self.max_gib_per_cycle > 0.0,
            "--max-gib-per-cycle must be a positive number, not {}",
            self.max_gib_per_cycle
        );
        anyhow::ensure!(
            (0.0..=MAX_DAYS * 24.0).contains(&self.job_timeout_hours),
            "--job-timeout-hours must lie between 0 (never) and {} (a century), not {}",
            MAX_DAYS * 24.0,
            self.job_timeout_hours
        );
        anyhow::ensure!(self.batch > 0, "--batch must be at least 1");
        anyhow::ensure!(
            (1..=1_000_000).contains(&self.max_jobs_per_cycle),
            "--max-jobs-per-cycle must lie between 1 and 1000000, not {}",
            self.max_jobs_per_cycle
        );
        // The idle rule counts days only: latency SLOs and pins, hard
        // constraints of the cost rule, would be dropped without a word.
        let constraints = !self.cost.slo.trim().is_empty()
            || !self.cost.pins.trim().is_empty()
            || self.cost.default_slo_ms.is_some();
        anyhow::ensure!(
            self.rule != RuleKind::Idle || !constraints,
            "--slo, --default-slo-ms and --pins (STRATA_LATENCY_SLO, STRATA_DEFAULT_SLO_MS, \
             STRATA_PINS) are constraints of the cost rule; with --rule idle \
             (STRATA_POLICY_RULE=idle) they would not apply"
        );
        Ok(())
    }

    /// The SQLite path in effect.
    pub fn db_path(&self) -> PathBuf {
        self.db
            .clone()
            .unwrap_or_else(|| self.common.state_db("policy"))
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        super::Cli::command().debug_assert();
    }

    #[test]
    fn cost_flags_are_found_where_they_were_written() {
        let given = |args: &[&str]| {
            let argv = std::iter::once("policy-svc").chain(args.iter().copied());
            super::cost_flags_given(&super::Cli::command().get_matches_from(argv))
        };
        assert!(given(&["simulate", "--trace", "t.csv", "--horizon-days", "5"]).is_empty());
        assert_eq!(
            given(&[
                "--horizon-days",
                "5",
                "--slo",
                "a/=1",
                "simulate",
                "--trace",
                "t.csv"
            ]),
            ["--horizon-days", "--slo"]
        );
    }

    #[test]
    fn daemon_settings_are_checked() {
        use clap::Parser;
        let check = |args: &[&str]| {
            let argv = std::iter::once("policy-svc").chain(args.iter().copied());
            super::Cli::try_parse_from(argv).unwrap().config.check()
        };
        assert!(check(&[]).is_ok());
        // The idle rule would ignore latency SLOs and pins: refused.
        for given in [&["--slo", "db/=10"][..], &["--pins", "a/=hot"]] {
            let idle: Vec<&str> = ["--rule", "idle"].iter().chain(given).copied().collect();
            let e = check(&idle).unwrap_err().to_string();
            assert!(e.contains("--rule idle"), "{e}");
            assert!(check(given).is_ok());
        }
        for bad in [
            &["--decide-interval-secs", "inf"][..],
            &["--decide-interval-secs", "0"],
            &["--decide-interval-secs", "1e300"],
            &["--promote-window-days", "NaN"],
            &["--promote-window-days", "1e300"],
            &["--max-gib-per-cycle", "0"],
            &["--batch", "0"],
            &["--max-jobs-per-cycle", "0"],
            &["--max-jobs-per-cycle", "18446744073709551615"],
            &["--job-timeout-hours=-1"],
            &["--job-timeout-hours", "NaN"],
            &["--job-timeout-hours", "1e300"],
        ] {
            let e = check(bad).unwrap_err().to_string();
            let flag = bad[0].split('=').next().unwrap();
            assert!(e.contains(flag), "{e}");
        }
    }

    #[derive(clap::Parser)]
    struct Knobs {
        #[command(flatten)]
        cost: super::CostArgs,
    }

    #[test]
    fn day_knobs_must_be_positive_and_at_most_a_century_and_slos_numbers() {
        use clap::Parser;
        let params = |args: &[&str]| {
            let argv = std::iter::once("t").chain(args.iter().copied());
            Knobs::try_parse_from(argv).unwrap().cost.params()
        };
        assert!(params(&[]).is_ok());
        assert!(params(&["--min-residency-days", "0"]).is_ok());
        for bad in [
            &["--horizon-days", "inf"][..],
            &["--horizon-days", "0"],
            &["--recheck-days=-1"],
            &["--min-residency-days", "NaN"],
            &["--hysteresis", "1"],
            &["--hysteresis", "NaN"],
            &["--prior-reads-30d=-1"],
            &["--recheck-days", "1e300"],
            &["--min-residency-days", "36501"],
            &["--default-slo-ms", "NaN"],
            &["--slo", "a/=-1"],
        ] {
            let e = params(bad).unwrap_err().to_string();
            let flag = bad[0].split('=').next().unwrap();
            assert!(e.contains(flag), "{e}");
        }
    }
}
