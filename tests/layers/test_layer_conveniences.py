"""Author conveniences: option parsers, declarative spec options, help(), no_decay, worker messages."""

import pydoc
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from neuroplug.layers import Dense, Layer
from neuroplug.layers.spec import build_layer, parse_bool, parse_shape
from neuroplug.network import Network
from neuroplug.ops import Ops
from neuroplug.optimizers import SGD
from neuroplug.pytest_plugin import neuroplug_manager, register_plugin  # noqa: F401 - fixtures


# -- parsers -------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, value",
    [
        ("true", True),
        ("Yes", True),
        (" on", True),
        ("1", True),
        ("FALSE", False),
        ("no", False),
        ("off ", False),
        ("0", False),
    ],
)
def test_parse_bool(text, value):
    assert parse_bool(text, "shared") is value


def test_parse_bool_error_names_the_option_and_the_choices():
    with pytest.raises(
        ValueError, match=r"shared must be true or false .*Received: shared='maybe'"
    ):
        parse_bool("maybe", "shared")


def test_parse_shape_of_any_length_or_a_fixed_one():
    assert parse_shape("3x4x5x6", "shape") == (3, 4, 5, 6)
    assert parse_shape("7", "shape") == (7,)
    with pytest.raises(ValueError, match="shape must have 2 'x'-separated numbers"):
        parse_shape("3x4x5", "shape", length=(2,))
    with pytest.raises(
        ValueError, match="shape must be an integer. Received: shape='a'"
    ):
        parse_shape("3xa", "shape")


# -- declarative from_spec ---------------------------------------------------------
class Scale(Layer):
    """Multiply by a constant (a test layer with declared spec options)."""

    spec_options = {
        "factor": float,
        "shared": bool,
        "shape": tuple,
        "repeats": int,
        "mode": str,
    }  # noqa: RUF012
    spec_positional = "factor"

    def __init__(self, factor=1.0, shared=False, shape=(), repeats=1, mode="a"):
        self.factor = factor
        self.shared = shared
        self.shape = shape
        self.repeats = repeats
        self.mode = mode

    def forward(self, X, *, training=False):
        return X * self.factor

    def backward(self, dY):
        return dY * self.factor


@pytest.mark.parametrize(
    "args, params",
    [
        (None, {}),
        ("2.5", {"factor": 2.5}),
        (
            "2.5,shared=true,shape=2x3,repeats=-4,mode=fast",
            {
                "factor": 2.5,
                "shared": True,
                "shape": (2, 3),
                "repeats": -4,
                "mode": "fast",
            },
        ),
        ("shared=off", {"shared": False}),
    ],
)
def test_declared_spec_options_build_the_layer(args, params):
    expected = {**Scale().get_params(), **params}
    assert Scale.from_spec(args).get_params() == expected


@pytest.mark.parametrize(
    "args, message",
    [
        ("x", "factor must be a number"),
        ("1,shared=perhaps", "shared must be true or false"),
        ("1,shape=2xq", "shape must be an integer"),
        ("1,colour=red", "unknown option 'colour'"),
        ("1,factor=2", "factor given both"),
        ("1,2", "unexpected positional item '2'"),
    ],
)
def test_declared_spec_options_refuse_bad_text(args, message):
    with pytest.raises(ValueError, match=message):
        Scale.from_spec(args)


def test_the_usage_is_generated_and_shown_by_help_and_in_spec_errors(register_plugin):  # noqa: F811
    assert (
        Scale.spec_usage
        == "NAME[:FLOAT][,factor=FLOAT][,shared=true|false][,shape=AxB...][,repeats=INT][,mode=TEXT]"
    )
    assert "Spec usage: NAME[:FLOAT]" in pydoc.render_doc(
        Scale, renderer=pydoc.plaintext
    )
    assert "spec_options" in pydoc.render_doc(
        Layer, renderer=pydoc.plaintext
    )  # how to declare them
    assert "Spec usage: 'dense:N'" in pydoc.render_doc(Dense, renderer=pydoc.plaintext)

    class Plugin:
        from neuroplug import hookimpl

        @staticmethod
        @hookimpl
        def neuroplug_register_layers(register):
            register("scale", Scale)

    register_plugin(Plugin, "scale-plugin")
    assert build_layer("scale:3,shared=yes").get_params()["shared"] is True
    with pytest.raises(ValueError, match=r"Expected format: NAME\[:FLOAT\]"):
        build_layer("scale:3,shared=maybe")


def test_bad_declarations_are_refused_when_the_class_is_defined():
    with pytest.raises(
        TypeError, match="spec_positional must name one of spec_options"
    ):
        type("Bad", (Layer,), {"spec_options": {"a": int}, "spec_positional": "b"})
    with pytest.raises(
        TypeError,
        match=r"spec_options\['a'\] must be int, float, bool, str, tuple or a callable",
    ):
        type("Bad", (Layer,), {"spec_options": {"a": 3}})


# -- no_decay ----------------------------------------------------------------------
class DenseNoDecay(Dense):
    no_decay = frozenset({"W"})


def test_no_decay_parameters_are_left_out_of_the_penalty_and_the_optimizer_decay():
    for cls, penalty in ((Dense, 3.0), (DenseNoDecay, 0.0)):
        net = Network([cls(2)], (3,), Ops(), rng=0, dtype=np.float64)
        net.set_weights([{"W": np.ones((3, 2)), "b": np.full(2, 10.0)}])
        assert net.penalty() == pytest.approx(penalty)
        layer = net.layers[0]
        layer.grads = {"W": np.zeros((3, 2)), "b": np.zeros(2)}
        SGD(momentum=0.0).step([layer], learning_rate=0.5, alpha=0.1)
        # Decay shrinks W by lr * alpha * W unless W is opted out; the bias never decays.
        np.testing.assert_allclose(
            layer.params["W"], 1.0 if cls is DenseNoDecay else 0.95
        )
        np.testing.assert_allclose(layer.params["b"], 10.0)


# -- a worker that cannot find a name registered at run time ---------------------
def test_a_worker_says_a_name_registered_at_run_time_is_unknown_there(tmp_path):
    script = textwrap.dedent("""
        import multiprocessing as mp
        from neuroplug.registry import UnknownNameError

        def lookup():
            from neuroplug.layers.spec import build_layer
            try:
                build_layer("runtime_only:2")
            except UnknownNameError as exc:
                return str(exc)

        if __name__ == "__main__":
            from neuroplug.layers.spec import build_layer
            try:
                build_layer("runtime_only:2")
            except UnknownNameError as exc:
                print("MAIN:", exc)
            with mp.get_context("spawn").Pool(1) as pool:
                print("WORKER:", pool.apply(lookup))
    """)
    path = tmp_path / "worker.py"
    path.write_text(script)
    out = subprocess.run(
        [sys.executable, str(path)], capture_output=True, text=True, check=True
    ).stdout
    main = next(line for line in out.splitlines() if line.startswith("MAIN:"))
    worker = next(line for line in out.splitlines() if line.startswith("WORKER:"))
    assert "Unknown layer 'runtime_only'" in main and "worker process" not in main
    assert "This is a worker process (joblib, Dask)" in worker
    assert "registered at run time with get_plugin_manager().register(...)" in worker
    assert "pass a layer object instead of its name" in worker
