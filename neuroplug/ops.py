"""The backend interface: :class:`Ops`, a complete, slow, obviously-correct NumPy reference.

Every layer and pretrainer computes only through an ``Ops`` instance
(``self.ops``).  A backend subclasses :class:`Ops`, overrides what it makes
fast and inherits the rest; the test suite runs every backend against this
reference.

Conventions
-----------
* Images are **NCHW**: ``(batch, channels, height, width)``.
* Convolution weights are ``(out_channels, in_channels // groups, kh, kw)``;
  "convolution" is cross-correlation, as in every deep-learning library.
* Dense weights are ``(n_in, n_out)`` (``y = x @ W + b``); RBM weights are
  ``(n_hidden, n_visible)`` like scikit-learn's ``components_``.
* dtype is float32 by default, float64 is supported (gradient checks).
* Randomness comes from ``ops.make_rng(seed)``; the object it returns is the
  backend's own generator (a NumPy ``Generator`` here).
* Pooling and strided convolution floor at ragged edges: rows/columns that do
  not fill a whole window are dropped, as in PyTorch's default.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = [
    "Ops",
    "conv2d_output_shape",
    "pool2d_output_shape",
    "normalize_pair",
    "normalize_padding",
    "check_shape4",
]

Array = Any  # the backend's array type


# ---------------------------------------------------------------------------
# Argument normalisation shared by every backend, so all raise the same errors
# ---------------------------------------------------------------------------
def normalize_pair(value: Any, name: str, *, minimum: int = 1) -> tuple[int, int]:
    """Return ``value`` as a pair of ints ``>= minimum`` or raise ``ValueError``."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        pair = (int(value), int(value))
    elif (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(
            isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in value
        )
    ):
        pair = (int(value[0]), int(value[1]))
    else:
        raise TypeError(
            f"{name} must be an int or a pair of ints. Received: {name}={value!r}"
        )
    if min(pair) < minimum:
        raise ValueError(f"{name} must be >= {minimum}. Received: {name}={value!r}")
    return pair


def normalize_padding(padding: Any, kernel: tuple[int, int]) -> tuple[int, int]:
    """Resolve ``"valid"``, ``"same"`` (odd kernels) or int(s) to ``(ph, pw)``.

    ``"same"`` pads ``(k - 1) // 2`` on each side, which keeps the size at
    stride 1 and gives ``ceil(size / stride)`` otherwise; it needs odd
    kernels because padding is symmetric.
    """
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0)
        if padding == "same":
            if kernel[0] % 2 == 0 or kernel[1] % 2 == 0:
                raise ValueError(
                    "padding='same' needs an odd kernel size because padding is symmetric; "
                    f"use explicit padding for even kernels. Received: kernel={kernel}"
                )
            return ((kernel[0] - 1) // 2, (kernel[1] - 1) // 2)
        raise ValueError(
            f"padding must be 'valid', 'same' or int(s) >= 0. Received: padding={padding!r}"
        )
    return normalize_pair(padding, "padding", minimum=0)


def check_shape4(shape: Any, name: str) -> tuple[int, int, int, int]:
    """Return ``shape`` as 4 positive ints (an NCHW shape) or raise naming ``name``."""
    try:
        values = tuple(shape)
    except TypeError:
        raise TypeError(
            f"{name} must be a sequence of 4 ints. Received: {name}={shape!r}"
        ) from None
    if len(values) != 4 or not all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in values
    ):
        raise TypeError(
            f"{name} must be a sequence of 4 ints. Received: {name}={shape!r}"
        )
    values = tuple(int(v) for v in values)
    if min(values) < 1:
        raise ValueError(f"{name} must hold 4 sizes >= 1. Received: {name}={values}")
    return values  # type: ignore[return-value]


def conv2d_output_shape(
    input_hw: Sequence[int],
    kernel: Sequence[int],
    stride: Sequence[int],
    padding: Sequence[int],
) -> tuple[int, int]:
    """Spatial output size of a convolution (floor at ragged edges)."""
    return tuple(  # type: ignore[return-value]
        (input_hw[i] + 2 * padding[i] - kernel[i]) // stride[i] + 1 for i in range(2)
    )


