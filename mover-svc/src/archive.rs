//! Archive classes, where object_store has no call of its own:
//!
//! - An object in S3 Glacier Flexible Retrieval or Deep Archive, or a blob
//!   in Azure's Archive tier, cannot be read until the store restores it
//!   (hours). A job that moves one out fails at once; the mover asks for
//!   the restore ([`request_restore`]: S3 `RestoreObject`, Azure Set Blob
//!   Tier to Hot), and the policy's retry of the job, hours later, finds the
//!   object readable.
//! - A blob written to Azure's Archive tier could not be read back, so the
//!   mover writes it in the account's default tier, verifies it, and then
//!   moves it to Archive in place ([`seal`]).
//!
//! The requests are the mover's own ([`crate::signed`]).

use http::{
    Method, StatusCode,
    header::{CONTENT_LENGTH, CONTENT_TYPE},
};
use object_store::client::HttpRequestBody;
use strata_runtime::tiers::{AzureTier, S3Tier, TierStore};

use crate::{
    signed::{failed, refused, request_url, send_azure, send_s3},
    transfer::{MoveError, location},
};

/// Where a restore stands once asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restore {
    /// The store accepted a new restore request.
    Started,
    /// A restore of the object is already under way.
    UnderWay,
    /// The object is readable now.
    Ready,
}

impl Restore {
    /// What a FAILED status says of it.
    pub fn describe(self, tier: &TierStore) -> String {
        match self {
            Restore::Started => match (&tier.s3, &tier.azure) {
                (Some(s3), _) => {
                    let lasting = match s3.restore_days {
                        Some(days) => format!("a copy readable for {days} days"),
                        None => "back to Frequent Access".into(),
                    };
                    format!(
                        "restore requested ({} retrieval, {lasting}); \
                         the job can be sent again once it is done",
                        s3.restore_tier
                    )
                }
                (_, Some(azure)) => format!(
                    "rehydration to Hot requested ({} priority); the job can be sent again once it is done",
                    azure.rehydrate_priority
                ),
                _ => "restore requested".into(),
            },
            Restore::UnderWay => {
                "a restore is under way; the job can be sent again once it is done".into()
            }
            Restore::Ready => "restored: the job can be sent again now".into(),
        }
    }
}

/// Asks the store of `tier` to restore `key`. Tiers that are neither S3
/// nor Azure cannot: `None`.
pub async fn request_restore(tier: &TierStore, key: &str) -> Option<Result<Restore, MoveError>> {
    match (&tier.s3, &tier.azure) {
        (Some(s3), _) => Some(restore_s3(tier, s3, key).await),
        (_, Some(azure)) => {
            Some(set_azure_tier(tier, azure, key, "Hot", Some(&azure.rehydrate_priority)).await)
        }
        _ => None,
    }
}

/// Moves a verified copy on `tier` to the tier's archive tier, if it has
/// one ([`AzureTier::seal_tier`]); a no-op elsewhere.
pub async fn seal(tier: &TierStore, key: &str) -> Result<(), MoveError> {
    let Some((azure, access_tier)) = tier
        .azure
        .as_ref()
        .and_then(|a| a.seal_tier.as_deref().map(|t| (a, t)))
    else {
        return Ok(());
    };
    set_azure_tier(tier, azure, key, access_tier, None)
        .await
        .map(drop)
}

/// S3 `RestoreObject`.
async fn restore_s3(tier: &TierStore, s3: &S3Tier, key: &str) -> Result<Restore, MoveError> {
    const WHAT: &str = "restore";
    let location = location(tier, key)?;
    let mut url = request_url(s3.store.as_ref(), tier, &location, Method::POST).await?;
    url.set_query(Some("restore"));
    let body = restore_body(s3.restore_days, &s3.restore_tier);
    let request = http::Request::builder()
        .method(Method::POST)
        .uri(url.as_str())
        .header(CONTENT_TYPE, "application/xml")
        .body(HttpRequestBody::from(body))
        .map_err(|e| failed(WHAT, url.as_str(), &e))?;
    match send_s3(tier, s3, WHAT, request).await? {
        (StatusCode::ACCEPTED, _) => Ok(Restore::Started),
        (StatusCode::OK, _) => Ok(Restore::Ready),
        (StatusCode::CONFLICT, text) if text.contains("RestoreAlreadyInProgress") => {
            Ok(Restore::UnderWay)
        }
        (status, text) => Err(refused(WHAT, url.as_str(), status, &text)),
    }
}

/// The body of a `RestoreObject` request: a copy for `days` from Glacier
/// Flexible Retrieval or Deep Archive; no days for Intelligent-Tiering's
/// archive tiers, which refuse them.
fn restore_body(days: Option<u32>, retrieval_tier: &str) -> String {
    let days = days
        .map(|d| format!("<Days>{d}</Days>"))
        .unwrap_or_default();
    format!(
        "<RestoreRequest xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">{days}\
         <GlacierJobParameters><Tier>{retrieval_tier}</Tier></GlacierJobParameters>\
         </RestoreRequest>"
    )
}

/// Azure Set Blob Tier: `access_tier` for the blob, with a rehydrate
/// `priority` when it leaves Archive. Ready: the tier is set; Started: a
/// rehydration began.
async fn set_azure_tier(
    tier: &TierStore,
    azure: &AzureTier,
    key: &str,
    access_tier: &str,
    priority: Option<&str>,
) -> Result<Restore, MoveError> {
    const WHAT: &str = "set the access tier of";
    let location = location(tier, key)?;
    let mut url = request_url(azure.store.as_ref(), tier, &location, Method::PUT).await?;
    url.set_query(Some("comp=tier"));
    let mut builder = http::Request::builder()
        .method(Method::PUT)
        .uri(url.as_str())
        .header("x-ms-access-tier", access_tier)
        .header(CONTENT_LENGTH, "0");
    if let Some(priority) = priority {
        builder = builder.header("x-ms-rehydrate-priority", priority);
    }
    let request = builder
        .body(HttpRequestBody::from(Vec::new()))
        .map_err(|e| failed(WHAT, url.as_str(), &e))?;
    match send_azure(tier, azure, WHAT, request).await? {
        (StatusCode::OK, _) => Ok(Restore::Ready),
        (StatusCode::ACCEPTED, _) => Ok(Restore::Started),
        (StatusCode::CONFLICT, text) if text.contains("BlobBeingRehydrated") => {
            Ok(Restore::UnderWay)
        }
        (status, text) => Err(refused(WHAT, url.as_str(), status, &text)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intelligent_tiering_restores_name_no_days() {
        let glacier = restore_body(Some(7), "Bulk");
        assert!(glacier.contains("<Days>7</Days>"), "{glacier}");
        assert!(glacier.contains("<Tier>Bulk</Tier>"), "{glacier}");
        let intelligent = restore_body(None, "Standard");
        assert!(!intelligent.contains("Days"), "{intelligent}");
        assert!(
            intelligent.contains("<Tier>Standard</Tier>"),
            "{intelligent}"
        );
    }
}
