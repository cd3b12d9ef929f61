"""Broken layer plugins: each failure names the plugin and the problem, and the other plugins keep working.

Every test uses its own fresh PluginManager, never the process-wide one.
"""

from __future__ import annotations

import importlib.metadata
import sys
import types

import numpy as np
import pytest

from neuroplug.cli import format_plugins
from neuroplug.layers.base import Layer
from neuroplug.ops import Ops
from neuroplug.plugins import PluginManager, PluginWarning, hookimpl
from neuroplug.pretrain.base import Pretrainer
from neuroplug.registry import (
    DuplicateNameError,
    NameClashError,
    PluginLoadError,
    RegistrationError,
    UnknownNameError,
)


# ---------------------------------------------------------------------------
# Small plugins, built as modules the way an installed plugin module looks
# ---------------------------------------------------------------------------
class Double(Layer):
    """A working layer: y = 2 x."""

    def forward(self, X, *, training=False):
        return X * 2.0

    def backward(self, dY):
        return dY * 2.0


class Half(Layer):
    """Not a working layer: no backward."""

    def forward(self, X, *, training=False):
        return X * 0.5


class Greedy(Pretrainer):
    """Not a working pretrainer: no pretrain."""


def layer_plugin(
    name: str, layers: dict, *, fail_after: Exception | None = None
) -> types.ModuleType:
    """A plugin module that registers ``layers`` (and then raises ``fail_after``, if given)."""
    module = types.ModuleType(name)

    @hookimpl
    def neuroplug_register_layers(register):
        for layer_name, cls in layers.items():
            register(layer_name, cls)
        if fail_after is not None:
            raise fail_after

    module.neuroplug_register_layers = neuroplug_register_layers
    return module


def pretrainer_plugin(name: str, pretrainers: dict) -> types.ModuleType:
    module = types.ModuleType(name)

    @hookimpl
    def neuroplug_register_pretrainers(register):
        for pretrainer_name, cls in pretrainers.items():
            register(pretrainer_name, cls)

    module.neuroplug_register_pretrainers = neuroplug_register_pretrainers
    return module


def fresh_manager(**kwargs) -> PluginManager:
    kwargs.setdefault("autoload", False)
    kwargs.setdefault("disabled", ())
    kwargs.setdefault("strict", False)
    return PluginManager(**kwargs)


def assert_layer_works(manager: PluginManager, name: str) -> None:
    """Look ``name`` up and run it: the plugin that registered it is fully usable."""
    layer = manager.layers.get(name)()
    layer.initialize((3,), Ops(), np.random.default_rng(0))
    np.testing.assert_allclose(layer.forward(np.ones((2, 3), dtype=np.float32)), 2.0)


def register_failing(manager: PluginManager, plugin, name: str, match: str):
    with pytest.warns(PluginWarning, match=match):
        manager.register(plugin, name)
    (error,) = [e for e in manager.errors if e.plugin == name]
    return error


def assert_listed_as_failed(manager: PluginManager, name: str, *fragments: str) -> None:
    """``neuroplug plugins`` shows the failure under the plugin's name and exits non-zero."""
    text, ok = format_plugins(manager)
    assert not ok
    lines = text.splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith(f"{name}  ["))
    assert lines[i + 1].startswith("    FAILED:")
    for fragment in fragments:
        assert fragment in lines[i + 1], (fragment, lines[i + 1])


# ---------------------------------------------------------------------------
# A layer name that is already taken
# ---------------------------------------------------------------------------
def assert_clash_listed(manager: PluginManager, name: str, *plugins: str) -> None:
    """``neuroplug plugins`` shows the clash under each contender and exits non-zero."""
    text, ok = format_plugins(manager)
    assert not ok
    for plugin in plugins:
        lines = text.splitlines()
        i = next(i for i, line in enumerate(lines) if line.startswith(f"{plugin}  ["))
        clash = next(line for line in lines[i + 1 :] if line.startswith("    CLASH"))
        assert repr(name) in clash and "NEUROPLUG_DISABLE_PLUGINS" in clash, (
            plugin,
            text,
        )
        for other in plugins:
            assert repr(other) in clash or other == plugin, (plugin, clash)


def test_duplicate_layer_name_fails_closed_and_names_both_plugins():
    manager = fresh_manager()
    manager.register(layer_plugin("first", {"double": Double}), "first")
    with pytest.warns(
        PluginWarning,
        match=r"'double' is registered by more than one plugin \('first' and 'second'\)",
    ):
        manager.register(
            layer_plugin("second", {"twice": Double, "double": Double}), "second"
        )
    # Neither plugin failed: each keeps its other names ...
    assert manager.errors == []
    assert_layer_works(manager, "twice")
    # ... but the contested name is unusable, naming both plugins and how to block one.
    with pytest.raises(
        NameClashError,
        match=r"'double'.*'first' and 'second'.*NEUROPLUG_DISABLE_PLUGINS=first",
    ) as info:
        manager.layers.get("double")
    assert info.value.plugins == ["first", "second"] and info.value.name == "double"
    assert "double" not in manager.layers and "double" not in manager.layers.names()
    assert manager.clashes() == {"layer": {"double": ["first", "second"]}}
    assert_clash_listed(manager, "double", "first", "second")
    # A later plugin loads normally; an unknown name mentions the contested one.
    manager.register(layer_plugin("third", {"triple": Double}), "third")
    assert_layer_works(manager, "triple")
    with pytest.raises(UnknownNameError, match="several plugins register them: double"):
        manager.layers.get("quadruple")
    # Blocking (here: removing) one contender makes the name usable again, from the other.
    manager.unregister("second")
    assert manager.layers.entry("double").plugin == "first"
    assert_layer_works(manager, "double")
    assert format_plugins(manager)[1]


