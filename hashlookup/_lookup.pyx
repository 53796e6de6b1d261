"""hashlookup._lookup: the single-digest lookups of a dataset, in C.

A digest's length picks its key table, the table answers in C, and a hit's
record, labels, label filters and Match are read and built here too, so
that Dataset.lookup is one call from Python with no Python frame in it.
The tables, records and key decoding are hashlookup._core's, reached at
the C level through _core.pxd (cimport): no Python attribute lookup on the
way down.
"""

from cpython.buffer cimport PyObject_CheckBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport malloc, free
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec

cimport hl

from hashlookup._core cimport KeyTable, RecordTable, _hex_str, _kind, _load_key

from collections.abc import Mapping as _Mapping

from hashlookup.algorithms import DIGESTS as _DIGESTS, describe as _describe
from hashlookup.errors import IndexFormatError


# "an md5 digest" etc.: the errors for a digest of an algorithm the generation
# has no table of.
_DIGEST_NAMES = {a.width: _describe(a.name, a.width) for a in _DIGESTS}


cdef double _monotonic() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


# The digest algorithms, by index (0 md5, 1 sha1, 2 sha256: the order of a
# record's rows, hashlookup.algorithms.DIGESTS); a digest's length picks one.
cdef tuple _ALG_NAMES = tuple(a.name for a in _DIGESTS)
cdef size_t _ALG_WIDTH[3]
for _i, _a in enumerate(_DIGESTS):
    _ALG_WIDTH[_i] = _a.width
del _i, _a


def _either(values):
    """The values as "a, b or c" (no negative indexing: the module is
    compiled with wraparound off)."""
    values = [str(v) for v in values]
    return ", ".join(values[:len(values) - 1]) + " or " + values[len(values) - 1]


_LENGTHS_HELP = (f"expected an {_either(_ALG_NAMES)} digest: "
                 f"{_either([a.hex_length for a in _DIGESTS])} hex characters "
                 f"or {_either([a.width for a in _DIGESTS])} raw bytes, got ")
_DATASET_CLOSED = "I/O operation on closed dataset"

# What a label filter lets through (see TableSet.record_filter).
cdef enum:
    _PASS_ALL = 0
    _PASS_NONE = 1
    _PASS_IN = 2        # records in the bitmap
    _PASS_NOT_IN = 3    # records not in the bitmap


cdef class LabelFilter:
    """A predicate record id -> wanted, from label bitmap algebra (see
    TableSet.record_filter): calling it costs one bitmap membership test."""
    cdef int _c_kind
    cdef object _c_bitmap

    def __call__(self, record_id):
        return self._wants(record_id)

    cdef inline bint _wants(self, object record_id) except -1:
        if self._c_kind == _PASS_ALL:
            return True
        if self._c_kind == _PASS_NONE:
            return False
        if self._c_kind == _PASS_IN:
            return record_id in self._c_bitmap
        return record_id not in self._c_bitmap


cdef LabelFilter _label_filter(int kind, object bitmap):
    cdef LabelFilter f = LabelFilter.__new__(LabelFilter)
    f._c_kind = kind
    f._c_bitmap = bitmap
    return f


cdef tuple _as_labels(object x):
    if x is None:
        return ()
    if isinstance(x, str):
        return (x,)
    return tuple(x)


# -- roaring bitmaps read in place -------------------------------------------
#
# A hit's labels need only membership tests, which this reader answers from
# a label's bitmap in the portable roaring format (the format pyroaring
# writes: https://github.com/RoaringBitmap/RoaringFormatSpec) without
# pyroaring, whose import is a large part of a one-shot lookup's start-up.
# Every field is checked when a bitmap is first read (bounds, order,
# cardinalities against the label index), so a damaged bitmap is refused
# with the error pyroaring's path gives; label filters and bitmap() still
# use pyroaring.

cdef enum:
    _ROARING_ARRAY = 0
    _ROARING_BITMAP = 1
    _ROARING_RUN = 2
    _ROARING_NO_RUNS = 12346    # cookie without run containers
    _ROARING_RUNS = 12347       # low 16 bits of the cookie with them
    _ROARING_NO_OFFSETS = 4     # run-cookie files of fewer containers skip offsets


