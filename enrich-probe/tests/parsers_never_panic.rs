//! Property tests: every parser of untrusted bytes returns (something or nothing) on any input,
//! never panics, and stays within its bounds. Random bytes, and real-looking messages with bytes
//! flipped or cut, since purely random bytes rarely get past the first checks.

use enrich_probe::classify::signatures::Signatures;
use enrich_probe::dpi::{dns, http, quic, rtp, tls};
use enrich_probe::flow::{parse, FlowTable, LinkType, Outcome, SendConfig};
use enrich_probe::{Output, Pipeline, ProbeConfig};
use proptest::prelude::*;

const LINKS: [LinkType; 3] = [LinkType::Ethernet, LinkType::RawIp, LinkType::LinuxSll];

/// An Ethernet + IPv4 + UDP/TCP frame whose bytes after the Ethernet header are `tail`.
fn frame(ethertype: u16, tail: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(tail);
    f
}

/// A plausible IPv4/UDP or TCP header followed by `payload`, with `mutate` (offset, xor) applied.
fn ip_packet(tcp: bool, payload: &[u8], mutate: &[(usize, u8)]) -> Vec<u8> {
    let l4 = if tcp { 20 } else { 8 };
    let total = 20 + l4 + payload.len();
    let mut p = vec![0x45, 0, (total >> 8) as u8, total as u8, 0, 0, 0x40, 0, 64];
    p.push(if tcp { 6 } else { 17 });
    p.extend_from_slice(&[0, 0, 10, 0, 0, 1, 192, 0, 2, 7]);
    if tcp {
        p.extend_from_slice(&[
            0x9c, 0x40, 0x01, 0xbb, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0,
        ]);
    } else {
        p.extend_from_slice(&[0x9c, 0x40, 0x01, 0xbb, 0, 0, 0, 0]);
    }
    p.extend_from_slice(payload);
    for &(at, x) in mutate {
        if !p.is_empty() {
            let i = at % p.len();
            p[i] ^= x;
        }
    }
    p
}

