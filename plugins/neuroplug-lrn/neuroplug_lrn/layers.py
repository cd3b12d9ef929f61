"""The layers of the example plugin.

Every array operation goes through ``self.ops`` (or through array operators
that NumPy arrays and torch tensors share), so the layers run unchanged on the
NumPy reference, the Cython CPU backend and the torch backend.
"""

from __future__ import annotations

import functools
import numbers
from typing import Any, ClassVar

from neuroplug.layers.base import Layer
from neuroplug.layers.spec import parse_int

__all__ = ["LocalResponseNorm", "ELU", "GaussianNoise"]


# ---------------------------------------------------------------------------
# helpers shared by the three layers (spec strings need none: each layer
# declares its options in spec_options and the base from_spec parses them)
# ---------------------------------------------------------------------------
def _check_real(name: str, value: Any, *, low: float, strict: bool) -> float:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok:
        ok = value > low if strict else value >= low
    if not ok:
        op = ">" if strict else ">="
        raise ValueError(
            f"{name} must be a real number {op} {low}. Received: {name}={value!r}"
        )
    return float(value)


def _check_input(layer: Layer, X: Any) -> None:
    """Raise ``ValueError`` unless ``X`` is a batch of the shape the layer was initialised for."""
    expected = layer.input_shape_
    shape = tuple(int(s) for s in getattr(X, "shape", ()))
    if len(shape) != len(expected) + 1 or shape[1:] != expected:
        raise ValueError(
            f"{type(layer).__name__} was initialised for inputs of shape (n_samples, "
            f"{', '.join(map(str, expected))}). Received: X.shape={shape}"
        )


def _check_grad(layer: Layer, dY: Any, cached: Any) -> None:
    if cached is None:
        raise RuntimeError(
            f"{type(layer).__name__}.backward needs a preceding forward(X, training=True)."
        )
    if tuple(dY.shape) != tuple(cached.shape):
        raise ValueError(
            f"{type(layer).__name__}.backward expects dY of the output's shape {tuple(cached.shape)}. "
            f"Received: dY.shape={tuple(dY.shape)}"
        )


# ---------------------------------------------------------------------------
# local response normalization
# ---------------------------------------------------------------------------
class LocalResponseNorm(Layer):
    """Local response normalization across channels (AlexNet, Krizhevsky et al. 2012).

    Each activation is divided by a power of the summed squares of its
    neighbours along the channel axis (axis 1 of the batch)::

        y[c] = x[c] / (k + alpha / size * sum_{c' in window(c)} x[c']**2) ** beta

    where ``window(c)`` covers channels ``c - size // 2`` to
    ``c + (size - 1) // 2`` clipped to the valid range (zero padding).  Like
    Caffe and PyTorch, ``alpha`` is divided by ``size``; AlexNet's published
    ``alpha=1e-4`` without the division corresponds to ``alpha=5e-4`` here.

    Spec string: ``"lrn"``, ``"lrn:5"`` or ``"lrn:5,alpha=1e-4,beta=0.75,k=2"``.  Inputs are images
    ``(channels, height, width)`` or vectors ``(features,)`` (features are
    treated as channels).

    Parameters
    ----------
    size : int, default=5
        Number of neighbouring channels in the window (the channel itself
        included).
    alpha : float, default=1e-4
        Scaling of the summed squares (divided by ``size``).
    beta : float, default=0.75
        Exponent.
    k : float, default=2.0
        Additive constant; must be positive so the denominator never vanishes.
    """

    spec_usage = "lrn[:SIZE][,alpha=A][,beta=B][,k=K]"
    # The spec string's options: the base class's from_spec parses them (size is a positive int).
    spec_options: ClassVar[dict[str, Any]] = {
        "size": functools.partial(parse_int, what="size"),
        "alpha": float,
        "beta": float,
        "k": float,
    }
    spec_positional = "size"

    def __init__(
        self, size: int = 5, alpha: float = 1e-4, beta: float = 0.75, k: float = 2.0
    ) -> None:
        self.size = size
        self.alpha = alpha
        self.beta = beta
        self.k = k

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Unchanged; validates the hyper-parameters and the input rank."""
        if (
            not isinstance(self.size, numbers.Integral)
            or isinstance(self.size, bool)
            or self.size < 1
        ):
            raise ValueError(f"size must be an int >= 1. Received: size={self.size!r}")
        _check_real("alpha", self.alpha, low=0.0, strict=False)
        _check_real("beta", self.beta, low=0.0, strict=False)
        _check_real("k", self.k, low=0.0, strict=True)
        if len(input_shape) not in (1, 3):
            raise ValueError(
                "LocalResponseNorm needs (channels, height, width) or (features,) inputs. "
                f"Received: input_shape={tuple(input_shape)}"
            )
        return tuple(input_shape)

    def _window_sum(self, a: Any, before: int, after: int) -> Any:
        """``out[:, c] = sum(a[:, c - before : c + after + 1])`` with zero padding, via slices."""
        channels = int(a.shape[1])
        out = self.ops.alloc(tuple(a.shape), dtype=self.dtype)
        # One shifted slice-add per offset: O(size) passes over the data with
        # nothing but slicing and +=, which every backend array supports.
        for d in range(-before, after + 1):
            lo, hi = max(0, -d), min(channels, channels - d)
            if lo < hi:
                out[:, lo:hi] += a[:, lo + d : hi + d]
        return out

    def forward(self, X: Any, *, training: bool = False) -> Any:
        """Normalize ``X``; caches ``X``, the denominator base and the output when training."""
        _check_input(self, X)
        size = int(self.size)
        scale = self._window_sum(X * X, size // 2, (size - 1) // 2) * (
            float(self.alpha) / size
        ) + float(self.k)
        Y = X * scale ** (-float(self.beta))
        self._cache = (X, scale, Y) if training else None
        return Y

    def backward(self, dY: Any) -> Any:
        """Gradient for the input (the layer has no parameters).

        With ``s`` the denominator base, ``dx[i] = dy[i] s[i]**-beta -
        (2 alpha beta / size) x[i] sum_{j: i in window(j)} dy[j] y[j] / s[j]``;
        the adjoint window runs over the mirrored offsets.
        """
        cache = getattr(self, "_cache", None)
        _check_grad(self, dY, cache[2] if cache else None)
        X, scale, Y = cache
        size = int(self.size)
        beta = float(self.beta)
        back = self._window_sum(dY * Y / scale, (size - 1) // 2, size // 2)
        return dY * scale ** (-beta) - X * back * (
            2.0 * float(self.alpha) * beta / size
        )


# ---------------------------------------------------------------------------
# exponential linear unit
# ---------------------------------------------------------------------------
class ELU(Layer):
    """Exponential linear unit (Clevert et al. 2016).

    ``y = x`` for ``x > 0`` and ``alpha * (exp(x) - 1)`` otherwise.  Built from
    ``ops.relu`` and ``ops.tanh`` only (``exp(x) - 1 = 2 t / (1 - t)`` with
    ``t = tanh(x / 2)``, which is exact near 0 and cannot overflow), so every
    backend runs it.

    Spec string: ``"elu"`` or ``"elu:0.5"`` (``alpha``).

    Parameters
    ----------
    alpha : float, default=1.0
        Value the output approaches for very negative inputs is ``-alpha``;
        must be positive.
    """

    spec_usage = "elu[:ALPHA]"
    spec_options: ClassVar[dict[str, Any]] = {"alpha": float}
    spec_positional = "alpha"

    def __init__(self, alpha: float = 1.0) -> None:
        self.alpha = alpha

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Unchanged; validates ``alpha``."""
        _check_real("alpha", self.alpha, low=0.0, strict=True)
        return tuple(input_shape)

    def forward(self, X: Any, *, training: bool = False) -> Any:
        """Apply the ELU; caches the output when training."""
        _check_input(self, X)
        ops = self.ops
        positive = ops.relu(X)
        t = ops.tanh((X - positive) * 0.5)  # tanh of min(x, 0) / 2, in (-1, 0]
        Y = positive + (2.0 * float(self.alpha)) * t / (1.0 - t)
        self._Y = Y if training else None
        return Y

    def backward(self, dY: Any) -> Any:
        """``dx = dy`` where ``y > 0``, ``dy * (y + alpha)`` elsewhere (``alpha * exp(x)``)."""
        Y = getattr(self, "_Y", None)
        _check_grad(self, dY, Y)
        ops = self.ops
        g = dY * (Y + float(self.alpha))
        # relu_backward(Y, .) keeps exactly the entries with y > 0, i.e. x > 0.
        return ops.relu_backward(Y, dY) + g - ops.relu_backward(Y, g)


