//! Which Kafka partition a key's records are in, to flush the state of revoked partitions.
//!
//! Producers key every record by its flow key as 16 hex digits (the bytes of
//! `FlowRecord::flow_key` / `TapKey::flow_key`), so the partition of a join key is the producer's
//! partitioner applied to those 16 bytes. Which partitioner depends on the producer:
//! - librdkafka (and so the `rdkafka` crate, and our own Kafka sink) defaults to
//!   `consistent_random`: CRC-32 (IEEE) of the key, modulo the partition count
//!   ([`Partitioner::ConsistentRandom`]).
//! - The Java client defaults to murmur2: `(murmur2(key) & 0x7fffffff) % partitions`, which
//!   librdkafka offers as `murmur2_random` ([`Partitioner::Murmur2`]).
//!
//! Both topics (router records, tap records) must use the same partitioner and partition count,
//! or the two sides of a flow do not meet in one mediator.

use serde::{Deserialize, Serialize};

/// A producer's partitioner for keyed messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Partitioner {
    /// librdkafka's default: `crc32(key) % partitions`.
    #[default]
    ConsistentRandom,
    /// The Java client's default (librdkafka `murmur2_random`):
    /// `(murmur2(key) & 0x7fffffff) % partitions`.
    Murmur2,
}

impl Partitioner {
    /// The name librdkafka's `partitioner` property gives it: producers that publish the raw
    /// topics set it, so that their partitioning and the mediator's revocation flush agree.
    pub fn librdkafka_name(self) -> &'static str {
        match self {
            Partitioner::ConsistentRandom => "consistent_random",
            Partitioner::Murmur2 => "murmur2_random",
        }
    }

    /// The partition of the records keyed by `key` (the 64-bit flow key hash), among
    /// `partitions` (0 or less is taken as 1).
    pub fn partition(self, key: u64, partitions: i32) -> i32 {
        let n = partitions.max(1) as u32;
        let k = hex16(key);
        let p = match self {
            Partitioner::ConsistentRandom => crc32fast::hash(&k) % n,
            Partitioner::Murmur2 => (murmur2(&k) & 0x7fff_ffff) % n,
        };
        p as i32
    }
}

/// The key as the producers send it: 16 lower-case hex digits.
fn hex16(v: u64) -> [u8; 16] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut b = [0u8; 16];
    for (i, d) in b.iter_mut().enumerate() {
        *d = HEX[((v >> (60 - 4 * i)) & 15) as usize];
    }
    b
}

/// Kafka's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`, seed 0x9747b28c).
pub fn murmur2(data: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len() as u32;
    let mut h: u32 = 0x9747_b28c ^ len;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_kafka() {
        // Values from Kafka's UtilsTest.testMurmur2 (Java ints shown as u32).
        assert_eq!(murmur2(b"21"), (-973932308i32) as u32);
        assert_eq!(murmur2(b"foobar"), (-790332482i32) as u32);
        assert_eq!(murmur2(b"a-little-bit-long-string"), (-985981536i32) as u32);
        assert_eq!(
            murmur2(b"a-little-bit-longer-string"),
            (-1486304829i32) as u32
        );
        assert_eq!(
            murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"),
            (-58897971i32) as u32
        );
        assert_eq!(murmur2(b"abc"), 479470107);
    }

    #[test]
    fn partitions_use_the_hex_key() {
        let key = 0xa574_7053_a349_79c3u64;
        assert_eq!(&hex16(key), b"a5747053a34979c3");
        let p = Partitioner::ConsistentRandom.partition(key, 12);
        assert_eq!(p as u32, crc32fast::hash(b"a5747053a34979c3") % 12);
        let p = Partitioner::Murmur2.partition(key, 12);
        assert_eq!(p as u32, (murmur2(b"a5747053a34979c3") & 0x7fff_ffff) % 12);
        assert_eq!(Partitioner::Murmur2.partition(key, 0), 0);
    }
}
