//! The Parquet sink against real files in a temporary directory: partitions, round trip, rolling,
//! crash recovery (drop without close, `kill -9` of a writer process), the direct FlowRecord and
//! SuperFlow paths,
//! and external readers (pyarrow, DuckDB, Spark when installed: `tests/parquet_readers.py`).

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, TimestampMillisecondType};
use arrow_array::{Array, RecordBatch};
use mediator::sink::parquet::{
    flow_batch, partition_path, super_batch, ParquetSink, ParquetSinkConfig, PartitionTime,
};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::reader::{FileReader, SerializedFileReader};
use schemas::{ExtValue, Extension, FlowRecord, RecordKind, SuperFlow};

const HOUR: i64 = 3_600_000;
/// 2024-06-10T06:13:20Z, the record model's sample time.
const T0: i64 = 1_718_000_000_000;

/// `n` realistic flow records from the sample, their start times spread over `hours` hours from
/// T0. Every 10th has no start time (partitioned by `received_time_ms`), every 7th is IPv6, and
/// the extensions cover every value type.
fn flows(n: usize, hours: i64) -> Vec<FlowRecord> {
    let base = schemas::sample::flow_record();
    let step = (hours * HOUR) / n.max(1) as i64;
    (0..n)
        .map(|i| {
            let mut r = base.clone();
            let t = T0 + step * i as i64;
            r.sequence_number = 1_000 + i as u32;
            r.export_time_ms = t + 31_000;
            r.received_time_ms = t + 31_004;
            r.flow_start_ms = if i % 10 == 9 { None } else { Some(t) };
            r.flow_end_ms = r.flow_start_ms.map(|s| s + 29_000);
            r.src_port = Some(443 + (i % 3) as u16);
            r.dst_port = Some(40_000 + (i % 20_000) as u16);
            r.octets = 1_000 + 37 * i as u64;
            r.packets = 10 + i as u64;
            r.direction = if i % 2 == 0 { r.direction } else { None };
            if i % 7 == 3 {
                r.src_addr = Some(IpAddr::V6(Ipv6Addr::new(
                    0x2001, 0xdb8, 0, 0, 0, 0, 0, i as u16,
                )));
                r.dst_addr = Some(IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1)));
                r.next_hop = None;
            }
            let v = match i % 8 {
                0 => ExtValue::Unsigned(i as u64),
                1 => ExtValue::Signed(-(i as i64)),
                2 => ExtValue::Float(i as f64 / 4.0),
                3 => ExtValue::Bool(i % 2 == 0),
                4 => ExtValue::String(format!("s{i}").into()),
                5 => ExtValue::Address("198.51.100.7".into()),
                6 => ExtValue::TimeMs(t),
                _ => ExtValue::hex(&[1, 2, (i % 256) as u8]),
            };
            if i % 5 == 4 {
                r.extensions.clear();
            } else {
                r.extensions.push(Extension {
                    pen: 9,
                    id: 100 + (i % 8) as u16,
                    name: (i % 3 == 0).then(|| "x".into()),
                    value: v,
                });
            }
            r.set_flow_key();
            r.set_record_id(i as u32);
            r
        })
        .collect()
}

fn cfg(dir: &Path) -> ParquetSinkConfig {
    ParquetSinkConfig {
        dir: dir.to_path_buf(),
        ..ParquetSinkConfig::default()
    }
}

/// Files under `dir` whose name ends with `suffix`, sorted.
fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    fn walk(d: &Path, suffix: &str, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, suffix, out);
            } else if p.to_string_lossy().ends_with(suffix) {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, suffix, &mut out);
    out.sort();
    out
}

fn visible(dir: &Path) -> Vec<PathBuf> {
    files(dir, ".parquet")
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| !n.to_string_lossy().starts_with('.'))
        })
        .collect()
}

