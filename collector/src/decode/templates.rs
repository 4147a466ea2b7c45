//! Template state of one exporter's observation domain (IPFIX) or source id (v9).
//!
//! netgauze-flow-pkt keeps templates in a map keyed by template id only, so the collector keeps its
//! own per (exporter address, observation domain): each template is a list of (information element,
//! length) resolved against netgauze's IE registry, and each record field is then decoded by
//! netgauze's per-element decoder. The raw bytes of every template record are kept too, so the
//! state can be persisted and parsed again at start-up.
//!
//! Framing templates here (rather than through netgauze's set parser) is what makes three things
//! right that netgauze 0.13 gets wrong on real exporters: NetFlow v9 field types ≥ 32768 are plain
//! 16-bit types, not enterprise elements (Cisco ASA NSEL, Palo Alto, nProbe); element ids the
//! registry does not know are kept as unknown elements instead of failing the template; and
//! variable-length encoding (RFC 7011 §7) applies to every element, not only strings.

use netgauze_flow_pkt::ie::{InformationElementTemplate, IE};
use netgauze_flow_pkt::FieldSpecifier;
use std::collections::{HashMap, HashSet, VecDeque};

/// RFC 7011 §7: a field length of 65535 means the length is carried in the record.
pub const VARLEN: u16 = 65535;

/// One field of a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spec {
    /// `None` for NetFlow v9 options scope fields (system, interface, ... scopes), which are skipped.
    pub ie: Option<IE>,
    pub len: u16,
    /// Direct decoder for this element at this length ([`super::fast`]), when there is one.
    pub fast: Option<super::fast::Fast>,
}

/// A decoding template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub options: bool,
    /// Scope fields first (options templates), then the other fields, in record order.
    pub specs: Vec<Spec>,
    pub scope_count: usize,
    /// Smallest possible record: fixed lengths plus one octet per variable-length field.
    pub min_len: usize,
}

/// Resolves a (PEN, id) against the registry; unknown elements stay unknown, not an error.
fn ie_of(pen: u32, id: u16) -> IE {
    IE::try_from((pen, id)).unwrap_or(IE::Unknown { pen, id })
}

/// Checks a field's length against the element's type (RFC 7011 §6.2: reduced-size encoding is
/// allowed, longer is not; variable length only for strings and octet arrays).
fn spec(ie: IE, len: u16) -> Result<Spec, String> {
    let plain = Spec {
        ie: Some(ie),
        len,
        fast: None,
    };
    if matches!(ie, IE::Unknown { .. }) {
        return Ok(plain);
    }
    if len == VARLEN && ie.length_range().is_none() {
        return Ok(plain);
    }
    FieldSpecifier::new(ie, len)
        .map(|_| Spec {
            fast: super::fast::select(ie, len),
            ..plain
        })
        .map_err(|e| format!("field {ie:?}: {e}"))
}

fn be16(b: &[u8], at: usize) -> Result<u16, String> {
    b.get(at..at + 2)
        .map(|x| u16::from_be_bytes([x[0], x[1]]))
        .ok_or_else(|| format!("template record truncated at byte {at}"))
}

