#!/usr/bin/env bash
# scripts/build_ffmpeg_min.sh SRC_DIR SYSROOT [JOBS]: a minimal static FFmpeg 5.1.9 (Debian 12's
# version) with libx264, built from the source tarballs in SRC_DIR (what scripts/device_check.sh
# --fetch puts in .debs/) and installed under SYSROOT/ff: the libraries re2tal links, their .pc
# files, and the ffmpeg / ffprobe programs the decode tests run. For the GPU machine, whose image
# has no FFmpeg: Debian's FFmpeg packages are 104 MB, the two tarballs 11 MB.
#
# It holds what re2tal and its tests use and little more: the H.264, MPEG-4, MPEG-2, PNG, GIF
# and raw video decoders and encoders (libx264 and mpeg4 for `re2tal synth`), AAC (and the PCM
# lavfi's sine gives) for the audio-only test file, MP4/MOV/M4A, Matroska, MPEG-TS, AVI, NUT,
# GIF and raw demuxers and muxers, the lavfi sources and filters the tests' ffmpeg commands
# name, libswscale and libswresample. A new test that asks the ffmpeg CLI for another codec or
# format fails on the GPU machine until it is added here. x86 assembly is built when nasm is on
# the PATH (the decoder's speed: the input-pipeline benchmark), else left out. The PNG and
# JPEG XL pipe demuxers only probe: re2tal refuses still images by the demuxer's name. The .pc files
# get their private libraries moved into Libs, so a plain `pkg-config --libs` (what CMake asks)
# links the static archives. Stamps make a second run with the same sources and components a
# no-op, and a change to the FFmpeg components rebuilds FFmpeg only.
# Environment: FF_EXTRA_CFLAGS / FF_EXTRA_LDFLAGS for headers and libraries outside the
# compiler's paths (zlib from the carried packages on the GPU machine).
set -euo pipefail
src=$(cd "${1:?usage: build_ffmpeg_min.sh SRC_DIR SYSROOT [JOBS]}" && pwd)
sysroot=${2:?usage: build_ffmpeg_min.sh SRC_DIR SYSROOT [JOBS]}
jobs=${3:-$(nproc)}
mkdir -p "$sysroot"
sysroot=$(cd "$sysroot" && pwd)
FFMPEG_TAR=ffmpeg_5.1.9.orig.tar.xz
X264_TAR=x264_0.164.3095+gitbaee400.orig.tar.gz
ff=/ff # install prefix inside the sysroot: the .pc files say /ff, pkg-config adds the sysroot

COMPONENTS=(
  --enable-decoder=h264,mpeg4,mpeg1video,mpeg2video,png,gif,rawvideo,aac,mjpeg
  --enable-decoder=pcm_s16le,pcm_f32le,wrapped_avframe
  --enable-encoder=libx264,mpeg4,mpeg2video,png,gif,rawvideo,aac
  --enable-parser=h264,mpeg4video,mpegvideo,aac,png,gif,mjpeg
  --enable-demuxer=mov,matroska,mpegts,avi,nut,rawvideo,image2,gif,h264,m4v,aac
  --enable-demuxer=image_png_pipe,image_jpegxl_pipe
  --enable-muxer=mp4,ipod,mov,matroska,mpegts,avi,nut,rawvideo,image2,gif,null,h264
  --enable-protocol=file,pipe
  --enable-bsf=h264_mp4toannexb,aac_adtstoasc,extract_extradata,mpeg4_unpack_bframes
  --enable-indev=lavfi
  --enable-filter=testsrc,testsrc2,nullsrc,sine,anullsrc,geq,setpts,asetpts,select,loop,scale,format
  --enable-filter=aformat,aresample,null,anull,transpose,hflip,vflip,copy,trim,atrim,fps,pad
  --enable-filter=crop,settb,split,buffer,buffersink,abuffer,abuffersink
)

have_nasm=0
command -v nasm > /dev/null && have_nasm=1
extra_cflags=${FF_EXTRA_CFLAGS:-}
extra_ldflags=${FF_EXTRA_LDFLAGS:-}
x264_stamp_text="$X264_TAR nasm=$have_nasm"
# (the extra flags only say where zlib is: a new temporary prefix each run must not rebuild)
ff_stamp_text="$FFMPEG_TAR nasm=$have_nasm ${COMPONENTS[*]}"
x264_stamp=$sysroot$ff/.x264-built
ff_stamp=$sysroot$ff/.ffmpeg-built
same() { [[ -f $1 && $(cat "$1") == "$2" ]]; }
if same "$x264_stamp" "$x264_stamp_text" && same "$ff_stamp" "$ff_stamp_text"; then
  echo "ffmpeg: already built in $sysroot$ff"
  exit 0
