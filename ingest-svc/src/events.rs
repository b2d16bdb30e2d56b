//! Parsing a posted batch of access events: a JSON array or NDJSON, each
//! item proto3 JSON. The batch is checked whole: the first bad item is
//! named with its index and field, and nothing is published.

use strata_proto::{AccessEvent, validate};

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

/// Parses and validates a batch. `now_ms` fills a missing `ts`.
pub fn parse_batch(
    body: &[u8],
    now_ms: i64,
    max_items: usize,
) -> Result<Vec<AccessEvent>, BatchError> {
    let trimmed = body.trim_ascii();
    if trimmed.is_empty() {
        return Err(BatchError::whole(
            "empty body: expected a JSON array or NDJSON of access events",
        ));
    }
    let items: Vec<&[u8]> = if trimmed.starts_with(b"[") {
        let values: Vec<&serde_json::value::RawValue> = serde_json::from_slice(trimmed)
            .map_err(|e| BatchError::whole(format!("not a JSON array: {e}")))?;
        values.into_iter().map(|v| v.get().as_bytes()).collect()
    } else {
        trimmed
            .split(|b| *b == b'\n')
            .map(<[u8]>::trim_ascii)
            .filter(|l| !l.is_empty())
            .collect()
    };
    if items.len() > max_items {
        return Err(BatchError::whole(format!(
            "{} events in one batch; at most {max_items}",
            items.len()
        )));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(i, raw)| {
            let mut event = decode(raw).map_err(|(field, message)| BatchError {
                item: Some(i),
                field,
                message,
            })?;
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
    fn array_and_ndjson_parse_alike() {
        let array =
            br#"[{"objectKey":"a","op":"GET"}, {"object_key":"b","op":"PUT","size_bytes":3}]"#;
        let ndjson = b"{\"objectKey\":\"a\",\"op\":\"GET\"}\n\n{\"object_key\":\"b\",\"op\":\"PUT\",\"size_bytes\":3}\n";
        let a = parse_batch(array, 1_767_225_600_000, 10).unwrap();
        assert_eq!(a, parse_batch(ndjson, 1_767_225_600_000, 10).unwrap());
        assert_eq!(a.len(), 2);
        assert_eq!(a[1].size_bytes, 3);
        assert!(a[0].ts.is_some(), "missing ts is filled");
    }

    #[test]
    fn errors_name_item_and_field() {
        let bad_key = br#"[{"objectKey":"ok","op":"GET"},{"objectKey":"../etc","op":"GET"}]"#;
        let err = parse_batch(bad_key, 1_767_225_600_000, 10).unwrap_err();
        assert_eq!(
            (err.item, err.field.as_deref()),
            (Some(1), Some("object_key"))
        );
        let bad_op = b"{\"objectKey\":\"x\",\"op\":\"FETCH\"}";
        let err = parse_batch(bad_op, 0, 10).unwrap_err();
        assert_eq!((err.item, err.field.as_deref()), (Some(0), Some("op")));
        let bad_size =
            br#"[{"objectKey":"x","op":"GET"},{"objectKey":"x","op":"GET","sizeBytes":"abc"}]"#;
        let err = parse_batch(bad_size, 1_767_225_600_000, 10).unwrap_err();
        assert_eq!(
            (err.item, err.field.as_deref()),
            (Some(1), Some("sizeBytes"))
        );
        let trailing = b"{\"objectKey\":\"x\",\"op\":\"GET\"} junk";
        assert_eq!(parse_batch(trailing, 0, 10).unwrap_err().item, Some(0));
        let missing_op = b"{\"objectKey\":\"x\"}";
        assert_eq!(
            parse_batch(missing_op, 1_767_225_600_000, 10)
                .unwrap_err()
                .field
                .as_deref(),
            Some("op")
        );
        assert_eq!(parse_batch(b"  ", 0, 10).unwrap_err().item, None);
        assert!(
            parse_batch(b"[1,2,3]", 0, 2)
                .unwrap_err()
                .message
                .contains("at most 2")
        );
    }
}
