//! Kafka plumbing shared by the daemons: client configs, idempotent topic
//! creation, a producer that stamps `content-type`, and dead letters.

use std::time::Duration;

use anyhow::Context;
use rdkafka::{
    ClientConfig, Message,
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    error::KafkaError,
    message::{Header, Headers, OwnedHeaders},
    producer::{DeliveryFuture, FutureProducer, FutureRecord},
    types::RDKafkaErrorCode,
    util::Timeout,
};
use strata_proto::codec::{self, CONTENT_TYPE_HEADER, Encoding, WireMessage};

use crate::args::CommonArgs;

/// Header naming why a message was dead-lettered.
pub const DLQ_ERROR_HEADER: &str = "x-strata-error";
/// Header naming the error's class (`decode`, `validate`).
pub const DLQ_ERROR_CLASS_HEADER: &str = "x-strata-error-class";
/// Header naming the topic the message came from.
pub const DLQ_SOURCE_TOPIC_HEADER: &str = "x-strata-source-topic";
/// Header naming the partition the message came from.
pub const DLQ_SOURCE_PARTITION_HEADER: &str = "x-strata-source-partition";
/// Header naming the offset the message had.
pub const DLQ_SOURCE_OFFSET_HEADER: &str = "x-strata-source-offset";
/// Header of a dead letter too large to send whole: the original value's
/// length in bytes. Such a dead letter keeps the first [`DLQ_KEPT_BYTES`]
/// of the value and of the key and none of the original headers; the
/// source topic keeps the whole message.
pub const DLQ_TRUNCATED_FROM_HEADER: &str = "x-strata-truncated-from";
/// Bytes of a value (and of a key) kept in a dead letter too large to send whole.
pub const DLQ_KEPT_BYTES: usize = 64 << 10;
/// Bytes of an error message kept in [`DLQ_ERROR_HEADER`]: an error that
/// quotes its input (a decoder naming an unknown enum value) may be as
/// large as the message, and must not make its dead letter too large.
pub const DLQ_ERROR_KEPT_BYTES: usize = 1 << 10;

/// A base client config: the brokers, then the operator's extra options.
pub fn client_config(args: &CommonArgs) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &args.brokers)
        .set("socket.keepalive.enable", "true")
        .set("log_level", "4");
    for (key, value) in args.kafka_options() {
        config.set(key, value);
    }
    config
}

/// Config of an at-least-once consumer: offsets are *stored* by the daemon
/// only once the message's effect is durable, and auto-committed from there.
/// The operator's options override these defaults (a longer
/// `session.timeout.ms`, say), except `enable.auto.offset.store`, on which
/// at-least-once delivery rests.
pub fn consumer_config(args: &CommonArgs, group_id: &str) -> ClientConfig {
    let mut config = client_config(args);
    config
        .set("group.id", group_id)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .set("enable.partition.eof", "false");
    for (key, value) in args.kafka_options() {
        config.set(key, value);
    }
    config.set("enable.auto.offset.store", "false");
    config
}

/// Creates `topics` when missing (idempotent). A broker that refuses the
/// admin API is logged and tolerated: the topics may exist already.
pub async fn ensure_topics(args: &CommonArgs, topics: &[String]) -> anyhow::Result<()> {
    if !args.create_topics {
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> = client_config(args)
        .create()
        .context("create kafka admin client")?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| {
            NewTopic::new(
                t,
                args.topic_partitions,
                TopicReplication::Fixed(args.topic_replication),
            )
        })
        .collect();
    let opts = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(10)))
        .request_timeout(Some(Duration::from_secs(15)));
    let results = match admin.create_topics(&new, &opts).await {
        Ok(results) => results,
        Err(e) => {
            tracing::warn!(error = %e, "broker refused to create topics; assuming they exist");
            return Ok(());
        }
    };
    for result in results {
        match result {
            Ok(topic) => tracing::info!(topic, "created topic"),
            Err((topic, RDKafkaErrorCode::TopicAlreadyExists)) => {
                tracing::debug!(topic, "topic exists")
            }
            Err((topic, code)) => tracing::warn!(topic, error = %code, "could not create topic"),
        }
    }
    Ok(())
}

