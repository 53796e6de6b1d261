/*
 * hl_near.h - exact Hamming-radius search over 256-bit hashes (PDQ) with
 * multi-index hashing (MIH), in a flat byte layout that can be mapped.
 *
 * The n hashes are 32-byte rows.  Bits are numbered big-endian: bit 0 is
 * the top bit of byte 0.  The 256 bits are cut into m chunks (8 <= m <=
 * 64): chunk j has c_j = 256/m bits, one more for j < 256 % m, and starts
 * where chunk j-1 ends.  Each chunk has a table: its top b_j = min(c_j, b)
 * bits address a bucket directly, its low l_j = c_j - b_j bits (<= 16)
 * are stored beside the row numbers so a bucket scan can reject most rows
 * without reading their hash.
 *
 * Exactness.  Write d = m*r + q (0 <= q < m).  If two hashes are within d
 * bits, then some chunk j <= q differs in at most r bits or some chunk
 * j > q differs in at most r - 1 bits (otherwise the distance would be at
 * least (q+1)(r+1) + (m-q-1)r = d + 1).  So a search visits, in table j,
 * every bucket whose top bits are within R_j (r, or r - 1 for j > q) of
 * the query's, keeps the rows whose top + low distance is <= R_j, and
 * verifies each candidate with a popcount over all 256 bits.  Past a
 * radius where that costs more than reading every hash (a cost model
 * measured on this machine, docs/NEAR.md) it scans all rows instead: both
 * paths return exactly the rows within d.
 *
 * Index body (one section; every part starts on a 64-byte boundary),
 * per table j in order:
 *     offsets  (2^b_j + 1) LE uint32: bucket k holds entries
 *              [offsets[k], offsets[k+1]); offsets[2^b_j] == n
 *     lows     n entries of the low l_j bits of the row's chunk: uint8
 *              when l_j <= 8, else LE uint16 (absent when l_j == 0)
 *     rows     n LE uint32 row numbers, ascending within a bucket
 * The body is untrusted: offsets are clamped to [0, n] and row numbers
 * are checked against n before use (HL_EFORMAT), so a corrupt body gives
 * wrong answers or an error, never an out-of-bounds read; hl_near_check
 * finds any inconsistency (verify()).
 */
#ifndef HL_NEAR_H
#define HL_NEAR_H

#include "hl_common.h"

#define HL_NEAR_BYTES 32
#define HL_NEAR_BITS 256
#define HL_NEAR_MIN_CHUNKS 8
#define HL_NEAR_MAX_CHUNKS 64
#define HL_NEAR_MAX_BUCKET_BITS 20
#define HL_NEAR_DEFAULT_CHUNKS 11
#define HL_NEAR_MAX_ROWS 0xFFFFFFFEULL

typedef struct hl_near_table {
    const uint8_t *offsets; /* (2^bits + 1) LE uint32 */
    const uint8_t *lows;    /* n uint8 / LE uint16, or NULL if low_bits == 0 */
    const uint8_t *rows;    /* n LE uint32 */
    uint32_t start;         /* first bit of the chunk */
    uint32_t width;         /* c_j: bits of the chunk, 4..32 */
    uint32_t bits;          /* b_j: bucket address bits */
    uint32_t low_bits;      /* l_j = width - bits, 0..16 */
} hl_near_table;

typedef struct hl_near_index {
    const uint8_t *hashes;   /* n * 32 bytes */
    const uint8_t *quality;  /* n bytes, or NULL (no quality filter) */
    uint64_t n;
    uint32_t m;              /* chunks = tables */
    uint32_t bucket_bits;    /* b */
    hl_near_table tables[HL_NEAR_MAX_CHUNKS];
} hl_near_index;

/* One bucket to scan: its table, the radius left for the low bits, the
 * query's low bits, and the entry range (first the bucket number). */
typedef struct hl_near_span {
    uint32_t lo, hi;
    uint16_t qlow;
    uint8_t table, rem;
} hl_near_span;