# ---------------------------------------------------------------------------
# Gaussian noise (a stochastic layer: the template for layers that draw)
# ---------------------------------------------------------------------------
class GaussianNoise(Layer):
    """Additive zero-mean Gaussian noise during training; the identity at inference.

    A regulariser (and the template for layers that draw random numbers: they
    draw only from the generator given by :meth:`bind_rng`, through
    ``ops.random_normal``, so a fit is reproducible on a given backend).

    Spec string: ``"gaussian_noise:0.1"`` (``stddev``).

    Parameters
    ----------
    stddev : float, default=0.1
        Standard deviation of the noise (0 disables it).
    """

    spec_usage = "gaussian_noise[:STDDEV]"
    spec_options: ClassVar[dict[str, Any]] = {"stddev": float}
    spec_positional = "stddev"

    def __init__(self, stddev: float = 0.1) -> None:
        self.stddev = stddev

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Unchanged; validates ``stddev``."""
        _check_real("stddev", self.stddev, low=0.0, strict=False)
        return tuple(input_shape)

    def forward(self, X: Any, *, training: bool = False) -> Any:
        """Add noise when training (needs :meth:`bind_rng` first); return ``X`` otherwise."""
        _check_input(self, X)
        self._shape = tuple(X.shape)
        if not training or float(self.stddev) == 0.0:
            return X
        rng = getattr(self, "rng", None)
        if rng is None:
            raise RuntimeError(
                "GaussianNoise.forward(training=True) needs a generator: call bind_rng(ops.make_rng(seed)) first."
            )
        return X + self.ops.random_normal(
            rng, X.shape, dtype=self.dtype, scale=float(self.stddev)
        )

    def backward(self, dY: Any) -> Any:
        """The noise is additive, so the gradient passes through unchanged."""
        shape = getattr(self, "_shape", None)
        if shape is None:
            raise RuntimeError(
                "GaussianNoise.backward needs a preceding forward(X, training=True)."
            )
        if tuple(dY.shape) != shape:
            raise ValueError(
                f"GaussianNoise.backward expects dY of shape {shape}. Received: dY.shape={tuple(dY.shape)}"
            )
        return dY
