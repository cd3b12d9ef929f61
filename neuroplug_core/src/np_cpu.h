/* What the CPU running the program supports: the one place neuroplug_core asks.

   Every module is compiled for the baseline ISA; its AVX2 / AVX-512 kernels carry
   target attributes and are called only when np_cpu_level says the CPU has them. */
#ifndef NEUROPLUG_NP_CPU_H
#define NEUROPLUG_NP_CPU_H

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__)) && !defined(NEUROPLUG_NO_SIMD)
#define NP_CPU_SIMD 1
#include <immintrin.h>
#else
#define NP_CPU_SIMD 0
#endif

/* The widest vector ISA of this CPU: 2 AVX-512F, 1 AVX2 (AVX2 and FMA when
   need_fma is nonzero), 0 neither or not x86 (or built with NEUROPLUG_NO_SIMD). */
static int np_cpu_level(int need_fma) {
#if NP_CPU_SIMD
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return 2;
    if (__builtin_cpu_supports("avx2") && (!need_fma || __builtin_cpu_supports("fma"))) return 1;
#endif
    (void)need_fma;
    return 0;
}

#endif /* NEUROPLUG_NP_CPU_H */
