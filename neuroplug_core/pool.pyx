# cython: language_level=3
"""2-D max and mean pooling kernels (NCHW), forward and backward.

Every ``(sample, channel)`` plane is independent, so OpenMP threads take
whole planes and no result depends on the thread count.  Windows that do not
fit at the bottom/right edge are dropped (floor), as in :mod:`neuroplug.ops`.
Max pooling keeps, for each output, the flat index ``row * W + col`` of the
chosen input within its plane; ties go to the first maximum in row-major
order of the window, and a NaN counts as the maximum (as ``numpy.argmax``),
so a diverging network shows NaN instead of hiding it.  Max pooling is
branch-free (random data would mispredict half of the comparisons): a
float32 AVX-512 or AVX2 kernel, chosen at run time, takes 16 or 8 outputs
of a row at a time; elsewhere a scalar loop selects through integer masks.

The Python wrapper in :mod:`neuroplug.backends.cython_ops` validates every
argument; the backward kernel of max pooling additionally skips (and counts)
indices outside the plane, so no input can make it write out of bounds.
"""

from cython.parallel cimport prange
from libc.stdint cimport int64_t
from libc.string cimport memset

from ._fused cimport floating


cdef extern from *:
    """
    /* Max pooling of one plane, branch-free.  A NaN counts as the maximum and the
       first NaN of a window is kept (numpy.argmax); otherwise ties keep the first
       maximum in row-major order of the window. */
    #include <stdint.h>
    #include <string.h>

    #if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__)) && !defined(NEUROPLUG_NO_SIMD)
    #define NP_SIMD 1
    #include <immintrin.h>
    #else
    #define NP_SIMD 0
    #endif

    /* 2 with AVX-512, 1 with AVX2, 0 otherwise. */
    static int np_pool_isa(void) {
    #if NP_SIMD
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx512f")) return 2;
        if (__builtin_cpu_supports("avx2")) return 1;
    #endif
        return 0;
    }

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
    """
    int np_pool_isa() noexcept nogil
    void np_maxpool_plane_f(const float* x, long H, long W, long KH, long KW, long SH, long SW,
                            float* y, int64_t* am, long OH, long OW) noexcept nogil
    void np_maxpool_plane_d(const double* x, long H, long W, long KH, long KW, long SH, long SW,
                            double* y, int64_t* am, long OH, long OW) noexcept nogil
    void np_maxpool_plane_fz(const float* x, long H, long W, long KH, long KW, long SH, long SW,
                             float* y, int64_t* am, long OH, long OW) noexcept nogil
    void np_maxpool_plane_fy(const float* x, long H, long W, long KH, long KW, long SH, long SW,
                             float* y, int64_t* am, long OH, long OW) noexcept nogil


# Vector width of the float32 max-pooling kernel: 2 AVX-512, 1 AVX2, 0 the portable loop.
cdef int _simd_detected = np_pool_isa()
cdef int _simd = _simd_detected


def _init_from_env():
    """``NEUROPLUG_SIMD`` caps the kernel: ``avx2``, or ``blas``/``0``/``none`` for the portable loop."""
    import os

    global _simd
    value = os.environ.get("NEUROPLUG_SIMD", "").strip().lower()
    if value in ("0", "none", "blas"):
        _simd = 0
    elif value == "avx2":
        _simd = min(_simd, 1)


_init_from_env()


def simd_isa():
    """Name of the float32 max-pooling kernel in use: ``"avx512"``, ``"avx2"`` or ``"portable"``."""
    return ("portable", "avx2", "avx512")[_simd]


def set_simd_isa(name):
    """Select the float32 max-pooling kernel (``"avx512"``, ``"avx2"``, ``"portable"``, if the CPU has it).

    Returns the previous name.  For tests and benchmarks; not thread-safe
    with respect to pooling running at the same time.
    """
    global _simd
    levels = {"portable": 0, "avx2": 1, "avx512": 2}
    if name not in levels or levels[name] > _simd_detected:
        raise ValueError(f"kernel must be one of {list(levels)[:_simd_detected + 1]}. Received: {name!r}")
    previous = simd_isa()
    _simd = levels[name]
    return previous


