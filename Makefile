# Every target sets up what it needs: a fresh clone runs `make demo` or `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
STAMP  := $(VENV)/.installed

.PHONY: demo test bench install clean sanitize

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install "setuptools>=77" "Cython>=3.1" wheel
	@touch $@

$(VENV)/.testdeps: $(VENV)/.created Makefile
	$(PIP) install "pytest>=8" "hypothesis>=6.100" "pytest-timeout>=2.3" "pytest-benchmark==5.2.3" "flor==1.1.3" \
	    "atheris==3.0.0"
	@touch $@

# Install the package (not an in-place build) so tests run against what users get.
$(STAMP): $(VENV)/.created pyproject.toml setup.py $(wildcard csrc/*.c csrc/*.h csrc/*.inc csrc/*.pxd hashlookup/*.py hashlookup/*/*.py hashlookup/*.pyx hashlookup/*.pyi)
	flock $(VENV)/.lock $(PIP) install --no-build-isolation .
	@touch $@

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/hashlookup demo --dir demo

test: $(STAMP) $(VENV)/.testdeps
	cd tests && ../$(VENV)/bin/pytest -q -p no:cacheprovider

bench: $(STAMP) $(VENV)/.testdeps
	$(PY) benchmarks/compare.py
	cd benchmarks && ../$(VENV)/bin/pytest -q -p no:cacheprovider --benchmark-disable-gc .

# Whole test suite against an ASan/UBSan build of the extension, built from a
# copy of the tree in its own venv so that no object file is shared with the
# normal build.
ASAN_VENV := .venv-asan
sanitize:
	test -d $(ASAN_VENV) || $(PYTHON) -m venv $(ASAN_VENV)
	$(ASAN_VENV)/bin/python -m pip -q install "setuptools>=77" "Cython>=3.1" wheel \
	    numpy xxhash pyroaring "pytest>=8" "hypothesis>=6.100" "pytest-timeout>=2.3" \
	    "flor==1.1.3"
	rm -rf $(ASAN_VENV)/src && mkdir -p $(ASAN_VENV)/src
	git ls-files -co --exclude-standard | tar -cf - -T - | tar -xf - -C $(ASAN_VENV)/src
	cd $(ASAN_VENV)/src && HASHLOOKUP_SANITIZE=1 HASHLOOKUP_DEBUG=1 \
	    ../bin/python -m pip -q install --no-build-isolation --force-reinstall --no-deps .
	cd tests && LD_PRELOAD="$$(gcc -print-file-name=libasan.so)" \
	    ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
	    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 PYTHONMALLOC=malloc \
	    ../$(ASAN_VENV)/bin/pytest -q -p no:cacheprovider -x

clean:
	rm -rf $(VENV) $(ASAN_VENV) build dist *.egg-info hashlookup/_core.c hashlookup/*.so demo
