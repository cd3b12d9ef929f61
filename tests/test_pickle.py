"""Every public estimator, fitted or not, round-trips through pickle and joblib.

A round trip must give identical outputs (predictions, probabilities,
transforms, scores), keep the hyper-parameters, leave the original
estimator untouched, and an unfitted estimator must fit to the same model
after its round trip.  Joblib and Dask ship estimators to their workers
this way.
"""

from __future__ import annotations

import io
import pickle

import joblib
import numpy as np
import pytest
from sklearn.base import clone

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

# One tiny, fast configuration per public estimator: 4x4 images, a few units, 1-2 epochs.
CASES = {
    "CNNClassifier": lambda: CNNClassifier(
        ("conv:2x3x3,padding=same", "relu", "maxpool:2", "dense:4", "dropout:0.25"),
        input_shape=(1, 4, 4),
        max_iter=2,
        batch_size=8,
        random_state=0,
    ),
    "CNNRegressor": lambda: CNNRegressor(
        ("conv:2x3x3", "tanh", "dense:4"),
        input_shape=(1, 4, 4),
        max_iter=2,
        batch_size=8,
        random_state=0,
    ),
    "DBNClassifier": lambda: DBNClassifier(
        (5,), pretrain_max_iter=1, max_iter=2, batch_size=8, random_state=0
    ),
    "RBM": lambda: RBM(4, max_iter=2, batch_size=8, random_state=0),
    "DBN": lambda: DBN((5, 3), max_iter=1, batch_size=8, random_state=0),
    "SigmoidBeliefNet": lambda: SigmoidBeliefNet(
        (4, 2), max_iter=2, batch_size=8, random_state=0
    ),
    "ConvRBM": lambda: ConvRBM(
        2,
        kernel_size=3,
        pool_size=2,
        max_iter=1,
        batch_size=8,
        input_shape=(1, 4, 4),
        random_state=0,
    ),
    "ConvDBN": lambda: ConvDBN(
        (2, 2),
        kernel_size=(2, 2),
        pool_size=(1, 1),
        max_iter=1,
        batch_size=8,
        input_shape=(1, 4, 4),
        random_state=0,
    ),
}
SUPERVISED = {"CNNClassifier", "CNNRegressor", "DBNClassifier"}
OUTPUT_METHODS = (
    "predict",
    "predict_proba",
    "decision_function",
    "transform",
    "score_samples",
    "free_energy",
)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = (rng.random((32, 16)) < np.linspace(0.2, 0.8, 16)).astype(np.float64)
    y_cls = np.array(["a", "b", "c", "d"] * 8)
    y_reg = X[:, :4].sum(axis=1)
    return X, y_cls, y_reg


def _fit(est, name, data):
    X, y_cls, y_reg = data
    if name == "CNNRegressor":
        return est.fit(X, y_reg)
    if name in SUPERVISED:
        return est.fit(X, y_cls)
    return est.fit(X)


def _outputs(est, X):
    out = {}
    for method in OUTPUT_METHODS:
        if hasattr(est, method):
            out[method] = np.asarray(getattr(est, method)(X))
    assert out, f"{type(est).__name__} has no output method"
    return out


def _assert_same_outputs(a, b):
    assert a.keys() == b.keys()
    for method in a:
        np.testing.assert_array_equal(a[method], b[method], err_msg=method)


def _round_trips():
    def by_pickle(est):
        return pickle.loads(pickle.dumps(est, protocol=pickle.HIGHEST_PROTOCOL))

    def by_joblib(est):
        buf = io.BytesIO()
        joblib.dump(est, buf)
        buf.seek(0)
        return joblib.load(buf)

    def by_joblib_compressed(est):
        buf = io.BytesIO()
        joblib.dump(est, buf, compress=3)
        buf.seek(0)
        return joblib.load(buf)

    return {
        "pickle": by_pickle,
        "joblib": by_joblib,
        "joblib-compressed": by_joblib_compressed,
    }


ROUND_TRIPS = _round_trips()


def test_every_public_estimator_has_a_case():
    # A new estimator fails here until it is added to CASES (and so to every round-trip test).
    assert set(CASES) == set(estimators.__all__)


