//! One realistic value of each record, for tests, documentation and the field guide's examples.
//!
//! Together they fill every block: the tap record is a Netflix video flow, the super-flow a Call of
//! Duty match (gaming QoE), the application session a Zoom call (conferencing QoE). Addresses are
//! from the documentation and private ranges.

use crate::ext::{ExtValue, Extension};
use crate::flow::{Direction, FlowRecord, FlowVersion, TimeSource};
use crate::kind::{RecordKind, RecordState};
use crate::qoe::{BufferState, ConferencingQoe, GamingQoe, Qoe, QoeSample, VideoQoe};
use crate::session::{AppSession, SessionNetwork};
use crate::stats::FlowStats;
use crate::super_flow::{Enrichment, KeyMatch, MatchStatus, SuperFlow};
use crate::tap::{AppPlatform, AppType, DetectionMethod, TapKey, TapRecord};
use std::net::{IpAddr, Ipv4Addr};

const T0: i64 = 1_718_000_000_000; // 2024-06-10T06:13:20Z
const TAP: &str = "site1-mirror0";

fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

/// The sample of `kind`, as its JSON value (`serde_json::to_value`, as a sink would build it).
pub fn json(kind: RecordKind) -> serde_json::Value {
    let v = match kind {
        RecordKind::Flow => serde_json::to_value(flow_record()),
        RecordKind::Tap => serde_json::to_value(tap_record()),
        RecordKind::SuperFlow => serde_json::to_value(super_flow()),
        RecordKind::AppSession => serde_json::to_value(app_session()),
    };
    // The samples hold no map with non-string keys and no NaN: serialising cannot fail.
    v.unwrap_or_default()
}

/// The sample of `kind` as JSON text. Unlike [`json`], `f32` fields read as written (`0.97`, where
/// the value form holds the `f64` nearest the `f32`, 0.9700000286102295).
pub fn text(kind: RecordKind) -> String {
    let t = match kind {
        RecordKind::Flow => serde_json::to_string(&flow_record()),
        RecordKind::Tap => serde_json::to_string(&tap_record()),
        RecordKind::SuperFlow => serde_json::to_string(&super_flow()),
        RecordKind::AppSession => serde_json::to_string(&app_session()),
    };
    t.unwrap_or_default()
}

/// A router's IPFIX record of a Netflix video download (TCP, client 10.1.20.35, server 203.0.113.80).
pub fn flow_record() -> FlowRecord {
    let mut r = FlowRecord::empty(FlowVersion::Ipfix, v4(192, 0, 2, 1));
    r.observation_domain = 256;
    r.template_id = 260;
    r.sequence_number = 884_213;
    r.export_time_ms = T0 + 31_000;
    r.received_time_ms = T0 + 31_004;
    r.flow_start_ms = Some(T0 + 123);
    r.flow_end_ms = Some(T0 + 29_876);
    r.time_source = TimeSource::Absolute;
    r.clock_skew_ms = Some(-2_150);
    r.src_addr = Some(v4(203, 0, 113, 80));
    r.dst_addr = Some(v4(10, 1, 20, 35));
    r.src_port = Some(443);
    r.dst_port = Some(51_544);
    r.protocol = Some(6);
    r.direction = Some(Direction::Egress);
    r.octets = 38_115_000;
    r.packets = 26_200;
    r.octets_exported = Some(38_115);
    r.packets_exported = Some(26);
    r.sampling_interval = 1000;
    r.tcp_flags = Some(0x18);
    r.tos = Some(0);
    r.input_interface = Some(2);
    r.output_interface = Some(7);
    r.src_vlan = Some(20);
    r.dst_vlan = Some(20);
    r.src_as = Some(2906);
    r.dst_as = Some(64_500);
    r.src_mask = Some(24);
    r.dst_mask = Some(16);
    r.next_hop = Some(v4(10, 1, 0, 1));
    r.bgp_next_hop = Some(v4(192, 0, 2, 254));
    r.flow_end_reason = Some(2);
    r.extensions = vec![
        Extension {
            pen: 29_305,
            id: 1,
            name: Some("reverseOctetDeltaCount".into()),
            value: ExtValue::Unsigned(48_213),
        },
        Extension {
            pen: 9,
            id: 12_235,
            name: None,
            value: ExtValue::String("netflix".into()),
        },
    ];
    r.set_flow_key();
    r.set_record_id(3);
    r
}

fn netflix_key() -> TapKey {
    let mut k = TapKey {
        flow_key: String::new(),
        protocol: 6,
        client_addr: v4(10, 1, 20, 35),
        client_port: 51_544,
        server_addr: v4(203, 0, 113, 80),
        server_port: 443,
        vlan: Some(20),
    };
    k.set_flow_key();
    k
}

