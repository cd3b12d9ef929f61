"""LeNet on MNIST: neuroplug with ``backend="torch"`` on the CPU beside plain PyTorch.

Run from the repository root, after ``pip install -e ./plugins/neuroplug-torch``
(or with the plugin directory on ``PYTHONPATH``)::

    python benchmarks/bench_torch_backend.py [--data DIR] [--epochs 3] [--rounds 2] [--threads N]

LeNet (conv 20@5x5 -> maxpool 2 -> relu -> conv 50@5x5 -> maxpool 2 -> relu
-> dense 500 -> relu -> dense 10), Adam 1e-3, batch 128, the first 8,000
MNIST t10k images for training and the last 2,000 for testing (random data of
that shape if the files are absent).  Both sides run in this process with the
same torch thread count, alternating ``--rounds`` times (load on a shared
machine drifts); an epoch's time is the median over ``--epochs`` epochs after
one warm-up epoch (see ``neuroplug_torch.benchmark``).  Prints both epoch
times, the overhead ratio (median over rounds; target: <= 1.2) and test
accuracies.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", default=None, help="directory with the MNIST t10k IDX files"
    )
    parser.add_argument(
        "--epochs", type=int, default=3, help="timed epochs (after one warm-up epoch)"
    )
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="alternate plain PyTorch and neuroplug this many times (shared machines drift)",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    try:
        import neuroplug_torch  # noqa: F401
    except ImportError:  # not pip-installed: use the source tree
        sys.path.insert(0, os.path.join(ROOT, "plugins", "neuroplug-torch"))
    sys.path.insert(0, ROOT)
    import torch
    from neuroplug_torch.benchmark import (
        load_mnist_split,
        time_neuroplug,
        time_plain_torch,
    )

    from neuroplug.plugins import get_plugin_manager

    if (
        "torch" not in get_plugin_manager().backends
    ):  # plugin on sys.path but not installed
        import neuroplug_torch.plugin

        get_plugin_manager().register(neuroplug_torch.plugin, name="torch")
    if args.threads:
        torch.set_num_threads(args.threads)

    X, y, X_test, y_test, source = load_mnist_split(args.data)
    print(f"data: {source}; train {X.shape}, test {X_test.shape}")
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; "
        f"{args.epochs} timed epochs after 1 warm-up"
    )
    rounds = []
    for r in range(args.rounds):
        plain = time_plain_torch(
            X, y, X_test, y_test, device="cpu", epochs=args.epochs, seed=args.seed
        )
        ours = time_neuroplug(
            X,
            y,
            X_test,
            y_test,
            backend="torch:cpu",
            epochs=args.epochs,
            seed=args.seed,
        )
        rounds.append((plain, ours))
        print(
            f"round {r + 1}: plain PyTorch {plain['epoch_s']:.3f} s/epoch, neuroplug {ours['epoch_s']:.3f} s/epoch, "
            f"ratio {ours['epoch_s'] / plain['epoch_s']:.3f}",
            flush=True,
        )
    print(f"\n{'':32s} {'s/epoch':>8s}  {'all timed epochs (s)':<36s} {'test acc':>9s}")
    for i, name in enumerate(("plain PyTorch", 'neuroplug backend="torch:cpu"')):
        times = [t for rnd in rounds for t in rnd[i]["epoch_times"]]
        acc = rounds[-1][i]["accuracy"]
        print(
            f"{name:32s} {statistics.median(times):8.3f}  {' '.join(f'{t:.2f}' for t in times):<36s} {acc:9.4f}"
        )
    ratios = [rnd[1]["epoch_s"] / rnd[0]["epoch_s"] for rnd in rounds]
    ratio = statistics.median(ratios)
    verdict = "meets" if ratio <= 1.2 else "MISSES"
    print(
        f"\noverhead ratio neuroplug / plain PyTorch (median over rounds {', '.join(f'{r:.3f}' for r in ratios)}): "
        f"{ratio:.3f} ({verdict} the <= 1.2 target)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
