//! Round trips of every record through JSON, Avro and the row form, and the agreement between the
//! JSON Schema, the field guide, Avro and Arrow.

use schemas::published::{
    arrow_schema, avro_schema, field_guide, json_schema, row, shape_problems, to_row, RowError,
};
use schemas::{sample, Record, RecordKind};
use serde::Deserialize;
use serde_json::Value;
use std::fmt::Debug;

fn round_trip<R: Record + PartialEq + Debug>(r: &R) {
    let text = serde_json::to_string(r).expect("serialise");
    let back: R = serde_json::from_str(&text).expect("deserialise");
    assert_eq!(&back, r, "{}: JSON round trip", R::KIND);
    let again = serde_json::to_string(&back).expect("serialise again");
    assert_eq!(again, text, "{}: JSON is stable", R::KIND);
    assert_eq!(r.schema_version(), schemas::SCHEMA_VERSION);
    let id = r.record_id();
    assert!(
        id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{}: record_id {id:?} is not 16 hex digits",
        R::KIND
    );
    let key = r.message_key().expect("message key");
    assert_eq!(key.len(), 16, "{}: message key {key:?}", R::KIND);
}

#[test]
fn every_record_round_trips_through_json() {
    round_trip(&sample::flow_record());
    round_trip(&sample::tap_record());
    round_trip(&sample::super_flow());
    round_trip(&sample::app_session());
}

#[test]
fn tap_and_router_agree_on_the_flow_key() {
    let flow = sample::flow_record();
    let tap = sample::tap_record();
    assert_eq!(flow.flow_key.as_deref(), Some(tap.key.flow_key.as_str()));
    let sf = sample::super_flow();
    assert_eq!(sf.record_id, sf.flow.record_id);
}

#[test]
fn json_shape_of_the_new_records() {
    let t = serde_json::to_value(sample::tap_record()).expect("tap");
    assert_eq!(t["app"]["app_type"], "video_streaming");
    assert_eq!(t["app"]["detection_method"], "sni");
    assert_eq!(t["qoe"]["video"]["buffer_state"], "steady");
    assert_eq!(t["qoe"]["gaming"], Value::Null);
    assert_eq!(t["state"], "update");
    let s = serde_json::to_value(sample::super_flow()).expect("super flow");
    assert_eq!(s["enrichment"]["status"], "matched");
    assert_eq!(s["flow"]["flow_version"], "netflow_v9");
    let a = serde_json::to_value(sample::app_session()).expect("session");
    assert_eq!(a["app_type"], "conferencing");
    assert_eq!(
        a["qoe_series"][1]["qoe"]["conferencing"]["stutter_events"],
        2
    );
    // Unmatched super-flows carry the flow and nulls.
    let u = schemas::SuperFlow::unmatched(sample::flow_record());
    let u = serde_json::to_value(u).expect("unmatched");
    assert_eq!(u["enrichment"]["status"], "unmatched");
    assert_eq!(u["app"], Value::Null);
}

#[test]
fn the_schema_reader_understands_every_type() {
    for kind in RecordKind::ALL {
        let p = shape_problems(kind);
        assert!(p.is_empty(), "{kind}:\n{}", p.join("\n"));
    }
}

/// Every field path of a JSON Schema (`a`, `a.b`, `list[].c`), resolving `$ref`s and `Option`s.
fn schema_paths(node: &Value, defs: &Value, prefix: &str, out: &mut Vec<String>) {
    let node = resolve(node, defs);
    if let Some(props) = node.get("properties").and_then(Value::as_object) {
        for (name, prop) in props {
            let path = format!("{prefix}{name}");
            out.push(path.clone());
            let inner = resolve(prop, defs);
            if let Some(items) = inner.get("items") {
                schema_paths(items, defs, &format!("{path}[]."), out);
            } else {
                schema_paths(inner, defs, &format!("{path}."), out);
            }
        }
    }
}

fn resolve<'a>(node: &'a Value, defs: &'a Value) -> &'a Value {
    if let Some(r) = node.get("$ref").and_then(Value::as_str) {
        let name = r.trim_start_matches("#/$defs/");
        return resolve(&defs[name], defs);
    }
    if let Some(alts) = node.get("anyOf").and_then(Value::as_array) {
        if let Some(first) = alts.iter().find(|a| a.get("type") != Some(&"null".into())) {
            return resolve(first, defs);
        }
    }
    node
}

#[derive(Deserialize)]
struct Guide {
    kind: String,
    table: String,
    schema_version: u16,
    fields: Vec<GuideField>,
}

