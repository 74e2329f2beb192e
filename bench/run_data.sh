#!/usr/bin/env bash
# bench/run_data.sh BUILD_DIR: synthetic dataset speed (1 thread vs all) and annotation loading.
set -euo pipefail
build="$1"
here="$(cd "$(dirname "$0")" && pwd)"
# The real annotation files, unpacked from tests/data/annotations.tar.xz at configure.
data="$build/tests/data"
[[ -d "$data" ]] || { echo "run_data: $data missing (configure the build first)" >&2; exit 1; }
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
files=()
for f in anet13_val_gt.json anet13_bsn_anno_action.json thumos14_test_gt.json; do
  files+=("$data/$f")
done
"$build/bench/bench_data_synth" "$out" "${BENCH_DATA_VIDEOS:-40}" "${files[@]}"
