"""Plugin discovery and the plugin manager's error paths."""

import subprocess
import sys
import textwrap
import threading
import types
import warnings

import pytest

import neuroplug
from neuroplug.ops import Ops
from neuroplug.plugins import (
    ENTRY_POINT_GROUP,
    PluginManager,
    PluginWarning,
    get_backend,
    get_plugin_manager,
    hookimpl,
)
from neuroplug.registry import (
    DuplicateNameError,
    NameClashError,
    PluginLoadError,
    RegistrationError,
    UnknownNameError,
)


@pytest.fixture
def fake_dist(tmp_path, monkeypatch):
    """Install a plugin distribution on sys.path through a real dist-info entry point.

    Returns a function ``make(module_source, ep_name="fakeplug")``.
    """

    def make(source, ep_name="fakeplug", module="fake_neuroplug_plugin"):
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
        info = tmp_path / f"{module.replace('_', '-')}-1.2.3.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: 1.2.3\n"
        )
        (info / "entry_points.txt").write_text(
            f"[{ENTRY_POINT_GROUP}]\n{ep_name} = {module}\n"
        )
        monkeypatch.syspath_prepend(str(tmp_path))
        sys.modules.pop(module, None)
        return tmp_path

    yield make
    sys.modules.pop("fake_neuroplug_plugin", None)


GOOD_PLUGIN = """
    from neuroplug import hookimpl
    from neuroplug.ops import Ops

    class FakeOps(Ops):
        name = "fake"

    @hookimpl
    def neuroplug_register_backends(register):
        register("fake", FakeOps)
"""


def test_builtins_are_registered_through_hooks():
    pm = PluginManager(autoload=False)
    names = [i.name for i in pm.info()]
    assert names[:3] == ["backends", "layers", "pretrainers"]
    assert {"cpu", "numpy"} <= set(pm.backends.names())
    assert pm.backends.entry("cpu").plugin == "backends"
    # The built-ins went through pluggy like any plugin.
    assert pm.pm.has_plugin("backends")


def test_entry_point_plugin_is_found(fake_dist):
    fake_dist(GOOD_PLUGIN)
    pm = PluginManager()
    assert "fake" in pm.backends
    info = {i.name: i for i in pm.info()}["fakeplug"]
    assert (
        "entry point fake_neuroplug_plugin in fake-neuroplug-plugin 1.2.3"
        in info.source
    )
    assert info.registered["backend"] == ["fake"]
    assert issubclass(pm.backends.get("fake"), Ops)


def test_autoload_can_be_disabled(fake_dist, monkeypatch):
    fake_dist(GOOD_PLUGIN)
    monkeypatch.setenv("NEUROPLUG_DISABLE_PLUGIN_AUTOLOAD", "1")
    pm = PluginManager()
    assert "fake" not in pm.backends and "cpu" in pm.backends


def test_named_plugins_can_be_blocked(fake_dist, monkeypatch):
    fake_dist(GOOD_PLUGIN)
    monkeypatch.setenv("NEUROPLUG_DISABLE_PLUGINS", "fakeplug, pretrainers")
    pm = PluginManager()
    assert "fake" not in pm.backends
    blocked = {i.name for i in pm.info() if i.blocked}
    assert blocked == {"fakeplug", "pretrainers"}


def test_import_failure_names_plugin_and_chains_cause(fake_dist):
    fake_dist("import this_module_does_not_exist_anywhere\n")
    pm = PluginManager()
    with pytest.warns(PluginWarning, match='Error importing plugin "fakeplug"'):
        pm.load()
    (err,) = pm.errors
    assert isinstance(err, PluginLoadError) and err.plugin == "fakeplug"
    assert isinstance(err.__cause__, ModuleNotFoundError)
    # The other plugins keep working and an unknown name points at the failure.
    assert "cpu" in pm.backends
    with pytest.raises(UnknownNameError, match="fakeplug"):
        pm.backends.get("fake")


def test_strict_mode_raises_with_traceback(fake_dist, monkeypatch):
    fake_dist("raise RuntimeError('boom at import')\n")
    monkeypatch.setenv("NEUROPLUG_STRICT_PLUGINS", "1")
    with pytest.raises(
        PluginLoadError, match='Error importing plugin "fakeplug".*boom at import'
    ) as info:
        PluginManager().load()
    assert info.value.__cause__.__traceback__ is not None


def test_duplicate_across_plugins_names_both():
    pm = PluginManager(autoload=False)
    dup = types.ModuleType("dup")

    @hookimpl
    def neuroplug_register_backends(register):
        register("other", Ops)
        register("cpu", Ops)

    dup.neuroplug_register_backends = neuroplug_register_backends
    with pytest.warns(PluginWarning, match="'cpu'.*'backends' and 'dup'"):
        pm.register(dup, "dup")
    assert pm.errors == []
    # The contested name fails closed; the plugin's other names work.
    with pytest.raises(
        NameClashError, match="'cpu'.*'backends' and 'dup'.*NEUROPLUG_DISABLE_PLUGINS"
    ):
        pm.backends.get("cpu")
    assert isinstance(NameClashError("backend", "cpu", ["a", "b"]), DuplicateNameError)
    assert pm.backends.entry("other").plugin == "dup"


