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
import sys
import time
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
        "--data", "-d", default="digits",
        help="'digits' (default), 'mnist' or 'fashion-mnist' (downloaded once into $NEUROPLUG_DATA or "
             "~/neuroplug_data), a directory with MNIST IDX files (e.g. ../shared/data/mnist-t10k/), "
             "or an .npz file with arrays X and y (optionally X_test and y_test)",
    )
    p.add_argument(
        "--layers", "-l", nargs="+", metavar="SPEC", default=None,
        help="layer specs, e.g. --layers conv:20x5x5 maxpool:2 relu conv:50x5x5 maxpool:2 relu dense:500 relu "
             "(default: the estimator's default network; the output layer is added automatically)",
    )
    p.add_argument("--epochs", "-e", type=int, default=None, help="maximum number of epochs (default: 100, "
                   "with the estimator's convergence test)")
    p.add_argument("--batch-size", "-b", type=int, default=None, help="mini-batch size (default: 32)")
    p.add_argument("--learning-rate", "--lr", type=float, default=None, help="learning rate (default: 1e-3)")
    p.add_argument("--optimizer", choices=("adam", "sgd", "nesterov"), default=None, help="optimiser (default: adam)")
    p.add_argument("--pretrainer", default=None, help="registered pretrainer name, e.g. dbn (default: none)")
    p.add_argument("--pretrain-param", action="append", default=[], metavar="NAME=VALUE",
                   help="a hyper-parameter of the pretrainer, repeatable, e.g. --pretrainer dbn "
                        "--pretrain-param learning_rate=0.01 --pretrain-param max_iter=10")
    p.add_argument("--backend", default="cpu", help="registered backend, e.g. cpu, numpy, torch:cuda (default: cpu)")
    p.add_argument("--threads", type=int, default=None, help="thread limit of the backend kernels")
    p.add_argument("--augment", nargs="?", const="true", default=None, metavar="SPEC",
                   help="random shifts/rotations/scalings while training; optional spec such as "
                        "'shift=2,rotate=10,scale=0.1'")
    p.add_argument("--early-stopping", action="store_true", help="hold out 10%% of the training data for early stopping")
    p.add_argument("--test-size", type=float, default=0.25,
                   help="share of the data held out for testing when the data set has no test part (default: 0.25)")
    p.add_argument("--random-state", type=int, default=0, help="seed (default: 0)")
    p.add_argument("--output", "-o", default=DEFAULT_OUTPUT, help=f"where to save the model (default: ./{DEFAULT_OUTPUT})")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    # --plot DIR: pictures of the fitted model (neuroplug.plot.save_training_plots).
    p.add_argument(
        "--plot", metavar="DIR", default=None,
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

    from .datasets import load_dataset, load_mnist

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
            side = int(round(np.sqrt(X_tr.shape[1])))
            return X_tr, X_te, y_tr, y_te, (1, side, side), "MNIST train / t10k files"
    if data != "digits" and path.suffix == ".npz" and path.is_file():
        with np.load(path, allow_pickle=False) as f:
            if {"X_test", "y_test"} <= set(f.files):
                X_tr, y_tr = np.asarray(f["X"]), np.asarray(f["y"])
                X_te, y_te = np.asarray(f["X_test"]), np.asarray(f["y_test"])
                shape = tuple(X_tr.shape[1:]) if X_tr.ndim == 4 else None
                return X_tr, X_te, y_tr, y_te, shape, "X/y and X_test/y_test arrays"
    X, y, input_shape = load_dataset(data)
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"--test-size must be between 0 and 1. Received: test_size={test_size}")
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=test_size, random_state=random_state, stratify=y)
    return X_tr, X_te, y_tr, y_te, input_shape, f"stratified split, {test_size:g} held out for testing"


#: ``--data`` names of the data sets downloaded by :mod:`neuroplug.fetch`.
DOWNLOADS = ("mnist", "fashion-mnist")

#: Training sets larger than this get an estimate of the run's duration before training.
_ESTIMATE_ABOVE = 5000


def _load_download(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, tuple[int, ...], str]:
    """``--data mnist`` / ``fashion-mnist``: the official train / test split, downloaded on first use."""
    from .fetch import fetch_fashion_mnist, fetch_mnist, get_data_home

    fetch = fetch_mnist if name == "mnist" else fetch_fashion_mnist
    X_tr, y_tr = fetch("train")
    X_te, y_te = fetch("test")
    return X_tr, X_te, y_tr, y_te, (1, 28, 28), f"official train / test split, cached in {get_data_home()}"


