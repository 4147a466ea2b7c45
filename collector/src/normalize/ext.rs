//! Elements without a column → typed [`schemas::Extension`]s.
//!
//! netgauze-flow-pkt decodes every element it knows into a typed variant; its serde form gives a
//! generic view of the value, which is mapped to the extension's typed value by the element's
//! registry data type. Elements netgauze does not know (most enterprise elements, RFC 5103 reverse
//! elements) arrive as raw bytes and are kept as hex.

use netgauze_flow_pkt::ie::{
    Field, HasIE, InformationElementDataType as T, InformationElementTemplate, IE,
};
use schemas::{ExtValue, Extension, Text};
use serde_json::Value;
use std::borrow::Cow;

/// Converts one element into an extension entry.
pub fn extension(f: &Field) -> Extension {
    if let Field::Unknown { pen, id, value } = f {
        return Extension {
            pen: *pen,
            id: *id,
            name: None,
            value: ExtValue::hex(value),
        };
    }
    let ie = f.ie();
    let (pen, id) = (ie.pen(), ie.id());
    let name = Some(name_of(ie, pen, id));
    if let Some(value) = direct(f) {
        return Extension {
            pen,
            id,
            name,
            value,
        };
    }
    // Fast path: the element's value serialised straight into an ExtValue (no serde_json tree, no
    // maps); anything it does not cover goes the generic way below, with the same result.
    let value = match fast::value(f, ie.data_type()) {
        Some(v) => v,
        None => slow_value(f, ie.data_type()),
    };
    Extension {
        pen,
        id,
        name,
        value,
    }
}

/// The value of the elements routers commonly send beside the columns (Cisco's MPLS, IPv6 and
/// sampler elements), built without serde; the same value as the serde paths give (tested below).
fn direct(f: &Field) -> Option<ExtValue> {
    Some(match f {
        Field::mplsTopLabelStackSection(a)
        | Field::mplsLabelStackSection2(a)
        | Field::mplsLabelStackSection3(a)
        | Field::mplsLabelStackSection4(a)
        | Field::mplsLabelStackSection5(a)
        | Field::mplsLabelStackSection6(a) => ExtValue::hex(a),
        Field::flowLabelIPv6(v)
        | Field::ipv6ExtensionHeaders(v)
        | Field::samplerId(v)
        | Field::ingressVRFID(v)
        | Field::egressVRFID(v)
        | Field::flowStartSysUpTime(v)
        | Field::flowEndSysUpTime(v)
        | Field::ingressInterface(v)
        | Field::egressInterface(v)
        | Field::bgpSourceAsNumber(v)
        | Field::bgpDestinationAsNumber(v) => ExtValue::Unsigned(u64::from(*v)),
        Field::octetDeltaCount(v)
        | Field::packetDeltaCount(v)
        | Field::octetTotalCount(v)
        | Field::packetTotalCount(v)
        | Field::postOctetDeltaCount(v)
        | Field::postPacketDeltaCount(v)
        | Field::initiatorOctets(v)
        | Field::initiatorPackets(v) => ExtValue::Unsigned(*v),
        Field::mplsTopLabelPrefixLength(v)
        | Field::ipVersion(v)
        | Field::ipClassOfService(v)
        | Field::sourceIPv4PrefixLength(v)
        | Field::destinationIPv4PrefixLength(v)
        | Field::sourceIPv6PrefixLength(v)
        | Field::destinationIPv6PrefixLength(v) => ExtValue::Unsigned(u64::from(*v)),
        Field::sourceTransportPort(v)
        | Field::destinationTransportPort(v)
        | Field::vlanId(v)
        | Field::postVlanId(v)
        | Field::icmpTypeCodeIPv4(v)
        | Field::icmpTypeCodeIPv6(v) => ExtValue::Unsigned(u64::from(*v)),
        Field::sourceIPv4Address(a)
        | Field::destinationIPv4Address(a)
        | Field::ipNextHopIPv4Address(a)
        | Field::bgpNextHopIPv4Address(a)
        | Field::mplsTopLabelIPv4Address(a) => ExtValue::Address(v4_text(*a)),
        Field::sourceIPv6Address(a)
        | Field::destinationIPv6Address(a)
        | Field::ipNextHopIPv6Address(a)
        | Field::bgpNextHopIPv6Address(a)
        | Field::mplsTopLabelIPv6Address(a) => ExtValue::Address(v6_text(*a)),
        Field::forwardingStatus(v) => ExtValue::String(forwarding_status_text(*v)?),
        _ => return None,
    })
}

