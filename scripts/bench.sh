#!/usr/bin/env bash
# End-to-end benchmark: authwatch-loadgen -> authwatch (pinned to one core) -> authwatch-loadgen sink,
# everything on loopback. Prints, per pipeline, the median of RUNS runs of:
#   CPU µs per span  (authwatch's utime+stime from /proc/PID/stat over the measured run / spans accepted)
#   spans/s accepted, cores used, peak RSS (VmHWM), request latency p50/p99 seen by the sender.
# Also: the harness alone (generator straight into the sink, both on one core), fixed-rate runs of
# the pass-through (10k, 100k spans/s and half of its capacity), each beside the floor at that
# rate (the sink alone on authwatch's core), and startup to listening with the default config.
# See docs/performance.md (commands, method and the figures this script measured).
# Rows not in the default set (ROWS="soak overload cardinality probes detect"):
#   soak         pass-through at SOAK_RATE spans/s for SOAK_SECONDS, RSS every 10 s: first/last/max, slope
#   overload     2x and 4x (OVERLOAD_X) the pass-through's capacity offered, memory_limiter first:
#                goodput % of capacity, RSS max vs limit, p99 of accepted vs at capacity, spans lost
#   cardinality  full pipeline at CARD_RATE spans/s with N distinct hosts and routes (N in CARD_N)
#   probes       PROBES synthetic http checks every 1 s against the sink, authwatch on one core:
#                schedule lag p50/p99 from authwatch_synthetic_schedule_lag_seconds
#   instructions instructions per span of the pass-through and the full pipeline, counted by
#                valgrind's callgrind (INSTR_RUNS runs of INSTR_REQUESTS requests, less a run of a
#                tenth of them): unlike CPU time, the same for the same binary however loaded the
#                machine is, so two commits can be compared on a busy machine
#   detect       detection latency, DETECT_RUNS runs: authwatch with configs/default.yaml plus a
#                real Alertmanager; 100 client spans, 30% 503s, sent at a random phase in
#                [0, 15 s); span sent -> alert event on stdout, -> Alertmanager has it, -> status
#                page shows the calls; p50/p99 (`authwatch-loadgen detect`)
#
# Usage: scripts/bench.sh [-h]
# Environment (defaults in brackets):
#   RUNS [3] runs per row, DURATION [15] seconds per measured run, WARMUP [2] seconds before it,
#   CONCURRENCY [8] requests in flight, CONNECTIONS [2], SPANS [512] spans per request,
#   AW_CPU [0] core for authwatch, GEN_CPU [1] core for the generator and the sink,
#   ROWS ["harness passthrough passthrough_gzip full full_gzip rates startup"] what to run,
#   PROFILE [0] 1: also record `perf` profiles of the pass-through rows (needs linux-perf),
#   OUT [target/bench] where configs, logs and per-run results go,
#   AW_BIN, LG_BIN: use these authwatch and authwatch-loadgen binaries instead of building,
#   SOAK_SECONDS [600], SOAK_RATE [100000],
#   OVERLOAD_SECONDS [30], OVERLOAD_X ["2 4"] multiples of capacity offered, CAPACITY [measured: median pass-through spans/s out, or a short run],
#   ML_LIMIT_MIB [256], ML_SPIKE_MIB [64], ML_CHECK [1s] the memory_limiter of the overload row,
#   CARD_N ["10 1000 100000"], CARD_RATE [50000], CARD_SECONDS [DURATION],
#   PROBES [1000], PROBE_SECONDS [60], DETECT_RUNS [20],
#   INSTR_REQUESTS [200], INSTR_RUNS [2],
#   BENCH_PORT_BASE [24000] the ports used are this + 317, 417, 418 and 888.
set -euo pipefail

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  sed -n '2,41p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi

cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
DURATION=${DURATION:-15}
WARMUP=${WARMUP:-2}
CONCURRENCY=${CONCURRENCY:-8}
CONNECTIONS=${CONNECTIONS:-2}
SPANS=${SPANS:-512}
AW_CPU=${AW_CPU:-0}
GEN_CPU=${GEN_CPU:-1}
ROWS=${ROWS:-"harness passthrough passthrough_gzip full full_gzip rates startup"}
PROFILE=${PROFILE:-0}
OUT=${OUT:-target/bench}
SOAK_SECONDS=${SOAK_SECONDS:-600}
SOAK_RATE=${SOAK_RATE:-100000}
OVERLOAD_SECONDS=${OVERLOAD_SECONDS:-30}
OVERLOAD_X=${OVERLOAD_X:-"2 4"}
ML_LIMIT_MIB=${ML_LIMIT_MIB:-256}
ML_SPIKE_MIB=${ML_SPIKE_MIB:-64}
ML_CHECK=${ML_CHECK:-1s}
CARD_N=${CARD_N:-"10 1000 100000"}
CARD_RATE=${CARD_RATE:-50000}
CARD_SECONDS=${CARD_SECONDS:-$DURATION}
PROBES=${PROBES:-1000}
PROBE_SECONDS=${PROBE_SECONDS:-60}
INSTR_REQUESTS=${INSTR_REQUESTS:-200}
INSTR_RUNS=${INSTR_RUNS:-2}
DETECT_RUNS=${DETECT_RUNS:-20}

