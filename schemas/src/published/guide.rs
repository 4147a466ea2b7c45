//! The YAML field guide and the README of `schemas/published/`.
//!
//! The YAML is written by hand, not through a YAML library: every scalar is a JSON scalar (strings
//! JSON-quoted, which YAML reads as double-quoted strings), so the output is valid YAML, stable, and
//! needs no dependency. The tests parse it back with a YAML parser.

use super::shape::{Column, Source, StructShape, Ty};
use super::{arrow, avro};
use crate::kind::RecordKind;
use serde_json::Value;
use std::collections::HashMap;
use std::fmt::Write;

/// Examples for fields that every sample leaves `null` (they do not occur in the sample flows).
fn fallback_example(struct_name: &str, column: &str) -> Option<Value> {
    Some(match (struct_name, column) {
        ("FlowRecord", "icmp_type") => 3.into(),
        ("FlowRecord", "icmp_code") => 1.into(),
        ("FlowRecord", "ingress_vrf") => 10.into(),
        ("FlowRecord", "egress_vrf") => 10.into(),
        ("AppPlatform", "http_host") => "www.example.com".into(),
        _ => return None,
    })
}

type Examples = HashMap<(String, String), Value>;

/// First non-null value of each (struct, column) over the row forms of all samples.
fn examples() -> Examples {
    let mut out = Examples::new();
    for kind in RecordKind::ALL {
        // Through text so that `f32` values read as written (0.97, not 0.9700000286102295).
        let Ok(json) = serde_json::from_str::<Value>(&crate::sample::text(kind)) else {
            continue;
        };
        if let Ok(row) = super::to_row(kind, &json) {
            harvest(super::shape_of(kind), &row, &mut out);
        }
    }
    out
}

fn harvest(s: &StructShape, row: &Value, out: &mut Examples) {
    for c in &s.columns {
        let v = row.get(&c.name).unwrap_or(&Value::Null);
        harvest_value(&s.name, c, &c.ty, v, out);
    }
}

fn harvest_value(owner: &str, c: &Column, t: &Ty, v: &Value, out: &mut Examples) {
    match (t, v) {
        (_, Value::Null) => {}
        (Ty::Struct(s), _) => harvest(s, v, out),
        (Ty::List(item), Value::Array(items)) if matches!(**item, Ty::Struct(_)) => {
            for x in items {
                harvest_value(owner, c, item, x, out);
            }
        }
        (Ty::List(_), Value::Array(items)) if items.is_empty() => {}
        _ => {
            out.entry((owner.to_owned(), c.name.clone()))
                .or_insert_with(|| v.clone());
        }
    }
}

fn logical(t: &Ty) -> String {
    match t {
        Ty::Bool => "bool".into(),
        Ty::Int { format, .. } => format.clone(),
        Ty::Float32 => "float32".into(),
        Ty::Float64 => "float64".into(),
        Ty::String => "string".into(),
        Ty::Ip => "ip_address".into(),
        Ty::Timestamp => "timestamp_ms".into(),
        Ty::Enum(_) => "enum".into(),
        Ty::Struct(s) => format!("struct {}", s.name),
        Ty::List(item) => format!("list<{}>", logical(item)),
        Ty::Json => "json".into(),
    }
}

