/*
 * hl_bloom.h - cache-line-blocked Bloom filter ("split block" layout).
 *
 * The filter is nblocks blocks of 64 bytes (one cache line each).  A key's
 * 64-bit hash h picks one block with the high 32 bits (multiply-shift range
 * reduction, so nblocks need not be a power of two) and k bits inside it
 * with the low 32 bits: probe i uses 8-byte lane (i mod 8) and bit
 * ((uint32)h * HL_BLOOM_SALT[i]) >> 26 of that lane.  A miss therefore
 * costs exactly one cache line.
 *
 * Bits are addressed by byte (bit b of lane w is byte w*8 + b/8, bit b%8),
 * so the stored filter reads the same on any host byte order.
 *
 * Invariants: 1 <= k <= HL_BLOOM_MAX_K, 1 <= nblocks <= 2^32.
 */
#ifndef HL_BLOOM_H
#define HL_BLOOM_H

#include "hl_common.h"
#include "hl_hash.h"

#define HL_BLOOM_BLOCK 64
#define HL_BLOOM_MAX_K 16
#define HL_BLOOM_MAX_BLOCKS (1ULL << 32)

extern const uint32_t HL_BLOOM_SALT[HL_BLOOM_MAX_K];

HL_INLINE uint64_t hl_bloom_block_index(uint64_t h, uint64_t nblocks) {
    return ((h >> 32) * nblocks) >> 32;
}

/* 1 if every probed bit of the block is set (key may be present), else 0. */
HL_INLINE int hl_bloom_block_test(const uint8_t *block, uint64_t h, uint32_t k) {
    uint32_t lo = (uint32_t)h;
    unsigned ok = 1;
    for (uint32_t i = 0; i < k; i++) {
        uint32_t bit = (lo * HL_BLOOM_SALT[i]) >> 26;
        ok &= (unsigned)(block[(i & 7) * 8 + (bit >> 3)] >> (bit & 7));
    }
    return (int)(ok & 1);
}

/* Set the bits of every key (n rows of width bytes) in a zeroed filter. */
hl_status hl_bloom_build(uint8_t *bits, uint64_t nblocks, uint32_t k, uint64_t seed,
                         const uint8_t *keys, uint64_t n, size_t width);

/* Number of blocks for n keys at bits_per_key (at least one block). */
uint64_t hl_bloom_blocks_for(uint64_t n, double bits_per_key);

#endif /* HL_BLOOM_H */
