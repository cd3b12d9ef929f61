"""The bad-input catalogue: every public estimator and the ``neuroplug train`` command.

Each kind of bad input gives a ``ValueError`` / ``TypeError`` whose message
names the problem, or works where scikit-learn's convention says it should
(and then every output is finite): never a crash, a traceback out of the
command line, or a silent NaN.

Kinds: NaN / inf, empty arrays, one sample, one class, wrong
``input_shape``, mismatched feature counts and image shapes at predict time,
sparse matrices, object and complex dtypes, integer images 0-255, huge
values, 1-D and 5-D ``X``, labels of mixed types, ``y`` of the wrong length
or with NaN, calls before ``fit``, invalid hyper-parameters and invalid
method arguments.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import re
import warnings
import zipfile

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import NotFittedError
from sklearn.utils import get_tags

import neuroplug.estimators as estimators
from neuroplug.estimators import (
    DBN,
    RBM,
    CNNClassifier,
    CNNRegressor,
    ConvDBN,
    ConvRBM,
    DBNClassifier,
    SigmoidBeliefNet,
)

CASES = {
    "CNNClassifier": lambda: CNNClassifier(
        ("conv:2x3x3", "relu", "maxpool:2", "dense:4"),
        max_iter=1,
        batch_size=8,
        random_state=0,
    ),
    "CNNRegressor": lambda: CNNRegressor(
        ("conv:2x3x3", "relu", "dense:4"), max_iter=1, batch_size=8, random_state=0
    ),
    "DBNClassifier": lambda: DBNClassifier(
        (4,), pretrain_max_iter=1, max_iter=1, batch_size=8, random_state=0
    ),
    "RBM": lambda: RBM(4, max_iter=1, batch_size=8, random_state=0),
    "DBN": lambda: DBN((4, 3), max_iter=1, batch_size=8, random_state=0),
    "SigmoidBeliefNet": lambda: SigmoidBeliefNet(
        (4,), max_iter=1, batch_size=8, random_state=0
    ),
    "ConvRBM": lambda: ConvRBM(
        2, kernel_size=3, pool_size=2, max_iter=1, batch_size=8, random_state=0
    ),
    "ConvDBN": lambda: ConvDBN(
        (2,), kernel_size=3, pool_size=1, max_iter=1, batch_size=8, random_state=0
    ),
}
NAMES = sorted(CASES)
CLASSIFIERS = ["CNNClassifier", "DBNClassifier"]
SUPERVISED = CLASSIFIERS + ["CNNRegressor"]
OUTPUT_METHODS = (
    "predict",
    "predict_proba",
    "decision_function",
    "transform",
    "score_samples",
)

RNG = np.random.default_rng(0)
X = (RNG.random((24, 16)) < np.linspace(0.2, 0.8, 16)).astype(
    np.float64
)  # 4x4 binary images, flattened
Y_CLS = np.arange(24) % 3
Y_REG = X[:, :3].sum(axis=1)


def _y(name, n=24):
    if name == "CNNRegressor":
        return Y_REG[:n]
    return Y_CLS[:n] if name in CLASSIFIERS else None


def _fit(est, X_, y_=None):
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore"
        )  # convergence and data-conversion warnings are not the point here
        return est.fit(X_) if y_ is None else est.fit(X_, y_)


def _outputs(est, X_):
    out = {}
    for method in OUTPUT_METHODS:
        if hasattr(est, method):
            out[method] = np.asarray(getattr(est, method)(X_))
    return out


def _assert_works(est, X_):
    """A fit that 'works' predicts finite values of the right length."""
    outs = _outputs(est, X_)
    assert outs
    for method, value in outs.items():
        assert value.shape[0] == X_.shape[0], method
        if value.dtype.kind in "fc":
            assert np.isfinite(value).all(), f"{method} returned non-finite values"


def _assert_clear_error(exc_info, pattern):
    assert isinstance(exc_info.value, (ValueError, TypeError)), repr(exc_info.value)
    assert re.search(pattern, str(exc_info.value)), (
        f"{pattern!r} not in: {exc_info.value}"
    )


@pytest.fixture(scope="module")
def fitted():
    return {name: _fit(CASES[name](), X, _y(name)) for name in NAMES}


def test_every_public_estimator_is_in_the_catalogue():
    assert set(CASES) == set(estimators.__all__)


# ------------------------------------------------------------------------------ fit: bad X
def _nan():
    a = X.copy()
    a[3, 5] = np.nan
    return a


def _inf():
    a = X.copy()
    a[0, 0] = -np.inf
    return a


FIT_ERRORS = {
    "nan": (_nan, r"Input X contains NaN"),
    "inf": (_inf, r"Input X contains infinity"),
    "empty": (lambda: X[:0], r"0 sample\(s\)"),
    "sparse": (lambda: sp.csr_matrix(X), r"Sparse data was passed"),
    "object_strings": (
        lambda: np.full(X.shape, "a", dtype=object),
        r"could not convert string to float",
    ),
    "complex": (lambda: X.astype(np.complex128), r"Complex data not supported"),
    "1d": (lambda: X[:, 0], r"Expected 2D array, got 1D array"),
    "5d": (
        lambda: X.reshape(24, 1, 1, 4, 4),
        r"dim 5|2-D .*4-D|Received: X\.shape=\(24, 1, 1, 4, 4\)",
    ),
}


@pytest.mark.parametrize("kind", sorted(FIT_ERRORS))
@pytest.mark.parametrize("name", NAMES)
def test_fit_refuses_bad_X(name, kind):
    make, pattern = FIT_ERRORS[kind]
    X_bad = make()
    y = _y(name, X_bad.shape[0]) if kind != "1d" else _y(name)
    if kind == "sparse" and get_tags(CASES[name]()).input_tags.sparse:
        _fit(
            CASES[name](), X_bad, y
        )  # sparse input is data these estimators accept (densified per batch)
        return
    with pytest.raises((ValueError, TypeError)) as info:
        _fit(CASES[name](), X_bad, y)
    _assert_clear_error(info, pattern)


FIT_WORKS = {
    "one_sample": lambda: X[:1],
    "object_numbers": lambda: X.astype(object),
    "list_of_lists": lambda: X.tolist(),
    "bool": lambda: X.astype(bool),
    "float16": lambda: X.astype(np.float16),
    "float32": lambda: X.astype(np.float32),
    "fortran_order": lambda: np.asfortranarray(X),
    "strided_view": lambda: np.repeat(X, 2, axis=1)[:, ::2],
    "read_only": lambda: _read_only(X),
}


def _read_only(a):
    a = a.copy()
    a.flags.writeable = False
    return a


@pytest.mark.parametrize("kind", sorted(FIT_WORKS))
@pytest.mark.parametrize("name", NAMES)
def test_fit_accepts_what_scikit_learn_accepts(name, kind):
    X_ok = FIT_WORKS[kind]()
    n = len(X_ok)
    est = _fit(CASES[name](), X_ok, _y(name, n))
    _assert_works(est, X)


# Integer images 0..255: the CNNs train on them (scaling is the user's choice, as in scikit-learn's MLP);
# the RBMs accept them as scikit-learn's BernoulliRBM does; the sigmoid belief net binarizes them;
# ConvRBM/ConvDBN (Bernoulli units) refuse values outside [0, 1] and say how to scale.
UINT8_REFUSED = {"ConvRBM": r"needs X in \[0, 1\]", "ConvDBN": r"needs X in \[0, 1\]"}


@pytest.mark.parametrize("name", NAMES)
def test_integer_images_0_255(name):
    images = (X * 255).astype(np.uint8)
    if name in UINT8_REFUSED:
        with pytest.raises(ValueError) as info:
            _fit(CASES[name](), images, _y(name))
        _assert_clear_error(info, UINT8_REFUSED[name])
    else:
        _assert_works(_fit(CASES[name](), images, _y(name)), images)


@pytest.mark.parametrize("scale", [1e30, 1e300])
@pytest.mark.parametrize("name", NAMES)
def test_huge_values_never_give_silent_nan(name, scale):
    """Huge but finite values either train to finite outputs or stop with an error that names the cause."""
    huge = X * scale
    try:
        est = _fit(CASES[name](), huge, _y(name))
    except (ValueError, TypeError) as exc:
        assert re.search(
            r"diverged|infinity or a value too large|\[0, 1\]|scal", str(exc)
        ), str(exc)
    else:
        _assert_works(est, huge)
        _assert_works(est, X)


# ------------------------------------------------------------------------------ fit: bad y
@pytest.mark.parametrize("name", SUPERVISED)
def test_y_of_the_wrong_length(name):
    with pytest.raises(ValueError) as info:
        _fit(CASES[name](), X, _y(name)[:10])
    _assert_clear_error(info, r"inconsistent numbers of samples: \[24, 10\]")


@pytest.mark.parametrize("name", SUPERVISED)
def test_y_with_nan(name):
    y = _y(name).astype(np.float64)
    y[2] = np.nan
    with pytest.raises(ValueError) as info:
        _fit(CASES[name](), X, y)
    _assert_clear_error(info, r"Input y contains NaN")


@pytest.mark.parametrize("name", SUPERVISED)
def test_y_missing(name):
    with pytest.raises(ValueError) as info:
        CASES[name]().fit(X, None)
    _assert_clear_error(info, r"requires y to be passed|y should be|y=None")


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_labels_of_mixed_types(name):
    y = np.array([1, "a", 2.5] * 8, dtype=object)
    with pytest.raises(ValueError) as info:
        _fit(CASES[name](), X, y)
    _assert_clear_error(info, r"[Ll]abel type|Mix of label input types")


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_string_labels_work(name):
    y = np.array(["cat", "dog", "emu"])[Y_CLS]
    est = _fit(CASES[name](), X, y)
    assert set(est.predict(X)) <= {"cat", "dog", "emu"}


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_one_class_works(name):
    """scikit-learn's convention: a classifier fitted on one class predicts that class."""
    est = _fit(CASES[name](), X, np.full(24, 7))
    assert (est.predict(X) == 7).all()
    _assert_works(est, X)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_two_target_columns_for_a_classifier(name):
    with pytest.raises(ValueError) as info:
        _fit(CASES[name](), X, np.c_[Y_CLS, Y_CLS])
    _assert_clear_error(
        info, r"one target column|y\.shape=\(24, 2\)|multilabel|multiclass-multioutput"
    )


