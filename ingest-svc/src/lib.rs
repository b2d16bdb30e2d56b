//! ingest-svc: turns the outside world's signals into `access_events`:
//! `POST /v1/events`, periodic inventories of every tier, replays of
//! trace files and the demo workload.
//!
//! # Layout
//! - [`config`]: flags, environment, subcommands.
//! - [`events`]: parsing and validating a posted batch (pure).
//! - [`inventory`]: listing tiers into INVENTORY events.
//! - [`demo`]: the seeded demo workload.
//! - [`replay`]: replays of access trace files.

pub mod config;
pub mod demo;
pub mod events;
pub mod inventory;
pub mod replay;

use std::{future::Future, sync::Arc, time::Duration};

use anyhow::Context;
use axum::{
    Json, Router,
    body::Bytes,
    extract::{DefaultBodyLimit, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::post,
};
use serde_json::json;
use strata_proto::codec::Encoding;
use strata_runtime::{
    http::{self, Readiness, error_response},
    kafka::{self, Publisher},
    shutdown,
};

pub use config::Config;

/// What the HTTP handler shares.
#[derive(Clone)]
struct AppState {
    publisher: Publisher,
    topic: Arc<str>,
    encoding: Encoding,
    max_batch: usize,
}

/// Runs the daemon until `shutdown` resolves.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let stop = shutdown::token(shutdown);
    let ready = Readiness::default();
    let tiers = config.common.open_tiers()?;
    let publisher = Publisher::try_new(&config.common)?;
    let state = AppState {
        publisher: publisher.clone(),
        topic: config.common.topic_access_events.clone().into(),
        encoding: config.event_encoding,
        max_batch: config.max_batch,
    };
    let api = Router::new()
        .route("/v1/events", post(post_events))
        .layer(DefaultBodyLimit::max(config.max_body_mib << 20))
        .with_state(state);
    let http_task = http::serve(
        config.http_addr,
        api,
        &config.common,
        ready.clone(),
        stop.clone(),
    )
    .await?;

    kafka::ensure_topics(&config.common, &config.common.all_topics()).await?;
    ready.set_ready();
    tracing::info!("ingest ready");

    if config.inventory_interval_secs > 0 {
        let mut ticker = tokio::time::interval(Duration::from_secs(config.inventory_interval_secs));
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                _ = ticker.tick() => {}
            }
            let topic = &config.common.topic_access_events;
            if let Err(e) =
                inventory::run_once(&tiers, &publisher, topic, config.event_encoding, &stop).await
            {
                tracing::warn!(
                    error = format!("{e:#}"),
                    "inventory failed; next one at the interval"
                );
            }
        }
    } else {
        stop.cancelled().await;
    }
    publisher.flush(Duration::from_secs(5));
    http_task.await.context("http task")??;
    tracing::info!("ingest stopped");
    Ok(())
}

/// `POST /v1/events`: a JSON array or NDJSON of access events. The batch is
/// validated whole (400 naming item and field), then published; 202 only
/// once the broker acknowledged every event.
async fn post_events(State(state): State<AppState>, body: Bytes) -> Response {
    let now_ms = strata_proto::time::now_millis();
    let events = match events::parse_batch(&body, now_ms, state.max_batch) {
        Ok(events) => events,
        Err(e) => {
            let body = json!({"error": e.message, "item": e.item, "field": e.field});
            return (StatusCode::BAD_REQUEST, Json(body)).into_response();
        }
    };
    let sends = events.iter().map(|e| {
        state
            .publisher
            .publish(&state.topic, &e.object_key, e, state.encoding)
    });
    match futures::future::try_join_all(sends).await {
        Ok(_) => {
            metrics::counter!("strata_ingest_events_total", "source" => "http")
                .increment(events.len() as u64);
            (
                StatusCode::ACCEPTED,
                Json(json!({"accepted": events.len()})),
            )
                .into_response()
        }
        Err(e) => {
            tracing::warn!(error = format!("{e:#}"), "publishing posted events failed");
            error_response(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("broker did not acknowledge: {e:#}"),
            )
        }
    }
}

/// What the unit tests share.
#[cfg(test)]
pub(crate) mod testing {
    use std::time::Duration;

    use clap::Parser;
    use rdkafka::{
        ClientConfig,
        consumer::{Consumer, StreamConsumer},
        mocking::MockCluster,
        producer::DefaultProducerContext,
    };
    use strata_proto::AccessEvent;
    use strata_runtime::{args::CommonArgs, kafka::Publisher};

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        common: CommonArgs,
    }

    /// librdkafka's mock cluster with an `access_events` topic, and a
    /// publisher on it.
    pub struct MockKafka {
        pub brokers: String,
        pub publisher: Publisher,
        _cluster: MockCluster<'static, DefaultProducerContext>,
    }

    impl MockKafka {
        pub fn start() -> Self {
            let cluster = MockCluster::new(1).unwrap();
            cluster.create_topic("access_events", 1, 1).unwrap();
            let brokers = cluster.bootstrap_servers();
            let cli = Cli::try_parse_from(["t", "--brokers", &brokers]).unwrap();
            let publisher = Publisher::try_new(&cli.common).unwrap();
            MockKafka {
                brokers,
                publisher,
                _cluster: cluster,
            }
        }
    }

    /// Reads `n` events from the start of `topic`.
    pub async fn consume(brokers: &str, topic: &str, group: &str, n: usize) -> Vec<AccessEvent> {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", group)
            .set("auto.offset.reset", "earliest")
            .create()
            .unwrap();
        consumer.subscribe(&[topic]).unwrap();
        let mut events = Vec::new();
        while events.len() < n {
            let msg = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
                .await
                .unwrap()
                .unwrap();
            events.push(strata_runtime::kafka::decode::<AccessEvent>(&msg).unwrap());
        }
        events
    }
}
