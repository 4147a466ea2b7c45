//! Arrow schema of a record's row form (the Parquet schema), and its published JSON description.

use super::shape::{Column, StructShape, Ty};
use crate::kind::RecordKind;
use arrow_schema::{DataType, Field, Fields, Schema, TimeUnit};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;

/// Time zone of timestamp columns: UTC, as an offset.
pub(crate) const UTC: &str = "+00:00";

/// Name of a list's item field (Arrow's and Parquet's convention).
const ITEM: &str = "item";

pub(crate) fn schema(kind: RecordKind, shape: &StructShape) -> Schema {
    let metadata = HashMap::from([
        ("supernetflow.kind".to_owned(), kind.name().to_owned()),
        (
            "supernetflow.table".to_owned(),
            kind.table_name().to_owned(),
        ),
        (
            "supernetflow.schema_version".to_owned(),
            crate::SCHEMA_VERSION.to_string(),
        ),
    ]);
    Schema::new_with_metadata(fields(shape), metadata)
}

fn fields(s: &StructShape) -> Fields {
    s.columns.iter().map(field).collect()
}

fn field(c: &Column) -> Field {
    Field::new(c.name.clone(), data_type(&c.ty), c.nullable)
}

pub(crate) fn data_type(t: &Ty) -> DataType {
    match t {
        Ty::Bool => DataType::Boolean,
        Ty::Int { wide: true, .. } => DataType::Int64,
        Ty::Int { wide: false, .. } => DataType::Int32,
        Ty::Float32 => DataType::Float32,
        Ty::Float64 => DataType::Float64,
        Ty::String | Ty::Ip | Ty::Enum(_) | Ty::Json => DataType::Utf8,
        // An offset, not the name "UTC": arrow parses named zones only with its chrono-tz feature.
        Ty::Timestamp => DataType::Timestamp(TimeUnit::Millisecond, Some(UTC.into())),
        Ty::Struct(s) => DataType::Struct(fields(s)),
        Ty::List(item) => DataType::List(Arc::new(Field::new(ITEM, data_type(item), false))),
    }
}

/// Arrow type name as the field guide and the published description show it.
pub(crate) fn type_name(dt: &DataType) -> String {
    match dt {
        DataType::Boolean => "Boolean".into(),
        DataType::Int32 => "Int32".into(),
        DataType::Int64 => "Int64".into(),
        DataType::Float32 => "Float32".into(),
        DataType::Float64 => "Float64".into(),
        DataType::Utf8 => "Utf8".into(),
        DataType::Timestamp(TimeUnit::Millisecond, Some(tz)) => format!("Timestamp(ms, {tz})"),
        DataType::Struct(_) => "Struct".into(),
        DataType::List(item) => format!("List<{}>", type_name(item.data_type())),
        other => format!("{other:?}"),
    }
}

#[derive(Serialize)]
struct FieldDoc {
    name: String,
    data_type: String,
    nullable: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    fields: Vec<FieldDoc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    item: Option<Box<FieldDoc>>,
}

#[derive(Serialize)]
struct SchemaDoc {
    metadata: std::collections::BTreeMap<String, String>,
    fields: Vec<FieldDoc>,
}

fn doc(f: &Field) -> FieldDoc {
    let (fields, item) = match f.data_type() {
        DataType::Struct(children) => (children.iter().map(|c| doc(c)).collect(), None),
        DataType::List(item) => (Vec::new(), Some(Box::new(doc(item)))),
        _ => (Vec::new(), None),
    };
    FieldDoc {
        name: f.name().clone(),
        data_type: type_name(f.data_type()),
        nullable: f.is_nullable(),
        fields,
        item,
    }
}

/// A deterministic JSON description of an Arrow schema: metadata sorted, fields in order.
pub(crate) fn describe(schema: &Schema) -> serde_json::Value {
    let d = SchemaDoc {
        metadata: schema
            .metadata()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        fields: schema.fields().iter().map(|f| doc(f)).collect(),
    };
    serde_json::to_value(d).unwrap_or_default()
}
