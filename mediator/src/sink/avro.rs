//! Avro in the Confluent wire format, with a schema-registry client.
//!
//! A message is `0x00` (magic), the schema id (4 bytes, big endian) the registry gave the record
//! kind's schema, then the record as an Avro binary datum (no container header). The schema is
//! `schemas::published::avro_schema(kind)`, the record its row form
//! (`schemas::published::row`), so Avro consumers read exactly the fields the JSON and Parquet
//! outputs carry.
//!
//! Subjects follow Confluent's default `TopicNameStrategy`: the value schema of topic `T` is
//! registered under subject `T-value` (e.g. `snf.flow_records-value`). Registration happens once
//! per kind when the sink starts (`POST /subjects/{subject}/versions`, which returns the existing
//! id when the schema is already registered); a registry that refuses the schema (e.g. an
//! incompatible change under its compatibility rules) stops start-up with the registry's message.

use schemas::published::{avro_schema, row};
use schemas::{Record, RecordKind};
use serde_json::Value as JsonValue;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Errors of the Avro encoding and the registry.
#[derive(Debug, thiserror::Error)]
pub enum AvroError {
    /// The published schema does not parse (a bug in `schemas`).
    #[error("Avro schema of {kind}: {reason}")]
    Schema { kind: RecordKind, reason: String },
    /// The registry could not be reached or refused the schema.
    #[error("schema registry {url}, subject {subject}: {reason}")]
    Registry {
        url: String,
        subject: String,
        reason: String,
    },
    /// A record did not fit its schema (a bug in `schemas`, counted as a failed record).
    #[error("Avro encoding of record {record_id}: {reason}")]
    Encode { record_id: String, reason: String },
}

/// Encodes records of one kind for one topic.
pub struct AvroEncoder {
    kind: RecordKind,
    schema: apache_avro::Schema,
    /// `schema` compiled for the direct writer.
    plan: Arc<[Field]>,
    id: u32,
}

/// A field of a compiled record: its name in the row and how to write its value.
#[derive(Debug)]
struct Field {
    name: String,
    node: Node,
}

/// The published schema compiled for writing: named references resolved, every union one of
/// `null` and one other type (the only unions the published schemas have).
#[derive(Debug)]
enum Node {
    Bool,
    Int,
    /// `long`, also `timestamp-millis`.
    Long,
    Float,
    Double,
    String,
    Array(Box<Node>),
    /// `[null, T]` (`null_first`) or `[T, null]`.
    Optional {
        null_first: bool,
        inner: Box<Node>,
    },
    Record(Arc<[Field]>),
}

fn compile(
    s: &apache_avro::Schema,
    named: &mut HashMap<String, Arc<[Field]>>,
) -> Result<Node, String> {
    use apache_avro::Schema as S;
    Ok(match s {
        S::Boolean => Node::Bool,
        S::Int => Node::Int,
        S::Long | S::TimestampMillis => Node::Long,
        S::Float => Node::Float,
        S::Double => Node::Double,
        S::String => Node::String,
        S::Array(a) => Node::Array(Box::new(compile(&a.items, named)?)),
        S::Union(u) => match u.variants() {
            [S::Null, t] => Node::Optional {
                null_first: true,
                inner: Box::new(compile(t, named)?),
            },
            [t, S::Null] => Node::Optional {
                null_first: false,
                inner: Box::new(compile(t, named)?),
            },
            other => return Err(format!("unsupported union of {} types", other.len())),
        },
        S::Record(r) => {
            let fields = r
                .fields
                .iter()
                .map(|f| {
                    Ok(Field {
                        name: f.name.clone(),
                        node: compile(&f.schema, named)?,
                    })
                })
                .collect::<Result<Vec<_>, String>>()?;
            let fields: Arc<[Field]> = fields.into();
            named.insert(r.name.fullname(None), fields.clone());
            Node::Record(fields)
        }
        S::Ref { name } => Node::Record(
            named
                .get(&name.fullname(None))
                .cloned()
                .ok_or_else(|| format!("reference to undefined {}", name.fullname(None)))?,
        ),
        other => return Err(format!("unsupported Avro type {other:?}")),
    })
}

