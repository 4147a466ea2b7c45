//! The matching rules: how well a tap flow covers a router flow, the verdict, and the super-flow
//! built from them. Pure functions of the router record and a tap summary.

use super::config::JoinConfig;
use super::state::{tf, TapSide};
use schemas::shared::Shared;
use schemas::super_flow::KeyMatch;
use schemas::{AppType, Enrichment, FlowKey, FlowRecord, MatchStatus, SuperFlow};
use std::net::{IpAddr, Ipv6Addr};

/// A router flow's time span `[start, end]`, ms. Without times the export time stands for both.
pub(crate) fn router_span(f: &FlowRecord) -> (i64, i64) {
    let s = f
        .flow_start_ms
        .or(f.flow_end_ms)
        .unwrap_or(f.export_time_ms);
    let e = f
        .flow_end_ms
        .or(f.flow_start_ms)
        .unwrap_or(f.export_time_ms);
    (s.min(e), s.max(e))
}

/// Parses 16 hex digits (either case): eight bytes at a time, checked and converted with word
/// arithmetic (about 40 instructions instead of 160 for a loop over the digits; every record pays
/// it).
pub(crate) fn parse_key(s: &str) -> Option<u64> {
    let b: &[u8; 16] = s.as_bytes().try_into().ok()?;
    let (hi, lo) = b.split_at(8);
    let hi = hex8(u64::from_be_bytes(hi.try_into().ok()?))?;
    let lo = hex8(u64::from_be_bytes(lo.try_into().ok()?))?;
    Some((hi << 32) | lo)
}

/// Eight ASCII hex digits (the first in the top byte) to their 32-bit value.
fn hex8(x: u64) -> Option<u64> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    if x & HIGH != 0 {
        return None;
    }
    // Per byte (all below 0x80, so no carry or borrow crosses bytes): high bit set when
    // `lo <= v <= hi`.
    let within =
        |v: u64, lo: u64, hi: u64| (v + ONES * (0x80 - lo)) & (ONES * (0x80 + hi) - v) & HIGH;
    let digit = within(x, b'0'.into(), b'9'.into());
    // `| 0x20` maps 'A'..='F' onto 'a'..='f' and nothing else into that range.
    let letter = within(x | (ONES * 0x20), b'a'.into(), b'f'.into());
    if digit | letter != HIGH {
        return None;
    }
    // Nibbles: a digit's low four bits, a letter's plus 9.
    let mut v = (x & (ONES * 0x0f)) + (letter >> 7) * 9;
    v = (v | (v >> 4)) & 0x00ff_00ff_00ff_00ff;
    v = (v | (v >> 8)) & 0x0000_ffff_0000_ffff;
    v = (v | (v >> 16)) & 0xffff_ffff;
    Some(v)
}

fn v6(a: IpAddr) -> Ipv6Addr {
    match a {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// True when `a` is the lower endpoint of the canonical key (see [`FlowKey::new`]).
pub(crate) fn is_low(a: (IpAddr, u16), b: (IpAddr, u16)) -> bool {
    (v6(a.0), a.1) <= (v6(b.0), b.1)
}

/// The router record's key without scope (for `ignore_scope`).
pub(crate) fn router_unscoped_key(f: &FlowRecord) -> Option<u64> {
    let k = f.key()?;
    Some(FlowKey { scope: 0, ..k }.hash64())
}

/// Hash of (protocol, server endpoint): the NAT index key.
pub(crate) fn server_hash(protocol: u8, addr: IpAddr, port: u16) -> u64 {
    let mut b = [0u8; 19];
    b[0] = protocol;
    b[1..17].copy_from_slice(&v6(addr).octets());
    b[17..19].copy_from_slice(&port.to_be_bytes());
    xxhash_rust::xxh3::xxh3_64(&b)
}

/// Which of the tap's directions a router record counts.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Side {
    /// Client to server (the tap's `local_*`).
    FromClient,
    /// Server to client (the tap's `other_*`).
    FromServer,
}

/// The direction of a router record against a tap flow found by key (`flags`: the flow's [`tf`]
/// flags).
pub(crate) fn side_by_key(f: &FlowRecord, flags: u8) -> Side {
    let (Some(sa), Some(da)) = (f.src_addr, f.dst_addr) else {
        return Side::FromClient;
    };
    let src_low = is_low((sa, f.src_port.unwrap_or(0)), (da, f.dst_port.unwrap_or(0)));
    if src_low == (flags & tf::CLIENT_LOW != 0) {
        Side::FromClient
    } else {
        Side::FromServer
    }
}

/// The join's judgement of one router record against one tap flow.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Verdict {
    pub status: MatchStatus,
    pub confidence: f32,
    pub key_match: KeyMatch,
    pub ratio: Option<f32>,
    /// Nothing the tap can still send would change the verdict: emit now.
    pub settled: bool,
    /// Score used to rank NAT candidates (coverage × volume likeness).
    pub score: f32,
}

