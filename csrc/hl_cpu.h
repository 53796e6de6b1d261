/*
 * hl_cpu.h - CPU feature probe for the optional SIMD kernels.
 *
 * The portable kernels are always compiled.  On x86-64 with GCC or Clang
 * an AVX2 instantiation is compiled too (function-level target attribute,
 * no -mavx2 for the whole file) and chosen once at run time.  Define
 * HL_DISABLE_SIMD to build without it (CI uses this to test the portable
 * path); set the environment variable HASHLOOKUP_DISABLE_SIMD=1 to skip it
 * at run time.
 */
#ifndef HL_CPU_H
#define HL_CPU_H

#if !defined(HL_DISABLE_SIMD) && defined(__x86_64__) && \
    (defined(__GNUC__) || defined(__clang__))
#define HL_HAVE_AVX2 1
#else
#define HL_HAVE_AVX2 0
#endif

/* 1 if the CPU and OS support AVX2 and it is not disabled, else 0. */
int hl_cpu_has_avx2(void);

/* Name of the kernel set in use ("avx2" or "portable"), for info(). */
const char *hl_cpu_kernel_name(void);

#endif /* HL_CPU_H */
