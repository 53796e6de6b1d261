/*
 * near_tune.c - measures the near-search core's choices on synthetic data
 * (docs/NEAR.md): chunk count m and bucket bits b (index size, build time,
 * median query time at radius 31), and MIH against the linear scan at
 * every radius (the cost model's switch point).
 *
 * cc -O3 -std=c11 -Icsrc -Icsrc/near csrc/near/hl_near.c csrc/hl_cpu.c \
 *    benchmarks/near_tune.c -o build/near_tune
 * build/near_tune N M B [RADIUS...]   (B = 0: the builder's default)
 */
#define _DEFAULT_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "hl_near.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;

static uint64_t rnd(void) {
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median microseconds per query over nq queries. */
static double median_us(const hl_near_index *ix, const uint8_t *qs, size_t nq, uint32_t d,
                        int strategy, size_t *hits) {
    hl_near_ctx ctx;
    hl_near_ctx_init(&ctx);
    hl_near_out out;
    hl_near_out_init(&out);
    double *t = malloc(nq * sizeof *t);
    for (size_t i = 0; i < nq; i++) {
        double t0 = now();
        hl_near_search(ix, qs + 32 * i, d, 0, strategy, &ctx, &out, i);
        t[i] = now() - t0;
    }
    *hits = out.n;
    double sum = 0;
    for (size_t i = 0; i < nq; i++) sum += t[i];
    qsort(t, nq, sizeof *t, cmp_double);
    double med = t[nq / 2] * 1e6;
    printf("    (mean %.1f us)", sum / (double)nq * 1e6);
    free(t);
    hl_near_out_free(&out);
    hl_near_ctx_free(&ctx);
    return med;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: near_tune N M B [RADIUS...]\n");
        return 2;
    }
    uint64_t n = strtoull(argv[1], NULL, 10);
    uint32_t m = (uint32_t)atoi(argv[2]), b = (uint32_t)atoi(argv[3]);
    if (!b) b = hl_near_bucket_bits_for(m, n);
    uint8_t *h = malloc(n * 32);
    for (uint64_t i = 0; i < n * 4; i++) {
        uint64_t v = rnd();
        memcpy(h + 8 * i, &v, 8);
    }
    /* Queries: dataset rows with 0..40 bits flipped (a neighbour planted at
     * each distance), as the Python benchmark does. */
    size_t nq = 2000;
    uint8_t *qs = malloc(nq * 32);
    for (size_t i = 0; i < nq; i++) {
        memcpy(qs + 32 * i, h + 32 * (rnd() % n), 32);
        uint32_t flips = (uint32_t)(i % 41);
        for (uint32_t f = 0; f < flips; f++) {
            uint32_t bit = (uint32_t)(rnd() % 256);
            qs[32 * i + bit / 8] ^= (uint8_t)(1u << (bit % 8));
        }
    }
    uint64_t size;
    if (hl_near_body_size(m, b, n, &size)) {
        fprintf(stderr, "bad parameters\n");
        return 2;
    }
    /* Mapped like a file's pages (4 KiB, no transparent huge pages): TLB
     * misses are part of the cost (NEAR_TUNE_THP=1 allows huge pages). */
    const char *thp = getenv("NEAR_TUNE_THP");
    int huge = thp && thp[0] == '1';
    uint8_t *body = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                         -1, 0);
    uint8_t *hm = mmap(NULL, n * 32, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                       -1, 0);
    madvise(body, size, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
    madvise(hm, n * 32, huge ? MADV_HUGEPAGE : MADV_NOHUGEPAGE);
    memcpy(hm, h, n * 32);
    free(h);
    h = hm;
    double t0 = now();
    hl_near_build(h, n, m, b, body, size);
    double build = now() - t0;
    hl_near_index ix;
    hl_near_init(&ix, h, NULL, n, m, b, body, size);
    size_t hits;
    printf("n=%llu m=%u b=%u index %.1f MB (+ hashes %.1f MB) build %.3f s\n",
           (unsigned long long)n, m, b, (double)size / 1e6, (double)n * 32 / 1e6, build);
    for (int a = 4; a < argc; a++) {
        uint32_t d = (uint32_t)atoi(argv[a]);
        double mih = median_us(&ix, qs, nq, d, HL_NEAR_MIH, &hits);
        size_t hl;
        double lin = median_us(&ix, qs, d > 40 ? 50 : 200, d, HL_NEAR_LINEAR, &hl);
        printf("  d=%3u  mih %9.1f us  linear %8.1f us  auto=%s  hits %zu\n", d, mih, lin,
               hl_near_uses_mih(&ix, d) ? "mih" : "linear", hits);
    }
    munmap(body, size);
    munmap(h, n * 32);
    free(qs);
    return 0;
}
