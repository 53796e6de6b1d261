/*
 * hl_search.c - scalar and batch lookups in a key table, plus the locator
 * builder and the structural checks used by verify().
 */
#include "hl_search.h"

#include "hl_bloom.h"
#include "hl_hash.h"

/* Keys per group in the batch kernels: enough independent cache misses to
 * keep the core's line-fill buffers busy (about 10-20 on current x86). */
#define HL_GROUP 16

/* ------------------------------------------------------------------ */
/* Set-up                                                              */
/* ------------------------------------------------------------------ */

hl_status hl_table_init(hl_table *t, const uint8_t *keys, uint64_t n, size_t width,
                        const uint8_t *loc, uint32_t loc_bits, const uint8_t *bloom,
                        uint64_t nblocks, uint32_t bloom_k, uint64_t bloom_seed) {
    memset(t, 0, sizeof(*t));
    if (width == 0 || width > HL_MAX_WIDTH) return HL_EINVAL;
    if (n > HL_MAX_KEYS) return HL_EINVAL;
    if (n > 0 && keys == NULL) return HL_EINVAL;
    if (loc == NULL || loc_bits > 32 || loc_bits > 8 * width) return HL_EINVAL;
    if (nblocks > 0) {
        if (bloom == NULL || nblocks > HL_BLOOM_MAX_BLOCKS) return HL_EINVAL;
        if (bloom_k == 0 || bloom_k > HL_BLOOM_MAX_K) return HL_EINVAL;
    }
    t->keys = keys;
    t->n = n;
    t->width = width;
    t->loc = loc;
    t->loc_bits = loc_bits;
    t->bloom = nblocks ? bloom : NULL;
    t->nblocks = nblocks;
    t->bloom_k = bloom_k;
    t->bloom_seed = bloom_seed;
    return HL_OK;
}

/* ------------------------------------------------------------------ */
/* Scalar lookup                                                       */
/* ------------------------------------------------------------------ */

HL_INLINE uint64_t hl_slot(const hl_table *t, uint64_t prefix) {
    /* Shifting a 64-bit value by 64 is undefined: bits == 0 is one slot. */
    return t->loc_bits ? prefix >> (64 - t->loc_bits) : 0;
}

/* Locator entries come from the file: clamp so a corrupt value cannot send
 * the search outside the key table. */
HL_INLINE uint64_t hl_loc_at(const hl_table *t, uint64_t slot) {
    uint64_t v = hl_load_le32(t->loc + 4 * slot);
    return v > t->n ? t->n : v;
}

/* memcmp order of row vs key, deciding on the 8-byte prefix when it differs
 * (almost always) and comparing the rest only on a tie. */
HL_INLINE int hl_cmp_row(const hl_table *t, const uint8_t *row, const uint8_t *key,
                         uint64_t key_prefix) {
    uint64_t rp = hl_key_prefix64(row, t->width);
    if (rp != key_prefix) return rp < key_prefix ? -1 : 1;
    if (t->width <= 8) return 0;
    return memcmp(row + 8, key + 8, t->width - 8);
}

/* Search rows [lo, hi): bisect while the range is long (only for skewed
 * keys sharing prefixes), then scan the one or two rows left. */
