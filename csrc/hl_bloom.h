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
#include "hl_cpu.h"
#include "hl_hash.h"

#define HL_BLOOM_BLOCK 64
#define HL_BLOOM_MAX_K 16
#define HL_BLOOM_MAX_BLOCKS (1ULL << 32)

extern const uint32_t HL_BLOOM_SALT[HL_BLOOM_MAX_K];

HL_INLINE uint64_t hl_bloom_block_index(uint64_t h, uint64_t nblocks) {
    return ((h >> 32) * nblocks) >> 32;
}

/* Bit `bit` (0..63) of 8-byte lane `lane` of a block, as 0 or 1.  On
 * little-endian hosts that is bit `bit` of the lane read as a uint64. */
HL_INLINE unsigned hl_bloom_bit(const uint8_t *block, uint32_t lane, uint32_t bit) {
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t w;
    memcpy(&w, block + 8 * lane, 8);
    return (unsigned)(w >> bit) & 1u;
#else
    return (unsigned)(block[8 * lane + (bit >> 3)] >> (bit & 7)) & 1u;
#endif
}

/* 1 if every probed bit of the block is set (key may be present), else 0.
 * Branch-free; with a constant k (the kernels pass 8) it fully unrolls. */
HL_INLINE int hl_bloom_block_test(const uint8_t *block, uint64_t h, uint32_t k) {
    uint32_t lo = (uint32_t)h;
    unsigned ok = 1;
    for (uint32_t i = 0; i < k; i++)
        ok &= hl_bloom_bit(block, i & 7, (lo * HL_BLOOM_SALT[i]) >> 26);
    return (int)ok;
}

#if HL_HAVE_AVX2
#include <immintrin.h>

/* hl_bloom_block_test for k == 8 in AVX2: the eight 32-bit products at
 * once, widened to 64-bit shift counts, one mask per lane, one test. */
__attribute__((target("avx2"))) static inline int hl_bloom_test8_avx2(
    const uint8_t *block, uint64_t h) {
    const __m256i salt = _mm256_loadu_si256((const __m256i *)HL_BLOOM_SALT);
    __m256i bits = _mm256_srli_epi32(
        _mm256_mullo_epi32(_mm256_set1_epi32((int)(uint32_t)h), salt), 26);
    const __m256i one = _mm256_set1_epi64x(1);
    __m256i m0 = _mm256_sllv_epi64(one, _mm256_cvtepu32_epi64(
                                            _mm256_castsi256_si128(bits)));
    __m256i m1 = _mm256_sllv_epi64(one, _mm256_cvtepu32_epi64(
                                            _mm256_extracti128_si256(bits, 1)));
    __m256i b0 = _mm256_loadu_si256((const __m256i *)block);
    __m256i b1 = _mm256_loadu_si256((const __m256i *)(block + 32));
    __m256i missing = _mm256_or_si256(_mm256_andnot_si256(b0, m0),
                                      _mm256_andnot_si256(b1, m1));
    return _mm256_testz_si256(missing, missing);
}
#endif

/* Set the bits of every key (n rows of width bytes) in a zeroed filter. */
hl_status hl_bloom_build(uint8_t *bits, uint64_t nblocks, uint32_t k, uint64_t seed,
                         const uint8_t *keys, uint64_t n, size_t width);

/* Number of blocks for n keys at bits_per_key (at least one block). */
uint64_t hl_bloom_blocks_for(uint64_t n, double bits_per_key);

#endif /* HL_BLOOM_H */
