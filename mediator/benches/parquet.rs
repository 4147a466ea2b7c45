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
//! Before the timings it prints the bytes per record of the Parquet files and of JSON lines.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mediator::sink::parquet::{flow_batch, ParquetSink, ParquetSinkConfig};
use schemas::{ExtValue, Extension, FlowRecord, RecordKind};

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

fn run(recs: &[FlowRecord], direct: bool) -> u64 {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut sink = ParquetSink::new(ParquetSinkConfig {
        dir: tmp.path().to_path_buf(),
        ..ParquetSinkConfig::default()
    })
    .expect("sink");
    for c in recs.chunks(CHUNK) {
        if direct {
            sink.write_flows(c).expect("write");
        } else {
            sink.write(c).expect("write");
        }
    }
    sink.close().expect("close").bytes_committed
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
}

criterion_group!(benches, bench);
criterion_main!(benches);
