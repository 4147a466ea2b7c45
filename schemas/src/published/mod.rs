//! The published schemas, derived from the record types.
//!
//! One source, four forms per record kind:
//! - **JSON Schema** ([`json_schema`]): what schemars derives from the types (doc comments become
//!   `description`), plus `x-unit` on the fields that have a unit. Describes the JSON that the
//!   records serialise to (Kafka JSON, HTTP API).
//! - **Avro** ([`avro_schema`]) and **Arrow** ([`arrow_schema()`], the Parquet schema): built from the
//!   JSON Schema by one mapping, so they cannot drift from the types. Both store the *row form* of a
//!   record ([`to_row`], [`row`]), which is the JSON form except that a tagged value such as an
//!   extension's `{"unsigned": 42}` is split into `value: "42"` and `value_type: "unsigned"`.
//! - **Field guide** ([`field_guide`]): a YAML list of every field and sub-field with its type,
//!   unit, description and an example, for the people who query the data.
//!
//! Mapping from the JSON Schema to Avro and Arrow:
//!
//! | Rust / JSON Schema            | Avro                                 | Arrow / Parquet            |
//! |-------------------------------|--------------------------------------|----------------------------|
//! | `Option<T>`                   | `["null", T]`, default `null`        | nullable field             |
//! | `bool`                        | `boolean`                            | `Boolean`                  |
//! | `u8`, `u16`, `i8`..`i32`      | `int`                                | `Int32`                    |
//! | `u32`, `u64`, `i64`           | `long`                               | `Int64`                    |
//! | `i64` UTC ms (see [`units`])  | `long` / `timestamp-millis`          | `Timestamp(ms, "+00:00")`  |
//! | `f32` / `f64`                 | `float` / `double`                   | `Float32` / `Float64`      |
//! | `String`, `IpAddr` (text)     | `string`                             | `Utf8`                     |
//! | unit-only enum (snake_case)   | `string` (values listed in `doc`)    | `Utf8`                     |
//! | struct                        | `record`                             | `Struct`                   |
//! | `Vec<T>`                      | `array`                              | `List` (items not null)    |
//! | tagged enum (`ExtValue`)      | `value` + `value_type` strings       | `value` + `value_type` `Utf8` |
//!
//! Unsigned integers widen to the next signed type because Avro has none and Spark reads Parquet's
//! unsigned annotations poorly; a `u64` above `i64::MAX` is refused by [`to_row`]. Enums are plain
//! strings so that adding a variant never breaks a reader.
//!
//! The files under `schemas/published/` are [`files`], written by
//! `cargo run -p supernetflow-schemas --example gen_schemas`; `tests/published.rs` fails when they
//! differ from what the types generate.

mod arrow;
mod avro;
mod guide;
mod order;
mod row;
pub(crate) mod shape;
pub mod units;

use crate::kind::{Record, RecordKind};
use std::path::Path;
use std::sync::OnceLock;

pub use row::RowError;

/// Avro namespace of every record.
pub const AVRO_NAMESPACE: &str = "supernetflow";

/// The command that rewrites the published files.
pub const REGENERATE: &str = "cargo run -p supernetflow-schemas --example gen_schemas";

fn schemars_schema(kind: RecordKind) -> schemars::Schema {
    use crate::*;
    match kind {
        RecordKind::Flow => schemars::schema_for!(FlowRecord),
        RecordKind::Tap => schemars::schema_for!(TapRecord),
        RecordKind::SuperFlow => schemars::schema_for!(SuperFlow),
        RecordKind::AppSession => schemars::schema_for!(AppSession),
    }
}

