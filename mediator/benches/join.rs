//! The join: throughput on one core, and bytes of state per pending flow.
//!
//! `cargo bench -p supernetflow-mediator --bench join`.
//!
//! Throughput (`join/*`): each iteration feeds 20 000 flows' records — per flow a tap `start`, a
//! tap `update` 30 s later, a router record at the 60 s active timeout, the tap's `end` and the
//! router's last record (5 records, 2 super-flows) — in time order over 20 000 flows staggered
//! across 100 s, with a `tick` every simulated second. Router records are the sample IPFIX record
//! (extensions included) with varied endpoints; tap records the sample Netflix record with their
//! application block drawn from 2 000 distinct ones and a QoE block on 30 % of flows. Records are
//! built before the timer starts; building and dropping the super-flows is timed.
//! - `cold`: a fresh join per iteration;
//! - `warm_1m`: the same on top of 1 M other tap flows held in state (cache misses as in a busy
//!   mediator).
//! - `hits_1m`: 100 000 router records for random flows among those 1 M, each settled on arrival
//!   (every lookup a cold bucket and entry: the router side of a busy site).
//!
//! `feed` calls [`Joiner::prefetch`] as `run` does; `JOIN_BENCH_NO_PREFETCH=1` leaves it out.
//! `JOIN_BENCH_AB=1` skips criterion and runs `cold`, `warm_1m` and `hits_1m` with and without it,
//! interleaved in one process (a shared machine's drift then hits both alike), and prints the
//! medians and the median on/off ratio of 15 rounds.
//!
//! State size (printed before the timings): tap flows pending, measured with a counting allocator
//! (bytes allocated and not freed while the state was built) and compared with
//! `Joiner::state_bytes`; also router records pending (router first, tap not yet seen).
//! `JOIN_BENCH_PENDING=10000000` sets the number of pending tap flows (default 1 000 000);
//! `JOIN_BENCH_MEMORY_ONLY=1` skips the timings.
//!
//! Instruction counts (load-independent): `JOIN_BENCH_ONCE=1` feeds one `cold` iteration and
//! exits, with `feed` not inlined, so that
//! `valgrind --tool=callgrind --toggle-collect='join::feed*' <bench binary> --bench` counts the
//! join's instructions for exactly `5 × 20 000` records (the input's drop included, as in the
//! timings). `JOIN_BENCH_ONCE=warm` (or `=hits`) does the same for one `warm_1m` (`hits_1m`)
//! iteration after filling the 1 M resident flows; add `--cache-sim=yes` for the simulated cache
//! misses.

use std::alloc::{GlobalAlloc, Layout};
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use mediator::join::{Ahead, JoinConfig, Joiner};
use mimalloc::MiMalloc;
use schemas::qoe::{ConferencingQoe, GamingQoe, Qoe, VideoQoe};
use schemas::{AppPlatform, AppType, FlowRecord, RecordState, SuperFlow, TapKey, TapRecord};

/// Counts live heap bytes while `ON` (off during the timings, so they pay one relaxed load), over
/// the product's allocator (mimalloc, as in `src/main.rs`).
struct Counting;
static ON: AtomicBool = AtomicBool::new(false);
static LIVE: AtomicI64 = AtomicI64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if ON.load(Relaxed) {
            LIVE.fetch_add(l.size() as i64, Relaxed);
        }
        unsafe { MiMalloc.alloc(l) }
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        if ON.load(Relaxed) {
            LIVE.fetch_add(l.size() as i64, Relaxed);
        }
        unsafe { MiMalloc.alloc_zeroed(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        if ON.load(Relaxed) {
            LIVE.fetch_sub(l.size() as i64, Relaxed);
        }
        unsafe { MiMalloc.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        if ON.load(Relaxed) {
            LIVE.fetch_add(new as i64 - l.size() as i64, Relaxed);
        }
        unsafe { MiMalloc.realloc(p, l, new) }
    }
}

#[global_allocator]
static A: Counting = Counting;

/// Whether `feed` calls [`Joiner::prefetch`] (what `run` does); off with `JOIN_BENCH_NO_PREFETCH`,
/// toggled by the `JOIN_BENCH_AB` comparison.
static PREFETCH: AtomicBool = AtomicBool::new(true);

const T0: i64 = 1_718_000_000_000;
const FLOWS: u32 = 20_000;
const PLATFORMS: u32 = 2_000;

struct Gen {
    flow: FlowRecord,
    tap: TapRecord,
    platforms: Vec<AppPlatform>,
    gaming: Option<GamingQoe>,
    conferencing: Option<ConferencingQoe>,
}

impl Gen {
    fn new() -> Self {
        let tap = schemas::sample::tap_record();
        let platforms = (0..PLATFORMS)
            .map(|p| {
                let mut a = tap.app.clone();
                a.sni = Some(format!("ipv4-c{p:03}-fra001-ix.1.oca.nflxvideo.net"));
                a.dns_name = a.sni.clone();
                a.client_os = Some(format!("Android {}", 10 + p % 5));
                a.app_type = match p % 10 {
                    0..=3 => AppType::VideoStreaming,
                    4 => AppType::Gaming,
                    5 => AppType::Conferencing,
                    _ => AppType::Web,
                };
                a
            })
            .collect();
        let session = schemas::sample::app_session();
        Self {
            flow: schemas::sample::flow_record(),
            tap,
            platforms,
            gaming: schemas::sample::super_flow().qoe.and_then(|q| q.gaming),
            conferencing: session
                .qoe_series
                .first()
                .and_then(|s| s.qoe.conferencing.clone()),
        }
    }

    /// Endpoints of flow `id`: client 10.x.y.z, server 203.0.113.0/24.
    fn endpoints(id: u64) -> ((IpAddr, u16), (IpAddr, u16)) {
        let c = IpAddr::V4(Ipv4Addr::new(
            10,
            (id >> 24) as u8,
            (id >> 16) as u8,
            (id >> 8) as u8,
        ));
        let s = IpAddr::V4(Ipv4Addr::new(203, 0, 113, id as u8));
        ((c, 40_000 + (id % 20_000) as u16), (s, 443))
    }

    fn tap(&self, id: u64, seq: u32, first: i64, last: i64, state: RecordState) -> TapRecord {
        let mut t = self.tap.clone();
        let (c, s) = Self::endpoints(id);
        t.key = TapKey {
            flow_key: String::new(),
            protocol: 6,
            client_addr: c.0,
            client_port: c.1,
            server_addr: s.0,
            server_port: s.1,
            vlan: None,
        };
        t.key.set_flow_key();
        t.stats.digest = t.key.flow_key.clone();
        t.seq = seq;
        t.state = state;
        t.first_seen_ms = first;
        t.last_seen_ms = last;
        let secs = ((last - first) / 1000).max(1) as u64;
        t.stats.other_packets = 900 * secs;
        t.stats.local_packets = 300 * secs;
        t.stats.other_bytes = 1_300_000 * secs;
        t.stats.local_bytes = 20_000 * secs;
        t.stats.total_packets = 1200 * secs;
        t.stats.total_bytes = 1_320_000 * secs;
        t.app = self.platforms[(id % u64::from(PLATFORMS)) as usize].clone();
        t.qoe = Qoe::default();
        let (ws, we) = (last - 30_000, last);
        match id % 10 {
            0..=1 => {
                t.qoe.video = self.tap.qoe.video.clone().map(|v| VideoQoe {
                    window_start_ms: ws,
                    window_end_ms: we,
                    ..v
                })
            }
            2 => {
                t.qoe.gaming = self.gaming.clone().map(|q| GamingQoe {
                    window_start_ms: ws,
                    window_end_ms: we,
                    ..q
                })
            }
            3 => {
                t.qoe.conferencing = self.conferencing.clone().map(|q| ConferencingQoe {
                    window_start_ms: ws,
                    window_end_ms: we,
                    ..q
                })
            }
            _ => {}
        }
        t.set_record_id();
        t
    }

    fn router(&self, id: u64, piece: u32, start: i64, end: i64) -> FlowRecord {
        let mut r = self.flow.clone();
        let (c, s) = Self::endpoints(id);
        r.src_addr = Some(s.0);
        r.src_port = Some(s.1);
        r.dst_addr = Some(c.0);
        r.dst_port = Some(c.1);
        r.src_vlan = None;
        r.dst_vlan = None;
        r.flow_start_ms = Some(start);
        r.flow_end_ms = Some(end);
        let secs = ((end - start) / 1000).max(1) as u64;
        r.packets_exported = Some(secs * 9 / 10);
        r.packets = secs * 900;
        r.octets_exported = Some(secs * 1300);
        r.octets = secs * 1_300_000;
        r.export_time_ms = end + 1_000;
        r.received_time_ms = end + 1_004;
        r.sequence_number = id as u32;
        r.set_flow_key();
        r.set_record_id(piece);
        r
    }
}

// Unboxed on purpose: a box per tap record would add a free per record to the timed loop.
#[allow(clippy::large_enum_variant)]
enum Ev {
    Router(FlowRecord),
    Tap(TapRecord),
    Tick,
}

/// The records of `FLOWS` flows numbered from `base`, starting over 100 s from `t0`, in time order.
fn events(g: &Gen, base: u64, t0: i64) -> Vec<(i64, Ev)> {
    let mut ev = Vec::with_capacity(FLOWS as usize * 5 + 200);
    for i in 0..u64::from(FLOWS) {
        let id = base + i;
        let s = t0 + (i as i64 * 100_000) / i64::from(FLOWS);
        ev.push((
            s + 500,
            Ev::Tap(g.tap(id, 0, s, s + 400, RecordState::Start)),
        ));
        ev.push((
            s + 30_000,
            Ev::Tap(g.tap(id, 1, s, s + 30_000, RecordState::Update)),
        ));
        ev.push((s + 61_000, Ev::Router(g.router(id, 0, s, s + 60_000))));
        ev.push((
            s + 80_500,
            Ev::Tap(g.tap(id, 2, s, s + 80_000, RecordState::End)),
        ));
        ev.push((
            s + 96_000,
            Ev::Router(g.router(id, 1, s + 60_000, s + 80_000)),
        ));
    }
    for sec in 0..200 {
        ev.push((t0 + sec * 1000, Ev::Tick));
    }
    ev.sort_by_key(|e| e.0);
    ev
}

/// The record at `i` of what is left, for [`Joiner::prefetch`].
fn ahead(rest: &[(i64, Ev)], i: usize) -> Option<Ahead<'_>> {
    match rest.get(i).map(|e| &e.1) {
        Some(Ev::Router(f)) => Some(Ahead::Router(f)),
        Some(Ev::Tap(t)) => Some(Ahead::Tap(t)),
        _ => None,
    }
}

