/*
 * hl_hashdeep.c - hashdeep data lines into record columns (see hl_hashdeep.h).
 */
#include "hl_hashdeep.h"

#include "hl_hex.h"

static const size_t hl_hd_width[3] = {16, 20, 32};

hl_status hl_hashdeep_layout_check(const hl_hd_layout *lay) {
    int32_t n = lay->ncols;
    if (n < 1 || n > HL_HD_MAX_COLS) return HL_EINVAL;
    if (lay->fname < -1 || lay->fname >= n) return HL_EINVAL;
    if (lay->size < -1 || lay->size >= n) return HL_EINVAL;
    int any = 0;
    uint8_t used[HL_HD_MAX_COLS] = {0};
    if (lay->fname >= 0) used[lay->fname] = 1;
    if (lay->size >= 0) {
        if (used[lay->size]) return HL_EINVAL;
        used[lay->size] = 1;
    }
    for (int a = 0; a < 3; a++) {
        int32_t c = lay->alg[a];
        if (c < -1 || c >= n) return HL_EINVAL;
        if (c < 0) continue;
        if (used[c]) return HL_EINVAL;
        used[c] = 1;
        any = 1;
    }
    return any ? HL_OK : HL_EINVAL;
}

/* Positions of the ncols - 1 separating commas of line[0:n) into sep, or 0
 * if the line has the wrong number of them. */
static int hl_hd_split(const uint8_t *line, size_t n, const hl_hd_layout *lay,
                       size_t *sep) {
    const size_t need = (size_t)lay->ncols - 1;
    size_t k = 0, p = 0;
    if (lay->fname < 0) {
        /* Exactly `need` commas in the whole line. */
        for (;;) {
            const uint8_t *c = memchr(line + p, ',', n - p);
            if (!c) break;
            if (k == need) return 0;
            sep[k++] = (size_t)(c - line);
            p = sep[k - 1] + 1;
        }
        return k == need;
    }
    /* The commas before the file name column from the left, those after it
     * from the right, within what is left of the line. */
    const size_t left = (size_t)lay->fname;
    for (; k < left; k++) {
        const uint8_t *c = memchr(line + p, ',', n - p);
        if (!c) return 0;
        sep[k] = (size_t)(c - line);
        p = sep[k] + 1;
    }
    size_t e = n;
    for (size_t j = need; j > left; j--) {
        while (e > p && line[e - 1] != ',') e--;
        if (e == p) return 0;
        sep[j - 1] = --e;
    }
    return 1;
}

/* Sizes of 1..18 digits (a larger one needs the exact reader). */
static int hl_hd_size(const uint8_t *s, size_t n, int64_t *out) {
    if (n == 0) {
        *out = -1;
        return 1;
    }
    if (n > 18) return 0;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned d = (unsigned)s[i] - '0';
        if (d > 9) return 0;
        v = v * 10 + (int64_t)d;
    }
    *out = v;
    return 1;
}

/* One data line (no '\n', no final '\r') into row `row`; 0 if it needs the
 * exact reader. */
static int hl_hd_line(const uint8_t *line, size_t n, const hl_hd_layout *lay,
                      const hl_hd_out *out, uint64_t row) {
    size_t sep[HL_HD_MAX_COLS];
    if (!hl_hd_split(line, n, lay, sep)) return 0;
    const size_t last = (size_t)lay->ncols - 1;
    int any = 0;
    for (int a = 0; a < 3; a++) {
        int32_t c = lay->alg[a];
        if (c < 0) continue;
        const size_t w = hl_hd_width[a];
        size_t s = c == 0 ? 0 : sep[c - 1] + 1;
        size_t e = (size_t)c == last ? n : sep[c];
        uint8_t *d = out->dig[a] + row * w;
        if (e == s) {
            memset(d, 0, w);
            out->has[a][row] = 0;
            continue;
        }
        size_t bad;
        if (e - s != 2 * w || hl_hex_decode(line + s, w, d, &bad) != HL_OK) return 0;
        out->has[a][row] = 1;
        any = 1;
    }
    if (!any) return 0;
    for (int a = 0; a < 3; a++) {
        if (lay->alg[a] >= 0) continue;
        memset(out->dig[a] + row * hl_hd_width[a], 0, hl_hd_width[a]);
        out->has[a][row] = 0;
    }
    int64_t size = -1;
    if (lay->size >= 0) {
        int32_t c = lay->size;
        size_t s = c == 0 ? 0 : sep[c - 1] + 1;
        size_t e = (size_t)c == last ? n : sep[c];
        if (!hl_hd_size(line + s, e - s, &size)) return 0;
    }
    out->size[row] = size;
    return 1;
}

void hl_hashdeep_parse(const uint8_t *buf, size_t len, size_t max_line,
                       const hl_hd_layout *lay, const hl_hd_out *out,
                       hl_hd_result *res) {
    uint64_t rows = 0, lines = 0;
    size_t p = 0;
    int32_t stop = HL_HD_END;
    while (p < len) {
        if (rows == out->cap) {
            stop = HL_HD_FULL;
            break;
        }
        const uint8_t *nl = memchr(buf + p, '\n', len - p);
        size_t next = nl ? (size_t)(nl - buf) + 1 : len;
        size_t e = nl ? (size_t)(nl - buf) : len;
        if (e > p && buf[e - 1] == '\r') e--;
        const size_t n = e - p;
        if (n == 0 || buf[p] == '#') {  /* blank line or comment */
            lines++;
            p = next;
            continue;
        }
        const uint8_t c = buf[p];
        if (n > max_line || c == '%' || c == ' ' || c == '\t' || c == '\r' ||
            c == '\v' || c == '\f' || !hl_hd_line(buf + p, n, lay, out, rows)) {
            stop = HL_HD_IRREGULAR;
            break;
        }
        rows++;
        lines++;
        p = next;
    }
    res->records = rows;
    res->lines = lines;
    res->end = p;
    res->stop = stop;
}
