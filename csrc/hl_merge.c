/*
 * hl_merge.c - k-way merge of sorted runs (see hl_merge.h).
 *
 * A binary min-heap of input indices ordered by each input's current row.
 * It is rebuilt on every call (O(k)); calls move large blocks of rows, so
 * that is negligible next to the O(log k) comparisons per row.
 */
#include "hl_merge.h"

#define HL_MERGE_MAX_WIDTH (HL_MAX_WIDTH + 8)

static inline const uint8_t *hl_head(const hl_merge_input *in, size_t i,
                                     size_t width) {
    return in[i].rows + in[i].pos * width;
}

static inline int hl_less(const hl_merge_input *in, size_t a, size_t b,
                          size_t width) {
    int c = memcmp(hl_head(in, a, width), hl_head(in, b, width), width);
    return c < 0 || (c == 0 && a < b);
}

static void hl_sift_down(size_t *heap, size_t m, size_t i, const hl_merge_input *in,
                         size_t width) {
    for (;;) {
        size_t l = 2 * i + 1, best = i;
        if (l < m && hl_less(in, heap[l], heap[best], width)) best = l;
        if (l + 1 < m && hl_less(in, heap[l + 1], heap[best], width)) best = l + 1;
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
    /* A small fixed heap would limit k; runs are few (memory / run size),
     * but the caller may pass any k, so the heap lives on the stack only
     * up to 1024 inputs and the rest is refused by the wrapper. */
    size_t heap[1024];
    if (k > 1024) return UINT64_MAX;
    size_t m = 0;
    for (size_t i = 0; i < k; i++) {
        if (in[i].pos < in[i].n) heap[m++] = i;
        else if (more[i]) return 0; /* an empty buffer that must be refilled */
    }
    for (size_t i = m / 2; i-- > 0;) hl_sift_down(heap, m, i, in, width);
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
        }
        if (m > 0) hl_sift_down(heap, m, 0, in, width);
    }
    return w;
}
