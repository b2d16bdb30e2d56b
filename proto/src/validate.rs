//! Input validation (design §7). Every consumer and the HTTP surface run
//! these before acting; a value that fails goes to the dead-letter topic or
//! gets a 4xx naming the field.

use pbjson_types::Timestamp;

use crate::{AccessEvent, MigrationJob, MigrationStatus, Op, State, job::retry_job_key, time};

/// Longest object key accepted, in bytes of UTF-8.
pub const MAX_KEY_BYTES: usize = 1024;
/// Largest object accepted: 5 TiB, the S3 object limit.
pub const MAX_SIZE_BYTES: u64 = 5 << 40;
/// Largest catalog generation a job may name: 2^62, so that the mover's
/// SQLite (signed 64-bit integers) counts the switches after it without
/// overflowing.
pub const MAX_GENERATION: u64 = 1 << 62;
/// Longest `event_id` and `source` of an access event, in bytes: with the
/// key's limit, an event stays far below any broker's message size limit.
pub const MAX_LABEL_BYTES: usize = 256;
/// Earliest sane event time: 2000-01-01T00:00:00Z, in ms.
pub const MIN_TS_MS: i64 = 946_684_800_000;
/// Latest sane event time: 2100-01-01T00:00:00Z, in ms.
pub const MAX_TS_MS: i64 = 4_102_444_800_000;

/// A field that failed validation, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    /// The field's proto name, e.g. `object_key`.
    pub field: &'static str,
    /// What is wrong with it, for people.
    pub message: String,
}

impl ValidationError {
    fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// Checks that `key` can name an object in any tier and never a path outside
/// the tier's root: 1 to 1024 bytes, no control characters, no leading `/`,
/// no empty, `.` or `..` segment.
pub fn object_key(key: &str) -> Result<(), ValidationError> {
    let err = |m: &str| Err(ValidationError::new("object_key", m));
    if key.is_empty() {
        return err("must not be empty");
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(ValidationError::new(
            "object_key",
            format!(
                "is {} bytes, more than the {MAX_KEY_BYTES} allowed",
                key.len()
            ),
        ));
    }
    if key.chars().any(char::is_control) {
        return err("must not contain NUL or control characters");
    }
    if key.starts_with('/') {
        return err("must not start with '/'");
    }
    if key.contains('\\') {
        return err("must not contain '\\'");
    }
    for segment in key.split('/') {
        match segment {
            "" => return err("must not contain an empty segment ('//' or a trailing '/')"),
            "." | ".." => return err("must not contain a '.' or '..' segment"),
            _ => {}
        }
    }
    Ok(())
}

/// Checks a tier name: 1 to 64 characters of `[A-Za-z0-9_-]`.
pub fn tier_name(field: &'static str, name: &str) -> Result<(), ValidationError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        // Quote a long name only in part: the error goes back to whoever
        // sent it, in a dead letter's header or an HTTP body.
        let shown = match name.char_indices().nth(64) {
            Some((end, _)) => format!("{:?}... ({} bytes)", &name[..end], name.len()),
            None => format!("{name:?}"),
        };
        Err(ValidationError::new(
            field,
            format!("{shown} is not a tier name ([A-Za-z0-9_-], 1 to 64)"),
        ))
    }
}

/// Checks that a time, when given, lies between 2000 and 2100 (which also
/// keeps it within what proto3 JSON can write).
fn sane_time(field: &'static str, ts: Option<&Timestamp>) -> Result<(), ValidationError> {
    if let Some(ts) = ts {
        let ms = time::to_millis(ts);
        if !(MIN_TS_MS..MAX_TS_MS).contains(&ms) || !(0..1_000_000_000).contains(&ts.nanos) {
            return Err(ValidationError::new(
                field,
                "must lie between 2000-01-01 and 2100-01-01",
            ));
        }
    }
    Ok(())
}

