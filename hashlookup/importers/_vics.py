"""Format "vics": Project VIC VICS JSON exports (data models 1.x and 2.0).

    {"odata.metadata": "http://github.com/ICMEC/ProjectVic/DataModels/1.3.xml#Media",
     "value": [ {"MediaID": 1, "Category": 1, "MD5": "...", "SHA1": "...",
                 "MediaSize": 1234, "IsDistributed": true,
                 "MediaFiles": [ {"MD5": "...", "SHA1": "...", "FileSize": 1234,
                                  "FileName": "..."} ]}, ... ]}

(2.0 names the first key "@odata.context".)  The document is streamed: the
top-level object and the "value" array are walked by hand, and each Media
object is decoded by the json module's C scanner on a buffer refilled from
the file, so memory stays bounded by the largest single Media object (at
most MAX_VALUE characters) whatever the file size.

Record attributes are kept only when the builder names them (attributes=,
`--attribute`): the fields of that name, a MediaFile's own or else its
Media's (file names in abuse lists can be sensitive: none by default).
"""

from __future__ import annotations

import io
import json
import json.scanner
import re
from collections.abc import Iterator
from typing import Any

import numpy as np

from hashlookup.errors import InputError
from hashlookup.importers._common import assemble, quote, sniff_encoding
from hashlookup.importers._records import RecordBatch, _Options

CHUNK_CHARS = 4 << 20  # characters read at a time
MAX_VALUE = 64 << 20  # largest single JSON value (a Media with its files)
SURE_ERROR = 1 << 20  # a syntax error this far before the buffer end is
#                            real, not the buffer cutting a value short
_WS = re.compile(r"[ \t\n\r]*")  # matches anywhere: .match() is never None
_VERSION = re.compile(r"DataModels/(\d+(?:\.\d+)*)")

LABEL_DISTRIBUTED = "vics:distributed"
LABEL_PRECATEGORIZED = "vics:precategorized"
_BOOL_LABELS = (
    ("IsDistributed", LABEL_DISTRIBUTED),
    ("IsPrecategorized", LABEL_PRECATEGORIZED),
)
_TRUE = {"true": True, "1": True, "false": False, "0": False, "": False}


class _Fatal(InputError):
    """A structural error: the document cannot be read further."""


class _Stream:
    """A text buffer over a file with JSON scanning helpers."""

    def __init__(self, f: io.TextIOBase, name: str):
        self.f = f
        self.name = name
        self.buf = ""
        self.pos = 0
        self.eof = False
        self.line = 1  # line number of buf[0]
        self.col = 1  # column of buf[0]
        # typeshed types the context as a scanner; it is the decoder
        self.scan = json.scanner.make_scanner(json.JSONDecoder())  # type: ignore[arg-type]

    def more(self) -> bool:
        """Append text to the buffer (dropping what was consumed); False at
        the end of the file."""
        if self.eof:
            return False
        if self.pos:
            nl = self.buf.count("\n", 0, self.pos)
            if nl:
                self.line += nl
                self.col = self.pos - self.buf.rfind("\n", 0, self.pos)
            else:
                self.col += self.pos
            self.buf = self.buf[self.pos :]
            self.pos = 0
        new = self.f.read(max(CHUNK_CHARS, len(self.buf)))
        if not new:
            self.eof = True
            return False
        self.buf += new
        return True

    def where(self, pos: int) -> str:
        """'line L column C' of buffer position pos."""
        nl = self.buf.count("\n", 0, pos)
        if nl:
            col = pos - self.buf.rfind("\n", 0, pos)
            return f"line {self.line + nl} column {col}"
        return f"line {self.line} column {self.col + pos}"

    def peek(self) -> str:
        """The next non-blank character ("" at the end of the file)."""
        while True:
            self.pos = _WS.match(self.buf, self.pos).end()  # type: ignore[union-attr]
            if self.pos < len(self.buf) or not self.more():
                return self.buf[self.pos] if self.pos < len(self.buf) else ""

    def expect(self, chars: str, what: str) -> str:
        c = self.peek()
        if not c or c not in chars:
            got = (
                quote(self.buf[self.pos : self.pos + 20])
                if c
                else "the end of the file"
            )
            self.fail(f"expected {what}, got {got}", self.pos)
        self.pos += 1
        return c

    def fail(self, msg: str, pos: int, context: str = "") -> None:
        context = f" {context}:" if context else ""
        raise _Fatal(
            f"{self.name}:{context} malformed JSON at {self.where(pos)}: {msg}"
        )

    def value(self, context: str | int) -> object:
        """Decode the JSON value that starts at the next non-blank char
        (context: how errors name it; an int i means "value[i]")."""
        buf = self.buf
        pos = _WS.match(buf, self.pos).end()  # type: ignore[union-attr]
        if pos < len(buf) and buf[pos] == "{":  # the usual case: a Media
            try:
                obj, end = self.scan(buf, pos)
                if end < len(buf):
                    self.pos = end
                    return obj
            except (StopIteration, json.JSONDecodeError):
                pass
        if isinstance(context, int):
            context = f"value[{context}]"
        self.peek()
        while True:
            err = None
            try:
                obj, end = self.scan(self.buf, self.pos)
            except StopIteration as e:
                err = ("expected a value", e.value)
            except json.JSONDecodeError as e:
                err = (e.msg, e.pos)
            else:
                # A value ending at the buffer end may be cut short (a number).
                if end < len(self.buf) or self.eof:
                    self.pos = end
                    return obj
            if err is not None and (len(self.buf) - err[1] > SURE_ERROR or self.eof):
                self.fail(err[0], err[1], context)
            if len(self.buf) - self.pos > MAX_VALUE:
                raise _Fatal(
                    f"{self.name}: {context}: a JSON value longer than "
                    f"{MAX_VALUE >> 20} MiB characters (starting at "
                    f"{self.where(self.pos)})"
                )
            # Read on (at the end of the file this sets eof, and the value is
            # scanned once more so that positions refer to the new buffer).
            self.more()


