/*
 * hl_merge.c - k-way merge of sorted runs (see hl_merge.h).
 *
 * A binary min-heap of input indices ordered by each input's current row
 * (its first 8 bytes cached as an integer, the rest compared on a tie).
 * It is rebuilt on every call (O(k)); calls move large blocks of rows, so
 * that is negligible next to the O(log k) comparisons per row.
 */
#include "hl_merge.h"

#define HL_MERGE_MAX_WIDTH (HL_MAX_WIDTH + 8)

static inline const uint8_t *hl_head(const hl_merge_input *in, size_t i,
                                     size_t width) {
    return in[i].rows + in[i].pos * width;
}

/* The first min(width, 8) bytes of a row as a big-endian integer: most
 * comparisons of digests end here, without a memcmp call. */
static inline uint64_t hl_prefix(const uint8_t *row, size_t width) {
    uint64_t v = 0;
    size_t m = width < 8 ? width : 8;
    for (size_t i = 0; i < m; i++) v |= (uint64_t)row[i] << (56 - 8 * i);
    return v;
}

typedef struct {
    const hl_merge_input *in;
    const uint64_t *pre; /* prefix of each input's current row */
    size_t width;
} hl_merge_ctx;

static inline int hl_less(const hl_merge_ctx *c, size_t a, size_t b) {
    if (c->pre[a] != c->pre[b]) return c->pre[a] < c->pre[b];
    int d = c->width > 8 ? memcmp(hl_head(c->in, a, c->width) + 8,
                                  hl_head(c->in, b, c->width) + 8, c->width - 8)
                         : 0;
    return d < 0 || (d == 0 && a < b);
}

static void hl_sift_down(size_t *heap, size_t m, size_t i, const hl_merge_ctx *c) {
    for (;;) {
        size_t l = 2 * i + 1, best = i;
        if (l < m && hl_less(c, heap[l], heap[best])) best = l;
        if (l + 1 < m && hl_less(c, heap[l + 1], heap[best])) best = l + 1;
        if (best == i) return;
        size_t t = heap[i];
        heap[i] = heap[best];
        heap[best] = t;
        i = best;
    }
}

uint64_t hl_merge_rows(hl_merge_input *in, const uint8_t *more, size_t k,
                       size_t width, uint8_t *out, uint64_t cap, int unique,
                       uint8_t *last, int *have_last) {
    if (width == 0 || width > HL_MERGE_MAX_WIDTH) return UINT64_MAX;
    /* The heap lives on the stack: at most 1024 inputs (a build has far
     * fewer runs: its input size over a quarter of its memory budget). */
    size_t heap[1024];
    uint64_t pre[1024];
    if (k > 1024) return UINT64_MAX;
    hl_merge_ctx c = {in, pre, width};
    size_t m = 0;
    for (size_t i = 0; i < k; i++) {
        if (in[i].pos < in[i].n) {
            heap[m++] = i;
            pre[i] = hl_prefix(hl_head(in, i, width), width);
        } else if (more[i]) {
            return 0; /* an empty buffer that must be refilled */
        }
    }
    for (size_t i = m / 2; i-- > 0;) hl_sift_down(heap, m, i, &c);
    uint64_t w = 0;
    while (m > 0 && w < cap) {
        size_t top = heap[0];
        const uint8_t *row = hl_head(in, top, width);
        if (!(unique && *have_last && memcmp(row, last, width) == 0)) {
            memcpy(out + w * width, row, width);
            w++;
            if (unique) {
                memcpy(last, row, width);
                *have_last = 1;
            }
        }
        in[top].pos++;
        if (in[top].pos == in[top].n) {
            if (more[top]) break; /* refill before anything else is taken */
            heap[0] = heap[--m];
        } else {
            pre[top] = hl_prefix(row + width, width);
        }
        if (m > 0) hl_sift_down(heap, m, 0, &c);
    }
    return w;
}
