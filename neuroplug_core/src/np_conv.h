/* SIMD packing and micro-kernels of neuroplug_core.conv (float32). */
#ifndef NEUROPLUG_NP_CONV_H
#define NEUROPLUG_NP_CONV_H

/* SIMD micro-kernels of neuroplug_core.conv (float32).

   A micro-kernel computes one MR x NR tile of a row-major C from packed
   panels:  C[r][c] (+)= sum_k A[k*MR + r] * B[k*NR + c]  (+ bias[r]),
   writing only rows r < mr and columns c < nr.  MR is 6 for every ISA;
   NR is 64 with AVX-512 and 16 with AVX2+FMA.  The kernel is chosen at run
   time from what the CPU supports, so the module is built for the baseline
   ISA and still uses the wide units where they exist. */
#include <stdint.h>
#include <string.h>

#include "np_cpu.h"

#define NP_SIMD NP_CPU_SIMD

#define NP_MR 6
#define NP_SLIDING_SB 16  /* most samples per run of the sliding-window weight gradient */

static void np_init_interleave(void);

/* The widest kernel the CPU supports: 2 AVX-512, 1 AVX2+FMA, 0 none (BLAS path). */
static int np_cpu_isa(void) {
#if NP_SIMD
    np_init_interleave();
#endif
    return np_cpu_level(1);
}

static int np_isa_nr(int isa) { return isa == 2 ? 64 : (isa == 1 ? 16 : 0); }

static float* np_align64(float* p) {
    return (float*)(((uintptr_t)p + 63) & ~(uintptr_t)63);
}

#if NP_SIMD
/* ---------------------------------------------------------------- AVX-512 */
#define NP_Z_ROW(r)                                             \
    a = _mm512_set1_ps(A[r]);                                   \
    c##r##0 = _mm512_fmadd_ps(a, b0, c##r##0);                  \
    c##r##1 = _mm512_fmadd_ps(a, b1, c##r##1);                  \
    c##r##2 = _mm512_fmadd_ps(a, b2, c##r##2);                  \
    c##r##3 = _mm512_fmadd_ps(a, b3, c##r##3);

#define NP_Z_DECL(r) __m512 c##r##0 = _mm512_setzero_ps(), c##r##1 = c##r##0, c##r##2 = c##r##0, c##r##3 = c##r##0;

