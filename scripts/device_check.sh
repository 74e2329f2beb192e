#!/usr/bin/env bash
# scripts/device_check.sh: the one command for a GPU machine whose image has nvcc, the CUDA
# libraries, CMake, Python and PyTorch 2.x but none of our Debian packages and no network. It
# unpacks the Debian 12 packages carried in .debs/ into a private prefix (dpkg -x, never into /),
# builds a minimal static FFmpeg 5.1.9 + x264 from the source tarballs carried beside them
# (scripts/build_ffmpeg_min.sh: Debian's FFmpeg packages are 104 MB, over the carry limit), builds
# re2tal with CUDA and the video folders on, runs every test (the CUDA ones must pass, not skip),
# then bench/run_cuda.sh (re2tal vs PyTorch on the card), and prints one table: each phase, each
# test and each benchmark with its result, seconds and goal. Every phase runs under a hard time
# budget inside one deadline (DEADLINE_S, default 480 s), so a hang cannot eat the session.
#
#   scripts/device_check.sh --fetch     here (Debian 12 with network): fill .debs/ (git-ignored)
#                                       with apt-get download and the two source tarballs
#   scripts/device_check.sh --dry-run   everything before the first GPU call: check .debs/,
#                                       unpack into a temporary prefix, build FFmpeg, configure,
#                                       build, check that the programs load only carried or base
#                                       libraries; then stop (runs on a machine without a GPU)
#   scripts/device_check.sh             on the GPU machine: all of it
#
# From a session lent a GPU, after --fetch here (and a --dry-run), one call of the device tool:
#   run(command="scripts/device_check.sh", carry=[".debs"], timeout_s=560)
# It carries the working tree (5.9 MB, 461 files) and .debs/ (38.4 MB: 41 files, 27.4 MB of
# packages with oneDNN and nasm, the FFmpeg and x264 sources 11.0 MB): 44.4 MB of the 64 MiB.
# Budget on 16 cores: FFmpeg ~1 min, build ~2 min, the CUDA tests, the benchmark (most of what
# is left), then the other tests; all cut at DEADLINE_S (480 s; timeout_s 560 leaves the tool
# time to bring $OUT back). What comes back in $OUT (8 files at most): summary.txt (the table),
# device_check.log (all of stdout), build.log, ffmpeg.log, ctest.log, cuda_bench.jsonl,
# cuda_bench.md, cuda_bench_errors.log.
# Record the table in bench/RESULTS.md with the date and the card.
# Environment: PREFIX (default: a temp dir, removed at the end), BUILD (build-device: FFmpeg is
# built once into BUILD/ffmin and reused), JOBS (the cores), DEADLINE_S, BUDGET_SCALE (each
# phase's budget times it), PYTHON (for the benchmark: python3 with PyTorch 2.x). Dry run on a
# small machine: BUDGET_SCALE=10 DEADLINE_S=7200 JOBS=2 scripts/device_check.sh --dry-run.
set -euo pipefail
cd "$(dirname "$0")/.."

