"""Command-line interface: ``hashlookup`` / ``python -m hashlookup``.

Exit status (as clamscan): 0 nothing found, 1 at least one digest found, 2 error.
Every expected error is reported as one line ``hashlookup: error: <message>`` on
stderr.  See docs/CLI.md.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import re
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
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


def _jsonl_matches(
    numbers: list[int],
    digests: list[str],
    texts: list[str],
    extras: list[str] | None = None,
) -> bytes:
    """``{"line": N, "digest": "...", "text": "..."}`` lines (as json.dumps);
    ``extras[i]`` (pre-rendered ``, "key": value`` members) is appended to the
    i-th object."""
    tails = extras if extras is not None else [""] * len(numbers)
    records = [
        f'{{"line": {n}, "digest": "{d}", "text": {_encode_basestring(t)}{x}}}\n'
        for n, d, t, x in zip(numbers, digests, texts, tails, strict=True)
    ]
    try:
        return "".join(records).encode("utf-8")
    except UnicodeEncodeError:  # rare: some line is not valid UTF-8
        return "".join(
            f'{{"line": {n}, "digest": "{d}", "text": {_json_str(t)}{x}}}\n'
            for n, d, t, x in zip(numbers, digests, texts, tails, strict=True)
        ).encode("utf-8")


def _csv_matches(
    numbers: list[int],
    digests: list[str],
    texts: list[str],
    extras: list[str] | None = None,
) -> bytes:
    """``N,digest,text`` rows, quoted as csv.writer (QUOTE_MINIMAL) quotes them;
    ``extras[i]`` (pre-rendered ``,field...``) is appended to the i-th row."""
    if _CSV_SPECIAL.search("".join(texts)) is not None:
        texts = [
            f'"{t.replace(chr(34), chr(34) * 2)}"' if _CSV_SPECIAL.search(t) else t
            for t in texts
        ]
    tails = extras if extras is not None else [""] * len(numbers)
    rows = [
        f"{n},{d},{t}{x}\n"
        for n, d, t, x in zip(numbers, digests, texts, tails, strict=True)
    ]
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


_DATASET_SECTIONS = {"rowmap", "records", "label bitmaps", "label index"}


class _Opened:
    """A file opened by a command: a dataset, or a single-table index.

    ``dataset`` is the open :class:`hashlookup.Dataset` of a dataset file (None
    for an index file).  ``index`` is the :class:`hashlookup.HashIndex` of an
    index file (None for a dataset).  Index files keep their behaviour from
    before datasets existed (fixed width, no records, no labels).
    """

    def __init__(self, path: str) -> None:
        from . import IndexFormatError, open_dataset

        self.path = path
        self._owner: Any
        try:
            ds = open_dataset(path)
        except IndexFormatError as exc:
            # open_dataset refuses what is not md5/sha1/sha256 (a raw-key index
            # built with the API): such a file still opens as an index.
            try:
                index = _open_index(path)
            except (IndexFormatError, OSError):
                raise exc from None
            kinds = {s["kind"] for s in index.info()["sections"]}
            if kinds & _DATASET_SECTIONS:  # a damaged dataset: not an index
                index.close()
                raise exc from None
            self._owner = index
            self.dataset: Any = None
            self.index: Any = self._owner
            return
        except OSError as exc:
            if exc.filename is None and exc.errno is not None:
                raise OSError(exc.errno, exc.strerror, path) from exc
            raise
        self._owner = ds
        try:
            if ds.info()["kind"] == "dataset":
                self.dataset, self.index = ds, None
            else:
                self.dataset, self.index = None, ds.table(ds.algorithms[0])
        except BaseException:
            ds.close()
            raise

    def close(self) -> None:
        self._owner.close()

    def __enter__(self) -> _Opened:  # noqa: PYI034 (a final, private class)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _label_filters(
    opened: _Opened, only: list[str] | None, exclude: list[str] | None
) -> tuple[tuple[str, ...] | None, tuple[str, ...] | None]:
    """Validated --only/--exclude labels.  An --only label the file does not
    have is an error (a typo would otherwise hide every hit); an unknown
    --exclude label excludes nothing."""
    if only and opened.dataset is None:
        raise CLIError(f"--only: {opened.path} is a single-table index without labels")
    if only:
        known = opened.dataset.labels()
        for label in only:
            if label not in known:
                names = sorted(known)
                shown = ", ".join(names[:10]) + (", ..." if len(names) > 10 else "")
                raise CLIError(
                    f"--only {label!r}: no such label in {opened.path} "
                    f"(labels: {shown or 'none'})"
                )
    if opened.dataset is None:
        return None, None
    return (tuple(only) if only else None, tuple(exclude) if exclude else None)


# ---------------------------------------------------------------- inputs


def _named_input(text: str) -> tuple[str | None, str]:
    """``(source name, path)`` of an INPUT: ``NAME=PATH`` when the text before the
    first ``=`` is a plausible name (non-empty, no path separator) and the whole
    text is not an existing file; otherwise ``(None, text)``."""
    if text == "-" or "=" not in text:
        return None, text
    name, _, path = text.partition("=")
    seps = {"/", os.sep} | ({os.altsep} if os.altsep else set())
    if not name or any(sep in name for sep in seps) or os.path.exists(text):
        return None, text
    if not path:
        raise CLIError(f"input {text!r}: no path after '=' (write NAME=PATH)")
    return name, path


def _dataset_inputs(
    texts: Sequence[str], stack: contextlib.ExitStack[Any]
) -> list[tuple[str, str]]:
    """``[(source name, path)]`` for build_dataset/update_dataset.  Standard
    input (``-`` or ``NAME=-``, default name ``stdin``) is copied to a temporary
    file first: the importers detect the format from the content and may read a
    file more than once."""
    items: list[tuple[str, str]] = []
    stdin_used = False
    for text in texts:
        name, path = _named_input(text)
        if path == "-":
            if stdin_used:
                raise CLIError("'-' (standard input) can be given only once")
            stdin_used = True
            tmpdir = stack.enter_context(
                tempfile.TemporaryDirectory(prefix="hashlookup-")
            )
            path = os.path.join(tmpdir, "stdin")
            with open(path, "wb") as spool:
                shutil.copyfileobj(sys.stdin.buffer, spool, 1 << 20)
            stack.enter_context(_name_stdin_in_errors(path))
            name = name or "stdin"
        elif name is None:
            name = os.path.splitext(os.path.basename(path))[0] or path
        items.append((name, path))
    return items


@contextlib.contextmanager
def _name_stdin_in_errors(spool: str) -> Iterator[None]:
    """Input errors quote '<stdin>', not the temporary copy of it."""
    from .errors import InputError

    try:
        yield
    except InputError as exc:
        raise InputError(str(exc).replace(spool, "<stdin>")) from None


def _mapping(
    pairs: Sequence[tuple[str, str]] | None, option: str
) -> dict[str, str] | None:
    if not pairs:
        return None
    out: dict[str, str] = {}
    for key, value in pairs:
        if key in out:
            raise CLIError(f"{option} {key}=...: given twice")
        out[key] = value
    return out


def _import_options(args: argparse.Namespace) -> dict[str, Any]:
    """Importer options shared by build and update."""
    opts: dict[str, Any] = {"skip_invalid": args.skip_invalid}
    if args.input_format is not None:
        opts["input_format"] = args.input_format
    columns = _mapping(args.column, "--column")
    if columns is not None:
        opts["columns"] = columns
    label_columns = _mapping(args.label_column, "--label-column")
    if label_columns is not None:
        opts["label_columns"] = label_columns
    return opts


# ---------------------------------------------------------------- commands


def _cmd_build(args: argparse.Namespace, ctx: _Context) -> int:
    if args.index:
        return _build_index(args)
    if args.algorithm is not None:
        raise CLIError(
            "--algorithm applies to --index builds only (a dataset keeps every "
            "algorithm its inputs have)"
        )
    from . import build_dataset

    kwargs = _import_options(args)
    if args.bloom_bits_per_key is not None:
        kwargs["bloom_bits_per_key"] = args.bloom_bits_per_key
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        sources = _dataset_inputs(args.inputs, stack)
        report = build_dataset(
            sources,
            args.output,
            name=args.name,
            allow=args.allow or None,
            generation=args.generation,
            **kwargs,
        )
    elapsed = float(report.seconds or (time.perf_counter() - started))
    if not args.quiet:
        read = sum(report.inputs.values())
        per_source = ", ".join(f"{k} {v}" for k, v in report.inputs.items())
        keys = ", ".join(f"{a} {n}" for a, n in report.keys.items())
        suppressed = sum(report.suppressed.values())
        sys.stderr.write(
            f"{PROG}: wrote {report.path} (dataset {report.name}, generation "
            f"{report.generation}): {report.records} records from {read} input "
            f"records ({per_source}); keys: {keys}; {report.merged} merged, "
            f"{suppressed} suppressed by the allow-list, {report.invalid} invalid "
            f"skipped; {report.file_size} bytes "
            f"({_human_size(int(report.file_size))}), {elapsed:.2f} s\n"
        )
    return EXIT_CLEAN


def _build_index(args: argparse.Namespace) -> int:
    """``build --index``: one single-table index file, as before datasets."""
    from . import build_index

    for option, value in (
        ("--name", args.name),
        ("--allow", args.allow),
        ("--input-format", args.input_format),
        ("--column", args.column),
        ("--label-column", args.label_column),
        ("--generation", args.generation),
    ):
        if value is not None:
            raise CLIError(f"{option} applies to dataset builds, not to --index")
    inputs: list[str] = args.inputs
    for text in inputs:
        if _named_input(text)[0] is not None:
            raise CLIError(
                f"input {text!r}: source names (NAME=PATH) apply to dataset builds; "
                "--index reads plain digest lists"
            )
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


_TABLE_FIELDS = ("algorithm", "width", "count", "key_bytes", "locator_bits", "bloom")


def _dataset_info(ds: Any) -> dict[str, Any]:
    """The facts ``info`` shows for a dataset: summary first, then the tables,
    the sections (once, not per table) and the raw metadata."""
    raw = ds.info()
    meta = raw.get("metadata")
    build = meta.get("build") if isinstance(meta, dict) else None
    if not isinstance(build, dict):
        build = {}
    tables: dict[str, Any] = raw["tables"]
    first = next(iter(tables.values()))
    return {
        "path": raw["path"],
        "kind": "dataset",
        "name": raw["name"],
        "generation": raw["generation"],
        "built": raw["built"],
        "records": raw["records"],
        "file_size": raw["file_size"],
        "format_version": first.get("format_version"),
        "keys": {a: t["count"] for a, t in tables.items()},
        "labels": dict(sorted(raw["labels"].items())),
        "suppressed": build.get("suppressed", {}),
        "merged": build.get("merged"),
        "invalid": build.get("invalid"),
        "sources": build.get("sources", {}),
        "allow_lists": build.get("allow_lists", []),
        "kernel": first.get("kernel"),
        "tables": {
            a: {k: t[k] for k in _TABLE_FIELDS if k in t} for a, t in tables.items()
        },
        "sections": first.get("sections", []),
        "metadata": meta,
    }


def _cmd_info(args: argparse.Namespace, ctx: _Context) -> int:
    with _Opened(args.path) as opened:
        if opened.dataset is not None:
            info = _dataset_info(opened.dataset)
        else:
            info = opened.index.info()
    if args.json:
        ctx.out.line(json.dumps(info, indent=2, default=_json_default))
    else:
        if opened.dataset is not None:
            info = {k: v for k, v in info.items() if k != "metadata"}
        for line in _render_info(info):
            ctx.out.line(line)
    return EXIT_CLEAN


def _cmd_verify(args: argparse.Namespace, ctx: _Context) -> int:
    with _Opened(args.path) as opened:
        ds, index = opened.dataset, opened.index
        if ds is not None:
            ds.verify()
            keys = ", ".join(f"{len(ds.table(a))} {a}" for a in ds.algorithms)
            text = (
                f"OK: {args.path}: dataset {ds.name} generation {ds.generation}, "
                f"{len(ds)} records ({keys} keys), all checks passed"
            )
        else:
            index.verify()
            text = (
                f"OK: {args.path}: {len(index)} {index.algorithm} keys, "
                "all checks passed"
            )
    ctx.out.line(text)
    return EXIT_CLEAN


_ALGORITHM_OF_HEX = {32: "md5", 40: "sha1", 64: "sha256"}


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


def _parse_any_digest_args(
    digests: Sequence[str], algorithms: Sequence[str], path: str
) -> list[str]:
    """Lowercase hex of md5/sha1/sha256 digest arguments of the algorithms the
    dataset has; errors name the argument's position, never its text."""
    out: list[str] = []
    for pos, raw in enumerate(digests, 1):
        text = raw.strip()
        algorithm = _ALGORITHM_OF_HEX.get(len(text))
        if algorithm is None:
            raise CLIError(
                f"digest argument {pos}: expected an md5, sha1 or sha256 digest "
                f"(32, 40 or 64 hex characters), got {len(text)} characters"
            )
        if not _HEX_RE.fullmatch(text):
            raise CLIError(f"digest argument {pos}: not a hexadecimal string")
        if algorithm not in algorithms:
            raise CLIError(
                f"digest argument {pos}: an {algorithm} digest, but {path} has no "
                f"{algorithm} table (it has {', '.join(algorithms)})"
            )
        out.append(text.lower())
    return out


