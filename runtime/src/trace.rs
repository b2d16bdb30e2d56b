//! Access trace files: the generic CSV or NDJSON of `ts,key,op,size`
//! (design §6) and the IBM Cloud Object Storage trace format
//! (`<ts_ms> REST.GET.OBJECT <id> <size> [<first> <last>]`). policy-svc's
//! simulator replays them without Kafka; ingest-svc's `replay` publishes
//! them as access events.

use std::{
    borrow::Cow,
    collections::HashMap,
    io::{BufRead, BufReader, Read},
    path::{Path, PathBuf},
};

use anyhow::{Context, bail};

/// A trace's file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Csv,
    Ndjson,
    Ibm,
}

impl Format {
    /// The format a file's extension names: `.csv`, `.ndjson` / `.jsonl` /
    /// `.json`, anything else IBM.
    pub fn of_path(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some("csv") => Format::Csv,
            Some("ndjson" | "jsonl" | "json") => Format::Ndjson,
            _ => Format::Ibm,
        }
    }
}

/// The flags that name a trace: the file, its format, its time scale.
#[derive(Debug, Clone, clap::Args)]
pub struct TraceArgs {
    /// The trace file.
    #[arg(long)]
    pub trace: PathBuf,
    /// Its format; by default from the extension (`.csv`, `.ndjson` or
    /// `.jsonl`, anything else IBM).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Stretches the trace's times by this factor from its first event
    /// (30 turns a day into a month).
    #[arg(long, default_value_t = 1.0)]
    pub time_scale: f64,
}

impl TraceArgs {
    /// Reads the whole trace from its file.
    pub fn read(&self) -> anyhow::Result<Trace> {
        self.read_through(|file| file)
    }

    /// Reads the whole trace from its file, the bytes passing through
    /// `wrap` (to hash them as they are read, say).
    pub fn read_through<R: Read>(
        &self,
        wrap: impl FnOnce(std::fs::File) -> R,
    ) -> anyhow::Result<Trace> {
        let path = &self.trace;
        if !(self.time_scale.is_finite() && self.time_scale > 0.0) {
            bail!(
                "--time-scale must be a positive number, not {}",
                self.time_scale
            );
        }
        let format = self.format.unwrap_or_else(|| Format::of_path(path));
        let file =
            std::fs::File::open(path).with_context(|| format!("open trace {}", path.display()))?;
        read(wrap(file), format, self.time_scale)
            .with_context(|| format!("read trace {}", path.display()))
    }
}

/// An access's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Get,
    Put,
    Delete,
    Head,
}

impl Op {
    fn parse(s: &str) -> Option<Op> {
        Some(match s.trim() {
            "GET" | "get" | "REST.GET.OBJECT" => Op::Get,
            "PUT" | "put" | "REST.PUT.OBJECT" | "REST.COPY.OBJECT" | "REST.POST.UPLOAD" => Op::Put,
            "DELETE" | "delete" | "REST.DELETE.OBJECT" => Op::Delete,
            "HEAD" | "head" | "REST.HEAD.OBJECT" => Op::Head,
            _ => return None,
        })
    }
}

/// One access, with its key interned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    pub ts_ms: i64,
    pub key: u32,
    pub op: Op,
    pub size: u64,
    /// Bytes read (a range read reads less than `size`).
    pub bytes: u64,
}

/// A parsed trace: events in time order and the keys they name.
#[derive(Debug, Default, Clone)]
pub struct Trace {
    pub keys: Vec<String>,
    pub events: Vec<Event>,
    /// Lines skipped (unknown operations).
    pub skipped: u64,
}

struct Interner {
    ids: HashMap<String, u32>,
    keys: Vec<String>,
}

impl Interner {
    fn id(&mut self, key: &str) -> u32 {
        if let Some(&id) = self.ids.get(key) {
            return id;
        }
        let id = self.keys.len() as u32;
        self.keys.push(key.to_owned());
        self.ids.insert(key.to_owned(), id);
        id
    }
}

