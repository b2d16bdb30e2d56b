//! Moving bytes between two tiers' stores: a streaming copy that hashes as
//! the bytes flow, and a read-back that hashes the destination. Memory stays
//! bounded by the part size times the parts in flight, whatever the size.

use std::{
    fs::File,
    io::{Read, Seek, SeekFrom},
    ops::Range,
    path::PathBuf,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use bytes::Bytes;
use futures::{FutureExt, StreamExt, future::BoxFuture, stream::BoxStream};
use object_store::{
    GetResult, GetResultPayload, MultipartId, MultipartUpload, ObjectMeta, ObjectStoreExt, PutMode,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, UploadPart, WriteMultipart,
    multipart::PartId, path::Path,
};
use sha2::{Digest, Sha256};
use strata_runtime::tiers::{AzureTier, LocalTier, Multipart, S3Tier, TierStore};

use crate::{durable::GroupSync, local, protocol, signed, uploads};

/// Why a step failed, classed for the retry policy.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MoveError {
    /// The source object is not there: permanent, fail at once.
    #[error("not found: {0}")]
    NotFound(String),
    /// Access denied, invalid key, unsupported: permanent.
    #[error("{0}")]
    Permanent(String),
    /// The source changed while it was copied: permanent for this job.
    #[error("source changed during the copy: {0}")]
    SourceChanged(String),
    /// The source is in an archive class (S3 Glacier Flexible Retrieval or
    /// Deep Archive, Azure's Archive tier) and must be restored before it
    /// can be read: permanent for this job, which fails at once.
    #[error("{0}")]
    Archived(String),
    /// An archived source whose restore the mover asked for: the job fails
    /// at once, to be sent again once the restore is done.
    #[error("{0}")]
    Restoring(String),
    /// The destination did not read back as copied: retried.
    #[error("verify mismatch: {0}")]
    VerifyMismatch(String),
    /// Another object took the destination key after the job looked at it
    /// (a create-only write found it there): permanent, and what is there
    /// is not the job's to discard.
    #[error("{0}")]
    Occupied(String),
    /// Network, throttling, a store hiccup: retried with backoff.
    #[error("{0}")]
    Transient(String),
}

impl MoveError {
    /// The class named in a FAILED status.
    pub fn class(&self) -> &'static str {
        match self {
            MoveError::NotFound(_) => "not_found",
            MoveError::Permanent(_) => "permanent",
            MoveError::Archived(_) => "archived",
            MoveError::Restoring(_) => "restoring",
            MoveError::SourceChanged(_) => "source_changed",
            MoveError::VerifyMismatch(_) => "verify_mismatch",
            MoveError::Occupied(_) => "occupied",
            MoveError::Transient(_) => "transient",
        }
    }

    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, MoveError::Transient(_) | MoveError::VerifyMismatch(_))
    }

    /// Classes an object_store error. A file path that cannot exist (a
    /// folder on it is a file, a name too long) holds no object: not found.
    pub fn from_store(context: &str, e: object_store::Error) -> Self {
        use object_store::Error as E;
        let code = error_code(&e);
        let message = format!("{context}: {e}");
        if io_cause(&e).is_some_and(no_such_path) {
            return MoveError::NotFound(message);
        }
        // The local file system reports a refused file operation (EACCES,
        // EPERM) as a generic error: it is access denied, permanent. So is
        // a write where a folder is (an object `a` beside objects `a/b`).
        if io_cause(&e).is_some_and(|io| {
            matches!(
                io.kind(),
                std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::IsADirectory
            )
        }) {
            return MoveError::Permanent(message);
        }
        // What the store says in its error body: an archived object (S3:
        // 403 InvalidObjectState; Azure: 409 BlobArchived), a storage class
        // the store does not know (400 InvalidStorageClass: the tier's
        // class, on every write, so retrying is no use).
        match code.as_deref() {
            Some("InvalidObjectState" | "BlobArchived") => {
                return MoveError::Archived(format!(
                    "{message}: the object is archived and must be restored before it can be read"
                ));
            }
            Some("InvalidStorageClass") => {
                return MoveError::Permanent(format!(
                    "{message} (the tier's storage_class; a store without classes needs storage_class = \"\")"
                ));
            }
            // Azure's immutability policies and legal holds refuse for good.
            Some(code) if code.starts_with("BlobImmutable") => {
                return MoveError::Permanent(message);
            }
            _ => {}
        }
        match e {
            E::NotFound { .. } => MoveError::NotFound(message),
            E::PermissionDenied { .. }
            | E::Unauthenticated { .. }
            | E::InvalidPath { .. }
            | E::NotSupported { .. }
            | E::NotImplemented { .. } => MoveError::Permanent(message),
            _ => MoveError::Transient(message),
        }
    }
}

