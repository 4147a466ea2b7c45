//! `FlowRecord`: one router flow, normalised from NetFlow v5, v9 or IPFIX.
//!
//! Field names are the JSON names (and later the Parquet column names). Times are absolute UTC
//! milliseconds since the Unix epoch. Counters come twice: as the exporter sent them
//! (`*_exported`) and upscaled by the sampling interval in force (`octets`, `packets`).

use crate::ext::Extension;
use crate::key::FlowKey;
use crate::kind::{Record, RecordKind};
use crate::text::Text;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// Which export protocol a record came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FlowVersion {
    /// NetFlow version 5.
    NetflowV5,
    /// NetFlow version 9 (RFC 3954).
    NetflowV9,
    /// IPFIX (RFC 7011).
    Ipfix,
}

/// Direction of the flow relative to the interface that observed it (IE 61, flowDirection).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Observed entering the router on `input_interface`.
    Ingress,
    /// Observed leaving the router on `output_interface`.
    Egress,
}

/// Where `flow_start_ms`/`flow_end_ms` came from, so a reader knows how far to trust them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TimeSource {
    /// Absolute times sent by the exporter (flowStart/End Seconds, Milli-, Micro-, Nanoseconds).
    #[default]
    Absolute,
    /// sysUpTime-relative times (v5, v9, IE 22/21) anchored on the header's sysUpTime and clock.
    SysUptime,
    /// flowStartSysUpTime anchored on systemInitTimeMilliseconds (IE 160) from options data.
    SystemInit,
    /// Delta-microseconds (IE 158/159) counted back from the export time.
    Delta,
    /// No time in the record: the export time is used for both.
    ExportTime,
}

/// A router's flow, normalised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FlowRecord {
    /// Version of the record model the record was written with ([`crate::SCHEMA_VERSION`]).
    pub schema_version: u16,
    /// Identifies this record: XXH3-64 of (exporter, domain, export time, sequence number, index of
    /// the record in its message), as 16 hex digits. The same export decoded twice gives the same id,
    /// so duplicates downstream are detectable.
    #[schemars(with = "String")]
    pub record_id: Text,
    /// Export protocol.
    pub flow_version: FlowVersion,
    /// Address the export came from.
    pub exporter: IpAddr,
    /// Observation domain (IPFIX) or source id (v9); engine type/id (v5) as `type << 8 | id`.
    pub observation_domain: u32,
    /// Template the record was decoded with (0 for v5).
    pub template_id: u16,
    /// Message sequence number from the export header.
    pub sequence_number: u32,
    /// Export time from the message header, UTC ms.
    pub export_time_ms: i64,
    /// When the collector received the message (capture time when decoding a file), UTC ms.
    pub received_time_ms: i64,
    /// Flow start, UTC ms, corrected for clock skew when `clock_skew_ms` is set.
    pub flow_start_ms: Option<i64>,
    /// Flow end, UTC ms, corrected likewise.
    pub flow_end_ms: Option<i64>,
    /// How the start/end times were derived.
    pub time_source: TimeSource,
    /// Exporter clock minus receive clock, ms, when it exceeded the skew threshold; start/end were
    /// shifted by it. `null` when the clocks agree within the threshold.
    pub clock_skew_ms: Option<i64>,
    /// Source IP address as exported (IE 8/27).
    pub src_addr: Option<IpAddr>,
    /// Destination IP address as exported (IE 12/28).
    pub dst_addr: Option<IpAddr>,
    /// Source transport port (IE 7); `null` for protocols without ports.
    pub src_port: Option<u16>,
    /// Destination transport port (IE 11); `null` for protocols without ports.
    pub dst_port: Option<u16>,
    /// IP protocol number (6 TCP, 17 UDP, ...).
    pub protocol: Option<u8>,
    /// Canonical flow key hash as 16 hex digits ([`FlowKey`]); `null` without addresses.
    #[schemars(with = "Option<String>")]
    pub flow_key: Option<Text>,
    /// Direction relative to the observing interface (IE 61); `null` when not exported.
    pub direction: Option<Direction>,
    /// Octets, upscaled by `sampling_interval`.
    pub octets: u64,
    /// Packets, upscaled by `sampling_interval`.
    pub packets: u64,
    /// Octets as exported (octetDeltaCount, else octetTotalCount, postOctetDeltaCount, initiatorOctets).
    pub octets_exported: Option<u64>,
    /// Packets as exported (packetDeltaCount, else packetTotalCount, postPacketDeltaCount, initiatorPackets).
    pub packets_exported: Option<u64>,
    /// Sampling interval in force (1 in N packets); 1 when unsampled or unknown.
    pub sampling_interval: u32,
    /// Cumulative TCP flags.
    pub tcp_flags: Option<u16>,
    /// IP type of service / traffic class.
    pub tos: Option<u8>,
    /// ICMP/ICMPv6 type (IE 176/178, or the high byte of IE 32/139).
    pub icmp_type: Option<u8>,
    /// ICMP/ICMPv6 code (IE 177/179, or the low byte of IE 32/139).
    pub icmp_code: Option<u8>,
    /// SNMP ifIndex of the input interface (IE 10).
    pub input_interface: Option<u32>,
    /// SNMP ifIndex of the output interface (IE 14).
    pub output_interface: Option<u32>,
    /// VLAN id on the input side (IE 58 vlanId, or 243 dot1qVlanId).
    pub src_vlan: Option<u16>,
    /// VLAN id on the output side (IE 59 postVlanId, or 254 postDot1qVlanId).
    pub dst_vlan: Option<u16>,
    /// Ingress VRF id (IE 234).
    pub ingress_vrf: Option<u32>,
    /// Egress VRF id (IE 235).
    pub egress_vrf: Option<u32>,
    /// Source BGP AS number (IE 16).
    pub src_as: Option<u32>,
    /// Destination BGP AS number (IE 17).
    pub dst_as: Option<u32>,
    /// Source prefix length, bits (IE 9/29).
    pub src_mask: Option<u8>,
    /// Destination prefix length, bits (IE 13/30).
    pub dst_mask: Option<u8>,
    /// IP next hop (IE 15/62).
    pub next_hop: Option<IpAddr>,
    /// BGP next hop (IE 18/63).
    pub bgp_next_hop: Option<IpAddr>,
    /// flowEndReason (IE 136).
    pub flow_end_reason: Option<u8>,
    /// Every other element the exporter sent, typed (enterprise IEs, RFC 5103 reverse IEs, IANA IEs
    /// without a column). In Avro and Parquet each value is a string in `value` with its type in
    /// `value_type`.
    pub extensions: Vec<Extension>,
}

