//! Trace files for the simulator (`strata_runtime::trace`), turned into
//! object lifetimes: a PUT of an existing key starts a new version, a
//! DELETE ends the object.

use std::collections::HashMap;

pub use strata_runtime::trace::{Event, Format, Op, Trace, parse_ts, read};

/// One version of one object, from its creation to its end.
#[derive(Debug, Clone, PartialEq)]
pub struct Object {
    pub key: u32,
    pub size: u64,
    pub created_ms: i64,
    /// Created by a PUT in the trace (which pays a PUT request); otherwise
    /// first seen by a read of an existing object.
    pub put: bool,
    /// Reads: (time, bytes).
    pub reads: Vec<(i64, u64)>,
    /// When a DELETE or an overwrite ended it; `None`: alive at the end.
    pub deleted_ms: Option<i64>,
}

/// Splits a trace into object versions, in creation order.
pub fn objects(trace: &Trace) -> Vec<Object> {
    let mut live: HashMap<u32, usize> = HashMap::new();
    let mut out: Vec<Object> = Vec::new();
    for e in &trace.events {
        let current = live.get(&e.key).copied();
        match e.op {
            Op::Put => {
                if let Some(i) = current {
                    out[i].deleted_ms = Some(e.ts_ms);
                }
                live.insert(e.key, out.len());
                out.push(Object {
                    key: e.key,
                    size: e.size,
                    created_ms: e.ts_ms,
                    put: true,
                    reads: Vec::new(),
                    deleted_ms: None,
                });
            }
            Op::Delete => {
                if let Some(i) = live.remove(&e.key) {
                    out[i].deleted_ms = Some(e.ts_ms);
                }
            }
            Op::Get | Op::Head => {
                let i = match current {
                    Some(i) => i,
                    None => {
                        live.insert(e.key, out.len());
                        out.push(Object {
                            key: e.key,
                            size: e.size,
                            created_ms: e.ts_ms,
                            put: false,
                            reads: Vec::new(),
                            deleted_ms: None,
                        });
                        out.len() - 1
                    }
                };
                let o = &mut out[i];
                if o.size == 0 {
                    o.size = e.size;
                }
                if e.op == Op::Get {
                    let bytes = if e.bytes == 0 { o.size } else { e.bytes };
                    o.reads.push((e.ts_ms, bytes));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_deletes_make_lifetimes() {
        let raw = "ts,key,op,size\n0,a,PUT,10\n5,a,GET,10\n9,a,PUT,20\n12,a,DELETE,0\n20,b,GET,7\n";
        let t = read(raw.as_bytes(), Format::Csv, 1.0).unwrap();
        let objs = objects(&t);
        assert_eq!(objs.len(), 3);
        assert_eq!((objs[0].deleted_ms, objs[0].reads.len()), (Some(9), 1));
        assert_eq!((objs[1].size, objs[1].deleted_ms), (20, Some(12)));
        assert!(!objs[2].put);
        assert_eq!(objs[2].reads, vec![(20, 7)]);
    }
}
