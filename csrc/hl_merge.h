/*
 * hl_merge.h - k-way merge of sorted runs of fixed-width rows: the step
 * after hl_sort when the rows of a build do not fit in memory.
 *
 * The caller holds one buffer of each run (read from its file) and calls
 * hl_merge_rows until every run is drained; the merge stops whenever a
 * buffer runs dry while its run still has rows on disk, so the caller can
 * refill it and call again.  Nothing here does I/O or allocates.
 */
#ifndef HL_MERGE_H
#define HL_MERGE_H

#include "hl_common.h"

/* One input: the buffered rows rows[pos .. n) of a sorted run. */
typedef struct hl_merge_input {
    const uint8_t *rows;
    uint64_t n;
    uint64_t pos;
} hl_merge_input;

/* Merge inputs in[0 .. k) into out (room for cap rows of width bytes) in
 * memcmp order of the whole row.  Stops when out is full, when every input
 * is drained, or when input i is drained while more[i] is nonzero (its run
 * continues on disk).  With unique nonzero a row equal to the previous row
 * written is dropped; *have_last and last (width bytes) carry the previous
 * row from call to call.  Advances each in[i].pos; returns the rows
 * written, or UINT64_MAX for a width out of 1..HL_MAX_WIDTH + 8. */
uint64_t hl_merge_rows(hl_merge_input *in, const uint8_t *more, size_t k,
                       size_t width, uint8_t *out, uint64_t cap, int unique,
                       uint8_t *last, int *have_last);

#endif /* HL_MERGE_H */