impl Record for FlowRecord {
    const KIND: RecordKind = RecordKind::Flow;
    fn schema_version(&self) -> u16 {
        self.schema_version
    }
    fn record_id(&self) -> &str {
        &self.record_id
    }
    fn message_key(&self) -> Option<&str> {
        self.flow_key.as_deref()
    }
}

impl FlowRecord {
    /// An empty record for an exporter, to be filled by a decoder.
    pub fn empty(flow_version: FlowVersion, exporter: IpAddr) -> Self {
        Self {
            schema_version: crate::SCHEMA_VERSION,
            record_id: Text::default(),
            flow_version,
            exporter,
            observation_domain: 0,
            template_id: 0,
            sequence_number: 0,
            export_time_ms: 0,
            received_time_ms: 0,
            flow_start_ms: None,
            flow_end_ms: None,
            time_source: TimeSource::default(),
            clock_skew_ms: None,
            src_addr: None,
            dst_addr: None,
            src_port: None,
            dst_port: None,
            protocol: None,
            flow_key: None,
            direction: None,
            octets: 0,
            packets: 0,
            octets_exported: None,
            packets_exported: None,
            sampling_interval: 1,
            tcp_flags: None,
            tos: None,
            icmp_type: None,
            icmp_code: None,
            input_interface: None,
            output_interface: None,
            src_vlan: None,
            dst_vlan: None,
            ingress_vrf: None,
            egress_vrf: None,
            src_as: None,
            dst_as: None,
            src_mask: None,
            dst_mask: None,
            next_hop: None,
            bgp_next_hop: None,
            flow_end_reason: None,
            extensions: Vec::new(),
        }
    }

    /// The canonical key, when the record has both addresses.
    pub fn key(&self) -> Option<FlowKey> {
        let (src, dst) = (self.src_addr?, self.dst_addr?);
        let scope = self
            .ingress_vrf
            .or(self.src_vlan.map(u32::from))
            .unwrap_or(0);
        Some(FlowKey::new(
            self.protocol.unwrap_or(0),
            (src, self.src_port.unwrap_or(0)),
            (dst, self.dst_port.unwrap_or(0)),
            scope,
        ))
    }

    /// Fills `flow_key` from the other fields.
    pub fn set_flow_key(&mut self) {
        let (Some(src), Some(dst)) = (self.src_addr, self.dst_addr) else {
            self.flow_key = None;
            return;
        };
        // As `self.key()` then `hash64`, without building the key.
        let scope = self
            .ingress_vrf
            .or(self.src_vlan.map(u32::from))
            .unwrap_or(0);
        let hash = FlowKey::hash_of(
            self.protocol.unwrap_or(0),
            (src, self.src_port.unwrap_or(0)),
            (dst, self.dst_port.unwrap_or(0)),
            scope,
        );
        self.flow_key = Some(crate::ext::hex64_text(hash));
    }

    /// Fills `record_id` from the record's position in the export stream.
    pub fn set_record_id(&mut self, index_in_message: u32) {
        let mut buf = [0u8; 16 + 4 + 8 + 4 + 4];
        let ip = match self.exporter {
            IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
            IpAddr::V6(v6) => v6.octets(),
        };
        buf[0..16].copy_from_slice(&ip);
        buf[16..20].copy_from_slice(&self.observation_domain.to_be_bytes());
        buf[20..28].copy_from_slice(&self.export_time_ms.to_be_bytes());
        buf[28..32].copy_from_slice(&self.sequence_number.to_be_bytes());
        buf[32..36].copy_from_slice(&index_in_message.to_be_bytes());
        self.record_id = crate::ext::hex64_text(xxhash_rust::xxh3::xxh3_64(&buf));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `set_flow_key` writes the hex of `key()`'s hash, with and without a scope; none without
    /// both addresses.
    #[test]
    fn flow_key_is_the_key_hash() {
        let mut r = FlowRecord::empty(FlowVersion::Ipfix, "192.0.2.1".parse().unwrap());
        r.set_flow_key();
        assert_eq!(r.flow_key, None);
        r.src_addr = Some("10.0.0.1".parse().unwrap());
        r.dst_addr = Some("2001:db8::7".parse().unwrap());
        r.src_port = Some(40000);
        r.dst_port = Some(443);
        r.protocol = Some(6);
        for (vrf, vlan) in [
            (None, None),
            (Some(7), None),
            (None, Some(12)),
            (Some(3), Some(4)),
        ] {
            r.ingress_vrf = vrf;
            r.src_vlan = vlan;
            r.set_flow_key();
            let want = format!("{:016x}", r.key().unwrap().hash64());
            assert_eq!(r.flow_key.as_deref(), Some(want.as_str()));
        }
    }
}
