/*
 * hl_sort.h - sorting fixed-width keys in memcmp order, with duplicates
 * removed: the heavy step of building an index.
 *
 * Most-significant-digit radix sort: one 16-bit pass scatters rows into
 * 65536 buckets (for random digests about n/65536 rows each), small
 * buckets are finished by insertion sort, large ones (keys sharing long
 * prefixes) by further 8-bit radix passes on the next byte.  O(n * width)
 * in the worst case, never quadratic.
 */
#ifndef HL_SORT_H
#define HL_SORT_H

#include "hl_common.h"

/* Sort n rows of width bytes in keys and drop duplicate rows; *n_out gets
 * the number of unique rows, which are keys[0 .. *n_out * width).  tmp must
 * have room for n * width bytes.  HL_ENOMEM if a bucket table cannot be
 * allocated. */
hl_status hl_sort_unique(uint8_t *keys, uint64_t n, size_t width, uint8_t *tmp,
                         uint64_t *n_out);

/* Keep the first to_width bytes of each of n rows of from_width bytes,
 * packing them to the front of rows (in place, front to back). */
void hl_rows_narrow(uint8_t *rows, uint64_t n, size_t from_width, size_t to_width);

#endif /* HL_SORT_H */
