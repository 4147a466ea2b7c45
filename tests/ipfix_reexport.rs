//! IPFIX re-export of super-flows, end to end, read by two independent IPFIX implementations.
//!
//! `run` (with the join) receives softflowd's IPFIX (the router) and the tap's records
//! (`supernetflow probe --pcap FILE --export`), exactly as in `tests/join_e2e.rs`, and re-exports
//! its super-flows over UDP (`[sinks.ipfix]`) to two collectors at once:
//! (a) a UDP socket of this test that writes what it receives into a pcap, decoded by tshark
//!     (`-d udp.port==P,cflow -T json`): every super-flow arrives, every data record decodes with
//!     no malformed packet, and the router part (addresses, ports, protocol, octets, packets)
//!     equals the `super_flows` Parquet rows, record for record;
//! (b) pmacct's nfacctd (print plugin, JSON to a file): its per-flow rows, packets and bytes equal
//!     ours on the 5-tuple.
//! A second test replays a Zoom capture: the tap's application session reports reach
//! `app_sessions`, each with the router totals (octets, packets, records) of the super-flows of
//! its member flows. The figures (records, bytes per exported super-flow) are printed; no timing
//! is asserted.

mod procs;
mod support;

use procs::run::{read_table, Run};
use procs::{wait_until, Proc};
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::pmacct::{self, Key, Sums};

const T: &str = "super_flows_reexported_as_ipfix_decode_in_tshark_and_nfacctd";
const CAPTURE: &str = "apps/ndpi/conferencing_voip/whatsapp_login_call.pcap";

/// The value of an unlabelled metric in a Prometheus text page.
fn metric(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Datagrams received, with their source.
type Datagrams = Vec<(SocketAddr, Vec<u8>)>;

/// `promtool check metrics` on the page, when promtool is installed (the lint `run_e2e` uses).
/// A collector that keeps every datagram (with its source) for a pcap.
struct Catcher {
    addr: SocketAddr,
    got: Arc<Mutex<Datagrams>>,
    last: Arc<Mutex<Instant>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Catcher {
    fn start() -> Catcher {
        let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("timeout");
        let addr = s.local_addr().expect("addr");
        let got = Arc::new(Mutex::new(Vec::new()));
        let last = Arc::new(Mutex::new(Instant::now()));
        let stop = Arc::new(AtomicBool::new(false));
        let (g, l, st) = (got.clone(), last.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65_535];
            while !st.load(Ordering::Relaxed) {
                if let Ok((n, from)) = s.recv_from(&mut buf) {
                    g.lock().expect("lock").push((from, buf[..n].to_vec()));
                    *l.lock().expect("lock") = Instant::now();
                }
            }
        });
        Catcher {
            addr,
            got,
            last,
            stop,
            thread: Some(thread),
        }
    }

    /// Waits until nothing arrived for `quiet`, then stops and returns the datagrams.
    fn finish(mut self, quiet: Duration) -> Datagrams {
        wait_until(Duration::from_secs(20), || {
            self.last.lock().expect("lock").elapsed() >= quiet
        });
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        std::mem::take(&mut *self.got.lock().expect("lock"))
    }
}

