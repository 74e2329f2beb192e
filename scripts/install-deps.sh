#!/usr/bin/env bash
# Installs the Debian 12 packages re2tal builds and tests with, if any is missing (idempotent).
# Needs root (or sudo). Python/PyTorch are only for regenerating fixtures and for comparisons
# in `make bench`: pass --dev to install them too, and to make the virtual environment of
# PyPI peers (scripts/requirements-dev.txt: torch, torchcodec, decord, av, actionformer) in
# build/venv (RE2TAL_VENV overrides the folder); --fuzz adds what `make fuzz` needs. Nothing in
# `make test` uses Python.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

# chromium (+ a font for its text): the tests open the HTML report in headless Chromium
# (~116 MB download, ~390 MB installed, ~30 s on the dev machine).
packages=(cmake make gcc pkg-config
          libavformat-dev libavcodec-dev libswscale-dev libavutil-dev ffmpeg
          libopenblas-dev libdnnl-dev libcjson-dev libcriterion-dev
          chromium fonts-dejavu-core
          libopenmpi-dev openmpi-bin)  # MPI: optional at build time, tested when present
dev=0
if [[ "${1:-}" == "--dev" ]]; then
  dev=1
  # jemalloc, tcmalloc: allocators the PyTorch baselines are tried with (bench/run_backbone.sh)
  packages+=(python3-torch python3-numpy python3-pandas python3-av python3-venv python3-dev g++
             clang valgrind libjemalloc2 libtcmalloc-minimal4)
elif [[ "${1:-}" == "--fuzz" ]]; then # make fuzz: clang and its libFuzzer / sanitizer runtimes
  packages+=(clang libclang-rt-14-dev libomp-14-dev)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "install-deps: installing ${missing[*]}"
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
(( dev )) || exit 0

# ---- dev only: the PyPI peers of the benchmarks, pinned, in their own venv ----
venv="${RE2TAL_VENV:-$root/build/venv}"
reqs="$root/scripts/requirements-dev.txt"
stamp="$venv/.requirements-dev.txt"
if [[ -x "$venv/bin/python" ]] && cmp -s "$reqs" "$stamp"; then
  exit 0  # already made from this very pin set
fi
echo "install-deps: PyPI peers into $venv (scripts/requirements-dev.txt)"
/usr/bin/python3 -m venv "$venv"
pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
# torch first: the CPU-only wheel where its index is reachable, else PyPI's (CUDA build; it
# runs on the CPU). The pins are the same either way.
torch_pin="$(grep -E '^torch==' "$reqs")"
if ! "${pip[@]}" install --index-url https://download.pytorch.org/whl/cpu --timeout 15 \
      --retries 0 "$torch_pin" 2>/dev/null; then
  echo "install-deps: the CPU-only index is not reachable: PyPI's $torch_pin"
fi
"${pip[@]}" install -r "$reqs"
# actionformer's build needs torch (its optional C++ NMS): build it against the torch above
# instead of fetching another one into an isolated build environment.
"${pip[@]}" install --no-build-isolation --no-deps "actionformer==1.5.0"
"$venv/bin/python" - <<'PY'
import importlib
for name in ("torch", "torchvision", "torchcodec", "decord", "av", "actionformer"):
    m = importlib.import_module(name)
    print(f"install-deps: {name} {getattr(m, '__version__', '?')}")
PY
cp "$reqs" "$stamp"
