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
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from json.encoder import encode_basestring as _encode_basestring
from json.encoder import encode_basestring_ascii as _encode_basestring_ascii
from typing import TYPE_CHECKING, Any, BinaryIO, TextIO

# numpy's OpenBLAS starts one spinning thread per core when numpy is imported;
# no command does linear algebra, and on a busy machine those threads take CPU
# from the matching and scanning threads (about 5 % of a `hashlookup match`).
# Only the command line sets this (before numpy is first imported), and only
# when the user did not choose.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

if TYPE_CHECKING:
    import numpy as np
else:
    from hashlookup._lazy import numpy as np  # noqa: E402

from hashlookup._version import __version__

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


def _open_index(path: str, **open_kwargs: Any) -> Any:
    from hashlookup import open_index

    try:
        return open_index(path, **open_kwargs)
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

    def __init__(self, path: str, **open_kwargs: Any) -> None:
        from hashlookup import IndexFormatError, SignatureError, open_dataset

        self.path = path
        self._owner: Any
        try:
            ds = open_dataset(path, **open_kwargs)
        except SignatureError:
            raise
        except IndexFormatError as exc:
            # open_dataset refuses what is not md5/sha1/sha256 (a raw-key index
            # built with the API): such a file still opens as an index.
            try:
                index = _open_index(path, **open_kwargs)
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


def _add_verify_key(p: argparse.ArgumentParser) -> None:
    """--verify-key, for every command that opens a dataset (docs/SIGNING.md)."""
    p.add_argument(
        "--verify-key",
        metavar="KEY.pub",
        default=None,
        help="refuse the file unless it carries a valid signature (FILE.sig) by "
        "this public key; checks every byte before the first lookup",
    )


def _note_stale_signature(path: str) -> None:
    """After a file was rewritten: its old signature no longer applies."""
    if os.path.exists(path + ".sig"):
        sys.stderr.write(
            f"{PROG}: note: {path}.sig signs the previous version of {path}; "
            f"readers with --verify-key refuse the new one until you run "
            f"`{PROG} sign {path} --key KEY`\n"
        )


