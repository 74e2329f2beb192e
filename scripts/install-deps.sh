#!/usr/bin/env bash
# Installs the Debian 12 packages re2tal builds and tests with, if any is missing (idempotent).
# Needs root (or sudo). Python/PyTorch are only for regenerating fixtures and for comparisons
# in `make bench`: pass --dev to install them too; --fuzz adds what `make fuzz` needs.
set -euo pipefail

# chromium (+ a font for its text): the tests open the HTML report in headless Chromium
# (~116 MB download, ~390 MB installed, ~30 s on the dev machine).
packages=(cmake make gcc pkg-config
          libavformat-dev libavcodec-dev libswscale-dev libavutil-dev ffmpeg
          libopenblas-dev libcjson-dev libcriterion-dev
          chromium fonts-dejavu-core
          libopenmpi-dev openmpi-bin)  # MPI: optional at build time, tested when present
if [[ "${1:-}" == "--dev" ]]; then
  packages+=(python3-torch python3-numpy python3-pandas python3-av clang valgrind)
elif [[ "${1:-}" == "--fuzz" ]]; then # make fuzz: clang and its libFuzzer / sanitizer runtimes
  packages+=(clang libclang-rt-14-dev libomp-14-dev)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

echo "install-deps: installing ${missing[*]}"
sudo=""
[[ $(id -u) -ne 0 ]] && sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
