//! `supernetflow run` end to end, as a user runs it: a real process on 127.0.0.1, every MANIFEST
//! case replayed over UDP (each from its own 127.0.0.N), and what comes out compared with what
//! `supernetflow decode` prints for the same files.
//!
//! - Parquet (the embedded default): the `flow_records` table read back holds exactly the decoded
//!   records, field for field; the HTTP API answers (`/healthz`, `/readyz`, `/api/v1/exporters`,
//!   `/metrics`, which `promtool check metrics` accepts).
//! - Kafka, against each Kafka-protocol broker of shared/KAFKA_FOR_TESTS.md: the `flow_records`
//!   topic holds exactly the decoded records, keyed by flow key, with the record id header.
//! - Outage: the broker stops for 60 s while records flow and comes back empty; every record
//!   reaches a broker (duplicates are counted and detectable by record id).
//! - Start-up refusals: a bad key, a public HTTP bind without a token.
//!
//! No timing is asserted: deadlines only bound a hung test.

#[path = "../mediator/tests/common/broker.rs"]
mod broker;
mod procs;
mod support;

use procs::run::{http_get, read_table, Run};
use procs::{bin, diff, multiset, strip_ansi, wait_until, Proc};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

// ------------------------------------------------------------------ the process

// ------------------------------------------------------------------ replaying the MANIFEST

struct Plan {
    name: String,
    inputs: Vec<PathBuf>,
    exporter: String,
}

/// Replays every MANIFEST case, case `i` from 127.0.0.(10+i). Returns the plan and the messages
/// sent, or `None` (after a SKIPPED line) without the test data.
fn replay_manifest(test: &str, to: SocketAddr) -> Option<(Vec<Plan>, u64)> {
    let manifest = procs::testdata(test, "ipfix/MANIFEST.md")?;
    let text = std::fs::read_to_string(&manifest).expect("MANIFEST.md");
    let cases = support::parse_manifest(&text, manifest.parent().expect("ipfix dir"))
        .unwrap_or_else(|e| panic!("MANIFEST.md: {e}"));
    let mut plan = Vec::new();
    let mut sent = 0;
    for (i, case) in cases.iter().enumerate() {
        let mut inputs = case.raw_files();
        if inputs.is_empty() {
            inputs = case.original_pcaps();
        }
        let exporter = format!("127.0.0.{}", 10 + i);
        sent += procs::replay(to, &format!("{exporter}:0"), &inputs);
        plan.push(Plan {
            name: case.name.clone(),
            inputs,
            exporter,
        });
    }
    Some((plan, sent))
}

/// Compares, exporter by exporter, what came out of `run` with `decode` of the same files; `row`
/// turns a decoded record into the form the output holds. Returns the number of records.
fn compare_with_decode(
    what: &str,
    plan: &[Plan],
    got: Vec<Value>,
    row: impl Fn(&Value) -> Value,
) -> usize {
    let mut by_exporter: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for r in got {
        let e = r["exporter"].as_str().unwrap_or_default().to_string();
        by_exporter.entry(e).or_default().push(r);
    }
    let mut failures = Vec::new();
    let mut total = 0;
    eprintln!("{:<55} {:>7} {:>7}  result", "case", "decode", what);
    for p in plan {
        let want: Vec<Value> = procs::decode(&p.inputs).iter().map(&row).collect();
        total += want.len();
        let got = by_exporter.remove(&p.exporter).unwrap_or_default();
        let (w, g) = (multiset(&want), multiset(&got));
        let same = w == g;
        eprintln!(
            "{:<55} {:>7} {:>7}  {}",
            p.name,
            want.len(),
            got.len(),
            if same { "same" } else { "DIFFERENT" }
        );
        if !same {
            failures.push(format!(
                "{} (from {}): decode {} records, {what} {}\n{}",
                p.name,
                p.exporter,
                want.len(),
                got.len(),
                diff(&w, &g, what)
            ));
        }
    }
    assert!(
        by_exporter.is_empty(),
        "records from unexpected exporters: {:?}",
        by_exporter.keys().collect::<Vec<_>>()
    );
    assert!(
        failures.is_empty(),
        "{} case(s) differ between {what} and decode:\n{}",
        failures.len(),
        failures.join("\n")
    );
    total
}

