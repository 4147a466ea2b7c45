//! The direct SuperFlow → Arrow path: the same `super_flows` columns as
//! [`schemas::published::row`] + the JSON decoder, built without the JSON value form. The embedded
//! router flow (`flow`) reuses [`super::flow_batch`].
//!
//! Parity with the row path (checked by the tests in `mediator/tests/parquet.rs`):
//! - an unsigned value above `i64::MAX` in a 64-bit column, or a non-finite float in a column that
//!   is not nullable, rejects the record (the row form has no value for it);
//! - a non-finite float in a nullable column is null (JSON has no NaN: the row form has `null`).

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::{
    Array, ArrayRef, BooleanArray, Float32Array, Float64Array, Int32Array, Int64Array, ListArray,
    RecordBatch, StringArray, StructArray, TimestampMillisecondArray,
};
use arrow_buffer::{NullBuffer, OffsetBuffer};
use arrow_schema::{ArrowError, DataType, FieldRef, Fields, Schema, SchemaRef};
use schemas::super_flow::KeyMatch;
use schemas::{
    AppPlatform, BufferState, ConferencingQoe, DetectionMethod, FlowRecord, FlowStats, GamingQoe,
    MatchStatus, Qoe, SuperFlow, VideoQoe,
};

/// Columns of one struct level by name, before they are put in schema order.
type Cols = HashMap<&'static str, ArrayRef>;

fn wide(v: u64, name: &str) -> Result<i64, String> {
    i64::try_from(v).map_err(|_| format!("{name}: integer out of range for a 64-bit signed column"))
}

fn finite(v: f64, name: &str) -> Result<(), String> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(format!("{name}: missing or null in a non-nullable field"))
    }
}

/// Whether a super-flow fits the schema (see the module documentation).
pub(super) fn check(s: &SuperFlow) -> Result<(), String> {
    super::flow_arrow::check(&s.flow).map_err(|e| format!("flow.{e}"))?;
    finite(f64::from(s.enrichment.confidence), "enrichment.confidence")?;
    if let Some(a) = &s.app {
        finite(f64::from(a.confidence), "app.confidence")?;
    }
    if let Some(st) = &s.stats {
        for (v, n) in [
            (st.local_bytes, "stats.local_bytes"),
            (st.other_bytes, "stats.other_bytes"),
            (st.local_packets, "stats.local_packets"),
            (st.other_packets, "stats.other_packets"),
            (st.total_bytes, "stats.total_bytes"),
            (st.total_packets, "stats.total_packets"),
        ] {
            wide(v, n)?;
        }
        finite(st.local_rate, "stats.local_rate")?;
        finite(st.other_rate, "stats.other_rate")?;
    }
    Ok(())
}

pub(super) fn match_status(v: MatchStatus) -> &'static str {
    match v {
        MatchStatus::Matched => "matched",
        MatchStatus::Unmatched => "unmatched",
        MatchStatus::Partial => "partial",
    }
}

pub(super) fn key_match(v: KeyMatch) -> &'static str {
    match v {
        KeyMatch::None => "none",
        KeyMatch::Canonical => "canonical",
        KeyMatch::KeyWithoutScope => "key_without_scope",
        KeyMatch::Nat => "nat",
    }
}

pub(super) fn detection_method(v: DetectionMethod) -> &'static str {
    match v {
        DetectionMethod::Sni => "sni",
        DetectionMethod::Dns => "dns",
        DetectionMethod::HttpHost => "http_host",
        DetectionMethod::TlsFingerprint => "tls_fingerprint",
        DetectionMethod::Rtp => "rtp",
        DetectionMethod::Payload => "payload",
        DetectionMethod::Address => "address",
        DetectionMethod::Port => "port",
        DetectionMethod::Behaviour => "behaviour",
        DetectionMethod::Session => "session",
        DetectionMethod::None => "none",
    }
}

pub(super) fn buffer_state(v: BufferState) -> &'static str {
    match v {
        BufferState::Unknown => "unknown",
        BufferState::Startup => "startup",
        BufferState::Filling => "filling",
        BufferState::Steady => "steady",
        BufferState::Draining => "draining",
        BufferState::Stalled => "stalled",
    }
}

fn arc<A: Array + 'static>(a: A) -> ArrayRef {
    Arc::new(a)
}

