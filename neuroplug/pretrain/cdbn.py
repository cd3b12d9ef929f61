"""The ``"cdbn"`` pretrainer: convolutional layers initialised greedily from convolutional RBMs.

A convolutional deep belief net (Lee, Grosse, Ranganath & Ng, ICML 2009) is
trained one layer at a time: a convolutional RBM with probabilistic
max-pooling on the images, then another on the pooling-layer probabilities
of the first, and so on.  Its filters have exactly the shape of a
:class:`~neuroplug.layers.conv.Conv2D` layer's ``W``, so they (and the
hidden biases, as ``b``) initialise the leading convolutions of a CNN before
supervised training.  Pretraining needs no labels: a semi-supervised
estimator hands it every image, labelled or not.

The CD training loop it shares with the :class:`~neuroplug.estimators.ConvRBM`
and :class:`~neuroplug.estimators.ConvDBN` estimators lives in
:mod:`neuroplug.models.crbm`; all of it computes through the network's ``Ops``.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np
from sklearn.base import _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Hidden, Interval, StrOptions

from ..layers.conv import Conv2D
from ..layers.pool import MaxPool2D, Pool2D
from ..models.crbm import FORWARD_BATCH as _FORWARD_BATCH
from ..models.crbm import crbm_pool_output, train_crbm
from ..models.engine import TrainingDivergedError
from ..ops import normalize_padding, normalize_pair
from .base import (
    Pretrainer,
    as_activation,
    check_rows,
    fit_units,
    pre_activations,
    unit_activation,
)

__all__ = ["CDBNPretrainer", "renamed_n_iter"]


# ---------------------------------------------------------------------------
# The deprecated n_iter name, shared with the ConvRBM and ConvDBN estimators
# ---------------------------------------------------------------------------
def _n_iter_is_set(estimator: Any) -> bool:
    """Whether the deprecated ``n_iter`` was given (its default is the string ``"deprecated"``)."""
    return not (isinstance(estimator.n_iter, str) and estimator.n_iter == "deprecated")


def renamed_n_iter(estimator: Any) -> Any:
    """The epoch count: ``max_iter``, or ``n_iter`` (its old name, with a FutureWarning) when set."""
    if not _n_iter_is_set(estimator):
        return estimator.max_iter
    warnings.warn(
        f"{type(estimator).__name__}: n_iter is deprecated and will be removed in neuroplug 0.3; it was "
        f"renamed max_iter, as in every other neuroplug estimator. This fit uses n_iter={estimator.n_iter!r}; "
        "pass max_iter instead.",
        FutureWarning,
        stacklevel=3,
    )
    return estimator.n_iter


# ---------------------------------------------------------------------------
# The pretrainer
# ---------------------------------------------------------------------------
def _is_passthrough(
    layer: Any, shape_in: tuple[int, ...], shape_out: tuple[int, ...]
) -> bool:
    """A layer without parameters that keeps the shape (activation, dropout, noise, LRN...)."""
    return not getattr(layer, "params", None) and tuple(shape_in) == tuple(shape_out)


def _conv_config(layer: Conv2D) -> dict[str, Any]:
    """The convolution arguments of a Conv2D layer, from its hyper-parameters."""
    kernel = normalize_pair(layer.kernel_size, "kernel_size")
    conn = layer.connections
    return {
        "kernel": kernel,
        "stride": normalize_pair(layer.stride, "stride"),
        "padding": normalize_padding(layer.padding, kernel),
        "groups": int(layer.groups),
        "connections": None if conn is None else np.asarray(conn).astype(bool),
    }


#: Automatic CD step size for Bernoulli visible units.
AUTO_RATE = 0.2
#: Automatic CD step size for Gaussian visible units (unbounded statistics).
AUTO_RATE_GAUSSIAN = 0.02


def _fold_conv_input(
    W: np.ndarray, b: np.ndarray, shift: np.ndarray, scale: np.ndarray, groups: int
) -> tuple[np.ndarray, np.ndarray]:
    """Filters learnt on ``x' = (x - shift) / scale`` (per input channel), rewritten to act on the raw ``x``.

    Exact wherever the kernel does not overlap the zero padding.
    """
    filters, cg = W.shape[0], W.shape[1]
    per_group = filters // groups
    # Input channel of filter f's slice c: (f // per_group) * cg + c.
    channel = (np.arange(filters)[:, None] // per_group) * cg + np.arange(cg)[None, :]
    W = W.astype(np.float64) / scale[channel][:, :, None, None]
    b = b.astype(np.float64) - np.einsum("fchw,fc->f", W, shift[channel])
    return W, b


def _forward(network: Any, X: np.ndarray, stop: int) -> np.ndarray:
    """``network.forward(X, stop=stop)`` in batches, as C-contiguous NumPy of the network's dtype."""
    ops = network.ops
    out = []
    for start in range(0, X.shape[0], _FORWARD_BATCH):
        xb = ops.asarray(X[start : start + _FORWARD_BATCH], dtype=network.dtype)
        out.append(np.asarray(ops.to_numpy(network.forward(xb, stop=stop))))
    return np.ascontiguousarray(np.concatenate(out, axis=0), dtype=network.dtype)


