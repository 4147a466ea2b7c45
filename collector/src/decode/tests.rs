//! Decoder unit tests on hand-built messages: one behaviour each.

use super::*;
use crate::config::DecoderConfig;
use std::net::IpAddr;

const EXPORT_S: u32 = 1_700_000_000;
const EXPORT_MS: i64 = EXPORT_S as i64 * 1000;

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test address")
}

fn ipfix(domain: u32, seq: u32, sets: &[Vec<u8>]) -> Vec<u8> {
    let mut m = vec![0, 10, 0, 0];
    m.extend_from_slice(&EXPORT_S.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(&domain.to_be_bytes());
    for s in sets {
        m.extend_from_slice(s);
    }
    let len = m.len() as u16;
    m[2..4].copy_from_slice(&len.to_be_bytes());
    m
}

fn v9(source_id: u32, seq: u32, uptime_ms: u32, sets: &[Vec<u8>]) -> Vec<u8> {
    let mut m = vec![0, 9];
    m.extend_from_slice(&(sets.len() as u16).to_be_bytes());
    m.extend_from_slice(&uptime_ms.to_be_bytes());
    m.extend_from_slice(&EXPORT_S.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(&source_id.to_be_bytes());
    for s in sets {
        m.extend_from_slice(s);
    }
    m
}

fn set(id: u16, body: &[u8]) -> Vec<u8> {
    let mut s = id.to_be_bytes().to_vec();
    s.extend_from_slice(&((body.len() + 4) as u16).to_be_bytes());
    s.extend_from_slice(body);
    s
}

/// A template record; an IE id with the top bit set is followed by its PEN.
fn tmpl(id: u16, fields: &[(u16, u16, u32)]) -> Vec<u8> {
    let mut t = id.to_be_bytes().to_vec();
    t.extend_from_slice(&(fields.len() as u16).to_be_bytes());
    for (ie, len, pen) in fields {
        t.extend_from_slice(&ie.to_be_bytes());
        t.extend_from_slice(&len.to_be_bytes());
        if ie & 0x8000 != 0 {
            t.extend_from_slice(&pen.to_be_bytes());
        }
    }
    t
}

fn opt_tmpl(id: u16, scope: &[(u16, u16)], fields: &[(u16, u16)]) -> Vec<u8> {
    let mut t = id.to_be_bytes().to_vec();
    t.extend_from_slice(&((scope.len() + fields.len()) as u16).to_be_bytes());
    t.extend_from_slice(&(scope.len() as u16).to_be_bytes());
    for (ie, len) in scope.iter().chain(fields) {
        t.extend_from_slice(&ie.to_be_bytes());
        t.extend_from_slice(&len.to_be_bytes());
    }
    t
}

/// Template 256: sourceIPv4Address, destinationIPv4Address, protocolIdentifier, octetDeltaCount.
fn t256() -> Vec<u8> {
    set(
        2,
        &tmpl(256, &[(8, 4, 0), (12, 4, 0), (4, 1, 0), (1, 8, 0)]),
    )
}

fn rec256(src: [u8; 4], octets: u64) -> Vec<u8> {
    let mut r = src.to_vec();
    r.extend_from_slice(&[192, 0, 2, 1, 6]);
    r.extend_from_slice(&octets.to_be_bytes());
    r
}

fn decode(d: &mut Decoder, from: &str, msg: &[u8]) -> Vec<FlowRecord> {
    let mut out = Vec::new();
    d.decode(ip(from), Some(EXPORT_MS), msg, &mut out);
    out
}

#[test]
fn templates_are_scoped_per_exporter_and_domain() {
    let mut d = Decoder::new(DecoderConfig::for_files());
    // Domain 1 defines 256 with four fields; domain 2 defines 256 with only the source address.
    decode(&mut d, "192.0.2.1", &ipfix(1, 0, &[t256()]));
    decode(
        &mut d,
        "192.0.2.1",
        &ipfix(2, 0, &[set(2, &tmpl(256, &[(8, 4, 0)]))]),
    );
    let a = decode(
        &mut d,
        "192.0.2.1",
        &ipfix(1, 0, &[set(256, &rec256([10, 0, 0, 1], 500))]),
    );
    let b = decode(
        &mut d,
        "192.0.2.1",
        &ipfix(2, 0, &[set(256, &[10, 0, 0, 2])]),
    );
    // A third exporter using 256 without a template of its own decodes nothing.
    let c = decode(
        &mut d,
        "192.0.2.2",
        &ipfix(1, 0, &[set(256, &rec256([10, 0, 0, 3], 1))]),
    );
    assert_eq!((a.len(), b.len(), c.len()), (1, 1, 0));
    assert_eq!(a[0].octets, 500);
    assert_eq!(b[0].src_addr, Some(ip("10.0.0.2")));
    assert_eq!(b[0].octets_exported, None);
    d.finish();
    assert_eq!(d.totals.undecoded_sets, 1);
}

#[test]
fn data_before_template_is_held_then_decoded() {
    let mut d = Decoder::new(DecoderConfig::for_files());
    let early = decode(
        &mut d,
        "192.0.2.1",
        &ipfix(0, 0, &[set(256, &rec256([10, 0, 0, 1], 7))]),
    );
    assert!(early.is_empty());
    let late = decode(&mut d, "192.0.2.1", &ipfix(0, 1, &[t256()]));
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].octets, 7);
    assert_eq!(
        (d.totals.late_decoded_sets, d.totals.late_decoded_records),
        (1, 1)
    );
    d.finish();
    assert_eq!(d.totals.undecoded_sets, 0);
}

