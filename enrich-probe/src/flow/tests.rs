//! The accounting twin on crafted frames: one test per rule of ACCOUNTING.md.

use super::*;
use etherparse::PacketBuilder;

const A: [u8; 4] = [10, 0, 0, 1];
const B: [u8; 4] = [192, 0, 2, 7];
const MS: u64 = 1_000_000;

/// TCP frame A:40000 → B:443 (`to_b`) or back, with flags (SYN 0x02, ACK 0x10, FIN 0x01, RST 0x04).
fn tcp(to_b: bool, seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let (s, d, sp, dp) = if to_b {
        (A, B, 40000, 443)
    } else {
        (B, A, 443, 40000)
    };
    let mut b = PacketBuilder::ethernet2([1; 6], [2; 6])
        .ipv4(s, d, 64)
        .tcp(sp, dp, seq, 65535);
    if flags & 0x02 != 0 {
        b = b.syn();
    }
    if flags & 0x10 != 0 {
        b = b.ack(1);
    }
    if flags & 0x01 != 0 {
        b = b.fin();
    }
    if flags & 0x04 != 0 {
        b = b.rst();
    }
    let mut v = Vec::new();
    b.write(&mut v, payload).unwrap();
    v
}

fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    PacketBuilder::ethernet2([1; 6], [2; 6])
        .ipv4(A, B, 64)
        .udp(sport, dport)
        .write(&mut v, payload)
        .unwrap();
    v
}

fn table() -> FlowTable<()> {
    FlowTable::new(1024, SendConfig::default())
}

fn only(t: &FlowTable<()>) -> FlowState {
    assert_eq!(t.len(), 1);
    t.iter().next().map(|(_, e)| e.state).unwrap()
}

#[test]
fn tcp_counters_and_sequence_tracking() {
    let mut t = table();
    t.account(0, &tcp(true, 1000, 0x02, &[]), LinkType::Ethernet);
    t.account(MS, &tcp(false, 5000, 0x12, &[]), LinkType::Ethernet);
    t.account(2 * MS, &tcp(true, 1001, 0x10, &[]), LinkType::Ethernet);
    t.account(
        3 * MS,
        &tcp(true, 1001, 0x10, &[7; 100]),
        LinkType::Ethernet,
    );
    // Retransmission of the same 100 bytes, then a hole of 50 bytes.
    t.account(
        4 * MS,
        &tcp(true, 1001, 0x10, &[7; 100]),
        LinkType::Ethernet,
    );
    t.account(5 * MS, &tcp(true, 1151, 0x10, &[7; 10]), LinkType::Ethernet);
    t.account(6 * MS, &tcp(false, 5001, 0x04, &[]), LinkType::Ethernet);
    let s = only(&t);
    // A (10.0.0.1) is the lower address: direction 0, and the client.
    assert_eq!(s.client_dir, 0);
    assert_eq!(s.packets, [5, 2]);
    assert_eq!(s.bytes, [40 + 40 + 140 + 140 + 50, 40 + 40]);
    assert_eq!(s.tcp_flags, [0x12, 0x16]);
    assert_eq!(s.resets, [0, 1]);
    assert_eq!(s.retrans, [1, 0]);
    assert_eq!(s.seq_errors, [1, 0]);
    assert_eq!(s.next_seq, [1161, 5001]);
    assert_eq!(s.seq_valid, [1, 1]);
    assert_eq!(s.first_ns, [0, MS]);
    assert_eq!(s.last_ns, [5 * MS, 6 * MS]);
    assert_eq!(s.size_hist[0][0], 3);
    assert_eq!(s.size_hist[0][2], 2);
    // Inter-arrival: 2 ms, then 1 ms three times (≤ 1 ms bucket 2, ≤ 10 ms bucket 3).
    assert_eq!(s.iat_hist[0][2], 3);
    assert_eq!(s.iat_hist[0][3], 1);
    assert_eq!(s.iat_hist[1][3], 1);
    assert_eq!(t.counters.accounted, 7);
    assert_eq!(t.counters.new_flows, 1);
}

#[test]
fn syn_ack_first_makes_its_receiver_the_client() {
    let mut t = table();
    t.account(0, &tcp(false, 5000, 0x12, &[]), LinkType::Ethernet);
    // The SYN-ACK goes B → A (direction 1), so A (direction 0) is the client.
    assert_eq!(only(&t).client_dir, 0);
    let mut t = table();
    t.account(0, &tcp(false, 5000, 0x10, &[1]), LinkType::Ethernet);
    assert_eq!(only(&t).client_dir, 1);
}

