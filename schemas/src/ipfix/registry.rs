//! The information elements of each record kind: built from the record's row-form shape (the tree
//! the Avro and Arrow schemas come from) and the fixed enterprise ids below.

use super::PEN;
use crate::kind::RecordKind;
use crate::published::shape::{Column, Source, StructShape, Ty};
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
    /// `octetArray`, variable length.
    OctetArray,
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
            String | OctetArray => return None,
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
            OctetArray => "octetArray",
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
    /// A session's QoE time series, packed ([`super::series`]) in an `octetArray` element.
    QoeSeries,
    /// A string enum of ours as an `unsigned8` code: the value's place in the list (the enum's
    /// declaration order; new values go last, so codes never change).
    EnumCode(&'static [(String, Option<String>)]),
    /// An IP address: the IPv4 element for IPv4, `v6_id` (an IANA element) for IPv6.
    Address {
        /// IANA id of the IPv6 element.
        v6_id: u16,
    },
    /// A plain value whose IANA element depends on the flow's address family (ICMP type and
    /// code, prefix lengths): `id` when the address at `of` is IPv4 (or absent), `v6_id` when it
    /// is IPv6.
    Family {
        /// IANA id of the IPv6 element.
        v6_id: u16,
        /// Path of the address field that decides.
        of: &'static str,
    },
    /// A string enum sent as the IANA element's numeric code (`flowDirection`: ingress 0,
    /// egress 1).
    Codes(&'static [(&'static str, u64)]),
    /// Not a field: the record's kind ([`kind_code`]), in every record, so a collector tells the
    /// kinds apart.
    RecordKind,
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

/// What a field sent as an IANA element needs besides its id and name.
#[derive(Debug, Clone, Copy)]
enum Alt {
    /// Nothing: the field's own type.
    None,
    /// An address: the IPv6 element's id and name.
    V6(u16, &'static str),
    /// The IPv6 element's id and name, chosen by the address family of the field at the path.
    Family(u16, &'static str, &'static str),
    /// A string enum sent as these codes.
    Codes(&'static [(&'static str, u64)]),
}

/// A field sent as an IANA element: (path, id, name, alternative).
type IanaField = (&'static str, u16, &'static str, Alt);

/// Fields of a tap record sent as IANA elements.
const TAP_IANA: &[IanaField] = &[
    (
        "key.client_addr",
        8,
        "sourceIPv4Address",
        Alt::V6(27, "sourceIPv6Address"),
    ),
    ("key.client_port", 7, "sourceTransportPort", Alt::None),
    (
        "key.server_addr",
        12,
        "destinationIPv4Address",
        Alt::V6(28, "destinationIPv6Address"),
    ),
    ("key.server_port", 11, "destinationTransportPort", Alt::None),
    ("key.protocol", 4, "protocolIdentifier", Alt::None),
    ("key.vlan", 58, "vlanId", Alt::None),
    ("first_seen_ms", 152, "flowStartMilliseconds", Alt::None),
    ("last_seen_ms", 153, "flowEndMilliseconds", Alt::None),
];

/// `flowDirection` (IE 61) codes.
const DIRECTION: &[(&str, u64)] = &[("ingress", 0), ("egress", 1)];

