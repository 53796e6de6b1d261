/*
 * test_render.c - the lookup service's record JSON (csrc/server/hl_render.c)
 * tested directly, without Python, against JSON written with snprintf.
 *
 * Built and run by `make ctest` under -fsanitize=address,undefined and
 * under valgrind memcheck, beside test_core.c.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hl_render.h"

#include "check.h"

/* The record heads against hand-written JSON: every digest present or
 * absent, size known or not, each algorithm. */
static void test_heads(void) {
    uint8_t md5[16], sha1[20], sha256[32];
    for (int i = 0; i < 32; i++) {
        if (i < 16) md5[i] = (uint8_t)(0xA0 + i);
        if (i < 20) sha1[i] = (uint8_t)(i * 13);
        sha256[i] = (uint8_t)(255 - i);
    }
    char hex[3][2 * 32 + 1], HEX[3][2 * 32 + 1];
    const uint8_t *d[3] = {md5, sha1, sha256};
    size_t w[3] = {16, 20, 32};
    for (int a = 0; a < 3; a++)
        for (size_t i = 0; i < w[a]; i++) {
            snprintf(hex[a] + 2 * i, 3, "%02x", d[a][i]);
            snprintf(HEX[a] + 2 * i, 3, "%02X", d[a][i]);
        }
    const char *circl_key[3] = {"MD5", "SHA-1", "SHA-256"};
    const char *native_key[3] = {"md5", "sha1", "sha256"};
    for (unsigned present = 0; present < 8; present++) {
        for (int sized = 0; sized < 2; sized++) {
            hl_record_view r;
            for (int a = 0; a < 3; a++) {
                r.digest[a] = (present >> a & 1) ? d[a] : NULL;
                r.width[a] = w[a];
            }
            r.size = sized ? 18446744073709551614ULL : UINT64_MAX;
            r.id = 4294967295u;
            char want[HL_HEAD_MAX], got[HL_HEAD_MAX + 1];
            size_t at = (size_t)snprintf(want, sizeof want, "{");
            int first = 1;
            for (int a = 0; a < 3; a++) {
                if (!(present >> a & 1)) continue;
                at += (size_t)snprintf(want + at, sizeof want - at, "%s\"%s\":\"%s\"",
                                       first ? "" : ",", circl_key[a], HEX[a]);
                first = 0;
            }
            if (sized)
                at += (size_t)snprintf(want + at, sizeof want - at,
                                       "%s\"FileSize\":\"18446744073709551614\"",
                                       first ? "" : ",");
            at += (size_t)snprintf(want + at, sizeof want - at, ",\"hashlookup:labels\":");
            size_t n = hl_render_circl_head(&r, got);
            CHECK(n == at && memcmp(got, want, n) == 0, "circl head %u %d: %.*s", present,
                  sized, (int)n, got);
            for (int alg = 0; alg < 3; alg++) {
                at = (size_t)snprintf(want, sizeof want,
                                      "{\"status\":\"hit\",\"algorithm\":\"%s\","
                                      "\"record\":4294967295",
                                      native_key[alg]);
                for (int a = 0; a < 3; a++)
                    at += (size_t)snprintf(want + at, sizeof want - at,
                                           (present >> a & 1) ? ",\"%s\":\"%s\"" : ",\"%s\":null",
                                           native_key[a], hex[a]);
                at += (size_t)snprintf(want + at, sizeof want - at, ",\"size\":%s,\"labels\":",
                                       sized ? "18446744073709551614" : "null");
                n = hl_render_native_head(&r, alg, got);
                CHECK(n == at && memcmp(got, want, n) == 0, "native head %u %d %d: %.*s",
                      present, sized, alg, (int)n, got);
            }
        }
    }
    /* the longest head fits: three digests of HL_MAX_WIDTH bytes */
    static uint8_t big[HL_MAX_WIDTH];
    hl_record_view r = {{big, big, big}, {HL_MAX_WIDTH, HL_MAX_WIDTH, HL_MAX_WIDTH},
                        UINT64_MAX - 1, 4294967295u};
    char *out = malloc(HL_HEAD_MAX);
    CHECK(hl_render_circl_head(&r, out) <= HL_HEAD_MAX, "circl head too long");
    CHECK(hl_render_native_head(&r, 2, out) <= HL_HEAD_MAX, "native head too long");
    free(out);
}

int main(void) {
    test_heads();
    printf("test_render: %lu checks, %lu failed\n", checks, failures);
    return failures ? 1 : 0;
}
