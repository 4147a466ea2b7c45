#!/usr/bin/env bash
# Tap kernel program benchmark: kernel ns/packet and packets/s of enrich-probe-ebpf's XDP program
# against an empty XDP_DROP program, in the same run, on a veth pair inside a network namespace
# this script creates (and deletes on exit). Needs root, clang-19, bpftool, tcpreplay, iproute2, jq.
#
#   sudo bench/xdp.sh            # results as Markdown table rows on stdout, progress on stderr
#
# Two measurements per program, each repeated ROUNDS times, programs alternating:
#  1. live: tcpreplay --topspeed writes a capture (looped) into the sender veth; the program runs
#     on the receiving veth in native XDP. ns/packet = run_time_ns / run_cnt from the kernel's
#     BPF statistics (kernel.bpf_stats_enabled=1 for the run, restored after); pps = run_cnt / wall
#     time of the replay. The sender (tcpreplay through AF_PACKET) is the bottleneck on a veth, so
#     the pps ratio shows whether the program slows the receive path, not its ceiling.
#  2. test_run: BPF_PROG_TEST_RUN (`bpftool prog run ... repeat N`) on one TCP frame of an existing
#     flow: the program's cost alone, without the veth and the sender.
# The programs are loaded by `ip link set ... xdpdrv obj`, with no reader on the ring buffer and
# the default configuration (drop, 8 first packets per flow): on a looped capture, every flow is
# known after the first loop, so steady state is parse + flow lookup + accounting + verdict lookup.
#
# Environment: SNF_TESTDATA (default <repo>/../shared/testdata), BENCH_PCAP (default
# apps/ndpi/conferencing_voip/whatsapp_login_call.pcap), ROUNDS (3), LOOPS (200), REPEAT (2000000).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
testdata=${SNF_TESTDATA:-$root/../shared/testdata}
pcap=${BENCH_PCAP:-$testdata/apps/ndpi/conferencing_voip/whatsapp_login_call.pcap}
rounds=${ROUNDS:-3}
loops=${LOOPS:-200}
repeat=${REPEAT:-2000000}
export PATH="$PATH:/usr/sbin:/sbin"

[ "$(id -u)" -eq 0 ] || { echo "bench/xdp.sh: needs root" >&2; exit 2; }
for c in clang-19 bpftool tcpreplay ip jq; do
    command -v "$c" >/dev/null || { echo "bench/xdp.sh: missing $c" >&2; exit 2; }
done
[ -f "$pcap" ] || { echo "bench/xdp.sh: no capture $pcap" >&2; exit 2; }

tmp=$(mktemp -d)
ns="snf-bench-$$"
tx="snfb$$t"
rx="snfb$$r"
stats_before=$(sysctl -n kernel.bpf_stats_enabled)
cleanup() {
    ip netns del "$ns" 2>/dev/null || true
    sysctl -qw kernel.bpf_stats_enabled="$stats_before" || true
    rm -rf "$tmp"
}
trap cleanup EXIT

# --- programs ---------------------------------------------------------------------------------
inc=()
[ -d "/usr/include/$(uname -m)-linux-gnu" ] && inc=(-I "/usr/include/$(uname -m)-linux-gnu")
clang-19 -target bpf -mcpu=v3 -O2 -g "${inc[@]}" -I "$root/enrich-probe-ebpf/src" \
    -c "$root/enrich-probe-ebpf/src/probe.bpf.c" -o "$tmp/probe.o"
cat > "$tmp/drop.c" <<'C'
#include <linux/bpf.h>
__attribute__((section("xdp.frags"), used)) int snf_drop(struct xdp_md *ctx) { return XDP_DROP; }
char LICENSE[] __attribute__((section("license"), used)) = "Apache-2.0";
C
clang-19 -target bpf -mcpu=v3 -O2 -g "${inc[@]}" -c "$tmp/drop.c" -o "$tmp/drop.o"

# One TCP frame (IPv4, 100 bytes of payload) for test_run.
printf '\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00' > "$tmp/frame.bin"
printf '\x45\x00\x00\x8c\x00\x01\x00\x00\x40\x06\x00\x00\x0a\x00\x00\x01\x0a\x00\x00\x02' >> "$tmp/frame.bin"
printf '\x9c\x40\x01\xbb\x00\x00\x03\xe9\x00\x00\x00\x00\x50\x18\xff\xff\x00\x00\x00\x00' >> "$tmp/frame.bin"
head -c 100 /dev/zero >> "$tmp/frame.bin"

# --- namespace and veth -----------------------------------------------------------------------
ip netns add "$ns"
ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
ip -n "$ns" link add "$tx" type veth peer name "$rx"
ip -n "$ns" link set "$tx" up
ip -n "$ns" link set "$rx" up
sysctl -qw kernel.bpf_stats_enabled=1

prog_stats() { # id -> "run_time_ns run_cnt"
    bpftool prog show id "$1" -j | jq -r '"\(.run_time_ns // 0) \(.run_cnt // 0)"'
}

attach() { # object -> program id
    ip -n "$ns" link set dev "$rx" xdpdrv obj "$1" sec xdp.frags
    ip -n "$ns" -j link show dev "$rx" | jq -r '.[0].xdp.prog.id'
}

declare -A live_ns live_pps run_ns
for r in $(seq 1 "$rounds"); do
    for p in drop probe; do
        id=$(attach "$tmp/$p.o")
        read -r t0 c0 < <(prog_stats "$id")
        s=$(date +%s%N)
        ip netns exec "$ns" tcpreplay -q --topspeed --preload-pcap --loop="$loops" -i "$tx" "$pcap" \
            >/dev/null 2>&1
        e=$(date +%s%N)
        read -r t1 c1 < <(prog_stats "$id")
        n=$((c1 - c0))
        nsp=$(awk -v t=$((t1 - t0)) -v n="$n" 'BEGIN { printf "%.1f", n ? t / n : 0 }')
        pps=$(awk -v n="$n" -v d=$((e - s)) 'BEGIN { printf "%.0f", n / (d / 1e9) }')
        # test_run: the first run creates the flow, the repeated runs account into it.
        bpftool prog run id "$id" data_in "$tmp/frame.bin" repeat 1 >/dev/null 2>&1
        tr=$(bpftool prog run id "$id" data_in "$tmp/frame.bin" repeat "$repeat" 2>&1 |
            sed -n 's/.*duration (average): \([0-9]*\)ns.*/\1/p')
        ip -n "$ns" link set dev "$rx" xdpdrv off
        echo "round $r $p: live $n packets, $nsp ns/packet, $pps pps; test_run ${tr}ns" >&2
        live_ns[$p]+="$nsp "
        live_pps[$p]+="$pps "
        run_ns[$p]+="$tr "
    done
done

median() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
for p in drop probe; do
    ln=$(echo "${live_ns[$p]}" | median)
    lp=$(echo "${live_pps[$p]}" | median)
    rn=$(echo "${run_ns[$p]}" | median)
    eval "med_pps_$p=$lp"
    printf '| %s | %s | %s | %s | runs: %s|\n' "$p" "$ln" "$lp" "$rn" "${live_pps[$p]}"
done
awk -v a="$med_pps_probe" -v b="$med_pps_drop" 'BEGIN { printf "pps ratio probe/empty-drop: %.2f\n", a / b }'
