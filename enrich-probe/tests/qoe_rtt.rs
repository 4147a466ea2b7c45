//! TCP RTT against tshark's `tcp.analysis.ack_rtt` on the TLS and HTTP captures: per flow, the
//! median of the tap's data/ACK samples must be within 5 % of the median of tshark's.
//!
//! TCP timestamps (passive ping's rule): tshark has no field for it, so the test applies the rule
//! itself to tshark's decode of the option (`tcp.options.timestamp.tsval` / `tsecr`, frame times
//! and flags): a different parser of the packets and an independent, unbounded implementation of
//! the matching. Per flow and half (the endpoint whose TSvals are echoed), the tap's median must
//! be within 5 % of it. That checks the tap's option parsing, its matching and its bounds, and
//! that the kernel's header snap carries the options; not the rule itself, which is pping's by
//! definition (the test also prints the flow's `ack_rtt` median beside it, for context).
//!
//! Both use the same rule (an ACK that acknowledges exactly the end of a segment seen before,
//! measured from that segment), so they differ only where the tap did not see a packet: the tap
//! is fed what the kernel program would send (first packets whole, then headers while the RTT is
//! measured, up to `rtt_samples` samples per flow).

mod common;

use enrich_probe::classify::signatures::Signatures;
use enrich_probe::offline::run_files;
use enrich_probe::{Pipeline, ProbeConfig};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::Command;

const CAPTURES: &[&str] = &[
    "ndpi/tls/443-firefox.pcap",
    "ndpi/tls/long_tls_certificate.pcap",
    "ndpi/tls/tls_2_reasms.pcapng",
    "ndpi/tls/tls_alert.pcap",
    "ndpi/tls/tls_esni_sni_both.pcap",
    "ndpi/tls/tls_port_80.pcapng",
    "ndpi/tls/tls_1.3_unidirectional_client.pcapng",
    "ndpi/dns/dns_doh.pcap",
    "ndpi/dns/dns_dot.pcap",
    "ndpi/video_streaming/quickplay.pcap",
    "ndpi/video_streaming/1kxun.pcap",
    "ndpi/video_streaming/instagram.pcap",
    "ndpi/conferencing_voip/signal.pcap",
    "ndpi/conferencing_voip/facebook.pcap",
];

fn median(v: &mut [f64]) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
    }
}

/// Each key's sample count and median, keys in order (keys without samples left out).
fn sorted_medians<K: Ord + Copy + std::hash::Hash>(
    m: &HashMap<K, Vec<f64>>,
) -> Vec<(K, usize, f64)> {
    let mut out: Vec<_> = m
        .iter()
        .filter_map(|(k, v)| Some((*k, v.len(), median(&mut v.clone())?)))
        .collect();
    out.sort_by_key(|e| e.0);
    out
}

/// tshark's ack_rtt samples per flow (lower endpoint first), ms.
fn tshark_rtt(file: &Path) -> Option<HashMap<(SocketAddr, SocketAddr), Vec<f64>>> {
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(file)
        .args([
            "-Y",
            "tcp.analysis.ack_rtt",
            "-T",
            "fields",
            "-E",
            "separator=,",
            "-e",
            "ip.src",
            "-e",
            "ipv6.src",
            "-e",
            "tcp.srcport",
            "-e",
            "ip.dst",
            "-e",
            "ipv6.dst",
            "-e",
            "tcp.dstport",
            "-e",
            "tcp.analysis.ack_rtt",
        ])
        .output()
        .ok()?;
    let mut m: HashMap<_, Vec<f64>> = HashMap::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() < 7 {
            continue;
        }
        let src = if f[0].is_empty() { f[1] } else { f[0] };
        let dst = if f[3].is_empty() { f[4] } else { f[3] };
        let (Ok(s), Ok(sp), Ok(d), Ok(dp), Ok(rtt)) = (
            src.parse::<IpAddr>(),
            f[2].parse::<u16>(),
            dst.parse::<IpAddr>(),
            f[5].parse::<u16>(),
            f[6].parse::<f64>(),
        ) else {
            continue;
        };
        let (a, b) = (SocketAddr::new(s, sp), SocketAddr::new(d, dp));
        let k = if a <= b { (a, b) } else { (b, a) };
        m.entry(k).or_default().push(rtt * 1000.0);
    }
    Some(m)
}

/// The tap's median per flow, ms, and its sample count.
fn tap_rtt(file: &Path) -> HashMap<(SocketAddr, SocketAddr), (f64, u64)> {
    let mut p = Pipeline::new(
        ProbeConfig::default(),
        Signatures::builtin().expect("signatures"),
    );
    p.keep_flow_qoe();
    run_files(&mut p, &[file.to_path_buf()], |_| Ok(())).expect("capture reads");
    let mut m = HashMap::new();
    for k in p.take_kept() {
        let Some(t) = &k.qoe.tcp else {
            continue;
        };
        let Some(med) = t.samples.median_ms() else {
            continue;
        };
        let (a, ap) = k.key.sender(0);
        let (b, bp) = k.key.sender(1);
        let (a, b) = (SocketAddr::new(a, ap), SocketAddr::new(b, bp));
        let key = if a <= b { (a, b) } else { (b, a) };
        m.insert(key, (med, t.samples.count));
    }
    m
}

