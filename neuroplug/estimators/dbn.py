"""Deep belief nets: greedy layer-wise stacks of RBMs, and their supervised fine-tuning.

:class:`DBN` trains a stack of :class:`~neuroplug.estimators.RBM` s greedily
(Hinton, Osindero & Teh 2006): the first RBM models the data, each next one
models the hidden-unit probabilities of the one below.  It transforms data
up the stack and generates data by Gibbs sampling in the top RBM followed by
a directed down pass.

:class:`DBNClassifier` initialises a sigmoid network of the same shape from
such a stack (the ``"dbn"`` pretrainer) and fine-tunes it with a softmax
output by back-propagation, as :class:`~neuroplug.estimators.CNNClassifier`.
"""

from __future__ import annotations

import copy
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from .._validation import check_layer_sizes
from ..models.engine import training_session, warn_interrupted
from ..ops import Ops
from ._base import (
    BACKEND_CONSTRAINT,
    CALLBACKS_CONSTRAINT,
    DTYPE_CONSTRAINT,
    N_THREADS_CONSTRAINT,
    EstimatorMixin,
    fit_transaction,
    resolve_ops,
)
from .cnn import CNNClassifier
from .rbm import RBM

__all__ = ["DBN", "DBNClassifier"]

# Hyper-parameters that layer_params may set per layer.
_LAYER_KEYS = (
    "k",
    "persistent",
    "sample_visible",
    "learning_rate",
    "momentum",
    "weight_decay",
    "batch_size",
    "max_iter",
    "shuffle",
)


def _check_hidden_layer_sizes(sizes: Any) -> tuple[int, ...]:
    """``hidden_layer_sizes`` as a tuple of positive ints (see :func:`neuroplug._validation.check_layer_sizes`)."""
    return check_layer_sizes(sizes)


def _check_layer_params(layer_params: Any, n_layers: int) -> list[dict]:
    """One dict of RBM hyper-parameter overrides per layer, from None, a dict or a sequence of dicts."""
    if layer_params is None:
        return [{} for _ in range(n_layers)]
    if isinstance(layer_params, dict):
        per_layer = [dict(layer_params) for _ in range(n_layers)]
    elif isinstance(layer_params, (list, tuple)) and all(
        isinstance(d, dict) or d is None for d in layer_params
    ):
        if len(layer_params) != n_layers:
            raise ValueError(
                f"layer_params must hold one dict per hidden layer ({n_layers}). "
                f"Received: {len(layer_params)} entries"
            )
        per_layer = [dict(d or {}) for d in layer_params]
    else:
        raise TypeError(
            "layer_params must be None, a dict, or a list of dicts (one per layer) of RBM settings "
            f"{_LAYER_KEYS}. Received: layer_params={layer_params!r}"
        )
    for i, d in enumerate(per_layer):
        unknown = sorted(set(d) - set(_LAYER_KEYS))
        if unknown:
            raise ValueError(
                f"layer_params[{i}] has unknown keys {unknown}; allowed: {list(_LAYER_KEYS)}. "
                f"Received: layer_params={layer_params!r}"
            )
    return per_layer


