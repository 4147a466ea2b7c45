//! Compact JSON, byte for byte what `serde_json::to_writer` writes, faster for our records.
//!
//! A profile of `run` into Kafka JSON showed serde_json spending most of a record's encoding in
//! `format_escaped_str`: it checks every byte of every string, field names included, through a
//! lookup table one at a time. Our records are mostly ASCII field names, hex ids, addresses and
//! enum names that never need escaping. [`write`] checks eight bytes at a time and copies a clean
//! string in one go; a string that needs escaping (rare) is written by serde_json itself, and so
//! are numbers (itoa, ryu, non-finite floats as `null`), so the output cannot drift from it. The
//! unit tests compare both encoders on every record kind and on arbitrary strings and floats.

use serde::ser::{self, Serialize};
use serde_json::Error;

/// Appends `value` as compact JSON to `out`: the bytes `serde_json::to_writer` would append.
pub fn write<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> Result<(), Error> {
    value.serialize(Json { out })
}

/// `value` as a compact JSON string (`serde_json::to_vec`'s bytes).
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(256);
    write(&mut out, value)?;
    Ok(out)
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Whether any byte of `x` is zero (the classic SWAR test: exact, no false positives).
#[inline]
fn has_zero(x: u64) -> bool {
    x.wrapping_sub(ONES) & !x & HIGHS != 0
}

/// Whether any byte of `x` is below 0x20 (a control character).
#[inline]
fn has_control(x: u64) -> bool {
    // Bytes with the high bit set are never below 0x20: mask them out of the borrow test.
    x.wrapping_sub(ONES * 0x20) & !x & HIGHS != 0
}

/// Whether none of the eight bytes of `x` needs escaping.
#[inline]
fn ok8(x: u64) -> bool {
    !(has_control(x) || has_zero(x ^ (ONES * u64::from(b'"'))) || has_zero(x ^ (ONES * 0x5c)))
}

#[inline]
fn ok1(b: u8) -> bool {
    b >= 0x20 && b != b'"' && b != b'\\'
}

#[inline]
fn load8(s: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&s[at..at + 8]);
    u64::from_le_bytes(w)
}

#[inline]
fn load4(s: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&s[at..at + 4]);
    u64::from(u32::from_le_bytes(w))
}

/// Whether `s` needs no escaping in JSON: no `"`, no `\`, no control character. Eight bytes at a
/// time; the tail is an overlapping last word, so a short string costs one or two words.
#[inline]
fn clean(s: &[u8]) -> bool {
    let n = s.len();
    match n {
        0 => true,
        1..=3 => ok1(s[0]) && ok1(s[n / 2]) && ok1(s[n - 1]),
        4..=7 => ok8(load4(s, 0) | load4(s, n - 4) << 32),
        _ => {
            let mut i = 0;
            while i + 8 <= n {
                if !ok8(load8(s, i)) {
                    return false;
                }
                i += 8;
            }
            i == n || ok8(load8(s, n - 8))
        }
    }
}

/// [`clean`] for a field name, remembered: a `&'static str` never changes, so a name seen clean
/// once (its address and length in a small direct-mapped table) is not checked again. A slot
/// shared by two names only costs a re-check.
#[inline]
fn clean_static(key: &'static str) -> bool {
    use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
    const SLOTS: usize = 512;
    static SEEN: [AtomicU64; SLOTS] = [const { AtomicU64::new(0) }; SLOTS];
    let addr = key.as_ptr() as u64;
    // Address (user space: below 2^48) and length (below 2^16) in one word, exactly; anything
    // else is just checked.
    if addr >> 48 != 0 || key.len() >> 16 != 0 {
        return clean(key.as_bytes());
    }
    let tag = addr | (key.len() as u64) << 48;
    let slot = &SEEN[((addr >> 2) as usize ^ key.len()) % SLOTS];
    if slot.load(Relaxed) == tag {
        return true;
    }
    let ok = clean(key.as_bytes());
    if ok {
        slot.store(tag, Relaxed);
    }
    ok
}

fn write_str(out: &mut Vec<u8>, s: &str) -> Result<(), Error> {
    if clean(s.as_bytes()) {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        Ok(())
    } else {
        serde_json::to_writer(&mut *out, s)
    }
}

