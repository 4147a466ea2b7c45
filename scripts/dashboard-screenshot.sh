#!/usr/bin/env bash
# docs/dashboard.png: the NOC dashboard of `supernetflow run` after a replay of real application
# captures, exactly as tests/dashboard.rs feeds it: softflowd plays the router (IPFIX to run's UDP
# port) and `supernetflow probe --pcap ... --export` the tap (IPFIX/TCP to run); headless Chromium
# takes the picture once the join has settled.
#
#   scripts/dashboard-screenshot.sh [OUT.png]        (default docs/dashboard.png)
#
# Needs softflowd/softflowctl and chromium (scripts/test.sh installs them), python3, and the shared
# test data ($SNF_TESTDATA, default <repo>/../shared/testdata). The binary is built with cargo
# unless $SNF_BIN names one. Everything listens on 127.0.0.1 only, on ports the kernel picks.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export SNF_TESTDATA=${SNF_TESTDATA:-$root/../shared/testdata}
out=${1:-docs/dashboard.png}
case $out in /*) ;; *) out=$root/$out ;; esac

captures=(
    apps/ndpi/conferencing_voip/zoom2.pcap
    apps/ndpi/video_streaming/instagram.pcap
    apps/ndpi/gaming/nintendo.pcap
    apps/ndpi/conferencing_voip/discord.pcap
)
pcaps=()
for c in "${captures[@]}"; do
    [ -f "$SNF_TESTDATA/$c" ] || { echo "missing test data $SNF_TESTDATA/$c (set SNF_TESTDATA)" >&2; exit 2; }
    pcaps+=("$SNF_TESTDATA/$c")
done
export PATH="$PATH:/usr/sbin:/sbin"
for t in softflowd softflowctl chromium python3; do
    command -v "$t" >/dev/null || { echo "$t is not installed (scripts/test.sh installs it)" >&2; exit 2; }
done

bin=${SNF_BIN:-}
if [ -z "$bin" ]; then
    cargo build -q --bin supernetflow
    bin=${CARGO_TARGET_DIR:-$root/target}/debug/supernetflow
fi

work=$(mktemp -d)
run_pid=""
cleanup() {
    if [ -n "$run_pid" ] && kill -0 "$run_pid" 2>/dev/null; then
        kill -TERM "$run_pid"
        wait "$run_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

cat >"$work/run.toml" <<'EOF'
[join]
grace_ms = 3000
[dashboard]
ended_session_secs = 3600
EOF
"$bin" run --config "$work/run.toml" --udp 127.0.0.1:0 --tcp 127.0.0.1:0 --http 127.0.0.1:0 \
    --data-dir "$work/data" --no-state --ready-file "$work/ready" 2>"$work/run.log" &
run_pid=$!
for _ in $(seq 300); do [ -e "$work/ready" ] && break; sleep 0.1; done
[ -e "$work/ready" ] || { cat "$work/run.log" >&2; echo "run did not start" >&2; exit 1; }
addr() { awk -v k="$1" '$1 == k { print $2 }' "$work/ready"; }
udp=$(addr udp) tcp=$(addr tcp) http=$(addr http)

# The router: softflowd -r waits in poll() until its control socket is poked (PEER_TOOLS.md).
i=0
for p in "${pcaps[@]}"; do
    i=$((i + 1))
    softflowd -r "$p" -n "$udp" -v 10 -A milli -d -c "$work/sfd$i.ctl" -p "$work/sfd$i.pid" \
        >/dev/null 2>&1 &
    sfd=$!
    while kill -0 "$sfd" 2>/dev/null; do
        softflowctl -c "$work/sfd$i.ctl" statistics >/dev/null 2>&1 || true
        sleep 0.05
    done
    wait "$sfd"
done
# The tap.
"$bin" probe --tap-id site1-mirror0 --pcap "${pcaps[@]}" --export "$tcp" --format none

# Wait for the join to settle: every router flow out as a super-flow.
python3 - "$http" <<'EOF'
import json, sys, time, urllib.request
url = f"http://{sys.argv[1]}/api/v1/summary"
for _ in range(120):
    s = json.load(urllib.request.urlopen(url))
    t = s["totals"]
    if t["router_records"] and t["super_flows"] == t["router_records"] and not s["join"]["pending_router_records"]:
        break
    time.sleep(0.5)
else:
    sys.exit("the join did not settle")
EOF

mkdir -p "$(dirname "$out")"
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$work/chromium" --hide-scrollbars --window-size=1280,900 \
    --virtual-time-budget=5000 --screenshot="$out" "http://$http/dashboard" 2>"$work/chromium.log" ||
    { cat "$work/chromium.log" >&2; exit 1; }
echo "wrote $out"
