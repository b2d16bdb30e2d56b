//! Mutated and random values through the consumers' first steps, decode and
//! validate: every outcome is a value or an error, never a panic; and what
//! passes validation encodes again, in both encodings, to itself.
//!
//! The values start from well-formed messages of each topic, in protobuf and
//! JSON, and go through random edits (bytes flipped, inserted, cut, spliced,
//! JSON tokens dropped in), from a fixed seed so that a failure repeats.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use strata_proto::codec::{self, DecodeError, Encoding, WireMessage};
use strata_proto::{
    AccessEvent, MigrationJob, MigrationStatus, Op, Reason, State, job_key, pb, time, validate,
};

const ROUNDS: usize = 20_000;

/// Fragments that sit near the edges of JSON and of proto3 JSON's mapping.
const TOKENS: &[&[u8]] = &[
    b"\"",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"null",
    b"-1",
    b"1e400",
    b"-0",
    b"NaN",
    b"\"NaN\"",
    b"\"Infinity\"",
    b"18446744073709551616",
    b"\"18446744073709551615\"",
    b"9223372036854775807",
    b"\"\\u0000\"",
    b"\"\\ud800\"",
    b"\"9999-12-31T23:59:59Z\"",
    b"\"0000-01-01T00:00:00Z\"",
    b"\"1970-01-01T00:00:00.999999999999Z\"",
    b"\"OP_GET\"",
    b"\"STATE_COMPLETED\"",
    b"99",
    b"\xff",
    b"\x00",
    b"\x08\xff\xff\xff\xff\x0f",
];

fn event() -> AccessEvent {
    AccessEvent {
        event_id: "e-1".into(),
        object_key: "logs/2026/app.log".into(),
        op: Op::Get as i32,
        size_bytes: 4096,
        ts: Some(time::from_millis(1_780_000_000_000)),
        tier: "hot".into(),
        bytes_read: 4096,
        source: "fuzz".into(),
    }
}

fn job() -> MigrationJob {
    MigrationJob {
        job_key: job_key("logs/2026/app.log", "hot", "warm", 3),
        object_key: "logs/2026/app.log".into(),
        from_tier: "hot".into(),
        to_tier: "warm".into(),
        generation: 3,
        size_bytes: 4096,
        reason: Some(Reason {
            summary: "cold".into(),
            predicted_reads_30d: 0.25,
            monthly_cost_usd: [("hot".to_owned(), 0.023), ("warm".to_owned(), 0.0125)].into(),
            move_cost_usd: 0.0001,
            break_even_days: 12.5,
            rule: "cost".into(),
        }),
        created_at: Some(time::from_millis(1_780_000_000_000)),
        retry: 0,
    }
}

fn status() -> MigrationStatus {
    MigrationStatus {
        job_key: job_key("logs/2026/app.log", "hot", "warm", 3),
        object_key: "logs/2026/app.log".into(),
        state: State::Completed as i32,
        from_tier: "hot".into(),
        to_tier: "warm".into(),
        generation: 4,
        sha256: "ab".repeat(32),
        bytes: 4096,
        attempt: 1,
        error: Some(pb::Error {
            class: "transient".into(),
            message: "retried".into(),
        }),
        ts: Some(time::from_millis(1_780_000_000_000)),
        elapsed_ms: 12,
        current_tier: "warm".into(),
        result: State::Unspecified as i32,
    }
}

/// One random edit of `value`.
fn mutate(rng: &mut StdRng, value: &mut Vec<u8>) {
    let at = |rng: &mut StdRng, v: &Vec<u8>| rng.random_range(0..=v.len());
    match rng.random_range(0..6) {
        0 if !value.is_empty() => {
            let i = rng.random_range(0..value.len());
            value[i] ^= 1 << rng.random_range(0..8);
        }
        1 => {
            let i = at(rng, value);
            value.insert(i, rng.random());
        }
        2 if !value.is_empty() => {
            let i = rng.random_range(0..value.len());
            let j = rng.random_range(i..=value.len().min(i + 8));
            value.drain(i..j);
        }
        3 => {
            let i = at(rng, value);
            value.truncate(i);
        }
        4 if !value.is_empty() => {
            let i = rng.random_range(0..value.len());
            let j = rng.random_range(i..=value.len());
            let copy = value[i..j].to_vec();
            let k = at(rng, value);
            value.splice(k..k, copy);
        }
        _ => {
            let token = TOKENS[rng.random_range(0..TOKENS.len())];
            let i = at(rng, value);
            value.splice(i..i, token.iter().copied());
        }
    }
}