def test_regressor_with_string_targets():
    with pytest.raises(ValueError) as info:
        _fit(CASES["CNNRegressor"](), X, np.array(["a"] * 24))
    _assert_clear_error(info, r"could not convert string to float")


# ----------------------------------------------------------------------- predict: bad X
def _other_image_shape():
    return X.reshape(24, 1, 2, 8)


PREDICT_ERRORS = {
    "nan": (_nan, r"Input X contains NaN"),
    "features": (
        lambda: X[:, :9],
        r"X has 9 features, but \w+ is expecting 16 features",
    ),
    "sparse": (lambda: sp.csr_matrix(X), r"Sparse data was passed"),
    "empty": (lambda: X[:0], r"0 sample\(s\)"),
    "1d": (lambda: X[0], r"Expected 2D array, got 1D array"),
    "complex": (lambda: X.astype(np.complex64), r"Complex data not supported"),
    "other_image_shape": (_other_image_shape, r"images of shape \(1, 2, 8\)|dim 4"),
}


@pytest.mark.parametrize("kind", sorted(PREDICT_ERRORS))
@pytest.mark.parametrize("name", NAMES)
def test_predict_refuses_bad_X(fitted, name, kind):
    make, pattern = PREDICT_ERRORS[kind]
    est = fitted[name]
    method = next(m for m in OUTPUT_METHODS if hasattr(est, m))
    if kind == "sparse" and get_tags(est).input_tags.sparse:
        assert np.all(
            np.isfinite(getattr(est, method)(make()))
        )  # accepted, densified per batch
        return
    with pytest.raises((ValueError, TypeError)) as info:
        getattr(est, method)(make())
    _assert_clear_error(info, pattern)


