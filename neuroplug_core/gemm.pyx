# cython: language_level=3
"""Matrix product split over the OpenMP threads of ``neuroplug_core``.

The output is cut into blocks of 64 columns (or of rows, when it is taller
than wide), each one single-threaded BLAS GEMM, shared out between OpenMP
threads.  The cut depends on the shape alone, so the product is
bit-identical on any number of threads.

Dense layers call it instead of NumPy's ``@`` so that a network's whole step
runs on one thread pool: NumPy's BLAS threads busy-wait for a while after
each product, and on a small machine they then take the cores from the
convolution kernels' OpenMP threads (measured on 2 cores: a LeNet epoch took
twice as long with the dense layers on NumPy's threaded BLAS).

The caller holds BLAS at one thread (``_single_threaded_blas``) and checks
shapes and dtypes (DESIGN rule 4).
"""

from cython.parallel cimport prange

from ._blas cimport gemm_rm
from ._fused cimport floating


cdef enum:
    BLOCK = 64      # rows or columns of the output per BLAS call in a split product


def gemm(
    const floating[:, ::1] a,   # IN  m x k (k x m when trans_a)
    const floating[:, ::1] b,   # IN  k x n (n x k when trans_b)
    floating[:, ::1] c,         # OUT m x n
    bint trans_a,
    bint trans_b,
    int n_threads,
    bint split,
):
    """``c = op(a) @ op(b)`` with row-major operands.

    With ``split``, the output is cut into blocks of 64 columns (or rows,
    when it is taller than wide), one BLAS call each, shared out between
    ``n_threads`` threads; without it, one call on one thread.
    """
    cdef int m = c.shape[0]
    cdef int n = c.shape[1]
    cdef int k = a.shape[0] if trans_a else a.shape[1]
    cdef int lda = a.shape[1]
    cdef int ldb = b.shape[1]
    cdef const floating* pa = &a[0, 0] if a.shape[0] > 0 and a.shape[1] > 0 else NULL
    cdef const floating* pb = &b[0, 0] if b.shape[0] > 0 and b.shape[1] > 0 else NULL
    cdef floating* pc
    cdef bint by_cols = n >= m
    cdef Py_ssize_t blocks, blk, lo, hi
    if m == 0 or n == 0:
        return
    pc = &c[0, 0]
    if k == 0:
        c[:, :] = 0
        return
    if not split:
        with nogil:
            gemm_rm(trans_a, trans_b, m, n, k, 1, pa, lda, pb, ldb, 0, pc, n)
        return
    # The cut depends only on the shape, never on the thread count: a BLAS
    # result can depend on the shape of the call (its edge kernels), so this
    # keeps the product bit-identical on any number of threads.
    blocks = ((n if by_cols else m) + BLOCK - 1) // BLOCK
    with nogil:
        for blk in prange(blocks, num_threads=max(1, n_threads), schedule="static"):
            lo = blk * BLOCK
            if by_cols:
                hi = min(<Py_ssize_t> n, lo + BLOCK)
                gemm_rm(trans_a, trans_b, m, <int> (hi - lo), k, 1, pa,
                        lda, pb + (lo * ldb if trans_b else lo), ldb, 0, pc + lo, n)
            else:
                hi = min(<Py_ssize_t> m, lo + BLOCK)
                gemm_rm(trans_a, trans_b, <int> (hi - lo), n, k, 1, pa + (lo if trans_a else lo * lda),
                        lda, pb, ldb, 0, pc + lo * n, n)
