"""Command-line interface: ``hashlookup`` / ``python -m hashlookup``.

Exit status (as clamscan): 0 nothing found, 1 at least one digest found, 2 error.
Every expected error is reported as one line ``hashlookup: error: <message>`` on
stderr.  See docs/CLI.md.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from json.encoder import encode_basestring as _encode_basestring
from json.encoder import encode_basestring_ascii as _encode_basestring_ascii
from typing import Any, BinaryIO, TextIO

import numpy as np

from ._version import __version__

PROG = "hashlookup"
EXIT_CLEAN = 0
EXIT_FOUND = 1
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130

_HEX_RE = re.compile(r"[0-9A-Fa-f]*")
_FORMATS = ("text", "jsonl", "csv")
_CSV_SPECIAL = re.compile(r'[",\r\n]')


class _Output:
    """Byte-oriented writer over a text stream (``sys.stdout``).

    Match output must reproduce input lines byte for byte, so everything is
    written as bytes to the stream's binary buffer when it has one.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._buffer: BinaryIO | None = getattr(stream, "buffer", None)
        stream.flush()

    def write(self, data: bytes) -> None:
        if self._buffer is not None:
            self._buffer.write(data)
        else:
            self._stream.write(data.decode("utf-8", "surrogateescape"))

    def line(self, text: str) -> None:
        self.write(text.encode("utf-8", "surrogateescape") + b"\n")

    def flush(self) -> None:
        if self._buffer is not None:
            self._buffer.flush()
        self._stream.flush()


class _Context:
    """Per-invocation state shared by the command functions."""

    def __init__(self) -> None:
        self.out = _Output(sys.stdout)
        # Set once a queried digest is known to be in the index: lets an
        # interrupted output (broken pipe) still report "found" correctly.
        self.found = False


class CLIError(Exception):
    """An expected error detected by the CLI itself (reported, exit 2)."""


# ---------------------------------------------------------------- helpers


def _one_line(message: str) -> str:
    return " ".join(message.split("\n")).replace("\r", " ").strip()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        msg = exc.strerror
        if exc.filename is not None:
            msg = f"{msg}: {os.fsdecode(exc.filename)}"
            if exc.filename2 is not None:
                msg = f"{msg} -> {os.fsdecode(exc.filename2)}"
        return msg
    return str(exc) or type(exc).__name__


def _print_error(message: str) -> None:
    sys.stderr.write(f"{PROG}: error: {_one_line(message)}\n")
    sys.stderr.flush()


def _int_arg(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected an integer, got {text!r}"
            ) from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be >= {minimum}, got {value}")
        return value

    parse.__name__ = "integer"
    return parse


def _human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return bytes(obj).hex()
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    return str(obj)


def _json_line(record: dict[str, Any]) -> bytes:
    text = json.dumps(record, ensure_ascii=False, default=_json_default)
    try:
        return text.encode("utf-8") + b"\n"
    except UnicodeEncodeError:  # undecodable input bytes (surrogates): escape them
        return json.dumps(record, default=_json_default).encode("ascii") + b"\n"


def _json_str(text: str) -> str:
    """JSON string literal of ``text``; undecodable input bytes (lone surrogates
    from ``surrogateescape``) are written as ``\\udcXX`` escapes."""
    quoted: str = _encode_basestring(text)
    try:
        quoted.encode("utf-8")
    except UnicodeEncodeError:
        quoted = _encode_basestring_ascii(text)
    return quoted


def _jsonl_matches(numbers: list[int], digests: list[str], texts: list[str]) -> bytes:
    """``{"line": N, "digest": "...", "text": "..."}`` lines (as json.dumps)."""
    records = [
        f'{{"line": {n}, "digest": "{d}", "text": {_encode_basestring(t)}}}\n'
        for n, d, t in zip(numbers, digests, texts, strict=True)
    ]
    try:
        return "".join(records).encode("utf-8")
    except UnicodeEncodeError:  # rare: some line is not valid UTF-8
        return "".join(
            f'{{"line": {n}, "digest": "{d}", "text": {_json_str(t)}}}\n'
            for n, d, t in zip(numbers, digests, texts, strict=True)
        ).encode("utf-8")


def _csv_matches(numbers: list[int], digests: list[str], texts: list[str]) -> bytes:
    """``N,digest,text`` rows, quoted as csv.writer (QUOTE_MINIMAL) quotes them."""
    if _CSV_SPECIAL.search("".join(texts)) is not None:
        texts = [
            f'"{t.replace(chr(34), chr(34) * 2)}"' if _CSV_SPECIAL.search(t) else t
            for t in texts
        ]
    rows = [f"{n},{d},{t}\n" for n, d, t in zip(numbers, digests, texts, strict=True)]
    return "".join(rows).encode("utf-8", "surrogateescape")


