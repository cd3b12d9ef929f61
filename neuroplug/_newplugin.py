"""``neuroplug new-plugin``: write a ready-to-install plugin distribution.

One template per kind (layer, pretrainer, backend and, where this neuroplug
has the ``neuroplug_register_callbacks`` hook, callback).  Each writes a
``pyproject.toml`` with the ``neuroplug`` entry point, the package (a working
example of the kind, the hook implementation) and tests that use
neuroplug's kits (``check_layer``, ``check_ops``, the pytest fixtures), so
the new distribution's own tests pass before its author changes a line.
"""

from __future__ import annotations

import re
from pathlib import Path
from string import Template

__all__ = ["KINDS", "available_kinds", "write_plugin"]

KINDS = ("layer", "pretrainer", "backend", "callback")
_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


def available_kinds() -> tuple[str, ...]:
    """The kinds this neuroplug can generate (``callback`` only when its hook exists)."""
    from . import hookspecs

    return tuple(
        k
        for k in KINDS
        if k != "callback" or hasattr(hookspecs, "neuroplug_register_callbacks")
    )


def _dependency() -> str:
    from ._version import __version__

    major, minor = (int(p) for p in re.findall(r"\d+", __version__)[:2])
    return f"neuroplug>={major}.{minor},<{major}.{minor + 1}"


_PYPROJECT = """\
[build-system]
requires = ["setuptools>=61"]
build-backend = "setuptools.build_meta"

[project]
name = "neuroplug-$name"
version = "0.1.0"
description = "A neuroplug plugin that registers the $kind '$name'."
readme = "README.md"
requires-python = ">=3.10"
dependencies = ["$dependency"]

[project.optional-dependencies]
test = ["pytest"]

# The plugin name (left) is what `neuroplug plugins` lists and NEUROPLUG_DISABLE_PLUGINS blocks.
[project.entry-points.neuroplug]
$name = "neuroplug_$name.plugin"

[tool.setuptools.packages.find]
include = ["neuroplug_$name*"]
"""

_README = """\
# neuroplug-$name

A [neuroplug](https://github.com/neuroplug/neuroplug) plugin that registers the $kind `$name`.

```console
$$ pip install -e .            # then `neuroplug plugins` lists it
$$ python -m pytest tests      # the plugin's own tests (neuroplug's conformance kits)
```

Written by `neuroplug new-plugin $name --kind $kind`; see neuroplug's plugin guide
(docs/plugins.md) for the contract.
"""

_CONFTEST = '''\
"""neuroplug's fixtures (neuroplug_manager, register_plugin) for these tests."""

pytest_plugins = ["neuroplug.pytest_plugin"]
'''

_INIT = '''\
"""neuroplug-$name: the $kind '$name' for neuroplug."""

from .$module import $cls

__all__ = ["$cls"]
__version__ = "0.1.0"
'''

_PLUGIN = '''\
"""The hook implementations: the entry point `$name` of this distribution."""

from neuroplug import hookimpl

from .$module import $cls


@hookimpl
def $hook(register):
    """Register $cls under the name '$name'."""
    register("$name", $cls)
'''

# -- layer -----------------------------------------------------------------------
_LAYER = '''\
"""The layer `$name`: a leaky rectifier, the template to edit."""

from __future__ import annotations

import numbers
from typing import Any, ClassVar

from neuroplug.layers import Layer

__all__ = ["$cls"]


class $cls(Layer):
    """Leaky rectifier ``y = x`` for ``x > 0``, ``slope * x`` otherwise.

    Computes only through ``self.ops`` and the array operators NumPy arrays and
    torch tensors share, so it runs on every backend.

    Parameters
    ----------
    slope : float, default=0.1
        Slope for negative inputs, ``0 <= slope <= 1``.
    """

    # "$name", "$name:0.2" or "$name:slope=0.2": the base class's from_spec parses these.
    spec_options: ClassVar[dict[str, Any]] = {"slope": float}
    spec_positional = "slope"

    def __init__(self, slope: float = 0.1) -> None:
        self.slope = slope

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Unchanged; validates ``slope``."""
        slope = self.slope
        if not isinstance(slope, numbers.Real) or isinstance(slope, bool) or not 0 <= slope <= 1:
            raise ValueError(f"slope must be a number in [0, 1]. Received: slope={slope!r}")
        return tuple(input_shape)

    def forward(self, X: Any, *, training: bool = False) -> Any:
        """``relu(x) + slope * (x - relu(x))``; keeps the positive part when training."""
        if tuple(X.shape[1:]) != self.input_shape_ or len(X.shape) != len(self.input_shape_) + 1:
            raise ValueError(
                f"$cls expects a batch of shape (n, {', '.join(map(str, self.input_shape_))}). "
                f"Received: X.shape={tuple(X.shape)}"
            )
        positive = self.ops.relu(X)
        self._positive = positive if training else None
        return positive + float(self.slope) * (X - positive)

    def backward(self, dY: Any) -> Any:
        """``dY`` where ``x > 0``, ``slope * dY`` elsewhere."""
        positive = getattr(self, "_positive", None)
        if positive is None:
            raise RuntimeError("$cls.backward needs a preceding forward(X, training=True).")
        g = self.ops.relu_backward(positive, dY)  # dY where x > 0, else 0
        return g + float(self.slope) * (dY - g)
'''

