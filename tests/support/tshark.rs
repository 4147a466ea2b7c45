//! The oracle: tshark's cflow dissection (`-T json --no-duplicate-keys`) flattened into
//! flow records using the same field precedence as the decoder.
//!
//! tshark JSON notes (4.0.17), found by dumping every case:
//! * v5 records are `pdu i/n` keys of the cflow layer; v9/IPFIX data sets are
//!   `FlowSet|Set N [id=X] (K flows)` with `Flow i` children and `cflow.template_frame`
//!   (the frame whose template was used). Template sets are `... (Data Template): ids` /
//!   `(Options Template): ids`; a set without a known template is `... [id=X]` holding
//!   `Data (n bytes), no template found`.
//! * Names: IE 8/12 `cflow.srcaddr/dstaddr`, 27/28 `cflow.srcaddrv6/dstaddrv6`, 7 and
//!   180/182 `cflow.srcport`, 11 and 181/183 `cflow.dstport`, 4 `cflow.protocol`,
//!   1/2 `cflow.octets/packets`, 85/86 `cflow.permanent_octets/packets`,
//!   23/24 `cflow.post_octets/post_packets`; the same name repeats (JSON array) for a
//!   repeated IE, for RFC 5103 reverse IEs (PEN 29305) and for the aliases above, so the
//!   array index is resolved from the template field order.
//! * Times: a `cflow.timedelta_tree` per start/end pair holds `cflow.timestart/timeend`
//!   (IE 22/21: raw sysUpTime ms shown as seconds) or `cflow.abstimestart/abstimeend`
//!   (IE 150-157, absolute). A lone start (Cisco ASA IE 152) is a record-level
//!   `cflow.abstimestart`. IE 22 = 0 is shown as `abstimestart` "Jan 1, 1970" (quirk).
//!   IE 160 systemInitTimeMilliseconds is `cflow.sys_init_time` (options data).
pub use super::tshark_time::{abs_to_ms, secs_to_ms};
use super::tshark_time::{time, Hdr};
use super::Case;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

#[derive(Debug, Clone, Default)]
pub struct OracleRecord {
    pub frame: u64,
    pub exporter: String,
    pub version: u8,
    pub template_id: Option<u16>,
    pub src_addr: Field<String>,
    pub dst_addr: Field<String>,
    pub src_port: Field<u64>,
    pub dst_port: Field<u64>,
    pub protocol: Field<u64>,
    pub octets: Field<u64>,
    pub packets: Field<u64>,
    pub start_ms: Field<i64>,
    pub end_ms: Field<i64>,
    /// true when a time came from sub-millisecond tshark precision (allow +-1 ms).
    pub fine_time: bool,
}

/// An oracle value: known (possibly absent = None) or not comparable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field<T> {
    Val(Option<T>),
    Unknown(&'static str),
}
impl<T> Default for Field<T> {
    fn default() -> Self {
        Field::Val(None)
    }
}

#[derive(Debug, Default)]
pub struct Oracle {
    pub msgs: u64,
    pub records: Vec<OracleRecord>,
    pub options_records: u64,
    pub templates: u64,
    pub options_templates: u64,
    pub sets_without_template: u64,
    pub malformed: u64,
    pub malformed_records: u64,
}

static CACHE: super::Cache<Oracle> = std::sync::OnceLock::new();

pub fn oracle(case: &Case) -> Result<std::sync::Arc<Oracle>, String> {
    super::cached(&CACHE, &case.name, || {
        let v = run_tshark(case)?;
        flatten(&v).map_err(|e| format!("{}: flattening tshark JSON: {e}", case.name))
    })
}

