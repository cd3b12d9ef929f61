"""The ``neuroplug train`` command: the main job.

``neuroplug train`` with no arguments trains the default CNN on the embedded
8x8 digits, shows a progress bar, prints the test accuracy and the training
time, and saves the model.  Options choose the data set (``digits``, a
directory of MNIST IDX files such as ``../shared/data/mnist-t10k/``, or an
``.npz`` file with ``X`` and ``y``), the layer stack, epochs, batch size,
pretrainer and backend.

The model is written in neuroplug's safe model format
(:func:`neuroplug.persist.save`: JSON plus NumPy arrays, never pickle); load
it with :func:`neuroplug.persist.load`.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["add_train_parser", "run_train", "load_train_test"]

DEFAULT_OUTPUT = "neuroplug-model.npz"


def add_train_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``train`` sub-command to an ``argparse`` sub-parsers object; return its parser."""
    p = subparsers.add_parser(
        "train",
        help="train a CNN classifier (default: the default CNN on the embedded digits)",
        description=(
            "Train a CNNClassifier, print its test accuracy and training time, and save it. "
            "Without options: the default network on scikit-learn's 8x8 digits."
        ),
    )
    p.add_argument(
        "--data",
        "-d",
        default="digits",
        help="'digits' (default), 'mnist' or 'fashion-mnist' (downloaded once into $NEUROPLUG_DATA or "
        "~/neuroplug_data), a directory with MNIST IDX files (e.g. ../shared/data/mnist-t10k/), "
        "or an .npz file with arrays X and y (optionally X_test and y_test)",
    )
    p.add_argument(
        "--layers",
        "-l",
        nargs="+",
        metavar="SPEC",
        default=None,
        help="layer specs, e.g. --layers conv:20x5x5 maxpool:2 relu conv:50x5x5 maxpool:2 relu dense:500 relu "
        "(default: the estimator's default network; the output layer is added automatically)",
    )
    p.add_argument(
        "--epochs",
        "-e",
        type=int,
        default=None,
        help="maximum number of epochs (default: 100, "
        "with the estimator's convergence test)",
    )
    p.add_argument(
        "--batch-size",
        "-b",
        type=int,
        default=None,
        help="mini-batch size (default: 32)",
    )
    p.add_argument(
        "--learning-rate",
        "--lr",
        type=float,
        default=None,
        help="learning rate (default: 1e-3)",
    )
    p.add_argument(
        "--optimizer",
        choices=("adam", "sgd", "nesterov"),
        default=None,
        help="optimiser (default: adam)",
    )
    p.add_argument(
        "--pretrainer",
        default=None,
        help="registered pretrainer name, e.g. dbn (default: none)",
    )
    p.add_argument(
        "--pretrain-param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a hyper-parameter of the pretrainer, repeatable, e.g. --pretrainer dbn "
        "--pretrain-param learning_rate=0.01 --pretrain-param max_iter=10",
    )
    p.add_argument(
        "--backend",
        default="cpu",
        help="registered backend, e.g. cpu, numpy, torch:cuda (default: cpu)",
    )
    p.add_argument(
        "--threads", type=int, default=None, help="thread limit of the backend kernels"
    )
    p.add_argument(
        "--augment",
        nargs="?",
        const="true",
        default=None,
        metavar="SPEC",
        help="random shifts/rotations/scalings while training; optional spec such as "
        "'shift=2,rotate=10,scale=0.1'",
    )
    p.add_argument(
        "--early-stopping",
        action="store_true",
        help="hold out 10%% of the training data for early stopping",
    )
    p.add_argument(
        "--test-size",
        type=float,
        default=0.25,
        help="share of the data held out for testing when the data set has no test part (default: 0.25)",
    )
    p.add_argument("--random-state", type=int, default=0, help="seed (default: 0)")
    p.add_argument(
        "--output",
        "-o",
        default=DEFAULT_OUTPUT,
        help=f"where to save the model (default: ./{DEFAULT_OUTPUT})",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.add_argument(
        "--checkpoint",
        metavar="DIR",
        default=None,
        help="save a checkpoint every epoch into DIR (the last 3 are kept); resume with --resume",
    )
    p.add_argument(
        "--resume",
        metavar="FILE",
        default=None,
        help="continue training the model saved in FILE (a checkpoint or an --output file) on the same "
        "data; --epochs sets how many more epochs (default: the rest of its max_iter)",
    )
    # --plot DIR: pictures of the fitted model (neuroplug.plot.save_training_plots).
    p.add_argument(
        "--plot",
        metavar="DIR",
        default=None,
        help="write loss-curve.png, filters.png (first layer), confusion-matrix.png and misclassified.png "
        "(test set) to DIR; needs matplotlib: pip install 'neuroplug[plot]'",
    )
    p.set_defaults(func=run_train)
    return p


def load_train_test(
    data: str, *, test_size: float = 0.25, random_state: int | None = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[int, ...] | None, str]:
    """Load a data set and split it; returns ``(X_train, X_test, y_train, y_test, input_shape, how)``.

    An MNIST directory with both ``train-*`` and ``t10k-*`` files uses them
    as training and test sets; an ``.npz`` file with ``X_test``/``y_test``
    uses those; otherwise a stratified ``train_test_split`` holds out
    ``test_size`` of the samples.  ``how`` describes the split.
    """
    from sklearn.model_selection import train_test_split

    from .datasets import load_dataset, load_mnist, mnist_image_shape

    if data in DOWNLOADS:
        return _load_download(data)
    path = Path(data)
    if data != "digits" and path.is_dir():
        try:
            X_tr, y_tr = load_mnist(path, kind="train")
            X_te, y_te = load_mnist(path, kind="t10k")
        except FileNotFoundError:
            pass
        else:
            # The IDX header's own rows x cols: non-square images are not guessed from sqrt(n_features).
            return (
                X_tr,
                X_te,
                y_tr,
                y_te,
                mnist_image_shape(path, "train"),
                "MNIST train / t10k files",
            )
    if data != "digits" and path.suffix == ".npz" and path.is_file():
        with np.load(path, allow_pickle=False) as f:
            if {"X_test", "y_test"} <= set(f.files):
                X_tr, y_tr = np.asarray(f["X"]), np.asarray(f["y"])
                X_te, y_te = np.asarray(f["X_test"]), np.asarray(f["y_test"])
                shape = tuple(X_tr.shape[1:]) if X_tr.ndim == 4 else None
                return X_tr, X_te, y_tr, y_te, shape, "X/y and X_test/y_test arrays"
    X, y, input_shape = load_dataset(data)
    if not 0.0 < test_size < 1.0:
        raise ValueError(
            f"--test-size must be between 0 and 1. Received: test_size={test_size}"
        )
    X_tr, X_te, y_tr, y_te = train_test_split(
        X, y, test_size=test_size, random_state=random_state, stratify=y
    )
    return (
        X_tr,
        X_te,
        y_tr,
        y_te,
        input_shape,
        f"stratified split, {test_size:g} held out for testing",
    )


#: ``--data`` names of the data sets downloaded by :mod:`neuroplug.fetch`.
DOWNLOADS = ("mnist", "fashion-mnist")

#: Training sets larger than this get an estimate of the run's duration before training.
_ESTIMATE_ABOVE = 5000


def _load_download(
    name: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[int, ...], str]:
    """``--data mnist`` / ``fashion-mnist``: the official train / test split, downloaded on first use."""
    from .fetch import fetch_fashion_mnist, fetch_mnist, get_data_home

    fetch = fetch_mnist if name == "mnist" else fetch_fashion_mnist
    X_tr, y_tr = fetch("train")
    X_te, y_te = fetch("test")
    return (
        X_tr,
        X_te,
        y_tr,
        y_te,
        (1, 28, 28),
        f"official train / test split, cached in {get_data_home()}",
    )


def _format_seconds(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def estimate_duration(
    clf: Any, X: np.ndarray, y: np.ndarray, *, n_probe: int = 1000
) -> tuple[float, int]:
    """Time one epoch of ``clf`` on ``n_probe`` samples; return ``(seconds per full epoch, max epochs)``.

    The estimate scales the probe linearly to ``len(X)`` samples (it includes
    the setup of one fit, so it errs on the long side).
    """
    import warnings

    from sklearn.base import clone

    rng = np.random.default_rng(0)
    n_probe = min(n_probe, len(X))
    idx = rng.choice(len(X), n_probe, replace=False)
    probe = clone(clf).set_params(max_iter=1, verbose=0, early_stopping=False)
    t0 = time.perf_counter()
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")  # one epoch does not converge, on purpose
        probe.fit(X[idx], y[idx])
    per_epoch = (time.perf_counter() - t0) * len(X) / n_probe
    return per_epoch, int(clf.get_params()["max_iter"])


# --------------------------------------------------------------------- checks before training
def check_output(output: str, data: str) -> str | None:
    """Why the model could not be saved to ``output`` (``None`` when it can): checked before training.

    The directory must exist and accept a new file (tried with a probe file
    that is removed at once), ``output`` must not be a directory, and it
    must not be the data file (or one of the IDX files of a data directory).
    """
    import tempfile

    path = Path(output)
    if not path.suffix:
        path = path.with_suffix(".npz")  # what neuroplug.save writes
    if path.is_dir() or Path(output).is_dir():
        return f"--output must be a file path, not a directory. Received: --output {output!r}"
    parent = path.parent
    if not parent.is_dir():
        return (
            f"--output {output!r}: the directory {str(parent)!r} does not exist; create it or choose "
            "another --output"
        )
    data_path = Path(data)
    targets = (
        [data_path]
        if data_path.is_file()
        else (
            [p for p in data_path.iterdir() if p.is_file() and "-ubyte" in p.name]
            if data_path.is_dir()
            else []
        )
    )
    for target in targets:
        same = path.resolve() == target.resolve() or (
            path.exists() and os.path.samefile(path, target)
        )
        if same:
            return (
                f"--output {output!r} is the data file {str(target)!r}; saving would overwrite the data set. "
                "Choose another --output"
            )
    try:
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.probe.", dir=parent)
    except OSError as exc:
        return f"--output {output!r}: cannot write in {str(parent)!r}: {exc.strerror or exc}"
    os.close(fd)
    os.unlink(probe)
    return None


def _available_memory() -> int | None:
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (
        AttributeError,
        ValueError,
        OSError,
    ):  # pragma: no cover - platforms without sysconf
        return None


def estimate_training_bytes(
    layers: Any,
    input_shape: tuple[int, ...],
    n_outputs: int,
    batch_size: int,
    itemsize: int,
) -> tuple[int, int] | None:
    """``(bytes, n_parameters)`` a training run needs, roughly, computed from shapes alone (nothing allocated).

    Parameters of dense and convolution layers count four times (weights,
    gradients and two optimiser moments), each layer's output twice per
    sample of a batch (forward values and their gradients).  ``None`` when
    the layer specs are invalid (the estimator then reports them).
    """
    from .layers.spec import build_layers

    try:
        stack = [*build_layers(layers), *build_layers((f"dense:{n_outputs}",))]
        shape = tuple(int(s) for s in input_shape)
        n_params = 0
        activations = 0
        for layer in stack:
            units = getattr(layer, "units", None)
            filters, kernel = (
                getattr(layer, "filters", None),
                getattr(layer, "kernel_size", None),
            )
            if isinstance(units, int):
                n_params += math.prod(shape) * units + units
            elif isinstance(filters, int) and kernel is not None:
                kh, kw = (kernel, kernel) if isinstance(kernel, int) else tuple(kernel)
                n_params += filters * shape[0] * kh * kw + filters
            shape = tuple(int(s) for s in layer.output_shape(shape))
            activations += math.prod(shape)
    except (ValueError, TypeError, IndexError):
        return None
    return itemsize * (4 * n_params + 2 * batch_size * activations), n_params


def _check_memory(
    args: argparse.Namespace,
    clf: Any,
    X: np.ndarray,
    y: np.ndarray,
    input_shape: tuple[int, ...] | None,
) -> str | None:
    """Why the network would not fit in memory (``None`` when it would, or when it cannot be estimated)."""
    if (
        getattr(X, "ndim", 0) != 2
        or X.shape[1] < 1
        or not isinstance(clf.layers, (tuple, list))
    ):
        return None  # bad data or layers: the estimator reports them
    try:
        n_classes = len(np.unique(y))
    except (TypeError, ValueError):
        return None
    shape = input_shape
    if shape is None:
        if not any(
            s.split(":", 1)[0].strip() in ("conv", "maxpool", "avgpool", "meanpool")
            for s in map(str, clf.layers)
        ):
            shape = (X.shape[1],)
        else:
            side = math.isqrt(X.shape[1])
            shape = (1, side, side) if side * side == X.shape[1] else None
    if shape is None:
        return None
    itemsize = 8 if X.dtype == np.float64 else 4
    if not isinstance(clf.batch_size, int):
        return None
    estimate = estimate_training_bytes(
        clf.layers, shape, n_classes, int(clf.batch_size), itemsize
    )
    available = _available_memory()
    if estimate is None or available is None or estimate[0] <= available:
        return None
    need, n_params = estimate
    return (
        f"the network needs about {need / 2**30:.1f} GiB to train ({n_params:,} parameters for inputs of shape "
        f"{shape}), more than the {available / 2**30:.1f} GiB of memory available. Use smaller layers "
        f"(--layers {' '.join(map(str, clf.layers))})"
    )


def _check_augment(
    args: argparse.Namespace, X: np.ndarray, input_shape: tuple[int, ...] | None
) -> str | None:
    """Why ``--augment`` cannot work on these images (``None`` when it can, or when the estimator will say)."""
    if args.augment is None:
        return None
    from .augment import get_augmenter

    try:
        augmenter = get_augmenter(True if args.augment == "true" else args.augment)
        if augmenter is None:
            return None
        if input_shape is not None and len(input_shape) == 3:
            augmenter.check_image_size(int(input_shape[1]), int(input_shape[2]))
        elif input_shape is None and math.isqrt(X.shape[1]) ** 2 == X.shape[1]:
            augmenter.check_image_size(math.isqrt(X.shape[1]), math.isqrt(X.shape[1]))
    except ValueError as exc:
        return str(exc)
    return None


def _resumed_model(args: argparse.Namespace, params: dict[str, Any]) -> Any:
    """The model of ``--resume FILE``, set to continue (or why it cannot be: a message)."""
    from .estimators import CNNClassifier
    from .persist import ModelFormatError, load

    try:
        clf = load(args.resume)
    except (OSError, ModelFormatError) as exc:
        return f"cannot resume from {args.resume!r}: {exc}"
    if not isinstance(clf, CNNClassifier) or not hasattr(clf, "network_weights_"):
        return (
            f"--resume needs a fitted CNNClassifier saved by neuroplug train or neuroplug.save. "
            f"Received: a {'fitted ' if hasattr(clf, 'n_iter_') else ''}{type(clf).__name__} in {args.resume!r}"
        )
    remaining = (
        args.epochs if args.epochs is not None else int(clf.max_iter) - int(clf.n_iter_)
    )
    if remaining < 1:
        return (
            f"the model in {args.resume!r} already ran its {clf.n_iter_} epoch(s) (max_iter={clf.max_iter}); "
            "pass --epochs N to train N more"
        )
    keep = {
        k: params[k]
        for k in ("backend", "n_threads", "verbose", "callbacks")
        if k in params
    }
    return clf.set_params(
        warm_start=True,
        max_iter=int(remaining),
        callbacks=keep.pop("callbacks", ()),
        **keep,
    )


def run_train(args: argparse.Namespace) -> int:
    """Run ``neuroplug train`` with parsed arguments; return the exit status (0 on success)."""
    from .estimators import CNNClassifier
    from .models.engine import ChanceLevelWarning, TrainingInterrupted
    from .network import TrainingDivergedError
    from .persist import save

    problem = check_output(args.output, args.data)
    if problem is not None:
        print(f"neuroplug train: error: {problem}", file=sys.stderr)
        return 2
    try:
        X_tr, X_te, y_tr, y_te, input_shape, how = load_train_test(
            args.data, test_size=args.test_size, random_state=args.random_state
        )
    except (OSError, ValueError) as exc:
        print(
            f"neuroplug train: error: cannot load data {args.data!r}: {exc}",
            file=sys.stderr,
        )
        return 2
    # --plot: refuse before training, not after it, when matplotlib is missing.
    if getattr(args, "plot", None) is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print(
                "neuroplug train: error: --plot needs matplotlib: pip install 'neuroplug[plot]'",
                file=sys.stderr,
            )
            return 2
        if Path(args.plot).exists() and not Path(args.plot).is_dir():
            print(
                f"neuroplug train: error: --plot must name a directory. Received: {args.plot!r} (a file)",
                file=sys.stderr,
            )
            return 2
    params: dict[str, Any] = {
        "input_shape": input_shape,
        "backend": args.backend,
        "n_threads": args.threads,
        "random_state": args.random_state,
        "verbose": 0 if args.quiet else 1,
        "early_stopping": bool(args.early_stopping),
    }
    optional = {
        "layers": tuple(args.layers) if args.layers else None,
        "max_iter": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "optimizer": args.optimizer,
        "pretrainer": args.pretrainer,
        "augment": (True if args.augment == "true" else args.augment),
    }
    params.update({k: v for k, v in optional.items() if v is not None})
    if args.pretrain_param:
        try:
            params["pretrainer"] = _pretrainer_from_args(
                args.pretrainer, args.pretrain_param
            )
        except (ValueError, TypeError) as exc:
            print(f"neuroplug train: error: {exc}", file=sys.stderr)
            return 2
    if args.checkpoint is not None:
        from .callbacks import Checkpoint, check_writable_directory

        try:
            check_writable_directory(args.checkpoint, "--checkpoint")
        except OSError as exc:
            print(f"neuroplug train: error: {exc}", file=sys.stderr)
            return 2
        params["callbacks"] = (Checkpoint(args.checkpoint, every=1, keep=3),)
    if args.resume is not None:
        clf = _resumed_model(args, params)
        if isinstance(clf, str):
            print(f"neuroplug train: error: {clf}", file=sys.stderr)
            return 2
    else:
        clf = CNNClassifier(**params)
    problem = _check_memory(args, clf, X_tr, y_tr, input_shape) or _check_augment(
        args, X_tr, input_shape
    )
    if problem is not None:
        print(f"neuroplug train: error: {problem}", file=sys.stderr)
        return 2
    data_name = "digits (scikit-learn 8x8)" if args.data == "digits" else args.data
    print(
        f"Data: {data_name}: {len(X_tr)} training and {len(X_te)} test samples ({how})"
    )
    print(
        f"Network: {', '.join(map(str, clf.layers))} -> dense:{len(np.unique(y_tr))} (output)"
    )
    if len(X_tr) > _ESTIMATE_ABOVE:
        try:
            per_epoch, max_epochs = estimate_duration(clf, X_tr, y_tr)
        except (ValueError, TypeError):
            pass  # the real fit below reports what is wrong
        else:
            print(
                f"Expected duration: about {_format_seconds(per_epoch)} per epoch, at most "
                f"{_format_seconds(per_epoch * max_epochs)} for {max_epochs} epochs (the convergence test "
                "usually stops earlier; --epochs N sets the maximum)"
            )
    t0 = time.perf_counter()
    try:
        with np.errstate(all="ignore"), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            clf.fit(X_tr, y_tr)
    except TrainingDivergedError as exc:
        print(f"neuroplug train: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            "neuroplug train: interrupted (Ctrl-C twice); nothing was saved.",
            file=sys.stderr,
        )
        return 130
    except (ValueError, TypeError) as exc:
        print(f"neuroplug train: error: {exc}", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - t0
    interrupted = any(issubclass(w.category, TrainingInterrupted) for w in caught)
    from sklearn.exceptions import ConvergenceWarning

    for w in caught:
        # The stop line below says what a ConvergenceWarning would; Ctrl-C and chance level are handled here.
        if not issubclass(
            w.category, (TrainingInterrupted, ChanceLevelWarning, ConvergenceWarning)
        ):
            print(f"neuroplug train: warning: {w.message}", file=sys.stderr)
    still_improving = any(issubclass(w.category, ConvergenceWarning) for w in caught)
    chance = [w for w in caught if issubclass(w.category, ChanceLevelWarning)]
    if chance:
        print(
            f"neuroplug train: error: {chance[0].message} Nothing was saved.",
            file=sys.stderr,
        )
        return 1
    if getattr(clf, "stop_reason_", None):
        kept = (
            f", kept the weights of epoch {clf.best_epoch_}"
            if getattr(clf, "best_epoch_", None)
            else ""
        )
        hint = (
            " (the loss was still improving: more --epochs may help)"
            if still_improving
            else ""
        )
        print(
            f"Stopped: {clf.stop_reason_.replace('_', ' ')} after {clf.n_iter_} epoch(s){kept}{hint}"
        )
    try:
        accuracy = clf.score(X_te, y_te)
    except (
        ValueError,
        TypeError,
    ) as exc:  # e.g. NaN or a wrong shape only in the held-out part
        print(
            f"neuroplug train: error: cannot score the test set: {exc}", file=sys.stderr
        )
        return 2
    print(f"Test accuracy: {accuracy:.4f} ({len(X_te)} samples)")
    print(
        f"Training time: {elapsed:.1f} s for {clf.n_iter_} epoch(s) on backend {args.backend!r}"
    )
    try:
        path = save(clf, args.output)
    except OSError as exc:
        print(
            f"neuroplug train: error: cannot save the model to {args.output!r}: {exc}",
            file=sys.stderr,
        )
        return 1
    print(
        f"Model saved to {Path(path).resolve()} (load it with neuroplug.persist.load)"
    )
    if interrupted:
        print(
            f"neuroplug train: interrupted (Ctrl-C) after {clf.n_iter_} complete epoch(s); the model trained "
            f"so far was saved. Continue with: neuroplug train --resume {path} (same --data)",
            file=sys.stderr,
        )
        return 130
    # --plot: pictures of the fitted model.
    if getattr(args, "plot", None) is not None:
        from .plot import save_training_plots

        try:
            for png in save_training_plots(clf, X_te, y_te, args.plot):
                print(f"Plot written to {Path(png).resolve()}")
        except (OSError, ValueError) as exc:
            print(
                f"neuroplug train: error: cannot write the plots to {args.plot!r}: {exc}",
                file=sys.stderr,
            )
            return 1
    return 0


def _parse_value(text: str) -> Any:
    """A command-line value as Python: int, float, bool (true/false), None (none), else the string."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered == "none":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _pretrainer_from_args(name: str | None, items: list[str]) -> Any:
    """The pretrainer ``name`` with the ``NAME=VALUE`` settings of ``--pretrain-param``, or a clear error."""
    from .plugins import get_pretrainer

    if name is None:
        raise ValueError(
            "--pretrain-param needs --pretrainer NAME (e.g. --pretrainer dbn). "
            f"Received: --pretrain-param {' '.join(items)}"
        )
    settings = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(
                f"--pretrain-param must be NAME=VALUE, e.g. learning_rate=0.01. Received: {item!r}"
            )
        settings[key.strip()] = _parse_value(value)
    pretrainer = get_pretrainer(name)()
    known = pretrainer.get_params()
    unknown = sorted(set(settings) - set(known))
    if unknown:
        raise ValueError(
            f"--pretrain-param: the {name!r} pretrainer has no parameter {', '.join(unknown)}; "
            f"its parameters are {', '.join(sorted(known))}. Received: {' '.join(items)}"
        )
    pretrainer.set_params(**settings)
    pretrainer._validate_params()
    return pretrainer
