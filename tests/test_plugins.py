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
from neuroplug.registry import DuplicateNameError, PluginLoadError, RegistrationError, UnknownNameError


@pytest.fixture
def fake_dist(tmp_path, monkeypatch):
    """Install a plugin distribution on sys.path through a real dist-info entry point.

    Returns a function ``make(module_source, ep_name="fakeplug")``.
    """

    def make(source, ep_name="fakeplug", module="fake_neuroplug_plugin"):
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
        info = tmp_path / f"{module.replace('_', '-')}-1.2.3.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: 1.2.3\n")
        (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{ep_name} = {module}\n")
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
    assert "entry point fake_neuroplug_plugin in fake-neuroplug-plugin 1.2.3" in info.source
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
    with pytest.raises(PluginLoadError, match='Error importing plugin "fakeplug".*boom at import') as info:
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
    with pytest.warns(PluginWarning, match="'dup'.*'cpu'.*'backends'"):
        pm.register(dup, "dup")
    (err,) = pm.errors
    assert isinstance(err, DuplicateNameError)
    # Nothing from the failed plugin was kept, everything else was.
    assert "other" not in pm.backends and pm.backends.entry("cpu").plugin == "backends"


def test_invalid_backend_class_is_refused():
    pm = PluginManager(autoload=False, strict=True)
    bad = types.ModuleType("bad")
    bad.neuroplug_register_backends = hookimpl(lambda register: register("bad", dict))
    with pytest.raises(RegistrationError, match=r"Plugin 'bad' registered an invalid backend 'bad': expected a subclass of neuroplug.ops.Ops"):
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
    with pytest.warns(PluginWarning, match='Plugin "boom".*raised in neuroplug_register_layers'):
        pm.register(boom, "boom")
    assert isinstance(pm.errors[0].__cause__, KeyError)


def test_unregister_removes_registrations():
    pm = PluginManager(autoload=False)
    extra = types.ModuleType("extra")

    class ExtraOps(Ops):
        pass

    extra.neuroplug_register_backends = hookimpl(lambda register: register("extra", ExtraOps))
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
    assert calls == ["backends", "layers", "pretrainers"]


def test_global_manager_and_lookup_helpers(fresh_global_manager):
    assert get_plugin_manager() is get_plugin_manager()
    assert get_backend("numpy") is Ops
    assert neuroplug.get_plugin_manager() is get_plugin_manager()


def test_fresh_process_finds_plugins():
    code = "from neuroplug.backends import get_ops; print(type(get_ops('cpu')).__name__)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "CythonOps"


def test_warnings_are_not_raised_for_healthy_setup():
    with warnings.catch_warnings():
        warnings.simplefilter("error", PluginWarning)
        PluginManager().load()
