# Declarations mirroring csrc/server/hl_render.h exactly; review together with it.
from libc.stdint cimport uint8_t, uint32_t, uint64_t


cdef extern from "hl_render.h" nogil:
    enum: HL_HEAD_MAX
    ctypedef struct hl_record_view:
        const uint8_t *digest[3]
        size_t width[3]
        uint64_t size
        uint32_t id
    size_t hl_render_circl_head(const hl_record_view *r, char *out) noexcept
    size_t hl_render_native_head(const hl_record_view *r, int algorithm,
                                 char *out) noexcept
