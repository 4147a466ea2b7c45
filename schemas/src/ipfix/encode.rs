//! IPFIX export messages (RFC 7011) from records: templates allocated per set of present fields,
//! (re)sent when first used and, for UDP, every `template_refresh_ms`.

use super::registry::{kind_code, registry, same_as, Form, IeType, InfoElement, RegistryError};
use crate::kind::RecordKind;
use serde::Serialize;
use serde_json::Value;
use std::collections::HashMap;
use std::net::IpAddr;

/// Settings of an [`Encoder`].
#[derive(Debug, Clone)]
pub struct EncoderConfig {
    /// Observation domain id written in every message header.
    pub observation_domain: u32,
    /// Largest message, bytes: 1400 keeps UDP datagrams under a 1500-byte MTU; up to 65535 over
    /// TCP. A single record larger than this goes alone in a bigger message.
    pub max_message: usize,
    /// Resend a template when it was last sent this long ago (export-time ms); 0: send each
    /// template once (TCP, where the session keeps it). RFC 7011 §8.4 asks UDP exporters to resend.
    pub template_refresh_ms: i64,
    /// Also resend a template when this many messages were built since it was last sent; 0:
    /// never by count. (RFC 7011 §8.4 leaves the choice of time, count or both to the exporter.)
    pub template_refresh_messages: u64,
    /// Reduced-size encoding (RFC 7011 §6.2) of enterprise integer elements: a 16-, 32- or
    /// 64-bit value that fits half its width is sent in half (a counter of a few thousand
    /// bytes takes 4 octets, not 8). A record's template then says which width each element
    /// has, so records whose values need different widths use different templates; halving only
    /// (never down to one octet) keeps those few. IANA elements keep their full width.
    pub reduced_size: bool,
}

impl Default for EncoderConfig {
    fn default() -> Self {
        EncoderConfig {
            observation_domain: 0,
            max_message: 1400,
            template_refresh_ms: 10_000,
            template_refresh_messages: 0,
            reduced_size: false,
        }
    }
}

/// Why a record could not be encoded (the record is skipped; the others are not).
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    /// The record did not serialise to JSON.
    #[error("record does not serialise: {0}")]
    Serialise(#[from] serde_json::Error),
    /// A value does not fit its element.
    #[error("field {path}: {what}")]
    Value {
        /// Field path.
        path: String,
        /// What is wrong.
        what: String,
    },
    /// A record is larger than an IPFIX message can be.
    #[error("record of {0} bytes does not fit an IPFIX message")]
    TooLarge(usize),
    /// Every template id is taken.
    #[error("template ids exhausted ({0} distinct field sets)")]
    TemplatesExhausted(usize),
}

/// Longest string value sent: the longest variable-length value IPFIX has (RFC 7011 §7); longer
/// ones are cut at a character boundary and counted. (A record that then does not fit a 65535-byte
/// message is not sent, and counted as failed.)
pub const MAX_STRING: usize = u16::MAX as usize;

/// Most templates (distinct sets of present fields) an encoder allocates.
pub const MAX_TEMPLATES: usize = 4096;

/// Counters of an encoder.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EncoderCounters {
    /// Messages built.
    pub messages: u64,
    /// Data records encoded.
    pub records: u64,
    /// Template records sent (first use and refreshes).
    pub templates_sent: u64,
    /// Records skipped because they could not be encoded.
    pub records_failed: u64,
    /// String values cut to [`MAX_STRING`].
    pub strings_truncated: u64,
}

/// The messages of one [`Encoder::encode`] call.
#[derive(Debug, Default)]
pub struct Encoded {
    /// The messages, in order.
    pub messages: Vec<Vec<u8>>,
    /// Index (into the records given) of the first record of each message: a sender that must
    /// start over from message `i` (a new TCP session) re-encodes from `first_record[i]`.
    pub first_record: Vec<usize>,
    /// Records that could not be encoded.
    pub errors: Vec<EncodeError>,
}

/// One element of a template: index into the registry, whether the IPv6 form is used, and the
/// reduced size in octets (0: the type's own length).
type Slot = (u16, bool, u8);

#[derive(Debug)]
struct Template {
    id: u16,
    /// The template record, ready to copy into a template set.
    record: Vec<u8>,
    /// Export time it was last sent, ms.
    sent_ms: Option<i64>,
    /// Messages built before the one it was last sent in.
    sent_msg: u64,
}

