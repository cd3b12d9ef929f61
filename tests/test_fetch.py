"""fetch_mnist / fetch_fashion_mnist against a small HTTP server on 127.0.0.1 serving fixture IDX files."""

import gzip
import hashlib
import http.server
import threading

import numpy as np
import pytest

from neuroplug import fetch
from neuroplug.datasets import (
    DownloadError,
    fetch_fashion_mnist,
    fetch_mnist,
    get_data_home,
)

N_TRAIN, N_TEST = 30, 10


def idx_bytes(array):
    """An IDX file (gzip-compressed) holding ``array`` of unsigned bytes."""
    header = (
        bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    )
    return gzip.compress(
        header + np.ascontiguousarray(array, dtype=np.uint8).tobytes(), mtime=0
    )


@pytest.fixture(scope="module")
def fixture_files():
    """The four MNIST files, tiny: ``{name: bytes}`` and the arrays they hold."""
    rng = np.random.default_rng(0)
    arrays = {
        "train-images-idx3-ubyte.gz": rng.integers(0, 256, (N_TRAIN, 28, 28)),
        "train-labels-idx1-ubyte.gz": np.arange(N_TRAIN) % 10,
        "t10k-images-idx3-ubyte.gz": rng.integers(0, 256, (N_TEST, 28, 28)),
        "t10k-labels-idx1-ubyte.gz": np.arange(N_TEST) % 10,
    }
    return {name: idx_bytes(a) for name, a in arrays.items()}, arrays


