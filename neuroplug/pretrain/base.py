"""The pretrainer contract."""

from __future__ import annotations

from typing import Any

from sklearn.base import BaseEstimator

__all__ = ["Pretrainer"]


class Pretrainer(BaseEstimator):
    """Base class of pretrainers (``"dbn"``, ``"sbn"``, ``"cdbn"``, ...).

    ``__init__`` stores hyper-parameters only.  :meth:`pretrain` receives an
    initialised network and the (possibly unlabeled) training inputs and
    overwrites the weights of the layers it knows how to pretrain.
    """

    def pretrain(self, network: Any, X: Any, *, random_state: Any = None, verbose: int = 0) -> None:
        """Initialise ``network``'s weights in place from unsupervised training on ``X``."""
        raise NotImplementedError
