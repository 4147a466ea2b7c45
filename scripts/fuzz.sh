#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ for N seconds each; exits non-zero on the first crash.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]      (default: 60 s; all eight targets, listed below)
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`) and a C++ compiler (libfuzzer-sys builds libFuzzer).
# Works on the stable toolchain: with --sanitizer none cargo-fuzz passes only stable flags
# (-Cpasses=sancov-module, -Cllvm-args=..., --cfg fuzzing). Overflow checks and debug assertions
# are on (-a), so arithmetic overflow in the decoder counts as a crash.
#
# Environment:
#   SNF_TESTDATA  test captures for the seed corpus (default: <repo>/../shared/testdata). The seeds
#                 are written to a temporary directory and deleted afterwards: never commit them.
#   SANITIZER     none (default) | address | ... Any real sanitizer is a -Z flag, which stable rustc
#                 refuses; the script then sets RUSTC_BOOTSTRAP=1 for the fuzz build only (the
#                 stable toolchain ships the sanitizer runtimes). Only here, never in normal builds.
#   FUZZ_JOBS     libFuzzer workers per target (default 1).
#   KEEP_CORPUS   a directory: the grown corpus is kept there (default: discarded).
#
# A crash leaves its input in fuzz/artifacts/<target>/; reproduce with
#   cargo fuzz run --sanitizer none -a <target> fuzz/artifacts/<target>/<file>
set -euo pipefail

secs=${1:-60}
if [ $# -gt 0 ]; then shift; fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then targets=(fuzz_v5 fuzz_session fuzz_ipfix_file fuzz_tap_packet fuzz_tls fuzz_quic fuzz_dns fuzz_rtp_stun); fi

root=$(cd "$(dirname "$0")/.." && pwd)
testdata=${SNF_TESTDATA:-$root/../shared/testdata}
sanitizer=${SANITIZER:-none}
jobs=${FUZZ_JOBS:-1}

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: cargo-fuzz is missing: cargo install cargo-fuzz" >&2
    exit 2
fi
if [ "$sanitizer" != none ]; then
    export RUSTC_BOOTSTRAP=1 # -Zsanitizer=$sanitizer on a stable toolchain (see above)
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/snf-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Seed corpus from the real captures' payloads. The builder is a plain (uninstrumented) example of
# the fuzz crate, built in the workspace's target dir so it reuses the collector's debug build.
if [ -d "$testdata" ]; then
    cargo run --quiet --manifest-path "$root/fuzz/Cargo.toml" --target-dir "${CARGO_TARGET_DIR:-$root/target}" \
        --example seeds -- "$testdata" "$work/seeds"
else
    echo "fuzz.sh: no test captures at $testdata (set SNF_TESTDATA): fuzzing without seeds" >&2
fi

cd "$root/fuzz"
for t in "${targets[@]}"; do
    cargo fuzz build --sanitizer "$sanitizer" --debug-assertions "$t"
done
parallel=()
if [ "$jobs" -gt 1 ]; then parallel=(-jobs="$jobs" -workers="$jobs"); fi

status=0
for t in "${targets[@]}"; do
    corpus="$work/corpus/$t"
    mkdir -p "$corpus" "artifacts/$t"
    seeds=()
    [ -d "$work/seeds/$t" ] && seeds=("$work/seeds/$t")
    echo "== $t: ${secs}s"
    log="$work/$t.log"
    if cargo fuzz run --sanitizer "$sanitizer" --debug-assertions "$t" "$corpus" "${seeds[@]}" -- \
        -max_total_time="$secs" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
        "${parallel[@]}" -print_final_stats=1 >"$log" 2>&1; then
        grep -E '^(stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb)|#[0-9]+.*DONE' "$log" || true
        if [ -n "${KEEP_CORPUS:-}" ]; then
            mkdir -p "$KEEP_CORPUS/$t"
            cp -n "$corpus"/* "$KEEP_CORPUS/$t"/ 2>/dev/null || true
        fi
    else
        echo "fuzz.sh: $t FAILED (crash, leak or timeout); input in fuzz/artifacts/$t/" >&2
        grep -E -A25 'panicked at|ERROR: libFuzzer|SUMMARY' "$log" | head -60 >&2 || tail -40 "$log" >&2
        status=1
    fi
done
exit $status
