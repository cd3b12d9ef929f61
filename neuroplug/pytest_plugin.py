"""pytest fixtures for neuroplug plugin authors.

Enable them in the top-level ``conftest.py`` of your test suite::

    pytest_plugins = ["neuroplug.pytest_plugin"]

(pytest accepts ``pytest_plugins`` only in the top-level conftest; in a
nested one import the fixtures instead:
``from neuroplug.pytest_plugin import neuroplug_manager, register_plugin``.)

Fixtures
--------
``neuroplug_manager``
    A fresh :class:`~neuroplug.plugins.PluginManager` with the built-in
    plugins only (no entry points, nothing blocked, not strict), installed as
    the process-wide manager for the duration of the test, so estimators,
    ``get_ops`` and :func:`neuroplug.testing.check_layer` see exactly what the
    test registers.  The previous manager is restored afterwards, whatever
    the test did.
``register_plugin``
    ``register_plugin(plugin, name=None, *, strict=True) -> name`` registers a
    plugin object (a module or any object with hook implementations) in
    ``neuroplug_manager`` and unregisters it when the test ends, even when
    it fails.  With ``strict=True`` (the default) a broken plugin raises its
    :class:`~neuroplug.registry.PluginError` at once; with ``strict=False`` it
    warns and the test can inspect ``neuroplug_manager.errors`` (what users
    see).

Example::

    import my_plugin

    def test_my_layer_is_usable_by_name(register_plugin):
        register_plugin(my_plugin, "mine")
        check_layer("mylayer:3", input_shape=(4, 6, 6))
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from .plugins import PluginManager, reset_plugin_manager

__all__ = ["neuroplug_manager", "register_plugin"]


@pytest.fixture
def neuroplug_manager() -> Iterator[PluginManager]:
    """A fresh plugin manager (built-ins only), installed process-wide for one test."""
    manager = PluginManager(autoload=False, disabled=(), strict=False)
    manager.load()
    old = reset_plugin_manager(manager)
    try:
        yield manager
    finally:
        reset_plugin_manager(old)


@pytest.fixture
def register_plugin(neuroplug_manager: PluginManager) -> Iterator[Callable[..., str]]:
    """Register plugins in ``neuroplug_manager`` for one test; they are unregistered afterwards."""
    names: list[str] = []

    def register(plugin: Any, name: str | None = None, *, strict: bool = True) -> str:
        """Register ``plugin`` (as ``name``); with ``strict`` a broken plugin raises at once."""
        previous = neuroplug_manager.strict
        neuroplug_manager.strict = strict
        # Remember the name before registering: a failed registration leaves
        # its record (the error) behind, and that must go at teardown too.
        key = name or getattr(plugin, "__name__", None) or type(plugin).__name__
        names.append(key)
        try:
            return neuroplug_manager.register(plugin, key)
        finally:
            neuroplug_manager.strict = previous

    try:
        yield register
    finally:
        for key in reversed(names):
            neuroplug_manager.unregister(key)