#[inline(never)]
fn feed(j: &mut Joiner, ev: Vec<(i64, Ev)>, out: &mut Vec<SuperFlow>) -> usize {
    let prefetch = PREFETCH.load(Relaxed);
    let mut n = 0;
    let mut ev = ev.into_iter();
    if prefetch {
        for i in 0..Joiner::PREFETCH_AHEAD {
            j.prefetch(ahead(ev.as_slice(), i));
        }
    }
    while let Some((t, e)) = ev.next() {
        if prefetch {
            j.prefetch(ahead(ev.as_slice(), Joiner::PREFETCH_AHEAD - 1));
        }
        match e {
            Ev::Router(f) => j.router(f, t, out),
            Ev::Tap(r) => j.tap(&r, t, out),
            Ev::Tick => j.tick(t, out),
        }
        n += out.len();
        out.clear();
    }
    n
}

fn cfg() -> JoinConfig {
    JoinConfig {
        max_entries: 20_000_000,
        max_pending_routers: 2_000_000,
        ..JoinConfig::default()
    }
}

fn throughput(c: &mut Criterion) {
    if std::env::var_os("JOIN_BENCH_MEMORY_ONLY").is_some() {
        return;
    }
    let g = Gen::new();
    if std::env::var_os("JOIN_BENCH_NO_PREFETCH").is_some() {
        PREFETCH.store(false, Relaxed);
    }
    if let Some(case) = std::env::var_os("JOIN_BENCH_ONCE") {
        let mut out = Vec::with_capacity(64);
        let name = if case == "warm" {
            warm_batch(&g, &mut resident(&g, &mut out), 1, &mut out);
            "warm_1m"
        } else if case == "hits" {
            hits_batch(
                &g,
                &mut resident(&g, &mut out),
                &mut { HITS_SEED },
                &mut out,
            );
            "hits_1m"
        } else {
            cold_batch(&g, &mut out);
            "cold"
        };
        println!("join once ({name}): {RECORDS} records in");
        return;
    }
    if std::env::var_os("JOIN_BENCH_AB").is_some() {
        return prefetch_ab(&g);
    }
    let mut group = c.benchmark_group("join");
    group.throughput(Throughput::Elements(RECORDS));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(20));
    let mut out = Vec::with_capacity(64);
    group.bench_function("cold", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| cold_batch(&g, &mut out)).sum())
    });
    let mut j = resident(&g, &mut out);
    let mut batch = 0u64;
    group.bench_function("warm_1m", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| {
                    batch += 1;
                    warm_batch(&g, &mut j, batch, &mut out)
                })
                .sum()
        })
    });
    let mut seed = HITS_SEED;
    group.bench_function("hits_1m", |b| {
        b.iter_custom(|iters| {
            (0..iters)
                .map(|_| hits_batch(&g, &mut j, &mut seed, &mut out))
                .sum()
        })
    });
    group.finish();
}