#define NP_Z_FULL(r) {                                                          \
    float* cr = C + (r) * ldc;                                                  \
    __m512 bb = bias ? _mm512_set1_ps(bias[r]) : _mm512_setzero_ps();           \
    __m512 v0 = _mm512_add_ps(c##r##0, bb), v1 = _mm512_add_ps(c##r##1, bb);    \
    __m512 v2 = _mm512_add_ps(c##r##2, bb), v3 = _mm512_add_ps(c##r##3, bb);    \
    if (accumulate) {                                                           \
        v0 = _mm512_add_ps(v0, _mm512_loadu_ps(cr));                            \
        v1 = _mm512_add_ps(v1, _mm512_loadu_ps(cr + 16));                       \
        v2 = _mm512_add_ps(v2, _mm512_loadu_ps(cr + 32));                       \
        v3 = _mm512_add_ps(v3, _mm512_loadu_ps(cr + 48));                       \
    }                                                                           \
    _mm512_storeu_ps(cr, v0); _mm512_storeu_ps(cr + 16, v1);                    \
    _mm512_storeu_ps(cr + 32, v2); _mm512_storeu_ps(cr + 48, v3); }

#define NP_Z_SAVE(r)                                                            \
    _mm512_store_ps(tile + (r) * 64, c##r##0);                                  \
    _mm512_store_ps(tile + (r) * 64 + 16, c##r##1);                             \
    _mm512_store_ps(tile + (r) * 64 + 32, c##r##2);                             \
    _mm512_store_ps(tile + (r) * 64 + 48, c##r##3);

__attribute__((target("avx512f")))
static void np_ukr_avx512(long K, const float* A, const float* B, float* C, long ldc,
                          int mr, int nr, int accumulate, const float* bias)
{
    NP_Z_DECL(0) NP_Z_DECL(1) NP_Z_DECL(2) NP_Z_DECL(3) NP_Z_DECL(4) NP_Z_DECL(5)
    __m512 a, b0, b1, b2, b3;
    long k;
    for (k = 0; k < K; ++k) {
        b0 = _mm512_loadu_ps(B);
        b1 = _mm512_loadu_ps(B + 16);
        b2 = _mm512_loadu_ps(B + 32);
        b3 = _mm512_loadu_ps(B + 48);
        NP_Z_ROW(0) NP_Z_ROW(1) NP_Z_ROW(2) NP_Z_ROW(3) NP_Z_ROW(4) NP_Z_ROW(5)
        A += NP_MR;
        B += 64;
    }
    if (mr == NP_MR && nr == 64) {
        NP_Z_FULL(0) NP_Z_FULL(1) NP_Z_FULL(2) NP_Z_FULL(3) NP_Z_FULL(4) NP_Z_FULL(5)
        return;
    }
    {
        float tile[NP_MR * 64] __attribute__((aligned(64)));
        int r, v, lanes;
        NP_Z_SAVE(0) NP_Z_SAVE(1) NP_Z_SAVE(2) NP_Z_SAVE(3) NP_Z_SAVE(4) NP_Z_SAVE(5)
        for (r = 0; r < mr; ++r) {
            float* cr = C + r * ldc;
            __m512 bb = bias ? _mm512_set1_ps(bias[r]) : _mm512_setzero_ps();
            for (v = 0; v < 4; ++v) {
                lanes = nr - 16 * v;
                if (lanes <= 0) break;
                __mmask16 m = lanes >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << lanes) - 1u);
                __m512 t = _mm512_add_ps(_mm512_load_ps(tile + r * 64 + 16 * v), bb);
                if (accumulate) t = _mm512_add_ps(t, _mm512_maskz_loadu_ps(m, cr + 16 * v));
                _mm512_mask_storeu_ps(cr + 16 * v, m, t);
            }
        }
    }
}

/* ------------------------------------------------------------ AVX2 + FMA */
#define NP_Y_DECL(r) __m256 c##r##0 = _mm256_setzero_ps(), c##r##1 = c##r##0;
#define NP_Y_ROW(r)                                             \
    a = _mm256_broadcast_ss(A + (r));                           \
    c##r##0 = _mm256_fmadd_ps(a, b0, c##r##0);                  \
    c##r##1 = _mm256_fmadd_ps(a, b1, c##r##1);
#define NP_Y_SAVE(r)                                            \
    _mm256_store_ps(tile + (r) * 16, c##r##0);                  \
    _mm256_store_ps(tile + (r) * 16 + 8, c##r##1);

#define NP_Y_OUT(r)                                                                   \
    if ((r) < mr) {                                                                   \
        float* cr = C + (r) * ldc;                                                    \
        __m256 vb = _mm256_set1_ps(bias ? bias[r] : 0.0f);                            \
        __m256 t0 = _mm256_add_ps(c##r##0, vb), t1 = _mm256_add_ps(c##r##1, vb);      \
        if (accumulate) {                                                             \
            t0 = _mm256_add_ps(t0, _mm256_loadu_ps(cr));                              \
            t1 = _mm256_add_ps(t1, _mm256_loadu_ps(cr + 8));                          \
        }                                                                             \
        _mm256_storeu_ps(cr, t0);                                                     \
        _mm256_storeu_ps(cr + 8, t1);                                                 \
    }

/* The 6 x 16 tile's K steps: two B vectors, six broadcast A values, twelve FMAs. */
#define NP_Y_LOOP                                                   \
    for (k = 0; k < K; ++k) {                                       \
        b0 = _mm256_loadu_ps(B);                                    \
        b1 = _mm256_loadu_ps(B + 8);                                \
        NP_Y_ROW(0) NP_Y_ROW(1) NP_Y_ROW(2) NP_Y_ROW(3) NP_Y_ROW(4) NP_Y_ROW(5) \
        A += NP_MR;                                                 \
        B += 16;                                                    \
    }

__attribute__((target("avx2,fma")))
static void np_ukr_avx2(long K, const float* A, const float* B, float* C, long ldc,
                        int mr, int nr, int accumulate, const float* bias)
{
    NP_Y_DECL(0) NP_Y_DECL(1) NP_Y_DECL(2) NP_Y_DECL(3) NP_Y_DECL(4) NP_Y_DECL(5)
    __m256 a, b0, b1;
    float tile[NP_MR * 16] __attribute__((aligned(32)));
    long k;
    int r, c;
    NP_Y_LOOP
    if (nr == 16) {   /* full-width tile: straight from the registers */
        NP_Y_OUT(0) NP_Y_OUT(1) NP_Y_OUT(2) NP_Y_OUT(3) NP_Y_OUT(4) NP_Y_OUT(5)
        return;
    }
    /* A narrower tile (the last columns of a panel): through memory. */
    NP_Y_SAVE(0) NP_Y_SAVE(1) NP_Y_SAVE(2) NP_Y_SAVE(3) NP_Y_SAVE(4) NP_Y_SAVE(5)
    for (r = 0; r < mr; ++r) {
        float* cr = C + r * ldc;
        const float* tr = tile + r * 16;
        float bb = bias ? bias[r] : 0.0f;
        for (c = 0; c < nr; ++c)
            cr[c] = accumulate ? cr[c] + (tr[c] + bb) : tr[c] + bb;
    }
}

/* np_ukr_avx2 for the input gradient of a stride-1 layer whose output rows are whole
   vectors (OW % 8 == 0), with col2im in the epilogue: row r of the 6 x 16 tile
   (im2col row k = (c, i, j)) is added to the input-gradient plane at rowoff[r], its
   two halves at off0 and off1 (output positions (oh, ow) -> oh * Wp + ow).  The same
   sums in the same order as the tile stored to dcol and then scattered by
   np_col2im_s1_y, without the round trip through dcol. */
__attribute__((target("avx2,fma")))
static void np_ukr_col2im_y(long K, const float* A, const float* B, float* dxp, const long* rowoff,
                            long off0, long off1, int mr)
{
    NP_Y_DECL(0) NP_Y_DECL(1) NP_Y_DECL(2) NP_Y_DECL(3) NP_Y_DECL(4) NP_Y_DECL(5)
    __m256 a, b0, b1;
    long k;
    NP_Y_LOOP
#define NP_Y_SCATTER(r)                                                               \
    if ((r) < mr) {                                                                   \
        float* d0 = dxp + rowoff[r] + off0;                                           \
        float* d1 = dxp + rowoff[r] + off1;                                           \
        _mm256_storeu_ps(d0, _mm256_add_ps(_mm256_loadu_ps(d0), c##r##0));            \
        _mm256_storeu_ps(d1, _mm256_add_ps(_mm256_loadu_ps(d1), c##r##1));            \
    }
    NP_Y_SCATTER(0) NP_Y_SCATTER(1) NP_Y_SCATTER(2) NP_Y_SCATTER(3) NP_Y_SCATTER(4) NP_Y_SCATTER(5)
#undef NP_Y_SCATTER
}
#endif /* NP_SIMD */

/* Portable reference micro-kernel (any NR <= 64): used only by the tests
   of the packing code on machines without AVX2. */
static void np_ukr_generic(long K, const float* A, const float* B, float* C, long ldc,
                           int mr, int nr, int accumulate, const float* bias, int NR)
{
    float acc[NP_MR * 64];
    long k;
    int r, c;
    memset(acc, 0, sizeof(acc));
    for (k = 0; k < K; ++k)
        for (r = 0; r < mr; ++r)
            for (c = 0; c < nr; ++c)
                acc[r * 64 + c] += A[k * NP_MR + r] * B[k * NR + c];
    for (r = 0; r < mr; ++r)
        for (c = 0; c < nr; ++c) {
            float t = acc[r * 64 + c] + (bias ? bias[r] : 0.0f);
            C[r * ldc + c] = accumulate ? C[r * ldc + c] + t : t;
        }
}

static void np_ukr(int isa, long K, const float* A, const float* B, float* C, long ldc,
                   int mr, int nr, int accumulate, const float* bias)
{
#if NP_SIMD
    if (isa == 2) { np_ukr_avx512(K, A, B, C, ldc, mr, nr, accumulate, bias); return; }
    if (isa == 1) { np_ukr_avx2(K, A, B, C, ldc, mr, nr, accumulate, bias); return; }
#endif
    np_ukr_generic(K, A, B, C, ldc, mr, nr, accumulate, bias, 16);
}

/* ------------------------------------------------------------------------
   AVX-512 packing helpers.  "xp" is one sample-group of the input, already
   zero-padded (Cg x Hp x Wp), so no index is ever out of range and every
   copy is a run of contiguous floats, moved with (masked) vector loads and
   stores.  Layouts match the micro-kernel: panels of kc x NR (B) and
   kc x MR (A). */
#if NP_SIMD
__attribute__((target("avx512f")))
static inline void np_copy_z(float* d, const float* s, long len) {
    while (len >= 16) { _mm512_storeu_ps(d, _mm512_loadu_ps(s)); d += 16; s += 16; len -= 16; }
    if (len > 0) {
        __mmask16 m = (__mmask16)((1u << len) - 1u);
        _mm512_mask_storeu_ps(d, m, _mm512_maskz_loadu_ps(m, s));
    }
}

__attribute__((target("avx512f")))
static inline void np_add_z(float* d, const float* s, long len) {
    while (len >= 16) {
        _mm512_storeu_ps(d, _mm512_add_ps(_mm512_loadu_ps(d), _mm512_loadu_ps(s)));
        d += 16; s += 16; len -= 16;
    }
    if (len > 0) {
        __mmask16 m = (__mmask16)((1u << len) - 1u);
        _mm512_mask_storeu_ps(d, m, _mm512_add_ps(_mm512_maskz_loadu_ps(m, d), _mm512_maskz_loadu_ps(m, s)));
    }
}

/* Copy whole 16-float vectors: reads and writes up to 15 floats past len.
   Packers use it for runs written in increasing order within a panel row
   (each overrun is overwritten by the next run, the row's zero tail or the
   next row) and keep 16 floats of slack after every packed panel and
   padded input, so unmasked moves stay inside the workspace. */
__attribute__((target("avx512f")))
static inline void np_copy_over_z(float* d, const float* s, long len) {
    for (; len > 0; len -= 16, d += 16, s += 16) _mm512_storeu_ps(d, _mm512_loadu_ps(s));
}

__attribute__((target("avx512f")))
static inline void np_zero_z(float* d, long len) {
    __m512 z = _mm512_setzero_ps();
    while (len >= 16) { _mm512_storeu_ps(d, z); d += 16; len -= 16; }
    if (len > 0) _mm512_mask_storeu_ps(d, (__mmask16)((1u << len) - 1u), z);
}

/* AVX2 counterparts: masked moves through vmaskmovps (masked-off lanes never fault). */
__attribute__((target("avx2,fma")))
static inline __m256i np_mask_y(long len) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)len), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/* np_copy_over_z with 8-float vectors, under the same rules; used where the
   runs are short (a 5-wide kernel row), since masked stores are slow on
   some AVX2 CPUs (microcoded on AMD Zen). */
__attribute__((target("avx2,fma")))
static inline void np_copy_over_y(float* d, const float* s, long len) {
    for (; len > 0; len -= 8, d += 8, s += 8) _mm256_storeu_ps(d, _mm256_loadu_ps(s));
}

__attribute__((target("avx2,fma")))
static inline void np_copy_y(float* d, const float* s, long len) {
    while (len >= 8) { _mm256_storeu_ps(d, _mm256_loadu_ps(s)); d += 8; s += 8; len -= 8; }
    if (len > 0) { __m256i m = np_mask_y(len); _mm256_maskstore_ps(d, m, _mm256_maskload_ps(s, m)); }
}

__attribute__((target("avx2,fma")))
static inline void np_add_y(float* d, const float* s, long len) {
    while (len >= 8) {
        _mm256_storeu_ps(d, _mm256_add_ps(_mm256_loadu_ps(d), _mm256_loadu_ps(s)));
        d += 8; s += 8; len -= 8;
    }
    if (len > 0) {
        __m256i m = np_mask_y(len);
        _mm256_maskstore_ps(d, m, _mm256_add_ps(_mm256_maskload_ps(d, m), _mm256_maskload_ps(s, m)));
    }
}

__attribute__((target("avx2,fma")))
static inline void np_zero_y(float* d, long len) {
    __m256 z = _mm256_setzero_ps();
    while (len >= 8) { _mm256_storeu_ps(d, z); d += 8; len -= 8; }
    if (len > 0) _mm256_maskstore_ps(d, np_mask_y(len), z);
}

typedef void (*np_move_fn)(float*, const float*, long);
typedef void (*np_zero_fn)(float*, long);

/* Runs of one column panel (at most PB_RUNS_MAX positions): output positions
   p0 .. p0+ncols-1 split by output row. */
#define PB_RUNS_MAX 256
typedef struct { long dst, oh, ow, len; } np_run;

static int np_runs(long p0, long ncols, long OW, np_run* runs) {
    long p = p0, end = p0 + ncols;
    int n = 0;
    while (p < end) {
        long oh = p / OW, ow = p - oh * OW;
        long len = OW - ow < end - p ? OW - ow : end - p;
        runs[n].dst = p - p0; runs[n].oh = oh; runs[n].ow = ow; runs[n].len = len;
        ++n;
        p += len;
    }
    return n;
}

/* B panel of the forward pass, stride 1: bp[k - k0][c] = col[k][p0 + c],
   col[(ci, i, j)][(oh, ow)] = xp[ci][oh + i][ow + j].  The body is inlined
   into one function per ISA with that ISA's vector moves. */
static inline __attribute__((always_inline))
void np_pack_b_im2col_s1_body(np_move_fn copy, np_zero_fn zero,
                              const float* xp, long Hp, long Wp, long KH, long KW, long OW,
                              long p0, long ncols, long k0, long kc, int NR, float* bp)
{
    np_run runs[64];
    int nr = np_runs(p0, ncols, OW, runs), t;
    long k, c = k0 / (KH * KW), i = (k0 / KW) % KH, j = k0 % KW;
    for (k = 0; k < kc; ++k) {
        float* d = bp + k * NR;
        const float* s = xp + (c * Hp + i) * Wp + j;
        for (t = 0; t < nr; ++t)
            copy(d + runs[t].dst, s + runs[t].oh * Wp + runs[t].ow, runs[t].len);
        if (ncols < NR) zero(d + ncols, NR - ncols);
        if (++j == KW) { j = 0; if (++i == KH) { i = 0; ++c; } }
    }
}

__attribute__((target("avx512f")))
static void np_pack_b_im2col_s1_z(const float* xp, long Hp, long Wp, long KH, long KW, long OW,
                                  long p0, long ncols, long k0, long kc, int NR, float* bp)
{ np_pack_b_im2col_s1_body(np_copy_over_z, np_zero_z, xp, Hp, Wp, KH, KW, OW, p0, ncols, k0, kc, NR, bp); }

__attribute__((target("avx2,fma")))
static void np_pack_b_im2col_s1_y(const float* xp, long Hp, long Wp, long KH, long KW, long OW,
                                  long p0, long ncols, long k0, long kc, int NR, float* bp)
{ np_pack_b_im2col_s1_body(np_copy_over_y, np_zero_y, xp, Hp, Wp, KH, KW, OW, p0, ncols, k0, kc, NR, bp); }

/* col2im of one column panel, stride 1, one row at a time (AVX2). */
__attribute__((target("avx2,fma")))
static void np_col2im_s1_y(const float* dcol, long ld, long K, long Hp, long Wp, long KH, long KW, long OW,
                           long p0, long ncols, float* dxp)
{
    np_run runs[64];
    int nr = np_runs(p0, ncols, OW, runs), t;
    long k, c = 0, i = 0, j = 0;
    for (k = 0; k < K; ++k) {
        const float* s = dcol + k * ld;
        float* d = dxp + (c * Hp + i) * Wp + j;
        for (t = 0; t < nr; ++t)
            np_add_y(d + runs[t].oh * Wp + runs[t].ow, s + runs[t].dst, runs[t].len);
        if (++j == KW) { j = 0; if (++i == KH) { i = 0; ++c; } }
    }
}

/* col2im of one column panel, stride 1: dxp[ci][oh + i][ow + j] += dcol[(ci, i, j)][c].
   For one (ci, i) and one output-row run, the KW shifted rows of dcol land on
   one segment of KW - 1 + len input columns: the segment is loaded once and
   the KW rows are added into it with masked (shifted) loads. */
__attribute__((target("avx512f")))
static void np_col2im_s1_z(const float* dcol, long ld, long K, long Hp, long Wp, long KH, long KW, long OW,
                           long p0, long ncols, float* dxp)
{
    np_run runs[64];
    int nr = np_runs(p0, ncols, OW, runs), t;
    long ci, i, j, t0, C = K / (KH * KW);
    for (ci = 0; ci < C; ++ci) {
        for (i = 0; i < KH; ++i) {
            const float* rows = dcol + ((ci * KH + i) * KW) * ld;   /* row (ci, i, j) is rows + j * ld */
            float* drow = dxp + (ci * Hp + i) * Wp;
            for (t = 0; t < nr; ++t) {
                long len = runs[t].len, seg = len + KW - 1;
                float* d = drow + runs[t].oh * Wp + runs[t].ow;
                const float* s = rows + runs[t].dst;
                for (t0 = 0; t0 < seg; t0 += 16) {
                    long w = seg - t0 < 16 ? seg - t0 : 16;
                    __mmask16 mw = w == 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << w) - 1u);
                    __m512 acc = _mm512_maskz_loadu_ps(mw, d + t0);
                    for (j = 0; j < KW; ++j) {
                        /* lanes u with 0 <= t0 + u - j < len read s[j * ld + t0 + u - j] */
                        long lo = j - t0, hi = j + len - t0;      /* valid u in [lo, hi) */
                        unsigned bits;
                        if (hi <= 0 || lo >= 16) continue;
                        if (lo < 0) lo = 0;
                        if (hi > 16) hi = 16;
                        bits = (hi - lo >= 16 ? 0xFFFFu : ((1u << (hi - lo)) - 1u)) << lo;
                        acc = _mm512_add_ps(acc, _mm512_maskz_loadu_ps((__mmask16)bits, s + j * ld + t0 - j));
                    }
                    _mm512_mask_storeu_ps(d + t0, mw, acc);
                }
            }
        }
    }
}

/* B panel from rows of a row-major matrix: bp[k][c] = src[k*lds + c0 + c], zero beyond ncols. */
static inline __attribute__((always_inline))
void np_pack_b_rows_body(np_move_fn copy, np_zero_fn zero,
                         const float* src, long lds, long kc, long c0, long ncols, int NR, float* bp) {
    long k;
    for (k = 0; k < kc; ++k) {
        copy(bp + k * NR, src + k * lds + c0, ncols);
        if (ncols < NR) zero(bp + k * NR + ncols, NR - ncols);
    }
}

__attribute__((target("avx512f")))
static void np_pack_b_rows_z(const float* src, long lds, long kc, long c0, long ncols, int NR, float* bp)
{ np_pack_b_rows_body(np_copy_z, np_zero_z, src, lds, kc, c0, ncols, NR, bp); }

__attribute__((target("avx2,fma")))
static void np_pack_b_rows_y(const float* src, long lds, long kc, long c0, long ncols, int NR, float* bp)
{ np_pack_b_rows_body(np_copy_y, np_zero_y, src, lds, kc, c0, ncols, NR, bp); }

/* Sum of a float32 row in 16 lanes (fixed order, so deterministic), as double. */
__attribute__((target("avx512f")))
static double np_sum_z(const float* s, long n) {
    __m512 a = _mm512_setzero_ps(), b = _mm512_setzero_ps();
    long i = 0;
    for (; i + 32 <= n; i += 32) {
        a = _mm512_add_ps(a, _mm512_loadu_ps(s + i));
        b = _mm512_add_ps(b, _mm512_loadu_ps(s + i + 16));
    }
    if (i + 16 <= n) { a = _mm512_add_ps(a, _mm512_loadu_ps(s + i)); i += 16; }
    if (i < n) b = _mm512_add_ps(b, _mm512_maskz_loadu_ps((__mmask16)((1u << (n - i)) - 1u), s + i));
    return (double)_mm512_reduce_add_ps(_mm512_add_ps(a, b));
}

/* B panel of the weight gradient (the transposed im2col matrix, "im2row"):
   bp[p][c] = col[kr0 + c][p0 + p] for p < pb, c < nk, zero for c >= nk.
   For one position the K entries are runs of KW contiguous input values. */
typedef struct { long src, dst, len; } np_seg;

static inline __attribute__((always_inline))
void np_pack_b_im2row_body(np_move_fn copy, np_zero_fn zero,
                           const float* xp, long Hp, long Wp, long KH, long KW, long SH, long SW,
                           long OW, long p0, long pb, long kr0, long nk, int NR, float* bp)
{
    np_seg segs[64];
    int ns = 0, t;
    long k = kr0, end = kr0 + nk, p, oh, ow;
    while (k < end) {
        long c = k / (KH * KW), i = (k / KW) % KH, j = k % KW;
        long len = KW - j < end - k ? KW - j : end - k;
        segs[ns].src = (c * Hp + i) * Wp + j; segs[ns].dst = k - kr0; segs[ns].len = len;
        ++ns;
        k += len;
    }
    oh = p0 / OW;
    ow = p0 - oh * OW;
    for (p = 0; p < pb; ++p) {
        float* d = bp + p * NR;
        const float* s = xp + oh * SH * Wp + ow * SW;
        for (t = 0; t < ns; ++t)
            copy(d + segs[t].dst, s + segs[t].src, segs[t].len);
        if (nk < NR) zero(d + nk, NR - nk);
        if (++ow == OW) { ow = 0; ++oh; }
    }
}

__attribute__((target("avx512f")))
static void np_pack_b_im2row_z(const float* xp, long Hp, long Wp, long KH, long KW, long SH, long SW,
                               long OW, long p0, long pb, long kr0, long nk, int NR, float* bp)
{ np_pack_b_im2row_body(np_copy_over_z, np_zero_z, xp, Hp, Wp, KH, KW, SH, SW, OW, p0, pb, kr0, nk, NR, bp); }

__attribute__((target("avx2,fma")))
static void np_pack_b_im2row_y(const float* xp, long Hp, long Wp, long KH, long KW, long SH, long SW,
                               long OW, long p0, long pb, long kr0, long nk, int NR, float* bp)
{ np_pack_b_im2row_body(np_copy_over_y, np_zero_y, xp, Hp, Wp, KH, KW, SH, SW, OW, p0, pb, kr0, nk, NR, bp); }

static int32_t np_il_idx[6][16];
static __mmask16 np_il_m23[6], np_il_m45[6];

/* Permutation tables of np_pack_a_rows_z; filled once at import (np_init). */
static void np_init_interleave(void) {
    int q, l;
    for (q = 0; q < 6; ++q) {
        unsigned a = 0, b = 0;
        for (l = 0; l < 16; ++l) {
            int t = 16 * q + l, p = t / 6, rr = t % 6;
            np_il_idx[q][l] = p + 16 * (rr & 1);
            if (rr / 2 == 1) a |= 1u << l;
            if (rr / 2 == 2) b |= 1u << l;
        }
        np_il_m23[q] = (__mmask16)a;
        np_il_m45[q] = (__mmask16)b;
    }
}

/* A panels from M rows of a row-major matrix: ap[mp][k][r] = src[(mp*6 + r)*lds + k],
   rows >= M zero; a 6 x 16 block is interleaved in registers (3 permutes and
   2 blends per output vector). */
__attribute__((target("avx512f")))
static void np_pack_a_rows_z(const float* src, long lds, long M, long kc, float* ap)
{
    long mp, k0, q, r;
    for (mp = 0; mp * 6 < M; ++mp) {
        const float* rows[6];
        float* panel = ap + mp * kc * 6;
        for (r = 0; r < 6; ++r) rows[r] = mp * 6 + r < M ? src + (mp * 6 + r) * lds : NULL;
        for (k0 = 0; k0 < kc; k0 += 16) {
            long len = kc - k0 < 16 ? kc - k0 : 16;
            __mmask16 m = len == 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << len) - 1u);
            __m512 R[6];
            for (r = 0; r < 6; ++r)
                R[r] = rows[r] ? _mm512_maskz_loadu_ps(m, rows[r] + k0) : _mm512_setzero_ps();
            for (q = 0; q < 6; ++q) {
                long done = 16 * q, todo = 6 * len - done;
                __m512i ix;
                __m512 v;
                if (todo <= 0) break;
                ix = _mm512_loadu_si512((const void*)np_il_idx[q]);
                v = _mm512_permutex2var_ps(R[0], ix, R[1]);
                v = _mm512_mask_blend_ps(np_il_m23[q], v, _mm512_permutex2var_ps(R[2], ix, R[3]));
                v = _mm512_mask_blend_ps(np_il_m45[q], v, _mm512_permutex2var_ps(R[4], ix, R[5]));
                if (todo >= 16) _mm512_storeu_ps(panel + k0 * 6 + done, v);
                else _mm512_mask_storeu_ps(panel + k0 * 6 + done, (__mmask16)((1u << todo) - 1u), v);
            }
        }
    }
}

/* out[t*6 + r] = rows[r][t] for t < len (rows[r] NULL: zeros): six rows
   interleaved for an A panel, 16 columns at a time (3 permutes and 2 blends
   per output vector). */
__attribute__((target("avx512f")))
static void np_interleave6_z(const float* const* rows, long len, float* out)
{
    long k0, q, r;
    for (k0 = 0; k0 < len; k0 += 16) {
        long n = len - k0 < 16 ? len - k0 : 16;
        __mmask16 m = n == 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u);
        __m512 R[6];
        for (r = 0; r < 6; ++r)
            R[r] = rows[r] ? _mm512_maskz_loadu_ps(m, rows[r] + k0) : _mm512_setzero_ps();
        for (q = 0; q < 6; ++q) {
            long done = 16 * q, todo = 6 * n - done;
            __m512i ix;
            __m512 v;
            if (todo <= 0) break;
            ix = _mm512_loadu_si512((const void*)np_il_idx[q]);
            v = _mm512_permutex2var_ps(R[0], ix, R[1]);
            v = _mm512_mask_blend_ps(np_il_m23[q], v, _mm512_permutex2var_ps(R[2], ix, R[3]));
            v = _mm512_mask_blend_ps(np_il_m45[q], v, _mm512_permutex2var_ps(R[4], ix, R[5]));
            if (todo >= 16) _mm512_storeu_ps(out + k0 * 6 + done, v);
            else _mm512_mask_storeu_ps(out + k0 * 6 + done, (__mmask16)((1u << todo) - 1u), v);
        }
    }
}

/* A panels of the transposed weight gradient: the im2col matrix itself, rows
   k (all K of them, by panels of 6) against positions p0 .. p0+pb-1, read
   from the padded input (stride 1): ap[mp][p][r] = xp[c][oh + i][ow + j]. */
__attribute__((target("avx512f")))
static void np_pack_a_im2col_s1_z(const float* xp, long Hp, long Wp, long KH, long KW, long OW, long K,
                                  long mp, long p0, long pb, float* ap)
{
    np_run runs[PB_RUNS_MAX];
    int nr = np_runs(p0, pb, OW, runs), t;
    long r, base[6];
    const float* rows[6];
    for (r = 0; r < 6; ++r) {
        long k = mp * 6 + r;
        if (k < K) {
            long c = k / (KH * KW), i = (k / KW) % KH, j = k % KW;
            base[r] = (c * Hp + i) * Wp + j;
        } else {
            base[r] = -1;
        }
    }
    for (t = 0; t < nr; ++t) {
        long off = runs[t].oh * Wp + runs[t].ow;
        for (r = 0; r < 6; ++r) rows[r] = base[r] >= 0 ? xp + base[r] + off : NULL;
        np_interleave6_z(rows, runs[t].len, ap + runs[t].dst * 6);
    }
}

/* B panel from the transposed rows of dy: bp[p][c] = src[c*lds + p] for
   c < nf and p < pb, zero for nf <= c < 64 (16 x 16 blocks transposed in registers). */
__attribute__((target("avx512f")))
static void np_pack_b_transposed_z(const float* src, long lds, long nf, long pb, float* bp)
{
    long p0, c0, r;
    for (p0 = 0; p0 < pb; p0 += 16) {
        long np_ = pb - p0 < 16 ? pb - p0 : 16;
        __mmask16 mp = np_ == 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << np_) - 1u);
        for (c0 = 0; c0 < 64; c0 += 16) {
            __m512 a[16], t[16];
            for (r = 0; r < 16; ++r)
                a[r] = c0 + r < nf ? _mm512_maskz_loadu_ps(mp, src + (c0 + r) * lds + p0) : _mm512_setzero_ps();
            for (r = 0; r < 16; r += 2) {
                t[r] = _mm512_unpacklo_ps(a[r], a[r + 1]);
                t[r + 1] = _mm512_unpackhi_ps(a[r], a[r + 1]);
            }
            for (r = 0; r < 16; r += 4) {
                a[r] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[r]), _mm512_castps_pd(t[r + 2])));
                a[r + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[r]), _mm512_castps_pd(t[r + 2])));
                a[r + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[r + 1]), _mm512_castps_pd(t[r + 3])));
                a[r + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[r + 1]), _mm512_castps_pd(t[r + 3])));
            }
            /* a[4b + s] now holds, in each 128-bit lane L, column 4L + s of rows 4b .. 4b+3 */
            for (r = 0; r < 4; ++r) {
                t[r] = _mm512_shuffle_f32x4(a[r], a[4 + r], 0x88);       /* lanes 0,2 of a[r] | lanes 0,2 of a[4+r] */
                t[4 + r] = _mm512_shuffle_f32x4(a[r], a[4 + r], 0xDD);   /* lanes 1,3 */
                t[8 + r] = _mm512_shuffle_f32x4(a[8 + r], a[12 + r], 0x88);
                t[12 + r] = _mm512_shuffle_f32x4(a[8 + r], a[12 + r], 0xDD);
            }
            for (r = 0; r < 4; ++r) {
                a[r] = _mm512_shuffle_f32x4(t[r], t[8 + r], 0x88);         /* column r */
                a[8 + r] = _mm512_shuffle_f32x4(t[r], t[8 + r], 0xDD);     /* column 8 + r */
                a[4 + r] = _mm512_shuffle_f32x4(t[4 + r], t[12 + r], 0x88); /* column 4 + r */
                a[12 + r] = _mm512_shuffle_f32x4(t[4 + r], t[12 + r], 0xDD);/* column 12 + r */
            }
            for (r = 0; r < np_; ++r)
                _mm512_storeu_ps(bp + (p0 + r) * 64 + c0, a[r]);
        }
    }
}

