//! Default topic names (design §1). Every daemon lets them be overridden.

/// Access events, keyed by object key. Produced by ingest-svc and any client.
pub const ACCESS_EVENTS: &str = "access_events";
/// Migration jobs, keyed by object key. Produced by policy-svc or an operator.
pub const MIGRATION_JOBS: &str = "migration_jobs";
/// Migration statuses, keyed by object key. Produced by mover-svc.
pub const MIGRATION_STATUS: &str = "migration_status";
/// Suffix of the dead-letter topic for input a consumer rejects.
pub const DLQ_SUFFIX: &str = ".dlq";

/// The dead-letter topic of `topic`, e.g. `access_events.dlq`.
pub fn dlq(topic: &str) -> String {
    format!("{topic}{DLQ_SUFFIX}")
}
