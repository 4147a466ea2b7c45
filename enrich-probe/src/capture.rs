//! Capture files: legacy pcap (µs and ns) and pcapng, read as a stream with `pcap-parser`.
//!
//! Every frame is handed to a callback with its timestamp in ns since the epoch and its link type;
//! frames of a link type the tap cannot read are counted, not fatal. Timestamps are passed as they
//! are (captures stitched from several sources go backwards; the flow code copes).

use crate::error::ProbeError;
use crate::flow::LinkType;
use pcap_parser::pcapng::Block;
use pcap_parser::{PcapBlockOwned, PcapError};
use serde::Serialize;
use std::fs::File;
use std::path::Path;

/// One captured frame.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    /// Capture timestamp, ns since the Unix epoch (0 when the format has none).
    pub ts_ns: u64,
    /// Link type of the interface it was captured on.
    pub link: LinkType,
    /// The captured bytes (possibly cut at the snap length).
    pub data: &'a [u8],
    /// The frame's length on the wire.
    pub orig_len: u32,
}

/// Counters of the capture reader.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CaptureCounters {
    /// Files read.
    pub files: u64,
    /// Frames handed on.
    pub frames: u64,
    /// Bytes of the frames handed on, as they were on the wire (original lengths): the traffic
    /// a mirror port would have carried.
    pub wire_bytes: u64,
    /// Frames skipped: link type the tap does not read.
    pub unsupported_link: u64,
    /// Files whose end was cut short or damaged (the frames before it were read).
    pub truncated_files: u64,
}

/// Per pcapng interface: link type (None: unsupported), ticks per second, offset in seconds.
type Iface = (Option<LinkType>, u64, i64);

/// Reads `path` and calls `each` for every frame, in file order.
pub fn read_capture(
    path: &Path,
    counters: &mut CaptureCounters,
    mut each: impl FnMut(Frame<'_>),
) -> Result<(), ProbeError> {
    let io = |e: std::io::Error| ProbeError::Io(path.display().to_string(), e);
    let file = File::open(path).map_err(io)?;
    let mut reader = match pcap_parser::create_reader(1 << 20, file) {
        Ok(r) => r,
        Err(e) => {
            return Err(ProbeError::Capture(
                path.display().to_string(),
                format!("{e:?}"),
            ))
        }
    };
    counters.files += 1;
    let mut legacy: Option<(Option<LinkType>, bool)> = None;
    let mut ifaces: Vec<Iface> = Vec::new();
    let mut capacity = 1usize << 20;
    let mut stalled = false;
    loop {
        match reader.next() {
            Ok((offset, block)) => {
                stalled = false;
                match block {
                    PcapBlockOwned::LegacyHeader(h) => {
                        legacy =
                            Some((LinkType::from_dlt(h.network.0), h.is_nanosecond_precision()));
                    }
                    PcapBlockOwned::Legacy(b) => {
                        let (link, nanos) = legacy.unwrap_or((Some(LinkType::Ethernet), false));
                        let frac = if nanos {
                            u64::from(b.ts_usec)
                        } else {
                            u64::from(b.ts_usec).saturating_mul(1000)
                        };
                        let ts_ns = u64::from(b.ts_sec) * 1_000_000_000 + frac;
                        deliver(counters, &mut each, link, ts_ns, b.data, b.origlen);
                    }
                    PcapBlockOwned::NG(Block::SectionHeader(_)) => ifaces.clear(),
                    PcapBlockOwned::NG(Block::InterfaceDescription(idb)) => {
                        ifaces.push((
                            LinkType::from_dlt(idb.linktype.0),
                            idb.ts_resolution().unwrap_or(1_000_000).max(1),
                            idb.ts_offset(),
                        ));
                    }
                    PcapBlockOwned::NG(Block::EnhancedPacket(epb)) => {
                        let (link, per_sec, off) = ifaces
                            .get(epb.if_id as usize)
                            .copied()
                            .unwrap_or((Some(LinkType::Ethernet), 1_000_000, 0));
                        let ticks = (u64::from(epb.ts_high) << 32) | u64::from(epb.ts_low);
                        let ns = u128::from(ticks) * 1_000_000_000 / u128::from(per_sec);
                        let ns = (ns as i128 + i128::from(off) * 1_000_000_000).max(0);
                        let ts_ns = u64::try_from(ns).unwrap_or(u64::MAX);
                        deliver(counters, &mut each, link, ts_ns, epb.data, epb.origlen);
                    }
                    PcapBlockOwned::NG(Block::SimplePacket(spb)) => {
                        let link = ifaces.first().map_or(Some(LinkType::Ethernet), |i| i.0);
                        deliver(counters, &mut each, link, 0, spb.data, spb.origlen);
                    }
                    PcapBlockOwned::NG(_) => {}
                }
                reader.consume(offset);
            }
            Err(PcapError::Eof) => break,
            Err(PcapError::Incomplete(_)) => {
                if reader.reader_exhausted() {
                    // The last record is cut short: keep what was read.
                    counters.truncated_files += 1;
                    break;
                }
                if stalled {
                    // A refill brought nothing new: the record is larger than the buffer.
                    capacity *= 2;
                    if capacity > 1 << 26 || !reader.grow(capacity) {
                        counters.truncated_files += 1;
                        break;
                    }
                }
                stalled = true;
                if let Err(e) = reader.refill() {
                    tracing::warn!(file = %path.display(), error = ?e, "Capture read failed");
                    counters.truncated_files += 1;
                    break;
                }
            }
            Err(e) => {
                tracing::warn!(file = %path.display(), error = ?e, "Capture damaged, rest skipped");
                counters.truncated_files += 1;
                break;
            }
        }
    }
    Ok(())
}

fn deliver(
    counters: &mut CaptureCounters,
    each: &mut impl FnMut(Frame<'_>),
    link: Option<LinkType>,
    ts_ns: u64,
    data: &[u8],
    orig_len: u32,
) {
    match link {
        Some(link) => {
            counters.frames += 1;
            counters.wire_bytes += u64::from(orig_len);
            each(Frame {
                ts_ns,
                link,
                data,
                orig_len,
            });
        }
        None => counters.unsupported_link += 1,
    }
}
