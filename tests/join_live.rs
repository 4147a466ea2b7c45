//! The join end to end on live traffic through the kernel program (issue 6), as a NOC runs it:
//! the router and the tap see the same packets at the same time.
//!
//! The test makes a network namespace with a veth pair (removed on drop, also when a test panics)
//! and runs everything inside it, on its own loopback: a Kafka-protocol broker,
//! `supernetflow run` (Parquet and Kafka sinks, IPFIX over UDP from the router and over TCP from
//! the tap), and `supernetflow probe --interface <receiving end> --export <run's TCP port>` with
//! the XDP program attached. tcpreplay sends real application captures into the other end of the
//! pair; those frames are the wire both meters observe:
//! - the tap: the XDP program on the receiving end, stamping packets with the time they arrive;
//! - the router: the frames as they leave the sending end, recorded by dumpcap — the router's
//!   observation of the same wire at the same instants — and metered by softflowd, which exports
//!   IPFIX with absolute times to `run`. (softflowd 1.1.0 cannot meter a live interface here: its
//!   packet socket never polls readable, it reports packets received by libpcap but processes
//!   none; so it reads the wire's recording with `-r`, which keeps the live times.)
//!
//! Order of events, as in a NOC: a capture the router sees before the tap is attached (flows only
//! the router has); the app captures with the tap attached, reporting every second; the router's
//! export while the tap still holds its flows (router records wait in the join); SIGTERM to the
//! probe (every flow reported `end`: the waiting records are settled, except those the tap never
//! saw); SIGTERM to `run` (the rest flushed before the sinks close). Checked on both outputs, the
//! `super_flows` Parquet table and the `snf.super_flows` topic:
//! - every router flow exactly once (record ids equal to `flow_records`), and the two outputs
//!   equal field for field (the topic's messages put through the published Arrow schema, as the
//!   Parquet sink does);
//! - of the router flows whose key the tap saw, ≥ 95 % joined (the tap flow found and covering
//!   the router flow); the `matched` ones carry the tap's app type and provider, and the QoE the
//!   tap measured on the flow (none where it measured none); flows without a tap record say
//!   `unmatched`.
//!
//! A second test: `probe --interface IF --to-kafka BROKER --format jsonl` publishes to
//! `snf.raw.tap` exactly the tap records it prints, keyed by the flow key, with the `record_id`
//! header, each parsing as a `TapRecord`.
//!
//! Each runs against tansu and noida-db (shared/KAFKA_FOR_TESTS.md). Needs root (CAP_BPF, CAP_NET_ADMIN, netns) and `SNF_TESTDATA`; skips loudly without. The figures
//! are printed; deadlines only bound a hung test.

#[path = "../mediator/tests/common/broker.rs"]
mod broker;
mod procs;
#[path = "../enrich-probe/tests/xdp_support/mod.rs"]
mod xdp_support;

use procs::run::{read_run_tables, Run};
use procs::{bin, strip_ansi, wait_until, Proc};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const CAPTURES: [&str; 3] = [
    "apps/ndpi/conferencing_voip/whatsapp_login_call.pcap",
    "apps/ndpi/video_streaming/instagram.pcap",
    "apps/ndpi/conferencing_voip/zoom2.pcap",
];
/// Replayed after the tap stopped: flows only the router sees, which must come out `unmatched`.
const ROUTER_ONLY: &str = "apps/ndpi/video_streaming/rtmp.pcap";
const SUPER_TOPIC: &str = "snf.super_flows";
const TAP_TOPIC: &str = "snf.raw.tap";

fn str_at<'v>(v: &'v Value, path: &[&str]) -> Option<&'v str> {
    path.iter().try_fold(v, |v, k| v.get(k))?.as_str()
}