/// Checks an access event. A missing `ts` is allowed: consumers default it
/// to the Kafka record's timestamp.
pub fn access_event(event: &AccessEvent) -> Result<(), ValidationError> {
    object_key(&event.object_key)?;
    match Op::try_from(event.op) {
        Ok(Op::Unspecified) | Err(_) => {
            return Err(ValidationError::new(
                "op",
                "must be one of GET, PUT, DELETE, HEAD, INVENTORY",
            ));
        }
        Ok(_) => {}
    }
    if event.size_bytes > MAX_SIZE_BYTES {
        return Err(ValidationError::new("size_bytes", "is more than 5 TiB"));
    }
    sane_time("ts", event.ts.as_ref())?;
    if !event.tier.is_empty() {
        tier_name("tier", &event.tier)?;
    }
    if event.bytes_read > MAX_SIZE_BYTES {
        return Err(ValidationError::new("bytes_read", "is more than 5 TiB"));
    }
    for (field, value) in [("event_id", &event.event_id), ("source", &event.source)] {
        if value.len() > MAX_LABEL_BYTES {
            return Err(ValidationError::new(
                field,
                format!("is {} bytes; at most {MAX_LABEL_BYTES}", value.len()),
            ));
        }
    }
    Ok(())
}

/// Checks a migration job. An empty `job_key` (a job written by hand) is
/// allowed and should be filled with [`retry_job_key`]; a given one must
/// match it.
pub fn migration_job(job: &MigrationJob) -> Result<(), ValidationError> {
    object_key(&job.object_key)?;
    tier_name("from_tier", &job.from_tier)?;
    tier_name("to_tier", &job.to_tier)?;
    if job.from_tier == job.to_tier {
        return Err(ValidationError::new(
            "to_tier",
            "must differ from from_tier",
        ));
    }
    if job.size_bytes > MAX_SIZE_BYTES {
        return Err(ValidationError::new("size_bytes", "is more than 5 TiB"));
    }
    sane_time("created_at", job.created_at.as_ref())?;
    if job.generation > MAX_GENERATION {
        return Err(ValidationError::new(
            "generation",
            format!("is more than {MAX_GENERATION} (2^62)"),
        ));
    }
    if !job.job_key.is_empty() {
        let expected = retry_job_key(
            &job.object_key,
            &job.from_tier,
            &job.to_tier,
            job.generation,
            job.retry,
        );
        if job.job_key != expected {
            let what = if job.retry == 0 {
                "sha256(object_key, from_tier, to_tier, generation)"
            } else {
                "the key of this retry (see retry_job_key)"
            };
            return Err(ValidationError::new(
                "job_key",
                format!("does not match {what} = {expected}"),
            ));
        }
    }
    Ok(())
}