_RECORD_FIELDS = ("record", "md5", "sha1", "sha256", "size", "labels")


def _cmd_check(args: argparse.Namespace, ctx: _Context) -> int:
    with _Opened(args.path) as opened:
        only, exclude = _label_filters(opened, args.only, args.exclude)
        if opened.dataset is None:
            index = opened.index
            keys = _parse_digest_args(
                args.digests, int(index.width), str(index.algorithm)
            )
            found = np.asarray(index.contains_many(keys), dtype=bool).tolist()
            hexes = [bytes(k).hex() for k in keys]
            hits: list[Any] = [None] * len(hexes)
        else:
            ds = opened.dataset
            hexes = _parse_any_digest_args(args.digests, ds.algorithms, args.path)
            hits = [ds.lookup(h, only, exclude) for h in hexes]
            found = [m is not None for m in hits]
    ctx.found = any(found)
    out = ctx.out
    is_dataset = opened.dataset is not None
    if args.format == "text":
        lines = []
        for h, f, m in zip(hexes, found, hits, strict=True):
            line = f"{h}\t{'FOUND' if f else 'not found'}"
            if m is not None:
                fields = [f"record={m.record_id}"]
                fields += [
                    f"{a}={getattr(m, a)}"
                    for a in ("md5", "sha1", "sha256")
                    if getattr(m, a) is not None
                ]
                if m.size is not None:
                    fields.append(f"size={m.size}")
                fields.append(f"labels={';'.join(m.labels)}")
                line += "\t" + "\t".join(fields)
            lines.append(line + "\n")
        out.write("".join(lines).encode("utf-8"))
    elif args.format == "jsonl":
        records: list[bytes] = []
        for h, f, m in zip(hexes, found, hits, strict=True):
            rec: dict[str, Any] = {"digest": h, "found": bool(f)}
            if m is not None:
                rec.update(
                    record=m.record_id,
                    md5=m.md5,
                    sha1=m.sha1,
                    sha256=m.sha256,
                    size=m.size,
                    labels=list(m.labels),
                )
            records.append(_json_line(rec))
        out.write(b"".join(records))
    else:
        rows: list[Sequence[object]] = [
            ("digest", "found", *_RECORD_FIELDS) if is_dataset else ("digest", "found")
        ]
        for h, f, m in zip(hexes, found, hits, strict=True):
            row: list[object] = [h, "true" if f else "false"]
            if is_dataset:
                if m is None:
                    row += [""] * len(_RECORD_FIELDS)
                else:
                    row += [
                        m.record_id,
                        m.md5 or "",
                        m.sha1 or "",
                        m.sha256 or "",
                        "" if m.size is None else m.size,
                        ";".join(m.labels),
                    ]
            rows.append(row)
        out.write(_csv_rows(rows))
    return EXIT_FOUND if ctx.found else EXIT_CLEAN


