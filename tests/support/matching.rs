//! Matching decoded records (`decode --format jsonl`) against tshark oracle records
//! (split out of decode_vs_tshark.rs).
use super::pmacct::norm_ip;
use super::tshark::{Field, OracleRecord};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Clone)]
pub struct Dec {
    pub src: Option<String>,
    pub dst: Option<String>,
    pub sport: Option<u64>,
    pub dport: Option<u64>,
    pub proto: Option<u64>,
    pub octets: Option<u64>,
    pub packets: Option<u64>,
    pub start: Option<i64>,
    pub end: Option<i64>,
    pub time_source: Option<String>,
    pub export_time: Option<i64>,
    pub raw: Value,
}

pub fn dec(v: &Value) -> Dec {
    let u = |k: &str| v.get(k).and_then(Value::as_u64);
    let i = |k: &str| v.get(k).and_then(Value::as_i64);
    let ip = |k: &str| v.get(k).and_then(Value::as_str).map(norm_ip);
    Dec {
        src: ip("src_addr"),
        dst: ip("dst_addr"),
        sport: u("src_port"),
        dport: u("dst_port"),
        proto: u("protocol"),
        octets: u("octets_exported"),
        packets: u("packets_exported"),
        // The decoder shifts times by clock_skew_ms (export_time - receive time) when it
        // corrects an exporter clock; tshark shows the exporter's own clock: undo the shift.
        start: i("flow_start_ms").map(|t| t + i("clock_skew_ms").unwrap_or(0)),
        end: i("flow_end_ms").map(|t| t + i("clock_skew_ms").unwrap_or(0)),
        time_source: v
            .get("time_source")
            .and_then(Value::as_str)
            .map(str::to_string),
        export_time: i("export_time_ms"),
        raw: v.clone(),
    }
}

pub const FIELDS: [&str; 9] = [
    "src_addr",
    "dst_addr",
    "src_port",
    "dst_port",
    "protocol",
    "octets_exported",
    "packets_exported",
    "flow_start_ms",
    "flow_end_ms",
];

/// Per-field comparison: Some(true/false) = compared, None = oracle cannot tell.
pub fn cmp(o: &OracleRecord, d: &Dec) -> [Option<bool>; 9] {
    let d_is_export_time = |_: Option<i64>| d.time_source.as_deref() == Some("export_time");
    fn eq<T: PartialEq + Clone>(f: &Field<T>, d: &Option<T>) -> Option<bool> {
        match f {
            Field::Val(v) => Some(v == d),
            Field::Unknown(_) => None,
        }
    }
    let src = match &o.src_addr {
        Field::Val(v) => Field::Val(v.as_deref().map(norm_ip)),
        Field::Unknown(r) => Field::Unknown(r),
    };
    let dst = match &o.dst_addr {
        Field::Val(v) => Field::Val(v.as_deref().map(norm_ip)),
        Field::Unknown(r) => Field::Unknown(r),
    };
    let tol = if o.fine_time { 1 } else { 0 };
    // Decoder defaults (documented, not tshark's): no time IEs at all -> both times =
    // export time with time_source "export_time"; start only (Cisco ASA IE 152) -> end = start.
    let t = |f: &Field<i64>, got: Option<i64>, is_end: bool| match (f, got) {
        (Field::Unknown(_), _) => None,
        (Field::Val(Some(a)), Some(b)) => Some((a - b).abs() <= tol),
        (Field::Val(None), Some(b)) if d_is_export_time(got) => Some(Some(b) == d.export_time),
        (Field::Val(None), Some(b)) if is_end && matches!(o.start_ms, Field::Val(Some(_))) => {
            Some(Some(b) == d.start)
        }
        (Field::Val(a), b) => Some(*a == b),
    };
    [
        eq(&src, &d.src),
        eq(&dst, &d.dst),
        eq(&o.src_port, &d.sport),
        eq(&o.dst_port, &d.dport),
        eq(&o.protocol, &d.proto),
        eq(&o.octets, &d.octets),
        eq(&o.packets, &d.packets),
        t(&o.start_ms, d.start, false),
        t(&o.end_ms, d.end, true),
    ]
}

