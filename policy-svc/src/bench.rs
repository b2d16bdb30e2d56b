//! `policy-svc bench-kafka`, for scripts/bench-policy.sh: produce a
//! synthetic stream of access events to a topic, or consume a topic as fast
//! as the Kafka client allows (the raw rate policy-svc is measured against).

use std::time::{Duration, Instant};

use anyhow::Context;
use futures::{StreamExt, stream::FuturesUnordered};
use rdkafka::consumer::{Consumer, StreamConsumer};
use strata_proto::{AccessEvent, Op, codec::Encoding, time};
use strata_runtime::{args::CommonArgs, kafka};

use crate::sim::{synth, trace};

/// Flags of `policy-svc bench-kafka`.
#[derive(Debug, Clone, clap::Args)]
pub struct BenchKafkaArgs {
    /// The topic to produce to or consume from.
    #[arg(long)]
    pub topic: String,
    /// Produce this many access events (from the synthetic sample mix).
    #[arg(long, conflicts_with = "consume")]
    pub produce: Option<usize>,
    /// Consume this many messages with a fresh group, then print the rate.
    #[arg(long)]
    pub consume: Option<usize>,
    /// Sends in flight at once when producing.
    #[arg(long, default_value_t = 2000)]
    pub in_flight: usize,
}

/// Runs the subcommand with the daemon's Kafka settings.
pub async fn run(common: &CommonArgs, args: &BenchKafkaArgs) -> anyhow::Result<()> {
    if let Some(n) = args.produce {
        return produce(common, &args.topic, n, args.in_flight).await;
    }
    let n = args.consume.context("give --produce N or --consume N")?;
    let group = format!("bench-raw-{}", std::process::id());
    let consumer: StreamConsumer = kafka::consumer_config(common, &group)
        .set("enable.auto.commit", "false")
        .create()
        .context("create kafka consumer")?;
    consumer.subscribe(&[args.topic.as_str()])?;
    let mut started = None;
    let mut seen = 0usize;
    while seen < n {
        let msg = tokio::time::timeout(Duration::from_secs(60), consumer.recv())
            .await
            .with_context(|| format!("no message for 60 s after {seen}"))??;
        started.get_or_insert_with(Instant::now);
        std::hint::black_box(msg);
        seen += 1;
    }
    let secs = started.map_or(0.0, |s| s.elapsed().as_secs_f64()).max(1e-9);
    println!(
        "raw consume: {seen} messages in {secs:.2} s = {:.0} msg/s",
        seen as f64 / secs
    );
    Ok(())
}

async fn produce(
    common: &CommonArgs,
    topic: &str,
    n: usize,
    in_flight: usize,
) -> anyhow::Result<()> {
    kafka::ensure_topics(common, &[topic.to_owned()]).await?;
    let publisher = kafka::Publisher::try_new(common)?;
    // The sample's mix, sized to about `n` events (the sample has ~40,000).
    let mix = synth::Mix::SAMPLE.scaled((n as f64 / 40_000.0).max(0.01));
    let trace = synth::generate(mix, 1);
    let started = Instant::now();
    let mut pending = FuturesUnordered::new();
    for e in trace.events.iter().cycle().take(n) {
        let key = trace.keys[e.key as usize].clone();
        let op = match e.op {
            trace::Op::Get => Op::Get,
            trace::Op::Put => Op::Put,
            trace::Op::Delete => Op::Delete,
            trace::Op::Head => Op::Head,
        };
        let event = AccessEvent {
            object_key: key.clone(),
            op: op as i32,
            size_bytes: e.size,
            ts: Some(time::from_millis(e.ts_ms)),
            ..Default::default()
        };
        let publisher = publisher.clone();
        pending.push(async move {
            publisher
                .publish(topic, &key, &event, Encoding::Protobuf)
                .await
        });
        if pending.len() >= in_flight
            && let Some(result) = pending.next().await
        {
            result?;
        }
    }
    while let Some(result) = pending.next().await {
        result?;
    }
    let secs = started.elapsed().as_secs_f64().max(1e-9);
    println!(
        "produced {n} events in {secs:.2} s = {:.0} msg/s",
        n as f64 / secs
    );
    Ok(())
}
