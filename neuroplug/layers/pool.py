"""Max and mean pooling layers."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..ops import normalize_pair, pool2d_output_shape
from .activations import check_batch
from .base import Layer
from .spec import parse_args, parse_pair

__all__ = ["Pool2D", "MaxPool2D", "MeanPool2D"]


class Pool2D(Layer):
    """Base of the 2-D pooling layers.

    Parameters
    ----------
    size : int or (int, int), default=2
        Window height and width.
    stride : int, (int, int) or None, default=None
        Step between windows; ``None`` means ``size`` (non-overlapping).

    Notes
    -----
    Windows that do not fit at the far edge are dropped (floor), as in
    PyTorch's default.
    """

    input_ndim = 3

    def __init__(
        self,
        size: int | tuple[int, int] = 2,
        *,
        stride: int | tuple[int, int] | None = None,
    ) -> None:
        self.size = size
        self.stride = stride

    @classmethod
    def from_spec(cls, args: str | None) -> Pool2D:
        """``"maxpool:2"``, ``"maxpool:2x2,stride=2"``, ``"meanpool:3,stride=2"``."""
        pos, opts = parse_args(
            args,
            positional="size",
            options={"stride": lambda t: parse_pair(t, "stride")},
        )
        if pos is None:
            raise ValueError("the window size is missing")
        return cls(parse_pair(pos, "size"), **opts)

    def _config(self) -> tuple[tuple[int, int], tuple[int, int]]:
        size = normalize_pair(self.size, "size")
        stride = size if self.stride is None else normalize_pair(self.stride, "stride")
        return size, stride

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """``(c, out_h, out_w)`` for an image input ``(c, h, w)``."""
        if len(input_shape) != 3:
            raise ValueError(
                f"{type(self).__name__} needs image input of shape (channels, height, width). "
                f"Received: input_shape={tuple(input_shape)}"
            )
        size, stride = self._config()
        if size[0] > input_shape[1] or size[1] > input_shape[2]:
            raise ValueError(
                f"{type(self).__name__} window {size} is larger than its input {tuple(input_shape[1:])}. "
                f"Received: size={self.size!r}"
            )
        return (input_shape[0], *pool2d_output_shape(input_shape[1:], size, stride))

    def initialize(
        self, input_shape: tuple[int, ...], ops: Any, rng: Any, dtype: Any = np.float32
    ) -> tuple[int, ...]:
        """Bind to ``ops`` and cache the normalised window and stride."""
        out = super().initialize(input_shape, ops, rng, dtype)
        self._size, self._stride = self._config()
        return out


class MaxPool2D(Pool2D):
    """Max pooling (spec ``"maxpool:S"`` or ``"maxpool:SxS,stride=T"``)."""

    spec_usage = (
        "'maxpool:S' or 'maxpool:SxS', option stride=S|SxS (default: the window size)"
    )

    def forward(self, X: Any, *, training: bool = False) -> Any:
        """Maximum of each window; remember where it was when training."""
        check_batch(self, X)
        Y, argmax = self.ops.maxpool2d(X, self._size, self._stride)
        if training:
            self._argmax, self._x_shape = argmax, tuple(X.shape)
        else:
            self._argmax = None
        return Y

    def backward(self, dY: Any) -> Any:
        """Route each gradient to the input that was the maximum."""
        if getattr(self, "_argmax", None) is None:
            raise RuntimeError(
                "MaxPool2D.backward called without forward(training=True)"
            )
        return self.ops.maxpool2d_backward(dY, self._argmax, self._x_shape)


class MeanPool2D(Pool2D):
    """Mean (average) pooling (spec ``"meanpool:S"`` or ``"meanpool:SxS,stride=T"``)."""

    spec_usage = (
        "'meanpool:S' or 'meanpool:SxS', option stride=S|SxS (default: the window size)"
    )

    def forward(self, X: Any, *, training: bool = False) -> Any:
        """Mean of each window."""
        check_batch(self, X)
        self._x_shape = tuple(X.shape) if training else None
        return self.ops.meanpool2d(X, self._size, self._stride)

    def backward(self, dY: Any) -> Any:
        """Spread each gradient evenly over its window."""
        if getattr(self, "_x_shape", None) is None:
            raise RuntimeError(
                "MeanPool2D.backward called without forward(training=True)"
            )
        return self.ops.meanpool2d_backward(dY, self._x_shape, self._size, self._stride)