/// Reads a whole file; panics on anything unreadable. Checks the row count against the footer.
fn read(path: &Path) -> Vec<RecordBatch> {
    let f = File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let footer_rows = SerializedFileReader::new(f.try_clone().expect("clone"))
        .unwrap_or_else(|e| panic!("{}: footer: {e}", path.display()))
        .metadata()
        .file_metadata()
        .num_rows();
    let reader = ParquetRecordBatchReaderBuilder::try_new(f)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .build()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let batches: Vec<RecordBatch> = reader
        .map(|b| b.unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .collect();
    let n: usize = batches.iter().map(RecordBatch::num_rows).sum();
    assert_eq!(n as i64, footer_rows, "{}", path.display());
    batches
}

fn strings(b: &RecordBatch, col: &str) -> Vec<Option<String>> {
    let a = b.column_by_name(col).expect(col).as_string::<i32>();
    (0..a.len())
        .map(|i| a.is_valid(i).then(|| a.value(i).to_owned()))
        .collect()
}

/// Checks every visible file of `dir`: its rows are records of `by_id`, in the partition of their
/// event time, with the same values. Returns the record ids read.
fn check_dataset(dir: &Path, by_id: &BTreeMap<String, FlowRecord>) -> Vec<String> {
    let mut ids = Vec::new();
    for path in visible(dir) {
        let rel = path
            .strip_prefix(dir)
            .expect("under dir")
            .to_string_lossy()
            .into_owned();
        for b in read(&path) {
            let rid = strings(&b, "record_id");
            let start = b
                .column_by_name("flow_start_ms")
                .expect("flow_start_ms")
                .as_primitive::<TimestampMillisecondType>();
            let received = b
                .column_by_name("received_time_ms")
                .expect("received_time_ms")
                .as_primitive::<TimestampMillisecondType>();
            let octets = b
                .column_by_name("octets")
                .expect("octets")
                .as_primitive::<Int64Type>();
            let src = strings(&b, "src_addr");
            let ext = b
                .column_by_name("extensions")
                .expect("ext")
                .as_list::<i32>();
            for i in 0..b.num_rows() {
                let id = rid[i].clone().expect("record_id not null");
                let r = by_id
                    .get(&id)
                    .unwrap_or_else(|| panic!("unknown record {id}"));
                let t = r.flow_start_ms.unwrap_or(r.received_time_ms);
                let want = format!("flow_records/{}/", partition_path(t.div_euclid(HOUR)));
                assert!(rel.starts_with(&want), "{id} in {rel}, want {want}");
                assert_eq!(start.is_valid(i).then(|| start.value(i)), r.flow_start_ms);
                assert_eq!(received.value(i), r.received_time_ms);
                assert_eq!(octets.value(i) as u64, r.octets);
                assert_eq!(src[i], r.src_addr.map(|a| a.to_string()));
                assert_eq!(ext.value(i).len(), r.extensions.len());
                ids.push(id);
            }
        }
    }
    ids
}

#[test]
fn partitions_round_trip_and_no_tmp_after_close() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let recs = flows(3_000, 3);
    let mut sink = ParquetSink::new(cfg(tmp.path())).expect("sink");
    for chunk in recs.chunks(250) {
        let rep = sink.write(chunk).expect("write");
        assert_eq!(rep.written, chunk.len());
        assert!(rep.rejected.is_empty(), "{:?}", rep.rejected);
    }
    assert!(sink.open_files() >= 3);
    let m = sink.close().expect("close");
    assert_eq!(m.rows_written, 3_000);
    assert_eq!(m.rows_committed, 3_000);
    assert_eq!(m.open_files, 0);
    assert_eq!(m.write_errors, 0);

    // 06:13 + 3 h (+31 s of receive delay on the last records) spans 06..=09.
    let parts: BTreeSet<String> = visible(tmp.path())
        .iter()
        .filter_map(|p| p.parent())
        .map(|p| {
            p.strip_prefix(tmp.path())
                .expect("under")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let want: BTreeSet<String> = (6..=9)
        .map(|h| format!("flow_records/date=2024-06-10/hour={h:02}"))
        .collect();
    assert_eq!(parts, want);
    assert_eq!(m.files_committed as usize, visible(tmp.path()).len());
    assert!(files(tmp.path(), ".tmp").is_empty(), "tmp left after close");

    let by_id: BTreeMap<String, FlowRecord> = recs
        .iter()
        .map(|r| (String::from(r.record_id.clone()), r.clone()))
        .collect();
    assert_eq!(by_id.len(), 3_000, "record ids are unique");
    let ids = check_dataset(tmp.path(), &by_id);
    assert_eq!(ids.len(), 3_000);
    assert_eq!(
        ids.into_iter().collect::<BTreeSet<_>>(),
        by_id.keys().cloned().collect()
    );
}

#[test]
fn parquet_metadata_timestamps_and_compression() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut sink = ParquetSink::new(cfg(tmp.path())).expect("sink");
    sink.write(&flows(500, 1)).expect("write");
    sink.close().expect("close");
    for path in visible(tmp.path()) {
        let r = SerializedFileReader::new(File::open(&path).expect("open")).expect("reader");
        let md = r.metadata();
        let schema = md.file_metadata().schema_descr();
        let col = schema
            .columns()
            .iter()
            .find(|c| c.name() == "flow_start_ms")
            .expect("column");
        assert_eq!(col.physical_type(), parquet::basic::Type::INT64);
        let lt = format!("{:?}", col.logical_type_ref());
        assert!(
            lt.contains("Timestamp")
                && lt.contains("is_adjusted_to_u_t_c: true")
                && lt.contains("MILLIS"),
            "flow_start_ms logical type {lt}"
        );
        let rg = md.row_group(0);
        for c in rg.columns() {
            assert!(
                matches!(c.compression(), parquet::basic::Compression::ZSTD(_)),
                "{} is {:?}",
                c.column_path(),
                c.compression()
            );
            // No dictionaries; statistics on the columns queries filter by (timestamps,
            // addresses, ports, protocol, exporter), none on the others.
            let path = c.column_path().string();
            let filtered = path.ends_with("_ms") && path != "clock_skew_ms"
                || [
                    "exporter", "src_addr", "dst_addr", "src_port", "dst_port", "protocol",
                ]
                .contains(&path.as_str());
            assert_eq!(c.statistics().is_some(), filtered, "{path} statistics");
            let dict = c.encodings().any(|e| {
                matches!(
                    e,
                    parquet::basic::Encoding::PLAIN_DICTIONARY
                        | parquet::basic::Encoding::RLE_DICTIONARY
                )
            });
            assert!(!dict, "{path} has a dictionary");
        }
        let kv = md
            .file_metadata()
            .key_value_metadata()
            .expect("kv metadata");
        assert!(kv
            .iter()
            .any(|k| k.key == "supernetflow.table" && k.value.as_deref() == Some("flow_records")));
    }
}

#[test]
fn rolls_by_size() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut c = cfg(tmp.path());
    c.roll_bytes = 64 * 1024;
    c.row_group_rows = 1_000;
    let mut sink = ParquetSink::new(c).expect("sink");
    // All in one hour: 20 000 records over 30 minutes.
    let recs = flows(20_000, 1)
        .into_iter()
        .map(|mut r| {
            r.flow_start_ms = Some(T0 + (r.sequence_number as i64 % 1_000) * 1_000);
            r
        })
        .collect::<Vec<_>>();
    for chunk in recs.chunks(500) {
        sink.write(chunk).expect("write");
    }
    let m = sink.close().expect("close");
    let vis = visible(tmp.path());
    assert!(vis.len() >= 3, "only {} files", vis.len());
    assert_eq!(m.files_committed as usize, vis.len());
    let mut rows = 0;
    for p in &vis {
        rows += read(p).iter().map(RecordBatch::num_rows).sum::<usize>();
        let len = std::fs::metadata(p).expect("stat").len();
        // Rolled at 64 KiB of written + in-progress bytes: a file overshoots by at most a batch.
        assert!(len < 256 * 1024, "{} is {len} bytes", p.display());
    }
    assert_eq!(rows, 20_000);
    assert_eq!(
        m.bytes_committed,
        vis.iter()
            .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
            .sum::<u64>()
    );
}

