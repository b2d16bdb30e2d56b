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

/// `text` cut after at most `max` bytes (on a character boundary), with a
/// note of its whole length (some 30 bytes more): for errors that quote
/// their input, which may be as large as a message or a request.
pub fn shortened(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return text.into();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes in all)", &text[..end], text.len()).into()
}

#[cfg(test)]
mod tests {
    #[test]
    fn shortened_cuts_on_a_character_boundary_and_says_the_length() {
        assert_eq!(super::shortened("abc", 3), "abc");
        assert_eq!(super::shortened("abcd", 3), "abc... (4 bytes in all)");
        // 'é' is two bytes: a cut inside it keeps the character out.
        assert_eq!(super::shortened("aéb", 2), "a... (4 bytes in all)");
    }
}