/// The value of an unlabelled metric in a Prometheus text page.
fn metric(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// The namespace of a test, entered by the test's thread: every process it starts and every
/// socket it opens (the broker, `run`, the Kafka clients) live there, on its own loopback.
/// Fields drop in order: the thread leaves the namespace, then the namespace goes.
struct Inside {
    _entered: Option<xdp_support::Entered>,
    ns: xdp_support::NetNs,
}

impl Inside {
    fn new(tag: &str) -> Inside {
        let ns = xdp_support::NetNs::create(tag).expect("namespace");
        if !ns.name.is_empty() {
            let up = Command::new("ip")
                .args(["-n", &ns.name, "link", "set", "lo", "up"])
                .status()
                .expect("ip link set lo up");
            assert!(up.success(), "loopback up in {}", ns.name);
        }
        let entered = ns.enter().expect("entering the namespace");
        Inside {
            _entered: entered,
            ns,
        }
    }

    /// `cmd ARGS` inside the namespace (with its own /sys, as tools that look at interfaces
    /// expect), or as is when the devices were given (`SNF_XDP_DEV`).
    fn command(&self, program: &Path) -> Command {
        if self.ns.name.is_empty() {
            return Command::new(program);
        }
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns.name]).arg(program);
        c
    }
}

/// `supernetflow probe --interface` on the receiving end, until SIGTERM.
struct LiveProbe {
    proc: Proc,
    out: PathBuf,
    err: PathBuf,
    report: PathBuf,
}

impl LiveProbe {
    fn start(inside: &Inside, work: &Path, tag: &str, args: &[&str]) -> LiveProbe {
        let out = work.join(format!("probe-{tag}.jsonl"));
        let err = work.join(format!("probe-{tag}.err"));
        let report = work.join(format!("probe-{tag}.json"));
        let mut cmd = inside.command(Path::new(bin()));
        cmd.env("NO_COLOR", "1")
            .args(["probe", "--interface", &inside.ns.rx, "--attach", "xdp"])
            .args(["--tap-id", "live-tap", "--no-flow-stats"])
            .args(args)
            .arg("--report")
            .arg(&report)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).expect("probe out"))
            .stderr(std::fs::File::create(&err).expect("probe err"));
        let mut proc = Proc::spawn(&format!("probe --interface [{tag}]"), &mut cmd);
        let text = || strip_ansi(&std::fs::read_to_string(&err).unwrap_or_default());
        assert!(
            wait_until(Duration::from_secs(30), || text().contains("Tap attached")
                || !proc.running()),
            "probe [{tag}] did not attach: {}",
            text()
        );
        assert!(proc.running(), "probe [{tag}] exited: {}", text());
        LiveProbe {
            proc,
            out,
            err,
            report,
        }
    }

    /// SIGTERM; the probe must exit cleanly. Returns its report and what it printed.
    fn stop(mut self) -> (Value, String) {
        let status = self.proc.terminate(Duration::from_secs(60));
        let err = strip_ansi(&std::fs::read_to_string(&self.err).unwrap_or_default());
        assert!(status.success(), "probe exited {status}: {err}");
        let rep: Value = serde_json::from_slice(&std::fs::read(&self.report).expect("report"))
            .expect("report JSON");
        (rep, std::fs::read_to_string(&self.out).unwrap_or_default())
    }
}

/// Sends the capture into the sending end at `pps` packets/s; returns the packets sent.
fn replay(inside: &Inside, tcpreplay: &Path, pcap: &Path, pps: u32) -> u64 {
    let out = inside
        .command(tcpreplay)
        .args(["-q", "-i", &inside.ns.tx, "--pps", &pps.to_string()])
        .arg(pcap)
        .output()
        .expect("tcpreplay");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tcpreplay {}: {text}", pcap.display());
    // "Actual: 342 packets (112658 bytes) sent in ..."
    text.split("Actual:")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no packet count in tcpreplay's output: {text}"))
}

/// The router's view of the wire: dumpcap on the sending end, writing classic pcap.
struct Wire {
    proc: Proc,
    err: PathBuf,
    file: PathBuf,
}