@pytest.mark.parametrize("name", NAMES)
def test_predict_on_integer_images_and_huge_values_is_finite(fitted, name):
    est = fitted[name]
    _assert_works(est, (X * 255).astype(np.uint8))
    _assert_works(est, X * 1e30)


@pytest.mark.parametrize("name", NAMES)
def test_methods_before_fit(name):
    est = CASES[name]()
    for method in OUTPUT_METHODS:
        if hasattr(est, method):
            with pytest.raises(NotFittedError, match="not fitted"):
                getattr(est, method)(X)


# ---------------------------------------------------------------------- hyper-parameters
COMMON_BAD_PARAMS = [
    ("learning_rate", -1.0),
    ("learning_rate", float("nan")),
    ("learning_rate", "fast"),
    ("batch_size", 0),
    ("batch_size", 1.5),
    ("max_iter", 0),
    ("max_iter", "10"),
    ("max_iter", -1),
    ("n_iter", -1),
    ("backend", "nosuch"),
    ("backend", ""),
    ("backend", 3),
    ("n_threads", 0),
    ("n_threads", "x"),
    ("dtype", "float16"),
    ("random_state", "seed"),
    ("verbose", "loud"),
]
SPECIFIC_BAD_PARAMS = {
    "CNNClassifier": [
        ("layers", "conv:2x3x3", r"layers must be a tuple"),
        ("layers", ("nosuch:3",), r"Unknown layer 'nosuch'\. Known layers: .*conv"),
        ("layers", ("conv:0x3x3",), r"Invalid layer spec 'conv:0x3x3'"),
        ("layers", ("conv:2x9x9",), r"kernel \(9, 9\) is larger than"),
        ("layers", (3,), r"Each entry of layers must be"),
        ("layers", ("dropout:1.5",), r"Invalid layer spec 'dropout:1\.5'"),
        ("input_shape", (0, 4, 4), r"input_shape must be"),
        (
            "input_shape",
            (2, 4, 4),
            r"input_shape=\(2, 4, 4\) holds 32 values per sample but X has 16 features",
        ),
        ("input_shape", "abc", r"input_shape"),
        ("optimizer", "rmsprop", r"optimizer"),
        ("lr_schedule", "weird", r"lr_schedule"),
        ("augment", "bogus=1", r"augment"),
        (
            "augment",
            "shift=4",
            r"augment shift must be smaller than the images \(4x4 pixels\)",
        ),
        ("augment", "shift=inf", r"shift must be a finite number >= 0"),
        (
            "pretrainer",
            "nosuch",
            r"Unknown pretrainer 'nosuch'\. Known pretrainers: .*dbn",
        ),
        ("validation_fraction", 1.5, r"validation_fraction"),
        ("alpha", -1.0, r"alpha"),
    ],
    "CNNRegressor": [
        ("layers", "dense:4", r"layers must be a tuple"),
        ("input_shape", (1, 4, 5), r"holds 20 values"),
    ],
    "DBNClassifier": [
        ("hidden_layer_sizes", (), r"hidden_layer_sizes"),
        ("hidden_layer_sizes", (0,), r"hidden_layer_sizes"),
        ("pretrain_visible", "poisson", r"pretrain_visible"),
        ("pretrain_k", 0, r"pretrain_k"),
    ],
    "RBM": [
        ("n_components", 0, r"n_components"),
        ("n_components", "4", r"n_components"),
        ("visible", "poisson", r"visible"),
        ("k", 0, r"'k'"),
        ("momentum", 1.0, r"momentum"),
    ],
    "DBN": [
        ("hidden_layer_sizes", (), r"hidden_layer_sizes"),
        ("hidden_layer_sizes", (4, -1), r"hidden_layer_sizes"),
        ("layer_params", {"nope": 1}, r"unknown keys \['nope'\]"),
        ("layer_params", [{"k": 1}], r"one dict per hidden layer"),
    ],
    "SigmoidBeliefNet": [
        ("hidden_layer_sizes", (0,), r"hidden_layer_sizes"),
        ("n_importance_samples", 0, r"n_importance_samples"),
        ("binarize", "x", r"binarize"),
    ],
    "ConvRBM": [
        ("filters", 0, r"filters"),
        ("kernel_size", (3, 0), r"kernel_size"),
        ("kernel_size", 9, r"kernel_size \(9, 9\) is larger"),
        ("pool_size", 0, r"pool_size"),
        ("sparsity_target", 1.5, r"sparsity_target"),
        ("input_shape", (1, 4, 5), r"holds 20 values"),
    ],
    "ConvDBN": [
        ("filters", (), r"filters"),
        ("filters", (0,), r"filters"),
        ("kernel_size", (3, 3, 3), r"kernel_size"),
    ],
}


