"""Callbacks: code that runs during a fit, for every estimator.

Pass them as ``callbacks=(...)`` to any estimator: callback objects, or the
names they are registered under (``"checkpoint"``, ``"csv_logger"``,
``"reduce_lr_on_plateau"``, ``"early_stopping"``, or a plugin's through the
``neuroplug_register_callbacks`` hook).  An estimator clones the objects at
the start of every fit, so a parameter stays clone-safe and grid-searchable.

The protocol (every method optional):

``on_fit_begin(info)``
    Once, before the first epoch.
``on_epoch_end(info) -> bool | None``
    After every completed epoch; return ``True`` to stop training after it.
``on_fit_end(info)``
    Once, after the last epoch (also after Ctrl-C).

``info`` is a dict: ``estimator`` (the estimator being fitted), ``name``,
``epoch`` (1-based over the model's life), ``stats`` (the epoch's history
row: ``loss``, ``val_loss``, ``val_score``, ``learning_rate``,
``duration``), ``control`` (its ``lr_factor`` scales the learning rate from
the next epoch on) and ``snapshot``: a function returning a copy of the
estimator as if the fit had stopped after this epoch (what
:class:`Checkpoint` saves).  A callback that raises stops the fit with an
error that names it; the estimator keeps its state from before the fit.
"""

from __future__ import annotations

import csv
import math
import numbers
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sklearn.base import BaseEstimator, clone
from sklearn.utils._param_validation import Interval, StrOptions

from ._validation import ValidatedParams
from .models.engine import StoppingRule, call_callback

__all__ = [
    "Callback",
    "CSVLogger",
    "Checkpoint",
    "EarlyStopping",
    "ReduceLROnPlateau",
    "resolve_callbacks",
]

_MONITORS = StrOptions({"loss", "val_loss", "val_score"})


class Callback(ValidatedParams, BaseEstimator):
    """Base class of callbacks: hyper-parameters in ``__init__``, the three optional hooks."""

    _parameter_constraints: dict = {}

    def on_fit_begin(self, info: dict) -> None:
        """Called once before the first epoch."""

    def on_epoch_end(self, info: dict) -> bool | None:
        """Called after each completed epoch; return True to stop training."""
        return None

    def on_fit_end(self, info: dict) -> None:
        """Called once after the last epoch."""


def _monitored(stats: dict, monitor: str, owner: str) -> float:
    value = stats.get(monitor)
    if value is None:
        raise ValueError(
            f"{owner} monitors {monitor!r}, which this fit does not record (validation values need "
            f"early_stopping=True). Received: monitor={monitor!r}"
        )
    return float(value)


class EarlyStopping(Callback):
    """Stop when the monitored value has not improved by ``tol`` for ``patience`` epochs.

    The same rule as the estimators' ``n_iter_no_change`` / ``tol``
    (:class:`neuroplug.models.engine.StoppingRule`), on any recorded value.

    Parameters
    ----------
    monitor : {"loss", "val_loss", "val_score"}, default="loss"
        What to watch; ``val_score`` improves upwards, the others downwards.
    patience : int, default=10
        Epochs without improvement before stopping.
    tol : float, default=1e-4
        Smallest improvement that counts.
    """

    _parameter_constraints: dict = {
        "monitor": [_MONITORS],
        "patience": [Interval(numbers.Integral, 0, None, closed="left")],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
    }

    def __init__(
        self, monitor: str = "loss", patience: int = 10, tol: float = 1e-4
    ) -> None:
        self.monitor = monitor
        self.patience = patience
        self.tol = tol

    def on_fit_begin(self, info: dict) -> None:
        """Start a fresh rule."""
        mode = "max" if self.monitor == "val_score" else "min"
        self.rule_ = StoppingRule(
            self.patience, self.tol, mode=mode, monitor=self.monitor
        )

    def on_epoch_end(self, info: dict) -> bool:
        """Record the epoch; ask to stop when the patience is exhausted."""
        self.rule_.update(_monitored(info["stats"], self.monitor, "EarlyStopping"))
        return self.rule_.should_stop


