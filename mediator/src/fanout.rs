//! Fan-out of record batches to sinks that run concurrently, each on its own thread behind a
//! bounded queue.
//!
//! ```text
//!                    ┌─ bounded queue (queue_batches) ─► thread "sink-parquet" ─► ParquetSink
//! producer ─ send ───┤
//!  (decode loop)     └─ bounded queue (queue_batches) ─► thread "sink-kafka"   ─► KafkaSink
//! ```
//!
//! A batch is shared between the lanes (`Arc`), not copied. When a lane's queue is full, `send`
//! waits for room: a slow sink slows the producer (whose own bounded queue then counts what it
//! cannot take, e.g. the collector's `queue_full_drops`), and the lane counts every wait in
//! `blocked_sends` / `blocked_seconds`, so back-pressure is never silent. Nothing is dropped here.
//!
//! Delivery guarantee: whatever a lane's sink accepts is its responsibility (the Kafka sink spools,
//! the Parquet sink commits files); records a sink refuses are counted in `records_failed`, and
//! records of kinds a sink is configured not to take ([`BatchSink::takes`]) in `records_skipped`.
//!
//! Barrier: [`Fanout::sync`] waits until every lane has written every batch sent before it and its
//! sink has made them durable ([`BatchSink::sync`]: Kafka delivered or spooled to disk, Parquet
//! files committed). `supernetflow mediate` calls it before it commits consumer offsets.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{sync_channel, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A sink that takes batches of records of type `T` (run on its lane's thread).
pub trait BatchSink<T>: Send + 'static {
    /// Short name for logs and metrics (`parquet`, `kafka`).
    fn name(&self) -> &'static str;
    /// True when the sink can deliver now (e.g. the broker is reachable).
    fn ready(&self) -> bool;
    /// Takes a batch. Returns how many of its records the sink refused (and did not keep); an
    /// `Err` means the whole batch was refused. Records [`BatchSink::takes`] declines are
    /// passed over here, and neither refused nor written.
    fn write(&mut self, batch: &[T]) -> Result<u64, String>;
    /// Whether the sink takes `record` at all (a sink configured for some record kinds only
    /// declines the others; the lane counts them in `records_skipped`). Default: every record.
    fn takes(&self, _record: &T) -> bool {
        true
    }
    /// Housekeeping (roll files, replay a spool); called about once a second.
    fn tick(&mut self) -> Result<(), String>;
    /// Makes every record written so far durable at its destination (Kafka: delivered, or in the
    /// fsynced spool; Parquet: in committed files), waiting at most `timeout`. The sink stays
    /// usable. An `Err` says what is not yet durable.
    fn sync(&mut self, timeout: Duration) -> Result<(), String>;
    /// Delivers or persists what it holds, waiting at most `timeout`, and shuts down.
    fn close(self: Box<Self>, timeout: Duration) -> Result<(), String>;
}

/// Counters of one lane (plain atomics, read by the HTTP API).
#[derive(Debug, Default)]
pub struct LaneMetrics {
    /// Batches waiting in the queue (gauge).
    pub queued_batches: AtomicU64,
    /// Capacity of the queue, batches (constant).
    pub queue_capacity: AtomicU64,
    /// Records handed to the lane (counter).
    pub records_in: AtomicU64,
    /// Records the sink accepted (counter).
    pub records_written: AtomicU64,
    /// Records the sink refused (counter).
    pub records_failed: AtomicU64,
    /// Records of kinds the sink is configured not to take (counter).
    pub records_skipped: AtomicU64,
    /// Sends that found the queue full and waited (counter).
    pub blocked_sends: AtomicU64,
    /// Time the producer spent waiting for room, nanoseconds (counter).
    pub blocked_ns: AtomicU64,
    /// Failed `write`/`tick` calls (counter).
    pub errors: AtomicU64,
    /// The sink's own readiness, refreshed by the lane thread (gauge).
    pub ready: AtomicBool,
}

/// A copy of [`LaneMetrics`].
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct LaneSnapshot {
    pub queued_batches: u64,
    pub queue_capacity: u64,
    pub records_in: u64,
    pub records_written: u64,
    pub records_failed: u64,
    pub records_skipped: u64,
    pub blocked_sends: u64,
    pub blocked_seconds: f64,
    pub errors: u64,
    pub ready: bool,
}

