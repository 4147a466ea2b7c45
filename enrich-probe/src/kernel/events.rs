//! Reading packet records from the ring buffer.
//!
//! The kernel batches wake-ups (`BPF_RB_NO_WAKEUP` except every `wake_every`-th record or when
//! `wake_bytes` wait), so a reader must not sleep on the descriptor alone: [`EventReader::wait`]
//! takes a timeout and [`EventReader::drain`] empties whatever is there, woken or not.

use std::os::fd::{AsFd, AsRawFd};
use std::time::Duration;

use aya::maps::{MapData, RingBuf};

use super::types::{SendReason, TwinKey, EVENT_HEADER_LEN};
use super::KernelError;

/// One packet copied by the kernel. `data` borrows the ring buffer until the callback returns.
#[derive(Debug, Clone, Copy)]
pub struct PacketEvent<'a> {
    /// `bpf_ktime_get_ns()`: CLOCK_MONOTONIC nanoseconds, not wall time.
    pub ts_ns: u64,
    pub key: TwinKey,
    /// 0: low → high endpoint of the key, 1: high → low.
    pub direction: u8,
    /// IP datagram length, as counted into the flow.
    pub ip_len: u32,
    /// Frame length on the wire (all fragments of a multi-buffer frame).
    pub wire_len: u32,
    /// Offset of the IP header in `data`.
    pub l3_off: u16,
    /// Offset of the transport header in `data` (0 when the protocol has none we parse).
    pub l4_off: u16,
    pub reason: SendReason,
    /// The first bytes of the frame, from the Ethernet header.
    pub data: &'a [u8],
}

/// Why a record could not be decoded (only a kernel object of another version produces these).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EventDecodeError {
    #[error("record of {0} bytes is shorter than its {EVENT_HEADER_LEN}-byte header")]
    Short(usize),
    #[error("record says {cap_len} bytes follow its header, only {have} do")]
    CapLen { cap_len: usize, have: usize },
}

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

impl<'a> PacketEvent<'a> {
    /// Decodes one record (`struct pkt_event` then `cap_len` bytes).
    pub fn decode(rec: &'a [u8]) -> Result<Self, EventDecodeError> {
        let hdr = rec
            .get(..EVENT_HEADER_LEN)
            .ok_or(EventDecodeError::Short(rec.len()))?;
        let mut low_addr = [0u8; 16];
        let mut high_addr = [0u8; 16];
        low_addr.copy_from_slice(&hdr[8..24]);
        high_addr.copy_from_slice(&hdr[24..40]);
        let key = TwinKey {
            low_addr,
            high_addr,
            low_port: le16(hdr, 40),
            high_port: le16(hdr, 42),
            scope: le32(hdr, 44),
            protocol: hdr[48],
            _pad: [0; 7],
        };
        let cap_len = usize::from(le16(hdr, 64));
        let body = &rec[EVENT_HEADER_LEN..];
        let data = body.get(..cap_len).ok_or(EventDecodeError::CapLen {
            cap_len,
            have: body.len(),
        })?;
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&hdr[0..8]);
        Ok(Self {
            ts_ns: u64::from_le_bytes(ts),
            key,
            ip_len: le32(hdr, 56),
            wire_len: le32(hdr, 60),
            l3_off: le16(hdr, 66),
            l4_off: le16(hdr, 68),
            direction: hdr[70],
            reason: SendReason::from(hdr[71]),
            data,
        })
    }
}

/// What one [`EventReader::drain`] saw.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct DrainStats {
    pub events: u64,
    pub undecodable: u64,
}

/// Consumer of the ring buffer `snf_events`, taken from a [`super::Probe`].
pub struct EventReader {
    ring: RingBuf<MapData>,
}

impl EventReader {
    pub(super) fn new(ring: RingBuf<MapData>) -> Self {
        Self { ring }
    }

    /// Waits up to `timeout` for a wake-up. `Ok(false)` on timeout; records may be waiting either
    /// way (batched wake-ups), so call [`Self::drain`] after it regardless.
    pub fn wait(&self, timeout: Duration) -> Result<bool, KernelError> {
        let mut pfd = libc::pollfd {
            fd: self.ring.as_fd().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: one valid pollfd, the descriptor is owned by `self.ring` for the whole call.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() == std::io::ErrorKind::Interrupted {
                return Ok(false);
            }
            return Err(KernelError::Poll(err));
        }
        Ok(rc > 0)
    }

    /// Hands every waiting record to `f`, oldest first, and returns how many there were. Records
    /// that do not decode are counted, not passed on.
    pub fn drain(&mut self, mut f: impl FnMut(PacketEvent<'_>)) -> DrainStats {
        let mut stats = DrainStats::default();
        while let Some(item) = self.ring.next() {
            match PacketEvent::decode(&item) {
                Ok(ev) => {
                    stats.events += 1;
                    f(ev);
                }
                Err(_) => stats.undecodable += 1,
            }
        }
        stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_header_and_bounds_cap_len() {
        let mut rec = vec![0u8; EVENT_HEADER_LEN + 3];
        rec[0..8].copy_from_slice(&42u64.to_le_bytes());
        rec[40..42].copy_from_slice(&443u16.to_le_bytes());
        rec[48] = 6;
        rec[56..60].copy_from_slice(&60u32.to_le_bytes());
        rec[64..66].copy_from_slice(&3u16.to_le_bytes());
        rec[70] = 1;
        rec[71] = 1;
        rec[72..].copy_from_slice(&[1, 2, 3]);
        let ev = PacketEvent::decode(&rec).unwrap();
        assert_eq!((ev.ts_ns, ev.key.low_port, ev.key.protocol), (42, 443, 6));
        assert_eq!(
            (ev.ip_len, ev.direction, ev.reason),
            (60, 1, SendReason::FirstPackets)
        );
        assert_eq!(ev.data, &[1, 2, 3]);
        rec[64..66].copy_from_slice(&4u16.to_le_bytes());
        assert_eq!(
            PacketEvent::decode(&rec).unwrap_err(),
            EventDecodeError::CapLen {
                cap_len: 4,
                have: 3
            }
        );
        assert_eq!(
            PacketEvent::decode(&rec[..10]).unwrap_err(),
            EventDecodeError::Short(10)
        );
    }

    proptest::proptest! {
        /// Any bytes: a record or an error, never a panic, and the data never past the record.
        #[test]
        fn decode_never_panics(rec in proptest::collection::vec(proptest::num::u8::ANY, 0..700)) {
            if let Ok(ev) = PacketEvent::decode(&rec) {
                proptest::prop_assert!(EVENT_HEADER_LEN + ev.data.len() <= rec.len());
            }
        }
    }
}
