//! End-to-end tests of `supernetflow collect` as a process: template state across a kill -9
//! restart, UDP ingest against `supernetflow decode` on every MANIFEST case, IPFIX over TCP, and
//! configuration errors.
//!
//! Every collector binds 127.0.0.1 port 0 (the restart test re-binds the port the first one got)
//! and logs its counters every second (`--stats-interval-secs 1`); the tests wait on those log
//! lines (with deadlines) before SIGTERM, because the collector drops datagrams still in the
//! socket at shutdown and its stdout is block-buffered until exit. Children are killed by PID in
//! `Drop` (see `procs`), so a failing test leaves nothing running.

mod procs;
mod support;

use procs::{diff, multiset, CollectOpts, Collector, Finished};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const MIKROTIK: &str = "ipfix/logstash/ipfix_mikrotik_routeros";

fn mikrotik(test: &str) -> Option<(PathBuf, Vec<PathBuf>)> {
    let dir = procs::testdata(test, MIKROTIK)?;
    Some((
        dir.join("ipfix_test_mikrotik_tpl.dat"),
        vec![
            dir.join("ipfix_test_mikrotik_data258.dat"),
            dir.join("ipfix_test_mikrotik_data259.dat"),
        ],
    ))
}

/// Templates the state file holds for `exporter` (0 when the file is missing or half-written).
fn state_templates(path: &std::path::Path, exporter: &str) -> usize {
    let Ok(text) = std::fs::read_to_string(path) else {
        return 0;
    };
    let Ok(v) = serde_json::from_str::<Value>(&text) else {
        return 0;
    };
    v["exporters"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["exporter"] == exporter)
        .flat_map(|e| e["domains"].as_array().cloned().unwrap_or_default())
        .map(|d| d["templates"].as_array().map_or(0, Vec::len))
        .sum()
}

fn summary(f: &Finished) -> String {
    format!(
        "status={} records={} report={}",
        f.status,
        f.records.len(),
        f.report
    )
}

// ------------------------------------------------------------------ 2a: restart

/// Templates learned before a kill -9 are decoded from the state file by the next collector on
/// the same port: the data messages sent after the restart decode at once (46 records, nothing
/// undecoded).
#[test]
fn restart_after_kill9_decodes_with_saved_templates() {
    const T: &str = "restart_after_kill9_decodes_with_saved_templates";
    let Some((tpl, data)) = mikrotik(T) else {
        return;
    };
    let work = tempfile::tempdir().expect("tempdir");
    let state = work.path().join("state.json");
    let opts = CollectOpts {
        state_file: Some(state.clone()),
        ..CollectOpts::default()
    };
    let exporter = "127.0.0.7";
    let from = format!("{exporter}:0");

    let first = Collector::start(work.path(), "first", &opts);
    let addr = first.udp_addr();
    assert_eq!(procs::replay(addr, &from, &[tpl]), 1);
    let saved = procs::wait_until(Duration::from_secs(15), || {
        state_templates(&state, exporter) >= 2
    });
    assert!(
        saved,
        "state file {} never held the 2 MikroTik templates of {exporter}; state: {:?}; collector stderr:\n{}",
        state.display(),
        std::fs::read_to_string(&state).ok(),
        first.stderr_text()
    );
    first.kill9();

    let mut second = Collector::start(
        work.path(),
        "second",
        &CollectOpts {
            udp: addr.to_string(),
            ..opts.clone()
        },
    );
    assert_eq!(
        second.udp_addr(),
        addr,
        "restarted collector must take the same port"
    );
    assert_eq!(procs::replay(addr, &from, &data), 2);
    let seen = second.wait_messages(2, Duration::from_secs(20));
    let f = second.stop();
    assert!(seen, "collector never logged 2 messages: {}", summary(&f));
    assert!(
        f.status.success(),
        "collector exit: {}\n{}",
        f.status,
        f.stderr
    );
    eprintln!("restart with state: {}", summary(&f));
    assert_eq!(
        f.records.len(),
        46,
        "records printed after restart: {}",
        summary(&f)
    );
    assert_eq!(f.counter("decode.flow_records"), 46);
    assert_eq!(f.counter("decode.undecoded_sets"), 0);
    assert_eq!(f.counter("decode.errors"), 0);
    assert!(f.records.iter().all(|r| r["exporter"] == exporter));
}

