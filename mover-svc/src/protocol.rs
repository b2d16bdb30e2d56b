//! The move protocol's decisions, as pure functions over the ledger and the
//! catalog (design §5): what to do with a job that arrives, where a restart
//! resumes, and whether a copy verifies. No IO here; `mover.rs` acts on them.

use std::time::Duration;

use object_store::ObjectMeta;
use strata_proto::{MigrationJob, State};

/// A job's row in the ledger.
#[derive(Debug, Clone, PartialEq)]
pub struct LedgerRow {
    pub job_key: String,
    pub object_key: String,
    pub from_tier: String,
    pub to_tier: String,
    pub generation: u64,
    pub size_bytes: u64,
    pub state: State,
    pub attempt: u32,
    pub sha256: Option<String>,
    pub bytes: Option<u64>,
    /// The catalog generation after the switch, once switched.
    pub new_generation: Option<u64>,
    /// The source as the switched copy read it (recorded with the switch;
    /// `None` in rows switched by an older mover).
    pub source: Option<Seen>,
    pub error: Option<(String, String)>,
}

/// An object's row in the catalog.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CatalogRow {
    pub object_key: String,
    pub tier: String,
    pub generation: u64,
    pub sha256: Option<String>,
    pub size: u64,
    pub updated_at_ms: i64,
}

/// A copy left behind: its job had switched the catalog to another tier,
/// and the copy's store refused to delete it for good (Object Lock, no
/// delete permission).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrphanRow {
    pub object_key: String,
    pub tier: String,
    /// The job that left it.
    pub job_key: String,
    /// The copy as a HEAD saw it when it was left: another object at the
    /// key since then differs in one of these.
    pub size: u64,
    pub e_tag: Option<String>,
    pub modified_ms: i64,
    /// The last refusal.
    pub error_class: String,
    pub error_message: String,
    /// Deletes tried so far.
    pub attempts: u32,
    pub since_ms: i64,
    /// When the next delete is due.
    pub next_at_ms: i64,
}

/// What to do with an orphan copy now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sweep {
    /// The catalog names another tier: the copy is not the live one (I2).
    Delete,
    /// The catalog names the orphan's tier again (a later job moved the
    /// object back and overwrote the copy with a verified one), or knows no
    /// such object, or the key holds another object than the one left (an
    /// application wrote it since): it stays, and only the record goes.
    KeepCopy,
    /// Nothing is at the key any more: only the record goes.
    Gone,
}

/// What tells a stored object from another written at its key later: its
/// size, ETag and modification time (milliseconds).
pub type Identity<'a> = (u64, Option<&'a str>, i64);

/// The [`Identity`] of what a HEAD or a listing saw.
pub fn identity(meta: &ObjectMeta) -> Identity<'_> {
    (
        meta.size,
        meta.e_tag.as_deref(),
        meta.last_modified.timestamp_millis(),
    )
}

/// An object as a copy read it, kept as its [`Identity`]: the source is
/// deleted after the switch only if its key still holds this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub size: u64,
    pub e_tag: Option<String>,
    pub modified_ms: i64,
}

impl Seen {
    /// What a GET or a HEAD found.
    pub fn of(meta: &ObjectMeta) -> Self {
        Seen {
            size: meta.size,
            e_tag: meta.e_tag.clone(),
            modified_ms: meta.last_modified.timestamp_millis(),
        }
    }

    pub fn identity(&self) -> Identity<'_> {
        (self.size, self.e_tag.as_deref(), self.modified_ms)
    }
}

/// Whether the orphan `orphan` may be deleted, given its object's catalog
/// row and what a HEAD finds at its key now (`None`: nothing).
pub fn sweep(
    orphan: &OrphanRow,
    catalog: Option<&CatalogRow>,
    found: Option<Identity<'_>>,
) -> Sweep {
    match (catalog, found) {
        (_, None) => Sweep::Gone,
        (Some(c), Some(found)) if c.tier != orphan.tier && found == orphan.identity() => {
            Sweep::Delete
        }
        _ => Sweep::KeepCopy,
    }
}

impl OrphanRow {
    /// The copy as it was left.
    pub fn identity(&self) -> Identity<'_> {
        (self.size, self.e_tag.as_deref(), self.modified_ms)
    }
}

/// Whether a job may write its copy over the object a HEAD `found` at its
/// destination key before the job starts, given the orphan on record at
/// that key and tier: only if it is that copy, left there by this mover.
/// Anything else is another object (an application wrote it straight onto
/// that tier, or over the orphan since), which a move must not overwrite.
pub fn may_write(found: Identity<'_>, orphan: Option<&OrphanRow>) -> bool {
    orphan.is_some_and(|orphan| found == orphan.identity())
}

