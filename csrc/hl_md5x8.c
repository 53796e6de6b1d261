/*
 * hl_md5x8.c - see hl_md5x8.h.  MD5 as in RFC 1321, one message per lane.
 */
#include "hl_md5x8.h"

#include <string.h>

#include "hl_cpu.h"

void hl_md5x8_init(hl_md5x8 *s) {
    memset(s, 0, sizeof *s);
}

void hl_md5x8_begin(hl_md5x8 *s, unsigned lane) {
    s->a[lane] = 0x67452301u;
    s->b[lane] = 0xefcdab89u;
    s->c[lane] = 0x98badcfeu;
    s->d[lane] = 0x10325476u;
}

void hl_md5x8_feed(hl_md5x8 *s, unsigned lane, const uint8_t *msg, uint64_t len,
                   int last, uint64_t total) {
    s->msg[lane] = msg;
    s->full[lane] = len / 64;
    s->pos[lane] = 0;
    if (!last) {
        s->blocks[lane] = (int32_t)s->full[lane];
        return;
    }
    size_t rem = (size_t)(len % 64);
    uint8_t *tail = s->tail[lane];
    memset(tail, 0, sizeof s->tail[lane]);
    if (rem)
        memcpy(tail, msg + s->full[lane] * 64, rem);
    tail[rem] = 0x80;
    size_t extra = rem < 56 ? 1 : 2;
    uint64_t bits = total * 8;
    for (size_t k = 0; k < 8; k++)
        tail[extra * 64 - 8 + k] = (uint8_t)(bits >> (8 * k));
    s->blocks[lane] = (int32_t)(s->full[lane] + extra);
}

void hl_md5x8_start(hl_md5x8 *s, unsigned lane, const uint8_t *msg, uint64_t len) {
    hl_md5x8_begin(s, lane);
    hl_md5x8_feed(s, lane, msg, len, 1, len);
}

void hl_md5x8_take(hl_md5x8 *s, unsigned lane, uint8_t out[16]) {
    const uint32_t words[4] = {s->a[lane], s->b[lane], s->c[lane], s->d[lane]};
    for (int k = 0; k < 4; k++)
        for (int i = 0; i < 4; i++)
            out[4 * k + i] = (uint8_t)(words[k] >> (8 * i));
    s->blocks[lane] = 0;
    s->pos[lane] = 0;
    s->full[lane] = 0;
    s->msg[lane] = NULL;
}

/* RFC 1321: T[i] = floor(2^32 * |sin(i + 1)|). */
static const uint32_t T[64] = {
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a,
    0xa8304613, 0xfd469501, 0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be,
    0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821, 0xf61e2562, 0xc040b340,
    0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8,
    0x676f02d9, 0x8d2a4c8a, 0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c,
    0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70, 0x289b7ec6, 0xeaa127fa,
    0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92,
    0xffeff47d, 0x85845dd1, 0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1,
    0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
};

static inline uint32_t rotl32(uint32_t x, unsigned s) {
    return (x << s) | (x >> (32 - s));
}

/* One step: a = b + ((a + f(b, c, d) + w + T[i]) <<< s).  The four rounds
 * are written out with constant shifts, as in the AVX2 kernel: a scalar
 * MD5 is bound by the latency of this chain. */
#define SF(b, c, d) ((d) ^ ((b) & ((c) ^ (d))))
#define SH(b, c, d) ((b) ^ (c) ^ (d))
#define SI(b, c, d) ((c) ^ ((b) | ~(d)))
#define SSTEP(f, a, b, c, d, i, w, s) a = (b) + rotl32((a) + (w) + T[i] + f(b, c, d), s)
/* G = (b & d) | (c & ~d), the two halves disjoint: added separately, only
 * b & d waits for b (one operation on the chain instead of three). */
#define SGSTEP(a, b, c, d, i, w, s) \
    a = (b) + rotl32((a) + (w) + T[i] + ((c) & ~(d)) + ((b) & (d)), s)