#[test]
fn tcp_rtt_median_agrees_with_tshark() {
    let Some(td) = common::testdata("qoe_rtt") else {
        return;
    };
    if Command::new("tshark").arg("-v").output().is_err() {
        eprintln!("SKIPPED qoe_rtt: tshark not installed");
        return;
    }
    let (mut flows, mut ok) = (0, 0);
    let mut failures = Vec::new();
    println!(
        "{:<30} {:>47} {:>9} {:>9} {:>11} {:>11} {:>7}",
        "capture", "flow", "n tshark", "n tap", "med tshark", "med tap", "diff %"
    );
    for c in CAPTURES {
        let f = td.join("apps").join(c);
        let name = Path::new(c)
            .file_name()
            .map_or("", |n| n.to_str().unwrap_or(""));
        let Some(ts) = tshark_rtt(&f) else {
            failures.push(format!("{c}: tshark failed"));
            continue;
        };
        let tap = tap_rtt(&f);
        for (k, n, tm) in sorted_medians(&ts) {
            flows += 1;
            let flow = format!("{} ↔ {}", k.0, k.1);
            match tap.get(&k) {
                Some(&(mm, mn)) => {
                    let diff = if tm > 0.0 {
                        (mm - tm) / tm * 100.0
                    } else {
                        0.0
                    };
                    let good = (mm - tm).abs() <= 0.05 * tm.max(1e-3);
                    if good {
                        ok += 1;
                    } else {
                        failures.push(format!("{c}: {flow} median {tm:.3} vs {mm:.3}"));
                    }
                    println!(
                        "{name:<30} {flow:>47} {n:>9} {mn:>9} {tm:>11.3} {mm:>11.3} {diff:>7.2}"
                    );
                }
                None => {
                    failures.push(format!("{c}: {flow} no tap samples"));
                    println!(
                        "{name:<30} {flow:>47} {n:>9} {:>9} {tm:>11.3} {:>11}",
                        0, "-"
                    );
                }
            }
        }
    }
    println!("\nflows compared {flows}, median within 5 % {ok}");
    for f in &failures {
        println!("MISMATCH {f}");
    }
    assert!(flows > 0);
    assert!(failures.is_empty(), "{} mismatches", failures.len());
}

type Half = (SocketAddr, SocketAddr, SocketAddr);

/// pping's rule on tshark's decode: per (flow, sender of the TSvals) the samples, ms.
fn tshark_ts_rtt(file: &Path) -> Option<HashMap<Half, Vec<f64>>> {
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(file)
        .args([
            "-Y",
            "tcp.options.timestamp.tsval",
            "-T",
            "fields",
            "-E",
            "separator=,",
        ])
        .args([
            "-e",
            "frame.time_epoch",
            "-e",
            "ip.src",
            "-e",
            "ipv6.src",
            "-e",
            "tcp.srcport",
        ])
        .args([
            "-e",
            "ip.dst",
            "-e",
            "ipv6.dst",
            "-e",
            "tcp.dstport",
            "-e",
            "tcp.flags",
        ])
        .args([
            "-e",
            "tcp.options.timestamp.tsval",
            "-e",
            "tcp.options.timestamp.tsecr",
        ])
        .output()
        .ok()?;
    // Per (sender, receiver): TSvals first seen (value → time), in order, and the last one
    // recorded.
    let mut pending: HashMap<(SocketAddr, SocketAddr), Vec<(u32, f64)>> = HashMap::new();
    let mut last: HashMap<(SocketAddr, SocketAddr), u32> = HashMap::new();
    let mut m: HashMap<Half, Vec<f64>> = HashMap::new();
    let later = |a: u32, b: u32| (a.wrapping_sub(b) as i32) > 0;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() < 10 {
            continue;
        }
        let src = if f[1].is_empty() { f[2] } else { f[1] };
        let dst = if f[4].is_empty() { f[5] } else { f[4] };
        let flags = u16::from_str_radix(f[7].trim_start_matches("0x"), 16).unwrap_or(0);
        let (Ok(t), Ok(s), Ok(sp), Ok(d), Ok(dp), Ok(tsval), Ok(tsecr)) = (
            f[0].parse::<f64>(),
            src.parse::<IpAddr>(),
            f[3].parse::<u16>(),
            dst.parse::<IpAddr>(),
            f[6].parse::<u16>(),
            f[8].parse::<u32>(),
            f[9].parse::<u32>(),
        ) else {
            continue;
        };
        let (a, b) = (SocketAddr::new(s, sp), SocketAddr::new(d, dp));
        let flow = if a <= b { (a, b) } else { (b, a) };
        // The echo of the other side's values.
        if flags & 0x10 != 0 && tsecr != 0 {
            if let Some(list) = pending.get_mut(&(b, a)) {
                if let Some(&(_, t0)) = list.iter().find(|(v, _)| *v == tsecr) {
                    m.entry((flow.0, flow.1, b))
                        .or_default()
                        .push((t - t0) * 1000.0);
                }
                list.retain(|(v, _)| later(*v, tsecr));
            }
        }
        if last.get(&(a, b)).is_none_or(|l| later(tsval, *l)) {
            last.insert((a, b), tsval);
            pending.entry((a, b)).or_default().push((tsval, t));
        }
    }
    Some(m)
}

