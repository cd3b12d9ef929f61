# Uniform draws straight from a NumPy BitGenerator, for the kernels of neuroplug_core.
#
# The conversions are NumPy's own ((next_uint32 >> 8) * 2**-24 for float32,
# next_double for float64), so a kernel consumes a generator exactly as the
# reference Ops does with Generator.random(size, dtype) and reproduces its draws.

from cpython.pycapsule cimport PyCapsule_GetPointer
from numpy.random cimport bitgen_t

from ._fused cimport floating


cdef inline bitgen_t* bitgen_of(object bit_generator) except NULL:
    """The C state of a NumPy ``BitGenerator`` (the caller holds its ``lock`` while drawing)."""
    return <bitgen_t*> PyCapsule_GetPointer(bit_generator.capsule, "BitGenerator")


cdef inline void uniforms(
    bitgen_t* bg,             # IN/OUT: the generator, advanced by size draws
    floating* out,            # OUT: size uniforms in [0, 1)
    Py_ssize_t size,
) noexcept nogil:
    """Fill ``out`` exactly as NumPy's ``Generator.random(size, dtype)`` does."""
    cdef Py_ssize_t i
    for i in range(size):
        if floating is float:
            out[i] = <float> ((bg.next_uint32(bg.state) >> 8) * (1.0 / 16777216.0))
        else:
            out[i] = bg.next_double(bg.state)