impl Wire {
    fn start(inside: &Inside, dumpcap: &Path, work: &Path) -> Wire {
        let file = work.join("wire.pcap");
        let err = work.join("dumpcap.err");
        let mut cmd = inside.command(dumpcap);
        cmd.args(["-i", &inside.ns.tx, "-P", "-w"])
            .arg(&file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err).expect("dumpcap err"));
        let mut proc = Proc::spawn("dumpcap", &mut cmd);
        let text = || std::fs::read_to_string(&err).unwrap_or_default();
        assert!(
            wait_until(Duration::from_secs(20), || text().contains("Capturing on")
                || !proc.running()),
            "dumpcap did not start: {}",
            text()
        );
        Wire { proc, err, file }
    }

    /// The packets dumpcap has written so far (its progress line, "Packets: N").
    fn captured(&self) -> u64 {
        let text = std::fs::read_to_string(&self.err).unwrap_or_default();
        text.rsplit("Packets: ")
            .next()
            .filter(|_| text.contains("Packets: "))
            .and_then(|r| r.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }

    /// Waits until at least `sent` frames are written, then stops dumpcap; the recording.
    fn finish(mut self, sent: u64) -> PathBuf {
        let caught_up = wait_until(Duration::from_secs(30), || self.captured() >= sent);
        let status = self.proc.terminate(Duration::from_secs(20));
        assert!(status.success(), "dumpcap exited {status}");
        assert!(
            caught_up,
            "dumpcap recorded {} of {sent} frames",
            self.captured()
        );
        self.file
    }
}

/// What the tap said about a key: provider and app type of its last record, and every non-empty
/// QoE block its records carried (the join attaches the latest one).
type TapView = BTreeMap<String, (Option<String>, String, BTreeSet<String>)>;

