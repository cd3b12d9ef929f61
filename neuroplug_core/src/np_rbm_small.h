/* Unpacked small-batch and sparse float32 products of neuroplug_core.rbm (AVX2 + FMA). */
#ifndef NEUROPLUG_NP_RBM_SMALL_H
#define NEUROPLUG_NP_RBM_SMALL_H

/* Unpacked float32 products for small batches (AVX2 + FMA).

   With a batch of m rows, each product of a CD step reads the whole weight
   matrix for only m rows of work.  BLAS copies ("packs") its operands into
   panels before multiplying, so at m = 10 it spent as long copying W as
   multiplying with it.  These kernels read W in place instead:

   np_rbm_dots_y:  out[r*ldo + j] = sum_i A[r*lda + i] B[j*ldb + i]
                   (v W^T: rows of W dotted with rows of v; 4 x 3 dots
                   in 12 accumulators, W read once, A from L1);
   np_rbm_axpy_y:  C[r*ldc + c] = beta C[..] + alpha sum_k A[r*ars + k*aks] B[k*ldb + c]
                   (h W and the CD update H^T V: rows of B scaled by
                   broadcasts of A; 3 rows x 32 columns in 12 accumulators;
                   beta == 0 ignores what C held), over blocks of rows of
                   B; with Wst, the step of the weights in the same pass. */
#include <stdint.h>
#include "np_cpu.h"

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <immintrin.h>
#define NP_RBM_HAVE_Y 1

static int np_rbm_cpu_avx2(void) { return np_cpu_level(1) >= 1; }

