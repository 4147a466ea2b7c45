//! The Parquet sink: one table per record kind, Hive-style partitions, zstd, files rolled by size
//! and age, written under a temporary name and renamed only when complete.
//!
//! # Layout
//! ```text
//! <dir>/<table>/date=YYYY-MM-DD/hour=HH/part-<start_ms>-<run>-<seq>.parquet
//! <dir>/<table>/date=YYYY-MM-DD/hour=HH/.part-<start_ms>-<run>-<seq>.parquet.tmp   (being written)
//! ```
//! `<table>` is [`RecordKind::table_name`] (`flow_records`, `tap_records`, `super_flows`,
//! `app_sessions`); `date`/`hour` are the UTC day and hour of the record's partition time (see
//! [`PartitionTime`]); `<start_ms>` is when the file was opened (UTC ms), `<run>` a per-process id
//! and `<seq>` a counter, so names never collide across restarts. The schema of each table is
//! [`schemas::published::arrow_schema`], written as it is: timestamps are Parquet
//! `INT64 TIMESTAMP(MILLIS, isAdjustedToUTC=true)`, which Spark, DuckDB and pyarrow read as
//! UTC timestamps; every column is plain-encoded and zstd-compressed (no dictionaries: on these
//! tables plain + zstd is both smaller and cheaper), and the columns queries filter by (every
//! timestamp, addresses, ports, protocol, exporter, app type, provider, enrichment status,
//! session id) have min/max statistics at chunk and page level (see `stats_columns`).
//!
//! # Never a partial file
//! A file is written to a dot-prefixed `.tmp` name (Spark, DuckDB globs on `*.parquet` and
//! pyarrow datasets all ignore it), and on roll or close its footer is written, the file fsynced,
//! renamed to its final name, and the directory fsynced. A crash (even `kill -9`) leaves at most
//! the `.tmp` files of the files that were open; they are unreadable (no footer), and the next
//! [`ParquetSink::new`] on the same directory deletes them (`tmp_files_discarded`). Rows in a
//! file that was not committed are lost: the sink is a file writer, not a log. Run one sink per
//! directory (a second one would delete the first one's `.tmp` files at start-up).
//!
//! # Writing
//! [`ParquetSink::write`] takes records (`R: Record`) and converts them with
//! [`schemas::published::row`]; [`ParquetSink::write_rows`] takes rows already in row form
//! (from [`schemas::published::to_row`]). [`ParquetSink::write_flows`] is a faster path for
//! [`FlowRecord`] only that builds the Arrow columns directly (same result, see its tests). A batch
//! may span partitions: rows are routed by their partition hour. Rows that cannot be written (no
//! partition time, a value that does not fit the schema) are skipped, counted (`rows_rejected`) and
//! listed in the returned [`WriteReport`]; the rest are written.
//!
//! # Rolling
//! A file is committed when its size (bytes written plus the estimated size of the row group in
//! progress) reaches `roll_bytes`, when it has been open `roll_secs` (checked on every write to
//! it and by [`ParquetSink::flush_expired`], which the caller runs now and then, e.g. every
//! second), when more than `max_open_files` files would be open (the oldest is committed), and by
//! [`ParquetSink::close`]. Row groups hold at most `row_group_rows` rows.
//!
//! # Metrics
//! [`ParquetSink::metrics`] gives a shared [`ParquetMetrics`] (atomics, readable from another
//! thread, e.g. the HTTP endpoint): `rows_written` (handed to an open file), `rows_committed`
//! (in a visible file), `rows_rejected`, `rows_lost` (in a file abandoned after a write error),
//! `files_committed`, `bytes_committed`, `tmp_files_discarded`, `write_errors`, `open_files`.

use std::collections::HashMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ::parquet::arrow::ArrowWriter;
use ::parquet::basic::{Compression, ZstdLevel};
use ::parquet::errors::ParquetError;
use ::parquet::file::metadata::KeyValue;
use ::parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use ::parquet::schema::types::ColumnPath;
use arrow_array::RecordBatch;
use arrow_json::reader::{Decoder, ReaderBuilder};
use arrow_schema::{ArrowError, SchemaRef};
use schemas::{FlowRecord, Record, RecordKind, SuperFlow};
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use flow_arrow::flow_batch;
pub use super_arrow::super_batch;

mod super_arrow;

const MS_PER_HOUR: i64 = 3_600_000;
/// Suffix of a file being written.
pub const TMP_SUFFIX: &str = ".parquet.tmp";
/// Suffix of a committed file.
pub const PARQUET_SUFFIX: &str = ".parquet";

/// Which time of a record picks its `date=`/`hour=` partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PartitionTime {
    /// The record's event time (default): for a flow record `flow_start_ms`, falling back to
    /// `received_time_ms` when the exporter sent no start; for a super-flow the same fields of its
    /// embedded `flow`; for a tap record `first_seen_ms`; for an application session `start_ms`.
    /// Queries by time prune partitions correctly; late records reopen old partitions (a new file
    /// beside the old ones).
    #[default]
    Event,
    /// When the sink wrote the record (the mediator's clock, UTC): few files open at a time and no
    /// late files in old partitions, but a query by event time must scan a margin of partitions.
    Write,
}

/// Configuration of the Parquet sink (`[sink.parquet]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ParquetSinkConfig {
    /// Root directory of the tables. Default `"./data/parquet"`.
    pub dir: PathBuf,
    /// Most rows in one row group (rows). Default `131072`.
    pub row_group_rows: usize,
    /// A file is committed once it reaches this size (bytes; the size counts the row group in
    /// progress at its estimated encoded size). Default `134217728` (128 MiB).
    pub roll_bytes: u64,
    /// A file is committed once it has been open this long (seconds). Default `300`.
    pub roll_secs: u64,
    /// zstd compression level, 1 (fast) to 22 (small). Default `1` (on our tables level 1 costs
    /// 10 % fewer instructions than 3 and gives files no bigger).
    pub zstd_level: i32,
    /// Which time of a record picks its partition: `"event"` (default) or `"write"`; see
    /// [`PartitionTime`].
    pub partition_time: PartitionTime,
    /// Most files open at once (files; each holds a row group in memory). Opening one more
    /// commits the oldest. Default `64`. With `encode_threads = 2` each thread has half of it
    /// (at least one each).
    pub max_open_files: usize,
    /// Tables written, by name: any of `flow_records`, `tap_records`, `super_flows`,
    /// `app_sessions`. Records of the others are skipped by the `run`/`mediate` lane (counted in
    /// its `records_skipped`). Default: all four.
    pub kinds: Vec<String>,
    /// Threads encoding rows (1 or 2). With 2, a batch's `flow_records` rows are encoded on a
    /// second thread while the lane's thread encodes its other tables (in `run`, every router
    /// flow is written twice, as a `flow_records` row and a `super_flows` row), or each thread
    /// half of a one-table batch; each thread writes its own files. Default `2`.
    pub encode_threads: usize,
}

