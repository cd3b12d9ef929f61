"""The ``"sbn"`` pretrainer: dense layers initialised from a sigmoid belief net's recognition network.

A sigmoid belief net trained by wake-sleep learns, beside its generative
model, a bottom-up recognition network ``q(h_{l+1} | h_l) =
sigmoid(h_l @ W_l + b_l)`` whose weights ``W_l`` have exactly the shape of a
dense layer's ``W`` ``(n_in, n_out)``.  This pretrainer trains such a net on
the inputs of the network's first dense layers and copies the recognition
weights and biases into them.
"""

from __future__ import annotations

import numbers
import warnings
from typing import Any

import numpy as np
from sklearn.base import _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions

from ..models.sbn import init_sbn, recognition_probs, train_sbn
from .base import (
    Pretrainer,
    as_activation,
    check_pretrain_input,
    check_rows,
    dense_run,
    fit_units,
    layer_inputs,
    pre_activations,
    unit_activation,
)

__all__ = ["SBNPretrainer"]

# The old private name of the shared helper.
_dense_run = dense_run


class SBNPretrainer(Pretrainer):
    """Initialise the leading hidden dense layers from a sigmoid belief net (``"sbn"``).

    The inputs of the first hidden dense layer (``network.forward(X,
    stop=i)``, flattened) are made into data in ``[0, 1]`` (see ``scaling``
    and ``binarize``) and a :class:`~neuroplug.estimators.SigmoidBeliefNet`
    is trained on them by wake-sleep, on the network's own backend.  Each
    dense layer of the run then gets the recognition weights ``W`` (shape
    ``(n_in, n_out)``) and biases ``b`` of the matching SBN layer.

    The run of layers starts at the first dense layer and continues through
    dense layers separated only by layers without parameters (activations,
    dropout, flatten).  The network's last layer with parameters (the output
    layer of a classifier) is left as initialised.

    The recognition units are sigmoids: a layer followed by a tanh gets
    ``W / 2, b / 2`` (``tanh(x / 2) = 2 sigmoid(x) - 1``), and after the
    copy every layer is checked on (up to 1,000 rows of) ``X`` and fixed
    data-dependently so that fine-tuning starts alive (see
    :func:`neuroplug.pretrain.base.fit_units`).

    Parameters
    ----------
    mode : {"greedy", "joint"}, default="greedy"
        ``"greedy"``: one single-hidden-layer SBN per dense layer, each
        trained on the recognition probabilities of the one below (as a
        deep belief net is stacked).  ``"joint"``: one SBN with as many
        hidden layers as the run, trained as a whole.
    learning_rate : float, default=0.1
        Wake-sleep step size.
    batch_size : int, default=20
        Rows per wake-sleep mini-batch.
    max_iter : int, default=10
        Epochs per SBN (per layer in greedy mode).
    n_importance_samples : int, default=1
        ``K`` of reweighted wake-sleep (``1``: classic wake-sleep).
    scaling : {"auto", "minmax", "none"}, default="auto"
        How the first dense layer's inputs become SBN data: ``"none"``
        uses them as they are (they must lie in ``[0, 1]``: pixels, or the
        output of a sigmoid); ``"minmax"`` rescales every input feature to
        ``[0, 1]`` over ``X`` and folds the rescaling into the first dense
        layer's weights and bias, so that the layer computes the SBN's
        recognition pre-activations on the raw inputs; ``"auto"`` rescales
        only when some input lies outside ``[0, 1]`` (after a ReLU, say).
    binarize : float or None, default=None
        When a float, the (scaled) inputs of the first dense layer are
        turned into binary data ``x > binarize`` for the SBN; ``None`` keeps
        them as Bernoulli probabilities (soft targets).  Higher layers always
        learn from probabilities, and the network itself still receives the
        unbinarized inputs.
    fix_units : bool, default=True
        Check every pretrained layer on (up to 1,000 rows of) ``X`` after the
        copy and fix it data-dependently so fine-tuning starts alive (see
        :func:`neuroplug.pretrain.base.fit_units`); ``False`` copies the
        pretrained weights exactly (to study the pretrained features).

    Attributes
    ----------
    active_fraction_ : list of float
        Per pretrained layer, the fraction of its units alive on the checked
        rows after the transfer. ``nan`` with ``fix_units=False``.

    Examples
    --------
    >>> import numpy as np
    >>> from neuroplug.backends import get_ops
    >>> from neuroplug.layers.dense import Dense
    >>> from neuroplug.layers.activations import Sigmoid
    >>> from neuroplug.network import Network
    >>> from neuroplug.pretrain.sbn import SBNPretrainer
    >>> X = (np.random.default_rng(0).random((100, 16)) < 0.3).astype(np.float32)
    >>> net = Network([Dense(8), Sigmoid(), Dense(3)], (16,), get_ops("numpy"), rng=0)
    >>> SBNPretrainer(max_iter=2).pretrain(net, X, random_state=0)
    """

    def __init__(
        self,
        *,
        mode: str = "greedy",
        learning_rate: float = 0.1,
        batch_size: int = 20,
        max_iter: int = 10,
        n_importance_samples: int = 1,
        scaling: str = "auto",
        binarize: float | None = None,
        fix_units: bool = True,
    ) -> None:
        self.mode = mode
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.n_importance_samples = n_importance_samples
        self.scaling = scaling
        self.binarize = binarize
        self.fix_units = fix_units

    _parameter_constraints: dict = {
        "mode": [StrOptions({"greedy", "joint"})],
        "learning_rate": [Interval(numbers.Real, 0, None, closed="neither")],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "n_importance_samples": [Interval(numbers.Integral, 1, None, closed="left")],
        "scaling": [StrOptions({"auto", "minmax", "none"})],
        "binarize": [None, Interval(numbers.Real, None, None, closed="neither")],
        "fix_units": ["boolean"],
    }

    @_fit_context(prefer_skip_nested_validation=True)
    def pretrain(
        self, network: Any, X: Any, *, random_state: Any = None, verbose: int = 0
    ) -> None:
        """Train an SBN on the first dense layers' inputs and copy its recognition weights into them.

        Parameters
        ----------
        network : neuroplug.network.Network
            An initialised network; its dense layers are overwritten in place.
        X : ndarray of shape (n_samples,) + network.input_shape
            Training inputs (labels are not used).
        random_state : int, RandomState instance or None, default=None
            Seeds the SBN training.
        verbose : int, default=0
            Show the SBN's progress bars.
        """
        X = check_pretrain_input(network, X)
        run = dense_run(list(network.layers))
        if not run:
            warnings.warn(
                "The 'sbn' pretrainer found no hidden dense layer to initialise (the last layer with "
                "parameters is the output layer and is never pretrained); the network is unchanged.",
                UserWarning,
                stacklevel=2,
            )
            return
        rs = check_random_state(random_state)
        data = layer_inputs(network, X, run[0], np.float32)
        low, high = data.min(axis=0), data.max(axis=0)
        rescale = self.scaling == "minmax" or (
            self.scaling == "auto" and (low.min() < 0 or high.max() > 1)
        )
        if rescale:
            span = np.where(high > low, high - low, 1).astype(np.float32)
            data = (data - low) / span
        elif low.min() < 0 or high.max() > 1:
            raise ValueError(
                f"The 'sbn' pretrainer needs the inputs of dense layer {run[0]} in [0, 1] with scaling='none'; "
                "use scaling='auto' or 'minmax' to rescale them. "
                f"Received: inputs with min={float(low.min()):g}, max={float(high.max()):g}"
            )
        np.clip(data, 0, 1, out=data)  # rounding of the rescaling only

        ops = network.ops

        def fit_sbn(
            inputs: np.ndarray,
            sizes: tuple[int, ...],
            binarize: float | None,
            what: str,
        ) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
            """Train an SBN (as SigmoidBeliefNet.fit would); return its recognition weights, biases and top."""
            if binarize is not None:
                inputs = (inputs > binarize).astype(np.float32)
            rng = np.random.default_rng(
                check_random_state(rs.randint(2**31 - 1)).randint(2**31 - 1)
            )
            state, _ = train_sbn(
                init_sbn(inputs, (inputs.shape[1], *sizes), rng),
                inputs,
                ops=ops,
                rng=rng,
                n_epochs=int(self.max_iter),
                learning_rate=float(self.learning_rate),
                batch_size=int(self.batch_size),
                n_importance_samples=int(self.n_importance_samples),
                verbose=verbose,
                name=f"sbn pretrainer, {what}",
                advice=(
                    f"Try a lower learning rate for the SBN: pretrainer=SBNPretrainer(learning_rate=...) "
                    f"(it was {self.learning_rate:g})."
                ),
            )
            return state.recognition_weights, state.recognition_biases, inputs

        units = [int(network.layers[i].params["b"].shape[0]) for i in run]
        weights: list[tuple[np.ndarray, np.ndarray]] = []
        if self.mode == "joint":
            Wr, br, _ = fit_sbn(data, tuple(units), self.binarize, "joint")
            weights = list(zip(Wr, br))
        else:
            inputs, binarize = data, self.binarize
            for j, n_units in enumerate(units):
                Wr, br, seen = fit_sbn(inputs, (n_units,), binarize, f"layer {j + 1}")
                weights.append((Wr[0], br[0]))
                # The next layer learns from this layer's recognition probabilities
                # (only the first layer's inputs are ever binarized).
                inputs, binarize = recognition_probs(ops, seen, Wr[:1], br[:1])[0], None
        if rescale:
            # x' = (x - low) / span, so x' W + b = x (W / span) + (b - (low / span) W).
            W, b = weights[0]
            weights[0] = (
                (W / span[:, None]).astype(np.float32),
                (b - (low / span) @ W).astype(np.float32),
            )
        # Bottom up, so each layer is checked on what the layers below it now compute.
        sample = check_rows(X)
        self.active_fraction_: list[float] = []
        for i, (W, b) in zip(run, weights):
            W, b = as_activation(W, b, unit_activation(network.layers, i))
            reference = pre_activations(network, sample, i)
            network.layers[i].set_weights(
                {"W": W.astype(np.float32), "b": b.astype(np.float32)}
            )
            self.active_fraction_.append(
                fit_units(network, i, sample, reference)
                if self.fix_units
                else float("nan")
            )