/// A JSON value without its null members (Parquet rows leave them out, JSON messages write them).
fn no_nulls(v: &Value) -> Value {
    match v {
        Value::Object(o) => Value::Object(
            o.iter()
                .filter(|(_, x)| !x.is_null())
                .map(|(k, x)| (k.clone(), no_nulls(x)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(no_nulls).collect()),
        x => x.clone(),
    }
}

/// A record's QoE block when it has one (video, gaming or conferencing filled), as comparable text.
fn qoe_of(r: &Value) -> Option<String> {
    let q = no_nulls(&r["qoe"]);
    q.as_object()
        .filter(|o| !o.is_empty())
        .map(|_| q.to_string())
}

fn tap_view(taps: &[Value]) -> TapView {
    let mut m = TapView::new();
    for t in taps {
        if let Some(k) = str_at(t, &["key", "flow_key"]) {
            let e = m.entry(k.to_string()).or_default();
            e.0 = str_at(t, &["app", "provider"]).map(str::to_string);
            e.1 = str_at(t, &["app", "app_type"])
                .unwrap_or("unknown")
                .to_string();
            e.2.extend(qoe_of(t));
        }
    }
    m
}

/// The join's figures over one output's super-flows.
#[derive(Debug, Default, PartialEq)]
struct Figures {
    router: usize,
    seen: usize,
    joined: usize,
    matched: usize,
    partial: usize,
    unmatched: usize,
    labelled_ok: usize,
    labelled: usize,
    qoe_ok: usize,
    qoe: usize,
}

/// Checks one output's super-flows against the tap's view; returns the figures.
fn judge(what: &str, supers: &[Value], tap: &TapView) -> Figures {
    let mut f = Figures {
        router: supers.len(),
        ..Figures::default()
    };
    for s in supers {
        let status = str_at(s, &["enrichment_status"]).expect("enrichment_status");
        match status {
            "matched" => f.matched += 1,
            "partial" => f.partial += 1,
            "unmatched" => f.unmatched += 1,
            other => panic!("{what}: enrichment_status {other}"),
        }
        let key = str_at(s, &["flow", "flow_key"]).unwrap_or("");
        let Some((provider, app_type, qoes)) = tap.get(key) else {
            assert_eq!(
                status, "unmatched",
                "{what}: no tap record for {key}, yet {status}"
            );
            assert!(s["app"].is_null() && qoe_of(s).is_none(), "{what}: {s}");
            continue;
        };
        f.seen += 1;
        // Joined: the tap flow was found and covers the router flow (`partial` with full
        // coverage is a flow the tap saw whole but did not classify: the join's own rule).
        let conf = s["enrichment"]["confidence"].as_f64().unwrap_or(0.0);
        if status == "matched" || (status == "partial" && conf >= 0.9) {
            f.joined += 1;
        }
        if status == "matched" {
            f.labelled += 1;
            if str_at(s, &["provider"]).map(str::to_string) == *provider
                && str_at(s, &["app_type"]) == Some(app_type.as_str())
            {
                f.labelled_ok += 1;
            }
            // The tap's QoE, when it measured any on the flow; none when it measured none.
            let got = qoe_of(s);
            if !qoes.is_empty() {
                f.qoe += 1;
                if got.as_ref().is_some_and(|q| qoes.contains(q)) {
                    f.qoe_ok += 1;
                }
            } else {
                assert_eq!(got, None, "{what}: QoE the tap did not measure: {s}");
            }
        }
    }
    f
}

/// Rows in row form through the published Arrow schema of super-flows, as `read_table` gives
/// them back from Parquet.
fn as_table_rows(rows: &[Value]) -> Vec<Value> {
    let schema = std::sync::Arc::new(schemas::published::arrow_schema(
        schemas::RecordKind::SuperFlow,
    ));
    let mut d = arrow_json::ReaderBuilder::new(schema)
        .build_decoder()
        .expect("decoder");
    d.serialize(rows).expect("rows into Arrow");
    let mut out = Vec::with_capacity(rows.len());
    while let Some(b) = d.flush().expect("a batch") {
        out.extend(procs::run::batch_json(&b));
    }
    out
}

fn id_counts<'a>(rows: impl Iterator<Item = &'a Value>) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in rows {
        *m.entry(str_at(r, &["record_id"]).unwrap_or("").to_string())
            .or_insert(0) += 1;
    }
    m
}