cdef inline uint32_t _u16(const uint8_t *p) noexcept nogil:
    return p[0] | (<uint32_t>p[1] << 8)


cdef inline uint32_t _u32(const uint8_t *p) noexcept nogil:
    return (p[0] | (<uint32_t>p[1] << 8) | (<uint32_t>p[2] << 16)
            | (<uint32_t>p[3] << 24))


cdef extern from *:
    # (GCC and Clang: one instruction where the CPU has it)
    int __builtin_popcountll(unsigned long long x) nogil


cdef inline int _popcount64(uint64_t x) noexcept nogil:
    return __builtin_popcountll(x)


cdef class _Roaring:
    """One label's bitmap, read in place (membership only); made by
    _roaring_open, which checks it whole."""
    cdef bytes _c_blob
    cdef const uint8_t *_c_p
    cdef Py_ssize_t _c_n          # containers
    cdef uint32_t *_c_offsets     # each container's start in the blob
    cdef uint8_t *_c_kinds
    cdef const uint8_t *_c_header  # n x (key u16, cardinality - 1 u16)

    def __dealloc__(self):
        free(self._c_offsets)
        free(self._c_kinds)

    def __contains__(self, x):
        return self._has(x)

    cdef bint _has(self, uint64_t x) noexcept:
        cdef uint32_t high = <uint32_t>(x >> 16), low = <uint32_t>(x & 0xFFFF)
        cdef Py_ssize_t lo = 0, hi = self._c_n, mid
        cdef uint32_t key
        if x > 0xFFFFFFFF:
            return False
        while lo < hi:              # the container of the high 16 bits
            mid = (lo + hi) >> 1
            key = _u16(self._c_header + 4 * mid)
            if key < high:
                lo = mid + 1
            elif key > high:
                hi = mid
            else:
                return self._in_container(mid, low)
        return False

    cdef bint _in_container(self, Py_ssize_t i, uint32_t low) noexcept:
        cdef const uint8_t *c = self._c_p + self._c_offsets[i]
        cdef Py_ssize_t card = _u16(self._c_header + 4 * i + 2) + 1
        cdef Py_ssize_t lo = 0, hi, mid
        cdef uint32_t v
        if self._c_kinds[i] == _ROARING_BITMAP:
            return (c[low >> 3] >> (low & 7)) & 1
        if self._c_kinds[i] == _ROARING_ARRAY:
            hi = card
            while lo < hi:
                mid = (lo + hi) >> 1
                v = _u16(c + 2 * mid)
                if v < low:
                    lo = mid + 1
                elif v > low:
                    hi = mid
                else:
                    return True
            return False
        # runs: (start, length - 1) pairs after their count; the last run
        # starting at or before low
        hi = _u16(c)
        c += 2
        while lo < hi:
            mid = (lo + hi) >> 1
            if _u16(c + 4 * mid) <= low:
                lo = mid + 1
            else:
                hi = mid
        if lo == 0:
            return False
        return low - _u16(c + 4 * (lo - 1)) <= _u16(c + 4 * (lo - 1) + 2)