/// The tap's second report on the Netflix flow of [`flow_record`], with video QoE.
pub fn tap_record() -> TapRecord {
    let key = netflix_key();
    let mut t = TapRecord {
        schema_version: crate::SCHEMA_VERSION,
        record_id: String::new(),
        tap_id: TAP.into(),
        state: RecordState::Update,
        seq: 1,
        first_seen_ms: T0 + 120,
        last_seen_ms: T0 + 29_990,
        app: AppPlatform {
            app_type: AppType::VideoStreaming,
            provider: Some("netflix".into()),
            app_name: Some("Netflix".into()),
            client_os: Some("Android 14".into()),
            client_agent: Some("Netflix Android 8.120".into()),
            sni: Some("ipv4-c012-fra001-ix.1.oca.nflxvideo.net".into()),
            dns_name: Some("ipv4-c012-fra001-ix.1.oca.nflxvideo.net".into()),
            http_host: None,
            tls_fingerprint: Some("t13d1516h2_8daaf6152771_e5627efa2ab1".into()),
            alpn: vec!["h2".into(), "http/1.1".into()],
            detection_method: DetectionMethod::Sni,
            confidence: 0.97,
            detection_packets: 4,
        },
        stats: FlowStats {
            digest: key.flow_key.clone(),
            local_bytes: 48_213,
            other_bytes: 38_115_020,
            local_packets: 11_920,
            other_packets: 26_214,
            local_rate: 1_607.1,
            other_rate: 1_270_500.7,
            total_bytes: 38_163_233,
            total_packets: 38_134,
            tcp_resets: 0,
            tcp_retrans: 12,
            tcp_seq_errors: 3,
            detection_packets: 4,
            rtt_avg_ms: Some(18.4),
            rtt_min_ms: Some(11.2),
            rtt_max_ms: Some(64.9),
            jitter_ms: Some(2.1),
            loss_ratio: Some(0.0004),
        },
        qoe: Qoe {
            video: Some(VideoQoe {
                window_start_ms: T0,
                window_end_ms: T0 + 30_000,
                resolution: Some("1080p".into()),
                height_px: Some(1080),
                bitrate_kbps: Some(5_800),
                startup_delay_ms: Some(1_450),
                stalls: 1,
                stall_ms: 820,
                buffer_state: BufferState::Steady,
            }),
            gaming: None,
            conferencing: None,
        },
        session_id: Some(crate::AppSession::session_id_for(
            key.client_addr,
            "netflix",
            AppType::VideoStreaming,
            T0 + 120,
        )),
        key,
    };
    t.set_record_id();
    t
}

/// A router's NetFlow v9 record of a Call of Duty match (UDP 3074).
fn gaming_flow_record() -> FlowRecord {
    let mut r = FlowRecord::empty(FlowVersion::NetflowV9, v4(192, 0, 2, 1));
    r.observation_domain = 0;
    r.template_id = 300;
    r.sequence_number = 51_007;
    r.export_time_ms = T0 + 61_000;
    r.received_time_ms = T0 + 61_002;
    r.flow_start_ms = Some(T0 + 5_010);
    r.flow_end_ms = Some(T0 + 60_990);
    r.time_source = TimeSource::SysUptime;
    r.src_addr = Some(v4(10, 1, 20, 41));
    r.dst_addr = Some(v4(198, 51, 100, 128));
    r.src_port = Some(3074);
    r.dst_port = Some(3074);
    r.protocol = Some(17);
    r.direction = Some(Direction::Ingress);
    r.octets = 2_310_400;
    r.packets = 16_800;
    r.octets_exported = Some(2_310_400);
    r.packets_exported = Some(16_800);
    r.input_interface = Some(7);
    r.output_interface = Some(2);
    r.src_vlan = Some(20);
    r.src_as = Some(64_500);
    r.dst_as = Some(32_590);
    r.next_hop = Some(v4(192, 0, 2, 254));
    r.flow_end_reason = Some(2);
    r.set_flow_key();
    r.set_record_id(0);
    r
}

