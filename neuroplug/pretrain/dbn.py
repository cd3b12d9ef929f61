"""The ``"dbn"`` pretrainer: dense layers initialised greedily from a stack of RBMs.

An RBM's hidden probabilities ``sigmoid(v W^T + bh)`` are exactly what a
dense layer with weights ``W^T`` (shape ``(n_in, n_out)``) and bias ``bh``
followed by a sigmoid computes.  This pretrainer trains one RBM per hidden
dense layer, each on the hidden probabilities of the one below (a deep
belief net, Hinton, Osindero & Teh 2006), and copies the weights in.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np
from sklearn.base import _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions

from ..models.engine import TrainingDivergedError
from ..models.rbm import init_rbm, rbm_hidden_means, train_rbm
from .base import (
    Pretrainer,
    as_activation,
    check_pretrain_input,
    check_rows,
    dense_run,
    fit_units,
    fold_input_affine,
    layer_inputs,
    pre_activations,
    unit_activation,
)

__all__ = ["DBNPretrainer", "dense_run"]

#: Automatic RBM learning rate for Bernoulli visible and hidden units (Hinton's practical guide).
AUTO_RATE = 0.1
#: Automatic rate for Gaussian visible or rectified linear hidden units, whose statistics are unbounded.
AUTO_RATE_REAL = 0.01


class DBNPretrainer(Pretrainer):
    """Initialise the leading hidden dense layers of a network from a greedily trained RBM stack (``"dbn"``).

    The inputs of the first hidden dense layer, ``network.forward(X,
    stop=i)`` flattened, are the data of the first RBM; each next RBM learns
    from what the network computes with the layers below already
    initialised (for sigmoid layers: the hidden probabilities of the RBM
    below).  Dense layer ``j`` of the run then gets ``W = components_.T``
    and ``b = intercept_hidden_`` of RBM ``j``, so the network computes the
    stack's features.

    **The units fit the layer.**  A layer followed by a ReLU is pretrained
    with noisy rectified linear hidden units (Nair & Hinton 2010), whose
    mean a ReLU computes exactly; a layer followed by a tanh too (graded
    units for a graded layer; the layer is then centred, see below); a
    layer followed by a sigmoid with the classic binary units.  Sigmoid
    units copied into a tanh layer (``hidden="bernoulli"``) become ``W / 2,
    b / 2`` (``tanh(x / 2) = 2 sigmoid(x) - 1``).  Inputs in ``[0, 1]`` are Bernoulli visible units, inputs in
    ``[-1, 1]`` (tanh outputs) become ``(x + 1) / 2``, other inputs
    (ReLU features) are standardised for Gaussian visible units; every such
    input transformation is folded into the layer's weights.  After the
    copy each layer is checked on (up to 1,000 rows of) ``X`` and fixed
    data-dependently so that fine-tuning starts alive (see
    :func:`neuroplug.pretrain.base.fit_units`): a ReLU layer is rescaled to
    the spread of its initial outputs and dead units are re-centred,
    saturated sigmoid or tanh units are re-centred.

    The run starts at the first dense layer and continues through dense
    layers separated only by layers without parameters; the network's
    output layer (its last layer with parameters) keeps its initial weights.

    **Convolution layers** before the run are not pretrained: they keep
    their initial (random) weights and the first RBM learns from the
    features they compute.  Use the ``"cdbn"`` pretrainer to pretrain
    convolution layers with convolutional RBMs.

    Parameters
    ----------
    visible : {"auto", "bernoulli", "gaussian"}, default="auto"
        Visible units of the first RBM.  ``"bernoulli"`` needs the first
        dense layer's inputs in ``[0, 1]`` (pixels, sigmoid outputs).
        ``"gaussian"`` standardises every input feature over ``X`` and
        folds the standardisation into the first dense layer's weights and
        bias, so that the layer computes the RBM's hidden pre-activations on
        the raw inputs.  ``"auto"``: Bernoulli when the inputs lie in
        ``[0, 1]`` (or, as ``(x + 1) / 2``, in ``[-1, 1]``), else Gaussian.
        Higher RBMs always choose automatically.
    hidden : {"auto", "bernoulli", "relu"}, default="auto"
        Hidden units of the RBMs: ``"relu"`` for noisy rectified linear
        units (CD-k only: ``persistent`` and ``sample_visible`` then do not
        apply), ``"bernoulli"`` for sigmoid units, ``"auto"`` for ReLU units
        under layers followed by a ReLU or a tanh and sigmoid units
        elsewhere.
    k : int, default=1
        Gibbs steps of CD-k / PCD-k.
    persistent : bool, default=False
        Persistent contrastive divergence.
    sample_visible : bool, default=False
        Negative chains on binary visible samples instead of probabilities
        (see :class:`~neuroplug.estimators.RBM`) in the RBMs with Bernoulli
        visible units; a Gaussian first RBM keeps its means.
    learning_rate : float or "auto", default="auto"
        RBM step size.  ``"auto"``: 0.1 for Bernoulli visible and hidden
        units, 0.01 for Gaussian visible or rectified linear hidden units
        (their statistics are unbounded), tried again ten and a hundred
        times lower if an RBM diverges.  A number is used as it is, and a
        divergence is an error that names this parameter.
    momentum : float, default=0.5
        RBM momentum.
    weight_decay : float, default=0.002
        L2 penalty on the RBM weights.
    batch_size : int, default=10
        Rows per RBM mini-batch (small batches, many updates: on MNIST
        they make better features for classification than the
        likelihood-oriented defaults of :class:`~neuroplug.estimators.RBM`).
    max_iter : int, default=5
        Epochs per RBM.
    fix_units : bool, default=True
        Check every pretrained layer on (up to 1,000 rows of) ``X`` after the
        copy and fix it data-dependently so fine-tuning starts alive (see
        :func:`neuroplug.pretrain.base.fit_units`); ``False`` copies the
        pretrained weights exactly (to study the pretrained features).
    init : {"auto", "network", "small"}, default="auto"
        Initial weights of each RBM: ``"network"`` starts from the layer's
        own (random) initial weights, whose diversity keeps the hidden units
        from learning the same features; ``"small"`` from ``N(0, 0.01^2)``
        as in Hinton's practical guide and
        :class:`~neuroplug.estimators.RBM`; ``"auto"``: ``"small"`` for
        layers followed by a sigmoid (the classic deep belief net; on the
        digits benchmark it scored higher there), ``"network"`` elsewhere.

    Attributes
    ----------
    units_ : list of (str, str)
        ``(visible, hidden)`` units of each RBM the last :meth:`pretrain`
        trained.
    learning_rates_ : list of float
        The learning rate each RBM trained with.
    active_fraction_ : list of float
        Per pretrained layer, the fraction of its units alive on the checked
        rows after the transfer (see
        :func:`neuroplug.pretrain.base.fit_units`). ``nan`` with ``fix_units=False``.

    References
    ----------
    G. E. Hinton, S. Osindero and Y.-W. Teh. A fast learning algorithm for
    deep belief nets. Neural Computation 18, 2006.
    V. Nair and G. E. Hinton. Rectified linear units improve restricted
    Boltzmann machines. ICML 2010.

    Examples
    --------
    >>> import numpy as np
    >>> from neuroplug.backends import get_ops
    >>> from neuroplug.layers.dense import Dense
    >>> from neuroplug.layers.activations import Sigmoid
    >>> from neuroplug.network import Network
    >>> from neuroplug.pretrain.dbn import DBNPretrainer
    >>> X = (np.random.default_rng(0).random((100, 16)) < 0.3).astype(np.float32)
    >>> net = Network([Dense(8), Sigmoid(), Dense(3)], (16,), get_ops("numpy"), rng=0)
    >>> DBNPretrainer(max_iter=2).pretrain(net, X, random_state=0)
    """

    def __init__(
        self,
        *,
        visible: str = "auto",
        k: int = 1,
        persistent: bool = False,
        sample_visible: bool = False,
        learning_rate: float | str = "auto",
        momentum: float = 0.5,
        weight_decay: float = 0.002,
        batch_size: int = 10,
        max_iter: int = 5,
        hidden: str = "auto",
        fix_units: bool = True,
        init: str = "auto",
    ) -> None:
        self.visible = visible
        self.hidden = hidden
        self.fix_units = fix_units
        self.init = init
        self.k = k
        self.persistent = persistent
        self.sample_visible = sample_visible
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.max_iter = max_iter

    _parameter_constraints: dict = {
        "visible": [StrOptions({"auto", "bernoulli", "gaussian"})],
        "k": [Interval(numbers.Integral, 1, None, closed="left")],
        "persistent": ["boolean"],
        "sample_visible": ["boolean"],
        "learning_rate": [
            Interval(numbers.Real, 0, None, closed="neither"),
            StrOptions({"auto"}),
        ],
        "hidden": [StrOptions({"auto", "bernoulli", "relu"})],
        "fix_units": ["boolean"],
        "init": [StrOptions({"auto", "network", "small"})],
        "momentum": [Interval(numbers.Real, 0, 1, closed="left")],
        "weight_decay": [Interval(numbers.Real, 0, None, closed="left")],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
    }

    def _rates(self, visible: str, hidden: str) -> list[float]:
        """The learning rates to try for one RBM: the user's, or the automatic one and two tenfold lower."""
        if not (isinstance(self.learning_rate, str) and self.learning_rate == "auto"):
            return [float(self.learning_rate)]
        first = (
            AUTO_RATE
            if visible == "bernoulli" and hidden == "bernoulli"
            else AUTO_RATE_REAL
        )
        return [first, first / 10, first / 100]

    @_fit_context(prefer_skip_nested_validation=True)
    def pretrain(
        self, network: Any, X: Any, *, random_state: Any = None, verbose: int = 0
    ) -> None:
        """Train one RBM per hidden dense layer, bottom up, and copy their weights into the layers.

        Parameters
        ----------
        network : neuroplug.network.Network
            An initialised network; its hidden dense layers are overwritten
            in place.
        X : ndarray of shape (n_samples,) + network.input_shape
            Training inputs (labels are not used).
        random_state : int, RandomState instance or None, default=None
            Seeds the RBMs.
        verbose : int, default=0
            Show the RBMs' progress bars.
        """
        X = check_pretrain_input(network, X)
        run = dense_run(list(network.layers))
        if not run:
            warnings.warn(
                "The 'dbn' pretrainer found no hidden dense layer to initialise (the last layer with "
                "parameters is the output layer and is never pretrained); the network is unchanged.",
                UserWarning,
                stacklevel=2,
            )
            return
        rs = check_random_state(random_state)
        ops, layers = network.ops, network.layers
        sample = check_rows(X)
        self.units_: list[tuple[str, str]] = []
        self.learning_rates_: list[float] = []
        self.active_fraction_: list[float] = []
        inputs = layer_inputs(network, X, run[0], network.dtype)
        for j, i in enumerate(run):
            activation = unit_activation(layers, i)
            hidden = self.hidden
            if hidden == "auto":
                # Graded units for graded layers: tanh trains from NReLU features (measured on digits:
                # better than from binary ones); sigmoid layers get the classic binary units.
                hidden = "relu" if activation in ("relu", "tanh") else "bernoulli"
            visible, shift, scale = self._visible_units(inputs, i, first=j == 0)
            data = (
                inputs
                if shift is None
                else ((inputs - shift) / scale).astype(network.dtype)
            )
            n_units = int(layers[i].params["b"].shape[0])
            seed = check_random_state(rs.randint(2**31 - 1)).randint(2**31 - 1)
            rates = self._rates(visible, hidden)
            # The layer's own initial weights, as an RBM on the transformed data sees them.
            initial = np.array(layers[i].get_weights()["W"], dtype=np.float64).T
            if shift is not None:
                initial = initial * scale[None, :]
            for attempt, rate in enumerate(rates):
                rng = np.random.default_rng(seed)
                state = init_rbm(
                    n_units,
                    data.sum(axis=0, dtype=np.float64) / data.shape[0],
                    visible,
                    network.dtype,
                    rng,
                )
                if self.init == "network" or (
                    self.init == "auto" and activation != "sigmoid"
                ):
                    state.W = initial.astype(network.dtype)
                try:
                    state, _ = train_rbm(
                        state,
                        data,
                        ops=ops,
                        rng=rng,
                        n_epochs=int(self.max_iter),
                        visible=visible,
                        k=int(self.k),
                        persistent=bool(self.persistent) and hidden == "bernoulli",
                        sample_visible=bool(self.sample_visible)
                        and visible == "bernoulli"
                        and hidden == "bernoulli",
                        learning_rate=rate,
                        momentum=float(self.momentum),
                        weight_decay=float(self.weight_decay),
                        batch_size=int(self.batch_size),
                        verbose=verbose,
                        hidden=hidden,
                        name=f"dbn pretrainer, RBM {j + 1} ({visible} visible, {hidden} hidden units)",
                        advice=(
                            "Try a lower learning rate for the RBMs: "
                            f"pretrainer=DBNPretrainer(learning_rate=...) (it was {rate:g})."
                        ),
                    )
                    break
                except TrainingDivergedError:
                    if attempt + 1 == len(rates):
                        raise
            self.units_.append((visible, hidden))
            self.learning_rates_.append(rate)
            W = state.W.T.astype(np.float64)
            b = state.bh.astype(np.float64)
            if shift is not None:
                W, b = fold_input_affine(W, b, shift, scale)
            W, b = as_activation(W, b, activation if hidden == "bernoulli" else None)
            reference = pre_activations(network, sample, i)
            W, b = W.astype(network.dtype), b.astype(network.dtype)
            layers[i].set_weights({"W": W, "b": b})
            self.active_fraction_.append(
                fit_units(network, i, sample, reference)
                if self.fix_units
                else float("nan")
            )
            if j + 1 < len(run):
                between = layers[i + 1 : run[j + 1]]
                if (
                    activation == "sigmoid"
                    and hidden == "bernoulli"
                    and np.array_equal(layers[i].get_weights()["b"], b)
                    and all(
                        type(layer).__name__ in ("Sigmoid", "Dropout")
                        for layer in between
                    )
                ):
                    # The layer computes the RBM's hidden probabilities: the next RBM learns from them.
                    inputs = rbm_hidden_means(ops, data, state.W, state.bh)
                else:
                    inputs = layer_inputs(network, X, run[j + 1], network.dtype)

    def _visible_units(
        self, inputs: np.ndarray, i: int, *, first: bool
    ) -> tuple[str, Any, Any]:
        """``(units, shift, scale)`` of an RBM learning from ``inputs``: data are ``(inputs - shift) / scale``.

        Inputs in ``[0, 1]`` are Bernoulli probabilities as they are; inputs
        in ``[-1, 1]`` (tanh units) become the probabilities ``(x + 1) / 2``;
        others are standardised for Gaussian visible units.
        """
        low, high = float(inputs.min()), float(inputs.max())
        visible = self.visible if first else "auto"
        if visible == "bernoulli" and (low < 0 or high > 1):
            raise ValueError(
                f"visible='bernoulli' needs the inputs of dense layer {i} in [0, 1]; use visible='auto' "
                f"or 'gaussian'. Received: inputs with min={low:g}, max={high:g}"
            )
        if visible == "auto":
            if low >= 0 and high <= 1:
                return "bernoulli", None, None
            if low >= -1 and high <= 1:
                n = inputs.shape[1]
                return "bernoulli", np.full(n, -1.0), np.full(n, 2.0)
            visible = "gaussian"
        if visible == "bernoulli":
            return "bernoulli", None, None
        mean = inputs.mean(axis=0, dtype=np.float64)
        scale = inputs.std(axis=0, dtype=np.float64)
        # A floor: dividing a nearly constant feature (a ReLU that almost never fires) by its tiny
        # spread would give the folded layer huge weights that only unseen inputs excite.
        floor = 0.1 * float(scale.mean())
        scale = np.maximum(scale, floor) if floor > 0 else np.ones_like(scale)
        return "gaussian", mean, scale
