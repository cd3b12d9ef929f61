"""Backend selection: turn a user's ``backend=`` value into an ``Ops`` instance."""

from __future__ import annotations

from typing import Any

from ..ops import Ops

__all__ = ["DEFAULT_BACKEND", "get_ops", "parse_backend"]

#: The backend estimators use unless told otherwise: the Cython kernels.
DEFAULT_BACKEND = "cpu"


def parse_backend(backend: str) -> tuple[str, str | None]:
    """Split ``"name"`` or ``"name:device"`` (e.g. ``"torch:cuda:0"``) into ``(name, device)``."""
    if not isinstance(backend, str) or not backend:
        raise TypeError(
            f"backend must be a non-empty string such as 'cpu' or 'torch:cuda'. Received: backend={backend!r}"
        )
    name, _, device = backend.partition(":")
    return name, (device or None)


def get_ops(
    backend: str | Ops | None = None, *, n_threads: int | None = None, **kwargs: Any
) -> Ops:
    """Return an ``Ops`` instance for ``backend``.

    ``backend`` is a registered backend name, optionally followed by
    ``:device`` (``"cpu"``, ``"numpy"``, ``"torch"``, ``"torch:cuda:0"``), or an
    ``Ops`` instance, returned as is.  ``None`` means :data:`DEFAULT_BACKEND`.
    """
    if isinstance(backend, Ops):
        return backend
    from ..plugins import get_backend

    name, device = parse_backend(DEFAULT_BACKEND if backend is None else backend)
    cls = get_backend(name)
    return cls(device, n_threads=n_threads, **kwargs)
