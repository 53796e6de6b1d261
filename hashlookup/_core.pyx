"""hashlookup._core: the thin Cython layer over the C core in csrc/.

It turns Python arguments into pointers and lengths, calls the C kernels
(without the GIL for anything that loops), and maps hl_status codes to
exceptions in one place (_check).  Everything else, file parsing included,
lives in the Python modules above it.  It knows no wire format: the lookup
service renders its answers in its own module (hashlookup.server._render).
A dataset's single-digest lookups (dispatch by length, labels, Match) are
in hashlookup._lookup.  Both reach the classes' C fields, _check and the
key decoding (_load_key) through _core.pxd.
"""

from cpython.buffer cimport (PyBUF_SIMPLE, PyBuffer_Release, PyObject_CheckBuffer,
                             PyObject_GetBuffer)
from cpython.bytes cimport (PyBytes_AS_STRING, PyBytes_FromStringAndSize,
                            PyBytes_GET_SIZE)
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free
from libc.string cimport memcpy

cimport hl

from hashlookup.algorithms import NAMES as _ALG_NAMES
from hashlookup.errors import IndexFormatError


cdef extern from "Python.h":
    const char *PyUnicode_AsUTF8AndSize(object s, Py_ssize_t *size) except NULL
    bint PyUnicode_IS_ASCII(object s)


MAX_WIDTH = hl.HL_MAX_WIDTH
BLOOM_MAX_K = hl.HL_BLOOM_MAX_K
PREFILTER_MAX_K = hl.HL_PRE_MAX_K
BLOOM_BLOCK = hl.HL_BLOOM_BLOCK

# Status codes, for the Python layer's error messages.
OK = hl.HL_OK
EHEX = hl.HL_EHEX
ELENGTH = hl.HL_ELENGTH
ENOSPACE = hl.HL_ENOSPACE
ETOOLONG = hl.HL_ETOOLONG

# Below this many keys a batch keeps the GIL: releasing and re-taking it
# costs about as much as looking up a few dozen keys.
DEF GIL_MIN_BATCH = 64

_CLOSED = "I/O operation on closed index"


cdef int _check(hl.hl_status st) except -1:
    """The one place where C status codes become Python exceptions."""
    if st == hl.HL_OK:
        return 0
    if st == hl.HL_EFORMAT:
        raise IndexFormatError("inconsistent index structure")
    if st == hl.HL_EINVAL:
        raise ValueError("parameter out of range for the C core")
    if st == hl.HL_EHEX:
        raise ValueError("non-hex character")
    if st == hl.HL_ELENGTH:
        raise ValueError("wrong length")
    if st == hl.HL_ENOSPACE:
        raise ValueError("output buffer too small")
    if st == hl.HL_ENOMEM:
        raise MemoryError()
    if st == hl.HL_ETOOLONG:
        raise ValueError("line too long")
    raise ValueError(f"C core returned status {<int>st}")


cdef str _kind(object key):
    return type(key).__name__


cdef str _where(object item):
    # Built only on the error path: the hot path must not format strings.
    return "" if item is None else f" (item {item})"


cdef int _load_key(object key, size_t width, uint8_t *buf, const uint8_t **out,
                   str what, object item) except -1:
    """Point *out at the width raw bytes of key (raw bytes-like or hex str).

    bytes are used in place; hex strings are decoded and other buffers are
    copied into buf (room for HL_MAX_WIDTH bytes).
    """
    cdef Py_ssize_t n
    cdef const char *s
    cdef size_t bad
    cdef Py_buffer view
    if type(key) is bytes:
        n = PyBytes_GET_SIZE(key)
        if <size_t>n != width:
            raise ValueError(f"expected {what}: {width} raw bytes or {2 * width} hex "
                             f"characters, got {n} bytes{_where(item)}")
        out[0] = <const uint8_t *>PyBytes_AS_STRING(key)
        return 0
    if isinstance(key, str):
        if not PyUnicode_IS_ASCII(key):
            raise ValueError(f"expected {what} in hex, got non-ASCII "
                             f"text{_where(item)}")
        # For ASCII str this is the str's own buffer: no copy, no encoding.
        s = PyUnicode_AsUTF8AndSize(key, &n)
        if <size_t>n != 2 * width:
            raise ValueError(f"expected {what}: {2 * width} hex characters or "
                             f"{width} raw bytes, got a str of length "
                             f"{len(key)}{_where(item)}")
        if hl.hl_hex_decode(<const uint8_t *>s, width, buf, &bad) != hl.HL_OK:
            raise ValueError(f"expected {what} in hex, got non-hex character "
                             f"{key[bad]!r} at position {bad}{_where(item)}")
        out[0] = buf
        return 0
    if not PyObject_CheckBuffer(key):
        raise TypeError(f"expected {what} as bytes or hex str, got "
                        f"{_kind(key)}{_where(item)}")
    try:
        PyObject_GetBuffer(key, &view, PyBUF_SIMPLE)
    except BufferError:
        # A strided buffer (a memoryview slice, a numpy view): its bytes in
        # order, through a copy.
        key = memoryview(key).tobytes()
        if <size_t>len(key) != width:
            raise ValueError(f"expected {what}: {width} raw bytes or {2 * width} hex "
                             f"characters, got {len(key)} bytes{_where(item)}")
        memcpy(buf, PyBytes_AS_STRING(key), width)
        out[0] = buf
        return 0
    try:
        if <size_t>view.len != width:
            raise ValueError(f"expected {what}: {width} raw bytes or {2 * width} hex "
                             f"characters, got {view.len} bytes{_where(item)}")
        memcpy(buf, view.buf, width)
    finally:
        PyBuffer_Release(&view)
    out[0] = buf
    return 0