def _signature_check(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments of open_dataset/open_index for --verify-key."""
    key = getattr(args, "verify_key", None)
    return {} if key is None else {"require_signature": key}


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
            import shutil
            import tempfile

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
    from hashlookup.errors import InputError

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
    from hashlookup import build_dataset

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
    _note_stale_signature(args.output)
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
    from hashlookup import build_index

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
    _note_stale_signature(args.output)
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
    with _Opened(args.path, **_signature_check(args)) as opened:
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
    with _Opened(args.path, **_signature_check(args)) as opened:
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
    with _Opened(args.path, **_signature_check(args)) as opened:
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


def _cmd_match(args: argparse.Namespace, ctx: _Context) -> int:
    with _Opened(args.path, **_signature_check(args)) as opened:
        only, exclude = _label_filters(opened, args.only, args.exclude)
        if args.workers is not None or args.scheduler is not None:
            from hashlookup.cli.dask import run_dask_match

            found = run_dask_match(args, ctx, CLIError, only, exclude)
        else:
            from hashlookup.cli.match import run_match

            stats = run_match(args, ctx, opened, only, exclude, CLIError)
            if args.count:
                ctx.out.line(str(stats.misses if args.invert else stats.hits))
            found = stats.hits > 0
    ctx.found = found
    return EXIT_FOUND if found else EXIT_CLEAN


def _cmd_update(args: argparse.Namespace, ctx: _Context) -> int:
    from hashlookup import update_dataset

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
    _note_stale_signature(report.path)
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
        from hashlookup.build.bloom import export_bloom
    except ImportError as exc:
        raise CLIError(f"export-bloom is not available in this installation ({exc})")

    with _Opened(args.path, **_signature_check(args)) as opened:
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
    from hashlookup.cli.scan import run

    return run(args, ctx)


def _cmd_keygen(args: argparse.Namespace, ctx: _Context) -> int:
    from hashlookup.build.signing import generate_signing_key

    pair = generate_signing_key(args.output)
    ctx.out.line(f"private key: {pair.private_key} (mode 0600, keep it secret)")
    ctx.out.line(f"public key: {pair.public_key}")
    ctx.out.line(f"key id: {pair.key_id}")
    return EXIT_CLEAN


def _cmd_sign(args: argparse.Namespace, ctx: _Context) -> int:
    from hashlookup.build.signing import sign_dataset

    report = sign_dataset(args.path, args.key, output=args.output)
    ctx.out.line(
        f"signed: {report.path} ({report.file_size} bytes) -> "
        f"{report.signature_path}, key id {report.key_id}, "
        f"{report.seconds:.2f} s"
    )
    return EXIT_CLEAN


def _cmd_demo(args: argparse.Namespace, ctx: _Context) -> int:
    from hashlookup.cli.demo import run_demo

    ctx.out.flush()
    return run_demo(
        args.dir,
        keys=args.keys,
        inventory=args.inventory,
        threads=args.threads,
        out=sys.stdout,
    )


def _cmd_serve(args: argparse.Namespace, ctx: _Context) -> int:
    from hashlookup.server._cli import cmd_serve

    ctx.out.flush()
    return cmd_serve(args)


def _cmd_apikey(args: argparse.Namespace, ctx: _Context) -> int:
    from hashlookup.server._cli import cmd_apikey

    ctx.out.flush()
    return cmd_apikey(args)


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
    from hashlookup.importers import FORMATS

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


def _add_match_inventory_options(p: argparse.ArgumentParser) -> None:
    """Options of `match` for CSV/Parquet inventories, parallelism and Dask
    (implemented in _match_cli.py, _inventory.py and _dask_cli.py)."""
    p.add_argument("--column", metavar="NAME", default=None,
                   help="column holding the digests (CSV/TSV/Parquet inputs)")
    p.add_argument("--input-format", choices=("auto", "text", "csv", "tsv", "parquet"),
                   default="auto",
                   help="input kind (default: from the extension: .csv, .tsv/.tab, "
                   ".parquet/.pq; else text, or csv when --column is given)")
    p.add_argument("--delimiter", metavar="CHAR", default=None,
                   help="CSV field delimiter (default: ',' or a tab for .tsv)")
    p.add_argument("--annotate", action="store_true",
                   help="write every input line/row with a match column (true/false) "
                   "instead of the hits")
    p.add_argument("--jobs", "-j", type=_int_arg(0), default=0, metavar="N",
                   help="threads decoding and looking up pieces of the inputs "
                   "(0: one per core, at most 8; default: 0)")
    p.add_argument("--workers", type=_int_arg(1), default=None, metavar="N",
                   help="match on a local Dask cluster of N worker processes "
                   "(needs hashlookup[dask])")
    p.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help="match on the Dask cluster at ADDRESS; DATASET and the inputs "
                   "must be readable at the same paths on every worker")


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
    _add_verify_key(p)
    p.set_defaults(func=_cmd_info)

    p = add(
        "verify",
        "check a file's integrity",
        "Recompute every checksum and run the structural checks of a dataset or "
        "index. Exit 0 and print OK when it is intact, exit 2 otherwise.",
    )
    add_path(p)
    _add_verify_key(p)
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
    _add_verify_key(p)
    p.set_defaults(func=_cmd_check)

    p = add(
        "match",
        "report the lines of a digest list found in a dataset",
        "Stream inventories of digests (hex digests one per line, md5sum/sha1sum/"
        "sha256sum output, or a named column of CSV/TSV/Parquet files) and print "
        "the lines or rows whose digest is in the dataset, file by file in input "
        "order. The first digest's length picks the md5, sha1 or sha256 table. "
        "Exit 1 if any digest was found (also with --invert/--count), 0 if "
        "none, 2 on error.",
    )
    add_path(p)
    p.add_argument(
        "files",
        nargs="*",
        metavar="INPUT",
        help="digest lists, .csv/.tsv or .parquet files (none or '-': standard "
        "input, text); several are matched in parallel (--jobs)",
    )
    p.add_argument(
        "--format",
        choices=_FORMATS,
        default="text",
        help="text: the input lines (CSV rows for tables); jsonl: {line|row, "
        "digest[, text, record, labels]} objects; csv: the same columns; a file "
        "member/column is added with several inputs (default: text)",
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
        help="input read size (default: 4 MiB)",
    )
    _add_match_inventory_options(p)
    _add_verify_key(p)
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
    p.add_argument("--report", metavar="FILE",
                   help="write the hits to FILE (atomically, at the end) instead of "
                   "stdout; an interrupted scan leaves FILE.partial")
    p.add_argument("--resume", metavar="STATE",
                   help="state file: record finished directories; if it exists, "
                   "continue the interrupted scan it describes")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="status line on stderr (default: when stderr is a terminal)")
    p.add_argument("--quiet", action="store_true",
                   help="no warnings, progress or summary on stderr")
    _add_verify_key(p)
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
    _add_verify_key(p)
    p.set_defaults(func=_cmd_export_bloom)

    p = add(
        "keygen",
        "create an Ed25519 key pair for signing datasets",
        "Write a new Ed25519 private key to NAME (PEM, mode 0600) and its public "
        "key to NAME.pub. Existing files are never overwritten.",
    )
    p.add_argument("-o", "--output", required=True, metavar="NAME",
                   help="private key file to create (public key: NAME.pub)")
    p.set_defaults(func=_cmd_keygen)

    p = add(
        "sign",
        "sign a dataset or index file",
        "Verify DATASET completely (every checksum, every structure), then write "
        "an Ed25519 signature of all its bytes to DATASET.sig (atomically). "
        "Readers check it with --verify-key / require_signature=.",
    )
    add_path(p)
    p.add_argument("--key", required=True, metavar="NAME",
                   help="private key file (from hashlookup keygen)")
    p.add_argument("-o", "--output", default=None, metavar="SIG",
                   help="signature file to write (default: DATASET.sig)")
    p.set_defaults(func=_cmd_sign)

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

    p = add(
        "serve",
        "run the lookup service (HTTP API; needs hashlookup[server])",
        "Serve DATASET over HTTP: CIRCL hashlookup compatible endpoints, the "
        "native batch API (/v1/check), Bloom filter export, health, readiness "
        "and Prometheus metrics; API keys, rate limits, body and batch limits, "
        "an audit log of hits and hot reload of a replaced dataset. See "
        "docs/SERVER.md.",
    )
    add_path(p)
    p.add_argument("--host", default="127.0.0.1", help="address (default: 127.0.0.1)")
    p.add_argument("--port", type=_int_arg(0), default=8080,
                   help="port, 0 for any free one (default: 8080)")
    p.add_argument("--workers", type=_int_arg(1), default=None, metavar="N",
                   help="worker processes (default: one per core)")
    p.add_argument("--api-keys", metavar="FILE",
                   help="keys file of 'hashlookup apikey' (required unless --no-auth)")
    p.add_argument("--no-auth", action="store_true",
                   help="no API keys (public datasets); rate limits apply per address")
    p.add_argument("--rate-limit", type=_float_arg(0), default=100.0, metavar="R",
                   help="requests per second per key (0: unlimited; default: 100)")
    p.add_argument("--burst", type=_float_arg(1), default=None, metavar="B",
                   help="token bucket size (default: 2 x rate)")
    p.add_argument("--max-batch", type=_int_arg(1), default=100_000, metavar="N",
                   help="most digests per /v1/check or /bulk request (default: 100000)")
    p.add_argument("--max-body", type=_int_arg(1), default=16 << 20, metavar="BYTES",
                   help="largest request body (default: 16 MiB)")
    p.add_argument("--audit-log", default="-", metavar="FILE",
                   help="JSON lines of every hit ('-': stderr, the default)")
    p.add_argument("--no-audit-log", action="store_true", help="do not log hits")
    p.add_argument("--reload-interval", type=_float_arg(0.05), default=1.0,
                   metavar="S", help="seconds between checks for a replaced "
                   "dataset or keys file (default: 1)")
    p.add_argument("--max-age", type=_float_arg(0), default=None, metavar="S",
                   help="/readyz fails when the dataset was built more than S "
                   "seconds ago")
    p.add_argument("--bloom-dir", metavar="DIR",
                   help="cache of Bloom filter exports (default: a temporary dir)")
    p.add_argument("--bloom-fpr", type=_float_arg(1e-12, 0.5), default=1e-4,
                   metavar="P", help="false-positive rate of exported filters")
    p.add_argument("--log-level", default="warning",
                   choices=("debug", "info", "warning", "error"))
    _add_verify_key(p)
    p.set_defaults(func=_cmd_serve)

    p = add(
        "apikey",
        "add, revoke or list API keys of the lookup service",
        "Manage the keys file of 'hashlookup serve --api-keys FILE'. 'add' prints "
        "the new token once (only a salted hash is stored); 'revoke' revokes "
        "every active key of NAME (or the key with that id). A running server "
        "picks up changes within --reload-interval.",
    )
    ak = p.add_subparsers(dest="apikey_command", metavar="ACTION", required=True)
    for action, text in (("add", "create a key and print its token"),
                         ("revoke", "revoke the keys of NAME (or a key id)"),
                         ("list", "list keys (never tokens)")):
        q = ak.add_parser(action, help=text, description=text, allow_abbrev=False)
        q.add_argument("--keys", required=True, metavar="FILE", help="keys file")
        if action != "list":
            q.add_argument("name", metavar="NAME")
        if action == "add":
            q.add_argument("--rate", type=_float_arg(0.001), default=None,
                           help="requests/s for this key (default: the server's)")
            q.add_argument("--burst", type=_float_arg(1), default=None,
                           help="bucket size for this key (default: the server's)")
    p.set_defaults(func=_cmd_apikey)
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
        from hashlookup.match.keys import DEFAULT_CHUNK_SIZE

        args.chunk_size = DEFAULT_CHUNK_SIZE

    from hashlookup import HashLookupError

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
