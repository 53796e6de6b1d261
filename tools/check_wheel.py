"""Check a built wheel as PyPI and users meet it, run by `make wheel-test`.

* its platform tag is a manylinux one (``linux_x86_64`` wheels are refused
  by PyPI), as ``auditwheel repair`` sets it from the glibc symbols used;
* every compiled module is stripped: no symbol table (.symtab) and no
  debugging sections (.debug_*);
* the license is in the wheel's metadata.

Usage: python tools/check_wheel.py WHEEL.  Prints the wheel's size and each
module's size; exits 1 with one line per problem.
"""

from __future__ import annotations

import struct
import sys
import zipfile
from pathlib import Path


def elf_sections(data: bytes) -> list[str]:
    """The section names of a 64-bit little-endian ELF file.

    Parameters
    ----------
    data
        The whole file.

    Returns
    -------
    list of str
        The names, in section-table order.
    """
    if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
        raise ValueError("not a 64-bit little-endian ELF file")
    shoff = struct.unpack_from("<Q", data, 0x28)[0]
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)

    def header(i: int) -> tuple[int, int]:
        base = shoff + i * shentsize
        name = struct.unpack_from("<I", data, base)[0]
        offset = struct.unpack_from("<Q", data, base + 0x18)[0]
        return name, offset

    strtab = header(shstrndx)[1]
    names = []
    for i in range(shnum):
        start = strtab + header(i)[0]
        names.append(data[start : data.index(b"\0", start)].decode("ascii"))
    return names


def problems(wheel: Path) -> list[str]:
    """What is wrong with the wheel at ``wheel`` (empty: nothing).

    Parameters
    ----------
    wheel
        The wheel file.

    Returns
    -------
    list of str
        One message per problem.
    """
    found = []
    platform = wheel.stem.split("-")[-1]
    if not all(tag.startswith("manylinux") for tag in platform.split(".")):
        found.append(f"{wheel.name}: platform tag {platform!r} is not manylinux")
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        modules = [n for n in names if n.endswith(".so")]
        if not modules:
            found.append(f"{wheel.name}: no compiled module")
        for name in modules:
            sections = elf_sections(z.read(name))
            debug = [s for s in sections if s == ".symtab" or s.startswith(".debug")]
            if debug:
                found.append(f"{name}: not stripped ({', '.join(debug)})")
            print(f"  {name}: {z.getinfo(name).file_size / 1024:.0f} KiB")
        if not any(n.endswith(".dist-info/licenses/LICENSE") for n in names):
            found.append(f"{wheel.name}: no LICENSE in its .dist-info")
    print(f"{wheel.name}: {wheel.stat().st_size / 1024:.0f} KiB")
    return found


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: check_wheel.py WHEEL", file=sys.stderr)
        return 2
    found = problems(Path(argv[0]))
    for line in found:
        print(f"check_wheel: {line}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
