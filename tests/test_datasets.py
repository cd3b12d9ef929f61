"""Data loaders, on IDX files written by the test itself."""

import gzip

import numpy as np
import pytest

from neuroplug.datasets import load_dataset, load_digits_images, load_idx, load_mnist, load_npz


def write_idx(path, array, *, gz=False, code=0x08):
    header = bytes([0, 0, code, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    with (gzip.open if gz else open)(path, "wb") as fh:
        fh.write(payload)


@pytest.fixture
def mnist_dir(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 4, 4), dtype=np.uint8)
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images, gz=True)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels)
    return tmp_path, images, labels


def test_load_mnist_directory(mnist_dir):
    path, images, labels = mnist_dir
    X, y = load_mnist(path)
    assert X.shape == (5, 16) and X.dtype == np.float32
    np.testing.assert_allclose(X, images.reshape(5, -1) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y, labels)
    X2, y2, shape = load_dataset(str(path))
    assert shape == (1, 4, 4) and np.array_equal(y2, y)


def test_load_idx_other_dtypes_and_mmap(tmp_path):
    arr = np.arange(6, dtype=np.int32).reshape(2, 3) - 3
    write_idx(tmp_path / "a.idx", arr, code=0x0C)
    np.testing.assert_array_equal(load_idx(tmp_path / "a.idx"), arr)
    mm = load_idx(tmp_path / "a.idx", mmap=True)
    assert isinstance(mm, np.memmap)
    np.testing.assert_array_equal(mm, arr)


def test_truncated_and_bad_files(tmp_path):
    write_idx(tmp_path / "ok", np.zeros((3, 2), np.uint8))
    data = (tmp_path / "ok").read_bytes()
    (tmp_path / "short").write_bytes(data[:-1])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load_idx(tmp_path / "short")
    with pytest.raises(ValueError, match="header promises"):
        load_idx(tmp_path / "short", mmap=True)
    (tmp_path / "junk").write_bytes(b"PK\x03\x04 not idx")
    with pytest.raises(ValueError, match="not an IDX file"):
        load_idx(tmp_path / "junk")
    with pytest.raises(FileNotFoundError):
        load_idx(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="t10k-images"):
        load_mnist(tmp_path)


def test_npz_and_digits(tmp_path):
    np.savez(tmp_path / "d.npz", X=np.ones((2, 3)), y=np.array([0, 1]))
    X, y = load_npz(tmp_path / "d.npz")
    assert X.shape == (2, 3)
    np.savez(tmp_path / "bad.npz", A=np.ones(2))
    with pytest.raises(ValueError, match="must hold arrays 'X' and 'y'"):
        load_npz(tmp_path / "bad.npz")
    X, y, shape = load_digits_images()
    assert X.shape == (1797, 64) and shape == (1, 8, 8) and 0 <= X.min() and X.max() == 1.0
    with pytest.raises(ValueError, match="dataset must be"):
        load_dataset("no-such-dataset")
