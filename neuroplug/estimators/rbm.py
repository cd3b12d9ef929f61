"""Restricted Boltzmann machines trained by CD-k or persistent CD-k.

An RBM is an undirected model of visible units ``v`` and binary hidden units
``h`` with energy ``E(v, h) = -v.bv - h.bh - h W v`` (Bernoulli visible units)
or ``|v - bv|^2 / 2 - h.bh - h W v`` (Gaussian visible units of unit
variance).  Every epoch of training is one backend call,
:meth:`neuroplug.ops.Ops.cd_epoch`, so the Cython backend runs the whole loop
(positive phase, Gibbs chain, update) natively and the torch backend on the GPU.
"""

from __future__ import annotations

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

from .._validation import check_int
from ..likelihood import (
    DEFAULT_AIS_BETAS,
    DEFAULT_AIS_RUNS,
    rbm_log_partition_ais,
    rbm_log_partition_exact,
)
from ..models.engine import check_sample_weight, take_rows
from ..models.rbm import RBMState, init_rbm, rbm_hidden_probs, train_rbm
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

__all__ = ["RBM"]

#: ``"auto"`` enumerates exactly when at most this many units must be enumerated.
EXACT_AUTO_UNITS = 20
# Rows x features x hidden units held at once by the pseudo-likelihood.
_PL_CHUNK_ELEMENTS = 1 << 22
# Rows per backend call when transforming or scoring.
_ROW_CHUNK = 4096


