"""The LeNet benchmark: neuroplug with ``backend="torch[:device]"`` beside plain PyTorch.

Used by ``benchmarks/bench_torch_backend.py`` (CPU) and
``plugins/neuroplug-torch/gpu_check.py`` (CUDA), so both measure the same
thing:

* the network ``conv 20@5x5 -> maxpool 2 -> relu -> conv 50@5x5 -> maxpool 2
  -> relu -> dense 500 -> relu -> dense 10``, Adam (learning rate 1e-3, no
  weight decay), mini-batches of 128, softmax cross-entropy;
* MNIST: the first 8,000 images of the t10k file for training, the last
  2,000 for testing, pixels / 255 (random data of the same shape when the
  files are absent);
* both sides use the same data path per mini-batch: a host array is indexed
  with the epoch's permutation, moved to the device, and the batch loss is
  read back as a Python float (the estimator records it);
* an epoch's time is the wall time between the starts of two consecutive
  epochs (so it includes every per-epoch cost of the training loop but not
  building the model); the first epoch is a warm-up (cuDNN autotuning,
  allocator growth) and is not counted; the median of the others is reported.
"""

from __future__ import annotations

import gzip
import os
import statistics
import time
import warnings
from typing import Any

import numpy as np

__all__ = ["LENET_LAYERS", "load_mnist_split", "time_neuroplug", "time_plain_torch"]

#: The LeNet stack as neuroplug layer specs (the estimator adds the 10-way dense output).
LENET_LAYERS = (
    "conv:20x5x5",
    "maxpool:2",
    "relu",
    "conv:50x5x5",
    "maxpool:2",
    "relu",
    "dense:500",
    "relu",
)

DEFAULT_MNIST = "/work/shared/data/mnist-t10k"


def _read_idx(path: str) -> np.ndarray:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as fh:
        data = fh.read()
    magic = int.from_bytes(data[:4], "big")
    if magic >> 8 != 0x08:  # unsigned bytes
        raise ValueError(
            f"{path} is not an IDX file of unsigned bytes (magic {magic:#x})"
        )
    ndim = magic & 0xFF
    shape = tuple(
        int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)
    )
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _find(directory: str, stem: str) -> str | None:
    for name in (stem + ".gz", stem):
        path = os.path.join(directory, name)
        if os.path.exists(path):
            return path
    return None


def load_mnist_split(
    path: str | None = None, n_train: int = 8000, n_test: int = 2000, seed: int = 0
):
    """``(X_train, y_train, X_test, y_test, source)``; X is float32 ``(n, 784)`` in [0, 1].

    Reads ``t10k-images-idx3-ubyte[.gz]`` and ``t10k-labels-idx1-ubyte[.gz]``
    from ``path`` (default ``/work/shared/data/mnist-t10k``); when they are
    absent, returns random data of the same shape and says so in ``source``.
    """
    directory = path or DEFAULT_MNIST
    images = (
        _find(directory, "t10k-images-idx3-ubyte") if os.path.isdir(directory) else None
    )
    labels = (
        _find(directory, "t10k-labels-idx1-ubyte") if os.path.isdir(directory) else None
    )
    if images and labels:
        X = _read_idx(images).reshape(-1, 784).astype(np.float32) / 255.0
        y = _read_idx(labels).astype(np.int64)
        source = f"MNIST t10k from {directory}"
    else:
        rng = np.random.default_rng(seed)
        X = rng.random((n_train + n_test, 784), dtype=np.float32)
        y = rng.integers(0, 10, n_train + n_test)
        source = f"random data of MNIST's shape (no IDX files in {directory})"
    if X.shape[0] < n_train + n_test:
        raise ValueError(
            f"need {n_train + n_test} images, found {X.shape[0]} in {directory}"
        )
    return X[:n_train], y[:n_train], X[-n_test:], y[-n_test:], source


def _epoch_times(starts: list[float], end: float, n_batches: int) -> list[float]:
    marks = starts[::n_batches] + [end]
    return [b - a for a, b in zip(marks[1:-1], marks[2:])]  # drop the warm-up epoch


def time_neuroplug(
    X,
    y,
    X_test,
    y_test,
    *,
    backend: str,
    epochs: int = 3,
    batch_size: int = 128,
    seed: int = 0,
) -> dict[str, Any]:
    """Train neuroplug's CNNClassifier (LeNet) for ``1 + epochs`` epochs; time the last ``epochs``.

    Returns ``{"epoch_s", "epoch_times", "accuracy", "estimator"}``.
    """
    from neuroplug.estimators import CNNClassifier

    clf = CNNClassifier(
        LENET_LAYERS,
        input_shape=(1, 28, 28),
        optimizer="adam",
        learning_rate=1e-3,
        batch_size=batch_size,
        weight_decay=0.0,
        max_iter=epochs + 1,
        tol=0.0,
        n_iter_no_change=10_000,
        backend=backend,
        random_state=seed,
    )
    starts: list[float] = []
    train_batch = clf._train_batch

    def timed_train_batch(network, xb, yb, lr, **kw):
        # The estimator's per-batch hook: record when each batch starts.
        starts.append(time.perf_counter())
        return train_batch(network, xb, yb, lr, **kw)

    clf._train_batch = timed_train_batch  # an instance attribute, removed after fit so the model pickles
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # max_iter reached, by design
            clf.fit(X, y)
        end = (
            time.perf_counter()
        )  # fit returned: the last epoch and the weight download are done
    finally:
        del clf._train_batch
    n_batches = -(-X.shape[0] // batch_size)
    times = _epoch_times(starts, end, n_batches)
    return {
        "epoch_s": statistics.median(times),
        "epoch_times": times,
        "accuracy": float(clf.score(X_test, y_test)),
        "estimator": clf,
    }


def time_plain_torch(
    X,
    y,
    X_test,
    y_test,
    *,
    device: str,
    epochs: int = 3,
    batch_size: int = 128,
    seed: int = 0,
    resident: bool = False,
) -> dict[str, Any]:
    """The same LeNet in plain PyTorch (``nn.Sequential``, ``torch.optim.Adam``), ``1 + epochs`` epochs.

    ``resident=True`` keeps the whole training set on the device (no per-batch
    transfer), the fastest idiom, reported for information.
    Returns ``{"epoch_s", "epoch_times", "accuracy"}``.
    """
    import torch
    from torch import nn

    dev = torch.device(device)
    torch.manual_seed(seed)
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
    ).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()
    Xt = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32)).reshape(
        -1, 1, 28, 28
    )
    yt = torch.from_numpy(np.asarray(y, dtype=np.int64))
    if resident:
        Xt, yt = Xt.to(dev), yt.to(dev)
    rng = np.random.default_rng(seed)
    n = Xt.shape[0]
    starts: list[float] = []
    model.train()
    for _ in range(epochs + 1):
        order = torch.from_numpy(rng.permutation(n))
        if resident:
            order = order.to(dev)
        total = 0.0
        for start in range(0, n, batch_size):
            starts.append(time.perf_counter())
            idx = order[start : start + batch_size]
            xb, yb = Xt[idx].to(dev), yt[idx].to(dev)
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    end = time.perf_counter()
    times = _epoch_times(starts, end, -(-n // batch_size))
    model.eval()
    with torch.no_grad():
        Xe = (
            torch.from_numpy(np.ascontiguousarray(X_test, dtype=np.float32))
            .reshape(-1, 1, 28, 28)
            .to(dev)
        )
        pred = model(Xe).argmax(dim=1).cpu().numpy()
    return {
        "epoch_s": statistics.median(times),
        "epoch_times": times,
        "accuracy": float((pred == y_test).mean()),
    }
