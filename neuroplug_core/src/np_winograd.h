/* Winograd F(2x2, 3x3) and F(2x2, 5x5) transforms and micro-kernels of neuroplug_core.winograd. */
#ifndef NEUROPLUG_NP_WINOGRAD_H
#define NEUROPLUG_NP_WINOGRAD_H

#include <stdint.h>
#include <string.h>

#include "np_cpu.h"

#define WG_SIMD NP_CPU_SIMD

#define WG_MR 6    /* filters per micro-kernel tile */
#define WG_NR 16   /* tiles per micro-kernel tile (two AVX2 vectors) */

/* Transforms, row-major: B^T (A x A), A^T (2 x A) and A = (A^T)^T (A x 2). */
static const float WG_BT4[16] = {1, 0, -1, 0,   0, 1, 1, 0,   0, -1, 1, 0,   0, -1, 0, 1};
static const float WG_AT4[8] = {1, 1, 1, 0,   0, 1, -1, 1};
static const float WG_A4[8] = {1, 0,   1, 1,   1, -1,   0, 1};
static const float WG_BT6[36] = {4, 0, -5, 0, 1, 0,    0, -4, -4, 1, 1, 0,   0, 4, -4, -1, 1, 0,
                                 0, -2, -1, 2, 1, 0,   0, 2, -1, -2, 1, 0,   0, 4, 0, -5, 0, 1};
static const float WG_AT6[12] = {1, 1, 1, 1, 1, 0,   0, 1, -1, 2, -2, 1};
static const float WG_A6[12] = {1, 0,   1, 1,   1, -1,   1, 2,   1, -2,   0, 1};

static int wg_cpu_ok(void) { return np_cpu_level(1) >= 1; }

static float* wg_align64(float* p) {
    return (float*)(((uintptr_t)p + 63) & ~(uintptr_t)63);
}

#if WG_SIMD
#define WG_INLINE static inline __attribute__((always_inline, target("avx2,fma")))

/* Elements 0, 2, ..., 14 (even) or 1, 3, ..., 15 (odd) of the 16 floats a:b, in order. */
WG_INLINE __m256 wg_even(__m256 a, __m256 b) {
    __m256 s = _mm256_shuffle_ps(a, b, 0x88);
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(s), 0xD8));
}

WG_INLINE __m256 wg_odd(__m256 a, __m256 b) {
    __m256 s = _mm256_shuffle_ps(a, b, 0xDD);
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(s), 0xD8));
}

/* sum_i c[i * cs] v[i * vs].  Inlined with a constant table and n, the loop unrolls and
   the tests on the coefficients fold away: zero terms vanish, +-1 become adds. */
WG_INLINE __m256 wg_lin(const float* c, int cs, const __m256* v, int vs, int n) {
    __m256 acc = _mm256_setzero_ps();
    int started = 0, i;
    #pragma GCC unroll 8
    for (i = 0; i < n; ++i) {
        const float ci = c[i * cs];
        const __m256 vi = v[i * vs];
        if (ci == 0.0f)
            continue;
        if (!started) {
            acc = ci == 1.0f ? vi : _mm256_mul_ps(_mm256_set1_ps(ci), vi);
            started = 1;
        } else if (ci == 1.0f) {
            acc = _mm256_add_ps(acc, vi);
        } else if (ci == -1.0f) {
            acc = _mm256_sub_ps(acc, vi);
        } else {
            acc = _mm256_fmadd_ps(_mm256_set1_ps(ci), vi, acc);
        }
    }
    return acc;
}

/* V = B^T d B for 8 tiles.  Row i of the tiles starts at r + i * Wp; lanes 0-7 read the
   16 floats at r and r + bstep (8 neighbouring tiles: bstep = 8; the 4 tiles of two tile
   rows: bstep = 2 Wp).  v[xi * xs] receives tile element xi. */
