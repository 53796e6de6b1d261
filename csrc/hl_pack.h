/*
 * hl_pack.h - the sort rows of a dataset build: the present digests of a
 * record batch, each followed by its input row number (4 bytes,
 * big-endian, so that rows with equal digests sort by input row).
 */
#ifndef HL_PACK_H
#define HL_PACK_H

#include "hl_common.h"

/* For each i < n with has[i] != 0 (has NULL: every i), append the width
 * bytes of dig + i*width and then base + i as 4 big-endian bytes to out,
 * which has room for `cap` rows of width + 4 bytes.  Returns the rows
 * written; stops at cap (the caller makes room: it counts has first).
 * base + n must fit in 32 bits. */
uint64_t hl_pack_rows(const uint8_t *dig, const uint8_t *has, uint64_t n,
                      size_t width, uint32_t base, uint8_t *out, uint64_t cap);

/* The inverse of a rowmap, one window of record ids at a time: for each
 * i < n whose id = ids[i] (little-endian uint32) is in [lo, hi),
 * col[id - lo] = min(col[id - lo], row0 + i).  A records section is
 * written in windows; this is its pass over a key table's rowmap. */
void hl_rowmap_invert(const uint8_t *ids, uint64_t n, uint32_t row0, uint32_t lo,
                      uint32_t hi, uint32_t *col);

/* One chunk of merged sort rows (m rows of width + 4 bytes, in memcmp
 * order) split into keys and row numbers.  A row whose digest equals the
 * previous row's (prev: the last digest of the chunk before, NULL for the
 * first chunk) is no key: it gives an edge (its row, the row of the first
 * of its equal digests: *carry when that is in an earlier chunk).  Every
 * other row gives its digest to ukeys (width bytes each) and its row to
 * uheads.  *carry is updated for the next chunk; returns the edge count
 * (m minus the keys, which are m - edges). */
uint64_t hl_split_merged(const uint8_t *rows, uint64_t m, size_t width,
                         const uint8_t *prev, uint32_t *carry, uint8_t *ukeys,
                         uint32_t *uheads, uint32_t *edge_row, uint32_t *edge_head);

#endif /* HL_PACK_H */
