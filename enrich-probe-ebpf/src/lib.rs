//! The kernel side of the tap: an XDP and TC program in C (`src/probe.bpf.c`), built by `build.rs`
//! with clang-19 (`-target bpf -mcpu=v3 -O2 -g`) and embedded here as an ELF object that the user
//! side (`enrich-probe::kernel`) loads with aya.
//!
//! # Layout
//! - `src/probe.h`: the records shared with user space (flow key, `flow_state` as in
//!   `enrich-probe/ACCOUNTING.md`, ring-buffer record, configuration, counter indices).
//!   `enrich-probe/src/kernel/types.rs` mirrors them with size assertions.
//! - `src/probe.bpf.c`: parser, per-flow accounting, ring-buffer sampling; entry points
//!   [`XDP_PROGRAM`] (section `xdp.frags`) and [`TC_PROGRAM`] (section `classifier`).
//! - `build.rs`: runs clang (`CLANG` overrides `clang-19`); a missing clang is a build error.

/// The compiled BPF object (ELF, with BTF).
pub static PROBE_OBJ: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/probe.bpf.o"));

/// XDP entry point (section `xdp.frags`: attaches on devices with multi-buffer/jumbo frames).
pub const XDP_PROGRAM: &str = "snf_xdp";
/// TC classifier entry point (section `classifier`).
pub const TC_PROGRAM: &str = "snf_tc";

/// LRU hash: canonical flow key → `flow_state`.
pub const MAP_FLOWS: &str = "snf_flows";
/// LRU hash: canonical flow key → verdict (u32), written by user space.
pub const MAP_VERDICTS: &str = "snf_verdicts";
/// Ring buffer of packet records.
pub const MAP_EVENTS: &str = "snf_events";
/// Per-CPU array of u64 counters (see `enum counter` in `probe.h`).
pub const MAP_COUNTERS: &str = "snf_counters";
/// Array with one `probe_config`.
pub const MAP_CONFIG: &str = "snf_config";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_is_bpf_elf_with_both_programs() {
        assert_eq!(&PROBE_OBJ[..4], b"\x7fELF");
        // e_machine (offset 18, little-endian) 247 = EM_BPF.
        assert_eq!(u16::from_le_bytes([PROBE_OBJ[18], PROBE_OBJ[19]]), 247);
        let has = |s: &str| PROBE_OBJ.windows(s.len()).any(|w| w == s.as_bytes());
        for name in [
            XDP_PROGRAM,
            TC_PROGRAM,
            "xdp.frags",
            "classifier",
            MAP_FLOWS,
            MAP_VERDICTS,
            MAP_EVENTS,
            MAP_COUNTERS,
            MAP_CONFIG,
        ] {
            assert!(has(name), "{name} missing from the object");
        }
    }
}
