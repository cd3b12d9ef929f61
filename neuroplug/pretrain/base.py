"""The pretrainer contract and the helpers the built-in pretrainers share."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator

from .._validation import ValidatedParams
from ..layers.dense import Dense

__all__ = [
    "Pretrainer",
    "as_activation",
    "check_pretrain_input",
    "check_rows",
    "dense_run",
    "fit_units",
    "fold_input_affine",
    "layer_inputs",
    "pre_activations",
    "unit_activation",
]

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

    def pretrain(
        self, network: Any, X: Any, *, random_state: Any = None, verbose: int = 0
    ) -> None:
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
        xb = ops.asarray(X[start : start + FORWARD_BATCH], dtype=network.dtype)
        out.append(
            np.asarray(ops.to_numpy(network.forward(xb, stop=stop)), dtype=dtype)
        )
    features = np.concatenate(out, axis=0)
    return np.ascontiguousarray(features.reshape(features.shape[0], -1))


# ---------------------------------------------------------------------------
# Handing sigmoid-unit features to the layers a user built
# ---------------------------------------------------------------------------
#: Rows of X on which a pretrainer checks and fixes the units it initialised.
CHECK_ROWS = 1000
#: A ReLU unit positive on fewer than this fraction of the checked inputs counts as dead.
MIN_ACTIVE = 0.01
#: Per saturating activation, the |pre-activation| beyond which its slope is under 1% of its maximum.
SATURATION = {"sigmoid": 4.6, "tanh": 2.3}
#: A sigmoid layer whose outputs spread less than this fraction of its initial ones' is flat.
FLAT = 0.25
#: A sigmoid or tanh unit in its linear range on fewer than this fraction of the inputs counts as saturated.
MIN_LINEAR = 0.01


def unit_activation(layers: Any, i: int) -> str | None:
    """Name of the activation applied to weighted layer ``i``'s output (``"relu"``, ``"tanh"``...), or None.

    Layers without parameters in between (pooling, dropout, flatten) are
    skipped; a weighted layer first means the layer is linear (None).
    """
    for layer in list(layers)[i + 1 :]:
        name = getattr(layer, "activation", None)
        if isinstance(name, str) and name:
            return name
        if getattr(layer, "params", None):
            return None
    return None


def check_rows(X: np.ndarray) -> np.ndarray:
    """At most :data:`CHECK_ROWS` rows of ``X``, evenly spread (deterministic)."""
    step = max(1, X.shape[0] // CHECK_ROWS)
    return X[::step][:CHECK_ROWS]


def pre_activations(network: Any, X: np.ndarray, i: int) -> np.ndarray:
    """Outputs of weighted layer ``i`` for ``X``, one column per unit (channel), as float64 NumPy."""
    ops = network.ops
    out = []
    for start in range(0, X.shape[0], FORWARD_BATCH):
        xb = ops.asarray(X[start : start + FORWARD_BATCH], dtype=network.dtype)
        out.append(
            np.asarray(ops.to_numpy(network.forward(xb, stop=i + 1)), dtype=np.float64)
        )
    z = np.concatenate(out, axis=0)
    if z.ndim > 2:  # (n, channels, h, w): every position is a sample of its channel
        z = np.moveaxis(z, 1, -1).reshape(-1, z.shape[1])
    return z


def as_activation(
    W: np.ndarray, b: np.ndarray, activation: str | None
) -> tuple[np.ndarray, np.ndarray]:
    """Weights of sigmoid (or rectified linear) hidden units, for a layer followed by ``activation``.

    A tanh layer gets ``W / 2, b / 2``: ``tanh(x / 2) = 2 sigmoid(x) - 1``,
    so it computes the same features, centred.  Other layers get the
    weights as they are (a ReLU layer computes the mean of rectified linear
    hidden units exactly, and is started from sigmoid units' filters
    otherwise).
    """
    if activation == "tanh":
        return W / 2, b / 2
    return W, b


def _unit_weights(layer: Any) -> tuple[np.ndarray, np.ndarray, int]:
    """``(W, b, axis)`` of a weighted layer as float64 copies; ``axis`` of ``W`` indexes the units."""
    w = layer.get_weights()
    W = np.array(w["W"], dtype=np.float64)
    b = np.array(w["b"], dtype=np.float64)
    # Dense: W is (n_in, units); Conv2D: (filters, channels, kh, kw).
    axis = W.ndim - 1 if W.ndim == 2 else 0
    return W, b, axis


def _spread(z: np.ndarray) -> float:
    """Root mean over units of each unit's variance over the inputs (0 for a single input)."""
    return float(np.sqrt(z.var(axis=0).mean())) if z.shape[0] > 1 else 0.0


