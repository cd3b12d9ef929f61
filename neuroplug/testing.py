"""Conformance checks for layers: test a layer in a few lines.

:func:`check_layer` is the layer analogue of scikit-learn's
``check_estimator``: given something that makes a fresh layer, it runs every
check of the :class:`~neuroplug.layers.Layer` contract and raises
:class:`LayerCheckError` (an ``AssertionError``) naming the failed check and
the layer::

    from neuroplug.testing import check_layer

    def test_my_layer():
        check_layer(MyLayer(size=3), input_shape=(4, 6, 5))

:func:`layer_checks` returns the same checks one by one, for
``pytest.mark.parametrize`` (one test per check, so a report shows every
failure at once); :func:`parametrize_layer_checks` builds that decorator.

The checks (names as in ``skip=``):

``check_hyperparameters``
    ``__init__`` only stores its arguments: the layer clones, and neither
    :meth:`~Layer.initialize` nor training changes ``get_params()``.
``check_output_shape``
    ``initialize`` returns ``output_shape(input_shape)``; ``forward`` returns
    ``(n, *output_shape)`` for several batch sizes, in training and
    inference; ``backward`` returns the input's shape.
``check_parameter_gradients``
    after ``backward`` every parameter has a finite gradient of its shape.
``check_dtypes``
    float32 stays float32 and float64 stays float64: parameters, outputs,
    input gradients and parameter gradients.
``check_batch_independence``
    at inference each sample's output does not depend on the other samples
    of its batch.
``check_gradients``
    input and parameter gradients agree with central finite differences of
    ``sum(forward(X) * R)`` in float64 on the NumPy reference backend
    (training mode; a layer that draws random numbers gets the same
    generator state for every evaluation).
``check_determinism``
    the same seeds give the same weights and outputs; inference leaves the
    layer unchanged.
``check_pickle``
    a fresh and a trained layer survive ``pickle`` with their parameters and
    state: same outputs, training can go on.
``check_safe_format``
    hyper-parameters and weights survive the safe model format (JSON plus an
    ``.npz`` read with ``allow_pickle=False``, through
    :mod:`neuroplug.persist`'s encoding when the layer is registered): a layer
    rebuilt from the file computes the same outputs.
``check_backends``
    on every installed backend (``get_plugin_manager().backends``) the
    layer's weights, outputs and gradients agree with the NumPy reference in
    float32 and float64, keep their dtype, and are reproducible.
``check_strict_arrays``
    on :class:`StrictOps`, whose arrays (:class:`StrictArray`) refuse NumPy
    functions (``__array__``, ``__array_function__`` and ``__array_ufunc__``
    raise :class:`StrictArrayError`) and have only the operators and methods
    NumPy arrays and torch tensors share, the layer initialises, runs forward
    and backward, returns backend arrays and agrees with the reference.  So a
    layer that calls NumPy on activations fails here, without a GPU.
``check_bad_input_shapes``
    ``forward`` refuses a batch of the wrong shape with a ``ValueError`` or
    ``TypeError`` whose message shows the shape it received.

Backends have their own kit, :func:`check_ops` (see :mod:`neuroplug.testing_ops`),
re-exported here with :func:`ops_checks`, :func:`parametrize_ops_checks` and
:class:`OpsCheckError`.

The pytest fixtures for plugin authors live in :mod:`neuroplug.pytest_plugin`.
"""

from __future__ import annotations

import io
import json
import numbers
import pickle
import re
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .layers.base import Layer
from .ops import Ops

__all__ = [
    "LayerCheckError",
    "LayerCheck",
    "LAYER_CHECKS",
    "check_layer",
    "layer_checks",
    "parametrize_layer_checks",
    "make_layer_factory",
    "finite_difference_gradient",
    "check_ops",
    "ops_checks",
    "parametrize_ops_checks",
    "OpsCheckError",
    "OpsCheck",
    "OPS_CHECKS",
    "StrictArray",
    "StrictArrayError",
    "StrictOps",
]

from .testing_ops import (  # noqa: E402
    OPS_CHECKS,
    OpsCheck,
    OpsCheckError,
    check_ops,
    ops_checks,
    parametrize_ops_checks,
)
from .testing_strict import StrictArray, StrictArrayError, StrictOps  # noqa: E402

LayerFactory = Any  # a Layer instance, a Layer class, a callable returning a Layer, or a spec string


class LayerCheckError(AssertionError):
    """A layer failed a conformance check; ``check`` names it, ``layer`` is the layer's repr."""

    def __init__(self, message: str, *, check: str, layer: str) -> None:
        super().__init__(message)
        self.check = check
        self.layer = layer

    def __reduce__(self) -> Any:
        # Keyword-only arguments: teach pickle (pytest-xdist, joblib) to rebuild it.
        return (_rebuild_check_error, (str(self), self.check, self.layer))


def _rebuild_check_error(message: str, check: str, layer: str) -> LayerCheckError:
    return LayerCheckError(message, check=check, layer=layer)


