"""Fixtures for the plugin's tests.

A plugin in its own repository enables neuroplug's fixtures with
``pytest_plugins = ["neuroplug.pytest_plugin"]`` in its top-level
``conftest.py``.  This conftest is not top-level when the whole neuroplug
repository is tested from its root, where pytest refuses ``pytest_plugins``,
so it imports the fixtures instead; both ways give the same fixtures.
"""

from neuroplug.pytest_plugin import neuroplug_manager, register_plugin  # noqa: F401
