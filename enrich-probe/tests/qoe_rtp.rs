//! RTP stream statistics against tshark's `-z rtp,streams` on the conferencing captures (Zoom,
//! WhatsApp, Meet, Discord, Signal, Teams, plain RTP): per stream (source, destination, SSRC),
//! the tap's packet count and loss must equal tshark's, and its jitter must be within 5 % of
//! tshark's where tshark computes one.
//!
//! What tshark can decode: its heuristic RTP dissector (`rtp.heuristic_rtp:TRUE`) finds plain RTP
//! over UDP; it does not look inside Zoom's encapsulation, so Zoom's media streams are not
//! compared (the tap's own Zoom streams are printed). tshark computes jitter only when it knows
//! the payload type's clock rate: static payload types, or dynamic ones named by SDP, which these
//! captures do not carry. Streams of dynamic types are compared on packets and loss only.
//!
//! For the dynamic types, a second check: Wireshark's jitter rule (`ui/tap-rtp-analysis.c`:
//! `J += (|D| − J) / 16` against the previous in-order packet; max and running mean over packets
//! without the marker bit) is applied to tshark's per-packet decode (arrival time, RTP timestamp,
//! marker) at the clock rate the tap estimated, and the tap's figures must be within 5 % of it.
//! That checks the tap's packets, timing and sequence handling on those streams against an
//! independent decode; the clock estimate itself cannot be checked without signalling.
//!
//! The tap is fed what the kernel program would send (first packets whole, then headers of
//! flows with the "QoE headers" verdict); a stream the tap did not see whole is printed as such
//! and fails the test.

mod common;

use enrich_probe::classify::signatures::Signatures;
use enrich_probe::offline::run_files;
use enrich_probe::{Pipeline, ProbeConfig};
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::process::Command;

const CAPTURES: &[&str] = &[
    "ndpi/conferencing_voip/zoom.pcap",
    "ndpi/conferencing_voip/zoom2.pcap",
    "ndpi/conferencing_voip/stun_zoom.pcapng",
    "zoom-analysis/zoom_test.pcap",
    "ndpi/conferencing_voip/whatsapp.pcap",
    "ndpi/conferencing_voip/whatsapp_login_call.pcap",
    "ndpi/conferencing_voip/whatsapp_voice_and_message.pcap",
    "ndpi/conferencing_voip/wa_voice.pcap",
    "ndpi/conferencing_voip/stun_wa_call.pcapng",
    "ndpi/conferencing_voip/google_meet.pcapng",
    "ndpi/conferencing_voip/stun_msteams_unidir.pcapng",
    "ndpi/conferencing_voip/discord.pcap",
    "ndpi/conferencing_voip/signal.pcap",
    "ndpi/conferencing_voip/rtp.pcapng",
];

/// (source, source port, destination, destination port, SSRC).
type StreamKey = (IpAddr, u16, IpAddr, u16, u32);

#[derive(Debug, Clone)]
struct TsharkStream {
    payload: String,
    packets: i64,
    lost: i64,
    /// Mean and max jitter, ms; `None` when tshark did not know the clock.
    jitter: Option<(f64, f64)>,
}

/// Parses `tshark -q -z rtp,streams` rows: 7 fixed columns on the left, the payload name (which
/// may contain spaces), then packets, lost, "(x%)", three deltas, three jitters and an optional
/// problem marker on the right.
fn tshark_streams(file: &Path) -> Option<HashMap<StreamKey, TsharkStream>> {
    let out = Command::new("tshark")
        .args([
            "-n",
            "-q",
            "-z",
            "rtp,streams",
            "-o",
            "rtp.heuristic_rtp:TRUE",
            "-r",
        ])
        .arg(file)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut m = HashMap::new();
    for line in text.lines() {
        let mut t: Vec<&str> = line.split_whitespace().collect();
        if t.len() < 17 || !t[6].starts_with("0x") {
            continue;
        }
        if t.last() == Some(&"X") {
            t.pop();
        }
        let n = t.len();
        let num = |i: usize| t[i].parse::<f64>().ok();
        let (Ok(src), Ok(sp), Ok(dst), Ok(dp), Ok(ssrc)) = (
            t[2].parse::<IpAddr>(),
            t[3].parse::<u16>(),
            t[4].parse::<IpAddr>(),
            t[5].parse::<u16>(),
            u32::from_str_radix(t[6].trim_start_matches("0x"), 16),
        ) else {
            continue;
        };
        let (Some(min_j), Some(mean_j), Some(max_j)) = (num(n - 3), num(n - 2), num(n - 1)) else {
            continue;
        };
        let (Ok(packets), Ok(lost)) = (t[n - 9].parse::<i64>(), t[n - 8].parse::<i64>()) else {
            continue;
        };
        m.insert(
            (src, sp, dst, dp, ssrc),
            TsharkStream {
                payload: t[7..n - 9].join(" "),
                packets,
                lost,
                jitter: (min_j >= 0.0).then_some((mean_j, max_j)),
            },
        );
    }
    Some(m)
}

