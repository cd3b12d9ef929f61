"""The one owner of argument checks: hyper-parameter constraints and scalar checks.

Hyper-parameters are declared, scikit-learn style, in ``_parameter_constraints``
(with :class:`~sklearn.utils._param_validation.Interval` and
:class:`~sklearn.utils._param_validation.StrOptions`) on every estimator,
pretrainer, optimizer and schedule, and checked once, at the outermost fit,
by :func:`validate_params`.  Method arguments that are not hyper-parameters
(``n_steps``, ``n_samples``...) go through :func:`check_int` and
:func:`check_real`.  Every message names the argument, says what was expected
and ends with ``Received: name=value``.
"""

from __future__ import annotations

import numbers
from typing import Any

from sklearn.utils._param_validation import (
    Hidden,
    Interval,
    InvalidParameterError,
    StrOptions,
    make_constraint,
)

from ._checks import check_int, check_layer_sizes, check_real

__all__ = [
    "ValidatedParams",
    "check_int",
    "check_layer_sizes",
    "check_real",
    "describe_constraints",
    "validate_params",
]


def _fmt(x: float) -> str:
    return f"{int(x)}" if float(x).is_integer() else f"{x:g}"


def _describe(constraint: Any) -> str:
    if isinstance(constraint, Interval):
        integral = constraint.type is numbers.Integral
        lo, hi = constraint.left, constraint.right
        lo_b = "[" if constraint.closed in ("left", "both") else "("
        hi_b = "]" if constraint.closed in ("right", "both") else ")"
        if lo is not None and hi is not None:
            return (
                "an int in " if integral else "in "
            ) + f"{lo_b}{_fmt(lo)}, {_fmt(hi)}{hi_b}"
        kind = "an int" if integral else "a number"
        if lo is not None:
            return f"{kind} {'>=' if lo_b == '[' else '>'} {_fmt(lo)}"
        if hi is not None:
            return f"{kind} {'<=' if hi_b == ']' else '<'} {_fmt(hi)}"
        return kind
    if isinstance(constraint, StrOptions):
        options = [repr(o) for o in sorted(constraint.options - constraint.deprecated)]
        return (
            options[0]
            if len(options) == 1
            else ", ".join(options[:-1]) + " or " + options[-1]
        )
    if constraint is None:
        return "None"
    if isinstance(constraint, str):
        return {
            "boolean": "a bool",
            "random_state": "an int, a RandomState instance or None",
            "verbose": "an int or a bool",
            "array-like": "array-like",
        }.get(constraint, constraint)
    if isinstance(constraint, type):
        if constraint is str:
            return "a str"
        if constraint in (tuple, list):
            return f"a {constraint.__name__}"
        return f"a {constraint.__name__} instance"
    return str(make_constraint(constraint))


def describe_constraints(constraints: list) -> str:
    """``"an int >= 1"``, ``"'a' or 'b'"``, ``"in [0, 1) or None"``: what a list of constraints accepts."""
    parts = [_describe(c) for c in constraints if not isinstance(c, Hidden)]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " or " + parts[-1]


def validate_params(obj: Any) -> None:
    """Check ``obj.get_params(deep=False)`` against ``obj._parameter_constraints``.

    Raises :class:`~sklearn.utils._param_validation.InvalidParameterError` (a
    ``ValueError`` and ``TypeError``).  Estimators (objects with ``fit``) word
    it as scikit-learn does (``The 'k' parameter of RBM must be ... Got ...
    instead.``, which scikit-learn's estimator checks read); the components
    they hold (pretrainers, optimizers, schedules) as ``Cls: k must be ...
    Received: k=...``.
    """
    constraints = getattr(obj, "_parameter_constraints", None) or {}
    params = obj.get_params(deep=False)
    cls = type(obj).__name__
    for name, value in params.items():
        allowed = constraints.get(name)
        if allowed is None or allowed == "no_validation":
            continue
        made = [make_constraint(c) for c in allowed]
        if any(c.is_satisfied_by(value) for c in made):
            continue
        # A float NaN satisfies no interval; say so plainly.
        desc = describe_constraints(allowed)
        if hasattr(obj, "fit"):
            msg = f"The {name!r} parameter of {cls} must be {desc}. Got {value!r} instead."
        else:
            msg = f"{cls}: {name} must be {desc}. Received: {name}={value!r}"
        raise InvalidParameterError(msg)


class ValidatedParams:
    """Mixin: ``_validate_params`` (what scikit-learn's ``_fit_context`` calls) goes through
    :func:`validate_params`, so every object words its errors the same way."""

    def _validate_params(self) -> None:
        validate_params(self)
