//! Time fields of the tshark oracle (split out of tshark.rs): parsing tshark's relative
//! ("secs.fraction") and absolute ("Oct  5, 2009 06:06:07.492059999 UTC") times, and the
//! decoder's start/end precedence 152/150/154/156, then 22 (sysUpTime), then 158 (delta).
use super::tshark::{as_list, has, Field, Tmpl, REV_PEN};
use serde_json::{Map, Value};

/// Parses "secs.fraction" (9 digits) into ms, truncating.
pub fn secs_to_ms(t: &str) -> Option<i64> {
    let (a, b) = t.split_once('.').unwrap_or((t, "0"));
    let secs: i64 = a.parse().ok()?;
    let frac = format!("{b:0<3}");
    Some(secs * 1000 + frac[..3].parse::<i64>().ok()?)
}

/// Parses tshark's absolute time "Oct  5, 2009 06:06:07.492059999 UTC" into (ms, has sub-ms part).
pub fn abs_to_ms(t: &str) -> Option<(i64, bool)> {
    let p: Vec<&str> = t.split_whitespace().collect();
    if p.len() < 4 {
        return None;
    }
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m = months.iter().position(|x| *x == p[0])? as i64 + 1;
    let d: i64 = p[1].trim_end_matches(',').parse().ok()?;
    let y: i64 = p[2].parse().ok()?;
    let (hms, frac) = p[3].split_once('.').unwrap_or((p[3], "0"));
    let hms: Vec<i64> = hms
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    if hms.len() != 3 {
        return None;
    }
    // days from civil (Howard Hinnant)
    let yy = if m <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146097 + doe - 719468;
    let frac9 = format!("{frac:0<9}");
    let ms = (days * 86400 + hms[0] * 3600 + hms[1] * 60 + hms[2]) * 1000
        + frac9[..3].parse::<i64>().ok()?;
    Some((ms, frac9[3..].bytes().any(|c| c != b'0')))
}

pub(crate) struct Hdr {
    pub version: u8,
    pub unix_ms: Option<i64>, // export time in ms (v5 adds unix_nsecs)
    pub sysup_ms: Option<i64>,
    pub domain: String,
}

fn first_of(ies: &[u16], tmpl: Option<&Tmpl>) -> Option<u16> {
    ies.iter().copied().find(|&ie| has(tmpl, ie))
}

/// Time for one side (start or end) of a record.
pub(crate) fn time(
    rec: &Map<String, Value>,
    tmpl: Option<&Tmpl>,
    h: &Hdr,
    sysinit: Option<i64>,
    end: bool,
    fine: &mut bool,
) -> Field<i64> {
    let (abs_key, rel_key) = if end {
        ("cflow.abstimeend", "cflow.timeend")
    } else {
        ("cflow.abstimestart", "cflow.timestart")
    };
    let abs_ies: &[u16] = if end {
        &[153, 151, 155, 157]
    } else {
        &[152, 150, 154, 156]
    };
    let (rel_ie, delta_ie) = if end { (21u16, 159u16) } else { (22, 158) };
    let mut abs: Vec<&str> = Vec::new();
    let mut rel: Vec<&str> = Vec::new();
    let mut trees: Vec<&Map<String, Value>> = vec![rec];
    if let Some(t) = rec.get("cflow.timedelta_tree") {
        trees.extend(as_list(t).into_iter().filter_map(Value::as_object));
    }
    for t in trees {
        abs.extend(
            t.get(abs_key)
                .map(as_list)
                .unwrap_or_default()
                .into_iter()
                .filter_map(Value::as_str),
        );
        rel.extend(
            t.get(rel_key)
                .map(as_list)
                .unwrap_or_default()
                .into_iter()
                .filter_map(Value::as_str),
        );
    }
    let sysup_rel = |first: &str| -> Field<i64> {
        let Some(first) = secs_to_ms(first) else {
            return Field::Unknown("bad relative time");
        };
        if h.version == 10 {
            return match sysinit {
                Some(si) => Field::Val(Some(si + first)),
                None => Field::Unknown("IPFIX sysUpTime without systemInitTime"),
            };
        }
        match (h.unix_ms, h.sysup_ms) {
            (Some(u), Some(up)) => Field::Val(Some(
                u - (up as u32).wrapping_sub(first as u32) as i32 as i64,
            )),
            _ => Field::Unknown("no header times"),
        }
    };
    if h.version == 5 {
        return match rel.as_slice() {
            [one] => sysup_rel(one),
            _ => Field::Unknown("v5 time missing"),
        };
    }
    let ie = first_of(
        &[
            abs_ies[0], abs_ies[1], abs_ies[2], abs_ies[3], rel_ie, delta_ie,
        ],
        tmpl,
    );
    match ie {
        None => Field::Val(None),
        Some(ie) if ie == delta_ie => Field::Unknown("delta-microseconds time not shown by tshark"),
        Some(ie) if ie == rel_ie => {
            if !abs_ies.iter().any(|&i| has(tmpl, i)) {
                // quirk: IE 22/21 == 0 is displayed as absolute epoch 0
                rel.extend(
                    abs.iter()
                        .filter(|a| a.starts_with("Jan  1, 1970 00:00:00.000000000"))
                        .map(|_| "0.000000000"),
                );
            }
            let group = tmpl
                .map(|t| {
                    t.iter()
                        .filter(|&&(i, p)| i == rel_ie && (p == 0 || p == REV_PEN))
                        .count()
                })
                .unwrap_or(0);
            let k = tmpl.and_then(|t| {
                t.iter()
                    .filter(|&&(i, p)| i == rel_ie && (p == 0 || p == REV_PEN))
                    .position(|&(_, p)| p == 0)
            });
            match k {
                Some(k) if rel.len() == group => sysup_rel(rel[k]),
                _ => Field::Unknown("relative time count differs from template"),
            }
        }
        Some(ie) => {
            let t = tmpl
                .map(|t| {
                    t.iter()
                        .filter(|&&(i, p)| abs_ies.contains(&i) && (p == 0 || p == REV_PEN))
                        .copied()
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            let k = t.iter().position(|&(i, p)| i == ie && p == 0);
            match k {
                Some(k) if abs.len() == t.len() => match abs_to_ms(abs[k]) {
                    Some((ms, sub)) => {
                        *fine |= sub;
                        Field::Val(Some(ms))
                    }
                    None => Field::Unknown("bad absolute time"),
                },
                _ => Field::Unknown("absolute time count differs from template"),
            }
        }
    }
}