impl Verdict {
    pub(crate) const UNMATCHED: Verdict = Verdict {
        status: MatchStatus::Unmatched,
        confidence: 0.0,
        key_match: KeyMatch::None,
        ratio: None,
        settled: false,
        score: 0.0,
    };
}

/// Share of `[s, e]` that `[f, l]` covers (a point span: 1 inside, 0 outside).
fn coverage(s: i64, e: i64, f: i64, l: i64) -> f32 {
    if e <= s {
        return if f <= s && s <= l { 1.0 } else { 0.0 };
    }
    let o = (e.min(l) - s.max(f)).max(0);
    (o as f64 / (e - s) as f64) as f32
}

/// The tap's packets in direction `side` within the router span, prorated over the tap span
/// (a constant rate between the flow's first packet and its latest report).
fn tap_packets_in_span(t: &TapSide, side: Side, s: i64, e: i64, tol: i64) -> f64 {
    let p = match side {
        Side::FromClient => t.stats.local_packets,
        Side::FromServer => t.stats.other_packets,
    } as f64;
    let (f, l) = (t.first_seen_ms, t.last_seen_ms());
    if l <= f || (s <= f + tol && e >= l - tol) {
        return p;
    }
    let o = (e.min(l) - s.max(f)).max(0) as f64;
    p * (o / (l - f) as f64).clamp(0.0, 1.0)
}

/// Judges router record `r` (span `s..e`) against tap flow `t` (with [`tf`] flags `flags`).
pub(crate) fn judge(
    cfg: &JoinConfig,
    r: &FlowRecord,
    (s, e): (i64, i64),
    (t, flags): (&TapSide, u8),
    side: Side,
    key_match: KeyMatch,
) -> Verdict {
    let tol = cfg.clock_tolerance_ms.min(i64::MAX as u64) as i64;
    let (f, l) = (t.first_seen_ms, t.last_seen_ms());
    let cov = coverage(s, e, f.saturating_sub(tol), l.saturating_add(tol));
    let classified = t.platform.app_type != AppType::Unknown;
    let full = cov >= cfg.min_coverage;
    // Settled: complete, or the tap flow is over and the router flow is not after it (a later
    // flow on the same key would be a new tap flow, worth waiting for).
    let settled = (full && classified) || (flags & tf::ENDED != 0 && l.saturating_add(tol) >= s);
    let status = if full && classified {
        MatchStatus::Matched
    } else if cov > 0.0 {
        MatchStatus::Partial
    } else {
        MatchStatus::Unmatched
    };
    if status == MatchStatus::Unmatched {
        return Verdict {
            settled,
            ..Verdict::UNMATCHED
        };
    }
    let tp = tap_packets_in_span(t, side, s, e, tol);
    let like = if tp >= 1.0 && r.packets > 0 {
        let rp = r.packets as f64;
        (rp.min(tp) / rp.max(tp)) as f32
    } else {
        0.0
    };
    let ratio =
        (status == MatchStatus::Matched && tp >= 1.0).then(|| (r.packets as f64 / tp) as f32);
    let confidence = match key_match {
        KeyMatch::KeyWithoutScope => cov * 0.9,
        _ => cov,
    };
    Verdict {
        status,
        confidence,
        key_match,
        ratio,
        settled,
        score: cov * like,
    }
}

/// Builds the super-flow of `flow` under `v`, with the tap's blocks when the verdict is not
/// `unmatched`.
pub(crate) fn build(
    flow: Shared<FlowRecord>,
    v: &Verdict,
    t: Option<&TapSide>,
    tap_id: &str,
    digest: String,
) -> SuperFlow {
    let mut sf = SuperFlow::unmatched(flow);
    let Some(t) = t.filter(|_| v.status != MatchStatus::Unmatched) else {
        return sf;
    };
    sf.app = Some(schemas::shared::Shared(t.platform.clone()));
    sf.stats = Some(t.stats.to_stats(digest));
    sf.qoe = t.qoe.as_ref().map(|q| q.to_qoe());
    sf.enrichment = Enrichment {
        status: v.status,
        confidence: v.confidence.clamp(0.0, 1.0),
        tap: Some(tap_id.to_owned()),
        matched_tap_records: u32::from(t.reports),
        key_match: v.key_match,
        router_tap_ratio: v.ratio,
    };
    sf.sync_columns();
    sf
}