WG_INLINE void wg_in8(const float* r, long Wp, long bstep, float* v, long xs,
                      const int A, const float* BT) {
    __m256 e[6][6], d[6];
    int i, k, q;
    #pragma GCC unroll 6
    for (i = 0; i < A; ++i) {
        const float* ri = r + i * Wp;
        #pragma GCC unroll 3
        for (q = 0; q < A; q += 2) {
            __m256 a = _mm256_loadu_ps(ri + q), b = _mm256_loadu_ps(ri + q + bstep);
            d[q] = wg_even(a, b);
            d[q + 1] = wg_odd(a, b);
        }
        #pragma GCC unroll 6
        for (k = 0; k < A; ++k)
            e[i][k] = wg_lin(BT + k * A, 1, d, 1, A);
    }
    #pragma GCC unroll 6
    for (i = 0; i < A; ++i) {
        #pragma GCC unroll 6
        for (k = 0; k < A; ++k)
            _mm256_store_ps(v + (i * A + k) * xs, wg_lin(BT + i * A, 1, &e[0][k], 6, A));
    }
}

/* The input transform of the tiles of a zero-padded block xp (C planes of `rows` rows of
   Wp floats; tile (ty, tx) starts at row 2 ty, column 2 tx), tiles numbered
   t = ty * TWp + tx, nvec vectors of 8.  panel: V laid out [xi][t / 16][c][t % 16] (the
   B panels of the micro-kernel; ntp panels); otherwise [xi][c][t0 + t] with rows of tl. */
WG_INLINE void wg_input_transform_a(const float* xp, long C, long rows, long Wp, long TWp, long nvec,
                                    float* V, int panel, long ntp, long tl, long t0,
                                    const int A, const float* BT) {
    const long bstep = TWp == 4 ? 2 * Wp : 8;
    const long xs = panel ? ntp * C * WG_NR : C * tl;
    long c, j;
    for (c = 0; c < C; ++c) {
        for (j = 0; j < nvec; ++j) {
            long t = 8 * j, ty = t / TWp, tx = t % TWp;
            float* v = panel ? V + ((t >> 4) * C + c) * WG_NR + (t & 15) : V + c * tl + t0 + t;
            wg_in8(xp + (c * rows + 2 * ty) * Wp + 2 * tx, Wp, bstep, v, xs, A, BT);
        }
    }
}

__attribute__((target("avx2,fma")))
static void wg_input_transform(const float* xp, long C, long rows, long Wp, long TWp, long nvec,
                               float* V, int panel, long ntp, long tl, long t0, int R) {
    if (R == 3)
        wg_input_transform_a(xp, C, rows, Wp, TWp, nvec, V, panel, ntp, tl, t0, 4, WG_BT4);
    else
        wg_input_transform_a(xp, C, rows, Wp, TWp, nvec, V, panel, ntp, tl, t0, 6, WG_BT6);
}

