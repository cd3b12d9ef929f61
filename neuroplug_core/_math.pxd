# Scalar functions shared by the kernels of neuroplug_core, in float and double.

from libc.math cimport exp, expf

from ._fused cimport floating


cdef inline floating sigmoid(floating x) noexcept nogil:
    """``1 / (1 + exp(-x))`` by the reference ``Ops.sigmoid``'s two branches: exp never overflows."""
    cdef floating e
    if floating is float:
        if x >= 0:
            return 1 / (1 + expf(-x))
        e = expf(x)
    else:
        if x >= 0:
            return 1 / (1 + exp(-x))
        e = exp(x)
    return e / (1 + e)
