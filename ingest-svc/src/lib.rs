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
    extract::{DefaultBodyLimit, State, rejection::BytesRejection},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::post,
};
use backon::{BackoffBuilder, ExponentialBuilder};
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
    config.check()?;
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
    let api = api(state, config.max_body_mib);
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
        let interval = Duration::from_secs(config.inventory_interval_secs);
        // An inventory cut short (the broker away) is run again sooner than
        // the interval: after a minute, doubling with jitter, up to the
        // interval.
        let retries = || {
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_secs(60))
                .with_max_delay(interval)
                .with_jitter()
                .without_max_times()
                .build()
        };
        let (mut wait, mut retry) = (Duration::ZERO, retries());
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(wait) => {}
            }
            let topic = &config.common.topic_access_events;
            match inventory::run_once(&tiers, &publisher, topic, config.event_encoding, &stop).await
            {
                Ok(_) => (wait, retry) = (interval, retries()),
                Err(e) => {
                    wait = retry.next().unwrap_or(interval).min(interval);
                    tracing::warn!(
                        error = format!("{e:#}"),
                        retry_in_secs = wait.as_secs(),
                        "inventory failed; running it again"
                    );
                }
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

/// The HTTP API on `state`.
fn api(state: AppState, max_body_mib: usize) -> Router {
    Router::new()
        .route("/v1/events", post(post_events))
        .layer(DefaultBodyLimit::max(max_body_mib << 20))
        .with_state(state)
}

/// `POST /v1/events`: a JSON array or NDJSON of access events. The batch is
/// validated whole (400 naming item and field), then published; 202 only
/// once the broker acknowledged every event. Under an `Idempotency-Key`
/// header, events without an `eventId` get one derived from the key, their
/// place in the batch and their bytes, so a retried batch counts once.
async fn post_events(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    // A body over the limit (413) or cut short: said as JSON, as every
    // other refusal is.
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return error_response(rejection.status(), rejection.body_text()),
    };
    let content_type = headers
        .get(axum::http::header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    if let Some(content_type) = content_type.filter(|t| events::other_encoding(t)) {
        let message = format!(
            "Content-Type {:?}: POST /v1/events takes access events as JSON \
             (an array, or NDJSON); send protobuf to the access_events topic",
            strata_runtime::shortened(&content_type, 200)
        );
        return error_response(StatusCode::UNSUPPORTED_MEDIA_TYPE, message);
    }
    let now_ms = strata_proto::time::now_millis();
    let bad_request = |e: events::BatchError| {
        let mut named = serde_json::Map::new();
        named.insert("item".into(), json!(e.item));
        named.insert("field".into(), json!(e.field));
        http::error_response_with(StatusCode::BAD_REQUEST, e.message, named)
    };
    let key = match headers.get(events::IDEMPOTENCY_KEY) {
        Some(value) => match events::check_idempotency_key(value.as_bytes()) {
            Ok(key) => Some(key),
            Err(e) => return bad_request(e),
        },
        None => None,
    };
    let events = match events::parse_batch(&body, now_ms, state.max_batch, key) {
        Ok(events) => events,
        Err(e) => return bad_request(e),
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

#[cfg(test)]
mod tests {
    use axum::{body::Body, http::Request};
    use tower::ServiceExt;

    use super::*;
    use crate::testing::{MockKafka, consume};

    fn state(kafka: &MockKafka) -> AppState {
        AppState {
            publisher: kafka.publisher.clone(),
            topic: "access_events".into(),
            encoding: Encoding::Json,
            max_batch: 3,
        }
    }

    async fn post(app: &Router, key: Option<&str>, body: &str) -> (StatusCode, serde_json::Value) {
        let mut request = Request::post("/v1/events");
        if let Some(key) = key {
            request = request.header("Idempotency-Key", key);
        }
        let response = app
            .clone()
            .oneshot(request.body(Body::from(body.to_owned())).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    /// The API as a client meets it: 202 once published, 400 naming the
    /// item and field (nothing published), and a batch retried under one
    /// `Idempotency-Key` published with the same event ids.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn posted_events_are_published_refused_by_name_or_made_idempotent() {
        let kafka = MockKafka::start();
        let app = api(state(&kafka), 1);
        let batch = r#"[{"objectKey":"logs/a","op":"GET","sizeBytes":"10"},{"objectKey":"logs/b","op":"GET"}]"#;

        let (status, body) =
            post(&app, Some("k1"), "[{\"objectKey\":\"x\",\"op\":\"NOPE\"}]").await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(
            (body["item"].as_u64(), body["field"].as_str()),
            (Some(0), Some("op")),
            "{body}"
        );
        let (status, body) = post(&app, None, "[{},{},{},{}]").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(
            body["error"].as_str().unwrap().contains("at most 3"),
            "{body}"
        );
        let (status, body) = post(&app, Some("bad\tkey"), batch).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["field"], "Idempotency-Key", "{body}");
        // An error quoting a large input (serde names an unknown `op`
        // whole) is cut, still naming the item and field.
        let long_op = format!(
            "[{{\"objectKey\":\"x\",\"op\":\"{}\"}}]",
            "N".repeat(100_000)
        );
        let (status, body) = post(&app, None, &long_op).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            (body["item"].as_u64(), body["field"].as_str()),
            (Some(0), Some("op"))
        );
        let error = body["error"].as_str().unwrap();
        assert!(
            error.len() < 4200 && error.contains("bytes in all)"),
            "{}",
            error.len()
        );
        // A body of another encoding, by its Content-Type: 415 naming it.
        let protobuf = Request::post("/v1/events")
            .header("content-type", "application/x-protobuf")
            .body(Body::from(b"\x0a\x01a".to_vec()))
            .unwrap();
        let response = app.clone().oneshot(protobuf).await.unwrap();
        assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let error = body["error"].as_str().unwrap();
        assert!(error.contains("application/x-protobuf"), "{error}");
        // Over the body limit (1 MiB here): 413, in JSON like the rest.
        let (status, body) = post(&app, None, &" ".repeat((1 << 20) + 1)).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(
            body["error"].as_str().unwrap().contains("length limit"),
            "{body}"
        );

        for _ in 0..2 {
            let (status, body) = post(&app, Some("retry-7"), batch).await;
            assert_eq!(
                (status, body["accepted"].as_u64()),
                (StatusCode::ACCEPTED, Some(2))
            );
        }
        let (status, _) = post(&app, None, batch).await;
        assert_eq!(status, StatusCode::ACCEPTED);

        // Only the six accepted events are on the topic: none of a refused batch.
        let events = consume(&kafka.brokers, "access_events", "t", 6).await;
        let ids: Vec<&str> = events.iter().map(|e| e.event_id.as_str()).collect();
        assert!(ids[0].starts_with("idem-") && ids[0] != ids[1], "{ids:?}");
        assert_eq!(ids[..2], ids[2..4], "the retry carries the same ids");
        assert_eq!(ids[4..], ["", ""], "no key: no id made up");
        assert_eq!(events[0].object_key, "logs/a");
        assert_eq!(events[0].size_bytes, 10);
    }

    /// Bodies strung together at random from pieces of valid and invalid
    /// batches (arrays, NDJSON, bad keys, ops, sizes and times, stray
    /// bytes): each is answered 202 or a 400 that says what is wrong, and
    /// the topic holds as many events as were accepted, all from good
    /// items, with the next batch's event right after them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn any_body_gets_202_or_a_400_that_names_the_problem_and_loses_nothing() {
        use rand::{Rng, SeedableRng, rngs::StdRng};

        // Whole items, good and bad, and stray pieces.
        const ITEMS: &[&str] = &[
            r#"{"objectKey":"logs/a","op":"GET"}"#,
            r#"{"object_key":"logs/b","op":"PUT","size_bytes":"7"}"#,
            r#"{"objectKey":"logs/c","op":"DELETE","ts":"2026-03-01T00:00:00Z"}"#,
            r#"{"objectKey":"logs/d","op":"HEAD","eventId":"d-1","bytesRead":"3"}"#,
            r#"{"objectKey":"logs/e","op":"FETCH"}"#,
            r#"{"objectKey":"../etc/passwd","op":"GET"}"#,
            r#"{"objectKey":"","op":"GET"}"#,
            r#"{"objectKey":"nul\u0000","op":"GET"}"#,
            r#"{"objectKey":"logs/f","op":"GET","sizeBytes":"-1"}"#,
            r#"{"objectKey":"logs/g","op":"GET","sizeBytes":"99999999999999999999"}"#,
            r#"{"objectKey":"logs/h","op":"GET","ts":"1999-12-31T23:59:59Z"}"#,
            r#"{"objectKey":"logs/i","op":"GET","ts":"9999-99-99"}"#,
            r#"{"objectKey":"logs/j","op":"GET","eventId":7}"#,
            r#"{"objectKey":"logs/k"}"#,
            "null",
            "{}",
        ];
        const PIECES: &[&str] = &[
            "[", "]", "{", "}", ",", "\n", ":", "\"", "1e400", "\u{fffd}",
        ];
        let kafka = MockKafka::start();
        let app = api(state(&kafka), 1);
        let mut rng = StdRng::seed_from_u64(11);
        let (mut accepted, mut refused) = (0, 0);
        let pick = |rng: &mut StdRng, from: &[&'static str]| from[rng.random_range(0..from.len())];
        for _ in 0..400 {
            // Mostly good items (the first four), so that whole batches
            // pass too; up to four items, one more than a batch may hold.
            let items: Vec<&str> = (0..rng.random_range(1..=4))
                .map(|_| {
                    let from = if rng.random_ratio(5, 6) {
                        &ITEMS[..4]
                    } else {
                        &ITEMS[4..]
                    };
                    pick(&mut rng, from)
                })
                .collect();
            let body = match rng.random_range(0..3) {
                0 => items.join("\n"),
                1 => format!("[{}]", items.join(",")),
                _ => (0..rng.random_range(1..=8))
                    .map(|_| {
                        let from = if rng.random() { ITEMS } else { PIECES };
                        pick(&mut rng, from)
                    })
                    .collect(),
            };
            let (status, answer) = post(&app, None, &body).await;
            match status {
                StatusCode::ACCEPTED => accepted += answer["accepted"].as_u64().unwrap(),
                StatusCode::BAD_REQUEST => {
                    let error = answer["error"].as_str().unwrap_or_default();
                    assert!(!error.is_empty(), "{body:?}: {answer}");
                    refused += 1;
                }
                other => panic!("{body:?}: {other} {answer}"),
            }
        }
        assert!(
            accepted > 100 && refused > 100,
            "{accepted} accepted, {refused} refused"
        );
        // A last batch marks the end: right after the accepted events.
        let last = r#"{"objectKey":"the/end","op":"GET"}"#;
        assert_eq!(post(&app, None, last).await.0, StatusCode::ACCEPTED);
        let events = consume(&kafka.brokers, "access_events", "t", accepted as usize + 1).await;
        assert_eq!(events.last().unwrap().object_key, "the/end");
        // And only good items got through.
        let good = ["logs/a", "logs/b", "logs/c", "logs/d"];
        let strays: Vec<_> = events[..accepted as usize]
            .iter()
            .filter(|e| !good.contains(&e.object_key.as_str()))
            .collect();
        assert!(strays.is_empty(), "{strays:?}");
    }
}
