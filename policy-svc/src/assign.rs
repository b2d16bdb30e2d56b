//! Where consumption starts on an assigned partition: at the offset SQLite
//! stored in the same transaction as the state it produced, not at Kafka's
//! committed offset. The two differ when SQLite lost its last commits
//! (power loss: the state is `synchronous=NORMAL`) while Kafka kept the
//! offsets stored after them; starting from Kafka's would skip those events
//! for good. A partition SQLite has no offset for starts where the group's
//! committed offset says.

use std::{collections::BTreeSet, path::PathBuf};

use rdkafka::{
    ClientContext, Offset, TopicPartitionList,
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
        let stored = match self.stored(&topics) {
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

    /// Read on a connection of its own: the rebalance callback runs inside
    /// the consumer's poll, on a runtime thread, and must not wait for the
    /// store's lock. It blocks that thread briefly, once per rebalance.
    fn stored<'t>(
        &self,
        topics: &'t BTreeSet<String>,
    ) -> rusqlite::Result<Vec<(&'t str, i32, i64)>> {
        let conn = Connection::open(&self.db)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let mut stored = Vec::new();
        for topic in topics {
            for (partition, next) in crate::engine::stored_offsets(&conn, topic)? {
                stored.push((topic.as_str(), partition, next));
            }
        }
        Ok(stored)
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
