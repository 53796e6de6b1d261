"""Output writers shared by the commands: the byte writer over stdout, JSON
lines and CSV rendering, sizes and the text form of ``info``.

Match output reproduces input lines byte for byte, so everything here
produces bytes (undecodable input bytes travel as lone surrogates from
``surrogateescape`` and are written back as the same bytes).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO, TextIO

    import numpy as np
else:
    from hashlookup._lazy import numpy as np

_CSV_SPECIAL = re.compile(r'[",\r\n]')

# json and csv are imported by the functions that use them: every command
# imports this module (through the Context), few write JSON or CSV, and
# `hashlookup --help` should not pay for them.


class Output:
    """Byte-oriented writer over a text stream (``sys.stdout``).

    Parameters
    ----------
    stream
        Written through its binary ``buffer`` when it has one (so input lines
        come out unchanged), else as text decoded with ``surrogateescape``.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._buffer: BinaryIO | None = getattr(stream, "buffer", None)
        stream.flush()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Write ``data`` as it is."""
        if self._buffer is not None:
            self._buffer.write(data)
        else:
            self._stream.write(bytes(data).decode("utf-8", "surrogateescape"))

    def line(self, text: str) -> None:
        """Write ``text`` and a newline."""
        self.write(text.encode("utf-8", "surrogateescape") + b"\n")

    def flush(self) -> None:
        """Flush the binary buffer and the text stream."""
        if self._buffer is not None:
            self._buffer.flush()
        self._stream.flush()


def human_size(n: int) -> str:
    """``n`` bytes in binary units: ``"512 B"``, ``"11.1 MiB"``."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def json_default(obj: Any) -> Any:
    """``json.dumps(default=)`` for what the library's facts hold: numpy
    scalars and arrays, bytes (as hex), sets and tuples, paths."""
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


def json_line(record: dict[str, Any]) -> bytes:
    """One JSON object and a newline, UTF-8 (``\\udcXX`` escapes for
    undecodable input bytes)."""
    import json

    text = json.dumps(record, ensure_ascii=False, default=json_default)
    try:
        return text.encode("utf-8") + b"\n"
    except UnicodeEncodeError:  # undecodable input bytes (surrogates): escape them
        return json.dumps(record, default=json_default).encode("ascii") + b"\n"


def json_str(text: str) -> str:
    """JSON string literal of ``text``; undecodable input bytes (lone surrogates
    from ``surrogateescape``) are written as ``\\udcXX`` escapes."""
    from json.encoder import encode_basestring, encode_basestring_ascii

    quoted: str = encode_basestring(text)
    try:
        quoted.encode("utf-8")
    except UnicodeEncodeError:
        quoted = encode_basestring_ascii(text)
    return quoted


def csv_field(text: str) -> str:
    """``text`` as one CSV field, quoted as csv.writer (QUOTE_MINIMAL) quotes."""
    if _CSV_SPECIAL.search(text) is None:
        return text
    return '"' + text.replace('"', '""') + '"'


def csv_rows(rows: Sequence[Sequence[object]]) -> bytes:
    """Rows written by csv.writer, newline-terminated, as bytes."""
    import csv
    import io

    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue().encode("utf-8", "surrogateescape")


def jsonl_matches(
    numbers: list[int],
    digests: list[str],
    texts: list[str],
    extras: list[str] | None = None,
) -> bytes:
    """``{"line": N, "digest": "...", "text": "..."}`` lines (as json.dumps);
    ``extras[i]`` (pre-rendered ``, "key": value`` members) is appended to the
    i-th object."""
    from json.encoder import encode_basestring

    tails = extras if extras is not None else [""] * len(numbers)
    records = [
        f'{{"line": {n}, "digest": "{d}", "text": {encode_basestring(t)}{x}}}\n'
        for n, d, t, x in zip(numbers, digests, texts, tails, strict=True)
    ]
    try:
        return "".join(records).encode("utf-8")
    except UnicodeEncodeError:  # rare: some line is not valid UTF-8
        return "".join(
            f'{{"line": {n}, "digest": "{d}", "text": {json_str(t)}{x}}}\n'
            for n, d, t, x in zip(numbers, digests, texts, tails, strict=True)
        ).encode("utf-8")


def csv_matches(
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


def match_records(
    fmt: str,
    name: str | None,
    where: str,
    numbers: list[int],
    digests: list[str],
    texts: list[str] | None,
    extras: list[str] | None,
) -> bytes:
    """JSON lines (``fmt == "jsonl"``) or CSV rows of hits with a ``file``
    member (``name``, with several inputs) and a ``where`` number (``"line"``
    or ``"row"``); ``texts`` (text inputs only) and the pre-rendered
    ``extras`` are added to each."""
    tails = extras if extras is not None else [""] * len(numbers)
    parts = []
    if fmt == "jsonl":
        head = f'{{"file": {json_str(name)}, ' if name is not None else "{"
        for i, (n, d, x) in enumerate(zip(numbers, digests, tails, strict=True)):
            text = f', "text": {json_str(texts[i])}' if texts is not None else ""
            parts.append(f'{head}"{where}": {n}, "digest": "{d}"{text}{x}}}\n')
    else:
        head = f"{csv_field(name)}," if name is not None else ""
        for i, (n, d, x) in enumerate(zip(numbers, digests, tails, strict=True)):
            text = f",{csv_field(texts[i])}" if texts is not None else ""
            parts.append(f"{head}{n},{d}{text}{x}\n")
    return "".join(parts).encode("utf-8", "surrogateescape")


def render_info(value: Any, key: str = "", indent: int = 0) -> list[str]:
    """The text lines of a nested dict of facts (``info``, ``update``):
    ``key: value``, nested dicts and lists indented by two spaces, sizes of
    1 KiB and more followed by their human form."""
    pad = "  " * indent
    label = f"{key}:" if key else ""
    if isinstance(value, dict):
        lines = [f"{pad}{label}"] if key else []
        sub = indent + 1 if key else indent
        for k, v in value.items():
            lines += render_info(v, str(k), sub)
        if key and len(lines) == 1:
            lines[0] += " {}"
        return lines
    if isinstance(value, (list, tuple)) and any(
        isinstance(v, (dict, list, tuple)) for v in value
    ):
        lines = [f"{pad}{label}"]
        for i, v in enumerate(value):
            lines += render_info(v, f"[{i}]", indent + 1)
        return lines
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, (list, tuple)):
        text = ", ".join(
            str(json_default(v) if not isinstance(v, (str, int, float)) else v)
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
            text += f" ({human_size(value)})"
    elif isinstance(value, float):
        text = f"{value:g}"
    else:
        text = str(value)
    return [f"{pad}{label} {text}" if key else f"{pad}{text}"]
