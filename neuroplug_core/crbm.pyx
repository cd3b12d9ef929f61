# cython: language_level=3
"""Convolutional RBM kernels: probabilistic max-pooling (Lee et al. 2009).

The convolutions of a ConvRBM are the compiled conv kernels of
:mod:`neuroplug_core.conv`, reached through ``CythonOps.conv2d*``; this module
holds what the conv kernels do not: the block softmax over the detection
units of each pooling block (with its extra "all off" state), sampling one
state per block, and the visible non-linearity.

Layout: detection maps ``(n, F, H, W)`` C-contiguous, cut into ``ph x pw``
blocks; the last row and column of blocks are partial when ``H`` or ``W`` is
not a multiple (``PH = ceil(H / ph)``).  The work is independent per
``(sample, map)`` plane, so OpenMP threads take whole planes and the results
do not depend on the number of threads.

Randomness: ``pool_sample`` draws one uniform per block, in C order of
``(n, F, PH, PW)``, straight from a NumPy ``BitGenerator`` with NumPy's own
conversions (``(next_uint32 >> 8) * 2**-24`` for float32, ``next_double``
for float64), i.e. exactly what ``Generator.random((n, F, PH, PW), dtype)``
returns.  The reference ``Ops.crbm_sample_hidden`` draws the same way, so the
two backends make the same choices from the same generator.  The draws are
made serially under the generator's lock before the parallel part.

Nothing here validates its arguments: ``CythonOps`` checks shapes, dtypes and
contiguity first (DESIGN rule 4).
"""

cimport cython
from cython.parallel cimport prange
from libc.math cimport exp, expf, log, logf
from libc.string cimport memset
from numpy.random cimport bitgen_t

from ._fused cimport floating
from ._math cimport sigmoid
from ._random cimport bitgen_of, uniforms

import numpy as np


cdef inline floating _exp(floating x) noexcept nogil:
    if floating is float:
        return expf(x)
    else:
        return exp(x)


cdef inline floating _log(floating x) noexcept nogil:
    if floating is float:
        return logf(x)
    else:
        return log(x)


cdef inline floating _block_peak(const floating* plane, Py_ssize_t W, Py_ssize_t r0, Py_ssize_t r1,
                                 Py_ssize_t c0, Py_ssize_t c1) noexcept nogil:
    """Largest logit of the block, the off state's 0 included (the softmax shift)."""
    cdef floating peak = 0
    cdef Py_ssize_t r, c
    for r in range(r0, r1):
        for c in range(c0, c1):
            if plane[r * W + c] > peak:
                peak = plane[r * W + c]
    return peak


cdef void _pool_probs_plane(const floating* pre, floating* hprob, floating* pprob,
                            Py_ssize_t H, Py_ssize_t W, Py_ssize_t ph, Py_ssize_t pw) noexcept nogil:
    """Block softmax of one detection plane: ``hprob`` (H, W) and ``pprob`` (PH, PW)."""
    cdef Py_ssize_t PH = (H + ph - 1) // ph
    cdef Py_ssize_t PW = (W + pw - 1) // pw
    cdef Py_ssize_t bi, bj, r, c, r0, r1, c0, c1
    cdef floating peak, on, inv, e
    for bi in range(PH):
        r0 = bi * ph
        r1 = min(r0 + ph, H)
        for bj in range(PW):
            c0 = bj * pw
            c1 = min(c0 + pw, W)
            peak = _block_peak(pre, W, r0, r1, c0, c1)
            on = 0
            for r in range(r0, r1):
                for c in range(c0, c1):
                    e = _exp(pre[r * W + c] - peak)
                    hprob[r * W + c] = e
                    on = on + e
            # One division per block; the reference divides per unit (1 ulp apart at most).
            inv = 1 / (_exp(-peak) + on)
            for r in range(r0, r1):
                for c in range(c0, c1):
                    hprob[r * W + c] = hprob[r * W + c] * inv
            # on / denom rather than 1 - P(off): exact even when the block is almost surely off.
            pprob[bi * PW + bj] = on * inv


cdef void _log_partition_plane(const floating* pre, floating* out,
                               Py_ssize_t H, Py_ssize_t W, Py_ssize_t ph, Py_ssize_t pw) noexcept nogil:
    """``out[block] = log(1 + sum_i exp(pre_i))`` over the blocks of one plane."""
    cdef Py_ssize_t PH = (H + ph - 1) // ph
    cdef Py_ssize_t PW = (W + pw - 1) // pw
    cdef Py_ssize_t bi, bj, r, c, r0, r1, c0, c1
    cdef floating peak, s
    for bi in range(PH):
        r0 = bi * ph
        r1 = min(r0 + ph, H)
        for bj in range(PW):
            c0 = bj * pw
            c1 = min(c0 + pw, W)
            peak = _block_peak(pre, W, r0, r1, c0, c1)
            s = _exp(-peak)
            for r in range(r0, r1):
                for c in range(c0, c1):
                    s = s + _exp(pre[r * W + c] - peak)
            out[bi * PW + bj] = peak + _log(s)


