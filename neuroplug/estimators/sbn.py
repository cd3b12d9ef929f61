"""Sigmoid belief nets (Neal 1992) trained by (reweighted) wake-sleep.

A sigmoid belief net is a layered directed generative model of binary units.
The top layer ``h_L`` has independent units with prior ``sigmoid(c)``; each
lower layer fires with probability ``sigmoid(bias + h_{l+1} @ G)``; layer 0
is the data.  Exact inference is intractable, so a second, bottom-up
*recognition* network ``q(h | x)`` of the same shape is trained beside it:

* the **wake** phase samples ``h ~ q(h | x)`` for a data batch and moves the
  generative weights up the gradient of ``log p(x, h)``;
* the **sleep** phase samples a fantasy ``(h, x)`` from the generative model
  and moves the recognition weights up the gradient of ``log q(h | x)``.

With ``n_importance_samples = K > 1`` the wake phase becomes reweighted
wake-sleep (Bornschein & Bengio 2015): ``K`` samples per data point,
weighted by their normalised importance weights ``p(x, h) / q(h | x)``, and
the recognition network also learns from those weighted wake samples.

Every epoch is one backend call (:meth:`neuroplug.ops.Ops.sbn_wake_sleep_epoch`),
so the Cython backend (and a GPU backend) runs the whole loop natively.
"""

from __future__ import annotations

import math
import numbers
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

from .._validation import check_int, check_layer_sizes
from ..models.engine import check_sample_weight, take_rows
from ..models.sbn import SBNState, init_sbn, recognition_probs, train_sbn
from ..ops import Ops
from ._base import (
    BACKEND_CONSTRAINT,
    CALLBACKS_CONSTRAINT,
    DTYPE_CONSTRAINT,
    N_THREADS_CONSTRAINT,
    EstimatorMixin,
    RenamedCurveMixin,
    fit_callbacks,
    fit_transaction,
    renamed_curve,
    resolve_ops,
)

__all__ = ["SigmoidBeliefNet"]

# Upper bound on the sampled units held at once when estimating log p(x): rows
# are scored in chunks of about this many (row, sample, unit) entries.
_SCORE_CHUNK_ELEMENTS = 1 << 22


def _check_hidden_layer_sizes(sizes: Any) -> tuple[int, ...]:
    """``hidden_layer_sizes`` as a tuple of positive ints (see :func:`neuroplug._validation.check_layer_sizes`)."""
    return check_layer_sizes(sizes)


