/*
 * test_near.c - the near-search core (csrc/near/) tested alone against a
 * brute-force reference: random hash sets with neighbours planted at
 * every distance 0..70, duplicates, all-zero and all-one hashes, every
 * chunk count class and several bucket widths, both strategies and the
 * automatic choice, the quality filter, radii past 256; then damage: a
 * corrupt body never reads out of bounds (row numbers past n are
 * HL_EFORMAT, offsets are clamped) and hl_near_check finds it.
 *
 * Built and run by `make ctest` (ASan/UBSan, valgrind), once with the
 * portable kernels and once with AVX2.  Fixed-seed xorshift inputs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl_cpu.h"
#include "hl_near.h"

#include "check.h"

static uint64_t rng_state = 0x2545F4914F6CDD1DULL;

static uint64_t rnd(void) {
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

static void *xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        perror("malloc");
        exit(2);
    }
    return p;
}

static void random_hash(uint8_t *h) {
    for (int i = 0; i < HL_NEAR_BYTES; i += 8) {
        uint64_t v = rnd();
        memcpy(h + i, &v, 8);
    }
}

/* A copy of src with exactly `flips` distinct bits flipped. */
static void flip_bits(uint8_t *dst, const uint8_t *src, uint32_t flips) {
    memcpy(dst, src, HL_NEAR_BYTES);
    uint8_t used[HL_NEAR_BITS] = {0};
    for (uint32_t f = 0; f < flips;) {
        uint32_t b = (uint32_t)(rnd() % HL_NEAR_BITS);
        if (used[b]) continue;
        used[b] = 1;
        dst[b >> 3] ^= (uint8_t)(0x80 >> (b & 7));
        f++;
    }
}

static uint32_t ref_distance(const uint8_t *a, const uint8_t *b) {
    uint32_t d = 0;
    for (int i = 0; i < HL_NEAR_BYTES; i++)
        for (int k = 0; k < 8; k++) d += ((a[i] ^ b[i]) >> k) & 1;
    return d;
}

/* The hashes: random, a cluster of neighbours of hashes[0] at distances
 * 0..70, duplicates of some rows, all-zero and all-one. */
static uint8_t *make_set(uint64_t n, uint8_t *center) {
    uint8_t *h = xmalloc(n * HL_NEAR_BYTES);
    for (uint64_t i = 0; i < n; i++) random_hash(h + i * HL_NEAR_BYTES);
    random_hash(center);
    for (uint64_t i = 0; i < n && i < 71; i++)
        flip_bits(h + (i * 7 % n) * HL_NEAR_BYTES, center, (uint32_t)i);
    if (n > 200) {
        memcpy(h + 100 * HL_NEAR_BYTES, h + 7 * HL_NEAR_BYTES, HL_NEAR_BYTES);
        memcpy(h + 101 * HL_NEAR_BYTES, h + 7 * HL_NEAR_BYTES, HL_NEAR_BYTES);
        memset(h + 150 * HL_NEAR_BYTES, 0, HL_NEAR_BYTES);
        memset(h + 151 * HL_NEAR_BYTES, 0xFF, HL_NEAR_BYTES);
    }
    return h;
}

/* Checks one search against the reference: same rows, distances, order. */
static void check_query(const hl_near_index *ix, const uint8_t *q, uint32_t d,
                        uint32_t minq, int strategy, hl_near_ctx *ctx, const char *what) {
    hl_near_out out;
    hl_near_out_init(&out);
    hl_status st = hl_near_search(ix, q, d, minq, strategy, ctx, &out, 5);
    CHECK(st == HL_OK, "%s: status %d", what, (int)st);
    size_t k = 0;
    int ok = 1;
    /* Reference: every row within d (and of quality >= minq), by distance
     * then row (a counting pass per distance over precomputed distances). */
    uint16_t *dist = xmalloc((ix->n ? ix->n : 1) * sizeof *dist);
    uint64_t per[HL_NEAR_BITS + 1] = {0};
    for (uint64_t row = 0; row < ix->n; row++) {
        dist[row] = (uint16_t)ref_distance(q, ix->hashes + row * HL_NEAR_BYTES);
        per[dist[row]]++;
    }
    for (uint32_t dd = 0; dd <= HL_NEAR_BITS && dd <= d; dd++) {
        if (!per[dd]) continue;
        for (uint64_t row = 0; row < ix->n; row++) {
            if (dist[row] != dd) continue;
            if (minq && ix->quality && ix->quality[row] < minq) continue;
            if (k >= out.n || out.row[k] != row || out.distance[k] != dd ||
                out.query[k] != 5)
                ok = 0;
            k++;
        }
    }
    free(dist);
    CHECK(ok && k == out.n, "%s: d=%u strategy %d: %zu hits, expected %zu", what, d,
          strategy, out.n, k);
    hl_near_out_free(&out);
}

