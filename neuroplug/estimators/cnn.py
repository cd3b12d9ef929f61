"""Convolutional network estimators: :class:`CNNClassifier` and :class:`CNNRegressor`."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.base import ClassifierMixin, RegressorMixin, _fit_context
from sklearn.metrics import r2_score
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import (
    check_classification_targets,
    type_of_target,
    unique_labels,
)
from sklearn.utils.validation import column_or_1d

from ..models.engine import ChanceLevelWarning
from ..network import SigmoidBinaryCrossEntropy, SoftmaxCrossEntropy, SquaredError
from ._cnn_base import DEFAULT_LAYERS, BaseCNN, TrainingInterrupted

if TYPE_CHECKING:  # annotations only
    from ..optimizers import Optimizer, Schedule
    from ..pretrain.base import Pretrainer

__all__ = ["CNNClassifier", "CNNRegressor", "DEFAULT_LAYERS", "TrainingInterrupted"]

_MULTILABEL_LOSS = SigmoidBinaryCrossEntropy()

_PARAMS_DOC = """
    Parameters
    ----------
    layers : tuple of str or Layer, default=DEFAULT_LAYERS
        The hidden layer stack; the estimator appends the output layer (a
        dense layer with one unit per class or target).  Each entry is a
        spec string of the mini-language of :mod:`neuroplug.layers.spec` or
        a layer object (cloned, never modified).  Spec strings:
        ``"conv:FxKHxKW"`` (F filters; options ``stride=``, ``padding=valid|same|P``,
        ``groups=``), ``"maxpool:S"`` / ``"meanpool:S"`` (option ``stride=``),
        ``"dense:N"``, ``"flatten"``, ``"relu"``, ``"tanh"``, ``"sigmoid"``,
        ``"softmax"``, ``"dropout:R"``, plus any layer a plugin registers.
        The default is ``("conv:32x3x3,padding=same", "relu", "maxpool:2",
        "conv:64x3x3,padding=same", "relu", "maxpool:2", "dense:128", "relu",
        "dropout:0.25")``.
    input_shape : tuple of int, default=None
        Shape of one sample: ``(channels, height, width)``, ``(height,
        width)`` (one channel) or ``(n_features,)``.  ``None`` infers it: from
        3-D ``(n, h, w)`` or 4-D ``(n, c, h, w)`` input; for 2-D input, as
        ``(n_features,)`` when the stack has no convolution or pooling, else
        as a square one-channel image, and an error when ``n_features`` is not
        a square.
    optimizer : {"adam", "sgd", "nesterov"} or Optimizer, default="adam"
        ``"sgd"`` uses momentum 0.9, ``"nesterov"`` Nesterov momentum 0.9;
        pass a :class:`neuroplug.optimizers.SGD` or ``Adam`` object to set
        their hyper-parameters.
    learning_rate : float, default=1e-3
        Base step size.
    lr_schedule : str or Schedule, default="constant"
        Learning rate per epoch: ``"constant"``, ``"step[:S,G]"`` (times G
        every S epochs), ``"exp[:G]"``, ``"invtime[:D]"`` or a
        :class:`neuroplug.optimizers.Schedule` object.
    batch_size : int, default=32
        Mini-batch size (clipped to the number of samples).
    shuffle : bool, default=True
        Shuffle the training rows before every epoch; ``False`` takes them
        in order (with ``batch_size >= n_samples``, training is full-batch
        gradient descent, and integer sample weights then equal repeated
        rows exactly).
    max_iter : int, default=100
        Maximum number of epochs (passes over the training data).
    weight_decay : float, default=1e-4
        L2 weight decay: ``0.5 * weight_decay * sum(W**2)`` over weights (not
        biases) is added to the mean loss of each batch.
    alpha : float, optional
        Deprecated name of ``weight_decay`` (removed in 0.3); passing it
        issues a FutureWarning.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the training data (stratified for
        classification), stop when its score (accuracy, or R^2) has not
        improved by ``tol`` for ``n_iter_no_change`` epochs, and keep the
        best weights.  Without it, training stops when the training loss has
        not improved by ``tol`` for ``n_iter_no_change`` epochs, and keeps
        the weights of its epoch with the lowest loss.  A fit that runs all
        ``max_iter`` epochs keeps its last weights.
    validation_fraction : float, default=0.1
        Share of the training data held out with early stopping.
    n_iter_no_change : int, default=10
        Epochs without improvement before stopping.
    tol : float, default=1e-4
        Smallest improvement that counts.
    augment : None, bool, str or RandomAffine, default=None
        On-the-fly training augmentation of image input (off by default):
        ``True`` for small random shifts, rotations and scalings, a spec
        string such as ``"shift=2,rotate=10,scale=0.1"``, or a
        :class:`neuroplug.augment.RandomAffine`.  Seeded by ``random_state``.
    pretrainer : str, Pretrainer or None, default=None
        Name of a registered pretrainer (``"dbn"``, ``"sbn"``, ...) or a
        pretrainer object that initialises the network's weights from the
        training inputs before supervised training (first fit only).
    backend : str, default="cpu"
        Registered backend name (``"cpu"``, ``"numpy"``, ``"torch"``,
        ``"torch:cuda:0"``, ...).  A fitted model predicts on whatever
        backend this names at prediction time: ``set_params(backend="numpy")``.
    n_threads : int, default=None
        Thread limit for the backend kernels (``None``: the library default).
    dtype : {"float32", "float64"} or None, default=None
        Precision of the network.  ``None`` follows scikit-learn's MLP:
        float32 input trains in float32 (fast: the data loaders return
        float32), any other input in float64.  Predictions use the precision
        of the fit.
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, shuffling, dropout, augmentation and the
        validation split.  With an int, fits are reproducible on a given
        backend and thread count.
    verbose : int, default=0
        ``1`` shows a tqdm progress bar over epochs (loss, validation score,
        epoch time); ``2`` adds a bar over the batches of each epoch.
    warm_start : bool, default=False
        Continue from the fitted weights (and architecture) on the next
        ``fit`` instead of starting afresh.  Like :meth:`partial_fit`, a
        warm-started fit continues exactly where training stopped: the
        optimizer's state (Adam moments and step count, momentum buffers),
        the schedule's position, the learning-rate factor of callbacks such
        as ``ReduceLROnPlateau`` and the random stream go on, also after
        pickling or ``neuroplug.save`` / ``neuroplug.load``.
    callbacks : tuple of Callback or str, default=()
        Code run during the fit (see :mod:`neuroplug.callbacks`): objects
        such as ``Checkpoint("ckpt/")`` or registered names such as
        ``"csv_logger"``; cloned at every fit.

    Notes
    -----
    ``fit`` and ``partial_fit`` take ``sample_weight``: each batch's loss is
    the weighted mean ``sum_i w_i l_i / sum_i w_i`` of its rows (as in
    scikit-learn's MLP), so weights scale each row's share of its batch's
    gradient; rows of weight 0 are dropped before training (exactly as if
    they were not there), and with early stopping the validation score and
    loss are weighted means too.  Sparse ``X`` (``scipy.sparse``) is
    densified one mini-batch at a time.

    Interrupting ``fit`` with Ctrl-C (KeyboardInterrupt) stops training at
    the end of the current mini-batch: the estimator is fitted with the
    epochs done so far (``n_iter_`` counts the complete ones) and a
    :class:`TrainingInterrupted` warning is issued.  A second Ctrl-C aborts
    at once.

    A loss that becomes NaN or infinite stops ``fit`` with
    :class:`neuroplug.network.TrainingDivergedError`, which suggests a lower
    learning rate.

    The fitted model is NumPy only (``layers_``, ``network_weights_``): it
    pickles, and predicts on any backend.
"""

_ATTRS_DOC = """
    n_features_in_ : int
        Number of features seen during fit (``c * h * w`` for image input).
    feature_names_in_ : ndarray of shape (n_features_in,)
        Names of the features, when ``X`` was a DataFrame with string column names.
    dtype_ : str
        Precision of the fitted network, ``"float32"`` or ``"float64"``.
    input_shape_ : tuple of int
        The resolved shape of one sample.
    layers_ : tuple of Layer
        The resolved, unfitted layers, the output layer included.
    network_weights_ : list of dict
        Weights of each layer of ``layers_`` as NumPy arrays.
    n_iter_ : int
        Number of complete epochs run (summed over warm-started fits and
        ``partial_fit`` calls).
    loss_curve_ : list of float
        Mean training loss (L2 term included) of each epoch.
    best_loss_ : float or None
        Lowest value of ``loss_curve_``; ``None`` with early stopping.
    validation_scores_ : list of float or None
        Validation score of each epoch with early stopping, else ``None``.
    best_validation_score_ : float or None
        Best validation score with early stopping, else ``None``.
"""


def _unlabelled_rows(y: np.ndarray) -> np.ndarray | None:
    """Mask of the rows marked unlabelled (``y == -1``, numeric labels only); ``None`` if there are none."""
    if y.dtype.kind not in "iuf":
        return None
    mask = y == -1
    return mask if mask.any() else None


class CNNClassifier(ClassifierMixin, BaseCNN):
    __doc__ = (
        """Convolutional neural network classifier.

    A stack of layers (convolution, pooling, dense, activations, dropout)
    ending in one logit per class, trained with softmax cross-entropy by
    mini-batch gradient descent on a neuroplug backend.
"""
        + _PARAMS_DOC
        + """
    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels."""
        + _ATTRS_DOC
        + """
    See Also
    --------
    CNNRegressor : The same network for regression.
    sklearn.neural_network.MLPClassifier : Fully connected networks.

    References
    ----------
    Y. LeCun, L. Bottou, Y. Bengio and P. Haffner, "Gradient-based learning
    applied to document recognition", Proc. IEEE 86(11), 1998.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from neuroplug.estimators import CNNClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = CNNClassifier(("conv:8x3x3", "relu", "maxpool:2", "dense:32", "relu"),
    ...                     input_shape=(1, 8, 8), max_iter=3, random_state=0)
    >>> clf.fit(X[:300] / 16, y[:300]).predict(X[:3] / 16).shape
    (3,)
