"""Sigmoid belief net on binarized MNIST, beside the 200-unit RBM.

Data: the MNIST test-set files (first 8,000 images train, last 2,000 test,
pixels /255 then binarized at 0.5).  Models:

* ``SigmoidBeliefNet((200,))`` trained by wake-sleep (or reweighted
  wake-sleep with ``--k-train K``) for ``--epochs`` epochs.  At each
  checkpoint epoch the test log-likelihood is estimated by importance
  sampling with the recognition network as proposal (``--eval-samples``
  samples per image), and once more at the end with ``--final-eval-samples``.
  The estimate is a stochastic lower bound in expectation; the figure after
  "+-" is the mean per-image delta-method standard deviation, an upper bound
  on the standard error of the mean.
* ``RBM(200)`` (persistent CD, the RBM estimator's defaults) for the same
  number of epochs; its test log-likelihood uses AIS for ``log Z``.

Timings are of training epochs only (evaluation excluded), on the backend
given (default ``cpu``, the Cython kernels); ``--compare-numpy`` also times
one epoch of the NumPy reference for the ratio.

Published figures for context (full 60,000-image binarized MNIST, other
training methods): about -113 nats for a 200-unit SBN trained with NVIL
(Mnih & Gregor 2014) and about -100 for 200-200.

Usage::

    python benchmarks/bench_sbn.py                      # 20 epochs, checkpoints 1 2 5 10 20
    python benchmarks/bench_sbn.py --epochs 5 --no-rbm  # quick look
    python benchmarks/bench_sbn.py --k-train 5          # reweighted wake-sleep
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))

from neuroplug.datasets import load_mnist  # noqa: E402
from neuroplug.estimators.sbn import SigmoidBeliefNet  # noqa: E402

DEFAULT_DATA = "/work/shared/data/mnist-t10k"
PUBLISHED = "published (60k training images): SBN 200 with NVIL ~ -113 nats, SBN 200-200 ~ -100 nats"


def load(path: str) -> tuple[np.ndarray, np.ndarray]:
    X, _ = load_mnist(path, kind="t10k")
    X = (X > 0.5).astype(np.float32)
    return X[:8000], X[-2000:]


def evaluate(
    sbn: SigmoidBeliefNet, X: np.ndarray, K: int
) -> tuple[float, float, float]:
    """Mean estimate, mean delta-method std per image, seconds."""
    sbn.set_params(n_eval_samples=K)
    t = time.perf_counter()
    log_px, std = sbn.score_samples(X, return_std=True)
    return float(log_px.mean()), float(std.mean()), time.perf_counter() - t


def bench_sbn(args, Xtr, Xte) -> dict:
    sbn = SigmoidBeliefNet(
        tuple(args.hidden),
        learning_rate=args.lr,
        batch_size=args.batch_size,
        n_importance_samples=args.k_train,
        backend=args.backend,
        n_threads=args.n_threads,
        random_state=args.seed,
    )
    checkpoints = sorted(
        {c for c in args.checkpoints if c <= args.epochs} | {args.epochs}
    )
    train_time = 0.0
    rows = []
    name = f"SBN {'-'.join(map(str, args.hidden))} ({'wake-sleep' if args.k_train == 1 else f'RWS K={args.k_train}'})"
    print(
        f"\n{name}, lr={args.lr}, batch={args.batch_size}, backend={args.backend}, n_threads={args.n_threads}"
    )
    print(
        f"{'epoch':>5} {'s/epoch':>8} {'train bound':>12} {'test log p(x)':>14} {'+-std':>7} {'K':>5} {'eval s':>7}"
    )
    for epoch in range(1, args.epochs + 1):
        t = time.perf_counter()
        sbn.partial_fit(Xtr)
        train_time += time.perf_counter() - t
        if epoch in checkpoints:
            ll, sd, et = evaluate(sbn, Xte, args.eval_samples)
            rows.append(
                {
                    "epoch": epoch,
                    "test_ll": ll,
                    "std": sd,
                    "K": args.eval_samples,
                    "train_bound": sbn.bound_curve_[-1],
                }
            )
            print(
                f"{epoch:5d} {train_time / epoch:8.3f} {sbn.bound_curve_[-1]:12.2f} {ll:14.2f} {sd:7.2f} "
                f"{args.eval_samples:5d} {et:7.1f}",
                flush=True,
            )
    final = None
    if args.final_eval_samples and args.final_eval_samples != args.eval_samples:
        ll, sd, et = evaluate(sbn, Xte, args.final_eval_samples)
        final = {"test_ll": ll, "std": sd, "K": args.final_eval_samples}
        print(
            f"{args.epochs:5d} {'':8} {'':12} {ll:14.2f} {sd:7.2f} {args.final_eval_samples:5d} {et:7.1f}"
        )
    eps = args.epochs / train_time
    print(
        f"{name}: {eps:.3f} epochs/s ({train_time / args.epochs:.2f} s/epoch over {args.epochs} epochs)"
    )
    result = {"model": name, "epochs_per_s": eps, "checkpoints": rows, "final": final}
    if args.compare_numpy and args.backend != "numpy":
        ref = SigmoidBeliefNet(
            tuple(args.hidden),
            learning_rate=args.lr,
            batch_size=args.batch_size,
            n_importance_samples=args.k_train,
            backend="numpy",
            random_state=args.seed,
        )
        from threadpoolctl import threadpool_limits

        # The reference runs on NumPy's BLAS: give it the same number of threads.
        with threadpool_limits(limits=args.n_threads):
            t = time.perf_counter()
            ref.partial_fit(Xtr)
            ref_s = time.perf_counter() - t
        print(
            f"NumPy reference: {ref_s:.2f} s/epoch; {args.backend} is {ref_s * eps:.1f}x faster"
        )
        result["numpy_s_per_epoch"] = ref_s
    return result


def bench_rbm(args, Xtr, Xte) -> dict | None:
    try:
        from neuroplug.estimators.rbm import RBM
    except ImportError as exc:  # the RBM estimator is optional for this script
        print(f"\nRBM not available ({exc}); skipped")
        return None
    rbm = RBM(
        n_components=200,
        backend=args.backend,
        n_threads=args.n_threads,
        random_state=args.seed,
    )
    print(
        f"\nRBM 200 (PCD, estimator defaults), backend={args.backend}, n_threads={args.n_threads}"
    )
    train_time = 0.0
    for _ in range(args.epochs):
        t = time.perf_counter()
        rbm.partial_fit(Xtr)
        train_time += time.perf_counter() - t
    eps = args.epochs / train_time
    t = time.perf_counter()
    ll = rbm.score(Xte)
    et = time.perf_counter() - t
    print(
        f"RBM 200: {eps:.3f} epochs/s ({train_time / args.epochs:.2f} s/epoch); test log p(x) after "
        f"{args.epochs} epochs (AIS): {ll:.2f} nats ({et:.1f} s)"
    )
    return {"model": "RBM 200", "epochs_per_s": eps, "test_ll": ll}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--data", default=DEFAULT_DATA, help="directory with the MNIST t10k IDX files"
    )
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument(
        "--checkpoints", type=int, nargs="*", default=[1, 2, 5, 10, 20, 50, 100]
    )
    p.add_argument("--hidden", type=int, nargs="+", default=[200])
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--batch-size", type=int, default=20)
    p.add_argument(
        "--k-train",
        type=int,
        default=1,
        help="importance samples in training (1: wake-sleep)",
    )
    p.add_argument("--eval-samples", type=int, default=100)
    p.add_argument("--final-eval-samples", type=int, default=1000)
    p.add_argument("--backend", default="cpu")
    p.add_argument(
        "--n-threads",
        type=int,
        default=None,
        help="kernel threads (default: OpenMP's limit)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-rbm", action="store_true")
    p.add_argument("--compare-numpy", action="store_true")
    p.add_argument("--json", help="also write the results to this file")
    args = p.parse_args(argv)

    Xtr, Xte = load(args.data)
    print(
        f"binarized MNIST: {Xtr.shape[0]} train / {Xte.shape[0]} test, {Xtr.shape[1]} pixels"
    )
    print(PUBLISHED)
    results = {"sbn": bench_sbn(args, Xtr, Xte)}
    if not args.no_rbm:
        results["rbm"] = bench_rbm(args, Xtr, Xte)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