/// Address text written on the stack (then kept inline in a [`Text`] when it fits).
struct Buf {
    b: [u8; 45],
    n: usize,
}

impl Buf {
    fn new() -> Self {
        Buf { b: [0; 45], n: 0 }
    }
    /// Appends one ASCII byte (addresses never need more than the buffer holds).
    #[inline]
    fn push(&mut self, c: u8) {
        if let Some(x) = self.b.get_mut(self.n) {
            *x = c;
            self.n += 1;
        }
    }
    fn push_str(&mut self, s: &str) {
        for c in s.bytes() {
            self.push(c);
        }
    }
    fn text(&self) -> Text {
        // Short text (every IPv4 address, most IPv6 ones) is handed over as a fixed-size array.
        match <[u8; Text::INLINE]>::try_from(&self.b[..Text::INLINE]) {
            Ok(head) if self.n <= Text::INLINE => Text::from_ascii_buf(head, self.n),
            _ => Text::from_ascii(&self.b[..self.n]),
        }
    }
}

/// Dotted-quad text of an IPv4 address, as `Display` writes it, without the formatting machinery.
fn v4_text(a: std::net::Ipv4Addr) -> Text {
    let mut s = Buf::new();
    v4_into(&mut s, a);
    s.text()
}

fn v4_into(s: &mut Buf, a: std::net::Ipv4Addr) {
    for (i, o) in a.octets().into_iter().enumerate() {
        if i > 0 {
            s.push(b'.');
        }
        if o >= 100 {
            s.push(b'0' + o / 100);
        }
        if o >= 10 {
            s.push(b'0' + o / 10 % 10);
        }
        s.push(b'0' + o % 10);
    }
}

/// Text of an IPv6 address exactly as `Display` writes it (RFC 5952: lower-case hex, the longest
/// run of two or more zero groups, leftmost on a tie, as `::`; IPv4-mapped as `::ffff:a.b.c.d`),
/// without the formatting machinery.
fn v6_text(a: std::net::Ipv6Addr) -> Text {
    let mut s = Buf::new();
    if let Some(v4) = a.to_ipv4_mapped() {
        s.push_str("::ffff:");
        v4_into(&mut s, v4);
        return s.text();
    }
    let g = a.segments();
    // Longest run of zero groups (first one on a tie).
    let (mut best, mut best_len, mut cur, mut cur_len) = (0usize, 0usize, 0usize, 0usize);
    for (i, x) in g.iter().enumerate() {
        if *x == 0 {
            if cur_len == 0 {
                cur = i;
            }
            cur_len += 1;
            if cur_len > best_len {
                (best, best_len) = (cur, cur_len);
            }
        } else {
            cur_len = 0;
        }
    }
    let groups = |s: &mut Buf, part: &[u16]| {
        for (i, x) in part.iter().enumerate() {
            if i > 0 {
                s.push(b':');
            }
            hex_group(s, *x);
        }
    };
    if best_len > 1 {
        groups(&mut s, &g[..best]);
        s.push_str("::");
        groups(&mut s, &g[best + best_len..]);
    } else {
        groups(&mut s, &g);
    }
    s.text()
}

/// One group in lower-case hex without leading zeros.
fn hex_group(s: &mut Buf, x: u16) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digits = (4 - x.leading_zeros() / 4).max(1);
    for k in (0..digits).rev() {
        s.push(HEX[usize::from((x >> (4 * k)) & 15)]);
    }
}

