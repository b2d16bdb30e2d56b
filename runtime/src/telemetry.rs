//! Tracing (text or JSON, filtered by `RUST_LOG`) and the Prometheus recorder
//! behind every daemon's `/metrics`.

use std::{str::FromStr, sync::OnceLock};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for containers.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!(
                "unknown log format {other:?}: expected text or json"
            )),
        }
    }
}

/// Installs the global tracing subscriber; `RUST_LOG` filters, default `info`.
pub fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    // A second init (tests starting several daemons in one process) is fine.
    let _ = result;
}

/// Bucket bounds (seconds) of `strata_mover_job_seconds`, so that it is
/// exported as a histogram Prometheus can aggregate across instances
/// (`histogram_quantile`); a histogram without buckets renders as a summary
/// of the exporter's window.
const JOB_SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    300.0, 900.0, 3600.0,
];

/// The process-wide Prometheus handle, installing the recorder on first use.
/// Several daemons in one test process share it.
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("strata_mover_job_seconds".into()),
                JOB_SECONDS_BUCKETS,
            )
            .expect("the bucket bounds are not empty")
            .build_recorder();
        let handle = recorder.handle();
        // Fails only when another recorder is installed already; then this
        // handle renders an empty page, which is harmless.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}
