# cython: language_level=3
"""Optimiser steps in one pass over the parameters.

:meth:`neuroplug.ops.Ops.adam_update` is eight NumPy passes with temporaries,
a visible share of a LeNet training step.  Here the same arithmetic, in the reference's order, is one OpenMP loop (GCC
vectorises it: the C block turns off errno for ``sqrt``, which is never
given a negative number here).

The caller checks that the four arrays are C-contiguous, of one float dtype
and of one size (DESIGN rule 4).
"""

from cython.parallel cimport prange

from ._fused cimport floating


cdef extern from "np_optim.h":
    void np_adam_f(float* p, const float* g, float* m, float* v, long i0, long i1,
                   float b1, float c1, float b2, float c2, float step, float eps) noexcept nogil
    void np_adam_d(double* p, const double* g, double* m, double* v, long i0, long i1,
                   double b1, double c1, double b2, double c2, double step, double eps) noexcept nogil


cdef enum:
    BLOCK = 16384   # elements per OpenMP task: enough work to pay for handing it out


def adam_update(
    floating[::1] param,            # IN/OUT
    const floating[::1] grad,       # IN
    floating[::1] m,                # IN/OUT first-moment estimate
    floating[::1] v,                # IN/OUT second-moment estimate
    double beta1,
    double beta2,
    double step,                    # lr * sqrt(1 - beta2**t) / (1 - beta1**t), from the caller
    double eps,
    int n_threads,
):
    """One Adam step over flat arrays, as :meth:`neuroplug.ops.Ops.adam_update`."""
    cdef Py_ssize_t n = param.shape[0]
    cdef Py_ssize_t blocks = (n + BLOCK - 1) // BLOCK
    cdef Py_ssize_t blk, i0, i1
    if n == 0:
        return
    with nogil:
        for blk in prange(blocks, num_threads=max(1, n_threads), schedule="static"):
            i0 = blk * BLOCK
            i1 = min(n, i0 + BLOCK)
            if floating is float:
                np_adam_f(&param[0], &grad[0], &m[0], &v[0], i0, i1, <float> beta1, <float> (1 - beta1),
                          <float> beta2, <float> (1 - beta2), <float> step, <float> eps)
            else:
                np_adam_d(&param[0], &grad[0], &m[0], &v[0], i0, i1, beta1, 1 - beta1, beta2, 1 - beta2,
                          step, eps)