/* ---- Sliding-window kernels (AVX2): no packing, 8 neighbouring outputs per vector ----
   For stride 1.  The forward pass keeps FB filters x VB vectors of one output row in
   registers and adds one tap (c, i, j) at a time: a broadcast weight times the input
   row shifted by j.  The weight gradient keeps FB filters x JB taps in registers and
   runs over the output positions of a few samples: dy vector times the shifted input
   vector.  Neither packs its operands, which is what dominates the packed GEMM when
   the reduction is short (few input channels) or the output plane is small. */
/* FB filters x NV vectors of outputs.  Vector v reads the input at xr0 + v * xstep (8: the
   next 8 columns of the row; Wp: the next row) and writes y at yo + v * ystep.  Every vector
   holds `lanes` outputs except the last, which holds `last` (partial vectors go through a
   buffer: masked stores are microcoded on AMD Zen). */
__attribute__((target("avx2,fma"), always_inline))
static inline void np_sfwd_tile(const float* xr0, long plane, long Wp, const float* wf, long K,
                                long Cg, long KH, long KW, const float* bias, float* yo, long P,
                                const int FB, const int NV, long xstep, long ystep, long lanes, long last)
{
    __m256 acc[4][4];
    int f, v;
    long c, i, j;
    for (f = 0; f < FB; ++f)
        for (v = 0; v < NV; ++v)
            acc[f][v] = _mm256_setzero_ps();
    for (c = 0; c < Cg; ++c)
        for (i = 0; i < KH; ++i) {
            const float* xr = xr0 + c * plane + i * Wp;
            const float* wr = wf + (c * KH + i) * KW;
            for (j = 0; j < KW; ++j) {
                __m256 xv[4];
                for (v = 0; v < NV; ++v) xv[v] = _mm256_loadu_ps(xr + j + v * xstep);
                for (f = 0; f < FB; ++f) {
                    __m256 wv = _mm256_broadcast_ss(wr + f * K + j);
                    for (v = 0; v < NV; ++v) acc[f][v] = _mm256_fmadd_ps(wv, xv[v], acc[f][v]);
                }
            }
        }
    for (f = 0; f < FB; ++f) {
        /* bias last, as the reference adds it to the finished sum */
        __m256 b = bias ? _mm256_broadcast_ss(bias + f) : _mm256_setzero_ps();
        for (v = 0; v < NV; ++v) {
            __m256 r = bias ? _mm256_add_ps(acc[f][v], b) : acc[f][v];
            long n = v < NV - 1 ? lanes : last;
            if (n == 8) {
                _mm256_storeu_ps(yo + f * P + v * ystep, r);
            } else {
                float t[8];
                _mm256_storeu_ps(t, r);
                memcpy(yo + f * P + v * ystep, t, (size_t)n * sizeof(float));
            }
        }
    }
}