impl LaneMetrics {
    /// Reads every counter.
    pub fn snapshot(&self) -> LaneSnapshot {
        LaneSnapshot {
            queued_batches: self.queued_batches.load(Relaxed),
            queue_capacity: self.queue_capacity.load(Relaxed),
            records_in: self.records_in.load(Relaxed),
            records_written: self.records_written.load(Relaxed),
            records_failed: self.records_failed.load(Relaxed),
            records_skipped: self.records_skipped.load(Relaxed),
            blocked_sends: self.blocked_sends.load(Relaxed),
            blocked_seconds: self.blocked_ns.load(Relaxed) as f64 / 1e9,
            errors: self.errors.load(Relaxed),
            ready: self.ready.load(Relaxed),
        }
    }
}

/// Errors of the fan-out.
#[derive(Debug, thiserror::Error)]
pub enum FanoutError {
    /// A lane's thread is gone (it panicked): its records cannot be delivered.
    #[error("the {0} sink's thread stopped")]
    LaneStopped(&'static str),
    /// Starting a lane thread failed.
    #[error("starting the {name} sink thread: {source}")]
    Spawn {
        name: &'static str,
        source: std::io::Error,
    },
    /// One or more sinks failed to close cleanly (the messages say which and why).
    #[error("closing sinks: {0}")]
    Close(String),
    /// One or more sinks could not make what they hold durable in time (which and why).
    #[error("syncing sinks: {0}")]
    Sync(String),
}

/// What a lane's queue carries: batches, and barriers answered once everything before them is
/// durable.
enum Msg<T> {
    Batch(Arc<Vec<T>>),
    Sync(Duration, SyncSender<Result<(), String>>),
}

struct Lane<T> {
    name: &'static str,
    tx: Option<SyncSender<Msg<T>>>,
    metrics: Arc<LaneMetrics>,
    thread: Option<JoinHandle<Result<(), String>>>,
}

/// The lanes. Owned by the producer thread.
pub struct Fanout<T> {
    lanes: Vec<Lane<T>>,
}

impl<T: Send + Sync + 'static> Fanout<T> {
    /// Starts one thread per sink, each behind a queue of `queue_batches` batches. `close_timeout`
    /// bounds how long [`Fanout::close`] lets each sink deliver what it holds.
    pub fn start(
        sinks: Vec<Box<dyn BatchSink<T>>>,
        queue_batches: usize,
        close_timeout: Duration,
    ) -> Result<Self, FanoutError> {
        let mut lanes = Vec::with_capacity(sinks.len());
        for sink in sinks {
            let name = sink.name();
            let metrics = Arc::new(LaneMetrics::default());
            metrics
                .queue_capacity
                .store(queue_batches.max(1) as u64, Relaxed);
            metrics.ready.store(sink.ready(), Relaxed);
            let (tx, rx) = sync_channel::<Msg<T>>(queue_batches.max(1));
            let m = metrics.clone();
            let thread = std::thread::Builder::new()
                .name(format!("sink-{name}"))
                .spawn(move || lane_loop(sink, rx, m, close_timeout))
                .map_err(|source| FanoutError::Spawn { name, source })?;
            lanes.push(Lane {
                name,
                tx: Some(tx),
                metrics,
                thread: Some(thread),
            });
        }
        Ok(Self { lanes })
    }

    /// Each lane's name and counters, for the API.
    pub fn metrics(&self) -> Vec<(&'static str, Arc<LaneMetrics>)> {
        self.lanes
            .iter()
            .map(|l| (l.name, l.metrics.clone()))
            .collect()
    }

    /// Hands a batch to every lane, waiting for room where a queue is full (counted).
    pub fn send(&mut self, batch: Vec<T>) -> Result<(), FanoutError> {
        if batch.is_empty() || self.lanes.is_empty() {
            return Ok(());
        }
        let n = batch.len() as u64;
        let batch = Arc::new(batch);
        for lane in &self.lanes {
            let Some(tx) = &lane.tx else {
                return Err(FanoutError::LaneStopped(lane.name));
            };
            lane.metrics.records_in.fetch_add(n, Relaxed);
            lane.metrics.queued_batches.fetch_add(1, Relaxed);
            match tx.try_send(Msg::Batch(batch.clone())) {
                Ok(()) => {}
                Err(TrySendError::Full(b)) => {
                    lane.metrics.blocked_sends.fetch_add(1, Relaxed);
                    let t = Instant::now();
                    let r = tx.send(b);
                    lane.metrics
                        .blocked_ns
                        .fetch_add(t.elapsed().as_nanos() as u64, Relaxed);
                    if r.is_err() {
                        return Err(FanoutError::LaneStopped(lane.name));
                    }
                }
                Err(TrySendError::Disconnected(_)) => {
                    return Err(FanoutError::LaneStopped(lane.name));
                }
            }
        }
        Ok(())
    }

