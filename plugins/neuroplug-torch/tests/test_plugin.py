"""Discovery through the ``neuroplug`` entry-point group, blocking, and a core that never imports torch."""

import importlib.metadata
import os
import subprocess
import sys
import textwrap

import neuroplug_torch
import pytest

import neuroplug
from neuroplug.plugins import ENTRY_POINT_GROUP, PluginManager
from neuroplug.registry import UnknownNameError

pytest.importorskip(
    "torch",
    reason="PyTorch is not installed; the torch backend tests need it (CPU build: pip install torch --index-url https://download.pytorch.org/whl/cpu)",
)


def _env(**extra):
    """Environment for a child interpreter that finds neuroplug and this plugin from the source trees."""
    paths = [
        os.path.dirname(os.path.dirname(neuroplug.__file__)),
        os.path.dirname(os.path.dirname(neuroplug_torch.__file__)),
    ]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(paths + [env.get("PYTHONPATH", "")])
    env.update(extra)
    return env


#: Prepended to child scripts that must run as if torch were not installed.  A
#: sys.meta_path finder rather than ``sys.modules["torch"] = None``: SciPy's
#: array-API helpers look torch up in sys.modules and break on a None entry.
BLOCK_TORCH = """
import sys
class _BlockTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ImportError(f"No module named {name!r} (blocked by the test)")
        return None
sys.meta_path.insert(0, _BlockTorch())
"""


def _run(code, block_torch=False, **env):
    code = (BLOCK_TORCH if block_torch else "") + textwrap.dedent(code)
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=_env(**env),
        timeout=300,
    )


def test_entry_point_registers_the_torch_backend():
    eps = {
        ep.name: ep.value
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    }
    assert eps.get("torch") == "neuroplug_torch.plugin"
    pm = PluginManager(disabled=())
    entry = pm.backends.entry("torch")
    assert entry.obj is neuroplug_torch.TorchOps and entry.plugin == "torch"
    info = {i.name: i for i in pm.info()}
    assert (
        info["torch"].registered["backend"] == ["torch"] and info["torch"].error is None
    )


def test_blocked_plugin_leaves_no_torch_backend():
    pm = PluginManager(disabled={"torch"})
    with pytest.raises(UnknownNameError, match="Unknown backend 'torch'"):
        pm.backends.get("torch")
    assert "cpu" in pm.backends


def test_loading_plugins_does_not_import_torch():
    result = _run("""
        import sys
        from neuroplug.backends import get_ops
        from neuroplug.plugins import get_backend
        cls = get_backend("torch")
        assert cls.__name__ == "TorchOps", cls
        assert "torch" not in sys.modules, "discovering the plugin imported torch"
        get_ops("numpy")
        assert "torch" not in sys.modules
        ops = get_ops("torch:cpu")
        assert "torch" in sys.modules
        print("ok", ops)
    """)
    assert result.returncode == 0, result.stderr
    assert "ok TorchOps(device='cpu')" in result.stdout


def test_without_torch_the_core_imports_and_the_plugin_fails_cleanly():
    # One child process (they are slow): torch made unimportable, every
    # neuroplug module still imports, and the plugin's failure is explained.
    result = _run(
        block_torch=True,
        code="""
        import importlib, pkgutil, sys, warnings
        import neuroplug
        from neuroplug.backends import get_ops
        from neuroplug.registry import UnknownNameError
        bad = []
        for mod in pkgutil.walk_packages(neuroplug.__path__, "neuroplug."):
            if mod.name.endswith("__main__"):  # runs the CLI
                continue
            try:
                importlib.import_module(mod.name)
            except Exception as exc:
                if "torch" in str(exc):
                    bad.append((mod.name, repr(exc)))
        assert not bad, bad
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            get_ops("numpy")
        assert any("PyTorch is not installed" in str(w.message) for w in caught), [str(w.message) for w in caught]
        try:
            get_ops("torch")
        except UnknownNameError as exc:
            assert "PyTorch is not installed" in str(exc), exc
        else:
            raise AssertionError("backend 'torch' resolved without torch")
        assert "torch" not in sys.modules
        print("ok")
    """,
    )
    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout
