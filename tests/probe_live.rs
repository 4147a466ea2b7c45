//! `supernetflow probe --interface` as a user runs it on a mirror port: the process attaches the
//! kernel program to one end of a veth pair in a network namespace the test creates (and removes),
//! tcpreplay sends a real capture into the other end, SIGTERM ends the run; the tap records it
//! printed are the offline path's (`probe --pcap` of the same capture) flow for flow: same keys,
//! same packets and bytes per direction, and — when the ring buffer lost nothing — the same
//! application type and provider. Needs root (it skips loudly without).

mod procs;
#[path = "../enrich-probe/tests/xdp_support/mod.rs"]
mod xdp_support;

use procs::{bin, wait_until, Proc};
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Per flow key: (client→server packets, bytes, server→client packets, bytes, provider, app type).
type View = BTreeMap<String, (u64, u64, u64, u64, Option<String>, String)>;

fn view(jsonl: &str) -> View {
    let mut m = View::new();
    for l in jsonl.lines() {
        let Ok(v) = serde_json::from_str::<Value>(l) else {
            continue;
        };
        let Some(k) = v["key"]["flow_key"].as_str() else {
            continue; // flow_stats and session lines
        };
        if v["state"] != "end" {
            continue; // a live flow's periodic `update` records: its `end` record has the totals
        }
        let s = &v["stats"];
        let n = |f: &str| s[f].as_u64().unwrap_or(0);
        m.insert(
            k.to_string(),
            (
                n("local_packets"),
                n("local_bytes"),
                n("other_packets"),
                n("other_bytes"),
                v["app"]["provider"].as_str().map(str::to_string),
                v["app"]["app_type"].as_str().unwrap_or("").to_string(),
            ),
        );
    }
    m
}

fn live_vs_offline(test: &str, rel: &str, attach: &str) {
    let Some(pcap) = procs::testdata(test, rel) else {
        return;
    };
    let Some(tools) = procs::tools(test, &["tcpreplay"]) else {
        return;
    };
    let ns = xdp_support::NetNs::create(&format!("l{}", attach.len())).expect("namespace");
    let work = tempfile::tempdir().expect("tempdir");
    let out = work.path().join("live.jsonl");
    let report = work.path().join("live.json");
    let mut cmd = Command::new("ip");
    cmd.args([
        "netns",
        "exec",
        &ns.name,
        bin(),
        "probe",
        "--interface",
        &ns.rx,
    ])
    .args(["--attach", attach, "--no-flow-stats", "--report"])
    .arg(&report)
    .stdin(Stdio::null())
    .stdout(std::fs::File::create(&out).expect("out"))
    .stderr(std::fs::File::create(work.path().join("err")).expect("err"));
    let mut p = Proc::spawn("probe --interface", &mut cmd);
    let err = || std::fs::read_to_string(work.path().join("err")).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(30), || err().contains("Tap attached")
            || !p.running()),
        "probe did not attach: {}",
        err()
    );
    let replay = Command::new("ip")
        .args(["netns", "exec", &ns.name])
        .arg(&tools[0])
        .args(["-q", "-i", &ns.tx, "--pps", "2000"])
        .arg(&pcap)
        .output()
        .expect("tcpreplay");
    assert!(
        replay.status.success(),
        "tcpreplay: {}",
        String::from_utf8_lossy(&replay.stderr)
    );
    let status = p.terminate(Duration::from_secs(30));
    assert!(status.success(), "probe exited {status}: {}", err());
    let rep: Value =
        serde_json::from_slice(&std::fs::read(&report).expect("report")).expect("report JSON");
    let live = view(&std::fs::read_to_string(&out).expect("output"));

    let offline = Command::new(bin())
        .args(["probe", "--no-flow-stats", "--pcap"])
        .arg(&pcap)
        .output()
        .expect("probe --pcap");
    assert!(offline.status.success());
    let offline = view(&String::from_utf8_lossy(&offline.stdout));

    let ring_full = rep["live"]["kernel"]["ring_full"].as_u64().unwrap_or(0);
    let mut diffs = Vec::new();
    for (k, o) in &offline {
        match live.get(k) {
            None => diffs.push(format!("{k}: not reported live")),
            Some(l) if (l.0, l.1, l.2, l.3) != (o.0, o.1, o.2, o.3) => {
                diffs.push(format!("{k}: counters live {l:?} offline {o:?}"))
            }
            Some(l) if ring_full == 0 && (l.4 != o.4 || l.5 != o.5) => {
                diffs.push(format!("{k}: labels live {l:?} offline {o:?}"))
            }
            Some(_) => {}
        }
    }
    let extra = live.keys().filter(|k| !offline.contains_key(*k)).count();
    eprintln!(
        "{test}: {rel} ({attach}): {} flows offline, {} live ({extra} not in the capture), ring \
         full {ring_full}, {} differences",
        offline.len(),
        live.len(),
        diffs.len()
    );
    assert!(diffs.is_empty(), "{rel}: {diffs:#?}");
    assert_eq!(extra, 0, "flows live that the capture does not have");
}

#[test]
fn live_probe_reports_what_the_offline_path_reports() {
    const T: &str = "live_probe_reports_what_the_offline_path_reports";
    if !xdp_support::privileged(T) {
        return;
    }
    for (rel, attach) in [
        ("apps/ndpi/conferencing_voip/zoom2.pcap", "xdp-generic"),
        (
            "apps/ndpi/conferencing_voip/whatsapp_login_call.pcap",
            "xdp",
        ),
        ("apps/ndpi/video_streaming/instagram.pcap", "tc"),
    ] {
        live_vs_offline(T, rel, attach);
    }
}