/* Scratch space of one searching thread (grown as needed, reused). */
typedef struct hl_near_ctx {
    hl_near_span *spans; /* buckets to scan */
    size_t nspans, capspans;
    uint64_t *ents;      /* (table << 32 | entry) whose low bits passed */
    size_t nents, capents;
    uint32_t *cands;     /* candidate rows */
    size_t ncands, capcands;
    uint64_t *hits;    /* (distance << 32 | row) of one query */
    size_t nhits, caphits;
} hl_near_ctx;

/* Results, appended query after query: for each hit its query number, row
 * and distance.  Within a query: nearest first, then ascending row; each
 * row once. */
typedef struct hl_near_out {
    uint64_t *query;
    uint32_t *row;
    uint16_t *distance;
    size_t n, cap;
} hl_near_out;

/* Size in bytes of the index body for (m, b, n); HL_EINVAL if m, b or n
 * is out of range (m in 8..64, b in 1..20 with every l_j <= 16, n <=
 * HL_NEAR_MAX_ROWS). */
hl_status hl_near_body_size(uint32_t m, uint32_t b, uint64_t n, uint64_t *size);

/* Bucket address bits the builder uses for n rows and m chunks: about
 * log2(n) - 4 (a few entries per bucket, scanned by their low bits), at
 * least what keeps every l_j <= 16, at most 16 (more only if l_j needs). */
uint32_t hl_near_bucket_bits_for(uint32_t m, uint64_t n);

/* Writes the index body of n hashes into body (size from
 * hl_near_body_size; zeroed padding included).  HL_ENOMEM if scratch
 * space cannot be allocated. */
hl_status hl_near_build(const uint8_t *hashes, uint64_t n, uint32_t m, uint32_t b,
                        uint8_t *body, uint64_t body_size);

/* Points ix at a mapped index: O(m), reads no bucket.  quality may be
 * NULL.  HL_EINVAL / HL_EFORMAT if the parameters or the body size do not
 * match. */
hl_status hl_near_init(hl_near_index *ix, const uint8_t *hashes, const uint8_t *quality,
                       uint64_t n, uint32_t m, uint32_t b, const uint8_t *body,
                       uint64_t body_size);

/* Full structural check, O(m * n): every table is a permutation of the
 * rows bucketed and ordered as hl_near_build writes it.  HL_EFORMAT with
 * *bad_table set to the first table at fault. */
hl_status hl_near_check(const hl_near_index *ix, uint32_t *bad_table);

void hl_near_ctx_init(hl_near_ctx *ctx);
void hl_near_ctx_free(hl_near_ctx *ctx);
void hl_near_out_init(hl_near_out *out);
void hl_near_out_free(hl_near_out *out);

/* Search strategy: HL_NEAR_AUTO picks MIH or the linear scan by the cost
 * model; the others force one (tests and benchmarks compare them). */
enum { HL_NEAR_AUTO = 0, HL_NEAR_MIH = 1, HL_NEAR_LINEAR = 2 };

/* Appends to out the rows within max_distance of query (32 bytes) whose
 * quality is >= min_quality (every row when ix->quality is NULL), tagged
 * with query_no.  max_distance may be anything; >= 256 matches every row.
 * HL_ENOMEM, or HL_EFORMAT for a row number out of range (corrupt body). */
hl_status hl_near_search(const hl_near_index *ix, const uint8_t *query,
                         uint32_t max_distance, uint32_t min_quality, int strategy,
                         hl_near_ctx *ctx, hl_near_out *out, uint64_t query_no);

/* hl_near_search for nq queries (nq * 32 bytes), numbered first_no.. . */
hl_status hl_near_search_many(const hl_near_index *ix, const uint8_t *queries,
                              uint64_t nq, uint32_t max_distance, uint32_t min_quality,
                              int strategy, uint64_t first_no, hl_near_out *out);

/* Whether the automatic strategy uses MIH for this radius (for docs and
 * tests). */
int hl_near_uses_mih(const hl_near_index *ix, uint32_t max_distance);

/* The chunk of `width` (1..32) bits starting at bit `start` of a hash
 * copied into a 40-byte buffer (zero padded: the 8-byte load never leaves
 * it). */
uint32_t hl_near_chunk(const uint8_t *padded, uint32_t start, uint32_t width);

/* Hamming distance of two 32-byte hashes (portable). */
uint32_t hl_near_distance(const uint8_t *a, const uint8_t *b);

#endif /* HL_NEAR_H */