/// Classes the error of a write to `dst` at `to`: as [`MoveError::from_store`]
/// does, but for a create-only write ([`Publish::IfAbsent`]) refused
/// because the key is taken, which is [`MoveError::Occupied`] (on a file
/// tier, [`local::taken`], which tells a folder there from a file).
/// object_store answers every HTTP 409 `AlreadyExists` too, so only the
/// write's own answer is read so.
fn write_error(
    (dst, key, to): (&TierStore, &str, &Path),
    if_absent: bool,
    e: object_store::Error,
) -> MoveError {
    let context = format!("put {}", dst.url_of(key));
    match (&e, &dst.local) {
        (object_store::Error::AlreadyExists { .. }, Some(local)) if if_absent => {
            match local.file_of(to) {
                Ok(file) => local::taken(&file),
                Err(e) => MoveError::Permanent(format!("{context}: {e:#}")),
            }
        }
        (object_store::Error::AlreadyExists { .. }, None) if if_absent => {
            MoveError::Occupied(format!(
                "{context}: {e}: another object was written at the key while the job ran; \
                 a move never overwrites one"
            ))
        }
        _ => MoveError::from_store(&context, e),
    }
}

/// The code of a store's XML error answer (`<Code>InvalidObjectState</Code>`
/// on S3, `<Code>BlobArchived</Code>` on Azure). It is read from the
/// innermost error, which holds the answer's status and body alone: the
/// object's key and URL, which the outer errors name, cannot pass for one,
/// and the body escapes any key it quotes.
fn error_code(e: &object_store::Error) -> Option<String> {
    let mut innermost: &dyn std::error::Error = e;
    while let Some(next) = innermost.source() {
        innermost = next;
    }
    let text = innermost.to_string();
    let start = text.find("<Code>")? + "<Code>".len();
    let len = text[start..].find("</Code>")?;
    Some(text[start..start + len].to_owned())
}

/// Where `key` lives on `tier`; a key that could name anything outside it
/// is a permanent error.
pub fn location(tier: &TierStore, key: &str) -> Result<Path, MoveError> {
    tier.location(key)
        .map_err(|e| MoveError::Permanent(format!("{e:#}")))
}

/// The bytes and digest of a copy or a read-back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digest256 {
    /// Lowercase hex SHA-256.
    pub sha256: String,
    /// Length in bytes.
    pub bytes: u64,
}

/// Bytes read per chunk from a local file. object_store's own stream reads
/// 8 KiB per blocking task, which caps local copies far below the disk.
const LOCAL_CHUNK: usize = 1 << 20;

/// Chunks of a GET queued at most for the writer of a file tier
/// ([`local::write_received`]): 16 MiB of a local file's chunks, less of
/// a stream's.
const CHUNKS_QUEUED: usize = 16;

/// Chunks at least this large are hashed on a blocking thread, so that
/// hashing never stalls the async workers.
const HASH_OFF_THREAD: usize = 256 << 10;

/// The bytes of a GET: local files in large chunks read ahead on a
/// blocking thread (two chunks buffered), other stores as they stream. A
/// local file's pages are released from the page cache behind the read,
/// as in a direct copy ([`crate::local`]): what the mover reads is a
/// source it will delete or a copy it reads back once.
fn byte_stream(got: GetResult) -> BoxStream<'static, object_store::Result<Bytes>> {
    match got.payload {
        GetResultPayload::File(file, path) => local_chunks(file, path, got.range),
        GetResultPayload::Stream(stream) => stream,
    }
}

fn local_chunks(
    mut file: File,
    path: PathBuf,
    range: Range<u64>,
) -> BoxStream<'static, object_store::Result<Bytes>> {
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    tokio::task::spawn_blocking(move || {
        let mut read = || -> std::io::Result<()> {
            file.seek(SeekFrom::Start(range.start))?;
            let mut at = range.start;
            let mut release = local::ReleaseBehind::new(range.start, range.end);
            while at < range.end {
                let n = (range.end - at).min(LOCAL_CHUNK as u64) as usize;
                let mut buf = vec![0u8; n];
                file.read_exact(&mut buf)?;
                at += n as u64;
                release.read_to(&file, at);
                if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                    return Ok(()); // The reader went away.
                }
            }
            Ok(())
        };
        if let Err(e) = read() {
            let error = object_store::Error::Generic {
                store: "LocalFileSystem",
                source: format!("read {}: {e}", path.display()).into(),
            };
            let _ = tx.blocking_send(Err(error));
        }
    });
    futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
    .boxed()
}

/// The next chunk of a copy's `stream`, had within both tiers' byte caps
/// and added to `hasher`; `None` at its end.
async fn next_chunk(
    stream: &mut BoxStream<'static, object_store::Result<Bytes>>,
    (src, dst): (&TierStore, &TierStore),
    hasher: &mut Sha256,
    get_failed: impl Fn(object_store::Error) -> MoveError,
) -> Result<Option<Bytes>, MoveError> {
    let Some(chunk) = stream.next().await else {
        return Ok(None);
    };
    let chunk = chunk.map_err(get_failed)?;
    src.limits.bytes(chunk.len()).await;
    dst.limits.bytes(chunk.len()).await;
    let (h, chunk) = hash(std::mem::take(hasher), chunk).await?;
    *hasher = h;
    Ok(Some(chunk))
}

/// Adds `chunk` to `hasher`, off the async threads when it is large.
async fn hash(mut hasher: Sha256, chunk: Bytes) -> Result<(Sha256, Bytes), MoveError> {
    if chunk.len() < HASH_OFF_THREAD {
        hasher.update(&chunk);
        return Ok((hasher, chunk));
    }
    tokio::task::spawn_blocking(move || {
        hasher.update(&chunk);
        (hasher, chunk)
    })
    .await
    .map_err(|e| MoveError::Transient(format!("hashing task failed: {e}")))
}