/// Records fed per iteration of every case.
const RECORDS: u64 = FLOWS as u64 * 5;

/// One `cold` iteration: a fresh join fed the 20 000 flows and flushed (timed; the input is built
/// before).
fn cold_batch(g: &Gen, out: &mut Vec<SuperFlow>) -> Duration {
    let ev = events(g, 0, T0);
    let mut j = Joiner::new(cfg());
    let t = Instant::now();
    let n = feed(&mut j, ev, out);
    j.flush_all(out);
    let took = t.elapsed();
    assert_eq!(n + out.len(), 2 * FLOWS as usize);
    black_box(j.metrics());
    out.clear();
    took
}

/// The join `warm_1m` and `hits_1m` run on: 1 M long-lived tap flows (ids from `1 << 40`).
fn resident(g: &Gen, out: &mut Vec<SuperFlow>) -> Joiner {
    let mut j = Joiner::new(JoinConfig {
        tap_ttl_ms: 86_400_000,
        ..cfg()
    });
    fill_taps(g, &mut j, 1_000_000, 1 << 40, out);
    j
}

/// One `warm_1m` iteration: batch `batch`'s flows fed on top of the resident state (timed), then
/// forgotten (untimed) so that the state stays at 1 M.
fn warm_batch(g: &Gen, j: &mut Joiner, batch: u64, out: &mut Vec<SuperFlow>) -> Duration {
    let base = batch * u64::from(FLOWS);
    let t0 = T0 + batch as i64 * 200_000;
    let ev = events(g, base, t0);
    let t = Instant::now();
    let n = feed(j, ev, out);
    let took = t.elapsed();
    assert_eq!(n, 2 * FLOWS as usize, "all settled by the tap's end report");
    // Forget the batch's tap flows: their keys hash from ids in [base, base + FLOWS).
    let keys: std::collections::HashSet<u64> = (base..base + u64::from(FLOWS))
        .map(|id| {
            let (c, s) = Gen::endpoints(id);
            schemas::FlowKey::new(6, c, s, 0).hash64()
        })
        .collect();
    j.flush_where(|k| keys.contains(&k), out);
    out.clear();
    took
}

/// Seed of `hits_1m`'s random flow ids.
const HITS_SEED: u64 = 0x9e37_79b9_7f4a_7c15;

/// One `hits_1m` iteration: router records for random flows among [`resident`]'s, in an order
/// unrelated to memory, so every lookup lands on a cold bucket and entry (a busy site's router
/// side); each settles on arrival (timed; the input is built before).
fn hits_batch(g: &Gen, j: &mut Joiner, seed: &mut u64, out: &mut Vec<SuperFlow>) -> Duration {
    let now = j.now_ms();
    let ev: Vec<(i64, Ev)> = (0..RECORDS)
        .map(|_| {
            *seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let id = (1 << 40) + (*seed >> 33) % 1_000_000;
            (now, Ev::Router(g.router(id, 0, T0 - 30_000, T0 - 1_000)))
        })
        .collect();
    let t = Instant::now();
    let n = feed(j, ev, out);
    let took = t.elapsed();
    assert_eq!(
        n, RECORDS as usize,
        "every router record settled on arrival"
    );
    out.clear();
    took
}

