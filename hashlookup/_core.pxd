# C-level interface of hashlookup._core for other Cython modules (the lookup
# service's hashlookup.server._render and the dataset lookups of
# hashlookup._lookup cimport it): the attribute and C method declarations of
# the classes they read, the one status -> exception mapping and the key
# decoding, called through C pointers, never as Python attributes.  Cython
# requires a class declared here to declare all its attributes and C
# methods here, not in _core.pyx.
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t

cimport hl


cdef int _check(hl.hl_status st) except -1
# The type name of key, for error messages.
cdef str _kind(object key)
# Point *out at the width raw bytes of key (bytes, hex str or buffer).
cdef int _load_key(object key, size_t width, uint8_t *buf, const uint8_t **out,
                   str what, object item) except -1
# A lowercase hex str of width bytes.
cdef object _hex_str(const uint8_t *p, size_t width)


cdef class KeyTable:
    cdef hl.hl_table _c_table
    cdef const uint8_t[::1] _c_view
    cdef object _owner          # keeps the buffer _c_table points into alive
    cdef bint _c_open
    cdef Py_ssize_t _c_fastw    # key width while open, -1 closed (`in`'s one test)
    cdef Py_ssize_t _c_busy     # batch calls running without the GIL
    cdef str _c_what            # "an md5 digest" etc., for error messages

    cdef int _ensure_open(self) except -1
    cdef bint _contains_slow(self, object key) except -1


cdef class RecordTable:
    cdef const uint8_t[::1] _c_view
    cdef object _owner
    cdef const uint8_t *_c_recs
    cdef uint64_t _c_count
    cdef const uint8_t *_c_keys[3]
    cdef uint64_t _c_nkeys[3]
    cdef size_t _c_width[3]
    cdef const uint8_t *_c_rowmap[3]
    cdef bint _c_open
    cdef str _c_what
    cdef tuple _c_algs

    cdef uint32_t _u32(self, const uint8_t *p) noexcept
    cdef const uint8_t *_digest(self, uint64_t rid, int a) noexcept
    cdef tuple _fields(self, uint64_t rid)
    cdef uint32_t _record_of(self, int algorithm, int64_t row) except? 0xFFFFFFFF
    cdef uint64_t _size(self, uint64_t rid) noexcept
