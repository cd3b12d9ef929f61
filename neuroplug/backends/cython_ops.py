"""``CythonOps``: the default CPU backend, running the compiled kernels of ``neuroplug_core``.

This module is the thin Python wrapper of DESIGN rule 4: it validates shapes,
dtypes and contiguity (with the checks inherited from :class:`neuroplug.ops.Ops`)
and then calls the kernels, which check nothing.  Whatever it does not
override runs the NumPy reference.

Kernels
-------
float32 convolutions run a packed GEMM with AVX-512 or AVX2+FMA micro-kernels
chosen at run time, or, for stride 1 where they measured faster (first
layers, 3x3 layers, planes up to 8 wide), AVX2 sliding-window kernels that
pack nothing (see :mod:`neuroplug_core.conv`), or, for 3x3 and 5x5 layers
with stride 1 and 16 or more channels in and out, Winograd F(2x2, 3x3) and
F(2x2, 5x5) (all three products where they measured faster,
:mod:`neuroplug_core.winograd`); float64, and float32 on other CPUs, run
im2col + SciPy's BLAS.  Max pooling has AVX-512 and AVX2
kernels and a portable branch-free loop.  Which kernels run is part of the
backend's configuration: the ``simd``, ``sliding``, ``winograd``, ``sparse``
and ``small_batch_max`` options of :class:`CythonOps` (see
:meth:`CythonOps.kernels` to change them for a block), never process-global
state.

Threads
-------
Kernels run with the GIL released, in OpenMP loops over the batch (or over
``(sample, channel)`` planes), on ``effective_n_threads(ops.n_threads)``
threads: the ``n_threads`` given to the backend, capped by OpenMP's limit
(``OMP_NUM_THREADS``, ``threadpoolctl.threadpool_limits``); calls too small
to gain from threads run on one.  Where an OpenMP thread calls BLAS, BLAS is
held at one thread for the duration of the call so that BLAS threads never
nest inside OpenMP threads.  Convolution, pooling, the element-wise ops and
:meth:`CythonOps.gemm` cut their work by shape only, never by thread count,
so their results are bit-identical for any thread count.  The RBM kernels
(``rbm_*``, and the DBN and AIS loops on them) cut the weights into one
slice per thread and sum per-thread partial products, and BLAS rounds a
slice's float32 sums by its width: their last bits depend on the thread
count (a fit is still reproducible for a given count and agrees with other
counts to rounding).

Workspaces
----------
A network calls the same convolutions every batch, and fresh scratch memory
costs page faults, so the packing buffers, padded input copies and partial
sums live on the ``CythonOps`` instance (one set per Python thread, grown to
the largest size asked for, shared by all layers) and are reused from call
to call.  :meth:`CythonOps.release_workspaces` frees them.  Results are
always fresh arrays.
"""

from __future__ import annotations

import contextlib
import numbers
import os
import threading
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from ..ops import (
    Ops,
    check_shape4,
    conv2d_output_shape,
    normalize_pair,
    pool2d_output_shape,
)

try:  # The compiled core may be missing in a source checkout that was never built.
    from neuroplug_core._openmp import effective_n_threads

    from neuroplug_core import conv as _conv
    from neuroplug_core import elementwise as _elementwise
    from neuroplug_core import gemm as _gemm
    from neuroplug_core import optim as _optim
    from neuroplug_core import pool as _pool
    from neuroplug_core import winograd as _winograd
except ImportError as exc:  # pragma: no cover - exercised only without a build
    _IMPORT_ERROR: ImportError | None = exc
else:
    _IMPORT_ERROR = None

__all__ = ["CythonOps"]

Array = Any

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
# Below these amounts of work per thread a call uses fewer threads (see CythonOps._threads).
_MIN_FLOPS_PER_THREAD = 1e6
_MIN_ELEMENTS_PER_THREAD = 65536
_MIN_SUM_ELEMENTS_PER_THREAD = (
    262144  # plain sums and finiteness checks: too quick to split below
)
_EMPTY = {
    dt: np.zeros(0, dtype=dt) for dt in _FLOAT_DTYPES
}  # "no bias" for the kernels

# Kernel choices (CythonOps options): their names, and the environment variables
# that give the default of an option left unset.
_MODES = {"never": 0, "auto": 1, "always": 2}
_SIMD_LEVELS = {"blas": 0, "avx2": 1, "avx512": 2}
_SIMD_ALIASES = {"0": "blas", "none": "blas", "portable": "blas"}
_OPTION_ENV = {
    "simd": "NEUROPLUG_SIMD",
    "sliding": "NEUROPLUG_SLIDING",
    "winograd": "NEUROPLUG_WINOGRAD",
    "sparse": "NEUROPLUG_SPARSE",
    "small_batch_max": "NEUROPLUG_SMALL_BATCH_MAX",
}
KERNEL_OPTIONS = tuple(_OPTION_ENV)


def _check_kernel_option(name: str, value: Any) -> Any:
    """``value`` of kernel option ``name``, normalised; ``ValueError`` naming the choices otherwise."""
    if name == "simd":
        if isinstance(value, str):
            value = _SIMD_ALIASES.get(value.strip().lower(), value.strip().lower())
        if value != "auto" and value not in _SIMD_LEVELS:
            raise ValueError(
                f"simd must be one of {['auto', *_SIMD_LEVELS]}. Received: simd={value!r}"
            )
        return value
    if name == "small_batch_max":
        if isinstance(value, str):
            try:
                value = int(value)
            except ValueError:
                pass
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, numbers.Integral)
            or value < 0
        ):
            raise ValueError(
                f"small_batch_max must be None (the CPU's default) or an int >= 0. "
                f"Received: small_batch_max={value!r}"
            )
        return None if value is None else int(value)
    if isinstance(value, str):
        value = value.strip().lower()
    if value not in _MODES:
        raise ValueError(
            f"{name} must be one of {list(_MODES)}. Received: {name}={value!r}"
        )
    return value


def _default_kernel_option(name: str) -> Any:
    """The default of an unset option: its environment variable when set and valid, else ``"auto"``/``None``."""
    raw = os.environ.get(_OPTION_ENV[name], "").strip()
    if raw:
        try:
            return _check_kernel_option(name, raw)
        except ValueError:
            warnings.warn(
                f"Ignoring {_OPTION_ENV[name]}={raw!r}: not a valid value of the {name!r} kernel option.",
                RuntimeWarning,
                stacklevel=4,
            )
    return None if name == "small_batch_max" else "auto"


