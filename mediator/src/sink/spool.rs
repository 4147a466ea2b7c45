//! An append-only, bounded, crash-tolerant on-disk queue of Kafka messages: the spool.
//!
//! The Kafka sink writes here while the broker is away (or its in-memory queue is full) and
//! replays from here, in order, when the broker is back — also after a restart of the process.
//!
//! # Layout
//! A directory of segment files `seg-<20-digit sequence>.spool`, oldest first, plus a `cursor`
//! file. A segment starts with the 12-byte header `b"SNFSPOOL"` + format version (u32 LE, = 1),
//! followed by entries, each framed as
//!
//! ```text
//! u32 LE  body length in bytes (at most MAX_ENTRY_BYTES)
//! u32 LE  CRC-32 (IEEE) of the body
//! body:   u16 topic length, topic (UTF-8)
//!         u32 key length, key
//!         u16 header count, then per header: u16 name length, name (UTF-8), u32 value length, value
//!         u32 payload length, payload
//! ```
//!
//! The `cursor` file holds the position up to which entries are delivered ("committed"): text
//! `<segment> <offset> <ordinal> <crc32 of the first three>`; it is replaced atomically (written
//! to `cursor.tmp`, fsynced, renamed, directory fsynced). Segments wholly before the cursor are
//! deleted; when every entry is committed, every segment and the cursor are deleted.
//!
//! # Durability (fsync policy)
//! [`FsyncPolicy::Always`] calls `fdatasync` after every append (safest, slowest).
//! [`FsyncPolicy::Interval`] (the default, 1 s) flushes and `fdatasync`s when an append comes at
//! least the interval after the previous sync, on every segment rotation, on [`Spool::sync`] and
//! on drop: a crash of the machine can lose at most about the last interval of appends, a crash of
//! the process (kill -9) loses nothing that reached [`Spool::append`]'s return but what sat in
//! the 64 KiB write buffer. [`FsyncPolicy::Never`] leaves it to the kernel.
//!
//! A torn entry at the end of a segment (a process killed mid-write) or an entry whose CRC does not
//! match is detected on reading, skipped and counted ([`Spool::corrupt_entries`]); reading goes on
//! with the next entry (CRC mismatch: the length is trusted) or the next segment (torn tail or
//! an impossible length).
//!
//! # Bound
//! The spool holds at most `max_bytes` of segment files. An append that would pass it deletes the
//! oldest segment(s) first and counts their undelivered entries in [`Spool::dropped_entries`]:
//! under a long outage the spool keeps the newest data.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Segment file header: magic + format version 1 (u32 LE).
const MAGIC: &[u8; 8] = b"SNFSPOOL";
const VERSION: u32 = 1;
/// Length of the segment header in bytes.
pub const HEADER_LEN: u64 = 12;
/// Length of an entry's frame (length + CRC) in bytes.
const FRAME_LEN: u64 = 8;
/// The largest entry body accepted (64 MiB); a larger length on disk is taken as corruption.
pub const MAX_ENTRY_BYTES: u32 = 64 << 20;
const CURSOR: &str = "cursor";
const CURSOR_TMP: &str = "cursor.tmp";

/// Errors of the spool. Every variant names the file or the reason.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// A filesystem operation failed.
    #[error("spool {op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// One entry is larger than the spool may ever hold.
    #[error("spool entry of {size} bytes exceeds the limit of {limit} bytes")]
    EntryTooLarge {
        /// Encoded size of the entry.
        size: u64,
        /// The limit (the smaller of `max_bytes` minus a segment header and [`MAX_ENTRY_BYTES`]).
        limit: u64,
    },
    /// A field of an entry does not fit its length prefix (topic or header name over 65535 bytes,
    /// or more than 65535 headers).
    #[error("spool entry field {0} is too long for its length prefix")]
    FieldTooLong(&'static str),
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> SpoolError + 'a {
    move |source| SpoolError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// When the spool calls `fdatasync`. See the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// After every append.
    Always,
    /// On an append at least this long after the previous sync, on rotation, sync and drop.
    Interval(Duration),
    /// Never explicitly (the kernel writes back when it likes); still flushed on rotation.
    Never,
}

/// How a spool is opened.
#[derive(Debug, Clone)]
pub struct SpoolConfig {
    /// The directory (created when missing).
    pub dir: PathBuf,
    /// Upper bound of the segment files' total size, in bytes.
    pub max_bytes: u64,
    /// A segment is closed and a new one started once it reaches this size, in bytes. Dropping
    /// for the bound works per segment, so keep it a small fraction of `max_bytes`.
    pub segment_bytes: u64,
    /// The fsync policy.
    pub fsync: FsyncPolicy,
}