/// Fields of a super-flow sent as IANA elements: everything of the router's flow IANA has an
/// element for, so a plain collector reads the router part as it would the router's own export.
/// Counters go as the upscaled `octets`/`packets` in `octetDeltaCount`/`packetDeltaCount` (the
/// exported ones and the sampling interval in enterprise elements: an IANA `samplingInterval`
/// would make collectors that renormalise upscale twice).
const SUPER_IANA: &[IanaField] = &[
    (
        "flow.exporter",
        130,
        "exporterIPv4Address",
        Alt::V6(131, "exporterIPv6Address"),
    ),
    (
        "flow.observation_domain",
        149,
        "observationDomainId",
        Alt::None,
    ),
    (
        "flow.received_time_ms",
        258,
        "collectionTimeMilliseconds",
        Alt::None,
    ),
    (
        "flow.flow_start_ms",
        152,
        "flowStartMilliseconds",
        Alt::None,
    ),
    ("flow.flow_end_ms", 153, "flowEndMilliseconds", Alt::None),
    (
        "flow.src_addr",
        8,
        "sourceIPv4Address",
        Alt::V6(27, "sourceIPv6Address"),
    ),
    (
        "flow.dst_addr",
        12,
        "destinationIPv4Address",
        Alt::V6(28, "destinationIPv6Address"),
    ),
    ("flow.src_port", 7, "sourceTransportPort", Alt::None),
    ("flow.dst_port", 11, "destinationTransportPort", Alt::None),
    ("flow.protocol", 4, "protocolIdentifier", Alt::None),
    ("flow.direction", 61, "flowDirection", Alt::Codes(DIRECTION)),
    ("flow.octets", 1, "octetDeltaCount", Alt::None),
    ("flow.packets", 2, "packetDeltaCount", Alt::None),
    ("flow.tcp_flags", 6, "tcpControlBits", Alt::None),
    ("flow.tos", 5, "ipClassOfService", Alt::None),
    (
        "flow.icmp_type",
        176,
        "icmpTypeIPv4",
        Alt::Family(178, "icmpTypeIPv6", "flow.src_addr"),
    ),
    (
        "flow.icmp_code",
        177,
        "icmpCodeIPv4",
        Alt::Family(179, "icmpCodeIPv6", "flow.src_addr"),
    ),
    ("flow.input_interface", 10, "ingressInterface", Alt::None),
    ("flow.output_interface", 14, "egressInterface", Alt::None),
    ("flow.src_vlan", 58, "vlanId", Alt::None),
    ("flow.dst_vlan", 59, "postVlanId", Alt::None),
    ("flow.ingress_vrf", 234, "ingressVRFID", Alt::None),
    ("flow.egress_vrf", 235, "egressVRFID", Alt::None),
    ("flow.src_as", 16, "bgpSourceAsNumber", Alt::None),
    ("flow.dst_as", 17, "bgpDestinationAsNumber", Alt::None),
    (
        "flow.src_mask",
        9,
        "sourceIPv4PrefixLength",
        Alt::Family(29, "sourceIPv6PrefixLength", "flow.src_addr"),
    ),
    (
        "flow.dst_mask",
        13,
        "destinationIPv4PrefixLength",
        Alt::Family(30, "destinationIPv6PrefixLength", "flow.src_addr"),
    ),
    (
        "flow.next_hop",
        15,
        "ipNextHopIPv4Address",
        Alt::V6(62, "ipNextHopIPv6Address"),
    ),
    (
        "flow.bgp_next_hop",
        18,
        "bgpNextHopIPv4Address",
        Alt::V6(63, "bgpNextHopIPv6Address"),
    ),
    ("flow.flow_end_reason", 136, "flowEndReason", Alt::None),
];

/// Fields of an application session sent as IANA elements: the client is the source, the
/// session's span the flow times.
const SESSION_IANA: &[IanaField] = &[
    (
        "client_addr",
        8,
        "sourceIPv4Address",
        Alt::V6(27, "sourceIPv6Address"),
    ),
    ("start_ms", 152, "flowStartMilliseconds", Alt::None),
    ("last_ms", 153, "flowEndMilliseconds", Alt::None),
];

/// Fields of a tap record that are not sent: the decoder recomputes them.
pub const TAP_DERIVED: &[&str] = &["record_id", "key.flow_key"];

/// Fields of a record left out when they equal another field (which the decoder recomputes):
/// (field, the field it usually equals). The tap's `stats.digest` is its flow key; sent only when
/// it differs (17 octets a record saved).
pub fn same_as(kind: RecordKind) -> &'static [(&'static str, &'static str)] {
    match kind {
        RecordKind::Tap => &[("stats.digest", "key.flow_key")],
        _ => &[],
    }
}

/// Fields of a super-flow that are not sent: the decoder recomputes them (the record id and the
/// flow key from the flow, the top-level columns from `enrichment` and `app`).
pub const SUPER_DERIVED: &[&str] = &[
    "record_id",
    "enrichment_status",
    "app_type",
    "provider",
    "flow.flow_key",
];

/// Fields of an application session that are not sent: the decoder recomputes them.
pub const SESSION_DERIVED: &[&str] = &["record_id"];

/// Element id of the record-kind element ([`Form::RecordKind`]).
pub const RECORD_KIND_ID: u16 = 6;

