//! The consumer group over both raw topics, driving the [`Engine`].
//!
//! One `BaseConsumer` subscribes to both topics with the `range` assignor: for topics with the
//! same partition count and a group whose members all subscribe to both, range gives every
//! member the same partition numbers of both topics (checked at each assignment, see
//! [`Engine::assigned`]). The protocol is eager: at a rebalance every member's partitions are
//! revoked, and the rebalance callback ([`ConsumerContext::pre_rebalance`], run inside `poll` on
//! this thread) flushes their join state, waits for the sinks and commits synchronously before
//! librdkafka lets the group go on.

use super::config::ScaleoutConfig;
use super::engine::{CommitOffset, Engine, EngineConfig, Side};
use super::metrics::ScaleoutMetrics;
use super::topics::ensure_copartitioned;
use super::ScaleoutError;
use crate::fanout::Fanout;
use crate::join::JoinConfig;
use crate::sink::records::AnyRecord;
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The topic names, to tell the sides apart.
#[derive(Clone)]
struct Topics {
    flows: String,
    tap: String,
}

impl Topics {
    fn side(&self, topic: &str) -> Option<Side> {
        if topic == self.flows {
            Some(Side::Flows)
        } else if topic == self.tap {
            Some(Side::Tap)
        } else {
            None
        }
    }

    fn name(&self, side: Side) -> &str {
        match side {
            Side::Flows => &self.flows,
            Side::Tap => &self.tap,
        }
    }

    fn parts(&self, tpl: &TopicPartitionList) -> Vec<(Side, i32)> {
        tpl.elements()
            .iter()
            .filter_map(|e| self.side(e.topic()).map(|s| (s, e.partition())))
            .collect()
    }

    fn tpl(&self, offsets: &[CommitOffset]) -> Result<TopicPartitionList, String> {
        let mut tpl = TopicPartitionList::new();
        for o in offsets {
            tpl.add_partition_offset(self.name(o.side), o.partition, Offset::Offset(o.offset))
                .map_err(|e| e.to_string())?;
        }
        Ok(tpl)
    }
}

type Shared = Arc<Mutex<Option<Engine>>>;

fn lock(s: &Shared) -> MutexGuard<'_, Option<Engine>> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// The consumer's context: the rebalance callbacks reach the engine through it.
struct Ctx {
    engine: Shared,
    topics: Topics,
}

impl ClientContext for Ctx {}

fn commit_with<'a>(
    consumer: &'a BaseConsumer<Ctx>,
    topics: &Topics,
) -> impl FnMut(&[CommitOffset]) -> Result<(), String> + 'a {
    let topics = topics.clone();
    move |offsets: &[CommitOffset]| {
        let tpl = topics.tpl(offsets)?;
        consumer
            .commit(&tpl, CommitMode::Sync)
            .map_err(|e| e.to_string())
    }
}

impl ConsumerContext for Ctx {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let mut g = lock(&self.engine);
        let Some(engine) = g.as_mut() else {
            return;
        };
        match rebalance {
            Rebalance::Revoke(tpl) => {
                let parts = self.topics.parts(tpl);
                let mut commit = commit_with(consumer, &self.topics);
                if let Err(e) = engine.revoke(&parts, &mut commit) {
                    tracing::error!(error = %e, "Revocation failed");
                }
            }
            Rebalance::Assign(tpl) => engine.assigned(&self.topics.parts(tpl)),
            Rebalance::Error(e) => tracing::warn!(error = %e, "Rebalance error"),
        }
    }
}

/// What [`run`] hands back: the fan-out (to be closed by the caller) and how the consumer ended.
pub struct Finished {
    /// The sinks' fan-out, drained of the join's state, not closed.
    pub fanout: Fanout<AnyRecord>,
    /// How the consumer loop ended.
    pub result: Result<(), ScaleoutError>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn consumer_config(cfg: &ScaleoutConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.brokers)
        .set("group.id", &cfg.group_id)
        .set("client.id", "supernetflow-mediate")
        .set("partition.assignment.strategy", "range")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("session.timeout.ms", cfg.session_timeout_ms.to_string())
        .set(
            "heartbeat.interval.ms",
            (cfg.session_timeout_ms / 3).max(100).to_string(),
        )
        .set("reconnect.backoff.ms", "100")
        .set("reconnect.backoff.max.ms", "1000");
    for (k, v) in &cfg.consumer_properties {
        c.set(k, v);
    }
    c
}

