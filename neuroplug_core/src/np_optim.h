/* Element-wise optimizer steps of neuroplug_core.optim. */
#ifndef NEUROPLUG_NP_OPTIM_H
#define NEUROPLUG_NP_OPTIM_H

#include <math.h>
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize ("no-math-errno")
#endif
/* Compiled for AVX2 and for the baseline, picked by the loader (8 lanes of
   sqrt and division instead of 4); no FMA, so the rounding stays the reference's. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define NP_OPT_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define NP_OPT_CLONES
#endif
/* Elements [i0, i1): m = b1 m + c1 g;  v = b2 v + (c2 g) g;  p -= (step m) / (sqrt(v) + eps).
   One body, instantiated for float and double. */
#define NP_ADAM(NAME, T, SQRT)                                                          \
    NP_OPT_CLONES                                                                       \
    static void NAME(T* p, const T* g, T* m, T* v, long i0, long i1,                    \
                     T b1, T c1, T b2, T c2, T step, T eps) {                           \
        for (long i = i0; i < i1; i++) {                                                \
            T mi = m[i] * b1 + c1 * g[i];                                               \
            T vi = v[i] * b2 + c2 * g[i] * g[i];                                        \
            m[i] = mi;                                                                  \
            v[i] = vi;                                                                  \
            p[i] -= (step * mi) / (SQRT(vi) + eps);                                     \
        }                                                                               \
    }
NP_ADAM(np_adam_f, float, sqrtf)
NP_ADAM(np_adam_d, double, sqrt)
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

#endif /* NEUROPLUG_NP_OPTIM_H */
