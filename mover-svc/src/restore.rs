//! Restores of archived objects. An object in S3 Glacier Flexible Retrieval
//! or Deep Archive cannot be read until S3 has restored a temporary copy of
//! it (hours), so a job that moves one out fails at once; the mover asks
//! for the restore, and the policy's retry of the job, hours later, finds
//! the object readable.
//!
//! object_store has no RestoreObject call: the request is made here,
//! addressed and signed by object_store's own S3 store and authorizer.

use std::time::Duration;

use http::{Method, StatusCode, header::CONTENT_TYPE};
use object_store::{aws::AwsAuthorizer, client::HttpRequestBody, signer::Signer};
use strata_runtime::tiers::{S3Tier, TierStore};

use crate::transfer::MoveError;

/// Where a restore stands once asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restore {
    /// S3 accepted a new restore request.
    Started,
    /// A restore of the object is already under way.
    UnderWay,
    /// A restored copy is readable now.
    Ready,
}

impl Restore {
    /// What a FAILED status says of it.
    pub fn describe(self, s3: &S3Tier) -> String {
        match self {
            Restore::Started => format!(
                "restore requested ({} retrieval, a copy readable for {} days); \
                 the job can be sent again once it is done",
                s3.restore_tier, s3.restore_days
            ),
            Restore::UnderWay => {
                "a restore is under way; the job can be sent again once it is done".into()
            }
            Restore::Ready => "restored: the job can be sent again now".into(),
        }
    }
}

/// Asks S3 to restore `key` on `tier` (a RestoreObject request). Tiers
/// that are not S3 cannot: `None`.
pub async fn request(tier: &TierStore, key: &str) -> Option<Result<Restore, MoveError>> {
    let s3 = tier.s3.as_ref()?;
    Some(send(tier, s3, key).await)
}

async fn send(tier: &TierStore, s3: &S3Tier, key: &str) -> Result<Restore, MoveError> {
    let failed = |what: &str, e: &dyn std::fmt::Display| {
        MoveError::Transient(format!("restore {}: {what}: {e}", tier.url_of(key)))
    };
    let location = tier
        .location(key)
        .map_err(|e| MoveError::Permanent(format!("{e:#}")))?;
    // The object's URL as the store's own requests name it (endpoint,
    // path or virtual-hosted style, encoding); the presigning query is
    // replaced by the restore's.
    let mut url = s3
        .store
        .signed_url(Method::POST, &location, Duration::from_secs(60))
        .await
        .map_err(|e| failed("address", &e))?;
    url.set_query(Some("restore"));
    let body = format!(
        "<RestoreRequest xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
         <Days>{}</Days><GlacierJobParameters><Tier>{}</Tier></GlacierJobParameters>\
         </RestoreRequest>",
        s3.restore_days, s3.restore_tier
    );
    let mut request = http::Request::builder()
        .method(Method::POST)
        .uri(url.as_str())
        .header(CONTENT_TYPE, "application/xml")
        .body(HttpRequestBody::from(body))
        .map_err(|e| failed("build request", &e))?;
    let credential = s3
        .store
        .credentials()
        .get_credential()
        .await
        .map_err(|e| failed("credentials", &e))?;
    AwsAuthorizer::new(&credential, "s3", &s3.region)
        .try_authorize(&mut request, None)
        .map_err(|e| failed("sign", &e))?;
    tier.limits.op().await;
    let response = s3
        .client
        .execute(request)
        .await
        .map_err(|e| failed("send", &e))?;
    let status = response.status();
    let body = response.into_body().bytes().await.unwrap_or_default();
    let text = String::from_utf8_lossy(&body);
    match status {
        StatusCode::ACCEPTED => Ok(Restore::Started),
        StatusCode::OK => Ok(Restore::Ready),
        StatusCode::CONFLICT if text.contains("RestoreAlreadyInProgress") => Ok(Restore::UnderWay),
        s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => {
            Err(failed(&s.to_string(), &text))
        }
        s => Err(MoveError::Permanent(format!(
            "restore {}: {s}: {text}",
            tier.url_of(key)
        ))),
    }
}