cdef class KeyTable:
    """Lookups in one sorted key table inside a buffer (normally an mmap).

    The Python class hashlookup.HashIndex derives from this one; it opens and
    validates files.  This class only holds C pointers into a buffer that
    `_owner` keeps alive, and answers lookups.
    """

    def __cinit__(self):
        self._c_fastw = -1

    def _attach(self, object buffer, Py_ssize_t keys_off, uint64_t n, size_t width,
                Py_ssize_t loc_off, uint32_t loc_bits, Py_ssize_t bloom_off,
                uint64_t nblocks, uint32_t bloom_k, uint64_t bloom_seed, str what):
        """Point the table at sections of buffer (offsets already validated by
        hashlookup.store.format; re-checked here so a bug there cannot turn into an
        out-of-bounds read)."""
        cdef const uint8_t[::1] view = buffer
        cdef Py_ssize_t size = view.shape[0]
        cdef const uint8_t *base
        if self._c_open:
            raise ValueError("table already attached")
        if width == 0 or width > <size_t>hl.HL_MAX_WIDTH or loc_bits > 32:
            raise IndexFormatError("key width or locator bits out of range")
        if (keys_off < 0 or loc_off < 0 or bloom_off < 0
                or <uint64_t>keys_off + n * width > <uint64_t>size
                or <uint64_t>loc_off + 4 * ((1ULL << loc_bits) + 1) > <uint64_t>size
                or <uint64_t>bloom_off + nblocks * hl.HL_BLOOM_BLOCK > <uint64_t>size):
            raise IndexFormatError("section outside the file")
        base = &view[0] if size > 0 else NULL
        _check(hl.hl_table_init(&self._c_table, base + keys_off, n, width,
                                base + loc_off, loc_bits, base + bloom_off, nblocks,
                                bloom_k, bloom_seed))
        self._c_view = view
        self._owner = buffer
        self._c_what = what
        self._c_open = True
        self._c_fastw = <Py_ssize_t>width

    def _attach_prefilter(self, Py_ssize_t offset, uint64_t nwords, uint32_t k,
                          uint64_t seed):
        """Add the first-level filter at offset of the attached buffer
        (nwords 64-bit words; parameters validated by
        hashlookup.store.format, re-checked here)."""
        cdef Py_ssize_t size
        self._ensure_open()
        size = self._c_view.shape[0]
        if nwords == 0 or k == 0 or k > <uint32_t>hl.HL_PRE_MAX_K:
            raise IndexFormatError("prefilter parameters out of range")
        if offset < 0 or <uint64_t>offset + 8 * nwords > <uint64_t>size:
            raise IndexFormatError("section outside the file")
        _check(hl.hl_table_set_prefilter(&self._c_table, &self._c_view[0] + offset,
                                         nwords, k, seed))

    def _check_prefilter(self):
        """The first row the first-level filter rejects, or None (verify)."""
        cdef uint64_t bad = 0
        cdef hl.hl_status st
        cdef hl.hl_table *t = &self._c_table
        self._ensure_open()
        if t.pre_words == 0 or t.n == 0:
            return None
        self._c_busy += 1
        try:
            with nogil:
                st = hl.hl_prefilter_check(t.pre, t.pre_words, t.pre_k, t.pre_seed,
                                           t.keys, t.n, t.width, &bad)
        finally:
            self._c_busy -= 1
        if st == hl.HL_EFORMAT:
            return bad
        _check(st)
        return None

    cdef int _ensure_open(self) except -1:
        if not self._c_open:
            raise ValueError(_CLOSED)
        return 0

    def _detach(self):
        """Drop the pointers and the buffer.  Raises BufferError while batch
        calls in other threads still use them."""
        if self._c_busy:
            raise BufferError(f"cannot close the index while {self._c_busy} batch "
                              "lookup(s) run in other threads")
        self._c_open = False
        self._c_fastw = -1
        self._c_table.keys = NULL
        self._c_table.loc = NULL
        self._c_table.bloom = NULL
        self._c_table.pre = NULL
        self._c_table.pre_words = 0
        self._c_view = None
        owner, self._owner = self._owner, None
        return owner

    @property
    def closed(self):
        return not self._c_open

    @property
    def width(self):
        """Key width in bytes."""
        self._ensure_open()
        return self._c_table.width

    def __len__(self):
        self._ensure_open()
        return self._c_table.n

    def __contains__(self, key):
        # The common case first, inline: raw bytes of the table's width.
        # _c_fastw is -1 once closed, so this one test is also the open
        # check; the kernel is called without the out-of-line hop, and the
        # rest (other types, errors) is in _contains_slow, so this path
        # needs no stack frame for a key buffer.
        if type(key) is bytes and PyBytes_GET_SIZE(key) == self._c_fastw:
            return hl.hl_table_find_ready(
                &self._c_table, <const uint8_t *>PyBytes_AS_STRING(key)) >= 0
        return self._contains_slow(key)

    cdef bint _contains_slow(self, object key) except -1:
        cdef uint8_t buf[64]
        cdef const uint8_t *p
        if not self._c_open:
            raise ValueError(_CLOSED)
        _load_key(key, self._c_table.width, buf, &p, self._c_what, None)
        return hl.hl_table_find_ready(&self._c_table, p) >= 0

    def find(self, key):
        """Row of key in the sorted key table, or -1 if it is absent."""
        cdef uint8_t buf[64]
        cdef const uint8_t *p
        self._ensure_open()   # open: hl_table_init accepted the table
        _load_key(key, self._c_table.width, buf, &p, self._c_what, None)
        return hl.hl_table_find_ready(&self._c_table, p)

    def _contains_into(self, const uint8_t[::1] keys, uint8_t[::1] out):
        """out[i] = keys[i*width:(i+1)*width] in table, for i < len(out)."""
        cdef uint64_t n = out.shape[0]
        self._ensure_open()
        if <uint64_t>keys.shape[0] != n * self._c_table.width:
            raise ValueError("keys and out sizes disagree")
        if n == 0:
            return
        self._c_busy += 1
        try:
            if n < GIL_MIN_BATCH:
                hl.hl_table_contains_many(&self._c_table, &keys[0], n, &out[0])
            else:
                with nogil:
                    hl.hl_table_contains_many(&self._c_table, &keys[0], n, &out[0])
        finally:
            self._c_busy -= 1

    def _find_into(self, const uint8_t[::1] keys, int64_t[::1] out):
        """out[i] = row of keys[i] or -1, for i < len(out)."""
        cdef uint64_t n = out.shape[0]
        self._ensure_open()
        if <uint64_t>keys.shape[0] != n * self._c_table.width:
            raise ValueError("keys and out sizes disagree")
        if n == 0:
            return
        self._c_busy += 1
        try:
            if n < GIL_MIN_BATCH:
                hl.hl_table_find_many(&self._c_table, &keys[0], n, &out[0])
            else:
                with nogil:
                    hl.hl_table_find_many(&self._c_table, &keys[0], n, &out[0])
        finally:
            self._c_busy -= 1

    def match_lines(self, const uint8_t[::1] buf, size_t max_line, bint skip_invalid,
                    bint invert, uint8_t[::1] out):
        """Select the digest lines of a buffer whose digest is in the table.

        Parses the lines of `buf`, looks their digests up and copies the
        selected lines to `out`, each ending in ``\\n``, in one C call
        without the GIL (csrc/hl_linematch.h).

        Parameters
        ----------
        buf : buffer
            Text of digest lines, one hex digest of the table's width each.
        max_line : int
            Longest line accepted, in bytes.
        skip_invalid : bool
            Skip lines that are not a digest instead of stopping at them.
        invert : bool
            Select the lines whose digest is *not* in the table.
        out : writable buffer or None
            Room for ``len(buf) + 1`` bytes, or None to count only.

        Returns
        -------
        tuple of int
            (status, n_keys, n_lines, n_invalid, n_found, n_selected,
            out_len, err_line, err_offset, err_length); status is an
            hl_status code (OK, EHEX, ELENGTH, ETOOLONG).

        Raises
        ------
        ValueError
            `out` is too small or the table is closed.
        MemoryError
            The C core ran out of memory.
        """
        cdef hl.hl_match_result res
        cdef hl.hl_status st
        cdef size_t length = buf.shape[0]
        cdef unsigned flags = ((hl.HL_PARSE_SKIP_INVALID if skip_invalid else 0)
                               | (hl.HL_MATCH_INVERT if invert else 0))
        cdef uint8_t *dst = NULL
        cdef const uint8_t *src = &buf[0] if length else NULL
        self._ensure_open()
        if out is None:
            flags |= hl.HL_MATCH_COUNT
        else:
            if <size_t>out.shape[0] < length + 1:
                raise ValueError(f"out must hold len(buf) + 1 = {length + 1} bytes")
            dst = &out[0]
        self._c_busy += 1
        try:
            with nogil:
                st = hl.hl_match_lines(&self._c_table, src, length, max_line, flags,
                                       dst, &res)
        finally:
            self._c_busy -= 1
        if st == hl.HL_ENOMEM:
            raise MemoryError()
        if st == hl.HL_EINVAL:
            raise ValueError("bad arguments to hl_match_lines")
        return (<int>st, res.parse.n_keys, res.parse.n_lines, res.parse.n_invalid,
                res.n_found, res.n_selected, res.out_len, res.parse.err_line,
                res.parse.err_offset, res.parse.err_length)

    def _check_structure(self):
        """O(n) checks for verify(): keys sorted and unique, locator exact.
        Returns None, or (what, position) of the first problem."""
        cdef uint64_t bad = 0
        cdef hl.hl_status st
        self._ensure_open()
        self._c_busy += 1
        try:
            with nogil:
                st = hl.hl_table_check_sorted(self._c_table.keys, self._c_table.n,
                                              self._c_table.width, &bad)
            if st != hl.HL_OK:
                return ("keys", bad)
            with nogil:
                st = hl.hl_table_check_locator(&self._c_table, &bad)
            if st != hl.HL_OK:
                return ("locator", bad)
            return None
        finally:
            self._c_busy -= 1


