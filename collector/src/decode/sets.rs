//! Message headers and the set walk for NetFlow v9 (RFC 3954) and IPFIX (RFC 7011).
//!
//! Each set is framed here and handed to netgauze-flow-pkt with the template map of its
//! (exporter, domain). Template records are split out here too (RFC 7011 §3.4.1-3.4.2,
//! RFC 3954 §5.2 and §6.1), so each one is kept as raw bytes for persistence and withdrawals
//! (RFC 7011 §8.1) are applied.

use super::stats::DecodeStats;
use super::templates::{
    parse_template, DomainState, HeldSet, Proto, RawTemplate, Template, VARLEN,
};
use super::{v5, ExporterState, MessageCtx, Outcome};
use crate::config::DecoderConfig;
use crate::normalize;
use netgauze_flow_pkt::ie::Field;
use netgauze_parse_utils::reader::SliceReader;
use netgauze_parse_utils::traits::ParseFromWithTwoInputs;
use schemas::FlowRecord;
use std::net::IpAddr;

const IPFIX_HEADER: usize = 16;
const V9_HEADER: usize = 20;

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}
fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

pub(super) fn decode_v5(
    cfg: &DecoderConfig,
    exporter: IpAddr,
    state: &mut ExporterState,
    received_ms: Option<i64>,
    msg: &[u8],
    out: &mut Vec<FlowRecord>,
    stats: &mut DecodeStats,
) {
    stats.messages += 1;
    stats.v5_messages += 1;
    let (header, records) = match v5::decode(msg) {
        Ok((h, r, problem)) => {
            if let Some(e) = problem {
                stats.errors += 1;
                state.stats.note_error(e.to_string());
            }
            (h, r)
        }
        Err(e) => {
            stats.errors += 1;
            state.stats.note_error(e.to_string());
            return;
        }
    };
    let engine = u16::from(header.engine_type) << 8 | u16::from(header.engine_id);
    let next = state.v5_next_sequence.insert(
        engine,
        header.flow_sequence.wrapping_add(u32::from(header.count)),
    );
    if let Some(expected) = next {
        note_sequence(stats, expected, header.flow_sequence);
    }
    let received = received_ms.unwrap_or_else(|| header.export_time_ms());
    let interval = cfg
        .sampling_override(exporter)
        .unwrap_or(u32::from(header.sampling_interval).max(1));
    for (i, r) in records.iter().enumerate() {
        let mut rec = normalize::v5_record(exporter, &header, r, interval, received, cfg, stats);
        rec.set_record_id(i as u32);
        out.push(rec);
        stats.flow_records += 1;
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn decode_v9_ipfix(
    cfg: &DecoderConfig,
    proto: Proto,
    exporter: IpAddr,
    state: &mut ExporterState,
    received_ms: Option<i64>,
    msg: &[u8],
    out: &mut Vec<FlowRecord>,
    stats: &mut DecodeStats,
) -> Outcome {
    stats.messages += 1;
    let (ctx, body) = match header(proto, exporter, received_ms, msg) {
        Ok(x) => x,
        Err(e) => {
            stats.errors += 1;
            state.stats.note_error(e);
            return Outcome::default();
        }
    };
    match proto {
        Proto::V9 => stats.v9_messages += 1,
        Proto::Ipfix => stats.ipfix_messages += 1,
    }
    let templates_now = state.template_count();
    let dom = state.domains.entry(ctx.domain).or_default();
    let mut changed = false;
    let mut data_records_in_msg = 0u32;
    let mut index = 0u32;
    let mut off = 0usize;
    // v9: the header counts records (RFC 3954 §5.1), which is never fewer than the sets that carry
    // them. When an exporter's count is smaller than its number of sets the header is inconsistent:
    // like tshark, the sets past `count` are ignored, and counted as an error.
    let v9_count = if proto == Proto::V9 {
        usize::from(be16(msg, 2))
    } else {
        0
    };
    let mut sets_done = 0usize;
    while off + 4 <= body.len() {
        if proto == Proto::V9 && sets_done >= v9_count {
            stats.errors += 1;
            state.stats.note_error(format!(
                "v9 header count {v9_count} reached with {} bytes of sets left",
                body.len() - off
            ));
            off = body.len();
            break;
        }
        let id = be16(body, off);
        let len = usize::from(be16(body, off + 2));
        if len < 4 || off + len > body.len() {
            stats.errors += 1;
            state.stats.note_error(format!(
                "set id {id} at message offset {} has length {len}, {} bytes remain",
                off + header_len(proto),
                body.len() - off
            ));
            off = body.len();
            break;
        }
        let set = &body[off..off + len];
        off += len;
        sets_done += 1;
        let r = match (proto, id) {
            (Proto::Ipfix, 2) | (Proto::V9, 0) => {
                template_set(cfg, proto, false, dom, templates_now, &ctx, set, stats)
            }
            (Proto::Ipfix, 3) | (Proto::V9, 1) => {
                template_set(cfg, proto, true, dom, templates_now, &ctx, set, stats)
            }
            (_, id) if id >= 256 => {
                if dom.has_template(proto, id) {
                    let n = data_set(cfg, dom, &ctx, id, set, &mut index, out, stats);
                    n.map(|n| {
                        data_records_in_msg += n;
                        false
                    })
                } else if dom.rejected.contains(&(proto, id)) {
                    Err(format!("data set {id} uses a template that was rejected"))
                } else {
                    hold(cfg, dom, &ctx, id, set, stats);
                    Ok(false)
                }
            }
            (_, id) => Err(format!("reserved set id {id}")),
        };
        match r {
            Ok(c) => changed |= c,
            Err(e) => {
                stats.errors += 1;
                state.stats.note_error(e);
            }
        }
    }
    // Trailing bytes shorter than a set header are padding (RFC 3954 §5.3) when zero.
    if body[off..].iter().any(|b| *b != 0) {
        stats.errors += 1;
        state.stats.note_error(format!(
            "{} trailing bytes after the last set",
            body.len() - off
        ));
    }
    if changed {
        changed |= release_held(cfg, proto, dom, &mut index, out, stats);
    }
    // Sequence numbers: IPFIX counts data records per domain, v9 counts messages.
    let advance = match proto {
        Proto::Ipfix => data_records_in_msg,
        Proto::V9 => 1,
    };
    if let Some(expected) = dom.next_sequence {
        note_sequence(stats, expected, ctx.sequence);
    }
    dom.next_sequence = Some(ctx.sequence.wrapping_add(advance));
    Outcome {
        state_changed: changed,
    }
}

fn header_len(proto: Proto) -> usize {
    match proto {
        Proto::V9 => V9_HEADER,
        Proto::Ipfix => IPFIX_HEADER,
    }
}

fn header(
    proto: Proto,
    exporter: IpAddr,
    received_ms: Option<i64>,
    msg: &[u8],
) -> Result<(MessageCtx, &[u8]), String> {
    match proto {
        Proto::Ipfix => {
            if msg.len() < IPFIX_HEADER {
                return Err(format!(
                    "IPFIX message of {} bytes, header is 16",
                    msg.len()
                ));
            }
            let length = usize::from(be16(msg, 2));
            if length < IPFIX_HEADER || length > msg.len() {
                return Err(format!(
                    "IPFIX header length {length} but {} bytes received",
                    msg.len()
                ));
            }
            let export_time_ms = i64::from(be32(msg, 4)) * 1000;
            Ok((
                MessageCtx {
                    proto,
                    exporter,
                    domain: be32(msg, 12),
                    export_time_ms,
                    sys_uptime_ms: 0,
                    sequence: be32(msg, 8),
                    received_ms: received_ms.unwrap_or(export_time_ms),
                },
                &msg[IPFIX_HEADER..length],
            ))
        }
        Proto::V9 => {
            if msg.len() < V9_HEADER {
                return Err(format!(
                    "NetFlow v9 message of {} bytes, header is 20",
                    msg.len()
                ));
            }
            let export_time_ms = i64::from(be32(msg, 8)) * 1000;
            Ok((
                MessageCtx {
                    proto,
                    exporter,
                    domain: be32(msg, 16),
                    export_time_ms,
                    sys_uptime_ms: be32(msg, 4),
                    sequence: be32(msg, 12),
                    received_ms: received_ms.unwrap_or(export_time_ms),
                },
                &msg[V9_HEADER..],
            ))
        }
    }
}

fn note_sequence(stats: &mut DecodeStats, expected: u32, got: u32) {
    let gap = got.wrapping_sub(expected) as i32;
    if gap > 0 {
        stats.sequence_gaps += 1;
        stats.lost_estimate += gap as u64;
    }
}

/// Splits a template or options template set into its records, registers each with netgauze and
/// keeps its bytes. Returns whether any template changed.
#[allow(clippy::too_many_arguments)]
fn template_set(
    cfg: &DecoderConfig,
    proto: Proto,
    options: bool,
    dom: &mut DomainState,
    exporter_templates: usize,
    ctx: &MessageCtx,
    set: &[u8],
    stats: &mut DecodeStats,
) -> Result<bool, String> {
    let set_id = be16(set, 0);
    let mut changed = false;
    let mut p = 4usize;
    loop {
        let rest = &set[p..];
        let Some(len) = template_record_len(proto, options, rest)? else {
            break; // padding
        };
        let rec = &rest[..len];
        p += len;
        if options {
            stats.options_templates += 1;
        } else {
            stats.templates += 1;
        }
        let tid = be16(rec, 0);
        let field_count = be16(rec, 2);
        // Withdrawal (RFC 7011 §8.1): a template record with no fields. Id 2 (3) withdraws every
        // template (options template) of the domain.
        if proto == Proto::Ipfix && field_count == 0 && (!options || rec.len() <= 6) {
            stats.template_withdrawals += 1;
            if (tid == 2 && !options) || (tid == 3 && options) {
                let ids: Vec<u16> = dom
                    .raw
                    .iter()
                    .filter(|((pr, _), t)| *pr == proto && t.options == options)
                    .map(|((_, id), _)| *id)
                    .collect();
                for id in ids {
                    dom.remove_template(proto, id);
                }
            } else {
                dom.remove_template(proto, tid);
            }
            changed = true;
            continue;
        }
        let unchanged = dom
            .raw
            .get(&(proto, tid))
            .is_some_and(|t| t.bytes == rec && t.options == options);
        if unchanged {
            if let Some(t) = dom.raw.get_mut(&(proto, tid)) {
                t.refreshed_ms = ctx.received_ms;
            }
            continue;
        }
        let is_new = !dom.raw.contains_key(&(proto, tid));
        if is_new && exporter_templates + dom.raw.len() >= cfg.max_templates_per_exporter {
            stats.templates_rejected_cap += 1;
            continue;
        }
        match parse_template(proto, options, rec) {
            Ok(t) => {
                dom.templates.insert((proto, tid), t);
                dom.rejected.remove(&(proto, tid));
            }
            Err(e) => {
                // A template we cannot parse must not leave an older definition in force.
                dom.remove_template(proto, tid);
                dom.rejected.insert((proto, tid));
                return Err(format!("template {tid} (set {set_id}): {e}"));
            }
        }
        dom.raw.insert(
            (proto, tid),
            RawTemplate {
                options,
                bytes: rec.to_vec(),
                refreshed_ms: ctx.received_ms,
                field_count,
            },
        );
        changed = true;
    }
    Ok(changed)
}

/// Length of the template record at the start of `b`, `None` when what is left is padding.
fn template_record_len(proto: Proto, options: bool, b: &[u8]) -> Result<Option<usize>, String> {
    let min = match (proto, options) {
        (Proto::Ipfix, false) => 4,
        (Proto::Ipfix, true) => 6,
        (Proto::V9, false) => 4,
        (Proto::V9, true) => 6,
    };
    if b.len() < min || b.iter().all(|x| *x == 0) {
        return Ok(None);
    }
    let need = match proto {
        Proto::Ipfix => {
            let count = usize::from(be16(b, 2));
            let mut p = if options && count > 0 { 6 } else { 4 };
            for _ in 0..count {
                if p + 4 > b.len() {
                    return Err(format!("template record truncated at byte {p}"));
                }
                let enterprise = be16(b, p) & 0x8000 != 0;
                p += if enterprise { 8 } else { 4 };
            }
            p
        }
        Proto::V9 if !options => 4 + 4 * usize::from(be16(b, 2)),
        Proto::V9 => 6 + usize::from(be16(b, 2)) + usize::from(be16(b, 4)),
    };
    if need > b.len() {
        return Err(format!(
            "template record needs {need} bytes, {} remain in the set",
            b.len()
        ));
    }
    Ok(Some(need))
}

fn hold(
    cfg: &DecoderConfig,
    dom: &mut DomainState,
    ctx: &MessageCtx,
    id: u16,
    set: &[u8],
    stats: &mut DecodeStats,
) {
    if cfg.hold_max_sets == 0 {
        stats.undecoded_sets += 1;
        return;
    }
    while dom.held.len() >= cfg.hold_max_sets {
        dom.held.pop_front();
        stats.undecoded_sets += 1;
        stats.held_sets_overflow += 1;
    }
    dom.held.push_back(HeldSet {
        template_id: id,
        bytes: set.to_vec(),
        ctx: *ctx,
    });
}

/// Decodes held sets whose template is now known.
fn release_held(
    cfg: &DecoderConfig,
    proto: Proto,
    dom: &mut DomainState,
    index: &mut u32,
    out: &mut Vec<FlowRecord>,
    stats: &mut DecodeStats,
) -> bool {
    let ready: Vec<HeldSet> = {
        let (ready, keep): (Vec<_>, Vec<_>) = dom.held.drain(..).partition(|h| {
            h.ctx.proto == proto && dom.templates.contains_key(&(proto, h.template_id))
        });
        dom.held = keep.into();
        ready
    };
    let mut changed = false;
    for h in ready {
        let before = stats.flow_records + stats.options_records;
        match data_set(cfg, dom, &h.ctx, h.template_id, &h.bytes, index, out, stats) {
            Ok(_) => {
                stats.late_decoded_sets += 1;
                stats.late_decoded_records += stats.flow_records + stats.options_records - before;
                changed = true;
            }
            Err(_) => stats.errors += 1,
        }
    }
    changed
}

/// Decodes a data set: records framed by the template (RFC 7011 §3.3, RFC 3954 §5.3), each field
/// decoded by netgauze's element decoder. Returns the number of records.
#[allow(clippy::too_many_arguments)]
fn data_set(
    cfg: &DecoderConfig,
    dom: &mut DomainState,
    ctx: &MessageCtx,
    id: u16,
    set: &[u8],
    index: &mut u32,
    out: &mut Vec<FlowRecord>,
    stats: &mut DecodeStats,
) -> Result<u32, String> {
    let Some(t) = dom.templates.get(&(ctx.proto, id)) else {
        return Err(format!("no template {id}"));
    };
    if t.min_len == 0 {
        return Ok(0);
    }
    let options = t.options;
    let mut fields: Vec<Field> = Vec::with_capacity(t.specs.len());
    let mut records = Vec::new();
    let mut body = &set[4..];
    let mut n = 0u32;
    let mut err = None;
    while body.len() >= t.min_len {
        fields.clear();
        match record(t, body, &mut fields) {
            Ok(used) => body = &body[used..],
            Err(e) => {
                err = Some(format!("data set {id}, record {n}: {e}"));
                break;
            }
        }
        n += 1;
        if options {
            records.push(std::mem::take(&mut fields));
        } else {
            emit(cfg, dom, ctx, id, &fields, index, out, stats);
        }
    }
    for r in &records {
        crate::normalize::options_record(dom, r.iter());
        stats.options_records += 1;
    }
    match err {
        Some(e) => Err(e),
        None => Ok(n),
    }
}

/// Decodes one record's fields; returns the bytes it used. v9 scope fields are skipped.
fn record(t: &Template, b: &[u8], fields: &mut Vec<Field>) -> Result<usize, String> {
    let mut p = 0usize;
    for s in &t.specs {
        let len = if s.len == VARLEN {
            // RFC 7011 §7: one length octet, or 255 and a two-octet length.
            let first = *b.get(p).ok_or("variable-length field truncated")?;
            if first == 255 {
                let l = b
                    .get(p + 1..p + 3)
                    .ok_or("variable-length field truncated")?;
                p += 3;
                usize::from(u16::from_be_bytes([l[0], l[1]]))
            } else {
                p += 1;
                usize::from(first)
            }
        } else {
            usize::from(s.len)
        };
        let v = b
            .get(p..p + len)
            .ok_or_else(|| format!("field needs {len} bytes at {p}, record has {}", b.len()))?;
        p += len;
        if let Some(f) = s.fast.and_then(|k| super::fast::decode(k, v)) {
            fields.push(f);
        } else if let Some(ie) = &s.ie {
            let mut cur = SliceReader::new(v);
            let f = <Field as ParseFromWithTwoInputs<_, _>>::parse(&mut cur, ie, len as u16)
                .map_err(|e| format!("{ie:?}: {e}"))?;
            fields.push(f);
        }
    }
    Ok(p)
}

#[allow(clippy::too_many_arguments)]
fn emit(
    cfg: &DecoderConfig,
    dom: &DomainState,
    ctx: &MessageCtx,
    template_id: u16,
    fields: &[Field],
    index: &mut u32,
    out: &mut Vec<FlowRecord>,
    stats: &mut DecodeStats,
) {
    let mut rec = normalize::flow_record(cfg, dom, ctx, fields, stats);
    rec.template_id = template_id;
    rec.set_record_id(*index);
    *index += 1;
    out.push(rec);
    stats.flow_records += 1;
}
