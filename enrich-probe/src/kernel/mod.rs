//! Loading and driving the tap's kernel program (`enrich-probe-ebpf`) with aya.
//!
//! [`Probe::load`] creates the maps and writes the configuration, [`Probe::attach`] attaches the
//! XDP program (native, falling back to generic) or the TC classifier, [`Probe::take_events`]
//! gives the ring-buffer reader, and the flow map, verdict map and counters are read or written
//! through the probe. Dropping the probe detaches everything.
//!
//! # Privileges
//! Root is not required. Loading needs `CAP_BPF` and `CAP_PERFMON`, attaching `CAP_NET_ADMIN`:
//! `setcap cap_bpf,cap_perfmon,cap_net_admin+ep supernetflow` (kernel ≥ 5.8; memory is charged
//! to the cgroup on ≥ 5.11, so no RLIMIT_MEMLOCK change is needed). `CAP_PERFMON` is needed
//! because without it the verifier's Spectre v1 hardening refuses packet-pointer arithmetic with a
//! variable offset ("pointer arithmetic with it prohibited for !root"), which skipping IPv4
//! options and IPv6 extension headers requires. Checked by running `tests/xdp_attach.rs` as uid
//! 65534 with exactly these three capabilities (plus `CAP_NET_RAW` for the test's own sender):
//! all three attach modes pass; without `CAP_PERFMON` the load is refused; without
//! `CAP_NET_ADMIN` attaching is.
//!
//! # Layout
//! - `types.rs`: `#[repr(C)]` mirrors of `probe.h` with size/offset assertions.
//! - `loader.rs`: [`Probe`], [`ProbeOptions`], [`AttachMode`], [`KernelCounters`].
//! - `events.rs`: [`EventReader`] and the decoded [`PacketEvent`].
//! - `live.rs`: [`run_live`], the loop between attach and shutdown; [`MonoClock`].
//! - `error.rs`: [`KernelError`].

mod error;
mod events;
mod live;
mod loader;
pub mod types;

pub use error::KernelError;
pub use events::{DrainStats, EventDecodeError, EventReader, PacketEvent};
pub use live::{run_live, LiveOptions, LiveStats, MonoClock};
pub use loader::{AttachMode, KernelCounters, Probe, ProbeOptions};
pub use types::{FlowState, SendReason, TwinKey, Verdict};
