"""Convolutional RBMs and convolutional deep belief nets with probabilistic max-pooling.

:class:`ConvRBM` is one convolutional restricted Boltzmann machine (shared
filters, Bernoulli or Gaussian visible units, Bernoulli detection units
pooled by probabilistic max-pooling) trained with CD-k; :class:`ConvDBN`
stacks them greedily, each trained on the pooling-layer probabilities of the
one below (Lee, Grosse, Ranganath & Ng, ICML 2009).  Both are scikit-learn
transformers whose ``transform`` gives the (top) pooling-layer
probabilities.

All computation goes through the backend's ``Ops`` (``crbm_cd_epoch``,
``crbm_pool_probs``, ...), so on the default ``"cpu"`` backend the CD loop
runs on the compiled convolution kernels.  Fitted models hold NumPy arrays
only.
"""

from __future__ import annotations

import copy
import math
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

from ..models.crbm import crbm_pool_output, train_crbm
from ..models.engine import training_session, warn_interrupted
from ..ops import Ops, conv2d_output_shape, normalize_pair
from ..pretrain.cdbn import renamed_n_iter
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
from ._images import resolve_input_shape, split_image_input

__all__ = ["ConvRBM", "ConvDBN"]

_TRANSFORM_BATCH = 256


# ---------------------------------------------------------------------------
# Input handling shared by the two estimators
# ---------------------------------------------------------------------------
def _check_visible_data(X: np.ndarray, visible: str) -> None:
    if visible == "bernoulli" and X.size and (X.min() < 0 or X.max() > 1):
        raise ValueError(
            "visible='bernoulli' needs X in [0, 1] (binary pixels or probabilities); scale X (e.g. "
            "MinMaxScaler) or use visible='gaussian' with standardised X. "
            f"Received: X with values in [{X.min():.4g}, {X.max():.4g}]"
        )


class _ConvBase(
    EstimatorMixin, ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator
):
    """Validation shared by :class:`ConvRBM` and :class:`ConvDBN`."""

    def _validate_images(self, X: Any, *, reset: bool) -> np.ndarray:
        """Validated 4-D image array of the fit dtype; sets the input attributes when ``reset``."""
        X, image_shape = split_image_input(X)
        if reset:
            dtype: Any = (
                [np.float64, np.float32] if self.dtype is None else np.dtype(self.dtype)
            )
        else:
            dtype = np.dtype(self.dtype_)
        X = validate_data(self, X, reset=reset, dtype=dtype)
        if reset:
            self.dtype_ = X.dtype.name
            self.input_shape_ = resolve_input_shape(
                self.input_shape, X.shape[1], image_shape, signals=True
            )
        elif image_shape is not None and image_shape != self.input_shape_:
            raise ValueError(
                f"X has images of shape {image_shape} but the model was fitted on {self.input_shape_}. "
                f"Received: X.shape={(X.shape[0], *image_shape)}"
            )
        return np.ascontiguousarray(X.reshape(X.shape[0], *self.input_shape_))

    def _get_ops(self, *, fitted: bool = False) -> Ops:
        return resolve_ops(
            self.backend, self.n_threads, fitted=fitted, owner=type(self).__name__
        )

    @property
    def _n_features_out(self) -> int:
        return math.prod(self.output_shape_)

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


_COMMON_CONSTRAINTS: dict = {
    "visible": [StrOptions({"bernoulli", "gaussian"})],
    "k": [Interval(numbers.Integral, 1, None, closed="left")],
    "momentum": [Interval(numbers.Real, 0, 1, closed="left")],
    "weight_decay": [Interval(numbers.Real, 0, None, closed="left")],
    "sparsity_cost": [Interval(numbers.Real, 0, None, closed="left")],
    "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
    "shuffle": ["boolean"],
    "input_shape": [None, tuple, list],
    "backend": BACKEND_CONSTRAINT,
    "n_threads": N_THREADS_CONSTRAINT,
    "dtype": DTYPE_CONSTRAINT,
    "random_state": ["random_state"],
    "verbose": ["verbose"],
    "callbacks": CALLBACKS_CONSTRAINT,
}