class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when the monitored value stalls for ``patience`` epochs.

    Parameters
    ----------
    monitor : {"loss", "val_loss", "val_score"}, default="loss"
        What to watch.
    factor : float, default=0.1
        Multiplier of the learning rate, in (0, 1).
    patience : int, default=5
        Epochs without an improvement of ``tol`` before the rate drops.
    tol : float, default=1e-4
        Smallest improvement that counts.
    min_factor : float, default=1e-4
        The rate is never lowered below ``min_factor`` times its start.
    """

    _parameter_constraints: dict = {
        "monitor": [_MONITORS],
        "factor": [Interval(numbers.Real, 0, 1, closed="neither")],
        "patience": [Interval(numbers.Integral, 0, None, closed="left")],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "min_factor": [Interval(numbers.Real, 0, 1, closed="right")],
    }

    def __init__(
        self,
        monitor: str = "loss",
        factor: float = 0.1,
        patience: int = 5,
        tol: float = 1e-4,
        min_factor: float = 1e-4,
    ) -> None:
        self.monitor = monitor
        self.factor = factor
        self.patience = patience
        self.tol = tol
        self.min_factor = min_factor

    def on_fit_begin(self, info: dict) -> None:
        """Start a fresh rule."""
        mode = "max" if self.monitor == "val_score" else "min"
        self.rule_ = StoppingRule(
            self.patience, self.tol, mode=mode, monitor=self.monitor
        )

    def on_epoch_end(self, info: dict) -> None:
        """Lower the rate (``info["control"].lr_factor``) after ``patience`` epochs without improvement."""
        self.rule_.update(_monitored(info["stats"], self.monitor, "ReduceLROnPlateau"))
        if self.rule_.should_stop:
            control = info["control"]
            control.lr_factor = max(
                control.lr_factor * float(self.factor), float(self.min_factor)
            )
            self.rule_.count = 0


class CSVLogger(Callback):
    """Write one CSV row per epoch: ``epoch, loss, val_loss, val_score, learning_rate, duration``.

    The file is checked for writability before the first epoch; every row
    is flushed as it is written, so the log survives a killed process.

    Parameters
    ----------
    path : str
        The CSV file.
    append : bool, default=False
        Append to an existing file (a resumed fit) instead of replacing it.
    """

    FIELDS = ("epoch", "loss", "val_loss", "val_score", "learning_rate", "duration")
    _parameter_constraints: dict = {"path": [str, os.PathLike], "append": ["boolean"]}

    def __init__(self, path: str = "training_log.csv", append: bool = False) -> None:
        self.path = path
        self.append = append

    def on_fit_begin(self, info: dict) -> None:
        """Open the file (a clear error now if it cannot be written)."""
        path = Path(self.path)
        new = not (self.append and path.exists() and path.stat().st_size > 0)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(path, "a" if self.append else "w", newline="")
        except OSError as exc:
            raise OSError(
                f"CSVLogger cannot write its log: {exc}. Received: path={self.path!r}"
            ) from exc
        self._writer = csv.writer(self._file)
        if new:
            self._writer.writerow(self.FIELDS)
            self._file.flush()

    def on_epoch_end(self, info: dict) -> None:
        """Write and flush the epoch's row."""
        stats = info["stats"]
        self._writer.writerow(
            ["" if stats.get(k) is None else stats[k] for k in self.FIELDS]
        )
        self._file.flush()

    def on_fit_end(self, info: dict) -> None:
        """Close the file."""
        file = getattr(self, "_file", None)
        if file is not None:
            file.close()
            self._file = None

    def __getstate__(self) -> dict:
        """An open file never pickles: drop it."""
        state = dict(super().__getstate__())
        state.pop("_file", None)
        state.pop("_writer", None)
        return state


class Checkpoint(Callback):
    """Save the model in the safe format during training: every ``every`` epochs and/or on a new best.

    Files are ``{directory}/{prefix}-epoch{N:04d}.npz`` (the last ``keep``
    are kept) and ``{directory}/{prefix}-best.npz``; each is written
    atomically by :func:`neuroplug.save`, so a killed process never leaves
    a half-written checkpoint, and it holds what a fit needs to continue
    (weights, optimizer state, random generator, history):
    ``neuroplug.load(path)`` then ``partial_fit`` or a warm-started ``fit``
    resumes.  The directory is checked before the first epoch.

    Parameters
    ----------
    directory : str
        Where checkpoints go (created if needed).
    every : int or None, default=1
        Save every this many epochs; ``None`` saves only on a new best.
    save_best : bool, default=False
        Also keep ``{prefix}-best.npz``, rewritten at every new best of
        ``monitor``.
    monitor : {"loss", "val_loss", "val_score"}, default="loss"
        What "best" means with ``save_best``.
    keep : int or None, default=3
        How many periodic checkpoints to keep (``None``: all).
    prefix : str, default="checkpoint"
        File name prefix.
    """

    _parameter_constraints: dict = {
        "directory": [str, os.PathLike],
        "every": [None, Interval(numbers.Integral, 1, None, closed="left")],
        "save_best": ["boolean"],
        "monitor": [_MONITORS],
        "keep": [None, Interval(numbers.Integral, 1, None, closed="left")],
        "prefix": [str],
    }

    def __init__(
        self,
        directory: str = "checkpoints",
        every: int | None = 1,
        save_best: bool = False,
        monitor: str = "loss",
        keep: int | None = 3,
        prefix: str = "checkpoint",
    ) -> None:
        self.directory = directory
        self.every = every
        self.save_best = save_best
        self.monitor = monitor
        self.keep = keep
        self.prefix = prefix

    def on_fit_begin(self, info: dict) -> None:
        """Check now, not after an hour of training, that checkpoints can be written."""
        if self.every is None and not self.save_best:
            raise ValueError(
                "Checkpoint saves nothing with every=None and save_best=False. "
                "Received: every=None, save_best=False"
            )
        if not re.fullmatch(r"[\w.-]+", str(self.prefix)):
            raise ValueError(
                f"prefix must be a plain file name part (letters, digits, '.', '_', '-'). "
                f"Received: prefix={self.prefix!r}"
            )
        check_writable_directory(self.directory, "Checkpoint")
        mode = "max" if self.monitor == "val_score" else "min"
        self.best_ = -math.inf if mode == "max" else math.inf
        self._sign = 1.0 if mode == "min" else -1.0
        self.saved_: list[str] = []

    def on_epoch_end(self, info: dict) -> None:
        """Save the periodic and/or best checkpoint."""
        from .persist import save

        epoch = int(info["epoch"])
        snapshot = None
        if self.every is not None and epoch % int(self.every) == 0:
            snapshot = info["snapshot"]()
            path = save(
                snapshot, Path(self.directory) / f"{self.prefix}-epoch{epoch:04d}.npz"
            )
            self.saved_.append(str(path))
            if self.keep is not None:
                while len(self.saved_) > int(self.keep):
                    old = self.saved_.pop(0)
                    if os.path.exists(old):
                        os.unlink(old)
        if self.save_best:
            value = _monitored(info["stats"], self.monitor, "Checkpoint")
            if self._sign * value < self._sign * self.best_:
                self.best_ = value
                save(
                    snapshot if snapshot is not None else info["snapshot"](),
                    Path(self.directory) / f"{self.prefix}-best.npz",
                )