def _format_seconds(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def estimate_duration(clf: Any, X: np.ndarray, y: np.ndarray, *, n_probe: int = 1000) -> tuple[float, int]:
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


def run_train(args: argparse.Namespace) -> int:
    """Run ``neuroplug train`` with parsed arguments; return the exit status (0 on success)."""
    from .estimators import CNNClassifier
    from .network import TrainingDivergedError
    from .persist import save

    try:
        X_tr, X_te, y_tr, y_te, input_shape, how = load_train_test(
            args.data, test_size=args.test_size, random_state=args.random_state
        )
    except (OSError, ValueError) as exc:
        print(f"neuroplug train: error: cannot load data {args.data!r}: {exc}", file=sys.stderr)
        return 2
    # --plot: refuse before training, not after it, when matplotlib is missing.
    if getattr(args, "plot", None) is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("neuroplug train: error: --plot needs matplotlib: pip install 'neuroplug[plot]'", file=sys.stderr)
            return 2
        if Path(args.plot).exists() and not Path(args.plot).is_dir():
            print(f"neuroplug train: error: --plot must name a directory. Received: {args.plot!r} (a file)", file=sys.stderr)
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
            params["pretrainer"] = _pretrainer_from_args(args.pretrainer, args.pretrain_param)
        except (ValueError, TypeError) as exc:
            print(f"neuroplug train: error: {exc}", file=sys.stderr)
            return 2
    clf = CNNClassifier(**params)
    data_name = "digits (scikit-learn 8x8)" if args.data == "digits" else args.data
    print(f"Data: {data_name}: {len(X_tr)} training and {len(X_te)} test samples ({how})")
    print(f"Network: {', '.join(map(str, clf.layers))} -> dense:{len(np.unique(y_tr))} (output)")
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
        with np.errstate(all="ignore"):
            clf.fit(X_tr, y_tr)
    except TrainingDivergedError as exc:
        print(f"neuroplug train: error: {exc}", file=sys.stderr)
        return 1
    except (ValueError, TypeError) as exc:
        print(f"neuroplug train: error: {exc}", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - t0
    try:
        accuracy = clf.score(X_te, y_te)
    except (ValueError, TypeError) as exc:  # e.g. NaN or a wrong shape only in the held-out part
        print(f"neuroplug train: error: cannot score the test set: {exc}", file=sys.stderr)
        return 2
    print(f"Test accuracy: {accuracy:.4f} ({len(X_te)} samples)")
    print(f"Training time: {elapsed:.1f} s for {clf.n_iter_} epoch(s) on backend {args.backend!r}")
    try:
        path = save(clf, args.output)
    except OSError as exc:
        print(f"neuroplug train: error: cannot save the model to {args.output!r}: {exc}", file=sys.stderr)
        return 1
    print(f"Model saved to {Path(path).resolve()} (load it with neuroplug.persist.load)")
    # --plot: pictures of the fitted model.
    if getattr(args, "plot", None) is not None:
        from .plot import save_training_plots

        try:
            for png in save_training_plots(clf, X_te, y_te, args.plot):
                print(f"Plot written to {Path(png).resolve()}")
        except (OSError, ValueError) as exc:
            print(f"neuroplug train: error: cannot write the plots to {args.plot!r}: {exc}", file=sys.stderr)
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
        raise ValueError("--pretrain-param needs --pretrainer NAME (e.g. --pretrainer dbn). "
                         f"Received: --pretrain-param {' '.join(items)}")
    settings = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--pretrain-param must be NAME=VALUE, e.g. learning_rate=0.01. Received: {item!r}")
        settings[key.strip()] = _parse_value(value)
    pretrainer = get_pretrainer(name)()
    known = pretrainer.get_params()
    unknown = sorted(set(settings) - set(known))
    if unknown:
        raise ValueError(f"--pretrain-param: the {name!r} pretrainer has no parameter {', '.join(unknown)}; "
                         f"its parameters are {', '.join(sorted(known))}. Received: {' '.join(items)}")
    pretrainer.set_params(**settings)
    pretrainer._validate_params()
    return pretrainer