#[test]
fn hold_queue_is_bounded_and_expires() {
    let cfg = DecoderConfig {
        hold_max_sets: 2,
        hold_ms: 1000,
        ..DecoderConfig::default()
    };
    let mut d = Decoder::new(cfg);
    for i in 0..3 {
        decode(
            &mut d,
            "192.0.2.1",
            &ipfix(0, i, &[set(300, &[1, 2, 3, 4])]),
        );
    }
    assert_eq!(
        (d.totals.held_sets_overflow, d.totals.undecoded_sets),
        (1, 1)
    );
    d.expire(EXPORT_MS + 5000);
    assert_eq!(d.totals.undecoded_sets, 3);
}

#[test]
fn withdrawal_removes_templates() {
    let mut d = Decoder::new(DecoderConfig::for_files());
    decode(&mut d, "192.0.2.1", &ipfix(0, 0, &[t256()]));
    // RFC 7011 §8.1: a template record with field count 0 withdraws it.
    decode(&mut d, "192.0.2.1", &ipfix(0, 0, &[set(2, &[1, 0, 0, 0])]));
    let after = decode(
        &mut d,
        "192.0.2.1",
        &ipfix(0, 0, &[set(256, &rec256([10, 0, 0, 1], 1))]),
    );
    assert!(after.is_empty());
    assert_eq!(d.totals.template_withdrawals, 1);
    // Template id 2 withdraws every template of the domain.
    decode(
        &mut d,
        "192.0.2.1",
        &ipfix(0, 0, &[t256(), set(2, &tmpl(257, &[(8, 4, 0)]))]),
    );
    decode(&mut d, "192.0.2.1", &ipfix(0, 0, &[set(2, &[0, 2, 0, 0])]));
    let ex = d.exporters.get(&ip("192.0.2.1")).expect("exporter");
    assert_eq!(ex.template_count(), 0);
}

#[test]
fn template_lifetime_applies_to_udp_not_tcp() {
    let cfg = DecoderConfig {
        template_lifetime_ms: 60_000,
        ..DecoderConfig::default()
    };
    let mut d = Decoder::new(cfg);
    decode(&mut d, "192.0.2.1", &ipfix(0, 0, &[t256()]));
    let peer: std::net::SocketAddr = "192.0.2.2:40000".parse().expect("addr");
    let mut out = Vec::new();
    d.decode_tcp(peer, Some(EXPORT_MS), &ipfix(0, 0, &[t256()]), &mut out);
    d.expire(EXPORT_MS + 61_000);
    assert_eq!(d.totals.templates_expired, 1);
    assert_eq!(d.tcp_sessions[&peer].template_count(), 1);
    d.tcp_closed(peer);
    assert!(d.tcp_sessions.is_empty());
}

#[test]
fn tcp_sessions_from_one_address_keep_their_own_templates() {
    let mut d = Decoder::new(DecoderConfig::default());
    let a: std::net::SocketAddr = "192.0.2.2:40000".parse().expect("addr");
    let b: std::net::SocketAddr = "192.0.2.2:40001".parse().expect("addr");
    let mut out = Vec::new();
    d.decode_tcp(a, Some(EXPORT_MS), &ipfix(0, 0, &[t256()]), &mut out);
    d.decode_tcp(b, Some(EXPORT_MS), &ipfix(0, 0, &[t256()]), &mut out);
    d.tcp_closed(a);
    assert_eq!(d.tcp_sessions[&b].template_count(), 1);
    assert!(d.exporters.is_empty(), "TCP sessions are not UDP exporters");
}

