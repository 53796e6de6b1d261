"""``--memory`` and ``--tmp-dir``: the memory budget of ``build`` and
``update`` (builds larger than memory, docs/API.md)."""

from __future__ import annotations

import argparse
from typing import Any

# The library's default (builders/runs.py DEFAULT_MEMORY), repeated here so
# that parsing the options imports no numpy.
DEFAULT_MEMORY = 2_000_000_000


def parse_size(text: str) -> int:
    """An argparse type: bytes from ``2G``, ``1.5GiB``, ``512M``, ``64K`` or
    a bare number of bytes (K/M/G/T are powers of 1024), at least 1 MiB."""
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    scale = 1
    if t and t[-1] in "KMGT":
        scale = 1024 ** ("KMGT".index(t[-1]) + 1)
        t = t[:-1]
    try:
        value = float(t) * scale
    except ValueError:
        value = -1.0
    if not 1 << 20 <= value <= 1 << 50:
        raise argparse.ArgumentTypeError(
            f"expected a size of at least 1M such as 2G or 512M, got {text!r}"
        )
    return int(value)


def add_memory_options(p: argparse.ArgumentParser) -> None:
    """``--memory`` and ``--tmp-dir`` (build and update)."""
    p.add_argument(
        "--memory",
        type=parse_size,
        default=DEFAULT_MEMORY,
        metavar="SIZE",
        help="memory budget (peak RSS aimed at), e.g. 2G or 512M; larger inputs "
        "are sorted in runs on disk and merged (default: 2G = 2,000,000,000 bytes)",
    )
    p.add_argument(
        "--tmp-dir",
        default=None,
        metavar="DIR",
        help="directory for the sorted runs of a build past --memory (default: "
        "the output's directory); removed when the build ends",
    )


def memory_options(args: argparse.Namespace) -> dict[str, Any]:
    """The library keywords of --memory and --tmp-dir; progress on stderr
    when it is a terminal (and not --quiet)."""
    return {
        "memory": args.memory,
        "tmp_dir": args.tmp_dir,
        "progress": not getattr(args, "quiet", False),
    }
