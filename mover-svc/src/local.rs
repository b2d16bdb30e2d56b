//! Copies between two `file://` tiers without going through object_store's
//! per-part tasks: one blocking call reads the source in chunks, hashes
//! them, writes them to a staged file beside the destination, and reads the
//! destination back and hashes it again.
//!
//! On a large object the work is spread over threads so that the two
//! SHA-256 passes run on two cores at once: the reader hashes each chunk and
//! hands it to a writer; a verifier reads every written range back through
//! its own file handle and hashes it; a flusher syncs the staged file while
//! the copy goes on, so the final fsync has little left to wait for.
//!
//! A large copy leaves little in the page cache: the reader releases the
//! source's pages behind it (the source is deleted once the copy counts),
//! and the flusher releases the copy's pages once they are synced and read
//! back. Moving an object through the cache would push out what the
//! machine's other readers use, and on a virtual machine that hands free
//! memory back to its host, every page a copy takes anew costs a fault in
//! the host: measured here, 2.3 s of CPU per GiB of new page cache after
//! half a minute idle, against 0.15 s for pages used again at once.
//!
//! The copy is written to a file without a name (`O_TMPFILE`) that a link
//! puts in place once it is whole; where that cannot be, to `<object>#<n>`,
//! renamed into place, as object_store's `LocalFileSystem` stages, so
//! [`crate::transfer::remove_staged`] cleans up after an interrupted copy
//! either way. The fsyncs (file, then its folder) are the store's.

use std::{
    fs::{File, OpenOptions},
    io::{ErrorKind, Read, Seek, Write},
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering},
        mpsc::{Receiver, SyncSender, TrySendError, sync_channel},
    },
    thread,
};

use sha2::{Digest, Sha256};

use crate::{
    protocol::Seen,
    transfer::{Digest256, MoveError, Publish},
};

/// Bytes per read and write.
const CHUNK: usize = 1 << 20;

/// The largest object copied in one go on the calling thread (one chunk).
pub const ONE_CHUNK: u64 = CHUNK as u64;

/// Chunks buffered between the reader and the writer: memory is
/// about `CHUNK × (BUFFERS + 1)` (the verifier's own buffer).
const BUFFERS: usize = 8;

/// Alignment of the copy's buffers: a page. Copies between the page cache
/// and a buffer that starts mid-page run at about half speed (measured
/// here, `examples/copy_rate.rs`); the allocator hands out large blocks 16
/// bytes into a page.
const PAGE: usize = 4096;

/// A chunk buffer (1 MiB) that starts on a page boundary.
pub struct Chunk {
    buf: Vec<u8>,
    /// Where the page-aligned part of `buf` starts.
    start: usize,
    len: usize,
}

impl Chunk {
    #[allow(clippy::new_without_default)]
    pub fn new() -> Self {
        let buf = vec![0u8; CHUNK + PAGE];
        let start = buf.as_ptr().align_offset(PAGE).min(PAGE);
        Chunk { buf, start, len: 0 }
    }

    /// The first `len` bytes (at most 1 MiB), to be filled.
    pub fn fill(&mut self, len: usize) -> &mut [u8] {
        self.len = len;
        &mut self.buf[self.start..self.start + len]
    }

    /// What the last [`Chunk::fill`] asked for.
    pub fn bytes(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.len]
    }
}

/// Written bytes after which the flusher syncs the staged file.
const FLUSH_EVERY: u64 = 64 << 20;

/// Bytes a reader reads between releasing their pages from the cache.
pub(crate) const RELEASE_EVERY: u64 = 64 << 20;

/// A sequential reader's release of the page cache behind it: every
/// [`RELEASE_EVERY`] bytes and at the end of its range.
pub(crate) struct ReleaseBehind {
    released: u64,
    end: u64,
}

impl ReleaseBehind {
    /// For a read of the bytes from `start` to `end` of a file.
    pub(crate) fn new(start: u64, end: u64) -> Self {
        Self {
            released: start,
            end,
        }
    }

    /// The read has reached `at`: releases what lies behind it when due.
    pub(crate) fn read_to(&mut self, file: &File, at: u64) {
        if at - self.released >= RELEASE_EVERY || at >= self.end {
            release_cache(file, self.released, at);
            self.released = at;
        }
    }
}

/// What a direct copy produced: the digest of the bytes read from the
/// source and written, and the digest of the destination read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copied {
    pub copied: Digest256,
    pub read_back: Digest256,
    /// The file's ETag as the tier's store reads it ([`e_tag_of`]).
    pub e_tag: Option<String>,
    /// The source file as [`copy_file`] opened it, as the tier's store
    /// would HEAD it ([`seen_of`]).
    pub source: Option<Seen>,
}

/// How a copy is put at its destination file.
#[derive(Debug, Clone)]
pub struct Put {
    /// fsync the file and its folder (a tier with a group sync leaves that
    /// to it).
    pub fsync: bool,
    /// Over what it may be put.
    pub publish: Publish,
    /// The SHA-256 the copy must have, the catalog's: a copy of other
    /// bytes (the source changed since the catalog recorded it) fails
    /// [`MoveError::SourceChanged`] and is not put there.
    pub sha256: Option<String>,
}

/// A file as the file store's HEAD would describe it (its size, ETag and
/// modification time), for a delete that checks it is still there.
pub fn seen_of(meta: &std::fs::Metadata) -> Seen {
    let modified = meta
        .modified()
        .ok()
        .map(chrono::DateTime::<chrono::Utc>::from);
    Seen {
        size: meta.len(),
        e_tag: Some(e_tag_of(meta)),
        modified_ms: modified.map_or(0, |t| t.timestamp_millis()),
    }
}

/// Whether the file at `path` is still `seen` (its size, ETag and
/// modification time); any file is when nothing was seen.
pub fn holds(path: &Path, seen: Option<&Seen>) -> bool {
    seen.is_none_or(|seen| std::fs::metadata(path).is_ok_and(|meta| seen_of(&meta) == *seen))
}

/// A file's ETag as object_store's `LocalFileSystem` makes one (its inode,
/// modification time in microseconds and size), which a HEAD of the file
/// answers: what tells the copy a job put at a key from a file written
/// over it.
pub fn e_tag_of(meta: &std::fs::Metadata) -> String {
    let (inode, len, modified) = file_identity(meta);
    let mtime = modified
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .unwrap_or_default()
        .as_micros();
    format!("\"{inode:x}-{mtime:x}-{len:x}\"")
}

/// Copies `len` bytes of `source` (from where it is positioned) to the
/// file `dest`, staged and put in place whole ([`Staged`]) over what
/// `publish` allows, once it has read back as copied; `fsync` makes the
/// result survive power loss. `on_chunk` is called with the bytes done
/// after each chunk is read and hashed (progress, rate limits); it runs on
/// the calling thread. An error puts nothing at `dest`, but for a failure
/// of the put itself.
pub fn copy(
    source: File,
    len: u64,
    dest: &Path,
    put: &Put,
    on_chunk: impl FnMut(u64, usize),
) -> Result<Copied, MoveError> {
    let (staged, copied) = stage(source, len, dest, put, on_chunk)?;
    staged.publish(dest, put.fsync, put.publish)?;
    Ok(copied)
}

