"""Memory benchmarks: out-of-core partial_fit from a memory-mapped IDX file, and a leak check.

Not a test: run it by hand once the kernels are built::

    python benchmarks/bench_memory.py                 # both parts
    python benchmarks/bench_memory.py memmap          # 1x and 10x data files
    python benchmarks/bench_memory.py leak            # LeNet, 20 epochs on MNIST

**memmap.**  An uncompressed IDX file of ``--rows`` 28x28 uint8 images (MNIST
test images, repeated) and one ten times larger are streamed through
``partial_fit`` in mini-batches, each size in a fresh process, for an RBM
and a small CNN.  Two ways of reading:

* ``whole map``: ``X = load_idx(path, mmap=True)`` and slices of ``X``.  The
  data is never copied into the process's own memory (``RssAnon`` stays
  flat), but the file pages it has touched stay mapped and count in its
  resident set (``RssFile``) until the kernel reclaims them;
* ``windows``: the file is mapped ``--window`` rows at a time (the map is
  dropped after its rows are used), so the whole resident set stays flat.

Reported per run: peak resident memory (``VmHWM``), the largest private
memory seen after any mini-batch (``RssAnon``) and the file pages mapped at
the end (``RssFile``).  The check: peak RSS with the 10x file, read by
windows, within 10 % of the 1x file's.

**leak.**  LeNet (conv 20@5x5, maxpool 2, ReLU, conv 50@5x5, maxpool 2, ReLU,
dense 500, ReLU, dense 10) trained with ``partial_fit`` one epoch at a time
for 20 epochs on the first 8000 MNIST test images (pixels / 255); the
resident memory after epoch 20 must be within 5 % of that after epoch 2.

Linux only (reads ``/proc/self/status``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import struct
import subprocess
import sys
import tempfile
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


# ------------------------------------------------------------------------------- measurement
def memory_mib() -> dict[str, float]:
    """``VmRSS``, ``VmHWM`` (peak RSS), ``RssAnon`` and ``RssFile`` of this process, in MiB."""
    out = {}
    with open("/proc/self/status") as fh:
        for line in fh:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[key] = int(value.split()[0]) / 1024.0  # kB
    return out


# -------------------------------------------------------------------------------------- data
def write_idx_images(path: Path, n_rows: int, data_dir: Path) -> tuple[Path, Path]:
    """An uncompressed IDX image file of ``n_rows`` 28x28 images and its labels, from MNIST (repeated)."""
    import numpy as np

    sys.path.insert(0, str(ROOT))
    from neuroplug.datasets import load_idx

    images = load_idx(next(data_dir.glob("t10k-images-idx3-ubyte*")))
    labels = load_idx(next(data_dir.glob("t10k-labels-idx1-ubyte*")))
    img_path, lab_path = path.with_suffix(".images"), path.with_suffix(".labels")
    with open(img_path, "wb") as fh:
        fh.write(struct.pack(">BBBBIII", 0, 0, 0x08, 3, n_rows, 28, 28))
        for start in range(
            0, n_rows, len(images)
        ):  # written in pieces: the writer never holds the file either
            fh.write(images[: min(len(images), n_rows - start)].tobytes())
    with open(lab_path, "wb") as fh:
        fh.write(struct.pack(">BBBBI", 0, 0, 0x08, 1, n_rows))
        reps = -(-n_rows // len(labels))
        fh.write(np.tile(labels, reps)[:n_rows].astype(np.uint8).tobytes())
    return img_path, lab_path


def iter_batches(img_path: Path, lab_path: Path, batch_size: int, window: int | None):
    """Yield ``(X float32 in [0, 1], y)`` mini-batches from memory-mapped IDX files.

    ``window=None`` maps each file once; otherwise ``window`` rows are mapped
    at a time and the map is released before the next window.
    """
    import numpy as np

    from neuroplug.datasets import load_idx

    images, labels = load_idx(img_path, mmap=True), load_idx(lab_path, mmap=True)
    n = images.shape[0]
    if window is None:
        for start in range(0, n, batch_size):
            xb = np.asarray(
                images[start : start + batch_size], dtype=np.float32
            ).reshape(-1, 784) / np.float32(255)
            yield xb, np.asarray(labels[start : start + batch_size], dtype=np.int64)
        return
    img_offset, lab_offset = images.offset, labels.offset
    del images, labels
    for w0 in range(0, n, window):
        rows = min(window, n - w0)
        win_x = np.memmap(
            img_path,
            dtype=np.uint8,
            mode="r",
            offset=img_offset + w0 * 784,
            shape=(rows, 784),
        )
        win_y = np.memmap(
            lab_path, dtype=np.uint8, mode="r", offset=lab_offset + w0, shape=(rows,)
        )
        for start in range(0, rows, batch_size):
            xb = np.asarray(
                win_x[start : start + batch_size], dtype=np.float32
            ) / np.float32(255)
            yield xb, np.asarray(win_y[start : start + batch_size], dtype=np.int64)
        del (
            win_x,
            win_y,
        )  # unmaps the window: its pages leave this process's resident set


# ----------------------------------------------------------------------------------- workers
def worker_memmap(args: argparse.Namespace) -> dict:
    """Stream one data file through partial_fit; report memory."""
    import numpy as np

    from neuroplug.estimators import RBM, CNNClassifier

    if args.estimator == "rbm":
        est = RBM(64, batch_size=100, random_state=0)
        fit = lambda xb, yb: est.partial_fit(xb)  # noqa: E731
    else:
        est = CNNClassifier(
            ("conv:8x5x5", "maxpool:4", "relu", "dense:32", "relu"),
            input_shape=(1, 28, 28),
            batch_size=100,
            random_state=0,
        )
        fit = lambda xb, yb: est.partial_fit(xb, yb, classes=np.arange(10))  # noqa: E731
    window = None if args.read == "whole" else args.window
    start_mem = memory_mib()
    max_anon = start_mem["RssAnon"]
    t0 = time.perf_counter()
    rows = 0
    for xb, yb in iter_batches(
        Path(args.images), Path(args.labels), args.batch, window
    ):
        fit(xb, yb)
        rows += len(xb)
        max_anon = max(max_anon, memory_mib()["RssAnon"])
    elapsed = time.perf_counter() - t0
    end = memory_mib()
    return {
        "rows": rows,
        "file_mib": os.path.getsize(args.images) / 2**20,
        "seconds": elapsed,
        "start_rss": start_mem["VmRSS"],
        "peak_rss": end["VmHWM"],
        "max_anon": max_anon,
        "end_file": end["RssFile"],
        "n_iter": int(est.n_iter_),
    }


def worker_leak(args: argparse.Namespace) -> dict:
    """LeNet, one partial_fit epoch at a time; RSS after each epoch."""
    import numpy as np

    from neuroplug.datasets import load_mnist
    from neuroplug.estimators import CNNClassifier

    X, y = load_mnist(args.data, kind="t10k")
    Xtr, ytr, Xte, yte = X[: args.n_train], y[: args.n_train], X[-2000:], y[-2000:]
    clf = CNNClassifier(
        LENET,
        input_shape=(1, 28, 28),
        batch_size=128,
        learning_rate=1e-3,
        weight_decay=0.0,
        random_state=0,
    )
    rss, anon, times = [], [], []
    for _ in range(args.epochs):
        t0 = time.perf_counter()
        clf.partial_fit(Xtr, ytr, classes=np.arange(10))
        times.append(time.perf_counter() - t0)
        gc.collect()
        mem = memory_mib()
        rss.append(mem["VmRSS"])
        anon.append(mem["RssAnon"])
    return {
        "rss": rss,
        "anon": anon,
        "epoch_seconds": times,
        "peak_rss": memory_mib()["VmHWM"],
        "accuracy": float(clf.score(Xte, yte)),
        "n_train": len(Xtr),
    }


def _run_worker(argv: list[str]) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), env.get("PYTHONPATH")) if p
    )
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", *argv],
        capture_output=True,
        text=True,
        env=env,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"worker {argv} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -------------------------------------------------------------------------------------- parts
def run_memmap(args: argparse.Namespace) -> bool:
    print(
        f"== partial_fit from a memory-mapped IDX file ({args.rows} and {10 * args.rows} images of 28x28) =="
    )
    ok = True
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        files = {}
        for scale in (1, 10):
            files[scale] = write_idx_images(
                Path(tmp) / f"data{scale}x", scale * args.rows, Path(args.data)
            )
        print(
            f"{'estimator':<10} {'read':<8} {'file':>8} {'rows':>8} {'peak RSS':>9} {'max RssAnon':>12} "
            f"{'RssFile end':>12} {'time':>7}"
        )
        for estimator in args.estimators:
            peaks = {}
            for read in ("whole", "windows"):
                for scale in (1, 10):
                    img, lab = files[scale]
                    r = _run_worker(
                        [
                            "memmap",
                            "--images",
                            str(img),
                            "--labels",
                            str(lab),
                            "--estimator",
                            estimator,
                            "--read",
                            read,
                            "--window",
                            str(args.window),
                            "--batch",
                            str(args.batch),
                        ]
                    )
                    peaks[(read, scale)] = r
                    print(
                        f"{estimator:<10} {read:<8} {r['file_mib']:>6.1f}Mi {r['rows']:>8} {r['peak_rss']:>7.1f}Mi "
                        f"{r['max_anon']:>10.1f}Mi {r['end_file']:>10.1f}Mi {r['seconds']:>6.1f}s",
                        flush=True,
                    )
            one, ten = peaks[("windows", 1)], peaks[("windows", 10)]
            flat = ten["peak_rss"] <= 1.10 * one["peak_rss"]
            anon_flat = all(
                peaks[(r, 10)]["max_anon"] <= 1.10 * peaks[(r, 1)]["max_anon"]
                for r in ("whole", "windows")
            )
            ok &= flat and anon_flat
            print(
                f"{estimator}: peak RSS 10x / 1x by windows = {ten['peak_rss'] / one['peak_rss']:.3f} "
                f"({'flat' if flat else 'NOT FLAT'}); private memory 10x / 1x = "
                f"{peaks[('whole', 10)]['max_anon'] / peaks[('whole', 1)]['max_anon']:.3f} (whole map), "
                f"{ten['max_anon'] / one['max_anon']:.3f} (windows) ({'flat' if anon_flat else 'NOT FLAT'})"
            )
    return ok


def run_leak(args: argparse.Namespace) -> bool:
    print(
        f"== LeNet, {args.epochs} epochs of partial_fit on {args.n_train} MNIST images: resident memory per epoch =="
    )
    r = _run_worker(
        [
            "leak",
            "--epochs",
            str(args.epochs),
            "--n-train",
            str(args.n_train),
            "--data",
            str(args.data),
        ]
    )
    for i, (rss, anon, sec) in enumerate(
        zip(r["rss"], r["anon"], r["epoch_seconds"]), 1
    ):
        print(
            f"epoch {i:>2}: RSS {rss:7.1f} MiB  RssAnon {anon:7.1f} MiB  ({sec:.1f} s)"
        )
    base, last = r["rss"][1], r["rss"][-1]
    ok = last <= 1.05 * base
    print(
        f"RSS after epoch {args.epochs} / after epoch 2 = {last / base:.4f} ({'no leak' if ok else 'LEAK?'}: "
        f"limit 1.05); peak RSS {r['peak_rss']:.1f} MiB; test accuracy {r['accuracy']:.4f}"
    )
    return ok


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark parts; return 0 when every check holds."""
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--worker":
        return _worker_main(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "part", nargs="?", choices=("all", "memmap", "leak"), default="all"
    )
    parser.add_argument(
        "--data",
        default=str(DEFAULT_DATA),
        help="directory with the MNIST t10k IDX files",
    )
    parser.add_argument(
        "--rows", type=int, default=12000, help="images in the 1x file (default: 12000)"
    )
    parser.add_argument(
        "--window",
        type=int,
        default=4096,
        help="rows mapped at a time when reading by windows",
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=500,
        help="rows per partial_fit call (default: 500)",
    )
    parser.add_argument(
        "--estimators", nargs="+", choices=("rbm", "cnn"), default=["rbm", "cnn"]
    )
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--n-train", type=int, default=8000)
    parser.add_argument(
        "--tmp",
        default=None,
        help="directory for the data files (default: the system's)",
    )
    args = parser.parse_args(argv)
    ok = True
    if args.part in ("all", "memmap"):
        ok &= run_memmap(args)
    if args.part in ("all", "leak"):
        ok &= run_leak(args)
    return 0 if ok else 1


def _worker_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=("memmap", "leak"))
    parser.add_argument("--images")
    parser.add_argument("--labels")
    parser.add_argument("--estimator", default="rbm")
    parser.add_argument("--read", default="windows")
    parser.add_argument("--window", type=int, default=4096)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--n-train", type=int, default=8000)
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    args = parser.parse_args(argv)
    result = worker_memmap(args) if args.kind == "memmap" else worker_leak(args)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
