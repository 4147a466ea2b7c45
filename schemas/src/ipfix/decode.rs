//! Super-NetFlow records back from IPFIX: a collector decodes our messages like any exporter's
//! into [`FlowRecord`]s (the IANA elements in their columns or as typed extensions, the enterprise
//! elements — unknown to its IPFIX library — as hex [`crate::Extension`]s); [`record_kind`] tells
//! which kind such a record is (the record-kind element, or the tap's marker for taps that do not
//! send it) and [`record_from_flow`] turns it back into the record it was encoded from.

use super::encode::lookup;
use super::registry::{
    registry, Form, IeType, InfoElement, RegistryError, RECORD_KIND_ID, RETIRED,
};
use super::PEN;
use crate::ext::ExtValue;
use crate::flow::{FlowRecord, TimeSource};
use crate::kind::{hash_id, RecordKind};
use crate::session::AppSession;
use crate::super_flow::SuperFlow;
use crate::tap::TapRecord;
use serde_json::{Map, Number, Value};

/// Element id of `tap_id`, whose presence marks a record as a tap record when it carries no
/// record-kind element.
pub const TAP_MARKER_ID: u16 = 2;

/// Why a record that carries our elements could not be turned back into its record.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The registry is broken (a build problem, not an input one).
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// An element's value does not decode.
    #[error("element {name} ({path}): {what}")]
    Value {
        /// Element name.
        name: String,
        /// Field path.
        path: String,
        /// What is wrong.
        what: String,
    },
    /// The fields do not make a record (a required field is missing).
    #[error("not a complete {kind} record: {source}")]
    Record {
        /// The kind the record said it was.
        kind: RecordKind,
        /// What serde found missing or wrong.
        source: serde_json::Error,
    },
}

/// A record decoded back from IPFIX.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    /// A tap record.
    Tap(Box<TapRecord>),
    /// A super-flow.
    Super(Box<SuperFlow>),
    /// An application session.
    Session(Box<AppSession>),
}

/// The kind of Super-NetFlow record `f` carries: the record-kind element of [`PEN`], else the
/// tap's marker (taps that predate the record-kind element); `None` for anyone else's flow (or a
/// kind code we do not know).
pub fn record_kind(f: &FlowRecord) -> Option<RecordKind> {
    let mut marker = false;
    for x in f.extensions.iter().filter(|x| x.pen == PEN) {
        if x.id == RECORD_KIND_ID {
            let ExtValue::Hex(h) = &x.value else {
                return None;
            };
            let code = crate::ext::hex_decode(h).filter(|b| b.len() == 1)?[0];
            return match RecordKind::ALL.get(usize::from(code)) {
                Some(RecordKind::Flow) | None => None,
                Some(k) => Some(*k),
            };
        }
        marker |= x.id == TAP_MARKER_ID;
    }
    marker.then_some(RecordKind::Tap)
}

/// True when `f` came from a tap's export.
pub fn is_tap_record(f: &FlowRecord) -> bool {
    record_kind(f) == Some(RecordKind::Tap)
}

/// The record a collector's `FlowRecord` was encoded from; `None` when `f` is not one of ours.
pub fn record_from_flow(f: &FlowRecord) -> Option<Result<Decoded, DecodeError>> {
    Some(match record_kind(f)? {
        RecordKind::Tap => decode_tap(f).map(|r| Decoded::Tap(Box::new(r))),
        RecordKind::SuperFlow => decode_super(f).map(|r| Decoded::Super(Box::new(r))),
        RecordKind::AppSession => decode_session(f).map(|r| Decoded::Session(Box::new(r))),
        RecordKind::Flow => return None,
    })
}

/// The tap record a collector's `FlowRecord` was encoded from; `None` when `f` is not from a tap.
pub fn tap_record_from_flow(f: &FlowRecord) -> Option<Result<TapRecord, DecodeError>> {
    is_tap_record(f).then(|| decode_tap(f))
}

