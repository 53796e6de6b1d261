/*
 * hl_linematch.h - match a text digest list against one key table and copy
 * out the selected lines, in one pass without the caller's help.
 *
 * This is the fast path of `hashlookup match` for text inputs printed as
 * text: the lines are parsed by hl_parse_lines (same rules, same errors),
 * looked up in blocks by the batch kernel (its prefetching needs many keys
 * at once), and every selected line is appended to `out` as it was in the
 * input, without its line end and a CR before it, followed by '\n'.  Nothing
 * per line goes back to the caller, which is what makes it cheaper than
 * parse + lookup + select in Python (numpy) for every chunk.
 */
#ifndef HL_LINEMATCH_H
#define HL_LINEMATCH_H

#include "hl_common.h"
#include "hl_hex.h"
#include "hl_search.h"

/* Flags for hl_match_lines (HL_PARSE_SKIP_INVALID is also accepted). */
#define HL_MATCH_INVERT 2u  /* select the lines whose digest is NOT found */
#define HL_MATCH_COUNT 4u   /* count only: nothing is written to out */

typedef struct hl_match_result {
    hl_parse_result parse;  /* as from hl_parse_lines over the whole buffer
                             * (err_line counts from the buffer's start) */
    uint64_t n_found;       /* keys found in the table */
    uint64_t n_selected;    /* lines selected (written unless HL_MATCH_COUNT) */
    size_t out_len;         /* bytes written to out */
} hl_match_result;

/* Bytes of `out` that hl_match_lines may need for a buffer of len bytes:
 * every line at most once, plus a '\n' the last line may lack. */
#define HL_MATCH_OUT_CAP(len) ((len) + 1)

/* Parse buf[0:len) (whole lines; the last may lack its '\n') as digests of
 * t->width bytes, look them up in t and write the selected lines to out,
 * which must hold HL_MATCH_OUT_CAP(len) bytes (may be NULL with
 * HL_MATCH_COUNT).  Returns HL_OK, the status of the first bad line (as
 * hl_parse_lines; out is then incomplete and must be discarded), or
 * HL_ENOMEM / HL_EINVAL. */
hl_status hl_match_lines(const hl_table *t, const uint8_t *buf, size_t len,
                         size_t max_line, unsigned flags, uint8_t *out,
                         hl_match_result *res);

#endif /* HL_LINEMATCH_H */
