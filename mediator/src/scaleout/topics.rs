//! The raw topics must be co-partitioned: same partition count (and the same partitioner and key
//! bytes, which our producers guarantee). Every process that touches them checks at start.

use super::ScaleoutError;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::RDKafkaErrorCode;
use std::time::{Duration, Instant};

/// How long the metadata calls and topic creation may take.
const TIMEOUT: Duration = Duration::from_secs(20);

fn admin(brokers: &str) -> Result<AdminClient<DefaultClientContext>, ScaleoutError> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("client.id", "supernetflow-topics")
        // A metadata request must not create the topic with the broker's default count.
        .set("allow.auto.create.topics", "false")
        .create()
        .map_err(|e| ScaleoutError::Kafka(format!("admin client for {brokers}: {e}")))
}

/// Partition count of `topic`, `None` when it does not exist.
fn partition_count(
    admin: &AdminClient<DefaultClientContext>,
    topic: &str,
) -> Result<Option<i32>, ScaleoutError> {
    let md = admin
        .inner()
        .fetch_metadata(Some(topic), TIMEOUT)
        .map_err(|e| ScaleoutError::Kafka(format!("metadata of topic {topic}: {e}")))?;
    let Some(t) = md.topics().iter().find(|t| t.name() == topic) else {
        return Ok(None);
    };
    if t.error().is_some() || t.partitions().is_empty() {
        return Ok(None);
    }
    Ok(Some(t.partitions().len() as i32))
}

fn create(
    admin: &AdminClient<DefaultClientContext>,
    topic: &str,
    partitions: i32,
) -> Result<(), ScaleoutError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ScaleoutError::Kafka(format!("runtime for topic creation: {e}")))?;
    let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    // The broker's default replication factor (-1, KIP-464); brokers that do not know it get 1.
    for replication in [-1, 1] {
        let t = NewTopic::new(topic, partitions, TopicReplication::Fixed(replication));
        let res = rt
            .block_on(admin.create_topics([&t], &opts))
            .map_err(|e| ScaleoutError::Kafka(format!("creating topic {topic}: {e}")))?;
        for r in res {
            match r {
                Ok(_) => {
                    tracing::info!(topic, partitions, replication, "Created raw topic");
                    return Ok(());
                }
                // Another process got there first: the count check decides.
                Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => return Ok(()),
                Err((
                    _,
                    RDKafkaErrorCode::InvalidReplicationFactor | RDKafkaErrorCode::InvalidRequest,
                )) if replication == -1 => {}
                Err((name, code)) => {
                    return Err(ScaleoutError::Kafka(format!(
                        "creating topic {name}: {code}"
                    )))
                }
            }
        }
    }
    Ok(())
}

/// Makes sure both raw topics exist (creating a missing one with the other's partition count,
/// or `default_partitions` when neither exists) and have the same partition count, which it
/// returns. Refuses with [`ScaleoutError::PartitionMismatch`] when the counts differ.
pub fn ensure_copartitioned(
    brokers: &str,
    flows_topic: &str,
    tap_topic: &str,
    default_partitions: i32,
) -> Result<i32, ScaleoutError> {
    let admin = admin(brokers)?;
    let deadline = Instant::now() + TIMEOUT;
    let mut created = false;
    loop {
        let f = partition_count(&admin, flows_topic)?;
        let t = partition_count(&admin, tap_topic)?;
        match (f, t) {
            (Some(f), Some(t)) if f == t => return Ok(f),
            (Some(f), Some(t)) => {
                return Err(ScaleoutError::PartitionMismatch {
                    flows_topic: flows_topic.to_string(),
                    flows: f,
                    tap_topic: tap_topic.to_string(),
                    tap: t,
                })
            }
            (f, t) if !created => {
                let n = f.or(t).unwrap_or(default_partitions.max(1));
                if f.is_none() {
                    create(&admin, flows_topic, n)?;
                }
                if t.is_none() {
                    create(&admin, tap_topic, n)?;
                }
                created = true;
            }
            // Created: wait until the metadata shows both.
            _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            (f, t) => {
                return Err(ScaleoutError::Kafka(format!(
                    "raw topics not visible {TIMEOUT:?} after creating them \
                     ({flows_topic}: {f:?} partitions, {tap_topic}: {t:?})"
                )))
            }
        }
    }
}