/// The super-flow a collector's `FlowRecord` was encoded from; `None` when `f` is not one.
pub fn super_flow_from_flow(f: &FlowRecord) -> Option<Result<SuperFlow, DecodeError>> {
    (record_kind(f) == Some(RecordKind::SuperFlow)).then(|| decode_super(f))
}

/// The application session a collector's `FlowRecord` was encoded from; `None` when `f` is not
/// one.
pub fn app_session_from_flow(f: &FlowRecord) -> Option<Result<AppSession, DecodeError>> {
    (record_kind(f) == Some(RecordKind::AppSession)).then(|| decode_session(f))
}

fn decode_tap(f: &FlowRecord) -> Result<TapRecord, DecodeError> {
    let mut root = fields(RecordKind::Tap, f)?;
    // Derived fields, recomputed below.
    set(&mut root, "record_id", Value::String(String::new()));
    set(&mut root, "key.flow_key", Value::String(String::new()));
    // Left out when it equals the flow key (registry::same_as).
    let digest_is_key = lookup(&root, "stats.digest").is_none();
    if digest_is_key {
        set(&mut root, "stats.digest", Value::String(String::new()));
    }
    let mut t: TapRecord = typed(RecordKind::Tap, root)?;
    t.key.set_flow_key();
    if digest_is_key {
        t.stats.digest = t.key.flow_key.clone();
    }
    t.set_record_id();
    Ok(t)
}

fn decode_super(f: &FlowRecord) -> Result<SuperFlow, DecodeError> {
    let mut root = fields(RecordKind::SuperFlow, f)?;
    for p in ["record_id", "enrichment_status", "app_type"] {
        // Placeholders of the derived columns (any valid value), set from the record below.
        let v = match p {
            "enrichment_status" => "unmatched",
            "app_type" => "unknown",
            _ => "",
        };
        set(&mut root, p, Value::String(v.into()));
    }
    let mut s: SuperFlow = typed(RecordKind::SuperFlow, root)?;
    s.flow.make_mut().set_flow_key();
    s.record_id = s.flow.record_id.as_str().to_owned();
    s.sync_columns();
    Ok(s)
}

fn decode_session(f: &FlowRecord) -> Result<AppSession, DecodeError> {
    let mut root = fields(RecordKind::AppSession, f)?;
    set(&mut root, "record_id", Value::String(String::new()));
    let mut s: AppSession = typed(RecordKind::AppSession, root)?;
    s.record_id = hash_id(&[s.session_id.as_bytes(), &s.seq.to_be_bytes()]);
    Ok(s)
}

fn typed<T: serde::de::DeserializeOwned>(kind: RecordKind, v: Value) -> Result<T, DecodeError> {
    serde_json::from_value(v).map_err(|source| DecodeError::Record { kind, source })
}

/// The record's fields, as the JSON form, from the elements present.
fn fields(kind: RecordKind, f: &FlowRecord) -> Result<Value, DecodeError> {
    let reg = registry(kind)?;
    let mut root = Value::Object(Map::new());
    for e in reg {
        if e.form == Form::RecordKind {
            continue;
        }
        if !e.solid_parent.is_empty() && lookup(&root, &e.solid_parent).is_none() {
            set(&mut root, &e.solid_parent, Value::Object(Map::new()));
        }
        let v = if e.pen == 0 {
            iana_value(e, f)?
        } else {
            match f.extensions.iter().find(|x| x.pen == e.pen && x.id == e.id) {
                Some(x) => Some(enterprise_value(e, &x.value)?),
                None => retired_value(e, f)?,
            }
        };
        if let Some(v) = v {
            set(&mut root, &e.path, v);
        }
    }
    Ok(root)
}