fn pipeline() -> Pipeline {
    let cfg = ProbeConfig {
        max_flows: 16,
        stats_interval_ns: 1_000,
        idle_timeout_ns: 5_000,
        send: SendConfig {
            snap_len: 65_535,
            ..SendConfig::default()
        },
        ..ProbeConfig::default()
    };
    Pipeline::new(cfg, Signatures::builtin().unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn frame_parser(bytes in proptest::collection::vec(any::<u8>(), 0..200), link in 0usize..3) {
        if let Ok(p) = parse(&bytes, LINKS[link]) {
            // The transport offset may lie past the captured bytes only by what IPv6 extension
            // headers claim (at most four of 2 KiB), as in the kernel, for protocols whose
            // header is never read; TCP and UDP headers were read, so they lie inside.
            prop_assert!(usize::from(p.l4_off) <= bytes.len() + 4 * 2048);
            if p.key.protocol == 6 || p.key.protocol == 17 {
                prop_assert!(usize::from(p.l4_off) + usize::from(p.l4_hdr).min(20) <= bytes.len());
            }
            prop_assert!(p.payload(&bytes, bytes.len()).len() <= bytes.len());
            prop_assert!(p.dir <= 1);
        }
    }

    #[test]
    fn mutated_packets_through_the_table_and_pipeline(
        payload in proptest::collection::vec(any::<u8>(), 0..300),
        mutate in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        tcp in any::<bool>(),
        ts in proptest::collection::vec(0u64..20_000, 1..8),
    ) {
        let ip = ip_packet(tcp, &payload, &mutate);
        let eth = frame(0x0800, &ip);
        let mut t: FlowTable<()> = FlowTable::new(8, SendConfig::default());
        let mut p = pipeline();
        let mut out = Vec::new();
        for (i, &ts) in ts.iter().enumerate() {
            let link = LINKS[i % 3];
            let f: &[u8] = if link == LinkType::Ethernet { &eth } else { &ip };
            if let Outcome::Accounted(a) = t.account(ts, f, link) {
                if let Some((_, cap)) = a.send {
                    prop_assert!(cap <= f.len());
                }
            }
            p.packet(ts, f, link, &mut out);
        }
        p.finish(&mut out);
        let records = out.iter().filter(|o| matches!(o, Output::Tap(_))).count();
        prop_assert_eq!(records as u64, p.table().counters.new_flows);
        prop_assert_eq!(t.counters.packets, ts.len() as u64);
    }

    #[test]
    fn tls(bytes in proptest::collection::vec(any::<u8>(), 0..600), cut in any::<usize>()) {
        let _ = tls::parse_tcp_stream(&bytes);
        let _ = tls::parse_handshake(&bytes, tls::Transport::Quic);
        // Behind a valid record header, so the ClientHello body is what is random.
        let mut rec = vec![0x16, 0x03, 0x01, (bytes.len() >> 8) as u8, bytes.len() as u8, 0x01];
        rec.extend_from_slice(&bytes);
        let _ = tls::parse_tcp_stream(&rec[..cut % (rec.len() + 1)]);
    }

    #[test]
    fn quic(bytes in proptest::collection::vec(any::<u8>(), 0..1400), version in prop_oneof![Just(1u32), Just(0x6b33_43cf), Just(0xff00_001d), any::<u32>()]) {
        let _ = quic::initial_crypto_frames(&bytes);
        let _ = quic::gquic_chlo_sni(&bytes);
        let mut long = vec![0xc3];
        long.extend_from_slice(&version.to_be_bytes());
        long.extend_from_slice(&bytes);
        let chunks = quic::initial_crypto_frames(&long);
        let mut s = quic::CryptoStream::default();
        for c in &chunks {
            s.add(c);
        }
        prop_assert!(s.contiguous().len() <= 16 * 1024);
        let mut at = 0;
        while quic::varint(&bytes, &mut at).is_some() {}
    }

    #[test]
    fn crypto_stream(chunks in proptest::collection::vec((any::<u64>(), proptest::collection::vec(any::<u8>(), 0..64)), 0..16)) {
        let mut s = quic::CryptoStream::default();
        for (offset, data) in chunks {
            s.add(&quic::CryptoChunk { offset: offset % 20_000, data });
        }
        prop_assert!(s.contiguous().len() <= 16 * 1024);
    }

    #[test]
    fn dns_message(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Some(a) = dns::parse_message(&bytes) {
            prop_assert!(a.qname.len() <= 256);
            prop_assert!(a.addrs.len() <= 64);
        }
        let mut cache = dns::DnsCache::new(4);
        if let Some(a) = dns::parse_response(&bytes) {
            for addr in &a.addrs {
                cache.insert(*addr, &a.qname);
            }
        }
        prop_assert!(cache.len() <= 4);
    }

    #[test]
    fn http_request(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = http::parse_request(&bytes);
        let mut req = b"GET / HTTP/1.1\r\nHost: ".to_vec();
        req.extend_from_slice(&bytes);
        let _ = http::parse_request(&req);
    }

    #[test]
    fn stun_rtp_zoom(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = rtp::parse_stun(&bytes);
        let _ = rtp::parse_media(&bytes);
        let _ = rtp::parse_zoom(&bytes, true);
        let _ = rtp::parse_zoom(&bytes, false);
        let mut stun = vec![0, 1, (bytes.len() >> 8) as u8, bytes.len() as u8, 0x21, 0x12, 0xa4, 0x42];
        stun.extend_from_slice(&[0; 12]);
        stun.extend_from_slice(&bytes);
        if let Some(s) = rtp::parse_stun(&stun) {
            prop_assert!(s.attributes.len() <= 64);
        }
    }

    #[test]
    fn capture_files(bytes in proptest::collection::vec(any::<u8>(), 0..400), magic in 0usize..4) {
        let heads: [&[u8]; 4] = [
            &[0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0],
            &[0xa1, 0xb2, 0x3c, 0x4d, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 101],
            &[0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 28, 0, 0, 0],
            &[],
        ];
        let mut file = heads[magic].to_vec();
        file.extend_from_slice(&bytes);
        let path = std::env::temp_dir().join(format!("snf-tap-prop-{}-{}.pcap", std::process::id(), magic));
        std::fs::write(&path, &file).unwrap();
        let mut counters = Default::default();
        let mut n = 0u64;
        let _ = enrich_probe::capture::read_capture(&path, &mut counters, |f| {
            n += 1;
            assert!(f.data.len() <= file.len());
        });
        let _ = std::fs::remove_file(&path);
        prop_assert_eq!(n, counters.frames);
    }
}

#[test]
fn ethertype_frames_of_every_kind() {
    for et in [0x0800u16, 0x86dd, 0x8100, 0x88a8, 0x0806, 0] {
        for len in 0..80 {
            let f = frame(et, &vec![0x45; len]);
            let _ = parse(&f, LinkType::Ethernet);
        }
    }
}
