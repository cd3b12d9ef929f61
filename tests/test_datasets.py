"""Data loaders, on IDX files written by the test itself."""

import gzip

import numpy as np
import pytest

from neuroplug.datasets import (
    load_dataset,
    load_digits_images,
    load_idx,
    load_mnist,
    load_npz,
)


def write_idx(path, array, *, gz=False, code=0x08):
    header = (
        bytes([0, 0, code, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    )
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
    assert (
        X.shape == (1797, 64) and shape == (1, 8, 8) and 0 <= X.min() and X.max() == 1.0
    )
    with pytest.raises(ValueError, match="dataset must be"):
        load_dataset("no-such-dataset")


# ------------------------------------------------------------------------- bounded IDX reads
def test_every_dtype_round_trips_native_endian(tmp_path):
    for code, dtype in [
        (0x08, np.uint8),
        (0x09, np.int8),
        (0x0B, np.int16),
        (0x0C, np.int32),
        (0x0D, np.float32),
        (0x0E, np.float64),
    ]:
        arr = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
        for gz in (False, True):
            write_idx(tmp_path / "a", arr, gz=gz, code=code)
            got = load_idx(tmp_path / "a")
            assert got.dtype == np.dtype(dtype) and got.dtype.isnative
            np.testing.assert_array_equal(got, arr)


def test_gzip_stream_shorter_longer_or_cut_is_a_clear_error(tmp_path):
    arr = np.arange(12, dtype=np.uint8).reshape(3, 4)
    header = bytes([0, 0, 0x08, 2]) + np.array(arr.shape, ">u4").tobytes()
    with gzip.open(tmp_path / "long.gz", "wb") as fh:
        fh.write(header + arr.tobytes() + b"extra")
    with pytest.raises(
        ValueError,
        match=r"holds more data than its header promises \(12 bytes for shape \(3, 4\)\)",
    ):
        load_idx(tmp_path / "long.gz")
    with gzip.open(tmp_path / "short.gz", "wb") as fh:
        fh.write(header + arr.tobytes()[:-2])
    with pytest.raises(
        ValueError,
        match=r"holds 10 data bytes but its header promises 12 \(shape \(3, 4\)\)",
    ):
        load_idx(tmp_path / "short.gz")
    write_idx(tmp_path / "ok.gz", np.zeros((50, 20), np.uint8), gz=True)
    raw = (tmp_path / "ok.gz").read_bytes()
    (tmp_path / "cut.gz").write_bytes(
        raw[: len(raw) - 10]
    )  # the gzip trailer and the end of the stream lost
    with pytest.raises(ValueError, match=r"truncated or corrupt gzip file"):
        load_idx(tmp_path / "cut.gz")
    bad = bytearray(raw)
    bad[-6] ^= 0xFF  # the CRC in the trailer
    (tmp_path / "crc.gz").write_bytes(bytes(bad))
    with pytest.raises(ValueError, match=r"truncated or corrupt gzip file"):
        load_idx(tmp_path / "crc.gz")


def test_declared_size_is_checked_before_reading(tmp_path):
    header = (
        bytes([0, 0, 0x0E, 2]) + np.array([60000, 10**6], ">u4").tobytes()
    )  # 480 GB of float64
    with gzip.open(tmp_path / "huge.gz", "wb") as fh:
        fh.write(header + bytes(100))
    with pytest.raises(
        ValueError,
        match=r"declares shape \(60000, 1000000\) \(480000000000 bytes\) but is a \d+-byte "
        r"gzip file, which cannot expand to that much",
    ):
        load_idx(tmp_path / "huge.gz")
    (tmp_path / "huge").write_bytes(header + bytes(100))
    with pytest.raises(
        ValueError, match=r"holds 100 data bytes but its header promises 480000000000"
    ):
        load_idx(tmp_path / "huge")
    write_idx(tmp_path / "ok", np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match=r"\(100 bytes\), over the limit max_bytes=99"):
        load_idx(tmp_path / "ok", max_bytes=99)
    assert load_idx(tmp_path / "ok", mmap=True, max_bytes=99).shape == (
        10,
        10,
    )  # a map may exceed memory


_IDX_PEAK = r"""
import gzip, resource, sys, tracemalloc
import numpy as np
from neuroplug.datasets import load_idx

path, mib = sys.argv[1], int(sys.argv[2])
with gzip.open(path, "wb", compresslevel=9) as fh:  # a header promising 10 images, then mib MiB of zeros
    fh.write(bytes([0, 0, 0x08, 3]) + np.array([10, 28, 28], ">u4").tobytes())
    for _ in range(mib):
        fh.write(bytes(2**20))
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
tracemalloc.start()
try:
    load_idx(path)
except ValueError:
    outcome = "ValueError"
else:
    outcome = "loaded"
rss_growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss) * 1024  # KiB on Linux
print(outcome, max(tracemalloc.get_traced_memory()[1], rss_growth))
"""


def test_a_small_gzip_with_a_long_stream_is_refused_in_bounded_memory(tmp_path):
    import os
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", _IDX_PEAK, str(tmp_path / "x.gz"), "256"],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    ).stdout.split()
    assert (tmp_path / "x.gz").stat().st_size < 2**20
    assert out[-2] == "ValueError"
    assert int(out[-1]) < 16 * 2**20, (
        f"load_idx peaked at {int(out[-1]) / 2**20:.1f} MiB"
    )


def test_non_square_images_keep_their_own_shape(tmp_path):
    rng = np.random.default_rng(0)
    write_idx(
        tmp_path / "t10k-images-idx3-ubyte",
        rng.integers(0, 256, (6, 20, 30), dtype=np.uint8),
    )
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.arange(6, dtype=np.uint8) % 2)
    X, _, shape = load_dataset(str(tmp_path))
    assert X.shape == (6, 600) and shape == (1, 20, 30)
    write_idx(
        tmp_path / "train-images-idx3-ubyte.gz",
        rng.integers(0, 256, (8, 20, 30), dtype=np.uint8),
        gz=True,
    )
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.arange(8, dtype=np.uint8) % 2)
    from neuroplug.train import load_train_test

    assert load_train_test(str(tmp_path))[4] == (1, 20, 30)
