"""The sequential model: initialised layers, a loss, one training step.

A :class:`Network` binds a list of layers to one backend (``ops``), creates
their parameters and runs them forward and backward.  Estimators build one
per fit; pretrainers receive one and overwrite layer weights.  Everything is
computed through ``ops``, so the same network runs on every backend.

Losses are fused with the output non-linearity: a classification network
ends in logits and :class:`SoftmaxCrossEntropy` applies the softmax inside
the loss (numerically stable, and the gradient is simply ``p - onehot``).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from .layers.base import Layer

__all__ = [
    "Network",
    "Loss",
    "SigmoidBinaryCrossEntropy",
    "SoftmaxCrossEntropy",
    "SquaredError",
    "TrainingDivergedError",
]


class TrainingDivergedError(FloatingPointError, ValueError):
    """The training loss became NaN or infinite (usually: the learning rate is too high).

    Also a ``ValueError``: as in scikit-learn (whose MLP raises ``ValueError``
    when its weights become non-finite), the usual cause is input that needs
    scaling, so ``except ValueError`` around ``fit`` catches bad input of
    every kind.
    """


def _row_weights(sample_weight: Any, n: int) -> np.ndarray:
    """The batch's weights as a float64 column of ``n`` entries."""
    w = np.asarray(sample_weight, dtype=np.float64).reshape(-1)
    if w.shape[0] != n:
        raise ValueError(
            f"sample_weight must have one entry per row of the batch ({n}). Received: {w.shape[0]}"
        )
    return w.reshape(-1, 1)


class Loss:
    """A loss fused with the network's output transform.

    With ``sample_weight`` (one weight per row, normalised by the caller to
    a mean of 1 over the training set), the batch loss is
    ``sum_i w_i l_i / m`` over its ``m`` rows and each row's gradient is
    scaled by ``w_i``: an unbiased mini-batch estimate of the weighted mean
    loss ``sum_i w_i l_i / sum_i w_i`` of the whole set, so a batch of
    light rows moves the weights little.  Weights of 1 give exactly the
    unweighted loss.
    """

    name = ""

    def __call__(
        self, ops: Any, output: Any, target: Any, sample_weight: Any = None
    ) -> tuple[float, Any]:
        """Return ``(mean loss, gradient with respect to output)``."""
        raise NotImplementedError

    def transform(self, ops: Any, output: Any) -> Any:
        """Map the raw network output to predictions (identity by default)."""
        return output


class SoftmaxCrossEntropy(Loss):
    """Softmax + cross-entropy against integer class labels (the output is logits)."""

    name = "softmax_cross_entropy"

    def __call__(
        self, ops: Any, output: Any, target: Any, sample_weight: Any = None
    ) -> tuple[float, Any]:
        """Mean cross-entropy and its gradient for the logits (weighted mean with ``sample_weight``)."""
        if sample_weight is None:
            return ops.softmax_cross_entropy(output, target)
        n, c = int(output.shape[0]), int(output.shape[1])
        w = _row_weights(sample_weight, n)
        labels = np.asarray(ops.to_numpy(target), dtype=np.int64).reshape(-1)
        logp = np.asarray(
            ops.to_numpy(ops.log_softmax(output, axis=1)), dtype=np.float64
        )
        value = -float((w[:, 0] * logp[np.arange(n), labels]).sum()) / n
        onehot = np.zeros((n, c), dtype=output.dtype)
        onehot[np.arange(n), labels] = 1
        grad = (ops.softmax(output, axis=1) - ops.asarray(onehot)) * ops.asarray(
            w.astype(output.dtype)
        )
        return value, grad / n

    def transform(self, ops: Any, output: Any) -> Any:
        """Class probabilities ``softmax(logits)``."""
        return ops.softmax(output, axis=1)


class SquaredError(Loss):
    """``0.5 * mean over samples of sum over outputs (pred - target)**2`` (regression)."""

    name = "squared_error"

    def __call__(
        self, ops: Any, output: Any, target: Any, sample_weight: Any = None
    ) -> tuple[float, Any]:
        """Loss and gradient through ``ops.squared_loss`` (weighted mean with ``sample_weight``)."""
        if sample_weight is None:
            return ops.squared_loss(output, target)
        n = int(output.shape[0])
        w = _row_weights(sample_weight, n)
        diff = output - target
        rows = np.asarray(ops.to_numpy((diff * diff).sum(axis=1)), dtype=np.float64)
        value = 0.5 * float((w[:, 0] * rows).sum()) / n
        return value, diff * ops.asarray(w.astype(output.dtype)) / n


