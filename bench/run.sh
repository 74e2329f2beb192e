#!/usr/bin/env bash
# `make bench`: runs every bench/run_<module>.sh against the build folder given (default build).
# Each prints its numbers beside a baseline measured in the same run. Record results, with the
# machine and the command, in bench/RESULTS.md.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="$(cd "${1:-build}" && pwd)"
status=0
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
for script in "$here"/run_*.sh; do
  [[ -e "$script" ]] || continue
  echo "== $(basename "$script" .sh | sed 's/^run_//')"
  bash "$script" "$build" || { echo "bench: $(basename "$script") failed"; status=1; }
done
exit $status