impl Default for ParquetSinkConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("./data/parquet"),
            row_group_rows: 131_072,
            roll_bytes: 128 * 1024 * 1024,
            roll_secs: 300,
            zstd_level: 1,
            partition_time: PartitionTime::Event,
            max_open_files: 64,
            kinds: super::all_kinds(),
            encode_threads: 2,
        }
    }
}

impl ParquetSinkConfig {
    /// Checks the values (called by [`ParquetSink::new`]).
    pub fn validate(&self) -> Result<(), ParquetSinkError> {
        let bad = |r: &str| Err(ParquetSinkError::Config(r.to_owned()));
        if self.row_group_rows == 0 {
            return bad("row_group_rows must be at least 1");
        }
        if self.roll_bytes == 0 {
            return bad("roll_bytes must be at least 1");
        }
        if self.roll_secs == 0 {
            return bad("roll_secs must be at least 1");
        }
        if self.max_open_files == 0 {
            return bad("max_open_files must be at least 1");
        }
        super::kind_mask(&self.kinds).map_err(ParquetSinkError::Config)?;
        if !(1..=2).contains(&self.encode_threads) {
            return Err(ParquetSinkError::Config(format!(
                "encode_threads {} is not 1 or 2",
                self.encode_threads
            )));
        }
        if !(1..=22).contains(&self.zstd_level) {
            return Err(ParquetSinkError::Config(format!(
                "zstd_level {} is outside 1..=22",
                self.zstd_level
            )));
        }
        Ok(())
    }
}

/// Errors of the Parquet sink.
#[derive(Debug, thiserror::Error)]
pub enum ParquetSinkError {
    /// The configuration is invalid.
    #[error("parquet sink configuration: {0}")]
    Config(String),
    /// A file-system operation failed.
    #[error("parquet sink: {op} {path}: {source}")]
    Io {
        /// What the sink was doing ("create", "rename", "fsync", ...).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The Parquet writer failed on a file; the file was abandoned (its rows are counted in
    /// `rows_lost`).
    #[error("parquet sink: writing {path}: {source}")]
    Parquet {
        /// The temporary file.
        path: PathBuf,
        /// The error.
        #[source]
        source: ParquetError,
    },
    /// Rows did not convert to an Arrow batch of the table's schema.
    #[error("parquet sink: {table}: {rows} rows to Arrow: {source}")]
    Arrow {
        /// The table.
        table: &'static str,
        /// How many rows.
        rows: usize,
        /// The error.
        #[source]
        source: ArrowError,
    },
}

/// A row the sink did not write, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Index of the row in the batch given to the sink.
    pub index: usize,
    /// Its `record_id` when it had one.
    pub record_id: Option<String>,
    /// Why.
    pub reason: String,
}

/// What a write call did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WriteReport {
    /// Rows handed to open files.
    pub written: usize,
    /// Rows skipped.
    pub rejected: Vec<Rejected>,
}

/// Counters of the sink, shared with whoever reports them.
#[derive(Debug, Default)]
pub struct ParquetMetrics {
    /// Rows handed to an open file.
    pub rows_written: AtomicU64,
    /// Rows in committed (visible) files.
    pub rows_committed: AtomicU64,
    /// Rows skipped because they did not fit (no partition time, wrong type).
    pub rows_rejected: AtomicU64,
    /// Rows in files abandoned after a write error.
    pub rows_lost: AtomicU64,
    /// Files renamed to their final name.
    pub files_committed: AtomicU64,
    /// Bytes of the committed files.
    pub bytes_committed: AtomicU64,
    /// Leftover `.tmp` files of an earlier run deleted at start-up.
    pub tmp_files_discarded: AtomicU64,
    /// Failed file operations (create, write, fsync, rename) and Arrow conversions.
    pub write_errors: AtomicU64,
    /// Files open now (gauge).
    pub open_files: AtomicU64,
}

/// A copy of [`ParquetMetrics`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ParquetMetricsSnapshot {
    /// See [`ParquetMetrics::rows_written`].
    pub rows_written: u64,
    /// See [`ParquetMetrics::rows_committed`].
    pub rows_committed: u64,
    /// See [`ParquetMetrics::rows_rejected`].
    pub rows_rejected: u64,
    /// See [`ParquetMetrics::rows_lost`].
    pub rows_lost: u64,
    /// See [`ParquetMetrics::files_committed`].
    pub files_committed: u64,
    /// See [`ParquetMetrics::bytes_committed`].
    pub bytes_committed: u64,
    /// See [`ParquetMetrics::tmp_files_discarded`].
    pub tmp_files_discarded: u64,
    /// See [`ParquetMetrics::write_errors`].
    pub write_errors: u64,
    /// See [`ParquetMetrics::open_files`].
    pub open_files: u64,
}

impl ParquetMetrics {
    /// The counters now.
    pub fn snapshot(&self) -> ParquetMetricsSnapshot {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ParquetMetricsSnapshot {
            rows_written: g(&self.rows_written),
            rows_committed: g(&self.rows_committed),
            rows_rejected: g(&self.rows_rejected),
            rows_lost: g(&self.rows_lost),
            files_committed: g(&self.files_committed),
            bytes_committed: g(&self.bytes_committed),
            tmp_files_discarded: g(&self.tmp_files_discarded),
            write_errors: g(&self.write_errors),
            open_files: g(&self.open_files),
        }
    }
}

fn add(a: &AtomicU64, n: u64) {
    a.fetch_add(n, Ordering::Relaxed);
}

/// One partition: a table and an hour (hours since the Unix epoch, UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct PartitionKey {
    kind: RecordKind,
    hour: i64,
}

struct OpenFile {
    writer: ArrowWriter<File>,
    tmp: PathBuf,
    dir: PathBuf,
    name: String,
    opened: SystemTime,
    order: u64,
    rows: u64,
}

impl OpenFile {
    fn size(&self) -> u64 {
        (self.writer.bytes_written() + self.writer.in_progress_size()) as u64
    }
}

/// The Parquet sink. Owned by one thread (`&mut self`); it runs no thread of its own.
pub struct ParquetSink {
    cfg: ParquetSinkConfig,
    props: [WriterProperties; 4],
    schemas: [SchemaRef; 4],
    decoders: [Option<Decoder>; 4],
    open: HashMap<PartitionKey, OpenFile>,
    run_id: String,
    seq: u64,
    metrics: Arc<ParquetMetrics>,
}

impl std::fmt::Debug for ParquetSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParquetSink")
            .field("dir", &self.cfg.dir)
            .field("open_files", &self.open.len())
            .finish_non_exhaustive()
    }
}

fn io<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> ParquetSinkError + 'a {
    move |source| ParquetSinkError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

