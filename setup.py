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
# The near search (csrc/near/: PDQ multi-index hashing) is a third, linked
# only into hashlookup.near._near (with hlcore for the CPU probe).
CORE, SERVER = ["csrc"], ["csrc/server", "csrc"]
NEAR = ["csrc/near", "csrc"]
CORE_C = sorted(glob.glob("csrc/hl_*.[ch]") + glob.glob("csrc/*.inc"))
SERVER_C = sorted(glob.glob("csrc/server/hl_*.[ch]"))
NEAR_C = sorted(glob.glob("csrc/near/hl_*.[ch]") + glob.glob("csrc/near/*.inc"))


def _lib(sources: str, include: list[str]) -> dict:
    # obj_deps[""]: every header and kernel include (.inc) of the include
    # path is an input of every object (setuptools' build_clib recompiles
    # the library when one is newer than its objects).  Without it an edit
    # of hl_search_kernels.inc or a header kept the stale objects of an
    # in-tree build (pip builds in build/ of the checkout).
    deps = sorted(f for d in include for pat in ("*.h", "*.inc")
                  for f in glob.glob(os.path.join(d, pat)))
    return {"sources": sorted(glob.glob(sources)), "include_dirs": include,
            "cflags": core_cflags + common, "obj_deps": {"": deps}}


def _ext(name: str, libraries: list[str], include: list[str],
         depends: list[str]) -> Extension:
    # depends: relink when the C code changes; build_ext does not know that
    # the static libraries are inputs, and would keep a stale extension.
    return Extension(name, sources=[name.replace(".", "/") + ".pyx"],
                     include_dirs=include, libraries=libraries, depends=depends,
                     extra_compile_args=common, extra_link_args=link)


# (module, static libraries, include path, C inputs): the generic core;
# the dataset lookups, which cimport the core's tables (_core.pxd) and call
# the table search directly; the lookup service's rendering.  hlserver
# before hlcore: the linker takes from an archive only what the objects
# before it need, and hl_render uses hlcore's hex encoder.
EXTENSIONS = [
    ("hashlookup._core", ["hlcore"], CORE, CORE_C),
    ("hashlookup._lookup", ["hlcore"], CORE, CORE_C),
    ("hashlookup.server._render", ["hlserver", "hlcore"], SERVER, CORE_C + SERVER_C),
    ("hashlookup.near._near", ["hlnear", "hlcore"], NEAR, CORE_C + NEAR_C),
]

setup(
    libraries=[("hlcore", _lib("csrc/hl_*.c", CORE)),
               ("hlserver", _lib("csrc/server/hl_*.c", SERVER)),
               ("hlnear", _lib("csrc/near/hl_*.c", NEAR))],
    ext_modules=cythonize(
        [_ext(*spec) for spec in EXTENSIONS],
        compiler_directives=directives,
        include_path=SERVER + ["csrc/near"],
    ),
)