/// serde_json's serializer on the same buffer, for one scalar.
fn sj(out: &mut Vec<u8>) -> serde_json::Serializer<&mut Vec<u8>> {
    serde_json::Serializer::new(out)
}

struct Json<'a> {
    out: &'a mut Vec<u8>,
}

/// A struct, map, sequence or variant being written: `first` until its first element.
pub struct Compound<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
    /// Closing bytes: `}` or `]`, then `}` more for a variant's wrapping object.
    close: &'static [u8],
}

impl<'a> Compound<'a> {
    fn open(out: &'a mut Vec<u8>, open: &[u8], close: &'static [u8]) -> Self {
        out.extend_from_slice(open);
        Self {
            out,
            first: true,
            close,
        }
    }

    /// `{"variant":` then a compound opened with `open`, closed with `close` (which ends with
    /// the variant's `}`).
    fn variant(
        out: &'a mut Vec<u8>,
        variant: &str,
        open: &[u8],
        close: &'static [u8],
    ) -> Result<Self, Error> {
        out.push(b'{');
        write_str(out, variant)?;
        out.push(b':');
        Ok(Self::open(out, open, close))
    }

    fn comma(&mut self) {
        if self.first {
            self.first = false;
        } else {
            self.out.push(b',');
        }
    }

    fn field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result<(), Error> {
        if clean_static(key) {
            // `,"key":` in one reservation.
            let out = &mut *self.out;
            out.reserve(key.len() + 4);
            if self.first {
                self.first = false;
            } else {
                out.push(b',');
            }
            out.push(b'"');
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(b"\":");
        } else {
            self.comma();
            serde_json::to_writer(&mut *self.out, key)?;
            self.out.push(b':');
        }
        value.serialize(Json { out: self.out })
    }

    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.comma();
        value.serialize(Json { out: self.out })
    }

    fn end(self) -> Result<(), Error> {
        self.out.extend_from_slice(self.close);
        Ok(())
    }
}

impl<'a> ser::Serializer for Json<'a> {
    type Ok = ();
    type Error = Error;
    type SerializeSeq = Compound<'a>;
    type SerializeTuple = Compound<'a>;
    type SerializeTupleStruct = Compound<'a>;
    type SerializeTupleVariant = Compound<'a>;
    type SerializeMap = Compound<'a>;
    type SerializeStruct = Compound<'a>;
    type SerializeStructVariant = Compound<'a>;

