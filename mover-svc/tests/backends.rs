//! One backend-generic suite for the move protocol, run on `file://`,
//! `memory://` and a real S3-compatible server (moto, started by the test):
//! single-PUT and multipart moves, a destination that reads back corrupted,
//! a source that changes during the copy, hostile keys. The protocol runs
//! for real (`Mover::handle`); statuses go to librdkafka's mock cluster.
//!
//! The S3 leg needs moto (`pip install 'moto[server]'`, which scripts/test.sh
//! does); `STRATA_TEST_PYTHON` names the Python that has it (default python3).

#![allow(clippy::unwrap_used)]

use std::{
    collections::HashMap,
    fmt,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use clap::Parser;
use futures::{StreamExt, stream::BoxStream};
use mover_svc::{
    batch::{self, Ended},
    db::Db,
    durable::{GroupSync, Syncs},
    mover::{Mover, Settings, StatusSink},
    transfer,
};
use object_store::{
    GetOptions, GetResult, GetResultPayload, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutMultipartOptions, PutOptions, PutPayload, PutResult, path::Path,
};
use rdkafka::mocking::MockCluster;
use sha2::{Digest, Sha256};
use strata_proto::{MigrationJob, State, codec::Encoding};
use strata_runtime::{
    args::CommonArgs,
    kafka::Publisher,
    tiers::{Tier, TierStore},
};
use strata_testkit::{Azurite, Moto};

/// What a [`Faulty`] store does wrong.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Fault {
    /// Reads return the stored bytes with the first one flipped.
    CorruptReads,
    /// The first GET (not HEAD) is overtaken by a new version: a writer racing the copy.
    ChangeOnFirstRead,
    /// Deletes are denied (Object Lock, no delete permission) while `refusing` is set.
    RefuseDeletes,
    /// Every write fails as a network error would, after a quarter of a second.
    SlowFailingWrites,
    /// Every write takes a twentieth of a second, counted in its `writes` gauge.
    SlowWrites,
    /// Reads and HEADs are denied: credentials that may write but not read.
    DenyReads,
    /// The first GET (not HEAD) is followed at once by a write at
    /// [`Faulty::race_to`]: an application writing at the destination key
    /// while the copy runs.
    WrittenAtDestination,
    /// As [`Fault::WrittenAtDestination`], and that first GET then fails as
    /// a network error would: the attempt fails after the other write.
    WrittenAtDestinationThenReadFails,
    /// Reads return corrupted bytes, as [`Fault::CorruptReads`] (every
    /// attempt fails its verify), and the first HEAD that finds an object
    /// is followed at once by a write at [`Faulty::race_to`]: an
    /// application writing at the key between a discard's look and its
    /// delete.
    CorruptThenWrittenAfterLook,
    /// The first HEAD after a GET (the copy's check that its source did not
    /// change while read) is answered, then a new version is written at
    /// the key: an application updating the object just after that check.
    RewrittenAfterTheCopysCheck,
}

/// Writes in progress, and the most seen at once.
#[derive(Debug, Default)]
struct Gauge {
    now: AtomicUsize,
    max: AtomicUsize,
}

/// The error of a [`Fault::SlowFailingWrites`] write, after its delay.
async fn slow_failure() -> object_store::Error {
    tokio::time::sleep(Duration::from_millis(250)).await;
    object_store::Error::Generic {
        store: "test",
        source: "connection reset by the test store".into(),
    }
}

/// A store that misbehaves on reads or deletes, delegating everything else.
#[derive(Debug)]
struct Faulty {
    inner: Arc<dyn ObjectStore>,
    fault: Fault,
    fired: AtomicBool,
    /// Whether a GET has been made.
    got: AtomicBool,
    refusing: Arc<AtomicBool>,
    writes: Arc<Gauge>,
    /// Where [`Fault::WrittenAtDestination`] writes, and what.
    race_to: Option<(Arc<dyn ObjectStore>, Path, Bytes)>,
}

impl fmt::Display for Faulty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Faulty({:?}, {})", self.fault, self.inner)
    }
}

