#!/usr/bin/env bash
# scripts/device_check.sh: the one command for a GPU machine whose image has nvcc, the CUDA
# libraries, CMake and Python but none of our Debian packages and no network. It unpacks the
# Debian 12 packages carried in .debs/ into a private prefix (dpkg -x, never into /), configures
# and builds re2tal with CUDA on, runs the CUDA tests, then every other test that was built, and
# prints one table (test, result, seconds). Built without the video folders (RE2TAL_VIDEO=OFF:
# decode, data, heads, app): FFmpeg's libraries are ~100 MB even pruned, over the carry limit;
# what is built and run is nn (every CUDA twin), eval and backbone with their tests.
#
#   scripts/device_check.sh --fetch     here (Debian 12 with network): fill .debs/ (git-ignored,
#                                       20 MB) with apt-get download
#   scripts/device_check.sh --dry-run   everything before the first GPU call: check .debs/,
#                                       unpack into a temporary prefix, configure, build, check
#                                       that the test programs load only carried or base
#                                       libraries; then stop (runs on a machine without a GPU)
#   scripts/device_check.sh             on the GPU machine: all of it
#
# From a session lent a GPU, after --fetch here, one call of the device tool's run:
#   carry: [".debs"], command: "scripts/device_check.sh", timeout_s: 540
# Under 8 minutes on 16 cores. The table and the logs also go to $OUT when it is set (the device
# tool brings $OUT back). Environment: PREFIX (default: a temp dir, removed at the end), BUILD
# (build-device), JOBS (the cores).
set -euo pipefail
cd "$(dirname "$0")/.."

# What the build needs from Debian (headers, pkg-config files, libraries) and what those
# libraries load. Base libraries every image has (libc, libstdc++, libgcc_s, libgomp, zlib) are
# not carried; the -dev packages are those whose .pc files pkg-config walks (criterion ->
# boxfort, libffi, libgit2 -> libpcre2-8, zlib; nanomsg).
PACKAGES=(
  pkgconf pkgconf-bin libpkgconf3
  libopenblas-dev libopenblas-pthread-dev libopenblas0 libopenblas0-pthread libgfortran5
  libquadmath0
  libcjson-dev libcjson1
  libcriterion-dev libcriterion3 libboxfort-dev libffi-dev libffi8 libgit2-dev libgit2-1.5
  libpcre2-dev libpcre2-8-0 zlib1g-dev libnanomsg-dev libnanomsg5 libhttp-parser2.9
  libmbedcrypto7 libmbedtls14 libmbedx509-1 libssh2-1 libssl3
  libgssapi-krb5-2 libkrb5-3 libk5crypto3 libcom-err2 libkrb5support0 libkeyutils1
)
DEBS=.debs
MAX_DEBS_BYTES=$((60 << 20)) # the device tool carries 64 MiB in all, the repository included
BUILD=${BUILD:-build-device}
JOBS=${JOBS:-$(nproc)}
# What a test program may load from the machine itself: the C and compiler runtimes, OpenMP,
# the CUDA toolkit and driver. Everything else must come from the prefix.
BASE_LIBS='^(libc|libm|libdl|librt|libpthread|libresolv|libstdc\+\+|libgcc_s|libgomp|libz'
BASE_LIBS+='|libcudart|libcublas|libcublasLt|libcuda)\.so'

mode=run
case "${1:-}" in
  --fetch) mode=fetch ;;
  --dry-run) mode=dry ;;
  "") ;;
  -h | --help) sed -n '2,22p' "$0"; exit 0 ;;
  *) echo "device_check: unknown option '$1' (--fetch, --dry-run or none)" >&2; exit 2 ;;
esac

say() { printf '== %s\n' "$*"; }
die() { printf 'device_check: %s\n' "$*" >&2; exit 1; }
t0=$(date +%s)
elapsed() { echo $(($(date +%s) - t0)); }

# ---------------------------------------------------------------- --fetch (here) ----------
if [[ $mode == fetch ]]; then
  command -v apt-get > /dev/null || die "--fetch needs apt-get (Debian 12)"
  rm -rf "$DEBS" && mkdir -p "$DEBS"
  (cd "$DEBS" && apt-get download -q "${PACKAGES[@]}") || die "apt-get download failed"
  say "fetched $(ls "$DEBS"/*.deb | wc -l) packages, $(du -cb "$DEBS"/*.deb | tail -1 | cut -f1)" \
    "bytes in $DEBS/"
  exit 0
fi

# ---------------------------------------------------------------- the machine -------------
say "machine"
uname -srm
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
if [[ $mode == run ]]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader \
    || die "nvidia-smi failed: no GPU?"
fi

# ---------------------------------------------------------------- the packages ------------
say "packages in $DEBS/"
[[ -d $DEBS ]] || die "no $DEBS/: run 'scripts/device_check.sh --fetch' on Debian 12, carry it"
missing=()
for p in "${PACKAGES[@]}"; do
  compgen -G "$DEBS/${p}_*.deb" > /dev/null || missing+=("$p")
