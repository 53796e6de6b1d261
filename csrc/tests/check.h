/*
 * check.h - the CHECK macro of the C tests: counts checks and failures,
 * reports the first 20 failures with file, line and a printf message, and
 * goes on (one run shows every kind of failure).  main() returns
 * `failures != 0`.  Each test program includes it once.
 */
#ifndef CHECK_H
#define CHECK_H

#include <stdio.h>

static unsigned long failures, checks;

#define CHECK(cond, ...)                                              \
    do {                                                              \
        checks++;                                                     \
        if (!(cond)) {                                                \
            if (failures++ < 20) {                                    \
                fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, \
                        __LINE__, #cond);                             \
                fprintf(stderr, __VA_ARGS__);                         \
                fputc('\n', stderr);                                  \
            }                                                         \
        }                                                             \
    } while (0)

#endif
