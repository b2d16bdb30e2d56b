//! policy-svc's settings: flags with environment variables and defaults.

use std::{net::SocketAddr, path::PathBuf};

use clap::Parser;
use strata_proto::codec::Encoding;
use strata_runtime::args::CommonArgs;

/// Strata's policy: aggregates access per object and decides placements.
#[derive(Debug, Clone, Parser)]
#[command(name = "policy-svc", version)]
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

    /// Objects smaller than this never move.
    #[arg(long, env = "STRATA_MIN_OBJECT_BYTES", default_value_t = 0)]
    pub min_object_bytes: u64,

    /// Jobs emitted at most per cycle.
    #[arg(long, env = "STRATA_MAX_JOBS_PER_CYCLE", default_value_t = 100)]
    pub max_jobs_per_cycle: usize,

    /// Bytes moved at most per cycle (sum of job sizes), GiB.
    #[arg(long, env = "STRATA_MAX_GIB_PER_CYCLE", default_value_t = 100.0)]
    pub max_gib_per_cycle: f64,

    /// Messages applied at most per SQLite transaction.
    #[arg(long, env = "STRATA_POLICY_BATCH", default_value_t = 1000)]
    pub batch: usize,

    /// Encoding of `migration_jobs` values.
    #[arg(long, env = "STRATA_JOB_ENCODING", default_value = "protobuf")]
    pub job_encoding: Encoding,
}

impl Config {
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
        super::Config::command().debug_assert();
    }
}
