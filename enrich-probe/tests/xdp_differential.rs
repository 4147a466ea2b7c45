//! Differential test: real captures written into a veth inside a namespace this test creates give,
//! per flow, the same counters in the kernel program (native XDP, generic XDP, TC) as in its Rust
//! twin (`enrich_probe::flow::FlowTable`) fed the same frames.
//!
//! Compared per flow: packets, bytes, TCP flags, resets, retransmissions, sequence errors,
//! next_seq/seq_valid, size histogram, client direction, verdict and packets sent to user space;
//! per run: the counters (packets, accounted, not_accounted by reason, new flows, records sent).
//! Not compared: first_ns/last_ns and the inter-arrival histogram, because the kernel stamps
//! packets with its own clock as they arrive and the twin uses the capture's timestamps; for those
//! the test checks that the kernel put exactly packets−1 samples per direction in the histogram.
//!
//! Frames go out through an AF_PACKET socket, in capture order, in batches that wait for the
//! kernel to have seen the previous batch (no loss on the veth). Frames the socket refuses
//! (longer than the veth MTU) are given to neither side.
//!
//! Captures: every classic-pcap Ethernet file under `$SNF_TESTDATA/apps/ndpi` (default
//! `../shared/testdata` from the workspace root). Needs root; prints SKIPPED otherwise.

mod xdp_support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use enrich_probe::flow::{FlowState, FlowTable, LinkType, SendConfig};
use enrich_probe::kernel::{AttachMode, EventReader, Probe, ProbeOptions};
use xdp_support::*;

const BATCH: u64 = 128;

fn captures(root: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "pcap") {
                out.push(p);
            }
        }
    }
    let mut v = Vec::new();
    walk(root, &mut v);
    v.sort();
    v
}

/// Field-by-field differences, time-derived fields left out (see the module docs).
fn diff(k: &FlowState, t: &FlowState) -> Vec<String> {
    let mut d = Vec::new();
    macro_rules! cmp {
        ($($f:ident),*) => {$(
            if k.$f != t.$f {
                d.push(format!("{}: kernel {:?} twin {:?}", stringify!($f), k.$f, t.$f));
            }
        )*};
    }
    cmp!(
        packets,
        bytes,
        tcp_flags,
        resets,
        retrans,
        seq_errors,
        next_seq,
        seq_valid,
        size_hist,
        client_dir,
        verdict,
        sent_to_user
    );
    for dir in 0..2 {
        let samples: u64 = k.iat_hist[dir].iter().map(|&n| u64::from(n)).sum();
        if k.packets[dir] > 0 && samples != k.packets[dir] - 1 {
            d.push(format!(
                "iat_hist[{dir}] holds {samples} samples for {} packets",
                k.packets[dir]
            ));
        }
    }
    d
}

struct FileResult {
    frames: u64,
    flows: usize,
    problems: Vec<String>,
}

fn drain(ev: &mut EventReader) {
    ev.drain(|_| {});
}

