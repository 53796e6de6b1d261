/*
 * hl_search.c - scalar and batch lookups in a key table, plus the locator
 * builder and the structural checks used by verify().
 */
#include "hl_search.h"

#include "hl_bloom.h"
#include "hl_cpu.h"
#include "hl_hash.h"
#include "hl_prefilter.h"

/* Keys per group in the batch kernels: enough independent cache misses to
 * keep the core's line-fill buffers busy (about 10-20 on current x86). */
#ifndef HL_GROUP
#define HL_GROUP 16
#endif
/* Pipeline depth of the batch kernels (stages, see the .inc file). */
#define HL_STAGES 5

/* Per-group state of the batch pipeline. */
typedef struct hl_group {
    uint64_t hp[HL_GROUP];     /* key hashes (first-level filter's seed) */
    uint64_t h[HL_GROUP];      /* key hashes (Bloom seed) */
    const uint8_t *blk[HL_GROUP]; /* Bloom block to test (a dummy if dead) */
    uint64_t prefix[HL_GROUP]; /* 8-byte big-endian key prefixes */
    uint64_t lo[HL_GROUP];     /* candidate row range [lo, hi) */
    uint64_t hi[HL_GROUP];
    uint32_t live[HL_GROUP];   /* still possibly present */
    uint32_t any;              /* some key of the group is live */
} hl_group;

/* ------------------------------------------------------------------ */
/* Set-up                                                              */
/* ------------------------------------------------------------------ */

static void hl_pick_kernel(hl_table *t);

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
    hl_pick_kernel(t);
    return HL_OK;
}

hl_status hl_table_set_prefilter(hl_table *t, const uint8_t *words, uint64_t nwords,
                                 uint32_t k, uint64_t seed) {
    if (nwords > 0) {
        if (words == NULL || nwords > HL_PRE_MAX_WORDS) return HL_EINVAL;
        if (k == 0 || k > HL_PRE_MAX_K) return HL_EINVAL;
    }
    t->pre = nwords ? words : NULL;
    t->pre_words = nwords;
    t->pre_k = nwords ? k : 0;
    t->pre_seed = seed;
    hl_pick_kernel(t);
    return HL_OK;
}

/* ------------------------------------------------------------------ */
/* Lookup kernels                                                      */
/* ------------------------------------------------------------------ */

/* The kernels below are written once as inline functions taking the key
 * width `w` and Bloom probe count `k` as arguments; the variants at the end
 * pass constants for the common digest widths, so the compiler unrolls the
 * hash, the comparisons and the Bloom probes (about 3x fewer instructions
 * per key than the generic variant). */

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

/* Big-endian word `i` (bytes 8i .. 8i+7) of a key, zero padded past the
 * width: comparing these words in order is comparing the keys in memcmp
 * order. */
HL_INLINE uint64_t hl_key_word(const uint8_t *key, size_t i, size_t w) {
    if (8 * i + 8 <= w) return hl_load_be64(key + 8 * i);
    return hl_key_prefix64(key + 8 * i, w - 8 * i);
}

/* memcmp order of row vs key (-1, 0, 1), deciding on the first word (the
 * prefix, already computed for the key) when it differs, which is almost
 * always.  With a constant w the loop unrolls into a few loads. */
HL_INLINE int hl_cmp_row(const uint8_t *row, const uint8_t *key, uint64_t key_prefix,
                         size_t w) {
    uint64_t a = hl_key_prefix64(row, w), b = key_prefix;
    for (size_t i = 1; a == b && 8 * i < w; i++) {
        a = hl_key_word(row, i, w);
        b = hl_key_word(key, i, w);
    }
    return (a > b) - (a < b);
}

/* Equality of row and key without branches on the data. */
HL_INLINE int hl_eq_row(const uint8_t *row, const uint8_t *key, uint64_t key_prefix,
                        size_t w) {
    uint64_t diff = hl_key_prefix64(row, w) ^ key_prefix;
    for (size_t i = 1; 8 * i < w; i++) diff |= hl_key_word(row, i, w) ^ hl_key_word(key, i, w);
    return diff == 0;
}