fn run_tshark(case: &Case) -> Result<Value, String> {
    let inputs = case.capture_inputs();
    let tmp = tempfile::tempdir().map_err(|e| format!("tempdir: {e}"))?;
    let file: PathBuf = if inputs.len() == 1 {
        inputs[0].clone()
    } else {
        let merged = tmp.path().join("merged.pcap");
        let out = Command::new("mergecap")
            .arg("-a")
            .arg("-w")
            .arg(&merged)
            .args(&inputs)
            .output()
            .map_err(|e| format!("mergecap: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mergecap failed: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        merged
    };
    let out = Command::new("tshark")
        .arg("-r")
        .arg(&file)
        .args(["-T", "json", "--no-duplicate-keys", "-d"])
        .arg(format!("udp.port=={},cflow", case.port))
        .output()
        .map_err(|e| format!("tshark: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "tshark failed on {}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("tshark JSON for {}: {e}", case.name))
}

fn s<'a>(o: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    o.get(k).and_then(Value::as_str)
}
pub(crate) fn as_list(v: &Value) -> Vec<&Value> {
    match v {
        Value::Array(a) => a.iter().collect(),
        other => vec![other],
    }
}
/// Numeric part after a prefix like "Set " / "Flow " / "pdu " for ordering keys.
fn ord_num(k: &str) -> u64 {
    k.split(|c: char| !c.is_ascii_digit())
        .find(|t| !t.is_empty())
        .and_then(|t| t.parse().ok())
        .unwrap_or(0)
}
fn sorted_keys<'a>(o: &'a Map<String, Value>, pfx: &[&str]) -> Vec<(&'a String, &'a Value)> {
    let mut v: Vec<_> = o
        .iter()
        .filter(|(k, _)| pfx.iter().any(|p| k.starts_with(p)))
        .collect();
    v.sort_by_key(|(k, _)| ord_num(k));
    v
}
fn count_key(v: &Value, key: &str) -> u64 {
    match v {
        Value::Object(o) => o
            .iter()
            .map(|(k, x)| if k == key { 1 } else { 0 } + count_key(x, key))
            .sum(),
        Value::Array(a) => a.iter().map(|x| count_key(x, key)).sum(),
        _ => 0,
    }
}

pub(crate) type Tmpl = Vec<(u16, u32)>; // (IE, PEN) in record order

fn parse_template(t: &Map<String, Value>) -> Tmpl {
    let mut scope = Vec::new();
    let mut normal = Vec::new();
    for (k, f) in t.iter().filter(|(k, _)| k.starts_with("Field (")) {
        for f in as_list(f) {
            let Some(f) = f.as_object() else { continue };
            let ty = [
                "cflow.template_field_type",
                "cflow.template_ipfix_field_type",
                "cflow.scope_field_type",
                "cflow.template_scope_field_type",
            ]
            .iter()
            .find_map(|n| s(f, n))
            .and_then(|x| x.parse::<u16>().ok())
            .unwrap_or(u16::MAX);
            let pen = s(f, "cflow.template_ipfix_field_pen")
                .and_then(|x| x.parse().ok())
                .unwrap_or(0);
            let entry = (ord_num(k), (ty, pen));
            if k.contains("[Scope]") {
                scope.push(entry)
            } else {
                normal.push(entry)
            }
        }
    }
    scope.sort_by_key(|e| e.0);
    normal.sort_by_key(|e| e.0);
    scope.into_iter().chain(normal).map(|e| e.1).collect()
}

pub(crate) const REV_PEN: u32 = 29305;
/// An IE repeated in one template (Cisco SRv6/IP-in-IP: outer header fields, then the same
/// IEs again for the inner packet): the LAST occurrence is used, as pmacct does (it maps the
/// first one to tunnel_* primitives); this keeps addresses, ports and protocol of one header.
pub const LAST_OCCURRENCE: bool = true;
/// Contract today: IE 8/12 whenever the template has them. Cisco "dual-stack" templates
/// (e.g. pmacct 4xx template 313) carry 8/12 AND 27/28 and send 0.0.0.0 in 8/12 for IPv6
/// flows; pmacct then reports the IPv6 addresses. Flip to true if the decoder adopts that.
pub const V6_WHEN_V4_UNSPECIFIED: bool = true;

/// Picks the value of tshark field `key` that belongs to the first PEN-0 occurrence of
/// `want` among the template fields producing `key` (`group`).
fn pick<'a>(
    rec: &'a Map<String, Value>,
    key: &str,
    tmpl: Option<&Tmpl>,
    group: &[u16],
    want: u16,
) -> Field<&'a str> {
    let Some(v) = rec.get(key) else {
        return Field::Val(None);
    };
    let vals: Vec<&str> = as_list(v).into_iter().filter_map(Value::as_str).collect();
    let Some(tmpl) = tmpl else {
        return if vals.len() == 1 {
            Field::Val(Some(vals[0]))
        } else {
            Field::Unknown("repeated v5 field")
        };
    };
    let pos: Vec<(u16, u32)> = tmpl
        .iter()
        .copied()
        .filter(|(ie, pen)| group.contains(ie) && (*pen == 0 || *pen == REV_PEN))
        .collect();
    let Some(k) = (if LAST_OCCURRENCE {
        pos.iter().rposition(|&(ie, pen)| ie == want && pen == 0)
    } else {
        pos.iter().position(|&(ie, pen)| ie == want && pen == 0)
    }) else {
        return Field::Val(None);
    };
    if pos.len() != vals.len() {
        return Field::Unknown("tshark value count differs from template");
    }
    Field::Val(Some(vals[k]))
}

