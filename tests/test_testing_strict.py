"""The strict test backend: arrays that refuse NumPy, and check_layer's check_strict_arrays."""

import pickle

import numpy as np
import pytest

from neuroplug.layers import Layer
from neuroplug.ops import Ops
from neuroplug.testing import (
    LayerCheckError,
    StrictArray,
    StrictArrayError,
    StrictOps,
    check_layer,
    layer_checks,
)


@pytest.fixture
def ops():
    return StrictOps()


@pytest.fixture
def x(ops):
    return ops.asarray(np.arange(6.0).reshape(2, 3) - 2)


# ---------------------------------------------------------------------------
# What a StrictArray allows: the operators and methods NumPy and torch share
# ---------------------------------------------------------------------------
def test_operators_and_shared_methods_compute_as_numpy(ops, x):
    a = np.arange(6.0).reshape(2, 3) - 2
    cases = [
        (x + 1, a + 1),
        (1 - x, 1 - a),
        (2.0 * x, 2.0 * a),
        (x / 4, a / 4),
        (x**2, a**2),
        (-x, -a),
        (abs(x), abs(a)),
        (x @ x.T, a @ a.T),
        (x < 0.5, a < 0.5),
        (x == 1, a == 1),
        (np.float64(2) * x, 2 * a),
        (np.float32(3) < x, 3 < a),
        (np.float32(3) - x, 3 - a),
        (x.sum(axis=0), a.sum(axis=0)),
        (x.mean(axis=1, keepdims=True), a.mean(axis=1, keepdims=True)),
        (x.reshape(3, 2), a.reshape(3, 2)),
        (x.reshape((-1,)), a.reshape(-1)),
        (x.max(), a.max()),
        (x.clip(-1, 1), a.clip(-1, 1)),
        (x.cumsum(1), a.cumsum(1)),
        (x[:, 1:], a[:, 1:]),
        (x[x > 0], a[a > 0]),
        (x.swapaxes(0, 1), a.swapaxes(0, 1)),
        (x.flatten(), a.flatten()),
    ]
    for got, want in cases:
        assert isinstance(got, StrictArray)
        np.testing.assert_array_equal(ops.to_numpy(got), want)
    assert x.shape == (2, 3) and x.ndim == 2 and x.dtype == np.float64 and len(x) == 2
    assert float(x.sum()) == a.sum() and x[1, 2].item() == a[1, 2]


def test_in_place_operators_and_slice_assignment_update_the_array(ops, x):
    x[:, 0:1] += x[:, 1:2]
    x *= 2
    x[0] = 7.0
    np.testing.assert_array_equal(ops.to_numpy(x), [[7, 7, 7], [6, 4, 6]])


@pytest.mark.parametrize(
    "use, message",
    [
        (lambda x: np.exp(x), r"NumPy ufunc numpy.exp"),
        (lambda x: np.maximum(x, 0), r"NumPy ufunc numpy.maximum"),
        (lambda x: np.sum(x), r"NumPy function numpy.sum"),
        (lambda x: np.where(x > 0, x, 0), r"NumPy function numpy.where"),
        (lambda x: np.asarray(x), r"use ops.to_numpy"),
        (lambda x: x + np.ones(3), r"a NumPy array was used with operator __add__"),
        (lambda x: np.ones(3) * x, r"a NumPy array was combined with a backend array"),
        (lambda x: x.__setitem__(0, np.ones(3)), r"a NumPy array was assigned"),
        (lambda x: x.max(axis=0), r"\.max\(\) of a backend array takes no arguments"),
        (lambda x: x.reshape(1, 2, 3).T, r"\.T of a 3-D backend array"),
    ],
)
def test_numpy_functions_and_numpy_only_uses_are_refused_with_the_calling_line(
    x, use, message
):
    with pytest.raises(StrictArrayError, match=message) as info:
        use(x)
    assert "test_testing_strict.py" in str(info.value)  # the line that did it
    assert "self.ops" in str(info.value)