/// `JOIN_BENCH_AB=1`: `cold`, `warm_1m` and `hits_1m` with and without [`Joiner::prefetch`], interleaved
/// in one process (the order swapped every round), so that a shared machine's drift hits both
/// alike; prints each side's median and the median of the rounds' ratios.
fn prefetch_ab(g: &Gen) {
    const ROUNDS: usize = 15;
    let mut out = Vec::with_capacity(64);
    let run = |name: &str,
               out: &mut Vec<SuperFlow>,
               one: &mut dyn FnMut(&mut Vec<SuperFlow>) -> Duration| {
        let (mut on, mut off, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
        for r in 0..ROUNDS {
            let mut t = [Duration::ZERO; 2];
            for k in [r % 2, 1 - r % 2] {
                PREFETCH.store(k == 1, Relaxed);
                t[k] = one(out);
            }
            off.push(RECORDS as f64 / t[0].as_secs_f64());
            on.push(RECORDS as f64 / t[1].as_secs_f64());
            ratio.push(t[0].as_secs_f64() / t[1].as_secs_f64());
        }
        let med = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        println!(
            "{name}: prefetch off {:.0} k records/s, on {:.0} k; on/off median of {ROUNDS} rounds {:.3}",
            med(&mut off) / 1e3,
            med(&mut on) / 1e3,
            med(&mut ratio)
        );
    };
    run("cold", &mut out, &mut |out| cold_batch(g, out));
    let mut j = resident(g, &mut out);
    let mut batch = 0u64;
    run("warm_1m", &mut out, &mut |out| {
        batch += 1;
        warm_batch(g, &mut j, batch, out)
    });
    let mut seed = HITS_SEED;
    run("hits_1m", &mut out, &mut |out| {
        hits_batch(g, &mut j, &mut seed, out)
    });
    PREFETCH.store(true, Relaxed);
}

/// Adds `n` tap flows (ids from `base`), one `update` report each, in the join's state.
fn fill_taps(g: &Gen, j: &mut Joiner, n: u64, base: u64, out: &mut Vec<SuperFlow>) {
    for i in 0..n {
        let t = g.tap(base + i, 1, T0 - 30_000, T0, RecordState::Update);
        j.tap(&t, T0, out);
    }
}

fn memory(_: &mut Criterion) {
    if std::env::var_os("JOIN_BENCH_ONCE").is_some() {
        return;
    }
    let n: u64 = std::env::var("JOIN_BENCH_PENDING")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let g = Gen::new();
    let mut out = Vec::new();
    // Tap flows pending (the steady state: summaries waiting for router records).
    ON.store(true, Relaxed);
    let before = LIVE.load(Relaxed);
    let mut j = Joiner::new(cfg());
    let t = Instant::now();
    fill_taps(&g, &mut j, n, 0, &mut out);
    let took = t.elapsed();
    let live = LIVE.load(Relaxed) - before;
    let m = j.metrics();
    println!(
        "join state, {n} pending tap flows: allocator {:.1} B/flow, state_bytes {:.1} B/flow \
         (interned platforms {}, {:.1} MiB total; filled at {:.2} M tap records/s)",
        live as f64 / n as f64,
        m.state_bytes as f64 / n as f64,
        m.interned_platforms,
        live as f64 / (1 << 20) as f64,
        n as f64 / took.as_secs_f64() / 1e6,
    );
    drop(j);
    // Router records pending (router first, no tap record yet).
    let k = (n / 10).max(1);
    let before = LIVE.load(Relaxed);
    let mut j = Joiner::new(cfg());
    for i in 0..k {
        j.router(g.router(i, 0, T0 - 60_000, T0), T0, &mut out);
    }
    let live = LIVE.load(Relaxed) - before;
    let m = j.metrics();
    println!(
        "join state, {k} pending router records: allocator {:.1} B/record, state_bytes {:.1} B/record",
        live as f64 / k as f64,
        m.state_bytes as f64 / k as f64,
    );
    j.flush_all(&mut out);
    assert_eq!(out.len() as u64, k);
    drop(j);
    out.clear();
    ON.store(false, Relaxed);
}

criterion_group!(benches, memory, throughput);
criterion_main!(benches);
