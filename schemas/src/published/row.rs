//! JSON form to row form (see [`super::shape`]).

use super::shape::{Source, StructShape, Ty};
use serde_json::{Map, Value};

/// Why a record's JSON does not fit its schema. Records built by this crate's types always fit;
/// these guard values that came from elsewhere (a JSON file, another producer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowError {
    /// A field that is not nullable is missing or `null` (an `f32`/`f64` NaN serialises as `null`).
    Missing(String),
    /// A value of the wrong JSON type.
    Type {
        path: String,
        expected: &'static str,
    },
    /// An integer outside the range of its Avro/Arrow type (a `u64` above `i64::MAX`).
    OutOfRange(String),
    /// The record did not serialise to JSON.
    Serialize(String),
}

impl std::fmt::Display for RowError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RowError::Missing(p) => write!(f, "{p}: missing or null in a non-nullable field"),
            RowError::Type { path, expected } => write!(f, "{path}: expected {expected}"),
            RowError::OutOfRange(p) => {
                write!(f, "{p}: integer out of range for a 64-bit signed column")
            }
            RowError::Serialize(e) => write!(f, "record does not serialise: {e}"),
        }
    }
}

impl std::error::Error for RowError {}

pub(crate) fn convert(shape: &StructShape, v: &Value) -> Result<Value, RowError> {
    structure(shape, v, "")
}

fn structure(s: &StructShape, v: &Value, path: &str) -> Result<Value, RowError> {
    let obj = v.as_object().ok_or_else(|| RowError::Type {
        path: display(path),
        expected: "object",
    })?;
    let mut out = Map::new();
    for c in &s.columns {
        let p = join(path, &c.name);
        let raw = obj.get(&c.json_name).unwrap_or(&Value::Null);
        let converted = match c.source {
            Source::Plain => value(&c.ty, raw, c.nullable, &p)?,
            Source::TaggedValue | Source::TaggedType => {
                if raw.is_null() {
                    if c.nullable {
                        Value::Null
                    } else {
                        return Err(RowError::Missing(p));
                    }
                } else {
                    let tagged = raw
                        .as_object()
                        .filter(|o| o.len() == 1)
                        .and_then(|o| o.iter().next())
                        .ok_or_else(|| RowError::Type {
                            path: p.clone(),
                            expected: "an object with one key (a tagged value)",
                        })?;
                    match c.source {
                        Source::TaggedType => Value::String(tagged.0.clone()),
                        _ => Value::String(text(tagged.1)),
                    }
                }
            }
        };
        out.insert(c.name.clone(), converted);
    }
    Ok(Value::Object(out))
}

fn value(t: &Ty, v: &Value, nullable: bool, path: &str) -> Result<Value, RowError> {
    if v.is_null() {
        return if nullable {
            Ok(Value::Null)
        } else {
            Err(RowError::Missing(display(path)))
        };
    }
    match t {
        Ty::Struct(s) => structure(s, v, path),
        Ty::List(item) => {
            let items = v.as_array().ok_or_else(|| RowError::Type {
                path: display(path),
                expected: "array",
            })?;
            items
                .iter()
                .enumerate()
                .map(|(i, x)| value(item, x, false, &format!("{path}[{i}]")))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array)
        }
        Ty::Json => Ok(Value::String(v.to_string())),
        Ty::Int { .. } | Ty::Timestamp => match v {
            Value::Number(n) if n.is_i64() => Ok(v.clone()),
            Value::Number(n) if n.is_u64() => Err(RowError::OutOfRange(display(path))),
            _ => Err(RowError::Type {
                path: display(path),
                expected: "integer",
            }),
        },
        Ty::Float32 | Ty::Float64 => match v {
            Value::Number(_) => Ok(v.clone()),
            _ => Err(RowError::Type {
                path: display(path),
                expected: "number",
            }),
        },
        Ty::Bool => match v {
            Value::Bool(_) => Ok(v.clone()),
            _ => Err(RowError::Type {
                path: display(path),
                expected: "boolean",
            }),
        },
        Ty::String | Ty::Ip | Ty::Enum(_) => match v {
            Value::String(_) => Ok(v.clone()),
            _ => Err(RowError::Type {
                path: display(path),
                expected: "string",
            }),
        },
    }
}

/// A tagged payload as text: strings as they are, numbers and booleans in their JSON spelling.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

fn display(path: &str) -> String {
    if path.is_empty() {
        "(record)".into()
    } else {
        path.to_owned()
    }
}
