//! Tap records back from IPFIX: a collector decodes the tap's messages like any exporter's into
//! [`FlowRecord`]s (the IANA elements in their columns, the enterprise elements — unknown to its
//! IPFIX library — as hex [`crate::Extension`]s); [`tap_record_from_flow`] turns such a record back
//! into the [`TapRecord`] it was encoded from.

use super::encode::lookup;
use super::registry::{registry, Form, IeType, InfoElement, RegistryError};
use super::PEN;
use crate::ext::ExtValue;
use crate::flow::FlowRecord;
use crate::kind::RecordKind;
use crate::tap::TapRecord;
use serde_json::{Map, Number, Value};

/// Element id of `tap_id`, whose presence marks a record as a tap record.
pub const TAP_MARKER_ID: u16 = 2;

/// Why a record that carries the tap's marker could not be turned into a tap record.
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
    /// The fields do not make a tap record (a required field is missing).
    #[error("not a complete tap record: {0}")]
    Record(#[from] serde_json::Error),
}

/// True when `f` came from a tap's export (it carries the tap-id element of [`PEN`]).
pub fn is_tap_record(f: &FlowRecord) -> bool {
    f.extensions
        .iter()
        .any(|x| x.pen == PEN && x.id == TAP_MARKER_ID)
}

/// The tap record a collector's `FlowRecord` was encoded from; `None` when `f` is not from a tap.
pub fn tap_record_from_flow(f: &FlowRecord) -> Option<Result<TapRecord, DecodeError>> {
    if !is_tap_record(f) {
        return None;
    }
    Some(decode(f))
}

fn decode(f: &FlowRecord) -> Result<TapRecord, DecodeError> {
    let reg = registry(RecordKind::Tap)?;
    let mut root = Value::Object(Map::new());
    for e in reg {
        if !e.solid_parent.is_empty() && lookup(&root, &e.solid_parent).is_none() {
            set(&mut root, &e.solid_parent, Value::Object(Map::new()));
        }
        let v = if e.pen == 0 {
            iana_value(e, f)
        } else {
            match f.extensions.iter().find(|x| x.pen == e.pen && x.id == e.id) {
                None => None,
                Some(x) => Some(enterprise_value(e, &x.value)?),
            }
        };
        if let Some(v) = v {
            set(&mut root, &e.path, v);
        }
    }
    // Derived fields, recomputed below.
    set(&mut root, "record_id", Value::String(String::new()));
    set(&mut root, "key.flow_key", Value::String(String::new()));
    let mut t: TapRecord = serde_json::from_value(root)?;
    t.key.set_flow_key();
    t.set_record_id();
    Ok(t)
}

/// The value of an IANA element, read back from the column the collector put it in.
fn iana_value(e: &InfoElement, f: &FlowRecord) -> Option<Value> {
    let skew = f.clock_skew_ms.unwrap_or(0);
    match e.id {
        8 | 27 => f.src_addr.map(|a| Value::String(a.to_string())),
        12 | 28 => f.dst_addr.map(|a| Value::String(a.to_string())),
        7 => f.src_port.map(Value::from),
        11 => f.dst_port.map(Value::from),
        4 => f.protocol.map(Value::from),
        58 => f.src_vlan.map(Value::from),
        // The collector shifts times by the exporter's clock skew when it corrects it.
        152 => f.flow_start_ms.map(|t| Value::from(t + skew)),
        153 => f.flow_end_ms.map(|t| Value::from(t + skew)),
        _ => None,
    }
}

fn hex_bytes(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
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
    let b = hex_bytes(h).ok_or_else(|| bad(format!("bad hex {h:?}")))?;
    let want = e.ty.length();
    if let Some(n) = want {
        if b.len() != usize::from(n) {
            return Err(bad(format!("{} octets, expected {n}", b.len())));
        }
    }
    let be = |b: &[u8]| b.iter().fold(0u64, |a, x| (a << 8) | u64::from(*x));
    let text = || String::from_utf8(b.clone()).map_err(|_| bad("not UTF-8".into()));
    if e.form == Form::JsonList {
        return serde_json::from_str(&text()?).map_err(|x| bad(format!("list: {x}")));
    }
    Ok(match e.ty {
        IeType::Unsigned8 | IeType::Unsigned16 | IeType::Unsigned32 | IeType::Unsigned64 => {
            Value::from(be(&b))
        }
        IeType::Signed8 => Value::from(i64::from(b[0] as i8)),
        IeType::Signed16 => Value::from(i64::from(be(&b) as u16 as i16)),
        IeType::Signed32 => Value::from(i64::from(be(&b) as u32 as i32)),
        IeType::Signed64 | IeType::DateTimeMilliseconds => Value::from(be(&b) as i64),
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
