# cython: language_level=3
"""Winograd F(2x2, 3x3) convolution: 3x3 kernels, stride 1, float32, AVX2+FMA.

A 3x3 correlation computes each 2x2 block of outputs from a 4x4 block of
input ("tile") with 16 multiplications per input/output channel pair instead
of 36 (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks",
2016):

    Y = A^T [ (G g G^T) * (B^T d B) ] A

with ``g`` the 3x3 filter, ``d`` the 4x4 input tile and ``*`` elementwise.
Summed over input channels, the elementwise products become 16 independent
matrix products, one per tile element xi:
``M[xi] (F x tiles) = U[xi] (F x C) @ V[xi] (C x tiles)``.

The transforms of this variant use only 0, +-1 and +-1/2, so the results
agree with direct summation to float32 rounding (no loss of accuracy, unlike
the larger F(4x4, 3x3) tiles).

Work is split into jobs of one sample and a band of tile rows, small enough
that the transformed input of a band (``V``, 16 x C x tiles) and the
transformed weights (``U``, shared) stay in the L2 cache; for every panel of
16 tiles and 6 filters the 16 products go to a 6 KB buffer that the output
transform turns straight into the output rows.  Jobs are spread over OpenMP
threads and write disjoint outputs: results do not depend on the thread
count.

The same kernel computes the input gradient of a 3x3 stride-1 layer with
padding up to 2: ``dx`` is the correlation of ``dy``, zero-padded by
``2 - padding``, with the flipped, transposed weights.

Only the callers in :mod:`neuroplug.backends.cython_ops` check arguments
(DESIGN rule 4); here only internal consistency is checked.
"""

