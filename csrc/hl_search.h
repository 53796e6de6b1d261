/*
 * hl_search.h - lookups in one key table: Bloom filter (or, in a table
 * without one, the first-level filter), then locator, then a short search
 * over sorted fixed-width rows.
 *
 * A table is three read-only arrays, normally inside a memory-mapped file:
 *   keys    n rows of `width` bytes, sorted in memcmp order, unique;
 *   loc     2^loc_bits + 1 little-endian uint32 row numbers: loc[p] is the
 *           first row whose top loc_bits bits (of the big-endian prefix) are
 *           >= p, and loc[2^loc_bits] == n;
 *   bloom   nblocks 64-byte blocks (hl_bloom.h), or nblocks == 0 for none;
 *   pre     pre_words 64-bit words (hl_prefilter.h), or pre_words == 0 for
 *           none: set by hl_table_set_prefilter after hl_table_init.
 *
 * Invariants checked by hl_table_init: width in 1..HL_MAX_WIDTH, loc_bits
 * <= min(32, 8*width), n < 2^32, Bloom parameters in range.  The contents of
 * loc are NOT trusted (checking them is O(2^loc_bits)): every value read is
 * clamped to [0, n], so a corrupt file gives wrong answers (caught by
 * verify) but never an out-of-bounds read.
 */
#ifndef HL_SEARCH_H
#define HL_SEARCH_H

#include "hl_common.h"

#define HL_MAX_KEYS 0xFFFFFFFFULL

typedef struct hl_table {
    const uint8_t *keys;   /* n * width bytes, sorted, unique */
    uint64_t n;            /* number of rows */
    size_t width;          /* bytes per key, 1..HL_MAX_WIDTH */
    const uint8_t *loc;    /* (2^loc_bits + 1) LE uint32 */
    uint32_t loc_bits;     /* prefix bits indexed by the locator */
    const uint8_t *bloom;  /* nblocks * 64 bytes, or NULL */
    uint64_t nblocks;      /* 0 = no Bloom filter */
    uint32_t bloom_k;      /* probes per key */
    uint64_t bloom_seed;   /* seed of hl_hash64 */
    const uint8_t *pre;    /* pre_words * 8 bytes, or NULL */
    uint64_t pre_words;    /* 0 = no first-level filter */
    uint32_t pre_k;        /* bits probed per key */
    uint64_t pre_seed;     /* seed of hl_hash64 (the Bloom seed: one hash) */
    /* the kernel for this table's width and filters, chosen once by
     * hl_table_init and hl_table_set_prefilter (not a per-call dispatch) */
    int64_t (*find)(const struct hl_table *t, const uint8_t *key);
} hl_table;

hl_status hl_table_init(hl_table *t, const uint8_t *keys, uint64_t n, size_t width,
                        const uint8_t *loc, uint32_t loc_bits, const uint8_t *bloom,
                        uint64_t nblocks, uint32_t bloom_k, uint64_t bloom_seed);

/* Attach a first-level filter (hl_prefilter.h) to an initialised table;
 * nwords == 0 removes it.  HL_EINVAL for parameters out of range. */
hl_status hl_table_set_prefilter(hl_table *t, const uint8_t *words, uint64_t nwords,
                                 uint32_t k, uint64_t seed);

/* Row of key (width bytes) or -1. */
int64_t hl_table_find(const hl_table *t, const uint8_t *key);

/* hl_table_find for a table that hl_table_init accepted: the chosen kernel
 * called inline, without the out-of-line hop and its check (single lookups
 * from Python spend ~120 instructions per miss: each one shows). */
HL_INLINE int64_t hl_table_find_ready(const hl_table *t, const uint8_t *key) {
    return t->find(t, key);
}

/* Batch forms over n keys packed back to back (n * width bytes).  Keys are
 * processed in groups with software prefetch so that the cache misses of a
 * group overlap.  They do not touch Python and may run without the GIL. */
void hl_table_find_many(const hl_table *t, const uint8_t *keys, uint64_t n,
                        int64_t *out);
void hl_table_contains_many(const hl_table *t, const uint8_t *keys, uint64_t n,
                            uint8_t *out);

/* Structural checks for verify(): O(n).  HL_EFORMAT with *bad_row set to
 * the first offending row (keys) or locator slot (locator). */
hl_status hl_table_check_sorted(const uint8_t *keys, uint64_t n, size_t width,
                                uint64_t *bad_row);
hl_status hl_table_check_locator(const hl_table *t, uint64_t *bad_slot);

/* Writes the locator for sorted keys: (2^bits + 1) LE uint32 into loc. */
hl_status hl_locator_build(uint8_t *loc, uint32_t bits, const uint8_t *keys,
                           uint64_t n, size_t width);

/* Locator bits for n keys: about one to two keys per slot. */
uint32_t hl_locator_bits_for(uint64_t n, size_t width);

#endif /* HL_SEARCH_H */
