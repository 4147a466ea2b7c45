//! Loading the kernel program with aya, attaching it, and reading/writing its maps.

use std::fmt;

use aya::maps::{Array, HashMap, MapData, MapError, PerCpuArray, RingBuf};
use aya::programs::tc::{self, NlOptions, TcAttachOptions};
use aya::programs::{SchedClassifier, TcAttachType, Xdp, XdpMode};
use aya::{Ebpf, EbpfLoader};
use enrich_probe_ebpf as obj;

use super::events::EventReader;
use super::types::{FlowState, RawConfig, TwinKey, Verdict, CONFIG_VERSION, SNAP_MAX};
use super::KernelError;

/// Where and how the program runs on an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AttachMode {
    /// XDP in the driver.
    XdpNative,
    /// XDP in the generic (SKB) path: any device, slower.
    XdpGeneric,
    /// Native XDP, falling back to generic when the driver refuses.
    XdpAuto,
    /// TC classifier on ingress (tcx on kernels ≥ 6.6, else a clsact qdisc).
    Tc,
}

impl fmt::Display for AttachMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::XdpNative => "native XDP",
            Self::XdpGeneric => "generic XDP",
            Self::XdpAuto => "XDP (native, else generic)",
            Self::Tc => "TC ingress",
        })
    }
}

/// Load-time settings. Defaults follow `ACCOUNTING.md` and the issue (drop, 8 first packets,
/// whole frames up to 2048 bytes while classifying, 64 payload bytes with headers).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeOptions {
    /// Pass packets on to the stack (XDP_PASS / TC_ACT_OK) instead of dropping them.
    pub pass: bool,
    /// Packets of a new flow always copied to user space.
    pub first_packets: u32,
    /// Bytes copied per packet while a flow is classifying (at most `SNAP_MAX`, 2048).
    pub snap_len: u32,
    /// Payload bytes after the L4 header under the "QoE headers" verdict.
    pub hdr_payload: u32,
    /// Wake the reader every this many records...
    pub wake_every: u32,
    /// ...or when this many bytes wait in the ring.
    pub wake_bytes: u32,
    /// Entries of the flow and verdict LRU maps.
    pub flow_capacity: u32,
    /// Ring buffer size in bytes (a power of two, multiple of the page size).
    pub ring_bytes: u32,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        Self {
            pass: false,
            first_packets: 8,
            snap_len: crate::flow::DEFAULT_SNAP_LEN,
            hdr_payload: 64,
            wake_every: 32,
            wake_bytes: 64 * 1024,
            flow_capacity: 65_536,
            ring_bytes: 16 << 20,
        }
    }
}

/// Sum over CPUs of the kernel's counters (`enum counter` in `probe.h`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelCounters {
    pub packets: u64,
    pub accounted: u64,
    pub not_accounted_non_ip: u64,
    pub not_accounted_malformed: u64,
    pub not_accounted_fragment: u64,
    pub map_full: u64,
    pub ring_full: u64,
    pub events: u64,
    pub event_bytes: u64,
    pub new_flows: u64,
}

impl KernelCounters {
    pub fn not_accounted(&self) -> u64 {
        self.not_accounted_non_ip + self.not_accounted_malformed + self.not_accounted_fragment
    }
}

const COUNTERS: u32 = 10;

/// The tap's kernel program, loaded (maps created) and optionally attached to one interface.
/// Dropping it detaches the program and frees the maps.
pub struct Probe {
    ebpf: Ebpf,
    attached: Option<(String, AttachMode)>,
}

fn map_err(name: &'static str) -> impl FnOnce(MapError) -> KernelError {
    move |source| KernelError::Map { name, source }
}

impl Probe {
    /// Creates the maps and writes the configuration. Needs CAP_BPF (or root).
    pub fn load(opts: &ProbeOptions) -> Result<Self, KernelError> {
        let mut loader = EbpfLoader::new();
        loader
            .map_max_entries(obj::MAP_FLOWS, opts.flow_capacity)
            .map_max_entries(obj::MAP_VERDICTS, opts.flow_capacity)
            .map_max_entries(obj::MAP_EVENTS, opts.ring_bytes);
        let ebpf = loader.load(obj::PROBE_OBJ).map_err(KernelError::Load)?;
        let mut probe = Self {
            ebpf,
            attached: None,
        };
        probe.configure(opts)?;
        Ok(probe)
    }