static void md5_block(uint32_t st[4], const uint8_t *p) {
    uint32_t w[16];
    for (int k = 0; k < 16; k++)
        w[k] = (uint32_t)p[4 * k] | (uint32_t)p[4 * k + 1] << 8 |
               (uint32_t)p[4 * k + 2] << 16 | (uint32_t)p[4 * k + 3] << 24;
    uint32_t a = st[0], b = st[1], c = st[2], d = st[3];
    for (int i = 0; i < 16; i += 4) {
        SSTEP(SF, a, b, c, d, i, w[i], 7);
        SSTEP(SF, d, a, b, c, i + 1, w[i + 1], 12);
        SSTEP(SF, c, d, a, b, i + 2, w[i + 2], 17);
        SSTEP(SF, b, c, d, a, i + 3, w[i + 3], 22);
    }
    for (int i = 16; i < 32; i += 4) {
        SGSTEP(a, b, c, d, i, w[(5 * i + 1) & 15], 5);
        SGSTEP(d, a, b, c, i + 1, w[(5 * i + 6) & 15], 9);
        SGSTEP(c, d, a, b, i + 2, w[(5 * i + 11) & 15], 14);
        SGSTEP(b, c, d, a, i + 3, w[(5 * i + 16) & 15], 20);
    }
    for (int i = 32; i < 48; i += 4) {
        SSTEP(SH, a, b, c, d, i, w[(3 * i + 5) & 15], 4);
        SSTEP(SH, d, a, b, c, i + 1, w[(3 * i + 8) & 15], 11);
        SSTEP(SH, c, d, a, b, i + 2, w[(3 * i + 11) & 15], 16);
        SSTEP(SH, b, c, d, a, i + 3, w[(3 * i + 14) & 15], 23);
    }
    for (int i = 48; i < 64; i += 4) {
        SSTEP(SI, a, b, c, d, i, w[(7 * i) & 15], 6);
        SSTEP(SI, d, a, b, c, i + 1, w[(7 * i + 7) & 15], 10);
        SSTEP(SI, c, d, a, b, i + 2, w[(7 * i + 14) & 15], 15);
        SSTEP(SI, b, c, d, a, i + 3, w[(7 * i + 21) & 15], 21);
    }
    st[0] += a;
    st[1] += b;
    st[2] += c;
    st[3] += d;
}

void hl_md5x8_run_scalar(hl_md5x8 *s, unsigned lane) {
    uint32_t st[4] = {s->a[lane], s->b[lane], s->c[lane], s->d[lane]};
    for (int32_t k = s->pos[lane]; k < s->blocks[lane]; k++) {
        uint64_t b = (uint64_t)k;
        md5_block(st, b < s->full[lane] ? s->msg[lane] + b * 64
                                        : s->tail[lane] + (b - s->full[lane]) * 64);
    }
    s->pos[lane] = s->blocks[lane];
    s->a[lane] = st[0];
    s->b[lane] = st[1];
    s->c[lane] = st[2];
    s->d[lane] = st[3];
}

#if HL_HAVE_AVX2
#include <immintrin.h>

int hl_md5x8_available(void) {
    return hl_cpu_has_avx2();
}

#define X_ATTR __attribute__((target("avx2")))
#define ROTL(x, s) _mm256_or_si256(_mm256_slli_epi32((x), (s)), \
                                   _mm256_srli_epi32((x), 32 - (s)))
/* The round functions, written so that as few operations as possible wait
 * for x (b, the value just computed): MD5 is one dependency chain, so its
 * latency sets the speed of the eight lanes as of one. */
#define FF(x, y, z) _mm256_xor_si256(z, _mm256_and_si256(x, _mm256_xor_si256(y, z)))
#define HH(x, y, z) _mm256_xor_si256(x, _mm256_xor_si256(y, z))
#define II(x, y, z) _mm256_xor_si256(y, _mm256_or_si256(x, _mm256_xor_si256(z, ones)))
/* a = b + ((a + w + T[i] + f(b, c, d)) <<< s), the sum not waiting for b
 * added first. */
#define STEP(f, a, b, c, d, i, w, s)                                          \
    a = _mm256_add_epi32(                                                     \
        b, ROTL(_mm256_add_epi32(                                             \
                    _mm256_add_epi32(a, _mm256_add_epi32(                     \
                                            w, _mm256_set1_epi32((int)T[i]))), \
                    f(b, c, d)),                                              \
                s))
/* G = (b & d) | (c & ~d): the two halves are disjoint, so they are added
 * one by one and only b & d waits for b. */
#define GSTEP(a, b, c, d, i, w, s)                                            \
    a = _mm256_add_epi32(                                                     \
        b, ROTL(_mm256_add_epi32(                                             \
                    _mm256_add_epi32(                                         \
                        _mm256_add_epi32(a, _mm256_add_epi32(                 \
                                                w, _mm256_set1_epi32((int)T[i]))), \
                        _mm256_andnot_si256(d, c)),                           \
                    _mm256_and_si256(b, d)),                                  \
                s))

/* 32-bit word k of all eight blocks: an 8x8 transpose of the first (or
 * last) 32 bytes of each lane's block. */
X_ATTR static void transpose8(const uint8_t *const p[8], size_t off, __m256i w[8]) {
    __m256i r[8], t[8], u[8];
    for (int l = 0; l < 8; l++)
        r[l] = _mm256_loadu_si256((const __m256i *)(const void *)(p[l] + off));
    for (int l = 0; l < 8; l += 2) {
        t[l] = _mm256_unpacklo_epi32(r[l], r[l + 1]);
        t[l + 1] = _mm256_unpackhi_epi32(r[l], r[l + 1]);
    }
    for (int h = 0; h < 8; h += 4) {
        u[h] = _mm256_unpacklo_epi64(t[h], t[h + 2]);
        u[h + 1] = _mm256_unpackhi_epi64(t[h], t[h + 2]);
        u[h + 2] = _mm256_unpacklo_epi64(t[h + 1], t[h + 3]);
        u[h + 3] = _mm256_unpackhi_epi64(t[h + 1], t[h + 3]);
    }
    for (int k = 0; k < 4; k++) {
        w[k] = _mm256_permute2x128_si256(u[k], u[k + 4], 0x20);
        w[k + 4] = _mm256_permute2x128_si256(u[k], u[k + 4], 0x31);
    }
}

