"""Sample and class weights, sparse input, multilabel targets, shuffle, partial_fit, nested layer parameters."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import sklearn
from sklearn.model_selection import GridSearchCV, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler
from sklearn.utils.estimator_checks import check_class_weight_classifiers

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
from neuroplug.layers import Dense, Dropout
from neuroplug.network import (
    SigmoidBinaryCrossEntropy,
    SoftmaxCrossEntropy,
    SquaredError,
)
from neuroplug.ops import Ops

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = rng.random((40, 12))
    y = (X[:, 0] + X[:, 1] > 1).astype(int)
    return X, y, rng


def _full_batch(cls, **kw):
    params = {
        "max_iter": 4,
        "random_state": 0,
        "batch_size": 1000,
        "shuffle": False,
        "dtype": "float64",
    }
    if cls is DBNClassifier:
        params.update(pretrain_max_iter=0)
        return cls((6,), dropout=0.0, **params, **kw)
    return cls(("dense:6", "relu"), **params, **kw)


# ------------------------------------------------------------------ equivalences
@pytest.mark.parametrize("cls", [CNNClassifier, CNNRegressor, DBNClassifier])
def test_integer_weights_equal_repeated_rows_full_batch(cls, data):
    X, y, rng = data
    sw = rng.integers(0, 4, X.shape[0])
    target = y if cls is not CNNRegressor else X[:, 0]
    a = _full_batch(cls).fit(X, target, sample_weight=sw)
    b = _full_batch(cls).fit(X.repeat(sw, axis=0), target.repeat(sw))
    method = "predict" if cls is CNNRegressor else "predict_proba"
    np.testing.assert_allclose(
        getattr(a, method)(X), getattr(b, method)(X), rtol=1e-9, atol=1e-12
    )


@pytest.mark.parametrize("cls", [CNNClassifier, CNNRegressor])
def test_zero_weight_equals_dropping_with_minibatches_and_shuffling(cls, data):
    X, y, rng = data
    sw = (rng.random(X.shape[0]) > 0.3) * rng.integers(1, 4, X.shape[0])
    target = y if cls is CNNClassifier else X[:, 0]
    est = {"max_iter": 3, "random_state": 0, "batch_size": 7}
    a = cls(("dense:6", "relu"), **est).fit(X, target, sample_weight=sw)
    b = cls(("dense:6", "relu"), **est).fit(
        X[sw > 0], target[sw > 0], sample_weight=sw[sw > 0]
    )
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_)


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
@pytest.mark.parametrize(
    "make",
    [
        lambda b: RBM(5, max_iter=2, batch_size=7, random_state=0, backend=b),
        lambda b: DBN((5, 3), max_iter=2, batch_size=7, random_state=0, backend=b),
        lambda b: SigmoidBeliefNet(
            (4,), max_iter=2, batch_size=7, random_state=0, backend=b
        ),
    ],
)
def test_unsupervised_zero_weight_equals_dropping(make, backend, data):
    X, _, rng = data
    Xb = (X > 0.5).astype(np.float32)
    sw = (rng.random(X.shape[0]) > 0.3) * rng.integers(1, 4, X.shape[0])
    a = make(backend).fit(Xb, sample_weight=sw)
    b = make(backend).fit(Xb[sw > 0], sample_weight=sw[sw > 0])
    np.testing.assert_allclose(a.transform(Xb), b.transform(Xb))


def test_unit_weights_equal_unweighted(data):
    X, y, _ = data
    a = CNNClassifier(
        ("dense:6", "relu"), max_iter=3, random_state=0, batch_size=8
    ).fit(X, y)
    b = CNNClassifier(
        ("dense:6", "relu"), max_iter=3, random_state=0, batch_size=8
    ).fit(X, y, sample_weight=np.ones(len(y)))
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), rtol=1e-6)
    Xb = (X > 0.5).astype(np.float64)
    r1 = RBM(4, max_iter=2, random_state=0, backend="numpy").fit(Xb)
    r2 = RBM(4, max_iter=2, random_state=0, backend="numpy").fit(
        Xb, sample_weight=np.ones(len(Xb))
    )
    np.testing.assert_array_equal(r1.components_, r2.components_)


class _MeanField(Ops):
    """The reference Ops with Bernoulli draws replaced by their probabilities: CD becomes deterministic."""

    def bernoulli(self, p, rng):
        return np.array(p, copy=True)


@pytest.mark.parametrize("pcd", [False, True])
def test_weighted_cd_epoch_equals_repeated_rows(pcd):
    X = (np.random.default_rng(1).random((9, 6)) > 0.5).astype(np.float64)
    sw = np.array([1, 2, 0, 3, 1, 1, 2, 1, 4])

    def run(data, weight):
        n = data.shape[0]
        state = [
            np.random.default_rng(5).normal(0, 0.1, (4, 6)),
            np.zeros(4),
            np.zeros(6),
            np.zeros((4, 6)),
            np.zeros(4),
            np.zeros(6),
        ]
        # PCD chains all start at 0.5, so a weighted chain row counts as that many repeated ones.
        chain = np.full((n, 4), 0.5) if pcd else None
        err = _MeanField().cd_epoch(
            data,
            *state,
            k=2,
            learning_rate=0.1,
            momentum=0.5,
            weight_decay=0.01,
            batch_size=n,
            visible="bernoulli",
            rng=None,
            chain=chain,
            sample_weight=weight,
        )
        return state, err

    a, err_a = run(X, sw / sw.mean())
    b, err_b = run(X.repeat(sw, axis=0), None)
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(err_a, err_b, rtol=1e-12)


def test_cython_weighted_cd_matches_reference():
    rng = np.random.default_rng(0)
    X = (rng.random((30, 8)) > 0.5).astype(np.float64)
    sw = rng.integers(1, 4, 30).astype(np.float64)
    out = []
    for backend in ("cpu", "numpy"):
        rbm = RBM(5, max_iter=2, batch_size=10, random_state=0, backend=backend).fit(
            X, sample_weight=sw
        )
        out.append(rbm.components_)
    np.testing.assert_allclose(out[0], out[1], rtol=1e-6, atol=1e-8)


# ------------------------------------------------------------------ losses
@pytest.mark.parametrize(
    "loss,target",
    [
        (SoftmaxCrossEntropy(), np.array([0, 2, 1, 2, 0])),
        (SquaredError(), np.random.default_rng(3).normal(size=(5, 3))),
        (
            SigmoidBinaryCrossEntropy(),
            (np.random.default_rng(4).random((5, 3)) > 0.5).astype(np.float64),
        ),
    ],
)
@pytest.mark.parametrize("weighted", [False, True])
def test_loss_gradients_by_finite_differences(loss, target, weighted):
    ops = Ops()
    z = np.random.default_rng(2).normal(size=(5, 3))
    w = np.array([0.5, 2.0, 0.0, 1.0, 1.5]) if weighted else None
    _, grad = loss(ops, z, target, w) if weighted else loss(ops, z, target)
    eps = 1e-6
    for i in range(5):
        for j in range(3):
            zp, zm = z.copy(), z.copy()
            zp[i, j] += eps
            zm[i, j] -= eps
            fp = (loss(ops, zp, target, w) if weighted else loss(ops, zp, target))[0]
            fm = (loss(ops, zm, target, w) if weighted else loss(ops, zm, target))[0]
            assert abs((fp - fm) / (2 * eps) - grad[i, j]) < 1e-7


# ------------------------------------------------------------------ class weights
def test_class_weight_check_passes_with_a_tighter_tol():
    check_class_weight_classifiers(
        "CNNClassifier", CNNClassifier(("dense:16", "relu"), tol=1e-6)
    )


def test_class_weight_balanced_and_dict(data):
    X, y, _ = data
    y = np.where(np.arange(len(y)) < 34, 0, 1)
    balanced = CNNClassifier(
        ("dense:6", "relu"), class_weight="balanced", max_iter=2, random_state=0
    )
    explicit = CNNClassifier(("dense:6", "relu"), max_iter=2, random_state=0)
    w = np.where(y == 0, 40 / (2 * 34), 40 / (2 * 6))
    np.testing.assert_allclose(
        balanced.fit(X, y).predict_proba(X),
        explicit.fit(X, y, sample_weight=w).predict_proba(X),
        rtol=1e-6,
    )
    with pytest.raises(ValueError, match="class_weight names labels"):
        CNNClassifier(("dense:6",), class_weight={7: 2.0}, max_iter=1).fit(X, y)
    with pytest.raises(ValueError, match="partial_fit"):
        CNNClassifier(("dense:6",), class_weight="balanced").partial_fit(
            X, y, classes=[0, 1]
        )


# ------------------------------------------------------------------ metadata routing
def test_sample_weight_is_routed_through_pipeline_cross_validate_and_grid_search(data):
    X, y, rng = data
    sw = rng.integers(0, 3, len(y)) + 0.5
    with sklearn.config_context(enable_metadata_routing=True):
        clf = (
            CNNClassifier(("dense:6", "relu"), max_iter=2, random_state=0)
            .set_fit_request(sample_weight=True)
            .set_score_request(sample_weight=True)
        )
        pipe = make_pipeline(MinMaxScaler(), clf)
        cv = cross_validate(
            pipe, X, y, cv=2, params={"sample_weight": sw}, error_score="raise"
        )
        assert np.isfinite(cv["test_score"]).all()
        search = GridSearchCV(
            pipe, {"cnnclassifier__batch_size": [8, 16]}, cv=2, error_score="raise"
        ).fit(X, y, sample_weight=sw)
        assert np.isfinite(search.cv_results_["mean_test_score"]).all()
        rbm = RBM(4, max_iter=1, random_state=0).set_fit_request(sample_weight=True)
        make_pipeline(rbm).fit((X > 0.5).astype(float), sample_weight=sw)
    # The weights reach fit: a pipeline with them differs from one without.
    with sklearn.config_context(enable_metadata_routing=True):
        a = make_pipeline(
            CNNClassifier(("dense:6",), max_iter=2, random_state=0).set_fit_request(
                sample_weight=True
            )
        ).fit(X, y, sample_weight=sw)
    b = make_pipeline(CNNClassifier(("dense:6",), max_iter=2, random_state=0)).fit(X, y)
    assert not np.allclose(a.predict_proba(X), b.predict_proba(X))


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize(
    "sw,match",
    [
        (-np.ones(40), "non-negative"),
        (np.full(40, np.nan), "finite"),
        (np.ones(39), "one weight per sample"),
        (np.ones((40, 2)), "1-D"),
        (np.zeros(40), "all zero"),
    ],
)
@pytest.mark.parametrize(
    "make",
    [
        lambda: CNNClassifier(("dense:4",), max_iter=1),
        lambda: RBM(3, max_iter=1),
        lambda: DBN((3,), max_iter=1),
        lambda: SigmoidBeliefNet((3,), max_iter=1),
    ],
)
def test_bad_weights_are_refused_naming_sample_weight(make, sw, match, data):
    X, y, _ = data
    est = make()
    args = (X, y) if isinstance(est, CNNClassifier) else ((X > 0.5).astype(float),)
    with pytest.raises(
        ValueError, match=f"sample_weight.*{match}|{match}.*sample_weight"
    ):
        est.fit(*args, sample_weight=sw)


def test_sparse_with_wrong_feature_count_and_multilabel_regressor(data):
    X, y, _ = data
    clf = CNNClassifier(("dense:4",), max_iter=1).fit(sp.csr_matrix(X), y)
    with pytest.raises(ValueError, match="features"):
        clf.predict(sp.csr_matrix(X[:, :5]))
    rbm = RBM(3, max_iter=1).fit(sp.csr_matrix((X > 0.5).astype(float)))
    with pytest.raises(ValueError, match="features"):
        rbm.transform(sp.csr_matrix(X[:, :5]))
    with pytest.raises(ValueError, match="multilabel.*CNNClassifier"):
        CNNRegressor(("dense:4",), max_iter=1).fit(X, (X[:, :3] > 0.5).astype(int))


# ------------------------------------------------------------------ sparse input
@pytest.mark.parametrize(
    "make",
    [
        lambda: RBM(4, max_iter=2, random_state=0),
        lambda: DBN((4, 3), max_iter=2, random_state=0),
        lambda: SigmoidBeliefNet((4,), max_iter=2, random_state=0),
        lambda: CNNClassifier(("dense:4", "relu"), max_iter=2, random_state=0),
        lambda: DBNClassifier((4,), pretrain_max_iter=1, max_iter=2, random_state=0),
    ],
)
@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_sparse_input_matches_dense(make, fmt, data):
    X, y, _ = data
    Xb = (X > 0.7).astype(np.float64)
    S = sp.csr_matrix(Xb) if fmt == "csr" else sp.csc_matrix(Xb)
    args = (y,) if "Classifier" in type(make()).__name__ else ()
    dense, sparse = make().fit(Xb, *args), make().fit(S, *args)
    out = "predict_proba" if args else "transform"
    np.testing.assert_allclose(
        getattr(dense, out)(Xb), getattr(sparse, out)(S), rtol=1e-6, atol=1e-7
    )


def test_training_never_densifies_the_whole_sparse_matrix(monkeypatch, data):
    X, y, _ = data
    S = sp.csr_matrix((X > 0.7).astype(np.float64))
    biggest = []
    original = sp.csr_matrix.toarray

    def spy(self, *a, **kw):
        biggest.append(self.shape[0])
        return original(self, *a, **kw)

    monkeypatch.setattr(sp.csr_matrix, "toarray", spy)
    CNNClassifier(("dense:4",), max_iter=2, batch_size=8, random_state=0).fit(S, y)
    assert (
        biggest and max(biggest) <= 40 and max(biggest[1:]) <= 8
    )  # the first: the divergence probe
    biggest.clear()
    monkeypatch.setattr("neuroplug.models.rbm.SPARSE_CHUNK_ROWS", 16)
    RBM(3, max_iter=1, batch_size=8, random_state=0).fit(S)
    assert (
        biggest[0] <= 1000 and max(biggest[1:]) <= 16
    )  # the first: the monitored rows (at most 1,000)


# ------------------------------------------------------------------ multilabel
def test_multilabel_cnn_classifier(data):
    X, _, _ = data
    Y = np.stack([X[:, 0] > 0.5, X[:, 1] > 0.5, X[:, 0] + X[:, 2] > 1], axis=1).astype(
        int
    )
    clf = CNNClassifier(
        ("dense:16", "relu"), max_iter=200, learning_rate=1e-2, random_state=0
    ).fit(X, Y)
    proba = clf.predict_proba(X)
    assert proba.shape == (40, 3) and clf.out_activation_ == "logistic"
    assert not np.allclose(proba.sum(axis=1), 1)
    np.testing.assert_array_equal(clf.predict(X), (proba > 0.5).astype(int))
    assert clf.score(X, Y) > 0.8
    clf.partial_fit(X, Y)
    with pytest.raises(ValueError, match="multilabel"):
        clf.partial_fit(X, Y[:, 0])
    CNNClassifier(("dense:4",), random_state=0).partial_fit(
        X, Y
    )  # classes not needed for multilabel


# ------------------------------------------------------------------ shuffle and partial_fit
@pytest.mark.parametrize(
    "make",
    [
        lambda **kw: RBM(4, max_iter=2, batch_size=7, random_state=0, **kw),
        lambda **kw: DBN((4,), max_iter=2, batch_size=7, random_state=0, **kw),
        lambda **kw: SigmoidBeliefNet(
            (4,), max_iter=2, batch_size=7, random_state=0, **kw
        ),
        lambda **kw: ConvRBM(
            2,
            kernel_size=2,
            pool_size=1,
            input_shape=(1, 3, 4),
            max_iter=2,
            random_state=0,
            **kw,
        ),
    ],
)
def test_shuffle_false_takes_rows_in_order(make, data):
    X, _, _ = data
    Xb = (X > 0.5).astype(np.float64)
    a = make(shuffle=False).fit(Xb)
    b = make(shuffle=True).fit(Xb)
    c = make(shuffle=False).fit(Xb)
    np.testing.assert_array_equal(a.transform(Xb), c.transform(Xb))
    assert not np.allclose(a.transform(Xb), b.transform(Xb))


@pytest.mark.parametrize(
    "make",
    [
        lambda: DBN((4, 3), max_iter=1, random_state=0),
        lambda: ConvRBM(
            2, kernel_size=2, pool_size=1, input_shape=(1, 3, 4), random_state=0
        ),
        lambda: ConvDBN(
            (2, 2), kernel_size=2, pool_size=1, input_shape=(1, 3, 4), random_state=0
        ),
    ],
)
def test_partial_fit_on_layered_models(make, data):
    X, _, _ = data
    Xb = (X > 0.5).astype(np.float64)
    est = make().partial_fit(Xb[:20])
    first = est.transform(Xb).copy()
    est.partial_fit(Xb[20:])
    assert est.n_iter_ == (2 * len(est.rbms_) if hasattr(est, "rbms_") else 2)
    assert not np.allclose(first, est.transform(Xb))
    with pytest.raises(ValueError):
        est.partial_fit(np.ones((3, 5)))


def test_partial_fit_sample_weight_and_sparse(data):
    X, y, rng = data
    sw = rng.random(len(y)) + 0.1
    clf = CNNClassifier(("dense:4",), random_state=0)
    clf.partial_fit(sp.csr_matrix(X), y, classes=[0, 1], sample_weight=sw)
    RBM(3, random_state=0).partial_fit(
        sp.csr_matrix((X > 0.5).astype(float)), sample_weight=sw
    )
    SigmoidBeliefNet((3,), random_state=0).partial_fit(
        (X > 0.5).astype(float), sample_weight=sw
    )
    DBN((3,), random_state=0).partial_fit(
        sp.csr_matrix((X > 0.5).astype(float)), sample_weight=sw
    )


# ------------------------------------------------------------------ nested layer parameters
def test_grid_search_over_a_layer_objects_parameter(data):
    X, y, _ = data
    est = CNNClassifier((Dense(6), "relu", Dropout(0.2)), max_iter=2, random_state=0)
    assert est.get_params()["layers__2__rate"] == 0.2
    search = GridSearchCV(
        est, {"layers__2__rate": [0.1, 0.5], "layers__0__units": [4, 8]}, cv=2
    ).fit(X, y)
    assert search.best_estimator_.layers[2].rate in (0.1, 0.5)
    assert est.layers[2].rate == 0.2  # the user's layer object is never modified
    est.set_params(layers__2__rate=0.4)
    assert est.layers[2].rate == 0.4 and isinstance(est.layers, tuple)
    with pytest.raises(ValueError, match="spec string"):
        est.set_params(layers__1__rate=0.3)
    with pytest.raises(ValueError, match="index below 3"):
        est.set_params(layers__9__rate=0.3)
    # Spec strings stay grid-searchable as whole tuples.
    GridSearchCV(
        CNNClassifier(("dense:4",), max_iter=1),
        {"layers": [("dense:4",), ("dense:8", "relu")]},
        cv=2,
    ).fit(X, y)


def test_sklearn_clone_keeps_nested_layers(data):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = CNNClassifier((Dense(6), Dropout(0.2)))
        sklearn.base.clone(est).set_params(layers__1__rate=0.3)