def pack_keys(object keys, size_t width, str what):
    """Pack an iterable of raw bytes-likes / hex str into one bytearray of
    len(keys) * width bytes; errors name the offending item."""
    cdef uint8_t buf[64]
    cdef const uint8_t *p
    cdef Py_ssize_t i = 0
    cdef Py_ssize_t count
    cdef bytearray out
    cdef uint8_t *dst
    if width == 0 or width > <size_t>hl.HL_MAX_WIDTH:
        raise ValueError(f"key width must be 1..{hl.HL_MAX_WIDTH}, got {width}")
    if not isinstance(keys, (list, tuple)):
        keys = list(keys)
    count = len(keys)
    out = bytearray(count * width)
    dst = <uint8_t *>(<char *>out) if count else NULL
    for key in keys:
        _load_key(key, width, buf, &p, what, i)
        memcpy(dst + i * width, p, width)
        i += 1
    return out


cdef enum:
    _KIND_NOT_STR = 255
    _KIND_LENGTH = 254
    _KIND_NOT_HEX = 253

KIND_NOT_STR = _KIND_NOT_STR
KIND_LENGTH = _KIND_LENGTH
KIND_NOT_HEX = _KIND_NOT_HEX


def pack_any_hex(list items, uint8_t[::1] kinds, uint8_t[::1] out16,
                 uint8_t[::1] out20, uint8_t[::1] out32):
    """Sort hex digests of mixed algorithms by their length, in one pass:
    item i that is a 32, 40 or 64 character hex str is decoded into the
    next free row of out16, out20 or out32 (each with room for len(items)
    rows) and kinds[i] is set to 0, 1 or 2; otherwise kinds[i] tells why
    not: KIND_NOT_STR, KIND_LENGTH or KIND_NOT_HEX.  Returns the rows
    written to each output.  For the lookup service's batch requests."""
    cdef Py_ssize_t n = len(items)
    cdef Py_ssize_t i, length
    cdef uint64_t counts[3]
    cdef uint8_t *outs[3]
    cdef size_t widths[3]
    cdef size_t bad
    cdef int k
    cdef const char *s
    if kinds.shape[0] < n or out16.shape[0] < n * 16 or out20.shape[0] < n * 20 \
            or out32.shape[0] < n * 32:
        raise ValueError("output buffers too small")
    counts[0] = counts[1] = counts[2] = 0
    widths[0], widths[1], widths[2] = 16, 20, 32
    outs[0] = &out16[0] if n else NULL
    outs[1] = &out20[0] if n else NULL
    outs[2] = &out32[0] if n else NULL
    for i in range(n):
        item = items[i]
        if not isinstance(item, str):
            kinds[i] = _KIND_NOT_STR
            continue
        if not PyUnicode_IS_ASCII(item):
            kinds[i] = _KIND_NOT_HEX
            continue
        s = PyUnicode_AsUTF8AndSize(item, &length)
        if length == 32:
            k = 0
        elif length == 40:
            k = 1
        elif length == 64:
            k = 2
        else:
            kinds[i] = _KIND_LENGTH
            continue
        if hl.hl_hex_decode(<const uint8_t *>s, widths[k],
                            outs[k] + counts[k] * widths[k], &bad) != hl.HL_OK:
            kinds[i] = _KIND_NOT_HEX
            continue
        kinds[i] = k
        counts[k] += 1
    return counts[0], counts[1], counts[2]


