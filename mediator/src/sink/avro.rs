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
    id: u32,
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
        let subject = subject(topic);
        let id = register_schema(url, &subject, &json.to_string(), timeout)?;
        Ok(Self { kind, schema, id })
    }

    /// An encoder for a schema id obtained elsewhere (tests, pre-registered schemas).
    pub fn with_id(kind: RecordKind, id: u32) -> Result<Self, AvroError> {
        let schema =
            apache_avro::Schema::parse(&avro_schema(kind)).map_err(|e| AvroError::Schema {
                kind,
                reason: e.to_string(),
            })?;
        Ok(Self { kind, schema, id })
    }

    /// The registry's id of the schema.
    pub fn schema_id(&self) -> u32 {
        self.id
    }

    /// Appends the wire-format message of `record` to `out` (cleared first).
    pub fn encode<R: Record>(&self, record: &R, out: &mut Vec<u8>) -> Result<(), AvroError> {
        let err = |reason: String| AvroError::Encode {
            record_id: record.record_id().to_owned(),
            reason,
        };
        let r = row(record).map_err(|e| err(e.to_string()))?;
        let value = apache_avro::types::Value::from(r)
            .resolve(&self.schema)
            .map_err(|e| err(e.to_string()))?;
        let datum =
            apache_avro::to_avro_datum(&self.schema, value).map_err(|e| err(e.to_string()))?;
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
