/* Max-pooling kernels of neuroplug_core.pool. */
#ifndef NEUROPLUG_NP_POOL_H
#define NEUROPLUG_NP_POOL_H

/* Max pooling of one plane, branch-free.  A NaN counts as the maximum and the
   first NaN of a window is kept (numpy.argmax); otherwise ties keep the first
   maximum in row-major order of the window. */
#include <stdint.h>
#include <string.h>

#include "np_cpu.h"

#define NP_SIMD NP_CPU_SIMD

/* 2 with AVX-512, 1 with AVX2 (no FMA needed), 0 otherwise. */
static int np_pool_isa(void) { return np_cpu_level(0); }

/* Portable version: selects through integer masks, so no branch depends on the data. */
#define NP_MAXPOOL_SCALAR(NAME, T, U)                                                        \
static void NAME(const T* x, long H, long W, long KH, long KW, long SH, long SW,           \
                 T* y, int64_t* am, long OH, long OW)                                       \
{                                                                                           \
    long oh, ow, i, j;                                                                      \
    (void)H;                                                                                \
    for (oh = 0; oh < OH; ++oh)                                                             \
        for (ow = 0; ow < OW; ++ow) {                                                       \
            long base = oh * SH * W + ow * SW;                                              \
            T best = x[base];                                                               \
            int64_t bidx = base;                                                            \
            for (i = 0; i < KH; ++i)                                                        \
                for (j = 0; j < KW; ++j) {                                                  \
                    long idx = base + i * W + j;                                            \
                    T v = x[idx];                                                           \
                    U bv, bb, m;                                                            \
                    int take = (v > best) | ((v != v) & (best == best));                    \
                    m = (U)0 - (U)take;                                                     \
                    memcpy(&bv, &v, sizeof(T));                                             \
                    memcpy(&bb, &best, sizeof(T));                                          \
                    bb = (bv & m) | (bb & ~m);                                              \
                    memcpy(&best, &bb, sizeof(T));                                          \
                    bidx = (int64_t)(((uint64_t)idx & (uint64_t)(int64_t)(-take))           \
                                     | ((uint64_t)bidx & ~(uint64_t)(int64_t)(-take)));     \
                }                                                                           \
            y[oh * OW + ow] = best;                                                         \
            am[oh * OW + ow] = bidx;                                                        \
        }                                                                                   \
}
NP_MAXPOOL_SCALAR(np_maxpool_plane_f, float, uint32_t)
NP_MAXPOOL_SCALAR(np_maxpool_plane_d, double, uint64_t)

