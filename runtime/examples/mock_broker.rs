//! librdkafka's mock cluster on loopback, as a process of its own: an
//! in-memory Kafka-protocol broker for benchmarks that want to measure a
//! daemon rather than a broker's storage. Prints its bootstrap servers on
//! the first line of stdout and serves until killed.
//!
//! `cargo run --release -p strata-runtime --example mock_broker [BROKERS]`

use std::io::Write;

use rdkafka::mocking::MockCluster;

fn main() -> anyhow::Result<()> {
    let brokers = match std::env::args().nth(1) {
        Some(n) => n.parse()?,
        None => 1,
    };
    let cluster = MockCluster::new(brokers)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", cluster.bootstrap_servers())?;
    out.flush()?;
    loop {
        std::thread::park();
    }
}