/// A JSON value as a YAML flow node (JSON with spaces after `,` and `:`, which YAML reads too).
fn flow(v: &Value) -> String {
    match v {
        Value::Array(items) => {
            let parts: Vec<String> = items.iter().map(flow).collect();
            format!("[{}]", parts.join(", "))
        }
        Value::Object(map) => {
            let parts: Vec<String> = map
                .iter()
                .map(|(k, v)| format!("{}: {}", quote(k), flow(v)))
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
        other => other.to_string(),
    }
}

fn quote(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

fn opt(s: Option<&str>) -> String {
    s.map(quote).unwrap_or_else(|| "null".into())
}

struct Ctx<'a> {
    out: String,
    examples: &'a Examples,
}

impl Ctx<'_> {
    fn columns(&mut self, s: &StructShape, prefix: &str) {
        for c in &s.columns {
            let path = format!("{prefix}{}", c.name);
            self.entry(s, c, &path);
            match &c.ty {
                Ty::Struct(inner) => self.columns(inner, &format!("{path}.")),
                Ty::List(item) => {
                    if let Ty::Struct(inner) = &**item {
                        self.columns(inner, &format!("{path}[]."));
                    }
                }
                _ => {}
            }
        }
    }

    fn entry(&mut self, owner: &StructShape, c: &Column, path: &str) {
        let o = &mut self.out;
        let _ = writeln!(o, "  - name: {}", quote(path));
        let ty = match c.source {
            Source::TaggedValue => "tagged_value".to_owned(),
            _ => logical(&c.ty),
        };
        let _ = writeln!(o, "    type: {}", quote(&ty));
        let _ = writeln!(o, "    nullable: {}", c.nullable);
        let _ = writeln!(o, "    unit: {}", opt(c.unit.map(|u| u.label)));
        let dt = arrow::data_type(&c.ty);
        let _ = writeln!(o, "    arrow_type: {}", quote(&arrow::type_name(&dt)));
        let _ = writeln!(o, "    avro_type: {}", quote(&avro::short(&c.ty)));
        let _ = writeln!(o, "    description: {}", opt(c.description.as_deref()));
        if let Ty::Enum(e) = &c.ty {
            let _ = writeln!(o, "    values:");
            for (v, d) in &e.values {
                let _ = writeln!(o, "      - value: {}", quote(v));
                let _ = writeln!(o, "        description: {}", opt(d.as_deref()));
            }
        }
        let leaf = match &c.ty {
            Ty::Struct(_) => false,
            Ty::List(item) => !matches!(**item, Ty::Struct(_)),
            _ => true,
        };
        if leaf {
            let ex = self
                .examples
                .get(&(owner.name.clone(), c.name.clone()))
                .cloned()
                .or_else(|| fallback_example(&owner.name, &c.name))
                .unwrap_or(Value::Null);
            let _ = writeln!(o, "    example: {}", flow(&ex));
        }
    }
}

pub(crate) fn yaml(kind: RecordKind, shape: &StructShape) -> String {
    let examples = examples();
    let mut c = Ctx {
        out: String::new(),
        examples: &examples,
    };
    let o = &mut c.out;
    let _ = writeln!(
        o,
        "# Super-NetFlow field guide: {} ({}), schema version {}.",
        kind.table_name(),
        kind.type_name(),
        crate::SCHEMA_VERSION
    );
    let _ = writeln!(
        o,
        "# Generated from the Rust types in schemas/src by `{}`; do not edit.",
        super::REGENERATE
    );
    let _ = writeln!(
        o,
        "# Fields are listed depth first; `a.b` is field b of struct a, `a[].b` field b of each item"
    );
    let _ = writeln!(
        o,
        "# of list a. Types are the JSON ones; arrow_type and avro_type are the Parquet and Avro"
    );
    let _ = writeln!(o, "# columns. Examples come from schemas/src/sample.rs.");
    let _ = writeln!(o, "kind: {}", quote(kind.name()));
    let _ = writeln!(o, "table: {}", quote(kind.table_name()));
    let _ = writeln!(o, "record: {}", quote(kind.type_name()));
    let _ = writeln!(o, "schema_version: {}", crate::SCHEMA_VERSION);
    let _ = writeln!(o, "description: {}", opt(shape.description.as_deref()));
    let _ = writeln!(o, "fields:");
    c.columns(shape, "");
    c.out
}

pub(crate) fn readme() -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# Published schemas (schema version {})",
        crate::SCHEMA_VERSION
    );
    let _ = writeln!(o);
    let _ = writeln!(
        o,
        "Generated from the Rust types in `schemas/src` by `{}`; do not edit.",
        super::REGENERATE
    );
    let _ = writeln!(
        o,
        "`cargo test -p supernetflow-schemas` fails when these files and the types disagree."
    );
    let _ = writeln!(o);
    let _ = writeln!(o, "| kind | table / topic base | Rust type | JSON Schema | field guide | Avro | Arrow (Parquet) |");
    let _ = writeln!(o, "|---|---|---|---|---|---|---|");
    for k in RecordKind::ALL {
        let t = k.table_name();
        let _ = writeln!(
            o,
            "| `{}` | `{t}` | `{}` | [{t}.schema.json]({t}.schema.json) | [{t}.fields.yaml]({t}.fields.yaml) | [{t}.avsc]({t}.avsc) | [{t}.arrow.json]({t}.arrow.json) |",
            k.name(),
            k.type_name()
        );
    }
    o.push_str(README_BODY);
    let _ = writeln!(o);
    let _ = writeln!(o, "## IANA elements used over IPFIX");
    for k in crate::ipfix::registry::KINDS {
        let _ = writeln!(o);
        let _ = writeln!(o, "`{}`:", k.table_name());
        let _ = writeln!(o);
        for line in crate::ipfix::registry::iana_lines(k).unwrap_or_default() {
            let _ = writeln!(o, "- {line}");
        }
    }
    o
}

