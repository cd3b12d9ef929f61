"""``neuroplug new-plugin``: the generated distributions install by entry point and their own tests pass."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import neuroplug
from neuroplug import hookspecs
from neuroplug._newplugin import available_kinds, write_plugin
from neuroplug.cli import main


def _run_generated_tests(root: Path) -> subprocess.CompletedProcess:
    # No pip install: the generated package and this neuroplug on PYTHONPATH.
    here = str(Path(neuroplug.__file__).resolve().parents[1])
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(root), here, os.environ.get("PYTHONPATH", "")]),
    )
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.parametrize("kind", available_kinds())
def test_the_generated_plugin_passes_its_own_tests(tmp_path, kind, capsys):
    assert (
        main(["new-plugin", f"my_{kind}", "--kind", kind, "--directory", str(tmp_path)])
        == 0
    )
    root = tmp_path / f"neuroplug-my_{kind}"
    assert str(root) in capsys.readouterr().out
    pyproject = (root / "pyproject.toml").read_text()
    assert f'name = "neuroplug-my_{kind}"' in pyproject
    assert (
        f'[project.entry-points.neuroplug]\nmy_{kind} = "neuroplug_my_{kind}.plugin"'
        in pyproject
    )
    assert 'dependencies = ["neuroplug>=' in pyproject
    result = _run_generated_tests(root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert " passed" in result.stdout and "failed" not in result.stdout


def test_a_broken_template_edit_makes_the_generated_tests_fail(tmp_path):
    """The generated tests can fail: a layer that computes with NumPy is caught by the kit."""
    root = write_plugin("leaky", "layer", tmp_path)
    source = root / "neuroplug_leaky" / "layers.py"
    text = source.read_text().replace(
        "positive = self.ops.relu(X)",
        "import numpy as np\n        positive = np.maximum(X, 0)",
    )
    source.write_text(text)
    result = _run_generated_tests(root)
    assert result.returncode != 0
    assert "check_strict_arrays" in result.stdout and "numpy.maximum" in result.stdout


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["new-plugin", "My-Layer", "--kind", "layer"],
            "NAME must be lower-case letters, digits and '_'",
        ),
        (["new-plugin", "ok", "--kind", "layer"], "already exists"),
    ],
)
def test_bad_requests_are_refused(tmp_path, capsys, argv, message):
    (tmp_path / "neuroplug-ok").mkdir()
    assert main([*argv, "--directory", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err


def test_callback_kind_follows_the_hook(tmp_path, capsys):
    has_hook = hasattr(hookspecs, "neuroplug_register_callbacks")
    assert ("callback" in available_kinds()) == has_hook
    if not has_hook:
        assert (
            main(
                ["new-plugin", "cb", "--kind", "callback", "--directory", str(tmp_path)]
            )
            == 2
        )
        assert "no neuroplug_register_callbacks hook yet" in capsys.readouterr().err