#[test]
fn sampling_from_options_data_upscales_counters() {
    let mut d = Decoder::new(DecoderConfig::for_files());
    // Options template 400: scope selectorId (302, 8 bytes); samplingPacketInterval (305) = 1,
    // samplingPacketSpace (306) = 99 → 1 in 100.
    let opt = set(3, &opt_tmpl(400, &[(302, 8)], &[(305, 4), (306, 4)]));
    let mut od = 7u64.to_be_bytes().to_vec();
    od.extend_from_slice(&1u32.to_be_bytes());
    od.extend_from_slice(&99u32.to_be_bytes());
    // Data template 256 plus selectorId.
    let t = set(2, &tmpl(256, &[(8, 4, 0), (1, 4, 0), (302, 8, 0)]));
    let mut r = vec![10, 0, 0, 1];
    r.extend_from_slice(&1500u32.to_be_bytes());
    r.extend_from_slice(&7u64.to_be_bytes());
    let out = decode(
        &mut d,
        "192.0.2.1",
        &ipfix(0, 0, &[opt, set(400, &od), t, set(256, &r)]),
    );
    assert_eq!(d.totals.options_records, 1);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].sampling_interval, 100);
    assert_eq!(
        (out[0].octets_exported, out[0].octets),
        (Some(1500), 150_000)
    );
    // A configured override wins.
    let mut cfg = DecoderConfig::for_files();
    cfg.sampling_overrides.insert(ip("192.0.2.1"), 10);
    let mut d = Decoder::new(cfg);
    let out = decode(
        &mut d,
        "192.0.2.1",
        &ipfix(0, 0, &[t256(), set(256, &rec256([10, 0, 0, 1], 3))]),
    );
    assert_eq!((out[0].sampling_interval, out[0].octets), (10, 30));
}

#[test]
fn times_become_absolute_utc_ms() {
    let mut d = Decoder::new(DecoderConfig::for_files());
    // v9: FIRST/LAST_SWITCHED (22/21) relative to sysUptime 100 s.
    let t = set(0, &[1, 0, 0, 3, 0, 8, 0, 4, 0, 22, 0, 4, 0, 21, 0, 4]);
    let mut r = vec![10, 0, 0, 1];
    r.extend_from_slice(&40_000u32.to_be_bytes());
    r.extend_from_slice(&99_000u32.to_be_bytes());
    let out = decode(&mut d, "192.0.2.1", &v9(0, 0, 100_000, &[t, set(256, &r)]));
    assert_eq!(out[0].flow_start_ms, Some(EXPORT_MS - 60_000));
    assert_eq!(out[0].flow_end_ms, Some(EXPORT_MS - 1_000));
    assert_eq!(out[0].time_source, schemas::TimeSource::SysUptime);
    // IPFIX: flowStartDeltaMicroseconds (158) counts back from the export time.
    let t = set(2, &tmpl(300, &[(8, 4, 0), (158, 4, 0), (159, 4, 0)]));
    let mut r = vec![10, 0, 0, 1];
    r.extend_from_slice(&5_000_000u32.to_be_bytes());
    r.extend_from_slice(&2_000_000u32.to_be_bytes());
    let out = decode(&mut d, "192.0.2.1", &ipfix(0, 0, &[t, set(300, &r)]));
    assert_eq!(out[0].flow_start_ms, Some(EXPORT_MS - 5_000));
    assert_eq!(out[0].flow_end_ms, Some(EXPORT_MS - 2_000));
    // IPFIX: flowStartSysUpTime anchored on systemInitTimeMilliseconds from options data.
    let opt = set(3, &opt_tmpl(401, &[(144, 4)], &[(160, 8)]));
    let mut od = 1u32.to_be_bytes().to_vec();
    od.extend_from_slice(&((EXPORT_MS - 3_600_000) as u64).to_be_bytes());
    let t = set(2, &tmpl(302, &[(8, 4, 0), (22, 4, 0)]));
    let mut r = vec![10, 0, 0, 1];
    r.extend_from_slice(&1_000u32.to_be_bytes());
    let out = decode(
        &mut d,
        "192.0.2.9",
        &ipfix(0, 0, &[opt, set(401, &od), t, set(302, &r)]),
    );
    assert_eq!(out[0].flow_start_ms, Some(EXPORT_MS - 3_600_000 + 1_000));
    assert_eq!(out[0].time_source, schemas::TimeSource::SystemInit);
}

