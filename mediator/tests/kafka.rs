//! The Kafka sink against real Kafka-protocol brokers: tansu and noida-db (see
//! shared/KAFKA_FOR_TESTS.md). Each test starts its own broker on a free 127.0.0.1 port and stops it
//! by PID. The brokers come from `scripts/brokers.sh install`; the binaries are found through
//! `SNF_BROKER_TANSU` / `SNF_BROKER_NOIDA` or the default cache path. Without them the tests print
//! `SKIPPED: ...` and pass.
//!
//! No timing is asserted: timeouts are generous and only bound a hung test.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

#[path = "common/broker.rs"]
mod broker;

use broker::{binary_or_skip, consume_all, free_port, Broker, Got, Kind};
use mediator::sink::kafka::{KafkaSink, KafkaSinkConfig};
use mediator::sink::Sink;

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

/// The lane `run` uses: a mixed batch above the parallel threshold is encoded on two threads
/// (`encode_threads = 2`) and produced in batch order; every message is the record's JSON, keyed
/// by its flow key, with its record id, in the order of the batch within each topic, and the
/// kinds left out of `kinds` are skipped.
fn records_lane(kind: Kind) {
    use mediator::fanout::BatchSink;
    use mediator::sink::records::{AnyRecord, KafkaRecords, PARALLEL_MIN};
    use std::sync::Arc;
    let test = format!("records_lane_{}", kind.name());
    let Some(bin) = binary_or_skip(kind, &test) else {
        return;
    };
    let broker = Broker::start(kind, &bin, free_port());
    let spool = tempfile::tempdir().expect("spool dir");
    let mut cfg = sink_config(&broker.bootstrap(), spool.path());
    cfg.kinds = vec!["flow_records".into(), "super_flows".into()];
    for t in [&cfg.topics.flow_records, &cfg.topics.super_flows] {
        broker.create_topic(t);
    }
    let n = PARALLEL_MIN;
    let mut batch = Vec::new();
    let mut flows = Vec::new();
    let mut supers = Vec::new();
    for i in 0..n as u32 {
        let mut f = schemas::sample::flow_record();
        f.src_port = Some(1024 + i as u16);
        f.set_flow_key();
        f.set_record_id(i);
        let s = schemas::SuperFlow::unmatched(f.clone());
        batch.push(AnyRecord::Flow(Arc::new(f.clone())));
        batch.push(AnyRecord::Super(Box::new(s.clone())));
        if i % 50 == 0 {
            // Skipped: tap_records is not among the kinds.
            batch.push(AnyRecord::Tap(Box::new(schemas::sample::tap_record())));
        }
        flows.push(f);
        supers.push(s);
    }
    let flows_topic = cfg.topics.flow_records.clone();
    let supers_topic = cfg.topics.super_flows.clone();
    let sink = KafkaSink::new(cfg).expect("sink");
    let metrics = sink.metrics().clone();
    let mut lane = KafkaRecords::new(sink).expect("lane");
    assert!(!lane.takes(&AnyRecord::Tap(Box::new(schemas::sample::tap_record()))));
    assert_eq!(lane.write(&batch).expect("write"), 0);
    lane.sync(Duration::from_secs(120)).expect("sync");
    let m = metrics.snapshot();
    assert_eq!(
        (m.queued, m.delivered, m.failed),
        (2 * n as u64, 2 * n as u64, 0)
    );
    for (topic, want) in [
        (
            &flows_topic,
            flows
                .iter()
                .map(|f| (key_of(f), f.record_id.to_string(), serde_json::to_vec(f)))
                .collect::<Vec<_>>(),
        ),
        (
            &supers_topic,
            supers
                .iter()
                .map(|s| (key_of(s), s.record_id.clone(), serde_json::to_vec(s)))
                .collect(),
        ),
    ] {
        let got = consume_all(&broker.bootstrap(), topic, n, Duration::from_secs(30));
        assert_eq!(got.len(), n, "{topic}");
        // Batch order within each partition.
        let order: HashMap<&str, usize> = want
            .iter()
            .enumerate()
            .map(|(i, w)| (w.1.as_str(), i))
            .collect();
        let mut last: HashMap<i32, usize> = HashMap::new();
        let mut by_offset = got.clone();
        by_offset.sort_by_key(|g| (g.partition, g.offset));
        for g in &by_offset {
            let i = order[g.record_id.as_str()];
            let (key, id, payload) = &want[i];
            assert_eq!(String::from_utf8_lossy(&g.key), *key, "{topic} {id} key");
            assert_eq!(
                &g.payload,
                payload.as_ref().expect("json"),
                "{topic} {id} payload"
            );
            if let Some(prev) = last.insert(g.partition, i) {
                assert!(prev < i, "{topic}: {id} after a later record");
            }
        }
    }
}

fn key_of<R: schemas::Record>(r: &R) -> String {
    r.message_key().unwrap_or("").to_owned()
}

#[test]
fn records_lane_tansu() {
    records_lane(Kind::Tansu);
}

#[test]
fn records_lane_noida() {
    records_lane(Kind::Noida);
}