# max_iter=0 is valid for the convolutional RBMs: it initialises the model from the data's
# marginals without training (tests/estimators/test_crbm.py relies on it).
VALID_FOR = {("max_iter", 0): {"ConvRBM", "ConvDBN"}}


def _bad_param_cases():
    for name in NAMES:
        params = CASES[name]().get_params()
        for param, value in COMMON_BAD_PARAMS:
            if param in params and name not in VALID_FOR.get((param, value), ()):
                pattern = (
                    r"Unknown backend 'nosuch'\. Known backends: .*cpu"
                    if value == "nosuch"
                    else re.escape(param)
                )
                yield pytest.param(
                    name, param, value, pattern, id=f"{name}-{param}={value!r}"
                )
        for param, value, pattern in SPECIFIC_BAD_PARAMS.get(name, []):
            yield pytest.param(
                name, param, value, pattern, id=f"{name}-{param}={value!r}"
            )


@pytest.mark.parametrize("name, param, value, pattern", list(_bad_param_cases()))
def test_invalid_hyper_parameters(name, param, value, pattern):
    est = CASES[name]().set_params(**{param: value})
    with pytest.raises((ValueError, TypeError)) as info:
        _fit(est, X, _y(name))
    _assert_clear_error(info, pattern)


# --------------------------------------------------------------------- method arguments
@pytest.mark.parametrize("name", ["RBM", "DBN", "SigmoidBeliefNet"])
@pytest.mark.parametrize("n_samples", [0, -1, 2.5, "3"])
def test_sample_refuses_bad_counts(fitted, name, n_samples):
    with pytest.raises(ValueError) as info:
        fitted[name].sample(n_samples)
    _assert_clear_error(info, r"n_samples must be an int >= 1\. Received: n_samples=")


def test_rbm_method_arguments(fitted):
    rbm = fitted["RBM"]
    for call, pattern in [
        (lambda: rbm.gibbs(X, n_steps=-1), r"n_steps must be an int >= 0"),
        (
            lambda: rbm.score_samples(X, method="x"),
            r"method must be .*Received: method='x'",
        ),
        (lambda: rbm.log_partition("x"), r"method must be .*Received: method='x'"),
        (lambda: rbm.gibbs(X[:, :3]), r"X has 3 features"),
    ]:
        with pytest.raises(ValueError) as info:
            call()
        _assert_clear_error(info, pattern)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_partial_fit_needs_classes_and_keeps_them(name):
    est = CASES[name]()
    with pytest.raises(ValueError) as info:
        est.partial_fit(X, Y_CLS)
    _assert_clear_error(
        info, r"classes must be passed on the first call to partial_fit"
    )
    est.partial_fit(X, Y_CLS, classes=[0, 1, 2])
    with pytest.raises(ValueError) as info:
        est.partial_fit(X, Y_CLS + 5)
    _assert_clear_error(info, r"labels that are not in")