/// Fails [`MoveError::NotFound`] where the file of `location` on a
/// `file://` tier is reached through a symbolic link: no object of the
/// tier is there ([`local::through_link`]). object_store's file store,
/// which would follow it, is asked only after this.
fn unlinked(local: &LocalTier, location: &Path) -> Result<(), MoveError> {
    let file = local
        .file_of(location)
        .map_err(|e| MoveError::Permanent(format!("{e:#}")))?;
    if local::through_link(&file) {
        return Err(MoveError::NotFound(local::linked("look at", &file)));
    }
    Ok(())
}

/// HEAD of `key` on `tier`.
pub async fn head(tier: &TierStore, key: &str) -> Result<ObjectMeta, MoveError> {
    let location = location(tier, key)?;
    if let Some(local) = &tier.local {
        unlinked(local, &location)?;
    }
    tier.limits.op().await;
    tier.store
        .head(&location)
        .await
        .map_err(|e| MoveError::from_store(&format!("head {}", tier.url_of(key)), e))
}

/// What a copy produced.
#[derive(Debug, Clone)]
pub struct Copied {
    /// The digest of the bytes read from the source and written.
    pub digest: Digest256,
    /// The destination read back, when the copy did that itself (a copy
    /// between two `file://` tiers reads back while it writes).
    pub read_back: Option<Digest256>,
    /// The destination's ETag as its store answered the write, where
    /// known: what tells the job's copy from an object written over it.
    pub e_tag: Option<String>,
    /// The source as the copy read it: after the switch it is deleted only
    /// if its key still holds this ([`delete_if_same`]).
    pub source: Option<protocol::Seen>,
}

/// A copy written but perhaps not yet durable: what it produced is had only
/// through [`Unsynced::synced`], which first waits for the destination
/// tier's group sync, so nothing can act on a copy that power loss could
/// still undo (I1).
#[must_use = "a copy counts only once synced"]
pub struct Unsynced {
    copied: Copied,
    sync: Option<GroupSync>,
}

impl Unsynced {
    /// Whether only the wait for the disk is left: the copy has read itself
    /// back (a direct copy between two `file://` tiers), so nothing more
    /// loads the stores.
    pub fn only_sync_left(&self) -> bool {
        self.copied.read_back.is_some()
    }

    /// Waits until the copy is as durable as its tier makes writes: for a
    /// tier with a group sync, until a sync that began after the copy's
    /// writes has ended.
    pub async fn synced(self) -> Result<Copied, MoveError> {
        if let Some(sync) = &self.sync {
            sync.sync().await?;
        }
        Ok(self.copied)
    }
}

/// Hears the id of a multipart upload before its first part is sent, and
/// answers once the id is recorded.
pub type RecordUpload<'a> = &'a (dyn Fn(String) -> BoxFuture<'static, anyhow::Result<()>> + Sync);

/// Whether a copy may take the place of what its destination key holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publish {
    /// The key held nothing when the job looked: the copy is written only
    /// if it still holds nothing (`If-None-Match: *`, a link that does not
    /// replace), else the copy fails [`MoveError::Occupied`], on a tier
    /// whose store can write so ([`TierStore::conditional_put`]).
    IfAbsent,
    /// The key holds a copy of the job's own (an orphan on record, an
    /// earlier attempt's) or the source's very bytes: written over.
    Replace,
}

/// How a copy writes.
#[derive(Clone, Copy)]
pub struct CopyPlan<'a> {
    /// Objects up to this size are one PUT; larger ones go in parts of it.
    pub part_size: usize,
    /// Parts buffered at most.
    pub parts_in_flight: usize,
    /// The destination file tier's group sync ([`crate::durable`]): a direct
    /// copy waits for it instead of fsyncing its own file and folder.
    pub dest_sync: Option<&'a GroupSync>,
    /// Where a multipart upload's id goes, on a tier whose multipart API
    /// the mover uses ([`TierStore::multipart`]).
    pub record_upload: Option<RecordUpload<'a>>,
    /// Over what the copy may be written.
    pub publish: Publish,
    /// The catalog's SHA-256 of the object, when it has one: a copy of
    /// other bytes fails [`MoveError::SourceChanged`] before it is put at
    /// the key.
    pub catalog_sha: Option<&'a str>,
}

/// Parts a multipart upload may have: S3's and GCS's limit (Azure allows
/// more blocks).
pub const MAX_PARTS: u64 = 10_000;

/// The part size of a multipart upload of `size` bytes: the configured
/// one, or for an object larger than [`MAX_PARTS`] of it, the smallest
/// whole MiB that fits it in that many parts (a 5 TiB object: 525 MiB).
/// Memory grows with it: a copy buffers up to its parts in flight.
pub fn part_size_for(size: u64, configured: usize) -> usize {
    const MIB: u64 = 1 << 20;
    let needed = size.div_ceil(MAX_PARTS).div_ceil(MIB) * MIB;
    configured.max(usize::try_from(needed).unwrap_or(usize::MAX))
}