class SigmoidBinaryCrossEntropy(Loss):
    """Sigmoid + binary cross-entropy per output against 0/1 targets (multilabel; the output is logits).

    The loss of a row is ``sum_l softplus(z_l) - y_l z_l`` (the negative
    log-likelihood of independent Bernoulli labels), averaged over rows as
    scikit-learn's ``MLPClassifier`` does for multilabel targets; its
    gradient is ``sigmoid(z) - y``, divided by the batch size.
    """

    name = "sigmoid_binary_cross_entropy"

    def __call__(
        self, ops: Any, output: Any, target: Any, sample_weight: Any = None
    ) -> tuple[float, Any]:
        """Mean binary cross-entropy and its gradient for the logits."""
        n = int(output.shape[0])
        rows = (ops.softplus(output) - target * output).sum(axis=1)
        diff = ops.sigmoid(output) - target
        if sample_weight is None:
            return float(rows.sum()) / n, diff / n
        w = _row_weights(sample_weight, n)
        value = (
            float((w[:, 0] * np.asarray(ops.to_numpy(rows), dtype=np.float64)).sum())
            / n
        )
        return value, diff * ops.asarray(w.astype(output.dtype)) / n

    def transform(self, ops: Any, output: Any) -> Any:
        """Label probabilities ``sigmoid(logits)``."""
        return ops.sigmoid(output)


def _next_activation(layers: Sequence[Layer], start: int) -> str | None:
    """Name of the first activation after ``layers[start]``, before the next weighted layer."""
    for layer in layers[start + 1 :]:
        name = getattr(layer, "activation", None)
        if isinstance(name, str) and name:
            return name
        if hasattr(layer, "set_activation_hint"):
            return None
    return None


