//! Scale-out through Kafka, end to end, against each Kafka-protocol broker of
//! shared/KAFKA_FOR_TESTS.md (tansu and noida-db, each started on a free port):
//!
//! - the router: app captures from `shared/testdata/apps` replayed into softflowd, exporting IPFIX
//!   to `supernetflow collect --to-kafka` (which also prints what it decoded); the tap:
//!   `supernetflow probe --pcap ... --to-kafka`. The raw topics hold exactly those records, and
//!   every message parses into its record type and serializes back to the same bytes;
//! - raw topics whose partition counts differ stop `collect --to-kafka` and `mediate` at start;
//! - (b) two `mediate` instances in one group: the first consuming, the second started while a
//!   capture is being produced (a rebalance), then the first stopped while the next capture is
//!   produced (another rebalance): the union of their super-flows holds every router record
//!   exactly once, the same record ids as (a) one instance reading everything in its own group.
//!   Join results (matched / partial / unmatched) that differ from (a) are counted and must not
//!   outnumber the router records the rebalances flushed early; the figures are printed.
//!
//! Deadlines only bound a hung test; nothing asserts timing.

#[path = "../mediator/tests/common/broker.rs"]
mod broker;
mod procs;

use procs::run::{http_get, read_table};
use procs::{bin, strip_ansi, wait_until, CollectOpts, Collector, Proc};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CAPTURES: [&str; 3] = [
    "apps/ndpi/conferencing_voip/whatsapp_login_call.pcap",
    "apps/ndpi/video_streaming/instagram.pcap",
    "apps/ndpi/conferencing_voip/zoom2.pcap",
];
const PARTITIONS: &str = "4";
const FLOWS_TOPIC: &str = "snf.raw.flows";
const TAP_TOPIC: &str = "snf.raw.tap";

/// What one capture put into the raw topics.
struct Produced {
    /// The router flow records `collect` decoded (and printed), as JSON.
    flows: Vec<Value>,
    /// Tap records the probe delivered.
    taps: u64,
}

fn produce(work: &Path, bootstrap: &str, pcap: &Path, tag: &str, tools: &[PathBuf]) -> Produced {
    let spool = work.join(format!("spool-collect-{tag}"));
    let mut c = Collector::start(
        work,
        &format!("collect-{tag}"),
        &CollectOpts {
            extra: vec![
                "--to-kafka".into(),
                bootstrap.into(),
                "--partitions".into(),
                PARTITIONS.into(),
                "--spool-dir".into(),
                spool.display().to_string(),
            ],
            ..CollectOpts::default()
        },
    );
    procs::run_softflowd(&tools[0], &tools[1], work, pcap, c.udp_addr(), 10, tag);
    c.wait_quiet(Duration::from_millis(1500), Duration::from_secs(30));
    let fin = c.stop();
    assert!(
        fin.status.success(),
        "collect --to-kafka [{tag}] exited {}: {}",
        fin.status,
        fin.stderr
    );
    assert!(
        !fin.records.is_empty(),
        "softflowd exported nothing [{tag}]"
    );
    assert_eq!(
        fin.report["kafka"]["delivered"].as_u64(),
        Some(fin.records.len() as u64),
        "collect [{tag}] delivered every decoded record: {}",
        fin.report
    );
    assert_eq!(fin.report["kafka"]["failed"], 0, "{}", fin.report);

    let spool = work.join(format!("spool-probe-{tag}"));
    let spool = spool.to_string_lossy();
    let rep = procs::probe_report(
        work,
        tag,
        "e2e-tap",
        &[pcap],
        &[
            "--to-kafka",
            bootstrap,
            "--partitions",
            PARTITIONS,
            "--spool-dir",
            &spool,
        ],
    );
    let taps = rep["kafka"]["delivered"].as_u64().expect("delivered");
    assert_eq!(
        Some(taps),
        rep["pipeline"]["tap_records"].as_u64(),
        "probe [{tag}] delivered every tap record: {rep}"
    );
    assert_eq!(rep["kafka"]["failed"], 0, "{rep}");
    Produced {
        flows: fin.records,
        taps,
    }
}