/// forwardingStatus (an enum of enums, which serde_json writes as nested one-key objects, as the
/// generic path's `Value` prints too): serialised once per distinct value and per thread, then
/// copied. The table is bounded; past [`MAX_NAMES`] values each record serialises its own.
fn forwarding_status_text(v: netgauze_flow_pkt::ie::forwardingStatus) -> Option<Text> {
    use std::collections::HashMap;
    thread_local! {
        static SEEN: std::cell::RefCell<HashMap<
            netgauze_flow_pkt::ie::forwardingStatus,
            Text,
            std::hash::BuildHasherDefault<IdHasher>,
        >> = Default::default();
    }
    SEEN.with(|m| {
        let mut m = m.borrow_mut();
        if let Some(t) = m.get(&v) {
            return Some(t.clone());
        }
        let t = Text::from(serde_json::to_string(&v).ok()?);
        if m.len() < MAX_NAMES {
            m.insert(v, t.clone());
        }
        Some(t)
    })
}

/// A small multiplicative hasher for the element-name table (looked up once per extension; the
/// keys are element ids, not attacker-chosen strings, so SipHash's protection buys nothing).
#[derive(Default)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }
    fn write_u8(&mut self, v: u8) {
        self.write_u64(u64::from(v));
    }
    fn write_u16(&mut self, v: u16) {
        self.write_u64(u64::from(v));
    }
    fn write_u32(&mut self, v: u32) {
        self.write_u64(u64::from(v));
    }
    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type IdMap<V> = std::collections::HashMap<IE, V, std::hash::BuildHasherDefault<IdHasher>>;

/// Registry names, formatted once per element (Display of a generated enum is slow) and kept for
/// the life of the process, so each record's extensions borrow them instead of allocating. The
/// table is bounded: past [`MAX_NAMES`] distinct elements (only possible with many enterprise
/// elements), names are formatted per record instead.
fn name_of(ie: IE, pen: u32, id: u16) -> Cow<'static, str> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static NAMES: OnceLock<Mutex<HashMap<IE, &'static str>>> = OnceLock::new();
    thread_local! {
        static LOCAL: std::cell::RefCell<IdMap<&'static str>> = Default::default();
        // IANA elements (PEN 0, id below IANA_TABLE), looked up by index: most extensions.
        static IANA: std::cell::RefCell<Vec<Option<&'static str>>> = Default::default();
    }
    let iana = pen == 0 && usize::from(id) < IANA_TABLE;
    if iana {
        if let Some(n) = IANA.with(|t| t.borrow().get(usize::from(id)).copied().flatten()) {
            return Cow::Borrowed(n);
        }
    } else if let Some(n) = LOCAL.with(|l| l.borrow().get(&ie).copied()) {
        return Cow::Borrowed(n);
    }
    let names = NAMES.get_or_init(Default::default);
    let Ok(mut g) = names.lock() else {
        return Cow::Owned(ie.to_string());
    };
    let name = match g.get(&ie) {
        Some(n) => *n,
        None if g.len() < MAX_NAMES => {
            let n: &'static str = Box::leak(ie.to_string().into_boxed_str());
            g.insert(ie, n);
            n
        }
        None => return Cow::Owned(ie.to_string()),
    };
    drop(g);
    if iana {
        IANA.with(|t| {
            let mut t = t.borrow_mut();
            if t.len() < IANA_TABLE {
                t.resize(IANA_TABLE, None);
            }
            t[usize::from(id)] = Some(name);
        });
    } else {
        LOCAL.with(|l| l.borrow_mut().insert(ie, name));
    }
    Cow::Borrowed(name)
}

/// IANA element ids below this are named through a per-thread table indexed by id.
const IANA_TABLE: usize = 1024;

/// Distinct element names kept for the process's life at most.
const MAX_NAMES: usize = 65_536;

/// The generic conversion through serde_json's value tree.
fn slow_value(f: &Field, t: T) -> ExtValue {
    let value = match serde_json::to_value(f) {
        Ok(Value::Object(m)) => m.into_iter().next().map(|(_, v)| v).unwrap_or(Value::Null),
        Ok(other) => other,
        Err(e) => Value::String(format!("unrepresentable: {e}")),
    };
    typed(t, value)
}

