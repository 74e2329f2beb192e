#!/usr/bin/env bash
# bench/run_features.sh BUILD: feature-mode training throughput (videos/s) at ActionFormer's
# THUMOS-14 I3D shape, re2tal against the ActionFormer package's training step (PyTorch 2.x CPU)
# in alternating rounds of the same run (bench/features_bench.py says what is timed). The
# reference is the `actionformer` package of the one pinned dev venv (scripts/install-deps.sh
# --dev makes BUILD/venv; BENCH_PEER_PYTHON overrides, bench/peers.sh). Threads: RE2TAL_THREADS (2);
# rounds: BENCH_FEATURES_ROUNDS (3); updates per measurement: BENCH_FEATURES_STEPS (6).
# Both sides run OpenMP with OMP_WAIT_POLICY=PASSIVE unless it is set: on a loaded shared machine
# the default spinning collapses (bench/RESULTS.md, dist), whichever side's threads spin.
set -euo pipefail
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
build="$(cd "${1:-build}" && pwd)"
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/peers.sh"
py="$(peer_python "$build")"
if [[ -z "$py" ]] || ! "$py" -c "import actionformer, torch" 2>/dev/null; then
  echo "run_features: no Python with torch and actionformer (run scripts/install-deps.sh --dev," \
    "or set BENCH_PEER_PYTHON)" >&2
  exit 1
fi
echo "peer: actionformer $(peer_version "$py" actionformer), torch $(peer_version "$py" torch)"
"$py" "$here/features_bench.py" "$build" "$build/bench-features" \
  "${BENCH_FEATURES_ROUNDS:-3}" "${BENCH_FEATURES_STEPS:-6}" "${RE2TAL_THREADS:-2}"
