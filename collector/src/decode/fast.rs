//! Direct decoding of the common fixed-size elements, without netgauze's per-element parser.
//!
//! netgauze-flow-pkt decodes a field by matching its element among thousands on every record. For
//! the elements that fill the record's columns (and a few that routers send beside them), the
//! element and length are known when the template is parsed: [`select`] picks a decoder then, and
//! [`decode`] builds the same `Field` netgauze would from the field's bytes. Elements or lengths
//! not listed here (and values netgauze would refuse) go through netgauze as before. The unit
//! test below checks, element by element and length by length, that both give the same result.

use netgauze_flow_pkt::ie::{
    flowDirection, flowEndReason, forwardingStatus, mplsTopLabelType, protocolIdentifier, Field, IE,
};
use netgauze_iana::tcp::TCPHeaderFlags;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Big-endian unsigned value of up to eight octets (RFC 7011 §6.2 reduced-size encoding).
#[inline]
fn uint(b: &[u8]) -> u64 {
    b.iter().fold(0u64, |a, x| a << 8 | u64::from(*x))
}

/// How one kind of value is read: which lengths it takes, and the value.
mod kind {
    use super::*;

    pub struct U64;
    impl U64 {
        pub fn fits(len: u16) -> bool {
            (1..=8).contains(&len)
        }
        pub fn read(b: &[u8]) -> Option<u64> {
            Some(uint(b))
        }
    }
    pub struct U32;
    impl U32 {
        pub fn fits(len: u16) -> bool {
            (1..=4).contains(&len)
        }
        pub fn read(b: &[u8]) -> Option<u32> {
            Some(uint(b) as u32)
        }
    }
    pub struct U16;
    impl U16 {
        pub fn fits(len: u16) -> bool {
            (1..=2).contains(&len)
        }
        pub fn read(b: &[u8]) -> Option<u16> {
            Some(uint(b) as u16)
        }
    }
    pub struct U8;
    impl U8 {
        pub fn fits(len: u16) -> bool {
            len == 1
        }
        pub fn read(b: &[u8]) -> Option<u8> {
            b.first().copied()
        }
    }
    pub struct V4;
    impl V4 {
        pub fn fits(len: u16) -> bool {
            len == 4
        }
        pub fn read(b: &[u8]) -> Option<Ipv4Addr> {
            <[u8; 4]>::try_from(b).ok().map(Ipv4Addr::from)
        }
    }
    pub struct V6;
    impl V6 {
        pub fn fits(len: u16) -> bool {
            len == 16
        }
        pub fn read(b: &[u8]) -> Option<Ipv6Addr> {
            <[u8; 16]>::try_from(b).ok().map(Ipv6Addr::from)
        }
    }
    pub struct A3;
    impl A3 {
        pub fn fits(len: u16) -> bool {
            len == 3
        }
        pub fn read(b: &[u8]) -> Option<[u8; 3]> {
            <[u8; 3]>::try_from(b).ok()
        }
    }
    pub struct Ms;
    impl Ms {
        pub fn fits(len: u16) -> bool {
            len == 8
        }
        pub fn read(b: &[u8]) -> Option<chrono::DateTime<chrono::Utc>> {
            if b.len() != 8 {
                return None;
            }
            utc_ms(uint(b) as i64)
        }
    }
}

/// `Utc.timestamp_millis_opt(ms).single()`, with the calendar date of the last day seen kept per
/// thread: the flows of a message (and of the next ones) mostly end on the same day, and turning
/// a day number into a date is most of chrono's cost.
fn utc_ms(ms: i64) -> Option<chrono::DateTime<chrono::Utc>> {
    use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
    use std::cell::Cell;
    thread_local! {
        static DAY: Cell<Option<(i64, NaiveDate)>> = const { Cell::new(None) };
    }
    let secs = ms.div_euclid(1000);
    let nanos = u32::try_from(ms.rem_euclid(1000)).ok()? * 1_000_000;
    let days = secs.div_euclid(86_400);
    let secs_of_day = u32::try_from(secs.rem_euclid(86_400)).ok()?;
    let date = match DAY.with(Cell::get) {
        Some((d, date)) if d == days => date,
        _ => {
            // Days from 0001-01-01 (CE) to 1970-01-01: 719 163.
            let ce = i32::try_from(days).ok()?.checked_add(719_163)?;
            let date = NaiveDate::from_num_days_from_ce_opt(ce)?;
            DAY.with(|c| c.set(Some((days, date))));
            date
        }
    };
    let time = NaiveTime::from_num_seconds_from_midnight_opt(secs_of_day, nanos)?;
    Some(NaiveDateTime::new(date, time).and_utc())
}

