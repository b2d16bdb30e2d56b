//! The multipart uploads open for one key on an S3 tier
//! (`ListMultipartUploads`, which object_store does not make). The ledger
//! records an upload's id in the same poll that creates it, but a kill -9
//! while the create request is under way, or before that record is
//! committed, leaves an upload whose id nobody knows; its parts would stay
//! billed. Listing the key's uploads when a copy is discarded finds it.

use http::Method;
use object_store::{client::HttpRequestBody, path::Path};
use serde::Deserialize;
use strata_runtime::tiers::{S3Tier, TierStore};

use crate::{
    signed::{failed, refused, request_url, send_s3},
    transfer::MoveError,
};

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListMultipartUploadsResult {
    #[serde(default, rename = "Upload")]
    uploads: Vec<Upload>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Upload {
    key: String,
    upload_id: String,
}

/// The ids of the multipart uploads open for `location` exactly (not for
/// keys it is a prefix of) on the S3 tier `tier`.
pub async fn open(
    tier: &TierStore,
    s3: &S3Tier,
    location: &Path,
) -> Result<Vec<String>, MoveError> {
    const WHAT: &str = "list the multipart uploads of";
    // The bucket's URL, as the store names it (the empty path).
    let mut url = request_url(s3.store.as_ref(), tier, &Path::default(), Method::GET).await?;
    url.query_pairs_mut()
        .append_key_only("uploads")
        .append_pair("prefix", location.as_ref());
    let request = http::Request::builder()
        .method(Method::GET)
        .uri(url.as_str())
        .body(HttpRequestBody::from(Vec::new()))
        .map_err(|e| failed(WHAT, location.as_ref(), &e))?;
    let (status, text) = send_s3(tier, s3, WHAT, request).await?;
    if !status.is_success() {
        return Err(refused(WHAT, location.as_ref(), status, &text));
    }
    parse(&text, location.as_ref())
        .map_err(|e| failed(WHAT, location.as_ref(), &format!("unreadable answer: {e}")))
}

/// The upload ids of `key` in a `ListMultipartUploadsResult` document.
fn parse(xml: &str, key: &str) -> Result<Vec<String>, quick_xml::DeError> {
    let result: ListMultipartUploadsResult = quick_xml::de::from_str(xml)?;
    Ok(result
        .uploads
        .into_iter()
        .filter(|u| u.key == key)
        .map(|u| u.upload_id)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_keys_own_uploads_are_taken() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Bucket>b</Bucket><Prefix>t/a&amp;b</Prefix>
  <Upload><Key>t/a&amp;b</Key><UploadId>one</UploadId><Initiated>2026-01-01T00:00:00Z</Initiated></Upload>
  <Upload><Key>t/a&amp;b.longer</Key><UploadId>other</UploadId></Upload>
  <Upload><Key>t/a&amp;b</Key><UploadId>two</UploadId></Upload>
  <IsTruncated>false</IsTruncated>
</ListMultipartUploadsResult>"#;
        assert_eq!(parse(xml, "t/a&b").unwrap(), ["one", "two"]);
        let none = r#"<ListMultipartUploadsResult><Bucket>b</Bucket></ListMultipartUploadsResult>"#;
        assert!(parse(none, "k").unwrap().is_empty());
    }
}
