"""neuroplug.testing (check_layer) and the pytest fixtures of neuroplug.pytest_plugin.

Each deliberately broken layer below breaks one rule of the Layer contract;
the test asserts that check_layer reports exactly that check.
"""

from __future__ import annotations

import pickle
import re
import textwrap
import types

import numpy as np
import pytest

from neuroplug.layers.base import Layer
from neuroplug.ops import Ops
from neuroplug.plugins import PluginWarning, get_plugin_manager, hookimpl
from neuroplug.pytest_plugin import neuroplug_manager, register_plugin  # noqa: F401 - fixtures
from neuroplug.registry import RegistrationError
from neuroplug.testing import (
    LAYER_CHECKS,
    LayerCheck,
    LayerCheckError,
    check_layer,
    finite_difference_gradient,
    layer_checks,
    make_layer_factory,
    parametrize_layer_checks,
)

pytest_plugins = ["pytester"]


# ---------------------------------------------------------------------------
# A correct layer with parameters, and one broken variant per rule
# ---------------------------------------------------------------------------
def _check_x(layer, X):
    if (
        tuple(X.shape[1:]) != layer.input_shape_
        or len(X.shape) != len(layer.input_shape_) + 1
    ):
        raise ValueError(
            f"expected (n, {layer.input_shape_}). Received: X.shape={tuple(X.shape)}"
        )


class Affine(Layer):
    """``y = tanh(x) * W + b`` elementwise, with W and b of the sample's shape."""

    def __init__(self, gain=1.0):
        self.gain = gain

    def init_params(self, input_shape, rng, dtype):
        return {
            "W": self.gain * rng.standard_normal(input_shape),
            "b": rng.standard_normal(input_shape),
        }

    def forward(self, X, *, training=False):
        _check_x(self, X)
        return self._compute(X, training)

    def _compute(self, X, training):
        T = self.ops.tanh(X)
        if training:
            self._T = T
        return T * self.params["W"] + self.params["b"]

    def backward(self, dY):
        self.grads["W"] = (dY * self._T).sum(axis=0)
        self.grads["b"] = dY.sum(axis=0)
        return self.ops.tanh_backward(self._T, dY * self.params["W"])


class WrongInputGradient(Affine):
    def backward(self, dY):
        super().backward(dY)
        return self.ops.tanh_backward(self._T, dY)  # forgets W


class WrongWeightGradient(Affine):
    def backward(self, dY):
        dX = super().backward(dY)
        self.grads["W"] = dY.sum(axis=0)  # forgets tanh(x)
        return dX


class ChangesDtype(Affine):
    def forward(self, X, *, training=False):
        return super().forward(X, training=training).astype(np.float64)


class LiesAboutShape(Affine):
    def output_shape(self, input_shape):
        return (input_shape[0] + 1, *input_shape[1:])


class SetsHyperparameter(Affine):
    def __init__(self, gain=None):
        self.gain = gain

    def init_params(self, input_shape, rng, dtype):
        if self.gain is None:
            self.gain = (
                1.0  # the classic mistake: fitted state written into a hyper-parameter
            )
        return super().init_params(input_shape, rng, dtype)


class MixesBatch(Affine):
    def forward(self, X, *, training=False):
        Y = super().forward(X, training=training)
        return Y if training else Y - Y.mean(axis=0)


class IgnoresSeed(Affine):
    def init_params(self, input_shape, rng, dtype):
        return super().init_params(input_shape, np.random.default_rng(), dtype)


class Unpicklable(Affine):
    def init_params(self, input_shape, rng, dtype):
        self._hook = lambda x: x
        return super().init_params(input_shape, rng, dtype)


class NotJSON(Affine):
    def __init__(self, gain=1.0, squash=np.tanh):
        self.gain = gain
        self.squash = squash


class NoShapeCheck(Affine):
    def forward(self, X, *, training=False):
        return self._compute(X, training)


class WrongErrorType(Affine):
    def forward(self, X, *, training=False):
        if tuple(X.shape[1:]) != self.input_shape_:
            raise IndexError("bad")
        return super().forward(X, training=training)


class VagueError(Affine):
    def forward(self, X, *, training=False):
        if tuple(X.shape) != (X.shape[0], *self.input_shape_):
            raise ValueError("wrong input")
        return self._compute(X, training)


class RandomMask(Layer):
    """Inverted dropout drawn from the bound generator: stochastic but conforming."""

    def __init__(self, rate=0.5):
        self.rate = rate

    def forward(self, X, *, training=False):
        _check_x(self, X)
        if not training:
            return X
        self._mask = self.ops.dropout_mask(
            X.shape, self.rate, self.rng, dtype=self.dtype
        )
        return X * self._mask

    def backward(self, dY):
        return dY * self._mask


SHAPE = (3, 4)


def test_a_correct_layer_passes_every_check():
    check_layer(Affine(gain=0.5), SHAPE)


