"""A strict test backend: arrays that refuse NumPy functions.

A layer must compute only through ``self.ops`` and the array operators and
methods that NumPy arrays and torch tensors share; a layer that calls
``np.exp(X)`` works on the NumPy backends (and on CPU torch tensors, which
NumPy converts silently) and breaks only on a GPU.  :class:`StrictOps` is the
NumPy reference whose arrays are :class:`StrictArray` objects: they support
exactly that shared subset and raise :class:`StrictArrayError`, naming the
NumPy function and the line that called it, for anything else.  So the rule
is checked on any machine: :func:`neuroplug.testing.check_layer` runs every
layer on it (``check_strict_arrays``).

Use it directly to try a layer or pretrainer by hand::

    from neuroplug.testing import StrictOps

    ops = StrictOps()
    layer.initialize((3, 8, 8), ops, np.random.default_rng(0), np.float32)
    layer.forward(ops.asarray(X))          # StrictArrayError if the layer calls NumPy on X

What a :class:`StrictArray` supports (the subset NumPy and torch share):

* operators: ``+ - * / // % **`` (also reflected and in place), ``@``,
  unary ``-``, ``+``, ``abs()``, ``~``, ``& | ^``, comparisons, ``len()``,
  ``float()``, ``int()``, ``bool()`` of one element;
* indexing and slice assignment with ints, slices, ``None``, ``...`` and
  backend arrays (masks);
* ``.shape`` (a tuple of ints), ``.dtype``, ``.ndim``, ``.T`` (at most 2-D:
  torch refuses ``.T`` beyond that);
* ``.reshape(...)``, ``.sum(axis=..., keepdims=...)``,
  ``.mean(axis=..., keepdims=...)``, ``.cumsum(axis)``, ``.max()`` and
  ``.min()`` without an axis (torch returns values *and* indices with one),
  ``.clip(lo, hi)``, ``.flatten()``, ``.squeeze()``, ``.swapaxes(a, b)``,
  ``.any()``, ``.all()``, ``.item()``.

NumPy scalars (``np.float64(2) * X``) are accepted as operands and act like
Python numbers, as torch treats them.  A NumPy *array* as an operand or as a
value assigned into a backend array is refused: on a GPU it would have to be
moved with ``ops.asarray`` first.
"""

from __future__ import annotations

import numbers
import os
import traceback
from collections.abc import Callable
from typing import Any

import numpy as np

from .ops import Ops

__all__ = ["STRICT_METHODS", "StrictArray", "StrictArrayError", "StrictOps"]

#: The array methods (besides operators and ``shape``/``dtype``/``ndim``/``T``) a StrictArray has.
STRICT_METHODS = (
    "reshape",
    "sum",
    "mean",
    "cumsum",
    "max",
    "min",
    "clip",
    "flatten",
    "squeeze",
    "swapaxes",
    "any",
    "all",
    "item",
)

_RULE = (
    "Layers compute only through self.ops (neuroplug.ops.Ops) and the array operators and methods that NumPy "
    "arrays and torch tensors share: on the torch backend this array is a torch.Tensor, possibly on a GPU, "
    "where this fails."
)

# ufuncs that back an operator: a NumPy scalar on the left of an operator calls them.
_OPERATOR_UFUNCS = {
    np.add: "__add__",
    np.subtract: "__sub__",
    np.multiply: "__mul__",
    np.true_divide: "__truediv__",
    np.floor_divide: "__floordiv__",
    np.remainder: "__mod__",
    np.power: "__pow__",
    np.matmul: "__matmul__",
    np.less: "__lt__",
    np.less_equal: "__le__",
    np.greater: "__gt__",
    np.greater_equal: "__ge__",
    np.equal: "__eq__",
    np.not_equal: "__ne__",
    np.bitwise_and: "__and__",
    np.bitwise_or: "__or__",
    np.bitwise_xor: "__xor__",
}


class StrictArrayError(TypeError):
    """A layer used a backend array in a way only NumPy arrays allow."""


def _caller() -> str:
    """``file:line in function: code`` of the innermost frame outside this module and NumPy."""
    here = os.path.abspath(__file__)
    marker = f"{os.sep}numpy{os.sep}"
    for frame in reversed(traceback.extract_stack()):
        path = os.path.abspath(frame.filename)
        if path != here and marker not in path:
            return f" (at {frame.filename}:{frame.lineno} in {frame.name}: {(frame.line or '').strip()})"
    return ""


def _fail(what: str) -> StrictArrayError:
    return StrictArrayError(f"{what}{_caller()}. {_RULE}")


