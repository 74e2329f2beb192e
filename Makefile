# re2tal: thin wrapper over CMake. `make test` and `make demo` do all the set-up themselves.
BUILD      ?= build
BUILD_SAN  ?= build-sanitize
BUILD_PKG  ?= build-package
BUILD_FUZZ ?= build-fuzz
FUZZ_SECONDS ?= 600
PREFIX     ?= /usr/local
CUDA       ?= AUTO
JOBS       ?= $(shell nproc)
CMAKE_ARGS ?=

.PHONY: all deps configure build test demo demo-features bench sanitize fuzz fixtures install \
        package interop clean

all: build

deps:
	@scripts/install-deps.sh

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DRE2TAL_CUDA=$(CUDA) $(CMAKE_ARGS)

configure: deps $(BUILD)/CMakeCache.txt

build: configure
	cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

demo: build
	$(BUILD)/app/re2tal demo --config configs/demo.json

# the feature workflow on the demo's videos: extract once, then train the head alone
demo-features: build
	$(BUILD)/app/re2tal demo --features --config configs/demo_features.json

bench: build
	bench/run.sh $(BUILD)

sanitize: deps
	cmake -S . -B $(BUILD_SAN) -DCMAKE_BUILD_TYPE=Debug -DRE2TAL_SANITIZE=ON -DRE2TAL_CUDA=OFF $(CMAKE_ARGS)
	cmake --build $(BUILD_SAN) -j $(JOBS)
	cd $(BUILD_SAN) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
		ctest --output-on-failure -j $(JOBS)

# every libFuzzer target (tests/fuzz_*.c) for FUZZ_SECONDS each, one after another, under ASan +
# UBSan from its committed seeds (tests/fuzz/); findings are kept in $(BUILD_FUZZ)/fuzz/
fuzz:
	@scripts/install-deps.sh --fuzz
	cmake -S . -B $(BUILD_FUZZ) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRE2TAL_FUZZ=ON -DRE2TAL_CUDA=OFF \
		-DCMAKE_C_COMPILER=clang $(CMAKE_ARGS)
	cmake --build $(BUILD_FUZZ) -j $(JOBS) --target $(notdir $(basename $(wildcard tests/fuzz_*.c)))
	tests/fuzz/run.sh $(BUILD_FUZZ) $(FUZZ_SECONDS)

fixtures:
	/usr/bin/python3 tests/make_fixtures.py

# the binary, its man page and the configs under PREFIX (bin/, share/man/man1/, share/re2tal/)
install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

# a .deb (CUDA and MPI off: the CUDA runtime is no Debian package, ranks are optional) in
# $(BUILD_PKG)/
package: deps
	cmake -S . -B $(BUILD_PKG) -DCMAKE_BUILD_TYPE=Release -DRE2TAL_CUDA=OFF -DRE2TAL_MPI=OFF \
		$(CMAKE_ARGS)
	cmake --build $(BUILD_PKG) -j $(JOBS) --target re2tal re2tal_man
	cd $(BUILD_PKG) && cpack -G DEB
	@ls $(BUILD_PKG)/*.deb

# Dev check, not a test: mmaction2's SlowFast-101 (its module files from PyPI's wheel) and, with
# OPENTAD=<checkout>, OpenTAD's rewired one, converted and compared with our features; then the
# ActionFormer package's THUMOS-14 I3D model, converted and compared with our head, run by
# ACTIONFORMER_PY (a Python with torch and the `actionformer` package: the dev venv).
MMACTION_WHL = $(BUILD)/interop/mmaction2-1.2.0-py2.py3-none-any.whl
ACTIONFORMER_PY ?= $(BUILD)/venv/bin/python
interop: build
	cmake --build $(BUILD) --target interop_extract interop_af_head -j $(JOBS)
	@test -f $(MMACTION_WHL) || python3 -m pip download mmaction2==1.2.0 --no-deps -d $(BUILD)/interop
	/usr/bin/python3 tests/interop/check_slowfast.py --build $(BUILD) --mmaction-whl $(MMACTION_WHL) \
		$(if $(OPENTAD),--opentad $(OPENTAD))
	@$(ACTIONFORMER_PY) -c "import actionformer" 2>/dev/null || { echo "make interop: \
	$(ACTIONFORMER_PY) lacks the actionformer package: run scripts/install-deps.sh --dev \
	or set ACTIONFORMER_PY=<python with it>"; exit 1; }
	$(ACTIONFORMER_PY) tests/interop/check_actionformer.py --build $(BUILD)

clean:
	rm -rf $(BUILD) $(BUILD_SAN) $(BUILD_FUZZ) $(BUILD_PKG)
