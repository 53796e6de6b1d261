/*
 * test_core.c - the C core tested directly, without Python, against
 * brute-force references: search kernels (every width class, with and
 * without Bloom and first-level filters, corrupt locators), the
 * first-level filter's layout, Bloom build/probe, the stable
 * hash, sort/dedupe, row narrowing, hex decoding, the line parser, and
 * the file reader's md5 (eight-lane kernel, streamed parts, scalar tail,
 * batches of real files) against libcrypto's MD5.
 * (The lookup service's record JSON, csrc/server/, has test_render.c.)
 *
 * Built and run by `make ctest` under -fsanitize=address,undefined and
 * under valgrind memcheck; run once with HASHLOOKUP_DISABLE_SIMD=1 for the
 * portable kernels and once without for AVX2 (where the CPU has it).
 * Usage: test_core [portable|avx2]  (checks which kernel set is in use).
 * Every input comes from a fixed-seed xorshift generator.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hl_bloom.h"
#include "hl_cpu.h"
#include "hl_filehash.h"
#include "hl_hashdeep.h"
#include "hl_hash.h"
#include "hl_hex.h"
#include "hl_linematch.h"
#include "hl_merge.h"
#include "hl_md5x8.h"
#include "hl_pack.h"
#include "hl_prefilter.h"
#include "hl_search.h"
#include "hl_sort.h"

#include "check.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;

static uint64_t rnd(void) {
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

static size_t rnd_below(size_t n) { return n ? (size_t)(rnd() % n) : 0; }

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        perror("malloc");
        exit(2);
    }
    return p;
}

/* ------------------------------------------------------------------ */
/* References                                                          */
/* ------------------------------------------------------------------ */

static size_t ref_width; /* for qsort's comparator */

static int ref_cmp(const void *a, const void *b) { return memcmp(a, b, ref_width); }

/* Sorted unique copy of keys: qsort plus a linear dedupe. */
static uint64_t ref_sort_unique(uint8_t *keys, uint64_t n, size_t width) {
    if (n == 0) return 0;
    ref_width = width;
    qsort(keys, n, width, ref_cmp);
    uint64_t u = 1;
    for (uint64_t i = 1; i < n; i++)
        if (memcmp(keys + i * width, keys + (u - 1) * width, width) != 0)
            memmove(keys + u++ * width, keys + i * width, width);
    return u;
}

/* Row of key in sorted unique keys, or -1: a linear scan for small
 * tables, libc bsearch (over the qsort-checked order) for larger ones. */
static int64_t ref_find(const uint8_t *keys, uint64_t n, size_t width,
                        const uint8_t *key) {
    if (n > 64) {
        ref_width = width;
        const uint8_t *hit = bsearch(key, keys, n, width, ref_cmp);
        return hit ? (int64_t)((uint64_t)(hit - keys) / width) : -1;
    }
    for (uint64_t r = 0; r < n; r++)
        if (memcmp(keys + r * width, key, width) == 0) return (int64_t)r;
    return -1;
}

/* hl_hash64 spelled out byte by byte from docs/FORMAT.md. */
static uint64_t ref_hash(const uint8_t *key, size_t width, uint64_t seed) {
    uint64_t h = seed ^ ((uint64_t)width * HL_HASH_M1);
    for (size_t i = 0, word = 1; i < width; i += 8, word++) {
        uint64_t v = 0;
        for (size_t j = 0; j < 8 && i + j < width; j++)
            v |= (uint64_t)key[i + j] << (8 * j);
        uint64_t m = (v ^ (word * HL_HASH_M3)) * HL_HASH_M2;
        h ^= (m << 31) | (m >> 33);
    }
    h ^= h >> 33;
    h *= HL_HASH_F1;
    h ^= h >> 33;
    h *= HL_HASH_F2;
    h ^= h >> 33;
    return h;
}

/* ------------------------------------------------------------------ */
/* Key sets                                                            */
/* ------------------------------------------------------------------ */

/* n random keys; with skew, a quarter share all but their last byte and
 * another quarter their first 8 bytes (long locator runs, deep radix). */
static void fill_keys(uint8_t *keys, uint64_t n, size_t width, int skew) {
    for (uint64_t i = 0; i < n * width; i++) keys[i] = (uint8_t)rnd();
    if (!skew || n < 8) return;
    for (uint64_t i = 1; i < n / 4; i++)
        memcpy(keys + i * width, keys, width > 1 ? width - 1 : 1);
    size_t pre = width < 8 ? width / 2 : 8;
    for (uint64_t i = n / 4 + 1; i < n / 2; i++)
        memcpy(keys + i * width, keys + (n / 4) * width, pre);
}

/* ------------------------------------------------------------------ */
/* Sort and dedupe                                                     */
/* ------------------------------------------------------------------ */

static void test_sort(void) {
    static const size_t widths[] = {1, 2, 3, 8, 16, 20, 32, 33, 64};
    static const uint64_t sizes[] = {0, 1, 2, 3, 31, 33, 100, 2000, 10000};
    for (size_t wi = 0; wi < sizeof widths / sizeof *widths; wi++) {
        for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
            for (int skew = 0; skew < 2; skew++) {
                size_t w = widths[wi];
                uint64_t n = sizes[si];
                uint8_t *keys = xmalloc(n * w), *ref = xmalloc(n * w),
                        *tmp = xmalloc(n * w);
                fill_keys(keys, n, w, skew);
                /* duplicates: copy some rows over others */
                for (uint64_t i = 0; n > 1 && i < n / 3; i++)
                    memcpy(keys + rnd_below(n) * w, keys + rnd_below(n) * w, w);
                memcpy(ref, keys, n * w);
                uint64_t got = 0, want = ref_sort_unique(ref, n, w);
                hl_status st = hl_sort_unique(keys, n, w, tmp, &got);
                CHECK(st == HL_OK, "status %d", st);
                CHECK(got == want, "width %zu n %llu: %llu unique, want %llu", w,
                      (unsigned long long)n, (unsigned long long)got,
                      (unsigned long long)want);
                CHECK(got != want || memcmp(keys, ref, want * w) == 0,
                      "width %zu n %llu: wrong order", w, (unsigned long long)n);
                free(keys);
                free(ref);
                free(tmp);
            }
        }
    }
    uint64_t out;
    uint8_t b[4];
    CHECK(hl_sort_unique(b, 1, 0, b, &out) == HL_EINVAL, "width 0");
    CHECK(hl_sort_unique(b, 1, HL_MAX_WIDTH + 1, b, &out) == HL_EINVAL, "width 65");

    /* narrowing: row i keeps its first to bytes */
    uint8_t rows[40 * 7], want[40 * 3];
    for (size_t i = 0; i < sizeof rows; i++) rows[i] = (uint8_t)rnd();
    for (size_t i = 0; i < 40; i++) memcpy(want + 3 * i, rows + 7 * i, 3);
    hl_rows_narrow(rows, 40, 7, 3);
    CHECK(memcmp(rows, want, sizeof want) == 0, "narrow 7 -> 3");
}

/* k sorted unique runs merged in steps through buffers of `block` rows
 * (refilled when the merge stops), against sorting everything at once. */