/// The Call of Duty flow joined with the tap's three reports on it.
pub fn super_flow() -> SuperFlow {
    let flow = gaming_flow_record();
    let digest = flow.flow_key.as_deref().unwrap_or_default().to_owned();
    let mut sf = SuperFlow {
        schema_version: crate::SCHEMA_VERSION,
        record_id: flow.record_id.as_str().to_owned(),
        enrichment_status: MatchStatus::Unmatched,
        app_type: AppType::Unknown,
        provider: None,
        app: Some(crate::shared::Shared::new(AppPlatform {
            app_type: AppType::Gaming,
            provider: Some("activision".into()),
            app_name: Some("Call of Duty: Warzone".into()),
            client_os: Some("PlayStation 5".into()),
            client_agent: None,
            sni: None,
            dns_name: Some("prod.demonware.net".into()),
            http_host: None,
            tls_fingerprint: None,
            alpn: Vec::new(),
            detection_method: DetectionMethod::Dns,
            confidence: 0.9,
            detection_packets: 6,
        })),
        stats: Some(FlowStats {
            digest,
            local_bytes: 1_240_200,
            other_bytes: 1_070_200,
            local_packets: 8_410,
            other_packets: 8_390,
            local_rate: 22_550.0,
            other_rate: 19_458.2,
            total_bytes: 2_310_400,
            total_packets: 16_800,
            tcp_resets: 0,
            tcp_retrans: 0,
            tcp_seq_errors: 0,
            detection_packets: 6,
            rtt_avg_ms: Some(31.5),
            rtt_min_ms: Some(24.0),
            rtt_max_ms: Some(142.0),
            jitter_ms: Some(4.2),
            loss_ratio: Some(0.002),
        }),
        qoe: Some(Qoe {
            video: None,
            gaming: Some(GamingQoe {
                window_start_ms: T0 + 30_000,
                window_end_ms: T0 + 60_000,
                latency_avg_ms: Some(31.5),
                latency_min_ms: Some(24.0),
                latency_max_ms: Some(142.0),
                lag_spikes: 2,
                jitter_ms: Some(4.2),
                loss_ratio: Some(0.002),
                tick_rate_hz: Some(60.0),
                tick_regularity: Some(0.97),
                choppy: Some(false),
                // As a cloud-gaming stream would report them (a native game's are null).
                bitrate_kbps: Some(18_500),
                frame_rate: Some(59.8),
                height_px: Some(1080),
            }),
            conferencing: None,
        }),
        enrichment: Enrichment {
            status: MatchStatus::Matched,
            confidence: 0.92,
            tap: Some(TAP.into()),
            matched_tap_records: 3,
            key_match: KeyMatch::Canonical,
            router_tap_ratio: Some(1.0),
        },
        flow: flow.into(),
    };
    sf.sync_columns();
    sf
}

fn zoom_sample(ts_ms: i64, flow_key: &str, jitter: f32, stutter: u32) -> QoeSample {
    QoeSample {
        ts_ms,
        flow_key: Some(flow_key.into()),
        qoe: Qoe {
            video: None,
            gaming: None,
            conferencing: Some(ConferencingQoe {
                window_start_ms: ts_ms - 30_000,
                window_end_ms: ts_ms,
                jitter_ms: Some(jitter),
                loss_ratio: Some(0.011),
                frame_rate: Some(27.5),
                stutter_events: stutter,
                dropouts: 0,
                mos: Some(4.1),
                media: vec!["audio".into(), "video".into()],
                streams: 4,
            }),
        },
    }
}

/// A Zoom call's update report: three flows, two QoE windows since the previous report.
pub fn app_session() -> AppSession {
    let media_key = TapKey {
        flow_key: String::new(),
        protocol: 17,
        client_addr: v4(10, 1, 20, 57),
        client_port: 62_011,
        server_addr: v4(198, 51, 100, 40),
        server_port: 8801,
        vlan: Some(20),
    }
    .canonical();
    let media_key = format!("{:016x}", media_key.hash64());
    let mut s = AppSession {
        schema_version: crate::SCHEMA_VERSION,
        record_id: String::new(),
        session_id: String::new(),
        state: RecordState::Update,
        seq: 4,
        client_addr: v4(10, 1, 20, 57),
        provider: "zoom".into(),
        app_type: AppType::Conferencing,
        app_name: Some("Zoom Meetings".into()),
        client_os: Some("macOS 14.5".into()),
        client_agent: Some("Zoom 6.0.11".into()),
        tap: Some(TAP.into()),
        start_ms: T0 - 90_000,
        last_ms: T0 + 29_950,
        member_flows: 3,
        network: SessionNetwork {
            stats: FlowStats {
                digest: String::new(),
                local_bytes: 21_400_000,
                other_bytes: 25_900_000,
                local_packets: 24_100,
                other_packets: 27_800,
                local_rate: 178_300.0,
                other_rate: 215_800.0,
                total_bytes: 47_300_000,
                total_packets: 51_900,
                tcp_resets: 1,
                tcp_retrans: 4,
                tcp_seq_errors: 0,
                detection_packets: 9,
                rtt_avg_ms: Some(38.2),
                rtt_min_ms: Some(30.1),
                rtt_max_ms: Some(95.0),
                jitter_ms: Some(6.8),
                loss_ratio: Some(0.011),
            },
            router_octets: 47_112_000,
            router_packets: 51_650,
            router_flow_records: 9,
        },
        qoe_series: vec![
            zoom_sample(T0, &media_key, 6.1, 0),
            zoom_sample(T0 + 30_000, &media_key, 7.4, 2),
        ],
    };
    s.set_ids();
    s
}