/// Builds IPFIX messages from records of one kind.
#[derive(Debug)]
pub struct Encoder {
    cfg: EncoderConfig,
    kind: RecordKind,
    reg: &'static [InfoElement],
    templates: HashMap<Vec<Slot>, Template>,
    next_id: u16,
    /// Data records sent so far (the header's sequence number).
    seq: u32,
    /// Counters.
    pub counters: EncoderCounters,
}

/// One message under construction.
#[derive(Default)]
struct Pending {
    templates: Vec<u8>,
    /// Data sets as (template id, records), consecutive records of one template share a set.
    sets: Vec<(u16, Vec<u8>)>,
    records: u32,
}

impl Pending {
    fn size(&self) -> usize {
        16 + if self.templates.is_empty() {
            0
        } else {
            4 + self.templates.len()
        } + self.sets.iter().map(|(_, d)| 4 + d.len()).sum::<usize>()
    }
}

impl Encoder {
    /// An encoder for records of `kind`.
    pub fn new(kind: RecordKind, cfg: EncoderConfig) -> Result<Self, RegistryError> {
        Ok(Encoder {
            cfg,
            kind,
            reg: registry(kind)?,
            templates: HashMap::new(),
            next_id: 256,
            seq: 0,
            counters: EncoderCounters::default(),
        })
    }

    /// Forgets which templates were sent: the next messages carry them again (a new TCP session,
    /// or a collector that restarted).
    pub fn resend_templates(&mut self) {
        for t in self.templates.values_mut() {
            t.sent_ms = None;
        }
    }

    /// Encodes `records` into messages with export time `export_ms` (UTC ms). A record that cannot
    /// be encoded is skipped and counted; its error is returned beside the messages.
    pub fn encode<R: Serialize>(&mut self, records: &[R], export_ms: i64) -> Encoded {
        let mut out = Encoded::default();
        let mut cur = Pending::default();
        let mut cur_first = 0;
        let mut in_msg: Vec<u16> = Vec::new();
        for (i, r) in records.iter().enumerate() {
            let (slots, data) = match self.record(r) {
                Ok(x) => x,
                Err(e) => {
                    self.counters.records_failed += 1;
                    out.errors.push(e);
                    continue;
                }
            };
            let (tid, trec) = match self.template(slots, export_ms) {
                Ok(x) => x,
                Err(e) => {
                    self.counters.records_failed += 1;
                    out.errors.push(e);
                    continue;
                }
            };
            let need_template = trec.is_some() && !in_msg.contains(&tid);
            let template_len = match (&trec, need_template) {
                (Some(t), true) => t.len(),
                _ => 0,
            };
            let extra = data.len() + template_len + 8;
            if cur.records > 0 && cur.size() + extra > self.cfg.max_message {
                out.messages
                    .push(self.finish(std::mem::take(&mut cur), export_ms));
                out.first_record.push(cur_first);
                in_msg.clear();
            }
            if cur.size() + extra > usize::from(u16::MAX) {
                self.counters.records_failed += 1;
                out.errors.push(EncodeError::TooLarge(data.len()));
                continue;
            }
            if cur.records == 0 {
                cur_first = i;
            }
            if let Some(t) = trec {
                if !in_msg.contains(&tid) {
                    cur.templates.extend_from_slice(&t);
                    in_msg.push(tid);
                    self.counters.templates_sent += 1;
                }
            }
            match cur.sets.last_mut() {
                Some((id, d)) if *id == tid => d.extend_from_slice(&data),
                _ => cur.sets.push((tid, data)),
            }
            cur.records += 1;
        }
        if cur.records > 0 {
            out.messages.push(self.finish(cur, export_ms));
            out.first_record.push(cur_first);
        }
        out
    }

    fn finish(&mut self, p: Pending, export_ms: i64) -> Vec<u8> {
        let mut m = Vec::with_capacity(p.size());
        m.extend_from_slice(&10u16.to_be_bytes());
        m.extend_from_slice(&(p.size() as u16).to_be_bytes());
        let secs = (export_ms.max(0) / 1000).min(i64::from(u32::MAX)) as u32;
        m.extend_from_slice(&secs.to_be_bytes());
        m.extend_from_slice(&self.seq.to_be_bytes());
        m.extend_from_slice(&self.cfg.observation_domain.to_be_bytes());
        if !p.templates.is_empty() {
            m.extend_from_slice(&2u16.to_be_bytes());
            m.extend_from_slice(&((4 + p.templates.len()) as u16).to_be_bytes());
            m.extend_from_slice(&p.templates);
        }
        for (id, d) in &p.sets {
            m.extend_from_slice(&id.to_be_bytes());
            m.extend_from_slice(&((4 + d.len()) as u16).to_be_bytes());
            m.extend_from_slice(d);
        }
        self.seq = self.seq.wrapping_add(p.records);
        self.counters.messages += 1;
        self.counters.records += u64::from(p.records);
        m
    }