def parse_lines(const uint8_t[::1] buf, size_t width, size_t max_line,
                uint8_t[::1] out, int64_t[::1] line_index, int64_t[::1] line_offset,
                bint skip_invalid):
    """Parse digest lines of buf into out (n rows of width bytes).

    line_index / line_offset may be None or arrays as long as out has rows.
    Returns (status, n_keys, n_lines, n_invalid, err_line, err_offset,
    err_length, err_status); the caller turns errors into messages that
    quote the file and line.
    """
    cdef hl.hl_parse_result res
    cdef hl.hl_status st
    cdef uint64_t cap
    cdef unsigned flags = hl.HL_PARSE_SKIP_INVALID if skip_invalid else 0
    cdef const uint8_t *src = &buf[0] if buf.shape[0] else NULL
    cdef int64_t *li = NULL
    cdef int64_t *lo = NULL
    if width == 0 or width > <size_t>hl.HL_MAX_WIDTH:
        raise ValueError(f"key width must be 1..{hl.HL_MAX_WIDTH}, got {width}")
    cap = <uint64_t>out.shape[0] // width
    if line_index is not None:
        if <uint64_t>line_index.shape[0] < cap:
            raise ValueError("line_index shorter than out")
        li = &line_index[0] if cap else NULL
    if line_offset is not None:
        if <uint64_t>line_offset.shape[0] < cap:
            raise ValueError("line_offset shorter than out")
        lo = &line_offset[0] if cap else NULL
    cdef uint8_t *dst = &out[0] if out.shape[0] else NULL
    cdef size_t length = buf.shape[0]
    with nogil:
        st = hl.hl_parse_lines(src, length, width, max_line, dst, cap, li, lo, flags,
                               &res)
    return (<int>st, res.n_keys, res.n_lines, res.n_invalid, res.err_line,
            res.err_offset, res.err_length, <int>res.err_status)


def decode_hex(const uint8_t[::1] text, uint8_t[::1] out):
    """Decode len(out) bytes from the 2 * len(out) hex characters of text (any
    case, no separators), e.g. the data buffer of an Arrow string column whose
    cells all have one digest's length.  Returns -1, or the index in text of
    the first non-hex character (out is then partly written)."""
    cdef size_t n = out.shape[0]
    cdef size_t bad = 0
    cdef hl.hl_status st
    if <size_t>text.shape[0] != 2 * n:
        raise ValueError(f"need {2 * n} hex characters, got {text.shape[0]}")
    if n == 0:
        return -1
    with nogil:
        st = hl.hl_hex_decode(&text[0], n, &out[0], &bad)
    return -1 if st == hl.HL_OK else <Py_ssize_t>bad


def decode_hex_at(const uint8_t[::1] text, const int64_t[::1] starts, size_t width,
                  uint8_t[::1] out):
    """Decode one digest of ``width`` bytes from the 2 * width hex characters at
    each offset of ``starts`` in ``text`` (e.g. the digest cells of a CSV chunk)
    into the rows of ``out`` (len(starts) * width bytes).  Returns -1, or the
    index of the first cell that is not hex (out is then partly written)."""
    cdef Py_ssize_t n = starts.shape[0]
    cdef Py_ssize_t i
    cdef Py_ssize_t bad_cell = -1
    cdef size_t bad = 0
    cdef int64_t length = text.shape[0]
    if width == 0 or width > <size_t>hl.HL_MAX_WIDTH:
        raise ValueError(f"key width must be 1..{hl.HL_MAX_WIDTH}, got {width}")
    if <size_t>out.shape[0] != <size_t>n * width:
        raise ValueError("out must hold len(starts) * width bytes")
    for i in range(n):
        if starts[i] < 0 or starts[i] + <int64_t>(2 * width) > length:
            raise ValueError(f"cell {i} at {starts[i]} runs past the text")
    if n == 0:
        return -1
    with nogil:
        for i in range(n):
            if hl.hl_hex_decode(&text[starts[i]], width, &out[i * width],
                                &bad) != hl.HL_OK:
                bad_cell = i
                break
    return bad_cell


def locator_bits_for(uint64_t n, size_t width):
    return hl.hl_locator_bits_for(n, width)


def bloom_blocks_for(uint64_t n, double bits_per_key):
    return hl.hl_bloom_blocks_for(n, bits_per_key)


def prefilter_words_for(uint64_t n, double bits_per_key):
    return hl.hl_prefilter_words_for(n, bits_per_key)


def add_prefilter(const uint8_t[::1] keys, size_t width, uint32_t k, uint64_t seed,
                  uint8_t[::1] out):
    """Set the first-level filter bits of the keys (len(keys) // width rows,
    any order) in out (a whole number of 64-bit words)."""
    if width == 0 or <uint64_t>keys.shape[0] % width:
        raise ValueError("keys size is not a multiple of width")
    if out.shape[0] == 0 or out.shape[0] % 8:
        raise ValueError("prefilter buffer is not a whole number of words")
    cdef uint64_t n = <uint64_t>keys.shape[0] // width
    cdef const uint8_t *kp = &keys[0] if n else NULL
    cdef hl.hl_status st
    with nogil:
        st = hl.hl_prefilter_add(&out[0], <uint64_t>out.shape[0] // 8, k, seed, kp, n,
                                 width)
    _check(st)