class RBM(
    EstimatorMixin,
    RenamedCurveMixin,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    BaseEstimator,
):
    """Restricted Boltzmann machine with Bernoulli or Gaussian visible units, trained by CD-k / PCD-k.

    Training follows Hinton's practical guide: mini-batch contrastive
    divergence with ``k`` steps of block Gibbs sampling (or persistent
    chains, Tieleman 2008), mean-field (probability) reconstructions of the
    visible units, momentum and L2 weight decay.  The hidden units are
    binary; :meth:`transform` returns their probabilities given the data,
    the usual features for a downstream model.

    Parameters
    ----------
    n_components : int, default=256
        Number of hidden units.
    visible : {"bernoulli", "gaussian"}, default="bernoulli"
        Visible unit type.  Bernoulli units model binary data or
        probabilities in ``[0, 1]`` (pixel intensities); Gaussian units of
        unit variance model real values, which should be standardised first
        (e.g. with ``StandardScaler``): the model does not learn a variance.
    k : int, default=1
        Gibbs steps of the negative phase per update.
    persistent : bool, default=False
        Persistent contrastive divergence (PCD-k): the negative chains
        (``batch_size`` of them, kept as hidden states) carry over from one
        update to the next instead of restarting at the data.  The chains
        use mean-field visible units (see :meth:`neuroplug.ops.Ops.cd_epoch`);
        on MNIST this gave lower and much harder-to-estimate likelihoods
        than CD, hence the default.
    sample_visible : bool, default=False
        Run the negative chain on binary visible samples instead of their
        probabilities (Bernoulli units only), as scikit-learn's
        ``BernoulliRBM`` does.  The probabilities (Hinton's advice) carry
        less sampling noise: on MNIST (500 hidden units, 10 epochs) they
        gave a test log-likelihood about 9 nats higher.  Binary samples of
        sparse data are sparse, so on MNIST an epoch is about a fifth
        faster with them.
    learning_rate : float, default=0.1
        Step size of the updates (the gradients are means over the batch).
    momentum : float, default=0.5
        Momentum of the updates, in ``[0, 1)``.
    weight_decay : float, default=0.005
        L2 penalty coefficient on the weights (not the biases).
    batch_size : int, default=100
        Rows per mini-batch.
    shuffle : bool, default=True
        Shuffle the rows before every epoch; ``False`` takes them in order.
    max_iter : int, default=10
        Epochs (passes over the shuffled data) of :meth:`fit`.
    ais_runs : int, default=100
        Independent runs of annealed importance sampling when ``log Z`` is
        estimated (see :meth:`log_partition`).
    ais_betas : int, default=14500
        Number of intermediate temperatures of AIS (the schedule of
        :func:`neuroplug.likelihood.ais_betas`).
    backend : str or Ops, default="cpu"
        Compute backend: a registered name (``"cpu"``, ``"numpy"``,
        ``"torch"``, ``"torch:cuda"``...) or an ``Ops`` instance.
    n_threads : int, default=None
        Thread limit of the backend's kernels (``None``: OpenMP's limit).
    dtype : {"float32", "float64"} or None, default=None
        Precision of the model.  ``None`` keeps float32 input in float32 and
        computes in float64 otherwise.
    random_state : int, RandomState instance or None, default=None
        Seeds the initial weights, the shuffling, every Bernoulli draw of
        training, the initial chains and the AIS runs.  With an int a fit is
        reproducible on a given backend.
    verbose : int, default=0
        Show a progress bar (tqdm) with the reconstruction error per epoch.
    callbacks : tuple of Callback or str, default=()
        Code run during the fit (see :mod:`neuroplug.callbacks`): objects
        such as ``Checkpoint("ckpt/")`` or registered names such as
        ``"csv_logger"``; cloned at every fit.

    Attributes
    ----------
    components_ : ndarray of shape (n_components, n_features_in)
        Weights ``W`` (hidden x visible, as scikit-learn's ``BernoulliRBM``).
    intercept_hidden_ : ndarray of shape (n_components,)
        Hidden biases.
    intercept_visible_ : ndarray of shape (n_features_in,)
        Visible biases (the means of Gaussian visible units given ``h = 0``).
    visible_mean_ : ndarray of shape (n_features_in,)
        Mean of the training data seen so far; the AIS base model is built
        from it.
    n_samples_seen_ : int
        Training rows seen (by :meth:`fit` and :meth:`partial_fit`).
    loss_curve_ : list of float
        After each epoch, the mean over (the first 1,000) training rows of
        the squared error of their mean-field reconstruction ``E[v | p(h | v)]``
        (``reconstruction_errors_`` before 0.2, still readable with a
        FutureWarning).
    history_ : list of dict
        One row per epoch: ``epoch``, ``loss``, ``learning_rate``, ``duration``
        (seconds), kept through :meth:`partial_fit`.
    stop_reason_ : str
        Why the last fit stopped (``"max_iter"`` or ``"interrupted"``).
    n_iter_ : int
        Epochs run (by :meth:`fit`, plus one per :meth:`partial_fit`).
    dtype_ : str
        Precision of the fitted model.
    n_features_in_ : int
        Number of features seen during :meth:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :meth:`fit`, when ``X`` has string
        column names.

    See Also
    --------
    neuroplug.estimators.DBN : A greedy stack of RBMs.
    sklearn.neural_network.BernoulliRBM : scikit-learn's binary RBM (PCD-1,
        no momentum, no weight decay).

    Notes
    -----
    **Scores.**  :meth:`score_samples` returns, by default, the
    pseudo-log-likelihood of Bernoulli units as scikit-learn's
    ``BernoulliRBM`` does, but exactly: the sum over features of
    ``log p(v_i | v_-i)`` (scikit-learn estimates that sum from one random
    feature per row), so it is deterministic and a row's score does not
    depend on the other rows.  :meth:`score` and ``score_samples(X,
    method="loglik")`` use the true log-likelihood ``log p(v) = -F(v) - log
    Z``: ``log Z`` is exact (enumeration) when at most 20 units must be
    enumerated, and an annealed importance sampling estimate otherwise
    (``ais_runs`` runs, ``ais_betas`` temperatures); :meth:`log_partition`
    reports its standard error.  ``log Z`` is computed once per fitted
    model and cached, so a grid search pays for it once per candidate.
    Likelihoods are in nats per row and are only meaningful for the data
    the units model: binary vectors for Bernoulli units.

    **Reproducibility.**  The Cython backend draws its Bernoulli samples
    from the same NumPy generator, in the same order, as the NumPy
    reference, so ``backend="cpu"`` and ``backend="numpy"`` give the same
    fit up to rounding.

    References
    ----------
    .. [1] G. E. Hinton, "Training products of experts by minimizing
       contrastive divergence", Neural Computation 14, 2002.
    .. [2] T. Tieleman, "Training restricted Boltzmann machines using
       approximations to the likelihood gradient", ICML 2008.
    .. [3] G. E. Hinton, "A practical guide to training restricted
       Boltzmann machines", UTML TR 2010-003.
    .. [4] R. Salakhutdinov and I. Murray, "On the quantitative analysis of
       deep belief networks", ICML 2008.

    Examples
    --------
    >>> import numpy as np
    >>> from neuroplug.estimators import RBM
    >>> rng = np.random.default_rng(0)
    >>> X = (rng.random((200, 16)) < np.linspace(0.1, 0.9, 16)).astype(np.float32)
    >>> rbm = RBM(n_components=8, max_iter=5, random_state=0).fit(X)
    >>> rbm.transform(X[:3]).shape
    (3, 8)
    >>> rbm.sample(2, n_steps=10).shape
    (2, 16)
    >>> bool(rbm.score(X) < 0)  # exact log-likelihood: 8 hidden units are enumerated
    True
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(numbers.Integral, 1, None, closed="left")],
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
        "ais_runs": [Interval(numbers.Integral, 2, None, closed="left")],
        "ais_betas": [Interval(numbers.Integral, 3, None, closed="left")],
        "backend": BACKEND_CONSTRAINT,
        "n_threads": N_THREADS_CONSTRAINT,
        "dtype": DTYPE_CONSTRAINT,
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "callbacks": CALLBACKS_CONSTRAINT,
    }

    def __init__(
        self,
        n_components: int = 256,
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
        ais_runs: int = DEFAULT_AIS_RUNS,
        ais_betas: int = DEFAULT_AIS_BETAS,
        backend: str | Ops = "cpu",
        n_threads: int | None = None,
        dtype: str | None = None,
        random_state: Any = None,
        verbose: int = 0,
        callbacks: tuple = (),
    ) -> None:
        self.n_components = n_components
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
        self.ais_runs = ais_runs
        self.ais_betas = ais_betas
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

    def _check_chain(self) -> None:
        """Refuse, before anything changes, a training chain the units cannot run."""
        # A rule between two hyper-parameters: the estimator's, checked before the model changes.
        if self.sample_visible and self.visible != "bernoulli":
            raise ValueError(
                "sample_visible=True samples binary visible states and needs visible='bernoulli'; Gaussian "
                f"visible units are reconstructed by their means. Received: visible={self.visible!r}"
            )

    def _validate_X(self, X: Any, *, reset: bool) -> np.ndarray:
        if reset:
            dtype: Any = (
                [np.float64, np.float32] if self.dtype is None else np.dtype(self.dtype)
            )
        else:
            dtype = np.dtype(self.dtype_)
        # Sparse input stays sparse: training and transforms densify a chunk of rows at a time.
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

    def _params(self, ops: Ops) -> tuple[Any, Any, Any]:
        """The fitted parameters as backend arrays (no copy where the backend allows)."""
        dt = np.dtype(self.dtype_)
        return (
            ops.asarray(self.components_, dtype=dt),
            ops.asarray(self.intercept_hidden_, dtype=dt),
            ops.asarray(self.intercept_visible_, dtype=dt),
        )

    def _seed(self, random_state: Any = None) -> int:
        """An int seed from ``random_state`` (the method's) or else the estimator's ``random_state``."""
        source = self.random_state if random_state is None else random_state
        return int(check_random_state(source).randint(2**31 - 1))

    def _initialize(
        self, X: np.ndarray, column_sums: np.ndarray, total_weight: float
    ) -> None:
        """Fresh model (``column_sums`` holds ``X``'s (weighted) column sums in float64)."""
        self._rng = np.random.default_rng(self._seed())
        state = init_rbm(
            int(self.n_components),
            column_sums / total_weight,
            self.visible,
            self.dtype_,
            self._rng,
        )
        self._set_state(state)
        self.visible_mean_ = np.zeros(X.shape[1])
        self.n_samples_seen_ = 0
        self._weight_seen = 0.0
        self.n_iter_ = 0
        self.loss_curve_ = []
        self.history_ = []
        self._log_z_cache: dict = {}

    reconstruction_errors_ = renamed_curve("reconstruction_errors_")
    _curve_display = ("reconstruction error", 1.0)
    _old_curve = ("reconstruction_errors_", 1.0)

    def _state(self) -> RBMState:
        return RBMState(
            self.components_,
            self.intercept_hidden_,
            self.intercept_visible_,
            self._velocity,
            self._chain,
        )

    def _set_state(self, state: RBMState) -> None:
        self.components_, self.intercept_hidden_, self.intercept_visible_ = (
            state.W,
            state.bh,
            state.bv,
        )
        self._velocity, self._chain = state.velocity, state.chain

    def _run_epochs(
        self,
        X: np.ndarray,
        n_epochs: int,
        column_sums: np.ndarray,
        total_weight: float,
        sample_weight: np.ndarray | None = None,
    ) -> None:
        ops = self._get_ops()
        state, report = train_rbm(
            self._state(),
            X,
            ops=ops,
            rng=self._rng,
            n_epochs=n_epochs,
            visible=self.visible,
            k=int(self.k),
            persistent=bool(self.persistent),
            sample_visible=bool(self.sample_visible),
            learning_rate=float(self.learning_rate),
            momentum=float(self.momentum),
            weight_decay=float(self.weight_decay),
            batch_size=int(self.batch_size),
            start_epoch=self.n_iter_,
            verbose=int(self.verbose),
            name=type(self).__name__,
            callbacks=fit_callbacks(self, type(self)._set_state),
            shuffle=bool(self.shuffle),
            sample_weight=sample_weight,
        )
        self._set_state(state)
        # Running (weighted) mean of the data seen, for the AIS base model.
        w_old = float(getattr(self, "_weight_seen", self.n_samples_seen_))
        self.n_samples_seen_ += X.shape[0]
        self._weight_seen = w_old + total_weight
        self.visible_mean_ = (
            self.visible_mean_ * w_old + column_sums
        ) / self._weight_seen
        self._log_z_cache = {}
        self.loss_curve_.extend(row["loss"] for row in report.history)
        self.history_ = [*getattr(self, "history_", []), *report.history]
        self.n_iter_ += report.n_epochs
        self.stop_reason_, self.best_epoch_ = report.stop_reason, report.best_epoch

    # ----------------------------------------------------------------- fit
    def _weighted_data(
        self, X: Any, sample_weight: Any
    ) -> tuple[Any, np.ndarray | None, np.ndarray, float]:
        """``(X, weights, column sums, total weight)``; rows of weight 0 are dropped (as if absent)."""
        weights = check_sample_weight(sample_weight, X.shape[0])
        if weights is not None and not (weights > 0).all():
            keep = weights > 0
            X, weights = X[keep], weights[keep]
        if weights is None:
            sums = np.asarray(X.sum(axis=0, dtype=np.float64)).reshape(-1)
            return X, None, sums, float(X.shape[0])
        sums = np.asarray(X.T @ weights, dtype=np.float64).reshape(-1)
        return X, weights, sums, float(weights.sum())

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> RBM:
        """Train the RBM for ``max_iter`` epochs of CD-k (or PCD-k).

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data: values in ``[0, 1]`` for Bernoulli units,
            standardised real values for Gaussian units.  A sparse matrix
            (CSR or CSC) is densified a chunk of whole batches at a time,
            never whole.
        y : None
            Ignored.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each row: its CD statistics count its
            weight relative to the mean weight (a row of weight 2 counts
            twice in its batch); rows of weight 0 are dropped.

        Returns
        -------
        self : RBM
            The fitted estimator.
        """
        self._check_chain()
        with fit_transaction(self):
            X = self._validate_X(X, reset=True)
            X, weights, sums, total = self._weighted_data(X, sample_weight)
            self._initialize(X, sums, total)
            self._run_epochs(X, int(self.max_iter), sums, total, weights)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> RBM:
        """Run one epoch of CD-k over ``X``, initialising the model on the first call.

        Momentum and persistent chains carry over between calls.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data.
        y : None
            Ignored.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each row (relative to this call's mean
            weight, as in :meth:`fit`).

        Returns
        -------
        self : RBM
            The updated estimator.
        """
        first = not hasattr(self, "components_")
        self._check_chain()
        with fit_transaction(self):
            X = self._validate_X(X, reset=first)
            X, weights, sums, total = self._weighted_data(X, sample_weight)
            if first:
                self._initialize(X, sums, total)
            self._run_epochs(X, 1, sums, total, weights)
        return self

    # ------------------------------------------------------------ inference
    @property
    def _n_features_out(self) -> int:
        return int(self.components_.shape[0])

    def transform(self, X: Any) -> np.ndarray:
        """Hidden unit probabilities ``p(h = 1 | v) = sigmoid(v W^T + bh)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data.

        Returns
        -------
        H : ndarray of shape (n_samples, n_components)
            In the model's dtype.
        """
        check_is_fitted(self, "components_")
        X = self._validate_X(X, reset=False)
        return rbm_hidden_probs(
            self._get_ops(fitted=True), X, self.components_, self.intercept_hidden_
        )

    def free_energy(self, X: Any) -> np.ndarray:
        """Free energy ``F(v)`` of each row: ``p(v) = exp(-F(v)) / Z``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data.

        Returns
        -------
        F : ndarray of shape (n_samples,), float64
        """
        check_is_fitted(self, "components_")
        X = self._validate_X(X, reset=False)
        return self._free_energy(X, self._get_ops(fitted=True))

    def _free_energy(self, X: np.ndarray, ops: Ops) -> np.ndarray:
        W, bh, bv = self._params(ops)
        out = np.empty(X.shape[0], dtype=np.float64)
        for start in range(0, X.shape[0], _ROW_CHUNK):
            out[start : start + _ROW_CHUNK] = ops.to_numpy(
                ops.rbm_free_energy(
                    ops.asarray(
                        take_rows(X, slice(start, start + _ROW_CHUNK)), dtype=W.dtype
                    ),
                    W,
                    bh,
                    bv,
                    self.visible,
                )
            )
        return out

    def gibbs(
        self, v: Any, n_steps: int = 1, *, random_state: Any = None
    ) -> np.ndarray:
        """Run ``n_steps`` steps of block Gibbs sampling v -> h -> v from ``v``.

        Parameters
        ----------
        v : array-like of shape (n_samples, n_features)
            Start states of the visible units.
        n_steps : int, default=1
            Full Gibbs steps.
        random_state : int, RandomState instance or None, default=None
            Seeds the draws; ``None`` uses the estimator's ``random_state``
            (so an int gives the same chain on every call).

        Returns
        -------
        v_new : ndarray of shape (n_samples, n_features)
            Visible samples after the last step (binary for Bernoulli
            units).
        """
        check_is_fitted(self, "components_")
        n_steps = check_int(n_steps, "n_steps", 0)
        v = self._validate_X(v, reset=False)
        v = v.toarray() if hasattr(v, "toarray") else v
        ops = self._get_ops(fitted=True)
        W, bh, bv = self._params(ops)
        rng = ops.make_rng(self._seed(random_state))
        out = ops.rbm_gibbs(
            ops.asarray(v), W, bh, bv, steps=n_steps, visible=self.visible, rng=rng
        )
        return np.array(ops.to_numpy(out), dtype=self.dtype_)

    def sample(
        self, n_samples: int = 1, *, n_steps: int = 1000, random_state: Any = None
    ) -> np.ndarray:
        """Generate visible vectors by block Gibbs sampling from the model.

        The chains start from the visible biases alone (independent
        Bernoulli units with probabilities ``sigmoid(bv)``, or ``N(bv, I)``)
        and run ``n_steps`` Gibbs steps.

        Parameters
        ----------
        n_samples : int, default=1
            Number of independent chains (samples).
        n_steps : int, default=1000
            Gibbs steps per chain (the burn-in).
        random_state : int, RandomState instance or None, default=None
            Seeds the chains; ``None`` uses the estimator's ``random_state``.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features_in)
            The samples.
        """
        check_is_fitted(self, "components_")
        n_samples = check_int(n_samples, "n_samples")
        n_steps = check_int(n_steps, "n_steps", 0)
        ops = self._get_ops(fitted=True)
        W, bh, bv = self._params(ops)
        dt = np.dtype(self.dtype_)
        rng = ops.make_rng(self._seed(random_state))
        start = ops.alloc((n_samples, W.shape[1]), dt) + bv
        if self.visible == "bernoulli":
            v0 = ops.bernoulli(ops.sigmoid(start), rng)
        else:
            v0 = start + ops.random_normal(rng, (n_samples, W.shape[1]), dt)
        out = ops.rbm_gibbs(v0, W, bh, bv, steps=n_steps, visible=self.visible, rng=rng)
        return np.array(ops.to_numpy(out), dtype=dt)

    # -------------------------------------------------------------- scores
    def log_partition(
        self,
        method: str = "auto",
        *,
        random_state: Any = None,
        return_std: bool = False,
    ) -> float | tuple[float, float]:
        """``log Z``, the log of the model's normalising constant, in nats.

        Parameters
        ----------
        method : {"auto", "exact", "ais"}, default="auto"
            ``"exact"`` enumerates the states of the smaller layer (the
            hidden one for Gaussian units; at most 2**25 states);
            ``"ais"`` runs annealed importance sampling with ``ais_runs``
            runs and ``ais_betas`` temperatures from a base model fitted to
            the training data's mean (:func:`neuroplug.likelihood.rbm_log_partition_ais`);
            ``"auto"`` is exact when at most 20 units must be enumerated,
            else AIS.
        random_state : int, RandomState instance or None, default=None
            Seeds AIS; ``None`` uses the estimator's ``random_state``.
            The result of a call without ``random_state`` is cached until
            the model changes.
        return_std : bool, default=False
            Also return the standard error of the estimate (0 when exact).

        Returns
        -------
        log_z : float
        std : float
            Only with ``return_std=True``.
        """
        check_is_fitted(self, "components_")
        method = self._resolve_method(method)
        key = (method, int(self.ais_runs), int(self.ais_betas))
        cache = self.__dict__.setdefault("_log_z_cache", {})
        if random_state is None and key in cache:
            log_z, std = cache[key]
        else:
            if method == "exact":
                log_z, std = (
                    rbm_log_partition_exact(
                        self.components_,
                        self.intercept_hidden_,
                        self.intercept_visible_,
                        self.visible,
                        max_units=25,
                    ),
                    0.0,
                )
            else:
                base = self._base_bias()
                result = rbm_log_partition_ais(
                    self.components_,
                    self.intercept_hidden_,
                    self.intercept_visible_,
                    self.visible,
                    base_bias=base,
                    n_runs=int(self.ais_runs),
                    betas=int(self.ais_betas),
                    ops=self._get_ops(fitted=True),
                    random_state=self._seed(random_state),
                )
                log_z, std = result.log_z, result.log_z_std
            if random_state is None:
                cache[key] = (log_z, std)
        return (float(log_z), float(std)) if return_std else float(log_z)

    def _base_bias(self) -> np.ndarray:
        """Visible biases of the AIS base model, from the training data's mean."""
        if self.visible == "gaussian":
            return np.asarray(self.visible_mean_, dtype=np.float64)
        # Smoothed as the marginals of a few extra half-on rows, so no unit is certain.
        n = max(int(self.n_samples_seen_), 1)
        p = (np.asarray(self.visible_mean_) * n + 0.05) / (n + 0.1)
        p = np.clip(p, 1e-6, 1 - 1e-6)
        return np.log(p) - np.log1p(-p)

    def _resolve_method(self, method: str) -> str:
        if method not in ("auto", "exact", "ais"):
            raise ValueError(
                f"method must be 'auto', 'exact' or 'ais'. Received: method={method!r}"
            )
        if method != "auto":
            return method
        nh, nv = self.components_.shape
        n_enum = nh if self.visible == "gaussian" else min(nh, nv)
        return "exact" if n_enum <= EXACT_AUTO_UNITS else "ais"

    def score_samples(self, X: Any, method: str | None = None) -> np.ndarray:
        """Per-row pseudo-log-likelihood (default for Bernoulli units) or log-likelihood, in nats.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data (binary vectors for a meaningful Bernoulli likelihood).
        method : {"pseudo", "loglik", "exact", "ais"} or None, default=None
            ``"pseudo"``: ``sum_i log p(v_i | v_-i)``, the pseudo-likelihood
            that scikit-learn's ``BernoulliRBM.score_samples`` estimates
            from one random feature, computed exactly (the "flip" of a
            non-binary value ``v_i`` is ``1 - v_i``, as in scikit-learn);
            Bernoulli units only.  ``"loglik"``: ``-F(v) - log Z`` with
            ``log_partition("auto")``; ``"exact"`` / ``"ais"`` force how
            ``log Z`` is computed.  ``None``: ``"pseudo"`` for Bernoulli
            units, ``"loglik"`` for Gaussian units (whose pseudo-likelihood
            has no closed form).

        Returns
        -------
        scores : ndarray of shape (n_samples,), float64
        """
        check_is_fitted(self, "components_")
        if method is None:
            method = "pseudo" if self.visible == "bernoulli" else "loglik"
        if method not in ("pseudo", "loglik", "exact", "ais"):
            raise ValueError(
                f"method must be 'pseudo', 'loglik', 'exact', 'ais' or None. Received: method={method!r}"
            )
        if method == "pseudo" and self.visible != "bernoulli":
            raise ValueError(
                "The pseudo-likelihood is only available for Bernoulli visible units; use "
                "method='loglik' for Gaussian units. Received: method='pseudo'"
            )
        X = self._validate_X(X, reset=False)
        ops = self._get_ops(fitted=True)
        if method == "pseudo":
            return self._pseudo_likelihood(X, ops)
        log_z = self.log_partition("auto" if method == "loglik" else method)
        return -self._free_energy(X, ops) - log_z

    def _pseudo_likelihood(self, X: np.ndarray, ops: Ops) -> np.ndarray:
        """``sum_i log sigmoid(F(v with v_i flipped) - F(v))`` per row, all through ``ops``.

        Flipping ``v_i`` to ``1 - v_i`` changes the hidden pre-activations
        by ``(1 - 2 v_i) W[:, i]``, so each feature costs one element-wise
        softplus over the hidden units instead of a full free energy.
        """
        W, bh, bv = self._params(ops)
        nh, nv = self.components_.shape
        WT = ops.asarray(np.ascontiguousarray(self.components_.T))
        out = np.zeros(X.shape[0], dtype=np.float64)
        rows = max(1, min(_ROW_CHUNK, _PL_CHUNK_ELEMENTS // (nh * nv)))
        for r0 in range(0, X.shape[0], rows):
            v = ops.asarray(take_rows(X, slice(r0, r0 + rows)), dtype=W.dtype)
            act = ops.gemm(v, W, trans2=True) + bh  # (m, nh)
            base = ops.softplus(act).sum(axis=1)  # (m,)
            cols = max(1, _PL_CHUNK_ELEMENTS // (v.shape[0] * nh))
            total = None
            for c0 in range(0, nv, cols):
                delta = 1 - 2 * v[:, c0 : c0 + cols]  # (m, c)
                flipped = (
                    act[:, None, :] + delta[:, :, None] * WT[None, c0 : c0 + cols, :]
                )
                # F(v') - F(v) = -delta_i bv_i - (sum softplus(act') - sum softplus(act))
                dF = -delta * bv[c0 : c0 + cols] - (
                    ops.softplus(flipped).sum(axis=2) - base[:, None]
                )
                # log p(v_i | v_-i) = log sigmoid(F(v') - F(v)) = -softplus(-dF)
                part = (-ops.softplus(-dF)).sum(axis=1)
                total = part if total is None else total + part
            out[r0 : r0 + rows] = np.asarray(ops.to_numpy(total), dtype=np.float64)
        return out

    def score(self, X: Any, y: Any = None) -> float:
        """Mean log-likelihood ``log p(v)`` of the rows of ``X``, in nats.

        Exact when at most 20 units must be enumerated, else estimated with
        AIS (see :meth:`log_partition`); higher is better, so
        ``GridSearchCV`` can select RBMs by it.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Data.
        y : None
            Ignored.

        Returns
        -------
        score : float
        """
        return float(np.mean(self.score_samples(X, method="loglik")))

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.input_tags.sparse = True
        return tags