/// Adds `x-unit` to every property that has a unit, in the root and in `$defs`.
fn annotate_units(schema: &mut serde_json::Value) {
    fn props(node: &mut serde_json::Value) {
        let Some(p) = node.get_mut("properties").and_then(|p| p.as_object_mut()) else {
            return;
        };
        for (name, prop) in p.iter_mut() {
            if let (Some(u), Some(obj)) = (units::unit_of(name), prop.as_object_mut()) {
                obj.insert("x-unit".into(), u.label.into());
            }
        }
    }
    props(schema);
    if let Some(defs) = schema.get_mut("$defs").and_then(|d| d.as_object_mut()) {
        for def in defs.values_mut() {
            props(def);
        }
    }
}

/// Doc comments as readers outside Rust want them: lines of a paragraph joined, rustdoc links
/// (``[`crate::FlowKey`]``) reduced to code spans (`` `FlowKey` ``).
fn clean_description(s: &str) -> String {
    s.split("\n\n")
        .map(|para| {
            para.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n\n")
        .replace("[`", "`")
        .replace("`]", "`")
        .replace("`crate::", "`")
}

fn clean_descriptions(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, x) in map.iter_mut() {
                match x {
                    serde_json::Value::String(s) if k == "description" => {
                        *s = clean_description(s);
                    }
                    _ => clean_descriptions(x),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(clean_descriptions),
        _ => {}
    }
}

/// The JSON Schema (draft 2020-12) of `kind`'s JSON form.
pub fn json_schema(kind: RecordKind) -> serde_json::Value {
    let mut v = schemars_schema(kind).to_value();
    clean_descriptions(&mut v);
    annotate_units(&mut v);
    if let Some(obj) = v.as_object_mut() {
        obj.insert(
            "x-supernetflow".into(),
            serde_json::json!({
                "kind": kind.name(),
                "table": kind.table_name(),
                "schema_version": crate::SCHEMA_VERSION,
            }),
        );
    }
    v
}

/// The shape and the reader's problems of each kind, indexed by `kind as usize` (the order of
/// [`RecordKind::ALL`]).
type Shapes = [(shape::StructShape, Vec<String>); 4];

fn shapes() -> &'static Shapes {
    static SHAPES: OnceLock<Shapes> = OnceLock::new();
    SHAPES.get_or_init(|| RecordKind::ALL.map(|k| shape::read(&json_schema(k))))
}

pub(crate) fn shape_of(kind: RecordKind) -> &'static shape::StructShape {
    &shapes()[kind as usize].0
}

/// What the schema reader could not map cleanly for `kind` (an unknown construct kept as JSON text,
/// a type missing from the declaration-order registry, a `_ms` field without a unit). Empty when all
/// is well; the tests keep it so.
pub fn shape_problems(kind: RecordKind) -> Vec<String> {
    shapes()[kind as usize].1.clone()
}

/// The Avro schema (`.avsc`) of `kind`'s row form. Parse it with any Avro library; the Kafka sink
/// registers it with the schema registry.
pub fn avro_schema(kind: RecordKind) -> serde_json::Value {
    avro::schema(kind, shape_of(kind))
}

/// The Arrow schema of `kind`'s row form: the Parquet sink writes exactly this.
pub fn arrow_schema(kind: RecordKind) -> arrow_schema::Schema {
    arrow::schema(kind, shape_of(kind))
}

/// The Arrow schema as a JSON document (field names, Arrow types, nullability), as published.
pub fn arrow_schema_json(kind: RecordKind) -> serde_json::Value {
    arrow::describe(&arrow_schema(kind))
}

/// Converts a record's JSON form (`serde_json::to_value(&record)`) to its row form, the value
/// that Avro and Arrow writers take (`apache_avro::types::Value::from(row)` resolved against
/// [`avro_schema`]; `arrow_json`'s decoder with [`arrow_schema()`]).
pub fn to_row(kind: RecordKind, value: &serde_json::Value) -> Result<serde_json::Value, RowError> {
    row::convert(shape_of(kind), value)
}

/// The row form of a record.
pub fn row<R: Record>(record: &R) -> Result<serde_json::Value, RowError> {
    let v = serde_json::to_value(record).map_err(|e| RowError::Serialize(e.to_string()))?;
    to_row(R::KIND, &v)
}