/// Checks the raw topics, joins the group and mediates until `shutdown` is set (or a fatal
/// error): every message goes through the join to `fanout`; the join ticks every second; offsets
/// are committed every `commit_interval_secs`, at every revocation and at the end, each after a
/// barrier on the sinks. At the end every waiting router record is emitted and committed, and
/// the consumer leaves the group.
///
/// Errors before the loop starts (topics missing and not creatable, partition counts that
/// differ, a bad consumer property) come back at once with the fan-out.
pub fn run(
    cfg: &ScaleoutConfig,
    join: JoinConfig,
    fanout: Fanout<AnyRecord>,
    metrics: Arc<ScaleoutMetrics>,
    shutdown: Arc<AtomicBool>,
) -> Finished {
    let partitions = match ensure_copartitioned(
        &cfg.brokers,
        &cfg.flows_topic,
        &cfg.tap_topic,
        cfg.partitions,
    ) {
        Ok(n) => n,
        Err(e) => {
            return Finished {
                fanout,
                result: Err(e),
            }
        }
    };
    tracing::info!(
        flows = %cfg.flows_topic, tap = %cfg.tap_topic, partitions, group = %cfg.group_id,
        "Raw topics co-partitioned"
    );
    let engine = Engine::new(
        EngineConfig {
            join,
            partitions,
            partitioner: cfg.partitioner,
            publish_raw: cfg.publish_raw,
            sync_timeout: Duration::from_secs(cfg.sync_timeout_secs),
        },
        fanout,
        metrics.clone(),
    );
    let shared: Shared = Arc::new(Mutex::new(Some(engine)));
    let topics = Topics {
        flows: cfg.flows_topic.clone(),
        tap: cfg.tap_topic.clone(),
    };
    let ctx = Ctx {
        engine: shared.clone(),
        topics: topics.clone(),
    };
    let result = match consumer_config(cfg).create_with_context::<_, BaseConsumer<Ctx>>(ctx) {
        Err(e) => Err(ScaleoutError::Kafka(format!("consumer: {e}"))),
        Ok(consumer) => {
            let r = consume(cfg, &consumer, &shared, &topics, &metrics, &shutdown);
            // Leaving the group revokes what is left (nothing: `finish` emptied it).
            drop(consumer);
            r
        }
    };
    let engine = lock(&shared).take();
    match engine {
        Some(e) => Finished {
            fanout: e.into_fanout(),
            result,
        },
        // Unreachable: only this function takes the engine out.
        None => unreachable!("the engine is taken once"),
    }
}

fn consume(
    cfg: &ScaleoutConfig,
    consumer: &BaseConsumer<Ctx>,
    shared: &Shared,
    topics: &Topics,
    metrics: &ScaleoutMetrics,
    shutdown: &AtomicBool,
) -> Result<(), ScaleoutError> {
    consumer
        .subscribe(&[&cfg.flows_topic, &cfg.tap_topic])
        .map_err(|e| ScaleoutError::Kafka(format!("subscribe: {e}")))?;
    let commit_every =
        (cfg.commit_interval_secs > 0).then(|| Duration::from_secs(cfg.commit_interval_secs));
    let (mut last_tick, mut last_commit, mut last_send) =
        (Instant::now(), Instant::now(), Instant::now());
    let mut errors_logged = 0u32;
    let result = loop {
        if shutdown.load(Ordering::Relaxed) {
            break Ok(());
        }
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                if let Some(side) = topics.side(m.topic()) {
                    let mut g = lock(shared);
                    if let Some(e) = g.as_mut() {
                        let r = e.record(
                            side,
                            m.partition(),
                            m.offset(),
                            m.payload().unwrap_or(&[]),
                            now_ms(),
                        );
                        if let Err(err) = r {
                            break Err(err);
                        }
                    }
                }
            }
            Some(Err(e)) => {
                metrics.consumer_errors.fetch_add(1, Ordering::Relaxed);
                if errors_logged < 20 {
                    errors_logged += 1;
                    tracing::warn!(error = %e, "Consumer error");
                }
            }
            None => {}
        }
        let mut g = lock(shared);
        let Some(e) = g.as_mut() else {
            break Ok(());
        };
        if let Some(f) = e.fatal() {
            break Err(ScaleoutError::Fatal(f.to_string()));
        }
        let mut step = Ok(());
        if last_send.elapsed() >= Duration::from_millis(100) {
            last_send = Instant::now();
            step = step.and_then(|()| e.send_out());
        }
        if last_tick.elapsed() >= Duration::from_secs(1) {
            last_tick = Instant::now();
            step = step.and_then(|()| e.tick(now_ms()));
        }
        if commit_every.is_some_and(|d| last_commit.elapsed() >= d) {
            last_commit = Instant::now();
            let mut commit = commit_with(consumer, topics);
            step = step.and_then(|()| e.checkpoint(&mut commit));
        }
        if let Err(err) = step {
            break Err(err);
        }
    };
    // Flush, deliver, commit — also after an error, so that what was joined is not lost.
    let mut g = lock(shared);
    if let Some(e) = g.as_mut() {
        let mut commit = commit_with(consumer, topics);
        let finished = e.finish(&mut commit);
        tracing::info!(
            flows = metrics.flows_consumed.load(Ordering::Relaxed),
            taps = metrics.taps_consumed.load(Ordering::Relaxed),
            "Join state flushed and offsets committed"
        );
        drop(g);
        consumer.unsubscribe();
        return result.and(finished);
    }
    result
}
