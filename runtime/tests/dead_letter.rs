//! Dead letters against librdkafka's mock cluster: a rejected message goes
//! to `<topic>.dlq` whole, with headers naming the error and its origin; one
//! too large to send again (another client allowed it) goes cut, with its
//! original length, instead of blocking its consumer.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use clap::Parser;
use rdkafka::{
    ClientConfig, Message, Timestamp,
    consumer::{Consumer, StreamConsumer},
    message::{Headers, OwnedMessage},
    mocking::MockCluster,
};
use strata_runtime::{
    args::CommonArgs,
    kafka::{self, Publisher},
};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    common: CommonArgs,
}

fn header(msg: &OwnedMessage, key: &str) -> Option<String> {
    let headers = msg.headers()?;
    headers
        .iter()
        .find(|h| h.key == key)
        .and_then(|h| h.value)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

/// A consumer of `access_events.dlq` from its start.
fn dlq_reader(brokers: &str) -> StreamConsumer {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "dlq-reader")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&["access_events.dlq"]).unwrap();
    consumer
}

fn rejected(value: Vec<u8>, offset: i64) -> OwnedMessage {
    rejected_keyed(b"k".to_vec(), value, offset)
}

fn rejected_keyed(key: Vec<u8>, value: Vec<u8>, offset: i64) -> OwnedMessage {
    OwnedMessage::new(
        Some(value),
        Some(key),
        "access_events".into(),
        Timestamp::NotAvailable,
        0,
        offset,
        None,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_too_large_to_send_whole_goes_cut_with_its_length() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("access_events.dlq", 1, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let cli = Cli::try_parse_from(["t", "--brokers", &brokers]).unwrap();
    let publisher = Publisher::try_new(&cli.common).unwrap();

    let small = b"not json".to_vec();
    publisher
        .dead_letter(&rejected(small.clone(), 7), "decode", "expected value")
        .await
        .unwrap();
    // Above librdkafka's default message.max.bytes (1,000,000).
    let big: Vec<u8> = (0..1_200_000u32).map(|i| i as u8).collect();
    tokio::time::timeout(
        Duration::from_secs(30),
        publisher.dead_letter(&rejected(big.clone(), 8), "decode", "too big to parse"),
    )
    .await
    .expect("a dead letter must not hang")
    .unwrap();
    // A key too large: the value is small, the key is what gets cut.
    let long_key = vec![b'k'; 1_100_000];
    publisher
        .dead_letter(
            &rejected_keyed(long_key, small.clone(), 9),
            "validate",
            "key too long",
        )
        .await
        .unwrap();

    // An error that quotes a large input (serde naming an unknown enum
    // value does) is cut in its header: whole, it would make even the cut
    // letter too large, and the consumer would retry it forever.
    let long_error = format!("unknown variant `{}`", "é".repeat(600_000));
    tokio::time::timeout(
        Duration::from_secs(30),
        publisher.dead_letter(&rejected(small.clone(), 10), "decode", &long_error),
    )
    .await
    .expect("a dead letter must not hang")
    .unwrap();

    let consumer = dlq_reader(&brokers);
    let mut letters = Vec::new();
    while letters.len() < 4 {
        let msg = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .unwrap()
            .unwrap();
        letters.push(msg.detach());
    }
    let (whole, cut) = (&letters[0], &letters[1]);
    assert_eq!(whole.payload(), Some(&small[..]));
    assert_eq!(
        header(whole, kafka::DLQ_SOURCE_OFFSET_HEADER).as_deref(),
        Some("7")
    );
    assert_eq!(header(whole, kafka::DLQ_TRUNCATED_FROM_HEADER), None);

    assert_eq!(cut.payload(), Some(&big[..kafka::DLQ_KEPT_BYTES]));
    assert_eq!(
        header(cut, kafka::DLQ_TRUNCATED_FROM_HEADER).as_deref(),
        Some("1200000")
    );
    assert_eq!(
        header(cut, kafka::DLQ_ERROR_HEADER).as_deref(),
        Some("too big to parse")
    );
    assert_eq!(
        header(cut, kafka::DLQ_SOURCE_OFFSET_HEADER).as_deref(),
        Some("8")
    );

    let keyed = &letters[2];
    assert_eq!(keyed.key().map(<[u8]>::len), Some(kafka::DLQ_KEPT_BYTES));
    assert_eq!(keyed.payload(), Some(&small[..]));
    assert_eq!(
        header(keyed, kafka::DLQ_TRUNCATED_FROM_HEADER).as_deref(),
        Some(small.len().to_string().as_str())
    );

    let quoted = &letters[3];
    assert_eq!(quoted.payload(), Some(&small[..]));
    assert_eq!(header(quoted, kafka::DLQ_TRUNCATED_FROM_HEADER), None);
    let error = header(quoted, kafka::DLQ_ERROR_HEADER).unwrap();
    assert!(
        error.len() <= kafka::DLQ_ERROR_KEPT_BYTES + 40,
        "{}",
        error.len()
    );
    assert!(error.starts_with("unknown variant `é"), "{error}");
    assert!(
        error.ends_with(&format!("({} bytes in all)", long_error.len())),
        "{error}"
    );
}

/// Where even the cut letter is too large (here the publisher's own limit
/// is below 64 KiB), the letter goes with its headers alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_too_large_even_cut_goes_with_its_headers_alone() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("access_events.dlq", 1, 1).unwrap();
    let brokers = cluster.bootstrap_servers();
    let cli = Cli::try_parse_from([
        "t",
        "--brokers",
        &brokers,
        "--kafka-options",
        "message.max.bytes=40000",
    ])
    .unwrap();
    let publisher = Publisher::try_new(&cli.common).unwrap();
    let big = vec![b'x'; 100_000];
    tokio::time::timeout(
        Duration::from_secs(30),
        publisher.dead_letter(&rejected(big, 11), "decode", "too big to parse"),
    )
    .await
    .expect("a dead letter must not hang")
    .unwrap();

    let consumer = dlq_reader(&brokers);
    let letter = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
        .await
        .unwrap()
        .unwrap()
        .detach();
    assert_eq!(letter.payload().map(<[u8]>::len).unwrap_or(0), 0);
    assert_eq!(letter.key(), None);
    assert_eq!(
        header(&letter, kafka::DLQ_TRUNCATED_FROM_HEADER).as_deref(),
        Some("100000")
    );
    assert_eq!(
        header(&letter, kafka::DLQ_SOURCE_OFFSET_HEADER).as_deref(),
        Some("11")
    );
    assert_eq!(
        header(&letter, kafka::DLQ_ERROR_HEADER).as_deref(),
        Some("too big to parse")
    );
}