"""
    )

    _stratify = True
    _loss = SoftmaxCrossEntropy()

    _parameter_constraints: dict = {
        **BaseCNN._parameter_constraints,
        "class_weight": [None, dict, StrOptions({"balanced"})],
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
        class_weight: dict | str | None = None,
        callbacks: tuple = (),
        alpha: Any = "deprecated",
    ) -> None:
        super().__init__(
            layers,
            input_shape=input_shape,
            optimizer=optimizer,
            learning_rate=learning_rate,
            lr_schedule=lr_schedule,
            batch_size=batch_size,
            shuffle=shuffle,
            max_iter=max_iter,
            weight_decay=weight_decay,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            n_iter_no_change=n_iter_no_change,
            tol=tol,
            augment=augment,
            pretrainer=pretrainer,
            backend=backend,
            n_threads=n_threads,
            dtype=dtype,
            random_state=random_state,
            verbose=verbose,
            warm_start=warm_start,
            callbacks=callbacks,
            alpha=alpha,
        )
        self.class_weight = class_weight

    def __sklearn_tags__(self):
        """Declare multilabel and sparse input support to scikit-learn."""
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        tags.input_tags.sparse = True
        return tags

    # ---------------------------------------------------------------- targets
    def _prepare_targets(
        self, y: Any, *, first: bool, classes: Any = None
    ) -> np.ndarray:
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if y.ndim == 2:
            return self._prepare_multilabel_targets(y, first=first, classes=classes)
        if y.ndim != 1:
            raise ValueError(
                "CNNClassifier supports one target column (binary or multi-class) or a 2-D binary indicator "
                f"matrix (multilabel). Received: y.shape={y.shape}"
            )
        if not first and getattr(self, "out_activation_", "softmax") == "logistic":
            raise ValueError(
                f"The model was fitted on multilabel targets ({len(self.classes_)} labels); y must be a 2-D "
                f"indicator matrix of that many columns. Received: y.shape={y.shape}"
            )
        # Semi-supervised use (see _prepare_semi_supervised_targets): only with a pretrainer.
        unlabelled = (
            _unlabelled_rows(y)
            if self.pretrainer is not None and self._marks_unlabelled
            else None
        )
        if unlabelled is not None:
            return self._prepare_semi_supervised_targets(
                y, unlabelled, first=first, classes=classes
            )
        check_classification_targets(y)
        kind = type_of_target(y)
        if kind not in ("binary", "multiclass"):
            raise ValueError(
                f"CNNClassifier needs binary or multi-class targets. Received: y of type {kind!r}"
            )
        if classes is not None:
            classes = unique_labels(np.asarray(classes))
            if not first and not np.array_equal(classes, self.classes_):
                raise ValueError(
                    f"classes must be the same as on the first call to partial_fit ({self.classes_}). "
                    f"Received: classes={classes!r}"
                )
        if first:
            self.classes_ = classes if classes is not None else unique_labels(y)
            self.out_activation_ = "softmax"
        missing = np.setdiff1d(unique_labels(y), self.classes_)
        if missing.size:
            where = (
                "classes"
                if first
                else "the classes of the first fit (warm_start and partial_fit keep them)"
            )
            raise ValueError(
                f"y holds labels that are not in {where}: {self.classes_}. Received: labels {missing}"
            )
        return np.searchsorted(self.classes_, y).astype(np.int64)

    def _prepare_multilabel_targets(
        self, y: np.ndarray, *, first: bool, classes: Any = None
    ) -> np.ndarray:
        """A 2-D binary indicator ``y`` (multilabel, as ``type_of_target`` says) as float 0/1 targets."""
        kind = type_of_target(y)
        if kind != "multilabel-indicator":
            raise ValueError(
                "A 2-D y must be a binary indicator matrix (multilabel: 0/1 in every column, as "
                f"sklearn.utils.multiclass.type_of_target says). Received: y of type {kind!r} and shape {y.shape}"
            )
        n_labels = int(y.shape[1])
        if classes is not None and not np.array_equal(
            np.asarray(classes), np.arange(n_labels)
        ):
            raise ValueError(
                f"With multilabel y, classes must be the label indices 0..{n_labels - 1} (as MLPClassifier's "
                f"classes_). Received: classes={classes!r}"
            )
        if first:
            self.classes_ = np.arange(n_labels)
            self.out_activation_ = "logistic"
        elif getattr(
            self, "out_activation_", "softmax"
        ) != "logistic" or n_labels != len(self.classes_):
            raise ValueError(
                "y does not match the targets of the first fit (warm_start and partial_fit keep them): "
                f"{'multilabel with ' + str(len(self.classes_)) + ' labels' if getattr(self, 'out_activation_', 'softmax') == 'logistic' else 'one column of class labels'}. "
                f"Received: y.shape={y.shape}"
            )
        return np.ascontiguousarray(y, dtype=self.dtype_)

    def _get_loss(self) -> Any:
        """Softmax cross-entropy, or binary cross-entropy per label for multilabel targets."""
        return (
            _MULTILABEL_LOSS
            if getattr(self, "out_activation_", "softmax") == "logistic"
            else self._loss
        )

    def _sample_weight(
        self, sample_weight: Any, y: np.ndarray, n: int, *, incremental: bool
    ) -> np.ndarray | None:
        """The sample weights times the class weights (``class_weight``), as scikit-learn's linear models."""
        weights = super()._sample_weight(sample_weight, y, n, incremental=incremental)
        if self.class_weight is None:
            return weights
        if y.ndim != 1:
            raise ValueError(
                "class_weight applies to one column of class labels; with multilabel y, pass sample_weight "
                f"instead. Received: class_weight={self.class_weight!r}"
            )
        labelled = y >= 0
        if isinstance(self.class_weight, str):
            if incremental:
                raise ValueError(
                    "class_weight='balanced' needs the class frequencies of the whole data set, which "
                    "partial_fit does not see; compute them once (sklearn.utils.class_weight."
                    "compute_class_weight) and pass a dict. Received: class_weight='balanced'"
                )
            present = np.unique(y[labelled])
            per_class = np.ones(len(self.classes_))
            per_class[present] = compute_class_weight(
                "balanced", classes=present, y=y[labelled]
            )
        else:
            unknown = [
                key
                for key in self.class_weight
                if key not in set(self.classes_.tolist())
            ]
            if unknown:
                raise ValueError(
                    f"class_weight names labels that are not classes ({list(self.classes_)}). "
                    f"Received: class_weight keys {unknown}"
                )
            per_class = np.array(
                [float(self.class_weight.get(c, 1.0)) for c in self.classes_.tolist()]
            )
            if not np.all(np.isfinite(per_class)) or np.any(per_class < 0):
                raise ValueError(
                    f"class_weight values must be finite and >= 0. Received: class_weight={self.class_weight!r}"
                )
        factor = np.ones(n)
        factor[labelled] = per_class[y[labelled]]
        return factor if weights is None else weights * factor

    # ------------------------------------------------- semi-supervised use
    # With a pretrainer, y == -1 marks an unlabelled sample, as in
    # sklearn.semi_supervised.  The pretrainer runs before supervised training
    # (BaseCNN._fit) and learns from every row of X; the supervised epochs use
    # the labelled rows only.  Without a pretrainer unlabelled rows would be
    # useless, so -1 is an ordinary class label there (binary -1/+1 labels
    # keep working, as scikit-learn's checks require).
    #: Whether ``y == -1`` marks unlabelled rows when a pretrainer is set.
    _marks_unlabelled = True

    def _prepare_semi_supervised_targets(
        self, y: np.ndarray, unlabelled: np.ndarray, *, first: bool, classes: Any = None
    ) -> np.ndarray:
        """Encoded targets of the labelled rows, ``-1`` for the unlabelled ones."""
        if classes is not None and np.any(np.asarray(classes) == -1):
            raise ValueError(
                "-1 marks unlabelled samples (as in sklearn.semi_supervised) and cannot be a class. "
                f"Received: classes={classes!r}"
            )
        if unlabelled.all():
            raise ValueError(
                "Every sample is marked unlabelled (y == -1); supervised training needs labelled samples. "
                f"Received: {y.shape[0]} samples, all with y=-1"
            )
        encoded = np.full(y.shape[0], -1, dtype=np.int64)
        encoded[~unlabelled] = self._prepare_targets(
            y[~unlabelled], first=first, classes=classes
        )
        if len(self.classes_) < 2:
            raise ValueError(
                "The labelled samples hold a single class. Note that y == -1 marks unlabelled samples (as in "
                "sklearn.semi_supervised), so -1 cannot be a class label: relabel the classes (e.g. 0/1). "
                f"Received: classes {list(self.classes_)} and {int(unlabelled.sum())} samples with y=-1"
            )
        return encoded

    def _train(
        self,
        network: Any,
        X: Any,
        y: np.ndarray,
        *,
        epochs: int,
        early_stopping: bool,
        sample_weight: np.ndarray | None = None,
    ) -> None:
        if y.ndim == 1:
            labelled = y >= 0  # encoded targets: -1 only for unlabelled rows
            if not labelled.all():
                X, y = X[labelled], y[labelled]
                sample_weight = (
                    sample_weight[labelled] if sample_weight is not None else None
                )
        super()._train(
            network,
            X,
            y,
            epochs=epochs,
            early_stopping=early_stopping,
            sample_weight=sample_weight,
        )

    def _n_outputs(self) -> int:
        return len(self.classes_)

    def _warn_if_chance_level(self, report: Any, y: np.ndarray) -> None:
        """Warn when the training loss sat at that of predicting the class frequencies all fit long."""
        if report.n_epochs < 2 or len(self.classes_) < 2 or y.ndim != 1:
            return
        prior = np.bincount(y[y >= 0], minlength=len(self.classes_)) / max(
            int((y >= 0).sum()), 1
        )
        chance = float(-(prior[prior > 0] * np.log(prior[prior > 0])).sum())
        curve = (
            report.data_losses
        )  # without the weight-decay penalty, which chance does not pay
        final = curve[-1]
        # Stuck, not merely early: at the class-frequency loss and not moving off it.
        if (
            final >= chance - max(0.01 * chance, 1e-3)
            and curve[0] - final < 0.01 * chance
        ):
            warnings.warn(
                f"{type(self).__name__}: the training loss ended at {final:.4g}, no better than predicting "
                f"the class frequencies ({chance:.4g}): the model learned nothing. Check that the input is "
                "scaled (e.g. StandardScaler or X / X.max()), try another learning_rate, or, after "
                "pretraining, a network whose units are not dead or saturated (pretrainer=None to compare).",
                ChanceLevelWarning,
                stacklevel=8,
            )

    def _validation_score(
        self, y_true: np.ndarray, output: np.ndarray, sample_weight: Any = None
    ) -> float:
        # Accuracy; for multilabel targets the subset accuracy (every label right), as score() is.
        if y_true.ndim == 2:
            correct = ((output > 0) == (y_true > 0.5)).all(axis=1)
        else:
            correct = output.argmax(axis=1) == y_true
        return float(np.average(correct, weights=sample_weight))

    # --------------------------------------------------------------- fitting
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> CNNClassifier:
        """Train the network on ``X`` and ``y``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features), (n, h, w) or (n, c, h, w)
            Training inputs.
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Class labels (numbers or strings), or a binary indicator matrix
            for multilabel classification (sigmoid outputs, binary
            cross-entropy).  With a ``pretrainer``, ``-1`` marks an
            unlabelled sample (as in :mod:`sklearn.semi_supervised`): the
            pretrainer learns from every sample, supervised training uses the
            labelled ones only.  Without a pretrainer ``-1`` is an ordinary
            label.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each sample (see Notes); multiplied by
            ``class_weight``.

        Returns
        -------
        self : CNNClassifier
            The fitted estimator.
        """
        return self._fit(X, y, incremental=False, sample_weight=sample_weight)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(
        self, X: Any, y: Any, classes: Any = None, sample_weight: Any = None
    ) -> CNNClassifier:
        """Run one epoch over ``X`` and ``y``, continuing from the current weights.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features), (n, h, w) or (n, c, h, w)
            Training inputs.
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Class labels, or a binary indicator matrix (multilabel).
        classes : array-like of shape (n_classes,), default=None
            All the labels that will ever appear; required on the first call,
            optional (and checked) afterwards.  For multilabel ``y``, the
            label indices ``0 .. n_labels - 1``, or ``None``.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each sample.

        Returns
        -------
        self : CNNClassifier
            The updated estimator.
        """
        if (
            not hasattr(self, "network_weights_")
            and classes is None
            and np.ndim(y) != 2
        ):
            raise ValueError(
                "classes must be passed on the first call to partial_fit. Received: classes=None"
            )
        return self._fit(
            X, y, incremental=True, classes=classes, sample_weight=sample_weight
        )

    # ------------------------------------------------------------ prediction
    def decision_function(self, X: Any) -> np.ndarray:
        """Logits of each class; for two classes, the log-odds of the second.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), (n, h, w) or (n, c, h, w)
            Inputs.

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_classes)
            ``logit[:, 1] - logit[:, 0]`` for binary problems, else the logits.
        """
        logits = self._forward(X)
        if (
            logits.shape[1] == 2
            and getattr(self, "out_activation_", "softmax") != "logistic"
        ):
            return logits[:, 1] - logits[:, 0]
        return logits

    def predict_log_proba(self, X: Any) -> np.ndarray:
        """Log of the class probabilities.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), (n, h, w) or (n, c, h, w)
            Inputs.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            ``log_softmax`` of the logits, in the order of ``classes_``.
        """
        logits = self._forward(X).astype(np.float64)
        if getattr(self, "out_activation_", "softmax") == "logistic":
            return -np.logaddexp(0.0, -logits)  # log sigmoid, per label
        ops = self._predict_network().ops
        return np.asarray(
            ops.to_numpy(ops.log_softmax(ops.asarray(logits), axis=1)), dtype=np.float64
        )

    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities (softmax of the logits).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), (n, h, w) or (n, c, h, w)
            Inputs.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Probabilities in the order of ``classes_``; for multilabel
            models, the probability of each label (rows need not sum to 1).
        """
        logits = self._forward(X).astype(np.float64)
        ops = self._predict_network().ops
        if getattr(self, "out_activation_", "softmax") == "logistic":
            return np.asarray(
                ops.to_numpy(ops.sigmoid(ops.asarray(logits))), dtype=np.float64
            )
        return np.asarray(
            ops.to_numpy(ops.softmax(ops.asarray(logits), axis=1)), dtype=np.float64
        )

    def predict(self, X: Any) -> np.ndarray:
        """Most probable class of each sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), (n, h, w) or (n, c, h, w)
            Inputs.

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_labels)
            Labels from ``classes_``, or for multilabel models a 0/1
            indicator matrix.
        """
        logits = self._forward(X)  # checks that the model is fitted first
        if getattr(self, "out_activation_", "softmax") == "logistic":
            return (logits > 0).astype(
                np.int64
            )  # each label whose probability passes 1/2
        return self.classes_[logits.argmax(axis=1)]


class CNNRegressor(RegressorMixin, BaseCNN):
    __doc__ = (
        """Convolutional neural network regressor.

    A stack of layers ending in one linear output per target, trained on the
    squared error by mini-batch gradient descent on a neuroplug backend.
    Several targets (2-D ``y``) are predicted together.