class Server:
    """A threaded HTTP server on the loopback address; ``files`` maps a path to its bytes."""

    def __init__(self, files):
        self.files = dict(files)
        self.requests = []
        self.truncate = set()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # the http.server API
                name = self.path.rsplit("/", 1)[-1]
                outer.requests.append(name)
                body = outer.files.get(name)
                if body is None:
                    self.send_error(404, "Not Found")
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                # A truncated file: the promised length, half the bytes, then the connection closes.
                self.wfile.write(
                    body[: len(body) // 2] if name in outer.truncate else body
                )

            def log_message(self, *args):  # keep the test output clean
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/data/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(fixture_files):
    s = Server(fixture_files[0])
    yield s
    s.close()


@pytest.fixture
def local_mnist(server, fixture_files, monkeypatch, tmp_path):
    """fetch.MNIST and FASHION_MNIST pointing at the server, with the fixtures' checksums."""
    sums = {
        name: hashlib.sha256(body).hexdigest()
        for name, body in fixture_files[0].items()
    }
    monkeypatch.setattr(fetch, "MNIST", fetch.RemoteDataset("mnist", server.url, sums))
    monkeypatch.setattr(
        fetch, "FASHION_MNIST", fetch.RemoteDataset("fashion_mnist", server.url, sums)
    )
    monkeypatch.setenv("NEUROPLUG_DATA", str(tmp_path / "cache"))
    return server


def test_downloads_once_into_the_cache_and_returns_scaled_arrays(
    local_mnist, fixture_files, tmp_path
):
    _, arrays = fixture_files
    X, y = fetch_mnist("train", progress=False)
    assert sorted(local_mnist.requests) == [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
    ]
    assert X.dtype == np.float32 and X.shape == (N_TRAIN, 784) and y.dtype == np.int64
    np.testing.assert_allclose(
        X, arrays["train-images-idx3-ubyte.gz"].reshape(N_TRAIN, -1) / 255.0, rtol=1e-6
    )
    np.testing.assert_array_equal(y, arrays["train-labels-idx1-ubyte.gz"])
    cached = sorted(p.name for p in (tmp_path / "cache" / "mnist").iterdir())
    assert cached == [
        "train-images-idx3-ubyte.gz",
        "train-labels-idx1-ubyte.gz",
    ]  # no temporary file left

    X2, _ = fetch_mnist("train", progress=False)  # from the cache: no request
    assert len(local_mnist.requests) == 2
    np.testing.assert_array_equal(X2, X)
    X_test, _ = fetch_mnist("test", progress=False)
    assert X_test.shape == (N_TEST, 784) and len(local_mnist.requests) == 4


def test_fashion_mnist_has_its_own_directory(local_mnist, tmp_path):
    X, _ = fetch_fashion_mnist("test", progress=False)
    assert X.shape == (N_TEST, 784)
    assert (
        tmp_path / "cache" / "fashion_mnist" / "t10k-images-idx3-ubyte.gz"
    ).is_file()
    assert not (tmp_path / "cache" / "mnist" / "t10k-images-idx3-ubyte.gz").exists()


def test_progress_bar_names_the_file(local_mnist, capsys):
    fetch_mnist("test", progress=True)
    assert "t10k-images-idx3-ubyte.gz" in capsys.readouterr().err


def test_data_home_argument_and_base_url_argument(
    server, fixture_files, monkeypatch, tmp_path
):
    sums = {
        name: hashlib.sha256(body).hexdigest()
        for name, body in fixture_files[0].items()
    }
    monkeypatch.setattr(
        fetch,
        "MNIST",
        fetch.RemoteDataset("mnist", "http://127.0.0.1:9/nothing-here/", sums),
    )
    X, _ = fetch_mnist(
        "test",
        data_home=tmp_path / "elsewhere",
        base_url=server.url.rstrip("/"),
        progress=False,
    )
    assert X.shape == (N_TEST, 784) and (tmp_path / "elsewhere" / "mnist").is_dir()


def test_checksum_mismatch_keeps_no_file(local_mnist, tmp_path):
    local_mnist.files["t10k-labels-idx1-ubyte.gz"] = b"not the published file"
    with pytest.raises(
        DownloadError,
        match=r"t10k-labels-idx1-ubyte.gz is not the published one: its SHA-256 is",
    ):
        fetch_mnist("test", progress=False)
    assert [p.name for p in (tmp_path / "cache" / "mnist").iterdir()] == [
        "t10k-images-idx3-ubyte.gz"
    ]


def test_truncated_download_keeps_no_file(local_mnist, tmp_path):
    local_mnist.truncate.add("t10k-images-idx3-ubyte.gz")
    with pytest.raises(
        DownloadError, match="Cannot download .*t10k-images-idx3-ubyte.gz"
    ):
        fetch_mnist("test", progress=False)
    assert list((tmp_path / "cache" / "mnist").iterdir()) == []


def test_missing_file_on_the_server_is_a_clear_error(local_mnist):
    del local_mnist.files["train-labels-idx1-ubyte.gz"]
    with pytest.raises(
        DownloadError,
        match=r"Cannot download http://127\.0\.0\.1:\d+/data/train-labels-idx1-ubyte.gz: "
        r"Not Found\. Check the network connection",
    ):
        fetch_mnist("train", progress=False)
    assert isinstance(DownloadError("x"), OSError)


def test_no_download_when_told_not_to(local_mnist):
    with pytest.raises(FileNotFoundError, match="download_if_missing=False"):
        fetch_mnist("test", download_if_missing=False)
    assert local_mnist.requests == []


@pytest.mark.parametrize("subset", ["validation", "t10k", None])
def test_bad_subset(local_mnist, subset):
    with pytest.raises(ValueError, match="subset must be 'train' or 'test'"):
        fetch_mnist(subset)


def test_bad_base_url(local_mnist):
    with pytest.raises(ValueError, match="base_url must be a non-empty URL"):
        fetch_mnist("test", base_url="", progress=False)


def test_get_data_home(monkeypatch, tmp_path):
    monkeypatch.setenv("NEUROPLUG_DATA", str(tmp_path / "from-env"))
    assert get_data_home() == tmp_path / "from-env" and (tmp_path / "from-env").is_dir()
    assert get_data_home(tmp_path / "given") == tmp_path / "given"
    monkeypatch.delenv("NEUROPLUG_DATA")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert get_data_home() == tmp_path / "home" / "neuroplug_data"
    (tmp_path / "a-file").write_text("")
    with pytest.raises(NotADirectoryError, match="must be a directory"):
        get_data_home(tmp_path / "a-file")


def test_published_checksums_cover_every_file():
    for dataset in (fetch.MNIST, fetch.FASHION_MNIST):
        assert sorted(dataset.files) == sorted(
            f"{kind}-{what}-idx{n}-ubyte.gz"
            for kind in ("train", "t10k")
            for what, n in (("images", 3), ("labels", 1))
        )
        assert all(len(s) == 64 and int(s, 16) >= 0 for s in dataset.files.values())
        assert dataset.base_url.endswith("/")


def test_train_command_downloads_mnist_and_estimates_the_duration(
    local_mnist, monkeypatch, tmp_path, capsys
):
    from neuroplug import train
    from neuroplug.cli import main

    monkeypatch.setattr(
        train, "_ESTIMATE_ABOVE", 10
    )  # the fixture's 30 images count as a large data set
    argv = [
        "train",
        "--data",
        "mnist",
        "--epochs",
        "2",
        "--layers",
        "conv:2x5x5",
        "maxpool:4",
        "relu",
        "--quiet",
        "--output",
        str(tmp_path / "model.npz"),
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert (
        f"Data: mnist: {N_TRAIN} training and {N_TEST} test samples (official train / test split"
        in out
    )
    assert "Expected duration: about " in out and "for 2 epochs" in out
    assert len(local_mnist.requests) == 4
    assert main(argv) == 0  # the second run reads the cache
    assert len(local_mnist.requests) == 4


def test_train_command_reports_a_failed_download(local_mnist, tmp_path, capsys):
    from neuroplug.cli import main

    del local_mnist.files["train-images-idx3-ubyte.gz"]
    assert (
        main(
            [
                "train",
                "--data",
                "fashion-mnist",
                "--quiet",
                "--output",
                str(tmp_path / "m.npz"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "cannot load data 'fashion-mnist'" in err and "Not Found" in err
