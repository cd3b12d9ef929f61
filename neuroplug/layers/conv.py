"""2-D convolution layer."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from ..ops import conv2d_output_shape, normalize_padding, normalize_pair
from .activations import check_batch, initial_weights
from .dense import WeightedLayer, _parse_init
from .spec import check_positive_int, parse_args, parse_int, parse_pair, parse_shape

__all__ = ["Conv2D", "LENET5_C3_CONNECTIONS"]

#: The connection table of LeNet-5's C3 layer (LeCun et al. 1998, table I):
#: 16 output maps, each reading a subset of the 6 input maps.  Shape (16, 6).
LENET5_C3_CONNECTIONS = np.array(
    [
        [1, 1, 1, 0, 0, 0],
        [0, 1, 1, 1, 0, 0],
        [0, 0, 1, 1, 1, 0],
        [0, 0, 0, 1, 1, 1],
        [1, 0, 0, 0, 1, 1],
        [1, 1, 0, 0, 0, 1],
        [1, 1, 1, 1, 0, 0],
        [0, 1, 1, 1, 1, 0],
        [0, 0, 1, 1, 1, 1],
        [1, 0, 0, 1, 1, 1],
        [1, 1, 0, 0, 1, 1],
        [1, 1, 1, 0, 0, 1],
        [1, 1, 0, 1, 1, 0],
        [0, 1, 1, 0, 1, 1],
        [1, 0, 1, 1, 0, 1],
        [1, 1, 1, 1, 1, 1],
    ],
    dtype=bool,
)


def _parse_padding(text: str) -> Any:
    text = text.strip().lower()
    if text in ("valid", "same"):
        return text
    return parse_pair(text, "padding", minimum=0)


class Conv2D(WeightedLayer):
    """2-D convolution (cross-correlation) over NCHW images (spec ``"conv:FxKHxKW"``).

    Parameters
    ----------
    filters : int, default=8
        Number of output channels.
    kernel_size : int or (int, int), default=3
        Kernel height and width.
    stride : int or (int, int), default=1
        Step between windows.
    padding : "valid", "same", int or (int, int), default=0
        Zero padding on each side; ``"same"`` keeps the size at stride 1 (odd
        kernels only).
    groups : int, default=1
        Split input and output channels into this many independent groups.
    connections : array-like of shape (filters, in_channels // groups) or None
        Optional 0/1 connection table: output map ``f`` reads input map ``c``
        only where it is 1, as in LeNet-5's C3 layer
        (:data:`LENET5_C3_CONNECTIONS`).  Weights of absent connections stay
        zero.  Not expressible in a spec string; pass a layer object.
    init : {"auto", "he", "glorot", "glorot_sigmoid", "lecun"}, default="auto"
        Weight initialisation; ``"auto"`` follows the next activation.

    Notes
    -----
    Parameters: ``"W"`` of shape ``(filters, in_channels // groups, kh, kw)``
    and ``"b"`` of shape ``(filters,)``.  Rows and columns that do not fill a
    whole window at the far edge are dropped (floor), as in PyTorch.
    """

    input_ndim = 3
    spec_usage = (
        "'conv:FxKHxKW' or 'conv:FxK' (F filters, KH x KW kernel), options "
        "stride=S|SxS, padding=valid|same|P|PxP, groups=G, init=auto|he|glorot|lecun"
    )

    def __init__(
        self,
        filters: int = 8,
        kernel_size: int | tuple[int, int] = 3,
        *,
        stride: int | tuple[int, int] = 1,
        padding: str | int | tuple[int, int] = 0,
        groups: int = 1,
        connections: Any = None,
        init: str = "auto",
    ) -> None:
        self.filters = filters
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.groups = groups
        self.connections = connections
        self.init = init

    @classmethod
    def from_spec(cls, args: str | None) -> Conv2D:
        """``"conv:20x5x5"``, ``"conv:20x5"``, ``"conv:20x5x5,stride=2,padding=same,groups=2"``."""
        pos, opts = parse_args(
            args,
            positional="filters x kernel",
            options={
                "stride": lambda t: parse_pair(t, "stride"),
                "padding": _parse_padding,
                "groups": lambda t: parse_int(t, "groups"),
                "init": _parse_init,
            },
        )
        if pos is None:
            raise ValueError("the filters and kernel size ('FxKHxKW') are missing")
        shape = parse_shape(pos, "filters x kernel", length=(2, 3))
        kernel = (shape[1], shape[1]) if len(shape) == 2 else (shape[1], shape[2])
        return cls(shape[0], kernel, **opts)

    # ------------------------------------------------------------------ config
    def _config(
        self, in_channels: int
    ) -> tuple[int, tuple[int, int], tuple[int, int], tuple[int, int], int, Any]:
        """Validated ``(filters, kernel, stride, padding, groups, connections)``."""
        filters = check_positive_int(self.filters, "filters")
        kernel = normalize_pair(self.kernel_size, "kernel_size")
        stride = normalize_pair(self.stride, "stride")
        padding = normalize_padding(self.padding, kernel)
        if (
            not isinstance(self.groups, numbers.Integral)
            or isinstance(self.groups, bool)
            or self.groups < 1
        ):
            raise ValueError(
                f"groups must be a positive int. Received: groups={self.groups!r}"
            )
        groups = int(self.groups)
        if in_channels % groups or filters % groups:
            raise ValueError(
                f"in_channels ({in_channels}) and filters ({filters}) must both be divisible by groups. "
                f"Received: groups={groups}"
            )
        conn = None
        if self.connections is not None:
            conn = np.asarray(self.connections)
            expected = (filters, in_channels // groups)
            if conn.shape != expected:
                raise ValueError(
                    f"connections must have shape (filters, in_channels // groups) = {expected}. "
                    f"Received: connections.shape={conn.shape}"
                )
            if not np.isin(conn, (0, 1)).all():
                raise ValueError("connections must contain only 0/1 or booleans.")
            conn = conn.astype(bool)
            if not conn.any(axis=1).all():
                raise ValueError("connections leaves an output map with no input map.")
        return filters, kernel, stride, padding, groups, conn

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """``(filters, out_h, out_w)`` for an image input ``(c, h, w)``."""
        if len(input_shape) != 3:
            raise ValueError(
                "Conv2D needs image input of shape (channels, height, width). "
                f"Received: input_shape={tuple(input_shape)}"
            )
        c, h, w = input_shape
        filters, kernel, stride, padding, _, _ = self._config(c)
        if h + 2 * padding[0] < kernel[0] or w + 2 * padding[1] < kernel[1]:
            raise ValueError(
                f"Conv2D kernel {kernel} is larger than its padded input ({h + 2 * padding[0]}, "
                f"{w + 2 * padding[1]}). Received: input_shape={tuple(input_shape)}"
            )
        return (filters, *conv2d_output_shape((h, w), kernel, stride, padding))

    def init_params(
        self, input_shape: tuple[int, ...], rng: np.random.Generator, dtype: Any
    ) -> dict[str, np.ndarray]:
        """Activation-aware weights (zero where ``connections`` is 0), zero biases."""
        c = input_shape[0]
        filters, kernel, _, _, groups, conn = self._config(c)
        cg = c // groups
        area = kernel[0] * kernel[1]
        # Fan-in counts only connected input maps, so sparse tables get larger weights.
        fan_in = (conn.sum(axis=1).mean() if conn is not None else cg) * area
        fan_out = (
            conn.sum(axis=0).mean() if conn is not None else filters // groups
        ) * area
        W = initial_weights(
            (filters, cg, *kernel), fan_in, fan_out, self._init_scheme(), rng, dtype
        )
        if conn is not None:
            W *= conn[:, :, None, None]
        return {"W": W, "b": np.zeros(filters, dtype=dtype)}

    def initialize(
        self,
        input_shape: tuple[int, ...],
        ops: Any,
        rng: np.random.Generator,
        dtype: Any = np.float32,
    ) -> tuple[int, ...]:
        """Create the parameters and cache the normalised configuration."""
        out = super().initialize(input_shape, ops, rng, dtype)
        _, _, self._stride, self._padding, self._groups, self._connections = (
            self._config(self.input_shape_[0])
        )
        return out

    # --------------------------------------------------------------- compute
    def forward(self, X: Any, *, training: bool = False) -> Any:
        """Convolve the batch ``X`` of shape ``(n, c, h, w)``."""
        check_batch(self, X)
        self._x = X if training else None
        return self.ops.conv2d(
            X,
            self.params["W"],
            self.params["b"],
            stride=self._stride,
            padding=self._padding,
            groups=self._groups,
            connections=self._connections,
        )

    def backward(self, dY: Any) -> Any:
        """Store ``dW``, ``db``; return the input gradient (``None`` when not needed)."""
        x = getattr(self, "_x", None)
        if x is None:
            raise RuntimeError("Conv2D.backward called without forward(training=True)")
        W = self.params["W"]
        kw = dict(
            stride=self._stride,
            padding=self._padding,
            groups=self._groups,
            connections=self._connections,
        )
        self.grads["W"], self.grads["b"] = self.ops.conv2d_backward_weights(
            dY, x, W.shape, **kw
        )
        if not self.compute_input_grad:
            return None
        return self.ops.conv2d_backward_input(dY, W, x.shape, **kw)