#[derive(Default)]
struct Tally {
    decoded: usize,
    valid: usize,
    refused: usize,
}

/// Decodes `value` as each consumer may (by header, by sniffing) and, for
/// what decodes, validates and checks both encodings round-trip.
fn exercise<T: WireMessage + std::fmt::Debug>(
    value: &[u8],
    check: fn(&T) -> Result<(), validate::ValidationError>,
    tally: &mut Tally,
) {
    for content_type in [
        None,
        Some("application/json"),
        Some("application/x-protobuf"),
    ] {
        match codec::decode::<T>(value, content_type) {
            Ok(msg) => {
                tally.decoded += 1;
                if check(&msg).is_err() {
                    tally.refused += 1;
                    continue;
                }
                tally.valid += 1;
                // Compared as JSON trees, not as messages (a NaN in a job's
                // reason is not equal to itself) nor as bytes (a map's
                // entries come in any order).
                let tree = |m: &T| serde_json::to_value(m).ok();
                for encoding in [Encoding::Json, Encoding::Protobuf] {
                    let bytes = codec::encode(&msg, encoding);
                    let again: Result<T, DecodeError> = codec::decode_as(&bytes, encoding);
                    assert!(
                        !bytes.is_empty()
                            && tree(&msg).is_some()
                            && again.as_ref().ok().map(tree) == Some(tree(&msg)),
                        "{encoding:?} round trip of {msg:?}, decoded from {value:?}: \
                         encoded {:?}, decoded {again:?}",
                        String::from_utf8_lossy(&bytes),
                    );
                }
            }
            Err(_) => tally.refused += 1,
        }
    }
}

fn run<T: WireMessage + std::fmt::Debug>(
    seed_msg: T,
    check: fn(&T) -> Result<(), validate::ValidationError>,
    seed: u64,
) -> Tally {
    let seeds = [
        codec::encode(&seed_msg, Encoding::Json),
        codec::encode(&seed_msg, Encoding::Protobuf),
    ];
    let mut rng = StdRng::seed_from_u64(seed);
    let mut tally = Tally::default();
    for round in 0..ROUNDS {
        let mut value = if round % 10 == 9 {
            // Sometimes nothing like a message at all.
            (0..rng.random_range(0..64)).map(|_| rng.random()).collect()
        } else {
            seeds[round % 2].clone()
        };
        for _ in 0..rng.random_range(1..=4) {
            mutate(&mut rng, &mut value);
        }
        exercise(&value, check, &mut tally);
    }
    tally
}

fn assert_both_paths(what: &str, tally: &Tally) {
    // The edits must leave some values valid and spoil others, or the
    // rounds above test only one side.
    assert!(
        tally.valid > ROUNDS / 20 && tally.refused > ROUNDS / 20,
        "{what}: {} decoded, {} valid, {} refused",
        tally.decoded,
        tally.valid,
        tally.refused
    );
}

#[test]
fn access_events_never_panic_and_valid_ones_round_trip() {
    let tally = run(event(), validate::access_event, 1);
    assert_both_paths("access events", &tally);
}

#[test]
fn migration_jobs_never_panic_and_valid_ones_round_trip() {
    let tally = run(job(), validate::migration_job, 2);
    assert_both_paths("migration jobs", &tally);
}

#[test]
fn migration_statuses_never_panic_and_valid_ones_round_trip() {
    let tally = run(status(), validate::migration_status, 3);
    assert_both_paths("migration statuses", &tally);
}
