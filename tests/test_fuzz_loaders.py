"""Hypothesis fuzzing of the two file loaders: ``neuroplug.load`` and ``neuroplug.datasets.load_idx``.

Each test draws a damaged or forged file and checks one property:

* ``load`` either raises :class:`neuroplug.ModelFormatError` or returns an
  estimator whose outputs are finite (a flip in a zip field nobody reads,
  such as a timestamp, changes nothing);
* ``load_idx`` either raises ``ValueError`` or returns an array with exactly
  the shape its header declares;
* and neither ever allocates more than the file can hold: every forged
  size is refused before reading (the fuzz runs under a low ``max_bytes``
  where it matters, so an unchecked size would show up as MemoryError).

Draws: single and multiple byte flips anywhere in the file, truncation at
any length, appended garbage, and crafted containers (zip members with
forged ``.npy`` headers, names and compression; IDX headers with forged
type codes, dimension counts and sizes, raw and gzipped).  The example
count is modest for the suite; ``NEUROPLUG_FUZZ_EXAMPLES`` raises it and
``NEUROPLUG_FUZZ_RANDOM=1`` drops the fixed seed (benchmarks/fuzz_long.py).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import warnings
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import neuroplug
from neuroplug import ModelFormatError, persist
from neuroplug.datasets import load_idx
from neuroplug.estimators import RBM, CNNClassifier

EXAMPLES = int(os.environ.get("NEUROPLUG_FUZZ_EXAMPLES", "40"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=os.environ.get("NEUROPLUG_FUZZ_RANDOM", "0") in ("", "0"),
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
    database=None,
)
LIMIT = (
    1 << 24
)  # max_bytes under fuzzing: the real models are a few KB, a forged size is far larger

RNG = np.random.default_rng(0)
X = (RNG.random((24, 16)) < 0.5).astype(np.float64)
Y = np.arange(24) % 3


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Two small fitted models saved once: ``{name: (file bytes, estimator)}``."""
    root = tmp_path_factory.mktemp("fuzz-models")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cnn = CNNClassifier(
            ("conv:2x3x3", "relu", "dense:4"),
            input_shape=(1, 4, 4),
            max_iter=1,
            batch_size=8,
            random_state=0,
        ).fit(X, Y)
        rbm = RBM(4, max_iter=1, batch_size=8, random_state=0).fit(X)
    return {
        name: _Saved(neuroplug.save(est, root / name).read_bytes())
        for name, est in (("cnn", cnn), ("rbm", rbm))
    }


class _Saved(bytes):
    """A model file's bytes, shown by size in Hypothesis' reports rather than in full."""

    def __repr__(self) -> str:
        return f"<model file of {len(self)} bytes>"


def _check_load(path):
    """The property of ``load``: ModelFormatError, or a model whose outputs are finite."""
    try:
        est = neuroplug.load(path, max_bytes=LIMIT)
    except ModelFormatError as exc:
        assert str(path) in str(exc)
        return None
    out = est.predict_proba(X) if hasattr(est, "predict_proba") else est.transform(X)
    assert np.isfinite(out).all()
    return est


# ---------------------------------------------------------------------------------- model files
@FUZZ
@given(data=st.data(), name=st.sampled_from(["cnn", "rbm"]), n_flips=st.integers(1, 4))
def test_load_byte_flips(models, tmp_path, data, name, n_flips):
    raw = bytearray(models[name])
    for _ in range(n_flips):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] ^= data.draw(st.integers(1, 255))
    path = tmp_path / "flipped.npz"
    path.write_bytes(bytes(raw))
    _check_load(path)


@FUZZ
@given(
    name=st.sampled_from(["cnn", "rbm"]),
    cut=st.floats(0.0, 1.0, exclude_max=True),
    tail=st.binary(max_size=64),
)
def test_load_truncation_and_appended_bytes(models, tmp_path, name, cut, tail):
    raw = models[name]
    path = tmp_path / "cut.npz"
    damaged = raw[: int(len(raw) * cut)] + tail
    path.write_bytes(damaged)
    if not tail:
        with pytest.raises(ModelFormatError):  # a strictly shorter file never loads
            neuroplug.load(path, max_bytes=LIMIT)
    else:
        _check_load(
            path
        )  # garbage after the zip directory, or the cut bytes put back, may load intact


_DESCRS = [
    "<f8",
    "<f4",
    ">i4",
    "|u1",
    "|b1",
    "<c16",
    "<U3",
    "|S2",
    "|O",
    "<V8",
    "<M8[s]",
    "[('a', '<f4')]",
    "x",
]


@st.composite
def npy_members(draw):
    """A .npy member with a forged header: any dtype text, any shape, data of any length."""
    descr = draw(st.sampled_from(_DESCRS))
    shape = tuple(
        draw(
            st.lists(st.one_of(st.integers(0, 6), st.integers(-2, 10**13)), max_size=3)
        )
    )
    fortran = draw(st.booleans())
    descr_text = descr if descr.startswith("[") else repr(descr)
    header = (
        f"{{'descr': {descr_text}, 'fortran_order': {fortran}, 'shape': {shape!r}, }}"
    )
    if draw(st.booleans()):
        header = draw(st.text(max_size=60))  # not even a dict
    version = draw(
        st.sampled_from([b"\x01\x00", b"\x02\x00", b"\x03\x00", b"\x09\x00"])
    )
    body = header.encode("utf-8", "replace")
    size = (len(body) + 1).to_bytes(2 if version != b"\x02\x00" else 4, "little")
    data = draw(st.binary(max_size=96))
    return b"\x93NUMPY" + version + size + body + b"\n" + data


