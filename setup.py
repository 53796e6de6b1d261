"""Extension declaration only; metadata lives in pyproject.toml.

Build switches (environment variables, see README "Building"):
  HASHLOOKUP_DEBUG=1     -O0 -g, asserts on (-UNDEBUG), Cython bounds checks
  HASHLOOKUP_SANITIZE=1  -fsanitize=address,undefined (run with libasan preloaded)
  HASHLOOKUP_COVERAGE=1  --coverage
  HASHLOOKUP_ARCH=cpu    -march=cpu (local builds only; never in wheels)
"""

import glob
import os

from Cython.Build import cythonize
from setuptools import Extension, setup


def _flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


DEBUG = _flag("HASHLOOKUP_DEBUG")
SANITIZE = _flag("HASHLOOKUP_SANITIZE")
COVERAGE = _flag("HASHLOOKUP_COVERAGE")
ARCH = os.environ.get("HASHLOOKUP_ARCH", "")

# The C core gets stricter warnings than the Cython-generated module.
core_cflags = ["-std=c11", "-Wall", "-Wextra", "-Wshadow", "-Wconversion",
               "-Wno-sign-conversion", "-Werror=implicit-function-declaration"]
common = []
link = []
if DEBUG:
    common += ["-O0", "-g", "-UNDEBUG"]
else:
    # CPython's sysconfig already passes -O3 -DNDEBUG; state -O3 for the core
    # in case an embedder's flags differ.
    common += ["-O3"]
if SANITIZE:
    common += ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-g"]
    link += ["-fsanitize=address,undefined"]
if COVERAGE:
    common += ["--coverage"]
    link += ["--coverage"]
if ARCH:
    # Local tuning only: a wheel built with this will not run on older CPUs.
    common += [f"-march={ARCH}"]

directives = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": False,
    "initializedcheck": DEBUG,
    "cdivision": True,
    "embedsignature": True,
    "binding": False,
}

setup(
    libraries=[("hlcore", {
        "sources": sorted(glob.glob("csrc/hl_*.c")),
        "include_dirs": ["csrc"],
        "cflags": core_cflags + common,
    })],
    ext_modules=cythonize(
        [Extension(
            "hashlookup._core",
            sources=["hashlookup/_core.pyx"],
            include_dirs=["csrc"],
            libraries=["hlcore"],
            # Relink when the C core changes: build_ext does not know that the
            # static library is an input, and would keep a stale extension.
            depends=sorted(glob.glob("csrc/hl_*.[ch]") + glob.glob("csrc/*.inc")),
            extra_compile_args=common,
            extra_link_args=link,
        )],
        compiler_directives=directives,
        include_path=["csrc"],
    ),
)
