/*
 * hl_hex.c - hex decoding and the digest-list line parser (see hl_hex.h).
 */
#include "hl_hex.h"

/* Value of a hex digit, or 0xFF.  Built at compile time so the parser's
 * inner loop is one table load per character. */
#define HL_X 0xFF
static const uint8_t hl_hexval[256] = {
    HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X,
    HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X,
    HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X,
    0,    1,    2,    3,    4,    5,    6,    7,    8,    9,    HL_X, HL_X, HL_X, HL_X, HL_X, HL_X,
    HL_X, 10,   11,   12,   13,   14,   15,   HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X,
    HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X,
    HL_X, 10,   11,   12,   13,   14,   15,   HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X,
    HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X,
    HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X,
    HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X,
    HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X,
    HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X,
    HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X,
    HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X,
    HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X,
    HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X, HL_X,
};

hl_status hl_hex_decode(const uint8_t *hex, size_t width, uint8_t *out,
                        size_t *bad_pos) {
    for (size_t i = 0; i < width; i++) {
        uint8_t hi = hl_hexval[hex[2 * i]], lo = hl_hexval[hex[2 * i + 1]];
        if (HL_UNLIKELY(hi > 15 || lo > 15)) {
            *bad_pos = hi > 15 ? 2 * i : 2 * i + 1;
            return HL_EHEX;
        }
        out[i] = (uint8_t)((hi << 4) | lo);
    }
    return HL_OK;
}

HL_INLINE int hl_is_blank(uint8_t c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

hl_status hl_parse_lines(const uint8_t *buf, size_t len, size_t width,
                         uint8_t *out, uint64_t cap, int64_t *line_index,
                         int64_t *line_offset, unsigned flags,
                         hl_parse_result *res) {
    memset(res, 0, sizeof(*res));
    if (width == 0 || width > HL_MAX_WIDTH) return HL_EINVAL;
    const size_t want = 2 * width;
    size_t pos = 0;
    uint64_t line = 0;

    while (pos < len) {
        const size_t start = pos;
        const uint8_t *nl = memchr(buf + pos, '\n', len - pos);
        const size_t end = nl ? (size_t)(nl - buf) : len;
        pos = nl ? end + 1 : len;

        size_t i = start;
        while (i < end && hl_is_blank(buf[i])) i++;
        if (i == end || buf[i] == '#') {
            line++;
            continue;
        }
        if (buf[i] == '\\') i++; /* md5sum marks escaped file names so */
        size_t tok = i;
        while (i < end && !hl_is_blank(buf[i])) i++;
        size_t toklen = i - tok;

        hl_status st = HL_OK;
        size_t bad;
        if (toklen != want) {
            st = HL_ELENGTH;
        } else if (res->n_keys >= cap) {
            res->n_lines = line;
            return HL_ENOSPACE;
        } else {
            st = hl_hex_decode(buf + tok, width, out + res->n_keys * width, &bad);
        }
        if (HL_UNLIKELY(st != HL_OK)) {
            if (res->n_invalid == 0 && res->err_status == HL_OK) {
                res->err_line = line;
                res->err_offset = tok;
                res->err_length = toklen;
                res->err_status = st;
            }
            if (!(flags & HL_PARSE_SKIP_INVALID)) {
                res->n_lines = line + 1;
                return st;
            }
            res->n_invalid++;
            line++;
            continue;
        }
        if (line_index) line_index[res->n_keys] = (int64_t)line;
        if (line_offset) line_offset[res->n_keys] = (int64_t)start;
        res->n_keys++;
        line++;
    }
    res->n_lines = line;
    return HL_OK;
}
