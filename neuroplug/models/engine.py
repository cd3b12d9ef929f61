"""The one epoch driver every model family trains on.

A model family (the supervised network, the RBM, the sigmoid belief net, the
convolutional RBM) supplies one function that runs one epoch and returns the
value it monitors; :func:`run_epochs` does everything around it, the same way
for every family:

- the progress bar (tqdm), closed at the number of epochs actually run;
- Ctrl-C: the first SIGINT asks the epoch to stop at its next batch boundary
  (or at the end of an epoch that is one backend call), the model keeps what
  it has learned and a :class:`TrainingInterrupted` warning says so; a second
  Ctrl-C raises ``KeyboardInterrupt`` at once;
- divergence: a non-finite value, or one past the family's explosion
  threshold, raises :class:`TrainingDivergedError` with the family's advice;
- the per-epoch history (loss, validation loss and score, learning rate,
  duration), the epoch count and the stopping rule;
- the callbacks of the protocol in :class:`Callback`.

No scikit-learn here: this floor sits below the estimators and the
pretrainers and above the network, the layers and the backends.
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..network import TrainingDivergedError

__all__ = [
    "Callback",
    "CallbackError",
    "call_callback",
    "ChanceLevelWarning",
    "Control",
    "EpochStats",
    "FitReport",
    "StopFlag",
    "StoppingRule",
    "TrainingDivergedError",
    "TrainingInterrupted",
    "check_sample_weight",
    "relative_weights",
    "minibatches",
    "run_epochs",
    "take_rows",
]

#: A weight this large (in absolute value) means training diverged: sigmoids saturate far below it.
WEIGHT_LIMIT = 1e6

#: The stop reasons a fit records (``stop_reason_``).
STOP_REASONS = (
    "max_iter",
    "no_improvement",
    "early_stopping",
    "interrupted",
    "callback",
)


class TrainingInterrupted(UserWarning):
    """Warning issued when a fit was stopped by a KeyboardInterrupt (Ctrl-C)."""


class ChanceLevelWarning(UserWarning):
    """Warning issued when a fit ends no better than chance (it learned nothing)."""


class StopFlag:
    """Turns the first SIGINT during training into a request to stop at the next batch boundary.

    A second Ctrl-C raises ``KeyboardInterrupt`` at once, as usual.  Outside
    the main thread (joblib threads) signal handlers cannot be installed; a
    ``KeyboardInterrupt`` raised there is caught by :func:`run_epochs`
    instead.  Where someone else owns SIGINT (a notebook kernel, a test
    runner), the flag leaves it alone.
    """

    def __init__(self) -> None:
        self.requested = False

    @contextlib.contextmanager
    def installed(self) -> Iterator[StopFlag]:
        """Install the SIGINT handler for the duration of the block."""
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        try:
            previous = signal.getsignal(signal.SIGINT)
        except (ValueError, TypeError):  # pragma: no cover - exotic embeddings
            yield self
            return
        if previous is not signal.default_int_handler:
            yield self
            return

        def handler(signum: int, frame: Any) -> None:
            if self.requested:
                raise KeyboardInterrupt
            self.requested = True

        signal.signal(signal.SIGINT, handler)
        try:
            yield self
        finally:
            signal.signal(signal.SIGINT, previous)


_session = threading.local()


@contextlib.contextmanager
def training_session() -> Iterator[tuple[StopFlag, bool]]:
    """One stop flag for everything a fit runs: pretraining, training, the next layer's training.

    Yields ``(flag, owner)``: the flag of the outermost session of this
    thread, and whether this block opened it.  A Ctrl-C during pretraining
    thus also ends the supervised epochs that follow (they run none); the
    owner reports the interruption once.
    """
    current = getattr(_session, "flag", None)
    if current is not None:
        yield current, False
        return
    flag = StopFlag()
    _session.flag = flag
    try:
        with flag.installed():
            yield flag, True
    finally:
        _session.flag = None


def warn_interrupted(name: str, n_epochs: int, *, stacklevel: int = 3) -> None:
    """The one :class:`TrainingInterrupted` warning of an interrupted fit."""
    warnings.warn(
        f"{name}: training interrupted (KeyboardInterrupt); the model keeps the weights of the "
        f"{n_epochs} complete epoch(s) and the batches done so far.",
        TrainingInterrupted,
        stacklevel=stacklevel + 1,
    )


def minibatches(
    n: int, batch_size: int, rng: np.random.Generator | None
) -> Iterator[np.ndarray]:
    """Index arrays of the mini-batches of one epoch: shuffled by ``rng``, or in order when ``None``."""
    order = rng.permutation(n) if rng is not None else np.arange(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def take_rows(X: Any, rows: Any) -> np.ndarray:
    """``X[rows]`` as a dense NumPy array: a scipy sparse ``X`` is densified for these rows only.

    ``rows`` is an index array or a slice.  Every model family reads its
    mini-batches (or chunks of whole batches) through this, so sparse input
    never becomes one dense matrix.
    """
    part = X[rows]
    return part.toarray() if sp.issparse(part) else part


def check_sample_weight(
    sample_weight: Any, n: int, *, dtype: Any = np.float64
) -> np.ndarray | None:
    """Validated per-row weights: ``None`` stays ``None``; otherwise a 1-D float array of ``n``
    finite, non-negative entries, not all zero, or a ``ValueError`` naming ``sample_weight``."""
    if sample_weight is None:
        return None
    try:
        w = np.asarray(sample_weight, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"sample_weight must be numbers. Received: sample_weight={sample_weight!r:.80}"
        ) from exc
    if w.ndim == 0:
        w = np.full(n, float(w))
    if w.ndim != 1 or w.shape[0] != n:
        raise ValueError(
            f"sample_weight must be 1-D with one weight per sample ({n}). Received: sample_weight.shape={w.shape}"
        )
    if not np.all(np.isfinite(w)):
        raise ValueError(
            "sample_weight must be finite. Received: sample_weight with NaN or infinity"
        )
    if np.any(w < 0):
        raise ValueError(
            f"sample_weight must be non-negative. Received: sample_weight.min()={w.min():g}"
        )
    if not w.sum() > 0:
        raise ValueError(
            "sample_weight must not be all zero: there is nothing to train on. "
            "Received: sum(sample_weight)=0"
        )
    return w.astype(dtype, copy=False)


def relative_weights(sample_weight: np.ndarray | None) -> np.ndarray | None:
    """Weights divided by their mean (a mean of 1): what every family's mini-batch updates use.

    A batch's update is then ``sum_i w_i g_i / m`` over its ``m`` rows: an
    unbiased estimate of the weighted mean gradient of the whole set, equal
    to it for a single full batch.  Scaling every weight by one constant
    changes nothing, and weights of 1 give exactly the unweighted update.
    """
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight, dtype=np.float64)
    return w / w.mean()


class Control:
    """What an epoch function reads from the driver: whether to stop, and the learning-rate factor.

    ``requested`` is the fit's stop flag (Ctrl-C); ``lr_factor`` multiplies
    the family's learning rate and is what a callback such as
    :class:`neuroplug.callbacks.ReduceLROnPlateau` lowers.
    """

    def __init__(self, flag: StopFlag, lr_factor: float = 1.0) -> None:
        self._flag = flag
        self.lr_factor = float(lr_factor)

    @property
    def requested(self) -> bool:
        """Whether training should stop at the next batch boundary."""
        return self._flag.requested

    @requested.setter
    def requested(self, value: bool) -> None:
        self._flag.requested = bool(value)


@dataclass
class EpochStats:
    """What one epoch reports to the driver.

    ``loss`` is the value the family monitors (lower is better); ``completed``
    is False when the epoch stopped at a batch boundary because of Ctrl-C
    (the epoch then does not count).
    """

    loss: float
    completed: bool = True
    val_loss: float | None = None
    val_score: float | None = None
    learning_rate: float | None = None
    #: Largest absolute weight, for families whose loss can stay finite while the weights explode.
    weight_scale: float | None = None
    #: The loss without its penalty terms (weight decay), when the family adds them.
    data_loss: float | None = None


class StoppingRule:
    """Stop after ``n_iter_no_change`` epochs without an improvement of at least ``tol``.

    Parameters
    ----------
    n_iter_no_change : int or None
        Patience; ``None`` (or ``inf``) disables the rule.
    tol : float
        Smallest improvement that counts.
    mode : {"min", "max"}
        Whether the monitored value improves downwards (a loss) or upwards
        (a score).
    best : float or None
        Best value of earlier calls (a warm start continues from it).
    monitor : str
        Name of the monitored value, for the stop reason.
    """

    def __init__(
        self,
        n_iter_no_change: float | None,
        tol: float,
        *,
        mode: str = "min",
        best: float | None = None,
        monitor: str = "training loss",
    ) -> None:
        self.patience = (
            math.inf if n_iter_no_change is None else float(n_iter_no_change)
        )
        self.tol = float(tol)
        self.sign = 1.0 if mode == "min" else -1.0
        self.best = (
            (math.inf if mode == "min" else -math.inf) if best is None else float(best)
        )
        self.monitor = monitor
        self.count = 0
        # This call's best: a warm start's earlier best has no weights to go back to.
        self.call_best = math.inf if mode == "min" else -math.inf

    def update(self, value: float) -> bool:
        """Record one epoch's value; return whether it is this call's best so far."""
        s = self.sign
        if s * value > s * self.best - self.tol:
            self.count += 1
        else:
            self.count = 0
        if s * value < s * self.best:
            self.best = float(value)
        better = s * value < s * self.call_best
        if better:
            self.call_best = float(value)
        return better

    @property
    def should_stop(self) -> bool:
        """Whether the patience is exhausted."""
        return self.count > self.patience


class Callback:
    """The callback protocol: every method is optional; returning ``True`` from
    :meth:`on_epoch_end` stops training after that epoch.

    ``info`` is a dict with at least ``name`` (the estimator or model), and
    for epoch events ``epoch`` (1-based, over the model's life) and ``stats``
    (a dict of the epoch's history row).
    """

    def on_fit_begin(self, info: dict) -> None:
        """Called once before the first epoch."""

    def on_epoch_end(self, info: dict) -> bool | None:
        """Called after each completed epoch; return True to stop."""
        return None

    def on_fit_end(self, info: dict) -> None:
        """Called once after the last epoch (also after an interrupt)."""


@dataclass
class FitReport:
    """What :func:`run_epochs` hands back: the history of this call and why it stopped."""

    history: list[dict] = field(default_factory=list)
    stop_reason: str = "max_iter"
    best_epoch: int | None = None
    interrupted: bool = False
    lr_factor: float = 1.0
    #: Per completed epoch, the loss without penalty terms (``EpochStats.data_loss``, else the loss).
    data_losses: list[float] = field(default_factory=list)
    #: The family's final state, for families that hand back more than their weights (ConvRBM momentum).
    state: Any = None

    @property
    def n_epochs(self) -> int:
        """Completed epochs of this call."""
        return len(self.history)


class CallbackError(RuntimeError):
    """A callback raised: training stopped; the message names the callback."""


def call_callback(callback: Any, method: str, info: dict) -> Any:
    """Call ``callback.method(info)`` if it exists; an error stops training as a :class:`CallbackError`.

    ``on_fit_begin`` errors pass through as they are: they are the callback's
    own setup checks (an unwritable directory), raised before any epoch.
    """
    fn = getattr(callback, method, None)
    if fn is None:
        return None
    if method == "on_fit_begin":
        return fn(info)
    try:
        return fn(info)
    except CallbackError:
        raise
    except Exception as exc:
        raise CallbackError(
            f"Callback {type(callback).__name__}.{method} raised {type(exc).__name__}: "
            f"{exc}; training stopped."
        ) from exc


def run_epochs(
    epoch: Callable[[Control], EpochStats],
    *,
    n_epochs: int,
    name: str,
    start_epoch: int = 0,
    verbose: int = 0,
    stopping: StoppingRule | None = None,
    monitor_validation: bool = False,
    keep_best: Callable[[], Any] | None = None,
    restore: Callable[[Any], None] | None = None,
    explode_above: float | None = None,
    advice: str = "Try a lower learning_rate.",
    loss_name: str = "loss",
    bar_label: str = "loss",
    callbacks: Sequence[Any] = (),
    state: Callable[[], Any] | None = None,
    lr_factor: float = 1.0,
) -> FitReport:
    """Run up to ``n_epochs`` epochs of ``epoch`` and return a :class:`FitReport`.

    Parameters
    ----------
    epoch : callable
        ``epoch(control) -> EpochStats``: one pass over the data.  It polls
        ``control.requested`` at its batch boundaries and multiplies its
        learning rate by ``control.lr_factor``.
    n_epochs : int
        Epochs to run at most.
    name : str
        The model's name, for the progress bar and messages.
    start_epoch : int, default=0
        Epochs run before this call (the history's epoch numbers continue).
    verbose : int, default=0
        0: silent; 1: a progress bar and a closing line saying why training
        stopped; 2: one table row per epoch instead of the bar.
    stopping : StoppingRule or None
        Rule on the training loss, or on the validation score when
        ``monitor_validation`` is true.
    keep_best : callable or None
        Snapshot of the model, taken at each new best of ``stopping``; when
        the rule stops the fit (or ``monitor_validation`` is on), the best
        snapshot is handed back to ``restore``.
    explode_above : float or None
        A finite ``loss`` above this also counts as divergence.
    advice : str
        What to try when training diverges (names the parameter that
        controls it).
    loss_name : str
        What ``EpochStats.loss`` is, for messages.
    bar_label : str
        Its short name in the progress bar.
    callbacks : sequence
        Objects following the :class:`Callback` protocol.  Their ``info``
        also holds ``control`` (:class:`Control`) and, when given, ``state``:
        a function returning the model's current NumPy state.
    state : callable or None
        See ``callbacks``.
    lr_factor : float, default=1.0
        The starting learning-rate factor (a resumed fit continues a
        reduced rate); the final one is in the report.

    Raises
    ------
    TrainingDivergedError
        When an epoch's loss is NaN, infinite or past ``explode_above``.
    """
    report = FitReport()
    best_snapshot = None
    bar = None
    if verbose == 1:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_epochs, desc=name, unit="epoch", leave=True)
    elif verbose and verbose >= 2:
        print(
            f"{'epoch':>5}  {loss_name:>14}  {'val_loss':>10}  {'val_score':>10}  {'lr':>9}  {'time':>7}"
        )
    reason = "max_iter"
    owner = True
    control = None
    try:
        with training_session() as (stop, owner):
            control = Control(stop, lr_factor)
            base_info: dict[str, Any] = {
                "name": name,
                "control": control,
                "state": state,
            }
            for cb in callbacks:
                call_callback(cb, "on_fit_begin", dict(base_info))
            for _ in range(n_epochs):
                if stop.requested:  # an earlier phase of this fit was interrupted
                    reason = "interrupted"
                    break
                t0 = time.perf_counter()
                try:
                    with np.errstate(over="ignore", invalid="ignore"):
                        stats = epoch(control)
                except KeyboardInterrupt:
                    # Outside the main thread (no handler there): the rest of the fit stops too.
                    stop.requested = True
                    stats = EpochStats(math.nan, completed=False)
                if not stats.completed:
                    reason = "interrupted"
                    break
                value = float(stats.loss)
                scale = stats.weight_scale
                if scale is not None and not scale <= WEIGHT_LIMIT:
                    raise TrainingDivergedError(
                        f"{name}: training diverged: the weights grew to {scale:.4g} (the {loss_name} was "
                        f"{value:.4g}). {advice}"
                    )
                if not math.isfinite(value) or (
                    explode_above is not None and abs(value) > explode_above
                ):
                    what = "became" if not math.isfinite(value) else "exploded to"
                    raise TrainingDivergedError(
                        f"{name}: training diverged: the {loss_name} {what} {value:.4g}"
                        + (
                            f" (the limit for this data is {explode_above:.4g})"
                            if explode_above and math.isfinite(value)
                            else ""
                        )
                        + f". {advice}"
                    )
                row = {
                    "epoch": start_epoch + report.n_epochs + 1,
                    "loss": value,
                    "val_loss": stats.val_loss,
                    "val_score": stats.val_score,
                    "learning_rate": stats.learning_rate,
                    "duration": time.perf_counter() - t0,
                }
                report.history.append(row)
                report.data_losses.append(
                    value if stats.data_loss is None else float(stats.data_loss)
                )
                improved = False
                if stopping is not None:
                    monitored = stats.val_score if monitor_validation else value
                    improved = stopping.update(float(monitored))
                    if improved:
                        report.best_epoch = row["epoch"]
                        if keep_best is not None:
                            best_snapshot = keep_best()
                _progress(bar, verbose, row, bar_label)
                info = {**base_info, "epoch": row["epoch"], "stats": dict(row)}
                wants_stop = False
                for cb in (
                    callbacks
                ):  # every callback sees the epoch, even after one asks to stop
                    wants_stop = (
                        bool(call_callback(cb, "on_epoch_end", info)) or wants_stop
                    )
                if stop.requested:
                    reason = "interrupted"
                    break
                if stopping is not None and stopping.should_stop:
                    reason = (
                        "early_stopping" if monitor_validation else "no_improvement"
                    )
                    break
                if wants_stop:
                    reason = "callback"
                    break
    finally:
        if bar is not None:
            bar.total = bar.n  # the bar closes at the epochs actually run
            bar.refresh()
            bar.close()
    report.stop_reason = reason
    report.interrupted = reason == "interrupted"
    kept_best = False
    if (
        best_snapshot is not None
        and restore is not None
        and (monitor_validation or reason == "no_improvement")
    ):
        restore(best_snapshot)
        kept_best = True
    if not kept_best:
        report.best_epoch = (
            start_epoch + report.n_epochs if report.n_epochs else report.best_epoch
        )
    report.lr_factor = control.lr_factor if control is not None else lr_factor
    for cb in callbacks:
        call_callback(
            cb, "on_fit_end", {"name": name, "stop_reason": reason, "state": state}
        )
    if verbose:
        print(
            f"{name}: {describe_stop(report, stopping, monitor_validation)}",
            file=sys.stderr,
        )
    if report.interrupted and owner:
        warn_interrupted(name, start_epoch + report.n_epochs)
    return report


def describe_stop(
    report: FitReport, stopping: StoppingRule | None, monitor_validation: bool
) -> str:
    """One line saying why training stopped and which epoch's weights were kept."""
    n = report.n_epochs
    kept = (
        f"kept the weights of epoch {report.best_epoch}"
        if report.best_epoch
        else "kept its weights"
    )
    if report.stop_reason == "max_iter":
        return f"stopped after {n} epoch(s): max_iter reached; {kept}."
    if report.stop_reason in ("no_improvement", "early_stopping"):
        what = (
            "validation score"
            if monitor_validation
            else (stopping.monitor if stopping else "loss")
        )
        return (
            f"stopped after {n} epoch(s): the {what} did not improve by tol={stopping.tol:g} for "
            f"{stopping.count} epochs; {kept}."
        )
    if report.stop_reason == "callback":
        return f"stopped after {n} epoch(s) by a callback; {kept}."
    return f"interrupted (Ctrl-C) after {n} complete epoch(s); {kept}."


def _progress(bar: Any, verbose: int, row: dict, label: str) -> None:
    if bar is not None:
        postfix = {label: f"{row['loss']:.4g}"}
        if row["val_score"] is not None:
            postfix["val_score"] = f"{row['val_score']:.4g}"
        postfix["time"] = f"{row['duration']:.2f}s"
        bar.set_postfix(postfix, refresh=False)
        bar.update(1)
    elif verbose and verbose >= 2:
        fmt = lambda v, w: f"{v:>{w}.4g}" if v is not None else " " * (w - 1) + "-"  # noqa: E731
        print(
            f"{row['epoch']:>5}  {fmt(row['loss'], 14)}  {fmt(row['val_loss'], 10)}  "
            f"{fmt(row['val_score'], 10)}  {fmt(row['learning_rate'], 9)}  {row['duration']:>6.2f}s"
        )