/// A classic pcap of IPv4/UDP packets (LINKTYPE_RAW) holding `datagrams` sent to `to`.
fn write_pcap(path: &Path, to: SocketAddr, datagrams: &[(SocketAddr, Vec<u8>)]) {
    let mut f = Vec::new();
    f.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    f.extend_from_slice(&2u16.to_le_bytes());
    f.extend_from_slice(&4u16.to_le_bytes());
    f.extend_from_slice(&0i32.to_le_bytes());
    f.extend_from_slice(&0u32.to_le_bytes());
    f.extend_from_slice(&65_535u32.to_le_bytes());
    f.extend_from_slice(&101u32.to_le_bytes()); // LINKTYPE_RAW
    let ip4 = |a: SocketAddr| match a.ip() {
        std::net::IpAddr::V4(v) => v.octets(),
        _ => [127, 0, 0, 1],
    };
    for (i, (from, d)) in datagrams.iter().enumerate() {
        let total = 20 + 8 + d.len();
        let mut p = Vec::with_capacity(total);
        p.extend_from_slice(&[0x45, 0]);
        p.extend_from_slice(&(total as u16).to_be_bytes());
        p.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
        p.extend_from_slice(&ip4(*from));
        p.extend_from_slice(&ip4(to));
        let mut sum: u32 = p
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
            .sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        p[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
        p.extend_from_slice(&from.port().to_be_bytes());
        p.extend_from_slice(&to.port().to_be_bytes());
        p.extend_from_slice(&((8 + d.len()) as u16).to_be_bytes());
        p.extend_from_slice(&[0, 0]);
        p.extend_from_slice(d);
        f.extend_from_slice(&(1_700_000_000u32 + i as u32).to_le_bytes());
        f.extend_from_slice(&0u32.to_le_bytes());
        f.extend_from_slice(&(p.len() as u32).to_le_bytes());
        f.extend_from_slice(&(p.len() as u32).to_le_bytes());
        f.extend_from_slice(&p);
    }
    std::fs::write(path, f).expect("write pcap");
}

/// (src, dst, sport, dport, proto, octets, packets) of a super-flow row's router part.
type Tuple = (String, String, u64, u64, u64, u64, u64);

fn row_tuple(r: &Value) -> Tuple {
    let f = &r["flow"];
    let s = |k: &str| pmacct::norm_ip(f[k].as_str().unwrap_or(""));
    let n = |k: &str| f[k].as_u64().unwrap_or(0);
    (
        s("src_addr"),
        s("dst_addr"),
        n("src_port"),
        n("dst_port"),
        n("protocol"),
        n("octets"),
        n("packets"),
    )
}

fn start_nfacctd(nfacctd: &Path, dir: &Path) -> (Proc, u16, std::path::PathBuf) {
    let out = dir.join("nfacctd-flows.json");
    for _ in 0..5 {
        let port = procs::free_udp_port();
        let conf = dir.join("nfacctd.conf");
        std::fs::write(
            &conf,
            format!(
                "daemonize: false\nnfacctd_ip: 127.0.0.1\nnfacctd_port: {port}\n\
                 nfacctd_time_new: false\nplugins: print[out]\n\
                 aggregate[out]: peer_src_ip, src_host, dst_host, src_port, dst_port, proto, \
                 timestamp_start, timestamp_end\nprint_output[out]: json\n\
                 print_output_file[out]: {}\nprint_output_file_append[out]: true\n\
                 print_refresh_time[out]: 300\n",
                out.display()
            ),
        )
        .expect("nfacctd.conf");
        let mut cmd = Command::new(nfacctd);
        cmd.arg("-f")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("nfacctd.out")).expect("log"))
            .stderr(std::fs::File::create(dir.join("nfacctd.err")).expect("log"));
        let mut p = Proc::spawn("nfacctd", &mut cmd);
        if wait_until(Duration::from_secs(10), || {
            procs::udp_socket_queue(port).is_some() || !p.running()
        }) && p.running()
        {
            return (p, port, out);
        }
    }
    panic!(
        "nfacctd did not start: {}",
        std::fs::read_to_string(dir.join("nfacctd.err")).unwrap_or_default()
    );
}