def maxpool2d_forward(
    const floating[:, :, :, ::1] x,     # IN: (N, C, H, W)
    floating[:, :, :, ::1] y,           # OUT: (N, C, OH, OW)
    int64_t[:, :, :, ::1] argmax,       # OUT: (N, C, OH, OW) flat index within the plane
    Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t SH, Py_ssize_t SW,
    int n_threads,
):
    """Max pooling forward pass into ``y`` and ``argmax``."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t OH = y.shape[2], OW = y.shape[3], pl
    if (KH < 1 or KW < 1 or SH < 1 or SW < 1 or KH > H or KW > W
            or OH != (H - KH) // SH + 1 or OW != (W - KW) // SW + 1
            or y.shape[0] != N or y.shape[1] != C
            or argmax.shape[0] != N or argmax.shape[1] != C or argmax.shape[2] != OH or argmax.shape[3] != OW):
        raise ValueError("inconsistent pooling shapes")
    if N * C == 0:
        return
    # The vector kernels keep plane indices in 32-bit lanes.
    cdef int simd = _simd if (floating is float and H * W < 2147483647) else 0
    with nogil:
        for pl in prange(N * C, num_threads=n_threads, schedule="static"):
            if floating is float:
                if simd == 2:
                    np_maxpool_plane_fz(&x[0, 0, 0, 0] + pl * H * W, H, W, KH, KW, SH, SW,
                                        &y[0, 0, 0, 0] + pl * OH * OW, &argmax[0, 0, 0, 0] + pl * OH * OW, OH, OW)
                elif simd == 1:
                    np_maxpool_plane_fy(&x[0, 0, 0, 0] + pl * H * W, H, W, KH, KW, SH, SW,
                                        &y[0, 0, 0, 0] + pl * OH * OW, &argmax[0, 0, 0, 0] + pl * OH * OW, OH, OW)
                else:
                    np_maxpool_plane_f(&x[0, 0, 0, 0] + pl * H * W, H, W, KH, KW, SH, SW,
                                       &y[0, 0, 0, 0] + pl * OH * OW, &argmax[0, 0, 0, 0] + pl * OH * OW, OH, OW)
            else:
                np_maxpool_plane_d(&x[0, 0, 0, 0] + pl * H * W, H, W, KH, KW, SH, SW,
                                   &y[0, 0, 0, 0] + pl * OH * OW, &argmax[0, 0, 0, 0] + pl * OH * OW, OH, OW)


def maxpool2d_backward(
    const floating[:, :, :, ::1] dy,        # IN: (N, C, OH, OW)
    const int64_t[:, :, :, ::1] argmax,     # IN: (N, C, OH, OW)
    floating[:, :, :, ::1] dx,              # OUT: (N, C, H, W)
    int n_threads,
):
    """Route each ``dy`` to its argmax in ``dx``; return the number of indices outside the plane (skipped)."""
    cdef Py_ssize_t N = dx.shape[0], C = dx.shape[1], H = dx.shape[2], W = dx.shape[3]
    cdef Py_ssize_t HW = H * W, M = dy.shape[2] * dy.shape[3], pl, k
    cdef Py_ssize_t bad = 0
    cdef int64_t idx
    cdef floating* dxp
    cdef const floating* dyp
    cdef const int64_t* amp
    if (dy.shape[0] != N or dy.shape[1] != C or argmax.shape[0] != N or argmax.shape[1] != C
            or argmax.shape[2] != dy.shape[2] or argmax.shape[3] != dy.shape[3]):
        raise ValueError("inconsistent pooling shapes")
    if N * C == 0:
        return 0
    with nogil:
        for pl in prange(N * C, num_threads=n_threads, schedule="static"):
            dxp = &dx[0, 0, 0, 0] + pl * HW
            dyp = &dy[0, 0, 0, 0] + pl * M
            amp = &argmax[0, 0, 0, 0] + pl * M
            memset(dxp, 0, HW * sizeof(floating))
            for k in range(M):
                idx = amp[k]
                if idx < 0 or idx >= HW:
                    bad += 1
                else:
                    dxp[idx] += dyp[k]
    return bad


cdef void _meanpool_plane(
    const floating* x, Py_ssize_t H, Py_ssize_t W,
    Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t SH, Py_ssize_t SW,
    floating* y, Py_ssize_t OH, Py_ssize_t OW, floating area,
) noexcept nogil:
    cdef Py_ssize_t oh, ow, i, j, c
    cdef floating s
    cdef const floating* r0
    cdef const floating* r1
    cdef const floating* row
    if KH == 2 and KW == 2 and SH == 2 and SW == 2:
        for oh in range(OH):
            r0 = x + 2 * oh * W
            r1 = r0 + W
            for ow in range(OW):
                c = 2 * ow
                y[oh * OW + ow] = (((r0[c] + r0[c + 1]) + r1[c]) + r1[c + 1]) / area
        return
    for oh in range(OH):
        for ow in range(OW):
            s = 0
            for i in range(KH):
                row = x + (oh * SH + i) * W + ow * SW
                for j in range(KW):
                    s = s + row[j]
            y[oh * OW + ow] = s / area


def meanpool2d_forward(
    const floating[:, :, :, ::1] x,     # IN: (N, C, H, W)
    floating[:, :, :, ::1] y,           # OUT: (N, C, OH, OW)
    Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t SH, Py_ssize_t SW,
    int n_threads,
):
    """Mean pooling forward pass into ``y``."""
    cdef Py_ssize_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3]
    cdef Py_ssize_t OH = y.shape[2], OW = y.shape[3], pl
    cdef floating area = <floating> (KH * KW)
    if (KH < 1 or KW < 1 or SH < 1 or SW < 1 or KH > H or KW > W
            or OH != (H - KH) // SH + 1 or OW != (W - KW) // SW + 1
            or y.shape[0] != N or y.shape[1] != C):
        raise ValueError("inconsistent pooling shapes")
    if N * C == 0:
        return
    with nogil:
        for pl in prange(N * C, num_threads=n_threads, schedule="static"):
            _meanpool_plane(&x[0, 0, 0, 0] + pl * H * W, H, W, KH, KW, SH, SW,
                            &y[0, 0, 0, 0] + pl * OH * OW, OH, OW, area)


def meanpool2d_backward(
    const floating[:, :, :, ::1] dy,    # IN: (N, C, OH, OW)
    floating[:, :, :, ::1] dx,          # OUT: (N, C, H, W)
    Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t SH, Py_ssize_t SW,
    int n_threads,
):
    """Spread each ``dy / (KH * KW)`` over its window in ``dx``."""
    cdef Py_ssize_t N = dx.shape[0], C = dx.shape[1], H = dx.shape[2], W = dx.shape[3]
    cdef Py_ssize_t OH = dy.shape[2], OW = dy.shape[3], HW = H * W, M = OH * OW, pl, oh, ow, i, j
    cdef floating area = <floating> (KH * KW)
    cdef floating share
    cdef floating* dxp
    cdef floating* row
    cdef const floating* dyp
    if (KH < 1 or KW < 1 or SH < 1 or SW < 1 or KH > H or KW > W
            or OH != (H - KH) // SH + 1 or OW != (W - KW) // SW + 1
            or dy.shape[0] != N or dy.shape[1] != C):
        raise ValueError("inconsistent pooling shapes")
    if N * C == 0:
        return
    cdef bint tiling = SH == KH and SW == KW     # windows neither overlap nor leave gaps
    with nogil:
        for pl in prange(N * C, num_threads=n_threads, schedule="static"):
            dxp = &dx[0, 0, 0, 0] + pl * HW
            dyp = &dy[0, 0, 0, 0] + pl * M
            if tiling:
                _meanpool_backward_tiled(dyp, dxp, H, W, KH, KW, OH, OW, area)
                continue
            memset(dxp, 0, HW * sizeof(floating))
            for oh in range(OH):
                for ow in range(OW):
                    share = dyp[oh * OW + ow] / area
                    for i in range(KH):
                        row = dxp + (oh * SH + i) * W + ow * SW
                        for j in range(KW):
                            row[j] += share


cdef void _meanpool_backward_tiled(
    const floating* dy, floating* dx, Py_ssize_t H, Py_ssize_t W, Py_ssize_t KH, Py_ssize_t KW,
    Py_ssize_t OH, Py_ssize_t OW, floating area,
) noexcept nogil:
    """Mean-pool gradient of one plane when the windows tile it: one write per input, zeros at ragged edges."""
    cdef Py_ssize_t oh, ow, i, j, h, covered = OW * KW
    cdef floating* row
    cdef const floating* src
    for oh in range(OH):
        src = dy + oh * OW
        for i in range(KH):
            row = dx + (oh * KH + i) * W
            if KW == 2:
                for ow in range(OW):
                    row[2 * ow] = src[ow] / area
                    row[2 * ow + 1] = src[ow] / area
            else:
                for ow in range(OW):
                    for j in range(KW):
                        row[ow * KW + j] = src[ow] / area
            for j in range(covered, W):
                row[j] = 0
    for h in range(OH * KH, H):
        memset(dx + h * W, 0, W * sizeof(floating))
