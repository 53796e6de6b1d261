/*
 * hl_sort.c - MSD radix sort of fixed-width rows (see hl_sort.h).
 */
#include "hl_sort.h"

#include <stdlib.h>

/* Buckets this small are finished by insertion sort. */
#define HL_SMALL 32

/* Rows of `rows` all share their first `depth` bytes. */
static void hl_insertion_sort(uint8_t *rows, uint64_t n, size_t width, size_t depth) {
    uint8_t cur[HL_MAX_WIDTH];
    const size_t rest = width - depth;
    for (uint64_t i = 1; i < n; i++) {
        uint8_t *row = rows + i * width;
        if (memcmp(row - width + depth, row + depth, rest) <= 0) continue;
        memcpy(cur, row, width);
        uint64_t j = i;
        while (j > 0 && memcmp(rows + (j - 1) * width + depth, cur + depth, rest) > 0) {
            memcpy(rows + j * width, rows + (j - 1) * width, width);
            j--;
        }
        memcpy(rows + j * width, cur, width);
    }
}

/* Sort rows (all sharing `depth` leading bytes) by the byte at `depth`
 * and onwards, using scratch (room for n rows). */
static void hl_radix8(uint8_t *rows, uint64_t n, size_t width, size_t depth,
                      uint8_t *scratch) {
    while (depth < width && n > HL_SMALL) {
        uint64_t count[257] = {0};
        for (uint64_t i = 0; i < n; i++) count[rows[i * width + depth] + 1]++;
        for (int b = 0; b < 256; b++) count[b + 1] += count[b];
        uint64_t next[256];
        memcpy(next, count, sizeof(next));
        for (uint64_t i = 0; i < n; i++) {
            uint8_t b = rows[i * width + depth];
            memcpy(scratch + next[b]++ * width, rows + i * width, width);
        }
        memcpy(rows, scratch, n * width);
        depth++;
        /* Recurse into every bucket but the largest, which the loop
         * continues with: bounded stack depth (at most width levels). */
        int largest = 0;
        for (int b = 1; b < 256; b++)
            if (count[b + 1] - count[b] > count[largest + 1] - count[largest]) largest = b;
        for (int b = 0; b < 256; b++) {
            if (b == largest) continue;
            uint64_t m = count[b + 1] - count[b];
            if (m > 1) hl_radix8(rows + count[b] * width, m, width, depth, scratch);
        }
        rows += count[largest] * width;
        n = count[largest + 1] - count[largest];
    }
    if (depth < width && n > 1) hl_insertion_sort(rows, n, width, depth);
}

hl_status hl_sort_unique(uint8_t *keys, uint64_t n, size_t width, uint8_t *tmp,
                         uint64_t *n_out) {
    if (width == 0 || width > HL_MAX_WIDTH) return HL_EINVAL;
    *n_out = n;
    if (n < 2) return HL_OK;

    if (width >= 2) {
        /* First pass on 16 bits, keys -> tmp, then finish buckets in tmp. */
        uint64_t *count = calloc(65537, sizeof(uint64_t));
        if (!count) return HL_ENOMEM;
        for (uint64_t i = 0; i < n; i++) {
            const uint8_t *r = keys + i * width;
            count[((unsigned)r[0] << 8 | r[1]) + 1]++;
        }
        for (unsigned b = 0; b < 65536; b++) count[b + 1] += count[b];
        uint64_t *next = malloc(65536 * sizeof(uint64_t));
        if (!next) {
            free(count);
            return HL_ENOMEM;
        }
        memcpy(next, count, 65536 * sizeof(uint64_t));
        for (uint64_t i = 0; i < n; i++) {
            const uint8_t *r = keys + i * width;
            memcpy(tmp + next[(unsigned)r[0] << 8 | r[1]]++ * width, r, width);
        }
        free(next);
        /* keys is free now: use it as the scratch of the deeper passes. */
        for (unsigned b = 0; b < 65536; b++) {
            uint64_t m = count[b + 1] - count[b];
            if (m > 1) hl_radix8(tmp + count[b] * width, m, width, 2, keys);
        }
        free(count);
    } else {
        memcpy(tmp, keys, n * width);
        hl_radix8(tmp, n, width, 0, keys);
    }

    /* Copy back, dropping rows equal to their predecessor. */
    memcpy(keys, tmp, width);
    uint64_t u = 1;
    for (uint64_t i = 1; i < n; i++) {
        const uint8_t *r = tmp + i * width;
        if (memcmp(r, keys + (u - 1) * width, width) != 0) {
            memcpy(keys + u * width, r, width);
            u++;
        }
    }
    *n_out = u;
    return HL_OK;
}

void hl_rows_narrow(uint8_t *rows, uint64_t n, size_t from_width, size_t to_width) {
    if (to_width >= from_width) return;
    /* Row i moves from i*from to i*to <= i*from: copying front to back never
     * overwrites a row that is still to be read (memmove: they may overlap). */
    for (uint64_t i = 0; i < n; i++)
        memmove(rows + i * to_width, rows + i * from_width, to_width);
}
