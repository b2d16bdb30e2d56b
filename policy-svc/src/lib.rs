//! policy-svc: consumes `access_events` and `migration_status`, keeps state
//! per object in SQLite, and on each cycle decides the objects whose
//! decision is due, emitting `migration_jobs` with idempotent job keys.
//!
//! # Layout
//! - [`config`]: flags and environment.
//! - [`rules`]: the first decision rule (idle days, promote on reads), pure.
//! - [`cost`], [`presets`]: the cost model and the clouds' price presets.
//! - [`predict`]: predicted reads from decayed counts and a prefix prior.
//! - [`prefix`]: per-prefix statistics behind that prior, kept in SQLite.
//! - [`placement`]: the cost-based decision, pure, shared with the simulator.
//! - [`store`]: the SQLite state, the clock and the job outbox.
//! - [`engine`]: applying messages and running a decision cycle.
//! - [`assign`]: consumption starts at the offsets stored with the state.
//! - [`api`]: explain and summary over HTTP.
//! - [`sim`]: `policy-svc simulate`, the trace replay against baselines.
//! - [`bench`]: Kafka produce and raw-consume helpers for the benchmark.

pub mod api;
pub mod assign;
pub mod bench;
pub mod config;
pub mod cost;
pub mod engine;
pub mod placement;
pub mod predict;
pub mod prefix;
pub mod presets;
pub mod rules;
pub mod sim;
pub mod store;

use std::{collections::HashMap, future::Future, sync::Arc, time::Duration};

use anyhow::Context;
use rdkafka::{
    Message, Offset, TopicPartitionList,
    consumer::{CommitMode, Consumer as _, StreamConsumer},
    message::OwnedMessage,
};
use strata_proto::{AccessEvent, MigrationJob, MigrationStatus, State, codec, time, validate};
use strata_runtime::{
    http::{self, Readiness},
    kafka::{self, Publisher},
    shutdown,
    tiers::TierConfig,
};
use tokio_util::sync::CancellationToken;

pub use config::Config;
use engine::{Budget, Input, Payload};
use rules::{DAY_MS, RuleParams};
use store::Store;

/// The policy's consumer: it starts each assigned partition at the offset
/// SQLite stored ([`assign`]).
type Consumer = StreamConsumer<assign::StartAtStored>;

/// What the HTTP handlers share.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub tiers: Arc<TierConfig>,
    pub params: RuleParams,
}

/// Runs the policy until `shutdown` resolves.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    config.check()?;
    let stop = shutdown::token(shutdown);
    let ready = Readiness::default();
    let mut tiers = config.common.load_tiers()?;
    presets::resolve(&mut tiers)?;
    let tiers = Arc::new(tiers);
    let params = RuleParams {
        promote_reads: config.promote_reads,
        promote_window_ms: (config.promote_window_days * DAY_MS as f64) as i64,
        min_object_bytes: config.cost.min_object_bytes,
        cost: match config.rule {
            config::RuleKind::Idle => None,
            config::RuleKind::Cost => {
                let params = config.cost.params()?;
                params.check_pins(&placement::tier_names(&tiers))?;
                Some(params)
            }
        },
    };
    tracing::info!(rule = ?config.rule, "decision rule");
    let store = Store::open(&config.db_path())?;
    let publisher = Publisher::try_new(&config.common)?;
    let state = AppState {
        store: store.clone(),
        tiers: tiers.clone(),
        params: params.clone(),
    };
    let api = api::routes(state);
    let http_task = http::serve(
        config.http_addr,
        api,
        &config.common,
        ready.clone(),
        stop.clone(),
    )
    .await?;

    kafka::ensure_topics(&config.common, &config.common.all_topics()).await?;
    let consumer_config = kafka::consumer_config(&config.common, &config.group_id);
    let topics = [
        config.common.topic_access_events.as_str(),
        config.common.topic_migration_status.as_str(),
    ];
    {
        let (consumer_config, db) = (consumer_config.clone(), config.db_path());
        let topics = topics.map(str::to_owned);
        tokio::task::spawn_blocking(move || {
            assign::restart_new_logs(&consumer_config, &db, &topics);
        })
        .await
        .context("look for new logs")?;
    }
    let consumer: Consumer = consumer_config
        .create_with_context(assign::StartAtStored::new(config.db_path()))
        .context("create kafka consumer")?;
    consumer.subscribe(&topics)?;
    ready.set_ready();
    tracing::info!(?topics, group = %config.group_id, "policy ready");

    let decider = tokio::spawn(decide_loop(
        config.clone(),
        store.clone(),
        tiers.clone(),
        params,
        publisher.clone(),
        stop.clone(),
    ));
    let result = consume(&config, &consumer, &store, &tiers, &publisher, &stop).await;
    stop.cancel();
    if let Err(e) = consumer.commit_consumer_state(CommitMode::Sync) {
        tracing::debug!(error = %e, "final commit (nothing to commit, or broker gone)");
    }
    decider.await.context("decide task")??;
    publisher.flush(Duration::from_secs(5));
    http_task.await.context("http task")??;
    tracing::info!("policy stopped");
    result
}