/// Path of a session's QoE time series, sent packed ([`Form::QoeSeries`]).
pub const QOE_SERIES_PATH: &str = "qoe_series";

/// Enterprise element that carried a session's QoE series as JSON text until 2026-12; no encoder
/// sends it any more, and a decoder still reads it from older taps.
pub const LEGACY_QOE_SERIES_ID: u16 = 250;

/// Elements retired in 2026-12, by the path they carried: (path, old id). The series went from
/// JSON text to packed octets ([`LEGACY_QOE_SERIES_ID`]), the enums from their names as strings
/// to `unsigned8` codes ([`Form::EnumCode`]). No encoder sends them; a decoder reads them when a
/// record lacks the new element (a tap of before), and their ids are never given to another field.
pub const RETIRED: &[(&str, u16)] = &[
    (QOE_SERIES_PATH, LEGACY_QOE_SERIES_ID),
    ("state", 3),
    ("app.app_type", 10),
    ("app.detection_method", 20),
    ("qoe.video.buffer_state", 88),
    ("flow.flow_version", 202),
    ("flow.time_source", 206),
    ("enrichment.status", 220),
    ("enrichment.key_match", 224),
    ("app_type", 241),
];

/// The code of a record kind in the record-kind element: its place in [`RecordKind::ALL`]
/// (0 flow, 1 tap, 2 super-flow, 3 application session).
pub fn kind_code(kind: RecordKind) -> u8 {
    RecordKind::ALL.iter().position(|k| *k == kind).unwrap_or(0) as u8
}

/// Enterprise element ids ([`PEN`]) of every record kind's fields, by field path: a path names
/// the same element in every kind that has it (the tap's `app.provider` and the super-flow's are
/// one element). Fixed forever: a new field takes the next free id, a removed field's id is never
/// given to another. The registry test fails for a field missing here.
pub const IDS: &[(&str, u16)] = &[
    ("schema_version", 1),
    ("tap_id", 2),
    ("state", 280), // 3 until 2026-12 (as a string)
    ("seq", 4),
    ("session_id", 5),
    // 6: the record kind (RECORD_KIND_ID), not a field.
    // Application & user platform
    ("app.app_type", 281), // 10 until 2026-12 (as a string)
    ("app.provider", 11),
    ("app.app_name", 12),
    ("app.client_os", 13),
    ("app.client_agent", 14),
    ("app.sni", 15),
    ("app.dns_name", 16),
    ("app.http_host", 17),
    ("app.tls_fingerprint", 18),
    ("app.alpn", 19),
    ("app.detection_method", 282), // 20 until 2026-12 (as a string)
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
    ("qoe.video.buffer_state", 283), // 88 until 2026-12 (as a string)
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
    // Super-flow: the router's flow where IANA has no element
    ("flow.schema_version", 200),
    ("flow.record_id", 201),
    ("flow.flow_version", 284), // 202 until 2026-12 (as a string)
    ("flow.template_id", 203),
    ("flow.sequence_number", 204),
    ("flow.export_time_ms", 205),
    ("flow.time_source", 285), // 206 until 2026-12 (as a string)
    ("flow.clock_skew_ms", 207),
    ("flow.octets_exported", 208),
    ("flow.packets_exported", 209),
    ("flow.sampling_interval", 210),
    ("flow.extensions", 211),
    // the join's outcome
    ("enrichment.status", 286), // 220 until 2026-12 (as a string)
    ("enrichment.confidence", 221),
    ("enrichment.tap", 222),
    ("enrichment.matched_tap_records", 223),
    ("enrichment.key_match", 287), // 224 until 2026-12 (as a string)
    ("enrichment.router_tap_ratio", 225),
    // Application session
    ("provider", 240),
    ("app_type", 288), // 241 until 2026-12 (as a string)
    ("app_name", 242),
    ("client_os", 243),
    ("client_agent", 244),
    ("tap", 245),
    ("member_flows", 246),
    ("network.router_octets", 247),
    ("network.router_packets", 248),
    ("network.router_flow_records", 249),
    // 250 carried the series as JSON text until 2026-12 (retired: a decoder still reads it,
    // [`LEGACY_QOE_SERIES_ID`]); 251 carries it packed.
    ("qoe_series", 251),
    ("network.stats.digest", 260),
    ("network.stats.local_bytes", 261),
    ("network.stats.other_bytes", 262),
    ("network.stats.local_packets", 263),
    ("network.stats.other_packets", 264),
    ("network.stats.local_rate", 265),
    ("network.stats.other_rate", 266),
    ("network.stats.total_bytes", 267),
    ("network.stats.total_packets", 268),
    ("network.stats.tcp_resets", 269),
    ("network.stats.tcp_retrans", 270),
    ("network.stats.tcp_seq_errors", 271),
    ("network.stats.detection_packets", 272),
    ("network.stats.rtt_avg_ms", 273),
    ("network.stats.rtt_min_ms", 274),
    ("network.stats.rtt_max_ms", 275),
    ("network.stats.jitter_ms", 276),
    ("network.stats.loss_ratio", 277),
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

/// The elements of `kind`: the record-kind element first, then the fields in the order the
/// record declares them. Router flows have no registry: they travel in their router's own IPFIX.
pub fn registry(kind: RecordKind) -> Result<&'static [InfoElement], RegistryError> {
    type Built = OnceLock<Result<Vec<InfoElement>, RegistryError>>;
    static TAP: Built = OnceLock::new();
    static SUPER: Built = OnceLock::new();
    static SESSION: Built = OnceLock::new();
    let (cell, iana, derived) = match kind {
        RecordKind::Tap => (&TAP, TAP_IANA, TAP_DERIVED),
        RecordKind::SuperFlow => (&SUPER, SUPER_IANA, SUPER_DERIVED),
        RecordKind::AppSession => (&SESSION, SESSION_IANA, SESSION_DERIVED),
        RecordKind::Flow => {
            return Err(RegistryError {
                kind,
                problems: vec!["no IPFIX registry for router flows".into()],
            })
        }
    };
    cell.get_or_init(|| build(kind, iana, IDS, derived))
        .as_ref()
        .map(Vec::as_slice)
        .map_err(Clone::clone)
}

