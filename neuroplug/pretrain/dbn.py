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

from ..models.rbm import init_rbm, rbm_hidden_probs, train_rbm
from .base import Pretrainer, check_pretrain_input, dense_run, layer_inputs

__all__ = ["DBNPretrainer", "dense_run"]


class DBNPretrainer(Pretrainer):
    """Initialise the leading hidden dense layers of a network from a greedily trained RBM stack (``"dbn"``).

    The inputs of the first hidden dense layer, ``network.forward(X,
    stop=i)`` flattened, are the data of the first RBM; each next RBM learns
    from the hidden probabilities of the previous one.  Dense layer ``j`` of
    the run then gets ``W = components_.T`` and ``b = intercept_hidden_`` of
    RBM ``j``, so the network computes the stack's features when its dense
    layers are followed by sigmoids (the usual DBN classifier; other
    activations still start from the RBM weights, which then serve only as
    an initialisation).

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
        ``[0, 1]``, else Gaussian.
    k : int, default=1
        Gibbs steps of CD-k / PCD-k.
    persistent : bool, default=False
        Persistent contrastive divergence.
    sample_visible : bool, default=False
        Negative chains on binary visible samples instead of probabilities
        (see :class:`~neuroplug.estimators.RBM`) in the RBMs with Bernoulli
        visible units; a Gaussian first RBM keeps its means.
    learning_rate : float, default=0.1
        RBM step size.
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
        learning_rate: float = 0.1,
        momentum: float = 0.5,
        weight_decay: float = 0.002,
        batch_size: int = 10,
        max_iter: int = 5,
    ) -> None:
        self.visible = visible
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
        "learning_rate": [Interval(numbers.Real, 0, None, closed="neither")],
        "momentum": [Interval(numbers.Real, 0, 1, closed="left")],
        "weight_decay": [Interval(numbers.Real, 0, None, closed="left")],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
    }

    @_fit_context(prefer_skip_nested_validation=True)
    def pretrain(self, network: Any, X: Any, *, random_state: Any = None, verbose: int = 0) -> None:
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
                UserWarning, stacklevel=2,
            )
            return
        rs = check_random_state(random_state)
        data = layer_inputs(network, X, run[0], network.dtype)
        low, high = float(data.min()), float(data.max())
        visible = self.visible
        if visible == "auto":
            visible = "bernoulli" if low >= 0 and high <= 1 else "gaussian"
        elif visible == "bernoulli" and (low < 0 or high > 1):
            raise ValueError(
                f"visible='bernoulli' needs the inputs of dense layer {run[0]} in [0, 1]; use visible='auto' "
                f"or 'gaussian'. Received: inputs with min={low:g}, max={high:g}"
            )
        mean = scale = None
        if visible == "gaussian":
            mean = data.mean(axis=0, dtype=np.float64)
            scale = data.std(axis=0, dtype=np.float64)
            scale[scale < 1e-8] = 1.0
            data = ((data - mean) / scale).astype(network.dtype)

        inputs = data
        ops = network.ops
        weights: list[tuple[np.ndarray, np.ndarray]] = []
        for j, i in enumerate(run):
            n_units = int(network.layers[i].params["b"].shape[0])
            units = visible if j == 0 else "bernoulli"
            rng = np.random.default_rng(check_random_state(rs.randint(2**31 - 1)).randint(2**31 - 1))
            state = init_rbm(n_units, inputs.sum(axis=0, dtype=np.float64) / inputs.shape[0], units,
                             network.dtype, rng)
            state, _ = train_rbm(
                state, inputs, ops=ops, rng=rng, n_epochs=int(self.max_iter), visible=units, k=int(self.k),
                persistent=bool(self.persistent), sample_visible=bool(self.sample_visible) and units == "bernoulli",
                learning_rate=float(self.learning_rate), momentum=float(self.momentum),
                weight_decay=float(self.weight_decay), batch_size=int(self.batch_size), verbose=verbose,
                name=f"dbn pretrainer, RBM {j + 1}",
                advice=(f"Try a lower learning rate for the RBMs: pretrainer=DBNPretrainer(learning_rate=...) "
                        f"(it was {self.learning_rate:g})."),
            )
            W = state.W.T.astype(np.float64)
            b = state.bh.astype(np.float64)
            if j == 0 and scale is not None:
                # x' = (x - mean) / scale, so x' W + b = x (W / scale) + (b - (mean / scale) W).
                W = W / scale[:, None]
                b = b - (mean / scale) @ (state.W.T.astype(np.float64))
            weights.append((W, b))
            if j + 1 < len(run):
                inputs = rbm_hidden_probs(ops, inputs, state.W, state.bh)
        for i, (W, b) in zip(run, weights):
            network.layers[i].set_weights({"W": W.astype(network.dtype), "b": b.astype(network.dtype)})
