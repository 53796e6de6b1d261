/*
 * hl_cpu.c - CPU feature probe (see hl_cpu.h).
 */
#include "hl_cpu.h"

#include <stdlib.h>

int hl_cpu_has_avx2(void) {
#if HL_HAVE_AVX2
    const char *off = getenv("HASHLOOKUP_DISABLE_SIMD");
    if (off && off[0] && off[0] != '0') return 0;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") ? 1 : 0;
#else
    return 0;
#endif
}

const char *hl_cpu_kernel_name(void) {
    return hl_cpu_has_avx2() ? "avx2" : "portable";
}