HL_INLINE int64_t hl_search_range(const hl_table *t, const uint8_t *key,
                                  uint64_t prefix, uint64_t lo, uint64_t hi) {
    const size_t w = t->width;
    while (hi - lo > 8) {
        uint64_t mid = lo + (hi - lo) / 2;
        int c = hl_cmp_row(t, t->keys + mid * w, key, prefix);
        if (c == 0) return (int64_t)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (uint64_t r = lo; r < hi; r++) {
        int c = hl_cmp_row(t, t->keys + r * w, key, prefix);
        if (c == 0) return (int64_t)r;
        if (c > 0) break;
    }
    return -1;
}

HL_INLINE int hl_bloom_pass(const hl_table *t, uint64_t h) {
    const uint8_t *block =
        t->bloom + hl_bloom_block_index(h, t->nblocks) * HL_BLOOM_BLOCK;
    return hl_bloom_block_test(block, h, t->bloom_k);
}

int64_t hl_table_find(const hl_table *t, const uint8_t *key) {
    if (t->nblocks &&
        !hl_bloom_pass(t, hl_hash64(key, t->width, t->bloom_seed)))
        return -1;
    uint64_t prefix = hl_key_prefix64(key, t->width);
    uint64_t slot = hl_slot(t, prefix);
    uint64_t lo = hl_loc_at(t, slot), hi = hl_loc_at(t, slot + 1);
    if (lo >= hi) return -1;
    return hl_search_range(t, key, prefix, lo, hi);
}

/* ------------------------------------------------------------------ */
/* Batch lookup                                                        */
/* ------------------------------------------------------------------ */

/* Group prefetching: each stage issues the loads of the next stage for the
 * whole group before any of them is used, so up to HL_GROUP misses are in
 * flight.  Stage 1 hashes and prefetches Bloom blocks; stage 2 tests them
 * and prefetches locator slots of the survivors; stage 3 reads the row
 * ranges and prefetches the first row; stage 4 compares. */
static void hl_batch(const hl_table *t, const uint8_t *keys, uint64_t n,
                     int64_t *rows_out, uint8_t *mask_out) {
    const size_t w = t->width;
    uint64_t h[HL_GROUP], prefix[HL_GROUP], lo[HL_GROUP], hi[HL_GROUP];
    int live[HL_GROUP];

    for (uint64_t base = 0; base < n; base += HL_GROUP) {
        uint64_t m = n - base < HL_GROUP ? n - base : HL_GROUP;
        const uint8_t *kp = keys + base * w;

        if (t->nblocks) {
            for (uint64_t j = 0; j < m; j++) {
                h[j] = hl_hash64(kp + j * w, w, t->bloom_seed);
                HL_PREFETCH(t->bloom +
                            hl_bloom_block_index(h[j], t->nblocks) * HL_BLOOM_BLOCK);
            }
            for (uint64_t j = 0; j < m; j++) live[j] = hl_bloom_pass(t, h[j]);
        } else {
            for (uint64_t j = 0; j < m; j++) live[j] = 1;
        }
        for (uint64_t j = 0; j < m; j++) {
            if (!live[j]) continue;
            prefix[j] = hl_key_prefix64(kp + j * w, w);
            HL_PREFETCH(t->loc + 4 * hl_slot(t, prefix[j]));
        }
        for (uint64_t j = 0; j < m; j++) {
            if (!live[j]) continue;
            uint64_t slot = hl_slot(t, prefix[j]);
            lo[j] = hl_loc_at(t, slot);
            hi[j] = hl_loc_at(t, slot + 1);
            if (lo[j] >= hi[j])
                live[j] = 0;
            else
                HL_PREFETCH(t->keys + lo[j] * w);
        }
        for (uint64_t j = 0; j < m; j++) {
            int64_t r = -1;
            if (live[j]) r = hl_search_range(t, kp + j * w, prefix[j], lo[j], hi[j]);
            if (rows_out) rows_out[base + j] = r;
            if (mask_out) mask_out[base + j] = (uint8_t)(r >= 0);
        }
    }
}

void hl_table_find_many(const hl_table *t, const uint8_t *keys, uint64_t n,
                        int64_t *out) {
    hl_batch(t, keys, n, out, NULL);
}

void hl_table_contains_many(const hl_table *t, const uint8_t *keys, uint64_t n,
                            uint8_t *out) {
    hl_batch(t, keys, n, NULL, out);
}

/* ------------------------------------------------------------------ */
/* Locator building and structural checks                              */
/* ------------------------------------------------------------------ */

uint32_t hl_locator_bits_for(uint64_t n, size_t width) {
    /* round(log2(n)) - 1 slots: 1.4 to 2.8 keys per slot on average, and at
     * most about 2.8 bytes of locator per key. */
    uint32_t bits = 0;
    while (bits < 40 && ((double)(1ULL << bits) * 1.41421356) < (double)n) bits++;
    bits = bits > 0 ? bits - 1 : 0;
    if (bits > 32) bits = 32;
    if (bits > 8 * width) bits = (uint32_t)(8 * width);
    return bits;
}

hl_status hl_locator_build(uint8_t *loc, uint32_t bits, const uint8_t *keys,
                           uint64_t n, size_t width) {
    if (bits > 32 || width == 0 || width > HL_MAX_WIDTH || bits > 8 * width)
        return HL_EINVAL;
    if (n > HL_MAX_KEYS) return HL_EINVAL;
    hl_table t;
    memset(&t, 0, sizeof(t));
    t.width = width;
    t.loc_bits = bits;
    uint64_t slots = 1ULL << bits;
    uint64_t r = 0;
    for (uint64_t s = 0; s <= slots; s++) {
        while (r < n && hl_slot(&t, hl_key_prefix64(keys + r * width, width)) < s) r++;
        hl_store_le32(loc + 4 * s, (uint32_t)r);
    }
    return HL_OK;
}

hl_status hl_table_check_sorted(const uint8_t *keys, uint64_t n, size_t width,
                                uint64_t *bad_row) {
    for (uint64_t r = 1; r < n; r++) {
        if (memcmp(keys + (r - 1) * width, keys + r * width, width) >= 0) {
            *bad_row = r;
            return HL_EFORMAT;
        }
    }
    return HL_OK;
}

hl_status hl_table_check_locator(const hl_table *t, uint64_t *bad_slot) {
    uint64_t slots = 1ULL << t->loc_bits;
    uint64_t r = 0;
    for (uint64_t s = 0; s <= slots; s++) {
        while (r < t->n &&
               hl_slot(t, hl_key_prefix64(t->keys + r * t->width, t->width)) < s)
            r++;
        if (hl_load_le32(t->loc + 4 * s) != r) {
            *bad_slot = s;
            return HL_EFORMAT;
        }
    }
    return HL_OK;
}
