"""The command line: --version, plugins, python -m neuroplug."""

import subprocess
import sys
import types

import pytest

from neuroplug import __version__
from neuroplug.cli import format_plugins, main
from neuroplug.plugins import PluginManager, hookimpl


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"neuroplug {__version__}"


def test_plugins_lists_builtins(capsys):
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "backends  [built-in (neuroplug._builtin.backends)]" in out
    assert "backends: cpu, numpy" in out


def test_plugins_reports_failure_and_exit_code():
    pm = PluginManager(autoload=False)
    broken = types.ModuleType("broken")

    def impl(register):
        raise RuntimeError("cannot find the GPU driver")

    broken.neuroplug_register_backends = hookimpl(impl)
    with pytest.warns(UserWarning):
        pm.register(broken, "broken")
    text, ok = format_plugins(pm)
    assert not ok
    assert "broken  [registered at run time]" in text
    assert "FAILED" in text and "cannot find the GPU driver" in text


def test_python_dash_m_matches_console_script():
    out = subprocess.run(
        [sys.executable, "-m", "neuroplug", "plugins"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert "backends: cpu, numpy" in out.stdout


def test_no_command_prints_help(capsys):
    assert main([]) == 2
    assert "usage: neuroplug" in capsys.readouterr().out