from cython.parallel cimport prange, threadid
from libc.string cimport memcpy, memset


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
    /* Elements 0, 2, ..., 14 (even) or 1, 3, ..., 15 (odd) of the 16 floats a:b, in order. */
    __attribute__((target("avx2,fma")))
    static inline __m256 wg_even(__m256 a, __m256 b) {
        __m256 s = _mm256_shuffle_ps(a, b, 0x88);
        return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(s), 0xD8));
    }

    __attribute__((target("avx2,fma")))
    static inline __m256 wg_odd(__m256 a, __m256 b) {
        __m256 s = _mm256_shuffle_ps(a, b, 0xDD);
        return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(s), 0xD8));
    }

    /* V = B^T d B for the tiles of one band.  xp holds C planes of (2 * nty + 2) rows of
       Wp >= 2 * TWp + 2 floats (zero-padded input); tile (ty, tx) starts at row 2 ty,
       column 2 tx.  Tiles are numbered t = ty * TWp + tx and 8 neighbours (TWp % 8 == 0)
       go through the vector lanes together.  V is laid out [xi][t / 16][c][t % 16], the B
       panels of the micro-kernel; the lanes past the last tile are zeroed. */
    __attribute__((target("avx2,fma")))
    static void wg_input_transform(const float* xp, long C, long Wp, long nty, long TWp, long ntp, float* V)
    {
        const long plane = (2 * nty + 2) * Wp, xs = ntp * C * WG_NR;
        long c, ty, tx, i, xi;
        for (c = 0; c < C; ++c) {
            for (ty = 0; ty < nty; ++ty) {
                for (tx = 0; tx < TWp; tx += 8) {
                    const float* r = xp + c * plane + 2 * ty * Wp + 2 * tx;
                    __m256 e[4][4];
                    for (i = 0; i < 4; ++i) {
                        const float* ri = r + i * Wp;
                        __m256 a = _mm256_loadu_ps(ri), b = _mm256_loadu_ps(ri + 8);
                        __m256 a2 = _mm256_loadu_ps(ri + 2), b2 = _mm256_loadu_ps(ri + 10);
                        __m256 d0 = wg_even(a, b), d1 = wg_odd(a, b);
                        __m256 d2 = wg_even(a2, b2), d3 = wg_odd(a2, b2);
                        e[i][0] = _mm256_sub_ps(d0, d2);
                        e[i][1] = _mm256_add_ps(d1, d2);
                        e[i][2] = _mm256_sub_ps(d2, d1);
                        e[i][3] = _mm256_sub_ps(d1, d3);
                    }
                    long t = ty * TWp + tx;
                    float* v = V + ((t >> 4) * C + c) * WG_NR + (t & 15);
                    for (i = 0; i < 4; ++i) {
                        _mm256_store_ps(v + (0 + i) * xs, _mm256_sub_ps(e[0][i], e[2][i]));
                        _mm256_store_ps(v + (4 + i) * xs, _mm256_add_ps(e[1][i], e[2][i]));
                        _mm256_store_ps(v + (8 + i) * xs, _mm256_sub_ps(e[2][i], e[1][i]));
                        _mm256_store_ps(v + (12 + i) * xs, _mm256_sub_ps(e[1][i], e[3][i]));
                    }
                }
            }
        }
        if ((nty * TWp) & 15) {      /* a half-empty last panel: zero lanes 8..15 */
            for (xi = 0; xi < 16; ++xi)
                for (c = 0; c < C; ++c)
                    _mm256_store_ps(V + xi * xs + ((ntp - 1) * C + c) * WG_NR + 8, _mm256_setzero_ps());
        }
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

    /* Store 16 floats lo:hi at y, only the first n (n <= 16) of them. */
    __attribute__((target("avx2,fma")))
    static inline void wg_store_row(float* y, __m256 lo, __m256 hi, long n)
    {
        if (n >= 16) {
            _mm256_storeu_ps(y, lo);
            _mm256_storeu_ps(y + 8, hi);
        } else {
            float t[16] __attribute__((aligned(32)));
            _mm256_store_ps(t, lo);
            _mm256_store_ps(t + 8, hi);
            memcpy(y, t, n * sizeof(float));
        }
    }

    /* Y = A^T M A (+ bias) for filter rows r < mr of one panel's buffer buf[xi][r][16]: the
       outputs of 16 tiles (t0 ...) of a band starting at tile row ty0, written to y (filter
       row r at y + r * OH * OW).  Tiles past ntiles or past the output are skipped. */
    __attribute__((target("avx2,fma")))
    static void wg_output_transform(const float* buf, int mr, const float* bias, float* y,
                                    long OH, long OW, long ty0, long TWp, long t0, long ntiles)
    {
        int r, h, i;
        for (r = 0; r < mr; ++r) {
            __m256 bv = _mm256_set1_ps(bias ? bias[r] : 0.0f);
            float* yr = y + r * OH * OW;
            for (h = 0; h < 2; ++h) {
                long t = t0 + 8 * h;
                if (t >= ntiles)
                    break;
                long ty = ty0 + t / TWp, tx = t % TWp, n = OW - 2 * tx;
                if (n <= 0)
                    continue;
                __m256 f0[4], f1[4];
                for (i = 0; i < 4; ++i) {
                    const float* m = buf + (4 * i * WG_MR + r) * WG_NR + 8 * h;
                    __m256 m0 = _mm256_load_ps(m), m1 = _mm256_load_ps(m + WG_MR * WG_NR);
                    __m256 m2 = _mm256_load_ps(m + 2 * WG_MR * WG_NR), m3 = _mm256_load_ps(m + 3 * WG_MR * WG_NR);
                    f0[i] = _mm256_add_ps(_mm256_add_ps(m0, m1), m2);
                    f1[i] = _mm256_sub_ps(_mm256_sub_ps(m1, m2), m3);
                }
                __m256 y00 = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(f0[0], f0[1]), f0[2]), bv);
                __m256 y01 = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(f1[0], f1[1]), f1[2]), bv);
                __m256 y10 = _mm256_add_ps(_mm256_sub_ps(_mm256_sub_ps(f0[1], f0[2]), f0[3]), bv);
                __m256 y11 = _mm256_add_ps(_mm256_sub_ps(_mm256_sub_ps(f1[1], f1[2]), f1[3]), bv);
                /* interleave: tile k's two outputs of a row go to columns 2 (tx + k) and + 1 */
                __m256 lo = _mm256_unpacklo_ps(y00, y01), hi = _mm256_unpackhi_ps(y00, y01);
                wg_store_row(yr + 2 * ty * OW + 2 * tx, _mm256_permute2f128_ps(lo, hi, 0x20),
                             _mm256_permute2f128_ps(lo, hi, 0x31), n);
                if (2 * ty + 1 < OH) {
                    lo = _mm256_unpacklo_ps(y10, y11);
                    hi = _mm256_unpackhi_ps(y10, y11);
                    wg_store_row(yr + (2 * ty + 1) * OW + 2 * tx, _mm256_permute2f128_ps(lo, hi, 0x20),
                                 _mm256_permute2f128_ps(lo, hi, 0x31), n);
                }
            }
        }
    }
    #else
    static void wg_input_transform(const float* xp, long C, long Wp, long nty, long TWp, long ntp, float* V) {}
    static void wg_ukr(long C, const float* A, const float* B, float* buf) {}
    static void wg_output_transform(const float* buf, int mr, const float* bias, float* y,
                                    long OH, long OW, long ty0, long TWp, long t0, long ntiles) {}
    #endif /* WG_SIMD */
    """
    int wg_cpu_ok() noexcept nogil
    float* wg_align64(float* p) noexcept nogil
    void wg_input_transform(const float* xp, long C, long Wp, long nty, long TWp, long ntp, float* V) noexcept nogil
    void wg_ukr(long C, const float* A, const float* B, float* buf) noexcept nogil
    void wg_output_transform(const float* buf, int mr, const float* bias, float* y,
                             long OH, long OW, long ty0, long TWp, long t0, long ntiles) noexcept nogil


cdef bint _cpu_ok = wg_cpu_ok()

cdef enum:
    MR = 6
    NR = 16
    ALIGN_PAD = 16        # floats to align a buffer to 64 bytes
    SLACK = 16            # floats after the padded band that the vector loads may touch
    BAND_FLOATS = 32768   # transformed input of one band (16 x C x tiles floats): 128 KiB


def available():
    """Whether this CPU runs the kernels (x86 with AVX2 and FMA)."""
    return bool(_cpu_ok)


# Where the Winograd kernels run: 0 never, 1 where they pay (the default), 2 wherever they apply.
cdef int _mode = 1
_MODES = {"never": 0, "auto": 1, "always": 2}


def set_winograd(mode):
    """Select where the Winograd kernels run: ``"auto"`` (default), ``"always"`` or ``"never"``.

    ``"always"`` and ``"never"`` are for tests and benchmarks (also settable
    before import with ``NEUROPLUG_WINOGRAD``).  Returns the previous mode.
    Not thread-safe with respect to convolutions running at the same time.
    """
    global _mode
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {list(_MODES)}. Received: {mode!r}")
    previous = [k for k, v in _MODES.items() if v == _mode][0]
    _mode = _MODES[mode]
    return previous


def _init_mode_from_env():
    """Honour ``NEUROPLUG_WINOGRAD`` (``auto``, ``always``, ``never``), for tests and benchmarks."""
    import os

    value = os.environ.get("NEUROPLUG_WINOGRAD", "").strip().lower()
    if value in _MODES:
        set_winograd(value)


_init_mode_from_env()


def pays(int kind, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t F, Py_ssize_t KH, Py_ssize_t KW,
         Py_ssize_t SH, Py_ssize_t SW, Py_ssize_t PH, Py_ssize_t PW, Py_ssize_t G, bint simd):
    """Whether a float32 call of ``kind`` (0 forward, 1 input gradient) runs here.

    They apply to one group of 3x3 filters with stride 1 (the input
    gradient: padding up to 2) where ``simd`` (the SIMD kernels of
    :mod:`neuroplug_core.conv` are enabled) and the CPU has AVX2+FMA.
    Measured against those kernels (AVX2, 2 threads), they win from 8 input
    channels up ((c): 16.2 -> 10.1 ms; 64x64x16x16 64@3x3: 8.5 -> 5.3 ms)
    but lose where the rows of tiles leave a quarter or more of their
    8-tile vectors empty (output rows under 11 wide: 8x8 planes 2.4 -> 2.6
    ms, 4x4 planes 1.5 -> 2.4 ms) and with fewer channels (3 channels: the
    sliding kernels take 1.9 ms, these 2.6 ms).
    """
    if _mode == 0 or not _cpu_ok or not simd or KH != 3 or KW != 3 or SH != 1 or SW != 1 or G != 1:
        return False
    if kind == 1 and (PH > 2 or PW > 2):
        return False
    if _mode == 2:
        return True
    cdef Py_ssize_t cin = C if kind == 0 else F
    cdef Py_ssize_t width = W + 2 * PW - 2 if kind == 0 else W   # output rows of this call
    cdef Py_ssize_t tiles = (width + 1) // 2
    return cin >= 8 and tiles / (8.0 * ((tiles + 7) // 8)) >= 0.75


cdef struct WGeom:
    Py_ssize_t N, C, H, W, F, PH, PW
    Py_ssize_t OH, OW, TH, TWp      # output plane; tile rows, tiles per row (a multiple of 8)
    Py_ssize_t nty, nbands, ntp     # tile rows per band, bands per sample, 16-tile panels per band
    Py_ssize_t Wp, xband, vsize     # padded band: row length, floats; V floats
    Py_ssize_t nfp                  # panels of MR filters
    Py_ssize_t shared, per_thread   # workspace floats


cdef WGeom _wgeom(Py_ssize_t N, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t F,
                  Py_ssize_t PH, Py_ssize_t PW) except *:
    cdef WGeom g
    if min(N, C, H, W, F) < 1 or min(PH, PW) < 0:
        raise ValueError("invalid convolution geometry")
    g.N = N; g.C = C; g.H = H; g.W = W; g.F = F; g.PH = PH; g.PW = PW
    g.OH = H + 2 * PH - 2
    g.OW = W + 2 * PW - 2
    if g.OH < 1 or g.OW < 1:
        raise ValueError("kernel larger than the padded input")
    g.TH = (g.OH + 1) // 2
    g.TWp = ((g.OW + 1) // 2 + 7) // 8 * 8
    # Bands of whole tile rows whose transform fits BAND_FLOATS (at least one row).
    g.nty = max(1, min(g.TH, BAND_FLOATS // (16 * C * g.TWp)))
    g.nbands = (g.TH + g.nty - 1) // g.nty
    g.ntp = (g.nty * g.TWp + NR - 1) // NR
    g.Wp = 2 * g.TWp + 2
    g.xband = C * (2 * g.nty + 2) * g.Wp
    g.vsize = 16 * g.ntp * C * NR
    g.nfp = (F + MR - 1) // MR
    g.shared = 16 * g.nfp * C * MR + ALIGN_PAD
    g.per_thread = (g.xband + SLACK + ALIGN_PAD) + (g.vsize + ALIGN_PAD) + (16 * MR * NR + ALIGN_PAD)
    return g


def workspace(Py_ssize_t N, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t F,
              Py_ssize_t PH, Py_ssize_t PW, int n_threads):
    """Scratch floats that :func:`conv3x3_forward` needs on ``n_threads`` threads."""
    cdef WGeom g = _wgeom(N, C, H, W, F, PH, PW)
    return g.shared + g.per_thread * max(1, n_threads)


cdef void _transform_weights(const float[:, :, :, ::1] w, const WGeom* g, float* U) noexcept nogil:
    """U = G w G^T, packed [xi][filter panel][c][MR] (rows past F zero)."""
    cdef Py_ssize_t f, c, i, xi
    cdef float t[4][3]
    cdef float u
    memset(U, 0, 16 * g.nfp * g.C * MR * sizeof(float))
    for f in range(g.F):
        for c in range(g.C):
            # t = G w, G = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]
            for i in range(3):
                t[0][i] = w[f, c, 0, i]
                t[1][i] = 0.5 * (w[f, c, 0, i] + w[f, c, 1, i] + w[f, c, 2, i])
                t[2][i] = 0.5 * (w[f, c, 0, i] - w[f, c, 1, i] + w[f, c, 2, i])
                t[3][i] = w[f, c, 2, i]
            for i in range(4):
                for xi in range(4):
                    if xi == 0:
                        u = t[i][0]
                    elif xi == 1:
                        u = 0.5 * (t[i][0] + t[i][1] + t[i][2])
                    elif xi == 2:
                        u = 0.5 * (t[i][0] - t[i][1] + t[i][2])
                    else:
                        u = t[i][2]
                    U[(((4 * i + xi) * g.nfp + f // MR) * g.C + c) * MR + f % MR] = u


cdef void _band(const float* x, const float* U, const float* bias, float* y, const WGeom* g,
                Py_ssize_t job, float* xb, float* V, float* buf) noexcept nogil:
    """One job: sample ``job // nbands``, band ``job % nbands`` of tile rows."""
    cdef Py_ssize_t n = job // g.nbands, ty0 = (job % g.nbands) * g.nty
    cdef Py_ssize_t nty = min(g.nty, g.TH - ty0), ntiles = nty * g.TWp
    cdef Py_ssize_t ntp = (ntiles + NR - 1) // NR, rows = 2 * nty + 2
    cdef Py_ssize_t c, rr, h, tp, fp, xi
    cdef const float* src
    cdef float* dst
    # The band's input rows 2 ty0 - PH ..., zero-padded to rows x Wp per channel.
    memset(xb, 0, g.C * rows * g.Wp * sizeof(float))
    for c in range(g.C):
        src = x + (n * g.C + c) * g.H * g.W
        for rr in range(rows):
            h = 2 * ty0 + rr - g.PH
            if 0 <= h < g.H:
                dst = xb + (c * rows + rr) * g.Wp + g.PW
                memcpy(dst, src + h * g.W, min(g.W, g.Wp - g.PW) * sizeof(float))
    # V panels are laid out for the band's own ntp (its last band may be shorter).
    wg_input_transform(xb, g.C, g.Wp, nty, g.TWp, ntp, V)
    for tp in range(ntp):
        for fp in range(g.nfp):
            for xi in range(16):
                wg_ukr(g.C, U + (xi * g.nfp + fp) * g.C * MR, V + (xi * ntp + tp) * g.C * NR, buf + xi * MR * NR)
            wg_output_transform(buf, <int> min(<Py_ssize_t> MR, g.F - fp * MR),
                                bias + fp * MR if bias != NULL else NULL,
                                y + (n * g.F + fp * MR) * g.OH * g.OW, g.OH, g.OW, ty0, g.TWp, tp * NR, ntiles)


