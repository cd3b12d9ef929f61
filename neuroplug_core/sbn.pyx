# cython: language_level=3
"""Sigmoid belief net kernels: a whole (reweighted) wake-sleep epoch, ancestral
sampling and importance weights, each in one call without the GIL.

The algorithms are those of the NumPy reference methods
:meth:`neuroplug.ops.Ops.sbn_wake_sleep_epoch`, :meth:`~neuroplug.ops.Ops.sbn_sample`
and :meth:`~neuroplug.ops.Ops.sbn_log_importance_weights`, step for step and
draw for draw: uniforms come straight from a NumPy ``BitGenerator`` through
its C API, in the reference's order and with NumPy's own conversions
(``(next_uint32 >> 8) * 2**-24`` for float32, ``next_double`` for float64,
which is what ``Generator.random(dtype=...)`` does), so a kernel reproduces
the reference's samples exactly.  The generator's lock is held for the whole
call.

Layout (row-major, layer 0 visible, layer L top; see the reference):
``Wg[l]`` is ``(n_{l+1}, n_l)``, ``bg[l]`` is ``(n_l,)`` for ``l = 0..L``,
``Wr[l]`` is ``(n_l, n_{l+1})``, ``br[l]`` is ``(n_{l+1},)``.  The layer lists
arrive as Python lists of arrays; their data pointers are gathered into C
arrays before the GIL is released.

Matrix products use SciPy's BLAS (``scipy.linalg.cython_blas``), single-threaded
(the wrapper holds it at one thread): a product and the element-wise work on its
result are split between OpenMP threads by blocks of rows, each row reducing into
its own accumulator, so no result depends on the number of threads.  Small
products run on one thread.  Nothing here validates its arguments:
:class:`neuroplug.backends.cython_ops.CythonOps` checks shapes, dtypes,
contiguity and writability first (DESIGN rule 4).
"""

cimport cython
from cython.parallel cimport prange
from libc.math cimport exp, expf, fabs, fabsf, log, logf
from libc.stdlib cimport free, malloc
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
cdef inline floating _softplus(floating x) noexcept nogil:
    # log(1 + exp(x)) = max(x, 0) + log(1 + exp(-|x|)) without overflow.  log(1 + e)
    # instead of log1p(e): glibc's log1pf costs ~15x logf, and the absolute error (one
    # ulp of 1) is far below what a sum of log-probabilities can resolve.
    if floating is float:
        return (x if x > 0 else 0) + logf(1 + expf(-fabsf(x)))
    else:
        return (x if x > 0 else 0) + log(1 + exp(-fabs(x)))


cdef inline floating _sigmoid_softplus(floating x, floating* softplus) noexcept nogil:
    """``sigmoid(x)`` (bit for bit as :func:`neuroplug_core._math.sigmoid`), and ``softplus(x)``, from one exp."""
    cdef floating e
    if floating is float:
        e = expf(-fabsf(x))
        softplus[0] = (x if x > 0 else 0) + logf(1 + e)
    else:
        e = exp(-fabs(x))
        softplus[0] = (x if x > 0 else 0) + log(1 + e)
    # exp(-|x|) is exp(-x) for x >= 0 and exp(x) below: the reference's two branches.
    if x >= 0:
        return 1 / (1 + e)
    return e / (1 + e)


# Element-wise loops smaller than this run on one thread: an OpenMP region costs
# microseconds, and far more when the cores are busy with other work.
cdef enum:
    PARALLEL_MIN_ELEMENTS = 32768
    PARALLEL_MIN_MACS = 1 << 23
    # Row splits between threads fall on multiples of this (see _bound).
    SPLIT_ALIGN = 48


cdef int _pointers(list arrays, floating** out) except -1:
    """Gather the data pointers of C-contiguous 1-D or 2-D arrays of the right dtype."""
    cdef const floating[:, ::1] m2
    cdef const floating[::1] m1
    cdef Py_ssize_t i
    for i in range(len(arrays)):
        if arrays[i].ndim == 2:
            m2 = arrays[i]
            out[i] = <floating*> &m2[0, 0]
        else:
            m1 = arrays[i]
            out[i] = <floating*> &m1[0]
    return 0


