/*
 * hl_prefilter.h - the first-level filter ("prefilter"): a Bloom filter
 * blocked by 64-bit words, a few bits per key, meant to be probed before
 * the main blocked Bloom filter (hl_bloom.h) so that most misses are
 * answered from the L2 cache.  Measured, that did not pay (hl_filters in
 * hl_search_kernels.inc): lookups probe it only in tables without a Bloom
 * filter, where it spares most misses the locator and the key rows.
 *
 * Why words and not cache lines: at 2-6 bits per key a 64-bit block has
 * the same false-positive rate as a 512-bit one (measured, docs/FORMAT.md),
 * and testing it is one load and one AND.  Why small: the main filter (12
 * bits per key) of a million-key table is larger than a core's L2, and the
 * query stream of a Python loop (fresh bytes objects) evicts what is not
 * touched often; a filter of a few hundred KiB stays resident and answers
 * about 85 % of misses without a trip to L3 or DRAM.
 *
 * Layout: nwords little-endian 64-bit words.  For a key K with
 * h = hl_hash64(K, seed) (hl_hash.h) and g = h * HL_PRE_MULT mod 2^64:
 *   word     ((g >> 32) * nwords) >> 32       (multiply-shift reduction)
 *   bit j    ((g mod 2^32) >> (6 j)) mod 64   for j in 0..k-1
 * where bit b of word i is bit b mod 8 of byte 8 i + b / 8 (so the stored
 * filter reads the same on any host).  A key may be present only if every
 * probed bit is set.  The multiplication decorrelates the word from the
 * main filter's block, which takes the top bits of h itself.
 *
 * Invariants: 1 <= k <= HL_PRE_MAX_K, 1 <= nwords <= HL_PRE_MAX_WORDS.
 */
#ifndef HL_PREFILTER_H
#define HL_PREFILTER_H

#include "hl_common.h"
#include "hl_hash.h"

#define HL_PRE_MULT 0xD6E8FEB86659FD93ULL
#define HL_PRE_MAX_K 4
#define HL_PRE_MAX_WORDS (1ULL << 32)

HL_INLINE uint64_t hl_prefilter_word(uint64_t h, uint64_t nwords) {
    return (((h * HL_PRE_MULT) >> 32) * nwords) >> 32;
}

/* The k probed bits of a key as a mask over its word. */
HL_INLINE uint64_t hl_prefilter_mask(uint64_t h, uint32_t k) {
    uint32_t lo = (uint32_t)(h * HL_PRE_MULT);
    uint64_t m = 0;
    for (uint32_t j = 0; j < k; j++) m |= 1ULL << ((lo >> (6 * j)) & 63);
    return m;
}

/* 1 if the key with hash h may be present, 0 if it is certainly absent. */
HL_INLINE int hl_prefilter_test(const uint8_t *words, uint64_t nwords, uint32_t k,
                                uint64_t h) {
    uint64_t w = hl_load_le64(words + 8 * hl_prefilter_word(h, nwords));
    uint64_t m = hl_prefilter_mask(h, k);
    return (w & m) == m;
}

/* Set the bits of n keys (width bytes each) in the filter.  Keys may come
 * in any order, split over any number of calls, duplicates included: the
 * result only depends on the set of keys, so a streaming build adds its
 * chunks as they come. */
hl_status hl_prefilter_add(uint8_t *words, uint64_t nwords, uint32_t k, uint64_t seed,
                           const uint8_t *keys, uint64_t n, size_t width);

/* HL_OK if every one of n keys passes; else HL_EFORMAT with *bad_row set
 * to the first key the filter rejects (verify()). */
hl_status hl_prefilter_check(const uint8_t *words, uint64_t nwords, uint32_t k,
                             uint64_t seed, const uint8_t *keys, uint64_t n,
                             size_t width, uint64_t *bad_row);

/* Words for n keys at bits_per_key (at least one, at most the maximum). */
uint64_t hl_prefilter_words_for(uint64_t n, double bits_per_key);

#endif /* HL_PREFILTER_H */