fn typed(t: T, v: Value) -> ExtValue {
    match v {
        Value::Bool(b) => ExtValue::Bool(b),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                ExtValue::Unsigned(u)
            } else if let Some(i) = n.as_i64() {
                ExtValue::Signed(i)
            } else {
                ExtValue::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => match t {
            T::ipv4Address | T::ipv6Address | T::macAddress => ExtValue::Address(s.into()),
            T::dateTimeSeconds
            | T::dateTimeMilliseconds
            | T::dateTimeMicroseconds
            | T::dateTimeNanoseconds => match chrono_ms(&s) {
                Some(ms) => ExtValue::TimeMs(ms),
                None => ExtValue::String(s.into()),
            },
            _ => ExtValue::String(s.into()),
        },
        Value::Array(a) if a.iter().all(|x| x.as_u64().is_some_and(|b| b < 256)) => {
            let bytes: Vec<u8> = a
                .iter()
                .filter_map(|x| x.as_u64())
                .map(|b| b as u8)
                .collect();
            if t == T::macAddress && bytes.len() == 6 {
                ExtValue::Address(
                    bytes
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<Vec<_>>()
                        .join(":")
                        .into(),
                )
            } else {
                ExtValue::hex(&bytes)
            }
        }
        Value::Null => ExtValue::String(Text::default()),
        other => ExtValue::String(other.to_string().into()),
    }
}

