"""What a fitted estimator's state must look like: checked when a model file is loaded.

:func:`neuroplug.load` rebuilds an estimator from a file and then calls
:func:`check_state`, so a file whose state would only fail later (a
``components_`` stored as a list, a missing ``classes_``, weights whose
shapes disagree with the layers) is refused at load time with a message
that names the attribute, what it holds and what was expected.

:data:`SCHEMAS` maps each estimator class name to its :class:`Schema`: the
fitted attributes it must hold (all or none: an unfitted estimator holds
none), the ones it may hold, the kind of value each is, and a function that
checks the attributes against each other (shapes that must agree).  Random
generator states are checked by :func:`check_generator_state`, since NumPy
trusts a state's positions and a crafted one reads outside its buffers.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["SCHEMAS", "Schema", "check_generator_state", "check_state"]

_FLOAT_DTYPES = ("float32", "float64")
_CHUNK = (
    1 << 20
)  # elements per finiteness check, so a check never doubles a large array


# ------------------------------------------------------------------------------- value kinds
def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"a {value.ndim}-D {value.dtype} array of shape {value.shape}"
    return f"a {type(value).__name__} ({value!r:.60})"


def _all_finite(a: np.ndarray) -> bool:
    flat = a.reshape(-1)
    return all(
        np.isfinite(flat[i : i + _CHUNK]).all() for i in range(0, flat.size, _CHUNK)
    )


@dataclass(frozen=True)
class Weights:
    """A float32/float64 array of ``ndim`` dimensions with finite values."""

    ndim: int

    def check(self, value: Any, name: str) -> None:
        if not (
            isinstance(value, np.ndarray)
            and value.ndim == self.ndim
            and value.dtype.name in _FLOAT_DTYPES
        ):
            raise ValueError(
                f"{name} must be a {self.ndim}-D float32 or float64 array. Received: {_describe(value)}"
            )
        if not _all_finite(value):
            raise ValueError(
                f"{name} holds NaN or infinite values: the model diverged before it was saved; refit it"
            )


@dataclass(frozen=True)
class WeightList:
    """A non-empty list of :class:`Weights` arrays."""

    ndim: int

    def check(self, value: Any, name: str) -> None:
        if not isinstance(value, list) or not value:
            raise ValueError(
                f"{name} must be a non-empty list of {self.ndim}-D arrays. Received: {_describe(value)}"
            )
        for i, item in enumerate(value):
            Weights(self.ndim).check(item, f"{name}[{i}]")


@dataclass(frozen=True)
class Labels:
    """A non-empty 1-D array of distinct numbers or strings (a classifier's ``classes_``)."""

    def check(self, value: Any, name: str) -> None:
        if not (
            isinstance(value, np.ndarray)
            and value.ndim == 1
            and value.size >= 1
            and value.dtype.kind in "biufUS"
        ):
            raise ValueError(
                f"{name} must be a non-empty 1-D array of labels. Received: {_describe(value)}"
            )
        if np.unique(value).size != value.size:
            raise ValueError(
                f"{name} must hold distinct labels. Received: {value!r:.200}"
            )


@dataclass(frozen=True)
class Int:
    """An int (not a bool) of at least ``low``."""

    low: int = 0

    def check(self, value: Any, name: str) -> None:
        if (
            not isinstance(value, numbers.Integral)
            or isinstance(value, bool)
            or value < self.low
        ):
            raise ValueError(
                f"{name} must be an int >= {self.low}. Received: {_describe(value)}"
            )


@dataclass(frozen=True)
class Shape:
    """A tuple of ``lengths`` positive ints."""

    lengths: tuple[int, ...]

    def check(self, value: Any, name: str) -> None:
        if not (
            isinstance(value, tuple)
            and len(value) in self.lengths
            and all(
                isinstance(s, numbers.Integral) and not isinstance(s, bool) and s >= 1
                for s in value
            )
        ):
            n = " or ".join(map(str, self.lengths))
            raise ValueError(
                f"{name} must be a tuple of {n} positive ints. Received: {_describe(value)}"
            )


@dataclass(frozen=True)
class Numbers:
    """A list of real numbers (a loss or error curve)."""

    def check(self, value: Any, name: str) -> None:
        if not isinstance(value, list) or not all(
            isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value
        ):
            raise ValueError(
                f"{name} must be a list of numbers. Received: {_describe(value)}"
            )


@dataclass(frozen=True)
class OptionalNumber:
    """A real number or None."""

    def check(self, value: Any, name: str) -> None:
        if value is not None and (
            not isinstance(value, numbers.Real) or isinstance(value, bool)
        ):
            raise ValueError(
                f"{name} must be a number or None. Received: {_describe(value)}"
            )


@dataclass(frozen=True)
class OptionalNumbers:
    """A list of real numbers or None."""

    def check(self, value: Any, name: str) -> None:
        if value is not None:
            Numbers().check(value, name)


@dataclass(frozen=True)
class OneOf:
    """One of a few strings."""

    values: tuple[str, ...]

    def check(self, value: Any, name: str) -> None:
        if value not in self.values:
            raise ValueError(
                f"{name} must be one of {', '.join(map(repr, self.values))}. Received: {_describe(value)}"
            )


@dataclass(frozen=True)
class Estimators:
    """A non-empty list of fitted estimators of class ``cls_name`` (a stack's layers)."""

    cls_name: str
    fitted_by: str

    def check(self, value: Any, name: str) -> None:
        if not isinstance(value, list) or not value:
            raise ValueError(
                f"{name} must be a non-empty list of {self.cls_name}. Received: {_describe(value)}"
            )
        for i, item in enumerate(value):
            if type(item).__name__ != self.cls_name:
                raise ValueError(
                    f"{name}[{i}] must be a {self.cls_name}. Received: {_describe(item)}"
                )
            if not hasattr(item, self.fitted_by):
                raise ValueError(
                    f"{name}[{i}] must be a fitted {self.cls_name}; it has no {self.fitted_by}"
                )


@dataclass(frozen=True)
class Layers:
    """A non-empty tuple of neuroplug layers."""

    def check(self, value: Any, name: str) -> None:
        from .layers.base import Layer

        if (
            not isinstance(value, tuple)
            or not value
            or not all(isinstance(v, Layer) for v in value)
        ):
            raise ValueError(
                f"{name} must be a non-empty tuple of layers. Received: {_describe(value)}"
            )


@dataclass(frozen=True)
class LayerWeights:
    """A list with one dict per layer of ``{name: weights}`` (a network's parameters)."""

    def check(self, value: Any, name: str) -> None:
        if not isinstance(value, list) or not all(isinstance(d, dict) for d in value):
            raise ValueError(
                f"{name} must be a list of dicts of arrays, one per layer. Received: {_describe(value)}"
            )
        for i, d in enumerate(value):
            for key, arr in d.items():
                if (
                    not isinstance(arr, np.ndarray)
                    or arr.dtype.name not in _FLOAT_DTYPES
                ):
                    raise ValueError(
                        f"{name}[{i}][{key!r}] must be a float array. Received: {_describe(arr)}"
                    )
                if not _all_finite(arr):
                    raise ValueError(
                        f"{name}[{i}][{key!r}] holds NaN or infinite values: the model diverged before it was "
                        "saved; refit it"
                    )


# ---------------------------------------------------------------------------- schemas
@dataclass(frozen=True)
class Schema:
    """The fitted state of one estimator class.

    Parameters
    ----------
    required : dict
        Attribute name to kind; a fitted estimator holds all of them, an
        unfitted one none.
    optional : dict
        Attributes checked only when present.
    consistency : callable
        ``consistency(estimator)`` raises ``ValueError`` when the attributes
        disagree with each other or with the hyper-parameters.
    """

    required: dict[str, Any]
    optional: dict[str, Any] = field(default_factory=dict)
    consistency: Callable[[Any], None] | None = None


def _expect_shape(name: str, arr: np.ndarray, shape: tuple[int, ...], why: str) -> None:
    if tuple(arr.shape) != tuple(shape):
        raise ValueError(
            f"{name} must have shape {tuple(shape)} ({why}). Received: shape {tuple(arr.shape)}"
        )


def _expect_dtype(est: Any, names: list[str]) -> None:
    dtype = est.dtype_
    for name in names:
        arr = getattr(est, name)
        if arr.dtype.name != dtype:
            raise ValueError(
                f"{name} must have dtype {dtype} (dtype_). Received: {arr.dtype}"
            )


def _hyper_int(est: Any, param: str) -> int | None:
    value = getattr(est, param, None)
    return (
        int(value)
        if isinstance(value, numbers.Integral) and not isinstance(value, bool)
        else None
    )


def _check_rbm(est: Any) -> None:
    h, v = est.components_.shape
    _expect_shape(
        "intercept_hidden_",
        est.intercept_hidden_,
        (h,),
        "one bias per hidden unit of components_",
    )
    _expect_shape(
        "intercept_visible_",
        est.intercept_visible_,
        (v,),
        "one bias per visible unit of components_",
    )
    if est.n_features_in_ != v:
        raise ValueError(
            f"n_features_in_ must be {v} (the columns of components_). Received: {est.n_features_in_}"
        )
    n_components = _hyper_int(est, "n_components")
    if n_components is not None and n_components != h:
        raise ValueError(
            f"components_ must have n_components={n_components} rows. Received: shape {(h, v)}"
        )
    if hasattr(est, "visible_mean_"):
        _expect_shape("visible_mean_", est.visible_mean_, (v,), "one mean per feature")
    _expect_dtype(est, ["components_", "intercept_hidden_", "intercept_visible_"])


def _check_conv_rbm(est: Any) -> None:
    f, c, kh, kw = est.components_.shape
    _, h, w = est.input_shape_
    filters = _hyper_int(est, "filters")
    if filters is not None and filters != f:
        raise ValueError(
            f"components_ must hold filters={filters} filters. Received: shape {est.components_.shape}"
        )
    _expect_shape(
        "intercept_hidden_",
        est.intercept_hidden_,
        (f,),
        "one bias per filter of components_",
    )
    _expect_shape(
        "intercept_visible_",
        est.intercept_visible_,
        (c,),
        "one bias per input channel of components_",
    )
    if est.input_shape_[0] != c or kh > h or kw > w:
        raise ValueError(
            f"input_shape_ must have {c} channels and be at least as large as the {kh}x{kw} filters of "
            f"components_. Received: input_shape_={est.input_shape_}"
        )
    if est.n_features_in_ != c * h * w:
        raise ValueError(
            f"n_features_in_ must be {c * h * w} (input_shape_={est.input_shape_}). Received: {est.n_features_in_}"
        )
    hidden = (f, h - kh + 1, w - kw + 1)
    if tuple(est.hidden_shape_) != hidden:
        raise ValueError(
            f"hidden_shape_ must be {hidden} (valid convolution). Received: {est.hidden_shape_}"
        )
    ph, pw = est.pool_size_
    output = (f, -(-hidden[1] // ph), -(-hidden[2] // pw))
    if tuple(est.output_shape_) != output:
        raise ValueError(
            f"output_shape_ must be {output} (pool_size_={est.pool_size_}). Received: {est.output_shape_}"
        )
    _expect_dtype(est, ["components_", "intercept_hidden_", "intercept_visible_"])


def _check_stack_length(est: Any, param: str) -> None:
    sizes = getattr(est, param, None)
    if isinstance(sizes, (list, tuple)) and len(sizes) != len(est.rbms_):
        raise ValueError(
            f"rbms_ must hold one model per entry of {param}={tuple(sizes)}. Received: {len(est.rbms_)}"
        )


def _check_dbn(est: Any) -> None:
    _check_stack_length(est, "hidden_layer_sizes")
    n_in = est.n_features_in_
    for i, rbm in enumerate(est.rbms_):
        if rbm.n_features_in_ != n_in:
            raise ValueError(
                f"rbms_[{i}] must take {n_in} inputs (the outputs of the layer below). Received: {rbm.n_features_in_}"
            )
        n_in = rbm.components_.shape[0]


def _check_conv_dbn(est: Any) -> None:
    _check_stack_length(est, "filters")
    if est.n_features_in_ != math.prod(est.input_shape_):
        raise ValueError(
            f"n_features_in_ must be {math.prod(est.input_shape_)} (input_shape_). Received: {est.n_features_in_}"
        )
    shape = tuple(est.input_shape_)
    for i, rbm in enumerate(est.rbms_):
        if tuple(rbm.input_shape_) != shape:
            raise ValueError(
                f"rbms_[{i}] must take inputs of shape {shape}. Received: input_shape_={rbm.input_shape_}"
            )
        shape = tuple(rbm.output_shape_)
    if tuple(est.output_shape_) != shape:
        raise ValueError(
            f"output_shape_ must be {shape} (the last layer's). Received: {est.output_shape_}"
        )


def _check_sbn(est: Any) -> None:
    gw, gb, rw, rb = (
        est.generative_weights_,
        est.generative_biases_,
        est.recognition_weights_,
        est.recognition_biases_,
    )
    n_layers = len(gw)
    if (len(gb), len(rw), len(rb)) != (n_layers + 1, n_layers, n_layers):
        raise ValueError(
            f"generative_biases_, recognition_weights_ and recognition_biases_ must hold {n_layers + 1}, "
            f"{n_layers} and {n_layers} arrays for {n_layers} generative_weights_. "
            f"Received: {len(gb)}, {len(rw)} and {len(rb)}"
        )
    sizes = [est.n_features_in_] + [w.shape[0] for w in gw]
    hidden = getattr(est, "hidden_layer_sizes", None)
    if isinstance(hidden, (list, tuple)) and tuple(int(s) for s in hidden) != tuple(
        sizes[1:]
    ):
        raise ValueError(
            f"generative_weights_ must have layer sizes {tuple(hidden)}. Received: {tuple(sizes[1:])}"
        )
    for i in range(n_layers):
        pair = f"layers {i} and {i + 1} of sizes {sizes[i]} and {sizes[i + 1]}"
        _expect_shape(
            f"generative_weights_[{i}]", gw[i], (sizes[i + 1], sizes[i]), pair
        )
        _expect_shape(
            f"recognition_weights_[{i}]", rw[i], (sizes[i], sizes[i + 1]), pair
        )
        _expect_shape(f"recognition_biases_[{i}]", rb[i], (sizes[i + 1],), pair)
    for i in range(n_layers + 1):
        _expect_shape(
            f"generative_biases_[{i}]",
            gb[i],
            (sizes[i],),
            f"layer {i} has {sizes[i]} units",
        )
    dtypes = {a.dtype for a in (*gw, *gb, *rw, *rb)}
    if len(dtypes) != 1:
        raise ValueError(
            f"the weights and biases must share one dtype. Received: {sorted(map(str, dtypes))}"
        )


def _check_network(est: Any, n_outputs: int) -> None:
    """The weights fit the layers, the layers fit input_shape_, and the last layer gives ``n_outputs``."""
    if est.n_features_in_ != math.prod(est.input_shape_):
        raise ValueError(
            f"n_features_in_ must be {math.prod(est.input_shape_)} (input_shape_). Received: {est.n_features_in_}"
        )
    layers, weights = est.layers_, est.network_weights_
    if len(weights) != len(layers):
        raise ValueError(
            f"network_weights_ must hold one dict per layer ({len(layers)}). Received: {len(weights)}"
        )
    rng = np.random.default_rng(0)
    shape = tuple(est.input_shape_)
    for i, (layer, stored) in enumerate(zip(layers, weights)):
        # The layer's own initialiser gives the parameter shapes; one layer at a time bounds the memory.
        try:
            expected = layer.init_params(shape, rng, np.dtype(est.dtype_))
            out_shape = tuple(int(s) for s in layer.output_shape(shape))
        except (ValueError, TypeError) as exc:
            raise ValueError(
                f"layers_[{i}] ({layer!r}) cannot take the inputs of shape {shape} it gets: {exc}"
            ) from exc
        if set(stored) != set(expected):
            raise ValueError(
                f"network_weights_[{i}] must hold the parameters {sorted(expected)} of {layer!r}. Received: {sorted(stored)}"
            )
        for key, arr in expected.items():
            got = stored[key]
            if got.shape != arr.shape or got.dtype != arr.dtype:
                raise ValueError(
                    f"network_weights_[{i}][{key!r}] of {layer!r} must be a {arr.dtype} array of shape {arr.shape} "
                    f"for inputs of shape {shape}. Received: {_describe(got)}"
                )
        del expected
        shape = out_shape
    if math.prod(shape) != n_outputs:
        raise ValueError(
            f"the last layer must give {n_outputs} outputs. Received: output shape {shape}"
        )


def _check_classifier(est: Any) -> None:
    _check_network(est, len(est.classes_))


def _check_regressor(est: Any) -> None:
    _check_network(est, est.n_outputs_)


_DTYPE = OneOf(_FLOAT_DTYPES)
_CNN_OPTIONAL = {
    "n_iter_": Int(0),
    "loss_curve_": Numbers(),
    "best_loss_": OptionalNumber(),
    "validation_scores_": OptionalNumbers(),
    "best_validation_score_": OptionalNumber(),
}
_CNN_REQUIRED = {
    "network_weights_": LayerWeights(),
    "layers_": Layers(),
    "input_shape_": Shape((1, 2, 3)),
    "n_features_in_": Int(1),
    "dtype_": _DTYPE,
}
_CLASSIFIER = Schema(
    {**_CNN_REQUIRED, "classes_": Labels()},
    {**_CNN_OPTIONAL, "out_activation_": OneOf(("softmax", "logistic"))},
    _check_classifier,
)

#: Estimator class name -> the schema of its fitted state.
SCHEMAS: dict[str, Schema] = {
    "CNNClassifier": _CLASSIFIER,
    "DBNClassifier": _CLASSIFIER,
    "CNNRegressor": Schema(
        {**_CNN_REQUIRED, "n_outputs_": Int(1)}, _CNN_OPTIONAL, _check_regressor
    ),
    "RBM": Schema(
        {
            "components_": Weights(2),
            "intercept_hidden_": Weights(1),
            "intercept_visible_": Weights(1),
            "n_features_in_": Int(1),
            "dtype_": _DTYPE,
        },
        {
            "visible_mean_": Weights(1),
            "n_samples_seen_": Int(0),
            "n_iter_": Int(0),
            "loss_curve_": Numbers(),
        },
        _check_rbm,
    ),
    "ConvRBM": Schema(
        {
            "components_": Weights(4),
            "intercept_hidden_": Weights(1),
            "intercept_visible_": Weights(1),
            "input_shape_": Shape((3,)),
            "hidden_shape_": Shape((3,)),
            "output_shape_": Shape((3,)),
            "pool_size_": Shape((2,)),
            "n_features_in_": Int(1),
            "dtype_": _DTYPE,
        },
        {"n_iter_": Int(0), "loss_curve_": Numbers()},
        _check_conv_rbm,
    ),
    "DBN": Schema(
        {
            "rbms_": Estimators("RBM", "components_"),
            "n_features_in_": Int(1),
            "dtype_": _DTYPE,
        },
        {"n_iter_": Int(0)},
        _check_dbn,
    ),
    "ConvDBN": Schema(
        {
            "rbms_": Estimators("ConvRBM", "components_"),
            "input_shape_": Shape((3,)),
            "output_shape_": Shape((3,)),
            "n_features_in_": Int(1),
            "dtype_": _DTYPE,
        },
        {"n_iter_": Int(0)},
        _check_conv_dbn,
    ),
    "SigmoidBeliefNet": Schema(
        {
            "generative_weights_": WeightList(2),
            "generative_biases_": WeightList(1),
            "recognition_weights_": WeightList(2),
            "recognition_biases_": WeightList(1),
            "n_features_in_": Int(1),
        },
        {"n_iter_": Int(0), "loss_curve_": Numbers(), "dtype_": _DTYPE},
        _check_sbn,
    ),
}


def check_state(estimator: Any) -> None:
    """Raise ``ValueError`` when ``estimator``'s fitted state does not match its class's schema.

    An estimator holding none of the required attributes is unfitted and
    passes; one holding some but not all is refused.
    """
    name = type(estimator).__name__
    schema = SCHEMAS.get(name)
    if schema is None:
        raise ValueError(
            f"no state schema for {name}; known: {', '.join(sorted(SCHEMAS))}"
        )
    state = vars(estimator)
    present = [k for k in schema.required if k in state]
    if present:
        missing = [k for k in schema.required if k not in state]
        if missing:
            raise ValueError(
                f"the fitted {name} lacks {', '.join(missing)} (a fitted {name} holds "
                f"{', '.join(schema.required)})"
            )
    for key, kind in schema.required.items():
        if key in state:
            kind.check(state[key], key)
    for key, kind in schema.optional.items():
        if key in state:
            kind.check(state[key], key)
    if present and schema.consistency is not None:
        schema.consistency(estimator)


# ------------------------------------------------------------------------- generator states
def _uint(value: Any, bits: int, name: str) -> int:
    if (
        not isinstance(value, numbers.Integral)
        or isinstance(value, bool)
        or not 0 <= int(value) < 2**bits
    ):
        raise ValueError(
            f"{name} must be an int in [0, 2**{bits}). Received: {value!r:.60}"
        )
    return int(value)


def _uints(value: Any, n: int, bits: int, name: str) -> list[int]:
    if isinstance(value, np.ndarray):
        value = value.tolist()
    if not isinstance(value, (list, tuple)) or len(value) != n:
        raise ValueError(f"{name} must be {n} ints. Received: {_describe(value)}")
    return [_uint(v, bits, f"{name}[{i}]") for i, v in enumerate(value)]


def _int_in(value: Any, low: int, high: int, name: str) -> int:
    if (
        not isinstance(value, numbers.Integral)
        or isinstance(value, bool)
        or not low <= int(value) <= high
    ):
        raise ValueError(
            f"{name} must be an int in [{low}, {high}]. Received: {value!r:.60}"
        )
    return int(value)


def _dict(value: Any, keys: set[str], name: str) -> dict[str, Any]:
    if not isinstance(value, dict) or set(value) != keys:
        got = sorted(value) if isinstance(value, dict) else _describe(value)
        raise ValueError(
            f"{name} must be a dict with keys {sorted(keys)}. Received: {got}"
        )
    return value


def check_generator_state(state: Any) -> dict[str, Any]:
    """Return a bit generator state with every field in range, or raise ``ValueError``.

    NumPy's setters take positions such as MT19937's ``pos`` on trust and
    later index with them, so a state from a file is checked field by field
    (and rebuilt from plain ints) before it reaches a bit generator.
    """
    name = state.get("bit_generator") if isinstance(state, dict) else None
    extra = {"has_uint32", "uinteger"}
    if name in ("PCG64", "PCG64DXSM"):
        top = _dict(state, {"bit_generator", "state"} | extra, name)
        inner = _dict(top["state"], {"state", "inc"}, f"{name} state")
        return {
            "bit_generator": name,
            "state": {
                "state": _uint(inner["state"], 128, "state"),
                "inc": _uint(inner["inc"], 128, "inc"),
            },
            "has_uint32": _int_in(top["has_uint32"], 0, 1, "has_uint32"),
            "uinteger": _uint(top["uinteger"], 32, "uinteger"),
        }
    if name == "MT19937":
        top = _dict(state, {"bit_generator", "state"}, name)
        inner = _dict(top["state"], {"key", "pos"}, f"{name} state")
        key = np.array(_uints(inner["key"], 624, 32, "key"), dtype=np.uint32)
        return {
            "bit_generator": name,
            "state": {"key": key, "pos": _int_in(inner["pos"], 0, 624, "pos")},
        }
    if name == "Philox":
        top = _dict(
            state, {"bit_generator", "state", "buffer", "buffer_pos"} | extra, name
        )
        inner = _dict(top["state"], {"counter", "key"}, f"{name} state")
        return {
            "bit_generator": name,
            "state": {
                "counter": np.array(
                    _uints(inner["counter"], 4, 64, "counter"), dtype=np.uint64
                ),
                "key": np.array(_uints(inner["key"], 2, 64, "key"), dtype=np.uint64),
            },
            "buffer": np.array(_uints(top["buffer"], 4, 64, "buffer"), dtype=np.uint64),
            "buffer_pos": _int_in(top["buffer_pos"], 0, 4, "buffer_pos"),
            "has_uint32": _int_in(top["has_uint32"], 0, 1, "has_uint32"),
            "uinteger": _uint(top["uinteger"], 32, "uinteger"),
        }
    if name == "SFC64":
        top = _dict(state, {"bit_generator", "state"} | extra, name)
        inner = _dict(top["state"], {"state"}, f"{name} state")
        return {
            "bit_generator": name,
            "state": {
                "state": np.array(
                    _uints(inner["state"], 4, 64, "state"), dtype=np.uint64
                )
            },
            "has_uint32": _int_in(top["has_uint32"], 0, 1, "has_uint32"),
            "uinteger": _uint(top["uinteger"], 32, "uinteger"),
        }
    raise ValueError(
        f"unknown bit generator {name!r}; supported: PCG64, PCG64DXSM, MT19937, Philox, SFC64"
    )