    /// Barrier: waits until every lane has written every batch sent before this call and its sink
    /// has made them durable ([`BatchSink::sync`]), each sink within `timeout` (the lanes work in
    /// parallel). Every lane is asked even when one fails; the error names each that did.
    pub fn sync(&mut self, timeout: Duration) -> Result<(), FanoutError> {
        let mut waiting = Vec::with_capacity(self.lanes.len());
        let mut errors = Vec::new();
        for lane in &self.lanes {
            let Some(tx) = &lane.tx else {
                errors.push(format!("{}: the sink thread stopped", lane.name));
                continue;
            };
            let (rtx, rrx) = sync_channel(1);
            // Waits for room like a batch: the barrier is ordered after every queued batch.
            if tx.send(Msg::Sync(timeout, rtx)).is_err() {
                errors.push(format!("{}: the sink thread stopped", lane.name));
                continue;
            }
            waiting.push((lane.name, rrx));
        }
        for (name, rrx) in waiting {
            // The lane answers after its queue ahead of the barrier is written, then syncs.
            match rrx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => errors.push(format!("{name}: {e}")),
                Err(_) => errors.push(format!("{name}: the sink thread stopped")),
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(FanoutError::Sync(errors.join("; ")))
        }
    }

    /// Closes every queue, lets each lane write what is queued and close its sink (bounded by the
    /// close timeout each, running in parallel), and reports every failure.
    pub fn close(mut self) -> Result<(), FanoutError> {
        for lane in &mut self.lanes {
            lane.tx = None;
        }
        let mut errors = Vec::new();
        for lane in &mut self.lanes {
            if let Some(t) = lane.thread.take() {
                match t.join() {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => errors.push(format!("{}: {e}", lane.name)),
                    Err(_) => errors.push(format!("{}: the sink thread panicked", lane.name)),
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(FanoutError::Close(errors.join("; ")))
        }
    }
}

fn lane_loop<T: Send + Sync + 'static>(
    mut sink: Box<dyn BatchSink<T>>,
    rx: std::sync::mpsc::Receiver<Msg<T>>,
    m: Arc<LaneMetrics>,
    close_timeout: Duration,
) -> Result<(), String> {
    let name = sink.name();
    let mut last_tick = Instant::now();
    let note_error = |m: &LaneMetrics, what: &str, e: &str| {
        let n = m.errors.fetch_add(1, Relaxed) + 1;
        // The first error, then one line per 1000 (the count says how many there were).
        if n % 1000 == 1 {
            tracing::error!(sink = name, error = %e, errors_total = n, "Sink {what} failed");
        }
    };
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(Msg::Sync(timeout, reply)) => {
                let r = sink.sync(timeout);
                if let Err(e) = &r {
                    note_error(&m, "sync", e);
                }
                let _ = reply.send(r);
            }
            Ok(Msg::Batch(batch)) => {
                m.queued_batches.fetch_sub(1, Relaxed);
                let skipped = batch.iter().filter(|r| !sink.takes(r)).count() as u64;
                m.records_skipped.fetch_add(skipped, Relaxed);
                let n = batch.len() as u64 - skipped;
                match sink.write(&batch) {
                    Ok(failed) => {
                        m.records_written
                            .fetch_add(n.saturating_sub(failed), Relaxed);
                        m.records_failed.fetch_add(failed.min(n), Relaxed);
                    }
                    Err(e) => {
                        m.records_failed.fetch_add(n, Relaxed);
                        note_error(&m, "write", &e);
                    }
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if last_tick.elapsed() >= Duration::from_secs(1) {
            last_tick = Instant::now();
            if let Err(e) = sink.tick() {
                note_error(&m, "housekeeping", &e);
            }
            m.ready.store(sink.ready(), Relaxed);
        }
    }
    let r = sink.close(close_timeout);
    m.ready.store(false, Relaxed);
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    struct Slow {
        got: Arc<Mutex<Vec<u32>>>,
        delay: Duration,
        refuse_odd: bool,
    }

    impl BatchSink<u32> for Slow {
        fn name(&self) -> &'static str {
            "slow"
        }
        fn ready(&self) -> bool {
            true
        }
        fn write(&mut self, batch: &[u32]) -> Result<u64, String> {
            std::thread::sleep(self.delay);
            let mut g = self.got.lock().map_err(|e| e.to_string())?;
            let mut failed = 0;
            for x in batch {
                if self.refuse_odd && x % 2 == 1 {
                    failed += 1;
                } else {
                    g.push(*x);
                }
            }
            Ok(failed)
        }
        fn tick(&mut self) -> Result<(), String> {
            Ok(())
        }
        fn sync(&mut self, _: Duration) -> Result<(), String> {
            // Everything written is in `got` already; record the barrier's place.
            self.got.lock().map_err(|e| e.to_string())?.push(SYNC_MARK);
            Ok(())
        }
        fn close(self: Box<Self>, _: Duration) -> Result<(), String> {
            Ok(())
        }
    }

    const SYNC_MARK: u32 = u32::MAX;

    #[test]
    fn sync_is_ordered_after_every_batch_sent_before_it() {
        let got = Arc::new(Mutex::new(Vec::new()));
        let sinks: Vec<Box<dyn BatchSink<u32>>> = vec![Box::new(Slow {
            got: got.clone(),
            delay: Duration::from_millis(3),
            refuse_odd: false,
        })];
        let mut f = Fanout::start(sinks, 2, Duration::from_secs(1)).expect("start");
        for i in 0..10u32 {
            f.send(vec![i]).expect("send");
        }
        f.sync(Duration::from_secs(1)).expect("sync");
        // The barrier returned only after all ten batches were written.
        let seen: Vec<u32> = got.lock().expect("lock").clone();
        let mut want: Vec<u32> = (0..10).collect();
        want.push(SYNC_MARK);
        assert_eq!(seen, want);
        f.send(vec![10]).expect("send");
        f.close().expect("close");
        assert_eq!(got.lock().expect("lock").last(), Some(&10));
    }

    #[test]
    fn every_lane_gets_every_record_in_order_and_waits_are_counted() {
        let fast = Arc::new(Mutex::new(Vec::new()));
        let slow = Arc::new(Mutex::new(Vec::new()));
        let sinks: Vec<Box<dyn BatchSink<u32>>> = vec![
            Box::new(Slow {
                got: fast.clone(),
                delay: Duration::ZERO,
                refuse_odd: false,
            }),
            Box::new(Slow {
                got: slow.clone(),
                delay: Duration::from_millis(5),
                refuse_odd: true,
            }),
        ];
        let mut f = Fanout::start(sinks, 2, Duration::from_secs(1)).expect("start");
        let lanes = f.metrics();
        for i in 0..50u32 {
            f.send((i * 10..i * 10 + 10).collect()).expect("send");
        }
        f.close().expect("close");
        let want: Vec<u32> = (0..500).collect();
        assert_eq!(*fast.lock().expect("lock"), want);
        let even: Vec<u32> = (0..500).filter(|x| x % 2 == 0).collect();
        assert_eq!(*slow.lock().expect("lock"), even);
        let s = lanes[1].1.snapshot();
        assert_eq!(
            (s.records_in, s.records_written, s.records_failed),
            (500, 250, 250)
        );
        // Queue of 2 batches, 5 ms per batch, 50 batches sent at once: the producer had to wait.
        assert!(s.blocked_sends > 0, "{s:?}");
        assert_eq!(s.queued_batches, 0);
    }

    struct Boom;
    impl BatchSink<u32> for Boom {
        fn name(&self) -> &'static str {
            "boom"
        }
        fn ready(&self) -> bool {
            false
        }
        fn write(&mut self, _: &[u32]) -> Result<u64, String> {
            panic!("sink bug");
        }
        fn tick(&mut self) -> Result<(), String> {
            Ok(())
        }
        fn sync(&mut self, _: Duration) -> Result<(), String> {
            Err("never durable".into())
        }
        fn close(self: Box<Self>, _: Duration) -> Result<(), String> {
            Ok(())
        }
    }

    #[test]
    fn a_dead_lane_is_an_error_not_a_silent_loss() {
        let mut f = Fanout::start(
            vec![Box::new(Boom) as Box<dyn BatchSink<u32>>],
            1,
            Duration::ZERO,
        )
        .expect("start");
        let mut err = None;
        for _ in 0..10 {
            if let Err(e) = f.send(vec![1, 2, 3]) {
                err = Some(e);
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            matches!(err, Some(FanoutError::LaneStopped("boom"))),
            "{err:?}"
        );
        assert!(f.close().is_err());
    }
}