#[test]
fn timestamps_going_back_leave_last_ns_and_iat_alone() {
    let mut t = table();
    t.account(10 * MS, &udp(5000, 53, &[0; 20]), LinkType::Ethernet);
    t.account(5 * MS, &udp(5000, 53, &[0; 20]), LinkType::Ethernet);
    t.account(12 * MS, &udp(5000, 53, &[0; 20]), LinkType::Ethernet);
    let s = only(&t);
    assert_eq!(s.first_ns[0], 10 * MS);
    assert_eq!(s.last_ns[0], 12 * MS);
    assert_eq!(s.packets[0], 3);
    // Only 10 → 12 ms counts (2 ms: the ≤ 10 ms bucket).
    assert_eq!(s.iat_hist[0].iter().sum::<u32>(), 1);
    assert_eq!(s.iat_hist[0][3], 1);
}

#[test]
fn vlan_tags_and_padding_do_not_count_as_bytes() {
    let mut v = Vec::new();
    PacketBuilder::ethernet2([1; 6], [2; 6])
        .single_vlan(etherparse::VlanId::try_new(42).unwrap())
        .ipv4(A, B, 64)
        .udp(1, 2)
        .write(&mut v, &[0; 4])
        .unwrap();
    v.extend_from_slice(&[0; 14]); // Ethernet padding
    let mut t = table();
    let Outcome::Accounted(a) = t.account(0, &v, LinkType::Ethernet) else {
        panic!("not accounted");
    };
    assert_eq!(a.parsed.key.scope, 42);
    assert_eq!(a.parsed.ip_len, 32);
    assert_eq!(only(&t).bytes, [32, 0]);
    // The payload view stops at the IP length, not at the padding.
    assert_eq!(a.parsed.payload(&v, v.len()).len(), 4);
}

#[test]
fn what_is_not_accounted() {
    let mut t = table();
    let mut arp = vec![0u8; 42];
    arp[12] = 0x08;
    arp[13] = 0x06;
    assert_eq!(
        t.account(0, &arp, LinkType::Ethernet),
        Outcome::NotAccounted(NotAccounted::NonIp)
    );
    assert_eq!(
        t.account(0, &arp[..10], LinkType::Ethernet),
        Outcome::NotAccounted(NotAccounted::Malformed)
    );
    // Non-first IPv4 fragment.
    let mut frag = udp(1, 2, &[0; 16]);
    frag[14 + 6] = 0x00;
    frag[14 + 7] = 0x10;
    assert_eq!(
        t.account(0, &frag, LinkType::Ethernet),
        Outcome::NotAccounted(NotAccounted::Fragment)
    );
    // A first fragment (MF set, offset 0) has ports and counts.
    let mut first = udp(1, 2, &[0; 16]);
    first[14 + 6] = 0x20;
    assert!(matches!(
        t.account(0, &first, LinkType::Ethernet),
        Outcome::Accounted(_)
    ));
    // Bad IHL; TCP data offset < 5.
    let mut bad = udp(1, 2, &[0; 16]);
    bad[14] = 0x44;
    assert_eq!(
        t.account(0, &bad, LinkType::Ethernet),
        Outcome::NotAccounted(NotAccounted::Malformed)
    );
    let mut doff = tcp(true, 1, 0x10, &[]);
    doff[14 + 20 + 12] = 0x40;
    assert_eq!(
        t.account(0, &doff, LinkType::Ethernet),
        Outcome::NotAccounted(NotAccounted::Malformed)
    );
    assert_eq!(t.counters.na_non_ip, 1);
    assert_eq!(t.counters.na_malformed, 3);
    assert_eq!(t.counters.na_fragment, 1);
}