/// One spooled Kafka message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SpoolEntry {
    /// Topic name.
    pub topic: String,
    /// Message key.
    pub key: Vec<u8>,
    /// Message headers, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// Message value.
    pub payload: Vec<u8>,
}

impl SpoolEntry {
    /// Size of the encoded body in bytes (without the 8-byte frame).
    pub fn encoded_len(&self) -> u64 {
        let headers: usize = self
            .headers
            .iter()
            .map(|(n, v)| 2 + n.len() + 4 + v.len())
            .sum();
        (2 + self.topic.len() + 4 + self.key.len() + 2 + headers + 4 + self.payload.len()) as u64
    }

    fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), SpoolError> {
        let u16_len = |n: usize, what: &'static str| {
            u16::try_from(n).map_err(|_| SpoolError::FieldTooLong(what))
        };
        let u32_len = |n: usize, what: &'static str| {
            u32::try_from(n).map_err(|_| SpoolError::FieldTooLong(what))
        };
        out.extend_from_slice(&u16_len(self.topic.len(), "topic")?.to_le_bytes());
        out.extend_from_slice(self.topic.as_bytes());
        out.extend_from_slice(&u32_len(self.key.len(), "key")?.to_le_bytes());
        out.extend_from_slice(&self.key);
        out.extend_from_slice(&u16_len(self.headers.len(), "header count")?.to_le_bytes());
        for (name, value) in &self.headers {
            out.extend_from_slice(&u16_len(name.len(), "header name")?.to_le_bytes());
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(&u32_len(value.len(), "header value")?.to_le_bytes());
            out.extend_from_slice(value);
        }
        out.extend_from_slice(&u32_len(self.payload.len(), "payload")?.to_le_bytes());
        out.extend_from_slice(&self.payload);
        Ok(())
    }

    /// Decodes a body; `None` when it is malformed.
    fn decode(body: &[u8]) -> Option<SpoolEntry> {
        let mut r = Cursor { buf: body, pos: 0 };
        let topic = String::from_utf8(r.bytes16()?.to_vec()).ok()?;
        let key = r.bytes32()?.to_vec();
        let count = r.u16()?;
        let mut headers = Vec::with_capacity(usize::from(count).min(64));
        for _ in 0..count {
            let name = String::from_utf8(r.bytes16()?.to_vec()).ok()?;
            headers.push((name, r.bytes32()?.to_vec()));
        }
        let payload = r.bytes32()?.to_vec();
        (r.pos == body.len()).then_some(SpoolEntry {
            topic,
            key,
            headers,
            payload,
        })
    }
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn bytes16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
    fn bytes32(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.u32()?).ok()?;
        self.take(n)
    }
}

/// The position just after one entry, as returned by [`Spool::read_next`]; give it back to
/// [`Spool::commit`] once that entry and every one before it are delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SpoolPos {
    /// Segment sequence number.
    pub segment: u64,
    /// Byte offset in the segment just after the entry.
    pub offset: u64,
    /// 1-based ordinal of the entry in its segment (corrupt entries included).
    pub ordinal: u64,
}

#[derive(Debug)]
struct Segment {
    seq: u64,
    /// File size in bytes (as written, including what sits in the write buffer).
    bytes: u64,
    /// Entries framed in the file (a torn tail counts as one).
    entries: u64,
}

struct Writer {
    seq: u64,
    file: BufWriter<File>,
}

struct Reader {
    seq: u64,
    file: BufReader<File>,
    offset: u64,
    ordinal: u64,
}

/// The spool. Not thread-safe by itself: own it from one thread or put it behind a mutex.
pub struct Spool {
    cfg: SpoolConfig,
    segments: VecDeque<Segment>,
    writer: Option<Writer>,
    reader: Option<Reader>,
    /// Where reading goes on from (after [`Spool::rewind`]: the committed position).
    read_pos: SpoolPos,
    committed: SpoolPos,
    last_sync: Instant,
    dirty: bool,
    corrupt: u64,
    dropped: u64,
    scratch: Vec<u8>,
}

fn seg_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("seg-{seq:020}.spool"))
}

fn parse_seg_name(name: &str) -> Option<u64> {
    name.strip_prefix("seg-")?
        .strip_suffix(".spool")?
        .parse()
        .ok()
}

fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync directory", dir))
}