# ---------------------------------------------------------------------------------- CLI
FAST = ["train", "-q", "--epochs", "1", "--layers", "dense:4", "relu", "--threads", "1"]


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


@pytest.fixture
def cli(capsys):
    from neuroplug.cli import main

    def run(*args, base=FAST):
        code = main([*base, *args])
        captured = capsys.readouterr()
        return code, captured.err

    return run


CLI_OPTION_ERRORS = [
    (["--epochs", "0"], r"max_iter"),
    (["--batch-size", "-1"], r"batch_size"),
    (["--learning-rate", "-1"], r"learning_rate"),
    (["--threads", "0"], r"n_threads"),
    (["--layers", "nosuch:3"], r"Unknown layer 'nosuch'\. Known layers: .*conv"),
    (["--layers", "conv:0x3x3"], r"Invalid layer spec 'conv:0x3x3'"),
    (["--backend", "nosuch"], r"Unknown backend 'nosuch'\. Known backends: .*cpu"),
    (["--pretrainer", "nosuch"], r"Unknown pretrainer 'nosuch'"),
    (["--augment", "shift=x"], r"augment value for 'shift' must be a number"),
    (["--test-size", "2"], r"--test-size must be between 0 and 1"),
    (["--data", "/nonexistent/data/dir.npz"], r"cannot load data"),
    (
        ["--augment", "shift=1e9"],
        r"augment shift must be smaller than the images \(8x8 pixels\)",
    ),
    (
        ["--augment", "shift=inf"],
        r"shift must be a finite number >= 0\. Received: shift=inf",
    ),
    (
        ["--augment", "rotate=200"],
        r"rotate must be a number in \[0\.0, 180\.0\]\. Received: rotate=200\.0",
    ),
    (["--augment", "scale=1"], r"scale must be a number in \[0\.0, 0\.999\]"),
    (
        ["--layers", "dense:1000000000"],
        r"the network needs about [\d.]+ GiB to train \(75,000,000,010 parameters for "
        r"inputs of shape \(1, 8, 8\)\), more than the [\d.]+ GiB of memory available",
    ),
    (
        ["--layers", "conv:100000x8x8", "dense:100000"],
        r"the network needs about 149\.\d GiB to train \(10,007,600,010 parameters .* than the 8\.0 GiB",
    ),
]


@pytest.mark.parametrize(
    "args, pattern", CLI_OPTION_ERRORS, ids=[" ".join(a) for a, _ in CLI_OPTION_ERRORS]
)
def test_cli_bad_options(cli, tmp_path, monkeypatch, args, pattern):
    import neuroplug.train

    monkeypatch.setattr(
        neuroplug.train, "_available_memory", lambda: 8 * 2**30
    )  # the same verdict on any machine
    code, err = cli(*args, "--output", str(tmp_path / "m.npz"))
    assert code == 2
    assert err.startswith("neuroplug train: error:") and re.search(pattern, err), err
    assert not (tmp_path / "m.npz").exists()


def _cli_data_cases(tmp_path):
    rng = np.random.default_rng(0)
    Xd = rng.random((40, 16))
    y = np.arange(40) % 2
    nan = Xd.copy()
    nan[::7, 3] = np.nan  # in both the training and the test part
    return {
        "nan": (_npz(tmp_path / "nan.npz", X=nan, y=y), r"Input X contains NaN"),
        "inf": (
            _npz(tmp_path / "inf.npz", X=np.where(nan != nan, np.inf, Xd), y=y),
            r"infinity",
        ),
        "object": (
            _npz(tmp_path / "obj.npz", X=np.array([{"a": 1}] * 40, dtype=object), y=y),
            r"[Oo]bject arrays|pickle",
        ),
        "1d": (_npz(tmp_path / "oned.npz", X=Xd[:, 0], y=y), r"Expected 2D array"),
        "mismatch": (
            _npz(tmp_path / "mismatch.npz", X=Xd, y=y[:10]),
            r"inconsistent numbers of samples",
        ),
        "no_y": (_npz(tmp_path / "noy.npz", X=Xd), r"must hold arrays 'X' and 'y'"),
        "strings": (
            _npz(tmp_path / "str.npz", X=np.full((40, 16), "a"), y=y),
            r"could not convert string to float",
        ),
        "complex": (
            _npz(tmp_path / "complex.npz", X=Xd.astype(complex), y=y),
            r"Complex data not supported",
        ),
        "empty": (
            _npz(tmp_path / "empty.npz", X=Xd[:0], y=y[:0]),
            r"n_samples=0|0 sample",
        ),
        "sparse_as_npz": (str(_sparse_file(tmp_path, Xd)), r"cannot load data"),
        "garbage": (
            _write(tmp_path / "garbage.npz", b"not a zip file"),
            r"cannot load data",
        ),
    }