/// The copy of [`copy`], staged, not yet put at `dest`: checked to have
/// read back as it was copied, with the catalog's checksum.
fn stage(
    mut source: File,
    len: u64,
    dest: &Path,
    put: &Put,
    mut on_chunk: impl FnMut(u64, usize),
) -> Result<(Staged, Copied), MoveError> {
    let mut staged = Staged::create(dest, put.fsync)?;
    preallocate(&staged.file, len);
    // On an error `staged` is dropped, and with it the partial copy.
    let copied = if len <= ONE_CHUNK {
        copy_inline(&mut source, len, &mut staged.file, &mut on_chunk)
    } else {
        copy_threaded(&mut source, len, &staged, &mut on_chunk)
    }?;
    if copied.read_back != copied.copied {
        return Err(MoveError::VerifyMismatch(format!(
            "{} read back as {}, copied as {}",
            dest.display(),
            copied.read_back.sha256,
            copied.copied.sha256
        )));
    }
    check_catalog(&copied.copied.sha256, put.sha256.as_deref())?;
    let e_tag = staged.e_tag();
    Ok((staged, Copied { e_tag, ..copied }))
}

/// Fails a copy whose SHA-256 is not the catalog's (`expected`), when the
/// catalog has one: the source changed since it was recorded.
pub fn check_catalog(copied: &str, expected: Option<&str>) -> Result<(), MoveError> {
    match expected {
        Some(expected) if expected != copied => Err(MoveError::SourceChanged(format!(
            "the source's SHA-256 is {copied}, the catalog's {expected}"
        ))),
        _ => Ok(()),
    }
}

/// Copies the file `source` like [`copy`], and fails with
/// [`MoveError::SourceChanged`], nothing put at `dest`, when the file at
/// `source` is no longer the one opened, or was modified, by the end of
/// the copy: an application rewrote the object while it was read.
pub fn copy_file(
    source: &Path,
    dest: &Path,
    put: &Put,
    on_chunk: impl FnMut(u64, usize),
) -> Result<Copied, MoveError> {
    let file = open_source(source)?;
    let before = file.metadata().map_err(|e| io_error("stat source", e))?;
    if before.is_dir() {
        return Err(MoveError::NotFound(format!(
            "{} is a folder, not an object",
            source.display()
        )));
    }
    let (staged, copied) = stage(file, before.len(), dest, put, on_chunk)?;
    let after = std::fs::metadata(source).map_err(|e| io_error("stat source", e))?;
    if file_identity(&before) != file_identity(&after) {
        return Err(MoveError::SourceChanged(format!(
            "{} was modified while copied",
            source.display()
        )));
    }
    staged.publish(dest, put.fsync, put.publish)?;
    Ok(Copied {
        source: Some(seen_of(&before)),
        ..copied
    })
}

/// Writes the `len` bytes that come through `chunks` (another store's
/// object as it streams) to a file staged for `dest` ([`Staged`]), then,
/// once `go` says so, puts it there over what `publish` allows, as
/// [`copy`] does; `fsync` makes it survive power loss. Bytes that end
/// short of `len` (their sender gave up) or run past it, or a `go` dropped
/// unsaid (the source changed), put nothing there. Blocks: run it on a
/// blocking thread.
pub fn write_received(
    dest: &Path,
    len: u64,
    (fsync, publish): (bool, Publish),
    mut chunks: tokio::sync::mpsc::Receiver<bytes::Bytes>,
    go: tokio::sync::oneshot::Receiver<()>,
) -> Result<Option<String>, MoveError> {
    let mut staged = Staged::create(dest, fsync)?;
    preallocate(&staged.file, len);
    let mut received = 0u64;
    while let Some(chunk) = chunks.blocking_recv() {
        received += chunk.len() as u64;
        if received > len {
            break;
        }
        staged
            .file
            .write_all(&chunk)
            .map_err(|e| io_error("write staged copy", e))?;
    }
    check_length(received, len)?;
    if go.blocking_recv().is_err() {
        return Err(MoveError::Transient(format!(
            "the copy to {} was given up",
            dest.display()
        )));
    }
    let e_tag = staged.e_tag();
    staged.publish(dest, fsync, publish)?;
    Ok(e_tag)
}

/// Deletes files of tiers, each given with its tier's folder `root` (a
/// file already gone counts as deleted), then each folder above them that
/// this leaves empty, up to `root`, which stays: what object_store's
/// `LocalFileSystem` does with its automatic cleanup, which the tiers use.
/// `root` is canonical, as the store's paths are; no folder outside it is
/// removed. Each folder is tried once, deepest first (a batch's files
/// mostly share a few), rather than once a file. `may_go(i, path)`, asked
/// right before each file's unlink, may keep a file (not deleted, not
/// gone). Answers, for each file in order, whether it is gone.
pub fn delete_files(
    files: &[(PathBuf, PathBuf)],
    may_go: impl Fn(usize, &Path) -> bool,
) -> Vec<bool> {
    let gone: Vec<bool> = files
        .iter()
        .enumerate()
        .map(|(i, (path, _))| {
            may_go(i, path)
                && match std::fs::remove_file(path) {
                    Ok(()) => true,
                    Err(e) => e.kind() == ErrorKind::NotFound,
                }
        })
        .collect();
    let mut folders: Vec<(&Path, &Path)> = files
        .iter()
        .zip(&gone)
        .filter(|(_, gone)| **gone)
        .filter_map(|((path, root), _)| Some((path.parent()?, root.as_path())))
        .collect();
    folders.sort_by(|(a, _), (b, _)| {
        let depth = |p: &Path| p.components().count();
        depth(b).cmp(&depth(a)).then_with(|| a.cmp(b))
    });
    folders.dedup_by(|(a, _), (b, _)| a == b);
    for (folder, root) in folders {
        remove_emptied_folders(folder, root);
    }
    gone
}

/// Removes `folder` and each folder above it while they are empty, up to
/// the tier's folder `root`, which stays; nothing outside `root`.
fn remove_emptied_folders(folder: &Path, root: &Path) {
    let mut folder = Some(folder);
    while let Some(f) = folder.filter(|f| *f != root && f.starts_with(root)) {
        if std::fs::remove_dir(f).is_err() {
            break;
        }
        folder = f.parent();
    }
}

/// What tells a file from another at its path, or from itself modified:
/// its inode, size and modification time.
fn file_identity(meta: &std::fs::Metadata) -> (u64, u64, Option<std::time::SystemTime>) {
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(meta);
    #[cfg(not(unix))]
    let inode = 0;
    (inode, meta.len(), meta.modified().ok())
}