/// A running `supernetflow mediate`.
struct Mediate {
    tag: String,
    proc: Proc,
    http: SocketAddr,
    dir: PathBuf,
    report: PathBuf,
    stderr: PathBuf,
}

/// What a stopped mediator left: its report and its super-flows.
struct MediateDone {
    report: Value,
    supers: Vec<Value>,
    /// Its log lines about refused commits.
    commit_log: Vec<String>,
}

impl Mediate {
    fn start(work: &Path, tag: &str, bootstrap: &str, group: &str, session_ms: u64) -> Mediate {
        let dir = work.join(tag);
        std::fs::create_dir_all(&dir).expect("dir");
        let cfg = dir.join("mediate.toml");
        std::fs::write(
            &cfg,
            format!(
                "[scaleout]\nsession_timeout_ms = {session_ms}\ncommit_interval_secs = 2\n\
                 sync_timeout_secs = 20\n"
            ),
        )
        .expect("config");
        let (ready, report, stderr) = (
            dir.join("ready"),
            dir.join("report.json"),
            dir.join("stderr.log"),
        );
        let mut cmd = Command::new(bin());
        cmd.current_dir(&dir)
            .env("NO_COLOR", "1")
            .env_remove("SNF_CONFIG")
            .arg("mediate")
            .arg("--config")
            .arg(&cfg)
            .args(["--brokers", bootstrap, "--group", group])
            .args(["--http", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(dir.join("data"))
            .arg("--ready-file")
            .arg(&ready)
            .arg("--report")
            .arg(&report)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr).expect("stderr file"));
        let mut proc = Proc::spawn(&format!("supernetflow mediate [{tag}]"), &mut cmd);
        let ok = wait_until(Duration::from_secs(30), || {
            ready.exists() || !proc.running()
        });
        let text = std::fs::read_to_string(&ready).unwrap_or_default();
        let http = text
            .lines()
            .find_map(|l| l.strip_prefix("http "))
            .and_then(|a| a.trim().parse().ok());
        let Some(http) = http.filter(|_| ok) else {
            panic!(
                "mediate [{tag}] did not become ready: {}",
                strip_ansi(&std::fs::read_to_string(&stderr).unwrap_or_default())
            );
        };
        Mediate {
            tag: tag.to_string(),
            proc,
            http,
            dir,
            report,
            stderr,
        }
    }