pub(crate) fn has(tmpl: Option<&Tmpl>, ie: u16) -> bool {
    tmpl.is_some_and(|t| t.iter().any(|&(i, p)| i == ie && p == 0))
}

fn num(f: Field<&str>) -> Field<u64> {
    match f {
        Field::Val(Some(x)) => match x.parse() {
            Ok(n) => Field::Val(Some(n)),
            Err(_) => Field::Unknown("unparsable number"),
        },
        Field::Val(None) => Field::Val(None),
        Field::Unknown(r) => Field::Unknown(r),
    }
}
fn owned(f: Field<&str>) -> Field<String> {
    match f {
        Field::Val(v) => Field::Val(v.map(str::to_string)),
        Field::Unknown(r) => Field::Unknown(r),
    }
}

fn record(
    rec: &Map<String, Value>,
    tmpl: Option<&Tmpl>,
    h: &Hdr,
    sysinit: Option<i64>,
) -> OracleRecord {
    let v4 = tmpl.is_none() || has(tmpl, 8) || has(tmpl, 12);
    let v4_pair = (
        pick(rec, "cflow.srcaddr", tmpl, &[8], 8),
        pick(rec, "cflow.dstaddr", tmpl, &[12], 12),
    );
    let unspecified = |f: &Field<&str>| matches!(f, Field::Val(Some("0.0.0.0")));
    let v4 = v4
        && !(V6_WHEN_V4_UNSPECIFIED
            && unspecified(&v4_pair.0)
            && unspecified(&v4_pair.1)
            && has(tmpl, 27));
    let (sa, da) = if v4 {
        v4_pair
    } else {
        (
            pick(rec, "cflow.srcaddrv6", tmpl, &[27], 27),
            pick(rec, "cflow.dstaddrv6", tmpl, &[28], 28),
        )
    };
    let counter = |cands: &[(u16, &str)]| -> Field<u64> {
        if tmpl.is_none() {
            return num(pick(rec, cands[0].1, None, &[], 0));
        }
        match cands.iter().find(|(ie, _)| has(tmpl, *ie)) {
            None => Field::Val(None),
            Some((ie, key)) => match pick(rec, key, tmpl, &[*ie], *ie) {
                Field::Val(None) => Field::Unknown("tshark field name for counter IE unknown"),
                other => num(other),
            },
        }
    };
    let mut fine = false;
    let start_ms = time(rec, tmpl, h, sysinit, false, &mut fine);
    let end_ms = time(rec, tmpl, h, sysinit, true, &mut fine);
    OracleRecord {
        version: h.version,
        src_addr: owned(sa),
        dst_addr: owned(da),
        src_port: num(pick(rec, "cflow.srcport", tmpl, &[7, 180, 182], 7)),
        dst_port: num(pick(rec, "cflow.dstport", tmpl, &[11, 181, 183], 11)),
        protocol: num(pick(rec, "cflow.protocol", tmpl, &[4], 4)),
        octets: counter(&[
            (1, "cflow.octets"),
            (85, "cflow.permanent_octets"),
            (23, "cflow.post_octets"),
            (231, "cflow.initiator_octets"),
        ]),
        packets: counter(&[
            (2, "cflow.packets"),
            (86, "cflow.permanent_packets"),
            (24, "cflow.post_packets"),
            (298, "cflow.initiator_packets"),
        ]),
        start_ms,
        end_ms,
        fine_time: fine,
        ..Default::default()
    }
}