def _csv_field(text: str) -> str:
    if _CSV_SPECIAL.search(text) is None:
        return text
    return '"' + text.replace('"', '""') + '"'


class _RecordLabels:
    """Labels of hit records, looked up once per record."""

    def __init__(self, ds: Any) -> None:
        self._ds = ds
        self._cache: dict[int, tuple[str, ...]] = {}

    def __call__(self, record_id: int) -> tuple[str, ...]:
        if record_id < 0:
            return ()
        labels = self._cache.get(record_id)
        if labels is None:
            labels = tuple(self._ds.record(record_id).labels)
            if len(self._cache) < 100_000:
                self._cache[record_id] = labels
        return labels


def _cmd_match(args: argparse.Namespace, ctx: _Context) -> int:
    from ._match import MatchStats, match_chunks

    stats = MatchStats()
    out = ctx.out
    fmt: str = args.format
    invert: bool = args.invert

    def run(opened: _Opened, stream: BinaryIO, name: str) -> None:
        ds = opened.dataset
        only, exclude = _label_filters(opened, args.only, args.exclude)
        with_records = ds is not None and fmt != "text" and not args.count
        labels_of = _RecordLabels(ds) if with_records else None
        chunks = match_chunks(
            ds if ds is not None else opened.index,
            stream,
            skip_invalid=args.skip_invalid,
            name=name,
            chunk_size=args.chunk_size,
            threads=args.threads,
            want_lines=not args.count,
            stats=stats,
            want_records=with_records,
            only=only,
            exclude=exclude,
        )
        if fmt == "csv" and not args.count:
            out.write(
                b"line,digest,text,record,labels\n"
                if with_records
                else b"line,digest,text\n"
            )
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
            extras: list[str] | None = None
            if labels_of is not None:
                assert chunk.record_ids is not None
                rids = chunk.record_ids[sel].tolist()
                labels = [labels_of(r) for r in rids]
                if fmt == "jsonl":
                    extras = [
                        f', "record": {r if r >= 0 else "null"}, "labels": '
                        f"{json.dumps(list(ls), ensure_ascii=False)}"
                        for r, ls in zip(rids, labels, strict=True)
                    ]
                else:
                    extras = [
                        f",{r if r >= 0 else ''},{_csv_field(';'.join(ls))}"
                        for r, ls in zip(rids, labels, strict=True)
                    ]
            if fmt == "jsonl":
                out.write(_jsonl_matches(numbers, digests, texts, extras))
            else:
                out.write(_csv_matches(numbers, digests, texts, extras))

    with _Opened(args.path) as opened:
        if args.file == "-":
            run(opened, sys.stdin.buffer, "<stdin>")
        else:
            with open(args.file, "rb") as stream:
                run(opened, stream, args.file)
    if args.count:
        out.line(str(stats.misses if invert else stats.hits))
    ctx.found = stats.hits > 0
    return EXIT_FOUND if ctx.found else EXIT_CLEAN


