use super::*;
use crate::fanout::BatchSink;
use schemas::{FlowRecord, Record};
use std::sync::Mutex;

/// What the capturing sink saw: super-flow record ids and raw records, in order, with the place
/// of every barrier.
#[derive(Default)]
struct Seen {
    supers: Vec<String>,
    raw: usize,
    syncs: usize,
    /// Super-flows written when each barrier came.
    at_sync: Vec<usize>,
}

struct Capture(Arc<Mutex<Seen>>);

impl BatchSink<AnyRecord> for Capture {
    fn name(&self) -> &'static str {
        "capture"
    }
    fn ready(&self) -> bool {
        true
    }
    fn write(&mut self, batch: &[AnyRecord]) -> Result<u64, String> {
        let mut g = self.0.lock().map_err(|e| e.to_string())?;
        for r in batch {
            match r {
                AnyRecord::Super(s) => g.supers.push(s.record_id.clone()),
                _ => g.raw += 1,
            }
        }
        Ok(0)
    }
    fn tick(&mut self) -> Result<(), String> {
        Ok(())
    }
    fn sync(&mut self, _: Duration) -> Result<(), String> {
        let mut g = self.0.lock().map_err(|e| e.to_string())?;
        g.syncs += 1;
        let n = g.supers.len();
        g.at_sync.push(n);
        Ok(())
    }
    fn close(self: Box<Self>, _: Duration) -> Result<(), String> {
        Ok(())
    }
}

const PARTS: i32 = 4;
const NOW: i64 = 1_700_000_000_000;

fn engine(publish_raw: bool) -> (Engine, Arc<Mutex<Seen>>, Arc<ScaleoutMetrics>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let fanout = Fanout::start(
        vec![Box::new(Capture(seen.clone())) as Box<dyn BatchSink<AnyRecord>>],
        4,
        Duration::from_secs(1),
    )
    .expect("fanout");
    let m = Arc::new(ScaleoutMetrics::default());
    let cfg = EngineConfig {
        join: JoinConfig::default(),
        partitions: PARTS,
        partitioner: Partitioner::ConsistentRandom,
        publish_raw,
        sync_timeout: Duration::from_secs(1),
    };
    (Engine::new(cfg, fanout, m.clone()), seen, m)
}

/// Router flows with distinct keys, each with the partition its key maps to.
fn flows(n: u16) -> Vec<(FlowRecord, i32)> {
    (0..n)
        .map(|i| {
            let mut f = schemas::sample::flow_record();
            f.dst_port = Some(40_000 + i);
            f.set_flow_key();
            f.set_record_id(u32::from(i));
            let key = u64::from_str_radix(f.flow_key.as_deref().expect("key"), 16).expect("hex");
            let p = Partitioner::ConsistentRandom.partition(key, PARTS);
            (f, p)
        })
        .collect()
}

/// Feeds the flows, offsets counted per partition; returns the next offset of each partition.
fn feed(e: &mut Engine, fs: &[(FlowRecord, i32)]) -> BTreeMap<i32, i64> {
    let mut next = BTreeMap::new();
    for (f, p) in fs {
        let off = next.entry(*p).or_insert(0i64);
        let payload = serde_json::to_vec(f).expect("json");
        e.record(Side::Flows, *p, *off, &payload, NOW)
            .expect("record");
        *off += 1;
    }
    next
}