/// The largest time a trace may give, either side of the epoch, in ms:
/// about 3,000 years. Times in other units (µs, ns) of today are beyond
/// it, and within it times, their differences and a replay's arithmetic
/// on them stay far from what an `i64` holds.
pub const MAX_TRACE_TS_MS: i64 = 100_000_000_000_000;

/// Parses a timestamp: integer milliseconds since the epoch (or since the
/// trace's start, as IBM traces count), or RFC 3339.
pub fn parse_ts(raw: &str) -> anyhow::Result<i64> {
    let raw = raw.trim();
    if let Ok(ms) = raw.parse::<i64>() {
        return within_limit(ms as f64, raw);
    }
    if let Ok(ms) = raw.parse::<f64>() {
        return within_limit(ms, raw);
    }
    let t = chrono::DateTime::parse_from_rfc3339(raw)
        .with_context(|| format!("timestamp {raw:?} is neither ms nor RFC 3339"))?;
    within_limit(t.timestamp_millis() as f64, raw)
}

/// `ms` as an `i64`, when it is a finite number within [`MAX_TRACE_TS_MS`].
fn within_limit(ms: f64, raw: &str) -> anyhow::Result<i64> {
    anyhow::ensure!(ms.is_finite(), "timestamp {raw:?} is not a finite number");
    anyhow::ensure!(
        ms.abs() <= MAX_TRACE_TS_MS as f64,
        "timestamp {raw:?} is more than {MAX_TRACE_TS_MS} ms from the epoch (about 3,000 years): \
         is it in milliseconds?"
    );
    Ok(ms as i64)
}

/// Reads a whole trace; `time_scale` stretches times from the first event.
pub fn read(input: impl Read, format: Format, time_scale: f64) -> anyhow::Result<Trace> {
    let mut interner = Interner {
        ids: HashMap::new(),
        keys: Vec::new(),
    };
    let mut trace = Trace::default();
    let mut columns: Option<[usize; 4]> = None;
    for (n, line) in BufReader::with_capacity(1 << 20, input).lines().enumerate() {
        let line = line.with_context(|| format!("read line {}", n + 1))?;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parsed = match format {
            Format::Csv => {
                let Some(cols) = columns else {
                    columns = Some(csv_header(line)?);
                    continue;
                };
                csv_line(line, cols)
            }
            Format::Ndjson => ndjson_line(line),
            Format::Ibm => ibm_line(line),
        };
        let (ts, key, op, size, bytes) = parsed.with_context(|| format!("line {}", n + 1))?;
        anyhow::ensure!(
            size <= strata_proto::validate::MAX_SIZE_BYTES,
            "line {}: size {size} is more than 5 TiB, the largest object a store holds",
            n + 1
        );
        let Some(op) = op else {
            trace.skipped += 1;
            continue;
        };
        let key = interner.id(&key);
        trace.events.push(Event {
            ts_ms: ts,
            key,
            op,
            size,
            bytes: bytes.unwrap_or(size),
        });
    }
    trace.events.sort_by_key(|e| e.ts_ms);
    if let Some(first) = trace.events.first().map(|e| e.ts_ms)
        && time_scale != 1.0
    {
        for e in &mut trace.events {
            let stretched = first as f64 + (e.ts_ms - first) as f64 * time_scale;
            anyhow::ensure!(
                stretched.abs() <= MAX_TRACE_TS_MS as f64,
                "--time-scale {time_scale:?} stretches the trace too far: to {stretched:e} ms, \
                 more than {MAX_TRACE_TS_MS} ms from the epoch"
            );
            e.ts_ms = stretched as i64;
        }
    }
    trace.keys = interner.keys;
    Ok(trace)
}

type Parsed<'a> = (i64, Cow<'a, str>, Option<Op>, u64, Option<u64>);

fn csv_header(line: &str) -> anyhow::Result<[usize; 4]> {
    let names: Vec<&str> = line.split(',').map(str::trim).collect();
    let mut cols = [0; 4];
    for (slot, want) in cols.iter_mut().zip(["ts", "key", "op", "size"]) {
        *slot = names
            .iter()
            .position(|n| *n == want)
            .with_context(|| format!("csv header {line:?} lacks column {want:?}"))?;
    }
    Ok(cols)
}

