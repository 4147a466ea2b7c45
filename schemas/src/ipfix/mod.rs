//! IPFIX for Super-NetFlow's own records: the enterprise information elements that carry tap
//! records, super-flows and application sessions to IPFIX collectors, an encoder of export
//! messages, the decoding back into records, and the sockets that send the messages
//! ([`transport`], shared by the tap's export and the mediator's re-export).
//!
//! # How a record becomes IPFIX
//! Every leaf field of a record kind's row form (the same tree the Avro and Arrow schemas are
//! built from, so the mapping cannot drift from the types) is one information element:
//!
//! - every field IANA has an element for uses it, so a plain collector reads it: the tap's and the
//!   session's endpoints and times (`sourceIPv4Address` 8 / `sourceIPv6Address` 27 for the client,
//!   `destinationIPv4Address` 12 / `destinationIPv6Address` 28 for the server, ports 7 and 11,
//!   `protocolIdentifier` 4, `vlanId` 58, `flowStartMilliseconds` 152 and `flowEndMilliseconds`
//!   153), and the whole router part of a super-flow (addresses, ports, protocol,
//!   `octetDeltaCount` 1 / `packetDeltaCount` 2 as upscaled, times, interfaces, VLANs, VRFs, AS
//!   numbers, next hops, ICMP, TCP flags, ToS, direction, end reason, exporter, domain);
//! - every other field is an enterprise element of [`PEN`] whose id is fixed in
//!   [`registry::IDS`] by field path — one table for all kinds, so a path shared by several kinds
//!   (`app.provider`) is one element (ids are never reused; a new field takes the next free one);
//! - every record starts with the record-kind element (`snfRecordKind`, id 6: 1 tap, 2
//!   super-flow, 3 session), so a collector tells the kinds apart ([`decode::record_kind`]);
//! - fields derived from others are not sent (`record_id`, flow keys, a super-flow's top-level
//!   columns): the decoder recomputes them, which also checks the record arrived whole.
//!
//! Types: integers keep their width (`unsigned8`..`unsigned64`, `signed*`), `f32`/`f64` are
//! `float32`/`float64`, `bool` is `boolean`, UTC milliseconds are `dateTimeMilliseconds`, strings and
//! enums are variable-length `string`s, and lists are variable-length strings holding the list as
//! JSON text (`["h2","http/1.1"]`) — exact, and readable in tshark — except a session's QoE time
//! series, packed into an `octetArray` ([`series`]: ~20 bytes a sample instead of ~300 as JSON).
//!
//! An absent value (`null`) is an element left out of the record: a record's template is the set
//! of elements it has, so records with different sets use different templates
//! ([`encode::Encoder`] allocates and (re)sends them).
//!
//! An empty QoE block of a super-flow (`qoe` present with no sub-block) travels as absent, and a
//! router flow's start or end alone comes back as both (the collector fills the other), so
//! neither survives the trip; the join emits neither.
//!
//! The registry is published as `schemas/published/ipfix_enterprise_ies.csv` in the column layout
//! of IANA's `ipfix-information-elements.csv`.

pub mod decode;
pub mod encode;
pub mod registry;
pub mod series;
pub mod transport;

/// Private enterprise number of Super-NetFlow's elements. The project has no PEN of its own yet:
/// 32473 is the number IANA reserves for documentation and examples (RFC 5612), which no real
/// vendor uses, so the elements cannot collide with anyone's. It will change to a registered PEN
/// (one constant) when the project has one.
pub const PEN: u32 = 32473;

pub use decode::{
    app_session_from_flow, record_from_flow, record_kind, super_flow_from_flow,
    tap_record_from_flow, DecodeError, Decoded,
};
pub use encode::{Encoded, Encoder, EncoderConfig};
pub use registry::{registry, IeType, InfoElement};
