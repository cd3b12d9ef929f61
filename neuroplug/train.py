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
        help="'digits' (default), a directory with MNIST IDX files (e.g. ../shared/data/mnist-t10k/), "
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
        help="write loss-curve.png, filters.png (first layer) and confusion-matrix.png (test set) "
             "to DIR; needs matplotlib: pip install 'neuroplug[plot]'",
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

    path = Path(data)
    if data != "digits" and path.is_dir():
        try:
            X_tr, y_tr = load_mnist(path, kind="train")
            X_te, y_te = load_mnist(path, kind="t10k")
        except FileNotFoundError:
            pass
        else:
            # The IDX header's own rows x cols: non-square images are not guessed from sqrt(n_features).
            return X_tr, X_te, y_tr, y_te, mnist_image_shape(path, "train"), "MNIST train / t10k files"
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
    clf = CNNClassifier(**params)
    data_name = "digits (scikit-learn 8x8)" if args.data == "digits" else args.data
    print(f"Data: {data_name}: {len(X_tr)} training and {len(X_te)} test samples ({how})")
    print(f"Network: {', '.join(map(str, clf.layers))} -> dense:{len(np.unique(y_tr))} (output)")
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
