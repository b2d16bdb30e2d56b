//! Requests the mover makes itself where object_store has no call (S3
//! `RestoreObject` and `ListMultipartUploads`, Azure Set Blob Tier). They
//! are addressed as the stores' own requests are, through their presigners
//! (whose query is replaced), and signed by object_store's own authorizers.

use std::time::Duration;

use http::{Method, StatusCode};
use object_store::{
    aws::AwsAuthorizer,
    client::{HttpClient, HttpRequest},
    path::Path,
    signer::Signer,
};
use strata_runtime::tiers::{S3Tier, TierStore};

use crate::transfer::MoveError;

/// A request that could not be made or answered: retried.
pub(crate) fn failed(what: &str, url: &str, e: &dyn std::fmt::Display) -> MoveError {
    MoveError::Transient(format!("{what} {url}: {e}"))
}

/// The URL of `location` as `store` names it, without a query.
pub(crate) async fn request_url(
    store: &dyn Signer,
    tier: &TierStore,
    location: &Path,
    method: Method,
) -> Result<url::Url, MoveError> {
    // The presigner names the URL; it needs credentials it can sign with
    // (an access key or a token, not a SAS), which no retry changes.
    let mut url = store
        .signed_url(method, location, Duration::from_secs(60))
        .await
        .map_err(|e| {
            MoveError::Permanent(format!(
                "address {} of tier {} for a request of the mover's own: {e}",
                location, tier.name
            ))
        })?;
    url.set_query(None);
    Ok(url)
}

/// Sends `request` within the tier's limits; its status and body text.
pub(crate) async fn send(
    tier: &TierStore,
    client: &HttpClient,
    what: &str,
    request: HttpRequest,
) -> Result<(StatusCode, String), MoveError> {
    let url = request.uri().to_string();
    tier.limits.op().await;
    let response = client
        .execute(request)
        .await
        .map_err(|e| failed(what, &url, &e))?;
    let status = response.status();
    let body = response.into_body().bytes().await.unwrap_or_default();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// Signs `request` with the S3 tier's credentials and sends it.
pub(crate) async fn send_s3(
    tier: &TierStore,
    s3: &S3Tier,
    what: &str,
    mut request: HttpRequest,
) -> Result<(StatusCode, String), MoveError> {
    let url = request.uri().to_string();
    let credential = s3
        .store
        .credentials()
        .get_credential()
        .await
        .map_err(|e| failed(what, &url, &e))?;
    AwsAuthorizer::new(&credential, "s3", &s3.region)
        .try_authorize(&mut request, None)
        .map_err(|e| failed(what, &url, &e))?;
    send(tier, &s3.client, what, request).await
}

/// An answer that is not a success: retried when the store may answer
/// otherwise later.
pub(crate) fn refused(what: &str, url: &str, status: StatusCode, text: &str) -> MoveError {
    let message = format!("{what} {url}: {status}: {text}");
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        MoveError::Transient(message)
    } else {
        MoveError::Permanent(message)
    }
}