pub fn flatten(v: &Value) -> Result<Oracle, String> {
    let mut o = Oracle::default();
    let pkts = v.as_array().ok_or("top level is not an array")?;
    // (frame, template id) -> (is_options, fields)
    let mut templates: HashMap<(u64, u16), (bool, Tmpl)> = HashMap::new();
    // (exporter, domain) -> systemInitTime ms
    let mut sysinit: HashMap<(String, String), i64> = HashMap::new();
    for p in pkts {
        let layers = p
            .pointer("/_source/layers")
            .and_then(Value::as_object)
            .ok_or("packet without _source.layers")?;
        o.malformed += layers.get("_ws.malformed").map(|_| 1).unwrap_or(0);
        let Some(cflows) = layers.get("cflow") else {
            continue;
        };
        let frame: u64 = layers
            .get("frame")
            .and_then(|f| f.get("frame.number"))
            .and_then(Value::as_str)
            .and_then(|x| x.parse().ok())
            .ok_or("frame without number")?;
        let last_str = |layer: &str, key: &str| -> String {
            layers
                .get(layer)
                .map(as_list)
                .and_then(|l| {
                    l.last()
                        .and_then(|x| x.get(key))
                        .and_then(Value::as_str)
                        .map(str::to_string)
                })
                .unwrap_or_default()
        };
        let ip = match last_str("ipv6", "ipv6.src") {
            x if !x.is_empty() && !layers.contains_key("ip") => x,
            _ => last_str("ip", "ip.src"),
        };
        let exporter = format!("{}:{}", ip, last_str("udp", "udp.srcport"));
        for c in as_list(cflows) {
            let c = c.as_object().ok_or("cflow layer is not an object")?;
            o.msgs += 1;
            let version: u8 = s(c, "cflow.version")
                .and_then(|x| x.parse().ok())
                .ok_or("cflow.version missing")?;
            let ts = c.get("cflow.timestamp_tree").and_then(Value::as_object);
            let tsn = |k: &str| ts.and_then(|t| s(t, k)).and_then(|x| x.parse::<i64>().ok());
            let unix_ms = match version {
                10 => tsn("cflow.exporttime").map(|x| x * 1000),
                5 => tsn("cflow.unix_secs")
                    .map(|x| x * 1000 + tsn("cflow.unix_nsecs").unwrap_or(0) / 1_000_000),
                _ => tsn("cflow.unix_secs").map(|x| x * 1000),
            };
            let h = Hdr {
                version,
                unix_ms,
                sysup_ms: s(c, "cflow.sysuptime").and_then(secs_to_ms),
                domain: s(c, "cflow.od_id")
                    .or(s(c, "cflow.source_id"))
                    .unwrap_or("")
                    .to_string(),
            };
            let dom = (exporter.clone(), h.domain.clone());
            for (_, pdu) in sorted_keys(c, &["pdu "]) {
                let pdu = pdu.as_object().ok_or("pdu is not an object")?;
                let mut r = record(pdu, None, &h, None);
                r.frame = frame;
                r.exporter = exporter.clone();
                o.records.push(r);
            }
            for (label, set) in sorted_keys(c, &["FlowSet ", "Set "]) {
                let set = set.as_object().ok_or("set is not an object")?;
                let is_opt = label.contains("(Options Template)");
                if is_opt || label.contains("(Data Template)") {
                    for (k, t) in set.iter().filter(|(k, _)| {
                        k.starts_with("Template (") || k.starts_with("Options Template (")
                    }) {
                        for t in as_list(t) {
                            let t = t.as_object().ok_or("template is not an object")?;
                            if is_opt || k.starts_with("Options") {
                                o.options_templates += 1
                            } else {
                                o.templates += 1
                            }
                            if let Some(id) = s(t, "cflow.template_id").and_then(|x| x.parse().ok())
                            {
                                templates.insert((frame, id), (is_opt, parse_template(t)));
                            }
                        }
                    }
                    continue;
                }
                if set
                    .keys()
                    .any(|k| k.starts_with("Data (") && k.contains("no template found"))
                {
                    o.sets_without_template += 1;
                    continue;
                }
                let Some(tf) = s(set, "cflow.template_frame").and_then(|x| x.parse::<u64>().ok())
                else {
                    continue;
                };
                let id: u16 = s(set, "cflow.flowset_id")
                    .and_then(|x| x.parse().ok())
                    .ok_or("data set without flowset_id")?;
                let (opt, tmpl) = templates.get(&(tf, id)).cloned().ok_or_else(|| {
                    format!("frame {frame}: template {id} of frame {tf} not seen")
                })?;
                for (_, rec) in sorted_keys(set, &["Flow "]) {
                    for rec in as_list(rec) {
                        let rec = rec.as_object().ok_or("Flow is not an object")?;
                        if rec.contains_key("_ws.malformed") {
                            o.malformed_records += 1;
                            continue;
                        }
                        if let Some(si) = s(rec, "cflow.sys_init_time").and_then(abs_to_ms) {
                            sysinit.insert(dom.clone(), si.0);
                        }
                        if opt {
                            o.options_records += 1;
                            continue;
                        }
                        let mut r = record(rec, Some(&tmpl), &h, sysinit.get(&dom).copied());
                        r.frame = frame;
                        r.exporter = exporter.clone();
                        r.template_id = Some(id);
                        o.records.push(r);
                    }
                }
            }
        }
        let _ = count_key;
    }
    Ok(o)
}