def read(opts: _Options) -> Iterator[RecordBatch]:
    with opts.open() as raw:
        encoding, bom = sniff_encoding(raw.read(4))
        raw.seek(bom)
        f = io.TextIOWrapper(raw, encoding=encoding, errors="replace")
        stream = _Stream(f, opts.name)
        acc = _Accumulator(opts)
        try:
            yield from _document(stream, acc)
        except _Fatal:
            # Report an earlier bad record first: it comes before in the file.
            if acc.rows:
                yield from acc.flush()
            raise
        if acc.rows:
            yield from acc.flush()


def _document(s: _Stream, acc: _Accumulator) -> Iterator[RecordBatch]:
    first = s.peek()
    if not first:
        return  # an empty (or blank) file: no records
    if first != "{":
        s.expect("{", "a JSON object (a VICS export) at the top level")
    s.pos += 1
    seen_value = False
    if s.peek() == "}":
        s.pos += 1
    else:
        while True:
            s.peek()
            at = s.pos
            key = s.value("a key")
            if not isinstance(key, str):
                s.fail("expected a property name in double quotes", at)
            s.expect(":", "':'")
            if key == "value":
                if seen_value:
                    raise _Fatal(f'{s.name}: repeated "value" array')
                seen_value = True
                yield from _media_array(s, acc)
            else:
                val = s.value(f"property {key!r}")
                if key in ("odata.metadata", "@odata.context") and isinstance(val, str):
                    m = _VERSION.search(val)
                    acc.opts.report.version = m.group(1) if m else ""
            if s.expect(",}", "',' or '}'") == "}":
                break
    if s.peek():
        s.fail("data after the end of the JSON document", s.pos)
    if not seen_value:
        raise _Fatal(
            f'{s.name}: no "value" array of Media in the JSON object '
            f"(not a VICS export?)"
        )


def _media_array(s: _Stream, acc: _Accumulator) -> Iterator[RecordBatch]:
    if s.peek() != "[":
        s.fail("expected the \"value\" array ('[')", s.pos)
    s.pos += 1
    if s.peek() == "]":
        s.pos += 1
        return
    index = 0
    bs = acc.opts.batch_size
    media = acc.media
    while True:
        media(s.value(index), index)
        if len(acc.rows) >= bs:
            yield from acc.flush()
        # The usual case inline: a comma right after the value.
        if s.pos < len(s.buf) and s.buf[s.pos] == ",":
            s.pos += 1
        elif s.expect(",]", f"',' or ']' after value[{index}]") == "]":
            return
        index += 1


def _present(v: object) -> bool:
    """Is a digest field given (not null, empty or blank)?"""
    return v is not None and v != "" and not (type(v) is str and v.isspace())


