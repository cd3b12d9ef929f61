"""Scalar argument checks with one wording, for method arguments that are not hyper-parameters.

Hyper-parameters are checked by :mod:`neuroplug._validation`; these helpers
serve the floors below the estimators too (no scikit-learn import here).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

__all__ = ["check_int", "check_layer_sizes", "check_real"]


def check_int(
    value: Any, name: str, minimum: int = 1, maximum: int | None = None
) -> int:
    """``value`` as an int in ``[minimum, maximum]``, or a ``ValueError`` naming ``name``."""
    ok = (
        isinstance(value, numbers.Integral)
        and not isinstance(value, bool)
        and value >= minimum
    )
    if ok and maximum is not None:
        ok = value <= maximum
    if not ok:
        bound = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
        raise ValueError(f"{name} must be an int {bound}. Received: {name}={value!r}")
    return int(value)


def check_real(
    value: Any,
    name: str,
    low: float = -math.inf,
    high: float = math.inf,
    *,
    closed: str = "both",
) -> float:
    """``value`` as a finite float in the interval, or a ``ValueError`` naming ``name``.

    ``closed`` is ``"both"``, ``"left"``, ``"right"`` or ``"neither"``, as in
    scikit-learn's ``Interval``.
    """
    ok = (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and math.isfinite(value)
    )
    if ok:
        v = float(value)
        ok = (v >= low if closed in ("both", "left") else v > low) and (
            v <= high if closed in ("both", "right") else v < high
        )
    if not ok:
        lo = "[" if closed in ("both", "left") else "("
        hi = "]" if closed in ("both", "right") else ")"
        raise ValueError(
            f"{name} must be a finite number in {lo}{low:g}, {high:g}{hi}. Received: {name}={value!r}"
        )
    return float(value)


def check_layer_sizes(sizes: Any, name: str = "hidden_layer_sizes") -> tuple[int, ...]:
    """An int or a non-empty sequence of ints >= 1 as a tuple, or a clear error."""
    if isinstance(sizes, numbers.Integral) and not isinstance(sizes, bool):
        sizes = (sizes,)
    try:
        values = tuple(sizes)
    except TypeError:
        raise TypeError(
            f"{name} must be an int or a sequence of ints. Received: {name}={sizes!r}"
        ) from None
    if not values or not all(
        isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1
        for v in values
    ):
        raise ValueError(
            f"{name} must be a non-empty sequence of ints >= 1. Received: {name}={sizes!r}"
        )
    return tuple(int(v) for v in values)