def test_clash_blocked_through_the_environment_variable_is_resolved():
    manager = fresh_manager(disabled=("second",))
    manager.register(layer_plugin("first", {"double": Double}), "first")
    manager.register(layer_plugin("second", {"double": Double}), "second")
    assert manager.layers.entry("double").plugin == "first"
    assert manager.plugin_info("second").blocked


def test_three_contenders_need_two_blocked():
    manager = fresh_manager()
    with pytest.warns(PluginWarning):
        for name in ("a", "b", "c"):
            manager.register(layer_plugin(name, {"double": Double}), name)
    with pytest.raises(NameClashError, match="'a' and 'b' and 'c'"):
        manager.layers.get("double")
    manager.unregister("a")
    with pytest.raises(NameClashError, match="'b' and 'c'"):
        manager.layers.get("double")
    manager.unregister("c")
    assert manager.layers.entry("double").plugin == "b"


def test_taking_a_built_in_layer_name_makes_it_unusable():
    manager = fresh_manager()
    builtin = manager.layers.names()[0]
    plugin_of_builtin = manager.layers.entry(builtin).plugin
    with pytest.warns(
        PluginWarning,
        match=f"'{builtin}' is registered by more than one plugin \\('{plugin_of_builtin}' and 'shadow'\\)",
    ):
        manager.register(layer_plugin("shadow", {builtin: Double}), "shadow")
    with pytest.raises(NameClashError, match="NEUROPLUG_DISABLE_PLUGINS=shadow"):
        manager.layers.get(builtin)


def test_duplicate_within_one_plugin_names_it():
    # Two different classes under one name in the same plugin: the second call is the mistake.
    manager = fresh_manager()
    plugin = types.ModuleType("clumsy")

    @hookimpl
    def neuroplug_register_layers(register):
        register("double", Double)
        register("double", Half)

    plugin.neuroplug_register_layers = neuroplug_register_layers
    register_failing(
        manager,
        plugin,
        "clumsy",
        match="'clumsy' tried to register the layer 'double', which plugin 'clumsy'",
    )
    assert "double" not in manager.layers


def test_duplicate_in_strict_mode_raises_and_still_fails_closed():
    manager = fresh_manager(strict=True)
    manager.register(layer_plugin("first", {"double": Double}), "first")
    with pytest.raises(NameClashError, match="'double'.*'first' and 'second'") as info:
        manager.register(layer_plugin("second", {"double": Double}), "second")
    assert isinstance(info.value, DuplicateNameError) and info.value.plugin == "second"
    with pytest.raises(NameClashError):
        manager.layers.get("double")


# ---------------------------------------------------------------------------
# A required method is missing (or the object is not a layer at all)
# ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "obj, problem",
    [
        (Half, "Half does not implement required method(s) backward"),
        (Layer, "Layer does not implement required method(s) forward, backward"),
        (lambda: Double(), "expected a subclass of neuroplug.layers.base.Layer"),
        (Double(), "expected a subclass of neuroplug.layers.base.Layer"),
    ],
    ids=["no-backward", "no-forward-no-backward", "a-function", "an-instance"],
)
def test_missing_required_method_names_plugin_layer_and_method(obj, problem):
    manager = fresh_manager()
    manager.register(layer_plugin("good", {"double": Double}), "good")
    error = register_failing(
        manager,
        layer_plugin("halfdone", {"fine": Double, "half": obj}),
        "halfdone",
        match="Plugin 'halfdone' registered an invalid layer 'half'",
    )
    assert isinstance(error, RegistrationError) and problem in str(error)
    assert "fine" not in manager.layers and "half" not in manager.layers
    assert_layer_works(manager, "double")
    assert_listed_as_failed(manager, "halfdone", "'halfdone'", "'half'", problem)


def test_pretrainer_without_pretrain_is_refused():
    manager = fresh_manager()
    error = register_failing(
        manager,
        pretrainer_plugin("lazy", {"greedy": Greedy}),
        "lazy",
        match="Plugin 'lazy' registered an invalid pretrainer 'greedy': Greedy does not implement required "
        r"method\(s\) pretrain",
    )
    assert error.plugin == "lazy"
    assert "greedy" not in manager.pretrainers
    # The built-ins (backends at least) are untouched.
    assert {"cpu", "numpy"} <= set(manager.backends.names())