def _same(a: object, b: object) -> bool:
    """Do two given digest fields hold the same digest (any case)?"""
    return a == b or (
        type(a) is str and type(b) is str and a.strip().lower() == b.strip().lower()
    )


def _covered(new: tuple[object, ...], old: tuple[object, ...]) -> bool:
    """Does record `old` have every digest that `new` has, same values?"""
    for a, b in zip(new, old, strict=False):
        if _present(a) and not (_present(b) and _same(a, b)):
            return False
    return True


class _Accumulator:
    """Raw values of the records read since the last flush."""

    def __init__(self, opts: _Options):
        self.opts = opts
        self.report = opts.report
        self.categories: dict[object, str] = {}
        self.names = list(opts.attributes or {})
        self._reset()

    def _reset(self) -> None:
        self.rows: list[tuple[int, object, int]] = []  # (index, MediaID, file)
        self.md5: list[Any] = []
        self.sha1: list[Any] = []
        self.sha256: list[Any] = []
        self.size: list[Any] = []
        self.labels: dict[str, list[int]] = {}
        self.bad: dict[int, str] = {}
        self.attrs: dict[str, list[str | None]] = {n: [] for n in self.names}

    def _add(
        self,
        where: tuple[int, object, int],
        md5: Any,
        sha1: Any,
        sha256: Any,
        size: Any,
        fields: tuple[dict[str, Any], ...] = (),
    ) -> None:
        # None -> "" keeps the hex columns all-str for the vectorised decoder.
        self.rows.append(where)
        self.md5.append("" if md5 is None else md5)
        self.sha1.append("" if sha1 is None else sha1)
        self.sha256.append("" if sha256 is None else sha256)
        self.size.append(size)
        for name, values in self.attrs.items():
            # the first of the objects (a MediaFile, then its Media) with it
            v = next((f[name] for f in fields if f.get(name) is not None), None)
            values.append(None if v is None else _attribute_text(v))

    def _bad(self, where: tuple[int, object, int], msg: str) -> None:
        """A bad Media or MediaFile: a placeholder record with the message."""
        self.bad[len(self.rows)] = msg
        self._add(where, None, None, None, None)

    def media(self, obj: object, index: int) -> None:
        report = self.report
        report.media += 1
        if type(obj) is not dict:
            self._bad(
                (index, None, -1),
                f"expected a Media object, got {type(obj).__name__} {quote(obj)}",
            )
            return
        get = obj.get
        mid = get("MediaID")
        first = len(self.rows)
        md5, sha1, sha256 = get("MD5"), get("SHA1"), get("SHA256")
        if sha1 is None:
            sha1 = get("SHA-1")
        if sha256 is None:
            sha256 = get("SHA-256")
        own = _present(md5) or _present(sha1) or _present(sha256)
        if own:
            self._add((index, mid, -1), md5, sha1, sha256, get("MediaSize"), (obj,))
        else:
            report.no_digest += 1
        files = get("MediaFiles")
        if files:
            if type(files) is not list:
                self._bad(
                    (index, mid, -1),
                    f"MediaFiles: expected an array, got "
                    f"{type(files).__name__} {quote(files)}",
                )
            else:
                emitted = [(md5, sha1, sha256)] if own else []
                for j, mf in enumerate(files):
                    self._media_file(mf, (index, mid, j), emitted, obj)
        end = len(self.rows)
        if end == first:
            return
        # The Media's labels go to its own record and its files'.
        cat = get("Category")
        problem = ""
        if cat is not None:
            label = self.categories.get(cat) if type(cat) in (int, str) else None
            if label is None:
                label = _category(cat)
                if label is None:
                    problem = (
                        f"Category: expected an integer, got "
                        f"{type(cat).__name__} {quote(cat)}"
                    )
                else:
                    self.categories[cat] = label
            if label:
                self._label(label, first, end)
        for field, name in _BOOL_LABELS:
            v = get(field)
            if v is None or v is False:
                continue
            if v is not True:
                flag = _flag(v)
                if flag is None:
                    problem = problem or (
                        f"{field}: expected true or false, got "
                        f"{type(v).__name__} {quote(v)}"
                    )
                    continue
                if not flag:
                    continue
            self._label(name, first, end)
        if problem:
            for i in range(first, end):
                self.bad.setdefault(i, problem)

    def _label(self, label: str, first: int, end: int) -> None:
        got = self.labels.get(label)
        if got is None:
            self.labels[label] = got = []
        if end == first + 1:
            got.append(first)
        else:
            got.extend(range(first, end))

    def _media_file(
        self,
        mf: object,
        here: tuple[int, object, int],
        emitted: list[tuple[Any, ...]],
        media: dict[str, Any],
    ) -> None:
        if type(mf) is not dict:
            self._bad(
                here,
                f"expected a MediaFile object, got {type(mf).__name__} {quote(mf)}",
            )
            return
        get = mf.get
        md5, sha1, sha256 = get("MD5"), get("SHA1"), get("SHA256")
        if sha1 is None:
            sha1 = get("SHA-1")
        if sha256 is None:
            sha256 = get("SHA-256")
        key = (md5, sha1, sha256)
        if emitted and key == emitted[0]:  # the usual repeat of the Media
            self.report.duplicates += 1
            return
        if not (_present(md5) or _present(sha1) or _present(sha256)):
            self.report.no_digest += 1
            return
        for prev in emitted:
            # Dropped if an earlier record of this Media has every digest this
            # file has, with the same values.
            if _covered(key, prev):
                self.report.duplicates += 1
                return
        emitted.append(key)
        self._add(here, md5, sha1, sha256, get("FileSize"), (mf, media))

    def flush(self) -> Iterator[RecordBatch]:
        """Batches of the records read since the last flush (a Media with
        many files can take the count past batch_size: split)."""
        rows = self.rows

        def where(i: int) -> str:
            index, mid, j = rows[i]
            text = f": value[{index}]"
            if mid is not None:
                text += f" (MediaID {mid})"
            return text + (f" MediaFiles[{j}]" if j >= 0 else "")

        batch = assemble(
            self.opts,
            len(rows),
            {
                "md5": (self.md5, "MD5"),
                "sha1": (self.sha1, "SHA1"),
                "sha256": (self.sha256, "SHA256"),
            },
            (self.size, "size"),
            self.labels,
            self.bad,
            where,
            attributes=self.attrs,
        )
        self._reset()
        return split(batch, self.opts.batch_size)


