# Row-major GEMM on top of SciPy's BLAS, for the kernels of neuroplug_core.
#
# SciPy exports the Fortran BLAS of the library it was built against through
# scipy.linalg.cython_blas, so the kernels call an optimised GEMM without
# linking to any BLAS themselves (as scikit-learn's utils/_cython_blas does).
# Fortran BLAS is column-major; a row-major product C = op(A) op(B) is the
# column-major product C^T = op(B)^T op(A)^T, which is what gemm_rm computes.
#
# The caller must keep every dimension and leading dimension below 2**31
# (BLAS takes 32-bit ints); the Python wrappers check it.

from scipy.linalg.cython_blas cimport sgemm, dgemm

from ._fused cimport floating


cdef inline void gemm_rm(
    bint trans_a,             # IN: use A^T
    bint trans_b,             # IN: use B^T
    int m, int n, int k,      # IN: C is m x n, the inner dimension is k
    floating alpha,
    const floating* a,        # IN: m x k (k x m when trans_a), row stride lda
    int lda,
    const floating* b,        # IN: k x n (n x k when trans_b), row stride ldb
    int ldb,
    floating beta,
    floating* c,              # IN/OUT: m x n, row stride ldc
    int ldc,
) noexcept nogil:
    """Row-major ``C = alpha op(A) op(B) + beta C``."""
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    if m <= 0 or n <= 0:
        return
    if floating is float:
        sgemm(&tb, &ta, &n, &m, &k, &alpha, <float*> b, &ldb, <float*> a, &lda, &beta, c, &ldc)
    else:
        dgemm(&tb, &ta, &n, &m, &k, &alpha, <double*> b, &ldb, <double*> a, &lda, &beta, c, &ldc)