# ---------------------------------------------------------------------------
# The plugin raises while loading
# ---------------------------------------------------------------------------
def test_exception_in_the_hook_names_plugin_keeps_traceback_and_others_work():
    manager = fresh_manager()
    manager.register(layer_plugin("good", {"double": Double}), "good")
    error = register_failing(
        manager,
        layer_plugin("crashy", {"early": Double}, fail_after=KeyError("config")),
        "crashy",
        match=r'Plugin "crashy" \(registered at run time\) raised in neuroplug_register_layers: KeyError',
    )
    assert isinstance(error, PluginLoadError)
    assert (
        isinstance(error.__cause__, KeyError)
        and error.__cause__.__traceback__ is not None
    )
    assert (
        "early" not in manager.layers
    )  # registered before the crash, discarded with it
    assert_layer_works(manager, "double")
    assert_listed_as_failed(manager, "crashy", '"crashy"', "KeyError")


@pytest.fixture
def entry_points(monkeypatch, tmp_path):
    """Make the manager see extra entry points next to the installed ones.

    ``add(name, source)`` writes ``source`` to a module on ``sys.path`` and
    adds an entry point ``name`` in group ``neuroplug`` pointing at it.
    """
    real = importlib.metadata.entry_points
    extra: list[importlib.metadata.EntryPoint] = []
    modules: list[str] = []

    def fake(**kwargs):
        found = list(real(**kwargs))
        return found + extra if kwargs.get("group") == "neuroplug" else found

    def add(name: str, source: str) -> None:
        module = f"_neuroplug_test_plugin_{name}"
        (tmp_path / f"{module}.py").write_text(source)
        extra.append(importlib.metadata.EntryPoint(name, module, "neuroplug"))
        modules.append(module)

    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(importlib.metadata, "entry_points", fake)
    yield add
    for module in modules:
        sys.modules.pop(module, None)


GOOD_SOURCE = """
from neuroplug import hookimpl
from neuroplug.layers.base import Layer

class Double(Layer):
    def forward(self, X, *, training=False):
        return X * 2.0

    def backward(self, dY):
        return dY * 2.0

@hookimpl
def neuroplug_register_layers(register):
    register("double", Double)
"""


@pytest.mark.parametrize(
    "source, cause",
    [
        ("import neuroplug_a_module_that_is_not_installed\n", ModuleNotFoundError),
        ("raise RuntimeError('CUDA driver not found')\n", RuntimeError),
        ("def broken(:\n", SyntaxError),
    ],
    ids=["missing-dependency", "raises-at-import", "syntax-error"],
)
def test_plugin_raising_at_import_names_it_and_others_load(entry_points, source, cause):
    entry_points("good", GOOD_SOURCE)
    entry_points("broken", source)
    manager = fresh_manager(autoload=True)
    with pytest.warns(PluginWarning, match='Error importing plugin "broken"'):
        manager.load()
    (error,) = [e for e in manager.errors if e.plugin == "broken"]
    assert isinstance(error, PluginLoadError) and isinstance(error.__cause__, cause)
    assert "entry point _neuroplug_test_plugin_broken" in str(error)
    # The plugin loaded after the broken one (alphabetical order) and the built-ins work.
    assert_layer_works(manager, "double")
    assert {"cpu", "numpy"} <= set(manager.backends.names())
    assert_listed_as_failed(manager, "broken", '"broken"', cause.__name__)


def test_installed_example_plugin_survives_a_broken_neighbour(entry_points):
    pytest.importorskip("neuroplug_lrn", reason="the example plugin is not installed")
    entry_points("aaa_broken", "raise ImportError('half-installed')\n")
    manager = fresh_manager(autoload=True)
    with pytest.warns(PluginWarning, match='"aaa_broken"'):
        manager.load()
    assert {"elu", "gaussian_noise", "lrn"} <= set(manager.layers.by_plugin("lrn"))


def test_blocked_broken_plugin_is_silent(entry_points):
    entry_points("broken", "raise RuntimeError('boom')\n")
    manager = fresh_manager(autoload=True, disabled=["broken"])
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", PluginWarning)
        manager.load()
    assert manager.errors == []


def test_strict_mode_keeps_naming_the_broken_plugin(entry_points):
    """A strict load interrupted by a broken plugin raises its error on every later lookup too."""
    entry_points("broken", "raise RuntimeError('boom')\n")
    manager = fresh_manager(autoload=True, strict=True)
    for _ in range(2):
        with pytest.raises(
            PluginLoadError, match='Error importing plugin "broken".*boom'
        ):
            manager.layers.names()
    manager.strict = False  # once the user chooses to go on, the rest is loaded
    assert {"cpu", "numpy"} <= set(manager.backends.names())


def test_hook_with_wrong_signature_names_the_plugin():
    manager = fresh_manager()
    plugin = types.ModuleType("typo")

    @hookimpl
    def neuroplug_register_layers(registry):  # the hook's argument is called register
        registry("double", Double)

    plugin.neuroplug_register_layers = neuroplug_register_layers
    register_failing(
        manager,
        plugin,
        "typo",
        match='(?s)Plugin "typo" .*could not be registered.*registry',
    )
    assert "double" not in manager.layers