/// An object of one chunk: read, hash, write, read back, all here.
fn copy_inline(
    source: &mut File,
    len: u64,
    staged: &mut File,
    on_chunk: &mut impl FnMut(u64, usize),
) -> Result<Copied, MoveError> {
    let mut buf = Vec::with_capacity(len as usize);
    source
        .take(len + 1)
        .read_to_end(&mut buf)
        .map_err(|e| io_error("read source", e))?;
    check_length(buf.len() as u64, len)?;
    let copied = digest_of(&buf);
    on_chunk(len, buf.len());
    staged
        .write_all(&buf)
        .map_err(|e| io_error("write staged copy", e))?;
    buf.clear();
    staged
        .rewind()
        .and_then(|()| staged.read_to_end(&mut buf))
        .map_err(|e| io_error("read back", e))?;
    Ok(Copied {
        copied,
        read_back: digest_of(&buf),
        e_tag: None,
        source: None,
    })
}

/// A larger object: reader (this thread), writer, verifier and flusher.
fn copy_threaded(
    source: &mut File,
    len: u64,
    staged: &Staged,
    on_chunk: &mut impl FnMut(u64, usize),
) -> Result<Copied, MoveError> {
    let writer_file = staged
        .file
        .try_clone()
        .map_err(|e| io_error("open staged copy", e))?;
    let flusher_file = staged
        .file
        .try_clone()
        .map_err(|e| io_error("open staged copy", e))?;
    let reader_file = staged
        .reopen()
        .map_err(|e| io_error("open for read-back", e))?;

    // Buffers go reader -> writer -> back to the reader.
    let (full_tx, full_rx) = sync_channel::<Chunk>(BUFFERS);
    let (empty_tx, empty_rx) = sync_channel::<Chunk>(BUFFERS);
    for _ in 0..BUFFERS {
        let _ = empty_tx.send(Chunk::new());
    }
    // The writer tells the verifier how far the file is written, and the
    // flusher how far to sync; the verifier tells the flusher how far it
    // has read back.
    let (written_tx, written_rx) = sync_channel::<u64>(BUFFERS * 2);
    let (flush_tx, flush_rx) = sync_channel::<u64>(1);
    let verified = AtomicU64::new(0);

    thread::scope(|scope| {
        let writer =
            scope.spawn(move || write_chunks(writer_file, full_rx, empty_tx, written_tx, flush_tx));
        let verifier = scope.spawn(|| read_back(reader_file, written_rx, &verified));
        let flusher = scope.spawn(|| {
            let mut released = 0;
            for written in flush_rx {
                if flusher_file.sync_data().is_ok() {
                    // Synced and read back: the copy's pages are done with.
                    let upto = written.min(verified.load(Ordering::Acquire));
                    release_cache(&flusher_file, released, upto);
                    released = released.max(upto);
                }
            }
        });

        let copied = read_chunks(source, len, &full_tx, &empty_rx, on_chunk);
        drop(full_tx); // The writer ends when the reader does.
        let written = join(writer, "writer");
        let read_back = join(verifier, "verifier");
        let _ = flusher.join();
        let copied = copied?;
        written?;
        Ok(Copied {
            copied,
            read_back: read_back?,
            e_tag: None,
            source: None,
        })
    })
}

fn read_chunks(
    source: &mut File,
    len: u64,
    full: &SyncSender<Chunk>,
    empty: &Receiver<Chunk>,
    on_chunk: &mut impl FnMut(u64, usize),
) -> Result<Digest256, MoveError> {
    let mut hasher = Sha256::new();
    let start = source
        .stream_position()
        .map_err(|e| io_error("read source", e))?;
    let mut done = 0u64;
    let mut release = ReleaseBehind::new(start, start + len);
    while done < len {
        let Ok(mut buf) = empty.recv() else {
            break; // The writer stopped: its error is the one to report.
        };
        let n = (len - done).min(CHUNK as u64) as usize;
        source
            .read_exact(buf.fill(n))
            .map_err(|e| io_error("read source", e))?;
        hasher.update(buf.bytes());
        done += n as u64;
        on_chunk(done, n);
        release.read_to(source, start + done);
        if full.send(buf).is_err() {
            break;
        }
    }
    // More bytes than the HEAD said: the source grew while it was copied.
    let mut probe = [0u8; 1];
    if done == len
        && source
            .read(&mut probe)
            .map_err(|e| io_error("read source", e))?
            > 0
    {
        return Err(MoveError::SourceChanged(format!(
            "the source has more than the {len} bytes it had at HEAD"
        )));
    }
    Ok(Digest256 {
        sha256: hex::encode(hasher.finalize()),
        bytes: done,
    })
}

fn write_chunks(
    mut file: File,
    full: Receiver<Chunk>,
    empty: SyncSender<Chunk>,
    written: SyncSender<u64>,
    flush: SyncSender<u64>,
) -> Result<(), MoveError> {
    let mut done = 0u64;
    let mut flushed = 0u64;
    for buf in full {
        file.write_all(buf.bytes())
            .map_err(|e| io_error("write staged copy", e))?;
        done += buf.len as u64;
        let _ = written.send(done);
        if done - flushed >= FLUSH_EVERY {
            flushed = done;
            // A flush already pending covers this one too.
            if let Err(TrySendError::Disconnected(_)) = flush.try_send(done) {
                return Err(MoveError::Transient("flusher stopped".into()));
            }
        }
        let _ = empty.send(buf);
    }
    Ok(())
}

