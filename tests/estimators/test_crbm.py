"""ConvRBM and ConvDBN estimators and the "cdbn" pretrainer."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from neuroplug.backends import get_ops
from neuroplug.datasets import load_digits_images
from neuroplug.estimators import CNNClassifier, ConvDBN, ConvRBM
from neuroplug.layers.activations import ReLU, Sigmoid
from neuroplug.layers.conv import Conv2D
from neuroplug.layers.dense import Dense
from neuroplug.layers.flatten import Flatten
from neuroplug.layers.pool import MaxPool2D, MeanPool2D
from neuroplug.network import Network
from neuroplug.plugins import get_pretrainer
from neuroplug.pretrain.cdbn import CDBNPretrainer, renamed_n_iter

# Tiny settings: one thread (the arrays are small and the test machine is shared).
FAST = dict(max_iter=2, batch_size=10, n_threads=1, random_state=0)


@parametrize_with_checks(
    [
        # Non-square feature counts are one-row images: 1-wide kernels and (1, 2) pooling blocks
        # (partial at the edge for odd widths) work for every shape the checks try.
        ConvRBM(
            2,
            kernel_size=1,
            pool_size=(1, 2),
            visible="gaussian",
            learning_rate=0.01,
            **FAST,
        ),
        ConvDBN(
            (2, 3),
            kernel_size=1,
            pool_size=(1, 2),
            visible="gaussian",
            learning_rate=0.01,
            **FAST,
        ),
    ]
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def _strokes(n: int, seed: int = 0, size: int = 10) -> np.ndarray:
    """Binary images of short horizontal or vertical strokes, (n, 1, size, size)."""
    rng = np.random.default_rng(seed)
    X = np.zeros((n, 1, size, size))
    for i in range(n):
        r, c = rng.integers(0, size - 3, size=2)
        if rng.random() < 0.5:
            X[i, 0, r, c : c + 4] = 1
        else:
            X[i, 0, r : r + 4, c] = 1
    return X


def test_convrbm_learns_strokes():
    X = _strokes(150)
    rbm = ConvRBM(
        6,
        kernel_size=4,
        pool_size=2,
        learning_rate=1.0,
        momentum=0.5,
        sparsity_cost=0.1,
        **{**FAST, "max_iter": 15},
    )
    rbm.fit(X)
    errors = rbm.reconstruction_errors_
    assert rbm.n_iter_ == 15 and len(errors) == 15
    assert errors[-1] < 0.5 * errors[0]
    assert rbm.components_.shape == (6, 1, 4, 4) and rbm.intercept_hidden_.shape == (6,)
    assert rbm.intercept_visible_.shape == (1,)
    assert rbm.hidden_shape_ == (6, 7, 7) and rbm.output_shape_ == (6, 4, 4)
    # The model prefers stroke images to random images with as many pixels on.
    noise = (np.random.default_rng(1).random((150, 1, 10, 10)) < 4 / 100).astype(float)
    assert rbm.free_energy(X).mean() < rbm.free_energy(noise).mean()
    # Mean-field reconstructions are closer to strokes than the all-background image is.
    recon = rbm.reconstruct(X)
    assert recon.shape == X.shape
    assert ((recon - X) ** 2).sum() < (X**2).sum()


def test_transform_is_pooling_probability_and_blocks_hold_at_most_one_unit():
    X = _strokes(40)
    rbm = ConvRBM(3, kernel_size=3, pool_size=3, **FAST).fit(
        X
    )  # 8x8 maps, 3x3 blocks: partial edges
    P = rbm.transform(X)
    H = rbm.hidden_probabilities(X)
    assert (
        rbm.output_shape_ == (3, 3, 3)
        and P.shape == (40, 27)
        and H.shape == (40, 3, 8, 8)
    )
    assert P.min() >= 0 and P.max() <= 1
    # P(pool on) is the sum of the block's detection probabilities (at most one unit on).
    padded = np.zeros((40, 3, 9, 9))
    padded[:, :, :8, :8] = H
    block_sums = padded.reshape(40, 3, 3, 3, 3, 3).sum(axis=(3, 5))
    np.testing.assert_allclose(P.reshape(40, 3, 3, 3), block_sums, rtol=1e-10)


def test_input_forms_agree():
    X = _strokes(30)
    a = ConvRBM(2, kernel_size=3, **FAST).fit(X)  # 4-D
    b = ConvRBM(2, kernel_size=3, **FAST).fit(X[:, 0])  # 3-D
    c = ConvRBM(2, kernel_size=3, input_shape=(1, 10, 10), **FAST).fit(
        X.reshape(30, -1)
    )
    d = ConvRBM(2, kernel_size=3, **FAST).fit(
        X.reshape(30, -1)
    )  # 100 features: a 10x10 image
    for other in (b, c, d):
        np.testing.assert_array_equal(other.components_, a.components_)
        np.testing.assert_array_equal(other.transform(X), a.transform(X))
    assert a.n_features_in_ == 100 and a.input_shape_ == (1, 10, 10)
    assert list(a.get_feature_names_out()[:2]) == ["convrbm0", "convrbm1"]


def test_reproducible_and_backends_agree():
    X = _strokes(30)
    fits = [
        ConvRBM(3, kernel_size=3, backend=backend, dtype="float64", **FAST).fit(X)
        for backend in ("cpu", "cpu", "numpy")
    ]
    np.testing.assert_array_equal(fits[0].components_, fits[1].components_)
    # The compiled backend draws the same samples as the reference: same model up to rounding.
    np.testing.assert_allclose(
        fits[0].components_, fits[2].components_, rtol=1e-9, atol=1e-12
    )
    np.testing.assert_allclose(
        fits[0].reconstruction_errors_, fits[2].reconstruction_errors_, rtol=1e-9
    )
    other = ConvRBM(
        3, kernel_size=3, dtype="float64", **{**FAST, "random_state": 1}
    ).fit(X)
    assert not np.allclose(other.components_, fits[0].components_)


def test_dtype_follows_input_and_parameter():
    X = _strokes(20)
    assert (
        ConvRBM(2, kernel_size=3, **FAST).fit(X.astype(np.float32)).components_.dtype
        == np.float32
    )
    rbm = ConvRBM(2, kernel_size=3, dtype="float32", **FAST).fit(X)
    assert rbm.components_.dtype == np.float32 and rbm.transform(X).dtype == np.float32


def test_pickle_holds_numpy_only_and_predicts_on_another_backend():
    X = _strokes(20)
    rbm = ConvRBM(2, kernel_size=3, **FAST).fit(X)
    clone_ = pickle.loads(pickle.dumps(rbm))
    np.testing.assert_array_equal(clone_.transform(X), rbm.transform(X))
    for value in vars(rbm).values():
        assert not hasattr(value, "make_rng")  # no Ops object is kept
    clone_.set_params(backend="numpy")
    np.testing.assert_allclose(clone_.transform(X), rbm.transform(X), rtol=1e-6)


def test_in_a_pipeline_on_digits():
    X, y, _ = load_digits_images()
    pipe = make_pipeline(
        ConvRBM(8, kernel_size=3, **{**FAST, "max_iter": 5}),
        LogisticRegression(max_iter=500),
    )
    pipe.fit(X[:300], y[:300])
    assert (
        pipe.score(X[300:600], y[300:600]) > 0.7
    )  # about 0.77 (10 classes; 72 pooled features)


def test_gaussian_visible_units():
    rng = np.random.default_rng(2)
    X = _strokes(40) + 0.1 * rng.normal(size=(40, 1, 10, 10))
    X = (X - X.mean()) / X.std()
    rbm = ConvRBM(
        4,
        kernel_size=4,
        visible="gaussian",
        learning_rate=0.05,
        **{**FAST, "max_iter": 5},
    ).fit(X)
    assert np.isfinite(rbm.components_).all()
    assert rbm.reconstruction_errors_[-1] < rbm.reconstruction_errors_[0]


def test_visible_biases_start_at_the_data_marginals():
    X = _strokes(40)
    untrained = dict(FAST, max_iter=0)
    gauss = ConvRBM(2, kernel_size=3, visible="gaussian", **untrained).fit(X)
    np.testing.assert_allclose(gauss.intercept_visible_, [X.mean()])
    bern = ConvRBM(2, kernel_size=3, **untrained).fit(X)
    np.testing.assert_allclose(
        bern.intercept_visible_, [np.log(X.mean() / (1 - X.mean()))]
    )
    assert bern.reconstruction_errors_ == [] and bern.n_iter_ == 0


def test_bad_inputs_are_refused():
    X = _strokes(10)
    with pytest.raises(
        ValueError,
        match=r"visible='bernoulli' needs X in \[0, 1\].*Received: X with values",
    ):
        ConvRBM(2, kernel_size=3, **FAST).fit(X * 2)
    with pytest.raises(ValueError, match="kernel_size .* is larger than the images"):
        ConvRBM(2, kernel_size=11, **FAST).fit(X)
    with pytest.raises(
        ValueError, match="input_shape=.* holds 99 values per sample but X has 100"
    ):
        ConvRBM(2, kernel_size=3, input_shape=(1, 9, 11), **FAST).fit(X.reshape(10, -1))
    with pytest.raises(ValueError, match="input_shape must be"):
        ConvRBM(2, kernel_size=3, input_shape=(1, 0, 10), **FAST).fit(X.reshape(10, -1))
    with pytest.raises(ValueError, match="pool_size"):
        ConvRBM(2, kernel_size=3, pool_size=0, **FAST).fit(X)
    with pytest.raises(ValueError, match="visible"):
        ConvRBM(2, visible="binary").fit(X)
    rbm = ConvRBM(2, kernel_size=3, **FAST).fit(X)
    with pytest.raises(
        ValueError,
        match=r"X has images of shape \(1, 5, 20\) but the model was fitted on \(1, 10, 10\)",
    ):
        rbm.transform(np.zeros((2, 1, 5, 20)))
    with pytest.raises(
        ValueError, match="X has 64 features, but ConvRBM is expecting 100"
    ):
        rbm.transform(np.zeros((2, 1, 8, 8)))
    with pytest.raises(
        ValueError, match=r"X must be 2-D .* Received: X.shape=\(2, 1, 1, 10, 10\)"
    ):
        rbm.transform(np.zeros((2, 1, 1, 10, 10)))


# ---------------------------------------------------------------------------- ConvDBN
def test_convdbn_stacks_rbms_on_pooling_probabilities():
    X = _strokes(40, size=12)
    dbn = ConvDBN(
        (4, 5),
        kernel_size=(3, 2),
        pool_size=(2, (1, 2)),
        learning_rate=(0.5, 0.1),
        max_iter=(2, 1),
        **{k: v for k, v in FAST.items() if k != "max_iter"},
    ).fit(X)
    first, second = dbn.rbms_
    assert first.output_shape_ == (4, 5, 5) and second.output_shape_ == (5, 4, 2)
    assert (
        first.learning_rate == 0.5
        and second.learning_rate == 0.1
        and second.n_iter_ == 1
    )
    assert second.visible == "bernoulli" and second.input_shape_ == (4, 5, 5)
    expected = second.transform(first.transform(X).reshape(40, 4, 5, 5))
    np.testing.assert_allclose(dbn.transform(X), expected)
    assert dbn.output_shape_ == (5, 4, 2) and dbn.transform(X).shape == (40, 40)


def test_convdbn_refuses_bad_layer_settings():
    X = _strokes(10)
    with pytest.raises(
        ValueError,
        match=r"kernel_size must be a single value or hold one value per layer \(2",
    ):
        ConvDBN((2, 2), kernel_size=(3, 3, 3), **FAST).fit(X)
    with pytest.raises(
        ValueError, match="Layer 2's kernel .* is larger than its input"
    ):
        ConvDBN((2, 2), kernel_size=(3, 5), **FAST).fit(X)
    with pytest.raises(ValueError, match="filters must hold positive ints"):
        ConvDBN((2, 0), **FAST).fit(X)
    with pytest.raises(ValueError, match="filters must name at least one layer"):
        ConvDBN((), **FAST).fit(X)
    with pytest.raises(ValueError, match="sparsity_target"):
        ConvDBN((2, 2), kernel_size=3, sparsity_target=(0.1, 1.5), **FAST).fit(X)


# ------------------------------------------------------------------------ pretrainer
def _network(layers, shape=(1, 10, 10), dtype=np.float64):
    return Network(layers, shape, get_ops("cpu", n_threads=1), rng=0, dtype=dtype)


def test_pretrainer_is_registered():
    assert get_pretrainer("cdbn") is CDBNPretrainer


def test_pretrainer_initialises_the_leading_convolutions():
    X = _strokes(60)
    net = _network(
        [
            Conv2D(4, 3),
            ReLU(),
            MaxPool2D(2),
            Conv2D(5, 2),
            Sigmoid(),
            Flatten(),
            Dense(6),
            Dense(3),
        ]
    )
    before = net.get_weights()
    pre = CDBNPretrainer(max_iter=3, learning_rate=0.5, momentum=0.5, batch_size=10)
    pre.pretrain(net, X, random_state=0)
    after = net.get_weights()
    assert pre.pretrained_layers_ == [0, 3]
    for i in (0, 3):
        assert not np.allclose(after[i]["W"], before[i]["W"])
        assert after[i]["W"].dtype == np.float64
    for i in (6, 7):  # dense layers are left as initialised
        np.testing.assert_array_equal(after[i]["W"], before[i]["W"])
    assert all(e[-1] < e[0] for e in pre.reconstruction_errors_)
    # Same seed, same weights.
    net2 = _network(
        [
            Conv2D(4, 3),
            ReLU(),
            MaxPool2D(2),
            Conv2D(5, 2),
            Sigmoid(),
            Flatten(),
            Dense(6),
            Dense(3),
        ]
    )
    clone(pre).pretrain(net2, X, random_state=0)
    np.testing.assert_array_equal(net2.get_weights()[3]["W"], after[3]["W"])


def test_pretrainer_first_layer_is_a_convrbm():
    """Layer 1 of the pretrainer is exactly a ConvRBM with the layer's settings (same seed stream)."""
    X = _strokes(30)
    net = _network([Conv2D(3, 3), MaxPool2D(2), Dense(2)])
    pre = CDBNPretrainer(max_iter=2, batch_size=10, init="small")
    pre.pretrain(net, X, random_state=np.random.RandomState(5))
    rbm = ConvRBM(
        3,
        kernel_size=3,
        pool_size=2,
        max_iter=2,
        batch_size=10,
        learning_rate=pre.learning_rates_[0],
        momentum=pre.momentum,
        sparsity_cost=pre.sparsity_cost,
        n_threads=1,
        random_state=np.random.RandomState(5),
    ).fit(X)
    np.testing.assert_allclose(
        net.layers[0].get_weights()["W"], rbm.components_, rtol=1e-12
    )
    np.testing.assert_allclose(
        net.layers[0].get_weights()["b"], rbm.intercept_hidden_, rtol=1e-12
    )


