//! The multipart requests the mover makes itself, object_store making
//! none such.
//!
//! - The uploads open for one key (`ListMultipartUploads`). The ledger
//!   records an upload's id in the same poll that creates it, but a kill -9
//!   while the create request is under way, or before that record is
//!   committed, leaves an upload whose id nobody knows; its parts would
//!   stay billed. Listing the key's uploads when a copy is discarded finds
//!   it.
//! - A completion that succeeds only if the key holds no object (S3
//!   `CompleteMultipartUpload`, Azure Put Block List, each with
//!   `If-None-Match: *`), so that a copy never takes the place of an
//!   object written at its key while it ran.

use base64::{Engine, prelude::BASE64_STANDARD};
use http::{Method, StatusCode, header::CONTENT_LENGTH};
use object_store::{
    Attribute, ObjectStoreExt, PutResult, client::HttpRequestBody, multipart::PartId, path::Path,
};
use serde::{Deserialize, Serialize};
use strata_runtime::tiers::{AzureTier, S3Tier, TierStore};

use crate::{
    signed::{failed, refused, request_url, send_azure, send_s3},
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

/// What object_store keeps of an S3 part in its [`PartId`]: the part's
/// ETag alone, or this document with its checksums too.
#[derive(Debug, Deserialize)]
struct PartMetadata {
    e_tag: String,
    checksum_sha256: Option<String>,
    checksum_crc64nvme: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct CompleteMultipartUpload {
    part: Vec<CompletedPart>,
}

#[derive(Debug, Serialize)]
struct CompletedPart {
    #[serde(rename = "ETag")]
    e_tag: String,
    #[serde(rename = "PartNumber")]
    part_number: usize,
    #[serde(rename = "ChecksumSHA256", skip_serializing_if = "Option::is_none")]
    checksum_sha256: Option<String>,
    #[serde(rename = "ChecksumCRC64NVME", skip_serializing_if = "Option::is_none")]
    checksum_crc64nvme: Option<String>,
}

#[derive(Debug, Deserialize)]
struct CompleteMultipartUploadResult {
    #[serde(rename = "ETag")]
    e_tag: String,
}

/// The body of a `CompleteMultipartUpload` of `parts`, numbered from 1 in
/// order, as object_store's own completion sends it.
fn completion_body(parts: Vec<PartId>) -> Result<String, quick_xml::SeError> {
    let part = parts
        .into_iter()
        .enumerate()
        .map(|(index, part)| {
            let known = quick_xml::de::from_str::<PartMetadata>(&part.content_id);
            let (e_tag, checksum_sha256, checksum_crc64nvme) = match known {
                Ok(m) => (m.e_tag, m.checksum_sha256, m.checksum_crc64nvme),
                Err(_) => (part.content_id, None, None),
            };
            CompletedPart {
                e_tag,
                part_number: index + 1,
                checksum_sha256,
                checksum_crc64nvme,
            }
        })
        .collect();
    quick_xml::se::to_string(&CompleteMultipartUpload { part })
}

/// Completes the upload `id` of `location` on the S3 tier `tier` only if the
/// key holds no object then: `If-None-Match: *`, which AWS documents S3
/// honouring on completions since 2024 (moto, which the tests run, does). Another object there
/// is [`object_store::Error::AlreadyExists`]; the upload stays open, for
/// the job's discard to abort.
pub async fn complete_if_absent(
    tier: &TierStore,
    s3: &S3Tier,
    location: &Path,
    id: &str,
    parts: Vec<PartId>,
) -> object_store::Result<PutResult> {
    const WHAT: &str = "complete the upload of";
    let failed = |e: &dyn std::fmt::Display| object_store::Error::Generic {
        store: "S3",
        source: format!("{WHAT} {location}: {e}").into(),
    };
    let body = completion_body(parts).map_err(|e| failed(&e))?;
    let mut url = request_url(s3.store.as_ref(), tier, location, Method::POST)
        .await
        .map_err(|e| failed(&e))?;
    url.query_pairs_mut().append_pair("uploadId", id);
    let request = http::Request::builder()
        .method(Method::POST)
        .uri(url.as_str())
        .header(http::header::IF_NONE_MATCH, "*")
        .body(HttpRequestBody::from(body.into_bytes()))
        .map_err(|e| failed(&e))?;
    let (status, text) = send_s3(tier, s3, WHAT, request)
        .await
        .map_err(|e| failed(&e))?;
    // S3 may answer 200 with an error document: only a result counts.
    let result = status
        .is_success()
        .then(|| quick_xml::de::from_str::<CompleteMultipartUploadResult>(&text).ok())
        .flatten();
    let answer = format!("{status}: {text}");
    match result {
        Some(result) => Ok(PutResult {
            e_tag: Some(result.e_tag),
            version: None,
            extensions: Default::default(),
        }),
        None if status == StatusCode::PRECONDITION_FAILED
            || error_code(&text) == Some("PreconditionFailed") =>
        {
            Err(object_store::Error::AlreadyExists {
                path: location.to_string(),
                source: answer.into(),
            })
        }
        None if status == StatusCode::FORBIDDEN => Err(object_store::Error::PermissionDenied {
            path: location.to_string(),
            source: answer.into(),
        }),
        // Another write to the key under way (409 ConditionalRequestConflict),
        // a store's hiccup: the attempt is retried.
        None => Err(failed(&answer)),
    }
}

/// The `<Code>` of an S3 error document.
fn error_code(text: &str) -> Option<&str> {
    let (_, rest) = text.split_once("<Code>")?;
    Some(rest.split_once("</Code>")?.0)
}

/// The body of a Put Block List of `parts`, in order, as object_store's
/// own commit sends it: each block by the id it was put under, base64.
fn block_list(parts: &[PartId]) -> String {
    let blocks: String = parts
        .iter()
        .map(|p| {
            format!(
                "<Uncommitted>{}</Uncommitted>",
                BASE64_STANDARD.encode(&p.content_id)
            )
        })
        .collect();
    format!("<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>{blocks}</BlockList>")
}

/// Commits the blocks `parts` as the blob `location` on the Azure tier
/// `tier` only if the key holds no blob then (Put Block List with
/// `If-None-Match: *`), in the tier's access tier as object_store's commit
/// would. A blob there is [`object_store::Error::AlreadyExists`]; the
/// uncommitted blocks are Azure's to discard (within a week).
pub async fn commit_if_absent(
    tier: &TierStore,
    azure: &AzureTier,
    location: &Path,
    parts: &[PartId],
) -> object_store::Result<PutResult> {
    const WHAT: &str = "commit the blocks of";
    let failed = |e: &dyn std::fmt::Display| object_store::Error::Generic {
        store: "MicrosoftAzure",
        source: format!("{WHAT} {location}: {e}").into(),
    };
    let body = block_list(parts);
    let mut url = request_url(azure.store.as_ref(), tier, location, Method::PUT)
        .await
        .map_err(|e| failed(&e))?;
    url.set_query(Some("comp=blocklist"));
    let mut builder = http::Request::builder()
        .method(Method::PUT)
        .uri(url.as_str())
        .header(http::header::IF_NONE_MATCH, "*")
        .header(CONTENT_LENGTH, body.len());
    if let Some(class) = tier.attributes.get(&Attribute::StorageClass) {
        builder = builder.header("x-ms-access-tier", class.as_ref());
    }
    let request = builder
        .body(HttpRequestBody::from(body.into_bytes()))
        .map_err(|e| failed(&e))?;
    let (status, text) = send_azure(tier, azure, WHAT, request)
        .await
        .map_err(|e| failed(&e))?;
    let taken = status == StatusCode::PRECONDITION_FAILED
        || (status == StatusCode::CONFLICT && text.contains("BlobAlreadyExists"));
    match status {
        _ if status.is_success() => Ok(PutResult {
            // The blob's ETag, for the job to tell its copy from an object
            // written over it (the answer's headers are not kept).
            e_tag: azure.store.head(location).await.ok().and_then(|m| m.e_tag),
            version: None,
            extensions: Default::default(),
        }),
        _ if taken => Err(object_store::Error::AlreadyExists {
            path: location.to_string(),
            source: format!("{status}: {text}").into(),
        }),
        _ => Err(failed(&format!("{status}: {text}"))),
    }
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

    #[test]
    fn a_block_list_names_each_block_by_its_id_in_base64_in_order() {
        let parts = ["numero1", "numero2"].map(|id| PartId {
            content_id: id.to_owned(),
        });
        assert_eq!(
            block_list(&parts),
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList>\
             <Uncommitted>bnVtZXJvMQ==</Uncommitted><Uncommitted>bnVtZXJvMg==</Uncommitted>\
             </BlockList>"
        );
    }

    #[test]
    fn a_completion_numbers_the_parts_and_keeps_their_checksums() {
        let with_checksum = "<PartMetadata><e_tag>\"b\"</e_tag>\
            <checksum_sha256>c2hh</checksum_sha256></PartMetadata>";
        let parts = ["\"a&\"", with_checksum].map(|content_id| PartId {
            content_id: content_id.to_owned(),
        });
        assert_eq!(
            completion_body(parts.to_vec()).unwrap(),
            "<CompleteMultipartUpload>\
             <Part><ETag>\"a&amp;\"</ETag><PartNumber>1</PartNumber></Part>\
             <Part><ETag>\"b\"</ETag><PartNumber>2</PartNumber>\
             <ChecksumSHA256>c2hh</ChecksumSHA256></Part>\
             </CompleteMultipartUpload>"
        );
    }
}
