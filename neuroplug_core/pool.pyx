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


cdef extern from "np_pool.h":
    int np_pool_isa() noexcept nogil
    void np_maxpool_plane_f(const float* x, long H, long W, long KH, long KW, long SH, long SW,
                            float* y, int64_t* am, long OH, long OW) noexcept nogil
    void np_maxpool_plane_d(const double* x, long H, long W, long KH, long KW, long SH, long SW,
                            double* y, int64_t* am, long OH, long OW) noexcept nogil
    void np_maxpool_plane_fz(const float* x, long H, long W, long KH, long KW, long SH, long SW,
                             float* y, int64_t* am, long OH, long OW) noexcept nogil
    void np_maxpool_plane_fy(const float* x, long H, long W, long KH, long KW, long SH, long SW,
                             float* y, int64_t* am, long OH, long OW) noexcept nogil


# Widest float32 max-pooling kernel of this CPU: 2 AVX-512, 1 AVX2, 0 the portable loop.
cdef int _simd_detected = np_pool_isa()


def available_isas():
    """Max-pooling kernel names this CPU supports, from the portable loop up.

    :func:`maxpool2d_forward` takes one by its level (the index in this list).
    """
    return ["portable", "avx2", "avx512"][:_simd_detected + 1]


def maxpool2d_forward(
    const floating[:, :, :, ::1] x,     # IN: (N, C, H, W)
    floating[:, :, :, ::1] y,           # OUT: (N, C, OH, OW)
    int64_t[:, :, :, ::1] argmax,       # OUT: (N, C, OH, OW) flat index within the plane
    Py_ssize_t KH, Py_ssize_t KW, Py_ssize_t SH, Py_ssize_t SW,
    int n_threads,
    int isa,                            # IN: float32 kernel level (see available_isas)
):
    """Max pooling forward pass into ``y`` and ``argmax``."""
    if isa < 0 or isa > _simd_detected:
        raise ValueError(f"isa must be a level of {available_isas()} (0 to {_simd_detected}). Received: isa={isa}")
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
    cdef int simd = isa if (floating is float and H * W < 2147483647) else 0
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
