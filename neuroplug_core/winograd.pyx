# cython: language_level=3
"""Winograd convolution F(2x2, 3x3) and F(2x2, 5x5): stride 1, float32, AVX2+FMA.

An R x R correlation (R = 3 or 5) computes each 2x2 block of outputs from
an A x A block of input ("tile", A = R + 1) with A^2 multiplications per
input/output channel pair instead of 4 R^2 (16 instead of 36 for 3x3, 36
instead of 100 for 5x5; Lavin & Gray, "Fast Algorithms for Convolutional
Neural Networks", 2016):

    Y = A^T [ (G g G^T) * (B^T d B) ] A

with ``g`` the filter, ``d`` the input tile and ``*`` elementwise.  Summed
over input channels, the elementwise products become A^2 independent
matrix products, one per tile element xi:
``M[xi] (F x tiles) = U[xi] (F x C) @ V[xi] (C x tiles)``.

The transforms interpolate at the points 0, +-1 (and +-2 for 5x5) and
infinity, so B^T and A^T hold small integers and only G (applied to the
weights, in double precision) holds fractions: 3x3 results agree with
direct summation to float32 rounding (~3e-7 of the largest output), 5x5
results to ~4e-6.  A tile's inputs are mixed before the products, so a NaN
or infinity reaches all outputs of its tiles (the callers refuse
non-finite inputs by default).

Eight tiles go through the vector lanes together: eight neighbours of one
row of tiles, or, on output planes at most 8 wide, the four tiles of two
rows.  Three products use the transforms:

* forward: jobs of one sample and a band of tile rows, small enough that
  the band's transformed input (``V``) and the transformed weights (``U``,
  shared) stay in the L2 cache; for every panel of 16 tiles and 6 filters
  the A^2 products go to an L1 buffer that the output transform turns
  straight into output rows;
* input gradient (stride 1): ``dx`` is the forward correlation of ``dy``,
  zero-padded by ``R - 1 - padding``, with the flipped, transposed weights;
* weight gradient: ``dW = G^T [ sum over tiles of (A dy A^T) * V ] G``, whose
  sums over the tiles of a batch chunk are A^2 products with a long inner
  dimension (the tiles), run as dot products of 4 filters x 3 channels.

Jobs write disjoint outputs (forward) or per-chunk partial sums added in
chunk order (weight gradient, chunks fixed by the shapes): results do not
depend on the thread count.  Only the callers in
:mod:`neuroplug.backends.cython_ops` check arguments (DESIGN rule 4); here
only internal consistency is checked.
"""

from cython.parallel cimport prange, threadid
from libc.string cimport memcpy, memset

from ._modes import mode_from_env, mode_name, mode_value


cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>

    #if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__)) && !defined(NEUROPLUG_NO_SIMD)
    #define WG_SIMD 1
    #include <immintrin.h>
    #else
    #define WG_SIMD 0
    #endif

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

    static int wg_cpu_ok(void) {
    #if WG_SIMD
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    #else
        return 0;
    #endif
    }

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
    """
    int wg_cpu_ok() noexcept nogil
    float* wg_align64(float* p) noexcept nogil
    void wg_input_transform(const float* xp, long C, long rows, long Wp, long TWp, long nvec,
                            float* V, int panel, long ntp, long tl, long t0, int R) noexcept nogil
    void wg_ukr(long C, const float* A, const float* B, float* buf) noexcept nogil
    void wg_output_transform(const float* buf, int mr, const float* bias, float* y,
                             long OH, long OW, long ty0, long TWp, long t0, long ntiles, int R) noexcept nogil
    void wg_dy_transform(const float* dyp, long F, long DH, long DW, long TWp, long nvec,
                         float* Yb, int panel, long ntp, long tl, long t0, int R) noexcept nogil
    void wg_dx_output(const float* buf, int mr, float* dxb, long plane, long Wb,
                      long ty0, long TWp, long t0, long ntiles, int R) noexcept nogil
    void wg_dot43(long T, const float* y, long ys, const float* v, long vs, float* m, long ldm,
                  int fn, int cn) noexcept nogil


cdef bint _cpu_ok = wg_cpu_ok()

cdef enum:
    MR = 6
    NR = 16
    ALIGN_PAD = 16        # floats to align a buffer to 64 bytes
    SLACK = 16            # floats after a padded block that the vector loads may touch
    BAND_FLOATS = 32768   # transformed input (or dy) of one band of tile rows, 128 KiB: stays in L2
    # Weight gradient: tiles per run of dot products.  Longer runs add up the 12 partial-sum
    # vectors of a 4 x 3 block less often, shorter ones keep the transforms in cache: on
    # LeNet's second layer 64, 128 and 256 took 3.04, 2.71 and 2.88 ms.
    WGRAD_TILES = 128
    WGRAD_CHUNKS = 8      # weight gradient: at most this many batch chunks (partial sums)
    WGRAD_BUDGET = 4194304  # weight gradient: most floats of transforms per thread
    WGRAD_PARTIAL_BUDGET = 4194304  # weight gradient: most floats of per-chunk partial sums


# G (A x R), row-major, in double: the weight transform U = G g G^T and dW = G^T M G.
cdef double G3[12]
cdef double G5[30]
G3[:] = [1, 0, 0,   0.5, 0.5, 0.5,   0.5, -0.5, 0.5,   0, 0, 1]
G5[:] = [0.25, 0, 0, 0, 0,
         -1 / 6., -1 / 6., -1 / 6., -1 / 6., -1 / 6.,
         -1 / 6., 1 / 6., -1 / 6., 1 / 6., -1 / 6.,
         1 / 24., 1 / 12., 1 / 6., 1 / 3., 2 / 3.,
         1 / 24., -1 / 12., 1 / 6., -1 / 3., 2 / 3.,
         0, 0, 0, 0, 1]


def available():
    """Whether this CPU runs the kernels (x86 with AVX2 and FMA)."""
    return bool(_cpu_ok)


# Where the Winograd kernels run: 0 never, 1 where they pay (the default), 2 wherever they apply.
cdef int _mode = 1


def set_winograd(mode):
    """Select where the Winograd kernels run: ``"auto"`` (default), ``"always"`` or ``"never"``.

    ``"always"`` and ``"never"`` are for tests and benchmarks (also settable
    before import with ``NEUROPLUG_WINOGRAD``).  Returns the previous mode.
    Not thread-safe with respect to convolutions running at the same time.
    """
    global _mode
    previous = mode_name(_mode)
    _mode = mode_value(mode)
    return previous


if mode_from_env("NEUROPLUG_WINOGRAD"):
    set_winograd(mode_from_env("NEUROPLUG_WINOGRAD"))


cdef inline Py_ssize_t _tiles_per_row(Py_ssize_t width) noexcept nogil:
    """Tiles per row as laid out in the vectors: 4 (two rows per vector) up to 8 wide, else whole vectors."""
    cdef Py_ssize_t tw = (width + 1) // 2
    return 4 if tw <= 4 else (tw + 7) // 8 * 8


def pays(int kind, Py_ssize_t N, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t F, Py_ssize_t KH,
         Py_ssize_t KW, Py_ssize_t SH, Py_ssize_t SW, Py_ssize_t PH, Py_ssize_t PW, Py_ssize_t G, bint simd):
    """Whether a float32 call of ``kind`` (0 forward, 1 input gradient, 2 weight gradient) runs here.

    The kernels apply to one group of 3x3 or 5x5 filters with stride 1 where
    ``simd`` (the SIMD kernels of :mod:`neuroplug_core.conv` are enabled) and
    the CPU has AVX2+FMA; the weight gradient also needs one sample's
    transforms to fit a budget.  Where they pay was measured against the
    other kernels (AVX2, 2 threads; the rules are below).
    """
    if _mode == 0 or not _cpu_ok or not simd or KH != KW or KH not in (3, 5) or SH != 1 or SW != 1 or G != 1:
        return False
    if min(N, C, H, W, F) < 1 or min(PH, PW) < 0 or H + 2 * PH < KH or W + 2 * PW < KW:
        return False
    cdef WGeom g = _wgeom(kind, N, C, H, W, F, <int> KH, PH, PW)
    if kind == 2 and (_wgrad_floats(C, F, g.OH, g.OW, g.R) > WGRAD_BUDGET or g.chunks < min(N, 2)):
        return False        # a sample's transforms, or partial sums for two chunks, exceed their budgets
    if _mode == 2:
        return True
    # Measured against the packed GEMM and sliding kernels (AVX2, 2 threads), they lose:
    # - with fewer than 16 input or output channels (short products, half-empty panels:
    #   32x8x32x32 32@3x3: input gradient 1.19 -> 1.89 ms, weight gradient 1.36 -> 2.05 ms);
    # - where fewer than 60% of the tiles computed are real (6x6 planes, 9 tiles of 16: weight
    #   gradient 2.07 -> 2.34 ms; 4x4 planes: forward 1.32 -> 2.31 ms);
    # - where a band holds less than a panel of 16 tiles (many channels on small planes), as the
    #   transformed weights then stream from memory for every few tiles (8x256x7x7 256@3x3:
    #   3.85 -> 7.42 ms), or the weight gradient's dot products run over fewer than 64 tiles.
    if C < 16 or F < 16:
        return False
    # - for the gradients, where the products do too little work per transformed value,
    #   C F / (C + F) multiplications: under 12 for the input gradient (16 channels, 32
    #   filters, 5x5: 2.75 -> 2.98 ms), under 14 for the weight gradient, whose transforms
    #   make a round trip through memory (24 and 24, 3x3, 32x32 planes: 5.50 -> 5.93 ms;
    #   LeNet's 20 and 50, 14.3: 3.3 -> 2.8 ms);
    if C * F < (0 if kind == 0 else 12 if kind == 1 else 14) * (C + F):
        return False
    if g.TH * ((g.OW + 1) // 2) < 0.6 * 8 * ((g.TH * g.TWp + 7) // 8):
        return False
    if kind == 2:
        return min(g.nb, g.sb) * 8 * g.nvec >= 64
    return min(g.nty, g.TH) * g.TWp >= 16


cdef Py_ssize_t _wgrad_floats(Py_ssize_t C, Py_ssize_t F, Py_ssize_t OH, Py_ssize_t OW, Py_ssize_t R) noexcept:
    """Floats of one sample's transformed input and dy (the weight gradient's smallest run)."""
    cdef Py_ssize_t TWp = _tiles_per_row(OW), TH = (OH + 1) // 2
    cdef Py_ssize_t nvec = (TH * TWp + 7) // 8
    return (R + 1) * (R + 1) * (C + F) * 8 * nvec


cdef struct WGeom:
    int R, A                        # kernel size, tile size R + 1
    Py_ssize_t N, C, H, W, F, PH, PW
    Py_ssize_t OH, OW, TH, TWp      # output plane; tile rows, tiles per row (4 or a multiple of 8)
    Py_ssize_t nty, nbands, ntp     # forward: tile rows per band, bands per sample, 16-tile panels per band
    Py_ssize_t Wp, rows, xband      # padded input block: row length, rows, floats (C planes)
    Py_ssize_t vsize                # forward: V floats
    Py_ssize_t nfp, ncp             # panels of MR filters, of MR channels (input gradient)
    Py_ssize_t nvec, tl, sb         # weight gradient: vectors of 8 tiles per sample, tiles per run, samples per run
    Py_ssize_t chunks, nb           # weight gradient: batch chunks, samples per chunk
    Py_ssize_t DH, DW               # weight gradient: padded dy plane
    Py_ssize_t shared, per_thread   # workspace floats


cdef WGeom _wgeom(int kind, Py_ssize_t N, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t F, int R,
                  Py_ssize_t PH, Py_ssize_t PW) except *:
    cdef WGeom g
    memset(&g, 0, sizeof(WGeom))
    if R != 3 and R != 5:
        raise ValueError("the Winograd kernels take 3x3 or 5x5 filters")
    if min(N, C, H, W, F) < 1 or min(PH, PW) < 0:
        raise ValueError("invalid convolution geometry")
    g.R = R; g.A = R + 1
    g.N = N; g.C = C; g.H = H; g.W = W; g.F = F; g.PH = PH; g.PW = PW
    g.OH = H + 2 * PH - R + 1
    g.OW = W + 2 * PW - R + 1
    if g.OH < 1 or g.OW < 1:
        raise ValueError("kernel larger than the padded input")
    g.TH = (g.OH + 1) // 2
    g.TWp = _tiles_per_row(g.OW)
    g.Wp = 2 * g.TWp + g.A - 2
    g.nfp = (F + MR - 1) // MR
    g.ncp = (C + MR - 1) // MR
    cdef Py_ssize_t AA = g.A * g.A, pair = 2 if g.TWp == 4 else 1
    if kind == 1:
        # Bands of tile rows of dy (as in the forward pass, F channels in) added into a
        # zero-padded dx buffer of the whole sample: windows of neighbouring tiles overlap.
        g.nty = max(pair, BAND_FLOATS // (AA * F * g.TWp) // pair * pair)
        g.nty = min(g.nty, (g.TH + pair - 1) // pair * pair)
        g.nbands = (g.TH + g.nty - 1) // g.nty
        g.ntp = (g.nty * g.TWp + NR - 1) // NR
        g.DH = 2 * g.nty
        g.DW = 2 * g.TWp
        g.rows = 2 * ((g.TH + pair - 1) // pair * pair) + g.A - 2
        g.Wp = 2 * g.TWp + 8
        g.xband = C * g.rows * g.Wp
        g.vsize = AA * g.ntp * F * NR
        g.shared = AA * g.ncp * F * MR + ALIGN_PAD
        g.per_thread = ((F * g.DH * g.DW + SLACK + ALIGN_PAD) + (g.vsize + ALIGN_PAD)
                        + (AA * MR * NR + ALIGN_PAD) + (g.xband + SLACK + ALIGN_PAD))
    elif kind == 0:
        # Bands of whole tile rows (pairs of rows when a vector holds two) whose transform
        # fits BAND_FLOATS.
        g.nty = max(pair, BAND_FLOATS // (AA * C * g.TWp) // pair * pair)
        g.nty = min(g.nty, (g.TH + pair - 1) // pair * pair)
        g.nbands = (g.TH + g.nty - 1) // g.nty
        g.ntp = (g.nty * g.TWp + NR - 1) // NR
        g.rows = 2 * g.nty + g.A - 2
        g.xband = C * g.rows * g.Wp
        g.vsize = AA * g.ntp * C * NR
        g.shared = AA * g.nfp * C * MR + ALIGN_PAD
        g.per_thread = (g.xband + SLACK + ALIGN_PAD) + (g.vsize + ALIGN_PAD) + (AA * MR * NR + ALIGN_PAD)
    else:
        g.nvec = (g.TH * g.TWp + 7) // 8
        g.chunks = max(1, min(N, WGRAD_CHUNKS, WGRAD_PARTIAL_BUDGET // (AA * F * C)))
        g.nb = (N + g.chunks - 1) // g.chunks
        g.chunks = (N + g.nb - 1) // g.nb
        g.sb = max(1, min(g.nb, WGRAD_TILES // (8 * g.nvec), WGRAD_BUDGET // _wgrad_floats(C, F, g.OH, g.OW, R)))
        g.tl = g.sb * 8 * g.nvec
        g.rows = 2 * g.nvec * 8 // g.TWp + g.A - 2
        g.xband = C * g.rows * g.Wp
        g.DH = 2 * g.nvec * 8 // g.TWp
        g.DW = 2 * g.TWp
        g.shared = g.chunks * AA * F * C + ALIGN_PAD
        g.per_thread = ((g.xband + SLACK + ALIGN_PAD) + (F * g.DH * g.DW + SLACK + ALIGN_PAD)
                        + AA * (C + F) * g.tl + 2 * ALIGN_PAD)
    return g


def workspace(int kind, Py_ssize_t N, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t F, int R,
              Py_ssize_t PH, Py_ssize_t PW, int n_threads):
    """Scratch floats that :func:`forward` (``kind`` 0), :func:`backward_input` (1) or
    :func:`backward_weights` (2) needs on ``n_threads`` threads (``N, C, H, W``: the input's
    shape, ``F``: filters, ``R``: kernel size)."""
    cdef WGeom g = _wgeom(kind, N, C, H, W, F, R, PH, PW)
    return g.shared + g.per_thread * max(1, n_threads)


cdef void _transform_weights(const float[:, :, :, ::1] w, const WGeom* g, float* U, bint transposed) noexcept nogil:
    """U = G w G^T (in double), packed [xi][filter panel][c][MR] (rows past F zero), or, transposed,
    [xi][channel panel][f][MR] (the input gradient's A panels; rows past C zero)."""
    cdef Py_ssize_t f, c, i, j, k, A = g.A, R = g.R
    cdef const double* Gm = &G3[0] if R == 3 else &G5[0]
    cdef double t[6][5]
    cdef double s
    memset(U, 0, A * A * (g.ncp * g.F if transposed else g.nfp * g.C) * MR * sizeof(float))
    for f in range(g.F):
        for c in range(g.C):
            for i in range(A):           # t = G w
                for j in range(R):
                    s = 0
                    for k in range(R):
                        s = s + Gm[i * R + k] * w[f, c, k, j]
                    t[i][j] = s
            for i in range(A):           # U = t G^T
                for j in range(A):
                    s = 0
                    for k in range(R):
                        s = s + t[i][k] * Gm[j * R + k]
                    if transposed:
                        U[(((i * A + j) * g.ncp + c // MR) * g.F + f) * MR + c % MR] = <float> s
                    else:
                        U[(((i * A + j) * g.nfp + f // MR) * g.C + c) * MR + f % MR] = <float> s


cdef void _pad_block(const float* src, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t h0, Py_ssize_t rows,
                     Py_ssize_t Wp, Py_ssize_t PW, float* dst) noexcept nogil:
    """Rows ``h0 ... h0 + rows - 1`` of ``C`` planes of ``H x W`` into ``(C, rows, Wp)`` at column ``PW``, zeros around."""
    cdef Py_ssize_t c, rr, h
    memset(dst, 0, C * rows * Wp * sizeof(float))
    for c in range(C):
        for rr in range(rows):
            h = h0 + rr
            if 0 <= h < H:
                memcpy(dst + (c * rows + rr) * Wp + PW, src + (c * H + h) * W, W * sizeof(float))


cdef void _band(const float* x, const float* U, const float* bias, float* y, const WGeom* g,
                Py_ssize_t job, float* xb, float* V, float* buf) noexcept nogil:
    """One forward job: sample ``job // nbands``, band ``job % nbands`` of tile rows."""
    cdef Py_ssize_t n = job // g.nbands, ty0 = (job % g.nbands) * g.nty
    cdef Py_ssize_t nty = min(g.nty, g.TH - ty0), ntiles = nty * g.TWp
    cdef Py_ssize_t nvec = (ntiles + 7) // 8, ntp = (ntiles + NR - 1) // NR
    cdef Py_ssize_t tp, fp, xi, c, AA = g.A * g.A
    _pad_block(x + n * g.C * g.H * g.W, g.C, g.H, g.W, 2 * ty0 - g.PH, g.rows, g.Wp, g.PW, xb)
    # V panels are laid out for the band's own ntp (its last band may be shorter).
    wg_input_transform(xb, g.C, g.rows, g.Wp, g.TWp, nvec, V, 1, ntp, 0, 0, g.R)
    if nvec % 2:      # a half-empty last panel: zero its lanes 8..15
        for xi in range(AA):
            for c in range(g.C):
                memset(V + ((xi * ntp + ntp - 1) * g.C + c) * NR + 8, 0, 8 * sizeof(float))
    for tp in range(ntp):
        for fp in range(g.nfp):
            for xi in range(AA):
                wg_ukr(g.C, U + (xi * g.nfp + fp) * g.C * MR, V + (xi * ntp + tp) * g.C * NR, buf + xi * MR * NR)
            wg_output_transform(buf, <int> min(<Py_ssize_t> MR, g.F - fp * MR),
                                bias + fp * MR if bias != NULL else NULL,
                                y + (n * g.F + fp * MR) * g.OH * g.OW, g.OH, g.OW, ty0, g.TWp, tp * NR,
                                ntiles, g.R)


cdef WGeom _entry(int kind, tuple xs, tuple ws, tuple ys, Py_ssize_t PH, Py_ssize_t PW, int n_threads,
                  Py_ssize_t have) except *:
    """The checked geometry of a call: input ``xs`` (N, C, H, W), filters ``ws`` (F, C, R, R),
    output-side ``ys`` (N, F, OH, OW), ``have`` floats of workspace."""
    if not _cpu_ok:
        raise RuntimeError("the Winograd kernels need a CPU with AVX2 and FMA")
    if ws[2] != ws[3]:
        raise ValueError("the Winograd kernels take square filters")
    cdef WGeom g = _wgeom(kind, xs[0], xs[1], xs[2], xs[3], ws[0], <int> ws[2], PH, PW)
    if ws[1] != g.C or ys != (g.N, g.F, g.OH, g.OW):
        raise ValueError("inconsistent convolution shapes")
    if n_threads < 1:
        raise ValueError(f"n_threads must be >= 1. Received: n_threads={n_threads}")
    if have < g.shared + g.per_thread * n_threads:
        raise ValueError(f"workspace too small: {have} < {g.shared} + {g.per_thread} x {n_threads}")
    return g


cdef inline tuple _shape(const float[:, :, :, ::1] a):
    return (a.shape[0], a.shape[1], a.shape[2], a.shape[3])


def forward(
    const float[:, :, :, ::1] x,      # IN: (N, C, H, W)
    const float[:, :, :, ::1] w,      # IN: (F, C, R, R), R = 3 or 5
    const float[::1] b,               # IN: (F,) bias, or empty for none
    float[:, :, :, ::1] y,            # OUT: (N, F, H + 2 PH - R + 1, W + 2 PW - R + 1)
    Py_ssize_t PH, Py_ssize_t PW,
    int n_threads,
    float[::1] work,                  # scratch: workspace(0, ...) floats
):
    """Stride-1 correlation (one group) into ``y`` by Winograd F(2x2, RxR)."""
    cdef WGeom g = _entry(0, _shape(x), _shape(w), _shape(y), PH, PW, n_threads, work.shape[0])
    if b.shape[0] not in (0, g.F):
        raise ValueError("bias has the wrong length")
    cdef float* U = wg_align64(&work[0])
    cdef float* tw = &work[0] + g.shared
    cdef const float* bias = &b[0] if b.shape[0] > 0 else NULL
    cdef float* xb
    cdef float* V
    cdef Py_ssize_t job
    with nogil:
        _transform_weights(w, &g, U, False)
        for job in prange(g.N * g.nbands, num_threads=n_threads, schedule="dynamic"):
            xb = wg_align64(tw + threadid() * g.per_thread)
            V = wg_align64(xb + g.xband + SLACK)
            _band(&x[0, 0, 0, 0], U, bias, &y[0, 0, 0, 0], &g, job, xb, V, wg_align64(V + g.vsize))


cdef void _dx_sample(const float* dy, const float* UT, float* dx, const WGeom* g, Py_ssize_t n,
                     float* dyb, float* Yb, float* buf, float* dxb) noexcept nogil:
    """The input gradient of sample ``n``: bands of dy tiles added into ``dxb``, then copied out."""
    cdef Py_ssize_t AA = g.A * g.A, plane = g.rows * g.Wp, band, ty0, nty, ntiles, nvec, ntp
    cdef Py_ssize_t tp, cp, xi, f, c, h
    memset(dxb, 0, g.C * plane * sizeof(float))
    for band in range(g.nbands):
        ty0 = band * g.nty
        nty = min(g.nty, g.TH - ty0)
        ntiles = nty * g.TWp
        nvec = (ntiles + 7) // 8
        ntp = (ntiles + NR - 1) // NR
        _pad_block(dy + n * g.F * g.OH * g.OW, g.F, g.OH, g.OW, 2 * ty0, g.DH, g.DW, 0, dyb)
        wg_dy_transform(dyb, g.F, g.DH, g.DW, g.TWp, nvec, Yb, 1, ntp, 0, 0, g.R)
        if nvec % 2:      # a half-empty last panel: zero its lanes 8..15
            for xi in range(AA):
                for f in range(g.F):
                    memset(Yb + ((xi * ntp + ntp - 1) * g.F + f) * NR + 8, 0, 8 * sizeof(float))
        for tp in range(ntp):
            for cp in range(g.ncp):
                for xi in range(AA):
                    wg_ukr(g.F, UT + (xi * g.ncp + cp) * g.F * MR, Yb + (xi * ntp + tp) * g.F * NR, buf + xi * MR * NR)
                wg_dx_output(buf, <int> min(<Py_ssize_t> MR, g.C - cp * MR), dxb + cp * MR * plane, plane, g.Wp,
                             ty0, g.TWp, tp * NR, ntiles, g.R)
    for c in range(g.C):
        for h in range(g.H):
            memcpy(dx + ((n * g.C + c) * g.H + h) * g.W, dxb + c * plane + (h + g.PH) * g.Wp + g.PW,
                   g.W * sizeof(float))


def backward_input(
    const float[:, :, :, ::1] dy,     # IN: (N, F, OH, OW)
    const float[:, :, :, ::1] w,      # IN: (F, C, R, R)
    float[:, :, :, ::1] dx,           # OUT: (N, C, H, W)
    Py_ssize_t PH, Py_ssize_t PW,
    int n_threads,
    float[::1] work,                  # scratch: workspace(1, ...) floats
):
    """Input gradient of the stride-1 correlation (one group) into ``dx`` by Winograd F(2x2, RxR)."""
    cdef WGeom g = _entry(1, _shape(dx), _shape(w), _shape(dy), PH, PW, n_threads, work.shape[0])
    cdef float* UT = wg_align64(&work[0])
    cdef float* tw = &work[0] + g.shared
    cdef float* dyb
    cdef float* Yb
    cdef float* buf
    cdef Py_ssize_t n
    with nogil:
        _transform_weights(w, &g, UT, True)
        for n in prange(g.N, num_threads=n_threads, schedule="dynamic"):
            dyb = wg_align64(tw + threadid() * g.per_thread)
            Yb = wg_align64(dyb + g.F * g.DH * g.DW + SLACK)
            buf = wg_align64(Yb + g.vsize)
            _dx_sample(&dy[0, 0, 0, 0], UT, &dx[0, 0, 0, 0], &g, n, dyb, Yb, buf,
                       wg_align64(buf + g.A * g.A * MR * NR))


cdef void _wgrad_chunk(const float* x, const float* dy, float* part, const WGeom* g, Py_ssize_t n0,
                       Py_ssize_t nn, float* xb, float* dyb, float* V, float* Yb) noexcept nogil:
    """part[xi][f][c] = sum over the tiles of samples n0 ... n0 + nn - 1 of Yb[xi][f][t] V[xi][c][t]."""
    cdef Py_ssize_t AA = g.A * g.A, s0, ns, s, n, xi, f, c, h, tl
    memset(part, 0, AA * g.F * g.C * sizeof(float))
    s0 = n0
    while s0 < n0 + nn:
        ns = min(g.sb, n0 + nn - s0)
        tl = ns * 8 * g.nvec
        for s in range(ns):
            n = s0 + s
            _pad_block(x + n * g.C * g.H * g.W, g.C, g.H, g.W, -g.PH, g.rows, g.Wp, g.PW, xb)
            wg_input_transform(xb, g.C, g.rows, g.Wp, g.TWp, g.nvec, V, 0, 0, g.tl, s * 8 * g.nvec, g.R)
            _pad_block(dy + n * g.F * g.OH * g.OW, g.F, g.OH, g.OW, 0, g.DH, g.DW, 0, dyb)
            wg_dy_transform(dyb, g.F, g.DH, g.DW, g.TWp, g.nvec, Yb, 0, 0, g.tl, s * 8 * g.nvec, g.R)
        for xi in range(AA):
            f = 0
            while f < g.F:
                c = 0
                while c < g.C:
                    wg_dot43(tl, Yb + (xi * g.F + f) * g.tl, g.tl, V + (xi * g.C + c) * g.tl, g.tl,
                             part + (xi * g.F + f) * g.C + c, g.C,
                             <int> min(4, g.F - f), <int> min(3, g.C - c))
                    c += 3
                f += 4
        s0 += ns


def backward_weights(
    const float[:, :, :, ::1] dy,     # IN: (N, F, OH, OW)
    const float[:, :, :, ::1] x,      # IN: (N, C, H, W)
    float[:, :, :, ::1] dw,           # OUT: (F, C, R, R)
    Py_ssize_t PH, Py_ssize_t PW,
    int n_threads,
    float[::1] work,                  # scratch: workspace(2, ...) floats
):
    """Weight gradient of the stride-1 correlation (one group) into ``dw`` by Winograd F(2x2, RxR)."""
    cdef WGeom g = _entry(2, _shape(x), _shape(dw), _shape(dy), PH, PW, n_threads, work.shape[0])
    cdef float* part = wg_align64(&work[0])
    cdef float* tw = &work[0] + g.shared
    cdef Py_ssize_t AA = g.A * g.A, FC = g.F * g.C, ci, n0, f
    cdef float* xb
    cdef float* dyb
    cdef float* V
    with nogil:
        for ci in prange(g.chunks, num_threads=n_threads, schedule="dynamic"):
            n0 = ci * g.nb
            xb = wg_align64(tw + threadid() * g.per_thread)
            dyb = wg_align64(xb + g.xband + SLACK)
            V = wg_align64(dyb + g.F * g.DH * g.DW + SLACK)
            _wgrad_chunk(&x[0, 0, 0, 0], &dy[0, 0, 0, 0], part + ci * AA * FC, &g, n0, min(g.nb, g.N - n0),
                         xb, dyb, V, V + AA * g.C * g.tl)
        for f in prange(g.F, num_threads=n_threads if FC * g.chunks >= 65536 else 1, schedule="static"):
            _wgrad_finish(part, &g, f, &dw[f, 0, 0, 0])


cdef void _wgrad_finish(float* part, const WGeom* g, Py_ssize_t f, float* dwf) noexcept nogil:
    """Filter ``f``: its chunks' partial sums added in chunk order (deterministic), then
    ``dW = G^T M G`` in double into ``dwf`` ``(C, R, R)``."""
    cdef Py_ssize_t AA = g.A * g.A, FC = g.F * g.C, A = g.A, R = g.R, r, c, i, j, k, l, e
    cdef const double* Gm = &G3[0] if R == 3 else &G5[0]
    cdef double m[6][6]
    cdef double t[5][6]
    cdef double s
    for r in range(1, g.chunks):
        for i in range(AA):
            for c in range(g.C):
                e = i * FC + f * g.C + c
                part[e] += part[r * AA * FC + e]
    for c in range(g.C):
        for i in range(A):
            for j in range(A):
                m[i][j] = part[(i * A + j) * FC + f * g.C + c]
        for k in range(R):           # t = G^T m
            for j in range(A):
                s = 0
                for i in range(A):
                    s = s + Gm[i * R + k] * m[i][j]
                t[k][j] = s
        for k in range(R):           # dW = t G
            for l in range(R):
                s = 0
                for j in range(A):
                    s = s + t[k][j] * Gm[j * R + l]
                dwf[(c * R + k) * R + l] = <float> s