#[test]
fn a_revocation_emits_the_revoked_partitions_then_commits_after_the_barrier() {
    let (mut e, seen, m) = engine(false);
    let fs = flows(40);
    let next = feed(&mut e, &fs);
    assert!(next.len() >= 3, "keys spread over partitions: {next:?}");
    // Everything waits for the tap (45 s grace): every flows partition is held at offset 0.
    e.tick(NOW).expect("tick");
    for o in e.commit_point() {
        assert_eq!((o.side, o.offset), (Side::Flows, 0), "{o:?}");
    }

    let revoked: Vec<(Side, i32)> = [0, 1]
        .iter()
        .flat_map(|&p| [(Side::Flows, p), (Side::Tap, p)])
        .collect();
    let mut commits: Vec<Vec<CommitOffset>> = Vec::new();
    let seen2 = seen.clone();
    let mut synced_before_commit = true;
    e.revoke(&revoked, &mut |o: &[CommitOffset]| {
        let g = seen2.lock().map_err(|e| e.to_string())?;
        // The barrier came, and it came after every flushed super-flow.
        synced_before_commit &= g.syncs == 1 && g.at_sync.last() == Some(&g.supers.len());
        commits.push(o.to_vec());
        Ok(())
    })
    .expect("revoke");
    assert!(synced_before_commit);
    let want_ids: BTreeSet<String> = fs
        .iter()
        .filter(|(_, p)| *p <= 1)
        .map(|(f, _)| f.record_id.to_string())
        .collect();
    let got: BTreeSet<String> = seen.lock().expect("lock").supers.iter().cloned().collect();
    assert_eq!(
        got, want_ids,
        "exactly the revoked partitions' router records"
    );
    assert_eq!(m.revoke_flushed.load(Relaxed), want_ids.len() as u64);
    // Committed: what was consumed from the revoked partitions (nothing of the tap topic).
    let mut want_commit: Vec<CommitOffset> = next
        .iter()
        .filter(|(p, _)| **p <= 1)
        .map(|(&partition, &offset)| CommitOffset {
            side: Side::Flows,
            partition,
            offset,
        })
        .collect();
    want_commit.sort_by_key(|o| o.partition);
    assert_eq!(commits, vec![want_commit]);
    // The other partitions still wait and are still held back.
    assert!(e
        .commit_point()
        .iter()
        .all(|o| o.partition > 1 && o.offset == 0));

    // Shutdown: the rest comes out, every partition committed at its end.
    let mut last = Vec::new();
    e.finish(&mut |o: &[CommitOffset]| {
        last = o.to_vec();
        Ok(())
    })
    .expect("finish");
    let g = seen.lock().expect("lock");
    let all: BTreeSet<String> = fs.iter().map(|(f, _)| f.record_id.to_string()).collect();
    assert_eq!(g.supers.len(), all.len(), "no router record twice");
    assert_eq!(g.supers.iter().cloned().collect::<BTreeSet<_>>(), all);
    drop(g);
    let want_last: Vec<CommitOffset> = next
        .iter()
        .filter(|(p, _)| **p > 1)
        .map(|(&partition, &offset)| CommitOffset {
            side: Side::Flows,
            partition,
            offset,
        })
        .collect();
    assert_eq!(last, want_last);
    assert!(e.commit_point().is_empty());
    e.into_fanout().close().expect("close");
}

#[test]
fn a_settled_record_no_longer_holds_its_partition_back() {
    let (mut e, seen, _) = engine(true);
    let fs = flows(3);
    let (f, p) = &fs[0];
    let mut tap = schemas::sample::tap_record();
    // The tap's report covers the flow and classifies it: the router record settles at once.
    tap.key.flow_key = f.flow_key.clone().expect("key").into();
    tap.first_seen_ms = f.flow_start_ms.expect("start") - 1000;
    tap.last_seen_ms = f.flow_end_ms.expect("end") + 1000;
    e.record(
        Side::Tap,
        *p,
        7,
        &serde_json::to_vec(&tap).expect("json"),
        NOW,
    )
    .expect("tap");
    e.record(
        Side::Flows,
        *p,
        0,
        &serde_json::to_vec(f).expect("json"),
        NOW,
    )
    .expect("flow");
    let points = e.commit_point();
    assert!(points.contains(&CommitOffset {
        side: Side::Flows,
        partition: *p,
        offset: 1
    }));
    assert!(points.contains(&CommitOffset {
        side: Side::Tap,
        partition: *p,
        offset: 8
    }));
    let mut commits = 0;
    e.checkpoint(&mut |_: &[CommitOffset]| {
        commits += 1;
        Ok(())
    })
    .expect("checkpoint");
    // Nothing moved since: no second commit.
    e.checkpoint(&mut |_: &[CommitOffset]| {
        commits += 1;
        Ok(())
    })
    .expect("checkpoint");
    assert_eq!(commits, 1);
    let g = seen.lock().expect("lock");
    assert_eq!(g.supers, vec![f.record_id.clone()]);
    assert_eq!(
        g.raw, 2,
        "publish_raw passes the flow and the tap record on"
    );
}