    fn serialize_bool(self, v: bool) -> Result<(), Error> {
        self.out
            .extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }
    fn serialize_i8(self, v: i8) -> Result<(), Error> {
        ser::Serializer::serialize_i8(&mut sj(self.out), v)
    }
    fn serialize_i16(self, v: i16) -> Result<(), Error> {
        ser::Serializer::serialize_i16(&mut sj(self.out), v)
    }
    fn serialize_i32(self, v: i32) -> Result<(), Error> {
        ser::Serializer::serialize_i32(&mut sj(self.out), v)
    }
    fn serialize_i64(self, v: i64) -> Result<(), Error> {
        ser::Serializer::serialize_i64(&mut sj(self.out), v)
    }
    fn serialize_i128(self, v: i128) -> Result<(), Error> {
        ser::Serializer::serialize_i128(&mut sj(self.out), v)
    }
    fn serialize_u8(self, v: u8) -> Result<(), Error> {
        ser::Serializer::serialize_u8(&mut sj(self.out), v)
    }
    fn serialize_u16(self, v: u16) -> Result<(), Error> {
        ser::Serializer::serialize_u16(&mut sj(self.out), v)
    }
    fn serialize_u32(self, v: u32) -> Result<(), Error> {
        ser::Serializer::serialize_u32(&mut sj(self.out), v)
    }
    fn serialize_u64(self, v: u64) -> Result<(), Error> {
        ser::Serializer::serialize_u64(&mut sj(self.out), v)
    }
    fn serialize_u128(self, v: u128) -> Result<(), Error> {
        ser::Serializer::serialize_u128(&mut sj(self.out), v)
    }
    fn serialize_f32(self, v: f32) -> Result<(), Error> {
        ser::Serializer::serialize_f32(&mut sj(self.out), v)
    }
    fn serialize_f64(self, v: f64) -> Result<(), Error> {
        ser::Serializer::serialize_f64(&mut sj(self.out), v)
    }
    fn serialize_char(self, v: char) -> Result<(), Error> {
        write_str(self.out, v.encode_utf8(&mut [0u8; 4]))
    }
    fn serialize_str(self, v: &str) -> Result<(), Error> {
        write_str(self.out, v)
    }
    fn serialize_bytes(self, v: &[u8]) -> Result<(), Error> {
        ser::Serializer::serialize_bytes(&mut sj(self.out), v)
    }
    fn serialize_none(self) -> Result<(), Error> {
        self.out.extend_from_slice(b"null");
        Ok(())
    }
    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_unit(self) -> Result<(), Error> {
        self.serialize_none()
    }
    fn serialize_unit_struct(self, _name: &'static str) -> Result<(), Error> {
        self.serialize_none()
    }
    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result<(), Error> {
        write_str(self.out, variant)
    }
    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        value.serialize(self)
    }
    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), Error> {
        self.out.push(b'{');
        write_str(self.out, variant)?;
        self.out.push(b':');
        value.serialize(Json {
            out: &mut *self.out,
        })?;
        self.out.push(b'}');
        Ok(())
    }
    fn serialize_seq(self, _len: Option<usize>) -> Result<Compound<'a>, Error> {
        Ok(Compound::open(self.out, b"[", b"]"))
    }
    fn serialize_tuple(self, len: usize) -> Result<Compound<'a>, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_struct(
        self,
        _name: &'static str,
        len: usize,
    ) -> Result<Compound<'a>, Error> {
        self.serialize_seq(Some(len))
    }
    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a>, Error> {
        Compound::variant(self.out, variant, b"[", b"]}")
    }
    fn serialize_map(self, _len: Option<usize>) -> Result<Compound<'a>, Error> {
        Ok(Compound::open(self.out, b"{", b"}"))
    }
    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Compound<'a>, Error> {
        Ok(Compound::open(self.out, b"{", b"}"))
    }
    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Compound<'a>, Error> {
        Compound::variant(self.out, variant, b"{", b"}}")
    }
}

/// The four element-list traits (sequence, tuple, tuple struct, tuple variant): an element each.
macro_rules! element_lists {
    ($($t:ident :: $m:ident),*) => {$(
        impl ser::$t for Compound<'_> {
            type Ok = ();
            type Error = Error;
            fn $m<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
                self.element(value)
            }
            fn end(self) -> Result<(), Error> {
                Compound::end(self)
            }
        }
    )*};
}
element_lists!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

impl ser::SerializeMap for Compound<'_> {
    type Ok = ();
    type Error = Error;
    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result<(), Error> {
        self.comma();
        // serde_json's rules for map keys (strings as they are, numbers and bools quoted, other
        // types refused): written by serde_json itself, as a one-entry map whose braces are cut.
        let mut one = Vec::with_capacity(32);
        {
            let mut s = serde_json::Serializer::new(&mut one);
            let mut m = ser::Serializer::serialize_map(&mut s, Some(1))?;
            m.serialize_key(key)?;
            m.serialize_value(&())?;
            m.end()?;
        }
        // `{` key `:null}` → key.
        let key_bytes = one
            .get(1..one.len().saturating_sub(b":null}".len()))
            .ok_or_else(|| <Error as ser::Error>::custom("map key"))?;
        self.out.extend_from_slice(key_bytes);
        Ok(())
    }
    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Error> {
        self.out.push(b':');
        value.serialize(Json { out: self.out })
    }
    fn end(self) -> Result<(), Error> {
        Compound::end(self)
    }
}