fn ms_since_epoch(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

/// `(year, month, day)` of a day count since 1970-01-01 (proleptic Gregorian).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The partition directory of an hour (hours since the epoch), relative to its table:
/// `date=YYYY-MM-DD/hour=HH`.
pub fn partition_path(hour: i64) -> String {
    let (y, m, d) = civil_from_days(hour.div_euclid(24));
    format!("date={y:04}-{m:02}-{d:02}/hour={:02}", hour.rem_euclid(24))
}

/// The event time of a row (row form) of `kind`, UTC ms: see [`PartitionTime::Event`].
pub fn event_time_ms(kind: RecordKind, row: &Value) -> Option<i64> {
    let flow_time = |f: &Value| {
        f.get("flow_start_ms")
            .and_then(Value::as_i64)
            .or_else(|| f.get("received_time_ms").and_then(Value::as_i64))
    };
    match kind {
        RecordKind::Flow => flow_time(row),
        RecordKind::SuperFlow => row.get("flow").and_then(flow_time),
        RecordKind::Tap => row.get("first_seen_ms").and_then(Value::as_i64),
        RecordKind::AppSession => row.get("start_ms").and_then(Value::as_i64),
    }
}

/// The event time of a flow record: `flow_start_ms`, else `received_time_ms`.
pub fn flow_event_time_ms(r: &FlowRecord) -> i64 {
    r.flow_start_ms.unwrap_or(r.received_time_ms)
}

fn record_id_of(row: &Value) -> Option<String> {
    row.get("record_id")
        .and_then(Value::as_str)
        .map(str::to_owned)
}

fn writer_properties(
    cfg: &ParquetSinkConfig,
    kind: RecordKind,
) -> Result<WriterProperties, ParquetSinkError> {
    let level = ZstdLevel::try_new(cfg.zstd_level)
        .map_err(|e| ParquetSinkError::Config(format!("zstd_level {}: {e}", cfg.zstd_level)))?;
    let meta = vec![
        KeyValue::new("supernetflow.kind".to_owned(), kind.name().to_owned()),
        KeyValue::new(
            "supernetflow.table".to_owned(),
            kind.table_name().to_owned(),
        ),
        KeyValue::new(
            "supernetflow.schema_version".to_owned(),
            schemas::SCHEMA_VERSION.to_string(),
        ),
    ];
    let mut b = WriterProperties::builder()
        // Version 1 data pages: the most widely read (older Spark/Hive, every DuckDB/pyarrow).
        .set_writer_version(WriterVersion::PARQUET_1_0)
        .set_compression(Compression::ZSTD(level))
        .set_max_row_group_row_count(Some(cfg.row_group_rows))
        // Plain encoding + zstd everywhere: on our tables it is both smaller and cheaper than
        // dictionary encoding (BENCHMARKS.md, "Parquet sink"): most columns are near-distinct
        // (times, counters, ports, ids), and zstd takes the repeats of the others.
        .set_dictionary_enabled(false)
        // Min/max statistics only where queries filter (see `stats_columns`).
        .set_statistics_enabled(EnabledStatistics::None)
        // List items named `element` as the Parquet spec says (Spark, Hive, Trino expect it).
        .set_coerce_types(true)
        .set_key_value_metadata(Some(meta));
    for path in stats_columns(&schemas::published::arrow_schema(kind)) {
        b = b.set_column_statistics_enabled(ColumnPath::new(path), EnabledStatistics::Page);
    }
    Ok(b.build())
}

/// Leaf columns queries filter by, besides every timestamp: statistics (chunk and page min/max,
/// the column index) let Spark, DuckDB and pyarrow skip row groups and pages on them. Matched by
/// the leaf's name at any depth (`src_addr`, `flow.src_addr`, `key.src_addr`).
const STATS_NAMES: &[&str] = &[
    "exporter",
    "src_addr",
    "dst_addr",
    "client_addr",
    "src_port",
    "dst_port",
    "protocol",
    "app_type",
    "provider",
    "enrichment_status",
    "session_id",
];

/// Paths of the struct-nested leaf columns of `schema` that get statistics: every timestamp,
/// and the [`STATS_NAMES`]. (Columns inside lists get none.) Computing min/max costs on every
/// value, so the rest go without: 2.4 k instructions a super-flow row.
fn stats_columns(schema: &arrow_schema::Schema) -> Vec<Vec<String>> {
    fn walk(fields: &arrow_schema::Fields, prefix: &[String], out: &mut Vec<Vec<String>>) {
        for f in fields {
            let mut path = prefix.to_vec();
            path.push(f.name().clone());
            match f.data_type() {
                arrow_schema::DataType::Struct(children) => walk(children, &path, out),
                arrow_schema::DataType::Timestamp(..) => out.push(path),
                _ if STATS_NAMES.contains(&f.name().as_str()) => out.push(path),
                _ => {}
            }
        }
    }
    let mut out = Vec::new();
    walk(schema.fields(), &[], &mut out);
    out
}

impl ParquetSink {
    /// Opens the sink over `cfg.dir` (created if missing) and deletes the `.tmp` files a crashed
    /// run left there (logged and counted in `tmp_files_discarded`).
    pub fn new(cfg: ParquetSinkConfig) -> Result<Self, ParquetSinkError> {
        cfg.validate()?;
        fs::create_dir_all(&cfg.dir).map_err(io("create directory", &cfg.dir))?;
        let props = [
            writer_properties(&cfg, RecordKind::Flow)?,
            writer_properties(&cfg, RecordKind::Tap)?,
            writer_properties(&cfg, RecordKind::SuperFlow)?,
            writer_properties(&cfg, RecordKind::AppSession)?,
        ];
        let schemas = RecordKind::ALL.map(|k| Arc::new(schemas::published::arrow_schema(k)));
        let now = SystemTime::now();
        let nanos = now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let run = xxhash_rust::xxh3::xxh3_64(
            format!("{}:{nanos}:{}", std::process::id(), cfg.dir.display()).as_bytes(),
        );
        let sink = Self {
            props,
            schemas,
            decoders: [None, None, None, None],
            open: HashMap::new(),
            run_id: format!("{:08x}", run as u32),
            seq: 0,
            metrics: Arc::new(ParquetMetrics::default()),
            cfg,
        };
        let discarded = sink.discard_tmp_files()?;
        if discarded > 0 {
            tracing::warn!(
                dir = %sink.cfg.dir.display(),
                discarded,
                "parquet sink: deleted unfinished .tmp files left by an earlier run"
            );
        }
        add(&sink.metrics.tmp_files_discarded, discarded);
        Ok(sink)
    }

    /// Splits the sink in two over the same directory, configuration and counters, for two
    /// threads (the `encode_threads = 2` of [`crate::sink::records::ParquetRecords`]): each
    /// writes its own files (its own run id in their names) and may hold half of
    /// `max_open_files` (at least one). Call it before writing.
    pub fn split(mut self) -> (Self, Self) {
        let n = self.cfg.max_open_files;
        let mut cfg = self.cfg.clone();
        cfg.max_open_files = (n - n / 2).max(1);
        self.cfg.max_open_files = (n / 2).max(1);
        let run = xxhash_rust::xxh3::xxh3_64(format!("{}/2", self.run_id).as_bytes());
        let other = Self {
            cfg,
            props: self.props.clone(),
            schemas: self.schemas.clone(),
            decoders: [None, None, None, None],
            open: HashMap::new(),
            run_id: format!("{:08x}", run as u32),
            seq: 0,
            metrics: Arc::clone(&self.metrics),
        };
        (self, other)
    }

    /// The sink's configuration.
    pub fn config(&self) -> &ParquetSinkConfig {
        &self.cfg
    }

    /// The sink's counters (shared; they keep counting).
    pub fn metrics(&self) -> Arc<ParquetMetrics> {
        Arc::clone(&self.metrics)
    }

    /// Files open now.
    pub fn open_files(&self) -> usize {
        self.open.len()
    }

    /// Deletes `.*.parquet.tmp` files under each table directory (partition depth).
    fn discard_tmp_files(&self) -> Result<u64, ParquetSinkError> {
        fn walk(dir: &Path, depth: u32, n: &mut u64) -> Result<(), ParquetSinkError> {
            let entries = match fs::read_dir(dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(io("list directory", dir)(e)),
            };
            for entry in entries {
                let entry = entry.map_err(io("list directory", dir))?;
                let path = entry.path();
                let ft = entry.file_type().map_err(io("stat", &path))?;
                let name = entry.file_name();
                let name = name.to_string_lossy();
                if ft.is_dir() && depth > 0 {
                    walk(&path, depth - 1, n)?;
                } else if ft.is_file() && name.starts_with('.') && name.ends_with(TMP_SUFFIX) {
                    tracing::warn!(file = %path.display(), "parquet sink: deleting unfinished file");
                    fs::remove_file(&path).map_err(io("remove", &path))?;
                    *n += 1;
                }
            }
            Ok(())
        }
        let mut n = 0;
        for kind in RecordKind::ALL {
            // <table>/date=/hour=/file
            walk(&self.cfg.dir.join(kind.table_name()), 2, &mut n)?;
        }
        Ok(n)
    }

    fn hour_of(&self, kind: RecordKind, row: &Value, now_ms: i64) -> Option<i64> {
        let t = match self.cfg.partition_time {
            PartitionTime::Event => event_time_ms(kind, row)?,
            PartitionTime::Write => now_ms,
        };
        Some(t.div_euclid(MS_PER_HOUR))
    }

    /// Writes records of one kind, converting them with [`schemas::published::row`]. Rows are
    /// routed to their partition; see the module documentation for rejection and rolling.
    pub fn write<R: Record>(&mut self, records: &[R]) -> Result<WriteReport, ParquetSinkError> {
        let refs: Vec<&R> = records.iter().collect();
        self.write_refs(&refs)
    }

    /// [`ParquetSink::write`] for borrowed records (a batch that mixes record kinds).
    pub fn write_refs<R: Record>(
        &mut self,
        records: &[&R],
    ) -> Result<WriteReport, ParquetSinkError> {
        let mut rows = Vec::with_capacity(records.len());
        let mut index = Vec::with_capacity(records.len());
        let mut rejected = Vec::new();
        for (i, r) in records.iter().enumerate() {
            match schemas::published::row(*r) {
                Ok(v) => {
                    rows.push(v);
                    index.push(i);
                }
                Err(e) => rejected.push(Rejected {
                    index: i,
                    record_id: Some(r.record_id().to_owned()),
                    reason: e.to_string(),
                }),
            }
        }
        add(&self.metrics.rows_rejected, rejected.len() as u64);
        let mut report = self.write_rows(R::KIND, &rows)?;
        for r in &mut report.rejected {
            r.index = index.get(r.index).copied().unwrap_or(r.index);
        }
        report.rejected.extend(rejected);
        report.rejected.sort_by_key(|r| r.index);
        Ok(report)
    }

    /// Writes rows of `kind` already in row form ([`schemas::published::to_row`]).
    pub fn write_rows(
        &mut self,
        kind: RecordKind,
        rows: &[Value],
    ) -> Result<WriteReport, ParquetSinkError> {
        let now = SystemTime::now();
        let now_ms = ms_since_epoch(now);
        let mut report = WriteReport::default();
        // Few partitions per batch: a short list beats a map.
        let mut groups: Vec<(i64, Vec<usize>)> = Vec::new();
        for (i, row) in rows.iter().enumerate() {
            let Some(hour) = self.hour_of(kind, row, now_ms) else {
                report.rejected.push(Rejected {
                    index: i,
                    record_id: record_id_of(row),
                    reason: "no partition time".into(),
                });
                continue;
            };
            match groups.iter_mut().find(|(h, _)| *h == hour) {
                Some((_, g)) => g.push(i),
                None => groups.push((hour, vec![i])),
            }
        }
        add(&self.metrics.rows_rejected, report.rejected.len() as u64);
        for (hour, idx) in groups {
            let refs: Vec<&Value> = idx.iter().filter_map(|&i| rows.get(i)).collect();
            let batches = match self.encode(kind, &refs) {
                Ok(b) => vec![b],
                Err(e) => {
                    // Find the rows at fault: encode one by one, keep the good ones.
                    tracing::warn!(table = kind.table_name(), error = %e, "parquet sink: batch did not convert; retrying row by row");
                    let mut good = Vec::new();
                    for (&i, row) in idx.iter().zip(&refs) {
                        match self.encode(kind, std::slice::from_ref(row)) {
                            Ok(b) => good.push(b),
                            Err(e) => {
                                add(&self.metrics.rows_rejected, 1);
                                report.rejected.push(Rejected {
                                    index: i,
                                    record_id: record_id_of(row),
                                    reason: e.to_string(),
                                });
                            }
                        }
                    }
                    good
                }
            };
            for batch in batches {
                report.written += batch.num_rows();
                self.write_batch(PartitionKey { kind, hour }, &batch, now)?;
            }
        }
        report.rejected.sort_by_key(|r| r.index);
        Ok(report)
    }

    /// Writes flow records through the direct FlowRecord → Arrow path ([`flow_batch`]), skipping
    /// the JSON value form. Same files as [`ParquetSink::write`]. Records with an unsigned value
    /// above `i64::MAX` in a 64-bit column are rejected like [`schemas::published::row`] does.
    pub fn write_flows(&mut self, records: &[FlowRecord]) -> Result<WriteReport, ParquetSinkError> {
        let refs: Vec<&FlowRecord> = records.iter().collect();
        self.write_flow_refs(&refs)
    }

    /// [`ParquetSink::write_flows`] for borrowed records (a batch that mixes record kinds).
    pub fn write_flow_refs(
        &mut self,
        records: &[&FlowRecord],
    ) -> Result<WriteReport, ParquetSinkError> {
        self.write_direct(records, flow_arrow::check, flow_event_time_ms, flow_batch)
    }

    /// Writes super-flows through the direct SuperFlow → Arrow path ([`super_batch`]), skipping
    /// the JSON value form. Same files as [`ParquetSink::write`] (see the tests); records that
    /// do not fit are rejected as [`schemas::published::row`] would.
    pub fn write_super_refs(
        &mut self,
        records: &[&SuperFlow],
    ) -> Result<WriteReport, ParquetSinkError> {
        self.write_direct(
            records,
            super_arrow::check,
            |s: &SuperFlow| flow_event_time_ms(&s.flow),
            super_batch,
        )
    }

    /// The direct path of one kind: `check` each record, route it by its partition hour
    /// (`event_ms` or the clock), build each hour's batch with `build`.
    fn write_direct<R: Record>(
        &mut self,
        records: &[&R],
        check: impl Fn(&R) -> Result<(), String>,
        event_ms: impl Fn(&R) -> i64,
        build: impl Fn(&SchemaRef, &[&R]) -> Result<RecordBatch, ArrowError>,
    ) -> Result<WriteReport, ParquetSinkError> {
        let now = SystemTime::now();
        let now_ms = ms_since_epoch(now);
        let mut report = WriteReport::default();
        let mut groups: Vec<(i64, Vec<&R>)> = Vec::new();
        for (i, &r) in records.iter().enumerate() {
            if let Err(reason) = check(r) {
                report.rejected.push(Rejected {
                    index: i,
                    record_id: Some(r.record_id().to_owned()),
                    reason,
                });
                continue;
            }
            let t = match self.cfg.partition_time {
                PartitionTime::Event => event_ms(r),
                PartitionTime::Write => now_ms,
            };
            let hour = t.div_euclid(MS_PER_HOUR);
            match groups.iter_mut().find(|(h, _)| *h == hour) {
                Some((_, g)) => g.push(r),
                None => groups.push((hour, vec![r])),
            }
        }
        add(&self.metrics.rows_rejected, report.rejected.len() as u64);
        let schema = Arc::clone(&self.schemas[R::KIND as usize]);
        for (hour, recs) in groups {
            let batch = build(&schema, &recs).map_err(|source| {
                add(&self.metrics.write_errors, 1);
                ParquetSinkError::Arrow {
                    table: R::KIND.table_name(),
                    rows: recs.len(),
                    source,
                }
            })?;
            report.written += batch.num_rows();
            let key = PartitionKey {
                kind: R::KIND,
                hour,
            };
            self.write_batch(key, &batch, now)?;
        }
        Ok(report)
    }

    fn encode(
        &mut self,
        kind: RecordKind,
        rows: &[&Value],
    ) -> Result<RecordBatch, ParquetSinkError> {
        let slot = kind as usize;
        let schema = Arc::clone(&self.schemas[slot]);
        let err = |source| ParquetSinkError::Arrow {
            table: kind.table_name(),
            rows: rows.len(),
            source,
        };
        let decoder = match &mut self.decoders[slot] {
            Some(d) => d,
            none => none.insert(ReaderBuilder::new(schema).build_decoder().map_err(err)?),
        };
        let result = decoder
            .serialize(rows)
            .and_then(|()| decoder.flush())
            .map_err(err);
        match result {
            Ok(Some(batch)) => Ok(batch),
            Ok(None) => Ok(RecordBatch::new_empty(Arc::clone(&self.schemas[slot]))),
            Err(e) => {
                // The decoder may hold half a row: start afresh next time.
                self.decoders[slot] = None;
                Err(e)
            }
        }
    }

    fn write_batch(
        &mut self,
        key: PartitionKey,
        batch: &RecordBatch,
        now: SystemTime,
    ) -> Result<(), ParquetSinkError> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if !self.open.contains_key(&key) {
            while self.open.len() >= self.cfg.max_open_files {
                let oldest = self
                    .open
                    .iter()
                    .min_by_key(|(_, f)| f.order)
                    .map(|(k, _)| *k);
                match oldest {
                    Some(k) => self.commit(k)?,
                    None => break,
                }
            }
            let f = self.create(key, now)?;
            self.open.insert(key, f);
            add(&self.metrics.open_files, 1);
        }
        let Some(f) = self.open.get_mut(&key) else {
            return Ok(());
        };
        match f.writer.write(batch) {
            Ok(()) => {
                f.rows += batch.num_rows() as u64;
                add(&self.metrics.rows_written, batch.num_rows() as u64);
            }
            Err(source) => {
                let path = f.tmp.clone();
                self.abandon(key);
                return Err(ParquetSinkError::Parquet { path, source });
            }
        }
        let full = f.size() >= self.cfg.roll_bytes;
        let old = now
            .duration_since(f.opened)
            .is_ok_and(|age| age >= Duration::from_secs(self.cfg.roll_secs));
        if full || old {
            self.commit(key)?;
        }
        Ok(())
    }

    fn create(&mut self, key: PartitionKey, now: SystemTime) -> Result<OpenFile, ParquetSinkError> {
        let dir = self
            .cfg
            .dir
            .join(key.kind.table_name())
            .join(partition_path(key.hour));
        fs::create_dir_all(&dir).map_err(|e| {
            add(&self.metrics.write_errors, 1);
            io("create directory", &dir)(e)
        })?;
        self.seq += 1;
        let name = format!(
            "part-{}-{}-{:06}{PARQUET_SUFFIX}",
            ms_since_epoch(now),
            self.run_id,
            self.seq
        );
        let tmp = dir.join(format!(".{name}.tmp"));
        let file = File::create(&tmp).map_err(|e| {
            add(&self.metrics.write_errors, 1);
            io("create", &tmp)(e)
        })?;
        let slot = key.kind as usize;
        let writer = ArrowWriter::try_new(
            file,
            Arc::clone(&self.schemas[slot]),
            Some(self.props[slot].clone()),
        )
        .map_err(|source| {
            add(&self.metrics.write_errors, 1);
            let _ = fs::remove_file(&tmp);
            ParquetSinkError::Parquet {
                path: tmp.clone(),
                source,
            }
        })?;
        Ok(OpenFile {
            writer,
            tmp,
            dir,
            name,
            opened: now,
            order: self.seq,
            rows: 0,
        })
    }

    /// Drops a file after an error: its `.tmp` is deleted and its rows counted as lost.
    fn abandon(&mut self, key: PartitionKey) {
        if let Some(f) = self.open.remove(&key) {
            self.metrics.open_files.fetch_sub(1, Ordering::Relaxed);
            add(&self.metrics.write_errors, 1);
            add(&self.metrics.rows_lost, f.rows);
            tracing::error!(file = %f.tmp.display(), rows = f.rows, "parquet sink: abandoning file after a write error");
            drop(f.writer);
            let _ = fs::remove_file(&f.tmp);
        }
    }

    /// Finishes a file: footer, fsync, rename, directory fsync.
    fn commit(&mut self, key: PartitionKey) -> Result<(), ParquetSinkError> {
        let Some(f) = self.open.remove(&key) else {
            return Ok(());
        };
        self.metrics.open_files.fetch_sub(1, Ordering::Relaxed);
        let OpenFile {
            writer,
            tmp,
            dir,
            name,
            rows,
            ..
        } = f;
        let fail = |m: &ParquetMetrics| {
            add(&m.write_errors, 1);
            add(&m.rows_lost, rows);
            let _ = fs::remove_file(&tmp);
        };
        let file = match writer.into_inner() {
            Ok(file) => file,
            Err(source) => {
                fail(&self.metrics);
                return Err(ParquetSinkError::Parquet { path: tmp, source });
            }
        };
        if let Err(e) = file.sync_all() {
            fail(&self.metrics);
            return Err(io("fsync", &tmp)(e));
        }
        let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
        drop(file);
        // Never replace a file: should the name exist (it cannot, short of a clock jump and a
        // reused run id), pick another.
        let mut target = dir.join(&name);
        let mut n = 0;
        while target.exists() {
            n += 1;
            target = dir.join(format!(
                "{}-{n}{PARQUET_SUFFIX}",
                name.trim_end_matches(PARQUET_SUFFIX)
            ));
        }
        if let Err(e) = fs::rename(&tmp, &target) {
            fail(&self.metrics);
            return Err(io("rename", &tmp)(e));
        }
        // Make the rename durable. A failure here leaves a complete, visible file.
        if let Err(e) = File::open(&dir).and_then(|d| d.sync_all()) {
            add(&self.metrics.write_errors, 1);
            tracing::warn!(dir = %dir.display(), error = %e, "parquet sink: fsync of directory failed");
        }
        add(&self.metrics.files_committed, 1);
        add(&self.metrics.bytes_committed, bytes);
        add(&self.metrics.rows_committed, rows);
        tracing::debug!(file = %target.display(), rows, bytes, "parquet sink: committed");
        Ok(())
    }

    /// Commits every file open for `roll_secs` or longer at `now`. Returns how many. Call it
    /// periodically (every second or so) so that quiet partitions get committed.
    pub fn flush_expired(&mut self, now: SystemTime) -> Result<usize, ParquetSinkError> {
        let limit = Duration::from_secs(self.cfg.roll_secs);
        let expired: Vec<PartitionKey> = self
            .open
            .iter()
            .filter(|(_, f)| now.duration_since(f.opened).is_ok_and(|age| age >= limit))
            .map(|(k, _)| *k)
            .collect();
        self.commit_all(expired)
    }

    /// Commits every open file (e.g. before a planned stop); the sink stays usable.
    pub fn commit_open(&mut self) -> Result<usize, ParquetSinkError> {
        let keys: Vec<PartitionKey> = self.open.keys().copied().collect();
        self.commit_all(keys)
    }

    fn commit_all(&mut self, mut keys: Vec<PartitionKey>) -> Result<usize, ParquetSinkError> {
        keys.sort_by_key(|k| self.open.get(k).map(|f| f.order));
        let mut first_err = None;
        let mut n = 0;
        for k in keys {
            match self.commit(k) {
                Ok(()) => n += 1,
                Err(e) => {
                    tracing::error!(error = %e, "parquet sink: commit failed");
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(n),
        }
    }

    /// Commits every open file and ends the sink.
    pub fn close(mut self) -> Result<ParquetMetricsSnapshot, ParquetSinkError> {
        self.commit_open()?;
        Ok(self.metrics.snapshot())
    }
}

/// The direct FlowRecord → Arrow path: the same columns as `row()` + the JSON decoder, built
/// without the JSON value form.
mod flow_arrow {
    use std::collections::HashMap;
    use std::sync::Arc;

    use arrow_array::{
        Array, ArrayRef, Int32Array, Int64Array, ListArray, RecordBatch, StringArray, StructArray,
        TimestampMillisecondArray,
    };
    use arrow_buffer::OffsetBuffer;
    use arrow_schema::{ArrowError, DataType, SchemaRef};
    use schemas::{Direction, ExtValue, FlowRecord, FlowVersion, TimeSource};

    fn wide(v: u64, name: &str) -> Result<i64, String> {
        i64::try_from(v)
            .map_err(|_| format!("{name}: integer out of range for a 64-bit signed column"))
    }

    /// Whether a record fits the schema (its `u64` counters fit an `Int64`).
    pub(super) fn check(r: &FlowRecord) -> Result<(), String> {
        wide(r.octets, "octets")?;
        wide(r.packets, "packets")?;
        if let Some(v) = r.octets_exported {
            wide(v, "octets_exported")?;
        }
        if let Some(v) = r.packets_exported {
            wide(v, "packets_exported")?;
        }
        Ok(())
    }

    fn flow_version(v: FlowVersion) -> &'static str {
        match v {
            FlowVersion::NetflowV5 => "netflow_v5",
            FlowVersion::NetflowV9 => "netflow_v9",
            FlowVersion::Ipfix => "ipfix",
        }
    }

    fn time_source(v: TimeSource) -> &'static str {
        match v {
            TimeSource::Absolute => "absolute",
            TimeSource::SysUptime => "sys_uptime",
            TimeSource::SystemInit => "system_init",
            TimeSource::Delta => "delta",
            TimeSource::ExportTime => "export_time",
        }
    }

    fn direction(v: Direction) -> &'static str {
        match v {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        }
    }

    /// An extension value as the row form's `(value, value_type)`.
    fn ext_value(v: &ExtValue) -> (String, &'static str) {
        match v {
            ExtValue::Unsigned(x) => (x.to_string(), "unsigned"),
            ExtValue::Signed(x) => (x.to_string(), "signed"),
            ExtValue::Float(x) => (
                serde_json::Number::from_f64(*x)
                    .map(|n| n.to_string())
                    .unwrap_or_else(|| "null".to_owned()),
                "float",
            ),
            ExtValue::Bool(x) => (x.to_string(), "bool"),
            ExtValue::String(x) => (x.to_string(), "string"),
            ExtValue::Address(x) => (x.to_string(), "address"),
            ExtValue::TimeMs(x) => (x.to_string(), "time_ms"),
            ExtValue::Hex(x) => (x.to_string(), "hex"),
        }
    }

    fn arc<A: Array + 'static>(a: A) -> ArrayRef {
        Arc::new(a)
    }

    fn i64s(recs: &[&FlowRecord], f: impl Fn(&FlowRecord) -> i64) -> ArrayRef {
        arc(Int64Array::from_iter_values(recs.iter().map(|r| f(r))))
    }
    fn opt_i64s(recs: &[&FlowRecord], f: impl Fn(&FlowRecord) -> Option<i64>) -> ArrayRef {
        arc(recs.iter().map(|r| f(r)).collect::<Int64Array>())
    }
    fn i32s(recs: &[&FlowRecord], f: impl Fn(&FlowRecord) -> i32) -> ArrayRef {
        arc(Int32Array::from_iter_values(recs.iter().map(|r| f(r))))
    }
    fn opt_i32s(recs: &[&FlowRecord], f: impl Fn(&FlowRecord) -> Option<i32>) -> ArrayRef {
        arc(recs.iter().map(|r| f(r)).collect::<Int32Array>())
    }
    fn strs<'a>(recs: &[&'a FlowRecord], f: impl Fn(&'a FlowRecord) -> &'a str) -> ArrayRef {
        arc(StringArray::from_iter_values(recs.iter().map(|r| f(r))))
    }
    /// An IPv4 address in dotted decimal (as `Display` writes it) into `out`; returns the length.
    /// `Display` goes through the formatter's padding machinery, several times slower per address.
    pub(super) fn ipv4_text(a: std::net::Ipv4Addr, out: &mut [u8; 15]) -> usize {
        let mut n = 0;
        for (i, o) in a.octets().into_iter().enumerate() {
            if i > 0 {
                out[n] = b'.';
                n += 1;
            }
            if o >= 100 {
                out[n] = b'0' + o / 100;
                n += 1;
            }
            if o >= 10 {
                out[n] = b'0' + (o / 10) % 10;
                n += 1;
            }
            out[n] = b'0' + o % 10;
            n += 1;
        }
        n
    }

    /// IP addresses as text, formatted straight into the array's buffer (no `String` per row).
    fn ips(recs: &[&FlowRecord], f: impl Fn(&FlowRecord) -> Option<std::net::IpAddr>) -> ArrayRef {
        use std::fmt::Write as _;
        use std::net::IpAddr;
        let mut b = arrow_array::builder::StringBuilder::with_capacity(recs.len(), recs.len() * 16);
        let mut v4 = [0u8; 15];
        for r in recs {
            match f(r) {
                Some(IpAddr::V4(a)) => {
                    let n = ipv4_text(a, &mut v4);
                    // Digits and dots only: always UTF-8.
                    b.append_value(std::str::from_utf8(&v4[..n]).unwrap_or_default());
                }
                Some(a) => {
                    // Writing to the builder's buffer cannot fail.
                    let _ = write!(b, "{a}");
                    b.append_value("");
                }
                None => b.append_null(),
            }
        }
        arc(b.finish())
    }
    fn opt_strs<'a, S: AsRef<str>>(
        recs: &[&'a FlowRecord],
        f: impl Fn(&'a FlowRecord) -> Option<S>,
    ) -> ArrayRef {
        arc(recs.iter().map(|r| f(r)).collect::<StringArray>())
    }

    /// Builds the `flow_records` batch of `recs` for `schema` (the table's Arrow schema). Fails
    /// when a record does not fit (a counter above `i64::MAX`) or when the schema has a column
    /// this builder does not know (the record model changed: this function must follow).
    pub fn flow_batch(schema: &SchemaRef, recs: &[&FlowRecord]) -> Result<RecordBatch, ArrowError> {
        for r in recs {
            check(r).map_err(|e| {
                ArrowError::InvalidArgumentError(format!("record {}: {e}", r.record_id))
            })?;
        }
        // `check` passed: the u64 conversions below cannot fail.
        let u = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let mut cols: HashMap<&'static str, ArrayRef> = HashMap::with_capacity(48);
        cols.insert(
            "schema_version",
            i32s(recs, |r| i32::from(r.schema_version)),
        );
        cols.insert("record_id", strs(recs, |r| r.record_id.as_str()));
        cols.insert("flow_version", strs(recs, |r| flow_version(r.flow_version)));
        cols.insert("exporter", ips(recs, |r| Some(r.exporter)));
        cols.insert(
            "observation_domain",
            i64s(recs, |r| i64::from(r.observation_domain)),
        );
        cols.insert("template_id", i32s(recs, |r| i32::from(r.template_id)));
        cols.insert(
            "sequence_number",
            i64s(recs, |r| i64::from(r.sequence_number)),
        );
        cols.insert("export_time_ms", i64s(recs, |r| r.export_time_ms));
        cols.insert("received_time_ms", i64s(recs, |r| r.received_time_ms));
        cols.insert("flow_start_ms", opt_i64s(recs, |r| r.flow_start_ms));
        cols.insert("flow_end_ms", opt_i64s(recs, |r| r.flow_end_ms));
        cols.insert("time_source", strs(recs, |r| time_source(r.time_source)));
        cols.insert("clock_skew_ms", opt_i64s(recs, |r| r.clock_skew_ms));
        cols.insert("src_addr", ips(recs, |r| r.src_addr));
        cols.insert("dst_addr", ips(recs, |r| r.dst_addr));
        cols.insert("src_port", opt_i32s(recs, |r| r.src_port.map(i32::from)));
        cols.insert("dst_port", opt_i32s(recs, |r| r.dst_port.map(i32::from)));
        cols.insert("protocol", opt_i32s(recs, |r| r.protocol.map(i32::from)));
        cols.insert("flow_key", opt_strs(recs, |r| r.flow_key.as_deref()));
        cols.insert("direction", opt_strs(recs, |r| r.direction.map(direction)));
        cols.insert("octets", i64s(recs, |r| u(r.octets)));
        cols.insert("packets", i64s(recs, |r| u(r.packets)));
        cols.insert(
            "octets_exported",
            opt_i64s(recs, |r| r.octets_exported.map(u)),
        );
        cols.insert(
            "packets_exported",
            opt_i64s(recs, |r| r.packets_exported.map(u)),
        );
        cols.insert(
            "sampling_interval",
            i64s(recs, |r| i64::from(r.sampling_interval)),
        );
        cols.insert("tcp_flags", opt_i32s(recs, |r| r.tcp_flags.map(i32::from)));
        cols.insert("tos", opt_i32s(recs, |r| r.tos.map(i32::from)));
        cols.insert("icmp_type", opt_i32s(recs, |r| r.icmp_type.map(i32::from)));
        cols.insert("icmp_code", opt_i32s(recs, |r| r.icmp_code.map(i32::from)));
        cols.insert(
            "input_interface",
            opt_i64s(recs, |r| r.input_interface.map(i64::from)),
        );
        cols.insert(
            "output_interface",
            opt_i64s(recs, |r| r.output_interface.map(i64::from)),
        );
        cols.insert("src_vlan", opt_i32s(recs, |r| r.src_vlan.map(i32::from)));
        cols.insert("dst_vlan", opt_i32s(recs, |r| r.dst_vlan.map(i32::from)));
        cols.insert(
            "ingress_vrf",
            opt_i64s(recs, |r| r.ingress_vrf.map(i64::from)),
        );
        cols.insert(
            "egress_vrf",
            opt_i64s(recs, |r| r.egress_vrf.map(i64::from)),
        );
        cols.insert("src_as", opt_i64s(recs, |r| r.src_as.map(i64::from)));
        cols.insert("dst_as", opt_i64s(recs, |r| r.dst_as.map(i64::from)));
        cols.insert("src_mask", opt_i32s(recs, |r| r.src_mask.map(i32::from)));
        cols.insert("dst_mask", opt_i32s(recs, |r| r.dst_mask.map(i32::from)));
        cols.insert("next_hop", ips(recs, |r| r.next_hop));
        cols.insert("bgp_next_hop", ips(recs, |r| r.bgp_next_hop));
        cols.insert(
            "flow_end_reason",
            opt_i32s(recs, |r| r.flow_end_reason.map(i32::from)),
        );

        let mut columns = Vec::with_capacity(schema.fields().len());
        for field in schema.fields() {
            let name = field.name().as_str();
            let col = match field.data_type() {
                DataType::Timestamp(_, tz) => {
                    let ints = cols.remove(name).ok_or_else(|| unknown(name))?;
                    let ints = ints
                        .as_any()
                        .downcast_ref::<Int64Array>()
                        .ok_or_else(|| unknown(name))?;
                    arc(TimestampMillisecondArray::new(
                        ints.values().clone(),
                        ints.nulls().cloned(),
                    )
                    .with_timezone_opt(tz.clone()))
                }
                DataType::List(item) if name == "extensions" => extensions(recs, item)?,
                _ => cols.remove(name).ok_or_else(|| unknown(name))?,
            };
            columns.push(col);
        }
        RecordBatch::try_new(Arc::clone(schema), columns)
    }

    fn unknown(name: &str) -> ArrowError {
        ArrowError::SchemaError(format!(
            "flow_records column {name} is not known to the direct FlowRecord builder"
        ))
    }

    fn extensions(
        recs: &[&FlowRecord],
        item: &arrow_schema::FieldRef,
    ) -> Result<ArrayRef, ArrowError> {
        let DataType::Struct(fields) = item.data_type() else {
            return Err(unknown("extensions"));
        };
        let n: usize = recs.iter().map(|r| r.extensions.len()).sum();
        let (mut pen, mut id, mut name, mut value, mut ty) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for e in recs.iter().flat_map(|r| r.extensions.iter()) {
            let (v, t) = ext_value(&e.value);
            pen.push(i64::from(e.pen));
            id.push(i32::from(e.id));
            name.push(e.name.as_deref());
            value.push(v);
            ty.push(t);
        }
        let mut children: HashMap<&str, ArrayRef> = HashMap::from([
            ("pen", arc(Int64Array::from(pen))),
            ("id", arc(Int32Array::from(id))),
            ("name", arc(StringArray::from(name))),
            ("value", arc(StringArray::from_iter_values(value))),
            ("value_type", arc(StringArray::from_iter_values(ty))),
        ]);
        let arrays = fields
            .iter()
            .map(|f| {
                children
                    .remove(f.name().as_str())
                    .ok_or_else(|| unknown(&format!("extensions.{}", f.name())))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let values = StructArray::try_new(fields.clone(), arrays, None)?;
        let offsets = OffsetBuffer::<i32>::from_lengths(recs.iter().map(|r| r.extensions.len()));
        Ok(arc(ListArray::try_new(
            Arc::clone(item),
            offsets,
            arc(values),
            None,
        )?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_paths() {
        // 2024-06-10T06:13:20Z, the record model's sample time.
        assert_eq!(
            partition_path(1_718_000_000_000 / MS_PER_HOUR),
            "date=2024-06-10/hour=06"
        );
        assert_eq!(partition_path(0), "date=1970-01-01/hour=00");
        assert_eq!(partition_path(-1), "date=1969-12-31/hour=23");
        // 2024-02-29T23:00Z and 2000-03-01T00:00Z (leap years).
        assert_eq!(
            partition_path(1_709_247_600_000 / MS_PER_HOUR),
            "date=2024-02-29/hour=23"
        );
        assert_eq!(
            partition_path(951_868_800_000 / MS_PER_HOUR),
            "date=2000-03-01/hour=00"
        );
    }

    #[test]
    fn event_times() {
        for kind in RecordKind::ALL {
            let row =
                schemas::published::to_row(kind, &schemas::sample::json(kind)).unwrap_or_default();
            assert!(event_time_ms(kind, &row).is_some(), "{kind}");
        }
        let mut f = schemas::sample::flow_record();
        f.flow_start_ms = None;
        let row = schemas::published::row(&f).unwrap_or_default();
        assert_eq!(
            event_time_ms(RecordKind::Flow, &row),
            Some(f.received_time_ms)
        );
        assert_eq!(flow_event_time_ms(&f), f.received_time_ms);
    }

    #[test]
    fn ipv4_text_is_display() {
        let mut buf = [0u8; 15];
        for a in [
            [0, 0, 0, 0],
            [255, 255, 255, 255],
            [10, 0, 9, 100],
            [192, 168, 1, 1],
            [1, 20, 199, 250],
        ] {
            let ip = std::net::Ipv4Addr::from(a);
            let n = flow_arrow::ipv4_text(ip, &mut buf);
            assert_eq!(&buf[..n], ip.to_string().as_bytes());
        }
        let mut x: u32 = 0x9e37_79b9;
        for _ in 0..10_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let ip = std::net::Ipv4Addr::from(x);
            let n = flow_arrow::ipv4_text(ip, &mut buf);
            assert_eq!(&buf[..n], ip.to_string().as_bytes());
        }
    }

    #[test]
    fn config_defaults_and_validation() {
        let c: ParquetSinkConfig = toml_like("{}");
        assert_eq!(c, ParquetSinkConfig::default());
        assert_eq!(c.roll_bytes, 128 * 1024 * 1024);
        assert!(serde_json::from_str::<ParquetSinkConfig>(r#"{"nope": 1}"#).is_err());
        let bad = ParquetSinkConfig {
            zstd_level: 0,
            ..ParquetSinkConfig::default()
        };
        assert!(bad.validate().is_err());
    }

    fn toml_like(s: &str) -> ParquetSinkConfig {
        serde_json::from_str(s).unwrap_or_else(|_| ParquetSinkConfig {
            dir: PathBuf::new(),
            ..ParquetSinkConfig::default()
        })
    }
}
