"""``TorchOps``: every neuroplug op on PyTorch tensors, on CUDA, MPS or the CPU.

The class subclasses :class:`neuroplug.ops.Ops` (the NumPy reference) and
overrides every primitive op with a native torch version: convolution and
pooling run torch's own kernels (cuDNN on NVIDIA GPUs, oneDNN on CPUs).  The
reference's composite loops (``Ops.composite_ops``: CD-k, wake-sleep, conv-RBM
CD, AIS) are inherited: they call only these primitives, so they run on the
device unchanged.  A reference op that has no native
version here (say one added to ``Ops`` after this plugin was written) is
wrapped at import time by :func:`fallback`: it copies its tensor arguments to
the host, runs the NumPy reference, copies the results (and anything the
reference changed in place) back, and warns once with
:class:`TorchFallbackWarning`.  It is slow, never silently wrong.

torch is imported when the first ``TorchOps`` is created, not when the
plugin is loaded, so that merely discovering plugins (which every neuroplug
process does) does not pay PyTorch's import time.  Module-level code and the
class body therefore use ``torch``/``F`` only inside methods.

Reproducibility
---------------
``make_rng(seed)`` returns a ``torch.Generator`` on the ops' device, so the
same ``random_state`` gives the same samples on the same device and torch
version.  CPU and CUDA generators produce different streams, so a fit on
``"torch:cpu"`` and one on ``"torch:cuda"`` differ (both differ from the
NumPy backends).  On CUDA, bit-for-bit repeatability also needs
``torch.backends.cudnn.deterministic = True``,
``torch.backends.cudnn.benchmark = False`` and, for ``maxpool2d_backward``
with overlapping windows (an ``index_add``/``scatter_add`` with atomics),
``torch.use_deterministic_algorithms(True)`` (plus
``CUBLAS_WORKSPACE_CONFIG=:4096:8``); neuroplug never changes these
process-wide switches itself.
"""

from __future__ import annotations

import inspect
import numbers
import threading
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from neuroplug.ops import Ops, conv2d_output_shape, normalize_pair, pool2d_output_shape

__all__ = [
    "TorchOps",
    "TorchFallbackWarning",
    "fallback",
    "install_fallbacks",
    "resolve_device",
]

Array = Any  # a torch.Tensor on the ops' device

# Imported lazily by _import_torch() (see the module docstring).
torch: Any = None
F: Any = None
_import_lock = threading.Lock()


def _import_torch() -> Any:
    """Import torch once and bind the module globals ``torch`` and ``F``."""
    global torch, F, _HASHABLE_DTYPES
    if torch is None:
        with _import_lock:
            if torch is None:
                try:
                    import torch as _torch
                    import torch.nn.functional as _F
                except (
                    ImportError
                ) as exc:  # pragma: no cover - depends on the environment
                    raise ImportError(
                        "The 'torch' backend of neuroplug needs PyTorch. Install it with "
                        "`pip install torch` (any build >= 2.1), or pick another backend "
                        "such as backend='cpu'."
                    ) from exc
                _HASHABLE_DTYPES = (*_HASHABLE_DTYPES, _torch.dtype)
                F = _F
                torch = _torch
    return torch


#: dtype -> (NumPy dtype, torch dtype); keys are whatever callers pass (np.float32, "float32", torch.float32...).
_DTYPES: dict[Any, tuple[np.dtype, Any]] = {}
_HASHABLE_DTYPES = (type, str, np.dtype)  # torch.dtype is added on import


class TorchFallbackWarning(UserWarning):
    """A ``TorchOps`` op ran the NumPy reference on the host (correct but slow)."""


def resolve_device(device: str | None) -> Any:
    """Turn a device string into a ``torch.device`` that exists on this machine.

    ``None`` picks CUDA when available, else Apple's MPS, else the CPU.
    ``"cuda"`` means the current CUDA device; indices are checked against the
    devices present.  Raises ``ValueError`` naming the device otherwise.
    """
    _import_torch()
    if device is None:
        if torch.cuda.is_available():
            device = "cuda"
        elif _mps_available():
            device = "mps"
        else:
            device = "cpu"
    if not isinstance(device, str):
        raise TypeError(
            f"device must be a string such as 'cpu', 'cuda' or 'cuda:1'. Received: device={device!r}"
        )
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise ValueError(
            "device must be 'cpu', 'cuda', 'cuda:<index>' or 'mps' (write backend='torch:cuda:0'). "
            f"Received: device={device!r}"
        ) from exc
    if dev.type == "cpu":
        return torch.device("cpu")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"CUDA is not available here (torch {torch.__version__}"
                f"{', a CPU-only build' if torch.version.cuda is None else ''}); "
                f"use backend='torch:cpu' or backend='cpu'. Received: device={device!r}"
            )
        index = torch.cuda.current_device() if dev.index is None else dev.index
        if index >= torch.cuda.device_count():
            raise ValueError(
                f"There are {torch.cuda.device_count()} CUDA device(s), so the index must be below that. "
                f"Received: device={device!r}"
            )
        return torch.device("cuda", index)
    if dev.type == "mps":
        if not _mps_available():
            raise ValueError(
                f"Apple's MPS device is not available here. Received: device={device!r}"
            )
        return torch.device("mps", 0 if dev.index is None else dev.index)
    raise ValueError(
        f"The torch backend supports the cpu, cuda and mps devices. Received: device={device!r}"
    )


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


# ---------------------------------------------------------------------------
# The generic fallback: any reference op without a native version
# ---------------------------------------------------------------------------
_warned: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()


def _warn_once(cls_name: str, op: str, device: str) -> None:
    key = (cls_name, op)
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    warnings.warn(
        f"{cls_name} has no native {op}(); it runs the NumPy reference on the host instead "
        f"(correct, but slow on {device}: arguments are copied to the host and back). "
        "This warning is shown once per op.",
        TorchFallbackWarning,
        stacklevel=3,
    )


