"""neuroplug: scikit-learn-native convolutional nets and deep belief nets.

A Cython core for the hot loops, pluggy hooks for layers, pretrainers and
backends, and scikit-learn estimators as the front door.
"""

from ._version import __version__
from .ops import Ops
from .persist import ModelFormatError, load, save
from .plugins import get_plugin_manager, hookimpl

__all__ = ["__version__", "Ops", "get_plugin_manager", "hookimpl", "save", "load", "ModelFormatError"]
