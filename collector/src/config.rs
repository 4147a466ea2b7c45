//! Collector configuration. Field doc comments are the user documentation: meaning, default, unit.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// How exporters' messages are decoded.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DecoderConfig {
    /// Templates not refreshed for this long are dropped (UDP only; RFC 7011 §8.4). 0 keeps them
    /// forever. Default 1800000 (30 min). Unit: ms.
    pub template_lifetime_ms: i64,
    /// Data sets that arrive before their template are held this long, then counted as undecoded.
    /// 0 holds them until the template arrives or the hold queue overflows. Default 30000. Unit: ms.
    pub hold_ms: i64,
    /// At most this many held data sets per exporter domain; the oldest is dropped (and counted)
    /// beyond it. 0 disables holding. Default 256.
    pub hold_max_sets: usize,
    /// Messages from more exporters than this are dropped and counted. Default 10000.
    pub max_exporters: usize,
    /// Templates per exporter (all domains); further new templates are refused and counted.
    /// Default 4096.
    pub max_templates_per_exporter: usize,
    /// Only these exporters (addresses or CIDR prefixes, e.g. "192.0.2.0/24") are accepted.
    /// Empty accepts all. Default empty.
    pub allowed_exporters: Vec<String>,
    /// Per-exporter sampling interval (1 in N) that overrides what the exporter announces,
    /// e.g. { "192.0.2.1" = 1000 }. Default none.
    pub sampling_overrides: HashMap<IpAddr, u32>,
    /// When an exporter's clock differs from the receive time by more than this, record times are
    /// shifted by the difference and `clock_skew_ms` is set. 0 disables. Default 300000 (5 min).
    /// Unit: ms.
    pub clock_skew_threshold_ms: i64,
    #[serde(skip)]
    pub(crate) parsed_allow: Vec<(IpAddr, u8)>,
}

impl Default for DecoderConfig {
    fn default() -> Self {
        Self {
            template_lifetime_ms: 1_800_000,
            hold_ms: 30_000,
            hold_max_sets: 256,
            max_exporters: 10_000,
            max_templates_per_exporter: 4096,
            allowed_exporters: Vec::new(),
            sampling_overrides: HashMap::new(),
            clock_skew_threshold_ms: 300_000,
            parsed_allow: Vec::new(),
        }
    }
}

impl DecoderConfig {
    /// Parses the allow-list; call once after loading. Names the first bad entry.
    pub fn validate(&mut self) -> Result<(), String> {
        self.parsed_allow = self
            .allowed_exporters
            .iter()
            .map(|s| parse_prefix(s).ok_or_else(|| format!("allowed_exporters: bad entry {s:?}")))
            .collect::<Result<_, _>>()?;
        if self.sampling_overrides.values().any(|v| *v == 0) {
            return Err("sampling_overrides: an interval must be at least 1".into());
        }
        Ok(())
    }

    pub fn allows(&self, a: IpAddr) -> bool {
        self.parsed_allow.is_empty()
            || self
                .parsed_allow
                .iter()
                .any(|(p, len)| in_prefix(a, *p, *len))
    }

    pub fn sampling_override(&self, a: IpAddr) -> Option<u32> {
        if self.sampling_overrides.is_empty() {
            None
        } else {
            self.sampling_overrides.get(&a).copied()
        }
    }

    /// Settings for decoding finite files: templates never expire, held data waits for the end, and
    /// times are kept as the exporter stamped them (a capture's age is not clock skew).
    pub fn for_files() -> Self {
        Self {
            template_lifetime_ms: 0,
            hold_ms: 0,
            clock_skew_threshold_ms: 0,
            ..Self::default()
        }
    }
}

fn parse_prefix(s: &str) -> Option<(IpAddr, u8)> {
    let (a, len) = match s.split_once('/') {
        Some((a, l)) => (a.parse::<IpAddr>().ok()?, l.parse::<u8>().ok()?),
        None => {
            let a = s.parse::<IpAddr>().ok()?;
            (a, if a.is_ipv4() { 32 } else { 128 })
        }
    };
    let max = if a.is_ipv4() { 32 } else { 128 };
    (len <= max).then_some((a, len))
}

fn in_prefix(a: IpAddr, p: IpAddr, len: u8) -> bool {
    let (a, p, len) = match (a, p) {
        (IpAddr::V4(a), IpAddr::V4(p)) => (
            u128::from(u32::from(a)) << 96,
            u128::from(u32::from(p)) << 96,
            len,
        ),
        (IpAddr::V6(a), IpAddr::V6(p)) => (u128::from(a), u128::from(p), len),
        _ => return false,
    };
    let mask = if len == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(len))
    };
    a & mask == p & mask
}

/// The collector's listeners and state.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct CollectorConfig {
    /// UDP listeners for NetFlow v5/v9 and IPFIX (any version on any port). Default
    /// ["0.0.0.0:2055", "0.0.0.0:4739"].
    pub udp_listen: Vec<SocketAddr>,
    /// TCP listeners for IPFIX over TCP (RFC 7011 §10.4). Default ["0.0.0.0:4739"].
    pub tcp_listen: Vec<SocketAddr>,
    /// Socket receive buffer requested per UDP socket. Default 33554432 (32 MiB); the kernel caps it
    /// at net.core.rmem_max unless running with CAP_NET_ADMIN. Unit: bytes.
    pub udp_recv_buffer_bytes: usize,
    /// UDP sockets per listen address (SO_REUSEPORT; the kernel spreads exporters over them).
    /// Default 1.
    pub udp_sockets_per_address: usize,
    /// Maximum concurrent IPFIX-over-TCP exporters. Default 1024.
    pub tcp_max_connections: usize,
    /// File where templates and sampling state are saved, so a restarted collector decodes data at
    /// once. Empty disables persistence. Default "./data/collector-state.json".
    pub state_file: Option<PathBuf>,
    pub decoder: DecoderConfig,
}

impl Default for CollectorConfig {
    fn default() -> Self {
        Self {
            udp_listen: vec![
                SocketAddr::from(([0, 0, 0, 0], 2055)),
                SocketAddr::from(([0, 0, 0, 0], 4739)),
            ],
            tcp_listen: vec![SocketAddr::from(([0, 0, 0, 0], 4739))],
            udp_recv_buffer_bytes: 32 << 20,
            udp_sockets_per_address: 1,
            tcp_max_connections: 1024,
            state_file: Some(PathBuf::from("./data/collector-state.json")),
            decoder: DecoderConfig::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list_prefixes() {
        let mut c = DecoderConfig {
            allowed_exporters: vec!["192.0.2.0/24".into(), "2001:db8::1".into()],
            ..DecoderConfig::default()
        };
        c.validate().expect("valid");
        assert!(c.allows("192.0.2.77".parse().expect("ip")));
        assert!(!c.allows("192.0.3.1".parse().expect("ip")));
        assert!(c.allows("2001:db8::1".parse().expect("ip")));
        assert!(!c.allows("2001:db8::2".parse().expect("ip")));
        c.allowed_exporters = vec!["300.1.1.1".into()];
        assert!(c.validate().unwrap_err().contains("300.1.1.1"));
    }
}