/* buf[r][0..16) = sum_c A[c][r] * B[c][0..16) for one 6 x 16 tile (A: U panel, B: V panel). */
__attribute__((target("avx2,fma")))
static void wg_ukr(long C, const float* A, const float* B, float* buf)
{
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
    __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
    __m256 a, b0, b1;
    long k;
    for (k = 0; k < C; ++k) {
        b0 = _mm256_load_ps(B);
        b1 = _mm256_load_ps(B + 8);
        a = _mm256_broadcast_ss(A + 0); c00 = _mm256_fmadd_ps(a, b0, c00); c01 = _mm256_fmadd_ps(a, b1, c01);
        a = _mm256_broadcast_ss(A + 1); c10 = _mm256_fmadd_ps(a, b0, c10); c11 = _mm256_fmadd_ps(a, b1, c11);
        a = _mm256_broadcast_ss(A + 2); c20 = _mm256_fmadd_ps(a, b0, c20); c21 = _mm256_fmadd_ps(a, b1, c21);
        a = _mm256_broadcast_ss(A + 3); c30 = _mm256_fmadd_ps(a, b0, c30); c31 = _mm256_fmadd_ps(a, b1, c31);
        a = _mm256_broadcast_ss(A + 4); c40 = _mm256_fmadd_ps(a, b0, c40); c41 = _mm256_fmadd_ps(a, b1, c41);
        a = _mm256_broadcast_ss(A + 5); c50 = _mm256_fmadd_ps(a, b0, c50); c51 = _mm256_fmadd_ps(a, b1, c51);
        A += WG_MR;
        B += WG_NR;
    }
    _mm256_store_ps(buf + 0, c00);  _mm256_store_ps(buf + 8, c01);
    _mm256_store_ps(buf + 16, c10); _mm256_store_ps(buf + 24, c11);
    _mm256_store_ps(buf + 32, c20); _mm256_store_ps(buf + 40, c21);
    _mm256_store_ps(buf + 48, c30); _mm256_store_ps(buf + 56, c31);
    _mm256_store_ps(buf + 64, c40); _mm256_store_ps(buf + 72, c41);
    _mm256_store_ps(buf + 80, c50); _mm256_store_ps(buf + 88, c51);
}

/* Store the first n (<= 8 or 16) of the floats lo:hi at y. */
WG_INLINE void wg_store(float* y, __m256 lo, __m256 hi, long n) {
    if (n >= 16) {
        _mm256_storeu_ps(y, lo);
        _mm256_storeu_ps(y + 8, hi);
    } else if (n == 8) {
        _mm256_storeu_ps(y, lo);
    } else {
        float t[16] __attribute__((aligned(32)));
        _mm256_store_ps(t, lo);
        _mm256_store_ps(t + 8, hi);
        memcpy(y, t, n * sizeof(float));
    }
}

/* Y = A^T M A (+ bias) for filter rows r < mr of one panel's buffer buf[xi][r][16]: the
   outputs of the 16 tiles t0 ... of a band starting at tile row ty0, written to y (filter
   row r at y + r * OH * OW).  Tiles past ntiles or past the output are skipped. */
WG_INLINE void wg_output_transform_a(const float* buf, int mr, const float* bias, float* y,
                                     long OH, long OW, long ty0, long TWp, long t0, long ntiles,
                                     const int A, const float* AT) {
    int r, h, i;
    for (r = 0; r < mr; ++r) {
        const __m256 bv = _mm256_set1_ps(bias ? bias[r] : 0.0f);
        float* yr = y + r * OH * OW;
        for (h = 0; h < 2; ++h) {
            long t = t0 + 8 * h;
            if (t >= ntiles)
                break;
            long ty = ty0 + t / TWp, tx = t % TWp;
            __m256 m[36], f[6][2], y0[2], y1[2];
            #pragma GCC unroll 36
            for (i = 0; i < A * A; ++i)
                m[i] = _mm256_load_ps(buf + (i * WG_MR + r) * WG_NR + 8 * h);
            #pragma GCC unroll 6
            for (i = 0; i < A; ++i) {
                f[i][0] = wg_lin(AT, 1, m + i * A, 1, A);
                f[i][1] = wg_lin(AT + A, 1, m + i * A, 1, A);
            }
            y0[0] = _mm256_add_ps(wg_lin(AT, 1, &f[0][0], 2, A), bv);
            y0[1] = _mm256_add_ps(wg_lin(AT, 1, &f[0][1], 2, A), bv);
            y1[0] = _mm256_add_ps(wg_lin(AT + A, 1, &f[0][0], 2, A), bv);
            y1[1] = _mm256_add_ps(wg_lin(AT + A, 1, &f[0][1], 2, A), bv);
            /* interleave: a tile's two outputs of a row go to columns 2 tx and 2 tx + 1 */
            __m256 l0 = _mm256_unpacklo_ps(y0[0], y0[1]), h0 = _mm256_unpackhi_ps(y0[0], y0[1]);
            __m256 l1 = _mm256_unpacklo_ps(y1[0], y1[1]), h1 = _mm256_unpackhi_ps(y1[0], y1[1]);
            __m256 a0 = _mm256_permute2f128_ps(l0, h0, 0x20), b0 = _mm256_permute2f128_ps(l0, h0, 0x31);
            __m256 a1 = _mm256_permute2f128_ps(l1, h1, 0x20), b1 = _mm256_permute2f128_ps(l1, h1, 0x31);
            if (TWp == 4) {
                /* lanes 0-3: tile row ty, lanes 4-7: tile row ty + 1 */
                long n = OW < 8 ? OW : 8;
                wg_store(yr + 2 * ty * OW, a0, b0, n);
                if (2 * ty + 1 < OH)
                    wg_store(yr + (2 * ty + 1) * OW, a1, b1, n);
                if (t + 4 < ntiles && 2 * ty + 2 < OH) {
                    wg_store(yr + (2 * ty + 2) * OW, b0, b0, n);
                    if (2 * ty + 3 < OH)
                        wg_store(yr + (2 * ty + 3) * OW, b1, b1, n);
                }
            } else {
                long n = OW - 2 * tx;
                if (n <= 0)
                    continue;
                wg_store(yr + 2 * ty * OW + 2 * tx, a0, b0, n);
                if (2 * ty + 1 < OH)
                    wg_store(yr + (2 * ty + 1) * OW + 2 * tx, a1, b1, n);
            }
        }
    }
}

