//! Encoding and decoding of topic values (design §2).
//!
//! A value is protobuf binary or proto3 canonical JSON, named by the Kafka
//! header `content-type`. Without the header, a value whose first non-space
//! byte is `{` is JSON, anything else protobuf.

use std::{fmt, str::FromStr};

use serde::{Serialize, de::DeserializeOwned};
use serde_json::error::Category;

/// Name of the Kafka header that names a value's encoding.
pub const CONTENT_TYPE_HEADER: &str = "content-type";
/// `content-type` of protobuf binary values.
pub const PROTOBUF: &str = "application/x-protobuf";
/// `content-type` of proto3 JSON values.
pub const JSON: &str = "application/json";

/// The two encodings a producer may choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// Protobuf binary: compact, the default between daemons.
    Protobuf,
    /// proto3 canonical JSON: readable with plain Kafka tools.
    Json,
}

impl Encoding {
    /// The `content-type` header value of this encoding.
    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => PROTOBUF,
            Encoding::Json => JSON,
        }
    }
}

impl FromStr for Encoding {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "protobuf" | "proto" | "binary" | PROTOBUF => Ok(Encoding::Protobuf),
            "json" | JSON => Ok(Encoding::Json),
            other => Err(format!(
                "unknown encoding {other:?}: expected json or protobuf"
            )),
        }
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Encoding::Protobuf => "protobuf",
            Encoding::Json => "json",
        })
    }
}

/// Why a value could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The header named an encoding Strata does not speak.
    #[error("unsupported content-type {0:?}")]
    UnsupportedContentType(String),
    /// Not valid protobuf for the expected message.
    #[error("invalid protobuf: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// Not valid proto3 JSON for the expected message.
    #[error("invalid json: {0}")]
    Json(#[from] serde_json::Error),
    /// The value was empty (a tombstone, or a producer bug).
    #[error("empty value")]
    Empty,
}

/// A message that travels on a topic: prost for binary, pbjson serde for JSON.
pub trait WireMessage: prost::Message + Default + Serialize + DeserializeOwned {}
impl<T: prost::Message + Default + Serialize + DeserializeOwned> WireMessage for T {}

/// Encodes `msg` in `encoding`.
pub fn encode<T: WireMessage>(msg: &T, encoding: Encoding) -> Vec<u8> {
    match encoding {
        Encoding::Protobuf => msg.encode_to_vec(),
        // proto3 JSON has no spelling for an enum value outside the enum
        // or a time outside years 1 to 9999, and pbjson refuses them: the
        // value is then empty. Validation refuses both, so every message
        // that passed it, and every one Strata makes, encodes
        // (tests/hostile_bytes.rs).
        Encoding::Json => serde_json::to_vec(msg).unwrap_or_default(),
    }
}

/// Decodes a value, using the `content-type` header when given and sniffing
/// the first non-space byte when not.
pub fn decode<T: WireMessage>(value: &[u8], content_type: Option<&str>) -> Result<T, DecodeError> {
    if let Some(ct) = content_type {
        return decode_as(value, encoding_of(ct)?);
    }
    let encoding = sniff(value).ok_or(DecodeError::Empty)?;
    match decode_as(value, encoding) {
        // What JSON skips as space is a field tag in protobuf (0x0A: field
        // 1, a string), so a value starting with one that does not even
        // parse as JSON may be protobuf: an `event_id` of 123 bytes starts
        // `0A 7B`, `\n{`. JSON that parses but does not fit stays an error.
        Err(DecodeError::Json(json_error))
            if value.first().is_some_and(u8::is_ascii_whitespace)
                && matches!(json_error.classify(), Category::Syntax | Category::Eof) =>
        {
            decode_as(value, Encoding::Protobuf).map_err(|_| DecodeError::Json(json_error))
        }
        decoded => decoded,
    }
}

/// Decodes a value known to be in `encoding`.
pub fn decode_as<T: WireMessage>(value: &[u8], encoding: Encoding) -> Result<T, DecodeError> {
    match encoding {
        Encoding::Protobuf => Ok(T::decode(value)?),
        Encoding::Json => Ok(serde_json::from_slice(value)?),
    }
}

/// The encoding named by a `content-type` value; parameters such as
/// `; charset=utf-8` are ignored.
pub fn encoding_of(content_type: &str) -> Result<Encoding, DecodeError> {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    match essence.to_ascii_lowercase().as_str() {
        PROTOBUF | "application/protobuf" | "application/vnd.google.protobuf" => {
            Ok(Encoding::Protobuf)
        }
        JSON => Ok(Encoding::Json),
        _ => Err(DecodeError::UnsupportedContentType(content_type.to_owned())),
    }
}