def pool2d_output_shape(
    input_hw: Sequence[int], size: Sequence[int], stride: Sequence[int]
) -> tuple[int, int]:
    """Spatial output size of pooling (floor: incomplete windows are dropped)."""
    return tuple((input_hw[i] - size[i]) // stride[i] + 1 for i in range(2))  # type: ignore[return-value]


class Ops:
    """NumPy reference backend; the base class of every backend.

    Parameters
    ----------
    device : str, optional
        Backend-specific device string (``"cuda:0"`` for the torch backend).
        The NumPy reference runs on the CPU and accepts only ``None`` or ``"cpu"``.
    n_threads : int, optional
        Thread limit for backends with parallel kernels (``None``: the
        OpenMP/threadpoolctl limit).  Ignored by the reference.
    check_finite : bool, default=True
        Make the input checks of conv/pool refuse NaN and inf.  Networks turn
        it off for inner layers after validating their input once.
    """

    name = "numpy"

    #: Ops written only against the backend's own primitives (``self.gemm``,
    #: ``self.bernoulli``, ``self.take_rows``, ... and operators every array
    #: type has): a backend that overrides the primitives inherits these at
    #: its own speed and overrides one only where that is measurably faster.
    composite_ops: tuple[str, ...] = (
        "cd_epoch",
        "crbm_cd_epoch",
        "rbm_ais_log_weights",
        "rbm_gibbs",
        "sbn_sample",
        "sbn_log_importance_weights",
        "sbn_wake_sleep_epoch",
    )

    def __init__(
        self,
        device: str | None = None,
        *,
        n_threads: int | None = None,
        check_finite: bool = True,
    ) -> None:
        if device not in (None, "cpu"):
            raise ValueError(
                f"The {self.name!r} backend runs on the CPU only. Received: device={device!r}"
            )
        self.device = device or "cpu"
        self.n_threads = n_threads
        self.check_finite = check_finite

    def __repr__(self) -> str:
        return f"{type(self).__name__}(device={self.device!r})"

    # ------------------------------------------------------------------ arrays
    def asarray(self, x: Any, dtype: Any = None) -> Array:
        """Return ``x`` as a C-contiguous backend array (copying only if needed)."""
        return np.ascontiguousarray(x, dtype=dtype)

    def to_numpy(self, x: Array) -> np.ndarray:
        """Return ``x`` as a NumPy array on the host."""
        return np.asarray(x)

    def alloc(self, shape: Sequence[int] | int, dtype: Any = np.float32) -> Array:
        """Return a zero-filled array."""
        return np.zeros(shape, dtype=dtype)

    def take_rows(self, X: Any, start: int, stop: int, dtype: Any) -> Array:
        """Rows ``start:stop`` of ``X`` (a host or backend array) as a backend array.

        The composite loops read their mini-batches through this, so a
        backend moves each batch to its device once.  The reference returns
        the view ``X[start:stop]`` as it is (``dtype`` is the parameters'
        dtype, which a device backend converts to).
        """
        return X[start:stop]

    def astype(self, x: Array, dtype: Any) -> Array:
        """``x`` converted to ``dtype`` (no copy when it already has it)."""
        return np.asarray(x, dtype=dtype)

    def round_scalar(self, value: float, dtype: Any) -> Any:
        """``value`` rounded to ``dtype`` (a NumPy scalar here), so loops multiply by what the reference does."""
        return np.dtype(dtype).type(value)

    def repeat_rows(self, x: Array, repeats: int) -> Array:
        """Each row of the 2-D ``x`` repeated ``repeats`` times in place: row ``i * repeats + k`` is ``x[i]``."""
        return np.repeat(x, repeats, axis=0)

    def logsumexp_rows(self, x: Array) -> Array:
        """``log(sum(exp(x), axis=1))`` of a 2-D ``x`` as an ``(n, 1)`` column, without overflow."""
        peak = x.max(axis=1, keepdims=True)
        return peak + np.log(np.exp(x - peak).sum(axis=1, keepdims=True))

    def exp(self, x: Array) -> Array:
        """Element-wise exponential."""
        return np.exp(x)

    def log(self, x: Array) -> Array:
        """Element-wise natural logarithm."""
        return np.log(x)

    # -------------------------------------------------------------- randomness
    def make_rng(self, seed: int) -> Any:
        """Return this backend's random generator seeded with the int ``seed``."""
        return np.random.Generator(np.random.PCG64(int(seed)))

    def random_uniform(
        self, rng: Any, shape: Sequence[int], dtype: Any = np.float32
    ) -> Array:
        """Uniform samples in ``[0, 1)``."""
        return rng.random(tuple(shape), dtype=np.dtype(dtype))

    def random_normal(
        self,
        rng: Any,
        shape: Sequence[int],
        dtype: Any = np.float32,
        scale: float = 1.0,
    ) -> Array:
        """Normal samples with mean 0 and standard deviation ``scale``."""
        out = rng.standard_normal(tuple(shape), dtype=np.dtype(dtype))
        if scale != 1.0:
            out *= scale
        return out

    def bernoulli(self, p: Array, rng: Any) -> Array:
        """Binary samples (same dtype as ``p``) that are 1 with probability ``p``."""
        return (self.random_uniform(rng, p.shape, p.dtype) < p).astype(p.dtype)

    def dropout_mask(
        self, shape: Sequence[int], rate: float, rng: Any, dtype: Any = np.float32
    ) -> Array:
        """Inverted-dropout mask: 0 with probability ``rate``, else ``1 / (1 - rate)``."""
        keep = self.random_uniform(rng, shape, dtype) >= rate
        return keep.astype(dtype) / np.asarray(1.0 - rate, dtype=dtype)

    # ------------------------------------------------------------ dense algebra
    def gemm(
        self, a: Array, b: Array, *, trans1: bool = False, trans2: bool = False
    ) -> Array:
        """Matrix product ``op(a) @ op(b)`` with optional transposes."""
        if trans1:
            a = a.T
        if trans2:
            b = b.T
        return np.ascontiguousarray(a @ b)

    def affine(self, x: Array, W: Array, b: Array | None = None) -> Array:
        """``x @ W + b`` for dense layers (W is ``(n_in, n_out)``)."""
        y = self.gemm(x, W)
        if b is not None:
            y += b
        return y

    # -------------------------------------------------------------- activations
    def sigmoid(self, x: Array) -> Array:
        """Logistic function, computed without overflow."""
        out = np.empty_like(x)
        pos = x >= 0
        out[pos] = 1.0 / (1.0 + np.exp(-x[pos]))
        ex = np.exp(x[~pos])
        out[~pos] = ex / (1.0 + ex)
        return out

    def sigmoid_backward(self, y: Array, dy: Array) -> Array:
        """Gradient through a sigmoid given its output ``y``."""
        return dy * y * (1 - y)

    def tanh(self, x: Array) -> Array:
        """Hyperbolic tangent."""
        return np.tanh(x)

    def tanh_backward(self, y: Array, dy: Array) -> Array:
        """Gradient through tanh given its output ``y``."""
        return dy * (1 - y * y)

    def relu(self, x: Array) -> Array:
        """Rectified linear unit."""
        return np.maximum(x, 0)

    def relu_backward(self, y: Array, dy: Array) -> Array:
        """Gradient through ReLU given its output ``y``."""
        return dy * (y > 0)

    def softplus(self, x: Array) -> Array:
        """``log(1 + exp(x))`` without overflow."""
        return np.logaddexp(0, x).astype(x.dtype, copy=False)

    def log_softmax(self, x: Array, axis: int = -1) -> Array:
        """Log of the softmax along ``axis``, numerically stable."""
        shifted = x - x.max(axis=axis, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))

    def softmax(self, x: Array, axis: int = -1) -> Array:
        """Softmax along ``axis``."""
        return np.exp(self.log_softmax(x, axis=axis))

    # ------------------------------------------------------------------- losses
    def softmax_cross_entropy(
        self, logits: Array, labels: Array
    ) -> tuple[float, Array]:
        """Mean cross-entropy of softmax(``logits``) against integer ``labels``.

        Returns ``(loss, dlogits)``; the gradient is already divided by the
        batch size.
        """
        n = logits.shape[0]
        logp = self.log_softmax(logits, axis=1)
        idx = np.asarray(self.to_numpy(labels), dtype=np.int64)
        loss = -float(logp[np.arange(n), idx].sum()) / n
        grad = np.exp(logp)
        grad[np.arange(n), idx] -= 1
        grad /= n
        return loss, grad

    def squared_loss(self, pred: Array, target: Array) -> tuple[float, Array]:
        """``0.5 * mean over samples of sum over outputs (pred - target)**2`` and its gradient."""
        n = pred.shape[0]
        diff = pred - target
        return 0.5 * float((diff * diff).sum()) / n, diff / n

    # --------------------------------------------------------------- optimisers
    def sgd_update(
        self,
        param: Array,
        grad: Array,
        velocity: Array,
        *,
        lr: float,
        momentum: float,
        nesterov: bool,
    ) -> None:
        """In-place SGD step with (Nesterov) momentum: ``v = m v - lr g``."""
        velocity *= momentum
        velocity -= lr * grad
        if nesterov:
            param += momentum * velocity - lr * grad
        else:
            param += velocity

    def adam_update(
        self,
        param: Array,
        grad: Array,
        m: Array,
        v: Array,
        *,
        lr: float,
        beta1: float,
        beta2: float,
        eps: float,
        t: int,
    ) -> None:
        """In-place Adam step (Kingma & Ba 2015) at step ``t >= 1``."""
        m *= beta1
        m += (1 - beta1) * grad
        v *= beta2
        v += (1 - beta2) * grad * grad
        step = lr * np.sqrt(1 - beta2**t) / (1 - beta1**t)
        param -= step * m / (np.sqrt(v) + eps)

    # ---------------------------------------------------------- input checking
    def _check_array(self, x: Any, name: str, ndim: int, dtype: Any = None) -> None:
        if not hasattr(x, "shape") or not hasattr(x, "dtype"):
            raise TypeError(
                f"{name} must be an array. Received: {name} of type {type(x).__name__}"
            )
        if len(x.shape) != ndim:
            raise ValueError(
                f"{name} must be {ndim}-D. Received: {name}.shape={tuple(x.shape)}"
            )
        kind = (
            np.dtype(str(x.dtype).replace("torch.", "")).kind
            if not isinstance(x, np.ndarray)
            else x.dtype.kind
        )
        if kind != "f" or np.dtype(str(x.dtype).replace("torch.", "")).itemsize not in (
            4,
            8,
        ):
            raise TypeError(
                f"{name} must be float32 or float64. Received: {name}.dtype={x.dtype}"
            )
        if dtype is not None and x.dtype != dtype:
            raise TypeError(
                f"{name} must have the same dtype as the input ({dtype}). Received: {name}.dtype={x.dtype}"
            )
        if 0 in tuple(x.shape):
            raise ValueError(
                f"{name} must not be empty. Received: {name}.shape={tuple(x.shape)}"
            )
        if self.check_finite and not self._all_finite(x):
            raise ValueError(f"{name} contains NaN or infinity.")

    def _all_finite(self, x: Array) -> bool:
        return bool(np.isfinite(x).all())

    def check_conv2d(
        self,
        x: Array,
        w: Array,
        b: Array | None,
        stride: Any,
        padding: Any,
        groups: Any,
        connections: Any,
    ) -> tuple[tuple[int, int], tuple[int, int], int, Any]:
        """Validate conv2d arguments; return ``(stride, padding, groups, connections)`` normalised."""
        self._check_array(x, "x", 4)
        self._check_array(w, "w", 4, x.dtype)
        stride = normalize_pair(stride, "stride")
        kernel = (int(w.shape[2]), int(w.shape[3]))
        padding = normalize_padding(padding, kernel)
        if (
            not isinstance(groups, numbers.Integral)
            or isinstance(groups, bool)
            or groups < 1
        ):
            raise ValueError(
                f"groups must be a positive int. Received: groups={groups!r}"
            )
        groups = int(groups)
        n, c, h, wd = (int(s) for s in x.shape)
        f, cg = int(w.shape[0]), int(w.shape[1])
        if c % groups or f % groups:
            raise ValueError(
                f"in_channels ({c}) and out_channels ({f}) must both be divisible by groups. Received: groups={groups}"
            )
        if cg != c // groups:
            raise ValueError(
                f"w.shape[1] must equal in_channels // groups = {c // groups} (x has {c} channels). "
                f"Received: w.shape={tuple(w.shape)}"
            )
        if h + 2 * padding[0] < kernel[0] or wd + 2 * padding[1] < kernel[1]:
            raise ValueError(
                f"kernel {kernel} is larger than the padded input ({h + 2 * padding[0]}, {wd + 2 * padding[1]}). "
                f"Received: x.shape={tuple(x.shape)}, w.shape={tuple(w.shape)}, padding={padding}"
            )
        if b is not None:
            self._check_array(b, "b", 1, x.dtype)
            if int(b.shape[0]) != f:
                raise ValueError(
                    f"b must have out_channels={f} entries. Received: b.shape={tuple(b.shape)}"
                )
        if connections is not None:
            conn = np.asarray(self.to_numpy(connections))
            if conn.shape != (f, cg):
                raise ValueError(
                    f"connections must have shape (out_channels, in_channels // groups) = {(f, cg)}. "
                    f"Received: connections.shape={conn.shape}"
                )
            if not np.isin(conn, (0, 1)).all():
                raise ValueError("connections must contain only 0/1 (or booleans).")
            if not conn.any(axis=1).all():
                raise ValueError(
                    "connections leaves an output channel with no input channel."
                )
            connections = conn.astype(bool)
        return stride, padding, groups, connections

    def check_pool2d(
        self, x: Array, size: Any, stride: Any
    ) -> tuple[tuple[int, int], tuple[int, int]]:
        """Validate pooling arguments; return ``(size, stride)`` (stride defaults to size)."""
        self._check_array(x, "x", 4)
        size = normalize_pair(size, "size")
        stride = size if stride is None else normalize_pair(stride, "stride")
        if size[0] > x.shape[2] or size[1] > x.shape[3]:
            raise ValueError(
                f"pool size {size} is larger than the input {tuple(x.shape[2:])}."
            )
        return size, stride

    def _masked(self, w: Array, connections: Any) -> Array:
        if connections is None:
            return w
        return w * self.asarray(connections[:, :, None, None], dtype=w.dtype)

    # ------------------------------------------------------------- convolution
    def conv2d(
        self,
        x: Array,
        w: Array,
        b: Array | None = None,
        *,
        stride: Any = 1,
        padding: Any = 0,
        groups: int = 1,
        connections: Any = None,
    ) -> Array:
        """2-D cross-correlation of NCHW ``x`` with ``w`` (+ bias ``b``).

        ``connections`` is an optional 0/1 table of shape
        ``(out_channels, in_channels // groups)``: output channel ``f`` sees
        input channel ``c`` only where it is 1 (LeNet-5's C3 layer).
        """
        stride, padding, groups, connections = self.check_conv2d(
            x, w, b, stride, padding, groups, connections
        )
        w = self._masked(w, connections)
        n, c, _, _ = x.shape
        f, cg, kh, kw = w.shape
        fg = f // groups
        xp = np.pad(
            x, ((0, 0), (0, 0), (padding[0], padding[0]), (padding[1], padding[1]))
        )
        win = sliding_window_view(xp, (kh, kw), axis=(2, 3))[
            :, :, :: stride[0], :: stride[1]
        ]
        oh, ow = win.shape[2], win.shape[3]
        y = np.empty((n, f, oh, ow), dtype=x.dtype)
        for g in range(groups):
            y[:, g * fg : (g + 1) * fg] = np.einsum(
                "nchwij,fcij->nfhw",
                win[:, g * cg : (g + 1) * cg],
                w[g * fg : (g + 1) * fg],
                optimize=True,
            )
        if b is not None:
            y += b[None, :, None, None]
        return y

    def conv2d_backward_input(
        self,
        dy: Array,
        w: Array,
        x_shape: Sequence[int],
        *,
        stride: Any = 1,
        padding: Any = 0,
        groups: int = 1,
        connections: Any = None,
    ) -> Array:
        """Gradient of :meth:`conv2d` with respect to its input ``x``."""
        x_shape = check_shape4(x_shape, "x_shape")
        x_like = np.empty(
            (1, int(x_shape[1]), int(x_shape[2]), int(x_shape[3])), dtype=w.dtype
        )
        x_like.fill(0)
        stride, padding, groups, connections = self.check_conv2d(
            x_like, w, None, stride, padding, groups, connections
        )
        self._check_array(dy, "dy", 4, w.dtype)
        w = self._masked(w, connections)
        n, c, h, wd = (int(s) for s in x_shape)
        f, cg, kh, kw = w.shape
        fg = f // groups
        oh, ow = conv2d_output_shape((h, wd), (kh, kw), stride, padding)
        if tuple(dy.shape) != (n, f, oh, ow):
            raise ValueError(
                f"dy must have shape {(n, f, oh, ow)}. Received: dy.shape={tuple(dy.shape)}"
            )
        sh, sw = stride
        dxp = np.zeros((n, c, h + 2 * padding[0], wd + 2 * padding[1]), dtype=dy.dtype)
        for g in range(groups):
            dyg = dy[:, g * fg : (g + 1) * fg]
            for i in range(kh):
                for j in range(kw):
                    dxp[
                        :,
                        g * cg : (g + 1) * cg,
                        i : i + sh * oh : sh,
                        j : j + sw * ow : sw,
                    ] += np.einsum(
                        "nfhw,fc->nchw", dyg, w[g * fg : (g + 1) * fg, :, i, j]
                    )
        return np.ascontiguousarray(
            dxp[:, :, padding[0] : padding[0] + h, padding[1] : padding[1] + wd]
        )

    def conv2d_backward_weights(
        self,
        dy: Array,
        x: Array,
        w_shape: Sequence[int],
        *,
        stride: Any = 1,
        padding: Any = 0,
        groups: int = 1,
        connections: Any = None,
    ) -> tuple[Array, Array]:
        """Gradients of :meth:`conv2d` with respect to ``w`` and ``b``: ``(dw, db)``.

        With a connection table, ``dw`` is zero where the table is 0.
        """
        w_like = np.zeros(check_shape4(w_shape, "w_shape"), dtype=x.dtype)
        stride, padding, groups, connections = self.check_conv2d(
            x, w_like, None, stride, padding, groups, connections
        )
        self._check_array(dy, "dy", 4, x.dtype)
        n, c, h, wd = x.shape
        f, cg, kh, kw = w_like.shape
        fg = f // groups
        oh, ow = conv2d_output_shape((h, wd), (kh, kw), stride, padding)
        if tuple(dy.shape) != (n, f, oh, ow):
            raise ValueError(
                f"dy must have shape {(n, f, oh, ow)}. Received: dy.shape={tuple(dy.shape)}"
            )
        sh, sw = stride
        xp = np.pad(
            x, ((0, 0), (0, 0), (padding[0], padding[0]), (padding[1], padding[1]))
        )
        dw = np.zeros_like(w_like)
        for g in range(groups):
            dyg = dy[:, g * fg : (g + 1) * fg]
            for i in range(kh):
                for j in range(kw):
                    dw[g * fg : (g + 1) * fg, :, i, j] = np.einsum(
                        "nfhw,nchw->fc",
                        dyg,
                        xp[
                            :,
                            g * cg : (g + 1) * cg,
                            i : i + sh * oh : sh,
                            j : j + sw * ow : sw,
                        ],
                    )
        dw = self._masked(dw, connections)
        db = dy.sum(axis=(0, 2, 3))
        return dw, db

    # ----------------------------------------------------------------- pooling
    def maxpool2d(self, x: Array, size: Any, stride: Any = None) -> tuple[Array, Array]:
        """Max pooling; returns ``(y, argmax)``.

        ``argmax`` (int64, same shape as ``y``) holds for each output the
        flat index ``row * width + col`` of the chosen input within its
        ``(height, width)`` plane; ties go to the first maximum in row-major
        order of the window.
        """
        size, stride = self.check_pool2d(x, size, stride)
        n, c, h, w = x.shape
        win = sliding_window_view(x, size, axis=(2, 3))[
            :, :, :: stride[0], :: stride[1]
        ]
        oh, ow = win.shape[2], win.shape[3]
        flat = win.reshape(n, c, oh, ow, size[0] * size[1])
        a = flat.argmax(axis=-1)
        y = np.take_along_axis(flat, a[..., None], axis=-1)[..., 0]
        rows = np.arange(oh)[:, None] * stride[0] + a // size[1]
        cols = np.arange(ow)[None, :] * stride[1] + a % size[1]
        return np.ascontiguousarray(y), (rows * w + cols).astype(np.int64)

    def maxpool2d_backward(
        self, dy: Array, argmax: Array, x_shape: Sequence[int]
    ) -> Array:
        """Gradient of :meth:`maxpool2d`: route each ``dy`` to its argmax."""
        self._check_array(dy, "dy", 4)
        n, c, h, w = check_shape4(x_shape, "x_shape")
        if not hasattr(argmax, "shape") or not hasattr(argmax, "dtype"):
            raise TypeError(
                f"argmax must be an integer array. Received: argmax of type {type(argmax).__name__}"
            )
        if np.asarray(self.to_numpy(argmax)).dtype.kind not in "iu":
            raise TypeError(
                f"argmax must be an integer array. Received: argmax.dtype={argmax.dtype}"
            )
        if tuple(argmax.shape) != tuple(dy.shape) or tuple(dy.shape[:2]) != (n, c):
            raise ValueError(
                f"dy and argmax must have the same shape (n={n}, c={c}, ...). "
                f"Received: dy.shape={tuple(dy.shape)}, argmax.shape={tuple(argmax.shape)}"
            )
        am = np.asarray(self.to_numpy(argmax))
        if am.size and (am.min() < 0 or am.max() >= h * w):
            raise ValueError(
                f"argmax holds indices outside the input plane of {h}x{w}."
            )
        dx = np.zeros((n * c, h * w), dtype=dy.dtype)
        np.add.at(
            dx,
            (np.arange(n * c)[:, None], am.reshape(n * c, -1)),
            dy.reshape(n * c, -1),
        )
        return dx.reshape(n, c, h, w)

    def meanpool2d(self, x: Array, size: Any, stride: Any = None) -> Array:
        """Mean pooling over ``size`` windows."""
        size, stride = self.check_pool2d(x, size, stride)
        win = sliding_window_view(x, size, axis=(2, 3))[
            :, :, :: stride[0], :: stride[1]
        ]
        return np.ascontiguousarray(win.mean(axis=(-2, -1), dtype=x.dtype))

    def meanpool2d_backward(
        self, dy: Array, x_shape: Sequence[int], size: Any, stride: Any = None
    ) -> Array:
        """Gradient of :meth:`meanpool2d`."""
        self._check_array(dy, "dy", 4)
        size = normalize_pair(size, "size")
        stride = size if stride is None else normalize_pair(stride, "stride")
        n, c, h, w = check_shape4(x_shape, "x_shape")
        oh, ow = pool2d_output_shape((h, w), size, stride)
        if tuple(dy.shape) != (n, c, oh, ow):
            raise ValueError(
                f"dy must have shape {(n, c, oh, ow)}. Received: dy.shape={tuple(dy.shape)}"
            )
        dx = np.zeros((n, c, h, w), dtype=dy.dtype)
        share = dy / dy.dtype.type(size[0] * size[1])
        for i in range(size[0]):
            for j in range(size[1]):
                dx[
                    :,
                    :,
                    i : i + stride[0] * oh : stride[0],
                    j : j + stride[1] * ow : stride[1],
                ] += share
        return dx

    # --------------------------------------------------------------------- RBM
    @staticmethod
    def _rbm_check_sample_visible(sample_visible: Any, visible: str) -> bool:
        """``sample_visible`` as a bool; refused for Gaussian units, whose reconstructions are means."""
        if not isinstance(sample_visible, (bool, np.bool_)):
            raise ValueError(
                f"sample_visible must be a bool. Received: sample_visible={sample_visible!r}"
            )
        if sample_visible and visible != "bernoulli":
            raise ValueError(
                "sample_visible=True samples binary visible states and needs visible='bernoulli'; Gaussian "
                f"visible units are reconstructed by their means. Received: visible={visible!r}"
            )
        return bool(sample_visible)

    @staticmethod
    def check_rbm_visible(visible: Any) -> str:
        """Return ``visible`` if it is ``"bernoulli"`` or ``"gaussian"``; raise ``ValueError`` otherwise."""
        if visible not in ("bernoulli", "gaussian"):
            raise ValueError(
                f"visible must be 'bernoulli' or 'gaussian'. Received: visible={visible!r}"
            )
        return visible

    @staticmethod
    def _check_same_dtype(arr: Array, name: str, W: Array) -> None:
        # A ValueError: cd_epoch updates these in place, so a converted copy is not an option.
        if arr.dtype != W.dtype:
            raise ValueError(
                f"{name} must have W's dtype ({W.dtype}): cd_epoch updates it in place. "
                f"Received: {name}.dtype={arr.dtype}"
            )

    def check_cd_epoch(
        self,
        X: Array,
        W: Array,
        bh: Array,
        bv: Array,
        dW: Array,
        dbh: Array,
        dbv: Array,
        *,
        k: Any,
        learning_rate: Any,
        momentum: Any,
        weight_decay: Any,
        batch_size: Any,
        visible: Any,
        chain: Array | None = None,
        sample_visible: Any = False,
        sample_weight: Any = None,
    ) -> tuple[int, int, bool]:
        """Validate :meth:`cd_epoch`'s arguments; return ``(k, batch_size, sample_visible)``.

        Every backend's ``cd_epoch`` calls this first, so all refuse the same
        inputs with the same messages: ``k`` and ``batch_size`` ints ``>= 1``;
        ``learning_rate`` finite and ``> 0``; ``momentum`` in ``[0, 1)``;
        ``weight_decay`` finite and ``>= 0``; ``visible`` ``"bernoulli"`` or
        ``"gaussian"``; ``X`` ``(n, n_visible)``; ``W`` ``(n_hidden,
        n_visible)``; biases and momentum buffers of matching shapes and W's
        dtype; ``chain`` (PCD) ``(>= min(batch_size, n), n_hidden)``;
        ``sample_weight`` ``None`` or ``(n,)`` finite and ``>= 0``.
        Backend-specific needs (contiguity, device) stay with the backend.
        """
        for name, value in (("k", k), ("batch_size", batch_size)):
            if (
                not isinstance(value, numbers.Integral)
                or isinstance(value, bool)
                or value < 1
            ):
                raise ValueError(
                    f"{name} must be an int >= 1. Received: {name}={value!r}"
                )
        for name, value, low, high, rule in (
            ("learning_rate", learning_rate, 0.0, None, "> 0"),
            ("momentum", momentum, 0.0, 1.0, "in [0, 1)"),
            ("weight_decay", weight_decay, 0.0, None, ">= 0"),
        ):
            bad = (
                not isinstance(value, numbers.Real)
                or isinstance(value, bool)
                or not np.isfinite(value)
            )
            if not bad:
                bad = (value <= low if name == "learning_rate" else value < low) or (
                    high is not None and value >= high
                )
            if bad:
                raise ValueError(
                    f"{name} must be a finite number {rule}. Received: {name}={value!r}"
                )
        self.check_rbm_visible(visible)
        sample_visible = self._rbm_check_sample_visible(sample_visible, visible)
        self._check_array(W, "W", 2)
        nh, nv = int(W.shape[0]), int(W.shape[1])
        self._check_array(X, "X", 2)
        if int(X.shape[1]) != nv:
            raise ValueError(
                f"X must have n_visible={nv} columns. Received: X.shape={tuple(X.shape)}"
            )
        for name, arr, n, units in (
            ("bh", bh, nh, "hidden"),
            ("bv", bv, nv, "visible"),
        ):
            self._check_array(arr, name, 1)
            self._check_same_dtype(arr, name, W)
            if int(arr.shape[0]) != n:
                raise ValueError(
                    f"{name} must have n_{units}={n} entries for W of shape {(nh, nv)}. "
                    f"Received: {name}.shape={tuple(arr.shape)}"
                )
        shapes = [
            tuple(int(s) for s in a.shape) if hasattr(a, "shape") else None
            for a in (dW, dbh, dbv)
        ]
        if shapes != [(nh, nv), (nh,), (nv,)]:
            raise ValueError(
                f"dW, dbh and dbv must have the shapes of W, bh and bv ({(nh, nv)}, {(nh,)}, {(nv,)}). "
                f"Received: dW.shape={shapes[0]}, dbh.shape={shapes[1]}, dbv.shape={shapes[2]}"
            )
        for name, arr in (("dW", dW), ("dbh", dbh), ("dbv", dbv)):
            self._check_array(arr, name, len(arr.shape))
            self._check_same_dtype(arr, name, W)
        if chain is not None:
            m = min(int(batch_size), int(X.shape[0]))
            shape = (
                tuple(int(s) for s in chain.shape) if hasattr(chain, "shape") else None
            )
            if shape is None or len(shape) != 2 or shape[1] != nh or shape[0] < m:
                raise ValueError(
                    f"chain must have shape (>= {m}, n_hidden={nh}) for batch_size={batch_size}. "
                    f"Received: chain.shape={shape}"
                )
        self.check_sample_weight(sample_weight, int(X.shape[0]))
        return int(k), int(batch_size), sample_visible

    def check_sample_weight(self, sample_weight: Any, n: int) -> None:
        """Refuse per-row weights that are not ``None`` or ``n`` finite numbers ``>= 0`` (host or backend array)."""
        if sample_weight is None:
            return
        w = np.asarray(self.to_numpy(sample_weight), dtype=np.float64)
        if w.shape != (n,):
            raise ValueError(
                f"sample_weight must have shape ({n},), one weight per row of X. "
                f"Received: sample_weight.shape={w.shape}"
            )
        if not np.all(np.isfinite(w)) or np.any(w < 0):
            raise ValueError(
                "sample_weight must be finite and >= 0. Received: sample_weight with "
                + (
                    "NaN or infinity"
                    if not np.all(np.isfinite(w))
                    else f"min={w.min():g}"
                )
            )

    def rbm_hidden_probs(self, v: Array, W: Array, bh: Array) -> Array:
        """``sigmoid(v @ W.T + bh)``; ``W`` is ``(n_hidden, n_visible)``."""
        return self.sigmoid(self.gemm(v, W, trans2=True) + bh)

    def rbm_visible_means(self, h: Array, W: Array, bv: Array, visible: str) -> Array:
        """Mean of the visible units given ``h``: sigmoid (Bernoulli) or linear (Gaussian, unit variance)."""
        act = self.gemm(h, W) + bv
        return self.sigmoid(act) if visible == "bernoulli" else act

    def rbm_sample_visible(
        self, h: Array, W: Array, bv: Array, visible: str, rng: Any
    ) -> Array:
        """Sample the visible units given ``h``."""
        mean = self.rbm_visible_means(h, W, bv, visible)
        if visible == "bernoulli":
            return self.bernoulli(mean, rng)
        return mean + self.random_normal(rng, mean.shape, mean.dtype)

    def rbm_free_energy(
        self, v: Array, W: Array, bh: Array, bv: Array, visible: str
    ) -> Array:
        """Free energy ``F(v)`` per row, so that ``p(v) = exp(-F(v)) / Z``."""
        hidden = self.softplus(self.gemm(v, W, trans2=True) + bh).sum(axis=1)
        if visible == "bernoulli":
            return -(v @ bv) - hidden
        return 0.5 * ((v - bv) ** 2).sum(axis=1) - hidden

    def rbm_gibbs(
        self,
        v: Array,
        W: Array,
        bh: Array,
        bv: Array,
        *,
        steps: int,
        visible: str,
        rng: Any,
    ) -> Array:
        """Run ``steps`` full steps of block Gibbs sampling v → h → v; return the visible samples."""
        for _ in range(steps):
            h = self.bernoulli(self.rbm_hidden_probs(v, W, bh), rng)
            v = self.rbm_sample_visible(h, W, bv, visible, rng)
        return v

    def cd_epoch(
        self,
        X: Array,
        W: Array,
        bh: Array,
        bv: Array,
        dW: Array,
        dbh: Array,
        dbv: Array,
        *,
        k: int,
        learning_rate: float,
        momentum: float,
        weight_decay: float,
        batch_size: int,
        visible: str,
        rng: Any,
        chain: Array | None = None,
        sample_visible: bool = False,
        sample_weight: Array | None = None,
    ) -> float:
        """One epoch of CD-k (or PCD-k when ``chain`` is given) over ``X`` in row order.

        Updates ``W``, ``bh``, ``bv`` and the momentum buffers ``dW``, ``dbh``,
        ``dbv`` in place.  Per mini-batch ``v0`` of ``m`` rows:

        * ``ph0 = sigmoid(v0 W^T + bh)``; the negative chain starts from
          ``h ~ Bernoulli(ph0)`` (CD) or from the persistent hidden states
          ``chain[:m]`` (PCD).
        * ``k`` times: ``vk = visible means given h`` (probabilities, as
          Hinton's practical guide advises), or with ``sample_visible``
          (Bernoulli units only) ``vk ~ Bernoulli(those means)``, as
          scikit-learn's ``BernoulliRBM`` does; ``phk = sigmoid(vk W^T + bh)``;
          ``h ~ Bernoulli(phk)``, except after the last step of CD, whose
          sample nothing uses.  With PCD the last ``h`` goes back to
          ``chain[:m]``.
        * ``dW = momentum dW + lr ((ph0^T v0 - phk^T vk) / m - weight_decay W)``;
          ``W += dW``; likewise for the biases (no decay).

        With ``sample_weight`` (``w``, one per row of ``X``), every row's
        statistics are multiplied by its weight: ``dW = momentum dW + lr
        ((ph0^T (w v0) - phk^T (w vk)) / m - weight_decay W)``, likewise for
        the biases, and the error is ``sum_i w_i |v0_i - vk_i|^2 /
        sum_i w_i``.  Callers pass weights of mean 1 (a row of weight 2
        counts as that row twice in its batch; weights of 1 are the
        unweighted epoch).  The draws are those of the unweighted epoch.

        Returns the mean squared reconstruction error per sample,
        ``sum((v0 - vk)**2) / n_samples``.

        Draws, in order, per mini-batch: the uniforms of ``h`` given ``v0``
        (CD), then per step those of ``vk`` (``sample_visible``) and of
        ``h`` given ``vk`` (when drawn), each in C order.
        """
        k, batch_size, sample_visible = self.check_cd_epoch(
            X,
            W,
            bh,
            bv,
            dW,
            dbh,
            dbv,
            k=k,
            learning_rate=learning_rate,
            momentum=momentum,
            weight_decay=weight_decay,
            batch_size=batch_size,
            visible=visible,
            chain=chain,
            sample_visible=sample_visible,
            sample_weight=sample_weight,
        )
        n = int(X.shape[0])
        errs = []
        weights = (
            None
            if sample_weight is None
            else self.asarray(self.to_numpy(sample_weight), dtype=W.dtype)
        )
        for start in range(0, n, batch_size):
            v0 = self.take_rows(X, start, start + batch_size, W.dtype)
            m = int(v0.shape[0])
            ph0 = self.rbm_hidden_probs(v0, W, bh)
            h = chain[:m] if chain is not None else self.bernoulli(ph0, rng)
            for step in range(k):
                vk = self.rbm_visible_means(h, W, bv, visible)
                if sample_visible:
                    vk = self.bernoulli(vk, rng)
                phk = self.rbm_hidden_probs(vk, W, bh)
                # CD discards the last hidden sample (the update uses phk), so it is not drawn.
                if chain is not None or step < k - 1:
                    h = self.bernoulli(phk, rng)
            if chain is not None:
                chain[:m] = h
            scale = learning_rate / m
            if weights is not None:
                # Weighted statistics: each row's outer products and sums count w_i times.
                wb = weights[start : start + m].reshape(-1, 1)
                wv0, wvk, wph0, wphk = wb * v0, wb * vk, wb * ph0, wb * phk
            else:
                wv0, wvk, wph0, wphk = v0, vk, ph0, phk
            dW *= momentum
            dW += scale * (
                self.gemm(ph0, wv0, trans1=True) - self.gemm(phk, wvk, trans1=True)
            )
            dW -= (learning_rate * weight_decay) * W
            W += dW
            dbh *= momentum
            dbh += scale * (wph0.sum(axis=0) - wphk.sum(axis=0))
            bh += dbh
            dbv *= momentum
            dbv += scale * (wv0.sum(axis=0) - wvk.sum(axis=0))
            bv += dbv
            diff = v0 - vk
            errs.append(
                (diff * diff).sum() if weights is None else (wb * (diff * diff)).sum()
            )
        # Read back once, at the end (a device backend waits for its device here only).
        total = sum(float(e) for e in errs)
        return (
            total / n
            if weights is None
            else total / float(self.to_numpy(weights).sum())
        )

    def check_rbm_ais(
        self,
        W: Array,
        bh: Array,
        bv: Array,
        base_bias: Array,
        betas: Any,
        *,
        n_runs: Any,
        visible: Any,
    ) -> tuple[np.ndarray, int]:
        """Validate :meth:`rbm_ais_log_weights`'s arguments; return ``(betas as float64, n_runs)``."""
        self.check_rbm_visible(visible)
        if (
            not isinstance(n_runs, numbers.Integral)
            or isinstance(n_runs, bool)
            or n_runs < 1
        ):
            raise ValueError(f"n_runs must be an int >= 1. Received: n_runs={n_runs!r}")
        self._check_array(W, "W", 2)
        nh, nv = int(W.shape[0]), int(W.shape[1])
        for name, arr, n in (
            ("bh", bh, nh),
            ("bv", bv, nv),
            ("base_bias", base_bias, nv),
        ):
            self._check_array(arr, name, 1, W.dtype)
            if int(arr.shape[0]) != n:
                raise ValueError(
                    f"{name} must have n_{'hidden' if name == 'bh' else 'visible'}={n} entries. "
                    f"Received: {name}.shape={tuple(arr.shape)}"
                )
        betas = np.asarray(betas, dtype=np.float64)
        if (
            betas.ndim != 1
            or betas.shape[0] < 2
            or betas[0] != 0
            or betas[-1] != 1
            or not np.all(np.diff(betas) > 0)
        ):
            raise ValueError(
                f"betas must increase from 0 to 1 inclusive. Received: betas of shape {betas.shape}"
            )
        return betas, int(n_runs)

    def rbm_ais_log_weights(
        self,
        W: Array,
        bh: Array,
        bv: Array,
        base_bias: Array,
        betas: Any,
        *,
        n_runs: int,
        visible: str,
        rng: Any,
    ) -> np.ndarray:
        """Log importance weights of ``n_runs`` annealed importance sampling runs (float64 NumPy).

        The runs anneal from the base model ``A`` (no weights, visible biases
        ``base_bias``, hidden units free) to the RBM ``(W, bh, bv)`` along
        ``p*_beta(v) = exp((1 - beta) v.bA + beta v.bv) prod_j (1 + exp(beta a_j))``
        with ``a = v W^T + bh`` (Gaussian units: ``exp(-(1 - beta) |v - bA|^2 / 2
        - beta |v - bv|^2 / 2)`` in place of the first factor), over the
        increasing ``betas`` (a float64 sequence from 0 to 1).  Per run:

        * ``v ~ p_0``: ``v = (u < sigmoid(bA))`` with ``u`` of shape
          ``(n_runs, n_visible)`` (Gaussian: ``bA + normal``);
        * for ``k = 1 .. K``: ``log w += log p*_k(v) - log p*_{k-1}(v)``; then,
          unless ``k = K``, one Gibbs sweep that leaves ``p_k`` invariant:
          ``h = (u < sigmoid(beta_k a))`` (uniforms ``(n_runs, n_hidden)``),
          ``v = (u < sigmoid((1 - beta_k) bA + beta_k (h W + bv)))``
          (uniforms ``(n_runs, n_visible)``; Gaussian: that mean plus normal noise).

        ``log Z_B = log Z_A + log mean(exp(log w))``; see :mod:`neuroplug.likelihood`.
        """
        betas, n_runs = self.check_rbm_ais(
            W, bh, bv, base_bias, betas, n_runs=n_runs, visible=visible
        )
        dtype = W.dtype
        gaussian = visible == "gaussian"
        n_visible = int(W.shape[1])
        if gaussian:
            v = base_bias + self.random_normal(rng, (n_runs, n_visible), dtype)
        else:
            v = self.bernoulli(
                self.sigmoid(base_bias + self.alloc((n_runs, n_visible), dtype)), rng
            )
        d_bias = bv - base_bias
        log_w = self.alloc(n_runs, np.float64)
        for k in range(1, betas.shape[0]):
            b_prev, b_k = (
                self.round_scalar(betas[k - 1], dtype),
                self.round_scalar(betas[k], dtype),
            )
            act = self.gemm(v, W, trans2=True) + bh
            if gaussian:
                da, db = v - base_bias, v - bv
                visible_term = 0.5 * ((da * da).sum(axis=1) - (db * db).sum(axis=1))
            else:
                visible_term = v @ d_bias
            # Per unit before summing: the two sums would cancel to a few ulps of their size.
            hidden_term = (self.softplus(act * b_k) - self.softplus(act * b_prev)).sum(
                axis=1
            )
            log_w += float(betas[k] - betas[k - 1]) * self.astype(
                visible_term, np.float64
            )
            log_w += self.astype(hidden_term, np.float64)
            if k == betas.shape[0] - 1:
                break
            h = self.bernoulli(self.sigmoid(act * b_k), rng)
            mean = base_bias * (1 - b_k) + (self.gemm(h, W) + bv) * b_k
            v = (
                mean + self.random_normal(rng, mean.shape, dtype)
                if gaussian
                else self.bernoulli(self.sigmoid(mean), rng)
            )
        return np.asarray(self.to_numpy(log_w), dtype=np.float64)

    # --------------------------------------------------------------------- SBN
    # Sigmoid belief nets (Neal 1992).  Layer 0 is the visible layer, layer L
    # the top.  Parameters come as lists so that any depth is one call:
    #   Wg[l] (n_{l+1}, n_l)  generative weights, layer l+1 -> layer l
    #   bg[l] (n_l,)          generative biases for l = 0..L (bg[L] is the
    #                          prior of the top layer: p(h_L=1) = sigmoid(bg[L]))
    #   Wr[l] (n_l, n_{l+1})  recognition weights, layer l -> layer l+1
    #                          (the shape of a Dense "W")
    #   br[l] (n_{l+1},)      recognition biases
    # A Bernoulli log-probability is computed from the logit a as
    # x * a - softplus(a), which is exact for binary x, never takes log(0), and
    # is the cross-entropy against a soft target x in [0, 1].
    def check_sbn(
        self,
        X: Array | None,
        Wg: Sequence[Array],
        bg: Sequence[Array],
        Wr: Sequence[Array] | None = None,
        br: Sequence[Array] | None = None,
    ) -> tuple[int, ...]:
        """Validate SBN parameters (and data ``X``); return the layer sizes ``(n_0, ..., n_L)``.

        With ``X=None`` the dtype is taken from ``Wg[0]``; with ``Wr=None``
        only the generative half is checked.
        """
        for name, value in (("Wg", Wg), ("bg", bg), ("Wr", Wr), ("br", br)):
            if value is not None and not isinstance(value, (list, tuple)):
                raise TypeError(
                    f"{name} must be a list of arrays. Received: {name} of type {type(value).__name__}"
                )
        if len(Wg) < 1:
            raise ValueError("Wg must hold at least one weight matrix. Received: Wg=[]")
        n_layers = len(Wg)
        if len(bg) != n_layers + 1:
            raise ValueError(
                f"bg must hold one bias per layer, visible and top included ({n_layers + 1}). Received: len(bg)={len(bg)}"
            )
        if (Wr is None) != (br is None):
            raise ValueError("Wr and br must be given together.")
        if Wr is not None and (len(Wr) != n_layers or len(br) != n_layers):
            raise ValueError(
                f"Wr and br must hold one entry per hidden layer ({n_layers}). "
                f"Received: len(Wr)={len(Wr)}, len(br)={len(br)}"
            )
        if X is not None:
            self._check_array(X, "X", 2)
        else:
            self._check_array(
                Wg[0], "Wg[0]", 2
            )  # before reading its dtype: it may not be an array
        dtype = X.dtype if X is not None else Wg[0].dtype
        for l, w in enumerate(Wg):
            self._check_array(w, f"Wg[{l}]", 2, dtype)
        sizes = [int(Wg[0].shape[1])] + [int(w.shape[0]) for w in Wg]
        for l in range(1, n_layers):
            if int(Wg[l].shape[1]) != sizes[l]:
                raise ValueError(
                    f"Wg[{l}] must have shape (n_{l + 1}, n_{l}) with n_{l} = {sizes[l]} from Wg[{l - 1}]. "
                    f"Received: Wg[{l}].shape={tuple(Wg[l].shape)}"
                )
        if X is not None and int(X.shape[1]) != sizes[0]:
            raise ValueError(
                f"X must have {sizes[0]} columns (the visible units of Wg[0]). Received: X.shape={tuple(X.shape)}"
            )
        for l, b in enumerate(bg):
            self._check_array(b, f"bg[{l}]", 1, dtype)
            if int(b.shape[0]) != sizes[l]:
                raise ValueError(
                    f"bg[{l}] must have shape ({sizes[l]},). Received: bg[{l}].shape={tuple(b.shape)}"
                )
        if Wr is not None:
            for l in range(n_layers):
                self._check_array(Wr[l], f"Wr[{l}]", 2, dtype)
                if tuple(int(s) for s in Wr[l].shape) != (sizes[l], sizes[l + 1]):
                    raise ValueError(
                        f"Wr[{l}] must have shape {(sizes[l], sizes[l + 1])}. Received: Wr[{l}].shape={tuple(Wr[l].shape)}"
                    )
                self._check_array(br[l], f"br[{l}]", 1, dtype)
                if int(br[l].shape[0]) != sizes[l + 1]:
                    raise ValueError(
                        f"br[{l}] must have shape ({sizes[l + 1]},). Received: br[{l}].shape={tuple(br[l].shape)}"
                    )
        return tuple(sizes)

    @staticmethod
    def _check_sbn_int(value: Any, name: str) -> int:
        if (
            not isinstance(value, numbers.Integral)
            or isinstance(value, bool)
            or value < 1
        ):
            raise ValueError(f"{name} must be an int >= 1. Received: {name}={value!r}")
        return int(value)

    @classmethod
    def _check_sbn_epoch_args(
        cls, learning_rate: Any, batch_size: Any, n_importance_samples: Any
    ) -> tuple[float, int, int]:
        if (
            not isinstance(learning_rate, numbers.Real)
            or isinstance(learning_rate, bool)
            or not np.isfinite(learning_rate)
            or learning_rate <= 0
        ):
            raise ValueError(
                f"learning_rate must be a finite number > 0. Received: learning_rate={learning_rate!r}"
            )
        return (
            float(learning_rate),
            cls._check_sbn_int(batch_size, "batch_size"),
            cls._check_sbn_int(n_importance_samples, "n_importance_samples"),
        )

    def check_sbn_epoch(
        self,
        X: Array,
        Wg: Sequence[Array],
        bg: Sequence[Array],
        Wr: Sequence[Array],
        br: Sequence[Array],
        *,
        learning_rate: Any,
        batch_size: Any,
        n_importance_samples: Any,
    ) -> tuple[float, int, int]:
        """Validate :meth:`sbn_wake_sleep_epoch`'s arguments; return ``(learning_rate, batch_size, K)``.

        :meth:`check_sbn` on the data and all parameters, then
        ``learning_rate`` finite and ``> 0``, ``batch_size`` and
        ``n_importance_samples`` ints ``>= 1``.  A backend adds what it needs
        on top (the torch backend: the parameters it updates are device
        tensors) and calls this.
        """
        self.check_sbn(X, Wg, bg, Wr, br)
        return self._check_sbn_epoch_args(
            learning_rate, batch_size, n_importance_samples
        )

    def _bernoulli_logpmf_rows(self, x: Array, logits: Array) -> Array:
        """Per-row ``sum_j log Bernoulli(x_j | sigmoid(a_j))`` = ``sum_j x_j a_j - softplus(a_j)``."""
        return (x * logits - self.softplus(logits)).sum(axis=1)

    def sbn_sample(
        self, Wg: Sequence[Array], bg: Sequence[Array], n_samples: int, rng: Any
    ) -> list[Array]:
        """Ancestral samples of every layer; returns ``[s_0, ..., s_L]`` (``s_0`` visible).

        Random draws, in this order: ``(n_samples, n_L)`` uniforms for the
        top layer from its prior ``sigmoid(bg[L])``, then for ``l = L-1 ... 0``
        ``(n_samples, n_l)`` uniforms for ``s_l ~ Bernoulli(sigmoid(s_{l+1} Wg[l] + bg[l]))``.
        """
        Wg, bg = self._read_only_lists(Wg, bg)
        self.check_sbn(None, Wg, bg)
        n_samples = self._check_sbn_int(n_samples, "n_samples")
        return self._sbn_ancestral(Wg, bg, n_samples, rng)

    def _as_input(self, a: Any) -> Any:
        """A read-only array argument as a backend array (a host array is moved); a non-array is left for the checks."""
        return self.asarray(a) if hasattr(a, "shape") and hasattr(a, "dtype") else a

    def _read_only_lists(self, *lists: Any) -> list[Any]:
        """:meth:`_as_input` on each array of each list; anything but a list is left for the checks."""
        return [
            [self._as_input(a) for a in v] if isinstance(v, (list, tuple)) else v
            for v in lists
        ]

    def _sbn_ancestral(
        self, Wg: Sequence[Array], bg: Sequence[Array], n_samples: int, rng: Any
    ) -> list[Array]:
        """:meth:`sbn_sample` on validated arguments (the sleep phase calls it once per batch)."""
        n_layers = len(Wg)
        top = (
            self.alloc((n_samples, int(bg[n_layers].shape[0])), Wg[0].dtype)
            + bg[n_layers]
        )
        samples = [self.bernoulli(self.sigmoid(top), rng)]
        for l in range(n_layers - 1, -1, -1):
            samples.append(
                self.bernoulli(
                    self.sigmoid(self.affine(samples[-1], Wg[l], bg[l])), rng
                )
            )
        return samples[::-1]

    def sbn_log_importance_weights(
        self,
        X: Array,
        Wg: Sequence[Array],
        bg: Sequence[Array],
        Wr: Sequence[Array],
        br: Sequence[Array],
        *,
        n_samples: int,
        rng: Any,
    ) -> Array:
        """Log importance weights ``log p(x, h^k) - log q(h^k | x)``, shape ``(n, n_samples)``.

        ``h^k`` is drawn from the recognition network, layer by layer:
        ``h_{l+1} ~ Bernoulli(sigmoid(h_l Wr[l] + br[l]))`` with ``h_0 = x``.
        ``logsumexp(row) - log(n_samples)`` is then an importance-sampled
        estimate of ``log p(x)`` whose expectation is below ``log p(x)``.

        The uniforms are **common random numbers**: one ``(n_samples, n_l)``
        block per hidden layer ``l = 1 ... L`` is drawn (in that order) and
        shared by every row of ``X``, so a row's result depends only on the
        row and the generator's state, not on the other rows or their order.
        Each row's ``n_samples`` draws are still independent of each other.
        """
        X = self._as_input(X)
        Wg, bg, Wr, br = self._read_only_lists(Wg, bg, Wr, br)
        sizes = self.check_sbn(X, Wg, bg, Wr, br)
        n_samples = self._check_sbn_int(n_samples, "n_samples")
        n_layers = len(Wg)
        n = int(X.shape[0])
        uniforms = [
            self.random_uniform(rng, (n_samples, sizes[l]), X.dtype)
            for l in range(1, n_layers + 1)
        ]
        h = [self.repeat_rows(X, n_samples)]  # row i * n_samples + k holds x_i
        log_q = 0
        for l in range(n_layers):
            a = self.affine(h[l], Wr[l], br[l])
            # Each row's block of n_samples rows meets the same (n_samples, n_l) uniforms (broadcast).
            on = uniforms[l] < self.sigmoid(a).reshape(n, n_samples, sizes[l + 1])
            h.append(self.astype(on.reshape(n * n_samples, sizes[l + 1]), X.dtype))
            log_q = log_q + self._bernoulli_logpmf_rows(h[l + 1], a)
        log_p = self._bernoulli_logpmf_rows(h[n_layers], bg[n_layers])
        for l in range(n_layers):
            log_p = log_p + self._bernoulli_logpmf_rows(
                h[l], self.affine(h[l + 1], Wg[l], bg[l])
            )
        return (log_p - log_q).reshape(n, n_samples)

    def sbn_wake_sleep_epoch(
        self,
        X: Array,
        Wg: Sequence[Array],
        bg: Sequence[Array],
        Wr: Sequence[Array],
        br: Sequence[Array],
        *,
        learning_rate: float,
        batch_size: int,
        n_importance_samples: int = 1,
        rng: Any,
        sample_weight: Array | None = None,
    ) -> float:
        """One epoch of (reweighted) wake-sleep over ``X`` in row order; updates all parameters in place.

        Per mini-batch ``x`` of ``m`` rows, with ``K = n_importance_samples``
        and ``step = learning_rate / m``:

        **Wake** (Hinton, Dayan, Frey & Neal 1995; reweighted with ``K > 1``,
        Bornschein & Bengio 2015).  Each row is repeated ``K`` times (row
        ``i K + k``) and every hidden layer is sampled bottom-up from the
        recognition network, ``h_{l+1} ~ Bernoulli(sigmoid(h_l Wr[l] + br[l]))``
        (draws: ``(m K, n_l)`` uniforms for ``l = 1 ... L``).  The log weights
        ``log w = log p(x, h) - log q(h | x)`` are normalised over each row's
        ``K`` samples, ``omega = softmax(log w)`` (exactly 1 when ``K = 1``).
        The generative parameters take a step along the omega-weighted
        gradient of ``log p(x, h)``:
        ``d_l = omega (h_l - sigmoid(h_{l+1} Wg[l] + bg[l]))``,
        ``Wg[l] += step h_{l+1}^T d_l``, ``bg[l] += step sum(d_l)``, and
        ``bg[L] += step sum(omega (h_L - sigmoid(bg[L])))``, all computed
        before any of them changes.  When ``K > 1`` the recognition
        parameters then take half a step along the omega-weighted gradient of
        ``log q(h | x)`` (the "q-wake" update): ``e_l = omega (h_{l+1} -
        sigmoid(h_l Wr[l] + br[l]))``, ``Wr[l] += step / 2 h_l^T e_l``,
        ``br[l] += step / 2 sum(e_l)``.

        **Sleep**.  ``m`` fantasies are drawn from the updated generative
        model with :meth:`sbn_sample` (its draws), and the recognition
        parameters take a step (half a step when ``K > 1``, so that wake and
        sleep updates of the recognition network are averaged) along the
        gradient of ``log q(s_{1..L} | s_0)``: ``e_l = s_{l+1} -
        sigmoid(s_l Wr[l] + br[l])``, ``Wr[l] += step' s_l^T e_l``,
        ``br[l] += step' sum(e_l)``.

        With ``sample_weight`` (one weight per row, of mean 1), the wake
        phase's statistics of row ``i`` are multiplied by its weight
        (``omega`` becomes ``w_i omega``), so a row of weight 2 counts as
        that row twice in its batch; the sleep phase learns from the model's
        own fantasies and is unchanged.  The returned bound is then the
        weighted mean.  The draws are those of the unweighted epoch.

        Returns the mean over ``X`` of the wake phase's estimate of
        ``log p(x)`` before each batch's update: ``logsumexp(log w) - log K``
        (for ``K = 1`` a one-sample estimate of the ELBO).
        """
        learning_rate, batch_size, K = self.check_sbn_epoch(
            X,
            Wg,
            bg,
            Wr,
            br,
            learning_rate=learning_rate,
            batch_size=batch_size,
            n_importance_samples=n_importance_samples,
        )
        self.check_sample_weight(sample_weight, int(X.shape[0]))
        row_w = weight_sum = None
        if sample_weight is not None:
            host_w = np.asarray(self.to_numpy(sample_weight), dtype=np.float64)
            weight_sum = float(host_w.sum())
            row_w = self.asarray(host_w.reshape(-1, 1))
        n_layers = len(Wg)
        n = int(X.shape[0])
        log_k = math.log(K)
        totals = []
        for start in range(0, n, batch_size):
            x = self.take_rows(X, start, start + batch_size, Wg[0].dtype)
            m = int(x.shape[0])
            step = learning_rate / m
            q_step = step if K == 1 else step / 2

            # Wake: sample h ~ q(h | x), K times per row.
            h = [self.repeat_rows(x, K)]
            q_logits = []
            log_q = 0
            for l in range(n_layers):
                a = self.affine(h[l], Wr[l], br[l])
                h.append(self.bernoulli(self.sigmoid(a), rng))
                q_logits.append(a)
                log_q = log_q + self._bernoulli_logpmf_rows(h[l + 1], a)
            log_p = self._bernoulli_logpmf_rows(h[n_layers], bg[n_layers])
            p_means = []
            for l in range(n_layers):
                a = self.affine(h[l + 1], Wg[l], bg[l])
                p_means.append(self.sigmoid(a))
                log_p = log_p + self._bernoulli_logpmf_rows(h[l], a)
            log_w = (log_p - log_q).reshape(m, K)
            lse = self.logsumexp_rows(log_w)
            if row_w is None:
                # Summed in float64 and read back once, at the end.
                totals.append((self.astype(lse, np.float64) - log_k).sum())
                omega = self.exp(log_w - lse).reshape(m * K, 1)
            else:
                wb = self.take_rows(row_w, start, start + m, Wg[0].dtype)
                totals.append(
                    (
                        self.astype(wb, np.float64)
                        * (self.astype(lse, np.float64) - log_k)
                    ).sum()
                )
                omega = (wb * self.exp(log_w - lse)).reshape(m * K, 1)

            prior = self.sigmoid(bg[n_layers])
            d_top = (omega * (h[n_layers] - prior)).sum(axis=0)
            for l in range(n_layers):
                d = omega * (h[l] - p_means[l])
                Wg[l] += step * self.gemm(h[l + 1], d, trans1=True)
                bg[l] += step * d.sum(axis=0)
            bg[n_layers] += step * d_top
            if K > 1:
                for l in range(n_layers):
                    e = omega * (h[l + 1] - self.sigmoid(q_logits[l]))
                    Wr[l] += q_step * self.gemm(h[l], e, trans1=True)
                    br[l] += q_step * e.sum(axis=0)

            # Sleep: fantasies from the (updated) generative model train q.
            s = self._sbn_ancestral(Wg, bg, m, rng)
            for l in range(n_layers):
                e = s[l + 1] - self.sigmoid(self.affine(s[l], Wr[l], br[l]))
                Wr[l] += q_step * self.gemm(s[l], e, trans1=True)
                br[l] += q_step * e.sum(axis=0)
        total = 0.0
        for t in totals:
            total += float(t)
        return total / (n if weight_sum is None else weight_sum)

    # ----------------------------------------------------------------- ConvRBM
    # Convolutional RBMs with probabilistic max-pooling (Lee, Grosse, Ranganath
    # & Ng, ICML 2009).  Visible v (n, C, H, W); filters W (F, C // groups, kh,
    # kw) and hidden biases bh (F,) as a Conv2D layer's "W" and "b"; visible
    # biases bv (C,) shared over each channel.  The detection layer's input is
    # conv2d(v, W, bh) (any stride / padding / groups / connection table), the
    # visible layer's input the transposed convolution conv2d_backward_input(h,
    # W, v.shape) + bv.  Detection maps are cut into pool_size blocks (the last
    # row and column of blocks are partial when the map size is not a
    # multiple): each block is one multinomial unit with the states "unit i on"
    # (logit I_i) and "all off" (logit 0), so at most one detection unit per
    # block is on and the pooling unit is on exactly when one of them is.
    def check_crbm_pool(self, x: Array, name: str, pool_size: Any) -> tuple[int, int]:
        """Validate a detection-layer array ``x`` (4-D float) and return ``pool_size`` as a pair."""
        self._check_array(x, name, 4)
        return normalize_pair(pool_size, "pool_size")

    @staticmethod
    def crbm_pool_shape(hw: Sequence[int], pool_size: Sequence[int]) -> tuple[int, int]:
        """Pooling-layer size: ``ceil(hw / pool_size)`` (partial blocks at the far edges count)."""
        return (
            -(-int(hw[0]) // int(pool_size[0])),
            -(-int(hw[1]) // int(pool_size[1])),
        )

    def _crbm_blocks(self, x: Array, pool: tuple[int, int], fill: float) -> Array:
        """``(n, c, H, W)`` -> ``(n, c, PH, PW, ph * pw)``, padding partial blocks with ``fill``."""
        n, c, h, w = x.shape
        PH, PW = self.crbm_pool_shape((h, w), pool)
        xp = np.full((n, c, PH * pool[0], PW * pool[1]), fill, dtype=x.dtype)
        xp[:, :, :h, :w] = x
        return (
            xp.reshape(n, c, PH, pool[0], PW, pool[1])
            .transpose(0, 1, 2, 4, 3, 5)
            .reshape(n, c, PH, PW, -1)
        )

    def _crbm_unblock(
        self, blocks: Array, hw: tuple[int, int], pool: tuple[int, int]
    ) -> Array:
        """Inverse of :meth:`_crbm_blocks` (drops the padding)."""
        n, c, PH, PW, _ = blocks.shape
        x = blocks.reshape(n, c, PH, PW, pool[0], pool[1]).transpose(0, 1, 2, 4, 3, 5)
        return np.ascontiguousarray(
            x.reshape(n, c, PH * pool[0], PW * pool[1])[:, :, : hw[0], : hw[1]]
        )

    def crbm_pool_probs(self, pre: Array, pool_size: Any) -> tuple[Array, Array]:
        """Probabilistic max-pooling posteriors from the detection pre-activations ``pre``.

        Returns ``(h_probs, p_probs)``: ``h_probs`` (shape of ``pre``) is
        ``P(h_i = 1 | v) = exp(I_i) / (1 + sum_{j in block} exp(I_j))`` and
        ``p_probs`` (shape ``(n, F, ceil(H / ph), ceil(W / pw))``) is the
        probability that the block's pooling unit is on, ``1 - P(all off)``.
        """
        pool = self.check_crbm_pool(pre, "pre", pool_size)
        blocks = self._crbm_blocks(pre, pool, -np.inf)
        # Shift by the largest logit, the off state's 0 included, so exp never overflows.
        peak = np.maximum(blocks.max(axis=-1), 0)
        e = np.exp(blocks - peak[..., None])
        on = e.sum(axis=-1)
        denom = np.exp(-peak) + on
        h_probs = self._crbm_unblock(e / denom[..., None], tuple(pre.shape[2:]), pool)
        # sum(e) / denom rather than 1 - P(off): no cancellation when the block is almost surely off.
        return h_probs, np.ascontiguousarray(on / denom)

    def crbm_sample_hidden(self, h_probs: Array, pool_size: Any, rng: Any) -> Array:
        """Sample the detection units given their block posteriors ``h_probs``.

        One uniform ``u`` per block is drawn with ``random_uniform(rng, (n, F,
        PH, PW), dtype)``; the block's state is the first unit (row-major
        within the block) whose cumulative probability exceeds ``u``, or "all
        off" when none does.  So at most one unit per block is on.
        """
        pool = self.check_crbm_pool(h_probs, "h_probs", pool_size)
        n, f, h, w = h_probs.shape
        PH, PW = self.crbm_pool_shape((h, w), pool)
        u = self.random_uniform(rng, (n, f, PH, PW), h_probs.dtype)
        cum = np.cumsum(self._crbm_blocks(h_probs, pool, 0.0), axis=-1)
        # Index of the first cumulative probability above u (ph * pw means "off").
        chosen = (cum <= u[..., None]).sum(axis=-1)
        onehot = (np.arange(pool[0] * pool[1]) == chosen[..., None]).astype(
            h_probs.dtype
        )
        return self._crbm_unblock(onehot, (h, w), pool)

    def crbm_visible_means(
        self,
        h: Array,
        W: Array,
        bv: Array,
        v_shape: Sequence[int],
        visible: str,
        *,
        stride: Any = 1,
        padding: Any = 0,
        groups: int = 1,
        connections: Any = None,
    ) -> Array:
        """Mean of the visible units given detection states ``h``.

        ``conv2d_backward_input(h, W, v_shape) + bv`` (per channel), through a
        sigmoid for ``visible="bernoulli"``; linear (unit variance) for ``"gaussian"``.
        """
        self._check_crbm_visible(visible)
        act = self.conv2d_backward_input(
            h,
            W,
            v_shape,
            stride=stride,
            padding=padding,
            groups=groups,
            connections=connections,
        )
        self._check_crbm_bv(bv, act)
        act = act + bv[None, :, None, None]
        return self.sigmoid(act) if visible == "bernoulli" else act

    @staticmethod
    def _check_crbm_visible(visible: Any) -> None:
        if visible not in ("bernoulli", "gaussian"):
            raise ValueError(
                f"visible must be 'bernoulli' or 'gaussian'. Received: visible={visible!r}"
            )

    def _check_crbm_bv(self, bv: Array, v: Array) -> None:
        """``bv`` must hold one bias per channel of the visible array ``v``."""
        self._check_array(bv, "bv", 1, v.dtype)
        if int(bv.shape[0]) != int(v.shape[1]):
            raise ValueError(
                f"bv must have one entry per visible channel ({int(v.shape[1])}). Received: bv.shape={tuple(bv.shape)}"
            )

    def crbm_free_energy(
        self,
        v: Array,
        W: Array,
        bh: Array,
        bv: Array,
        *,
        pool_size: Any,
        visible: str,
        stride: Any = 1,
        padding: Any = 0,
        groups: int = 1,
        connections: Any = None,
    ) -> Array:
        """Free energy ``F(v)`` per sample, ``p(v) = exp(-F(v)) / Z``.

        The blocks are independent given ``v``, so summing each block's
        states gives ``F(v) = visible term - sum_blocks log(1 + sum_i exp(I_i))``
        with the visible term ``-sum_c bv_c sum v_c`` (Bernoulli) or
        ``0.5 ||v - bv||^2`` (Gaussian).
        """
        self._check_crbm_visible(visible)
        pre = self.conv2d(
            v,
            W,
            bh,
            stride=stride,
            padding=padding,
            groups=groups,
            connections=connections,
        )
        self._check_crbm_bv(bv, v)
        pool = self.check_crbm_pool(pre, "pre", pool_size)
        blocks = self._crbm_blocks(pre, pool, -np.inf)
        peak = np.maximum(blocks.max(axis=-1), 0)
        log_z = peak + np.log(
            np.exp(-peak) + np.exp(blocks - peak[..., None]).sum(axis=-1)
        )
        hidden = log_z.reshape(log_z.shape[0], -1).sum(axis=1)
        if visible == "bernoulli":
            return -(v.sum(axis=(2, 3)) @ bv) - hidden
        return 0.5 * ((v - bv[None, :, None, None]) ** 2).sum(axis=(1, 2, 3)) - hidden

    def check_crbm_cd(
        self,
        X: Array,
        W: Array,
        bh: Array,
        bv: Array,
        dW: Array,
        dbh: Array,
        dbv: Array,
        *,
        k: Any,
        batch_size: Any,
        visible: Any,
        pool_size: Any,
    ) -> tuple[int, int, tuple[int, int]]:
        """Validate :meth:`crbm_cd_epoch`'s arrays and counts; return ``(k, batch_size, pool_size)``."""
        self._check_array(X, "X", 4)
        self._check_array(W, "W", 4, X.dtype)
        for name, arr, shape in (
            ("bh", bh, (int(W.shape[0]),)),
            ("bv", bv, (int(X.shape[1]),)),
            ("dW", dW, tuple(W.shape)),
            ("dbh", dbh, (int(W.shape[0]),)),
            ("dbv", dbv, (int(X.shape[1]),)),
        ):
            self._check_array(arr, name, len(shape), X.dtype)
            if tuple(arr.shape) != tuple(shape):
                raise ValueError(
                    f"{name} must have shape {tuple(shape)}. Received: {name}.shape={tuple(arr.shape)}"
                )
        for name, value in (("k", k), ("batch_size", batch_size)):
            if (
                not isinstance(value, numbers.Integral)
                or isinstance(value, bool)
                or value < 1
            ):
                raise ValueError(
                    f"{name} must be a positive int. Received: {name}={value!r}"
                )
        self._check_crbm_visible(visible)
        return int(k), int(batch_size), normalize_pair(pool_size, "pool_size")

    def crbm_cd_epoch(
        self,
        X: Array,
        W: Array,
        bh: Array,
        bv: Array,
        dW: Array,
        dbh: Array,
        dbv: Array,
        *,
        k: int,
        pool_size: Any,
        learning_rate: float,
        momentum: float,
        weight_decay: float,
        sparsity_target: float,
        sparsity_cost: float,
        batch_size: int,
        visible: str,
        rng: Any,
        stride: Any = 1,
        padding: Any = 0,
        groups: int = 1,
        connections: Any = None,
    ) -> float:
        """One epoch of CD-k for a convolutional RBM with probabilistic max-pooling.

        Updates ``W``, ``bh``, ``bv`` and the momentum buffers ``dW``, ``dbh``,
        ``dbv`` in place, mini-batch by mini-batch in row order.  Per batch
        ``v0`` of ``m`` images with ``P = m * OH * OW`` detection positions per
        filter and ``Q = m * H * W`` visible positions per channel:

        * ``ph0 = crbm_pool_probs(conv2d(v0, W, bh))``; ``h ~ crbm_sample_hidden(ph0)``.
        * ``k`` times: ``vk = crbm_visible_means(h)`` (means, as for the dense
          RBM); ``phk = crbm_pool_probs(conv2d(vk, W, bh))``; a new ``h`` is
          sampled from ``phk`` except after the last step (it would be unused).
        * Statistics ``<v h>`` come from ``conv2d_backward_weights``, so the
          gradients are averages over samples *and* positions (the learning
          rate does not depend on the image size):
          ``dW = momentum dW + lr ((G(ph0, v0) - G(phk, vk)) / P - weight_decay W)``;
          ``dbh = momentum dbh + lr ((sum ph0 - sum phk) / P + sparsity_cost (sparsity_target - mean ph0))``
          (the sparsity term of Lee et al. 2008 pulls each filter's mean
          detection probability towards the target);
          ``dbv = momentum dbv + lr (sum v0 - sum vk) / Q``.  Then ``W += dW``
          etc.

        Every step goes through ``self.conv2d*``, ``self.crbm_*`` and
        ``self.sigmoid``, so a backend that compiles those runs this loop at
        compiled speed.  Returns the mean squared reconstruction error per
        image, ``sum((v0 - vk)**2) / n``.
        """
        k, batch_size, pool = self.check_crbm_cd(
            X,
            W,
            bh,
            bv,
            dW,
            dbh,
            dbv,
            k=k,
            batch_size=batch_size,
            visible=visible,
            pool_size=pool_size,
        )
        conv = dict(
            stride=stride, padding=padding, groups=groups, connections=connections
        )
        n = int(X.shape[0])
        errs = []
        for start in range(0, n, batch_size):
            v0 = self.take_rows(X, start, start + batch_size, W.dtype)
            m = int(v0.shape[0])
            ph0, _ = self.crbm_pool_probs(self.conv2d(v0, W, bh, **conv), pool)
            h = self.crbm_sample_hidden(ph0, pool, rng)
            for step in range(k):
                vk = self.crbm_visible_means(h, W, bv, v0.shape, visible, **conv)
                phk, _ = self.crbm_pool_probs(self.conv2d(vk, W, bh, **conv), pool)
                if step + 1 < k:
                    h = self.crbm_sample_hidden(phk, pool, rng)
            gW0, gb0 = self.conv2d_backward_weights(ph0, v0, W.shape, **conv)
            gWk, gbk = self.conv2d_backward_weights(phk, vk, W.shape, **conv)
            n_hidden = m * int(ph0.shape[2]) * int(ph0.shape[3])
            n_visible = m * int(v0.shape[2]) * int(v0.shape[3])
            dW *= momentum
            dW += (learning_rate / n_hidden) * (gW0 - gWk)
            dW -= (learning_rate * weight_decay) * W
            W += dW
            dbh *= momentum
            dbh += (learning_rate / n_hidden) * (gb0 - gbk)
            dbh += (learning_rate * sparsity_cost) * (sparsity_target - gb0 / n_hidden)
            bh += dbh
            dbv *= momentum
            dbv += (learning_rate / n_visible) * (
                v0.sum(axis=(0, 2, 3)) - vk.sum(axis=(0, 2, 3))
            )
            bv += dbv
            diff = v0 - vk
            errs.append((diff * diff).sum())
        return sum(float(e) for e in errs) / n