#[test]
fn super_flows_reexported_as_ipfix_decode_in_tshark_and_nfacctd() {
    let Some(pcap) = procs::testdata(T, CAPTURE) else {
        return;
    };
    let Some(tools) = procs::tools(T, &["tshark", "nfacctd"]) else {
        return;
    };
    let work = tempfile::tempdir().expect("tempdir");
    let catcher = Catcher::start();
    let (mut nfacctd, nf_port, nf_out) = start_nfacctd(&tools[1], work.path());

    let conf = format!(
        "[sinks]\nenabled = [\"parquet\", \"ipfix\"]\n\n[sinks.ipfix]\n\
         collectors = [\"{}\", \"127.0.0.1:{nf_port}\"]\nkinds = [\"super_flows\"]\n",
        catcher.addr
    );
    let Some((st, data, _)) = run_capture(T, work.path(), &pcap, &conf, |run| {
        let page = run.get("/metrics").1;
        assert!(
            page.contains("snf_ipfix_records_sent_total{collector="),
            "IPFIX sink metrics in /metrics"
        );
        procs::run::promtool_check(T, &page);
    }) else {
        return;
    };
    let (supers, _) = read_table(&data.join("super_flows"));
    assert!(!supers.is_empty(), "no super-flows for {CAPTURE}");
    let n = supers.len() as u64;
    let sinks = st.report["ipfix"].as_array().expect("ipfix in the report");
    for c in sinks {
        assert_eq!(c["records_sent"], n, "every super-flow sent: {c}");
        assert_eq!(c["records_failed"], 0, "{c}");
    }
    let bytes = sinks[0]["bytes_sent"].as_u64().unwrap_or(0);
    let msgs = sinks[0]["messages_sent"].as_u64().unwrap_or(0);

    // (a) tshark.
    let datagrams = catcher.finish(Duration::from_millis(800));
    assert_eq!(datagrams.len() as u64, msgs, "every message arrived");
    let cap = work.path().join("reexport.pcap");
    // SNF_KEEP_PCAP=FILE keeps a copy of the capture for a look in Wireshark.
    let keep = std::env::var_os("SNF_KEEP_PCAP");
    write_pcap(&cap, "127.0.0.1:4739".parse().expect("addr"), &datagrams);
    if let Some(k) = keep {
        let _ = std::fs::copy(&cap, k);
    }
    // tshark uses no template of more than 60 fields unless told (`cflow.max_template_fields`,
    // default 60): a matched super-flow has about 95 elements (the router flow's ~45, the tap's
    // app, stats and QoE blocks). Unmatched ones (~50) decode with the default.
    let ts = Command::new(&tools[0])
        .arg("-r")
        .arg(&cap)
        .args([
            "-o",
            "cflow.max_template_fields:0",
            "-T",
            "json",
            "--no-duplicate-keys",
            "-d",
            "udp.port==4739,cflow",
        ])
        .output()
        .expect("tshark runs");
    assert!(
        ts.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&ts.stderr)
    );
    let v: Value = serde_json::from_slice(&ts.stdout).expect("tshark JSON");
    let oracle = support::tshark::flatten(&v).expect("tshark output understood");
    assert_eq!(oracle.malformed, 0, "tshark flags malformed packets");
    assert_eq!(
        oracle.sets_without_template, 0,
        "every data set has its template"
    );
    assert_eq!(
        oracle.records.len() as u64,
        n,
        "tshark decodes every super-flow"
    );
    use support::tshark::Field;
    let val = |f: &Field<u64>| match f {
        Field::Val(v) => v.unwrap_or(0),
        Field::Unknown(why) => panic!("tshark field not comparable: {why}"),
    };
    let ip = |f: &Field<String>| match f {
        Field::Val(v) => pmacct::norm_ip(v.as_deref().unwrap_or("")),
        Field::Unknown(why) => panic!("tshark field not comparable: {why}"),
    };
    let mut theirs: Vec<Tuple> = oracle
        .records
        .iter()
        .map(|r| {
            (
                ip(&r.src_addr),
                ip(&r.dst_addr),
                val(&r.src_port),
                val(&r.dst_port),
                val(&r.protocol),
                val(&r.octets),
                val(&r.packets),
            )
        })
        .collect();
    let mut ours: Vec<Tuple> = supers.iter().map(row_tuple).collect();
    theirs.sort();
    ours.sort();
    assert_eq!(theirs, ours, "tshark's records equal the super_flows rows");

    // (b) nfacctd: SIGINT purges its cache to the file.
    nfacctd.signal("INT");
    assert!(
        nfacctd.wait_timeout(Duration::from_secs(20)).is_some(),
        "nfacctd did not exit on SIGINT"
    );
    let pm = pmacct::load(&nf_out).unwrap_or_else(|e| {
        panic!(
            "{e}; nfacctd stderr: {}",
            std::fs::read_to_string(work.path().join("nfacctd.err")).unwrap_or_default()
        )
    });
    let mut mine: BTreeMap<Key, Sums> = BTreeMap::new();
    for t in &ours {
        let e = mine
            .entry((t.0.clone(), t.1.clone(), t.2, t.3, t.4))
            .or_default();
        e.rows += 1;
        e.bytes += t.5;
        e.packets += t.6;
    }
    let rows: u64 = pm.values().map(|s| s.rows).sum();
    // nfacctd merges records with equal aggregation keys (same 5-tuple and times): compare the
    // sums per 5-tuple, which are equal iff nothing was lost, doubled or mis-decoded.
    let strip = |m: &BTreeMap<Key, Sums>| -> BTreeMap<Key, (u64, u64)> {
        m.iter()
            .map(|(k, s)| (k.clone(), (s.packets, s.bytes)))
            .collect()
    };
    assert_eq!(strip(&pm), strip(&mine), "nfacctd's flows equal ours");
    assert!(rows <= n, "nfacctd rows {rows} > super-flows {n}");
    eprintln!(
        "{T}: {CAPTURE}: {n} super-flows re-exported in {msgs} IPFIX messages, {bytes} bytes \
         ({:.1} bytes per super-flow, templates included); tshark decoded {} data records \
         (0 malformed); nfacctd printed {rows} rows over {} 5-tuples, packets and bytes equal",
        bytes as f64 / n as f64,
        oracle.records.len(),
        pm.len()
    );
}

