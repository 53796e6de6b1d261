/*
 * hl_filehash.h - read a batch of files and compute their md5/sha1/sha256,
 * the per-file loop of a file-tree scan, callable without the GIL.
 *
 * Why in C: in Python every file costs ~15 us of interpreter time (open,
 * fstat, read, hash, fstat, close) under the GIL, which serialises a thread
 * pool on trees of small files and stalls it whenever the OS preempts the
 * thread holding the lock.  Here a worker thread hashes a whole batch with
 * the GIL released.
 *
 * The digests come from OpenSSL's libcrypto, loaded at run time with
 * dlopen: it is the library CPython's hashlib uses, so results agree with
 * hashlib and no OpenSSL headers are needed to build.  Without it,
 * hl_filehash_available() returns 0 and the caller hashes in Python.
 */
#ifndef HL_FILEHASH_H
#define HL_FILEHASH_H

#include "hl_common.h"
#include "hl_search.h"

/* Algorithm bits for hl_filehash_batch. */
#define HL_FH_MD5 1u
#define HL_FH_SHA1 2u
#define HL_FH_SHA256 4u

/* Per-file outcomes (a positive value is the errno of a failed call). */
#define HL_FH_OK 0
#define HL_FH_NOT_REGULAR (-1)   /* fstat: not a regular file */
#define HL_FH_REPLACED (-2)      /* another inode than the caller saw */
#define HL_FH_SIZE_CHANGED (-3)  /* more or fewer bytes than fstat said */
#define HL_FH_CHANGED (-4)       /* size or mtime moved during the read */
#define HL_FH_CRYPTO (-5)        /* libcrypto refused (should not happen) */
#define HL_FH_STOPPED (-6)       /* *stop became non-zero: not hashed */

typedef struct {
    const char *path;        /* in: NUL-terminated */
    uint64_t expect_dev;     /* in: with check_inode, the inode the walk saw */
    uint64_t expect_ino;
    int check_inode;
    int status;              /* out: HL_FH_* or errno */
    uint64_t size;           /* out: bytes hashed */
    int candidate;           /* out: 0 no probe table has a digest of it; 1 one
                              * has (other digests not computed: file larger
                              * than the buffer); 2 one has, every digest of
                              * algorithms | rest computed */
    uint8_t md5[16];         /* out: the algorithms asked for */
    uint8_t sha1[20];
    uint8_t sha256[32];
} hl_filejob;

/* 1 if libcrypto could be loaded (once, thread-safe), else 0. */
int hl_filehash_available(void);

/* For each job: open(path, open_flags), fstat (regular file, expected
 * inode), read everything through buf (bufsize bytes) updating the asked
 * digests, fstat again (same size and mtime), close.  Then, if probe[a]
 * (md5, sha1, sha256; NULL: none) holds the file's digest of algorithm a,
 * the file is a candidate and, when it fitted in buf, its digests of the
 * `rest` algorithms are computed from buf too (no second read).  HL_EINVAL if
 * libcrypto is unavailable or the arguments are bad, HL_ENOMEM if its
 * contexts cannot be allocated; per-file problems go to job->status.
 * stop (may be NULL) is polled between reads: another thread sets it to
 * abandon the batch (Ctrl-C must not wait for a 100 GB file).
 * md5 only, with AVX2 and bufsize >= 8 * 4096: the files are hashed eight
 * at a time in the lanes of hl_md5x8, each lane reading through its eighth
 * of buf (files smaller than that read whole, larger ones streamed), with
 * the same checks; "fitted in buf" then means "smaller than bufsize / 8". */
hl_status hl_filehash_batch(hl_filejob *jobs, size_t n, unsigned algorithms,
                            int open_flags, uint8_t *buf, size_t bufsize,
                            const volatile int *stop, const hl_table *const probe[3],
                            unsigned rest);

#endif /* HL_FILEHASH_H */