fn csv_line(line: &str, cols: [usize; 4]) -> anyhow::Result<Parsed<'_>> {
    let fields: Vec<&str> = line.split(',').collect();
    let field = |i: usize| {
        fields
            .get(cols[i])
            .map(|f| f.trim())
            .with_context(|| format!("too few fields in {line:?}"))
    };
    let size = field(3)?;
    let size = if size.is_empty() {
        0
    } else {
        size.parse().context("size")?
    };
    Ok((
        parse_ts(field(0)?)?,
        field(1)?.into(),
        Op::parse(field(2)?),
        size,
        None,
    ))
}

#[derive(serde::Deserialize)]
struct JsonEvent {
    ts: serde_json::Value,
    key: String,
    op: String,
    #[serde(default)]
    size: u64,
}

fn ndjson_line(line: &str) -> anyhow::Result<Parsed<'static>> {
    let e: JsonEvent = serde_json::from_str(line).context("json event")?;
    let ts = match &e.ts {
        serde_json::Value::Number(n) => within_limit(n.as_f64().context("ts")?, &n.to_string())?,
        serde_json::Value::String(s) => parse_ts(s)?,
        other => bail!("ts {other} is neither a number nor a string"),
    };
    Ok((ts, e.key.into(), Op::parse(&e.op), e.size, None))
}

