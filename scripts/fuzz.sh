#!/usr/bin/env bash
# cargo-fuzz targets of fuzz/ (issue #6, "Hostile input"): builds them and runs every target, one
# at a time, on the stable toolchain (RUSTC_BOOTSTRAP=1: cargo-fuzz needs -Z flags).
#
# Usage: scripts/fuzz.sh smoke          replay each target's corpus, then fuzz it SMOKE_SECONDS [15]
#                                       (new inputs go to a scratch dir; fuzz/corpus is left as is)
#        scripts/fuzz.sh long [SECONDS] fuzz each target SECONDS [600], growing fuzz/corpus/<target>
#        scripts/fuzz.sh cmin           minimise each fuzz/corpus/<target> (libFuzzer -merge=1, as
#                                       `cargo fuzz cmin`), keeping the seed_* files by name
#        scripts/fuzz.sh build          only build the targets
#        scripts/fuzz.sh list           the target names
# Environment (defaults in brackets):
#   TARGETS [all]          space-separated subset of the targets to run
#   FUZZ_SANITIZER [none]  none or address (every authwatch crate forbids unsafe code, so the
#                          fuzzers look for panics, overflows, hangs and memory blow-ups; address
#                          also checks the dependencies' unsafe code, at about half the speed)
#   FUZZ_NICE [10]         nice level of the build and the runs
#   FUZZ_RSS_MB [2048]     an input using more memory than this is a crash
#   FUZZ_TIMEOUT [10]      an input taking longer than this many seconds is a crash
# Builds go to fuzz/target (their own cache, apart from the workspace's target/). Crashing inputs
# are written to fuzz/artifacts/<target>/; logs of `long` to fuzz/target/logs/. Exits non-zero when
# a target crashes. Installs cargo-fuzz when it is missing.
set -euo pipefail

SCRIPT=$(realpath "$0")
cd "$(dirname "$SCRIPT")/../fuzz"
MODE=${1:-}
SECONDS_PER_TARGET=${2:-600}
SMOKE_SECONDS=${SMOKE_SECONDS:-15}
SANITIZER=${FUZZ_SANITIZER:-none}
NICE=${FUZZ_NICE:-10}
RSS_MB=${FUZZ_RSS_MB:-2048}
TIMEOUT=${FUZZ_TIMEOUT:-10}
# Every target fuzz/Cargo.toml declares (its [[bin]] names), so a new target needs no edit here.
ALL=$(sed -n 's/^name = "\([a-z0-9_]*\)"$/\1/p' Cargo.toml | tr '\n' ' ' | sed 's/ $//')
TARGETS=${TARGETS:-$ALL}
export RUSTC_BOOTSTRAP=1

usage() {
  sed -n '2,22p' "$SCRIPT" | sed 's/^# \{0,1\}//'
}

ensure_cargo_fuzz() {
  if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz" >&2
    cargo install --locked cargo-fuzz
  fi
}

build() {
  ensure_cargo_fuzz
  if [[ "$TARGETS" == "$ALL" ]]; then
    nice -n "$NICE" cargo fuzz build --sanitizer "$SANITIZER"
  else
    for t in $TARGETS; do
      nice -n "$NICE" cargo fuzz build --sanitizer "$SANITIZER" "$t"
    done
  fi
}

# cargo fuzz run with the common options; extra arguments after `--` go to libFuzzer.
run() {
  local target=$1
  shift
  nice -n "$NICE" cargo fuzz run --sanitizer "$SANITIZER" "$target" "$@" \
    -rss_limit_mb="$RSS_MB" -timeout="$TIMEOUT" -print_final_stats=1
}

# "runs cov ft corpus_files": the last libFuzzer status of a log.
summary() {
  local log=$1 target=$2
  local runs cov ft
  runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
  echo "${runs:-?} ${cov:-?} ${ft:-?} $(find "corpus/$target" -type f | wc -l)"
}

crashes() {
  local target=$1
  if [[ -d "artifacts/$target" ]]; then
    find "artifacts/$target" -type f | wc -l
  else
    echo 0
  fi
}

smoke() {
  build
  local failed=0
  SCRATCH=$(mktemp -d)
  trap 'rm -rf "$SCRATCH"' EXIT
  for t in $TARGETS; do
    echo "== $t: corpus replay" >&2
    if ! run "$t" "corpus/$t" -- -runs=0; then
      failed=1
      continue
    fi
    echo "== $t: fuzzing ${SMOKE_SECONDS}s" >&2
    mkdir -p "$SCRATCH/$t"
    run "$t" "$SCRATCH/$t" "corpus/$t" -- -max_total_time="$SMOKE_SECONDS" || failed=1
  done
  if [[ $failed != 0 ]]; then
    echo "fuzz.sh: a target crashed; inputs are in fuzz/artifacts/<target>/" >&2
    exit 1
  fi
  echo "fuzz.sh: smoke passed ($TARGETS)" >&2
}

long() {
  build
  mkdir -p target/logs
  local failed=0 rows=()
  for t in $TARGETS; do
    local log="target/logs/$t.log"
    echo "== $t: fuzzing ${SECONDS_PER_TARGET}s (log: fuzz/$log)" >&2
    if ! run "$t" "corpus/$t" -- -max_total_time="$SECONDS_PER_TARGET" >"$log" 2>&1; then
      failed=1
      tail -40 "$log" >&2
    fi
    rows+=("$t $(summary "$log" "$t") $(crashes "$t")")
  done
  echo
  echo "target runs cov ft corpus_files crash_files"
  printf '%s\n' "${rows[@]}"
  if [[ $failed != 0 ]]; then
    echo "fuzz.sh: a target crashed; inputs are in fuzz/artifacts/<target>/" >&2
    exit 1
  fi
}

cmin() {
  build
  local t fresh before
  for t in $TARGETS; do
    fresh=$(mktemp -d)
    cp corpus/"$t"/seed_* "$fresh"/
    nice -n "$NICE" "target/x86_64-unknown-linux-gnu/release/$t" -merge=1 \
      -rss_limit_mb="$RSS_MB" -timeout="$TIMEOUT" "$fresh" "corpus/$t" 2>/dev/null
    before=$(find "corpus/$t" -type f | wc -l)
    rm -rf "corpus/$t"
    mv "$fresh" "corpus/$t"
    chmod 755 "corpus/$t"
    echo "$t: $before -> $(find "corpus/$t" -type f | wc -l) files, $(du -sb "corpus/$t" | cut -f1) bytes"
  done
}

case "$MODE" in
  smoke) smoke ;;
  cmin) cmin ;;
  long) long ;;
  build) build ;;
  list) echo "$ALL" ;;
  -h | --help | help) usage ;;
  *)
    usage >&2
    exit 2
    ;;
esac
