/*
 * hl_common.h - portability macros, status codes and byte-order helpers
 * shared by every file of the hashlookup C core.
 *
 * Invariants: nothing in csrc/ includes Python.h, allocates Python objects
 * or reports errors through errno.  Every fallible function returns an
 * hl_status; HL_OK is zero so "if (st) return st;" propagates errors.
 */
#ifndef HL_COMMON_H
#define HL_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__) || defined(__clang__)
#define HL_LIKELY(x) __builtin_expect(!!(x), 1)
#define HL_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define HL_INLINE static inline __attribute__((always_inline))
#define HL_PREFETCH(p) __builtin_prefetch((const void *)(p), 0, 3)
#else
#define HL_LIKELY(x) (x)
#define HL_UNLIKELY(x) (x)
#define HL_INLINE static inline
#define HL_PREFETCH(p) ((void)(p))
#endif

#define HL_RESTRICT restrict

/* Largest key width (bytes) any table may have: sha512 would fit. */
#define HL_MAX_WIDTH 64

typedef enum hl_status {
    HL_OK = 0,
    HL_EINVAL = 1,     /* a parameter is out of its documented range */
    HL_EFORMAT = 2,    /* table structure is inconsistent (corrupt file) */
    HL_EHEX = 3,       /* a character is not a hex digit */
    HL_ELENGTH = 4,    /* a token has the wrong length */
    HL_ENOSPACE = 5,   /* an output buffer is full */
    HL_ENOMEM = 6,     /* a scratch allocation failed */
    HL_ETOOLONG = 7    /* a text line exceeds the allowed length */
} hl_status;

/* Explicit little-endian loads: the file format is little-endian and a
 * big-endian host must read it the same way.  On x86 and arm64 gcc turns
 * these into single loads. */
HL_INLINE uint32_t hl_load_le32(const uint8_t *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

HL_INLINE uint64_t hl_load_le64(const uint8_t *p) {
    return (uint64_t)hl_load_le32(p) | ((uint64_t)hl_load_le32(p + 4) << 32);
}

HL_INLINE void hl_store_le32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

/* Big-endian 64-bit load (the memcmp order of 8 bytes as an integer). */
HL_INLINE uint64_t hl_load_be64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    v = __builtin_bswap64(v);
#elif !(defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__)
    v = ((uint64_t)p[0] << 56) | ((uint64_t)p[1] << 48) | ((uint64_t)p[2] << 40) |
        ((uint64_t)p[3] << 32) | ((uint64_t)p[4] << 24) | ((uint64_t)p[5] << 16) |
        ((uint64_t)p[6] << 8) | (uint64_t)p[7];
#endif
    return v;
}

/* The key's sort prefix: its first min(width, 8) bytes as a big-endian
 * integer, zero padded on the right.  Keys are in memcmp order, so prefixes
 * are non-decreasing along the table. */
HL_INLINE uint64_t hl_key_prefix64(const uint8_t *key, size_t width) {
    if (HL_LIKELY(width >= 8)) return hl_load_be64(key);
    uint64_t v = 0;
    for (size_t i = 0; i < width; i++) v |= (uint64_t)key[i] << (56 - 8 * i);
    return v;
}

#endif /* HL_COMMON_H */