// ------------------------------------------------------------------ Parquet

#[test]
fn run_parquet_holds_exactly_what_decode_prints_and_the_api_answers() {
    const T: &str = "run_parquet_holds_exactly_what_decode_prints_and_the_api_answers";
    if procs::testdata(T, "ipfix/MANIFEST.md").is_none() {
        return;
    }
    let work = tempfile::tempdir().expect("tempdir");
    let mut run = Run::start(work.path(), &[]);
    assert_eq!(run.get("/healthz"), (200, "ok\n".to_string()));
    let (code, body) = run.get("/readyz");
    assert_eq!(code, 200, "{body}");
    let Some((plan, sent)) = replay_manifest(T, run.udp) else {
        return;
    };
    assert!(
        run.wait_messages(sent, Duration::from_secs(120)),
        "run saw {} of {sent} messages",
        run.messages()
    );

    // The API while running.
    let (code, body) = run.get("/api/v1/exporters");
    assert_eq!(code, 200);
    let api: Value = serde_json::from_str(&body).expect("exporters JSON");
    let exporters = api["exporters"].as_array().expect("exporters");
    let listed: BTreeSet<&str> = exporters
        .iter()
        .filter_map(|e| e["address"].as_str())
        .collect();
    for p in &plan {
        assert!(
            listed.contains(p.exporter.as_str()),
            "{} not listed",
            p.exporter
        );
    }
    let templates: usize = exporters
        .iter()
        .map(|e| e["templates"].as_array().map_or(0, Vec::len))
        .sum();
    assert!(templates > 0, "no templates listed");
    let (code, metrics) = run.get("/metrics");
    assert_eq!(code, 200);
    assert!(
        metrics.contains("snf_collector_flow_records_total{"),
        "{metrics}"
    );
    assert!(metrics.contains("snf_sink_records_in_total{sink=\"parquet\"}"));
    procs::run::promtool_check(T, &metrics);

    let data = run.dir.join("data/parquet/flow_records");
    let run_dir = run.dir.clone();
    let st = run.stop(Duration::from_secs(60));
    assert!(st.ok, "run exited with {}: {}", st.status, st.stderr);
    let lane = &st.report["sinks"]["parquet"];
    assert_eq!(lane["records_failed"], 0, "{}", st.report);
    assert_eq!(st.report["collector"]["ingest"]["queue_full_drops"], 0);
    assert_eq!(st.report["collector"]["ingest"]["kernel_drops"], 0);

    let (rows, tmp) = read_table(&data);
    assert_eq!(tmp, 0, "temporary files left after a clean stop");
    let n = compare_with_decode("parquet", &plan, rows, |r| {
        schemas::published::to_row(schemas::RecordKind::Flow, r).expect("row form")
    });
    // Each router flow is written twice: as decoded (flow_records) and joined (super_flows).
    assert_eq!(lane["records_written"].as_u64(), Some(2 * n as u64));
    let (supers, tmp) = read_table(&run_dir.join("data/parquet/super_flows"));
    assert_eq!(tmp, 0);
    assert_eq!(supers.len(), n, "one super-flow per router flow");
    eprintln!("{T}: {n} records, Parquet = decode");
}

// ------------------------------------------------------------------ Kafka

const TOPIC: &str = "snf.flow_records";

