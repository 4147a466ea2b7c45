//! Offline pipeline throughput on the application captures (`testdata/apps/**`): every frame is
//! loaded into memory first, then replayed through (a) the accounting twin alone and (b) the whole
//! pipeline (accounting, DPI, classification, records). Throughput is in bytes of replayed traffic
//! (the frames' wire lengths), so criterion's figure ×8 is bit/s per core (one thread).
//!
//! `SNF_TESTDATA` points at the test data (default `../shared/testdata` beside the workspace).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use enrich_probe::capture::{read_capture, CaptureCounters};
use enrich_probe::classify::signatures::Signatures;
use enrich_probe::flow::{FlowTable, LinkType, SendConfig};
use enrich_probe::{Pipeline, ProbeConfig};
use std::path::{Path, PathBuf};

/// The product's allocator (as in `src/main.rs`), so the bench measures what ships.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Frame {
    ts_ns: u64,
    link: LinkType,
    data: Vec<u8>,
    wire: u64,
}

fn captures(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            captures(&p, out);
        } else if p.extension().is_some_and(|x| x == "pcap" || x == "pcapng") {
            out.push(p);
        }
    }
}

fn load() -> Vec<Frame> {
    let dir = std::env::var_os("SNF_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata"))
        .join("apps");
    let mut files = Vec::new();
    captures(&dir, &mut files);
    files.sort();
    let mut frames = Vec::new();
    let mut c = CaptureCounters::default();
    for f in &files {
        let r = read_capture(f, &mut c, |fr| {
            frames.push(Frame {
                ts_ns: fr.ts_ns,
                link: fr.link,
                data: fr.data.to_vec(),
                wire: u64::from(fr.orig_len.max(fr.data.len() as u32)),
            })
        });
        if let Err(e) = r {
            eprintln!("skipping {}: {e}", f.display());
        }
    }
    frames
}

fn bench(c: &mut Criterion) {
    let frames = load();
    if frames.is_empty() {
        eprintln!("SKIPPED offline bench: no captures under SNF_TESTDATA/apps");
        return;
    }
    let bytes: u64 = frames.iter().map(|f| f.wire).sum();
    eprintln!("{} frames, {} bytes of traffic", frames.len(), bytes);
    let sigs = match Signatures::builtin() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("signatures: {e}");
            return;
        }
    };
    let mut g = c.benchmark_group("tap_offline");
    g.throughput(Throughput::Bytes(bytes));
    g.sample_size(20);
    g.bench_function("accounting_only", |b| {
        b.iter(|| {
            let mut t: FlowTable<()> = FlowTable::new(262_144, SendConfig::default());
            for f in &frames {
                t.account(f.ts_ns, &f.data, f.link);
            }
            t.counters.accounted
        })
    });
    for (name, snap) in [
        ("pipeline_snap256", 256),
        ("pipeline_whole_packets", 65_535),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let cfg = ProbeConfig {
                    send: SendConfig {
                        snap_len: snap,
                        ..SendConfig::default()
                    },
                    ..ProbeConfig::default()
                };
                let mut p = Pipeline::new(cfg, sigs.clone());
                let mut out = Vec::new();
                for f in &frames {
                    p.packet(f.ts_ns, &f.data, f.link, &mut out);
                    out.clear();
                }
                p.finish(&mut out);
                out.len()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
