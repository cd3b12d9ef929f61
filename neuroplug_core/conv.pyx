# cython: language_level=3
"""2-D convolution kernels (NCHW): forward, gradient for the input, gradient for the weights.

Two strategies, chosen per call:

* **Packed SIMD GEMM** (float32 on x86 CPUs with AVX-512, or AVX2+FMA; the
  default there).  The convolution is a matrix product whose operands are
  packed straight into the panel layout of a register-blocked micro-kernel
  (6 rows x 64 columns with AVX-512, 6 x 16 with AVX2), from a zero-padded
  copy of one sample so that every copy is a run of contiguous floats:

  - forward: ``y = W @ col``; the B panel is an implicit im2col of one
    column panel at a time (the whole im2col matrix never exists);
  - input gradient: ``dcol = W^T @ dy`` by column panels, each scattered
    back (col2im) while it is still in cache;
  - weight gradient: ``dW = dy @ col^T`` by blocks of output positions, or
    ``dW^T = col @ dy^T`` when that wastes fewer micro-kernel lanes (many
    filters, small kernels), with the A panels interleaved in registers
    straight from the input and ``dy`` transposed in registers.

  The kernel is picked at run time (``np_cpu_level`` in ``src/np_cpu.h``), so the
  module is built for the baseline ISA and still uses the wide units;
  each call takes the level to use (``isa``, at most the CPU's), which the
  backend's configuration chooses (``CythonOps(simd=...)``).
* **Sliding-window kernels** (float32, stride 1, AVX2+FMA; also used on
  AVX-512 CPUs).  No operand is packed: the forward pass keeps up to 4
  filters x 3 vectors of 8 neighbouring outputs of one row (on planes up to
  8 wide, 3 filters x 4 rows) in registers and adds one tap at a time (a
  broadcast weight times the input row shifted by the tap); the input
  gradient of a "same"-size convolution is that forward pass over the
  zero-padded dy with the flipped, transposed weights; the weight gradient
  keeps 4 filters x 3 taps in registers and runs over the output positions
  of up to 16 samples.  Where the packed GEMM spends more time packing than
  multiplying (few input channels, as in every first layer) they are about
  twice as fast; :func:`_sliding_pays` picks them by the measured rule, and
  a call's ``sliding`` argument (``CythonOps(sliding=...)``) overrides it.
* **im2col + BLAS GEMM** (float64, and float32 elsewhere): the input
  windows of one sample (or a few, when the output plane is small) are
  unrolled into a thread-local ``col`` matrix and multiplied with SciPy's
  BLAS (``scipy.linalg.cython_blas``), one single-threaded GEMM per OpenMP
  thread (the Python wrapper holds BLAS at one thread around the call).

The SIMD code is C with intrinsics in the ``cdef extern`` block below
(kept in this file so the module builds from its .pyx alone).

Threads take whole samples (or whole batch chunks).  No reduction depends
on the number of threads: the weight gradient is summed in fixed batch
chunks whose size depends only on the shapes, each chunk writes its own
partial sum, and the partial sums are added in chunk order.  Results are
bit-identical for any thread count.

Conventions shared with :mod:`neuroplug.ops`: weights ``(F, C // G, KH, KW)``,
cross-correlation, zero padding, floor at ragged edges.  Nothing here checks
its arguments beyond internal consistency (shapes agree, workspaces are
large enough): :mod:`neuroplug.backends.cython_ops` validates them first
(DESIGN rule 4).
"""

from cython.parallel cimport prange, threadid
from libc.limits cimport INT_MAX
from libc.stdint cimport uint32_t, uint64_t
from libc.stdlib cimport calloc, free
from libc.string cimport memcpy, memset

from ._blas cimport gemm_rm
from ._fused cimport floating


cdef extern from "np_conv.h":
    int np_cpu_isa() noexcept nogil
    int np_isa_nr(int isa) noexcept nogil
    float* np_align64(float* p) noexcept nogil
    void np_ukr(int isa, long K, const float* A, const float* B, float* C, long ldc,
                int mr, int nr, int accumulate, const float* bias) noexcept nogil
    void np_pack_b_im2col_s1_z(const float* xp, long Hp, long Wp, long KH, long KW, long OW,
                               long p0, long ncols, long k0, long kc, int NR, float* bp) noexcept nogil
    void np_col2im_s1_z(const float* dcol, long ld, long K, long Hp, long Wp, long KH, long KW, long OW,
                        long p0, long ncols, float* dxp) noexcept nogil
    void np_pack_b_im2row_z(const float* xp, long Hp, long Wp, long KH, long KW, long SH, long SW,
                            long OW, long p0, long pb, long kr0, long nk, int NR, float* bp) noexcept nogil
    void np_pack_a_rows_z(const float* src, long lds, long M, long kc, float* ap) noexcept nogil
    void np_pack_b_rows_z(const float* src, long lds, long kc, long c0, long ncols, int NR, float* bp) noexcept nogil
    double np_sum_z(const float* s, long n) noexcept nogil
    void np_pack_a_im2col_s1_z(const float* xp, long Hp, long Wp, long KH, long KW, long OW, long K,
                               long mp, long p0, long pb, float* ap) noexcept nogil
    void np_pack_b_transposed_z(const float* src, long lds, long nf, long pb, float* bp) noexcept nogil
    void np_pack_b_im2col_s1(int isa, const float* xp, long Hp, long Wp, long KH, long KW, long OW,
                             long p0, long ncols, long k0, long kc, int NR, float* bp) noexcept nogil
    void np_col2im_s1(int isa, const float* dcol, long ld, long K, long Hp, long Wp, long KH, long KW,
                      long OW, long p0, long ncols, float* dxp) noexcept nogil
    void np_pack_b_rows(int isa, const float* src, long lds, long kc, long c0, long ncols, int NR,
                        float* bp) noexcept nogil
    void np_pack_b_im2row(int isa, const float* xp, long Hp, long Wp, long KH, long KW, long SH, long SW,
                          long OW, long p0, long pb, long kr0, long nk, int NR, float* bp) noexcept nogil
    int NP_MR
    int NP_SLIDING_SB
    void np_ukr_col2im_y(long K, const float* A, const float* B, float* dxp, const long* rowoff,
                         long off0, long off1, int mr) noexcept nogil
    void np_sliding_fwd_y(const float* xp, long Cg, long Hp, long Wp, const float* w, long Fg,
                          long KH, long KW, const float* bias, float* y, long OH, long OW) noexcept nogil
    void np_sliding_wgrad_y(const float* x, const float* dy, long n0, long nb,
                            long C, long H, long W, long F, long G, long KH, long KW,
                            long PH, long PW, long OH, long OW,
                            float* part, float* xbuf, long xsz, long sb_max) noexcept nogil


# ---------------------------------------------------------------------------
# Kernel selection
# ---------------------------------------------------------------------------
cdef int _isa_detected = np_cpu_isa()

_ISA_NAMES = {0: "blas", 1: "avx2", 2: "avx512"}


def available_isas():
    """Kernel names this CPU supports, from the most portable (``"blas"``) up.

    A call takes one by its level (the index in this list) as ``isa``; the
    last is the default of :class:`neuroplug.backends.cython_ops.CythonOps`.
    """
    return [_ISA_NAMES[i] for i in range(_isa_detected + 1)]


cdef int _check_options(int isa, int sliding) except -1:
    """Reject a kernel level this CPU lacks (it would stop the process) or an unknown sliding mode."""
    if isa < 0 or isa > _isa_detected:
        raise ValueError(f"isa must be a level of {available_isas()} (0 to {_isa_detected}). Received: isa={isa}")
    if sliding not in (0, 1, 2):
        raise ValueError(f"sliding must be 0 (never), 1 (auto) or 2 (always). Received: sliding={sliding}")
    return 0


# ---------------------------------------------------------------------------
# Geometry and plans.  Chunk sizes depend on the shapes only (never on the
# thread count), so results do not depend on the thread count.
# ---------------------------------------------------------------------------
cdef struct Geom:
    Py_ssize_t N, C, H, W       # input
    Py_ssize_t F, KH, KW        # weights: (F, Cg, KH, KW)
    Py_ssize_t G, Cg, Fg        # groups, channels per group in / out
    Py_ssize_t SH, SW, PH, PW   # stride, zero padding
    Py_ssize_t OH, OW, P        # output plane, P = OH * OW
    Py_ssize_t K                # Cg * KH * KW: rows of col
    bint direct                 # 1x1, stride 1, no padding: col is the input itself


