/*
 * hl_render.h - the JSON of one dataset record, as the lookup service
 * answers a hit, up to its labels.
 *
 * Two forms: the CIRCL hashlookup one (the body of GET /lookup/...) and
 * the native one (/v1/check items, the audit log).  The caller appends the
 * labels' JSON and the rest.  Rendered here, in C, because it runs once per
 * hit of the service's hottest path; the Python renderers of the same forms
 * (hashlookup.server._check.circl_json, native_json) are the reference the
 * tests compare against.
 */
#ifndef HL_RENDER_H
#define HL_RENDER_H

#include "hl_common.h"

/* Room for either head: 3 digests of HL_MAX_WIDTH bytes (2 * 64 hex + 14
 * each) and the rest (< 140). */
#define HL_HEAD_MAX 1024

typedef struct hl_record_view {
    const uint8_t *digest[3];  /* md5, sha1, sha256 bytes; NULL if absent */
    size_t width[3];           /* their widths (<= HL_MAX_WIDTH) */
    uint64_t size;             /* file size; UINT64_MAX: unknown */
    uint32_t id;               /* record id */
} hl_record_view;

/* {"MD5":"<HEX>","SHA-1":"<HEX>","SHA-256":"<HEX>","FileSize":"<n>",
 * "hashlookup:labels":  (uppercase hex; digests and size the record lacks
 * are left out).  Writes at most HL_HEAD_MAX bytes to out, no NUL; returns
 * the length. */
size_t hl_render_circl_head(const hl_record_view *r, char *out);

/* {"status":"hit","algorithm":"<alg>","record":<id>,"md5":"<hex>"|null,
 * "sha1":...,"sha256":...,"size":<n>|null,"labels":  for a hit found by
 * `algorithm` (0 md5, 1 sha1, 2 sha256).  As above. */
size_t hl_render_native_head(const hl_record_view *r, int algorithm, char *out);

#endif