#[test]
fn rolls_by_time_and_bounds_open_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut c = cfg(tmp.path());
    c.max_open_files = 2;
    c.roll_secs = 300;
    let mut sink = ParquetSink::new(c).expect("sink");
    let recs = flows(300, 3);
    sink.write(&recs[..50]).expect("write");
    assert_eq!(sink.open_files(), 1);
    assert_eq!(sink.flush_expired(SystemTime::now()).expect("flush"), 0);
    sink.write(&recs[50..]).expect("write");
    // Hours 06..=09 but at most two open: the older ones were committed.
    assert_eq!(sink.open_files(), 2);
    let metrics = sink.metrics();
    assert!(metrics.snapshot().files_committed >= 2);
    let later = SystemTime::now() + Duration::from_secs(301);
    assert_eq!(sink.flush_expired(later).expect("flush"), 2);
    assert_eq!(sink.open_files(), 0);
    let s = metrics.snapshot();
    assert_eq!(s.rows_committed, 300);
    assert_eq!(s.open_files, 0);
    assert!(files(tmp.path(), ".tmp").is_empty());
    sink.close().expect("close");
}

#[test]
fn write_partition_time_uses_the_clock() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut c = cfg(tmp.path());
    c.partition_time = PartitionTime::Write;
    let mut sink = ParquetSink::new(c).expect("sink");
    sink.write(&flows(100, 3)).expect("write");
    assert_eq!(sink.open_files(), 1, "one partition: now");
    sink.close().expect("close");
}

