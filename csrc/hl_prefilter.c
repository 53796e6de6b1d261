/*
 * hl_prefilter.c - building and checking the first-level filter (probing
 * is inline in hl_prefilter.h so the search kernels can fuse it).
 */
#include "hl_prefilter.h"

#include <math.h>

static hl_status hl_prefilter_params(uint64_t nwords, uint32_t k, size_t width) {
    if (nwords == 0 || nwords > HL_PRE_MAX_WORDS) return HL_EINVAL;
    if (k == 0 || k > HL_PRE_MAX_K) return HL_EINVAL;
    if (width == 0 || width > HL_MAX_WIDTH) return HL_EINVAL;
    return HL_OK;
}

hl_status hl_prefilter_add(uint8_t *words, uint64_t nwords, uint32_t k, uint64_t seed,
                           const uint8_t *keys, uint64_t n, size_t width) {
    hl_status st = hl_prefilter_params(nwords, k, width);
    if (st) return st;
    for (uint64_t r = 0; r < n; r++) {
        uint64_t h = hl_hash64(keys + r * width, width, seed);
        uint8_t *word = words + 8 * hl_prefilter_word(h, nwords);
        uint64_t m = hl_prefilter_mask(h, k);
        /* byte by byte: the same bytes on any host */
        for (unsigned b = 0; b < 8; b++) word[b] |= (uint8_t)(m >> (8 * b));
    }
    return HL_OK;
}

hl_status hl_prefilter_check(const uint8_t *words, uint64_t nwords, uint32_t k,
                             uint64_t seed, const uint8_t *keys, uint64_t n,
                             size_t width, uint64_t *bad_row) {
    hl_status st = hl_prefilter_params(nwords, k, width);
    if (st) return st;
    for (uint64_t r = 0; r < n; r++) {
        uint64_t h = hl_hash64(keys + r * width, width, seed);
        if (!hl_prefilter_test(words, nwords, k, h)) {
            *bad_row = r;
            return HL_EFORMAT;
        }
    }
    return HL_OK;
}

uint64_t hl_prefilter_words_for(uint64_t n, double bits_per_key) {
    double words = ceil((double)n * bits_per_key / 64.0);
    if (!(words >= 1.0)) return 1;
    if (words >= (double)HL_PRE_MAX_WORDS) return HL_PRE_MAX_WORDS;
    return (uint64_t)words;
}