/// Per-packet decode by tshark: (arrival s, RTP timestamp, marker) per stream, in capture order.
fn tshark_packets(file: &Path) -> HashMap<StreamKey, Vec<(f64, u32, bool)>> {
    let mut m: HashMap<StreamKey, Vec<(f64, u32, bool)>> = HashMap::new();
    let Ok(out) = Command::new("tshark")
        .args([
            "-n",
            "-o",
            "rtp.heuristic_rtp:TRUE",
            "-Y",
            "rtp",
            "-T",
            "fields",
        ])
        .args([
            "-E",
            "separator=,",
            "-e",
            "frame.time_epoch",
            "-e",
            "ip.src",
            "-e",
        ])
        .args([
            "udp.srcport",
            "-e",
            "ip.dst",
            "-e",
            "udp.dstport",
            "-e",
            "rtp.ssrc",
        ])
        .args(["-e", "rtp.timestamp", "-e", "rtp.marker", "-r"])
        .arg(file)
        .output()
    else {
        return m;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split(',').collect();
        if f.len() < 8 {
            continue;
        }
        let (Ok(t), Ok(s), Ok(sp), Ok(d), Ok(dp), Ok(ssrc), Ok(ts)) = (
            f[0].parse::<f64>(),
            f[1].parse::<IpAddr>(),
            f[2].parse::<u16>(),
            f[3].parse::<IpAddr>(),
            f[4].parse::<u16>(),
            u32::from_str_radix(f[5].trim_start_matches("0x"), 16),
            f[6].parse::<u32>(),
        ) else {
            continue;
        };
        let marker = f[7] == "1" || f[7] == "True";
        m.entry((s, sp, d, dp, ssrc))
            .or_default()
            .push((t, ts, marker));
    }
    m
}

/// Wireshark's jitter rule over one stream's packets at `clock` Hz: (mean, max) in ms.
fn wireshark_jitter(pkts: &[(f64, u32, bool)], clock: u32) -> (f64, f64) {
    let (mut seq_ts, mut time, mut last_ext, mut last_ts) = (0i64, 0f64, 0i64, 0u32);
    let (mut j, mut max, mut mean) = (0f64, 0f64, 0f64);
    for (n, &(t, ts, marker)) in pkts.iter().enumerate() {
        let t = t * 1000.0;
        if n == 0 {
            (seq_ts, time, last_ext, last_ts) = (i64::from(ts), t, i64::from(ts), ts);
            continue;
        }
        let ext = last_ext + i64::from(ts.wrapping_sub(last_ts) as i32);
        (last_ext, last_ts) = (ext, ts);
        let in_time = seq_ts <= ext;
        let nominal = (ext - seq_ts) as f64 / (f64::from(clock) / 1000.0);
        j = (15.0 * j + (t - (time + nominal)).abs()) / 16.0;
        if in_time && !marker {
            max = max.max(j);
            mean = (mean * (n as f64 - 1.0) + j) / n as f64;
        }
        if in_time {
            (time, seq_ts) = (t, ext);
        }
    }
    (mean, max)
}

#[derive(Debug, Clone)]
struct TapStream {
    received: u64,
    lost: i64,
    clock: Option<u32>,
    mean_jitter: f64,
    max_jitter: f64,
    kind: String,
    zoom_pt: Option<u8>,
}

fn tap_streams(file: &Path) -> Vec<(StreamKey, TapStream)> {
    let mut p = Pipeline::new(
        ProbeConfig::default(),
        Signatures::builtin().expect("signatures"),
    );
    p.keep_flow_qoe();
    run_files(&mut p, &[file.to_path_buf()], |_| Ok(())).expect("capture reads");
    let mut m = Vec::new();
    for k in p.take_kept() {
        let Some(r) = &k.qoe.rtp else {
            continue;
        };
        for s in &r.streams {
            let (src, sp) = k.key.sender(s.dir);
            let (dst, dp) = k.key.sender(s.dir ^ 1);
            m.push((
                (src, sp, dst, dp, s.ssrc),
                TapStream {
                    received: s.received,
                    lost: s.lost(),
                    clock: s.clock_rate,
                    mean_jitter: s.mean_jitter_ms,
                    max_jitter: s.max_jitter_ms,
                    kind: format!("{:?}", s.kind),
                    zoom_pt: s.zoom_pt,
                },
            ));
        }
    }
    m
}

fn within(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * b.abs().max(1e-3)
}