/// A float the row form can hold: non-finite values are `null` there.
fn f32f(v: f32) -> Option<f32> {
    v.is_finite().then_some(v)
}
fn f64f(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

// Column builders over the rows of one struct level; a row is `None` where the struct is null
// (its children are null there too).
fn i64c<T>(it: &[Option<&T>], f: impl Fn(&T) -> Option<i64>) -> ArrayRef {
    arc(it.iter().map(|x| x.and_then(&f)).collect::<Int64Array>())
}
fn i32c<T>(it: &[Option<&T>], f: impl Fn(&T) -> Option<i32>) -> ArrayRef {
    arc(it.iter().map(|x| x.and_then(&f)).collect::<Int32Array>())
}
fn f32c<T>(it: &[Option<&T>], f: impl Fn(&T) -> Option<f32>) -> ArrayRef {
    arc(it
        .iter()
        .map(|x| x.and_then(&f).and_then(f32f))
        .collect::<Float32Array>())
}
fn f64c<T>(it: &[Option<&T>], f: impl Fn(&T) -> Option<f64>) -> ArrayRef {
    arc(it
        .iter()
        .map(|x| x.and_then(&f).and_then(f64f))
        .collect::<Float64Array>())
}
fn boolc<T>(it: &[Option<&T>], f: impl Fn(&T) -> Option<bool>) -> ArrayRef {
    arc(it.iter().map(|x| x.and_then(&f)).collect::<BooleanArray>())
}
fn strc<'a, T>(it: &[Option<&'a T>], f: impl Fn(&'a T) -> Option<&'a str>) -> ArrayRef {
    arc(it.iter().map(|x| x.and_then(&f)).collect::<StringArray>())
}
/// A `List<Utf8>` column (`alpn`, `media`).
fn listc<'a, T>(
    it: &[Option<&'a T>],
    item: &FieldRef,
    f: impl Fn(&'a T) -> &'a [String],
) -> Result<ArrayRef, ArrowError> {
    let n: usize = it.iter().flatten().map(|x| f(x).len()).sum();
    let mut values = arrow_array::builder::StringBuilder::with_capacity(n, n * 8);
    for s in it.iter().flatten().flat_map(|x| f(x).iter()) {
        values.append_value(s);
    }
    let values = values.finish();
    let offsets = OffsetBuffer::<i32>::from_lengths(it.iter().map(|x| x.map_or(0, |x| f(x).len())));
    Ok(arc(ListArray::try_new(
        Arc::clone(item),
        offsets,
        arc(values),
        nulls(it),
    )?))
}

fn nulls<T>(it: &[Option<&T>]) -> Option<NullBuffer> {
    if it.iter().all(Option::is_some) {
        None
    } else {
        Some(NullBuffer::from_iter(it.iter().map(Option::is_some)))
    }
}

fn unknown(name: &str) -> ArrowError {
    ArrowError::SchemaError(format!(
        "super_flows column {name} is not known to the direct SuperFlow builder"
    ))
}

fn field<'f>(fields: &'f Fields, name: &str) -> Result<&'f FieldRef, ArrowError> {
    fields
        .iter()
        .find(|f| f.name() == name)
        .ok_or_else(|| unknown(name))
}

fn struct_fields<'f>(fields: &'f Fields, name: &str) -> Result<&'f Fields, ArrowError> {
    match field(fields, name)?.data_type() {
        DataType::Struct(f) => Ok(f),
        _ => Err(unknown(name)),
    }
}

fn list_item<'f>(fields: &'f Fields, name: &str) -> Result<&'f FieldRef, ArrowError> {
    match field(fields, name)?.data_type() {
        DataType::List(item) => Ok(item),
        _ => Err(unknown(name)),
    }
}

/// The columns of `cols` in the order of `fields`; `Int64` columns become timestamps where the
/// schema says so. Fails on a column the builder did not make.
fn ordered(fields: &Fields, mut cols: Cols, what: &str) -> Result<Vec<ArrayRef>, ArrowError> {
    let mut out = Vec::with_capacity(fields.len());
    for f in fields {
        let name = f.name().as_str();
        let col = cols
            .remove(name)
            .ok_or_else(|| unknown(&format!("{what}{name}")))?;
        let col = match f.data_type() {
            DataType::Timestamp(_, tz) => {
                let ints = col
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .ok_or_else(|| unknown(name))?;
                arc(
                    TimestampMillisecondArray::new(ints.values().clone(), ints.nulls().cloned())
                        .with_timezone_opt(tz.clone()),
                )
            }
            _ => col,
        };
        out.push(col);
    }
    Ok(out)
}

