//! pmacct nfacctd expected output (`pmacct-expected-output-flow-00.json`) as an oracle.
//!
//! nfacctd prints one JSON row per entry of its aggregation cache: records sharing the
//! configured aggregation key (peer_ip_src, ip_src/dst, ports, proto, tos, ifaces, labels,
//! sometimes timestamp_start/end, ...) are merged and `packets`/`bytes` summed. The key set
//! differs per test, and several primitives are not decoder outputs (BGP/BMP enrichment,
//! pre_tag labels), so both sides are re-aggregated on the coarser common key
//! (ip_src, ip_dst, port_src, port_dst, ip_proto): sums over a coarser key are equal iff
//! nothing was lost, doubled or mis-decoded in counters. `peer_ip_src` is NOT in the key:
//! pmacct's test harness replays the pcaps from its own addresses (172.21.1.101, fd25::101)
//! while the captures' exporters are e.g. 138.187.0.13 / 2001:db8:91::1, and one pmacct peer
//! may be several UDP source ports (= several exporters for the decoder).
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

pub type Key = (String, String, u64, u64, u64);

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Sums {
    pub rows: u64,
    pub packets: u64,
    pub bytes: u64,
}

pub fn norm_ip(s: &str) -> String {
    s.parse::<IpAddr>()
        .map(|a| a.to_string())
        .unwrap_or_else(|_| s.to_string())
}

/// IANA protocol number for nfacctd's `ip_proto` (it prints names from getprotobynumber).
pub fn proto_num(v: &Value) -> Option<u64> {
    if let Some(n) = v.as_u64() {
        return Some(n);
    }
    let s = v.as_str()?;
    if let Ok(n) = s.parse() {
        return Some(n);
    }
    Some(match s {
        "ip" | "hopopt" => 0,
        "icmp" => 1,
        "igmp" => 2,
        "ipencap" | "ipip" | "ipv4" => 4,
        "tcp" => 6,
        "egp" => 8,
        "udp" => 17,
        "ipv6" => 41,
        "ipv6-route" => 43,
        "ipv6-frag" => 44,
        "rsvp" => 46,
        "gre" => 47,
        "esp" => 50,
        "ah" => 51,
        "ipv6-icmp" | "icmpv6" => 58,
        "ipv6-nonxt" => 59,
        "ipv6-opts" => 60,
        "eigrp" => 88,
        "ospf" => 89,
        "pim" => 103,
        "vrrp" => 112,
        "l2tp" => 115,
        "sctp" => 132,
        _ => return None,
    })
}

/// Reads nfacctd's JSON lines and aggregates them on the common key.
pub fn load(path: &Path) -> Result<BTreeMap<Key, Sums>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out: BTreeMap<Key, Sums> = BTreeMap::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let v: Value = serde_json::from_str(line)
            .map_err(|e| format!("{} line {}: {e}", path.display(), i + 1))?;
        let g = |k: &str| {
            v.get(k)
                .ok_or_else(|| format!("{} line {}: no `{k}`", path.display(), i + 1))
        };
        let ip =
            |k: &str| -> Result<String, String> { Ok(norm_ip(g(k)?.as_str().unwrap_or_default())) };
        let n = |k: &str| -> Result<u64, String> {
            g(k)?
                .as_u64()
                .ok_or_else(|| format!("line {}: `{k}` not an integer", i + 1))
        };
        let key = (
            ip("ip_src")?,
            ip("ip_dst")?,
            n("port_src")?,
            n("port_dst")?,
            proto_num(g("ip_proto")?)
                .ok_or_else(|| format!("line {}: unknown ip_proto {}", i + 1, v["ip_proto"]))?,
        );
        let e = out.entry(key).or_default();
        e.rows += 1;
        e.packets += n("packets")?;
        e.bytes += n("bytes")?;
    }
    Ok(out)
}