/// JSON when the first non-space byte is `{`, protobuf otherwise; `None` for
/// an empty or all-space value.
pub fn sniff(value: &[u8]) -> Option<Encoding> {
    let first = value.iter().find(|b| !b.is_ascii_whitespace())?;
    Some(if *first == b'{' {
        Encoding::Json
    } else {
        Encoding::Protobuf
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AccessEvent, MigrationJob, MigrationStatus, Op, Reason, State, pb, time};

    fn status() -> MigrationStatus {
        MigrationStatus {
            job_key: crate::job_key("k", "hot", "warm", 7),
            object_key: "k".into(),
            state: State::Completed as i32,
            from_tier: "hot".into(),
            to_tier: "warm".into(),
            generation: 8,
            sha256: "ab".repeat(32),
            bytes: u64::MAX,
            attempt: 2,
            error: Some(pb::Error {
                class: "transient".into(),
                message: "x".into(),
            }),
            ts: Some(time::from_millis(1_767_225_600_123)),
            elapsed_ms: 42,
            current_tier: "warm".into(),
            result: State::Completed as i32,
        }
    }

    #[test]
    fn every_message_round_trips_in_both_encodings() {
        let job = MigrationJob {
            job_key: "j".into(),
            object_key: "a/b".into(),
            from_tier: "hot".into(),
            to_tier: "cold".into(),
            generation: 3,
            size_bytes: 1 << 40,
            reason: Some(Reason {
                summary: "idle".into(),
                monthly_cost_usd: [("hot".to_string(), 0.5), ("cold".to_string(), 0.1)].into(),
                ..Default::default()
            }),
            created_at: Some(time::from_millis(1)),
            retry: 2,
        };
        let event = AccessEvent {
            object_key: "x".into(),
            op: Op::Get as i32,
            size_bytes: 9,
            ts: Some(time::from_millis(-5)),
            ..Default::default()
        };
        for enc in [Encoding::Protobuf, Encoding::Json] {
            let bytes = encode(&job, enc);
            assert_eq!(
                decode::<MigrationJob>(&bytes, Some(enc.content_type())).unwrap(),
                job
            );
            assert_eq!(
                decode::<MigrationJob>(&bytes, None).unwrap(),
                job,
                "sniffed {enc}"
            );
            let bytes = encode(&status(), enc);
            assert_eq!(decode::<MigrationStatus>(&bytes, None).unwrap(), status());
            let bytes = encode(&event, enc);
            assert_eq!(decode::<AccessEvent>(&bytes, None).unwrap(), event);
        }
    }

    #[test]
    fn json_is_proto3_canonical() {
        let json: serde_json::Value =
            serde_json::from_slice(&encode(&status(), Encoding::Json)).unwrap();
        assert_eq!(json["state"], "COMPLETED");
        assert_eq!(json["jobKey"].as_str().unwrap().len(), 64);
        // 64-bit integers are strings in proto3 JSON.
        assert_eq!(json["bytes"], u64::MAX.to_string());
        // RFC 3339; pbjson writes the UTC offset as "+00:00" rather than "Z".
        let ts = json["ts"].as_str().unwrap();
        assert!(
            ts == "2026-01-01T00:00:00.123Z" || ts == "2026-01-01T00:00:00.123+00:00",
            "{ts}"
        );
    }

    #[test]
    fn design_example_decodes() {
        let raw = br#"{"objectKey":"logs/2026/app.log","op":"GET","sizeBytes":"1048576"}"#;
        let event: AccessEvent = decode(raw, None).unwrap();
        assert_eq!(event.object_key, "logs/2026/app.log");
        assert_eq!(event.op(), Op::Get);
        assert_eq!(event.size_bytes, 1_048_576);
    }

    #[test]
    fn json_reader_takes_snake_case_numbers_and_unknown_fields() {
        let raw = br#" {"object_key":"a","op":"PUT","size_bytes":12,"ts":"2026-03-01T00:00:00Z","future_field":[1]}"#;
        let event: AccessEvent = decode(raw, Some("application/json; charset=utf-8")).unwrap();
        assert_eq!(event.object_key, "a");
        assert_eq!(event.size_bytes, 12);
        assert_eq!(
            time::to_millis(event.ts.as_ref().unwrap()),
            1_772_323_200_000
        );
    }

    #[test]
    fn protobuf_that_starts_like_spaced_json_still_decodes_without_a_content_type() {
        let event = AccessEvent {
            event_id: "e".repeat(123),
            object_key: "k".into(),
            op: Op::Get as i32,
            ..Default::default()
        };
        let bytes = encode(&event, Encoding::Protobuf);
        assert_eq!(&bytes[..2], b"\n{", "the case: tag 0x0A, length 123");
        assert_eq!(decode::<AccessEvent>(&bytes, None).unwrap(), event);
        // Spaced JSON that is broken, or that parses and does not fit, stays
        // a JSON error.
        for spaced in [&b"\n{\"op\":"[..], b"\n{\"op\":\"FETCH\"}"] {
            assert!(matches!(
                decode::<AccessEvent>(spaced, None),
                Err(DecodeError::Json(_))
            ));
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(matches!(
            decode::<AccessEvent>(b"{not json", None),
            Err(DecodeError::Json(_))
        ));
        assert!(matches!(
            decode::<AccessEvent>(b"\xff\xff\xff", None),
            Err(DecodeError::Protobuf(_))
        ));
        assert!(matches!(
            decode::<AccessEvent>(b"  ", None),
            Err(DecodeError::Empty)
        ));
        assert!(matches!(
            decode::<AccessEvent>(b"{}", Some("text/csv")),
            Err(DecodeError::UnsupportedContentType(_))
        ));
        assert!(matches!(
            decode::<AccessEvent>(br#"{"op":"FETCH"}"#, None),
            Err(DecodeError::Json(_))
        ));
    }
}