cdef str _roaring_check(_Roaring r, Py_ssize_t size, uint64_t count,
                        uint64_t records):
    """Fill r's tables from its blob and check them: None if the bitmap is
    sound and holds `count` ids below `records`, else what is wrong ("" for
    a mismatch with the label index)."""
    cdef const uint8_t *p = r._c_p
    cdef uint32_t cookie, prev_key = 0, key, v, prev, start, length
    cdef Py_ssize_t n, pos, i, j, card, runs_at = -1, end
    cdef uint64_t total = 0, last = 0
    cdef bint offsets
    if size < 4:
        return "truncated"
    cookie = _u32(p)
    if cookie == _ROARING_NO_RUNS:
        if size < 8:
            return "truncated"
        n = _u32(p + 4)
        pos = 8
        offsets = True
    elif (cookie & 0xFFFF) == _ROARING_RUNS:
        n = (cookie >> 16) + 1
        runs_at = 4
        pos = 4 + (n + 7) // 8
        offsets = n >= _ROARING_NO_OFFSETS
    else:
        return "unknown cookie"
    if n > 65536:
        return "too many containers"
    if pos + 4 * n + (4 * n if offsets else 0) > size:
        return "truncated header"
    r._c_n = n
    r._c_header = p + pos
    pos += 4 * n
    r._c_offsets = <uint32_t *>malloc((n if n else 1) * sizeof(uint32_t))
    r._c_kinds = <uint8_t *>malloc(n if n else 1)
    if r._c_offsets == NULL or r._c_kinds == NULL:
        raise MemoryError()
    end = pos
    for i in range(n):
        key = _u16(r._c_header + 4 * i)
        card = _u16(r._c_header + 4 * i + 2) + 1
        if i and key <= prev_key:
            return "container keys out of order"
        prev_key = key
        if offsets:
            start = _u32(p + pos + 4 * i)
        else:
            start = <uint32_t>end    # right after the previous container
        if runs_at >= 0 and (p[runs_at + (i >> 3)] >> (i & 7)) & 1:
            r._c_kinds[i] = _ROARING_RUN
        elif card > 4096:
            r._c_kinds[i] = _ROARING_BITMAP
        else:
            r._c_kinds[i] = _ROARING_ARRAY
        r._c_offsets[i] = start
        # the container's extent and contents
        if r._c_kinds[i] == _ROARING_BITMAP:
            if <uint64_t>start + 8192 > <uint64_t>size:
                return "container past the end"
            j = 0
            for v in range(1024):
                j += _popcount64(_u32(p + start + 8 * v)
                                 | (<uint64_t>_u32(p + start + 8 * v + 4) << 32))
            if j != card:
                return "bitmap container cardinality"
            v = 8191
            while not p[start + v]:
                v -= 1
            last = (<uint64_t>key << 16) | (8 * v + 7 - _clz8(p[start + v]))
            end = start + 8192
        elif r._c_kinds[i] == _ROARING_ARRAY:
            if <uint64_t>start + 2 * <uint64_t>card > <uint64_t>size:
                return "container past the end"
            for j in range(card):
                v = _u16(p + start + 2 * j)
                if j and v <= prev:
                    return "array container out of order"
                prev = v
            last = (<uint64_t>key << 16) | prev
            end = start + 2 * card
        else:
            if <uint64_t>start + 2 > <uint64_t>size:
                return "container past the end"
            length = _u16(p + start)
            if <uint64_t>start + 2 + 4 * <uint64_t>length > <uint64_t>size:
                return "container past the end"
            j = 0
            for v in range(length):
                prev = _u16(p + start + 2 + 4 * v)
                if v and prev <= <uint32_t>last:
                    return "runs out of order"
                last = prev + _u16(p + start + 2 + 4 * v + 2)
                if last > 0xFFFF:
                    return "run past its container"
                j += last - prev + 1
            if j != card or length == 0:
                return "run container cardinality"
            last = (<uint64_t>key << 16) | last
            end = start + 2 + 4 * length
        total += card
    if total != count or (count and last >= records):
        return ""
    return None


cdef inline int _clz8(uint8_t b) noexcept nogil:
    cdef int n = 0
    while not (b & 0x80):
        b <<= 1
        n += 1
    return n


cdef object _FrozenBitMap = None


