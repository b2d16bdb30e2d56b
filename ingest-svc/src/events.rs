//! Parsing a posted batch of access events: a JSON array or NDJSON, each
//! item proto3 JSON. The batch is checked whole: the first bad item is
//! named with its index and field, and nothing is published.

use sha2::{Digest, Sha256};
use strata_proto::{AccessEvent, validate};

/// The request header that makes a retried batch count once.
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// Longest `Idempotency-Key` accepted, in bytes.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

/// Why a batch was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchError {
    /// 0-based index of the offending item, when one is to blame.
    pub item: Option<usize>,
    /// The field at fault, when known.
    pub field: Option<String>,
    pub message: String,
}

impl BatchError {
    fn whole(message: impl Into<String>) -> Self {
        Self {
            item: None,
            field: None,
            message: message.into(),
        }
    }
}

/// Parses and validates a batch. `now_ms` fills a missing `ts`. Under an
/// `idempotency_key`, an item without an `eventId` gets one made from the
/// key, the whole body and the item's place in it ([`derived_event_id`]).
pub fn parse_batch(
    body: &[u8],
    now_ms: i64,
    max_items: usize,
    idempotency_key: Option<&str>,
) -> Result<Vec<AccessEvent>, BatchError> {
    let trimmed = body.trim_ascii();
    if trimmed.is_empty() {
        return Err(BatchError::whole(
            "empty body: expected a JSON array or NDJSON of access events",
        ));
    }
    // Split into at most `max_items` items: a body of a million tiny items
    // is refused without first holding a million of them.
    let too_many =
        || BatchError::whole(format!("too many events in one batch: at most {max_items}"));
    let items: Vec<&[u8]> = if trimmed.starts_with(b"[") {
        let mut de = serde_json::Deserializer::from_slice(trimmed);
        let items = serde::Deserializer::deserialize_seq(&mut de, ItemsUpTo(max_items))
            .and_then(|items| de.end().map(|()| items))
            .map_err(|e| BatchError::whole(format!("not a JSON array: {e}")))?;
        items.ok_or_else(too_many)?
    } else {
        let items: Vec<&[u8]> = trimmed
            .split(|b| *b == b'\n')
            .map(<[u8]>::trim_ascii)
            .filter(|l| !l.is_empty())
            .take(max_items.saturating_add(1))
            .collect();
        if items.len() > max_items {
            return Err(too_many());
        }
        items
    };
    if items.is_empty() {
        return Err(BatchError::whole(
            "empty batch: expected at least one access event",
        ));
    }
    let body_sha256: [u8; 32] = Sha256::digest(trimmed).into();
    items
        .into_iter()
        .enumerate()
        .map(|(i, raw)| {
            let mut event = decode(raw).map_err(|(field, message)| BatchError {
                item: Some(i),
                field,
                message,
            })?;
            if let Some(key) = idempotency_key.filter(|_| event.event_id.is_empty()) {
                event.event_id = derived_event_id(key, &body_sha256, i);
            }
            if event.ts.is_none() {
                event.ts = Some(strata_proto::time::from_millis(now_ms));
            }
            validate::access_event(&event).map_err(|e| BatchError {
                item: Some(i),
                field: Some(e.field.to_owned()),
                message: e.to_string(),
            })?;
            Ok(event)
        })
        .collect()
}

/// Reads a JSON array's items as raw JSON, up to a number of them: `None`
/// when there are more (the rest is only checked to be JSON, not kept).
struct ItemsUpTo(usize);

impl<'de> serde::de::Visitor<'de> for ItemsUpTo {
    type Value = Option<Vec<&'de [u8]>>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON array of access events")
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut items = Vec::new();
        while items.len() < self.0 {
            match seq.next_element::<&'de serde_json::value::RawValue>()? {
                Some(item) => items.push(item.get().as_bytes()),
                None => return Ok(Some(items)),
            }
        }
        if seq.next_element::<serde::de::IgnoredAny>()?.is_none() {
            return Ok(Some(items));
        }
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

/// Whether a body sent as `content_type` cannot be a batch of JSON events:
/// its media type names another encoding (protobuf, XML, CBOR,
/// MessagePack, Avro, a form's parts). JSON sent under a generic type
/// (curl's form type, `application/octet-stream`, `text/plain`) goes on
/// to the parser, which names what is wrong with it.
pub fn other_encoding(content_type: &str) -> bool {
    let media = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    ["protobuf", "xml", "cbor", "msgpack", "avro", "grpc"]
        .iter()
        .any(|encoding| media.contains(encoding))
        || media.starts_with("multipart/")
}