#[async_trait::async_trait]
impl ObjectStore for Faulty {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        if self.fault == Fault::SlowFailingWrites {
            return Err(slow_failure().await);
        }
        if self.fault == Fault::SlowWrites {
            let now = self.writes.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.writes.max.fetch_max(now, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            let result = self.inner.put_opts(location, payload, opts).await;
            self.writes.now.fetch_sub(1, Ordering::SeqCst);
            return result;
        }
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        if self.fault == Fault::SlowFailingWrites {
            return Err(slow_failure().await);
        }
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        match self.fault {
            // A newer version lands while the first read of the bytes (not
            // a HEAD) is under way.
            Fault::ChangeOnFirstRead
                if !options.head && !self.fired.swap(true, Ordering::SeqCst) =>
            {
                let reading = self.inner.get_opts(location, options).await?;
                self.inner
                    .put(
                        location,
                        PutPayload::from_static(b"a new version, written mid-copy"),
                    )
                    .await?;
                Ok(reading)
            }
            Fault::WrittenAtDestination | Fault::WrittenAtDestinationThenReadFails
                if !options.head && !self.fired.swap(true, Ordering::SeqCst) =>
            {
                let (store, at, bytes) = self.race_to.as_ref().expect("race_to set");
                store.put(at, PutPayload::from(bytes.clone())).await?;
                if self.fault == Fault::WrittenAtDestinationThenReadFails {
                    return Err(object_store::Error::Generic {
                        store: "test",
                        source: "connection reset by the test store".into(),
                    });
                }
                self.inner.get_opts(location, options).await
            }
            Fault::CorruptThenWrittenAfterLook if options.head => {
                let found = self.inner.get_opts(location, options).await?;
                if !self.fired.swap(true, Ordering::SeqCst) {
                    let (store, at, bytes) = self.race_to.as_ref().expect("race_to set");
                    store.put(at, PutPayload::from(bytes.clone())).await?;
                }
                Ok(found)
            }
            Fault::RewrittenAfterTheCopysCheck if !options.head => {
                self.got.store(true, Ordering::SeqCst);
                self.inner.get_opts(location, options).await
            }
            Fault::RewrittenAfterTheCopysCheck => {
                let found = self.inner.get_opts(location, options).await?;
                if self.got.load(Ordering::SeqCst) && !self.fired.swap(true, Ordering::SeqCst) {
                    let new = PutPayload::from_static(WRITTEN_AFTER_THE_COPY);
                    self.inner.put(location, new).await?;
                }
                Ok(found)
            }
            Fault::ChangeOnFirstRead
            | Fault::WrittenAtDestination
            | Fault::WrittenAtDestinationThenReadFails
            | Fault::RefuseDeletes
            | Fault::SlowFailingWrites
            | Fault::SlowWrites => self.inner.get_opts(location, options).await,
            Fault::DenyReads => Err(object_store::Error::PermissionDenied {
                path: location.to_string(),
                source: "s3:GetObject not granted".into(),
            }),
            Fault::CorruptReads | Fault::CorruptThenWrittenAfterLook => {
                let mut result = self.inner.get_opts(location, options).await?;
                let payload = std::mem::replace(
                    &mut result.payload,
                    GetResultPayload::Stream(futures::stream::empty().boxed()),
                );
                let bytes = match payload {
                    GetResultPayload::Stream(s) => {
                        let chunks: Vec<Bytes> = s
                            .collect::<Vec<_>>()
                            .await
                            .into_iter()
                            .collect::<Result<_, _>>()?;
                        chunks.concat()
                    }
                    GetResultPayload::File(_, path) => std::fs::read(path).unwrap(),
                };
                let mut bytes = bytes;
                if let Some(b) = bytes.first_mut() {
                    *b ^= 0xff;
                }
                result.payload = GetResultPayload::Stream(
                    futures::stream::once(async move { Ok(Bytes::from(bytes)) }).boxed(),
                );
                Ok(result)
            }
        }
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        if self.fault == Fault::RefuseDeletes && self.refusing.load(Ordering::SeqCst) {
            return locations
                .map(|location| {
                    location.and_then(|path| {
                        Err(object_store::Error::PermissionDenied {
                            path: path.to_string(),
                            source: "the test store denies deletes".into(),
                        })
                    })
                })
                .boxed();
        }
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: object_store::CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    common: CommonArgs,
}

fn tier(name: &str, url: String, options: &[(&str, &str)]) -> TierStore {
    classed_tier(name, url, "", options)
}

/// A tier whose file also says `class`: `preset = '...'` or `storage_class = '...'`.
fn classed_tier(name: &str, url: String, class: &str, options: &[(&str, &str)]) -> TierStore {
    let mut tier: Tier =
        toml::from_str(&format!("name = '{name}'\nurl = '{url}'\n{class}")).unwrap();
    tier.options = options
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    tier.open().unwrap()
}

/// A source and destination tier pair on one backend.
struct Backend {
    name: &'static str,
    src: TierStore,
    dst: TierStore,
    _guards: (Option<tempfile::TempDir>, Option<Moto>, Option<Azurite>),
}

async fn backends() -> Vec<Backend> {
    let dir = tempfile::tempdir().unwrap();
    let file = Backend {
        name: "file",
        src: tier("src", format!("file://{}/src", dir.path().display()), &[]),
        dst: tier("dst", format!("file://{}/dst", dir.path().display()), &[]),
        _guards: (Some(dir), None, None),
    };
    let memory = Backend {
        name: "memory",
        src: tier("src", "memory://".into(), &[]),
        dst: tier("dst", "memory://".into(), &[]),
        _guards: (None, None, None),
    };
    let moto = Moto::start();
    moto.create_bucket("strata-src");
    moto.create_bucket("strata-dst");
    let opts = moto.tier_options();
    let s3 = Backend {
        name: "s3",
        src: tier("src", "s3://strata-src/tier".into(), &opts),
        dst: tier("dst", "s3://strata-dst".into(), &opts),
        _guards: (None, Some(moto), None),
    };
    let azurite = Azurite::start();
    azurite.create_container("strata-src").await;
    azurite.create_container("strata-dst").await;
    let opts = azurite.tier_options();
    let azure = Backend {
        name: "azure",
        src: tier("src", "az://strata-src/tier".into(), &opts),
        dst: tier("dst", "az://strata-dst".into(), &opts),
        _guards: (None, None, Some(azurite)),
    };
    vec![file, memory, s3, azure]
}

struct Setup {
    mover: Mover,
    _dir: tempfile::TempDir,
    _cluster: MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
}

fn mover(
    src: &TierStore,
    dst: &TierStore,
    dst_override: Option<Arc<dyn ObjectStore>>,
    src_override: Option<Arc<dyn ObjectStore>>,
) -> Setup {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("migration_status", 1, 1).unwrap();
    let args = Args::try_parse_from(["t", "--brokers", &cluster.bootstrap_servers()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut src = src.clone();
    let mut dst = dst.clone();
    if let Some(store) = src_override {
        src.store = store;
        src.local = None; // no longer the plain file system
        src.multipart = None; // nor the store's own multipart API
    }
    if let Some(store) = dst_override {
        dst.store = store;
        dst.local = None;
        dst.multipart = None;
    }
    let tiers = HashMap::from([("src".to_string(), src), ("dst".to_string(), dst)]);
    let mover = Mover {
        db: Db::open(&dir.path().join("mover.db")).unwrap(),
        syncs: Syncs::for_tiers(tiers.values()).unwrap(),
        tiers,
        status: StatusSink {
            publisher: Publisher::try_new(&args.common).unwrap(),
            topic: "migration_status".into(),
            encoding: Encoding::Json,
        },
        settings: Settings {
            part_size: 5 << 20,
            parts_in_flight: 2,
            max_attempts: 3,
            max_retry_elapsed: Duration::from_secs(10),
            min_retry_delay: Duration::from_millis(5),
            progress_every: None,
            copy_slots: Arc::new(tokio::sync::Semaphore::new(4)),
        },
    };
    Setup {
        mover,
        _dir: dir,
        _cluster: cluster,
    }
}

impl Faulty {
    fn new(inner: Arc<dyn ObjectStore>, fault: Fault) -> Self {
        Faulty {
            inner,
            fault,
            fired: AtomicBool::new(false),
            got: AtomicBool::new(false),
            refusing: Arc::new(AtomicBool::new(true)),
            writes: Arc::default(),
            race_to: None,
        }
    }
}

/// A store over `inner` that misbehaves as `fault` says.
fn faulty(inner: Arc<dyn ObjectStore>, fault: Fault) -> Arc<dyn ObjectStore> {
    Arc::new(Faulty::new(inner, fault))
}

/// What [`Fault::WrittenAtDestination`] writes.
const WRITTEN_MID_COPY: &[u8] = b"an application's object, written mid-copy";

/// What [`Fault::RewrittenAfterTheCopysCheck`] writes.
const WRITTEN_AFTER_THE_COPY: &[u8] = b"a new version, written after the copy";

/// `src`'s store, whose first GET is followed at once by `bytes` written
/// at `key` on `dst` ([`Fault::WrittenAtDestination`]).
fn racing_writer(
    src: &TierStore,
    dst: &TierStore,
    key: &str,
    bytes: &[u8],
) -> Arc<dyn ObjectStore> {
    racing(src, dst, (key, bytes), Fault::WrittenAtDestination)
}

/// `src`'s store, with `fault` writing `bytes` at `key` on `dst`.
fn racing(
    src: &TierStore,
    dst: &TierStore,
    (key, bytes): (&str, &[u8]),
    fault: Fault,
) -> Arc<dyn ObjectStore> {
    let mut store = Faulty::new(src.store.clone(), fault);
    let at = dst.location(key).unwrap();
    store.race_to = Some((dst.store.clone(), at, Bytes::copy_from_slice(bytes)));
    Arc::new(store)
}

/// A store over `inner` whose writes are slow, and the gauge of them.
fn slow_writes(inner: Arc<dyn ObjectStore>) -> (Arc<dyn ObjectStore>, Arc<Gauge>) {
    let store = Faulty::new(inner, Fault::SlowWrites);
    let writes = store.writes.clone();
    (Arc::new(store), writes)
}

/// `tier` without the requests the mover signs and sends itself (S3's and
/// Azure's conditional deletes among them), so that everything goes
/// through its store, where a [`Faulty`] one can refuse it as the real
/// store would (a 403 of those requests is classed as object_store's
/// own refusal is).
fn through_its_store(tier: &TierStore) -> TierStore {
    TierStore {
        s3: None,
        azure: None,
        ..tier.clone()
    }
}

/// A store over `inner` that denies deletes until the returned flag is cleared.
fn refusing_deletes(inner: Arc<dyn ObjectStore>) -> (Arc<dyn ObjectStore>, Arc<AtomicBool>) {
    let store = Faulty::new(inner, Fault::RefuseDeletes);
    let refusing = store.refusing.clone();
    (Arc::new(store), refusing)
}

/// Between two `file://` tiers the copy opens and checks the source itself
/// (no store in between): another object put at the key mid-copy fails the
/// job at once, and the new version stays where it was put.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_source_replaced_mid_copy_fails_the_job_and_keeps_the_new_object() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().display();
    // 1 MiB/s: the 3 MiB copy takes seconds.
    let slow = "max_bytes_per_sec = 1048576";
    let src = classed_tier("src", format!("file://{root}/src"), slow, &[]);
    let dst = tier("dst", format!("file://{root}/dst"), &[]);
    put(&src, "race/file", &vec![5u8; 3 << 20]).await;
    let s = mover(&src, &dst, None, None);
    let newer = b"a new version, written mid-copy";
    let path = dir.path().join("src/race/file");
    let writer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let staged = path.with_extension("new");
        std::fs::write(&staged, newer).unwrap();
        std::fs::rename(&staged, &path).unwrap();
    });
    run(&s, job("race/file")).await;
    writer.await.unwrap();
    let row = ledger(&s, "race/file").await;
    assert_eq!(
        (row.state, row.error.map(|e| e.0), row.attempt),
        (State::Failed, Some("source_changed".into()), 1),
    );
    assert_eq!(read(&src, "race/file").await.as_deref(), Some(&newer[..]));
    assert_eq!(read(&dst, "race/file").await, None);
}

/// However many jobs run at once, no more copies than the mover's copy
/// slots write at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_at_once_stay_within_the_copy_slots() {
    let (src, dst) = (
        tier("src", "memory://".into(), &[]),
        tier("dst", "memory://".into(), &[]),
    );
    for slots in [1, 3] {
        let (store, writes) = slow_writes(dst.store.clone());
        let mut s = mover(&src, &dst, Some(store), None);
        s.mover.settings.copy_slots = Arc::new(tokio::sync::Semaphore::new(slots));
        let keys: Vec<String> = (0..8).map(|i| format!("slots-{slots}/{i}")).collect();
        for key in &keys {
            put(&src, key, key.as_bytes()).await;
        }
        futures::future::join_all(keys.iter().map(|key| run(&s, job(key)))).await;
        for key in &keys {
            assert_eq!(ledger(&s, key).await.state, State::Completed, "{key}");
        }
        assert_eq!(writes.max.load(Ordering::SeqCst), slots, "{slots} slots");
    }
}