/// Structs and struct variants: a named field each.
macro_rules! field_lists {
    ($($t:ident),*) => {$(
        impl ser::$t for Compound<'_> {
            type Ok = ();
            type Error = Error;
            fn serialize_field<T: Serialize + ?Sized>(
                &mut self,
                key: &'static str,
                value: &T,
            ) -> Result<(), Error> {
                self.field(key, value)
            }
            fn end(self) -> Result<(), Error> {
                Compound::end(self)
            }
        }
    )*};
}
field_lists!(SerializeStruct, SerializeStructVariant);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn same<T: Serialize + ?Sized>(v: &T) {
        let want = serde_json::to_vec(v).expect("serde_json");
        let got = to_vec(v).expect("fast");
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&want)
        );
    }

    #[test]
    fn every_record_kind_is_written_as_serde_json_writes_it() {
        use crate::sample;
        same(&sample::flow_record());
        same(&sample::tap_record());
        same(&sample::super_flow());
        same(&sample::app_session());
        // Every optional field unset too.
        let empty = crate::FlowRecord::empty(
            crate::FlowVersion::NetflowV5,
            std::net::IpAddr::from([192, 0, 2, 1]),
        );
        same(&empty);
    }

    #[test]
    fn the_serde_shapes_match() {
        #[derive(serde::Serialize)]
        enum E {
            Unit,
            New(u8),
            Tuple(u8, String),
            Struct { a: Option<f64>, b: char },
        }
        #[derive(serde::Serialize)]
        struct Unit;
        #[derive(serde::Serialize)]
        struct Wrap(i128);
        #[derive(serde::Serialize)]
        struct Tup(u8, bool);
        same(&vec![E::Unit, E::New(7), E::Tuple(1, "x\"y".into())]);
        same(&E::Struct {
            a: Some(f64::NAN),
            b: '\u{1}',
        });
        same(&E::Struct { a: None, b: 'é' });
        same(&(Unit, Wrap(-1 << 100), Tup(3, false), (), 'x'));
        same(&Vec::<u8>::new());
        same(&serde_bytes_like());
        let mut m = BTreeMap::new();
        m.insert(3u32, "three");
        m.insert(40u32, "forty\n");
        same(&m);
        let mut s = BTreeMap::new();
        s.insert("k\"ey".to_owned(), vec![1.5f32, f32::INFINITY]);
        s.insert(String::new(), vec![]);
        same(&s);
        let mut b = BTreeMap::new();
        b.insert(true, 1i8);
        same(&b);
        let e: BTreeMap<String, u8> = BTreeMap::new();
        same(&e);
    }

    fn serde_bytes_like() -> impl Serialize {
        struct Bytes;
        impl Serialize for Bytes {
            fn serialize<S: ser::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_bytes(&[0, 1, 255])
            }
        }
        Bytes
    }

    #[test]
    fn a_map_key_serde_json_refuses_is_refused() {
        let mut m = BTreeMap::new();
        m.insert(vec![1u8], 1u8);
        assert!(serde_json::to_vec(&m).is_err());
        assert!(to_vec(&m).is_err());
    }

    #[test]
    fn the_clean_test_is_exact_at_every_position() {
        for len in 0..40 {
            for pos in 0..len {
                for b in [0u8, 0x1f, b'"', b'\\'] {
                    let mut v = vec![b'a'; len];
                    v[pos] = b;
                    assert!(!clean(&v), "{len} {pos} {b}");
                }
                for b in [0x20u8, 0x7f, 0x80, 0xff, b'!', b'#', b'[', b']'] {
                    let mut v = vec![b'a'; len];
                    v[pos] = b;
                    assert!(clean(&v), "{len} {pos} {b}");
                }
            }
        }
    }

    proptest! {
        #[test]
        fn any_string_is_written_as_serde_json_writes_it(s in any::<String>()) {
            same(&s);
            same(&vec![s.clone(), "plain".to_owned()]);
        }

        #[test]
        fn any_float_is_written_as_serde_json_writes_it(x in any::<f64>(), y in any::<f32>()) {
            same(&(x, y));
        }

        #[test]
        fn control_and_quote_heavy_strings(v in proptest::collection::vec(
            prop_oneof![Just('"'), Just('\\'), Just('\u{0}'), Just('\u{1f}'), Just('a'),
                        Just('é'), Just('\u{7f}'), Just('\u{2028}')], 0..40)) {
            let s: String = v.into_iter().collect();
            same(&s);
        }
    }
}