#[test]
fn bad_rows_are_rejected_and_the_rest_written() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut sink = ParquetSink::new(cfg(tmp.path())).expect("sink");
    let recs = flows(10, 1);
    let mut rows: Vec<serde_json::Value> = recs
        .iter()
        .map(|r| schemas::published::row(r).expect("row"))
        .collect();
    // No partition time at all.
    rows[2]["flow_start_ms"] = serde_json::Value::Null;
    rows[2]["received_time_ms"] = serde_json::Value::Null;
    // A string where a number belongs: the JSON decoder refuses it.
    rows[5]["octets"] = serde_json::json!("lots");
    let rep = sink.write_rows(RecordKind::Flow, &rows).expect("write");
    assert_eq!(rep.written, 8);
    let idx: Vec<usize> = rep.rejected.iter().map(|r| r.index).collect();
    assert_eq!(idx, vec![2, 5], "{:?}", rep.rejected);
    assert_eq!(
        rep.rejected[1].record_id.as_deref(),
        Some(recs[5].record_id.as_str())
    );
    // An out-of-range counter is refused by both paths.
    let mut big = recs[0].clone();
    big.octets = u64::MAX;
    let rep = sink.write(std::slice::from_ref(&big)).expect("write");
    assert_eq!((rep.written, rep.rejected.len()), (0, 1));
    let rep = sink.write_flows(std::slice::from_ref(&big)).expect("write");
    assert_eq!((rep.written, rep.rejected.len()), (0, 1));
    let m = sink.close().expect("close");
    assert_eq!(m.rows_committed, 8);
    assert_eq!(m.rows_rejected, 4);
}

/// The batch the generic path builds: each record's published row form, decoded by arrow-json.
fn generic_batch<R: schemas::Record>(schema: &arrow_schema::SchemaRef, recs: &[R]) -> RecordBatch {
    let rows: Vec<serde_json::Value> = recs
        .iter()
        .map(|r| schemas::published::row(r).expect("row"))
        .collect();
    let mut dec = arrow_json::ReaderBuilder::new(Arc::clone(schema))
        .build_decoder()
        .expect("decoder");
    dec.serialize(&rows).expect("serialize");
    dec.flush().expect("flush").expect("batch")
}

/// Two batches of `schema` hold the same data, column by column (named in the failure).
fn assert_batches_equal(schema: &arrow_schema::SchemaRef, a: &RecordBatch, b: &RecordBatch) {
    assert_eq!(a.schema(), b.schema());
    for (i, f) in schema.fields().iter().enumerate() {
        assert_eq!(
            a.column(i).to_data(),
            b.column(i).to_data(),
            "column {}",
            f.name()
        );
    }
}

#[test]
fn direct_flow_path_matches_the_generic_path() {
    let schema = Arc::new(schemas::published::arrow_schema(RecordKind::Flow));
    let mut recs = flows(400, 2);
    // A record with nothing optional set.
    let mut bare = FlowRecord::empty(
        schemas::FlowVersion::NetflowV5,
        "192.0.2.9".parse().expect("ip"),
    );
    bare.record_id = "00000000000000ff".into();
    bare.extensions.push(Extension {
        pen: 0,
        id: 1,
        name: None,
        value: ExtValue::Float(f64::NAN),
    });
    recs.push(bare);
    let refs: Vec<&FlowRecord> = recs.iter().collect();
    let direct = flow_batch(&schema, &refs).expect("direct");
    assert_batches_equal(&schema, &generic_batch(&schema, &recs), &direct);

    // And the files: both paths give the same rows.
    let (a, b) = (
        tempfile::tempdir().expect("a"),
        tempfile::tempdir().expect("b"),
    );
    let mut s = ParquetSink::new(cfg(a.path())).expect("sink");
    s.write(&recs).expect("write");
    s.close().expect("close");
    let mut s = ParquetSink::new(cfg(b.path())).expect("sink");
    s.write_flows(&recs).expect("write");
    s.close().expect("close");
    let rel = |d: &Path| {
        visible(d)
            .iter()
            .map(|p| {
                let dir = p
                    .parent()
                    .expect("parent")
                    .strip_prefix(d)
                    .expect("under")
                    .to_path_buf();
                (dir, read(p))
            })
            .collect::<Vec<_>>()
    };
    let (ra, rb) = (rel(a.path()), rel(b.path()));
    assert_eq!(ra.len(), rb.len());
    for ((da, ba), (db, bb)) in ra.iter().zip(&rb) {
        assert_eq!(da, db);
        assert_eq!(ba, bb);
    }
}