/// Handles `job` to its delivered outcome.
async fn run(s: &Setup, job: MigrationJob) {
    s.mover
        .handle(job)
        .await
        .unwrap()
        .delivered()
        .await
        .unwrap();
}

/// Moves `key` (holding `bytes`) off `b.src` while the source refuses
/// deletes, leaving an orphan there.
async fn leave_orphan(s: &Setup, b: &Backend, refusing: &AtomicBool, key: &str, bytes: &[u8]) {
    refusing.store(true, Ordering::SeqCst);
    put(&b.src, key, bytes).await;
    run(s, job(key)).await;
}

/// Sweeps the one orphan on record, which must leave the record.
async fn sweep_the_orphan(s: &Setup, name: &str) {
    let orphans = s.mover.db.orphans(100).await.unwrap();
    assert_eq!(orphans.len(), 1, "{name}: {orphans:?}");
    assert!(s.mover.sweep_orphan(&orphans[0]).await.unwrap(), "{name}");
    assert!(s.mover.db.orphans(100).await.unwrap().is_empty(), "{name}");
}

/// The ledger row of `key`'s job, which must exist.
async fn ledger(s: &Setup, key: &str) -> mover_svc::protocol::LedgerRow {
    ledger_of(s, &job(key)).await
}

async fn ledger_of(s: &Setup, job: &MigrationJob) -> mover_svc::protocol::LedgerRow {
    s.mover.db.ledger(&job.job_key).await.unwrap().unwrap()
}

/// A mover from `src` to `dst` that has run `job(key)` on `bytes` put at `src`.
async fn moved(src: &TierStore, dst: &TierStore, key: &str, bytes: &[u8]) -> Setup {
    let s = mover(src, dst, None, None);
    put(src, key, bytes).await;
    run(&s, job(key)).await;
    s
}

fn job(key: &str) -> MigrationJob {
    MigrationJob {
        job_key: strata_proto::job_key(key, "src", "dst", 0),
        object_key: key.into(),
        from_tier: "src".into(),
        to_tier: "dst".into(),
        generation: 0,
        ..Default::default()
    }
}

/// Retry `retry` of the job moving `key` back from `dst` to `src` after
/// its first move (generation 1).
fn back(key: &str, retry: u32) -> MigrationJob {
    MigrationJob {
        job_key: strata_proto::retry_job_key(key, "dst", "src", 1, retry),
        object_key: key.into(),
        from_tier: "dst".into(),
        to_tier: "src".into(),
        generation: 1,
        retry,
        ..Default::default()
    }
}

/// Moves `key` (holding `bytes`), archived on `dst` (a store that restores
/// at once), back to `src`: the first job fails at once as `restoring`, the
/// object left where it is and its message saying `asked`; the retry moves it.
async fn thaw(s: &Setup, src: &TierStore, key: &str, bytes: &[u8], asked: &str) {
    let first = back(key, 0);
    run(s, first.clone()).await;
    let row = ledger_of(s, &first).await;
    assert_eq!(row.state, State::Failed, "{row:?}");
    let (class, message) = row.error.unwrap();
    assert_eq!((class.as_str(), row.attempt), ("restoring", 1), "{message}");
    assert!(message.contains(asked), "{message}");
    assert_eq!(s.mover.db.catalog(key).await.unwrap().unwrap().tier, "dst");
    assert_eq!(
        read(src, key).await,
        None,
        "no copy left where it was to go"
    );

    let retry = back(key, 1);
    run(s, retry.clone()).await;
    let row = ledger_of(s, &retry).await;
    assert_eq!(row.state, State::Completed, "{row:?}");
    assert_eq!(read(src, key).await.as_deref(), Some(bytes));
    assert_eq!(s.mover.db.catalog(key).await.unwrap().unwrap().tier, "src");
}

async fn put(t: &TierStore, key: &str, bytes: &[u8]) {
    t.store
        .put(&t.location(key).unwrap(), PutPayload::from(bytes.to_vec()))
        .await
        .unwrap();
}

