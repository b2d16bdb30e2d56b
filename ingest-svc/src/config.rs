//! ingest-svc's settings: flags with environment variables and defaults.

use std::net::SocketAddr;

use clap::{Parser, Subcommand};
use strata_proto::codec::Encoding;
use strata_runtime::args::CommonArgs;

/// Strata's ingest: turns HTTP posts, store inventories and workloads into access events.
#[derive(Debug, Parser)]
#[command(name = "ingest-svc", version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub config: Config,
}

/// What to run; the daemon when none is given.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (the default).
    Serve,
    /// Create demo objects in the tiers and publish a skewed read stream
    /// with event times spread over weeks, then exit.
    Demo(DemoArgs),
    /// Publish the events of an access trace file (CSV, NDJSON or IBM, as
    /// `policy-svc simulate` reads them), ending it now, then exit.
    Replay(crate::replay::ReplayArgs),
}

/// The demo workload's shape.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Objects created in the fastest tier.
    #[arg(long, default_value_t = 40)]
    pub objects: usize,
    /// Objects created in the slowest tier that come back into use.
    #[arg(long, default_value_t = 4)]
    pub revived: usize,
    /// Days of event time the workload spans, ending now (at most 3,650:
    /// events are dated from 2000 on).
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u32).range(1..=3650))]
    pub days: u32,
    /// Seed of the generator: the same seed, the same workload.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Key prefix of the demo objects.
    #[arg(long, default_value = "demo")]
    pub prefix: String,
    /// Events per second at most; 0 publishes as fast as the broker takes
    /// them (their event times spread over `--days` either way).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Goes on with an earlier run of the same demo (seed, prefix, counts
    /// and days) that was stopped: writes the objects it had not written
    /// and publishes every event again under the same ids, which
    /// policy-svc counts once (it remembers event ids for seven days).
    /// Without it, a demo whose objects are there publishes nothing.
    #[arg(long)]
    pub resume: bool,
}

/// The daemon's settings.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    #[command(flatten)]
    pub common: CommonArgs,

    /// HTTP address: health, metrics and `POST /v1/events`.
    #[arg(long, env = "STRATA_INGEST_ADDR", default_value = "127.0.0.1:8081")]
    pub http_addr: SocketAddr,

    /// Seconds between inventories of every tier (also one at start); 0 disables them.
    #[arg(long, env = "STRATA_INVENTORY_INTERVAL_SECS", default_value_t = 3600)]
    pub inventory_interval_secs: u64,

    /// Encoding of produced `access_events` values.
    #[arg(long, env = "STRATA_EVENT_ENCODING", default_value = "protobuf")]
    pub event_encoding: Encoding,

    /// Largest accepted HTTP body, MiB.
    #[arg(long, env = "STRATA_MAX_BODY_MIB", default_value_t = 16)]
    pub max_body_mib: usize,

    /// Events accepted at most in one POST.
    #[arg(long, env = "STRATA_MAX_BATCH", default_value_t = 10_000)]
    pub max_batch: usize,
}

impl Config {
    /// Limits out of range are refused, naming their flag.
    pub fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            (1..=1024).contains(&self.max_body_mib),
            "--max-body-mib must lie between 1 and 1024, not {}",
            self.max_body_mib
        );
        anyhow::ensure!(self.max_batch >= 1, "--max-batch must be at least 1");
        Ok(())
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
    fn limits_out_of_range_are_refused_naming_their_flag() {
        use clap::Parser;
        let check = |args: &[&str]| {
            let argv = std::iter::once("ingest-svc").chain(args.iter().copied());
            super::Cli::try_parse_from(argv).unwrap().config.check()
        };
        assert!(check(&[]).is_ok());
        for bad in [
            &["--max-body-mib", "17592186044416"][..],
            &["--max-body-mib", "0"],
            &["--max-batch", "0"],
        ] {
            let e = check(bad).unwrap_err().to_string();
            assert!(e.contains(bad[0]), "{e}");
        }
        // A demo spanning more days than events may be dated back.
        for days in ["0", "3651"] {
            let argv = ["ingest-svc", "demo", "--days", days];
            let e = super::Cli::try_parse_from(argv).unwrap_err().to_string();
            assert!(e.contains("--days"), "{e}");
        }
        assert!(super::Cli::try_parse_from(["ingest-svc", "demo", "--days", "3650"]).is_ok());
    }
}
