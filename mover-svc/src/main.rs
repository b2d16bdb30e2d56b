//! mover-svc binary: parse flags, start tracing, run until SIGINT/SIGTERM.

use clap::Parser;
use mover_svc::config::{Cli, Command};
use strata_runtime::{shutdown, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    telemetry::init_tracing(cli.config.common.log_format);
    match cli.command {
        None | Some(Command::Serve) => {
            mover_svc::run(cli.config, shutdown::signal_received()).await
        }
        Some(Command::TailStatus { from_beginning }) => {
            mover_svc::tail::run(
                &cli.config.common,
                from_beginning,
                shutdown::signal_received(),
            )
            .await
        }
    }
}