_LAYER_TESTS = '''\
"""The layer's contract (neuroplug.testing.check_layer) and its registration."""

import numpy as np
import pytest

from neuroplug.layers.spec import build_layer
from neuroplug.testing import parametrize_layer_checks
from neuroplug_$name import $cls
import neuroplug_$name.plugin


def away_from_zero(rng, shape):
    """Inputs away from the kink at 0, where finite differences are not the derivative."""
    x = rng.standard_normal(shape)
    return x + np.where(x >= 0, 0.1, -0.1)


@parametrize_layer_checks(($cls(0.2), (3, 5, 4)), ($cls(0.0), (6,)), make_input=away_from_zero)
def test_layer_contract(layer_check):
    layer_check()


def test_values():
    layer = build_layer($cls(0.5))
    from neuroplug.ops import Ops

    layer.initialize((3,), Ops(), np.random.default_rng(0), np.float64)
    np.testing.assert_allclose(layer.forward(np.array([[-2.0, 0.5, 3.0]])), [[-1.0, 0.5, 3.0]])


def test_registered_by_name(register_plugin, neuroplug_manager):
    register_plugin(neuroplug_$name.plugin, "$name")
    assert neuroplug_manager.layers.by_plugin("$name") == ["$name"]
    assert build_layer("$name:0.3").get_params() == {"slope": 0.3}
    with pytest.raises(ValueError, match="slope must be a number"):
        build_layer("$name:steep")
'''

# -- pretrainer -------------------------------------------------------------------
_PRETRAINER = '''\
"""The pretrainer `$name`: rescale each weighted layer to unit output variance (the template to edit)."""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from neuroplug.pretrain import Pretrainer

__all__ = ["$cls"]


class $cls(Pretrainer):
    """Scale every weight matrix so its layer's outputs on ``X`` have unit variance (as LSUV does).

    Computes through ``network.ops``, so it runs on every backend.

    Parameters
    ----------
    n_samples : int, default=256
        Rows of ``X`` used to measure the variances.
    """

    def __init__(self, n_samples: int = 256) -> None:
        self.n_samples = n_samples

    def pretrain(self, network: Any, X: Any, *, random_state: Any = None, verbose: int = 0) -> None:
        """Rescale the weights of ``network``'s layers in place, first to last."""
        n = self.n_samples
        if not isinstance(n, numbers.Integral) or isinstance(n, bool) or n < 2:
            raise ValueError(f"n_samples must be an int >= 2. Received: n_samples={n!r}")
        ops = network.ops
        X = np.asarray(X)
        if X.ndim < 2 or tuple(X.shape[1:]) != tuple(network.input_shape):
            raise ValueError(
                f"X must have shape (n, {', '.join(map(str, network.input_shape))}). Received: X.shape={X.shape}"
            )
        rows = np.random.default_rng(random_state).permutation(X.shape[0])[:n]
        batch = ops.asarray(X[rows], dtype=network.dtype)
        for i, layer in enumerate(network.layers):
            if "W" not in getattr(layer, "params", {}):
                continue
            out = np.asarray(ops.to_numpy(network.forward(batch, stop=i + 1)), dtype=np.float64)
            std = float(out.std())
            if std > 0:
                weights = layer.get_weights()
                layer.set_weights({"W": weights["W"] / std})
            if verbose:
                print(f"[$name] layer {i}: output std {std:.3g} -> 1")
'''