fn structc<T>(
    fields: &Fields,
    it: &[Option<&T>],
    cols: Cols,
    what: &str,
) -> Result<ArrayRef, ArrowError> {
    let columns = ordered(fields, cols, what)?;
    Ok(arc(StructArray::try_new(
        fields.clone(),
        columns,
        nulls(it),
    )?))
}

fn flow_col(fields: &Fields, flows: &[&FlowRecord]) -> Result<ArrayRef, ArrowError> {
    let schema: SchemaRef = Arc::new(Schema::new(fields.clone()));
    let batch = super::flow_batch(&schema, flows)?;
    Ok(arc(StructArray::try_new(
        fields.clone(),
        batch.columns().to_vec(),
        None,
    )?))
}

fn app_col(fields: &Fields, it: &[Option<&AppPlatform>]) -> Result<ArrayRef, ArrowError> {
    let mut c = Cols::with_capacity(16);
    c.insert("app_type", strc(it, |a| Some(a.app_type.as_str())));
    c.insert("provider", strc(it, |a| a.provider.as_deref()));
    c.insert("app_name", strc(it, |a| a.app_name.as_deref()));
    c.insert("client_os", strc(it, |a| a.client_os.as_deref()));
    c.insert("client_agent", strc(it, |a| a.client_agent.as_deref()));
    c.insert("sni", strc(it, |a| a.sni.as_deref()));
    c.insert("dns_name", strc(it, |a| a.dns_name.as_deref()));
    c.insert("http_host", strc(it, |a| a.http_host.as_deref()));
    c.insert(
        "tls_fingerprint",
        strc(it, |a| a.tls_fingerprint.as_deref()),
    );
    c.insert("alpn", listc(it, list_item(fields, "alpn")?, |a| &a.alpn)?);
    c.insert(
        "detection_method",
        strc(it, |a| Some(detection_method(a.detection_method))),
    );
    c.insert("confidence", f32c(it, |a| Some(a.confidence)));
    c.insert(
        "detection_packets",
        i64c(it, |a| Some(i64::from(a.detection_packets))),
    );
    structc(fields, it, c, "app.")
}

fn stats_col(fields: &Fields, it: &[Option<&FlowStats>]) -> Result<ArrayRef, ArrowError> {
    // `check` passed: the u64 conversions cannot fail.
    let u = |v: u64| Some(i64::try_from(v).unwrap_or(i64::MAX));
    let mut c = Cols::with_capacity(20);
    c.insert("digest", strc(it, |s| Some(s.digest.as_str())));
    c.insert("local_bytes", i64c(it, |s| u(s.local_bytes)));
    c.insert("other_bytes", i64c(it, |s| u(s.other_bytes)));
    c.insert("local_packets", i64c(it, |s| u(s.local_packets)));
    c.insert("other_packets", i64c(it, |s| u(s.other_packets)));
    c.insert("local_rate", f64c(it, |s| Some(s.local_rate)));
    c.insert("other_rate", f64c(it, |s| Some(s.other_rate)));
    c.insert("total_bytes", i64c(it, |s| u(s.total_bytes)));
    c.insert("total_packets", i64c(it, |s| u(s.total_packets)));
    c.insert("tcp_resets", i64c(it, |s| Some(i64::from(s.tcp_resets))));
    c.insert("tcp_retrans", i64c(it, |s| Some(i64::from(s.tcp_retrans))));
    c.insert(
        "tcp_seq_errors",
        i64c(it, |s| Some(i64::from(s.tcp_seq_errors))),
    );
    c.insert(
        "detection_packets",
        i64c(it, |s| Some(i64::from(s.detection_packets))),
    );
    c.insert("rtt_avg_ms", f32c(it, |s| s.rtt_avg_ms));
    c.insert("rtt_min_ms", f32c(it, |s| s.rtt_min_ms));
    c.insert("rtt_max_ms", f32c(it, |s| s.rtt_max_ms));
    c.insert("jitter_ms", f32c(it, |s| s.jitter_ms));
    c.insert("loss_ratio", f32c(it, |s| s.loss_ratio));
    structc(fields, it, c, "stats.")
}

