"""Scale-out on Dask: grid searches and cross-validation through joblib's ``dask`` backend.

A ``LocalCluster`` of two worker processes on the loopback interface stands
in for a real cluster.  Estimators travel to the workers by pickle and look
their layers up in each worker's own plugin manager, which discovers the
installed entry points lazily, on first use.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")
joblib = pytest.importorskip("joblib")

from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_validate  # noqa: E402

from neuroplug.estimators import RBM, CNNClassifier  # noqa: E402


def _modules_loaded():
    """Which neuroplug modules a worker has imported (runs in the worker)."""
    return {
        name: name in sys.modules
        for name in ("neuroplug", "neuroplug_lrn", "neuroplug_lrn.plugin")
    }


def _lrn_provider():
    """The plugin that provides the 'lrn' layer in this worker's own plugin manager (runs in the worker)."""
    from neuroplug.plugins import get_plugin_manager

    return get_plugin_manager().layers.entry("lrn").plugin


@pytest.fixture(scope="module")
def client():
    import cloudpickle

    # The helpers above must reach the workers by value: this test module is not importable there.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    cluster = distributed.LocalCluster(
        n_workers=2,
        processes=True,
        threads_per_worker=1,
        host="127.0.0.1",
        dashboard_address=None,
    )
    try:
        with distributed.Client(cluster) as c:
            c.wait_for_workers(2)
            c.fresh_worker_modules = c.run(_modules_loaded)
            yield c
    finally:
        cluster.close()
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    X = (X[:120] / 16.0).astype(np.float32)
    return X, y[:120]


def _search(estimator, grid, X, y, *, dask):
    search = GridSearchCV(estimator, grid, cv=2, n_jobs=-1 if dask else 1)
    if dask:
        with joblib.parallel_config(backend="dask"):
            search.fit(X, y)
    else:
        search.fit(X, y)
    return search


def _assert_same_search(a, b, X):
    assert [p for p in a.cv_results_["params"]] == [p for p in b.cv_results_["params"]]
    for key in (
        "mean_test_score",
        "split0_test_score",
        "split1_test_score",
        "rank_test_score",
    ):
        np.testing.assert_array_equal(
            a.cv_results_[key], b.cv_results_[key], err_msg=key
        )
    assert a.best_params_ == b.best_params_
    np.testing.assert_array_equal(
        a.best_estimator_.predict_proba(X), b.best_estimator_.predict_proba(X)
    )


def test_workers_start_without_plugins_loaded(client):
    """Nothing is shipped from the client: a fresh worker has imported neither neuroplug nor its plugins."""
    assert len(client.fresh_worker_modules) == 2
    for loaded in client.fresh_worker_modules.values():
        assert not loaded["neuroplug_lrn.plugin"]


def test_grid_search_on_dask_equals_n_jobs_1(client, digits):
    X, y = digits
    cnn = CNNClassifier(
        ("conv:4x3x3", "relu", "maxpool:2", "dense:8", "relu"),
        input_shape=(1, 8, 8),
        max_iter=2,
        batch_size=16,
        random_state=0,
    )
    grid = {"learning_rate": [1e-3, 1e-2]}
    on_dask = _search(cnn, grid, X, y, dask=True)
    # The fits really ran on the workers (a fresh worker had not imported neuroplug).
    assert any(client.run(lambda: "neuroplug.estimators.cnn" in sys.modules).values())
    local = _search(cnn, grid, X, y, dask=False)
    _assert_same_search(on_dask, local, X)


def test_cross_validate_on_dask_equals_n_jobs_1(client, digits):
    X = (digits[0] > 0.5).astype(np.float64)
    rbm = RBM(
        6, max_iter=2, batch_size=10, random_state=0
    )  # score: exact log-likelihood
    with joblib.parallel_config(backend="dask"):
        on_dask = cross_validate(rbm, X, cv=3, n_jobs=-1, return_estimator=True)
    local = cross_validate(rbm, X, cv=3, n_jobs=1, return_estimator=True)
    np.testing.assert_array_equal(on_dask["test_score"], local["test_score"])
    for a, b in zip(on_dask["estimator"], local["estimator"]):
        np.testing.assert_array_equal(a.components_, b.components_)


def test_third_party_plugin_layer_is_usable_in_the_workers(client, digits):
    pytest.importorskip("neuroplug_lrn")
    X, y = digits
    cnn = CNNClassifier(
        ("conv:4x3x3,padding=same", "lrn:3", "maxpool:2", "dense:8", "relu"),
        input_shape=(1, 8, 8),
        max_iter=2,
        batch_size=16,
        random_state=0,
    )
    grid = {
        "layers": [
            cnn.layers,
            ("conv:4x3x3,padding=same", "elu:0.5", "maxpool:2", "dense:8", "relu"),
        ]
    }
    on_dask = _search(cnn, grid, X, y, dask=True)
    assert np.isfinite(on_dask.cv_results_["mean_test_score"]).all()
    # Each worker found the plugin through its own entry points.
    assert set(client.run(_lrn_provider).values()) == {"lrn"}
    assert all(m["neuroplug_lrn.plugin"] for m in client.run(_modules_loaded).values())
    _assert_same_search(on_dask, _search(cnn, grid, X, y, dask=False), X)
