# Every target sets up what it needs: a fresh clone runs `make demo` or `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check -q
STAMP  := $(VENV)/.installed

.PHONY: demo test bench install develop clean sanitize

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install "setuptools>=77" "Cython>=3.1" wheel
	@touch $@

$(VENV)/.testdeps: $(VENV)/.created
	$(PIP) install "pytest>=8" "hypothesis>=6.100" "pytest-timeout>=2.3" "pytest-benchmark==5.2.3"
	@touch $@

# Install the package (not an in-place build) so tests run against what users get.
$(STAMP): $(VENV)/.created pyproject.toml setup.py $(wildcard csrc/*.c csrc/*.h csrc/*.pxd hashlookup/*.py hashlookup/*.pyx hashlookup/*.pyi)
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

clean:
	rm -rf $(VENV) build dist *.egg-info hashlookup/_core.c hashlookup/*.so demo
