//! policy-svc binary: parse flags, start tracing, run until SIGINT/SIGTERM.

use policy_svc::config::Command;
use strata_runtime::{shutdown, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = policy_svc::config::Cli::parse_checked();
    match &cli.command {
        Some(Command::Simulate(args)) => return policy_svc::sim::run(args),
        Some(Command::Synth(args)) => return policy_svc::sim::run_synth(args),
        Some(Command::BenchKafka(args)) => {
            return policy_svc::bench::run(&cli.config.common, args).await;
        }
        Some(Command::Serve) | None => {}
    }
    telemetry::init_tracing(cli.config.common.log_format);
    policy_svc::run(cli.config, shutdown::signal_received()).await
}
