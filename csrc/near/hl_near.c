/*
 * hl_near.c - multi-index hashing over 256-bit hashes: layout, build,
 * checks, and the dispatch to the search kernels (hl_near_kernels.inc).
 * The algorithm and the body layout are described in hl_near.h; the
 * measurements behind the defaults in docs/NEAR.md.
 */
#include "hl_near.h"

#include <stdlib.h>

#include "hl_cpu.h"

/* ------------------------------------------------------------------ */
/* Layout                                                              */
/* ------------------------------------------------------------------ */

static uint64_t hl_align64(uint64_t x) { return (x + 63) & ~(uint64_t)63; }

static uint32_t hl_chunk_width(uint32_t m, uint32_t j) {
    return HL_NEAR_BITS / m + (j < HL_NEAR_BITS % m ? 1u : 0u);
}

static uint32_t hl_low_size(uint32_t low_bits) {
    return low_bits == 0 ? 0u : low_bits <= 8 ? 1u : 2u;
}

/* Bytes of table j's parts: offsets, lows, rows (each 64-byte aligned). */
static void hl_table_sizes(uint32_t width, uint32_t b, uint64_t n, uint64_t sizes[3],
                           uint32_t *bits, uint32_t *low_bits) {
    uint32_t tb = width < b ? width : b;
    *bits = tb;
    *low_bits = width - tb;
    sizes[0] = hl_align64(4 * (((uint64_t)1 << tb) + 1));
    sizes[1] = hl_align64(hl_low_size(width - tb) * n);
    sizes[2] = hl_align64(4 * n);
}

hl_status hl_near_body_size(uint32_t m, uint32_t b, uint64_t n, uint64_t *size) {
    if (m < HL_NEAR_MIN_CHUNKS || m > HL_NEAR_MAX_CHUNKS) return HL_EINVAL;
    if (b < 1 || b > HL_NEAR_MAX_BUCKET_BITS || n > HL_NEAR_MAX_ROWS) return HL_EINVAL;
    uint64_t total = 0;
    for (uint32_t j = 0; j < m; j++) {
        uint64_t s[3];
        uint32_t bits, low;
        hl_table_sizes(hl_chunk_width(m, j), b, n, s, &bits, &low);
        if (low > 16) return HL_EINVAL;
        total += s[0] + s[1] + s[2];
    }
    *size = total;
    return HL_OK;
}

uint32_t hl_near_bucket_bits_for(uint32_t m, uint64_t n) {
    if (m < HL_NEAR_MIN_CHUNKS || m > HL_NEAR_MAX_CHUNKS) m = 16;
    uint32_t cmax = hl_chunk_width(m, 0);
    uint32_t lg = 0;
    while (lg < 63 && ((uint64_t)1 << lg) < n) lg++;
    /* About 8..16 entries per bucket: a scan of their low bits costs less
     * than enumerating more buckets.  At most 2^16 buckets: in a mapped
     * file (4 KiB pages) larger offset tables cost a TLB miss per bucket
     * and halve the speed (measured, docs/NEAR.md). */
    uint32_t b = lg > 4 ? lg - 4 : 1;
    if (b > 16) b = 16;
    if (b + 16 < cmax) b = cmax - 16;
    if (b < 1) b = 1;
    return b;
}

uint32_t hl_near_chunk(const uint8_t *padded, uint32_t start, uint32_t width) {
    uint64_t v = hl_load_be64(padded + (start >> 3));
    return (uint32_t)((v << (start & 7)) >> (64 - width));
}

static void hl_set_tables(hl_near_index *ix, const uint8_t *body, uint32_t m, uint32_t b,
                          uint64_t n) {
    uint64_t pos = 0;
    uint32_t start = 0;
    for (uint32_t j = 0; j < m; j++) {
        hl_near_table *t = &ix->tables[j];
        uint64_t s[3];
        t->width = hl_chunk_width(m, j);
        hl_table_sizes(t->width, b, n, s, &t->bits, &t->low_bits);
        t->start = start;
        t->offsets = body + pos;
        t->lows = t->low_bits ? body + pos + s[0] : NULL;
        t->rows = body + pos + s[0] + s[1];
        pos += s[0] + s[1] + s[2];
        start += t->width;
    }
}

/* ------------------------------------------------------------------ */
/* Build and check                                                     */
/* ------------------------------------------------------------------ */

/* Writes table t (pointers into a writable body) for n hashes; chunks is
 * scratch of n uint32, counts of 2^bits + 1 uint32. */
