//! Shared by the privileged tap tests (`xdp_attach.rs`, `xdp_differential.rs`): a network
//! namespace with a veth pair that is removed on drop, entering it from the test thread, an
//! AF_PACKET sender, a classic-pcap reader, and frame builders.
//!
//! Nothing here touches the host's interfaces: the veth pair is created inside the namespace.
#![allow(dead_code)]

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use enrich_probe::kernel::{KernelCounters, Probe, ProbeOptions};

/// `SNF_XDP_DEV=TX,RX`: use this existing veth pair of the current namespace instead of creating
/// a namespace, and do not require root. This is how the tests check that CAP_BPF + CAP_NET_ADMIN
/// (+ CAP_NET_RAW for the test's own AF_PACKET sender) are enough, e.g.
/// `ip netns exec NS setpriv --reuid=65534 --regid=65534 --clear-groups
///  --inh-caps=-all,+bpf,+net_admin,+net_raw --ambient-caps=-all,+bpf,+net_admin,+net_raw
///  env SNF_XDP_DEV=a,b ./xdp_attach native_xdp`.
fn given_devices() -> Option<(String, String)> {
    let v = std::env::var("SNF_XDP_DEV").ok()?;
    let (tx, rx) = v.split_once(',')?;
    Some((tx.to_string(), rx.to_string()))
}

/// Prints a loud SKIPPED line and returns false when the test cannot run here.
pub fn privileged(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if given_devices().is_none() && unsafe { libc::geteuid() } != 0 {
        eprintln!("\n*** SKIPPED {test}: needs root (CAP_BPF, CAP_NET_ADMIN, netns) ***\n");
        return false;
    }
    if !Path::new("/usr/sbin/ip").exists() && !Path::new("/sbin/ip").exists() {
        eprintln!("\n*** SKIPPED {test}: iproute2 `ip` not found ***\n");
        return false;
    }
    // The object is embedded at build time; whether the kernel takes BPF at all is the question.
    if let Err(e) = Probe::load(&ProbeOptions {
        flow_capacity: 64,
        ring_bytes: 1 << 16,
        ..ProbeOptions::default()
    }) {
        eprintln!("\n*** SKIPPED {test}: cannot load BPF here: {e} ***\n");
        return false;
    }
    true
}