/// Streams `key` from `src` to `dst`, hashing as the bytes flow. Between two
/// `file://` tiers the copy is direct ([`crate::local`]); otherwise objects
/// up to the plan's part size are one PUT and larger ones a multipart upload
/// with at most its parts in flight buffered (to a `file://` tier, a staged
/// file written as the bytes come). `on_progress` sees bytes done.
/// The copy is as durable as the destination tier makes its writes once
/// [`Unsynced::synced`] returns. A missing source is [`MoveError::NotFound`],
/// found by the GET itself: no HEAD goes before it.
pub async fn copy(
    src: &TierStore,
    dst: &TierStore,
    key: &str,
    plan: CopyPlan<'_>,
    mut on_progress: impl FnMut(u64),
) -> Result<Unsynced, MoveError> {
    let CopyPlan {
        part_size,
        parts_in_flight: max_parts_in_flight,
        dest_sync,
        record_upload,
        publish,
        catalog_sha,
    } = plan;
    let if_absent = publish == Publish::IfAbsent && dst.conditional_put;
    let permanent = |e: anyhow::Error| MoveError::Permanent(format!("{e:#}"));
    let from = location(src, key)?;
    let to = location(dst, key)?;
    // Errors name the object's URL; it is formatted only when one happens.
    let get_failed = |e| MoveError::from_store(&format!("get {}", src.url_of(key)), e);
    src.limits.op().await;
    if let (Some(src_local), Some(dst_local)) = (&src.local, &dst.local) {
        let source = src_local.file_of(&from).map_err(permanent)?;
        let dest = dst_local.file_of(&to).map_err(permanent)?;
        let put = local::Put {
            fsync: dst_local.fsync && dest_sync.is_none(),
            publish,
            sha256: catalog_sha.map(str::to_owned),
        };
        let copied = copy_files(src, dst, (source, dest), put, on_progress).await?;
        // Only tiers that fsync have a group sync (`durable::Syncs`).
        return Ok(Unsynced {
            copied: Copied {
                digest: copied.copied,
                read_back: Some(copied.read_back),
                e_tag: copied.e_tag,
                source: copied.source,
            },
            sync: dest_sync.cloned(),
        });
    }
    // object_store's file store follows symbolic links; a move does not
    // (`local::through_link`).
    if let Some(src_local) = &src.local {
        unlinked(src_local, &from)?;
    }
    if let Some(dst_local) = &dst.local {
        let dest = dst_local.file_of(&to).map_err(permanent)?;
        if local::through_link(&dest) {
            return Err(MoveError::Permanent(local::linked("write", &dest)));
        }
    }
    let got = src.store.get(&from).await.map_err(get_failed)?;
    let source = got.meta.clone();
    let mut stream = byte_stream(got);
    let mut hasher = Sha256::new();
    let mut done: u64 = 0;
    // Checked once every byte is read, before the copy is put at the key:
    // a copy that fails leaves nothing there but when its put itself fails.
    let unchanged = async |done: u64, hasher: &Sha256| {
        if done != source.size {
            return Err(MoveError::SourceChanged(format!(
                "{} read {done} bytes, GET said {}",
                src.url_of(key),
                source.size
            )));
        }
        // A HEAD that differs from what the GET found: the source changed
        // while it was read.
        let after = head(src, key).await?;
        if protocol::identity(&after) != protocol::identity(&source) {
            return Err(MoveError::SourceChanged(format!(
                "{} was modified while copied",
                src.url_of(key)
            )));
        }
        local::check_catalog(&hex::encode(hasher.clone().finalize()), catalog_sha)
    };

    let written: PutResult = if source.size <= part_size as u64 {
        let mut parts = Vec::new();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(get_failed)?;
            src.limits.bytes(chunk.len()).await;
            let (h, chunk) = hash(hasher, chunk).await?;
            hasher = h;
            done += chunk.len() as u64;
            parts.push(chunk);
        }
        unchanged(done, &hasher).await?;
        let payload: PutPayload = parts.into_iter().collect();
        dst.limits.op().await;
        dst.limits.bytes(done as usize).await;
        let opts = PutOptions {
            attributes: dst.attributes.clone(),
            mode: if if_absent {
                PutMode::Create
            } else {
                PutMode::Overwrite
            },
            ..PutOptions::default()
        };
        let put = dst.store.put_opts(&to, payload, opts).await;
        let put = put.map_err(|e| write_error((dst, key, &to), if_absent, e))?;
        on_progress(done);
        put
    } else if let Some(dst_local) = &dst.local {
        // Into a file tier from another store. object_store's upload would
        // rename its file over whatever is at the key: this one is put
        // there as `publish` allows, as a copy between file tiers is.
        dst.limits.op().await;
        let dest = dst_local.file_of(&to).map_err(permanent)?;
        let (tx, rx) = tokio::sync::mpsc::channel(CHUNKS_QUEUED);
        let (go, went) = tokio::sync::oneshot::channel();
        let (size, how) = (source.size, (dst_local.fsync, publish));
        let writer =
            tokio::task::spawn_blocking(move || local::write_received(&dest, size, how, rx, went));
        // `None`: the writer stopped, its error says why.
        let sent: Result<Option<Sha256>, MoveError> = async {
            let mut hasher = hasher;
            while let Some(chunk) =
                next_chunk(&mut stream, (src, dst), &mut hasher, get_failed).await?
            {
                done += chunk.len() as u64;
                if tx.send(chunk).await.is_err() {
                    return Ok(None);
                }
                on_progress(done);
            }
            drop(tx);
            unchanged(done, &hasher).await?;
            Ok(Some(hasher))
        }
        .await;
        // Told to put the file at the key only if every byte came and the
        // source is unchanged; dropped unsaid otherwise.
        if let Ok(Some(_)) = sent {
            let _ = go.send(());
        } else {
            drop(go);
        }
        let wrote = writer
            .await
            .map_err(|e| MoveError::Transient(format!("write task failed: {e}")))?;
        let e_tag = match sent? {
            Some(h) => {
                hasher = h;
                wrote?
            }
            None => {
                wrote?;
                return Err(MoveError::Transient("the file writer stopped".into()));
            }
        };
        PutResult {
            e_tag,
            version: None,
            extensions: Default::default(),
        }
    } else {
        dst.limits.op().await;
        let put_failed = |e| write_error((dst, key, &to), if_absent, e);
        // Completions made create-only are the mover's own requests (S3's
        // and Azure's): object_store's send no condition.
        let upload: Box<dyn MultipartUpload> = match (&dst.multipart, record_upload, &dst.azure) {
            (Some(multipart), Some(record), _) => {
                let mut upload =
                    KnownUpload::start(multipart, dst, &to, record, put_failed).await?;
                if let Some(s3) = dst.s3.as_ref().filter(|_| if_absent) {
                    upload.if_absent = Some(IfAbsent::S3(dst.clone(), s3.clone()));
                }
                Box::new(upload)
            }
            (None, _, Some(azure)) if if_absent && signed::can_sign_azure(azure).await => {
                Box::new(KnownUpload::blocks(dst, azure, &to))
            }
            _ => dst
                .store
                .put_multipart_opts(&to, multipart_options(dst))
                .await
                .map_err(put_failed)?,
        };
        let part_size = part_size_for(source.size, part_size);
        let mut writer = WriteMultipart::new_with_chunk_size(upload, part_size);
        let result: Result<Sha256, MoveError> = async {
            let mut hasher = hasher;
            while let Some(chunk) =
                next_chunk(&mut stream, (src, dst), &mut hasher, get_failed).await?
            {
                let before = done;
                done += chunk.len() as u64;
                // One request per part written.
                if done / part_size as u64 > before / part_size as u64 {
                    dst.limits.op().await;
                }
                writer
                    .wait_for_capacity(max_parts_in_flight)
                    .await
                    .map_err(put_failed)?;
                writer.put(chunk);
                on_progress(done);
            }
            unchanged(done, &hasher).await?;
            Ok(hasher)
        }
        .await;
        match result {
            Ok(h) => {
                hasher = h;
                writer.finish().await.map_err(put_failed)?
            }
            Err(e) => {
                // Abort so no partial upload lingers; the copy failed anyway.
                let _ = writer.abort().await;
                return Err(e);
            }
        }
    };
    // Written through the destination's store, whose put or multipart
    // completion returns once the write is as durable as the tier makes
    // writes: nothing is left to sync.
    Ok(Unsynced {
        copied: Copied {
            digest: Digest256 {
                sha256: hex::encode(hasher.finalize()),
                bytes: done,
            },
            read_back: None,
            e_tag: written.e_tag,
            source: Some(protocol::Seen::of(&source)),
        },
        sync: None,
    })
}