fn kafka_exact(kind: broker::Kind) {
    let test = format!("run_kafka_holds_exactly_what_decode_prints_{}", kind.name());
    if procs::testdata(&test, "ipfix/MANIFEST.md").is_none() {
        return;
    }
    let Some(bin) = broker::binary_or_skip(kind, &test) else {
        return;
    };
    let b = broker::Broker::start(kind, &bin, broker::free_port());
    b.create_topic(TOPIC);
    let work = tempfile::tempdir().expect("tempdir");
    let mut run = Run::start(
        work.path(),
        &["--no-parquet", "--kafka-brokers", &b.bootstrap()],
    );
    let Some((plan, sent)) = replay_manifest(&test, run.udp) else {
        return;
    };
    assert!(run.wait_messages(sent, Duration::from_secs(120)));
    let st = run.stop(Duration::from_secs(90));
    assert!(st.ok, "run exited with {}: {}", st.status, st.stderr);
    let k = &st.report["kafka"];
    assert_eq!(k["failed"], 0, "{}", st.report);
    assert_eq!(k["spool_bytes"], 0, "{}", st.report);
    // Half of what the sink wrote went to flow_records, half (joined) to super_flows.
    let written = st.report["sinks"]["kafka"]["records_written"]
        .as_u64()
        .unwrap_or(0)
        / 2;
    let got = broker::consume_all(
        &b.bootstrap(),
        TOPIC,
        written as usize,
        Duration::from_secs(30),
    );
    let mut records = Vec::with_capacity(got.len());
    for m in &got {
        let v: Value = serde_json::from_slice(&m.payload).expect("JSON message");
        assert_eq!(
            m.key,
            v["flow_key"].as_str().unwrap_or("").as_bytes(),
            "message key = flow key"
        );
        assert_eq!(m.record_id, v["record_id"].as_str().unwrap_or(""));
        records.push(v);
    }
    let n = compare_with_decode("kafka", &plan, records, Value::clone);
    assert_eq!(n as u64, written);
    eprintln!("{test}: {n} records, Kafka = decode");
}

#[test]
fn run_kafka_holds_exactly_what_decode_prints_tansu() {
    kafka_exact(broker::Kind::Tansu);
}

#[test]
fn run_kafka_holds_exactly_what_decode_prints_noida() {
    kafka_exact(broker::Kind::Noida);
}

