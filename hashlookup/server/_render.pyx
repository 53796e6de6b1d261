"""hashlookup.server._render: the lookup service's answers to single
digests, and its audit lines, written in C.

HitRenderer answers GET /lookup/<algorithm>/<digest> in one call (decode,
look up, read the record, render the CIRCL record and the audit line);
append_audit_line writes one audit log line.  The record JSON up to its
labels comes from csrc/server/hl_render.c.  This is the service's wire
format: the generic core (hashlookup._core) knows none of it, and this
module reaches the core's tables through hashlookup/_core.pxd.
"""

from cpython.bytes cimport (PyBytes_AS_STRING, PyBytes_FromStringAndSize,
                            PyBytes_GET_SIZE)
from libc.stdint cimport int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcpy
from posix.time cimport CLOCK_REALTIME, clock_gettime, timespec

cimport hl
cimport hl_render
from hashlookup._core cimport KeyTable, RecordTable

from hashlookup.algorithms import DIGESTS as _DIGESTS


cdef extern from "Python.h":
    const char *PyUnicode_AsUTF8AndSize(object s, Py_ssize_t *size) except NULL
    bint PyUnicode_IS_ASCII(object s)
    char *PyByteArray_AS_STRING(object b)
    Py_ssize_t PyByteArray_GET_SIZE(object b)
    int PyByteArray_Resize(object b, Py_ssize_t size) except -1

cdef extern from *:
    void __builtin_prefetch(const void *addr) noexcept nogil

cdef extern from "<time.h>" nogil:
    ctypedef long time_t
    struct tm:
        pass
    tm *gmtime_r(const time_t *timep, tm *result)
    size_t strftime(char *s, size_t maxsize, const char *fmt, const tm *t)


# The digest algorithms by index, 0 md5, 1 sha1, 2 sha256: the order of a
# record's digests (RecordTable, hl_record_view) and of HitRenderer's tables.
cdef tuple _NAMES = tuple([a.name for a in _DIGESTS])
cdef size_t _WIDTH[3]
cdef Py_ssize_t _NAME_LEN[3]   # compared first: a mismatch costs no call
if len(_DIGESTS) != 3:
    raise ImportError("hashlookup.server._render renders records of three digests, "
                      f"hashlookup.algorithms lists {len(_DIGESTS)}")
for _i, _a in enumerate(_DIGESTS):
    _WIDTH[_i] = _a.width
    _NAME_LEN[_i] = len(_a.name)


cdef inline void _heads(RecordTable reader, int algorithm, uint32_t rid, char *circl,
                        size_t *c_len, char *native, size_t *n_len) noexcept:
    """Write the JSON of record `rid` of `reader` (< the record count: from
    _record_of), found by `algorithm`, up to its labels, in the two forms
    of the lookup service (hl_render.h), into circl and native
    (HL_HEAD_MAX bytes each); their lengths go to c_len and n_len.
    native NULL: the CIRCL form only."""
    cdef hl_render.hl_record_view view
    cdef uint64_t size = reader._size(rid)
    cdef int a
    for a in range(3):
        view.digest[a] = reader._digest(rid, a)
        view.width[a] = reader._c_width[a]
        if view.digest[a] != NULL:   # read in parallel, not one by one
            __builtin_prefetch(view.digest[a])
    # sizes of 2**63 and more mean "unknown" (as in RecordTable.hit())
    view.size = size if <int64_t>size >= 0 else <uint64_t>0xFFFFFFFFFFFFFFFF
    view.id = rid
    c_len[0] = hl_render.hl_render_circl_head(&view, circl)
    if native != NULL:
        n_len[0] = hl_render.hl_render_native_head(&view, algorithm, native)