    /// The template of `slots`: its id, and its record when it must be sent now.
    fn template(
        &mut self,
        slots: Vec<Slot>,
        export_ms: i64,
    ) -> Result<(u16, Option<Vec<u8>>), EncodeError> {
        let refresh = self.cfg.template_refresh_ms;
        let refresh_msgs = self.cfg.template_refresh_messages;
        let msgs = self.counters.messages;
        if !self.templates.contains_key(&slots) {
            if self.templates.len() >= MAX_TEMPLATES {
                return Err(EncodeError::TemplatesExhausted(self.templates.len()));
            }
            let id = self.next_id;
            self.next_id += 1;
            let record = template_record(self.reg, id, &slots);
            self.templates.insert(
                slots.clone(),
                Template {
                    id,
                    record,
                    sent_ms: None,
                    sent_msg: 0,
                },
            );
        }
        let Some(t) = self.templates.get_mut(&slots) else {
            return Err(EncodeError::TemplatesExhausted(0));
        };
        let due = match t.sent_ms {
            None => true,
            Some(at) => {
                (refresh > 0 && export_ms.saturating_sub(at) >= refresh)
                    || (refresh_msgs > 0 && msgs.saturating_sub(t.sent_msg) >= refresh_msgs)
            }
        };
        if due {
            t.sent_ms = Some(export_ms);
            t.sent_msg = msgs;
            Ok((t.id, Some(t.record.clone())))
        } else {
            Ok((t.id, None))
        }
    }

    /// The slots and the encoded data record of one record.
    fn record<R: Serialize>(&mut self, r: &R) -> Result<(Vec<Slot>, Vec<u8>), EncodeError> {
        let v = serde_json::to_value(r)?;
        let mut slots = Vec::with_capacity(self.reg.len());
        let mut data = Vec::with_capacity(256);
        for (i, e) in self.reg.iter().enumerate() {
            if e.form == Form::RecordKind {
                data.push(kind_code(self.kind));
                slots.push((i as u16, false, 0));
                continue;
            }
            let x = lookup(&v, &e.path);
            let Some(x) = x.filter(|x| !x.is_null()) else {
                if e.nullable {
                    continue;
                }
                return Err(EncodeError::Value {
                    path: e.path.clone(),
                    what: "missing".into(),
                });
            };
            if same_as(self.kind)
                .iter()
                .any(|(p, of)| *p == e.path && lookup(&v, of) == Some(x))
            {
                continue;
            }
            let at = data.len();
            let mut v6 = write_value(e, x, &mut data, &mut self.counters.strings_truncated)?;
            let reduced = if self.cfg.reduced_size && e.pen != 0 && e.form == Form::Plain {
                reduce(e.ty, &mut data, at)
            } else {
                0
            };
            if let Form::Family { of, .. } = e.form {
                v6 = lookup(&v, of)
                    .and_then(Value::as_str)
                    .and_then(|a| a.parse::<IpAddr>().ok())
                    .is_some_and(|a| a.is_ipv6());
            }
            slots.push((i as u16, v6, reduced));
        }
        Ok((slots, data))
    }
}

/// The value at a dotted path of a JSON object.
pub(crate) fn lookup<'v>(v: &'v Value, path: &str) -> Option<&'v Value> {
    path.split('.').try_fold(v, |v, k| v.get(k))
}

fn template_record(reg: &[InfoElement], id: u16, slots: &[Slot]) -> Vec<u8> {
    let mut t = Vec::with_capacity(4 + slots.len() * 8);
    t.extend_from_slice(&id.to_be_bytes());
    t.extend_from_slice(&(slots.len() as u16).to_be_bytes());
    for &(i, v6, reduced) in slots {
        let Some(e) = reg.get(usize::from(i)) else {
            continue;
        };
        let len = match reduced {
            0 => e.ty.length().unwrap_or(u16::MAX),
            n => u16::from(n),
        };
        let (ie, len) = match (e.form, v6) {
            (Form::Address { v6_id }, true) => (v6_id, 16),
            (Form::Family { v6_id, .. }, true) => (v6_id, len),
            _ => (e.id, len),
        };
        let ie = if e.pen != 0 { ie | 0x8000 } else { ie };
        t.extend_from_slice(&ie.to_be_bytes());
        t.extend_from_slice(&len.to_be_bytes());
        if e.pen != 0 {
            t.extend_from_slice(&e.pen.to_be_bytes());
        }
    }
    t
}

