"""Built-in plugin: the NumPy reference backend and the Cython CPU backend."""

from ..plugins import hookimpl


@hookimpl
def neuroplug_register_backends(register):
    """Register ``"numpy"`` (the reference) and ``"cpu"`` (the Cython kernels)."""
    from ..backends.cython_ops import CythonOps
    from ..ops import Ops

    register("numpy", Ops)
    register("cpu", CythonOps)