# ---------------------------------------------------------------------------
# Factories and the shared context of one run
# ---------------------------------------------------------------------------
def make_layer_factory(layer_factory: LayerFactory) -> Callable[[], Layer]:
    """Return a function that makes a fresh, uninitialised layer on each call.

    Parameters
    ----------
    layer_factory : Layer, type, callable or str
        A layer object (cloned on each call, so it is never modified), a
        layer class (called without arguments), any callable returning a
        layer, or a spec string such as ``"lrn:5"`` resolved through the
        plugin registry.
    """
    from sklearn.base import clone

    if isinstance(layer_factory, Layer):
        return lambda: clone(layer_factory)
    if isinstance(layer_factory, str):
        from .layers.spec import build_layer

        spec = layer_factory
        return lambda: build_layer(spec)
    if callable(layer_factory):

        def make() -> Layer:
            layer = layer_factory()
            if not isinstance(layer, Layer):
                raise TypeError(
                    "layer_factory must return a neuroplug.layers.Layer. "
                    f"Received: {layer!r} of type {type(layer).__name__}"
                )
            return layer

        return make
    raise TypeError(
        "layer_factory must be a Layer object, a Layer class, a callable returning a Layer or a spec "
        f"string such as 'lrn:5'. Received: layer_factory={layer_factory!r}"
    )


def _standard_normal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.standard_normal(shape)


