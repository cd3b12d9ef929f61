"""Training of a restricted Boltzmann machine by CD-k or persistent CD-k.

Every epoch is one backend call, :meth:`neuroplug.ops.Ops.cd_epoch`, so a
backend runs the whole loop (positive phase, Gibbs chain, update) natively;
this module shuffles, monitors a mean-field reconstruction error and runs
the epochs on the one epoch driver.  The RBM estimator and the DBN
pretrainer both train here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import partial
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

__all__ = [
    "RBMState",
    "init_rbm",
    "train_rbm",
    "rbm_hidden_probs",
    "rbm_hidden_means",
    "relu_cd_epoch",
]

#: Training rows whose reconstruction error is reported after each epoch.
MONITOR_ROWS = 1000
#: Rows per backend call when transforming.
ROW_CHUNK = 4096
#: Rows per CD epoch call when training (rounded down to whole batches).
CHUNK_ROWS = 1 << 14
#: The same for sparse input, densified chunk by chunk: smaller, so the dense chunk stays small.
SPARSE_CHUNK_ROWS = 1 << 12


@dataclass
class RBMState:
    """The NumPy state of an RBM: parameters, momentum buffers and persistent chains."""

    W: np.ndarray
    bh: np.ndarray
    bv: np.ndarray
    velocity: tuple[np.ndarray, np.ndarray, np.ndarray]
    chain: np.ndarray | None = None


def init_rbm(
    n_components: int,
    column_means: np.ndarray,
    visible: str,
    dtype: Any,
    rng: np.random.Generator,
) -> RBMState:
    """Small random weights; visible biases at the data's log-odds (Bernoulli) or mean (Gaussian).

    The visible biases start where an RBM without hidden units would be
    optimal, as Hinton's guide advises, so the hidden units spend their
    capacity on the dependencies between features.
    """
    dt = np.dtype(dtype)
    W = rng.normal(0.0, 0.01, (int(n_components), column_means.shape[0])).astype(dt)
    bh = np.zeros(int(n_components), dtype=dt)
    if visible == "bernoulli":
        p = np.clip(column_means, 1e-3, 1 - 1e-3)
        bv = (np.log(p) - np.log1p(-p)).astype(dt)
    else:
        bv = column_means.astype(dt)
    return RBMState(W, bh, bv, (np.zeros_like(W), np.zeros_like(bh), np.zeros_like(bv)))


def _init_chain(
    state: RBMState,
    X: np.ndarray,
    m: int,
    ops: Ops,
    rng: np.random.Generator,
    backend_rng: Any,
) -> np.ndarray:
    """Persistent chains as hidden states sampled from random training rows (fantasy particles)."""
    rows = take_rows(X, rng.choice(X.shape[0], size=m, replace=False))
    W, bh = ops.asarray(state.W), ops.asarray(state.bh)
    h = ops.bernoulli(ops.rbm_hidden_probs(ops.asarray(rows), W, bh), backend_rng)
    return np.array(ops.to_numpy(h), dtype=state.W.dtype)


def train_rbm(
    state: RBMState,
    X: np.ndarray,
    *,
    ops: Ops,
    rng: np.random.Generator,
    n_epochs: int,
    visible: str,
    k: int = 1,
    persistent: bool = False,
    sample_visible: bool = False,
    learning_rate: float = 0.1,
    momentum: float = 0.5,
    weight_decay: float = 0.0,
    batch_size: int = 100,
    shuffle: bool = True,
    start_epoch: int = 0,
    verbose: int = 0,
    name: str = "RBM",
    advice: str | None = None,
    callbacks: Sequence[Any] = (),
    lr_factor: float = 1.0,
    sample_weight: np.ndarray | None = None,
    hidden: str = "bernoulli",
) -> tuple[RBMState, FitReport]:
    """Run up to ``n_epochs`` epochs of CD-k (PCD-k) on ``X``; return the new state and the report.

    ``X`` is a NumPy array (memory-mapped ones included) or a scipy sparse
    matrix (CSR): the epochs read it in chunks of whole batches, each
    densified on its own, so a sparse ``X`` is never densified whole (and
    a mostly-zero chunk takes the Cython backend's sparse products).
    ``sample_weight`` (``None`` or one non-negative weight per row) weights
    each row's CD statistics by its weight relative to the mean weight
    (:meth:`~neuroplug.ops.Ops.cd_epoch`), and the monitored error is the
    weighted mean.

    ``state`` is not modified: the epochs run on backend copies, and the new
    state is built from them when the driver returns (also after Ctrl-C).
    When training diverges, :class:`~neuroplug.models.TrainingDivergedError`
    propagates and ``state`` is still the state before the call.  The
    report's history holds the mean-field reconstruction error (the squared
    error of ``E[v | p(h | v)]`` over the first 1,000 rows) of each epoch.
    ``advice`` replaces the divergence message's default advice (a caller
    names the parameter that the user controls).

    ``hidden="relu"`` trains noisy rectified linear hidden units (NReLU, Nair
    & Hinton 2010) with :func:`relu_cd_epoch` instead of the backend's
    Bernoulli CD loop; it supports neither ``persistent`` nor
    ``sample_visible``.
    """
    if hidden not in ("bernoulli", "relu"):
        raise ValueError(
            f"hidden must be 'bernoulli' or 'relu'. Received: hidden={hidden!r}"
        )
    if hidden == "relu" and (persistent or sample_visible):
        raise ValueError(
            "Rectified linear hidden units (hidden='relu') train by CD-k only: "
            f"persistent and sample_visible must be False. Received: persistent={persistent}, "
            f"sample_visible={sample_visible}"
        )
    if hidden != "bernoulli" and (sample_weight is not None or sample_visible):
        raise ValueError(
            "rectified-linear hidden units (hidden='relu') train without sample_weight and sample_visible. "
            f"Received: hidden={hidden!r}, sample_weight given={sample_weight is not None}, "
            f"sample_visible={sample_visible}"
        )
    dt = np.dtype(state.W.dtype)
    backend_rng = ops.make_rng(int(rng.integers(2**31 - 1)))
    m = min(int(batch_size), X.shape[0])
    chain_np = state.chain
    if persistent and (chain_np is None or chain_np.shape[0] < m):
        chain_np = _init_chain(state, X, m, ops, rng, backend_rng)
    chain = ops.asarray(np.array(chain_np, dtype=dt)) if persistent else None
    # Fresh backend copies: the epoch updates them in place.
    W, bh, bv = (
        ops.asarray(np.array(a, dtype=dt)) for a in (state.W, state.bh, state.bv)
    )
    dW, dbh, dbv = (ops.asarray(np.array(a, dtype=dt)) for a in state.velocity)
    monitor_np = take_rows(X, slice(0, MONITOR_ROWS))
    monitor = ops.asarray(monitor_np, dtype=dt)
    n = X.shape[0]
    weights = relative_weights(sample_weight)
    if weights is not None:
        monitor_w = (
            weights[:MONITOR_ROWS] / weights[:MONITOR_ROWS].sum()
            if weights[:MONITOR_ROWS].sum() > 0
            else None
        )
    sparse = not isinstance(X, np.ndarray) and hasattr(X, "tocsr")
    # Whole batches per backend call, so a large (memory-mapped) X is never copied whole.
    rows_per_call = SPARSE_CHUNK_ROWS if sparse else CHUNK_ROWS
    chunk = n if n <= rows_per_call else max(m, rows_per_call // m * m)
    buffer = (
        np.empty((chunk, *X.shape[1:]), dtype=X.dtype)
        if shuffle and not sparse
        else None
    )
    # Only when asked for: a backend written before sample_visible existed still trains.
    chain_kw = {"sample_visible": True} if sample_visible else {}

    def epoch(control: Control) -> EpochStats:
        lr = float(learning_rate) * control.lr_factor
        order = rng.permutation(n) if shuffle else None
        for start in range(0, n, chunk):
            if control.requested:
                return EpochStats(float("nan"), completed=False)
            rows = (
                order[start : start + chunk] if shuffle else slice(start, start + chunk)
            )
            if sparse:
                part = take_rows(X, rows)
            elif shuffle:
                # mode="clip" keeps NumPy from buffering `out`; a permutation's indices are all in range.
                part = np.take(
                    X, rows, axis=0, out=buffer[: rows.shape[0]], mode="clip"
                )
            else:
                part = X[rows]
            weight_kw = {} if weights is None else {"sample_weight": weights[rows]}
            epoch_fn = (
                ops.cd_epoch if hidden == "bernoulli" else partial(relu_cd_epoch, ops)
            )
            epoch_fn(
                ops.asarray(part, dtype=dt),
                W,
                bh,
                bv,
                dW,
                dbh,
                dbv,
                k=int(k),
                learning_rate=lr,
                momentum=float(momentum),
                weight_decay=float(weight_decay),
                batch_size=m,
                visible=visible,
                rng=backend_rng,
                chain=chain,
                **chain_kw,
                **weight_kw,
            )
        # Under PCD cd_epoch's own error compares the data with fantasy particles: measure a
        # true mean-field reconstruction instead.
        diff = ops.rbm_visible_means(
            _hidden_means(ops, monitor, W, bh, hidden), W, bv, visible
        )
        diff -= monitor
        diff *= diff
        if weights is not None and monitor_w is not None:
            rows_err = np.asarray(ops.to_numpy(diff.sum(axis=1)), dtype=np.float64)
            error = float((monitor_w * rows_err).sum())
        else:
            error = float(diff.sum()) / int(monitor.shape[0])
        return EpochStats(error, learning_rate=lr, weight_scale=float(abs(W).max()))

    def current() -> RBMState:
        """The NumPy state of the epochs run so far (backend copies read back)."""
        to_np = lambda a: np.array(ops.to_numpy(a), dtype=dt)  # noqa: E731
        return replace(
            state,
            W=to_np(W),
            bh=to_np(bh),
            bv=to_np(bv),
            velocity=(to_np(dW), to_np(dbh), to_np(dbv)),
            chain=to_np(chain) if chain is not None else state.chain,
        )

    advice = advice or (
        f"Try a lower learning_rate (it was {learning_rate:g})"
        + (
            " or standardise X (Gaussian visible units have unit variance)."
            if visible == "gaussian"
            else " or scale X to [0, 1] (Bernoulli visible units model probabilities)."
        )
    )
    # An error 1e4 times that of reconstructing every row as zeros (plus one per feature) is no model.
    scale = float(np.square(monitor_np, dtype=np.float64).sum()) / max(
        min(X.shape[0], MONITOR_ROWS), 1
    )
    report = run_epochs(
        epoch,
        n_epochs=n_epochs,
        name=name,
        start_epoch=start_epoch,
        verbose=verbose,
        explode_above=1e4 * (scale + X.shape[1]),
        advice=advice,
        loss_name="reconstruction error",
        bar_label="recon_error",
        callbacks=callbacks,
        state=current,
        lr_factor=lr_factor,
    )
    return current(), report


def rbm_hidden_probs(
    ops: Ops, X: np.ndarray, W: np.ndarray, bh: np.ndarray
) -> np.ndarray:
    """``p(h = 1 | v)`` for the rows of NumPy (or scipy sparse) ``X``, in chunks, as NumPy in ``W``'s dtype."""
    Wb, bhb = ops.asarray(W), ops.asarray(bh)
    out = np.empty((X.shape[0], W.shape[0]), dtype=W.dtype)
    for start in range(0, X.shape[0], ROW_CHUNK):
        out[start : start + ROW_CHUNK] = ops.to_numpy(
            ops.rbm_hidden_probs(
                ops.asarray(
                    take_rows(X, slice(start, start + ROW_CHUNK)), dtype=W.dtype
                ),
                Wb,
                bhb,
            )
        )
    return out