class DBN(
    EstimatorMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator
):
    """Deep belief net: a greedily trained stack of RBMs (transformer and generative model).

    The first RBM is trained on the data; every next RBM on the hidden-unit
    probabilities that the one below gives for the data (Hinton, Osindero &
    Teh 2006).  :meth:`transform` passes data up the stack; :meth:`sample`
    runs Gibbs sampling in the top RBM (an undirected associative memory)
    and then a directed down pass through the lower layers' generative
    weights.

    Parameters
    ----------
    hidden_layer_sizes : int or tuple of int, default=(256, 256)
        Hidden units of each RBM, bottom to top.
    visible : {"bernoulli", "gaussian"}, default="bernoulli"
        Visible units of the first RBM (the data).  Higher RBMs always have
        Bernoulli visible units (they model probabilities).
    k : int, default=1
        Gibbs steps of CD-k / PCD-k.
    persistent : bool, default=False
        Persistent contrastive divergence.
    sample_visible : bool, default=False
        Negative chains on binary visible samples instead of probabilities
        (see :class:`~neuroplug.estimators.RBM`), in every RBM with
        Bernoulli visible units; a Gaussian first RBM keeps its means
        unless ``layer_params`` asks for samples there, which is an error.
    learning_rate : float, default=0.1
        Step size of the RBM updates.
    momentum : float, default=0.5
        Momentum of the RBM updates.
    weight_decay : float, default=0.005
        L2 penalty on the weights.
    batch_size : int, default=100
        Rows per mini-batch.
    shuffle : bool, default=True
        Shuffle the rows before every epoch of every RBM.
    max_iter : int, default=10
        Epochs per RBM.
    layer_params : dict, list of dict or None, default=None
        Per-layer overrides of ``k``, ``persistent``, ``sample_visible``,
        ``learning_rate``, ``momentum``, ``weight_decay``, ``batch_size`` and ``max_iter``: one
        dict applied to every layer, or one dict (or ``None``) per layer.
        The shared settings above apply where a layer does not override them.
    backend : str or Ops, default="cpu"
        Compute backend.
    n_threads : int, default=None
        Thread limit of the backend's kernels.
    dtype : {"float32", "float64"} or None, default=None
        Precision; ``None`` keeps float32 input in float32, else float64.
    random_state : int, RandomState instance or None, default=None
        Seeds every RBM (each layer gets its own seed drawn from it) and
        the sampling.
    verbose : int, default=0
        Progress bars of the RBMs.

    Attributes
    ----------
    rbms_ : list of RBM
        The fitted RBMs, bottom first.
    n_iter_ : int
        Training epochs run, summed over the layers (``rbms_[i].n_iter_``
        gives each layer's).
    dtype_ : str
        Precision of the fitted model.
    n_features_in_ : int
        Number of features seen during :meth:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :meth:`fit`, when ``X`` has string
        column names.

    See Also
    --------
    neuroplug.estimators.RBM : One layer of the stack.
    neuroplug.estimators.DBNClassifier : The stack fine-tuned as a classifier.

    References
    ----------
    .. [1] G. E. Hinton, S. Osindero and Y.-W. Teh, "A fast learning
       algorithm for deep belief nets", Neural Computation 18, 2006.

    Examples
    --------
    >>> import numpy as np
    >>> from neuroplug.estimators import DBN
    >>> rng = np.random.default_rng(0)
    >>> X = (rng.random((200, 16)) < 0.3).astype(np.float32)
    >>> dbn = DBN(hidden_layer_sizes=(12, 6), max_iter=3, random_state=0).fit(X)
    >>> dbn.transform(X[:2]).shape
    (2, 6)
    >>> dbn.sample(3, n_steps=10).shape
    (3, 16)
    """

    _parameter_constraints: dict = {
        "hidden_layer_sizes": [
            "array-like",
            Interval(numbers.Integral, 1, None, closed="left"),
        ],
        "visible": [StrOptions({"bernoulli", "gaussian"})],
        "k": [Interval(numbers.Integral, 1, None, closed="left")],
        "persistent": ["boolean"],
        "sample_visible": ["boolean"],
        "learning_rate": [Interval(numbers.Real, 0, None, closed="neither")],
        "momentum": [Interval(numbers.Real, 0, 1, closed="left")],
        "weight_decay": [Interval(numbers.Real, 0, None, closed="left")],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "layer_params": [None, dict, list, tuple],
        "backend": BACKEND_CONSTRAINT,
        "n_threads": N_THREADS_CONSTRAINT,
        "dtype": DTYPE_CONSTRAINT,
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "callbacks": CALLBACKS_CONSTRAINT,
    }

    def __init__(
        self,
        hidden_layer_sizes: int | tuple[int, ...] = (256, 256),
        *,
        visible: str = "bernoulli",
        k: int = 1,
        persistent: bool = False,
        sample_visible: bool = False,
        learning_rate: float = 0.1,
        momentum: float = 0.5,
        weight_decay: float = 0.005,
        batch_size: int = 100,
        shuffle: bool = True,
        max_iter: int = 10,
        layer_params: dict | Sequence[dict | None] | None = None,
        backend: str | Ops = "cpu",
        n_threads: int | None = None,
        dtype: str | None = None,
        random_state: Any = None,
        verbose: int = 0,
        callbacks: tuple = (),
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.visible = visible
        self.k = k
        self.persistent = persistent
        self.sample_visible = sample_visible
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.max_iter = max_iter
        self.layer_params = layer_params
        self.backend = backend
        self.n_threads = n_threads
        self.dtype = dtype
        self.random_state = random_state
        self.verbose = verbose
        self.callbacks = callbacks

    def _layer_rbms(self, sizes: tuple[int, ...]) -> list[RBM]:
        """Unfitted RBMs, one per layer, with the shared settings and the per-layer overrides."""
        overrides = _check_layer_params(self.layer_params, len(sizes))
        rs = check_random_state(self.random_state)
        rbms = []
        for i, (n_units, extra) in enumerate(zip(sizes, overrides)):
            params = {key: getattr(self, key) for key in _LAYER_KEYS}
            visible = self.visible if i == 0 else "bernoulli"
            if visible != "bernoulli":
                params["sample_visible"] = (
                    False  # the shared setting is for Bernoulli units
                )
            params.update(extra)
            rbm = RBM(
                n_components=n_units,
                visible=visible,
                backend=self.backend,
                n_threads=self.n_threads,
                dtype=self.dtype_,
                random_state=rs.randint(2**31 - 1),
                verbose=self.verbose,
                callbacks=self.callbacks,
                **params,
            )
            # Validated here: inside this fit, scikit-learn skips the nested RBM's own check.
            rbm._validate_params()
            rbm._check_chain()
            rbms.append(rbm)
        return rbms

    def _validate(self, X: Any, *, reset: bool) -> Any:
        if reset:
            dtype: Any = (
                [np.float64, np.float32] if self.dtype is None else np.dtype(self.dtype)
            )
        else:
            dtype = np.dtype(self.dtype_)
        X = validate_data(
            self,
            X,
            reset=reset,
            dtype=dtype,
            order="C",
            accept_sparse=["csr"],
            accept_large_sparse=False,
        )
        if reset:
            self.dtype_ = X.dtype.name
        return X

    def _train_layers(self, X: Any, sample_weight: Any, *, incremental: bool) -> None:
        """Every RBM, bottom up, on the hidden probabilities of the one below (one epoch each when incremental)."""
        first = not incremental or not hasattr(self, "rbms_")
        if first:
            sizes = _check_hidden_layer_sizes(self.hidden_layer_sizes)
        X = self._validate(X, reset=first)
        # Copies of the fitted layers: a failed call leaves the fitted ones as they were.
        rbms = (
            self._layer_rbms(sizes)
            if first
            else [copy.deepcopy(rbm) for rbm in self.rbms_]
        )
        inputs = X
        for i, rbm in enumerate(rbms):
            if incremental:
                rbm.partial_fit(inputs, sample_weight=sample_weight)
            else:
                rbm.fit(inputs, sample_weight=sample_weight)
            if i + 1 < len(rbms):
                inputs = rbm.transform(inputs)
        self.rbms_ = rbms
        self.n_iter_ = int(sum(rbm.n_iter_ for rbm in rbms))

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> DBN:
        """Train the RBMs greedily, bottom to top.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data (in ``[0, 1]`` for Bernoulli units, standardised
            for Gaussian units).  A sparse matrix is densified a chunk of
            batches at a time by the first RBM; the layers above train on its
            (dense) hidden probabilities.
        y : None
            Ignored.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each row, used by every RBM (see
            :meth:`RBM.fit`).

        Returns
        -------
        self : DBN
            The fitted estimator.
        """
        with fit_transaction(self), training_session() as (stop, owner):
            self._train_layers(X, sample_weight, incremental=False)
        if owner and stop.requested:
            # The layers above the interrupted one keep their initial weights (no epoch ran).
            warn_interrupted(type(self).__name__, self.n_iter_, stacklevel=3)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> DBN:
        """One epoch of CD-k for every RBM on ``X``, bottom to top (initialising the stack on the first call).

        Greedy layer-wise, online: the first RBM runs one epoch on ``X``
        (:meth:`RBM.partial_fit`); then each RBM above runs one epoch on the
        hidden probabilities that the just-updated RBM below gives for
        ``X``.  All layers thus learn from every call, the upper ones from
        features that are still changing; :meth:`fit` instead trains each
        layer to the end before the next one starts.  Momentum and
        persistent chains carry over between calls.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data.
        y : None
            Ignored.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each row, used by every RBM.

        Returns
        -------
        self : DBN
            The updated estimator.
        """
        with fit_transaction(self), training_session() as (stop, owner):
            self._train_layers(X, sample_weight, incremental=True)
        if owner and stop.requested:
            warn_interrupted(type(self).__name__, self.n_iter_, stacklevel=3)
        return self

    @property
    def _n_features_out(self) -> int:
        return int(self.rbms_[-1].components_.shape[0])

    def transform(self, X: Any) -> np.ndarray:
        """Hidden probabilities of the top RBM, passing probabilities up the stack.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data.

        Returns
        -------
        H : ndarray of shape (n_samples, hidden_layer_sizes[-1])
        """
        check_is_fitted(self, "rbms_")
        X = self._validate(X, reset=False)
        for rbm in self.rbms_:
            X = rbm.transform(X)
        return X

    def sample(
        self,
        n_samples: int = 1,
        *,
        n_steps: int = 1000,
        return_means: bool = False,
        random_state: Any = None,
    ) -> np.ndarray:
        """Generate data: Gibbs sampling in the top RBM, then a down pass.

        ``n_steps`` Gibbs steps in the top RBM give a sample of its visible
        layer (the penultimate hidden layer); each lower layer is then drawn
        from ``p(v | h)`` of the RBM below it, down to the data.

        Parameters
        ----------
        n_samples : int, default=1
            Number of samples.
        n_steps : int, default=1000
            Gibbs steps in the top RBM.
        return_means : bool, default=False
            Return the bottom layer's conditional means (probabilities, or
            Gaussian means) instead of samples; they are smoother to look at.
        random_state : int, RandomState instance or None, default=None
            Seeds the sampling; ``None`` uses the estimator's ``random_state``.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features_in)
        """
        check_is_fitted(self, "rbms_")
        rs = check_random_state(
            self.random_state if random_state is None else random_state
        )
        seed = int(rs.randint(2**31 - 1))
        h = self.rbms_[-1].sample(n_samples, n_steps=n_steps, random_state=seed)
        ops = resolve_ops(
            self.backend, self.n_threads, fitted=True, owner=type(self).__name__
        )
        rng = ops.make_rng(int(rs.randint(2**31 - 1)))
        dt = np.dtype(self.dtype_)
        h = ops.asarray(h, dtype=dt)
        for i in range(len(self.rbms_) - 2, -1, -1):
            rbm = self.rbms_[i]
            W, bv = (
                ops.asarray(rbm.components_, dtype=dt),
                ops.asarray(rbm.intercept_visible_, dtype=dt),
            )
            if i == 0 and return_means:
                h = ops.rbm_visible_means(h, W, bv, rbm.visible)
            else:
                h = ops.rbm_sample_visible(h, W, bv, rbm.visible, rng)
        if len(self.rbms_) == 1 and return_means:
            rbm = self.rbms_[0]
            # The top RBM is also the bottom one: one more half step to the means.
            hid = ops.bernoulli(
                ops.rbm_hidden_probs(
                    h,
                    ops.asarray(rbm.components_, dtype=dt),
                    ops.asarray(rbm.intercept_hidden_, dtype=dt),
                ),
                rng,
            )
            h = ops.rbm_visible_means(
                hid,
                ops.asarray(rbm.components_, dtype=dt),
                ops.asarray(rbm.intercept_visible_, dtype=dt),
                rbm.visible,
            )
        return np.array(ops.to_numpy(h), dtype=dt)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.input_tags.sparse = True
        return tags


# ---------------------------------------------------------------------------
# DBNClassifier
# ---------------------------------------------------------------------------
_INHERITED_CONSTRAINTS = {
    key: value
    for key, value in CNNClassifier._parameter_constraints.items()
    if key not in ("layers", "pretrainer")
}


class DBNClassifier(CNNClassifier):
    """Deep belief net classifier: greedy RBM pretraining, then back-propagation through the same weights.

    The network is ``hidden_layer_sizes`` dense layers with sigmoid units
    (each followed by dropout during fine-tuning when ``dropout > 0``) and
    a dense softmax output.  Before supervised training the ``"dbn"``
    pretrainer (:class:`neuroplug.pretrain.dbn.DBNPretrainer`) trains one
    RBM per hidden layer, bottom up, each on the hidden probabilities of the
    one below, and copies its weights and hidden biases into the layer, so
    that the network starts out computing the deep belief net's features;
    fine-tuning then trains every layer, the output layer included, with
    softmax cross-entropy (Hinton & Salakhutdinov 2006).  Everything after
    pretraining is :class:`~neuroplug.estimators.CNNClassifier`: optimisers,
    schedules, early stopping, ``partial_fit``, ``warm_start``, backends
    and the NumPy-only fitted state.

    Parameters
    ----------
    hidden_layer_sizes : int or tuple of int, default=(500, 500)
        Units of each hidden (sigmoid) layer, bottom to top.
    dropout : float, default=0.2
        Dropout rate after each hidden layer during fine-tuning (Hinton et
        al. 2012 fine-tuned pretrained nets with dropout); ``0`` disables
        it.  Pretraining and prediction are not affected.
    pretrain_visible : {"auto", "bernoulli", "gaussian"}, default="auto"
        Visible units of the first RBM: Bernoulli for inputs in ``[0, 1]``
        (pixels), Gaussian on standardised inputs otherwise (``"auto"``
        chooses); see :class:`~neuroplug.pretrain.dbn.DBNPretrainer`.
    pretrain_k : int, default=1
        Gibbs steps of CD-k / PCD-k.
    pretrain_persistent : bool, default=False
        Persistent contrastive divergence.
    pretrain_sample_visible : bool, default=False
        Negative chains on binary visible samples (Bernoulli RBMs only; see
        :class:`~neuroplug.pretrain.dbn.DBNPretrainer`).
    pretrain_learning_rate : float or "auto", default="auto"
        RBM step size; ``"auto"`` picks 0.1 for Bernoulli visible units and
        0.01 for Gaussian ones (unscaled features), lower still if an RBM
        diverges (see :class:`~neuroplug.pretrain.dbn.DBNPretrainer`).
    pretrain_momentum : float, default=0.5
        RBM momentum.
    pretrain_weight_decay : float, default=0.002
        RBM L2 penalty.
    pretrain_batch_size : int, default=10
        Rows per RBM mini-batch (small batches, many updates: better
        features for classification than the likelihood-oriented
        ``RBM`` defaults).
    pretrain_max_iter : int, default=5
        RBM epochs per layer; ``0`` skips pretraining (a plain sigmoid
        network, for comparison).
    input_shape : tuple of int, default=None
        Shape of one sample; only needed for 3-D or 4-D input, which is
        flattened.
    optimizer : {"adam", "sgd", "nesterov"} or Optimizer, default="sgd"
        Optimiser of the fine-tuning (``"sgd"`` has momentum 0.9).
    learning_rate : float, default=0.1
        Fine-tuning step size.
    lr_schedule : str or Schedule, default="step:10,0.5"
        Learning rate per epoch (see ``CNNClassifier``): halved every 10
        epochs.
    batch_size : int, default=50
        Fine-tuning mini-batch size.
    shuffle : bool, default=True
        Shuffle the rows before every fine-tuning epoch.
    max_iter : int, default=30
        Fine-tuning epochs.
    weight_decay : float, default=1e-4
        L2 weight decay of the fine-tuning (``alpha`` before 0.2, still
        accepted with a FutureWarning).
    early_stopping, validation_fraction, n_iter_no_change, tol, augment, \
backend, n_threads, dtype, random_state, verbose, warm_start, callbacks, class_weight
        As in :class:`~neuroplug.estimators.CNNClassifier`.  ``random_state``
        also seeds the RBMs.  ``sample_weight`` and ``class_weight`` weight
        the fine-tuning (its loss and, with early stopping, its validation
        score); the RBM pretraining is unweighted.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels.
    layers_ : tuple of Layer
        The network: ``Dense``, ``Sigmoid`` (and ``Dropout``) per hidden
        layer, then the output ``Dense``.
    network_weights_ : list of dict
        Weights of each layer as NumPy arrays.
    n_iter_ : int
        Fine-tuning epochs run.
    loss_curve_ : list of float
        Mean training loss of each fine-tuning epoch.
    n_features_in_, feature_names_in_, dtype_, input_shape_, best_loss_, \
validation_scores_, best_validation_score_
        As in :class:`~neuroplug.estimators.CNNClassifier`.

    See Also
    --------
    neuroplug.estimators.DBN : The unsupervised stack alone.
    neuroplug.estimators.CNNClassifier : ``CNNClassifier(pretrainer="dbn")``
        pretrains the dense layers of any network the same way.

    References
    ----------
    .. [1] G. E. Hinton, S. Osindero and Y.-W. Teh, "A fast learning
       algorithm for deep belief nets", Neural Computation 18, 2006.
    .. [2] G. E. Hinton and R. R. Salakhutdinov, "Reducing the
       dimensionality of data with neural networks", Science 313, 2006.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from neuroplug.estimators import DBNClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = DBNClassifier((32,), pretrain_max_iter=2, max_iter=3, random_state=0)
    >>> clf.fit(X[:300] / 16, y[:300]).predict(X[:3] / 16).shape
    (3,)
    """

    # DBNClassifier always pretrains, so -1 stays an ordinary class label here
    # (binary -1/+1 targets must work, as scikit-learn's checks require).  For
    # semi-supervised DBN pretraining use CNNClassifier(layers=..., pretrainer="dbn").
    _marks_unlabelled = False

    _parameter_constraints: dict = {
        **_INHERITED_CONSTRAINTS,
        "hidden_layer_sizes": [
            "array-like",
            Interval(numbers.Integral, 1, None, closed="left"),
        ],
        "dropout": [Interval(numbers.Real, 0, 1, closed="left")],
        "pretrain_visible": [StrOptions({"auto", "bernoulli", "gaussian"})],
        "pretrain_k": [Interval(numbers.Integral, 1, None, closed="left")],
        "pretrain_persistent": ["boolean"],
        "pretrain_sample_visible": ["boolean"],
        "pretrain_learning_rate": [
            Interval(numbers.Real, 0, None, closed="neither"),
            StrOptions({"auto"}),
        ],
        "pretrain_momentum": [Interval(numbers.Real, 0, 1, closed="left")],
        "pretrain_weight_decay": [Interval(numbers.Real, 0, None, closed="left")],
        "pretrain_batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "pretrain_max_iter": [Interval(numbers.Integral, 0, None, closed="left")],
    }

    def __init__(
        self,
        hidden_layer_sizes: int | tuple[int, ...] = (500, 500),
        *,
        dropout: float = 0.2,
        pretrain_visible: str = "auto",
        pretrain_k: int = 1,
        pretrain_persistent: bool = False,
        pretrain_sample_visible: bool = False,
        pretrain_learning_rate: float | str = "auto",
        pretrain_momentum: float = 0.5,
        pretrain_weight_decay: float = 0.002,
        pretrain_batch_size: int = 10,
        pretrain_max_iter: int = 5,
        input_shape: tuple[int, ...] | None = None,
        optimizer: Any = "sgd",
        learning_rate: float = 0.1,
        lr_schedule: Any = "step:10,0.5",
        batch_size: int = 50,
        shuffle: bool = True,
        max_iter: int = 30,
        weight_decay: float = 1e-4,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 10,
        tol: float = 1e-4,
        augment: Any = None,
        backend: str = "cpu",
        n_threads: int | None = None,
        dtype: str | None = None,
        random_state: Any = None,
        verbose: int = 0,
        warm_start: bool = False,
        callbacks: tuple = (),
        alpha: Any = "deprecated",
        class_weight: dict | str | None = None,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.dropout = dropout
        self.pretrain_visible = pretrain_visible
        self.pretrain_k = pretrain_k
        self.pretrain_persistent = pretrain_persistent
        self.pretrain_sample_visible = pretrain_sample_visible
        self.pretrain_learning_rate = pretrain_learning_rate
        self.pretrain_momentum = pretrain_momentum
        self.pretrain_weight_decay = pretrain_weight_decay
        self.pretrain_batch_size = pretrain_batch_size
        self.pretrain_max_iter = pretrain_max_iter
        self.input_shape = input_shape
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.lr_schedule = lr_schedule
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.max_iter = max_iter
        self.weight_decay = weight_decay
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.augment = augment
        self.backend = backend
        self.n_threads = n_threads
        self.dtype = dtype
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start
        self.callbacks = callbacks
        self.alpha = alpha
        self.class_weight = class_weight

    # The CNN machinery reads these two; a DBNClassifier derives them from its own parameters.
    @property
    def layers(self) -> tuple[str, ...]:
        """The hidden layer stack as spec strings: ``("dense:N", "sigmoid", "dropout:R", ...)``."""
        sizes = _check_hidden_layer_sizes(self.hidden_layer_sizes)
        rate = float(self.dropout)
        block = ("sigmoid",) if rate == 0 else ("sigmoid", f"dropout:{rate:g}")
        return tuple(spec for n in sizes for spec in (f"dense:{n}", *block))

    @property
    def pretrainer(self) -> Any:
        """The ``"dbn"`` pretrainer with this estimator's ``pretrain_*`` settings (``None`` when ``pretrain_max_iter=0``)."""
        from ..pretrain.dbn import DBNPretrainer

        if self.pretrain_max_iter == 0:
            return None
        return DBNPretrainer(
            visible=self.pretrain_visible,
            k=self.pretrain_k,
            persistent=self.pretrain_persistent,
            sample_visible=self.pretrain_sample_visible,
            learning_rate=self.pretrain_learning_rate,
            momentum=self.pretrain_momentum,
            weight_decay=self.pretrain_weight_decay,
            batch_size=self.pretrain_batch_size,
            max_iter=self.pretrain_max_iter,
        )
