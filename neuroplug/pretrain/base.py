"""The pretrainer contract and the helpers the built-in pretrainers share."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from .._validation import ValidatedParams
from ..layers.dense import Dense

__all__ = ["Pretrainer", "dense_run", "layer_inputs", "check_pretrain_input"]

#: Rows per forward pass when computing the inputs of the layers to pretrain.
FORWARD_BATCH = 256


class Pretrainer(ValidatedParams, BaseEstimator):
    """Base class of pretrainers (``"dbn"``, ``"sbn"``, ``"cdbn"``, ...).

    ``__init__`` stores hyper-parameters only; they are declared in
    ``_parameter_constraints`` and checked once: by the estimator whose
    ``pretrainer`` this is, at the start of its fit, or by :meth:`pretrain`
    when it is called directly.  :meth:`pretrain` receives an initialised
    network and the (possibly unlabeled) training inputs and overwrites the
    weights of the layers it knows how to pretrain.
    """

    _parameter_constraints: dict = {}

    def pretrain(self, network: Any, X: Any, *, random_state: Any = None, verbose: int = 0) -> None:
        """Initialise ``network``'s weights in place from unsupervised training on ``X``."""
        raise NotImplementedError


def dense_run(layers: list[Any]) -> list[int]:
    """Indices of the leading run of hidden dense layers of a network.

    The run starts at the first :class:`~neuroplug.layers.dense.Dense` layer
    and goes on through dense layers separated only by layers without
    parameters (activations, dropout, flatten); it ends at the first other
    layer with parameters.  The network's last layer with parameters is its
    output layer and is never part of the run.
    """
    weighted = [i for i, layer in enumerate(layers) if getattr(layer, "params", None)]
    run: list[int] = []
    for i in weighted[:-1]:  # weighted[-1] is the output layer
        if isinstance(layers[i], Dense):
            run.append(i)
        elif run:
            break
    return run


def check_pretrain_input(network: Any, X: Any) -> np.ndarray:
    """``X`` as an array of shape ``(n, *network.input_shape)``, or a clear error."""
    X = np.asarray(X)
    if X.ndim < 2 or tuple(X.shape[1:]) != tuple(network.input_shape):
        raise ValueError(
            f"X must have shape (n, {', '.join(map(str, network.input_shape))}). Received: X.shape={X.shape}"
        )
    return X


def layer_inputs(network: Any, X: np.ndarray, stop: int, dtype: Any) -> np.ndarray:
    """``network.forward(X, stop=stop)`` in batches, flattened, as C-contiguous NumPy of ``dtype``."""
    ops = network.ops
    out = []
    for start in range(0, X.shape[0], FORWARD_BATCH):
        xb = ops.asarray(X[start:start + FORWARD_BATCH], dtype=network.dtype)
        out.append(np.asarray(ops.to_numpy(network.forward(xb, stop=stop)), dtype=dtype))
    features = np.concatenate(out, axis=0)
    return np.ascontiguousarray(features.reshape(features.shape[0], -1))