cdef Geom _geom(Py_ssize_t N, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t F,
                Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t SH, Py_ssize_t SW,
                Py_ssize_t PH, Py_ssize_t PW, Py_ssize_t G) except *:
    cdef Geom g
    g.N = N; g.C = C; g.H = H; g.W = W; g.F = F; g.KH = KH; g.KW = KW
    g.SH = SH; g.SW = SW; g.PH = PH; g.PW = PW; g.G = G
    if G < 1 or C % G or F % G or min(N, C, H, W, F, KH, KW) < 1 or min(SH, SW) < 1 or min(PH, PW) < 0:
        raise ValueError("invalid convolution geometry")
    g.Cg = C // G
    g.Fg = F // G
    g.OH = (H + 2 * PH - KH) // SH + 1
    g.OW = (W + 2 * PW - KW) // SW + 1
    if g.OH < 1 or g.OW < 1:
        raise ValueError("kernel larger than the padded input")
    g.P = g.OH * g.OW
    g.K = g.Cg * KH * KW
    g.direct = KH == 1 and KW == 1 and SH == 1 and SW == 1 and PH == 0 and PW == 0
    if g.K > INT_MAX // 64 or g.P > INT_MAX // 64 or g.F > INT_MAX or g.Cg * H * W > INT_MAX:
        raise ValueError(
            f"convolution too large for 32-bit BLAS dimensions (Cg*KH*KW={g.K}, OH*OW={g.P})"
        )
    return g


cdef enum:
    # BLAS path: a forward GEMM wants at least this many columns; smaller
    # output planes are batched over several samples.
    MIN_GEMM_COLS = 256
    # Weight gradient: at most this many batch chunks (enough for 2-16
    # threads), and at most WGRAD_PARTIAL_BUDGET elements of partial sums.
    MAX_WGRAD_CHUNKS = 16
    WGRAD_PARTIAL_BUDGET = 4194304
    # SIMD path: reduction block of the packed GEMM (a packed B panel of
    # KC x 64 floats is 64 KiB), and block of output positions of the
    # weight gradient.
    KC = 256
    PB = 256
    ALIGN_PAD = 16  # floats per buffer to align it to 64 bytes
    SLACK = 16      # floats after a packed panel or padded input that unmasked 16-wide moves may touch
    # Sliding-window kernels: the weight gradient of output rows narrower than
    # a vector for reductions (Cg * KH * KW) up to this long; at most this many floats of
    # padded input copies per thread (weight gradient), or of one padded dy
    # (input gradient).
    SLIDING_WGRAD_MAX_K = 128
    SLIDING_XBUF = 65536

# What one kernel call needs: kinds 0 forward, 1 input gradient, 2 weight gradient.
cdef struct Plan:
    int isa                     # 0: im2col + BLAS; 1/2: packed SIMD GEMM
    int NR                      # micro-kernel width (SIMD path)
    Py_ssize_t nb               # samples per chunk
    Py_ssize_t sub              # weight gradient, BLAS path: samples per GEMM within a chunk
    Py_ssize_t chunks           # number of chunks
    Py_ssize_t shared           # workspace elements shared by all threads
    Py_ssize_t per_thread       # workspace elements per thread
    bint transposed             # weight gradient computed as dW^T (see _backward_weights_chunk_simd_t)
    bint sliding                # forward / weight gradient by the sliding-window kernels (no packing)
    Py_ssize_t sb               # sliding weight gradient: samples per run


cdef inline Py_ssize_t _ceil_div(Py_ssize_t a, Py_ssize_t b) noexcept nogil:
    return (a + b - 1) // b