def _sparse_file(tmp_path, Xd):
    path = tmp_path / "sparse.npz"
    sp.save_npz(path, sp.csr_matrix(Xd))  # a scipy sparse file: no X / y arrays
    return path


def _write(path, data):
    path.write_bytes(data)
    return str(path)


CLI_DATA_KINDS = [
    "nan",
    "inf",
    "object",
    "1d",
    "mismatch",
    "no_y",
    "strings",
    "complex",
    "empty",
    "sparse_as_npz",
    "garbage",
]


@pytest.mark.parametrize("kind", CLI_DATA_KINDS)
def test_cli_bad_data(cli, tmp_path, kind):
    path, pattern = _cli_data_cases(tmp_path)[kind]
    code, err = cli("--data", path, "--output", str(tmp_path / "m.npz"))
    assert code == 2
    assert err.startswith("neuroplug train: error:") and re.search(pattern, err), err
    assert not (tmp_path / "m.npz").exists()


@pytest.mark.parametrize("kind", ["uint8_images", "one_class", "string_labels"])
def test_cli_data_that_works(cli, tmp_path, kind):
    rng = np.random.default_rng(0)
    Xd = rng.random((40, 16))
    if kind == "uint8_images":
        data = {"X": (Xd * 255).astype(np.uint8), "y": np.arange(40) % 2}
    elif kind == "one_class":
        data = {"X": Xd, "y": np.zeros(40, dtype=int)}
    else:
        data = {"X": Xd, "y": np.array(["yes", "no"])[np.arange(40) % 2]}
    out = tmp_path / "m.npz"
    code, err = cli("--data", _npz(tmp_path / "d.npz", **data), "--output", str(out))
    assert code == 0, err
    from neuroplug import load

    assert np.isfinite(load(out).predict_proba(data["X"].astype(float))).all()


@pytest.mark.parametrize(
    "args, pattern",
    [
        (["--epochs", "x"], r"invalid int value: 'x'"),
        (["--optimizer", "rmsprop"], r"invalid choice: 'rmsprop'"),
    ],
)
def test_cli_unparseable_options_exit_2(capsys, args, pattern):
    from neuroplug.cli import main

    with pytest.raises(SystemExit) as info:
        main([*FAST, *args])
    assert info.value.code == 2
    assert re.search(pattern, capsys.readouterr().err)


def test_cli_unwritable_output(cli, tmp_path):
    (tmp_path / "file").write_text("x")
    code, err = cli(
        "--output", str(tmp_path / "file" / "model.npz")
    )  # a file where a directory should be
    assert (
        code in (1, 2)
        and err.startswith("neuroplug train: error:")
        and "model.npz" in err
    ), err


# --------------------------------------------------------------------------- model files
# Every bad model file gives neuroplug.ModelFormatError naming what was wrong (neuroplug.load
# reads declared sizes before data and checks the fitted state against neuroplug/_schema.py).
def _members(path):
    with zipfile.ZipFile(path) as zf:
        return {info.filename: zf.read(info) for info in zf.infolist()}


def _npy_bytes(arr=None, *, header_shape=None, dtype="<f8", data=b""):
    """A .npy member: an array's, or a raw header declaring ``header_shape`` followed by ``data``."""
    if arr is not None:
        buf = io.BytesIO()
        np.save(buf, arr, allow_pickle=True)
        return buf.getvalue()
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": dtype, "fortran_order": False, "shape": header_shape}
    )
    return buf.getvalue() + data