cdef class LabelSet:
    """The labels of one dataset generation: name -> roaring bitmap of
    record ids, each deserialized (pyroaring) from the buffer on first use,
    once.  hashlookup.store.labels.LabelStore derives from it and reads the
    label directory; lookups (TableSet) use this class only."""
    cdef object _c_buf
    cdef Py_ssize_t _c_base
    cdef uint64_t _c_records
    cdef str _c_what
    cdef dict _c_entries
    cdef dict _c_cache
    cdef tuple _c_pairs
    cdef tuple _c_plan
    cdef dict _c_interned

    def _set_entries(self, object buf, Py_ssize_t base, uint64_t records, str what,
                     dict entries):
        """entries: name -> (offset, length, count) in the bitmaps section at
        `base` of buf, sorted by name, already validated."""
        self._c_buf = buf
        self._c_base = base
        self._c_records = records
        self._c_what = what
        self._c_entries = entries
        self._c_cache = {}
        self._c_pairs = None
        self._c_plan = None
        self._c_interned = {}

    @property
    def entries(self):
        """name -> (offset, length, record count) of every label."""
        return self._c_entries

    def bitmap(self, str label):
        """Record ids carrying label, a pyroaring FrozenBitMap (KeyError if
        the dataset has no such label)."""
        return self._bitmap(label)

    cdef object _bitmap(self, str label):
        global _FrozenBitMap
        bm = self._c_cache.get(label)
        if bm is not None:
            return bm
        off, length, count = self._c_entries[label]
        if _FrozenBitMap is None:   # imported when a label is first read
            from pyroaring import FrozenBitMap
            _FrozenBitMap = FrozenBitMap
        start = self._c_base + off
        try:
            bm = _FrozenBitMap.deserialize(bytes(self._c_buf[start:start + length]))
        except Exception as e:  # pyroaring raises ValueError on bad input
            raise IndexFormatError(f"{self._c_what}: label {label!r}: corrupt bitmap "
                                   f"({e})") from None
        if len(bm) != count or (count and bm.max() >= self._c_records):
            raise IndexFormatError(f"{self._c_what}: label {label!r}: bitmap does "
                                   "not match the label index")
        self._c_cache[label] = bm
        return bm

    cdef _Roaring _reader(self, str label):
        # The label's bitmap read in place for membership (no pyroaring).
        off, length, count = self._c_entries[label]
        start = self._c_base + off
        cdef _Roaring r = _Roaring.__new__(_Roaring)
        r._c_blob = bytes(self._c_buf[start:start + length])
        r._c_p = <const uint8_t *>PyBytes_AS_STRING(r._c_blob)
        wrong = _roaring_check(r, PyBytes_GET_SIZE(r._c_blob), count, self._c_records)
        if wrong == "":
            raise IndexFormatError(f"{self._c_what}: label {label!r}: bitmap does "
                                   "not match the label index")
        if wrong is not None:
            raise IndexFormatError(f"{self._c_what}: label {label!r}: corrupt bitmap "
                                   f"({wrong})")
        return r

    def pairs(self):
        """(name, bitmap) of every label, sorted by name (read once)."""
        return self._pairs()

    cdef tuple _pairs(self):
        if self._c_pairs is None:
            self._c_pairs = tuple([(name, self._bitmap(name))
                                   for name in self._c_entries])
        return self._c_pairs

    def of(self, record_id):
        """Labels of one record, sorted by name.

        One membership test per label (~tens of ns each, in C), so a hit's
        labels cost O(labels).  A per-record table would make it O(1) but
        costs memory and open time O(records); datasets carry few labels
        (sources, categories), see docs/DATASETS.md.  A label that every
        record carries (the directory's count is the record count), or
        none, is answered from the directory; the others' bitmaps are read
        in place (_Roaring, checked whole when first read), without
        pyroaring.  The same label tuples come back again and again: they
        are interned, so that callers that cache something per tuple (the
        server's JSON) find them by identity."""
        return self._of(record_id)

    cdef tuple _label_plan(self):
        # Per label: True (every record), False (none) or its _Roaring.
        cdef list plan = []
        if self._c_plan is None:
            for name, entry in self._c_entries.items():
                count = entry[2]
                if count == 0:
                    plan.append((name, False))
                elif count == self._c_records:
                    plan.append((name, True))
                else:
                    plan.append((name, self._reader(name)))
            self._c_plan = tuple(plan)
        return self._c_plan

    cdef tuple _of(self, object record_id):
        cdef list found = []
        cdef tuple pair
        cdef uint64_t rid = record_id
        for pair in self._label_plan():
            member = pair[1]
            if member is True or (member is not False
                                  and (<_Roaring>member)._has(rid)):
                found.append(pair[0])
        cdef tuple key = tuple(found)
        seen = self._c_interned.get(key)
        if seen is None:
            if len(self._c_interned) >= 4096:   # bounded: many labels combine
                return key
            self._c_interned[key] = key
            return key
        return seen

    def union(self, labels):
        """Records carrying any of labels (unknown labels match nothing)."""
        return self._union(tuple(labels))

    cdef object _union(self, tuple labels):
        global _FrozenBitMap
        maps = [self._bitmap(x) for x in labels if x in self._c_entries]
        if _FrozenBitMap is None:
            from pyroaring import FrozenBitMap
            _FrozenBitMap = FrozenBitMap
        return _FrozenBitMap.union(_FrozenBitMap(), *maps) if maps else _FrozenBitMap()


