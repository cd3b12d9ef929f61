"""Semi-supervised MNIST: one CNN, initialised by no pretrainer, by "dbn" or by "cdbn".

Not a test: run it by hand,

    python benchmarks/bench_cdbn.py [--seeds 0 1 2] [--threads 2] [--activation sigmoid]
                                    [--filters benchmarks/results/cdbn_filters.png] [--quick]

Data: the MNIST test-set files (``--data``), first 8000 images for training
and the last 2000 for testing, pixels scaled to [0, 1].  Per seed, 1000 of
the 8000 training images (a random subset) keep their labels; the other 7000
are marked unlabelled (``y = -1``, as in ``sklearn.semi_supervised``).

The same CNN is trained three ways, all with the same supervised schedule
(Adam, ``--epochs`` epochs over the 1000 labelled images):

* ``None``: random initialisation, trained on the 1000 labelled images;
* ``"dbn"``: the dense layer is initialised by an RBM stack trained on all
  8000 images (through the randomly initialised convolutions);
* ``"cdbn"``: the two convolutions are initialised greedily by convolutional
  RBMs with probabilistic max-pooling trained on all 8000 images (Lee et al.
  2009).

``CNNClassifier.fit(X_all, y_with_minus_ones)`` hands every image to the
pretrainer and trains on the labelled ones.  The script prints the test
accuracy per seed and the mean and standard deviation, the time of each fit,
and saves the first-layer ConvRBM filters (before supervised training) as an
image.  For reference, Lee et al. report 2.62% test error with 1000 labels
using 60,000 unlabelled MNIST images and an SVM on the CDBN features.

The network uses sigmoid units (``--activation``): they are what the RBMs
model, so the pretrained weights compute the RBM features.  With
``--activation relu`` the same weights serve only as an initialisation.

OpenMP threads wait passively (``OMP_WAIT_POLICY=passive`` unless set), so a
busy shared machine does not slow the parallel kernels by spinning.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("OMP_WAIT_POLICY", "passive")  # before the OpenMP runtime starts

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

from neuroplug.datasets import load_mnist  # noqa: E402
from neuroplug.estimators import CNNClassifier  # noqa: E402
from neuroplug.pretrain.cdbn import CDBNPretrainer  # noqa: E402
from neuroplug.pretrain.dbn import DBNPretrainer  # noqa: E402

DEFAULT_DATA = os.path.join(
    os.path.dirname(os.path.abspath(__file__)),
    os.pardir,
    os.pardir,
    "shared",
    "data",
    "mnist-t10k",
)
if not os.path.isdir(DEFAULT_DATA):
    DEFAULT_DATA = "/work/shared/data/mnist-t10k"

LEE_ET_AL_ERROR = (
    0.0262  # 1000 labels, full MNIST, CDBN features + SVM (Lee et al. 2009, table 2)
)

_SNAPSHOT: dict[str, np.ndarray] = {}


class SnapshotCDBN(CDBNPretrainer):
    """The cdbn pretrainer, keeping a copy of the first layer's filters right after pretraining."""

    def pretrain(self, network, X, *, random_state=None, verbose=0):  # noqa: D102 - see CDBNPretrainer
        super().pretrain(network, X, random_state=random_state, verbose=verbose)
        _SNAPSHOT["W"] = network.layers[self.pretrained_layers_[0]].get_weights()["W"]
        _SNAPSHOT["errors"] = [list(e) for e in self.reconstruction_errors_]


def layers_for(activation: str) -> tuple[str, ...]:
    """The benchmark's CNN (the same for every pretrainer), with ``activation`` after each layer."""
    return (
        "conv:24x7x7",
        activation,
        "maxpool:2",  # 28 -> 22 -> 11
        "conv:40x5x5",
        activation,
        "maxpool:2",  # 11 -> 7 -> 3
        "dense:200",
        activation,
    )


def pretrainers(args: argparse.Namespace) -> dict[str, object]:
    """The three initialisations compared, by name."""
    return {
        "none": None,
        "dbn": DBNPretrainer(max_iter=args.pretrain_epochs),
        "cdbn": SnapshotCDBN(
            max_iter=args.pretrain_epochs,
            learning_rate=0.2,
            momentum=0.9,
            sparsity_target=0.05,
            sparsity_cost=1.0,
        ),
    }