fn ipv6_with_ext(n_ext: usize, frag_offset: u16) -> Vec<u8> {
    // Header types in order: hop-by-hop first, destination options after, a fragment header
    // last when `frag_offset` is set.
    let ty = |i: usize| {
        if i == n_ext {
            17
        } else if i + 1 == n_ext && frag_offset != 0 {
            44
        } else if i == 0 {
            0
        } else {
            60
        }
    };
    let mut f = vec![2u8; 12];
    f.extend_from_slice(&[0x86, 0xdd]);
    let plen = (8 * n_ext + 8) as u16;
    f.extend_from_slice(&[0x60, 0, 0, 0]);
    f.extend_from_slice(&plen.to_be_bytes());
    f.push(ty(0));
    f.push(64);
    f.extend_from_slice(&[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    f.extend_from_slice(&[0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    for i in 0..n_ext {
        f.extend_from_slice(&[ty(i + 1), 0]);
        if ty(i) == 44 {
            f.extend_from_slice(&(frag_offset << 3).to_be_bytes());
            f.extend_from_slice(&[0, 0, 0, 1]);
        } else {
            f.extend_from_slice(&[0; 6]);
        }
    }
    f.extend_from_slice(&[0x13, 0x88, 0x00, 0x35, 0, 8, 0, 0]);
    f
}

#[test]
fn ipv6_extension_headers_are_bounded() {
    let mut t = table();
    for n in 0..=4 {
        let Outcome::Accounted(a) = t.account(0, &ipv6_with_ext(n, 0), LinkType::Ethernet) else {
            panic!("{n} extension headers not accounted");
        };
        assert_eq!(a.parsed.ip_len, 40 + 8 * n as u32 + 8);
        assert_eq!((a.parsed.key.low_port, a.parsed.key.high_port), (5000, 53));
    }
    assert_eq!(
        t.account(0, &ipv6_with_ext(5, 0), LinkType::Ethernet),
        Outcome::NotAccounted(NotAccounted::Malformed)
    );
    assert_eq!(
        t.account(0, &ipv6_with_ext(2, 3), LinkType::Ethernet),
        Outcome::NotAccounted(NotAccounted::Fragment)
    );
}

#[test]
fn raw_ip_and_linux_sll() {
    let eth = udp(5000, 53, &[1, 2, 3]);
    let ip = &eth[14..];
    let mut sll = vec![0, 0, 0, 1, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x08, 0x00];
    sll.extend_from_slice(ip);
    let mut t = table();
    t.account(0, &eth, LinkType::Ethernet);
    t.account(1, ip, LinkType::RawIp);
    t.account(2, &sll, LinkType::LinuxSll);
    assert_eq!(only(&t).packets, [3, 0]);
    assert_eq!(
        t.account(3, &[0x50, 0, 0], LinkType::RawIp),
        Outcome::NotAccounted(NotAccounted::NonIp)
    );
}

#[test]
fn send_rule_first_packets_then_verdict() {
    let mut t = table();
    // A jumbo frame, longer than the snap, so that the snap decides the length.
    let f = udp(5000, 9999, &[0; 3000]);
    let mut sent = Vec::new();
    for i in 0..10 {
        let Outcome::Accounted(a) = t.account(i, &f, LinkType::Ethernet) else {
            panic!("not accounted");
        };
        sent.push(a.send);
    }
    assert!(sent[..8]
        .iter()
        .all(|s| *s == Some((SendReason::FirstPackets, DEFAULT_SNAP_LEN as usize))));
    assert_eq!(sent[8], None);
    let key = t.iter().next().map(|(k, _)| *k).unwrap();
    let set = |t: &mut FlowTable<()>, v| t.get_mut(&key).map(|e| e.state.verdict = v);
    set(&mut t, VERDICT_CLASSIFYING);
    assert!(matches!(t.account(11, &f, LinkType::Ethernet),
        Outcome::Accounted(a) if a.send == Some((SendReason::Classifying, DEFAULT_SNAP_LEN as usize))));
    set(&mut t, VERDICT_HEADERS);
    // Headers: Ethernet 14 + IPv4 20 + UDP 8 + 64 payload bytes.
    assert!(matches!(t.account(12, &f, LinkType::Ethernet),
        Outcome::Accounted(a) if a.send == Some((SendReason::Headers, 106))));
    set(&mut t, VERDICT_CLASSIFIED);
    assert!(matches!(t.account(13, &f, LinkType::Ethernet),
        Outcome::Accounted(a) if a.send.is_none()));
    assert_eq!(only(&t).sent_to_user, 10);
    assert_eq!(t.counters.events, 10);
    // A frame shorter than the snap length is sent whole.
    let small = udp(1, 2, &[0; 4]);
    assert!(matches!(t.account(14, &small, LinkType::Ethernet),
        Outcome::Accounted(a) if a.send == Some((SendReason::FirstPackets, small.len()))));
}

#[test]
fn full_table_evicts_the_oldest_and_counts() {
    let mut t: FlowTable<()> = FlowTable::new(8, SendConfig::default());
    for p in 0..9u16 {
        t.account(u64::from(p), &udp(1000 + p, 53, &[]), LinkType::Ethernet);
    }
    assert_eq!(t.len(), 8);
    assert_eq!(t.counters.evicted, 1);
    let ev = t.take_evicted();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].0.low_port.min(ev[0].0.high_port), 53);
    assert_eq!(ev[0].1.state.first_ns[0], 0);
}

#[test]
fn state_layout_matches_the_kernel() {
    use std::mem::{offset_of, size_of};
    assert_eq!(size_of::<FlowState>(), 240);
    assert_eq!(offset_of!(FlowState, tcp_flags), 64);
    assert_eq!(offset_of!(FlowState, resets), 68);
    assert_eq!(offset_of!(FlowState, seq_valid), 100);
    assert_eq!(offset_of!(FlowState, size_hist), 104);
    assert_eq!(offset_of!(FlowState, iat_hist), 168);
    assert_eq!(offset_of!(FlowState, client_dir), 232);
    assert_eq!(offset_of!(FlowState, sent_to_user), 236);
    assert_eq!(size_of::<TwinKey>(), 48);
}

#[test]
fn buckets() {
    use super::state::{iat_bucket, size_bucket};
    assert_eq!(
        [64, 65, 128, 256, 512, 1024, 1514, 9000, 9001].map(size_bucket),
        [0, 1, 1, 2, 3, 4, 5, 6, 7]
    );
    assert_eq!(
        [0, 10_000, 10_001, 1_000_000, 10_000_000_000, 10_000_000_001].map(iat_bucket),
        [0, 0, 1, 2, 6, 7]
    );
}
