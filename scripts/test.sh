#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine with the Rust toolchain:
#
#   ./scripts/test.sh
#
# It installs what the tests need when it is missing (Debian packages: tshark, softflowd, nfdump,
# pmacct, tcpreplay, libpcap-dev, jq, clang, a C++ compiler, chromium; cargo-fuzz; the
# Kafka-protocol brokers tansu and noida-db, the Python Parquet readers, and the Compose
# Specification's JSON Schema with Python's jsonschema, from PyPI), then runs: cargo fmt
# --check, clippy with warnings as errors, every test of the workspace (unit, property, end to end
# with the real peers), and a short smoke run of each fuzz target.
#
# Environment:
#   SNF_TESTDATA      the shared test data (default: <repo>/../shared/testdata). Tests that need it
#                     print "SKIPPED: ..." without it.
#   CARGO_TARGET_DIR  build cache (default: ~/.cache/supernetflow/target, outside the clone, so a
#                     fresh clone reuses an earlier build).
#   SNF_FUZZ_SECS     seconds per fuzz target in the smoke run (default 10; 0 skips it).
#   SNF_NO_INSTALL=1  never install anything (fail or skip instead).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

export SNF_TESTDATA=${SNF_TESTDATA:-$root/../shared/testdata}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/supernetflow/target}
export CARGO_TERM_COLOR=${CARGO_TERM_COLOR:-never}
fuzz_secs=${SNF_FUZZ_SECS:-10}

step() { printf '\n==> %s\n' "$*"; }

# --- Debian packages --------------------------------------------------------------------------
# command → package that provides it
declare -A need=(
    [tshark]=tshark
    [softflowd]=softflowd
    [nfcapd]=nfdump
    [nfacctd]=pmacct
    [tcpreplay]=tcpreplay
    [jq]=jq
    [c++]=g++
    [clang]=clang
    # the tap's kernel program (enrich-probe-ebpf/build.rs): BPF target, -mcpu=v3
    [clang-19]=clang-19
    [promtool]=prometheus
    # tests/dashboard.rs loads the NOC page in headless Chromium
    [chromium]=chromium
)
missing=()
for cmd in "${!need[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 || [ -x "/usr/sbin/$cmd" ] || missing+=("${need[$cmd]}")
done
[ -e /usr/include/pcap/pcap.h ] || missing+=(libpcap-dev)
if [ ${#missing[@]} -gt 0 ]; then
    if [ "${SNF_NO_INSTALL:-0}" = 1 ]; then
        echo "test.sh: missing packages (SNF_NO_INSTALL=1): ${missing[*]}" >&2
        exit 2
    fi
    step "installing Debian packages: ${missing[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    # tshark asks whether non-root users may capture: answer for it.
    echo "wireshark-common wireshark-common/install-setuid boolean false" | $sudo debconf-set-selections 2>/dev/null || true
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    # The prometheus package is here for promtool only: keep its server from being started by
    # the install (policy-rc.d 101 = "do not start services"), unless the host already has a policy.
    policy_added=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
        $sudo chmod +x /usr/sbin/policy-rc.d
        policy_added=1
    fi
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    [ "$policy_added" = 0 ] || $sudo rm -f /usr/sbin/policy-rc.d
fi
export PATH="$PATH:/usr/sbin:/sbin"

if [ ! -d "$SNF_TESTDATA" ]; then
    echo "test.sh: WARNING: no shared test data at $SNF_TESTDATA (set SNF_TESTDATA):" \
        "tests against real captures will print SKIPPED" >&2
fi

# --- Kafka-protocol brokers and Python readers (Parquet tests) --------------------------------
if [ "${SNF_NO_INSTALL:-0}" != 1 ]; then
    if [ -x scripts/brokers.sh ]; then
        step "Kafka-protocol brokers for the tests (tansu, noida-db)"
        scripts/brokers.sh install
    fi
    py=$HOME/.cache/supernetflow/py
    if ! PYTHONPATH=$py python3 -c 'import pyarrow, duckdb' 2>/dev/null; then
        step "pyarrow and duckdb (reading our Parquet in the tests)"
        python3 -m pip install -q --target "$py" pyarrow duckdb
    fi
    # The Compose Specification's JSON Schema (tests/compose.rs validates docker-compose.yml
    # against it), as the check-jsonschema package vendors it; only the schema file is used.
    cs=$HOME/.cache/supernetflow/compose-spec
    if [ ! -f "$cs/check_jsonschema/builtin_schemas/vendor/compose-spec.json" ]; then
        step "the Compose Specification schema (check-jsonschema, PyPI)"
        rm -rf "$cs.tmp"
        PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q --no-deps --target "$cs.tmp" check-jsonschema==0.39.0
        rm -rf "$cs"
        mv "$cs.tmp" "$cs"
    fi
    js=$HOME/.cache/supernetflow/jsonschema
    if ! PYTHONPATH=$js python3 -c 'import jsonschema' 2>/dev/null; then
        step "Python jsonschema (validates docker-compose.yml)"
        PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q --target "$js" 'jsonschema>=4.18'
    fi
    spark=$HOME/.cache/supernetflow/pyspark
    if ! PYTHONPATH=$spark python3 -c 'import pyspark' 2>/dev/null; then
        step "pyspark (Spark reads our Parquet; runs on the machine's Java 17)"
        python3 -m pip install -q --target "$spark" pyspark ||
            echo "test.sh: pyspark did not install: the Spark reader check will print SKIPPED" >&2
    fi
fi

# --- Rust checks and tests -------------------------------------------------------------------
step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo test (workspace)"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --locked --no-fail-fast --failure-output final
    # nextest does not run doctests
    cargo test --workspace --locked --doc
else
    cargo test --workspace --locked --no-fail-fast
fi

step "benchmarks compile (run them with cargo bench / bench/loopback.sh)"
# In the test profile, on the artifacts the test step just built: this checks that every bench
# target compiles without a second, optimised (LTO) build of the whole tree, which took 10 of a
# cold run's 61 minutes (2026-12-08). `cargo bench` itself builds the optimised bench profile.
cargo build --workspace --benches --locked --profile test >/dev/null

# --- Fuzz smoke --------------------------------------------------------------------------------
if [ "$fuzz_secs" != 0 ]; then
    if ! cargo fuzz --version >/dev/null 2>&1; then
        if [ "${SNF_NO_INSTALL:-0}" = 1 ]; then
            echo "test.sh: cargo-fuzz missing (SNF_NO_INSTALL=1): fuzz smoke SKIPPED" >&2
            fuzz_secs=0
        else
            step "installing cargo-fuzz"
            cargo install --locked cargo-fuzz
        fi
    fi
    if [ "$fuzz_secs" != 0 ]; then
        step "fuzz smoke: ${fuzz_secs}s per target"
        # cargo-fuzz keeps its own target dir inside fuzz/; point it at the cache too.
        CARGO_TARGET_DIR="$CARGO_TARGET_DIR/fuzz" scripts/fuzz.sh "$fuzz_secs"
    fi
fi

step "all tests passed"
