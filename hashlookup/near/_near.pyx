"""hashlookup.near._near: the thin Cython layer over the near-search core
(csrc/near/hl_near.h).

NearTable holds C pointers into a buffer (normally the dataset's mapping)
that it keeps alive, and answers radius searches without the GIL; the
module-level functions size and build an index body.  Queries arrive as
packed 32-byte rows; answers leave as packed arrays (bytes) that the
Python layer (hashlookup.near.index) views with numpy.  Status codes
become exceptions in one place (_check).
"""

from cpython.bytes cimport PyBytes_FromStringAndSize
from libc.stdint cimport uint8_t, uint32_t, uint64_t

cimport hl_near as hn

from hashlookup.errors import IndexFormatError

HASH_BYTES = hn.HL_NEAR_BYTES
HASH_BITS = hn.HL_NEAR_BITS
MIN_CHUNKS = hn.HL_NEAR_MIN_CHUNKS
MAX_CHUNKS = hn.HL_NEAR_MAX_CHUNKS
MAX_BUCKET_BITS = hn.HL_NEAR_MAX_BUCKET_BITS
DEFAULT_CHUNKS = hn.HL_NEAR_DEFAULT_CHUNKS
MAX_ROWS = hn.HL_NEAR_MAX_ROWS
AUTO = hn.HL_NEAR_AUTO
MIH = hn.HL_NEAR_MIH
LINEAR = hn.HL_NEAR_LINEAR

_CLOSED = "I/O operation on closed dataset"


cdef int _check(hn.hl_status st) except -1:
    """The one place where C status codes become Python exceptions."""
    if st == hn.HL_OK:
        return 0
    if st == hn.HL_EFORMAT:
        raise IndexFormatError("inconsistent PDQ index (a row number out of range)")
    if st == hn.HL_EINVAL:
        raise ValueError("PDQ index parameters out of range")
    if st == hn.HL_ENOMEM:
        raise MemoryError()
    raise ValueError(f"near-search core returned status {<int>st}")


def body_size(uint32_t chunks, uint32_t bucket_bits, uint64_t n):
    """Bytes of the index body for `n` hashes, or ValueError if the
    parameters are out of range."""
    cdef uint64_t size = 0
    _check(hn.hl_near_body_size(chunks, bucket_bits, n, &size))
    return size


def bucket_bits_for(uint32_t chunks, uint64_t n):
    """The bucket address bits the builder uses for `n` hashes."""
    return hn.hl_near_bucket_bits_for(chunks, n)


def build(const uint8_t[::1] hashes, uint32_t chunks, uint32_t bucket_bits):
    """The index body (bytearray) over packed 32-byte hashes; GIL released."""
    cdef uint64_t n = <uint64_t>hashes.shape[0] // hn.HL_NEAR_BYTES
    cdef uint64_t size = 0
    cdef hn.hl_status st
    if <uint64_t>hashes.shape[0] != n * hn.HL_NEAR_BYTES:
        raise ValueError("hashes must be packed 32-byte rows")
    _check(hn.hl_near_body_size(chunks, bucket_bits, n, &size))
    body = bytearray(size)
    cdef uint8_t[::1] out = body
    cdef const uint8_t *src = &hashes[0] if n else NULL
    cdef uint8_t *dst = &out[0] if size else NULL
    with nogil:
        st = hn.hl_near_build(src, n, chunks, bucket_bits, dst, size)
    _check(st)
    return body


def distance(const uint8_t[::1] a, const uint8_t[::1] b):
    """Hamming distance of two 32-byte hashes."""
    if a.shape[0] != hn.HL_NEAR_BYTES or b.shape[0] != hn.HL_NEAR_BYTES:
        raise ValueError("hashes are 32 bytes")
    return hn.hl_near_distance(&a[0], &b[0])