# What the build needs from Debian (headers, pkg-config files, libraries) and what those
# libraries load. Base libraries every image has (libc, libstdc++, libgcc_s, libgomp, zlib) are
# not carried; the -dev packages are those whose .pc files pkg-config walks (criterion ->
# boxfort, libffi, libgit2 -> libpcre2-8, zlib; nanomsg); oneDNN (CMake finds it by path, told
# where) loads libOpenCL. nasm assembles FFmpeg's and x264's
# x86 code (the decoder's speed: the input-pipeline benchmark); zlib1g-dev gives FFmpeg's PNG
# codecs their zlib.
PACKAGES=(
  pkgconf pkgconf-bin libpkgconf3
  libopenblas-dev libopenblas-pthread-dev libopenblas0 libopenblas0-pthread libgfortran5
  libquadmath0 libdnnl-dev libdnnl2 ocl-icd-libopencl1
  libcjson-dev libcjson1
  libcriterion-dev libcriterion3 libboxfort-dev libffi-dev libffi8 libgit2-dev libgit2-1.5
  libpcre2-dev libpcre2-8-0 zlib1g-dev libnanomsg-dev libnanomsg5 libhttp-parser2.9
  libmbedcrypto7 libmbedtls14 libmbedx509-1 libssh2-1 libssl3
  libgssapi-krb5-2 libkrb5-3 libk5crypto3 libcom-err2 libkrb5support0 libkeyutils1
  nasm
)
# FFmpeg as Debian 12 ships it (5.1.9) and the x264 its libx264 is built from, as source
SOURCES=(
  "http://deb.debian.org/debian-security/pool/updates/main/f/ffmpeg/ffmpeg_5.1.9.orig.tar.xz"
  "d9b593bb2ba93d4b50f74177e0cdcd41747e708596367deed0c30348a71dd176"
  "http://deb.debian.org/debian/pool/main/x/x264/x264_0.164.3095+gitbaee400.orig.tar.gz"
  "8b237e94b08c196a1da22f2f25875f10be4cff3648df4eeff21e00da8f683fc2"
)
DEBS=.debs
MAX_DEBS_BYTES=$((54 << 20)) # the device tool carries 64 MiB in all, the working tree included
BUILD=${BUILD:-build-device}
JOBS=${JOBS:-$(nproc)}
DEADLINE_S=${DEADLINE_S:-480}
BUDGET_SCALE=${BUDGET_SCALE:-1} # a dry run on 2 shared cores: 10, with DEADLINE_S=7200
# What a program may load from the machine itself: the C and compiler runtimes, OpenMP, the
# CUDA toolkit and driver. Everything else must come from the prefix.
BASE_LIBS='^(libc|libm|libdl|librt|libpthread|libresolv|libstdc\+\+|libgcc_s|libgomp|libz'
BASE_LIBS+='|libatomic|libcudart|libcublas|libcublasLt|libcuda)\.so'
# Tests that need what the GPU image lacks: Chromium (the report's screenshots)
NOT_HERE='test_app_report'

mode=run
case "${1:-}" in
  --fetch) mode=fetch ;;
  --dry-run) mode=dry ;;
  "") ;;
  -h | --help) sed -n '2,33p' "$0"; exit 0 ;;
  *) echo "device_check: unknown option '$1' (--fetch, --dry-run or none)" >&2; exit 2 ;;
esac

say() { printf '== %s\n' "$*"; }
die() { printf 'device_check: %s\n' "$*" >&2; exit 1; }
t0=$(date +%s)
elapsed() { echo $(($(date +%s) - t0)); }