/* Planes at most 8 wide: FB filters x RB output rows (one vector each) per tile, so each
   tap costs RB input loads and FB broadcasts for FB * RB FMAs. */
__attribute__((target("avx2,fma")))
static void np_sliding_fwd_rows_y(const float* xp, long Cg, long Hp, long Wp, const float* w, long Fg,
                                  long KH, long KW, const float* bias, float* y, long OH, long OW)
{
    long K = Cg * KH * KW, P = OH * OW, plane = Hp * Wp, f0, oh;
    for (f0 = 0; f0 < Fg; f0 += 3) {
        int fb = Fg - f0 < 3 ? (int)(Fg - f0) : 3;
        const float* wf = w + f0 * K;
        const float* bf = bias ? bias + f0 : NULL;
        for (oh = 0; oh < OH; oh += 4) {
            int rb = OH - oh < 4 ? (int)(OH - oh) : 4;
            const float* xr = xp + oh * Wp;
            float* yo = y + f0 * P + oh * OW;
#define NP_SFR(FB) switch (rb) {                                                                      \
                case 4: np_sfwd_tile(xr, plane, Wp, wf, K, Cg, KH, KW, bf, yo, P, FB, 4, Wp, OW, OW, OW); break; \
                case 3: np_sfwd_tile(xr, plane, Wp, wf, K, Cg, KH, KW, bf, yo, P, FB, 3, Wp, OW, OW, OW); break; \
                case 2: np_sfwd_tile(xr, plane, Wp, wf, K, Cg, KH, KW, bf, yo, P, FB, 2, Wp, OW, OW, OW); break; \
                default: np_sfwd_tile(xr, plane, Wp, wf, K, Cg, KH, KW, bf, yo, P, FB, 1, Wp, OW, OW, OW); }
            switch (fb) {
                case 3: NP_SFR(3) break;
                case 2: NP_SFR(2) break;
                default: NP_SFR(1)
            }
#undef NP_SFR
        }
    }
}

