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

void hl_rowmap_invert(const uint8_t *ids, uint64_t n, uint32_t row0, uint32_t lo,
                      uint32_t hi, uint32_t *col) {
    const uint32_t span = hi - lo;
    for (uint64_t i = 0; i < n; i++) {
        uint32_t off = hl_load_le32(ids + 4 * i) - lo; /* wraps below lo */
        uint32_t row = row0 + (uint32_t)i;
        if (off < span && row < col[off]) col[off] = row;
    }
}

uint64_t hl_split_merged(const uint8_t *rows, uint64_t m, size_t width,
                         const uint8_t *prev, uint32_t *carry, uint8_t *ukeys,
                         uint32_t *uheads, uint32_t *edge_row, uint32_t *edge_head) {
    const size_t stride = width + 4;
    uint64_t k = 0, e = 0;
    uint32_t head = *carry;
    for (uint64_t i = 0; i < m; i++) {
        const uint8_t *r = rows + i * stride;
        const uint32_t row = (uint32_t)r[width] << 24 | (uint32_t)r[width + 1] << 16 |
                             (uint32_t)r[width + 2] << 8 | (uint32_t)r[width + 3];
        const uint8_t *before = i ? r - stride : prev;
        if (before != NULL && memcmp(before, r, width) == 0) {
            edge_row[e] = row;
            edge_head[e] = head;
            e++;
            continue;
        }
        head = row;
        memcpy(ukeys + k * width, r, width);
        uheads[k] = row;
        k++;
    }
    *carry = head;
    return e;
}