# ---------------------------------------------------------------- --fetch (here) ----------
if [[ $mode == fetch ]]; then
  command -v apt-get > /dev/null || die "--fetch needs apt-get (Debian 12)"
  command -v curl > /dev/null || die "--fetch needs curl"
  rm -rf "$DEBS" && mkdir -p "$DEBS"
  (cd "$DEBS" && apt-get download -q "${PACKAGES[@]}") || die "apt-get download failed"
  for ((k = 0; k < ${#SOURCES[@]}; k += 2)); do
    url=${SOURCES[k]} sum=${SOURCES[k + 1]}
    curl -fsSL --retry 2 -o "$DEBS/${url##*/}" "$url" || die "cannot download $url"
    echo "$sum  $DEBS/${url##*/}" | sha256sum -c --quiet || die "${url##*/}: wrong sha256"
  done
  say "fetched $(ls "$DEBS" | wc -l) files, $(du -cb "$DEBS"/* | tail -1 | cut -f1) bytes in $DEBS/"
  exit 0
fi

# ---------------------------------------------------------------- phases and the table ----
out=${OUT:-$BUILD/out}
mkdir -p "$BUILD" "$out"
out=$(cd "$out" && pwd)
exec > >(tee "$out/device_check.log") 2>&1 # all of it also into $out
phases=$BUILD/phases.tsv
: > "$phases"
# phase NAME BUDGET_S LOG FUNCTION: runs FUNCTION (in a child bash that knows this script's
# functions and exported variables) with stdout and stderr into LOG, killed after BUDGET_S or
# at the deadline, whichever comes first; records the result; returns FUNCTION's status (124 on
# a timeout).
phase() {
  local name=$1 budget=$(($2 * BUDGET_SCALE)) log=$3 fn=$4
  local left=$((DEADLINE_S - $(elapsed)))
  ((budget > left)) && budget=$left
  if ((budget < 5)); then
    printf '%s\tskipped (deadline)\t0\n' "$name" >> "$phases"
    say "$name: skipped, the ${DEADLINE_S} s deadline is reached"
    return 124
  fi
  say "$name (at most $budget s)"
  local ts rc=0
  ts=$(date +%s)
  # timeout signals its whole process group: make, ctest, python below it go too
  timeout -k 10 "$budget" bash -c "set -o pipefail; $(declare -f); $fn" > "$log" 2>&1 || rc=$?
  local secs=$(($(date +%s) - ts)) res=ok
  ((rc == 0)) || res="FAILED (exit $rc)"
  ((rc == 124 || rc == 137)) && res="TIMEOUT after $budget s"
  printf '%s\t%s\t%s\n' "$name" "$res" "$secs" >> "$phases"
  echo "$name: $res, $secs s"
  return "$rc"
}

# ---------------------------------------------------------------- the machine -------------
say "machine"
uname -srm
echo "$(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)"
first=$(ldd --version 2>&1 | sed -n 1p || true) # sed reads it all: no SIGPIPE under pipefail
glibc=$(grep -oE '[0-9]+\.[0-9]+$' <<< "$first" || echo unknown)
echo "glibc $glibc ($first)"
if [[ $glibc == unknown || $(printf '%s\n2.36\n' "$glibc" | sort -V | head -1) != 2.36 ]]; then
  echo "WARNING: glibc $glibc is older than Debian 12's 2.36: the carried libraries may not"
  echo "WARNING: load (GLIBC_2.3x symbols missing); building and testing what can be."
fi
gcc --version | sed -n 1p || die "no gcc"
export PATH=/usr/local/cuda/bin:$PATH
nvcc --version | tail -1 || die "no nvcc (looked on the PATH and in /usr/local/cuda/bin)"
cmake --version | sed -n 1p || die "no cmake"
export PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)' \
  || echo "WARNING: $PYTHON has no torch: the PyTorch side of the benchmark will fail"
if [[ $mode == run ]]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader \
    || die "nvidia-smi failed: no GPU?"
fi

# ---------------------------------------------------------------- the packages ------------
say "packages and sources in $DEBS/"
[[ -d $DEBS ]] || die "no $DEBS/: run 'scripts/device_check.sh --fetch' on Debian 12, carry it"
missing=()
for p in "${PACKAGES[@]}"; do
  compgen -G "$DEBS/${p}_*.deb" > /dev/null || missing+=("$p")
done
for ((k = 0; k < ${#SOURCES[@]}; k += 2)); do
  [[ -f $DEBS/${SOURCES[k]##*/} ]] || missing+=("${SOURCES[k]##*/}")
done
((${#missing[@]} == 0)) || die "$DEBS/ lacks ${missing[*]} (run --fetch again)"
bytes=$(du -cb "$DEBS"/* | tail -1 | cut -f1)
echo "${#PACKAGES[@]} packages and 2 source tarballs, $bytes bytes (limit $MAX_DEBS_BYTES)"
((bytes <= MAX_DEBS_BYTES)) || die "$DEBS/ is $bytes bytes: too big to carry"

# ---------------------------------------------------------------- unpack ------------------
if [[ -z ${PREFIX:-} ]]; then
  PREFIX=$(mktemp -d /tmp/re2tal-prefix.XXXXXX)
  trap 'rm -rf "$PREFIX"' EXIT
fi
case "$PREFIX" in / | /usr | /usr/*) die "PREFIX=$PREFIX: never unpack into the system" ;; esac
say "unpacking into $PREFIX"
rm -rf "$PREFIX" && mkdir -p "$PREFIX"
unpack() { # dpkg -x where dpkg exists, else the same in Python (ar archive, data.tar.*)
  if command -v dpkg-deb > /dev/null; then
    dpkg-deb -x "$1" "$PREFIX"
    return
  fi
  python3 - "$1" "$PREFIX" << 'EOF'
import io, sys, tarfile
deb, dest = sys.argv[1], sys.argv[2]
data = open(deb, 'rb').read()
assert data[:8] == b'!<arch>\n', deb + ': not a .deb'
pos = 8
while pos < len(data):
    name, size = data[pos:pos + 16].decode().strip().rstrip('/'), int(data[pos + 48:pos + 58])
    body, pos = data[pos + 60:pos + 60 + size], pos + 60 + size + (size & 1)
    if name.startswith('data.tar'):
        with tarfile.open(fileobj=io.BytesIO(body)) as t:
            if hasattr(tarfile, 'tar_filter'):
                t.extractall(dest, filter='tar')
            else:
                t.extractall(dest)
EOF
}
for p in "${PACKAGES[@]}"; do unpack "$(ls "$DEBS/${p}"_*.deb | head -1)"; done
LIB=$PREFIX/usr/lib/x86_64-linux-gnu
for h in criterion/criterion.h cjson/cJSON.h x86_64-linux-gnu/openblas-pthread/cblas.h zlib.h \
  oneapi/dnnl/dnnl.h; do
  [[ -f $PREFIX/usr/include/$h ]] || die "the packages lack include/$h"
done
export PATH=$PREFIX/usr/bin:$PATH # nasm, pkgconf
export PREFIX LIB DEBS BUILD JOBS

# ---------------------------------------------------------------- FFmpeg ------------------
# Built once into $BUILD/ffmin (stamped: a rerun with the same sources is a no-op), then seen
# by pkg-config as $PREFIX/ff, beside the packages.
ffmin() {
  FF_EXTRA_CFLAGS="-I$PREFIX/usr/include" FF_EXTRA_LDFLAGS="-L$LIB" \
    PKG_CONFIG="$PREFIX/usr/bin/pkgconf" scripts/build_ffmpeg_min.sh "$DEBS" "$BUILD/ffmin" "$JOBS"
}
phase ffmpeg 240 "$out/ffmpeg.log" ffmin \
  || { tail -30 "$out/ffmpeg.log"; die "FFmpeg build failed"; }
tail -3 "$out/ffmpeg.log"
ln -sfn "$(cd "$BUILD/ffmin/ff" && pwd)" "$PREFIX/ff"
export PATH=$PREFIX/ff/bin:$PATH # the tests' ffmpeg and ffprobe
ffmpeg -hide_banner -encoders 2> /dev/null | grep -q libx264 || die "the built ffmpeg lacks libx264"

# pkg-config sees the prefix only, and puts the prefix in front of every -I and -L it prints
export PKG_CONFIG_LIBDIR=$LIB/pkgconfig:$LIB/openblas-pthread/pkgconfig:$PREFIX/usr/share/pkgconfig
PKG_CONFIG_LIBDIR+=:$PREFIX/ff/lib/pkgconfig
export PKG_CONFIG_SYSROOT_DIR=$PREFIX
# the linker (for the libraries' own dependencies) and the tests find the libraries here
prev=${LD_LIBRARY_PATH:-}
export LD_LIBRARY_PATH=$LIB:$LIB/openblas-pthread:$PREFIX/lib/x86_64-linux-gnu${prev:+:$prev}
export PKGCONF=$PREFIX/usr/bin/pkgconf
"$PKGCONF" --cflags --libs criterion libcjson openblas libavformat libswscale > /dev/null \
  || die "pkg-config cannot resolve criterion, libcjson, openblas and FFmpeg from the prefix"
echo "criterion $("$PKGCONF" --modversion criterion), cjson $("$PKGCONF" --modversion libcjson)," \
  "openblas $("$PKGCONF" --modversion openblas), libavcodec $("$PKGCONF" --modversion libavcodec)"

# ---------------------------------------------------------------- configure, build --------
rm -f "$BUILD/CMakeCache.txt" # it names the last run's prefix (a temp dir, gone)
# warnings are errors in CI (Debian 12's gcc); another machine's compiler may warn otherwise
configure_and_build() {
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DRE2TAL_CUDA=ON -DRE2TAL_VIDEO=ON \
    -DRE2TAL_MPI=OFF -DRE2TAL_WERROR=OFF -DCMAKE_CUDA_ARCHITECTURES=90 \
    -DDNNL_INCLUDE_DIR="$PREFIX/usr/include" -DDNNL_LIBRARY="$LIB/libdnnl.so" \
    -DPKG_CONFIG_EXECUTABLE="$PKGCONF" | tee "$BUILD/configure.log" || return 1
  grep -q 're2tal: CUDA ON' "$BUILD/configure.log" \
    || { echo "CUDA is off in this build"; return 1; }
  cmake --build "$BUILD" -j "$JOBS"
}
phase build 300 "$out/build.log" configure_and_build \
  || { tail -60 "$out/build.log"; die "configure or build failed (log: $out/build.log)"; }
echo "$(grep -c 'warning:' "$out/build.log" || true) warnings"

say "libraries the programs load"
bad=0
for t in "$BUILD"/tests/test_* "$BUILD/app/re2tal"; do
  [[ -f $t && -x $t ]] || continue
  while read -r name _ path _; do
    [[ $path == "$PREFIX"/* || $name =~ $BASE_LIBS ]] && continue
    echo "$(basename "$t"): $name -> $path"
    bad=1
  done < <(ldd "$t" | grep '=>')
done
((bad == 0)) || die "some libraries come from neither the packages nor the base set (above)"
echo "all from $PREFIX or the base set"
if [[ $mode == dry ]]; then
  say "dry run: stopping before the first GPU call ($(elapsed) s)"
  exit 0
fi

# ---------------------------------------------------------------- tests -------------------
# The GPU's tests first (a CUDA test must pass here: skipped means it saw no GPU), then the
# benchmark on a quiet machine, then every other test but those needing what the image lacks,
# in what is left of the deadline (they all run on every CPU build too).
export NOT_HERE
gpu_tests() { cd "$BUILD" && ctest --timeout 120 -j "$JOBS" --output-on-failure -R 'cuda|device'; }
cpu_tests() {
  cd "$BUILD" && ctest --timeout 120 -j "$JOBS" --output-on-failure -E "cuda|device|$NOT_HERE"
}
phase gpu-tests 150 "$out/ctest.log" gpu_tests || true

# ---------------------------------------------------------------- benchmark ---------------
export DEADLINE_S t0
bench() { # leaves 60 s of the deadline to the CPU tests
  CUDA_BENCH_BUDGET=$((DEADLINE_S - ($(date +%s) - t0) - 75)) \
    bench/run_cuda.sh "$BUILD" "$BUILD/cuda_bench"
}
phase benchmark 400 "$BUILD/cuda_bench.log" bench || true
for f in cuda_bench.jsonl cuda_bench.md; do
  cp "$BUILD/cuda_bench/$f" "$out/" 2> /dev/null || true
done
{
  echo "--- run_cuda.sh's output"
  cat "$BUILD/cuda_bench.log"
  for e in "$BUILD"/cuda_bench/*.err; do
    [[ -s $e ]] && { echo "--- $(basename "$e")"; tail -40 "$e"; }
  done
} > "$out/cuda_bench_errors.log" 2>&1 || true

phase cpu-tests 200 "$BUILD/ctest-cpu.log" cpu_tests || true
cat "$BUILD/ctest-cpu.log" >> "$out/ctest.log" 2> /dev/null || true

# ---------------------------------------------------------------- the table ---------------
# ctest's lines: "3/9 Test #12: test_cuda_dense ......   Passed    4.12 sec" (or ***Failed,
# ***Skipped, ***Timeout, ***Exception: SegFault ...). A test matching cuda|device must pass.
{
  gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2> /dev/null | head -1)
  say "device_check summary: $(elapsed) s in all, $gpu, $(date -u +%F)"
  printf '%-44s %-28s %8s\n' "phase / test" "result" "seconds"
  awk -F'\t' '{ printf "%-44s %-28s %8s\n", $1, $2, $3 }' "$phases"
  awk '/Test +#[0-9]+: / {
         sub(/.*Test +#[0-9]+: /, "")
         name = $1; secs = $(NF - 1)
         res = $0; sub(/^[^ ]+ \.* */, "", res); sub(/ +[0-9.]+ sec.*$/, "", res)
         gsub(/\*/, "", res)
         good = res == "Passed" || (res == "Skipped" && name !~ /cuda|device/)
         if (!good) res = res " <--"
         printf "  %-42s %-28s %8s\n", name, res, secs }' "$out/ctest.log" 2> /dev/null
  grep -hE 'tests passed' "$out/ctest.log" 2> /dev/null || echo "(no ctest summary)"
  echo
  cat "$out/cuda_bench.md" 2> /dev/null || echo "(no benchmark table)"
} > "$out/summary.txt"
cat "$out/summary.txt"
if grep -qE '<--|FAILED|TIMEOUT|skipped \(deadline\)|\| NO \|' "$out/summary.txt"; then
  echo "device_check: NOT all good: the lines marked <--, FAILED, TIMEOUT or NO (logs in $out)"
  exit 1
fi
echo "device_check: ok ($(elapsed) s)"