_PRETRAINER_TESTS = '''\
"""The pretrainer on a small network, and by name inside an estimator."""

import warnings

import numpy as np
import pytest

from neuroplug.estimators import CNNClassifier
from neuroplug.layers import Dense, ReLU
from neuroplug.network import Network
from neuroplug.ops import Ops
from neuroplug_$name import $cls
import neuroplug_$name.plugin


def test_outputs_of_each_layer_have_unit_variance():
    X = np.random.default_rng(0).standard_normal((300, 6)) * 5
    net = Network([Dense(8, init="he"), ReLU(), Dense(3)], (6,), Ops(), rng=0, dtype=np.float64)
    $cls(n_samples=300).pretrain(net, X, random_state=0)
    out = net.forward(np.asarray(X, dtype=np.float64), stop=1)
    assert np.std(out) == pytest.approx(1.0, rel=1e-6)


def test_bad_input_is_refused():
    net = Network([Dense(3)], (4,), Ops(), rng=0)
    with pytest.raises(ValueError, match="n_samples must be an int >= 2"):
        $cls(n_samples=1).pretrain(net, np.zeros((5, 4)))
    with pytest.raises(ValueError, match=r"X must have shape \\(n, 4\\)"):
        $cls().pretrain(net, np.zeros((5, 3)))


def test_an_estimator_uses_it_by_name(register_plugin, neuroplug_manager):
    register_plugin(neuroplug_$name.plugin, "$name")
    assert neuroplug_manager.pretrainers.by_plugin("$name") == ["$name"]
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 6)).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)
    clf = CNNClassifier(("dense:8", "relu"), input_shape=(6,), pretrainer="$name", max_iter=3, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # three epochs do not converge
        clf.fit(X, y)
    assert clf.predict(X).shape == (40,)
'''

# -- backend -----------------------------------------------------------------------
_BACKEND = '''\
"""The backend `$name`: the NumPy reference with one op overridden (the template to edit)."""

from __future__ import annotations

from typing import Any

import numpy as np

from neuroplug.ops import Ops

__all__ = ["$cls"]


class $cls(Ops):
    """Compute backend `$name` (``backend="$name"``).

    Subclasses the NumPy reference: every op it does not override runs the
    reference, and the composite loops (CD-k, wake-sleep, AIS, ...) run on
    its primitives.  Override what your library makes faster; the
    conformance kit (neuroplug.testing.check_ops) compares every op with
    the reference.
    """

    name = "$name"

    def __init__(self, device: str | None = None, *, n_threads: int | None = None, check_finite: bool = True) -> None:
        if device not in (None, "cpu"):
            raise ValueError(f"The $name backend runs on the CPU only. Received: device={device!r}")
        super().__init__(device, n_threads=n_threads, check_finite=check_finite)

    def relu(self, x: Any) -> Any:
        """Rectified linear unit, in place on a fresh copy."""
        out = np.array(x, copy=True)
        np.maximum(out, 0, out=out)
        return out
'''

_BACKEND_TESTS = '''\
"""The backend against the NumPy reference (neuroplug.testing.check_ops) and its registration."""

import pytest

from neuroplug.backends import get_ops
from neuroplug.testing import check_layer, parametrize_ops_checks
from neuroplug_$name import $cls
import neuroplug_$name.plugin


@parametrize_ops_checks($cls, dtypes=["float32", "float64"])
def test_conforms_to_the_reference(ops_check):
    ops_check()


def test_registered_by_name(register_plugin, neuroplug_manager):
    register_plugin(neuroplug_$name.plugin, "$name")
    assert isinstance(get_ops("$name"), $cls)
    with pytest.raises(ValueError, match="CPU only"):
        get_ops("$name:gpu")
    # Layers agree with the reference on the new backend too.
    check_layer("dense:4", (5,), backends=["$name"])
'''

# -- callback -------------------------------------------------------------------
_CALLBACK = '''\
"""The callback `$name`: record each epoch's statistics (the template to edit)."""

from __future__ import annotations

from typing import Any

from $callback_module import Callback

__all__ = ["$cls"]


class $cls(Callback):
    """Keep every epoch's ``stats`` in :attr:`history_`; stop when ``stop_after`` epochs ran.

    Parameters
    ----------
    stop_after : int or None, default=None
        Return ``True`` (stop training) after this many epochs; ``None`` never stops.
    """

    def __init__(self, stop_after: int | None = None) -> None:
        self.stop_after = stop_after

    def on_fit_begin(self, info: dict) -> None:
        """Check ``stop_after`` and start a fresh history."""
        stop_after = self.stop_after
        if stop_after is not None and (not isinstance(stop_after, int) or isinstance(stop_after, bool) or stop_after < 1):
            raise ValueError(f"stop_after must be None or an int >= 1. Received: stop_after={stop_after!r}")
        self.history_: list[dict[str, Any]] = []

    def on_epoch_end(self, info: dict) -> bool | None:
        """Record the epoch; ask to stop after ``stop_after`` epochs."""
        if not hasattr(self, "history_"):
            self.history_ = []
        self.history_.append(dict(info.get("stats", {}), epoch=info.get("epoch")))
        return self.stop_after is not None and len(self.history_) >= self.stop_after

    def on_fit_end(self, info: dict) -> None:
        """Nothing to release."""
'''