def _unwrap(value: Any) -> Any:
    """StrictArrays (also inside lists, tuples and dicts) as their NumPy arrays."""
    if isinstance(value, StrictArray):
        return value._a
    if isinstance(value, (list, tuple)):
        return type(value)(_unwrap(v) for v in value)
    if isinstance(value, dict):
        return {k: _unwrap(v) for k, v in value.items()}
    return value


def _wrap(value: Any) -> Any:
    """NumPy arrays (also inside lists, tuples and dicts) as StrictArrays."""
    if isinstance(value, np.ndarray):
        return StrictArray(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_wrap(v) for v in value)
    if isinstance(value, dict):
        return {k: _wrap(v) for k, v in value.items()}
    return value


def _operand(value: Any, op: str) -> Any:
    """The NumPy value of an operator's other operand, or a StrictArrayError for a NumPy array."""
    if isinstance(value, StrictArray):
        return value._a
    if isinstance(value, np.generic):
        return value.item()  # a NumPy scalar acts like a Python number, as in torch
    if isinstance(value, (numbers.Number, bool)):
        return value
    if isinstance(value, np.ndarray):
        raise _fail(
            f"a NumPy array was used with operator {op} on a backend array; move it with ops.asarray first"
        )
    return value


def _binary(name: str) -> Callable[[StrictArray, Any], Any]:
    def method(self: StrictArray, other: Any) -> Any:
        other = _operand(other, name)
        result = getattr(self._a, name)(other)
        if result is NotImplemented:
            return NotImplemented
        if name.startswith("__i"):  # in place: NumPy updated self._a
            return self
        return _wrap(np.asarray(result) if isinstance(result, np.generic) else result)

    method.__name__ = name
    method.__doc__ = f"``{name}`` as NumPy computes it, for backend arrays and numbers."
    return method


def _unary(name: str) -> Callable[[StrictArray], Any]:
    def method(self: StrictArray) -> Any:
        return StrictArray(np.asarray(getattr(self._a, name)()))

    method.__name__ = name
    method.__doc__ = f"``{name}`` as NumPy computes it."
    return method


def _scalar(value: Any) -> Any:
    """A 0-d NumPy array (how NumPy passes a scalar to a comparison ufunc) as a NumPy scalar."""
    return value[()] if isinstance(value, np.ndarray) and value.ndim == 0 else value


def _no_axis(method: str, args: Any, kwargs: Any) -> None:
    if args or kwargs:
        raise _fail(
            f".{method}() of a backend array takes no arguments here: with an axis NumPy and torch differ "
            f"(torch returns values and indices, or needs dim=); use ops or .sum/.mean"
        )


def _key(key: Any) -> Any:
    if isinstance(key, tuple):
        return tuple(_key(k) for k in key)
    if isinstance(key, np.ndarray):
        raise _fail(
            "a NumPy array was used as an index into a backend array; use a backend array or slices"
        )
    return _unwrap(key)


