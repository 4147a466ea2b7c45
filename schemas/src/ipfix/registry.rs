//! The information elements of each record kind: built from the record's row-form shape (the tree
//! the Avro and Arrow schemas come from) and the fixed enterprise ids below.

use super::PEN;
use crate::kind::RecordKind;
use crate::published::shape::{Column, StructShape, Ty};
use std::sync::OnceLock;

/// IPFIX abstract data types used by the registry (RFC 7012 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IeType {
    /// `unsigned8`.
    Unsigned8,
    /// `unsigned16`.
    Unsigned16,
    /// `unsigned32`.
    Unsigned32,
    /// `unsigned64`.
    Unsigned64,
    /// `signed8`.
    Signed8,
    /// `signed16`.
    Signed16,
    /// `signed32`.
    Signed32,
    /// `signed64`.
    Signed64,
    /// `float32`.
    Float32,
    /// `float64`.
    Float64,
    /// `boolean` (1 true, 2 false).
    Boolean,
    /// `string`, variable length, UTF-8.
    String,
    /// `dateTimeMilliseconds`.
    DateTimeMilliseconds,
    /// `ipv4Address`.
    Ipv4Address,
    /// `ipv6Address`.
    Ipv6Address,
}

impl IeType {
    /// Encoded length; `None` for variable-length types.
    pub fn length(self) -> Option<u16> {
        use IeType::*;
        Some(match self {
            Unsigned8 | Signed8 | Boolean => 1,
            Unsigned16 | Signed16 => 2,
            Unsigned32 | Signed32 | Float32 | Ipv4Address => 4,
            Unsigned64 | Signed64 | Float64 | DateTimeMilliseconds => 8,
            Ipv6Address => 16,
            String => return None,
        })
    }

    /// The RFC 7012 name.
    pub fn name(self) -> &'static str {
        use IeType::*;
        match self {
            Unsigned8 => "unsigned8",
            Unsigned16 => "unsigned16",
            Unsigned32 => "unsigned32",
            Unsigned64 => "unsigned64",
            Signed8 => "signed8",
            Signed16 => "signed16",
            Signed32 => "signed32",
            Signed64 => "signed64",
            Float32 => "float32",
            Float64 => "float64",
            Boolean => "boolean",
            String => "string",
            DateTimeMilliseconds => "dateTimeMilliseconds",
            Ipv4Address => "ipv4Address",
            Ipv6Address => "ipv6Address",
        }
    }
}

/// How a field's JSON value is written into its element(s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// The JSON value as the element's type.
    Plain,
    /// A list, as JSON text in a `string` element.
    JsonList,
    /// An IP address: the IPv4 element for IPv4, `v6_id` (an IANA element) for IPv6.
    Address {
        /// IANA id of the IPv6 element.
        v6_id: u16,
    },
}

/// One information element: a leaf field of a record and where it goes.
#[derive(Debug, Clone, PartialEq)]
pub struct InfoElement {
    /// Path of the field in the record's JSON form, dot separated (`stats.rtt_avg_ms`).
    pub path: String,
    /// Private enterprise number: [`PEN`], or 0 for IANA elements.
    pub pen: u32,
    /// Element id (without the enterprise bit).
    pub id: u16,
    /// Element name: the IANA name, or `snf` + the path in camel case for enterprise elements.
    pub name: String,
    /// Abstract data type.
    pub ty: IeType,
    /// How the value is written.
    pub form: Form,
    /// The field can be absent (`null`): then the element is left out of the record.
    pub nullable: bool,
    /// Unit, as the field guide gives it.
    pub unit: Option<&'static str>,
    /// The field's description (its doc comment).
    pub description: String,
    /// The longest prefix of `path`'s parent structs that are never `null` (`qoe` for
    /// `qoe.video.stalls`): a decoder creates these objects even when no element is present.
    pub solid_parent: String,
}