/// The options of a multipart upload to `tier`: its storage class.
fn multipart_options(tier: &TierStore) -> PutMultipartOptions {
    PutMultipartOptions {
        attributes: tier.attributes.clone(),
        ..PutMultipartOptions::default()
    }
}

/// The tier of an upload whose completion must find its key empty, which
/// the mover sends itself with `If-None-Match: *` ([`crate::uploads`]).
#[derive(Debug)]
enum IfAbsent {
    /// `CompleteMultipartUpload`.
    S3(TierStore, S3Tier),
    /// Put Block List.
    Azure(TierStore, AzureTier),
}

/// An upload through a store's multipart API that the mover drives itself,
/// through [`WriteMultipart`] like any other upload: under an id recorded
/// before the first part (S3, `memory://`), or Azure's blocks, which have
/// none, to be completed only where the key is empty.
#[derive(Debug)]
struct KnownUpload {
    store: Multipart,
    location: Path,
    id: MultipartId,
    /// One entry per part sent, filled as each is acknowledged.
    parts: Arc<Mutex<Vec<Option<PartId>>>>,
    /// Set when the completion must find the key empty.
    if_absent: Option<IfAbsent>,
    /// The completion found another object at the key. The abort that
    /// [`WriteMultipart`] then makes is left to the job's end
    /// (`Mover::abort_uploads`), so that its failure cannot hide that
    /// answer: a job that took it for a failed copy would discard the copy,
    /// which is the other object.
    taken: bool,
}

