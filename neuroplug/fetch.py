"""Download MNIST and Fashion-MNIST once into a local cache, checked by SHA-256.

:func:`fetch_mnist` and :func:`fetch_fashion_mnist` return ``(X, y)`` as
:func:`neuroplug.datasets.load_mnist` does (``X`` float32 in ``[0, 1]`` of
shape ``(n, 784)``, ``y`` int64).  The first call downloads the four IDX
files of the data set (with a progress bar) into a sub-directory of
:func:`get_data_home`; later calls read them from there.

Every download is written to a temporary file next to its destination and
renamed over it only once complete and its SHA-256 checksum matches the
published one, so an interrupted or corrupt download never leaves a file
that looks complete.  These functions are also re-exported by
:mod:`neuroplug.datasets`.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DownloadError", "fetch_fashion_mnist", "fetch_mnist", "get_data_home"]

#: Environment variable naming the cache directory (see :func:`get_data_home`).
DATA_HOME_ENV = "NEUROPLUG_DATA"

# Read the response in chunks of this size (bytes): the progress bar moves and
# memory stays flat for files of any size.
_CHUNK = 1 << 16


class DownloadError(OSError):
    """A data set file could not be downloaded, or its checksum did not match."""


@dataclass(frozen=True)
class RemoteDataset:
    """Where a data set is published and the SHA-256 of each of its files.

    Parameters
    ----------
    name : str
        Name of the data set, and of its sub-directory in the cache.
    base_url : str
        URL of the directory that holds the files (ends with ``/``).
    files : dict of str to str
        File name -> hexadecimal SHA-256 of its bytes.
    """

    name: str
    base_url: str
    files: dict[str, str]


# The files as they are published (SHA-256 of the .gz files; the same values
# torchvision, TensorFlow Datasets and the Fashion-MNIST project list).
MNIST = RemoteDataset(
    "mnist",
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    {
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
)
FASHION_MNIST = RemoteDataset(
    "fashion_mnist",
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    {
        "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
)

_SUBSETS = {"train": "train", "test": "t10k"}


def get_data_home(data_home: str | os.PathLike | None = None) -> Path:
    """Return the directory where downloaded data sets are kept, creating it when missing.

    Parameters
    ----------
    data_home : path-like, default=None
        The directory.  ``None``: the ``NEUROPLUG_DATA`` environment
        variable when set, else ``~/neuroplug_data`` (as
        :func:`sklearn.datasets.get_data_home` does with ``SCIKIT_LEARN_DATA``).

    Returns
    -------
    path : pathlib.Path
        The directory (``~`` expanded).
    """
    if data_home is None:
        data_home = os.environ.get(DATA_HOME_ENV) or Path("~") / "neuroplug_data"
    path = Path(data_home).expanduser()
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(
            f"The data home must be a directory; a file of that name exists. Received: data_home={str(path)!r}"
        )
    path.mkdir(parents=True, exist_ok=True)
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(
    url: str, target: Path, sha256: str, *, progress: bool, timeout: float
) -> None:
    """Stream ``url`` into ``target`` atomically, checking its SHA-256 on the way."""
    from tqdm.auto import tqdm

    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=".part", dir=target.parent
    )
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        try:
            with (
                os.fdopen(fd, "wb") as out,
                urllib.request.urlopen(url, timeout=timeout) as response,
            ):
                size = response.headers.get("Content-Length")
                total = int(size) if size and size.isdigit() else None
                received = 0
                with tqdm(
                    total=total,
                    desc=target.name,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    disable=not progress,
                    leave=False,
                ) as bar:
                    for block in iter(lambda: response.read(_CHUNK), b""):
                        out.write(block)
                        digest.update(block)
                        bar.update(len(block))
                        received += len(block)
            if total is not None and received != total:
                raise OSError(
                    f"the connection closed after {received} of {total} bytes"
                )
        except (
            urllib.error.URLError,
            http.client.HTTPException,
            OSError,
            ValueError,
        ) as exc:
            reason = getattr(exc, "reason", None) or exc
            raise DownloadError(
                f"Cannot download {url}: {reason}. Check the network connection, or put the file "
                f"{target.name!r} into {str(target.parent)!r} yourself (or pass base_url= a mirror)."
            ) from exc
        actual = digest.hexdigest()
        if actual != sha256:
            raise DownloadError(
                f"The file downloaded from {url} is not the published one: its SHA-256 is {actual}, "
                f"expected {sha256}. It was not kept; try again, or another mirror with base_url=."
            )
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def _fetch_files(
    dataset: RemoteDataset,
    names: list[str],
    *,
    data_home: Any,
    base_url: str | None,
    download_if_missing: bool,
    progress: bool,
    timeout: float,
) -> Path:
    """Make sure ``names`` of ``dataset`` are in the cache; return the data set's directory."""
    directory = get_data_home(data_home) / dataset.name
    directory.mkdir(exist_ok=True)
    missing = [n for n in names if not (directory / n).is_file()]
    if missing and not download_if_missing:
        raise FileNotFoundError(
            f"{dataset.name} is not in the cache {str(directory)!r} (missing {', '.join(missing)}) and "
            "download_if_missing=False."
        )
    if base_url is None:
        base_url = dataset.base_url
    elif not isinstance(base_url, str) or not base_url:
        raise ValueError(
            f"base_url must be a non-empty URL string or None. Received: base_url={base_url!r}"
        )
    if not base_url.endswith("/"):
        base_url += "/"
    for name in missing:
        _download(
            base_url + name,
            directory / name,
            dataset.files[name],
            progress=progress,
            timeout=timeout,
        )
    return directory