# ---------------------------------------------------------------------------
# ConvRBM
# ---------------------------------------------------------------------------
def _apply_crbm_state(estimator: Any, state: tuple) -> None:
    estimator.components_, estimator.intercept_hidden_, estimator.intercept_visible_ = (
        state
    )


class ConvRBM(RenamedCurveMixin, _ConvBase):
    """Convolutional restricted Boltzmann machine with probabilistic max-pooling.

    ``filters`` shared ``kernel_size`` filters connect the visible image to
    as many detection maps (a "valid" convolution); each detection map is cut
    into ``pool_size`` blocks of which at most one unit is on, and a pooling
    unit per block is on exactly when one of its units is (Lee et al. 2009).
    The filters are learnt by contrastive divergence (CD-k) with a sparsity
    penalty that pulls each map's mean activation towards
    ``sparsity_target``.

    Parameters
    ----------
    filters : int, default=24
        Number of filters (detection and pooling maps).
    kernel_size : int or (int, int), default=5
        Filter height and width.
    pool_size : int or (int, int), default=2
        Probabilistic max-pooling block size ``C`` (``C x C`` blocks). Maps
        whose size is not a multiple get partial blocks at the far edges.
        1 gives an ordinary convolutional RBM (independent sigmoid units).
    visible : {"bernoulli", "gaussian"}, default="bernoulli"
        Visible unit type: Bernoulli for binary or [0, 1] data, Gaussian
        with unit variance for real data (standardise it first).
    k : int, default=1
        Gibbs steps per CD update.
    learning_rate : float, default=0.2
        Step size; gradients are averaged over the samples and the image
        positions, so it does not depend on the image size.
    momentum : float, default=0.9
        Momentum of the parameter updates.
    weight_decay : float, default=1e-4
        L2 penalty on the filters.
    sparsity_target : float, default=0.05
        Target mean probability of the detection units.
    sparsity_cost : float, default=0.5
        Strength of the sparsity penalty on the hidden biases (0 turns it off).
    batch_size : int, default=20
        Images per CD update.
    shuffle : bool, default=True
        Shuffle the images before every epoch; ``False`` takes them in order.
    max_iter : int, default=10
        Epochs over the training set.
    input_shape : tuple of int, optional
        ``(channels, height, width)`` or ``(height, width)`` of the images
        when ``X`` is 2-D.  Inferred from 3-D/4-D ``X``; for 2-D ``X``
        without it, a square number of features is a square single-channel
        image and any other a one-row image (a 1-D signal, for which
        ``kernel_size`` and ``pool_size`` need height 1, e.g. ``(1, 5)``).
    backend : str or Ops, default="cpu"
        Registered backend name (``"cpu"``, ``"numpy"``, ``"torch:cuda"``...).
    n_threads : int, optional
        Thread limit of the backend's kernels.
    dtype : {"float32", "float64"}, optional
        Training dtype; by default float32 input stays float32 and anything
        else is float64.
    random_state : int, RandomState instance or None, default=None
        Seed of the initial filters, the shuffling and the Gibbs samples.
    verbose : int, default=0
        Show a progress bar with the reconstruction error.
    n_iter : int, default="deprecated"
        Former name of ``max_iter``; when set, it is used with a
        ``FutureWarning``.  It will be removed in neuroplug 0.3.

    Attributes
    ----------
    components_ : ndarray of shape (filters, channels, kh, kw)
        The filters.
    intercept_hidden_ : ndarray of shape (filters,)
        Biases of the detection maps.
    intercept_visible_ : ndarray of shape (channels,)
        Biases of the visible channels (shared over positions).
    input_shape_ : tuple of int
        ``(channels, height, width)`` of the input images.
    hidden_shape_ : tuple of int
        ``(filters, out_h, out_w)`` of the detection layer.
    output_shape_ : tuple of int
        ``(filters, ceil(out_h / C), ceil(out_w / C))`` of the pooling layer
        (what ``transform`` returns, flattened).
    pool_size_ : (int, int)
        The pooling block size the model was trained with.
    loss_curve_ : list of float
        Mean squared reconstruction error per image, one per epoch
        (``reconstruction_errors_`` before 0.2, still readable with a
        FutureWarning).
    history_ : list of dict
        One row per epoch: ``epoch``, ``loss``, ``learning_rate``, ``duration``.
    stop_reason_ : str
        Why the fit stopped (``"max_iter"`` or ``"interrupted"``).
    n_iter_ : int
        Epochs run.
    dtype_ : str
        The training dtype.
    n_features_in_ : int
        Number of features seen in ``fit``.

    See Also
    --------
    ConvDBN : Greedily stacked ConvRBMs.
    sklearn.neural_network.BernoulliRBM : The fully connected RBM.

    References
    ----------
    H. Lee, R. Grosse, R. Ranganath and A. Y. Ng. Convolutional deep belief
    networks for scalable unsupervised learning of hierarchical
    representations. ICML 2009.

    H. Lee, C. Ekanadham and A. Y. Ng. Sparse deep belief net model for
    visual area V2. NIPS 2008.

    Examples
    --------
    >>> from neuroplug.datasets import load_digits_images
    >>> from neuroplug.estimators import ConvRBM
    >>> X, y, shape = load_digits_images()
    >>> rbm = ConvRBM(8, kernel_size=3, max_iter=2, random_state=0, backend="numpy").fit(X[:100])
    >>> rbm.transform(X[:3]).shape
    (3, 72)
    """

    _parameter_constraints: dict = {
        "filters": [Interval(numbers.Integral, 1, None, closed="left")],
        "kernel_size": [
            Interval(numbers.Integral, 1, None, closed="left"),
            tuple,
            list,
        ],
        "pool_size": [Interval(numbers.Integral, 1, None, closed="left"), tuple, list],
        "learning_rate": [Interval(numbers.Real, 0, None, closed="neither")],
        "sparsity_target": [Interval(numbers.Real, 0, 1, closed="neither")],
        "max_iter": [Interval(numbers.Integral, 0, None, closed="left")],
        "n_iter": [
            Interval(numbers.Integral, 0, None, closed="left"),
            StrOptions({"deprecated"}),
        ],
        **_COMMON_CONSTRAINTS,
    }

    def __init__(
        self,
        filters: int = 24,
        *,
        kernel_size: int | tuple[int, int] = 5,
        pool_size: int | tuple[int, int] = 2,
        visible: str = "bernoulli",
        k: int = 1,
        learning_rate: float = 0.2,
        momentum: float = 0.9,
        weight_decay: float = 1e-4,
        sparsity_target: float = 0.05,
        sparsity_cost: float = 0.5,
        batch_size: int = 20,
        shuffle: bool = True,
        max_iter: int = 10,
        input_shape: tuple[int, ...] | None = None,
        backend: str | Ops = "cpu",
        n_threads: int | None = None,
        dtype: str | None = None,
        random_state: Any = None,
        verbose: int = 0,
        callbacks: tuple = (),
        n_iter: Any = "deprecated",
    ) -> None:
        self.filters = filters
        self.kernel_size = kernel_size
        self.pool_size = pool_size
        self.visible = visible
        self.k = k
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.sparsity_target = sparsity_target
        self.sparsity_cost = sparsity_cost
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.max_iter = max_iter
        self.input_shape = input_shape
        self.backend = backend
        self.n_threads = n_threads
        self.dtype = dtype
        self.random_state = random_state
        self.verbose = verbose
        self.callbacks = callbacks
        self.n_iter = n_iter

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any = None) -> ConvRBM:
        """Learn the filters from the images ``X`` by CD-k.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), (n, h, w) or (n, c, h, w)
            Training images.
        y : ignored
            Present for API consistency (unsupervised).

        Returns
        -------
        self : ConvRBM
            The fitted model.
        """
        with fit_transaction(self):
            X = self._validate_images(X, reset=True)
            kernel = normalize_pair(self.kernel_size, "kernel_size")
            pool = normalize_pair(self.pool_size, "pool_size")
            self._fit_images(
                X, kernel, pool, check_random_state(self.random_state), self._get_ops()
            )
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X: Any, y: Any = None) -> ConvRBM:
        """Run one epoch of CD-k over the images ``X``, initialising the filters on the first call.

        Filters, biases, momentum buffers and the shuffling stream carry
        over between calls.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), (n, h, w) or (n, c, h, w)
            Training images.
        y : ignored
            Present for API consistency (unsupervised).

        Returns
        -------
        self : ConvRBM
            The updated model.
        """
        first = not hasattr(self, "components_")
        with fit_transaction(self):
            X = self._validate_images(X, reset=first)
            kernel = normalize_pair(self.kernel_size, "kernel_size")
            pool = normalize_pair(self.pool_size, "pool_size")
            self._fit_images(
                X,
                kernel,
                pool,
                check_random_state(self.random_state),
                self._get_ops(),
                incremental=True,
            )
        return self

    def _fit_images(
        self,
        X: np.ndarray,
        kernel: tuple[int, int],
        pool: tuple[int, int],
        random_state: np.random.RandomState,
        ops: Ops,
        desc: str = "ConvRBM",
        *,
        incremental: bool = False,
    ) -> None:
        """Train on validated 4-D images (also the per-layer step of :class:`ConvDBN`).

        With ``incremental``, a fitted model runs one more epoch from its
        current state (``partial_fit``); an unfitted one is initialised first.
        """
        c, h, w = X.shape[1:]
        if kernel[0] > h or kernel[1] > w:
            raise ValueError(
                f"kernel_size {kernel} is larger than the images ({h}, {w}); set input_shape if X is 2-D. "
                f"Received: kernel_size={self.kernel_size!r}, input_shape={self.input_shape!r}"
            )
        _check_visible_data(X, self.visible)
        if incremental and hasattr(self, "components_"):
            if (int(c), int(h), int(w)) != tuple(self.input_shape_):
                raise ValueError(
                    f"X has images of shape {(c, h, w)} but the model was fitted on "
                    f"{self.input_shape_}. Received: X.shape={X.shape}"
                )
            velocity = getattr(self, "_velocity", None) or tuple(
                np.zeros_like(a)
                for a in (
                    self.components_,
                    self.intercept_hidden_,
                    self.intercept_visible_,
                )
            )
            init_state = (
                self.components_,
                self.intercept_hidden_,
                self.intercept_visible_,
                *velocity,
            )
            rng = self._rng
        else:
            init_state = None
            rng = np.random.default_rng(random_state.randint(2**31 - 1))
            self.loss_curve_, self.history_, self.n_iter_ = [], [], 0
        # Shapes first: a callback's snapshot during training is a complete model.
        oh, ow = conv2d_output_shape((h, w), kernel, (1, 1), (0, 0))
        self.input_shape_ = (int(c), int(h), int(w))
        self.hidden_shape_ = (int(self.filters), oh, ow)
        self.output_shape_ = (int(self.filters), *Ops.crbm_pool_shape((oh, ow), pool))
        self.pool_size_ = pool
        W, bh, bv, report = train_crbm(
            X,
            filters=int(self.filters),
            kernel_size=kernel,
            pool_size=pool,
            visible=self.visible,
            ops=ops,
            rng=rng,
            k=int(self.k),
            learning_rate=float(self.learning_rate),
            momentum=float(self.momentum),
            weight_decay=float(self.weight_decay),
            sparsity_target=float(self.sparsity_target),
            sparsity_cost=float(self.sparsity_cost),
            batch_size=int(self.batch_size),
            max_iter=1 if incremental else int(renamed_n_iter(self)),
            verbose=self.verbose,
            desc=desc,
            callbacks=fit_callbacks(self, _apply_crbm_state),
            init_state=init_state,
            shuffle=bool(self.shuffle),
            start_epoch=self.n_iter_,
        )
        self.components_, self.intercept_hidden_, self.intercept_visible_ = W, bh, bv
        self._velocity, self._rng = tuple(report.state[3:]), rng
        self.loss_curve_ = [*self.loss_curve_, *(row["loss"] for row in report.history)]
        self.history_ = [*self.history_, *report.history]
        self.n_iter_ += report.n_epochs
        self.stop_reason_, self.best_epoch_ = report.stop_reason, report.best_epoch

    reconstruction_errors_ = renamed_curve("reconstruction_errors_")
    _curve_display = ("reconstruction error", 1.0)
    _old_curve = ("reconstruction_errors_", 1.0)

    def _transform_images(
        self, X: np.ndarray, ops: Ops, *, hidden: bool = False
    ) -> np.ndarray:
        return crbm_pool_output(
            ops,
            X,
            self.components_,
            self.intercept_hidden_,
            self.pool_size_,
            hidden=hidden,
        )

    def transform(self, X: Any) -> np.ndarray:
        """Pooling-layer probabilities ``P(p_block = 1 | v)``, flattened.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), (n, h, w) or (n, c, h, w)
            Images.

        Returns
        -------
        P : ndarray of shape (n_samples, prod(output_shape))
            Pooling probabilities in ``(filters, pool_h, pool_w)`` order.
        """
        check_is_fitted(self, "components_")
        X = self._validate_images(X, reset=False)
        return self._transform_images(X, self._get_ops(fitted=True)).reshape(
            X.shape[0], -1
        )

    def hidden_probabilities(self, X: Any) -> np.ndarray:
        """Detection-layer probabilities ``P(h = 1 | v)`` as ``(n, filters, out_h, out_w)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), (n, h, w) or (n, c, h, w)
            Images.

        Returns
        -------
        H : ndarray of shape (n_samples, filters, out_h, out_w)
            Within each pooling block the probabilities sum to at most 1.
        """
        check_is_fitted(self, "components_")
        X = self._validate_images(X, reset=False)
        return self._transform_images(X, self._get_ops(fitted=True), hidden=True)

    def free_energy(self, X: Any) -> np.ndarray:
        """Free energy ``F(v)`` of each image (``p(v)`` is proportional to ``exp(-F(v))``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), (n, h, w) or (n, c, h, w)
            Images.

        Returns
        -------
        F : ndarray of shape (n_samples,)
            Lower means more probable under the model.
        """
        check_is_fitted(self, "components_")
        X = self._validate_images(X, reset=False)
        ops = self._get_ops(fitted=True)
        W, bh, bv = (
            ops.asarray(a)
            for a in (self.components_, self.intercept_hidden_, self.intercept_visible_)
        )
        out = [
            np.asarray(
                ops.to_numpy(
                    ops.crbm_free_energy(
                        ops.asarray(X[s : s + _TRANSFORM_BATCH]),
                        W,
                        bh,
                        bv,
                        pool_size=self.pool_size_,
                        visible=self.visible,
                    )
                )
            )
            for s in range(0, X.shape[0], _TRANSFORM_BATCH)
        ]
        return np.concatenate(out)

    def reconstruct(self, X: Any) -> np.ndarray:
        """Mean-field reconstruction: visible means given the detection probabilities of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), (n, h, w) or (n, c, h, w)
            Images.

        Returns
        -------
        V : ndarray of the shape of the validated ``X`` (2-D input gives 2-D output)
            Reconstructed images.
        """
        check_is_fitted(self, "components_")
        flat = getattr(X, "ndim", 2) == 2
        X = self._validate_images(X, reset=False)
        ops = self._get_ops(fitted=True)
        H = self._transform_images(X, ops, hidden=True)
        W, bv = ops.asarray(self.components_), ops.asarray(self.intercept_visible_)
        out = np.concatenate(
            [
                np.asarray(
                    ops.to_numpy(
                        ops.crbm_visible_means(
                            ops.asarray(H[s : s + _TRANSFORM_BATCH]),
                            W,
                            bv,
                            X[s : s + _TRANSFORM_BATCH].shape,
                            self.visible,
                        )
                    )
                )
                for s in range(0, X.shape[0], _TRANSFORM_BATCH)
            ]
        )
        return out.reshape(X.shape[0], -1) if flat else out