fn ip(args: &[&str]) -> io::Result<()> {
    let out = Command::new("ip").args(args).output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// A namespace `snf-<pid>-<tag>` holding a veth pair `snf<pid><tag>t` (send) ↔ `snf<pid><tag>r`
/// (receive, where the program attaches). Deleted, with its veths, on drop.
pub struct NetNs {
    pub name: String,
    pub tx: String,
    pub rx: String,
    /// Made by this process (else given by `SNF_XDP_DEV` and left alone).
    owned: bool,
}

impl NetNs {
    pub fn create(tag: &str) -> io::Result<Self> {
        if let Some((tx, rx)) = given_devices() {
            return Ok(Self {
                name: String::new(),
                tx,
                rx,
                owned: false,
            });
        }
        let pid = std::process::id();
        let ns = Self {
            name: format!("snf-{pid}-{tag}"),
            tx: format!("snf{pid}{tag}t"),
            rx: format!("snf{pid}{tag}r"),
            owned: true,
        };
        assert!(ns.rx.len() <= 15, "interface name too long: {}", ns.rx);
        ip(&["netns", "add", &ns.name])?;
        // From here on, Drop cleans up whatever was made.
        // No IPv6 on the veths: no router solicitations or MLD reports mixed into the counts.
        let sysctl = Command::new("ip")
            .args(["netns", "exec", &ns.name, "sysctl", "-qw"])
            .args([
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ])
            .status()?;
        if !sysctl.success() {
            return Err(io::Error::other(
                "sysctl disable_ipv6 in the namespace failed",
            ));
        }
        let n = ns.name.as_str();
        ip(&[
            "-n", n, "link", "add", &ns.tx, "type", "veth", "peer", "name", &ns.rx,
        ])?;
        for dev in [&ns.tx, &ns.rx] {
            ip(&["-n", n, "link", "set", dev, "mtu", "65000", "up"])?;
        }
        Ok(ns)
    }

    /// Moves the calling thread into the namespace until the guard drops.
    pub fn enter(&self) -> io::Result<Option<Entered>> {
        if !self.owned {
            return Ok(None);
        }
        let here = File::open("/proc/thread-self/ns/net")?;
        let there = File::open(format!("/run/netns/{}", self.name))?;
        // SAFETY: valid namespace descriptors; setns only affects this thread.
        if unsafe { libc::setns(there.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Some(Entered { back: here }))
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        if !self.owned {
            return;
        }
        if let Err(e) = ip(&["netns", "del", &self.name]) {
            eprintln!("cleanup: {e}");
        }
    }
}

/// Returns the thread to the namespace it came from.
pub struct Entered {
    back: File,
}

impl Drop for Entered {
    fn drop(&mut self) {
        // SAFETY: valid descriptor of the original namespace.
        if unsafe { libc::setns(self.back.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            eprintln!("cleanup: setns back: {}", io::Error::last_os_error());
        }
    }
}

/// An AF_PACKET raw socket bound to one interface (of the current namespace), for writing frames.
pub struct PacketSocket {
    fd: OwnedFd,
    ifindex: i32,
}

impl PacketSocket {
    pub fn open(ifname: &str) -> io::Result<Self> {
        let c = std::ffi::CString::new(ifname).map_err(io::Error::other)?;
        // SAFETY: NUL-terminated name.
        let ifindex = unsafe { libc::if_nametoindex(c.as_ptr()) };
        if ifindex == 0 {
            return Err(io::Error::last_os_error());
        }
        // Protocol 0: send only, never receive.
        // SAFETY: plain socket call.
        let raw = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(Self {
            fd,
            ifindex: ifindex as i32,
        })
    }

    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        // SAFETY: zeroed sockaddr_ll is valid; fields set below.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = self.ifindex;
        sll.sll_halen = 6;
        loop {
            // SAFETY: buffer and address valid for the call.
            let rc = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    frame.as_ptr().cast(),
                    frame.len(),
                    0,
                    (&sll as *const libc::sockaddr_ll).cast(),
                    std::mem::size_of::<libc::sockaddr_ll>() as u32,
                )
            };
            if rc >= 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            // A full veth ring pushes back with ENOBUFS: wait and resend.
            if e.raw_os_error() == Some(libc::ENOBUFS) {
                std::thread::sleep(Duration::from_micros(200));
                continue;
            }
            return Err(e);
        }
    }
}

/// An AF_PACKET socket receiving every frame that reaches the stack on one interface (taps run
/// after XDP, so an XDP_DROP'd frame never shows up here; before TC ingress, so TC's verdict does
/// not matter to it).
pub struct TapSocket {
    fd: OwnedFd,
}

impl TapSocket {
    pub fn open(ifname: &str) -> io::Result<Self> {
        let c = std::ffi::CString::new(ifname).map_err(io::Error::other)?;
        // SAFETY: NUL-terminated name.
        let ifindex = unsafe { libc::if_nametoindex(c.as_ptr()) };
        if ifindex == 0 {
            return Err(io::Error::last_os_error());
        }
        let all = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: plain socket call.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK,
                i32::from(all),
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor we own.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: zeroed sockaddr_ll is valid; fields set below.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = all;
        sll.sll_ifindex = ifindex as i32;
        // SAFETY: valid address for the call.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Self { fd })
    }

