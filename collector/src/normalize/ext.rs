//! Elements without a column → typed [`schemas::Extension`]s.
//!
//! netgauze-flow-pkt decodes every element it knows into a typed variant; its serde form gives a
//! generic view of the value, which is mapped to the extension's typed value by the element's
//! registry data type. Elements netgauze does not know (most enterprise elements, RFC 5103 reverse
//! elements) arrive as raw bytes and are kept as hex.

use netgauze_flow_pkt::ie::{
    Field, HasIE, InformationElementDataType as T, InformationElementTemplate,
};
use schemas::{ExtValue, Extension};
use serde_json::Value;

/// Converts one element into an extension entry.
pub fn extension(f: &Field) -> Extension {
    if let Field::Unknown { pen, id, value } = f {
        return Extension {
            pen: *pen,
            id: *id,
            name: None,
            value: ExtValue::hex(value),
        };
    }
    let ie = f.ie();
    let value = match serde_json::to_value(f) {
        Ok(Value::Object(m)) => m.into_iter().next().map(|(_, v)| v).unwrap_or(Value::Null),
        Ok(other) => other,
        Err(e) => Value::String(format!("unrepresentable: {e}")),
    };
    Extension {
        pen: ie.pen(),
        id: ie.id(),
        name: Some(ie.to_string()),
        value: typed(ie.data_type(), value),
    }
}

fn typed(t: T, v: Value) -> ExtValue {
    match v {
        Value::Bool(b) => ExtValue::Bool(b),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                ExtValue::Unsigned(u)
            } else if let Some(i) = n.as_i64() {
                ExtValue::Signed(i)
            } else {
                ExtValue::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => match t {
            T::ipv4Address | T::ipv6Address | T::macAddress => ExtValue::Address(s),
            T::dateTimeSeconds
            | T::dateTimeMilliseconds
            | T::dateTimeMicroseconds
            | T::dateTimeNanoseconds => match chrono_ms(&s) {
                Some(ms) => ExtValue::TimeMs(ms),
                None => ExtValue::String(s),
            },
            _ => ExtValue::String(s),
        },
        Value::Array(a) if a.iter().all(|x| x.as_u64().is_some_and(|b| b < 256)) => {
            let bytes: Vec<u8> = a
                .iter()
                .filter_map(|x| x.as_u64())
                .map(|b| b as u8)
                .collect();
            if t == T::macAddress && bytes.len() == 6 {
                ExtValue::Address(
                    bytes
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<Vec<_>>()
                        .join(":"),
                )
            } else {
                ExtValue::hex(&bytes)
            }
        }
        Value::Null => ExtValue::String(String::new()),
        other => ExtValue::String(other.to_string()),
    }
}

/// Parses the RFC 3339 form chrono's serde writes.
fn chrono_ms(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_millis())
}