/// Super-flows of every shape: matched with app and each QoE block, partial, unmatched (from the
/// `flows` above, with and without extensions), NaN in nullable floats, lists filled and empty.
fn super_flows(n: usize) -> Vec<SuperFlow> {
    use schemas::{
        AppType, BufferState, ConferencingQoe, DetectionMethod, MatchStatus, Qoe, VideoQoe,
    };
    let base = schemas::sample::super_flow();
    flows(n, 2)
        .into_iter()
        .enumerate()
        .map(|(i, mut f)| {
            if i % 4 == 0 {
                f.extensions.clear();
            }
            match i % 5 {
                0 | 1 => SuperFlow::unmatched(f),
                2 => {
                    // Matched with the sample's app, stats and gaming QoE.
                    let mut s = base.clone();
                    s.record_id = f.record_id.to_string();
                    s.flow = f.into();
                    s
                }
                3 => {
                    // Partial: app and stats, no QoE; NaN in nullable floats.
                    let mut s = base.clone();
                    s.record_id = f.record_id.to_string();
                    s.flow = f.into();
                    s.qoe = None;
                    s.enrichment.status = MatchStatus::Partial;
                    s.enrichment.tap = None;
                    s.enrichment.router_tap_ratio = Some(f32::NAN);
                    if let Some(st) = s.stats.as_mut() {
                        st.rtt_avg_ms = Some(f32::INFINITY);
                        st.jitter_ms = None;
                    }
                    if let Some(a) = s.app.as_mut() {
                        let a = a.make_mut();
                        a.app_type = AppType::VideoStreaming;
                        a.alpn = vec!["h2".into(), "http/1.1".into()];
                        a.detection_method = DetectionMethod::Sni;
                        a.sni = Some("video.example".into());
                    }
                    s.sync_columns();
                    s
                }
                _ => {
                    // Matched with video and conferencing QoE, no stats.
                    let mut s = base.clone();
                    s.record_id = f.record_id.to_string();
                    s.flow = f.into();
                    s.stats = None;
                    s.qoe = Some(Qoe {
                        video: Some(VideoQoe {
                            window_start_ms: T0,
                            window_end_ms: T0 + 30_000,
                            resolution: Some("1080p".into()),
                            height_px: Some(1080),
                            bitrate_kbps: None,
                            startup_delay_ms: Some(800),
                            stalls: 1,
                            stall_ms: 1_200,
                            buffer_state: BufferState::Draining,
                        }),
                        gaming: None,
                        conferencing: Some(ConferencingQoe {
                            window_start_ms: T0,
                            window_end_ms: T0 + 30_000,
                            jitter_ms: Some(4.5),
                            loss_ratio: None,
                            frame_rate: Some(f32::NAN),
                            stutter_events: 2,
                            dropouts: 0,
                            mos: Some(4.2),
                            media: if i % 2 == 0 {
                                vec!["audio".into()]
                            } else {
                                Vec::new()
                            },
                            streams: 2,
                        }),
                    });
                    s
                }
            }
        })
        .collect()
}

/// A batch as `run` sends it: the super-flows' router flows, then the super-flows.
fn flows_then_supers(supers: &[SuperFlow]) -> Vec<mediator::sink::records::AnyRecord> {
    use mediator::sink::records::AnyRecord;
    let flows = supers.iter().map(|s| AnyRecord::Flow(s.flow.0.clone()));
    let supers = supers.iter().map(|s| AnyRecord::Super(Box::new(s.clone())));
    flows.chain(supers).collect()
}