__attribute__((target("avx2,fma")))
static void wg_output_transform(const float* buf, int mr, const float* bias, float* y,
                                long OH, long OW, long ty0, long TWp, long t0, long ntiles, int R) {
    if (R == 3)
        wg_output_transform_a(buf, mr, bias, y, OH, OW, ty0, TWp, t0, ntiles, 4, WG_AT4);
    else
        wg_output_transform_a(buf, mr, bias, y, OH, OW, ty0, TWp, t0, ntiles, 6, WG_AT6);
}

/* Yb = A dy A^T for the tiles of a zero-padded block of dy (F planes of DH x DW floats,
   tile (ty, tx) at row 2 ty, column 2 tx), nvec vectors of 8 tiles, into
   Yb[xi][f][t0 + t] (rows of tl) or, with panel, the micro-kernel's B panels
   Yb[xi][t / 16][f][t % 16] (ntp panels). */
WG_INLINE void wg_dy_transform_a(const float* dyp, long F, long DH, long DW, long TWp, long nvec,
                                 float* Yb, int panel, long ntp, long tl, long t0, const int A, const float* AM) {
    const long bstep = TWp == 4 ? 2 * DW : 8, xs = panel ? ntp * F * WG_NR : F * tl;
    long f, j;
    int a, i, k;
    for (f = 0; f < F; ++f) {
        for (j = 0; j < nvec; ++j) {
            long t = 8 * j, ty = t / TWp, tx = t % TWp;
            const float* r = dyp + (f * DH + 2 * ty) * DW + 2 * tx;
            __m256 d[2][2], h[2][6];
            #pragma GCC unroll 2
            for (a = 0; a < 2; ++a) {
                __m256 lo = _mm256_loadu_ps(r + a * DW), hi = _mm256_loadu_ps(r + a * DW + bstep);
                d[a][0] = wg_even(lo, hi);
                d[a][1] = wg_odd(lo, hi);
                #pragma GCC unroll 6
                for (k = 0; k < A; ++k)
                    h[a][k] = wg_lin(AM + 2 * k, 1, d[a], 1, 2);
            }
            float* y = panel ? Yb + ((t >> 4) * F + f) * WG_NR + (t & 15) : Yb + f * tl + t0 + t;
            #pragma GCC unroll 6
            for (i = 0; i < A; ++i) {
                #pragma GCC unroll 6
                for (k = 0; k < A; ++k)
                    _mm256_store_ps(y + (i * A + k) * xs, wg_lin(AM + 2 * i, 1, &h[0][k], 6, 2));
            }
        }
    }
}

