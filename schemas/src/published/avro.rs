//! Avro schema of a record's row form.

use super::shape::{Column, StructShape, Ty};
use crate::kind::RecordKind;
use serde_json::{json, Map, Value};
use std::collections::HashSet;

pub(crate) fn schema(kind: RecordKind, shape: &StructShape) -> Value {
    let mut named = HashSet::new();
    let mut root = record(shape, &mut named);
    if let Some(obj) = root.as_object_mut() {
        obj.insert("namespace".into(), super::AVRO_NAMESPACE.into());
        obj.insert("supernetflow.kind".into(), kind.name().into());
        obj.insert(
            "supernetflow.schema_version".into(),
            crate::SCHEMA_VERSION.into(),
        );
    }
    root
}

/// A named record; a name already defined in this schema is referred to by name (Avro forbids
/// redefining it).
fn record(s: &StructShape, named: &mut HashSet<String>) -> Value {
    if !named.insert(s.name.clone()) {
        return Value::String(s.name.clone());
    }
    let fields: Vec<Value> = s.columns.iter().map(|c| field(c, named)).collect();
    let mut obj = Map::new();
    obj.insert("type".into(), "record".into());
    obj.insert("name".into(), s.name.clone().into());
    if let Some(d) = &s.description {
        obj.insert("doc".into(), d.clone().into());
    }
    obj.insert("fields".into(), fields.into());
    Value::Object(obj)
}

fn field(c: &Column, named: &mut HashSet<String>) -> Value {
    let t = ty(&c.ty, named);
    let mut obj = Map::new();
    obj.insert("name".into(), c.name.clone().into());
    if c.nullable {
        obj.insert("type".into(), json!(["null", t]));
        obj.insert("default".into(), Value::Null);
    } else {
        obj.insert("type".into(), t);
    }
    let mut doc = c.description.clone().unwrap_or_default();
    if let Ty::Enum(e) = &c.ty {
        let values: Vec<&str> = e.values.iter().map(|(v, _)| v.as_str()).collect();
        if !doc.is_empty() {
            doc.push(' ');
        }
        doc.push_str(&format!("One of: {}.", values.join(", ")));
    }
    if let Some(u) = c.unit {
        if !doc.is_empty() {
            doc.push(' ');
        }
        doc.push_str(&format!("Unit: {}.", u.label));
    }
    if !doc.is_empty() {
        obj.insert("doc".into(), doc.into());
    }
    Value::Object(obj)
}

pub(crate) fn ty(t: &Ty, named: &mut HashSet<String>) -> Value {
    match t {
        Ty::Bool => "boolean".into(),
        Ty::Int { wide: true, .. } => "long".into(),
        Ty::Int { wide: false, .. } => "int".into(),
        Ty::Float32 => "float".into(),
        Ty::Float64 => "double".into(),
        Ty::String | Ty::Ip | Ty::Enum(_) | Ty::Json => "string".into(),
        Ty::Timestamp => json!({"type": "long", "logicalType": "timestamp-millis"}),
        Ty::Struct(s) => record(s, named),
        Ty::List(item) => json!({"type": "array", "items": ty(item, named)}),
    }
}

/// Short Avro type name for the field guide.
pub(crate) fn short(t: &Ty) -> String {
    match t {
        Ty::Timestamp => "long (timestamp-millis)".into(),
        Ty::Struct(s) => format!("record {}", s.name),
        Ty::List(item) => format!("array<{}>", short(item)),
        other => ty(other, &mut HashSet::new())
            .as_str()
            .unwrap_or("?")
            .to_owned(),
    }
}