#[test]
fn clock_skew_is_flagged_and_corrected() {
    let cfg = DecoderConfig {
        clock_skew_threshold_ms: 60_000,
        ..DecoderConfig::for_files()
    };
    let mut d = Decoder::new(cfg);
    let t = set(2, &tmpl(300, &[(8, 4, 0), (152, 8, 0)]));
    let mut r = vec![10, 0, 0, 1];
    r.extend_from_slice(&((EXPORT_MS - 10_000) as u64).to_be_bytes());
    let mut out = Vec::new();
    // Received an hour after the exporter's clock says it sent.
    d.decode(
        ip("192.0.2.1"),
        Some(EXPORT_MS + 3_600_000),
        &ipfix(0, 0, &[t, set(300, &r)]),
        &mut out,
    );
    assert_eq!(out[0].clock_skew_ms, Some(-3_600_000));
    assert_eq!(out[0].flow_start_ms, Some(EXPORT_MS - 10_000 + 3_600_000));
    assert_eq!(d.totals.clock_skew_records, 1);
}

#[test]
fn unknown_enterprise_and_varlen_elements_are_kept() {
    let mut d = Decoder::new(DecoderConfig::for_files());
    // sourceIPv4Address, an enterprise element (PEN 9999, id 7, varlen), a reverse octet count.
    let t = set(
        2,
        &tmpl(310, &[(8, 4, 0), (0x8007, 65535, 9999), (0x8001, 8, 29305)]),
    );
    let mut r = vec![10, 0, 0, 1, 3, b'a', b'b', b'c'];
    r.extend_from_slice(&42u64.to_be_bytes());
    let out = decode(&mut d, "192.0.2.1", &ipfix(0, 0, &[t, set(310, &r)]));
    assert_eq!(out.len(), 1);
    let ext = &out[0].extensions;
    assert!(ext
        .iter()
        .any(|e| e.pen == 9999 && e.id == 7 && e.value == schemas::ExtValue::hex(b"abc")));
    assert!(ext.iter().any(|e| e.pen == 29305 && e.id == 1));
}

#[test]
fn v9_field_types_above_32767_are_not_enterprise() {
    let mut d = Decoder::new(DecoderConfig::for_files());
    // Cisco ASA NSEL uses NF_F_* types such as 33000 (0x80e8), 2 bytes long, with no PEN after.
    let t = set(0, &[1, 0, 0, 2, 0, 8, 0, 4, 0x80, 0xe8, 0, 2]);
    let out = decode(
        &mut d,
        "192.0.2.1",
        &v9(0, 0, 0, &[t, set(256, &[10, 0, 0, 1, 0, 5])]),
    );
    assert_eq!(out.len(), 1);
    assert!(out[0]
        .extensions
        .iter()
        .any(|e| e.id == 33000 && e.pen == 0));
}

#[test]
fn caps_allow_list_and_sequence_gaps_are_counted() {
    let mut cfg = DecoderConfig {
        max_templates_per_exporter: 1,
        allowed_exporters: vec!["192.0.2.0/24".into()],
        ..DecoderConfig::for_files()
    };
    cfg.validate().expect("valid config");
    let mut d = Decoder::new(cfg);
    decode(&mut d, "198.51.100.1", &ipfix(0, 0, &[t256()]));
    assert_eq!(d.totals.dropped_not_allowed, 1);
    decode(
        &mut d,
        "192.0.2.1",
        &ipfix(0, 0, &[t256(), set(2, &tmpl(257, &[(8, 4, 0)]))]),
    );
    assert_eq!(d.totals.templates_rejected_cap, 1);
    // IPFIX sequence numbers count data records: 0 records then seq 5 means 5 were lost.
    decode(&mut d, "192.0.2.1", &ipfix(0, 5, &[]));
    assert_eq!((d.totals.sequence_gaps, d.totals.lost_estimate), (1, 5));
}

#[test]
fn malformed_sets_are_counted_and_the_rest_still_decodes() {
    let mut d = Decoder::new(DecoderConfig::for_files());
    decode(&mut d, "192.0.2.1", &ipfix(0, 0, &[t256()]));
    // A set whose length runs past the message, after a good set.
    let mut m = ipfix(0, 0, &[set(256, &rec256([10, 0, 0, 1], 1))]);
    m.extend_from_slice(&[1, 0, 0, 200, 0, 0]);
    let len = m.len() as u16;
    m[2..4].copy_from_slice(&len.to_be_bytes());
    let out = decode(&mut d, "192.0.2.1", &m);
    assert_eq!(out.len(), 1);
    assert_eq!(d.totals.errors, 1);
    // Unsupported versions and runts.
    decode(&mut d, "192.0.2.1", &[0, 7, 1, 2]);
    decode(&mut d, "192.0.2.1", &[0]);
    assert_eq!(
        (d.totals.unsupported_version, d.totals.short_messages),
        (1, 1)
    );
}