__attribute__((target("avx2,fma")))
static void wg_dy_transform(const float* dyp, long F, long DH, long DW, long TWp, long nvec,
                            float* Yb, int panel, long ntp, long tl, long t0, int R) {
    if (R == 3)
        wg_dy_transform_a(dyp, F, DH, DW, TWp, nvec, Yb, panel, ntp, tl, t0, 4, WG_A4);
    else
        wg_dy_transform_a(dyp, F, DH, DW, TWp, nvec, Yb, panel, ntp, tl, t0, 6, WG_A6);
}

/* Shift the 8 (one vector) or 16 floats a:b right by s (2 or 4) floats into o[0..2), o[0..3). */
WG_INLINE void wg_shift1(__m256 a, const int s, __m256* o) {
    const __m256i idx = s == 2 ? _mm256_setr_epi32(6, 7, 0, 1, 2, 3, 4, 5) : _mm256_setr_epi32(4, 5, 6, 7, 0, 1, 2, 3);
    const __m256 z = _mm256_setzero_ps(), p = _mm256_permutevar8x32_ps(a, idx);
    o[0] = s == 2 ? _mm256_blend_ps(z, p, 0xFC) : _mm256_blend_ps(z, p, 0xF0);
    o[1] = s == 2 ? _mm256_blend_ps(z, p, 0x03) : _mm256_blend_ps(z, p, 0x0F);
}

WG_INLINE void wg_shift2(__m256 a, __m256 b, const int s, __m256* o) {
    const __m256i idx = s == 2 ? _mm256_setr_epi32(6, 7, 0, 1, 2, 3, 4, 5) : _mm256_setr_epi32(4, 5, 6, 7, 0, 1, 2, 3);
    const __m256 z = _mm256_setzero_ps();
    const __m256 pa = _mm256_permutevar8x32_ps(a, idx), pb = _mm256_permutevar8x32_ps(b, idx);
    o[0] = s == 2 ? _mm256_blend_ps(z, pa, 0xFC) : _mm256_blend_ps(z, pa, 0xF0);
    o[1] = s == 2 ? _mm256_blend_ps(pa, pb, 0xFC) : _mm256_blend_ps(pa, pb, 0xF0);
    o[2] = s == 2 ? _mm256_blend_ps(z, pb, 0x03) : _mm256_blend_ps(z, pb, 0x0F);
}

/* The input gradient's output: D = B Vbar B^T for the channel rows r < mr of one panel's
   buffer buf[xi][r][16] (16 tiles t0 ... of a band starting at tile row ty0), added into
   the tile's A x A window of a zero-padded dx buffer (channel r at dxb + r * plane, rows of
   Wb floats, tile (ty, tx) at row 2 ty, column 2 tx).  Windows of neighbouring tiles
   overlap: the A values of a window row are summed in registers (interleaved pairs,
   shifted by 0, 2 and 4 floats), so every load-add-store covers whole vectors on one
   grid and store forwarding never sees a partial overlap. */