fn read_back(
    mut file: File,
    written: Receiver<u64>,
    verified: &AtomicU64,
) -> Result<Digest256, MoveError> {
    let mut hasher = Sha256::new();
    let mut buf = Chunk::new();
    let mut done = 0u64;
    for upto in written {
        while done < upto {
            let n = (upto - done).min(CHUNK as u64) as usize;
            file.read_exact(buf.fill(n))
                .map_err(|e| io_error("read back", e))?;
            hasher.update(buf.bytes());
            done += n as u64;
            verified.store(done, Ordering::Release);
        }
    }
    // Whatever the file holds past what was written (nothing, unless
    // something else wrote to it) counts against it too.
    loop {
        let n = file
            .read(buf.fill(CHUNK))
            .map_err(|e| io_error("read back", e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf.bytes()[..n]);
        done += n as u64;
    }
    Ok(Digest256 {
        sha256: hex::encode(hasher.finalize()),
        bytes: done,
    })
}

fn join<T>(
    handle: thread::ScopedJoinHandle<'_, Result<T, MoveError>>,
    what: &str,
) -> Result<T, MoveError> {
    handle
        .join()
        .unwrap_or_else(|_| Err(MoveError::Transient(format!("copy {what} thread panicked"))))
}

/// A copy on its way to the destination's name. Where the file system
/// allows it (Linux, `O_TMPFILE`), the file has no name until
/// [`Staged::publish`] links it in: nothing is left behind if the process
/// dies first, and the folder changes once instead of three times (the
/// staged name's creation, then the rename's removal and insertion). On
/// small objects that took a fifth of the file work's CPU away, here
/// (docs/performance.md). Elsewhere it is `<dest>#<n>`, renamed or linked into place,
/// as object_store's `LocalFileSystem` stages, so
/// [`crate::transfer::remove_staged`] finds what an interrupted copy left.
struct Staged {
    /// Open for reading and writing.
    file: File,
    /// `<dest>#<n>`; `None` for a file without a name.
    path: Option<PathBuf>,
}

impl Staged {
    /// Creates the staged file for `dest`, making missing folders.
    fn create(dest: &Path, fsync: bool) -> Result<Self, MoveError> {
        if let Some(file) = create_unnamed(dest, fsync)? {
            return Ok(Staged { file, path: None });
        }
        if let Some(folder) = dest.parent().filter(|f| through_link(f)) {
            return Err(MoveError::Permanent(linked("create a file in", folder)));
        }
        let mut n = 1u32;
        loop {
            let path = numbered(dest, n);
            match OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(file) => {
                    return Ok(Staged {
                        file,
                        path: Some(path),
                    });
                }
                Err(e) if e.kind() == ErrorKind::AlreadyExists => n += 1,
                Err(e) if e.kind() == ErrorKind::NotFound => make_parents(dest, fsync)?,
                Err(e) => return Err(io_error(&format!("create {}", path.display()), e)),
            }
        }
    }

    /// The ETag the file will have at its key ([`e_tag_of`]): linking it
    /// there keeps its inode, time and size. Read once it is written.
    fn e_tag(&self) -> Option<String> {
        self.file.metadata().ok().map(|m| e_tag_of(&m))
    }

    /// A second handle on the file with its own position (a clone of
    /// [`Staged::file`] shares the writer's).
    fn reopen(&self) -> std::io::Result<File> {
        match &self.path {
            Some(path) => File::open(path),
            None => File::open(fd_path(&self.file)),
        }
    }

    /// Makes the staged file the destination: fsync, then link it there,
    /// or rename it over what is there where `publish` allows that
    /// ([`Publish::Replace`]); fsync the folder. A link finds a file at
    /// `dest` atomically: [`MoveError::Occupied`] then, that file kept.
    fn publish(mut self, dest: &Path, fsync: bool, publish: Publish) -> Result<(), MoveError> {
        if fsync {
            self.file
                .sync_all()
                .map_err(|e| io_error("fsync staged copy", e))?;
        }
        let replace = publish == Publish::Replace;
        let path = match self.path.take() {
            Some(path) => path,
            None => match link_unnamed(&self.file, dest, fsync, replace)? {
                // A copy left at `dest` by an earlier attempt: named first,
                // then renamed over it, so `dest` is never missing.
                Some(path) => path,
                None => return sync_parent(dest, fsync),
            },
        };
        let placed = if replace {
            std::fs::rename(&path, dest)
        } else {
            std::fs::hard_link(&path, dest)
        };
        if !(replace && placed.is_ok()) {
            let _ = std::fs::remove_file(&path);
        }
        match placed {
            Ok(()) => sync_parent(dest, fsync),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => Err(taken(dest)),
            Err(e) => Err(io_error(&format!("put copy at {}", dest.display()), e)),
        }
    }
}

