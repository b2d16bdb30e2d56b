//! `mover-svc tail-status`: one line per `migration_status` record, for
//! people watching migrations without a Kafka tool.

use std::future::Future;

use anyhow::Context;
use rdkafka::{
    Message,
    consumer::{Consumer, StreamConsumer},
};
use strata_proto::{MigrationStatus, State};
use strata_runtime::{args::CommonArgs, kafka};

/// Follows the status topic until `shutdown`.
pub async fn run(
    common: &CommonArgs,
    from_beginning: bool,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    let group = format!("strata-tail-{}", std::process::id());
    let mut config = kafka::consumer_config(common, &group);
    config.set("enable.auto.commit", "false").set(
        "auto.offset.reset",
        if from_beginning { "earliest" } else { "latest" },
    );
    let consumer: StreamConsumer = config.create().context("create kafka consumer")?;
    consumer.subscribe(&[common.topic_migration_status.as_str()])?;
    tokio::pin!(shutdown);
    loop {
        let msg = tokio::select! {
            () = &mut shutdown => return Ok(()),
            msg = consumer.recv() => msg?,
        };
        match kafka::decode::<MigrationStatus>(&msg) {
            Ok(status) => println!("{}", line(&status)),
            Err(e) => println!(
                "(undecodable status at offset {}: {})",
                msg.offset(),
                printable(&e.to_string(), 256)
            ),
        }
    }
}

/// Anyone may publish a status: what it says is shown cut to `max` bytes
/// and with control characters escaped, so that it cannot flood or drive
/// the terminal.
fn printable(text: &str, max: usize) -> String {
    let mut out = String::new();
    for c in strata_runtime::shortened(text, max).chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// `COMPLETED reports/q1.csv hot -> warm gen=1 sha=ab12cd34 1.0 MiB 12ms`.
pub fn line(s: &MigrationStatus) -> String {
    let state = s.state();
    let mut out = format!(
        "{:<10} {} {} -> {}",
        state.as_str_name(),
        printable(&s.object_key, 1024),
        printable(&s.from_tier, 64),
        printable(&s.to_tier, 64)
    );
    if matches!(state, State::Switched | State::Completed) {
        out.push_str(&format!(" gen={}", s.generation));
    }
    if !s.sha256.is_empty() {
        // Its `sha256` need not be hex: the first 12 characters.
        let short: String = s.sha256.chars().take(12).collect();
        out.push_str(&format!(" sha={}", printable(&short, 64)));
    }
    if s.bytes > 0 {
        out.push_str(&format!(" {:.1} MiB", s.bytes as f64 / 1_048_576.0));
    }
    if state == State::Duplicate {
        out.push_str(&format!(" (already {})", s.result().as_str_name()));
    }
    if let Some(e) = &s.error {
        out.push_str(&format!(
            " error={}: {}",
            printable(&e.class, 64),
            printable(&e.message, 1024)
        ));
    }
    out.push_str(&format!(" {}ms", s.elapsed_ms));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_shows_the_first_twelve_characters_of_any_sha256() {
        let status = |sha256: &str| MigrationStatus {
            object_key: "a".into(),
            state: State::Completed as i32,
            sha256: sha256.into(),
            ..Default::default()
        };
        assert!(line(&status(&"ab".repeat(32))).contains(" sha=abababababab"));
        // Byte 12 inside a character: no panic, whole characters kept.
        let shown = line(&status(&format!("a{}", "é".repeat(13))));
        assert!(
            shown.contains(&format!(" sha=a{} ", "é".repeat(11))),
            "{shown}"
        );
    }

    #[test]
    fn a_line_escapes_control_characters_and_cuts_long_fields() {
        let status = MigrationStatus {
            object_key: "a\u{1b}[2Jb".into(),
            state: State::Failed as i32,
            error: Some(strata_proto::pb::Error {
                class: "transient".into(),
                message: "x".repeat(100_000),
            }),
            ..Default::default()
        };
        let shown = line(&status);
        assert!(shown.contains("a\\u{1b}[2Jb"), "{shown}");
        assert!(!shown.contains('\u{1b}'));
        assert!(
            shown.len() < 1200 && shown.contains("(100000 bytes in all)"),
            "{}",
            shown.len()
        );
    }
}
