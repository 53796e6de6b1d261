/*
 * hl_filehash.c - see hl_filehash.h.
 */
#define _GNU_SOURCE
#include "hl_filehash.h"

#include "hl_md5x8.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The few libcrypto entry points used, declared here (no headers needed);
 * their signatures are the same in OpenSSL 1.1 and 3. */
typedef struct hl_evp_md HL_EVP_MD;
typedef struct hl_evp_md_ctx HL_EVP_MD_CTX;

static struct {
    HL_EVP_MD_CTX *(*ctx_new)(void);
    void (*ctx_free)(HL_EVP_MD_CTX *);
    int (*init)(HL_EVP_MD_CTX *, const HL_EVP_MD *, void *engine);
    int (*update)(HL_EVP_MD_CTX *, const void *, size_t);
    int (*final)(HL_EVP_MD_CTX *, unsigned char *, unsigned int *);
    const HL_EVP_MD *md[3];   /* md5, sha1, sha256 */
    int ok;
} crypto;

static pthread_once_t crypto_once = PTHREAD_ONCE_INIT;

static void *sym(void *lib, const char *name) {
    return dlsym(lib, name);
}

static void crypto_load(void) {
    static const char *const libs[] = {"libcrypto.so.3", "libcrypto.so.1.1",
                                       "libcrypto.so", NULL};
    static const char *const names[3] = {"MD5", "SHA1", "SHA256"};
    void *lib = NULL;
    for (size_t i = 0; libs[i] != NULL && lib == NULL; i++)
        lib = dlopen(libs[i], RTLD_NOW | RTLD_LOCAL);
    if (lib == NULL)
        return;
    /* Function pointers from dlsym: POSIX guarantees the conversion. */
    *(void **)&crypto.ctx_new = sym(lib, "EVP_MD_CTX_new");
    *(void **)&crypto.ctx_free = sym(lib, "EVP_MD_CTX_free");
    *(void **)&crypto.init = sym(lib, "EVP_DigestInit_ex");
    *(void **)&crypto.update = sym(lib, "EVP_DigestUpdate");
    *(void **)&crypto.final = sym(lib, "EVP_DigestFinal_ex");
    /* OpenSSL 3: fetch each algorithm once (an implicit fetch at every
     * init takes a lock shared by all threads); 1.1: by name. */
    const HL_EVP_MD *(*fetch)(void *, const char *, const char *);
    const HL_EVP_MD *(*byname)(const char *);
    *(void **)&fetch = sym(lib, "EVP_MD_fetch");
    *(void **)&byname = sym(lib, "EVP_get_digestbyname");
    if (!crypto.ctx_new || !crypto.ctx_free || !crypto.init || !crypto.update ||
        !crypto.final || (!fetch && !byname))
        return;
    for (size_t a = 0; a < 3; a++) {
        crypto.md[a] = fetch ? fetch(NULL, names[a], NULL) : byname(names[a]);
        if (crypto.md[a] == NULL)
            return;
    }
    crypto.ok = 1;
}

int hl_filehash_available(void) {
    pthread_once(&crypto_once, crypto_load);
    return crypto.ok;
}