def conv3x3_forward(
    const float[:, :, :, ::1] x,      # IN: (N, C, H, W)
    const float[:, :, :, ::1] w,      # IN: (F, C, 3, 3)
    const float[::1] b,               # IN: (F,) bias, or empty for none
    float[:, :, :, ::1] y,            # OUT: (N, F, H + 2 PH - 2, W + 2 PW - 2)
    Py_ssize_t PH, Py_ssize_t PW,
    int n_threads,
    float[::1] work,                  # scratch: workspace(...) floats
):
    """Stride-1 3x3 correlation (one group) into ``y`` by Winograd F(2x2, 3x3)."""
    if not _cpu_ok:
        raise RuntimeError("the Winograd kernels need a CPU with AVX2 and FMA")
    cdef WGeom g = _wgeom(x.shape[0], x.shape[1], x.shape[2], x.shape[3], w.shape[0], PH, PW)
    if w.shape[1] != g.C or w.shape[2] != 3 or w.shape[3] != 3:
        raise ValueError("inconsistent convolution shapes")
    if y.shape[0] != g.N or y.shape[1] != g.F or y.shape[2] != g.OH or y.shape[3] != g.OW:
        raise ValueError("inconsistent convolution shapes")
    if b.shape[0] not in (0, g.F):
        raise ValueError("bias has the wrong length")
    if n_threads < 1:
        raise ValueError(f"n_threads must be >= 1. Received: n_threads={n_threads}")
    if work.shape[0] < g.shared + g.per_thread * n_threads:
        raise ValueError(f"workspace too small: {work.shape[0]} < {g.shared} + {g.per_thread} x {n_threads}")
    cdef float* U = wg_align64(&work[0])
    cdef float* tw = &work[0] + g.shared
    cdef const float* bias = &b[0] if b.shape[0] > 0 else NULL
    cdef float* xb
    cdef float* V
    cdef Py_ssize_t job
    with nogil:
        _transform_weights(w, &g, U)
        for job in prange(g.N * g.nbands, num_threads=n_threads, schedule="dynamic"):
            xb = wg_align64(tw + threadid() * g.per_thread)
            V = wg_align64(xb + g.xband + SLACK)
            _band(&x[0, 0, 0, 0], U, bias, &y[0, 0, 0, 0], &g, job, xb, V,
                  wg_align64(V + g.vsize))