#if NP_SIMD
/* AVX-512, float32: 16 neighbouring outputs of one output row at a time. */
__attribute__((target("avx512f")))
static void np_maxpool_plane_fz(const float* x, long H, long W, long KH, long KW, long SH, long SW,
                                float* y, int64_t* am, long OH, long OW)
{
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i step = _mm512_mullo_epi32(lane, _mm512_set1_epi32((int)SW));
    long oh, ow0, i, j;
    (void)H;
    for (oh = 0; oh < OH; ++oh) {
        for (ow0 = 0; ow0 < OW; ow0 += 16) {
            long lanes = OW - ow0 < 16 ? OW - ow0 : 16;
            __mmask16 m = lanes == 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << lanes) - 1u);
            long base = oh * SH * W + ow0 * SW;
            __m512 best = _mm512_setzero_ps();
            __m512i bidx = _mm512_setzero_si512();
            for (i = 0; i < KH; ++i) {
                for (j = 0; j < KW; ++j) {
                    long off = base + i * W + j;
                    const float* p = x + off;
                    __m512 v;
                    __m512i idx = _mm512_add_epi32(_mm512_set1_epi32((int)off), step);
                    if (SW == 1) {
                        v = _mm512_maskz_loadu_ps(m, p);
                    } else if (SW == 2) {
                        /* elements 0 .. 2*lanes-2 of p, split over two loads, even lanes kept */
                        long need = 2 * lanes - 1;
                        __mmask16 m0 = need >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << need) - 1u);
                        __mmask16 m1 = need > 16 ? (__mmask16)((1u << (need - 16)) - 1u) : (__mmask16)0;
                        __m512 a = _mm512_maskz_loadu_ps(m0, p);
                        __m512 b = _mm512_maskz_loadu_ps(m1, p + 16);
                        v = _mm512_permutex2var_ps(a, even, b);
                    } else {
                        v = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, step, p, 4);
                    }
                    if (i == 0 && j == 0) {
                        best = v;
                        bidx = idx;
                    } else {
                        __mmask16 t = _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ)
                            | (_mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q) & _mm512_cmp_ps_mask(best, best, _CMP_ORD_Q));
                        best = _mm512_mask_blend_ps(t, best, v);
                        bidx = _mm512_mask_blend_epi32(t, bidx, idx);
                    }
                }
            }
            _mm512_mask_storeu_ps(y + oh * OW + ow0, m, best);
            _mm512_mask_storeu_epi64(am + oh * OW + ow0, (__mmask8)(m & 0xFF),
                                     _mm512_cvtepi32_epi64(_mm512_castsi512_si256(bidx)));
            if (lanes > 8)
                _mm512_mask_storeu_epi64(am + oh * OW + ow0 + 8, (__mmask8)(m >> 8),
                                         _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64(bidx, 1)));
        }
    }
}
/* AVX2, float32: 8 neighbouring outputs of one output row at a time. */
__attribute__((target("avx2,fma")))
static void np_maxpool_plane_fy(const float* x, long H, long W, long KH, long KW, long SH, long SW,
                                float* y, int64_t* am, long OH, long OW)
{
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i step = _mm256_mullo_epi32(lane, _mm256_set1_epi32((int)SW));
    const __m256i even = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
    long oh, ow0, i, j;
    (void)H;
    for (oh = 0; oh < OH; ++oh) {
        for (ow0 = 0; ow0 < OW; ow0 += 8) {
            long lanes = OW - ow0 < 8 ? OW - ow0 : 8;
            __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)lanes), lane);
            long base = oh * SH * W + ow0 * SW;
            __m256 best = _mm256_setzero_ps();
            __m256i bidx = _mm256_setzero_si256();
            for (i = 0; i < KH; ++i) {
                for (j = 0; j < KW; ++j) {
                    long off = base + i * W + j;
                    const float* p = x + off;
                    __m256 v;
                    __m256i idx = _mm256_add_epi32(_mm256_set1_epi32((int)off), step);
                    if (SW == 1) {
                        v = _mm256_maskload_ps(p, m);
                    } else if (SW == 2) {
                        /* elements 0 .. 2*lanes-2 of p over two loads; keep the even ones */
                        __m256i need = _mm256_set1_epi32((int)(2 * lanes - 1));
                        __m256i m0 = _mm256_cmpgt_epi32(need, lane);
                        __m256i m1 = _mm256_cmpgt_epi32(need, _mm256_add_epi32(lane, _mm256_set1_epi32(8)));
                        __m256 a = _mm256_maskload_ps(p, m0), b = _mm256_maskload_ps(p + 8, m1);
                        __m256 ev = _mm256_shuffle_ps(a, b, 0x88);   /* a0 a2 b0 b2 | a4 a6 b4 b6 */
                        v = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(ev), 0xD8));
                        (void)even;
                    } else {
                        v = _mm256_mask_i32gather_ps(_mm256_setzero_ps(), p, step, _mm256_castsi256_ps(m), 4);
                    }
                    if (i == 0 && j == 0) {
                        best = v;
                        bidx = idx;
                    } else {
                        __m256 t = _mm256_or_ps(_mm256_cmp_ps(v, best, _CMP_GT_OQ),
                                                _mm256_and_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q),
                                                              _mm256_cmp_ps(best, best, _CMP_ORD_Q)));
                        best = _mm256_blendv_ps(best, v, t);
                        bidx = _mm256_blendv_epi8(bidx, idx, _mm256_castps_si256(t));
                    }
                }
            }
            if (lanes == 8) {
                /* Whole vectors: plain stores (masked stores are microcoded on AMD Zen). */
                _mm256_storeu_ps(y + oh * OW + ow0, best);
                _mm256_storeu_si256((__m256i*)(am + oh * OW + ow0),
                                    _mm256_cvtepi32_epi64(_mm256_castsi256_si128(bidx)));
                _mm256_storeu_si256((__m256i*)(am + oh * OW + ow0 + 4),
                                    _mm256_cvtepi32_epi64(_mm256_extracti128_si256(bidx, 1)));
            } else {
                /* A partial vector: through a buffer, for the same reason. */
                float yb[8];
                int64_t ab[8];
                _mm256_storeu_ps(yb, best);
                _mm256_storeu_si256((__m256i*)ab, _mm256_cvtepi32_epi64(_mm256_castsi256_si128(bidx)));
                _mm256_storeu_si256((__m256i*)(ab + 4), _mm256_cvtepi32_epi64(_mm256_extracti128_si256(bidx, 1)));
                memcpy(y + oh * OW + ow0, yb, (size_t)lanes * sizeof(float));
                memcpy(am + oh * OW + ow0, ab, (size_t)lanes * sizeof(int64_t));
            }
        }
    }
}
#else
static void np_maxpool_plane_fy(const float* x, long H, long W, long KH, long KW, long SH, long SW,
                                float* y, int64_t* am, long OH, long OW) {}
static void np_maxpool_plane_fz(const float* x, long H, long W, long KH, long KW, long SH, long SW,
                                float* y, int64_t* am, long OH, long OW) {}
#endif

#endif /* NEUROPLUG_NP_POOL_H */