macro_rules! wrap {
    ($v:expr) => {
        $v
    };
    ($v:expr, $c:ty) => {
        <$c>::from($v)
    };
}

macro_rules! fast_elements {
    ($( $name:ident : $kind:ident $(as $conv:ty)? ;)*) => {
        /// A direct decoder for one element at one length, chosen when the template is parsed.
        #[allow(non_camel_case_types)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Fast {
            $($name,)*
        }

        /// The direct decoder for `ie` carried in `len` octets, if there is one.
        pub fn select(ie: IE, len: u16) -> Option<Fast> {
            match ie {
                $(IE::$name if kind::$kind::fits(len) => Some(Fast::$name),)*
                _ => None,
            }
        }

        /// The field netgauze would decode from `b`; `None` when the value is one to leave to
        /// netgauze (it refuses it, or `b` is not the template's length).
        #[inline]
        pub fn decode(f: Fast, b: &[u8]) -> Option<Field> {
            Some(match f {
                $(Fast::$name => Field::$name(wrap!(kind::$kind::read(b)? $(, $conv)?)),)*
            })
        }

        #[cfg(test)]
        const ALL: &[IE] = &[$(IE::$name,)*];
    };
}

fast_elements! {
    octetDeltaCount: U64;
    packetDeltaCount: U64;
    octetTotalCount: U64;
    packetTotalCount: U64;
    postOctetDeltaCount: U64;
    postPacketDeltaCount: U64;
    initiatorOctets: U64;
    initiatorPackets: U64;
    protocolIdentifier: U8 as protocolIdentifier;
    ipClassOfService: U8;
    tcpControlBits: U16 as TCPHeaderFlags;
    sourceTransportPort: U16;
    destinationTransportPort: U16;
    sourceIPv4Address: V4;
    destinationIPv4Address: V4;
    sourceIPv4PrefixLength: U8;
    destinationIPv4PrefixLength: U8;
    ingressInterface: U32;
    egressInterface: U32;
    ipNextHopIPv4Address: V4;
    bgpNextHopIPv4Address: V4;
    bgpSourceAsNumber: U32;
    bgpDestinationAsNumber: U32;
    flowEndSysUpTime: U32;
    flowStartSysUpTime: U32;
    sourceIPv6Address: V6;
    destinationIPv6Address: V6;
    sourceIPv6PrefixLength: U8;
    destinationIPv6PrefixLength: U8;
    flowLabelIPv6: U32;
    icmpTypeCodeIPv4: U16;
    icmpTypeCodeIPv6: U16;
    vlanId: U16;
    postVlanId: U16;
    dot1qVlanId: U16;
    postDot1qVlanId: U16;
    ipVersion: U8;
    ipNextHopIPv6Address: V6;
    bgpNextHopIPv6Address: V6;
    mplsTopLabelIPv4Address: V4;
    samplerId: U32;
    ingressVRFID: U32;
    egressVRFID: U32;
    flowStartMilliseconds: Ms;
    flowEndMilliseconds: Ms;
    ipv6ExtensionHeaders: U32;
    mplsTopLabelPrefixLength: U8;
    mplsTopLabelStackSection: A3;
    mplsLabelStackSection2: A3;
    mplsLabelStackSection3: A3;
    mplsLabelStackSection4: A3;
    mplsLabelStackSection5: A3;
    mplsLabelStackSection6: A3;
    flowDirection: U8 as flowDirection;
    flowEndReason: U8 as flowEndReason;
    mplsTopLabelType: U8 as mplsTopLabelType;
    mplsTopLabelIPv6Address: V6;
    forwardingStatus: U32 as forwardingStatus;
}

