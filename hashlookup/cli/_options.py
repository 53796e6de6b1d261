"""Option groups several commands share, each a function that adds its
options to a command's parser, and the argument types they use.

The parser of a command is built only when that command runs (or shows its
help), so what an option group needs (e.g. the importers' format names) is
imported here inside the function.
"""

from __future__ import annotations

from collections.abc import Callable

from hashlookup import algorithms
from hashlookup.cli._common import warn

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Final

if TYPE_CHECKING:
    import argparse

#: Output formats of check, match and scan.
FORMATS: Final = ("text", "jsonl", "csv")


def _type_error(message: str) -> Exception:
    """argparse's ArgumentTypeError (imported here: a command line of
    positionals only is read without argparse, hashlookup.cli._fast)."""
    from argparse import ArgumentTypeError

    return ArgumentTypeError(message)


def int_arg(minimum: int) -> Callable[[str], int]:
    """An argparse type: a decimal integer >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise _type_error(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise _type_error(f"must be >= {minimum}, got {value}")
        return value

    parse.__name__ = "integer"
    return parse


def float_arg(minimum: float, maximum: float | None = None) -> Callable[[str], float]:
    """An argparse type: a number in ``minimum..maximum``."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise _type_error(f"expected a number, got {text!r}") from None
        if not value >= minimum or (maximum is not None and not value <= maximum):
            bound = (
                f"in {minimum:g}..{maximum:g}"
                if maximum is not None
                else (f">= {minimum:g}")
            )
            raise _type_error(f"must be {bound}, got {text}")
        return value

    parse.__name__ = "number"
    return parse


def pair_arg(what: str) -> Callable[[str], tuple[str, str]]:
    """An argparse type: ``KEY=VALUE`` (``what`` names it in errors)."""

    def parse(text: str) -> tuple[str, str]:
        key, sep, value = text.partition("=")
        if not sep or not key.strip() or not value:
            raise _type_error(f"expected {what}, got {text!r}")
        return key.strip(), value

    parse.__name__ = what
    return parse


def add_path(p: argparse.ArgumentParser) -> None:
    """The DATASET argument of the commands that open a file."""
    p.add_argument("path", metavar="DATASET", help="dataset or index file")


def add_algorithm(p: argparse.ArgumentParser, help_text: str) -> None:
    """``--algorithm`` (one of the digest algorithms, default None)."""
    p.add_argument(
        "--algorithm", choices=algorithms.NAMES, default=None, help=help_text
    )


def add_format(p: argparse.ArgumentParser, help_text: str) -> None:
    """``--format text|jsonl|csv`` (default text)."""
    p.add_argument("--format", choices=FORMATS, default="text", help=help_text)


def add_verify_key(p: argparse.ArgumentParser) -> None:
    """``--verify-key``, for every command that opens a dataset (docs/SIGNING.md)."""
    p.add_argument(
        "--verify-key",
        metavar="KEY.pub",
        default=None,
        help="refuse the file unless it carries a valid signature (FILE.sig) by "
        "this public key; checks every byte before the first lookup",
    )


def signature_check(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of open_dataset/open_index for ``--verify-key``."""
    key = getattr(args, "verify_key", None)
    return {} if key is None else {"require_signature": key}


def add_filter_options(p: argparse.ArgumentParser, old_exclude: bool = True) -> None:
    """``--only-label`` / ``--exclude-label`` LABEL (check, match, scan).

    ``--only`` stays a plain alias of ``--only-label``.  With
    ``old_exclude``, ``--exclude LABEL`` (the spelling before scan's
    ``--exclude-path``) still works, with a deprecation warning
    (:func:`label_options`).
    """
    p.add_argument(
        "--only-label",
        "--only",
        dest="only",
        action="append",
        metavar="LABEL",
        help="report only hits whose record has this label (repeatable: any of "
        "them), e.g. source:police",
    )
    p.add_argument(
        "--exclude-label",
        dest="exclude_label",
        action="append",
        metavar="LABEL",
        help="do not report hits whose record has this label (repeatable)",
    )
    if old_exclude:
        p.add_argument(
            "--exclude",
            dest="exclude_label_old",
            action="append",
            metavar="LABEL",
            help="deprecated spelling of --exclude-label",
        )


def label_options(
    args: argparse.Namespace,
) -> tuple[list[str] | None, list[str] | None]:
    """``(only, exclude)`` labels of :func:`add_filter_options`; warns once
    when the deprecated ``--exclude LABEL`` was used."""
    exclude = list(args.exclude_label or ())
    old = getattr(args, "exclude_label_old", None)
    if old:
        warn(
            "--exclude LABEL is deprecated: write --exclude-label LABEL "
            "(scan's --exclude-path GLOB skips paths)"
        )
        exclude += old
    return args.only, exclude or None


def add_import_options(p: argparse.ArgumentParser) -> None:
    """Options of the importers (build and update)."""
    from hashlookup.importers import FORMATS as INPUT_FORMATS

    p.add_argument(
        "--input-format",
        choices=INPUT_FORMATS,
        default=None,
        help="read every input as this format (default: detected from each "
        "file's content)",
    )
    p.add_argument(
        "--column",
        type=pair_arg("ALGORITHM=COLUMN"),
        action="append",
        metavar="ALG=COLUMN",
        help="CSV inputs: column of md5, sha1, sha256 or size (repeatable; "
        "default: found by header name)",
    )
    p.add_argument(
        "--label-column",
        type=pair_arg("PREFIX=COLUMN"),
        action="append",
        metavar="PREFIX=COLUMN",
        help="CSV inputs: a cell value V of COLUMN becomes label PREFIX:V "
        "(repeatable), e.g. category=Category",
    )
    p.add_argument(
        "--attribute",
        action="append",
        metavar="NAME",
        help="CSV inputs: keep column NAME as a record attribute (repeatable; "
        "default: none; NSRL sets keep their own: docs/DATASETS.md)",
    )
    p.add_argument(
        "--skip-invalid",
        action="store_true",
        help="skip (and count) invalid lines/records instead of failing",
    )


def add_lookup_threads(p: argparse.ArgumentParser) -> None:
    """``--threads`` of the commands that look up batches (match, demo)."""
    p.add_argument(
        "--threads",
        type=int_arg(0),
        default=1,
        metavar="N",
        help="lookup threads (0: one per core; default: 1)",
    )


def add_prefilter_option(p: argparse.ArgumentParser) -> None:
    """``--prefilter-bits-per-key`` of ``build`` and ``update``."""
    p.add_argument(
        "--prefilter-bits-per-key",
        type=float_arg(0, 64),
        default=None,
        metavar="N",
        help="size of the first-level filter, in bits per key, which lookups probe "
        "only in tables without a Bloom filter; 0 builds none, N > 0 builds it even "
        "beside a Bloom filter (default: 4 in a table without a Bloom filter, none "
        "beside one; none above 4 MiB)",
    )


def add_quiet(p: argparse.ArgumentParser) -> None:
    """``-q``/``--quiet`` of the commands that print a summary line."""
    p.add_argument(
        "-q", "--quiet", action="store_true", help="do not print the summary line"
    )
