//! Decode + normalise throughput, one core, over generated streams (`collector::bench_stream`).
//!
//! `cargo bench -p supernetflow-collector --bench decode` — throughput is in elements = flow
//! records, so criterion's "thrpt" line reads records/s. `decode_jsonl/baseline` adds the JSON
//! lines serialisation that `supernetflow collect --output jsonl` does.

use collector::bench_stream::{messages, Shape};
use collector::{Decoder, DecoderConfig};
use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

/// The product's allocator (as in `src/main.rs`), so the bench measures what ships.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Messages per iteration: a whole number of template periods.
const MESSAGES: usize = 1024;

fn decode_all(d: &mut Decoder, msgs: &[Vec<u8>], out: &mut Vec<schemas::FlowRecord>) -> usize {
    let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let mut n = 0;
    for (i, m) in msgs.iter().enumerate() {
        // Receive time = export time of the generated stream (no clock skew correction).
        let ms = i64::from(u32::from_be_bytes([m[4], m[5], m[6], m[7]])) * 1000;
        let ms = if m[1] == 9 {
            i64::from(u32::from_be_bytes([m[8], m[9], m[10], m[11]])) * 1000
        } else {
            ms
        };
        d.decode(ip, Some(ms + (i as i64 % 1000)), m, out);
        n += out.len();
        out.clear();
    }
    n
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode");
    g.measurement_time(Duration::from_secs(5)).sample_size(20);
    for shape in [Shape::Baseline, Shape::CiscoV9, Shape::Softflowd] {
        let (msgs, records) = messages(shape, MESSAGES);
        let mut d = Decoder::new(DecoderConfig::default());
        let mut out = Vec::with_capacity(64);
        // Warm the templates and check that every record comes out.
        let got = decode_all(&mut d, &msgs, &mut out);
        assert_eq!(
            got as u64,
            records,
            "{}: decoded {got} of {records} records",
            shape.name()
        );
        assert_eq!(d.totals.errors, 0, "{}: {:?}", shape.name(), d.totals);
        g.throughput(Throughput::Elements(records));
        g.bench_function(shape.name(), |b| {
            b.iter(|| black_box(decode_all(&mut d, &msgs, &mut out)))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("decode_jsonl");
    g.measurement_time(Duration::from_secs(5)).sample_size(20);
    let (msgs, records) = messages(Shape::Baseline, MESSAGES);
    let mut d = Decoder::new(DecoderConfig::default());
    let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let mut out = Vec::with_capacity(64);
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
    g.throughput(Throughput::Elements(records));
    g.bench_function("baseline", |b| {
        b.iter(|| {
            for m in &msgs {
                let ms = i64::from(u32::from_be_bytes([m[4], m[5], m[6], m[7]])) * 1000;
                d.decode(ip, Some(ms), m, &mut out);
                for r in &out {
                    schemas::json::write(&mut buf, r).unwrap();
                    buf.push(b'\n');
                }
                out.clear();
                black_box(buf.len());
                buf.clear();
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