#[test]
fn direct_super_flow_path_matches_the_generic_path() {
    let schema = Arc::new(schemas::published::arrow_schema(RecordKind::SuperFlow));
    let recs = super_flows(400);
    // The in-memory batches are equal column by column.
    let refs: Vec<&SuperFlow> = recs.iter().collect();
    let direct = super_batch(&schema, &refs).expect("direct");
    assert_batches_equal(&schema, &generic_batch(&schema, &recs), &direct);

    // Records that do not fit are rejected by both paths, the same ones; the rest written.
    let mut all = recs.clone();
    let mut big = all[2].clone();
    big.record_id = "00000000000000aa".into();
    if let Some(st) = big.stats.as_mut() {
        st.total_bytes = u64::MAX;
    }
    all.push(big);
    let mut nan = all[3].clone();
    nan.record_id = "00000000000000bb".into();
    nan.enrichment.confidence = f32::NAN;
    all.push(nan);

    // The files: both paths give the same partitions and the same rows.
    let (a, b) = (
        tempfile::tempdir().expect("a"),
        tempfile::tempdir().expect("b"),
    );
    let mut s = ParquetSink::new(cfg(a.path())).expect("sink");
    let ra = s.write(&all).expect("write");
    s.close().expect("close");
    let mut s = ParquetSink::new(cfg(b.path())).expect("sink");
    let all_refs: Vec<&SuperFlow> = all.iter().collect();
    let rb = s.write_super_refs(&all_refs).expect("write");
    s.close().expect("close");
    let ids = |r: &mediator::sink::parquet::WriteReport| {
        r.rejected
            .iter()
            .map(|x| (x.index, x.record_id.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&ra), ids(&rb));
    assert_eq!(ra.rejected.len(), 2, "{:?}", ra.rejected);
    assert_eq!((ra.written, rb.written), (recs.len(), recs.len()));
    let rel = |d: &Path| {
        visible(d)
            .iter()
            .map(|p| {
                let dir = p
                    .parent()
                    .expect("parent")
                    .strip_prefix(d)
                    .expect("under")
                    .to_path_buf();
                (dir, read(p))
            })
            .collect::<Vec<_>>()
    };
    let (fa, fb) = (rel(a.path()), rel(b.path()));
    assert_eq!(fa.len(), fb.len());
    assert!(fa.len() >= 2, "the records span partitions");
    for ((da, ba), (db, bb)) in fa.iter().zip(&fb) {
        assert_eq!(da, db);
        assert_eq!(ba, bb);
    }
}

#[test]
fn crash_without_close_then_restart_discards_tmp() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let recs = flows(2_000, 3);
    {
        let mut c = cfg(tmp.path());
        c.roll_bytes = 48 * 1024;
        c.row_group_rows = 500;
        let mut sink = ParquetSink::new(c).expect("sink");
        for chunk in recs.chunks(200) {
            sink.write(chunk).expect("write");
        }
        assert!(sink.open_files() > 0);
        // Dropped without close: what a crash leaves.
    }
    let left = files(tmp.path(), ".parquet.tmp");
    assert!(!left.is_empty(), "a crash leaves tmp files");
    for p in &left {
        let name = p.file_name().expect("name").to_string_lossy().into_owned();
        assert!(name.starts_with('.'), "{name} is hidden from readers");
        // A tmp file has no footer: unreadable.
        let f = File::open(p).expect("open");
        assert!(
            SerializedFileReader::new(f).is_err(),
            "{name} should be unreadable"
        );
    }
    let committed = visible(tmp.path());
    let by_id: BTreeMap<String, FlowRecord> = recs
        .iter()
        .map(|r| (String::from(r.record_id.clone()), r.clone()))
        .collect();
    let before = check_dataset(tmp.path(), &by_id).len();

    let sink = ParquetSink::new(cfg(tmp.path())).expect("restart");
    let m = sink.metrics().snapshot();
    assert_eq!(m.tmp_files_discarded as usize, left.len());
    assert!(files(tmp.path(), ".tmp").is_empty());
    assert_eq!(visible(tmp.path()), committed, "committed files untouched");
    assert_eq!(check_dataset(tmp.path(), &by_id).len(), before);
    sink.close().expect("close");
}

/// Not a test by itself: the writer process of `kill_9_leaves_only_complete_files`, which runs
/// this test binary again with `SNF_PARQUET_CHILD_DIR` set. Writes until killed (or 60 s).
#[test]
#[ignore = "helper process of kill_9_leaves_only_complete_files"]
fn kill9_child_writer() {
    let Some(dir) = std::env::var_os("SNF_PARQUET_CHILD_DIR") else {
        return;
    };
    let mut c = cfg(Path::new(&dir));
    c.roll_bytes = 32 * 1024;
    c.row_group_rows = 256;
    let mut sink = ParquetSink::new(c).expect("sink");
    let recs = flows(5_000, 3);
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        for chunk in recs.chunks(100) {
            sink.write_flows(chunk).expect("write");
        }
    }
}