def test_pretrainer_matches_padding_strides_groups_and_other_pooling():
    X = _strokes(30, size=11)
    layers = [
        Conv2D(4, 3, padding="same"),
        ReLU(),
        MaxPool2D(2),  # 11x11 -> 11x11 -> 5x5 (partial block cropped)
        Conv2D(4, 2, groups=2),
        MeanPool2D(2),  # mean pooling: plain detection units
        Conv2D(2, 2, stride=1),
        Flatten(),
        Dense(2),
    ]
    net = _network(layers, shape=(1, 11, 11))
    pre = CDBNPretrainer(max_iter=1, batch_size=10)
    pre.pretrain(net, X, random_state=0)
    assert pre.pretrained_layers_ == [0, 3, 5]
    assert pre._plan(net)[0][1] == (2, 2) and pre._plan(net)[1][1] == (1, 1)


def test_pretrainer_refuses_networks_without_leading_convolutions():
    net = Network([Dense(4), Dense(2)], (10,), get_ops("numpy"), rng=0)
    with pytest.raises(ValueError, match="needs a network with image input"):
        CDBNPretrainer().pretrain(net, np.zeros((3, 10)))
    net = _network([Flatten(), Dense(4), Dense(2)])
    with pytest.raises(
        ValueError, match="found no Conv2D layer to pretrain.*Received: layers="
    ):
        CDBNPretrainer().pretrain(net, _strokes(3))
    net = _network([Conv2D(2, 3), Dense(2)])
    with pytest.raises(
        ValueError, match=r"X must have shape \(n_samples, \*network.input_shape\)"
    ):
        CDBNPretrainer().pretrain(net, np.zeros((3, 1, 9, 9)))
    with pytest.raises(ValueError, match="sparsity_target must be in"):
        CDBNPretrainer(sparsity_target=0).pretrain(net, _strokes(3))
    with pytest.raises(ValueError, match="visible='bernoulli' needs inputs in"):
        CDBNPretrainer(visible="bernoulli").pretrain(net, _strokes(3) - 0.5)