WG_INLINE void wg_dx_output_a(const float* buf, int mr, float* dxb, long plane, long Wb,
                              long ty0, long TWp, long t0, long ntiles, const int A, const float* BT) {
    int r, h, i, k;
    for (r = 0; r < mr; ++r) {
        for (h = 0; h < 2; ++h) {
            long t = t0 + 8 * h;
            if (t >= ntiles)
                break;
            long ty = ty0 + t / TWp, tx = t % TWp;
            __m256 m[36], g[6][6], d[6];
            #pragma GCC unroll 36
            for (i = 0; i < A * A; ++i)
                m[i] = _mm256_load_ps(buf + (i * WG_MR + r) * WG_NR + 8 * h);
            #pragma GCC unroll 6
            for (i = 0; i < A; ++i) {
                #pragma GCC unroll 6
                for (k = 0; k < A; ++k)
                    g[i][k] = wg_lin(BT + k, A, m + i * A, 1, A);
            }
            float* base = dxb + r * plane + 2 * ty * Wb + 2 * tx;
            #pragma GCC unroll 6
            for (i = 0; i < A; ++i) {
                #pragma GCC unroll 6
                for (k = 0; k < A; ++k)
                    d[k] = wg_lin(BT + i, A, &g[0][k], 6, A);
                /* pairs (d0, d1), (d2, d3), (d4, d5): columns 2 l + k of the 8 tiles l */
                __m256 lo[3], hi[3];
                #pragma GCC unroll 3
                for (k = 0; k < A / 2; ++k) {
                    __m256 l = _mm256_unpacklo_ps(d[2 * k], d[2 * k + 1]);
                    __m256 u = _mm256_unpackhi_ps(d[2 * k], d[2 * k + 1]);
                    lo[k] = _mm256_permute2f128_ps(l, u, 0x20);
                    hi[k] = _mm256_permute2f128_ps(l, u, 0x31);
                }
                float* row = base + i * Wb;
                if (TWp == 4) {
                    /* lo: tiles 0-3 of tile row ty (8 floats), hi: the same of row ty + 1 */
                    __m256 s0 = lo[0], s1 = _mm256_setzero_ps(), u0 = hi[0], u1 = s1, o[2];
                    #pragma GCC unroll 2
                    for (k = 1; k < A / 2; ++k) {
                        wg_shift1(lo[k], 2 * k, o);
                        s0 = _mm256_add_ps(s0, o[0]); s1 = _mm256_add_ps(s1, o[1]);
                        wg_shift1(hi[k], 2 * k, o);
                        u0 = _mm256_add_ps(u0, o[0]); u1 = _mm256_add_ps(u1, o[1]);
                    }
                    _mm256_storeu_ps(row, _mm256_add_ps(_mm256_loadu_ps(row), s0));
                    _mm256_storeu_ps(row + 8, _mm256_add_ps(_mm256_loadu_ps(row + 8), s1));
                    float* row2 = row + 2 * Wb;
                    _mm256_storeu_ps(row2, _mm256_add_ps(_mm256_loadu_ps(row2), u0));
                    _mm256_storeu_ps(row2 + 8, _mm256_add_ps(_mm256_loadu_ps(row2 + 8), u1));
                } else {
                    __m256 s0 = lo[0], s1 = hi[0], s2 = _mm256_setzero_ps(), o[3];
                    #pragma GCC unroll 2
                    for (k = 1; k < A / 2; ++k) {
                        wg_shift2(lo[k], hi[k], 2 * k, o);
                        s0 = _mm256_add_ps(s0, o[0]); s1 = _mm256_add_ps(s1, o[1]); s2 = _mm256_add_ps(s2, o[2]);
                    }
                    _mm256_storeu_ps(row, _mm256_add_ps(_mm256_loadu_ps(row), s0));
                    _mm256_storeu_ps(row + 8, _mm256_add_ps(_mm256_loadu_ps(row + 8), s1));
                    _mm256_storeu_ps(row + 16, _mm256_add_ps(_mm256_loadu_ps(row + 16), s2));
                }
            }
        }
    }
}

__attribute__((target("avx2,fma")))
static void wg_dx_output(const float* buf, int mr, float* dxb, long plane, long Wb,
                         long ty0, long TWp, long t0, long ntiles, int R) {
    if (R == 3)
        wg_dx_output_a(buf, mr, dxb, plane, Wb, ty0, TWp, t0, ntiles, 4, WG_BT4);
    else
        wg_dx_output_a(buf, mr, dxb, plane, Wb, ty0, TWp, t0, ntiles, 6, WG_BT6);
}