def _csv_rows(rows: Sequence[Sequence[object]]) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue().encode("utf-8", "surrogateescape")


def _open_index(path: str) -> Any:
    from . import open_index

    try:
        return open_index(path)
    except OSError as exc:
        if exc.filename is None and exc.errno is not None:  # e.g. mmap of a directory
            raise OSError(exc.errno, exc.strerror, path) from exc
        raise


# ---------------------------------------------------------------- commands


def _cmd_build(args: argparse.Namespace, ctx: _Context) -> int:
    from . import build_index

    inputs: list[str] = args.inputs
    source: Any
    if "-" in inputs:
        if len(inputs) > 1:
            raise CLIError("'-' (standard input) cannot be combined with other inputs")
        source = sys.stdin.buffer
    elif len(inputs) == 1:
        source = inputs[0]
    else:
        source = list(inputs)
    kwargs: dict[str, Any] = {
        "algorithm": args.algorithm,
        "skip_invalid": args.skip_invalid,
    }
    if args.bloom_bits_per_key is not None:
        kwargs["bloom_bits_per_key"] = args.bloom_bits_per_key
    started = time.perf_counter()
    report = build_index(source, args.output, **kwargs)
    elapsed = float(getattr(report, "seconds", 0.0) or (time.perf_counter() - started))
    if not args.quiet:
        sys.stderr.write(
            f"{PROG}: wrote {report.path} ({report.algorithm}): "
            f"{report.input_keys} keys read, {report.unique_keys} unique, "
            f"{report.duplicates} duplicates, {report.invalid} invalid skipped, "
            f"{report.file_size} bytes ({_human_size(int(report.file_size))}), "
            f"{elapsed:.2f} s\n"
        )
    return EXIT_CLEAN


def _render_info(value: Any, key: str = "", indent: int = 0) -> list[str]:
    pad = "  " * indent
    label = f"{key}:" if key else ""
    if isinstance(value, dict):
        lines = [f"{pad}{label}"] if key else []
        sub = indent + 1 if key else indent
        for k, v in value.items():
            lines += _render_info(v, str(k), sub)
        if key and len(lines) == 1:
            lines[0] += " {}"
        return lines
    if isinstance(value, (list, tuple)) and any(
        isinstance(v, (dict, list, tuple)) for v in value
    ):
        lines = [f"{pad}{label}"]
        for i, v in enumerate(value):
            lines += _render_info(v, f"[{i}]", indent + 1)
        return lines
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (list, tuple)):
        text = ", ".join(
            str(_json_default(v) if not isinstance(v, (str, int, float)) else v)
            for v in value
        )
    elif isinstance(value, (bytes, bytearray, memoryview)):
        text = bytes(value).hex()
    elif isinstance(value, bool) or value is None:
        text = str(value).lower() if isinstance(value, bool) else "-"
    elif isinstance(value, int):
        text = str(value)
        lk = key.lower()
        if value >= 1024 and ("size" in lk or "bytes" in lk):
            text += f" ({_human_size(value)})"
    elif isinstance(value, float):
        text = f"{value:g}"
    else:
        text = str(value)
    return [f"{pad}{label} {text}" if key else f"{pad}{text}"]


def _cmd_info(args: argparse.Namespace, ctx: _Context) -> int:
    with _open_index(args.index) as index:
        info = index.info()
    if args.json:
        ctx.out.line(json.dumps(info, indent=2, default=_json_default))
    else:
        for line in _render_info(info):
            ctx.out.line(line)
    return EXIT_CLEAN


def _cmd_verify(args: argparse.Namespace, ctx: _Context) -> int:
    with _open_index(args.index) as index:
        index.verify()
        ctx.out.line(
            f"OK: {args.index}: {len(index)} {index.algorithm} keys, all checks passed"
        )
    return EXIT_CLEAN


def _parse_digest_args(
    digests: Sequence[str], width: int, algorithm: str
) -> np.ndarray:
    """Validate hex digest arguments; the message names the argument's position,
    never its text (queried digests are only ever printed as results)."""
    want = 2 * width
    hexes: list[str] = []
    for pos, raw in enumerate(digests, 1):
        text = raw.strip()
        if len(text) != want:
            raise CLIError(
                f"digest argument {pos}: expected {want} hex characters ({algorithm}), "
                f"got {len(text)} characters"
            )
        if not _HEX_RE.fullmatch(text):
            raise CLIError(f"digest argument {pos}: not a hexadecimal string")
        hexes.append(text)
    data = bytes.fromhex("".join(hexes))
    return np.frombuffer(data, dtype=np.uint8).reshape(len(hexes), width)