/// Without a state file the restarted collector has no templates: the data is held, nothing is
/// decoded, and the two held data sets must show up as undecoded in the exit report (a held set
/// thrown away at shutdown is data lost, and every loss has a counter).
#[test]
fn restart_without_state_holds_data_and_counts_it_at_exit() {
    const T: &str = "restart_without_state_holds_data_and_counts_it_at_exit";
    let Some((tpl, data)) = mikrotik(T) else {
        return;
    };
    let work = tempfile::tempdir().expect("tempdir");
    let expected_sets = procs::counter(&procs::decode_stats(&data), "undecoded_sets")
        .expect("decode --stats undecoded_sets");
    assert_eq!(expected_sets, 2, "decode --stats of the data files alone");

    let mut first = Collector::start(work.path(), "first", &CollectOpts::default());
    let addr = first.udp_addr();
    procs::replay(addr, "127.0.0.8:0", &[tpl]);
    assert!(
        first.wait_messages(1, Duration::from_secs(15)),
        "template message not seen"
    );
    first.kill9();

    let mut second = Collector::start(
        work.path(),
        "second",
        &CollectOpts {
            udp: addr.to_string(),
            ..CollectOpts::default()
        },
    );
    procs::replay(addr, "127.0.0.8:0", &data);
    let seen = second.wait_messages(2, Duration::from_secs(20));
    let f = second.stop();
    assert!(seen, "collector never logged 2 messages: {}", summary(&f));
    eprintln!("restart without state: {}", summary(&f));
    assert!(f.status.success());
    assert_eq!(f.records.len(), 0, "no templates, no records");
    assert_eq!(f.counter("decode.flow_records"), 0);
    assert_eq!(
        f.counter("decode.undecoded_sets"),
        expected_sets,
        "the data sets held (template never came) and dropped at shutdown are not counted \
         anywhere in the exit report: {}",
        f.report
    );
}

/// The same, with a short hold time: the held sets expire while running and are counted.
#[test]
fn held_sets_expire_into_undecoded() {
    const T: &str = "held_sets_expire_into_undecoded";
    let Some((_tpl, data)) = mikrotik(T) else {
        return;
    };
    let work = tempfile::tempdir().expect("tempdir");
    let cfg = work.path().join("collector.toml");
    std::fs::write(&cfg, "[decoder]\nhold_ms = 300\n").expect("config");
    let c = Collector::start(
        work.path(),
        "c",
        &CollectOpts {
            config: Some(cfg),
            ..CollectOpts::default()
        },
    );
    procs::replay(c.udp_addr(), "127.0.0.9:0", &data);
    let expired = procs::wait_until(Duration::from_secs(20), || {
        c.logged("undecoded_sets").unwrap_or(0) >= 2
    });
    let f = c.stop();
    assert!(
        expired,
        "held sets never expired into undecoded_sets: {}",
        summary(&f)
    );
    assert_eq!(f.counter("decode.undecoded_sets"), 2);
    assert_eq!(f.counter("decode.flow_records"), 0);
}

// ------------------------------------------------------------------ 2b: UDP vs decode