fn video_col(fields: &Fields, it: &[Option<&VideoQoe>]) -> Result<ArrayRef, ArrowError> {
    let mut c = Cols::with_capacity(10);
    c.insert("window_start_ms", i64c(it, |v| Some(v.window_start_ms)));
    c.insert("window_end_ms", i64c(it, |v| Some(v.window_end_ms)));
    c.insert("resolution", strc(it, |v| v.resolution.as_deref()));
    c.insert("height_px", i32c(it, |v| v.height_px.map(i32::from)));
    c.insert("bitrate_kbps", i64c(it, |v| v.bitrate_kbps.map(i64::from)));
    c.insert(
        "startup_delay_ms",
        i64c(it, |v| v.startup_delay_ms.map(i64::from)),
    );
    c.insert("stalls", i64c(it, |v| Some(i64::from(v.stalls))));
    c.insert("stall_ms", i64c(it, |v| Some(i64::from(v.stall_ms))));
    c.insert(
        "buffer_state",
        strc(it, |v| Some(buffer_state(v.buffer_state))),
    );
    structc(fields, it, c, "qoe.video.")
}

fn gaming_col(fields: &Fields, it: &[Option<&GamingQoe>]) -> Result<ArrayRef, ArrowError> {
    let mut c = Cols::with_capacity(16);
    c.insert("window_start_ms", i64c(it, |g| Some(g.window_start_ms)));
    c.insert("window_end_ms", i64c(it, |g| Some(g.window_end_ms)));
    c.insert("latency_avg_ms", f32c(it, |g| g.latency_avg_ms));
    c.insert("latency_min_ms", f32c(it, |g| g.latency_min_ms));
    c.insert("latency_max_ms", f32c(it, |g| g.latency_max_ms));
    c.insert("lag_spikes", i64c(it, |g| Some(i64::from(g.lag_spikes))));
    c.insert("jitter_ms", f32c(it, |g| g.jitter_ms));
    c.insert("loss_ratio", f32c(it, |g| g.loss_ratio));
    c.insert("tick_rate_hz", f32c(it, |g| g.tick_rate_hz));
    c.insert("tick_regularity", f32c(it, |g| g.tick_regularity));
    c.insert("choppy", boolc(it, |g| g.choppy));
    c.insert("bitrate_kbps", i64c(it, |g| g.bitrate_kbps.map(i64::from)));
    c.insert("frame_rate", f32c(it, |g| g.frame_rate));
    c.insert("height_px", i32c(it, |g| g.height_px.map(i32::from)));
    structc(fields, it, c, "qoe.gaming.")
}

fn conferencing_col(
    fields: &Fields,
    it: &[Option<&ConferencingQoe>],
) -> Result<ArrayRef, ArrowError> {
    let mut c = Cols::with_capacity(12);
    c.insert("window_start_ms", i64c(it, |q| Some(q.window_start_ms)));
    c.insert("window_end_ms", i64c(it, |q| Some(q.window_end_ms)));
    c.insert("jitter_ms", f32c(it, |q| q.jitter_ms));
    c.insert("loss_ratio", f32c(it, |q| q.loss_ratio));
    c.insert("frame_rate", f32c(it, |q| q.frame_rate));
    c.insert(
        "stutter_events",
        i64c(it, |q| Some(i64::from(q.stutter_events))),
    );
    c.insert("dropouts", i64c(it, |q| Some(i64::from(q.dropouts))));
    c.insert("mos", f32c(it, |q| q.mos));
    c.insert(
        "media",
        listc(it, list_item(fields, "media")?, |q| &q.media)?,
    );
    c.insert("streams", i64c(it, |q| Some(i64::from(q.streams))));
    structc(fields, it, c, "qoe.conferencing.")
}

fn qoe_col(fields: &Fields, it: &[Option<&Qoe>]) -> Result<ArrayRef, ArrowError> {
    let video: Vec<Option<&VideoQoe>> = it
        .iter()
        .map(|q| q.and_then(|q| q.video.as_ref()))
        .collect();
    let gaming: Vec<Option<&GamingQoe>> = it
        .iter()
        .map(|q| q.and_then(|q| q.gaming.as_ref()))
        .collect();
    let conf: Vec<Option<&ConferencingQoe>> = it
        .iter()
        .map(|q| q.and_then(|q| q.conferencing.as_ref()))
        .collect();
    let mut c = Cols::with_capacity(4);
    c.insert("video", video_col(struct_fields(fields, "video")?, &video)?);
    c.insert(
        "gaming",
        gaming_col(struct_fields(fields, "gaming")?, &gaming)?,
    );
    c.insert(
        "conferencing",
        conferencing_col(struct_fields(fields, "conferencing")?, &conf)?,
    );
    structc(fields, it, c, "qoe.")
}