fi
for t in "$FFMPEG_TAR" "$X264_TAR"; do
  [[ -f $src/$t ]] \
    || { echo "build_ffmpeg_min: $src/$t missing (device_check.sh --fetch)" >&2; exit 1; }
done
work=$(mktemp -d "${TMPDIR:-/tmp}/ffmin.XXXXXX")
trap 'rm -rf "$work"' EXIT

t0=$(date +%s)
if ! same "$x264_stamp" "$x264_stamp_text"; then
  rm -rf "${sysroot:?}$ff"
  tar -xzf "$src/$X264_TAR" -C "$work"
  cd "$work"/x264-*
  x264_asm=()
  ((have_nasm)) || x264_asm=(--disable-asm)
  ./configure --prefix=$ff --enable-static --enable-pic --disable-cli --disable-opencl \
    "${x264_asm[@]}" > "$work/x264-configure.log" 2>&1 \
    || { tail -20 "$work/x264-configure.log"; exit 1; }
  make -j "$jobs" > "$work/x264-build.log" 2>&1 || { tail -40 "$work/x264-build.log"; exit 1; }
  make install DESTDIR="$sysroot" > /dev/null
  echo "$x264_stamp_text" > "$x264_stamp"
  echo "x264: $(($(date +%s) - t0)) s (-j $jobs)"
fi

t1=$(date +%s)
rm -f "$ff_stamp"
tar -xJf "$src/$FFMPEG_TAR" -C "$work"
cd "$work"/ffmpeg-5.1.9
ff_asm=()
((have_nasm)) || ff_asm=(--disable-x86asm)
export PKG_CONFIG_LIBDIR=$sysroot$ff/lib/pkgconfig PKG_CONFIG_SYSROOT_DIR=$sysroot
pkgconf=${PKG_CONFIG:-$(command -v pkg-config || command -v pkgconf)}
./configure --prefix=$ff --pkg-config="$pkgconf" --enable-static --disable-shared --enable-pic \
  --disable-debug --disable-doc --disable-autodetect --disable-everything --disable-programs \
  --enable-ffmpeg --enable-ffprobe --enable-gpl --enable-libx264 --enable-zlib \
  --enable-avdevice --enable-avfilter --enable-swscale --enable-swresample \
  --extra-cflags="$extra_cflags" --extra-ldflags="$extra_ldflags" \
  "${COMPONENTS[@]}" "${ff_asm[@]}" > "$work/ffmpeg-configure.log" 2>&1 \
  || { tail -30 "$work/ffmpeg-configure.log"; tail -30 ffbuild/config.log; exit 1; }
# a misspelt component is only a warning to configure: here it is an error
if grep 'did not match anything' "$work/ffmpeg-configure.log"; then exit 1; fi
grep -q '^CONFIG_ZLIB=yes' ffbuild/config.mak \
  || { echo "build_ffmpeg_min: no zlib (the PNG codecs need it; FF_EXTRA_CFLAGS?)" >&2; exit 1; }
t2=$(date +%s)
make -j "$jobs" > "$work/ffmpeg-build.log" 2>&1 \
  || { grep -B5 -A5 'error' "$work/ffmpeg-build.log" | head -60; exit 1; }
make install DESTDIR="$sysroot" > /dev/null
t3=$(date +%s)

# Static archives: the private libraries must come along on the link line CMake makes. The
# -L to the sysroot that x264's .pc left in libavcodec's is dropped (pkg-config adds ${libdir}).
for pc in "$sysroot$ff"/lib/pkgconfig/*.pc; do
  awk -v stray="-L$sysroot$ff/lib" '
       /^Libs.private:/ { sub(/^Libs.private: */, ""); lp = $0; next }
       /^Requires.private:/ { sub(/^Requires.private: */, ""); rp = $0; next }
       { line[n++] = $0 }
       END { for (i = 0; i < n; i++) {
               s = line[i]
               if (s ~ /^Libs:/ && lp != "") s = s " " lp
               if (s ~ /^Requires:/ && rp != "") s = s ((s ~ /^Requires: *$/) ? "" : ", ") rp
               if (s ~ /^Libs:/) { k = index(s, stray " ")
                                   if (k) s = substr(s, 1, k - 1) substr(s, k + length(stray) + 1) }
               print s } }' "$pc" > "$pc.tmp"
  mv "$pc.tmp" "$pc"
done
echo "ffmpeg: configure $((t2 - t1)) s, build $((t3 - t2)) s (-j $jobs, x86 asm: $have_nasm)"
echo "$ff_stamp_text" > "$ff_stamp"
