//! Tests of the join: one per rule, and a property test over random interleavings.

use super::session::SessionRouterQos;
use super::*;
use schemas::super_flow::KeyMatch;
use schemas::{
    sample, AppType, FlowRecord, MatchStatus, RecordState, SuperFlow, TapKey, TapRecord,
};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};

const T0: i64 = 1_718_000_000_000;

fn ip(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

/// Client of flow `n`.
fn client(n: u32) -> (IpAddr, u16) {
    (
        ip(10, 1, (n >> 8) as u8, n as u8),
        40_000 + (n % 1000) as u16,
    )
}

const SERVER: (IpAddr, u16) = (IpAddr::V4(Ipv4Addr::new(203, 0, 113, 80)), 443);

/// A router record of flow `n`, server to client, `[start, end]` ms after T0, `packets` as
/// exported at 1-in-`sampling`.
fn router(n: u32, piece: u32, start: i64, end: i64, packets: u64, sampling: u32) -> FlowRecord {
    let mut r = sample::flow_record();
    let c = client(n);
    r.src_addr = Some(SERVER.0);
    r.src_port = Some(SERVER.1);
    r.dst_addr = Some(c.0);
    r.dst_port = Some(c.1);
    r.src_vlan = None;
    r.dst_vlan = None;
    r.flow_start_ms = Some(T0 + start);
    r.flow_end_ms = Some(T0 + end);
    r.packets_exported = Some(packets);
    r.packets = packets * u64::from(sampling);
    r.octets = r.packets * 1400;
    r.sampling_interval = sampling;
    r.sequence_number = n;
    r.export_time_ms = T0 + end + piece as i64;
    r.set_flow_key();
    r.set_record_id(piece);
    r
}

/// A tap report on flow `n`: `[first, last]` ms after T0, cumulative packets each way.
fn tap(n: u32, seq: u32, first: i64, last: i64, state: RecordState, app: AppType) -> TapRecord {
    let mut t = sample::tap_record();
    let c = client(n);
    t.key = TapKey {
        flow_key: String::new(),
        protocol: 6,
        client_addr: c.0,
        client_port: c.1,
        server_addr: SERVER.0,
        server_port: SERVER.1,
        vlan: None,
    };
    t.key.set_flow_key();
    t.stats.digest = t.key.flow_key.clone();
    t.seq = seq;
    t.state = state;
    t.first_seen_ms = T0 + first;
    t.last_seen_ms = T0 + last;
    // 1000 packets/s from the server, 400/s from the client.
    let secs = ((last - first) / 1000) as u64;
    t.stats.other_packets = 1000 * secs;
    t.stats.local_packets = 400 * secs;
    t.stats.total_packets = 1400 * secs;
    t.app.app_type = app;
    t.set_record_id();
    t
}

fn cfg() -> JoinConfig {
    JoinConfig {
        grace_ms: 30_000,
        tap_ttl_ms: 120_000,
        ..JoinConfig::default()
    }
}

fn one(out: &mut Vec<SuperFlow>) -> SuperFlow {
    assert_eq!(out.len(), 1, "{out:#?}");
    out.remove(0)
}

#[test]
fn sample_records_join_with_every_block() {
    let mut j = Joiner::new(JoinConfig::default());
    let mut out = Vec::new();
    let t = sample::tap_record();
    j.tap(&t, T0 + 30_000, &mut out);
    assert!(out.is_empty());
    j.router(sample::flow_record(), T0 + 31_000, &mut out);
    let sf = one(&mut out);
    assert_eq!(sf.enrichment.status, MatchStatus::Matched);
    assert_eq!(sf.enrichment.key_match, KeyMatch::Canonical);
    assert_eq!(sf.enrichment.tap.as_deref(), Some("site1-mirror0"));
    assert_eq!(sf.enrichment.matched_tap_records, 1);
    assert!((sf.enrichment.confidence - 1.0).abs() < 1e-6);
    // The compact summary gives back exactly what the tap sent.
    assert_eq!(sf.app.as_deref(), Some(&t.app));
    assert_eq!(sf.stats.as_ref(), Some(&t.stats));
    assert_eq!(sf.qoe.as_ref(), Some(&t.qoe));
    assert_eq!(*sf.flow, sample::flow_record());
    // Router: 26 packets at 1 in 1000, server to client; tap: 26 214 from the server.
    let r = sf.enrichment.router_tap_ratio.expect("ratio");
    assert!((r - 26_200.0 / 26_214.0).abs() < 1e-4, "{r}");
    let m = j.metrics();
    assert_eq!(
        (m.emitted_matched, m.pending_routers, m.tap_flows),
        (1, 0, 1)
    );
}

#[test]
fn router_first_waits_for_the_tap() {
    let mut j = Joiner::new(cfg());
    let mut out = Vec::new();
    j.router(router(1, 0, 0, 20_000, 20, 1000), T0 + 21_000, &mut out);
    j.tick(T0 + 22_000, &mut out);
    assert!(out.is_empty());
    assert_eq!(j.metrics().pending_routers, 1);
    j.tap(
        &tap(
            1,
            0,
            0,
            25_000,
            RecordState::Update,
            AppType::VideoStreaming,
        ),
        T0 + 26_000,
        &mut out,
    );
    let sf = one(&mut out);
    assert_eq!(sf.enrichment.status, MatchStatus::Matched);
    // 20 000 packets upscaled vs 20 s × 1000/s prorated to the router span (20 of 25 s).
    let r = sf.enrichment.router_tap_ratio.expect("ratio");
    assert!((r - 1.0).abs() < 0.01, "{r}");
    assert_eq!(j.metrics().pending_routers, 0);
}

#[test]
fn without_any_tap_for_the_grace_router_records_go_out_at_once() {
    let mut j = Joiner::new(cfg());
    let mut out = Vec::new();
    // The first tap TTL (longer than the grace) after start: a tap may be about to report, so the
    // records wait.
    j.router(router(1, 0, 0, 20_000, 20, 1), T0 + 21_000, &mut out);
    j.router(
        router(2, 0, 0, 20_000, 20, 1),
        T0 + 21_000 + 120_000,
        &mut out,
    );
    assert!(out.is_empty());
    assert_eq!(j.metrics().pending_routers, 2);
    // No tap record for longer than that: unmatched on arrival, counted.
    j.router(
        router(3, 0, 0, 20_000, 20, 1),
        T0 + 21_000 + 120_001,
        &mut out,
    );
    let sf = one(&mut out);
    assert_eq!(sf.enrichment.status, MatchStatus::Unmatched);
    assert_eq!(j.metrics().router_no_tap, 1);
    // A tap reports (on another flow): records wait their grace again.
    j.tap(
        &tap(9, 0, 140_000, 150_000, RecordState::Update, AppType::Web),
        T0 + 155_000,
        &mut out,
    );
    j.router(
        router(4, 0, 130_000, 150_000, 20, 1),
        T0 + 156_000,
        &mut out,
    );
    assert!(out.iter().all(|s| s.flow.sequence_number != 4), "{out:#?}");
    let m = j.metrics();
    assert_eq!((m.router_no_tap, m.router_records), (1, 4));
    assert_eq!(
        m.emitted_matched + m.emitted_partial + m.emitted_unmatched + m.pending_routers,
        m.router_records
    );
    // Off: every record waits whatever the taps do.
    let mut j = Joiner::new(JoinConfig {
        emit_at_once_without_tap: false,
        ..cfg()
    });
    j.router(router(1, 0, 0, 20_000, 20, 1), T0 + 21_000, &mut out);
    j.router(router(2, 0, 0, 20_000, 20, 1), T0 + 300_000, &mut out);
    assert_eq!(j.metrics().router_no_tap, 0);
    assert!(out.iter().all(|s| s.flow.sequence_number != 2));
}

#[test]
fn shared_router_records_are_never_copied() {
    let mut j = Joiner::new(cfg());
    let mut out = Vec::new();
    let a = std::sync::Arc::new(router(1, 0, 0, 20_000, 20, 1000));
    let b = std::sync::Arc::new(router(2, 0, 0, 20_000, 20, 1000));
    let (want_a, want_b) = ((*a).clone(), (*b).clone());
    j.router_shared(a.clone(), T0 + 21_000, &mut out);
    j.router_shared(b.clone(), T0 + 21_000, &mut out);
    // The join holds the same allocation while the record waits.
    assert_eq!(std::sync::Arc::strong_count(&a), 2);
    drop(a);
    for n in [1, 2] {
        j.tap(
            &tap(n, 0, 0, 25_000, RecordState::Update, AppType::Gaming),
            T0 + 26_000,
            &mut out,
        );
    }
    assert_eq!(out.len(), 2);
    assert_eq!(*out[0].flow, want_a);
    assert_eq!(*out[1].flow, want_b);
    // The super-flow holds the caller's allocation itself: `b` is shared, not copied.
    assert!(std::sync::Arc::ptr_eq(&b, &out[1].flow.0));
    assert_eq!(std::sync::Arc::strong_count(&b), 2);
    assert_eq!(std::sync::Arc::strong_count(&out[0].flow.0), 1);
    assert_eq!(j.metrics().pending_routers, 0);
}

#[test]
fn grace_expiry_emits_unmatched() {
    let mut j = Joiner::new(cfg());
    let mut out = Vec::new();
    j.router(router(1, 0, 0, 20_000, 20, 1), T0 + 21_000, &mut out);
    j.tick(T0 + 21_000 + 29_999, &mut out);
    assert!(out.is_empty());
    j.tick(T0 + 21_000 + 30_000, &mut out);
    let sf = one(&mut out);
    assert_eq!(sf.enrichment.status, MatchStatus::Unmatched);
    assert_eq!(sf.enrichment.confidence, 0.0);
    assert!(sf.app.is_none() && sf.stats.is_none());
    let m = j.metrics();
    assert_eq!(
        (m.emitted_unmatched, m.router_grace_expired, m.entries),
        (1, 1, 0)
    );
    // A tap record after the grace: too late for that record, counted.
    j.tap(
        &tap(1, 0, 0, 20_000, RecordState::End, AppType::Web),
        T0 + 60_000,
        &mut out,
    );
    assert!(out.is_empty());
    assert_eq!(j.metrics().tap_late, 1);
}

#[test]
fn grace_zero_emits_at_once() {
    let mut j = Joiner::new(JoinConfig {
        grace_ms: 0,
        ..cfg()
    });
    let mut out = Vec::new();
    j.router(router(1, 0, 0, 20_000, 20, 1), T0, &mut out);
    assert_eq!(one(&mut out).enrichment.status, MatchStatus::Unmatched);
    j.tap(
        &tap(2, 0, 0, 10_000, RecordState::Update, AppType::Web),
        T0,
        &mut out,
    );
    j.router(router(2, 0, 0, 20_000, 20, 1), T0, &mut out);
    assert_eq!(one(&mut out).enrichment.status, MatchStatus::Partial);
}

#[test]
fn partial_coverage_after_grace_and_at_tap_end() {
    let mut j = Joiner::new(cfg());
    let mut out = Vec::new();
    // The tap saw the first half only so far: wait, then partial.
    j.tap(
        &tap(1, 0, 0, 10_000, RecordState::Update, AppType::Gaming),
        T0 + 10_000,
        &mut out,
    );
    j.router(router(1, 0, 0, 20_000, 20, 1), T0 + 21_000, &mut out);
    assert!(out.is_empty());
    j.tick(T0 + 60_000, &mut out);
    let sf = one(&mut out);
    assert_eq!(sf.enrichment.status, MatchStatus::Partial);
    // [0 − 2 s, 10 s + 2 s] over [0, 20 s]: 60 %.
    assert!(
        (sf.enrichment.confidence - 0.6).abs() < 1e-3,
        "{:?}",
        sf.enrichment
    );
    assert!(sf.app.is_some() && sf.enrichment.router_tap_ratio.is_none());
    // A tap flow that ended settles the router record at once.
    j.tap(
        &tap(2, 0, 0, 10_000, RecordState::End, AppType::Gaming),
        T0 + 61_000,
        &mut out,
    );
    j.router(router(2, 0, 0, 20_000, 20, 1), T0 + 61_000, &mut out);
    assert_eq!(one(&mut out).enrichment.status, MatchStatus::Partial);
}

#[test]
fn unclassified_is_partial() {
    let mut j = Joiner::new(cfg());
    let mut out = Vec::new();
    j.tap(
        &tap(1, 0, 0, 30_000, RecordState::End, AppType::Unknown),
        T0,
        &mut out,
    );
    j.router(router(1, 0, 0, 20_000, 20, 1), T0, &mut out);
    let sf = one(&mut out);
    assert_eq!(sf.enrichment.status, MatchStatus::Partial);
    assert!((sf.enrichment.confidence - 1.0).abs() < 1e-6);
    // A later report classifies: an unclassified but covering tap flow that has not ended waits.
    j.tap(
        &tap(2, 0, 0, 30_000, RecordState::Start, AppType::Unknown),
        T0,
        &mut out,
    );
    j.router(router(2, 0, 0, 20_000, 20, 1), T0, &mut out);
    assert!(out.is_empty());
    j.tap(
        &tap(2, 1, 0, 31_000, RecordState::Update, AppType::Web),
        T0,
        &mut out,
    );
    let sf = one(&mut out);
    assert_eq!(sf.enrichment.status, MatchStatus::Matched);
    assert_eq!(sf.enrichment.matched_tap_records, 2);
}

#[test]
fn split_router_flow_gives_one_super_flow_per_record() {
    let mut j = Joiner::new(cfg());
    let mut out = Vec::new();
    j.tap(
        &tap(1, 0, 0, 1_000, RecordState::Start, AppType::VideoStreaming),
        T0 + 1_000,
        &mut out,
    );
    j.tap(
        &tap(
            1,
            1,
            0,
            30_000,
            RecordState::Update,
            AppType::VideoStreaming,
        ),
        T0 + 30_000,
        &mut out,
    );
    // Active timeout at 60 s: two router records.
    j.router(router(1, 0, 0, 60_000, 60, 1000), T0 + 61_000, &mut out);
    assert!(out.is_empty(), "the tap has covered only 30 s of 60");
    j.tap(
        &tap(
            1,
            2,
            0,
            60_000,
            RecordState::Update,
            AppType::VideoStreaming,
        ),
        T0 + 61_500,
        &mut out,
    );
    let a = one(&mut out);
    j.tap(
        &tap(
            1,
            3,
            0,
            90_000,
            RecordState::Update,
            AppType::VideoStreaming,
        ),
        T0 + 90_000,
        &mut out,
    );
    j.router(
        router(1, 1, 60_000, 90_000, 30, 1000),
        T0 + 91_000,
        &mut out,
    );
    let b = one(&mut out);
    assert_ne!(a.record_id, b.record_id);
    for sf in [&a, &b] {
        assert_eq!(sf.enrichment.status, MatchStatus::Matched);
        let r = sf.enrichment.router_tap_ratio.expect("ratio");
        assert!((r - 1.0).abs() < 0.01, "{r}");
    }
    assert_eq!(b.enrichment.matched_tap_records, 4);
}

#[test]
fn sampling_ratio_shows_a_wrong_sampling_interval() {
    let mut j = Joiner::new(cfg());
    let mut out = Vec::new();
    j.tap(
        &tap(1, 0, 0, 20_000, RecordState::End, AppType::Web),
        T0,
        &mut out,
    );
    // The exporter samples 1 in 1000 but announced 1 in 100: upscaled ten times too little.
    j.router(router(1, 0, 0, 20_000, 20, 100), T0, &mut out);
    let r = one(&mut out).enrichment.router_tap_ratio.expect("ratio");
    assert!((r - 0.1).abs() < 1e-3, "{r}");
    // The client-to-server direction is compared with the tap's client side.
    let mut up = router(1, 1, 0, 20_000, 8, 1000);
    std::mem::swap(&mut up.src_addr, &mut up.dst_addr);
    std::mem::swap(&mut up.src_port, &mut up.dst_port);
    up.set_flow_key();
    j.router(up, T0, &mut out);
    let r = one(&mut out).enrichment.router_tap_ratio.expect("ratio");
    assert!((r - 1.0).abs() < 1e-3, "{r}");
}

#[test]
fn vlan_mismatch_needs_ignore_scope() {
    let mut r = router(1, 0, 0, 20_000, 20, 1);
    r.src_vlan = Some(20);
    r.set_flow_key();
    let t = tap(1, 0, 0, 20_000, RecordState::End, AppType::Web);
    assert_ne!(r.flow_key.as_deref(), Some(t.key.flow_key.as_str()));
    // Default: different keys, no match.
    let mut j = Joiner::new(cfg());
    let mut out = Vec::new();
    j.tap(&t, T0, &mut out);
    j.router(r.clone(), T0, &mut out);
    j.tick(T0 + 30_000, &mut out);
    assert_eq!(one(&mut out).enrichment.status, MatchStatus::Unmatched);
    // ignore_scope: matched, marked, confidence lowered.
    let mut j = Joiner::new(JoinConfig {
        ignore_scope: true,
        ..cfg()
    });
    j.tap(&t, T0, &mut out);
    j.router(r, T0, &mut out);
    let sf = one(&mut out);
    assert_eq!(sf.enrichment.status, MatchStatus::Matched);
    assert_eq!(sf.enrichment.key_match, KeyMatch::KeyWithoutScope);
    assert!((sf.enrichment.confidence - 0.9).abs() < 1e-6);
    // The digest is the tap's own (scoped) key, not the entry's.
    assert_eq!(sf.stats.map(|s| s.digest), Some(t.key.flow_key.clone()));
    assert_eq!(j.metrics().emitted_without_scope, 1);
    // Same scope on both sides under ignore_scope: canonical.
    let mut r = router(2, 0, 0, 20_000, 20, 1);
    r.src_vlan = Some(30);
    r.set_flow_key();
    let mut t = tap(2, 0, 0, 20_000, RecordState::End, AppType::Web);
    t.key.vlan = Some(30);
    t.key.set_flow_key();
    j.tap(&t, T0, &mut out);
    j.router(r, T0, &mut out);
    assert_eq!(one(&mut out).enrichment.key_match, KeyMatch::Canonical);
}

/// The tap's view of flow `n` from inside a NAT: private client, same server.
fn inside_tap(n: u32, packets_from_server_per_s: u64) -> TapRecord {
    let mut t = tap(n, 0, 0, 20_000, RecordState::End, AppType::VideoStreaming);
    t.key.client_addr = ip(192, 168, 1, n as u8);
    t.key.client_port = 50_000 + n as u16;
    t.key.set_flow_key();
    t.stats.other_packets = packets_from_server_per_s * 20;
    t
}

#[test]
fn nat_mode_matches_on_server_time_and_volume() {
    // The router sees the NAT's public address.
    let mut r = router(1, 0, 0, 20_000, 20, 1000);
    r.dst_addr = Some(ip(198, 51, 100, 1));
    r.dst_port = Some(62_000);
    r.set_flow_key();
    let near = inside_tap(7, 1000); // 20 000 packets, like the router's upscaled count
    let far = inside_tap(8, 100);
    for nat in [false, true] {
        let mut j = Joiner::new(JoinConfig { nat, ..cfg() });
        let mut out = Vec::new();
        j.tap(&far, T0, &mut out);
        j.tap(&near, T0, &mut out);
        j.router(r.clone(), T0, &mut out);
        assert!(
            out.is_empty(),
            "NAT candidates are judged when the grace runs out"
        );
        j.tick(T0 + 30_000, &mut out);
        let sf = one(&mut out);
        if !nat {
            assert_eq!(sf.enrichment.status, MatchStatus::Unmatched);
            continue;
        }
        assert_eq!(sf.enrichment.key_match, KeyMatch::Nat);
        assert_eq!(sf.stats.as_ref().map(|s| s.other_packets), Some(20_000));
        // Scores: near 1.0, far 0.1; confidence 1.0 × 1/1.1.
        assert!(
            (sf.enrichment.confidence - 1.0 / 1.1).abs() < 1e-3,
            "{:?}",
            sf.enrichment
        );
        assert_eq!(sf.enrichment.status, MatchStatus::Matched);
        assert_eq!(j.metrics().emitted_nat, 1);
    }
    // Three equally likely clients: ambiguous, so partial.
    let mut j = Joiner::new(JoinConfig { nat: true, ..cfg() });
    let mut out = Vec::new();
    for n in [7, 9, 10] {
        j.tap(&inside_tap(n, 1000), T0, &mut out);
    }
    j.router(r, T0, &mut out);
    j.tick(T0 + 30_000, &mut out);
    let sf = one(&mut out);
    assert_eq!(sf.enrichment.status, MatchStatus::Partial);
    assert!((sf.enrichment.confidence - 1.0 / 3.0).abs() < 1e-3);
}

#[test]
fn entry_cap_evicts_by_emitting() {
    let mut j = Joiner::new(JoinConfig {
        max_entries: 2,
        ..cfg()
    });
    let mut out = Vec::new();
    j.router(router(1, 0, 0, 1_000, 1, 1), T0, &mut out);
    j.router(router(2, 0, 0, 1_000, 1, 1), T0, &mut out);
    assert!(out.is_empty());
    j.router(router(3, 0, 0, 1_000, 1, 1), T0, &mut out);
    let sf = one(&mut out);
    assert_eq!(sf.enrichment.status, MatchStatus::Unmatched);
    let m = j.metrics();
    assert_eq!(
        (
            m.entries,
            m.entries_evicted,
            m.router_evicted,
            m.pending_routers
        ),
        (2, 1, 1, 2)
    );
    // The evicted record's stale deadline does nothing; the others come out once.
    j.tick(T0 + 30_000, &mut out);
    assert_eq!(out.len(), 2);
    assert_ne!(out[0].record_id, sf.record_id);
    assert_ne!(out[1].record_id, sf.record_id);
}

#[test]
fn pending_router_cap_emits_the_oldest() {
    let mut j = Joiner::new(JoinConfig {
        max_pending_routers: 2,
        ..cfg()
    });
    let mut out = Vec::new();
    let first = router(1, 0, 0, 1_000, 1, 1);
    let id = first.record_id.clone();
    j.router(first, T0, &mut out);
    j.router(router(2, 0, 0, 1_000, 1, 1), T0 + 1, &mut out);
    j.router(router(3, 0, 0, 1_000, 1, 1), T0 + 2, &mut out);
    assert_eq!(one(&mut out).record_id, id);
    assert_eq!(j.metrics().router_cap_emitted, 1);
}

#[test]
fn record_without_key_is_emitted_unmatched() {
    let mut j = Joiner::new(cfg());
    let mut out = Vec::new();
    let mut r = router(1, 0, 0, 1_000, 1, 1);
    r.flow_key = None;
    j.router(r, T0, &mut out);
    let mut r = router(2, 0, 0, 1_000, 1, 1);
    r.flow_key = Some("not hex at all!!".into());
    j.router(r, T0, &mut out);
    assert_eq!(out.len(), 2);
    assert!(out
        .iter()
        .all(|s| s.enrichment.status == MatchStatus::Unmatched));
    assert_eq!(j.metrics().router_no_key, 2);
    let mut t = tap(1, 0, 0, 1_000, RecordState::End, AppType::Web);
    t.key.flow_key = "zz".into();
    j.tap(&t, T0, &mut out);
    assert_eq!(j.metrics().tap_bad_key, 1);
}

#[test]
fn tap_summary_expires_after_ttl() {
    let mut j = Joiner::new(cfg());
    let mut out = Vec::new();
    j.tap(
        &tap(1, 0, 0, 1_000, RecordState::End, AppType::Web),
        T0,
        &mut out,
    );
    j.tick(T0 + 119_000, &mut out);
    assert_eq!(j.metrics().tap_flows, 1);
    j.tick(T0 + 121_000, &mut out);
    let m = j.metrics();
    assert_eq!(
        (m.tap_flows, m.entries, m.tap_expired, m.tap_never_joined),
        (0, 0, 1, 1)
    );
    j.flush_all(&mut out);
    assert!(out.is_empty());
}

#[test]
fn duplicate_and_out_of_order_tap_reports() {
    let mut j = Joiner::new(cfg());
    let mut out = Vec::new();
    let t2 = tap(1, 2, 0, 60_000, RecordState::Update, AppType::Web);
    j.tap(&t2, T0, &mut out);
    j.tap(&t2, T0, &mut out);
    j.tap(
        &tap(1, 1, 0, 30_000, RecordState::Update, AppType::Web),
        T0,
        &mut out,
    );
    let m = j.metrics();
    assert_eq!((m.tap_duplicates, m.tap_out_of_order), (1, 1));
    j.router(router(1, 0, 0, 50_000, 50, 1), T0, &mut out);
    let sf = one(&mut out);
    // The stats are the newest report's, not the late older one's.
    assert_eq!(sf.stats.map(|s| s.other_packets), Some(60_000));
    assert_eq!(sf.enrichment.matched_tap_records, 2);
}

#[test]
fn port_reuse_starts_a_new_tap_flow() {
    let mut j = Joiner::new(cfg());
    let mut out = Vec::new();
    j.tap(
        &tap(1, 0, 0, 10_000, RecordState::End, AppType::Web),
        T0,
        &mut out,
    );
    // A router record of a later flow on the same key waits for its tap flow.
    j.router(router(1, 1, 50_000, 60_000, 10, 1), T0 + 61_000, &mut out);
    assert!(out.is_empty());
    j.tap(
        &tap(1, 0, 50_000, 60_000, RecordState::End, AppType::Gaming),
        T0 + 61_000,
        &mut out,
    );
    let sf = one(&mut out);
    assert_eq!(sf.enrichment.status, MatchStatus::Matched);
    assert_eq!(sf.app.map(|a| a.app_type), Some(AppType::Gaming));
    assert_eq!(j.metrics().tap_new_generation, 1);
}

#[test]
fn flush_by_partition_then_all() {
    let mut j = Joiner::new(cfg());
    let mut out = Vec::new();
    let mut keys = HashMap::new();
    for n in 0..200 {
        // The tap has covered 2.5 s of 20 so far: the router records wait.
        let r = router(n, 0, 0, 20_000, 20, 1);
        let k = u64::from_str_radix(r.flow_key.as_deref().unwrap_or(""), 16).unwrap_or(0);
        keys.insert(r.record_id.clone(), k);
        j.tap(
            &tap(n, 0, 0, 500, RecordState::Update, AppType::Web),
            T0,
            &mut out,
        );
        j.router(r, T0, &mut out);
    }
    assert!(out.is_empty());
    let p = Partitioner::ConsistentRandom;
    j.flush_partitions(&[0, 2], 4, p, &mut out);
    assert!(!out.is_empty() && out.len() < 200);
    for sf in &out {
        assert!([0, 2].contains(&p.partition(keys[sf.record_id.as_str()], 4)));
        assert_eq!(sf.enrichment.status, MatchStatus::Partial);
    }
    let flushed = out.len();
    let m = j.metrics();
    assert_eq!(m.pending_routers as usize, 200 - flushed);
    assert_eq!(m.tap_flows as usize, 200 - flushed);
    j.flush_all(&mut out);
    assert_eq!(out.len(), 200);
    let ids: std::collections::HashSet<_> = out.iter().map(|s| &s.record_id).collect();
    assert_eq!(ids.len(), 200);
    let m = j.metrics();
    assert_eq!((m.pending_routers, m.entries, m.tap_flows), (0, 0, 0));
    assert_eq!(m.router_flushed, 200);
}

#[test]
fn state_bytes_follow_the_state() {
    let mut j = Joiner::new(cfg());
    let mut out = Vec::new();
    let empty = j.state_bytes();
    for n in 0..1000 {
        j.tap(
            &tap(n, 0, 0, 500, RecordState::Update, AppType::Web),
            T0,
            &mut out,
        );
    }
    let taps = j.state_bytes();
    assert!(taps > empty + 1000 * 100, "{taps}");
    for n in 0..1000 {
        j.router(router(n + 5000, 0, 0, 1_000, 1, 1), T0, &mut out);
    }
    assert!(j.state_bytes() > taps + 1000 * 300);
    j.flush_all(&mut out);
    assert_eq!(out.len(), 1000);
    assert!(j.state_bytes() < 64 * 1024, "{}", j.state_bytes());
}

#[test]
fn session_gets_the_router_counters_of_its_flows() {
    let mut s = sample::app_session();
    let mut q = SessionRouterQos::new();
    let a = SuperFlow::unmatched(router(1, 0, 0, 1_000, 10, 100));
    let b = SuperFlow::unmatched(router(2, 0, 0, 1_000, 5, 100));
    let other = SuperFlow::unmatched(router(3, 0, 0, 1_000, 5, 100));
    for sf in [&a, &b] {
        q.add_member(&s.session_id, sf.flow.flow_key.as_deref().unwrap_or(""));
    }
    assert!(q.add(&a) && q.add(&b) && !q.add(&other));
    q.fill(&mut s);
    assert_eq!(s.network.router_packets, 1500);
    assert_eq!(s.network.router_octets, 1500 * 1400);
    assert_eq!(s.network.router_flow_records, 2);
    q.end(&s.session_id.clone());
    assert!(!q.add(&a));
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Ev {
        Router(u32, u32),
        Tap(u32, u32),
        Tick(i64),
        FlushPartition(i32),
    }

    fn ev() -> impl Strategy<Value = Ev> {
        prop_oneof![
            4 => (0u32..12, 0u32..3).prop_map(|(n, p)| Ev::Router(n, p)),
            4 => (0u32..12, 0u32..4).prop_map(|(n, s)| Ev::Tap(n, s)),
            2 => (0i64..40_000).prop_map(Ev::Tick),
            1 => (0i32..4).prop_map(Ev::FlushPartition),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// Whatever the order, delays, caps and flushes, every router record comes out exactly
        /// once, and the counters agree.
        #[test]
        fn every_router_record_exactly_once(
            evs in proptest::collection::vec(ev(), 1..120),
            max_entries in 1usize..16,
            max_pending in 1usize..16,
            grace in 0u64..40_000,
            nat: bool,
            ignore_scope: bool,
        ) {
            let mut j = Joiner::new(JoinConfig {
                grace_ms: grace,
                tap_ttl_ms: 60_000,
                max_entries,
                max_pending_routers: max_pending,
                nat,
                ignore_scope,
                ..JoinConfig::default()
            });
            let mut out = Vec::new();
            let mut now = T0;
            let mut sent = Vec::new();
            for e in evs {
                match e {
                    Ev::Router(n, p) => {
                        let mut r = router(n, p, p as i64 * 30_000, (p as i64 + 1) * 30_000, 30, 1000);
                        if n == 11 {
                            r.flow_key = None;
                        }
                        // Unique per event, even when (n, p) repeats.
                        r.record_id = format!("{n}-{p}-{}", sent.len()).into();
                        sent.push(r.record_id.clone());
                        j.router(r, now, &mut out);
                    }
                    Ev::Tap(n, s) => {
                        let st = if s == 3 { RecordState::End } else { RecordState::Update };
                        j.tap(&tap(n, s, 0, (s as i64 + 1) * 30_000, st, AppType::Web), now, &mut out);
                    }
                    Ev::Tick(d) => {
                        now += d;
                        j.tick(now, &mut out);
                    }
                    Ev::FlushPartition(p) => {
                        j.flush_partitions(&[p], 4, Partitioner::Murmur2, &mut out);
                    }
                }
                let m = j.metrics();
                prop_assert_eq!(
                    m.router_records,
                    m.emitted_matched + m.emitted_partial + m.emitted_unmatched + m.pending_routers
                );
                prop_assert_eq!(m.emitted_matched + m.emitted_partial + m.emitted_unmatched, out.len() as u64);
                prop_assert!(m.entries as usize <= max_entries);
                prop_assert!(m.pending_routers as usize <= max_pending);
            }
            j.flush_all(&mut out);
            let mut got: Vec<_> = out.iter().map(|s| s.record_id.clone()).collect();
            got.sort();
            sent.sort();
            prop_assert_eq!(got, sent);
            let m = j.metrics();
            prop_assert_eq!((m.entries, m.pending_routers, m.tap_flows), (0, 0, 0));
        }
    }
}

#[test]
fn entry_stays_small() {
    // The bytes-per-pending-flow budget rests on this (see BENCHMARKS.md, "Join").
    assert_eq!(std::mem::size_of::<super::state::Entry>(), 136);
    assert_eq!(std::mem::size_of::<super::state::TapSide>(), 120);
}

#[test]
fn keys_parse_as_sixteen_hex_digits_either_case() {
    use super::matching::parse_key;
    assert_eq!(parse_key("00000000000000ff"), Some(255));
    assert_eq!(parse_key("FFFFFFFFFFFFFFFF"), Some(u64::MAX));
    assert_eq!(parse_key("0123456789abcDEF"), Some(0x0123_4567_89ab_cdef));
    for bad in [
        "",
        "ff",
        "0123456789abcdef0",
        "+123456789abcdef",
        "0123456789abcdeg",
        "é23456789abcde",
    ] {
        assert_eq!(parse_key(bad), None, "{bad:?}");
    }
}

#[test]
fn keys_parse_as_a_digit_loop_would() {
    use super::matching::parse_key;
    fn by_digit(s: &str) -> Option<u64> {
        if s.len() != 16 {
            return None;
        }
        s.bytes().try_fold(0u64, |v, c| {
            Some((v << 4) | u64::from((c as char).to_digit(16)?))
        })
    }
    // Every byte value in every position, around a valid key; then random keys.
    let base = *b"0123456789abcDEF";
    for pos in 0..16 {
        for c in 0..=255u8 {
            let mut k = base;
            k[pos] = c;
            if let Ok(s) = std::str::from_utf8(&k) {
                assert_eq!(parse_key(s), by_digit(s), "{s:?}");
            }
        }
    }
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..10_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let s = format!("{x:016x}");
        assert_eq!(parse_key(&s), Some(x));
        assert_eq!(parse_key(&s.to_uppercase()), Some(x));
    }
}

/// [`Joiner::prefetch`] is a hint: the same records, fed in the same order with and without it,
/// give the same super-flows, also past the table size where it starts working (65 536 flows),
/// with tap and router records mixed, some keys absent, and hints that do not match the record
/// fed next.
#[test]
fn prefetch_changes_no_result() {
    const FLOWS: u32 = 70_000;
    // Flow `n` with a client address of its own (the helpers' `client` repeats past 65 536).
    let keyed = |mut t: TapRecord, n: u32| {
        t.key.client_addr = ip(10, (n >> 16) as u8, (n >> 8) as u8, n as u8);
        t.key.set_flow_key();
        t.stats.digest = t.key.flow_key.clone();
        t.set_record_id();
        t
    };
    let keyed_router = |mut r: FlowRecord, n: u32| {
        r.dst_addr = Some(ip(10, (n >> 16) as u8, (n >> 8) as u8, n as u8));
        r.set_flow_key();
        r.set_record_id(0);
        r
    };
    // Kept flat: the sizes differ, but these are built once.
    #[allow(clippy::large_enum_variant)]
    enum In {
        Tap(TapRecord),
        Router(FlowRecord),
    }
    let mut input = Vec::new();
    for n in 0..FLOWS {
        let app = if n % 3 == 0 {
            AppType::Gaming
        } else {
            AppType::VideoStreaming
        };
        input.push(In::Tap(keyed(
            tap(n, 1, 0, 30_000, RecordState::Update, app),
            n,
        )));
    }
    // Router records in a scattered order; every seventh has no tap flow.
    let mut n = 0u32;
    for _ in 0..FLOWS / 2 {
        n = (n + 40_503) % FLOWS;
        let id = if n % 7 == 0 { n + FLOWS } else { n };
        input.push(In::Router(keyed_router(
            router(n, 0, 1_000, 29_000, 100, 1),
            id,
        )));
    }
    let run = |prefetch: bool, skew: usize| {
        let mut j = Joiner::new(cfg());
        let mut out = Vec::new();
        let ahead = |i: usize| match input.get(i) {
            Some(In::Tap(t)) => Some(Ahead::Tap(t)),
            Some(In::Router(r)) => Some(Ahead::Router(r)),
            None => None,
        };
        for (i, r) in input.iter().enumerate() {
            if prefetch {
                j.prefetch(ahead(i + skew));
            }
            let now = T0 + 30_000;
            match r {
                In::Tap(t) => j.tap(t, now, &mut out),
                In::Router(f) => j.router(f.clone(), now, &mut out),
            }
        }
        j.flush_all(&mut out);
        out
    };
    let plain = run(false, 0);
    assert_eq!(plain.len(), FLOWS as usize / 2);
    assert!(plain
        .iter()
        .any(|s| s.enrichment.status == MatchStatus::Matched));
    assert!(plain
        .iter()
        .any(|s| s.enrichment.status == MatchStatus::Unmatched));
    for skew in [Joiner::PREFETCH_AHEAD, 3] {
        assert!(
            run(true, skew) == plain,
            "prefetch {skew} ahead changed the output"
        );
    }
}

/// The sweep visits a large table in proportion to the time that passed, even when every tick's
/// share rounds to nothing: with ticks every 10 ms and a share of one slot per 100 ms, every tap
/// summary is still forgotten within its TTL plus one sweep period, and none before its TTL.
#[test]
fn sweep_keeps_up_with_frequent_ticks_on_a_large_table() {
    const FLOWS: u32 = 1_000;
    let ttl = 400_000; // sweep period ttl / 4 = 100 s: one slot every 100 ms
    let mut j = Joiner::new(JoinConfig {
        tap_ttl_ms: ttl,
        ..cfg()
    });
    let mut out = Vec::new();
    for n in 0..FLOWS {
        let mut t = tap(n, 1, 0, 1_000, RecordState::Update, AppType::Gaming);
        t.key.client_addr = ip(10, 9, (n >> 8) as u8, n as u8);
        t.key.set_flow_key();
        t.set_record_id();
        j.tap(&t, T0 + 1_000, &mut out);
    }
    assert_eq!(j.metrics().tap_flows, u64::from(FLOWS));
    let mut now = T0 + 1_000;
    let end = now + ttl as i64 + (ttl / 4) as i64 + 1_000;
    while now < end {
        now += 10;
        j.tick(now, &mut out);
        if now < T0 + 1_000 + ttl as i64 {
            assert_eq!(
                j.metrics().tap_expired,
                0,
                "expired before its TTL at {now}"
            );
        }
    }
    assert_eq!(j.metrics().tap_expired, u64::from(FLOWS));
    assert_eq!(j.metrics().tap_flows, 0);
    assert!(out.is_empty());
}