# ---------------------------------------------------------------------------
# ConvDBN
# ---------------------------------------------------------------------------
def _per_layer(value: Any, n_layers: int, name: str) -> list[Any]:
    """A scalar (or int pair) for every layer, or a list/tuple with one entry per layer."""
    if isinstance(value, (list, tuple)):
        if len(value) != n_layers:
            raise ValueError(
                f"{name} must be a single value or hold one value per layer ({n_layers}, as many as "
                f"filters). Received: {name}={value!r}"
            )
        return list(value)
    return [value] * n_layers


class ConvDBN(_ConvBase):
    """Convolutional deep belief net: ConvRBMs with probabilistic max-pooling stacked greedily.

    Layer 1 is a :class:`ConvRBM` on the images; layer ``l + 1`` is a
    Bernoulli ConvRBM trained on the pooling-layer probabilities of layer
    ``l`` (Lee et al. 2009).  ``transform`` propagates the images upwards
    through the pooling probabilities and returns those of the top layer.

    Parameters
    ----------
    filters : tuple of int, default=(24, 40)
        Filters of each layer; its length is the number of layers.
    kernel_size : int, (int, int) or sequence, default=5
        One kernel size for every layer, or a list/tuple with one entry
        (int or pair) per layer: ``kernel_size=(5, 3)`` means 5x5 then 3x3.
    pool_size : int, (int, int) or sequence, default=2
        Pooling block size, for every layer or per layer as ``kernel_size``.
    visible : {"bernoulli", "gaussian"}, default="bernoulli"
        Visible units of the first layer (upper layers are Bernoulli: their
        input is probabilities).
    k : int, default=1
        Gibbs steps per CD update.
    learning_rate : float or sequence of float, default=0.2
        Step size, for every layer or per layer.
    momentum : float, default=0.9
        Momentum of the updates.
    weight_decay : float, default=1e-4
        L2 penalty on the filters.
    sparsity_target : float or sequence of float, default=0.05
        Target mean detection probability, for every layer or per layer.
    sparsity_cost : float, default=0.5
        Strength of the sparsity penalty.
    batch_size : int, default=20
        Images per CD update.
    shuffle : bool, default=True
        Shuffle the images before every epoch of every layer.
    max_iter : int or sequence of int, default=10
        Epochs per layer, for every layer or per layer.
    input_shape : tuple of int, optional
        ``(channels, height, width)`` or ``(height, width)`` for 2-D ``X``
        (inferred as in :class:`ConvRBM` when omitted).
    backend : str or Ops, default="cpu"
        Registered backend name.
    n_threads : int, optional
        Thread limit of the backend's kernels.
    dtype : {"float32", "float64"}, optional
        Training dtype (default: float32 stays float32, else float64).
    random_state : int, RandomState instance or None, default=None
        Seed of every layer's training.
    verbose : int, default=0
        Progress bars.
    n_iter : int or sequence of int, default="deprecated"
        Former name of ``max_iter``; when set, it is used with a
        ``FutureWarning``.  It will be removed in neuroplug 0.3.

    Attributes
    ----------
    rbms_ : list of ConvRBM
        The fitted layers, bottom first.
    n_iter_ : int
        Training epochs run, summed over the layers (``rbms_[i].n_iter_``
        for one layer).
    input_shape_ : tuple of int
        ``(channels, height, width)`` of the input images.
    output_shape_ : tuple of int
        Pooling-layer shape of the top layer (what ``transform`` returns, flattened).
    dtype_ : str
        The training dtype.
    n_features_in_ : int
        Number of features seen in ``fit``.

    See Also
    --------
    ConvRBM : One layer.

    References
    ----------
    H. Lee, R. Grosse, R. Ranganath and A. Y. Ng. Convolutional deep belief
    networks for scalable unsupervised learning of hierarchical
    representations. ICML 2009.

    Examples
    --------
    >>> from neuroplug.datasets import load_digits_images
    >>> from neuroplug.estimators import ConvDBN
    >>> X, y, shape = load_digits_images()
    >>> dbn = ConvDBN((6, 8), kernel_size=(3, 2), max_iter=1, random_state=0, backend="numpy").fit(X[:50])
    >>> [rbm.output_shape_ for rbm in dbn.rbms_]
    [(6, 3, 3), (8, 1, 1)]
    """

    _parameter_constraints: dict = {
        "filters": [tuple, list],
        "kernel_size": [
            Interval(numbers.Integral, 1, None, closed="left"),
            tuple,
            list,
        ],
        "pool_size": [Interval(numbers.Integral, 1, None, closed="left"), tuple, list],
        "learning_rate": [
            Interval(numbers.Real, 0, None, closed="neither"),
            tuple,
            list,
        ],
        "sparsity_target": [
            Interval(numbers.Real, 0, 1, closed="neither"),
            tuple,
            list,
        ],
        "max_iter": [Interval(numbers.Integral, 0, None, closed="left"), tuple, list],
        "n_iter": [
            Interval(numbers.Integral, 0, None, closed="left"),
            tuple,
            list,
            StrOptions({"deprecated"}),
        ],
        **_COMMON_CONSTRAINTS,
    }

    def __init__(
        self,
        filters: Sequence[int] = (24, 40),
        *,
        kernel_size: Any = 5,
        pool_size: Any = 2,
        visible: str = "bernoulli",
        k: int = 1,
        learning_rate: Any = 0.2,
        momentum: float = 0.9,
        weight_decay: float = 1e-4,
        sparsity_target: Any = 0.05,
        sparsity_cost: float = 0.5,
        batch_size: int = 20,
        shuffle: bool = True,
        max_iter: Any = 10,
        input_shape: tuple[int, ...] | None = None,
        backend: str | Ops = "cpu",
        n_threads: int | None = None,
        dtype: str | None = None,
        random_state: Any = None,
        verbose: int = 0,
        callbacks: tuple = (),
        n_iter: Any = "deprecated",
    ) -> None:
        self.filters = filters
        self.kernel_size = kernel_size
        self.pool_size = pool_size
        self.visible = visible
        self.k = k
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.sparsity_target = sparsity_target
        self.sparsity_cost = sparsity_cost
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.max_iter = max_iter
        self.input_shape = input_shape
        self.backend = backend
        self.n_threads = n_threads
        self.dtype = dtype
        self.random_state = random_state
        self.verbose = verbose
        self.callbacks = callbacks
        self.n_iter = n_iter

    def _layer_rbms(self) -> list[ConvRBM]:
        """Unfitted ConvRBMs, one per layer, with the per-layer hyper-parameters resolved."""
        if len(self.filters) < 1:
            raise ValueError(
                f"filters must name at least one layer. Received: filters={self.filters!r}"
            )
        n = len(self.filters)
        per_layer = {
            name: _per_layer(getattr(self, name), n, name)
            for name in ("kernel_size", "pool_size", "learning_rate", "sparsity_target")
        }
        per_layer["max_iter"] = _per_layer(renamed_n_iter(self), n, "max_iter")
        rbms = []
        for i, f in enumerate(self.filters):
            if not isinstance(f, numbers.Integral) or isinstance(f, bool) or f < 1:
                raise ValueError(
                    f"filters must hold positive ints. Received: filters={self.filters!r}"
                )
            params = {name: values[i] for name, values in per_layer.items()}
            rbm = ConvRBM(
                int(f),
                visible=self.visible if i == 0 else "bernoulli",
                k=self.k,
                momentum=self.momentum,
                weight_decay=self.weight_decay,
                sparsity_cost=self.sparsity_cost,
                batch_size=self.batch_size,
                shuffle=self.shuffle,
                backend=self.backend,
                n_threads=self.n_threads,
                verbose=self.verbose,
                callbacks=self.callbacks,
                **params,
            )
            rbm._validate_params()  # per-layer values get ConvRBM's own checks and messages
            rbms.append(rbm)
        return rbms

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any = None) -> ConvDBN:
        """Train the layers greedily, bottom first, on the images ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), (n, h, w) or (n, c, h, w)
            Training images.
        y : ignored
            Present for API consistency (unsupervised).

        Returns
        -------
        self : ConvDBN
            The fitted model.
        """
        rbms = self._layer_rbms()
        with fit_transaction(self), training_session() as (stop, owner):
            self._fit_layers(X, rbms)
        if owner and stop.requested:
            warn_interrupted(type(self).__name__, self.n_iter_, stacklevel=3)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X: Any, y: Any = None) -> ConvDBN:
        """One epoch of CD-k for every layer on the images ``X``, bottom first (initialising on the first call).

        Greedy layer-wise, online, as :meth:`DBN.partial_fit`: the first
        layer runs one epoch on ``X``, then each layer above one epoch on the
        pooling output that the just-updated layer below gives for ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), (n, h, w) or (n, c, h, w)
            Training images.
        y : ignored
            Present for API consistency (unsupervised).

        Returns
        -------
        self : ConvDBN
            The updated model.
        """
        first = not hasattr(self, "rbms_")
        # Copies of the fitted layers: a failed call leaves the fitted ones as they were.
        rbms = (
            self._layer_rbms() if first else [copy.deepcopy(rbm) for rbm in self.rbms_]
        )
        with fit_transaction(self), training_session() as (stop, owner):
            self._fit_layers(X, rbms, incremental=True, reset=first)
        if owner and stop.requested:
            warn_interrupted(type(self).__name__, self.n_iter_, stacklevel=3)
        return self

    def _fit_layers(
        self,
        X: Any,
        rbms: list[ConvRBM],
        *,
        incremental: bool = False,
        reset: bool = True,
    ) -> None:
        X = self._validate_images(X, reset=reset)
        random_state = check_random_state(self.random_state)
        ops = self._get_ops()
        data = X
        for i, rbm in enumerate(rbms):
            kernel = normalize_pair(rbm.kernel_size, "kernel_size")
            pool = normalize_pair(rbm.pool_size, "pool_size")
            if kernel[0] > data.shape[2] or kernel[1] > data.shape[3]:
                raise ValueError(
                    f"Layer {i + 1}'s kernel {kernel} is larger than its input {tuple(data.shape[2:])} "
                    f"(the pooling output of layer {i}). Received: kernel_size={self.kernel_size!r}"
                )
            rbm.dtype = self.dtype_
            rbm._fit_images(
                data,
                kernel,
                pool,
                random_state,
                ops,
                desc=f"ConvDBN layer {i + 1}",
                incremental=incremental,
            )
            rbm.n_features_in_ = math.prod(data.shape[1:])
            rbm.dtype_ = self.dtype_
            if i + 1 < len(rbms):
                data = rbm._transform_images(data, ops)
        self.rbms_ = rbms
        self.output_shape_ = rbms[-1].output_shape_
        self.n_iter_ = int(sum(rbm.n_iter_ for rbm in rbms))

    def transform(self, X: Any) -> np.ndarray:
        """Top-layer pooling probabilities, computed upwards through every layer, flattened.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), (n, h, w) or (n, c, h, w)
            Images.

        Returns
        -------
        P : ndarray of shape (n_samples, prod(output_shape))
            Pooling probabilities of the top layer.
        """
        check_is_fitted(self, "rbms_")
        data = self._validate_images(X, reset=False)
        ops = self._get_ops(fitted=True)
        for rbm in self.rbms_:
            data = rbm._transform_images(data, ops)
        return data.reshape(data.shape[0], -1)