async fn read(t: &TierStore, key: &str) -> Option<Vec<u8>> {
    match t.store.get(&t.location(key).unwrap()).await {
        Ok(r) => Some(r.bytes().await.unwrap().to_vec()),
        Err(object_store::Error::NotFound { .. }) => None,
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_protocol_holds_on_every_backend() {
    for b in backends().await {
        let name = b.name;
        // A single-PUT object and a multipart one (12 MB, 5 MB parts).
        for (key, size) in [("small/a.bin", 70_000usize), ("big/b.bin", 12 << 20)] {
            let bytes: Vec<u8> = (0..size).map(|i| (i * 7 % 251) as u8).collect();
            put(&b.src, key, &bytes).await;
            let s = mover(&b.src, &b.dst, None, None);
            run(&s, job(key)).await;
            let row = ledger(&s, key).await;
            assert_eq!(row.state, State::Completed, "{name} {key}: {row:?}");
            assert_eq!(
                row.sha256.as_deref(),
                Some(hex::encode(Sha256::digest(&bytes)).as_str()),
                "{name}"
            );
            assert_eq!(
                read(&b.dst, key).await.as_deref(),
                Some(&bytes[..]),
                "{name} {key}: destination"
            );
            assert_eq!(
                read(&b.src, key).await,
                None,
                "{name} {key}: source deleted"
            );
            let catalog = s.mover.db.catalog(key).await.unwrap().unwrap();
            assert_eq!(
                (catalog.tier.as_str(), catalog.generation),
                ("dst", 1),
                "{name}"
            );
        }

        // The destination reads back corrupted: every attempt fails verify,
        // the job FAILS, and the source is never deleted.
        let bytes = b"precious bytes".repeat(1000);
        put(&b.src, "c/corrupt", &bytes).await;
        let corrupting = faulty(b.dst.store.clone(), Fault::CorruptReads);
        let s = mover(&b.src, &b.dst, Some(corrupting), None);
        run(&s, job("c/corrupt")).await;
        let row = ledger(&s, "c/corrupt").await;
        assert_eq!(row.state, State::Failed, "{name}: {row:?}");
        assert_eq!(
            row.error.as_ref().map(|e| e.0.as_str()),
            Some("verify_mismatch"),
            "{name}"
        );
        assert_eq!(row.attempt, 3, "{name}: retried up to max attempts");
        assert_eq!(
            read(&b.src, "c/corrupt").await.as_deref(),
            Some(&bytes[..]),
            "{name}: source intact"
        );
        assert_eq!(
            read(&b.dst, "c/corrupt").await,
            None,
            "{name}: bad copy removed"
        );
        assert_eq!(
            s.mover.db.catalog("c/corrupt").await.unwrap().unwrap().tier,
            "src",
            "{name}"
        );

        // The source changes while it is copied: fails at once, nothing lost.
        put(&b.src, "c/racing", &bytes).await;
        let racing = faulty(b.src.store.clone(), Fault::ChangeOnFirstRead);
        let s = mover(&b.src, &b.dst, None, Some(racing));
        run(&s, job("c/racing")).await;
        let row = ledger(&s, "c/racing").await;
        assert_eq!(row.state, State::Failed, "{name}: {row:?}");
        assert_eq!(
            row.error.as_ref().map(|e| e.0.as_str()),
            Some("source_changed"),
            "{name}"
        );
        assert_eq!(row.attempt, 1, "{name}: no retry storm");
        assert_eq!(
            read(&b.src, "c/racing").await.as_deref(),
            Some(&b"a new version, written mid-copy"[..]),
            "{name}"
        );
        assert_eq!(read(&b.dst, "c/racing").await, None, "{name}");

        // A source that is not there: rejected at once, nothing written.
        let s = mover(&b.src, &b.dst, None, None);
        run(&s, job("c/ghost")).await;
        let row = ledger(&s, "c/ghost").await;
        assert_eq!(
            (row.state, row.error.map(|e| e.0)),
            (State::Rejected, Some("not_found".into())),
            "{name}"
        );

        a_move_never_writes_over_another_object(&b).await;
        a_key_taken_during_the_copy_is_left_to_its_writer(&b).await;
        a_source_unlike_the_catalog_puts_nothing_at_the_key(&b).await;
        a_discard_keeps_an_object_written_after_its_look(&b).await;
        a_source_written_after_the_copy_is_kept_and_named_again(&b).await;
        refused_deletes_leave_a_recorded_orphan(&b).await;
        refused_discards_leave_a_recorded_orphan(&b).await;
    }
}

/// Puts `ours` at `key` on `b.src` and `there` on `b.dst`.
async fn occupy(b: &Backend, key: &str, ours: &[u8], there: &[u8]) {
    put(&b.src, key, ours).await;
    put(&b.dst, key, there).await;
}

/// Runs `job(key)` on `s` after [`occupy`], checks that it `ended` so
/// (state and error class), and that each tier holds what it must then:
/// a completed move `ours` on `b.dst` alone, a refused one both objects
/// where they were. Answers the job's error message.
async fn ended_as(
    s: &Setup,
    b: &Backend,
    key: &str,
    (ours, there): (&[u8], &[u8]),
    ended: (State, Option<&str>),
) -> Option<String> {
    let name = b.name;
    run(s, job(key)).await;
    let row = ledger(s, key).await;
    let class = row.error.as_ref().map(|e| e.0.as_str());
    assert_eq!((row.state, class), ended, "{name} {key}: {row:?}");
    let moved = ended.0 == State::Completed;
    let at_dst = if moved { ours } else { there };
    assert_eq!(
        read(&b.dst, key).await.as_deref(),
        Some(at_dst),
        "{name} {key}"
    );
    let at_src = read(&b.src, key).await;
    assert_eq!(at_src.as_deref(), (!moved).then_some(ours), "{name} {key}");
    row.error.map(|e| e.1)
}

/// A job whose destination key holds another object than the one moved
/// (an application wrote it straight onto that tier) is refused before
/// anything is written, both objects kept; so is one whose destination
/// cannot be read. The source's own bytes there, or an orphan copy the
/// mover left, are written over.
async fn a_move_never_writes_over_another_object(b: &Backend) {
    let name = b.name;
    let bytes = b"precious bytes".repeat(1000);
    let theirs = &b"another object at the same key"[..];
    let occupied = (State::Rejected, Some("occupied"));
    let completed = (State::Completed, None);
    let s = mover(&b.src, &b.dst, None, None);

    occupy(b, "c/taken", &bytes, theirs).await;
    let message = ended_as(&s, b, "c/taken", (&bytes, theirs), occupied).await;
    let message = message.unwrap();
    assert!(
        message.contains("c/taken") && message.contains("30 bytes"),
        "{name}: {message}"
    );
    let catalog = s.mover.db.catalog("c/taken").await.unwrap();
    assert!(catalog.is_none_or(|c| c.tier == "src"), "{name}");

    // The same bytes at the key already (a copy made by hand, or one
    // whose ledger row a power cut took): nothing to lose, it moves.
    occupy(b, "c/twin", &bytes, &bytes).await;
    ended_as(&s, b, "c/twin", (&bytes, &bytes), completed).await;
    // Another object of the same size is not the same bytes.
    let mut other = bytes.clone();
    other[0] ^= 1;
    occupy(b, "c/sized", &bytes, &other).await;
    ended_as(&s, b, "c/sized", (&bytes, &other), occupied).await;

    // A destination that may not be read: what its key holds cannot be
    // known, so nothing is written over it.
    let blind = faulty(b.dst.store.clone(), Fault::DenyReads);
    let s_blind = mover(&b.src, &b.dst, Some(blind), None);
    occupy(b, "c/unseen", &bytes, theirs).await;
    let refused = (State::Rejected, Some("permanent"));
    ended_as(&s_blind, b, "c/unseen", (&bytes, theirs), refused).await;

    // An orphan copy of the mover's own at the key (on record, as a
    // refused delete leaves one), whatever its bytes: written over.
    let left_there = &b"a copy left behind"[..];
    occupy(b, "c/orphaned", &bytes, left_there).await;
    let left = transfer::head(&b.dst, "c/orphaned").await.unwrap();
    let refusal = ("permanent", "delete denied");
    let db = &s.mover.db;
    db.record_orphan(
        "an-earlier-job",
        "c/orphaned",
        "dst",
        refusal,
        &left,
        i64::MAX,
    )
    .await
    .unwrap();
    ended_as(&s, b, "c/orphaned", (&bytes, left_there), completed).await;

    // An object the catalog knows (its SHA-256 kept), moved back onto a
    // key that holds its bytes, moves; one that holds others stays.
    for (key, there) in [("c/known", &bytes), ("c/known-other", &other)] {
        let s = moved(&b.src, &b.dst, key, &bytes).await;
        put(&b.src, key, there).await;
        run(&s, back(key, 0)).await;
        let row = ledger_of(&s, &back(key, 0)).await;
        let moves = there == &bytes;
        let class = row.error.as_ref().map(|e| e.0.as_str());
        let expected = if moves { completed } else { occupied };
        assert_eq!((row.state, class), expected, "{name} {key}: {row:?}");
        assert_eq!(
            read(&b.src, key).await.as_ref(),
            Some(there),
            "{name} {key}"
        );
        assert_eq!(read(&b.dst, key).await.is_none(), moves, "{name} {key}");
    }
}

/// An object written at the destination key after the job looked at it
/// (here, as the copy begins to read its source) is not written over: the
/// copy is put at the key only if it is still empty, so the job FAILS
/// `occupied`, at once, and both objects stay where they were written.
/// Large copies too where the mover completes the upload itself (S3,
/// Azure, and a file tier's staged file), an S3 upload then aborted. The source's own bytes written there
/// (as a write of a killed mover, landing late, leaves them) are written
/// over: the job completes, its upload not left open.
async fn a_key_taken_during_the_copy_is_left_to_its_writer(b: &Backend) {
    let name = b.name;
    let mut cases = vec![("c/taken-mid-copy", 70_000)];
    if b.name != "memory" {
        // Above the 5 MiB part size: a multipart upload (S3, Azure), a
        // staged file written as the bytes come (file).
        cases.push(("c/taken-mid-upload", 6 << 20));
    }
    for &(key, size) in &cases {
        let ours = vec![7u8; size];
        put(&b.src, key, &ours).await;
        let writer = racing_writer(&b.src, &b.dst, key, WRITTEN_MID_COPY);
        let s = mover(&b.src, &b.dst, None, Some(writer));
        run(&s, job(key)).await;
        let row = ledger(&s, key).await;
        let class = row.error.as_ref().map(|e| e.0.as_str());
        let failed = (State::Failed, Some("occupied"));
        assert_eq!((row.state, class), failed, "{name} {key}: {row:?}");
        assert_eq!(row.attempt, 1, "{name} {key}: not retried");
        assert_eq!(
            read(&b.dst, key).await.as_deref(),
            Some(WRITTEN_MID_COPY),
            "{name} {key}"
        );
        assert_eq!(read(&b.src, key).await, Some(ours), "{name} {key}");
        let catalog = s.mover.db.catalog(key).await.unwrap();
        assert!(catalog.is_none_or(|c| c.tier == "src"), "{name} {key}");
        no_open_upload(&b.dst, key).await;
    }
    // The other object written, then the attempt failing for another
    // reason: its discard keeps what is not the job's.
    let key = "c/taken-then-failed";
    let ours = b"ours".repeat(100);
    put(&b.src, key, &ours).await;
    let fault = Fault::WrittenAtDestinationThenReadFails;
    let s = mover(
        &b.src,
        &b.dst,
        None,
        Some(racing(&b.src, &b.dst, (key, WRITTEN_MID_COPY), fault)),
    );
    run(&s, job(key)).await;
    let row = ledger(&s, key).await;
    let class = row.error.as_ref().map(|e| e.0.as_str());
    assert_eq!(
        (row.state, class),
        (State::Failed, Some("occupied")),
        "{name}: {row:?}"
    );
    assert_eq!(
        read(&b.dst, key).await.as_deref(),
        Some(WRITTEN_MID_COPY),
        "{name}"
    );
    assert_eq!(read(&b.src, key).await, Some(ours), "{name}");

    for (key, size) in cases {
        let key = format!("{key}-late");
        let ours = vec![9u8; size];
        put(&b.src, &key, &ours).await;
        let writer = racing_writer(&b.src, &b.dst, &key, &ours);
        let s = mover(&b.src, &b.dst, None, Some(writer));
        run(&s, job(&key)).await;
        let row = ledger(&s, &key).await;
        assert_eq!(row.state, State::Completed, "{name} {key}: {row:?}");
        assert_eq!(row.attempt, 2, "{name} {key}: written over at once");
        assert_eq!(read(&b.dst, &key).await, Some(ours), "{name} {key}");
        assert_eq!(read(&b.src, &key).await, None, "{name} {key}");
        no_open_upload(&b.dst, &key).await;
    }
}

/// An object written at the destination key between the discard's look,
/// which finds the failed attempt's copy there, and its delete is kept:
/// the delete is conditional on the copy's ETag (S3 and Azure, `If-Match`)
/// or comes after a second look (file, memory). The job FAILS `occupied`
/// and the source stays.
async fn a_discard_keeps_an_object_written_after_its_look(b: &Backend) {
    let name = b.name;
    let key = "c/written-before-the-discard";
    let ours = b"ours".repeat(100);
    put(&b.src, key, &ours).await;
    let mut store = Faulty::new(b.dst.store.clone(), Fault::CorruptThenWrittenAfterLook);
    let at = b.dst.location(key).unwrap();
    store.race_to = Some((
        b.dst.store.clone(),
        at,
        Bytes::from_static(WRITTEN_MID_COPY),
    ));
    let s = mover(&b.src, &b.dst, Some(Arc::new(store)), None);
    run(&s, job(key)).await;
    let row = ledger(&s, key).await;
    let class = row.error.as_ref().map(|e| e.0.as_str());
    assert_eq!(
        (row.state, class, row.attempt),
        (State::Failed, Some("occupied"), 1),
        "{name}: {row:?}"
    );
    assert_eq!(
        read(&b.dst, key).await.as_deref(),
        Some(WRITTEN_MID_COPY),
        "{name}: the other object kept"
    );
    assert_eq!(read(&b.src, key).await, Some(ours), "{name}");
}

/// A new version written at the source key after the copy read it and
/// checked it unchanged (here, right after that check) is not deleted with
/// the source: the delete is conditional on the version copied (S3, Azure)
/// or follows a look (file, memory). The switch is undone: the catalog
/// names the source's tier again, at a new generation, without the old
/// checksum; the job FAILS `source_changed`; the copy of the old version,
/// which nothing names, is deleted.
async fn a_source_written_after_the_copy_is_kept_and_named_again(b: &Backend) {
    let name = b.name;
    let key = "c/rewritten-after-the-copy";
    put(&b.src, key, &b"the version copied".repeat(100)).await;
    let source = faulty(b.src.store.clone(), Fault::RewrittenAfterTheCopysCheck);
    let s = mover(&b.src, &b.dst, None, Some(source));
    run(&s, job(key)).await;
    let row = ledger(&s, key).await;
    let class = row.error.as_ref().map(|e| e.0.as_str());
    assert_eq!(
        (row.state, class, row.attempt),
        (State::Failed, Some("source_changed"), 1),
        "{name}: {row:?}"
    );
    assert_eq!(
        read(&b.src, key).await.as_deref(),
        Some(WRITTEN_AFTER_THE_COPY),
        "{name}: the new version kept"
    );
    let catalog = s.mover.db.catalog(key).await.unwrap().unwrap();
    assert_eq!(
        (
            catalog.tier.as_str(),
            catalog.generation,
            catalog.sha256,
            catalog.size
        ),
        ("src", 2, None, WRITTEN_AFTER_THE_COPY.len() as u64),
        "{name}"
    );
    assert_eq!(read(&b.dst, key).await, None, "{name}: the copy deleted");
    assert!(s.mover.db.orphans(10).await.unwrap().is_empty(), "{name}");
}

/// Asserts that no multipart upload of `key` is open on `tier`, if S3.
async fn no_open_upload(tier: &TierStore, key: &str) {
    if let Some(s3) = &tier.s3 {
        let location = tier.location(key).unwrap();
        let open = mover_svc::uploads::open(tier, s3, &location).await;
        assert_eq!(open.unwrap(), Vec::<String>::new(), "{key}");
    }
}

/// An object whose source no longer holds the bytes the catalog recorded
/// (rewritten in place, outside the mover, at the same size) fails
/// `source_changed` before its copy is put at the destination key, small
/// or large: nothing is left there to discard.
async fn a_source_unlike_the_catalog_puts_nothing_at_the_key(b: &Backend) {
    let name = b.name;
    for (key, size) in [("c/unlike", 70_000), ("c/unlike-large", 6 << 20)] {
        let bytes = vec![1u8; size];
        let s = moved(&b.src, &b.dst, key, &bytes).await;
        let rewritten = vec![2u8; size];
        put(&b.dst, key, &rewritten).await;
        run(&s, back(key, 0)).await;
        let row = ledger_of(&s, &back(key, 0)).await;
        let class = row.error.as_ref().map(|e| e.0.as_str());
        let failed = (State::Failed, Some("source_changed"));
        assert_eq!((row.state, class), failed, "{name} {key}: {row:?}");
        assert_eq!(read(&b.src, key).await, None, "{name} {key}");
        assert_eq!(read(&b.dst, key).await, Some(rewritten), "{name} {key}");
        no_open_upload(&b.src, key).await;
    }
}

/// A destination that reads back corrupted and refuses deletes for good:
/// every attempt fails its verify, and each bad copy, which its store will
/// not delete, is put on record as an orphan instead of holding the job.
/// The job FAILS with the source intact; the sweep deletes the copy once
/// deletes are allowed.
async fn refused_discards_leave_a_recorded_orphan(b: &Backend) {
    let name = b.name;
    let bytes = b"bytes the copy corrupts".repeat(500);
    put(&b.src, "c/stuck", &bytes).await;
    let (denying, refusing) = refusing_deletes(b.dst.store.clone());
    let s = mover(
        &b.src,
        &through_its_store(&b.dst),
        Some(faulty(denying, Fault::CorruptReads)),
        None,
    );
    run(&s, job("c/stuck")).await;
    let row = ledger(&s, "c/stuck").await;
    assert_eq!(
        (row.state, row.error.map(|e| e.0)),
        (State::Failed, Some("verify_mismatch".into())),
        "{name}"
    );
    assert_eq!(
        read(&b.src, "c/stuck").await.as_deref(),
        Some(&bytes[..]),
        "{name}: source intact"
    );
    let catalog = s.mover.db.catalog("c/stuck").await.unwrap().unwrap();
    assert_eq!(catalog.tier, "src", "{name}");
    let orphans = s.mover.db.orphans(100).await.unwrap();
    let listed: Vec<_> = orphans
        .iter()
        .map(|o| (o.object_key.as_str(), o.tier.as_str()))
        .collect();
    assert_eq!(listed, [("c/stuck", "dst")], "{name}");
    assert!(
        read(&b.dst, "c/stuck").await.is_some(),
        "{name}: the copy left"
    );
    refusing.store(false, Ordering::SeqCst);
    sweep_the_orphan(&s, name).await;
    assert_eq!(
        read(&b.dst, "c/stuck").await,
        None,
        "{name}: deleted once allowed"
    );
}

/// The source's store refuses deletes for good (Object Lock, no delete
/// permission): the job completes, since the object has moved, and the copy
/// left behind is on record until a delete is allowed; a copy that became
/// the catalog's again is never deleted.
async fn refused_deletes_leave_a_recorded_orphan(b: &Backend) {
    let name = b.name;
    let bytes = b"locked bytes".repeat(1000);
    let (src, refusing) = refusing_deletes(b.src.store.clone());
    let s = mover(&through_its_store(&b.src), &b.dst, None, Some(src));
    leave_orphan(&s, b, &refusing, "c/locked", &bytes).await;
    let row = ledger(&s, "c/locked").await;
    assert_eq!(
        (row.state, row.error.map(|e| e.0)),
        (State::Completed, Some("source_not_deleted".into())),
        "{name}"
    );
    let catalog = s.mover.db.catalog("c/locked").await.unwrap().unwrap();
    assert_eq!(catalog.tier, "dst", "{name}");
    assert_eq!(
        read(&b.dst, "c/locked").await.as_deref(),
        Some(&bytes[..]),
        "{name}"
    );
    assert_eq!(
        read(&b.src, "c/locked").await.as_deref(),
        Some(&bytes[..]),
        "{name}"
    );
    let orphans = s.mover.db.orphans(100).await.unwrap();
    let listed: Vec<_> = orphans
        .iter()
        .map(|o| (o.object_key.as_str(), o.tier.as_str(), o.attempts))
        .collect();
    assert_eq!(listed, [("c/locked", "src", 1)], "{name}");

    // Still refused: kept on record, one attempt more.
    assert!(!s.mover.sweep_orphan(&orphans[0]).await.unwrap(), "{name}");
    assert_eq!(
        s.mover.db.orphans(100).await.unwrap()[0].attempts,
        2,
        "{name}"
    );
    // Allowed again: the next start deletes it and forgets it.
    refusing.store(false, Ordering::SeqCst);
    s.mover.recover().await.unwrap();
    assert_eq!(
        read(&b.src, "c/locked").await,
        None,
        "{name}: orphan deleted"
    );
    assert!(s.mover.db.orphans(100).await.unwrap().is_empty(), "{name}");

    // An application writes a new object at the orphan's key: the sweep
    // tells it from the copy left and keeps it.
    leave_orphan(&s, b, &refusing, "c/rewritten", &bytes).await;
    let newer = b"a new object, written by an application";
    put(&b.src, "c/rewritten", newer).await;
    refusing.store(false, Ordering::SeqCst);
    sweep_the_orphan(&s, name).await;
    assert_eq!(
        read(&b.src, "c/rewritten").await.as_deref(),
        Some(&newer[..]),
        "{name}: a newer object kept"
    );

    // An orphan whose object a later job moves back onto its tier is the
    // live copy then: the sweep keeps it, though deletes are allowed.
    leave_orphan(&s, b, &refusing, "c/back", &bytes).await;
    run(&s, back("c/back", 0)).await;
    assert_eq!(
        s.mover.db.catalog("c/back").await.unwrap().unwrap().tier,
        "src",
        "{name}"
    );
    refusing.store(false, Ordering::SeqCst);
    sweep_the_orphan(&s, name).await;
    assert_eq!(
        read(&b.src, "c/back").await.as_deref(),
        Some(&bytes[..]),
        "{name}: live copy kept"
    );
}

/// Objects land in the storage class their tier bills (its preset's, or
/// the class its file names), by single PUT and multipart alike. A source
/// in an archive class fails its job at once and stays; a class the store
/// does not know fails the job at once, the source untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn objects_are_written_in_the_storage_class_of_their_tier() {
    let moto = Moto::start();
    for bucket in [
        "strata-src",
        "strata-ia",
        "strata-it",
        "strata-deep",
        "strata-odd",
    ] {
        moto.create_bucket(bucket);
    }
    let opts = moto.tier_options();
    let src = tier("src", "s3://strata-src".into(), &opts);
    let memory_src = tier("src", "memory://".into(), &[]);
    let ia_preset = "preset = 'aws-s3-standard-ia'";
    let memory_ia = classed_tier("dst", "memory://".into(), ia_preset, &[]);
    let ia = classed_tier("dst", "s3://strata-ia".into(), ia_preset, &opts);
    let (on_s3, on_memory) = (
        mover(&src, &ia, None, None),
        mover(&memory_src, &memory_ia, None, None),
    );
    for (key, size) in [("small", 70_000usize), ("big", 12 << 20)] {
        let bytes: Vec<u8> = (0..size).map(|i| (i * 13 % 251) as u8).collect();
        put(&src, key, &bytes).await;
        run(&on_s3, job(key)).await;
        assert_eq!(ledger(&on_s3, key).await.state, State::Completed, "{key}");
        assert_eq!(moto.storage_class(&ia, key).await, "STANDARD_IA", "{key}");

        put(&memory_src, key, &bytes).await;
        run(&on_memory, job(key)).await;
        let got = memory_ia
            .store
            .get(&memory_ia.location(key).unwrap())
            .await
            .unwrap();
        let class = got.attributes.get(&object_store::Attribute::StorageClass);
        assert_eq!(
            class.map(|c| c.as_ref()),
            Some("STANDARD_IA"),
            "memory {key}"
        );
    }

    // Into Intelligent-Tiering and out again: its access tiers are online,
    // so the way back is an ordinary move.
    let it = classed_tier(
        "dst",
        "s3://strata-it".into(),
        "preset = 'aws-s3-intelligent-tiering'",
        &opts,
    );
    let s = moved(&src, &it, "sparse", b"read now and then").await;
    assert_eq!(ledger(&s, "sparse").await.state, State::Completed);
    assert_eq!(
        moto.storage_class(&it, "sparse").await,
        "INTELLIGENT_TIERING"
    );
    run(&s, back("sparse", 0)).await;
    assert_eq!(
        ledger_of(&s, &back("sparse", 0)).await.state,
        State::Completed
    );
    assert_eq!(
        read(&src, "sparse").await.as_deref(),
        Some(&b"read now and then"[..])
    );

    // Into Deep Archive, then out of it: S3 refuses to read the object
    // until it is restored, so the job fails at once and the object stays.
    let deep = classed_tier(
        "dst",
        "s3://strata-deep".into(),
        "preset = 'aws-s3-deep-archive'",
        &opts,
    );
    let s = moved(&src, &deep, "frozen", b"cold bytes").await;
    assert_eq!(moto.storage_class(&deep, "frozen").await, "DEEP_ARCHIVE");
    // moto restores at once (S3 takes hours): the policy's retry moves it.
    thaw(
        &s,
        &src,
        "frozen",
        b"cold bytes",
        "restore requested (Standard retrieval",
    )
    .await;

    // A class the store does not know: every write would fail alike.
    let odd = classed_tier(
        "dst",
        "s3://strata-odd".into(),
        "storage_class = 'NO_SUCH_CLASS'",
        &opts,
    );
    let s = moved(&src, &odd, "odd", b"bytes").await;
    let row = ledger(&s, "odd").await;
    assert_eq!(row.state, State::Failed, "{row:?}");
    let (class, message) = row.error.unwrap();
    assert_eq!((class.as_str(), row.attempt), ("permanent", 1), "{message}");
    assert!(message.contains("storage_class"), "{message}");
    assert_eq!(read(&src, "odd").await.as_deref(), Some(&b"bytes"[..]));
}

/// Azure answers 412 for a delete of a leased blob that names no lease,
/// as it does for a failed `If-Match`: the conditional delete looks again
/// and calls it a refusal (as a 403 is, the source then kept on record),
/// not another object (which would undo a correct move).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leased_blob_refuses_its_delete_rather_than_passing_for_another_object() {
    let azurite = Azurite::start();
    azurite.create_container("strata-src").await;
    let src = tier("src", "az://strata-src".into(), &azurite.tier_options());
    put(&src, "leased", b"leased bytes").await;
    let seen = transfer::head(&src, "leased").await.unwrap();
    let lease = [
        ("x-ms-lease-action", "acquire"),
        ("x-ms-lease-duration", "-1"),
    ];
    let (status, _) = azurite
        .signed("PUT", "/strata-src/leased?comp=lease", &lease)
        .await;
    assert_eq!(status, 201, "lease acquired");
    let identity = mover_svc::protocol::identity(&seen);
    let refused = transfer::delete_if_same(&src, "leased", identity).await;
    assert!(
        matches!(refused, Err(transfer::MoveError::Permanent(_))),
        "{refused:?}"
    );
    assert_eq!(
        read(&src, "leased").await.as_deref(),
        Some(&b"leased bytes"[..])
    );
}