/* Forward pass of one sample-group: xp is the zero-padded input (Cg, Hp, Wp) followed by
   at least 8 floats of slack (a row's last vector may read up to 7 floats past its end;
   those lanes are never stored); w is (Fg, Cg, KH, KW); y is (Fg, OH, OW).  Planes up to
   8 wide go 4 rows at a time (np_sliding_fwd_rows_y), wider ones by vectors along a row. */
__attribute__((target("avx2,fma")))
static void np_sliding_fwd_y(const float* xp, long Cg, long Hp, long Wp, const float* w, long Fg,
                             long KH, long KW, const float* bias, float* y, long OH, long OW)
{
    long K = Cg * KH * KW, P = OH * OW, plane = Hp * Wp, f0, oh, ow;
    if (OW <= 8) {
        np_sliding_fwd_rows_y(xp, Cg, Hp, Wp, w, Fg, KH, KW, bias, y, OH, OW);
        return;
    }
    for (f0 = 0; f0 < Fg; f0 += 4) {
        long fb = Fg - f0 < 4 ? Fg - f0 : 4;
        const float* wf = w + f0 * K;
        const float* bf = bias ? bias + f0 : NULL;
        for (oh = 0; oh < OH; ++oh) {
            const float* xr = xp + oh * Wp;
            float* yo = y + f0 * P + oh * OW;
            ow = 0;
#define NP_SFWD_ROW(FB)                                                                               \
            /* 3 vectors per tile, but 4 vectors as 2 + 2 (a 1-vector tile is broadcast-bound) */ \
            for (; ow + 24 <= OW && (OW - ow) / 8 != 4; ow += 24)                                    \
                np_sfwd_tile(xr + ow, plane, Wp, wf, K, Cg, KH, KW, bf, yo + ow, P, FB, 3, 8, 8, 8, 8);\
            for (; ow + 16 <= OW; ow += 16)                                                           \
                np_sfwd_tile(xr + ow, plane, Wp, wf, K, Cg, KH, KW, bf, yo + ow, P, FB, 2, 8, 8, 8, 8);\
            for (; ow + 8 <= OW; ow += 8)                                                             \
                np_sfwd_tile(xr + ow, plane, Wp, wf, K, Cg, KH, KW, bf, yo + ow, P, FB, 1, 8, 8, 8, 8);\
            if (ow < OW)                                                                              \
                np_sfwd_tile(xr + ow, plane, Wp, wf, K, Cg, KH, KW, bf, yo + ow, P, FB, 1, 8, 8, OW - ow, OW - ow);
            switch (fb) {
                case 4: NP_SFWD_ROW(4) break;
                case 3: NP_SFWD_ROW(3) break;
                case 2: NP_SFWD_ROW(2) break;
                default: NP_SFWD_ROW(1)
            }
#undef NP_SFWD_ROW
        }
    }
}

