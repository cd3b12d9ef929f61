"""The one image-input resolver of the estimators that take images (CNNs, ConvRBM, ConvDBN).

Rule, in order: an explicit ``input_shape`` (``(c, h, w)``, ``(h, w)`` or,
for models without spatial layers, ``(n_features,)``); else the shape of a
3-D ``(n, h, w)`` or 4-D ``(n, c, h, w)`` ``X``; else, for a model without
spatial layers, ``(n_features,)``; else a square single-channel image when
``n_features`` is a square; else a one-row image (a 1-D signal) where the
model accepts signals (convolutional RBMs), and an error that says how to
set ``input_shape`` where it does not (CNNs, whose pooling needs 2-D images).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import scipy.sparse as sp

__all__ = ["split_image_input", "resolve_input_shape"]

_HOW = (
    "Set input_shape=(channels, height, width), e.g. input_shape=(1, 28, 28) for MNIST, "
    "or pass X as a 4-D array (n_samples, channels, height, width)"
)


def split_image_input(X: Any) -> tuple[Any, tuple[int, ...] | None]:
    """Flatten 3-D ``(n, h, w)`` / 4-D ``(n, c, h, w)`` arrays; return ``(X, image_shape)``."""
    if sp.issparse(X) or hasattr(X, "iloc"):  # sparse matrices and DataFrames are 2-D
        return X, None
    if not hasattr(X, "ndim"):
        if not isinstance(X, (list, tuple)):
            return X, None
        X = np.asarray(X)
    if X.ndim == 4:
        return np.reshape(X, (X.shape[0], -1)), tuple(int(s) for s in X.shape[1:])
    if X.ndim == 3:
        return np.reshape(X, (X.shape[0], -1)), (1, int(X.shape[1]), int(X.shape[2]))
    if X.ndim > 4:
        raise ValueError(
            "X must be 2-D (n_samples, n_features), 3-D (n, height, width) or 4-D "
            f"(n, channels, height, width). Received: X.shape={tuple(X.shape)}"
        )
    return X, None


def resolve_input_shape(
    input_shape: Any,
    n_features: int,
    image_shape: tuple[int, ...] | None,
    *,
    spatial: bool = True,
    signals: bool = False,
) -> tuple[int, ...]:
    """The shape of one sample, by the module's rule.

    Parameters
    ----------
    input_shape : tuple of int or None
        The estimator's ``input_shape`` parameter.
    n_features : int
        Features per row of the (flattened) ``X``.
    image_shape : tuple of int or None
        The shape of a 3-D or 4-D ``X``'s samples (:func:`split_image_input`).
    spatial : bool, default=True
        Whether the model has spatial layers (convolution, pooling).
    signals : bool, default=False
        Whether a non-square ``n_features`` may be read as a one-row image.
    """
    if input_shape is not None:
        lengths = (1, 2, 3) if not spatial else (2, 3)
        try:
            ok = all(
                isinstance(s, numbers.Integral) and not isinstance(s, bool)
                for s in input_shape
            )
            shape = tuple(int(s) for s in input_shape)
        except (TypeError, ValueError):
            ok = False
        if not ok or len(shape) not in lengths or min(shape) < 1:
            forms = "(channels, height, width) or (height, width)" + (
                " or (n_features,)" if not spatial else ""
            )
            raise ValueError(
                f"input_shape must be {forms} with positive ints. Received: input_shape={input_shape!r}"
            )
        if len(shape) == 2:
            shape = (1, *shape)
        if math.prod(shape) != n_features:
            raise ValueError(
                f"input_shape={input_shape!r} holds {math.prod(shape)} values per sample but X has "
                f"{n_features} features. Received: input_shape={input_shape!r}"
            )
        if image_shape is not None and image_shape != shape:
            raise ValueError(
                f"X has images of shape {image_shape}, which disagrees with input_shape={input_shape!r}."
            )
        return shape
    if image_shape is not None:
        return image_shape
    if not spatial:
        return (n_features,)
    side = math.isqrt(n_features)
    if side * side == n_features:
        return (1, side, side)
    if signals:
        return (1, 1, n_features)
    raise ValueError(
        f"Cannot infer the image shape: X has {n_features} features, which is not a square "
        f"single-channel image, and the layers include convolution or pooling. {_HOW}. "
        "Received: input_shape=None"
    )