@FUZZ
@given(
    data=st.data(),
    name=st.sampled_from(["cnn", "rbm"]),
    member=st.sampled_from(
        [
            "__model__.npy",
            "__checksum__.npy",
            "a0.npy",
            "a1.npy",
            "zz.npy",
            "readme",
            "a0",
        ]
    ),
    compression=st.sampled_from(
        [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2]
    ),
)
def test_load_crafted_members(models, tmp_path, data, name, member, compression):
    """A member replaced or added with a forged .npy header, name or compression."""
    with zipfile.ZipFile(io.BytesIO(models[name])) as zf:
        members = {info.filename: zf.read(info) for info in zf.infolist()}
    members[member] = data.draw(npy_members())
    path = tmp_path / "crafted.npz"
    with zipfile.ZipFile(path, "w", compression) as zf:
        for key, value in members.items():
            zf.writestr(key, value)
    _check_load(path)


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "__array__",
                    "__tuple__",
                    "__dict__",
                    "__generator__",
                    "__float__",
                    "bit_generator",
                    "state",
                    "a0",
                    "x",
                ]
            ),
            inner,
            max_size=3,
        )
    ),
    max_leaves=12,
)


@FUZZ
@given(data=st.data(), name=st.sampled_from(["cnn", "rbm"]), value=_JSON)
def test_load_crafted_state_with_a_valid_checksum(models, tmp_path, data, name, value):
    """An attacker recomputes the checksum: any fitted attribute replaced by any JSON tree."""
    with np.load(io.BytesIO(models[name]), allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    meta = json.loads(arrays.pop("__model__").tobytes())
    arrays.pop("__checksum__")
    state = meta["state"]["__dict__"]
    state[data.draw(st.sampled_from(sorted(state)))] = value
    meta_bytes = json.dumps(meta).encode()
    checksum = persist._checksum(meta_bytes, arrays).encode()
    path = tmp_path / "forged.npz"
    np.savez(
        path,
        __model__=np.frombuffer(meta_bytes, np.uint8),
        __checksum__=np.frombuffer(checksum, np.uint8),
        **arrays,
    )
    _check_load(path)


# ------------------------------------------------------------------------------------ IDX files
_IDX_CODES = [0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E]
_ITEMSIZE = {0x08: 1, 0x09: 1, 0x0B: 2, 0x0C: 4, 0x0D: 4, 0x0E: 8}


def _idx_bytes(shape, code=0x08, data=None):
    header = bytes([0, 0, code, len(shape)]) + np.array(shape, ">u4").tobytes()
    n = int(np.prod(shape)) * _ITEMSIZE[code]
    return (
        header + (bytes(range(256)) * (n // 256 + 1))[:n]
        if data is None
        else header + data
    )


def _check_idx(path):
    """The property of ``load_idx``: ValueError, or an array of the declared shape and a native dtype."""
    try:
        arr = load_idx(path, max_bytes=LIMIT)
    except ValueError as exc:
        assert str(path) in str(exc)
        return None
    assert arr.dtype.isnative
    return arr


@FUZZ
@given(data=st.data(), gz=st.booleans(), n_flips=st.integers(1, 3))
def test_load_idx_byte_flips(tmp_path, data, gz, n_flips):
    raw = _idx_bytes((3, 5, 4))
    if gz:
        raw = gzip.compress(raw)
    raw = bytearray(raw)
    for _ in range(n_flips):
        raw[data.draw(st.integers(0, len(raw) - 1))] ^= data.draw(st.integers(1, 255))
    path = tmp_path / "flipped"
    path.write_bytes(bytes(raw))
    arr = _check_idx(path)
    if arr is not None and not gz:
        # An uncompressed file that loads declares exactly what it holds.
        assert 4 + 4 * arr.ndim + arr.nbytes == len(raw)


@FUZZ
@given(
    gz=st.booleans(),
    cut=st.floats(0.0, 1.0, exclude_max=True),
    tail=st.binary(max_size=16),
)
def test_load_idx_truncation_and_appended_bytes(tmp_path, gz, cut, tail):
    raw = _idx_bytes((4, 6))
    if gz:
        raw = gzip.compress(raw)
    path = tmp_path / "cut"
    path.write_bytes(raw[: int(len(raw) * cut)] + tail)
    if not tail and not (gz and cut == 0.0):
        with pytest.raises(ValueError):
            load_idx(path, max_bytes=LIMIT)
    else:
        _check_idx(path)


@FUZZ
@given(
    code=st.sampled_from(_IDX_CODES + [0x00, 0x0A, 0xFF]),
    dims=st.lists(
        st.one_of(st.integers(0, 5), st.integers(0, 2**32 - 1)), min_size=0, max_size=4
    ),
    extra=st.integers(-3, 3),
    gz=st.booleans(),
    header_ndim=st.one_of(st.none(), st.integers(0, 255)),
)
def test_load_idx_crafted_headers(tmp_path, code, dims, extra, gz, header_ndim):
    """Forged type codes, dimension counts and sizes; data a few bytes off what the header says."""
    itemsize = _ITEMSIZE.get(code, 1)
    n = int(np.prod(dims, dtype=object)) * itemsize if dims else 0
    n = max(0, min(n, 4096) + extra)
    header = bytes([0, 0, code, len(dims) if header_ndim is None else header_ndim])
    raw = header + np.array(dims, ">u4").tobytes() + bytes(n)
    if gz:
        raw = gzip.compress(raw)
    path = tmp_path / "forged"
    path.write_bytes(raw)
    arr = _check_idx(path)
    if arr is not None and header_ndim is None:
        assert arr.shape == tuple(dims)