def build_locator(const uint8_t[::1] keys, uint64_t n, size_t width, uint32_t bits,
                  uint8_t[::1] out):
    """Write the locator of n sorted keys into out ((2^bits + 1) * 4 bytes)."""
    if <uint64_t>keys.shape[0] != n * width:
        raise ValueError("keys size is not n * width")
    if bits > 32 or <uint64_t>out.shape[0] != 4 * ((1ULL << bits) + 1):
        raise ValueError("locator buffer has the wrong size")
    cdef const uint8_t *k = &keys[0] if n else NULL
    cdef hl.hl_status st
    with nogil:
        st = hl.hl_locator_build(&out[0], bits, k, n, width)
    _check(st)


def build_bloom(const uint8_t[::1] keys, uint64_t n, size_t width, uint64_t nblocks,
                uint32_t k, uint64_t seed, uint8_t[::1] out):
    """Set the Bloom bits of n keys in out (nblocks * 64 zeroed bytes)."""
    if <uint64_t>keys.shape[0] != n * width:
        raise ValueError("keys size is not n * width")
    if <uint64_t>out.shape[0] != nblocks * hl.HL_BLOOM_BLOCK:
        raise ValueError("bloom buffer has the wrong size")
    cdef const uint8_t *kp = &keys[0] if n else NULL
    cdef hl.hl_status st
    with nogil:
        st = hl.hl_bloom_build(&out[0], nblocks, k, seed, kp, n, width)
    _check(st)


def sort_unique(uint8_t[::1] keys, size_t width):
    """Sort the rows of keys (len(keys) // width rows) in memcmp order and
    drop duplicates in place; returns the number of unique rows."""
    # (a bad width is refused by sort_unique_with before any scratch is used)
    cdef bint ok = 0 < width <= <size_t>hl.HL_MAX_WIDTH
    cdef uint64_t n = <uint64_t>keys.shape[0] // width if ok else 0
    return sort_unique_with(keys, width, bytearray(n * width))


def narrow_rows(uint8_t[::1] buf, uint64_t n, size_t from_width, size_t to_width):
    """Keep the first to_width bytes of each of n rows of from_width bytes,
    packed to the front of buf (in place)."""
    if to_width > from_width or n * from_width > <uint64_t>buf.shape[0]:
        raise ValueError("rows do not fit the buffer")
    if n == 0:
        return
    with nogil:
        hl.hl_rows_narrow(&buf[0], n, from_width, to_width)


def merge_rows(list bufs, uint64_t[::1] counts, uint64_t[::1] pos,
               const uint8_t[::1] more, size_t width, uint8_t[::1] out,
               bint unique, uint8_t[::1] last, bint have_last):
    """One step of a k-way merge of sorted runs (csrc/hl_merge.h).

    bufs[i] holds counts[i] sorted rows of width bytes, of which rows
    pos[i].. are not merged yet; more[i] is nonzero while run i continues
    on disk.  Writes merged rows to out until it is full, every input is
    drained, or an input with more[i] runs dry (the caller refills it);
    pos is advanced.  With unique, rows equal to the previous row written
    (last, have_last: carried between calls) are dropped.  Returns
    (rows written, have_last)."""
    cdef size_t k = len(bufs)
    if k > 1024 or width == 0 or width > <size_t>hl.HL_MAX_WIDTH + 8:
        raise ValueError("at most 1024 inputs of rows of 1..72 bytes")
    if (<size_t>counts.shape[0] < k or <size_t>pos.shape[0] < k
            or <size_t>more.shape[0] < k or <size_t>last.shape[0] < width):
        raise ValueError("counts, pos, more or last is too short")
    cdef hl.hl_merge_input *inp = <hl.hl_merge_input *>calloc(
        k + 1, sizeof(hl.hl_merge_input))
    if inp == NULL:
        raise MemoryError()
    cdef const uint8_t[::1] b
    cdef uint64_t cap = <uint64_t>out.shape[0] // width
    cdef uint64_t written = 0
    cdef int have = have_last
    cdef size_t i
    try:
        for i in range(k):
            b = bufs[i]
            if counts[i] * width > <uint64_t>b.shape[0] or pos[i] > counts[i]:
                raise ValueError(f"input {i}: counts or pos out of its buffer")
            inp[i].rows = &b[0] if b.shape[0] else NULL
            inp[i].n = counts[i]
            inp[i].pos = pos[i]
        if cap == 0:
            return 0, have_last
        with nogil:
            written = hl.hl_merge_rows(inp, &more[0] if k else NULL, k, width,
                                       &out[0], cap, unique, &last[0], &have)
        for i in range(k):
            pos[i] = inp[i].pos
    finally:
        free(inp)
    return written, bool(have)


def kernel_name():
    """Which lookup kernels run: "avx2" or "portable"."""
    return hl.hl_cpu_kernel_name().decode()


def filehash_available():
    """True if files can be hashed by hash_files (libcrypto was found)."""
    return bool(hl.hl_filehash_available())