class Attributes(_Mapping):
    """A record's attributes (Match.attributes): a read-only mapping of
    attribute name -> value, in the dataset's order of the names; hashable
    and comparable with any mapping, so that a Match stays a value."""
    __slots__ = ("_d",)

    def __init__(self, values=()):
        self._d = dict(values)

    def __getitem__(self, name):
        return self._d[name]

    def __iter__(self):
        return iter(self._d)

    def __len__(self):
        return len(self._d)

    def __contains__(self, name):
        return name in self._d

    def __hash__(self):
        return hash(frozenset(self._d.items()))

    def __repr__(self):
        return f"Attributes({self._d!r})"


# The attributes of a Match without any (all of them share this one).
EMPTY_ATTRIBUTES = Attributes()


cdef class TableSet:
    """The single-digest lookups of one dataset generation, answered here
    from start to end: a digest's length picks the md5, sha1 or sha256 key
    table in C (so a miss costs about as much as `key in index`), and a hit's
    record (RecordTable), its labels (LabelSet), the label filters and the
    Match are all read and built in this class.  It calls no Python code of
    the package, but for a hit's record attributes where a dataset has any.
    hashlookup.store.generation.Generation makes one per generation; a
    plain index file is a TableSet of one table without
    records (the row is the record, its only digest the key)."""
    cdef KeyTable _c_t0
    cdef KeyTable _c_t1
    cdef KeyTable _c_t2
    cdef RecordTable _c_records
    cdef LabelSet _c_labels
    cdef tuple _c_suppress
    cdef object _c_generation
    cdef str _c_built
    cdef type _c_match
    cdef dict _c_filters
    cdef object _c_attributes

    def __init__(self, tuple tables, RecordTable records, LabelSet labels,
                 tuple suppress, object generation, str built, type match,
                 object attributes=None):
        """tables: the (md5, sha1, sha256) KeyTables, None where there is
        none; records: None for a plain index; labels: None without labels;
        suppress: labels whose records never match; generation and built:
        the facts every Match carries; match: the Match type (a tuple
        subclass of its ten fields); attributes: None without record
        attributes, else an object whose of(record_id) gives a record's
        (hashlookup.store.attributes.AttributeStore: the one Python call a
        hit makes, and only in a dataset with attributes)."""
        if len(tables) != 3:
            raise ValueError("expected the md5, sha1 and sha256 tables")
        self._c_t0, self._c_t1, self._c_t2 = tables
        self._c_records = records
        self._c_labels = labels
        self._c_suppress = suppress
        self._c_generation = generation
        self._c_built = built
        self._c_match = match
        self._c_filters = {}
        self._c_attributes = attributes

    cdef inline KeyTable _table(self, int a):
        return self._c_t0 if a == 0 else self._c_t1 if a == 1 else self._c_t2

    cdef KeyTable _resolve(self, object digest, uint8_t *buf, const uint8_t **p,
                           int *alg):
        """The table of digest's length, with the key decoded into buf (*p
        points at it) and its algorithm index in *alg; None for a
        well-formed digest of an algorithm the generation lacks.  Raises
        TypeError / ValueError for what is not a digest, as lookup documents."""
        cdef Py_ssize_t n
        cdef KeyTable t
        cdef int a
        if type(digest) is bytes:
            n = PyBytes_GET_SIZE(digest)
        elif isinstance(digest, str):
            n = len(<str>digest) // 2 if len(<str>digest) % 2 == 0 else -1
        elif PyObject_CheckBuffer(digest):
            n = memoryview(digest).nbytes
        else:
            raise TypeError("expected a digest as hex str or raw bytes, got "
                            f"{_kind(digest)}")
        for a in range(3):
            if <size_t>n == _ALG_WIDTH[a]:
                break
        else:
            raise ValueError(_LENGTHS_HELP
                             + (f"a str of length {len(digest)}"
                                if isinstance(digest, str) else f"{n} bytes"))
        alg[0] = a
        t = self._table(a)
        if t is None:
            if self._c_t0 is None and self._c_t1 is None and self._c_t2 is None:
                raise ValueError(_DATASET_CLOSED)   # _NO_TABLES
            # The generation has no table of this algorithm: a miss, but
            # only for a well-formed digest (bad ones raise as for any table).
            _load_key(digest, n, buf, p, _DIGEST_NAMES[n], None)
            return None
        # Kept: the open check is what lets _find and _lookup call the
        # kernel without hl_table_find's (an open table is one that
        # hl_table_init accepted, hl_table_find_ready's precondition).
        if not t._c_open:
            t._ensure_open()    # raises the closed-index error
        _load_key(digest, t._c_table.width, buf, p, t._c_what, None)
        return t

    def find(self, digest):
        """(table, row) of a digest (hex str or raw bytes of an md5, sha1 or
        sha256), or None."""
        return self._find(digest)

    cdef object _find(self, object digest):
        cdef uint8_t buf[64]
        cdef const uint8_t *p
        cdef int a
        cdef KeyTable t = self._resolve(digest, buf, &p, &a)
        if t is None:
            return None
        cdef int64_t row = hl.hl_table_find_ready(&t._c_table, p)
        if row < 0:
            return None
        return t, row

    def lookup(self, digest, only=None, exclude=None):
        """The Match of a digest, or None: see Dataset.lookup."""
        return self._lookup(digest, only, exclude)

    cdef object _lookup(self, object digest, object only, object exclude):
        cdef uint8_t buf[64]
        cdef const uint8_t *p
        cdef int a
        cdef KeyTable t = self._resolve(digest, buf, &p, &a)
        if t is None:
            return None
        cdef int64_t row = hl.hl_table_find_ready(&t._c_table, p)
        if row < 0:
            return None
        return self._hit(a, row, only, exclude)

    def hit(self, int algorithm, int64_t row, only=None, exclude=None):
        """The Match of row `row` of the key table of `algorithm` (0 md5, 1
        sha1, 2 sha256), or None if the label filters (only, exclude, the
        suppressed labels) drop its record."""
        if algorithm < 0 or algorithm > 2 or self._table(algorithm) is None:
            raise KeyError(f"no table of algorithm {algorithm}")
        return self._hit(algorithm, row, only, exclude)

    cdef object _hit(self, int a, int64_t row, object only, object exclude):
        cdef object rid
        cdef bint filtered = (only is not None or exclude is not None
                              or len(self._c_suppress) != 0)
        if self._c_records is None:  # a plain index: the row is the record
            if filtered and not self._filter(only, exclude)._wants(row):
                return None
            return self._plain_match(a, row)
        # (raises ValueError once the generation is closed, IndexFormatError
        # if the rowmap points past the records)
        rid = self._c_records._record_of(a, row)
        if filtered and not self._filter(only, exclude)._wants(rid):
            return None
        return self._record_match(a, rid, self._c_records._fields(rid))

    def match(self, int algorithm, int64_t record_id):
        """The Match of record `record_id` (in range), its algorithm field
        `algorithm`: Dataset.record, no filter."""
        if self._c_records is None:
            return self._plain_match(algorithm, record_id)
        return self._record_match(algorithm, record_id,
                                  self._c_records.read(record_id))

    cdef object _record_match(self, int a, object rid, tuple fields):
        labels = self._c_labels._of(rid) if self._c_labels is not None else ()
        attributes = (EMPTY_ATTRIBUTES if self._c_attributes is None
                      else self._c_attributes.of(rid))
        return tuple.__new__(self._c_match, (rid, _ALG_NAMES[a], fields[0], fields[1],
                                             fields[2], fields[3], labels,
                                             self._c_generation, self._c_built,
                                             attributes))

    cdef object _plain_match(self, int a, int64_t row):
        cdef KeyTable t = self._table(a)
        if t is None or not t._c_open:
            raise ValueError(_DATASET_CLOSED)
        if row < 0 or <uint64_t>row >= t._c_table.n:
            raise IndexError(f"no row {row} in the {_ALG_NAMES[a]} table")
        cdef list digests = [None, None, None]
        digests[a] = _hex_str(t._c_table.keys + <uint64_t>row * t._c_table.width,
                              t._c_table.width)
        return tuple.__new__(self._c_match, (row, _ALG_NAMES[a], digests[0],
                                             digests[1], digests[2], None, (),
                                             self._c_generation, self._c_built,
                                             EMPTY_ATTRIBUTES))

    def record_filter(self, only=None, exclude=None):
        """A predicate record id -> wanted (label bitmap algebra, cached per
        generation), or None when nothing is filtered: `only` (a label or
        labels: a record must carry one of them), `exclude` and the
        suppressed labels (it must carry none)."""
        if only is None and exclude is None and not self._c_suppress:
            return None
        cdef LabelFilter f = self._filter(only, exclude)
        if f._c_kind == _PASS_IN:
            return f._c_bitmap.__contains__   # one call less per record
        return f

    cdef LabelFilter _filter(self, object only, object exclude):
        o = tuple(sorted(_as_labels(only))) if only is not None else None
        x = tuple(sorted(set(_as_labels(exclude)) | set(self._c_suppress)))
        key = (o, x)
        cdef LabelFilter f = self._c_filters.get(key)
        if f is not None:
            return f
        cdef LabelSet labels = self._c_labels
        if labels is None:
            f = _label_filter(_PASS_NONE if o else _PASS_ALL, None)
        elif o:
            allowed = labels._union(o)
            if x:
                allowed = allowed - labels._union(x)
            f = _label_filter(_PASS_IN, allowed)
        elif x:
            f = _label_filter(_PASS_NOT_IN, labels._union(x))
        else:
            f = _label_filter(_PASS_ALL, None)
        self._c_filters[key] = f
        return f