/// Checks an `Idempotency-Key` header value: 1 to 255 printable ASCII
/// characters (space included).
pub fn check_idempotency_key(value: &[u8]) -> Result<&str, BatchError> {
    let visible = |b: &u8| b.is_ascii_graphic() || *b == b' ';
    if value.is_empty() || value.len() > MAX_IDEMPOTENCY_KEY || !value.iter().all(visible) {
        return Err(BatchError {
            item: None,
            field: Some("Idempotency-Key".into()),
            message: format!(
                "the Idempotency-Key header must be 1 to {MAX_IDEMPOTENCY_KEY} printable ASCII characters"
            ),
        });
    }
    // Printable ASCII is UTF-8.
    std::str::from_utf8(value).map_err(|e| BatchError::whole(e.to_string()))
}

/// The `eventId` of item `index` of a batch posted under `idempotency_key`
/// whose (trimmed) body has the SHA-256 `body_sha256`: a client that
/// retries the same batch under the same key (after a timeout, say) sends
/// the same ids, and policy-svc drops an `eventId` it has seen. Any other
/// body under a reused key gets other ids, even for items it shares with
/// an earlier batch (the same read, without a time, made again), so
/// reusing a key loses nothing.
fn derived_event_id(idempotency_key: &str, body_sha256: &[u8; 32], index: usize) -> String {
    let digest = Sha256::new()
        .chain_update(idempotency_key)
        .chain_update(b"\n")
        .chain_update(body_sha256)
        .chain_update(index.to_string())
        .finalize();
    format!("idem-{}", hex::encode(&digest[..16]))
}

