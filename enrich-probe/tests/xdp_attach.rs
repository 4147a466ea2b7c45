//! The tap's kernel program attaches in native XDP, generic XDP and TC on a veth inside a network
//! namespace this test creates (and removes), counts well-formed packets into flows and garbage
//! frames into `not_accounted` by reason, and keeps running.
//!
//! Needs root; prints SKIPPED otherwise. Run alone with
//! `cargo test -p supernetflow-enrich-probe --test xdp_attach`.

mod xdp_support;

use std::time::Duration;

use enrich_probe::kernel::{
    run_live, AttachMode, EventReader, KernelCounters, LiveOptions, Probe, ProbeOptions,
    SendReason, TwinKey, Verdict,
};
use xdp_support::*;

const A4: [u8; 4] = [10, 0, 0, 1];
const B4: [u8; 4] = [10, 0, 0, 2];
const A6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const B6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

/// An IPv6 extension header of kind-agnostic shape: next header, length 0 (8 bytes).
fn ext(next: u8) -> Vec<u8> {
    vec![next, 0, 0, 0, 0, 0, 0, 0]
}

/// Frames the program must count into flows.
fn good_frames() -> Vec<Vec<u8>> {
    let mut v = Vec::new();
    // IPv4 TCP handshake start and data.
    v.push(eth(
        0x0800,
        &ipv4(6, A4, B4, &tcp(40000, 443, 1000, 0x02, &[])),
    ));
    v.push(eth(
        0x0800,
        &ipv4(6, B4, A4, &tcp(443, 40000, 5000, 0x12, &[])),
    ));
    v.push(eth(
        0x0800,
        &ipv4(6, A4, B4, &tcp(40000, 443, 1001, 0x18, &[7; 100])),
    ));
    // IPv6 UDP behind QinQ (outer 802.1ad 100, inner 802.1Q 200).
    let mut qinq = MAC.to_vec();
    qinq.extend_from_slice(&[0x88, 0xa8, 0x00, 100, 0x81, 0x00, 0x00, 200, 0x86, 0xdd]);
    qinq.extend_from_slice(&ipv6(17, A6, B6, &udp(5353, 53, &[1; 30])));
    v.push(qinq);
    // IPv6 with 4 extension headers (the most allowed), then TCP.
    let mut rest = ext(43);
    rest.extend(ext(60));
    rest.extend(ext(44)); // fragment header, offset 0: first fragment
    rest.extend(ext(6));
    rest.extend(tcp(1, 2, 0, 0x02, &[]));
    v.push(eth(0x86dd, &ipv6(0, A6, B6, &rest)));
    // ICMP: accounted with ports 0.
    v.push(eth(0x0800, &ipv4(1, A4, B4, &[8, 0, 0, 0, 0, 1, 0, 1])));
    v
}