/// A producer that encodes Strata messages and waits for the broker's ack.
#[derive(Clone)]
pub struct Publisher {
    producer: FutureProducer,
    /// Bound on waiting for an ack before the send counts as failed.
    timeout: Duration,
}

impl Publisher {
    /// A publisher with acks from all in-sync replicas.
    pub fn try_new(args: &CommonArgs) -> anyhow::Result<Self> {
        Self::create(args, false)
    }

    /// A publisher that keeps every partition's messages in the order they
    /// were sent even across retries (one request in flight per broker),
    /// so that messages sent without waiting for their ack ([`watch_acks`])
    /// can be followed by an
    /// acknowledged one that vouches for them.
    pub fn try_new_ordered(args: &CommonArgs) -> anyhow::Result<Self> {
        Self::create(args, true)
    }

    fn create(args: &CommonArgs, ordered: bool) -> anyhow::Result<Self> {
        let mut config = client_config(args);
        config
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "30000");
        if ordered {
            config.set("max.in.flight.requests.per.connection", "1");
        }
        // The operator's options win over these defaults.
        for (key, value) in args.kafka_options() {
            config.set(key, value);
        }
        let producer = config.create().context("create kafka producer")?;
        Ok(Self {
            producer,
            timeout: Duration::from_secs(30),
        })
    }

    /// Encodes `msg` and queues it keyed by `key`; the returned [`Delivery`]
    /// resolves once the broker acknowledged it (or gave up). Queueing does
    /// not wait: a caller may go on and await the ack later.
    pub fn send<T: WireMessage>(
        &self,
        topic: &str,
        key: &str,
        msg: &T,
        encoding: Encoding,
    ) -> anyhow::Result<Delivery> {
        let (payload, headers) = encoded(msg, encoding);
        let record = FutureRecord::to(topic)
            .payload(&payload)
            .key(key)
            .headers(headers);
        let future = self
            .producer
            .send_result(record)
            .map_err(|(e, _)| anyhow::Error::new(e))
            .with_context(|| format!("queue for {topic}"))?;
        Ok(Delivery {
            topic: topic.to_owned(),
            future,
        })
    }

    /// Encodes `msg` and sends it keyed by `key`; returns once acknowledged.
    pub async fn publish<T: WireMessage>(
        &self,
        topic: &str,
        key: &str,
        msg: &T,
        encoding: Encoding,
    ) -> anyhow::Result<()> {
        let (payload, headers) = encoded(msg, encoding);
        self.send_raw(topic, Some(key.as_bytes()), &payload, headers)
            .await
    }

    /// Sends bytes as they are; returns once acknowledged.
    pub async fn send_raw(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: &[u8],
        headers: OwnedHeaders,
    ) -> anyhow::Result<()> {
        let mut record = FutureRecord::to(topic).payload(payload).headers(headers);
        if let Some(key) = key {
            record = record.key(key);
        }
        self.producer
            .send(record, Timeout::After(self.timeout))
            .await
            .map_err(|(e, _)| anyhow::Error::new(e))
            .with_context(|| format!("produce to {topic}"))?;
        Ok(())
    }

    /// Sends a rejected message to `<topic>.dlq` with its original key, value
    /// and headers, plus headers naming the error and where it came from.
    /// A message too large to send again with those headers (another
    /// client may allow larger messages) goes cut (see
    /// [`DLQ_TRUNCATED_FROM_HEADER`]), and one still too large (the client
    /// or the dead letters' topic allows less than a key and a value cut to
    /// 64 KiB each) goes with its headers alone, without key or value: a
    /// dead letter must never block its consumer.
    pub async fn dead_letter(
        &self,
        msg: &impl Message,
        class: &str,
        error: &str,
    ) -> anyhow::Result<()> {
        let dlq = strata_proto::topics::dlq(msg.topic());
        metrics::counter!("strata_dead_letters_total", "topic" => msg.topic().to_owned())
            .increment(1);
        let value = msg.payload().unwrap_or_default();
        let error = &crate::shortened(error, DLQ_ERROR_KEPT_BYTES);
        let too_large = |sent: &anyhow::Result<()>| matches!(sent, Err(e) if is_too_large(e));
        let headers = dlq_headers(msg, class, error, None);
        let sent = self.send_raw(&dlq, msg.key(), value, headers).await;
        if !too_large(&sent) {
            return sent;
        }
        tracing::warn!(topic = %dlq, bytes = value.len(), "dead letter too large; sending it cut");
        let cut = |bytes: &[u8]| bytes[..bytes.len().min(DLQ_KEPT_BYTES)].to_vec();
        let headers = dlq_headers(msg, class, error, Some(value.len()));
        let key = msg.key().map(cut);
        let sent = self
            .send_raw(&dlq, key.as_deref(), &cut(value), headers.clone())
            .await;
        if !too_large(&sent) {
            return sent;
        }
        tracing::warn!(topic = %dlq, "dead letter too large even cut; sending its headers alone");
        self.send_raw(&dlq, None, &[], headers).await
    }

    /// Dead-letters a message a consumer rejected: logs it (the error cut
    /// as in the letter), then sends it ([`Self::dead_letter`]), retried
    /// every 2 s while the broker refuses it. `false` if `stop` came first:
    /// the message was not dead-lettered, and its offset must not be stored.
    pub async fn dead_letter_until_sent(
        &self,
        msg: &impl Message,
        class: &str,
        error: &str,
        stop: &tokio_util::sync::CancellationToken,
    ) -> bool {
        let error = crate::shortened(error, DLQ_ERROR_KEPT_BYTES);
        tracing::warn!(
            topic = msg.topic(),
            partition = msg.partition(),
            offset = msg.offset(),
            class,
            error = %error,
            "dead-lettering message"
        );
        while let Err(e) = self.dead_letter(msg, class, &error).await {
            tracing::error!(error = %e, "dead-letter failed; retrying");
            if stop.is_cancelled() {
                return false;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        true
    }

    /// Waits until every queued message is delivered or `timeout` passes.
    pub fn flush(&self, timeout: Duration) {
        use rdkafka::producer::Producer;
        if let Err(e) = self.producer.flush(Timeout::After(timeout)) {
            tracing::warn!(error = %e, "producer flush incomplete");
        }
    }
}

/// Whether a send failed because the message is larger than allowed.
fn is_too_large(e: &anyhow::Error) -> bool {
    e.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<KafkaError>(),
            Some(KafkaError::MessageProduction(
                RDKafkaErrorCode::MessageSizeTooLarge
            ))
        )
    })
}