/// Halves the integer of type `ty` written at `data[at..]` when its value fits half the width
/// (RFC 7011 §6.2: unsigned values keep their low-order octets, signed ones too, with the sign
/// bit kept); returns the new length, or 0 when it stays as it is.
fn reduce(ty: IeType, data: &mut Vec<u8>, at: usize) -> u8 {
    let signed = match ty {
        IeType::Unsigned16 | IeType::Unsigned32 | IeType::Unsigned64 => false,
        IeType::Signed16 | IeType::Signed32 | IeType::Signed64 => true,
        _ => return 0,
    };
    let Some(v) = data.get(at..) else {
        return 0;
    };
    let half = v.len() / 2;
    if half == 0 {
        return 0;
    }
    let (high, low) = v.split_at(half);
    let fill = if signed && low[0] & 0x80 != 0 {
        0xff
    } else {
        0
    };
    if high.iter().any(|b| *b != fill) {
        return 0;
    }
    data.drain(at..at + half);
    half as u8
}

fn bad(e: &InfoElement, what: impl Into<String>) -> EncodeError {
    EncodeError::Value {
        path: e.path.clone(),
        what: what.into(),
    }
}

/// Appends `x` as element `e`; returns whether the IPv6 form was used.
fn write_value(
    e: &InfoElement,
    x: &Value,
    out: &mut Vec<u8>,
    truncated: &mut u64,
) -> Result<bool, EncodeError> {
    let uint = |bits: u32| -> Result<u64, EncodeError> {
        let n = x
            .as_u64()
            .ok_or_else(|| bad(e, format!("not an unsigned integer: {x}")))?;
        if bits < 64 && n >> bits != 0 {
            return Err(bad(e, format!("{n} does not fit {bits} bits")));
        }
        Ok(n)
    };
    let int = |bits: u32| -> Result<i64, EncodeError> {
        let n = x
            .as_i64()
            .ok_or_else(|| bad(e, format!("not an integer: {x}")))?;
        let min = -(1i128 << (bits - 1));
        let max = (1i128 << (bits - 1)) - 1;
        if i128::from(n) < min || i128::from(n) > max {
            return Err(bad(e, format!("{n} does not fit {bits} bits")));
        }
        Ok(n)
    };
    match e.form {
        Form::Address { .. } => {
            let ip: IpAddr = x
                .as_str()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| bad(e, format!("not an IP address: {x}")))?;
            return Ok(match ip {
                IpAddr::V4(a) => {
                    out.extend_from_slice(&a.octets());
                    false
                }
                IpAddr::V6(a) => {
                    out.extend_from_slice(&a.octets());
                    true
                }
            });
        }
        Form::JsonList => {
            let text = serde_json::to_string(x)?;
            write_string(&text, out, truncated);
            return Ok(false);
        }
        Form::QoeSeries => {
            let samples: Vec<crate::qoe::QoeSample> = serde_json::from_value(x.clone())
                .map_err(|err| bad(e, format!("not a QoE series: {err}")))?;
            let packed = super::series::pack(&samples);
            if packed.len() > usize::from(u16::MAX) {
                return Err(bad(
                    e,
                    format!("{} samples pack to {} bytes", samples.len(), packed.len()),
                ));
            }
            write_octets(&packed, out);
            return Ok(false);
        }
        Form::EnumCode(values) => {
            let code = x
                .as_str()
                .and_then(|s| values.iter().position(|(v, _)| v == s))
                .and_then(|i| u8::try_from(i).ok())
                .ok_or_else(|| bad(e, format!("no code for {x}")))?;
            out.push(code);
            return Ok(false);
        }
        Form::Codes(codes) => {
            let code = x
                .as_str()
                .and_then(|s| codes.iter().find(|(n, _)| *n == s))
                .ok_or_else(|| bad(e, format!("no code for {x}")))?
                .1;
            out.push(code as u8);
            return Ok(false);
        }
        Form::RecordKind | Form::Plain | Form::Family { .. } => {}
    }
    match e.ty {
        IeType::Unsigned8 => out.push(uint(8)? as u8),
        IeType::Unsigned16 => out.extend_from_slice(&(uint(16)? as u16).to_be_bytes()),
        IeType::Unsigned32 => out.extend_from_slice(&(uint(32)? as u32).to_be_bytes()),
        IeType::Unsigned64 => out.extend_from_slice(&uint(64)?.to_be_bytes()),
        IeType::Signed8 => out.push(int(8)? as i8 as u8),
        IeType::Signed16 => out.extend_from_slice(&(int(16)? as i16).to_be_bytes()),
        IeType::Signed32 => out.extend_from_slice(&(int(32)? as i32).to_be_bytes()),
        IeType::Signed64 | IeType::DateTimeMilliseconds => {
            out.extend_from_slice(&int(64)?.to_be_bytes())
        }
        IeType::Float32 => {
            let f = x
                .as_f64()
                .ok_or_else(|| bad(e, format!("not a number: {x}")))?;
            out.extend_from_slice(&(f as f32).to_be_bytes())
        }
        IeType::Float64 => {
            let f = x
                .as_f64()
                .ok_or_else(|| bad(e, format!("not a number: {x}")))?;
            out.extend_from_slice(&f.to_be_bytes())
        }
        IeType::Boolean => {
            let b = x
                .as_bool()
                .ok_or_else(|| bad(e, format!("not a boolean: {x}")))?;
            out.push(if b { 1 } else { 2 })
        }
        IeType::String => {
            let s = x
                .as_str()
                .ok_or_else(|| bad(e, format!("not a string: {x}")))?;
            write_string(s, out, truncated)
        }
        IeType::Ipv4Address | IeType::Ipv6Address => {
            return Err(bad(e, "address element without the address form"))
        }
        IeType::OctetArray => return Err(bad(e, "octets without a packed form")),
    }
    Ok(false)
}