cdef class NearTable:
    """Radius searches over one PDQ index inside a buffer (an mmap).

    ``_attach`` points it at the hashes, the quality bytes and the index
    body (offsets validated by hashlookup.store.format, re-checked here so
    that a bug there cannot become an out-of-bounds read).
    """

    cdef hn.hl_near_index _c_ix
    cdef const uint8_t[::1] _c_view
    cdef object _owner
    cdef bint _c_open
    cdef int _c_busy

    def _attach(self, object buffer, uint64_t hashes_off, uint64_t quality_off,
                uint64_t n, uint32_t chunks, uint32_t bucket_bits, uint64_t body_off,
                uint64_t body_len):
        cdef const uint8_t[::1] view = buffer
        cdef uint64_t size = <uint64_t>view.shape[0]
        if self._c_open:
            raise ValueError("table already attached")
        if (n > hn.HL_NEAR_MAX_ROWS or hashes_off + n * hn.HL_NEAR_BYTES > size
                or quality_off + n > size or body_off + body_len > size
                or body_off > size):
            raise IndexFormatError("PDQ section outside the file")
        cdef const uint8_t *base = &view[0] if size else NULL
        _check(hn.hl_near_init(&self._c_ix, base + hashes_off, base + quality_off, n,
                               chunks, bucket_bits, base + body_off, body_len))
        self._c_view = view
        self._owner = buffer
        self._c_open = True

    def _detach(self):
        """Drop the pointers and the buffer; BufferError while searches in
        other threads still use them."""
        if self._c_busy:
            raise BufferError(f"cannot close while {self._c_busy} near search(es) "
                              "run in other threads")
        self._c_open = False
        self._c_ix.hashes = NULL
        self._c_ix.quality = NULL
        self._c_ix.n = 0
        self._c_view = None
        self._owner = None

    @property
    def closed(self):
        return not self._c_open

    def __len__(self):
        return self._c_ix.n if self._c_open else 0

    def uses_mih(self, uint32_t max_distance):
        """Whether the automatic strategy uses the index at this radius."""
        if not self._c_open:
            raise ValueError(_CLOSED)
        return bool(hn.hl_near_uses_mih(&self._c_ix, max_distance))

    def search(self, const uint8_t[::1] queries, uint32_t max_distance,
               uint32_t min_quality=0, int strategy=0, uint64_t first_no=0,
               bint release_gil=True):
        """Rows within `max_distance` of each packed 32-byte query.

        Returns ``(query, row, distance)`` as bytes of packed uint64,
        uint32 and uint16: per query (numbered from `first_no`) nearest
        first, then by row, each row once.
        """
        cdef uint64_t nq = <uint64_t>queries.shape[0] // hn.HL_NEAR_BYTES
        cdef hn.hl_near_out out
        cdef hn.hl_status st
        cdef const uint8_t *qp
        if not self._c_open:
            raise ValueError(_CLOSED)
        if <uint64_t>queries.shape[0] != nq * hn.HL_NEAR_BYTES:
            raise ValueError("queries must be packed 32-byte rows")
        if strategy < hn.HL_NEAR_AUTO or strategy > hn.HL_NEAR_LINEAR:
            raise ValueError(f"unknown strategy {strategy}")
        qp = &queries[0] if nq else NULL
        hn.hl_near_out_init(&out)
        self._c_busy += 1
        try:
            if release_gil:
                with nogil:
                    st = hn.hl_near_search_many(&self._c_ix, qp, nq, max_distance,
                                                min_quality, strategy, first_no, &out)
            else:
                st = hn.hl_near_search_many(&self._c_ix, qp, nq, max_distance,
                                            min_quality, strategy, first_no, &out)
            _check(st)
            return (
                PyBytes_FromStringAndSize(<char *>out.query, out.n * 8),
                PyBytes_FromStringAndSize(<char *>out.row, out.n * 4),
                PyBytes_FromStringAndSize(<char *>out.distance, out.n * 2),
            )
        finally:
            self._c_busy -= 1
            hn.hl_near_out_free(&out)

    def check(self):
        """Full structural check (verify()): IndexFormatError naming the
        first damaged table."""
        cdef uint32_t bad = 0
        cdef hn.hl_status st
        if not self._c_open:
            raise ValueError(_CLOSED)
        self._c_busy += 1
        try:
            with nogil:
                st = hn.hl_near_check(&self._c_ix, &bad)
        finally:
            self._c_busy -= 1
        if st == hn.HL_EFORMAT:
            raise IndexFormatError(f"PDQ index table {bad} does not match the hashes")
        _check(st)
