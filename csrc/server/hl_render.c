/*
 * hl_render.c - record JSON for the lookup service (see hl_render.h).
 */
#include "hl_render.h"

#include <string.h>

#include "hl_hex.h"

/* Copy a string literal: its length is known at compile time, so the copy
 * is a few moves, not a call. */
#define HL_PUT(out, at, lit) \
    (memcpy((out) + (at), (lit), sizeof(lit) - 1), (at) + sizeof(lit) - 1)

static size_t hl_put_decimal(char *out, uint64_t v) {
    char tmp[20];
    size_t k = 0;
    do {
        tmp[k++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < k; i++) out[i] = tmp[k - 1 - i];
    return k;
}

size_t hl_render_circl_head(const hl_record_view *r, char *out) {
    static const char *const names[3] = {"\"MD5\":\"", "\"SHA-1\":\"", "\"SHA-256\":\""};
    static const size_t name_len[3] = {7, 9, 11};
    size_t at = HL_PUT(out, 0, "{");
    for (int a = 0; a < 3; a++) {
        if (!r->digest[a]) continue;
        if (at > 1) at = HL_PUT(out, at, ",");
        memcpy(out + at, names[a], name_len[a]);
        at += name_len[a];
        hl_hex_encode(r->digest[a], r->width[a], (uint8_t *)out + at, 1);
        at += 2 * r->width[a];
        at = HL_PUT(out, at, "\"");
    }
    if (r->size != UINT64_MAX) {
        if (at > 1) at = HL_PUT(out, at, ",");
        at = HL_PUT(out, at, "\"FileSize\":\"");
        at += hl_put_decimal(out + at, r->size);
        at = HL_PUT(out, at, "\"");
    }
    return HL_PUT(out, at, ",\"hashlookup:labels\":");
}

size_t hl_render_native_head(const hl_record_view *r, int algorithm, char *out) {
    static const char *const keys[3] = {",\"md5\":", ",\"sha1\":", ",\"sha256\":"};
    static const size_t key_len[3] = {7, 8, 10};
    size_t at = HL_PUT(out, 0, "{\"status\":\"hit\",\"algorithm\":\"");
    switch (algorithm) {
    case 0: at = HL_PUT(out, at, "md5"); break;
    case 1: at = HL_PUT(out, at, "sha1"); break;
    default: at = HL_PUT(out, at, "sha256"); break;
    }
    at = HL_PUT(out, at, "\",\"record\":");
    at += hl_put_decimal(out + at, r->id);
    for (int a = 0; a < 3; a++) {
        memcpy(out + at, keys[a], key_len[a]);
        at += key_len[a];
        if (!r->digest[a]) {
            at = HL_PUT(out, at, "null");
            continue;
        }
        out[at++] = '"';
        hl_hex_encode(r->digest[a], r->width[a], (uint8_t *)out + at, 0);
        at += 2 * r->width[a];
        out[at++] = '"';
    }
    at = HL_PUT(out, at, ",\"size\":");
    if (r->size != UINT64_MAX)
        at += hl_put_decimal(out + at, r->size);
    else
        at = HL_PUT(out, at, "null");
    return HL_PUT(out, at, ",\"labels\":");
}