fn replay(ns: &NetNs, mode: AttachMode, frames: &[Frame]) -> FileResult {
    let mut problems = Vec::new();
    let opts = ProbeOptions {
        flow_capacity: 65_536,
        ring_bytes: 8 << 20,
        ..ProbeOptions::default()
    };
    let mut probe = Probe::load(&opts).expect("loading the program");
    probe
        .attach(&ns.rx, mode)
        .unwrap_or_else(|e| panic!("attach in {mode}: {e}"));
    let mut events = probe.take_events().expect("ring buffer");
    let tx = PacketSocket::open(&ns.tx).expect("AF_PACKET socket");
    let mut twin: FlowTable<()> = FlowTable::new(1 << 20, SendConfig::default());

    let mut sent = 0u64;
    let mut refused = 0u64;
    for f in frames {
        if f.data.len() < 14 || tx.send(&f.data).is_err() {
            refused += 1;
            continue;
        }
        twin.account(f.ts_ns, &f.data, LinkType::Ethernet);
        sent += 1;
        if sent % BATCH == 0 {
            let c = wait_for_packets(&probe, sent, Duration::from_secs(5));
            if c.packets < sent {
                problems.push(format!("kernel saw {} of {sent} frames sent", c.packets));
                return FileResult {
                    frames: sent,
                    flows: 0,
                    problems,
                };
            }
            drain(&mut events);
        }
    }
    let c = wait_for_packets(&probe, sent, Duration::from_secs(5));
    drain(&mut events);
    if refused > 0 {
        eprintln!("    ({refused} frames refused by the socket, given to neither side)");
    }

    let t = &twin.counters;
    let mut check = |what: &str, k: u64, tw: u64| {
        if k != tw {
            problems.push(format!("counter {what}: kernel {k} twin {tw}"));
        }
    };
    check("packets", c.packets, t.packets);
    check("accounted", c.accounted, t.accounted);
    check("not_accounted non_ip", c.not_accounted_non_ip, t.na_non_ip);
    check(
        "not_accounted malformed",
        c.not_accounted_malformed,
        t.na_malformed,
    );
    check(
        "not_accounted fragment",
        c.not_accounted_fragment,
        t.na_fragment,
    );
    check("new_flows", c.new_flows, t.new_flows);
    check("events", c.events, t.events);
    if mode != AttachMode::Tc {
        // Under TC the stack has already stripped the outer VLAN tag: 4 bytes fewer per copy.
        check("event_bytes", c.event_bytes, t.event_bytes);
    }
    check("ring_full", c.ring_full, 0);
    check("map_full", c.map_full, 0);

    let mut kernel_flows = std::collections::HashMap::new();
    probe
        .for_each_flow(|k, st| {
            kernel_flows.insert(*k, *st);
        })
        .expect("reading the flow map");
    let flows = twin.len();
    if kernel_flows.len() != flows {
        problems.push(format!("flows: kernel {} twin {flows}", kernel_flows.len()));
    }
    for (key, entry) in twin.iter() {
        let canon = key.canonical();
        match kernel_flows.get(key) {
            None => problems.push(format!("{canon:?}: missing in the kernel")),
            Some(k) => {
                let d = diff(k, &entry.state);
                if !d.is_empty() {
                    problems.push(format!("{canon:?}: {}", d.join("; ")));
                }
            }
        }
    }
    FileResult {
        frames: sent,
        flows,
        problems,
    }
}

fn run(mode: AttachMode, tag: &str) {
    if !privileged("xdp_differential") {
        return;
    }
    let root = testdata().join("apps/ndpi");
    let files = captures(&root);
    if files.is_empty() {
        eprintln!(
            "\n*** SKIPPED xdp_differential: no captures under {} ***\n",
            root.display()
        );
        return;
    }
    let ns = NetNs::create(tag).expect("creating the namespace and veth pair");
    let _inside = ns.enter().expect("entering the namespace");
    let mut failed = Vec::new();
    let (mut files_run, mut frames, mut flows) = (0, 0, 0);
    for path in &files {
        let name = path
            .strip_prefix(&root)
            .unwrap_or(path)
            .display()
            .to_string();
        let caps = match read_pcap_ethernet(path) {
            Ok(Some(c)) => c,
            Ok(None) => continue, // pcapng or not Ethernet: the kernel only ever sees Ethernet
            Err(e) => panic!("reading {name}: {e}"),
        };
        let r = replay(&ns, mode, &caps);
        files_run += 1;
        frames += r.frames;
        flows += r.flows;
        let verdict = if r.problems.is_empty() {
            "same"
        } else {
            "DIFFERENT"
        };
        eprintln!(
            "{mode:>12} {name:<55} {:>6} frames {:>5} flows  {verdict}",
            r.frames, r.flows
        );
        for p in r.problems.iter().take(5) {
            eprintln!("    {p}");
        }
        if !r.problems.is_empty() {
            failed.push((name, r.problems.len()));
        }
    }
    eprintln!("{mode}: {files_run} captures, {frames} frames, {flows} flows compared");
    assert!(
        files_run >= 10,
        "only {files_run} Ethernet captures found under {}",
        root.display()
    );
    assert!(
        failed.is_empty(),
        "{mode}: kernel and twin differ on {failed:?}"
    );
}

#[test]
fn native_xdp_matches_twin() {
    run(AttachMode::XdpNative, "N");
}

#[test]
fn generic_xdp_matches_twin() {
    run(AttachMode::XdpGeneric, "G");
}

#[test]
fn tc_matches_twin() {
    run(AttachMode::Tc, "C");
}
