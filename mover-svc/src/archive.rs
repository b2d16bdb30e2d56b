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
//! The requests are addressed by the stores' own URL schemes (through their
//! presigners, whose query is replaced) and signed by object_store's own
//! authorizers.

use std::time::Duration;

use http::{
    Method, StatusCode,
    header::{CONTENT_LENGTH, CONTENT_TYPE},
};
use object_store::{
    aws::AwsAuthorizer,
    azure::AzureAuthorizer,
    client::{HttpClient, HttpRequest, HttpRequestBody},
    signer::Signer,
};
use strata_runtime::tiers::{AzureTier, S3Tier, TierStore};

use crate::transfer::MoveError;

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
                (Some(s3), _) => format!(
                    "restore requested ({} retrieval, a copy readable for {} days); \
                     the job can be sent again once it is done",
                    s3.restore_tier, s3.restore_days
                ),
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

/// Errors of a request of ours, named by what was asked.
fn failed(tier: &TierStore, key: &str, what: &str, e: &dyn std::fmt::Display) -> MoveError {
    MoveError::Transient(format!("{what} {}: {e}", tier.url_of(key)))
}

/// The URL of `key` as `store` names it, without a query.
async fn url_of(
    store: &dyn Signer,
    tier: &TierStore,
    key: &str,
    method: Method,
) -> Result<url::Url, MoveError> {
    let location = tier
        .location(key)
        .map_err(|e| MoveError::Permanent(format!("{e:#}")))?;
    // The presigner names the URL; it needs credentials it can sign with
    // (an access key or a token, not a SAS), which no retry changes.
    let mut url = store
        .signed_url(method, &location, Duration::from_secs(60))
        .await
        .map_err(|e| {
            MoveError::Permanent(format!(
                "address {} for a request of the mover's own: {e}",
                tier.url_of(key)
            ))
        })?;
    url.set_query(None);
    Ok(url)
}

/// Sends `request` and returns its status and body text.
async fn send(
    tier: &TierStore,
    client: &HttpClient,
    key: &str,
    what: &str,
    request: HttpRequest,
) -> Result<(StatusCode, String), MoveError> {
    tier.limits.op().await;
    let response = client
        .execute(request)
        .await
        .map_err(|e| failed(tier, key, what, &e))?;
    let status = response.status();
    let body = response.into_body().bytes().await.unwrap_or_default();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// A failed answer: retried when the store may answer otherwise later.
fn refused(tier: &TierStore, key: &str, what: &str, status: StatusCode, text: &str) -> MoveError {
    let message = format!("{what} {}: {status}: {text}", tier.url_of(key));
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        MoveError::Transient(message)
    } else {
        MoveError::Permanent(message)
    }
}

/// S3 `RestoreObject`.
async fn restore_s3(tier: &TierStore, s3: &S3Tier, key: &str) -> Result<Restore, MoveError> {
    const WHAT: &str = "restore";
    let mut url = url_of(s3.store.as_ref(), tier, key, Method::POST).await?;
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
        .map_err(|e| failed(tier, key, WHAT, &e))?;
    let credential = s3
        .store
        .credentials()
        .get_credential()
        .await
        .map_err(|e| failed(tier, key, WHAT, &e))?;
    AwsAuthorizer::new(&credential, "s3", &s3.region)
        .try_authorize(&mut request, None)
        .map_err(|e| failed(tier, key, WHAT, &e))?;
    match send(tier, &s3.client, key, WHAT, request).await? {
        (StatusCode::ACCEPTED, _) => Ok(Restore::Started),
        (StatusCode::OK, _) => Ok(Restore::Ready),
        (StatusCode::CONFLICT, text) if text.contains("RestoreAlreadyInProgress") => {
            Ok(Restore::UnderWay)
        }
        (status, text) => Err(refused(tier, key, WHAT, status, &text)),
    }
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
    let mut url = url_of(azure.store.as_ref(), tier, key, Method::PUT).await?;
    url.set_query(Some("comp=tier"));
    let date = chrono::Utc::now()
        .format("%a, %d %h %Y %H:%M:%S GMT")
        .to_string();
    let mut builder = http::Request::builder()
        .method(Method::PUT)
        .uri(url.as_str())
        .header("x-ms-version", "2023-11-03")
        .header("x-ms-date", date)
        .header("x-ms-access-tier", access_tier)
        .header(CONTENT_LENGTH, "0");
    if let Some(priority) = priority {
        builder = builder.header("x-ms-rehydrate-priority", priority);
    }
    let mut request = builder
        .body(HttpRequestBody::from(Vec::new()))
        .map_err(|e| failed(tier, key, WHAT, &e))?;
    let credential = azure
        .store
        .credentials()
        .get_credential()
        .await
        .map_err(|e| failed(tier, key, WHAT, &e))?;
    AzureAuthorizer::new(&credential, &azure.account)
        .try_authorize(&mut request)
        .map_err(|e| failed(tier, key, WHAT, &e))?;
    match send(tier, &azure.client, key, WHAT, request).await? {
        (StatusCode::OK, _) => Ok(Restore::Ready),
        (StatusCode::ACCEPTED, _) => Ok(Restore::Started),
        (StatusCode::CONFLICT, text) if text.contains("BlobBeingRehydrated") => {
            Ok(Restore::UnderWay)
        }
        (status, text) => Err(refused(tier, key, WHAT, status, &text)),
    }
}