static void test_search(uint64_t n, uint32_t m, uint32_t b) {
    char what[96];
    snprintf(what, sizeof what, "n=%llu m=%u b=%u", (unsigned long long)n, m, b);
    uint8_t center[HL_NEAR_BYTES];
    uint8_t *hashes = make_set(n, center);
    uint8_t *quality = xmalloc(n);
    for (uint64_t i = 0; i < n; i++) quality[i] = (uint8_t)(rnd() % 101);
    uint64_t size;
    CHECK(hl_near_body_size(m, b, n, &size) == HL_OK, "%s: body size", what);
    uint8_t *body = xmalloc(size);
    CHECK(hl_near_build(hashes, n, m, b, body, size) == HL_OK, "%s: build", what);
    hl_near_index ix;
    CHECK(hl_near_init(&ix, hashes, quality, n, m, b, body, size) == HL_OK, "%s: init",
          what);
    uint32_t bad = 99;
    CHECK(hl_near_check(&ix, &bad) == HL_OK, "%s: check of a good body", what);
    hl_near_ctx ctx;
    hl_near_ctx_init(&ctx);
    static const uint32_t radii[] = {0, 1, 2, 7, 15, 16, 17, 31, 32, 33, 47, 63, 64, 70,
                                     128, 255, 256, 1000};
    uint8_t q[HL_NEAR_BYTES];
    for (size_t i = 0; i < sizeof radii / sizeof *radii; i++) {
        uint32_t d = radii[i];
        check_query(&ix, center, d, 0, HL_NEAR_AUTO, &ctx, what);
        if (d <= 70) check_query(&ix, center, d, 0, HL_NEAR_MIH, &ctx, what);
        check_query(&ix, center, d, 0, HL_NEAR_LINEAR, &ctx, what);
        check_query(&ix, center, d, 50, HL_NEAR_AUTO, &ctx, what);
        flip_bits(q, center, (uint32_t)(rnd() % 40));
        if (d <= 70) check_query(&ix, q, d, 0, HL_NEAR_MIH, &ctx, what);
        check_query(&ix, q, d, 0, HL_NEAR_AUTO, &ctx, what);
    }
    memset(q, 0, sizeof q);
    check_query(&ix, q, 31, 0, HL_NEAR_MIH, &ctx, what);
    memset(q, 0xFF, sizeof q);
    check_query(&ix, q, 31, 0, HL_NEAR_MIH, &ctx, what);

    /* search_many: queries numbered from first_no, in order. */
    uint8_t qs[3 * HL_NEAR_BYTES];
    memcpy(qs, center, HL_NEAR_BYTES);
    memcpy(qs + HL_NEAR_BYTES, n ? hashes : center, HL_NEAR_BYTES);
    memset(qs + 2 * HL_NEAR_BYTES, 0, HL_NEAR_BYTES);
    hl_near_out out;
    hl_near_out_init(&out);
    CHECK(hl_near_search_many(&ix, qs, 3, 10, 0, HL_NEAR_AUTO, 40, &out) == HL_OK,
          "%s: many", what);
    int order = 1;
    for (size_t i = 0; i < out.n; i++) {
        if (out.query[i] < 40 || out.query[i] > 42) order = 0;
        if (i && out.query[i] < out.query[i - 1]) order = 0;
        uint32_t rd = ref_distance(qs + (out.query[i] - 40) * HL_NEAR_BYTES,
                                   hashes + (uint64_t)out.row[i] * HL_NEAR_BYTES);
        if (rd != out.distance[i] || rd > 10) order = 0;
    }
    CHECK(order && out.n >= (n ? 2u : 0u), "%s: search_many results (%zu)", what, out.n);
    hl_near_out_free(&out);

    /* Damage: a row number past n is an error, garbage offsets are
     * clamped (no out-of-bounds read under ASan), check finds both. */
    if (n > 0) {
        uint8_t *bad_body = xmalloc(size);
        memcpy(bad_body, body, size);
        hl_near_index bx;
        CHECK(hl_near_init(&bx, hashes, quality, n, m, b, bad_body, size) == HL_OK,
              "%s: init", what);
        uint8_t *rows = (uint8_t *)bx.tables[0].rows;
        for (uint64_t i = 0; i < n; i++) hl_store_le32(rows + 4 * i, 0xFFFFFFF0u);
        hl_near_out_init(&out);
        CHECK(hl_near_search(&bx, center, 40, 0, HL_NEAR_MIH, &ctx, &out, 0) == HL_EFORMAT,
              "%s: corrupt rows must be refused", what);
        CHECK(hl_near_check(&bx, &bad) == HL_EFORMAT && bad == 0, "%s: check rows", what);
        memcpy(bad_body, body, size);
        uint8_t *offs = (uint8_t *)bx.tables[m - 1].offsets;
        uint64_t nb = (uint64_t)1 << bx.tables[m - 1].bits;
        for (uint64_t k = 0; k <= nb; k++) hl_store_le32(offs + 4 * k, (uint32_t)rnd());
        hl_near_out_free(&out);
        hl_near_out_init(&out);
        hl_status st = hl_near_search(&bx, center, 63, 0, HL_NEAR_MIH, &ctx, &out, 0);
        CHECK(st == HL_OK || st == HL_EFORMAT, "%s: garbage offsets: %d", what, (int)st);
        CHECK(hl_near_check(&bx, &bad) == HL_EFORMAT && bad == m - 1, "%s: check offs",
              what);
        hl_near_out_free(&out);
        free(bad_body);
    }
    CHECK(hl_near_init(&ix, hashes, quality, n, m, b, body, size - 64) == HL_EFORMAT,
          "%s: a short body is refused", what);
    hl_near_ctx_free(&ctx);
    free(body);
    free(quality);
    free(hashes);
}