/// Checks what a migration status says of where its object is, the part a
/// consumer acts on: a status that places the object (`SWITCHED`,
/// `COMPLETED`, or a `DUPLICATE` of either) names its tier, generation and
/// size; a `FAILED` or `REJECTED` one with a `current_tier` names where
/// the catalog has it (and its generation). Its `state` (and a
/// `DUPLICATE`'s `result`) is one this version knows, and its `ts` is
/// sane. Other fields are the job's as the mover received it: a `REJECTED`
/// status echoes a bad job's fields, and is well-formed as a report. A
/// generation may exceed [`MAX_GENERATION`] by the two steps a job of that
/// generation can take: its switch, and the switch's undoing when its
/// source was written again.
pub fn migration_status(status: &MigrationStatus) -> Result<(), ValidationError> {
    object_key(&status.object_key)?;
    let known = |field, value: i32| {
        State::try_from(value).map_err(|_| {
            ValidationError::new(field, format!("{value} is not a state of a migration"))
        })
    };
    let result = known("result", status.result)?;
    let state = match known("state", status.state)? {
        State::Unspecified => {
            return Err(ValidationError::new("state", "must be given"));
        }
        State::Duplicate => result,
        other => other,
    };
    sane_time("ts", status.ts.as_ref())?;
    let generation = || {
        if status.generation > MAX_GENERATION + 2 {
            return Err(ValidationError::new(
                "generation",
                format!("is more than {MAX_GENERATION} + 2 (2^62 + 2)"),
            ));
        }
        Ok(())
    };
    match state {
        State::Switched | State::Completed => {
            tier_name("to_tier", &status.to_tier)?;
            generation()?;
            if status.bytes > MAX_SIZE_BYTES {
                return Err(ValidationError::new("bytes", "is more than 5 TiB"));
            }
        }
        State::Failed | State::Rejected if !status.current_tier.is_empty() => {
            tier_name("current_tier", &status.current_tier)?;
            generation()?;
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job_key;

    #[test]
    fn ordinary_keys_pass() {
        for key in [
            "a",
            "logs/2026/app.log",
            "dir/.hidden",
            "a..b/c",
            "ünïcode/ключ",
            "x".repeat(1024).as_str(),
        ] {
            assert_eq!(object_key(key), Ok(()), "{key:?}");
        }
    }

    #[test]
    fn hostile_keys_are_refused() {
        let long = "k".repeat(10 * 1024);
        for key in [
            "",
            "/etc/passwd",
            "..",
            "../x",
            "a/../../b",
            "a/./b",
            ".",
            "a/..",
            "a//b",
            "a/",
            "nul\0byte",
            "line\nbreak",
            "tab\tkey",
            "esc\u{1b}",
            "win\\..\\x",
            long.as_str(),
        ] {
            let err = object_key(key).expect_err(key);
            assert_eq!(err.field, "object_key");
        }
    }

    #[test]
    fn access_event_fields_are_checked() {
        let good = AccessEvent {
            object_key: "a".into(),
            op: Op::Get as i32,
            ..Default::default()
        };
        assert_eq!(access_event(&good), Ok(()));
        let field = |e: AccessEvent| access_event(&e).unwrap_err().field;
        assert_eq!(
            field(AccessEvent {
                op: 0,
                ..good.clone()
            }),
            "op"
        );
        assert_eq!(
            field(AccessEvent {
                op: 99,
                ..good.clone()
            }),
            "op"
        );
        assert_eq!(
            field(AccessEvent {
                size_bytes: MAX_SIZE_BYTES + 1,
                ..good.clone()
            }),
            "size_bytes"
        );
        assert_eq!(
            field(AccessEvent {
                ts: Some(time::from_millis(0)),
                ..good.clone()
            }),
            "ts"
        );
        assert_eq!(
            field(AccessEvent {
                tier: "no/slash".into(),
                ..good.clone()
            }),
            "tier"
        );
        assert_eq!(
            field(AccessEvent {
                object_key: "../x".into(),
                ..good
            }),
            "object_key"
        );
    }

    #[test]
    fn an_event_id_or_source_over_256_bytes_is_refused() {
        let mut event = AccessEvent {
            object_key: "k".into(),
            op: Op::Get as i32,
            event_id: "e".repeat(MAX_LABEL_BYTES),
            source: "s".repeat(MAX_LABEL_BYTES),
            ..Default::default()
        };
        assert_eq!(access_event(&event), Ok(()));
        event.source.push('s');
        assert_eq!(access_event(&event).unwrap_err().field, "source");
        event.event_id.push('e');
        assert_eq!(access_event(&event).unwrap_err().field, "event_id");
    }

    #[test]
    fn a_bad_tier_name_is_quoted_in_part_only() {
        let short = tier_name("tier", "a b").unwrap_err().message;
        assert!(short.starts_with("\"a b\" is not a tier name"), "{short}");
        // 200 KB of a name must not make a 200 KB error (it would make its
        // dead letter too large to send).
        let huge = "\u{1}é".repeat(100_000);
        let message = tier_name("tier", &huge).unwrap_err().message;
        assert!(message.len() < 500, "{} bytes", message.len());
        assert!(message.contains("(300000 bytes)"), "{message}");
    }

    #[test]
    fn migration_job_key_must_match_when_given() {
        let mut job = MigrationJob {
            object_key: "a".into(),
            from_tier: "hot".into(),
            to_tier: "warm".into(),
            generation: 2,
            ..Default::default()
        };
        assert_eq!(migration_job(&job), Ok(()));
        job.job_key = job_key("a", "hot", "warm", 2);
        assert_eq!(migration_job(&job), Ok(()));
        job.job_key = job_key("a", "hot", "warm", 1);
        assert_eq!(migration_job(&job).unwrap_err().field, "job_key");
        // A retry carries its own key; the decision's key no longer fits.
        job.retry = 2;
        job.job_key = job_key("a", "hot", "warm", 2);
        assert_eq!(migration_job(&job).unwrap_err().field, "job_key");
        job.job_key = crate::retry_job_key("a", "hot", "warm", 2, 2);
        assert_eq!(migration_job(&job), Ok(()));
        job.job_key.clear();
        job.created_at = Some(time::from_millis(MAX_TS_MS));
        assert_eq!(migration_job(&job).unwrap_err().field, "created_at");
        job.created_at = Some(time::from_millis(MIN_TS_MS));
        assert_eq!(migration_job(&job), Ok(()));
        job.to_tier = "hot".into();
        assert_eq!(migration_job(&job).unwrap_err().field, "to_tier");
    }

    #[test]
    fn a_generation_beyond_2_pow_62_is_refused() {
        let mut job = MigrationJob {
            object_key: "a".into(),
            from_tier: "hot".into(),
            to_tier: "warm".into(),
            generation: MAX_GENERATION,
            ..Default::default()
        };
        assert_eq!(migration_job(&job), Ok(()));
        for generation in [MAX_GENERATION + 1, i64::MAX as u64, u64::MAX] {
            job.generation = generation;
            assert_eq!(migration_job(&job).unwrap_err().field, "generation");
        }
    }

    #[test]
    fn a_status_must_say_sanely_where_it_put_the_object() {
        let completed = MigrationStatus {
            object_key: "a".into(),
            state: State::Completed as i32,
            to_tier: "warm".into(),
            generation: MAX_GENERATION + 1,
            bytes: MAX_SIZE_BYTES,
            ..Default::default()
        };
        assert_eq!(migration_status(&completed), Ok(()));
        let bad = |f: fn(&mut MigrationStatus)| {
            let mut s = completed.clone();
            f(&mut s);
            migration_status(&s).unwrap_err().field
        };
        assert_eq!(bad(|s| s.bytes = MAX_SIZE_BYTES + 1), "bytes");
        assert_eq!(bad(|s| s.generation = u64::MAX), "generation");
        // A switch undone (its source written again) adds one more.
        let undone = MigrationStatus {
            state: State::Failed as i32,
            current_tier: "hot".into(),
            generation: MAX_GENERATION + 2,
            ..completed.clone()
        };
        assert_eq!(migration_status(&undone), Ok(()));
        assert_eq!(bad(|s| s.generation = MAX_GENERATION + 3), "generation");
        assert_eq!(bad(|s| s.to_tier.clear()), "to_tier");
        assert_eq!(bad(|s| s.object_key = "../x".into()), "object_key");
        // A DUPLICATE of a completed job places the object too.
        assert_eq!(
            bad(|s| {
                s.state = State::Duplicate as i32;
                s.result = State::Completed as i32;
                s.to_tier = "no tier".into();
            }),
            "to_tier"
        );
        assert_eq!(
            bad(|s| {
                s.state = State::Failed as i32;
                s.current_tier = "/".into();
            }),
            "current_tier"
        );
        // A state this version does not know, or none, says nothing a
        // consumer can act on (and proto3 JSON cannot write it).
        assert_eq!(bad(|s| s.state = 99), "state");
        assert_eq!(bad(|s| s.state = State::Unspecified as i32), "state");
        assert_eq!(bad(|s| s.result = -1), "result");
        assert_eq!(
            bad(|s| s.ts = Some(Timestamp {
                seconds: i64::MAX,
                nanos: 0
            })),
            "ts"
        );
        // A REJECTED status reports a bad job as the mover received it.
        let rejected = MigrationStatus {
            state: State::Rejected as i32,
            to_tier: String::new(),
            generation: u64::MAX,
            bytes: u64::MAX,
            ..completed
        };
        assert_eq!(migration_status(&rejected), Ok(()));
    }
}