#[test]
fn kill_9_leaves_only_complete_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("current exe");
    let mut child = Command::new(exe)
        .args([
            "--exact",
            "kill9_child_writer",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SNF_PARQUET_CHILD_DIR", tmp.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn writer");
    let deadline = Instant::now() + Duration::from_secs(60);
    while visible(tmp.path()).len() < 5 {
        assert!(
            Instant::now() < deadline,
            "writer committed nothing in 60 s"
        );
        assert!(
            child.try_wait().expect("wait").is_none(),
            "writer exited early"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Mid-write: SIGKILL (Child::kill sends SIGKILL on Unix).
    child.kill().expect("kill -9");
    child.wait().expect("reap");
    let vis = visible(tmp.path());
    assert!(vis.len() >= 5);
    let mut rows = 0;
    for p in &vis {
        rows += read(p).iter().map(RecordBatch::num_rows).sum::<usize>();
    }
    assert!(rows > 0);
    let left = files(tmp.path(), ".parquet.tmp").len();
    let sink = ParquetSink::new(cfg(tmp.path())).expect("restart");
    assert_eq!(sink.metrics().snapshot().tmp_files_discarded as usize, left);
    assert!(files(tmp.path(), ".tmp").is_empty());
    for p in visible(tmp.path()) {
        read(&p);
    }
    println!(
        "kill -9: {} complete files, {rows} rows, {left} tmp files discarded",
        vis.len()
    );
}

/// Where `pip install --target` puts the Python packages the reader test uses.
fn py_cache(sub: &str) -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    home.join(".cache/supernetflow").join(sub)
}

fn python_ok(pythonpath: &str, import: &str) -> bool {
    Command::new("python3")
        .args(["-c", &format!("import {import}")])
        .env("PYTHONPATH", pythonpath)
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn external_readers_pyarrow_duckdb_spark() {
    let py = py_cache("py");
    let spark = py_cache("pyspark");
    let mut pythonpath = format!("{}:{}", py.display(), spark.display());
    if let Some(p) = std::env::var_os("PYTHONPATH") {
        pythonpath = format!("{pythonpath}:{}", p.to_string_lossy());
    }
    if !python_ok(&pythonpath, "pyarrow, duckdb") {
        let _ = Command::new("python3")
            .args(["-m", "pip", "install", "-q", "--target"])
            .arg(&py)
            .args(["pyarrow", "duckdb"])
            .status();
    }
    if !python_ok(&pythonpath, "pyarrow, duckdb") {
        println!("\n*** SKIPPED: external_readers: python3 with pyarrow and duckdb is not available (pip install --target ~/.cache/supernetflow/py pyarrow duckdb) ***\n");
        return;
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let recs = flows(3_000, 3);
    let mut c = cfg(tmp.path());
    c.roll_bytes = 96 * 1024;
    c.row_group_rows = 1_000;
    let mut sink = ParquetSink::new(c).expect("sink");
    for chunk in recs.chunks(300) {
        sink.write(chunk).expect("write");
    }
    let m = sink.close().expect("close");
    assert!(m.files_committed > 4);
    // Leave a crashed run's tmp file next to the data: readers must ignore it.
    let part = tmp.path().join("flow_records/date=2024-06-10/hour=07");
    std::fs::write(
        part.join(".part-0-dead-000001.parquet.tmp"),
        b"PAR1 garbage",
    )
    .expect("tmp");

    let first = &recs[0];
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/parquet_readers.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg(tmp.path())
        .arg(recs.len().to_string())
        .arg(first.record_id.as_str())
        .arg(first.flow_start_ms.unwrap_or_default().to_string())
        .arg(first.octets.to_string())
        .env("PYTHONPATH", &pythonpath)
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(out.status.success(), "readers failed:\n{stdout}\n{stderr}");
    if stdout.contains("SKIPPED") {
        println!(
            "\n*** {} ***\n",
            stdout
                .lines()
                .filter(|l| l.contains("SKIPPED"))
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
}

/// Record ids and row counts per table of the visible files under `dir`.
fn ids_per_table(dir: &Path) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in visible(dir) {
        let rel = p.strip_prefix(dir).expect("under dir");
        let table = rel
            .components()
            .next()
            .expect("table")
            .as_os_str()
            .to_string_lossy()
            .into_owned();
        let ids = out.entry(table).or_default();
        for b in read(&p) {
            ids.extend(strings(&b, "record_id").into_iter().map(|s| s.expect("id")));
        }
    }
    for ids in out.values_mut() {
        ids.sort();
    }
    out
}

/// The fan-out lane with `encode_threads = 2` (flow_records on a scoped thread beside the other
/// tables, or half a one-kind batch each) writes the same rows as with one thread, counts them
/// once, and leaves nothing open.
#[test]
fn two_encode_threads_write_what_one_writes() {
    use mediator::fanout::BatchSink;
    use mediator::sink::records::{AnyRecord, ParquetRecords};
    let supers = super_flows(600);
    let mut batches: Vec<Vec<AnyRecord>> = Vec::new();
    for chunk in supers.chunks(150) {
        // A mixed batch as `run` sends it: router flows and their super-flows, plus a tap
        // record; then a batch of router flows only.
        let mut b = flows_then_supers(chunk);
        b.push(AnyRecord::Tap(Box::new(schemas::sample::tap_record())));
        batches.push(b);
    }
    // Router flows only (split in halves), super-flows only (likewise), and a small batch
    // (one thread).
    let more = flows(340, 1);
    let renumbered = |fs: &[FlowRecord]| -> Vec<AnyRecord> {
        fs.iter()
            .map(|f| {
                let mut f = f.clone();
                f.set_record_id(90_000 + f.sequence_number);
                AnyRecord::Flow(Arc::new(f))
            })
            .collect()
    };
    batches.push(renumbered(&more[..300]));
    batches.push(
        supers[..300]
            .iter()
            .map(|s| AnyRecord::Super(Box::new(s.clone())))
            .collect(),
    );
    batches.push(renumbered(&more[300..]));
    let mut tables = Vec::new();
    for threads in [1, 2] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut c = cfg(tmp.path());
        c.encode_threads = threads;
        c.max_open_files = 4;
        let lane = ParquetRecords::new(ParquetSink::new(c).expect("sink"));
        let metrics = lane.metrics();
        let mut lane: Box<dyn BatchSink<AnyRecord>> = Box::new(lane);
        for b in &batches {
            assert_eq!(lane.write(b).expect("write"), 0, "{threads} threads");
        }
        assert!(metrics.snapshot().open_files > 0);
        lane.sync(Duration::from_secs(5)).expect("sync");
        let s = metrics.snapshot();
        assert_eq!(s.open_files, 0, "{threads} threads: {s:?}");
        lane.write(&batches[0]).expect("write after sync");
        lane.close(Duration::from_secs(5)).expect("close");
        let s = metrics.snapshot();
        let total: usize = batches.iter().map(Vec::len).sum::<usize>() + batches[0].len();
        assert_eq!(s.rows_committed, total as u64, "{threads} threads: {s:?}");
        assert_eq!(s.rows_written, total as u64);
        assert_eq!(s.open_files, 0);
        assert!(files(tmp.path(), ".tmp").is_empty());
        tables.push(ids_per_table(tmp.path()));
    }
    assert_eq!(
        tables[0].keys().collect::<Vec<_>>(),
        ["flow_records", "super_flows", "tap_records"]
    );
    assert_eq!(tables[0]["flow_records"].len(), 600 + 340 + 150);
    assert_eq!(tables[0]["super_flows"].len(), 600 + 300 + 150);
    assert_eq!(tables[0], tables[1]);
}

#[test]
fn encode_threads_is_checked() {
    let tmp = tempfile::tempdir().expect("tempdir");
    for bad in [0, 3] {
        let mut c = cfg(tmp.path());
        c.encode_threads = bad;
        let e = ParquetSink::new(c).expect_err("refused").to_string();
        assert!(e.contains("encode_threads"), "{e}");
    }
}

/// `kinds` selects the tables: the others are skipped, counted by the lane, and not written.
#[test]
fn kinds_select_the_tables_and_the_rest_is_counted_as_skipped() {
    use mediator::fanout::{BatchSink, Fanout};
    use mediator::sink::records::{AnyRecord, ParquetRecords};
    let supers = super_flows(100);
    let mut batch = flows_then_supers(&supers);
    batch.push(AnyRecord::Session(Box::new(schemas::sample::app_session())));
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut c = cfg(tmp.path());
    c.kinds = vec!["super_flows".into(), "app_sessions".into()];
    let lane = ParquetRecords::new(ParquetSink::new(c).expect("sink"));
    let pm = lane.metrics();
    let lanes: Vec<Box<dyn BatchSink<AnyRecord>>> = vec![Box::new(lane)];
    let mut fanout = Fanout::start(lanes, 4, Duration::from_secs(5)).expect("fanout");
    let lm = fanout.metrics()[0].1.clone();
    fanout.send(batch).expect("send");
    fanout.close().expect("close");
    let l = lm.snapshot();
    assert_eq!(
        (
            l.records_in,
            l.records_written,
            l.records_skipped,
            l.records_failed
        ),
        (201, 101, 100, 0)
    );
    assert_eq!(pm.snapshot().rows_committed, 101);
    let t = ids_per_table(tmp.path());
    assert_eq!(
        t.keys().collect::<Vec<_>>(),
        ["app_sessions", "super_flows"]
    );
    assert_eq!(t["super_flows"].len(), 100);

    for bad in [vec![], vec!["flows".to_owned()]] {
        let mut c = cfg(tmp.path());
        c.kinds = bad;
        let e = ParquetSink::new(c).expect_err("refused").to_string();
        assert!(e.contains("kinds"), "{e}");
    }
}
