//! Where consumption starts on an assigned partition: at the offset SQLite
//! stored in the same transaction as the state it produced, not at Kafka's
//! committed offset. The two differ when SQLite lost its last commits
//! (power loss: the state is `synchronous=NORMAL`) while Kafka kept the
//! offsets stored after them; starting from Kafka's would skip those events
//! for good. A partition SQLite has no offset for starts where the group's
//! committed offset says.
//!
//! A partition whose log now ends before SQLite's offset, and of which the
//! group has no committed offset, is a new log: its topic was deleted and
//! made again, or the cluster is new. Its events sit at offsets SQLite
//! counts as applied and would be skipped as a replay; at start, before the
//! consumer subscribes, SQLite's offset of such a partition is lowered to
//! the log's beginning ([`restart_new_logs`]).

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use rdkafka::{
    ClientConfig, ClientContext, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer, ConsumerContext, RebalanceProtocol},
    error::KafkaResult,
    types::{RDKafkaErrorCode, RDKafkaRespErr},
};
use rusqlite::Connection;

/// The consumer's context: seeks each assigned partition to its stored offset.
pub struct StartAtStored {
    /// The policy's database.
    db: PathBuf,
}

impl StartAtStored {
    pub fn new(db: PathBuf) -> Self {
        Self { db }
    }

    /// Sets the start of every partition in `tpl` that SQLite has an offset for.
    fn start_at_stored(&self, tpl: &mut TopicPartitionList) {
        let topics: BTreeSet<String> = tpl
            .elements()
            .iter()
            .map(|e| e.topic().to_owned())
            .collect();
        let stored = match read_stored(&self.db, topics.iter().map(String::as_str)) {
            Ok(stored) => stored,
            Err(e) => {
                // Kafka's committed offsets then; they trail SQLite's but for
                // power loss, and a replay is skipped by offset.
                tracing::warn!(error = %e, "could not read the stored offsets; starting at Kafka's");
                return;
            }
        };
        for (topic, partition, next) in stored {
            if tpl.find_partition(topic, partition).is_some()
                && tpl
                    .set_partition_offset(topic, partition, Offset::Offset(next))
                    .is_ok()
            {
                tracing::info!(%topic, partition, next, "partition assigned; starting at the stored offset");
            }
        }
    }
}

impl ClientContext for StartAtStored {}

impl ConsumerContext for StartAtStored {
    /// rdkafka's own strategy (assign, or unassign on a revocation or an
    /// error; incrementally under the cooperative protocol), with the
    /// stored offsets set on an assignment first.
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let result: KafkaResult<()> = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                self.start_at_stored(tpl);
                if cooperative {
                    consumer.incremental_assign(tpl)
                } else {
                    consumer.assign(tpl)
                }
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS if cooperative => {
                consumer.incremental_unassign(tpl)
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => consumer.unassign(),
            other => {
                tracing::error!(error = %RDKafkaErrorCode::from(other), "rebalance failed");
                if cooperative {
                    consumer.incremental_unassign(tpl)
                } else {
                    consumer.unassign()
                }
            }
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "applying the rebalance failed");
        }
    }
}

/// What the group's committed offset of a partition is, as Kafka answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    /// The group has none: a new topic or a new cluster keeps none.
    Nothing,
    /// The group has read up to here.
    At(i64),
    /// The question failed (no coordinator, a timeout, a partition error).
    Unknown,
}

/// Where a partition whose log runs from `low` to `high` (its next offset)
/// must start instead of `next`, the offset SQLite stored: at `low` when
/// the log ends before `next` and the group has no committed offset, a
/// new log. Any committed offset (a log cut short by an unclean leader
/// election, a cluster mirrored with the group's offsets) or an unknown
/// one keeps `next`: reading an old log again from its start would count
/// its reads twice, which is worse than skipping a new one's first events.
pub fn new_log_start(next: i64, low: i64, high: i64, committed: Committed) -> Option<i64> {
    (next > high && committed == Committed::Nothing).then_some(low)
}

