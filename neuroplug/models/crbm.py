"""Training of a convolutional RBM with probabilistic max-pooling (Lee et al. 2009) by CD-k.

Every epoch is one backend call, :meth:`neuroplug.ops.Ops.crbm_cd_epoch`; this
module initialises the filters, shuffles and runs the epochs on the one epoch
driver.  The ConvRBM and ConvDBN estimators and the ``"cdbn"`` pretrainer all
train here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..ops import Ops
from .engine import Control, EpochStats, FitReport, run_epochs

__all__ = ["train_crbm", "crbm_pool_output"]

#: Images per forward pass when computing pooling-layer outputs.
FORWARD_BATCH = 256


def _initial_visible_bias(X: np.ndarray, visible: str) -> np.ndarray:
    """Per-channel visible biases: the logit of the mean pixel (Bernoulli) or the mean (Gaussian).

    Starting from the data's marginals (Hinton's practical guide, section 8.1)
    spares the filters from having to learn the mean intensity first.
    """
    mean = X.mean(axis=(0, 2, 3), dtype=np.float64)
    if visible == "gaussian":
        return mean.astype(X.dtype)
    p = np.clip(mean, 1e-3, 1 - 1e-3)
    return np.log(p / (1 - p)).astype(X.dtype)


def train_crbm(
    X: np.ndarray,
    *,
    filters: int,
    kernel_size: tuple[int, int],
    pool_size: tuple[int, int],
    visible: str,
    ops: Ops,
    rng: np.random.Generator,
    k: int = 1,
    learning_rate: float = 0.2,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    sparsity_target: float = 0.05,
    sparsity_cost: float = 0.5,
    batch_size: int = 20,
    max_iter: int = 10,
    stride: Any = 1,
    padding: Any = 0,
    groups: int = 1,
    connections: Any = None,
    init_weights: np.ndarray | None = None,
    init_state: Sequence[np.ndarray] | None = None,
    shuffle: bool = True,
    verbose: int = 0,
    desc: str = "ConvRBM",
    start_epoch: int = 0,
    callbacks: Sequence[Any] = (),
    lr_factor: float = 1.0,
    advice: str | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, FitReport]:
    """Train one convolutional RBM with CD-k on the images ``X``; return ``(W, bh, bv, report)``.

    ``X`` is a NumPy array ``(n, channels, height, width)`` of the training
    dtype.  Rows are reshuffled every epoch with ``rng`` (which also draws
    the initial filters, ``N(0, 0.01**2)`` as in Hinton's guide, unless
    ``init_weights`` is given); the backend generator for the Gibbs samples
    is seeded from ``rng`` too, so a seed fixes the whole run on a backend.
    ``init_state`` continues training from ``(W, bh, bv, dW, dbh, dbv)``
    (filters, biases and momentum buffers: what ``partial_fit`` passes);
    the final six arrays are in ``report.state`` either way.
    ``shuffle=False`` takes the images in order every epoch.
    The report's history holds the mean squared reconstruction error of
    each epoch; a divergence raises
    :class:`~neuroplug.models.TrainingDivergedError`.
    Arguments are those of :meth:`neuroplug.ops.Ops.crbm_cd_epoch`; they are
    assumed validated by the caller (an estimator or the pretrainer).
    ``advice`` replaces the divergence message's default advice (a caller
    names the parameter that the user controls).
    """
    dtype = X.dtype
    c = int(X.shape[1])
    cg = c // int(groups)
    if init_state is not None:
        params = [ops.asarray(np.array(a, dtype=dtype)) for a in init_state]
    else:
        if init_weights is None:
            W = rng.normal(0.0, 0.01, size=(filters, cg, *kernel_size)).astype(dtype)
        else:
            W = np.array(init_weights, dtype=dtype)
        if connections is not None:
            W *= np.asarray(connections, dtype=bool)[:, :, None, None]
        params = [
            ops.asarray(W),
            ops.asarray(np.zeros(filters, dtype)),
            ops.asarray(_initial_visible_bias(X, visible)),
            ops.asarray(np.zeros_like(W)),
            ops.asarray(np.zeros(filters, dtype)),
            ops.asarray(np.zeros(c, dtype)),
        ]
    gibbs_rng = ops.make_rng(int(rng.integers(2**31 - 1)))

    def epoch(control: Control) -> EpochStats:
        lr = float(learning_rate) * control.lr_factor
        Xe = ops.asarray(X[rng.permutation(X.shape[0])] if shuffle else X)
        err = ops.crbm_cd_epoch(
            Xe,
            *params,
            k=k,
            pool_size=pool_size,
            learning_rate=lr,
            momentum=momentum,
            weight_decay=weight_decay,
            sparsity_target=sparsity_target,
            sparsity_cost=sparsity_cost,
            batch_size=batch_size,
            visible=visible,
            rng=gibbs_rng,
            stride=stride,
            padding=padding,
            groups=groups,
            connections=connections,
        )
        return EpochStats(
            float(err), learning_rate=lr, weight_scale=float(abs(params[0]).max())
        )

    def current() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The NumPy filters and biases of the epochs run so far."""
        return tuple(np.array(ops.to_numpy(p)) for p in params[:3])  # type: ignore[return-value]

    report = run_epochs(
        epoch,
        n_epochs=int(max_iter),
        name=desc,
        start_epoch=start_epoch,
        verbose=verbose,
        # An error per pixel 1e4 times that of reconstructing zeros (plus one) is no model.
        explode_above=1e4 * (float(np.square(X[:1000], dtype=np.float64).mean()) + 1.0),
        advice=advice
        or (
            f"Lower learning_rate (Received: learning_rate={learning_rate}) or, for Gaussian "
            "visible units, standardise X."
        ),
        loss_name="reconstruction error",
        bar_label="recon_error",
        callbacks=callbacks,
        state=current,
        lr_factor=lr_factor,
    )
    W, bh, bv = current()
    report.state = tuple(np.array(ops.to_numpy(p)) for p in params)
    return W, bh, bv, report


def crbm_pool_output(
    ops: Ops,
    X: np.ndarray,
    W: np.ndarray,
    bh: np.ndarray,
    pool_size: tuple[int, int],
    *,
    stride: Any = 1,
    padding: Any = 0,
    groups: int = 1,
    connections: Any = None,
    hidden: bool = False,
) -> np.ndarray:
    """Pooling-layer probabilities (or, with ``hidden=True``, detection probabilities) of ``X``, in batches."""
    Wb, bhb = ops.asarray(W), ops.asarray(bh)
    out = []
    for start in range(0, X.shape[0], FORWARD_BATCH):
        xb = ops.asarray(X[start : start + FORWARD_BATCH])
        pre = ops.conv2d(
            xb,
            Wb,
            bhb,
            stride=stride,
            padding=padding,
            groups=groups,
            connections=connections,
        )
        h_probs, p_probs = ops.crbm_pool_probs(pre, pool_size)
        out.append(np.asarray(ops.to_numpy(h_probs if hidden else p_probs)))
    return np.concatenate(out, axis=0)