/// Parses the RFC 3339 form chrono's serde writes.
fn chrono_ms(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// A serde serializer that turns the value inside a `Field` into an [`ExtValue`] exactly as the
/// serde_json path (`to_value` then [`typed`]) would, for scalars, strings and byte sequences;
/// it gives up (`None`) on anything nested (maps, structs, variants with data), which then takes
/// the generic path.
mod fast {
    use super::{chrono_ms, ExtValue, T};
    use netgauze_flow_pkt::ie::Field;
    use serde::ser::{self, Impossible, Serialize, Serializer};
    use std::fmt;

    /// Why the fast path gave up.
    #[derive(Debug)]
    pub struct GiveUp;
    impl fmt::Display for GiveUp {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("not a simple value")
        }
    }
    impl std::error::Error for GiveUp {}
    impl ser::Error for GiveUp {
        fn custom<M: fmt::Display>(_: M) -> Self {
            GiveUp
        }
    }

    pub fn value(f: &Field, t: T) -> Option<ExtValue> {
        f.serialize(Outer { t }).ok()
    }

    /// The `Field` enum itself: only newtype variants (`Field::x(value)`) are taken.
    struct Outer {
        t: T,
    }

    /// A simple value.
    struct Inner {
        t: T,
    }

    fn unsigned(v: u64) -> Result<ExtValue, GiveUp> {
        Ok(ExtValue::Unsigned(v))
    }
    fn signed(v: i64) -> Result<ExtValue, GiveUp> {
        // serde_json reads a non-negative integer back as u64 first.
        Ok(if v >= 0 {
            ExtValue::Unsigned(v as u64)
        } else {
            ExtValue::Signed(v)
        })
    }
    fn string(t: T, s: &str) -> ExtValue {
        match t {
            T::ipv4Address | T::ipv6Address | T::macAddress => ExtValue::Address(s.into()),
            T::dateTimeSeconds
            | T::dateTimeMilliseconds
            | T::dateTimeMicroseconds
            | T::dateTimeNanoseconds => match chrono_ms(s) {
                Some(ms) => ExtValue::TimeMs(ms),
                None => ExtValue::String(s.into()),
            },
            _ => ExtValue::String(s.into()),
        }
    }
    /// As [`typed`] does with an array of octets.
    fn bytes(t: T, b: Vec<u8>) -> ExtValue {
        if t == T::macAddress && b.len() == 6 {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            let mut s = String::with_capacity(17);
            for (i, x) in b.iter().enumerate() {
                if i > 0 {
                    s.push(':');
                }
                s.push(char::from(HEX[usize::from(x >> 4)]));
                s.push(char::from(HEX[usize::from(x & 15)]));
            }
            ExtValue::Address(s.into())
        } else {
            ExtValue::hex(&b)
        }
    }

    macro_rules! give_up_rest {
        () => {
            type SerializeSeq = Impossible<ExtValue, GiveUp>;
            type SerializeTuple = Impossible<ExtValue, GiveUp>;
            type SerializeTupleStruct = Impossible<ExtValue, GiveUp>;
            type SerializeTupleVariant = Impossible<ExtValue, GiveUp>;
            type SerializeMap = Impossible<ExtValue, GiveUp>;
            type SerializeStruct = Impossible<ExtValue, GiveUp>;
            type SerializeStructVariant = Impossible<ExtValue, GiveUp>;
            fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, GiveUp> {
                Err(GiveUp)
            }
            fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, GiveUp> {
                Err(GiveUp)
            }
            give_up_compound!();
        };
    }

    /// The compound forms (maps, structs, tuple structs, variants with data) are never simple.
    macro_rules! give_up_compound {
        () => {
            fn serialize_tuple_struct(
                self,
                _: &'static str,
                _: usize,
            ) -> Result<Self::SerializeTupleStruct, GiveUp> {
                Err(GiveUp)
            }
            fn serialize_tuple_variant(
                self,
                _: &'static str,
                _: u32,
                _: &'static str,
                _: usize,
            ) -> Result<Self::SerializeTupleVariant, GiveUp> {
                Err(GiveUp)
            }
            fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, GiveUp> {
                Err(GiveUp)
            }
            fn serialize_struct(
                self,
                _: &'static str,
                _: usize,
            ) -> Result<Self::SerializeStruct, GiveUp> {
                Err(GiveUp)
            }
            fn serialize_struct_variant(
                self,
                _: &'static str,
                _: u32,
                _: &'static str,
                _: usize,
            ) -> Result<Self::SerializeStructVariant, GiveUp> {
                Err(GiveUp)
            }
        };
    }

    impl Serializer for Outer {
        type Ok = ExtValue;
        type Error = GiveUp;
        give_up_rest!();
        fn serialize_newtype_variant<V: ?Sized + Serialize>(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            v: &V,
        ) -> Result<ExtValue, GiveUp> {
            v.serialize(Inner { t: self.t })
        }
        fn serialize_bool(self, _: bool) -> Result<ExtValue, GiveUp> {
            Err(GiveUp)
        }
        fn serialize_i8(self, _: i8) -> Result<ExtValue, GiveUp> {
            Err(GiveUp)
        }
        fn serialize_i16(self, _: i16) -> Result<ExtValue, GiveUp> {
            Err(GiveUp)
        }
        fn serialize_i32(self, _: i32) -> Result<ExtValue, GiveUp> {
            Err(GiveUp)
        }
        fn serialize_i64(self, _: i64) -> Result<ExtValue, GiveUp> {
            Err(GiveUp)
        }
        fn serialize_u8(self, _: u8) -> Result<ExtValue, GiveUp> {
            Err(GiveUp)
        }
        fn serialize_u16(self, _: u16) -> Result<ExtValue, GiveUp> {
            Err(GiveUp)
        }
        fn serialize_u32(self, _: u32) -> Result<ExtValue, GiveUp> {
            Err(GiveUp)
        }
        fn serialize_u64(self, _: u64) -> Result<ExtValue, GiveUp> {
            Err(GiveUp)
        }
        fn serialize_f32(self, _: f32) -> Result<ExtValue, GiveUp> {
            Err(GiveUp)
        }
        fn serialize_f64(self, _: f64) -> Result<ExtValue, GiveUp> {
            Err(GiveUp)
        }
        fn serialize_char(self, _: char) -> Result<ExtValue, GiveUp> {
            Err(GiveUp)
        }
        fn serialize_str(self, _: &str) -> Result<ExtValue, GiveUp> {
            Err(GiveUp)
        }
        fn serialize_bytes(self, _: &[u8]) -> Result<ExtValue, GiveUp> {
            Err(GiveUp)
        }
        fn serialize_none(self) -> Result<ExtValue, GiveUp> {
            Err(GiveUp)
        }
        fn serialize_some<V: ?Sized + Serialize>(self, _: &V) -> Result<ExtValue, GiveUp> {
            Err(GiveUp)
        }
        fn serialize_unit(self) -> Result<ExtValue, GiveUp> {
            Err(GiveUp)
        }
        fn serialize_unit_struct(self, _: &'static str) -> Result<ExtValue, GiveUp> {
            Err(GiveUp)
        }
        fn serialize_unit_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
        ) -> Result<ExtValue, GiveUp> {
            Err(GiveUp)
        }
        fn serialize_newtype_struct<V: ?Sized + Serialize>(
            self,
            _: &'static str,
            _: &V,
        ) -> Result<ExtValue, GiveUp> {
            Err(GiveUp)
        }
    }

    impl Serializer for Inner {
        type Ok = ExtValue;
        type Error = GiveUp;
        type SerializeSeq = Bytes;
        type SerializeTuple = Bytes;
        type SerializeTupleStruct = Impossible<ExtValue, GiveUp>;
        type SerializeTupleVariant = Impossible<ExtValue, GiveUp>;
        type SerializeMap = Impossible<ExtValue, GiveUp>;
        type SerializeStruct = Impossible<ExtValue, GiveUp>;
        type SerializeStructVariant = Impossible<ExtValue, GiveUp>;
        fn serialize_bool(self, v: bool) -> Result<ExtValue, GiveUp> {
            Ok(ExtValue::Bool(v))
        }
        fn serialize_i8(self, v: i8) -> Result<ExtValue, GiveUp> {
            signed(v.into())
        }
        fn serialize_i16(self, v: i16) -> Result<ExtValue, GiveUp> {
            signed(v.into())
        }
        fn serialize_i32(self, v: i32) -> Result<ExtValue, GiveUp> {
            signed(v.into())
        }
        fn serialize_i64(self, v: i64) -> Result<ExtValue, GiveUp> {
            signed(v)
        }
        fn serialize_u8(self, v: u8) -> Result<ExtValue, GiveUp> {
            unsigned(v.into())
        }
        fn serialize_u16(self, v: u16) -> Result<ExtValue, GiveUp> {
            unsigned(v.into())
        }
        fn serialize_u32(self, v: u32) -> Result<ExtValue, GiveUp> {
            unsigned(v.into())
        }
        fn serialize_u64(self, v: u64) -> Result<ExtValue, GiveUp> {
            unsigned(v)
        }
        fn serialize_f32(self, v: f32) -> Result<ExtValue, GiveUp> {
            self.serialize_f64(f64::from(v))
        }
        fn serialize_f64(self, v: f64) -> Result<ExtValue, GiveUp> {
            // serde_json makes non-finite floats null, and reads integral ones back as floats.
            if v.is_finite() {
                Ok(ExtValue::Float(v))
            } else {
                Err(GiveUp)
            }
        }
        fn serialize_char(self, v: char) -> Result<ExtValue, GiveUp> {
            Ok(string(self.t, &v.to_string()))
        }
        fn serialize_str(self, v: &str) -> Result<ExtValue, GiveUp> {
            Ok(string(self.t, v))
        }
        fn collect_str<V: ?Sized + fmt::Display>(self, v: &V) -> Result<ExtValue, GiveUp> {
            Ok(string(self.t, &v.to_string()))
        }
        fn serialize_bytes(self, v: &[u8]) -> Result<ExtValue, GiveUp> {
            Ok(bytes(self.t, v.to_vec()))
        }
        fn serialize_none(self) -> Result<ExtValue, GiveUp> {
            Err(GiveUp)
        }
        fn serialize_some<V: ?Sized + Serialize>(self, _: &V) -> Result<ExtValue, GiveUp> {
            Err(GiveUp)
        }
        fn serialize_unit(self) -> Result<ExtValue, GiveUp> {
            Err(GiveUp)
        }
        fn serialize_unit_struct(self, _: &'static str) -> Result<ExtValue, GiveUp> {
            Err(GiveUp)
        }
        fn serialize_unit_variant(
            self,
            _: &'static str,
            _: u32,
            variant: &'static str,
        ) -> Result<ExtValue, GiveUp> {
            Ok(string(self.t, variant))
        }
        fn serialize_newtype_struct<V: ?Sized + Serialize>(
            self,
            _: &'static str,
            v: &V,
        ) -> Result<ExtValue, GiveUp> {
            v.serialize(self)
        }
        fn serialize_newtype_variant<V: ?Sized + Serialize>(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: &V,
        ) -> Result<ExtValue, GiveUp> {
            Err(GiveUp)
        }
        fn serialize_seq(self, len: Option<usize>) -> Result<Bytes, GiveUp> {
            Ok(Bytes {
                t: self.t,
                b: Vec::with_capacity(len.unwrap_or(0)),
            })
        }
        fn serialize_tuple(self, len: usize) -> Result<Bytes, GiveUp> {
            self.serialize_seq(Some(len))
        }
        give_up_compound!();
    }

    /// A sequence of octets (anything else gives up).
    pub struct Bytes {
        t: T,
        b: Vec<u8>,
    }

    impl Bytes {
        fn push<V: ?Sized + Serialize>(&mut self, v: &V) -> Result<(), GiveUp> {
            match v.serialize(Inner { t: T::unsigned8 })? {
                ExtValue::Unsigned(x) if x < 256 => {
                    self.b.push(x as u8);
                    Ok(())
                }
                _ => Err(GiveUp),
            }
        }
    }

    impl ser::SerializeSeq for Bytes {
        type Ok = ExtValue;
        type Error = GiveUp;
        fn serialize_element<V: ?Sized + Serialize>(&mut self, v: &V) -> Result<(), GiveUp> {
            self.push(v)
        }
        fn end(self) -> Result<ExtValue, GiveUp> {
            Ok(bytes(self.t, self.b))
        }
    }

    impl ser::SerializeTuple for Bytes {
        type Ok = ExtValue;
        type Error = GiveUp;
        fn serialize_element<V: ?Sized + Serialize>(&mut self, v: &V) -> Result<(), GiveUp> {
            self.push(v)
        }
        fn end(self) -> Result<ExtValue, GiveUp> {
            Ok(bytes(self.t, self.b))
        }
    }
}

