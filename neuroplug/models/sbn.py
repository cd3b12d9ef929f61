"""Training of a sigmoid belief net by (reweighted) wake-sleep.

Every epoch is one backend call, :meth:`neuroplug.ops.Ops.sbn_wake_sleep_epoch`;
this module initialises the parameters, shuffles and runs the epochs on the
one epoch driver.  The sigmoid-belief-net estimator and the ``"sbn"``
pretrainer both train here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..ops import Ops
from .engine import (
    Control,
    EpochStats,
    FitReport,
    relative_weights,
    run_epochs,
    take_rows,
)

#: Rows per backend call when the input is sparse (rounded down to whole batches).
CHUNK_ROWS = 1 << 14

__all__ = ["SBNState", "init_sbn", "recognition_probs", "train_sbn"]


@dataclass
class SBNState:
    """The NumPy parameters of a sigmoid belief net, bottom layer first (one dtype throughout)."""

    generative_weights: list[np.ndarray]
    generative_biases: list[np.ndarray]
    recognition_weights: list[np.ndarray]
    recognition_biases: list[np.ndarray]

    def groups(self) -> tuple[list[np.ndarray], ...]:
        """The four parameter lists, in the order the backend takes them."""
        return (
            self.generative_weights,
            self.generative_biases,
            self.recognition_weights,
            self.recognition_biases,
        )


def init_sbn(
    X: np.ndarray,
    sizes: Sequence[int],
    rng: np.random.Generator,
    dtype: Any = np.float32,
    sample_weight: np.ndarray | None = None,
) -> SBNState:
    """Small random weights; the data bias at the logit of the (weighted) mean (the best factorial model)."""
    dt = np.dtype(dtype)
    n_layers = len(sizes) - 1
    gw = [
        rng.normal(0.0, 0.01, (sizes[i + 1], sizes[i])).astype(dt)
        for i in range(n_layers)
    ]
    rw = [
        rng.normal(0.0, 0.01, (sizes[i], sizes[i + 1])).astype(dt)
        for i in range(n_layers)
    ]
    if sample_weight is None:
        mean = np.asarray(X.mean(axis=0)).reshape(-1)
    else:
        mean = np.asarray(X.T @ sample_weight, dtype=np.float64).reshape(-1) / float(
            np.sum(sample_weight)
        )
    mean = np.clip(mean, 1e-3, 1 - 1e-3)
    gb = [np.log(mean / (1 - mean)).astype(dt)] + [
        np.zeros(n, dtype=dt) for n in sizes[1:]
    ]
    rb = [np.zeros(n, dtype=dt) for n in sizes[1:]]
    return SBNState(gw, gb, rw, rb)


def train_sbn(
    state: SBNState,
    X: np.ndarray,
    *,
    ops: Ops,
    rng: np.random.Generator,
    n_epochs: int,
    learning_rate: float,
    batch_size: int,
    n_importance_samples: int = 1,
    shuffle: bool = True,
    start_epoch: int = 0,
    verbose: int = 0,
    name: str = "SigmoidBeliefNet",
    advice: str | None = None,
    callbacks: Sequence[Any] = (),
    lr_factor: float = 1.0,
    sample_weight: np.ndarray | None = None,
) -> tuple[SBNState, FitReport]:
    """Run up to ``n_epochs`` epochs of wake-sleep on ``X``; return the new state and the report.

    ``state`` is not modified; after a divergence it is still the state
    before the call.  The report's ``loss`` is the negated training bound on
    ``log p(x)`` (nats per row): lower is better.  A scipy sparse ``X``
    (CSR) is read in chunks of whole batches, each densified on its own.
    ``sample_weight`` weights each row's wake-phase statistics by its weight
    relative to the mean weight (:meth:`~neuroplug.ops.Ops.sbn_wake_sleep_epoch`).
    """
    dt = np.dtype(state.generative_biases[0].dtype)
    sparse = not isinstance(X, np.ndarray) and hasattr(X, "tocsr")
    if not sparse:
        X = np.asarray(X, dtype=dt)
    n = X.shape[0]
    params = [
        [ops.asarray(np.array(p, dtype=dt)) for p in group] for group in state.groups()
    ]
    backend_rng = ops.make_rng(int(rng.integers(2**31 - 1)))
    weights = relative_weights(sample_weight)
    m = min(int(batch_size), n)
    chunk = n if not sparse or n <= CHUNK_ROWS else max(m, CHUNK_ROWS // m * m)

    def epoch(control: Control) -> EpochStats:
        lr = float(learning_rate) * control.lr_factor
        order = rng.permutation(n) if shuffle else None
        total = 0.0
        for start in range(0, n, chunk):
            if control.requested:
                return EpochStats(float("nan"), completed=False)
            rows = (
                order[start : start + chunk] if shuffle else slice(start, start + chunk)
            )
            data = np.asarray(take_rows(X, rows), dtype=dt)
            weight_kw = {} if weights is None else {"sample_weight": weights[rows]}
            bound = ops.sbn_wake_sleep_epoch(
                ops.asarray(data),
                *params,
                learning_rate=lr,
                batch_size=int(batch_size),
                n_importance_samples=int(n_importance_samples),
                rng=backend_rng,
                **weight_kw,
            )
            # Each call returns its chunk's (weighted) mean: recombine into the epoch's mean.
            total += float(bound) * (
                data.shape[0] if weights is None else float(weights[rows].sum())
            )
        return EpochStats(
            -total / (n if weights is None else float(weights.sum())), learning_rate=lr
        )

    def current() -> SBNState:
        """The NumPy state of the epochs run so far."""
        return SBNState(
            *([np.array(ops.to_numpy(p), dtype=dt) for p in group] for group in params)
        )

    # A model that gives every unit probability 1/2 scores -(units) log 2 per row; a bound
    # 1e4 times worse is no model at all.
    n_units = X.shape[1] + sum(int(b.shape[0]) for b in state.recognition_biases)
    report = run_epochs(
        epoch,
        n_epochs=n_epochs,
        name=name,
        start_epoch=start_epoch,
        verbose=verbose,
        explode_above=1e4 * n_units * math.log(2.0),
        advice=advice or f"Try a lower learning_rate (it was {learning_rate:g}).",
        loss_name="negative training bound",
        bar_label="neg_bound",
        callbacks=callbacks,
        state=current,
        lr_factor=lr_factor,
    )
    return current(), report


def recognition_probs(
    ops: Ops, X: np.ndarray, weights: Sequence[np.ndarray], biases: Sequence[np.ndarray]
) -> list[np.ndarray]:
    """Mean-field pass up the recognition network: each hidden layer's probabilities (NumPy, the weights' dtype)."""
    if not isinstance(X, np.ndarray) and hasattr(
        X, "tocsr"
    ):  # sparse: a chunk of rows at a time
        parts = [
            recognition_probs(
                ops, take_rows(X, slice(s, s + CHUNK_ROWS)), weights, biases
            )
            for s in range(0, X.shape[0], CHUNK_ROWS)
        ]
        return [
            np.concatenate([p[i] for p in parts], axis=0) for i in range(len(weights))
        ]
    h = ops.asarray(X)
    layers = []
    for W, b in zip(weights, biases):
        h = ops.sigmoid(ops.affine(h, ops.asarray(W), ops.asarray(b)))
        layers.append(np.asarray(ops.to_numpy(h), dtype=np.asarray(W).dtype))
    return layers