# ---------------------------------------------------------------------------
# BLAS held at one thread while OpenMP threads call it
# ---------------------------------------------------------------------------
class _SingleThreadedBlas:
    """Re-entrant, thread-safe context manager setting every loaded BLAS to one thread.

    The first entrant (over all Python threads) saves the BLAS thread counts
    and sets them to 1; the last one out restores them, so concurrent calls
    cannot leave BLAS at the wrong count.  The threadpoolctl controller is
    built once (inspecting the loaded libraries is slow) after SciPy's BLAS,
    the one the kernels call, has been loaded by ``neuroplug_core``.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._saved: list[tuple[Any, int]] = []
        self._libs: list[Any] | None = None

    def _blas_libs(self) -> list[Any]:
        if self._libs is None:
            from threadpoolctl import ThreadpoolController

            self._libs = [
                lc
                for lc in ThreadpoolController().lib_controllers
                if lc.user_api == "blas"
            ]
        return self._libs

    def __enter__(self) -> None:
        with self._lock:
            if self._depth == 0:
                saved = []
                for lib in self._blas_libs():
                    n = lib.get_num_threads()
                    if n is not None and n > 1:
                        lib.set_num_threads(1)
                        saved.append((lib, n))
                self._saved = saved
            self._depth += 1

    def __exit__(self, *exc_info: Any) -> None:
        with self._lock:
            self._depth -= 1
            if self._depth == 0:
                for lib, n in self._saved:
                    lib.set_num_threads(n)
                self._saved = []


_single_threaded_blas = _SingleThreadedBlas()


def _blas_guard(uses_blas: bool) -> Any:
    """BLAS held at one thread around a kernel call that uses BLAS (its plan says so)."""
    return _single_threaded_blas if uses_blas else contextlib.nullcontext()


# ---------------------------------------------------------------------------
# Argument helpers
# ---------------------------------------------------------------------------
def _bit_generator(rng: Any) -> np.random.BitGenerator:
    """The ``BitGenerator`` behind ``rng``, which the sampling kernels draw from directly."""
    bit_generator = getattr(rng, "bit_generator", None)
    if not isinstance(bit_generator, np.random.BitGenerator):
        raise TypeError(
            "rng must be a numpy.random.Generator (from ops.make_rng). "
            f"Received: rng of type {type(rng).__name__}"
        )
    return bit_generator


def _float_dtype(x: Any) -> np.dtype:
    """The native float dtype (float32/float64) of an array already checked by ``_check_array``."""
    itemsize = (
        x.dtype.itemsize
        if isinstance(x, np.ndarray)
        else np.dtype(str(x.dtype).replace("torch.", "")).itemsize
    )
    return _FLOAT_DTYPES[0] if itemsize == 4 else _FLOAT_DTYPES[1]


class CythonOps(Ops):
    """The compiled CPU backend (registered as ``"cpu"``).

    Convolution, pooling and the RBM/SBN loops run in ``neuroplug_core``
    (GIL released, OpenMP); a few element-wise ops are faster NumPy; the
    rest is inherited from the NumPy reference :class:`~neuroplug.ops.Ops`.

    Parameters
    ----------
    device : str, optional
        ``None`` or ``"cpu"``.
    n_threads : int, optional
        Thread limit of the kernels; ``None`` uses OpenMP's current limit
        (``OMP_NUM_THREADS`` / ``threadpoolctl``), a negative value counts
        back from the number of CPUs (``-1``: all).  Never above OpenMP's limit.
    check_finite : bool, default=True
        Refuse NaN and infinity in conv/pool inputs.
    simd : {"auto", "avx512", "avx2", "blas"}, optional
        Widest float32 SIMD kernels of convolution and max pooling; ``"auto"``
        the widest this CPU has, ``"blas"`` im2col + BLAS (and the portable
        pooling loop).  A level the CPU lacks is capped at what it has.
    sliding, winograd, sparse : {"auto", "always", "never"}, optional
        Where the sliding-window convolutions, the Winograd convolutions, and
        the sparse products of float32 CD epochs run: ``"auto"`` where they
        measured faster, or always (wherever they apply) or never.
    small_batch_max : int, optional
        Largest RBM batch that the unpacked float32 products handle (0: off);
        ``None`` the CPU's default (32 with AVX2 + FMA, else off).

    Every kernel option left unset takes its default from an environment
    variable when set (``NEUROPLUG_SIMD``, ``NEUROPLUG_SLIDING``,
    ``NEUROPLUG_WINOGRAD``, ``NEUROPLUG_SPARSE``, ``NEUROPLUG_SMALL_BATCH_MAX``)
    when the backend is made, and keeps it: the options are part of this
    object (they pickle with it and travel to Dask workers), and no setting
    is process-global.  :meth:`kernels` changes them for a block.  The
    choices change only the speed, never the results beyond rounding.
    """

    name = "cpu"

    def __init__(
        self,
        device: str | None = None,
        *,
        n_threads: int | None = None,
        check_finite: bool = True,
        simd: str | None = None,
        sliding: str | None = None,
        winograd: str | None = None,
        sparse: str | None = None,
        small_batch_max: int | None = None,
    ) -> None:
        if _IMPORT_ERROR is not None:
            raise ImportError(
                "The 'cpu' backend needs the compiled neuroplug_core extension, which failed to import "
                f"({_IMPORT_ERROR}). Build it with `python setup.py build_ext --inplace` or reinstall "
                "neuroplug, or use backend='numpy'."
            ) from _IMPORT_ERROR
        super().__init__(device, n_threads=n_threads, check_finite=check_finite)
        if n_threads is not None:
            effective_n_threads(
                n_threads
            )  # reject n_threads=0 (or a non-int) now, not at the first call
        given = {
            "simd": simd,
            "sliding": sliding,
            "winograd": winograd,
            "sparse": sparse,
            "small_batch_max": small_batch_max,
        }
        for option, value in given.items():
            if value is None:
                value = _default_kernel_option(option)
            setattr(
                self,
                option,
                None if value is None else _check_kernel_option(option, value),
            )
        self._local = threading.local()

    def __repr__(self) -> str:
        options = ", ".join(f"{k}={getattr(self, k)!r}" for k in KERNEL_OPTIONS)
        return f"{type(self).__name__}(device={self.device!r}, n_threads={self.n_threads!r}, {options})"

    @property
    def kernel_options(self) -> dict[str, Any]:
        """The kernel choices of this backend, as keyword arguments of :class:`CythonOps`."""
        return {k: getattr(self, k) for k in KERNEL_OPTIONS}

    @contextlib.contextmanager
    def kernels(self, **options: Any) -> Iterator[CythonOps]:
        """Run a block with some kernel options of this backend changed, then restore them.

        For example ``with ops.kernels(winograd="never"): ...``.  The change is
        to this object only (another backend, or a copy sent to a worker, keeps
        its own options); calls made from other threads on the same object
        during the block see it too.
        """
        unknown = sorted(set(options) - set(KERNEL_OPTIONS))
        if unknown:
            raise TypeError(
                f"Unknown kernel options {unknown}; expected some of {list(KERNEL_OPTIONS)}."
            )
        checked = {k: _check_kernel_option(k, v) for k, v in options.items()}
        previous = self.kernel_options
        try:
            for k, v in checked.items():
                setattr(self, k, v)
            yield self
        finally:
            for k in checked:
                setattr(self, k, previous[k])

    def __setstate__(self, state: dict[str, Any]) -> None:
        # A backend pickled before the options existed gets their defaults.
        for option in KERNEL_OPTIONS:
            state.setdefault(option, None if option == "small_batch_max" else "auto")
        self.__dict__.update(state)
        self._local = threading.local()

    # Kernel levels for one call, from the options (capped at what the CPU has).
    def _conv_isa(self) -> int:
        top = len(_conv.available_isas()) - 1
        return top if self.simd == "auto" else min(_SIMD_LEVELS[self.simd], top)

    def _pool_isa(self) -> int:
        top = len(_pool.available_isas()) - 1
        return top if self.simd == "auto" else min(_SIMD_LEVELS[self.simd], top)

    def _rbm_options(self) -> dict[str, int]:
        smax = -1 if self.small_batch_max is None else self.small_batch_max
        return {"small_batch_max": smax, "sparse_mode": _MODES[self.sparse]}

    # The per-thread workspaces are a cache: never pickled, rebuilt on demand.
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_local", None)
        return state

    # ------------------------------------------------------------- plumbing
    def _threads(self, work: float | None = None, per_thread: float = 1.0) -> int:
        """Number of OpenMP threads for a call doing ``work`` units (``per_thread`` units or more each).

        Tiny calls run on one thread: waking and synchronising threads costs
        more than it saves (a lot more on a busy machine).  Results never
        depend on the thread count, so this changes only the speed.
        """
        nt = effective_n_threads(self.n_threads)
        if work is not None and nt > 1:
            nt = max(1, min(nt, int(work // per_thread)))
        return nt

    def _scratch(self, key: str, size: int, dtype: np.dtype) -> np.ndarray:
        """Return ``size`` elements of reusable scratch memory for this Python thread.

        One buffer per ``(key, dtype)``, grown to the largest size asked for,
        so a network's layers share it and a training loop stops allocating
        (and page-faulting) after its first batch.
        """
        cache = getattr(self._local, "buffers", None)
        if cache is None:
            cache = self._local.buffers = {}
        buf = cache.get((key, dtype))
        if buf is None or buf.shape[0] < size:
            buf = np.empty(max(int(size), 1), dtype=dtype)
            cache[(key, dtype)] = buf
        return buf[:size]

    def release_workspaces(self) -> None:
        """Free the scratch buffers this Python thread cached (they are rebuilt when needed)."""
        self._local.buffers = {}

    def _contiguous(self, x: Array, dtype: np.dtype) -> np.ndarray:
        return np.ascontiguousarray(self.to_numpy(x), dtype=dtype)

    def _check_array(self, x: Any, name: str, ndim: int, dtype: Any = None) -> None:
        # The reference's checks, minus its dtype-to-string round trips (a
        # third of a small convolution's Python overhead) for the common case
        # of a float32/float64 NumPy array; everything else goes to the reference.
        if type(x) is not np.ndarray or x.dtype not in _FLOAT_DTYPES or x.ndim != ndim:
            return super()._check_array(x, name, ndim, dtype)
        if dtype is not None and x.dtype != dtype:
            raise TypeError(
                f"{name} must have the same dtype as the input ({dtype}). Received: {name}.dtype={x.dtype}"
            )
        if x.size == 0:
            raise ValueError(
                f"{name} must not be empty. Received: {name}.shape={x.shape}"
            )
        if self.check_finite and not self._all_finite(x):
            raise ValueError(f"{name} contains NaN or infinity.")

    def _all_finite(self, x: Array) -> bool:
        # One pass over the exponent bits, without the temporary boolean array
        # (and its page faults) that np.isfinite(x).all() allocates.
        if (
            isinstance(x, np.ndarray)
            and x.dtype in _FLOAT_DTYPES
            and x.flags.c_contiguous
        ):
            return bool(
                _conv.all_finite(
                    x.reshape(-1), self._threads(x.size, _MIN_SUM_ELEMENTS_PER_THREAD)
                )
            )
        return super()._all_finite(x)

    # ====================================================================
    # Convolution and pooling (neuroplug_core.conv / neuroplug_core.pool)
    # ====================================================================
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
    ) -> np.ndarray:
        """2-D cross-correlation of NCHW ``x`` with ``w`` (+ bias ``b``); see :meth:`Ops.conv2d`."""
        stride, padding, groups, connections = self.check_conv2d(
            x, w, b, stride, padding, groups, connections
        )
        dt = _float_dtype(x)
        x = self._contiguous(x, dt)
        w = self._weights(w, connections, dt)
        b = _EMPTY[dt] if b is None else self._contiguous(b, dt)
        n, c, h, wd = x.shape
        f, _, kh, kw = w.shape
        oh, ow = conv2d_output_shape((h, wd), (kh, kw), stride, padding)
        nt = self._threads(
            2.0 * n * f * oh * ow * c // groups * kh * kw, _MIN_FLOPS_PER_THREAD
        )
        y = np.empty((n, f, oh, ow), dtype=dt)
        if self._winograd(0, dt, n, c, h, wd, f, kh, kw, stride, padding, groups):
            work = self._scratch(
                "conv", _winograd.workspace(0, n, c, h, wd, f, kh, *padding, nt), dt
            )
            _winograd.forward(x, w, b, y, *padding, nt, work)
            return y
        size, _, uses_blas = _conv.workspace(
            0,
            dt == _FLOAT_DTYPES[0],
            n,
            c,
            h,
            wd,
            f,
            kh,
            kw,
            *stride,
            *padding,
            groups,
            nt,
            *self._conv_options(),
        )
        work = self._scratch("conv", size, dt)
        with _blas_guard(uses_blas):
            _conv.conv2d_forward(
                x, w, b, y, *stride, *padding, groups, nt, work, *self._conv_options()
            )
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
    ) -> np.ndarray:
        """Gradient of :meth:`conv2d` with respect to its input ``x``."""
        n, c, h, wd = check_shape4(x_shape, "x_shape")
        self._check_array(w, "w", 4)
        dt = _float_dtype(w)
        x_like = np.zeros((1, c, h, wd), dtype=w.dtype)
        stride, padding, groups, connections = self.check_conv2d(
            x_like, w, None, stride, padding, groups, connections
        )
        self._check_array(dy, "dy", 4, w.dtype)
        f, _, kh, kw = (int(s) for s in w.shape)
        oh, ow = conv2d_output_shape((h, wd), (kh, kw), stride, padding)
        if tuple(dy.shape) != (n, f, oh, ow):
            raise ValueError(
                f"dy must have shape {(n, f, oh, ow)}. Received: dy.shape={tuple(dy.shape)}"
            )
        dy = self._contiguous(dy, dt)
        w = self._weights(w, connections, dt)
        nt = self._threads(
            2.0 * n * f * oh * ow * c // groups * kh * kw, _MIN_FLOPS_PER_THREAD
        )
        dx = np.empty((n, c, h, wd), dtype=dt)
        if self._winograd(1, dt, n, c, h, wd, f, kh, kw, stride, padding, groups):
            work = self._scratch(
                "conv", _winograd.workspace(1, n, c, h, wd, f, kh, *padding, nt), dt
            )
            _winograd.backward_input(dy, w, dx, *padding, nt, work)
            return dx
        size, _, uses_blas = _conv.workspace(
            1,
            dt == _FLOAT_DTYPES[0],
            n,
            c,
            h,
            wd,
            f,
            kh,
            kw,
            *stride,
            *padding,
            groups,
            nt,
            *self._conv_options(),
        )
        work = self._scratch("conv", size, dt)
        with _blas_guard(uses_blas):
            _conv.conv2d_backward_input(
                dy, w, dx, *stride, *padding, groups, nt, work, *self._conv_options()
            )
        return dx

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
    ) -> tuple[np.ndarray, np.ndarray]:
        """Gradients of :meth:`conv2d` with respect to ``w`` and ``b``: ``(dw, db)``."""
        w_shape = check_shape4(w_shape, "w_shape")
        self._check_array(x, "x", 4)
        dt = _float_dtype(x)
        w_like = np.zeros(w_shape, dtype=x.dtype)
        stride, padding, groups, connections = self.check_conv2d(
            x, w_like, None, stride, padding, groups, connections
        )
        self._check_array(dy, "dy", 4, x.dtype)
        n, c, h, wd = (int(s) for s in x.shape)
        f, cg, kh, kw = w_shape
        oh, ow = conv2d_output_shape((h, wd), (kh, kw), stride, padding)
        if tuple(dy.shape) != (n, f, oh, ow):
            raise ValueError(
                f"dy must have shape {(n, f, oh, ow)}. Received: dy.shape={tuple(dy.shape)}"
            )
        x = self._contiguous(x, dt)
        dy = self._contiguous(dy, dt)
        nt = self._threads(2.0 * n * f * oh * ow * cg * kh * kw, _MIN_FLOPS_PER_THREAD)
        k = cg * kh * kw
        dw = np.empty(w_shape, dtype=dt)
        if self._winograd(2, dt, n, c, h, wd, f, kh, kw, stride, padding, groups):
            work = self._scratch(
                "conv", _winograd.workspace(2, n, c, h, wd, f, kh, *padding, nt), dt
            )
            _winograd.backward_weights(dy, x, dw, *padding, nt, work)
        else:
            size, chunks, uses_blas = _conv.workspace(
                2,
                dt == _FLOAT_DTYPES[0],
                n,
                c,
                h,
                wd,
                f,
                kh,
                kw,
                *stride,
                *padding,
                groups,
                nt,
                *self._conv_options(),
            )
            work = self._scratch("conv", size, dt)
            partial = self._scratch("wgrad", chunks * f * k, dt).reshape(chunks, f * k)
            with _blas_guard(uses_blas):
                _conv.conv2d_backward_weights(
                    dy,
                    x,
                    partial,
                    dw.reshape(-1),
                    kh,
                    kw,
                    *stride,
                    *padding,
                    groups,
                    nt,
                    work,
                    *self._conv_options(),
                )
        db = np.empty(f, dtype=dt)
        _conv.bias_grad(
            dy.reshape(n, f, oh * ow),
            db,
            self._threads(dy.size, _MIN_SUM_ELEMENTS_PER_THREAD),
        )
        if connections is not None:
            dw *= connections[:, :, None, None]
        return dw, db

    def _conv_options(self) -> tuple[int, int]:
        """The ``isa`` and ``sliding`` arguments of the conv kernels, from this backend's options."""
        return self._conv_isa(), _MODES[self.sliding]

    def _winograd(
        self,
        kind: int,
        dtype: np.dtype,
        n: int,
        c: int,
        h: int,
        wd: int,
        f: int,
        kh: int,
        kw: int,
        stride: tuple[int, int],
        padding: tuple[int, int],
        groups: int,
    ) -> bool:
        """Whether a convolution call of ``kind`` (0 forward, 1 input gradient, 2 weight gradient) runs Winograd."""
        return dtype == _FLOAT_DTYPES[0] and _winograd.pays(
            kind,
            n,
            c,
            h,
            wd,
            f,
            kh,
            kw,
            *stride,
            *padding,
            groups,
            self._conv_isa() > 0,
            _MODES[self.winograd],
        )

    def _weights(self, w: Array, connections: Any, dtype: np.dtype) -> np.ndarray:
        """C-contiguous weights of ``dtype``, with the connection table applied."""
        w = self._contiguous(w, dtype)
        if connections is not None:
            w = w * connections[:, :, None, None].astype(dtype)
        return w

    # --------------------------------------------------------- activations
    # The reference computes these with boolean masks and temporaries; the same
    # formulas as in-place NumPy ufunc passes are many times faster, and exp runs
    # in NumPy's SIMD loops, which a scalar compiled loop would not beat.
    def sigmoid(self, x: Array) -> np.ndarray:
        """Logistic function without overflow: ``exp(min(x, 0)) / (1 + exp(-|x|))``.

        That is ``1 / (1 + exp(-x))`` for ``x >= 0`` and ``exp(x) / (1 + exp(x))``
        below, the reference's two formulas, with no select (``np.copyto(...,
        where=)`` alone costs more than all the other passes together).
        """
        x = np.asarray(x)
        num = np.minimum(x, 0)
        np.exp(num, out=num)
        den = np.abs(x)
        np.negative(den, out=den)
        np.exp(den, out=den)
        den += 1
        num /= den
        return num

    def sigmoid_backward(self, y: Array, dy: Array) -> np.ndarray:
        """Gradient through a sigmoid given its output ``y``: ``dy * y * (1 - y)``."""
        out = np.subtract(1, y, dtype=np.result_type(y, dy))
        out *= y
        out *= dy
        return out

    # Dense products below this many multiply-adds run on one BLAS thread: threads
    # do not pay at that size, and busy-waiting BLAS threads on a loaded machine
    # made small products (and a digits epoch) many times slower.
    _GEMM_THREADED_MIN_MACS = 1 << 24

    def gemm(
        self, a: Array, b: Array, *, trans1: bool = False, trans2: bool = False
    ) -> np.ndarray:
        """Matrix product as :meth:`Ops.gemm`, on the kernels' OpenMP threads.

        float32/float64 NumPy matrices go to ``neuroplug_core.gemm``:
        single-threaded BLAS GEMMs run by the kernels' OpenMP threads, so
        that a network never wakes NumPy's own BLAS threads (they busy-wait
        after each product and then compete with the convolution kernels
        for the cores).  Products of ``2**24`` multiply-adds or more
        are cut into blocks of 64 output columns (or rows) shared out between
        the threads, a cut that depends on the shape alone: the result is
        bit-identical on any number of threads.  Anything else goes to the
        reference.
        """
        if (
            type(a) is not np.ndarray
            or type(b) is not np.ndarray
            or a.ndim != 2
            or b.ndim != 2
            or a.dtype not in _FLOAT_DTYPES
            or b.dtype not in _FLOAT_DTYPES
        ):
            with _single_threaded_blas:
                return super().gemm(a, b, trans1=trans1, trans2=trans2)
        dt = a.dtype if a.dtype == b.dtype else np.dtype(np.float64)
        # A Fortran-ordered matrix is the C-ordered transpose: flip the flag instead of copying.
        if not a.flags.c_contiguous and a.flags.f_contiguous and a.dtype == dt:
            a, trans1 = a.T, not trans1
        if not b.flags.c_contiguous and b.flags.f_contiguous and b.dtype == dt:
            b, trans2 = b.T, not trans2
        a = np.ascontiguousarray(a, dtype=dt)
        b = np.ascontiguousarray(b, dtype=dt)
        m, k = (a.shape[1], a.shape[0]) if trans1 else a.shape
        k2, n = (b.shape[1], b.shape[0]) if trans2 else b.shape
        if k != k2:
            raise ValueError(
                f"gemm: the inner dimensions of op(a) {(m, k)} and op(b) {(k2, n)} differ "
                f"(trans1={trans1}, trans2={trans2})."
            )
        if max(a.shape + b.shape) >= 2**31:
            raise ValueError(
                f"gemm: every dimension must stay below 2**31. Received: {a.shape} and {b.shape}"
            )
        out = np.empty((m, n), dtype=dt)
        # Whether to split depends on the shape only, so the result never depends on the thread count.
        split = m * n * k >= self._GEMM_THREADED_MIN_MACS
        with _single_threaded_blas:
            _gemm.gemm(
                a, b, out, trans1, trans2, self._threads() if split else 1, split
            )
        return out

    @staticmethod
    def _flat_floats(*arrays: Any) -> bool:
        """Whether the arrays are C-contiguous NumPy arrays of one float dtype and one shape."""
        first = arrays[0]
        return (
            all(
                type(a) is np.ndarray
                and a.flags.c_contiguous
                and a.dtype == first.dtype
                and a.shape == first.shape
                for a in arrays
            )
            and first.dtype in _FLOAT_DTYPES
        )

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
        """In-place Adam step as :meth:`Ops.adam_update`, in one compiled pass over the parameters."""
        if not self._flat_floats(param, grad, m, v) or not all(
            a.flags.writeable for a in (param, m, v)
        ):
            return super().adam_update(
                param, grad, m, v, lr=lr, beta1=beta1, beta2=beta2, eps=eps, t=t
            )
        step = lr * np.sqrt(1 - beta2**t) / (1 - beta1**t)
        _optim.adam_update(
            param.reshape(-1),
            grad.reshape(-1),
            m.reshape(-1),
            v.reshape(-1),
            float(beta1),
            float(beta2),
            float(step),
            float(eps),
            self._threads(param.size, _MIN_ELEMENTS_PER_THREAD),
        )

    def relu(self, x: Array) -> np.ndarray:
        """``max(x, 0)`` in one compiled pass (the reference's result, NaN included)."""
        if not self._flat_floats(x):
            return super().relu(x)
        out = np.empty_like(x)
        _elementwise.relu(
            x.reshape(-1),
            out.reshape(-1),
            self._threads(x.size, _MIN_ELEMENTS_PER_THREAD),
        )
        return out

    def relu_backward(self, y: Array, dy: Array) -> np.ndarray:
        """``dy * (y > 0)`` in one compiled pass, without the boolean temporary."""
        if not self._flat_floats(y, dy):
            return super().relu_backward(y, dy)
        out = np.empty_like(dy)
        _elementwise.relu_backward(
            y.reshape(-1),
            dy.reshape(-1),
            out.reshape(-1),
            self._threads(y.size, _MIN_ELEMENTS_PER_THREAD),
        )
        return out

    def tanh_backward(self, y: Array, dy: Array) -> np.ndarray:
        """Gradient through tanh given its output ``y``: ``dy * (1 - y * y)``."""
        out = np.multiply(y, y, dtype=np.result_type(y, dy))
        np.subtract(1, out, out=out)
        out *= dy
        return out

    def maxpool2d(
        self, x: Array, size: Any, stride: Any = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Max pooling; returns ``(y, argmax)`` as :meth:`Ops.maxpool2d`."""
        size, stride = self.check_pool2d(x, size, stride)
        dt = _float_dtype(x)
        x = self._contiguous(x, dt)
        n, c, h, w = x.shape
        oh, ow = pool2d_output_shape((h, w), size, stride)
        y = np.empty((n, c, oh, ow), dtype=dt)
        argmax = np.empty((n, c, oh, ow), dtype=np.int64)
        _pool.maxpool2d_forward(
            x,
            y,
            argmax,
            *size,
            *stride,
            self._threads(x.size, _MIN_ELEMENTS_PER_THREAD),
            self._pool_isa(),
        )
        return y, argmax

    def maxpool2d_backward(
        self, dy: Array, argmax: Array, x_shape: Sequence[int]
    ) -> np.ndarray:
        """Gradient of :meth:`maxpool2d`: route each ``dy`` to its argmax."""
        n, c, h, w = check_shape4(x_shape, "x_shape")
        self._check_array(dy, "dy", 4)
        if not hasattr(argmax, "shape") or not hasattr(argmax, "dtype"):
            raise TypeError(
                f"argmax must be an integer array. Received: argmax of type {type(argmax).__name__}"
            )
        am = np.asarray(self.to_numpy(argmax))
        if am.dtype.kind not in "iu":
            raise TypeError(
                f"argmax must be an integer array. Received: argmax.dtype={am.dtype}"
            )
        if tuple(am.shape) != tuple(dy.shape) or tuple(dy.shape[:2]) != (n, c):
            raise ValueError(
                f"dy and argmax must have the same shape (n={n}, c={c}, ...). "
                f"Received: dy.shape={tuple(dy.shape)}, argmax.shape={tuple(am.shape)}"
            )
        dt = _float_dtype(dy)
        dy = self._contiguous(dy, dt)
        if (
            am.dtype.kind == "u"
            and am.dtype.itemsize == 8
            and am.size
            and int(am.max()) >= 2**63
        ):
            raise ValueError(
                f"argmax holds indices outside the input plane of {h}x{w}."
            )
        am = np.ascontiguousarray(am, dtype=np.int64)
        dx = np.empty((n, c, h, w), dtype=dt)
        bad = _pool.maxpool2d_backward(
            dy, am, dx, self._threads(dx.size, _MIN_ELEMENTS_PER_THREAD)
        )
        if bad:
            raise ValueError(
                f"argmax holds {bad} indices outside the input plane of {h}x{w} (valid: 0 to {h * w - 1})."
            )
        return dx

    def meanpool2d(self, x: Array, size: Any, stride: Any = None) -> np.ndarray:
        """Mean pooling over ``size`` windows; see :meth:`Ops.meanpool2d`."""
        size, stride = self.check_pool2d(x, size, stride)
        dt = _float_dtype(x)
        x = self._contiguous(x, dt)
        n, c, h, w = x.shape
        oh, ow = pool2d_output_shape((h, w), size, stride)
        y = np.empty((n, c, oh, ow), dtype=dt)
        _pool.meanpool2d_forward(
            x, y, *size, *stride, self._threads(x.size, _MIN_ELEMENTS_PER_THREAD)
        )
        return y

    def meanpool2d_backward(
        self, dy: Array, x_shape: Sequence[int], size: Any, stride: Any = None
    ) -> np.ndarray:
        """Gradient of :meth:`meanpool2d`."""
        n, c, h, w = check_shape4(x_shape, "x_shape")
        self._check_array(dy, "dy", 4)
        size = normalize_pair(size, "size")
        stride = size if stride is None else normalize_pair(stride, "stride")
        if size[0] > h or size[1] > w:
            raise ValueError(
                f"pool size {size} is larger than the input ({h}, {w}). Received: x_shape={(n, c, h, w)}"
            )
        oh, ow = pool2d_output_shape((h, w), size, stride)
        if tuple(dy.shape) != (n, c, oh, ow):
            raise ValueError(
                f"dy must have shape {(n, c, oh, ow)}. Received: dy.shape={tuple(dy.shape)}"
            )
        dt = _float_dtype(dy)
        dy = self._contiguous(dy, dt)
        dx = np.empty((n, c, h, w), dtype=dt)
        _pool.meanpool2d_backward(
            dy, dx, *size, *stride, self._threads(dx.size, _MIN_ELEMENTS_PER_THREAD)
        )
        return dx

    # --------------------------------------------------------------------- SBN
    # Sigmoid belief nets: neuroplug_core.sbn runs a whole wake-sleep epoch,
    # ancestral sampling and the importance weights without the GIL, drawing
    # from the NumPy generator in the reference's order (same samples).  The
    # kernels split their products between OpenMP threads by blocks of rows,
    # each thread calling a single-threaded BLAS.
    @staticmethod
    def _sbn_check_buffers(**lists: Any) -> None:
        # Parameters are updated in place by the kernel: a copy would lose the update.
        for name, arrays in lists.items():
            for l, a in enumerate(arrays):
                if (
                    not isinstance(a, np.ndarray)
                    or not a.flags.c_contiguous
                    or not a.flags.writeable
                ):
                    raise ValueError(
                        f"{name}[{l}] must be a writable C-contiguous NumPy array for the 'cpu' backend. "
                        f"Received: {name}[{l}] of type {type(a).__name__}"
                        + (
                            f" with flags c_contiguous={a.flags.c_contiguous}, writeable={a.flags.writeable}"
                            if isinstance(a, np.ndarray)
                            else ""
                        )
                    )

    @staticmethod
    def _sbn_check_int32(rows: int, sizes: tuple[int, ...]) -> None:
        # BLAS takes 32-bit dimensions.
        if rows * max(sizes) >= 2**31:
            raise ValueError(
                f"The SBN kernels handle at most 2**31 - 1 elements per matrix. "
                f"Received: {rows} rows of up to {max(sizes)} units"
            )

    def sbn_wake_sleep_epoch(
        self,
        X: Any,
        Wg: Sequence[Any],
        bg: Sequence[Any],
        Wr: Sequence[Any],
        br: Sequence[Any],
        *,
        learning_rate: float,
        batch_size: int,
        n_importance_samples: int = 1,
        rng: Any,
        sample_weight: Any = None,
    ) -> float:
        """One epoch of (reweighted) wake-sleep in ``neuroplug_core.sbn`` (see :meth:`Ops.sbn_wake_sleep_epoch`).

        With ``sample_weight`` the reference loop runs on this backend's
        primitives (the compiled epoch takes no weights); the unweighted
        epoch is the compiled one, unchanged.
        """
        if sample_weight is not None:
            return super().sbn_wake_sleep_epoch(
                X,
                Wg,
                bg,
                Wr,
                br,
                learning_rate=learning_rate,
                batch_size=batch_size,
                n_importance_samples=n_importance_samples,
                rng=rng,
                sample_weight=sample_weight,
            )
        from neuroplug_core import (
            sbn as _sbn,  # imported on use: the other ops need no SBN kernels
        )

        sizes = self.check_sbn(X, Wg, bg, Wr, br)
        learning_rate, batch_size, K = self._check_sbn_epoch_args(
            learning_rate, batch_size, n_importance_samples
        )
        bit_generator = _bit_generator(rng)
        self._sbn_check_buffers(Wg=Wg, bg=bg, Wr=Wr, br=br)
        self._sbn_check_int32(min(batch_size, X.shape[0]) * K, sizes)
        batch_size = min(batch_size, int(X.shape[0]))
        X = np.ascontiguousarray(X)
        with _single_threaded_blas:
            return float(
                _sbn.wake_sleep_epoch(
                    X,
                    list(Wg),
                    list(bg),
                    list(Wr),
                    list(br),
                    learning_rate,
                    batch_size,
                    K,
                    bit_generator,
                    effective_n_threads(self.n_threads),
                )
            )

    def sbn_sample(
        self, Wg: Sequence[Any], bg: Sequence[Any], n_samples: int, rng: Any
    ) -> list[Any]:
        """Ancestral samples of every layer in ``neuroplug_core.sbn`` (see :meth:`Ops.sbn_sample`)."""
        from neuroplug_core import sbn as _sbn

        sizes = self.check_sbn(None, Wg, bg)
        n_samples = self._check_sbn_int(n_samples, "n_samples")
        bit_generator = _bit_generator(rng)
        self._sbn_check_int32(n_samples, sizes)
        Wg = [np.ascontiguousarray(w) for w in Wg]
        bg = [np.ascontiguousarray(b) for b in bg]
        out = [np.empty((n_samples, n), dtype=Wg[0].dtype) for n in sizes]
        with _single_threaded_blas:
            _sbn.sample(Wg, bg, out, bit_generator, effective_n_threads(self.n_threads))
        return out

    def sbn_log_importance_weights(
        self,
        X: Any,
        Wg: Sequence[Any],
        bg: Sequence[Any],
        Wr: Sequence[Any],
        br: Sequence[Any],
        *,
        n_samples: int,
        rng: Any,
    ) -> Any:
        """Log importance weights in ``neuroplug_core.sbn`` (see :meth:`Ops.sbn_log_importance_weights`)."""
        from neuroplug_core import sbn as _sbn

        sizes = self.check_sbn(X, Wg, bg, Wr, br)
        n_samples = self._check_sbn_int(n_samples, "n_samples")
        bit_generator = _bit_generator(rng)
        self._sbn_check_int32(n_samples, sizes)
        X = np.ascontiguousarray(X)
        params = [[np.ascontiguousarray(a) for a in p] for p in (Wg, bg, Wr, br)]
        out = np.empty((X.shape[0], n_samples), dtype=X.dtype)
        with _single_threaded_blas:
            _sbn.log_importance_weights(
                X, *params, out, bit_generator, effective_n_threads(self.n_threads)
            )
        return out

    # ----------------------------------------------------------------- ConvRBM
    # Convolutional RBMs with probabilistic max-pooling: the block softmax,
    # the block sampler and the visible non-linearity run in
    # neuroplug_core.crbm; the convolutions are this class's conv kernels, so
    # the inherited one-call Ops.crbm_cd_epoch runs entirely compiled apart
    # from the small parameter updates.  The sampler draws from the NumPy
    # generator in the reference's order (same samples).
    def _crbm_threads(self, size: int) -> int:
        # These kernels do a few flops per element: below ~32k elements a
        # parallel region costs more than it saves (far more on a busy machine).
        return 1 if size < 32768 else self._threads()

    def crbm_pool_probs(
        self, pre: Array, pool_size: Any
    ) -> tuple[np.ndarray, np.ndarray]:
        """Probabilistic max-pooling posteriors in ``neuroplug_core.crbm`` (see :meth:`Ops.crbm_pool_probs`)."""
        from neuroplug_core import (
            crbm as _crbm,  # imported on use: the other ops need no ConvRBM kernels
        )

        pool = self.check_crbm_pool(pre, "pre", pool_size)
        dt = _float_dtype(pre)
        pre = self._contiguous(pre, dt)
        n, f, h, w = pre.shape
        h_probs = np.empty_like(pre)
        p_probs = np.empty((n, f, *self.crbm_pool_shape((h, w), pool)), dtype=dt)
        _crbm.pool_probs(
            pre, pool[0], pool[1], h_probs, p_probs, self._crbm_threads(pre.size)
        )
        return h_probs, p_probs

    def crbm_sample_hidden(
        self, h_probs: Array, pool_size: Any, rng: Any
    ) -> np.ndarray:
        """Block samples in ``neuroplug_core.crbm`` (see :meth:`Ops.crbm_sample_hidden`)."""
        from neuroplug_core import crbm as _crbm

        pool = self.check_crbm_pool(h_probs, "h_probs", pool_size)
        bit_generator = _bit_generator(rng)
        dt = _float_dtype(h_probs)
        h_probs = self._contiguous(h_probs, dt)
        out = np.empty_like(h_probs)
        _crbm.pool_sample(
            h_probs, pool[0], pool[1], bit_generator, out, self._crbm_threads(out.size)
        )
        return out

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
    ) -> np.ndarray:
        """Transposed convolution + bias + sigmoid, fused after the conv kernel (see :meth:`Ops.crbm_visible_means`)."""
        from neuroplug_core import crbm as _crbm

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
        bv = self._contiguous(bv, act.dtype)
        _crbm.visible_activation(
            act, bv, visible == "gaussian", self._crbm_threads(act.size)
        )
        return act

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
    ) -> np.ndarray:
        """Free energy per sample, block log-partitions in ``neuroplug_core.crbm`` (see :meth:`Ops.crbm_free_energy`)."""
        from neuroplug_core import crbm as _crbm

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
        n, f, h, w = pre.shape
        log_z = np.empty((n, f, *self.crbm_pool_shape((h, w), pool)), dtype=pre.dtype)
        _crbm.log_partition(pre, pool[0], pool[1], log_z, self._crbm_threads(pre.size))
        hidden = log_z.reshape(n, -1).sum(axis=1)
        v = self._contiguous(v, pre.dtype)
        bv = self._contiguous(bv, pre.dtype)
        if visible == "bernoulli":
            return -(v.sum(axis=(2, 3)) @ bv) - hidden
        return 0.5 * ((v - bv[None, :, None, None]) ** 2).sum(axis=(1, 2, 3)) - hidden

    # --------------------------------------------------------------------- RBM
    # Restricted Boltzmann machines: neuroplug_core.rbm runs a whole CD-k /
    # PCD-k epoch, block Gibbs sampling, hidden probabilities and free
    # energies without the GIL, drawing uniforms from the NumPy generator in
    # the reference's order (same samples, so the same fit as backend="numpy"
    # up to rounding).  Each OpenMP thread runs single-threaded GEMMs on its
    # slice of the weights.
    def _rbm_threads(self, rows: int, W: np.ndarray) -> int:
        # A GEMM of rows x n_hidden x n_visible below about a million
        # multiply-adds takes microseconds: splitting it costs more in OpenMP
        # barriers than it saves (far more on a busy machine).
        return 1 if rows * W.shape[0] * W.shape[1] < (1 << 20) else self._threads()

    @staticmethod
    def _rbm_check_visible(visible: Any) -> bool:
        if visible not in ("bernoulli", "gaussian"):
            raise ValueError(
                f"visible must be 'bernoulli' or 'gaussian'. Received: visible={visible!r}"
            )
        return visible == "gaussian"

    @staticmethod
    def _rbm_int(value: Any, name: str) -> int:
        if (
            not isinstance(value, numbers.Integral)
            or isinstance(value, bool)
            or value < 1
        ):
            raise ValueError(f"{name} must be an int >= 1. Received: {name}={value!r}")
        return int(value)

    def _rbm_params(
        self, W: Any, bh: Any = None, bv: Any = None
    ) -> tuple[Any, Any, Any]:
        """Validate ``W (n_hidden, n_visible)`` and the biases given; return them C-contiguous in W's dtype.

        A bias left as ``None`` is returned as ``None``.
        """
        self._check_array(W, "W", 2)
        dt = _float_dtype(W)
        nh, nv = (int(s) for s in W.shape)
        out = [self._contiguous(W, dt)]
        for bias, name, units, n in (
            (bh, "bh", "hidden", nh),
            (bv, "bv", "visible", nv),
        ):
            if bias is not None:
                self._check_array(bias, name, 1, W.dtype)
                if int(bias.shape[0]) != n:
                    raise ValueError(
                        f"{name} must have n_{units}={n} entries for W of shape {(nh, nv)}. "
                        f"Received: {name}.shape={tuple(bias.shape)}"
                    )
                bias = self._contiguous(bias, dt)
            out.append(bias)
        return tuple(out)

    def _rbm_input(
        self, v: Any, name: str, W: np.ndarray, units: str = "visible"
    ) -> np.ndarray:
        """``v`` (one row per sample, one column per ``units`` unit of ``W``) C-contiguous in W's dtype."""
        self._check_array(v, name, 2)
        cols = W.shape[1] if units == "visible" else W.shape[0]
        if int(v.shape[1]) != cols:
            raise ValueError(
                f"{name} must have n_{units}={cols} columns. Received: {name}.shape={tuple(v.shape)}"
            )
        if max(int(v.shape[0]), 1) * max(W.shape) >= 2**31:
            raise ValueError(
                f"The RBM kernels take at most 2**31 - 1 elements per matrix. Received: {name}.shape={tuple(v.shape)}"
            )
        return self._contiguous(v, W.dtype)

    def rbm_hidden_probs(self, v: Array, W: Array, bh: Array) -> np.ndarray:
        """``sigmoid(v @ W.T + bh)`` in ``neuroplug_core.rbm`` (see :meth:`Ops.rbm_hidden_probs`)."""
        from neuroplug_core import (
            rbm as _rbm,  # imported on use: the other ops need no RBM kernels
        )

        W, bh, _ = self._rbm_params(W, bh=bh)
        v = self._rbm_input(v, "v", W)
        out = np.empty((v.shape[0], W.shape[0]), dtype=W.dtype)
        with _single_threaded_blas:
            _rbm.hidden_probs(
                v,
                W,
                bh,
                out,
                1.0,
                self._rbm_threads(v.shape[0], W),
                small_batch_max=self._rbm_options()["small_batch_max"],
            )
        return out

    def rbm_visible_means(
        self, h: Array, W: Array, bv: Array, visible: str
    ) -> np.ndarray:
        """Visible means given ``h`` in ``neuroplug_core.rbm`` (see :meth:`Ops.rbm_visible_means`).

        One pass: the product, the bias and the sigmoid without NumPy
        temporaries (the reconstruction monitor of every RBM epoch calls it).
        """
        from neuroplug_core import rbm as _rbm

        gaussian = self._rbm_check_visible(visible)
        W, _, bv = self._rbm_params(W, bv=bv)
        h = self._rbm_input(h, "h", W, units="hidden")
        out = np.empty((h.shape[0], W.shape[1]), dtype=W.dtype)
        with _single_threaded_blas:
            _rbm.visible_means(
                h,
                W,
                bv,
                gaussian,
                out,
                self._rbm_threads(h.shape[0], W),
                small_batch_max=self._rbm_options()["small_batch_max"],
            )
        return out

    def rbm_free_energy(
        self, v: Array, W: Array, bh: Array, bv: Array, visible: str
    ) -> np.ndarray:
        """Free energy per row in ``neuroplug_core.rbm`` (see :meth:`Ops.rbm_free_energy`)."""
        from neuroplug_core import rbm as _rbm

        gaussian = self._rbm_check_visible(visible)
        W, bh, bv = self._rbm_params(W, bh, bv)
        v = self._rbm_input(v, "v", W)
        out = np.empty(v.shape[0], dtype=W.dtype)
        with _single_threaded_blas:
            _rbm.free_energy(
                v, W, bh, bv, gaussian, out, self._rbm_threads(v.shape[0], W)
            )
        return out

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
    ) -> np.ndarray:
        """``steps`` steps of block Gibbs sampling v -> h -> v (see :meth:`Ops.rbm_gibbs`).

        Bernoulli visible units run entirely in ``neuroplug_core.rbm``;
        Gaussian ones draw their normal noise from NumPy between the
        compiled hidden-unit steps, so both match the reference's draws.
        """
        from neuroplug_core import rbm as _rbm

        gaussian = self._rbm_check_visible(visible)
        if (
            not isinstance(steps, numbers.Integral)
            or isinstance(steps, bool)
            or steps < 0
        ):
            raise ValueError(f"steps must be an int >= 0. Received: steps={steps!r}")
        bit_generator = _bit_generator(rng)
        W, bh, bv = self._rbm_params(W, bh, bv)
        v = np.array(
            self._rbm_input(v, "v", W), copy=True
        )  # never overwrite the caller's array
        nt = self._rbm_threads(v.shape[0], W)
        if not gaussian:
            with _single_threaded_blas:
                _rbm.gibbs_bernoulli(
                    v,
                    W,
                    bh,
                    bv,
                    int(steps),
                    bit_generator,
                    nt,
                    small_batch_max=self._rbm_options()["small_batch_max"],
                )
            return v
        h = np.empty((v.shape[0], W.shape[0]), dtype=W.dtype)
        for _ in range(int(steps)):
            with _single_threaded_blas:
                _rbm.sample_hidden(
                    v,
                    W,
                    bh,
                    bit_generator,
                    h,
                    nt,
                    small_batch_max=self._rbm_options()["small_batch_max"],
                )
            v = h @ W
            v += bv
            v += self.random_normal(rng, v.shape, v.dtype)
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
        """One epoch of CD-k / PCD-k in ``neuroplug_core.rbm`` (see :meth:`Ops.cd_epoch`).

        ``W``, ``bh``, ``bv``, the momentum buffers and ``chain`` are updated
        in place, so they must be writable C-contiguous NumPy arrays of one
        float dtype; ``X`` is converted to that dtype.  With
        ``sample_weight`` the reference loop runs on this backend's
        primitives (the compiled epoch takes no weights yet); the unweighted
        epoch is the compiled one, unchanged.
        """
        if sample_weight is not None:
            return super().cd_epoch(
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
                rng=rng,
                chain=chain,
                sample_visible=sample_visible,
                sample_weight=sample_weight,
            )
        from neuroplug_core import rbm as _rbm

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
        )
        gaussian = visible == "gaussian"
        bit_generator = _bit_generator(rng)
        self._check_array(W, "W", 2)
        buffers = {"W": W, "bh": bh, "bv": bv, "dW": dW, "dbh": dbh, "dbv": dbv}
        if chain is not None:
            buffers["chain"] = chain
        for name, a in buffers.items():
            # Updated in place by the kernel: a converted copy would lose the update.
            if (
                not isinstance(a, np.ndarray)
                or not a.flags.c_contiguous
                or not a.flags.writeable
                or a.dtype != W.dtype
            ):
                raise ValueError(
                    f"{name} must be a writable C-contiguous NumPy array of W's dtype ({W.dtype}) for the "
                    f"'cpu' backend. Received: {name} of type {type(a).__name__}"
                    + (
                        f", dtype={a.dtype}, c_contiguous={a.flags.c_contiguous}, writeable={a.flags.writeable}"
                        if isinstance(a, np.ndarray)
                        else ""
                    )
                )
        W, bh, bv = self._rbm_params(W, bh, bv)
        nh, nv = W.shape
        if dW.shape != W.shape or dbh.shape != bh.shape or dbv.shape != bv.shape:
            raise ValueError(
                f"dW, dbh and dbv must have the shapes of W, bh and bv ({(nh, nv)}, {(nh,)}, {(nv,)}). "
                f"Received: dW.shape={dW.shape}, dbh.shape={dbh.shape}, dbv.shape={dbv.shape}"
            )
        X = self._rbm_input(X, "X", W)
        m = min(batch_size, X.shape[0])
        if chain is not None and (
            chain.ndim != 2 or chain.shape[1] != nh or chain.shape[0] < m
        ):
            raise ValueError(
                f"chain must have shape (>= {m}, n_hidden={nh}) for batch_size={batch_size}. "
                f"Received: chain.shape={chain.shape}"
            )
        if 2 * m * max(nh, nv) >= 2**31:
            raise ValueError(
                f"batch_size * n_units must stay below 2**30. Received: batch_size={batch_size}"
            )
        with _single_threaded_blas:
            return float(
                _rbm.cd_epoch(
                    X,
                    W,
                    bh,
                    bv,
                    dW,
                    dbh,
                    dbv,
                    k,
                    float(learning_rate),
                    float(momentum),
                    float(weight_decay),
                    m,
                    gaussian,
                    bit_generator,
                    chain,
                    self._rbm_threads(m, W),
                    sample_visible,
                    **self._rbm_options(),
                )
            )

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
        """AIS log weights in ``neuroplug_core.rbm`` (see :meth:`Ops.rbm_ais_log_weights`).

        Bernoulli units draw the reference's uniforms; Gaussian units draw
        their noise by the polar method (same distribution, other draws).
        """
        from neuroplug_core import rbm as _rbm

        gaussian = self._rbm_check_visible(visible)
        n_runs = self._rbm_int(n_runs, "n_runs")
        bit_generator = _bit_generator(rng)
        W, bh, bv = self._rbm_params(W, bh, bv)
        self._check_array(base_bias, "base_bias", 1, W.dtype)
        if int(base_bias.shape[0]) != W.shape[1]:
            raise ValueError(
                f"base_bias must have n_visible={W.shape[1]} entries. Received: base_bias.shape={tuple(base_bias.shape)}"
            )
        base_bias = self._contiguous(base_bias, W.dtype)
        betas = np.ascontiguousarray(betas, dtype=np.float64)
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
        if n_runs * max(W.shape) >= 2**31:
            raise ValueError(
                f"n_runs * n_units must stay below 2**31. Received: n_runs={n_runs}"
            )
        log_w = np.empty(n_runs, dtype=np.float64)
        with _single_threaded_blas:
            _rbm.ais_log_weights(
                W,
                bh,
                bv,
                base_bias,
                betas,
                gaussian,
                bit_generator,
                log_w,
                self._rbm_threads(n_runs, W),
            )
        return log_w
