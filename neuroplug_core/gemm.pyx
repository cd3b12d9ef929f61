# cython: language_level=3
"""Matrix product split over the OpenMP threads of ``neuroplug_core``.

Each OpenMP thread runs one single-threaded BLAS GEMM on its own slice of the
output (a block of columns, or of rows when the output is taller than wide).
Dense layers call it instead of NumPy's ``@`` so that a network's whole step
runs on one thread pool: NumPy's BLAS threads busy-wait for a while after
each product, and on a small machine they then take the cores from the
convolution kernels' OpenMP threads (measured on 2 cores: a LeNet epoch took
twice as long with the dense layers on NumPy's threaded BLAS).

The caller holds BLAS at one thread (``_single_threaded_blas``) and checks
shapes and dtypes (DESIGN rule 4).
"""

from cython.parallel cimport parallel, threadid

from ._blas cimport gemm_rm
from ._fused cimport floating


cdef inline Py_ssize_t _cut(Py_ssize_t total, int parts, int part, Py_ssize_t align) noexcept nogil:
    """Start of slice ``part`` when ``total`` is cut into ``parts`` slices of a multiple of ``align``."""
    cdef Py_ssize_t chunk = (total + parts - 1) // parts
    chunk = ((chunk + align - 1) // align) * align
    return min(total, part * chunk)


def gemm(
    const floating[:, ::1] a,   # IN  m x k (k x m when trans_a)
    const floating[:, ::1] b,   # IN  k x n (n x k when trans_b)
    floating[:, ::1] c,         # OUT m x n
    bint trans_a,
    bint trans_b,
    int n_threads,
):
    """``c = op(a) @ op(b)`` with row-major operands, the output cut between ``n_threads`` threads."""
    cdef int m = c.shape[0]
    cdef int n = c.shape[1]
    cdef int k = a.shape[0] if trans_a else a.shape[1]
    cdef int lda = a.shape[1]
    cdef int ldb = b.shape[1]
    cdef const floating* pa = &a[0, 0] if a.shape[0] > 0 and a.shape[1] > 0 else NULL
    cdef const floating* pb = &b[0, 0] if b.shape[0] > 0 and b.shape[1] > 0 else NULL
    cdef floating* pc
    cdef bint by_cols = n >= m
    cdef int t
    cdef Py_ssize_t lo, hi
    if m == 0 or n == 0:
        return
    pc = &c[0, 0]
    if k == 0:
        c[:, :] = 0
        return
    if n_threads <= 1:
        with nogil:
            gemm_rm(trans_a, trans_b, m, n, k, 1, pa, lda, pb, ldb, 0, pc, n)
        return
    with nogil, parallel(num_threads=n_threads):
        t = threadid()
        if by_cols:
            # Columns in multiples of 16: whole micro-kernel panels for every thread but the last.
            lo = _cut(n, n_threads, t, 16)
            hi = _cut(n, n_threads, t + 1, 16)
            if hi > lo:
                gemm_rm(trans_a, trans_b, m, <int> (hi - lo), k, 1, pa,
                        lda, pb + (lo * ldb if trans_b else lo), ldb, 0, pc + lo, n)
        else:
            lo = _cut(m, n_threads, t, 8)
            hi = _cut(m, n_threads, t + 1, 8)
            if hi > lo:
                gemm_rm(trans_a, trans_b, <int> (hi - lo), n, k, 1, pa + (lo if trans_a else lo * lda),
                        lda, pb, ldb, 0, pc + lo * n, n)
