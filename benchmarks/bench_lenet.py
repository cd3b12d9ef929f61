"""LeNet on MNIST: neuroplug's CNNClassifier beside the same network in plain PyTorch (CPU).

Not a test: run it by hand once the kernels are built::

    python benchmarks/bench_lenet.py                      # MNIST LeNet + digits check
    python benchmarks/bench_lenet.py --augment            # also LeNet with augmentation
    python benchmarks/bench_lenet.py --quick              # smoke run (1 epoch, 2000 images)

Protocol (issue 4): the MNIST test-set files, first 8000 images to train,
last 2000 to test, pixels in [0, 1].  LeNet: conv 20@5x5 -> maxpool 2 ->
ReLU -> conv 50@5x5 -> maxpool 2 -> ReLU -> dense 500 -> ReLU -> dense 10;
Adam 1e-3, batch 128, 10 epochs, 2 threads, no weight decay (as in the torch
script).  Each framework runs in its own subprocess so that its peak
resident memory (ru_maxrss) is its own; the frameworks take turns for
``--rounds`` rounds.  Epoch times are medians over the epochs of all rounds.  Targets: neuroplug's median epoch time <= 0.5x PyTorch's, test
accuracy >= 0.985; on scikit-learn's digits (train_test_split(test_size=0.25,
random_state=0, stratify=y)) the default CNNClassifier reaches >= 0.985.

Timings drift 10-50 % between runs on shared machines: compare the two
frameworks of the same run only.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "mnist-t10k"
LENET = (
    "conv:20x5x5",
    "maxpool:2",
    "relu",
    "conv:50x5x5",
    "maxpool:2",
    "relu",
    "dense:500",
    "relu",
)


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _mnist(args):
    sys.path.insert(0, str(ROOT))
    from neuroplug.datasets import load_mnist

    X, y = load_mnist(args.data, kind="t10k")
    n_train = 2000 if args.quick else 8000
    return X[:n_train], y[:n_train], X[-2000:], y[-2000:]


def worker_neuroplug(args) -> dict:
    """Train LeNet with CNNClassifier.partial_fit, one call per epoch (timed)."""
    import numpy as np

    from neuroplug.estimators import CNNClassifier

    Xtr, ytr, Xte, yte = _mnist(args)
    clf = CNNClassifier(
        LENET,
        input_shape=(1, 28, 28),
        optimizer="adam",
        learning_rate=1e-3,
        batch_size=128,
        weight_decay=0.0,
        backend=args.backend,
        n_threads=args.threads,
        random_state=args.seed,
        augment=True if args.worker == "neuroplug-augment" else None,
    )
    times = []
    for epoch in range(args.epochs):
        t0 = time.perf_counter()
        clf.partial_fit(Xtr, ytr, classes=np.arange(10) if epoch == 0 else None)
        times.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    acc = float(clf.score(Xte, yte))
    return {
        "epoch_times": times,
        "accuracy": acc,
        "predict_s": time.perf_counter() - t0,
        "loss_curve": [round(x, 4) for x in clf.loss_curve_],
        "peak_rss_mib": _peak_rss_mib(),
    }


def worker_torch(args) -> dict:
    """The same LeNet in plain PyTorch on the CPU."""
    import numpy as np
    import torch
    from torch import nn

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    Xtr, ytr, Xte, yte = _mnist(args)
    Xtr = torch.from_numpy(np.ascontiguousarray(Xtr.reshape(-1, 1, 28, 28)))
    Xte = torch.from_numpy(np.ascontiguousarray(Xte.reshape(-1, 1, 28, 28)))
    ytr, yte = torch.from_numpy(ytr), torch.from_numpy(yte)
    model = nn.Sequential(
        nn.Conv2d(1, 20, 5),
        nn.MaxPool2d(2),
        nn.ReLU(),
        nn.Conv2d(20, 50, 5),
        nn.MaxPool2d(2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(800, 500),
        nn.ReLU(),
        nn.Linear(500, 10),
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    times = []
    for _ in range(args.epochs):
        t0 = time.perf_counter()
        model.train()
        perm = torch.randperm(len(Xtr))
        for start in range(0, len(Xtr), 128):
            idx = perm[start : start + 128]
            opt.zero_grad()
            loss = loss_fn(model(Xtr[idx]), ytr[idx])
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - t0)
    model.eval()
    t0 = time.perf_counter()
    with torch.no_grad():
        acc = float((model(Xte).argmax(1) == yte).float().mean())
    return {
        "epoch_times": times,
        "accuracy": acc,
        "predict_s": time.perf_counter() - t0,
        "peak_rss_mib": _peak_rss_mib(),
    }


def worker_digits(args) -> dict:
    """The default CNNClassifier on scikit-learn's digits."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    from neuroplug.estimators import CNNClassifier

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).astype("float32")
    Xtr, Xte, ytr, yte = train_test_split(
        X, y, test_size=0.25, random_state=0, stratify=y
    )
    t0 = time.perf_counter()
    clf = CNNClassifier(
        input_shape=(1, 8, 8),
        backend=args.backend,
        n_threads=args.threads,
        random_state=args.seed,
    ).fit(Xtr, ytr)
    fit_s = time.perf_counter() - t0
    return {
        "accuracy": float(clf.score(Xte, yte)),
        "fit_s": fit_s,
        "epochs": clf.n_iter_,
        "peak_rss_mib": _peak_rss_mib(),
    }


