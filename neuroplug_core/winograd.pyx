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


cdef extern from "np_winograd.h":
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
    # vectors of a 4 x 3 block less often, shorter ones keep the transforms in cache (128 was
    # the fastest of 64, 128 and 256 on LeNet's second layer).
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


cdef inline Py_ssize_t _tiles_per_row(Py_ssize_t width) noexcept nogil:
    """Tiles per row as laid out in the vectors: 4 (two rows per vector) up to 8 wide, else whole vectors."""
    cdef Py_ssize_t tw = (width + 1) // 2
    return 4 if tw <= 4 else (tw + 7) // 8 * 8


def pays(int kind, Py_ssize_t N, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t F, Py_ssize_t KH,
         Py_ssize_t KW, Py_ssize_t SH, Py_ssize_t SW, Py_ssize_t PH, Py_ssize_t PW, Py_ssize_t G, bint simd,
         int mode=1):
    """Whether a float32 call of ``kind`` (0 forward, 1 input gradient, 2 weight gradient) runs here.

    The kernels apply to one group of 3x3 or 5x5 filters with stride 1 where
    ``simd`` (the SIMD kernels of :mod:`neuroplug_core.conv` are enabled) and
    the CPU has AVX2+FMA; the weight gradient also needs one sample's
    transforms to fit a budget.  Where they pay was measured against the
    other kernels (rules below).  ``mode`` is 0 (never), 1 (where they pay,
    the default) or 2 (wherever they apply): the backend's ``winograd`` option.
    """
    if mode not in (0, 1, 2):
        raise ValueError(f"mode must be 0 (never), 1 (auto) or 2 (always). Received: mode={mode}")
    if mode == 0 or not _cpu_ok or not simd or KH != KW or KH not in (3, 5) or SH != 1 or SW != 1 or G != 1:
        return False
    if min(N, C, H, W, F) < 1 or min(PH, PW) < 0 or H + 2 * PH < KH or W + 2 * PW < KW:
        return False
    cdef WGeom g = _wgeom(kind, N, C, H, W, F, <int> KH, PH, PW)
    if kind == 2 and (_wgrad_floats(C, F, g.OH, g.OW, g.R) > WGRAD_BUDGET or g.chunks < min(N, 2)):
        return False        # a sample's transforms, or partial sums for two chunks, exceed their budgets
    if mode == 2:
        return True
    # Measured against the packed GEMM and sliding kernels (figures in docs/guide/backends.rst),
    # they lose:
    # - with fewer than 16 input or output channels (short products, half-empty panels);
    # - where fewer than 60% of the tiles computed are real (6x6 and 4x4 planes);
    # - where a band holds less than a panel of 16 tiles (many channels on small planes), as the
    #   transformed weights then stream from memory for every few tiles, or the weight
    #   gradient's dot products run over fewer than 64 tiles.
    if C < 16 or F < 16:
        return False
    # - for the gradients, where the products do too little work per transformed value,
    #   C F / (C + F) multiplications: under 12 for the input gradient, under 14 for the
    #   weight gradient, whose transforms make a round trip through memory;
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
    """Rows ``h0 ... h0 + rows - 1`` of ``C`` planes of ``H x W`` into ``(C, rows, Wp)`` at column ``PW``,
    zeros around."""
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
    cdef Py_ssize_t AA = g.A * g.A, s0, ns, s, n, xi, f, c, tl
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
