/*
 * hl_linematch.c - text lines -> lookup -> selected lines (see hl_linematch.h).
 */
#include "hl_linematch.h"

#include <stdlib.h>

/* Keys parsed and looked up per block: enough for the batch kernel's
 * prefetch groups to overlap their cache misses, small enough that the
 * block's keys, offsets and answers stay in L1/L2. */
#define HL_MATCH_BLOCK 1024

/* Copy the line starting at buf[start] (up to its '\n' or len, without a
 * CR before the '\n') to out + '\n'; returns the bytes written. */
HL_INLINE size_t hl_copy_line(const uint8_t *buf, size_t start, size_t len,
                              size_t hint, uint8_t *out) {
    /* `hint` is where the line ends in the usual case (just after the
     * digest); check it before searching. */
    size_t end;
    if (hint < len && buf[hint] == '\n')
        end = hint;
    else if (hint == len)
        end = len;
    else {
        const uint8_t *nl = memchr(buf + start, '\n', len - start);
        end = nl ? (size_t)(nl - buf) : len;
    }
    if (end > start && buf[end - 1] == '\r') end--;
    const size_t n = end - start;
    memcpy(out, buf + start, n);
    out[n] = '\n';
    return n + 1;
}

hl_status hl_match_lines(const hl_table *t, const uint8_t *buf, size_t len,
                         size_t max_line, unsigned flags, uint8_t *out,
                         hl_match_result *res) {
    memset(res, 0, sizeof(*res));
    const size_t width = t->width;
    if (width == 0 || width > HL_MAX_WIDTH || (!out && !(flags & HL_MATCH_COUNT)))
        return HL_EINVAL;
    uint8_t *keys = malloc(HL_MATCH_BLOCK * width);
    int64_t *offsets = malloc(HL_MATCH_BLOCK * sizeof(int64_t));
    uint8_t *found = malloc(HL_MATCH_BLOCK);
    hl_status st = HL_OK;
    if (!keys || !offsets || !found) {
        st = HL_ENOMEM;
        goto done;
    }
    const unsigned parse_flags = flags & HL_PARSE_SKIP_INVALID;
    const uint8_t want = (flags & HL_MATCH_INVERT) ? 0 : 1;
    const int copy = !(flags & HL_MATCH_COUNT);
    /* Where a key's line usually ends: right after its digest, when the
     * digest starts the line (hl_copy_line's hint; checked before use). */
    const size_t digest_chars = 2 * width;
    size_t pos = 0;
    hl_parse_result *total = &res->parse;
    while (pos < len) {
        hl_parse_result part;
        st = hl_parse_lines(buf + pos, len - pos, width, max_line, keys,
                            HL_MATCH_BLOCK, NULL, offsets, parse_flags, &part);
        /* add the block's counts; its first bad line, if the first, is
         * reported buffer-relative */
        if (part.err_status != HL_OK && total->err_status == HL_OK) {
            total->err_line = total->n_lines + part.err_line;
            total->err_offset = pos + part.err_offset;
            total->err_length = part.err_length;
            total->err_status = part.err_status;
        }
        total->n_keys += part.n_keys;
        total->n_lines += part.n_lines;
        total->n_invalid += part.n_invalid;
        if (st != HL_OK && st != HL_ENOSPACE) { /* a bad line, not skipped */
            total->end = pos + part.end;
            goto done;
        }
        if (part.n_keys) {
            hl_table_contains_many(t, keys, part.n_keys, found);
            for (uint64_t k = 0; k < part.n_keys; k++) {
                res->n_found += found[k];
                if (found[k] != want) continue;
                res->n_selected++;
                if (copy) {
                    const size_t start = pos + (size_t)offsets[k];
                    res->out_len += hl_copy_line(buf, start, len,
                                                 start + digest_chars,
                                                 out + res->out_len);
                }
            }
        }
        if (st == HL_OK) break;
        /* HL_ENOSPACE: the block is full; go on at the line that did not fit */
        pos += part.end;
        st = HL_OK;
    }
    total->end = len;
done:
    free(keys);
    free(offsets);
    free(found);
    return st;
}
