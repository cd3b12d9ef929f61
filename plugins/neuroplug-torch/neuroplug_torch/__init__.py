"""neuroplug-torch: the PyTorch backend of neuroplug (``backend="torch"`` / ``"torch:cuda:0"``).

Installing this distribution registers the backend through the ``neuroplug``
entry-point group; nothing in neuroplug itself imports torch.  See
:class:`TorchOps`.
"""

from .ops import TorchFallbackWarning, TorchOps, resolve_device

__version__ = "0.1.0"

__all__ = ["TorchOps", "TorchFallbackWarning", "resolve_device", "__version__"]
