//! ingest-svc binary: parse flags, start tracing, run until SIGINT/SIGTERM
//! (or run the demo workload, or replay a trace, once).

use clap::Parser;
use ingest_svc::config::{Cli, Command};
use strata_runtime::{kafka, shutdown, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = cli.config;
    telemetry::init_tracing(config.common.log_format);
    match cli.command {
        None | Some(Command::Serve) => ingest_svc::run(config, shutdown::signal_received()).await,
        Some(Command::Demo(args)) => {
            let tiers = config.common.open_tiers()?;
            let publisher = kafka::Publisher::try_new(&config.common)?;
            kafka::ensure_topics(&config.common, &config.common.all_topics()).await?;
            let topic = &config.common.topic_access_events;
            let (objects, events) =
                ingest_svc::demo::run(&args, &tiers, &publisher, topic, config.event_encoding)
                    .await?;
            if events == 0 {
                println!(
                    "demo: its objects are there already from an earlier run; nothing published \
                     (--resume goes on with a run that was stopped)"
                );
            } else {
                println!(
                    "demo: created {objects} objects, published {events} access events to {topic}"
                );
            }
            Ok(())
        }
        Some(Command::Replay(args)) => {
            // A trace that does not parse fails here, before any broker.
            let loaded = ingest_svc::replay::Loaded::of(&args)?;
            let publisher = kafka::Publisher::try_new(&config.common)?;
            kafka::ensure_topics(&config.common, &config.common.all_topics()).await?;
            let topic = &config.common.topic_access_events;
            let stop = shutdown::token(shutdown::signal_received());
            let now_ms = strata_proto::time::now_millis();
            let done = ingest_svc::replay::run(
                &args,
                &loaded,
                &publisher,
                topic,
                config.event_encoding,
                now_ms,
                &stop,
            )
            .await?;
            println!(
                "replay: published {} access events to {topic}; skipped {} invalid and {} of operations not replayed{}",
                done.published,
                done.invalid,
                done.skipped,
                if done.stopped {
                    " (stopped early: run it again to finish; events already published are not counted twice)"
                } else {
                    ""
                }
            );
            Ok(())
        }
    }
}
