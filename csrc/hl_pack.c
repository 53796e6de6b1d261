/*
 * hl_pack.c - sort rows of digests and row numbers (see hl_pack.h).
 */
#include "hl_pack.h"

uint64_t hl_pack_rows(const uint8_t *dig, const uint8_t *has, uint64_t n,
                      size_t width, uint32_t base, uint8_t *out, uint64_t cap) {
    const size_t stride = width + 4;
    uint64_t k = 0;
    for (uint64_t i = 0; i < n && k < cap; i++) {
        if (has && !has[i]) continue;
        uint8_t *r = out + k * stride;
        memcpy(r, dig + i * width, width);
        uint32_t v = base + (uint32_t)i;
        r[width] = (uint8_t)(v >> 24);
        r[width + 1] = (uint8_t)(v >> 16);
        r[width + 2] = (uint8_t)(v >> 8);
        r[width + 3] = (uint8_t)v;
        k++;
    }
    return k;
}