def save_filters(W: np.ndarray, path: str) -> None:
    """Save the filters ``W`` (n, 1, kh, kw) as a grid of grey images (white = positive)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = W.shape[0]
    cols = 8
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.0, rows * 1.0))
    for ax in axes.ravel():
        ax.axis("off")
    for ax, w in zip(axes.ravel(), W[:, 0]):
        lim = np.abs(w).max()
        ax.imshow(w, cmap="gray", vmin=-lim, vmax=lim, interpolation="nearest")
    fig.suptitle(
        "cdbn: first-layer ConvRBM filters (7x7, before supervised training)",
        fontsize=8,
    )
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    """Run the comparison and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data", default=DEFAULT_DATA, help="directory of the MNIST t10k IDX files"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--labelled", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=30, help="supervised epochs")
    parser.add_argument(
        "--pretrain-epochs", type=int, default=5, help="CD epochs per pretrained layer"
    )
    parser.add_argument(
        "--activation", choices=["sigmoid", "relu", "tanh"], default="sigmoid"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--only",
        choices=["none", "dbn", "cdbn"],
        action="append",
        help="run only these",
    )
    parser.add_argument(
        "--filters",
        default=os.path.join(
            os.path.dirname(os.path.abspath(__file__)), "results", "cdbn_filters.png"
        ),
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: 2000 images, 1 seed, 2+3 epochs",
    )
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.epochs, args.pretrain_epochs = args.seeds[:1], 3, 2

    X, y = load_mnist(args.data, kind="t10k")
    X_train, y_train, X_test, y_test = X[:8000], y[:8000], X[8000:], y[8000:]
    if args.quick:
        X_train, y_train = X_train[:2000], y_train[:2000]
    layers = layers_for(args.activation)
    print(
        f"neuroplug cdbn benchmark | {platform.processor() or platform.machine()} | {args.threads} threads | "
        f"OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}"
    )
    print(
        f"train {X_train.shape[0]} ({args.labelled} labelled), test {X_test.shape[0]}; layers {layers}"
    )
    print(
        f"supervised: Adam 1e-3, {args.epochs} epochs, batch 64; pretraining: {args.pretrain_epochs} epochs per layer"
    )
    print()
    names = args.only or ["none", "dbn", "cdbn"]
    results: dict[str, list[float]] = {name: [] for name in names}
    times: dict[str, list[float]] = {name: [] for name in names}
    for seed in args.seeds:
        order = np.random.default_rng(seed).permutation(X_train.shape[0])
        labelled = np.sort(order[: args.labelled])
        y_semi = np.full_like(y_train, -1)
        y_semi[labelled] = y_train[labelled]
        for name in names:
            pretrainer = pretrainers(args)[name]
            clf = CNNClassifier(
                layers,
                input_shape=(1, 28, 28),
                max_iter=args.epochs,
                batch_size=64,
                pretrainer=pretrainer,
                n_threads=args.threads,
                random_state=seed,
            )
            t0 = time.perf_counter()
            try:
                if pretrainer is None:
                    clf.fit(
                        X_train[labelled], y_train[labelled]
                    )  # nothing would use the unlabelled images
                else:
                    clf.fit(X_train, y_semi)
            except (
                ValueError,
                ArithmeticError,
            ) as exc:  # a diverged pretrainer: report it, go on
                print(
                    f"seed {seed}  pretrainer={name:5s}  FAILED: {type(exc).__name__}: {exc}",
                    flush=True,
                )
                results[name].append(float("nan"))
                times[name].append(time.perf_counter() - t0)
                continue
            elapsed = time.perf_counter() - t0
            acc = float(clf.score(X_test, y_test))
            results[name].append(acc)
            times[name].append(elapsed)
            print(
                f"seed {seed}  pretrainer={name:5s}  test accuracy {acc:.4f}  (error {100 * (1 - acc):.2f}%)  "
                f"fit {elapsed:.0f}s",
                flush=True,
            )
            if name == "cdbn" and seed == args.seeds[0] and "W" in _SNAPSHOT:
                save_filters(_SNAPSHOT["W"], args.filters)
                errs = ", ".join(
                    f"layer {i + 1}: " + " ".join(f"{e:.2f}" for e in errors)
                    for i, errors in enumerate(_SNAPSHOT["errors"])
                )
                print(f"    ConvRBM reconstruction error per epoch: {errs}")
                print(f"    first-layer filters saved to {args.filters}")
    print()
    print(
        f"{'pretrainer':>10} {'mean acc':>9} {'std':>7} {'error %':>8} {'fit s':>7}   per seed"
    )
    for name in names:
        acc = results[name]
        std = statistics.stdev(acc) if len(acc) > 1 else 0.0
        print(
            f"{name:>10} {statistics.mean(acc):9.4f} {std:7.4f} {100 * (1 - statistics.mean(acc)):8.2f} "
            f"{statistics.mean(times[name]):7.0f}   {' '.join(f'{a:.4f}' for a in acc)}"
        )
    print(
        f"\nLee et al. 2009 (1000 labels, 60k unlabelled, CDBN + SVM): {100 * LEE_ET_AL_ERROR:.2f}% error"
    )
    if "none" in results:
        base = statistics.mean(results["none"])
        for name in names:
            if name != "none":
                gain = statistics.mean(results[name]) - base
                wins = sum(a > b for a, b in zip(results[name], results["none"]))
                verdict = "beats" if gain > 0 else "does NOT beat"
                print(
                    f"{name} {verdict} no pretraining: {100 * gain:+.2f} points on average, "
                    f"better on {wins}/{len(results[name])} seeds"
                )


if __name__ == "__main__":
    main()