static void test_merge(void) {
    static const size_t widths[] = {1, 4, 16, 20};
    enum { K = 5, MAXN = 600 };
    for (size_t wi = 0; wi < sizeof widths / sizeof *widths; wi++) {
        for (uint64_t block = 1; block <= 64; block *= 4) {
            for (int unique = 0; unique < 2; unique++) {
                size_t w = widths[wi];
                uint8_t *run[K];
                uint64_t len[K], total = 0, taken[K];
                uint8_t *all = xmalloc(K * MAXN * w);
                for (int r = 0; r < K; r++) {
                    uint64_t n = rnd_below(MAXN);
                    run[r] = xmalloc(n * w + 1);
                    fill_keys(run[r], n, w, r & 1);
                    len[r] = ref_sort_unique(run[r], n, w);
                    memcpy(all + total * w, run[r], len[r] * w);
                    total += len[r];
                    taken[r] = 0;
                }
                uint64_t want = ref_sort_unique(all, total, w);
                uint8_t *out = xmalloc(total * w + 1), *last = xmalloc(w);
                hl_merge_input in[K];
                uint8_t more[K];
                uint64_t got = 0;
                int have = 0, calls = 0;
                for (int r = 0; r < K; r++) in[r].n = in[r].pos = 0;
                for (;;) {
                    for (int r = 0; r < K; r++) { /* refill the dry buffers */
                        if (in[r].pos < in[r].n) continue;
                        uint64_t m = len[r] - taken[r] < block ? len[r] - taken[r] : block;
                        in[r].rows = run[r] + taken[r] * w;
                        in[r].n = m;
                        in[r].pos = 0;
                        taken[r] += m;
                        more[r] = taken[r] < len[r];
                    }
                    uint64_t cap = 1 + rnd_below(50);
                    if (got + cap > total) cap = total - got;
                    uint64_t n = hl_merge_rows(in, more, K, w, out + got * w, cap,
                                               unique, last, &have);
                    got += n;
                    calls++;
                    int dry = 0;
                    for (int r = 0; r < K; r++) dry |= in[r].pos == in[r].n && more[r];
                    if ((n == 0 && !dry) || calls > 100000) break;
                }
                int sorted = 1;
                for (uint64_t i = 1; i < got; i++) {
                    int c = memcmp(out + (i - 1) * w, out + i * w, w);
                    if (c > 0 || (unique && c == 0)) sorted = 0;
                }
                CHECK(sorted, "width %zu block %llu: merged rows out of order", w,
                      (unsigned long long)block);
                if (unique) {
                    CHECK(got == want && memcmp(out, all, want * w) == 0,
                          "width %zu block %llu: %llu rows, want %llu", w,
                          (unsigned long long)block, (unsigned long long)got,
                          (unsigned long long)want);
                } else { /* every row of every run, in order */
                    CHECK(got == total, "width %zu: %llu rows, want every %llu", w,
                          (unsigned long long)got, (unsigned long long)total);
                    uint64_t u = ref_sort_unique(out, got, w);
                    CHECK(u == want && memcmp(out, all, want * w) == 0,
                          "width %zu block %llu: other rows than the runs'", w,
                          (unsigned long long)block);
                }
                for (int r = 0; r < K; r++) free(run[r]);
                free(all);
                free(out);
                free(last);
            }
        }
    }
    hl_merge_input one = {NULL, 0, 0};
    uint8_t no = 0, buf[8];
    int have = 0;
    CHECK(hl_merge_rows(&one, &no, 1, 0, buf, 1, 0, buf, &have) == UINT64_MAX,
          "width 0 refused");
    CHECK(hl_merge_rows(&one, &no, 1, 8, buf, 1, 0, buf, &have) == 0, "empty input");
}

/* ------------------------------------------------------------------ */
/* Hash and Bloom filter                                               */
/* ------------------------------------------------------------------ */

static void test_hash_and_bloom(void) {
    uint8_t key[HL_MAX_WIDTH];
    for (size_t w = 1; w <= HL_MAX_WIDTH; w++) {
        for (int i = 0; i < 20; i++) {
            for (size_t j = 0; j < w; j++) key[j] = (uint8_t)rnd();
            uint64_t seed = rnd();
            CHECK(hl_hash64(key, w, seed) == ref_hash(key, w, seed), "hash width %zu",
                  w);
        }
    }
    /* Every inserted key passes its block test, for every k; the AVX2
     * 8-probe test agrees with the portable one. */
    const uint64_t n = 3000;
    const size_t w = 20;
    uint8_t *keys = xmalloc(n * w);
    fill_keys(keys, n, w, 0);
    for (uint32_t k = 1; k <= HL_BLOOM_MAX_K; k++) {
        uint64_t nblocks = hl_bloom_blocks_for(n, 10.0), seed = rnd();
        uint8_t *bits = calloc(nblocks, HL_BLOOM_BLOCK);
        CHECK(hl_bloom_build(bits, nblocks, k, seed, keys, n, w) == HL_OK, "build");
        uint64_t missing = 0, fp = 0;
        for (uint64_t r = 0; r < n; r++) {
            uint64_t h = hl_hash64(keys + r * w, w, seed);
            const uint8_t *blk = bits + hl_bloom_block_index(h, nblocks) * HL_BLOOM_BLOCK;
            missing += !hl_bloom_block_test(blk, h, k);
            uint8_t other[20];
            for (size_t j = 0; j < w; j++) other[j] = (uint8_t)rnd();
            uint64_t h2 = hl_hash64(other, w, seed);
            const uint8_t *b2 = bits + hl_bloom_block_index(h2, nblocks) * HL_BLOOM_BLOCK;
            fp += (uint64_t)hl_bloom_block_test(b2, h2, k);
#if HL_HAVE_AVX2
            if (k == 8 && hl_cpu_has_avx2()) {
                CHECK(hl_bloom_test8_avx2(blk, h) == hl_bloom_block_test(blk, h, 8),
                      "avx2 member");
                CHECK(hl_bloom_test8_avx2(b2, h2) == hl_bloom_block_test(b2, h2, 8),
                      "avx2 other");
            }
#endif
        }
        CHECK(missing == 0, "k %u: %llu inserted keys fail the filter", k,
              (unsigned long long)missing);
        /* 10 bits per key, k >= 8: about 1-2 %.  (With k < 8 only k of
         * the 8 lanes of a block are probed, so the rate is much higher:
         * the builder's default is 8.) */
        if (k >= 8)
            CHECK(fp < n / 20, "k %u: %llu false positives of %llu", k,
                  (unsigned long long)fp, (unsigned long long)n);
        free(bits);
    }
    free(keys);
    uint8_t blk[64];
    CHECK(hl_bloom_build(blk, 0, 8, 0, blk, 0, 16) == HL_EINVAL, "0 blocks");
    CHECK(hl_bloom_build(blk, 1, 0, 0, blk, 0, 16) == HL_EINVAL, "k 0");
    CHECK(hl_bloom_build(blk, 1, HL_BLOOM_MAX_K + 1, 0, blk, 0, 16) == HL_EINVAL, "k 17");
    CHECK(hl_bloom_blocks_for(0, 12.0) == 1, "blocks for 0 keys");
    CHECK(hl_bloom_blocks_for(1000, 0.0 / 0.0) == 1, "blocks for NaN bits");
    CHECK(hl_bloom_blocks_for(~0ULL, 1e9) == HL_BLOOM_MAX_BLOCKS, "blocks capped");
}

/* The first-level filter against its description in docs/FORMAT.md,
 * computed bit by bit; chunk order; the check; sizes; refused params. */
