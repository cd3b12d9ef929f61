"""The front door every estimator shares: backend resolution, shared constraints, fit transactions.

One rule each, for every estimator:

- ``backend`` is a registered name or an ``Ops`` instance; ``n_threads`` is
  applied to either (a user's ``Ops`` object is copied, never modified);
- ``n_threads`` is ``None``, a positive count or a negative one counted back
  from the number of CPUs as in joblib (``-1``: all); ``0`` is refused;
- a fitted model whose backend is not installed here (a model fitted with
  ``backend="torch"`` and loaded elsewhere) predicts on the ``"cpu"`` backend
  with a warning;
- a fit that fails (divergence, a bad batch, Ctrl-C pressed twice) leaves the
  estimator exactly as it was before the call (:func:`fit_transaction`).
"""

from __future__ import annotations

import contextlib
import copy
import numbers
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions

from .._doc_link import DocLinkMixin
from .._validation import ValidatedParams
from ..backends import get_ops
from ..ops import Ops
from ..registry import UnknownNameError

__all__ = [
    "BACKEND_CONSTRAINT",
    "CALLBACKS_CONSTRAINT",
    "DTYPE_CONSTRAINT",
    "N_THREADS_CONSTRAINT",
    "BackendFallbackWarning",
    "EstimatorMixin",
    "fit_callbacks",
    "fit_transaction",
    "resolve_ops",
    "validate_nested",
]

#: ``backend``: a registered name (``"cpu"``, ``"numpy"``, ``"torch:cuda"``) or an Ops instance.
BACKEND_CONSTRAINT: list = [str, Ops]
#: ``n_threads``: ``None`` or a non-zero int (negative: counted back from the CPUs, as joblib).
N_THREADS_CONSTRAINT: list = [
    None,
    Interval(numbers.Integral, None, -1, closed="right"),
    Interval(numbers.Integral, 1, None, closed="left"),
]
#: ``dtype``: the model's precision, or ``None`` to follow the input (float32 stays float32).
DTYPE_CONSTRAINT: list = [None, StrOptions({"float32", "float64"})]


class EstimatorMixin(DocLinkMixin, ValidatedParams):
    """What every neuroplug estimator shares: one wording of parameter errors, the "?" doc link."""


class BackendFallbackWarning(UserWarning):
    """A fitted model's backend is not available here; it runs on the ``"cpu"`` backend instead."""


def resolve_ops(
    backend: Any, n_threads: int | None, *, fitted: bool = False, owner: str = ""
) -> Ops:
    """The ``Ops`` for an estimator's ``backend`` and ``n_threads``.

    Input was validated (finite) by the estimator, so the kernels need not
    check it again.  With ``fitted=True`` (prediction, scoring, sampling), a
    backend name that is not registered here falls back to ``"cpu"`` with a
    :class:`BackendFallbackWarning`: the fitted state is NumPy, so the model
    runs anywhere.
    """
    if isinstance(backend, Ops):
        if n_threads is None or getattr(backend, "n_threads", None) == n_threads:
            return backend
        ops = copy.copy(backend)
        ops.n_threads = n_threads
        return ops
    try:
        return get_ops(backend, n_threads=n_threads, check_finite=False)
    except UnknownNameError:
        if not fitted:
            raise
        warnings.warn(
            f"{owner}: the backend {backend!r} this model was set to use is not available here; running "
            f"on the 'cpu' backend instead (the weights are NumPy arrays, results agree to float "
            f"tolerance). Call set_params(backend='cpu') to silence this warning.",
            BackendFallbackWarning,
            stacklevel=3,
        )
        return get_ops("cpu", n_threads=n_threads, check_finite=False)


def validate_nested(*objects: Any) -> None:
    """Validate the parameters of nested estimator-like objects (pretrainers, optimizers, schedules).

    scikit-learn checks an estimator's own parameters at ``fit``; objects
    given as parameters are checked here, once, at the outermost fit, so a
    bad value never reaches a kernel and nothing re-checks it later.
    """
    for obj in objects:
        validate = getattr(obj, "_validate_params", None)
        if (
            validate is not None
            and getattr(obj, "_parameter_constraints", None) is not None
        ):
            validate()