cdef class _Layers:
    """C arrays of the data pointers of the layer lists, freed with the object."""

    cdef void* Wg
    cdef void* bg
    cdef void* Wr
    cdef void* br
    cdef int* sizes
    cdef int n_layers

    def __cinit__(self, int n_layers):
        self.n_layers = n_layers
        self.Wg = malloc(n_layers * sizeof(double*))
        self.bg = malloc((n_layers + 1) * sizeof(double*))
        self.Wr = malloc(n_layers * sizeof(double*))
        self.br = malloc(n_layers * sizeof(double*))
        self.sizes = <int*> malloc((n_layers + 1) * sizeof(int))
        if not (self.Wg and self.bg and self.Wr and self.br and self.sizes):
            raise MemoryError()

    def __dealloc__(self):
        free(self.Wg)
        free(self.bg)
        free(self.Wr)
        free(self.br)
        free(self.sizes)


cdef _Layers _gather(floating dummy, list Wg, list bg, list Wr, list br):
    """Pointers to the parameters (``Wr``/``br`` may be ``None``) and the layer sizes."""
    cdef int n_layers = len(Wg)
    cdef _Layers layers = _Layers(n_layers)
    cdef int l
    _pointers(Wg, <floating**> layers.Wg)
    _pointers(bg, <floating**> layers.bg)
    if Wr is not None:
        _pointers(Wr, <floating**> layers.Wr)
        _pointers(br, <floating**> layers.br)
    layers.sizes[0] = Wg[0].shape[1]
    for l in range(n_layers):
        layers.sizes[l + 1] = Wg[l].shape[0]
    return layers


# ---------------------------------------------------------------------------
# Layer passes, threaded by blocks of rows (each OpenMP thread runs its own
# single-threaded GEMM; the Python wrapper holds BLAS at one thread)
# ---------------------------------------------------------------------------
cdef enum:
    MODE_LOGITS = 0     # A = a
    MODE_SAMPLE = 1     # Hout = (u < sigmoid(a)); A = sigmoid(a) or a; logpmf += h a - softplus(a)
    MODE_LOGPMF = 2     # A = sigmoid(a); logpmf += t a - softplus(a) with t a row of `target`
    MODE_RESIDUAL = 3   # A = target - sigmoid(a)