static void hl_build_table(const hl_near_table *t, const uint8_t *hashes, uint64_t n,
                           uint32_t *chunks, uint32_t *counts) {
    uint64_t nb = (uint64_t)1 << t->bits;
    uint8_t padded[40] = {0};
    memset(counts, 0, (nb + 1) * sizeof *counts);
    for (uint64_t i = 0; i < n; i++) {
        memcpy(padded, hashes + i * HL_NEAR_BYTES, HL_NEAR_BYTES);
        chunks[i] = hl_near_chunk(padded, t->start, t->width);
        counts[(chunks[i] >> t->low_bits) + 1]++;
    }
    for (uint64_t k = 0; k < nb; k++) counts[k + 1] += counts[k];
    uint8_t *offsets = (uint8_t *)t->offsets;
    for (uint64_t k = 0; k <= nb; k++) hl_store_le32(offsets + 4 * k, counts[k]);
    uint8_t *rows = (uint8_t *)t->rows, *lows = (uint8_t *)t->lows;
    uint32_t lsize = hl_low_size(t->low_bits), lmask = (1u << t->low_bits) - 1;
    for (uint64_t i = 0; i < n; i++) {
        uint32_t pos = counts[chunks[i] >> t->low_bits]++;
        hl_store_le32(rows + 4 * (uint64_t)pos, (uint32_t)i);
        uint32_t low = chunks[i] & lmask;
        if (lsize == 1) {
            lows[pos] = (uint8_t)low;
        } else if (lsize == 2) {
            lows[2 * (uint64_t)pos] = (uint8_t)low;
            lows[2 * (uint64_t)pos + 1] = (uint8_t)(low >> 8);
        }
    }
}

hl_status hl_near_build(const uint8_t *hashes, uint64_t n, uint32_t m, uint32_t b,
                        uint8_t *body, uint64_t body_size) {
    uint64_t need;
    hl_status st = hl_near_body_size(m, b, n, &need);
    if (st) return st;
    if (need != body_size) return HL_EINVAL;
    memset(body, 0, body_size);
    hl_near_index ix;
    hl_set_tables(&ix, body, m, b, n);
    uint32_t *chunks = malloc((n ? n : 1) * sizeof *chunks);
    uint32_t *counts = malloc((((size_t)1 << b) + 1) * sizeof *counts);
    if (!chunks || !counts) {
        free(chunks);
        free(counts);
        return HL_ENOMEM;
    }
    for (uint32_t j = 0; j < m; j++) hl_build_table(&ix.tables[j], hashes, n, chunks, counts);
    free(chunks);
    free(counts);
    return HL_OK;
}

hl_status hl_near_init(hl_near_index *ix, const uint8_t *hashes, const uint8_t *quality,
                       uint64_t n, uint32_t m, uint32_t b, const uint8_t *body,
                       uint64_t body_size) {
    uint64_t need;
    hl_status st = hl_near_body_size(m, b, n, &need);
    if (st) return st;
    if (need != body_size) return HL_EFORMAT;
    memset(ix, 0, sizeof *ix);
    ix->hashes = hashes;
    ix->quality = quality;
    ix->n = n;
    ix->m = m;
    ix->bucket_bits = b;
    hl_set_tables(ix, body, m, b, n);
    return HL_OK;
}

hl_status hl_near_check(const hl_near_index *ix, uint32_t *bad_table) {
    /* Rebuild each table into scratch and compare: the build is
     * deterministic (stable counting sort), so any difference is damage. */
    uint64_t n = ix->n;
    uint64_t biggest = 0;
    for (uint32_t j = 0; j < ix->m; j++) {
        uint64_t s[3];
        uint32_t bits, low;
        hl_table_sizes(ix->tables[j].width, ix->bucket_bits, n, s, &bits, &low);
        if (s[0] + s[1] + s[2] > biggest) biggest = s[0] + s[1] + s[2];
    }
    uint8_t *scratch = calloc(biggest ? biggest : 1, 1);
    uint32_t *chunks = malloc((n ? n : 1) * sizeof *chunks);
    uint32_t *counts = malloc((((size_t)1 << ix->bucket_bits) + 1) * sizeof *counts);
    hl_status st = HL_OK;
    if (!scratch || !chunks || !counts) {
        st = HL_ENOMEM;
        goto done;
    }
    for (uint32_t j = 0; j < ix->m; j++) {
        const hl_near_table *t = &ix->tables[j];
        uint64_t s[3];
        uint32_t bits, low;
        hl_table_sizes(t->width, ix->bucket_bits, n, s, &bits, &low);
        memset(scratch, 0, s[0] + s[1] + s[2]);
        hl_near_table w = *t;
        w.offsets = scratch;
        w.lows = t->low_bits ? scratch + s[0] : NULL;
        w.rows = scratch + s[0] + s[1];
        hl_build_table(&w, ix->hashes, n, chunks, counts);
        /* The table's parts are contiguous in the body, from offsets on. */
        if (memcmp(scratch, t->offsets, s[0] + s[1] + s[2]) != 0) {
            *bad_table = j;
            st = HL_EFORMAT;
            goto done;
        }
    }
done:
    free(scratch);
    free(chunks);
    free(counts);
    return st;
}

