"""Data loaders: the embedded digits, MNIST-format IDX files and ``.npz`` files.

All loaders return ``(X, y)`` with ``X`` a float32 array of shape
``(n_samples, n_features)`` scaled to ``[0, 1]`` and ``y`` an int64 array,
plus the image shape through :func:`image_shape`-style return values where
it matters.
"""

from __future__ import annotations

import gzip
import math
import os
import zlib
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "load_dataset",
    "load_digits_images",
    "load_idx",
    "load_mnist",
    "load_npz",
    "mnist_image_shape",
]

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
    return (
        (data.data / 16.0).astype(np.float32),
        data.target.astype(np.int64),
        (1, 8, 8),
    )


_GZIP_MAGIC = b"\x1f\x8b"
_MAX_GZIP_RATIO = 1100  # deflate cannot expand more than ~1032:1; a header promising more is not this file's
_IDX_CHUNK = 1 << 20  # bytes decompressed at a time
_MAX_IDX_NDIM = 32  # NumPy's limit on array dimensions in its oldest supported version


def _open(path: Path):
    with open(path, "rb") as fh:
        gz = fh.read(2) == _GZIP_MAGIC
    return gzip.open(path, "rb") if gz else open(path, "rb")


def _physical_memory() -> int | None:
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (
        AttributeError,
        ValueError,
        OSError,
    ):  # pragma: no cover - platforms without sysconf
        return None


def _read_idx_header(fh: Any, where: str) -> tuple[np.dtype, tuple[int, ...]]:
    header = fh.read(4)
    if (
        len(header) < 4
        or header[0] != 0
        or header[1] != 0
        or header[2] not in _IDX_DTYPES
    ):
        raise ValueError(
            f"{where} is not an IDX file: bad magic number {header!r}; expected 0x00 0x00, a type code "
            f"({', '.join(hex(c) for c in _IDX_DTYPES)}) and the number of dimensions"
        )
    ndim = header[3]
    if not 1 <= ndim <= _MAX_IDX_NDIM:
        raise ValueError(
            f"{where}: IDX header declares {ndim} dimensions; expected 1 to {_MAX_IDX_NDIM}"
        )
    dims_raw = fh.read(4 * ndim)
    if len(dims_raw) < 4 * ndim:
        raise ValueError(
            f"{where} is truncated inside its IDX header ({ndim} dimensions need {4 * ndim} bytes)"
        )
    return _IDX_DTYPES[header[2]], tuple(
        int(d) for d in np.frombuffer(dims_raw, dtype=">u4")
    )


def _read_exactly(fh: Any, out: np.ndarray, where: str, shape: tuple[int, ...]) -> None:
    """Fill ``out`` from ``fh`` in chunks; refuse a stream shorter or longer than ``out``."""
    view = memoryview(out.reshape(-1).view(np.uint8))
    done = 0
    while done < len(view):
        n = fh.readinto(view[done : done + _IDX_CHUNK])
        if not n:
            raise ValueError(
                f"{where} holds {done} data bytes but its header promises {len(view)} (shape {shape}); "
                "the file is truncated"
            )
        done += n
    if fh.read(1):
        raise ValueError(
            f"{where} holds more data than its header promises ({len(view)} bytes for shape {shape}); "
            "the file is corrupt or its header is wrong"
        )