def hash_files(list paths, list expects, unsigned int algorithms, int open_flags,
               uint8_t[::1] buf, int[::1] stop=None, tuple probe=None,
               unsigned int rest=0):
    """Read and hash files with the GIL released (see csrc/hl_filehash.h).

    paths: bytes paths; expects: per path None or (st_dev, st_ino) it must
    still have; algorithms: bit 0 md5, 1 sha1, 2 sha256; buf: read buffer.
    stop: an optional int array; setting stop[0] from another thread makes
    the remaining files (and the one being read) come back as -6.
    probe: optional (md5, sha1, sha256) KeyTables or None: a file whose
    digest is in one is a candidate, and gets the `rest` algorithms too
    when it fitted in buf.
    Returns per path either an int (errno > 0, or a negative HL_FH_* code)
    or a tuple (size, md5, sha1, sha256, candidate) with None for digests
    not computed; candidate is 0, 1 (rest not computed) or 2.
    """
    cdef Py_ssize_t n = len(paths), i
    cdef hl.hl_filejob *jobs
    cdef hl.hl_status st
    cdef size_t bufsize = buf.shape[0]
    cdef const int *stop_ptr = NULL
    cdef const hl.hl_table *tables[3]
    cdef const hl.hl_table **probe_ptr = NULL
    cdef unsigned int done
    cdef KeyTable kt
    held = []
    if stop is not None:
        if stop.shape[0] < 1:
            raise ValueError("empty stop array")
        stop_ptr = &stop[0]
    if len(expects) != n:
        raise ValueError("paths and expects differ in length")
    if bufsize == 0:
        raise ValueError("empty buffer")
    if not hl.hl_filehash_available():
        raise OSError("libcrypto is not available")
    if probe is not None:
        if len(probe) != 3:
            raise ValueError("probe must hold 3 tables or None")
        for i in range(3):
            tables[i] = NULL
            if probe[i] is not None:
                kt = probe[i]
                kt._ensure_open()
                if kt._c_table.width != (16, 20, 32)[i]:
                    raise ValueError("probe table of the wrong width")
                tables[i] = &kt._c_table
                held.append(kt)
        probe_ptr = tables
    if n == 0:
        return []
    jobs = <hl.hl_filejob *>calloc(n, sizeof(hl.hl_filejob))
    if jobs == NULL:
        raise MemoryError()
    for kt in held:
        kt._c_busy += 1
    try:
        for i in range(n):
            p = paths[i]   # bytes, kept alive by the list
            if b"\0" in p:
                raise ValueError("embedded null byte in path")
            jobs[i].path = PyBytes_AS_STRING(p)
            e = expects[i]
            if e is not None:
                jobs[i].check_inode = 1
                jobs[i].expect_dev = e[0]
                jobs[i].expect_ino = e[1]
        with nogil:
            st = hl.hl_filehash_batch(jobs, <size_t>n, algorithms, open_flags,
                                      &buf[0], bufsize, stop_ptr, probe_ptr, rest)
        if st == hl.HL_ENOMEM:
            raise MemoryError()
        if st != hl.HL_OK:
            raise ValueError("bad hash_files arguments")
        out = []
        for i in range(n):
            if jobs[i].status != 0:
                out.append(jobs[i].status)
                continue
            done = algorithms | (rest if jobs[i].candidate == 2 else 0)
            out.append((jobs[i].size,
                        PyBytes_FromStringAndSize(<char *>jobs[i].md5, 16)
                        if done & 1 else None,
                        PyBytes_FromStringAndSize(<char *>jobs[i].sha1, 20)
                        if done & 2 else None,
                        PyBytes_FromStringAndSize(<char *>jobs[i].sha256, 32)
                        if done & 4 else None,
                        jobs[i].candidate))
        return out
    finally:
        for kt in held:
            kt._c_busy -= 1
        free(jobs)


cdef extern from "Python.h":
    object PyUnicode_New(Py_ssize_t size, Py_UCS4 maxchar)
    void *PyUnicode_DATA(object s)


cdef object _hex_str(const uint8_t *p, size_t width):
    """A lowercase hex str of width bytes, written in place (no bytes
    object and no .hex() call in between)."""
    cdef object s = PyUnicode_New(<Py_ssize_t>(2 * width), 127)
    hl.hl_hex_encode(p, width, <uint8_t *>PyUnicode_DATA(s), 0)
    return s