cdef inline int _bound(int total, int parts, int t) noexcept nogil:
    """Start of part ``t`` of ``[0, total)`` cut into ``parts`` parts at multiples of
    ``SPLIT_ALIGN`` rows.

    BLAS kernels compute rows in blocks of a fixed height (12, 16, 24... rows) and
    handle a ragged last block with other code, whose rounding can differ in the
    last bit.  Cutting at multiples of ``SPLIT_ALIGN`` leaves every part but the
    last without a ragged block, and the last one with the same ragged block as
    the whole matrix, so the results do not depend on the number of threads.
    """
    if t >= parts:
        return total
    return <int> (((<long long> total * t) // parts) // SPLIT_ALIGN * SPLIT_ALIGN)


cdef inline int _threads_for(Py_ssize_t rows, Py_ssize_t n_in, Py_ssize_t n_out, int n_threads) noexcept nogil:
    """Threads for a ``rows x n_in x n_out`` product: one below about 8 million multiply-adds,
    where waking threads costs more than it saves (much more on a busy machine)."""
    if n_threads <= 1 or rows * n_in * n_out < PARALLEL_MIN_MACS:
        return 1
    return <int> min(<Py_ssize_t> n_threads, rows)


cdef void _forward_block(const floating* Hin, int n_in, const floating* W, const floating* bias,
                         floating* A, int n, int mode, const floating* U, int u_period, floating* Hout,
                         bint store_probs, const floating* target, int period, double* logpmf,
                         int r0, int r1) noexcept nogil:
    """Rows ``[r0, r1)`` of ``a = Hin W + bias`` (``(rows, n)``) and the element-wise ``mode``.

    The uniform of element ``(r, j)`` is ``U[(r % u_period) n + j]`` (shared blocks) or, with
    ``u_period == 0``, ``U[r n + j]``; ``U`` may alias ``Hout``.  ``logpmf`` may be NULL
    except in ``MODE_LOGPMF``; row sums accumulate in double precision.
    """
    cdef Py_ssize_t r, j, o
    cdef floating a, q, h, u, sp
    cdef double acc
    if Hin != NULL:
        gemm_rm(False, False, r1 - r0, n, n_in, <floating> 1, Hin + <Py_ssize_t> r0 * n_in, n_in, W, n,
              <floating> 0, A + <Py_ssize_t> r0 * n, n)
    for r in range(r0, r1):
        acc = 0
        for j in range(n):
            o = r * n + j
            a = A[o] + bias[j]
            if mode == MODE_LOGITS:
                A[o] = a
            elif mode == MODE_SAMPLE:
                if logpmf != NULL:
                    q = _sigmoid_softplus(a, &sp)
                else:
                    q = sigmoid(a)
                    sp = 0
                u = U[(r % u_period) * n + j] if u_period > 0 else U[o]
                h = 1 if u < q else 0
                Hout[o] = h
                acc = acc + h * a - sp
                A[o] = q if store_probs else a
            elif mode == MODE_LOGPMF:
                A[o] = _sigmoid_softplus(a, &sp)
                acc = acc + target[(r // period) * n + j] * a - sp
            else:
                A[o] = target[o] - sigmoid(a)
        if logpmf != NULL:
            logpmf[r] = logpmf[r] + acc


cdef void _forward(const floating* Hin, int n_in, const floating* W, const floating* bias,
                   floating* A, int rows, int n, int mode, const floating* U, int u_period,
                   floating* Hout, bint store_probs, const floating* target, int period,
                   double* logpmf, int n_threads) noexcept nogil:
    """:func:`_forward_block` over all rows, split in blocks between OpenMP threads.

    ``Hin == NULL`` skips the product (``A`` already holds ``Hin W``).  Rows are
    independent, so the results do not depend on the number of threads.
    """
    cdef int nt = _threads_for(rows, n_in if Hin != NULL else 1, n, n_threads)
    cdef int t, r0, r1
    if nt == 1:
        _forward_block(Hin, n_in, W, bias, A, n, mode, U, u_period, Hout, store_probs, target, period,
                       logpmf, 0, rows)
        return
    for t in prange(nt, schedule="static", chunksize=1, num_threads=nt):
        r0 = _bound(rows, nt, t)
        r1 = _bound(rows, nt, t + 1)
        _forward_block(Hin, n_in, W, bias, A, n, mode, U, u_period, Hout, store_probs, target, period,
                       logpmf, r0, r1)


cdef void _update(floating* W, floating* b, const floating* inputs, const floating* delta,
                  int rows, int n_in, int n_out, floating step, int n_threads) noexcept nogil:
    """``W += step inputs^T delta`` and ``b += step sum_rows(delta)``; each thread owns a
    block of rows of ``W`` and a block of ``b`` (no reduction crosses threads)."""
    cdef int nt = _threads_for(rows, n_in, n_out, n_threads)
    cdef int t, j0, j1
    if nt == 1:
        _update_block(W, b, inputs, delta, rows, n_in, n_out, step, 0, n_in, 0, n_out)
        return
    for t in prange(nt, schedule="static", chunksize=1, num_threads=nt):
        j0 = _bound(n_in, nt, t)
        j1 = _bound(n_in, nt, t + 1)
        _update_block(W, b, inputs, delta, rows, n_in, n_out, step, j0, j1,
                      (<long long> n_out * t) // nt, (<long long> n_out * (t + 1)) // nt)


cdef void _update_block(floating* W, floating* b, const floating* inputs, const floating* delta,
                        int rows, int n_in, int n_out, floating step, int j0, int j1, int i0,
                        int i1) noexcept nogil:
    """Rows ``[j0, j1)`` of ``W`` (one GEMM) and entries ``[i0, i1)`` of ``b``.

    The bias sums run over the rows in order in double precision, the same for
    any split, rather than through a one-row GEMM whose rounding depends on
    how its columns are cut.
    """
    cdef Py_ssize_t r, i
    cdef double acc
    if j1 > j0:
        gemm_rm(True, False, j1 - j0, n_out, rows, step, inputs + j0, n_in, delta, n_out, <floating> 1,
              W + <Py_ssize_t> j0 * n_out, n_out)
    for i in range(i0, i1):
        acc = 0
        for r in range(rows):
            acc = acc + delta[r * n_out + i]
        b[i] = b[i] + step * <floating> acc


cdef void _prior_logpmf(const floating* h, const floating* bias, double* logpmf, int rows, int n,
                        int n_threads) noexcept nogil:
    """``logpmf[r] = sum_j h_j b_j - softplus(b_j)`` (the top layer's prior); overwrites."""
    cdef Py_ssize_t r, j
    cdef double acc, sp = 0
    for j in range(n):
        sp = sp + _softplus(bias[j])
    for r in prange(rows, schedule="static", num_threads=n_threads,
                      use_threads_if=<Py_ssize_t> rows * n >= PARALLEL_MIN_ELEMENTS):
        acc = 0
        for j in range(n):
            acc = acc + h[r * n + j] * bias[j]
        logpmf[r] = acc - sp


cdef void _weighted_residual(floating* p, const floating* h, const floating* omega,
                             int rows, int n, int n_threads) noexcept nogil:
    """``p = omega[r] * (h - p)`` row by row."""
    cdef Py_ssize_t r, j, o
    cdef floating w
    for r in prange(rows, schedule="static", num_threads=n_threads,
                      use_threads_if=<Py_ssize_t> rows * n >= PARALLEL_MIN_ELEMENTS):
        w = omega[r]
        for j in range(n):
            o = r * n + j
            p[o] = w * (h[o] - p[o])


cdef void _ancestral(bitgen_t* rng, floating** Wg, floating** bg, floating** S, floating* scratch,
                     const int* sizes, int n_layers, int rows, int n_threads) noexcept nogil:
    """Ancestral samples into ``S[0..L]`` (``rows`` each), draws as ``Ops.sbn_sample``."""
    cdef int l, nl
    cdef Py_ssize_t r, j, o
    cdef floating* s
    cdef const floating* b
    nl = sizes[n_layers]
    s = S[n_layers]
    b = bg[n_layers]
    uniforms(rng, s, <Py_ssize_t> rows * nl)
    for r in prange(rows, schedule="static", num_threads=n_threads,
                      use_threads_if=<Py_ssize_t> rows * nl >= PARALLEL_MIN_ELEMENTS):
        for j in range(nl):
            o = r * nl + j
            s[o] = 1 if s[o] < sigmoid(b[j]) else 0
    for l in range(n_layers - 1, -1, -1):
        nl = sizes[l]
        # Uniforms first (in order, one thread), then product and comparison in parallel.
        uniforms(rng, S[l], <Py_ssize_t> rows * nl)
        _forward(S[l + 1], sizes[l + 1], Wg[l], bg[l], scratch, rows, nl, MODE_SAMPLE, S[l], 0, S[l],
                 False, NULL, 1, NULL, n_threads)


# ---------------------------------------------------------------------------
# Wake-sleep epoch
# ---------------------------------------------------------------------------
@cython.boundscheck(False)
@cython.wraparound(False)
def wake_sleep_epoch(
    const floating[:, ::1] X,       # IN  (n_samples, n_0), rows in training order
    list Wg,                        # IN/OUT generative weights, Wg[l] (n_{l+1}, n_l)
    list bg,                        # IN/OUT generative biases, bg[l] (n_l,), l = 0..L
    list Wr,                        # IN/OUT recognition weights, Wr[l] (n_l, n_{l+1})
    list br,                        # IN/OUT recognition biases, br[l] (n_{l+1},)
    double learning_rate,
    int batch_size,
    int n_importance_samples,
    object bit_generator,
    int n_threads=1,
):
    """Run one epoch of (reweighted) wake-sleep; return the mean wake-phase estimate of log p(x).

    Step for step :meth:`neuroplug.ops.Ops.sbn_wake_sleep_epoch`.  Per-row
    sums (log-probabilities) accumulate in double precision.
    """
    cdef floating dummy = 0
    cdef _Layers layers = _gather(dummy, Wg, bg, Wr, br)
    cdef floating** pWg = <floating**> layers.Wg
    cdef floating** pbg = <floating**> layers.bg
    cdef floating** pWr = <floating**> layers.Wr
    cdef floating** pbr = <floating**> layers.br
    cdef int* sizes = layers.sizes
    cdef int L = layers.n_layers
    cdef int K = n_importance_samples
    cdef int n = X.shape[0]
    cdef int max_rows = batch_size * K
    cdef int l, nmax = 0
    for l in range(L + 1):
        nmax = max(nmax, sizes[l])
    dtype = np.float32 if floating is float else np.float64

    # Scratch reused by every batch (allocated once per epoch: page faults are dear).
    # H[l] (wake samples; H[0] the repeated batch), Q[l] (recognition logits, then
    # probabilities), P[l] (generative probabilities, then deltas), S[l] (fantasies).
    keep = []
    cdef floating** H = <floating**> malloc((L + 1) * sizeof(floating*))
    cdef floating** Q = <floating**> malloc((L + 1) * sizeof(floating*))
    cdef floating** P = <floating**> malloc((L + 1) * sizeof(floating*))
    cdef floating** S = <floating**> malloc((L + 1) * sizeof(floating*))
    cdef floating[:, ::1] buf
    cdef floating[::1] vec
    cdef double[::1] dvec
    cdef floating* scratch_p
    cdef floating* omega_p
    cdef double* logq_p
    cdef double* logp_p
    cdef double* dtop_p
    cdef double total
    if not (H and Q and P and S):
        free(H); free(Q); free(P); free(S)
        raise MemoryError()
    try:
        for l in range(L + 1):
            for target, rows in ((0, max_rows), (1, max_rows), (2, max_rows), (3, batch_size)):
                arr = np.zeros((rows, sizes[l]), dtype=dtype)
                keep.append(arr)
                buf = arr
                if target == 0:
                    H[l] = &buf[0, 0]
                elif target == 1:
                    Q[l] = &buf[0, 0]
                elif target == 2:
                    P[l] = &buf[0, 0]
                else:
                    S[l] = &buf[0, 0]
        arr = np.empty((batch_size, nmax), dtype=dtype)
        keep.append(arr)
        buf = arr
        scratch_p = &buf[0, 0]
        arr = np.empty(max_rows, dtype=dtype)
        keep.append(arr)
        vec = arr
        omega_p = &vec[0]
        arr = np.empty(2 * max_rows + nmax, dtype=np.float64)
        keep.append(arr)
        dvec = arr
        logq_p = &dvec[0]
        logp_p = &dvec[max_rows]
        dtop_p = &dvec[2 * max_rows]
        total = _epoch(&X[0, 0], n, pWg, pbg, pWr, pbr, sizes, L, K, learning_rate, batch_size,
                       H, Q, P, S, scratch_p, omega_p, logq_p, logp_p, dtop_p,
                       bit_generator, n_threads)
    finally:
        free(H); free(Q); free(P); free(S)
    return total / n


cdef double _epoch(const floating* X, int n, floating** Wg, floating** bg, floating** Wr, floating** br,
                   const int* sizes, int L, int K, double learning_rate, int batch_size,
                   floating** H, floating** Q, floating** P, floating** S, floating* scratch,
                   floating* omega, double* logq, double* logp, double* dtop,
                   object bit_generator, int n_threads) except? -1:
    cdef bitgen_t* rng = bitgen_of(bit_generator)
    cdef int n0 = sizes[0]
    cdef int batch, start, m, M, l, i, k, nl
    cdef Py_ssize_t r, j
    cdef floating step, q_step
    cdef double total = 0, peak, lse, prior
    cdef floating* H0 = H[0]

    with bit_generator.lock, nogil:
        for batch in range((n + batch_size - 1) // batch_size):
            start = batch * batch_size
            m = min(batch_size, n - start)
            M = m * K
            step = <floating> (learning_rate / m)
            q_step = step if K == 1 else <floating> (learning_rate / m / 2)

            # ---- wake: h ~ q(h | x), K samples per row (row i K + k is x_i)
            if K == 1:
                H[0] = <floating*> (X + <Py_ssize_t> start * n0)
            else:
                for i in range(m):
                    for k in range(K):
                        memcpy(H0 + (<Py_ssize_t> i * K + k) * n0, X + (<Py_ssize_t> start + i) * n0,
                               n0 * sizeof(floating))
                H[0] = H0
            for r in range(M):
                logq[r] = 0
            for l in range(L):
                nl = sizes[l + 1]
                uniforms(rng, H[l + 1], <Py_ssize_t> M * nl)
                _forward(H[l], sizes[l], Wr[l], br[l], Q[l + 1], M, nl, MODE_SAMPLE, H[l + 1], 0, H[l + 1],
                         True, NULL, 1, logq, n_threads)

            # log p(x, h): the top prior, then every conditional (P[l] = p(h_l = 1 | h_{l+1}))
            _prior_logpmf(H[L], bg[L], logp, M, sizes[L], n_threads)
            for l in range(L):
                _forward(H[l + 1], sizes[l + 1], Wg[l], bg[l], P[l], M, sizes[l], MODE_LOGPMF, NULL, 0, NULL,
                         False, H[l], 1, logp, n_threads)

            # Normalised importance weights per data row, and the bound.
            for i in range(m):
                peak = logp[i * K] - logq[i * K]
                for k in range(1, K):
                    peak = max(peak, logp[i * K + k] - logq[i * K + k])
                lse = 0
                for k in range(K):
                    lse = lse + exp(logp[i * K + k] - logq[i * K + k] - peak)
                lse = peak + log(lse)
                total = total + lse - log(<double> K)
                for k in range(K):
                    omega[i * K + k] = <floating> exp(logp[i * K + k] - logq[i * K + k] - lse)

            # Generative update along the omega-weighted gradient of log p(x, h).
            nl = sizes[L]
            for j in range(nl):
                prior = sigmoid(bg[L][j])
                dtop[j] = 0
                for r in range(M):
                    dtop[j] = dtop[j] + omega[r] * (H[L][r * nl + j] - prior)
            for l in range(L):
                _weighted_residual(P[l], H[l], omega, M, sizes[l], n_threads)
                _update(Wg[l], bg[l], H[l + 1], P[l], M, sizes[l + 1], sizes[l], step, n_threads)
            for j in range(nl):
                bg[L][j] = bg[L][j] + step * <floating> dtop[j]
            if K > 1:
                # q-wake: half a step along the omega-weighted gradient of log q(h | x).
                for l in range(L):
                    _weighted_residual(Q[l + 1], H[l + 1], omega, M, sizes[l + 1], n_threads)
                    _update(Wr[l], br[l], H[l], Q[l + 1], M, sizes[l], sizes[l + 1], q_step, n_threads)

            # ---- sleep: fantasies from the updated generative model train q.
            _ancestral(rng, Wg, bg, S, scratch, sizes, L, m, n_threads)
            for l in range(L):
                nl = sizes[l + 1]
                _forward(S[l], sizes[l], Wr[l], br[l], scratch, m, nl, MODE_RESIDUAL, NULL, 0, NULL,
                         False, S[l + 1], 1, NULL, n_threads)
                _update(Wr[l], br[l], S[l], scratch, m, sizes[l], nl, q_step, n_threads)
    H[0] = H0
    return total


# ---------------------------------------------------------------------------
# Ancestral sampling
# ---------------------------------------------------------------------------
cdef int _sample(floating dummy, list Wg, list bg, list out, object bit_generator,
                 int n_threads) except -1:
    cdef _Layers layers = _gather(dummy, Wg, bg, None, None)
    cdef int L = layers.n_layers
    cdef int rows = out[0].shape[0]
    cdef int l, nmax = 0
    cdef floating** S = <floating**> malloc((L + 1) * sizeof(floating*))
    cdef floating[:, ::1] scratch
    cdef bitgen_t* rng = bitgen_of(bit_generator)
    if not S:
        raise MemoryError()
    try:
        _pointers(out, S)
        for l in range(L + 1):
            nmax = max(nmax, layers.sizes[l])
        scratch = np.empty((rows, nmax), dtype=np.float32 if floating is float else np.float64)
        with bit_generator.lock, nogil:
            _ancestral(rng, <floating**> layers.Wg, <floating**> layers.bg, S, &scratch[0, 0],
                       layers.sizes, L, rows, n_threads)
    finally:
        free(S)
    return 0


def sample(list Wg, list bg, list out, object bit_generator, int n_threads=1):
    """Fill ``out[l]`` (``(n_samples, n_l)``, C-contiguous, dtype of the weights) with
    ancestral samples of layer ``l``; draws as :meth:`neuroplug.ops.Ops.sbn_sample`."""
    if out[0].dtype == np.float32:
        _sample(<float> 0, Wg, bg, out, bit_generator, n_threads)
    else:
        _sample(<double> 0, Wg, bg, out, bit_generator, n_threads)


# ---------------------------------------------------------------------------
# Importance weights with common random numbers
# ---------------------------------------------------------------------------
@cython.boundscheck(False)
@cython.wraparound(False)
def log_importance_weights(
    const floating[:, ::1] X,       # IN  (n, n_0)
    list Wg, list bg, list Wr, list br,   # IN  parameters (see the module docstring)
    floating[:, ::1] out,           # OUT (n, K) log p(x, h^k) - log q(h^k | x)
    object bit_generator,
    int n_threads=1,
    int block_elements=1 << 22,
):
    """``log p(x, h^k) - log q(h^k | x)`` with ``h^k ~ q(h | x)``, as
    :meth:`neuroplug.ops.Ops.sbn_log_importance_weights`.

    The ``(K, n_l)`` uniforms of every layer are drawn first and shared by all
    rows, so the rows are processed in blocks of about ``block_elements``
    sampled units without changing the result.  The first recognition layer's
    logits are the same for the ``K`` samples of a row and are computed once.
    """
    cdef floating dummy = 0
    cdef _Layers layers = _gather(dummy, Wg, bg, Wr, br)
    cdef floating** pWg = <floating**> layers.Wg
    cdef floating** pbg = <floating**> layers.bg
    cdef floating** pWr = <floating**> layers.Wr
    cdef floating** pbr = <floating**> layers.br
    cdef int* sizes = layers.sizes
    cdef int L = layers.n_layers
    cdef int n = X.shape[0]
    cdef int K = out.shape[1]
    cdef int l, nmax = 0, nsum = 0, B
    for l in range(L + 1):
        nmax = max(nmax, sizes[l])
        if l > 0:
            nsum += sizes[l]
    B = max(1, min(n, block_elements // max(1, K * nmax)))
    dtype = np.float32 if floating is float else np.float64

    cdef floating** U = <floating**> malloc((L + 1) * sizeof(floating*))
    cdef floating** H = <floating**> malloc((L + 1) * sizeof(floating*))
    cdef floating[:, ::1] buf
    cdef double[::1] dvec
    cdef floating* scratch
    cdef floating* q1
    keep = []
    if not (U and H):
        free(U); free(H)
        raise MemoryError()
    try:
        for l in range(1, L + 1):
            arr = np.empty((K, sizes[l]), dtype=dtype)
            keep.append(arr)
            buf = arr
            U[l] = &buf[0, 0]
            arr = np.empty((B * K, sizes[l]), dtype=dtype)
            keep.append(arr)
            buf = arr
            H[l] = &buf[0, 0]
        arr = np.empty((B * K, nmax), dtype=dtype)
        keep.append(arr)
        buf = arr
        scratch = &buf[0, 0]
        arr = np.empty((B, sizes[1]), dtype=dtype)
        keep.append(arr)
        buf = arr
        q1 = &buf[0, 0]
        arr = np.empty(2 * B * K + B, dtype=np.float64)
        keep.append(arr)
        dvec = arr
        _importance(&X[0, 0], n, pWg, pbg, pWr, pbr, sizes, L, K, B, U, H, scratch, q1,
                    &dvec[0], &dvec[B * K], &dvec[2 * B * K], &out[0, 0], bit_generator, n_threads)
    finally:
        free(U); free(H)


cdef int _importance(const floating* X, int n, floating** Wg, floating** bg, floating** Wr, floating** br,
                     const int* sizes, int L, int K, int B, floating** U, floating** H, floating* scratch,
                     floating* q1, double* logq, double* logp, double* sp1, floating* out, object bit_generator,
                     int n_threads) except -1:
    cdef bitgen_t* rng = bitgen_of(bit_generator)
    cdef int n0 = sizes[0], n1 = sizes[1]
    cdef int blk, start, b, BK, l
    cdef Py_ssize_t r, i, j, k, o
    cdef floating h, spf
    cdef double acc, sp
    with bit_generator.lock, nogil:
        for l in range(1, L + 1):
            uniforms(rng, U[l], <Py_ssize_t> K * sizes[l])
    with nogil:
        for blk in range((n + B - 1) // B):
            start = blk * B
            b = min(B, n - start)
            BK = b * K
            # Layer 1: logits once per row, then K samples from the shared uniforms.
            _forward(X + <Py_ssize_t> start * n0, n0, Wr[0], br[0], scratch, b, n1, MODE_LOGITS, NULL, 0, NULL,
                     False, NULL, 1, NULL, n_threads)
            for i in prange(b, schedule="static", num_threads=n_threads,
                              use_threads_if=<Py_ssize_t> b * n1 >= PARALLEL_MIN_ELEMENTS):
                sp = 0
                spf = 0  # private to each thread: it is written through &spf
                for j in range(n1):
                    o = i * n1 + j
                    q1[o] = _sigmoid_softplus(scratch[o], &spf)
                    sp = sp + spf
                sp1[i] = sp
            for r in prange(BK, schedule="static", num_threads=n_threads,
                              use_threads_if=<Py_ssize_t> BK * n1 >= PARALLEL_MIN_ELEMENTS):
                i = r // K
                k = r - i * K
                acc = 0
                for j in range(n1):
                    h = 1 if U[1][k * n1 + j] < q1[i * n1 + j] else 0
                    H[1][r * n1 + j] = h
                    acc = acc + h * scratch[i * n1 + j]
                logq[r] = acc - sp1[i]
            # Deeper recognition layers: uniform k of the shared block for sample k.
            for l in range(1, L):
                _forward(H[l], sizes[l], Wr[l], br[l], scratch, BK, sizes[l + 1], MODE_SAMPLE, U[l + 1], K,
                         H[l + 1], False, NULL, 1, logq, n_threads)
            # log p(x, h): prior, then the conditionals (the visible target is row r // K of X).
            _prior_logpmf(H[L], bg[L], logp, BK, sizes[L], n_threads)
            for l in range(L):
                if l == 0:
                    _forward(H[1], sizes[1], Wg[0], bg[0], scratch, BK, n0, MODE_LOGPMF, NULL, 0, NULL,
                             False, X + <Py_ssize_t> start * n0, K, logp, n_threads)
                else:
                    _forward(H[l + 1], sizes[l + 1], Wg[l], bg[l], scratch, BK, sizes[l], MODE_LOGPMF, NULL, 0,
                             NULL, False, H[l], 1, logp, n_threads)
            for r in range(BK):
                out[<Py_ssize_t> start * K + r] = <floating> (logp[r] - logq[r])
    return 0
