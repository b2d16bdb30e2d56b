//! What Strata's three daemons share, so that it is written once: the Kafka
//! plumbing (topics, producing with a content type, dead letters), the tier
//! configuration and the object store behind each tier, the HTTP basics
//! (health, readiness, metrics, bearer auth), telemetry and shutdown.
//!
//! # Layout
//! - [`args`]: command-line and environment settings every daemon takes.
//! - [`tiers`]: the tier file (TOML) and the object store of each tier.
//! - [`trace`]: access trace files (CSV, NDJSON, IBM) for the simulator and replays.
//! - [`kafka`]: client configs, topic creation, [`kafka::Publisher`], dead letters.
//! - [`http`]: the base router and `serve` with graceful shutdown.
//! - [`limits`]: per-tier caps on operations and bytes per second.
//! - [`telemetry`]: tracing and the Prometheus recorder.
//! - [`shutdown`]: the SIGINT/SIGTERM future.
//! - [`sqlite`]: opening a daemon's database with WAL and numbered migrations.

pub mod args;
pub mod http;
pub mod kafka;
pub mod limits;
pub mod shutdown;
pub mod sqlite;
pub mod telemetry;
pub mod tiers;
pub mod trace;
