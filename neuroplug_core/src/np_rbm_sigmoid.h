/* Vectorisable float32 sigmoid passes of neuroplug_core.rbm. */
#ifndef NEUROPLUG_NP_RBM_SIGMOID_H
#define NEUROPLUG_NP_RBM_SIGMOID_H

/* Element-wise float32 passes of the RBM kernels, written so that GCC
   vectorises them: a branch-free exp (Cephes' expf polynomial after a
   Cody-Waite range reduction, within 2 ulp of the correctly rounded
   value on the clamped range) instead of calls to libm's scalar expf.
   On x86-64 Linux with GCC they are compiled twice, for AVX2+FMA and
   for the baseline, and the loader picks one (target_clones). */
#include <stdint.h>
#include <string.h>
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define NP_RBM_CLONES __attribute__((target_clones("avx2,fma", "default")))
#else
#define NP_RBM_CLONES
#endif
#if defined(__GNUC__) && !defined(__clang__)
/* Nothing here reads the floating-point exception flags; without this
   GCC will not if-convert the selects below and the loops stay scalar. */
#pragma GCC push_options
#pragma GCC optimize ("no-trapping-math")
#endif

static inline float np_rbm_expf(float x) {
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;  /* round to nearest */
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static inline float np_rbm_sigmoidf(float x) {
    /* exp of -|x| only: never overflows. */
    float negx = -x;
    float e = np_rbm_expf(x < 0.0f ? x : negx);
    float s = 1.0f / (1.0f + e);
    float es = e * s;
    return x >= 0.0f ? s : es;
}

/* rows r < m of a row-major matrix with row stride ld, columns [c0, c1):
   x = sigmoid(beta (x + bias)); then, when u is not NULL,
   h = (u < x) with u and h in the same layout as x. */
NP_RBM_CLONES
static void np_rbm_sigmoid_rows_f(float *x, const float *bias, float beta, const float *u, float *h,
                                  int m, int ld, int c0, int c1) {
    for (int r = 0; r < m; r++) {
        float *xr = x + (int64_t)r * ld;
        for (int c = c0; c < c1; c++)
            xr[c] = np_rbm_sigmoidf(beta * (xr[c] + bias[c]));
        if (u != NULL) {
            const float *ur = u + (int64_t)r * ld;
            float *hr = h + (int64_t)r * ld;
            for (int c = c0; c < c1; c++)
                hr[c] = ur[c] < xr[c] ? 1.0f : 0.0f;
        }
    }
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

#endif /* NEUROPLUG_NP_RBM_SIGMOID_H */