#[test]
fn tcp_timestamp_rtt_agrees_with_the_rule_on_tshark_decode() {
    let Some(td) = common::testdata("qoe_rtt") else {
        return;
    };
    if Command::new("tshark").arg("-v").output().is_err() {
        eprintln!("SKIPPED qoe_rtt: tshark not installed");
        return;
    }
    let (mut halves, mut ok, mut flows_used) = (0, 0, 0);
    let mut failures = Vec::new();
    println!(
        "{:<30} {:>47} {:>22} {:>6} {:>6} {:>10} {:>10} {:>10}",
        "capture", "flow", "TSvals of", "n ts", "n tap", "med tshark", "med tap", "ack_rtt"
    );
    for c in CAPTURES {
        let f = td.join("apps").join(c);
        let name = Path::new(c)
            .file_name()
            .map_or("", |n| n.to_str().unwrap_or(""));
        let (Some(ts), Some(ack)) = (tshark_ts_rtt(&f), tshark_rtt(&f)) else {
            failures.push(format!("{c}: tshark failed"));
            continue;
        };
        let mut p = Pipeline::new(
            ProbeConfig::default(),
            Signatures::builtin().expect("signatures"),
        );
        p.keep_flow_qoe();
        run_files(&mut p, std::slice::from_ref(&f), |_| Ok(())).expect("capture reads");
        let mut tap: HashMap<Half, (f64, u64)> = HashMap::new();
        for k in p.take_kept() {
            let Some(t) = &k.qoe.ts else {
                continue;
            };
            let (a, ap) = k.key.sender(0);
            let (b, bp) = k.key.sender(1);
            let (a, b) = (SocketAddr::new(a, ap), SocketAddr::new(b, bp));
            let flow = if a <= b { (a, b) } else { (b, a) };
            for (dir, sender) in [(0u8, a), (1, b)] {
                if let Some(med) = t.half(dir).median_ms() {
                    tap.insert((flow.0, flow.1, sender), (med, t.half(dir).count));
                }
            }
            // The flow's RTT is the timestamps' when both sides send them.
            if t.both() && t.samples.count > 0 {
                flows_used += 1;
                let r = k.qoe.rtt().map(|r| r.count);
                if r != Some(t.samples.count) {
                    failures.push(format!(
                        "{c}: {a} ↔ {b} reports {r:?} samples, not the timestamps'"
                    ));
                }
            }
        }
        for (k, n, tm) in sorted_medians(&ts) {
            halves += 1;
            let flow = format!("{} ↔ {}", k.0, k.1);
            let am = ack
                .get(&(k.0, k.1))
                .and_then(|v| median(&mut v.clone()))
                .map_or("-".to_string(), |m| format!("{m:.3}"));
            match tap.get(&k) {
                Some(&(mm, mn)) => {
                    if (mm - tm).abs() <= 0.05 * tm.max(1e-3) {
                        ok += 1;
                    } else {
                        failures.push(format!(
                            "{c}: {flow} TSvals of {} median {tm:.3} vs {mm:.3}",
                            k.2
                        ));
                    }
                    println!(
                        "{name:<30} {flow:>47} {:>22} {n:>6} {mn:>6} {tm:>10.3} {mm:>10.3} {am:>10}",
                        k.2.to_string()
                    );
                }
                None => {
                    failures.push(format!("{c}: {flow} TSvals of {}: no tap samples", k.2));
                    println!(
                        "{name:<30} {flow:>47} {:>22} {n:>6} {:>6} {tm:>10.3} {:>10} {am:>10}",
                        k.2.to_string(),
                        0,
                        "-"
                    );
                }
            }
        }
    }
    println!(
        "\nhalves compared {halves}, median within 5 % {ok}; flows whose RTT is the timestamps' {flows_used}"
    );
    for f in &failures {
        println!("MISMATCH {f}");
    }
    assert!(halves > 0 && flows_used > 0);
    assert!(failures.is_empty(), "{} mismatches", failures.len());
}