def test_cnn_classifier_with_cdbn_pretrainer():
    X, y, _ = load_digits_images()
    layers = ("conv:6x3x3", "sigmoid", "maxpool:2", "dense:16", "relu")
    # A vanishing learning rate keeps the supervised step from moving the weights: what is left
    # is the initialisation, which must be the ConvRBM's (sparse: clearly negative hidden biases).
    kw = dict(max_iter=1, learning_rate=1e-12, n_threads=1, random_state=0)
    clf = CNNClassifier(layers, pretrainer="cdbn", **kw).fit(X[:200], y[:200])
    plain = CNNClassifier(layers, **kw).fit(X[:200], y[:200])
    assert np.all(clf.network_weights_[0]["b"] < -0.5)
    np.testing.assert_allclose(plain.network_weights_[0]["b"], 0, atol=1e-6)
    np.testing.assert_allclose(
        clf.network_weights_[3]["W"], plain.network_weights_[3]["W"], atol=1e-6
    )
    assert clf.predict(X[:5]).shape == (5,)


# ------------------------------------------------------------ semi-supervised use
def test_cnn_semi_supervised_fit_pretrains_on_all_rows_and_trains_on_labelled_ones(
    monkeypatch,
):
    X, y, _ = load_digits_images()
    X, y = X[:120], y[:120].copy()
    y_semi = y.copy()
    y_semi[40:] = -1  # 40 labelled, 80 unlabelled
    seen = {}

    class Recording(CDBNPretrainer):
        def pretrain(self, network, X, *, random_state=None, verbose=0):
            seen["pretrain"] = X.shape[0]
            super().pretrain(network, X, random_state=random_state, verbose=verbose)

    original = CNNClassifier._train_batch

    def counting(self, network, xb, yb, lr):
        seen["trained"] = seen.get("trained", 0) + xb.shape[0]
        assert int(np.min(yb)) >= 0  # no unlabelled row reaches the loss
        return original(self, network, xb, yb, lr)

    monkeypatch.setattr(CNNClassifier, "_train_batch", counting)
    layers = ("conv:4x3x3", "sigmoid", "maxpool:2", "dense:8", "relu")
    clf = CNNClassifier(
        layers,
        pretrainer=Recording(max_iter=1),
        max_iter=1,
        n_threads=1,
        random_state=0,
    )
    clf.fit(X, y_semi)
    assert seen == {"pretrain": 120, "trained": 40}
    np.testing.assert_array_equal(clf.classes_, np.unique(y[:40]))
    assert -1 not in clf.classes_ and clf.predict(X[:3]).shape == (3,)