X_ATTR unsigned hl_md5x8_run(hl_md5x8 *s) {
    const __m256i ones = _mm256_set1_epi32(-1);
    const __m256i blocks = _mm256_loadu_si256((const __m256i *)(const void *)s->blocks);
    const __m256i loaded = _mm256_cmpgt_epi32(blocks, _mm256_setzero_si256());
    __m256i pos = _mm256_loadu_si256((const __m256i *)(const void *)s->pos);
    if (_mm256_testz_si256(loaded, loaded))
        return 0;
    __m256i a = _mm256_loadu_si256((const __m256i *)(const void *)s->a);
    __m256i b = _mm256_loadu_si256((const __m256i *)(const void *)s->b);
    __m256i c = _mm256_loadu_si256((const __m256i *)(const void *)s->c);
    __m256i d = _mm256_loadu_si256((const __m256i *)(const void *)s->d);
    for (;;) {
        __m256i done = _mm256_and_si256(loaded, _mm256_cmpeq_epi32(pos, blocks));
        unsigned mask = (unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(done));
        if (mask) {
            _mm256_storeu_si256((__m256i *)(void *)s->pos, pos);
            _mm256_storeu_si256((__m256i *)(void *)s->a, a);
            _mm256_storeu_si256((__m256i *)(void *)s->b, b);
            _mm256_storeu_si256((__m256i *)(void *)s->c, c);
            _mm256_storeu_si256((__m256i *)(void *)s->d, d);
            return mask;
        }
        int32_t at[8];
        _mm256_storeu_si256((__m256i *)(void *)at, pos);
        const uint8_t *p[8];
        for (int l = 0; l < 8; l++) {
            uint64_t k = (uint64_t)at[l];
            if (at[l] >= s->blocks[l])
                p[l] = s->tail[l];  /* empty or done lane: result not kept */
            else if (k < s->full[l])
                p[l] = s->msg[l] + k * 64;
            else
                p[l] = s->tail[l] + (k - s->full[l]) * 64;
        }
        __m256i w[16];
        transpose8(p, 0, w);
        transpose8(p, 32, w + 8);
        __m256i a0 = a, b0 = b, c0 = c, d0 = d;
        for (int i = 0; i < 16; i += 4) {
            STEP(FF, a, b, c, d, i, w[i], 7);
            STEP(FF, d, a, b, c, i + 1, w[i + 1], 12);
            STEP(FF, c, d, a, b, i + 2, w[i + 2], 17);
            STEP(FF, b, c, d, a, i + 3, w[i + 3], 22);
        }
        for (int i = 16; i < 32; i += 4) {
            GSTEP(a, b, c, d, i, w[(5 * i + 1) & 15], 5);
            GSTEP(d, a, b, c, i + 1, w[(5 * i + 6) & 15], 9);
            GSTEP(c, d, a, b, i + 2, w[(5 * i + 11) & 15], 14);
            GSTEP(b, c, d, a, i + 3, w[(5 * i + 16) & 15], 20);
        }
        for (int i = 32; i < 48; i += 4) {
            STEP(HH, a, b, c, d, i, w[(3 * i + 5) & 15], 4);
            STEP(HH, d, a, b, c, i + 1, w[(3 * i + 8) & 15], 11);
            STEP(HH, c, d, a, b, i + 2, w[(3 * i + 11) & 15], 16);
            STEP(HH, b, c, d, a, i + 3, w[(3 * i + 14) & 15], 23);
        }
        for (int i = 48; i < 64; i += 4) {
            STEP(II, a, b, c, d, i, w[(7 * i) & 15], 6);
            STEP(II, d, a, b, c, i + 1, w[(7 * i + 7) & 15], 10);
            STEP(II, c, d, a, b, i + 2, w[(7 * i + 14) & 15], 15);
            STEP(II, b, c, d, a, i + 3, w[(7 * i + 21) & 15], 21);
        }
        /* Only lanes with a block left move on. */
        __m256i live = _mm256_cmpgt_epi32(blocks, pos);
        a = _mm256_blendv_epi8(a0, _mm256_add_epi32(a, a0), live);
        b = _mm256_blendv_epi8(b0, _mm256_add_epi32(b, b0), live);
        c = _mm256_blendv_epi8(c0, _mm256_add_epi32(c, c0), live);
        d = _mm256_blendv_epi8(d0, _mm256_add_epi32(d, d0), live);
        pos = _mm256_sub_epi32(pos, live);  /* live lanes are -1 */
    }
}

#else  /* no AVX2 kernel in this build */

int hl_md5x8_available(void) {
    return 0;
}

unsigned hl_md5x8_run(hl_md5x8 *s) {
    (void)s;
    return 0;
}

#endif