/// The value of an IANA element, read back from the column the collector put it in, or from its
/// typed extension when it has no column.
fn iana_value(e: &InfoElement, f: &FlowRecord) -> Result<Option<Value>, DecodeError> {
    let skew = f.clock_skew_ms.unwrap_or(0);
    // The collector fills missing times from the export time; only sent ones are the record's.
    let sent_time = f.time_source == TimeSource::Absolute;
    let ip = |a: Option<std::net::IpAddr>| a.map(|a| Value::String(a.to_string()));
    Ok(match e.id {
        8 | 27 => ip(f.src_addr),
        12 | 28 => ip(f.dst_addr),
        7 => f.src_port.map(Value::from),
        11 => f.dst_port.map(Value::from),
        4 => f.protocol.map(Value::from),
        58 => f.src_vlan.map(Value::from),
        59 => f.dst_vlan.map(Value::from),
        // The collector shifts times by the exporter's clock skew when it corrects it.
        152 => f
            .flow_start_ms
            .filter(|_| sent_time)
            .map(|t| Value::from(t + skew)),
        153 => f
            .flow_end_ms
            .filter(|_| sent_time)
            .map(|t| Value::from(t + skew)),
        1 => f.octets_exported.map(Value::from),
        2 => f.packets_exported.map(Value::from),
        5 => f.tos.map(Value::from),
        6 => f.tcp_flags.map(Value::from),
        10 => f.input_interface.map(Value::from),
        14 => f.output_interface.map(Value::from),
        234 => f.ingress_vrf.map(Value::from),
        235 => f.egress_vrf.map(Value::from),
        16 => f.src_as.map(Value::from),
        17 => f.dst_as.map(Value::from),
        9 | 29 => f.src_mask.map(Value::from),
        13 | 30 => f.dst_mask.map(Value::from),
        15 | 62 => ip(f.next_hop),
        18 | 63 => ip(f.bgp_next_hop),
        176 | 178 => f.icmp_type.map(Value::from),
        177 | 179 => f.icmp_code.map(Value::from),
        136 => f.flow_end_reason.map(Value::from),
        61 => match f.direction {
            None => None,
            Some(d) => Some(serde_json::to_value(d).map_err(|x| DecodeError::Value {
                name: e.name.clone(),
                path: e.path.clone(),
                what: x.to_string(),
            })?),
        },
        _ => {
            let alt = match e.form {
                Form::Address { v6_id } | Form::Family { v6_id, .. } => Some(v6_id),
                _ => None,
            };
            let Some(x) = f
                .extensions
                .iter()
                .find(|x| x.pen == 0 && (x.id == e.id || Some(x.id) == alt))
            else {
                return Ok(None);
            };
            Some(match &x.value {
                ExtValue::Unsigned(n) => Value::from(*n),
                ExtValue::Signed(n) | ExtValue::TimeMs(n) => Value::from(*n),
                ExtValue::Float(n) => Number::from_f64(*n).map_or(Value::Null, Value::Number),
                ExtValue::Bool(b) => Value::Bool(*b),
                ExtValue::String(s) | ExtValue::Address(s) => Value::String(s.to_string()),
                ExtValue::Hex(h) => {
                    return Err(DecodeError::Value {
                        name: e.name.clone(),
                        path: e.path.clone(),
                        what: format!("IANA element as raw octets {h}"),
                    })
                }
            })
        }
    })
}

/// The value of `e`'s field from the element it travelled in before ([`RETIRED`]: a series as
/// JSON text, an enum as its name), for records of older taps; `None` when that is absent too.
fn retired_value(e: &InfoElement, f: &FlowRecord) -> Result<Option<Value>, DecodeError> {
    let Some((_, old)) = RETIRED.iter().find(|(p, _)| *p == e.path) else {
        return Ok(None);
    };
    let Some(x) = f.extensions.iter().find(|x| x.pen == e.pen && x.id == *old) else {
        return Ok(None);
    };
    let form = match e.form {
        Form::QoeSeries => Form::JsonList,
        _ => Form::Plain,
    };
    let legacy = InfoElement {
        id: *old,
        ty: IeType::String,
        form,
        ..e.clone()
    };
    enterprise_value(&legacy, &x.value).map(Some)
}

