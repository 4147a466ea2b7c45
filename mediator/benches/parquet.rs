//! Parquet sink throughput on one core, and bytes per record against JSON lines.
//!
//! `cargo bench -p supernetflow-mediator --bench parquet`. Each iteration writes 100 000 flow
//! records (start times over 3 hours, so 4 partitions) through a fresh sink into a temporary
//! directory, commits them (zstd, fsync, rename) and removes the directory:
//! - `generic_write`: `ParquetSink::write` (record → `serde_json::Value` row → arrow-json → Parquet);
//! - `direct_write`: `ParquetSink::write_flows` (record → Arrow columns → Parquet);
//! - `row_form_only`: `schemas::published::row` alone, the generic path's conversion cost;
//! - `direct_arrow_only`: `flow_batch` alone;
//! - `json_lines`: `serde_json::to_writer` of the same records, for comparison.
//!
//! Group `parquet_super_flows`, the same records as super-flows (what `run` writes besides each
//! router flow): `unmatched_generic` / `unmatched_direct` (a site without a tap: every super-flow
//! unmatched), `mixed_generic` / `mixed_direct` (one in three matched with the sample's app,
//! stats and QoE), through `ParquetSink::write` and `ParquetSink::write_super_refs`.
//!
//! Before the timings it prints the bytes per record of the Parquet files and of JSON lines.
//!
//! For instruction counts (callgrind, `perf stat`): `SNF_PARQUET_ONCE=<case>` runs one case once
//! over the 100 000 records and exits, with `<case>` one of `flows_direct`, `flows_generic`,
//! `supers_direct`, `supers_generic`, `mixed_direct`, `mixed_generic`.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use criterion::{criterion_group, Criterion, Throughput};
use mediator::sink::parquet::{flow_batch, ParquetSink, ParquetSinkConfig};
use schemas::{ExtValue, Extension, FlowRecord, RecordKind, SuperFlow};

/// The product's allocator (as in `src/main.rs`), so the bench measures what ships.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const N: usize = 100_000;
const CHUNK: usize = 8_192;
const T0: i64 = 1_718_000_000_000;

/// Flow records with realistic variety: addresses from a few subnets, ephemeral ports, counters
/// spread over orders of magnitude; deterministic (xorshift).
fn flows(n: usize) -> Vec<FlowRecord> {
    let base = schemas::sample::flow_record();
    let mut s: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    (0..n)
        .map(|i| {
            let mut r = base.clone();
            let t = T0 + (3 * 3_600_000 * i as i64) / n as i64;
            let x = rnd();
            r.sequence_number = 1_000 + (i / 30) as u32;
            r.export_time_ms = t + 30_000;
            r.received_time_ms = t + 30_004;
            r.flow_start_ms = Some(t - (x % 60_000) as i64);
            r.flow_end_ms = Some(t);
            r.src_addr = Some(IpAddr::V4(Ipv4Addr::new(
                203,
                0,
                (x >> 8) as u8 % 4,
                (x >> 16) as u8,
            )));
            r.dst_addr = Some(IpAddr::V4(Ipv4Addr::new(
                10,
                1,
                (x >> 24) as u8 % 16,
                (x >> 32) as u8,
            )));
            r.src_port = Some(if x % 3 == 0 {
                443
            } else {
                1024 + (x >> 40) as u16 % 60_000
            });
            r.dst_port = Some(1024 + (x >> 20) as u16 % 60_000);
            r.protocol = Some(if x % 5 == 0 { 17 } else { 6 });
            r.packets = 1 + (x >> 12) % 5_000;
            r.octets = r.packets * (40 + (x >> 4) % 1_460);
            r.octets_exported = Some(r.octets / 1_000);
            r.packets_exported = Some(r.packets / 1_000);
            r.src_as = Some((x >> 44) as u32 % 65_000);
            r.input_interface = Some((x % 48) as u32);
            r.output_interface = Some((x >> 6) as u32 % 48);
            r.tcp_flags = Some((x >> 50) as u16 & 0x3f);
            r.extensions = vec![Extension {
                pen: 29_305,
                id: 1,
                name: Some("reverseOctetDeltaCount".into()),
                value: ExtValue::Unsigned((x >> 30) % 1_000_000),
            }];
            r.set_flow_key();
            r.set_record_id((i % 30) as u32);
            r
        })
        .collect()
}