def fallback(name: str, base: type = Ops) -> Callable[..., Any]:
    """Return a method that runs ``base.<name>`` on host copies of its arguments.

    Tensors become NumPy arrays, ``torch.Generator`` arguments become NumPy
    generators seeded from them (so the result is still reproducible), the
    results come back as tensors on the ops' device, and tensors the
    reference modified in place are written back.  The first call per op
    warns with :class:`TorchFallbackWarning`.
    """
    if not callable(getattr(base, name, None)):
        raise AttributeError(f"{base.__name__} has no method {name!r}")

    def method(self: TorchOps, *args: Any, **kwargs: Any) -> Any:
        _warn_once(type(self).__name__, name, self.device)
        reference = self._reference(base)
        pairs: list[tuple[Any, np.ndarray]] = []
        host_args = [self._to_host(a, pairs) for a in args]
        host_kwargs = {k: self._to_host(v, pairs) for k, v in kwargs.items()}
        result = getattr(reference, name)(*host_args, **host_kwargs)
        # CPU tensors share memory with their NumPy views, so in-place changes
        # are already there; elsewhere copy every array argument back (the
        # reference does not say which arguments it modifies).
        for tensor, array in pairs:
            if tensor.device.type != "cpu":
                tensor.copy_(torch.from_numpy(np.ascontiguousarray(array)))
        return self._from_host(result)

    method.__name__ = name
    method.__qualname__ = f"TorchOps.{name}"
    method.__doc__ = (
        f"Fallback: runs the NumPy reference {base.__name__}.{name} on the host (warns once).\n\n"
        + (getattr(base, name).__doc__ or "")
    )
    method._neuroplug_fallback = True  # type: ignore[attr-defined]
    return method


def _is_op(base: type, name: str) -> bool:
    """Public methods of the reference are ops, except its composite loops
    (``Ops.composite_ops``), the ``check_*`` argument validators, which work on anything with ``.shape`` and ``.dtype`` and are
    therefore inherited as they are, and static helpers."""
    member = getattr(base, name, None)
    return (
        not name.startswith("_")
        and not name.startswith("check_")
        # Composite loops run on this backend's own primitives: inherited, not wrapped.
        and name not in getattr(base, "composite_ops", ())
        and callable(member)
        and not isinstance(member, type)
        # Static helpers (shape arithmetic) touch no arrays: inherited as they are.
        and not isinstance(inspect.getattr_static(base, name), staticmethod)
    )


def install_fallbacks(
    cls: type, names: Sequence[str] | None = None, base: type = Ops
) -> tuple[str, ...]:
    """Wrap with :func:`fallback` each public method of ``base`` that ``cls`` does not define natively.

    ``names`` restricts (or forces) the set of wrapped methods.  Returns the
    names wrapped; they are also recorded in ``cls.fallback_ops``.
    """
    if names is None:
        native = {
            n
            for klass in cls.__mro__
            if issubclass(klass, TorchOps)
            for n in vars(klass)
        }
        names = [n for n in dir(base) if _is_op(base, n) and n not in native]
    wrapped = []
    for n in names:
        setattr(cls, n, fallback(n, base))
        wrapped.append(n)
    cls.fallback_ops = tuple(
        sorted(set(getattr(cls, "fallback_ops", ())) | set(wrapped))
    )
    return tuple(wrapped)