@pytest.mark.parametrize("how", sorted(ROUND_TRIPS))
@pytest.mark.parametrize("name", sorted(CASES))
def test_fitted_round_trip_predicts_identically(name, how, data):
    est = _fit(CASES[name](), name, data)
    X = data[0]
    before = _outputs(est, X)
    copy = ROUND_TRIPS[how](est)
    assert type(copy) is type(est)
    assert copy.get_params() == est.get_params()
    _assert_same_outputs(before, _outputs(copy, X))
    # The copy carries only NumPy state: fitted attributes are equal arrays.
    for key, value in vars(est).items():
        if (
            key.endswith("_")
            and not key.startswith("_")
            and isinstance(value, np.ndarray)
        ):
            np.testing.assert_array_equal(getattr(copy, key), value, err_msg=key)


@pytest.mark.parametrize("how", sorted(ROUND_TRIPS))
@pytest.mark.parametrize("name", sorted(CASES))
def test_unfitted_round_trip_fits_the_same_model(name, how, data):
    est = CASES[name]()
    copy = ROUND_TRIPS[how](est)
    assert type(copy) is type(est)
    assert copy.get_params() == est.get_params()
    assert not any(k.endswith("_") and not k.startswith("__") for k in vars(copy)), (
        "unfitted copy has fitted state"
    )
    a = _outputs(_fit(est, name, data), data[0])
    b = _outputs(_fit(copy, name, data), data[0])
    _assert_same_outputs(a, b)


@pytest.mark.parametrize("name", sorted(CASES))
def test_pickling_leaves_the_estimator_untouched(name, data):
    """Pickling must not strip the live estimator (its network, optimiser moments or generator)."""
    est = _fit(CASES[name](), name, data)
    twin = _fit(CASES[name](), name, data)
    keys = set(vars(est))
    pickle.dumps(est)
    joblib.dump(est, io.BytesIO())
    assert set(vars(est)) == keys
    if hasattr(est, "partial_fit"):
        # Continuing to train the pickled estimator matches continuing its never-pickled twin.
        X, y_cls, y_reg = data
        args = (
            (X, y_reg)
            if name == "CNNRegressor"
            else (X, y_cls)
            if name in SUPERVISED
            else (X,)
        )
        est.partial_fit(*args)
        twin.partial_fit(*args)
        _assert_same_outputs(_outputs(est, X), _outputs(twin, X))


@pytest.mark.parametrize(
    "name", sorted(n for n in CASES if hasattr(CASES[n](), "partial_fit"))
)
def test_unpickled_estimator_keeps_training(name, data):
    """partial_fit continues after a round trip; two round-tripped copies continue identically."""
    X, y_cls, y_reg = data
    args = (
        (X, y_reg)
        if name == "CNNRegressor"
        else (X, y_cls)
        if name in SUPERVISED
        else (X,)
    )
    est = _fit(CASES[name](), name, data)
    blob = pickle.dumps(est)
    a, b = pickle.loads(blob), joblib.load(_joblib_buffer(est))
    a.partial_fit(*args)
    b.partial_fit(*args)
    _assert_same_outputs(_outputs(a, X), _outputs(b, X))
    # One epoch; layered models (DBN, ConvDBN) run one epoch per layer and count them all.
    assert a.n_iter_ == est.n_iter_ + len(getattr(est, "rbms_", [None]))


def _joblib_buffer(est):
    buf = io.BytesIO()
    joblib.dump(est, buf)
    buf.seek(0)
    return buf


@pytest.mark.parametrize("name", sorted(CASES))
def test_clone_of_unpickled_estimator_is_unfitted_with_same_params(name, data):
    est = pickle.loads(pickle.dumps(_fit(CASES[name](), name, data)))
    fresh = clone(est)
    assert fresh.get_params() == CASES[name]().get_params()
    assert not any(k.endswith("_") and not k.startswith("__") for k in vars(fresh))


def test_joblib_file_round_trip(tmp_path, data):
    """joblib.dump to a file (the usual way to keep a model) with memory-mapped arrays on load."""
    est = _fit(CASES["CNNClassifier"](), "CNNClassifier", data)
    path = tmp_path / "model.joblib"
    joblib.dump(est, path)
    loaded = joblib.load(path, mmap_mode="r")
    _assert_same_outputs(_outputs(est, data[0]), _outputs(loaded, data[0]))
