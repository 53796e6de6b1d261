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

#endif /* HL_PACK_H */