#[cfg(test)]
mod tests {
    use super::*;
    use netgauze_parse_utils::reader::SliceReader;
    use netgauze_parse_utils::traits::ParseFromWithTwoInputs;

    fn netgauze(ie: &IE, b: &[u8]) -> Option<Field> {
        let mut cur = SliceReader::new(b);
        <Field as ParseFromWithTwoInputs<_, _>>::parse(&mut cur, ie, b.len() as u16).ok()
    }

    /// Every listed element at every length 0..=17, over byte patterns that include the extremes:
    /// where a direct decoder is chosen, it gives netgauze's field (or leaves the value to it).
    #[test]
    fn same_fields_as_netgauze() {
        let (mut chosen, mut direct) = (0, 0);
        for ie in ALL {
            for len in 0u16..=17 {
                let Some(f) = select(*ie, len) else {
                    continue;
                };
                chosen += 1;
                for fill in [0u8, 1, 0x5a, 0x7f, 0x80, 0xff] {
                    let b: Vec<u8> = (0..len).map(|i| fill.wrapping_mul(i as u8 + 1)).collect();
                    let want = netgauze(ie, &b);
                    let got = decode(f, &b);
                    if got.is_some() {
                        assert_eq!(got, want, "{ie:?} in {len} octets, {b:?}");
                    } else {
                        // Left to netgauze: only values it refuses too.
                        assert_eq!(want, None, "{ie:?} in {len} octets, {b:?}");
                    }
                    direct += usize::from(got.is_some());
                }
            }
        }
        assert!(chosen >= ALL.len(), "{chosen} element/length pairs");
        assert!(direct > chosen * 5, "{direct} values decoded directly");
        // A time in range.
        let f = select(IE::flowEndMilliseconds, 8).expect("chosen");
        let b = 1_704_067_200_123u64.to_be_bytes();
        assert_eq!(decode(f, &b), netgauze(&IE::flowEndMilliseconds, &b));
        assert!(decode(f, &b).is_some());
        // A value netgauze refuses is left to it: a time outside chrono's range.
        let f = select(IE::flowStartMilliseconds, 8).expect("chosen");
        assert_eq!(
            decode(f, &[0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
            None
        );
        assert_eq!(select(IE::sourceIPv4Address, 16), None);
        assert_eq!(select(IE::octetDeltaCount, 0), None);
    }

    /// The day-cached conversion gives chrono's time for every millisecond pattern: both sides of
    /// midnight, the epoch, negative times, the same day twice (cached) and alternating days.
    #[test]
    fn utc_ms_is_chrono() {
        use chrono::TimeZone;
        let mut cases = vec![
            0i64,
            -1,
            1,
            999,
            1000,
            -1000,
            -86_400_000,
            86_399_999,
            86_400_000,
        ];
        for day in [
            -800_000i64,
            -1,
            0,
            1,
            19_723,
            19_724,
            2_932_896,
            2_932_897,
            100_000_000,
        ] {
            for ms in [0i64, 1, 999, 1_000, 43_200_123, 86_399_999] {
                cases.push(day * 86_400_000 + ms);
            }
        }
        cases.extend([
            i64::MIN,
            i64::MAX,
            i64::MIN / 2,
            i64::MAX / 2,
            8_210_298_412_799_999,
        ]);
        for pass in 0..2 {
            for (i, ms) in cases.iter().enumerate() {
                // Alternate with a far day so that the cache is both hit and missed.
                let ms = if pass == 1 && i % 2 == 0 {
                    -*ms / 3
                } else {
                    *ms
                };
                assert_eq!(
                    utc_ms(ms),
                    chrono::Utc.timestamp_millis_opt(ms).single(),
                    "{ms}"
                );
                assert_eq!(utc_ms(ms), chrono::Utc.timestamp_millis_opt(ms).single());
            }
        }
    }
}
