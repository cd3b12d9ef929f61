"""Shared test configuration: keep the process-wide plugin manager clean."""

import pytest

from neuroplug.plugins import reset_plugin_manager


@pytest.fixture
def fresh_global_manager():
    """Rebuild the process-wide plugin manager for one test, then restore the old one."""
    old = reset_plugin_manager(None)
    try:
        yield
    finally:
        reset_plugin_manager(old)