def test_a_stochastic_layer_passes_every_check():
    check_layer(RandomMask(0.3), (5,))


@pytest.mark.parametrize(
    "layer, check, message",
    [
        (SetsHyperparameter(), "check_hyperparameters", "changed get_params"),
        (LiesAboutShape(), "check_output_shape", "output_shape"),
        # check_backends repeats the dtype check on every backend, so it fails too; .astype is
        # NumPy-only (torch has .to), so check_strict_arrays refuses it as well.
        (
            ChangesDtype(),
            "check_dtypes|check_backends|check_strict_arrays",
            "float64 for a float32 input",
        ),
        (MixesBatch(), "check_batch_independence", "sample 0 alone"),
        (WrongInputGradient(), "check_gradients", "with respect to the input"),
        (WrongWeightGradient(), "check_gradients", "parameter 'W'"),
        # check_backends also compares the initial weights across backends.
        (IgnoresSeed(), "check_determinism|check_backends", "same seed"),
        (Unpicklable(), "check_pickle", "raised"),
        (NotJSON(), "check_safe_format", "JSON"),
        (NoShapeCheck(), "check_bad_input_shapes", "accepted a batch of shape"),
        (WrongErrorType(), "check_bad_input_shapes", "raised IndexError"),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Layer) else None,
)
def test_each_broken_rule_is_reported_by_its_check(layer, check, message):
    failing = check.split("|")
    with pytest.raises(LayerCheckError, match=message) as info:
        check_layer(layer, SHAPE)
    assert info.value.check == failing[0]
    assert type(layer).__name__ in str(info.value) and failing[0] in str(info.value)
    # ... and every other check passes: each rule has its own check.
    for other in layer_checks(layer, SHAPE, skip=failing):
        other()


def test_error_message_must_show_the_received_shape():
    with pytest.raises(LayerCheckError, match="does not show the shape it received"):
        check_layer(VagueError(), SHAPE)


# ---------------------------------------------------------------------------
# Agreement across backends (through backends registered by a test plugin)
# ---------------------------------------------------------------------------
class SloppyOps(Ops):
    """A backend whose tanh is 1% off: check_backends must notice."""

    name = "sloppy"

    def tanh(self, x):
        return super().tanh(x) * 1.01


class NoDeviceOps(Ops):
    """A backend that cannot start on this machine (like a GPU backend without a GPU)."""

    name = "nodevice"

    def __init__(self, *args, **kwargs):
        raise RuntimeError("no such device here")


def _backend_plugin(name, cls):
    plugin = types.ModuleType(f"{name}_plugin")

    @hookimpl
    def neuroplug_register_backends(register):
        register(name, cls)

    plugin.neuroplug_register_backends = neuroplug_register_backends
    return plugin


def test_a_backend_that_disagrees_is_named(register_plugin):
    register_plugin(_backend_plugin("sloppy", SloppyOps), "sloppy")
    with pytest.raises(
        LayerCheckError, match="backend 'sloppy', float32: inference output"
    ) as info:
        check_layer(Affine(), SHAPE)
    assert info.value.check == "check_backends"
    # Limited to the built-in backends, the same layer passes.
    check_layer(Affine(), SHAPE, backends=["numpy", "cpu"])


def test_a_backend_that_cannot_start_is_skipped_with_a_warning(register_plugin):
    register_plugin(_backend_plugin("nodevice", NoDeviceOps), "nodevice")
    (check,) = [c for c in layer_checks(Affine(), SHAPE) if c.name == "check_backends"]
    with pytest.warns(UserWarning, match="skipped backend 'nodevice'.*no such device"):
        check()


# ---------------------------------------------------------------------------
# Factories, arguments, parametrization
# ---------------------------------------------------------------------------
def test_factories_of_every_kind(register_plugin):
    plugin = types.ModuleType("affine_plugin")

    @hookimpl
    def neuroplug_register_layers(register):
        register("affine", Affine)

    plugin.neuroplug_register_layers = neuroplug_register_layers
    register_plugin(plugin, "affine")
    proto = Affine(gain=2.0)
    for factory in (proto, Affine, lambda: Affine(gain=2.0), "affine"):
        make = make_layer_factory(factory)
        a, b = make(), make()
        assert isinstance(a, Affine) and a is not b and a is not proto
    check_layer("affine", SHAPE)
    assert proto.get_params() == {"gain": 2.0} and not hasattr(proto, "params")


def test_bad_arguments_are_refused_clearly():
    with pytest.raises(
        TypeError, match="layer_factory must be .* Received: layer_factory=42"
    ):
        check_layer(42)
    with pytest.raises(
        ValueError, match=r"input_shape must be .* Received: input_shape=\(3, 0\)"
    ):
        check_layer(Affine(), (3, 0))
    with pytest.raises(ValueError, match="unknown checks \\['check_nothing'\\]"):
        check_layer(Affine(), SHAPE, skip=["check_nothing"])
    with pytest.raises(
        TypeError, match="layer_factory must return a neuroplug.layers.Layer"
    ):
        check_layer(lambda: object(), SHAPE)