def _hidden_means(ops: Ops, v: Any, W: Any, bh: Any, hidden: str) -> Any:
    """``E[h | v]`` on the backend: sigmoid (Bernoulli) or ``max(0, x)`` (NReLU, its noise-free mean)."""
    if hidden == "relu":
        return ops.relu(ops.gemm(v, W, trans2=True) + bh)
    return ops.rbm_hidden_probs(v, W, bh)


def rbm_hidden_means(
    ops: Ops, X: np.ndarray, W: np.ndarray, bh: np.ndarray, hidden: str = "bernoulli"
) -> np.ndarray:
    """Hidden means for the rows of NumPy ``X`` (``rbm_hidden_probs`` for ``hidden="bernoulli"``), as NumPy."""
    if hidden == "bernoulli":
        return rbm_hidden_probs(ops, X, W, bh)
    Wb, bhb = ops.asarray(W), ops.asarray(bh)
    out = np.empty((X.shape[0], W.shape[0]), dtype=W.dtype)
    for start in range(0, X.shape[0], ROW_CHUNK):
        out[start : start + ROW_CHUNK] = ops.to_numpy(
            _hidden_means(
                ops, ops.asarray(X[start : start + ROW_CHUNK]), Wb, bhb, "relu"
            )
        )
    return out


def relu_cd_epoch(
    ops: Ops,
    X: Any,
    W: Any,
    bh: Any,
    bv: Any,
    dW: Any,
    dbh: Any,
    dbv: Any,
    *,
    k: int,
    learning_rate: float,
    momentum: float,
    weight_decay: float,
    batch_size: int,
    visible: str,
    rng: Any,
    chain: Any = None,
) -> float:
    """One epoch of CD-k with noisy rectified linear hidden units (Nair & Hinton 2010), in row order.

    As :meth:`neuroplug.ops.Ops.cd_epoch`, with the hidden units
    ``h = max(0, x + N(0, sigmoid(x)))``, ``x = v W^T + bh``: the statistics
    use their noise-free means ``max(0, x)``, the Gibbs chain their samples.
    Written against the backend's primitives, so every backend runs it.
    Returns the mean squared reconstruction error per sample.
    """
    if chain is not None:
        raise ValueError("relu_cd_epoch has no persistent chains (chain must be None)")
    n = int(X.shape[0])
    errs = []
    for start in range(0, n, int(batch_size)):
        v0 = ops.take_rows(X, start, start + int(batch_size), W.dtype)
        m = int(v0.shape[0])
        x = ops.gemm(v0, W, trans2=True) + bh
        h0 = ops.relu(x)
        vk, hk = v0, h0
        for _ in range(int(k)):
            noise = ops.random_normal(rng, x.shape, x.dtype) * ops.sigmoid(x) ** 0.5
            vk = ops.rbm_visible_means(ops.relu(x + noise), W, bv, visible)
            x = ops.gemm(vk, W, trans2=True) + bh
            hk = ops.relu(x)
        scale = learning_rate / m
        dW *= momentum
        dW += scale * (ops.gemm(h0, v0, trans1=True) - ops.gemm(hk, vk, trans1=True))
        dW -= (learning_rate * weight_decay) * W
        W += dW
        dbh *= momentum
        dbh += scale * (h0.sum(axis=0) - hk.sum(axis=0))
        bh += dbh
        dbv *= momentum
        dbv += scale * (v0.sum(axis=0) - vk.sum(axis=0))
        bv += dbv
        diff = v0 - vk
        errs.append((diff * diff).sum())
    return sum(float(e) for e in errs) / n