/// A dead letter's headers: the message's own (unless it is cut, from a
/// value of `truncated_from` bytes), then the error and its origin.
fn dlq_headers(
    msg: &impl Message,
    class: &str,
    error: &str,
    truncated_from: Option<usize>,
) -> OwnedHeaders {
    let mut headers = OwnedHeaders::new();
    if let Some(original) = msg.headers().filter(|_| truncated_from.is_none()) {
        for h in original.iter() {
            headers = headers.insert(Header {
                key: h.key,
                value: h.value,
            });
        }
    }
    let partition = msg.partition().to_string();
    let offset = msg.offset().to_string();
    let truncated_from = truncated_from.map(|n| n.to_string());
    for (key, value) in [
        (DLQ_ERROR_HEADER, Some(error)),
        (DLQ_ERROR_CLASS_HEADER, Some(class)),
        (DLQ_SOURCE_TOPIC_HEADER, Some(msg.topic())),
        (DLQ_SOURCE_PARTITION_HEADER, Some(partition.as_str())),
        (DLQ_SOURCE_OFFSET_HEADER, Some(offset.as_str())),
        (DLQ_TRUNCATED_FROM_HEADER, truncated_from.as_deref()),
    ] {
        if let Some(value) = value {
            headers = headers.insert(Header {
                key,
                value: Some(value),
            });
        }
    }
    headers
}

/// A queued message on its way to the broker.
#[must_use = "a delivery says whether the broker took the message"]
pub struct Delivery {
    topic: String,
    future: DeliveryFuture,
}