fn live_join(kind: broker::Kind) {
    let test = format!(
        "live_router_and_xdp_tap_join_in_run_to_kafka_and_parquet_{}",
        kind.name()
    );
    let t = test.as_str();
    if !xdp_support::privileged(t) {
        return;
    }
    let mut pcaps = Vec::new();
    for rel in CAPTURES {
        let Some(p) = procs::testdata(t, rel) else {
            return;
        };
        pcaps.push(p);
    }
    let Some(router_only) = procs::testdata(t, ROUTER_ONLY) else {
        return;
    };
    let Some(tools) = procs::tools(t, &["tcpreplay", "dumpcap", "softflowd", "softflowctl"]) else {
        return;
    };
    let Some(broker_bin) = broker::binary_or_skip(kind, t) else {
        return;
    };
    let work = tempfile::tempdir().expect("tempdir");
    let w = work.path();
    let inside = Inside::new(&format!("j{}", &kind.name()[..1]));

    let b = broker::Broker::start(kind, &broker_bin, broker::free_port());
    b.create_topic(SUPER_TOPIC);
    let bootstrap = b.bootstrap();
    let run = Run::start(
        &w.join("run"),
        &["--tcp", "127.0.0.1:0", "--kafka-brokers", &bootstrap],
    );
    let tcp = run.tcp.expect("run listens on TCP").to_string();

    // The wire: the router's recording on the sending end, the tap on the receiving end.
    let wire = Wire::start(&inside, &tools[1], w);
    // Before the tap is attached: traffic only the router sees (it must come out unmatched).
    let mut sent = replay(&inside, &tools[0], &router_only, 2000);
    // The tap reports every second while a flow is active, as it does every 30 s by default.
    let probe = LiveProbe::start(
        &inside,
        w,
        "join",
        &["--export", &tcp, "--update-secs", "1", "--scan-secs", "1"],
    );
    for p in &pcaps {
        sent += replay(&inside, &tools[0], p, 500);
    }
    let recording = wire.finish(sent);

    // The router meters the wire and exports (it reads the recording at once) while the tap
    // still watches: router flows whose tap flow is not over yet wait in the join.
    procs::run_softflowd(&tools[2], &tools[3], w, &recording, run.udp, 10, "router");
    let gauge = |name: &str| metric(&run.get("/metrics").1, name);
    let mut last = None;
    assert!(
        wait_until(Duration::from_secs(60), || {
            // The join's metrics move once a second.
            let now = gauge("snf_join_router_records_total");
            let quiet = now.is_some_and(|n| n > 0.0) && now == last;
            last = now;
            if !quiet {
                std::thread::sleep(Duration::from_millis(1500));
            }
            quiet
        }),
        "the router's records did not reach the join: {last:?}"
    );
    let waiting = gauge("snf_join_pending_router_records").unwrap_or(0.0);

    // The tap stops: every flow it holds is reported (`end`), settling the waiting records.
    let (rep, _) = probe.stop();
    let exported = rep["export"]["encoder"]["records"]
        .as_u64()
        .expect("exported records");
    assert_eq!(rep["export"]["encoder"]["records_failed"], 0, "{rep}");
    assert!(exported > 0, "the tap exported nothing: {rep}");
    let tap_in = || gauge("snf_mediate_tap_records_total");
    assert!(
        wait_until(Duration::from_secs(60), || tap_in()
            == Some(exported as f64)),
        "run received {:?} of {exported} tap records",
        tap_in()
    );
    // The join has taken them all (its metrics move once a second): what still waits then are
    // router records without a tap flow, until their grace runs out or `run` stops.
    assert!(
        wait_until(Duration::from_secs(20), || gauge(
            "snf_join_tap_records_total"
        ) == Some(exported as f64)),
        "the join took {:?} of {exported} tap records",
        gauge("snf_join_tap_records_total")
    );
    let still = gauge("snf_join_pending_router_records").unwrap_or(-1.0);
    let grace_expired = gauge("snf_join_grace_expired_total").unwrap_or(0.0);
    let data = run.dir.join("data/parquet");
    let st = run.stop(Duration::from_secs(90));
    assert!(st.ok, "run exited with {}: {}", st.status, st.stderr);
    assert_eq!(st.report["tap_invalid"], 0, "{}", st.report);
    assert_eq!(st.report["kafka"]["failed"], 0, "{}", st.report);

    let (flows, supers, taps) = read_run_tables(&data, exported);
    assert!(!flows.is_empty(), "softflowd exported nothing");

    // Every router flow exactly once, in Parquet and in Kafka.
    let flow_ids = id_counts(flows.iter());
    assert!(
        flow_ids.values().all(|&n| n == 1),
        "duplicate router record ids"
    );
    assert_eq!(
        id_counts(supers.iter()),
        flow_ids,
        "super_flows (Parquet) must hold every router flow once"
    );
    let got = broker::consume_all(
        &bootstrap,
        SUPER_TOPIC,
        flows.len(),
        Duration::from_secs(30),
    );
    let mut topic = Vec::with_capacity(got.len());
    for m in &got {
        let v: Value = serde_json::from_slice(&m.payload).expect("JSON message");
        assert_eq!(m.record_id, str_at(&v, &["record_id"]).unwrap_or(""));
        assert_eq!(
            m.key,
            str_at(&v, &["flow", "flow_key"]).unwrap_or("").as_bytes(),
            "message key = flow key"
        );
        topic.push(
            schemas::published::to_row(schemas::RecordKind::SuperFlow, &v).expect("row form"),
        );
    }
    // As the Parquet sink writes them (row form through the published Arrow schema), read back
    // the way the Parquet table is.
    let topic = as_table_rows(&topic);
    assert_eq!(
        id_counts(topic.iter()),
        flow_ids,
        "{SUPER_TOPIC} must hold every router flow once"
    );
    // The two outputs agree on each record's verdict and labels.
    let verdicts = |rows: &[Value]| -> BTreeMap<String, (String, String, Option<String>)> {
        rows.iter()
            .map(|r| {
                (
                    str_at(r, &["record_id"]).unwrap_or("").to_string(),
                    (
                        str_at(r, &["enrichment_status"]).unwrap_or("").to_string(),
                        str_at(r, &["app_type"]).unwrap_or("").to_string(),
                        str_at(r, &["provider"]).map(str::to_string),
                    ),
                )
            })
            .collect()
    };
    assert_eq!(
        verdicts(&topic),
        verdicts(&supers),
        "Kafka and Parquet disagree on a verdict"
    );
    // And field for field.
    let by_id = |rows: &[Value]| -> BTreeMap<String, Value> {
        rows.iter()
            .map(|r| {
                (
                    str_at(r, &["record_id"]).unwrap_or("").to_string(),
                    no_nulls(r),
                )
            })
            .collect()
    };
    let (kb, pb) = (by_id(&topic), by_id(&supers));
    let differ: Vec<&String> = kb
        .iter()
        .filter(|(id, v)| pb.get(*id) != Some(v))
        .map(|(id, _)| id)
        .collect();
    if let Some(id) = differ.first() {
        panic!(
            "{} super-flows differ between Kafka and Parquet, e.g. {id}:\nkafka   {}\nparquet {}",
            differ.len(),
            kb[*id],
            pb.get(*id).unwrap_or(&Value::Null)
        );
    }

    let view = tap_view(&taps);
    let fp = judge("parquet", &supers, &view);
    let fk = judge("kafka", &topic, &view);
    let missed: BTreeSet<&str> = supers
        .iter()
        .filter(|s| str_at(s, &["enrichment_status"]) == Some("unmatched"))
        .filter_map(|s| str_at(s, &["flow", "flow_key"]))
        .filter(|k| view.contains_key(*k))
        .collect();
    let share = fp.joined as f64 / fp.seen.max(1) as f64;
    eprintln!(
        "{t}: {sent} packets on the wire; {} tap records ({} keys); {} router flows ({} only the \
         router saw), {} with a tap record, {} of those joined ({:.1} %); {} matched, {} partial, {} unmatched; matched \
         carrying the tap's app type and provider {}/{}, QoE where the tap measured it {}/{}; \
         Kafka = Parquet: {}; keys seen but unmatched: {missed:?}; router records waiting for the \
         tap's end: {waiting}, still waiting when the tap's records were in: {still}, grace expired: \
         {grace_expired}",
        exported,
        view.len(),
        fp.router,
        fp.router - fp.seen,
        fp.seen,
        fp.joined,
        share * 100.0,
        fp.matched,
        fp.partial,
        fp.unmatched,
        fp.labelled_ok,
        fp.labelled,
        fp.qoe_ok,
        fp.qoe,
        fp == fk
    );
    assert_eq!(fp, fk, "Kafka and Parquet give different figures");
    assert!(fp.seen > 0, "the tap saw none of the router flows");
    assert!(share >= 0.95, "joined share {share:.3} below 0.95");
    assert!(
        still <= (fp.router - fp.seen) as f64,
        "{still} router records still waited after the tap's last records, only {} had no tap \
         flow",
        fp.router - fp.seen
    );
    assert!(fp.matched > 0, "nothing matched");
    assert!(
        fp.router > fp.seen,
        "no router-only flows (replayed after the tap stopped)"
    );
    assert_eq!(
        fp.labelled_ok, fp.labelled,
        "matched flows carry the tap's labels"
    );
    assert_eq!(fp.qoe_ok, fp.qoe, "matched flows carry the tap's QoE");
}