class StrictArray:
    """A NumPy array that allows only what NumPy arrays and torch tensors share (see the module docstring).

    Parameters
    ----------
    array : numpy.ndarray
        The values (kept, not copied).
    """

    __slots__ = ("_a",)

    def __init__(self, array: np.ndarray) -> None:
        if not isinstance(array, np.ndarray):
            raise TypeError(
                f"StrictArray wraps a NumPy array. Received: {type(array).__name__}"
            )
        self._a = array

    # -- what NumPy must not do with it ---------------------------------------
    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        """Refused: ``np.asarray(x)`` of a backend array; use ``ops.to_numpy(x)``."""
        raise _fail(
            "np.asarray/np.array (or a NumPy function) was given a backend array; use ops.to_numpy(x) "
            "for host copies"
        )

    def __array_function__(self, func: Any, types: Any, args: Any, kwargs: Any) -> Any:
        """Refused: every NumPy function (``np.sum``, ``np.where``, ``np.pad``, ...)."""
        name = f"{getattr(func, '__module__', 'numpy') or 'numpy'}.{getattr(func, '__name__', func)}"
        raise _fail(f"the NumPy function {name} was called on a backend array")

    def __array_ufunc__(
        self, ufunc: Any, method: str, *inputs: Any, **kwargs: Any
    ) -> Any:
        """Refused: NumPy ufuncs (``np.exp``, ``np.maximum``, ...), except a NumPy scalar's operator."""
        op = _OPERATOR_UFUNCS.get(ufunc)
        if op is not None and method == "__call__" and not kwargs and len(inputs) == 2:
            left, right = (_scalar(v) for v in inputs)
            if isinstance(left, np.generic) and right is self:  # np.float64(2) * x
                return getattr(self, _reflected(op))(left)
            if left is self and isinstance(right, np.generic):
                return getattr(self, op)(right)
        if op is not None and any(
            isinstance(v, np.ndarray) and v.ndim > 0 for v in inputs
        ):
            raise _fail(
                f"a NumPy array was combined with a backend array (numpy.{ufunc.__name__}); move it with "
                "ops.asarray first"
            )
        raise _fail(
            f"the NumPy ufunc numpy.{ufunc.__name__} ({method}) was called on a backend array"
        )

    # -- shape and type ---------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        """The shape, a tuple of ints."""
        return tuple(int(s) for s in self._a.shape)

    @property
    def dtype(self) -> np.dtype:
        """The dtype (a NumPy dtype here; a ``torch.dtype`` on the torch backend)."""
        return self._a.dtype

    @property
    def ndim(self) -> int:
        """Number of axes."""
        return self._a.ndim

    @property
    def T(self) -> StrictArray:
        """Transpose of a 1-D or 2-D array (torch refuses ``.T`` beyond 2-D)."""
        if self._a.ndim > 2:
            raise _fail(
                f".T of a {self._a.ndim}-D backend array (torch allows .T only up to 2-D; use "
                "ops.gemm(..., trans1=True) or reshape)"
            )
        return StrictArray(self._a.T)

    def __len__(self) -> int:
        return len(self._a)

    def __repr__(self) -> str:
        return f"StrictArray({np.array2string(self._a, threshold=20)}, dtype={self._a.dtype})"

    def __float__(self) -> float:
        return float(self._a)

    def __int__(self) -> int:
        return int(self._a)

    def __bool__(self) -> bool:
        return bool(self._a)

    __hash__ = None  # type: ignore[assignment]

    # -- indexing -----------------------------------------------------------------
    def __getitem__(self, key: Any) -> StrictArray:
        return StrictArray(np.asarray(self._a[_key(key)]))

    def __setitem__(self, key: Any, value: Any) -> None:
        if isinstance(value, np.ndarray):
            raise _fail(
                "a NumPy array was assigned into a backend array; move it with ops.asarray first"
            )
        self._a[_key(key)] = _operand(value, "[]=")

    # -- the shared methods ---------------------------------------------------------
    def reshape(self, *shape: Any) -> StrictArray:
        """``reshape(a, b)`` or ``reshape((a, b))``."""
        return StrictArray(self._a.reshape(*shape))

    def sum(self, axis: Any = None, keepdims: bool = False) -> StrictArray:
        """Sum over ``axis`` (an int or a tuple)."""
        return StrictArray(np.asarray(self._a.sum(axis=axis, keepdims=keepdims)))

    def mean(self, axis: Any = None, keepdims: bool = False) -> StrictArray:
        """Mean over ``axis`` (an int or a tuple)."""
        return StrictArray(np.asarray(self._a.mean(axis=axis, keepdims=keepdims)))

    def cumsum(self, axis: int) -> StrictArray:
        """Cumulative sum along ``axis``."""
        return StrictArray(self._a.cumsum(axis=axis))

    def max(self, *args: Any, **kwargs: Any) -> StrictArray:
        """Largest entry (no ``axis``: torch's ``max(axis)`` returns values and indices)."""
        _no_axis("max", args, kwargs)
        return StrictArray(np.asarray(self._a.max()))

    def min(self, *args: Any, **kwargs: Any) -> StrictArray:
        """Smallest entry (no ``axis``, as for :meth:`max`)."""
        _no_axis("min", args, kwargs)
        return StrictArray(np.asarray(self._a.min()))

    def clip(self, min: Any = None, max: Any = None) -> StrictArray:
        """Entries clipped to ``[min, max]``."""
        return StrictArray(self._a.clip(_operand(min, "clip"), _operand(max, "clip")))

    def flatten(self) -> StrictArray:
        """A 1-D copy."""
        return StrictArray(self._a.flatten())

    def squeeze(self) -> StrictArray:
        """Axes of length 1 removed."""
        return StrictArray(np.asarray(self._a.squeeze()))

    def swapaxes(self, a: int, b: int) -> StrictArray:
        """Axes ``a`` and ``b`` exchanged."""
        return StrictArray(self._a.swapaxes(a, b))

    def any(self, *args: Any, **kwargs: Any) -> StrictArray:
        """Whether any entry is non-zero (no ``axis``)."""
        _no_axis("any", args, kwargs)
        return StrictArray(np.asarray(self._a.any()))

    def all(self, *args: Any, **kwargs: Any) -> StrictArray:
        """Whether every entry is non-zero (no ``axis``)."""
        _no_axis("all", args, kwargs)
        return StrictArray(np.asarray(self._a.all()))

    def item(self) -> Any:
        """The one entry as a Python number."""
        return self._a.item()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise AttributeError(
            f"backend arrays have no attribute {name!r} under the strict test backend{_caller()}: only the "
            f"operators, .shape, .dtype, .ndim, .T and the methods {', '.join(STRICT_METHODS)} are shared by NumPy "
            f"arrays and torch tensors. {_RULE}"
        )


