//! [`Text`]: a string that keeps short values inline.
//!
//! Extension values are mostly short (an IPv4 address, an MPLS label's six hex digits, a VRF
//! name): held in a `String` each costs an allocation per record on the collector's decode path
//! and a free when the record is dropped. A [`Text`] of up to [`Text::INLINE`] bytes lives inside
//! the value itself; longer ones are an ordinary `String`. It serialises as a plain string, so the
//! JSON, Avro and Parquet forms are those of a `String`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

/// A UTF-8 string, inline up to [`Text::INLINE`] bytes. Derefs to `&str`.
#[derive(Clone)]
pub struct Text(Repr);

#[derive(Clone)]
enum Repr {
    /// `buf[..len]` is valid UTF-8 (only ever copied from a `&str`).
    Inline {
        len: u8,
        buf: [u8; Text::INLINE],
    },
    Heap(String),
}

impl Text {
    /// Longest value kept inline (an IPv4 address, an IPv6 address of up to five groups, a hex
    /// string of eleven octets, a short name).
    pub const INLINE: usize = 22;

    /// `s`, inline when it fits.
    pub fn new(s: &str) -> Self {
        match u8::try_from(s.len()) {
            Ok(len) if s.len() <= Self::INLINE => {
                let mut buf = [0u8; Self::INLINE];
                buf[..s.len()].copy_from_slice(s.as_bytes());
                Text(Repr::Inline { len, buf })
            }
            _ => Text(Repr::Heap(s.to_owned())),
        }
    }

    /// ASCII bytes (hex digits, address text) as a `Text`, without UTF-8 validation; bytes that
    /// are not ASCII are taken as UTF-8 with replacement characters.
    pub fn from_ascii(b: &[u8]) -> Self {
        if b.is_ascii() {
            if let Ok(len) = u8::try_from(b.len()) {
                if b.len() <= Self::INLINE {
                    let mut buf = [0u8; Self::INLINE];
                    buf[..b.len()].copy_from_slice(b);
                    return Text(Repr::Inline { len, buf });
                }
            }
        }
        Text::from(String::from_utf8_lossy(b).into_owned())
    }

    /// The first `len` bytes of `buf`, ASCII written in place by the caller (hex digits, address
    /// text), as an inline `Text` without copying them again; bytes that are not ASCII are taken as
    /// UTF-8 with replacement characters.
    pub fn from_ascii_buf(buf: [u8; Self::INLINE], len: usize) -> Self {
        let b = &buf[..len.min(Self::INLINE)];
        match u8::try_from(b.len()) {
            Ok(n) if b.is_ascii() => Text(Repr::Inline { len: n, buf }),
            _ => Text::from(String::from_utf8_lossy(b).into_owned()),
        }
    }

    /// The text as a `&str`.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Inline { len, buf } => {
                let b = &buf[..usize::from(*len)];
                // SAFETY: `buf[..len]` is only ever written by `new` (the bytes of a whole `&str`)
                // and `from_ascii` (bytes checked to be ASCII), so it is valid UTF-8. This runs on
                // every read of every extension value (JSON, Parquet): not validated again here.
                unsafe { std::str::from_utf8_unchecked(b) }
            }
            Repr::Heap(s) => s,
        }
    }

    /// Bytes held on the heap (0 when inline), for memory accounting.
    pub fn capacity(&self) -> usize {
        match &self.0 {
            Repr::Inline { .. } => 0,
            Repr::Heap(s) => s.capacity(),
        }
    }

    /// Whether the value is kept inline (no heap allocation).
    pub fn is_inline(&self) -> bool {
        matches!(self.0, Repr::Inline { .. })
    }
}

impl Default for Text {
    fn default() -> Self {
        Text(Repr::Inline {
            len: 0,
            buf: [0; Self::INLINE],
        })
    }
}

impl Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for Text {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for Text {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Self {
        Text::new(s)
    }
}

impl From<String> for Text {
    /// Short strings move inline (the `String`'s buffer is freed); long ones are kept as they are.
    fn from(s: String) -> Self {
        if s.len() <= Self::INLINE {
            Text::new(&s)
        } else {
            Text(Repr::Heap(s))
        }
    }
}

impl From<Text> for String {
    fn from(t: Text) -> Self {
        match t.0 {
            Repr::Heap(s) => s,
            Repr::Inline { .. } => t.as_str().to_owned(),
        }
    }
}

impl PartialEq for Text {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}
impl Eq for Text {}

impl PartialEq<str> for Text {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}
impl PartialEq<&str> for Text {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}
impl PartialEq<String> for Text {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other.as_str()
    }
}

impl PartialEq<Text> for String {
    fn eq(&self, other: &Text) -> bool {
        self.as_str() == other.as_str()
    }
}
impl PartialEq<Text> for str {
    fn eq(&self, other: &Text) -> bool {
        self == other.as_str()
    }
}
impl PartialEq<Text> for &str {
    fn eq(&self, other: &Text) -> bool {
        *self == other.as_str()
    }
}

impl PartialOrd for Text {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Text {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl std::hash::Hash for Text {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.as_str().hash(h)
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

impl Serialize for Text {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Text::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_up_to_the_limit_and_same_text() {
        for n in 0..40 {
            let s: String = "0123456789abcdef:é.".chars().cycle().take(n).collect();
            for t in [Text::new(&s), Text::from(s.clone()), Text::from(s.as_str())] {
                assert_eq!(t.as_str(), s);
                assert_eq!(t.is_inline(), s.len() <= Text::INLINE, "{s}");
                assert_eq!(t, s);
                assert_eq!(String::from(t.clone()), s);
                assert_eq!(format!("{t:?}"), format!("{s:?}"));
                assert_eq!(t.to_string(), s);
            }
        }
        assert_eq!(Text::default().as_str(), "");
        assert_eq!(Text::from_ascii(b"0a1b2c"), "0a1b2c");
        assert!(Text::from_ascii(b"0a1b2c").is_inline());
        assert_eq!(Text::from_ascii("é".as_bytes()), "é");
        assert_eq!(Text::from_ascii(&[b'a', 0xff]), "a\u{fffd}");
        let mut buf = [b'x'; Text::INLINE];
        buf[..3].copy_from_slice(b"abc");
        assert_eq!(Text::from_ascii_buf(buf, 3), "abc");
        assert_eq!(
            Text::from_ascii_buf(buf, 99),
            "abc".to_owned() + &"x".repeat(19)
        );
        buf[1] = 0xff;
        assert_eq!(Text::from_ascii_buf(buf, 2), "a\u{fffd}");
        let long = "f".repeat(40);
        assert_eq!(Text::from_ascii(long.as_bytes()), long);
        assert_eq!(Text::new("10.0.0.1").capacity(), 0);
    }

    #[test]
    fn serde_is_a_plain_string() {
        for s in [
            "",
            "192.0.2.1",
            "2001:db8:1:2:3:4:5:6",
            "a long value past the inline limit",
        ] {
            let t = Text::new(s);
            let j = serde_json::to_string(&t).unwrap();
            assert_eq!(j, serde_json::to_string(s).unwrap());
            let back: Text = serde_json::from_str(&j).unwrap();
            assert_eq!(back, t);
        }
    }
}