/// Counts the framed entries of a segment file without checking CRCs (a torn tail counts as one).
fn count_entries(path: &Path) -> Result<(u64, u64), SpoolError> {
    let file = File::open(path).map_err(io_err("open", path))?;
    let size = file.metadata().map_err(io_err("stat", path))?.len();
    let mut r = BufReader::new(file);
    let mut off = HEADER_LEN;
    let mut entries = 0;
    if size <= HEADER_LEN {
        return Ok((size, 0));
    }
    r.seek(SeekFrom::Start(off)).map_err(io_err("seek", path))?;
    let mut frame = [0u8; 8];
    while off < size {
        entries += 1;
        if size - off < FRAME_LEN {
            break;
        }
        r.read_exact(&mut frame).map_err(io_err("read", path))?;
        let len = u64::from(u32::from_le_bytes([frame[0], frame[1], frame[2], frame[3]]));
        let next = off + FRAME_LEN + len;
        if len > u64::from(MAX_ENTRY_BYTES) || next > size {
            break;
        }
        r.seek_relative(i64::try_from(len).unwrap_or(i64::MAX))
            .map_err(io_err("seek", path))?;
        off = next;
    }
    Ok((size, entries))
}

impl Spool {
    /// Opens (or creates) the spool in `cfg.dir`, finding the segments and the committed position
    /// a previous run left. New appends always go to a new segment.
    pub fn open(cfg: SpoolConfig) -> Result<Spool, SpoolError> {
        fs::create_dir_all(&cfg.dir).map_err(io_err("create directory", &cfg.dir))?;
        let _ = fs::remove_file(cfg.dir.join(CURSOR_TMP));
        let mut seqs = Vec::new();
        for ent in fs::read_dir(&cfg.dir).map_err(io_err("list", &cfg.dir))? {
            let ent = ent.map_err(io_err("list", &cfg.dir))?;
            if let Some(seq) = ent.file_name().to_str().and_then(parse_seg_name) {
                seqs.push(seq);
            }
        }
        seqs.sort_unstable();
        let mut segments = VecDeque::with_capacity(seqs.len());
        for seq in seqs {
            let path = seg_path(&cfg.dir, seq);
            let (bytes, entries) = count_entries(&path)?;
            segments.push_back(Segment {
                seq,
                bytes,
                entries,
            });
        }
        let first = SpoolPos {
            segment: segments.front().map_or(0, |s| s.seq),
            offset: HEADER_LEN,
            ordinal: 0,
        };
        let committed = read_cursor(&cfg.dir)
            .filter(|c| segments.iter().any(|s| s.seq == c.segment))
            .unwrap_or(first)
            .max(first);
        let mut spool = Spool {
            cfg,
            segments,
            writer: None,
            reader: None,
            read_pos: committed,
            committed,
            last_sync: Instant::now(),
            dirty: false,
            corrupt: 0,
            dropped: 0,
            scratch: Vec::new(),
        };
        spool.delete_consumed()?;
        Ok(spool)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.cfg.dir
    }

    /// Appends an entry. Returns how many undelivered entries were dropped (oldest segments
    /// deleted) to stay within `max_bytes`.
    pub fn append(&mut self, entry: &SpoolEntry) -> Result<u64, SpoolError> {
        let body_len = entry.encoded_len();
        let total = FRAME_LEN + body_len;
        let limit = self
            .cfg
            .max_bytes
            .saturating_sub(HEADER_LEN + FRAME_LEN)
            .min(u64::from(MAX_ENTRY_BYTES));
        if body_len > limit {
            return Err(SpoolError::EntryTooLarge {
                size: body_len,
                limit,
            });
        }
        let mut dropped = 0;
        // Rotate a full writer segment.
        if let Some(w) = &self.writer {
            let wbytes = self.segments.back().map_or(0, |s| s.bytes);
            if wbytes + total > self.cfg.segment_bytes && wbytes > HEADER_LEN {
                let seq = w.seq;
                self.close_writer()?;
                tracing::debug!(segment = seq, "spool segment rotated");
            }
        }
        // Enforce the bound, counting the header of a segment about to be created.
        loop {
            let need = total + if self.writer.is_none() { HEADER_LEN } else { 0 };
            if self.total_bytes() + need <= self.cfg.max_bytes || self.segments.is_empty() {
                break;
            }
            if self.segments.len() == 1 && self.writer.is_some() {
                self.close_writer()?;
            }
            dropped += self.drop_oldest()?;
        }
        if self.writer.is_none() {
            self.new_writer()?;
        }
        self.scratch.clear();
        self.scratch.reserve(usize::try_from(total).unwrap_or(0));
        self.scratch.extend_from_slice(&[0u8; 8]);
        entry.encode_into(&mut self.scratch)?;
        let crc = crc32fast::hash(&self.scratch[8..]);
        let len = u32::try_from(body_len).map_err(|_| SpoolError::FieldTooLong("entry"))?;
        self.scratch[0..4].copy_from_slice(&len.to_le_bytes());
        self.scratch[4..8].copy_from_slice(&crc.to_le_bytes());
        let Some(w) = self.writer.as_mut() else {
            unreachable!("writer created above")
        };
        let path = seg_path(&self.cfg.dir, w.seq);
        w.file
            .write_all(&self.scratch)
            .map_err(io_err("write", &path))?;
        if let Some(seg) = self.segments.back_mut() {
            seg.bytes += total;
            seg.entries += 1;
        }
        self.dirty = true;
        match self.cfg.fsync {
            FsyncPolicy::Always => self.sync()?,
            FsyncPolicy::Interval(d) if self.last_sync.elapsed() >= d => self.sync()?,
            _ => {}
        }
        Ok(dropped)
    }

