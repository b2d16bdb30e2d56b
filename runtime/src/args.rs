//! Settings every daemon takes, flattened into each daemon's own `Config`.
//! Every field has an environment variable and a default (design §8).

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use strata_proto::topics;

/// Kafka, topics, tiers and local state.
#[derive(Debug, Clone, Args)]
pub struct CommonArgs {
    /// Kafka bootstrap servers, comma separated.
    #[arg(long, env = "KAFKA_BROKERS", default_value = "127.0.0.1:9092")]
    pub brokers: String,

    /// The tier configuration file (TOML), shared by all three daemons.
    #[arg(long, env = "STRATA_TIERS", default_value = "deploy/strata.local.toml")]
    pub tiers: PathBuf,

    /// Root of local data: file tiers and each daemon's SQLite under `state/`.
    #[arg(long, env = "STRATA_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Bearer token required on the HTTP API (not on health and metrics).
    /// Unset means no auth.
    #[arg(long, env = "STRATA_HTTP_TOKEN", hide_env_values = true)]
    pub http_token: Option<String>,

    /// Topic of access events.
    #[arg(long, env = "STRATA_TOPIC_ACCESS_EVENTS", default_value = topics::ACCESS_EVENTS)]
    pub topic_access_events: String,

    /// Topic of migration jobs.
    #[arg(long, env = "STRATA_TOPIC_MIGRATION_JOBS", default_value = topics::MIGRATION_JOBS)]
    pub topic_migration_jobs: String,

    /// Topic of migration statuses.
    #[arg(long, env = "STRATA_TOPIC_MIGRATION_STATUS", default_value = topics::MIGRATION_STATUS)]
    pub topic_migration_status: String,

    /// Extra librdkafka settings for every client, `key=value` separated by
    /// commas (e.g. `security.protocol=SASL_SSL,sasl.mechanism=SCRAM-SHA-256`).
    /// A piece without `=` continues the value before it, so a value may
    /// hold commas (`debug=broker,topic`). The flag may be repeated. Its
    /// value is never printed (it may hold `sasl.password`).
    #[arg(long, env = "STRATA_KAFKA_OPTIONS", hide_env_values = true, value_parser = KafkaOptionsParser)]
    pub kafka_options: Vec<KafkaOptions>,

    /// Create missing topics at start (admin API). Off where the broker
    /// does not offer it or an operator manages topics.
    #[arg(long, env = "STRATA_CREATE_TOPICS", default_value_t = true, action = clap::ArgAction::Set)]
    pub create_topics: bool,

    /// Partitions of the topics a daemon creates when they are missing.
    #[arg(long, env = "STRATA_TOPIC_PARTITIONS", default_value_t = 3)]
    pub topic_partitions: i32,

    /// Replication factor of created topics.
    #[arg(long, env = "STRATA_TOPIC_REPLICATION", default_value_t = 1)]
    pub topic_replication: i32,

    /// Log format: `text` for people, `json` for collectors.
    #[arg(long, env = "STRATA_LOG_FORMAT", default_value = "text")]
    pub log_format: crate::telemetry::LogFormat,

    /// How long a graceful stop may take before the daemon exits anyway.
    #[arg(long, env = "STRATA_SHUTDOWN_GRACE_SECS", default_value_t = 30)]
    pub shutdown_grace_secs: u64,
}

/// librdkafka settings given as one `--kafka-options` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaOptions(pub Vec<(String, String)>);

/// Parses `--kafka-options` with [`parse_kafka_options`]. A parser of its
/// own, so that an error never quotes the value, as clap's errors about a
/// value otherwise do.
#[derive(Debug, Clone, Copy)]
struct KafkaOptionsParser;

impl clap::builder::TypedValueParser for KafkaOptionsParser {
    type Value = KafkaOptions;

    fn parse_ref(
        &self,
        _cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<KafkaOptions, clap::Error> {
        let name = arg.map_or_else(|| "--kafka-options".to_owned(), |a| a.to_string());
        let fail = |why: String| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("invalid value for '{name}': {why}\n"),
            )
        };
        let text = value.to_str().ok_or_else(|| fail("not UTF-8".into()))?;
        parse_kafka_options(text).map_err(fail)
    }
}

/// Parses `key=value,key=value`; a piece without `=` belongs to the value
/// before it. Errors name the piece by its place, never its text (a
/// password could be cut in two).
fn parse_kafka_options(s: &str) -> Result<KafkaOptions, String> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (n, piece) in s.split(',').enumerate() {
        match (piece.split_once('='), pairs.last_mut()) {
            (Some((key, value)), _) if !key.trim().is_empty() => {
                pairs.push((key.trim().to_owned(), value.trim().to_owned()));
            }
            (None, Some((_, value))) => {
                value.push(',');
                value.push_str(piece.trim_end());
            }
            _ => {
                return Err(format!(
                    "piece {} of the list is not key=value (librdkafka settings, comma-separated)",
                    n + 1
                ));
            }
        }
    }
    Ok(KafkaOptions(pairs))
}

impl CommonArgs {
    /// The extra librdkafka settings, in the order given.
    pub fn kafka_options(&self) -> impl Iterator<Item = (&str, &str)> {
        self.kafka_options
            .iter()
            .flat_map(|o| o.0.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }

    /// The three topics and their dead-letter topics.
    pub fn all_topics(&self) -> Vec<String> {
        let base = [
            &self.topic_access_events,
            &self.topic_migration_jobs,
            &self.topic_migration_status,
        ];
        base.iter()
            .flat_map(|t| [t.to_string(), topics::dlq(t)])
            .collect()
    }

    /// The tier file, with `${STRATA_DATA_DIR}` expanded to the data
    /// directory made absolute.
    pub fn load_tiers(&self) -> anyhow::Result<crate::tiers::TierConfig> {
        let data_dir = std::path::absolute(&self.data_dir)
            .with_context(|| format!("resolve data dir {}", self.data_dir.display()))?;
        crate::tiers::TierConfig::load(
            &self.tiers,
            &[("STRATA_DATA_DIR", data_dir.display().to_string())],
        )
    }

    /// Every configured tier's store, fastest first.
    pub fn open_tiers(&self) -> anyhow::Result<Vec<crate::tiers::TierStore>> {
        self.load_tiers()?
            .tiers
            .iter()
            .map(|t| t.open().with_context(|| format!("open tier {}", t.name)))
            .collect()
    }

    /// How long a graceful stop may take (`--shutdown-grace-secs`).
    pub fn shutdown_grace(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.shutdown_grace_secs)
    }

    /// Path of a daemon's SQLite database, `<data_dir>/state/<name>.db`.
    pub fn state_db(&self, name: &str) -> PathBuf {
        self.data_dir.join("state").join(format!("{name}.db"))
    }
}