impl KnownUpload {
    /// Creates the upload on `tier` and has `record` record its id.
    async fn start(
        multipart: &Multipart,
        tier: &TierStore,
        location: &Path,
        record: RecordUpload<'_>,
        put_failed: impl Fn(object_store::Error) -> MoveError,
    ) -> Result<Self, MoveError> {
        let id = multipart
            .0
            .create_multipart_opts(location, multipart_options(tier))
            .await
            .map_err(&put_failed)?;
        if let Err(e) = record(id.clone()).await {
            let _ = multipart.0.abort_multipart(location, &id).await;
            return Err(MoveError::Transient(format!("record upload id: {e:#}")));
        }
        Ok(Self {
            store: multipart.clone(),
            location: location.clone(),
            id,
            parts: Arc::default(),
            if_absent: None,
            taken: false,
        })
    }

    /// An upload of blocks to the Azure tier `tier`, committed only if the
    /// key is empty then. Azure's blocks need no upload to be created, nor
    /// aborted (the store discards uncommitted blocks), so it has no id.
    fn blocks(tier: &TierStore, azure: &AzureTier, location: &Path) -> Self {
        Self {
            store: Multipart(azure.store.clone()),
            location: location.clone(),
            id: MultipartId::new(),
            parts: Arc::default(),
            if_absent: Some(IfAbsent::Azure(tier.clone(), azure.clone())),
            taken: false,
        }
    }

    fn parts(&self) -> MutexGuard<'_, Vec<Option<PartId>>> {
        self.parts.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[async_trait::async_trait]
impl MultipartUpload for KnownUpload {
    fn put_part(&mut self, data: PutPayload) -> UploadPart {
        let index = {
            let mut parts = self.parts();
            parts.push(None);
            parts.len() - 1
        };
        let (store, location, id) = (self.store.clone(), self.location.clone(), self.id.clone());
        let parts = self.parts.clone();
        async move {
            let part = store.0.put_part(&location, &id, index, data).await?;
            parts.lock().unwrap_or_else(PoisonError::into_inner)[index] = Some(part);
            Ok(())
        }
        .boxed()
    }

    async fn complete(&mut self) -> object_store::Result<PutResult> {
        let parts: Option<Vec<PartId>> = std::mem::take(&mut *self.parts()).into_iter().collect();
        let parts = parts.ok_or_else(|| object_store::Error::Generic {
            store: "mover",
            source: "a part of the upload was never acknowledged".into(),
        })?;
        if let Some(if_absent) = &self.if_absent {
            let location = &self.location;
            let completed = match if_absent {
                IfAbsent::S3(tier, s3) => {
                    uploads::complete_if_absent(tier, s3, location, &self.id, parts).await
                }
                IfAbsent::Azure(tier, azure) => {
                    uploads::commit_if_absent(tier, azure, location, &parts).await
                }
            };
            self.taken = matches!(completed, Err(object_store::Error::AlreadyExists { .. }));
            return completed;
        }
        self.store
            .0
            .complete_multipart(&self.location, &self.id, parts)
            .await
    }

    async fn abort(&mut self) -> object_store::Result<()> {
        if self.taken {
            return Ok(());
        }
        self.store.0.abort_multipart(&self.location, &self.id).await
    }
}

/// Aborts the multipart upload `id` of `key` on `tier`, if the tier's
/// multipart API is the mover's; one already completed or aborted is fine.
pub async fn abort_upload(tier: &TierStore, key: &str, id: &str) -> Result<(), MoveError> {
    let Some(multipart) = &tier.multipart else {
        return Ok(());
    };
    let location = location(tier, key)?;
    tier.limits.op().await;
    let Err(e) = multipart.0.abort_multipart(&location, &id.to_owned()).await else {
        return Ok(());
    };
    match MoveError::from_store(&format!("abort upload of {}", tier.url_of(key)), e) {
        MoveError::NotFound(_) => Ok(()),
        other => Err(other),
    }
}

/// The direct copy between two `file://` tiers, on a blocking thread; the
/// tiers' byte caps are waited for there, progress comes back through a watch.
async fn copy_files(
    src: &TierStore,
    dst: &TierStore,
    (source, dest): (PathBuf, PathBuf),
    put: local::Put,
    mut on_progress: impl FnMut(u64),
) -> Result<crate::local::Copied, MoveError> {
    let limits = [src.limits.clone(), dst.limits.clone()];
    let (done_tx, mut done_rx) = tokio::sync::watch::channel(0u64);
    let runtime = tokio::runtime::Handle::current();
    dst.limits.op().await;
    let mut task = tokio::task::spawn_blocking(move || {
        crate::local::copy_file(&source, &dest, &put, |done, chunk| {
            for limit in limits.iter().filter(|l| !l.is_unlimited()) {
                runtime.block_on(limit.bytes(chunk));
            }
            done_tx.send_replace(done);
        })
    });
    let copied = loop {
        tokio::select! {
            joined = &mut task => {
                break joined.map_err(|e| MoveError::Transient(format!("copy task failed: {e}")))??;
            }
            Ok(()) = done_rx.changed() => on_progress(*done_rx.borrow_and_update()),
        }
    };
    on_progress(copied.copied.bytes);
    Ok(copied)
}

/// The digest of a copy on an archived tier ([`TierStore::archived`]),
/// which cannot be read back: the copy's own digest once a HEAD finds the
/// object at its size. The store checked the SHA-256 that each request of
/// the upload signed (object_store signs payloads), so the bytes it holds
/// are the bytes hashed.
pub async fn archived_digest(
    tier: &TierStore,
    key: &str,
    copied: &Digest256,
) -> Result<Digest256, MoveError> {
    let found = head(tier, key).await?;
    Ok(Digest256 {
        sha256: copied.sha256.clone(),
        bytes: found.size,
    })
}

/// Reads `key` back from `tier` and hashes it.
pub async fn read_digest(tier: &TierStore, key: &str) -> Result<Digest256, MoveError> {
    let location = location(tier, key)?;
    if let Some(local) = &tier.local {
        unlinked(local, &location)?;
    }
    let ctx = format!("read back {}", tier.url_of(key));
    tier.limits.op().await;
    let got = tier
        .store
        .get(&location)
        .await
        .map_err(|e| MoveError::from_store(&ctx, e))?;
    let mut stream = byte_stream(got);
    let mut hasher = Sha256::new();
    let mut bytes = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| MoveError::from_store(&ctx, e))?;
        tier.limits.bytes(chunk.len()).await;
        let (h, chunk) = hash(hasher, chunk).await?;
        hasher = h;
        bytes += chunk.len() as u64;
    }
    Ok(Digest256 {
        sha256: hex::encode(hasher.finalize()),
        bytes,
    })
}