def test_cnn_semi_supervised_errors_and_plain_labels():
    X, y, _ = load_digits_images()
    layers = ("conv:2x3x3", "maxpool:2", "dense:4")
    clf = CNNClassifier(
        layers, pretrainer=CDBNPretrainer(max_iter=1), max_iter=1, n_threads=1
    )
    with pytest.raises(ValueError, match="Every sample is marked unlabelled"):
        clf.fit(X[:10], np.full(10, -1))
    with pytest.raises(ValueError, match="-1 cannot be a class label"):
        clf.fit(
            X[:10], np.array([-1, 1] * 5)
        )  # binary labels -1/+1 clash with the unlabelled marker
    with pytest.raises(ValueError, match="cannot be a class"):
        clf.partial_fit(X[:10], np.array([-1, 0, 1, 0, 1] * 2), classes=[-1, 0, 1])
    # Without a pretrainer, -1 is an ordinary label.
    plain = CNNClassifier(layers, max_iter=1, n_threads=1).fit(
        X[:10], np.array([-1, 1] * 5)
    )
    np.testing.assert_array_equal(plain.classes_, [-1, 1])


def test_divergence_is_reported():
    from neuroplug.network import TrainingDivergedError

    X = np.random.default_rng(3).normal(size=(20, 1, 6, 6)) * 10
    with pytest.raises(TrainingDivergedError, match="Lower learning_rate"):
        ConvRBM(
            2,
            kernel_size=3,
            visible="gaussian",
            learning_rate=1e4,
            **{**FAST, "max_iter": 20},
        ).fit(X)


