# cython: language_level=3
"""Restricted Boltzmann machine kernels: a whole CD-k / PCD-k epoch in one call.

The kernels run without the GIL.  Matrix products go through the BLAS that
SciPy ships (``scipy.linalg.cython_blas``); element-wise work runs in OpenMP
``prange`` loops; Bernoulli samples draw uniforms straight from a NumPy
``BitGenerator`` through its C API, in C order and with NumPy's own
conversions (``(next_uint32 >> 8) * 2**-24`` for float32, ``next_double`` for
float64).  A kernel therefore consumes the generator exactly as the NumPy
reference ``Ops.bernoulli`` (``rng.random(shape, dtype) < p``) does, so a
Cython epoch reproduces the reference epoch draw for draw.  The generator's
lock is held for the whole call, so another thread sharing the generator waits
instead of racing.

Nothing here validates its arguments: :class:`neuroplug.backends.cython_ops.CythonOps`
checks shapes, dtypes and contiguity first (DESIGN rule 4).  Matrices are
row-major; ``W`` is ``(n_hidden, n_visible)``, except inside a sparse epoch
(float32 inputs that are mostly zeros, see ``sparse_mode`` of :func:`cd_epoch`), which works
on a transposed copy so that each nonzero input selects a contiguous row of
weights.
"""

cimport cython
from cython.parallel cimport prange
from libc.math cimport exp, expf, expm1, expm1f, fabs, fabsf, log, log1p, log1pf, sqrt
from libc.string cimport memcpy
from numpy.random cimport bitgen_t
from ._blas cimport gemm_rm
from ._fused cimport floating
from ._math cimport sigmoid
from ._random cimport bitgen_of, uniforms

import numpy as np


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------
cdef extern from "np_rbm_sigmoid.h":
    void np_rbm_sigmoid_rows_f(float* x, const float* bias, float beta, const float* u, float* h,
                               int m, int ld, int c0, int c1) nogil

cdef extern from "np_rbm_small.h":
    int np_rbm_cpu_avx2() nogil
    void np_rbm_pack_init() nogil
    int np_rbm_compact_y(const float* v, int n, int* pos, float* val) noexcept nogil
    void np_rbm_dots_y(const float* A, long lda, const float* B, long ldb, float* out, long ldo,
                       long M, long N, long K) noexcept nogil
    void np_rbm_axpy_y(const float* A, long ars, long aks, const float* B, long ldb, float* C, long ldc,
                       long M, long N, long K, float alpha, float beta, float* Wst, float decay,
                       float mom_next) noexcept nogil
    void np_rbm_spmm_y(const int* cnt, long cap, const int* idx, const float* val, long m,
                       const float* WT, long ld, float* out, long ldo, long j0, long j1) noexcept nogil
    void np_rbm_spger_y(const int* ccnt, long ccap, const int* ridx, const float* cval,
                        const int* ccnt2, const int* ridx2, const float* cval2, long nv,
                        const float* H, const float* H2, long ldh, float scale, float* DT, float* WT, long ld,
                        long j0, long j1, float beta, float decay, float mom_next) noexcept nogil


# Batches of at most this many rows use the unpacked kernels above (float32,
# AVX2 + FMA) by default; larger ones BLAS, whose packing then pays for itself.
cdef int _small_batch_default = 32 if np_rbm_cpu_avx2() else 0
np_rbm_pack_init()

# Largest share of nonzero inputs at which sparse="auto" takes the sparse products, and the
# rows it counts (the first of the epoch, so that the choice depends on the data and the
# shuffle only).
cdef double _SPARSE_MAX_DENSITY = 0.35
cdef int _SPARSE_PROBE_ROWS = 1024


def small_batch_available():
    """Whether this CPU runs the unpacked small-batch and sparse float32 kernels (AVX2 + FMA)."""
    return bool(np_rbm_cpu_avx2())


def default_small_batch_max():
    """The default ``small_batch_max`` of the kernels: 32 with AVX2 + FMA, else 0 (off)."""
    return _small_batch_default


cdef int _smax(int small_batch_max) except? -2:
    """The batch limit of the unpacked kernels for a call: -1 the default; 0 off; always 0 without AVX2 + FMA."""
    if small_batch_max < -1:
        raise ValueError(f"small_batch_max must be -1 (default) or >= 0. Received: {small_batch_max}")
    if not np_rbm_cpu_avx2():
        return 0
    return _small_batch_default if small_batch_max == -1 else small_batch_max


cdef bint _sparse_pays(const float* X, int n, int nv) noexcept nogil:
    """Whether the first rows of ``X`` are sparse enough for the sparse products (``"auto"``)."""
    cdef Py_ssize_t i, size = <Py_ssize_t> min(n, _SPARSE_PROBE_ROWS) * nv, nz = 0
    for i in range(size):
        nz += X[i] != 0
    return nz <= _SPARSE_MAX_DENSITY * size


cdef inline floating* _align64(floating* p) noexcept nogil:
    """``p`` rounded up to a 64-byte boundary (the buffer holds 16 spare elements)."""
    return <floating*> ((<size_t> p + 63) & ~(<size_t> 63))


cdef inline floating _softplus(floating x) noexcept nogil:
    # log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|)) without overflow.
    if floating is float:
        return (x if x > 0 else 0) + log1pf(expf(-fabsf(x)))
    else:
        return (x if x > 0 else 0) + log1p(exp(-fabs(x)))