/// Removes what an interrupted upload of `key` left on a `file://` tier:
/// object_store stages uploads as `<object>#<digits>` beside the object and
/// renames on completion, so a crash mid-upload leaves such a file behind.
/// Other stores abort or expire incomplete uploads themselves.
pub async fn remove_staged(tier: &TierStore, key: &str) -> Result<usize, MoveError> {
    let Some(local) = &tier.local else {
        return Ok(0);
    };
    // Nothing is ever staged for a key the tier refuses.
    let Ok(location) = tier.location(key) else {
        return Ok(0);
    };
    let path = local
        .file_of(&location)
        .map_err(|e| MoveError::Permanent(format!("{e:#}")))?;
    let (Some(dir), Some(name)) = (path.parent(), path.file_name().and_then(|n| n.to_str())) else {
        return Ok(0);
    };
    // Nothing is staged through a symbolic link either.
    if local::through_link(dir) {
        return Ok(0);
    }
    let prefix = format!("{name}#");
    let mut removed = 0;
    let mut entries = match tokio::fs::read_dir(dir).await {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound || no_such_path(&e) => return Ok(0),
        Err(e) => return Err(MoveError::Transient(format!("list {}: {e}", dir.display()))),
    };
    while let Some(entry) = entries
        .next_entry()
        .await
        .map_err(|e| MoveError::Transient(e.to_string()))?
    {
        let file_name = entry.file_name();
        let Some(staged) = file_name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
            continue;
        };
        if !staged.is_empty() && staged.bytes().all(|b| b.is_ascii_digit()) {
            match tokio::fs::remove_file(entry.path()).await {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(MoveError::Transient(format!(
                        "remove {}: {e}",
                        entry.path().display()
                    )));
                }
            }
        }
    }
    Ok(removed)
}

/// Deletes `key` from `tier`; an object [`MoveError::from_store`] finds
/// missing (a path that cannot exist included) counts as deleted.
///
/// No object can be at a key the tier refuses (a `file://` tier keeps
/// `<name>#<digits>` for staged files) or where a folder is: there is
/// nothing to delete. (A failed copy to such a key is discarded this way;
/// an error would hold its job for good.)
pub async fn delete(tier: &TierStore, key: &str) -> Result<(), MoveError> {
    let Ok(location) = tier.location(key) else {
        return Ok(());
    };
    // Through a symbolic link there is no object of the tier to delete.
    if let Some(local) = &tier.local
        && let Err(MoveError::NotFound(_)) = unlinked(local, &location)
    {
        return Ok(());
    }
    tier.limits.op().await;
    let Err(e) = tier.store.delete(&location).await else {
        return Ok(());
    };
    if io_cause(&e).is_some_and(|io| io.kind() == std::io::ErrorKind::IsADirectory) {
        return Ok(());
    }
    match MoveError::from_store(&format!("delete {}", tier.url_of(key)), e) {
        MoveError::NotFound(_) => Ok(()),
        other => Err(other),
    }
}

/// What [`delete_if_same`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Deleted {
    /// The key no longer holds the object: deleted now, or gone already.
    Gone,
    /// The key holds another object than the one seen (this one): kept.
    Kept(ObjectMeta),
}

/// Deletes `key` from `tier` only if it still holds `seen`, the object a
/// look (or the copy's read) found there, so that one written at the key
/// since is kept. On S3 and on Azure with an account key the delete itself
/// carries the condition (`If-Match` on `seen`'s ETag); elsewhere, and on
/// a tier whose `conditional_delete` (or `conditional_put`) is
/// `"disabled"`, the key is looked at again and deleted if it holds what
/// was seen: two requests, a window between.
pub async fn delete_if_same(
    tier: &TierStore,
    key: &str,
    seen: protocol::Identity<'_>,
) -> Result<Deleted, MoveError> {
    let Ok(location) = tier.location(key) else {
        return Ok(Deleted::Gone);
    };
    if let (_, Some(e_tag), _) = seen
        && let Some(answer) = signed::delete_if_match(tier, &location, e_tag).await
    {
        if answer? {
            return Ok(Deleted::Gone);
        }
        // A 412 is not always another object: Azure answers it too for a
        // blob under a lease the request does not name. What is there says.
        return match head(tier, key).await {
            Ok(now) if protocol::identity(&now) == seen => Err(MoveError::Permanent(format!(
                "{}: the store refused a delete conditional on the object it holds (412)",
                tier.url_of(key)
            ))),
            Ok(now) => Ok(Deleted::Kept(now)),
            Err(MoveError::NotFound(_)) => Ok(Deleted::Gone),
            Err(e) => Err(e),
        };
    }
    match head(tier, key).await {
        Ok(now) if protocol::identity(&now) != seen => Ok(Deleted::Kept(now)),
        Ok(_) => delete(tier, key).await.map(|()| Deleted::Gone),
        Err(MoveError::NotFound(_)) => Ok(Deleted::Gone),
        Err(e) => Err(e),
    }
}