def test_numpy_only_methods_are_refused_with_the_shared_list(x):
    with pytest.raises(
        AttributeError, match=r"no attribute 'astype'.*reshape, sum, mean"
    ):
        x.astype(np.float32)
    with pytest.raises(AttributeError, match="no attribute 'copy'"):
        x.copy()


def test_strict_ops_return_strict_arrays_equal_to_the_reference(ops):
    ref = Ops()
    a = np.random.default_rng(0).standard_normal((2, 3, 5, 5))
    w = np.random.default_rng(1).standard_normal((4, 3, 3, 3))
    got = ops.conv2d(ops.asarray(a), ops.asarray(w), None)
    assert isinstance(got, StrictArray)
    np.testing.assert_array_equal(ops.to_numpy(got), ref.conv2d(a, w, None))
    y, argmax = ops.maxpool2d(ops.asarray(a), 2)
    assert isinstance(y, StrictArray) and isinstance(argmax, StrictArray)
    r1, r2 = ops.make_rng(3), ref.make_rng(3)
    np.testing.assert_array_equal(
        ops.to_numpy(ops.random_normal(r1, (4,))), ref.random_normal(r2, (4,))
    )
    # In-place ops update the array behind the StrictArray.
    p, g, v = (ops.asarray(np.ones(3)) for _ in range(3))
    ops.sgd_update(p, g, v, lr=0.5, momentum=0.0, nesterov=False)
    np.testing.assert_array_equal(ops.to_numpy(p), [0.5, 0.5, 0.5])
    assert isinstance(pickle.loads(pickle.dumps(ops.asarray(np.ones(2)))), StrictArray)


# ---------------------------------------------------------------------------
# check_layer runs every layer on it
# ---------------------------------------------------------------------------
def _check_x(layer, X):
    if (
        tuple(X.shape[1:]) != layer.input_shape_
        or len(X.shape) != len(layer.input_shape_) + 1
    ):
        raise ValueError(
            f"expected (n, {layer.input_shape_}). Received: X.shape={tuple(X.shape)}"
        )


class Softsign(Layer):
    """``x / (1 + |x|)`` with operators only: portable."""

    def forward(self, X, *, training=False):
        _check_x(self, X)
        self._x = X
        return X / (1.0 + abs(X))

    def backward(self, dY):
        d = 1.0 + abs(self._x)
        return dY / (d * d)


class NumpySoftsign(Softsign):
    """The same function through ``np.abs``: fine on NumPy, broken on a GPU."""

    def forward(self, X, *, training=False):
        _check_x(self, X)
        self._x = X
        return X / (1.0 + np.abs(X))


class HostOutput(Softsign):
    """Builds its output as a NumPy array from ``ops.to_numpy``: it never fails on NumPy backends."""

    def forward(self, X, *, training=False):
        _check_x(self, X)
        self._x = X
        host = self.ops.to_numpy(X)
        return host / (1.0 + abs(host))


def test_a_portable_layer_passes_check_strict_arrays():
    check_layer(Softsign(), (4, 3))


# CPU torch tensors accept np.abs (with a DeprecationWarning from torch): exactly the silence this check ends.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize(
    "layer, message",
    [
        (
            NumpySoftsign(),
            r"raised StrictArrayError: the NumPy ufunc numpy.absolute .*test_testing_strict.py",
        ),
        (HostOutput(), r"returned a ndarray, not a backend array"),
    ],
    ids=["numpy-on-activations", "numpy-output"],
)
def test_a_layer_that_uses_numpy_on_activations_fails_only_check_strict_arrays(
    layer, message
):
    with pytest.raises(LayerCheckError, match=message) as info:
        check_layer(layer, (4, 3))
    assert info.value.check == "check_strict_arrays"
    assert "float32, forward(training=False)" in str(info.value)
    for other in layer_checks(layer, (4, 3), skip=["check_strict_arrays"]):
        other()  # every other check passes: only the strict arrays catch it