    /// Flushes the write buffer and `fdatasync`s the current segment.
    pub fn sync(&mut self) -> Result<(), SpoolError> {
        if let Some(w) = self.writer.as_mut() {
            let path = seg_path(&self.cfg.dir, w.seq);
            w.file.flush().map_err(io_err("flush", &path))?;
            if self.cfg.fsync != FsyncPolicy::Never && self.dirty {
                w.file
                    .get_ref()
                    .sync_data()
                    .map_err(io_err("fdatasync", &path))?;
            }
        }
        self.dirty = false;
        self.last_sync = Instant::now();
        Ok(())
    }

    /// [`Spool::sync`] when appends are waiting in the buffer and the fsync interval (1 s for the
    /// other policies) has passed since the last sync: call it periodically when idle.
    pub fn sync_if_due(&mut self) -> Result<(), SpoolError> {
        let interval = match self.cfg.fsync {
            FsyncPolicy::Interval(d) => d,
            FsyncPolicy::Always | FsyncPolicy::Never => Duration::from_secs(1),
        };
        if self.dirty && self.last_sync.elapsed() >= interval {
            self.sync()?;
        }
        Ok(())
    }

    /// Reads the next entry after the read position, skipping (and counting) corrupt ones.
    /// `None` when everything appended so far has been read.
    pub fn read_next(&mut self) -> Result<Option<(SpoolEntry, SpoolPos)>, SpoolError> {
        loop {
            // Segments dropped for the bound may have taken the read position with them.
            let Some(idx) = self
                .segments
                .iter()
                .position(|s| s.seq >= self.read_pos.segment)
            else {
                return Ok(None);
            };
            let seg_seq = self.segments[idx].seq;
            if seg_seq != self.read_pos.segment {
                self.read_pos = SpoolPos {
                    segment: seg_seq,
                    offset: HEADER_LEN,
                    ordinal: 0,
                };
                self.reader = None;
            }
            let is_writer = self.writer.as_ref().is_some_and(|w| w.seq == seg_seq);
            if is_writer {
                if let Some(w) = self.writer.as_mut() {
                    w.file
                        .flush()
                        .map_err(io_err("flush", &seg_path(&self.cfg.dir, seg_seq)))?;
                }
            }
            let size = self.segments[idx].bytes;
            let is_last = idx + 1 == self.segments.len();
            if self.read_pos.offset >= size {
                if is_last {
                    return Ok(None);
                }
                self.next_segment(idx);
                continue;
            }
            let path = seg_path(&self.cfg.dir, seg_seq);
            if self
                .reader
                .as_ref()
                .is_none_or(|r| r.seq != seg_seq || r.offset != self.read_pos.offset)
            {
                let mut f = File::open(&path).map_err(io_err("open", &path))?;
                f.seek(SeekFrom::Start(self.read_pos.offset))
                    .map_err(io_err("seek", &path))?;
                self.reader = Some(Reader {
                    seq: seg_seq,
                    file: BufReader::with_capacity(256 << 10, f),
                    offset: self.read_pos.offset,
                    ordinal: self.read_pos.ordinal,
                });
            }
            let Some(r) = self.reader.as_mut() else {
                unreachable!("reader opened above")
            };
            let remaining = size - r.offset;
            let torn = |spool: &mut Spool, idx: usize| {
                spool.corrupt += 1;
                tracing::warn!(segment = seg_seq, "spool: torn or corrupt tail skipped");
                if is_last {
                    // Nothing after it can be read; keep appending to a new segment.
                    spool.read_pos.offset = size;
                    spool.read_pos.ordinal = spool.segments[idx].entries;
                    spool.reader = None;
                } else {
                    spool.next_segment(idx);
                }
            };
            if remaining < FRAME_LEN {
                torn(self, idx);
                if is_last {
                    return Ok(None);
                }
                continue;
            }
            let mut frame = [0u8; 8];
            r.file
                .read_exact(&mut frame)
                .map_err(io_err("read", &path))?;
            let len = u32::from_le_bytes([frame[0], frame[1], frame[2], frame[3]]);
            let crc = u32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]]);
            if len > MAX_ENTRY_BYTES || FRAME_LEN + u64::from(len) > remaining {
                torn(self, idx);
                if is_last {
                    return Ok(None);
                }
                continue;
            }
            let mut body = vec![0u8; len as usize];
            r.file
                .read_exact(&mut body)
                .map_err(io_err("read", &path))?;
            r.offset += FRAME_LEN + u64::from(len);
            r.ordinal += 1;
            self.read_pos = SpoolPos {
                segment: seg_seq,
                offset: r.offset,
                ordinal: r.ordinal,
            };
            let entry = (crc32fast::hash(&body) == crc)
                .then(|| SpoolEntry::decode(&body))
                .flatten();
            match entry {
                Some(e) => return Ok(Some((e, self.read_pos))),
                None => {
                    self.corrupt += 1;
                    tracing::warn!(segment = seg_seq, "spool: entry with a bad CRC skipped");
                }
            }
        }
    }

    fn next_segment(&mut self, idx: usize) {
        let next = self.segments.get(idx + 1).map_or(u64::MAX, |s| s.seq);
        self.read_pos = SpoolPos {
            segment: next,
            offset: HEADER_LEN,
            ordinal: 0,
        };
        self.reader = None;
    }

    /// Marks every entry up to and including `pos` delivered: persists the cursor and deletes
    /// segments no longer needed. A position before the committed one (its segment dropped for
    /// the bound meanwhile) is ignored.
    pub fn commit(&mut self, pos: SpoolPos) -> Result<(), SpoolError> {
        if pos <= self.committed {
            return Ok(());
        }
        self.committed = pos;
        if self.read_pos < pos {
            self.read_pos = pos;
            self.reader = None;
        }
        self.delete_consumed()?;
        if self.is_empty() {
            // Everything delivered: start afresh with no file at all.
            self.writer = None;
            self.reader = None;
            for seg in std::mem::take(&mut self.segments) {
                let path = seg_path(&self.cfg.dir, seg.seq);
                fs::remove_file(&path).map_err(io_err("remove", &path))?;
            }
            let next = self.committed.segment + 1;
            self.committed = SpoolPos {
                segment: next,
                offset: HEADER_LEN,
                ordinal: 0,
            };
            self.read_pos = self.committed;
            let cursor = self.cfg.dir.join(CURSOR);
            match fs::remove_file(&cursor) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err("remove", &cursor)(e)),
            }
            sync_dir(&self.cfg.dir)?;
            return Ok(());
        }
        write_cursor(&self.cfg.dir, self.committed)
    }

    /// Moves the read position back to the committed one: entries read but not committed will be
    /// read again.
    pub fn rewind(&mut self) {
        self.read_pos = self.committed;
        self.reader = None;
    }

    /// True when every entry appended has been committed.
    pub fn is_empty(&self) -> bool {
        match self.segments.len() {
            0 => true,
            1 => {
                let s = &self.segments[0];
                s.bytes <= HEADER_LEN
                    || (s.seq == self.committed.segment && self.committed.offset >= s.bytes)
            }
            _ => false,
        }
    }

    /// True when entries remain after the read position.
    pub fn has_unread(&self) -> bool {
        self.segments.iter().any(|s| {
            s.seq > self.read_pos.segment
                || (s.seq == self.read_pos.segment && self.read_pos.offset < s.bytes)
        })
    }

    /// Bytes of the segment files on disk (including delivered entries of the oldest segment).
    pub fn total_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    /// Bytes not yet committed (an estimate that counts corrupt entries too).
    pub fn pending_bytes(&self) -> u64 {
        self.segments
            .iter()
            .map(|s| {
                if s.seq == self.committed.segment {
                    s.bytes.saturating_sub(self.committed.offset)
                } else {
                    s.bytes.saturating_sub(HEADER_LEN)
                }
            })
            .sum()
    }

    /// Entries not yet committed (corrupt ones included until they are read past).
    pub fn pending_entries(&self) -> u64 {
        self.segments
            .iter()
            .map(|s| {
                if s.seq == self.committed.segment {
                    s.entries.saturating_sub(self.committed.ordinal)
                } else {
                    s.entries
                }
            })
            .sum()
    }

    /// Entries found corrupt (bad CRC, malformed, torn) and skipped since opening.
    pub fn corrupt_entries(&self) -> u64 {
        self.corrupt
    }

    /// Undelivered entries dropped to stay within `max_bytes` since opening.
    pub fn dropped_entries(&self) -> u64 {
        self.dropped
    }

    fn new_writer(&mut self) -> Result<(), SpoolError> {
        let seq = self
            .segments
            .back()
            .map_or(self.committed.segment, |s| s.seq + 1)
            .max(self.committed.segment);
        let path = seg_path(&self.cfg.dir, seq);
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(io_err("create", &path))?;
        let mut file = BufWriter::with_capacity(64 << 10, file);
        let mut header = [0u8; 12];
        header[..8].copy_from_slice(MAGIC);
        header[8..].copy_from_slice(&VERSION.to_le_bytes());
        file.write_all(&header).map_err(io_err("write", &path))?;
        if self.segments.is_empty() {
            self.committed = SpoolPos {
                segment: seq,
                offset: HEADER_LEN,
                ordinal: 0,
            };
            self.read_pos = self.committed;
        }
        self.segments.push_back(Segment {
            seq,
            bytes: HEADER_LEN,
            entries: 0,
        });
        self.writer = Some(Writer { seq, file });
        sync_dir(&self.cfg.dir)?;
        Ok(())
    }

    fn close_writer(&mut self) -> Result<(), SpoolError> {
        if self.writer.is_some() {
            self.dirty = true;
            self.sync()?;
            self.writer = None;
        }
        Ok(())
    }

    /// Deletes the oldest segment; returns how many undelivered entries it held.
    fn drop_oldest(&mut self) -> Result<u64, SpoolError> {
        let Some(seg) = self.segments.pop_front() else {
            return Ok(0);
        };
        let undelivered = if seg.seq == self.committed.segment {
            seg.entries.saturating_sub(self.committed.ordinal)
        } else {
            seg.entries
        };
        let path = seg_path(&self.cfg.dir, seg.seq);
        fs::remove_file(&path).map_err(io_err("remove", &path))?;
        self.dropped += undelivered;
        tracing::warn!(
            segment = seg.seq,
            entries = undelivered,
            "spool full: oldest segment dropped"
        );
        let next = self.segments.front().map_or(seg.seq + 1, |s| s.seq);
        let start = SpoolPos {
            segment: next,
            offset: HEADER_LEN,
            ordinal: 0,
        };
        if self.committed < start {
            self.committed = start;
            write_cursor(&self.cfg.dir, self.committed)?;
        }
        if self.read_pos < start {
            self.read_pos = start;
            self.reader = None;
        }
        Ok(undelivered)
    }

    /// Deletes segments wholly before the committed position (and a committed-through segment
    /// that is not being written).
    fn delete_consumed(&mut self) -> Result<(), SpoolError> {
        while let Some(front) = self.segments.front() {
            let done_before = front.seq < self.committed.segment;
            let is_writer = self.writer.as_ref().is_some_and(|w| w.seq == front.seq);
            let done_through = front.seq == self.committed.segment
                && self.committed.offset >= front.bytes
                && !is_writer
                && self.segments.len() > 1;
            if !(done_before || done_through) {
                break;
            }
            let path = seg_path(&self.cfg.dir, front.seq);
            fs::remove_file(&path).map_err(io_err("remove", &path))?;
            self.segments.pop_front();
            if done_through {
                if let Some(next) = self.segments.front() {
                    self.committed = SpoolPos {
                        segment: next.seq,
                        offset: HEADER_LEN,
                        ordinal: 0,
                    };
                    if self.read_pos < self.committed {
                        self.read_pos = self.committed;
                        self.reader = None;
                    }
                }
            }
        }
        Ok(())
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        if let Err(e) = self.sync() {
            tracing::warn!(error = %e, "spool: final sync failed");
        }
    }
}