/// The YAML field guide of `kind`.
pub fn field_guide(kind: RecordKind) -> String {
    guide::yaml(kind, shape_of(kind))
}

/// One generated file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedFile {
    /// File name inside `schemas/published/`.
    pub name: String,
    /// Contents, UTF-8, ending with a newline.
    pub contents: String,
}

/// A JSON value that serialises its object keys in a preferred order (the listed keys first, the
/// rest alphabetically), so that the published files read naturally: `name` before `type`.
struct Ordered<'a>(&'a serde_json::Value, &'static [&'static str]);

impl serde::Serialize for Ordered<'_> {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self.0 {
            serde_json::Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                let rank = |k: &str| self.1.iter().position(|p| *p == k).unwrap_or(usize::MAX);
                keys.sort_by(|a, b| rank(a).cmp(&rank(b)).then_with(|| a.cmp(b)));
                let mut m = ser.serialize_map(Some(keys.len()))?;
                for k in keys {
                    if let Some(v) = map.get(k) {
                        m.serialize_entry(k, &Ordered(v, self.1))?;
                    }
                }
                m.end()
            }
            serde_json::Value::Array(items) => {
                let mut s = ser.serialize_seq(Some(items.len()))?;
                for v in items {
                    s.serialize_element(&Ordered(v, self.1))?;
                }
                s.end()
            }
            other => other.serialize(ser),
        }
    }
}

/// Key order of the published Avro and Arrow files.
const KEY_ORDER: &[&str] = &[
    "name",
    "type",
    "namespace",
    "data_type",
    "logicalType",
    "nullable",
    "default",
    "doc",
    "items",
    "item",
    "metadata",
    "fields",
];

fn pretty(v: &serde_json::Value) -> String {
    let mut s = serde_json::to_string_pretty(&Ordered(v, KEY_ORDER)).unwrap_or_default();
    s.push('\n');
    s
}

/// Every file of `schemas/published/`, generated from the types.
pub fn files() -> Vec<PublishedFile> {
    let mut out = vec![PublishedFile {
        name: "README.md".into(),
        contents: guide::readme(),
    }];
    for kind in RecordKind::ALL {
        let t = kind.table_name();
        // schemars' own Schema type writes the keywords in their conventional order.
        let js = schemars::Schema::try_from(json_schema(kind))
            .map(|s| {
                let mut text = serde_json::to_string_pretty(&s).unwrap_or_default();
                text.push('\n');
                text
            })
            .unwrap_or_else(|_| pretty(&json_schema(kind)));
        out.push(PublishedFile {
            name: format!("{t}.schema.json"),
            contents: js,
        });
        out.push(PublishedFile {
            name: format!("{t}.fields.yaml"),
            contents: field_guide(kind),
        });
        out.push(PublishedFile {
            name: format!("{t}.avsc"),
            contents: pretty(&avro_schema(kind)),
        });
        out.push(PublishedFile {
            name: format!("{t}.arrow.json"),
            contents: pretty(&arrow_schema_json(kind)),
        });
    }
    out.push(PublishedFile {
        name: "ipfix_enterprise_ies.csv".into(),
        contents: crate::ipfix::registry::csv().unwrap_or_else(|e| format!("error: {e}\n")),
    });
    out
}

/// Writes [`files`] into `dir` and removes any other file there. Returns the names written.
pub fn write_all(dir: &Path) -> std::io::Result<Vec<String>> {
    std::fs::create_dir_all(dir)?;
    let files = files();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type()?.is_file() && !files.iter().any(|f| f.name == name) {
            std::fs::remove_file(entry.path())?;
        }
    }
    let mut names = Vec::new();
    for f in files {
        std::fs::write(dir.join(&f.name), &f.contents)?;
        names.push(f.name);
    }
    Ok(names)
}
