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

# The generic core (csrc/) and the lookup service's wire format
# (csrc/server/: record JSON) are separate static libraries, so that
# hashlookup._core links no service code; the server's extension links both.
CORE_C = sorted(glob.glob("csrc/hl_*.[ch]") + glob.glob("csrc/*.inc"))
SERVER_C = sorted(glob.glob("csrc/server/hl_*.[ch]"))
INCLUDE = ["csrc", "csrc/server"]


def _lib(sources: str) -> dict:
    return {"sources": sorted(glob.glob(sources)), "include_dirs": INCLUDE,
            "cflags": core_cflags + common}


def _ext(name: str, pyx: str, libraries: list[str], depends: list[str]) -> Extension:
    # depends: relink when the C code changes; build_ext does not know that
    # the static libraries are inputs, and would keep a stale extension.
    return Extension(name, sources=[pyx], include_dirs=INCLUDE, libraries=libraries,
                     depends=depends, extra_compile_args=common, extra_link_args=link)


setup(
    libraries=[("hlcore", _lib("csrc/hl_*.c")), ("hlserver", _lib("csrc/server/hl_*.c"))],
    ext_modules=cythonize(
        [_ext("hashlookup._core", "hashlookup/_core.pyx", ["hlcore"], CORE_C),
         # hlserver first: a static library resolves only what precedes it
         _ext("hashlookup.server._render", "hashlookup/server/_render.pyx",
              ["hlserver", "hlcore"], CORE_C + SERVER_C)],
        compiler_directives=directives,
        include_path=INCLUDE,
    ),
)
