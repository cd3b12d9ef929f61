"""Every hook in neuroplug/hookspecs.py is documented in docs/plugins.md and implemented by some test.

Adding a hook without a section in the plugin author guide, or without a test
that implements it, fails here (as datasette does for its plugin hooks).
"""

from __future__ import annotations

import inspect
import re
import types
from pathlib import Path

import pytest

from neuroplug import hookspecs

ROOT = Path(__file__).resolve().parents[1]
GUIDE = ROOT / "docs" / "plugins.md"
THIS = Path(__file__).resolve()


def hook_specs(module: types.ModuleType) -> dict[str, list[str]]:
    """Hook name -> argument names, for every function marked by ``HookspecMarker("neuroplug")``."""
    return {
        name: list(inspect.signature(fn).parameters)
        for name, fn in vars(module).items()
        if inspect.isfunction(fn) and hasattr(fn, "neuroplug_spec")
    }


def guide_sections(text: str) -> dict[str, str]:
    """Markdown heading line -> the text up to the next heading of the same or a higher level."""
    sections = {}
    matches = list(re.finditer(r"^(#+)\s+(.*)$", text, flags=re.M))
    for i, m in enumerate(matches):
        level = len(m.group(1))
        end = next(
            (n.start() for n in matches[i + 1 :] if len(n.group(1)) <= level), len(text)
        )
        sections[m.group(2)] = text[m.end() : end]
    return sections


def undocumented(specs: dict[str, list[str]], guide: str) -> list[str]:
    """Problems: hooks without their own heading, or whose section omits an argument."""
    problems = []
    sections = guide_sections(guide)
    for hook, args in specs.items():
        own = [
            body
            for heading, body in sections.items()
            if re.search(rf"\b{hook}\b", heading)
        ]
        if not own:
            problems.append(f"{hook}: no heading in docs/plugins.md names it")
            continue
        for arg in args:
            if not re.search(rf"`{arg}`|\b{arg}\(", own[0]):
                problems.append(
                    f"{hook}: its section does not describe the argument `{arg}`"
                )
    return problems


def suite_modules() -> list[Path]:
    """The test modules of neuroplug and of the plugins in this repository (not this file)."""
    files = list((ROOT / "tests").rglob("*.py")) + list(
        (ROOT / "plugins").glob("*/tests/**/*.py")
    )
    return sorted(p for p in files if p.resolve() != THIS)


def untested(specs: dict[str, list[str]], files: list[Path]) -> list[str]:
    """Hooks that no test implements (``def hook(`` or ``.hook = hookimpl(``)."""
    sources = [p.read_text(encoding="utf-8") for p in files]
    return [
        f"{hook}: no test implements it"
        for hook in specs
        if not any(
            re.search(rf"def {hook}\(|\.{hook}\s*=\s*hookimpl\(", src)
            for src in sources
        )
    ]


def test_there_are_hooks_and_they_share_the_prefix():
    specs = hook_specs(hookspecs)
    assert specs, "no hookspecs found: has the marker changed?"
    assert all(name.startswith("neuroplug_") for name in specs)


def test_every_hook_has_a_docstring_describing_its_arguments():
    for name, args in hook_specs(hookspecs).items():
        doc = inspect.getdoc(getattr(hookspecs, name)) or ""
        assert doc, f"{name} has no docstring"
        for arg in args:
            assert f":param {arg}:" in doc, (
                f"{name}'s docstring does not describe :param {arg}:"
            )


def test_every_hook_is_documented_in_the_author_guide():
    assert undocumented(hook_specs(hookspecs), GUIDE.read_text(encoding="utf-8")) == []


def test_every_hook_is_implemented_by_a_test():
    assert untested(hook_specs(hookspecs), suite_modules()) == []


# -- the checks above can fail: a new hook that is neither documented nor tested ------
def _with_new_hook() -> types.ModuleType:
    fake = types.ModuleType("fake_hookspecs")
    for name in hook_specs(hookspecs):
        setattr(fake, name, getattr(hookspecs, name))

    @hookspecs.hookspec
    def neuroplug_register_losses(register, priority):
        """Register losses.

        :param register: ...
        :param priority: ...
        """

    fake.neuroplug_register_losses = neuroplug_register_losses
    return fake


def test_a_new_hook_without_docs_or_tests_is_reported():
    specs = hook_specs(_with_new_hook())
    assert "neuroplug_register_losses" in specs
    assert undocumented(specs, GUIDE.read_text(encoding="utf-8")) == [
        "neuroplug_register_losses: no heading in docs/plugins.md names it"
    ]
    assert untested(specs, suite_modules()) == [
        "neuroplug_register_losses: no test implements it"
    ]


@pytest.mark.parametrize(
    "guide, problems",
    [
        (
            "### `neuroplug_register_losses(register, priority)`\n\n- **`register`**: ...\n- **`priority`**: ...\n",
            [],
        ),
        (
            "### `neuroplug_register_losses`\n\n- **`register`**: ...\n\n### other\n\n`priority`\n",
            [
                "neuroplug_register_losses: its section does not describe the argument `priority`"
            ],
        ),
        (
            "Somewhere in the text: neuroplug_register_losses(register, priority).\n",
            ["neuroplug_register_losses: no heading in docs/plugins.md names it"],
        ),
    ],
    ids=["documented", "argument-missing", "mentioned-but-no-heading"],
)
def test_documentation_rules(guide, problems):
    specs = {"neuroplug_register_losses": ["register", "priority"]}
    assert undocumented(specs, guide) == problems


def test_implementation_rule(tmp_path):
    specs = {"neuroplug_register_losses": ["register"]}
    mention = tmp_path / "test_mention.py"
    mention.write_text("# neuroplug_register_losses is mentioned but not implemented\n")
    assert untested(specs, [mention])
    impl = tmp_path / "test_impl.py"
    impl.write_text("@hookimpl\ndef neuroplug_register_losses(register):\n    pass\n")
    assert untested(specs, [mention, impl]) == []