impl Delivery {
    /// Waits for the broker's ack; an error when it refused the message or
    /// the producer gave up (`message.timeout.ms`).
    pub async fn acked(self) -> anyhow::Result<()> {
        match self.future.await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err((e, _))) => {
                Err(anyhow::Error::new(e).context(format!("produce to {}", self.topic)))
            }
            Err(_) => anyhow::bail!("produce to {}: the producer was dropped", self.topic),
        }
    }
}

/// Waits, in one task, for the acks of messages sent and not awaited
/// ([`Publisher::send`]); a failed delivery is logged. For messages whose
/// loss a later acknowledged message makes harmless (progress statuses);
/// messages queued together share the task.
pub fn watch_acks(deliveries: Vec<Delivery>) {
    if deliveries.is_empty() {
        return;
    }
    tokio::spawn(async move {
        for delivery in deliveries {
            if let Err(e) = delivery.acked().await {
                tracing::warn!(error = format!("{e:#}"), "queued message not delivered");
            }
        }
    });
}

/// `msg` encoded, with the `content-type` header naming the encoding.
fn encoded<T: WireMessage>(msg: &T, encoding: Encoding) -> (Vec<u8>, OwnedHeaders) {
    let headers = OwnedHeaders::new().insert(Header {
        key: CONTENT_TYPE_HEADER,
        value: Some(encoding.content_type()),
    });
    (codec::encode(msg, encoding), headers)
}

/// The `content-type` header of a consumed message, if any.
pub fn content_type(msg: &impl Message) -> Option<&str> {
    let headers = msg.headers()?;
    headers
        .iter()
        .find(|h| h.key.eq_ignore_ascii_case(CONTENT_TYPE_HEADER))
        .and_then(|h| h.value)
        .and_then(|v| std::str::from_utf8(v).ok())
}

/// Decodes a consumed message's value by its header, sniffing when absent.
pub fn decode<T: WireMessage>(msg: &impl Message) -> Result<T, codec::DecodeError> {
    codec::decode(msg.payload().unwrap_or_default(), content_type(msg))
}

/// The record's timestamp in ms since the epoch, when the broker gave one.
pub fn record_millis(msg: &impl Message) -> Option<i64> {
    msg.timestamp().to_millis()
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Args {
        #[command(flatten)]
        common: CommonArgs,
    }

    #[test]
    fn operator_options_override_consumer_defaults_but_not_the_offset_store() {
        let args = Args::try_parse_from([
            "t",
            "--kafka-options",
            "session.timeout.ms=30000,enable.auto.offset.store=true",
        ])
        .unwrap();
        let config = consumer_config(&args.common, "g");
        assert_eq!(config.get("session.timeout.ms"), Some("30000"));
        assert_eq!(config.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(config.get("group.id"), Some("g"));
    }

    /// Managed brokers (MSK, Confluent Cloud) take TLS and SASL/SCRAM:
    /// librdkafka is built with OpenSSL for them.
    #[test]
    fn clients_speak_tls_and_sasl_scram() {
        for options in [
            "security.protocol=SSL",
            "security.protocol=SASL_SSL,sasl.mechanism=SCRAM-SHA-512,sasl.username=u,sasl.password=p",
        ] {
            let args =
                Args::try_parse_from(["t", "--brokers", "127.0.0.1:1", "--kafka-options", options])
                    .unwrap();
            let created = client_config(&args.common).create::<rdkafka::producer::BaseProducer>();
            assert!(created.is_ok(), "{options}: {:?}", created.err());
        }
    }

    #[test]
    fn option_values_may_hold_commas_and_errors_never_quote_them() {
        let options = |value: &str| {
            Args::try_parse_from(["t", "--kafka-options", value]).map(|a| {
                a.common
                    .kafka_options()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect::<Vec<_>>()
            })
        };
        let pair = |k: &str, v: &str| (k.to_owned(), v.to_owned());
        assert_eq!(
            options("debug=broker,topic,sasl.password=se,cret").unwrap(),
            [
                pair("debug", "broker,topic"),
                pair("sasl.password", "se,cret")
            ]
        );
        let e = options("secret-without-key,a=b").unwrap_err().to_string();
        assert!(e.contains("piece 1") && !e.contains("secret"), "{e}");
    }
}
