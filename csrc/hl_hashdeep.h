/*
 * hl_hashdeep.h - the data lines of hashdeep / md5deep CSV output, parsed
 * straight into record columns.
 *
 * A data line is split on ',' into the layout's columns; the column that
 * holds the file name (if any) takes up extra commas, the columns after it
 * being found from the end of the line.  Digest columns hold exactly
 * 2*width hex characters (either case) or nothing; the size column 1 to 18
 * ASCII digits or nothing (-1); other columns are not looked at.  A '\r'
 * before a line's end is dropped.  Empty lines and lines that start with
 * '#' are no records.
 *
 * The parser only takes lines whose meaning is certain.  It stops before
 * the first line that is anything else (a header line starting with '%',
 * a line starting with a blank, a wrong field count, a bad digest or size,
 * no digest at all, a line longer than max_line) and says so: the caller
 * reads that one line with its exact per-line code, which also names the
 * error, and goes on after it.  So the parser never reports an error and
 * its records equal the per-line reader's.
 */
#ifndef HL_HASHDEEP_H
#define HL_HASHDEEP_H

#include "hl_common.h"

#define HL_HD_MAX_COLS 64

typedef struct hl_hd_layout {
    int32_t ncols;     /* columns per line, 1..HL_HD_MAX_COLS */
    int32_t fname;     /* the column that may hold commas, or -1 */
    int32_t alg[3];    /* column of md5, sha1, sha256, or -1 */
    int32_t size;      /* column of the size, or -1 */
} hl_hd_layout;

typedef struct hl_hd_out {
    uint8_t *dig[3];   /* cap rows of 16, 20, 32 bytes (zeros when absent) */
    uint8_t *has[3];   /* cap flags, 0 or 1 */
    int64_t *size;     /* cap sizes, -1 = unknown */
    uint64_t cap;      /* rows of room */
} hl_hd_out;

enum {
    HL_HD_END = 0,       /* every line of the buffer consumed */
    HL_HD_FULL = 1,      /* cap records written; more lines follow */
    HL_HD_IRREGULAR = 2  /* the line at `end` needs the exact reader */
};

typedef struct hl_hd_result {
    uint64_t records;  /* rows written */
    uint64_t lines;    /* lines consumed (records, blank and comment lines) */
    uint64_t end;      /* byte offset of the first line not consumed */
    int32_t stop;      /* HL_HD_END, HL_HD_FULL or HL_HD_IRREGULAR */
} hl_hd_result;

/* Check a layout: HL_OK or HL_EINVAL (column indices out of range,
 * repeated, or no digest column). */
hl_status hl_hashdeep_layout_check(const hl_hd_layout *lay);

/* Parse buf[0:len) from its start (a line start; the last line may lack
 * its '\n') into out, at most out->cap records.  The layout must pass
 * hl_hashdeep_layout_check. */
void hl_hashdeep_parse(const uint8_t *buf, size_t len, size_t max_line,
                       const hl_hd_layout *lay, const hl_hd_out *out,
                       hl_hd_result *res);

#endif /* HL_HASHDEEP_H */