/// On Azure: blobs land in their tier's access tier (Cool), by single PUT
/// and block list alike; an Archive tier is set once the copy has been read
/// back. A job moving an archived blob out fails at once and asks for its
/// rehydration; the retry, once it is done, moves the blob.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn azure_blobs_are_written_in_the_access_tier_of_their_tier() {
    let azurite = Azurite::start();
    for container in ["strata-src", "strata-cool", "strata-archive"] {
        azurite.create_container(container).await;
    }
    let opts = azurite.tier_options();
    let src = tier("src", "az://strata-src".into(), &opts);
    let cool = classed_tier(
        "dst",
        "az://strata-cool".into(),
        "preset = 'azure-cool'",
        &opts,
    );
    let s = mover(&src, &cool, None, None);
    for (key, size) in [("small", 70_000usize), ("big", 12 << 20)] {
        let bytes: Vec<u8> = (0..size).map(|i| (i * 17 % 251) as u8).collect();
        put(&src, key, &bytes).await;
        run(&s, job(key)).await;
        assert_eq!(ledger(&s, key).await.state, State::Completed, "{key}");
        assert_eq!(
            azurite.access_tier("strata-cool", key).await,
            "Cool",
            "{key}"
        );
        assert_eq!(read(&cool, key).await.as_deref(), Some(&bytes[..]), "{key}");
    }

    let archive = classed_tier(
        "dst",
        "az://strata-archive".into(),
        "preset = 'azure-archive'",
        &opts,
    );
    let s = moved(&src, &archive, "frozen", b"cold bytes").await;
    assert_eq!(ledger(&s, "frozen").await.state, State::Completed);
    assert_eq!(
        azurite.access_tier("strata-archive", "frozen").await,
        "Archive"
    );
    // Azurite rehydrates at once (Azure takes hours): the retry moves it.
    thaw(
        &s,
        &src,
        "frozen",
        b"cold bytes",
        "rehydration to Hot requested (Standard priority)",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multipart_upload_cut_short_is_aborted_when_its_job_resumes() {
    let moto = Moto::start();
    moto.create_bucket("strata-src");
    moto.create_bucket("strata-dst");
    let opts = moto.tier_options();
    let src = tier("src", "s3://strata-src".into(), &opts);
    let mut dst = tier("dst", "s3://strata-dst".into(), &opts);
    // 12 MB at 3 MB/s: the upload is open for about three seconds.
    dst.limits = Arc::new(strata_runtime::limits::Limits::new(None, Some(3_000_000)));
    let bytes: Vec<u8> = (0..12_000_000u32).map(|i| (i % 249) as u8).collect();
    put(&src, "big", &bytes).await;
    let s = mover(&src, &dst, None, None);

    // The copy is cut short once its upload is open, as kill -9 would.
    let mut copy = Box::pin(s.mover.handle(job("big")));
    let upload_opened = async {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while s
            .mover
            .db
            .upload_of(&job("big").job_key)
            .await
            .unwrap()
            .is_none()
        {
            assert!(std::time::Instant::now() < deadline, "no upload recorded");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::select! {
        result = &mut copy => panic!("the copy ended before it was cut: ok={}", result.is_ok()),
        () = upload_opened => {}
    }
    drop(copy);
    assert_eq!(moto.open_uploads("strata-dst"), 1, "the cut upload is open");
    assert_eq!(ledger(&s, "big").await.state, State::Copying);
    // A kill -9 during a create request leaves an upload the ledger never
    // heard of; another key's upload (`big` is a prefix of it) is not the job's.
    let multipart = &dst.multipart.as_ref().unwrap().0;
    multipart
        .create_multipart(&dst.location("big").unwrap())
        .await
        .unwrap();
    multipart
        .create_multipart(&dst.location("big.other").unwrap())
        .await
        .unwrap();
    assert_eq!(moto.open_uploads("strata-dst"), 3);

    // The next start resumes the job: the key's uploads are aborted, the
    // copy done again, and none stays open for the bucket to bill.
    s.mover.recover().await.unwrap();
    assert_eq!(ledger(&s, "big").await.state, State::Completed);
    assert_eq!(read(&dst, "big").await.as_deref(), Some(&bytes[..]));
    assert_eq!(
        moto.open_uploads("strata-dst"),
        1,
        "only big.other's is left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_stop_at_the_time_bound_counting_the_attempts_themselves() {
    let src = tier("src", "memory://".into(), &[]);
    let dst = tier("dst", "memory://".into(), &[]);
    put(&src, "k", b"bytes").await;
    let failing = faulty(dst.store.clone(), Fault::SlowFailingWrites);
    let mut s = mover(&src, &dst, Some(failing), None);
    // Attempts enough for a minute. The waits (from 1 ms, doubling) take
    // ten attempts to add up to the bound; the 250 ms attempts take four.
    s.mover.settings.max_attempts = 200;
    s.mover.settings.min_retry_delay = Duration::from_millis(1);
    s.mover.settings.max_retry_elapsed = Duration::from_secs(1);
    let began = std::time::Instant::now();
    run(&s, job("k")).await;
    let row = ledger(&s, "k").await;
    assert_eq!(row.state, State::Failed, "{row:?}");
    assert_eq!(row.error.map(|e| e.0).as_deref(), Some("transient"));
    assert!(
        (2..=6).contains(&row.attempt),
        "{} attempts in {:?}",
        row.attempt,
        began.elapsed()
    );
    assert_eq!(read(&src, "k").await.as_deref(), Some(&b"bytes"[..]));
}

#[tokio::test]
async fn hostile_keys_never_name_anything_outside_a_tier() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("tier");
    let t = tier("t", format!("file://{}", root.display()), &[]);
    let long = "k".repeat(10 * 1024);
    for key in [
        "..",
        "../escape",
        "a/../../escape",
        "/etc/passwd",
        "nul\0key",
        long.as_str(),
        "a//b",
        "./x",
    ] {
        assert!(t.location(key).is_err(), "{key:?} was accepted");
    }
    // Nothing was created beside the tier's folder.
    let siblings: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(siblings, ["tier"]);
}

/// A job to a `file://` tier that cannot hold its key (a `#<digits>`
/// segment, kept for staged files) ends for good at once: REJECTED, since
/// a HEAD of the key is refused before anything is written. One that has
/// a folder where the object would go (an object `a` beside objects
/// `a/b`) FAILS at its copy. Either way the source is kept and the
/// folder's objects untouched: discarding a copy that could not be
/// written is no error that holds the job.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_the_destination_cannot_hold_fails_for_good_and_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().display();
    let dst = tier("dst", format!("file://{root}/dst"), &[]);
    put(&dst, "a/b", b"beside").await;
    let memory = tier("src", "memory://".into(), &[]);
    let file = tier("src", format!("file://{root}/src"), &[]);
    for (src, key, ended) in [
        (&memory, "ci/run#42", State::Rejected),
        (&memory, "a", State::Failed),
        (&file, "a", State::Failed),
    ] {
        put(src, key, b"object").await;
        let s = mover(src, &dst, None, None);
        run(&s, job(key)).await;
        let row = ledger(&s, key).await;
        assert_eq!(
            (row.state, row.error.map(|e| e.0).as_deref()),
            (ended, Some("permanent")),
            "{key} from {}",
            src.url
        );
        assert_eq!(read(src, key).await.as_deref(), Some(&b"object"[..]));
        assert_eq!(read(&dst, "a/b").await.as_deref(), Some(&b"beside"[..]));
    }
}

/// A copy between file tiers that waits for its tier's group sync holds no
/// copy slot: with one slot, a second job copies while the first waits for
/// the disk, and neither switches before a sync has ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_waiting_for_the_group_sync_holds_no_copy_slot() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().display();
    let src = tier("src", format!("file://{root}/src"), &[]);
    let dst = tier("dst", format!("file://{root}/dst"), &[]);
    for key in ["a", "b"] {
        put(&src, key, key.as_bytes()).await;
    }
    // Each sync of `dst` ends only when the test says so.
    let (end_sync, sync_may_end) = std::sync::mpsc::channel::<()>();
    let sync = GroupSync::start_with(move || {
        sync_may_end.recv().ok();
        Ok(())
    })
    .unwrap();
    let mut s = mover(&src, &dst, None, None);
    s.mover.syncs = Syncs::from_iter([("dst".to_string(), sync)]);
    s.mover.settings.copy_slots = Arc::new(tokio::sync::Semaphore::new(1));

    let mut moving = Box::pin(futures::future::join(
        s.mover.handle(job("a")),
        s.mover.handle(job("b")),
    ));
    let both_copied = async {
        let copied = |key: &str| dir.path().join("dst").join(key).exists();
        while !(copied("a") && copied("b")) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::select! {
        _ = &mut moving => panic!("a job ended before any sync did"),
        () = both_copied => {}
        () = tokio::time::sleep(Duration::from_secs(10)) => {
            panic!("the second copy waited for the first one's sync")
        }
    }
    for key in ["a", "b"] {
        assert_eq!(
            s.mover.db.catalog(key).await.unwrap().unwrap().tier,
            "src",
            "{key} switched before its copy was synced"
        );
    }
    // One sync may cover both copies, or each may have its own.
    for _ in 0..2 {
        end_sync.send(()).unwrap();
    }
    let (a, b) = moving.await;
    for outcome in [a, b] {
        outcome.unwrap().delivered().await.unwrap();
    }
    for key in ["a", "b"] {
        assert_eq!(s.mover.db.catalog(key).await.unwrap().unwrap().tier, "dst");
        assert_eq!(read(&dst, key).await.as_deref(), Some(key.as_bytes()));
        assert_eq!(read(&src, key).await, None);
    }
}

/// A symbolic link planted in a `file://` tier's folder is never followed
/// (an object of the tier is a file under its folder): a source key that
/// passes through one (a folder linked to a folder outside the tier, a
/// file linked to a file there) names no object, and its job ends
/// `not_found`, nothing registered; a destination key that does takes no
/// copy, its job ends `permanent`, and where the link points nothing is
/// written or deleted: not a file of the source's very bytes, not one
/// named as a staged upload. Alone and in a batch, between file tiers and
/// from or to another store.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn symbolic_links_in_a_tier_are_never_followed() {
    use std::os::unix::fs::symlink;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let outside = root.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    let secret = &b"not an object of any tier"[..];
    let ours = &b"ours"[..];
    std::fs::write(outside.join("secret"), secret).unwrap();
    std::fs::write(outside.join("same"), ours).unwrap();
    std::fs::write(outside.join("same#1"), ours).unwrap();
    let before = listing(&outside);
    let src = tier("src", format!("file://{}/src", root.display()), &[]);
    let dst = tier("dst", format!("file://{}/dst", root.display()), &[]);
    let memory_src = tier("src", "memory://".into(), &[]);
    let memory_dst = tier("dst", "memory://".into(), &[]);
    symlink(&outside, root.join("src/linked-folder")).unwrap();
    symlink(outside.join("secret"), root.join("src/linked-file")).unwrap();
    std::fs::create_dir_all(root.join("dst")).unwrap();
    symlink(&outside, root.join("dst/out")).unwrap();
    // Keys that are links themselves: to a file outside, to nothing.
    symlink(outside.join("same"), root.join("dst/same-link")).unwrap();
    symlink(outside.join("none"), root.join("dst/dangling")).unwrap();
    for key in ["out/new", "out/same", "same-link", "dangling"] {
        put(&src, key, ours).await;
        put(&memory_src, key, ours).await;
    }
    let sources = ["linked-folder/secret", "linked-file"];
    let destinations = ["out/new", "out/same", "same-link", "dangling"];

    let refused = async |s: &Setup, key: &str, how: &str| {
        let row = ledger(s, key).await;
        let (class, message) = row.error.clone().unwrap();
        let expected = if destinations.contains(&key) {
            (State::Failed, "permanent")
        } else {
            // Never registered: the mover did not find the object.
            let catalog = s.mover.db.catalog(key).await.unwrap();
            assert!(catalog.is_none(), "{how} {key}: {catalog:?}");
            (State::Rejected, "not_found")
        };
        assert_eq!(
            (row.state, class.as_str()),
            expected,
            "{how} {key}: {row:?}"
        );
        assert!(row.attempt <= 1, "{how} {key}: retried: {row:?}");
        assert!(message.contains("symbolic link"), "{how} {key}: {message}");
    };
    // Alone: file to file, file to memory, memory to file.
    let alone = [
        (&src, &dst, &sources[..], "file->file"),
        (&src, &memory_dst, &sources[..], "file->memory"),
        (&src, &dst, &destinations[..], "file->file"),
        (&memory_src, &dst, &destinations[..], "memory->file"),
    ];
    for (from, to, keys, how) in alone {
        let s = mover(from, to, None, None);
        for &key in keys {
            run(&s, job(key)).await;
            refused(&s, key, how).await;
            if to.local.is_none() {
                assert_eq!(read(to, key).await, None, "{how} {key}");
            }
        }
    }
    // In a batch, between file tiers.
    let s = mover(&src, &dst, None, None);
    let mover = Arc::new(s.mover);
    let keys = [&sources[..], &destinations[..]].concat();
    let jobs: Vec<_> = keys.iter().map(|k| job(k)).collect();
    assert!(jobs.iter().all(|j| mover.batchable(j)));
    for ended in batch::run(&mover, jobs).await {
        match ended {
            Ended::Done(outcome) => outcome.delivered().await.unwrap(),
            Ended::Alone(go_on) => go_on.await.unwrap().delivered().await.unwrap(),
        }
    }
    let s = Setup {
        mover: Arc::into_inner(mover).unwrap(),
        ..s
    };
    for key in keys {
        refused(&s, key, "batch").await;
    }

    // Where the links point, nothing was written or deleted; the sources
    // behind no link are still there.
    assert_eq!(listing(&outside), before);
    for key in destinations {
        assert_eq!(read(&src, key).await.as_deref(), Some(ours), "{key}");
        assert_eq!(read(&memory_src, key).await.as_deref(), Some(ours), "{key}");
    }
}

/// The files of `folder` and their bytes, by name.
fn listing(folder: &std::path::Path) -> Vec<(std::ffi::OsString, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(folder)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (e.file_name(), std::fs::read(e.path()).unwrap())
        })
        .collect();
    files.sort();
    files
}