"""
        + _PARAMS_DOC
        + """
    Attributes
    ----------
    n_outputs_ : int
        Number of targets."""
        + _ATTRS_DOC
        + """
    See Also
    --------
    CNNClassifier : The same network for classification.
    sklearn.neural_network.MLPRegressor : Fully connected networks.

    Examples
    --------
    >>> import numpy as np
    >>> from neuroplug.estimators import CNNRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.random((200, 36))
    >>> y = X[:, :6].sum(axis=1)
    >>> reg = CNNRegressor(("conv:4x3x3", "relu", "dense:16", "relu"), max_iter=5, random_state=0)
    >>> reg.fit(X, y).predict(X[:2]).shape
    (2,)
"""
    )

    _loss = SquaredError()
    _y_numeric = True

    def __sklearn_tags__(self):
        """Declare multi-output regression support to scikit-learn."""
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags

    def _prepare_targets(
        self, y: Any, *, first: bool, classes: Any = None
    ) -> np.ndarray:
        y = np.asarray(y)
        if (
            y.ndim == 2
            and y.shape[1] > 1
            and y.dtype.kind in "biu"
            and type_of_target(y) == "multilabel-indicator"
        ):
            raise ValueError(
                "y is a multilabel indicator matrix (2-D 0/1 integers), a classification target: use "
                "CNNClassifier for multilabel classification, or pass y as floats to regress on 0/1 values. "
                f"Received: y of dtype {y.dtype} and shape {y.shape}"
            )
        if y.ndim not in (1, 2):
            raise ValueError(f"y must be 1-D or 2-D. Received: y.shape={y.shape}")
        y2 = y.reshape(-1, 1) if y.ndim == 1 else y
        if first:
            self.n_outputs_ = int(y2.shape[1])
            self._y_1d = y.ndim == 1
        elif y2.shape[1] != self.n_outputs_:
            raise ValueError(
                f"y has {y2.shape[1]} targets but the model was fitted with {self.n_outputs_}. Received: y.shape={y.shape}"
            )
        return np.ascontiguousarray(y2, dtype=self.dtype_)

    def _n_outputs(self) -> int:
        return self.n_outputs_

    def _validation_score(
        self, y_true: np.ndarray, output: np.ndarray, sample_weight: Any = None
    ) -> float:
        return float(r2_score(y_true, output, sample_weight=sample_weight))

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> CNNRegressor:
        """Train the network on ``X`` and ``y``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features), (n, h, w) or (n, c, h, w)
            Training inputs.
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            Targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each sample (see Notes).

        Returns
        -------
        self : CNNRegressor
            The fitted estimator.
        """
        return self._fit(X, y, incremental=False, sample_weight=sample_weight)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X: Any, y: Any, sample_weight: Any = None) -> CNNRegressor:
        """Run one epoch over ``X`` and ``y``, continuing from the current weights.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features), (n, h, w) or (n, c, h, w)
            Training inputs.
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            Targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each sample.

        Returns
        -------
        self : CNNRegressor
            The updated estimator.
        """
        return self._fit(X, y, incremental=True, sample_weight=sample_weight)

    def predict(self, X: Any) -> np.ndarray:
        """Predicted targets.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), (n, h, w) or (n, c, h, w)
            Inputs.

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_targets)
            1-D when the model was fitted on 1-D ``y``.
        """
        out = self._forward(X).astype(np.float64)
        return out.ravel() if self._y_1d else out
