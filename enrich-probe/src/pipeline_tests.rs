//! The pipeline's reporting: when flows end, expire and get `flow_stats`, on crafted frames.

use super::*;
use etherparse::PacketBuilder;
use schemas::RecordState;

const S: u64 = 1_000_000_000;

fn tcp(to_server: bool, flags: u8, payload: &[u8]) -> Vec<u8> {
    let (s, d, sp, dp) = if to_server {
        ([192, 168, 1, 10], [10, 0, 0, 1], 50000, 443)
    } else {
        ([10, 0, 0, 1], [192, 168, 1, 10], 443, 50000)
    };
    let mut b = PacketBuilder::ethernet2([1; 6], [2; 6])
        .ipv4(s, d, 64)
        .tcp(sp, dp, 1, 1000);
    if flags & 0x02 != 0 {
        b = b.syn();
    }
    if flags & 0x10 != 0 {
        b = b.ack(1);
    }
    if flags & 0x04 != 0 {
        b = b.rst();
    }
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

fn udp(sport: u16) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2([1; 6], [2; 6])
        .ipv4([192, 168, 1, 10], [10, 0, 0, 2], 64)
        .udp(sport, 9000)
        .write(&mut v, &[0; 100])
        .unwrap();
    v
}

fn pipeline() -> Pipeline {
    Pipeline::new(ProbeConfig::default(), Signatures::builtin().unwrap())
}

fn taps(out: &[Output]) -> Vec<&TapRecord> {
    out.iter()
        .filter_map(|o| match o {
            Output::Tap(r) => Some(r.as_ref()),
            _ => None,
        })
        .collect()
}

#[test]
fn reset_flow_is_reported_after_the_linger() {
    let mut p = pipeline();
    let mut out = Vec::new();
    let e = LinkType::Ethernet;
    p.packet(S, &tcp(true, 0x02, &[]), e, &mut out);
    p.packet(S + 20_000_000, &tcp(false, 0x12, &[]), e, &mut out);
    p.packet(S + 30_000_000, &tcp(true, 0x04, &[]), e, &mut out);
    // Quiet for 3 s: still held.
    p.packet(4 * S, &udp(1), e, &mut out);
    assert!(taps(&out).is_empty());
    p.packet(7 * S, &udp(1), e, &mut out);
    let t = taps(&out);
    assert_eq!(t.len(), 1);
    let r = t[0];
    assert_eq!(r.state, RecordState::End);
    assert_eq!(r.key.client_port, 50000);
    assert_eq!(r.key.server_port, 443);
    assert_eq!(
        r.key.flow_key,
        format!("{:016x}", r.key.canonical().hash64())
    );
    assert_eq!(r.record_id.len(), 16);
    assert_eq!((r.stats.local_packets, r.stats.other_packets), (2, 1));
    assert_eq!(r.stats.tcp_resets, 1);
    assert_eq!(r.stats.total_bytes, 120);
    assert_eq!(r.stats.rtt_avg_ms, Some(20.0));
    assert_eq!(r.first_seen_ms, 1000);
    assert_eq!(r.last_seen_ms, 1030);
    assert_eq!(p.counters.expired_closed, 1);
}

#[test]
fn idle_flows_expire_and_the_rest_is_flushed_in_order() {
    let mut p = pipeline();
    let mut out = Vec::new();
    p.packet(S, &udp(1), LinkType::Ethernet, &mut out);
    p.packet(2 * S, &udp(2), LinkType::Ethernet, &mut out);
    p.packet(200 * S, &udp(3), LinkType::Ethernet, &mut out);
    assert_eq!(taps(&out).len(), 2);
    assert_eq!(p.counters.expired_idle, 2);
    out.clear();
    p.packet(201 * S, &udp(4), LinkType::Ethernet, &mut out);
    p.finish(&mut out);
    let t = taps(&out);
    assert_eq!(
        t.iter().map(|r| r.key.client_port).collect::<Vec<_>>(),
        vec![3, 4]
    );
    assert_eq!(p.counters.flushed, 2);
    assert_eq!(p.counters.tap_records, 4);
}