def test_invalid_backend_class_is_refused():
    pm = PluginManager(autoload=False, strict=True)
    bad = types.ModuleType("bad")
    bad.neuroplug_register_backends = hookimpl(lambda register: register("bad", dict))
    with pytest.raises(
        RegistrationError,
        match=r"Plugin 'bad' registered an invalid backend 'bad': expected a subclass of neuroplug.ops.Ops",
    ):
        pm.register(bad, "bad")


def test_unknown_hook_is_refused():
    pm = PluginManager(autoload=False)
    typo = types.ModuleType("typo")
    typo.neuroplug_register_layer = hookimpl(lambda register: None)
    with pytest.warns(PluginWarning, match="unknown hook.*neuroplug_register_layer"):
        pm.register(typo, "typo")
    assert not pm.pm.has_plugin("typo")


def test_hook_raising_names_plugin():
    pm = PluginManager(autoload=False)
    boom = types.ModuleType("boom")

    def impl(register):
        raise KeyError("missing thing")

    boom.neuroplug_register_layers = hookimpl(impl)
    with pytest.warns(
        PluginWarning, match='Plugin "boom".*raised in neuroplug_register_layers'
    ):
        pm.register(boom, "boom")
    assert isinstance(pm.errors[0].__cause__, KeyError)


def test_unregister_removes_registrations():
    pm = PluginManager(autoload=False)
    extra = types.ModuleType("extra")

    class ExtraOps(Ops):
        pass

    extra.neuroplug_register_backends = hookimpl(
        lambda register: register("extra", ExtraOps)
    )
    pm.register(extra, "extra")
    assert pm.backends.get("extra") is ExtraOps
    pm.unregister("extra")
    assert "extra" not in pm.backends and "extra" not in [i.name for i in pm.info()]


