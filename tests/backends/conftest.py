"""Fixtures for backend tests: every registered backend, and the NumPy reference.

``ops`` is parametrized over ``get_plugin_manager().backends.names()``, so a
backend contributed by an installed plugin (``torch`` from
plugins/neuroplug-torch, say) is tested automatically, on the CPU.
"""

from __future__ import annotations

import pytest

from neuroplug import get_plugin_manager
from neuroplug.backends import get_ops
from neuroplug.ops import Ops


def backend_names() -> list[str]:
    """Names of every registered backend, sorted."""
    return list(get_plugin_manager().backends.names())


@pytest.fixture(params=backend_names())
def ops(request):
    """An instance of each registered backend, on the CPU (skipped if it has no CPU device)."""
    try:
        return get_ops(f"{request.param}:cpu")
    except (ValueError, RuntimeError, ImportError) as exc:
        pytest.skip(f"backend {request.param!r} cannot run on the CPU here: {exc}")


@pytest.fixture
def ref_ops() -> Ops:
    """The NumPy reference every backend is compared with."""
    return Ops()