def fit_units(
    network: Any, i: int, X: np.ndarray, reference: np.ndarray | None = None
) -> float:
    """Make the units of pretrained layer ``i`` alive on ``X``, data-dependently; return the live fraction.

    ``X`` are network inputs (a few hundred rows do); ``reference`` are the
    layer's outputs under its initial weights, for the same rows.

    * ReLU layers: the layer is rescaled (a positive factor leaves a
      rectified unit's feature unchanged) so its outputs have the spread of
      the initial weights', which the network's initialisation chose for
      this depth; a unit positive on fewer than 1% of the inputs (dead) gets
      the bias that centres it (positive on half of them).
    * tanh layers: every unit is centred (zero-median outputs) and the
      layer is shrunk to at most the spread of the initial weights' outputs.
    * sigmoid layers: a flat layer (outputs spread less than a quarter of
      the initial weights' outputs: the RBM barely left its tiny initial
      weights) is scaled up to that spread.
    * tanh layers: a unit in its linear range on fewer than 1% of the
      inputs (saturated: no gradient) is shrunk to the linear range.

    Other activations are left as they are.  Returns the fraction of units
    alive afterwards (positive on at least 1% of the inputs for ReLU, in the
    linear range on at least 1% for sigmoid and tanh; 1.0 otherwise).
    """
    layer = network.layers[i]
    activation = unit_activation(network.layers, i)
    if activation not in ("relu", "sigmoid", "tanh"):
        return 1.0
    W, b, axis = _unit_weights(layer)
    shape = [1] * W.ndim
    shape[axis] = -1
    z = pre_activations(network, X, i)
    if activation == "relu":
        if reference is not None:
            spread, target = _spread(z), _spread(reference)
            if spread > target > 0:
                W, b, z = (
                    W * (target / spread),
                    b * (target / spread),
                    z * (target / spread),
                )
        dead = (z > 0).mean(axis=0) < MIN_ACTIVE
        shift = np.where(dead, np.median(z, axis=0), 0.0)
        b -= shift
        live = float(((z - shift > 0).mean(axis=0) >= MIN_ACTIVE).mean())
    else:
        limit = SATURATION[activation]
        if activation == "tanh" and reference is not None:
            # tanh layers train best on zero-mean outputs (LeCun et al. 1998): every unit is centred,
            # and the layer keeps at most the spread of its initial outputs.
            b = b - np.median(z, axis=0)
            z = z - np.median(z, axis=0)
            spread, target = _spread(z), _spread(reference)
            if spread > target > 0:
                W, b, z = (
                    W * (target / spread),
                    b * (target / spread),
                    z * (target / spread),
                )
        elif reference is not None:
            # A flat layer (the RBM barely moved from its tiny initial weights) passes no signal up.
            spread, target = _spread(z), _spread(reference)
            if 0 < spread < FLAT * target:
                W, b, z = (
                    W * (target / spread),
                    b * (target / spread),
                    z * (target / spread),
                )
        # Sigmoid units that are off on nearly every input are the sparse features RBMs and SBNs learn
        # (measured: centring them stalled a classic net's fine-tuning on MNIST); only tanh units,
        # already centred, are un-saturated.
        saturated = ((np.abs(z) < limit).mean(axis=0) < MIN_LINEAR) & (
            activation == "tanh"
        )
        centre = np.where(saturated, np.median(z, axis=0), 0.0)
        spread = np.median(np.abs(z - centre), axis=0)
        shrink = np.where(
            saturated & (spread > limit / 2),
            (limit / 2) / np.maximum(spread, 1e-12),
            1.0,
        )
        b = (b - centre) * shrink
        W = W * shrink.reshape(shape)
        zc = (z - centre) * shrink
        live = float(((np.abs(zc) < limit).mean(axis=0) >= MIN_LINEAR).mean())
    dtype = layer.get_weights()["W"].dtype
    layer.set_weights({"W": W.astype(dtype), "b": b.astype(dtype)})
    return live


def fold_input_affine(
    W: np.ndarray, b: np.ndarray, shift: np.ndarray, scale: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Dense weights learnt on ``x' = (x - shift) / scale``, rewritten to act on the raw ``x``.

    ``x' W + b = x (W / scale) + (b - (shift / scale) W)``, exactly.
    """
    return W / scale[:, None], b - (shift / scale) @ W