__attribute__((target("avx2,fma"), always_inline))
static inline float np_hsum_y(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Tiles of the sliding-window weight gradient: FB filters x JB taps, over sb samples,
   out[f * K + j] += sum over samples and output positions of dy * shifted input.
   Tap j reads the input at xoff[j] (any taps: (c, i, j) of one group, in im2col order)
   relative to each output position.  Full vectors read only inside the rows, in a first
   pass; the last, partial vector of each row goes through masked loads (which never
   touch the masked-off lanes) in a second pass, so no zero * inf from outside a window
   can reach a sum, and the mask occupies no register during the first pass.  (Kept
   live across the main loop, it was the 16th or 17th register: GCC spilled an
   accumulator and the tile ran at half speed.) */
#define NP_SWG_STEP34(LD, OW_) {                                                          \
    __m256 d0 = LD(dr + (OW_)), d1 = LD(dr + P + (OW_)), d2 = LD(dr + 2 * P + (OW_)), xv;  \
    xv = LD(x0 + (OW_)); a00 = _mm256_fmadd_ps(d0, xv, a00); a10 = _mm256_fmadd_ps(d1, xv, a10); a20 = _mm256_fmadd_ps(d2, xv, a20); \
    xv = LD(x1 + (OW_)); a01 = _mm256_fmadd_ps(d0, xv, a01); a11 = _mm256_fmadd_ps(d1, xv, a11); a21 = _mm256_fmadd_ps(d2, xv, a21); \
    xv = LD(x2 + (OW_)); a02 = _mm256_fmadd_ps(d0, xv, a02); a12 = _mm256_fmadd_ps(d1, xv, a12); a22 = _mm256_fmadd_ps(d2, xv, a22); \
    xv = LD(x3 + (OW_)); a03 = _mm256_fmadd_ps(d0, xv, a03); a13 = _mm256_fmadd_ps(d1, xv, a13); a23 = _mm256_fmadd_ps(d2, xv, a23); }
