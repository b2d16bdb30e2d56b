//! policy-svc binary: parse flags, start tracing, run until SIGINT/SIGTERM.

use clap::Parser;
use strata_runtime::{shutdown, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = policy_svc::Config::parse();
    telemetry::init_tracing(config.common.log_format);
    policy_svc::run(config, shutdown::signal_received()).await
}
