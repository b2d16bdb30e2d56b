//! mover-svc's settings: flags with environment variables and defaults.

use std::{net::SocketAddr, path::PathBuf};

use clap::{Parser, Subcommand};
use strata_proto::codec::Encoding;
use strata_runtime::args::CommonArgs;

/// Strata's mover: performs migration jobs safely (copy, verify, switch, delete).
#[derive(Debug, Parser)]
#[command(name = "mover-svc", version)]
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
    /// Print `migration_status` records as one line each, as they arrive.
    TailStatus {
        /// Start from the oldest record rather than new ones only.
        #[arg(long)]
        from_beginning: bool,
    },
}

/// The daemon's settings.
#[derive(Debug, Clone, clap::Args)]
pub struct Config {
    #[command(flatten)]
    pub common: CommonArgs,

    /// HTTP address: health, metrics and object lookups.
    #[arg(long, env = "STRATA_MOVER_ADDR", default_value = "127.0.0.1:8083")]
    pub http_addr: SocketAddr,

    /// Kafka consumer group of the movers.
    #[arg(long, env = "STRATA_MOVER_GROUP", default_value = "strata-mover")]
    pub group_id: String,

    /// Encoding of `migration_status` values: json (readable with any Kafka
    /// tool) or protobuf.
    #[arg(long, env = "STRATA_STATUS_ENCODING", default_value = "json")]
    pub status_encoding: Encoding,

    /// SQLite file of the catalog and ledger; default `<data dir>/state/mover.db`.
    #[arg(long, env = "STRATA_MOVER_DB")]
    pub db: Option<PathBuf>,

    /// Copies at once (a job's copy and its verification). The other jobs
    /// in flight accept, switch, delete and report meanwhile; never two on
    /// one object.
    #[arg(long, env = "STRATA_MOVER_CONCURRENCY", default_value_t = 4)]
    pub concurrency: usize,

    /// Jobs in flight at most, copying or between their steps; default
    /// 64 per copy (`--concurrency`).
    #[arg(long, env = "STRATA_MOVER_JOBS_IN_FLIGHT")]
    pub jobs_in_flight: Option<usize>,

    /// Seconds between COPYING progress statuses of a long copy; 0 for none.
    #[arg(long, env = "STRATA_MOVER_PROGRESS_SECS", default_value_t = 2.0)]
    pub progress_secs: f64,

    /// Multipart part size in MiB; objects up to this size are one PUT. An
    /// object larger than 10,000 parts of it goes in larger parts (S3 and
    /// GCS allow 10,000), which its copy buffers as many of.
    #[arg(long, env = "STRATA_MOVER_PART_MIB", default_value_t = 8)]
    pub part_mib: usize,

    /// Parts buffered at most per copy.
    #[arg(long, env = "STRATA_MOVER_PARTS_IN_FLIGHT", default_value_t = 4)]
    pub parts_in_flight: usize,

    /// Attempts at copy-and-verify before a job fails.
    #[arg(long, env = "STRATA_MOVER_MAX_ATTEMPTS", default_value_t = 5)]
    pub max_attempts: u32,

    /// Bound on seconds one job's copy is tried, attempts and waits together.
    #[arg(long, env = "STRATA_MOVER_RETRY_MAX_SECS", default_value_t = 300)]
    pub retry_max_secs: u64,

    /// First retry delay in milliseconds (doubles, with jitter).
    #[arg(long, env = "STRATA_MOVER_RETRY_MIN_MS", default_value_t = 500)]
    pub retry_min_ms: u64,
}

impl Config {
    /// Numbers out of range are refused, naming their flag: each sizes a
    /// buffer, a pool or a timer.
    pub fn check(&self) -> anyhow::Result<()> {
        let day = 86_400.0;
        anyhow::ensure!(
            (0.0..=day).contains(&self.progress_secs),
            "--progress-secs must lie between 0 and {day} (a day), not {}",
            self.progress_secs
        );
        for (flag, value, most) in [
            ("--concurrency", self.concurrency, 1024),
            (
                "--jobs-in-flight",
                self.jobs_in_flight.unwrap_or(1),
                1 << 20,
            ),
            // S3's largest part: 5 GiB.
            ("--part-mib", self.part_mib, 5 << 10),
            ("--parts-in-flight", self.parts_in_flight, 1024),
        ] {
            anyhow::ensure!(value <= most, "{flag} must be at most {most}, not {value}");
        }
        Ok(())
    }

    /// The SQLite path in effect.
    pub fn db_path(&self) -> PathBuf {
        self.db
            .clone()
            .unwrap_or_else(|| self.common.state_db("mover"))
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
    fn numbers_out_of_range_are_refused_naming_their_flag() {
        use clap::Parser;
        let check = |args: &[&str]| {
            let argv = std::iter::once("mover-svc").chain(args.iter().copied());
            super::Cli::try_parse_from(argv).unwrap().config.check()
        };
        assert!(check(&[]).is_ok());
        assert!(check(&["--progress-secs", "0"]).is_ok());
        for bad in [
            &["--progress-secs", "inf"][..],
            &["--progress-secs", "NaN"],
            &["--progress-secs", "1e20"],
            &["--progress-secs=-1"],
            &["--concurrency", "18446744073709551615"],
            &["--jobs-in-flight", "18446744073709551615"],
            &["--part-mib", "17592186044416"],
            &["--parts-in-flight", "100000"],
        ] {
            let e = check(bad).unwrap_err().to_string();
            let flag = bad[0].split('=').next().unwrap();
            assert!(e.contains(flag), "{e}");
        }
    }
}