def _cmd_check(args: argparse.Namespace, ctx: _Context) -> int:
    with _open_index(args.index) as index:
        keys = _parse_digest_args(args.digests, int(index.width), str(index.algorithm))
        found = np.asarray(index.contains_many(keys), dtype=bool)
    hexes = [bytes(k).hex() for k in keys]
    ctx.found = bool(found.any())
    out = ctx.out
    if args.format == "text":
        out.write(
            b"".join(
                f"{h}\t{'FOUND' if f else 'not found'}\n".encode("ascii")
                for h, f in zip(hexes, found.tolist(), strict=True)
            )
        )
    elif args.format == "jsonl":
        out.write(
            b"".join(
                _json_line({"digest": h, "found": bool(f)})
                for h, f in zip(hexes, found.tolist(), strict=True)
            )
        )
    else:
        rows: list[Sequence[object]] = [("digest", "found")]
        rows += [
            (h, "true" if f else "false")
            for h, f in zip(hexes, found.tolist(), strict=True)
        ]
        out.write(_csv_rows(rows))
    return EXIT_FOUND if ctx.found else EXIT_CLEAN


def _cmd_match(args: argparse.Namespace, ctx: _Context) -> int:
    from ._match import MatchStats, match_chunks

    stats = MatchStats()
    out = ctx.out
    fmt: str = args.format
    invert: bool = args.invert

    def run(index: Any, stream: BinaryIO, name: str) -> None:
        chunks = match_chunks(
            index,
            stream,
            skip_invalid=args.skip_invalid,
            name=name,
            chunk_size=args.chunk_size,
            threads=args.threads,
            want_lines=not args.count,
            stats=stats,
        )
        if fmt == "csv" and not args.count:
            out.write(b"line,digest,text\n")
        for chunk in chunks:
            if stats.hits:
                ctx.found = True
            if args.count:
                continue
            sel = chunk.select(invert)
            if sel.size == 0:
                continue
            lines = chunk.lines(sel)
            if fmt == "text":
                lines.append(b"")
                out.write(b"\n".join(lines))
                continue
            assert chunk.line_numbers is not None
            digests = chunk.hex_digests(sel)
            numbers = chunk.line_numbers[sel].tolist()
            texts = [line.decode("utf-8", "surrogateescape") for line in lines]
            if fmt == "jsonl":
                out.write(_jsonl_matches(numbers, digests, texts))
            else:
                out.write(_csv_matches(numbers, digests, texts))

    with _open_index(args.index) as index:
        if args.file == "-":
            run(index, sys.stdin.buffer, "<stdin>")
        else:
            with open(args.file, "rb") as stream:
                run(index, stream, args.file)
    if args.count:
        out.line(str(stats.misses if invert else stats.hits))
    ctx.found = stats.hits > 0
    return EXIT_FOUND if ctx.found else EXIT_CLEAN


def _cmd_demo(args: argparse.Namespace, ctx: _Context) -> int:
    from ._demo import run_demo

    ctx.out.flush()
    return run_demo(
        args.dir,
        keys=args.keys,
        inventory=args.inventory,
        threads=args.threads,
        out=sys.stdout,
    )