/// Builds the `super_flows` batch of `recs` for `schema` (the table's Arrow schema). Fails when
/// a record does not fit (see [`check`]) or when the schema has a column this builder does not
/// know (the record model changed: this function must follow).
pub fn super_batch(schema: &SchemaRef, recs: &[&SuperFlow]) -> Result<RecordBatch, ArrowError> {
    for r in recs {
        check(r).map_err(|e| {
            ArrowError::InvalidArgumentError(format!("record {}: {e}", r.record_id.as_str()))
        })?;
    }
    let fields = schema.fields();
    let all: Vec<Option<&SuperFlow>> = recs.iter().map(|r| Some(*r)).collect();
    let it = all.as_slice();
    let mut c = Cols::with_capacity(12);
    c.insert(
        "schema_version",
        i32c(it, |r| Some(i32::from(r.schema_version))),
    );
    c.insert("record_id", strc(it, |r| Some(r.record_id.as_str())));
    c.insert(
        "enrichment_status",
        strc(it, |r| Some(match_status(r.enrichment_status))),
    );
    c.insert("app_type", strc(it, |r| Some(r.app_type.as_str())));
    c.insert("provider", strc(it, |r| r.provider.as_deref()));
    let flows: Vec<&FlowRecord> = recs.iter().map(|r| &*r.flow).collect();
    c.insert("flow", flow_col(struct_fields(fields, "flow")?, &flows)?);
    let apps: Vec<Option<&AppPlatform>> = recs.iter().map(|r| r.app.as_deref()).collect();
    c.insert("app", app_col(struct_fields(fields, "app")?, &apps)?);
    let stats: Vec<Option<&FlowStats>> = recs.iter().map(|r| r.stats.as_ref()).collect();
    c.insert("stats", stats_col(struct_fields(fields, "stats")?, &stats)?);
    let qoes: Vec<Option<&Qoe>> = recs.iter().map(|r| r.qoe.as_ref()).collect();
    c.insert("qoe", qoe_col(struct_fields(fields, "qoe")?, &qoes)?);
    let enr: Vec<Option<&schemas::Enrichment>> = recs.iter().map(|r| Some(&r.enrichment)).collect();
    let e = enr.as_slice();
    let mut ec = Cols::with_capacity(8);
    ec.insert("status", strc(e, |x| Some(match_status(x.status))));
    ec.insert("confidence", f32c(e, |x| Some(x.confidence)));
    ec.insert("tap", strc(e, |x| x.tap.as_deref()));
    ec.insert(
        "matched_tap_records",
        i64c(e, |x| Some(i64::from(x.matched_tap_records))),
    );
    ec.insert("key_match", strc(e, |x| Some(key_match(x.key_match))));
    ec.insert("router_tap_ratio", f32c(e, |x| x.router_tap_ratio));
    c.insert(
        "enrichment",
        structc(struct_fields(fields, "enrichment")?, e, ec, "enrichment.")?,
    );
    let columns = ordered(fields, c, "")?;
    RecordBatch::try_new(Arc::clone(schema), columns)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serde_name<T: serde::Serialize>(v: T) -> String {
        serde_json::to_value(v)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    }

    #[test]
    fn enum_names_are_the_serde_names() {
        for v in [
            MatchStatus::Matched,
            MatchStatus::Unmatched,
            MatchStatus::Partial,
        ] {
            assert_eq!(match_status(v), serde_name(v));
        }
        for v in [
            KeyMatch::None,
            KeyMatch::Canonical,
            KeyMatch::KeyWithoutScope,
            KeyMatch::Nat,
        ] {
            assert_eq!(key_match(v), serde_name(v));
        }
        for v in [
            DetectionMethod::Sni,
            DetectionMethod::Dns,
            DetectionMethod::HttpHost,
            DetectionMethod::TlsFingerprint,
            DetectionMethod::Rtp,
            DetectionMethod::Payload,
            DetectionMethod::Address,
            DetectionMethod::Port,
            DetectionMethod::Behaviour,
            DetectionMethod::Session,
            DetectionMethod::None,
        ] {
            assert_eq!(detection_method(v), serde_name(v));
        }
        for v in [
            BufferState::Unknown,
            BufferState::Startup,
            BufferState::Filling,
            BufferState::Steady,
            BufferState::Draining,
            BufferState::Stalled,
        ] {
            assert_eq!(buffer_state(v), serde_name(v));
        }
    }
}