__attribute__((target("avx2,fma")))
static inline float np_rbm_hsum_y(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

__attribute__((target("avx2,fma")))
static void np_rbm_dots_y(const float* A, long lda, const float* B, long ldb, float* out, long ldo,
                          long M, long N, long K)
{
    long j0, r0, i, r, j, K8 = K & ~7L;
    for (j0 = 0; j0 < N; j0 += 4) {
        long nj = N - j0 < 4 ? N - j0 : 4;
        const float* b[4];
        for (j = 0; j < 4; ++j) b[j] = B + (j0 + (j < nj ? j : nj - 1)) * ldb;
        for (r0 = 0; r0 < M; r0 += 3) {
            long mr = M - r0 < 3 ? M - r0 : 3;
            const float* a[3];
            __m256 c[3][4];
            float res[3][4];
            for (r = 0; r < 3; ++r) {
                a[r] = A + (r0 + (r < mr ? r : mr - 1)) * lda;
                for (j = 0; j < 4; ++j) c[r][j] = _mm256_setzero_ps();
            }
            for (i = 0; i < K8; i += 8) {
                __m256 b0 = _mm256_loadu_ps(b[0] + i), b1 = _mm256_loadu_ps(b[1] + i);
                __m256 b2 = _mm256_loadu_ps(b[2] + i), b3 = _mm256_loadu_ps(b[3] + i);
                for (r = 0; r < 3; ++r) {
                    __m256 x = _mm256_loadu_ps(a[r] + i);
                    c[r][0] = _mm256_fmadd_ps(x, b0, c[r][0]);
                    c[r][1] = _mm256_fmadd_ps(x, b1, c[r][1]);
                    c[r][2] = _mm256_fmadd_ps(x, b2, c[r][2]);
                    c[r][3] = _mm256_fmadd_ps(x, b3, c[r][3]);
                }
            }
            for (r = 0; r < 3; ++r)
                for (j = 0; j < 4; ++j) {
                    float t = np_rbm_hsum_y(c[r][j]);
                    for (i = K8; i < K; ++i) t += a[r][i] * b[j][i];
                    res[r][j] = t;
                }
            for (r = 0; r < mr; ++r)
                for (j = 0; j < nj; ++j) out[(r0 + r) * ldo + j0 + j] = res[r][j];
        }
    }
}

/* One tile: rows r0 .. r0+mr-1 (mr <= 3), columns c0 .. c0+8*nv-1 (nv <= 4 vectors).
   With Wst (laid out as C), the tile's entries d of C then take the step of the weights:
   step = d - decay Wst;  Wst += step;  C = step mom_next (see _step_weights). */
__attribute__((target("avx2,fma"))) __attribute__((always_inline))
static inline void np_rbm_axpy_tile_y(const float* A, long ars, long aks, const float* B, long ldb,
                                      float* C, long ldc, long r0, long mr, long c0, int nv, long K,
                                      float alpha, float beta, float* Wst, float decay, float mom_next)
{
    __m256 acc[3][4];
    long r, k;
    int v;
    const float* a[3];
    for (r = 0; r < 3; ++r) {
        a[r] = A + (r0 + (r < mr ? r : mr - 1)) * ars;
        for (v = 0; v < 4; ++v) acc[r][v] = _mm256_setzero_ps();
    }
    for (k = 0; k < K; ++k) {
        const float* br = B + k * ldb + c0;
        __m256 bv[4];
        for (v = 0; v < nv; ++v) bv[v] = _mm256_loadu_ps(br + 8 * v);
        for (r = 0; r < 3; ++r) {
            __m256 x = _mm256_broadcast_ss(a[r] + k * aks);
            for (v = 0; v < nv; ++v) acc[r][v] = _mm256_fmadd_ps(x, bv[v], acc[r][v]);
        }
    }
    {
        __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
        __m256 dec = _mm256_set1_ps(decay), mn = _mm256_set1_ps(mom_next);
        /* A constant trip count: with r < mr GCC kept acc in memory and stored all twelve
           accumulators in every iteration of the loop above (store-bound). */
        #pragma GCC unroll 3
        for (r = 0; r < 3; ++r) {
            if (r >= mr) break;
            float* cr = C + (r0 + r) * ldc + c0;
            #pragma GCC unroll 4
            for (v = 0; v < nv; ++v) {
                __m256 t = _mm256_mul_ps(va, acc[r][v]);
                if (beta != 0.0f) t = _mm256_fmadd_ps(vb, _mm256_loadu_ps(cr + 8 * v), t);
                if (Wst != NULL) {
                    float* wr = Wst + (r0 + r) * ldc + c0 + 8 * v;
                    __m256 w = _mm256_loadu_ps(wr);
                    __m256 step = _mm256_fnmadd_ps(dec, w, t);
                    _mm256_storeu_ps(wr, _mm256_add_ps(w, step));
                    t = _mm256_mul_ps(step, mn);
                }
                _mm256_storeu_ps(cr + 8 * v, t);
            }
        }
    }
}

/* Rows of B per block of np_rbm_axpy_y: 64 rows of W (200 KB for MNIST's 784 pixels)
   stay in L2 while every tile of rows reads them, instead of each tile reading a
   32-column strip of all of W from L3 (measured in docs/guide/backends.rst). */
#define NP_RBM_KB 64

__attribute__((target("avx2,fma")))
static void np_rbm_axpy_y(const float* A, long ars, long aks, const float* B, long ldb, float* C, long ldc,
                          long M, long N, long K, float alpha, float beta, float* Wst, float decay,
                          float mom_next)
{
    long c0, r0, r, c, k, k0 = 0, kb, N32 = N & ~31L, N8 = N & ~7L;
    do {
        /* Later blocks add to C; the step waits for the last block. */
        const float* Ab = A + k0 * aks;
        const float* Bb = B + k0 * ldb;
        float bb = k0 == 0 ? beta : 1.0f;
        kb = K - k0 < NP_RBM_KB ? K - k0 : NP_RBM_KB;
        float* ws = k0 + kb >= K ? Wst : NULL;
        for (c0 = 0; c0 < N32; c0 += 32)
            for (r0 = 0; r0 < M; r0 += 3)
                np_rbm_axpy_tile_y(Ab, ars, aks, Bb, ldb, C, ldc, r0, M - r0 < 3 ? M - r0 : 3, c0, 4, kb, alpha,
                                   bb, ws, decay, mom_next);
        for (c0 = N32; c0 < N8; c0 += 8)
            for (r0 = 0; r0 < M; r0 += 3)
                np_rbm_axpy_tile_y(Ab, ars, aks, Bb, ldb, C, ldc, r0, M - r0 < 3 ? M - r0 : 3, c0, 1, kb, alpha,
                                   bb, ws, decay, mom_next);
        for (r = 0; r < M; ++r)
            for (c = N8; c < N; ++c) {
                float t = 0.0f;
                for (k = 0; k < kb; ++k) t += Ab[r * ars + k * aks] * Bb[k * ldb + c];
                t = bb != 0.0f ? alpha * t + bb * C[r * ldc + c] : alpha * t;
                if (ws != NULL) {
                    float step = t - decay * ws[r * ldc + c];
                    ws[r * ldc + c] += step;
                    t = step * mom_next;
                }
                C[r * ldc + c] = t;
            }
        k0 += kb;
    } while (k0 < K);
}

/* Products with the sparse visible rows of a batch, for inputs that are mostly zeros
   (MNIST pixels: 19% nonzero).  The weights are transposed, WT (nv x ld), so that a
   nonzero pixel selects a contiguous row segment, summed in registers over a row's
   nonzeros (16 columns at a time) or a pixel's (8 .. 64 columns, nvv vectors). */
/* out[r*ldo + j] = sum_p val[p] WT[idx[p]*ld + j] for j in [j0, j1), p over row r's nonzeros
   (idx, val[r*cap ... r*cap + cnt[r]); v by rows).  Blocks of 16 columns: one block of WT
   (one cache line per pixel, ~33 KB for the pixels a batch of 100 MNIST digits uses) stays
   in L1 while every row sums its nonzeros' lines in registers, four nonzeros at a time in
   eight accumulators.  Taken by pixels instead (adding a pixel's 64-column segment into
   the rows that use it), the pass loaded and stored every partial sum, and was slower. */
/* One row's sum in the columns [jb, jb + 8 nvv) (nvv = 1 or 2), four nonzeros at a time. */
__attribute__((target("avx2,fma"))) __attribute__((always_inline))
static inline void np_rbm_spmm_row(const int* ix, const float* vx, long n, const float* w, long ld,
                                   float* o, const int nvv)
{
    __m256 a[4][2];
    long p;
    int u, k;
    for (u = 0; u < 4; ++u) a[u][0] = a[u][1] = _mm256_setzero_ps();
    for (p = 0; p + 4 <= n; p += 4) {
        #pragma GCC unroll 4
        for (u = 0; u < 4; ++u) {
            const float* wp = w + (long)ix[p + u] * ld;
            __m256 v = _mm256_broadcast_ss(vx + p + u);
            for (k = 0; k < nvv; ++k) a[u][k] = _mm256_fmadd_ps(v, _mm256_loadu_ps(wp + 8 * k), a[u][k]);
        }
    }
    for (; p < n; ++p) {
        const float* wp = w + (long)ix[p] * ld;
        __m256 v = _mm256_broadcast_ss(vx + p);
        for (k = 0; k < nvv; ++k) a[0][k] = _mm256_fmadd_ps(v, _mm256_loadu_ps(wp + 8 * k), a[0][k]);
    }
    for (k = 0; k < nvv; ++k)
        _mm256_storeu_ps(o + 8 * k, _mm256_add_ps(_mm256_add_ps(a[0][k], a[1][k]), _mm256_add_ps(a[2][k], a[3][k])));
}

__attribute__((target("avx2,fma")))
static void np_rbm_spmm_y(const int* cnt, long cap, const int* idx, const float* val, long m,
                          const float* WT, long ld, float* out, long ldo, long j0, long j1)
{
    long jb, r, p, j;
    for (jb = j0; jb + 8 <= j1; jb += 16)
        for (r = 0; r < m; ++r) {
            if (jb + 16 <= j1)
                np_rbm_spmm_row(idx + r * cap, val + r * cap, cnt[r], WT + jb, ld, out + r * ldo + jb, 2);
            else
                np_rbm_spmm_row(idx + r * cap, val + r * cap, cnt[r], WT + jb, ld, out + r * ldo + jb, 1);
        }
    jb = j0 + (j1 - j0) / 8 * 8;
    for (r = 0; r < m; ++r)
        for (j = jb; j < j1; ++j) {
            float t = 0.0f;
            for (p = r * cap; p < r * cap + cnt[r]; ++p) t += val[p] * WT[(long)idx[p] * ld + j];
            out[r * ldo + j] = t;
        }
}

/* One step of the weights in the columns [jb, jb + 8 nvv) of row i:
   d = beta DT + scale acc;  step = d - decay WT;  WT += step;  DT = step mom_next. */
__attribute__((target("avx2,fma"))) __attribute__((always_inline))
static inline void np_rbm_step_blk(float* DT, float* WT, const __m256* acc, __m256 s, float beta, float decay,
                                   float mom_next, const int nvv)
{
    int k;
    const __m256 dec = _mm256_set1_ps(decay), mn = _mm256_set1_ps(mom_next), b = _mm256_set1_ps(beta);
    #pragma GCC unroll 8
    for (k = 0; k < nvv; ++k) {
        __m256 d = _mm256_fmadd_ps(s, acc[k], _mm256_mul_ps(b, _mm256_loadu_ps(DT + 8 * k)));
        __m256 w = _mm256_loadu_ps(WT + 8 * k);
        __m256 step = _mm256_fnmadd_ps(dec, w, d);
        _mm256_storeu_ps(WT + 8 * k, _mm256_add_ps(w, step));
        _mm256_storeu_ps(DT + 8 * k, _mm256_mul_ps(step, mn));
    }
}

/* acc[0 .. nvv) += sum_q cval[q] H[ridx[q]*ldh + jb ...], q over pixel i's column list. */
__attribute__((target("avx2,fma"))) __attribute__((always_inline))
static inline void np_rbm_spcol_acc(__m256* acc, const int* ccnt, long ccap, const int* ridx, const float* cval,
                                    long i, const float* H, long ldh, long jb, const int nvv)
{
    long q;
    int k;
    for (q = i * ccap; q < i * ccap + ccnt[i]; ++q) {
        const float* h = H + (long)ridx[q] * ldh + jb;
        __m256 v = _mm256_set1_ps(cval[q]);
        #pragma GCC unroll 8
        for (k = 0; k < nvv; ++k) acc[k] = _mm256_fmadd_ps(v, _mm256_loadu_ps(h + 8 * k), acc[k]);
    }
}

__attribute__((target("avx2,fma"))) __attribute__((always_inline))
static inline void np_rbm_spger_blk(const int* ccnt, long ccap, const int* ridx, const float* cval,
                                    const int* ccnt2, const int* ridx2, const float* cval2, long nv,
                                    const float* H, const float* H2, long ldh, float scale, float* DT,
                                    float* WT, long ld, long jb, float beta, float decay, float mom_next,
                                    const int nvv)
{
    long i;
    int k;
    const __m256 s = _mm256_set1_ps(scale);
    for (i = 0; i < nv; ++i) {
        __m256 acc[8];
        #pragma GCC unroll 8
        for (k = 0; k < nvv; ++k) acc[k] = _mm256_setzero_ps();
        np_rbm_spcol_acc(acc, ccnt, ccap, ridx, cval, i, H, ldh, jb, nvv);
        if (ccnt2 != NULL) np_rbm_spcol_acc(acc, ccnt2, ccap, ridx2, cval2, i, H2, ldh, jb, nvv);
        np_rbm_step_blk(DT + i * ld + jb, WT + i * ld + jb, acc, s, beta, decay, mom_next, nvv);
    }
}

/* The update of transposed weights, for j in [j0, j1):
   DT[i*ld + j] = beta DT[i*ld + j] + scale (sum_q cval[q] H[ridx[q]*ldh + j] + sum_q cval2[q] H2[ridx2[q]*ldh + j]),
   q over pixel i's nonzeros (ridx, cval[i*ccap ... i*ccap + ccnt[i]): the positive phase
   v0^T h0, transposed; the second list, when ccnt2 is not NULL, the negative phase
   vk^T (-hk) of sampled visible states), then the step of WT and DT in the same pass
   (see np_rbm_step_blk).  Without a second list DT already holds the negative phase. */
__attribute__((target("avx2,fma")))
static void np_rbm_spger_y(const int* ccnt, long ccap, const int* ridx, const float* cval,
                           const int* ccnt2, const int* ridx2, const float* cval2, long nv,
                           const float* H, const float* H2, long ldh, float scale, float* DT, float* WT, long ld,
                           long j0, long j1, float beta, float decay, float mom_next)
{
    long jb = j0, i, q, j;
    /* With two lists, 32 columns of the rows of H and H2 fill L1 as 64 of H alone do. */
    for (; ccnt2 == NULL && jb + 64 <= j1; jb += 64)
        np_rbm_spger_blk(ccnt, ccap, ridx, cval, ccnt2, ridx2, cval2, nv, H, H2, ldh, scale, DT, WT, ld, jb,
                         beta, decay, mom_next, 8);
    for (; jb + 32 <= j1; jb += 32)
        np_rbm_spger_blk(ccnt, ccap, ridx, cval, ccnt2, ridx2, cval2, nv, H, H2, ldh, scale, DT, WT, ld, jb,
                         beta, decay, mom_next, 4);
    if (jb + 16 <= j1) {
        np_rbm_spger_blk(ccnt, ccap, ridx, cval, ccnt2, ridx2, cval2, nv, H, H2, ldh, scale, DT, WT, ld, jb,
                         beta, decay, mom_next, 2);
        jb += 16;
    }
    if (jb + 8 <= j1) {
        np_rbm_spger_blk(ccnt, ccap, ridx, cval, ccnt2, ridx2, cval2, nv, H, H2, ldh, scale, DT, WT, ld, jb,
                         beta, decay, mom_next, 1);
        jb += 8;
    }
    for (i = 0; i < nv; ++i)
        for (j = jb; j < j1; ++j) {
            float t = 0.0f;
            for (q = i * ccap; q < i * ccap + ccnt[i]; ++q) t += cval[q] * H[(long)ridx[q] * ldh + j];
            if (ccnt2 != NULL)
                for (q = i * ccap; q < i * ccap + ccnt2[i]; ++q) t += cval2[q] * H2[(long)ridx2[q] * ldh + j];
            float d = beta * DT[i * ld + j] + scale * t;
            float step = d - decay * WT[i * ld + j];
            WT[i * ld + j] += step;
            DT[i * ld + j] = step * mom_next;
        }
}
/* The nonzeros of v[0 .. n): positions and values, packed eight at a time (a compare, a
   movemask, and a permutation from a table of the 256 masks); returns their count.  Writes
   up to 8 entries past the count, within pos[0 .. n) and val[0 .. n). */
static int np_rbm_pack_lut[256][8];

static void np_rbm_pack_init(void) {
    int mask, b, c;
    for (mask = 0; mask < 256; ++mask) {
        for (b = 0, c = 0; b < 8; ++b)
            if (mask & (1 << b)) np_rbm_pack_lut[mask][c++] = b;
        for (; c < 8; ++c) np_rbm_pack_lut[mask][c] = 0;
    }
}

__attribute__((target("avx2,fma")))
static int np_rbm_compact_y(const float* v, int n, int* pos, float* val)
{
    int k, c = 0;
    const __m256 zero = _mm256_setzero_ps();
    for (k = 0; k + 8 <= n; k += 8) {
        __m256 x = _mm256_loadu_ps(v + k);
        int mask = _mm256_movemask_ps(_mm256_cmp_ps(x, zero, _CMP_NEQ_UQ));
        __m256i perm = _mm256_loadu_si256((const __m256i*)np_rbm_pack_lut[mask]);
        _mm256_storeu_ps(val + c, _mm256_permutevar8x32_ps(x, perm));
        _mm256_storeu_si256((__m256i*)(pos + c), _mm256_add_epi32(perm, _mm256_set1_epi32(k)));
        c += __builtin_popcount(mask);
    }
    for (; k < n; ++k) {
        pos[c] = k;
        val[c] = v[k];
        c += v[k] != 0;
    }
    return c;
}
#else
#define NP_RBM_HAVE_Y 0
static int np_rbm_cpu_avx2(void) { return 0; }
static void np_rbm_pack_init(void) {}
static int np_rbm_compact_y(const float* v, int n, int* pos, float* val) { return 0; }
static void np_rbm_spmm_y(const int* cnt, long cap, const int* idx, const float* val, long m,
                          const float* WT, long ld, float* out, long ldo, long j0, long j1) {}
static void np_rbm_spger_y(const int* ccnt, long ccap, const int* ridx, const float* cval,
                           const int* ccnt2, const int* ridx2, const float* cval2, long nv,
                           const float* H, const float* H2, long ldh, float scale, float* DT, float* WT, long ld,
                           long j0, long j1, float beta, float decay, float mom_next) {}
static void np_rbm_dots_y(const float* A, long lda, const float* B, long ldb, float* out, long ldo,
                          long M, long N, long K) {}
static void np_rbm_axpy_y(const float* A, long ars, long aks, const float* B, long ldb, float* C, long ldc,
                          long M, long N, long K, float alpha, float beta, float* Wst, float decay,
                          float mom_next) {}
#endif

#endif /* NEUROPLUG_NP_RBM_SMALL_H */