/// Decodes and validates one message of either topic; `Err` names the class
/// and the error for the dead-letter headers. A status that puts an object
/// on a tier this policy does not have (a mover configured with other
/// tiers) is refused too: the policy could never decide for it again.
fn decode(
    config: &Config,
    tiers: &TierConfig,
    msg: &OwnedMessage,
) -> Result<Payload, (&'static str, String)> {
    if msg.topic() == config.common.topic_access_events {
        let mut event: AccessEvent = kafka::decode(msg).map_err(|e| ("decode", e.to_string()))?;
        let from_record = event.ts.is_none();
        if from_record {
            event.ts = kafka::record_millis(msg).map(time::from_millis);
        }
        validate::access_event(&event).map_err(|e| {
            let whose = if from_record && e.field == "ts" {
                " (the event has no ts: this is its Kafka record's timestamp)"
            } else {
                ""
            };
            ("validate", format!("{e}{whose}"))
        })?;
        Ok(Payload::Event(event))
    } else {
        let status: MigrationStatus = kafka::decode(msg).map_err(|e| ("decode", e.to_string()))?;
        validate::migration_status(&status).map_err(|e| ("validate", e.to_string()))?;
        let placed = match status.state() {
            State::Duplicate => status.result(),
            other => other,
        };
        let named = match placed {
            State::Switched | State::Completed => Some(("to_tier", &status.to_tier)),
            State::Failed | State::Rejected if !status.current_tier.is_empty() => {
                Some(("current_tier", &status.current_tier))
            }
            _ => None,
        };
        if let Some((field, tier)) = named.filter(|(_, t)| tiers.get(t).is_none()) {
            return Err((
                "unknown-tier",
                format!("{field}: {tier:?} is not a tier of this policy"),
            ));
        }
        Ok(Payload::Status(status))
    }
}

/// The consume loop: batches of messages, bad ones dead-lettered first,
/// then the batch and its offsets applied in one transaction. While SQLite
/// applies a batch, the next one is received and decoded; batches still
/// commit one after the other, in order.
async fn consume(
    config: &Config,
    consumer: &Consumer,
    store: &Store,
    tiers: &Arc<TierConfig>,
    publisher: &Publisher,
    stop: &CancellationToken,
) -> anyhow::Result<()> {
    let mut applying: Option<Applying> = None;
    loop {
        let Some(batch) = receive_batch(config, consumer, &mut applying, stop).await? else {
            break;
        };
        let Some(inputs) = decode_batch(config, tiers, &batch, publisher, stop).await else {
            break;
        };
        if let Some(previous) = applying.take() {
            previous.wait(consumer).await?;
        }
        applying = Some(Applying::start(store, tiers, inputs, &batch)?);
    }
    // Stopping: the batch in hand still commits, and its offsets are stored.
    if let Some(previous) = applying {
        previous.wait(consumer).await?;
    }
    Ok(())
}