#define NP_SWG_LDU(p) _mm256_loadu_ps(p)
#define NP_SWG_ROWS34(BODY)                                                               \
    for (s = 0; s < sb; ++s) {                                                            \
        const float* xb = xs[s];                                                          \
        const float* dr = ds[s] + doff;                                                   \
        const float *x0 = xb + xoff[0], *x1 = xb + xoff[1], *x2 = xb + xoff[2], *x3 = xb + xoff[3]; \
        for (oh = 0; oh < OH; ++oh, x0 += Wp, x1 += Wp, x2 += Wp, x3 += Wp, dr += OW) { BODY } \
    }

/* The main tile, 3 filters x 4 taps, full vectors only: 12 accumulators, 3 dy and 4 input
   loads per 12 FMAs, written out so that all sixteen vectors stay in registers (GCC's code
   for the generic tile below at this size came out 30 % slower on 16-wide rows).  The
   partial vectors go through the generic tile, 2 taps at a time (with the mask and 12
   accumulators live, one spills). */
__attribute__((target("avx2,fma")))
static void np_swg_tile34(const float* const* xs, const float* const* ds, long sb, const long* xoff, long doff,
                          long Wp, long OH, long OW, long P, float* out, long K)
{
    __m256 a00 = _mm256_setzero_ps(), a01 = a00, a02 = a00, a03 = a00, a10 = a00, a11 = a00, a12 = a00,
           a13 = a00, a20 = a00, a21 = a00, a22 = a00, a23 = a00;
    long s, oh, ow, OW8 = OW & ~7L;
    NP_SWG_ROWS34(for (ow = 0; ow < OW8; ow += 8) NP_SWG_STEP34(NP_SWG_LDU, ow))
    out[0] += np_hsum_y(a00); out[1] += np_hsum_y(a01); out[2] += np_hsum_y(a02); out[3] += np_hsum_y(a03);
    out += K;
    out[0] += np_hsum_y(a10); out[1] += np_hsum_y(a11); out[2] += np_hsum_y(a12); out[3] += np_hsum_y(a13);
    out += K;
    out[0] += np_hsum_y(a20); out[1] += np_hsum_y(a21); out[2] += np_hsum_y(a22); out[3] += np_hsum_y(a23);
}
#undef NP_SWG_ROWS34
#undef NP_SWG_LDU
#undef NP_SWG_STEP34

/* The edge tiles (FB <= 3 filters, JB <= 4 taps), full vectors when `full`, partial ones
   when `tail`. */
__attribute__((target("avx2,fma"), always_inline))
static inline void np_swg_tile(const float* const* xs, const float* const* ds, long sb, const long* xoff, long doff,
                               long Wp, long OH, long OW, long P, float* out, long K,
                               const int FB, const int JB, const int full, const int tail)
{
    __m256 acc[3][4];
    __m256 d[3];
    long s, oh, ow, OW8 = OW & ~7L;
    int f, j;
    for (f = 0; f < FB; ++f)
        for (j = 0; j < JB; ++j)
            acc[f][j] = _mm256_setzero_ps();
    for (s = 0; s < sb && full && OW8 > 0; ++s)
        for (oh = 0; oh < OH; ++oh) {
            const float* xr = xs[s] + oh * Wp;
            const float* dr = ds[s] + doff + oh * OW;
            for (ow = 0; ow < OW8; ow += 8) {
                for (f = 0; f < FB; ++f) d[f] = _mm256_loadu_ps(dr + f * P + ow);
                for (j = 0; j < JB; ++j) {
                    __m256 xv = _mm256_loadu_ps(xr + xoff[j] + ow);
                    for (f = 0; f < FB; ++f) acc[f][j] = _mm256_fmadd_ps(d[f], xv, acc[f][j]);
                }
            }
        }
    if (tail && OW8 < OW) {
        __m256i m = np_mask_y(OW - OW8);
        for (s = 0; s < sb; ++s)
            for (oh = 0; oh < OH; ++oh) {
                const float* xr = xs[s] + oh * Wp + OW8;
                const float* dr = ds[s] + doff + oh * OW + OW8;
                for (f = 0; f < FB; ++f) d[f] = _mm256_maskload_ps(dr + f * P, m);
                for (j = 0; j < JB; ++j) {
                    __m256 xv = _mm256_maskload_ps(xr + xoff[j], m);
                    for (f = 0; f < FB; ++f) acc[f][j] = _mm256_fmadd_ps(d[f], xv, acc[f][j]);
                }
            }
    }
    for (f = 0; f < FB; ++f)
        for (j = 0; j < JB; ++j)
            out[f * K + j] += np_hsum_y(acc[f][j]);
}

/* Weight gradient of samples n0 .. n0+nb-1, all groups, into part (F, K) (overwritten).
   Samples go through in runs of at most sb_max, zero-padded into xbuf (sb_max copies of
   xsz floats) when there is padding; each run adds its sums to part, in sample order. */
