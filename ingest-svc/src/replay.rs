//! Replays an access trace file (CSV, NDJSON or the IBM Cloud Object Storage
//! format, as `policy-svc simulate` reads them: `strata_runtime::trace`) into
//! `access_events`, so that the daemons learn a recorded workload.
//!
//! - Event times keep their spacing (stretched by `--time-scale`) and are
//!   shifted so that the trace's last event falls at the moment the replay
//!   starts: the trace becomes the recent past, and policy-svc decides as
//!   of now. `--keep-times` publishes the times as written instead.
//! - Every event gets an id made of the SHA-256 of the trace (with its key
//!   prefix and time scale) and the event's place in it, and policy-svc
//!   drops ids it has seen: a replay cut short (Ctrl-C, a crash) and run
//!   again counts no event twice.
//! - A line that cannot be read (a time out of range, a size past 5 TiB)
//!   fails the whole trace before anything is published, naming the line.
//!   Events that read but fail validation (a key that could name a path
//!   outside a tier, a time the shift puts before 2000) are skipped and
//!   counted, never published.

use std::{cell::RefCell, io, time::Duration};

use sha2::{Digest, Sha256};
use strata_proto::{AccessEvent, Op, codec::Encoding, time, validate};
use strata_runtime::{
    kafka::Publisher,
    trace::{self, TraceArgs},
};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The replay's settings (`ingest-svc replay --help`).
#[derive(Debug, Clone, clap::Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub trace: TraceArgs,
    /// Publishes the event times as written instead of ending the trace now.
    #[arg(long)]
    pub keep_times: bool,
    /// Prepended to every key, with a `/` (e.g. `trace` puts `a.bin` at
    /// `trace/a.bin`).
    #[arg(long)]
    pub prefix: Option<String>,
    /// Events per second at most; 0 publishes as fast as the broker takes them.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
}

/// What a replay did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Replayed {
    /// Events published (and acknowledged by the broker).
    pub published: u64,
    /// Events that failed validation.
    pub invalid: u64,
    /// Lines whose operation a trace does not replay (LIST, ...).
    pub skipped: u64,
    /// Whether `stop` ended the replay before the last event.
    pub stopped: bool,
}

/// Events published at once; each batch is acknowledged before the next.
const BATCH: usize = 256;

/// A trace read whole, and the id its events' ids begin with.
pub struct Loaded {
    trace: trace::Trace,
    run_id: String,
}

impl Loaded {
    /// Reads the trace `args` names, once, hashing it as it goes: the part
    /// of a replay that can fail on the file, done before anything is
    /// published. The run id is the first 16 hex digits of the SHA-256 of
    /// the file and of what makes its events other events (the key prefix,
    /// the time scale): the same replay, the same ids.
    pub fn of(args: &ReplayArgs) -> anyhow::Result<Self> {
        let hasher = RefCell::new(Sha256::new());
        let trace = args.trace.read_through(|file| Hashing {
            inner: file,
            hasher: &hasher,
        })?;
        let mut hasher = hasher.into_inner();
        hasher.update(args.prefix.as_deref().unwrap_or_default());
        hasher.update([0]);
        hasher.update(args.trace.time_scale.to_le_bytes());
        Ok(Loaded {
            trace,
            run_id: hex::encode(&hasher.finalize()[..8]),
        })
    }
}

/// A reader that hashes what it reads.
struct Hashing<'a, R> {
    inner: R,
    hasher: &'a RefCell<Sha256>,
}

impl<R: io::Read> io::Read for Hashing<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.borrow_mut().update(&buf[..n]);
        Ok(n)
    }
}

/// Publishes the events of `loaded` (the trace `args` names) on `topic`, as
/// of `now_ms`, until done or `stop`. Each batch is acknowledged before the
/// next is sent.
pub async fn run(
    args: &ReplayArgs,
    loaded: &Loaded,
    publisher: &Publisher,
    topic: &str,
    encoding: Encoding,
    now_ms: i64,
    stop: &CancellationToken,
) -> anyhow::Result<Replayed> {
    let Loaded { trace, run_id } = loaded;
    let shift = match (args.keep_times, trace.events.last()) {
        (false, Some(last)) => now_ms - last.ts_ms,
        _ => 0,
    };
    let mut done = Replayed {
        skipped: trace.skipped,
        ..Replayed::default()
    };
    let started = Instant::now();
    // At a low rate, batches as small as a second's events.
    let batch_len = match args.rate {
        0 => BATCH,
        rate => usize::try_from(rate).unwrap_or(BATCH).clamp(1, BATCH),
    };
    let mut batch = Vec::with_capacity(batch_len);
    for (n, e) in trace.events.iter().enumerate() {
        let key = &trace.keys[e.key as usize];
        let event = AccessEvent {
            object_key: match &args.prefix {
                Some(prefix) => format!("{}/{key}", prefix.trim_end_matches('/')),
                None => key.clone(),
            },
            op: match e.op {
                trace::Op::Get => Op::Get,
                trace::Op::Put => Op::Put,
                trace::Op::Delete => Op::Delete,
                trace::Op::Head => Op::Head,
            } as i32,
            size_bytes: e.size,
            bytes_read: if e.op == trace::Op::Get && e.bytes != e.size {
                e.bytes
            } else {
                0
            },
            ts: Some(time::from_millis(e.ts_ms.saturating_add(shift))),
            event_id: format!("replay-{run_id}-{n}"),
            source: "replay".into(),
            ..Default::default()
        };
        if let Err(error) = validate::access_event(&event) {
            done.invalid += 1;
            if done.invalid <= 5 {
                tracing::warn!(event = n, key = %event.object_key, %error, "trace event skipped");
            }
            continue;
        }
        batch.push(event);
        if batch.len() == batch_len {
            if stop.is_cancelled() {
                done.stopped = true;
                return Ok(done);
            }
            done.published += publish(publisher, topic, encoding, &mut batch).await?;
            pace(args.rate, done.published, started).await;
        }
    }
    if stop.is_cancelled() {
        done.stopped = true;
        return Ok(done);
    }
    done.published += publish(publisher, topic, encoding, &mut batch).await?;
    Ok(done)
}

