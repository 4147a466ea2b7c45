//! Round trip of the tap's IPFIX export: tap records encoded with `schemas::ipfix::Encoder` (what
//! `supernetflow probe --export` sends), decoded by the collector like any exporter's messages,
//! and turned back with `schemas::ipfix::tap_record_from_flow`, equal the records sent — field for
//! field, over UDP-sized and TCP-sized messages, IPv4 and IPv6, with and without optional blocks.

mod ipfix_common;

use ipfix_common::collect;
use proptest::prelude::*;
use schemas::ipfix::{tap_record_from_flow, EncoderConfig};
use schemas::{BufferState, DetectionMethod, RecordKind, TapRecord};
use std::net::IpAddr;

fn round_trip(records: &[TapRecord], cfg: EncoderConfig) -> Vec<TapRecord> {
    collect(RecordKind::Tap, records, cfg)
        .iter()
        .map(|f| match tap_record_from_flow(f) {
            Some(Ok(t)) => t,
            Some(Err(e)) => panic!("{e}: {f:?}"),
            None => panic!("not recognised as a tap record: {f:?}"),
        })
        .collect()
}

fn variants() -> Vec<TapRecord> {
    let base = schemas::sample::tap_record();
    let mut v6 = base.clone();
    v6.key.client_addr = "2001:db8::10".parse().unwrap_or(v6.key.client_addr);
    v6.key.server_addr = "2001:db8:ffff::1".parse().unwrap_or(v6.key.server_addr);
    v6.key.vlan = None;
    v6.key.set_flow_key();
    // base's digest is its flow key (left out, the decoder restores it); v6 keeps base's, which
    // now differs from its key, so it is sent.
    assert_eq!(base.stats.digest, base.key.flow_key);
    assert_ne!(v6.stats.digest, v6.key.flow_key);
    v6.set_record_id();
    let mut bare = base.clone();
    bare.app = Default::default();
    bare.qoe = Default::default();
    bare.stats.rtt_avg_ms = None;
    bare.stats.rtt_min_ms = None;
    bare.stats.rtt_max_ms = None;
    bare.stats.jitter_ms = None;
    bare.stats.loss_ratio = None;
    bare.seq = 7;
    bare.set_record_id();
    let mut conf = base.clone();
    conf.app.detection_method = DetectionMethod::Rtp;
    conf.app.alpn = vec!["h2".into(), "a,b \"quoted\"".into(), String::new()];
    conf.app.sni = Some("x".repeat(600));
    conf.qoe.video = None;
    // Blocks taken from the other samples, so the test follows the QoE types as they grow.
    conf.qoe.conferencing = schemas::sample::app_session()
        .qoe_series
        .iter()
        .find_map(|q| q.qoe.conferencing.clone());
    assert!(
        conf.qoe.conferencing.is_some(),
        "the session sample has a conferencing block"
    );
    conf.qoe.gaming = schemas::sample::super_flow().qoe.and_then(|q| q.gaming);
    assert!(
        conf.qoe.gaming.is_some(),
        "the super-flow sample has a gaming block"
    );
    conf.set_record_id();
    vec![base, v6, bare, conf]
}

#[test]
fn every_variant_comes_back_equal_over_udp_and_tcp_sized_messages() {
    let recs = variants();
    for cfg in [
        EncoderConfig::default(),
        EncoderConfig {
            max_message: 65_535,
            template_refresh_ms: 0,
            reduced_size: true,
            ..EncoderConfig::default()
        },
    ] {
        let back = round_trip(&recs, cfg.clone());
        assert_eq!(back.len(), recs.len());
        for (a, b) in recs.iter().zip(&back) {
            assert_eq!(a, b, "config {cfg:?}");
        }
    }
}

#[test]
fn router_records_are_not_taken_for_tap_records() {
    let f = schemas::sample::flow_record();
    assert!(tap_record_from_flow(&f).is_none());
}

fn state() -> impl Strategy<Value = BufferState> {
    prop_oneof![
        Just(BufferState::Unknown),
        Just(BufferState::Steady),
        Just(BufferState::Stalled)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_records_come_back_equal(
        n in 1usize..40,
        v6 in any::<bool>(),
        port in any::<u16>(),
        bytes in any::<u64>(),
        rate in any::<f64>().prop_filter("finite", |f| f.is_finite()),
        rtt in proptest::option::of(0f32..10_000.0),
        vlan in proptest::option::of(0u16..4096),
        sni in proptest::option::of("[ -~]{0,300}"),
        video in proptest::option::of((0u16..4320, 0u32..100, state())),
        first in 0i64..4_000_000_000_000,
    ) {
        let base = schemas::sample::tap_record();
        let mut recs = Vec::new();
        for i in 0..n {
            let mut r = base.clone();
            if v6 {
                r.key.client_addr = IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, i as u16 + 1]);
                r.key.server_addr = IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 1, 1]);
            }
            r.key.client_port = port.wrapping_add(i as u16);
            r.key.vlan = vlan;
            r.key.set_flow_key();
            r.stats.local_bytes = bytes;
            r.stats.local_rate = rate;
            r.stats.rtt_min_ms = rtt;
            r.app.sni = sni.clone();
            r.first_seen_ms = first;
            r.last_seen_ms = first + i as i64;
            r.qoe.video = match (video, base.qoe.video.clone()) {
                (Some((h, stalls, buffer_state)), Some(mut v)) => {
                    v.window_start_ms = first;
                    v.window_end_ms = first + 1000;
                    v.resolution = Some(format!("{h}p"));
                    v.height_px = Some(h);
                    v.bitrate_kbps = None;
                    v.stalls = stalls;
                    v.stall_ms = stalls * 10;
                    v.buffer_state = buffer_state;
                    Some(v)
                }
                _ => None,
            };
            r.seq = i as u32;
            r.set_record_id();
            recs.push(r);
        }
        let back = round_trip(&recs, EncoderConfig::default());
        prop_assert_eq!(back, recs);
    }
}