cdef inline bytes _joined(const char *head, size_t head_len, bytes a, bytes b):
    """head + a + b as one new bytes object (one allocation, no temporaries)."""
    cdef Py_ssize_t la = PyBytes_GET_SIZE(a), lb = PyBytes_GET_SIZE(b)
    cdef bytes out = PyBytes_FromStringAndSize(NULL, <Py_ssize_t>head_len + la + lb)
    cdef char *p = PyBytes_AS_STRING(out)
    memcpy(p, head, head_len)
    memcpy(p + head_len, PyBytes_AS_STRING(a), <size_t>la)
    memcpy(p + head_len + la, PyBytes_AS_STRING(b), <size_t>lb)
    return out


# HitRenderer.answer for what is not a hit.
ANSWER_MISS = 0        # a digest the generation does not hold (or drops)
ANSWER_INVALID = 1     # not a hex digest of the algorithm asked for
ANSWER_UNKNOWN = 2     # not md5, sha1 or sha256


cdef class HitRenderer:
    """Single-digest lookups of one dataset generation answered in one call:
    for a hit, the lookup service's CIRCL record (the body of GET
    /lookup/...) and its native record (the audit log's), byte for byte what
    hashlookup.server._check.circl_json / native_json render from the Match,
    without the Match, a str per digest or a Python format per field.

    tables: the generation's (md5, sha1, sha256) key tables (None where it
    has none), all inside the mapping `reader` reads.  labels: its (name,
    bitmap) pairs (at most 64).  A record's labels are a bit mask, bit i set
    if it carries label i, read from `masks` (a C-contiguous array of one
    unsigned integer per record, of 1, 2, 4 or 8 bytes) when given, else
    one bitmap membership test per label.  The labels' JSON of each mask
    (label_json(tuple of names) -> bytes, called once per distinct set) is
    cached here.  drop: bit mask of labels whose records are not answered
    (the dataset's suppressed labels).  tail: the CIRCL record after its
    labels (dataset, generation, built, closing brace).  audit_middle: the
    audit log's line part between digest and record for this generation
    (see append_audit_line)."""
    cdef RecordTable _reader
    cdef tuple _tables
    cdef bytes _audit_middle
    cdef tuple _names
    cdef tuple _bitmaps
    cdef uint64_t _drop
    cdef object _label_json
    cdef dict _by_mask
    cdef bytes _tail
    cdef object _masks_owner
    cdef const uint8_t[::1] _masks_view
    cdef const uint8_t *_masks
    cdef int _mask_size

    def __init__(self, RecordTable reader, tuple tables, tuple labels, uint64_t drop,
                 object label_json, bytes tail, bytes audit_middle, object masks=None):
        cdef const uint8_t[::1] view
        cdef memoryview m
        cdef int a
        cdef KeyTable t
        if len(tables) != 3:
            raise ValueError("expected the md5, sha1 and sha256 tables (or None)")
        for a in range(3):
            t = tables[a]
            if t is not None and (t._c_table.keys != reader._c_keys[a]
                                  or t._c_table.width != reader._c_width[a]):
                raise ValueError(f"the {reader._c_algs[a]} table is not the one of "
                                 "the records' generation")
        if len(labels) > 64:
            raise ValueError(f"at most 64 labels, got {len(labels)}")
        self._reader = reader
        self._tables = tables
        self._names = tuple([pair[0] for pair in labels])
        self._bitmaps = tuple([pair[1] for pair in labels])
        self._drop = drop
        self._label_json = label_json
        self._by_mask = {}
        self._tail = tail
        self._audit_middle = audit_middle
        self._masks = NULL
        self._mask_size = 0
        if masks is not None:
            m = memoryview(masks)
            if (not m.c_contiguous or m.format not in ("B", "H", "I", "L", "Q")
                    or m.itemsize not in (1, 2, 4, 8) or m.ndim != 1
                    or <uint64_t>m.shape[0] != reader._c_count
                    or 8 * m.itemsize < len(labels)):
                raise ValueError("masks: expected one unsigned integer per record, "
                                 "wide enough for the labels")
            view = m.cast("B")
            self._masks_owner = masks
            self._masks_view = view
            if view.shape[0] > 0:
                self._masks = &view[0]
            self._mask_size = m.itemsize

    cdef uint64_t _mask_of(self, uint32_t rid) except? 0xFFFFFFFFFFFFFFFF:
        cdef uint64_t mask = 0
        cdef Py_ssize_t i
        cdef object id_
        if self._masks != NULL:
            # rid < the record count: checked by RecordTable._record_of
            if self._mask_size == 1:
                return self._masks[rid]
            if self._mask_size == 2:
                return (<const uint16_t *>self._masks)[rid]
            if self._mask_size == 4:
                return (<const uint32_t *>self._masks)[rid]
            return (<const uint64_t *>self._masks)[rid]
        id_ = rid
        for i in range(len(self._bitmaps)):
            if id_ in self._bitmaps[i]:
                mask |= (<uint64_t>1) << i
        return mask

    def answer(self, str algorithm, str digest, bytearray audit=None, bytes who=None):
        """The CIRCL record (bytes) of `digest` (hex, either case) if the
        generation holds it as a digest of `algorithm` ("md5", "sha1",
        "sha256"), and then, with `audit`, its audit log line appended to
        audit (append_audit_line: `who`, the digest in lowercase, the native
        record); else ANSWER_MISS (also for a record with a dropped label,
        or no table of that algorithm), ANSWER_INVALID or ANSWER_UNKNOWN."""
        cdef int a
        cdef Py_ssize_t n
        cdef size_t width, bad
        cdef const char *s
        cdef uint8_t key[64]
        cdef KeyTable t
        cdef int64_t row
        cdef Py_ssize_t name_len = len(algorithm) if algorithm is not None else -1
        for a in range(3):
            if name_len == _NAME_LEN[a] and algorithm == <str>_NAMES[a]:
                break
        else:
            return ANSWER_UNKNOWN
        width = _WIDTH[a]
        if not PyUnicode_IS_ASCII(digest):
            return ANSWER_INVALID
        s = PyUnicode_AsUTF8AndSize(digest, &n)
        if <size_t>n != 2 * width or hl.hl_hex_decode(<const uint8_t *>s, width, key,
                                                      &bad) != hl.HL_OK:
            return ANSWER_INVALID
        t = self._tables[a]
        if t is None:
            return ANSWER_MISS
        # The open check stays: an open table is one hl_table_init accepted,
        # the precondition of calling its kernel without hl_table_find's hop.
        if not t._c_open:
            t._ensure_open()   # raises the closed index's ValueError
        row = hl.hl_table_find_ready(&t._c_table, key)
        if row < 0:
            return ANSWER_MISS
        if audit is not None and who is None:
            raise TypeError("an audit line needs `who`")
        return self._render(a, row, audit, who, s, n)

    cdef object _render(self, int algorithm, int64_t row, bytearray audit, bytes who,
                        const char *digest, Py_ssize_t dlen):
        cdef char circl[hl_render.HL_HEAD_MAX]
        cdef char native[hl_render.HL_HEAD_MAX]
        cdef size_t c, n
        cdef Py_ssize_t i
        cdef uint32_t rid = self._reader._record_of(algorithm, row)
        if self._masks != NULL:
            # a cache miss of its own: under way while the record is read
            __builtin_prefetch(self._masks + <size_t>rid * <size_t>self._mask_size)
        # the native record is for the audit line only
        _heads(self._reader, algorithm, rid, circl, &c,
               native if audit is not None else NULL, &n)
        cdef uint64_t mask = self._mask_of(rid)
        if mask & self._drop:
            return ANSWER_MISS
        key = mask
        cdef object labels = self._by_mask.get(key)
        if labels is None:
            labels = self._label_json(tuple([self._names[i]
                                             for i in range(len(self._names))
                                             if mask >> i & 1]))
            if not isinstance(labels, bytes):
                raise TypeError("label_json must return bytes")
            if len(self._by_mask) >= 4096:   # bounded: many labels combine
                self._by_mask.clear()
            self._by_mask[key] = labels
        if audit is not None:
            # the native record (head, labels, "}") goes straight into the line
            _append_audit(audit, who, digest, dlen, self._audit_middle, native,
                          <Py_ssize_t>n, PyBytes_AS_STRING(<bytes>labels),
                          PyBytes_GET_SIZE(<bytes>labels), 1)
        return _joined(circl, c, <bytes>labels, self._tail)