def _fetch_idx(
    dataset: RemoteDataset,
    subset: str,
    data_home: Any,
    base_url: str | None,
    download_if_missing: bool,
    progress: bool,
    timeout: float,
) -> tuple[np.ndarray, np.ndarray]:
    from .datasets import load_mnist

    if subset not in _SUBSETS:
        raise ValueError(
            f"subset must be 'train' or 'test'. Received: subset={subset!r}"
        )
    kind = _SUBSETS[subset]
    names = [f"{kind}-images-idx3-ubyte.gz", f"{kind}-labels-idx1-ubyte.gz"]
    directory = _fetch_files(
        dataset,
        names,
        data_home=data_home,
        base_url=base_url,
        download_if_missing=download_if_missing,
        progress=progress,
        timeout=timeout,
    )
    return load_mnist(directory, kind=kind)


def fetch_mnist(
    subset: str = "train",
    *,
    data_home: str | os.PathLike | None = None,
    base_url: str | None = None,
    download_if_missing: bool = True,
    progress: bool = True,
    timeout: float = 60.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Load the MNIST handwritten digits, downloading them into the cache the first time (11 MB).

    Parameters
    ----------
    subset : {"train", "test"}, default="train"
        The 60,000 training images or the 10,000 test images.
    data_home : path-like, default=None
        Cache directory (see :func:`get_data_home`); the files go into its
        sub-directory ``mnist``.
    base_url : str, default=None
        URL of a directory holding the same ``.gz`` files (a mirror); their
        checksums are checked all the same.  ``None``:
        ``https://ossci-datasets.s3.amazonaws.com/mnist/``.
    download_if_missing : bool, default=True
        Download files missing from the cache; when false, a missing file
        raises :class:`FileNotFoundError`.
    progress : bool, default=True
        Show a progress bar (tqdm, on stderr) while downloading.
    timeout : float, default=60
        Seconds to wait for the server before giving up.

    Returns
    -------
    X : ndarray of shape (n_samples, 784), dtype float32
        The 28x28 images, one row each, scaled to ``[0, 1]``
        (``input_shape=(1, 28, 28)`` for the CNNs).
    y : ndarray of shape (n_samples,), dtype int64
        The labels, 0 to 9.

    Raises
    ------
    DownloadError
        When a file cannot be downloaded or its SHA-256 does not match (an
        :class:`OSError`).

    See Also
    --------
    fetch_fashion_mnist : Clothing images in the same format.
    neuroplug.datasets.load_mnist : Read IDX files already on disk.

    Examples
    --------
    >>> from neuroplug.datasets import fetch_mnist
    >>> X_train, y_train = fetch_mnist("train")  # doctest: +SKIP
    >>> X_train.shape, y_train[:5]  # doctest: +SKIP
    ((60000, 784), array([5, 0, 4, 1, 9]))
    """
    return _fetch_idx(
        MNIST, subset, data_home, base_url, download_if_missing, progress, timeout
    )


def fetch_fashion_mnist(
    subset: str = "train",
    *,
    data_home: str | os.PathLike | None = None,
    base_url: str | None = None,
    download_if_missing: bool = True,
    progress: bool = True,
    timeout: float = 60.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Load Fashion-MNIST (Zalando's 28x28 clothing images), downloading it the first time (30 MB).

    The labels are 0 T-shirt/top, 1 trouser, 2 pullover, 3 dress, 4 coat,
    5 sandal, 6 shirt, 7 sneaker, 8 bag, 9 ankle boot.

    Parameters
    ----------
    subset : {"train", "test"}, default="train"
        The 60,000 training images or the 10,000 test images.
    data_home : path-like, default=None
        Cache directory (see :func:`get_data_home`); the files go into its
        sub-directory ``fashion_mnist``.
    base_url : str, default=None
        URL of a directory holding the same ``.gz`` files (a mirror); their
        checksums are checked all the same.  ``None``:
        ``http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/``.
    download_if_missing : bool, default=True
        Download files missing from the cache; when false, a missing file
        raises :class:`FileNotFoundError`.
    progress : bool, default=True
        Show a progress bar (tqdm, on stderr) while downloading.
    timeout : float, default=60
        Seconds to wait for the server before giving up.

    Returns
    -------
    X : ndarray of shape (n_samples, 784), dtype float32
        The 28x28 images, one row each, scaled to ``[0, 1]``
        (``input_shape=(1, 28, 28)`` for the CNNs).
    y : ndarray of shape (n_samples,), dtype int64
        The labels, 0 to 9.

    Raises
    ------
    DownloadError
        When a file cannot be downloaded or its SHA-256 does not match (an
        :class:`OSError`).

    See Also
    --------
    fetch_mnist : The handwritten digits, in the same format.
    """
    return _fetch_idx(
        FASHION_MNIST,
        subset,
        data_home,
        base_url,
        download_if_missing,
        progress,
        timeout,
    )
