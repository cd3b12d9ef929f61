"""Flatten layer."""

from __future__ import annotations

from typing import Any

import numpy as np

from .activations import check_batch
from .base import Layer

__all__ = ["Flatten"]


class Flatten(Layer):
    """Reshape each sample to one vector (spec ``"flatten"``).

    :class:`~neuroplug.layers.dense.Dense` flattens by itself; this layer
    makes the step explicit, for example before a dropout layer.
    """

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """``(prod(input_shape),)``."""
        return (int(np.prod(input_shape)),)

    def forward(self, X: Any, *, training: bool = False) -> Any:
        """``X.reshape(n, -1)`` (a view for contiguous input)."""
        check_batch(self, X)
        return X.reshape(X.shape[0], -1)

    def backward(self, dY: Any) -> Any:
        """Reshape the gradient back to the input shape."""
        return dY.reshape(dY.shape[0], *self.input_shape_)