static void test_prefilter(void) {
    enum { N = 5000, W = 20 };
    uint8_t *keys = xmalloc(N * W);
    for (size_t i = 0; i < N * W; i++) keys[i] = (uint8_t)rnd();
    const uint64_t nwords = hl_prefilter_words_for(N, 4.0);
    CHECK(nwords == (N * 4 + 63) / 64, "words for %d keys: %llu", N,
          (unsigned long long)nwords);
    for (uint32_t k = 1; k <= HL_PRE_MAX_K; k++) {
        uint8_t *a = calloc(nwords, 8), *ref = calloc(nwords, 8);
        /* reference: the words and bits of the spec, one byte at a time */
        for (int r = 0; r < N; r++) {
            uint64_t h = hl_hash64(keys + r * W, W, 99);
            uint64_t g = h * 0xD6E8FEB86659FD93ULL;
            uint64_t word = ((g >> 32) * nwords) >> 32;
            for (uint32_t j = 0; j < k; j++) {
                unsigned bit = (unsigned)(((uint32_t)g >> (6 * j)) % 64);
                ref[8 * word + bit / 8] |= (uint8_t)(1u << (bit % 8));
            }
        }
        /* added in three chunks, last first */
        CHECK(hl_prefilter_add(a, nwords, k, 99, keys + 3000 * W, N - 3000, W) == HL_OK,
              "add");
        CHECK(hl_prefilter_add(a, nwords, k, 99, keys + 1000 * W, 2000, W) == HL_OK, "add");
        CHECK(hl_prefilter_add(a, nwords, k, 99, keys, 1000, W) == HL_OK, "add");
        CHECK(memcmp(a, ref, nwords * 8) == 0, "k %u: filter differs from the spec", k);
        uint64_t bad = 77;
        CHECK(hl_prefilter_check(a, nwords, k, 99, keys, N, W, &bad) == HL_OK && bad == 77,
              "check of a good filter");
        /* clear the bits of key 1234's word: the check names a row <= 1234 */
        uint64_t h = hl_hash64(keys + 1234 * W, W, 99);
        memset(a + 8 * hl_prefilter_word(h, nwords), 0, 8);
        CHECK(hl_prefilter_check(a, nwords, k, 99, keys, N, W, &bad) == HL_EFORMAT &&
              bad <= 1234, "check of a damaged filter: row %llu", (unsigned long long)bad);
        /* the false-positive rate is about what the sizing promises */
        uint64_t fp = 0;
        uint8_t q[W];
        for (int i = 0; i < 20000; i++) {
            for (int j = 0; j < W; j++) q[j] = (uint8_t)rnd();
            fp += (uint64_t)hl_prefilter_test(ref, nwords, k, hl_hash64(q, W, 99));
        }
        CHECK(fp > 0 && fp < 20000 / 2, "k %u: %llu false positives of 20000", k,
              (unsigned long long)fp);
        free(a);
        free(ref);
    }
    uint8_t w8[8] = {0};
    CHECK(hl_prefilter_add(w8, 0, 2, 0, keys, 1, W) == HL_EINVAL, "0 words");
    CHECK(hl_prefilter_add(w8, 1, 0, 0, keys, 1, W) == HL_EINVAL, "k 0");
    CHECK(hl_prefilter_add(w8, 1, HL_PRE_MAX_K + 1, 0, keys, 1, W) == HL_EINVAL, "k big");
    CHECK(hl_prefilter_add(w8, 1, 2, 0, keys, 1, 0) == HL_EINVAL, "width 0");
    CHECK(hl_prefilter_add(w8, 1, 2, 0, keys, 1, 65) == HL_EINVAL, "width 65");
    CHECK(hl_prefilter_words_for(0, 4.0) == 1, "words for 0 keys");
    CHECK(hl_prefilter_words_for(1000, 0.0 / 0.0) == 1, "words for NaN bits");
    CHECK(hl_prefilter_words_for(~0ULL, 1e9) == HL_PRE_MAX_WORDS, "words capped");
    hl_table t;
    uint8_t loc[8] = {0};
    CHECK(hl_table_init(&t, keys, 1, W, loc, 0, NULL, 0, 0, 0) == HL_OK, "init");
    CHECK(hl_table_set_prefilter(&t, NULL, 1, 2, 0) == HL_EINVAL, "no words");
    CHECK(hl_table_set_prefilter(&t, w8, 1, 0, 0) == HL_EINVAL, "prefilter k 0");
    CHECK(hl_table_set_prefilter(&t, w8, 1, 5, 0) == HL_EINVAL, "prefilter k 5");
    CHECK(hl_table_set_prefilter(&t, w8, 0, 0, 0) == HL_OK && t.pre == NULL, "none");
    /* an empty filter word answers every key absent, even a member */
    CHECK(hl_table_set_prefilter(&t, w8, 1, 2, 0) == HL_OK, "set");
    CHECK(hl_table_find(&t, keys) == -1, "empty filter rejects");
    free(keys);
}

/* ------------------------------------------------------------------ */
/* Search kernels                                                      */
/* ------------------------------------------------------------------ */

typedef struct table_fixture {
    uint8_t *keys, *loc, *bloom, *pre;
    uint64_t n, nblocks, pre_words;
    size_t width;
    uint32_t loc_bits, k, pre_k;
    hl_table t;
} table_fixture;

/* pre: 0 no first-level filter; 1 two probes, the Bloom seed; 2 three
 * probes, another seed (the kernels' generic path). */
static void make_table(table_fixture *f, uint64_t n, size_t width, int skew,
                       int bloom, uint32_t k, int loc_delta, int pre) {
    memset(f, 0, sizeof(*f));
    uint8_t *raw = xmalloc(n * width), *tmp = xmalloc(n * width);
    fill_keys(raw, n, width, skew);
    uint64_t u = 0;
    CHECK(hl_sort_unique(raw, n, width, tmp, &u) == HL_OK, "sort");
    free(tmp);
    f->keys = raw;
    f->n = u;
    f->width = width;
    int bits = (int)hl_locator_bits_for(u, width) + loc_delta;
    if (bits < 0) bits = 0;
    if (bits > 20) bits = 20;
    if ((size_t)bits > 8 * width) bits = (int)(8 * width);
    f->loc_bits = (uint32_t)bits;
    f->loc = xmalloc(4 * ((1ULL << bits) + 1));
    CHECK(hl_locator_build(f->loc, f->loc_bits, raw, u, width) == HL_OK, "locator");
    f->k = k;
    if (bloom) {
        f->nblocks = hl_bloom_blocks_for(u, 12.0);
        f->bloom = calloc(f->nblocks, HL_BLOOM_BLOCK);
        CHECK(hl_bloom_build(f->bloom, f->nblocks, k, 42, raw, u, width) == HL_OK,
              "bloom");
    }
    CHECK(hl_table_init(&f->t, u ? raw : NULL, u, width, f->loc, f->loc_bits,
                        f->bloom, f->nblocks, k, 42) == HL_OK,
          "init");
    if (pre) {
        uint64_t seed = pre == 1 ? 42 : 7;
        f->pre_k = pre == 1 ? 2 : 3;
        f->pre_words = hl_prefilter_words_for(u, 4.0);
        f->pre = calloc(f->pre_words, 8);
        /* in two chunks, the second first: order must not matter */
        uint64_t half = u / 2;
        CHECK(hl_prefilter_add(f->pre, f->pre_words, f->pre_k, seed, raw + half * width,
                               u - half, width) == HL_OK, "prefilter add");
        CHECK(hl_prefilter_add(f->pre, f->pre_words, f->pre_k, seed, raw, half,
                               width) == HL_OK, "prefilter add");
        uint64_t bad = 0;
        CHECK(hl_prefilter_check(f->pre, f->pre_words, f->pre_k, seed, raw, u, width,
                                 &bad) == HL_OK, "prefilter check");
        CHECK(hl_table_set_prefilter(&f->t, f->pre, f->pre_words, f->pre_k, seed) ==
              HL_OK, "set prefilter");
    }
}

static void free_table(table_fixture *f) {
    free(f->keys);
    free(f->loc);
    free(f->bloom);
    free(f->pre);
}

/* Queries: every key, near misses (one byte changed), random keys, keys
 * just below/above table keys; checked by scalar and both batch kernels
 * against the linear-scan reference. */
static void check_queries(table_fixture *f, int exact) {
    const size_t w = f->width;
    const uint64_t nq = 2 * f->n + 50;
    uint8_t *q = xmalloc(nq * w);
    for (uint64_t i = 0; i < nq; i++) {
        uint8_t *dst = q + i * w;
        if (f->n && i < f->n) {
            memcpy(dst, f->keys + i * w, w);
        } else if (f->n && i < 2 * f->n) {
            memcpy(dst, f->keys + rnd_below(f->n) * w, w);
            dst[rnd_below(w)] ^= (uint8_t)(1u << rnd_below(8));
        } else {
            for (size_t j = 0; j < w; j++) dst[j] = (uint8_t)rnd();
        }
    }
    int64_t *rows = xmalloc(nq * sizeof(int64_t));
    uint8_t *mask = xmalloc(nq);
    hl_table_find_many(&f->t, q, nq, rows);
    hl_table_contains_many(&f->t, q, nq, mask);
    for (uint64_t i = 0; i < nq; i++) {
        const uint8_t *key = q + i * w;
        int64_t one = hl_table_find(&f->t, key);
        CHECK(one == rows[i], "width %zu: scalar %lld, batch %lld", w, (long long)one,
              (long long)rows[i]);
        CHECK(mask[i] == (rows[i] >= 0), "width %zu: mask vs rows", w);
        /* whatever the locator holds: a row answered holds the key */
        CHECK(rows[i] < 0 || ((uint64_t)rows[i] < f->n &&
                              memcmp(f->keys + rows[i] * w, key, w) == 0),
              "width %zu: row %lld does not hold the key", w, (long long)rows[i]);
        if (exact) {
            int64_t want = ref_find(f->keys, f->n, w, key);
            CHECK(rows[i] == want, "width %zu n %llu bits %u bloom %llu k %u: row %lld, "
                  "want %lld", w, (unsigned long long)f->n, f->loc_bits,
                  (unsigned long long)f->nblocks, f->k, (long long)rows[i],
                  (long long)want);
        }
    }
    free(q);
    free(rows);
    free(mask);
}

