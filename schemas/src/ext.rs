//! Typed values of information elements that have no column of their own.
//!
//! Nothing an exporter sends is dropped: an IE the record has no column for (an enterprise IE, a
//! variable-length string, an RFC 5103 reverse IE, an IANA IE we do not map) is kept here with its
//! private enterprise number, its id and, where the registry knows it, its name.

use crate::text::Text;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One information element the record has no column for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Extension {
    /// Private enterprise number; 0 for IANA elements. 29305 marks RFC 5103 reverse elements.
    pub pen: u32,
    /// Element id within the PEN (without the enterprise bit).
    pub id: u16,
    /// Registry name where known (e.g. `applicationId`), else `pen<PEN>_ie<ID>` style is left to readers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<std::borrow::Cow<'static, str>>,
    /// The element's value. In JSON an object with one key naming the type (`{"unsigned": 42}`).
    pub value: ExtValue,
}

/// The value of an extension element, typed as the registry types it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExtValue {
    /// Unsigned integers (unsigned8..unsigned64).
    Unsigned(u64),
    /// Signed integers (signed8..signed64).
    Signed(i64),
    /// Floats (float32, float64).
    Float(f64),
    /// Booleans.
    Bool(bool),
    /// Strings (UTF-8).
    String(#[schemars(with = "String")] Text),
    /// Addresses (IPv4, IPv6, MAC) in their usual text form.
    Address(#[schemars(with = "String")] Text),
    /// Absolute time in UTC milliseconds.
    TimeMs(i64),
    /// Octets as lower-case hex, for opaque and unknown elements.
    Hex(#[schemars(with = "String")] Text),
}

impl ExtValue {
    /// Hex-encodes opaque bytes.
    pub fn hex(bytes: &[u8]) -> Self {
        // Short values (MPLS labels, per record on the decode path) are written on the stack and
        // kept inline, without an allocation.
        if bytes.len() * 2 <= Text::INLINE {
            let mut buf = [0u8; Text::INLINE];
            for (i, b) in bytes.iter().enumerate() {
                buf[2 * i] = HEX[(b >> 4) as usize];
                buf[2 * i + 1] = HEX[(b & 15) as usize];
            }
            return Self::Hex(Text::from_ascii_buf(buf, bytes.len() * 2));
        }
        let mut s = String::with_capacity(bytes.len() * 2);
        for b in bytes {
            s.push(char::from(HEX[(b >> 4) as usize]));
            s.push(char::from(HEX[(b & 15) as usize]));
        }
        Self::Hex(s.into())
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The bytes of a hex string (either case, an even number of digits); `None` when it is not one.
/// The inverse of [`ExtValue::hex`].
pub fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// `v` as 16 lower-case hex digits (the form of flow keys and record ids), without the
/// formatting machinery: this runs twice per record on the decode path.
pub fn hex64(v: u64) -> String {
    let mut b = [0u8; 16];
    for (i, d) in b.iter_mut().enumerate() {
        *d = HEX[((v >> (60 - 4 * i)) & 15) as usize];
    }
    ascii(b.to_vec())
}

/// [`hex64`] as an inline [`Text`]: no allocation (record ids and flow keys, per record).
pub fn hex64_text(v: u64) -> Text {
    let mut b = [0u8; Text::INLINE];
    for (i, d) in b[..16].iter_mut().enumerate() {
        *d = HEX[((v >> (60 - 4 * i)) & 15) as usize];
    }
    Text::from_ascii_buf(b, 16)
}

/// Hex digits as a `String` in one allocation, without pushing them char by char (on the decode
/// path, per record).
fn ascii(digits: Vec<u8>) -> String {
    String::from_utf8(digits).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex64_matches_format() {
        for v in [0u64, 1, 0xa574_7053_a349_79c3, u64::MAX, 1 << 63] {
            assert_eq!(hex64(v), format!("{v:016x}"));
            assert_eq!(hex64_text(v), format!("{v:016x}"));
            assert!(hex64_text(v).is_inline());
        }
    }

    #[test]
    fn hex_and_json_shape() {
        assert_eq!(
            ExtValue::hex(&[0x00, 0xab, 0x10]),
            ExtValue::Hex("00ab10".into())
        );
        let e = Extension {
            pen: 29305,
            id: 1,
            name: Some("reverseOctetDeltaCount".into()),
            value: ExtValue::Unsigned(42),
        };
        let j = serde_json::to_string(&e).unwrap();
        assert_eq!(
            j,
            r#"{"pen":29305,"id":1,"name":"reverseOctetDeltaCount","value":{"unsigned":42}}"#
        );
    }
}