/// A stand-in for a schema registry that answers `POST /subjects/{s}/versions` with id 7, like
/// Confluent's (no registry can be installed here: Confluent's needs Maven, Karapace is not on
/// PyPI). Returns its URL and the subjects it was asked for.
fn stub_registry() -> (String, std::sync::mpsc::Receiver<String>) {
    use std::io::BufRead;
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", l.local_addr().expect("addr"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            let mut r = std::io::BufReader::new(s.try_clone().expect("clone"));
            let mut line = String::new();
            let _ = r.read_line(&mut line);
            let mut len = 0usize;
            loop {
                let mut h = String::new();
                if r.read_line(&mut h).unwrap_or(0) == 0 || h.trim().is_empty() {
                    break;
                }
                if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            let _ = r.read_exact(&mut body);
            let _ = tx.send(line.split_whitespace().nth(1).unwrap_or("").to_string());
            let answer = "{\"id\":7}";
            let mut s = s;
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.schemaregistry.v1+json\r\nContent-Length: {}\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    (url, rx)
}

/// `format = "avro"`: every message is the Confluent wire format with the registered id, and its
/// datum, read with the published schema, is the row form of what `decode` prints.
#[test]
fn run_kafka_avro_holds_exactly_what_decode_prints() {
    const T: &str = "run_kafka_avro_holds_exactly_what_decode_prints";
    if procs::testdata(T, "ipfix/MANIFEST.md").is_none() {
        return;
    }
    let kind = broker::Kind::Tansu;
    let Some(bin) = broker::binary_or_skip(kind, T) else {
        return;
    };
    let b = broker::Broker::start(kind, &bin, broker::free_port());
    b.create_topic(TOPIC);
    let (registry, subjects) = stub_registry();
    let work = tempfile::tempdir().expect("tempdir");
    let cfg = work.path().join("avro.toml");
    std::fs::write(
        &cfg,
        format!("[sinks.kafka]\nformat = \"avro\"\nschema_registry_url = \"{registry}\"\n"),
    )
    .expect("config");
    let mut run = Run::start(
        work.path(),
        &[
            "--no-parquet",
            "--kafka-brokers",
            &b.bootstrap(),
            "--config",
            cfg.to_str().expect("utf-8"),
        ],
    );
    assert_eq!(
        subjects
            .recv_timeout(Duration::from_secs(5))
            .ok()
            .as_deref(),
        Some("/subjects/snf.flow_records-value/versions")
    );
    let Some((plan, sent)) = replay_manifest(T, run.udp) else {
        return;
    };
    assert!(run.wait_messages(sent, Duration::from_secs(120)));
    let st = run.stop(Duration::from_secs(90));
    assert!(st.ok, "run exited with {}: {}", st.status, st.stderr);
    assert_eq!(st.report["kafka"]["failed"], 0, "{}", st.report);
    assert_eq!(
        st.report["sinks"]["kafka"]["records_failed"], 0,
        "{}",
        st.report
    );
    // Half of what the sink wrote went to flow_records, half (joined) to super_flows.
    let written = st.report["sinks"]["kafka"]["records_written"]
        .as_u64()
        .unwrap_or(0)
        / 2;
    let schema =
        apache_avro::Schema::parse(&schemas::published::avro_schema(schemas::RecordKind::Flow))
            .expect("schema");
    let got = broker::consume_all(
        &b.bootstrap(),
        TOPIC,
        written as usize,
        Duration::from_secs(30),
    );
    let mut rows = Vec::with_capacity(got.len());
    for m in &got {
        assert!(m.payload.len() > 5 && m.payload[0] == 0, "magic byte");
        assert_eq!(&m.payload[1..5], &7u32.to_be_bytes(), "schema id");
        let v = apache_avro::from_avro_datum(&schema, &mut &m.payload[5..], None).expect("datum");
        rows.push(Value::try_from(v).expect("JSON"));
    }
    let n = compare_with_decode("kafka-avro", &plan, rows, |r| {
        schemas::published::to_row(schemas::RecordKind::Flow, r).expect("row form")
    });
    assert_eq!(n as u64, written);
    // The report's byte counters are the payloads and keys of both topics' messages.
    let supers = broker::consume_all(
        &b.bootstrap(),
        "snf.super_flows",
        written as usize,
        Duration::from_secs(30),
    );
    assert_eq!(supers.len() as u64, written);
    let all = got.iter().chain(supers.iter());
    let (values, keys) = all.fold((0u64, 0u64), |(v, k), m| {
        (v + m.payload.len() as u64, k + m.key.len() as u64)
    });
    assert_eq!(st.report["kafka"]["value_bytes"], values, "{}", st.report);
    assert_eq!(st.report["kafka"]["key_bytes"], keys, "{}", st.report);
}

/// A NetFlow v5 message with `n` records numbered from `first`: record k has source
/// 10.(k>>16).(k>>8).k port 1000+(k%50000) and `k` octets, so every record is distinct.
fn v5_message(first: u32, n: u16, seq: u32) -> Vec<u8> {
    let mut m = Vec::with_capacity(24 + 48 * usize::from(n));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    m.extend(5u16.to_be_bytes());
    m.extend(n.to_be_bytes());
    m.extend(100_000u32.to_be_bytes()); // sysUptime ms
    m.extend((now.as_secs() as u32).to_be_bytes());
    m.extend(now.subsec_nanos().to_be_bytes());
    m.extend(seq.to_be_bytes());
    m.extend([0, 0, 0, 0]); // engine type/id, sampling
    for i in 0..u32::from(n) {
        let k = first + i;
        m.extend([10, (k >> 16) as u8, (k >> 8) as u8, k as u8]);
        m.extend([192, 0, 2, 1]);
        m.extend([0, 0, 0, 0]); // next hop
        m.extend([0, 1, 0, 2]); // input, output
        m.extend(1u32.to_be_bytes()); // packets
        m.extend(k.max(1).to_be_bytes()); // octets
        m.extend(90_000u32.to_be_bytes()); // first
        m.extend(99_000u32.to_be_bytes()); // last
        m.extend(((1000 + k % 50_000) as u16).to_be_bytes());
        m.extend(443u16.to_be_bytes());
        m.extend([0, 0x18, 6, 0]); // pad, flags, proto, tos
        m.extend([0, 0, 0, 0, 24, 24, 0, 0]); // AS, masks, pad
    }
    m
}

/// The record number of a v5 test record (from its octets).
fn record_no(v: &Value) -> Option<u64> {
    v["octets"].as_u64()
}

fn outage(kind: broker::Kind) {
    let test = format!("run_kafka_outage_60s_{}", kind.name());
    let Some(bin) = broker::binary_or_skip(kind, &test) else {
        return;
    };
    let port = broker::free_port();
    let mut b1 = broker::Broker::start(kind, &bin, port);
    b1.create_topic(TOPIC);
    let work = tempfile::tempdir().expect("tempdir");
    let cfg = work.path().join("run.toml");
    std::fs::write(&cfg, "[sinks]\nclose_timeout_secs = 240\n").expect("config");
    let run = Run::start(
        work.path(),
        &[
            "--no-parquet",
            "--kafka-brokers",
            &b1.bootstrap(),
            "--config",
            cfg.to_str().expect("utf-8 path"),
        ],
    );
    let sock = UdpSocket::bind("127.0.0.1:0").expect("sender");
    let (mut next, mut seq) = (1u32, 0u32);
    // 25 records every 20 ms: about 1250 records/s.
    let mut send_for = |d: Duration| {
        let t = Instant::now();
        while t.elapsed() < d {
            let msg = v5_message(next, 25, seq);
            sock.send_to(&msg, run.udp).expect("send");
            next += 25;
            seq += 25;
            std::thread::sleep(Duration::from_millis(20));
        }
        next - 1
    };
    // Phase A: the broker is up; read back what it confirmed before it goes.
    let a = send_for(Duration::from_secs(5));
    let before = broker::consume_all(&b1.bootstrap(), TOPIC, a as usize, Duration::from_secs(30));
    let mut seen: BTreeMap<u64, usize> = BTreeMap::new();
    for m in &before {
        let v: Value = serde_json::from_slice(&m.payload).expect("JSON");
        *seen.entry(record_no(&v).unwrap_or(0)).or_default() += 1;
    }
    // Phase B: the broker is gone for 60 s while records keep flowing.
    b1.stop();
    let during = send_for(Duration::from_secs(60));
    let (_, metrics) = run.get("/metrics");
    assert!(
        metrics.contains("snf_kafka_broker_up 0") || metrics.contains("snf_kafka_spooled_total")
    );
    // Phase C: back (empty: the test brokers keep no data across a restart), more records.
    let b2 = broker::Broker::start(kind, &bin, port);
    b2.create_topic(TOPIC);
    let total = send_for(Duration::from_secs(5));
    std::thread::sleep(Duration::from_secs(2));
    let st = run.stop(Duration::from_secs(300));
    assert!(st.ok, "run exited with {}: {}", st.status, st.stderr);
    eprintln!("{test}: report {}", st.report);
    let k = &st.report["kafka"];
    assert_eq!(k["failed"], 0, "{}", st.report);
    assert_eq!(k["spool_dropped"], 0);
    assert_eq!(k["spool_bytes"], 0, "everything spooled was delivered");
    assert!(
        k["spooled"].as_u64().unwrap_or(0) > 0,
        "the outage used the spool"
    );
    let after = broker::consume_all(
        &b2.bootstrap(),
        TOPIC,
        (total as usize).saturating_sub(seen.len()),
        Duration::from_secs(60),
    );
    let mut ids = BTreeMap::new();
    for m in &after {
        let v: Value = serde_json::from_slice(&m.payload).expect("JSON");
        *seen.entry(record_no(&v).unwrap_or(0)).or_default() += 1;
        *ids.entry(m.record_id.clone()).or_insert(0usize) += 1;
    }
    let missing: Vec<u64> = (1..=u64::from(total))
        .filter(|k| !seen.contains_key(k))
        .collect();
    let dups: usize = seen.values().map(|n| n - 1).sum();
    let dup_ids = ids.values().filter(|n| **n > 1).count();
    eprintln!(
        "{test}: {total} records sent ({a} before the stop, {} during the outage), {} before + {} after \
         received, {} missing, {dups} duplicates ({dup_ids} repeated record ids on the new broker)",
        during - a,
        before.len(),
        after.len(),
        missing.len()
    );
    assert!(
        missing.is_empty(),
        "{} records lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    assert_eq!(
        st.report["collector"]["decode"]["flow_records"].as_u64(),
        Some(u64::from(total))
    );
}

#[test]
fn run_kafka_outage_60s_tansu() {
    outage(broker::Kind::Tansu);
}

#[test]
fn run_kafka_outage_60s_noida() {
    outage(broker::Kind::Noida);
}

// ------------------------------------------------------------------ refusals

fn start_fails(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> String {
    std::fs::create_dir_all(dir).expect("dir");
    let out = Command::new(bin())
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("SNF_CONFIG")
        .envs(env.iter().copied())
        .arg("run")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert!(!out.status.success(), "run started: {args:?}");
    strip_ansi(&String::from_utf8_lossy(&out.stderr))
}

#[test]
fn run_refuses_bad_keys_values_and_an_open_api_without_token() {
    let work = tempfile::tempdir().expect("tempdir");
    let cfg = work.path().join("bad.toml");
    std::fs::write(&cfg, "[sinks.kafka]\nbrokerz = \"x\"\n").expect("write");
    let e = start_fails(
        work.path(),
        &["--config", cfg.to_str().expect("utf-8")],
        &[],
    );
    assert!(e.contains("brokerz") && e.contains("sinks.kafka"), "{e}");
    let e = start_fails(
        work.path(),
        &["--no-tcp"],
        &[("SNF__COLLECTOR__DECODER__HOLD_MS", "soon")],
    );
    assert!(
        e.to_lowercase().contains("collector.decoder.hold_ms"),
        "{e}"
    );
    let e = start_fails(work.path(), &["--http", "0.0.0.0:0", "--no-tcp"], &[]);
    assert!(e.contains("http.token"), "{e}");
    // With a token, a non-loopback bind starts, and the API asks for the token.
    let token = "0123456789abcdef-test";
    let mut cmd = Command::new(bin());
    let ready = work.path().join("ready");
    cmd.current_dir(work.path())
        .env("SNF__HTTP__TOKEN", token)
        .args([
            "run",
            "--udp",
            "127.0.0.1:0",
            "--no-tcp",
            "--http",
            "0.0.0.0:0",
        ])
        .args(["--no-state", "--no-parquet", "--ready-file"])
        .arg(&ready)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let mut p = Proc::spawn("supernetflow run (token)", &mut cmd);
    assert!(wait_until(Duration::from_secs(30), || ready.exists()));
    let text = std::fs::read_to_string(&ready).expect("ready");
    let port: u16 = text
        .lines()
        .find_map(|l| l.strip_prefix("http "))
        .and_then(|a| a.trim().parse::<SocketAddr>().ok())
        .map(|a| a.port())
        .expect("http addr");
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    assert_eq!(http_get(addr, "/healthz", None).0, 200);
    assert_eq!(http_get(addr, "/metrics", None).0, 401);
    assert_eq!(
        http_get(addr, "/api/v1/exporters", Some("wrong-token-0000")).0,
        401
    );
    assert_eq!(http_get(addr, "/api/v1/exporters", Some(token)).0, 200);
    let st = p.terminate(Duration::from_secs(30));
    assert!(st.success());
}
