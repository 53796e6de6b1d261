/*
 * hl_bloom.c - building the blocked Bloom filter (probing is inline in
 * hl_bloom.h so the search kernels can fuse it into their loops).
 */
#include "hl_bloom.h"

#include <math.h>

/* Odd multipliers, one per probe, drawn once from random.Random(0x484c)
 * with the low bit forced.  Part of the file format (FORMAT.md). */
const uint32_t HL_BLOOM_SALT[HL_BLOOM_MAX_K] = {
    0x1effb7d5U, 0xe6c51f43U, 0xb0e30b9bU, 0xa5f9d97dU,
    0xd85d4acdU, 0x6ad25f57U, 0xa8475a17U, 0x9ee6b2e7U,
    0x9097b393U, 0x2383ebe5U, 0xd3e0c7d7U, 0x451d214dU,
    0x18f3d7abU, 0x3f8ffaffU, 0x3026adcfU, 0x535f08cbU,
};

hl_status hl_bloom_build(uint8_t *bits, uint64_t nblocks, uint32_t k, uint64_t seed,
                         const uint8_t *keys, uint64_t n, size_t width) {
    if (nblocks == 0 || nblocks > HL_BLOOM_MAX_BLOCKS) return HL_EINVAL;
    if (k == 0 || k > HL_BLOOM_MAX_K) return HL_EINVAL;
    if (width == 0 || width > HL_MAX_WIDTH) return HL_EINVAL;
    for (uint64_t r = 0; r < n; r++) {
        uint64_t h = hl_hash64(keys + r * width, width, seed);
        uint8_t *block = bits + hl_bloom_block_index(h, nblocks) * HL_BLOOM_BLOCK;
        uint32_t lo = (uint32_t)h;
        for (uint32_t i = 0; i < k; i++) {
            uint32_t bit = (lo * HL_BLOOM_SALT[i]) >> 26;
            block[(i & 7) * 8 + (bit >> 3)] |= (uint8_t)(1u << (bit & 7));
        }
    }
    return HL_OK;
}

uint64_t hl_bloom_blocks_for(uint64_t n, double bits_per_key) {
    double blocks = ceil((double)n * bits_per_key / (8.0 * HL_BLOOM_BLOCK));
    if (!(blocks >= 1.0)) return 1;
    if (blocks >= (double)HL_BLOOM_MAX_BLOCKS) return HL_BLOOM_MAX_BLOCKS;
    return (uint64_t)blocks;
}