cdef inline int _bound(int total, int n_parts, int part) noexcept nogil:
    """Start of ``part`` when ``total`` columns are cut in ``n_parts`` slices (multiples of 16).

    Slice ``t`` is ``[_bound(.., t), _bound(.., t + 1))``.  (Bounds are
    returned, not written through pointers, so that Cython sees them assigned
    inside parallel blocks and makes them thread-private.)
    """
    cdef int chunk = (total + n_parts - 1) // n_parts
    chunk = ((chunk + 15) // 16) * 16
    return min(total, part * chunk)


cdef void _hidden_block(int smax, const floating* v, const floating* W, const floating* bh, floating* out,
                        const floating* u, floating* h, int m, int nv, int nh, int j0, int j1,
                        floating beta, int ldt=0) noexcept nogil:
    """Hidden columns ``[j0, j1)``: ``out = sigmoid(beta (v W^T + bh))``; ``h = (u < out)`` when ``u``.

    ``u`` holds uniforms for the whole ``(m, nh)`` matrix in C order, so
    splitting the columns between threads does not change which uniform
    meets which probability.  With ``ldt > 0``, ``W`` holds the transposed
    weights, ``(nv, nh)`` in rows of ``ldt`` (the sparse epochs of :func:`cd_epoch`).
    """
    cdef Py_ssize_t r, j
    cdef floating p
    if ldt:
        gemm_rm(False, False, m, j1 - j0, nv, <floating> 1, v, nv, W + j0, ldt, <floating> 0, out + j0, nh)
    elif floating is float and m <= smax:
        np_rbm_dots_y(v, nv, W + <Py_ssize_t> j0 * nv, nv, out + j0, nh, m, j1 - j0, nv)
    else:
        gemm_rm(False, True, m, j1 - j0, nv, <floating> 1, v, nv, W + j0 * nv, nv, <floating> 0, out + j0, nh)
    if floating is float:
        np_rbm_sigmoid_rows_f(out, bh, beta, u, h, m, nh, j0, j1)
    else:
        for r in range(m):
            for j in range(j0, j1):
                p = sigmoid(beta * (out[r * nh + j] + bh[j]))
                out[r * nh + j] = p
                if u != NULL:
                    h[r * nh + j] = 1 if u[r * nh + j] < p else 0


cdef void _visible_act(floating* out, const floating* bv, const floating* u, int m, int nv, int i0, int i1,
                       bint gaussian) noexcept nogil:
    """Columns ``[i0, i1)`` of ``out`` (holding ``h W``): add ``bv``, then the mean (or sample with ``u``)."""
    cdef Py_ssize_t r, i
    cdef floating a
    if floating is float:
        if not gaussian:
            np_rbm_sigmoid_rows_f(out, bv, 1, u, out, m, nv, i0, i1)
            return
    for r in range(m):
        for i in range(i0, i1):
            a = out[r * nv + i] + bv[i]
            if not gaussian:
                a = sigmoid(a)
                if u != NULL:
                    a = 1 if u[r * nv + i] < a else 0
            out[r * nv + i] = a


# One uniform from the bit generator costs about as much as this many multiply-adds of a
# single-threaded GEMM (measured; see docs/guide/backends.rst).  It sets
# how _hidden_and_draw shares the hidden columns; being a constant, the share depends on
# the shapes and the thread count only, so fits stay reproducible.
cdef int _UNIFORM_MACS = 96


# A multiply-add of the sparse products (np_rbm_spmm_y) costs about this many of a GEMM's
# (measured on MNIST; see docs/guide/backends.rst).
cdef double _SPARSE_MACS = 2.4


cdef int _draw_share(double work, int nh, Py_ssize_t n_u, int n_threads) noexcept nogil:
    """Hidden columns for thread 0 in :func:`_hidden_and_draw`, so that drawing ``n_u`` uniforms
    plus its columns takes about as long as another thread's columns (a multiple of 16).
    ``work`` is a column's cost in multiply-adds."""
    cdef double d = <double> _UNIFORM_MACS * n_u / max(work, 1.0)     # the draw, in columns
    cdef double first = (nh + d) / n_threads - d
    cdef int cols = <int> ((first + 8) / 16) * 16 if first > 0 else 0
    return min(cols, nh)


cdef void _hidden_and_draw(int smax, const floating* v, const floating* W, const floating* bh, floating* out,
                           int m, int nv, int nh, int n_threads, bitgen_t* bg, floating* u,
                           Py_ssize_t n_u, int ldt, const int* rcnt=NULL, const int* idx=NULL,
                           const float* val=NULL, const floating* us=NULL, floating* hs=NULL) noexcept nogil:
    """:func:`_hidden` while thread 0 first draws the next ``n_u`` uniforms into ``u``.

    Means only, or with ``us`` the samples ``hs = (us < out)`` too.

    Thread 0 takes fewer hidden columns (:func:`_draw_share`), so the others
    do not wait for the draw.  (BLAS may round a column's float32 sums
    differently in a wider or narrower slice, so the last bits of an RBM
    epoch depend on the split, and with it on the thread count; the split
    depends on nothing else, so a fit is reproducible for a given count.)
    With ``rcnt`` (float32), ``v`` is given by its nonzeros (:func:`_nonzeros`)
    and the product is :func:`_hidden_sparse`'s; a column then costs
    :data:`_SPARSE_MACS` per nonzero instead of ``m nv`` multiply-adds.
    """
    cdef int t, j0, j1, r
    cdef bint done
    cdef double work = <double> m * nv
    if rcnt != NULL:
        work = 0
        for r in range(m):
            work += rcnt[r]
        work *= _SPARSE_MACS
    cdef int first = _draw_share(work, nh, n_u, n_threads)
    for t in prange(n_threads, num_threads=n_threads, schedule="static"):
        if t == 0:
            uniforms(bg, u, n_u)
            j0 = 0
            j1 = first
        else:
            j0 = first + _bound(nh - first, n_threads - 1, t - 1)
            j1 = first + _bound(nh - first, n_threads - 1, t)
        done = j1 <= j0
        if floating is float:
            if not done and rcnt != NULL:
                np_rbm_spmm_y(rcnt, nv, idx, val, m, W, ldt, out, nh, j0, j1)
                np_rbm_sigmoid_rows_f(out, bh, 1, us, hs, m, nh, j0, j1)
                done = True
        if not done:
            _hidden_block(smax, v, W, bh, out, us, hs, m, nv, nh, j0, j1, 1, ldt)


cdef void _visible_block(int smax, const floating* h, const floating* W, const floating* bv, floating* out,
                         const floating* u, int m, int nv, int nh, int i0, int i1,
                         bint gaussian, int ldt=0) noexcept nogil:
    """Visible columns ``[i0, i1)``: ``out = sigmoid(h W + bv)`` (Bernoulli) or ``h W + bv``.

    With ``u`` (Bernoulli only) the means are replaced by the samples ``u < mean``;
    with ``ldt > 0``, ``W`` is transposed, ``(nv, nh)`` in rows of ``ldt``.
    """
    if ldt:
        gemm_rm(False, True, m, i1 - i0, nh, <floating> 1, h, nh, W + <Py_ssize_t> i0 * ldt, ldt, <floating> 0,
              out + i0, nv)
    elif floating is float and m <= smax:
        np_rbm_axpy_y(h, nh, 1, W + i0, nv, out + i0, nv, m, i1 - i0, nh, 1, 0, NULL, 0, 1)
    else:
        gemm_rm(False, False, m, i1 - i0, nh, <floating> 1, h, nh, W + i0, nv, <floating> 0, out + i0, nv)
    _visible_act(out, bv, u, m, nv, i0, i1, gaussian)


cdef void _hidden(int smax, const floating* v, const floating* W, const floating* bh, floating* out,
                  const floating* u, floating* h, int m, int nv, int nh, floating beta,
                  int n_threads, int ldt=0) noexcept nogil:
    """:func:`_hidden_block` over all hidden columns, split between OpenMP threads.

    Each thread runs a single-threaded GEMM on its own slice of ``W`` (the
    wrapper holds BLAS at one thread), so BLAS and OpenMP threads never
    compete for the cores.
    """
    cdef int j0, j1, t
    if n_threads <= 1:
        _hidden_block(smax, v, W, bh, out, u, h, m, nv, nh, 0, nh, beta, ldt)
        return
    for t in prange(n_threads, num_threads=n_threads, schedule="static"):
        j0 = _bound(nh, n_threads, t)
        j1 = _bound(nh, n_threads, t + 1)
        if j1 > j0:
            _hidden_block(smax, v, W, bh, out, u, h, m, nv, nh, j0, j1, beta, ldt)


cdef void _visible(int smax, const floating* h, const floating* W, const floating* bv, floating* out,
                   const floating* u, int m, int nv, int nh, bint gaussian, int n_threads,
                   int ldt=0) noexcept nogil:
    """:func:`_visible_block` over all visible columns, split between OpenMP threads."""
    cdef int i0, i1, t
    if n_threads <= 1:
        _visible_block(smax, h, W, bv, out, u, m, nv, nh, 0, nv, gaussian, ldt)
        return
    for t in prange(n_threads, num_threads=n_threads, schedule="static"):
        i0 = _bound(nv, n_threads, t)
        i1 = _bound(nv, n_threads, t + 1)
        if i1 > i0:
            _visible_block(smax, h, W, bv, out, u, m, nv, nh, i0, i1, gaussian, ldt)


cdef void _visible_rows(int smax, const floating* h, const floating* W, const floating* bv, floating* out,
                        floating* part, const floating* u, int m, int nv, int nh, bint gaussian,
                        int n_threads) noexcept nogil:
    """:func:`_visible` with the threads cut along the hidden units.

    Each thread multiplies its own rows of ``W`` (the rows it also reads in
    :func:`_hidden` and writes in :func:`_update_block`) into its slice of
    ``part`` (``n_threads`` blocks of ``m x nv``); the partial products are
    then summed by column slices.  Cutting ``h W`` by visible columns
    instead makes every thread read a slice of every row of ``W``, and the
    update that follows then waits on the other core for half of the cache
    lines it writes: at batch size 10 that cost more than the products.
    (Sparse epochs cut by visible columns all the same: at batch 100 the
    partial sums cost more than the shared lines.)
    """
    cdef int t, j0, j1, i0, i1, q
    cdef Py_ssize_t r, i, size = <Py_ssize_t> m * nv
    cdef floating s
    for t in prange(n_threads, num_threads=n_threads, schedule="static"):
        j0 = _bound(nh, n_threads, t)
        j1 = _bound(nh, n_threads, t + 1)
        if j1 > j0:
            if floating is float and m <= smax:
                np_rbm_axpy_y(h + j0, nh, 1, W + <Py_ssize_t> j0 * nv, nv, part + t * size, nv,
                              m, nv, j1 - j0, 1, 0, NULL, 0, 1)
            else:
                gemm_rm(False, False, m, nv, j1 - j0, <floating> 1, h + j0, nh, W + <Py_ssize_t> j0 * nv, nv,
                      <floating> 0, part + t * size, nv)
        else:
            for i in range(size):
                part[t * size + i] = 0
    for t in prange(n_threads, num_threads=n_threads, schedule="static"):
        i0 = _bound(nv, n_threads, t)
        i1 = _bound(nv, n_threads, t + 1)
        if i1 > i0:
            for r in range(m):
                for i in range(i0, i1):
                    s = part[r * nv + i]
                    for q in range(1, n_threads):
                        s = s + part[q * size + r * nv + i]
                    out[r * nv + i] = s
            _visible_act(out, bv, u, m, nv, i0, i1, gaussian)


cdef void _update_hidden_bias(floating* bh, floating* dbh, floating* H2, floating* hsum, int m, int nh,
                              int j0, int j1, floating scale, floating mom) noexcept nogil:
    """Hidden biases ``[j0, j1)``; negates the rows ``phk`` of ``H2 = [ph0; phk]`` in those columns."""
    cdef Py_ssize_t r, j
    for j in range(j0, j1):
        hsum[j] = 0
    for r in range(m):
        for j in range(j0, j1):
            hsum[j] += H2[r * nh + j] - H2[(m + r) * nh + j]
            H2[(m + r) * nh + j] = -H2[(m + r) * nh + j]
    for j in range(j0, j1):
        dbh[j] = mom * dbh[j] + scale * hsum[j]
        bh[j] += dbh[j]


cdef void _update_visible_bias(floating* bv, floating* dbv, const floating* v0, const floating* vk,
                               floating* vsum, double* vsq, double* err, int m, int nv, int i0, int i1,
                               floating scale, floating mom) noexcept nogil:
    """Visible biases ``[i0, i1)`` from the rows ``v0`` and ``vk``; ``err`` gets their squared differences.

    Row by row, with a sum per column in ``vsum`` and ``vsq`` (``nv`` each),
    so that the loops run along rows and vectorise.
    """
    cdef Py_ssize_t r, i
    cdef floating d
    cdef double e = 0
    for i in range(i0, i1):
        vsum[i] = 0
        vsq[i] = 0
    for r in range(m):
        for i in range(i0, i1):
            d = v0[r * nv + i] - vk[r * nv + i]
            vsum[i] += d
            vsq[i] += d * d
    for i in range(i0, i1):
        dbv[i] = mom * dbv[i] + scale * vsum[i]
        bv[i] += dbv[i]
        e += vsq[i]
    err[0] = e


cdef inline void _step_weights(floating* W, floating* dW, Py_ssize_t n, floating decay,
                               floating mom_next) noexcept nogil:
    """``W += dW - decay W`` over ``n`` entries; ``dW`` leaves holding that step times ``mom_next``."""
    cdef Py_ssize_t j
    cdef floating step
    if decay == 0 and mom_next == 1:
        for j in range(n):
            W[j] += dW[j]
    else:
        for j in range(n):
            step = dW[j] - decay * W[j]
            W[j] += step
            dW[j] = step * mom_next


cdef void _update_block(int smax, floating* W, floating* bh, floating* bv, floating* dW, floating* dbh,
                        floating* dbv, floating* H2, const floating* V2, floating* hsum, floating* vsum,
                        double* vsq, double* err, int m, int nv, int nh, int j0, int j1, int i0, int i1,
                        floating scale, floating mom, floating decay, floating beta,
                        floating mom_next) noexcept nogil:
    """Parameter update for hidden rows ``[j0, j1)`` of ``W`` and visible columns ``[i0, i1)``.

    ``H2`` stacks ``[ph0; phk]`` and ``V2`` stacks ``[v0; vk]`` (``2 m`` rows).
    The rows ``phk`` are negated (in this block's columns) so that one GEMM
    gives ``ph0^T v0 - phk^T vk``.  The GEMM's ``beta`` is the momentum on
    an epoch's first batch; later batches find ``dW`` already multiplied by
    the momentum (``mom_next``, applied in the pass that updates ``W``), so
    BLAS skips its separate pass over ``dW`` (``beta = 1``): at small batch
    sizes those passes over the weights cost as much as the products.
    """
    _update_hidden_bias(bh, dbh, H2, hsum, m, nh, j0, j1, scale, mom)
    if floating is float and m <= smax:
        # The step in the same pass: one pass over dW fewer (W and dW, 3 MB for MNIST's
        # 500 x 784, do not fit in L2; see NP_RBM_KB for the measured gain).
        np_rbm_axpy_y(H2 + j0, 1, nh, V2, nv, dW + <Py_ssize_t> j0 * nv, nv, j1 - j0, nv, 2 * m, scale, beta,
                      W + <Py_ssize_t> j0 * nv, decay, mom_next)
    else:
        gemm_rm(True, False, j1 - j0, nv, 2 * m, scale, H2 + j0, nh, V2, nv, beta, dW + j0 * nv, nv)
        _step_weights(W + <Py_ssize_t> j0 * nv, dW + <Py_ssize_t> j0 * nv, <Py_ssize_t> (j1 - j0) * nv, decay,
                      mom_next)
    _update_visible_bias(bv, dbv, V2, V2 + <Py_ssize_t> m * nv, vsum, vsq, err, m, nv, i0, i1, scale, mom)


cdef void _update_block_sparse(float* WT, float* bh, float* bv, float* dWT, float* dbh, float* dbv,
                               float* H2, const float* v0, const float* vk, float* hsum, float* vsum,
                               double* vsq, double* err, const int* ccnt,
                               const int* ridx, const float* cval, const int* ccnt2, const int* ridx2,
                               const float* cval2, int m, int nv, int nh, int ldt, int j0,
                               int j1, int i0, int i1, float scale, float mom, float decay, float beta,
                               float mom_next) noexcept nogil:
    """:func:`_update_block` on transposed weights ``WT`` and ``dWT`` ``(nv, nh)`` (rows of ``ldt``),
    hidden columns ``[j0, j1)``; ``vk`` is the negative phase's visible rows, ``v0`` the batch's.

    The positive phase ``v0^T ph0`` adds, for each visible unit, only the
    batch rows where ``v0`` is not zero (``ccnt``, ``ridx``, ``cval``: ``v0``
    by columns, see :func:`_nonzeros`), in the same pass as the step of the
    weights.  The negative phase ``-vk^T phk`` is a GEMM before that pass
    for mean-field ``vk``; sampled binary ``vk`` come by columns too
    (``ccnt2``, ``ridx2``, ``cval2``) and join the positive phase's pass.
    """
    _update_hidden_bias(bh, dbh, H2, hsum, m, nh, j0, j1, scale, mom)
    if ccnt2 == NULL:
        gemm_rm(True, False, nv, j1 - j0, m, scale, vk, nv, H2 + <Py_ssize_t> m * nh + j0, nh, beta, dWT + j0, ldt)
        beta = 1
    np_rbm_spger_y(ccnt, m, ridx, cval, ccnt2, ridx2, cval2, nv, H2, H2 + <Py_ssize_t> m * nh, nh, scale,
                   dWT, WT, ldt, j0, j1, beta, decay, mom_next)
    _update_visible_bias(bv, dbv, v0, vk, vsum, vsq, err, m, nv, i0, i1, scale, mom)


cdef void _hidden_sparse(const int* rcnt, const int* idx, const float* val, const float* WT, int ldt,
                         const float* bh, float* out, const float* u, float* h, int m, int nv, int nh,
                         int n_threads) noexcept nogil:
    """:func:`_hidden` for sparse visible rows, given by rows (see :func:`_nonzeros`), and
    transposed weights ``WT`` ``(nv, nh)`` (rows of ``ldt``)."""
    cdef int t, j0, j1
    for t in prange(n_threads, num_threads=n_threads, schedule="static"):
        j0 = _bound(nh, n_threads, t)
        j1 = _bound(nh, n_threads, t + 1)
        if j1 > j0:
            np_rbm_spmm_y(rcnt, nv, idx, val, m, WT, ldt, out, nh, j0, j1)
            np_rbm_sigmoid_rows_f(out, bh, 1, u, h, m, nh, j0, j1)


cdef void _nonzeros(const float* v, int m, int nv, int* rcnt, int* idx, float* val, int* ccnt, int* ridx,
                    float* cval, int n_threads) noexcept nogil:
    """The nonzeros of the ``(m, nv)`` rows ``v``, by rows and by columns, split between threads.

    Row ``r``'s are ``idx, val[r nv ... r nv + rcnt[r])`` (columns, values);
    column ``i``'s are ``ridx, cval[i m ... i m + ccnt[i])`` (rows, values),
    in increasing order.  Fixed room per row and column, so the threads need
    no prefix sums.  The rows are packed first (:c:func:`np_rbm_compact_y`);
    each thread then appends, row by row, the entries of its columns (reading
    ``v`` down the columns instead was slower).
    """
    cdef int t, r, i, i0, i1, p, p1
    for t in prange(n_threads, num_threads=n_threads, schedule="static"):
        for r in range(t * m // n_threads, (t + 1) * m // n_threads):
            rcnt[r] = np_rbm_compact_y(v + <Py_ssize_t> r * nv, nv, idx + <Py_ssize_t> r * nv,
                                       val + <Py_ssize_t> r * nv)
    for t in prange(n_threads, num_threads=n_threads, schedule="static"):
        i0 = t * nv // n_threads
        i1 = (t + 1) * nv // n_threads
        for i in range(i0, i1):
            ccnt[i] = 0
        for r in range(m):
            p = r * nv
            p1 = p + rcnt[r]
            while p < p1 and idx[p] < i0:
                p = p + 1
            while p < p1 and idx[p] < i1:
                i = idx[p]
                ridx[i * m + ccnt[i]] = r
                cval[i * m + ccnt[i]] = val[p]
                ccnt[i] = ccnt[i] + 1
                p = p + 1


def _nonzero_lists(int rows, int nv, bint used):
    """Room for the nonzeros of ``rows`` rows of ``nv`` values by rows and by columns (see
    :func:`_nonzeros`): ``rcnt, idx, val, ccnt, ridx, cval``; single elements when not ``used``."""
    cdef Py_ssize_t size = <Py_ssize_t> rows * nv if used else 1
    return (np.empty(rows if used else 1, dtype=np.intc), np.empty(size, dtype=np.intc),
            np.empty(size, dtype=np.float32), np.empty(nv if used else 1, dtype=np.intc),
            np.empty(size, dtype=np.intc), np.empty(size, dtype=np.float32))


cdef void _transpose(const floating* a, int rows, int cols, int lda, floating* out, int ldo) noexcept nogil:
    """``out (cols, rows) = a (rows, cols)^T`` (rows of ``lda`` and ``ldo``), in 32 x 32 blocks."""
    cdef Py_ssize_t r0, c0, r, c
    for r0 in range(0, rows, 32):
        for c0 in range(0, cols, 32):
            for r in range(r0, min(r0 + 32, rows)):
                for c in range(c0, min(c0 + 32, cols)):
                    out[c * ldo + r] = a[r * lda + c]


# ---------------------------------------------------------------------------
# CD-k / PCD-k epoch
# ---------------------------------------------------------------------------
@cython.boundscheck(False)
@cython.wraparound(False)
def cd_epoch(
    const floating[:, ::1] X,       # IN  (n_samples, n_visible), rows in training order
    floating[:, ::1] W,             # IN/OUT (n_hidden, n_visible)
    floating[::1] bh,               # IN/OUT (n_hidden,)
    floating[::1] bv,               # IN/OUT (n_visible,)
    floating[:, ::1] dW,            # IN/OUT momentum buffer of W
    floating[::1] dbh,              # IN/OUT momentum buffer of bh
    floating[::1] dbv,              # IN/OUT momentum buffer of bv
    int k,
    double learning_rate,
    double momentum,
    double weight_decay,
    int batch_size,
    bint gaussian,
    object bit_generator,
    floating[:, ::1] chain=None,    # IN/OUT (batch_size, n_hidden) persistent hidden states, or None
    int n_threads=1,
    bint sample_visible=False,      # binary visible states instead of their means (Bernoulli units)
    *,
    int small_batch_max=-1,         # batches up to this size use the unpacked kernels; -1 the default
    int sparse_mode=1,              # sparse products: 0 never, 1 when the data are mostly zeros, 2 always
):
    """Run one epoch of CD-k (PCD-k when ``chain`` is given); return the reconstruction error.

    The algorithm is :meth:`neuroplug.ops.Ops.cd_epoch` step for step,
    including the order of the random draws.  The caller must hold BLAS at
    one thread when ``n_threads > 1`` (each OpenMP thread runs its own GEMMs).
    """
    cdef int smax = _smax(small_batch_max)
    if sparse_mode not in (0, 1, 2):
        raise ValueError(f"sparse_mode must be 0 (never), 1 (auto) or 2 (always). Received: {sparse_mode}")
    cdef int n = X.shape[0]
    cdef int nh = W.shape[0]
    cdef int nv = W.shape[1]
    cdef bint persistent = chain is not None
    if n_threads < 1:
        n_threads = 1
    dtype = np.float32 if floating is float else np.float64
    # Scratch reused by every batch: stacked [v0; vk] and [ph0; phk], hidden
    # samples, uniforms, column sums and per-thread error sums.
    cdef floating[:, ::1] V2 = np.empty((2 * batch_size, nv), dtype=dtype)
    cdef floating[:, ::1] H2 = np.empty((2 * batch_size, nh), dtype=dtype)
    cdef floating[:, ::1] Hs = np.empty((batch_size, nh), dtype=dtype)
    cdef floating[:, ::1] U = np.empty((batch_size, nh), dtype=dtype)
    cdef floating[:, ::1] UV = np.empty((batch_size if sample_visible else 1, nv), dtype=dtype)
    cdef floating* uv = &UV[0, 0] if sample_visible else NULL
    # CD on several threads draws the next batch's first uniforms during this batch's last
    # hidden pass (nothing is drawn in between, so the stream order is the reference's),
    # into a second buffer; drawing them alone kept the other threads waiting 5 % of an epoch
    # at batch 100.  Not for the small batches of the unpacked kernels: their draw is short,
    # and the uneven split would have each thread read W rows that the other one updates.
    cdef bint lookahead = not persistent and n_threads > 1 and (floating is not float or batch_size > smax)
    cdef floating[:, ::1] U2 = np.empty((batch_size if lookahead else 1, nh), dtype=dtype)
    cdef floating* unext = &U2[0, 0]
    cdef floating* uswap
    cdef bint drawn = False         # u already holds this batch's first uniforms
    cdef bint drawn_v = False       # uv already holds the next visible sample's uniforms
    cdef floating[::1] hsum = np.empty(nh, dtype=dtype)
    cdef floating[::1] vsum = np.empty(nv, dtype=dtype)
    cdef double[::1] vsq = np.empty(nv, dtype=np.float64)
    cdef double[::1] errs = np.zeros(n_threads, dtype=np.float64)
    cdef bitgen_t* bg = bitgen_of(bit_generator)
    cdef floating* v0 = &V2[0, 0]
    cdef const floating* x0         # the batch: v0, or the rows of X themselves in sparse epochs
    cdef floating* ph0 = &H2[0, 0]
    cdef floating* hs = &Hs[0, 0]
    cdef floating* us               # this batch's uniforms for h0, or NULL (PCD)
    cdef floating* u = &U[0, 0]
    cdef floating* vk
    cdef floating* phk
    cdef floating decay = <floating> (learning_rate * weight_decay)
    cdef floating mom = <floating> momentum
    cdef floating scale, beta, mom_next
    cdef double err = 0
    cdef int batch, start, m, step, t, j0, j1, i0, i1, m_next
    cdef int n_batches = (n + batch_size - 1) // batch_size
    # Sparse epochs: the weights and their momentum transposed, (nv, nh), so that a nonzero
    # input selects a contiguous row; each batch's nonzeros by rows (CSR) and columns (CSC).
    # Rows are padded to whole cache lines and aligned, so that the threads' column slices
    # (cut at multiples of 16) never share a line (false sharing in the momentum writes).
    cdef bint sparse = False
    if floating is float:
        sparse = (sparse_mode != 0 and not gaussian and batch_size > smax and np_rbm_cpu_avx2()
                  and (sparse_mode == 2 or _sparse_pays(&X[0, 0], n, nv)))
    cdef int ldt = (nh + 15) // 16 * 16 if sparse else 0
    if sparse and ldt % 128 == 0:
        # A stride of a power of two (500 hidden units padded to 512) maps a column block of
        # every row to the same few cache sets; one more line per row spreads them.
        ldt += 16
    cdef floating[::1] WT = np.zeros(nv * ldt + 16 if sparse else 1, dtype=dtype)
    cdef floating[::1] dWT = np.zeros(nv * ldt + 16 if sparse else 1, dtype=dtype)
    cdef int[::1] rcnt, idx, ccnt, ridx, rcnt2, idx2, ccnt2, ridx2
    cdef float[::1] val, cval, val2, cval2
    rcnt, idx, val, ccnt, ridx, cval = _nonzero_lists(batch_size, nv, sparse)
    # Sparse epochs with sampled visible states: vk's nonzeros by rows and columns too.
    cdef bint sparse_k = sparse and sample_visible
    rcnt2, idx2, val2, ccnt2, ridx2, cval2 = _nonzero_lists(batch_size, nv, sparse_k)
    cdef floating* Wp = _align64(&WT[0]) if sparse else &W[0, 0]
    # Partial products of h W by hidden slices (see _visible_rows), in dense epochs.
    cdef floating[::1] part = np.empty(n_threads * batch_size * nv if n_threads > 1 and not sparse else 1,
                                      dtype=dtype)
    cdef floating* dWp = _align64(&dWT[0]) if sparse else &dW[0, 0]

    with bit_generator.lock, nogil:
        if sparse:
            _transpose(&W[0, 0], nh, nv, nv, Wp, ldt)
            _transpose(&dW[0, 0], nh, nv, nv, dWp, ldt)
        for batch in range(n_batches):
            start = batch * batch_size
            m = min(batch_size, n - start)
            vk = &V2[m, 0]
            phk = &H2[m, 0]
            if sparse:      # the products take v0's nonzeros by rows and columns; it is read in place
                x0 = &X[start, 0]
                if floating is float:
                    _nonzeros(x0, m, nv, &rcnt[0], &idx[0], &val[0], &ccnt[0], &ridx[0], &cval[0], n_threads)
            else:           # stacked above vk for the update's GEMM
                memcpy(v0, &X[start, 0], m * nv * sizeof(floating))
                x0 = v0

            # Positive phase; the negative chain starts from h ~ p(h | v0) (CD: drawn with the
            # uniforms us) or from the persistent states (PCD: us is NULL, nothing is sampled).
            us = NULL
            if not persistent:
                if not drawn:
                    uniforms(bg, u, m * nh)
                drawn = False
                us = u
            if floating is float and sparse_k and n_threads > 1:
                # The first visible sample's uniforms come next in the stream: drawn during the
                # positive phase, by a thread with fewer columns (drawn alone, it kept the
                # other threads waiting).
                _hidden_and_draw(smax, x0, Wp, &bh[0], ph0, m, nv, nh, n_threads, bg, uv, <Py_ssize_t> m * nv, ldt,
                                 &rcnt[0], &idx[0], &val[0], us, hs)
                drawn_v = True
            elif floating is float and sparse:
                _hidden_sparse(&rcnt[0], &idx[0], &val[0], Wp, ldt, &bh[0], ph0, us, hs, m, nv, nh, n_threads)
            else:
                _hidden(smax, v0, Wp, &bh[0], ph0, us, hs, m, nv, nh, 1, n_threads)
            if persistent:
                memcpy(hs, &chain[0, 0], m * nh * sizeof(floating))

            # k steps of block Gibbs sampling with mean-field (or sampled) visible units.
            for step in range(k):
                if sample_visible and not drawn_v:
                    uniforms(bg, uv, m * nv)
                drawn_v = False
                if n_threads > 1 and not sparse:
                    _visible_rows(smax, hs, Wp, &bv[0], vk, &part[0], uv, m, nv, nh, gaussian, n_threads)
                else:
                    _visible(smax, hs, Wp, &bv[0], vk, uv, m, nv, nh, gaussian, n_threads, ldt)
                if floating is float:
                    if sparse_k:
                        _nonzeros(vk, m, nv, &rcnt2[0], &idx2[0], &val2[0], &ccnt2[0], &ridx2[0], &cval2[0],
                                  n_threads)
                if persistent or step < k - 1:
                    uniforms(bg, u, m * nh)
                    if floating is float and sparse_k:
                        _hidden_sparse(&rcnt2[0], &idx2[0], &val2[0], Wp, ldt, &bh[0], phk, u, hs, m, nv, nh,
                                       n_threads)
                    else:
                        _hidden(smax, vk, Wp, &bh[0], phk, u, hs, m, nv, nh, 1, n_threads, ldt)
                elif lookahead and batch + 1 < n_batches:
                    # CD discards the last hidden sample: no sample, and the next batch's draw.
                    m_next = min(batch_size, n - start - m)
                    if floating is float and sparse_k:
                        _hidden_and_draw(smax, vk, Wp, &bh[0], phk, m, nv, nh, n_threads, bg, unext,
                                         <Py_ssize_t> m_next * nh, ldt, &rcnt2[0], &idx2[0], &val2[0])
                    else:
                        _hidden_and_draw(smax, vk, Wp, &bh[0], phk, m, nv, nh, n_threads, bg, unext,
                                         <Py_ssize_t> m_next * nh, ldt)
                    uswap = u
                    u = unext
                    unext = uswap
                    drawn = True
                elif floating is float and sparse_k:
                    _hidden_sparse(&rcnt2[0], &idx2[0], &val2[0], Wp, ldt, &bh[0], phk, NULL, NULL, m, nv, nh,
                                   n_threads)
                else:
                    _hidden(smax, vk, Wp, &bh[0], phk, NULL, NULL, m, nv, nh, 1, n_threads, ldt)
            if persistent:
                memcpy(&chain[0, 0], hs, m * nh * sizeof(floating))

            scale = <floating> (learning_rate / m)
            # dW arrives multiplied by the momentum except on the first batch;
            # it leaves multiplied by it except after the last (see _update_block).
            beta = mom if batch == 0 else 1
            mom_next = 1 if batch == n_batches - 1 else mom
            if floating is float and sparse:
                for t in prange(n_threads, num_threads=n_threads, schedule="static"):
                    j0 = _bound(nh, n_threads, t)
                    j1 = _bound(nh, n_threads, t + 1)
                    i0 = _bound(nv, n_threads, t)
                    i1 = _bound(nv, n_threads, t + 1)
                    _update_block_sparse(Wp, &bh[0], &bv[0], dWp, &dbh[0], &dbv[0], &H2[0, 0], x0, vk,
                                         &hsum[0], &vsum[0], &vsq[0], &errs[t], &ccnt[0], &ridx[0], &cval[0],
                                         &ccnt2[0] if sparse_k else NULL, &ridx2[0], &cval2[0],
                                         m, nv, nh, ldt, j0, j1, i0, i1, scale, mom, decay, beta, mom_next)
            elif n_threads == 1:
                _update_block(smax, &W[0, 0], &bh[0], &bv[0], &dW[0, 0], &dbh[0], &dbv[0], &H2[0, 0], v0,
                              &hsum[0], &vsum[0], &vsq[0], &errs[0], m, nv, nh, 0, nh, 0, nv, scale, mom, decay,
                              beta, mom_next)
            else:
                for t in prange(n_threads, num_threads=n_threads, schedule="static"):
                    j0 = _bound(nh, n_threads, t)
                    j1 = _bound(nh, n_threads, t + 1)
                    i0 = _bound(nv, n_threads, t)
                    i1 = _bound(nv, n_threads, t + 1)
                    _update_block(smax, &W[0, 0], &bh[0], &bv[0], &dW[0, 0], &dbh[0], &dbv[0], &H2[0, 0], v0,
                                  &hsum[0], &vsum[0], &vsq[0], &errs[t], m, nv, nh, j0, j1, i0, i1, scale, mom,
                                  decay, beta, mom_next)
            for t in range(n_threads):
                err += errs[t]
                errs[t] = 0
        if sparse:
            _transpose(Wp, nv, nh, ldt, &W[0, 0], nv)
            _transpose(dWp, nv, nh, ldt, &dW[0, 0], nv)
    return err / n


# ---------------------------------------------------------------------------
# Sampling for generation and for annealed importance sampling
# ---------------------------------------------------------------------------
@cython.boundscheck(False)
@cython.wraparound(False)
def hidden_probs(
    const floating[:, ::1] V,       # IN  (m, n_visible)
    const floating[:, ::1] W,       # IN  (n_hidden, n_visible)
    const floating[::1] bh,         # IN  (n_hidden,)
    floating[:, ::1] out,           # OUT (m, n_hidden)
    double beta=1.0,
    int n_threads=1,
    *,
    int small_batch_max=-1,         # batches up to this size use the unpacked kernels; -1 the default
):
    """``out = sigmoid(beta (V W^T + bh))``."""
    cdef int smax = _smax(small_batch_max)
    with nogil:
        _hidden(smax, &V[0, 0], &W[0, 0], &bh[0], &out[0, 0], NULL, NULL, V.shape[0], W.shape[1], W.shape[0],
                <floating> beta, max(n_threads, 1))


@cython.boundscheck(False)
@cython.wraparound(False)
def visible_means(
    const floating[:, ::1] H,       # IN  (m, n_hidden)
    const floating[:, ::1] W,       # IN  (n_hidden, n_visible)
    const floating[::1] bv,         # IN  (n_visible,)
    bint gaussian,
    floating[:, ::1] out,           # OUT (m, n_visible)
    int n_threads=1,
    *,
    int small_batch_max=-1,         # batches up to this size use the unpacked kernels; -1 the default
):
    """``out = sigmoid(H W + bv)`` (Bernoulli visible units) or ``H W + bv`` (Gaussian)."""
    cdef int smax = _smax(small_batch_max)
    with nogil:
        _visible(smax, &H[0, 0], &W[0, 0], &bv[0], &out[0, 0], NULL, H.shape[0], W.shape[1], W.shape[0], gaussian,
                 max(n_threads, 1))


@cython.boundscheck(False)
@cython.wraparound(False)
def sample_hidden(
    const floating[:, ::1] V,       # IN  (m, n_visible)
    const floating[:, ::1] W,       # IN  (n_hidden, n_visible)
    const floating[::1] bh,         # IN  (n_hidden,)
    object bit_generator,
    floating[:, ::1] out,           # OUT (m, n_hidden) binary states
    int n_threads=1,
    *,
    int small_batch_max=-1,         # batches up to this size use the unpacked kernels; -1 the default
):
    """``out ~ Bernoulli(sigmoid(V W^T + bh))``, drawn as ``Ops.bernoulli`` draws."""
    cdef int smax = _smax(small_batch_max)
    cdef int m = V.shape[0]
    cdef int nh = W.shape[0]
    cdef floating[::1] U = np.empty(m * nh, dtype=np.float32 if floating is float else np.float64)
    cdef bitgen_t* bg = bitgen_of(bit_generator)
    with bit_generator.lock, nogil:
        uniforms(bg, &U[0], m * nh)
    with nogil:
        _hidden(smax, &V[0, 0], &W[0, 0], &bh[0], &out[0, 0], &U[0], &out[0, 0], m, W.shape[1], nh,
                <floating> 1, max(n_threads, 1))


@cython.boundscheck(False)
@cython.wraparound(False)
def gibbs_bernoulli(
    floating[:, ::1] V,             # IN/OUT (m, n_visible): start states, replaced by the samples
    const floating[:, ::1] W,       # IN  (n_hidden, n_visible)
    const floating[::1] bh,         # IN  (n_hidden,)
    const floating[::1] bv,         # IN  (n_visible,)
    int steps,
    object bit_generator,
    int n_threads=1,
    *,
    int small_batch_max=-1,         # batches up to this size use the unpacked kernels; -1 the default
):
    """``steps`` steps v -> h -> v of block Gibbs sampling with Bernoulli visible units, in place.

    Each step draws the hidden units, then the visible units, from
    ``bit_generator`` as :meth:`neuroplug.ops.Ops.rbm_gibbs` does.
    """
    cdef int smax = _smax(small_batch_max)
    cdef int m = V.shape[0]
    cdef int nh = W.shape[0]
    cdef int nv = W.shape[1]
    dtype = np.float32 if floating is float else np.float64
    cdef floating[:, ::1] H = np.empty((m, nh), dtype=dtype)
    cdef floating[::1] U = np.empty(m * max(nh, nv), dtype=dtype)
    cdef bitgen_t* bg = bitgen_of(bit_generator)
    cdef int _step
    if n_threads < 1:
        n_threads = 1
    with bit_generator.lock, nogil:
        for _step in range(steps):
            uniforms(bg, &U[0], m * nh)
            _hidden(smax, &V[0, 0], &W[0, 0], &bh[0], &H[0, 0], &U[0], &H[0, 0], m, nv, nh, 1, n_threads)
            uniforms(bg, &U[0], m * nv)
            _visible(smax, &H[0, 0], &W[0, 0], &bv[0], &V[0, 0], &U[0], m, nv, nh, False, n_threads)


cdef void _free_energy_rows(const floating* V, const floating* W, const floating* bh, const floating* bv,
                            bint gaussian, floating* A, floating* out, int r0, int r1, int nv,
                            int nh) noexcept nogil:
    cdef Py_ssize_t r, i, j
    cdef double s
    cdef floating d
    gemm_rm(False, True, r1 - r0, nh, nv, <floating> 1, V + r0 * nv, nv, W, nv, <floating> 0, A + r0 * nh, nh)
    for r in range(r0, r1):
        s = 0
        for j in range(nh):
            s -= _softplus(A[r * nh + j] + bh[j])
        for i in range(nv):
            if gaussian:
                d = V[r * nv + i] - bv[i]
                s += d * d / 2
            else:
                s -= V[r * nv + i] * bv[i]
        out[r] = <floating> s


@cython.boundscheck(False)
@cython.wraparound(False)
def free_energy(
    const floating[:, ::1] V,       # IN  (m, n_visible)
    const floating[:, ::1] W,       # IN  (n_hidden, n_visible)
    const floating[::1] bh,         # IN  (n_hidden,)
    const floating[::1] bv,         # IN  (n_visible,)
    bint gaussian,
    floating[::1] out,              # OUT (m,)
    int n_threads=1,
):
    """Free energy per row: ``-v.bv`` (Bernoulli) or ``|v - bv|^2 / 2`` (Gaussian) ``- sum softplus(v W^T + bh)``.

    Sums are accumulated in double precision.
    """
    cdef int m = V.shape[0]
    cdef int nh = W.shape[0]
    cdef int nv = W.shape[1]
    cdef floating[:, ::1] A = np.empty((m, nh), dtype=np.float32 if floating is float else np.float64)
    cdef int t, r0, r1
    if n_threads <= 1:
        with nogil:
            _free_energy_rows(&V[0, 0], &W[0, 0], &bh[0], &bv[0], gaussian, &A[0, 0], &out[0], 0, m, nv, nh)
        return
    with nogil:
        for t in prange(n_threads, num_threads=n_threads, schedule="static"):
            r0 = _bound(m, n_threads, t)
            r1 = _bound(m, n_threads, t + 1)
            if r1 > r0:
                _free_energy_rows(&V[0, 0], &W[0, 0], &bh[0], &bv[0], gaussian, &A[0, 0], &out[0], r0, r1, nv, nh)


# ---------------------------------------------------------------------------
# Annealed importance sampling
# ---------------------------------------------------------------------------
cdef void _normals(bitgen_t* bg, floating* out, Py_ssize_t size) noexcept nogil:
    """Standard normal samples by Marsaglia's polar method on the generator's doubles.

    (Not NumPy's ziggurat, which its C API does not export: the same
    distribution, other draws.)
    """
    cdef Py_ssize_t i = 0
    cdef double x1, x2, r2, f
    while i < size:
        while True:
            x1 = 2.0 * bg.next_double(bg.state) - 1.0
            x2 = 2.0 * bg.next_double(bg.state) - 1.0
            r2 = x1 * x1 + x2 * x2
            if 0 < r2 < 1:
                break
        f = sqrt(-2.0 * log(r2) / r2)
        out[i] = <floating> (f * x1)
        if i + 1 < size:
            out[i + 1] = <floating> (f * x2)
        i += 2


cdef inline floating _expm1(floating x) noexcept nogil:
    if floating is float:
        return expm1f(x)
    else:
        return expm1(x)


cdef inline floating _log1p(floating x) noexcept nogil:
    if floating is float:
        return log1pf(x)
    else:
        return log1p(x)


cdef void _ais_hidden_block(const floating* V, const floating* W, const floating* bh, const floating* bv,
                            const floating* bA, floating* A, const floating* u, floating* H,
                            double* inc, double* vis, int m, int nv, int nh, int j0, int j1, int i0, int i1,
                            floating b_prev, floating b_k, bint gaussian) noexcept nogil:
    """Hidden columns ``[j0, j1)`` and visible columns ``[i0, i1)`` of one AIS step.

    ``inc[r]`` gets this block's share of ``sum_j softplus(b_k a_j) -
    softplus(b_prev a_j)``, written as ``log1p(s expm1(db a))`` with ``s =
    sigmoid(b_prev a)``: one exp, one expm1 and one log1p per unit give both
    the increment and the sampling probability ``sigmoid(b_k a) = s (1 + e)
    / (1 + s e)``, and the small increment carries no cancellation.
    ``vis[r]`` gets the block's share of the visible term's slope in beta.
    With ``u`` (not the last step) ``H = (u < sigmoid(b_k a))``.
    """
    cdef Py_ssize_t r, j, i
    cdef floating x, s, e, p, db = b_k - b_prev, d1, d2
    cdef double acc
    gemm_rm(False, True, m, j1 - j0, nv, <floating> 1, V, nv, W + j0 * nv, nv, <floating> 0, A + j0, nh)
    for r in range(m):
        acc = 0
        for j in range(j0, j1):
            x = A[r * nh + j] + bh[j]
            if fabs(db * x) < 1:
                s = sigmoid(b_prev * x)
                e = _expm1(db * x)
                acc += _log1p(s * e)
                p = s * (1 + e) / (1 + s * e)
            else:  # large steps (short schedules): the direct difference cannot overflow
                acc += _softplus(b_k * x) - _softplus(b_prev * x)
                p = sigmoid(b_k * x)
            if u != NULL:
                H[r * nh + j] = 1 if u[r * nh + j] < p else 0
        inc[r] = acc
        acc = 0
        for i in range(i0, i1):
            if gaussian:
                d1 = V[r * nv + i] - bA[i]
                d2 = V[r * nv + i] - bv[i]
                acc += 0.5 * (d1 * d1 - d2 * d2)
            else:
                acc += V[r * nv + i] * (bv[i] - bA[i])
        vis[r] = acc


cdef void _ais_visible_block(floating* V, const floating* W, const floating* bv, const floating* bA,
                             const floating* H, const floating* noise, int m, int nv, int nh, int i0, int i1,
                             floating b_k, bint gaussian) noexcept nogil:
    """Visible columns ``[i0, i1)``: ``V ~ p_k(v | H)`` given uniforms or normals in ``noise``."""
    cdef Py_ssize_t r, i
    cdef floating mean
    gemm_rm(False, False, m, i1 - i0, nh, <floating> 1, H, nh, W + i0, nv, <floating> 0, V + i0, nv)
    for r in range(m):
        for i in range(i0, i1):
            mean = bA[i] * (1 - b_k) + (V[r * nv + i] + bv[i]) * b_k
            if gaussian:
                V[r * nv + i] = mean + noise[r * nv + i]
            else:
                V[r * nv + i] = 1 if noise[r * nv + i] < sigmoid(mean) else 0


@cython.boundscheck(False)
@cython.wraparound(False)
def ais_log_weights(
    const floating[:, ::1] W,       # IN  (n_hidden, n_visible)
    const floating[::1] bh,         # IN  (n_hidden,)
    const floating[::1] bv,         # IN  (n_visible,)
    const floating[::1] bA,         # IN  (n_visible,) visible biases of the base model
    const double[::1] betas,        # IN  (K + 1,) increasing from 0 to 1
    bint gaussian,
    object bit_generator,
    double[::1] log_w,              # OUT (n_runs,)
    int n_threads=1,
):
    """Annealed importance sampling runs of :meth:`neuroplug.ops.Ops.rbm_ais_log_weights`.

    Bernoulli units draw their uniforms as the reference does (same draws);
    Gaussian units draw their noise by the polar method (same distribution).
    Two OpenMP regions per temperature: hidden units (with the weight
    increment and the hidden samples), then visible units.
    """
    cdef int m = log_w.shape[0]
    cdef int nh = W.shape[0]
    cdef int nv = W.shape[1]
    cdef int n_steps = betas.shape[0] - 1
    if n_threads < 1:
        n_threads = 1
    dtype = np.float32 if floating is float else np.float64
    cdef floating[:, ::1] V = np.empty((m, nv), dtype=dtype)
    cdef floating[:, ::1] A = np.empty((m, nh), dtype=dtype)
    cdef floating[:, ::1] H = np.empty((m, nh), dtype=dtype)
    cdef floating[::1] U = np.empty(m * max(nh, nv), dtype=dtype)
    cdef double[:, ::1] inc = np.zeros((n_threads, m))
    cdef double[:, ::1] vis = np.zeros((n_threads, m))
    cdef bitgen_t* bg = bitgen_of(bit_generator)
    cdef int k, t, j0, j1, i0, i1
    cdef Py_ssize_t r, i
    cdef floating b_prev, b_k
    cdef floating* u
    cdef double total_inc, total_vis

    with bit_generator.lock, nogil:
        # Exact samples of the base model.
        if gaussian:
            _normals(bg, &V[0, 0], <Py_ssize_t> m * nv)
            for r in range(m):
                for i in range(nv):
                    V[r, i] = V[r, i] + bA[i]
        else:
            uniforms(bg, &U[0], <Py_ssize_t> m * nv)
            for r in range(m):
                for i in range(nv):
                    V[r, i] = 1 if U[r * nv + i] < sigmoid(bA[i]) else 0
        for r in range(m):
            log_w[r] = 0
        for k in range(1, n_steps + 1):
            b_prev = <floating> betas[k - 1]
            b_k = <floating> betas[k]
            u = NULL
            if k < n_steps:
                uniforms(bg, &U[0], <Py_ssize_t> m * nh)
                u = &U[0]
            if n_threads == 1:
                _ais_hidden_block(&V[0, 0], &W[0, 0], &bh[0], &bv[0], &bA[0], &A[0, 0], u, &H[0, 0],
                                  &inc[0, 0], &vis[0, 0], m, nv, nh, 0, nh, 0, nv, b_prev, b_k, gaussian)
            else:
                for t in prange(n_threads, num_threads=n_threads, schedule="static"):
                    j0 = _bound(nh, n_threads, t)
                    j1 = _bound(nh, n_threads, t + 1)
                    i0 = _bound(nv, n_threads, t)
                    i1 = _bound(nv, n_threads, t + 1)
                    _ais_hidden_block(&V[0, 0], &W[0, 0], &bh[0], &bv[0], &bA[0], &A[0, 0], u, &H[0, 0],
                                      &inc[t, 0], &vis[t, 0], m, nv, nh, j0, j1, i0, i1, b_prev, b_k, gaussian)
            for r in range(m):
                total_inc = 0
                total_vis = 0
                for t in range(n_threads):
                    total_inc += inc[t, r]
                    total_vis += vis[t, r]
                log_w[r] += (betas[k] - betas[k - 1]) * total_vis + total_inc
            if k == n_steps:
                break
            if gaussian:
                _normals(bg, &U[0], <Py_ssize_t> m * nv)
            else:
                uniforms(bg, &U[0], <Py_ssize_t> m * nv)
            if n_threads == 1:
                _ais_visible_block(&V[0, 0], &W[0, 0], &bv[0], &bA[0], &H[0, 0], &U[0], m, nv, nh, 0, nv,
                                   b_k, gaussian)
            else:
                for t in prange(n_threads, num_threads=n_threads, schedule="static"):
                    i0 = _bound(nv, n_threads, t)
                    i1 = _bound(nv, n_threads, t + 1)
                    if i1 > i0:
                        _ais_visible_block(&V[0, 0], &W[0, 0], &bv[0], &bA[0], &H[0, 0], &U[0], m, nv, nh,
                                           i0, i1, b_k, gaussian)