def _cmd_update(args: argparse.Namespace, ctx: _Context) -> int:
    from . import update_dataset

    opts = _import_options(args)
    with contextlib.ExitStack() as stack:
        add = _dataset_inputs(args.add or [], stack)
        report = update_dataset(
            args.path,
            add=add or None,
            remove=args.remove or None,
            output=args.output,
            **opts,
        )
    summary = {
        "path": report.path,
        "source": args.path,
        "generation": report.generation,
        "previous_generation": report.generation - 1,
        "records_before": report.records_before,
        "records_after": report.records_after,
        "added": report.added,
        "removed": report.removed,
        "changed": report.changed,
        "file_size": report.file_size,
        "seconds": round(float(report.seconds), 3),
    }
    if args.json:
        ctx.out.line(json.dumps(summary, indent=2))
        return EXIT_CLEAN
    target = report.path if args.output is None else f"{args.path} -> {report.path}"
    for line in (
        f"updated: {target}",
        f"generation: {report.generation} (was {report.generation - 1})",
        f"records: {report.records_after} (was {report.records_before})",
        f"added: {report.added}",
        f"removed: {report.removed}",
        f"changed: {report.changed}",
        *_render_info(report.file_size, "file_size"),
        f"seconds: {float(report.seconds):.2f}",
    ):
        ctx.out.line(line)
    return EXIT_CLEAN