/// A variable-length string (RFC 7011 §7), cut at [`MAX_STRING`] on a character boundary.
fn write_string(s: &str, out: &mut Vec<u8>, truncated: &mut u64) {
    let mut end = s.len().min(MAX_STRING);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    if end < s.len() {
        *truncated += 1;
    }
    write_octets(&s.as_bytes()[..end], out);
}

/// A variable-length value (RFC 7011 §7): one length byte below 255, else 255 and two bytes.
/// `b` is at most 65535 bytes long.
fn write_octets(b: &[u8], out: &mut Vec<u8>) {
    if b.len() < 255 {
        out.push(b.len() as u8);
    } else {
        out.push(255);
        out.extend_from_slice(&(b.len() as u16).to_be_bytes());
    }
    out.extend_from_slice(b);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reduced(ty: IeType, native: &[u8]) -> (u8, Vec<u8>) {
        let mut d = vec![0xaa];
        d.extend_from_slice(native);
        let n = reduce(ty, &mut d, 1);
        assert_eq!(d[0], 0xaa, "the bytes before are kept");
        (n, d[1..].to_vec())
    }

    #[test]
    fn integers_that_fit_half_their_width_are_halved() {
        let u = IeType::Unsigned64;
        assert_eq!(
            reduced(u, &70_000u64.to_be_bytes()),
            (4, 70_000u32.to_be_bytes().to_vec())
        );
        assert_eq!(reduced(u, &(1u64 << 32).to_be_bytes()).0, 0);
        assert_eq!(
            reduced(IeType::Unsigned32, &300u32.to_be_bytes()),
            (2, vec![1, 44])
        );
        assert_eq!(
            reduced(IeType::Unsigned16, &255u16.to_be_bytes()),
            (1, vec![255])
        );
        let s = IeType::Signed32;
        assert_eq!(reduced(s, &(-2i32).to_be_bytes()), (2, vec![0xff, 0xfe]));
        assert_eq!(
            reduced(s, &40_000i32.to_be_bytes()).0,
            0,
            "would read as negative"
        );
        assert_eq!(reduced(s, &(-40_000i32).to_be_bytes()).0, 0);
        assert_eq!(reduced(IeType::Unsigned8, &[3]).0, 0);
        assert_eq!(reduced(IeType::Float64, &0f64.to_be_bytes()).0, 0);
        assert_eq!(
            reduced(IeType::DateTimeMilliseconds, &5i64.to_be_bytes()).0,
            0
        );
    }
}