/// The kinds with a registry.
pub const KINDS: [RecordKind; 3] = [
    RecordKind::Tap,
    RecordKind::SuperFlow,
    RecordKind::AppSession,
];

fn build(
    kind: RecordKind,
    iana: &[IanaField],
    ids: &[(&str, u16)],
    derived: &[&str],
) -> Result<Vec<InfoElement>, RegistryError> {
    let mut out = vec![InfoElement {
        path: "record_kind".into(),
        pen: PEN,
        id: RECORD_KIND_ID,
        name: "snfRecordKind".into(),
        ty: IeType::Unsigned8,
        form: Form::RecordKind,
        nullable: false,
        unit: None,
        description: "Kind of the Super-NetFlow record: 1 tap record, 2 super-flow, \
                      3 application session."
            .into(),
        solid_parent: String::new(),
    }];
    let mut problems = Vec::new();
    let shape = crate::published::shape_of(kind);
    let mut all = Vec::new();
    leaves(shape, "", "", false, &mut |path, solid, col, nullable| {
        all.push(path.to_string());
        if derived.contains(&path) {
            return;
        }
        match element_of(path, col, iana, ids) {
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
    for (p, ..) in iana {
        if !out.iter().any(|e| e.path == *p) {
            problems.push(format!(
                "{p}: IANA element assigned but the record has no such field"
            ));
        }
    }
    for d in derived {
        if !all.iter().any(|p| p.as_str() == *d) {
            problems.push(format!(
                "{d}: listed as derived but the record has no such field"
            ));
        }
    }
    let mut seen = std::collections::HashSet::new();
    for e in &out {
        if !seen.insert((e.pen, e.id)) {
            problems.push(format!("{}: element id {} used twice", e.path, e.id));
        }
        if let Form::Address { v6_id } | Form::Family { v6_id, .. } = e.form {
            if !seen.insert((e.pen, v6_id)) {
                problems.push(format!("{}: element id {v6_id} used twice", e.path));
            }
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
    col: &'static Column,
    iana: &[IanaField],
    ids: &[(&str, u16)],
) -> Result<(u32, u16, String, IeType, Form), String> {
    let t = &col.ty;
    let typed = |t: &Ty| match t {
        Ty::List(_) if path == QOE_SERIES_PATH => Ok((IeType::OctetArray, Form::QoeSeries)),
        Ty::List(_) => Ok((IeType::String, Form::JsonList)),
        t => plain_type(t)
            .map(|ty| (ty, Form::Plain))
            .ok_or_else(|| format!("no IPFIX type for {t:?}")),
    };
    if let Some((_, id, name, alt)) = iana.iter().find(|(p, ..)| *p == path) {
        let (ty, form) = match (t, alt) {
            (Ty::Ip, Alt::V6(v6_id, _)) => (IeType::Ipv4Address, Form::Address { v6_id: *v6_id }),
            (Ty::List(_), _) => return Err("a list cannot be an IANA element".into()),
            (Ty::Enum(_), Alt::Codes(codes)) => (IeType::Unsigned8, Form::Codes(codes)),
            (t, Alt::Family(v6_id, _, of)) => (typed(t)?.0, Form::Family { v6_id: *v6_id, of }),
            (t, Alt::None) => typed(t)?,
            (t, alt) => return Err(format!("{alt:?} does not fit a {t:?}")),
        };
        return Ok((0, *id, (*name).to_string(), ty, form));
    }
    let (_, id) = ids.iter().find(|(p, _)| *p == path).ok_or(
        "no enterprise element id (add it to schemas/src/ipfix/registry.rs with the next free id)",
    )?;
    let (ty, form) = match t {
        Ty::Enum(e) if col.source == Source::Plain => {
            if e.values.len() > 256 {
                return Err(format!("{} enum values do not fit a code", e.values.len()));
            }
            (IeType::Unsigned8, Form::EnumCode(&e.values))
        }
        t => typed(t)?,
    };
    Ok((PEN, *id, camel(path), ty, form))
}

/// Walks the leaves of a shape: (path, solid parent, column, nullable — itself or any struct
/// above it).
fn leaves(
    s: &'static StructShape,
    prefix: &str,
    solid: &str,
    parent_nullable: bool,
    f: &mut dyn FnMut(&str, &str, &'static Column, bool),
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

/// The registries of every kind as CSV in the columns of IANA's
/// `ipfix-information-elements.csv` (enterprise elements only; the IANA ones are IANA's), plus
/// the PEN and the record field: one row per (record, field), so an element several kinds share
/// (`app.provider`) has a row for each.
pub fn csv() -> Result<String, RegistryError> {
    let mut s = String::from(
        "PEN,ElementID,Name,Abstract Data Type,Data Type Semantics,Status,Description,Units,\
         Record,Field\n",
    );
    for kind in KINDS {
        for e in registry(kind)? {
            if e.pen == 0 {
                continue;
            }
            let semantics = match e.ty {
                IeType::String
                | IeType::Boolean
                | IeType::DateTimeMilliseconds
                | IeType::OctetArray => "default",
                _ if e.form == Form::RecordKind || matches!(e.form, Form::EnumCode(_)) => {
                    "identifier"
                }
                _ if e.path.ends_with("_bytes")
                    || e.path.ends_with("_packets")
                    || e.path.ends_with("_octets") =>
                {
                    "totalCounter"
                }
                _ if e.path.contains("id") && e.ty == IeType::Unsigned64 => "identifier",
                _ => "quantity",
            };
            let mut desc = e.description.replace('"', "\"\"");
            if e.form == Form::JsonList {
                desc.push_str(" Sent as a JSON array in a string.");
            }
            if let Form::EnumCode(values) = e.form {
                let codes: Vec<String> = values
                    .iter()
                    .enumerate()
                    .map(|(i, (v, _))| format!("{i} {v}"))
                    .collect();
                desc.push_str(&format!(" Sent as a code: {}.", codes.join(", ")));
            }
            if e.form == Form::QoeSeries {
                desc.push_str(
                    " Sent packed (format in schemas/src/ipfix/series.rs); element 250 carried \
                     it as JSON text before.",
                );
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
    }
    Ok(s)
}

/// The IANA elements of `kind`'s fields, as `field → id name` lines (the guide lists them).
pub fn iana_lines(kind: RecordKind) -> Result<Vec<String>, RegistryError> {
    let table = match kind {
        RecordKind::Tap => TAP_IANA,
        RecordKind::SuperFlow => SUPER_IANA,
        RecordKind::AppSession => SESSION_IANA,
        RecordKind::Flow => &[],
    };
    registry(kind)?;
    Ok(table
        .iter()
        .map(|(path, id, name, alt)| match alt {
            Alt::V6(v6, v6_name) | Alt::Family(v6, v6_name, _) => {
                format!("`{path}`: {id} {name} / {v6} {v6_name}")
            }
            _ => format!("`{path}`: {id} {name}"),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(kind: RecordKind) -> &'static [InfoElement] {
        match registry(kind) {
            Ok(r) => r,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn every_kind_has_an_element_for_every_field() {
        let r = reg(RecordKind::Tap);
        assert!(r.len() > 50, "{} elements", r.len());
        assert!(r
            .iter()
            .any(|e| e.path == "key.client_addr" && e.pen == 0 && e.id == 8));
        assert!(r
            .iter()
            .any(|e| e.path == "app.alpn" && e.form == Form::JsonList));
        assert_eq!(camel("stats.rtt_avg_ms"), "snfStatsRttAvgMs");
        let s = reg(RecordKind::SuperFlow);
        for (path, id) in [
            ("flow.src_addr", 8),
            ("flow.octets", 1),
            ("flow.packets", 2),
            ("flow.flow_start_ms", 152),
            ("flow.src_vlan", 58),
        ] {
            assert!(
                s.iter().any(|e| e.path == path && e.pen == 0 && e.id == id),
                "{path}"
            );
        }
        let a = reg(RecordKind::AppSession);
        assert!(a.iter().any(|e| e.path == QOE_SERIES_PATH
            && e.form == Form::QoeSeries
            && e.ty == IeType::OctetArray
            && e.id != LEGACY_QOE_SERIES_ID));
        for r in [r, s, a] {
            assert_eq!(r[0].form, Form::RecordKind);
        }
        assert!(registry(RecordKind::Flow).is_err());
    }

    #[test]
    fn retired_ids_stay_retired_and_enums_travel_as_codes() {
        for (path, old) in RETIRED {
            assert!(!IDS.iter().any(|(_, id)| id == old), "{old} given again");
            assert!(IDS.iter().any(|(p, _)| p == path), "{path} has no element");
        }
        let t = reg(RecordKind::Tap);
        let state = t.iter().find(|e| e.path == "state");
        assert!(
            matches!(state.map(|e| (e.ty, e.form)), Some((IeType::Unsigned8, Form::EnumCode(v))) if v[0].0 == "start"),
            "{state:?}"
        );
        // Every enterprise string element left is free text, not an enum.
        for kind in KINDS {
            for e in reg(kind)
                .iter()
                .filter(|e| e.pen == PEN && e.ty == IeType::String)
            {
                assert!(!RETIRED.iter().any(|(p, _)| *p == e.path), "{}", e.path);
            }
        }
    }

    #[test]
    fn a_field_without_an_id_fails_the_registry() {
        let ids: Vec<(&str, u16)> = IDS
            .iter()
            .copied()
            .filter(|(p, _)| *p != "flow.template_id")
            .collect();
        let e = build(RecordKind::SuperFlow, SUPER_IANA, &ids, SUPER_DERIVED)
            .expect_err("a field has no id");
        assert!(
            e.problems
                .iter()
                .any(|p| p.starts_with("flow.template_id: no enterprise element id")),
            "{e}"
        );
    }

    #[test]
    fn ids_are_one_element_each_across_kinds() {
        // Every id is used by some kind, and a shared id means the same path and type.
        let mut by_id: std::collections::HashMap<u16, (&str, IeType)> = Default::default();
        for kind in KINDS {
            for e in reg(kind).iter().filter(|e| e.pen == PEN) {
                let (p, t) = *by_id.entry(e.id).or_insert((e.path.as_str(), e.ty));
                assert_eq!((p, t), (e.path.as_str(), e.ty), "id {} in {kind}", e.id);
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (p, id) in IDS {
            assert!(seen.insert(*id), "id {id} given twice");
            assert!(
                by_id.contains_key(id),
                "{p} ({id}) is used by no record kind"
            );
        }
    }
}
