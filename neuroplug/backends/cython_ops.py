"""``CythonOps``: the default CPU backend, running the compiled kernels of ``neuroplug_core``.

This module is the thin Python wrapper of DESIGN rule 4: it validates shapes,
dtypes and contiguity (with the checks inherited from :class:`neuroplug.ops.Ops`)
and then calls the kernels, which check nothing.  Whatever it does not
override runs the NumPy reference.
"""

from __future__ import annotations

from ..ops import Ops

__all__ = ["CythonOps"]


class CythonOps(Ops):
    """The compiled CPU backend (registered as ``"cpu"``)."""

    name = "cpu"