/// Small jobs between file tiers run as one batch: one group sync covers
/// all their copies, and each ends as it would alone. The jobs that leave
/// the batch's path (a missing source, a stale job, a duplicate, an object
/// too large) go on alone and end as they would have.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_moves_small_jobs_together_and_hands_the_others_on() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().display();
    let src = tier("src", format!("file://{root}/src"), &[]);
    let dst = tier("dst", format!("file://{root}/dst"), &[]);
    let syncs = Arc::new(AtomicUsize::new(0));
    let counted = syncs.clone();
    let sync = GroupSync::start_with(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        Ok(())
    })
    .unwrap();
    let Setup {
        mut mover,
        _dir,
        _cluster,
    } = mover(&src, &dst, None, None);
    mover.syncs = Syncs::from_iter([("dst".to_string(), sync)]);
    let mover = Arc::new(mover);
    let ledger = |job: MigrationJob| {
        let mover = mover.clone();
        async move { mover.db.ledger(&job.job_key).await.unwrap().unwrap() }
    };

    // Objects moved once already: "back" returns to src (its catalog
    // digest checked), "stale" is asked for again at the generation it had,
    // "dup"'s move is sent again.
    for key in ["back", "stale", "dup"] {
        put(&src, key, key.as_bytes()).await;
        let outcome = mover.handle(job(key)).await.unwrap();
        outcome.delivered().await.unwrap();
    }
    let small = ["a", "b", "c", "d", "e"];
    for key in small {
        put(&src, key, key.as_bytes()).await;
    }
    let large = vec![7u8; (batch::MAX_BYTES + 1) as usize];
    put(&src, "large", &large).await;
    // An application wrote "taken" straight onto dst as well.
    put(&src, "taken", b"ours").await;
    put(&dst, "taken", b"theirs").await;
    let stale = MigrationJob {
        job_key: strata_proto::retry_job_key("stale", "src", "dst", 0, 1),
        retry: 1,
        ..job("stale")
    };

    let mut jobs: Vec<MigrationJob> = small.into_iter().map(job).collect();
    jobs.push(back("back", 0));
    // A missing source, a stale job, a duplicate, an object over the
    // batch's size, a destination key taken.
    jobs.extend([
        job("missing"),
        stale.clone(),
        job("dup"),
        job("large"),
        job("taken"),
    ]);
    assert!(jobs.iter().all(|j| mover.batchable(j)));
    let syncs_before = syncs.load(Ordering::SeqCst);
    let ended = batch::run(&mover, jobs.clone()).await;
    assert_eq!(
        syncs.load(Ordering::SeqCst) - syncs_before,
        1,
        "one group sync for the batch's copies to dst"
    );

    let mut went_on = Vec::new();
    for (job, ended) in jobs.iter().zip(ended) {
        match ended {
            Ended::Done(outcome) => outcome.delivered().await.unwrap(),
            Ended::Alone(go_on) => {
                went_on.push(job.object_key.as_str());
                go_on.await.unwrap().delivered().await.unwrap();
            }
        }
    }
    assert_eq!(went_on, ["missing", "stale", "dup", "large", "taken"]);

    for key in small {
        assert_eq!(ledger(job(key)).await.state, State::Completed);
        assert_eq!(read(&dst, key).await.as_deref(), Some(key.as_bytes()));
        assert_eq!(read(&src, key).await, None, "{key} left at the source");
        let c = mover.db.catalog(key).await.unwrap().unwrap();
        assert_eq!((c.tier.as_str(), c.generation), ("dst", 1));
        assert_eq!(c.sha256.unwrap(), hex::encode(Sha256::digest(key)));
    }
    assert_eq!(ledger(back("back", 0)).await.state, State::Completed);
    assert_eq!(read(&src, "back").await.as_deref(), Some(&b"back"[..]));
    assert_eq!(read(&dst, "back").await, None);
    assert_eq!(
        mover.db.catalog("back").await.unwrap().unwrap().generation,
        2
    );

    let missing = ledger(job("missing")).await;
    assert_eq!(missing.state, State::Rejected);
    assert_eq!(missing.error.unwrap().0, "not_found");
    let stale = ledger(stale).await;
    assert_eq!(stale.state, State::Rejected);
    assert_eq!(stale.error.unwrap().0, "stale");
    assert_eq!(read(&dst, "stale").await.as_deref(), Some(&b"stale"[..]));
    // The duplicate is answered from the ledger; its object stays moved.
    assert_eq!(ledger(job("dup")).await.state, State::Completed);
    assert_eq!(read(&dst, "dup").await.as_deref(), Some(&b"dup"[..]));
    assert_eq!(
        mover.db.catalog("dup").await.unwrap().unwrap().generation,
        1
    );
    assert_eq!(ledger(job("large")).await.state, State::Completed);
    assert_eq!(read(&dst, "large").await, Some(large));
    assert_eq!(read(&src, "large").await, None);
    let taken = ledger(job("taken")).await;
    assert_eq!(taken.state, State::Rejected);
    assert_eq!(taken.error.unwrap().0, "occupied");
    assert_eq!(read(&src, "taken").await.as_deref(), Some(&b"ours"[..]));
    assert_eq!(read(&dst, "taken").await.as_deref(), Some(&b"theirs"[..]));
}