    /// Frames received until none arrives for `quiet`.
    pub fn count(&self, quiet: Duration) -> usize {
        let mut buf = vec![0u8; 65536];
        let mut n = 0;
        let mut last = Instant::now();
        while last.elapsed() < quiet {
            // SAFETY: buffer valid for its length.
            let rc =
                unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if rc >= 0 {
                n += 1;
                last = Instant::now();
            } else {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        n
    }
}

/// Waits until the kernel has seen `n` packets (or `timeout`), returning the last counters.
pub fn wait_for_packets(probe: &Probe, n: u64, timeout: Duration) -> KernelCounters {
    let start = Instant::now();
    loop {
        let c = probe.counters().expect("reading the counters");
        if c.packets >= n || start.elapsed() > timeout {
            return c;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// One frame of a capture.
pub struct Frame {
    pub ts_ns: u64,
    pub data: Vec<u8>,
    /// Captured length shorter than the original: the frame was cut by the capture's snap length.
    pub truncated: bool,
}

/// Reads a classic pcap file (either byte order, µs or ns) with Ethernet link type. Returns
/// `Ok(None)` for other link types or formats (pcapng).
pub fn read_pcap_ethernet(path: &Path) -> io::Result<Option<Vec<Frame>>> {
    let b = std::fs::read(path)?;
    if b.len() < 24 {
        return Ok(None);
    }
    let magic = [b[0], b[1], b[2], b[3]];
    let (le, nanos) = match magic {
        [0xd4, 0xc3, 0xb2, 0xa1] => (true, false),
        [0xa1, 0xb2, 0xc3, 0xd4] => (false, false),
        [0x4d, 0x3c, 0xb2, 0xa1] => (true, true),
        [0xa1, 0xb2, 0x3c, 0x4d] => (false, true),
        _ => return Ok(None),
    };
    let u32at = |at: usize| -> Option<u32> {
        let s: [u8; 4] = b.get(at..at + 4)?.try_into().ok()?;
        Some(if le {
            u32::from_le_bytes(s)
        } else {
            u32::from_be_bytes(s)
        })
    };
    if u32at(20) != Some(1) {
        return Ok(None);
    }
    let mut out = Vec::new();
    let mut at = 24;
    while let (Some(sec), Some(frac), Some(incl), Some(orig)) =
        (u32at(at), u32at(at + 4), u32at(at + 8), u32at(at + 12))
    {
        let start = at + 16;
        let Some(data) = b.get(start..start + incl as usize) else {
            break; // a truncated last record: stop like tcpdump does
        };
        let frac_ns = if nanos {
            u64::from(frac)
        } else {
            u64::from(frac) * 1000
        };
        out.push(Frame {
            ts_ns: u64::from(sec) * 1_000_000_000 + frac_ns,
            data: data.to_vec(),
            truncated: orig > incl,
        });
        at = start + incl as usize;
    }
    Ok(Some(out))
}

/// The shared test data folder (SNF_TESTDATA, default `<workspace>/../shared/testdata`).
pub fn testdata() -> PathBuf {
    match std::env::var_os("SNF_TESTDATA") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata"),
    }
}

// --- frame builders ------------------------------------------------------------------------

pub const MAC: [u8; 12] = [0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1];

pub fn eth(ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = MAC.to_vec();
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An IPv4 header (no checksum needed by the program) followed by `l4`.
pub fn ipv4(proto: u8, src: [u8; 4], dst: [u8; 4], l4: &[u8]) -> Vec<u8> {
    let total = (20 + l4.len()) as u16;
    let mut h = vec![0x45, 0];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&[0, 1, 0, 0, 64, proto, 0, 0]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    h.extend_from_slice(l4);
    h
}

/// IPv6 header with the given next header, then `rest` (extension headers and transport).
pub fn ipv6(next: u8, src: [u8; 16], dst: [u8; 16], rest: &[u8]) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&(rest.len() as u16).to_be_bytes());
    h.extend_from_slice(&[next, 64]);
    h.extend_from_slice(&src);
    h.extend_from_slice(&dst);
    h.extend_from_slice(rest);
    h
}

pub fn tcp(sport: u16, dport: u16, seq: u32, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut t = Vec::with_capacity(20 + payload.len());
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    t.extend_from_slice(payload);
    t
}

pub fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::with_capacity(8 + payload.len());
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}