def _zip(path, members, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _edit_state(src, dst, edit):
    """A copy of the model ``src`` whose decoded JSON went through ``edit(meta, arrays)``, checksum recomputed."""
    from neuroplug import persist

    with np.load(src, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    meta = json.loads(arrays.pop("__model__").tobytes())
    arrays.pop("__checksum__")
    edit(meta, arrays)
    meta_bytes = json.dumps(meta).encode()
    checksum = persist._checksum(meta_bytes, arrays).encode()
    np.savez(
        dst,
        __model__=np.frombuffer(meta_bytes, np.uint8),
        __checksum__=np.frombuffer(checksum, np.uint8),
        **arrays,
    )
    return dst


def _state(meta):
    return meta["state"]["__dict__"]


def _set_generator_field(meta, arrays, field, value):
    _state(meta)["_rng"]["__generator__"]["__dict__"]["state"]["__dict__"][field] = (
        value
    )


def _mt19937_pos(meta, arrays):
    gen = _state(meta)["_rng"]["__generator__"]["__dict__"]
    key = np.arange(624, dtype=np.uint32)
    arrays["a_key"] = key
    gen.clear()
    gen.update(
        bit_generator="MT19937",
        state={"__dict__": {"key": {"__array__": "a_key"}, "pos": 10**8}},
    )


def _replace_array(meta, arrays, attr, value):
    arrays[_state(meta)[attr]["__array__"]] = value


def _first_weight_key(meta):
    return meta["state"]["__dict__"]["network_weights_"][0]["__dict__"]["W"][
        "__array__"
    ]


MODEL_FILE_ERRORS = {
    # The container.
    "not_npy_member": (
        lambda src, t: _zip(t, {**_members(src), "notes.txt": b"hello"}),
        r"member 'notes\.txt' is not a \.npy array",
    ),
    "huge_declared_shape": (
        lambda src, t: _zip(
            t, {**_members(src), "a9.npy": _npy_bytes(header_shape=(10**12,))}
        ),
        r"declares shape \(1000000000000,\) of float64 \(8000000000000 bytes\) but holds 0",
    ),
    "negative_shape": (
        lambda src, t: _zip(
            t, {**_members(src), "a9.npy": _npy_bytes(header_shape=(-3,))}
        ),
        r"negative dimension",
    ),
    "object_array": (
        lambda src, t: _zip(
            t, {**_members(src), "a9.npy": _npy_bytes(np.array([{}], dtype=object))}
        ),
        r"dtype object.*pickle",
    ),
    "lzma_member": (
        lambda src, t: _zip(t, _members(src), zipfile.ZIP_LZMA),
        r"compression method 14",
    ),
    "over_max_bytes": (
        lambda src, t: _zip(t, _members(src)),
        r"over the limit max_bytes=100",
    ),
    "no_checksum": (
        lambda src, t: _zip(
            t, {k: v for k, v in _members(src).items() if k != "__checksum__.npy"}
        ),
        r"no __checksum__ entry",
    ),
    "model_not_uint8": (
        lambda src, t: _zip(
            t, {**_members(src), "__model__.npy": _npy_bytes(np.zeros(3))}
        ),
        r"__model__ entry must be a 1-D uint8 array",
    ),
    # The fitted state (an attacker can recompute the checksum).
    "components_as_list": (
        lambda src, t: _edit_state(
            src, t, lambda m, a: _state(m).update(components_=[[0.0] * 16] * 4)
        ),
        r"components_ must be a 2-D float32 or float64 array\. Received: a list",
    ),
    "components_wrong_shape": (
        lambda src, t: _edit_state(
            src, t, lambda m, a: _replace_array(m, a, "components_", np.zeros((4, 15)))
        ),
        r"intercept_visible_ must have shape \(15,\)",
    ),
    "components_nan": (
        lambda src, t: _edit_state(
            src,
            t,
            lambda m, a: _replace_array(m, a, "components_", np.full((4, 16), np.nan)),
        ),
        r"components_ holds NaN or infinite values",
    ),
    "n_features_in_string": (
        lambda src, t: _edit_state(
            src, t, lambda m, a: _state(m).update(n_features_in_="16")
        ),
        r"n_features_in_ must be an int >= 1",
    ),
    "rbm_half_fitted": (
        lambda src, t: _edit_state(
            src, t, lambda m, a: _state(m).pop("intercept_hidden_")
        ),
        r"the fitted RBM lacks intercept_hidden_",
    ),
    "pcg64_state_too_large": (
        lambda src, t: _edit_state(
            src,
            t,
            lambda m, a: _set_generator_field(
                m, a, "state", {"__dict__": {"state": 2**200, "inc": 1}}
            ),
        ),
        r"state must be an int in \[0, 2\*\*128\)",
    ),
    "mt19937_pos_out_of_range": (
        lambda src, t: _edit_state(src, t, _mt19937_pos),
        r"pos must be an int in \[0, 624\]",
    ),
}
# Cases built from the fitted CNNClassifier rather than the RBM.
CNN_FILE_ERRORS = {
    "classes_missing": (
        lambda src, t: _edit_state(src, t, lambda m, a: _state(m).pop("classes_")),
        r"the fitted CNNClassifier lacks classes_",
    ),
    "classes_duplicated": (
        lambda src, t: _edit_state(
            src, t, lambda m, a: _replace_array(m, a, "classes_", np.array([0, 0, 1]))
        ),
        r"classes_ must hold distinct labels",
    ),
    "weights_wrong_shape": (
        lambda src, t: _edit_state(
            src,
            t,
            lambda m, a: a.update({_first_weight_key(m): np.zeros((2, 1, 2, 2))}),
        ),
        r"network_weights_\[0\]\['W'\] .* must be a float64 array of shape \(2, 1, 3, 3\)",
    ),
    "too_few_outputs": (
        lambda src, t: _edit_state(
            src, t, lambda m, a: _replace_array(m, a, "classes_", np.arange(5))
        ),
        r"the last layer must give 5 outputs",
    ),
    "input_shape_disagrees": (
        lambda src, t: _edit_state(
            src, t, lambda m, a: _state(m).update(input_shape_={"__tuple__": [1, 2, 8]})
        ),
        r"layers_\[0\] \(Conv2D.*cannot take the inputs of shape \(1, 2, 8\)",
    ),
    "rng_state_pos": (
        lambda src, t: _edit_state(
            src,
            t,
            lambda m, a: _state(m)["_rng_state"]["__dict__"].update(has_uint32=7),
        ),
        r"has_uint32 must be an int in \[0, 1\]",
    ),
}


@pytest.fixture(scope="module")
def saved_models(fitted, tmp_path_factory):
    from neuroplug import save

    root = tmp_path_factory.mktemp("models")
    return {name: save(fitted[name], root / name) for name in ("RBM", "CNNClassifier")}


@pytest.mark.parametrize("kind", sorted(MODEL_FILE_ERRORS) + sorted(CNN_FILE_ERRORS))
def test_load_refuses_bad_model_files(saved_models, tmp_path, kind):
    from neuroplug import ModelFormatError, load

    make, pattern = MODEL_FILE_ERRORS.get(kind) or CNN_FILE_ERRORS[kind]
    src = saved_models["CNNClassifier" if kind in CNN_FILE_ERRORS else "RBM"]
    bad = make(src, tmp_path / "bad.npz")
    with pytest.raises(ModelFormatError) as info:
        load(bad, max_bytes=100 if kind == "over_max_bytes" else None)
    assert re.search(pattern, str(info.value)), f"{pattern!r} not in: {info.value}"
    assert str(bad) in str(info.value)


def _idx(path, array):
    header = (
        bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    )
    path.write_bytes(header + array.astype(np.uint8).tobytes())
    return path


def _output_cases(tmp_path):
    """``{kind: (data, output, pattern)}``: outputs refused before any training."""
    data = _npz(
        tmp_path / "d.npz",
        X=np.random.default_rng(0).random((40, 16)),
        y=np.arange(40) % 2,
    )
    mnist = tmp_path / "mnist"
    mnist.mkdir()
    _idx(mnist / "t10k-images-idx3-ubyte", np.zeros((20, 4, 4)))
    with gzip.open(
        mnist / "t10k-labels-idx1-ubyte.gz", "wb"
    ) as fh:  # a suffix save() keeps
        fh.write(_idx(tmp_path / "labels", np.arange(20) % 2).read_bytes())
    (tmp_path / "adir").mkdir()
    return {
        "missing_directory": (
            "digits",
            str(tmp_path / "nope" / "m.npz"),
            r"the directory '.*nope' does not exist",
        ),
        "unwritable_directory": ("digits", "/proc/m.npz", r"cannot write in '/proc'"),
        "a_directory": (
            "digits",
            str(tmp_path / "adir"),
            r"--output must be a file path, not a directory",
        ),
        "the_npz_data_file": (
            data,
            data,
            r"is the data file '.*d\.npz'; saving would overwrite the data set",
        ),
        "the_npz_without_suffix": (data, data[:-4], r"is the data file '.*d\.npz'"),
        "an_idx_data_file": (
            str(mnist),
            str(mnist / "t10k-labels-idx1-ubyte.gz"),
            r"is the data file '.*t10k-labels-idx1-ubyte\.gz'",
        ),
    }


OUTPUT_KINDS = [
    "missing_directory",
    "unwritable_directory",
    "a_directory",
    "the_npz_data_file",
    "the_npz_without_suffix",
    "an_idx_data_file",
]


@pytest.mark.parametrize("kind", OUTPUT_KINDS)
def test_cli_refuses_an_output_it_could_not_write_before_training(cli, tmp_path, kind):
    if kind == "unwritable_directory" and not os.path.isdir("/proc"):
        pytest.skip("needs /proc")
    data, output, pattern = _output_cases(tmp_path)[kind]
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    code, err = cli("--data", data, "--output", output)
    assert code == 2
    assert err.startswith("neuroplug train: error:") and re.search(pattern, err), err
    assert "Test accuracy" not in err
    assert {
        p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")
    } == before  # nothing written, probe removed


def test_cli_uses_the_idx_files_own_image_shape(cli, tmp_path):
    """20x30 images train as 20x30 (a convolution sees the real rows and columns), not as a guessed 24x24."""
    rng = np.random.default_rng(0)
    _idx(tmp_path / "t10k-images-idx3-ubyte", rng.integers(0, 256, (40, 20, 30)))
    _idx(tmp_path / "t10k-labels-idx1-ubyte", np.arange(40) % 2)
    out = tmp_path / "m.npz"
    code, err = cli(
        "--data",
        str(tmp_path),
        "--output",
        str(out),
        base=[
            "train",
            "-q",
            "--epochs",
            "1",
            "--layers",
            "conv:2x3x3",
            "relu",
            "--threads",
            "1",
        ],
    )
    assert code == 0, err
    from neuroplug import load

    assert load(out).input_shape_ == (1, 20, 30)
