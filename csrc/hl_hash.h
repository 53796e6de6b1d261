/*
 * hl_hash.h - the single, stable key hash of format version 1.
 *
 * Bloom filters are stored in index files, so this function is part of the
 * file format: changing it makes every existing filter answer wrongly.  It
 * must never depend on the process (no salt, no pointer values) and never
 * on the host's byte order.  A different hash needs a new section kind or
 * format version.  docs/FORMAT.md specifies it bit for bit.
 *
 * Digests of cryptographic hashes are already uniform, but "raw" tables may
 * hold structured keys (counters, short ids), so the key is fully mixed.
 */
#ifndef HL_HASH_H
#define HL_HASH_H

#include "hl_common.h"

#define HL_HASH_M1 0x9E3779B97F4A7C15ULL
#define HL_HASH_M2 0xC2B2AE3D27D4EB4FULL
#define HL_HASH_M3 0x165667B19E3779F9ULL
#define HL_HASH_F1 0xFF51AFD7ED558CCDULL
#define HL_HASH_F2 0xC4CEB9FE1A85EC53ULL

HL_INLINE uint64_t hl_rotl64(uint64_t x, unsigned r) {
    return (x << r) | (x >> (64 - r));
}

/* Final avalanche: every input bit affects every output bit. */
HL_INLINE uint64_t hl_fmix64(uint64_t x) {
    x ^= x >> 33;
    x *= HL_HASH_F1;
    x ^= x >> 33;
    x *= HL_HASH_F2;
    x ^= x >> 33;
    return x;
}

/* hl_hash64: each 64-bit word of the key (read little-endian, the last one
 * zero padded) is tagged with its position, multiplied and rotated; the
 * words are folded with XOR and the result avalanched.  The words are
 * independent until the fold, so the dependency chain is short: about one
 * multiply plus the final mix, whatever the width (single lookups wait on
 * this latency before the Bloom block can be fetched). */
HL_INLINE uint64_t hl_hash64(const uint8_t *key, size_t width, uint64_t seed) {
    uint64_t h = seed ^ ((uint64_t)width * HL_HASH_M1);
    size_t i = 0, word = 1;
    for (; i + 8 <= width; i += 8, word++)
        h ^= hl_rotl64((hl_load_le64(key + i) ^ (word * HL_HASH_M3)) * HL_HASH_M2, 31);
    if (i < width) {
        uint64_t v = 0;
        for (size_t j = 0; i + j < width; j++) v |= (uint64_t)key[i + j] << (8 * j);
        h ^= hl_rotl64((v ^ (word * HL_HASH_M3)) * HL_HASH_M2, 31);
    }
    return hl_fmix64(h);
}

#endif /* HL_HASH_H */