fn enterprise_value(e: &InfoElement, v: &ExtValue) -> Result<Value, DecodeError> {
    let bad = |what: String| DecodeError::Value {
        name: e.name.clone(),
        path: e.path.clone(),
        what,
    };
    let ExtValue::Hex(h) = v else {
        return Err(bad(format!("expected raw octets, got {v:?}")));
    };
    let b = crate::ext::hex_decode(h).ok_or_else(|| bad(format!("bad hex {h:?}")))?;
    let integer = matches!(
        e.ty,
        IeType::Unsigned8
            | IeType::Unsigned16
            | IeType::Unsigned32
            | IeType::Unsigned64
            | IeType::Signed8
            | IeType::Signed16
            | IeType::Signed32
            | IeType::Signed64
    );
    if let Some(n) = e.ty.length() {
        // Integers may come in reduced-size encoding (RFC 7011 §6.2): 1 to n octets.
        let fits = if integer {
            (1..=usize::from(n)).contains(&b.len())
        } else {
            b.len() == usize::from(n)
        };
        if !fits {
            return Err(bad(format!("{} octets, expected {n}", b.len())));
        }
    }
    let be = |b: &[u8]| b.iter().fold(0u64, |a, x| (a << 8) | u64::from(*x));
    // A signed value of b.len() octets, sign-extended.
    let signed = |b: &[u8]| {
        let shift = 64 - 8 * b.len() as u32;
        ((be(b) << shift) as i64) >> shift
    };
    let text = || String::from_utf8(b.clone()).map_err(|_| bad("not UTF-8".into()));
    if e.form == Form::JsonList {
        return serde_json::from_str(&text()?).map_err(|x| bad(format!("list: {x}")));
    }
    if let Form::EnumCode(values) = e.form {
        let code = b.first().copied().filter(|_| b.len() == 1);
        return code
            .and_then(|c| values.get(usize::from(c)))
            .map(|(v, _)| Value::String(v.clone()))
            .ok_or_else(|| bad(format!("unknown code {b:?}")));
    }
    if e.form == Form::QoeSeries {
        let samples = super::series::unpack(&b).map_err(|x| bad(x.to_string()))?;
        return serde_json::to_value(samples).map_err(|x| bad(format!("series: {x}")));
    }
    Ok(match e.ty {
        IeType::Unsigned8 | IeType::Unsigned16 | IeType::Unsigned32 | IeType::Unsigned64 => {
            Value::from(be(&b))
        }
        IeType::Signed8 | IeType::Signed16 | IeType::Signed32 | IeType::Signed64 => {
            Value::from(signed(&b))
        }
        IeType::DateTimeMilliseconds => Value::from(be(&b) as i64),
        IeType::Float32 => {
            let f = f32::from_bits(be(&b) as u32);
            Number::from_f64(f64::from(f))
                .map(Value::Number)
                .ok_or_else(|| bad(format!("not finite: {f}")))?
        }
        IeType::Float64 => {
            let f = f64::from_bits(be(&b));
            Number::from_f64(f)
                .map(Value::Number)
                .ok_or_else(|| bad(format!("not finite: {f}")))?
        }
        IeType::Boolean => match b[0] {
            1 => Value::Bool(true),
            2 => Value::Bool(false),
            x => return Err(bad(format!("boolean {x}"))),
        },
        IeType::String => Value::String(text()?),
        IeType::Ipv4Address | IeType::Ipv6Address => {
            return Err(bad("address in an enterprise element".into()))
        }
        IeType::OctetArray => return Err(bad("octets without a packed form".into())),
    })
}

fn set(root: &mut Value, path: &str, v: Value) {
    let mut cur = root;
    let mut parts = path.split('.').peekable();
    while let Some(k) = parts.next() {
        let Value::Object(m) = cur else {
            return;
        };
        if parts.peek().is_none() {
            m.insert(k.to_string(), v);
            return;
        }
        cur = m
            .entry(k.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
    }
}