/// Garbage frames and the reason each must be counted under.
fn bad_frames() -> Vec<(&'static str, Vec<u8>, Reason)> {
    use Reason::*;
    let mut v = Vec::new();
    let tcp_ok = tcp(40000, 443, 1, 0x10, &[]);
    v.push(("ARP", eth(0x0806, &[0; 28]), NonIp));
    let mut three_tags = MAC.to_vec();
    three_tags.extend_from_slice(&[0x81, 0, 0, 1, 0x81, 0, 0, 2, 0x81, 0, 0, 3, 0x08, 0, 0x45]);
    v.push(("three VLAN tags", three_tags, NonIp));
    v.push(("IPv4 cut at 10 bytes", eth(0x0800, &[0x45; 10]), Malformed));
    let mut bad_ihl = ipv4(6, A4, B4, &tcp_ok);
    bad_ihl[0] = 0x43;
    v.push(("IHL 3", eth(0x0800, &bad_ihl), Malformed));
    let mut bad_ver = ipv4(6, A4, B4, &tcp_ok);
    bad_ver[0] = 0x55;
    v.push(("IPv4 version 5", eth(0x0800, &bad_ver), Malformed));
    let mut big_ihl = ipv4(6, A4, B4, &tcp_ok);
    big_ihl[0] = 0x4f; // 60-byte header, total length 40
    v.push(("total length < IHL", eth(0x0800, &big_ihl), Malformed));
    let mut doff2 = tcp_ok.clone();
    doff2[12] = 0x20;
    v.push((
        "TCP data offset 2",
        eth(0x0800, &ipv4(6, A4, B4, &doff2)),
        Malformed,
    ));
    let mut doff15 = tcp_ok.clone();
    doff15[12] = 0xf0;
    v.push((
        "TCP data offset past the datagram",
        eth(0x0800, &ipv4(6, A4, B4, &doff15)),
        Malformed,
    ));
    v.push((
        "TCP header cut",
        eth(0x0800, &ipv4(6, A4, B4, &tcp_ok[..12])),
        Malformed,
    ));
    v.push((
        "UDP header cut",
        eth(0x0800, &ipv4(17, A4, B4, &[0, 53, 0])),
        Malformed,
    ));
    let mut frag = ipv4(17, A4, B4, &udp(1, 2, &[0; 8]));
    frag[6] = 0x00;
    frag[7] = 0x10; // offset 16 × 8 bytes
    v.push(("IPv4 non-first fragment", eth(0x0800, &frag), Fragment));
    let mut f6 = vec![17, 0, 0x00, 0x08, 0, 0, 0, 1]; // fragment header, offset 1
    f6.extend(udp(1, 2, &[0; 8]));
    v.push((
        "IPv6 non-first fragment",
        eth(0x86dd, &ipv6(44, A6, B6, &f6)),
        Fragment,
    ));
    let mut five = Vec::new();
    for next in [60, 60, 60, 60, 6] {
        five.extend(ext(next));
    }
    five.extend(tcp(1, 2, 0, 0x02, &[]));
    v.push((
        "five IPv6 extension headers",
        eth(0x86dd, &ipv6(0, A6, B6, &five)),
        Malformed,
    ));
    let long_ext = vec![6, 200, 0, 0, 0, 0, 0, 0]; // claims 1608 bytes
    v.push((
        "IPv6 extension header past the frame",
        eth(0x86dd, &ipv6(60, A6, B6, &long_ext)),
        Malformed,
    ));
    v.push(("IPv6 cut at 20 bytes", eth(0x86dd, &[0x60; 20]), Malformed));
    let mut v6ver = ipv6(17, A6, B6, &udp(1, 2, &[]));
    v6ver[0] = 0x40;
    v.push(("IPv6 version 4", eth(0x86dd, &v6ver), Malformed));
    v
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reason {
    NonIp,
    Malformed,
    Fragment,
}

/// Deterministic pseudo-random frames (xorshift), some with IP ethertypes so the parser digs in.
fn random_frames(n: usize) -> Vec<Vec<u8>> {
    let mut s: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    (0..n)
        .map(|i| {
            let len = 15 + (next() % 200) as usize;
            let mut f: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let et: u16 = match i % 4 {
                0 => 0x0800,
                1 => 0x86dd,
                2 => 0x8100,
                _ => next() as u16,
            };
            f[12..14].copy_from_slice(&et.to_be_bytes());
            if i % 4 == 0 {
                f[14] = 0x40 | (f[14] & 0x0f); // IPv4 version, random IHL
            } else if i % 4 == 1 {
                f[14] = 0x60;
            }
            f
        })
        .collect()
}

fn run(mode: AttachMode, tag: &str) {
    if !privileged("xdp_attach") {
        return;
    }
    let ns = NetNs::create(tag).expect("creating the namespace and veth pair");
    let _inside = ns.enter().expect("entering the namespace");
    let opts = ProbeOptions {
        flow_capacity: 1024,
        ring_bytes: 1 << 20,
        ..ProbeOptions::default()
    };
    let mut probe = Probe::load(&opts).expect("loading the program");
    let got = probe
        .attach(&ns.rx, mode)
        .unwrap_or_else(|e| panic!("attach in {mode}: {e}"));
    assert_eq!(got, mode);
    let mut events = probe.take_events().expect("ring buffer");
    let tx = PacketSocket::open(&ns.tx).expect("AF_PACKET socket");

    let good = good_frames();
    let bad = bad_frames();
    let random = random_frames(3000);
    let mut sent = 0u64;
    for f in good.iter().chain(bad.iter().map(|(_, f, _)| f)) {
        tx.send(f).expect("sending a frame");
        sent += 1;
    }
    let c = wait_for_packets(&probe, sent, Duration::from_secs(5));
    assert_eq!(
        c.packets, sent,
        "frames reaching the program in {mode}: {c:?}"
    );
    let want = |r: Reason| bad.iter().filter(|(_, _, x)| *x == r).count() as u64;
    let expected = KernelCounters {
        packets: sent,
        accounted: good.len() as u64,
        not_accounted_non_ip: want(Reason::NonIp),
        not_accounted_malformed: want(Reason::Malformed),
        not_accounted_fragment: want(Reason::Fragment),
        map_full: 0,
        ring_full: 0,
        // Every good frame is among its flow's first 8 packets, so each is copied.
        events: good.len() as u64,
        event_bytes: c.event_bytes,
        new_flows: 4,
    };
    if c != expected {
        // Say which garbage frame went astray: send them one by one.
        for (what, f, reason) in &bad {
            let before = probe.counters().expect("counters");
            tx.send(f).expect("sending a frame");
            let after = wait_for_packets(&probe, before.packets + 1, Duration::from_secs(2));
            eprintln!(
                "{what}: expected {reason:?}; non_ip +{} malformed +{} fragment +{} accounted +{}",
                after.not_accounted_non_ip - before.not_accounted_non_ip,
                after.not_accounted_malformed - before.not_accounted_malformed,
                after.not_accounted_fragment - before.not_accounted_fragment,
                after.accounted - before.accounted,
            );
        }
        panic!("counters in {mode}:\n got {c:?}\nwant {expected:?}");
    }

    // The IPv4 TCP flow: client is 10.0.0.1 (sent the SYN), low endpoint, direction 0.
    let mut key = TwinKey {
        protocol: 6,
        low_port: 40000,
        high_port: 443,
        ..TwinKey::default()
    };
    key.low_addr[10..].copy_from_slice(&[0xff, 0xff, 10, 0, 0, 1]);
    key.high_addr[10..].copy_from_slice(&[0xff, 0xff, 10, 0, 0, 2]);
    let st = probe
        .flow(&key)
        .expect("flow map")
        .expect("the TCP flow is in the map");
    assert_eq!(st.packets, [2, 1]);
    assert_eq!(st.bytes, [40 + 140, 40]);
    assert_eq!(st.tcp_flags, [0x1a, 0x12]);
    assert_eq!(st.client_dir, 0);
    assert_eq!(st.next_seq, [1101, 5001]);
    assert_eq!((st.retrans, st.seq_errors), ([0, 0], [0, 0]));
    assert_eq!(st.size_hist[0][0] + st.size_hist[0][2], 2);
    assert_eq!(st.sent_to_user, 3);
    // The QinQ flow keeps the inner VLAN id as its scope.
    let mut scopes = Vec::new();
    probe
        .for_each_flow(|k, _| scopes.push((k.protocol, k.scope)))
        .expect("iterating flows");
    scopes.sort();
    assert_eq!(scopes, vec![(1, 0), (6, 0), (6, 0), (17, 200)], "{mode}");

    let mut n = 0;
    events.wait(Duration::from_millis(50)).expect("poll");
    let stats = events.drain(|ev| {
        n += 1;
        assert!(ev.data.len() >= 14 && ev.data.len() as u32 <= ev.wire_len);
        assert!(ev.l4_off > ev.l3_off);
    });
    assert_eq!((stats.events, stats.undecodable), (good.len() as u64, 0));

    // Random garbage: never a crash, every packet counted one way or the other.
    for f in &random {
        tx.send(f).expect("sending a frame");
    }
    let total = sent + random.len() as u64;
    let c = wait_for_packets(&probe, total, Duration::from_secs(3));
    if mode == AttachMode::Tc {
        // Before TC ingress the stack already untags VLAN frames and drops those too short to
        // untag, so a few random 802.1Q frames never reach the classifier. XDP sees them all.
        assert!(
            c.packets <= total && c.packets + 50 >= total,
            "{mode}: {c:?}"
        );
    } else {
        assert_eq!(c.packets, total, "{mode}: {c:?}");
    }
    assert_eq!(
        c.accounted + c.not_accounted() + c.map_full,
        c.packets,
        "{mode}: {c:?}"
    );
    assert!(c.not_accounted() > 2000, "{mode}: {c:?}");
    eprintln!("{mode}: {c:?}");
}

#[test]
fn native_xdp() {
    run(AttachMode::XdpNative, "n");
}

#[test]
fn generic_xdp() {
    run(AttachMode::XdpGeneric, "g");
}

#[test]
fn tc_ingress() {
    run(AttachMode::Tc, "c");
}

/// XDP_DROP by default; `pass` (written at run time through the config map) lets frames reach the
/// stack. Observed with a packet socket on the receiving veth, which only sees what XDP passed.
#[test]
fn drop_by_default_pass_when_configured() {
    if !privileged("xdp_attach") {
        return;
    }
    let ns = NetNs::create("p").expect("creating the namespace and veth pair");
    let _inside = ns.enter().expect("entering the namespace");
    let mut opts = ProbeOptions {
        flow_capacity: 1024,
        ring_bytes: 1 << 16,
        ..ProbeOptions::default()
    };
    let mut probe = Probe::load(&opts).expect("loading the program");
    probe
        .attach(&ns.rx, AttachMode::XdpNative)
        .expect("attach in native XDP");
    let tap = TapSocket::open(&ns.rx).expect("packet socket on the receiving veth");
    let tx = PacketSocket::open(&ns.tx).expect("AF_PACKET socket");
    let frame = eth(0x0800, &ipv4(17, A4, B4, &udp(1000, 2000, &[0; 20])));
    for _ in 0..10 {
        tx.send(&frame).expect("sending a frame");
    }
    let c = wait_for_packets(&probe, 10, Duration::from_secs(5));
    assert_eq!(c.packets, 10);
    assert_eq!(
        tap.count(Duration::from_millis(200)),
        0,
        "dropped frames reached the stack"
    );

    opts.pass = true;
    probe.configure(&opts).expect("writing the configuration");
    for _ in 0..10 {
        tx.send(&frame).expect("sending a frame");
    }
    let c = wait_for_packets(&probe, 20, Duration::from_secs(5));
    assert_eq!(c.packets, 20);
    assert_eq!(
        tap.count(Duration::from_millis(200)),
        10,
        "passed frames missing from the stack"
    );
}

/// The first `first_packets` packets of a flow reach user space whole (up to `snap_len`); then
/// only what the verdict asks for: whole packets, headers (L4 header + `hdr_payload`), or nothing
/// once classified, for good.
#[test]
fn verdicts_select_what_reaches_user_space() {
    if !privileged("xdp_attach") {
        return;
    }
    let ns = NetNs::create("v").expect("creating the namespace and veth pair");
    let _inside = ns.enter().expect("entering the namespace");
    let opts = ProbeOptions {
        first_packets: 2,
        snap_len: 100,
        hdr_payload: 10,
        flow_capacity: 1024,
        ring_bytes: 1 << 16,
        ..ProbeOptions::default()
    };
    let mut probe = Probe::load(&opts).expect("loading the program");
    probe
        .attach(&ns.rx, AttachMode::XdpNative)
        .expect("attach in native XDP");
    let mut events = probe.take_events().expect("ring buffer");
    let tx = PacketSocket::open(&ns.tx).expect("AF_PACKET socket");
    let payload: Vec<u8> = (0..200u8).collect();
    let frame = eth(0x0800, &ipv4(17, A4, B4, &udp(1000, 2000, &payload)));
    let mut key = TwinKey {
        protocol: 17,
        low_port: 1000,
        high_port: 2000,
        ..TwinKey::default()
    };
    key.low_addr[10..].copy_from_slice(&[0xff, 0xff, 10, 0, 0, 1]);
    key.high_addr[10..].copy_from_slice(&[0xff, 0xff, 10, 0, 0, 2]);

    let mut sent = 0;
    let mut step = |probe: &mut Probe, verdict: Option<Verdict>, frames: u64| {
        if let Some(v) = verdict {
            probe.set_verdict(&key, v).expect("writing the verdict");
        }
        for _ in 0..frames {
            tx.send(&frame).expect("sending a frame");
        }
        sent += frames;
        wait_for_packets(probe, sent, Duration::from_secs(5));
        events.wait(Duration::from_millis(20)).expect("poll");
        let mut got = Vec::new();
        events.drain(|ev| {
            assert_eq!(ev.key, key);
            assert_eq!((ev.direction, ev.ip_len, ev.wire_len), (0, 228, 242));
            assert_eq!((ev.l3_off, ev.l4_off), (14, 34));
            assert_eq!(ev.data, &frame[..ev.data.len()]);
            got.push((ev.reason, ev.data.len()));
        });
        got
    };
    use SendReason::*;
    assert_eq!(
        step(&mut probe, None, 2),
        vec![(FirstPackets, 100), (FirstPackets, 100)]
    );
    assert_eq!(
        step(&mut probe, None, 1),
        vec![],
        "verdict 0 after the first packets"
    );
    assert_eq!(
        step(&mut probe, Some(Verdict::Classifying), 1),
        vec![(Classifying, 100)]
    );
    // Headers: 14 Ethernet + 20 IPv4 + 8 UDP + 10 payload bytes.
    assert_eq!(
        step(&mut probe, Some(Verdict::QoeHeaders), 1),
        vec![(Headers, 52)]
    );
    assert_eq!(step(&mut probe, Some(Verdict::Classified), 1), vec![]);
    assert_eq!(
        step(&mut probe, Some(Verdict::Classifying), 1),
        vec![],
        "classified is final"
    );
    let st = probe.flow(&key).expect("flow map").expect("the flow");
    assert_eq!((st.packets[0], st.sent_to_user, st.verdict), (7, 4, 3));
    let c = probe.counters().expect("counters");
    assert_eq!((c.events, c.event_bytes, c.ring_full), (4, 352, 0));
}

/// Wake-ups are batched: a reader asleep on the ring buffer is woken only every `wake_every`-th
/// record or once `wake_bytes` wait, and otherwise finds the records at its timeout.
#[test]
fn ring_wakeups_are_batched() {
    if !privileged("xdp_attach") {
        return;
    }
    let ns = NetNs::create("w").expect("creating the namespace and veth pair");
    let _inside = ns.enter().expect("entering the namespace");
    let mut opts = ProbeOptions {
        first_packets: 1000,
        wake_every: 1_000_000,
        wake_bytes: 1 << 30,
        flow_capacity: 1024,
        ring_bytes: 1 << 16,
        ..ProbeOptions::default()
    };
    let mut probe = Probe::load(&opts).expect("loading the program");
    probe
        .attach(&ns.rx, AttachMode::XdpNative)
        .expect("attach in native XDP");
    let mut events = probe.take_events().expect("ring buffer");
    let tx = std::sync::Arc::new(PacketSocket::open(&ns.tx).expect("AF_PACKET socket"));
    let frame = std::sync::Arc::new(eth(0x0800, &ipv4(17, A4, B4, &udp(1, 2, &[0; 16]))));
    let timeout = Duration::from_millis(1500);

    // Sends one frame 100 ms from now, while this thread sleeps in wait(); returns how long the
    // wait took and whether it saw data.
    let wait_for_one = |events: &mut EventReader| {
        let (tx, frame) = (tx.clone(), frame.clone());
        let sender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            tx.send(&frame).expect("sending a frame");
        });
        let t0 = std::time::Instant::now();
        let ready = events.wait(timeout).expect("poll");
        let took = t0.elapsed();
        sender.join().expect("sender thread");
        let n = events.drain(|_| {}).events;
        (took, ready, n)
    };

    let (took, ready, n) = wait_for_one(&mut events);
    assert!(
        took >= timeout - Duration::from_millis(100),
        "woken after {took:?} without a reason"
    );
    assert!(
        ready && n == 1,
        "the record waits for the reader: ready {ready}, {n} records"
    );

    opts.wake_every = 1;
    probe.configure(&opts).expect("configure");
    let (took, _, n) = wait_for_one(&mut events);
    assert!(
        took < Duration::from_millis(1000),
        "wake_every = 1: woken after {took:?}"
    );
    assert_eq!(n, 1);

    opts.wake_every = 1_000_000;
    opts.wake_bytes = 1;
    probe.configure(&opts).expect("configure");
    let (took, _, n) = wait_for_one(&mut events);
    assert!(
        took < Duration::from_millis(1000),
        "wake_bytes = 1: woken after {took:?}"
    );
    assert_eq!(n, 1);
}