# The audit log's time stamp up to the seconds, formatted once per second
# (strftime costs more than the rest of a line); the GIL guards it.
cdef time_t _stamp_second = -1
cdef char _stamp[40]
cdef size_t _stamp_len = 0


cdef int _append_audit(bytearray buf, bytes who, const char *digest, Py_ssize_t dlen,
                       bytes middle, const char *record, Py_ssize_t rlen,
                       const char *more, Py_ssize_t mlen, bint close) except -1:
    """append_audit_line with the digest and record as C strings (the digest
    is lowercased here); the record is `record` then `more`, then a "}" if
    `close`."""
    global _stamp_second, _stamp_len
    cdef timespec now
    cdef tm parts
    cdef time_t second
    cdef int millis
    cdef Py_ssize_t old, k
    cdef char *out
    cdef char ch
    clock_gettime(CLOCK_REALTIME, &now)
    second = now.tv_sec
    millis = <int>(now.tv_nsec // 1000000)
    if second != _stamp_second:
        if gmtime_r(&second, &parts) == NULL:
            raise ValueError("the clock is out of range")
        _stamp_len = strftime(_stamp, sizeof(_stamp), b'{"time":"%Y-%m-%dT%H:%M:%S.',
                              &parts)
        if _stamp_len == 0:
            raise ValueError("the clock is out of range")
        _stamp_second = second
    old = PyByteArray_GET_SIZE(buf)
    PyByteArray_Resize(buf, old + <Py_ssize_t>_stamp_len + 6 + PyBytes_GET_SIZE(who)
                       + dlen + PyBytes_GET_SIZE(middle) + rlen + mlen + close + 2)
    out = PyByteArray_AS_STRING(buf) + old
    memcpy(out, _stamp, _stamp_len)
    out += _stamp_len
    out[0] = <char>(48 + millis // 100)
    out[1] = <char>(48 + millis // 10 % 10)
    out[2] = <char>(48 + millis % 10)
    memcpy(out + 3, b'Z",', 3)
    out += 6
    memcpy(out, PyBytes_AS_STRING(who), <size_t>PyBytes_GET_SIZE(who))
    out += PyBytes_GET_SIZE(who)
    for k in range(dlen):
        ch = digest[k]
        out[k] = ch | 0x20 if 65 <= ch <= 90 else ch
    out += dlen
    memcpy(out, PyBytes_AS_STRING(middle), <size_t>PyBytes_GET_SIZE(middle))
    out += PyBytes_GET_SIZE(middle)
    memcpy(out, record, <size_t>rlen)
    out += rlen
    memcpy(out, more, <size_t>mlen)
    out += mlen
    if close:
        out[0] = b"}"
        out += 1
    out[0] = b"}"
    out[1] = b"\n"
    return 0


def append_audit_line(bytearray buf, bytes who, str digest, bytes middle,
                      bytes record):
    """Append one line of the lookup service's audit log to buf:
    ``{"time":"<now, UTC, ISO 8601 to the millisecond>Z",`` + who + digest
    in lowercase + middle + record + ``}`` and a newline.  The layout is
    hashlookup.server._audit's (who: the key part up to the digest's opening
    quote; middle: from its closing quote to the record); written in C
    because it runs once per hit (formatting the time and joining the parts
    in Python cost about as much as the rest of a hit)."""
    cdef bytes text = digest.encode("ascii", "replace")
    _append_audit(buf, who, PyBytes_AS_STRING(text), PyBytes_GET_SIZE(text), middle,
                  PyBytes_AS_STRING(record), PyBytes_GET_SIZE(record), b"", 0, 0)