/// Every MANIFEST case replayed over UDP (each from its own 127.0.0.N, so template spaces do not
/// collide) into one collector gives, per exporter, the records `decode` prints for the files.
#[test]
fn udp_replay_of_every_manifest_case_matches_decode() {
    const T: &str = "udp_replay_of_every_manifest_case_matches_decode";
    let Some(ipfix) = procs::testdata(T, "ipfix/MANIFEST.md") else {
        return;
    };
    let text = std::fs::read_to_string(&ipfix).expect("MANIFEST.md");
    let cases = support::parse_manifest(&text, ipfix.parent().expect("ipfix dir"))
        .unwrap_or_else(|e| panic!("MANIFEST.md: {e}"));
    let work = tempfile::tempdir().expect("tempdir");
    let mut c = Collector::start(work.path(), "c", &CollectOpts::default());
    let addr = c.udp_addr();
    let mut sent_total = 0;
    let mut plan = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        // The raw payload / IPFIX files when there are any, else the original captures (a
        // derived pcap would repeat the raw files).
        let mut inputs = case.raw_files();
        if inputs.is_empty() {
            inputs = case.original_pcaps();
        }
        assert!(!inputs.is_empty(), "{}: no inputs", case.name);
        let exporter = format!("127.0.0.{}", 10 + i);
        let sent = procs::replay(addr, &format!("{exporter}:0"), &inputs);
        sent_total += sent;
        plan.push((case, inputs, exporter, sent));
    }
    let seen = c.wait_messages(sent_total, Duration::from_secs(60));
    let f = c.stop();
    assert!(
        seen,
        "collector logged fewer than the {sent_total} messages sent: {}",
        summary(&f)
    );
    assert!(f.status.success(), "collector exit {}", f.status);
    assert_eq!(
        f.counter("ingest.kernel_drops"),
        0,
        "kernel drops: {}",
        f.report
    );
    assert_eq!(f.counter("ingest.queue_full_drops"), 0);

    let mut by_exporter: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for r in &f.records {
        let e = r["exporter"].as_str().unwrap_or_default().to_string();
        by_exporter.entry(e).or_default().push(r.clone());
    }
    let mut failures = Vec::new();
    eprintln!(
        "{:<55} {:>5} {:>7} {:>7}  result",
        "case", "msgs", "decode", "collect"
    );
    for (case, inputs, exporter, sent) in &plan {
        let want = procs::decode(inputs);
        let got = by_exporter.remove(exporter).unwrap_or_default();
        let (w, g) = (multiset(&want), multiset(&got));
        let ok = w == g;
        eprintln!(
            "{:<55} {:>5} {:>7} {:>7}  {}",
            case.name,
            sent,
            want.len(),
            got.len(),
            if ok { "same" } else { "DIFFERENT" }
        );
        if !ok {
            failures.push(format!(
                "{} (from {exporter}): decode {} records, collect {}\n{}",
                case.name,
                want.len(),
                got.len(),
                diff(&w, &g, "collect")
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
        "{} case(s) differ between UDP collect and decode:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

// ------------------------------------------------------------------ 2c: IPFIX over TCP

fn example_flows(test: &str) -> Option<Vec<Vec<u8>>> {
    let p = procs::testdata(test, "ipfix/ipfixcol2/example_flows.ipfix")?;
    let msgs = procs::ipfix_messages(&std::fs::read(p).expect("read example_flows.ipfix"));
    assert_eq!(msgs.len(), 68);
    Some(msgs)
}

const EXAMPLE_FLOWS_RECORDS: usize = 3979;

/// Two concurrent sessions (one thread each) from 127.0.0.1 send all of example_flows.ipfix;
/// both stay open until every message is decoded. (report, all messages seen, messages per session)
fn two_tcp_sessions(test: &str) -> Option<(Finished, bool, usize)> {
    let msgs = example_flows(test)?;
    let work = tempfile::tempdir().expect("tempdir");
    let mut c = Collector::start(
        work.path(),
        "c",
        &CollectOpts {
            tcp: true,
            ..CollectOpts::default()
        },
    );
    let to = c.tcp_addr();
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
    let msgs = std::sync::Arc::new(msgs);
    let senders: Vec<_> = (0..2)
        .map(|_| {
            let (b, m) = (barrier.clone(), msgs.clone());
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(to).expect("connect");
                b.wait();
                for msg in m.iter() {
                    s.write_all(msg).expect("write");
                }
                s.flush().expect("flush");
                s
            })
        })
        .collect();
    let streams: Vec<TcpStream> = senders
        .into_iter()
        .map(|h| h.join().expect("sender"))
        .collect();
    let seen = c.wait_messages(2 * msgs.len() as u64, Duration::from_secs(60));
    drop(streams);
    let f = c.stop();
    Some((f, seen, msgs.len()))
}

/// Two concurrent IPFIX/TCP sessions each send the whole example_flows.ipfix: 2 x 3979 records.
/// Both stay open until the collector has decoded every message (closing a session ends its
/// templates), then close.
#[test]
fn ipfix_over_tcp_two_concurrent_sessions() {
    const T: &str = "ipfix_over_tcp_two_concurrent_sessions";
    let Some((f, seen, n)) = two_tcp_sessions(T) else {
        return;
    };
    eprintln!("tcp x2: {}", summary(&f));
    assert!(
        seen,
        "collector never logged {} messages: {}",
        2 * n,
        summary(&f)
    );
    assert_eq!(f.records.len(), 2 * EXAMPLE_FLOWS_RECORDS);
    assert_eq!(
        f.counter("decode.flow_records"),
        2 * EXAMPLE_FLOWS_RECORDS as u64
    );
    assert_eq!(f.counter("decode.undecoded_sets"), 0);
    assert_eq!(f.counter("ingest.tcp_connections_total"), 2);
    assert_eq!(f.counter("ingest.tcp_messages"), 2 * n as u64);
    assert_eq!(f.counter("ingest.tcp_framing_errors"), 0);
}

/// Two healthy sessions from one host lose nothing, so the collector must not report sequence
/// gaps or lost records for them (RFC 7011 §10.4: sequence numbers and templates belong to the
/// transport session, not to the exporter address). The interleaving is made deterministic
/// (each step waits until the collector has decoded the previous one): A sends the first half of
/// the file, B its first 10 messages, A the second half (a forward jump from B's sequence
/// numbers), B the rest.
#[test]
fn ipfix_over_tcp_interleaved_sessions_report_no_phantom_loss() {
    const T: &str = "ipfix_over_tcp_interleaved_sessions_report_no_phantom_loss";
    let Some(msgs) = example_flows(T) else { return };
    let work = tempfile::tempdir().expect("tempdir");
    let mut c = Collector::start(
        work.path(),
        "c",
        &CollectOpts {
            tcp: true,
            ..CollectOpts::default()
        },
    );
    let to = c.tcp_addr();
    let half = msgs.len() / 2;
    let mut a = TcpStream::connect(to).expect("connect A");
    let mut b = TcpStream::connect(to).expect("connect B");
    let steps: [(bool, &[Vec<u8>]); 4] = [
        (true, &msgs[..half]),
        (false, &msgs[..10]),
        (true, &msgs[half..]),
        (false, &msgs[10..]),
    ];
    let mut sent = 0u64;
    let mut seen = true;
    for (on_a, part) in steps {
        let s = if on_a { &mut a } else { &mut b };
        for m in part {
            s.write_all(m).expect("write");
        }
        sent += part.len() as u64;
        seen &= c.wait_messages(sent, Duration::from_secs(30));
    }
    drop((a, b));
    let f = c.stop();
    eprintln!("tcp interleaved: {}", summary(&f));
    assert!(seen, "not all messages decoded: {}", summary(&f));
    assert_eq!(
        f.counter("decode.flow_records"),
        2 * EXAMPLE_FLOWS_RECORDS as u64
    );
    assert_eq!(
        (
            f.counter("decode.sequence_gaps"),
            f.counter("decode.lost_estimate")
        ),
        (0, 0),
        "phantom sequence gaps / lost records for two complete sessions: {}",
        f.report
    );
}

/// A connection that sends garbage is closed by the collector and counted as a framing error, and
/// an IPFIX session open at the same time (from the same host, as exporters behind one address
/// are) keeps decoding: all 3979 records.
#[test]
fn ipfix_over_tcp_garbage_session_is_closed_and_counted() {
    const T: &str = "ipfix_over_tcp_garbage_session_is_closed_and_counted";
    let Some(msgs) = example_flows(T) else { return };
    let work = tempfile::tempdir().expect("tempdir");
    let mut c = Collector::start(
        work.path(),
        "c",
        &CollectOpts {
            tcp: true,
            ..CollectOpts::default()
        },
    );
    let to = c.tcp_addr();
    let half = msgs.len() / 2;
    let mut good = TcpStream::connect(to).expect("connect good");
    for m in &msgs[..half] {
        good.write_all(m).expect("write");
    }
    assert!(
        c.wait_messages(half as u64, Duration::from_secs(30)),
        "first half not decoded"
    );

    let mut bad = TcpStream::connect(to).expect("connect garbage");
    bad.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .expect("write garbage");
    bad.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut closed = false;
    let mut buf = [0u8; 64];
    while Instant::now() < deadline {
        match bad.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => {
                closed = true; // reset
                break;
            }
        }
    }
    assert!(closed, "the collector did not close the garbage connection");

    for m in &msgs[half..] {
        good.write_all(m).expect("write (second half)");
    }
    let seen = c.wait_messages(msgs.len() as u64, Duration::from_secs(30));
    // Give any held sets a chance to show in the log before we stop (diagnostic only).
    c.wait_quiet(Duration::from_millis(1500), Duration::from_secs(5));
    drop(good);
    let f = c.stop();
    eprintln!("tcp + garbage: {}", summary(&f));
    assert!(
        seen,
        "collector never logged {} messages: {}",
        msgs.len(),
        summary(&f)
    );
    assert_eq!(f.counter("ingest.tcp_framing_errors"), 1, "{}", f.report);
    assert_eq!(f.counter("ingest.tcp_connections_total"), 2);
    assert_eq!(
        f.records.len(),
        EXAMPLE_FLOWS_RECORDS,
        "the good session lost records after the garbage session from the same address was \
         closed: report {}",
        f.report
    );
    assert_eq!(f.counter("decode.undecoded_sets"), 0);
}

// ------------------------------------------------------------------ 2d: bad config

fn assert_config_rejected(test: &str, toml: &str, key: &str) {
    let work = tempfile::tempdir().expect("tempdir");
    let cfg = work.path().join("collector.toml");
    std::fs::write(&cfg, toml).expect("config");
    let ready = work.path().join("ready");
    let (status, stderr) = procs::collect_cmd_output(
        work.path(),
        &[
            "--config",
            cfg.to_str().expect("utf8 path"),
            "--udp",
            "127.0.0.1:0",
            "--no-tcp",
            "--no-state",
            "--ready-file",
            ready.to_str().expect("utf8 path"),
            "--stats-interval-secs",
            "0",
        ],
        Duration::from_secs(20),
    );
    let status = status.unwrap_or_else(|| panic!("{test}: collect kept running with a bad config"));
    assert!(
        !status.success(),
        "{test}: collect exited 0 with a bad config; stderr:\n{stderr}"
    );
    assert!(
        stderr.contains(key),
        "{test}: the error does not name the key `{key}`:\n{stderr}"
    );
    assert!(!ready.exists(), "{test}: collect got as far as listening");
}

#[test]
fn unknown_config_key_is_rejected_with_its_name() {
    assert_config_rejected(
        "top level",
        "udp_listen = [\"127.0.0.1:0\"]\nudp_listne = [\"127.0.0.1:0\"]\n",
        "udp_listne",
    );
    assert_config_rejected(
        "[decoder] table",
        "[decoder]\nhold_ms = 1000\nhold_msecs = 5\n",
        "hold_msecs",
    );
}
