/*
 * hl_filehash.c - see hl_filehash.h.
 */
#define _GNU_SOURCE
#include "hl_filehash.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
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

/* Read and hash one open file; returns its status. */
static int hash_fd(int fd, hl_filejob *job, HL_EVP_MD_CTX *const ctx[3],
                   unsigned algorithms, uint8_t *buf, size_t bufsize,
                   const volatile int *stop, const hl_table *const probe[3],
                   unsigned rest) {
    struct stat before, after;
    if (fstat(fd, &before) != 0)
        return errno;
    if (!S_ISREG(before.st_mode))
        return HL_FH_NOT_REGULAR;
    if (job->check_inode && ((uint64_t)before.st_dev != job->expect_dev ||
                             (uint64_t)before.st_ino != job->expect_ino))
        return HL_FH_REPLACED;
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
        ssize_t got = read(fd, buf, want);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            return errno;
        }
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
    if (fstat(fd, &after) != 0)
        return errno;
    if (after.st_size != before.st_size || !same_time(&before, &after))
        return HL_FH_CHANGED;
    uint8_t *out[3] = {job->md5, job->sha1, job->sha256};
    for (size_t a = 0; a < 3; a++) {
        unsigned int len = 0;
        if ((algorithms >> a & 1u) && crypto.final(ctx[a], out[a], &len) != 1)
            return HL_FH_CRYPTO;
    }
    job->size = total;
    job->candidate = 0;
    for (size_t a = 0; a < 3; a++)
        if (probe != NULL && probe[a] != NULL && (algorithms >> a & 1u) &&
            hl_table_find(probe[a], out[a]) >= 0)
            job->candidate = 1;
    if (job->candidate && (rest == 0 || reads <= 1)) {
        /* The whole file is still in buf (one read, or empty). */
        for (size_t a = 0; a < 3; a++) {
            unsigned int len = 0;
            if (!(rest >> a & 1u))
                continue;
            if (crypto.init(ctx[a], crypto.md[a], NULL) != 1 ||
                crypto.update(ctx[a], buf, (size_t)total) != 1 ||
                crypto.final(ctx[a], out[a], &len) != 1)
                return HL_FH_CRYPTO;
        }
        job->candidate = 2;
    }
    return HL_FH_OK;
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