@pytest.mark.parametrize(
    "make",
    [
        lambda **kw: ConvRBM(3, kernel_size=3, **kw),
        lambda **kw: ConvDBN((3, 2), kernel_size=(3, 2), pool_size=(2, 1), **kw),
    ],
    ids=["ConvRBM", "ConvDBN"],
)
def test_n_iter_is_the_deprecated_name_of_max_iter(make):
    X = _strokes(20)
    kw = {k: v for k, v in FAST.items() if k != "max_iter"}
    new = make(max_iter=2, **kw).fit(X)
    with pytest.warns(FutureWarning, match="n_iter is deprecated.*renamed max_iter"):
        old = make(n_iter=2, **kw).fit(X)
    np.testing.assert_array_equal(old.transform(X), new.transform(X))
    assert "max_iter" in new.get_params() and new.get_params()["n_iter"] == "deprecated"


def test_cdbn_pretrainer_n_iter_is_the_deprecated_name_of_max_iter():
    with pytest.warns(FutureWarning, match="n_iter is deprecated"):
        assert renamed_n_iter(CDBNPretrainer(n_iter=3)) == 3
    assert renamed_n_iter(CDBNPretrainer(max_iter=4)) == 4
    with pytest.raises(ValueError, match="n_iter must be an int >= 0"):
        CDBNPretrainer(n_iter=-1)._validate_params()
