"""Three-way kernel switches shared by the core modules: ``"never"``, ``"auto"``, ``"always"``.

``conv.set_sliding``, ``winograd.set_winograd`` and ``rbm.set_sparse`` keep
their setting as an int (0, 1, 2) that their kernels read without the GIL;
these helpers validate names, read the environment variable that sets a
switch before import, and set one for the length of a block (tests,
benchmarks).
"""

from __future__ import annotations

import contextlib
import os
from typing import Callable, Iterator

MODES = {"never": 0, "auto": 1, "always": 2}


def mode_value(mode: str) -> int:
    """The int of a mode name; ``ValueError`` naming the choices for anything else."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {list(MODES)}. Received: {mode!r}")
    return MODES[mode]


def mode_name(value: int) -> str:
    """The name of a mode's int."""
    return next(name for name, v in MODES.items() if v == value)


def mode_from_env(variable: str) -> str | None:
    """The mode named by the environment variable ``variable``, or ``None`` when unset or unknown."""
    value = os.environ.get(variable, "").strip().lower()
    return value if value in MODES else None


@contextlib.contextmanager
def switched(setter: Callable[[str], str], mode: str) -> Iterator[str]:
    """Run a block with a switch (``setter``, e.g. ``winograd.set_winograd``) in ``mode``, then restore it."""
    previous = setter(mode)
    try:
        yield mode
    finally:
        setter(previous)