/// Whether a file system error says no file can be at the path: a folder
/// on it is a file, or a name on it is too long. (Network errors never
/// have these kinds, so this holds for any store.)
fn no_such_path(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        e.kind(),
        ErrorKind::NotADirectory | ErrorKind::InvalidFilename
    )
}

/// The file system error behind a store's error, if it has one.
fn io_cause(e: &object_store::Error) -> Option<&std::io::Error> {
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        cause = c.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_grow_so_that_any_object_fits_in_the_stores_part_limit() {
        const MIB: u64 = 1 << 20;
        let eight = 8 << 20;
        assert_eq!(part_size_for(1 << 30, eight), eight);
        assert_eq!(part_size_for(MAX_PARTS * 8 * MIB, eight), eight);
        let over = part_size_for(MAX_PARTS * 8 * MIB + 1, eight);
        assert_eq!(over as u64, 9 * MIB);
        let max = strata_proto::validate::MAX_SIZE_BYTES;
        let part = part_size_for(max, eight) as u64;
        assert_eq!(part, 525 * MIB);
        assert!(max.div_ceil(part) <= MAX_PARTS);
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_file_read_through_its_store_is_released_from_the_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let tier: strata_runtime::tiers::Tier = toml::from_str(&format!(
            "name = 't'\nurl = 'file://{}'",
            dir.path().display()
        ))
        .unwrap();
        let store = tier.open().unwrap();
        let len = 2 * local::RELEASE_EVERY as usize + 12345;
        let file = dir.path().join("object.bin");
        let Some(data) = local::page_cache::cached_file(&file, len) else {
            return;
        };

        let digest = read_digest(&store, "object.bin").await.unwrap();

        assert_eq!(digest.sha256, hex::encode(Sha256::digest(&data)));
        assert_eq!(digest.bytes, len as u64);
        let after = local::page_cache::cached_bytes(&file).unwrap();
        assert!(
            after < len as u64 / 8,
            "{after} of {len} bytes still cached"
        );
    }

    #[test]
    fn a_file_operation_the_system_refuses_is_permanent_and_a_reset_transient() {
        let refused = object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(std::io::Error::from(std::io::ErrorKind::PermissionDenied)),
        };
        assert_eq!(
            MoveError::from_store("delete", refused).class(),
            "permanent"
        );
        let reset = object_store::Error::Generic {
            store: "LocalFileSystem",
            source: Box::new(std::io::Error::from(std::io::ErrorKind::ConnectionReset)),
        };
        assert_eq!(MoveError::from_store("delete", reset).class(), "transient");
    }

    /// A store's answer, as object_store nests it: the path outside, the
    /// status and body innermost.
    fn answered(path: &str, body: &str) -> object_store::Error {
        #[derive(Debug, thiserror::Error)]
        #[error("Error performing GET http://store/{path}")]
        struct Request {
            path: String,
            #[source]
            answer: std::io::Error,
        }
        object_store::Error::Generic {
            store: "S3",
            source: Box::new(Request {
                path: path.into(),
                answer: std::io::Error::other(format!(
                    "Server returned non-2xx status code: {body}"
                )),
            }),
        }
    }

    #[test]
    fn store_error_codes_are_read_from_the_answer_not_the_key() {
        let archived = "403 Forbidden: <Error><Code>InvalidObjectState</Code></Error>";
        let e = MoveError::from_store("get k", answered("k", archived));
        assert_eq!(e.class(), "archived");
        let azure = "409 Conflict: <Error><Code>BlobArchived</Code></Error>";
        assert_eq!(
            MoveError::from_store("get k", answered("k", azure)).class(),
            "archived"
        );
        // A key that reads like a code is only a key: a 503 stays transient.
        let key = "logs/<Code>InvalidObjectState</Code>.csv";
        let busy = "503 Service Unavailable: <Error><Code>SlowDown</Code></Error>";
        let e = MoveError::from_store(&format!("get {key}"), answered(key, busy));
        assert_eq!(e.class(), "transient", "{e}");
        let class = "400 Bad Request: <Error><Code>InvalidStorageClass</Code></Error>";
        assert_eq!(
            MoveError::from_store("put k", answered("k", class)).class(),
            "permanent"
        );
        let held = "409 Conflict: <Error><Code>BlobImmutableDueToPolicy</Code></Error>";
        assert_eq!(
            MoveError::from_store("delete k", answered("k", held)).class(),
            "permanent"
        );
    }
}