class CDBNPretrainer(Pretrainer):
    """Initialise the leading convolutional layers from a convolutional DBN (``"cdbn"``).

    The network's layers are walked from the input.  Each
    :class:`~neuroplug.layers.conv.Conv2D` layer gets the filters ``W`` and
    hidden biases ``b`` of a convolutional RBM trained by CD-k (with the
    layer's own kernel size, stride, padding, groups and connection table)
    on that layer's input representation:

    * layer 1 learns from the images ``X``;
    * between two convolutions, layers without parameters that keep the
      shape (activations, dropout, ...) are skipped, because the
      representation is already a probability; when they include exactly
      one non-overlapping max pooling (``stride == size``), the RBM below
      uses probabilistic max-pooling with that block size and the next RBM
      learns from its pooling-layer probabilities (cropped to the max
      pooling's output size where a partial block is dropped), as in Lee et
      al. 2009.  Any other pooling (mean, overlapping, several in a row) is
      not a probabilistic max-pooling: that RBM uses independent detection
      units and the next one learns from the network's own pooling layers
      applied to its detection probabilities.

    **The units fit the layer.**  The filters of a layer followed by a tanh
    are copied in as ``W / 2, b / 2`` (``tanh(x / 2) = 2 sigmoid(x) - 1``).
    When the layer below is not a sigmoid (ReLU or tanh features), the next
    RBM learns from what the network computes, standardised per channel for
    Gaussian visible units, and the standardisation is folded into the
    filters.  After each copy the layer is checked on (up to 1,000 of) the
    images and fixed data-dependently so that fine-tuning starts alive (see
    :func:`neuroplug.pretrain.base.fit_units`): a ReLU layer is rescaled to
    the spread of its initial outputs and dead channels (the sparsity
    target makes hidden biases negative) are re-centred; saturated sigmoid
    or tanh channels are re-centred.

    The walk stops at the first layer that is neither of these (a dense or
    flatten layer, or any other layer with parameters): that layer and every
    layer after it, convolutional or not, are left as initialised (combine
    with a dense pretrainer such as ``"dbn"`` by pretraining them yourself).
    A network with no convolution before such a layer is refused.

    Parameters
    ----------
    max_iter : int, default=5
        CD epochs per layer.
    learning_rate : float or "auto", default="auto"
        CD step size (gradients are averages over samples and positions).
        ``"auto"``: 0.2 for Bernoulli visible units, 0.02 for Gaussian ones,
        tried again ten and a hundred times lower if an RBM diverges.  A
        number is used as it is, and a divergence is an error that names
        this parameter.
    k : int, default=1
        Gibbs steps per update.
    momentum : float, default=0.9
        Momentum of the CD updates.
    weight_decay : float, default=1e-4
        L2 penalty on the filters.
    sparsity_target : float, default=0.05
        Target mean probability of the detection units.
    sparsity_cost : float, default=0.5
        Strength of the sparsity penalty (0 turns it off).
    batch_size : int, default=20
        Images per CD update.
    visible : {"auto", "bernoulli", "gaussian"}, default="auto"
        Visible units of the first RBM: ``"auto"`` picks Bernoulli when
        every input lies in ``[0, 1]`` (pixels), else Gaussian (unit
        variance: standardise such inputs).  Higher RBMs are Bernoulli.
    max_samples : int or None, default=None
        Pretrain on at most this many images (a random subset), to bound the
        cost on large data sets.
    fix_units : bool, default=True
        Check every pretrained layer on (up to 1,000 rows of) ``X`` after the
        copy and fix it data-dependently so fine-tuning starts alive (see
        :func:`neuroplug.pretrain.base.fit_units`); ``False`` copies the
        pretrained weights exactly (to study the pretrained features).
    init : {"network", "small"}, default="network"
        Initial filters of each RBM: ``"network"`` starts from the layer's
        own (random) initial filters, whose diversity keeps the filters from
        collapsing onto the mean patch on small data (the pretraining guide
        has the measurement);
        ``"small"`` from ``N(0, 0.01^2)`` as in Hinton's practical guide and
        :class:`~neuroplug.estimators.ConvRBM`.
    n_iter : int, default="deprecated"
        Former name of ``max_iter``; when set, it is used with a
        ``FutureWarning``.  It will be removed in neuroplug 0.3.

    Attributes
    ----------
    pretrained_layers_ : list of int
        Indices (in ``network.layers``) of the layers the last
        :meth:`pretrain` call initialised.
    reconstruction_errors_ : list of list of float
        Per pretrained layer, the reconstruction error of each epoch.
    learning_rates_ : list of float
        The learning rate each RBM trained with.
    active_fraction_ : list of float
        Per pretrained layer, the fraction of its channels alive on the
        checked images after the transfer. ``nan`` with ``fix_units=False``.

    References
    ----------
    H. Lee, R. Grosse, R. Ranganath and A. Y. Ng. Convolutional deep belief
    networks for scalable unsupervised learning of hierarchical
    representations. ICML 2009.

    Examples
    --------
    >>> import numpy as np
    >>> from neuroplug.backends import get_ops
    >>> from neuroplug.layers.conv import Conv2D
    >>> from neuroplug.layers.pool import MaxPool2D
    >>> from neuroplug.layers.activations import ReLU
    >>> from neuroplug.layers.dense import Dense
    >>> from neuroplug.network import Network
    >>> from neuroplug.pretrain.cdbn import CDBNPretrainer
    >>> X = (np.random.default_rng(0).random((40, 1, 10, 10)) < 0.3).astype(np.float32)
    >>> net = Network([Conv2D(4, 3), ReLU(), MaxPool2D(2), Conv2D(6, 2), ReLU(), Dense(3)],
    ...               (1, 10, 10), get_ops("numpy"), rng=0)
    >>> pre = CDBNPretrainer(max_iter=1)
    >>> pre.pretrain(net, X, random_state=0)
    >>> pre.pretrained_layers_
    [0, 3]
    """

    def __init__(
        self,
        *,
        max_iter: int = 5,
        learning_rate: float | str = "auto",
        k: int = 1,
        momentum: float = 0.9,
        weight_decay: float = 1e-4,
        sparsity_target: float = 0.05,
        sparsity_cost: float = 0.5,
        batch_size: int = 20,
        visible: str = "auto",
        max_samples: int | None = None,
        n_iter: Any = "deprecated",
        fix_units: bool = True,
        init: str = "network",
    ) -> None:
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.k = k
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.sparsity_target = sparsity_target
        self.sparsity_cost = sparsity_cost
        self.batch_size = batch_size
        self.visible = visible
        self.max_samples = max_samples
        self.n_iter = n_iter
        self.fix_units = fix_units
        self.init = init

    _parameter_constraints: dict = {
        "max_iter": [Interval(numbers.Integral, 0, None, closed="left")],
        "learning_rate": [
            Interval(numbers.Real, 0, None, closed="neither"),
            StrOptions({"auto"}),
        ],
        "k": [Interval(numbers.Integral, 1, None, closed="left")],
        "momentum": [Interval(numbers.Real, 0, 1, closed="left")],
        "weight_decay": [Interval(numbers.Real, 0, None, closed="left")],
        "sparsity_target": [Interval(numbers.Real, 0, 1, closed="neither")],
        "sparsity_cost": [Interval(numbers.Real, 0, None, closed="left")],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "visible": [StrOptions({"auto", "bernoulli", "gaussian"})],
        "max_samples": [None, Interval(numbers.Integral, 1, None, closed="left")],
        "fix_units": ["boolean"],
        "init": [StrOptions({"network", "small"})],
        "n_iter": [
            Hidden(StrOptions({"deprecated"})),
            Interval(numbers.Integral, 0, None, closed="left"),
        ],
    }

    def _plan(
        self, network: Any
    ) -> list[tuple[int, tuple[int, int], list[int], int | None]]:
        """``(conv index, pool block, pooling layer indices, next conv index or None)`` per RBM."""
        layers, shapes = network.layers, network.shapes
        plan: list[tuple[int, tuple[int, int], list[int], int | None]] = []
        i = 0
        while i < len(layers):
            layer = layers[i]
            if isinstance(layer, Conv2D):
                j, pools = i + 1, []
                while (
                    j < len(layers)
                    and not isinstance(layers[j], Conv2D)
                    and (
                        isinstance(layers[j], Pool2D)
                        or _is_passthrough(layers[j], shapes[j], shapes[j + 1])
                    )
                ):
                    if isinstance(layers[j], Pool2D):
                        pools.append(j)
                    j += 1
                block = (1, 1)
                if len(pools) == 1 and isinstance(layers[pools[0]], MaxPool2D):
                    pool_layer = layers[pools[0]]
                    size = normalize_pair(pool_layer.size, "size")
                    stride = (
                        size
                        if pool_layer.stride is None
                        else normalize_pair(pool_layer.stride, "stride")
                    )
                    if size == stride:
                        block = size
                nxt = j if j < len(layers) and isinstance(layers[j], Conv2D) else None
                plan.append((i, block, pools, nxt))
                if nxt is None:
                    break
                i = j
            elif _is_passthrough(layer, shapes[i], shapes[i + 1]):
                i += 1
            else:
                break
        return plan

    @_fit_context(prefer_skip_nested_validation=True)
    def pretrain(
        self, network: Any, X: Any, *, random_state: Any = None, verbose: int = 0
    ) -> None:
        """Initialise ``network``'s leading Conv2D layers in place from ConvRBMs trained on ``X``.

        Parameters
        ----------
        network : neuroplug.network.Network
            An initialised network whose input is images ``(c, h, w)``.
        X : ndarray of shape (n_samples, c, h, w)
            Training images (labelled or not).
        random_state : int, RandomState instance or None, default=None
            Seed of the subsampling, the initial filters, the shuffling and
            the Gibbs samples.
        verbose : int, default=0
            Progress bars per layer.
        """
        if len(network.input_shape) != 3:
            raise ValueError(
                "The 'cdbn' pretrainer needs a network with image input (channels, height, width). "
                f"Received: network.input_shape={tuple(network.input_shape)}"
            )
        X = np.asarray(X)
        if X.ndim != 4 or tuple(X.shape[1:]) != tuple(network.input_shape):
            raise ValueError(
                f"X must have shape (n_samples, *network.input_shape) = (n, {', '.join(map(str, network.input_shape))})."
                f" Received: X.shape={X.shape}"
            )
        if X.shape[0] < 1 or not np.isfinite(X).all():
            raise ValueError(
                f"X must hold at least one image and only finite values. Received: X.shape={X.shape}"
            )
        plan = self._plan(network)
        if not plan:
            names = [type(layer).__name__ for layer in network.layers]
            raise ValueError(
                "The 'cdbn' pretrainer found no Conv2D layer to pretrain: it initialises the convolutions "
                "that come before any dense, flatten or other layer with parameters. Use 'dbn' or 'sbn' for "
                f"dense networks. Received: layers={names}"
            )
        rs = check_random_state(random_state)
        if self.max_samples is not None and X.shape[0] > self.max_samples:
            X = X[np.sort(rs.choice(X.shape[0], self.max_samples, replace=False))]
        ops, layers, shapes = network.ops, network.layers, network.shapes
        data = np.ascontiguousarray(X, dtype=network.dtype)
        visible = self.visible
        if visible == "auto":
            visible = "bernoulli" if data.min() >= 0 and data.max() <= 1 else "gaussian"
        elif visible == "bernoulli" and (data.min() < 0 or data.max() > 1):
            raise ValueError(
                "visible='bernoulli' needs inputs in [0, 1]; use visible='gaussian' (standardised inputs) or "
                f"'auto'. Received: X with values in [{data.min():.4g}, {data.max():.4g}]"
            )
        self.pretrained_layers_: list[int] = []
        self.reconstruction_errors_: list[list[float]] = []
        self.learning_rates_: list[float] = []
        self.active_fraction_: list[float] = []
        sample = check_rows(np.asarray(X))
        shift = scale = None
        for number, (i, block, pools, nxt) in enumerate(plan):
            layer = layers[i]
            activation = unit_activation(layers, i)
            conv = _conv_config(layer)
            units = visible if number == 0 else "bernoulli"
            if number > 0 and (data.min() < 0 or data.max() > 1):
                # ReLU or tanh features below: standardised per channel for Gaussian visible units.
                units = "gaussian"
                shift = data.mean(axis=(0, 2, 3), dtype=np.float64)
                scale = data.std(axis=(0, 2, 3), dtype=np.float64)
                scale = np.maximum(scale, max(0.1 * float(scale.mean()), 1e-8))
                data = (
                    (data - shift[None, :, None, None]) / scale[None, :, None, None]
                ).astype(network.dtype)
            else:
                shift = scale = None
            rates = self._rates(units)
            seed = rs.randint(2**31 - 1)
            for attempt, rate in enumerate(rates):
                try:
                    W, bh, _, report = train_crbm(
                        data,
                        filters=int(layer.params["W"].shape[0]),
                        kernel_size=conv["kernel"],
                        pool_size=block,
                        visible=units,
                        ops=ops,
                        rng=np.random.default_rng(seed),
                        k=int(self.k),
                        learning_rate=rate,
                        momentum=float(self.momentum),
                        weight_decay=float(self.weight_decay),
                        sparsity_target=float(self.sparsity_target),
                        sparsity_cost=float(self.sparsity_cost),
                        batch_size=int(self.batch_size),
                        max_iter=int(renamed_n_iter(self)),
                        stride=conv["stride"],
                        padding=conv["padding"],
                        groups=conv["groups"],
                        connections=conv["connections"],
                        verbose=verbose,
                        desc=f"cdbn layer {i}",
                        init_weights=np.array(
                            layer.get_weights()["W"], dtype=network.dtype
                        )
                        if self.init == "network"
                        else None,
                        advice=(
                            "Try a lower learning rate for the convolutional RBMs: "
                            f"pretrainer=CDBNPretrainer(learning_rate=...) (it was {rate:g})."
                        ),
                    )
                    break
                except TrainingDivergedError:
                    if attempt + 1 == len(rates):
                        raise
            if scale is not None:
                W, bh = _fold_conv_input(W, bh, shift, scale, conv["groups"])
            W, bh = as_activation(W, bh, activation)
            reference = pre_activations(network, sample, i)
            W, bh = W.astype(network.dtype), bh.astype(network.dtype)
            layer.set_weights({"W": W, "b": bh})
            self.active_fraction_.append(
                fit_units(network, i, sample, reference)
                if self.fix_units
                else float("nan")
            )
            self.pretrained_layers_.append(i)
            self.learning_rates_.append(rate)
            self.reconstruction_errors_.append([row["loss"] for row in report.history])
            if nxt is None:
                break
            if (
                scale is None
                and activation in (None, "sigmoid")
                and np.array_equal(layer.get_weights()["b"], bh)
            ):
                # The layer computes the RBM's detection probabilities (or its pre-activations):
                # the next RBM learns from its (probabilistic) pooling, as in Lee et al. 2009.
                data = self._next_input(
                    network, data, i, block, pools, shapes[nxt], conv
                )
            else:
                # Otherwise from what the network, initialised so far, computes.
                data = _forward(network, X, nxt)

    def _rates(self, visible: str) -> list[float]:
        """The learning rates to try for one RBM: the user's, or the automatic one and two tenfold lower."""
        if not (isinstance(self.learning_rate, str) and self.learning_rate == "auto"):
            return [float(self.learning_rate)]
        first = AUTO_RATE if visible == "bernoulli" else AUTO_RATE_GAUSSIAN
        return [first, first / 10, first / 100]

    def _next_input(
        self,
        network: Any,
        data: np.ndarray,
        i: int,
        block: tuple[int, int],
        pools: list[int],
        target: tuple[int, ...],
        conv: dict[str, Any],
    ) -> np.ndarray:
        """The representation the next Conv2D layer is pretrained on (NumPy, shape ``(n, *target)``)."""
        ops, layer = network.ops, network.layers[i]
        kw = {key: conv[key] for key in ("stride", "padding", "groups", "connections")}
        W, b = layer.params["W"], layer.params["b"]
        if block != (1, 1):
            pooled = crbm_pool_output(ops, data, W, b, block, **kw)
            # The network's max pooling floors: drop the partial blocks it drops.
            result = np.ascontiguousarray(pooled[:, :, : target[1], : target[2]])
        else:
            hidden = crbm_pool_output(ops, data, W, b, (1, 1), hidden=True, **kw)
            out = []
            for start in range(0, hidden.shape[0], _FORWARD_BATCH):
                h = ops.asarray(hidden[start : start + _FORWARD_BATCH])
                for j in pools:
                    h = network.layers[j].forward(h, training=False)
                out.append(np.asarray(ops.to_numpy(h)))
            result = np.ascontiguousarray(
                np.concatenate(out, axis=0), dtype=network.dtype
            )
        if tuple(result.shape[1:]) != tuple(
            target
        ):  # pragma: no cover - the plan only keeps shape-preserving layers
            raise RuntimeError(
                f"cdbn: representation {result.shape[1:]} does not match the next layer's input {target}"
            )
        return result
