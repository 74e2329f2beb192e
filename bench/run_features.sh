#!/usr/bin/env bash
# bench/run_features.sh BUILD: feature-mode training throughput (videos/s) at ActionFormer's
# THUMOS-14 I3D shape, re2tal against the ActionFormer package's training step (PyTorch 2.x CPU)
# in alternating rounds of the same run (bench/features_bench.py says what is timed). The
# reference lives in a dev venv under BUILD/bench-venv, made here once with pinned versions
# (PyPI: ~3 GB, torch's wheels bring their CUDA libraries). Threads: RE2TAL_THREADS (2);
# rounds: BENCH_FEATURES_ROUNDS (3); updates per measurement: BENCH_FEATURES_STEPS (6).
# Both sides run OpenMP with OMP_WAIT_POLICY=PASSIVE unless it is set: on a loaded shared machine
# the default spinning collapses (bench/RESULTS.md, dist), whichever side's threads spin.
set -euo pipefail
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
build="$(cd "${1:-build}" && pwd)"
here="$(cd "$(dirname "$0")" && pwd)"
venv="$build/bench-venv"
if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c "import actionformer, torch" 2>/dev/null; then
  echo "setting up $venv (torch 2.5.1 CPU use, actionformer 1.5.0)"
  /usr/bin/python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet torch==2.5.1 numpy==1.26.4 pyyaml==6.0.2 pandas==2.2.3 \
    scipy==1.14.1 joblib==1.4.2 tqdm==4.67.1 h5py==3.12.1 setuptools==75.6.0 wheel==0.45.1
  # its build needs torch (the C++ NMS extension): build against the venv's
  "$venv/bin/pip" install --quiet --no-deps --no-build-isolation actionformer==1.5.0
fi
"$venv/bin/python" "$here/features_bench.py" "$build" "$build/bench-features" \
  "${BENCH_FEATURES_ROUNDS:-3}" "${BENCH_FEATURES_STEPS:-6}" "${RE2TAL_THREADS:-2}"
