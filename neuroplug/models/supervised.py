"""Supervised training of a :class:`~neuroplug.network.Network` by mini-batch backprop.

:func:`train_network` runs epochs of shuffled mini-batches on the one epoch
driver (:func:`neuroplug.models.engine.run_epochs`), with an optional
held-out validation set for early stopping, on-the-fly augmentation and a
learning-rate schedule.  The network keeps its weights in place; the caller
(an estimator, or a plugin) stores them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..network import Loss, Network
from .engine import (
    Control,
    EpochStats,
    FitReport,
    StoppingRule,
    minibatches,
    relative_weights,
    run_epochs,
    take_rows,
)

__all__ = ["Validation", "train_network", "PREDICT_BATCH"]

#: Rows per forward pass when predicting or scoring the validation set.
PREDICT_BATCH = 512
#: A finite loss this many times the starting loss counts as divergence.
EXPLOSION_FACTOR = 1e4


@dataclass
class Validation:
    """A held-out set and how to score it (higher is better) and, optionally, its loss."""

    X: Any
    y: np.ndarray
    score: Callable[..., float]
    #: Per-row weights of the held-out rows: the score and the loss are weighted means.
    sample_weight: np.ndarray | None = None

    def evaluate(self, output: np.ndarray) -> float:
        """The score of ``output`` (weighted when the set has weights)."""
        if self.sample_weight is None:
            return float(self.score(self.y, output))
        return float(self.score(self.y, output, sample_weight=self.sample_weight))


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
    sample_weight: np.ndarray | None = None,
) -> FitReport:
    """Train ``network`` on ``(X, y)`` for up to ``n_epochs`` epochs.

    ``train_batch(xb, yb, lr) -> loss`` is one optimisation step (the
    estimator's hook, so tests and benchmarks can wrap it); with
    ``sample_weight`` it is called as ``train_batch(xb, yb, lr,
    sample_weight=wb)`` with the batch's weights, and each batch's loss is
    ``sum_i w_i l_i / m`` over its ``m`` rows, with the weights divided by
    their mean over ``X`` (:func:`~neuroplug.models.engine.relative_weights`,
    :class:`~neuroplug.network.Loss`): each row's gradient is scaled by its
    relative weight.  With ``validation``,
    the stopping rule watches its score and the best epoch's weights are
    kept; otherwise the rule watches the training loss and, when it stops
    the fit, the lowest-loss epoch's weights are kept.

    ``X`` is ``(n, *network.input_shape)``, or 2-D ``(n, n_features)``
    (each batch is reshaped), or a scipy sparse matrix (each batch is
    densified on its own: the whole matrix never is).  ``shuffle=False``
    takes the rows in order every epoch.
    """
    ops = network.ops
    n = X.shape[0]
    batch_size = min(int(batch_size), n)
    epoch_no = [start_epoch]
    sample_weight = relative_weights(sample_weight)
    shape = tuple(network.input_shape)
    dtype = X.dtype

    def rows(idx: Any) -> np.ndarray:
        xb = take_rows(X, idx)
        return xb.reshape(xb.shape[0], *shape) if xb.shape[1:] != shape else xb

    start_loss = _starting_loss(
        network,
        rows(slice(0, min(max(batch_size, 64), n))),
        y,
        loss,
        None if sample_weight is None else sample_weight[: max(batch_size, 64)],
    )

    def epoch(control: Control) -> EpochStats:
        lr = schedule(float(learning_rate), epoch_no[0]) * control.lr_factor
        # The epoch's dropout masks come from the estimator's generator: a resumed fit continues exactly.
        network.reseed(int(rng.integers(2**31 - 1)))
        total, seen = 0.0, 0
        for idx in minibatches(n, batch_size, rng if shuffle else None):
            xb = rows(idx)
            if augmenter is not None:
                xb = augmenter(xb, rng)
            if sample_weight is None:
                value = train_batch(
                    ops.asarray(xb, dtype=dtype), ops.asarray(y[idx]), lr
                )
                total += value * len(idx)
                seen += len(idx)
            else:
                wb = sample_weight[idx]
                value = train_batch(
                    ops.asarray(xb, dtype=dtype),
                    ops.asarray(y[idx]),
                    lr,
                    sample_weight=wb,
                )
                total += value * len(idx)
                seen += len(idx)
            if control.requested:
                return EpochStats(math.nan, completed=False)
        epoch_no[0] += 1
        stats = EpochStats(
            total / seen + float(alpha) * network.penalty(),
            learning_rate=lr,
            data_loss=total / seen,
        )
        if validation is not None:
            out = network.predict(validation.X, batch_size=PREDICT_BATCH)
            stats.val_score = validation.evaluate(out)
            stats.val_loss = _loss_of(
                network,
                loss,
                out,
                validation.y,
                relative_weights(validation.sample_weight),
            )
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
        explode_above=EXPLOSION_FACTOR * max(start_loss, 1e-3)
        if math.isfinite(start_loss)
        else None,
        advice=(
            f"Try a lower learning_rate (it was {learning_rate:g}), a smaller alpha, or scaling the "
            "input (for example with StandardScaler)."
        ),
        loss_name="training loss",
        callbacks=callbacks,
        state=network.get_weights,
        lr_factor=lr_factor,
    )


def _starting_loss(
    network: Network,
    X: np.ndarray,
    y: np.ndarray,
    loss: Loss,
    sample_weight: np.ndarray | None,
) -> float:
    """The untrained network's loss on the first rows ``X``: the scale that divergence is judged against."""
    m = X.shape[0]
    ops = network.ops
    with np.errstate(all="ignore"):
        out = network.forward(ops.asarray(X, dtype=X.dtype))
        value, _ = (
            loss(ops, out, ops.asarray(y[:m]))
            if sample_weight is None
            else loss(ops, out, ops.asarray(y[:m]), sample_weight)
        )
    return float(value)


def _loss_of(
    network: Network,
    loss: Loss,
    output: np.ndarray,
    y: np.ndarray,
    sample_weight: np.ndarray | None = None,
) -> float:
    ops = network.ops
    with np.errstate(all="ignore"):
        value, _ = (
            loss(ops, ops.asarray(output), ops.asarray(y))
            if sample_weight is None
            else loss(ops, ops.asarray(output), ops.asarray(y), sample_weight)
        )
    return float(value)