/// The live loop hands over every record with a wall-clock time, lets the callback write
/// verdicts, snapshots the flow map, and stops on the shutdown flag.
#[test]
fn live_loop_delivers_records_and_snapshots() {
    if !privileged("xdp_attach") {
        return;
    }
    let ns = NetNs::create("l").expect("creating the namespace and veth pair");
    let _inside = ns.enter().expect("entering the namespace");
    let opts = ProbeOptions {
        flow_capacity: 1024,
        ring_bytes: 1 << 16,
        ..ProbeOptions::default()
    };
    let mut probe = Probe::load(&opts).expect("loading the program");
    probe
        .attach(&ns.rx, AttachMode::XdpAuto)
        .expect("attach in XDP");
    let mut events = probe.take_events().expect("ring buffer");
    let tx = PacketSocket::open(&ns.tx).expect("AF_PACKET socket");
    let shutdown = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stop = shutdown.clone();
    let sender = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        for i in 0..15u16 {
            // 12 packets of one flow, 3 of another.
            let sport = if i < 12 { 1000 } else { 1001 };
            tx.send(&eth(0x0800, &ipv4(17, A4, B4, &udp(sport, 53, &[0; 30]))))
                .expect("sending a frame");
        }
        std::thread::sleep(Duration::from_millis(300));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    });
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos() as u64;
    let mut per_port = std::collections::BTreeMap::new();
    let mut last_flows = Vec::new();
    let live = LiveOptions {
        poll: Duration::from_millis(20),
        scan_every: Duration::from_secs(60),
    };
    let stats = run_live(
        &mut probe,
        &mut events,
        &live,
        &shutdown,
        |probe, ev, unix_ns| {
            assert!(unix_ns.abs_diff(now) < 10_000_000_000, "{unix_ns} vs {now}");
            *per_port.entry(ev.key.low_port).or_insert(0) += 1;
            probe
                .set_verdict(&ev.key, Verdict::Classified)
                .expect("verdict from the callback");
        },
        |_, flows, counters| {
            assert_eq!(counters.packets, 15);
            last_flows = flows
                .iter()
                .map(|(k, st)| (k.low_port, st.packets[0]))
                .collect();
        },
    )
    .expect("live loop");
    sender.join().expect("sender thread");
    // Verdict 3 after the first record does not cut the first 8 packets short.
    assert_eq!(per_port, [(1000, 8), (1001, 3)].into_iter().collect());
    assert_eq!((stats.events, stats.undecodable, stats.scans), (11, 0, 1));
    last_flows.sort();
    assert_eq!(last_flows, vec![(1000, 12), (1001, 3)]);
}
