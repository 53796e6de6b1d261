/*
 * hl_md5x8.h - MD5 of eight independent messages at once (AVX2).
 *
 * Why: MD5 is a chain of dependent 32-bit operations, so one message runs
 * at the latency of that chain (about 5 cycles per byte, OpenSSL and
 * coreutils alike) and leaves most of the core idle.  A file-tree scan has
 * many independent files: putting one file in each 32-bit lane of an AVX2
 * register hashes eight of them in about the time of one (measured ~3-4x
 * the bytes per CPU second of OpenSSL on small files; see docs/SCAN.md).
 *
 * Only x86-64 with GCC/Clang (HL_HAVE_AVX2); the caller checks
 * hl_md5x8_available() and otherwise hashes with libcrypto one at a time.
 */
#ifndef HL_MD5X8_H
#define HL_MD5X8_H

#include <stddef.h>
#include <stdint.h>

/* Largest message length accepted (lengths are counted in 32-bit blocks). */
#define HL_MD5X8_MAX_LEN ((uint64_t)1 << 36)

/* Eight lanes, each hashing one message; a lane is refilled as soon as its
 * message is done, so messages of different lengths keep every lane busy. */
typedef struct {
    uint32_t a[8], b[8], c[8], d[8];   /* MD5 state of each lane */
    const uint8_t *msg[8];
    uint64_t full[8];                  /* whole 64-byte blocks of msg (of the
                                        * current part when streaming) */
    int32_t pos[8];                    /* blocks hashed */
    int32_t blocks[8];                 /* blocks in all, padding included;
                                        * 0: the lane is empty */
    uint8_t tail[8][128];              /* last bytes of msg + padding */
} hl_md5x8;

/* 1 if the AVX2 kernel can run here (CPU, OS, not disabled), else 0. */
int hl_md5x8_available(void);

/* Empty every lane. */
void hl_md5x8_init(hl_md5x8 *s);

/* Start hashing msg[0 .. len) (len <= HL_MD5X8_MAX_LEN) in an empty lane;
 * msg must stay valid until the lane's digest is taken. */
void hl_md5x8_start(hl_md5x8 *s, unsigned lane, const uint8_t *msg, uint64_t len);

/* Streaming, for messages too long to hold whole (large files read part
 * by part): begin resets an empty lane; feed gives it the next part,
 * msg[0 .. len), which must stay valid until the lane is reported done.  A
 * part that is not the last has a length that is a positive multiple of 64;
 * the last one (last = 1, any length, 0 included) ends a message of `total`
 * bytes in all.  After the last part, take the digest as for start. */
void hl_md5x8_begin(hl_md5x8 *s, unsigned lane);
void hl_md5x8_feed(hl_md5x8 *s, unsigned lane, const uint8_t *msg, uint64_t len,
                   int last, uint64_t total);

/* Hash what is left of a lane's part one block at a time, without SIMD; the
 * lane is then done (as if hl_md5x8_run had reported it).  Why: the eight-
 * lane kernel costs about as much per step as 1.6 scalar blocks, so once
 * only one lane has data left (the last large file of a batch),
 * finishing it without SIMD is faster.  Always available. */
void hl_md5x8_run_scalar(hl_md5x8 *s, unsigned lane);

/* Hash blocks until a lane's message (or part) is done; returns the bit
 * mask of the lanes whose message or part is done (0 if every lane is empty).  Only call when
 * hl_md5x8_available(). */
unsigned hl_md5x8_run(hl_md5x8 *s);

/* The digest of a done lane, which becomes empty. */
void hl_md5x8_take(hl_md5x8 *s, unsigned lane, uint8_t out[16]);

#endif /* HL_MD5X8_H */
