"""Style check of the C core (csrc/), run by `make lint`.

The C sources are formatted by hand; rather than a formatter's full layout
(clang-format would rewrite several hundred lines of aligned tables and
one-line ifs), this checks what the code relies on or a reviewer would ask
for:

* csrc/ is pure C: no Python.h or numpy header is included;
* lines of at most MAX_LINE characters, no tab, no trailing blank, no CR,
  a final newline;
* C comments only (``/* */``, the code is C11 but keeps one comment style);
* every header has an include guard named after the file
  (hl_search.h: ``#ifndef HL_SEARCH_H`` / ``#define HL_SEARCH_H``) that its
  last directive closes.

Usage: python tools/check_c_style.py [DIR ...]  (default: csrc).  Prints one
line per problem (path:line: message) and exits 1 if there is any.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

MAX_LINE = 100
SUFFIXES = (".c", ".h", ".inc")

# --- TEMPORARY: lines over MAX_LINE in files being edited by other engineers
# (path -> line numbers); removed after the merge, when they are wrapped.
LONG_LINES_ALLOWED = {"csrc/tests/test_core.c": {477}}
# --- end TEMPORARY

_FORBIDDEN_INCLUDE = re.compile(r'^\s*#\s*include\s*[<"](Python\.h|numpy/)')
_LINE_COMMENT = re.compile(r'^(?:[^"/]|"(?:\\.|[^"\\])*"|/(?![/*]))*//')
_DIRECTIVE = re.compile(r"^\s*#\s*(\w+)\s*(\w*)")


def check_file(path: Path, shown: str) -> list[str]:
    """Problems of one C file, as "path:line: message" strings."""
    raw = path.read_bytes()
    problems: list[str] = []
    if raw and not raw.endswith(b"\n"):
        problems.append(f"{shown}: no newline at the end of the file")
    text = raw.decode("utf-8")
    lines = text.split("\n")
    allowed = LONG_LINES_ALLOWED.get(shown, set())
    in_comment = False
    for number, line in enumerate(lines, 1):
        where = f"{shown}:{number}"
        if "\r" in line:
            problems.append(f"{where}: carriage return")
        if "\t" in line:
            problems.append(f"{where}: tab")
        if line != line.rstrip():
            problems.append(f"{where}: trailing whitespace")
        if len(line) > MAX_LINE and number not in allowed:
            problems.append(f"{where}: line of {len(line)} > {MAX_LINE} characters")
        if _FORBIDDEN_INCLUDE.match(line):
            problems.append(f"{where}: csrc/ is pure C (no Python or numpy headers)")
        code = line
        if in_comment:  # inside a /* */ comment that began on an earlier line
            end = code.find("*/")
            if end < 0:
                continue
            code, in_comment = code[end + 2 :], False
        code = re.sub(r"/\*.*?\*/", "", code)
        if "/*" in code:
            code, in_comment = code[: code.index("/*")], True
        if _LINE_COMMENT.match(code):
            problems.append(f"{where}: // comment (use /* */)")
    if path.suffix == ".h":
        problems += _check_guard(lines, shown)
    return problems


def _check_guard(lines: list[str], shown: str) -> list[str]:
    guard = Path(shown).stem.upper() + "_H"
    directives = [
        (n, m.group(1), m.group(2))
        for n, line in enumerate(lines, 1)
        if (m := _DIRECTIVE.match(line))
    ]
    if (
        len(directives) < 2
        or directives[0][1:] != ("ifndef", guard)
        or directives[1][1:] != ("define", guard)
    ):
        return [
            f"{shown}: no include guard #ifndef {guard} / #define {guard} "
            f"before any other directive"
        ]
    if directives[-1][1] != "endif":
        return [
            f"{shown}:{directives[-1][0]}: the include guard is not closed by "
            f"the last directive"
        ]
    return []


def main(argv: list[str]) -> int:
    root = Path.cwd()
    problems: list[str] = []
    for top in argv or ["csrc"]:
        for path in sorted(Path(top).rglob("*")):
            if path.suffix in SUFFIXES and path.is_file():
                shown = path.resolve().relative_to(root).as_posix()
                problems += check_file(path, shown)
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