#[test]
fn rtp_loss_and_jitter_agree_with_tshark() {
    let Some(td) = common::testdata("qoe_rtp") else {
        return;
    };
    if Command::new("tshark").arg("-v").output().is_err() {
        eprintln!("SKIPPED qoe_rtp: tshark not installed");
        return;
    }
    let (mut compared, mut loss_eq, mut jit_cmp, mut jit_ok) = (0, 0, 0, 0);
    let (mut dyn_cmp, mut dyn_ok) = (0, 0);
    let mut failures = Vec::new();
    println!(
        "{:<28} {:>15}:{:<5} → {:>15}:{:<5} {:>10} {:>12} {:>11} {:>9} {:>17} {:>17}",
        "capture",
        "src",
        "port",
        "dst",
        "port",
        "ssrc",
        "payload",
        "pkts ts/tap",
        "lost ts/tap",
        "mean jit ts/tap",
        "max jit ts/tap"
    );
    for c in CAPTURES {
        let f = td.join("apps").join(c);
        let name = Path::new(c)
            .file_name()
            .map_or("", |n| n.to_str().unwrap_or(""));
        let Some(ts) = tshark_streams(&f) else {
            failures.push(format!("{c}: tshark failed"));
            continue;
        };
        let all = tap_streams(&f);
        let pkts = tshark_packets(&f);
        // Wireshark's streams are (source, destination, SSRC); Zoom's are not decoded by it.
        let tap: HashMap<StreamKey, TapStream> = all
            .iter()
            .filter(|(_, s)| s.zoom_pt.is_none())
            .cloned()
            .collect();
        let mut keys: Vec<_> = ts.keys().copied().collect();
        keys.sort();
        for k in keys {
            let t = &ts[&k];
            compared += 1;
            let Some(m) = tap.get(&k) else {
                println!(
                    "{name:<28} {:>15}:{:<5} → {:>15}:{:<5} {:>#10x} {:>12} {:>5}/{:<5} NOT SEEN BY THE TAP",
                    k.0, k.1, k.2, k.3, k.4, t.payload, t.packets, "-"
                );
                failures.push(format!("{c}: stream {k:?} not seen"));
                continue;
            };
            let (jt, jm) = match t.jitter {
                Some((mean, max)) => {
                    jit_cmp += 1;
                    let ok = within(m.mean_jitter, mean, 0.05) && within(m.max_jitter, max, 0.05);
                    if ok {
                        jit_ok += 1;
                    } else {
                        failures.push(format!(
                            "{c}: {k:?} jitter {mean:.3}/{max:.3} vs {:.3}/{:.3}",
                            m.mean_jitter, m.max_jitter
                        ));
                    }
                    (
                        format!("{mean:.3}/{:.3}", m.mean_jitter),
                        format!("{max:.3}/{:.3}", m.max_jitter),
                    )
                }
                None => match (m.clock, pkts.get(&k)) {
                    // Dynamic type: Wireshark's rule on tshark's decode at the tap's clock.
                    (Some(clock), Some(p)) if p.len() >= 8 => {
                        let (mean, max) = wireshark_jitter(p, clock);
                        dyn_cmp += 1;
                        if within(m.mean_jitter, mean, 0.05) && within(m.max_jitter, max, 0.05) {
                            dyn_ok += 1;
                        } else {
                            failures.push(format!(
                                "{c}: {k:?} jitter (rule on tshark's decode) {mean:.3}/{max:.3} \
                                 vs {:.3}/{:.3}",
                                m.mean_jitter, m.max_jitter
                            ));
                        }
                        (
                            format!("({mean:.3})/{:.3}", m.mean_jitter),
                            format!("({max:.3})/{:.3}", m.max_jitter),
                        )
                    }
                    _ => (
                        format!("-/{:.3}", m.mean_jitter),
                        format!("-/{:.3}", m.max_jitter),
                    ),
                },
            };
            if m.lost == t.lost && m.received as i64 == t.packets {
                loss_eq += 1;
            } else {
                failures.push(format!(
                    "{c}: {k:?} packets/lost {}/{} vs {}/{}",
                    t.packets, t.lost, m.received, m.lost
                ));
            }
            println!(
                "{name:<28} {:>15}:{:<5} → {:>15}:{:<5} {:>#10x} {:>12} {:>5}/{:<5} {:>4}/{:<4} {:>17} {:>17} {} {:?}",
                k.0, k.1, k.2, k.3, k.4, t.payload, t.packets, m.received, t.lost, m.lost, jt, jm,
                m.kind, m.clock
            );
        }
        // The tap's streams tshark does not decode (Zoom's encapsulation, mostly).
        let mut own: Vec<_> = all.iter().filter(|(k, _)| !ts.contains_key(k)).collect();
        own.sort_by_key(|(k, s)| (*k, s.zoom_pt));
        for (k, m) in own {
            let pt = m
                .zoom_pt
                .map_or("-".to_string(), |p| format!("zoom pt {p}"));
            println!(
                "{name:<28} {:>15}:{:<5} → {:>15}:{:<5} {:>#10x} {:>12} {:>5}/{:<5} {:>4}/{:<4} {:>17} {:>17} {} {:?} (tap only)",
                k.0, k.1, k.2, k.3, k.4, pt, "-", m.received, "-", m.lost,
                format!("-/{:.3}", m.mean_jitter), format!("-/{:.3}", m.max_jitter), m.kind, m.clock
            );
        }
    }
    println!(
        "\nstreams compared {compared}, packets and loss equal {loss_eq}, jitter compared \
         {jit_cmp} (tshark knows the clock), within 5 % {jit_ok}; dynamic types, Wireshark's rule \
         on tshark's decode at the tap's clock (in parentheses): {dyn_cmp}, within 5 % {dyn_ok}"
    );
    for f in &failures {
        println!("MISMATCH {f}");
    }
    assert!(compared > 0);
    assert!(failures.is_empty(), "{} mismatches", failures.len());
}
