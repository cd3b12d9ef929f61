"""Data loaders: the embedded digits, MNIST-format IDX files and ``.npz`` files.

All loaders return ``(X, y)`` with ``X`` a float32 array of shape
``(n_samples, n_features)`` scaled to ``[0, 1]`` and ``y`` an int64 array,
plus the image shape through :func:`image_shape`-style return values where
it matters.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["load_digits_images", "load_idx", "load_mnist", "load_npz", "load_dataset"]

# IDX type codes (third byte of the magic number) → big-endian dtypes.
_IDX_DTYPES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


def load_digits_images() -> tuple[np.ndarray, np.ndarray, tuple[int, int, int]]:
    """scikit-learn's 8x8 digits, pixels scaled from 0..16 to ``[0, 1]``.

    Returns ``(X, y, input_shape)`` with ``X`` of shape ``(1797, 64)`` and
    ``input_shape == (1, 8, 8)``.
    """
    from sklearn.datasets import load_digits

    data = load_digits()
    return (data.data / 16.0).astype(np.float32), data.target.astype(np.int64), (1, 8, 8)


def _open(path: Path):
    with open(path, "rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gz else open(path, "rb")


def load_idx(path: str | os.PathLike, *, mmap: bool = False) -> np.ndarray:
    """Read an IDX file (MNIST format), gzip-compressed or not.

    Parameters
    ----------
    path : path-like
        The file.  Gzip is detected from its first bytes, not its name.
    mmap : bool, default=False
        Memory-map the data instead of reading it (uncompressed files only),
        so that ``partial_fit`` can stream a data set larger than memory.

    Returns
    -------
    ndarray
        The array with the shape and (native-endian) dtype the header gives.

    Raises
    ------
    ValueError
        When the header is not IDX, the dimension count is zero, or the file
        is shorter or longer than its header promises.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file not found: {str(path)!r}")
    with _open(path) as fh:
        header = fh.read(4)
        if len(header) < 4 or header[0] != 0 or header[1] != 0 or header[2] not in _IDX_DTYPES:
            raise ValueError(f"{str(path)!r} is not an IDX file: bad magic number {header!r}")
        ndim = header[3]
        if ndim == 0:
            raise ValueError(f"{str(path)!r}: IDX header declares 0 dimensions")
        dims_raw = fh.read(4 * ndim)
        if len(dims_raw) < 4 * ndim:
            raise ValueError(f"{str(path)!r} is truncated inside its IDX header")
        shape = tuple(int(d) for d in np.frombuffer(dims_raw, dtype=">u4"))
        dtype = _IDX_DTYPES[header[2]]
        count = int(np.prod(shape, dtype=np.int64))
        offset = 4 + 4 * ndim
        if mmap and not isinstance(fh, gzip.GzipFile):
            size = path.stat().st_size
            if size != offset + count * dtype.itemsize:
                raise ValueError(
                    f"{str(path)!r} holds {size - offset} data bytes but its header promises "
                    f"{count * dtype.itemsize} (shape {shape})"
                )
            return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)
        data = fh.read()
    if len(data) != count * dtype.itemsize:
        raise ValueError(
            f"{str(path)!r} holds {len(data)} data bytes but its header promises "
            f"{count * dtype.itemsize} (shape {shape}); the file is truncated or corrupt"
        )
    return np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def _find(directory: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (directory / name).is_file():
            return directory / name
    raise FileNotFoundError(f"Neither {stem} nor {stem}.gz found in {str(directory)!r}")


def load_mnist(path: str | os.PathLike, kind: str = "t10k") -> tuple[np.ndarray, np.ndarray]:
    """Load MNIST-format IDX files from a directory.

    Reads ``{kind}-images-idx3-ubyte[.gz]`` and ``{kind}-labels-idx1-ubyte[.gz]``
    (``kind`` is ``"t10k"`` or ``"train"``).  Returns ``X`` float32 of shape
    ``(n, rows * cols)`` scaled to ``[0, 1]`` and ``y`` int64.
    """
    directory = Path(path)
    images = load_idx(_find(directory, f"{kind}-images-idx3-ubyte"))
    labels = load_idx(_find(directory, f"{kind}-labels-idx1-ubyte"))
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"MNIST files in {str(directory)!r} disagree: images {images.shape}, labels {labels.shape}"
        )
    X = images.reshape(images.shape[0], -1).astype(np.float32) / np.float32(255.0)
    return X, labels.astype(np.int64)


def load_npz(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Load ``X`` and ``y`` arrays from an ``.npz`` file (never unpickles)."""
    with np.load(path, allow_pickle=False) as data:
        missing = {"X", "y"} - set(data.files)
        if missing:
            raise ValueError(f"{str(path)!r} must hold arrays 'X' and 'y'; it holds {sorted(data.files)}")
        return np.asarray(data["X"]), np.asarray(data["y"])


def load_dataset(name: str) -> tuple[np.ndarray, np.ndarray, Any]:
    """Load ``"digits"``, an MNIST IDX directory, or an ``.npz`` file.

    Returns ``(X, y, input_shape)``; ``input_shape`` is ``None`` for ``.npz``
    files whose ``X`` is 2-D (the estimator then infers it).
    """
    if name == "digits":
        return load_digits_images()
    path = Path(name)
    if path.is_dir():
        X, y = load_mnist(path)
        side = int(round(np.sqrt(X.shape[1])))
        return X, y, (1, side, side)
    if path.suffix == ".npz" and path.is_file():
        X, y = load_npz(path)
        return X, y, (tuple(X.shape[1:]) if X.ndim == 4 else None)
    raise ValueError(
        "dataset must be 'digits', a directory with MNIST IDX files, or an .npz file with X and y. "
        f"Received: dataset={name!r}"
    )


# Downloads into a local cache (neuroplug.fetch), offered here next to the loaders.
from .fetch import DownloadError, fetch_fashion_mnist, fetch_mnist, get_data_home  # noqa: E402

__all__ += ["fetch_mnist", "fetch_fashion_mnist", "get_data_home", "DownloadError"]
