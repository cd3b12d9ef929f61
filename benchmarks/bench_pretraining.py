"""Pretraining matrix: every built-in pretrainer on the networks users build, against no pretraining.

Not a test: run it by hand,

    python benchmarks/bench_pretraining.py [--data DIR] [--seeds 0 1 2] [--quick]
        [--sets digits mnist8k mnist1k] [--nets default classic tanh]
        [--pretrainers none dbn sbn cdbn] [--epochs N] [--mnist-epochs N] [--mnist1k-epochs N]
        [--threads 2] [--json FILE]

Rows: pretrainer in {none, dbn, sbn, cdbn} x network x data set; per cell
the test accuracy of every seed, their mean and their minimum, and the time
of a fit.  A seed seeds the estimator (initial weights, pretraining,
shuffling) and, on ``mnist1k``, the choice of the labelled images.

Every cell trains with the pretrainer's defaults (``pretrainer="dbn"``...),
as a user gets them.  Supervised epochs: ``--epochs`` (30) for the default
network on digits, 100 for the two small networks on digits,
``--mnist-epochs`` (10) on MNIST 8k and ``--mnist1k-epochs`` (50) on the
1,000 labelled MNIST images; the estimator's convergence test may stop a
fit earlier.  Without a pretrainer the unlabelled images are left out (a
``-1`` label would otherwise be a class).

Networks (``--nets``), with ``k = 3`` on the 8x8 digits and ``k = 5`` on
MNIST:

* ``default``: :data:`neuroplug.estimators._cnn_base.DEFAULT_LAYERS` (ReLU,
  max pooling, dense 128 with dropout), the estimator's defaults.
* ``classic``: the network of the primer: sigmoid units, mean pooling, six
  maps then sixteen whose inputs follow LeNet-5's partial connection table
  (:data:`neuroplug.layers.LENET5_C3_CONNECTIONS`), a dense sigmoid layer;
  trained with the settings the pretraining guide documents for it
  (:data:`CLASSIC_SETTINGS`).
* ``tanh``: a tanh LeNet (6 and 16 maps, max pooling, dense 120 and 84).

Data sets (``--sets``):

* ``digits``: scikit-learn's 8x8 digits, pixels / 16, a fixed stratified
  70/30 split (1,257 training and 540 test images).
* ``mnist8k``: the MNIST test-set files in ``--data``, first 8,000 images
  for training and the last 2,000 for testing, pixels in [0, 1].
* ``mnist1k``: the same 8,000 training images, of which 1,000 (a random
  subset per seed) keep their labels and 7,000 are marked unlabelled
  (``y == -1``): the pretrainers learn from all 8,000, the supervised
  training uses the 1,000.

``--quick`` runs one seed, few epochs and 2,000 MNIST training images, to
check that the script works.  OpenMP threads wait passively
(``OMP_WAIT_POLICY=passive`` unless set), so a busy shared machine does not
slow the parallel kernels by spinning.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings

os.environ.setdefault("OMP_WAIT_POLICY", "passive")  # before the OpenMP runtime starts

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from neuroplug.datasets import load_mnist
from neuroplug.estimators import CNNClassifier
from neuroplug.estimators._cnn_base import DEFAULT_LAYERS
from neuroplug.layers import LENET5_C3_CONNECTIONS, Conv2D

DEFAULT_DATA = os.path.join(
    os.path.dirname(os.path.abspath(__file__)),
    os.pardir,
    os.pardir,
    "shared",
    "data",
    "mnist-t10k",
)
PRETRAINERS = ("none", "dbn", "sbn", "cdbn")
NETS = ("default", "classic", "tanh")
SETS = ("digits", "mnist8k", "mnist1k")
#: The supervised settings the pretraining guide documents for the classic sigmoid network.
CLASSIC_SETTINGS = {
    "optimizer": "nesterov",
    "learning_rate": 0.3,
    "batch_size": 8,
    "lr_schedule": "step:40,0.3",
}
#: Supervised epochs on digits of the networks whose fits take seconds (``--epochs`` sets the default net's).
SMALL_NET_EPOCHS = 100


def network(name: str, k: int) -> tuple[tuple, dict]:
    """``(layers, estimator settings)`` of a benchmark network with ``k x k`` kernels."""
    if name == "default":
        return DEFAULT_LAYERS, {}
    if name == "classic":
        return (
            f"conv:6x{k}x{k},padding=same",
            "sigmoid",
            "meanpool:2",
            Conv2D(16, k, padding="same", connections=LENET5_C3_CONNECTIONS),
            "sigmoid",
            "meanpool:2",
            "dense:32",
            "sigmoid",
        ), dict(CLASSIC_SETTINGS)
    if name == "tanh":
        return (
            f"conv:6x{k}x{k},padding=same",
            "tanh",
            "maxpool:2",
            f"conv:16x{k}x{k},padding=same",
            "tanh",
            "maxpool:2",
            "dense:120",
            "tanh",
            "dense:84",
            "tanh",
        ), {}
    raise ValueError(f"unknown network {name!r}; expected one of {NETS}")


def data_set(name: str, seed: int, data_dir: str, n_train: int) -> tuple:
    """``(X_train, y_train, X_test, y_test, input_shape)``; ``y_train == -1`` marks unlabelled images."""
    if name == "digits":
        X, y = load_digits(return_X_y=True)
        X_tr, X_te, y_tr, y_te = train_test_split(
            (X / 16).astype(np.float32), y, test_size=0.3, random_state=0, stratify=y
        )
        return X_tr, y_tr, X_te, y_te, (1, 8, 8)
    X, y = load_mnist(data_dir, "t10k")
    X_tr, y_tr, X_te, y_te = X[:n_train], y[:n_train].copy(), X[8000:], y[8000:]
    if name == "mnist1k":
        labelled = np.random.default_rng(seed).choice(
            n_train, size=n_train // 8, replace=False
        )
        mask = np.ones(n_train, dtype=bool)
        mask[labelled] = False
        y_tr[mask] = -1
    return X_tr, y_tr, X_te, y_te, (1, 28, 28)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data", default=DEFAULT_DATA, help="directory of the MNIST t10k IDX files"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=SETS)
    parser.add_argument("--nets", nargs="+", default=list(NETS), choices=NETS)
    parser.add_argument(
        "--pretrainers", nargs="+", default=list(PRETRAINERS), choices=PRETRAINERS
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=30,
        help=f"supervised epochs of the default network on digits (the others: {SMALL_NET_EPOCHS})",
    )
    parser.add_argument(
        "--mnist-epochs", type=int, default=10, help="supervised epochs on MNIST 8k"
    )
    parser.add_argument(
        "--mnist1k-epochs",
        type=int,
        default=50,
        help="supervised epochs on the 1,000 labelled MNIST images (an epoch is 8x shorter)",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--quick", action="store_true", help="one seed, 3 epochs, 2,000 MNIST images"
    )
    parser.add_argument(
        "--json", default=None, help="write every result to this JSON file"
    )
    args = parser.parse_args(argv)
    seeds, epochs, mnist_epochs, n_train = (
        args.seeds,
        args.epochs,
        args.mnist_epochs,
        8000,
    )
    mnist1k_epochs = args.mnist1k_epochs
    if args.quick:
        seeds, epochs, mnist_epochs, mnist1k_epochs, n_train = seeds[:1], 3, 2, 4, 2000
    print(
        f"# {platform.processor() or platform.machine()}, threads={args.threads}, seeds={seeds}, "
        f"epochs: digits {epochs} (default net), MNIST 8k {mnist_epochs}, MNIST 1k labels {mnist1k_epochs}"
    )
    print(
        f"{'data':8s} {'network':8s} {'pretrainer':10s} {'mean':>6s} {'min':>6s}  per seed   s/fit"
    )
    results = []
    for set_name in args.sets:
        for net_name in args.nets:
            layers, settings = network(net_name, 3 if set_name == "digits" else 5)
            for pre in args.pretrainers:
                scores, times = [], []
                for seed in seeds:
                    X_tr, y_tr, X_te, y_te, shape = data_set(
                        set_name, seed, args.data, n_train
                    )
                    if (
                        pre == "none"
                    ):  # without a pretrainer, -1 would be a class: train on the labels
                        X_tr, y_tr = X_tr[y_tr != -1], y_tr[y_tr != -1]
                    clf = CNNClassifier(
                        layers,
                        input_shape=shape,
                        pretrainer=None if pre == "none" else pre,
                        max_iter={
                            "mnist8k": mnist_epochs,
                            "mnist1k": mnist1k_epochs,
                        }.get(
                            set_name,
                            epochs
                            if net_name == "default" or args.quick
                            else SMALL_NET_EPOCHS,
                        ),
                        n_threads=args.threads,
                        random_state=seed,
                        **settings,
                    )
                    start = time.perf_counter()
                    with warnings.catch_warnings():
                        warnings.simplefilter(
                            "ignore"
                        )  # ConvergenceWarning at few epochs
                        clf.fit(X_tr, y_tr)
                    times.append(time.perf_counter() - start)
                    scores.append(float(clf.score(X_te, y_te)))
                row = {
                    "data": set_name,
                    "network": net_name,
                    "pretrainer": pre,
                    "seeds": seeds,
                    "scores": scores,
                    "mean": float(np.mean(scores)),
                    "min": float(np.min(scores)),
                    "seconds_per_fit": float(np.mean(times)),
                }
                results.append(row)
                print(
                    f"{set_name:8s} {net_name:8s} {pre:10s} {row['mean']:6.4f} {row['min']:6.4f}  "
                    f"{' '.join(f'{s:.4f}' for s in scores)}  {row['seconds_per_fit']:.1f}",
                    flush=True,
                )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