static void test_search(void) {
    static const size_t widths[] = {1, 2, 3, 7, 8, 9, 15, 16, 17, 20, 24, 31, 32, 33, 64};
    static const uint64_t sizes[] = {0, 1, 2, 17, 300, 1000};
    for (size_t wi = 0; wi < sizeof widths / sizeof *widths; wi++) {
        for (size_t si = 0; si < sizeof sizes / sizeof *sizes; si++) {
            for (int variant = 0; variant < 18; variant++) {
                size_t w = widths[wi];
                int pre = variant / 6;
                int bloom = variant % 3 != 0;
                uint32_t k = variant % 3 == 2 ? 3 : 8;
                int skew = variant % 6 >= 3;
                int loc_delta = variant % 6 == 4 ? -3 : variant % 6 == 5 ? 3 : 0;
                table_fixture f;
                make_table(&f, sizes[si], w, skew, bloom, k, loc_delta, pre);
                uint64_t bad = 0;
                CHECK(hl_table_check_sorted(f.keys, f.n, w, &bad) == HL_OK, "sorted");
                CHECK(hl_table_check_locator(&f.t, &bad) == HL_OK, "locator ok");
                check_queries(&f, 1);
                /* a corrupt locator: wrong answers allowed, no stray reads */
                uint64_t slots = (1ULL << f.loc_bits) + 1;
                for (uint64_t s = 0; s < slots; s++)
                    hl_store_le32(f.loc + 4 * s, (uint32_t)rnd());
                if (f.n) {
                    CHECK(hl_table_check_locator(&f.t, &bad) == HL_EFORMAT,
                          "corrupt locator not detected");
                }
                check_queries(&f, 0);
                free_table(&f);
            }
        }
    }
    /* unsorted keys are reported at the first bad row */
    uint8_t k3[3 * 4] = {0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 1};
    uint64_t bad = 0;
    CHECK(hl_table_check_sorted(k3, 3, 4, &bad) == HL_EFORMAT && bad == 2, "unsorted");
    hl_table t;
    uint8_t loc[8] = {0};
    CHECK(hl_table_init(&t, k3, 3, 0, loc, 0, NULL, 0, 0, 0) == HL_EINVAL, "width 0");
    CHECK(hl_table_init(&t, k3, 3, 65, loc, 0, NULL, 0, 0, 0) == HL_EINVAL, "width 65");
    CHECK(hl_table_init(&t, NULL, 3, 4, loc, 0, NULL, 0, 0, 0) == HL_EINVAL, "no keys");
    CHECK(hl_table_init(&t, k3, 3, 1, loc, 9, NULL, 0, 0, 0) == HL_EINVAL, "bits > 8w");
    CHECK(hl_table_init(&t, k3, 3, 4, loc, 0, loc, 1, 0, 0) == HL_EINVAL, "bloom k 0");
    CHECK(hl_table_init(&t, k3, 3, 4, loc, 0, NULL, 1, 8, 0) == HL_EINVAL, "no bloom");
}

/* ------------------------------------------------------------------ */
/* Hex decoding and the line parser                                    */
/* ------------------------------------------------------------------ */