/// The records as super-flows: all unmatched, or one in three matched with the sample's app,
/// stats and QoE (`mixed`).
fn supers(recs: &[FlowRecord], mixed: bool) -> Vec<SuperFlow> {
    let base = schemas::sample::super_flow();
    recs.iter()
        .enumerate()
        .map(|(i, f)| {
            if mixed && i % 3 == 0 {
                let mut s = base.clone();
                s.record_id = f.record_id.to_string();
                s.flow = f.clone().into();
                s
            } else {
                SuperFlow::unmatched(f.clone())
            }
        })
        .collect()
}

fn sink(dir: &std::path::Path) -> ParquetSink {
    ParquetSink::new(ParquetSinkConfig {
        dir: dir.to_path_buf(),
        ..ParquetSinkConfig::default()
    })
    .expect("sink")
}

fn run(recs: &[FlowRecord], direct: bool) -> u64 {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut sink = sink(tmp.path());
    for c in recs.chunks(CHUNK) {
        if direct {
            sink.write_flows(c).expect("write");
        } else {
            sink.write(c).expect("write");
        }
    }
    sink.close().expect("close").bytes_committed
}

fn run_supers(recs: &[SuperFlow], direct: bool) -> u64 {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut sink = sink(tmp.path());
    for c in recs.chunks(CHUNK) {
        if direct {
            let refs: Vec<&SuperFlow> = c.iter().collect();
            sink.write_super_refs(&refs).expect("write");
        } else {
            sink.write(c).expect("write");
        }
    }
    sink.close().expect("close").bytes_committed
}

/// `SNF_PARQUET_ONCE=<case>`: one run of one case, for instruction counts.
fn once(case: &str) {
    let recs = flows(N);
    let bytes = match case {
        "flows_direct" => run(&recs, true),
        "flows_generic" => run(&recs, false),
        "supers_direct" => run_supers(&supers(&recs, false), true),
        "supers_generic" => run_supers(&supers(&recs, false), false),
        "mixed_direct" => run_supers(&supers(&recs, true), true),
        "mixed_generic" => run_supers(&supers(&recs, true), false),
        other => panic!("SNF_PARQUET_ONCE: unknown case {other}"),
    };
    println!(
        "{case}: {N} records, {bytes} bytes, {:.1} bytes/record",
        bytes as f64 / N as f64
    );
}

fn bench(c: &mut Criterion) {
    let recs = flows(N);
    let parquet_bytes = run(&recs, true);
    let mut json = Vec::new();
    for r in &recs {
        serde_json::to_writer(&mut json, r).expect("json");
        json.push(b'\n');
    }
    println!(
        "\nbytes per record: parquet {:.1}, JSON lines {:.1}, ratio {:.3} ({} records)\n",
        parquet_bytes as f64 / N as f64,
        json.len() as f64 / N as f64,
        parquet_bytes as f64 / json.len() as f64,
        N
    );

    let mut g = c.benchmark_group("parquet_flow_records");
    g.sample_size(10);
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("generic_write", |b| b.iter(|| black_box(run(&recs, false))));
    g.bench_function("direct_write", |b| b.iter(|| black_box(run(&recs, true))));
    g.bench_function("row_form_only", |b| {
        b.iter(|| {
            for r in &recs {
                black_box(schemas::published::row(r).expect("row"));
            }
        })
    });
    let schema = Arc::new(schemas::published::arrow_schema(RecordKind::Flow));
    g.bench_function("direct_arrow_only", |b| {
        b.iter(|| {
            for c in recs.chunks(CHUNK) {
                let refs: Vec<&FlowRecord> = c.iter().collect();
                black_box(flow_batch(&schema, &refs).expect("batch"));
            }
        })
    });
    g.bench_function("json_lines", |b| {
        let mut out = Vec::with_capacity(json.len());
        b.iter(|| {
            out.clear();
            for r in &recs {
                serde_json::to_writer(&mut out, r).expect("json");
                out.push(b'\n');
            }
            black_box(out.len())
        })
    });
    g.finish();

    let unmatched = supers(&recs, false);
    let mixed = supers(&recs, true);
    let mut g = c.benchmark_group("parquet_super_flows");
    g.sample_size(10);
    g.throughput(Throughput::Elements(N as u64));
    for (name, recs, direct) in [
        ("unmatched_generic", &unmatched, false),
        ("unmatched_direct", &unmatched, true),
        ("mixed_generic", &mixed, false),
        ("mixed_direct", &mixed, true),
    ] {
        g.bench_function(name, |b| b.iter(|| black_box(run_supers(recs, direct))));
    }
    g.finish();
}

criterion_group!(benches, bench);

fn main() {
    if let Ok(case) = std::env::var("SNF_PARQUET_ONCE") {
        once(&case);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
