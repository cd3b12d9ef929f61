"""Shared machinery of :class:`CNNClassifier` and :class:`CNNRegressor`.

The estimator holds hyper-parameters only.  ``fit`` resolves the backend,
builds the layers from their specs, initialises a :class:`Network`, runs the
optional pretrainer and trains with mini-batches.  The fitted state is NumPy
only (``layers_`` are unfitted layer objects, ``network_weights_`` their
weights), so a fitted estimator pickles and predicts on any backend: the
network is rebuilt lazily for the current ``backend`` parameter.
"""

from __future__ import annotations

import math
import numbers
import threading
import warnings
import weakref
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.base import BaseEstimator, clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Hidden, Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from ..augment import RandomAffine, get_augmenter
from ..layers.base import Layer
from ..layers.dense import Dense
from ..layers.spec import build_layers
from ..models.engine import (
    StoppingRule,
    TrainingInterrupted,
    check_sample_weight,
    training_session,
    warn_interrupted,
)
from ..models.supervised import PREDICT_BATCH, Validation, train_network
from ..network import Network
from ..optimizers import Optimizer, Schedule, get_optimizer, get_schedule
from ..pretrain.base import Pretrainer
from ._base import (
    BACKEND_CONSTRAINT,
    CALLBACKS_CONSTRAINT,
    DTYPE_CONSTRAINT,
    N_THREADS_CONSTRAINT,
    EstimatorMixin,
    fit_callbacks,
    fit_transaction,
    resolve_ops,
    validate_nested,
)
from ._images import resolve_input_shape, split_image_input

__all__ = ["BaseCNN", "DEFAULT_LAYERS", "TrainingInterrupted"]

#: The default layer stack: two 3x3 "same" convolutions with max pooling and a
#: dense layer with dropout.  It reaches about 0.99 on the 8x8 digits.
DEFAULT_LAYERS: tuple[str, ...] = (
    "conv:32x3x3,padding=same",
    "relu",
    "maxpool:2",
    "conv:64x3x3,padding=same",
    "relu",
    "maxpool:2",
    "dense:128",
    "relu",
    "dropout:0.25",
)

_PREDICT_BATCH = PREDICT_BATCH
# Per thread, per estimator: the network prediction runs on (never one a fit is training).
_PREDICT_CACHE = threading.local()
# Bit generators whose state __setstate__ may restore (the name is data, possibly from a model file).
_BIT_GENERATORS = {
    cls.__name__: cls
    for cls in (
        np.random.PCG64,
        np.random.PCG64DXSM,
        np.random.MT19937,
        np.random.Philox,
        np.random.SFC64,
    )
}
_NO_Y = object()  # "no y given", as opposed to y=None, which fit must refuse


def _check_layers_param(layers: Any) -> None:
    if isinstance(layers, (str, Layer)) or not isinstance(layers, (tuple, list)):
        raise TypeError(
            "layers must be a tuple of spec strings or Layer objects, e.g. "
            f"('conv:20x5x5', 'maxpool:2', 'relu', 'dense:100', 'relu'). Received: layers={layers!r}"
        )


