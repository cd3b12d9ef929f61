"""DBN, DBNClassifier and the "dbn" pretrainer."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_digits
from sklearn.utils import check_random_state
from sklearn.utils.estimator_checks import parametrize_with_checks

from neuroplug.backends import get_ops
from neuroplug.estimators import DBN, RBM, CNNClassifier, DBNClassifier
from neuroplug.layers.activations import ReLU, Sigmoid
from neuroplug.layers.conv import Conv2D
from neuroplug.layers.dense import Dense
from neuroplug.layers.dropout import Dropout
from neuroplug.network import Network
from neuroplug.plugins import get_pretrainer
from neuroplug.pretrain.dbn import DBNPretrainer, dense_run


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X / 16.0, y


_SW_STOCHASTIC = {
    "check_sample_weight_equivalence_on_dense_data": (
        "CD-k / wake-sleep draw Bernoulli samples per row, so a repeated row draws other samples than a "
        "weighted one; the weighted update is checked exactly with mean-field draws "
        "(tests/estimators/test_sample_weight.py)"
    ),
    "check_sample_weight_equivalence_on_sparse_data": (
        "CD-k / wake-sleep draw Bernoulli samples per row, so a repeated row draws other samples than a "
        "weighted one; the weighted update is checked exactly with mean-field draws "
        "(tests/estimators/test_sample_weight.py)"
    ),
}


_SW_SGD = {
    key: (
        "mini-batch SGD on shuffled batches after stochastic pretraining: repeating a row changes both; "
        "the fine-tuning equivalence is checked with pretrain_max_iter=0, full-batch and unshuffled "
        "(tests/estimators/test_sample_weight.py)"
    )
    for key in _SW_STOCHASTIC
}


@parametrize_with_checks(
    [
        DBN(hidden_layer_sizes=(5, 3), max_iter=2, batch_size=10, random_state=0),
        DBNClassifier((16,), pretrain_max_iter=1, max_iter=20, random_state=0),
        # Its defaults, as a user gets them (issue 22: Gaussian RBMs on unscaled data, accuracy on blobs).
        DBNClassifier(),
    ],
    expected_failed_checks=lambda est: (
        _SW_SGD
        if hasattr(est, "classes_") or hasattr(est, "class_weight")
        else _SW_STOCHASTIC
    ),
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


# --------------------------------------------------------------------------------------------
# DBN
# --------------------------------------------------------------------------------------------
def test_dbn_is_a_greedy_stack_of_rbms(digits):
    X = digits[0]
    dbn = DBN((16, 8), max_iter=2, learning_rate=0.02, random_state=0).fit(X)
    # Layer by layer, with the seeds DBN draws from its random_state.
    rs = check_random_state(0)
    first = RBM(
        16, max_iter=2, learning_rate=0.02, random_state=rs.randint(2**31 - 1)
    ).fit(X)
    second = RBM(
        8, max_iter=2, learning_rate=0.02, random_state=rs.randint(2**31 - 1)
    ).fit(first.transform(X))
    np.testing.assert_allclose(dbn.rbms_[0].components_, first.components_)
    np.testing.assert_allclose(dbn.rbms_[1].components_, second.components_)
    np.testing.assert_allclose(
        dbn.transform(X[:5]), second.transform(first.transform(X[:5]))
    )
    assert dbn.transform(X).shape == (X.shape[0], 8)


def test_dbn_layer_params(digits):
    X = digits[0][:200]
    dbn = DBN(
        (6, 4, 3),
        max_iter=3,
        layer_params=[{"max_iter": 1}, None, {"k": 2, "persistent": True}],
        random_state=0,
    ).fit(X)
    assert [r.n_iter_ for r in dbn.rbms_] == [1, 3, 3]
    assert (
        dbn.rbms_[2].k == 2 and dbn.rbms_[2].persistent and not dbn.rbms_[0].persistent
    )
    assert [r.visible for r in dbn.rbms_] == ["bernoulli"] * 3
    sampled = DBN(
        (6, 4),
        max_iter=1,
        sample_visible=True,
        layer_params=[None, {"sample_visible": False}],
        random_state=0,
    ).fit(X)
    assert [r.sample_visible for r in sampled.rbms_] == [True, False]
    # The shared setting skips a Gaussian first RBM; asking for it there is an error.
    Xs = (X - X.mean(axis=0)) / (X.std(axis=0) + 1e-8)
    gauss = DBN(
        (6, 4), visible="gaussian", max_iter=1, sample_visible=True, random_state=0
    ).fit(Xs)
    assert [r.sample_visible for r in gauss.rbms_] == [False, True]
    with pytest.raises(ValueError, match="needs visible='bernoulli'"):
        DBN(
            (6, 4), visible="gaussian", layer_params=[{"sample_visible": True}, None]
        ).fit(Xs)
    shared = DBN((6, 4), layer_params={"max_iter": 2}, random_state=0).fit(X)
    assert [r.n_iter_ for r in shared.rbms_] == [2, 2]
    with pytest.raises(ValueError, match="one dict per hidden layer"):
        DBN((6, 4), layer_params=[{}]).fit(X)
    with pytest.raises(ValueError, match="unknown keys \\['n_components'\\]"):
        DBN((6, 4), layer_params={"n_components": 3}).fit(X)
    with pytest.raises(ValueError, match="learning_rate"):
        DBN((6,), layer_params={"learning_rate": -1.0}).fit(X)
    with pytest.raises(ValueError, match="hidden_layer_sizes must be a non-empty"):
        DBN(()).fit(X)


def test_dbn_gaussian_first_layer():
    X = np.random.default_rng(0).normal(size=(100, 6))
    dbn = DBN(
        (5, 3), visible="gaussian", learning_rate=0.01, max_iter=2, random_state=0
    ).fit(X)
    assert [r.visible for r in dbn.rbms_] == ["gaussian", "bernoulli"]
    S = dbn.sample(4, n_steps=5)
    assert S.shape == (4, 6) and np.isfinite(S).all()


def test_dbn_sample(digits):
    X = (digits[0] > 0.5).astype(np.float32)
    dbn = DBN((24, 12), max_iter=3, random_state=0).fit(X)
    S = dbn.sample(50, n_steps=20)
    assert (
        S.shape == (50, 64)
        and S.dtype == np.float32
        and set(np.unique(S)) <= {0.0, 1.0}
    )
    np.testing.assert_array_equal(S, dbn.sample(50, n_steps=20))
    assert not np.array_equal(S, dbn.sample(50, n_steps=20, random_state=1))
    M = dbn.sample(50, n_steps=20, return_means=True)
    assert M.min() >= 0 and M.max() <= 1 and len(np.unique(M)) > 2
    one = DBN((8,), max_iter=1, random_state=0).fit(X)
    assert one.sample(3, n_steps=2, return_means=True).shape == (3, 64)


# --------------------------------------------------------------------------------------------
# The "dbn" pretrainer
# --------------------------------------------------------------------------------------------
def test_pretrainer_is_registered():
    assert get_pretrainer("dbn") is DBNPretrainer


def test_dense_run():
    layers = [
        Conv2D(2, 3),
        ReLU(),
        Dense(8),
        Sigmoid(),
        Dropout(0.1),
        Dense(6),
        Sigmoid(),
        Dense(3),
    ]
    net = Network(layers, (1, 6, 6), get_ops("numpy"), rng=0)
    assert dense_run(net.layers) == [2, 5]


def test_pretrainer_copies_the_rbm_stack(digits):
    X = digits[0][:300].astype(np.float32)
    net = Network(
        [Dense(10), Sigmoid(), Dense(6), Sigmoid(), Dense(3)],
        (64,),
        get_ops("cpu"),
        rng=0,
    )
    out_before = net.layers[4].get_weights()
    DBNPretrainer(max_iter=2, fix_units=False, init="small").pretrain(
        net, X, random_state=0
    )
    rs = check_random_state(0)
    # The pretrainer's defaults, spelled out.
    kw = dict(
        max_iter=2,
        k=1,
        persistent=False,
        learning_rate=0.1,
        momentum=0.5,
        weight_decay=0.002,
        batch_size=10,
        dtype="float32",
    )
    r1 = RBM(10, random_state=rs.randint(2**31 - 1), **kw).fit(X)
    r2 = RBM(6, random_state=rs.randint(2**31 - 1), **kw).fit(r1.transform(X))
    np.testing.assert_allclose(net.layers[0].get_weights()["W"], r1.components_.T)
    np.testing.assert_allclose(net.layers[2].get_weights()["b"], r2.intercept_hidden_)
    # The network now computes the stack's features.
    feats = net.ops.to_numpy(net.forward(net.ops.asarray(X[:5]), stop=4))
    np.testing.assert_allclose(
        feats, r2.transform(r1.transform(X[:5])), rtol=1e-5, atol=1e-6
    )
    # The output layer is left alone.
    np.testing.assert_array_equal(net.layers[4].get_weights()["W"], out_before["W"])


def test_pretrainer_samples_visible_units_of_bernoulli_rbms(digits):
    X = digits[0][:200].astype(np.float32)
    nets = [
        Network([Dense(8), Sigmoid(), Dense(3)], (64,), get_ops("cpu"), rng=0)
        for _ in range(2)
    ]
    DBNPretrainer(
        max_iter=1, sample_visible=True, fix_units=False, init="small"
    ).pretrain(nets[0], X, random_state=0)
    rbm = RBM(
        8,
        max_iter=1,
        k=1,
        learning_rate=0.1,
        momentum=0.5,
        weight_decay=0.002,
        batch_size=10,
        dtype="float32",
        sample_visible=True,
        random_state=check_random_state(0).randint(2**31 - 1),
    ).fit(X)
    np.testing.assert_allclose(nets[0].layers[0].get_weights()["W"], rbm.components_.T)
    with pytest.raises(ValueError, match="sample_visible must be a bool"):
        DBNPretrainer(sample_visible="yes").pretrain(nets[1], X, random_state=0)


def test_pretrainer_gaussian_folds_the_standardisation():
    r = np.random.default_rng(0)
    X = r.normal(3.0, 5.0, size=(200, 6))
    net = Network(
        [Dense(4), Sigmoid(), Dense(2)], (6,), get_ops("numpy"), rng=0, dtype=np.float64
    )
    DBNPretrainer(
        max_iter=2, learning_rate=0.01, fix_units=False, init="small"
    ).pretrain(net, X, random_state=0)
    Xs = (X - X.mean(axis=0)) / X.std(axis=0)
    rbm = RBM(
        4,
        visible="gaussian",
        max_iter=2,
        learning_rate=0.01,
        weight_decay=0.002,
        batch_size=10,
        dtype="float64",
        random_state=check_random_state(0).randint(2**31 - 1),
    ).fit(Xs)
    np.testing.assert_allclose(
        net.forward(X, stop=2), rbm.transform(Xs), rtol=1e-9, atol=1e-12
    )
    with pytest.raises(
        ValueError,
        match="visible='bernoulli' needs the inputs of dense layer 0 in \\[0, 1\\]",
    ):
        DBNPretrainer(visible="bernoulli").pretrain(net, X)


def test_pretrainer_leaves_conv_layers_alone(digits):
    X = digits[0][:100].reshape(-1, 1, 8, 8)
    net = Network(
        [Conv2D(3, 3), ReLU(), Dense(8), Sigmoid(), Dense(10)],
        (1, 8, 8),
        get_ops("cpu"),
        rng=0,
        dtype=np.float64,
    )
    conv_before = net.layers[0].get_weights()
    dense_before = net.layers[2].get_weights()
    DBNPretrainer(max_iter=1).pretrain(net, X, random_state=0)
    np.testing.assert_array_equal(net.layers[0].get_weights()["W"], conv_before["W"])
    assert not np.allclose(net.layers[2].get_weights()["W"], dense_before["W"])


def test_pretrainer_errors_and_warnings():
    net = Network([Dense(3)], (4,), get_ops("numpy"), rng=0)
    with pytest.warns(UserWarning, match="no hidden dense layer"):
        DBNPretrainer().pretrain(net, np.zeros((5, 4)))
    with pytest.raises(ValueError, match="X must have shape \\(n, 4\\)"):
        DBNPretrainer().pretrain(net, np.zeros((5, 3)))
    with pytest.raises(ValueError, match="visible must be"):
        DBNPretrainer(visible="binary").pretrain(net, np.zeros((5, 4)))


def test_cnn_classifier_with_dbn_pretrainer(digits, monkeypatch):
    """CNNClassifier(pretrainer="dbn") pretrains its dense layer, conv layer untouched, then trains from there."""
    X, y = digits
    seen = {}
    original = DBNPretrainer.pretrain

    def recording_pretrain(self, network, X, **kw):
        seen["initial"] = network.get_weights()
        original(self, network, X, **kw)
        seen["pretrained"] = network.get_weights()

    monkeypatch.setattr(DBNPretrainer, "pretrain", recording_pretrain)
    monkeypatch.setattr(
        CNNClassifier, "_train_batch", lambda self, network, xb, yb, lr: 0.0
    )
    clf = CNNClassifier(
        ("conv:4x3x3", "relu", "dense:16", "sigmoid"),
        input_shape=(1, 8, 8),
        pretrainer="dbn",
        max_iter=1,
        random_state=0,
    ).fit(X[:300], y[:300])
    np.testing.assert_array_equal(
        seen["pretrained"][0]["W"], seen["initial"][0]["W"]
    )  # conv
    assert not np.allclose(seen["pretrained"][2]["W"], seen["initial"][2]["W"])  # dense
    np.testing.assert_array_equal(
        clf.network_weights_[2]["W"], seen["pretrained"][2]["W"]
    )


def test_pretraining_helps_early_fine_tuning(digits):
    X, y = digits
    scores = {
        pre: np.mean(
            [
                DBNClassifier(
                    (64,), pretrain_max_iter=pre, max_iter=1, random_state=seed
                )
                .fit(X[:800], y[:800])
                .score(X[800:], y[800:])
                for seed in (0, 1)
            ]
        )
        for pre in (0, 5)
    }
    assert scores[5] > scores[0] + 0.1


# --------------------------------------------------------------------------------------------
# DBNClassifier
# --------------------------------------------------------------------------------------------
def test_dbn_classifier_learns_digits(digits):
    X, y = digits
    clf = DBNClassifier((64,), pretrain_max_iter=3, max_iter=15, random_state=0).fit(
        X[:1200], y[:1200]
    )
    assert clf.score(X[1200:], y[1200:]) > 0.9
    assert [type(layer).__name__ for layer in clf.layers_] == [
        "Dense",
        "Sigmoid",
        "Dropout",
        "Dense",
    ]
    assert clf.layers == ("dense:64", "sigmoid", "dropout:0.2")
    assert DBNClassifier((3, 2), dropout=0).layers == (
        "dense:3",
        "sigmoid",
        "dense:2",
        "sigmoid",
    )
    assert clf.predict_proba(X[:4]).shape == (4, 10)


def test_dbn_classifier_starts_from_the_pretrained_stack(digits, monkeypatch):
    """The classifier's network is pretrained with its pretrain_* settings, and fine-tuning starts there."""
    X, y = digits
    seen = {}
    original = DBNPretrainer.pretrain

    def recording_pretrain(self, network, X, **kw):
        seen["params"] = self.get_params()
        seen["initial"] = network.get_weights()
        original(self, network, X, **kw)
        seen["pretrained"] = network.get_weights()

    monkeypatch.setattr(DBNPretrainer, "pretrain", recording_pretrain)
    monkeypatch.setattr(
        DBNClassifier, "_train_batch", lambda self, network, xb, yb, lr: 0.0
    )
    clf = DBNClassifier(
        (12,),
        pretrain_max_iter=2,
        pretrain_learning_rate=0.02,
        max_iter=1,
        random_state=0,
    )
    clf.fit(X[:300], y[:300])
    assert seen["params"]["max_iter"] == 2 and seen["params"]["learning_rate"] == 0.02
    assert not np.allclose(seen["pretrained"][0]["W"], seen["initial"][0]["W"])
    np.testing.assert_array_equal(
        clf.network_weights_[0]["W"], seen["pretrained"][0]["W"]
    )
    np.testing.assert_array_equal(
        clf.network_weights_[-1]["W"], seen["initial"][-1]["W"]
    )  # output layer


def test_dbn_classifier_params():
    clf = DBNClassifier((7, 5), pretrain_learning_rate=0.01, pretrain_k=2)
    assert (
        clf.pretrainer.get_params()["learning_rate"] == 0.01 and clf.pretrainer.k == 2
    )
    assert DBNClassifier(pretrain_max_iter=0).pretrainer is None
    assert clone(clf).get_params()["hidden_layer_sizes"] == (7, 5)
    assert "layers" not in clf.get_params() and "pretrainer" not in clf.get_params()
    with pytest.raises(ValueError, match="pretrain_max_iter"):
        DBNClassifier(pretrain_max_iter=-1).fit(np.zeros((4, 2)), [0, 1, 0, 1])
    with pytest.raises(ValueError, match="hidden_layer_sizes must be a non-empty"):
        DBNClassifier(hidden_layer_sizes=(0,)).fit(np.zeros((4, 2)), [0, 1, 0, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        DBNClassifier((4,), pretrain_max_iter=0, max_iter=1).fit(
            np.zeros((4, 2)), [0, 1, 0, 1]
        )