#[test]
fn live_router_and_xdp_tap_join_in_run_to_kafka_and_parquet_tansu() {
    live_join(broker::Kind::Tansu);
}

#[test]
fn live_router_and_xdp_tap_join_in_run_to_kafka_and_parquet_noida() {
    live_join(broker::Kind::Noida);
}

fn live_to_kafka(kind: broker::Kind) {
    let test = format!(
        "live_probe_to_kafka_publishes_what_it_prints_{}",
        kind.name()
    );
    let t = test.as_str();
    if !xdp_support::privileged(t) {
        return;
    }
    let Some(pcap) = procs::testdata(t, CAPTURES[0]) else {
        return;
    };
    let Some(tools) = procs::tools(t, &["tcpreplay"]) else {
        return;
    };
    let Some(broker_bin) = broker::binary_or_skip(kind, t) else {
        return;
    };
    let work = tempfile::tempdir().expect("tempdir");
    let inside = Inside::new(&format!("k{}", &kind.name()[..1]));
    let b = broker::Broker::start(kind, &broker_bin, broker::free_port());
    let bootstrap = b.bootstrap();
    let spool = work.path().join("spool");
    let spool = spool.to_string_lossy();
    let probe = LiveProbe::start(
        &inside,
        work.path(),
        "kafka",
        &[
            "--to-kafka",
            &bootstrap,
            "--partitions",
            "3",
            "--spool-dir",
            &spool,
            "--format",
            "jsonl",
        ],
    );
    let sent = replay(&inside, &tools[0], &pcap, 2000);
    let (rep, printed) = probe.stop();
    let printed: Vec<Value> = printed
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["key"]["flow_key"].is_string()) // tap records, not session lines
        .collect();
    assert!(!printed.is_empty(), "the live probe printed no tap record");
    assert_eq!(rep["kafka"]["failed"], 0, "{rep}");
    assert_eq!(
        rep["kafka"]["delivered"].as_u64(),
        Some(printed.len() as u64),
        "delivered = printed: {rep}"
    );
    let got = broker::consume_all(
        &bootstrap,
        TAP_TOPIC,
        printed.len(),
        Duration::from_secs(30),
    );
    let mut topic = Vec::with_capacity(got.len());
    for m in &got {
        let v: Value = serde_json::from_slice(&m.payload).expect("JSON message");
        assert_eq!(
            m.key,
            str_at(&v, &["key", "flow_key"]).unwrap_or("").as_bytes(),
            "message key = flow key"
        );
        assert_eq!(m.record_id, str_at(&v, &["record_id"]).unwrap_or(""));
        // It parses as a tap record, as `mediate` reads it.
        serde_json::from_value::<schemas::TapRecord>(v.clone()).expect("a TapRecord");
        topic.push(v);
    }
    let bag = |v: &[Value]| -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for x in v {
            *m.entry(x.to_string()).or_insert(0) += 1;
        }
        m
    };
    let keys: BTreeSet<&str> = printed
        .iter()
        .filter_map(|v| str_at(v, &["key", "flow_key"]))
        .collect();
    eprintln!(
        "{t}: {sent} packets; the live probe printed {} tap records ({} flows), {TAP_TOPIC} \
         holds {}",
        printed.len(),
        keys.len(),
        topic.len()
    );
    assert_eq!(
        bag(&topic),
        bag(&printed),
        "{TAP_TOPIC} holds exactly the tap records the probe printed"
    );
}

#[test]
fn live_probe_to_kafka_publishes_what_it_prints_tansu() {
    live_to_kafka(broker::Kind::Tansu);
}

#[test]
fn live_probe_to_kafka_publishes_what_it_prints_noida() {
    live_to_kafka(broker::Kind::Noida);
}