@dataclass
class _Context:
    make: Callable[[], Layer]
    input_shape: tuple[int, ...]
    batch_size: int
    seed: int
    make_input: Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]
    backends: tuple[str, ...] | None
    grad_rtol: float
    grad_atol: float
    max_fd_entries: int
    _stochastic: bool | None = field(default=None, repr=False)

    # -- building blocks ---------------------------------------------------
    def layer(self, ops: Ops | None = None, dtype: Any = np.float64) -> Layer:
        """A fresh layer initialised on ``ops`` (the reference by default) from the seed."""
        layer = self.make()
        ops = ops if ops is not None else Ops()
        out = layer.initialize(
            self.input_shape, ops, np.random.default_rng(self.seed), dtype
        )
        _require(
            isinstance(out, tuple),
            f"initialize must return the output shape as a tuple; it returned {out!r}",
        )
        return layer

    def inputs(self, n: int | None = None, dtype: Any = np.float64) -> np.ndarray:
        """A batch of ``n`` inputs as a NumPy array of ``dtype``."""
        n = self.batch_size if n is None else n
        rng = np.random.default_rng(self.seed + 1000)
        X = np.asarray(self.make_input(rng, (n, *self.input_shape)))
        _require(
            X.shape == (n, *self.input_shape),
            f"make_input returned shape {X.shape}; expected {(n, *self.input_shape)}",
        )
        return X.astype(dtype)

    def train_forward(
        self, layer: Layer, X: np.ndarray, rng_seed: int | None = None
    ) -> np.ndarray:
        """Forward in training mode with a freshly seeded backend generator; returns NumPy."""
        ops = layer.ops
        layer.bind_rng(ops.make_rng(self.seed + 7 if rng_seed is None else rng_seed))
        return _np(ops, layer.forward(ops.asarray(X, dtype=layer.dtype), training=True))

    def eval_forward(self, layer: Layer, X: np.ndarray) -> np.ndarray:
        ops = layer.ops
        return _np(
            ops, layer.forward(ops.asarray(X, dtype=layer.dtype), training=False)
        )

    def backward(
        self, layer: Layer, dY: np.ndarray
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Backward; returns the input gradient and copies of the parameter gradients as NumPy."""
        ops = layer.ops
        dX = _np(ops, layer.backward(ops.asarray(dY, dtype=layer.dtype)))
        grads = getattr(layer, "grads", {}) or {}
        return dX, {
            k: (None if g is None else _np(ops, g).copy()) for k, g in grads.items()
        }

    def stochastic(self) -> bool:
        """Whether training-mode outputs depend on the generator (dropout, noise)."""
        if self._stochastic is None:
            layer = self.layer()
            X = self.inputs()
            a = self.train_forward(layer, X, rng_seed=self.seed + 11)
            b = self.train_forward(layer, X, rng_seed=self.seed + 12)
            self._stochastic = not np.array_equal(a, b)
        return self._stochastic

    def backend_names(self) -> list[str]:
        if self.backends is not None:
            return list(self.backends)
        from .plugins import get_plugin_manager

        return get_plugin_manager().backends.names()


def _np(ops: Any, x: Any) -> np.ndarray:
    return np.asarray(ops.to_numpy(x))


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


def _assert_close(
    actual: np.ndarray,
    desired: np.ndarray,
    *,
    rtol: float,
    atol: float,
    what: str,
    indices: Sequence[tuple[int, ...]] | None = None,
) -> None:
    """Elementwise ``|a - d| <= atol * max(1, max|d|) + rtol * |d|``, with a readable failure.

    ``indices`` gives the multi-index (in the array the values came from) of
    each entry when ``actual`` and ``desired`` are samples of a larger array.
    """
    actual = np.asarray(actual)
    desired = np.asarray(desired)
    _require(
        actual.shape == desired.shape,
        f"{what}: shape {actual.shape} != expected {desired.shape}",
    )
    if actual.size == 0:
        return
    _require(bool(np.isfinite(actual).all()), f"{what}: contains NaN or infinity")
    scale = max(1.0, float(np.abs(desired).max()))
    err = np.abs(actual.astype(np.float64) - desired.astype(np.float64))
    bound = atol * scale + rtol * np.abs(desired.astype(np.float64))
    if not (err <= bound).all():
        i = np.unravel_index(int(np.argmax(err - bound)), err.shape)
        where = (
            indices[i[0]]
            if indices is not None and actual.ndim == 1
            else tuple(int(j) for j in i)
        )
        bad = np.argwhere(err > bound)
        shown = [
            indices[int(b[0])]
            if indices is not None and actual.ndim == 1
            else tuple(int(j) for j in b)
            for b in bad[:4]
        ]
        got, want = float(actual[i]), float(desired[i])
        raise AssertionError(
            f"{what}: {len(bad)} of {err.size} entries differ (at {', '.join(map(str, shown))}"
            f"{', ...' if len(bad) > 4 else ''}); worst at index {where}: got {got:.7g}, expected {want:.7g}, "
            f"difference {abs(got - want):.3g} > allowed {float(bound[i]):.3g}. The allowed difference is "
            f"atol * scale + rtol * |expected| = {atol:g} * {scale:.3g} + {rtol:g} * {abs(want):.3g}, where scale = "
            f"max(1, largest |expected| entry) makes atol relative to the array's magnitude"
        )


def _weights_equal(
    a: dict[str, np.ndarray], b: dict[str, np.ndarray], what: str
) -> None:
    _require(
        sorted(a) == sorted(b), f"{what}: parameter names {sorted(a)} != {sorted(b)}"
    )
    for k in a:
        _require(np.array_equal(a[k], b[k]), f"{what}: parameter {k!r} differs")


def _params_equal(a: dict[str, Any], b: dict[str, Any]) -> bool:
    if sorted(a) != sorted(b):
        return False
    for k in a:
        x, y = a[k], b[k]
        if isinstance(x, np.ndarray) or isinstance(y, np.ndarray):
            if not np.array_equal(np.asarray(x), np.asarray(y)):
                return False
        elif x is not y and x != y:
            return False
    return True


# ---------------------------------------------------------------------------
# Finite differences
# ---------------------------------------------------------------------------
def finite_difference_gradient(
    f: Callable[[np.ndarray], float],
    x: np.ndarray,
    indices: Iterable[tuple[int, ...]],
    eps: float = 1e-6,
) -> np.ndarray:
    """Central differences ``(f(x + eps e_i) - f(x - eps e_i)) / (2 eps)`` at the given indices.

    ``x`` (float64) is modified during the call and restored afterwards.
    """
    out = []
    for idx in indices:
        old = x[idx]
        x[idx] = old + eps
        plus = f(x)
        x[idx] = old - eps
        minus = f(x)
        x[idx] = old
        out.append((plus - minus) / (2 * eps))
    return np.asarray(out, dtype=np.float64)


def _sample_indices(
    shape: tuple[int, ...], limit: int, rng: np.random.Generator
) -> list[tuple[int, ...]]:
    size = int(np.prod(shape))
    flat = (
        np.arange(size)
        if size <= limit
        else np.sort(rng.choice(size, limit, replace=False))
    )
    return [tuple(int(j) for j in np.unravel_index(int(i), shape)) for i in flat]


# ---------------------------------------------------------------------------
# The checks
# ---------------------------------------------------------------------------
def check_hyperparameters(ctx: _Context) -> None:
    """``__init__`` stores, ``initialize``/training leave ``get_params()`` alone, clone works."""
    from sklearn.base import clone

    layer = ctx.make()
    _require(
        isinstance(layer, Layer),
        f"the factory made {type(layer).__name__}, not a neuroplug Layer",
    )
    before = layer.get_params(deep=False)
    repr(layer)
    twin = clone(layer)
    _require(
        _params_equal(twin.get_params(deep=False), before),
        "clone() changed the hyper-parameters: __init__ must store its arguments unchanged",
    )
    ops = Ops()
    layer.initialize(ctx.input_shape, ops, np.random.default_rng(ctx.seed), np.float64)
    X = ctx.inputs()
    Y = ctx.train_forward(layer, X)
    ctx.backward(layer, np.ones_like(Y))
    _require(
        _params_equal(layer.get_params(deep=False), before),
        "initialize/forward/backward changed get_params(): keep derived values in attributes "
        f"ending in '_', never in the hyper-parameters. Before: {before}, after: {layer.get_params(deep=False)}",
    )
    fresh = clone(layer)
    _require(
        getattr(fresh, "params", None) in (None, {}),
        "clone() of a trained layer kept its parameters: only __init__ arguments may survive a clone",
    )


def check_output_shape(ctx: _Context) -> None:
    """``initialize`` returns ``output_shape``; forward and backward shapes match it."""
    layer = ctx.make()
    declared = tuple(layer.output_shape(ctx.input_shape))
    out = layer.initialize(
        ctx.input_shape, Ops(), np.random.default_rng(ctx.seed), np.float64
    )
    _require(
        tuple(out) == declared,
        f"initialize returned {tuple(out)} but output_shape({ctx.input_shape}) is {declared}",
    )
    _require(
        all(isinstance(s, numbers.Integral) and s >= 1 for s in out),
        f"the output shape must be positive ints; got {out!r}",
    )
    for n in sorted({1, ctx.batch_size}):
        X = ctx.inputs(n)
        for training in (False, True):
            Y = ctx.train_forward(layer, X) if training else ctx.eval_forward(layer, X)
            _require(
                Y.shape == (n, *out),
                f"forward(training={training}) on a batch of shape {X.shape} returned {Y.shape}; "
                f"expected {(n, *out)}",
            )
        dX, _ = ctx.backward(layer, np.ones((n, *out)))
        _require(
            dX.shape == X.shape,
            f"backward returned {dX.shape}; expected the input's shape {X.shape}",
        )


def check_parameter_gradients(ctx: _Context) -> None:
    """Every parameter gets a finite gradient of its own shape."""
    layer = ctx.layer()
    params = getattr(layer, "params", None)
    _require(
        isinstance(params, dict),
        "initialize must set self.params to a dict (empty for layers without parameters)",
    )
    X = ctx.inputs()
    Y = ctx.train_forward(layer, X)
    _, grads = ctx.backward(
        layer, np.random.default_rng(ctx.seed + 3).standard_normal(Y.shape)
    )
    _require(
        sorted(grads) == sorted(params),
        f"self.grads has keys {sorted(grads)}; expected the parameter names {sorted(params)}",
    )
    for k, p in params.items():
        g = grads[k]
        _require(g is not None, f"backward left the gradient of {k!r} unset")
        _require(
            g.shape == tuple(p.shape),
            f"gradient of {k!r} has shape {g.shape}; the parameter has {tuple(p.shape)}",
        )
        _require(
            bool(np.isfinite(g).all()), f"gradient of {k!r} contains NaN or infinity"
        )


def check_dtypes(ctx: _Context) -> None:
    """float32 and float64 are preserved everywhere."""
    for dtype in (np.float32, np.float64):
        _check_dtype_on(ctx, Ops(), dtype)


def _check_dtype_on(ctx: _Context, ops: Ops, dtype: Any) -> None:
    name = np.dtype(dtype).name
    layer = ctx.layer(ops, dtype)
    for k, v in layer.params.items():
        _require(
            _np(ops, v).dtype == dtype,
            f"parameter {k!r} is {_np(ops, v).dtype} after initialize(dtype={name})",
        )
    X = ctx.inputs(dtype=dtype)
    Y = ctx.eval_forward(layer, X)
    _require(
        Y.dtype == dtype,
        f"forward(training=False) returned {Y.dtype} for a {name} input",
    )
    Y = ctx.train_forward(layer, X)
    _require(
        Y.dtype == dtype,
        f"forward(training=True) returned {Y.dtype} for a {name} input",
    )
    dX, grads = ctx.backward(layer, np.ones(Y.shape, dtype=dtype))
    _require(dX.dtype == dtype, f"backward returned {dX.dtype} for a {name} dY")
    for k, g in grads.items():
        _require(
            g is None or g.dtype == dtype,
            f"gradient of {k!r} is {None if g is None else g.dtype} in a {name} layer",
        )


def check_batch_independence(ctx: _Context) -> None:
    """At inference, sample i's output is the same alone and inside a batch."""
    layer = ctx.layer()
    X = ctx.inputs(max(ctx.batch_size, 2))
    Y = ctx.eval_forward(layer, X)
    for i in range(X.shape[0]):
        _assert_close(
            ctx.eval_forward(layer, X[i : i + 1])[0],
            Y[i],
            rtol=1e-10,
            atol=1e-12,
            what=f"inference output of sample {i} alone vs. inside its batch",
        )


def check_gradients(ctx: _Context) -> None:
    """Analytic gradients agree with central finite differences in float64."""
    layer = ctx.layer()
    X = ctx.inputs()
    Y = ctx.train_forward(layer, X)
    R = np.random.default_rng(ctx.seed + 5).standard_normal(Y.shape)
    dX, grads = ctx.backward(layer, R)
    pick = np.random.default_rng(ctx.seed + 6)

    def loss_x(x: np.ndarray) -> float:
        return float((ctx.train_forward(layer, x) * R).sum())

    idx = _sample_indices(X.shape, ctx.max_fd_entries, pick)
    num = finite_difference_gradient(loss_x, X.copy(), idx)
    ana = np.array([dX[i] for i in idx])
    _assert_close(
        ana,
        num,
        rtol=ctx.grad_rtol,
        atol=ctx.grad_atol,
        indices=idx,
        what=f"gradient with respect to the input (analytic vs. finite differences, {len(idx)} entries "
        f"of {X.shape})",
    )
    weights = layer.get_weights()
    for k, w in weights.items():

        def loss_w(p: np.ndarray, k: str = k) -> float:
            layer.set_weights({k: p})
            return loss_x(X)

        idx = _sample_indices(w.shape, ctx.max_fd_entries, pick)
        num = finite_difference_gradient(loss_w, w.astype(np.float64).copy(), idx)
        layer.set_weights({k: w})
        ana = np.array([grads[k][i] for i in idx])
        _assert_close(
            ana,
            num,
            rtol=ctx.grad_rtol,
            atol=ctx.grad_atol,
            indices=idx,
            what=f"gradient with respect to parameter {k!r} (analytic vs. finite differences, "
            f"{len(idx)} entries of {w.shape})",
        )


def check_determinism(ctx: _Context) -> None:
    """Same seeds, same weights and outputs; inference changes nothing."""
    a, b = ctx.layer(), ctx.layer()
    _weights_equal(
        a.get_weights(), b.get_weights(), "two layers initialised from the same seed"
    )
    X = ctx.inputs()
    ya = ctx.eval_forward(a, X)
    _require(
        np.array_equal(ya, ctx.eval_forward(b, X)),
        "two identical layers gave different inference outputs",
    )
    w = a.get_weights()
    _require(
        np.array_equal(ya, ctx.eval_forward(a, X)),
        "inference gave a different output the second time",
    )
    _weights_equal(a.get_weights(), w, "weights after inference")
    ta, tb = ctx.train_forward(a, X), ctx.train_forward(b, X)
    _require(
        np.array_equal(ta, tb),
        "training outputs differ for identical layers and the same generator seed",
    )
    R = np.random.default_rng(ctx.seed + 5).standard_normal(ta.shape)
    da, ga = ctx.backward(a, R)
    db, gb = ctx.backward(b, R)
    _require(
        np.array_equal(da, db), "input gradients differ for identical layers and inputs"
    )
    for k in ga:
        _require(
            ga[k] is None or np.array_equal(ga[k], gb[k]),
            f"gradients of {k!r} differ for identical layers",
        )


def check_pickle(ctx: _Context) -> None:
    """Fresh and trained layers survive pickle with parameters and state."""
    fresh = ctx.make()
    twin = pickle.loads(pickle.dumps(fresh))
    _require(
        _params_equal(twin.get_params(deep=False), fresh.get_params(deep=False)),
        "pickle changed the hyper-parameters of an uninitialised layer",
    )
    layer = ctx.layer()
    X = ctx.inputs()
    Y = ctx.train_forward(layer, X)
    R = np.random.default_rng(ctx.seed + 5).standard_normal(Y.shape)
    ctx.backward(layer, R)
    copy = pickle.loads(pickle.dumps(layer))
    _weights_equal(
        copy.get_weights(), layer.get_weights(), "weights after a pickle round trip"
    )
    _require(
        np.array_equal(ctx.eval_forward(copy, X), ctx.eval_forward(layer, X)),
        "inference output changed after a pickle round trip",
    )
    # Training goes on from the restored object exactly as from the original.
    ya, yb = ctx.train_forward(layer, X), ctx.train_forward(copy, X)
    _require(
        np.array_equal(ya, yb), "training output changed after a pickle round trip"
    )
    da, _ = ctx.backward(layer, R)
    db, _ = ctx.backward(copy, R)
    _require(np.array_equal(da, db), "backward changed after a pickle round trip")


def _registered_name(layer: Layer) -> str | None:
    from .plugins import get_plugin_manager

    for entry in get_plugin_manager().layers:
        if entry.obj is type(layer):
            return entry.name
    return None


def _safe_round_trip(layer: Layer) -> tuple[Layer, dict[str, np.ndarray]]:
    """Write ``layer``'s hyper-parameters and weights to JSON + ``.npz`` and read them back.

    A registered layer goes through :mod:`neuroplug.persist`'s encoding (the
    one estimators' model files use, which rebuilds the layer by its
    registered name); an unregistered class through plain JSON of
    ``get_params()``.  Arrays are always read with ``allow_pickle=False``.
    """
    weights = layer.get_weights()
    for k, w in weights.items():
        _require(
            isinstance(w, np.ndarray) and w.dtype.kind in "fiub",
            f"get_weights()[{k!r}] must be a numeric NumPy array; got {type(w).__name__} {getattr(w, 'dtype', '')}",
        )
    try:
        from .persist import _Decoder, _Encoder
    except ImportError:  # pragma: no cover - persist ships with neuroplug
        _Encoder = _Decoder = None  # type: ignore[assignment,misc]
    registered = _registered_name(layer) is not None and _Encoder is not None
    arrays: dict[str, np.ndarray] = {}
    if registered:
        enc = _Encoder()
        try:
            tree = enc.encode({"layer": layer, "weights": weights}, "layer")
        except ValueError as exc:
            raise AssertionError(
                f"the safe model format cannot store this layer: {exc}"
            ) from exc
        arrays = enc.arrays
    else:
        tree = layer.get_params(deep=False)
        arrays = {f"w_{k}": v for k, v in weights.items()}
    try:
        text = json.dumps(tree, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise AssertionError(
            f"the hyper-parameters must be JSON values (numbers, strings, lists, dicts) for the safe model "
            f"format: {exc}. Received: get_params()={layer.get_params(deep=False)!r}"
        ) from exc
    buf = io.BytesIO()
    np.savez(buf, allow_pickle=False, **arrays)
    buf.seek(0)
    with np.load(buf, allow_pickle=False) as data:
        loaded = {k: data[k] for k in data.files}
    tree = json.loads(text)
    if registered:
        decoded = _Decoder(loaded).decode(tree)
        return decoded["layer"], decoded["weights"]
    return type(layer)(**tree), {k[2:]: v for k, v in loaded.items()}


def check_safe_format(ctx: _Context) -> None:
    """Hyper-parameters and weights survive JSON + npz; the rebuilt layer computes the same."""
    for dtype in (np.float32, np.float64):
        layer = ctx.layer(dtype=dtype)
        X = ctx.inputs(dtype=dtype)
        Y = ctx.train_forward(layer, X)
        ctx.backward(layer, np.ones_like(Y))
        rebuilt, weights = _safe_round_trip(layer)
        _require(
            type(rebuilt) is type(layer),
            f"the model format rebuilt a {type(rebuilt).__name__}",
        )
        _require(
            _params_equal(rebuilt.get_params(deep=False), layer.get_params(deep=False)),
            f"hyper-parameters changed through the model format: {rebuilt.get_params(deep=False)} != "
            f"{layer.get_params(deep=False)}",
        )
        # A different init seed, so that only the loaded weights can make the outputs agree.
        rebuilt.initialize(
            ctx.input_shape, Ops(), np.random.default_rng(ctx.seed + 99), dtype
        )
        rebuilt.set_weights(weights)
        _weights_equal(
            rebuilt.get_weights(),
            layer.get_weights(),
            "weights after the model format round trip",
        )
        _require(
            np.array_equal(ctx.eval_forward(rebuilt, X), ctx.eval_forward(layer, X)),
            "a layer rebuilt from the model format computes a different output",
        )


def check_backends(ctx: _Context) -> None:
    """Every installed backend agrees with the NumPy reference, keeps dtypes and is reproducible."""
    from .backends import get_ops

    stochastic = ctx.stochastic()
    tolerances = {np.float32: (1e-4, 1e-5), np.float64: (1e-7, 1e-10)}
    for name in ctx.backend_names():
        try:
            ops = get_ops(name)
        except Exception as exc:  # noqa: BLE001 - a backend that cannot start here is skipped, loudly
            warnings.warn(
                f"check_backends skipped backend {name!r}: it could not start here ({exc})",
                stacklevel=2,
            )
            continue
        for dtype, (rtol, atol) in tolerances.items():
            where = f"backend {name!r}, {np.dtype(dtype).name}"
            try:
                _check_dtype_on(ctx, ops, dtype)
                ref, lay = ctx.layer(Ops(), dtype), ctx.layer(ops, dtype)
                for k, w in ref.get_weights().items():
                    _assert_close(
                        lay.get_weights()[k],
                        w,
                        rtol=0,
                        atol=0,
                        what=f"initial parameter {k!r}",
                    )
                X = ctx.inputs(dtype=dtype)
                _assert_close(
                    ctx.eval_forward(lay, X),
                    ctx.eval_forward(ref, X),
                    rtol=rtol,
                    atol=atol,
                    what="inference output",
                )
                y1 = ctx.train_forward(lay, X)
                _require(
                    np.array_equal(y1, ctx.train_forward(lay, X)),
                    "training output is not reproducible for the same generator seed",
                )
                if stochastic:
                    continue  # the backends' generators differ; randomness is compared by shape only
                _assert_close(
                    y1,
                    ctx.train_forward(ref, X),
                    rtol=rtol,
                    atol=atol,
                    what="training output",
                )
                R = (
                    np.random.default_rng(ctx.seed + 5)
                    .standard_normal(y1.shape)
                    .astype(dtype)
                )
                dX, grads = ctx.backward(lay, R)
                dX_ref, grads_ref = ctx.backward(ref, R)
                _assert_close(dX, dX_ref, rtol=rtol, atol=atol, what="input gradient")
                for k, g in grads_ref.items():
                    _assert_close(
                        grads[k], g, rtol=rtol, atol=atol, what=f"gradient of {k!r}"
                    )
            except AssertionError as exc:
                raise AssertionError(f"{where}: {exc}") from exc
            except Exception as exc:  # noqa: BLE001 - name the backend whatever went wrong
                raise AssertionError(
                    f"{where}: raised {type(exc).__name__}: {exc}"
                ) from exc


def check_strict_arrays(ctx: _Context) -> None:
    """The layer runs on :class:`StrictOps`, whose arrays refuse NumPy functions, and agrees with the reference."""
    from .testing_strict import StrictArray, StrictOps

    for dtype in (np.float32, np.float64):
        ops = StrictOps()
        phase = "initialize"
        try:
            layer, ref = ctx.layer(ops, dtype), ctx.layer(Ops(), dtype)
            ref.set_weights(
                layer.get_weights()
            )  # compare the computation only (check_determinism owns seeding)
            for k, v in layer.params.items():
                _require(
                    isinstance(v, StrictArray),
                    f"initialize left parameter {k!r} a {type(v).__name__}, not a backend array "
                    "(Layer.initialize converts init_params with ops.asarray; keep that)",
                )
            X = ctx.inputs(dtype=dtype)
            for training in (False, True):
                phase = f"forward(training={training})"
                if training:
                    layer.bind_rng(ops.make_rng(ctx.seed + 7))
                Y = layer.forward(ops.asarray(X, dtype=dtype), training=training)
                _require(
                    isinstance(Y, StrictArray),
                    f"{phase} returned a {type(Y).__name__}, not a backend array: build outputs from the input "
                    "and self.ops (ops.alloc, ops.asarray), never from NumPy",
                )
                want = (
                    ctx.train_forward(ref, X) if training else ctx.eval_forward(ref, X)
                )
                _assert_close(
                    ops.to_numpy(Y),
                    want,
                    rtol=1e-6,
                    atol=1e-7,
                    what=f"{phase} on strict arrays",
                )
            phase = "backward"
            R = (
                np.random.default_rng(ctx.seed + 5)
                .standard_normal(want.shape)
                .astype(dtype)
            )
            dX = layer.backward(ops.asarray(R))
            _require(
                isinstance(dX, StrictArray),
                f"backward returned a {type(dX).__name__}, not a backend array",
            )
            dX_ref, grads_ref = ctx.backward(ref, R)
            _assert_close(
                ops.to_numpy(dX),
                dX_ref,
                rtol=1e-6,
                atol=1e-7,
                what="input gradient on strict arrays",
            )
            for k, g in layer.grads.items():
                _require(
                    isinstance(g, StrictArray),
                    f"backward left the gradient of {k!r} a {type(g).__name__}, "
                    "not a backend array",
                )
                _assert_close(
                    ops.to_numpy(g),
                    grads_ref[k],
                    rtol=1e-6,
                    atol=1e-7,
                    what=f"gradient of {k!r}",
                )
        except AssertionError as exc:
            raise AssertionError(f"{np.dtype(dtype).name}, {phase}: {exc}") from exc
        except (
            Exception
        ) as exc:  # StrictArrayError, or whatever a NumPy call on a tensor raises
            raise AssertionError(
                f"{np.dtype(dtype).name}, {phase} on the strict test backend (arrays that refuse NumPy, as GPU "
                f"tensors do) raised {type(exc).__name__}: {exc}"
            ) from exc


def check_bad_input_shapes(ctx: _Context) -> None:
    """``forward`` refuses wrongly shaped batches with a clear error showing the shape received."""
    layer = ctx.layer()
    n = 2
    s = ctx.input_shape
    bad = [
        (n, *s[:-1], s[-1] + 1),  # wrong size of the last axis
        (n, *s, 1),  # one axis too many
        s,  # the batch axis forgotten
    ]
    for shape in bad:
        X = np.random.default_rng(ctx.seed).standard_normal(shape)
        for training in (False, True):
            try:
                if training:
                    layer.bind_rng(layer.ops.make_rng(ctx.seed))
                layer.forward(
                    layer.ops.asarray(X, dtype=layer.dtype), training=training
                )
            except (ValueError, TypeError) as exc:
                numbers_in_message = [int(t) for t in re.findall(r"\d+", str(exc))]
                _require(
                    _contains_run(numbers_in_message, shape)
                    or _contains_run(numbers_in_message, shape[1:]),
                    f"forward(training={training}) refused a batch of shape {shape}, but its message does not "
                    f"show the shape it received: {type(exc).__name__}: {exc}",
                )
            except Exception as exc:  # noqa: BLE001 - any other type is itself the failure
                raise AssertionError(
                    f"forward(training={training}) on a batch of shape {shape} (the layer was initialised for "
                    f"{s}) raised {type(exc).__name__}: {exc}; it should raise a ValueError saying which shape "
                    "it expected and which it received"
                ) from exc
            else:
                raise AssertionError(
                    f"forward(training={training}) accepted a batch of shape {shape} although the layer was "
                    f"initialised for per-sample shape {s}; raise a ValueError naming the shape received"
                )


def _contains_run(haystack: Sequence[int], needle: Sequence[int]) -> bool:
    needle = list(needle)
    if not needle:
        return False
    return any(
        list(haystack[i : i + len(needle)]) == needle
        for i in range(len(haystack) - len(needle) + 1)
    )


#: Every check, in the order :func:`check_layer` runs them.
LAYER_CHECKS: dict[str, Callable[[_Context], None]] = {
    "check_hyperparameters": check_hyperparameters,
    "check_output_shape": check_output_shape,
    "check_parameter_gradients": check_parameter_gradients,
    "check_dtypes": check_dtypes,
    "check_batch_independence": check_batch_independence,
    "check_gradients": check_gradients,
    "check_determinism": check_determinism,
    "check_pickle": check_pickle,
    "check_safe_format": check_safe_format,
    "check_backends": check_backends,
    "check_strict_arrays": check_strict_arrays,
    "check_bad_input_shapes": check_bad_input_shapes,
}


# ---------------------------------------------------------------------------
# Public entry points
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class LayerCheck:
    """One named conformance check bound to one layer; call it to run it."""

    name: str
    layer: str
    _run: Callable[[], None] = field(repr=False)

    def __call__(self) -> None:
        """Run the check; raise :class:`LayerCheckError` naming the check and the layer on failure."""
        try:
            self._run()
        except LayerCheckError:
            raise
        except AssertionError as exc:
            raise LayerCheckError(
                f"{self.layer} failed {self.name}: {exc}",
                check=self.name,
                layer=self.layer,
            ) from exc
        except Exception as exc:
            raise LayerCheckError(
                f"{self.layer} failed {self.name}: it raised {type(exc).__name__}: {exc}",
                check=self.name,
                layer=self.layer,
            ) from exc

    @property
    def id(self) -> str:
        """A short test id: ``"<layer>-<check>"``."""
        return f"{self.layer}-{self.name}"


def _validate_shape(input_shape: Any) -> tuple[int, ...]:
    if (
        not isinstance(input_shape, (tuple, list))
        or not input_shape
        or not all(
            isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 1
            for s in input_shape
        )
    ):
        raise ValueError(
            "input_shape must be a non-empty tuple of positive ints, one sample's shape without the batch axis "
            f"such as (3, 5, 4). Received: input_shape={input_shape!r}"
        )
    return tuple(int(s) for s in input_shape)


def layer_checks(
    layer_factory: LayerFactory,
    input_shape: Sequence[int] = (3, 5, 4),
    *,
    batch_size: int = 3,
    seed: int = 0,
    make_input: Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]
    | None = None,
    backends: Iterable[str] | None = None,
    skip: Iterable[str] = (),
    grad_rtol: float = 1e-4,
    grad_atol: float = 1e-6,
    max_fd_entries: int = 24,
) -> list[LayerCheck]:
    """Return the conformance checks for one layer, each callable on its own.

    Parameters are those of :func:`check_layer`.
    """
    make = make_layer_factory(layer_factory)
    shape = _validate_shape(input_shape)
    if (
        not isinstance(batch_size, numbers.Integral)
        or isinstance(batch_size, bool)
        or batch_size < 1
    ):
        raise ValueError(
            f"batch_size must be a positive int. Received: batch_size={batch_size!r}"
        )
    skip = set(skip)
    unknown = skip - set(LAYER_CHECKS)
    if unknown:
        raise ValueError(
            f"skip names unknown checks {sorted(unknown)}; known checks: {', '.join(LAYER_CHECKS)}. "
            f"Received: skip={sorted(skip)}"
        )
    label = layer_factory if isinstance(layer_factory, str) else repr(make())
    label = re.sub(r"\s+", "", label)
    ctx = _Context(
        make=make,
        input_shape=shape,
        batch_size=int(batch_size),
        seed=int(seed),
        make_input=make_input or _standard_normal,
        backends=None if backends is None else tuple(backends),
        grad_rtol=grad_rtol,
        grad_atol=grad_atol,
        max_fd_entries=int(max_fd_entries),
    )
    return [
        LayerCheck(name, label, lambda fn=fn: fn(ctx))  # type: ignore[misc]
        for name, fn in LAYER_CHECKS.items()
        if name not in skip
    ]


def check_layer(
    layer_factory: LayerFactory,
    input_shape: Sequence[int] = (3, 5, 4),
    *,
    batch_size: int = 3,
    seed: int = 0,
    make_input: Callable[[np.random.Generator, tuple[int, ...]], np.ndarray]
    | None = None,
    backends: Iterable[str] | None = None,
    skip: Iterable[str] = (),
    grad_rtol: float = 1e-4,
    grad_atol: float = 1e-6,
    max_fd_entries: int = 24,
) -> None:
    """Check that a layer honours the :class:`~neuroplug.layers.Layer` contract.

    Runs every check of :data:`LAYER_CHECKS` (see the module docstring) and
    raises :class:`LayerCheckError` at the first failure, naming the check
    and the layer.

    Parameters
    ----------
    layer_factory : Layer, type, callable or str
        What makes the layer under test: a layer object (cloned for every
        use), a layer class, a callable returning a fresh layer, or a spec
        string such as ``"lrn:5"``.
    input_shape : tuple of int, default=(3, 5, 4)
        One sample's shape (no batch axis): ``(channels, height, width)`` for
        image layers, ``(n_features,)`` for vector layers.  The default is not
        square so that swapped axes show.
    batch_size : int, default=3
        Samples per test batch.
    seed : int, default=0
        Seeds every generator the checks use.
    make_input : callable, optional
        ``make_input(rng, shape) -> ndarray`` for layers whose inputs must lie
        in a domain (default: standard normal).
    backends : iterable of str, optional
        Backend names to compare with the reference (default: every
        installed backend).
    skip : iterable of str
        Names of checks not to run.
    grad_rtol, grad_atol : float
        Tolerances of the finite-difference gradient check (float64).
    max_fd_entries : int, default=24
        Entries per array probed by finite differences (chosen at random
        when an array is larger), which keeps the check fast.

    Raises
    ------
    LayerCheckError
        When a check fails.
    """
    for check in layer_checks(
        layer_factory,
        input_shape,
        batch_size=batch_size,
        seed=seed,
        make_input=make_input,
        backends=backends,
        skip=skip,
        grad_rtol=grad_rtol,
        grad_atol=grad_atol,
        max_fd_entries=max_fd_entries,
    ):
        check()


def parametrize_layer_checks(*cases: Any, **kwargs: Any) -> Any:
    """``pytest.mark.parametrize("layer_check", ...)`` over the checks of several layers.

    Each case is a layer factory or a ``(layer_factory, input_shape)`` pair;
    keyword arguments go to :func:`layer_checks`.  The test receives one
    :class:`LayerCheck` per call and calls it::

        @parametrize_layer_checks((LocalResponseNorm(3), (6, 4, 4)), (ELU(), (5,)))
        def test_layers(layer_check):
            layer_check()
    """
    import pytest

    params = []
    for case in cases:
        factory, shape = case if isinstance(case, tuple) else (case, (3, 5, 4))
        for check in layer_checks(factory, shape, **kwargs):
            params.append(pytest.param(check, id=check.id))
    return pytest.mark.parametrize("layer_check", params)