def _flag(v: object) -> bool | None:
    """A VICS boolean: JSON true/false, "true"/"false" in any case, 1/0;
    None if it is none of them ("" counts as false)."""
    if type(v) is str:
        return _TRUE.get(v.strip().lower())
    if type(v) is int and v in (0, 1):
        return bool(v)
    return None


def _category(cat: object) -> str | None:
    """ "category:N" for an integer or decimal text, "" for empty text, None
    if bad."""
    if type(cat) is int:
        return f"category:{cat}"
    if isinstance(cat, str):
        s = cat.strip()
        if not s:
            return ""
        t = s[1:] if s[:1] in "+-" else s
        if t.isascii() and t.isdigit():
            return f"category:{int(s)}"
    return None


def split(batch: RecordBatch, size: int) -> Iterator[RecordBatch]:
    """Pieces of at most size records."""
    n = len(batch)
    if n <= size:
        yield batch
        return
    for start in range(0, n, size):
        stop = min(start + size, n)
        labels = {}
        for label, idx in batch.labels.items():
            lo, hi = np.searchsorted(idx, [start, stop])
            if hi > lo:
                labels[label] = idx[lo:hi] - start
        yield RecordBatch(
            md5=batch.md5[start:stop],
            sha1=batch.sha1[start:stop],
            sha256=batch.sha256[start:stop],
            has_md5=batch.has_md5[start:stop],
            has_sha1=batch.has_sha1[start:stop],
            has_sha256=batch.has_sha256[start:stop],
            size=batch.size[start:stop],
            labels=labels,
            attributes={k: v[start:stop] for k, v in batch.attributes.items()},
        )


def _attribute_text(v: object) -> str | None:
    """A VICS field as an attribute value: text as it is (lone surrogates
    from JSON escapes replaced: values are stored as UTF-8), numbers and
    booleans as JSON writes them, arrays and objects as compact JSON; empty
    text is no value."""
    if isinstance(v, str):
        text = v
    elif isinstance(v, (bool, int, float)):
        text = json.dumps(v)
    else:
        text = json.dumps(v, ensure_ascii=False, separators=(",", ":"))
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text or None