    /// Rewrites the configuration; takes effect on the next packet.
    pub fn configure(&mut self, opts: &ProbeOptions) -> Result<(), KernelError> {
        let cfg = RawConfig {
            version: CONFIG_VERSION,
            pass: u32::from(opts.pass),
            first_packets: opts.first_packets,
            snap_len: opts.snap_len.min(SNAP_MAX),
            hdr_payload: opts.hdr_payload,
            wake_every: opts.wake_every.max(1),
            wake_bytes: opts.wake_bytes,
            _pad: 0,
        };
        let map = self
            .ebpf
            .map_mut(obj::MAP_CONFIG)
            .ok_or(KernelError::MissingMap(obj::MAP_CONFIG))?;
        let mut arr: Array<_, RawConfig> =
            Array::try_from(map).map_err(map_err(obj::MAP_CONFIG))?;
        arr.set(0, cfg, 0).map_err(map_err(obj::MAP_CONFIG))
    }

    /// Attaches to `interface` (in the calling thread's network namespace) and returns the mode
    /// in force. Needs CAP_NET_ADMIN and CAP_BPF. One interface per `Probe`.
    pub fn attach(&mut self, interface: &str, mode: AttachMode) -> Result<AttachMode, KernelError> {
        let ifindex = ifindex(interface)?;
        let tries: &[AttachMode] = match mode {
            AttachMode::XdpAuto => &[AttachMode::XdpNative, AttachMode::XdpGeneric],
            AttachMode::XdpNative => &[AttachMode::XdpNative],
            AttachMode::XdpGeneric => &[AttachMode::XdpGeneric],
            AttachMode::Tc => &[AttachMode::Tc],
        };
        let mut attempts = Vec::new();
        for &m in tries {
            let res = match m {
                AttachMode::Tc => self.attach_tc(interface),
                _ => self.attach_xdp(ifindex, m),
            };
            match res {
                Ok(()) => {
                    self.attached = Some((interface.to_string(), m));
                    return Ok(m);
                }
                Err(e) => attempts.push((m, error_chain(&e))),
            }
        }
        Err(KernelError::Attach {
            interface: interface.to_string(),
            attempts,
        })
    }

    fn attach_xdp(&mut self, ifindex: u32, mode: AttachMode) -> Result<(), KernelError> {
        let name = obj::XDP_PROGRAM;
        let perr = |source| KernelError::Program { name, source };
        let prog: &mut Xdp = self
            .ebpf
            .program_mut(name)
            .ok_or(KernelError::MissingProgram(name))?
            .try_into()
            .map_err(perr)?;
        if prog.fd().is_err() {
            prog.load().map_err(perr)?;
        }
        let xmode = if mode == AttachMode::XdpNative {
            XdpMode::Driver
        } else {
            XdpMode::Skb
        };
        prog.attach_to_if_index(ifindex, xmode).map_err(perr)?;
        Ok(())
    }

    fn attach_tc(&mut self, interface: &str) -> Result<(), KernelError> {
        let name = obj::TC_PROGRAM;
        let perr = |source| KernelError::Program { name, source };
        let prog: &mut SchedClassifier = self
            .ebpf
            .program_mut(name)
            .ok_or(KernelError::MissingProgram(name))?
            .try_into()
            .map_err(perr)?;
        if prog.fd().is_err() {
            prog.load().map_err(perr)?;
        }
        // tcx first (kernel ≥ 6.6, detached when the link is dropped); else the clsact qdisc.
        if prog.attach(interface, TcAttachType::Ingress).is_ok() {
            return Ok(());
        }
        // EEXIST when a clsact qdisc is already there, which is what we want.
        let _ = tc::qdisc_add_clsact(interface);
        prog.attach_with_options(
            interface,
            TcAttachType::Ingress,
            TcAttachOptions::Netlink(NlOptions::default()),
        )
        .map_err(perr)?;
        Ok(())
    }

    /// The interface and mode the program is attached with, if any.
    pub fn attached(&self) -> Option<(&str, AttachMode)> {
        self.attached.as_ref().map(|(i, m)| (i.as_str(), *m))
    }

    /// Takes the ring buffer out of the probe (once).
    pub fn take_events(&mut self) -> Result<EventReader, KernelError> {
        let map = self
            .ebpf
            .take_map(obj::MAP_EVENTS)
            .ok_or(KernelError::EventsTaken)?;
        let ring = RingBuf::try_from(map).map_err(map_err(obj::MAP_EVENTS))?;
        Ok(EventReader::new(ring))
    }

    /// Sums the per-CPU counters.
    pub fn counters(&self) -> Result<KernelCounters, KernelError> {
        let name = obj::MAP_COUNTERS;
        let map = self.ebpf.map(name).ok_or(KernelError::MissingMap(name))?;
        let arr: PerCpuArray<&MapData, u64> = PerCpuArray::try_from(map).map_err(map_err(name))?;
        let mut v = [0u64; COUNTERS as usize];
        for (i, slot) in (0..COUNTERS).zip(v.iter_mut()) {
            let per_cpu = arr.get(&i, 0).map_err(map_err(name))?;
            *slot = per_cpu.iter().fold(0u64, |a, b| a.wrapping_add(*b));
        }
        Ok(KernelCounters {
            packets: v[0],
            accounted: v[1],
            not_accounted_non_ip: v[2],
            not_accounted_malformed: v[3],
            not_accounted_fragment: v[4],
            map_full: v[5],
            ring_full: v[6],
            events: v[7],
            event_bytes: v[8],
            new_flows: v[9],
        })
    }

