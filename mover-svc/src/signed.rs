//! Requests the mover makes itself where object_store has no call (S3
//! `RestoreObject` and `ListMultipartUploads`, Azure Set Blob Tier) or
//! none with a condition (S3 `CompleteMultipartUpload` and Azure Put Block
//! List with `If-None-Match: *`, deletes with `If-Match`). They
//! are addressed as the stores' own requests are, through their presigners
//! (whose query is replaced), and signed by object_store's own authorizers.

use std::time::Duration;

use http::{Method, StatusCode};
use object_store::{
    aws::AwsAuthorizer,
    azure::{AzureAuthorizer, AzureCredential},
    client::{HttpClient, HttpRequest, HttpRequestBody},
    path::Path,
    signer::Signer,
};
use strata_runtime::tiers::{AzureTier, S3Tier, TierStore};

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

/// Whether the mover can address and sign requests of its own for the
/// Azure tier: with an account key. (The URLs come from the store's
/// presigner, which a SAS cannot feed and a bearer token feeds only with a
/// user delegation key, a request and a permission of its own.)
pub(crate) async fn can_sign_azure(azure: &AzureTier) -> bool {
    let credential = azure.store.credentials().get_credential().await;
    matches!(credential.as_deref(), Ok(AzureCredential::AccessKey(_)))
}

/// Dates `request` and names the REST version it speaks, signs it with the
/// Azure tier's credentials and sends it.
pub(crate) async fn send_azure(
    tier: &TierStore,
    azure: &AzureTier,
    what: &str,
    mut request: HttpRequest,
) -> Result<(StatusCode, String), MoveError> {
    let url = request.uri().to_string();
    let date = chrono::Utc::now()
        .format("%a, %d %h %Y %H:%M:%S GMT")
        .to_string();
    let headers = request.headers_mut();
    headers.insert("x-ms-version", http::HeaderValue::from_static("2023-11-03"));
    let date = http::HeaderValue::try_from(date).map_err(|e| failed(what, &url, &e))?;
    headers.insert("x-ms-date", date);
    let credential = azure
        .store
        .credentials()
        .get_credential()
        .await
        .map_err(|e| failed(what, &url, &e))?;
    AzureAuthorizer::new(&credential, &azure.account)
        .try_authorize(&mut request)
        .map_err(|e| failed(what, &url, &e))?;
    send(tier, &azure.client, what, request).await
}

/// Deletes `location` from `tier` only if it holds the object whose ETag is
/// `e_tag` (S3 `DeleteObject`, Azure Delete Blob, each with `If-Match`):
/// `Ok(true)` when the key no longer holds it (deleted now, or gone
/// already), `Ok(false)` when it holds another object, which is kept.
/// `None` where the mover cannot ask that: a tier neither S3 nor Azure with
/// an account key, one whose `conditional_delete` (or `conditional_put`)
/// `= "disabled"` says its store has no conditional deletes (MinIO ignores
/// `If-Match` on a delete and deletes), or a store that answers 501 (Not
/// Implemented).
pub(crate) async fn delete_if_match(
    tier: &TierStore,
    location: &Path,
    e_tag: &str,
) -> Option<Result<bool, MoveError>> {
    const WHAT: &str = "delete (if unchanged)";
    if !tier.conditional_delete {
        return None;
    }
    let request = async |store: &dyn Signer| {
        let url = request_url(store, tier, location, Method::DELETE).await?;
        http::Request::builder()
            .method(Method::DELETE)
            .uri(url.as_str())
            .header(http::header::IF_MATCH, e_tag)
            .body(HttpRequestBody::from(Vec::new()))
            .map_err(|e| failed(WHAT, location.as_ref(), &e))
    };
    let answer = match (&tier.s3, &tier.azure) {
        (Some(s3), _) => match request(s3.store.as_ref()).await {
            Ok(request) => send_s3(tier, s3, WHAT, request).await,
            Err(e) => Err(e),
        },
        (None, Some(azure)) if can_sign_azure(azure).await => {
            match request(azure.store.as_ref()).await {
                Ok(request) => send_azure(tier, azure, WHAT, request).await,
                Err(e) => Err(e),
            }
        }
        _ => return None,
    };
    let (status, text) = match answer {
        Ok(answered) => answered,
        Err(e) => return Some(Err(e)),
    };
    Some(match status {
        // A store that has no conditional delete: the caller looks, then
        // deletes.
        StatusCode::NOT_IMPLEMENTED => return None,
        _ if status.is_success() || status == StatusCode::NOT_FOUND => Ok(true),
        StatusCode::PRECONDITION_FAILED => Ok(false),
        // S3: another request on the key under way; asked again.
        StatusCode::CONFLICT if tier.s3.is_some() => Err(failed(WHAT, location.as_ref(), &text)),
        _ => Err(refused(WHAT, location.as_ref(), status, &text)),
    })
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
