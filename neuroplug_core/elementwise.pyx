# cython: language_level=3
"""Element-wise activations in one pass: ReLU forward and backward.

:meth:`neuroplug.ops.Ops.relu_backward` is ``dy * (y > 0)``: a boolean
temporary and a product, two passes and two allocations, a visible share
of a LeNet training step.  Here each is one OpenMP loop that GCC vectorises,
with the reference's arithmetic: ``relu(NaN)`` is NaN (as ``np.maximum``),
and the backward pass multiplies ``dy`` by 0 or 1, so a NaN or inf ``dy``
still shows up where the unit is off.

The caller checks that the arrays are C-contiguous, of one float dtype and
of one size (DESIGN rule 4).
"""

from cython.parallel cimport prange

from ._fused cimport floating


cdef enum:
    BLOCK = 16384   # elements per OpenMP task


cdef inline void _relu_block(const floating* x, floating* out, Py_ssize_t i0, Py_ssize_t i1) noexcept nogil:
    cdef Py_ssize_t i
    cdef floating v
    for i in range(i0, i1):
        v = x[i]
        out[i] = 0 if v <= 0 else v      # -0.0 becomes 0, as np.maximum(x, 0) gives


cdef inline void _relu_backward_block(const floating* y, const floating* dy, floating* out,
                                      Py_ssize_t i0, Py_ssize_t i1) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(i0, i1):
        out[i] = dy[i] * (1 if y[i] > 0 else 0)


def relu(const floating[::1] x, floating[::1] out, int n_threads):
    """``out = max(x, 0)`` (NaN stays NaN)."""
    cdef Py_ssize_t n = x.shape[0]
    cdef Py_ssize_t blocks = (n + BLOCK - 1) // BLOCK
    cdef Py_ssize_t blk
    if out.shape[0] != n:
        raise ValueError("out has the wrong size")
    if n == 0:
        return
    with nogil:
        for blk in prange(blocks, num_threads=max(1, n_threads), schedule="static"):
            _relu_block(&x[0], &out[0], blk * BLOCK, min(n, (blk + 1) * BLOCK))


def relu_backward(const floating[::1] y, const floating[::1] dy, floating[::1] out, int n_threads):
    """``out = dy * (y > 0)``, given the ReLU's output ``y``."""
    cdef Py_ssize_t n = y.shape[0]
    cdef Py_ssize_t blocks = (n + BLOCK - 1) // BLOCK
    cdef Py_ssize_t blk
    if dy.shape[0] != n or out.shape[0] != n:
        raise ValueError("y, dy and out must have the same size")
    if n == 0:
        return
    with nogil:
        for blk in prange(blocks, num_threads=max(1, n_threads), schedule="static"):
            _relu_backward_block(&y[0], &dy[0], &out[0], blk * BLOCK, min(n, (blk + 1) * BLOCK))
