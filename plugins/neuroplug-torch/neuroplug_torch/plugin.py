"""The neuroplug plugin (entry point ``torch`` in the ``neuroplug`` group): registers backend ``"torch"``.

Loading this module does not import torch (that happens when the first
``TorchOps`` is created), so plugin discovery stays fast in every process.
Block the plugin with ``NEUROPLUG_DISABLE_PLUGINS=torch``.
"""

from __future__ import annotations

import importlib.util
import sys

from neuroplug import hookimpl

__all__ = ["neuroplug_register_backends"]


def _torch_importable() -> bool:
    if "torch" in sys.modules:
        return sys.modules["torch"] is not None
    try:
        return importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        return False


@hookimpl
def neuroplug_register_backends(register):
    """Register ``"torch"`` (:class:`neuroplug_torch.TorchOps`); select a device with ``"torch:cuda:0"``."""
    if not _torch_importable():
        # Fail this plugin's registration with a clear reason; the plugin
        # manager warns and lists it when someone asks for backend="torch".
        raise ImportError(
            "PyTorch is not installed (pip install torch), so backend 'torch' is unavailable"
        )
    from .ops import TorchOps

    register("torch", TorchOps)