# ---------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the ``hashlookup`` command."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Check file digests (md5/sha1/sha256) against a memory-mapped "
        "sorted index of known digests.",
        epilog="Exit status: 0 nothing found, 1 at least one digest found, 2 error.",
        allow_abbrev=False,
    )
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {__version__}"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def add(name: str, help_text: str, description: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name, help=help_text, description=description, allow_abbrev=False
        )

    p = add(
        "build",
        "build an index from digest lists",
        "Build an index file from text lists of hex digests (one per line, or "
        "md5sum/sha1sum/sha256sum output). Blank lines and lines starting with "
        "'#' are ignored; duplicates are removed. The index is written atomically.",
    )
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="digest list file, or '-' for standard input",
    )
    p.add_argument(
        "-o", "--output", required=True, metavar="INDEX", help="index file to write"
    )
    p.add_argument(
        "--algorithm",
        choices=("md5", "sha1", "sha256"),
        default=None,
        help="digest algorithm (default: detected from the first digest)",
    )
    p.add_argument(
        "--skip-invalid",
        action="store_true",
        help="skip (and count) invalid lines instead of failing",
    )
    p.add_argument(
        "--bloom-bits-per-key",
        type=_int_arg(0),
        default=None,
        metavar="N",
        help="Bloom filter size in bits per key (default: library default)",
    )
    p.add_argument(
        "-q", "--quiet", action="store_true", help="do not print the summary line"
    )
    p.set_defaults(func=_cmd_build)

    p = add(
        "info",
        "describe an index",
        "Print the header, sizes and build parameters of an index.",
    )
    p.add_argument("index", metavar="INDEX", help="index file")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=_cmd_info)

    p = add(
        "verify",
        "check an index's integrity",
        "Recompute every checksum and run the structural checks of an index. "
        "Exit 0 and print OK when it is intact, exit 2 otherwise.",
    )
    p.add_argument("index", metavar="INDEX", help="index file")
    p.set_defaults(func=_cmd_verify)

    p = add(
        "check",
        "look up digests given as arguments",
        "Look up hex digests given on the command line. Prints one result per "
        "digest; exit 1 if any was found, 0 if none, 2 on error.",
    )
    p.add_argument("index", metavar="INDEX", help="index file")
    p.add_argument("digests", nargs="+", metavar="DIGEST", help="hex digest (any case)")
    p.add_argument(
        "--format",
        choices=_FORMATS,
        default="text",
        help="output format (default: text)",
    )
    p.set_defaults(func=_cmd_check)

    p = add(
        "match",
        "report the lines of a digest list found in an index",
        "Stream a digest list (hex digests one per line, or md5sum/sha1sum/"
        "sha256sum output) and print the lines whose digest is in the index. "
        "Exit 1 if any digest was found (also with --invert/--count), 0 if "
        "none, 2 on error.",
    )
    p.add_argument("index", metavar="INDEX", help="index file")
    p.add_argument(
        "file",
        nargs="?",
        default="-",
        metavar="FILE",
        help="digest list to read (default or '-': standard input)",
    )
    p.add_argument(
        "--format",
        choices=_FORMATS,
        default="text",
        help="text: the input lines; jsonl: {line, digest, text} objects; "
        "csv: line,digest,text (default: text)",
    )
    p.add_argument(
        "-c",
        "--count",
        action="store_true",
        help="print only the number of matching (or with --invert, non-matching) lines",
    )
    p.add_argument(
        "-v",
        "--invert",
        action="store_true",
        help="print the lines whose digest is NOT in the index",
    )
    p.add_argument(
        "--skip-invalid",
        action="store_true",
        help="skip invalid lines instead of failing",
    )
    p.add_argument(
        "--threads",
        type=_int_arg(0),
        default=1,
        metavar="N",
        help="lookup threads (0: one per core; default: 1)",
    )
    p.add_argument(
        "--chunk-size",
        type=_int_arg(1),
        default=None,
        metavar="BYTES",
        help="input read size (default: 16 MiB)",
    )
    p.set_defaults(func=_cmd_match)

    p = add(
        "demo",
        "run an end-to-end demo on synthetic data",
        "Build an index of synthetic md5 digests plus those of ~300 Python "
        "standard library files, then match an inventory of all the standard "
        "library's .py files and random digests against it, printing timings.",
    )
    p.add_argument("--dir", default="demo", help="working directory (default: ./demo)")
    p.add_argument(
        "--keys",
        type=_int_arg(0),
        default=1_400_000,
        metavar="N",
        help="synthetic digests in the index (default: 1400000)",
    )
    p.add_argument(
        "--inventory",
        type=_int_arg(0),
        default=1_000_000,
        metavar="N",
        help="random non-member digests in the inventory (default: 1000000)",
    )
    p.add_argument(
        "--threads",
        type=_int_arg(0),
        default=1,
        metavar="N",
        help="lookup threads (0: one per core; default: 1)",
    )
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); return the status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, usage errors
        code = exc.code
        return code if isinstance(code, int) else (0 if code is None else EXIT_ERROR)
    if getattr(args, "chunk_size", 0) is None:
        from ._match import DEFAULT_CHUNK_SIZE

        args.chunk_size = DEFAULT_CHUNK_SIZE

    from . import HashLookupError

    ctx = _Context()
    try:
        code = int(args.func(args, ctx))
        ctx.out.flush()
        return code
    except BrokenPipeError:
        # The reader went away (e.g. `| head`): stop quietly.  Exit 1 if a hit
        # was already known, otherwise the result is unknown: 2.
        _silence_stdout()
        return EXIT_FOUND if ctx.found else EXIT_ERROR
    except (CLIError, HashLookupError, OSError, ValueError) as exc:
        _flush_quietly(ctx)
        _print_error(_describe(exc))
        return EXIT_ERROR
    except KeyboardInterrupt:
        _flush_quietly(ctx)
        _print_error("interrupted")
        return EXIT_INTERRUPTED


def _flush_quietly(ctx: _Context) -> None:
    try:
        ctx.out.flush()
    except (OSError, ValueError):
        _silence_stdout()


def _silence_stdout() -> None:
    """Point fd 1 at /dev/null so the interpreter's final flush cannot fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        pass


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