fn cursor_crc(p: &SpoolPos) -> u32 {
    crc32fast::hash(format!("{} {} {}", p.segment, p.offset, p.ordinal).as_bytes())
}

fn read_cursor(dir: &Path) -> Option<SpoolPos> {
    let text = fs::read_to_string(dir.join(CURSOR)).ok()?;
    let mut it = text.split_whitespace().map(str::parse::<u64>);
    let pos = SpoolPos {
        segment: it.next()?.ok()?,
        offset: it.next()?.ok()?,
        ordinal: it.next()?.ok()?,
    };
    let crc = u32::try_from(it.next()?.ok()?).ok()?;
    (crc == cursor_crc(&pos)).then_some(pos)
}

fn write_cursor(dir: &Path, pos: SpoolPos) -> Result<(), SpoolError> {
    let tmp = dir.join(CURSOR_TMP);
    let text = format!(
        "{} {} {} {}\n",
        pos.segment,
        pos.offset,
        pos.ordinal,
        cursor_crc(&pos)
    );
    {
        let mut f = File::create(&tmp).map_err(io_err("create", &tmp))?;
        f.write_all(text.as_bytes())
            .map_err(io_err("write", &tmp))?;
        f.sync_data().map_err(io_err("fdatasync", &tmp))?;
    }
    let dst = dir.join(CURSOR);
    fs::rename(&tmp, &dst).map_err(io_err("rename", &dst))?;
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(dir: &Path, max: u64, seg: u64) -> SpoolConfig {
        SpoolConfig {
            dir: dir.to_path_buf(),
            max_bytes: max,
            segment_bytes: seg,
            fsync: FsyncPolicy::Never,
        }
    }

    fn entry(i: u64) -> SpoolEntry {
        SpoolEntry {
            topic: format!("topic-{}", i % 3),
            key: format!("key-{}", i % 7).into_bytes(),
            headers: vec![("record_id".into(), format!("id-{i}").into_bytes())],
            payload: format!(
                "{{\"i\":{i},\"pad\":\"{}\"}}",
                "x".repeat((i % 50) as usize)
            )
            .into_bytes(),
        }
    }

    fn drain(s: &mut Spool) -> Vec<(SpoolEntry, SpoolPos)> {
        let mut out = Vec::new();
        while let Some(e) = s.read_next().expect("read") {
            out.push(e);
        }
        out
    }

    fn seg_files(dir: &Path) -> Vec<PathBuf> {
        let mut v: Vec<_> = fs::read_dir(dir)
            .expect("list")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "spool"))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn write_read_in_order_and_commit_removes_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = Spool::open(cfg(dir.path(), 1 << 30, 1 << 20)).expect("open");
        assert!(s.is_empty());
        for i in 0..1000 {
            assert_eq!(s.append(&entry(i)).expect("append"), 0);
        }
        assert!(!s.is_empty());
        assert_eq!(s.pending_entries(), 1000);
        let got = drain(&mut s);
        assert_eq!(got.len(), 1000);
        for (i, (e, _)) in got.iter().enumerate() {
            assert_eq!(e, &entry(i as u64));
        }
        // Interleaved append and read keep order.
        s.append(&entry(1000)).expect("append");
        let (e, pos) = s.read_next().expect("read").expect("one more");
        assert_eq!(e, entry(1000));
        assert!(s.read_next().expect("read").is_none());
        assert!(!s.is_empty(), "read is not commit");
        s.commit(pos).expect("commit");
        assert!(s.is_empty());
        assert!(seg_files(dir.path()).is_empty());
        assert!(!dir.path().join(CURSOR).exists());
        // Usable again after draining.
        s.append(&entry(7)).expect("append");
        assert_eq!(drain(&mut s).len(), 1);
    }

    #[test]
    fn rotation_and_restart_resume_from_commit() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let mut s = Spool::open(cfg(dir.path(), 1 << 30, 4096)).expect("open");
            for i in 0..500 {
                s.append(&entry(i)).expect("append");
            }
            assert!(seg_files(dir.path()).len() > 5, "rotated into segments");
            let got = drain(&mut s);
            assert_eq!(got.len(), 500);
            // Deliver the first 200 only.
            s.commit(got[199].1).expect("commit");
            assert_eq!(s.pending_entries(), 300);
        }
        let mut s = Spool::open(cfg(dir.path(), 1 << 30, 4096)).expect("reopen");
        assert_eq!(s.pending_entries(), 300);
        let got = drain(&mut s);
        assert_eq!(got.len(), 300);
        for (k, (e, _)) in got.iter().enumerate() {
            assert_eq!(e, &entry(200 + k as u64));
        }
        // Rewind re-reads everything not committed.
        s.rewind();
        assert_eq!(drain(&mut s).len(), 300);
        // New appends after a restart come after the old ones.
        s.append(&entry(500)).expect("append");
        let got = drain(&mut s);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, entry(500));
        s.commit(got[0].1).expect("commit");
        assert!(s.is_empty());
        assert!(seg_files(dir.path()).is_empty());
    }

    #[test]
    fn torn_tail_is_detected_skipped_and_counted() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let mut s = Spool::open(cfg(dir.path(), 1 << 30, 1 << 20)).expect("open");
            for i in 0..10 {
                s.append(&entry(i)).expect("append");
            }
        }
        // kill -9 mid-write: the last entry is cut short.
        let files = seg_files(dir.path());
        assert_eq!(files.len(), 1);
        let f = OpenOptions::new()
            .write(true)
            .open(&files[0])
            .expect("open segment");
        let len = f.metadata().expect("stat").len();
        f.set_len(len - 5).expect("truncate");
        drop(f);
        let mut s = Spool::open(cfg(dir.path(), 1 << 30, 1 << 20)).expect("reopen");
        s.append(&entry(10)).expect("append after restart");
        let got: Vec<_> = drain(&mut s).into_iter().map(|(e, _)| e).collect();
        let want: Vec<_> = (0..9).chain(10..11).map(entry).collect();
        assert_eq!(got, want);
        assert_eq!(s.corrupt_entries(), 1);
    }

    #[test]
    fn crc_mismatch_skips_one_entry() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = Spool::open(cfg(dir.path(), 1 << 30, 1 << 20)).expect("open");
        for i in 0..3 {
            s.append(&entry(i)).expect("append");
        }
        s.sync().expect("sync");
        let files = seg_files(dir.path());
        let mut bytes = fs::read(&files[0]).expect("read");
        // Flip the last byte of the second entry's payload.
        let first = FRAME_LEN + entry(0).encoded_len();
        let second_end = HEADER_LEN + first + FRAME_LEN + entry(1).encoded_len();
        bytes[(second_end - 1) as usize] ^= 0xff;
        fs::write(&files[0], &bytes).expect("write");
        let mut s2 = Spool::open(cfg(dir.path(), 1 << 30, 1 << 20)).expect("reopen");
        let got: Vec<_> = drain(&mut s2).into_iter().map(|(e, _)| e).collect();
        assert_eq!(got, vec![entry(0), entry(2)]);
        assert_eq!(s2.corrupt_entries(), 1);
        // A garbage length in the middle abandons the rest of that segment only.
        bytes[HEADER_LEN as usize..HEADER_LEN as usize + 4]
            .copy_from_slice(&u32::MAX.to_le_bytes());
        drop(s);
        drop(s2);
        fs::write(&files[0], &bytes).expect("write");
        let mut s3 = Spool::open(cfg(dir.path(), 1 << 30, 1 << 20)).expect("reopen");
        s3.append(&entry(9)).expect("append");
        let got: Vec<_> = drain(&mut s3).into_iter().map(|(e, _)| e).collect();
        assert_eq!(got, vec![entry(9)]);
        assert_eq!(s3.corrupt_entries(), 1);
    }

    #[test]
    fn cap_drops_oldest_segments_and_counts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let max = 64 << 10;
        let mut s = Spool::open(cfg(dir.path(), max, 8 << 10)).expect("open");
        let mut dropped = 0;
        for i in 0..5000 {
            dropped += s.append(&entry(i)).expect("append");
            assert!(s.total_bytes() <= max, "bound kept: {}", s.total_bytes());
        }
        assert!(dropped > 0);
        assert_eq!(dropped, s.dropped_entries());
        let got: Vec<_> = drain(&mut s).into_iter().map(|(e, _)| e).collect();
        assert_eq!(got.len() as u64 + dropped, 5000);
        // What is left is the newest data, in order.
        let first = 5000 - got.len() as u64;
        for (k, e) in got.iter().enumerate() {
            assert_eq!(e, &entry(first + k as u64));
        }
        assert_eq!(s.corrupt_entries(), 0);
        // An entry larger than the bound is refused.
        let huge = SpoolEntry {
            payload: vec![0; max as usize],
            ..entry(0)
        };
        assert!(matches!(
            s.append(&huge),
            Err(SpoolError::EntryTooLarge { .. })
        ));
    }

    #[test]
    fn drop_while_reading_moves_the_cursor() {
        let dir = tempfile::tempdir().expect("tempdir");
        let max = 32 << 10;
        let mut s = Spool::open(cfg(dir.path(), max, 4 << 10)).expect("open");
        for i in 0..100 {
            s.append(&entry(i)).expect("append");
        }
        let (_, pos) = s.read_next().expect("read").expect("entry");
        for i in 100..2000 {
            s.append(&entry(i)).expect("append");
        }
        // The committed entry's segment is long gone: the commit is ignored, reading goes on
        // with the oldest segment still there, in order.
        s.commit(pos).expect("commit");
        let got: Vec<_> = drain(&mut s).into_iter().map(|(e, _)| e).collect();
        assert_eq!(got.last(), Some(&entry(1999)));
        assert_eq!(got.len() as u64 + s.dropped_entries(), 2000);
    }
}