/// The wait before the next delete of an orphan refused `attempts` times:
/// a minute, doubling up to an hour, so a fixed permission is noticed soon
/// and a locked object is not asked about more than hourly.
pub fn orphan_retry_delay(attempts: u32) -> Duration {
    const FIRST: Duration = Duration::from_secs(60);
    const MAX: Duration = Duration::from_secs(3600);
    FIRST
        .saturating_mul(1 << attempts.saturating_sub(1).min(6))
        .min(MAX)
}

/// What to do with a job that just arrived.
#[derive(Debug, Clone, PartialEq)]
pub enum Arrival {
    /// Its key already ended: answer DUPLICATE with that result (I3).
    Duplicate(LedgerRow),
    /// Its key is in progress (a redelivery): carry on from the ledger.
    Resume(LedgerRow),
    /// Stale: the catalog names another tier or generation (I4).
    Stale { message: String },
    /// The catalog has never seen the object: look for it at `from_tier`
    /// and register it there before starting.
    Register,
    /// The catalog matches the job: start.
    Start,
}

/// Decides what a newly arrived job means, given its ledger row and the
/// catalog row of its object.
pub fn on_arrival(
    ledger: Option<&LedgerRow>,
    catalog: Option<&CatalogRow>,
    job: &MigrationJob,
) -> Arrival {
    if let Some(row) = ledger {
        return if row.state.is_terminal() {
            Arrival::Duplicate(row.clone())
        } else {
            Arrival::Resume(row.clone())
        };
    }
    match catalog {
        None => Arrival::Register,
        Some(c) if c.tier == job.from_tier && c.generation == job.generation => Arrival::Start,
        Some(c) => Arrival::Stale {
            message: format!(
                "catalog has {} at tier {} generation {}; job expects tier {} generation {}",
                job.object_key, c.tier, c.generation, job.from_tier, job.generation
            ),
        },
    }
}

/// Where an unfinished job resumes after a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// Not switched: any destination copy is discarded and the copy redone.
    /// The source was never touched, so nothing can be lost (I2, I5).
    DiscardAndCopy,
    /// Switched: the catalog names the destination; delete the source.
    DeleteSource,
    /// Nothing left to do.
    Nothing,
}

/// The resume point of a job whose ledger says `state`.
pub fn resume_from(state: State) -> Resume {
    match state {
        State::Accepted | State::Copying | State::Verifying => Resume::DiscardAndCopy,
        State::Switched => Resume::DeleteSource,
        _ => Resume::Nothing,
    }
}

/// Why a copy failed verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("destination holds {actual} bytes, copied {expected}")]
    Size { expected: u64, actual: u64 },
    #[error("destination sha256 {actual} differs from the copy's {expected}")]
    Digest { expected: String, actual: String },
    #[error(
        "copy sha256 {copied} differs from the catalog's {catalog}: the source is not the object the catalog knows"
    )]
    Catalog { copied: String, catalog: String },
}