#[cfg(test)]
mod fast_tests {
    use super::*;

    #[test]
    fn v4_text_is_display() {
        for o in 0..=255u8 {
            for a in [
                std::net::Ipv4Addr::new(o, 0, 9, 10),
                std::net::Ipv4Addr::new(99, o, 100, 255),
                std::net::Ipv4Addr::new(1, 2, o, o.wrapping_mul(7)),
            ] {
                assert_eq!(v4_text(a), a.to_string());
            }
        }
    }

    /// Every pattern of zero and non-zero groups (all 256), with group values of every digit
    /// count, and IPv4-mapped addresses: the same text as `Display`.
    #[test]
    fn v6_text_is_display() {
        use std::net::Ipv6Addr;
        let values = [
            1u16, 0xf, 0x10, 0xab, 0x100, 0xfff, 0x1000, 0xffff, 0x2001, 0xdb8,
        ];
        for mask in 0u32..256 {
            for (k, v) in values.iter().enumerate() {
                let mut g = [0u16; 8];
                for (i, x) in g.iter_mut().enumerate() {
                    if mask & (1 << i) != 0 {
                        *x = values[(k + i) % values.len()].wrapping_mul(*v | 1);
                    }
                }
                let a = Ipv6Addr::from(g);
                assert_eq!(v6_text(a), a.to_string(), "{g:?}");
            }
        }
        for a in [
            Ipv6Addr::UNSPECIFIED,
            Ipv6Addr::LOCALHOST,
            std::net::Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped(),
            std::net::Ipv4Addr::new(0, 0, 0, 0).to_ipv6_mapped(),
            std::net::Ipv4Addr::new(10, 1, 2, 3).to_ipv6_compatible(),
            "64:ff9b::c000:201".parse().unwrap(),
            "fe80::1:0:0:1".parse().unwrap(),
            "1:0:0:2:0:0:3:4".parse().unwrap(),
        ] {
            assert_eq!(v6_text(a), a.to_string());
        }
    }

