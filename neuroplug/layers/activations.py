"""Activation layers (sigmoid, tanh, ReLU, softmax) and activation-aware weight initialisation.

Each activation layer carries a class attribute ``activation`` with its name.
A :class:`neuroplug.network.Network` looks, for every layer with weights, at
the next activation in the stack and passes its name to the layer
(``set_activation_hint``), so that ``init="auto"`` picks the initialisation
suited to it (:func:`initial_weights`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .base import Layer

__all__ = [
    "Activation",
    "Sigmoid",
    "Tanh",
    "ReLU",
    "Softmax",
    "INIT_SCHEMES",
    "resolve_init",
    "initial_weights",
    "check_batch",
]

#: Weight-initialisation schemes understood by ``init=`` of weighted layers.
INIT_SCHEMES = ("auto", "he", "glorot", "glorot_sigmoid", "lecun")

# "auto": the scheme suited to the activation that follows the layer.
# He et al. (2015) for ReLU; Glorot & Bengio (2010) for tanh and for linear
# outputs (logits); for the logistic sigmoid Glorot & Bengio's analysis gives
# 4x the tanh range because sigmoid'(0) = 1/4.
_AUTO_INIT = {"relu": "he", "tanh": "glorot", "sigmoid": "glorot_sigmoid"}


def resolve_init(init: Any, activation: str | None) -> str:
    """Return the concrete scheme for ``init`` given the next activation's name."""
    if init not in INIT_SCHEMES:
        raise ValueError(
            f"init must be one of {', '.join(INIT_SCHEMES)}. Received: init={init!r}"
        )
    if init != "auto":
        return init
    return _AUTO_INIT.get(activation or "", "glorot")


def initial_weights(
    shape: tuple[int, ...],
    fan_in: float,
    fan_out: float,
    scheme: str,
    rng: np.random.Generator,
    dtype: Any,
) -> np.ndarray:
    """Draw initial weights of ``shape`` with the concrete ``scheme`` (see :func:`resolve_init`)."""
    if scheme == "he":
        w = rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)
    elif scheme == "lecun":
        w = rng.standard_normal(shape) * np.sqrt(1.0 / fan_in)
    elif scheme in ("glorot", "glorot_sigmoid"):
        bound = np.sqrt(6.0 / (fan_in + fan_out))
        if scheme == "glorot_sigmoid":
            bound *= 4.0
        w = rng.uniform(-bound, bound, shape)
    else:
        raise ValueError(
            f"Unknown weight initialisation scheme. Received: scheme={scheme!r}"
        )
    return w.astype(dtype)


def check_batch(layer: Layer, X: Any) -> None:
    """Raise ``ValueError`` unless ``X`` is a batch of samples of the layer's input shape."""
    expected = getattr(layer, "input_shape_", None)
    if expected is None:
        raise RuntimeError(
            f"{type(layer).__name__} must be initialised (Network or initialize) before forward"
        )
    if tuple(X.shape[1:]) != expected or len(X.shape) != len(expected) + 1:
        raise ValueError(
            f"{type(layer).__name__} expects a batch of shape (n, {', '.join(map(str, expected))}). "
            f"Received: X.shape={tuple(X.shape)}"
        )


class Activation(Layer):
    """Base of the element-wise activation layers: no parameters, shape unchanged."""

    #: Name of the non-linearity, read by the network to pick weight initialisations.
    activation: str = ""

    def forward(self, X: Any, *, training: bool = False) -> Any:
        """Apply the non-linearity; keep the output for :meth:`backward` when training."""
        check_batch(self, X)
        Y = self._apply(X)
        self._y = Y if training else None
        return Y

    def backward(self, dY: Any) -> Any:
        """Gradient with respect to the input, from the output kept by :meth:`forward`."""
        if getattr(self, "_y", None) is None:
            raise RuntimeError(
                f"{type(self).__name__}.backward called without forward(training=True)"
            )
        return self._gradient(self._y, dY)

    def _apply(self, X: Any) -> Any:
        raise NotImplementedError

    def _gradient(self, Y: Any, dY: Any) -> Any:
        raise NotImplementedError


class Sigmoid(Activation):
    """Logistic sigmoid ``1 / (1 + exp(-x))`` (spec ``"sigmoid"``)."""

    activation = "sigmoid"

    def _apply(self, X: Any) -> Any:
        return self.ops.sigmoid(X)

    def _gradient(self, Y: Any, dY: Any) -> Any:
        return self.ops.sigmoid_backward(Y, dY)


class Tanh(Activation):
    """Hyperbolic tangent (spec ``"tanh"``)."""

    activation = "tanh"

    def _apply(self, X: Any) -> Any:
        return self.ops.tanh(X)

    def _gradient(self, Y: Any, dY: Any) -> Any:
        return self.ops.tanh_backward(Y, dY)


class ReLU(Activation):
    """Rectified linear unit ``max(x, 0)`` (spec ``"relu"``)."""

    activation = "relu"

    def _apply(self, X: Any) -> Any:
        return self.ops.relu(X)

    def _gradient(self, Y: Any, dY: Any) -> Any:
        return self.ops.relu_backward(Y, dY)


class Softmax(Activation):
    """Softmax over the features of each sample (spec ``"softmax"``).

    The estimators do not need it: their networks end in logits and the loss
    fuses softmax with cross-entropy (stabler and cheaper), and
    ``predict_proba`` applies the softmax.  The layer is for hand-built
    networks that want probabilities as an intermediate output.  Image input
    ``(c, h, w)`` is normalised over all its features together.
    """

    activation = "softmax"

    def _apply(self, X: Any) -> Any:
        n = X.shape[0]
        return self.ops.softmax(X.reshape(n, -1), axis=1).reshape(X.shape)

    def _gradient(self, Y: Any, dY: Any) -> Any:
        n = Y.shape[0]
        y = Y.reshape(n, -1)
        dy = dY.reshape(n, -1)
        # Jacobian-vector product of softmax: y * (dy - <dy, y>).
        inner = (dy * y).sum(axis=1).reshape(n, 1)
        return (y * (dy - inner)).reshape(Y.shape)