WORKERS = {
    "neuroplug": worker_neuroplug,
    "neuroplug-augment": worker_neuroplug,
    "torch": worker_torch,
    "digits": worker_digits,
}


def _run(name: str, args) -> dict | None:
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        name,
        "--data",
        str(args.data),
        "--epochs",
        str(args.epochs),
        "--threads",
        str(args.threads),
        "--backend",
        args.backend,
        "--seed",
        str(args.seed),
    ]
    if args.quick:
        cmd.append("--quick")
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    )
    # BLAS and OpenMP pools get the same thread budget as the kernels.
    env.update(
        OMP_NUM_THREADS=str(args.threads),
        OPENBLAS_NUM_THREADS=str(args.threads),
        MKL_NUM_THREADS=str(args.threads),
    )
    print(f"running {name} ...", file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        print(f"{name} failed:\n{proc.stderr[-3000:]}", file=sys.stderr)
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        help="directory with t10k-*-idx*-ubyte[.gz]",
    )
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="rounds of neuroplug and torch runs, taking turns",
    )
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--backend", default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--augment",
        action="store_true",
        help="also train LeNet with on-the-fly augmentation",
    )
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--no-digits", action="store_true")
    p.add_argument(
        "--quick", action="store_true", help="smoke run: 2000 training images"
    )
    p.add_argument("--json", type=Path, help="also write the results here")
    p.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        print(json.dumps(WORKERS[args.worker](args)))
        return 0

    names = ["neuroplug"] + (["neuroplug-augment"] if args.augment else [])
    if not args.no_torch:
        try:
            import torch  # noqa: F401
        except ImportError:
            print("PyTorch is not installed: no reference run", file=sys.stderr)
        else:
            names.append("torch")
    # The frameworks take turns, round after round, so that a machine whose
    # speed drifts over minutes (this 2-core VM: the same epoch took 1.5 s or
    # 2.2 s from one run to the next) slows both alike; epoch times are pooled
    # over the rounds, accuracy and memory come from the first round.
    results: dict = {}
    round_ratios = []
    for r in range(args.rounds):
        for name in names:
            res = _run(name, args)
            if r == 0 or res is None:
                results[name] = res
            elif results[name] is not None:
                results[name]["epoch_times"] += res["epoch_times"]
        if (
            "neuroplug" in names
            and "torch" in names
            and results.get("neuroplug")
            and results.get("torch")
        ):
            n_ep = args.epochs
            np_t = results["neuroplug"]["epoch_times"][r * n_ep : (r + 1) * n_ep]
            th_t = results["torch"]["epoch_times"][r * n_ep : (r + 1) * n_ep]
            round_ratios.append(statistics.median(np_t) / statistics.median(th_t))
    if not args.no_digits:
        results["digits"] = _run("digits", args)

    n_train = 2000 if args.quick else 8000
    print(
        f"\nLeNet, MNIST t10k: {n_train} train / 2000 test, batch 128, Adam 1e-3, {args.epochs} epochs, "
        f"{args.threads} threads, neuroplug backend {args.backend!r}"
    )
    print(
        f"{'run':<20}{'median epoch s':>16}{'total s':>10}{'test acc':>10}{'peak RSS MiB':>14}"
    )
    for name in names:
        r = results[name]
        if r is None:
            print(f"{name:<20}{'failed':>16}")
            continue
        med = statistics.median(r["epoch_times"])
        print(
            f"{name:<20}{med:>16.3f}{sum(r['epoch_times']):>10.2f}{r['accuracy']:>10.4f}{r['peak_rss_mib']:>14.0f}"
        )
    ok = True
    np_r, th_r = results.get("neuroplug"), results.get("torch")
    if np_r is not None:
        acc_ok = np_r["accuracy"] >= 0.985
        ok &= acc_ok
        print(
            f"\nneuroplug LeNet test accuracy {np_r['accuracy']:.4f} (target >= 0.985): {'PASS' if acc_ok else 'FAIL'}"
        )
    if np_r is not None and th_r is not None:
        ratio = statistics.median(np_r["epoch_times"]) / statistics.median(
            th_r["epoch_times"]
        )
        ratio_ok = ratio <= 0.5
        ok &= ratio_ok
        print(
            f"median epoch time neuroplug / PyTorch = {ratio:.2f} over {args.rounds} round(s) "
            f"(per round: {', '.join(f'{x:.2f}' for x in round_ratios)}) (target <= 0.5): "
            f"{'PASS' if ratio_ok else 'FAIL'}"
        )
    aug = results.get("neuroplug-augment")
    if aug is not None and np_r is not None:
        print(
            f"augmentation (shift 2 px, rotate 10 deg, scale 10 %): test accuracy {aug['accuracy']:.4f} vs "
            f"{np_r['accuracy']:.4f} without; median epoch {statistics.median(aug['epoch_times']):.3f} s vs "
            f"{statistics.median(np_r['epoch_times']):.3f} s"
        )
    dg = results.get("digits")
    if dg is not None:
        dg_ok = dg["accuracy"] >= 0.985
        ok &= dg_ok
        print(
            f"digits, default CNNClassifier: test accuracy {dg['accuracy']:.4f} after {dg['epochs']} epochs "
            f"in {dg['fit_s']:.1f} s (target >= 0.985): {'PASS' if dg_ok else 'FAIL'}"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