def test_layer_checks_cover_every_check_and_are_picklable_callables():
    checks = layer_checks(Affine(), SHAPE)
    assert [c.name for c in checks] == list(LAYER_CHECKS)
    assert all(
        isinstance(c, LayerCheck) and c.id.startswith("Affine()-") for c in checks
    )


@parametrize_layer_checks((Affine(), SHAPE), (RandomMask(), (6,)))
def test_parametrized_checks(layer_check):
    layer_check()


def test_parametrize_ids():
    mark = parametrize_layer_checks(Affine(), (RandomMask(), (6,)))
    ids = [p.id for p in mark.args[1]]
    assert len(ids) == 2 * len(LAYER_CHECKS) and len(set(ids)) == len(ids)
    assert "Affine()-check_gradients" in ids and "RandomMask()-check_backends" in ids


def test_finite_difference_gradient_of_a_known_function():
    x = np.array([0.5, -1.0, 2.0])
    g = finite_difference_gradient(lambda v: float((v**3).sum()), x, [(0,), (2,)])
    np.testing.assert_allclose(g, [3 * 0.25, 3 * 4.0], rtol=1e-8)
    np.testing.assert_array_equal(x, [0.5, -1.0, 2.0])  # restored


# ---------------------------------------------------------------------------
# The fixtures
# ---------------------------------------------------------------------------
def test_manager_fixture_is_fresh_and_process_wide(neuroplug_manager):
    assert get_plugin_manager() is neuroplug_manager
    assert [i.name for i in neuroplug_manager.info()] == [
        "backends",
        "layers",
        "pretrainers",
        "callbacks",
    ]


def test_register_plugin_strict_raises_and_lenient_records(
    register_plugin, neuroplug_manager
):
    bad = _backend_plugin("Not A Name", Ops)
    with pytest.raises(
        RegistrationError, match="'dup'.*invalid backend name 'Not A Name'"
    ):
        register_plugin(bad, "dup")
    with pytest.warns(PluginWarning, match="'dup2'"):
        register_plugin(bad, "dup2", strict=False)
    assert [e.plugin for e in neuroplug_manager.errors] == ["dup", "dup2"]
    assert (
        neuroplug_manager.strict is False
    )  # the fixture restored the manager's own setting


def test_fixtures_clean_up_even_when_a_test_fails(pytester):
    pytester.makeconftest('pytest_plugins = ["neuroplug.pytest_plugin"]\n')
    pytester.makepyfile(
        textwrap.dedent("""
        import types
        from neuroplug.ops import Ops
        from neuroplug.plugins import get_plugin_manager, hookimpl

        OUTSIDE = get_plugin_manager()

        class ExtraOps(Ops):
            name = "extra"

        plugin = types.ModuleType("extra_plugin")
        plugin.neuroplug_register_backends = hookimpl(lambda register: register("extra", ExtraOps))

        def test_registers_then_fails(register_plugin, neuroplug_manager):
            register_plugin(plugin, "extra")
            assert get_plugin_manager().backends.get("extra") is ExtraOps
            assert get_plugin_manager() is not OUTSIDE
            raise AssertionError("deliberate failure")

        def test_after_the_failure(neuroplug_manager):
            assert "extra" not in neuroplug_manager.backends
            assert "extra" not in OUTSIDE.backends

        def test_outside_manager_restored():
            assert get_plugin_manager() is OUTSIDE
    """)
    )
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "--assert=plain")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*deliberate failure*"])


def test_layer_check_error_pickles():
    err = LayerCheckError("x failed check_dtypes: y", check="check_dtypes", layer="x")
    # pytest-xdist and joblib ship failures between processes.
    assert str(pickle.loads(pickle.dumps(err))) == str(err)


class CrashingOps(Ops):
    """A backend whose tanh raises: the failure must still name the backend."""

    name = "crashing"

    def tanh(self, x):
        raise TypeError("tanh is not supported for this array type")


def test_a_backend_that_raises_is_named(register_plugin):
    register_plugin(_backend_plugin("crashing", CrashingOps), "crashing")
    with pytest.raises(
        LayerCheckError,
        match="backend 'crashing', float32: raised TypeError: tanh is not supported",
    ):
        check_layer(Affine(), SHAPE)


def test_gradient_failures_show_multi_indices_plain_numbers_and_the_tolerance_scale():
    with pytest.raises(LayerCheckError) as info:
        check_layer(WrongInputGradient(), SHAPE)
    message = str(info.value)
    # Indices into the (batch, *SHAPE) input, not into the list of probed entries.
    assert re.search(r"worst at index \(\d+, \d+, \d+\): got -?\d", message), message
    assert "np.float" not in message
    assert (
        "atol * scale + rtol * |expected|" in message
        and "scale = max(1, largest |expected| entry)" in message
    )
