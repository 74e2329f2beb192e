#!/usr/bin/env bash
# tests/fuzz/run.sh BUILD SECONDS [TARGET...]: runs each libFuzzer target of BUILD (a tree made
# with -DRE2TAL_FUZZ=ON) for SECONDS, one after another, from a copy of its committed seeds
# (tests/fuzz/<target without "fuzz_">/), under ASan + UBSan stopping at the first report. A
# crash, leak, UB report, timeout (10 s for one input) or out-of-memory is a finding: the input
# is kept as BUILD/fuzz/<target>/crash-* (or leak-*, timeout-*, oom-*) and the exit status is 1.
# Prints one line per target: executions, executions per second, coverage, corpus size.
set -uo pipefail
build=${1:?usage: tests/fuzz/run.sh BUILD SECONDS [TARGET...]}
seconds=${2:?usage: tests/fuzz/run.sh BUILD SECONDS [TARGET...]}
shift 2
here=$(cd "$(dirname "$0")" && pwd)
targets=("$@")
if [[ ${#targets[@]} -eq 0 ]]; then
  for src in "$here"/../fuzz_*.c; do targets+=("$(basename "$src" .c)"); done
fi

# longest input each target takes: a few KB of JSON or text, some videos a little more
max_len() {
  case $1 in
    fuzz_decode_video) echo 16384 ;;
    fuzz_eval_gt | fuzz_app_config) echo 8192 ;;
    *) echo 4096 ;;
  esac
}

export ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:abort_on_error=1:allocator_may_return_null=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export RE2TAL_THREADS=1
# the targets whose readers take paths write each input to a file: on tmpfs when there is one
# (on this disk a write and close took 4 ms, 40x the rest of an execution)
scratch=$(mktemp -d -p /dev/shm re2tal_fuzz.XXXXXX 2>/dev/null || mktemp -d)
trap 'rm -rf "$scratch"' EXIT
status=0
printf '%-22s %12s %10s %8s %8s  %s\n' target executions exec/s cov corpus result
for t in "${targets[@]}"; do
  bin="$build/tests/$t"
  seeds="$here/${t#fuzz_}"
  work="$build/fuzz/$t"
  if [[ ! -x $bin ]]; then
    echo "$t: not built ($bin); configure with -DRE2TAL_FUZZ=ON -DCMAKE_C_COMPILER=clang" >&2
    status=1
    continue
  fi
  rm -rf "$work" && mkdir -p "$work/corpus"
  [[ -d $seeds ]] && cp "$seeds"/* "$work/corpus/"
  dict=()
  [[ -f $seeds.dict ]] && dict=(-dict="$seeds.dict")
  TMPDIR="$scratch" "$bin" "$work/corpus" "${dict[@]}" -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=2048 -max_len="$(max_len "$t")" -print_final_stats=1 \
    -artifact_prefix="$work/" > "$work/log.txt" 2>&1
  rc=$?
  runs=$(grep -ao 'stat::number_of_executed_units: *[0-9]*' "$work/log.txt" | tail -1 | grep -o '[0-9]*$')
  rate=$(grep -ao 'stat::average_exec_per_sec: *[0-9]*' "$work/log.txt" | tail -1 | grep -o '[0-9]*$')
  cov=$(grep -ao 'cov: [0-9]*' "$work/log.txt" | tail -1 | grep -o '[0-9]*')
  found=$(ls "$work" | grep -E '^(crash|leak|timeout|oom|slow-unit)-' | head -1)
  result="no finding"
  if [[ $rc -ne 0 || -n $found ]]; then
    result="FINDING (exit $rc) ${found:+$work/$found}, log $work/log.txt"
    status=1
  fi
  printf '%-22s %12s %10s %8s %8s  %s\n' "$t" "${runs:-?}" "${rate:-?}" "${cov:-?}" \
    "$(ls "$work/corpus" | wc -l)" "$result"
done
exit $status