impl Drop for Staged {
    /// A copy that was not published: an unnamed file goes with its handle.
    fn drop(&mut self) {
        if let Some(path) = &self.path {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// `<dest>#<n>`.
fn numbered(dest: &Path, n: u32) -> PathBuf {
    let mut name = dest.as_os_str().to_owned();
    name.push(format!("#{n}"));
    PathBuf::from(name)
}

/// The name under which the process reaches the open `file`.
fn fd_path(file: &File) -> PathBuf {
    use std::os::fd::AsRawFd;
    PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()))
}

/// An unnamed file in `dest`'s folder, or `None` where that cannot be
/// (another system, a file system without `O_TMPFILE`, no `/proc` to link
/// it by).
#[cfg(target_os = "linux")]
fn create_unnamed(dest: &Path, fsync: bool) -> Result<Option<File>, MoveError> {
    use rustix::{
        fs::{Mode, OFlags},
        io::Errno,
    };
    static PROC_FD: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let Some(folder) = dest.parent() else {
        return Ok(None);
    };
    if !*PROC_FD.get_or_init(|| Path::new("/proc/self/fd").is_dir()) {
        return Ok(None);
    }
    let flags = OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC;
    let mode = Mode::from_raw_mode(0o666);
    let mut made_parents = false;
    loop {
        match open_no_links(folder, flags, mode) {
            Err(Errno::LOOP) => {
                return Err(MoveError::Permanent(linked("create a file in", folder)));
            }
            Ok(fd) => return Ok(Some(File::from(fd))),
            Err(Errno::NOENT) if !made_parents => {
                make_parents(dest, fsync)?;
                made_parents = true;
            }
            Err(Errno::OPNOTSUPP | Errno::ISDIR | Errno::INVAL | Errno::NOENT) => return Ok(None),
            Err(e) => {
                return Err(io_error(
                    &format!("create a file in {}", folder.display()),
                    e.into(),
                ));
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn create_unnamed(_dest: &Path, _fsync: bool) -> Result<Option<File>, MoveError> {
    Ok(None)
}

/// Gives the unnamed `file` the name `dest`; when `dest` exists already,
/// [`MoveError::Occupied`], or where `replace` allows replacing it, the
/// first free `<dest>#<n>` instead, returned to be renamed over it.
///
/// A file without a name keeps no folder in use: deleting another object
/// of the tier may remove `dest`'s folder, emptied, while the copy runs.
/// The folders are then made again (a file opened with `O_TMPFILE` may be
/// linked into any folder of its file system).
#[cfg(target_os = "linux")]
fn link_unnamed(
    file: &File,
    dest: &Path,
    fsync: bool,
    replace: bool,
) -> Result<Option<PathBuf>, MoveError> {
    use rustix::io::Errno;
    let mut name = dest.to_owned();
    let mut n = 0;
    let mut folders_made = 0;
    loop {
        match link_fd(file, &name) {
            Ok(()) => return Ok((n > 0).then_some(name)),
            Err(Errno::EXIST) if n == 0 && !replace => return Err(taken(dest)),
            Err(Errno::EXIST) => {
                n += 1;
                name = numbered(dest, n);
            }
            Err(Errno::NOENT) if folders_made < 3 && dest.parent().is_some_and(|f| !f.is_dir()) => {
                make_parents(dest, fsync)?;
                folders_made += 1;
            }
            Err(e) => return Err(io_error(&format!("link {}", name.display()), e.into())),
        }
    }
}

/// Links the open `file` at `name`: by the handle itself (`AT_EMPTY_PATH`,
/// which Linux allows without privileges since 6.10 for a file opened
/// with `O_TMPFILE`), else by its `/proc/self/fd` name, which costs a
/// walk through procfs. Once the first way is refused where the second
/// works, only the second is tried.
#[cfg(target_os = "linux")]
fn link_fd(file: &File, name: &Path) -> rustix::io::Result<()> {
    use std::sync::atomic::{AtomicBool, Ordering};

    use rustix::io::Errno;
    static BY_HANDLE: AtomicBool = AtomicBool::new(true);
    if BY_HANDLE.load(Ordering::Relaxed) {
        match link_by_handle(file, name) {
            // Refused: an older kernel, without CAP_DAC_READ_SEARCH.
            Err(Errno::NOENT | Errno::PERM) => {}
            done => return done,
        }
        let by_name = link_by_proc_name(file, name);
        if by_name.is_ok() {
            BY_HANDLE.store(false, Ordering::Relaxed);
        }
        return by_name;
    }
    link_by_proc_name(file, name)
}

#[cfg(target_os = "linux")]
fn link_by_handle(file: &File, name: &Path) -> rustix::io::Result<()> {
    use rustix::fs::{AtFlags, CWD, linkat};
    linkat(file, "", CWD, name, AtFlags::EMPTY_PATH)
}

#[cfg(target_os = "linux")]
fn link_by_proc_name(file: &File, name: &Path) -> rustix::io::Result<()> {
    use rustix::fs::{AtFlags, CWD, linkat};
    linkat(CWD, fd_path(file), CWD, name, AtFlags::SYMLINK_FOLLOW)
}

#[cfg(not(target_os = "linux"))]
fn link_unnamed(
    _file: &File,
    dest: &Path,
    _fsync: bool,
    _replace: bool,
) -> Result<Option<PathBuf>, MoveError> {
    // [`create_unnamed`] makes none here.
    Err(MoveError::Permanent(format!(
        "no unnamed file to link at {}",
        dest.display()
    )))
}

/// The error of a copy that found `dest` taken when it came to put itself
/// there: by a symbolic link or a folder (of other objects, a key no
/// object can have), for good; else by another file, written while the
/// job copied.
pub(crate) fn taken(dest: &Path) -> MoveError {
    // A link at the key holds no object of the tier, and none is put
    // through it (`through_link`).
    if std::fs::symlink_metadata(dest).is_ok_and(|m| m.file_type().is_symlink()) {
        return MoveError::Permanent(linked("write", dest));
    }
    if dest.is_dir() {
        return MoveError::Permanent(format!(
            "{} is a folder of other objects: no object can be put there",
            dest.display()
        ));
    }
    MoveError::Occupied(format!(
        "{} was written while the job copied to it; a move never overwrites an object",
        dest.display()
    ))
}

/// Reserves the file's blocks up front (one extent instead of one
/// allocation per write). Best effort: a file system without it just
/// allocates as the writes come.
#[cfg(target_os = "linux")]
fn preallocate(file: &File, len: u64) {
    use rustix::fs::{FallocateFlags, fallocate};
    if len > CHUNK as u64 {
        let _ = fallocate(file, FallocateFlags::KEEP_SIZE, 0, len);
    }
}

#[cfg(not(target_os = "linux"))]
fn preallocate(_file: &File, _len: u64) {}

/// Creates the missing folders above `dest`; with `fsync`, syncs each new
/// folder's parent so the new entries survive power loss.
fn make_parents(dest: &Path, fsync: bool) -> Result<(), MoveError> {
    let Some(parent) = dest.parent() else {
        return Ok(());
    };
    let mut missing = Vec::new();
    let mut dir = parent;
    while !dir.exists() {
        missing.push(dir);
        match dir.parent() {
            Some(up) => dir = up,
            None => break,
        }
    }
    std::fs::create_dir_all(parent)
        .map_err(|e| io_error(&format!("create {}", parent.display()), e))?;
    if fsync {
        for created in missing.iter().rev() {
            if let Some(up) = created.parent() {
                sync_dir(up)?;
            }
        }
    }
    Ok(())
}

/// With `fsync`, syncs the folder of `path` (its new entry).
fn sync_parent(path: &Path, fsync: bool) -> Result<(), MoveError> {
    match path.parent() {
        Some(dir) if fsync => sync_dir(dir),
        _ => Ok(()),
    }
}

fn sync_dir(dir: &Path) -> Result<(), MoveError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(&format!("fsync {}", dir.display()), e))
}

/// Tells the kernel that the cached pages of `file` between `from` and
/// `to` will not be read again, so it frees the clean ones now. Advice
/// only: pages still dirty stay, and a failure changes nothing.
pub(crate) fn release_cache(file: &File, from: u64, to: u64) {
    #[cfg(target_os = "linux")]
    if let Some(len) = std::num::NonZeroU64::new(to.saturating_sub(from)) {
        use rustix::fs::{Advice, fadvise};
        let _ = fadvise(file, from, Some(len), Advice::DontNeed);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (file, from, to);
}

fn digest_of(bytes: &[u8]) -> Digest256 {
    Digest256 {
        sha256: hex::encode(Sha256::digest(bytes)),
        bytes: bytes.len() as u64,
    }
}

fn check_length(read: u64, expected: u64) -> Result<(), MoveError> {
    if read == expected {
        return Ok(());
    }
    Err(MoveError::SourceChanged(format!(
        "read {read} bytes from the source, HEAD said {expected}"
    )))
}

/// Opens the file of a source object for reading. A path with a
/// symbolic link in it ([`through_link`]) names no object of the tier:
/// [`MoveError::NotFound`].
pub fn open_source(source: &Path) -> Result<File, MoveError> {
    #[cfg(target_os = "linux")]
    {
        use rustix::{
            fs::{Mode, OFlags},
            io::Errno,
        };
        match open_no_links(source, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()) {
            Ok(fd) => Ok(File::from(fd)),
            Err(Errno::LOOP) => Err(MoveError::NotFound(linked("open source", source))),
            Err(e) => Err(io_error("open source", e.into())),
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        if through_link(source) {
            return Err(MoveError::NotFound(linked("open source", source)));
        }
        File::open(source).map_err(|e| io_error("open source", e))
    }
}

/// Whether a part of `path` (a folder above it, or itself) is a symbolic
/// link. An object of a `file://` tier is a file under the tier's folder,
/// whose path the mover makes from its key: a link planted in the folder
/// (to `/etc`, to another tier's folder) must not make it read, write or
/// delete elsewhere, so such a path holds no object of the tier, and
/// nothing is written there. The tier's folder is canonical (no links),
/// so the whole path is checked. Parts that do not exist are no links.
pub fn through_link(path: &Path) -> bool {
    #[cfg(target_os = "linux")]
    {
        use rustix::{
            fs::{Mode, OFlags},
            io::Errno,
        };
        let flags = OFlags::PATH | OFlags::CLOEXEC;
        matches!(open_no_links(path, flags, Mode::empty()), Err(Errno::LOOP))
    }
    #[cfg(not(target_os = "linux"))]
    {
        links_on(path)
    }
}

/// The metadata of the file at `path`, as `stat` gives it, or `NotFound`
/// where a part of the path is a symbolic link ([`through_link`]): one
/// path walk for both.
pub fn metadata_without_links(path: &Path) -> std::io::Result<std::fs::Metadata> {
    let linked = || std::io::Error::from(ErrorKind::NotFound);
    #[cfg(target_os = "linux")]
    {
        use rustix::{
            fs::{Mode, OFlags},
            io::Errno,
        };
        match open_no_links(path, OFlags::PATH | OFlags::CLOEXEC, Mode::empty()) {
            Ok(fd) => File::from(fd).metadata(),
            Err(Errno::LOOP) => Err(linked()),
            Err(e) => Err(e.into()),
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        if links_on(path) {
            return Err(linked());
        }
        std::fs::metadata(path)
    }
}

/// Opens `path` as `flags` say, refusing (`ELOOP`) a path with a symbolic
/// link in any of its parts ([`through_link`]): one `openat2` with
/// `RESOLVE_NO_SYMLINKS`; where that call is missing or refused (kernels
/// before 5.6, some sandboxes), each part is looked at first (`lstat`)
/// and `path` opened with `O_NOFOLLOW`, a window between. A link swapped
/// in after the open, before the copy is linked at its name, is followed
/// (docs/decisions.md).
#[cfg(target_os = "linux")]
fn open_no_links(
    path: &Path,
    flags: rustix::fs::OFlags,
    mode: rustix::fs::Mode,
) -> rustix::io::Result<std::os::fd::OwnedFd> {
    use std::sync::atomic::AtomicBool;

    use rustix::{
        fs::{CWD, OFlags, ResolveFlags, openat, openat2},
        io::Errno,
    };
    static OPENAT2: AtomicBool = AtomicBool::new(true);
    if OPENAT2.load(Ordering::Relaxed) {
        match openat2(CWD, path, flags, mode, ResolveFlags::NO_SYMLINKS) {
            Err(Errno::NOSYS | Errno::PERM) => OPENAT2.store(false, Ordering::Relaxed),
            done => return done,
        }
    }
    if links_on(path) {
        return Err(Errno::LOOP);
    }
    openat(CWD, path, flags | OFlags::NOFOLLOW, mode)
}

/// Whether `path` or a folder above it is a symbolic link, each looked at.
fn links_on(path: &Path) -> bool {
    path.ancestors()
        .any(|part| std::fs::symlink_metadata(part).is_ok_and(|m| m.file_type().is_symlink()))
}

/// Says that `path` has a symbolic link in it ([`through_link`]).
pub fn linked(context: &str, path: &Path) -> String {
    format!(
        "{context} {}: the path passes through a symbolic link, which a move never follows",
        path.display()
    )
}

/// A file system error, classed like object_store's: a missing file is
/// permanent (the source is gone), the rest is worth another attempt.
fn io_error(context: &str, e: std::io::Error) -> MoveError {
    match e.kind() {
        ErrorKind::NotFound => MoveError::NotFound(format!("{context}: {e}")),
        // No attempt can write where a folder is a file or a name too long,
        // nor replace a folder with a file.
        ErrorKind::PermissionDenied
        | ErrorKind::NotADirectory
        | ErrorKind::InvalidFilename
        | ErrorKind::IsADirectory => MoveError::Permanent(format!("{context}: {e}")),
        ErrorKind::UnexpectedEof => MoveError::SourceChanged(format!("{context}: {e}")),
        _ => MoveError::Transient(format!("{context}: {e}")),
    }
}

/// What the page cache holds of a file, for tests of [`release_cache`].
#[cfg(all(test, target_os = "linux"))]
#[allow(clippy::unwrap_used)] // Test set-up: a failure is the test's.
pub(crate) mod page_cache {
    use std::path::Path;

    /// Bytes of `path` in the page cache, as util-linux's `fincore` counts
    /// them; `None` where `fincore` is missing or `path` is on tmpfs, whose
    /// pages are the file itself and are never released.
    pub(crate) fn cached_bytes(path: &Path) -> Option<u64> {
        const TMPFS_MAGIC: u64 = 0x0102_1994;
        if rustix::fs::statfs(path).ok()?.f_type as u64 == TMPFS_MAGIC {
            return None;
        }
        let out = std::process::Command::new("fincore")
            .args(["--bytes", "--noheadings", "--output", "RES"])
            .arg(path)
            .output()
            .ok()?;
        out.status.success().then_some(())?;
        String::from_utf8(out.stdout).ok()?.trim().parse().ok()
    }

    /// Writes `len` bytes to `path`, syncs them and checks they are in the
    /// page cache: the bytes, or `None` where [`cached_bytes`] cannot tell.
    pub(crate) fn cached_file(path: &Path, len: usize) -> Option<Vec<u8>> {
        let data: Vec<u8> = (0..len).map(|i| (i * 7 + i / 1000) as u8).collect();
        std::fs::write(path, &data).unwrap();
        std::fs::File::open(path).unwrap().sync_all().unwrap();
        let Some(cached) = cached_bytes(path) else {
            eprintln!("skipped: no fincore, or the temp dir is on tmpfs");
            return None;
        };
        assert!(
            cached > len as u64 / 2,
            "only {cached} of {len} bytes cached after the write"
        );
        Some(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names in `folder`, sorted.
    fn names_in(folder: &Path) -> Vec<String> {
        let mut names: Vec<_> = std::fs::read_dir(folder)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    }

    /// How a test's copy is put: `fsync`, over what `publish` allows, of
    /// any checksum.
    fn put(fsync: bool, publish: Publish) -> Put {
        Put {
            fsync,
            publish,
            sha256: None,
        }
    }

    fn sha(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    #[test]
    fn a_delete_removes_the_folders_it_empties_up_to_the_tier_folder() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap();
        let delete = |path: PathBuf, root: &Path| {
            assert_eq!(
                delete_files(&[(path, root.to_path_buf())], |_, _| true),
                [true]
            );
        };
        let deep = root.join("a/b/c");
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::write(deep.join("x"), b"x").unwrap();
        std::fs::write(root.join("a/kept"), b"k").unwrap();
        delete(deep.join("x"), &root);
        // c and b were left empty; a still holds a file.
        assert!(!root.join("a/b").exists());
        assert!(root.join("a/kept").exists());
        delete(root.join("a/kept"), &root);
        assert!(!root.join("a").exists());
        assert!(root.exists(), "the tier's folder stays");
        // Gone already: deleted.
        delete(root.join("a/kept"), &root);
        // A file outside the tier's folder: only the file goes.
        let tier = root.join("tier");
        std::fs::create_dir_all(root.join("d")).unwrap();
        std::fs::create_dir_all(&tier).unwrap();
        std::fs::write(root.join("d/y"), b"y").unwrap();
        delete(root.join("d/y"), &tier);
        assert!(root.join("d").exists() && !root.join("d/y").exists());
    }

    #[test]
    fn chunks_start_on_a_page_and_hold_what_was_filled() {
        for _ in 0..4 {
            let mut chunk = Chunk::new();
            let filled = chunk.fill(CHUNK);
            assert_eq!(filled.as_ptr() as usize % PAGE, 0);
            filled.fill(7);
            filled[..3].copy_from_slice(b"abc");
            chunk.fill(5);
            assert_eq!(chunk.bytes(), b"abc\x07\x07");
        }
    }

    fn run(len: usize) {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..len).map(|i| (i * 7 + i / 1000) as u8).collect();
        let src = dir.path().join("src.bin");
        std::fs::write(&src, &data).unwrap();
        let dest = dir.path().join("a/b/dest.bin");
        let mut progress = Vec::new();
        let out = copy(
            File::open(&src).unwrap(),
            len as u64,
            &dest,
            &put(true, Publish::IfAbsent),
            |done, _| progress.push(done),
        )
        .unwrap();
        assert_eq!(out.copied.sha256, sha(&data));
        assert_eq!(out.copied, out.read_back);
        assert_eq!(std::fs::read(&dest).unwrap(), data);
        assert_eq!(progress.last().copied(), Some(len as u64));
        // Nothing staged is left beside it.
        let names: Vec<_> = std::fs::read_dir(dest.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec!["dest.bin"]);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_large_copy_leaves_its_source_out_of_the_page_cache() {
        let dir = tempfile::tempdir().unwrap();
        let len = 2 * RELEASE_EVERY as usize + 12345;
        let src = dir.path().join("src.bin");
        let Some(data) = page_cache::cached_file(&src, len) else {
            return;
        };

        let out = copy_file(
            &src,
            &dir.path().join("dest.bin"),
            &put(true, Publish::Replace),
            |_, _| {},
        )
        .unwrap();

        assert_eq!(out.copied.sha256, sha(&data));
        assert_eq!(out.copied, out.read_back);
        let after = page_cache::cached_bytes(&src).unwrap();
        assert!(
            after < len as u64 / 8,
            "{after} of {len} source bytes still cached"
        );
    }

    #[test]
    fn copies_small_and_multi_chunk_objects_whole() {
        run(0);
        run(4096);
        run(CHUNK);
        run(3 * CHUNK + 12345);
    }

    #[test]
    fn a_copy_takes_the_place_of_what_is_at_its_destination_and_leaves_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src.bin");
        // Folders that do not exist yet, then over the copy before it.
        let folder = dir.path().join("out/a/b");
        let dest = folder.join("obj");
        let names = || names_in(&folder);
        for (len, fsync) in [(4096, false), (5000, true), (2 * CHUNK + 3, false)] {
            let data: Vec<u8> = (0..len).map(|i| (i * 31 + len) as u8).collect();
            std::fs::write(&src, &data).unwrap();
            let out = copy_file(&src, &dest, &put(fsync, Publish::Replace), |_, _| {}).unwrap();
            assert_eq!(out.copied.sha256, sha(&data), "{len}");
            assert_eq!(out.read_back, out.copied, "{len}");
            assert!(std::fs::read(&dest).unwrap() == data, "{len}");
            assert_eq!(names(), ["obj"], "{len}");
        }
        // A staged file an interrupted copy left (for `remove_staged`) is
        // stepped over, not taken.
        std::fs::write(folder.join("obj#1"), b"left").unwrap();
        std::fs::write(&src, b"last").unwrap();
        copy_file(&src, &dest, &put(false, Publish::Replace), |_, _| {}).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"last");
        assert_eq!(std::fs::read(folder.join("obj#1")).unwrap(), b"left");
        assert_eq!(names(), ["obj", "obj#1"]);
    }

    #[test]
    fn a_copy_that_may_not_replace_leaves_a_file_at_its_destination_alone() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src.bin");
        std::fs::write(&src, b"ours").unwrap();
        let folder = dir.path().join("out");
        std::fs::create_dir(&folder).unwrap();
        let dest = folder.join("obj");
        let names = || names_in(&folder);
        // A copy staged with a name, as where files cannot be made without one.
        let named = || {
            let path = numbered(&dest, 1);
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
                .unwrap();
            file.write_all(b"named").unwrap();
            Staged {
                file,
                path: Some(path),
            }
        };
        std::fs::write(&dest, b"theirs").unwrap();
        let unnamed = copy_file(&src, &dest, &put(false, Publish::IfAbsent), |_, _| {});
        let by_name = named().publish(&dest, false, Publish::IfAbsent);
        for (way, result) in [("unnamed", unnamed.map(|_| ())), ("named", by_name)] {
            assert!(
                matches!(result, Err(MoveError::Occupied(_))),
                "{way}: {result:?}"
            );
            assert_eq!(std::fs::read(&dest).unwrap(), b"theirs", "{way}");
            assert_eq!(names(), ["obj"], "{way}");
        }
        // Where the key is free, either way puts the copy there.
        std::fs::remove_file(&dest).unwrap();
        copy_file(&src, &dest, &put(true, Publish::IfAbsent), |_, _| {}).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"ours");
        std::fs::remove_file(&dest).unwrap();
        named().publish(&dest, true, Publish::IfAbsent).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"named");
        assert_eq!(names(), ["obj"]);
    }

    /// The ETag a copy reports is the one a HEAD through the tier's store
    /// answers for the file, which is how a discard tells the job's copy
    /// from a file written over it; a copy of other bytes than the
    /// catalog's is not put at the key.
    #[tokio::test]
    async fn a_copy_knows_its_etag_and_refuses_bytes_the_catalog_does_not_know() {
        use object_store::ObjectStoreExt;
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src.bin");
        std::fs::write(&src, b"catalogued bytes").unwrap();
        let store = object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap();
        for (name, len) in [("small", 4096), ("large", 3 * CHUNK)] {
            std::fs::write(&src, vec![3u8; len]).unwrap();
            let dest = dir.path().join(name);
            let out = copy_file(&src, &dest, &put(false, Publish::IfAbsent), |_, _| {}).unwrap();
            let head = store.head(&name.into()).await.unwrap();
            assert_eq!(out.e_tag, head.e_tag, "{name}");
            let known = Put {
                sha256: Some(sha(b"other bytes")),
                ..put(false, Publish::IfAbsent)
            };
            let other = dir.path().join(format!("{name}-other"));
            let err = copy_file(&src, &other, &known, |_, _| {}).unwrap_err();
            assert!(matches!(err, MoveError::SourceChanged(_)), "{name}: {err}");
            assert!(!other.exists(), "{name}");
        }
    }

    #[test]
    fn bytes_received_are_put_at_the_key_only_whole_and_only_where_it_is_free() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("out/obj");
        let receive_if = |chunks: &[&[u8]], go_ahead: bool| {
            let (tx, rx) = tokio::sync::mpsc::channel(chunks.len());
            for chunk in chunks {
                tx.try_send(bytes::Bytes::copy_from_slice(chunk)).unwrap();
            }
            drop(tx);
            let (go, went) = tokio::sync::oneshot::channel();
            if go_ahead {
                go.send(()).unwrap();
            } else {
                drop(go);
            }
            write_received(&dest, 4, (true, Publish::IfAbsent), rx, went)
        };
        let receive = |chunks: &[&[u8]]| receive_if(chunks, true);
        let short = receive(&[b"abc"]);
        assert!(
            matches!(short, Err(MoveError::SourceChanged(_))),
            "{short:?}"
        );
        let long = receive(&[b"abc", b"de"]);
        assert!(matches!(long, Err(MoveError::SourceChanged(_))), "{long:?}");
        // Whole, but given up (the source changed meanwhile).
        assert!(receive_if(&[b"ab", b"cd"], false).is_err());
        let names = || std::fs::read_dir(dest.parent().unwrap()).unwrap().count();
        assert_eq!(names(), 0);
        receive(&[b"ab", b"cd"]).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"abcd");
        let taken = receive(&[b"wxyz"]);
        assert!(matches!(taken, Err(MoveError::Occupied(_))), "{taken:?}");
        assert_eq!(std::fs::read(&dest).unwrap(), b"abcd");
        assert_eq!(names(), 1);
    }

    #[test]
    fn deleting_many_files_removes_the_folders_they_empty_and_no_other() {
        let dir = tempfile::tempdir().unwrap();
        let root = std::fs::canonicalize(dir.path()).unwrap().join("tier");
        for file in ["a/b/c/x", "a/b/c/y", "a/b/z", "d/w", "e/k", "e/kept", "top"] {
            let path = root.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, file).unwrap();
        }
        let files: Vec<(PathBuf, PathBuf)> =
            ["a/b/c/x", "d/w", "a/b/c/y", "e/k", "a/b/z", "gone", "top"]
                .iter()
                .map(|f| (root.join(f), root.clone()))
                .collect();
        // A file already gone counts as deleted.
        assert_eq!(delete_files(&files, |_, _| true), [true; 7]);
        assert!(!root.join("a").exists(), "a/b/c, then a/b, then a emptied");
        assert!(!root.join("d").exists());
        assert_eq!(std::fs::read(root.join("e/kept")).unwrap(), b"e/kept");
        assert!(root.is_dir(), "the tier's folder stays");
        // A file that cannot go (a folder in its place) is not gone.
        std::fs::create_dir_all(root.join("f/sub")).unwrap();
        assert_eq!(
            delete_files(&[(root.join("f/sub"), root.clone())], |_, _| true),
            [false]
        );
        assert!(root.join("f/sub").is_dir());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn an_unnamed_file_links_by_its_handle_or_by_its_proc_name() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let unnamed = |bytes: &[u8]| {
            let mut file = create_unnamed(&dir.path().join("x"), false)
                .unwrap()
                .expect("tmpfs and ext4 have O_TMPFILE");
            file.write_all(bytes).unwrap();
            file
        };
        // The fallback, for kernels before 6.10.
        let by_proc = dir.path().join("by-proc");
        link_by_proc_name(&unnamed(b"proc"), &by_proc).unwrap();
        assert_eq!(std::fs::read(&by_proc).unwrap(), b"proc");
        // Where the kernel allows it (6.10 and later, or with
        // CAP_DAC_READ_SEARCH).
        let by_handle = dir.path().join("by-handle");
        match link_by_handle(&unnamed(b"handle"), &by_handle) {
            Ok(()) => {
                assert_eq!(std::fs::read(&by_handle).unwrap(), b"handle");
                let taken = link_by_handle(&unnamed(b"again"), &by_handle);
                assert_eq!(taken, Err(rustix::io::Errno::EXIST));
                assert_eq!(std::fs::read(&by_handle).unwrap(), b"handle");
            }
            Err(rustix::io::Errno::NOENT | rustix::io::Errno::PERM) => {}
            Err(e) => panic!("link by handle: {e}"),
        }
        // Neither way replaces a file already there.
        let taken = link_by_proc_name(&unnamed(b"again"), &by_proc);
        assert_eq!(taken, Err(rustix::io::Errno::EXIST));
        assert_eq!(std::fs::read(&by_proc).unwrap(), b"proc");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn an_unnamed_copy_whose_folder_was_removed_meanwhile_is_linked_in_a_new_one() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("d/e");
        let dest = folder.join("x");
        let mut staged = Staged::create(&dest, true).unwrap();
        assert!(staged.path.is_none(), "tmpfs and ext4 have O_TMPFILE");
        staged.file.write_all(b"bytes").unwrap();
        // Another object's delete empties and removes the folders.
        std::fs::remove_dir(&folder).unwrap();
        std::fs::remove_dir(dir.path().join("d")).unwrap();
        staged.publish(&dest, true, Publish::Replace).unwrap();
        assert_eq!(std::fs::read(&dest).unwrap(), b"bytes");
    }