/// Parses one template record (without its set header): RFC 7011 §3.4.1-3.4.2 for IPFIX,
/// RFC 3954 §5.2 and §6.1 for v9.
pub fn parse_template(proto: Proto, options: bool, rec: &[u8]) -> Result<Template, String> {
    let mut specs = Vec::new();
    let mut scope_count = 0usize;
    match proto {
        Proto::Ipfix => {
            let count = usize::from(be16(rec, 2)?);
            let mut p = 4;
            if options {
                scope_count = usize::from(be16(rec, 4)?);
                if scope_count > count {
                    return Err(format!(
                        "scope field count {scope_count} exceeds field count {count}"
                    ));
                }
                p = 6;
            }
            for _ in 0..count {
                let raw = be16(rec, p)?;
                let len = be16(rec, p + 2)?;
                let (pen, id) = if raw & 0x8000 != 0 {
                    let pen = rec
                        .get(p + 4..p + 8)
                        .map(|x| u32::from_be_bytes([x[0], x[1], x[2], x[3]]))
                        .ok_or_else(|| format!("enterprise number truncated at byte {}", p + 4))?;
                    p += 8;
                    (pen, raw & 0x7fff)
                } else {
                    p += 4;
                    (0, raw)
                };
                specs.push(spec(ie_of(pen, id), len)?);
            }
        }
        Proto::V9 if !options => {
            let count = usize::from(be16(rec, 2)?);
            for i in 0..count {
                let id = be16(rec, 4 + 4 * i)?;
                let len = be16(rec, 6 + 4 * i)?;
                specs.push(spec(ie_of(0, id), len)?);
            }
        }
        Proto::V9 => {
            let scope_len = usize::from(be16(rec, 2)?);
            let opt_len = usize::from(be16(rec, 4)?);
            let mut p = 6;
            while p + 4 <= 6 + scope_len {
                let len = be16(rec, p + 2)?;
                specs.push(Spec {
                    ie: None,
                    len,
                    fast: None,
                });
                scope_count += 1;
                p += 4;
            }
            p = 6 + scope_len;
            while p + 4 <= 6 + scope_len + opt_len {
                let id = be16(rec, p)?;
                let len = be16(rec, p + 2)?;
                specs.push(spec(ie_of(0, id), len)?);
                p += 4;
            }
        }
    }
    let min_len = specs
        .iter()
        .map(|s| {
            if s.len == VARLEN {
                1
            } else {
                usize::from(s.len)
            }
        })
        .sum();
    Ok(Template {
        options,
        specs,
        scope_count,
        min_len,
    })
}

/// Which protocol a domain speaks (an exporter may speak both on one address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Proto {
    V9,
    Ipfix,
}

/// A template as it arrived: kept for persistence and for the API.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RawTemplate {
    pub options: bool,
    /// The template record's bytes (without the set header).
    #[serde(with = "hex_bytes")]
    pub bytes: Vec<u8>,
    /// Receive time of the last (re)announcement, UTC ms.
    pub refreshed_ms: i64,
    /// Number of fields (scope fields included).
    pub field_count: u16,
}

/// A data set held because its template had not arrived.
#[derive(Debug, Clone)]
pub struct HeldSet {
    pub template_id: u16,
    /// The set's bytes, set header included.
    pub bytes: Vec<u8>,
    pub ctx: super::MessageCtx,
}

/// Sampling state learned from options data.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Sampling {
    /// Interval per sampler / selector id.
    pub by_sampler: HashMap<u64, u32>,
    /// Interval announced without a sampler id, or the last one announced (used for data records
    /// that carry no sampler id).
    pub default: Option<u32>,
}

/// State of one (exporter, domain).
#[derive(Debug, Default)]
pub struct DomainState {
    pub templates: HashMap<(Proto, u16), Template>,
    /// Templates that arrived but could not be used (e.g. a field length its element's type does
    /// not allow): their data sets are errors, not "waiting for a template".
    pub rejected: HashSet<(Proto, u16)>,
    pub raw: HashMap<(Proto, u16), RawTemplate>,
    pub held: VecDeque<HeldSet>,
    pub sampling: Sampling,
    /// systemInitTimeMilliseconds (IE 160), anchoring IPFIX flowStart/EndSysUpTime.
    pub system_init_ms: Option<i64>,
    /// Next expected sequence number, per protocol.
    pub next_sequence: Option<u32>,
}

impl DomainState {
    pub fn has_template(&self, proto: Proto, id: u16) -> bool {
        self.templates.contains_key(&(proto, id))
    }

    pub fn remove_template(&mut self, proto: Proto, id: u16) {
        self.templates.remove(&(proto, id));
        self.raw.remove(&(proto, id));
    }

    pub fn template_count(&self) -> usize {
        self.raw.len()
    }
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &[u8], s: S) -> Result<S::Ok, S::Error> {
        let mut out = String::with_capacity(b.len() * 2);
        for x in b {
            out.push_str(&format!("{x:02x}"));
        }
        s.serialize_str(&out)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = String::deserialize(d)?;
        if s.len() % 2 != 0 {
            return Err(serde::de::Error::custom("odd hex length"));
        }
        (0..s.len())
            .step_by(2)
            .map(|i| {
                s.get(i..i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| serde::de::Error::custom("bad hex digit"))
            })
            .collect()
    }
}