static int same_time(const struct stat *a, const struct stat *b) {
    return a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
           a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/* Before a file is read: a regular file, the one the walk saw. */
/* read(2), retried when a signal interrupts it before any byte arrived. */
static ssize_t read_retry(int fd, void *buf, size_t n) {
    ssize_t got;
    do
        got = read(fd, buf, n);
    while (got < 0 && errno == EINTR);
    return got;
}

static int check_before(int fd, const hl_filejob *job, struct stat *before) {
    if (fstat(fd, before) != 0)
        return errno;
    if (!S_ISREG(before->st_mode))
        return HL_FH_NOT_REGULAR;
    if (job->check_inode && ((uint64_t)before->st_dev != job->expect_dev ||
                             (uint64_t)before->st_ino != job->expect_ino))
        return HL_FH_REPLACED;
    return HL_FH_OK;
}

/* After it was read: same size and mtime as before. */
static int check_after(int fd, const struct stat *before) {
    struct stat after;
    if (fstat(fd, &after) != 0)
        return errno;
    if (after.st_size != before->st_size || !same_time(before, &after))
        return HL_FH_CHANGED;
    return HL_FH_OK;
}

/* Probe the digests of a hashed file: job->candidate is 0 if no probe table
 * has one of them, else 2 when the digests of the `rest` algorithms could be
 * computed too (data holds the whole file, or there is no rest), else 1. */
static int finish_candidate(hl_filejob *job, HL_EVP_MD_CTX *const ctx[3],
                            const uint8_t *data, unsigned algorithms,
                            const hl_table *const probe[3], unsigned rest) {
    uint8_t *out[3] = {job->md5, job->sha1, job->sha256};
    job->candidate = 0;
    for (size_t a = 0; a < 3; a++)
        if (probe != NULL && probe[a] != NULL && (algorithms >> a & 1u) &&
            hl_table_find(probe[a], out[a]) >= 0)
            job->candidate = 1;
    if (!job->candidate || (rest != 0 && data == NULL))
        return HL_FH_OK;
    for (size_t a = 0; a < 3; a++) {
        unsigned int len = 0;
        if (!(rest >> a & 1u))
            continue;
        if (crypto.init(ctx[a], crypto.md[a], NULL) != 1 ||
            crypto.update(ctx[a], data, (size_t)job->size) != 1 ||
            crypto.final(ctx[a], out[a], &len) != 1)
            return HL_FH_CRYPTO;
    }
    job->candidate = 2;
    return HL_FH_OK;
}

/* Read and hash one open file; returns its status. */
static int hash_fd(int fd, hl_filejob *job, HL_EVP_MD_CTX *const ctx[3],
                   unsigned algorithms, uint8_t *buf, size_t bufsize,
                   const volatile int *stop, const hl_table *const probe[3],
                   unsigned rest) {
    struct stat before;
    int status = check_before(fd, job, &before);
    if (status != HL_FH_OK)
        return status;
    for (size_t a = 0; a < 3; a++)
        if ((algorithms >> a & 1u) && crypto.init(ctx[a], crypto.md[a], NULL) != 1)
            return HL_FH_CRYPTO;
    uint64_t size = (uint64_t)before.st_size, total = 0;
    size_t reads = 0;
    for (;;) {
        if (stop != NULL && *stop)
            return HL_FH_STOPPED;
        /* Ask one byte more than expected so growth shows in this read; a
         * short read ending exactly at the size is EOF (fstat confirms). */
        uint64_t left = size - total + 1;
        size_t want = left < bufsize ? (size_t)left : bufsize;
        ssize_t got = read_retry(fd, buf, want);
        if (got < 0)
            return errno;
        if (got == 0)
            break;
        total += (uint64_t)got;
        reads++;
        if (total > size)
            return HL_FH_SIZE_CHANGED;
        for (size_t a = 0; a < 3; a++)
            if ((algorithms >> a & 1u) &&
                crypto.update(ctx[a], buf, (size_t)got) != 1)
                return HL_FH_CRYPTO;
        if ((size_t)got < want && total == size)
            break;
    }
    if (total != size)
        return HL_FH_SIZE_CHANGED;
    if ((status = check_after(fd, &before)) != HL_FH_OK)
        return status;
    uint8_t *out[3] = {job->md5, job->sha1, job->sha256};
    for (size_t a = 0; a < 3; a++) {
        unsigned int len = 0;
        if ((algorithms >> a & 1u) && crypto.final(ctx[a], out[a], &len) != 1)
            return HL_FH_CRYPTO;
    }
    job->size = total;
    /* After one read (or none) the whole file is still in buf. */
    return finish_candidate(job, ctx, reads <= 1 ? buf : NULL, algorithms, probe,
                            rest);
}

/* md5 only, AVX2 (hl_md5x8.h): every file goes through one of eight lanes,
 * each with its part of buf (bufsize / 8 bytes, a multiple of 64).  A file
 * smaller than its part is read whole and hashed as one message; a larger
 * one is streamed: its part is refilled each time the lane has hashed it,
 * the file staying open meanwhile.  A lane is given the next file as soon
 * as its file is done, so files of every length keep the eight lanes busy;
 * once the batch has no file left to start and at most HL_FH_SCALAR_LANES
 * lanes still hash, they finish one block at a time (cheaper than eight
 * lanes for one: one step of the eight-lane kernel costs about 1.6 scalar
 * blocks, so from two lanes on it is the faster). */
#define HL_FH_SCALAR_LANES 1

typedef struct {
    hl_filejob *job;
    uint8_t *part;       /* the lane's part of buf */
    int fd;              /* streamed file, open; -1 otherwise */
    int last;            /* the lane hashes the last part of its file */
    uint64_t size;       /* fstat's size */
    uint64_t total;      /* bytes read so far */
    struct stat before;
} hl_lane;

typedef struct {
    hl_md5x8 mx;
    hl_lane lane[8];
    size_t cap;          /* bytes in each lane's part */
    unsigned busy;       /* lanes with a file */
    const volatile int *stop;
    HL_EVP_MD_CTX *const *ctx;
    const hl_table *const *probe;
    unsigned rest;
} hl_lanes;

/* A lane's file failed or stopped: record it and free the lane. */
static void lane_fail(hl_lanes *L, unsigned l, int status) {
    hl_lane *ln = &L->lane[l];
    uint8_t ignored[16];
    if (ln->fd >= 0)
        close(ln->fd);
    ln->fd = -1;
    ln->job->status = status;
    hl_md5x8_take(&L->mx, l, ignored);
    L->busy &= ~(1u << l);
}

/* Read the next part of a streamed file into its lane and hand it to the
 * kernel; after the last part, the fstat check and close.  Ask one byte
 * more than the file should have left, so that growth shows; a short read
 * ending exactly at the size is its end (fstat confirms). */
static void lane_refill(hl_lanes *L, unsigned l) {
    hl_lane *ln = &L->lane[l];
    if (L->stop != NULL && *L->stop) {
        lane_fail(L, l, HL_FH_STOPPED);
        return;
    }
    size_t have = 0;
    int end = 0;
    while (have < L->cap) {
        uint64_t left = ln->size - ln->total + 1;
        size_t want = left < L->cap - have ? (size_t)left : L->cap - have;
        ssize_t got = read_retry(ln->fd, ln->part + have, want);
        if (got < 0) {
            lane_fail(L, l, errno);
            return;
        }
        if (got == 0) {
            end = 1;
            break;
        }
        have += (size_t)got;
        ln->total += (uint64_t)got;
        if (ln->total > ln->size) {
            lane_fail(L, l, HL_FH_SIZE_CHANGED);
            return;
        }
        if ((size_t)got < want && ln->total == ln->size) {
            end = 1;
            break;
        }
    }
    if (!end) {  /* a full part (cap is a multiple of 64) */
        hl_md5x8_feed(&L->mx, l, ln->part, have, 0, 0);
        return;
    }
    int status = ln->total == ln->size ? check_after(ln->fd, &ln->before)
                                       : HL_FH_SIZE_CHANGED;
    if (status != HL_FH_OK) {
        lane_fail(L, l, status);
        return;
    }
    close(ln->fd);
    ln->fd = -1;
    ln->last = 1;
    hl_md5x8_feed(&L->mx, l, ln->part, have, 1, ln->total);
}

/* Open a file and start it in free lane l (or record its failure). */
static void lane_start(hl_lanes *L, unsigned l, hl_filejob *job, int open_flags) {
    hl_lane *ln = &L->lane[l];
    job->size = 0;
    if (L->stop != NULL && *L->stop) {
        job->status = HL_FH_STOPPED;
        return;
    }
    int fd = open(job->path, open_flags);
    if (fd < 0) {
        job->status = errno;
        return;
    }
    int status = check_before(fd, job, &ln->before);
    if (status != HL_FH_OK) {
        close(fd);
        job->status = status;
        return;
    }
    ln->job = job;
    ln->size = (uint64_t)ln->before.st_size;
    ln->total = 0;
    ln->fd = fd;
    ln->last = 0;
    L->busy |= 1u << l;
    hl_md5x8_begin(&L->mx, l);
    /* A file that fits is read whole by the same code: one part, the last. */
    lane_refill(L, l);
}

/* A lane has hashed its part: refill it, or finish its file (digest, then
 * the candidate probe: a file read in one part is still in the lane's part). */
static void lane_done(hl_lanes *L, unsigned l) {
    hl_lane *ln = &L->lane[l];
    if (!ln->last) {
        lane_refill(L, l);
        return;
    }
    hl_filejob *job = ln->job;
    job->size = ln->total;
    hl_md5x8_take(&L->mx, l, job->md5);
    L->busy &= ~(1u << l);
    const uint8_t *whole = ln->size < L->cap ? ln->part : NULL;
    job->status = finish_candidate(job, L->ctx, whole, HL_FH_MD5, L->probe, L->rest);
}

static void batch_md5x8(hl_filejob *jobs, size_t n, int open_flags, uint8_t *buf,
                        size_t bufsize, const volatile int *stop,
                        const hl_table *const probe[3], unsigned rest,
                        HL_EVP_MD_CTX *const ctx[3]) {
    hl_lanes L;
    hl_md5x8_init(&L.mx);
    L.cap = bufsize / 8 / 64 * 64;
    L.busy = 0;
    L.stop = stop;
    L.ctx = ctx;
    L.probe = probe;
    L.rest = rest;
    for (unsigned l = 0; l < 8; l++) {
        L.lane[l].part = buf + l * L.cap;
        L.lane[l].fd = -1;
    }
    size_t next = 0;
    for (;;) {
        while (next < n && L.busy != 0xffu)
            lane_start(&L, (unsigned)__builtin_ctz(~L.busy & 0xffu), &jobs[next++],
                       open_flags);
        if (L.busy == 0) {
            if (next < n)
                continue;
            break;
        }
        unsigned done;
        if (next == n && __builtin_popcount(L.busy) <= HL_FH_SCALAR_LANES) {
            done = L.busy;
            for (unsigned l = 0; l < 8; l++)
                if (done >> l & 1u)
                    hl_md5x8_run_scalar(&L.mx, l);
        } else {
            done = hl_md5x8_run(&L.mx);
        }
        for (unsigned l = 0; l < 8; l++)
            if (done >> l & 1u)
                lane_done(&L, l);
    }
}

hl_status hl_filehash_batch(hl_filejob *jobs, size_t n, unsigned algorithms,
                            int open_flags, uint8_t *buf, size_t bufsize,
                            const volatile int *stop, const hl_table *const probe[3],
                            unsigned rest) {
    if (!hl_filehash_available() || bufsize == 0 || buf == NULL ||
        (algorithms & ~7u) != 0 || (rest & ~7u) != 0 || (rest & algorithms) != 0)
        return HL_EINVAL;
    HL_EVP_MD_CTX *ctx[3] = {NULL, NULL, NULL};
    hl_status st = HL_OK;
    for (size_t a = 0; a < 3; a++)
        if (((algorithms | rest) >> a & 1u) && (ctx[a] = crypto.ctx_new()) == NULL)
            st = HL_ENOMEM;
    if (st == HL_OK && algorithms == HL_FH_MD5 && bufsize >= 8 * 4096 &&
        hl_md5x8_available()) {
        batch_md5x8(jobs, n, open_flags, buf, bufsize, stop, probe, rest, ctx);
        n = 0;
    }
    for (size_t i = 0; i < n && st == HL_OK; i++) {
        hl_filejob *job = &jobs[i];
        job->size = 0;
        if (stop != NULL && *stop) {
            job->status = HL_FH_STOPPED;
            continue;
        }
        int fd = open(job->path, open_flags);
        if (fd < 0) {
            job->status = errno;
            continue;
        }
        job->status = hash_fd(fd, job, ctx, algorithms, buf, bufsize, stop, probe,
                              rest);
        close(fd);
    }
    for (size_t a = 0; a < 3; a++)
        if (ctx[a] != NULL)
            crypto.ctx_free(ctx[a]);
    return st;
}