    fn flow_map(&self) -> Result<HashMap<&MapData, TwinKey, FlowState>, KernelError> {
        let name = obj::MAP_FLOWS;
        let map = self.ebpf.map(name).ok_or(KernelError::MissingMap(name))?;
        HashMap::try_from(map).map_err(map_err(name))
    }

    /// One flow's state, if the kernel has it.
    pub fn flow(&self, key: &TwinKey) -> Result<Option<FlowState>, KernelError> {
        match self.flow_map()?.get(key, 0) {
            Ok(st) => Ok(Some(st)),
            Err(MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(KernelError::Map {
                name: obj::MAP_FLOWS,
                source: e,
            }),
        }
    }

    /// Calls `f` for every flow in the map. Entries evicted or deleted while iterating are
    /// skipped (the map is live); returns how many were visited.
    pub fn for_each_flow(
        &self,
        mut f: impl FnMut(&TwinKey, &FlowState),
    ) -> Result<usize, KernelError> {
        let map = self.flow_map()?;
        let mut n = 0;
        for item in map.iter() {
            match item {
                Ok((k, v)) => {
                    f(&k, &v);
                    n += 1;
                }
                Err(MapError::KeyNotFound) => continue,
                Err(e) => {
                    return Err(KernelError::Map {
                        name: obj::MAP_FLOWS,
                        source: e,
                    })
                }
            }
        }
        Ok(n)
    }

    /// Removes a finished flow's state and verdict (both absent is fine).
    pub fn forget_flow(&mut self, key: &TwinKey) -> Result<(), KernelError> {
        for name in [obj::MAP_FLOWS, obj::MAP_VERDICTS] {
            let map = self
                .ebpf
                .map_mut(name)
                .ok_or(KernelError::MissingMap(name))?;
            let res = match name {
                n if n == obj::MAP_FLOWS => {
                    HashMap::<_, TwinKey, FlowState>::try_from(map).and_then(|mut m| m.remove(key))
                }
                _ => HashMap::<_, TwinKey, u32>::try_from(map).and_then(|mut m| m.remove(key)),
            };
            match res {
                Ok(()) | Err(MapError::KeyNotFound) => {}
                Err(source) => return Err(KernelError::Map { name, source }),
            }
        }
        Ok(())
    }

    /// Tells the kernel what to send of a flow's further packets (after its first packets).
    pub fn set_verdict(&mut self, key: &TwinKey, verdict: Verdict) -> Result<(), KernelError> {
        let name = obj::MAP_VERDICTS;
        let map = self
            .ebpf
            .map_mut(name)
            .ok_or(KernelError::MissingMap(name))?;
        let mut m: HashMap<_, TwinKey, u32> = HashMap::try_from(map).map_err(map_err(name))?;
        m.insert(key, verdict as u32, 0).map_err(map_err(name))
    }

    /// Run time and run count of the attached program (`kernel.bpf_stats_enabled` must be 1,
    /// otherwise both stay 0).
    pub fn run_stats(&self) -> Result<(std::time::Duration, u64), KernelError> {
        let (name, info) = match self.attached {
            Some((_, AttachMode::Tc)) => {
                let n = obj::TC_PROGRAM;
                let p: &SchedClassifier = self
                    .ebpf
                    .program(n)
                    .ok_or(KernelError::MissingProgram(n))?
                    .try_into()
                    .map_err(|source| KernelError::Program { name: n, source })?;
                (n, p.info())
            }
            _ => {
                let n = obj::XDP_PROGRAM;
                let p: &Xdp = self
                    .ebpf
                    .program(n)
                    .ok_or(KernelError::MissingProgram(n))?
                    .try_into()
                    .map_err(|source| KernelError::Program { name: n, source })?;
                (n, p.info())
            }
        };
        let info = info.map_err(|source| KernelError::Program { name, source })?;
        Ok((info.run_time(), info.run_count()))
    }
}

fn ifindex(interface: &str) -> Result<u32, KernelError> {
    let c = std::ffi::CString::new(interface)
        .map_err(|_| KernelError::NoSuchInterface(interface.to_string()))?;
    // SAFETY: a valid NUL-terminated string for the duration of the call.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        return Err(KernelError::NoSuchInterface(interface.to_string()));
    }
    Ok(idx)
}

/// An error and its sources on one line (aya puts the verifier log in a source).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        cur = inner.source();
    }
    s
}
