//! Loading and driving the tap's kernel program (`enrich-probe-ebpf`) with aya.
//!
//! [`Probe::load`] creates the maps and writes the configuration, [`Probe::attach`] attaches the
//! XDP program (native, falling back to generic) or the TC classifier, [`Probe::take_events`]
//! gives the ring-buffer reader, and the flow map, verdict map and counters are read or written
//! through the probe. Dropping the probe detaches everything.
//!
//! # Privileges
//! Loading needs `CAP_BPF`; attaching needs `CAP_NET_ADMIN` as well. Root is not required:
//! `setcap cap_bpf,cap_net_admin+ep supernetflow` (kernel ≥ 5.8; memory is charged to the
//! cgroup on ≥ 5.11, so no RLIMIT_MEMLOCK change is needed).
//!
//! # Layout
//! - `types.rs`: `#[repr(C)]` mirrors of `probe.h` with size/offset assertions.
//! - `loader.rs`: [`Probe`], [`ProbeOptions`], [`AttachMode`], [`KernelCounters`].
//! - `events.rs`: [`EventReader`] and the decoded [`PacketEvent`].
//! - `error.rs`: [`KernelError`].

mod error;
mod events;
mod loader;
pub mod types;

pub use error::KernelError;
pub use events::{DrainStats, EventDecodeError, EventReader, PacketEvent};
pub use loader::{AttachMode, KernelCounters, Probe, ProbeOptions};
pub use types::{FlowState, RawFlowKey, SendReason, Verdict};
