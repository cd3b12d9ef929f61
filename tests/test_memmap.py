"""Out-of-core training: partial_fit over mini-batches read from a memory-mapped IDX file.

``neuroplug.datasets.load_idx(path, mmap=True)`` maps an uncompressed IDX
file instead of reading it; each ``partial_fit`` call then touches only its
mini-batch.  Streaming from the map must give exactly the model that the
same batches from an in-memory array give, read-only maps must be fine (the
estimators never write to their input), and no fitted estimator may keep a
reference to the map.  benchmarks/bench_memory.py shows the peak memory.
"""

from __future__ import annotations

import mmap
import pickle
import struct

import numpy as np
import pytest
from sklearn.datasets import load_digits

from neuroplug.datasets import load_idx
from neuroplug.estimators import (
    RBM,
    CNNClassifier,
    CNNRegressor,
    DBNClassifier,
    SigmoidBeliefNet,
)

BATCH = 64


def _write_idx(path, array):
    codes = {np.dtype(np.uint8): 0x08, np.dtype(">f4"): 0x0D}
    array = np.ascontiguousarray(array)
    header = struct.pack(">BBBB", 0, 0, codes[array.dtype], array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    path.write_bytes(header + array.tobytes())
    return path


@pytest.fixture(scope="module")
def idx_files(tmp_path_factory):
    X, y = load_digits(return_X_y=True)
    root = tmp_path_factory.mktemp("idx")
    images = np.round(X[:320] * (255 / 16)).astype(np.uint8).reshape(-1, 8, 8)
    return {
        "images": _write_idx(root / "train-images-idx3-ubyte", images),
        "labels": _write_idx(
            root / "train-labels-idx1-ubyte", y[:320].astype(np.uint8)
        ),
        "float_images": _write_idx(
            root / "float-images-idx3-ubyte", (images / 255.0).astype(">f4")
        ),
    }


CASES = {
    "CNNClassifier": (
        lambda: CNNClassifier(
            ("conv:4x3x3", "relu", "maxpool:2", "dense:16", "relu"),
            input_shape=(1, 8, 8),
            batch_size=16,
            random_state=0,
        ),
        "classes",
    ),
    "DBNClassifier": (
        lambda: DBNClassifier(
            (16,), pretrain_max_iter=1, batch_size=16, random_state=0
        ),
        "classes",
    ),
    "CNNRegressor": (
        lambda: CNNRegressor(
            ("conv:4x3x3", "relu", "dense:8"),
            input_shape=(1, 8, 8),
            batch_size=16,
            random_state=0,
        ),
        "targets",
    ),
    "RBM": (lambda: RBM(16, batch_size=16, random_state=0), None),
    "SigmoidBeliefNet": (
        lambda: SigmoidBeliefNet((12,), batch_size=16, random_state=0),
        None,
    ),
}


def _stream(est, kind, images, labels):
    """One pass of partial_fit over BATCH-row slices of ``images`` (a memmap or an array)."""
    n = images.shape[0]
    for start in range(0, n, BATCH):
        xb = np.asarray(images[start : start + BATCH], dtype=np.float32).reshape(
            -1, 64
        ) / np.float32(255)
        yb = np.asarray(labels[start : start + BATCH])
        if kind == "classes":
            est.partial_fit(xb, yb, classes=np.arange(10))
        elif kind == "targets":
            est.partial_fit(xb, yb.astype(np.float32))
        else:
            est.partial_fit(xb)
    return est


def _outputs(est, X):
    return {
        m: np.asarray(getattr(est, m)(X))
        for m in ("predict_proba", "predict", "transform")
        if hasattr(est, m)
    }


def _holds_map(value, seen=None):
    """True when ``value`` (an estimator, container or array) references memory-mapped data."""
    seen = set() if seen is None else seen
    if id(value) in seen:
        return False
    seen.add(id(value))
    if isinstance(value, (np.memmap, mmap.mmap)):
        return True
    if isinstance(value, np.ndarray):
        return value.base is not None and _holds_map(value.base, seen)
    if isinstance(value, dict):
        return any(_holds_map(v, seen) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_holds_map(v, seen) for v in value)
    if hasattr(value, "__dict__") and type(value).__module__.startswith("neuroplug"):
        return _holds_map(vars(value), seen)
    return False


def test_load_idx_maps_the_file(idx_files):
    images = load_idx(idx_files["images"], mmap=True)
    assert (
        isinstance(images, np.memmap)
        and images.shape == (320, 8, 8)
        and images.dtype == np.uint8
    )
    assert (
        not images.flags.writeable
    )  # mapped read-only: training can never alter the data file
    np.testing.assert_array_equal(images, load_idx(idx_files["images"]))


@pytest.mark.parametrize("name", sorted(CASES))
def test_partial_fit_from_a_memmap_equals_in_memory(idx_files, name):
    factory, kind = CASES[name]
    images, labels = (
        load_idx(idx_files["images"], mmap=True),
        load_idx(idx_files["labels"], mmap=True),
    )
    from_map = _stream(factory(), kind, images, labels)
    in_memory = _stream(factory(), kind, np.array(images), np.array(labels))
    X = np.asarray(images, dtype=np.float32).reshape(-1, 64) / np.float32(255)
    a, b = _outputs(from_map, X), _outputs(in_memory, X)
    for method in a:
        np.testing.assert_array_equal(a[method], b[method], err_msg=method)
    assert from_map.n_iter_ == 5  # one per mini-batch
    assert not _holds_map(from_map)
    assert b"memmap" not in pickle.dumps(from_map)


@pytest.mark.parametrize("name", sorted(CASES))
def test_read_only_memmap_batches_are_accepted_as_they_are(idx_files, name):
    """Float IDX data (big-endian, read-only map) passed straight to partial_fit and fit, no copy by the caller."""
    factory, kind = CASES[name]
    images = load_idx(idx_files["float_images"], mmap=True).reshape(-1, 64)
    labels = load_idx(idx_files["labels"], mmap=True)
    assert (
        isinstance(images, np.memmap)
        and images.dtype == np.dtype(">f4")
        and not images.flags.writeable
    )
    est = factory()
    y = (
        None
        if kind is None
        else (labels if kind == "classes" else labels.astype(np.float32))
    )
    for start in range(0, images.shape[0], BATCH):
        batch = images[start : start + BATCH]
        if kind == "classes":
            est.partial_fit(batch, y[start : start + BATCH], classes=np.arange(10))
        elif kind == "targets":
            est.partial_fit(batch, y[start : start + BATCH])
        else:
            est.partial_fit(batch)
    assert not _holds_map(est)
    before = np.array(images)
    fitted = (
        factory().set_params(max_iter=1).fit(images, y)
        if y is not None
        else factory().set_params(max_iter=1).fit(images)
    )
    np.testing.assert_array_equal(images, before)
    assert not _holds_map(fitted)
    for out in _outputs(fitted, images).values():
        assert np.isfinite(np.asarray(out, dtype=float)).all()


def test_fit_on_a_whole_memmap_equals_fit_in_memory(idx_files):
    images = load_idx(idx_files["float_images"], mmap=True).reshape(-1, 64)
    labels = load_idx(idx_files["labels"], mmap=True)
    a = CASES["CNNClassifier"][0]().set_params(max_iter=2).fit(images, labels)
    b = (
        CASES["CNNClassifier"][0]()
        .set_params(max_iter=2)
        .fit(np.array(images), np.array(labels))
    )
    np.testing.assert_array_equal(a.predict_proba(images), b.predict_proba(images))