/// At start, before the consumer subscribes, with nothing in flight: for
/// each partition of `topics` that SQLite has an offset for, asks Kafka
/// for the log's ends, and for those ending before that offset the
/// group's committed offsets (one request), then lowers SQLite's offset
/// of a new log to its beginning ([`new_log_start`]). A partition kept
/// although its log ends before SQLite's offset is logged and counted:
/// its events below that offset are skipped. The client is one of its own
/// made from the consumer's `config`, never subscribed (so it joins no
/// group and commits nothing). The whole pass stops at its deadline or
/// the first failed question. Blocks; failures are logged, never fatal.
pub fn restart_new_logs(config: &ClientConfig, db: &Path, topics: &[impl AsRef<str>]) {
    let stored = match read_stored(db, topics.iter().map(AsRef::as_ref)) {
        Ok(stored) if stored.is_empty() => return,
        Ok(stored) => stored,
        Err(e) => {
            tracing::warn!(error = %e, "could not read the stored offsets to look for new logs");
            return;
        }
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    let left = || deadline.saturating_duration_since(Instant::now());
    let consumer: BaseConsumer = match config.clone().set("enable.auto.commit", "false").create() {
        Ok(consumer) => consumer,
        Err(e) => {
            tracing::warn!(error = %e, "could not look for new logs");
            return;
        }
    };
    // Partitions whose log ends before SQLite's offset: (topic, partition,
    // stored, low, high).
    let mut short = Vec::new();
    for (topic, partition, next) in stored {
        match consumer.fetch_watermarks(topic, partition, left()) {
            Ok((low, high)) if next > high => short.push((topic, partition, next, low, high)),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(%topic, partition, error = %e, "could not read a log's ends; not looking for new logs");
                return;
            }
        }
    }
    if short.is_empty() {
        return;
    }
    let mut asked = TopicPartitionList::new();
    for (topic, partition, ..) in &short {
        asked.add_partition(topic, *partition);
    }
    let answer = consumer
        .committed_offsets(asked, left())
        .inspect_err(|e| tracing::warn!(error = %e, "could not read the group's offsets"))
        .ok();
    for (topic, partition, next, low, high) in short {
        let committed = committed(answer.as_ref(), topic, partition);
        let lowered = new_log_start(next, low, high, committed)
            .map(|start| (start, lower_stored(db, topic, partition, next, start)));
        match lowered {
            Some((start, Ok(true))) => {
                metrics::counter!("strata_policy_new_logs_total").increment(1);
                tracing::warn!(%topic, partition, stored = next, log_end = high, start,
                    "a new log (its topic made again): read from its beginning");
            }
            Some((_, Err(e))) => {
                metrics::counter!("strata_policy_short_logs_kept_total").increment(1);
                tracing::error!(%topic, partition, stored = next, error = %e,
                    "a new log's stored offset could not be lowered: events below it are skipped");
            }
            Some((_, Ok(false))) | None => {
                metrics::counter!("strata_policy_short_logs_kept_total").increment(1);
                tracing::warn!(%topic, partition, stored = next, log_end = high, ?committed,
                    "a log ends before the stored offset, kept: events below it are skipped");
            }
        }
    }
}

/// SQLite's next offset of each partition of `topics` it has one for.
/// Read on a connection of its own: the rebalance callback runs inside
/// the consumer's poll, on a runtime thread, and must not wait for the
/// store's lock. It blocks that thread briefly, once per rebalance.
fn read_stored<'t>(
    db: &Path,
    topics: impl IntoIterator<Item = &'t str>,
) -> rusqlite::Result<Vec<(&'t str, i32, i64)>> {
    let conn = Connection::open(db)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let mut stored = Vec::new();
    for topic in topics {
        for (partition, next) in crate::engine::stored_offsets(&conn, topic)? {
            stored.push((topic, partition, next));
        }
    }
    Ok(stored)
}

/// The group's committed offset of one partition in Kafka's `answer`
/// (`None`: the question failed).
fn committed(answer: Option<&TopicPartitionList>, topic: &str, partition: i32) -> Committed {
    match answer.and_then(|a| a.find_partition(topic, partition)) {
        Some(elem) if elem.error().is_ok() => match elem.offset() {
            Offset::Invalid => Committed::Nothing,
            Offset::Offset(at) => Committed::At(at),
            _ => Committed::Unknown,
        },
        _ => Committed::Unknown,
    }
}

/// Sets SQLite's next offset of a partition from `from` to `to`; `false`
/// if it was no longer `from`.
fn lower_stored(
    db: &Path,
    topic: &str,
    partition: i32,
    from: i64,
    to: i64,
) -> rusqlite::Result<bool> {
    let conn = Connection::open(db)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let changed = conn.execute(
        "UPDATE offsets SET next_offset = ?4 WHERE topic = ?1 AND partition = ?2 AND next_offset = ?3",
        rusqlite::params![topic, partition, from, to],
    )?;
    Ok(changed == 1)
}

#[cfg(test)]
mod tests {
    use super::{Committed, new_log_start};

    #[test]
    fn a_log_that_ends_before_the_stored_offset_without_group_offsets_is_new() {
        assert_eq!(new_log_start(100, 0, 30, Committed::Nothing), Some(0));
        // Retention has removed the new log's first records already.
        assert_eq!(new_log_start(100, 12, 30, Committed::Nothing), Some(12));
    }

    #[test]
    fn a_log_that_reaches_the_stored_offset_is_the_same_log() {
        assert_eq!(new_log_start(30, 0, 30, Committed::Nothing), None);
        assert_eq!(new_log_start(20, 0, 30, Committed::Nothing), None);
    }

    #[test]
    fn any_group_offset_or_an_unknown_one_keeps_the_stored_offset() {
        // An unclean leader election cut the log; Kafka's offset trails SQLite's.
        assert_eq!(new_log_start(100, 0, 30, Committed::At(25)), None);
        assert_eq!(new_log_start(100, 0, 30, Committed::At(90)), None);
        assert_eq!(new_log_start(100, 0, 30, Committed::Unknown), None);
    }
}