class Network:
    """A stack of layers bound to one backend.

    Parameters
    ----------
    layers : list of Layer
        Fresh layers (hyper-parameters only); they are initialised here, in
        place, with shapes inferred from ``input_shape``.
    input_shape : tuple of int
        Shape of one sample: ``(channels, height, width)`` for images,
        ``(n_features,)`` for vectors.
    ops : Ops
        The backend.  When its ``check_finite`` is on, the network checks its
        own input once per :meth:`forward` and gives the layers a copy of the
        backend with the check off; the object passed in is never modified.
    rng : numpy.random.Generator, int or None
        Source of the initial weights (drawn in NumPy, so every backend starts
        from the same weights) and of the seed of the backend generator bound
        to the layers (dropout).
    dtype : numpy dtype, default=float32
        Parameter and activation dtype (float64 for gradient checks).

    Attributes
    ----------
    layers : list of Layer
        The initialised layers.
    output_shape : tuple of int
        Shape of one sample of the output.
    shapes : list of tuple of int
        Input shape of each layer, then the output shape.
    """

    def __init__(
        self,
        layers: Sequence[Layer],
        input_shape: Sequence[int],
        ops: Any,
        rng: np.random.Generator | int | None = None,
        dtype: Any = np.float32,
    ) -> None:
        layers = list(layers)
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise TypeError(
                    f"layers[{i}] must be a neuroplug Layer. Received: {layer!r}"
                )
        if len({id(layer) for layer in layers}) != len(layers):
            raise ValueError(
                "The same layer object appears twice in layers; pass distinct objects."
            )
        try:
            shape = tuple(int(s) for s in input_shape)
        except (TypeError, ValueError):
            raise TypeError(
                f"input_shape must be a tuple of ints. Received: input_shape={input_shape!r}"
            ) from None
        if not shape or min(shape) < 1:
            raise ValueError(
                f"input_shape must be a non-empty tuple of positive ints. Received: input_shape={input_shape!r}"
            )
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise TypeError(
                f"dtype must be float32 or float64. Received: dtype={dtype!r}"
            )
        self.check_input = bool(getattr(ops, "check_finite", False))
        if self.check_input:
            # The layers' calls skip the check (forward checks the input once); the caller's
            # Ops object is left as it was.
            ops = copy.copy(ops)
            ops.check_finite = False
        self.ops = ops
        rng = (
            rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        )
        self.input_shape = shape
        self.shapes = [shape]
        for i, layer in enumerate(layers):
            if hasattr(layer, "set_activation_hint"):
                layer.set_activation_hint(_next_activation(layers, i))
            try:
                shape = tuple(layer.initialize(shape, ops, rng, self.dtype))
            except (ValueError, TypeError) as exc:
                raise type(exc)(f"layer {i} ({layer!r}): {exc}") from exc
            self.shapes.append(shape)
        self.layers = layers
        self.reseed(int(rng.integers(2**31 - 1)))
        self.output_shape = shape
        # Index of the first layer with parameters: the backward pass stops there.
        self._first_weighted = next(
            (i for i, layer in enumerate(layers) if getattr(layer, "params", None)),
            None,
        )

    def reseed(self, seed: int) -> None:
        """Bind a fresh backend generator seeded with ``seed`` to every layer (dropout, noise).

        Training reseeds at every epoch from the estimator's generator, so a
        fit continued after saving draws exactly what an uninterrupted fit
        would.
        """
        backend_rng = self.ops.make_rng(int(seed))
        for layer in self.layers:
            layer.bind_rng(backend_rng)

    def __repr__(self) -> str:
        inner = ", ".join(repr(layer) for layer in self.layers)
        return f"Network([{inner}], input_shape={self.input_shape}, ops={self.ops!r})"

    # ------------------------------------------------------------------ passes
    def forward(self, X: Any, training: bool = False, stop: int | None = None) -> Any:
        """Output of ``layers[:stop]`` for the batch ``X`` of shape ``(n, *input_shape)``.

        With ``training=True`` the layers keep what :meth:`backward` needs
        and dropout is active.
        """
        if tuple(X.shape[1:]) != self.input_shape:
            raise ValueError(
                f"X must have shape (n, {', '.join(map(str, self.input_shape))}). Received: X.shape={tuple(X.shape)}"
            )
        if self.check_input and not self.ops._all_finite(X):
            raise ValueError("X contains NaN or infinity.")
        for layer in self.layers[:stop]:
            X = layer.forward(X, training=training)
        return X

    def backward(self, dY: Any, input_grad: bool = True) -> Any:
        """Back-propagate ``dY`` (gradient of the loss for the output) through every layer.

        Parameter gradients land in each layer's ``grads``.  Returns the
        gradient for the network input, or ``None`` with ``input_grad=False``:
        then the pass stops at the first layer with parameters and that layer
        skips its own input gradient (the saving matters for a first
        convolution).
        """
        stop = 0 if input_grad or self._first_weighted is None else self._first_weighted
        for i in range(len(self.layers) - 1, stop - 1, -1):
            layer = self.layers[i]
            skip = not input_grad and i == stop
            if skip:
                previous = getattr(layer, "compute_input_grad", True)
                layer.compute_input_grad = False
            try:
                dY = layer.backward(dY)
            finally:
                if skip:
                    layer.compute_input_grad = previous
        return dY if input_grad else None

    def train_batch(
        self,
        X: Any,
        y: Any,
        loss: Loss,
        optimizer: Any,
        learning_rate: float,
        alpha: float = 0.0,
        sample_weight: Any = None,
    ) -> float:
        """One optimisation step on a batch; returns the batch's mean data loss.

        With ``sample_weight`` (NumPy, one entry per row) the loss and its
        gradient are the weighted mean over the batch (see :class:`Loss`).

        Raises
        ------
        TrainingDivergedError
            When the loss is NaN or infinite; the weights are left unchanged
            by this batch.
        """
        out = self.forward(X, training=True)
        value, grad = (
            loss(self.ops, out, y)
            if sample_weight is None
            else loss(self.ops, out, y, sample_weight)
        )
        value = float(value)
        if not np.isfinite(value):
            raise TrainingDivergedError(
                f"Training diverged: the loss became {value} (NaN or infinite). Try a lower "
                f"learning_rate (it was {learning_rate:g}), a smaller alpha, or scaling the input "
                "(for example with StandardScaler)."
            )
        self.backward(grad, input_grad=False)
        optimizer.step(self.layers, learning_rate, alpha)
        return value

    def predict(self, X: Any, batch_size: int = 256) -> np.ndarray:
        """Network output for NumPy ``X`` in batches, as a NumPy array.

        ``X`` may also be 2-D ``(n, prod(input_shape))``, or a scipy sparse
        matrix of that shape: each batch is densified and reshaped on its
        own, so the whole input is never densified.
        """
        sparse = sp.issparse(X)
        if not sparse:
            X = np.asarray(X)
        n = X.shape[0]
        out = np.empty((n, *self.output_shape), dtype=self.dtype)
        for start in range(0, n, batch_size):
            xb = X[start : start + batch_size]
            if sparse:
                xb = xb.toarray()
            if (
                xb.ndim == 2
                and len(self.input_shape) > 1
                and xb.shape[1] == int(np.prod(self.input_shape))
            ):
                xb = xb.reshape(xb.shape[0], *self.input_shape)
            out[start : start + batch_size] = self.ops.to_numpy(
                self.forward(self.ops.asarray(xb, dtype=self.dtype))
            )
        return out

    # ----------------------------------------------------------------- weights
    def penalty(self) -> float:
        """``0.5 * sum of squares`` of every parameter with two or more dimensions (the L2 term).

        A layer opts a parameter out by naming it in its ``no_decay`` set.
        """
        total = 0.0
        for layer in self.layers:
            for key, p in layer.params.items():
                if len(p.shape) >= 2 and key not in getattr(layer, "no_decay", ()):
                    total += float((p * p).sum())
        return 0.5 * total

    def n_params(self) -> int:
        """Total number of parameters."""
        return int(
            sum(
                int(np.prod(p.shape))
                for layer in self.layers
                for p in layer.params.values()
            )
        )

    def get_weights(self) -> list[dict[str, np.ndarray]]:
        """One dict of NumPy arrays (copies) per layer."""
        return [layer.get_weights() for layer in self.layers]

    def set_weights(self, weights: Sequence[dict[str, np.ndarray]]) -> None:
        """Load weights produced by :meth:`get_weights` (one dict per layer)."""
        if len(weights) != len(self.layers):
            raise ValueError(
                f"weights must hold one dict per layer ({len(self.layers)}). Received: {len(weights)} dicts"
            )
        for layer, w in zip(self.layers, weights):
            if set(w) != set(layer.params):
                raise ValueError(
                    f"{type(layer).__name__} has parameters {sorted(layer.params)}. Received: {sorted(w)}"
                )
            layer.set_weights(w)