/// A field sent as an IANA element: (path, id, name, IPv6 id and name for addresses).
type IanaField = (&'static str, u16, &'static str, Option<(u16, &'static str)>);

/// Fields sent as IANA elements.
const TAP_IANA: &[IanaField] = &[
    (
        "key.client_addr",
        8,
        "sourceIPv4Address",
        Some((27, "sourceIPv6Address")),
    ),
    ("key.client_port", 7, "sourceTransportPort", None),
    (
        "key.server_addr",
        12,
        "destinationIPv4Address",
        Some((28, "destinationIPv6Address")),
    ),
    ("key.server_port", 11, "destinationTransportPort", None),
    ("key.protocol", 4, "protocolIdentifier", None),
    ("key.vlan", 58, "vlanId", None),
    ("first_seen_ms", 152, "flowStartMilliseconds", None),
    ("last_seen_ms", 153, "flowEndMilliseconds", None),
];

/// Fields of a tap record that are not sent: the decoder recomputes them.
pub const TAP_DERIVED: &[&str] = &["record_id", "key.flow_key"];

/// Enterprise element ids of the tap record's fields ([`PEN`]). Fixed forever: a new field takes
/// the next free id, a removed field's id is never given to another. The registry test fails for a
/// field missing here.
pub const TAP_IDS: &[(&str, u16)] = &[
    ("schema_version", 1),
    ("tap_id", 2),
    ("state", 3),
    ("seq", 4),
    ("session_id", 5),
    // Application & user platform
    ("app.app_type", 10),
    ("app.provider", 11),
    ("app.app_name", 12),
    ("app.client_os", 13),
    ("app.client_agent", 14),
    ("app.sni", 15),
    ("app.dns_name", 16),
    ("app.http_host", 17),
    ("app.tls_fingerprint", 18),
    ("app.alpn", 19),
    ("app.detection_method", 20),
    ("app.confidence", 21),
    ("app.detection_packets", 22),
    // Network QoS
    ("stats.digest", 40),
    ("stats.local_bytes", 41),
    ("stats.other_bytes", 42),
    ("stats.local_packets", 43),
    ("stats.other_packets", 44),
    ("stats.local_rate", 45),
    ("stats.other_rate", 46),
    ("stats.total_bytes", 47),
    ("stats.total_packets", 48),
    ("stats.tcp_resets", 49),
    ("stats.tcp_retrans", 50),
    ("stats.tcp_seq_errors", 51),
    ("stats.detection_packets", 52),
    ("stats.rtt_avg_ms", 53),
    ("stats.rtt_min_ms", 54),
    ("stats.rtt_max_ms", 55),
    ("stats.jitter_ms", 56),
    ("stats.loss_ratio", 57),
    // Application QoE: video
    ("qoe.video.window_start_ms", 80),
    ("qoe.video.window_end_ms", 81),
    ("qoe.video.resolution", 82),
    ("qoe.video.height_px", 83),
    ("qoe.video.bitrate_kbps", 84),
    ("qoe.video.startup_delay_ms", 85),
    ("qoe.video.stalls", 86),
    ("qoe.video.stall_ms", 87),
    ("qoe.video.buffer_state", 88),
    // gaming
    ("qoe.gaming.window_start_ms", 100),
    ("qoe.gaming.window_end_ms", 101),
    ("qoe.gaming.latency_avg_ms", 102),
    ("qoe.gaming.latency_min_ms", 103),
    ("qoe.gaming.latency_max_ms", 104),
    ("qoe.gaming.lag_spikes", 105),
    ("qoe.gaming.jitter_ms", 106),
    ("qoe.gaming.loss_ratio", 107),
    ("qoe.gaming.tick_rate_hz", 108),
    ("qoe.gaming.tick_regularity", 109),
    ("qoe.gaming.choppy", 110),
    ("qoe.gaming.bitrate_kbps", 111),
    ("qoe.gaming.frame_rate", 112),
    ("qoe.gaming.height_px", 113),
    // conferencing
    ("qoe.conferencing.window_start_ms", 120),
    ("qoe.conferencing.window_end_ms", 121),
    ("qoe.conferencing.jitter_ms", 122),
    ("qoe.conferencing.loss_ratio", 123),
    ("qoe.conferencing.frame_rate", 124),
    ("qoe.conferencing.stutter_events", 125),
    ("qoe.conferencing.dropouts", 126),
    ("qoe.conferencing.mos", 127),
    ("qoe.conferencing.media", 128),
    ("qoe.conferencing.streams", 129),
];

/// What is wrong with a registry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("IPFIX registry of {kind}: {problems:?}")]
pub struct RegistryError {
    /// Record kind.
    pub kind: RecordKind,
    /// Every problem found (a field without an id, a type without an IPFIX form, ...).
    pub problems: Vec<String>,
}

/// The elements of `kind`, in the order the record's fields are declared. Only the tap record has
/// a registry so far.
pub fn registry(kind: RecordKind) -> Result<&'static [InfoElement], RegistryError> {
    static TAP: OnceLock<Result<Vec<InfoElement>, RegistryError>> = OnceLock::new();
    match kind {
        RecordKind::Tap => TAP
            .get_or_init(|| build(kind, TAP_IANA, TAP_IDS, TAP_DERIVED))
            .as_ref()
            .map(Vec::as_slice)
            .map_err(Clone::clone),
        other => Err(RegistryError {
            kind: other,
            problems: vec!["no IPFIX registry for this record kind".into()],
        }),
    }
}

fn build(
    kind: RecordKind,
    iana: &[IanaField],
    ids: &[(&str, u16)],
    derived: &[&str],
) -> Result<Vec<InfoElement>, RegistryError> {
    let mut out = Vec::new();
    let mut problems = Vec::new();
    let shape = crate::published::shape_of(kind);
    leaves(shape, "", "", false, &mut |path, solid, col, nullable| {
        if derived.contains(&path) {
            return;
        }
        match element_of(path, &col.ty, iana, ids) {
            Ok((pen, id, name, ty, form)) => out.push(InfoElement {
                path: path.to_string(),
                pen,
                id,
                name,
                ty,
                form,
                nullable,
                unit: col.unit.map(|u| u.label),
                description: col.description.clone().unwrap_or_default(),
                solid_parent: solid.to_string(),
            }),
            Err(p) => problems.push(format!("{path}: {p}")),
        }
    });
    for (p, _) in ids {
        if !out.iter().any(|e| e.path == *p) {
            problems.push(format!("{p}: id assigned but the record has no such field"));
        }
    }
    let mut seen = std::collections::HashSet::new();
    for e in &out {
        if !seen.insert((e.pen, e.id)) {
            problems.push(format!("{}: element id {} used twice", e.path, e.id));
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(RegistryError { kind, problems })
    }
}

/// Where the field at `path` of type `t` goes: (PEN, id, name, type, form).
fn element_of(
    path: &str,
    t: &Ty,
    iana: &[IanaField],
    ids: &[(&str, u16)],
) -> Result<(u32, u16, String, IeType, Form), String> {
    let typed = |t: &Ty| match t {
        Ty::List(_) => Ok((IeType::String, Form::JsonList)),
        t => plain_type(t)
            .map(|ty| (ty, Form::Plain))
            .ok_or_else(|| format!("no IPFIX type for {t:?}")),
    };
    if let Some((_, id, name, v6)) = iana.iter().find(|(p, ..)| *p == path) {
        let (ty, form) = match (t, v6) {
            (Ty::Ip, Some((v6_id, _))) => (IeType::Ipv4Address, Form::Address { v6_id: *v6_id }),
            (Ty::List(_), _) => return Err("a list cannot be an IANA element".into()),
            (t, None) => typed(t)?,
            (t, Some(_)) => return Err(format!("IPv6 alternative on a non-address {t:?}")),
        };
        return Ok((0, *id, (*name).to_string(), ty, form));
    }
    let (_, id) = ids.iter().find(|(p, _)| *p == path).ok_or(
        "no enterprise element id (add it to schemas/src/ipfix/registry.rs with the next free id)",
    )?;
    let (ty, form) = typed(t)?;
    Ok((PEN, *id, camel(path), ty, form))
}

/// Walks the leaves of a shape: (path, solid parent, column, nullable — itself or any struct
/// above it).
fn leaves(
    s: &StructShape,
    prefix: &str,
    solid: &str,
    parent_nullable: bool,
    f: &mut dyn FnMut(&str, &str, &Column, bool),
) {
    for c in &s.columns {
        let path = if prefix.is_empty() {
            c.json_name.clone()
        } else {
            format!("{prefix}.{}", c.json_name)
        };
        match &c.ty {
            Ty::Struct(inner) => {
                let nullable = parent_nullable || c.nullable;
                let solid = if nullable { solid } else { path.as_str() };
                leaves(inner, &path, solid, nullable, f)
            }
            _ => f(&path, solid, c, parent_nullable || c.nullable),
        }
    }
}

fn plain_type(t: &Ty) -> Option<IeType> {
    Some(match t {
        Ty::Bool => IeType::Boolean,
        Ty::Int { format, .. } => match format.as_str() {
            "uint8" => IeType::Unsigned8,
            "uint16" => IeType::Unsigned16,
            "uint32" => IeType::Unsigned32,
            "uint64" | "uint" => IeType::Unsigned64,
            "int8" => IeType::Signed8,
            "int16" => IeType::Signed16,
            "int32" => IeType::Signed32,
            "int64" | "int" => IeType::Signed64,
            _ => return None,
        },
        Ty::Float32 => IeType::Float32,
        Ty::Float64 => IeType::Float64,
        Ty::String | Ty::Enum(_) => IeType::String,
        Ty::Timestamp => IeType::DateTimeMilliseconds,
        Ty::Ip | Ty::Struct(_) | Ty::List(_) | Ty::Json => return None,
    })
}

/// `snf` + the path in camel case: `stats.rtt_avg_ms` → `snfStatsRttAvgMs`.
fn camel(path: &str) -> String {
    let mut s = String::from("snf");
    for part in path.split(['.', '_']) {
        let mut c = part.chars();
        if let Some(first) = c.next() {
            s.extend(first.to_uppercase());
            s.push_str(c.as_str());
        }
    }
    s
}

/// The registry of `kind` as CSV in the columns of IANA's `ipfix-information-elements.csv`
/// (enterprise elements only; the IANA ones are IANA's), plus the PEN and the record field.
pub fn csv(kind: RecordKind) -> Result<String, RegistryError> {
    let mut s = String::from(
        "PEN,ElementID,Name,Abstract Data Type,Data Type Semantics,Status,Description,Units,\
         Record,Field\n",
    );
    for e in registry(kind)? {
        if e.pen == 0 {
            continue;
        }
        let semantics = match e.ty {
            IeType::String | IeType::Boolean | IeType::DateTimeMilliseconds => "default",
            _ if e.path.ends_with("_bytes") || e.path.ends_with("_packets") => "totalCounter",
            _ if e.path.contains("id") && e.ty == IeType::Unsigned64 => "identifier",
            _ => "quantity",
        };
        let mut desc = e.description.replace('"', "\"\"");
        if e.form == Form::JsonList {
            desc.push_str(" Sent as a JSON array in a string.");
        }
        s.push_str(&format!(
            "{},{},{},{},{},current,\"{}\",{},{},{}\n",
            e.pen,
            e.id,
            e.name,
            e.ty.name(),
            semantics,
            desc,
            e.unit.map(|u| format!("\"{u}\"")).unwrap_or_default(),
            kind.table_name(),
            e.path
        ));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tap_registry_covers_every_field() {
        let r = match registry(RecordKind::Tap) {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        };
        assert!(r.len() > 50, "{} elements", r.len());
        assert!(r
            .iter()
            .any(|e| e.path == "key.client_addr" && e.pen == 0 && e.id == 8));
        assert!(r
            .iter()
            .any(|e| e.path == "app.alpn" && e.form == Form::JsonList));
        assert_eq!(camel("stats.rtt_avg_ms"), "snfStatsRttAvgMs");
    }

    #[test]
    fn other_kinds_have_no_registry_yet() {
        assert!(registry(RecordKind::Flow).is_err());
    }
}