# Ports: authwatch's OTLP/gRPC receiver, the sink (gRPC and HTTP), authwatch's own endpoints.
# (BENCH_PORT_BASE moves them all, so that two runs can share a machine.)
PB=${BENCH_PORT_BASE:-24000}
RX=127.0.0.1:$((PB + 317))
SINK_GRPC=127.0.0.1:$((PB + 417))
SINK_HTTP=127.0.0.1:$((PB + 418))
AW_METRICS=127.0.0.1:$((PB + 888))

for tool in taskset jq awk; do
  command -v "$tool" >/dev/null || { echo "bench.sh: $tool is required (apt-get install util-linux jq gawk)" >&2; exit 1; }
done
if (( $(nproc) < 2 )); then
  echo "bench.sh: needs 2 cores (authwatch on one, the generator on the other); found $(nproc)" >&2
  exit 1
fi

if [[ -n ${AW_BIN:-} && -n ${LG_BIN:-} ]]; then
  AW=$AW_BIN
  LG=$LG_BIN
else
  echo "Building release binaries..." >&2
  cargo build --release --quiet --bin authwatch
  cargo build --release --quiet -p authwatch-loadgen
  AW=$PWD/target/release/authwatch
  LG=$PWD/target/release/authwatch-loadgen
fi
TCK=$(getconf CLK_TCK)
mkdir -p "$OUT/configs" "$OUT/runs"
rm -f "$OUT"/runs/*

# --- configs -------------------------------------------------------------------------------------

COMPONENTS=$("$AW" components)
has() { grep -qw "$1" <<<"$COMPONENTS"; }

write_config() { # name compression with_full
  local name=$1 compression=$2 full=$3 procs="[batch]" exporters="[otlp]" extra=""
  if [[ $full == 1 ]]; then
    has redaction && procs="[redaction, batch]"
    exporters="[otlp, error_rate]"
    extra="
    metrics/derived:
      receivers: [error_rate]
      exporters: [otlp, alerts]
    logs/derived:
      receivers: [error_rate, alerts]
      exporters: [otlp]"
  fi
  {
    cat <<EOF
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: $RX
processors:
  batch: {}
EOF
    if [[ $full == 1 ]] && has redaction; then
      echo "  redaction: {}"
    fi
    if [[ $full == 1 ]]; then
      cat <<EOF
connectors:
  error_rate: {}
  alerts:
    rules:
      - name: auth0_error_ratio
        threshold: { dependency: auth0, error_ratio: 0.05, window: 1m, min_requests: 20 }
EOF
    fi
    cat <<EOF
exporters:
  otlp:
    endpoint: http://$SINK_GRPC
    tls:
      insecure: true
    compression: $compression
service:
  telemetry:
    logs:
      level: warn
    metrics:
      address: $AW_METRICS
  pipelines:
    traces:
      receivers: [otlp]
      processors: $procs
      exporters: $exporters$extra
EOF
  } >"$OUT/configs/$name.yaml"
}

write_config passthrough none 0
write_config passthrough_gzip gzip 0
FULL_OK=0
if has error_rate && has alerts; then
  write_config full none 1
  write_config full_gzip gzip 1
  if "$AW" validate --config "$OUT/configs/full.yaml" >"$OUT/configs/full.validate" 2>&1; then
    FULL_OK=1
  else
    echo "bench.sh: the full pipeline config does not validate, skipping it:" >&2
    cat "$OUT/configs/full.validate" >&2
  fi
fi

# The pass-through with memory_limiter first (the overload row).
sed -e "s/^  batch: {}/  memory_limiter: { check_interval: $ML_CHECK, limit_mib: $ML_LIMIT_MIB, spike_limit_mib: $ML_SPIKE_MIB }\n  batch: {}/" \
  -e 's/processors: \[batch\]/processors: [memory_limiter, batch]/' \
  "$OUT/configs/passthrough.yaml" >"$OUT/configs/overload.yaml"

# PROBES http checks every second against the sink's GET /probe (the probes row).
write_probe_config() {
  {
    cat <<EOF
receivers:
  synthetic:
    interval: 1s
    timeout: 1s
    initial_delay: 1s
    jitter: 1s
    checks:
EOF
    for i in $(seq 1 "$PROBES"); do
      printf '      - { name: check%d, type: http, url: "http://%s/probe" }\n' "$i" "$SINK_HTTP"
    done
    cat <<EOF
processors:
  batch: {}
exporters:
  otlp:
    endpoint: http://$SINK_GRPC
    tls:
      insecure: true
    compression: none
service:
  telemetry:
    logs:
      level: warn
    metrics:
      address: $AW_METRICS
  pipelines:
    traces:
      receivers: [synthetic]
      processors: [batch]
      exporters: [otlp]
    metrics:
      receivers: [synthetic]
      processors: [batch]
      exporters: [otlp]
EOF
  } >"$OUT/configs/probes.yaml"
}

# --- helpers -------------------------------------------------------------------------------------

STARTED=()
cleanup() {
  for pid in "${STARTED[@]}"; do kill "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

wait_port() { # host:port [tries of 20 ms]
  local host=${1%:*} port=${1##*:}
  for _ in $(seq 1 "${2:-500}"); do
    (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null && return 0
    sleep 0.02
  done
  echo "bench.sh: nothing listening on $1" >&2
  return 1
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# Waits until pid is idle (no CPU tick in 0.5 s, at most 30 s) and prints its CPU ticks then.
idle_ticks() { # pid
  local now prev=-1
  for _ in $(seq 1 60); do
    now=$(cpu_ticks "$1")
    [[ $now == "$prev" ]] && break
    prev=$now
    sleep 0.5
  done
  echo "$now"
}

# Appends "seconds-since-start RSS-KiB" lines to a file every `every` seconds while pid lives.
sample_rss() { # pid every file
  local pid=$1 every=$2 file=$3 t0
  t0=$(date +%s.%N)
  : >"$file"
  while kill -0 "$pid" 2>/dev/null; do
    awk -v t0="$t0" -v now="$(date +%s.%N)" '/^VmRSS:/ {printf "%.1f %d\n", now - t0, $2}' \
      "/proc/$pid/status" >>"$file" 2>/dev/null || break
    sleep "$every"
  done
}

# first/last/max of an RSS sample file, and the least-squares slope from 60 s on (all samples if
# fewer than 3 are that late), in MiB per minute.
rss_summary() { # file
  awk 'NR == 1 { first = $2 } { t[NR] = $1; v[NR] = $2; if ($2 > max) max = $2; last = $2 }
    END {
      if (NR == 0) { print "no RSS samples"; exit }
      late = 0; for (i = 1; i <= NR; i++) if (t[i] >= 60) late++
      lo = (late >= 3) ? 60 : 0
      for (i = 1; i <= NR; i++) if (t[i] >= lo) { m++; sx += t[i]; sy += v[i]; sxx += t[i] * t[i]; sxy += t[i] * v[i] }
      d = m * sxx - sx * sx; slope = (m > 1 && d != 0) ? (m * sxy - sx * sy) / d : 0
      printf "RSS first %.1f MiB, last %.1f MiB, max %.1f MiB; slope %+.3f MiB/min (%d samples from %d s on)",
        first / 1024, last / 1024, max / 1024, slope * 60 / 1024, m, lo }' "$1"
}

# p50 and p99 of a Prometheus histogram (upper bounds of the buckets they fall in) and the mean.
histogram_quantiles() { # metrics-text-file metric-name
  awk -v name="$2" '
    function q(p,   i) { for (i = 1; i <= n; i++) if (cum[i] >= p * count) return bound[i]; return "+Inf" }
    index($0, name "_bucket{") == 1 {
      match($0, /le="[^"]*"/); le = substr($0, RSTART + 4, RLENGTH - 5)
      n++; bound[n] = le; cum[n] = $NF }
    index($0, name "_count") == 1 { count = $NF }
    index($0, name "_sum") == 1 { sum = $NF }
    END {
      if (count == 0) { print "no samples"; exit }
      printf "%d runs; p50 <= %s s, p99 <= %s s, mean %.4f s", count, q(0.5), q(0.99), sum / count }' "$1"
}
# authwatch's own metrics (AW_METRICS) into a file; empty when they cannot be read.
scrape_metrics() { # file
  if command -v curl >/dev/null; then
    curl -sf "http://$AW_METRICS/metrics" >"$1" || : >"$1"
  else
    { exec 3<>"/dev/tcp/${AW_METRICS%:*}/${AW_METRICS##*:}" &&
      printf 'GET /metrics HTTP/1.0\r\nHost: %s\r\n\r\n' "$AW_METRICS" >&3 && cat <&3 >"$1"; exec 3<&-; } 2>/dev/null || : >"$1"
  fi
}
# The q-quantile, in ms, of the requests authwatch answered between two scrapes (its
# receiver_request_duration_seconds histogram: admission to answer, measured where authwatch
# answers, so a busy sender's own delays are not in it), interpolated within the bucket as
# Prometheus' histogram_quantile does; "-" when no request was answered.
server_quantile() { # before after q
  awk '/^authwatch_receiver_request_duration_seconds_bucket\{/ {
      match($0, /le="[^"]*"/); le = substr($0, RSTART + 4, RLENGTH - 5)
      n[le] += (FILENAME == ARGV[1] ? -$NF : $NF)
    }
    END { for (l in n) print l, n[l] }' "$1" "$2" | sort -g | awk -v q="$3" '
    { le[NR] = $1; c[NR] = $2 }
    END {
      total = c[NR]
      if (NR == 0 || total <= 0) { print "-"; exit }
      rank = q * total; prev = 0; prevc = 0
      for (i = 1; i < NR; i++) {
        if (c[i] >= rank) { printf "%.1f", 1000 * (prev + (le[i] - prev) * (rank - prevc) / (c[i] - prevc)); exit }
        prev = le[i]; prevc = c[i]
      }
      printf ">%g", 1000 * prev
    }'
}
vmhwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }

start_sink() { # out.json [seconds [core]]
  taskset -c "${3:-$GEN_CPU}" "$LG" sink --grpc "$SINK_GRPC" --http "$SINK_HTTP" \
    --duration "${2:-$((DURATION + WARMUP + 60))}s" --json >"$1" 2>/dev/null &
  SINK_PID=$!
  STARTED+=("$SINK_PID")
  wait_port "$SINK_GRPC"
}

stop() { # pid
  kill -TERM "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

send() { # endpoint duration extra-args... ; JSON on stdout
  local endpoint=$1 duration=$2
  shift 2
  taskset -c "$GEN_CPU" "$LG" send --endpoint "$endpoint" --duration "${duration}s" \
    --spans-per-request "$SPANS" --concurrency "$CONCURRENCY" --connections "$CONNECTIONS" --json "$@"
}

# One run of authwatch with a config; writes $OUT/runs/<row>.<i>.json.
run_authwatch() { # row config i [send args...]
  local row=$1 config=$2 i=$3
  shift 3
  local tag="$OUT/runs/$row.$i"
  start_sink "$tag.sink.json"
  taskset -c "$AW_CPU" "$AW" --config "$OUT/configs/$config.yaml" 2>"$tag.log" &
  local pid=$!
  STARTED+=("$pid")
  wait_port "$RX"
  # CPU is counted from here until authwatch is idle again after the load, and divided by the
  # spans that reached the sink: what exporting each span cost, backlog included.
  local t0 c0 c1 t1 perf_pid="" hwm
  t0=$(date +%s.%N)
  c0=$(cpu_ticks "$pid")
  if (( WARMUP > 0 )); then send "$RX" "$WARMUP" "$@" >/dev/null; fi
  if [[ $PROFILE == 1 && $i == 1 ]]; then
    perf record -F 499 --call-graph dwarf,16384 -o "$tag.perf.data" -p "$pid" -- sleep "$((DURATION / 2))" >/dev/null 2>&1 &
    perf_pid=$!
  fi
  scrape_metrics "$tag.metrics.before"
  send "$RX" "$DURATION" "$@" >"$tag.send.json"
  scrape_metrics "$tag.metrics"
  if [[ -n $perf_pid ]]; then wait "$perf_pid" || true; fi
  c1=$(idle_ticks "$pid") # the exporter's backlog is drained
  t1=$(date +%s.%N)
  hwm=$(vmhwm_kib "$pid")
  stop "$pid"
  stop "$SINK_PID"
  jq -c --argjson ticks "$((c1 - c0))" --argjson tck "$TCK" --argjson hwm "$hwm" \
    --argjson wall "$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')" \
    --arg sp99 "$(server_quantile "$tag.metrics.before" "$tag.metrics" 0.99)" \
    --slurpfile sink "$tag.sink.json" '
    ($ticks / $tck) as $cpu | $sink[0] as $k |
    { spans_in_per_s: .spans_per_s, spans_per_s: $k.spans_per_s, sink_spans: $k.spans,
      errors: .errors, cpu_s: $cpu, cores: ($cpu / $wall),
      us_per_span: (if $k.spans > 0 then $cpu * 1e6 / $k.spans else null end),
      rss_mib: ($hwm / 1024), p50_ms: .latency_ms.p50, p99_ms: .latency_ms.p99,
      server_p99_ms: $sp99 }' "$tag.send.json" >"$tag.result.json"
  if [[ $PROFILE == 1 && $i == 1 ]]; then
    perf report -i "$tag.perf.data" --no-children --sort symbol --stdio -g none 2>/dev/null |
      grep -E '^ +[0-9.]+%' | head -40 >"$tag.perf.txt" || true
  fi
}

run_harness() { # i
  local tag="$OUT/runs/harness.$1"
  start_sink "$tag.sink.json"
  send "$SINK_GRPC" "$DURATION" >"$tag.send.json"
  stop "$SINK_PID"
  jq -c '{ spans: .spans_ok, spans_per_s: .spans_per_s, spans_in_per_s: .spans_per_s, errors: .errors,
           p50_ms: .latency_ms.p50, p99_ms: .latency_ms.p99 }' "$tag.send.json" >"$tag.result.json"
}

# The floor at a fixed rate: the sink alone, pinned to authwatch's core, fed by the generator at
# that rate, its CPU counted the same way as authwatch's. The sink reads every byte once and
# counts the spans, so its cost per span is what the platform charges for receiving a request at
# that rate (waking a core, the syscalls, cold caches): authwatch's figure divided by it shows
# whether authwatch's own cost grows or shrinks with the rate.
run_floor() { # rate
  local tag="$OUT/runs/floor_$1.1" c0 c1
  start_sink "$tag.sink.json" "$((DURATION + WARMUP + 60))" "$AW_CPU"
  c0=$(cpu_ticks "$SINK_PID")
  if (( WARMUP > 0 )); then send "$SINK_GRPC" "$WARMUP" --rate "$1" >/dev/null; fi
  send "$SINK_GRPC" "$DURATION" --rate "$1" >"$tag.send.json"
  c1=$(idle_ticks "$SINK_PID")
  stop "$SINK_PID"
  jq -c --argjson ticks "$((c1 - c0))" --argjson tck "$TCK" --slurpfile sink "$tag.sink.json" '
    ($ticks / $tck) as $cpu | $sink[0] as $k |
    { spans_in_per_s: .spans_per_s, spans_per_s: $k.spans_per_s, errors: .errors,
      us_per_span: (if $k.spans > 0 then $cpu * 1e6 / $k.spans else null end),
      p50_ms: .latency_ms.p50, p99_ms: .latency_ms.p99 }' "$tag.send.json" >"$tag.result.json"
}

median() { # row field
  local vals
  vals=$(cat "$OUT"/runs/"$1".*.result.json 2>/dev/null | jq -r ".$2 // empty" | sort -g)
  [[ -z $vals ]] && { echo "-"; return; }
  awk '{v[NR]=$1} END {m = (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2; print m}' <<<"$vals"
}

row() { # row label
  printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$2" \
    "$(median "$1" spans_in_per_s | awk '{ if ($1 == "-") print "-"; else printf "%.0fk", $1/1000 }')" \
    "$(median "$1" spans_per_s | awk '{ if ($1 == "-") print "-"; else printf "%.0fk", $1/1000 }')" \
    "$(median "$1" us_per_span | awk '{ if ($1 == "-") print "-"; else printf "%.2f", $1 }')" \
    "$(median "$1" cores | awk '{ if ($1 == "-") print "-"; else printf "%.2f", $1 }')" \
    "$(median "$1" rss_mib | awk '{ if ($1 == "-") print "-"; else printf "%.1f", $1 }')" \
    "$(median "$1" p50_ms)" "$(median "$1" p99_ms)" "$(median "$1" errors)"
}

# Pass-through at SOAK_RATE for SOAK_SECONDS, RSS every 10 s.
run_soak() {
  local tag="$OUT/runs/soak.1" pid sampler
  start_sink "$tag.sink.json" "$((SOAK_SECONDS + 120))"
  taskset -c "$AW_CPU" "$AW" --config "$OUT/configs/passthrough.yaml" 2>"$tag.log" &
  pid=$!
  STARTED+=("$pid")
  wait_port "$RX"
  sample_rss "$pid" 10 "$tag.rss" &
  sampler=$!
  STARTED+=("$sampler")
  send "$RX" "$SOAK_SECONDS" --rate "$SOAK_RATE" >"$tag.send.json"
  kill "$sampler" 2>/dev/null || true
  wait "$sampler" 2>/dev/null || true
  stop "$pid"
  stop "$SINK_PID"
  SOAK="$(jq -r '"\(.spans_per_s / 1000 | floor)k spans/s accepted, \(.errors) errors"' "$tag.send.json"); $(rss_summary "$tag.rss")"
}

# X times the pass-through's capacity (X in OVERLOAD_X), with memory_limiter, for OVERLOAD_SECONDS;
# RSS every 100 ms. Goodput is the spans acknowledged per second of load (all of them reach the
# sink when none is lost), as a share of the capacity; lost is what authwatch acknowledged and the sink never got (counted after authwatch has drained
# and stopped); p99 is the latency of accepted requests, beside the pass-through row's p99 at
# capacity (measured with CONCURRENCY in flight, the overload with 4X times as many workers).
run_overload() { # multiple
  local x=$1 tag="$OUT/runs/overload_$1x.1" capacity cap_p99 cap_sp99 rate pid sampler c0 c1 s0 s1 t0 t1 alive=yes
  capacity=${CAPACITY:-$(median passthrough spans_per_s)}
  if [[ $capacity == "-" ]]; then
    capacity=$(median capacity spans_per_s)
  fi
  if [[ $capacity == "-" ]]; then
    echo "overload: measuring the pass-through's capacity first (closed loop, ${DURATION}s)" >&2
    run_authwatch capacity passthrough 1
    capacity=$(median capacity spans_per_s)
  fi
  cap_p99=$(median passthrough p99_ms)
  [[ $cap_p99 == "-" ]] && cap_p99=$(median capacity p99_ms)
  cap_sp99=$(median passthrough server_p99_ms)
  [[ $cap_sp99 == "-" ]] && cap_sp99=$(median capacity server_p99_ms)
  rate=$(awk -v c="$capacity" -v x="$x" 'BEGIN { printf "%d", x * c }')
  start_sink "$tag.sink.json" "$((OVERLOAD_SECONDS + 180))"
  taskset -c "$AW_CPU" "$AW" --config "$OUT/configs/overload.yaml" 2>"$tag.log" &
  pid=$!
  STARTED+=("$pid")
  wait_port "$RX"
  wait_port "$AW_METRICS"
  sample_rss "$pid" 0.1 "$tag.rss" &
  sampler=$!
  STARTED+=("$sampler")
  scrape_metrics "$tag.metrics.before"
  t0=$(date +%s.%N)
  c0=$(cpu_ticks "$pid")
  s0=$(cpu_ticks "$SINK_PID")
  # The paced workers wait for each answer: 4X times the usual workers, so that they keep
  # offering X times the capacity while answers slow down. They share a core with the sink
  # (the stand-in backend): both cores are printed, to tell a starved backend or a saturated
  # generator (whose own scheduling then adds to the latency it measures) from authwatch.
  taskset -c "$GEN_CPU" "$LG" send --endpoint "$RX" --duration "${OVERLOAD_SECONDS}s" --rate "$rate" \
    --spans-per-request "$SPANS" --concurrency "$((CONCURRENCY * 4 * x / 2))" --connections "$CONNECTIONS" \
    --json >"$tag.send.json"
  c1=$(cpu_ticks "$pid")
  s1=$(cpu_ticks "$SINK_PID")
  t1=$(date +%s.%N)
  kill -0 "$pid" 2>/dev/null || alive=NO
  scrape_metrics "$tag.metrics"
  idle_ticks "$pid" >/dev/null # the backlog is drained
  kill "$sampler" 2>/dev/null || true
  wait "$sampler" 2>/dev/null || true
  stop "$pid"
  stop "$SINK_PID"
  local early
  early=$(awk '/^authwatch_receiver_refused_requests_total/ { n += $NF } END { print n + 0 }' "$tag.metrics" 2>/dev/null || echo "?")
  OVERLOAD_RESULT[$x]=$(jq -r --argjson cap "$capacity" --argjson limit "$ML_LIMIT_MIB" --argjson spike "$ML_SPIKE_MIB" \
    --arg alive "$alive" --arg rss "$(rss_summary "$tag.rss")" --argjson x "$x" --arg capp99 "$cap_p99" --arg early "$early" \
    --arg sp99 "$(server_quantile "$tag.metrics.before" "$tag.metrics" 0.99)" --arg capsp99 "$cap_sp99" \
    --argjson maxrss "$(awk '{ if ($2 > m) m = $2 } END { print m / 1024 + 0 }' "$tag.rss")" \
    --slurpfile sink "$tag.sink.json" \
    --arg cores "$(awk -v a="$c0" -v b="$c1" -v t="$TCK" -v s="$t0" -v e="$t1" 'BEGIN { printf "%.2f", (b - a) / t / (e - s) }')" \
    --arg sinkcores "$(awk -v a="$s0" -v b="$s1" -v t="$TCK" -v s="$t0" -v e="$t1" 'BEGIN { printf "%.2f", (b - a) / t / (e - s) }')" '
    ((.requests_ok + .errors) * .spans_per_request / .elapsed_s) as $offered |
    (.requests_ok + .errors) as $all | .spans_per_s as $good |
    (.spans_ok - $sink[0].spans) as $lost |
    "\($x)x: capacity \($cap / 1000 | floor)k spans/s, offered \($offered / 1000 | floor)k spans/s; " +
    "goodput \($good / 1000 | floor)k spans/s = \(($good * 100 / $cap) | floor)% of capacity (target >= 85%); " +
    "refused \(.errors) of \($all) requests (\(if $all > 0 then (.errors * 1000 / $all | floor) / 10 else 0 end)%, \($early) before reading the body) \(.error_kinds | tostring); " +
    "p99 of accepted \(.latency_ms.p99) ms vs \($capp99) ms at capacity (target <= 2x), " +
    "measured where authwatch answers \($sp99) ms vs \($capsp99) ms; " +
    "RSS max \($maxrss * 10 | floor / 10) MiB vs limit_mib \($limit) (target <= \($limit * 1.1 | floor)), soft limit \($limit - $spike); " +
    "acknowledged spans lost: \(if $lost > 0 then $lost else 0 end) (\(.spans_ok) acknowledged, \($sink[0].spans) at the sink); " +
    "\($cores) cores (the sink \($sinkcores) of the generator core); alive at the end: \($alive); \($rss)"' "$tag.send.json")
}

# PROBES http checks at 1 s for PROBE_SECONDS, authwatch on one core.
run_probes() {
  local tag="$OUT/runs/probes.1" pid c0 c1 t0 t1 hwm
  write_probe_config
  if ! "$AW" validate --config "$OUT/configs/probes.yaml" >"$tag.validate" 2>&1; then
    echo "bench.sh: the probes config does not validate, skipping it:" >&2
    cat "$tag.validate" >&2
    PROBES_RESULT="config does not validate (see $tag.validate)"
    return
  fi
  start_sink "$tag.sink.json" "$((PROBE_SECONDS + 60))"
  taskset -c "$AW_CPU" "$AW" --config "$OUT/configs/probes.yaml" 2>"$tag.log" &
  pid=$!
  STARTED+=("$pid")
  wait_port "$AW_METRICS"
  t0=$(date +%s.%N)
  c0=$(cpu_ticks "$pid")
  sleep "$PROBE_SECONDS"
  c1=$(cpu_ticks "$pid")
  t1=$(date +%s.%N)
  if command -v curl >/dev/null; then
    curl -sf "http://$AW_METRICS/metrics" >"$tag.metrics" || true
  else
    exec 3<>"/dev/tcp/${AW_METRICS%:*}/${AW_METRICS##*:}"
    printf 'GET /metrics HTTP/1.0\r\nHost: %s\r\n\r\n' "$AW_METRICS" >&3
    cat <&3 >"$tag.metrics"
    exec 3<&-
  fi
  hwm=$(vmhwm_kib "$pid")
  stop "$pid"
  stop "$SINK_PID"
  PROBES_RESULT="$PROBES checks at 1 s for ${PROBE_SECONDS}s: schedule lag $(histogram_quantiles "$tag.metrics" authwatch_synthetic_schedule_lag_seconds); $(jq -r --argjson s "$PROBE_SECONDS" '"\(.probe_requests) probe requests served (\(.probe_requests / $s | floor)/s)"' "$tag.sink.json"); $(awk -v a="$c0" -v b="$c1" -v t="$TCK" -v s="$t0" -v e="$t1" 'BEGIN { printf "%.2f cores", (b - a) / t / (e - s) }'); peak RSS $((hwm / 1024)) MiB"
}

# authwatch under callgrind, sent `requests` requests one at a time; prints the instructions it
# ran in all (start, the load, shutdown).
instr_run() { # config requests run
  local config=$1 n=$2 tag="$OUT/runs/instr.$1.$2.$3" pid ir
  start_sink "$tag.sink.json" 900
  sed "s/^  telemetry:/  telemetry:\n    metrics:\n      address: $AW_METRICS/" \
    "$OUT/configs/$config.yaml" >"$OUT/configs/instr.$config.yaml"
  valgrind --tool=callgrind --callgrind-out-file="$tag.callgrind" \
    "$AW" --config "$OUT/configs/instr.$config.yaml" 2>"$tag.log" &
  pid=$!
  STARTED+=("$pid")
  wait_port "$RX" 3000
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "bench.sh: authwatch under callgrind exited at start, see $tag.log" >&2
    exit 1
  fi
  "$LG" send --endpoint "$RX" --requests "$n" --duration 600s --spans-per-request "$SPANS" \
    --concurrency 1 --connections 1 --timeout 120s --json >"$tag.send.json"
  idle_ticks "$pid" >/dev/null
  stop "$pid"
  stop "$SINK_PID"
  ir=$(awk '/^(summary|totals):/ {print $2; exit}' "$tag.callgrind")
  echo "${ir:-0}"
}

# Instructions per span: (a run of n requests - a run of n/10) / the spans between them.
run_instructions() {
  local config base full ir_base ir_full per out=""
  base=$((INSTR_REQUESTS / 10))
  full=$INSTR_REQUESTS
  for config in passthrough full; do
    [[ $config == full && $FULL_OK != 1 ]] && continue
    per=()
    for i in $(seq 1 "$INSTR_RUNS"); do
      echo "instructions: $config, run $i ($base and $full requests under callgrind)" >&2
      ir_base=$(instr_run "$config" "$base" "$i")
      ir_full=$(instr_run "$config" "$full" "$i")
      per+=("$(awk -v a="$ir_base" -v b="$ir_full" -v s="$(((full - base) * SPANS))" 'BEGIN { printf "%.0f", (b - a) / s }')")
    done
    out="$out $config ${per[*]} instructions/span;"
  done
  INSTRUCTIONS=$out
}

# --- runs ----------------------------------------------------------------------------------------

want() { [[ " $ROWS " == *" $1 "* ]]; }

for i in $(seq 1 "$RUNS"); do
  if want harness; then echo "harness run $i" >&2; run_harness "$i"; fi
  if want passthrough; then echo "passthrough run $i" >&2; run_authwatch passthrough passthrough "$i"; fi
  if want passthrough_gzip; then echo "passthrough_gzip run $i" >&2; run_authwatch passthrough_gzip passthrough_gzip "$i"; fi
  if [[ $FULL_OK == 1 ]] && want full; then echo "full run $i" >&2; run_authwatch full full "$i"; fi
  if [[ $FULL_OK == 1 ]] && want full_gzip; then echo "full_gzip run $i" >&2; run_authwatch full_gzip full_gzip "$i"; fi
done

RATES=""
if want rates; then
  capacity=$(median passthrough spans_per_s)
  [[ $capacity == "-" ]] && capacity=0
  half=$(awk -v c="$capacity" 'BEGIN{printf "%d", c/2}')
  for rate in 10000 100000 "$half"; do
    if (( rate <= 0 )) || { (( rate == 100000 )) && (( half * 2 <= 100000 )); }; then continue; fi
    echo "passthrough at $rate spans/s" >&2
    run_authwatch "rate_$rate" passthrough 1 --rate "$rate"
    echo "the floor: the sink alone at $rate spans/s" >&2
    run_floor "$rate"
    RATES="$RATES $rate"
  done
fi

CARDS=""
if want cardinality; then
  if [[ $FULL_OK == 1 ]]; then
    for n in $CARD_N; do
      echo "full pipeline with $n hosts and $n routes at $CARD_RATE spans/s" >&2
      run_authwatch "card_$n" full 1 --rate "$CARD_RATE" --hosts "$n" --routes "$n"
      CARDS="$CARDS $n"
    done
  else
    echo "bench.sh: cardinality needs the full pipeline (error_rate, alerts), skipping it" >&2
  fi
fi

SOAK="-"
if want soak; then
  echo "soak: pass-through at $SOAK_RATE spans/s for ${SOAK_SECONDS}s" >&2
  run_soak
fi

declare -A OVERLOAD_RESULT=()
if want overload; then
  for x in $OVERLOAD_X; do
    echo "overload: ${x}x capacity with memory_limiter for ${OVERLOAD_SECONDS}s" >&2
    run_overload "$x"
  done
fi

PROBES_RESULT="-"
if want probes; then
  echo "probes: $PROBES http checks at 1 s for ${PROBE_SECONDS}s" >&2
  run_probes
fi

INSTRUCTIONS="-"
if want instructions; then
  command -v valgrind >/dev/null || { echo "bench.sh: instructions needs valgrind (apt-get install valgrind)" >&2; exit 1; }
  run_instructions
fi

DETECT="-"
if want detect; then
  echo "detect: $DETECT_RUNS runs, default config + Alertmanager, spans at a random phase" >&2
  "$LG" detect --authwatch "$AW" --config configs/default.yaml --runs "$DETECT_RUNS" \
    --out "$OUT/runs/detect" --json >"$OUT/runs/detect.json"
  DETECT=$(jq -r '[["alert event", .event], ["Alertmanager", .alertmanager], ["status page", .status_page]]
    | map("\(.[0]) p50 \(.[1].p50_s * 1000 | round) ms, p99 \(.[1].p99_s * 1000 | round) ms, max \(.[1].max_s * 1000 | round) ms (missed \(.[1].missed))") | join("; ")' \
    "$OUT/runs/detect.json")
fi

STARTUP="-"
if want startup; then
  echo "startup (default config)" >&2
  STARTUP=$("$LG" startup --runs 20 --json --addr 127.0.0.1:4317 --addr 127.0.0.1:4318 -- "$AW" |
    jq -r '"p50 \(.ms.p50) ms, p90 \(.ms.p90) ms, max \(.ms.max) ms"')
fi

# --- report --------------------------------------------------------------------------------------

echo
echo "authwatch $(git rev-parse --short HEAD 2>/dev/null || echo '?') on $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(date -u +%Y-%m-%d);" \
  "median of $RUNS x ${DURATION}s; $SPANS spans/request, $CONCURRENCY in flight over $CONNECTIONS connections"
echo
echo "| pipeline | spans/s in | spans/s out | CPU µs/span | cores | peak RSS MiB | p50 ms | p99 ms | errors |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
want passthrough && row passthrough "pass-through (otlp -> batch -> otlp, no compression)"
want passthrough_gzip && row passthrough_gzip "pass-through, gzip export"
if [[ $FULL_OK == 1 ]]; then
  want full && row full "+ $(has redaction && echo 'redaction + ')error_rate + alerts"
  want full_gzip && row full_gzip "+ $(has redaction && echo 'redaction + ')error_rate + alerts, gzip export"
fi
for rate in $RATES; do
  row "rate_$rate" "pass-through at $rate spans/s offered"
  row "floor_$rate" "the floor: the sink alone at $rate spans/s, on authwatch's core"
done
for n in $CARDS; do row "card_$n" "full pipeline, $n hosts x $n routes at $CARD_RATE spans/s offered"; done
want harness && row harness "harness: generator -> sink, one core"
if [[ -n $RATES ]]; then
  echo
  printf 'pass-through over the floor (authwatch CPU per span / the sink'"'"'s, same rate):'
  for rate in $RATES; do
    printf ' %s spans/s %s;' "$rate" "$(awk -v a="$(median "rate_$rate" us_per_span)" -v b="$(median "floor_$rate" us_per_span)" \
      'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2fx", a / b }')"
  done
  echo
fi
want startup && echo && echo "startup to listening, default config (gRPC and HTTP ports): $STARTUP"
want soak && echo && echo "soak (pass-through at $SOAK_RATE spans/s, ${SOAK_SECONDS}s): $SOAK"
if want overload; then
  echo
  echo "overload (memory_limiter limit ${ML_LIMIT_MIB} MiB, spike ${ML_SPIKE_MIB} MiB, check ${ML_CHECK}; ${OVERLOAD_SECONDS}s each):"
  for x in $OVERLOAD_X; do echo "- ${OVERLOAD_RESULT[$x]:-not run}"; done
fi
want probes && echo && echo "probes: $PROBES_RESULT"
want instructions && echo && echo "instructions per span (callgrind, $SPANS spans/request, one request at a time; each run):$INSTRUCTIONS"
want detect && echo && echo "detection latency (default config, $DETECT_RUNS runs; span sent ->): $DETECT"
if [[ $PROFILE == 1 ]]; then
  echo
  echo "perf profiles (top symbols, self time): $OUT/runs/*.perf.txt"
fi