def _cmd_export_bloom(args: argparse.Namespace, ctx: _Context) -> int:
    try:
        from ._bloom_export import export_bloom
    except ImportError as exc:
        raise CLIError(f"export-bloom is not available in this installation ({exc})")

    with _Opened(args.path) as opened:
        ds, index = opened.dataset, opened.index
        if ds is not None:
            algorithms: tuple[str, ...] = tuple(ds.algorithms)
        else:
            algorithms = (str(index.algorithm),)
        algorithm = args.algorithm
        if algorithm is None:
            if len(algorithms) != 1:
                raise CLIError(
                    f"{args.path} has {', '.join(algorithms)} tables: choose one "
                    "with --algorithm"
                )
            algorithm = algorithms[0]
        elif algorithm not in algorithms:
            raise CLIError(
                f"{args.path} has no {algorithm} table (it has {', '.join(algorithms)})"
            )
        table = ds.table(algorithm) if ds is not None else index
        metadata: dict[str, Any] | None = None
        if not args.no_metadata:
            metadata = {
                "generator": f"hashlookup {__version__}",
                "source": os.path.basename(args.path),
                "algorithm": algorithm,
                "keys": len(table),
            }
            if ds is not None:
                metadata.update(
                    dataset=ds.name, generation=ds.generation, built=ds.built
                )
        kwargs: dict[str, Any] = {"fpr": args.fpr, "metadata": metadata}
        if args.capacity is not None:
            kwargs["capacity"] = args.capacity
        if args.threads is not None:
            kwargs["threads"] = args.threads
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            report = export_bloom(table, args.output, **kwargs)
    for w in caught:
        sys.stderr.write(f"{PROG}: warning: {_one_line(str(w.message))}\n")
    if not args.quiet:
        size = int(report.file_size)
        sys.stderr.write(
            f"{PROG}: wrote {report.path} (DCSO bloom v1, {algorithm}): "
            f"{report.keys} keys, capacity {report.n}, {report.m} bits, "
            f"{report.k} hashes, fpr {report.fpr:g}, {size} bytes "
            f"({_human_size(size)}), {float(report.seconds):.2f} s\n"
        )
    return EXIT_CLEAN