def test_loading_is_lazy_idempotent_and_thread_safe(monkeypatch):
    calls = []
    real = PluginManager._load_one

    def counting(self, *args, **kwargs):
        calls.append(args[0])
        return real(self, *args, **kwargs)

    monkeypatch.setattr(PluginManager, "_load_one", counting)
    pm = PluginManager(autoload=False)
    assert calls == []  # nothing loaded at construction
    threads = [threading.Thread(target=lambda: pm.backends.names()) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    pm.load()
    assert calls == ["backends", "layers", "pretrainers", "callbacks"]


def test_global_manager_and_lookup_helpers(fresh_global_manager):
    assert get_plugin_manager() is get_plugin_manager()
    assert get_backend("numpy") is Ops
    assert neuroplug.get_plugin_manager() is get_plugin_manager()


def test_fresh_process_finds_plugins():
    code = (
        "from neuroplug.backends import get_ops; print(type(get_ops('cpu')).__name__)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "CythonOps"


def test_warnings_are_not_raised_for_healthy_setup():
    with warnings.catch_warnings():
        warnings.simplefilter("error", PluginWarning)
        PluginManager().load()


# ---------------------------------------------------------------------------
# Hooks go through pluggy's callers: ordering, wrappers, tracing
# ---------------------------------------------------------------------------
class _Orderly:
    """Three implementations of one hook in one plugin (``specname=``), ordered by pluggy."""

    def __init__(self):
        self.calls = []

    @hookimpl(specname="neuroplug_register_backends", trylast=True)
    def last(self, register):
        self.calls.append("last")
        register("last-one", Ops)

    @hookimpl(specname="neuroplug_register_backends")
    def middle(self, register):
        self.calls.append("middle")

    @hookimpl(specname="neuroplug_register_backends", tryfirst=True)
    def first(self, register):
        self.calls.append("first")


def test_tryfirst_and_trylast_order_a_plugins_implementations():
    pm = PluginManager(autoload=False, strict=True)
    plugin = _Orderly()
    pm.register(plugin, "orderly")
    assert plugin.calls == ["first", "middle", "last"]
    assert pm.backends.entry("last-one").plugin == "orderly"


class _Wrapped:
    def __init__(self):
        self.calls = []

    @hookimpl(wrapper=True)
    def neuroplug_register_layers(self, register):
        self.calls.append(("new-style before", register.plugin))
        result = yield
        self.calls.append(("new-style after", [e.name for e in register.staged]))
        return result

    @hookimpl(hookwrapper=True, specname="neuroplug_register_layers")
    def old_style(self, register):
        self.calls.append(("old-style before", register.plugin))
        yield
        self.calls.append(("old-style after", [e.name for e in register.staged]))

    @hookimpl(specname="neuroplug_register_layers")
    def plain(self, register):
        from neuroplug.layers.activations import ReLU

        self.calls.append(("plain", None))
        register("wrapped-relu", type("WrappedReLU", (ReLU,), {}))


def test_wrapper_and_hookwrapper_implementations_run_around_the_plugins_registrations():
    pm = PluginManager(autoload=False, strict=True)
    plugin = _Wrapped()
    pm.register(plugin, "wrapped")
    kinds = [c[0] for c in plugin.calls]
    assert kinds.index("plain") > kinds.index("new-style before") and kinds.index(
        "plain"
    ) > kinds.index("old-style before")
    assert ("new-style after", ["wrapped-relu"]) in plugin.calls
    assert ("old-style after", ["wrapped-relu"]) in plugin.calls
    assert ("new-style before", "wrapped") in plugin.calls
    assert "wrapped-relu" in pm.layers


def test_a_wrapper_that_raises_fails_its_plugin_with_its_name():
    class Raising:
        @hookimpl(wrapper=True)
        def neuroplug_register_layers(self, register):
            yield
            raise RuntimeError("wrapper says no")

    pm = PluginManager(autoload=False)
    with pytest.warns(
        PluginWarning, match="raising.*neuroplug_register_layers.*wrapper says no"
    ):
        pm.register(Raising(), "raising")
    assert [e.plugin for e in pm.errors] == ["raising"]


def test_tracing_sees_every_hook_call():
    pm = PluginManager(autoload=False)
    seen = []
    pm.pm.trace.root.setwriter(seen.append)
    undo = pm.pm.enable_tracing()
    try:
        pm.load()
    finally:
        undo()
    text = "".join(seen)
    for hook in (
        "neuroplug_register_backends",
        "neuroplug_register_layers",
        "neuroplug_register_pretrainers",
    ):
        assert hook in text, text


# ---------------------------------------------------------------------------
# A plugin that ends the process at import is a broken plugin, not the end of the host
# ---------------------------------------------------------------------------
def test_sys_exit_at_import_is_a_broken_plugin(fake_dist):
    fake_dist("import sys\nsys.exit(3)\n")
    pm = PluginManager(autoload=True, disabled=(), strict=False)
    with pytest.warns(
        PluginWarning, match='Error importing plugin "fakeplug".*SystemExit: 3'
    ):
        pm.load()
    (err,) = [e for e in pm.errors if e.plugin == "fakeplug"]
    assert isinstance(err, PluginLoadError) and isinstance(err.__cause__, SystemExit)
    assert err.__cause__.__traceback__ is not None  # the traceback is kept
    assert "dense" in pm.layers  # and everything else loaded
    from neuroplug.cli import format_plugins

    text, ok = format_plugins(pm)
    assert not ok and "FAILED" in text and "SystemExit" in text


def test_sys_exit_in_a_hook_is_a_broken_plugin():
    plugin = types.ModuleType("quitter")
    plugin.neuroplug_register_layers = hookimpl(lambda register: sys.exit("bye"))
    pm = PluginManager(autoload=False)
    with pytest.warns(PluginWarning, match="quitter.*SystemExit: bye"):
        pm.register(plugin, "quitter")
    assert [e.plugin for e in pm.errors] == ["quitter"]


def test_cli_survives_a_plugin_that_exits(fake_dist):
    path = fake_dist("import sys\nsys.exit(3)\n")
    env = {
        **__import__("os").environ,
        "PYTHONPATH": f"{path}:{__import__('os').environ.get('PYTHONPATH', '')}",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "neuroplug", "plugins"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 1, proc.stderr
    assert (
        "fakeplug" in proc.stdout
        and "FAILED" in proc.stdout
        and "SystemExit" in proc.stdout
    )
    assert "dense" in proc.stdout


def test_keyboard_interrupt_at_import_still_propagates(fake_dist):
    fake_dist("raise KeyboardInterrupt\n")
    pm = PluginManager(autoload=True, disabled=(), strict=False)
    with pytest.raises(KeyboardInterrupt):
        pm.load()


# ---------------------------------------------------------------------------
# Provenance: a saved model loads only against the plugin it was saved with
# ---------------------------------------------------------------------------
_TWIN_PLUGIN = """
from neuroplug.layers.activations import ReLU
from neuroplug.plugins import hookimpl

class Twin(ReLU):
    '''A layer an entry-point plugin provides.'''

@hookimpl
def neuroplug_register_layers(register):
    register("twin", Twin)
"""


@pytest.fixture
def swap_manager():
    """``swap(manager)`` installs ``manager`` process-wide; the original comes back afterwards."""
    from neuroplug.plugins import reset_plugin_manager

    old = reset_plugin_manager(None)
    try:

        def swap(manager):
            reset_plugin_manager(manager.load())
            return manager

        yield swap
    finally:
        reset_plugin_manager(old)


def _impostor():
    from neuroplug.layers.activations import Tanh

    plugin = types.ModuleType("impostor")
    plugin.neuroplug_register_layers = hookimpl(
        lambda register: register("twin", type("Impostor", (Tanh,), {}))
    )
    return plugin


def test_load_checks_which_plugin_provides_each_layer(
    fake_dist, swap_manager, tmp_path
):
    import numpy as np

    from neuroplug import load, save
    from neuroplug.estimators import CNNClassifier
    from neuroplug.persist import ModelFormatError

    fake_dist(_TWIN_PLUGIN)
    manager = swap_manager(PluginManager(autoload=True, disabled=(), strict=False))
    assert manager.provider("layer", "twin").distribution == "fake-neuroplug-plugin"
    X = np.random.default_rng(0).random((20, 4))
    y = (X[:, 0] > 0.5).astype(int)
    clf = CNNClassifier(("dense:3", "twin"), max_iter=1, random_state=0).fit(X, y)
    path = save(clf, tmp_path / "m")
    np.testing.assert_array_equal(load(path).predict(X), clf.predict(X))

    # Installed but blocked: the message says so, rather than "install it".
    swap_manager(PluginManager(autoload=True, disabled=("fakeplug",), strict=False))
    with pytest.raises(
        ModelFormatError,
        match="layer 'twin' of plugin 'fakeplug', which is installed but blocked",
    ) as info:
        load(path)
    assert "install that plugin" not in str(info.value)

    # Another plugin provides the name now: refused, naming both.
    manager = swap_manager(
        PluginManager(autoload=True, disabled=("fakeplug",), strict=False)
    )
    manager.register(_impostor(), "impostor")
    with pytest.raises(
        ModelFormatError,
        match=r"'twin', which was saved with plugin fakeplug \(entry point .*"
        r"fake-neuroplug-plugin 1.2.3\), but plugin impostor .*NEUROPLUG_DISABLE_PLUGINS=impostor",
    ):
        load(path)

    # Both at once: the name is contested, so nothing loads.
    manager = swap_manager(PluginManager(autoload=True, disabled=(), strict=False))
    with pytest.warns(PluginWarning):
        manager.register(_impostor(), "impostor")
    with pytest.raises(
        ModelFormatError, match="'twin' is registered by more than one plugin"
    ):
        load(path)
    with pytest.raises(NameClashError):
        CNNClassifier(("dense:3", "twin"), max_iter=1).fit(X, y)

    # Not installed at all: "install that plugin".
    swap_manager(PluginManager(autoload=False, disabled=(), strict=False))
    with pytest.raises(
        ModelFormatError,
        match="'twin', which no installed plugin provides. It was saved with plugin fakeplug",
    ):
        load(path)


def test_check_provenance_accepts_a_newer_version_of_the_same_distribution():
    from neuroplug.plugins import parse_origin

    pm = PluginManager(autoload=False)
    assert parse_origin(
        "lrn (entry point neuroplug_lrn.plugin in neuroplug-lrn 0.1.0)"
    ) == ("lrn", "neuroplug-lrn")
    assert parse_origin("layers (built-in (neuroplug._builtin.layers))") == (
        "layers",
        "neuroplug",
    )
    assert parse_origin("testplug (registered at run time)") == ("testplug", None)
    assert (
        pm.check_provenance(
            "layer", "dense", "layers (built-in (neuroplug._builtin.layers) 0.0.1)"
        ).plugin
        == "layers"
    )
    with pytest.raises(ValueError, match="kind must be one of"):
        pm.check_provenance("widget", "dense", None)


def test_a_plugin_registers_a_callback_that_estimators_find_by_name(
    fresh_global_manager,
):
    """The callbacks hook: a third-party callback named in ``callbacks=`` runs every epoch."""
    import numpy as np

    from neuroplug.callbacks import Callback
    from neuroplug.estimators import RBM
    from neuroplug.plugins import get_plugin_manager

    seen = []

    class Counter(Callback):
        def on_epoch_end(self, info):
            seen.append(info["epoch"])

    plugin = types.ModuleType("counting")

    @hookimpl
    def neuroplug_register_callbacks(register):
        register("counter", Counter)

    plugin.neuroplug_register_callbacks = neuroplug_register_callbacks
    get_plugin_manager().register(plugin, "counting")
    X = (np.random.default_rng(0).random((40, 6)) > 0.5).astype(float)
    RBM(3, max_iter=3, callbacks=("counter",), random_state=0).fit(X)
    assert seen == [1, 2, 3]
    with pytest.raises(
        ValueError, match="counter"
    ):  # unknown names list the known ones
        RBM(3, max_iter=1, callbacks=("countr",)).fit(X)