__attribute__((target("avx2,fma")))
static void np_sliding_wgrad_y(const float* x, const float* dy, long n0, long nb,
                               long C, long H, long W, long F, long G, long KH, long KW,
                               long PH, long PW, long OH, long OW,
                               float* part, float* xbuf, long xsz, long sb_max)
{
    long Cg = C / G, Fg = F / G, K = Cg * KH * KW, P = OH * OW;
    long Hp = H + 2 * PH, Wp = W + 2 * PW, plane = Hp * Wp;
    int padded = PH > 0 || PW > 0;
    const float* xs[NP_SLIDING_SB];
    const float* ds[NP_SLIDING_SB];
    long grp, s0, s, n, f0, c, k0, h, t;
    memset(part, 0, (size_t)(F * K) * sizeof(float));
    for (grp = 0; grp < G; ++grp) {
        for (s0 = 0; s0 < nb; s0 += sb_max) {
            long sb = nb - s0 < sb_max ? nb - s0 : sb_max;
            for (s = 0; s < sb; ++s) {
                n = n0 + s0 + s;
                const float* xg = x + (n * C + grp * Cg) * H * W;
                ds[s] = dy + (n * F + grp * Fg) * P;
                if (padded) {
                    float* b = xbuf + s * xsz;
                    memset(b, 0, (size_t)(Cg * plane) * sizeof(float));
                    for (c = 0; c < Cg; ++c)
                        for (h = 0; h < H; ++h)
                            memcpy(b + (c * Hp + h + PH) * Wp + PW, xg + (c * H + h) * W, (size_t)W * sizeof(float));
                    xs[s] = b;
                } else {
                    xs[s] = xg;
                }
            }
            /* 3 filters x 4 consecutive im2col rows per tile.  (4 filters x 3 taps of one
               kernel row left a KW = 5 row as tiles of 3 + 2 taps and, with the mask
               live, spilled an accumulator.) */
            for (f0 = 0; f0 < Fg; f0 += 3) {
                int fb = Fg - f0 < 3 ? (int)(Fg - f0) : 3;
                long tc = 0, ti = 0, tj = 0;     /* (c, i, j) of im2col row k0, stepped, not divided */
                for (k0 = 0; k0 < K; k0 += 4) {
                    int jn = K - k0 < 4 ? (int)(K - k0) : 4;
                    long xoff[4] = {0, 0, 0, 0};
                    for (t = 0; t < jn; ++t) {
                        xoff[t] = tc * plane + ti * Wp + tj;
                        if (++tj == KW) { tj = 0; if (++ti == KH) { ti = 0; ++tc; } }
                    }
                    float* out = part + (grp * Fg + f0) * K + k0;
                    if (fb == 3 && jn == 4) {
                        if (OW >= 8)
                            np_swg_tile34(xs, ds, sb, xoff, f0 * P, Wp, OH, OW, P, out, K);
                        if (OW % 8) {
                            np_swg_tile(xs, ds, sb, xoff, f0 * P, Wp, OH, OW, P, out, K, 3, 2, 0, 1);
                            np_swg_tile(xs, ds, sb, xoff + 2, f0 * P, Wp, OH, OW, P, out + 2, K, 3, 2, 0, 1);
                        }
                        continue;
                    }
#define NP_SWG(FB, JB) np_swg_tile(xs, ds, sb, xoff, f0 * P, Wp, OH, OW, P, out, K, FB, JB, 1, 1)
#define NP_SWG_J4(FB) switch (jn) { case 4: NP_SWG(FB, 4); break; case 3: NP_SWG(FB, 3); break; \
                                    case 2: NP_SWG(FB, 2); break; default: NP_SWG(FB, 1); }
                    switch (fb) {
                        case 3: NP_SWG_J4(3) break;
                        case 2: NP_SWG_J4(2) break;
                        default: NP_SWG_J4(1)
                    }
#undef NP_SWG_J4
#undef NP_SWG
                }
            }
        }
    }
}

#else
static void np_init_interleave(void) {}
static void np_pack_b_im2col_s1_z(const float* xp, long Hp, long Wp, long KH, long KW, long OW,
                                  long p0, long ncols, long k0, long kc, int NR, float* bp) {}
static void np_col2im_s1_z(const float* dcol, long ld, long K, long Hp, long Wp, long KH, long KW, long OW,
                           long p0, long ncols, float* dxp) {}
static void np_pack_b_im2row_z(const float* xp, long Hp, long Wp, long KH, long KW, long SH, long SW,
                               long OW, long p0, long pb, long kr0, long nk, int NR, float* bp) {}
static void np_pack_a_rows_z(const float* src, long lds, long M, long kc, float* ap) {}
static double np_sum_z(const float* s, long n) { return 0.0; }
static void np_pack_b_rows_z(const float* src, long lds, long kc, long c0, long ncols, int NR, float* bp) {}
static void np_pack_a_im2col_s1_z(const float* xp, long Hp, long Wp, long KH, long KW, long OW, long K,
                                  long mp, long p0, long pb, float* ap) {}
static void np_pack_b_transposed_z(const float* src, long lds, long nf, long pb, float* bp) {}
static void np_pack_b_im2col_s1_y(const float* xp, long Hp, long Wp, long KH, long KW, long OW,
                                  long p0, long ncols, long k0, long kc, int NR, float* bp) {}
static void np_col2im_s1_y(const float* dcol, long ld, long K, long Hp, long Wp, long KH, long KW, long OW,
                           long p0, long ncols, float* dxp) {}
static void np_pack_b_rows_y(const float* src, long lds, long kc, long c0, long ncols, int NR, float* bp) {}
static void np_pack_b_im2row_y(const float* xp, long Hp, long Wp, long KH, long KW, long SH, long SW,
                               long OW, long p0, long pb, long kr0, long nk, int NR, float* bp) {}
static void np_sliding_fwd_y(const float* xp, long Cg, long Hp, long Wp, const float* w, long Fg,
                             long KH, long KW, const float* bias, float* y, long OH, long OW) {}
static void np_sliding_wgrad_y(const float* x, const float* dy, long n0, long nb,
                               long C, long H, long W, long F, long G, long KH, long KW,
                               long PH, long PW, long OH, long OW,
                               float* part, float* xbuf, long xsz, long sb_max) {}
#endif
#if !NP_SIMD
static void np_ukr_col2im_y(long K, const float* A, const float* B, float* dxp, const long* rowoff,
                            long off0, long off1, int mr) {}
#endif

/* Packers for the SIMD path of ISA level isa (1 AVX2, 2 AVX-512). */
static void np_pack_b_im2col_s1(int isa, const float* xp, long Hp, long Wp, long KH, long KW, long OW,
                                long p0, long ncols, long k0, long kc, int NR, float* bp) {
    if (isa == 2) np_pack_b_im2col_s1_z(xp, Hp, Wp, KH, KW, OW, p0, ncols, k0, kc, NR, bp);
    else np_pack_b_im2col_s1_y(xp, Hp, Wp, KH, KW, OW, p0, ncols, k0, kc, NR, bp);
}
static void np_col2im_s1(int isa, const float* dcol, long ld, long K, long Hp, long Wp, long KH, long KW,
                         long OW, long p0, long ncols, float* dxp) {
    if (isa == 2) np_col2im_s1_z(dcol, ld, K, Hp, Wp, KH, KW, OW, p0, ncols, dxp);
    else np_col2im_s1_y(dcol, ld, K, Hp, Wp, KH, KW, OW, p0, ncols, dxp);
}
static void np_pack_b_rows(int isa, const float* src, long lds, long kc, long c0, long ncols, int NR, float* bp) {
    if (isa == 2) np_pack_b_rows_z(src, lds, kc, c0, ncols, NR, bp);
    else np_pack_b_rows_y(src, lds, kc, c0, ncols, NR, bp);
}
static void np_pack_b_im2row(int isa, const float* xp, long Hp, long Wp, long KH, long KW, long SH, long SW,
                             long OW, long p0, long pb, long kr0, long nk, int NR, float* bp) {
    if (isa == 2) np_pack_b_im2row_z(xp, Hp, Wp, KH, KW, SH, SW, OW, p0, pb, kr0, nk, NR, bp);
    else np_pack_b_im2row_y(xp, Hp, Wp, KH, KW, SH, SW, OW, p0, pb, kr0, nk, NR, bp);
}

#endif /* NEUROPLUG_NP_CONV_H */