def _cmd_scan(args: argparse.Namespace, ctx: _Context) -> int:
    from . import open_dataset
    from .scan import scan

    out = ctx.out
    fmt = args.format
    if fmt == "csv":
        out.write(_csv_rows([["path", "algorithm", "digest", "record", "labels"]]))

    def on_hit(hit: Any) -> None:
        ctx.found = True
        if fmt == "text":
            out.line(f"{hit.path}\t{hit.algorithm}\t{hit.digest}\t{';'.join(hit.labels)}")
        elif fmt == "jsonl":
            out.line(json.dumps({"path": hit.path, "algorithm": hit.algorithm,
                                 "digest": hit.digest, "record": hit.record_id,
                                 "labels": list(hit.labels)}))
        else:
            out.write(_csv_rows([[hit.path, hit.algorithm, hit.digest, hit.record_id,
                                  ";".join(hit.labels)]]))

    def on_error(path: str, reason: str) -> None:
        if not args.quiet:
            print(f"{PROG}: warning: {path}: {reason}", file=sys.stderr)

    for path in args.paths:  # a mistyped root is a usage error, not a scan error
        if not os.path.lexists(path):
            raise CLIError(f"{path}: no such file or directory")
    with open_dataset(args.path) as ds:
        report = scan(ds, args.paths, follow_symlinks=args.follow_symlinks,
                      one_file_system=args.one_file_system,
                      exclude=args.exclude or (), min_size=args.min_size,
                      max_size=args.max_size, jobs=args.jobs,
                      skip_unknown_sizes=not args.read_all, on_hit=on_hit,
                      on_error=on_error)
    out.flush()
    if not args.quiet:
        r = report
        mb = r.bytes_read / 1e6
        rate = mb / r.seconds if r.seconds > 0 else 0.0
        print(f"{PROG}: scanned {r.files_seen:,} files: {r.files_read:,} read "
              f"({mb:,.1f} MB, {rate:,.0f} MB/s), {r.skipped_size:,} skipped by size, "
              f"{r.skipped_excluded:,} excluded, {r.special:,} special, "
              f"{r.errors:,} errors, {len(r.hits):,} hits in {r.seconds:.2f} s",
              file=sys.stderr)
    return EXIT_FOUND if report.hits else EXIT_CLEAN


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


def _float_arg(minimum: float, maximum: float | None = None) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a number, got {text!r}"
            ) from None
        if not value >= minimum or (maximum is not None and not value <= maximum):
            bound = (
                f"in {minimum:g}..{maximum:g}"
                if maximum is not None
                else (f">= {minimum:g}")
            )
            raise argparse.ArgumentTypeError(f"must be {bound}, got {text}")
        return value

    parse.__name__ = "number"
    return parse


def _pair_arg(what: str) -> Callable[[str], tuple[str, str]]:
    def parse(text: str) -> tuple[str, str]:
        key, sep, value = text.partition("=")
        if not sep or not key.strip() or not value:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return key.strip(), value

    parse.__name__ = what
    return parse


def _add_import_options(p: argparse.ArgumentParser) -> None:
    """Options of the importers (build and update)."""
    from .importers import FORMATS

    p.add_argument(
        "--input-format",
        choices=FORMATS,
        default=None,
        help="read every input as this format (default: detected from each "
        "file's content)",
    )
    p.add_argument(
        "--column",
        type=_pair_arg("ALGORITHM=COLUMN"),
        action="append",
        metavar="ALG=COLUMN",
        help="CSV inputs: column of md5, sha1, sha256 or size (repeatable; "
        "default: found by header name)",
    )
    p.add_argument(
        "--label-column",
        type=_pair_arg("PREFIX=COLUMN"),
        action="append",
        metavar="PREFIX=COLUMN",
        help="CSV inputs: a cell value V of COLUMN becomes label PREFIX:V "
        "(repeatable), e.g. category=Category",
    )
    p.add_argument(
        "--skip-invalid",
        action="store_true",
        help="skip (and count) invalid lines/records instead of failing",
    )


