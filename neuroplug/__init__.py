"""neuroplug: scikit-learn-native convolutional nets and deep belief nets.

A Cython core for the hot loops, pluggy hooks for layers, pretrainers and
backends, and scikit-learn estimators as the front door.

The estimators can be imported from the top level
(``from neuroplug import CNNClassifier``) as well as from
:mod:`neuroplug.estimators`; they are loaded on first use, so that
``import neuroplug`` (and every plugin that imports it) stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .ops import Ops
from .persist import ModelFormatError, load, save
from .plugins import get_plugin_manager, hookimpl

if TYPE_CHECKING:  # static type checkers and IDEs see the lazy names too
    from .estimators import (
        DBN,
        RBM,
        CNNClassifier,
        CNNRegressor,
        ConvDBN,
        ConvRBM,
        DBNClassifier,
        SigmoidBeliefNet,
    )

#: Names loaded on first access (module ``__getattr__``, PEP 562): name -> module.
_LAZY = {
    "CNNClassifier": "neuroplug.estimators",
    "CNNRegressor": "neuroplug.estimators",
    "RBM": "neuroplug.estimators",
    "DBN": "neuroplug.estimators",
    "DBNClassifier": "neuroplug.estimators",
    "SigmoidBeliefNet": "neuroplug.estimators",
    "ConvRBM": "neuroplug.estimators",
    "ConvDBN": "neuroplug.estimators",
}

__all__ = [
    "__version__",
    "Ops",
    "get_plugin_manager",
    "hookimpl",
    "save",
    "load",
    "ModelFormatError",
    # the lazy names (_LAZY), spelled out for static tools
    "CNNClassifier",
    "CNNRegressor",
    "RBM",
    "DBN",
    "DBNClassifier",
    "SigmoidBeliefNet",
    "ConvRBM",
    "ConvDBN",
]


def __getattr__(name: str) -> Any:
    """Import an estimator the first time it is looked up (``neuroplug.CNNClassifier``)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'neuroplug' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    """The module's attributes, the not yet imported estimators included (tab completion)."""
    return sorted(set(globals()) | set(_LAZY))