/// Waits for a message, then takes what follows within 10 ms of the last,
/// up to the batch size; `None` when stopped. A batch SQLite is applying
/// meanwhile is finished as soon as it commits.
async fn receive_batch(
    config: &Config,
    consumer: &Consumer,
    applying: &mut Option<Applying>,
    stop: &CancellationToken,
) -> anyhow::Result<Option<Vec<OwnedMessage>>> {
    loop {
        let first = tokio::select! {
            () = stop.cancelled() => return Ok(None),
            joined = applied(applying) => {
                if let Some(done) = applying.take() {
                    done.finish(joined, consumer)?;
                }
                continue;
            }
            msg = consumer.recv() => msg,
        };
        let mut batch = match first {
            Ok(msg) => vec![msg.detach()],
            Err(e) => {
                tracing::warn!(error = %e, "kafka receive failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        while batch.len() < config.batch.max(1) {
            match tokio::time::timeout(Duration::from_millis(10), consumer.recv()).await {
                Ok(Ok(msg)) => batch.push(msg.detach()),
                _ => break,
            }
        }
        return Ok(Some(batch));
    }
}

/// The outcome of the batch SQLite is applying; pending while there is none.
async fn applied(
    applying: &mut Option<Applying>,
) -> Result<anyhow::Result<engine::Applied>, tokio::task::JoinError> {
    match applying {
        Some(a) => (&mut a.applied).await,
        None => std::future::pending().await,
    }
}

/// Decodes a batch, dead-lettering what does not decode or validate (each
/// dead letter durable before its offset may move past it); `None` when
/// stopped while a dead letter could not be written.
async fn decode_batch(
    config: &Config,
    tiers: &TierConfig,
    batch: &[OwnedMessage],
    publisher: &Publisher,
    stop: &CancellationToken,
) -> Option<Vec<Input>> {
    let mut inputs = Vec::with_capacity(batch.len());
    for msg in batch {
        let payload = match decode(config, tiers, msg) {
            Ok(payload) => payload,
            Err((class, error)) => {
                if !publisher
                    .dead_letter_until_sent(msg, class, &error, stop)
                    .await
                {
                    return None;
                }
                Payload::Skip
            }
        };
        inputs.push(Input {
            topic: msg.topic().to_owned(),
            partition: msg.partition(),
            offset: msg.offset(),
            payload,
        });
    }
    Some(inputs)
}

/// A batch SQLite is applying, and the positions to store in Kafka once it
/// has committed.
struct Applying {
    applied: tokio::task::JoinHandle<anyhow::Result<engine::Applied>>,
    positions: TopicPartitionList,
}

impl Applying {
    fn start(
        store: &Store,
        tiers: &Arc<TierConfig>,
        inputs: Vec<Input>,
        batch: &[OwnedMessage],
    ) -> anyhow::Result<Self> {
        // The stored offset is the next one to read: one past the batch's
        // last message of each partition.
        let mut next: HashMap<(&str, i32), i64> = HashMap::new();
        for msg in batch {
            let offset = next.entry((msg.topic(), msg.partition())).or_default();
            *offset = (*offset).max(msg.offset() + 1);
        }
        let mut positions = TopicPartitionList::with_capacity(next.len());
        for ((topic, partition), offset) in next {
            positions.add_partition_offset(topic, partition, Offset::Offset(offset))?;
        }
        let (store, tiers) = (store.clone(), tiers.clone());
        let applied = tokio::spawn(async move {
            store
                .transaction(move |tx| engine::apply_batch(tx, &inputs, &tiers, time::now_millis()))
                .await
        });
        Ok(Applying { applied, positions })
    }

    /// Waits for the commit, then stores the batch's offsets in Kafka.
    async fn wait(mut self, consumer: &Consumer) -> anyhow::Result<()> {
        let joined = (&mut self.applied).await;
        self.finish(joined, consumer)
    }

    /// Once the batch has committed (`joined`), stores its offsets in Kafka.
    fn finish(
        self,
        joined: Result<anyhow::Result<engine::Applied>, tokio::task::JoinError>,
        consumer: &Consumer,
    ) -> anyhow::Result<()> {
        let applied = joined.context("apply task")?.context("apply batch")?;
        metrics::counter!("strata_policy_events_applied_total").increment(applied.events as u64);
        metrics::counter!("strata_policy_statuses_applied_total")
            .increment(applied.statuses as u64);
        tracing::debug!(?applied, "batch applied");
        // SQLite holds the authoritative offsets; Kafka's are a hint for
        // where to start after a rebalance (replays are skipped by offset).
        if let Err(e) = consumer.store_offsets(&self.positions) {
            tracing::debug!(error = %e, "store offsets (partition revoked?)");
        }
        Ok(())
    }
}

/// Every interval: a decision cycle, then the outbox published.
async fn decide_loop(
    config: Config,
    store: Store,
    tiers: Arc<TierConfig>,
    params: RuleParams,
    publisher: Publisher,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let budget = Budget {
        max_jobs: config.max_jobs_per_cycle,
        max_bytes: (config.max_gib_per_cycle * (1u64 << 30) as f64) as u64,
        // Checked at start: 0 to a century.
        job_timeout_ms: (config.job_timeout_hours * 3_600_000.0) as i64,
    };
    // Checked at start ([`Config::check`]): finite, at least 0.05.
    let mut ticker = tokio::time::interval(Duration::from_secs_f64(config.decide_interval_secs));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut forget_at = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            _ = ticker.tick() => {}
        }
        if tokio::time::Instant::now() >= forget_at {
            // Hourly: event ids older than the de-duplication window go.
            forget_at += Duration::from_secs(3600);
            let before = time::now_millis() - store::EVENT_ID_MEMORY_DAYS * DAY_MS;
            match store.forget_event_ids(before).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(forgotten = n, "event ids past the de-duplication window"),
                Err(e) => {
                    tracing::warn!(error = format!("{e:#}"), "forgetting old event ids failed")
                }
            }
        }
        let (tiers, params) = (tiers.clone(), params.clone());
        match store
            .transaction(move |tx| {
                engine::decide_cycle(tx, &tiers, &params, budget, time::now_millis())
            })
            .await
        {
            Ok(jobs) => {
                for job in &jobs {
                    let reason = job
                        .reason
                        .as_ref()
                        .map(|r| r.summary.as_str())
                        .unwrap_or_default();
                    tracing::info!(object_key = %job.object_key, from = %job.from_tier, to = %job.to_tier, reason, "decided move");
                    metrics::counter!("strata_policy_jobs_emitted_total", "from" => job.from_tier.clone(), "to" => job.to_tier.clone()).increment(1);
                }
            }
            Err(e) => tracing::error!(error = format!("{e:#}"), "decision cycle failed"),
        }
        if let Err(e) = publish_outbox(&store, &publisher, &config).await {
            tracing::warn!(
                error = format!("{e:#}"),
                "publishing jobs failed; will retry"
            );
        }
    }
}