def check_writable_directory(directory: Any, owner: str) -> Path:
    """Create ``directory`` if needed and prove it writable with a probe file; a clear error otherwise."""
    path = Path(directory)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".neuroplug-probe-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OSError(
            f"{owner} cannot write to its directory: {exc}. Choose a writable directory. "
            f"Received: directory={str(directory)!r}"
        ) from exc
    return path


def resolve_callbacks(callbacks: Any, owner: str = "") -> list[Any]:
    """Fresh callback objects for a fit from ``callbacks`` (a tuple of objects and registered names)."""
    if callbacks is None:
        return []
    if isinstance(callbacks, (str, Callback)) or not isinstance(
        callbacks, (tuple, list)
    ):
        callbacks = (callbacks,)
    out = []
    for i, cb in enumerate(callbacks):
        if isinstance(cb, str):
            from .plugins import get_callback

            out.append(get_callback(cb)())
        elif isinstance(cb, BaseEstimator):
            cb = clone(cb)
            if hasattr(cb, "_validate_params"):
                cb._validate_params()
            out.append(cb)
        elif any(
            callable(getattr(cb, m, None))
            for m in ("on_fit_begin", "on_epoch_end", "on_fit_end")
        ):
            out.append(cb)
        else:
            raise TypeError(
                f"{owner}: callbacks[{i}] must be a registered callback name or an object with "
                "on_fit_begin / on_epoch_end / on_fit_end methods (see neuroplug.callbacks). "
                f"Received: {cb!r}"
            )
    return out


class EstimatorCallbacks:
    """The engine-side callback that hands an estimator's callbacks their ``info``.

    It adds ``estimator`` and ``snapshot`` (``make_snapshot(state, rows)``
    builds the estimator copy) to what the engine passes, and keeps the rows
    of this fit so a snapshot's history is complete.
    """

    def __init__(
        self,
        estimator: Any,
        callbacks: Sequence[Any],
        make_snapshot: Callable[[Any, list[dict]], Any] | None,
    ) -> None:
        self.estimator = estimator
        self.callbacks = list(callbacks)
        self.make_snapshot = make_snapshot
        self.rows: list[dict] = []

    def _info(self, info: dict) -> dict:
        state = info.get("state")
        rows = list(self.rows)

        def snapshot() -> Any:
            if self.make_snapshot is None or state is None:
                raise ValueError(
                    f"{type(self.estimator).__name__} cannot snapshot its model during this fit"
                )
            return self.make_snapshot(state(), rows)

        return {**info, "estimator": self.estimator, "snapshot": snapshot}

    def on_fit_begin(self, info: dict) -> None:
        """Forward to every callback."""
        for cb in self.callbacks:
            call_callback(cb, "on_fit_begin", self._info(info))

    def on_epoch_end(self, info: dict) -> bool:
        """Record the row, forward to every callback; stop when any asks."""
        self.rows.append(dict(info["stats"]))
        full = self._info(info)
        wants_stop = False
        for cb in self.callbacks:
            wants_stop = bool(call_callback(cb, "on_epoch_end", full)) or wants_stop
        return wants_stop

    def on_fit_end(self, info: dict) -> None:
        """Forward to every callback."""
        for cb in self.callbacks:
            call_callback(cb, "on_fit_end", self._info(info))