const README_BODY: &str = r#"
## Forms

- **JSON Schema** (draft 2020-12) describes the JSON the records serialise to: Kafka JSON messages,
  the HTTP API. Descriptions are the Rust doc comments; `x-unit` gives the unit of numeric fields.
- **Avro** (`.avsc`) and **Arrow** (`.arrow.json`, the Parquet schema) describe the *row form*, which
  is the JSON form except that a tagged value (an extension's `{"unsigned": 42}`) is split into two
  string columns: `value` (`"42"`) and `value_type` (`"unsigned"`).
- **Field guide** (`.fields.yaml`): every field and sub-field with its type, nullability, unit,
  Arrow and Avro types, description, enum values and an example.
- **IPFIX elements** ([ipfix_enterprise_ies.csv](ipfix_enterprise_ies.csv)): the enterprise
  information elements (PEN 32473, RFC 5612's documentation number until the project has its own)
  that carry tap records (`supernetflow probe --export`), super-flows and application sessions
  (`run`'s IPFIX sink) over IPFIX, in the columns of IANA's `ipfix-information-elements.csv` plus
  the record and field each one holds (a field path is one element in every kind that has it).
  Every record carries `snfRecordKind` (id 6: 1 tap, 2 super-flow, 3 session). Fields IANA has an
  element for travel in it (list below); lists are JSON text in a `string` element, except a
  session's QoE series, packed in an `octetArray` (`schemas::ipfix::series`); our enums are
  `unsigned8` codes (listed in each element's description); integers may come in reduced-size
  encoding (RFC 7011 §6.2); an absent value is an element left out of the record's template.
  Retired element ids (`schemas::ipfix::registry::RETIRED`) are never reused. See `schemas::ipfix`.

## Mapping

| Rust / JSON Schema | Avro | Arrow / Parquet |
|---|---|---|
| `Option<T>` | `["null", T]`, default `null` | nullable field |
| `bool` | `boolean` | `Boolean` |
| `u8`, `u16`, `i8`..`i32` | `int` | `Int32` |
| `u32`, `u64`, `i64` | `long` | `Int64` |
| `i64` UTC milliseconds (`timestamp_ms`) | `long` with `logicalType: timestamp-millis` | `Timestamp(ms, +00:00)` |
| `f32` / `f64` | `float` / `double` | `Float32` / `Float64` |
| `String`, IP address (text form) | `string` | `Utf8` |
| enum (snake_case names) | `string`, values listed in `doc` | `Utf8` |
| struct | `record` | `Struct` |
| `Vec<T>` | `array` | `List` (items not null) |
| tagged value (`ExtValue`) | `value` + `value_type` strings | `value` + `value_type` `Utf8` |

Unsigned integers widen to the next signed type (Avro has none; Spark reads Parquet's unsigned
annotations poorly). Enums are plain strings, so adding a value never breaks a reader.

## Versions

Every record carries `schema_version`; topics and table folders carry it too (`flow_records_v1`).
Adding an optional (nullable) field does not change the version: Avro readers take the `null`
default, Parquet readers see a new column. Renaming, removing or changing the meaning of a field
bumps `SCHEMA_VERSION` in `schemas/src/lib.rs`.

## Adding a field

1. Add it to the Rust type with a doc comment (the description everyone reads). New fields are
   `Option<T>` unless a version bump is intended.
2. A field ending in `_ms` goes in the timestamp or duration list of `schemas/src/published/units.rs`;
   a field with another unit goes in its table. A new struct or enum type goes in the registry of
   `schemas/src/published/order.rs`.
3. Give it a value in `schemas/src/sample.rs` (the guide's example).
4. Give it an IPFIX element: the IANA one when IANA has it (the kind's `*_IANA` table in
   `schemas/src/ipfix/registry.rs`), else the next free enterprise id in `IDS` there (a test fails
   for a field without one).
5. Run `cargo run -p supernetflow-schemas --example gen_schemas` and commit the changed files here.
"#;