#[test]
fn flow_stats_every_interval_of_capture_time() {
    let mut p = pipeline();
    let mut out = Vec::new();
    for s in 0..=40 {
        p.packet(100 * S + s * S, &udp(7), LinkType::Ethernet, &mut out);
    }
    let stats: Vec<&FlowStatsEvent> = out
        .iter()
        .filter_map(|o| match o {
            Output::FlowStats(s) => Some(s.as_ref()),
            _ => None,
        })
        .collect();
    // Due at 115 s, 130 s (and 145 s is past the end); written when the first packet at or
    // after that time arrives, before it is counted.
    assert_eq!(stats.len(), 2);
    assert_eq!(stats[0].kind, "flow_stats");
    assert_eq!(stats[0].timestamp_ms, 115_000);
    assert_eq!(stats[0].flow.local_packets, 15);
    // 128-byte datagrams, one a second.
    assert!(
        (stats[1].flow.local_rate - 128.0).abs() < 1.0,
        "{}",
        stats[1].flow.local_rate
    );
    assert_eq!(p.counters.flow_stats, 2);
}

#[test]
fn time_going_back_expires_nothing() {
    let mut p = pipeline();
    let mut out = Vec::new();
    p.packet(1000 * S, &udp(1), LinkType::Ethernet, &mut out);
    p.packet(10 * S, &udp(2), LinkType::Ethernet, &mut out);
    p.packet(1001 * S, &udp(1), LinkType::Ethernet, &mut out);
    // Flow 2's packet is 990 s older than the clock, but it arrived just now: not idle.
    assert!(taps(&out).is_empty());
    assert_eq!(p.counters.time_went_back, 1);
    p.packet(1100 * S, &udp(1), LinkType::Ethernet, &mut out);
    assert!(taps(&out).is_empty());
    p.packet(1200 * S, &udp(1), LinkType::Ethernet, &mut out);
    assert_eq!(taps(&out).len(), 1);
    p.finish(&mut out);
    assert_eq!(taps(&out).len(), 2);
}

#[test]
fn http_request_names_the_flow() {
    let mut p = pipeline();
    let mut out = Vec::new();
    let e = LinkType::Ethernet;
    p.packet(S, &tcp(true, 0x02, &[]), e, &mut out);
    p.packet(S + 1, &tcp(false, 0x12, &[]), e, &mut out);
    let req = b"GET /x HTTP/1.1\r\nHost: www.netflix.com\r\nUser-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/126.0\r\n\r\n";
    p.packet(S + 2, &tcp(true, 0x10, req), e, &mut out);
    p.finish(&mut out);
    let t = taps(&out);
    let a = &t[0].app;
    assert_eq!(a.provider.as_deref(), Some("netflix"));
    assert_eq!(a.http_host.as_deref(), Some("www.netflix.com"));
    assert_eq!(a.detection_method, schemas::DetectionMethod::HttpHost);
    assert_eq!(a.detection_packets, 3);
    assert_eq!(a.client_os.as_deref(), Some("Windows 10/11"));
    assert_eq!(a.client_agent.as_deref(), Some("Chrome 126"));
}

#[test]
fn live_path_classifies_like_the_offline_path() {
    // The twin stands in for the kernel: it counts and decides what is sent; the live calls
    // see only the sent frames and the kernel's state, as `--interface` will.
    let mut offline = pipeline();
    let mut live = pipeline();
    let mut kernel: FlowTable<()> = FlowTable::new(1024, SendConfig::default());
    let mut out = Vec::new();
    let e = LinkType::Ethernet;
    let req = b"GET / HTTP/1.1\r\nHost: api.zoom.us\r\n\r\n";
    let frames = [
        tcp(true, 0x02, &[]),
        tcp(false, 0x12, &[]),
        tcp(true, 0x10, req),
        udp(5),
    ];
    for (i, f) in frames.iter().enumerate() {
        let ts = S + i as u64;
        offline.packet(ts, f, e, &mut out);
        if let Outcome::Accounted(a) = kernel.account(ts, f, e) {
            let key = a.parsed.key;
            if let Some((_, cap)) = a.send {
                let state = kernel.get(&key).map(|x| x.state).unwrap_or_default();
                let v = live.live_packet(ts, &f[..cap], &state);
                if let (Some(v), Some(x)) = (v, kernel.get_mut(&key)) {
                    x.state.verdict = v;
                }
            }
        }
    }
    offline.finish(&mut out);
    let mut want: Vec<(u16, Option<String>)> = taps(&out)
        .iter()
        .map(|r| (r.key.client_port, r.app.provider.clone()))
        .collect();
    let held: Vec<(TwinKey, FlowState)> = kernel.iter().map(|(k, x)| (*k, x.state)).collect();
    let mut lout = Vec::new();
    live.live_finish(S + 10, &held, &mut lout);
    assert!(taps(&lout).iter().all(|r| r.state == RecordState::End));
    let mut got: Vec<(u16, Option<String>)> = taps(&lout)
        .iter()
        .map(|r| (r.key.client_port, r.app.provider.clone()))
        .collect();
    want.sort();
    got.sort();
    assert_eq!(got, want);
    assert!(got.contains(&(50000, Some("zoom".into()))));
}