cdef void _sample_plane(const floating* hprob, const floating* u, floating* hout,
                        Py_ssize_t H, Py_ssize_t W, Py_ssize_t ph, Py_ssize_t pw) noexcept nogil:
    """Pick one state per block of one plane from its uniform ``u[block]``.

    The chosen unit is the first one, in row-major order within the block,
    whose cumulative probability exceeds ``u``; none means "all off".  This
    is the inverse-CDF rule of the reference, summed in the same order.
    """
    cdef Py_ssize_t PH = (H + ph - 1) // ph
    cdef Py_ssize_t PW = (W + pw - 1) // pw
    cdef Py_ssize_t bi, bj, r, c, r0, r1, c0, c1
    cdef floating cum, ub
    cdef bint done
    memset(hout, 0, H * W * sizeof(floating))
    for bi in range(PH):
        r0 = bi * ph
        r1 = min(r0 + ph, H)
        for bj in range(PW):
            c0 = bj * pw
            c1 = min(c0 + pw, W)
            ub = u[bi * PW + bj]
            cum = 0
            done = False
            r = r0
            while r < r1 and not done:
                for c in range(c0, c1):
                    cum = cum + hprob[r * W + c]
                    if ub < cum:
                        hout[r * W + c] = 1
                        done = True
                        break
                r = r + 1


@cython.boundscheck(False)
@cython.wraparound(False)
def pool_probs(
    const floating[:, :, :, ::1] pre,     # IN  (n, F, H, W) detection pre-activations
    int ph, int pw,                        # IN  pooling block size
    floating[:, :, :, ::1] hprob,         # OUT (n, F, H, W) P(h = 1 | v)
    floating[:, :, :, ::1] pprob,         # OUT (n, F, PH, PW) P(pooling unit on | v)
    int n_threads=1,
):
    """Probabilistic max-pooling posteriors, as ``Ops.crbm_pool_probs``."""
    cdef Py_ssize_t N = pre.shape[0], F = pre.shape[1], H = pre.shape[2], W = pre.shape[3]
    cdef Py_ssize_t PH = pprob.shape[2], PW = pprob.shape[3]
    cdef Py_ssize_t plane
    with nogil:
        for plane in prange(N * F, schedule="static", num_threads=n_threads):
            _pool_probs_plane(&pre[0, 0, 0, 0] + plane * H * W, &hprob[0, 0, 0, 0] + plane * H * W,
                              &pprob[0, 0, 0, 0] + plane * PH * PW, H, W, ph, pw)


@cython.boundscheck(False)
@cython.wraparound(False)
def log_partition(
    const floating[:, :, :, ::1] pre,     # IN  (n, F, H, W) detection pre-activations
    int ph, int pw,                        # IN  pooling block size
    floating[:, :, :, ::1] out,           # OUT (n, F, PH, PW) log(1 + sum_block exp(pre))
    int n_threads=1,
):
    """Each block's log partition function given ``v`` (the hidden part of the free energy)."""
    cdef Py_ssize_t N = pre.shape[0], F = pre.shape[1], H = pre.shape[2], W = pre.shape[3]
    cdef Py_ssize_t PH = out.shape[2], PW = out.shape[3]
    cdef Py_ssize_t plane
    with nogil:
        for plane in prange(N * F, schedule="static", num_threads=n_threads):
            _log_partition_plane(&pre[0, 0, 0, 0] + plane * H * W, &out[0, 0, 0, 0] + plane * PH * PW,
                                 H, W, ph, pw)


@cython.boundscheck(False)
@cython.wraparound(False)
def pool_sample(
    const floating[:, :, :, ::1] hprob,   # IN  (n, F, H, W) block posteriors (from pool_probs)
    int ph, int pw,                        # IN  pooling block size
    object bit_generator,                  # IN  a NumPy BitGenerator (consumed: n*F*PH*PW draws)
    floating[:, :, :, ::1] hout,          # OUT (n, F, H, W) binary states, at most one 1 per block
    int n_threads=1,
):
    """Sample the detection units, as ``Ops.crbm_sample_hidden`` does draw for draw."""
    cdef Py_ssize_t N = hprob.shape[0], F = hprob.shape[1], H = hprob.shape[2], W = hprob.shape[3]
    cdef Py_ssize_t PH = (H + ph - 1) // ph
    cdef Py_ssize_t PW = (W + pw - 1) // pw
    cdef Py_ssize_t total = N * F * PH * PW
    cdef floating[::1] u = np.empty(total, dtype=np.float32 if floating is float else np.float64)
    cdef bitgen_t* bg = bitgen_of(bit_generator)
    cdef Py_ssize_t plane
    if total == 0:
        return
    with bit_generator.lock, nogil:
        uniforms(bg, &u[0], total)
    with nogil:
        for plane in prange(N * F, schedule="static", num_threads=n_threads):
            _sample_plane(&hprob[0, 0, 0, 0] + plane * H * W, &u[0] + plane * PH * PW,
                          &hout[0, 0, 0, 0] + plane * H * W, H, W, ph, pw)


@cython.boundscheck(False)
@cython.wraparound(False)
def visible_activation(
    floating[:, :, :, ::1] act,           # IN/OUT (n, C, H, W) top-down input, replaced by the means
    const floating[::1] bv,                # IN  (C,) visible biases
    bint gaussian,
    int n_threads=1,
):
    """``act = sigmoid(act + bv[c])`` (Bernoulli) or ``act + bv[c]`` (Gaussian), in place."""
    cdef Py_ssize_t N = act.shape[0], C = act.shape[1], HW = act.shape[2] * act.shape[3]
    cdef Py_ssize_t plane, i
    cdef floating b
    cdef floating* p
    with nogil:
        for plane in prange(N * C, schedule="static", num_threads=n_threads):
            p = &act[0, 0, 0, 0] + plane * HW
            b = bv[plane % C]
            if gaussian:
                for i in range(HW):
                    p[i] = p[i] + b
            else:
                for i in range(HW):
                    p[i] = sigmoid(p[i] + b)