/// Publishes jobs decided but not yet acknowledged (after a crash, too).
async fn publish_outbox(
    store: &Store,
    publisher: &Publisher,
    config: &Config,
) -> anyhow::Result<()> {
    let pending = store.outbox().await?;
    if pending.is_empty() {
        return Ok(());
    }
    let mut done = Vec::with_capacity(pending.len());
    for (job_key, object_key, payload) in pending {
        let job: MigrationJob = codec::decode_as(&payload, codec::Encoding::Protobuf)?;
        publisher
            .publish(
                &config.common.topic_migration_jobs,
                &object_key,
                &job,
                config.job_encoding,
            )
            .await?;
        done.push(job_key);
    }
    store.remove_published(done).await
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use rdkafka::{Timestamp, message::OwnedMessage};
    use strata_proto::{Op, State, codec::Encoding};

    use super::*;

    #[test]
    fn a_status_placing_an_object_on_a_tier_the_policy_lacks_is_dead_lettered() {
        let config = config::Cli::try_parse_from(["policy-svc"]).unwrap().config;
        let tiers = TierConfig::parse(
            "[[tiers]]\nname='hot'\nurl='memory://'\n[[tiers]]\nname='cold'\nurl='memory://'\n",
            &[],
        )
        .unwrap();
        let decoded = |status: &MigrationStatus| {
            let value = codec::encode(status, Encoding::Json);
            let topic = config.common.topic_migration_status.clone();
            let msg = OwnedMessage::new(
                Some(value),
                None,
                topic,
                Timestamp::NotAvailable,
                0,
                0,
                None,
            );
            decode(&config, &tiers, &msg).map(|_| ())
        };
        let completed = MigrationStatus {
            object_key: "logs/a".into(),
            state: State::Completed as i32,
            from_tier: "hot".into(),
            to_tier: "cold".into(),
            generation: 1,
            ..Default::default()
        };
        assert_eq!(decoded(&completed), Ok(()));
        let elsewhere = MigrationStatus {
            to_tier: "tape".into(),
            ..completed.clone()
        };
        let (class, error) = decoded(&elsewhere).unwrap_err();
        assert_eq!(class, "unknown-tier");
        assert!(error.contains("\"tape\""), "{error}");
        let huge = MigrationStatus {
            bytes: u64::MAX,
            ..completed.clone()
        };
        assert_eq!(decoded(&huge).unwrap_err().0, "validate");
        // FAILED and REJECTED statuses (a stale job's, a switch undone)
        // name where the catalog has the object.
        for state in [State::Failed, State::Rejected] {
            let stale = MigrationStatus {
                state: state as i32,
                current_tier: "tape".into(),
                ..completed.clone()
            };
            assert_eq!(decoded(&stale).unwrap_err().0, "unknown-tier", "{state:?}");
            let generation = MigrationStatus {
                current_tier: "cold".into(),
                generation: u64::MAX,
                ..stale
            };
            assert_eq!(decoded(&generation).unwrap_err().0, "validate", "{state:?}");
        }
    }

    /// An event without a `ts` takes its record's timestamp; refused for
    /// it, its error says whose time it was.
    #[test]
    fn an_event_refused_for_its_records_timestamp_says_so() {
        let config = config::Cli::try_parse_from(["policy-svc"]).unwrap().config;
        let tiers = TierConfig::parse("[[tiers]]\nname='hot'\nurl='memory://'\n", &[]).unwrap();
        let decoded = |event: &AccessEvent, record_ms: i64| {
            let value = codec::encode(event, Encoding::Json);
            let topic = config.common.topic_access_events.clone();
            let at = Timestamp::CreateTime(record_ms);
            let msg = OwnedMessage::new(Some(value), None, topic, at, 0, 0, None);
            decode(&config, &tiers, &msg).map(|_| ())
        };
        let untimed = AccessEvent {
            object_key: "logs/a".into(),
            op: Op::Get as i32,
            ..Default::default()
        };
        assert_eq!(decoded(&untimed, 1_767_225_600_000), Ok(()));
        // 1999: before the times an event may carry.
        let (class, error) = decoded(&untimed, 915_148_800_000).unwrap_err();
        assert_eq!(class, "validate");
        assert!(error.contains("its Kafka record's timestamp"), "{error}");
        // An event's own bad ts is its own.
        let timed = AccessEvent {
            ts: Some(time::from_millis(915_148_800_000)),
            ..untimed
        };
        let (_, error) = decoded(&timed, 1_767_225_600_000).unwrap_err();
        assert!(
            error.starts_with("ts:") && !error.contains("record"),
            "{error}"
        );
    }
}