cdef class RecordTable:
    """The records of a dataset inside its mapping: per record the rows of
    its md5, sha1 and sha256 in their key tables (NO_ROW if it has none)
    and its size, plus each table's rowmap (row -> record id).

    A hit's digests and size come out of one call (hit / read) instead of a
    struct unpack, three slices and three .hex() in Python.  Like KeyTable
    it only holds pointers into a buffer that `_owner` keeps alive; offsets
    are validated by hashlookup.store.format and re-checked here."""

    def __init__(self, object buffer, Py_ssize_t rec_off, uint64_t count,
                 list keys, list rowmaps, str what):
        """keys: per algorithm (md5, sha1, sha256) None or (offset, width,
        count) of its key table; rowmaps: None or the offset of its rowmap
        (count uint32 record ids)."""
        cdef const uint8_t[::1] view = buffer
        cdef uint64_t size = <uint64_t>view.shape[0]
        cdef const uint8_t *base = &view[0] if size > 0 else NULL
        cdef int a
        cdef Py_ssize_t off, width, n
        self._c_algs = _ALG_NAMES
        if len(keys) != 3 or len(rowmaps) != 3:
            raise ValueError("expected key spans and rowmaps of md5, sha1, sha256")
        if rec_off < 0 or <uint64_t>rec_off + count * 24 > size:
            raise IndexFormatError(f"{what}: record table outside the file")
        self._c_recs = base + rec_off
        self._c_count = count
        for a in range(3):
            self._c_keys[a] = NULL
            self._c_nkeys[a] = 0
            self._c_width[a] = 0
            self._c_rowmap[a] = NULL
            if keys[a] is None:
                continue
            off, width, n = keys[a]
            if (off < 0 or width <= 0 or width > hl.HL_MAX_WIDTH or n < 0
                    or <uint64_t>off + <uint64_t>n * <uint64_t>width > size):
                raise IndexFormatError(f"{what}: {self._c_algs[a]} keys outside "
                                       "the file")
            self._c_keys[a] = base + off
            self._c_nkeys[a] = n
            self._c_width[a] = width
            if rowmaps[a] is not None:
                off = rowmaps[a]
                if off < 0 or <uint64_t>off + 4 * <uint64_t>n > size:
                    raise IndexFormatError(f"{what}: {self._c_algs[a]} rowmap "
                                           "outside the file")
                self._c_rowmap[a] = base + off
        self._c_view = view
        self._owner = buffer
        self._c_what = what
        self._c_open = True

    def _detach(self):
        """Drop the pointers and the buffer (the dataset is being closed)."""
        self._c_open = False
        self._c_recs = NULL
        for a in range(3):
            self._c_keys[a] = NULL
            self._c_rowmap[a] = NULL
        self._c_view = None
        self._owner = None

    cdef inline uint32_t _u32(self, const uint8_t *p) noexcept:
        return (<uint32_t>p[0] | (<uint32_t>p[1] << 8) | (<uint32_t>p[2] << 16)
                | (<uint32_t>p[3] << 24))

    cdef const uint8_t *_digest(self, uint64_t rid, int a) noexcept:
        """The digest of algorithm `a` of record `rid` in its key table, or
        NULL if the record has none (NO_ROW, no such table, a row past it)."""
        cdef uint32_t row = self._u32(self._c_recs + rid * 24 + 4 * a)
        if row == 0xFFFFFFFFu or self._c_keys[a] == NULL or row >= self._c_nkeys[a]:
            return NULL
        return self._c_keys[a] + <uint64_t>row * self._c_width[a]

    cdef tuple _fields(self, uint64_t rid):
        cdef const uint8_t *d
        cdef int64_t size = <int64_t>self._size(rid)
        cdef int a
        cdef list out = [None, None, None, None]
        for a in range(3):
            d = self._digest(rid, a)
            if d != NULL:
                out[a] = _hex_str(d, self._c_width[a])
        if size >= 0:
            out[3] = size
        return tuple(out)

    cdef uint32_t _record_of(self, int algorithm, int64_t row) except? 0xFFFFFFFF:
        """Record id of row `row` of the key table of `algorithm`."""
        cdef uint32_t rid
        if not self._c_open:
            raise ValueError("I/O operation on closed dataset")
        if (algorithm < 0 or algorithm > 2 or self._c_rowmap[algorithm] == NULL
                or row < 0 or <uint64_t>row >= self._c_nkeys[algorithm]):
            raise IndexError(f"no row {row} in the key table of algorithm "
                             f"{algorithm}")
        rid = self._u32(self._c_rowmap[algorithm] + 4 * <uint64_t>row)
        if rid >= self._c_count:
            raise IndexFormatError(f"{self._c_what}: rowmap of "
                                   f"{self._c_algs[algorithm]} row {row} points "
                                   f"past the {self._c_count} records")
        return rid

    cdef uint64_t _size(self, uint64_t rid) noexcept:
        cdef const uint8_t *rec = self._c_recs + rid * 24
        cdef uint64_t size = 0
        cdef int i
        for i in range(8):
            size |= <uint64_t>rec[16 + i] << (8 * i)
        return size

    def hit(self, int algorithm, int64_t row):
        """(record id, md5, sha1, sha256, size) of row `row` of the key table
        of `algorithm` (0 md5, 1 sha1, 2 sha256): hex str or None for each
        digest the record lacks, size None if unknown."""
        cdef uint32_t rid = self._record_of(algorithm, row)
        return (rid,) + self._fields(rid)

    def read(self, int64_t record_id):
        """(md5, sha1, sha256, size) of one record, as in hit()."""
        if not self._c_open:
            raise ValueError("I/O operation on closed dataset")
        if record_id < 0 or <uint64_t>record_id >= self._c_count:
            raise IndexError(f"record id {record_id} out of range")
        return self._fields(record_id)


# --- Dataset builds: hashdeep lines and sort rows (csrc/hl_hashdeep.h,
# csrc/hl_pack.h) ---

from libc.stdint cimport int32_t

cdef extern from "hl_hashdeep.h" nogil:
    ctypedef struct hl_hd_layout:
        int32_t ncols
        int32_t fname
        int32_t alg[3]
        int32_t size
    ctypedef struct hl_hd_out:
        uint8_t *dig[3]
        uint8_t *has[3]
        int64_t *size
        uint64_t cap
    ctypedef struct hl_hd_result:
        uint64_t records
        uint64_t lines
        uint64_t end
        int32_t stop
    hl.hl_status hl_hashdeep_layout_check(const hl_hd_layout *lay)
    void hl_hashdeep_parse(const uint8_t *buf, size_t len, size_t max_line,
                           const hl_hd_layout *lay, const hl_hd_out *out,
                           hl_hd_result *res)

cdef extern from "hl_pack.h" nogil:
    uint64_t hl_pack_rows(const uint8_t *dig, const uint8_t *has, uint64_t n,
                          size_t width, uint32_t base, uint8_t *out, uint64_t cap)
    void hl_rowmap_invert(const uint8_t *ids, uint64_t n, uint32_t row0,
                          uint32_t lo, uint32_t hi, uint32_t *col)
    uint64_t hl_split_merged(const uint8_t *rows, uint64_t m, size_t width,
                             const uint8_t *prev, uint32_t *carry, uint8_t *ukeys,
                             uint32_t *uheads, uint32_t *edge_row,
                             uint32_t *edge_head)

HASHDEEP_END = 0
HASHDEEP_FULL = 1
HASHDEEP_IRREGULAR = 2


def hashdeep_parse(const uint8_t[::1] data, Py_ssize_t start, tuple layout,
                   size_t max_line, uint8_t[:, ::1] md5, uint8_t[:, ::1] sha1,
                   uint8_t[:, ::1] sha256, uint8_t[::1] has_md5,
                   uint8_t[::1] has_sha1, uint8_t[::1] has_sha256,
                   int64_t[::1] size):
    """Parse hashdeep data lines of data[start:] (start: a line start) into
    the columns, from their row 0, without the GIL (csrc/hl_hashdeep.h).

    layout is (columns, file name column, md5, sha1, sha256, size column),
    -1 for a column the lines lack.  Returns (records, lines consumed, end
    offset in data, stop): stop is HASHDEEP_END, HASHDEEP_FULL (the
    columns are full) or HASHDEEP_IRREGULAR (the line at `end` needs the
    exact per-line reader)."""
    cdef hl_hd_layout lay
    cdef hl_hd_out out
    cdef hl_hd_result res
    cdef Py_ssize_t n = data.shape[0]
    cdef uint64_t cap
    if len(layout) != 6:
        raise ValueError("layout is (columns, file name, md5, sha1, sha256, size)")
    lay.ncols, lay.fname = layout[0], layout[1]
    lay.alg[0], lay.alg[1], lay.alg[2], lay.size = layout[2:]
    if hl_hashdeep_layout_check(&lay) != hl.HL_OK:
        raise ValueError(f"bad hashdeep layout {layout!r}")
    if start < 0 or start > n:
        raise ValueError(f"start {start} outside the data (0..{n})")
    if md5.shape[1] != 16 or sha1.shape[1] != 20 or sha256.shape[1] != 32:
        raise ValueError("digest columns must be 16, 20 and 32 bytes wide")
    cap = <uint64_t>min(md5.shape[0], sha1.shape[0], sha256.shape[0],
                        has_md5.shape[0], has_sha1.shape[0], has_sha256.shape[0],
                        size.shape[0])
    if start == n or cap == 0:
        return 0, 0, start, HASHDEEP_END if start == n else HASHDEEP_FULL
    out.dig[0], out.dig[1], out.dig[2] = &md5[0, 0], &sha1[0, 0], &sha256[0, 0]
    out.has[0], out.has[1], out.has[2] = &has_md5[0], &has_sha1[0], &has_sha256[0]
    out.size = &size[0]
    out.cap = cap
    with nogil:
        hl_hashdeep_parse(&data[start], <size_t>(n - start), max_line, &lay, &out,
                          &res)
    return res.records, res.lines, start + <Py_ssize_t>res.end, res.stop