fn show<T: std::fmt::Debug>(f: &Field<T>) -> String {
    match f {
        Field::Val(Some(v)) => format!("{v:?}"),
        Field::Val(None) => "null".into(),
        Field::Unknown(r) => format!("?({r})"),
    }
}

fn oracle_fields(o: &OracleRecord) -> [String; 9] {
    [
        show(&o.src_addr),
        show(&o.dst_addr),
        show(&o.src_port),
        show(&o.dst_port),
        show(&o.protocol),
        show(&o.octets),
        show(&o.packets),
        show(&o.start_ms),
        show(&o.end_ms),
    ]
}

pub struct Matched {
    pub unmatched_oracle: Vec<usize>,
    pub unmatched_dec: Vec<usize>,
    pub fields_compared: u64,
    pub not_compared: BTreeMap<&'static str, u64>,
}

/// Matches every tshark record to a distinct decoded record equal on all comparable fields.
pub fn match_records(or: &[OracleRecord], dr: &[Dec]) -> Matched {
    let mut used = vec![false; dr.len()];
    type Tuple = (Option<String>, Option<String>, Option<u64>, Option<u64>);
    let mut by_tuple: HashMap<Tuple, Vec<usize>> = HashMap::new();
    for (i, d) in dr.iter().enumerate() {
        by_tuple
            .entry((d.src.clone(), d.dst.clone(), d.sport, d.dport))
            .or_default()
            .push(i);
    }
    let mut m = Matched {
        unmatched_oracle: vec![],
        unmatched_dec: vec![],
        fields_compared: 0,
        not_compared: BTreeMap::new(),
    };
    for (oi, o) in or.iter().enumerate() {
        for (n, f) in [("time", &o.start_ms), ("time", &o.end_ms)] {
            if let Field::Unknown(r) = f {
                *m.not_compared
                    .entry(if n == "time" { r } else { n })
                    .or_default() += 1;
            }
        }
        let key = match (&o.src_addr, &o.dst_addr, &o.src_port, &o.dst_port) {
            (Field::Val(a), Field::Val(b), Field::Val(c), Field::Val(d)) => {
                Some((a.as_deref().map(norm_ip), b.as_deref().map(norm_ip), *c, *d))
            }
            _ => None,
        };
        let cands: Vec<usize> = match &key {
            Some(k) => by_tuple.get(k).cloned().unwrap_or_default(),
            None => (0..dr.len()).collect(),
        };
        let hit = cands
            .into_iter()
            .find(|&i| !used[i] && cmp(o, &dr[i]).iter().all(|x| *x != Some(false)));
        match hit {
            Some(i) => {
                used[i] = true;
                m.fields_compared += cmp(o, &dr[i]).iter().filter(|x| x.is_some()).count() as u64;
            }
            None => m.unmatched_oracle.push(oi),
        }
    }
    m.unmatched_dec = (0..dr.len()).filter(|&i| !used[i]).collect();
    m
}

/// Describes an unmatched tshark record with the closest unmatched decoded record.
pub fn explain(o: &OracleRecord, dr: &[Dec], free: &[usize]) -> String {
    let of = oracle_fields(o);
    let best = free
        .iter()
        .copied()
        .max_by_key(|&i| cmp(o, &dr[i]).iter().filter(|x| **x == Some(true)).count());
    let head = format!(
        "tshark frame {} exporter {} tmpl {:?}: {}",
        o.frame,
        o.exporter,
        o.template_id,
        FIELDS
            .iter()
            .zip(&of)
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    match best {
        None => format!("{head}\n      -> no decoded record left to match"),
        Some(i) => {
            let c = cmp(o, &dr[i]);
            let diffs: Vec<String> = FIELDS
                .iter()
                .enumerate()
                .filter(|(k, _)| c[*k] == Some(false))
                .map(|(k, n)| {
                    format!(
                        "{n}: tshark {} decoder {}",
                        of[k],
                        dr[i].raw.get(*n).unwrap_or(&Value::Null)
                    )
                })
                .collect();
            format!(
                "{head}\n      -> closest decoded record #{i} differs in: {}",
                diffs.join("; ")
            )
        }
    }
}
