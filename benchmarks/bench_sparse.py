"""Peak memory of training on sparse input: a 60,000 x 784 CSR matrix with ~19% non-zeros.

Not a test: run it by hand once the kernels are built::

    python benchmarks/bench_sparse.py rbm       # RBM(500), one epoch
    python benchmarks/bench_sparse.py cnn       # CNNClassifier(dense:100), one epoch
    python benchmarks/bench_sparse.py dense     # the dense float32 array alone, for comparison

Each run builds the sparse matrix (MNIST's density, random positions, float32
values) in a fresh process and reports the process's peak resident memory
(``VmHWM``, reset after the matrix is built) against the resident memory before training, next to the size of the dense
float32 array (60,000 x 784 x 4 bytes = 188 MB) and of the CSR matrix.
The estimators densify one chunk of whole batches (RBM) or one mini-batch
(CNN) at a time, so the training adds far less than the dense array.
"""

from __future__ import annotations

import sys

import numpy as np
import scipy.sparse as sp


def reset_peak() -> None:
    """Reset VmHWM to the current resident set (Linux: writing 5 to clear_refs)."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def make(n: int = 60_000, d: int = 784, density: float = 0.19) -> sp.csr_matrix:
    rng = np.random.default_rng(0)
    X = sp.random(
        n, d, density=density, format="csr", dtype=np.float32, random_state=rng
    )
    X.data[:] = rng.random(X.data.shape[0], dtype=np.float32)
    return X


def main(what: str) -> None:
    X = make()
    dense_mb = X.shape[0] * X.shape[1] * 4 / 2**20
    csr_mb = (X.data.nbytes + X.indices.nbytes + X.indptr.nbytes) / 2**20
    import gc

    gc.collect()
    if (
        what != "dense"
    ):  # import the estimators first: their code is not training memory
        import neuroplug.estimators  # noqa: F401
    reset_peak()
    before = rss_mb()
    if what == "dense":
        A = X.toarray()
        del A
    elif what == "rbm":
        from neuroplug.estimators import RBM

        RBM(500, max_iter=1, random_state=0).fit(X)
    elif what == "cnn":
        from neuroplug.estimators import CNNClassifier

        y = np.random.default_rng(1).integers(0, 10, X.shape[0])
        CNNClassifier(
            ("dense:100", "relu"), max_iter=1, batch_size=128, random_state=0
        ).fit(X, y)
    else:
        raise SystemExit(f"unknown run {what!r}: rbm, cnn or dense")
    after = peak_mb()
    print(
        f"{what}: dense array {dense_mb:.0f} MB, CSR {csr_mb:.0f} MB; RSS before {before:.0f} MB, "
        f"peak during {after:.0f} MB: {after - before:.0f} MB added ({(after - before) / dense_mb:.0%} of the "
        "dense array)"
    )


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "rbm")