/* ------------------------------------------------------------------ */
/* Scratch and results                                                 */
/* ------------------------------------------------------------------ */

void hl_near_ctx_init(hl_near_ctx *ctx) { memset(ctx, 0, sizeof *ctx); }

void hl_near_ctx_free(hl_near_ctx *ctx) {
    free(ctx->spans);
    free(ctx->ents);
    free(ctx->cands);
    free(ctx->hits);
    memset(ctx, 0, sizeof *ctx);
}

void hl_near_out_init(hl_near_out *out) { memset(out, 0, sizeof *out); }

void hl_near_out_free(hl_near_out *out) {
    free(out->query);
    free(out->row);
    free(out->distance);
    memset(out, 0, sizeof *out);
}

/* Grows *p (elements of `size` bytes) to hold at least `need`. */
static int hl_grow(void **p, size_t *cap, size_t need, size_t size) {
    if (need <= *cap) return 1;
    size_t c = *cap ? *cap : 256;
    while (c < need) c *= 2;
    void *q = realloc(*p, c * size);
    if (!q) return 0;
    *p = q;
    *cap = c;
    return 1;
}

static hl_status hl_out_reserve(hl_near_out *out, size_t need) {
    if (need <= out->cap) return HL_OK;
    size_t c = out->cap ? out->cap : 256;
    while (c < need) c *= 2;
    uint64_t *q = realloc(out->query, c * sizeof *q);
    if (!q) return HL_ENOMEM;
    out->query = q;
    uint32_t *r = realloc(out->row, c * sizeof *r);
    if (!r) return HL_ENOMEM;
    out->row = r;
    uint16_t *d = realloc(out->distance, c * sizeof *d);
    if (!d) return HL_ENOMEM;
    out->distance = d;
    out->cap = c;
    return HL_OK;
}

static int hl_cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Sorts and dedupes ctx->hits ((distance << 32) | row) and appends them. */
static hl_status hl_emit_hits(hl_near_ctx *ctx, hl_near_out *out, uint64_t query_no) {
    uint64_t *h = ctx->hits;
    size_t n = ctx->nhits;
    if (n == 0) return HL_OK;
    if (n <= 32) {
        for (size_t i = 1; i < n; i++) {
            uint64_t v = h[i];
            size_t k = i;
            while (k > 0 && h[k - 1] > v) {
                h[k] = h[k - 1];
                k--;
            }
            h[k] = v;
        }
    } else {
        qsort(h, n, sizeof *h, hl_cmp_u64);
    }
    hl_status st = hl_out_reserve(out, out->n + n);
    if (st) return st;
    size_t o = out->n;
    for (size_t i = 0; i < n; i++) {
        if (i && h[i] == h[i - 1]) continue;
        out->query[o] = query_no;
        out->row[o] = (uint32_t)h[i];
        out->distance[o] = (uint16_t)(h[i] >> 32);
        o++;
    }
    out->n = o;
    return HL_OK;
}

/* ------------------------------------------------------------------ */
/* Cost model: MIH or a linear scan                                    */
/* ------------------------------------------------------------------ */

/* Nanoseconds per unit of work, measured on the reference machine with
 * benchmarks/near_tune (docs/NEAR.md): a bucket visited (offsets read,
 * range fetched), an entry's low bits compared, a candidate verified (a
 * random read of its hash), a row of the linear scan. */
#define HL_COST_BUCKET 12.0
#define HL_COST_ENTRY 0.6
#define HL_COST_CAND 9.0
#define HL_COST_ROW 1.7

static double hl_binom_upto(uint32_t nbits, uint32_t r) {
    double c = 1.0, sum = 1.0;
    for (uint32_t w = 1; w <= r && w <= nbits; w++) {
        c = c * (double)(nbits - w + 1) / (double)w;
        sum += c;
    }
    return sum;
}

static double hl_mih_cost(const hl_near_index *ix, uint32_t d) {
    uint32_t r = d / ix->m, q = d % ix->m;
    double n = (double)ix->n, cost = 0.0;
    for (uint32_t j = 0; j < ix->m; j++) {
        const hl_near_table *t = &ix->tables[j];
        if (j > q && r == 0) continue;
        uint32_t radius = j <= q ? r : r - 1;
        double buckets = hl_binom_upto(t->bits, radius);
        double entries = buckets * n / (double)((uint64_t)1 << t->bits);
        double cands = n * hl_binom_upto(t->width, radius) /
                       (double)((uint64_t)1 << t->width);
        if (radius >= t->low_bits) entries = 0.0; /* no low-bit test */
        cost += HL_COST_BUCKET * buckets + HL_COST_ENTRY * entries + HL_COST_CAND * cands;
    }
    return cost;
}

