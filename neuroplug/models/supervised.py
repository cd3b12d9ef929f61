"""Supervised training of a :class:`~neuroplug.network.Network` by mini-batch backprop.

:func:`train_network` runs epochs of shuffled mini-batches on the one epoch
driver (:func:`neuroplug.models.engine.run_epochs`), with an optional
held-out validation set for early stopping, on-the-fly augmentation and a
learning-rate schedule.  The network keeps its weights in place; the caller
(an estimator, or a plugin) stores them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from ..network import Loss, Network
from .engine import (
    Control,
    EpochStats,
    FitReport,
    StoppingRule,
    minibatches,
    run_epochs,
)

__all__ = ["Validation", "train_network", "PREDICT_BATCH"]

#: Rows per forward pass when predicting or scoring the validation set.
PREDICT_BATCH = 512
#: A finite loss this many times the starting loss counts as divergence.
EXPLOSION_FACTOR = 1e4


@dataclass
class Validation:
    """A held-out set and how to score it (higher is better) and, optionally, its loss."""

    X: np.ndarray
    y: np.ndarray
    score: Callable[[np.ndarray, np.ndarray], float]


def train_network(
    network: Network,
    X: np.ndarray,
    y: np.ndarray,
    *,
    loss: Loss,
    optimizer: Any,
    train_batch: Callable[[Any, Any, float], float],
    learning_rate: float,
    schedule: Callable[[float, int], float],
    alpha: float,
    batch_size: int,
    n_epochs: int,
    rng: np.random.Generator,
    start_epoch: int = 0,
    shuffle: bool = True,
    augmenter: Any = None,
    validation: Validation | None = None,
    stopping: StoppingRule | None = None,
    verbose: int = 0,
    name: str = "Network",
    callbacks: Sequence[Any] = (),
    lr_factor: float = 1.0,
) -> FitReport:
    """Train ``network`` on ``(X, y)`` for up to ``n_epochs`` epochs.

    ``train_batch(xb, yb, lr) -> loss`` is one optimisation step (the
    estimator's hook, so tests and benchmarks can wrap it).  With
    ``validation``, the stopping rule watches its score and the best
    epoch's weights are kept; otherwise the rule watches the training loss
    and, when it stops the fit, the lowest-loss epoch's weights are kept.
    """
    ops = network.ops
    n = X.shape[0]
    batch_size = min(int(batch_size), n)
    epoch_no = [start_epoch]
    start_loss = _starting_loss(network, X, y, loss, batch_size)

    def epoch(control: Control) -> EpochStats:
        lr = schedule(float(learning_rate), epoch_no[0]) * control.lr_factor
        # The epoch's dropout masks come from the estimator's generator: a resumed fit continues exactly.
        network.reseed(int(rng.integers(2**31 - 1)))
        total, seen = 0.0, 0
        for idx in minibatches(n, batch_size, rng if shuffle else None):
            xb = X[idx]
            if augmenter is not None:
                xb = augmenter(xb, rng)
            value = train_batch(ops.asarray(xb, dtype=X.dtype), ops.asarray(y[idx]), lr)
            total += value * len(idx)
            seen += len(idx)
            if control.requested:
                return EpochStats(math.nan, completed=False)
        epoch_no[0] += 1
        stats = EpochStats(total / seen + float(alpha) * network.penalty(), learning_rate=lr)
        if validation is not None:
            out = network.predict(validation.X, batch_size=PREDICT_BATCH)
            stats.val_score = float(validation.score(validation.y, out))
            stats.val_loss = _loss_of(network, loss, out, validation.y)
        return stats

    return run_epochs(
        epoch,
        n_epochs=n_epochs,
        name=name,
        start_epoch=start_epoch,
        verbose=verbose,
        stopping=stopping,
        monitor_validation=validation is not None,
        keep_best=network.get_weights,
        restore=network.set_weights,
        explode_above=EXPLOSION_FACTOR * max(start_loss, 1e-3) if math.isfinite(start_loss) else None,
        advice=(f"Try a lower learning_rate (it was {learning_rate:g}), a smaller alpha, or scaling the "
                "input (for example with StandardScaler)."),
        loss_name="training loss",
        callbacks=callbacks,
        state=network.get_weights,
        lr_factor=lr_factor,
    )


def _starting_loss(network: Network, X: np.ndarray, y: np.ndarray, loss: Loss, batch_size: int) -> float:
    """The untrained network's loss on (up to) one batch: the scale that divergence is judged against."""
    m = min(max(batch_size, 64), X.shape[0])
    ops = network.ops
    with np.errstate(all="ignore"):
        out = network.forward(ops.asarray(X[:m], dtype=X.dtype))
        value, _ = loss(ops, out, ops.asarray(y[:m]))
    return float(value)


def _loss_of(network: Network, loss: Loss, output: np.ndarray, y: np.ndarray) -> float:
    ops = network.ops
    with np.errstate(all="ignore"):
        value, _ = loss(ops, ops.asarray(output), ops.asarray(y))
    return float(value)
