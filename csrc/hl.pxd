# Declarations mirroring csrc/hl_*.h exactly; review together with them.
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t


cdef extern from "hl_common.h" nogil:
    ctypedef enum hl_status:
        HL_OK
        HL_EINVAL
        HL_EFORMAT
        HL_EHEX
        HL_ELENGTH
        HL_ENOSPACE
        HL_ENOMEM
        HL_ETOOLONG
    int HL_MAX_WIDTH


cdef extern from "hl_hash.h" nogil:
    uint64_t hl_hash64(const uint8_t *key, size_t width, uint64_t seed) noexcept


cdef extern from "hl_bloom.h" nogil:
    int HL_BLOOM_BLOCK
    int HL_BLOOM_MAX_K
    hl_status hl_bloom_build(uint8_t *bits, uint64_t nblocks, uint32_t k, uint64_t seed,
                             const uint8_t *keys, uint64_t n, size_t width) noexcept
    uint64_t hl_bloom_blocks_for(uint64_t n, double bits_per_key) noexcept


cdef extern from "hl_prefilter.h" nogil:
    int HL_PRE_MAX_K
    hl_status hl_prefilter_add(uint8_t *words, uint64_t nwords, uint32_t k,
                               uint64_t seed, const uint8_t *keys, uint64_t n,
                               size_t width) noexcept
    hl_status hl_prefilter_check(const uint8_t *words, uint64_t nwords, uint32_t k,
                                 uint64_t seed, const uint8_t *keys, uint64_t n,
                                 size_t width, uint64_t *bad_row) noexcept
    uint64_t hl_prefilter_words_for(uint64_t n, double bits_per_key) noexcept


cdef extern from "hl_search.h" nogil:
    ctypedef struct hl_table:
        const uint8_t *keys
        uint64_t n
        size_t width
        const uint8_t *loc
        uint32_t loc_bits
        const uint8_t *bloom
        uint64_t nblocks
        uint32_t bloom_k
        uint64_t bloom_seed
        const uint8_t *pre
        uint64_t pre_words
        uint32_t pre_k
        uint64_t pre_seed
        # find: the kernel chosen at set-up, a function pointer used by C only

    hl_status hl_table_init(hl_table *t, const uint8_t *keys, uint64_t n, size_t width,
                            const uint8_t *loc, uint32_t loc_bits, const uint8_t *bloom,
                            uint64_t nblocks, uint32_t bloom_k,
                            uint64_t bloom_seed) noexcept
    hl_status hl_table_set_prefilter(hl_table *t, const uint8_t *words, uint64_t nwords,
                                     uint32_t k, uint64_t seed) noexcept
    int64_t hl_table_find(const hl_table *t, const uint8_t *key) noexcept
    int64_t hl_table_find_ready(const hl_table *t, const uint8_t *key) noexcept
    void hl_table_find_many(const hl_table *t, const uint8_t *keys, uint64_t n,
                            int64_t *out) noexcept
    void hl_table_contains_many(const hl_table *t, const uint8_t *keys, uint64_t n,
                                uint8_t *out) noexcept
    hl_status hl_table_check_sorted(const uint8_t *keys, uint64_t n, size_t width,
                                    uint64_t *bad_row) noexcept
    hl_status hl_table_check_locator(const hl_table *t, uint64_t *bad_slot) noexcept
    hl_status hl_locator_build(uint8_t *loc, uint32_t bits, const uint8_t *keys,
                               uint64_t n, size_t width) noexcept
    uint32_t hl_locator_bits_for(uint64_t n, size_t width) noexcept


cdef extern from "hl_hex.h" nogil:
    unsigned HL_PARSE_SKIP_INVALID
    ctypedef struct hl_parse_result:
        uint64_t n_keys
        uint64_t n_lines
        uint64_t n_invalid
        uint64_t err_line
        uint64_t err_offset
        uint64_t err_length
        hl_status err_status
        uint64_t end

    hl_status hl_hex_decode(const uint8_t *hex, size_t width, uint8_t *out,
                            size_t *bad_pos) noexcept
    void hl_hex_encode(const uint8_t *inp, size_t width, uint8_t *out,
                       int upper) noexcept
    hl_status hl_parse_lines(const uint8_t *buf, size_t len, size_t width,
                             size_t max_line, uint8_t *out, uint64_t cap,
                             int64_t *line_index, int64_t *line_offset,
                             unsigned flags, hl_parse_result *res) noexcept


cdef extern from "hl_linematch.h" nogil:
    unsigned HL_MATCH_INVERT
    unsigned HL_MATCH_COUNT
    ctypedef struct hl_match_result:
        hl_parse_result parse
        uint64_t n_found
        uint64_t n_selected
        size_t out_len
    hl_status hl_match_lines(const hl_table *t, const uint8_t *buf, size_t len,
                             size_t max_line, unsigned flags, uint8_t *out,
                             hl_match_result *res) noexcept


cdef extern from "hl_sort.h" nogil:
    hl_status hl_sort_unique(uint8_t *keys, uint64_t n, size_t width, uint8_t *tmp,
                             uint64_t *n_out) noexcept
    void hl_rows_narrow(uint8_t *rows, uint64_t n, size_t from_width,
                        size_t to_width) noexcept


cdef extern from "hl_merge.h" nogil:
    ctypedef struct hl_merge_input:
        const uint8_t *rows
        uint64_t n
        uint64_t pos
    uint64_t hl_merge_rows(hl_merge_input *inp, const uint8_t *more, size_t k,
                           size_t width, uint8_t *out, uint64_t cap, int unique,
                           uint8_t *last, int *have_last) noexcept


cdef extern from "hl_cpu.h" nogil:
    const char *hl_cpu_kernel_name() noexcept


cdef extern from "hl_filehash.h" nogil:
    unsigned HL_FH_MD5
    unsigned HL_FH_SHA1
    unsigned HL_FH_SHA256
    ctypedef struct hl_filejob:
        const char *path
        uint64_t expect_dev
        uint64_t expect_ino
        int check_inode
        int status
        uint64_t size
        int candidate
        uint8_t md5[16]
        uint8_t sha1[20]
        uint8_t sha256[32]
    int hl_filehash_available() noexcept
    hl_status hl_filehash_batch(hl_filejob *jobs, size_t n, unsigned algorithms,
                                int open_flags, uint8_t *buf, size_t bufsize,
                                const int *stop, const hl_table *const *probe,
                                unsigned rest) noexcept