int hl_near_uses_mih(const hl_near_index *ix, uint32_t max_distance) {
    if (max_distance >= HL_NEAR_BITS) return 0;
    return hl_mih_cost(ix, max_distance) < HL_COST_ROW * (double)ix->n;
}

/* ------------------------------------------------------------------ */
/* Kernels                                                             */
/* ------------------------------------------------------------------ */

#define HL_KNAME(x) x##_portable
#define HL_KATTR
#include "hl_near_kernels.inc"
#undef HL_KNAME
#undef HL_KATTR

#if HL_HAVE_AVX2
#include <immintrin.h>

/* The entries among 32 consecutive low bytes (those in `valid`) within
 * `rem` (0..2) bits of ql, appended to out as base + position; returns how
 * many.  x & (x - 1)
 * clears the lowest set bit: x has at most r bits set iff clearing r of
 * them leaves 0. */
__attribute__((target("avx2,popcnt"))) static inline size_t
hl_scan32_avx2(const uint8_t *lows, uint32_t ql, uint32_t rem, uint32_t valid,
               uint64_t base, uint64_t *out) {
    const __m256i one = _mm256_set1_epi8(1), zero = _mm256_setzero_si256();
    __m256i x = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)lows),
                                 _mm256_set1_epi8((char)ql));
    for (uint32_t r = 0; r < rem; r++) x = _mm256_and_si256(x, _mm256_sub_epi8(x, one));
    uint32_t mask = (uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(x, zero)) & valid;
    size_t k = 0;
    while (mask) {
        out[k++] = base + (uint64_t)__builtin_ctz(mask);
        mask &= mask - 1;
    }
    return k;
}

/* AVX2 machines have popcnt: the distance becomes four popcnt
 * instructions instead of a bit-twiddling sequence. */
#define HL_KNAME(x) x##_avx2
#define HL_KATTR __attribute__((target("avx2,popcnt")))
#ifndef HL_NEAR_NO_SCAN32 /* (defined: the scalar scan, for measurements) */
#define HL_NEAR_SCAN32 hl_scan32_avx2
#endif
#include "hl_near_kernels.inc"
#undef HL_NEAR_SCAN32
#undef HL_KNAME
#undef HL_KATTR
#endif

static uint32_t hl_near_distance_portable(const uint8_t *a, const uint8_t *b) {
    return hl_dist_portable(a, b);
}

uint32_t hl_near_distance(const uint8_t *a, const uint8_t *b) {
    return hl_near_distance_portable(a, b);
}

static int hl_near_use_avx2(void) {
    static int cached = -1; /* a benign race: every thread computes the same */
    if (cached < 0) cached = hl_cpu_has_avx2();
    return cached;
}

hl_status hl_near_search(const hl_near_index *ix, const uint8_t *query,
                         uint32_t max_distance, uint32_t min_quality, int strategy,
                         hl_near_ctx *ctx, hl_near_out *out, uint64_t query_no) {
    int mih = strategy == HL_NEAR_MIH ||
              (strategy == HL_NEAR_AUTO && hl_near_uses_mih(ix, max_distance));
    if (max_distance >= HL_NEAR_BITS) mih = 0; /* every chunk radius is moot */
    const uint8_t *quality = min_quality ? ix->quality : NULL;
    hl_status st;
    ctx->nhits = 0;
#if HL_HAVE_AVX2
    if (hl_near_use_avx2()) {
        st = mih ? hl_mih_avx2(ix, query, max_distance, quality, min_quality, ctx)
                 : hl_linear_avx2(ix, query, max_distance, quality, min_quality, ctx);
    } else
#endif
    {
        st = mih ? hl_mih_portable(ix, query, max_distance, quality, min_quality, ctx)
                 : hl_linear_portable(ix, query, max_distance, quality, min_quality, ctx);
    }
    if (st) return st;
    return hl_emit_hits(ctx, out, query_no);
}

hl_status hl_near_search_many(const hl_near_index *ix, const uint8_t *queries,
                              uint64_t nq, uint32_t max_distance, uint32_t min_quality,
                              int strategy, uint64_t first_no, hl_near_out *out) {
    hl_near_ctx ctx;
    hl_near_ctx_init(&ctx);
    hl_status st = HL_OK;
    for (uint64_t i = 0; i < nq && !st; i++)
        st = hl_near_search(ix, queries + i * HL_NEAR_BYTES, max_distance, min_quality,
                            strategy, &ctx, out, first_no + i);
    hl_near_ctx_free(&ctx);
    return st;
}