/// Runs `run` with `conf` (TOML), replays `pcap` into softflowd and the tap (exporting to run over
/// TCP), waits for the tap's records, stops run; returns the stopped run, its Parquet directory and
/// the probe's report.
fn run_capture(
    test: &str,
    work: &Path,
    pcap: &Path,
    conf: &str,
    before_stop: impl FnOnce(&Run),
) -> Option<(procs::run::Stopped, std::path::PathBuf, Value)> {
    let tools = procs::tools(test, &["softflowd", "softflowctl"])?;
    let conf_path = work.join("run.toml");
    std::fs::write(&conf_path, conf).expect("run.toml");
    let conf_s = conf_path.to_string_lossy().into_owned();
    let run = Run::start(
        &work.join("run"),
        &["--tcp", "127.0.0.1:0", "--config", &conf_s],
    );
    let tcp = run.tcp.expect("run listens on TCP");
    procs::run_softflowd(&tools[0], &tools[1], work, pcap, run.udp, 10, "router");
    let tcp = tcp.to_string();
    let rep = procs::probe_report(work, "tap", "sessions-tap", &[pcap], &["--export", &tcp]);
    let taps = rep["export"]["encoder"]["records"].as_u64().unwrap_or(0);
    let sessions = rep["export_sessions"]["encoder"]["records"]
        .as_u64()
        .unwrap_or(0);
    let page = || run.get("/metrics").1;
    assert!(
        wait_until(Duration::from_secs(60), || {
            let p = page();
            metric(&p, "snf_mediate_tap_records_total") == Some(taps as f64)
                && metric(&p, "snf_mediate_sessions_total") == Some(sessions as f64)
        }),
        "run did not receive the tap's {taps} records and {sessions} session reports"
    );
    before_stop(&run);
    // SIGTERM: the join flushes every router flow it holds, the held sessions follow, and the
    // sinks deliver them.
    let data = run.dir.join("data/parquet");
    let st = run.stop(Duration::from_secs(60));
    assert!(st.ok, "run exited with {}: {}", st.status, st.stderr);
    assert_eq!(st.report["tap_invalid"], 0, "{}", st.report);
    Some((st, data, rep))
}

#[test]
fn tap_sessions_reach_app_sessions_with_their_router_qos() {
    const T2: &str = "tap_sessions_reach_app_sessions_with_their_router_qos";
    let Some(pcap) = procs::testdata(T2, "apps/ndpi/conferencing_voip/zoom2.pcap") else {
        return;
    };
    let work = tempfile::tempdir().expect("tempdir");
    let Some((_st, data, rep)) = run_capture(T2, work.path(), &pcap, "", |_| {}) else {
        return;
    };
    let exported = rep["export_sessions"]["encoder"]["records"]
        .as_u64()
        .expect("session reports exported");
    assert!(exported > 0, "the tap reported no session for zoom2.pcap");
    let (sessions, _) = read_table(&data.join("app_sessions"));
    let (taps, _) = read_table(&data.join("tap_records"));
    let (supers, _) = read_table(&data.join("super_flows"));
    assert_eq!(
        sessions.len() as u64,
        exported,
        "app_sessions holds every report the tap sent"
    );
    // Member flows per session, from the tap records; the router totals they should get, from
    // the super-flows of those flows.
    let mut members: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    for t in &taps {
        if let (Some(sid), Some(k)) = (t["session_id"].as_str(), t["key"]["flow_key"].as_str()) {
            members.entry(sid.into()).or_default().insert(k.into());
        }
    }
    let mut last: BTreeMap<String, &Value> = BTreeMap::new();
    for s in &sessions {
        let sid = s["session_id"].as_str().unwrap_or("").to_string();
        let seq = s["seq"].as_u64().unwrap_or(0);
        if last
            .get(&sid)
            .is_none_or(|p| p["seq"].as_u64().unwrap_or(0) < seq)
        {
            last.insert(sid, s);
        }
    }
    let mut with_router = 0;
    for (sid, s) in &last {
        let keys = members.get(sid).cloned().unwrap_or_default();
        let (mut octets, mut packets, mut records) = (0u64, 0u64, 0u64);
        for f in &supers {
            if keys.contains(f["flow"]["flow_key"].as_str().unwrap_or("")) {
                octets += f["flow"]["octets"].as_u64().unwrap_or(0);
                packets += f["flow"]["packets"].as_u64().unwrap_or(0);
                records += 1;
            }
        }
        let net = &s["network"];
        assert_eq!(
            (
                net["router_octets"].as_u64(),
                net["router_packets"].as_u64(),
                net["router_flow_records"].as_u64()
            ),
            (Some(octets), Some(packets), Some(records)),
            "session {sid} ({} members): router totals of its member flows",
            keys.len()
        );
        assert!(s["member_flows"].as_u64().unwrap_or(0) > 0, "{s}");
        with_router += usize::from(records > 0);
    }
    assert!(
        with_router > 0,
        "no session got router counters (members: {members:?})"
    );
    eprintln!(
        "{T2}: {} session reports ({} sessions) in app_sessions; {with_router} sessions carry \
         the router totals of their member flows",
        sessions.len(),
        last.len()
    );
}