def _snapshot(value: Any) -> Any:
    if isinstance(value, (list, dict, set)):
        return copy.copy(value)
    if isinstance(value, (np.random.Generator, np.random.RandomState)):
        return copy.deepcopy(value)
    return value


@contextlib.contextmanager
def fit_transaction(estimator: Any) -> Iterator[None]:
    """Restore ``estimator`` to its state before the block if the block raises.

    Fitted arrays are replaced, never written in place, by the training code,
    so a shallow snapshot (lists, dicts and generators copied) is enough.
    """
    before = {key: _snapshot(value) for key, value in estimator.__dict__.items()}
    try:
        yield
    except BaseException:
        estimator.__dict__.clear()
        estimator.__dict__.update(before)
        raise


def renamed_curve(old: str, *, sign: float = 1.0) -> property:
    """A read-only ``old`` attribute that returns ``sign * loss_curve_`` with a FutureWarning.

    Every estimator records its training curve as ``loss_curve_`` (lower is
    better); the family-specific names of 0.1 keep working for one release.
    """

    def getter(self: Any) -> list[float]:
        warnings.warn(
            f"{old} is deprecated and will be removed in neuroplug 0.3: every estimator records its "
            "training curve as loss_curve_ (lower is better)"
            + (
                ", here the negated training bound: use [-v for v in est.loss_curve_]."
                if sign < 0
                else "."
            ),
            FutureWarning,
            stacklevel=2,
        )
        return [sign * v for v in self.loss_curve_]

    getter.__doc__ = f"Deprecated alias of ``{'-' if sign < 0 else ''}loss_curve_`` (removed in 0.3)."
    return property(getter)


class RenamedCurveMixin:
    """Reads model states written before ``loss_curve_`` (pickles and files with the old name)."""

    _old_curve: tuple[str, float] | None = None

    def __setstate__(self, state: dict) -> None:
        """Map the old curve attribute onto ``loss_curve_``."""
        state = dict(state)
        if self._old_curve is not None:
            old, sign = self._old_curve
            values = state.pop(old, None)
            if values is not None and "loss_curve_" not in state:
                state["loss_curve_"] = [sign * float(v) for v in values]
        super().__setstate__(state)  # type: ignore[misc]


CALLBACKS_CONSTRAINT: list = [None, tuple, list]


def fit_callbacks(
    estimator: Any, apply_state: Callable[[Any, Any], None] | None
) -> list[Any]:
    """The engine-side callbacks of one fit: ``[]`` without user callbacks, else one adapter.

    ``apply_state(copy, state)`` writes a model family's NumPy state into a
    copy of the estimator; with it, callbacks get ``snapshot()`` (the
    estimator as if the fit had stopped after the current epoch).
    """
    from ..callbacks import EstimatorCallbacks, resolve_callbacks

    callbacks = resolve_callbacks(
        getattr(estimator, "callbacks", None), type(estimator).__name__
    )
    if not callbacks:
        return []

    def make_snapshot(state: Any, rows: list[dict]) -> Any:
        snap = copy.copy(estimator)
        snap.__dict__ = {
            key: _snapshot(value) for key, value in estimator.__dict__.items()
        }
        if apply_state is not None:
            apply_state(snap, state)
        snap.loss_curve_ = [
            *getattr(estimator, "loss_curve_", []),
            *(row["loss"] for row in rows),
        ]
        snap.history_ = [*getattr(estimator, "history_", []), *rows]
        snap.n_iter_ = int(getattr(estimator, "n_iter_", 0)) + len(rows)
        if getattr(estimator, "validation_scores_", None) is not None:
            snap.validation_scores_ = [
                *estimator.validation_scores_,
                *(row["val_score"] for row in rows),
            ]
        snap.stop_reason_ = "checkpoint"
        return snap

    return [
        EstimatorCallbacks(
            estimator, callbacks, make_snapshot if apply_state is not None else None
        )
    ]