#[derive(Deserialize)]
struct GuideField {
    name: String,
    #[serde(rename = "type")]
    ty: String,
    unit: Option<String>,
    arrow_type: String,
    description: Option<String>,
    example: Option<Value>,
    values: Option<Vec<GuideValue>>,
}

#[derive(Deserialize)]
struct GuideValue {
    value: String,
}

fn guide(kind: RecordKind) -> Guide {
    let text = field_guide(kind);
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{kind}: guide is not YAML: {e}"))
}

#[test]
fn the_guide_covers_every_field_of_the_json_schema() {
    for kind in RecordKind::ALL {
        let schema = json_schema(kind);
        let mut paths = Vec::new();
        schema_paths(&schema, &schema["$defs"], "", &mut paths);
        assert!(paths.len() > 20, "{kind}: only {} paths", paths.len());
        let g = guide(kind);
        assert_eq!(
            (g.kind.as_str(), g.table.as_str()),
            (kind.name(), kind.table_name())
        );
        assert_eq!(g.schema_version, schemas::SCHEMA_VERSION);
        for p in &paths {
            let f =
                g.fields.iter().find(|f| &f.name == p).unwrap_or_else(|| {
                    panic!("{kind}: `{p}` is in the JSON Schema, not in the guide")
                });
            assert!(!f.ty.is_empty(), "{kind}: `{p}` has no type");
            let d = f.description.as_deref().unwrap_or("");
            assert!(d.len() > 3, "{kind}: `{p}` has no description");
            assert!(
                !d.contains("[`"),
                "{kind}: `{p}`: rustdoc link left in {d:?}"
            );
        }
        for f in &g.fields {
            let leaf = !f.ty.starts_with("struct") && !f.ty.starts_with("list<struct");
            if leaf {
                assert!(
                    f.example.as_ref().is_some_and(|e| !e.is_null()),
                    "{kind}: `{}` has no example (add one to sample.rs)",
                    f.name
                );
            }
            if f.ty == "enum" {
                assert!(
                    f.values.as_ref().is_some_and(|v| !v.is_empty()),
                    "{}",
                    f.name
                );
            }
            if f.name.ends_with("_ms") {
                assert!(f.unit.is_some(), "{kind}: `{}` has no unit", f.name);
            }
            if f.ty == "timestamp_ms" {
                assert_eq!(f.arrow_type, "Timestamp(ms, +00:00)");
            }
        }
    }
}

#[test]
fn guide_enum_values_match_serde() {
    let g = guide(RecordKind::Tap);
    let f = g
        .fields
        .iter()
        .find(|f| f.name == "app.app_type")
        .expect("app_type");
    let values: Vec<&str> = f
        .values
        .iter()
        .flatten()
        .map(|v| v.value.as_str())
        .collect();
    assert_eq!(values.first(), Some(&"video_streaming"));
    assert_eq!(values.len(), 14);
    for v in &values {
        let t: schemas::AppType = serde_json::from_value(Value::from(*v)).expect("serde name");
        assert_eq!(t.as_str(), *v);
    }
}

fn sample_row(kind: RecordKind) -> Value {
    to_row(kind, &sample::json(kind)).unwrap_or_else(|e| panic!("{kind}: {e}"))
}

#[test]
fn avro_schemas_parse_and_samples_round_trip() {
    use apache_avro::types::Value as Avro;
    for kind in RecordKind::ALL {
        let schema = apache_avro::Schema::parse(&avro_schema(kind))
            .unwrap_or_else(|e| panic!("{kind}: Avro schema does not parse: {e}"));
        let row = sample_row(kind);
        let value = Avro::from(row.clone())
            .resolve(&schema)
            .unwrap_or_else(|e| panic!("{kind}: sample does not resolve: {e}"));
        assert!(value.validate(&schema), "{kind}: sample does not validate");
        // As a datum (Kafka message body) ...
        let bytes = apache_avro::to_avro_datum(&schema, value.clone()).expect("encode");
        let back =
            apache_avro::from_avro_datum(&schema, &mut bytes.as_slice(), None).expect("decode");
        assert_eq!(back, value, "{kind}: datum round trip");
        let json = Value::try_from(back).expect("to JSON");
        assert_eq!(json, row, "{kind}: row survives Avro");
        // ... and in a container file.
        let mut w = apache_avro::Writer::new(&schema, Vec::new());
        w.append(value).expect("append");
        let file = w.into_inner().expect("flush");
        let r = apache_avro::Reader::new(file.as_slice()).expect("reader");
        assert_eq!(r.count(), 1);
    }
}