#[test]
fn tap_partitions_are_committed_at_the_oldest_report_the_join_may_use() {
    let (mut e, _, _) = engine(false);
    let fs = flows(2);
    let taps: Vec<TapRecord> = fs
        .iter()
        .map(|(f, _)| {
            let mut t = schemas::sample::tap_record();
            t.key.flow_key = f.flow_key.clone().expect("key").into();
            t
        })
        .collect();
    // Both tap flows in partition 3: offsets 7 (flow A), 8 (flow B), 9 (flow A again).
    for (off, t) in [(7, &taps[0]), (8, &taps[1]), (9, &taps[0])] {
        let payload = serde_json::to_vec(t).expect("json");
        e.record(Side::Tap, 3, off, &payload, NOW).expect("tap");
    }
    // A's latest report is 9, B's is 8: a new owner must re-read from 8.
    assert_eq!(
        e.commit_point(),
        vec![CommitOffset {
            side: Side::Tap,
            partition: 3,
            offset: 8
        }]
    );
    // Once both are older than tap_ttl_ms, nothing is needed any more.
    let ttl = JoinConfig::default().tap_ttl_ms as i64;
    e.tick(NOW + ttl + 1).expect("tick");
    assert_eq!(e.commit_point()[0].offset, 10);
    // A revocation commits the rewind point too.
    e.record(
        Side::Tap,
        3,
        10,
        &serde_json::to_vec(&taps[1]).expect("json"),
        NOW + ttl + 2,
    )
    .expect("tap");
    let mut got = Vec::new();
    e.revoke(&[(Side::Tap, 3)], &mut |o: &[CommitOffset]| {
        got = o.to_vec();
        Ok(())
    })
    .expect("revoke");
    assert_eq!(got[0].offset, 10);
    assert!(e.commit_point().is_empty());
}

#[test]
fn a_lopsided_assignment_is_fatal_and_bad_payloads_are_counted() {
    let (mut e, _, m) = engine(false);
    e.assigned(&[(Side::Flows, 0), (Side::Flows, 1), (Side::Tap, 0)]);
    assert!(e.fatal().is_some_and(|f| f.contains("co-partitioned")));
    assert_eq!(m.assignments.load(Relaxed), 1);
    let (mut e, _, m) = engine(false);
    e.assigned(&[(Side::Flows, 2), (Side::Tap, 2)]);
    assert!(e.fatal().is_none());
    e.record(Side::Tap, 2, 5, b"{not json", NOW).expect("skip");
    e.record(Side::Flows, 2, 9, b"[]", NOW).expect("skip");
    assert_eq!(
        e.commit_point().len(),
        2,
        "skipped messages count as consumed"
    );
    assert_eq!(m.taps_invalid.load(Relaxed), 1);
    assert_eq!(m.flows_invalid.load(Relaxed), 1);
}

#[test]
fn the_raw_json_round_trips_into_the_record_types() {
    // What the Kafka sink writes for the raw topics is the records' serde JSON.
    let f = schemas::sample::flow_record();
    let t = schemas::sample::tap_record();
    let f2: FlowRecord =
        serde_json::from_slice(&serde_json::to_vec(&f).expect("json")).expect("de");
    let t2: TapRecord = serde_json::from_slice(&serde_json::to_vec(&t).expect("json")).expect("de");
    assert_eq!(f2, f);
    assert_eq!(t2, t);
    assert_eq!(f2.message_key(), f.message_key());
}