# ---------------------------------------------------------------------------
# TorchOps
# ---------------------------------------------------------------------------
class TorchOps(Ops):
    """neuroplug's ops on PyTorch tensors (registered as backend ``"torch"``).

    Parameters
    ----------
    device : str, optional
        ``"cpu"``, ``"cuda"``, ``"cuda:<index>"`` or ``"mps"``; ``None`` picks
        CUDA when available, else MPS, else the CPU.  Estimators pass it as
        ``backend="torch:cuda:0"`` (a plain string, so it survives ``clone``
        and can be grid-searched).
    n_threads : int, optional
        Accepted for interface compatibility and ignored: torch's CPU thread
        pool is process-wide (set it with ``torch.set_num_threads``), and
        neuroplug never changes process-wide state.
    check_finite : bool, default=True
        Make conv/pool input checks refuse NaN and infinity.  On a GPU such a
        check (and the range checks of labels given as GPU tensors) waits for
        the device, so networks switch it off for inner layers.

    Attributes
    ----------
    device : str
        The resolved device, e.g. ``"cuda:0"`` or ``"cpu"``.
    torch_device : torch.device
        The same, as a ``torch.device``.
    fallback_ops : tuple of str
        Reference ops with no native version here (run on the host, warn once).

    Notes
    -----
    Arrays are ``torch.Tensor`` objects on ``device``; :meth:`asarray`
    accepts NumPy arrays and tensors, :meth:`to_numpy` returns host arrays.
    Ops that update their arguments in place (optimisers, ``cd_epoch``)
    require tensors on ``device``.  float64 is supported except on MPS.
    """

    name = "torch"
    fallback_ops: tuple[str, ...] = ()

    def __init__(
        self,
        device: str | None = None,
        *,
        n_threads: int | None = None,
        check_finite: bool = True,
    ) -> None:
        _import_torch()
        self.torch_device = resolve_device(device)
        self.device = str(self.torch_device)
        self.n_threads = n_threads
        self.check_finite = check_finite
        self._init_caches()

    def _init_caches(self) -> None:
        self._refs: dict[type, Ops] = {}
        self._mask_cache: dict[tuple, Any] = {}
        self._conv_memo: dict[tuple, Any] = {}
        self._adam_step: Any = None
        self._adam_step_value: float | None = None
        self._fused_adam = hasattr(torch, "_fused_adam_")

    def __getstate__(self) -> dict[str, Any]:
        # Caches hold device tensors; they are rebuilt after unpickling.
        return {
            "device": self.device,
            "n_threads": self.n_threads,
            "check_finite": self.check_finite,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(
            state["device"],
            n_threads=state["n_threads"],
            check_finite=state["check_finite"],
        )

    # ------------------------------------------------------------- internals
    def _reference(self, base: type = Ops) -> Ops:
        ref = self._refs.get(base)
        if ref is None:
            ref = self._refs[base] = base(None, check_finite=self.check_finite)
        ref.check_finite = self.check_finite
        return ref

    def _to_host(self, value: Any, pairs: list) -> Any:
        if isinstance(value, torch.Tensor):
            array = self.to_numpy(value)
            pairs.append((value, array))
            return array
        if isinstance(value, torch.Generator):
            seed = torch.randint(
                0, 2**62, (2,), generator=value, device=value.device
            ).tolist()
            return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed)))
        if isinstance(value, (list, tuple)):
            return type(value)(self._to_host(v, pairs) for v in value)
        if isinstance(value, dict):
            return {k: self._to_host(v, pairs) for k, v in value.items()}
        return value

    def _from_host(self, value: Any) -> Any:
        if isinstance(value, np.ndarray):
            return self.asarray(value)
        if isinstance(value, (list, tuple)):
            return type(value)(self._from_host(v) for v in value)
        if isinstance(value, dict):
            return {k: self._from_host(v) for k, v in value.items()}
        return value

    def _dtypes(self, dtype: Any) -> tuple[np.dtype, Any]:
        """``(NumPy dtype, torch dtype)`` for a NumPy dtype, dtype name or torch dtype (cached)."""
        pair = _DTYPES.get(dtype) if isinstance(dtype, _HASHABLE_DTYPES) else None
        if pair is None:
            if isinstance(dtype, torch.dtype):
                try:
                    pair = (torch.empty(0, dtype=dtype).numpy().dtype, dtype)
                except TypeError as exc:
                    raise TypeError(
                        f"NumPy has no dtype matching {dtype}. Received: dtype={dtype!r}"
                    ) from exc
            else:
                try:
                    np_dtype = np.dtype(dtype)
                except TypeError as exc:
                    raise TypeError(
                        f"dtype must be a NumPy or torch dtype. Received: dtype={dtype!r}"
                    ) from exc
                try:
                    pair = (
                        np_dtype,
                        torch.from_numpy(np.empty(0, dtype=np_dtype)).dtype,
                    )
                except TypeError as exc:
                    raise TypeError(
                        f"torch has no dtype matching {np_dtype}. Received: dtype={dtype!r}"
                    ) from exc
            if isinstance(dtype, _HASHABLE_DTYPES):
                _DTYPES[dtype] = pair
        if pair[1] is torch.float64 and self.torch_device.type == "mps":
            raise TypeError(
                "float64 is not supported on the mps device; use float32. Received: dtype=float64"
            )
        return pair

    def _tdtype(self, dtype: Any) -> Any:
        """torch dtype for a NumPy dtype, dtype name or torch dtype."""
        return self._dtypes(dtype)[1]

    def _in(self, x: Any) -> Any:
        """Read-only input: tensors pass through, anything else goes to the device."""
        if x is None or isinstance(x, torch.Tensor):
            return x
        return self.asarray(x)

    def _inplace(self, x: Any, name: str) -> None:
        """Arguments updated in place must already be tensors on this device."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(
                f"{name} is updated in place, so it must be a torch.Tensor on {self.device} "
                f"(create it with ops.asarray or ops.alloc). Received: {name} of type {type(x).__name__}"
            )
        if x.device != self.torch_device:
            raise ValueError(
                f"{name} must be on {self.device}. Received: {name}.device={x.device}"
            )

    def _check_rng(self, rng: Any) -> None:
        if not isinstance(rng, torch.Generator):
            raise TypeError(
                "rng must be the torch.Generator returned by TorchOps.make_rng. "
                f"Received: rng of type {type(rng).__name__}"
            )
        if rng.device.type != self.torch_device.type:
            raise ValueError(
                f"rng must be a generator on {self.device}. Received: rng.device={rng.device}"
            )

    def _check_array(self, x: Any, name: str, ndim: int, dtype: Any = None) -> None:
        # The reference's checks and messages, in its order, on tensor attributes
        # directly: the reference parses dtype names through NumPy, which costs
        # microseconds per call (it adds up on a launch-bound GPU step) and
        # cannot name some torch dtypes (bfloat16, float8).
        if not isinstance(x, torch.Tensor):
            super()._check_array(x, name, ndim, dtype)
            return
        if x.dim() != ndim:
            raise ValueError(
                f"{name} must be {ndim}-D. Received: {name}.shape={tuple(x.shape)}"
            )
        if x.dtype is not torch.float32 and x.dtype is not torch.float64:
            raise TypeError(
                f"{name} must be float32 or float64. Received: {name}.dtype={x.dtype}"
            )
        if dtype is not None and x.dtype != dtype:
            raise TypeError(
                f"{name} must have the same dtype as the input ({dtype}). Received: {name}.dtype={x.dtype}"
            )
        if x.numel() == 0:
            raise ValueError(
                f"{name} must not be empty. Received: {name}.shape={tuple(x.shape)}"
            )
        if self.check_finite and not self._all_finite(x):
            raise ValueError(f"{name} contains NaN or infinity.")

    def _all_finite(self, x: Array) -> bool:
        if isinstance(x, torch.Tensor):
            return True if x.is_meta else bool(torch.isfinite(x).all())
        return super()._all_finite(x)

    def _masked(self, w: Array, connections: Any) -> Array:
        if connections is None:
            return w
        return w * self._mask(connections, w.dtype)

    def _mask(self, connections: np.ndarray, dtype: Any) -> Array:
        # The table is a small host array validated by check_conv2d; keep its
        # device copy so a layer's every step does not pay a transfer.
        key = (connections.shape, connections.tobytes(), dtype)
        mask = self._mask_cache.get(key)
        if mask is None:
            if len(self._mask_cache) >= 32:
                self._mask_cache.clear()
            mask = torch.as_tensor(
                connections[:, :, None, None], dtype=dtype, device=self.torch_device
            )
            self._mask_cache[key] = mask
        return mask

    @staticmethod
    def _shape4(shape: Any, name: str) -> tuple[int, int, int, int]:
        try:
            out = tuple(int(s) for s in shape)
        except (TypeError, ValueError):
            out = ()
        if len(out) != 4 or min(out) < 1:
            raise ValueError(
                f"{name} must be 4 positive ints (n, c, h, w). Received: {name}={shape!r}"
            )
        return out  # type: ignore[return-value]

    @staticmethod
    def _t(x: Array) -> Array:
        # The reference's ``x.T`` reverses all axes; torch deprecates ``.T`` beyond 2-D.
        return x.t() if x.dim() <= 2 else x.permute(*range(x.dim() - 1, -1, -1))

    # ------------------------------------------------------------------ arrays
    def asarray(self, x: Any, dtype: Any = None) -> Array:
        """Return ``x`` as a contiguous tensor on the device (copying only if needed).

        NumPy arrays on the CPU device share memory with the result, like
        ``np.ascontiguousarray`` in the reference; read-only arrays are copied.
        """
        if isinstance(x, torch.Tensor):
            tdtype = x.dtype if dtype is None else self._tdtype(dtype)
            return x.to(device=self.torch_device, dtype=tdtype).contiguous()
        np_dtype = None if dtype is None else self._dtypes(dtype)[0]
        array = np.asarray(x, dtype=np_dtype)
        if array.dtype.hasobject:
            raise TypeError(
                f"x must be numeric, not an object array. Received: x of type {type(x).__name__}"
            )
        if not array.flags.c_contiguous or not array.flags.writeable:
            array = np.array(array, order="C", copy=True)
        try:
            tensor = torch.from_numpy(array)
        except TypeError as exc:
            raise TypeError(
                f"torch cannot hold arrays of dtype {array.dtype}. Received: x.dtype={array.dtype}"
            ) from exc
        if self.torch_device.type != "cpu":
            if tensor.dtype == torch.float64 and self.torch_device.type == "mps":
                raise TypeError(
                    "float64 is not supported on the mps device; use float32. Received: dtype=float64"
                )
            tensor = tensor.to(self.torch_device)
        return tensor

    def to_numpy(self, x: Array) -> np.ndarray:
        """Return ``x`` as a NumPy array on the host (a view for CPU tensors)."""
        if isinstance(x, torch.Tensor):
            return x.detach().cpu().numpy()
        return np.asarray(x)

    def alloc(self, shape: Sequence[int] | int, dtype: Any = np.float32) -> Array:
        """Return a zero-filled tensor on the device."""
        size = (
            (int(shape),)
            if isinstance(shape, numbers.Integral)
            else tuple(int(s) for s in shape)
        )
        return torch.zeros(size, dtype=self._tdtype(dtype), device=self.torch_device)

    # -------------------------------------------------------------- randomness
    def make_rng(self, seed: int) -> Any:
        """Return a ``torch.Generator`` on the device seeded with the int ``seed``."""
        if not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or seed < 0:
            raise ValueError(
                f"seed must be a non-negative int. Received: seed={seed!r}"
            )
        seed = int(seed)
        if seed >= 2**64:  # torch seeds are 64-bit; fold larger ones deterministically
            seed = int(np.random.SeedSequence(seed).generate_state(1, np.uint64)[0])
        gen = torch.Generator(device=self.torch_device)
        gen.manual_seed(seed)
        return gen

    def random_uniform(
        self, rng: Any, shape: Sequence[int], dtype: Any = np.float32
    ) -> Array:
        """Uniform samples in ``[0, 1)``."""
        self._check_rng(rng)
        return torch.rand(
            tuple(int(s) for s in shape),
            generator=rng,
            dtype=self._tdtype(dtype),
            device=self.torch_device,
        )

    def random_normal(
        self,
        rng: Any,
        shape: Sequence[int],
        dtype: Any = np.float32,
        scale: float = 1.0,
    ) -> Array:
        """Normal samples with mean 0 and standard deviation ``scale``."""
        self._check_rng(rng)
        out = torch.randn(
            tuple(int(s) for s in shape),
            generator=rng,
            dtype=self._tdtype(dtype),
            device=self.torch_device,
        )
        if scale != 1.0:
            out.mul_(scale)
        return out

    def bernoulli(self, p: Array, rng: Any) -> Array:
        """Binary samples (same dtype as ``p``) that are 1 with probability ``p``.

        ``u < p`` with ``u`` uniform, as in the reference (``p`` outside
        [0, 1] saturates instead of raising as ``torch.bernoulli`` would).
        """
        self._check_rng(rng)
        p = self._in(p)
        u = torch.rand(p.shape, generator=rng, dtype=p.dtype, device=p.device)
        return torch.lt(u, p, out=u)

    def dropout_mask(
        self, shape: Sequence[int], rate: float, rng: Any, dtype: Any = np.float32
    ) -> Array:
        """Inverted-dropout mask: 0 with probability ``rate``, else ``1 / (1 - rate)``."""
        u = self.random_uniform(rng, shape, dtype)
        keep = torch.ge(u, rate, out=u)
        return keep.div_(1.0 - rate)

    # ------------------------------------------------------------ dense algebra
    def gemm(
        self, a: Array, b: Array, *, trans1: bool = False, trans2: bool = False
    ) -> Array:
        """Matrix product ``op(a) @ op(b)`` with optional transposes."""
        a, b = self._in(a), self._in(b)
        if trans1:
            a = self._t(a)
        if trans2:
            b = self._t(b)
        return torch.matmul(a, b).contiguous()

    def affine(self, x: Array, W: Array, b: Array | None = None) -> Array:
        """``x @ W + b`` for dense layers (one fused ``addmm``)."""
        x, W, b = self._in(x), self._in(W), self._in(b)
        if b is not None and x.dim() == 2 and W.dim() == 2:
            return torch.addmm(b, x, W)
        y = torch.matmul(x, W)
        if b is not None:
            y += b
        return y

    # -------------------------------------------------------------- activations
    def sigmoid(self, x: Array) -> Array:
        """Logistic function."""
        return torch.sigmoid(self._in(x))

    def sigmoid_backward(self, y: Array, dy: Array) -> Array:
        """Gradient through a sigmoid given its output ``y``."""
        y, dy = self._in(y), self._in(dy)
        return dy * y * (1 - y)

    def tanh(self, x: Array) -> Array:
        """Hyperbolic tangent."""
        return torch.tanh(self._in(x))

    def tanh_backward(self, y: Array, dy: Array) -> Array:
        """Gradient through tanh given its output ``y``."""
        y, dy = self._in(y), self._in(dy)
        return dy * (1 - y * y)

    def relu(self, x: Array) -> Array:
        """Rectified linear unit."""
        return torch.relu(self._in(x))

    def relu_backward(self, y: Array, dy: Array) -> Array:
        """Gradient through ReLU given its output ``y`` (torch's fused kernel)."""
        y, dy = self._in(y), self._in(dy)
        return torch.ops.aten.threshold_backward(dy, y, 0)

    def softplus(self, x: Array) -> Array:
        """``log(1 + exp(x))`` without overflow."""
        x = self._in(x)
        return torch.logaddexp(x, torch.zeros((), dtype=x.dtype, device=x.device))

    def log_softmax(self, x: Array, axis: int = -1) -> Array:
        """Log of the softmax along ``axis``."""
        return torch.log_softmax(self._in(x), dim=axis)

    def softmax(self, x: Array, axis: int = -1) -> Array:
        """Softmax along ``axis``."""
        return torch.softmax(self._in(x), dim=axis)

    # ------------------------------------------------------------------- losses
    def _labels(self, labels: Any, n: int, n_classes: int) -> tuple[Array, bool]:
        """Labels as an int64 device tensor; the bool says whether the range is still to be checked.

        Host labels are checked here.  Labels already on an accelerator are
        checked together with the loss (one wait for the device) in check
        mode (``check_finite``); unchecked, an index out of range still fails
        loudly (a device-side assertion in ``gather``).
        """
        if isinstance(labels, torch.Tensor) and labels.device.type != "cpu":
            idx = labels.to(device=self.torch_device, dtype=torch.int64)
            deferred = self.check_finite
        else:
            host = np.asarray(
                self.to_numpy(labels) if isinstance(labels, torch.Tensor) else labels
            )
            if host.dtype.kind not in "iuf" and host.size:
                raise TypeError(
                    f"labels must be integers. Received: labels.dtype={host.dtype}"
                )
            host = host.astype(np.int64, copy=False)
            if host.size and (host.min() < 0 or host.max() >= n_classes):
                raise ValueError(
                    f"labels must be integers in [0, {n_classes}). "
                    f"Received: labels with min={host.min()}, max={host.max()}"
                )
            idx = torch.as_tensor(host, device=self.torch_device)
            deferred = False
        if tuple(idx.shape) != (n,):
            raise ValueError(
                f"labels must have shape ({n},). Received: labels.shape={tuple(idx.shape)}"
            )
        return idx, deferred

    def softmax_cross_entropy(
        self, logits: Array, labels: Array
    ) -> tuple[float, Array]:
        """Mean cross-entropy of softmax(``logits``) against integer ``labels``; ``(loss, dlogits)``.

        The gradient is already divided by the batch size.  Returning the
        loss as a Python float waits for the device once per call.
        """
        logits = self._in(logits)
        n, n_classes = int(logits.shape[0]), int(logits.shape[1])
        idx, deferred = self._labels(labels, n, n_classes)
        if (
            deferred
        ):  # device labels: gather safely, check the range in the same sync as the loss
            bad = ((idx < 0) | (idx >= n_classes)).any()
            idx = idx.clamp(0, n_classes - 1)
        idx = idx.view(n, 1)
        logp = torch.log_softmax(logits, dim=1)
        picked_sum = logp.gather(1, idx).sum()
        grad = logp.exp_()
        grad.scatter_add_(
            1, idx, torch.full((n, 1), -1.0, dtype=grad.dtype, device=grad.device)
        )
        grad.div_(n)
        if deferred:
            loss_value, bad_value = torch.stack(
                [picked_sum.to(torch.float64), bad.to(torch.float64)]
            ).tolist()
            if bad_value:
                raise ValueError(
                    f"labels must be integers in [0, {n_classes}). Received: labels outside that range"
                )
        else:
            loss_value = picked_sum.item()
        return -loss_value / n, grad

    def squared_loss(self, pred: Array, target: Array) -> tuple[float, Array]:
        """``0.5 * mean over samples of sum over outputs (pred - target)**2`` and its gradient."""
        pred = self._in(pred)
        target = self._in(target)
        n = int(pred.shape[0])
        diff = pred - target
        return 0.5 * torch.dot(
            diff.reshape(-1), diff.reshape(-1)
        ).item() / n, diff.div_(n)

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
        self._inplace(param, "param")
        self._inplace(velocity, "velocity")
        grad = self._in(grad)
        velocity.mul_(momentum).add_(grad, alpha=-lr)
        if nesterov:
            param.add_(velocity, alpha=momentum).add_(grad, alpha=-lr)
        else:
            param.add_(velocity)

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
        """In-place Adam step (Kingma & Ba 2015) at step ``t >= 1``.

        Runs torch's fused Adam kernel (one pass over the parameter) where
        available.  The reference adds ``eps`` to ``sqrt(v)`` before the bias
        correction while torch adds it after, so ``eps`` is rescaled by
        ``1 / sqrt(1 - beta2**t)`` to compute exactly the reference's step.
        """
        for arr, name in ((param, "param"), (m, "m"), (v, "v")):
            self._inplace(arr, name)
        if (
            type(t) is not int
            and (isinstance(t, bool) or not isinstance(t, numbers.Integral))
            or t < 1
        ):
            raise ValueError(f"t must be an int >= 1. Received: t={t!r}")
        grad = self._in(grad)
        bc2 = 1.0 - beta2**t
        if self._fused_adam and param.dtype == grad.dtype == m.dtype == v.dtype:
            if self._adam_step is None:
                self._adam_step = torch.zeros(
                    (), dtype=torch.float32, device=self.torch_device
                )
            if self._adam_step_value != float(t):
                self._adam_step.fill_(float(t))
                self._adam_step_value = float(t)
            try:
                torch._fused_adam_(
                    [param],
                    [grad],
                    [m],
                    [v],
                    [],
                    [self._adam_step],
                    lr=float(lr),
                    beta1=float(beta1),
                    beta2=float(beta2),
                    weight_decay=0.0,
                    eps=float(eps) / bc2**0.5,
                    amsgrad=False,
                    maximize=False,
                )
                return
            except (RuntimeError, TypeError, NotImplementedError):
                # A torch build or device without the fused kernel: use the
                # explicit form from now on (the kernel checks before writing).
                self._fused_adam = False
        m.mul_(beta1).add_(grad, alpha=1 - beta1)
        v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        step = lr * bc2**0.5 / (1 - beta1**t)
        param.addcdiv_(m, v.sqrt().add_(eps), value=-step)

    # ------------------------------------------------------------- convolution
    def _check_conv(
        self, x: Array, w: Array, b: Array | None, stride, padding, groups, connections
    ):
        """:meth:`check_conv2d`, remembered per combination of shapes, dtypes and arguments.

        The shape checks depend on nothing else, so a combination that passed
        once passes again; a layer calls the same convolution every batch, and
        on a launch-bound GPU step the Python checks would otherwise cost as
        much as the kernels.  Value checks (``check_finite``) and connection
        tables always take the full path.
        """
        key = None
        if connections is None and not self.check_finite:
            try:
                key = (
                    x.shape,
                    x.dtype,
                    w.shape,
                    w.dtype,
                    None if b is None else (b.shape, b.dtype),
                    stride,
                    padding,
                    groups,
                )
                hit = self._conv_memo.get(key)
            except TypeError:  # unhashable arguments (lists): no memo
                key = hit = None
            if hit is not None:
                return hit
        result = self.check_conv2d(x, w, b, stride, padding, groups, connections)
        if key is not None:
            if len(self._conv_memo) >= 256:
                self._conv_memo.clear()
            self._conv_memo[key] = result
        return result

    # The _conv_* helpers take already-validated, normalised arguments (a
    # connection table as a host bool array); loops such as crbm_cd_epoch
    # validate once and then call them per mini-batch.
    def _conv_fwd(
        self, x: Array, w: Array, b: Array | None, stride, padding, groups, connections
    ) -> Array:
        return F.conv2d(x, self._masked(w, connections), b, stride, padding, 1, groups)

    def _conv_bwd_input(
        self, dy: Array, w: Array, x_shape, stride, padding, groups, connections
    ) -> Array:
        x_dummy = dy.new_empty(1).expand(*x_shape)  # only its shape is read
        return torch.ops.aten.convolution_backward(
            dy,
            x_dummy,
            self._masked(w, connections),
            None,
            stride,
            padding,
            (1, 1),
            False,
            (0, 0),
            groups,
            (True, False, False),
        )[0].contiguous()

    def _conv_bwd_weights(
        self, dy: Array, x: Array, w_shape, stride, padding, groups, connections
    ):
        w_dummy = dy.new_empty(1).expand(*w_shape)  # only its shape is read
        _, dw, db = torch.ops.aten.convolution_backward(
            dy,
            x,
            w_dummy,
            [int(w_shape[0])],
            stride,
            padding,
            (1, 1),
            False,
            (0, 0),
            groups,
            (False, True, True),
        )
        if connections is not None:
            dw.mul_(self._mask(connections, dw.dtype))
        return dw, db

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
        """2-D cross-correlation of NCHW ``x`` with ``w`` (+ bias ``b``), torch's kernel (cuDNN on GPUs).

        ``connections`` is an optional 0/1 table ``(out_channels, in_channels // groups)``;
        it masks the weights.
        """
        x, w, b = self._in(x), self._in(w), self._in(b)
        stride, padding, groups, connections = self._check_conv(
            x, w, b, stride, padding, groups, connections
        )
        return self._conv_fwd(x, w, b, stride, padding, groups, connections)

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
        """Gradient of :meth:`conv2d` with respect to its input ``x`` (one ``convolution_backward``)."""
        dy, w = self._in(dy), self._in(w)
        n, c, h, wd = self._shape4(x_shape, "x_shape")
        x_like = torch.empty(
            (1, c, h, wd), dtype=w.dtype, device="meta"
        )  # shape-only stand-in for the checks
        stride, padding, groups, connections = self._check_conv(
            x_like, w, None, stride, padding, groups, connections
        )
        self._check_array(dy, "dy", 4, w.dtype)
        f = int(w.shape[0])
        oh, ow = conv2d_output_shape(
            (h, wd), (int(w.shape[2]), int(w.shape[3])), stride, padding
        )
        if tuple(dy.shape) != (n, f, oh, ow):
            raise ValueError(
                f"dy must have shape {(n, f, oh, ow)}. Received: dy.shape={tuple(dy.shape)}"
            )
        return self._conv_bwd_input(
            dy, w, (n, c, h, wd), stride, padding, groups, connections
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
        """Gradients of :meth:`conv2d` for ``w`` and ``b``: ``(dw, db)`` from one ``convolution_backward``.

        With a connection table, ``dw`` is zero where the table is 0.
        """
        dy, x = self._in(dy), self._in(x)
        f, cg, kh, kw = self._shape4(w_shape, "w_shape")
        w_like = torch.empty(
            (f, cg, kh, kw), dtype=x.dtype, device="meta"
        )  # shape-only stand-in for the checks
        stride, padding, groups, connections = self._check_conv(
            x, w_like, None, stride, padding, groups, connections
        )
        self._check_array(dy, "dy", 4, x.dtype)
        n, h, wd = int(x.shape[0]), int(x.shape[2]), int(x.shape[3])
        oh, ow = conv2d_output_shape((h, wd), (kh, kw), stride, padding)
        if tuple(dy.shape) != (n, f, oh, ow):
            raise ValueError(
                f"dy must have shape {(n, f, oh, ow)}. Received: dy.shape={tuple(dy.shape)}"
            )
        return self._conv_bwd_weights(
            dy, x, (f, cg, kh, kw), stride, padding, groups, connections
        )

    # ----------------------------------------------------------------- pooling
    def maxpool2d(self, x: Array, size: Any, stride: Any = None) -> tuple[Array, Array]:
        """Max pooling; returns ``(y, argmax)`` with the reference's flat ``row * width + col`` indices.

        torch's kernel keeps the first maximum of each window in row-major
        order, the reference's tie rule.
        """
        x = self._in(x)
        size, stride = self.check_pool2d(x, size, stride)
        return F.max_pool2d(x, size, stride, return_indices=True)

    def maxpool2d_backward(
        self, dy: Array, argmax: Array, x_shape: Sequence[int]
    ) -> Array:
        """Gradient of :meth:`maxpool2d`: add each ``dy`` at its argmax (overlapping windows accumulate)."""
        dy = self._in(dy)
        argmax = self._in(argmax)
        self._check_array(dy, "dy", 4)
        n, c, h, w = self._shape4(x_shape, "x_shape")
        if tuple(argmax.shape) != tuple(dy.shape) or tuple(dy.shape[:2]) != (n, c):
            raise ValueError(
                f"dy and argmax must have the same shape (n={n}, c={c}, ...). "
                f"Received: dy.shape={tuple(dy.shape)}, argmax.shape={tuple(argmax.shape)}"
            )
        if argmax.dtype != torch.int64:
            raise TypeError(
                f"argmax must be int64 (as maxpool2d returns it). Received: argmax.dtype={argmax.dtype}"
            )
        if self.check_finite:
            # A value check like the finiteness checks: it reads the whole array
            # (and waits for an accelerator); the indices come from maxpool2d,
            # so networks skip it with check_finite=False.  Unchecked, an index
            # out of range still fails loudly inside scatter_add_.
            if argmax.numel() and (int(argmax.min()) < 0 or int(argmax.max()) >= h * w):
                raise ValueError(
                    f"argmax holds indices outside the input plane of {h}x{w}."
                )
        dx = torch.zeros((n * c, h * w), dtype=dy.dtype, device=dy.device)
        dx.scatter_add_(1, argmax.reshape(n * c, -1), dy.reshape(n * c, -1))
        return dx.view(n, c, h, w)

    def meanpool2d(self, x: Array, size: Any, stride: Any = None) -> Array:
        """Mean pooling over ``size`` windows."""
        x = self._in(x)
        size, stride = self.check_pool2d(x, size, stride)
        return F.avg_pool2d(x, size, stride)

    def meanpool2d_backward(
        self, dy: Array, x_shape: Sequence[int], size: Any, stride: Any = None
    ) -> Array:
        """Gradient of :meth:`meanpool2d` (torch's ``avg_pool2d_backward``)."""
        dy = self._in(dy)
        self._check_array(dy, "dy", 4)
        size = normalize_pair(size, "size")
        stride = size if stride is None else normalize_pair(stride, "stride")
        n, c, h, w = self._shape4(x_shape, "x_shape")
        if size[0] > h or size[1] > w:
            raise ValueError(f"pool size {size} is larger than the input {(h, w)}.")
        oh, ow = pool2d_output_shape((h, w), size, stride)
        if tuple(dy.shape) != (n, c, oh, ow):
            raise ValueError(
                f"dy must have shape {(n, c, oh, ow)}. Received: dy.shape={tuple(dy.shape)}"
            )
        x_like = dy.new_empty((n, c, h, w))  # only its shape and layout are read
        return torch.ops.aten.avg_pool2d_backward(
            dy, x_like, size, stride, (0, 0), False, True, None
        )

    # --------------------------------------------------------------------- RBM
    @staticmethod
    def _check_visible(visible: str) -> None:
        if visible not in ("bernoulli", "gaussian"):
            raise ValueError(
                f"visible must be 'bernoulli' or 'gaussian'. Received: visible={visible!r}"
            )

    def rbm_hidden_probs(self, v: Array, W: Array, bh: Array) -> Array:
        """``sigmoid(v @ W.T + bh)``; ``W`` is ``(n_hidden, n_visible)``."""
        v, W, bh = self._in(v), self._in(W), self._in(bh)
        return torch.addmm(bh, v, W.t()).sigmoid_()

    def rbm_visible_means(self, h: Array, W: Array, bv: Array, visible: str) -> Array:
        """Mean of the visible units given ``h``: sigmoid (Bernoulli) or linear (Gaussian, unit variance)."""
        self._check_visible(visible)
        h, W, bv = self._in(h), self._in(W), self._in(bv)
        act = torch.addmm(bv, h, W)
        return act.sigmoid_() if visible == "bernoulli" else act

    def rbm_sample_visible(
        self, h: Array, W: Array, bv: Array, visible: str, rng: Any
    ) -> Array:
        """Sample the visible units given ``h``."""
        self._check_rng(rng)
        mean = self.rbm_visible_means(h, W, bv, visible)
        if visible == "bernoulli":
            return self.bernoulli(mean, rng)
        return mean.add_(
            torch.randn(mean.shape, generator=rng, dtype=mean.dtype, device=mean.device)
        )

    def rbm_free_energy(
        self, v: Array, W: Array, bh: Array, bv: Array, visible: str
    ) -> Array:
        """Free energy ``F(v)`` per row, so that ``p(v) = exp(-F(v)) / Z``."""
        self._check_visible(visible)
        v, W, bh, bv = self._in(v), self._in(W), self._in(bh), self._in(bv)
        hidden = self.softplus(torch.addmm(bh, v, W.t())).sum(dim=1)
        if visible == "bernoulli":
            return torch.mv(v, bv).neg_().sub_(hidden)
        return 0.5 * (v - bv).square_().sum(dim=1) - hidden

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
        """Run ``steps`` full steps of block Gibbs sampling v → h → v on the device; return the visible samples."""
        self._check_visible(visible)
        self._check_rng(rng)
        if (
            isinstance(steps, bool)
            or not isinstance(steps, numbers.Integral)
            or steps < 0
        ):
            raise ValueError(f"steps must be an int >= 0. Received: steps={steps!r}")
        v, W, bh, bv = self._in(v), self._in(W), self._in(bh), self._in(bv)
        for _ in range(int(steps)):
            h = self.bernoulli(self.rbm_hidden_probs(v, W, bh), rng)
            v = self.rbm_sample_visible(h, W, bv, visible, rng)
        return v

    def check_cd_epoch(
        self,
        X: Any,
        W: Array,
        bh: Array,
        bv: Array,
        dW: Array,
        dbh: Array,
        dbv: Array,
        *,
        chain: Array | None = None,
        **kwargs: Any,
    ) -> tuple[int, int, bool]:
        """The reference's checks, plus: the arrays updated in place are tensors on the device."""
        for arr, name in (
            (W, "W"),
            (bh, "bh"),
            (bv, "bv"),
            (dW, "dW"),
            (dbh, "dbh"),
            (dbv, "dbv"),
        ):
            self._inplace(arr, name)
        if chain is not None:
            self._inplace(chain, "chain")
        return super().check_cd_epoch(X, W, bh, bv, dW, dbh, dbv, chain=chain, **kwargs)

    def check_crbm_cd(
        self,
        X: Any,
        W: Array,
        bh: Array,
        bv: Array,
        dW: Array,
        dbh: Array,
        dbv: Array,
        **kwargs: Any,
    ) -> tuple[int, int, tuple[int, int]]:
        """The reference's checks (a host ``X`` through a shape-only stand-in), plus in-place tensors."""
        for arr, name in (
            (W, "W"),
            (bh, "bh"),
            (bv, "bv"),
            (dW, "dW"),
            (dbh, "dbh"),
            (dbv, "dbv"),
        ):
            self._inplace(arr, name)
        if not isinstance(X, torch.Tensor):
            if self.check_finite and not np.isfinite(X).all():
                raise ValueError("X contains NaN or infinity.")
            X = torch.empty(
                tuple(X.shape),
                dtype=self._tdtype(np.asarray(X[:0]).dtype),
                device="meta",
            )
        return super().check_crbm_cd(X, W, bh, bv, dW, dbh, dbv, **kwargs)

    def take_rows(self, X: Any, start: int, stop: int, dtype: Any) -> Array:
        """Rows ``start:stop`` of a host array or tensor, moved to the device in ``dtype`` (once per batch)."""
        batch = X[start:stop]
        if isinstance(batch, torch.Tensor):
            return batch.to(device=self.torch_device, dtype=self._tdtype(dtype))
        return self.asarray(batch, dtype=dtype)

    def astype(self, x: Array, dtype: Any) -> Array:
        """``x`` as a tensor of ``dtype`` on the device."""
        return self._in(x).to(self._tdtype(dtype))

    def round_scalar(self, value: float, dtype: Any) -> float:
        """``value`` rounded to ``dtype`` as a Python float (torch takes no NumPy scalars)."""
        return float(self._dtypes(dtype)[0].type(value))

    def repeat_rows(self, x: Array, repeats: int) -> Array:
        """Each row repeated ``repeats`` times in place (row ``i * repeats + k`` is ``x[i]``)."""
        x = self._in(x)
        return x if repeats == 1 else x.repeat_interleave(int(repeats), dim=0)

    def logsumexp_rows(self, x: Array) -> Array:
        """``log(sum(exp(x), axis=1))`` as an ``(n, 1)`` column (torch's stable kernel)."""
        return torch.logsumexp(self._in(x), dim=1, keepdim=True)

    def exp(self, x: Array) -> Array:
        """Element-wise exponential."""
        return torch.exp(self._in(x))

    def log(self, x: Array) -> Array:
        """Element-wise natural logarithm."""
        return torch.log(self._in(x))

    def check_sbn_epoch(
        self,
        X: Any,
        Wg: Sequence[Array],
        bg: Sequence[Array],
        Wr: Sequence[Array],
        br: Sequence[Array],
        **kwargs: Any,
    ) -> tuple[float, int, int]:
        """The reference's checks (a host ``X`` through a shape-only stand-in), plus in-place device tensors."""
        for name, arrays in (("Wg", Wg), ("bg", bg), ("Wr", Wr), ("br", br)):
            if isinstance(arrays, (list, tuple)):
                for i, a in enumerate(arrays):
                    self._inplace(a, f"{name}[{i}]")
        if not isinstance(X, torch.Tensor):
            if self.check_finite and not np.isfinite(X).all():
                raise ValueError("X contains NaN or infinity.")
            X = torch.empty(
                tuple(np.shape(X)),
                dtype=self._tdtype(np.asarray(X[:0]).dtype),
                device="meta",
            )
        return super().check_sbn_epoch(X, Wg, bg, Wr, br, **kwargs)

    # ------------------------------------------------------- convolutional RBM
    def _crbm_blocks(self, x: Array, pool: tuple[int, int], fill: float) -> Array:
        """``(n, c, H, W)`` -> ``(n, c, PH, PW, ph * pw)``, padding partial blocks with ``fill``."""
        n, c, h, w = (int(s) for s in x.shape)
        PH, PW = self.crbm_pool_shape((h, w), pool)
        pad_h, pad_w = PH * pool[0] - h, PW * pool[1] - w
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), value=fill)
        return (
            x.reshape(n, c, PH, pool[0], PW, pool[1])
            .permute(0, 1, 2, 4, 3, 5)
            .reshape(n, c, PH, PW, -1)
        )

    def _crbm_unblock(
        self, blocks: Array, hw: tuple[int, int], pool: tuple[int, int]
    ) -> Array:
        """Inverse of :meth:`_crbm_blocks` (drops the padding)."""
        n, c, PH, PW, _ = blocks.shape
        x = blocks.reshape(n, c, PH, PW, pool[0], pool[1]).permute(0, 1, 2, 4, 3, 5)
        x = x.reshape(n, c, PH * pool[0], PW * pool[1])
        return x[:, :, : hw[0], : hw[1]].contiguous()

    def _crbm_log_partition(self, blocks: Array) -> tuple[Array, Array, Array]:
        """``(peak, e, on)`` for blocks of logits: ``e = exp(I - peak)``, ``on = sum(e)``, off state included in peak."""
        peak = blocks.amax(dim=-1).clamp_(min=0)
        e = (blocks - peak.unsqueeze(-1)).exp_()
        return peak, e, e.sum(dim=-1)

    def _crbm_probs(self, pre: Array, pool: tuple[int, int]) -> tuple[Array, Array]:
        peak, e, on = self._crbm_log_partition(
            self._crbm_blocks(pre, pool, float("-inf"))
        )
        denom = peak.neg_().exp_().add_(on)
        h_probs = self._crbm_unblock(
            e.div_(denom.unsqueeze(-1)), tuple(pre.shape[2:]), pool
        )
        return h_probs, on.div_(denom)

    def _crbm_sample(self, h_probs: Array, pool: tuple[int, int], rng: Any) -> Array:
        n, f, h, w = (int(s) for s in h_probs.shape)
        PH, PW = self.crbm_pool_shape((h, w), pool)
        u = self.random_uniform(
            rng, (n, f, PH, PW), h_probs.dtype
        )  # the reference's one draw per block
        cum = torch.cumsum(self._crbm_blocks(h_probs, pool, 0.0), dim=-1)
        chosen = (cum <= u.unsqueeze(-1)).sum(dim=-1, keepdim=True)
        slots = torch.arange(pool[0] * pool[1], device=h_probs.device)
        return self._crbm_unblock((slots == chosen).to(h_probs.dtype), (h, w), pool)

    def crbm_pool_probs(self, pre: Array, pool_size: Any) -> tuple[Array, Array]:
        """Probabilistic max-pooling posteriors ``(h_probs, p_probs)`` from the detection pre-activations."""
        pre = self._in(pre)
        return self._crbm_probs(pre, self.check_crbm_pool(pre, "pre", pool_size))

    def crbm_sample_hidden(self, h_probs: Array, pool_size: Any, rng: Any) -> Array:
        """Sample the detection units (at most one on per block); one uniform per block, as the reference draws."""
        h_probs = self._in(h_probs)
        pool = self.check_crbm_pool(h_probs, "h_probs", pool_size)
        self._check_rng(rng)
        return self._crbm_sample(h_probs, pool, rng)

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
        """Mean of the visible units given detection states ``h`` (transposed convolution + per-channel bias)."""
        self._check_crbm_visible(visible)
        bv = self._in(bv)
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
        act += bv.view(1, -1, 1, 1)
        return act.sigmoid_() if visible == "bernoulli" else act

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
        """Free energy ``F(v)`` per sample of the convolutional RBM with probabilistic max-pooling."""
        self._check_crbm_visible(visible)
        v, bv = self._in(v), self._in(bv)
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
        peak, _, on = self._crbm_log_partition(
            self._crbm_blocks(pre, pool, float("-inf"))
        )
        log_z = peak + torch.log(torch.exp(-peak) + on)
        hidden = log_z.reshape(log_z.shape[0], -1).sum(dim=1)
        if visible == "bernoulli":
            return -(v.sum(dim=(2, 3)) @ bv) - hidden
        return 0.5 * (v - bv.view(1, -1, 1, 1)).square().sum(dim=(1, 2, 3)) - hidden


install_fallbacks(TorchOps)