    fn metric(&self, series: &str) -> u64 {
        let (code, page) = http_get(self.http, "/metrics", None);
        if code != 200 {
            return 0;
        }
        page.lines()
            .find_map(|l| {
                l.strip_prefix(series)?
                    .strip_prefix(' ')?
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .map(|v| v as u64)
            .unwrap_or(0)
    }

    /// (router flows, tap records) consumed so far.
    fn consumed(&self) -> (u64, u64) {
        (
            self.metric("snf_scaleout_consumed_records_total{topic=\"flows\"}"),
            self.metric("snf_scaleout_consumed_records_total{topic=\"tap\"}"),
        )
    }

    fn stderr_text(&self) -> String {
        strip_ansi(&std::fs::read_to_string(&self.stderr).unwrap_or_default())
    }

    /// SIGTERM without waiting.
    fn term(&self) {
        self.proc.signal("TERM");
    }

    /// Waits for the exit (after `term`, or sends it), checks it was clean, reads the outputs.
    fn stop(mut self) -> MediateDone {
        let status = self.proc.terminate(Duration::from_secs(90));
        assert!(
            status.success(),
            "mediate [{}] exited {status}: {}",
            self.tag,
            self.stderr_text()
        );
        let report: Value =
            serde_json::from_str(&std::fs::read_to_string(&self.report).expect("mediate report"))
                .expect("report JSON");
        let (supers, tmp) = read_table(&self.dir.join("data/parquet/super_flows"));
        assert_eq!(tmp, 0, "temporary Parquet files left by [{}]", self.tag);
        let commit_log = self
            .stderr_text()
            .lines()
            .filter(|l| l.contains("commit failed"))
            .map(str::to_string)
            .collect();
        MediateDone {
            report,
            supers,
            commit_log,
        }
    }
}

/// Waits until `f` holds and the consumed counts of `ms` have not moved for 3 s.
fn wait_settled(what: &str, ms: &[&Mediate], mut f: impl FnMut(u64, u64) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = (u64::MAX, u64::MAX);
    let mut since = Instant::now();
    loop {
        let now = ms
            .iter()
            .map(|m| m.consumed())
            .fold((0, 0), |a, c| (a.0 + c.0, a.1 + c.1));
        if now != last {
            last = now;
            since = Instant::now();
        } else if f(now.0, now.1) && since.elapsed() >= Duration::from_secs(3) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: consumed (flows, taps) = {now:?}; stderr:\n{}",
            ms.iter()
                .map(|m| format!("[{}] {}", m.tag, m.stderr_text()))
                .collect::<Vec<_>>()
                .join("\n")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn status_of(rows: &[Value]) -> BTreeMap<String, Vec<String>> {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in rows {
        let id = r["record_id"].as_str().unwrap_or("").to_string();
        let st = r["enrichment_status"].as_str().unwrap_or("?").to_string();
        m.entry(id).or_default().push(st);
    }
    m
}

fn counts(m: &BTreeMap<String, Vec<String>>) -> BTreeMap<&str, usize> {
    let mut c = BTreeMap::new();
    for v in m.values().flatten() {
        *c.entry(v.as_str()).or_insert(0) += 1;
    }
    c
}

/// Every message of a raw topic parses into its record type and serializes back to the same
/// bytes; returns the payloads as JSON values.
fn round_trip<R: serde::de::DeserializeOwned + serde::Serialize>(
    got: &[broker::Got],
    what: &str,
) -> Vec<Value> {
    got.iter()
        .map(|g| {
            let r: R = serde_json::from_slice(&g.payload)
                .unwrap_or_else(|e| panic!("{what}: not a record ({e})"));
            let again = serde_json::to_vec(&r).expect("serialize");
            assert_eq!(
                again,
                g.payload,
                "{what}: the JSON does not round-trip: {}",
                String::from_utf8_lossy(&g.payload)
            );
            serde_json::from_slice(&g.payload).expect("JSON")
        })
        .collect()
}

fn refuses_topics_with_different_partition_counts(b: &broker::Broker, work: &Path) {
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", b.bootstrap())
        .create()
        .expect("admin");
    let topics = [
        NewTopic::new("mm.flows", 2, TopicReplication::Fixed(1)),
        NewTopic::new("mm.tap", 3, TopicReplication::Fixed(1)),
    ];
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for r in broker::block_on(admin.create_topics(&topics, &opts)).expect("create") {
        r.expect("topic created");
    }
    let collect = Command::new(bin())
        .current_dir(work)
        .args(["collect", "--udp", "127.0.0.1:0", "--no-tcp", "--no-state"])
        .args(["--to-kafka", &b.bootstrap(), "--flows-topic", "mm.flows"])
        .args(["--tap-topic", "mm.tap"])
        .stdin(Stdio::null())
        .output()
        .expect("collect runs");
    let err = strip_ansi(&String::from_utf8_lossy(&collect.stderr));
    assert!(!collect.status.success(), "collect must refuse: {err}");
    assert!(
        err.contains("not co-partitioned") && err.contains("mm.flows has 2 partitions"),
        "{err}"
    );
    let mediate = Command::new(bin())
        .current_dir(work)
        .env_remove("SNF_CONFIG")
        .args([
            "mediate",
            "--no-http",
            "--no-parquet",
            "--brokers",
            &b.bootstrap(),
        ])
        .args(["--flows-topic", "mm.flows", "--tap-topic", "mm.tap"])
        .stdin(Stdio::null())
        .output()
        .expect("mediate runs");
    let err = strip_ansi(&String::from_utf8_lossy(&mediate.stderr));
    assert!(!mediate.status.success(), "mediate must refuse: {err}");
    assert!(err.contains("not co-partitioned"), "{err}");
}

fn scaleout(kind: broker::Kind) {
    let test = format!("scaleout_{}", kind.name());
    let Some(broker_bin) = broker::binary_or_skip(kind, &test) else {
        return;
    };
    let mut pcaps = Vec::new();
    for rel in CAPTURES {
        let Some(p) = procs::testdata(&test, rel) else {
            return;
        };
        pcaps.push(p);
    }
    let Some(tools) = procs::tools(&test, &["softflowd", "softflowctl"]) else {
        return;
    };
    // tansu's group join takes about half the session timeout; noida-db refuses less than
    // 6000 ms (Kafka's default group.min.session.timeout.ms) with InvalidSessionTimeout.
    let session_ms = match kind {
        broker::Kind::Tansu => 2000,
        broker::Kind::Noida => 6000,
    };
    let b = broker::Broker::start(kind, &broker_bin, broker::free_port());
    let bootstrap = b.bootstrap();
    let work = tempfile::tempdir().expect("tempdir");
    let w = work.path();

    refuses_topics_with_different_partition_counts(&b, w);

    // (b) Two mediators in one group, across two rebalances.
    let p0 = produce(w, &bootstrap, &pcaps[0], "c0", &tools);
    let m1 = Mediate::start(w, "m1", &bootstrap, "pair", session_ms);
    let (f0, t0) = (p0.flows.len() as u64, p0.taps);
    wait_settled("m1 alone", &[&m1], |f, t| f >= f0 && t >= t0);
    let (code, _) = http_get(m1.http, "/healthz", None);
    assert_eq!(code, 200);

    let m2 = Mediate::start(w, "m2", &bootstrap, "pair", session_ms);
    // The group rebalances while this capture goes in.
    let p1 = produce(w, &bootstrap, &pcaps[1], "c1", &tools);
    let f01 = f0 + p1.flows.len() as u64;
    let t01 = t0 + p1.taps;
    assert!(
        wait_until(Duration::from_secs(60), || m2
            .metric("snf_scaleout_assigned_partitions")
            > 0),
        "m2 never got partitions: {}",
        m2.stderr_text()
    );
    wait_settled("m1 + m2", &[&m1, &m2], |f, t| f >= f01 && t >= t01);

    // The first leaves while the last capture goes in.
    m1.term();
    let p2 = produce(w, &bootstrap, &pcaps[2], "c2", &tools);
    let d1 = m1.stop();
    let m1_flows = d1.report["scaleout"]["flows_consumed"]
        .as_u64()
        .expect("m1 flows");
    let total_flows = f01 + p2.flows.len() as u64;
    let total_taps = t01 + p2.taps;
    wait_settled("m2 after m1 left", &[&m2], |f, _| {
        f + m1_flows >= total_flows
    });
    let d2 = m2.stop();

    // What the raw topics hold: exactly what collect decoded and the probe sent, round-tripping.
    let all_flows: Vec<Value> = [&p0, &p1, &p2]
        .iter()
        .flat_map(|p| p.flows.iter().cloned())
        .collect();
    let raw_flows = broker::consume_all(
        &bootstrap,
        FLOWS_TOPIC,
        all_flows.len(),
        Duration::from_secs(20),
    );
    let raw_taps = broker::consume_all(
        &bootstrap,
        TAP_TOPIC,
        total_taps as usize,
        Duration::from_secs(20),
    );
    let topic_flows = round_trip::<schemas::FlowRecord>(&raw_flows, FLOWS_TOPIC);
    let topic_taps = round_trip::<schemas::TapRecord>(&raw_taps, TAP_TOPIC);
    let as_set = |v: &[Value]| -> BTreeMap<String, usize> {
        let mut m = BTreeMap::new();
        for x in v {
            *m.entry(x.to_string()).or_insert(0) += 1;
        }
        m
    };
    assert_eq!(
        as_set(&topic_flows),
        as_set(&all_flows),
        "the flows topic holds exactly the records collect decoded"
    );
    assert_eq!(topic_taps.len() as u64, total_taps);
    for g in &raw_flows {
        let key = String::from_utf8_lossy(&g.key).into_owned();
        let v: Value = serde_json::from_slice(&g.payload).expect("JSON");
        assert_eq!(
            v["flow_key"].as_str().unwrap_or(""),
            key,
            "keyed by the flow key"
        );
    }

    // (a) One mediator, its own group, everything.
    let single = Mediate::start(w, "single", &bootstrap, "single", session_ms);
    wait_settled("single", &[&single], |f, t| {
        f >= total_flows && t >= total_taps
    });
    assert_eq!(single.consumed(), (total_flows, total_taps));
    // Its dashboard: the super-flows it published plus the router records its join still holds
    // are every router record, and the join's outcome covers each published super-flow.
    let mut summary = Value::Null;
    let accounted = wait_until(Duration::from_secs(30), || {
        let (code, body) = http_get(single.http, "/api/v1/summary", None);
        summary = serde_json::from_str(&body).unwrap_or(Value::Null);
        let published = summary["totals"]["super_flows"].as_u64();
        let pending = summary["join"]["pending_router_records"].as_u64();
        code == 200 && published.zip(pending).map(|(a, b)| a + b) == Some(total_flows)
    });
    assert!(
        accounted,
        "mediate's /api/v1/summary never accounted for all {total_flows} router records: {summary}"
    );
    let outcome = ["matched", "partial", "unmatched"]
        .iter()
        .map(|k| summary["join"][k].as_u64().unwrap_or(0))
        .sum::<u64>();
    assert_eq!(
        Some(outcome),
        summary["totals"]["super_flows"].as_u64(),
        "the summary's join outcome covers every published super-flow: {summary}"
    );
    let (code, page) = http_get(single.http, "/dashboard", None);
    assert_eq!(code, 200, "mediate serves the dashboard");
    assert!(page.contains("/api/v1/summary"), "the dashboard page");
    let summary_matched = summary["join"]["matched"].as_u64().unwrap_or(0);
    let ds = single.stop();

    let want_ids: BTreeSet<String> = all_flows
        .iter()
        .map(|v| v["record_id"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        want_ids.len(),
        all_flows.len(),
        "router record ids are unique"
    );
    let s_single = status_of(&ds.supers);
    let matched_at_end = s_single
        .values()
        .filter(|v| v.first().map(String::as_str) == Some("matched"))
        .count() as u64;
    assert!(
        summary_matched <= matched_at_end,
        "the dashboard counted {summary_matched} matched, the output has {matched_at_end}"
    );
    assert_eq!(
        s_single.keys().cloned().collect::<BTreeSet<_>>(),
        want_ids,
        "one instance: every router record"
    );
    assert!(
        s_single.values().all(|v| v.len() == 1),
        "one instance: none twice"
    );

    let mut union = d1.supers.clone();
    union.extend(d2.supers.iter().cloned());
    let s_pair = status_of(&union);
    let n = |d: &MediateDone, k: &str| d.report["scaleout"][k].as_u64().unwrap_or(0);
    let twice: Vec<&String> = s_pair
        .iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(k, _)| k)
        .collect();
    let pair_ids: BTreeSet<String> = s_pair.keys().cloned().collect();
    let missing: Vec<&String> = want_ids.difference(&pair_ids).collect();
    assert!(
        missing.is_empty(),
        "lost across the rebalances: {missing:?}"
    );
    assert_eq!(pair_ids, want_ids);
    assert!(!d1.supers.is_empty() && !d2.supers.is_empty());
    let m2_flows = d2.report["scaleout"]["flows_consumed"]
        .as_u64()
        .unwrap_or(0);
    let refused = n(&d1, "commit_errors") + n(&d2, "commit_errors");
    let refusals: Vec<&String> = d1.commit_log.iter().chain(&d2.commit_log).collect();
    if kind == broker::Kind::Noida && refused > 0 {
        // Known gap of noida-db 0.2.3: it refuses the offset commit a member makes in its
        // revocation callback (IllegalGeneration), which Apache Kafka accepts while the group
        // prepares the rebalance. The next owner then re-reads those partitions from the last
        // periodic commit: nothing is lost, the re-read router records come out twice.
        assert!(
            refusals.iter().all(|l| l.contains("IllegalGeneration")),
            "{refusals:?}"
        );
        eprintln!(
            "{test}: KNOWN BROKER GAP: noida-db refused {refused} revocation commits \
             (IllegalGeneration): {} router records emitted twice, {} read twice, none lost",
            twice.len(),
            (m1_flows + m2_flows).saturating_sub(total_flows)
        );
    } else {
        assert!(
            twice.is_empty(),
            "emitted twice across the rebalances: {} {:?}; commits refused: {refusals:?}; \
             m1: {}; m2: {}",
            twice.len(),
            twice.iter().take(3).collect::<Vec<_>>(),
            d1.report["scaleout"],
            d2.report["scaleout"],
        );
        // Router records were read once in all: only tap partitions are re-read (rewound).
        assert_eq!(
            m1_flows + m2_flows,
            total_flows,
            "router records consumed once"
        );
        for d in [&d1, &d2] {
            assert_eq!(
                n(d, "commits_skipped") + n(d, "commit_errors"),
                0,
                "{}",
                d.report
            );
        }
    }
    // m1: revoked when m2 joined and when it left; m2: when m1 left and when it left.
    assert!(n(&d1, "revocations") >= 2 && n(&d2, "revocations") >= 2);
    assert!(n(&d1, "assignments") >= 2 && n(&d2, "assignments") >= 2);
    assert_eq!(
        n(&ds, "commits_skipped") + n(&ds, "commit_errors"),
        0,
        "{}",
        ds.report
    );
    for d in [&d1, &d2, &ds] {
        assert_eq!(n(d, "flows_invalid") + n(d, "taps_invalid"), 0);
    }
    let flushed_early = n(&d1, "revoke_flushed") + n(&d2, "revoke_flushed");
    let differing: Vec<(&String, &str, &str)> = s_single
        .iter()
        .filter_map(|(id, v)| {
            let p = s_pair.get(id)?.first()?;
            (v[0] != *p).then_some((id, v[0].as_str(), p.as_str()))
        })
        .collect();
    eprintln!(
        "{test}: {total_flows} router flows, {total_taps} tap records in {PARTITIONS} partitions; \
         one instance: {:?}; two instances: {:?}; m1 consumed {m1_flows} router records \
         ({} revocations), m2 {m2_flows} ({} revocations); router records flushed early by a \
         revocation: {flushed_early}; join results differing from one instance: {} {:?}",
        counts(&s_single),
        counts(&s_pair),
        n(&d1, "revocations"),
        n(&d2, "revocations"),
        differing.len(),
        differing.iter().take(5).collect::<Vec<_>>()
    );
    assert!(
        differing.len() as u64 <= flushed_early,
        "{} join results differ, but only {flushed_early} records were flushed early",
        differing.len()
    );
}

#[test]
fn two_mediators_share_the_raw_topics_across_rebalances_tansu() {
    scaleout(broker::Kind::Tansu);
}

#[test]
fn two_mediators_share_the_raw_topics_across_rebalances_noida() {
    scaleout(broker::Kind::Noida);
}