    #[test]
    fn a_source_longer_or_shorter_than_its_head_is_a_changed_source() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src.bin");
        std::fs::write(&src, vec![1u8; 2 * CHUNK + 5]).unwrap();
        for claimed in [2 * CHUNK as u64, 3 * CHUNK as u64, 100] {
            let dest = dir.path().join(format!("dest-{claimed}"));
            let err = copy(
                File::open(&src).unwrap(),
                claimed,
                &dest,
                &put(false, Publish::Replace),
                |_, _| {},
            )
            .unwrap_err();
            assert!(
                matches!(err, MoveError::SourceChanged(_)),
                "{claimed}: {err}"
            );
            assert!(!dest.exists());
            // The staged file is removed too.
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        }
    }

    #[test]
    fn a_source_replaced_or_rewritten_while_copied_is_a_changed_source() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src.bin");
        for (name, len) in [("replaced", 4096), ("rewritten", 3 * CHUNK)] {
            std::fs::write(&src, vec![7u8; len]).unwrap();
            // An hour old, so that a write now changes its time whatever the
            // clock's granularity.
            let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
            File::options()
                .write(true)
                .open(&src)
                .and_then(|f| f.set_modified(hour_ago))
                .unwrap();
            let dest = dir.path().join(name);
            let mut changed = false;
            let err = copy_file(&src, &dest, &put(false, Publish::Replace), |_, _| {
                if std::mem::replace(&mut changed, true) {
                    return;
                }
                if name == "replaced" {
                    // Another object put at the key: a new file renamed over it.
                    let other = dir.path().join("other.bin");
                    std::fs::write(&other, vec![8u8; len]).unwrap();
                    std::fs::rename(&other, &src).unwrap();
                } else {
                    // The same file written to in place, its size unchanged.
                    let mut f = OpenOptions::new().write(true).open(&src).unwrap();
                    f.write_all(b"!").unwrap();
                }
            })
            .unwrap_err();
            assert!(matches!(err, MoveError::SourceChanged(_)), "{name}: {err}");
            assert!(!dest.exists(), "{name}: nothing put at the key");
        }
        // Unchanged, it copies; missing or a folder, it is not found.
        std::fs::write(&src, b"steady").unwrap();
        let out = copy_file(
            &src,
            &dir.path().join("steady"),
            &put(false, Publish::Replace),
            |_, _| {},
        )
        .unwrap();
        assert_eq!(out.copied.sha256, sha(b"steady"));
        for missing in [dir.path().join("ghost"), dir.path().to_owned()] {
            let err = copy_file(
                &missing,
                &dir.path().join("x"),
                &put(false, Publish::Replace),
                |_, _| {},
            )
            .unwrap_err();
            assert!(matches!(err, MoveError::NotFound(_)), "{err}");
        }
    }
}