class BaseCNN(EstimatorMixin, BaseEstimator):
    """Hyper-parameters, validation and the training loop shared by the CNN estimators."""

    _parameter_constraints: dict = {
        "layers": "no_validation",  # checked by _check_layers_param, with an example in the message
        "input_shape": [None, tuple, list],
        "optimizer": [StrOptions({"adam", "sgd", "nesterov"}), Optimizer],
        "learning_rate": [Interval(numbers.Real, 0, None, closed="neither")],
        "lr_schedule": [str, Schedule],
        "batch_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "max_iter": [Interval(numbers.Integral, 1, None, closed="left")],
        "weight_decay": [Interval(numbers.Real, 0, None, closed="left")],
        "alpha": [
            Hidden(StrOptions({"deprecated"})),
            Interval(numbers.Real, 0, None, closed="left"),
        ],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(numbers.Real, 0, 1, closed="neither")],
        "n_iter_no_change": [None, Interval(numbers.Real, 1, None, closed="left")],
        "tol": [Interval(numbers.Real, 0, None, closed="left")],
        "augment": [None, "boolean", str, RandomAffine],
        "pretrainer": [None, str, Pretrainer],
        "backend": BACKEND_CONSTRAINT,
        "n_threads": N_THREADS_CONSTRAINT,
        "dtype": DTYPE_CONSTRAINT,
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "callbacks": CALLBACKS_CONSTRAINT,
    }

    def __init__(
        self,
        layers: tuple = DEFAULT_LAYERS,
        *,
        input_shape: tuple[int, ...] | None = None,
        optimizer: str | Optimizer = "adam",
        learning_rate: float = 1e-3,
        lr_schedule: str | Schedule = "constant",
        batch_size: int = 32,
        shuffle: bool = True,
        max_iter: int = 100,
        weight_decay: float = 1e-4,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        n_iter_no_change: int = 10,
        tol: float = 1e-4,
        augment: Any = None,
        pretrainer: str | Pretrainer | None = None,
        backend: str = "cpu",
        n_threads: int | None = None,
        dtype: str | None = None,
        random_state: Any = None,
        verbose: int = 0,
        warm_start: bool = False,
        callbacks: tuple = (),
        alpha: Any = "deprecated",
    ) -> None:
        self.layers = layers
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
        self.pretrainer = pretrainer
        self.backend = backend
        self.n_threads = n_threads
        self.dtype = dtype
        self.random_state = random_state
        self.verbose = verbose
        self.warm_start = warm_start
        self.callbacks = callbacks
        self.alpha = alpha

    # ------------------------------------------------------------ subclass API
    _loss: Any = None  # a neuroplug.network.Loss instance
    _y_numeric = False

    def _prepare_targets(
        self, y: Any, *, first: bool, classes: Any = None
    ) -> np.ndarray:
        """Validate ``y`` and return the training targets (ints or float32)."""
        raise NotImplementedError

    def _n_outputs(self) -> int:
        raise NotImplementedError

    def _get_loss(self) -> Any:
        """The training loss of the fitted targets (a classifier's depends on them)."""
        return self._loss

    def _sample_weight(
        self, sample_weight: Any, y: np.ndarray, n: int, *, incremental: bool
    ) -> np.ndarray | None:
        """Validated sample weights (a classifier multiplies in its class weights); ``None`` when unweighted."""
        return check_sample_weight(sample_weight, n)

    def _validation_score(self, y_true: np.ndarray, output: np.ndarray) -> float:
        raise NotImplementedError

    def __sklearn_tags__(self):
        """Declare sparse input support (densified one mini-batch at a time)."""
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    # ------------------------------------------------- nested layer parameters
    def get_params(self, deep: bool = True) -> dict:
        """Parameters of this estimator; with ``deep``, also ``layers__<i>__<name>`` for layer objects.

        A layer given as an object (``Conv2D(20, 5)``, ``Dropout(0.5)``) in
        ``layers`` exposes its parameters under ``layers__<index>__<name>``,
        so ``GridSearchCV`` can search ``{"layers__2__rate": [0.1, 0.5]}``.
        Spec strings have no parameters of their own: search whole tuples of
        them (``{"layers": [(...), (...)]}``).
        """
        params = super().get_params(deep=deep)
        layers = params.get("layers")
        if deep and isinstance(layers, (tuple, list)):
            for i, layer in enumerate(layers):
                if hasattr(layer, "get_params") and not isinstance(layer, type):
                    params.update(
                        {
                            f"layers__{i}__{key}": value
                            for key, value in layer.get_params(deep=True).items()
                        }
                    )
        return params

    def set_params(self, **params: Any) -> BaseCNN:
        """Set parameters; ``layers__<i>__<name>`` sets a parameter of the layer object at index ``i``.

        The stack is replaced by a new tuple holding a clone of that layer
        with the new value, so a layer object shared with other code is never
        modified.
        """
        nested = {
            key: params.pop(key)
            for key in [k for k in params if k.startswith("layers__")]
        }
        if params:
            super().set_params(**params)
        if nested:
            layers = (
                list(self.layers) if isinstance(self.layers, (tuple, list)) else None
            )
            if layers is None:
                raise ValueError(
                    f"layers__<i>__<name> needs layers to be a tuple of layers. Received: layers={self.layers!r}"
                )
            by_index: dict[int, dict] = {}
            for key, value in nested.items():
                index, _, name = key[len("layers__") :].partition("__")
                if not index.isdigit() or not name or int(index) >= len(layers):
                    raise ValueError(
                        f"Invalid parameter {key!r} for {type(self).__name__}: nested layer parameters are "
                        f"layers__<index>__<name> with an index below {len(layers)}. Received: {key}={value!r}"
                    )
                layer = layers[int(index)]
                if not hasattr(layer, "set_params") or isinstance(layer, type):
                    raise ValueError(
                        f"Invalid parameter {key!r} for {type(self).__name__}: layers[{index}] is the spec string "
                        f"{layer!r}, which has no parameters of its own; grid-search whole layer tuples "
                        f"({{'layers': [(...), (...)]}}) or use layer objects. Received: {key}={value!r}"
                    )
                by_index.setdefault(int(index), {})[name] = value
            for index, values in by_index.items():
                layers[index] = clone(layers[index]).set_params(**values)
            self.layers = (
                type(self.layers)(layers) if isinstance(self.layers, tuple) else layers
            )
        return self

    # --------------------------------------------------------------- pickling
    def __getstate__(self) -> dict:
        """Drop backend objects (Ops, Network): the fitted state is NumPy only.

        The shuffling generator is kept as its plain state dict and the
        optimizer's state (step count, Adam moments or momentum buffers) as
        NumPy arrays, so a pickle or a model file continues training exactly
        where it stopped.
        """
        # A copy: BaseEstimator.__getstate__ returns the instance's own __dict__ for
        # non-sklearn classes, and popping from it would strip the live estimator.
        state = dict(super().__getstate__())
        network = state.pop("_network", None)
        optimizer = state.pop("_optimizer", None)
        if optimizer is not None and getattr(optimizer, "state_", None) is not None:
            to_np = network.ops.to_numpy if network is not None else np.asarray
            state["_optimizer_state"] = {
                "t": int(optimizer.t_),
                "slots": [
                    [int(i), str(key), [np.array(to_np(a)) for a in arrays]]
                    for (i, key), arrays in optimizer.state_.items()
                ],
            }
        rng = state.pop("_rng", None)
        if rng is not None:
            state["_rng_state"] = rng.bit_generator.state
        return state

    def _restore_optimizer(self, network: Network) -> Any:
        """A fresh optimizer, carrying on from the saved state when the model was pickled or loaded."""
        optimizer = get_optimizer(self.optimizer)
        optimizer.reset()
        saved = self.__dict__.pop("_optimizer_state", None)
        if saved:
            try:
                slots = {
                    (int(i), str(key)): tuple(
                        network.ops.asarray(np.asarray(a, dtype=self.dtype_))
                        for a in arrays
                    )
                    for i, key, arrays in saved["slots"]
                }
                t = int(saved["t"])
            except (KeyError, TypeError, ValueError) as exc:
                raise ValueError(
                    f"the saved optimizer state cannot be restored: {exc}"
                ) from exc
            for (i, key), arrays in slots.items():
                param = (
                    network.layers[i].params.get(key)
                    if 0 <= i < len(network.layers)
                    else None
                )
                if param is None or any(
                    tuple(a.shape) != tuple(param.shape) for a in arrays
                ):
                    raise ValueError(
                        f"the saved optimizer state does not fit layer {i}'s parameter {key!r}"
                    )
            optimizer.state_, optimizer.t_ = slots, t
        return optimizer

    def __setstate__(self, state: dict) -> None:
        """Restore the state written by :meth:`__getstate__`."""
        state = dict(state)
        rng_state = state.pop("_rng_state", None)
        super().__setstate__(state)
        if rng_state is not None:
            # The name may come from a model file: look it up in a fixed table, never with getattr.
            name = (
                rng_state.get("bit_generator") if isinstance(rng_state, dict) else None
            )
            if name not in _BIT_GENERATORS:
                raise ValueError(
                    f"Cannot restore the shuffling generator: unknown bit generator {name!r} "
                    f"(known: {', '.join(_BIT_GENERATORS)}). Received: _rng_state={rng_state!r:.200}"
                )
            from .._schema import check_generator_state

            bit_generator = _BIT_GENERATORS[name]()
            bit_generator.state = check_generator_state(
                rng_state
            )  # a crafted state can crash NumPy
            self._rng = np.random.Generator(bit_generator)

    # ------------------------------------------------------------ validation
    def _validate_X(
        self, X: Any, y: Any = _NO_Y, *, reset: bool
    ) -> tuple[np.ndarray, Any, tuple[int, ...] | None]:
        X, image_shape = split_image_input(X)
        if reset:
            # As in scikit-learn's MLP: float32 input stays float32, anything else becomes float64.
            dtype: Any = (
                [np.float64, np.float32] if self.dtype is None else np.dtype(self.dtype)
            )
        else:
            dtype = np.dtype(self.dtype_)
        # Sparse rows are densified batch by batch (CSR slices rows cheaply; CSC is converted).
        sparse = {"accept_sparse": ["csr"], "accept_large_sparse": False}
        if y is _NO_Y:
            X = validate_data(self, X, reset=reset, dtype=dtype, **sparse)
        else:
            X, y = validate_data(
                self,
                X,
                y,
                reset=reset,
                dtype=dtype,
                multi_output=True,
                y_numeric=self._y_numeric,
                **sparse,
            )
        if not reset and image_shape is not None and image_shape != self.input_shape_:
            raise ValueError(
                f"X has images of shape {image_shape} but the model was fitted on {self.input_shape_}. "
                f"Received: X.shape={(X.shape[0], *image_shape)}"
            )
        return X, y, image_shape

    def _resolve_input_shape(
        self, n_features: int, image_shape: tuple[int, ...] | None, layers: list[Layer]
    ) -> tuple[int, ...]:
        spatial = any(getattr(layer, "input_ndim", None) == 3 for layer in layers)
        return resolve_input_shape(
            self.input_shape, n_features, image_shape, spatial=spatial
        )

    # ------------------------------------------------------------- building
    def _get_ops(self, *, fitted: bool = False) -> Any:
        return resolve_ops(
            self.backend, self.n_threads, fitted=fitted, owner=type(self).__name__
        )

    def _build_layers(self) -> list[Layer]:
        _check_layers_param(self.layers)
        return build_layers(self.layers)

    def _make_network(self, layers: list[Layer], ops: Any, seed: Any) -> Network:
        return Network(
            [clone(layer) for layer in layers],
            self.input_shape_,
            ops,
            rng=seed,
            dtype=self.dtype_,
        )

    def _forward(self, X: Any) -> np.ndarray:
        """Raw network output (logits or predictions) for validated input."""
        check_is_fitted(self, "network_weights_")
        X, _, _ = self._validate_X(X, reset=False)
        return self._predict_network().predict(X, batch_size=_PREDICT_BATCH)

    def _predict_network(self) -> Network:
        """A network per thread for prediction, rebuilt when the weights or the backend change.

        Prediction never shares layer caches with a fit running in another
        thread (an online-learning server predicts while ``partial_fit`` runs).
        """
        local = _PREDICT_CACHE.__dict__.setdefault(
            "networks", weakref.WeakKeyDictionary()
        )
        key = (
            self.backend if isinstance(self.backend, str) else id(self.backend),
            self.n_threads,
            id(self.network_weights_),
        )
        cached = local.get(self)
        if cached is None or cached[0] != key:
            network = self._make_network(
                list(self.layers_), self._get_ops(fitted=True), 0
            )
            network.set_weights(self.network_weights_)
            # The key holds the weights list itself, so its id cannot be reused while cached.
            local[self] = cached = (key, network, self.network_weights_)
        return cached[1]

    def _get_pretrainer(self) -> Pretrainer | None:
        if self.pretrainer is None:
            return None
        if isinstance(self.pretrainer, Pretrainer):
            return clone(self.pretrainer)
        from ..plugins import get_pretrainer

        return get_pretrainer(self.pretrainer)()

    def _validate_nested_params(self) -> Pretrainer | None:
        """Check the parameters of every object given as a parameter, once, before anything trains."""
        pretrainer = self._get_pretrainer()
        validate_nested(
            pretrainer,
            self.optimizer if isinstance(self.optimizer, Optimizer) else None,
            self.lr_schedule if isinstance(self.lr_schedule, Schedule) else None,
        )
        return pretrainer

    # -------------------------------------------------------------- training
    def _l2(self) -> float:
        """The L2 weight decay: ``weight_decay``, or ``alpha`` (its name before 0.2) when given."""
        if isinstance(self.alpha, str) and self.alpha == "deprecated":
            return float(self.weight_decay)
        return float(self.alpha)

    def _warn_alpha(self) -> None:
        if not (isinstance(self.alpha, str) and self.alpha == "deprecated"):
            warnings.warn(
                f"{type(self).__name__}: alpha is deprecated and will be removed in neuroplug 0.3; the L2 "
                "penalty is called weight_decay in every neuroplug estimator. This fit uses "
                f"alpha={self.alpha!r}; pass weight_decay instead.",
                FutureWarning,
                stacklevel=4,
            )

    def _train_batch(
        self, network: Network, xb: Any, yb: Any, lr: float, sample_weight: Any = None
    ) -> float:
        """One optimisation step; the hook a test (or a subclass) can patch."""
        return network.train_batch(
            xb,
            yb,
            self._get_loss(),
            self._optimizer,
            lr,
            self._l2(),
            sample_weight=sample_weight,
        )

    def _fresh_rng(self) -> np.random.Generator:
        return np.random.default_rng(
            check_random_state(self.random_state).randint(2**31 - 1)
        )

    def _fit(
        self,
        X: Any,
        y: Any,
        *,
        incremental: bool,
        classes: Any = None,
        sample_weight: Any = None,
    ) -> BaseCNN:
        with fit_transaction(self), training_session() as (stop, owner):
            self._fit_unsafe(
                X,
                y,
                incremental=incremental,
                classes=classes,
                sample_weight=sample_weight,
            )
        if owner and stop.requested:
            warn_interrupted(type(self).__name__, self.n_iter_, stacklevel=4)
        return self

    def _fit_unsafe(
        self,
        X: Any,
        y: Any,
        *,
        incremental: bool,
        classes: Any = None,
        sample_weight: Any = None,
    ) -> BaseCNN:
        first = not hasattr(self, "network_weights_") or not (
            incremental or self.warm_start
        )
        self._warn_alpha()
        pretrainer = self._validate_nested_params() if first else None
        layers = self._build_layers() if first else None
        X, y, image_shape = self._validate_X(X, y, reset=first)
        if first:
            self.dtype_ = X.dtype.name
        y = self._prepare_targets(y, first=first, classes=classes)
        sample_weight = self._sample_weight(
            sample_weight, y, X.shape[0], incremental=incremental
        )
        if first:
            self.input_shape_ = self._resolve_input_shape(
                X.shape[1], image_shape, layers
            )
            self.layers_ = (*layers, Dense(self._n_outputs(), init="auto"))
            self._rng = self._fresh_rng()
            network = self._make_network(list(self.layers_), self._get_ops(), self._rng)
            self.n_iter_ = 0
            self.loss_curve_ = []
            self.history_ = []
            self.best_loss_ = np.inf
            self.validation_scores_ = (
                [] if self.early_stopping and not incremental else None
            )
            self.best_validation_score_ = (
                -np.inf if self.validation_scores_ is not None else None
            )
            self._optimizer = get_optimizer(self.optimizer)
            self._optimizer.reset()
            if pretrainer is not None:
                # Pretrainers take a dense array (the first hidden layer's inputs are dense anyway).
                dense = X.toarray() if sp.issparse(X) else X
                pretrainer.pretrain(
                    network,
                    dense.reshape(X.shape[0], *self.input_shape_),
                    random_state=int(self._rng.integers(2**31 - 1)),
                    verbose=self.verbose,
                )
        else:
            network = self._make_network(
                list(self.layers_), self._get_ops(fitted=True), 0
            )
            # Copies: the optimizer updates in place, and a failed fit must leave network_weights_ as it was.
            network.set_weights(
                [{k: np.array(v) for k, v in w.items()} for w in self.network_weights_]
            )
            # A warm-started fit, like partial_fit, continues where training stopped: the optimizer's
            # state, the learning-rate factor and the generator's stream go on.
            if getattr(self, "_optimizer", None) is None:  # after unpickling or loading
                self._optimizer = self._restore_optimizer(network)
            if not hasattr(self, "_rng"):
                self._rng = self._fresh_rng()
            if (
                self.validation_scores_ is None
                and self.early_stopping
                and not incremental
            ):
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf
            if getattr(self, "best_loss_", None) is None:
                # A fit with early stopping tracked the validation score, not the training loss.
                self.best_loss_ = min(self.loss_curve_, default=np.inf)
            if not hasattr(self, "history_"):
                self.history_ = []
        self._train(
            network,
            X,
            y,
            sample_weight=sample_weight,
            epochs=1 if incremental else int(self.max_iter),
            early_stopping=bool(self.early_stopping) and not incremental,
        )
        self.network_weights_ = network.get_weights()
        # Kept for __getstate__: the optimizer's state lives on this network's backend.
        self._network = network
        return self

    def _split_validation(
        self, X: Any, y: np.ndarray, sample_weight: np.ndarray | None
    ) -> tuple[Any, np.ndarray, np.ndarray | None, Validation]:
        stratify = y if getattr(self, "_stratify", False) and y.ndim == 1 else None
        n_val = math.ceil(float(self.validation_fraction) * X.shape[0])
        if n_val < 2 or X.shape[0] - n_val < 1:
            raise ValueError(
                f"The validation set is too small: early_stopping holds out {n_val} of the {X.shape[0]} "
                "training samples, and a score needs at least 2 (and at least 1 left to train on). "
                "Increase validation_fraction or the size of your dataset, or set early_stopping=False. "
                f"Received: validation_fraction={self.validation_fraction}"
            )
        arrays = (X, y) if sample_weight is None else (X, y, sample_weight)
        parts = train_test_split(
            *arrays,
            test_size=n_val,
            random_state=int(self._rng.integers(2**31 - 1)),
            stratify=stratify,
        )
        X, X_val, y, y_val = parts[:4]
        w, w_val = (parts[4], parts[5]) if sample_weight is not None else (None, None)
        if w is not None and not (w.sum() > 0 and w_val.sum() > 0):
            raise ValueError(
                "early_stopping needs positive sample weights in both the training and the validation part. "
                f"Received: weight sums {float(w.sum()):g} (training) and {float(w_val.sum()):g} (validation)"
            )
        return X, y, w, Validation(X_val, y_val, self._validation_score, w_val)

    def _train(
        self,
        network: Network,
        X: Any,
        y: np.ndarray,
        *,
        epochs: int,
        early_stopping: bool,
        sample_weight: np.ndarray | None = None,
    ) -> None:
        if sample_weight is not None:
            # Weight 0 means "not in the data": such rows are dropped, so they draw no batch slot either.
            keep = sample_weight > 0
            if not keep.all():
                X, y, sample_weight = X[keep], y[keep], sample_weight[keep]
        validation = None
        if early_stopping:
            X, y, sample_weight, validation = self._split_validation(
                X, y, sample_weight
            )
            stopping = StoppingRule(
                self.n_iter_no_change,
                self.tol,
                mode="max",
                best=self.best_validation_score_,
                monitor="validation score",
            )
        else:
            stopping = StoppingRule(
                self.n_iter_no_change, self.tol, mode="min", best=self.best_loss_
            )
        report = train_network(
            network,
            X,
            y,
            loss=self._get_loss(),
            optimizer=self._optimizer,
            train_batch=lambda xb, yb, lr, **kw: self._train_batch(
                network, xb, yb, lr, **kw
            ),
            sample_weight=sample_weight,
            shuffle=bool(self.shuffle),
            learning_rate=float(self.learning_rate),
            schedule=get_schedule(self.lr_schedule),
            alpha=self._l2(),
            batch_size=int(self.batch_size),
            n_epochs=epochs,
            rng=self._rng,
            lr_factor=float(getattr(self, "_lr_factor", 1.0)),
            start_epoch=self.n_iter_,
            augmenter=get_augmenter(self.augment),
            validation=validation,
            stopping=stopping,
            verbose=int(self.verbose),
            name=type(self).__name__,
            callbacks=fit_callbacks(
                self, lambda snap, weights: setattr(snap, "network_weights_", weights)
            ),
        )
        for row in report.history:
            self.loss_curve_.append(row["loss"])
            if validation is not None:
                self.validation_scores_.append(row["val_score"])
        self.history_.extend(report.history)
        self.n_iter_ += report.n_epochs
        if early_stopping:
            self.best_validation_score_ = max(
                self.best_validation_score_, stopping.best
            )
            self.best_loss_ = None
        else:
            self.best_loss_ = min(self.best_loss_, stopping.best)
        self.stop_reason_ = report.stop_reason
        self.best_epoch_ = report.best_epoch
        self._lr_factor = report.lr_factor
        self._warn_if_not_converged(report, stopping, epochs)
        self._warn_if_chance_level(report, y)

    def _warn_if_not_converged(
        self, report: Any, stopping: StoppingRule, epochs: int
    ) -> None:
        """max_iter reached while the stopping rule would have gone on: warn as MLPClassifier does."""
        if (
            report.stop_reason == "max_iter"
            and epochs > 1
            and math.isfinite(stopping.patience)
        ):
            warnings.warn(
                f"{type(self).__name__}: max_iter={epochs} reached and the optimization hasn't converged "
                f"yet (the {stopping.monitor} had not stopped improving by tol={self.tol:g}). Increase "
                "max_iter, or warm-start to continue.",
                ConvergenceWarning,
                stacklevel=8,
            )

    def _warn_if_chance_level(self, report: Any, y: np.ndarray) -> None:
        """Subclass hook: warn when the fit ended no better than chance."""