    /// forwardingStatus values of every class (and unassigned ones), first and cached.
    #[test]
    fn forwarding_status_is_serde_json() {
        use netgauze_flow_pkt::ie::forwardingStatus;
        for raw in [0u32, 1, 64, 66, 128, 130, 192, 195, 300, 64] {
            let v = forwardingStatus::from(raw);
            for _ in 0..2 {
                let want = serde_json::to_string(&v).unwrap();
                assert_eq!(forwarding_status_text(v), Some(Text::from(want)));
            }
        }
    }
    use netgauze_parse_utils::reader::SliceReader;
    use netgauze_parse_utils::traits::ParseFromWithTwoInputs;

    /// The fast path gives what the serde_json path gives (or gives up), element by element,
    /// for the elements of the benchmark templates and others of every shape of value.
    #[test]
    fn fast_path_matches_serde_json_path() {
        let specs: &[(u16, u16)] = &[
            (70, 3),
            (71, 3),
            (47, 4),
            (140, 16),
            (27, 16),
            (31, 3),
            (91, 1),
            (64, 4),
            (46, 1),
            (89, 1),
            (61, 1),
            (48, 2),
            (60, 1),
            (136, 1),
            (32, 2),
            (56, 6),
            (81, 6),
            (82, 16),
            (83, 8),
            (94, 12),
            (95, 4),
            (95, 8),
            (143, 4),
            (160, 8),
            (154, 8),
            (156, 8),
            (150, 4),
            (304, 2),
            (305, 4),
            (311, 8),
            (176, 1),
            (196, 1),
            (210, 4),
            (239, 1),
            (276, 8),
            (225, 4),
            (227, 2),
            (281, 16),
            (312, 1),
            (400, 4),
            (19, 8),
            (33, 2),
            (184, 4),
            (72, 3),
            (75, 3),
            (21, 4),
            (22, 4),
            (28, 16),
            (62, 16),
            (63, 16),
            (18, 4),
            (15, 4),
            (60, 1),
            (1, 8),
            (1, 4),
            (2, 8),
            (85, 8),
            (7, 2),
            (11, 2),
            (58, 2),
            (59, 2),
            (139, 2),
            (9, 1),
            (29, 1),
            (234, 4),
            (235, 4),
            (10, 4),
            (10, 2),
            (16, 4),
            (5, 1),
        ];
        let (mut fast_n, mut total) = (0, 0);
        for (id, len) in specs {
            let Ok(ie) = IE::try_from((0u32, *id)) else {
                continue;
            };
            for fill in [0u8, 1, 0x7f, 0xff] {
                let mut bytes: Vec<u8> = (0..*len).map(|i| fill.wrapping_add(i as u8)).collect();
                if *id == 82 || *id == 83 || *id == 94 {
                    bytes = b"ge-0/0/0.100-abcdefgh"
                        .iter()
                        .copied()
                        .take(*len as usize)
                        .collect();
                }
                let mut cur = SliceReader::new(&bytes);
                let Ok(f) = <Field as ParseFromWithTwoInputs<_, _>>::parse(&mut cur, &ie, *len)
                else {
                    continue;
                };
                total += 1;
                let t = f.ie().data_type();
                if let Some(v) = fast::value(&f, t) {
                    assert_eq!(v, slow_value(&f, t), "{f:?}");
                    fast_n += 1;
                }
                assert_eq!(extension(&f).value, slow_value(&f, t), "{f:?}");
                assert_eq!(extension(&f).name.as_deref(), Some(ie.to_string().as_str()));
            }
        }
        assert!(
            total > 60 && fast_n > total / 2,
            "{fast_n} of {total} on the fast path"
        );
    }
}
