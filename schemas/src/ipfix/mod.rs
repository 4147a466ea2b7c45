//! IPFIX for Super-NetFlow's own records: the enterprise information elements that carry the tap's
//! records (and, later, super-flows) to IPFIX collectors, an encoder of export messages, and the
//! decoding back into records.
//!
//! # How a record becomes IPFIX
//! Every leaf field of a record kind's row form (the same tree the Avro and Arrow schemas are
//! built from, so the mapping cannot drift from the types) is one information element:
//!
//! - the flow's endpoints and times use IANA elements every collector knows
//!   (`sourceIPv4Address` 8 / `sourceIPv6Address` 27 for the client, `destinationIPv4Address` 12 /
//!   `destinationIPv6Address` 28 for the server, ports 7 and 11, `protocolIdentifier` 4, `vlanId`
//!   58, `flowStartMilliseconds` 152 and `flowEndMilliseconds` 153);
//! - every other field is an enterprise element of [`PEN`] whose id is fixed in
//!   [`registry::TAP_IDS`] (ids are never reused; a new field takes the next free one);
//! - fields derived from others are not sent (`record_id`, `key.flow_key`): the decoder recomputes
//!   them, which also checks the record arrived whole.
//!
//! Types: integers keep their width (`unsigned8`..`unsigned64`, `signed*`), `f32`/`f64` are
//! `float32`/`float64`, `bool` is `boolean`, UTC milliseconds are `dateTimeMilliseconds`, strings and
//! enums are variable-length `string`s, and lists are variable-length strings holding the list as
//! JSON text (`["h2","http/1.1"]`) — exact, and readable in tshark.
//!
//! An absent value (`null`) is an element left out of the record: a record's template is the set
//! of elements it has, so records with different sets use different templates
//! ([`encode::Encoder`] allocates and (re)sends them).
//!
//! The registry is published as `schemas/published/ipfix_enterprise_ies.csv` in the column layout
//! of IANA's `ipfix-information-elements.csv`.

pub mod decode;
pub mod encode;
pub mod registry;

/// Private enterprise number of Super-NetFlow's elements. The project has no PEN of its own yet:
/// 32473 is the number IANA reserves for documentation and examples (RFC 5612), which no real
/// vendor uses, so the elements cannot collide with anyone's. It will change to a registered PEN
/// (one constant) when the project has one.
pub const PEN: u32 = 32473;

pub use decode::{tap_record_from_flow, DecodeError};
pub use encode::{Encoded, Encoder, EncoderConfig};
pub use registry::{registry, IeType, InfoElement};