/// Checks the destination read back (`actual_*`) against what was copied,
/// and the copy against the catalog's checksum when it has one.
pub fn verify(
    copied_sha: &str,
    copied_len: u64,
    actual_sha: &str,
    actual_len: u64,
    catalog_sha: Option<&str>,
) -> Result<(), VerifyError> {
    if actual_len != copied_len {
        return Err(VerifyError::Size {
            expected: copied_len,
            actual: actual_len,
        });
    }
    if actual_sha != copied_sha {
        return Err(VerifyError::Digest {
            expected: copied_sha.into(),
            actual: actual_sha.into(),
        });
    }
    if let Some(catalog) = catalog_sha
        && catalog != copied_sha
    {
        return Err(VerifyError::Catalog {
            copied: copied_sha.into(),
            catalog: catalog.into(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(generation: u64) -> MigrationJob {
        MigrationJob {
            job_key: strata_proto::job_key("k", "hot", "warm", generation),
            object_key: "k".into(),
            from_tier: "hot".into(),
            to_tier: "warm".into(),
            generation,
            ..Default::default()
        }
    }

    fn row(state: State) -> LedgerRow {
        LedgerRow {
            job_key: job(0).job_key,
            object_key: "k".into(),
            from_tier: "hot".into(),
            to_tier: "warm".into(),
            generation: 0,
            size_bytes: 1,
            state,
            attempt: 1,
            sha256: None,
            bytes: None,
            new_generation: None,
            source: None,
            error: None,
        }
    }

    fn catalog(tier: &str, generation: u64) -> CatalogRow {
        CatalogRow {
            object_key: "k".into(),
            tier: tier.into(),
            generation,
            sha256: None,
            size: 1,
            updated_at_ms: 0,
        }
    }

    #[test]
    fn ended_job_is_a_duplicate_whatever_the_catalog_says() {
        for state in [State::Completed, State::Failed, State::Rejected] {
            let arrival = on_arrival(Some(&row(state)), Some(&catalog("warm", 1)), &job(0));
            assert_eq!(arrival, Arrival::Duplicate(row(state)));
        }
    }

    #[test]
    fn unfinished_job_resumes() {
        let arrival = on_arrival(Some(&row(State::Copying)), None, &job(0));
        assert_eq!(arrival, Arrival::Resume(row(State::Copying)));
    }

    #[test]
    fn catalog_decides_start_stale_or_register() {
        assert_eq!(
            on_arrival(None, Some(&catalog("hot", 0)), &job(0)),
            Arrival::Start
        );
        assert!(matches!(
            on_arrival(None, Some(&catalog("hot", 1)), &job(0)),
            Arrival::Stale { .. }
        ));
        assert!(matches!(
            on_arrival(None, Some(&catalog("cold", 0)), &job(0)),
            Arrival::Stale { .. }
        ));
        assert_eq!(on_arrival(None, None, &job(0)), Arrival::Register);
    }

    #[test]
    fn resume_never_deletes_a_source_before_the_switch() {
        for state in [State::Accepted, State::Copying, State::Verifying] {
            assert_eq!(resume_from(state), Resume::DiscardAndCopy);
        }
        assert_eq!(resume_from(State::Switched), Resume::DeleteSource);
        assert_eq!(resume_from(State::Completed), Resume::Nothing);
    }

    #[test]
    fn verify_checks_size_digest_and_catalog() {
        assert_eq!(verify("aa", 3, "aa", 3, None), Ok(()));
        assert_eq!(verify("aa", 3, "aa", 3, Some("aa")), Ok(()));
        assert!(matches!(
            verify("aa", 3, "aa", 2, None),
            Err(VerifyError::Size { .. })
        ));
        assert!(matches!(
            verify("aa", 3, "bb", 3, None),
            Err(VerifyError::Digest { .. })
        ));
        assert!(matches!(
            verify("aa", 3, "aa", 3, Some("cc")),
            Err(VerifyError::Catalog { .. })
        ));
    }

    fn orphan(tier: &str) -> OrphanRow {
        OrphanRow {
            object_key: "k".into(),
            tier: tier.into(),
            job_key: job(0).job_key,
            size: 3,
            e_tag: Some("e1".into()),
            modified_ms: 10,
            error_class: "permanent".into(),
            error_message: "denied".into(),
            attempts: 1,
            since_ms: 0,
            next_at_ms: 0,
        }
    }

    #[test]
    fn an_orphan_is_deleted_only_while_the_catalog_names_another_tier_and_it_is_unchanged() {
        let left = Some((3, Some("e1"), 10));
        let o = orphan("hot");
        assert_eq!(sweep(&o, Some(&catalog("warm", 1)), left), Sweep::Delete);
        // Moved back: the copy on hot is the live one now.
        assert_eq!(sweep(&o, Some(&catalog("hot", 2)), left), Sweep::KeepCopy);
        assert_eq!(sweep(&o, None, left), Sweep::KeepCopy);
        // Written since, by someone else: another object, kept.
        for other in [
            (4, Some("e1"), 10),
            (3, Some("e2"), 10),
            (3, Some("e1"), 11),
        ] {
            assert_eq!(
                sweep(&o, Some(&catalog("warm", 1)), Some(other)),
                Sweep::KeepCopy
            );
        }
        assert_eq!(sweep(&o, Some(&catalog("warm", 1)), None), Sweep::Gone);
    }

    #[test]
    fn a_copy_is_written_only_over_an_orphan_of_ours() {
        let o = orphan("hot");
        assert!(may_write((3, Some("e1"), 10), Some(&o)));
        // An application's object, or one written over our orphan since.
        assert!(!may_write((3, Some("e1"), 10), None));
        assert!(!may_write((3, Some("e1"), 11), Some(&o)));
        assert!(!may_write((4, None, 10), Some(&o)));
    }

    #[test]
    fn orphan_deletes_back_off_from_a_minute_to_an_hour() {
        let delays: Vec<u64> = (1..=9).map(|a| orphan_retry_delay(a).as_secs()).collect();
        assert_eq!(delays, [60, 120, 240, 480, 960, 1920, 3600, 3600, 3600]);
        assert_eq!(orphan_retry_delay(u32::MAX).as_secs(), 3600);
    }
}