cdef Plan _plan(int kind, bint is_float, const Geom* g, int isa, int sliding) noexcept:
    cdef Plan p
    # Zero-padded copy of one sample-group (AVX-512 packers read it without bounds checks).
    cdef Py_ssize_t xpad = g.Cg * (g.H + 2 * g.PH) * (g.W + 2 * g.PW) + SLACK + ALIGN_PAD
    cdef Py_ssize_t bpanel = KC * np_isa_nr(isa if is_float else 0) + SLACK + ALIGN_PAD
    # Output planes narrower than half a micro-kernel panel (down to the 1x1 output of
    # LeNet's C5) waste most SIMD lanes and call the kernel for a handful of columns:
    # the BLAS path batches samples into one GEMM instead.
    p.isa = isa if (is_float and 2 * g.P >= np_isa_nr(isa)) else 0
    p.NR = np_isa_nr(p.isa)
    p.nb = 1
    p.sub = 1
    p.shared = 0
    p.per_thread = 0
    p.transposed = False
    p.sliding = _sliding_pays(kind, p.isa, g, sliding)
    p.sb = 1
    if kind == 0:
        if p.isa:
            p.shared = g.G * _ceil_div(g.Fg, NP_MR) * NP_MR * g.K + ALIGN_PAD
            p.per_thread = bpanel + xpad
        else:
            if g.P < MIN_GEMM_COLS:
                # Batch samples, keeping at least 8 chunks to spread over threads.
                p.nb = max(1, min(_ceil_div(MIN_GEMM_COLS, g.P), g.N // 8))
            if not (p.nb == 1 and g.direct):
                p.per_thread = g.K * p.nb * g.P + (g.Fg * p.nb * g.P if p.nb > 1 else 0)
        p.chunks = _ceil_div(g.N, p.nb)
    elif kind == 1:
        if p.sliding:
            # Flipped, transposed weights (shared) and one zero-padded dy sample-group per thread.
            p.shared = g.F * g.K + ALIGN_PAD
            p.per_thread = (g.Fg * (g.OH + 2 * (g.KH - 1 - g.PH)) * (g.OW + 2 * (g.KW - 1 - g.PW))
                            + SLACK + ALIGN_PAD)
        elif p.isa:
            p.shared = g.G * _ceil_div(g.K, NP_MR) * NP_MR * g.Fg + ALIGN_PAD
            p.per_thread = bpanel + g.K * p.NR + ALIGN_PAD + xpad
        else:
            if g.P < MIN_GEMM_COLS:
                p.nb = max(1, min(_ceil_div(MIN_GEMM_COLS, g.P), g.N // 8))
            if p.nb > 1:
                p.per_thread = (g.K + g.Fg) * p.nb * g.P       # dcol and the gathered dy
            elif not g.direct:
                p.per_thread = g.K * g.P
        p.chunks = _ceil_div(g.N, p.nb)
    else:
        p.chunks = max(1, min(g.N, MAX_WGRAD_CHUNKS, WGRAD_PARTIAL_BUDGET // max(1, g.F * g.K)))
        p.nb = _ceil_div(g.N, p.chunks)
        p.chunks = _ceil_div(g.N, p.nb)
        p.transposed = p.isa == 2 and g.SH == 1 and g.SW == 1 and _transposed_pays(g) and not p.sliding
        if p.sliding:
            # Padded copies of one run of samples (none without padding).
            if g.PH or g.PW:
                xs = g.Cg * (g.H + 2 * g.PH) * (g.W + 2 * g.PW)
                p.sb = max(1, min(<Py_ssize_t> NP_SLIDING_SB, p.nb, SLIDING_XBUF // xs))
                p.per_thread = p.sb * xs + ALIGN_PAD
            else:
                p.sb = min(<Py_ssize_t> NP_SLIDING_SB, p.nb)
        elif p.transposed:
            p.per_thread = xpad + NP_MR * PB + ALIGN_PAD + PB * p.NR + SLACK + ALIGN_PAD
        elif p.isa:
            p.per_thread = xpad + _ceil_div(g.Fg, NP_MR) * NP_MR * PB + ALIGN_PAD + PB * p.NR + SLACK + ALIGN_PAD
        else:
            # Several samples per GEMM when the output plane is small (inner dimension sub * P).
            p.sub = min(p.nb, _ceil_div(MIN_GEMM_COLS, g.P)) if g.P < MIN_GEMM_COLS else 1
            if p.sub > 1:
                p.per_thread = (g.K + g.Fg) * p.sub * g.P      # col and the gathered dy
            elif not g.direct:
                p.per_thread = g.K * g.P
    return p


cdef bint _sliding_pays(int kind, int isa, const Geom* g, int sliding) noexcept:
    """Whether a call of ``kind`` (0 forward, 2 weight gradient) uses the sliding-window kernels.

    ``sliding`` is 0 (never), 1 (where they pay, the default) or 2 (wherever they apply).
    """
    if sliding == 0 or isa == 0 or g.SH != 1 or g.SW != 1:
        return False
    if kind == 1:
        # The input gradient is a forward pass over dy zero-padded by K - 1 - P: only when that
        # padding is not negative, and (by default) only when it adds no work, that is for
        # "same"-size outputs (a "valid" 5x5 layer on 8x8 planes would do 2.25x the work).
        if g.PH > g.KH - 1 or g.PW > g.KW - 1:
            return False
        if sliding == 2:
            return True
        # ... and only while the padded dy of a sample stays in cache (a larger copy lost to the
        # packed GEMM with col2im fused; figures in docs/guide/backends.rst).
        if g.H * g.W > g.P or g.Fg * (g.OH + 2 * (g.KH - 1 - g.PH)) * (g.OW + 2 * (g.KW - 1 - g.PW)) > SLIDING_XBUF:
            return False
        return _sliding_rows_fill(g.W)
    if sliding == 2:
        return True
    # Measured against the packed GEMM: the sliding kernels win where output rows fill most
    # of their 8-float vectors (the forward pass: planes up to 8 wide, or 2-3 whole vectors),
    # and the weight gradient on rows of whole vectors, or of one partial vector only for
    # short reductions.  The measurements are in docs/guide/backends.rst.
    if kind == 0:
        return _sliding_rows_fill(g.OW)
    return g.OW / (8.0 * _ceil_div(g.OW, 8)) >= 0.75 and (g.OW >= 8 or g.K <= SLIDING_WGRAD_MAX_K)


cdef bint _sliding_rows_fill(Py_ssize_t width) noexcept:
    """Whether the sliding forward kernel pays for output rows ``width`` wide (see _sliding_pays)."""
    return width / (8.0 * _ceil_div(width, 8)) >= 0.75 and (width <= 8 or width >= 16)


cdef bint _transposed_pays(const Geom* g) noexcept:
    """Whether dW^T (rows K, 64-wide columns of filters) wastes fewer micro-kernel lanes than dW.

    dW puts the Cg*KH*KW columns in 64-wide panels and the filters in 6-row
    panels; dW^T the other way round.  (LeNet's 5x5 layers stay with dW, a
    3x3 layer of 64 filters goes to dW^T.)
    """
    cdef double K = g.K, Fg = g.Fg
    cdef double eff = (K / (_ceil_div(g.K, 64) * 64)) * (Fg / (_ceil_div(g.Fg, NP_MR) * NP_MR))
    cdef double eff_t = (K / (_ceil_div(g.K, NP_MR) * NP_MR)) * (Fg / (_ceil_div(g.Fg, 64) * 64))
    return eff_t > eff


def workspace(int kind, bint is_float, Py_ssize_t N, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W,
              Py_ssize_t F, Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t SH, Py_ssize_t SW,
              Py_ssize_t PH, Py_ssize_t PW, Py_ssize_t G, int n_threads, int isa, int sliding):
    """Return ``(elements, chunks, uses_blas)`` for one call.

    ``kind`` is 0 (forward), 1 (input gradient) or 2 (weight gradient);
    ``elements`` is the scratch the call needs on ``n_threads`` threads,
    ``chunks`` the number of batch chunks (the weight gradient also needs a
    ``(chunks, F * Cg * KH * KW)`` array of partial sums), and ``uses_blas``
    whether the kernels call BLAS (the caller then holds BLAS at one thread).
    ``isa`` (a level of :func:`available_isas`) and ``sliding`` (0 never,
    1 auto, 2 always) are the kernel choices the call will be made with.
    """
    _check_options(isa, sliding)
    cdef Geom g = _geom(N, C, H, W, F, KH, KW, SH, SW, PH, PW, G)
    cdef Plan p = _plan(kind, is_float, &g, isa, sliding)
    return p.shared + p.per_thread * max(1, n_threads), p.chunks, p.isa == 0


cdef int _check_work(Py_ssize_t have, const Plan* p, int n_threads) except -1:
    if n_threads < 1:
        raise ValueError(f"n_threads must be >= 1. Received: n_threads={n_threads}")
    if have < p.shared + p.per_thread * n_threads:
        raise ValueError(f"workspace too small: {have} < {p.shared} + {p.per_thread} x {n_threads}")
    return 0


# ---------------------------------------------------------------------------
# im2col / col2im
# ---------------------------------------------------------------------------
cdef inline void _ow_range(Py_ssize_t j, const Geom* g, Py_ssize_t* lo, Py_ssize_t* hi) noexcept nogil:
    """Output columns ``[lo, hi)`` whose input column ``ow*SW + j - PW`` lies inside ``[0, W)``."""
    cdef Py_ssize_t a = g.PW - j, b = g.W - 1 + g.PW - j
    lo[0] = 0 if a <= 0 else (a + g.SW - 1) // g.SW
    hi[0] = 0 if b < 0 else b // g.SW + 1
    if lo[0] > g.OW:
        lo[0] = g.OW
    if hi[0] > g.OW:
        hi[0] = g.OW
    if hi[0] < lo[0]:
        hi[0] = lo[0]


cdef void _im2col(
    const floating* x,      # IN: (Cg, H, W), one sample and group
    const Geom* g,
    floating* col,          # OUT: (K, P) with row stride ldcol
    Py_ssize_t ldcol,
) noexcept nogil:
    cdef Py_ssize_t c, i, j, oh, ow, ih, lo, hi, off, r = 0
    cdef Py_ssize_t SW = g.SW, OW = g.OW
    cdef floating* dst
    cdef const floating* src
    for c in range(g.Cg):
        for i in range(g.KH):
            for j in range(g.KW):
                _ow_range(j, g, &lo, &hi)
                off = j - g.PW
                for oh in range(g.OH):
                    dst = col + r * ldcol + oh * OW
                    ih = oh * g.SH + i - g.PH
                    if ih < 0 or ih >= g.H:
                        memset(dst, 0, OW * sizeof(floating))
                        continue
                    src = x + (c * g.H + ih) * g.W
                    for ow in range(lo):
                        dst[ow] = 0
                    if SW == 1:
                        for ow in range(lo, hi):
                            dst[ow] = src[ow + off]
                    else:
                        for ow in range(lo, hi):
                            dst[ow] = src[ow * SW + off]
                    for ow in range(hi, OW):
                        dst[ow] = 0
                r += 1


cdef void _col2im_block(
    const floating* col,    # IN: (K, ncols) columns p0 .. p0+ncols-1 of the col matrix, row stride ldcol
    Py_ssize_t ldcol,
    Py_ssize_t p0, Py_ssize_t ncols,
    const Geom* g,
    floating* dx,           # IN/OUT: (Cg, H, W), one sample and group; accumulated into
) noexcept nogil:
    cdef Py_ssize_t c, i, j, p, pend = p0 + ncols, oh, ow, owe, ow_lo, ow_hi, ih, lo, hi, off, r = 0
    cdef Py_ssize_t SW = g.SW, OW = g.OW
    cdef floating* dst
    cdef const floating* src
    for c in range(g.Cg):
        for i in range(g.KH):
            for j in range(g.KW):
                _ow_range(j, g, &lo, &hi)
                off = j - g.PW
                p = p0
                while p < pend:
                    oh = p // OW
                    ow = p - oh * OW
                    owe = min(OW, ow + pend - p)        # this run: columns ow .. owe-1 of output row oh
                    ih = oh * g.SH + i - g.PH
                    if 0 <= ih < g.H:
                        src = col + r * ldcol + (p - p0) - ow   # src[ow'] is column (oh, ow')
                        dst = dx + (c * g.H + ih) * g.W
                        ow_lo = max(ow, lo)
                        ow_hi = min(owe, hi)
                        if SW == 1:
                            for ow in range(ow_lo, ow_hi):
                                dst[ow + off] += src[ow]
                        else:
                            for ow in range(ow_lo, ow_hi):
                                dst[ow * SW + off] += src[ow]
                    p += owe - (p - oh * OW)
                r += 1


# ---------------------------------------------------------------------------
# Packed SIMD GEMM path (float32)
# ---------------------------------------------------------------------------
cdef void _pack_a_rows(
    const float* src, Py_ssize_t lds,   # IN: M rows, row stride lds; the panel reads columns 0 .. kc-1
    Py_ssize_t M, Py_ssize_t kc,
    float* ap,                          # OUT: ceil(M/MR) panels of kc x MR (rows >= M are zero)
) noexcept nogil:
    cdef Py_ssize_t mp, r, k, row
    cdef float* panel
    cdef const float* s
    for mp in range(_ceil_div(M, NP_MR)):
        panel = ap + mp * kc * NP_MR
        for r in range(NP_MR):
            row = mp * NP_MR + r
            if row < M:
                s = src + row * lds
                for k in range(kc):
                    panel[k * NP_MR + r] = s[k]
            else:
                for k in range(kc):
                    panel[k * NP_MR + r] = 0


cdef void _pack_a_cols(
    const float* src, Py_ssize_t lds,   # IN: kc rows (the reduction), M columns, row stride lds
    Py_ssize_t M, Py_ssize_t kc,
    float* ap,                          # OUT: ceil(M/MR) panels of kc x MR: ap[mp][k][r] = src[k][col(mp*MR + r)]
    const long* order=NULL,             # IN: col(m) = order[m] for m < M, or NULL for col(m) = m
) noexcept nogil:
    cdef Py_ssize_t mp, r, k, m0, mr
    cdef float* panel
    for mp in range(_ceil_div(M, NP_MR)):
        panel = ap + mp * kc * NP_MR
        m0 = mp * NP_MR
        mr = min(NP_MR, M - m0)
        for k in range(kc):
            for r in range(mr):
                panel[k * NP_MR + r] = src[k * lds + (order[m0 + r] if order != NULL else m0 + r)]
            for r in range(mr, NP_MR):
                panel[k * NP_MR + r] = 0


cdef void _pack_b_im2col(
    const float* x,                     # IN: (Cg, H, W), one sample and group
    const Geom* g,
    Py_ssize_t p0, Py_ssize_t ncols,    # output positions p0 .. p0+ncols-1
    Py_ssize_t k0, Py_ssize_t kc,       # rows k0 .. k0+kc-1 of the im2col matrix
    int NR,
    float* bp,                          # OUT: kc x NR panel, zero beyond ncols
) noexcept nogil:
    cdef Py_ssize_t k, c, i, j, p, pend = p0 + ncols, oh, ow, owe, ih, lo, hi, off, t
    cdef Py_ssize_t SW = g.SW, OW = g.OW, KHW = g.KH * g.KW
    cdef float* d
    cdef float* dr
    cdef const float* src
    for k in range(k0, k0 + kc):
        c = k // KHW
        i = (k - c * KHW) // g.KW
        j = k - c * KHW - i * g.KW
        _ow_range(j, g, &lo, &hi)
        off = j - g.PW
        d = bp + (k - k0) * NR
        p = p0
        while p < pend:
            oh = p // OW
            ow = p - oh * OW
            owe = min(OW, ow + pend - p)
            dr = d + (p - p0) - ow              # dr[ow'] is column (oh, ow')
            ih = oh * g.SH + i - g.PH
            if ih < 0 or ih >= g.H:
                for t in range(ow, owe):
                    dr[t] = 0
            else:
                src = x + (c * g.H + ih) * g.W
                for t in range(ow, min(owe, lo)):
                    dr[t] = 0
                if SW == 1:
                    for t in range(max(ow, lo), min(owe, hi)):
                        dr[t] = src[t + off]
                else:
                    for t in range(max(ow, lo), min(owe, hi)):
                        dr[t] = src[t * SW + off]
                for t in range(max(ow, hi), owe):
                    dr[t] = 0
            p += owe - ow
        for t in range(ncols, NR):
            d[t] = 0


cdef const float* _padded(const float* xg, const Geom* g, float* xpad, bint copy) noexcept nogil:
    """Return one sample-group (Cg, H, W) zero-padded to (Cg, H + 2 PH, W + 2 PW).

    Without padding that is ``xg`` itself, unless ``copy``: the SIMD
    packers move whole vectors and may read past the end of the data, which
    is safe only in the workspace (SLACK floats follow the copy).
    """
    if g.PH == 0 and g.PW == 0:
        if not copy:
            return xg
        memcpy(xpad, xg, g.Cg * g.H * g.W * sizeof(float))
        return xpad
    _pad_planes(xg, g.Cg, g.H, g.W, g.PH, g.PW, xpad)
    return xpad


cdef void _pad_planes(const float* src, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t PH, Py_ssize_t PW,
                      float* dst) noexcept nogil:
    """Copy ``C`` planes of ``H x W`` into ``dst`` as ``(C, H + 2 PH, W + 2 PW)``, zeros around them."""
    cdef Py_ssize_t c, h, Hp = H + 2 * PH, Wp = W + 2 * PW
    memset(dst, 0, C * Hp * Wp * sizeof(float))
    for c in range(C):
        for h in range(H):
            memcpy(dst + (c * Hp + h + PH) * Wp + PW, src + (c * H + h) * W, W * sizeof(float))


cdef void _forward_sample_simd(
    const float* x, const float* apack, const float* b, bint has_bias, float* y,
    const Geom* g, const Plan* pl, Py_ssize_t n, float* bp, float* xpad,
) noexcept nogil:
    cdef Py_ssize_t grp, p0, ncols, k0, kc, mp, mr, nmp = _ceil_div(g.Fg, NP_MR)
    cdef int NR = pl.NR
    cdef bint fast = g.SH == 1 and g.SW == 1      # vector packer from the padded input
    cdef const float* xg
    cdef const float* xs
    cdef const float* bias
    for grp in range(g.G):
        xg = x + (n * g.C + grp * g.Cg) * g.H * g.W
        if fast:
            xs = _padded(xg, g, xpad, pl.isa != 0)
        p0 = 0
        while p0 < g.P:
            ncols = min(<Py_ssize_t> NR, g.P - p0)
            k0 = 0
            while k0 < g.K:
                kc = min(<Py_ssize_t> KC, g.K - k0)
                if fast:
                    np_pack_b_im2col_s1(pl.isa, xs, g.H + 2 * g.PH, g.W + 2 * g.PW, g.KH, g.KW, g.OW,
                                        p0, ncols, k0, kc, NR, bp)
                else:
                    _pack_b_im2col(xg, g, p0, ncols, k0, kc, NR, bp)
                for mp in range(nmp):
                    mr = min(NP_MR, g.Fg - mp * NP_MR)
                    bias = b + grp * g.Fg + mp * NP_MR if (has_bias and k0 == 0) else NULL
                    np_ukr(pl.isa, kc, apack + (grp * nmp + mp) * g.K * NP_MR + k0 * NP_MR, bp,
                           y + (n * g.F + grp * g.Fg + mp * NP_MR) * g.P + p0, g.P,
                           <int> mr, <int> ncols, k0 > 0, bias)
                k0 += kc
            p0 += ncols


cdef void _forward_sample_sliding(
    const float* x, const float* w, const float* b, float* y, const Geom* g, Py_ssize_t n, float* xpad,
) noexcept nogil:
    cdef Py_ssize_t grp
    cdef const float* xs
    for grp in range(g.G):
        xs = _padded(x + (n * g.C + grp * g.Cg) * g.H * g.W, g, xpad, True)
        np_sliding_fwd_y(xs, g.Cg, g.H + 2 * g.PH, g.W + 2 * g.PW, w + grp * g.Fg * g.K, g.Fg, g.KH, g.KW,
                         b + grp * g.Fg if b != NULL else NULL, y + (n * g.F + grp * g.Fg) * g.P, g.OH, g.OW)


cdef void _backward_input_sample_sliding(
    const float* dy, const float* wflip, float* dx, const Geom* g, Py_ssize_t n, float* dypad,
) noexcept nogil:
    # For stride 1, dx is the correlation of dy, zero-padded by K - 1 - P, with the flipped and
    # transposed weights: a forward pass with Fg input and Cg output channels.
    cdef Py_ssize_t grp, QH = g.KH - 1 - g.PH, QW = g.KW - 1 - g.PW
    for grp in range(g.G):
        _pad_planes(dy + (n * g.F + grp * g.Fg) * g.P, g.Fg, g.OH, g.OW, QH, QW, dypad)
        np_sliding_fwd_y(dypad, g.Fg, g.OH + 2 * QH, g.OW + 2 * QW, wflip + grp * g.Cg * g.Fg * g.KH * g.KW, g.Cg,
                         g.KH, g.KW, NULL, dx + (n * g.C + grp * g.Cg) * g.H * g.W, g.H, g.W)


cdef bint _fused_col2im(const Geom* g, const Plan* pl) noexcept:
    """Whether the packed input gradient adds its tiles straight into dx (np_ukr_col2im_y).

    AVX2, stride 1, output rows made of whole vectors and the filters in one
    reduction block.
    """
    return pl.isa == 1 and g.SH == 1 and g.SW == 1 and g.OW % 8 == 0 and g.Fg <= KC


cdef void _col2im_order(const Geom* g, long* order, long* rowoff) noexcept:
    """Order of the im2col rows in the fused input gradient, and where each lands in a padded plane.

    Row ``m`` of W^T is im2col row ``order[m]`` = (c, i, j), added at
    ``rowoff[m]`` (+ the tile's output offset).  The six rows of a tile are
    added one after another in the epilogue; in im2col order they are taps
    ``j, j + 1, ...`` of one plane, so each add reads 32 bytes that overlap,
    shifted by one float, the 32 the previous add just stored, and the load
    waits for the store to reach the cache (store forwarding fails on a
    partial overlap).  With the channels innermost (order j, i, c) the rows
    of a tile add into different planes, or, for a single channel, into the
    same bytes as the previous add, which forwarding serves (measured in
    docs/guide/backends.rst).  Only where every
    tile is fused (P % 16 == 0): a narrower last block goes through dcol
    and col2im, which expect im2col order.
    """
    cdef Py_ssize_t m, kk, Hp = g.H + 2 * g.PH, Wp = g.W + 2 * g.PW
    cdef bint reorder = g.P % 16 == 0
    for m in range(g.K):
        kk = m
        if reorder:
            kk = (m % g.Cg) * g.KH * g.KW + ((m // g.Cg) % g.KH) * g.KW + m // (g.Cg * g.KH)
        order[m] = kk
        rowoff[m] = ((kk // (g.KH * g.KW)) * Hp + (kk // g.KW) % g.KH) * Wp + kk % g.KW


cdef void _backward_input_sample_simd(
    const float* dy, const float* apack, float* dx, const Geom* g, const Plan* pl,
    Py_ssize_t n, float* bp, float* dcol, float* dxpad, const long* rowoff,
) noexcept nogil:
    # dcol (K x ncols) = W_g^T (K x Fg) @ dy[n, g][:, p0 : p0+ncols], then col2im while it is hot;
    # with rowoff (see _fused_col2im) the micro-kernel adds its tiles to the gradient itself.
    cdef Py_ssize_t grp, p0, ncols, f0, fc, mp, mr, nmk = _ceil_div(g.K, NP_MR), plane = g.H * g.W
    cdef Py_ssize_t Hp = g.H + 2 * g.PH, Wp = g.W + 2 * g.PW, c, h
    cdef int NR = pl.NR
    cdef bint fast = g.SH == 1 and g.SW == 1      # vector col2im into the padded gradient
    cdef bint padded = g.PH > 0 or g.PW > 0
    cdef const float* dyg
    cdef float* dxg
    cdef float* acc
    cdef bint fused = rowoff != NULL
    cdef Py_ssize_t off0, off1
    if not (fast and padded):
        memset(dx + n * g.C * plane, 0, g.C * plane * sizeof(float))
    for grp in range(g.G):
        dyg = dy + (n * g.F + grp * g.Fg) * g.P
        dxg = dx + (n * g.C + grp * g.Cg) * plane
        acc = dxg
        if fast and padded:
            acc = dxpad
            memset(dxpad, 0, g.Cg * Hp * Wp * sizeof(float))
        p0 = 0
        while p0 < g.P:
            ncols = min(<Py_ssize_t> NR, g.P - p0)
            if fused and ncols == 16:
                np_pack_b_rows(pl.isa, dyg, g.P, g.Fg, p0, ncols, NR, bp)
                off0 = (p0 // g.OW) * Wp + p0 % g.OW
                off1 = ((p0 + 8) // g.OW) * Wp + (p0 + 8) % g.OW
                for mp in range(nmk):
                    mr = min(NP_MR, g.K - mp * NP_MR)
                    np_ukr_col2im_y(g.Fg, apack + (grp * nmk + mp) * g.Fg * NP_MR, bp, acc,
                                    rowoff + mp * NP_MR, off0, off1, <int> mr)
                p0 += ncols
                continue
            f0 = 0
            while f0 < g.Fg:
                fc = min(<Py_ssize_t> KC, g.Fg - f0)
                np_pack_b_rows(pl.isa, dyg + f0 * g.P, g.P, fc, p0, ncols, NR, bp)
                for mp in range(nmk):
                    mr = min(NP_MR, g.K - mp * NP_MR)
                    np_ukr(pl.isa, fc, apack + (grp * nmk + mp) * g.Fg * NP_MR + f0 * NP_MR, bp,
                           dcol + mp * NP_MR * NR, NR, <int> mr, <int> ncols, f0 > 0, NULL)
                f0 += fc
            if fast:
                np_col2im_s1(pl.isa, dcol, NR, g.K, Hp, Wp, g.KH, g.KW, g.OW, p0, ncols, acc)
            else:
                _col2im_block(dcol, NR, p0, ncols, g, dxg)
            p0 += ncols
        if fast and padded:
            for c in range(g.Cg):
                for h in range(g.H):
                    memcpy(dxg + (c * g.H + h) * g.W, dxpad + (c * Hp + h + g.PH) * Wp + g.PW, g.W * sizeof(float))


cdef void _backward_weights_chunk_simd(
    const float* dy, const float* x, float* part, const Geom* g, const Plan* pl,
    Py_ssize_t n0, Py_ssize_t nb, float* xpad, float* ap, float* bp,
) noexcept nogil:
    # part (F x K) = sum over the chunk of dy[n, g] (Fg x P) @ col(n, g)^T (P x K), by blocks of PB positions.
    cdef Py_ssize_t bi, n, grp, p0, pb, kr0, nk, mp, mr, nmf = _ceil_div(g.Fg, NP_MR), plane = g.H * g.W
    cdef int NR = pl.NR
    cdef const float* xs = NULL
    cdef const float* dyg
    memset(part, 0, g.F * g.K * sizeof(float))
    for bi in range(nb):
        n = n0 + bi
        for grp in range(g.G):
            xs = _padded(x + (n * g.C + grp * g.Cg) * plane, g, xpad, pl.isa != 0)
            dyg = dy + (n * g.F + grp * g.Fg) * g.P
            p0 = 0
            while p0 < g.P:
                pb = min(<Py_ssize_t> PB, g.P - p0)
                if pl.isa == 2:
                    np_pack_a_rows_z(dyg + p0, g.P, g.Fg, pb, ap)
                else:
                    _pack_a_rows(dyg + p0, g.P, g.Fg, pb, ap)
                kr0 = 0
                while kr0 < g.K:
                    nk = min(<Py_ssize_t> NR, g.K - kr0)
                    np_pack_b_im2row(pl.isa, xs, g.H + 2 * g.PH, g.W + 2 * g.PW, g.KH, g.KW, g.SH, g.SW,
                                     g.OW, p0, pb, kr0, nk, NR, bp)
                    for mp in range(nmf):
                        mr = min(NP_MR, g.Fg - mp * NP_MR)
                        np_ukr(pl.isa, pb, ap + mp * pb * NP_MR, bp,
                               part + (grp * g.Fg + mp * NP_MR) * g.K + kr0, g.K,
                               <int> mr, <int> nk, 1, NULL)
                    kr0 += nk
                p0 += pb


cdef void _backward_weights_chunk_simd_t(
    const float* dy, const float* x, float* part, const Geom* g, const Plan* pl,
    Py_ssize_t n0, Py_ssize_t nb, float* xpad, float* ap, float* bp,
) noexcept nogil:
    # part (K x F) = sum over the chunk of col(n, g) (K x P) @ dy[n, g]^T (P x Fg): the transposed
    # weight gradient, for stride 1.  The A panels (6 rows of the im2col matrix) are interleaved
    # straight from the padded input; the B panel is a block of dy transposed in registers.
    cdef Py_ssize_t bi, n, grp, p0, pb, f0, nf, mp, mr, nmk = _ceil_div(g.K, NP_MR), plane = g.H * g.W
    cdef Py_ssize_t Hp = g.H + 2 * g.PH, Wp = g.W + 2 * g.PW
    cdef const float* xs
    cdef const float* dyg
    memset(part, 0, g.F * g.K * sizeof(float))
    for bi in range(nb):
        n = n0 + bi
        for grp in range(g.G):
            xs = _padded(x + (n * g.C + grp * g.Cg) * plane, g, xpad, False)
            dyg = dy + (n * g.F + grp * g.Fg) * g.P
            p0 = 0
            while p0 < g.P:
                pb = min(<Py_ssize_t> PB, g.P - p0)
                f0 = 0
                while f0 < g.Fg:
                    nf = min(<Py_ssize_t> 64, g.Fg - f0)
                    np_pack_b_transposed_z(dyg + f0 * g.P + p0, g.P, nf, pb, bp)
                    for mp in range(nmk):
                        mr = min(NP_MR, g.K - mp * NP_MR)
                        np_pack_a_im2col_s1_z(xs, Hp, Wp, g.KH, g.KW, g.OW, g.K, mp, p0, pb, ap)
                        np_ukr(pl.isa, pb, ap, bp, part + mp * NP_MR * g.F + grp * g.Fg + f0, g.F,
                               <int> mr, <int> nf, 1, NULL)
                    f0 += nf
                p0 += pb


# ---------------------------------------------------------------------------
# im2col + BLAS path (any dtype)
# ---------------------------------------------------------------------------
cdef void _forward_chunk_blas(
    const floating* x, const floating* w, const floating* b, bint has_bias,
    floating* y, const Geom* g, Py_ssize_t n0, Py_ssize_t nb, floating* work,
) noexcept nogil:
    cdef Py_ssize_t P = g.P, K = g.K, Fg = g.Fg, ld = nb * g.P
    cdef Py_ssize_t grp, bi, f, p
    cdef floating* col = work
    cdef floating* tmp = work + K * ld
    cdef const floating* colp
    cdef floating* out
    cdef const floating* src
    cdef floating bias
    for grp in range(g.G):
        if nb == 1 and g.direct:
            colp = x + (n0 * g.C + grp * g.Cg) * P
        else:
            for bi in range(nb):
                _im2col(x + ((n0 + bi) * g.C + grp * g.Cg) * g.H * g.W, g, col + bi * P, ld)
            colp = col
        if nb == 1:
            out = y + (n0 * g.F + grp * Fg) * P
            gemm_rm(False, False, <int> Fg, <int> P, <int> K, 1, w + grp * Fg * K, <int> K,
                    colp, <int> P, 0, out, <int> P)
            if has_bias:
                for f in range(Fg):
                    bias = b[grp * Fg + f]
                    for p in range(P):
                        out[f * P + p] += bias
        else:
            gemm_rm(False, False, <int> Fg, <int> ld, <int> K, 1, w + grp * Fg * K, <int> K,
                    colp, <int> ld, 0, tmp, <int> ld)
            for bi in range(nb):
                for f in range(Fg):
                    bias = b[grp * Fg + f] if has_bias else 0
                    out = y + ((n0 + bi) * g.F + grp * Fg + f) * P
                    src = tmp + f * ld + bi * P
                    for p in range(P):
                        out[p] = src[p] + bias


cdef void _gather_dy(const floating* dy, const Geom* g, Py_ssize_t n0, Py_ssize_t nb, Py_ssize_t grp,
                     floating* dyc, Py_ssize_t ld) noexcept nogil:
    """dyc (Fg x nb*P, row stride ld) = dy[n0 : n0+nb, group] with the samples side by side."""
    cdef Py_ssize_t b, f
    for b in range(nb):
        for f in range(g.Fg):
            memcpy(dyc + f * ld + b * g.P, dy + ((n0 + b) * g.F + grp * g.Fg + f) * g.P, g.P * sizeof(floating))


cdef void _backward_input_chunk_blas(
    const floating* dy, const floating* w, floating* dx, const Geom* g,
    Py_ssize_t n0, Py_ssize_t nb, floating* work,
) noexcept nogil:
    cdef Py_ssize_t P = g.P, K = g.K, Fg = g.Fg, plane = g.H * g.W, grp, b, ld = nb * g.P
    cdef floating* dxn = dx + n0 * g.C * plane
    cdef const floating* dyg
    cdef floating* dyc = work + K * ld
    if nb > 1:
        # dcol (K x nb*P) = W_g^T (K x Fg) @ [dy of nb samples] (Fg x nb*P), then col2im per sample.
        memset(dxn, 0, nb * g.C * plane * sizeof(floating))
        for grp in range(g.G):
            _gather_dy(dy, g, n0, nb, grp, dyc, ld)
            gemm_rm(True, False, <int> K, <int> ld, <int> Fg, 1, w + grp * Fg * K, <int> K,
                    dyc, <int> ld, 0, work, <int> ld)
            for b in range(nb):
                _col2im_block(work + b * P, ld, 0, P, g, dx + ((n0 + b) * g.C + grp * g.Cg) * plane)
        return
    if not g.direct:
        memset(dxn, 0, g.C * plane * sizeof(floating))
    for grp in range(g.G):
        dyg = dy + (n0 * g.F + grp * Fg) * P
        if g.direct:
            # dx[n, group] (Cg x P) = W_g^T (Cg x Fg) @ dy[n, group] (Fg x P)
            gemm_rm(True, False, <int> K, <int> P, <int> Fg, 1, w + grp * Fg * K, <int> K,
                    dyg, <int> P, 0, dxn + grp * g.Cg * plane, <int> P)
        else:
            gemm_rm(True, False, <int> K, <int> P, <int> Fg, 1, w + grp * Fg * K, <int> K,
                    dyg, <int> P, 0, work, <int> P)
            _col2im_block(work, P, 0, P, g, dxn + grp * g.Cg * plane)


cdef void _backward_weights_chunk_blas(
    const floating* dy, const floating* x, floating* part, const Geom* g, const Plan* pl,
    Py_ssize_t n0, Py_ssize_t nb, floating* work,
) noexcept nogil:
    # part (F x K) = sum over the chunk's samples of dy[n, group] (Fg x P) @ col(n, group)^T (P x K),
    # pl.sub samples per GEMM (side by side in the inner dimension) when the output plane is small.
    cdef Py_ssize_t P = g.P, K = g.K, Fg = g.Fg, plane = g.H * g.W, grp, s0, ns, b, n
    cdef Py_ssize_t ld = pl.sub * g.P
    cdef floating* dyc = work + K * ld
    cdef const floating* colp
    s0 = 0
    while s0 < nb:
        ns = min(pl.sub, nb - s0)
        for grp in range(g.G):
            if ns > 1:
                for b in range(ns):
                    _im2col(x + ((n0 + s0 + b) * g.C + grp * g.Cg) * plane, g, work + b * P, ld)
                _gather_dy(dy, g, n0 + s0, ns, grp, dyc, ld)
                gemm_rm(False, True, <int> Fg, <int> K, <int> (ns * P), 1, dyc, <int> ld,
                        work, <int> ld, 0 if s0 == 0 else 1, part + grp * Fg * K, <int> K)
                continue
            n = n0 + s0
            if g.direct:
                colp = x + (n * g.C + grp * g.Cg) * plane
            else:
                _im2col(x + (n * g.C + grp * g.Cg) * plane, g, work, P)
                colp = work
            gemm_rm(False, True, <int> Fg, <int> K, <int> P, 1, dy + (n * g.F + grp * Fg) * P, <int> P,
                    colp, <int> P, 0 if s0 == 0 else 1, part + grp * Fg * K, <int> K)
        s0 += ns


# ---------------------------------------------------------------------------
# Entry points (called by CythonOps with validated, C-contiguous arrays)
# ---------------------------------------------------------------------------
def conv2d_forward(
    const floating[:, :, :, ::1] x,     # IN: (N, C, H, W)
    const floating[:, :, :, ::1] w,     # IN: (F, C // G, KH, KW)
    const floating[::1] b,              # IN: (F,) bias, or empty for none
    floating[:, :, :, ::1] y,           # OUT: (N, F, OH, OW)
    Py_ssize_t SH, Py_ssize_t SW, Py_ssize_t PH, Py_ssize_t PW, Py_ssize_t G,
    int n_threads,
    floating[::1] work,                 # scratch: workspace(0, ...)[0] elements
    int isa,                            # IN: kernel level (see available_isas)
    int sliding,                        # IN: sliding-window kernels: 0 never, 1 auto, 2 always
):
    """Convolution forward pass into ``y``."""
    cdef Geom g = _geom(x.shape[0], x.shape[1], x.shape[2], x.shape[3], w.shape[0],
                        w.shape[2], w.shape[3], SH, SW, PH, PW, G)
    cdef bint has_bias = b.shape[0] > 0
    if has_bias and b.shape[0] != g.F:
        raise ValueError("bias has the wrong length")
    if w.shape[1] != g.Cg or y.shape[0] != g.N or y.shape[1] != g.F or y.shape[2] != g.OH or y.shape[3] != g.OW:
        raise ValueError("inconsistent convolution shapes")
    _check_options(isa, sliding)
    cdef Plan pl = _plan(0, floating is float, &g, isa, sliding)
    _check_work(work.shape[0], &pl, n_threads)
    cdef Py_ssize_t ci, n0, grp
    cdef floating* wk = &work[0] if work.shape[0] > 0 else NULL  # no scratch needed (1x1 kernels): empty
    cdef const floating* bp = &b[0] if has_bias else NULL
    cdef float* apack
    cdef float* tw
    cdef float* bpp
    if floating is float:
        if pl.sliding:
            with nogil:
                for n0 in prange(g.N, num_threads=n_threads, schedule="dynamic"):
                    _forward_sample_sliding(&x[0, 0, 0, 0], &w[0, 0, 0, 0], bp, &y[0, 0, 0, 0], &g, n0,
                                            np_align64(wk + pl.shared + threadid() * pl.per_thread))
            return
        if pl.isa:
            apack = np_align64(wk)
            for grp in range(g.G):
                if pl.isa == 2:
                    np_pack_a_rows_z(&w[grp * g.Fg, 0, 0, 0], g.K, g.Fg, g.K,
                                     apack + grp * _ceil_div(g.Fg, NP_MR) * NP_MR * g.K)
                else:
                    _pack_a_rows(&w[grp * g.Fg, 0, 0, 0], g.K, g.Fg, g.K,
                                 apack + grp * _ceil_div(g.Fg, NP_MR) * NP_MR * g.K)
            tw = wk + pl.shared
            with nogil:
                for n0 in prange(g.N, num_threads=n_threads, schedule="dynamic"):
                    bpp = np_align64(tw + threadid() * pl.per_thread)
                    _forward_sample_simd(&x[0, 0, 0, 0], apack, bp, has_bias, &y[0, 0, 0, 0], &g, &pl, n0,
                                         bpp, np_align64(bpp + KC * pl.NR + SLACK))
            return
    with nogil:
        for ci in prange(pl.chunks, num_threads=n_threads, schedule="dynamic"):
            n0 = ci * pl.nb
            _forward_chunk_blas(&x[0, 0, 0, 0], &w[0, 0, 0, 0], bp, has_bias, &y[0, 0, 0, 0], &g,
                                n0, min(pl.nb, g.N - n0), wk + threadid() * pl.per_thread)


def conv2d_backward_input(
    const floating[:, :, :, ::1] dy,    # IN: (N, F, OH, OW)
    const floating[:, :, :, ::1] w,     # IN: (F, C // G, KH, KW)
    floating[:, :, :, ::1] dx,          # OUT: (N, C, H, W)
    Py_ssize_t SH, Py_ssize_t SW, Py_ssize_t PH, Py_ssize_t PW, Py_ssize_t G,
    int n_threads,
    floating[::1] work,                 # scratch: workspace(1, ...)[0] elements
    int isa,                            # IN: kernel level (see available_isas)
    int sliding,                        # IN: sliding-window kernels: 0 never, 1 auto, 2 always
):
    """Gradient of the convolution with respect to its input, into ``dx``."""
    cdef Geom g = _geom(dx.shape[0], dx.shape[1], dx.shape[2], dx.shape[3], w.shape[0],
                        w.shape[2], w.shape[3], SH, SW, PH, PW, G)
    if w.shape[1] != g.Cg or dy.shape[0] != g.N or dy.shape[1] != g.F or dy.shape[2] != g.OH or dy.shape[3] != g.OW:
        raise ValueError("inconsistent convolution shapes")
    _check_options(isa, sliding)
    cdef Plan pl = _plan(1, floating is float, &g, isa, sliding)
    _check_work(work.shape[0], &pl, n_threads)
    cdef Py_ssize_t n, grp, ci
    cdef long* rowoffs = NULL
    cdef long* order = NULL
    cdef floating* wk = &work[0] if work.shape[0] > 0 else NULL  # no scratch needed (1x1 kernels): empty
    cdef float* apack
    cdef float* tw
    cdef float* bpp
    cdef float* dcb
    cdef Py_ssize_t f, c, i, j
    if floating is float:
        if pl.sliding:
            # wflip[grp][c][f][i][j] = w[grp * Fg + f][c][KH - 1 - i][KW - 1 - j]
            apack = np_align64(wk)
            for grp in range(g.G):
                for c in range(g.Cg):
                    for f in range(g.Fg):
                        for i in range(g.KH):
                            for j in range(g.KW):
                                apack[(((grp * g.Cg + c) * g.Fg + f) * g.KH + i) * g.KW + j] = \
                                    w[grp * g.Fg + f, c, g.KH - 1 - i, g.KW - 1 - j]
            with nogil:
                for n in prange(g.N, num_threads=n_threads, schedule="dynamic"):
                    _backward_input_sample_sliding(&dy[0, 0, 0, 0], apack, &dx[0, 0, 0, 0], &g, n,
                                                   np_align64(wk + pl.shared + threadid() * pl.per_thread))
            return
        if pl.isa:
            if _fused_col2im(&g, &pl):
                # Row offsets for whole panels of NP_MR rows (the micro-kernel reads one for every
                # row of its tile), then the row order.
                rowoffs = <long*> calloc(2 * _ceil_div(g.K, NP_MR) * NP_MR, sizeof(long))
                if rowoffs == NULL:
                    raise MemoryError("no memory for the input-gradient row offsets")
                order = rowoffs + _ceil_div(g.K, NP_MR) * NP_MR
                _col2im_order(&g, order, rowoffs)
            apack = np_align64(wk)
            for grp in range(g.G):
                # A = W_g^T: rows are the K im2col rows, the reduction runs over the Fg filters.
                _pack_a_cols(&w[grp * g.Fg, 0, 0, 0], g.K, g.K, g.Fg,
                             apack + grp * _ceil_div(g.K, NP_MR) * NP_MR * g.Fg, order)
            tw = wk + pl.shared
            with nogil:
                for n in prange(g.N, num_threads=n_threads, schedule="dynamic"):
                    bpp = np_align64(tw + threadid() * pl.per_thread)
                    dcb = np_align64(bpp + KC * pl.NR + SLACK)
                    _backward_input_sample_simd(&dy[0, 0, 0, 0], apack, &dx[0, 0, 0, 0], &g, &pl, n,
                                                bpp, dcb, np_align64(dcb + g.K * pl.NR), rowoffs)
            free(rowoffs)
            return
    with nogil:
        for ci in prange(pl.chunks, num_threads=n_threads, schedule="dynamic"):
            n = ci * pl.nb
            _backward_input_chunk_blas(&dy[0, 0, 0, 0], &w[0, 0, 0, 0], &dx[0, 0, 0, 0], &g,
                                       n, min(pl.nb, g.N - n), wk + threadid() * pl.per_thread)


def conv2d_backward_weights(
    const floating[:, :, :, ::1] dy,    # IN: (N, F, OH, OW)
    const floating[:, :, :, ::1] x,     # IN: (N, C, H, W)
    floating[:, ::1] partial,           # SCRATCH: (chunks, F * K) partial sums, one row per batch chunk
    floating[::1] dw,                   # OUT: (F * K,) the weight gradient, (F, Cg, KH, KW) flattened
    Py_ssize_t KH, Py_ssize_t KW,
    Py_ssize_t SH, Py_ssize_t SW, Py_ssize_t PH, Py_ssize_t PW, Py_ssize_t G,
    int n_threads,
    floating[::1] work,                 # scratch: workspace(2, ...)[0] elements
    int isa,                            # IN: kernel level (see available_isas)
    int sliding,                        # IN: sliding-window kernels: 0 never, 1 auto, 2 always
):
    """Weight gradient into ``dw``: per-chunk partial sums, then added in chunk order."""
    cdef Geom g = _geom(x.shape[0], x.shape[1], x.shape[2], x.shape[3], dy.shape[1],
                        KH, KW, SH, SW, PH, PW, G)
    if dy.shape[0] != g.N or dy.shape[2] != g.OH or dy.shape[3] != g.OW:
        raise ValueError("inconsistent convolution shapes")
    _check_options(isa, sliding)
    cdef Plan pl = _plan(2, floating is float, &g, isa, sliding)
    if partial.shape[0] != pl.chunks or partial.shape[1] != g.F * g.K or dw.shape[0] != g.F * g.K:
        raise ValueError("partial or dw has the wrong shape")
    _check_work(work.shape[0], &pl, n_threads)
    cdef Py_ssize_t ci, n0, FK = g.F * g.K, blk, nblk = _ceil_div(FK, 1024), j, j0, j1, r, f, k
    cdef floating* wk = &work[0] if work.shape[0] > 0 else NULL  # no scratch needed (1x1 kernels): empty
    cdef float* xpb
    cdef float* apb
    cdef bint simd = False
    if floating is float:
        simd = pl.isa != 0
    if floating is float:
        if pl.sliding:
            with nogil:
                for ci in prange(pl.chunks, num_threads=n_threads, schedule="dynamic"):
                    n0 = ci * pl.nb
                    np_sliding_wgrad_y(&x[0, 0, 0, 0], &dy[0, 0, 0, 0], n0, min(pl.nb, g.N - n0),
                                       g.C, g.H, g.W, g.F, g.G, g.KH, g.KW, g.PH, g.PW, g.OH, g.OW,
                                       &partial[ci, 0],
                                       np_align64(wk + threadid() * pl.per_thread) if wk != NULL else NULL,
                                       g.Cg * (g.H + 2 * g.PH) * (g.W + 2 * g.PW), pl.sb)
        elif pl.transposed:
            with nogil:
                for ci in prange(pl.chunks, num_threads=n_threads, schedule="dynamic"):
                    n0 = ci * pl.nb
                    xpb = np_align64(wk + threadid() * pl.per_thread)
                    apb = np_align64(xpb + g.Cg * (g.H + 2 * g.PH) * (g.W + 2 * g.PW) + SLACK)
                    _backward_weights_chunk_simd_t(&dy[0, 0, 0, 0], &x[0, 0, 0, 0], &partial[ci, 0], &g, &pl,
                                                   n0, min(pl.nb, g.N - n0), xpb, apb,
                                                   np_align64(apb + NP_MR * PB))
        elif pl.isa:
            with nogil:
                for ci in prange(pl.chunks, num_threads=n_threads, schedule="dynamic"):
                    n0 = ci * pl.nb
                    xpb = np_align64(wk + threadid() * pl.per_thread)
                    apb = np_align64(xpb + g.Cg * (g.H + 2 * g.PH) * (g.W + 2 * g.PW) + SLACK)
                    _backward_weights_chunk_simd(&dy[0, 0, 0, 0], &x[0, 0, 0, 0], &partial[ci, 0], &g, &pl,
                                                 n0, min(pl.nb, g.N - n0), xpb, apb,
                                                 np_align64(apb + _ceil_div(g.Fg, NP_MR) * NP_MR * PB))
    if not simd:
        with nogil:
            for ci in prange(pl.chunks, num_threads=n_threads, schedule="dynamic"):
                n0 = ci * pl.nb
                _backward_weights_chunk_blas(&dy[0, 0, 0, 0], &x[0, 0, 0, 0], &partial[ci, 0], &g, &pl,
                                             n0, min(pl.nb, g.N - n0), wk + threadid() * pl.per_thread)
    # Add the chunks in order (deterministic), in parallel over blocks of entries when there
    # are enough of them to pay for waking the threads.
    cdef int nt_sum = n_threads if pl.chunks * FK >= 262144 else 1
    with nogil:
        for blk in prange(nblk, num_threads=nt_sum, schedule="static"):
            j0 = blk * 1024
            j1 = min(FK, j0 + 1024)
            for r in range(1, pl.chunks):
                for j in range(j0, j1):
                    partial[0, j] += partial[r, j]
    if pl.transposed:
        # partial[0] holds dW^T (K x F)
        for f in range(g.F):
            for k in range(g.K):
                dw[f * g.K + k] = partial[0, k * g.F + f]
    else:
        dw[:] = partial[0, :]


cdef double _row_sum(const floating* row, Py_ssize_t P) noexcept nogil:
    """Sum of ``row[:P]`` in 16 interleaved partial sums (which the compiler vectorises)."""
    cdef floating lanes[16]
    cdef floating s = 0
    cdef Py_ssize_t p, l, P16 = P - P % 16
    for l in range(16):
        lanes[l] = 0
    for p in range(0, P16, 16):
        for l in range(16):
            lanes[l] += row[p + l]
    for p in range(P16, P):
        s = s + row[p]
    for l in range(16):
        s = s + lanes[l]
    return s


def bias_grad(const floating[:, :, ::1] dy, floating[::1] db, int n_threads):
    """``db[f] = dy[:, f, :].sum()`` with dy viewed as ``(N, F, P)``; rows are added in double precision."""
    cdef Py_ssize_t N = dy.shape[0], F = dy.shape[1], P = dy.shape[2], f, n
    cdef double acc
    cdef bint simd = floating is float and _isa_detected == 2
    if db.shape[0] != F:
        raise ValueError("db has the wrong length")
    with nogil:
        for f in prange(F, num_threads=n_threads, schedule="static"):
            acc = 0
            for n in range(N):
                if floating is float:
                    if simd:
                        acc = acc + np_sum_z(&dy[n, f, 0], P)
                    else:
                        acc = acc + _row_sum(&dy[n, f, 0], P)
                else:
                    acc = acc + _row_sum(&dy[n, f, 0], P)
            db[f] = <floating> acc


# ---------------------------------------------------------------------------
# Utilities shared by the wrappers
# ---------------------------------------------------------------------------
def all_finite(const floating[::1] x, int n_threads):
    """True when no element of ``x`` is NaN or infinite (no allocation, GIL released).

    Tests the exponent bits, an integer OR-reduction the compiler vectorises.
    """
    cdef Py_ssize_t n = x.shape[0], blk, i, i0, i1
    cdef Py_ssize_t nblk = (n + 65535) // 65536
    cdef uint32_t bad32 = 0, acc32
    cdef uint64_t bad64 = 0, acc64
    cdef const uint32_t* u32
    cdef const uint64_t* u64
    if n == 0:
        return True
    if floating is float:
        u32 = <const uint32_t*> &x[0]
        with nogil:
            for blk in prange(nblk, num_threads=n_threads, schedule="static"):
                i0 = blk * 65536
                i1 = min(n, i0 + 65536)
                acc32 = 0
                for i in range(i0, i1):
                    acc32 = acc32 | ((u32[i] & 0x7F800000u) == 0x7F800000u)
                bad32 |= acc32
        return bad32 == 0
    else:
        u64 = <const uint64_t*> &x[0]
        with nogil:
            for blk in prange(nblk, num_threads=n_threads, schedule="static"):
                i0 = blk * 65536
                i1 = min(n, i0 + 65536)
                acc64 = 0
                for i in range(i0, i1):
                    acc64 = acc64 | ((u64[i] & 0x7FF0000000000000ull) == 0x7FF0000000000000ull)
                bad64 |= acc64
        return bad64 == 0