def pack_rows(const uint8_t[:, ::1] dig, const uint8_t[::1] has, uint32_t base,
              uint8_t[:, ::1] out, Py_ssize_t at):
    """Append the digests of dig whose has flag is set, each followed by
    its row number plus base (4 bytes, big-endian), to out from row `at`
    (rows of dig's width + 4 bytes), without the GIL.  Returns the rows
    written (at most the room left)."""
    cdef size_t width = dig.shape[1]
    cdef uint64_t n = dig.shape[0]
    cdef uint64_t room, k
    if <size_t>out.shape[1] != width + 4:
        raise ValueError("out rows must be 4 bytes wider than the digests")
    if <uint64_t>has.shape[0] != n:
        raise ValueError("has must have one flag per digest")
    if at < 0 or at > out.shape[0]:
        raise ValueError(f"row {at} outside out")
    if <uint64_t>base + n > 0x100000000:
        raise ValueError("row numbers past 32 bits")
    room = <uint64_t>(out.shape[0] - at)
    if n == 0 or room == 0 or width == 0:
        return 0
    with nogil:
        k = hl_pack_rows(&dig[0, 0], &has[0], n, width, base, &out[at, 0], room)
    return k


def rowmap_invert(const uint8_t[::1] ids, uint32_t row0, uint32_t lo, uint32_t hi,
                  uint32_t[::1] col):
    """For each record id ids[i] (little-endian uint32 values) in [lo, hi):
    col[id - lo] = min(col[id - lo], row0 + i), without the GIL."""
    cdef uint64_t n = <uint64_t>ids.shape[0] // 4
    if ids.shape[0] % 4:
        raise ValueError("ids must hold whole uint32 values")
    if hi < lo or <uint64_t>col.shape[0] < <uint64_t>(hi - lo):
        raise ValueError("col must have hi - lo entries")
    if <uint64_t>row0 + n > 0x100000000:
        raise ValueError("row numbers past 32 bits")
    if n == 0 or hi == lo:
        return
    with nogil:
        hl_rowmap_invert(&ids[0], n, row0, lo, hi, &col[0])


def split_merged(const uint8_t[:, ::1] rows, size_t width, object prev,
                 uint32_t carry, uint8_t[:, ::1] ukeys, uint32_t[::1] uheads,
                 uint32_t[::1] edge_row, uint32_t[::1] edge_head):
    """Split merged sort rows (digest + 4-byte big-endian row, memcmp
    order) into keys and edges without the GIL (csrc/hl_pack.h): a row
    whose digest equals the one before (prev: the previous chunk's last
    digest, or None) is an edge from its row to the first row of its equal
    digests (carry: that row when it was in an earlier chunk).  Returns
    (keys, edges, carry for the next chunk); the keys and their rows are
    the first entries of ukeys and uheads, the edges of edge_row and
    edge_head."""
    cdef uint64_t m = rows.shape[0]
    cdef const uint8_t[::1] p
    cdef const uint8_t *pp = NULL
    cdef uint64_t e
    cdef uint32_t c = carry
    if <size_t>rows.shape[1] != width + 4 or <size_t>ukeys.shape[1] != width:
        raise ValueError("rows must be width + 4 bytes wide, ukeys width")
    if (<uint64_t>ukeys.shape[0] < m or <uint64_t>uheads.shape[0] < m
            or <uint64_t>edge_row.shape[0] < m or <uint64_t>edge_head.shape[0] < m):
        raise ValueError("the outputs need room for every row")
    if prev is not None:
        p = prev
        if <size_t>p.shape[0] != width:
            raise ValueError("prev must be one digest")
        pp = &p[0]
    if m == 0:
        return 0, 0, carry
    with nogil:
        e = hl_split_merged(&rows[0, 0], m, width, pp, &c, &ukeys[0, 0], &uheads[0],
                            &edge_row[0], &edge_head[0])
    return m - e, e, c


def sort_unique_with(uint8_t[::1] keys, size_t width, uint8_t[::1] scratch):
    """sort_unique with a caller's scratch buffer (at least len(keys)
    bytes, contents ignored): a build that sorts many buffers reuses one
    instead of allocating and zeroing one per sort."""
    cdef uint64_t n = <uint64_t>keys.shape[0] // width if width else 0
    cdef uint64_t n_out = 0
    cdef hl.hl_status st
    if width == 0 or width > <size_t>hl.HL_MAX_WIDTH:
        raise ValueError(f"key width must be 1..{hl.HL_MAX_WIDTH}, got {width}")
    if n * width != <uint64_t>keys.shape[0]:
        raise ValueError("keys size is not a multiple of width")
    if <uint64_t>scratch.shape[0] < n * width:
        raise ValueError("scratch is smaller than keys")
    if n < 2:
        return n
    with nogil:
        st = hl.hl_sort_unique(&keys[0], n, width, &scratch[0], &n_out)
    _check(st)
    return n_out