/// One item as proto3 JSON; an error names the field it is in (as the
/// item spells it) when it is in one.
fn decode(raw: &[u8]) -> Result<AccessEvent, (Option<String>, String)> {
    let mut json = serde_json::Deserializer::from_slice(raw);
    let event = serde_path_to_error::deserialize(&mut json).map_err(|e| {
        let path = e.path().to_string();
        let field = (path != ".").then_some(path);
        (field, format!("json: {}", e.into_inner()))
    })?;
    json.end().map_err(|e| (None, format!("json: {e}")))?;
    Ok(event)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retried_batch_gets_the_same_event_ids_under_the_same_key() {
        let body =
            br#"[{"objectKey":"a","op":"GET"},{"objectKey":"b","op":"GET","eventId":"mine"}]"#;
        let ids = |key: &str, now_ms: i64| {
            let events = parse_batch(body, now_ms, 10, Some(key)).unwrap();
            events.into_iter().map(|e| e.event_id).collect::<Vec<_>>()
        };
        let now = 1_767_225_600_000; // 2026-01-01
        let first = ids("retry-1", now);
        assert!(first[0].starts_with("idem-"), "{first:?}");
        assert_eq!(first[1], "mine", "an event's own id is kept");
        // A retry a second later: the missing ts differs, the ids do not.
        assert_eq!(ids("retry-1", now + 1_000), first);
        assert_ne!(ids("retry-2", now)[0], first[0]);
        // Another batch under a reused key: other ids, nothing dropped.
        let other = br#"[{"objectKey":"c","op":"GET"}]"#;
        let reused = parse_batch(other, now, 10, Some("retry-1")).unwrap();
        assert_ne!(reused[0].event_id, first[0]);
        // Another batch that starts with the same read (no time: a read
        // made again): that read is new too.
        let again = br#"[{"objectKey":"a","op":"GET"},{"objectKey":"c","op":"GET"}]"#;
        let again = parse_batch(again, now, 10, Some("retry-1")).unwrap();
        assert_ne!(again[0].event_id, first[0]);
    }

    #[test]
    fn idempotency_keys_are_checked() {
        assert_eq!(check_idempotency_key(b"batch 42").unwrap(), "batch 42");
        for bad in [&b""[..], b"tab\there", &[b'k'; 256], "ключ".as_bytes()] {
            let e = check_idempotency_key(bad).unwrap_err();
            assert_eq!(e.field.as_deref(), Some("Idempotency-Key"));
        }
    }

    #[test]
    fn array_and_ndjson_parse_alike() {
        let array =
            br#"[{"objectKey":"a","op":"GET"}, {"object_key":"b","op":"PUT","size_bytes":3}]"#;
        let ndjson = b"{\"objectKey\":\"a\",\"op\":\"GET\"}\n\n{\"object_key\":\"b\",\"op\":\"PUT\",\"size_bytes\":3}\n";
        let a = parse_batch(array, 1_767_225_600_000, 10, None).unwrap();
        assert_eq!(a, parse_batch(ndjson, 1_767_225_600_000, 10, None).unwrap());
        assert_eq!(a.len(), 2);
        assert_eq!(a[1].size_bytes, 3);
        assert!(a[0].ts.is_some(), "missing ts is filled");
        // Bodies of another encoding, by their type; JSON under any other.
        for other in [
            "application/x-protobuf",
            "application/vnd.google.protobuf; proto=strata.v1.AccessEvent",
            "Application/XML",
            "multipart/form-data; boundary=x",
        ] {
            assert!(other_encoding(other), "{other}");
        }
        for json in [
            "application/json",
            "application/x-ndjson; charset=utf-8",
            "application/x-www-form-urlencoded",
            "text/plain",
            "",
        ] {
            assert!(!other_encoding(json), "{json}");
        }
        // A batch of nothing is refused by name, as an empty body is.
        for empty in [&b"[]"[..], b" [ ] ", b"\n\n"] {
            let e = parse_batch(empty, 1_767_225_600_000, 10, None).unwrap_err();
            assert!(e.message.starts_with("empty"), "{}", e.message);
        }
    }

    #[test]
    fn errors_name_item_and_field() {
        let bad_key = br#"[{"objectKey":"ok","op":"GET"},{"objectKey":"../etc","op":"GET"}]"#;
        let err = parse_batch(bad_key, 1_767_225_600_000, 10, None).unwrap_err();
        assert_eq!(
            (err.item, err.field.as_deref()),
            (Some(1), Some("object_key"))
        );
        let bad_op = b"{\"objectKey\":\"x\",\"op\":\"FETCH\"}";
        let err = parse_batch(bad_op, 0, 10, None).unwrap_err();
        assert_eq!((err.item, err.field.as_deref()), (Some(0), Some("op")));
        let bad_size =
            br#"[{"objectKey":"x","op":"GET"},{"objectKey":"x","op":"GET","sizeBytes":"abc"}]"#;
        let err = parse_batch(bad_size, 1_767_225_600_000, 10, None).unwrap_err();
        assert_eq!(
            (err.item, err.field.as_deref()),
            (Some(1), Some("sizeBytes"))
        );
        let trailing = b"{\"objectKey\":\"x\",\"op\":\"GET\"} junk";
        assert_eq!(
            parse_batch(trailing, 0, 10, None).unwrap_err().item,
            Some(0)
        );
        let missing_op = b"{\"objectKey\":\"x\"}";
        assert_eq!(
            parse_batch(missing_op, 1_767_225_600_000, 10, None)
                .unwrap_err()
                .field
                .as_deref(),
            Some("op")
        );
        assert_eq!(parse_batch(b"  ", 0, 10, None).unwrap_err().item, None);
        assert!(
            parse_batch(b"[1,2,3]", 0, 2, None)
                .unwrap_err()
                .message
                .contains("at most 2")
        );
    }

    /// A batch is cut at one item past the limit, in either form, and a
    /// batch at the limit is read whole.
    #[test]
    fn a_batch_over_the_limit_is_refused_at_any_size() {
        let event = r#"{"objectKey":"x","op":"GET"}"#;
        let array = |n: usize| format!("[{}]", vec![event; n].join(","));
        let lines = |n: usize| vec![event; n].join("\n");
        for body in [array(3), lines(3)] {
            let now = 1_767_225_600_000;
            assert_eq!(parse_batch(body.as_bytes(), now, 3, None).unwrap().len(), 3);
            let e = parse_batch(body.as_bytes(), 0, 2, None).unwrap_err();
            assert_eq!(
                (e.item, e.message.contains("at most 2")),
                (None, true),
                "{e:?}"
            );
        }
        // A million tiny items: refused as too many. (That they are not
        // held first is the splitter's design; no assertion here sees it.)
        let tiny = format!("[{}1]", "1,".repeat(1_000_000));
        let e = parse_batch(tiny.as_bytes(), 0, 10, None).unwrap_err();
        assert_eq!(e.message, "too many events in one batch: at most 10");
        // What follows the limit must still be JSON.
        let broken = format!("[{event},{event},{event},]");
        let e = parse_batch(broken.as_bytes(), 0, 2, None).unwrap_err();
        assert!(e.message.starts_with("not a JSON array"), "{e:?}");
        let trailing = format!("{} x", array(1));
        let e = parse_batch(trailing.as_bytes(), 0, 2, None).unwrap_err();
        assert!(e.message.starts_with("not a JSON array"), "{e:?}");
    }
}
