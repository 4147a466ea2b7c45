//! Compiles the kernel program (`src/probe.bpf.c`) with clang-19 into `$OUT_DIR/probe.bpf.o`.
//!
//! `CLANG` overrides the compiler (default `clang-19`). There is no fallback: without a BPF-capable
//! clang the build stops with a message that says what to install.

use std::{env, path::PathBuf, process::Command};

fn main() {
    let manifest =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let src = manifest.join("src/probe.bpf.c");
    let header = manifest.join("src/probe.h");
    println!("cargo:rerun-if-changed={}", src.display());
    println!("cargo:rerun-if-changed={}", header.display());
    println!("cargo:rerun-if-env-changed=CLANG");

    let clang = env::var("CLANG").unwrap_or_else(|_| "clang-19".to_string());
    let obj = out.join("probe.bpf.o");
    let mut cmd = Command::new(&clang);
    cmd.args([
        "-target", "bpf", "-mcpu=v3", "-O2", "-g", "-Wall", "-Werror",
    ]);
    cmd.arg("-I").arg(manifest.join("src"));
    // <linux/bpf.h> pulls <asm/types.h>, which Debian keeps under the multiarch include folder.
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let multiarch = PathBuf::from(format!("/usr/include/{arch}-linux-gnu"));
    if multiarch.is_dir() {
        cmd.arg("-I").arg(multiarch);
    }
    cmd.arg("-c").arg(&src).arg("-o").arg(&obj);

    let status = match cmd.status() {
        Ok(s) => s,
        Err(e) => panic!(
            "\n\nenrich-probe-ebpf: cannot run `{clang}` ({e}).\n\
             The tap's kernel program is C compiled for BPF with clang 19:\n\
             \x20   apt-get install -y clang-19\n\
             or set CLANG=/path/to/a/clang that supports `-target bpf -mcpu=v3`.\n\n"
        ),
    };
    if !status.success() {
        panic!(
            "enrich-probe-ebpf: `{clang}` failed to compile {} ({status})",
            src.display()
        );
    }
}