#[test]
fn unmatched_super_flow_fits_avro() {
    let schema = apache_avro::Schema::parse(&avro_schema(RecordKind::SuperFlow)).expect("parse");
    let u = schemas::SuperFlow::unmatched(sample::flow_record());
    let r = row(&u).expect("row");
    let v = apache_avro::types::Value::from(r)
        .resolve(&schema)
        .expect("resolve");
    assert!(v.validate(&schema));
}

/// Arrow and Avro list the same columns, in the same order, with the same nullability.
fn same_fields(kind: &str, arrow: &arrow_schema::Fields, avro: &Value) {
    let avro_fields = avro["fields"].as_array().expect("avro fields");
    let a: Vec<&str> = arrow.iter().map(|f| f.name().as_str()).collect();
    let b: Vec<&str> = avro_fields
        .iter()
        .filter_map(|f| f["name"].as_str())
        .collect();
    assert_eq!(a, b, "{kind}: Arrow and Avro fields differ");
    for (f, af) in arrow.iter().zip(avro_fields) {
        let t = &af["type"];
        let nullable = t.as_array().is_some_and(|u| u[0] == "null");
        assert_eq!(f.is_nullable(), nullable, "{kind}.{}", f.name());
        let inner = if nullable { &t[1] } else { t };
        match f.data_type() {
            arrow_schema::DataType::Struct(children) => same_fields(f.name(), children, inner),
            arrow_schema::DataType::List(item) => {
                if let arrow_schema::DataType::Struct(children) = item.data_type() {
                    same_fields(f.name(), children, &inner["items"]);
                }
            }
            arrow_schema::DataType::Timestamp(..) => {
                assert_eq!(
                    inner["logicalType"],
                    "timestamp-millis",
                    "{kind}.{}",
                    f.name()
                )
            }
            _ => {}
        }
    }
}

#[test]
fn arrow_and_avro_agree() {
    for kind in RecordKind::ALL {
        let a = arrow_schema(kind);
        same_fields(kind.name(), a.fields(), &avro_schema(kind));
        assert_eq!(
            a.metadata().get("supernetflow.kind").map(String::as_str),
            Some(kind.name())
        );
    }
    // A few columns the sinks rely on.
    let flow = arrow_schema(RecordKind::Flow);
    let ext = flow.field_with_name("extensions").expect("extensions");
    let arrow_schema::DataType::List(item) = ext.data_type() else {
        panic!("extensions is not a list");
    };
    let arrow_schema::DataType::Struct(children) = item.data_type() else {
        panic!("extensions items are not structs");
    };
    let names: Vec<&str> = children.iter().map(|c| c.name().as_str()).collect();
    assert_eq!(names, ["pen", "id", "name", "value", "value_type"]);
    assert_eq!(
        flow.field_with_name("exporter")
            .map(|f| f.data_type().clone())
            .ok(),
        Some(arrow_schema::DataType::Utf8)
    );
}

#[test]
fn row_form_splits_tagged_values() {
    let r = sample_row(RecordKind::Flow);
    let ext = &r["extensions"][0];
    assert_eq!(ext["value"], "48213");
    assert_eq!(ext["value_type"], "unsigned");
    assert_eq!(ext["name"], "reverseOctetDeltaCount");
    assert_eq!(r["extensions"][1]["name"], Value::Null);
    assert_eq!(r["extensions"][1]["value"], "netflix");
}

fn expect_err(kind: RecordKind, mut v: Value, edit: impl FnOnce(&mut Value)) -> RowError {
    edit(&mut v);
    to_row(kind, &v).expect_err("bad input must be refused")
}

#[test]
fn row_form_refuses_what_does_not_fit() {
    let flow = sample::json(RecordKind::Flow);
    let e = expect_err(RecordKind::Flow, flow.clone(), |v| {
        v["octets"] = Value::Null;
    });
    assert_eq!(e, RowError::Missing("octets".into()));
    let e = expect_err(RecordKind::Flow, flow.clone(), |v| {
        v["octets"] = Value::from(u64::MAX);
    });
    assert_eq!(e, RowError::OutOfRange("octets".into()));
    let e = expect_err(RecordKind::Flow, flow.clone(), |v| {
        v["extensions"][0]["value"] = serde_json::json!({"unsigned": 1, "signed": 2});
    });
    assert!(matches!(e, RowError::Type { .. }), "{e}");
    let e = expect_err(RecordKind::Flow, flow, |v| {
        v["exporter"] = Value::from(7);
    });
    assert!(e.to_string().contains("exporter"), "{e}");
    assert!(to_row(RecordKind::Tap, &Value::from("x")).is_err());
}