_CALLBACK_TESTS = '''\
"""The callback's protocol methods and its registration."""

import pytest

from neuroplug_$name import $cls
import neuroplug_$name.plugin


def test_records_epochs_and_stops_when_asked():
    cb = $cls(stop_after=2)
    cb.on_fit_begin({"name": "test"})
    assert not cb.on_epoch_end({"name": "test", "epoch": 1, "stats": {"loss": 0.5}})
    assert cb.on_epoch_end({"name": "test", "epoch": 2, "stats": {"loss": 0.4}})
    cb.on_fit_end({"name": "test"})
    assert cb.history_ == [{"loss": 0.5, "epoch": 1}, {"loss": 0.4, "epoch": 2}]
    with pytest.raises(ValueError, match="stop_after must be None or an int >= 1"):
        $cls(stop_after=0).on_fit_begin({"name": "test"})


def test_registered_by_name(register_plugin, neuroplug_manager):
    register_plugin(neuroplug_$name.plugin, "$name")
    assert neuroplug_manager.callbacks.by_plugin("$name") == ["$name"]
'''

_KIND_FILES = {
    "layer": ("layers", "neuroplug_register_layers", _LAYER, _LAYER_TESTS),
    "pretrainer": (
        "pretrainer",
        "neuroplug_register_pretrainers",
        _PRETRAINER,
        _PRETRAINER_TESTS,
    ),
    "backend": ("ops", "neuroplug_register_backends", _BACKEND, _BACKEND_TESTS),
    "callback": (
        "callbacks",
        "neuroplug_register_callbacks",
        _CALLBACK,
        _CALLBACK_TESTS,
    ),
}


def _class_name(name: str, kind: str) -> str:
    base = "".join(part.capitalize() for part in name.split("_"))
    return (
        base
        + {
            "layer": "",
            "pretrainer": "Pretrainer",
            "backend": "Ops",
            "callback": "Callback",
        }[kind]
    )


def write_plugin(name: str, kind: str, directory: str | Path = ".") -> Path:
    """Write the distribution ``neuroplug-<name>`` for a plugin of ``kind`` under ``directory``.

    Parameters
    ----------
    name : str
        The plugin name and registered name: lower-case letters, digits and
        ``_``, starting with a letter (``prelu``, ``lsuv``, ``my_gpu``).
    kind : {"layer", "pretrainer", "backend", "callback"}
        What the plugin registers (``callback`` only where this neuroplug has
        the ``neuroplug_register_callbacks`` hook).
    directory : str or Path, default="."
        Where to create the ``neuroplug-<name>`` folder; it must not exist yet.

    Returns
    -------
    Path
        The new distribution's folder.
    """
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(
            "NAME must be lower-case letters, digits and '_', starting with a letter (it becomes the plugin name, "
            f"the registered name and the package neuroplug_NAME). Received: NAME={name!r}"
        )
    kinds = available_kinds()
    if kind not in kinds:
        extra = (
            " (this neuroplug has no neuroplug_register_callbacks hook yet)"
            if kind == "callback"
            else ""
        )
        raise ValueError(
            f"kind must be one of {', '.join(kinds)}{extra}. Received: kind={kind!r}"
        )
    root = Path(directory) / f"neuroplug-{name}"
    if root.exists():
        raise FileExistsError(
            f"{root} already exists; choose another directory or remove it first."
        )
    module, hook, source, tests = _KIND_FILES[kind]
    callback_module = "neuroplug.callbacks"
    if kind == "callback":
        import importlib.util

        if importlib.util.find_spec("neuroplug.callbacks") is None:
            callback_module = "neuroplug.models.engine"
    values = {
        "name": name,
        "kind": kind,
        "module": module,
        "hook": hook,
        "cls": _class_name(name, kind),
        "dependency": _dependency(),
        "callback_module": callback_module,
    }
    files = {
        "pyproject.toml": _PYPROJECT,
        "README.md": _README,
        f"neuroplug_{name}/__init__.py": _INIT,
        f"neuroplug_{name}/plugin.py": _PLUGIN,
        f"neuroplug_{name}/{module}.py": source,
        "tests/conftest.py": _CONFTEST,
        f"tests/test_{name}.py": tests,
    }
    for relative, template in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(Template(template).substitute(values), encoding="utf-8")
    return root