done
((${#missing[@]} == 0)) || die "$DEBS/ lacks ${missing[*]} (run --fetch again)"
bytes=$(du -cb "$DEBS"/*.deb | tail -1 | cut -f1)
echo "${#PACKAGES[@]} packages, $bytes bytes (limit $MAX_DEBS_BYTES)"
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
for h in criterion/criterion.h cjson/cJSON.h x86_64-linux-gnu/openblas-pthread/cblas.h; do
  [[ -f $PREFIX/usr/include/$h ]] || die "the packages lack include/$h"
done
# pkg-config sees the prefix only, and puts the prefix in front of every -I and -L it prints
export PKG_CONFIG_LIBDIR=$LIB/pkgconfig:$LIB/openblas-pthread/pkgconfig:$PREFIX/usr/share/pkgconfig
export PKG_CONFIG_SYSROOT_DIR=$PREFIX
# the linker (for the libraries' own dependencies) and the tests find the libraries here
prev=${LD_LIBRARY_PATH:-}
export LD_LIBRARY_PATH=$LIB:$LIB/openblas-pthread:$PREFIX/lib/x86_64-linux-gnu${prev:+:$prev}
PKGCONF=$PREFIX/usr/bin/pkgconf
"$PKGCONF" --cflags --libs criterion libcjson openblas > /dev/null \
  || die "pkg-config cannot resolve criterion, libcjson and openblas from the prefix"
echo "criterion $("$PKGCONF" --modversion criterion), cjson $("$PKGCONF" --modversion libcjson)," \
  "openblas $("$PKGCONF" --modversion openblas)"

# ---------------------------------------------------------------- configure, build --------
say "configure ($BUILD: CUDA on, sm_90, no video folders)"
mkdir -p "$BUILD"
rm -f "$BUILD/CMakeCache.txt" # it names the last run's prefix (a temp dir, gone)
# warnings are errors in CI (Debian 12's gcc); another machine's compiler may warn otherwise
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DRE2TAL_CUDA=ON -DRE2TAL_VIDEO=OFF \
  -DRE2TAL_WERROR=OFF -DCMAKE_CUDA_ARCHITECTURES=90 -DPKG_CONFIG_EXECUTABLE="$PKGCONF" \
  > "$BUILD/configure.log" 2>&1 || { cat "$BUILD/configure.log"; die "configure failed"; }
grep -q 're2tal: CUDA ON' "$BUILD/configure.log" || die "CUDA is off in this build"
say "build (-j $JOBS)"
tb=$(date +%s)
cmake --build "$BUILD" -j "$JOBS" > "$BUILD/build.log" 2>&1 \
  || { tail -60 "$BUILD/build.log"; die "build failed"; }
echo "built in $(($(date +%s) - tb)) s, $(grep -c 'warning:' "$BUILD/build.log" || true) warnings"

say "libraries the tests load"
bad=0
for t in "$BUILD"/tests/test_*; do
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
out=${OUT:-$BUILD}
mkdir -p "$out"
run_ctest() { # $1: log name, then ctest's arguments; a failing test is reported, not fatal
  local log=$out/$1.log
  shift
  (cd "$BUILD" && ctest --timeout 300 -j "$JOBS" --output-on-failure "$@") > "$log" 2>&1 || true
}
say "CUDA tests"
run_ctest ctest-cuda -R 'cuda|device'
say "every other test"
run_ctest ctest-rest -E 'cuda|device'

say "summary ($(elapsed) s in all)"
# ctest's lines: "3/9 Test #12: test_cuda_dense ......   Passed    4.12 sec" (or ***Failed,
# ***Skipped, ***Timeout, ***Exception: SegFault ...). Here a CUDA test must pass: skipped
# means it saw no GPU.
table() { # $1: log; $2: results that count as good
  awk -v good="$2" '/Test +#[0-9]+: / {
         sub(/.*Test +#[0-9]+: /, "")
         name = $1; secs = $(NF - 1)
         res = $0; sub(/^[^ ]+ \.* */, "", res); sub(/ +[0-9.]+ sec.*$/, "", res)
         gsub(/\*/, "", res)
         if (index(good, " " res " ") == 0) { res = res " <--"; bad = 1 }
         printf "%-34s %-26s %8s\n", name, res, secs }
       END { exit bad }' "$1"
}
status=0
table "$out/ctest-cuda.log" " Passed " > "$out/summary.txt" || status=1
table "$out/ctest-rest.log" " Passed Skipped " >> "$out/summary.txt" || status=1
grep -hE 'tests passed' "$out/ctest-cuda.log" "$out/ctest-rest.log" >> "$out/summary.txt" || true
cat "$out/summary.txt"
if ((status != 0)); then
  echo "device_check: FAILED, the lines marked <-- (logs: $out/ctest-cuda.log, ctest-rest.log)"
  exit 1
fi
echo "device_check: ok"