/* Search rows [lo, hi): bisect while the range is long (only for skewed
 * keys sharing prefixes), then test the few rows left for equality. */
HL_INLINE int64_t hl_search_range(const hl_table *t, const uint8_t *key,
                                  uint64_t prefix, uint64_t lo, uint64_t hi,
                                  size_t w) {
    while (hi - lo > 8) {
        uint64_t mid = lo + (hi - lo) / 2;
        int c = hl_cmp_row(t->keys + mid * w, key, prefix, w);
        if (c == 0) return (int64_t)mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    int64_t found = -1;
    for (uint64_t r = lo; r < hi; r++)
        if (hl_eq_row(t->keys + r * w, key, prefix, w)) found = (int64_t)r;
    return found;
}

HL_INLINE const uint8_t *hl_bloom_block_of(const hl_table *t, uint64_t h) {
    return t->bloom + hl_bloom_block_index(h, t->nblocks) * HL_BLOOM_BLOCK;
}

/* Which unrolled variant serves a table: 16/20/32 for the digest widths
 * with 8 Bloom probes (or no Bloom filter, and then 2 first-level probes or
 * no first-level filter), 0 for the generic kernel. */
static int hl_variant(const hl_table *t) {
    if (t->nblocks && t->bloom_k != 8) return 0;
    if (!t->nblocks && t->pre_words && t->pre_k != 2) return 0;
    return t->width == 16 ? 16 : t->width == 20 ? 20 : t->width == 32 ? 32 : 0;
}

/* The kernels are instantiated from hl_search_kernels.inc: once portable,
 * and, on x86-64 with GCC or Clang, once for AVX2 (chosen at run time by
 * hl_cpu_has_avx2(); HL_DISABLE_SIMD forces the portable one). */
#define HL_KNAME(x) x##_portable
#define HL_KATTR
#define HL_KBLOOM(block, h, k) hl_bloom_block_test(block, h, k)
#include "hl_search_kernels.inc"
#undef HL_KNAME
#undef HL_KATTR
#undef HL_KBLOOM

#if HL_HAVE_AVX2
#define HL_KNAME(x) x##_avx2
#define HL_KATTR __attribute__((target("avx2")))
#define HL_KBLOOM(block, h, k) ((k) == 8 ? hl_bloom_test8_avx2(block, h) \
                                         : hl_bloom_block_test(block, h, k))
#include "hl_search_kernels.inc"
#undef HL_KNAME
#undef HL_KATTR
#undef HL_KBLOOM
#endif

static int hl_use_avx2(void) {
#if HL_HAVE_AVX2
    static int cached = -1;
    if (cached < 0) cached = hl_cpu_has_avx2();
    return cached;
#else
    return 0;
#endif
}

static void hl_pick_kernel(hl_table *t) {
#if HL_HAVE_AVX2
    if (hl_use_avx2()) {
        t->find = hl_pick_find_avx2(t);
        return;
    }
#endif
    t->find = hl_pick_find_portable(t);
}

int64_t hl_table_find(const hl_table *t, const uint8_t *key) {
    if (HL_UNLIKELY(t->find == NULL)) return -1; /* never initialised */
    return t->find(t, key);
}

static void hl_batch(const hl_table *t, const uint8_t *keys, uint64_t n,
                     int64_t *rows, uint8_t *mask) {
    /* Batches skip the first-level filter when there is a Bloom filter, as
     * single lookups do: the pipeline already hides the Bloom filter's
     * misses behind prefetches, so the extra test only adds work (about 25
     * instructions per key, +20 to +40 % time measured by
     * benchmarks/compare.py).  Without a Bloom filter it spares most misses
     * the locator and key rows. */
    hl_table plain;
    if (t->pre_words && t->nblocks) {
        plain = *t;
        plain.pre = NULL;
        plain.pre_words = 0;
        plain.pre_k = 0;
        t = &plain;
    }
#if HL_HAVE_AVX2
    if (hl_use_avx2()) {
        hl_batch_avx2(t, keys, n, rows, mask);
        return;
    }
#endif
    hl_batch_portable(t, keys, n, rows, mask);
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