def _add_filter_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--only",
        action="append",
        metavar="LABEL",
        help="report only hits whose record has this label (repeatable: any of "
        "them), e.g. source:police",
    )
    p.add_argument(
        "--exclude",
        action="append",
        metavar="LABEL",
        help="do not report hits whose record has this label (repeatable)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of the ``hashlookup`` command."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Check file digests (md5/sha1/sha256) against known-hash lists "
        "held in a memory-mapped dataset (or single-table index) file.",
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

    def add_path(p: argparse.ArgumentParser) -> None:
        p.add_argument("path", metavar="DATASET", help="dataset or index file")

    p = add(
        "build",
        "build a dataset (or an index) from hash lists",
        "Build a dataset file from known-hash lists (plain digest lists, md5sum "
        "output, hashdeep, CSV, Project VIC JSON, NSRL SQLite). Every record of "
        "INPUT NAME=PATH gets the label source:NAME; records of the same file "
        "(sharing a digest) are merged. With --index, write a single-table index "
        "of plain digest lists instead. The file is written atomically.",
    )
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="PATH, or NAME=PATH to name the source (default NAME: the file's "
        "stem); '-' or NAME=- for standard input",
    )
    p.add_argument(
        "-o", "--output", required=True, metavar="DATASET", help="file to write"
    )
    p.add_argument(
        "--allow",
        action="append",
        metavar="FILE",
        help="list of digests that must never match: records with any of them "
        "are left out (repeatable)",
    )
    p.add_argument("--name", default=None, help="dataset name (default: output stem)")
    p.add_argument(
        "--generation",
        type=_int_arg(0),
        default=None,
        metavar="N",
        help="generation number to store (default: the existing file's plus one, or 1)",
    )
    _add_import_options(p)
    p.add_argument(
        "--bloom-bits-per-key",
        type=_float_arg(0, 64),
        default=None,
        metavar="N",
        help="Bloom filter size in bits per key (default: library default)",
    )
    p.add_argument(
        "--index",
        action="store_true",
        help="write a single-table index of plain digest lists (the format before "
        "datasets) instead of a dataset",
    )
    p.add_argument(
        "--algorithm",
        choices=("md5", "sha1", "sha256"),
        default=None,
        help="with --index: digest algorithm (default: detected from the first digest)",
    )
    p.add_argument(
        "-q", "--quiet", action="store_true", help="do not print the summary line"
    )
    p.set_defaults(func=_cmd_build)

    p = add(
        "info",
        "describe a dataset or index",
        "Print the name, generation, records, keys per algorithm, labels, "
        "suppressed counts, sizes and sections of a dataset (or the header, "
        "sizes and build parameters of an index).",
    )
    add_path(p)
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=_cmd_info)

    p = add(
        "verify",
        "check a file's integrity",
        "Recompute every checksum and run the structural checks of a dataset or "
        "index. Exit 0 and print OK when it is intact, exit 2 otherwise.",
    )
    add_path(p)
    p.set_defaults(func=_cmd_verify)

    p = add(
        "check",
        "look up digests given as arguments",
        "Look up hex digests (md5, sha1 or sha256) given on the command line. "
        "Prints one result per digest, with the record of each hit; exit 1 if "
        "any was found, 0 if none, 2 on error.",
    )
    add_path(p)
    p.add_argument("digests", nargs="+", metavar="DIGEST", help="hex digest (any case)")
    p.add_argument(
        "--format",
        choices=_FORMATS,
        default="text",
        help="output format (default: text)",
    )
    _add_filter_options(p)
    p.set_defaults(func=_cmd_check)

    p = add(
        "match",
        "report the lines of a digest list found in a dataset",
        "Stream a digest list (hex digests one per line, or md5sum/sha1sum/"
        "sha256sum output) and print the lines whose digest is in the dataset. "
        "The first digest's length picks the md5, sha1 or sha256 table. "
        "Exit 1 if any digest was found (also with --invert/--count), 0 if "
        "none, 2 on error.",
    )
    add_path(p)
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
        help="text: the input lines; jsonl: {line, digest, text[, record, labels]} "
        "objects; csv: line,digest,text[,record,labels] (default: text)",
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
        help="print the lines whose digest is NOT in the dataset",
    )
    p.add_argument(
        "--skip-invalid",
        action="store_true",
        help="skip invalid lines instead of failing",
    )
    _add_filter_options(p)
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
        "update",
        "write the next generation of a dataset",
        "Write the next generation of a dataset: its records plus the records of "
        "the --add lists, minus every record with a digest in a --remove list. "
        "The file is replaced atomically (or the result goes to -o); readers that "
        "reload pick it up. Prints the change summary.",
    )
    add_path(p)
    p.add_argument(
        "--add",
        action="append",
        metavar="[NAME=]FILE",
        help="hash list to add, its records labelled source:NAME (repeatable)",
    )
    p.add_argument(
        "--remove",
        action="append",
        metavar="FILE",
        help="digests whose records are removed (repeatable)",
    )
    p.add_argument(
        "-o",
        "--output",
        default=None,
        metavar="DATASET",
        help="write the new generation here instead of replacing DATASET",
    )
    _add_import_options(p)
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=_cmd_update)

    p = add(
        "scan",
        "hash every file under PATHs and report the known ones",
        "Walk PATHs (directories recursively, symbolic links not followed unless "
        "asked), read each regular file once computing every digest the dataset "
        "has, and print the files found in it. Unreadable, vanished or changing "
        "files are reported on stderr and counted, never fatal. Files whose size "
        "matches no record are skipped unread when every record has a size.",
    )
    add_path(p)
    p.add_argument("paths", nargs="+", metavar="PATH", help="file or directory")
    p.add_argument("--format", choices=_FORMATS, default="text",
                   help="hit output: text (path, algorithm, digest, labels), jsonl, csv")
    p.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="reader/hasher threads (default: number of cores)")
    p.add_argument("--exclude", action="append", metavar="GLOB",
                   help="skip paths or names matching GLOB (repeatable)")
    p.add_argument("--min-size", type=int, default=None, metavar="BYTES")
    p.add_argument("--max-size", type=int, default=None, metavar="BYTES")
    p.add_argument("--follow-symlinks", action="store_true")
    p.add_argument("--one-file-system", action="store_true",
                   help="do not cross into other file systems")
    p.add_argument("--read-all", action="store_true",
                   help="read every file, also those whose size matches no record")
    p.add_argument("--quiet", action="store_true",
                   help="no warnings or summary on stderr")
    p.set_defaults(func=_cmd_scan)

    p = add(
        "export-bloom",
        "export one key table as a DCSO bloom v1 filter",
        "Write the digests of one table of a dataset as a Bloom filter in the "
        "format of DCSO's bloom tool and the flor Python package (digests added as "
        "uppercase hex).",
    )
    add_path(p)
    p.add_argument(
        "--algorithm",
        choices=("md5", "sha1", "sha256"),
        default=None,
        help="table to export (default: the file's only table)",
    )
    p.add_argument(
        "--fpr",
        type=_float_arg(0.0),
        default=1e-4,
        metavar="P",
        help="false-positive probability, 0 < P < 1 (default: 1e-4)",
    )
    p.add_argument(
        "--capacity",
        type=_int_arg(1),
        default=None,
        metavar="N",
        help="capacity in the header (default: the number of keys)",
    )
    p.add_argument(
        "-o", "--output", required=True, metavar="FILE", help="filter file to write"
    )
    p.add_argument(
        "--no-metadata",
        action="store_true",
        help="write no trailer (default: a JSON description of the source)",
    )
    p.add_argument(
        "--threads",
        type=_int_arg(1),
        default=None,
        metavar="N",
        help="hashing threads (default: automatic)",
    )
    p.add_argument(
        "-q", "--quiet", action="store_true", help="do not print the summary line"
    )
    p.set_defaults(func=_cmd_export_bloom)

    p = add(
        "demo",
        "run an end-to-end demo on synthetic data",
        "Build a dataset from three synthetic known-hash lists (a plain md5 list, "
        "hashdeep output, a CSV with categories) that also list ~300 Python "
        "standard library files, with an allow-list; then match an inventory of "
        "all the standard library's .py files and random digests against it, "
        "printing a summary and timings.",
    )
    p.add_argument("--dir", default="demo", help="working directory (default: ./demo)")
    p.add_argument(
        "--keys",
        type=_int_arg(0),
        default=1_400_000,
        metavar="N",
        help="synthetic digests on the police list; the hotline and partner lists "
        "get N/4 and N/28 (default: 1400000)",
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