fn plan_of(kind: RecordKind, schema: &apache_avro::Schema) -> Result<Arc<[Field]>, AvroError> {
    match compile(schema, &mut HashMap::new()) {
        Ok(Node::Record(fields)) => Ok(fields),
        Ok(_) => Err(AvroError::Schema {
            kind,
            reason: "the top level is not a record".into(),
        }),
        Err(reason) => Err(AvroError::Schema { kind, reason }),
    }
}

/// Avro `long`/`int`: zig-zag, then variable length (7 bits a byte, low first).
fn put_long(out: &mut Vec<u8>, n: i64) {
    let mut z = ((n << 1) ^ (n >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn type_error(path: &str, expected: &str, v: &JsonValue) -> String {
    format!("{path}: expected {expected}, got {v}")
}

fn put_record(
    out: &mut Vec<u8>,
    fields: &[Field],
    v: &JsonValue,
    path: &str,
) -> Result<(), String> {
    let obj = v
        .as_object()
        .ok_or_else(|| type_error(path, "an object", v))?;
    for f in fields {
        let x = obj.get(&f.name).unwrap_or(&JsonValue::Null);
        put(out, &f.node, x, &f.name)?;
    }
    Ok(())
}

/// Writes `v` as `node`'s Avro binary encoding (what `apache_avro::to_avro_datum` writes for the
/// resolved value); `path` names the field in errors.
fn put(out: &mut Vec<u8>, node: &Node, v: &JsonValue, path: &str) -> Result<(), String> {
    match node {
        Node::Optional { null_first, inner } => {
            // Branch index 0 is zig-zag 0, index 1 is zig-zag 2.
            let (null_branch, value_branch) = if *null_first { (0, 2) } else { (2, 0) };
            if v.is_null() {
                out.push(null_branch);
                Ok(())
            } else {
                out.push(value_branch);
                put(out, inner, v, path)
            }
        }
        Node::Bool => {
            let b = v
                .as_bool()
                .ok_or_else(|| type_error(path, "a boolean", v))?;
            out.push(u8::from(b));
            Ok(())
        }
        Node::Int => {
            let n = v
                .as_i64()
                .ok_or_else(|| type_error(path, "an integer", v))?;
            let n =
                i32::try_from(n).map_err(|_| format!("{path}: {n} does not fit an Avro int"))?;
            put_long(out, i64::from(n));
            Ok(())
        }
        Node::Long => {
            let n = v
                .as_i64()
                .ok_or_else(|| type_error(path, "a 64-bit integer", v))?;
            put_long(out, n);
            Ok(())
        }
        Node::Float => {
            // As apache-avro resolves a JSON number to `float`: integers directly, others via f64.
            let x = match v.as_i64() {
                Some(n) => n as f32,
                None => v.as_f64().ok_or_else(|| type_error(path, "a number", v))? as f32,
            };
            out.extend_from_slice(&x.to_le_bytes());
            Ok(())
        }
        Node::Double => {
            let x = match v.as_i64() {
                Some(n) => n as f64,
                None => v.as_f64().ok_or_else(|| type_error(path, "a number", v))?,
            };
            out.extend_from_slice(&x.to_le_bytes());
            Ok(())
        }
        Node::String => {
            let s = v.as_str().ok_or_else(|| type_error(path, "a string", v))?;
            put_long(out, s.len() as i64);
            out.extend_from_slice(s.as_bytes());
            Ok(())
        }
        Node::Array(item) => {
            let items = v
                .as_array()
                .ok_or_else(|| type_error(path, "an array", v))?;
            // One block with all items, then the empty block that ends the array.
            if !items.is_empty() {
                put_long(out, items.len() as i64);
                for x in items {
                    put(out, item, x, path)?;
                }
            }
            out.push(0);
            Ok(())
        }
        Node::Record(fields) => put_record(out, fields, v, path),
    }
}

impl std::fmt::Debug for AvroEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AvroEncoder")
            .field("kind", &self.kind)
            .field("schema_id", &self.id)
            .finish()
    }
}

/// The subject of `topic`'s value schema (TopicNameStrategy).
pub fn subject(topic: &str) -> String {
    format!("{topic}-value")
}

impl AvroEncoder {
    /// Registers `kind`'s schema for `topic` with the registry at `url` and returns an encoder
    /// tagged with the id the registry gave it.
    pub fn register(
        url: &str,
        topic: &str,
        kind: RecordKind,
        timeout: Duration,
    ) -> Result<Self, AvroError> {
        let json = avro_schema(kind);
        let schema = apache_avro::Schema::parse(&json).map_err(|e| AvroError::Schema {
            kind,
            reason: e.to_string(),
        })?;
        let plan = plan_of(kind, &schema)?;
        let subject = subject(topic);
        let id = register_schema(url, &subject, &json.to_string(), timeout)?;
        Ok(Self {
            kind,
            schema,
            plan,
            id,
        })
    }

    /// An encoder for a schema id obtained elsewhere (tests, pre-registered schemas).
    pub fn with_id(kind: RecordKind, id: u32) -> Result<Self, AvroError> {
        let schema =
            apache_avro::Schema::parse(&avro_schema(kind)).map_err(|e| AvroError::Schema {
                kind,
                reason: e.to_string(),
            })?;
        let plan = plan_of(kind, &schema)?;
        Ok(Self {
            kind,
            schema,
            plan,
            id,
        })
    }

    /// The registry's id of the schema.
    pub fn schema_id(&self) -> u32 {
        self.id
    }

    /// Writes the wire-format message of `record` to `out` (cleared first).
    ///
    /// The record's row form (`schemas::published::row`) is written straight to Avro binary by
    /// walking the compiled published schema; [`Self::encode_reference`] is the same through
    /// apache-avro's `Value`, kept as the reference the tests compare against.
    pub fn encode<R: Record>(&self, record: &R, out: &mut Vec<u8>) -> Result<(), AvroError> {
        let r = row(record).map_err(|e| AvroError::Encode {
            record_id: record.record_id().to_owned(),
            reason: e.to_string(),
        })?;
        self.encode_row(&r, out)
            .map_err(|reason| AvroError::Encode {
                record_id: record.record_id().to_owned(),
                reason,
            })
    }

    /// Writes the wire-format message of a row-form value (`schemas::published::row`'s output)
    /// to `out` (cleared first). On error `out` holds a partial message.
    pub fn encode_row(&self, row: &JsonValue, out: &mut Vec<u8>) -> Result<(), String> {
        out.clear();
        out.push(0);
        out.extend_from_slice(&self.id.to_be_bytes());
        put_record(out, &self.plan, row, "(record)")
    }

    /// The wire-format message of `record` through apache-avro (`Value::from` the row, `resolve`
    /// against the schema, `to_avro_datum`): the slower path [`Self::encode`] replaced, kept
    /// as its reference in tests and the `avro_encode` example.
    pub fn encode_reference<R: Record>(
        &self,
        record: &R,
        out: &mut Vec<u8>,
    ) -> Result<(), AvroError> {
        let r = row(record).map_err(|e| AvroError::Encode {
            record_id: record.record_id().to_owned(),
            reason: e.to_string(),
        })?;
        self.encode_row_reference(&r, out)
            .map_err(|reason| AvroError::Encode {
                record_id: record.record_id().to_owned(),
                reason,
            })
    }

    /// [`Self::encode_reference`] of a row-form value.
    pub fn encode_row_reference(&self, row: &JsonValue, out: &mut Vec<u8>) -> Result<(), String> {
        let value = apache_avro::types::Value::from(row.clone())
            .resolve(&self.schema)
            .map_err(|e| e.to_string())?;
        let datum = apache_avro::to_avro_datum(&self.schema, value).map_err(|e| e.to_string())?;
        out.clear();
        out.reserve(5 + datum.len());
        out.push(0);
        out.extend_from_slice(&self.id.to_be_bytes());
        out.extend_from_slice(&datum);
        Ok(())
    }
}

/// `POST {url}/subjects/{subject}/versions` with the schema; returns the id.
pub fn register_schema(
    url: &str,
    subject: &str,
    schema_json: &str,
    timeout: Duration,
) -> Result<u32, AvroError> {
    let err = |reason: String| AvroError::Registry {
        url: url.to_owned(),
        subject: subject.to_owned(),
        reason,
    };
    let endpoint = format!("{}/subjects/{subject}/versions", url.trim_end_matches('/'));
    let body = serde_json::json!({ "schemaType": "AVRO", "schema": schema_json });
    let agent = ureq::AgentBuilder::new().timeout(timeout).build();
    let resp = agent
        .post(&endpoint)
        .set("Content-Type", "application/vnd.schemaregistry.v1+json")
        .set("Accept", "application/vnd.schemaregistry.v1+json")
        .send_string(&body.to_string());
    let resp = match resp {
        Ok(r) => r,
        Err(ureq::Error::Status(code, r)) => {
            let text = r.into_string().unwrap_or_default();
            return Err(err(format!("HTTP {code}: {}", text.trim())));
        }
        Err(e) => return Err(err(e.to_string())),
    };
    let v: serde_json::Value = resp
        .into_json()
        .map_err(|e| err(format!("reading the answer: {e}")))?;
    v.get("id")
        .and_then(serde_json::Value::as_u64)
        .and_then(|id| u32::try_from(id).ok())
        .ok_or_else(|| err(format!("no schema id in the answer: {v}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;

    #[test]
    fn wire_format_decodes_with_the_published_schema() {
        let rec = schemas::sample::flow_record();
        let enc = AvroEncoder::with_id(RecordKind::Flow, 42).expect("encoder");
        let mut buf = Vec::new();
        enc.encode(&rec, &mut buf).expect("encode");
        assert_eq!(buf[0], 0, "magic byte");
        assert_eq!(u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]), 42);
        let schema = apache_avro::Schema::parse(&avro_schema(RecordKind::Flow)).expect("schema");
        let back = apache_avro::from_avro_datum(&schema, &mut &buf[5..], None).expect("decode");
        let json = serde_json::Value::try_from(back).expect("to JSON");
        assert_eq!(json, row(&rec).expect("row"));
    }

    /// Counts of what a row exercises: optional fields present, optional fields null, array
    /// items, records (nested ones included).
    #[derive(Debug, Default)]
    struct Coverage {
        some: usize,
        none: usize,
        items: usize,
        records: usize,
    }

    fn cover(node: &Node, v: &JsonValue, c: &mut Coverage) {
        match node {
            Node::Optional { inner, .. } if v.is_null() => {
                let _ = inner;
                c.none += 1;
            }
            Node::Optional { inner, .. } => {
                c.some += 1;
                cover(inner, v, c);
            }
            Node::Array(item) => {
                for x in v.as_array().into_iter().flatten() {
                    c.items += 1;
                    cover(item, x, c);
                }
            }
            Node::Record(fields) => {
                c.records += 1;
                for f in fields.iter() {
                    cover(&f.node, v.get(&f.name).unwrap_or(&JsonValue::Null), c);
                }
            }
            _ => {}
        }
    }

    /// `v` with every optional field null and every array empty, recursively.
    fn stripped(node: &Node, v: &JsonValue) -> JsonValue {
        match node {
            Node::Optional { .. } => JsonValue::Null,
            Node::Array(_) => JsonValue::Array(Vec::new()),
            Node::Record(fields) => JsonValue::Object(
                fields
                    .iter()
                    .map(|f| {
                        let x = v.get(&f.name).unwrap_or(&JsonValue::Null);
                        (f.name.clone(), stripped(&f.node, x))
                    })
                    .collect(),
            ),
            _ => v.clone(),
        }
    }

    /// A value for `node` with every optional field present and every array of two items,
    /// recursively (the samples leave some arrays empty).
    fn filled(node: &Node, n: &mut i64) -> JsonValue {
        *n += 1;
        match node {
            Node::Bool => JsonValue::Bool(*n % 2 == 0),
            Node::Int => serde_json::json!(-(*n) * 1000),
            Node::Long => serde_json::json!(*n * 1_000_000_007),
            Node::Float => serde_json::json!(*n as f64 + 0.25),
            Node::Double => serde_json::json!(*n as f64 / 3.0),
            Node::String => JsonValue::String(format!("s{n}-é")),
            Node::Array(item) => JsonValue::Array(vec![filled(item, n), filled(item, n)]),
            Node::Optional { inner, .. } => filled(inner, n),
            Node::Record(fields) => JsonValue::Object(
                fields
                    .iter()
                    .map(|f| (f.name.clone(), filled(&f.node, n)))
                    .collect(),
            ),
        }
    }

    /// The direct writer and the apache-avro path give the same bytes, and they decode with the
    /// published schema to the same values.
    fn same_as_reference(enc: &AvroEncoder, row: &JsonValue) -> Coverage {
        let (mut direct, mut reference) = (Vec::new(), Vec::new());
        enc.encode_row(row, &mut direct).expect("direct");
        enc.encode_row_reference(row, &mut reference)
            .expect("reference");
        assert_eq!(direct, reference, "{}: bytes differ", enc.kind);
        let schema = apache_avro::Schema::parse(&avro_schema(enc.kind)).expect("schema");
        let a = apache_avro::from_avro_datum(&schema, &mut &direct[5..], None).expect("decode");
        let b = apache_avro::from_avro_datum(&schema, &mut &reference[5..], None).expect("decode");
        assert_eq!(a, b, "{}: decoded values differ", enc.kind);
        let mut c = Coverage::default();
        cover(&Node::Record(enc.plan.clone()), row, &mut c);
        c
    }

    #[test]
    fn direct_writer_matches_apache_avro_for_every_kind() {
        let rows = [
            (RecordKind::Flow, row(&schemas::sample::flow_record())),
            (RecordKind::Tap, row(&schemas::sample::tap_record())),
            (RecordKind::SuperFlow, row(&schemas::sample::super_flow())),
            (RecordKind::AppSession, row(&schemas::sample::app_session())),
        ];
        for (kind, r) in rows {
            let r = r.expect("row");
            let enc = AvroEncoder::with_id(kind, 3).expect("encoder");
            let c = same_as_reference(&enc, &r);
            // The samples populate options and nested records; a synthetic row fills every
            // option and array and a stripped one empties them, so every branch is compared.
            assert!(c.some > 0 && c.records > 1, "{kind}: {c:?}");
            let full = filled(&Node::Record(enc.plan.clone()), &mut 0);
            let c = same_as_reference(&enc, &full);
            assert!(c.none == 0 && c.items > 0 && c.records > 1, "{kind}: {c:?}");
            let bare = stripped(&Node::Record(enc.plan.clone()), &r);
            let c = same_as_reference(&enc, &bare);
            assert!(c.some == 0 && c.items == 0 && c.none > 0, "{kind}: {c:?}");
        }
    }

    #[test]
    fn encode_goes_through_the_direct_writer() {
        let rec = schemas::sample::super_flow();
        let enc = AvroEncoder::with_id(RecordKind::SuperFlow, 9).expect("encoder");
        let (mut a, mut b) = (Vec::new(), Vec::new());
        enc.encode(&rec, &mut a).expect("encode");
        enc.encode_reference(&rec, &mut b).expect("reference");
        assert_eq!(a, b);
    }

    #[test]
    fn writer_refuses_values_that_do_not_fit() {
        let enc = AvroEncoder::with_id(RecordKind::Flow, 1).expect("encoder");
        let mut r = row(&schemas::sample::flow_record()).expect("row");
        let first_int = enc
            .plan
            .iter()
            .find(|f| matches!(f.node, Node::Int))
            .expect("an int column")
            .name
            .clone();
        r[&first_int] = serde_json::json!(i64::from(i32::MAX) + 1);
        let mut out = Vec::new();
        let e = enc.encode_row(&r, &mut out).expect_err("out of range");
        assert!(e.contains(&first_int), "{e}");
        r[&first_int] = serde_json::json!("seven");
        assert!(enc.encode_row(&r, &mut out).is_err());
    }

    #[test]
    fn zig_zag_varints() {
        for (n, bytes) in [
            (0i64, vec![0u8]),
            (-1, vec![1]),
            (1, vec![2]),
            (-64, vec![0x7f]),
            (64, vec![0x80, 0x01]),
            (
                i64::MAX,
                vec![0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            ),
        ] {
            let mut out = Vec::new();
            put_long(&mut out, n);
            assert_eq!(out, bytes, "{n}");
        }
    }

    /// The registry client speaks the registry's REST protocol: checked against a stub that
    /// answers like Confluent's (no registry can be installed here to test against).
    #[test]
    fn registers_under_the_topic_value_subject() {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        let server = std::thread::spawn(move || {
            let (s, _) = l.accept().expect("accept");
            let mut r = BufReader::new(s.try_clone().expect("clone"));
            let mut line = String::new();
            r.read_line(&mut line).expect("request line");
            let mut len = 0usize;
            let mut ctype = String::new();
            loop {
                let mut h = String::new();
                r.read_line(&mut h).expect("header");
                if h.trim().is_empty() {
                    break;
                }
                let lower = h.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    len = v.trim().parse().expect("length");
                }
                if let Some(v) = lower.strip_prefix("content-type:") {
                    ctype = v.trim().to_owned();
                }
            }
            let mut body = vec![0; len];
            r.read_exact(&mut body).expect("body");
            let answer = "{\"id\":7}";
            let mut s = s;
            write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.schemaregistry.v1+json\r\nContent-Length: {}\r\n\r\n{answer}",
                answer.len()
            )
            .expect("answer");
            (line, ctype, body)
        });
        let enc = AvroEncoder::register(
            &format!("http://{addr}"),
            "snf.flow_records",
            RecordKind::Flow,
            Duration::from_secs(5),
        )
        .expect("register");
        assert_eq!(enc.schema_id(), 7);
        let (line, ctype, body) = server.join().expect("server");
        assert!(
            line.starts_with("POST /subjects/snf.flow_records-value/versions "),
            "{line}"
        );
        assert_eq!(ctype, "application/vnd.schemaregistry.v1+json");
        let v: serde_json::Value = serde_json::from_slice(&body).expect("JSON body");
        let schema: serde_json::Value =
            serde_json::from_str(v["schema"].as_str().expect("schema string")).expect("schema");
        assert_eq!(schema, avro_schema(RecordKind::Flow));
    }

    #[test]
    fn unreachable_registry_is_a_clear_error() {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = l.local_addr().expect("addr");
        drop(l);
        let e = AvroEncoder::register(
            &format!("http://{addr}"),
            "t",
            RecordKind::Flow,
            Duration::from_secs(2),
        )
        .expect_err("must fail")
        .to_string();
        assert!(
            e.contains("schema registry") && e.contains("t-value"),
            "{e}"
        );
    }
}