def load_idx(
    path: str | os.PathLike, *, mmap: bool = False, max_bytes: int | None = None
) -> np.ndarray:
    """Read an IDX file (MNIST format), gzip-compressed or not.

    The header is read first and the size it declares is checked against
    the file (its exact size when uncompressed, what deflate can expand
    to when gzipped) and ``max_bytes``; then exactly the declared bytes are
    read in chunks into the result, so a forged header never makes the
    loader allocate more than the limit.

    Parameters
    ----------
    path : path-like
        The file.  Gzip is detected from its first bytes, not its name.
    mmap : bool, default=False
        Memory-map the data instead of reading it (uncompressed files only),
        so that ``partial_fit`` can stream a data set larger than memory.
    max_bytes : int or None, default=None
        Most data bytes the header may declare when the data is read into
        memory (not for a memory map); ``None`` means the machine's
        physical memory.

    Returns
    -------
    ndarray
        The array with the shape and (native-endian) dtype the header gives.

    Raises
    ------
    ValueError
        When the header is not IDX, the dimension count is zero, the
        declared size is over ``max_bytes`` or more than the file can hold,
        the file is shorter or longer than its header promises, or the gzip
        stream is truncated or corrupt.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"IDX file not found: {str(path)!r}")
    where = repr(str(path))
    if max_bytes is None:
        max_bytes = _physical_memory()
    file_size = path.stat().st_size
    try:
        with _open(path) as fh:
            gz = isinstance(fh, gzip.GzipFile)
            dtype, shape = _read_idx_header(fh, where)
            offset = 4 + 4 * len(shape)
            nbytes = math.prod(shape) * dtype.itemsize
            if not gz and file_size != offset + nbytes:
                raise ValueError(
                    f"{where} holds {file_size - offset} data bytes but its header promises "
                    f"{nbytes} (shape {shape}); the file is truncated or corrupt"
                )
            if gz and nbytes > _MAX_GZIP_RATIO * file_size + 1024:
                raise ValueError(
                    f"{where} declares shape {shape} ({nbytes} bytes) but is a {file_size}-byte gzip file, "
                    f"which cannot expand to that much (deflate expands at most ~{_MAX_GZIP_RATIO}:1)"
                )
            mapped = (
                mmap and not gz
            )  # a map allocates nothing: the exact file size bounds it
            if max_bytes is not None and nbytes > max_bytes and not mapped:
                raise ValueError(
                    f"{where} declares shape {shape} of {dtype.name} ({nbytes} bytes), over the limit "
                    f"max_bytes={max_bytes}"
                )
            try:
                if mapped:
                    return np.memmap(
                        path, dtype=dtype, mode="r", offset=offset, shape=shape
                    )
                out = np.empty(shape, dtype=dtype)
            except (
                ValueError
            ) as exc:  # e.g. a zero dimension beside others whose product overflows
                raise ValueError(
                    f"{where} declares shape {shape}, which NumPy cannot hold: {exc}"
                ) from exc
            _read_exactly(fh, out, where, shape)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise ValueError(f"{where} is a truncated or corrupt gzip file: {exc}") from exc
    if dtype.byteorder not in ("=", "|"):
        out = out.byteswap(inplace=True).view(
            dtype.newbyteorder("=")
        )  # in place: no second copy
    return out


def _find(directory: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (directory / name).is_file():
            return directory / name
    raise FileNotFoundError(f"Neither {stem} nor {stem}.gz found in {str(directory)!r}")


def mnist_image_shape(
    path: str | os.PathLike, kind: str = "t10k"
) -> tuple[int, int, int]:
    """``(1, rows, cols)`` of the images in an MNIST-format directory, read from the IDX header alone."""
    images = _find(Path(path), f"{kind}-images-idx3-ubyte")
    with _open(images) as fh:
        try:
            _, shape = _read_idx_header(fh, repr(str(images)))
        except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
            raise ValueError(
                f"{str(images)!r} is a truncated or corrupt gzip file: {exc}"
            ) from exc
    if len(shape) != 3:
        raise ValueError(
            f"{str(images)!r} must hold images (3 dimensions: n, rows, cols). Received: shape {shape}"
        )
    return (1, shape[1], shape[2])


def load_mnist(
    path: str | os.PathLike, kind: str = "t10k"
) -> tuple[np.ndarray, np.ndarray]:
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
            raise ValueError(
                f"{str(path)!r} must hold arrays 'X' and 'y'; it holds {sorted(data.files)}"
            )
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
        return X, y, mnist_image_shape(path)
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