/// Feeds `frames` (time, frame) through the twin standing in for the kernel and the live calls.
fn live_feed(live: &mut Pipeline, kernel: &mut FlowTable<()>, frames: &[(u64, Vec<u8>)]) {
    for (ts, f) in frames {
        if let Outcome::Accounted(a) = kernel.account(*ts, f, LinkType::Ethernet) {
            let key = a.parsed.key;
            if let Some((_, cap)) = a.send {
                let state = kernel.get(&key).map(|x| x.state).unwrap_or_default();
                let v = live.live_packet(*ts, &f[..cap], &state);
                if let (Some(v), Some(x)) = (v, kernel.get_mut(&key)) {
                    x.state.verdict = v;
                }
            }
        }
    }
}

#[test]
fn live_scans_send_updates_flow_stats_and_one_end() {
    let mut live = pipeline();
    let mut kernel: FlowTable<()> = FlowTable::new(1024, SendConfig::default());
    let held = |k: &FlowTable<()>| -> Vec<(TwinKey, FlowState)> {
        k.iter().map(|(k, x)| (*k, x.state)).collect()
    };
    const SEC: u64 = 1_000_000_000;
    const UPDATE: u64 = 30 * SEC;
    // One UDP flow with a packet every 5 s for 60 s.
    let frames: Vec<(u64, Vec<u8>)> = (0..13).map(|i| (S + i * 5 * SEC, udp(7000))).collect();
    let never = |_: &FlowState| false;
    let mut out = Vec::new();
    // Scans every 10 s while the packets come.
    let mut fed = 0;
    for t in (10..=60).step_by(10) {
        let now = S + t * SEC;
        let upto = frames.iter().take_while(|(ts, _)| *ts <= now).count();
        live_feed(&mut live, &mut kernel, &frames[fed..upto]);
        fed = upto;
        let gone = live.live_scan(now, &held(&kernel), never, UPDATE, &mut out);
        assert!(gone.is_empty());
    }
    // Updates at 30 s and 60 s of the flow's life, with consecutive sequence numbers.
    let ups: Vec<(RecordState, u32)> = taps(&out).iter().map(|r| (r.state, r.seq)).collect();
    assert_eq!(ups, [(RecordState::Update, 0), (RecordState::Update, 1)]);
    // flow_stats every 15 s of scan time once the first scan set the clock: at 30 and 50 s.
    let stats = out
        .iter()
        .filter(|o| matches!(o, Output::FlowStats(_)))
        .count();
    assert_eq!(stats, 2);
    assert_eq!(live.counters.tap_updates, 2);
    // The flow ends: one `end` record, the next sequence number, and its key to forget.
    out.clear();
    let gone = live.live_scan(S + 70 * SEC, &held(&kernel), |_| true, UPDATE, &mut out);
    assert_eq!(gone.len(), 1);
    let ends: Vec<(RecordState, u32, u64)> = taps(&out)
        .iter()
        .map(|r| (r.state, r.seq, r.stats.total_packets))
        .collect();
    assert_eq!(ends, [(RecordState::End, 2, 13)]);
    // A flow the kernel stopped holding (LRU eviction) is forgotten by user space too.
    live_feed(&mut live, &mut kernel, &[(S + 71 * SEC, udp(7001))]);
    out.clear();
    live.live_scan(S + 72 * SEC, &[], never, UPDATE, &mut out);
    assert!(taps(&out).is_empty());
    assert_eq!(live.counters.live_forgotten, 1);
}