fn ibm_line(line: &str) -> anyhow::Result<Parsed<'_>> {
    let mut parts = line.split_ascii_whitespace();
    let mut next = |what: &str| {
        parts
            .next()
            .with_context(|| format!("no {what} in {line:?}"))
    };
    let ts = parse_ts(next("timestamp")?)?;
    let op = Op::parse(next("operation")?);
    let key = next("object id")?;
    let size = parts.next().map_or(Ok(0), str::parse).context("size")?;
    let range = match (parts.next(), parts.next()) {
        (Some(first), Some(last)) => {
            let (first, last): (u64, u64) = (first.parse()?, last.parse()?);
            // The part of the range within the object: IBM traces write an
            // open-ended range with the largest u64. One that starts past
            // the end (or ends before it starts) counts as a read of one
            // byte: a request with next to nothing read, where 0 would mean
            // the whole object. With no size known, a range past 5 TiB
            // counts as a whole read.
            let last = if size > 0 { last.min(size - 1) } else { last };
            let bytes = last.saturating_sub(first).saturating_add(1);
            Some(if bytes > strata_proto::validate::MAX_SIZE_BYTES {
                size
            } else {
                bytes
            })
        }
        _ => None,
    };
    Ok((ts, key.into(), op, size, range))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_with_rfc3339_and_ms_times() {
        let raw = "key,ts,op,size\na,1000,PUT,10\na,1970-01-01T00:00:02Z,GET,10\nb,3000,LIST,0\n";
        let t = read(raw.as_bytes(), Format::Csv, 1.0).unwrap();
        assert_eq!(t.events.len(), 2);
        assert_eq!(t.events[1].ts_ms, 2000);
        assert_eq!(t.skipped, 1);
    }

    #[test]
    fn a_size_above_five_tib_names_its_line() {
        let five_tib = 5u64 << 40;
        let raw = format!(
            "key,ts,op,size\na,1000,PUT,{five_tib}\na,2000,GET,{}\n",
            five_tib + 1
        );
        let e = format!("{:#}", read(raw.as_bytes(), Format::Csv, 1.0).unwrap_err());
        assert!(e.contains("line 3") && e.contains("5 TiB"), "{e}");
        let huge = format!("1000 REST.GET.OBJECT k {}\n", u64::MAX);
        assert!(read(huge.as_bytes(), Format::Ibm, 1.0).is_err());
    }

    #[test]
    fn a_time_that_is_no_finite_number_names_its_line() {
        for bad in ["inf", "NaN", "-inf"] {
            let raw = format!("key,ts,op,size\na,1000,PUT,10\na,{bad},GET,10\n");
            let e = format!("{:#}", read(raw.as_bytes(), Format::Csv, 1.0).unwrap_err());
            assert!(e.contains("line 3") && e.contains("finite"), "{e}");
        }
    }

    #[test]
    fn times_beyond_three_thousand_years_or_stretched_there_are_refused() {
        let csv = |ts: &str| format!("key,ts,op,size\na,{ts},GET,10\n");
        for bad in ["9223372036854775807", "-9.2e18", "1e300", "100000000000001"] {
            let e = format!(
                "{:#}",
                read(csv(bad).as_bytes(), Format::Csv, 1.0).unwrap_err()
            );
            assert!(
                e.contains("line 2") && e.contains("is it in milliseconds"),
                "{e}"
            );
        }
        let ndjson = r#"{"ts":-1e300,"key":"a","op":"GET"}"#;
        assert!(read(ndjson.as_bytes(), Format::Ndjson, 1.0).is_err());
        let two = "key,ts,op,size\na,0,PUT,10\na,1000,GET,10\n";
        let e = format!(
            "{:#}",
            read(two.as_bytes(), Format::Csv, 1e300).unwrap_err()
        );
        assert!(
            e.contains("--time-scale 1e300 stretches the trace too far"),
            "{e}"
        );
        // The limit itself is fine, and so is a range read to the end of time.
        let edge = "key,ts,op,size\na,-100000000000000,PUT,10\na,100000000000000,GET,10\n";
        assert_eq!(
            read(edge.as_bytes(), Format::Csv, 1.0)
                .unwrap()
                .events
                .len(),
            2
        );
        let ibm = "100 REST.GET.OBJECT abc 1000 0 18446744073709551615\n";
        let t = read(ibm.as_bytes(), Format::Ibm, 1.0).unwrap();
        assert_eq!(t.events[0].bytes, 1000, "read to the object's end");
    }

    #[test]
    fn a_range_read_past_the_end_reads_to_the_end() {
        let ibm = "100 REST.GET.OBJECT a 1000 900 1999\n\
                   200 REST.GET.OBJECT b 0 0 18446744073709551615\n\
                   300 REST.GET.OBJECT c 0 0 99\n\
                   400 REST.GET.OBJECT d 1000 1500 1999\n";
        let t = read(ibm.as_bytes(), Format::Ibm, 1.0).unwrap();
        let read: Vec<(u64, u64)> = t.events.iter().map(|e| (e.bytes, e.size)).collect();
        // a's last 100 bytes; b's size unknown and its range open: a whole
        // read (0 of 0); c's size unknown, its range kept; d's range past
        // its end: one byte.
        assert_eq!(read, [(100, 1000), (0, 0), (100, 0), (1, 1000)]);
    }

    #[test]
    fn ndjson_and_ibm_lines() {
        let raw = r#"{"ts":"1970-01-01T00:00:01Z","key":"k","op":"GET","size":5}
{"ts":2000,"key":"k","op":"DELETE"}"#;
        let t = read(raw.as_bytes(), Format::Ndjson, 2.0).unwrap();
        assert_eq!(t.events[1].ts_ms, 3000, "stretched from the first event");
        let ibm = "100 REST.GET.OBJECT abc 1000 0 99\n200 REST.PUT.OBJECT abd 50\n";
        let t = read(ibm.as_bytes(), Format::Ibm, 1.0).unwrap();
        assert_eq!((t.events[0].bytes, t.events[0].size), (100, 1000));
        assert_eq!(t.keys, vec!["abc", "abd"]);
    }

    #[test]
    fn formats_follow_the_extension() {
        for (name, format) in [
            ("a.csv", Format::Csv),
            ("a.jsonl", Format::Ndjson),
            ("a.ndjson", Format::Ndjson),
            ("trace.txt", Format::Ibm),
        ] {
            assert_eq!(Format::of_path(Path::new(name)), format, "{name}");
        }
    }
}
