"""Fully connected layer, and the small base shared by layers with weights."""

from __future__ import annotations

from typing import Any

import numpy as np

from .activations import INIT_SCHEMES, check_batch, initial_weights, resolve_init
from .base import Layer
from .spec import check_positive_int, parse_args, parse_int

__all__ = ["WeightedLayer", "Dense"]


def _parse_init(text: str) -> str:
    if text not in INIT_SCHEMES:
        raise ValueError(
            f"init must be one of {', '.join(INIT_SCHEMES)}. Received: init={text!r}"
        )
    return text


class WeightedLayer(Layer):
    """Base of layers with a weight ``"W"`` and a bias ``"b"``.

    Adds two things the :class:`~neuroplug.network.Network` uses:

    * ``set_activation_hint(name)``: the name of the activation that follows
      the layer, so that ``init="auto"`` can pick a suitable initialisation.
    * ``compute_input_grad``: set to ``False`` by the network for the first
      weighted layer during training, where the input gradient is not needed
      (it costs as much as the forward pass for a convolution).
    """

    compute_input_grad: bool = True
    _activation_hint: str | None = None

    def set_activation_hint(self, activation: str | None) -> None:
        """Remember the next activation's name for ``init="auto"``."""
        self._activation_hint = activation

    def _init_scheme(self) -> str:
        return resolve_init(getattr(self, "init", "auto"), self._activation_hint)


class Dense(WeightedLayer):
    """Fully connected layer ``y = x @ W + b`` (spec ``"dense:N"``).

    Image input ``(c, h, w)`` is flattened on the fly, so a dense layer can
    follow a convolution or pooling layer directly.

    Parameters
    ----------
    units : int, default=100
        Number of output units.
    init : {"auto", "he", "glorot", "glorot_sigmoid", "lecun"}, default="auto"
        Weight initialisation; ``"auto"`` follows the next activation (see
        :func:`neuroplug.layers.activations.resolve_init`).

    Notes
    -----
    Parameters: ``"W"`` of shape ``(n_in, units)`` and ``"b"`` of shape
    ``(units,)``, with ``n_in`` the product of the input shape.
    """

    spec_usage = "'dense:N' with N >= 1 units, options init=auto|he|glorot|lecun"

    def __init__(self, units: int = 100, *, init: str = "auto") -> None:
        self.units = units
        self.init = init

    @classmethod
    def from_spec(cls, args: str | None) -> Dense:
        """``"dense:500"`` or ``"dense:500,init=he"``."""
        pos, opts = parse_args(args, positional="units", options={"init": _parse_init})
        if pos is None:
            raise ValueError("the number of units is missing")
        return cls(parse_int(pos, "units"), **opts)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """``(units,)`` for any input shape."""
        return (check_positive_int(self.units, "units"),)

    def init_params(
        self, input_shape: tuple[int, ...], rng: np.random.Generator, dtype: Any
    ) -> dict[str, np.ndarray]:
        """Weights from the activation-aware scheme, zero biases."""
        n_in = int(np.prod(input_shape))
        units = check_positive_int(self.units, "units")
        W = initial_weights((n_in, units), n_in, units, self._init_scheme(), rng, dtype)
        return {"W": W, "b": np.zeros(units, dtype=dtype)}

    def forward(self, X: Any, *, training: bool = False) -> Any:
        """``X.reshape(n, -1) @ W + b``."""
        check_batch(self, X)
        X2 = X.reshape(X.shape[0], -1)
        if training:
            self._x = X2
            self._x_shape = tuple(X.shape)
        return self.ops.affine(X2, self.params["W"], self.params["b"])

    def backward(self, dY: Any) -> Any:
        """Store ``dW = x^T dY`` and ``db``; return ``dY W^T`` in the input's shape."""
        x = getattr(self, "_x", None)
        if x is None:
            raise RuntimeError("Dense.backward called without forward(training=True)")
        self.grads["W"] = self.ops.gemm(x, dY, trans1=True)
        self.grads["b"] = dY.sum(axis=0)
        if not self.compute_input_grad:
            return None
        return self.ops.gemm(dY, self.params["W"], trans2=True).reshape(self._x_shape)