static void test_params(void) {
    uint64_t size;
    CHECK(hl_near_body_size(7, 8, 10, &size) == HL_EINVAL, "m below 8");
    CHECK(hl_near_body_size(65, 8, 10, &size) == HL_EINVAL, "m above 64");
    CHECK(hl_near_body_size(16, 0, 10, &size) == HL_EINVAL, "b = 0");
    CHECK(hl_near_body_size(8, 8, 10, &size) == HL_EINVAL, "32-bit chunks, 24 low bits");
    CHECK(hl_near_body_size(8, 16, 10, &size) == HL_OK, "32-bit chunks, 16 low bits");
    CHECK(hl_near_bucket_bits_for(11, 1400000) == 16, "b for 1.4 M");
    CHECK(hl_near_bucket_bits_for(11, 10000000) == 16, "b for 10 M");
    CHECK(hl_near_bucket_bits_for(8, 10) == 16, "b >= c - 16");
    CHECK(hl_near_bucket_bits_for(16, 10) == 1, "b for 10 rows");
    uint8_t a[40] = {0}, z[HL_NEAR_BYTES] = {0};
    a[0] = 0x80;
    a[31] = 0x01;
    CHECK(hl_near_chunk(a, 0, 1) == 1 && hl_near_chunk(a, 255, 1) == 1, "chunk bits");
    CHECK(hl_near_chunk(a, 248, 8) == 1 && hl_near_chunk(a, 0, 32) == 0x80000000u,
          "chunk bytes");
    CHECK(hl_near_distance(a, z) == 2, "distance");
}

int main(int argc, char **argv) {
    const char *kernel = hl_cpu_kernel_name();
    if (argc > 1 && strcmp(argv[1], kernel) != 0) {
        fprintf(stderr, "test_near: kernel set %s in use, expected %s\n", kernel, argv[1]);
        return 1;
    }
    test_params();
    test_search(0, 16, 1);
    test_search(1, 16, 1);
    test_search(300, 16, 4);
    test_search(300, 16, 16);
    test_search(400, 12, 6);
    test_search(500, 10, 10);
    test_search(600, 8, 16);
    test_search(700, 13, 4);
    test_search(300, 64, 2);
    test_search(3000, 16, hl_near_bucket_bits_for(16, 3000));
    test_search(3000, 12, hl_near_bucket_bits_for(12, 3000));
    test_search(5000, 11, hl_near_bucket_bits_for(11, 5000));
    test_search(2000, 11, 18);
    printf("test_near (%s kernels): %lu checks, %lu failed\n", kernel, checks, failures);
    return failures ? 1 : 0;
}
