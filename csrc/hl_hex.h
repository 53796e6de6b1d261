/*
 * hl_hex.h - hex decoding of single digests and of whole text buffers.
 *
 * The line parser reads the text forms people already have: one hex digest
 * per line, or md5sum/sha1sum/sha256sum output ("<hex>  name",
 * "<hex> *name", and "\<hex>  name" for escaped names).  Per line: leading
 * and trailing blanks (space, tab, CR, VT, FF) are ignored, blank lines and
 * lines whose first non-blank byte is '#' are skipped, the digest is the
 * first blank-delimited token, and anything after the next blank is a name.
 * Upper and lower case are accepted.  Lines end at '\n'.
 *
 * A line longer than max_line bytes (without its '\n'; 0 = no limit) is a
 * bad line whatever it holds, so that a reader that splits its input into
 * chunks can apply the same rule to lines that cross chunk boundaries.
 *
 * Errors carry the line index within the buffer and the token's byte
 * offset and length, so the caller can quote file, line and text.
 */
#ifndef HL_HEX_H
#define HL_HEX_H

#include "hl_common.h"

/* Decode 2*width hex characters into width bytes.  HL_EHEX on a non-hex
 * character (*bad_pos set to its index). */
hl_status hl_hex_decode(const uint8_t *hex, size_t width, uint8_t *out,
                        size_t *bad_pos);

/* Encode width bytes as 2*width hex characters (lowercase, upper != 0:
 * uppercase) into out; no terminating NUL. */
void hl_hex_encode(const uint8_t *in, size_t width, uint8_t *out, int upper);

/* Flags for hl_parse_lines. */
#define HL_PARSE_SKIP_INVALID 1u  /* count bad lines instead of stopping */

typedef struct hl_parse_result {
    uint64_t n_keys;       /* keys written to out */
    uint64_t n_lines;      /* lines seen (including blank and comment lines) */
    uint64_t n_invalid;    /* bad lines skipped (with HL_PARSE_SKIP_INVALID) */
    uint64_t err_line;     /* 0-based line index of the first bad line */
    uint64_t err_offset;   /* byte offset of its token in buf */
    uint64_t err_length;   /* length of its token */
    hl_status err_status;  /* why it is bad: HL_EHEX or HL_ELENGTH */
    uint64_t end;          /* byte offset where parsing stopped: len, or with
                            * HL_ENOSPACE the start of the first line not
                            * parsed (parse buf + end to go on) */
} hl_parse_result;

/* Parse every line of buf[0:len) (the last line may lack its '\n').  Keys
 * of `width` bytes go to out (room for `cap` keys); when line_index is not
 * NULL the 0-based line index of each key goes there, and when line_offset
 * is not NULL the byte offset of the key's line start.  Returns HL_OK,
 * the first bad line's status (without HL_PARSE_SKIP_INVALID), or
 * HL_ENOSPACE if more than cap keys are present. */
hl_status hl_parse_lines(const uint8_t *buf, size_t len, size_t width,
                         size_t max_line, uint8_t *out, uint64_t cap,
                         int64_t *line_index, int64_t *line_offset, unsigned flags,
                         hl_parse_result *res);

#endif /* HL_HEX_H */