# What a closed dataset answers from: digests are checked as ever, then
# ValueError("I/O operation on closed dataset").
cdef TableSet _NO_TABLES = TableSet((None, None, None), None, None, (), 0, "", tuple)


cdef class TableSetRef:
    """The TableSet of the current generation, swapped whole on reload (a
    lookup finishes on the generation it started on), and the auto-reload
    clock.  hashlookup.store.dataset.Dataset derives from it so that
    `lookup` and `find_row` are one call into C with no Python frame.  It
    calls no method of a subclass: with auto-reload on, the one Python call
    it makes is the function given to _set_auto_reload, at most once per
    interval."""
    cdef TableSet _c_set            # never None (_NO_TABLES when closed)
    cdef bint _c_auto_reload
    cdef double _c_reload_interval
    cdef double _c_next_check
    cdef object _c_on_interval

    def __cinit__(self):
        self._c_set = _NO_TABLES

    def _set_current(self, TableSet tables):
        """Answer from `tables` from now on (None: closed)."""
        self._c_set = tables if tables is not None else _NO_TABLES

    def _set_auto_reload(self, bint enabled, double interval, object on_interval):
        """With enabled: on_interval(self) is called by lookups (and by
        _reload_due's callers) once `interval` seconds have passed since the
        last call."""
        self._c_auto_reload = enabled
        self._c_reload_interval = interval
        self._c_next_check = _monotonic() + interval
        self._c_on_interval = on_interval

    def _reload_due(self):
        """True (once per interval) if auto-reload is on and the interval has
        passed: for the entry points written in Python, which reload
        themselves."""
        cdef double now
        if not self._c_auto_reload:
            return False
        now = _monotonic()
        if now < self._c_next_check:
            return False
        self._c_next_check = now + self._c_reload_interval
        return True

    cdef inline TableSet _current(self):
        cdef double now
        if self._c_auto_reload:
            now = _monotonic()
            if now >= self._c_next_check:
                self._c_next_check = now + self._c_reload_interval
                self._c_on_interval(self)
        return self._c_set

    def lookup(self, digest, only=None, exclude=None):
        """The Match of a digest (hex str or raw bytes of an md5, sha1 or
        sha256; the length tells the algorithm), or None.

        Parameters
        ----------
        only
            A label or labels: match only records carrying one of them.
        exclude
            A label or labels: never match records carrying one of them
            (on top of the dataset's suppressed labels).

        Raises
        ------
        TypeError, ValueError
            `digest` is not a digest of one of the three algorithms.
        """
        return self._current()._lookup(digest, only, exclude)

    def find_row(self, digest):
        """(table, row) of a digest, or None: lookup without building the
        Match (no label filter applies)."""
        return self._current()._find(digest)