for _name in (
    "__add__",
    "__radd__",
    "__iadd__",
    "__sub__",
    "__rsub__",
    "__isub__",
    "__mul__",
    "__rmul__",
    "__imul__",
    "__truediv__",
    "__rtruediv__",
    "__itruediv__",
    "__floordiv__",
    "__rfloordiv__",
    "__ifloordiv__",
    "__mod__",
    "__rmod__",
    "__imod__",
    "__pow__",
    "__rpow__",
    "__ipow__",
    "__matmul__",
    "__rmatmul__",
    "__lt__",
    "__le__",
    "__gt__",
    "__ge__",
    "__eq__",
    "__ne__",
    "__and__",
    "__rand__",
    "__iand__",
    "__or__",
    "__ror__",
    "__ior__",
    "__xor__",
    "__rxor__",
    "__ixor__",
):
    setattr(StrictArray, _name, _binary(_name))
for _name in ("__neg__", "__pos__", "__abs__", "__invert__"):
    setattr(StrictArray, _name, _unary(_name))
# A NumPy scalar on the left: comparisons reflect to their mirror (s < x is x > s), == and != to
# themselves, the rest to their __r form.
_SYMMETRIC = {"__eq__", "__ne__"}
_MIRROR = {
    "__lt__": "__gt__",
    "__le__": "__ge__",
    "__gt__": "__lt__",
    "__ge__": "__le__",
}


def _reflected(op: str) -> str:
    if op in _SYMMETRIC:
        return op
    return _MIRROR.get(op, op.replace("__", "__r", 1))


del _name


class StrictOps(Ops):
    """The NumPy reference backend on :class:`StrictArray` objects (backend name ``"strict"``).

    Every op unwraps its array arguments, runs the reference and wraps the
    arrays it returns, so results equal the reference's; only a layer's own
    array code meets the strict arrays.  It is not registered as a backend:
    :func:`neuroplug.testing.check_layer` uses it in ``check_strict_arrays``,
    and tests create it directly.

    Parameters
    ----------
    device, n_threads, check_finite
        As for :class:`neuroplug.ops.Ops`.
    """

    name = "strict"

    def __init__(
        self,
        device: str | None = None,
        *,
        n_threads: int | None = None,
        check_finite: bool = True,
    ) -> None:
        super().__init__(device, n_threads=n_threads, check_finite=check_finite)
        self._ref = Ops(device, n_threads=n_threads, check_finite=check_finite)

    def _reference(self) -> Ops:
        self._ref.check_finite = self.check_finite
        return self._ref

    def asarray(self, x: Any, dtype: Any = None) -> StrictArray:
        """``x`` (a host array, a number or a StrictArray) as a C-contiguous StrictArray."""
        return StrictArray(np.ascontiguousarray(_unwrap(x), dtype=dtype))

    def to_numpy(self, x: Any) -> np.ndarray:
        """The NumPy array behind ``x``."""
        return np.asarray(_unwrap(x))


def _strict_op(name: str) -> Callable[..., Any]:
    def method(self: StrictOps, *args: Any, **kwargs: Any) -> Any:
        result = getattr(self._reference(), name)(*_unwrap(args), **_unwrap(kwargs))
        return _wrap(result)

    method.__name__ = name
    method.__qualname__ = f"StrictOps.{name}"
    method.__doc__ = f"The reference's ``{name}`` on the arrays behind StrictArrays; arrays it returns are wrapped."
    return method


def _install_strict_ops() -> None:
    import inspect

    for name in dir(Ops):
        member = inspect.getattr_static(Ops, name)
        if (
            name.startswith("_")
            or name in ("asarray", "to_numpy")
            or isinstance(member, (staticmethod, classmethod))
        ):
            continue
        if callable(member):
            setattr(StrictOps, name, _strict_op(name))


_install_strict_ops()