/// Publishes and empties `batch`; returns how many the broker acknowledged.
async fn publish(
    publisher: &Publisher,
    topic: &str,
    encoding: Encoding,
    batch: &mut Vec<AccessEvent>,
) -> anyhow::Result<u64> {
    let sends = batch
        .iter()
        .map(|e| publisher.publish(topic, &e.object_key, e, encoding));
    futures::future::try_join_all(sends).await?;
    let n = batch.len() as u64;
    metrics::counter!("strata_ingest_events_total", "source" => "replay").increment(n);
    batch.clear();
    Ok(n)
}

/// Waits until `published` events at `rate` per second are due.
pub(crate) async fn pace(rate: u64, published: u64, started: Instant) {
    if rate == 0 {
        return;
    }
    let due = started + Duration::from_secs_f64(published as f64 / rate as f64);
    tokio::time::sleep_until(due).await;
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    const DAY_MS: i64 = 86_400_000;

    fn args(trace: PathBuf) -> ReplayArgs {
        ReplayArgs {
            trace: TraceArgs {
                trace,
                format: None,
                time_scale: 1.0,
            },
            keep_times: false,
            prefix: Some("t".into()),
            rate: 0,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_trace_is_published_ending_now_with_stable_ids() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trace.csv");
        // Days 0, 1 and 3 of 2021; a LIST no replay knows; a key that
        // would leave its tier; a range read of 100 bytes.
        std::fs::write(
            &path,
            "ts,key,op,size\n\
             1609459200000,a.bin,PUT,1000\n\
             1609545600000,a.bin,GET,1000\n\
             1609545600000,x,LIST,0\n\
             1609545600000,../escape,GET,5\n\
             1609718400000,a.bin,DELETE,0\n",
        )
        .unwrap();
        let ibm = dir.path().join("ibm.txt");
        std::fs::write(&ibm, "1000 REST.GET.OBJECT obj 1000 0 99\n").unwrap();

        let kafka = crate::testing::MockKafka::start();
        let (brokers, publisher) = (&kafka.brokers, &kafka.publisher);
        let stop = CancellationToken::new();
        let now = 1_800_000_000_000;
        let replay = |args: ReplayArgs, encoding| {
            let stop = stop.clone();
            async move {
                let loaded = Loaded::of(&args).unwrap();
                run(
                    &args,
                    &loaded,
                    publisher,
                    "access_events",
                    encoding,
                    now,
                    &stop,
                )
                .await
                .unwrap()
            }
        };
        let done = replay(args(path.clone()), Encoding::Protobuf).await;
        assert_eq!(
            done,
            Replayed {
                published: 3,
                invalid: 1,
                skipped: 1,
                stopped: false
            }
        );
        let ranged = replay(args(ibm), Encoding::Json).await;
        assert_eq!(ranged.published, 1);

        let events = crate::testing::consume(brokers, "access_events", "replay-reader", 4).await;
        let seen: Vec<_> = events
            .iter()
            .map(|e| {
                (
                    e.object_key.as_str(),
                    e.op(),
                    time::to_millis(e.ts.as_ref().unwrap()),
                )
            })
            .collect();
        // The spacing kept, the last event now.
        assert_eq!(
            seen[..3],
            [
                ("t/a.bin", Op::Put, now - 3 * DAY_MS),
                ("t/a.bin", Op::Get, now - 2 * DAY_MS),
                ("t/a.bin", Op::Delete, now),
            ]
        );
        assert_eq!(
            (events[3].object_key.as_str(), events[3].bytes_read),
            ("t/obj", 100)
        );
        for e in &events {
            assert_eq!(validate::access_event(e), Ok(()));
            assert_eq!(e.source, "replay");
        }

        // Run again, with times as written: the same ids (policy-svc counts
        // each once), the trace's own times.
        let again = ReplayArgs {
            keep_times: true,
            ..args(path)
        };
        replay(again.clone(), Encoding::Protobuf).await;
        let twice = crate::testing::consume(brokers, "access_events", "replay-reader-2", 7).await;
        let ids = |es: &[AccessEvent]| es.iter().map(|e| e.event_id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&twice[4..]), ids(&events[..3]));
        assert_eq!(
            time::to_millis(twice[4].ts.as_ref().unwrap()),
            1_609_459_200_000
        );

        // Under another prefix, or stretched, they are other events.
        let moved = ReplayArgs {
            prefix: Some("u".into()),
            ..again.clone()
        };
        let mut stretched = again.clone();
        stretched.trace.time_scale = 2.0;
        let id = Loaded::of(&again).unwrap().run_id;
        assert_ne!(Loaded::of(&moved).unwrap().run_id, id);
        assert_ne!(Loaded::of(&stretched).unwrap().run_id, id);

        // Stopped: nothing more is sent.
        stop.cancel();
        let none = replay(again.clone(), Encoding::Protobuf).await;
        assert_eq!((none.published, none.stopped), (0, true));
    }
}