WG_INLINE float wg_hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* m[f * ldm + c] += sum_{t < T} y[f * ys + t] * v[c * vs + t] for f < fn (<= 4), c < cn
   (<= 3); T a multiple of 8.  Rows past fn / cn repeat row 0 and are not stored. */
__attribute__((target("avx2,fma")))
static void wg_dot43(long T, const float* y, long ys, const float* v, long vs, float* m, long ldm,
                     int fn, int cn) {
    const float* y0 = y;
    const float* y1 = fn > 1 ? y + ys : y;
    const float* y2 = fn > 2 ? y + 2 * ys : y;
    const float* y3 = fn > 3 ? y + 3 * ys : y;
    const float* v0 = v;
    const float* v1 = cn > 1 ? v + vs : v;
    const float* v2 = cn > 2 ? v + 2 * vs : v;
    __m256 s00 = _mm256_setzero_ps(), s01 = s00, s02 = s00, s10 = s00, s11 = s00, s12 = s00;
    __m256 s20 = s00, s21 = s00, s22 = s00, s30 = s00, s31 = s00, s32 = s00;
    long t;
    for (t = 0; t < T; t += 8) {
        __m256 a0 = _mm256_load_ps(v0 + t), a1 = _mm256_load_ps(v1 + t), a2 = _mm256_load_ps(v2 + t);
        __m256 b = _mm256_load_ps(y0 + t);
        s00 = _mm256_fmadd_ps(b, a0, s00); s01 = _mm256_fmadd_ps(b, a1, s01); s02 = _mm256_fmadd_ps(b, a2, s02);
        b = _mm256_load_ps(y1 + t);
        s10 = _mm256_fmadd_ps(b, a0, s10); s11 = _mm256_fmadd_ps(b, a1, s11); s12 = _mm256_fmadd_ps(b, a2, s12);
        b = _mm256_load_ps(y2 + t);
        s20 = _mm256_fmadd_ps(b, a0, s20); s21 = _mm256_fmadd_ps(b, a1, s21); s22 = _mm256_fmadd_ps(b, a2, s22);
        b = _mm256_load_ps(y3 + t);
        s30 = _mm256_fmadd_ps(b, a0, s30); s31 = _mm256_fmadd_ps(b, a1, s31); s32 = _mm256_fmadd_ps(b, a2, s32);
    }
    float s[4][3] = {{wg_hsum(s00), wg_hsum(s01), wg_hsum(s02)}, {wg_hsum(s10), wg_hsum(s11), wg_hsum(s12)},
                     {wg_hsum(s20), wg_hsum(s21), wg_hsum(s22)}, {wg_hsum(s30), wg_hsum(s31), wg_hsum(s32)}};
    int f, c;
    for (f = 0; f < fn; ++f)
        for (c = 0; c < cn; ++c)
            m[f * ldm + c] += s[f][c];
}
#else
static void wg_input_transform(const float* xp, long C, long rows, long Wp, long TWp, long nvec,
                               float* V, int panel, long ntp, long tl, long t0, int R) {}
static void wg_ukr(long C, const float* A, const float* B, float* buf) {}
static void wg_output_transform(const float* buf, int mr, const float* bias, float* y,
                                long OH, long OW, long ty0, long TWp, long t0, long ntiles, int R) {}
static void wg_dy_transform(const float* dyp, long F, long DH, long DW, long TWp, long nvec,
                            float* Yb, int panel, long ntp, long tl, long t0, int R) {}
static void wg_dx_output(const float* buf, int mr, float* dxb, long plane, long Wb,
                         long ty0, long TWp, long t0, long ntiles, int R) {}
static void wg_dot43(long T, const float* y, long ys, const float* v, long vs, float* m, long ldm,
                     int fn, int cn) {}
#endif /* WG_SIMD */

#endif /* NEUROPLUG_NP_WINOGRAD_H */
