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
"""

from __future__ import annotations

import io
import json
import json.scanner
import re
from collections.abc import Iterator

import numpy as np

from hashlookup.errors import InputError
from hashlookup.importers._common import assemble, quote, sniff_encoding
from hashlookup.importers._records import RecordBatch, _Options

CHUNK_CHARS = 4 << 20      # characters read at a time
MAX_VALUE = 64 << 20       # largest single JSON value (a Media with its files)
SURE_ERROR = 1 << 20       # a syntax error this far before the buffer end is
#                            real, not the buffer cutting a value short
_WS = re.compile(r"[ \t\n\r]*")
_VERSION = re.compile(r"DataModels/(\d+(?:\.\d+)*)")

LABEL_DISTRIBUTED = "vics:distributed"
LABEL_PRECATEGORIZED = "vics:precategorized"
_BOOL_LABELS = (("IsDistributed", LABEL_DISTRIBUTED),
                ("IsPrecategorized", LABEL_PRECATEGORIZED))
_TRUE = {"true": True, "1": True, "false": False, "0": False, "": None}


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
        self.line = 1       # line number of buf[0]
        self.col = 1        # column of buf[0]
        self.scan = json.scanner.make_scanner(json.JSONDecoder())

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
            self.buf = self.buf[self.pos:]
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
            self.pos = _WS.match(self.buf, self.pos).end()
            if self.pos < len(self.buf) or not self.more():
                return self.buf[self.pos] if self.pos < len(self.buf) else ""

    def expect(self, chars: str, what: str) -> str:
        c = self.peek()
        if not c or c not in chars:
            self.fail(f"expected {what}, got "
                      f"{quote(self.buf[self.pos:self.pos + 20]) if c else 'the end of the file'}",
                      self.pos)
        self.pos += 1
        return c

    def fail(self, msg: str, pos: int, context: str = "") -> None:
        context = f" {context}" if context else ""
        raise _Fatal(f"{self.name}:{context} malformed JSON at {self.where(pos)}: "
                     f"{msg}")

    def value(self, context: str) -> object:
        """Decode the JSON value that starts at the next non-blank char."""
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
                raise _Fatal(f"{self.name}: {context}: a JSON value longer than "
                             f"{MAX_VALUE >> 20} MiB characters (starting at "
                             f"{self.where(self.pos)})")
            if not self.more() and err is not None:
                self.fail(err[0], err[1], context)


def read(opts: _Options) -> Iterator[RecordBatch]:
    with open(opts.path, "rb") as raw:
        head = raw.read(4)
        if not head.strip():
            return   # an empty file: no records
        encoding, bom = sniff_encoding(head)
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
    if s.peek() != "{":
        s.expect("{", "a JSON object (a VICS export) at the top level")
    s.pos += 1
    seen_value = False
    if s.peek() == "}":
        s.pos += 1
    else:
        while True:
            key = s.value("a key")
            if not isinstance(key, str):
                s.fail("expected a property name in double quotes", s.pos)
            s.expect(":", "':'")
            if key == "value":
                if seen_value:
                    raise _Fatal(f"{s.name}: repeated \"value\" array")
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
        raise _Fatal(f"{s.name}: no \"value\" array of Media in the JSON object "
                     f"(not a VICS export?)")


def _media_array(s: _Stream, acc: _Accumulator) -> Iterator[RecordBatch]:
    if s.peek() != "[":
        s.fail("expected the \"value\" array ('[')", s.pos)
    s.pos += 1
    if s.peek() == "]":
        s.pos += 1
        return
    index = 0
    bs = acc.opts.batch_size
    while True:
        acc.media(s.value(f"value[{index}]"), index)
        if len(acc.rows) >= bs:
            yield from acc.flush()
        if s.expect(",]", f"',' or ']' after value[{index}]") == "]":
            return
        index += 1


def _norm(v: object) -> object:
    return v.strip().lower() if isinstance(v, str) else v


def _present(v: object) -> bool:
    return v is not None and not (isinstance(v, str) and not v.strip())


class _Accumulator:
    """Raw values of the records read since the last flush."""

    def __init__(self, opts: _Options):
        self.opts = opts
        self.report = opts.report
        self.categories: dict[object, str] = {}
        self._reset()

    def _reset(self) -> None:
        self.rows: list[tuple[int, object, int]] = []  # (index, MediaID, file)
        self.md5: list = []
        self.sha1: list = []
        self.sha256: list = []
        self.size: list = []
        self.labels: dict[str, list[int]] = {}
        self.bad: dict[int, str] = {}

    def _add(self, where: tuple[int, object, int], md5, sha1, sha256, size) -> int:
        self.rows.append(where)
        self.md5.append(md5)
        self.sha1.append(sha1)
        self.sha256.append(sha256)
        self.size.append(size)
        return len(self.rows) - 1

    def _bad(self, where: tuple[int, object, int], msg: str) -> None:
        """A bad Media or MediaFile: a placeholder record with the message."""
        self.bad[self._add(where, None, None, None, None)] = msg

    def media(self, obj: object, index: int) -> None:
        self.report.media += 1
        if type(obj) is not dict:
            self._bad((index, None, -1), f"expected a Media object, got "
                      f"{type(obj).__name__} {quote(obj)}")
            return
        mid = obj.get("MediaID")
        here = (index, mid, -1)
        labels, problem = self._labels(obj)
        first = len(self.rows)
        # The Media's own digests, then each MediaFile's.
        md5, sha1, sha256 = obj.get("MD5"), obj.get("SHA1"), obj.get("SHA256")
        if sha1 is None:
            sha1 = obj.get("SHA-1")
        if sha256 is None:
            sha256 = obj.get("SHA-256")
        emitted: list[tuple[object, object, object]] = []
        if _present(md5) or _present(sha1) or _present(sha256):
            self._add(here, md5, sha1, sha256, obj.get("MediaSize"))
            emitted.append((_norm(md5), _norm(sha1), _norm(sha256)))
        else:
            self.report.no_digest += 1
        files = obj.get("MediaFiles")
        if files is not None:
            if type(files) is not list:
                self._bad(here, f"MediaFiles: expected an array, got "
                          f"{type(files).__name__} {quote(files)}")
            else:
                for j, mf in enumerate(files):
                    self._media_file(mf, (index, mid, j), emitted)
        rows = range(first, len(self.rows))
        if problem:
            for i in rows:
                self.bad.setdefault(i, problem)
        if labels and rows:
            for label in labels:
                got = self.labels.get(label)
                if got is None:
                    self.labels[label] = list(rows)
                else:
                    got.extend(rows)

    def _media_file(self, mf: object, here: tuple[int, object, int],
                    emitted: list[tuple[object, object, object]]) -> None:
        if type(mf) is not dict:
            self._bad(here, f"expected a MediaFile object, got "
                      f"{type(mf).__name__} {quote(mf)}")
            return
        md5, sha1, sha256 = mf.get("MD5"), mf.get("SHA1"), mf.get("SHA256")
        if sha1 is None:
            sha1 = mf.get("SHA-1")
        if sha256 is None:
            sha256 = mf.get("SHA-256")
        has = (_present(md5), _present(sha1), _present(sha256))
        if not any(has):
            self.report.no_digest += 1
            return
        key = (_norm(md5), _norm(sha1), _norm(sha256))
        for prev in emitted:
            # Dropped if an earlier record of this Media has every digest this
            # file has, with the same values.
            if all(not h or k == p for h, k, p in zip(has, key, prev)):
                self.report.duplicates += 1
                return
        emitted.append(key)
        self._add(here, md5, sha1, sha256, mf.get("FileSize"))

    def _labels(self, obj: dict) -> tuple[list[str], str]:
        """Labels of a Media and a message if a labelling field is bad."""
        labels = []
        problem = ""
        cat = obj.get("Category")
        if cat is not None:
            label = self.categories.get(cat) if type(cat) in (int, str) else None
            if label is None:
                label = _category(cat)
                if label is None:
                    problem = (f"Category: expected an integer, got "
                               f"{type(cat).__name__} {quote(cat)}")
                else:
                    self.categories[cat] = label
            if label:
                labels.append(label)
        for field, name in _BOOL_LABELS:
            v = obj.get(field)
            if v is None or v is False:
                continue
            if v is not True:
                flag = _TRUE.get(v.strip().lower(), "bad") if isinstance(v, str) \
                    else (bool(v) if type(v) is int and v in (0, 1) else "bad")
                if flag == "bad":
                    problem = problem or (f"{field}: expected true or false, got "
                                          f"{type(v).__name__} {quote(v)}")
                    continue
                if not flag:
                    continue
            labels.append(name)
        return labels, problem

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

        batch = assemble(self.opts, len(rows),
                         {"md5": (self.md5, "MD5"), "sha1": (self.sha1, "SHA1"),
                          "sha256": (self.sha256, "SHA256")},
                         (self.size, "size"), self.labels, self.bad, where)
        self._reset()
        return split(batch, self.opts.batch_size)


def _category(cat: object) -> str | None:
    """"category:N" for an integer or decimal text, "" for empty text, None
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
            md5=batch.md5[start:stop], sha1=batch.sha1[start:stop],
            sha256=batch.sha256[start:stop], has_md5=batch.has_md5[start:stop],
            has_sha1=batch.has_sha1[start:stop],
            has_sha256=batch.has_sha256[start:stop], size=batch.size[start:stop],
            labels=labels)
