# Declarations mirroring csrc/near/hl_near.h exactly; review together with it.
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t


cdef extern from "hl_common.h" nogil:
    ctypedef enum hl_status:
        HL_OK
        HL_EINVAL
        HL_EFORMAT
        HL_ENOMEM


cdef extern from "hl_near.h" nogil:
    int HL_NEAR_BYTES
    int HL_NEAR_BITS
    int HL_NEAR_MIN_CHUNKS
    int HL_NEAR_MAX_CHUNKS
    int HL_NEAR_MAX_BUCKET_BITS
    int HL_NEAR_DEFAULT_CHUNKS
    uint64_t HL_NEAR_MAX_ROWS

    ctypedef struct hl_near_index:
        const uint8_t *hashes
        const uint8_t *quality
        uint64_t n
        uint32_t m
        uint32_t bucket_bits

    ctypedef struct hl_near_out:
        uint64_t *query
        uint32_t *row
        uint16_t *distance
        size_t n
        size_t cap

    enum:
        HL_NEAR_AUTO
        HL_NEAR_MIH
        HL_NEAR_LINEAR

    hl_status hl_near_body_size(uint32_t m, uint32_t b, uint64_t n,
                                uint64_t *size) noexcept
    uint32_t hl_near_bucket_bits_for(uint32_t m, uint64_t n) noexcept
    hl_status hl_near_build(const uint8_t *hashes, uint64_t n, uint32_t m, uint32_t b,
                            uint8_t *body, uint64_t body_size) noexcept
    hl_status hl_near_init(hl_near_index *ix, const uint8_t *hashes,
                           const uint8_t *quality, uint64_t n, uint32_t m, uint32_t b,
                           const uint8_t *body, uint64_t body_size) noexcept
    hl_status hl_near_check(const hl_near_index *ix, uint32_t *bad_table) noexcept
    void hl_near_out_init(hl_near_out *out) noexcept
    void hl_near_out_free(hl_near_out *out) noexcept
    hl_status hl_near_search_many(const hl_near_index *ix, const uint8_t *queries,
                                  uint64_t nq, uint32_t max_distance,
                                  uint32_t min_quality, int strategy,
                                  uint64_t first_no, hl_near_out *out) noexcept
    int hl_near_uses_mih(const hl_near_index *ix, uint32_t max_distance) noexcept
    uint32_t hl_near_distance(const uint8_t *a, const uint8_t *b) noexcept
