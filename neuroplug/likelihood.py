"""Log-partition functions and log-likelihoods of restricted Boltzmann machines.

An RBM with weights ``W`` of shape ``(n_hidden, n_visible)``, hidden biases
``bh`` and visible biases ``bv`` defines ``p(v) = exp(-F(v)) / Z`` with the
free energy ``F`` of :meth:`neuroplug.ops.Ops.rbm_free_energy`.  ``F`` is
cheap; the normalising constant ``Z`` sums over every joint state and is
intractable beyond about 25 units on one side.  This module computes

* :func:`rbm_log_partition_exact`: ``log Z`` by enumerating the states of
  the smaller layer (the hidden one for Gaussian visible units), in float64;
* :func:`rbm_log_partition_ais`: an unbiased estimate of ``Z`` by annealed
  importance sampling (Neal 2001; Salakhutdinov & Murray 2008), with its
  standard error;
* :func:`rbm_log_likelihood`: ``log p(v) = -F(v) - log Z`` per row.

AIS
---
The sampler moves from a tractable base model ``A`` (no weights, visible
biases ``base_visible_bias``: the data's log-odds for Bernoulli units, its
mean for Gaussian ones) to the RBM ``B`` through the geometric path

    ``p_beta(v) ∝ exp((1 - beta) (-E_A(v)) + beta (-E_B(v, h)))`` summed over ``h``

for ``0 = beta_0 < beta_1 < ... < beta_K = 1``.  Each of the ``n_runs``
independent runs starts with an exact sample of ``p_0`` and alternates one
Gibbs sweep ``h ~ p_beta(h | v)``, ``v ~ p_beta(v | h)`` with the update of
its log importance weight ``log w += log p*_k(v) - log p*_{k-1}(v)``.  Then
``Z_B / Z_A ≈ mean(w)``, unbiased in ``Z`` (not in ``log Z``: the log of the
estimate is biased low by about ``var(w) / (2 mean(w)^2 n_runs)``, so AIS
tends to underestimate ``log Z`` and overestimate log-likelihoods a little
when it has too few temperatures).

Defaults follow Salakhutdinov & Murray's MNIST experiments in shape: 100
runs, and the temperatures spaced uniformly in three bands holding 1/29,
8/29 and 20/29 of them on ``[0, 0.5]``, ``[0.5, 0.9]`` and ``[0.9, 1]``
(their 500, 4,000 and 10,000 of 14,500), because the weights change fastest
near ``beta = 1``.  The default of 14,500 temperatures is theirs; small
models need far fewer.

The reported uncertainty is the delta-method standard error of ``log Z``,
``std(w) / (mean(w) sqrt(n_runs))``, and the ``±3`` standard deviation
interval of ``Z`` on the log scale that Salakhutdinov & Murray report.  A
large standard error (or a few runs carrying most of the weight) means the
estimate cannot be trusted: add temperatures.

All sampling runs through an :class:`~neuroplug.ops.Ops` backend, so it runs
on the GPU with the torch backend.  The log weights are accumulated in
float64 whatever the model's precision.

References
----------
.. [1] R. M. Neal, "Annealed importance sampling", Statistics and
   Computing 11, 2001.
.. [2] R. Salakhutdinov and I. Murray, "On the quantitative analysis of deep
   belief networks", ICML 2008.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.utils import check_random_state

from ._checks import check_int

__all__ = [
    "AISResult",
    "ais_betas",
    "base_visible_bias",
    "rbm_log_partition_exact",
    "rbm_log_partition_ais",
    "rbm_log_likelihood",
    "MAX_EXACT_UNITS",
    "DEFAULT_AIS_RUNS",
    "DEFAULT_AIS_BETAS",
]

#: Largest number of enumerated units :func:`rbm_log_partition_exact` accepts (2**25 states).
MAX_EXACT_UNITS = 25
#: Default number of independent AIS runs.
DEFAULT_AIS_RUNS = 100
#: Default number of AIS temperatures (Salakhutdinov & Murray 2008).
DEFAULT_AIS_BETAS = 14500

_LOG2 = math.log(2.0)
_LOG_2PI = math.log(2.0 * math.pi)
_ENUM_CHUNK = 1 << 13  # states per chunk of the enumeration


def _check_visible(visible: Any) -> str:
    if visible not in ("bernoulli", "gaussian"):
        raise ValueError(
            f"visible must be 'bernoulli' or 'gaussian'. Received: visible={visible!r}"
        )
    return visible


def _check_params(
    W: Any, bh: Any, bv: Any
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """NumPy copies of the parameters with their shapes checked."""
    W = np.asarray(W)
    bh = np.asarray(bh)
    bv = np.asarray(bv)
    if W.ndim != 2 or W.size == 0:
        raise ValueError(
            f"W must be a non-empty 2-D array (n_hidden, n_visible). Received: W.shape={W.shape}"
        )
    if bh.shape != (W.shape[0],) or bv.shape != (W.shape[1],):
        raise ValueError(
            f"bh must have shape ({W.shape[0]},) and bv ({W.shape[1]},) for W of shape {W.shape}. "
            f"Received: bh.shape={bh.shape}, bv.shape={bv.shape}"
        )
    for name, a in (("W", W), ("bh", bh), ("bv", bv)):
        if a.dtype.kind not in "fiu" or not np.isfinite(a).all():
            raise ValueError(f"{name} must hold finite real numbers.")
    return W, bh, bv


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def _logsumexp(x: np.ndarray) -> float:
    peak = float(np.max(x))
    return peak + math.log(float(np.exp(x - peak).sum()))


def _states(n_units: int, start: int, stop: int) -> np.ndarray:
    """Binary states ``start .. stop - 1`` of ``n_units`` units, one per row (float64)."""
    codes = np.arange(start, stop, dtype=np.int64)
    return ((codes[:, None] >> np.arange(n_units, dtype=np.int64)) & 1).astype(
        np.float64
    )


def rbm_log_partition_exact(
    W: Any, bh: Any, bv: Any, visible: str = "bernoulli", *, max_units: int = 20
) -> float:
    """Exact ``log Z`` of an RBM by enumeration, in float64.

    Bernoulli visible units: enumerate the smaller layer and sum the other
    out analytically.  Gaussian (unit-variance) visible units: enumerate the
    hidden states, where ``Z = (2 pi)^(n_visible/2) sum_h exp(h.bh + bv.(hW)
    + |hW|^2 / 2)``.

    Parameters
    ----------
    W : array-like of shape (n_hidden, n_visible)
        Weights.
    bh : array-like of shape (n_hidden,)
        Hidden biases.
    bv : array-like of shape (n_visible,)
        Visible biases (the means of Gaussian units).
    visible : {"bernoulli", "gaussian"}, default="bernoulli"
        Visible unit type.
    max_units : int, default=20
        Refuse to enumerate more than ``2**max_units`` states (at most
        :data:`MAX_EXACT_UNITS`).

    Returns
    -------
    log_z : float
        The log-partition function in nats.
    """
    visible = _check_visible(visible)
    W, bh, bv = _check_params(W, bh, bv)
    W, bh, bv = W.astype(np.float64), bh.astype(np.float64), bv.astype(np.float64)
    check_int(max_units, "max_units", 1, MAX_EXACT_UNITS)
    nh, nv = W.shape
    if visible == "bernoulli" and nv < nh:
        n_enum, enumerate_hidden = nv, False
    else:
        n_enum, enumerate_hidden = nh, True
    if n_enum > max_units:
        raise ValueError(
            f"Exact enumeration needs 2**{n_enum} states here, above the limit of 2**{max_units}; use AIS "
            f"(rbm_log_partition_ais) or raise max_units. Received: W.shape={W.shape}, visible={visible!r}"
        )
    parts = []
    for start in range(0, 2**n_enum, _ENUM_CHUNK):
        states = _states(n_enum, start, min(start + _ENUM_CHUNK, 2**n_enum))
        if not enumerate_hidden:
            # -F(v) = v.bv + sum_j softplus(bh_j + W_j v)
            terms = states @ bv + _softplus(states @ W.T + bh).sum(axis=1)
        elif visible == "bernoulli":
            # sum over v of exp(-E(v, h)) = exp(h.bh) prod_i (1 + exp(bv_i + (hW)_i))
            terms = states @ bh + _softplus(states @ W + bv).sum(axis=1)
        else:
            hw = states @ W
            terms = states @ bh + hw @ bv + 0.5 * (hw * hw).sum(axis=1)
        parts.append(_logsumexp(terms))
    log_z = _logsumexp(np.asarray(parts))
    if visible == "gaussian":
        log_z += 0.5 * nv * _LOG_2PI
    return float(log_z)


def ais_betas(n_betas: int = DEFAULT_AIS_BETAS) -> np.ndarray:
    """The inverse temperatures ``0 = beta_0 < ... < beta_K = 1`` used by default, ``K = n_betas``.

    Uniform spacing in three bands that hold 1/29, 8/29 and 20/29 of the
    steps on ``[0, 0.5]``, ``[0.5, 0.9]`` and ``[0.9, 1]`` (Salakhutdinov &
    Murray 2008 used 500, 4,000 and 10,000).  Returns ``n_betas + 1``
    values.
    """
    check_int(n_betas, "n_betas", 3)
    n1 = max(1, round(n_betas / 29))
    n2 = max(1, round(n_betas * 8 / 29))
    n3 = n_betas - n1 - n2
    return np.concatenate(
        [
            np.linspace(0.0, 0.5, n1, endpoint=False),
            np.linspace(0.5, 0.9, n2, endpoint=False),
            np.linspace(0.9, 1.0, n3 + 1),
        ]
    )


def base_visible_bias(
    X: Any, visible: str = "bernoulli", *, smoothing: float = 0.05
) -> np.ndarray:
    """Visible biases of the AIS base model fitted to data ``X``.

    Bernoulli units: the log-odds of the smoothed marginals ``(sum x +
    smoothing) / (n + 2 smoothing)`` (the "base-rate" model of Salakhutdinov &
    Murray); Gaussian units: the mean of ``X``.
    """
    visible = _check_visible(visible)
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] == 0:
        raise ValueError(
            f"X must be a non-empty 2-D array. Received: X.shape={X.shape}"
        )
    if visible == "gaussian":
        return X.mean(axis=0)
    p = (X.sum(axis=0) + smoothing) / (X.shape[0] + 2 * smoothing)
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p) - np.log1p(-p)


@dataclass
class AISResult:
    """The outcome of :func:`rbm_log_partition_ais`.

    Attributes
    ----------
    log_z : float
        ``log Z`` estimate (the log of an unbiased estimate of ``Z``), nats.
    log_z_std : float
        Delta-method standard error of ``log_z``:
        ``std(w) / (mean(w) sqrt(n_runs))``.
    log_z_interval : (float, float)
        ``log(mean(w) ± 3 std(w) / sqrt(n_runs)) + log Z_A``, the interval of
        Salakhutdinov & Murray (the lower end is ``-inf`` when the standard
        error exceeds a third of the mean).
    log_z_base : float
        ``log Z_A`` of the base model.
    log_weights : ndarray of shape (n_runs,)
        Final log importance weights of the runs.
    betas : ndarray of shape (n_betas + 1,)
        The inverse temperatures used.
    effective_sample_size : float
        ``(sum w)^2 / sum w^2``: about ``n_runs`` when the runs agree, near
        1 when one run dominates.
    """

    log_z: float
    log_z_std: float
    log_z_interval: tuple[float, float]
    log_z_base: float
    log_weights: np.ndarray = field(repr=False)
    betas: np.ndarray = field(repr=False)
    effective_sample_size: float = 0.0

    @property
    def n_runs(self) -> int:
        """Number of AIS runs."""
        return int(self.log_weights.shape[0])


def rbm_log_partition_ais(
    W: Any,
    bh: Any,
    bv: Any,
    visible: str = "bernoulli",
    *,
    base_bias: Any = None,
    n_runs: int = DEFAULT_AIS_RUNS,
    betas: int | Any = DEFAULT_AIS_BETAS,
    ops: Any = None,
    dtype: Any = None,
    random_state: Any = None,
) -> AISResult:
    """Estimate ``log Z`` of an RBM by annealed importance sampling.

    Parameters
    ----------
    W : array-like of shape (n_hidden, n_visible)
        Weights.
    bh : array-like of shape (n_hidden,)
        Hidden biases.
    bv : array-like of shape (n_visible,)
        Visible biases.
    visible : {"bernoulli", "gaussian"}, default="bernoulli"
        Visible unit type (Gaussian units have unit variance).
    base_bias : array-like of shape (n_visible,), optional
        Visible biases of the base model (see :func:`base_visible_bias`);
        ``None`` uses ``bv``.  A base model fitted to the data makes the
        first temperatures nearly free and lowers the variance.
    n_runs : int, default=100
        Independent AIS runs (particles).
    betas : int or array-like, default=14500
        Number of temperatures for :func:`ais_betas`, or the increasing
        inverse temperatures themselves (from 0 to 1 inclusive).
    ops : Ops or str, optional
        Backend that runs the sampling (``None``: the default backend).
    dtype : numpy dtype, optional
        Precision of the sampling (default: ``W``'s float dtype, float64 for
        other input).  Log weights are accumulated in float64 regardless.
    random_state : int, RandomState instance or None
        Seeds the runs.

    Returns
    -------
    result : AISResult
        The estimate, its standard error and diagnostics.
    """
    from .backends import get_ops

    visible = _check_visible(visible)
    W, bh, bv = _check_params(W, bh, bv)
    nh, nv = W.shape
    check_int(n_runs, "n_runs", 2)
    if isinstance(betas, numbers.Integral) and not isinstance(betas, bool):
        beta_arr = ais_betas(int(betas))
    else:
        beta_arr = np.asarray(betas, dtype=np.float64)
        if (
            beta_arr.ndim != 1
            or beta_arr.shape[0] < 2
            or beta_arr[0] != 0
            or beta_arr[-1] != 1
            or not np.all(np.diff(beta_arr) > 0)
        ):
            raise ValueError(
                "betas must be an int >= 3 or an increasing 1-D sequence from 0 to 1 inclusive. "
                f"Received: betas with shape {beta_arr.shape}"
            )
    if dtype is None:
        dtype = W.dtype if W.dtype in (np.float32, np.float64) else np.float64
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise TypeError(f"dtype must be float32 or float64. Received: dtype={dtype}")
    if base_bias is None:
        bA = bv.astype(np.float64)
    else:
        bA = np.asarray(base_bias, dtype=np.float64)
        if bA.shape != (nv,) or not np.isfinite(bA).all():
            raise ValueError(
                f"base_bias must hold {nv} finite numbers. Received: base_bias.shape={bA.shape}"
            )
    ops = get_ops(ops)
    rng = ops.make_rng(int(check_random_state(random_state).randint(2**31 - 1)))

    # Z_A: the hidden units of the base model have no weights and no biases (a factor 2 each).
    if visible == "gaussian":
        log_z_base = 0.5 * nv * _LOG_2PI + nh * _LOG2
    else:
        log_z_base = float(_softplus(bA).sum()) + nh * _LOG2
    log_w = np.asarray(
        ops.to_numpy(
            ops.rbm_ais_log_weights(
                ops.asarray(W, dtype=dtype),
                ops.asarray(bh, dtype=dtype),
                ops.asarray(bv, dtype=dtype),
                ops.asarray(bA, dtype=dtype),
                beta_arr,
                n_runs=int(n_runs),
                visible=visible,
                rng=rng,
            )
        ),
        dtype=np.float64,
    )
    if not np.all(np.isfinite(log_w)):
        raise FloatingPointError(
            "AIS produced non-finite importance weights; check the model's parameters."
        )

    peak = float(log_w.max())
    w = np.exp(log_w - peak)
    mean_w = float(w.mean())
    std_w = float(w.std(ddof=1))
    se = std_w / math.sqrt(n_runs)
    log_z = log_z_base + peak + math.log(mean_w)
    log_z_std = se / mean_w
    upper = log_z_base + peak + math.log(mean_w + 3 * se)
    lower = (
        log_z_base + peak + math.log(mean_w - 3 * se) if mean_w > 3 * se else -math.inf
    )
    ess = float(w.sum() ** 2 / (w * w).sum())
    return AISResult(
        log_z=float(log_z),
        log_z_std=float(log_z_std),
        log_z_interval=(float(lower), float(upper)),
        log_z_base=float(log_z_base),
        log_weights=log_w,
        betas=beta_arr,
        effective_sample_size=ess,
    )


def rbm_log_likelihood(
    X: Any,
    W: Any,
    bh: Any,
    bv: Any,
    visible: str = "bernoulli",
    *,
    log_z: float,
    ops: Any = None,
) -> np.ndarray:
    """``log p(x) = -F(x) - log Z`` per row of ``X`` (float64), given ``log Z``.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_visible)
        Visible vectors (binary for Bernoulli units).
    W, bh, bv : array-like
        The RBM's parameters (see :func:`rbm_log_partition_exact`).
    visible : {"bernoulli", "gaussian"}, default="bernoulli"
        Visible unit type.  Gaussian densities are per unit volume.
    log_z : float
        The log-partition function (exact or from AIS).
    ops : Ops or str, optional
        Backend for the free energies.

    Returns
    -------
    log_px : ndarray of shape (n_samples,)
    """
    from .backends import get_ops

    visible = _check_visible(visible)
    W, bh, bv = _check_params(W, bh, bv)
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != W.shape[1]:
        raise ValueError(
            f"X must have shape (n, {W.shape[1]}). Received: X.shape={X.shape}"
        )
    if not isinstance(log_z, numbers.Real) or not math.isfinite(log_z):
        raise ValueError(f"log_z must be a finite number. Received: log_z={log_z!r}")
    ops = get_ops(ops)
    dtype = W.dtype if W.dtype in (np.float32, np.float64) else np.float64
    fe = ops.rbm_free_energy(
        ops.asarray(X, dtype=dtype),
        ops.asarray(W, dtype=dtype),
        ops.asarray(bh, dtype=dtype),
        ops.asarray(bv, dtype=dtype),
        visible,
    )
    return -np.asarray(ops.to_numpy(fe), dtype=np.float64) - float(log_z)