static int hexval(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int is_blank(int c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static void test_hex_decode(void) {
    uint8_t hex[2], out[1];
    for (int a = 0; a < 256; a++) {
        for (int b = 0; b < 256; b++) {
            hex[0] = (uint8_t)a;
            hex[1] = (uint8_t)b;
            size_t bad = 99;
            hl_status st = hl_hex_decode(hex, 1, out, &bad);
            int ok = hexval(a) >= 0 && hexval(b) >= 0;
            CHECK((st == HL_OK) == ok, "decode %02x %02x", a, b);
            if (ok) CHECK(out[0] == hexval(a) * 16 + hexval(b), "value %02x %02x", a, b);
            else CHECK(bad == (hexval(a) < 0 ? 0u : 1u), "bad pos %02x %02x", a, b);
        }
    }
}

/* Every width from 0 to HL_MAX_WIDTH (the SSE2 blocks of 16 bytes and the
 * scalar tail), both cases, each byte value at each position class, into a
 * buffer of exactly 2 * width bytes (ASan/valgrind catch an overrun). */
static void test_hex_encode(void) {
    for (size_t w = 0; w <= HL_MAX_WIDTH; w++) {
        for (int round = 0; round < 64; round++) {
            uint8_t in[HL_MAX_WIDTH + 1];
            for (size_t i = 0; i < w; i++)
                in[i] = round < 16 ? (uint8_t)(round * 16 + i) : (uint8_t)rnd();
            for (int upper = 0; upper < 2; upper++) {
                uint8_t *out = malloc(2 * w + 1);
                hl_hex_encode(in, w, out, upper);
                char want[2 * HL_MAX_WIDTH + 3];
                for (size_t i = 0; i < w; i++)
                    snprintf(want + 2 * i, 3, upper ? "%02X" : "%02x", in[i]);
                CHECK(memcmp(out, want, 2 * w) == 0, "width %zu upper %d round %d",
                      w, upper, round);
                free(out);
            }
        }
    }
}

typedef struct ref_result {
    hl_status status;
    uint64_t n_keys, n_lines, n_invalid, err_line, err_offset, err_length;
    hl_status err_status;
} ref_result;

/* The grammar of hl_hex.h, one line at a time. */
static ref_result ref_parse(const uint8_t *buf, size_t len, size_t width,
                            size_t max_line, int skip, uint8_t *keys,
                            int64_t *lines, int64_t *offsets) {
    ref_result r;
    memset(&r, 0, sizeof r);
    size_t pos = 0;
    uint64_t line = 0;
    while (pos < len) {
        size_t end = pos;
        while (end < len && buf[end] != '\n') end++;
        size_t i = pos;
        while (i < end && is_blank(buf[i])) i++;
        hl_status bad = HL_OK;
        size_t tok = pos, toklen = end - pos;
        if (max_line && end - pos > max_line) {
            bad = HL_ETOOLONG;
        } else if (i < end && buf[i] != '#') {
            if (buf[i] == '\\') i++;
            size_t t = i;
            while (t < end && !is_blank(buf[t])) t++;
            int hex = t - i == 2 * width;
            for (size_t j = i; hex && j < t; j++) hex = hexval(buf[j]) >= 0;
            if (hex) {
                for (size_t j = 0; j < width; j++)
                    keys[r.n_keys * width + j] =
                        (uint8_t)(hexval(buf[i + 2 * j]) * 16 + hexval(buf[i + 2 * j + 1]));
                lines[r.n_keys] = (int64_t)line;
                offsets[r.n_keys] = (int64_t)pos;
                r.n_keys++;
            } else {
                bad = t - i == 2 * width ? HL_EHEX : HL_ELENGTH;
                tok = i;
                toklen = t - i;
            }
        }
        if (bad != HL_OK) {
            if (r.err_status == HL_OK) {
                r.err_status = bad;
                r.err_line = line;
                r.err_offset = tok;
                r.err_length = toklen;
            }
            if (!skip) {
                r.status = bad;
                r.n_lines = line + 1;
                return r;
            }
            r.n_invalid++;
        }
        pos = end + 1;
        line++;
    }
    r.n_lines = line;
    return r;
}

/* A random buffer of digest-list-like lines. */
static size_t make_text(uint8_t *buf, size_t cap, size_t width) {
    static const char *names[] = {"  file name", " *bin", "\tx", "", "  \r"};
    static const char noise[] = "0123456789abcdefABCDEFxyz #\\\t\r\v\f \0\xff-";
    size_t len = 0;
    int lines = (int)rnd_below(30);
    for (int l = 0; l < lines && len + 300 < cap; l++) {
        int kind = (int)rnd_below(10);
        if (rnd_below(4) == 0) buf[len++] = " \t"[rnd_below(2)];
        if (kind < 5) { /* a digest, maybe escaped, maybe with a name */
            if (kind == 4) buf[len++] = '\\';
            for (size_t j = 0; j < 2 * width; j++)
                buf[len++] = (uint8_t)"0123456789abcdefABCDEF"[rnd_below(22)];
            const char *nm = names[rnd_below(5)];
            memcpy(buf + len, nm, strlen(nm));
            len += strlen(nm);
        } else if (kind == 5) { /* a comment */
            memcpy(buf + len, "# note", 6);
            len += 6;
        } else if (kind == 6) { /* blank */
        } else { /* noise of any length, maybe a digest with one bad char */
            size_t n = kind == 7 ? 2 * width : rnd_below(2 * width + 20);
            for (size_t j = 0; j < n; j++)
                buf[len++] = (uint8_t)noise[rnd_below(sizeof noise - 1)];
        }
        if (rnd_below(5) == 0) buf[len++] = '\r';
        if (l + 1 < lines || rnd_below(2)) buf[len++] = '\n';
    }
    return len;
}

static void test_parse_lines(void) {
    enum { CAP = 20000 };
    uint8_t *buf = xmalloc(CAP);
    for (int iter = 0; iter < 1500; iter++) {
        size_t width = 1 + rnd_below(HL_MAX_WIDTH);
        if (iter % 3 == 0) width = (size_t[]){16, 20, 32}[rnd_below(3)];
        size_t len = make_text(buf, CAP, width);
        size_t max_line = (size_t[]){0, 0, 2 * width, 2 * width + 3, 10}[rnd_below(5)];
        int skip = (int)rnd_below(2);
        uint64_t cap = len / (2 * width + 1) + 1;
        /* exact-size heap buffers, so ASan/valgrind see any overrun */
        uint8_t *keys = xmalloc(cap * width), *rkeys = xmalloc(cap * width);
        int64_t *li = xmalloc(cap * 8), *lo = xmalloc(cap * 8);
        int64_t *rli = xmalloc(cap * 8), *rlo = xmalloc(cap * 8);
        uint8_t *text = xmalloc(len);
        memcpy(text, buf, len);
        hl_parse_result res;
        hl_status st = hl_parse_lines(text, len, width, max_line, keys, cap, li, lo,
                                      skip ? HL_PARSE_SKIP_INVALID : 0, &res);
        ref_result want = ref_parse(text, len, width, max_line, skip, rkeys, rli, rlo);
        CHECK(st == want.status, "iter %d: status %d, want %d", iter, st, want.status);
        CHECK(res.n_keys == want.n_keys && res.n_lines == want.n_lines &&
                  res.n_invalid == want.n_invalid,
              "iter %d: keys/lines/invalid %llu/%llu/%llu, want %llu/%llu/%llu", iter,
              (unsigned long long)res.n_keys, (unsigned long long)res.n_lines,
              (unsigned long long)res.n_invalid, (unsigned long long)want.n_keys,
              (unsigned long long)want.n_lines, (unsigned long long)want.n_invalid);
        CHECK(res.err_status == want.err_status && res.err_line == want.err_line &&
                  res.err_offset == want.err_offset && res.err_length == want.err_length,
              "iter %d: error %d line %llu at %llu+%llu, want %d line %llu at %llu+%llu",
              iter, res.err_status, (unsigned long long)res.err_line,
              (unsigned long long)res.err_offset, (unsigned long long)res.err_length,
              want.err_status, (unsigned long long)want.err_line,
              (unsigned long long)want.err_offset, (unsigned long long)want.err_length);
        uint64_t n = res.n_keys < want.n_keys ? res.n_keys : want.n_keys;
        CHECK(memcmp(keys, rkeys, n * width) == 0 &&
                  memcmp(li, rli, n * 8) == 0 && memcmp(lo, rlo, n * 8) == 0,
              "iter %d: keys or their lines differ", iter);
        /* one key less room than needed: HL_ENOSPACE, never an overrun */
        if (want.status == HL_OK && want.n_keys > 0) {
            st = hl_parse_lines(text, len, width, max_line, keys, want.n_keys - 1, NULL,
                                NULL, skip ? HL_PARSE_SKIP_INVALID : 0, &res);
            /* it stops at the start of a line after the last key it took,
             * at the latest at the key that did not fit */
            CHECK(st == HL_ENOSPACE && res.n_keys == want.n_keys - 1 &&
                      res.end <= (uint64_t)rlo[want.n_keys - 1] &&
                      (want.n_keys < 2 || res.end > (uint64_t)rlo[want.n_keys - 2]) &&
                      (res.end == 0 || text[res.end - 1] == '\n'),
                  "iter %d: status %d, end %llu with too little room", iter, st,
                  (unsigned long long)res.end);
        }
        free(keys);
        free(rkeys);
        free(li);
        free(lo);
        free(rli);
        free(rlo);
        free(text);
    }
    free(buf);
    hl_parse_result res;
    uint8_t out[1];
    CHECK(hl_parse_lines((const uint8_t *)"ab\n", 3, 0, 0, out, 1, NULL, NULL, 0,
                         &res) == HL_EINVAL, "width 0");
    CHECK(hl_parse_lines(NULL, 0, 16, 0, NULL, 0, NULL, NULL, 0, &res) == HL_OK &&
              res.n_lines == 0, "empty buffer");
}

/* hl_match_lines against ref_parse + ref_find + a line copy, on texts of up
 * to a few thousand lines (several of its 1,024-key blocks), with a table
 * holding about half of the text's keys and an output buffer of exactly
 * HL_MATCH_OUT_CAP(len) bytes. */
static void test_match_lines(void) {
    enum { CAP = 400000 };
    uint8_t *buf = xmalloc(CAP);
    for (int iter = 0; iter < 300; iter++) {
        size_t width = (size_t[]){16, 20, 32, 1 + rnd_below(HL_MAX_WIDTH)}[rnd_below(4)];
        size_t len = 0;
        int parts = iter % 10 == 0 ? 250 : 1 + (int)rnd_below(4);
        for (int p = 0; p < parts && len + 20000 < CAP; p++) {
            len += make_text(buf + len, CAP - len, width);
            if (len && buf[len - 1] != '\n' && p + 1 < parts) buf[len++] = '\n';
        }
        int skip = (int)rnd_below(4) != 0;
        unsigned flags = (skip ? HL_PARSE_SKIP_INVALID : 0) |
                         (rnd_below(2) ? HL_MATCH_INVERT : 0);
        uint64_t cap = len / (2 * width + 1) + 1;
        uint8_t *rkeys = xmalloc(cap * width);
        int64_t *rli = xmalloc(cap * 8), *rlo = xmalloc(cap * 8);
        uint8_t *text = xmalloc(len ? len : 1);
        memcpy(text, buf, len);
        ref_result want = ref_parse(text, len, width, 0, skip, rkeys, rli, rlo);
        /* the table: every other parsed key, plus random ones */
        uint64_t nt = want.n_keys / 2 + 5, u = 0;
        uint8_t *tk = xmalloc(nt * width), *tmp = xmalloc(nt * width);
        for (uint64_t i = 0; i < nt; i++) {
            if (2 * i < want.n_keys) memcpy(tk + i * width, rkeys + 2 * i * width, width);
            else for (size_t j = 0; j < width; j++) tk[i * width + j] = (uint8_t)rnd();
        }
        CHECK(hl_sort_unique(tk, nt, width, tmp, &u) == HL_OK, "sort");
        uint32_t bits = hl_locator_bits_for(u, width);
        uint8_t *loc = xmalloc(4 * ((1ULL << bits) + 1));
        CHECK(hl_locator_build(loc, bits, tk, u, width) == HL_OK, "locator");
        hl_table t;
        CHECK(hl_table_init(&t, tk, u, width, loc, bits, NULL, 0, 0, 0) == HL_OK, "init");
        /* expected output */
        uint8_t *expect = xmalloc(len + 1), *out = xmalloc(len + 1);
        size_t elen = 0;
        uint64_t found = 0, selected = 0;
        for (uint64_t k = 0; k < want.n_keys; k++) {
            int hit = ref_find(tk, u, width, rkeys + k * width) >= 0;
            found += (uint64_t)hit;
            if (hit == !!(flags & HL_MATCH_INVERT)) continue;
            selected++;
            size_t a = (size_t)rlo[k], b = a;
            while (b < len && text[b] != '\n') b++;
            if (b > a && text[b - 1] == '\r') b--;
            memcpy(expect + elen, text + a, b - a);
            elen += b - a;
            expect[elen++] = '\n';
        }
        hl_match_result res;
        hl_status st = hl_match_lines(&t, text, len, 0, flags, out, &res);
        CHECK(st == want.status, "match iter %d: status %d, want %d", iter, st,
              want.status);
        CHECK(res.parse.n_lines == want.n_lines && res.parse.n_invalid == want.n_invalid &&
                  res.parse.err_status == want.err_status &&
                  res.parse.err_line == want.err_line &&
                  res.parse.err_offset == want.err_offset &&
                  res.parse.err_length == want.err_length,
              "match iter %d: lines %llu invalid %llu error %d at line %llu", iter,
              (unsigned long long)res.parse.n_lines,
              (unsigned long long)res.parse.n_invalid, res.parse.err_status,
              (unsigned long long)res.parse.err_line);
        if (want.status == HL_OK) {
            CHECK(res.parse.n_keys == want.n_keys && res.n_found == found &&
                      res.n_selected == selected && res.out_len == elen &&
                      memcmp(out, expect, elen) == 0,
                  "match iter %d: keys %llu found %llu selected %llu, %zu bytes; want "
                  "%llu %llu %llu, %zu", iter, (unsigned long long)res.parse.n_keys,
                  (unsigned long long)res.n_found, (unsigned long long)res.n_selected,
                  res.out_len, (unsigned long long)want.n_keys,
                  (unsigned long long)found, (unsigned long long)selected, elen);
            st = hl_match_lines(&t, text, len, 0, flags | HL_MATCH_COUNT, NULL, &res);
            CHECK(st == HL_OK && res.n_selected == selected && res.out_len == 0,
                  "match iter %d: count only", iter);
        }
        free(rkeys);
        free(rli);
        free(rlo);
        free(text);
        free(tk);
        free(tmp);
        free(loc);
        free(expect);
        free(out);
    }
    free(buf);
}

/* ------------------------------------------------------------------ */
/* md5 of files: hl_md5x8 and hl_filehash_batch against libcrypto      */
/* ------------------------------------------------------------------ */

/* libcrypto's one-shot MD5 (the reference), or NULL if it cannot load. */
typedef unsigned char *(*md5_fn)(const unsigned char *, size_t, unsigned char *);

static md5_fn ref_md5(void) {
    static const char *const libs[] = {"libcrypto.so.3", "libcrypto.so.1.1",
                                       "libcrypto.so"};
    for (size_t i = 0; i < 3; i++) {
        void *lib = dlopen(libs[i], RTLD_NOW | RTLD_LOCAL);
        md5_fn f;
        if (lib == NULL)
            continue;
        *(void **)&f = dlsym(lib, "MD5");
        if (f != NULL)
            return f;
    }
    return NULL;
}

/* Lengths around the padding boundaries, then random ones. */
static size_t msg_len(size_t i) {
    return i < 140 ? i : i < 160 ? 4096 - 80 + (i - 140) * 8 : rnd_below(20000);
}

typedef struct {
    const uint8_t *data;
    size_t len, fed;
    int last;
} x8_msg;

/* Give lane l the next part of its message: a random multiple of 64 bytes,
 * or the rest as the last part (sometimes the whole message at once). */
static void x8_feed(hl_md5x8 *mx, unsigned l, x8_msg *m) {
    size_t left = m->len - m->fed, part = 64 * (1 + rnd_below(8));
    if (m->fed == 0 && rnd_below(3) == 0) {
        hl_md5x8_start(mx, l, m->data, m->len);
        part = left + 1;
    } else if (part < left) {
        hl_md5x8_feed(mx, l, m->data + m->fed, part, 0, 0);
    } else {
        hl_md5x8_feed(mx, l, m->data + m->fed, left, 1, m->len);
    }
    if (part < left) {
        m->fed += part;
    } else {
        m->fed = m->len;
        m->last = 1;
    }
}

/* Eight lanes refilled as they finish, messages fed in parts, hashed by the
 * eight-lane kernel (when available), the scalar one, or both in turn:
 * every digest equals libcrypto's. */
static void test_md5x8(md5_fn md5) {
    enum { N = 400 };
    static x8_msg msg[N];
    for (size_t i = 0; i < N; i++) {
        msg[i].len = msg_len(i);
        uint8_t *d = xmalloc(msg[i].len);
        for (size_t k = 0; k < msg[i].len; k++)
            d[k] = (uint8_t)rnd();
        msg[i].data = d;
    }
    for (int mode = 0; mode < 3; mode++) {  /* simd, scalar, mixed */
        if (mode != 1 && !hl_md5x8_available())
            continue;
        hl_md5x8 mx;
        hl_md5x8_init(&mx);
        size_t in_lane[8], next = 0, finished = 0;
        unsigned busy = 0;
        while (finished < N) {
            while (next < N && busy != 0xffu) {
                unsigned l = (unsigned)__builtin_ctz(~busy & 0xffu);
                in_lane[l] = next;
                msg[next].fed = 0;
                msg[next].last = 0;
                busy |= 1u << l;
                hl_md5x8_begin(&mx, l);
                x8_feed(&mx, l, &msg[next++]);
            }
            unsigned done;
            if (mode == 1 || (mode == 2 && rnd_below(2))) {
                done = busy;
                for (unsigned l = 0; l < 8; l++)
                    if (busy >> l & 1u)
                        hl_md5x8_run_scalar(&mx, l);
            } else {
                done = hl_md5x8_run(&mx);
            }
            CHECK(done != 0 && (done & ~busy) == 0, "mode %d: done %x busy %x", mode,
                  done, busy);
            if (done == 0 || (done & ~busy) != 0)
                break;
            for (unsigned l = 0; l < 8; l++) {
                x8_msg *m = &msg[in_lane[l]];
                if (!(done >> l & 1u))
                    continue;
                if (!m->last) {
                    x8_feed(&mx, l, m);
                    continue;
                }
                uint8_t got[16], want[16];
                hl_md5x8_take(&mx, l, got);
                md5(m->data, m->len, want);
                CHECK(memcmp(got, want, 16) == 0, "mode %d: md5 of %zu bytes", mode,
                      m->len);
                busy &= ~(1u << l);
                finished++;
            }
        }
        CHECK(finished == N, "mode %d: %zu of %d messages", mode, finished, N);
    }
    for (size_t i = 0; i < N; i++)
        free((void *)msg[i].data);
}

/* hl_filehash_batch, md5 only, on real files of every length class for a
 * buffer of 8 lanes of 4 KiB (whole files, streamed ones, exactly a part,
 * empty), mixed with files that fail (missing, a directory) and in batches
 * that end with one or two long files (the scalar tail): every digest,
 * size and status as expected.  Then the stop flag. */
static void test_filehash(md5_fn md5) {
    enum { N = 120 };
    char dir[] = "/tmp/hl_test_filehash.XXXXXX";
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        exit(2);
    }
    static char path[N][64];
    static uint8_t want[N][16];
    size_t len[N];
    for (size_t i = 0; i < N; i++) {
        len[i] = i % 10 == 9 ? 4096 * (1 + rnd_below(40)) + rnd_below(3) * 63
                 : i % 10 == 8 ? 4096 + rnd_below(2) - 1
                 : rnd_below(3 * 4096);
        if (i == N - 1)
            len[i] = 700000;  /* a long file last: the scalar tail */
        uint8_t *d = xmalloc(len[i]);
        for (size_t k = 0; k < len[i]; k++)
            d[k] = (uint8_t)rnd();
        md5(d, len[i], want[i]);
        snprintf(path[i], sizeof path[i], "%s/f%zu", dir, i);
        if (i % 17 == 5) {  /* a directory: not a regular file */
            CHECK(mkdir(path[i], 0700) == 0, "mkdir %s", path[i]);
        } else if (i % 23 != 7) {  /* else missing */
            FILE *f = fopen(path[i], "wb");
            CHECK(f != NULL && fwrite(d, 1, len[i], f) == len[i] && fclose(f) == 0,
                  "write %s", path[i]);
        }
        free(d);
    }
    size_t bufsize = 8 * 4096;
    uint8_t *buf = xmalloc(bufsize);
    static hl_filejob jobs[N];
    for (size_t start = 0; start < N; start += 37) {
        size_t n = start + 37 < N ? 37 : N - start;
        memset(jobs, 0, sizeof jobs);
        for (size_t i = 0; i < n; i++)
            jobs[i].path = path[start + i];
        CHECK(hl_filehash_batch(jobs, n, HL_FH_MD5, O_RDONLY | O_NONBLOCK, buf,
                                bufsize, NULL, NULL, 0) == HL_OK,
              "batch at %zu", start);
        for (size_t i = 0; i < n; i++) {
            size_t k = start + i;
            int expect = k % 17 == 5 ? HL_FH_NOT_REGULAR : k % 23 == 7 ? 2 : HL_FH_OK;
            CHECK(jobs[i].status == expect, "%s: status %d", path[k], jobs[i].status);
            if (expect == HL_FH_OK)
                CHECK(jobs[i].size == len[k] && memcmp(jobs[i].md5, want[k], 16) == 0,
                      "%s: %zu bytes, size %llu or md5 wrong", path[k], len[k],
                      (unsigned long long)jobs[i].size);
        }
    }
    /* stop: set before the batch, no file is hashed */
    int stop = 1;
    memset(jobs, 0, sizeof jobs);
    jobs[0].path = path[N - 1];
    CHECK(hl_filehash_batch(jobs, 1, HL_FH_MD5, O_RDONLY, buf, bufsize, &stop, NULL,
                            0) == HL_OK && jobs[0].status == HL_FH_STOPPED,
          "stopped batch: status %d", jobs[0].status);
    for (size_t i = 0; i < N; i++)
        (void)(i % 17 == 5 ? rmdir(path[i]) : unlink(path[i]));
    CHECK(rmdir(dir) == 0, "rmdir %s", dir);
    free(buf);
}

/* ---- hashdeep data lines (hl_hashdeep.c) against a brute-force reader:
 * every comma of the line found first, the file name column taking the
 * extra ones; a line is taken only if every digest cell is empty or
 * exact hex, the size empty or 1..18 digits, and some digest present. */

static int ref_hexval(uint8_t c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* 1: a record (digests, has, size filled); 0: the exact reader's line. */
static int ref_hd_line(const uint8_t *l, size_t n, const hl_hd_layout *lay,
                       uint8_t dig[3][32], uint8_t has[3], int64_t *size) {
    static const size_t w[3] = {16, 20, 32};
    size_t commas[2048], k = 0;
    for (size_t i = 0; i < n; i++)
        if (l[i] == ',' && k < 2048) commas[k++] = i;
    size_t need = (size_t)lay->ncols - 1;
    if (lay->fname < 0 ? k != need : k < need) return 0;
    size_t fs[HL_HD_MAX_COLS], fe[HL_HD_MAX_COLS];
    for (size_t j = 0; j <= need; j++) {
        /* separator j-1 before field j, separator j after it */
        size_t before = (lay->fname < 0 || j <= (size_t)lay->fname) ? j : k - (need - j + 1) + 1;
        size_t after = (lay->fname < 0 || j < (size_t)lay->fname) ? j : k - (need - j);
        fs[j] = j == 0 ? 0 : commas[before - 1] + 1;
        fe[j] = j == need ? n : commas[after];
    }
    int any = 0;
    for (int a = 0; a < 3; a++) {
        has[a] = 0;
        memset(dig[a], 0, 32);
        if (lay->alg[a] < 0) continue;
        size_t s = fs[lay->alg[a]], e = fe[lay->alg[a]];
        if (s == e) continue;
        if (e - s != 2 * w[a]) return 0;
        for (size_t i = 0; i < w[a]; i++) {
            int hi = ref_hexval(l[s + 2 * i]), lo = ref_hexval(l[s + 2 * i + 1]);
            if (hi < 0 || lo < 0) return 0;
            dig[a][i] = (uint8_t)(hi << 4 | lo);
        }
        has[a] = 1;
        any = 1;
    }
    if (!any) return 0;
    *size = -1;
    if (lay->size >= 0) {
        size_t s = fs[lay->size], e = fe[lay->size];
        if (e - s > 18) return 0;
        if (e > s) *size = 0;
        for (size_t i = s; i < e; i++) {
            if (l[i] < '0' || l[i] > '9') return 0;
            *size = *size * 10 + (l[i] - '0');
        }
    }
    return 1;
}

static void test_hashdeep(void) {
    static const char alphabet[] = "0123456789abcdefABCDEF,,,,,\n\n\r #%\"xg\t";
    static const size_t w[3] = {16, 20, 32};
    enum { CAP = 8, LEN = 700 };
    uint8_t buf[LEN], d0[CAP * 16], d1[CAP * 20], d2[CAP * 32], h[3][CAP];
    int64_t size[CAP];
    hl_hd_out out = {{d0, d1, d2}, {h[0], h[1], h[2]}, size, CAP};
    hl_hd_layout bad = {0, -1, {0, -1, -1}, -1};
    CHECK(hl_hashdeep_layout_check(&bad) == HL_EINVAL, "0 columns");
    hl_hd_layout bad2 = {3, 1, {1, -1, -1}, -1};
    CHECK(hl_hashdeep_layout_check(&bad2) == HL_EINVAL, "md5 in the name column");
    hl_hd_layout bad3 = {3, -1, {-1, -1, -1}, 0};
    CHECK(hl_hashdeep_layout_check(&bad3) == HL_EINVAL, "no digest column");
    for (int iter = 0; iter < 3000; iter++) {
        hl_hd_layout lay;
        lay.ncols = (int32_t)(1 + rnd_below(5));
        int32_t perm[5] = {0, 1, 2, 3, 4};
        for (int i = 4; i > 0; i--) {
            size_t j = rnd_below((size_t)i + 1);
            int32_t t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        /* columns perm[0..]: md5, sha1, sha256, size, file name (if < ncols) */
        for (int a = 0; a < 3; a++) lay.alg[a] = perm[a] < lay.ncols ? perm[a] : -1;
        lay.size = perm[3] < lay.ncols ? perm[3] : -1;
        lay.fname = perm[4] < lay.ncols ? perm[4] : -1;
        if (hl_hashdeep_layout_check(&lay) != HL_OK) continue;
        /* lines: mostly well formed, with random bytes mixed in */
        size_t len = 0;
        while (len < LEN - 200) {
            for (int32_t c = 0; c < lay.ncols; c++) {
                if (c) buf[len++] = ',';
                size_t cell = 0;
                for (int a = 0; a < 3; a++)
                    if (lay.alg[a] == c && rnd_below(8)) cell = 2 * w[a];
                if (lay.size == c) cell = rnd_below(20);
                if (lay.fname == c) cell = rnd_below(6);
                static const char cellchars[] = "0123456789abcdefABC,";
                for (size_t i = 0; i < cell; i++) {
                    if (lay.size == c)
                        buf[len++] = (uint8_t)('0' + rnd_below(10));
                    else /* commas only in the file name */
                        buf[len++] = (uint8_t)cellchars[rnd_below(lay.fname == c ? 20 : 19)];
                }
            }
            if (len && !rnd_below(6)) buf[len - 1 - rnd_below(len < 5 ? 1 : 5)] =
                (uint8_t)alphabet[rnd_below(sizeof(alphabet) - 1)];
            if (!rnd_below(5)) buf[len++] = '\r';
            buf[len++] = '\n';
        }
        if (rnd_below(2)) len--; /* no final newline */
        size_t max_line = 40 + rnd_below(100);
        size_t p = 0;
        while (p < len) {
            hl_hd_result res;
            hl_hashdeep_parse(buf + p, len - p, max_line, &lay, &out, &res);
            CHECK(res.end <= len - p && res.records <= CAP && res.records <= res.lines,
                  "iteration %d: bounds", iter);
            /* replay the consumed lines with the reference */
            size_t q = p, row = 0;
            for (uint64_t i = 0; i < res.lines; i++) {
                const uint8_t *nl = memchr(buf + q, '\n', len - q);
                size_t e = nl ? (size_t)(nl - buf) : len, next = nl ? e + 1 : len;
                if (e > q && buf[e - 1] == '\r') e--;
                if (e > q && buf[q] != '#') {
                    uint8_t dig[3][32], has[3];
                    int64_t sz;
                    int ok = ref_hd_line(buf + q, e - q, &lay, dig, has, &sz);
                    CHECK(ok && e - q <= max_line, "iteration %d: line taken", iter);
                    for (int a = 0; ok && a < 3; a++) {
                        CHECK(out.has[a][row] == has[a], "iteration %d: has", iter);
                        CHECK(memcmp(out.dig[a] + row * w[a], dig[a], w[a]) == 0,
                              "iteration %d: digest", iter);
                    }
                    CHECK(!ok || size[row] == sz, "iteration %d: size", iter);
                    row++;
                }
                q = next;
            }
            CHECK(row == res.records && q == p + res.end, "iteration %d: count", iter);
            p += res.end;
            if (res.stop == HL_HD_IRREGULAR) {
                /* the reference must not take it either */
                const uint8_t *nl = memchr(buf + p, '\n', len - p);
                size_t e = nl ? (size_t)(nl - buf) : len;
                size_t e2 = e > p && buf[e - 1] == '\r' ? e - 1 : e;
                uint8_t dig[3][32], has[3];
                int64_t sz;
                int blank = buf[p] == ' ' || buf[p] == '\t' || buf[p] == '\r' ||
                            buf[p] == '\v' || buf[p] == '\f' || buf[p] == '%';
                CHECK(e2 > p && (blank || e2 - p > max_line ||
                                 !ref_hd_line(buf + p, e2 - p, &lay, dig, has, &sz)),
                      "iteration %d: a good line refused", iter);
                p = nl ? e + 1 : len;
            } else {
                CHECK(res.stop == (p == len ? HL_HD_END : HL_HD_FULL),
                      "iteration %d: stop %d", iter, (int)res.stop);
            }
        }
    }
}

static void test_pack_rows(void) {
    enum { N = 300, W = 20 };
    uint8_t dig[N * W], has[N], out[N * (W + 4)];
    for (size_t i = 0; i < sizeof(dig); i++) dig[i] = (uint8_t)rnd();
    for (size_t i = 0; i < N; i++) has[i] = (uint8_t)(rnd_below(3) != 0);
    uint64_t k = hl_pack_rows(dig, has, N, W, 0x01020300u, out, 100);
    CHECK(k == 100, "stops at cap: %llu", (unsigned long long)k);
    k = hl_pack_rows(dig, has, N, W, 0x01020300u, out, N);
    size_t j = 0;
    for (size_t i = 0; i < N; i++) {
        if (!has[i]) continue;
        const uint8_t *r = out + j * (W + 4);
        uint32_t v = 0x01020300u + (uint32_t)i;
        CHECK(memcmp(r, dig + i * W, W) == 0 && r[W] == (uint8_t)(v >> 24) &&
                  r[W + 1] == (uint8_t)(v >> 16) && r[W + 2] == (uint8_t)(v >> 8) &&
                  r[W + 3] == (uint8_t)v,
              "row %zu", i);
        j++;
    }
    CHECK(k == j, "count");
    CHECK(hl_pack_rows(dig, NULL, N, W, 0, out, N) == N, "no flags: every row");
}

static void test_rowmap_invert_and_split(void) {
    enum { N = 500, W = 3 };
    /* rowmap_invert against the brute-force minimum per record id */
    uint8_t ids[4 * N];
    uint32_t col[64], ref[64];
    for (size_t i = 0; i < N; i++) hl_store_le32(ids + 4 * i, (uint32_t)rnd_below(200));
    for (uint32_t lo = 0; lo < 200; lo += 64) {
        uint32_t hi = lo + 64 > 200 ? 200 : lo + 64;
        for (size_t j = 0; j < 64; j++) col[j] = ref[j] = 0xFFFFFFFFu;
        hl_rowmap_invert(ids, N, 7, lo, hi, col);
        for (size_t i = 0; i < N; i++) {
            uint32_t id = hl_load_le32(ids + 4 * i);
            if (id >= lo && id < hi && 7 + i < ref[id - lo]) ref[id - lo] = (uint32_t)(7 + i);
        }
        CHECK(memcmp(col, ref, sizeof(col)) == 0, "rowmap window %u", lo);
    }
    /* split_merged: sorted rows with many equal digests, in two chunks */
    uint8_t rows[N * (W + 4)], keys[N * W];
    uint32_t heads[N], er[N], eh[N];
    for (size_t i = 0; i < N; i++) {
        uint8_t *r = rows + i * (W + 4);
        r[0] = 0;
        r[1] = (uint8_t)(i / 300);
        r[2] = (uint8_t)(i / 3); /* runs of three equal digests */
        r[3] = 0;
        r[4] = 0;
        r[5] = (uint8_t)(i >> 8);
        r[6] = (uint8_t)i;
    }
    uint32_t carry = 0;
    uint64_t e1 = hl_split_merged(rows, 250, W, NULL, &carry, keys, heads, er, eh);
    uint64_t k1 = 250 - e1;
    CHECK(k1 == 84 && e1 == 166, "first chunk: %llu keys", (unsigned long long)k1);
    CHECK(carry == 249, "carry %u", carry);
    uint64_t e2 = hl_split_merged(rows + 250 * (W + 4), N - 250, W, rows + 249 * (W + 4),
                                  &carry, keys, heads, er, eh);
    /* rows 250 and 251 continue the run that started at row 249 */
    CHECK(e2 == N - 250 - 83 && er[0] == 250 && eh[0] == 249 && er[1] == 251 &&
              eh[1] == 249 && heads[0] == 252,
          "second chunk: %llu edges", (unsigned long long)e2);
}

int main(int argc, char **argv) {
    const char *kernel = hl_cpu_kernel_name();
    if (argc > 1 && strcmp(argv[1], kernel) != 0) {
        fprintf(stderr, "test_core: kernel set %s in use, expected %s\n", kernel,
                argv[1]);
        return 1;
    }
    test_sort();
    test_merge();
    test_hash_and_bloom();
    test_prefilter();
    test_search();
    test_hex_decode();
    test_hex_encode();
    test_parse_lines();
    test_match_lines();
    test_hashdeep();
    test_pack_rows();
    test_rowmap_invert_and_split();
    md5_fn md5 = ref_md5();
    if (md5 != NULL && hl_filehash_available()) {
        test_md5x8(md5);
        test_filehash(md5);
    } else {
        printf("test_core: libcrypto not loadable, file hashing not tested\n");
    }
    printf("test_core (%s kernels): %lu checks, %lu failed\n", kernel, checks,
           failures);
    return failures ? 1 : 0;
}