class SigmoidBeliefNet(
    EstimatorMixin,
    RenamedCurveMixin,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    BaseEstimator,
):
    """Sigmoid belief net trained by wake-sleep, with an importance-sampled ``log p(x)``.

    A directed generative model of binary vectors (Neal 1992): the top
    hidden layer has a factorial prior and every lower layer, down to the
    data, fires with probability ``sigmoid(bias + weighted input from the
    layer above)``.  A recognition network of the same shape, trained beside
    it by the wake-sleep algorithm (Hinton, Dayan, Frey & Neal 1995),
    samples the hidden causes of a data vector, gives the features of
    :meth:`transform` and is the proposal of the importance-sampled
    likelihood estimate of :meth:`score_samples`.

    Parameters
    ----------
    hidden_layer_sizes : int or tuple of int, default=(100,)
        Units per hidden layer, from the one above the data to the top.
    learning_rate : float, default=0.1
        Step size of the wake and sleep updates (the gradients are means
        over the mini-batch).
    batch_size : int, default=20
        Rows per mini-batch.
    max_iter : int, default=10
        Number of epochs (passes over the data) of :meth:`fit`.
    n_importance_samples : int, default=1
        ``K``, the recognition samples per data row in the wake phase.
        ``1`` is classic wake-sleep; ``K > 1`` is reweighted wake-sleep
        (Bornschein & Bengio 2015): the wake updates are weighted by the
        normalised importance weights, and the recognition network takes
        half steps on the weighted wake samples and half steps on the sleep
        fantasies.  Each wake phase costs about ``K`` times more.
    n_eval_samples : int, default=100
        Importance samples per row used by :meth:`score_samples` and
        :meth:`score`.
    binarize : float or None, default=0.5
        Threshold turning the input into binary data (``x > binarize``), as
        the model's units are binary.  ``None`` uses the input as given: it
        must then lie in ``[0, 1]``, and fractional values act as soft
        targets, i.e. ``x log p + (1 - x) log(1 - p)`` replaces the Bernoulli
        log-probability (exact for binary data).
    transform_layers : {"top", "all"}, default="top"
        What :meth:`transform` returns: the recognition probabilities of the
        top hidden layer, or those of every hidden layer side by side.
    backend : str or Ops, default="cpu"
        Compute backend: a registered name (``"cpu"``, ``"numpy"``,
        ``"torch"``, ``"torch:cuda"``...) or an ``Ops`` instance.
    n_threads : int, default=None
        Thread limit of the backend's kernels (``None``: OpenMP's limit;
        negative values count back from the number of CPUs, ``-1``: all).
    dtype : {"float32", "float64"} or None, default="float32"
        Precision of the model.  ``None`` keeps float32 input in float32 and
        computes in float64 otherwise, as the other estimators do; the
        default computes in float32 whatever the input.
    random_state : int, RandomState instance or None, default=None
        Seeds the initial weights, the order of the rows in each epoch and
        every Bernoulli draw.  With an int, :meth:`fit`, :meth:`sample` and
        :meth:`score_samples` are reproducible on a given backend.
    verbose : int, default=0
        Show a progress bar (tqdm) with the training bound per epoch.

    Attributes
    ----------
    generative_weights_ : list of ndarray
        ``generative_weights_[l]`` of shape ``(n_{l+1}, n_l)`` maps layer
        ``l + 1`` down to layer ``l`` (layer 0 is the data).
    generative_biases_ : list of ndarray
        ``generative_biases_[l]`` of shape ``(n_l,)`` for every layer,
        the data's included; the last one is the prior of the top layer,
        ``p(h_L = 1) = sigmoid(generative_biases_[-1])``.
    recognition_weights_ : list of ndarray
        ``recognition_weights_[l]`` of shape ``(n_l, n_{l+1})`` maps layer
        ``l`` up to layer ``l + 1`` (the shape of a dense layer's ``W``).
    recognition_biases_ : list of ndarray
        ``recognition_biases_[l]`` of shape ``(n_{l+1},)``.
    loss_curve_ : list of float
        Per epoch, the negated training bound (lower is better:
        ``bound_curve_`` before 0.2 held the bound itself and is still
        readable with a FutureWarning): the mean over the training rows of the wake phase's
        estimate of ``log p(x)`` in nats, taken before each batch's update:
        a one-sample ELBO estimate for ``K = 1``, the ``K``-sample
        importance-weighted bound for ``K > 1``.  It trails the model's
        true log-likelihood.
    n_iter_ : int
        Epochs run (by :meth:`fit`, plus one per :meth:`partial_fit`).
    n_features_in_ : int
        Number of features seen during :meth:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :meth:`fit`, when ``X`` has string
        column names.

    See Also
    --------
    neuroplug.estimators.RBM : An undirected binary latent-variable model.
    sklearn.neural_network.BernoulliRBM : scikit-learn's binary RBM.

    Notes
    -----
    **The likelihood estimate.**  :meth:`score_samples` returns, per row,
    ``log (1/K sum_k p(x, h^k) / q(h^k | x))`` with ``h^k ~ q(h | x)`` and
    ``K = n_eval_samples``.  By Jensen's inequality its expectation is a
    lower bound on ``log p(x)`` (Burda, Grosse & Salakhutdinov 2016) that
    tightens as ``K`` grows; it is stochastic, and ``return_std=True`` gives
    its delta-method standard deviation ``sqrt(sum_k w_k^2 - 1/K)`` (with
    ``w`` the normalised importance weights), which is small when the
    weights are even and large when one sample dominates, a sign that ``K``
    is too small for the proposal.  The standard error of a mean over rows
    is at most the mean of these deviations.  The ``K`` samples of every
    row reuse one block of uniform random numbers (common random numbers),
    so a row's estimate does not depend on the other rows: scores are
    reproducible row by row for an int ``random_state``.

    :meth:`transform` is deterministic: it propagates probabilities instead
    of samples through the recognition network (a mean-field pass), as a
    deep belief net's features are usually computed.

    References
    ----------
    .. [1] R. M. Neal, "Connectionist learning of belief networks",
       Artificial Intelligence 56, 1992.
    .. [2] G. E. Hinton, P. Dayan, B. J. Frey and R. M. Neal, "The wake-sleep
       algorithm for unsupervised neural networks", Science 268, 1995.
    .. [3] J. Bornschein and Y. Bengio, "Reweighted wake-sleep", ICLR 2015.
    .. [4] Y. Burda, R. Grosse and R. Salakhutdinov, "Importance weighted
       autoencoders", ICLR 2016.

    Examples
    --------
    >>> import numpy as np
    >>> from neuroplug.estimators import SigmoidBeliefNet
    >>> rng = np.random.default_rng(0)
    >>> X = (rng.random((200, 16)) < np.linspace(0.1, 0.9, 16)).astype(float)
    >>> sbn = SigmoidBeliefNet(hidden_layer_sizes=(8,), max_iter=5, random_state=0).fit(X)
    >>> sbn.transform(X[:3]).shape
    (3, 8)
    >>> sbn.sample(4).shape
    (4, 16)
    >>> bool(sbn.score(X) < 0)
    True
    """

    _parameter_constraints: dict = {
        "hidden_layer_sizes": [
            "array-like",
            Interval(numbers.Integral, 1, None, closed="left"),
        ],
        "learning_rate": [Interval(numbers.Real, 0, None, closed="neither")],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "n_importance_samples": [Interval(numbers.Integral, 1, None, closed="left")],
        "n_eval_samples": [Interval(numbers.Integral, 1, None, closed="left")],
        "binarize": [None, Interval(numbers.Real, None, None, closed="neither")],
        "transform_layers": [StrOptions({"top", "all"})],
        "backend": BACKEND_CONSTRAINT,
        "n_threads": N_THREADS_CONSTRAINT,
        "dtype": DTYPE_CONSTRAINT,
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "callbacks": CALLBACKS_CONSTRAINT,
    }

    def __init__(
        self,
        hidden_layer_sizes: int | tuple[int, ...] = (100,),
        *,
        learning_rate: float = 0.1,
        batch_size: int = 20,
        shuffle: bool = True,
        max_iter: int = 10,
        n_importance_samples: int = 1,
        n_eval_samples: int = 100,
        binarize: float | None = 0.5,
        transform_layers: str = "top",
        backend: str | Ops = "cpu",
        n_threads: int | None = None,
        dtype: str | None = "float32",
        random_state: Any = None,
        verbose: int = 0,
        callbacks: tuple = (),
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.max_iter = max_iter
        self.n_importance_samples = n_importance_samples
        self.n_eval_samples = n_eval_samples
        self.binarize = binarize
        self.transform_layers = transform_layers
        self.backend = backend
        self.n_threads = n_threads
        self.dtype = dtype
        self.random_state = random_state
        self.verbose = verbose
        self.callbacks = callbacks

    # ------------------------------------------------------------- helpers
    def _get_ops(self, *, fitted: bool = False) -> Ops:
        return resolve_ops(
            self.backend, self.n_threads, fitted=fitted, owner=type(self).__name__
        )

    def _validate_X(self, X: Any, *, reset: bool) -> np.ndarray:
        """Validate ``X`` and return it in the model's dtype (binarized or checked)."""
        if reset:
            dtype: Any = (
                [np.float64, np.float32] if self.dtype is None else np.dtype(self.dtype)
            )
        else:
            dtype = np.dtype(
                getattr(self, "dtype_", "float32")
            )  # models fitted before 0.2 are float32
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
        if self.binarize is not None:
            if hasattr(X, "toarray") and self.binarize < 0:
                raise ValueError(
                    "A negative binarize threshold turns every zero of a sparse X into a one (dense data); "
                    f"pass a dense X or a threshold >= 0. Received: binarize={self.binarize}"
                )
            return (X > self.binarize).astype(X.dtype)
        if X.size and (X.min() < 0 or X.max() > 1):
            raise ValueError(
                "X must lie in [0, 1] when binarize=None (its values are Bernoulli targets); "
                "set binarize to a threshold to binarize other data. "
                f"Received: X with min={float(X.min()):g}, max={float(X.max()):g}"
            )
        return X

    def _initialize(
        self, X: np.ndarray, sizes: tuple[int, ...], weights: np.ndarray | None = None
    ) -> None:
        """A fresh net (see :func:`neuroplug.models.sbn.init_sbn`)."""
        self._set_state(init_sbn(X, sizes, self._rng, X.dtype, sample_weight=weights))
        self.n_iter_ = 0
        self.loss_curve_ = []
        self.history_ = []

    def _state(self) -> SBNState:
        return SBNState(
            self.generative_weights_,
            self.generative_biases_,
            self.recognition_weights_,
            self.recognition_biases_,
        )

    def _set_state(self, state: SBNState) -> None:
        self.generative_weights_, self.generative_biases_ = (
            state.generative_weights,
            state.generative_biases,
        )
        self.recognition_weights_, self.recognition_biases_ = (
            state.recognition_weights,
            state.recognition_biases,
        )

    bound_curve_ = renamed_curve("bound_curve_", sign=-1.0)
    _curve_display = ("training bound on log p(x) (nats)", -1.0)
    _old_curve = ("bound_curve_", -1.0)

    @staticmethod
    def _weighted(X: Any, sample_weight: Any) -> tuple[Any, np.ndarray | None]:
        """``(X, weights)`` with the rows of weight 0 dropped (as if absent)."""
        weights = check_sample_weight(sample_weight, X.shape[0])
        if weights is not None and not (weights > 0).all():
            X, weights = X[weights > 0], weights[weights > 0]
        return X, weights

    def _run_epochs(
        self, X: np.ndarray, n_epochs: int, weights: np.ndarray | None = None
    ) -> None:
        state, report = train_sbn(
            self._state(),
            X,
            ops=self._get_ops(),
            rng=self._rng,
            n_epochs=n_epochs,
            learning_rate=float(self.learning_rate),
            batch_size=int(self.batch_size),
            n_importance_samples=int(self.n_importance_samples),
            start_epoch=self.n_iter_,
            verbose=int(self.verbose),
            name=type(self).__name__,
            callbacks=fit_callbacks(self, type(self)._set_state),
            shuffle=bool(self.shuffle),
            sample_weight=weights,
        )
        self._set_state(state)
        self.loss_curve_.extend(row["loss"] for row in report.history)
        self.history_ = [*getattr(self, "history_", []), *report.history]
        self.n_iter_ += report.n_epochs
        self.stop_reason_, self.best_epoch_ = report.stop_reason, report.best_epoch

    # ----------------------------------------------------------------- fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> SigmoidBeliefNet:
        """Train the net by (reweighted) wake-sleep for ``max_iter`` epochs.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data (binarized at ``binarize``, or in ``[0, 1]``); a
            sparse matrix is densified a chunk of batches at a time.
        y : None
            Ignored.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each row: its wake-phase statistics count
            its weight relative to the mean weight; rows of weight 0 are
            dropped.

        Returns
        -------
        self : SigmoidBeliefNet
            The fitted estimator.
        """
        sizes = _check_hidden_layer_sizes(self.hidden_layer_sizes)
        with fit_transaction(self):
            X = self._validate_X(X, reset=True)
            X, weights = self._weighted(X, sample_weight)
            self._rng = np.random.default_rng(
                check_random_state(self.random_state).randint(2**31 - 1)
            )
            self._initialize(X, (X.shape[1],) + sizes, weights)
            self._run_epochs(X, int(self.max_iter), weights)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(
        self, X: Any, y: Any = None, sample_weight: Any = None
    ) -> SigmoidBeliefNet:
        """Run one epoch of wake-sleep over ``X`` (initialising the net on the first call).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data (binarized at ``binarize``, or in ``[0, 1]``).
        y : None
            Ignored.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each row (see :meth:`fit`).

        Returns
        -------
        self : SigmoidBeliefNet
            The updated estimator.
        """
        first = not hasattr(self, "generative_weights_")
        if first:
            sizes = _check_hidden_layer_sizes(self.hidden_layer_sizes)
        with fit_transaction(self):
            X = self._validate_X(X, reset=first)
            X, weights = self._weighted(X, sample_weight)
            if first:
                self._rng = np.random.default_rng(
                    check_random_state(self.random_state).randint(2**31 - 1)
                )
                self._initialize(X, (X.shape[1],) + sizes, weights)
            self._run_epochs(X, 1, weights)
        return self

    # ------------------------------------------------------------ inference
    @property
    def _n_features_out(self) -> int:
        sizes = [b.shape[0] for b in self.recognition_biases_]
        return int(sum(sizes)) if self.transform_layers == "all" else int(sizes[-1])

    def transform(self, X: Any) -> np.ndarray:
        """Recognition probabilities of the top (or every) hidden layer.

        Probabilities, not samples, are passed from layer to layer (a
        deterministic mean-field pass through the recognition network).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data (binarized at ``binarize``, or in ``[0, 1]``).

        Returns
        -------
        H : ndarray of shape (n_samples, n_out), in the model's dtype
            ``n_out`` is the top layer's size, or the sum of all hidden
            sizes with ``transform_layers="all"`` (lowest layer first).
        """
        check_is_fitted(self, "recognition_weights_")
        X = self._validate_X(X, reset=False)
        layers = recognition_probs(
            self._get_ops(fitted=True),
            X,
            self.recognition_weights_,
            self.recognition_biases_,
        )
        if self.transform_layers == "all":
            return np.ascontiguousarray(np.hstack(layers))
        return layers[-1]

    def sample(self, n_samples: int = 1, *, random_state: Any = None) -> np.ndarray:
        """Draw data vectors by ancestral sampling from the generative model.

        The top layer is drawn from its prior, then every layer below from
        its conditional given the layer above.

        Parameters
        ----------
        n_samples : int, default=1
            Number of samples.
        random_state : int, RandomState instance or None, default=None
            Seeds the draws; ``None`` uses the estimator's ``random_state``
            (so an int gives the same samples on every call), as
            :meth:`RBM.sample` and :meth:`DBN.sample` do.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features_in), in the model's dtype
            Binary samples.
        """
        check_is_fitted(self, "generative_weights_")
        n_samples = check_int(n_samples, "n_samples")
        ops = self._get_ops(fitted=True)
        source = self.random_state if random_state is None else random_state
        rng = ops.make_rng(int(check_random_state(source).randint(2**31 - 1)))
        layers = ops.sbn_sample(
            [ops.asarray(W) for W in self.generative_weights_],
            [ops.asarray(b) for b in self.generative_biases_],
            int(n_samples),
            rng,
        )
        return np.asarray(
            ops.to_numpy(layers[0]), dtype=getattr(self, "dtype_", "float32")
        )

    def score_samples(
        self, X: Any, return_std: bool = False
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Importance-sampled estimate of ``log p(x)`` per row, in nats.

        ``log (1/K sum_k p(x, h^k) / q(h^k | x))`` with ``K = n_eval_samples``
        samples ``h^k`` from the recognition network.  The estimate is
        stochastic and, in expectation, a lower bound on ``log p(x)`` that
        tightens as ``K`` grows (see the Notes of the class).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data (binarized at ``binarize``, or in ``[0, 1]``).
        return_std : bool, default=False
            Also return the delta-method standard deviation of each
            estimate, ``sqrt(sum_k w_k^2 - 1/K)`` with ``w`` the normalised
            importance weights.

        Returns
        -------
        log_px : ndarray of shape (n_samples,)
            The estimates.
        std : ndarray of shape (n_samples,)
            Their standard deviations, only with ``return_std=True``.
        """
        check_is_fitted(self, "generative_weights_")
        X = self._validate_X(X, reset=False)
        ops = self._get_ops(fitted=True)
        K = int(self.n_eval_samples)
        seed = int(check_random_state(self.random_state).randint(2**31 - 1))
        params = [
            [ops.asarray(p) for p in group]
            for group in (
                self.generative_weights_,
                self.generative_biases_,
                self.recognition_weights_,
                self.recognition_biases_,
            )
        ]
        widest = max([X.shape[1]] + [b.shape[0] for b in self.recognition_biases_])
        chunk = max(1, _SCORE_CHUNK_ELEMENTS // (K * widest))
        log_px = np.empty(X.shape[0])
        std = np.empty(X.shape[0])
        for start in range(0, X.shape[0], chunk):
            # The same seed for every chunk: the uniforms are common to all rows
            # (see Ops.sbn_log_importance_weights), so chunking changes nothing.
            log_w = np.asarray(
                ops.to_numpy(
                    ops.sbn_log_importance_weights(
                        ops.asarray(take_rows(X, slice(start, start + chunk))),
                        *params,
                        n_samples=K,
                        rng=ops.make_rng(seed),
                    )
                ),
                dtype=np.float64,
            )
            peak = log_w.max(axis=1, keepdims=True)
            w = np.exp(log_w - peak)
            total = w.sum(axis=1)
            log_px[start : start + chunk] = peak[:, 0] + np.log(total) - math.log(K)
            w /= total[:, None]
            std[start : start + chunk] = np.sqrt(
                np.maximum((w * w).sum(axis=1) - 1.0 / K, 0.0)
            )
        return (log_px, std) if return_std else log_px

    def score(self, X: Any, y: Any = None) -> float:
        """Mean importance-sampled estimate of ``log p(x)`` over the rows of ``X`` (nats).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data.
        y : None
            Ignored.

        Returns
        -------
        score : float
            ``score_samples(X).mean()``.
        """
        return float(np.mean(self.score_samples(X)))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # The default dtype="float32" computes in float32 whatever the input dtype.
        tags.transformer_tags.preserves_dtype = (
            ["float32"] if self.dtype == "float32" else ["float64", "float32"]
        )
        tags.input_tags.sparse = True
        return tags
