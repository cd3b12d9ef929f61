"""SigmoidBeliefNet: scikit-learn conformance, the likelihood estimate against exact enumeration,
sampling, transform, backends; and the "sbn" pretrainer."""

from __future__ import annotations

import itertools
import pickle
import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.utils import check_random_state
from sklearn.utils.estimator_checks import parametrize_with_checks

from neuroplug.backends import get_ops
from neuroplug.estimators import SigmoidBeliefNet
from neuroplug.layers.activations import Sigmoid
from neuroplug.layers.dense import Dense
from neuroplug.network import Network
from neuroplug.plugins import get_pretrainer
from neuroplug.pretrain.sbn import SBNPretrainer


# --------------------------------------------------------------------------------------------
# Helpers: exact log p(x) by enumeration (plain float64 NumPy, log-sigmoid form)
# --------------------------------------------------------------------------------------------
def _log_bern(x, logits):
    p = 1.0 / (1.0 + np.exp(-logits))
    return (x * np.log(p) + (1 - x) * np.log(1 - p)).sum(axis=-1)


def exact_log_px(X, Wg, bg):
    Wg = [np.asarray(w, dtype=np.float64) for w in Wg]
    bg = [np.asarray(b, dtype=np.float64) for b in bg]
    sizes = [b.shape[0] for b in bg]
    L = len(Wg)
    terms = []
    for bits in itertools.product((0.0, 1.0), repeat=sum(sizes[1:])):
        bits = np.array(bits)
        h, start = [X], 0
        for n in sizes[1:]:
            h.append(np.broadcast_to(bits[start : start + n], (X.shape[0], n)))
            start += n
        t = _log_bern(h[L], np.broadcast_to(bg[L], h[L].shape))
        for l in range(L):
            t = t + _log_bern(h[l], h[l + 1] @ Wg[l] + bg[l])
        terms.append(t)
    terms = np.stack(terms, axis=1)
    peak = terms.max(axis=1, keepdims=True)
    return peak[:, 0] + np.log(np.exp(terms - peak).sum(axis=1))


def two_cause_data(n=300, seed=0):
    """Two independent causes, each switching on its own 4 of 8 pixels (plus noise)."""
    r = np.random.default_rng(seed)
    causes = r.random((n, 2)) < 0.5
    p = np.where(np.repeat(causes, 4, axis=1), 0.95, 0.05)
    return (r.random((n, 8)) < p).astype(np.float64)


@pytest.fixture(scope="module")
def fitted():
    X = two_cause_data()
    return SigmoidBeliefNet(
        (3, 2),
        learning_rate=0.2,
        batch_size=10,
        max_iter=40,
        n_eval_samples=2000,
        random_state=0,
        n_threads=1,
    ).fit(X), X


# --------------------------------------------------------------------------------------------
# scikit-learn conformance
# --------------------------------------------------------------------------------------------
_SW_EQUIVALENCE = {
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


@parametrize_with_checks(
    [
        SigmoidBeliefNet(
            hidden_layer_sizes=(3,), max_iter=2, n_eval_samples=8, n_threads=1
        )
    ],
    expected_failed_checks=lambda est: _SW_EQUIVALENCE,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


# --------------------------------------------------------------------------------------------
# Learning and the likelihood estimate against exact enumeration
# --------------------------------------------------------------------------------------------
def test_fit_learns_the_correlations_and_the_estimate_matches_exact_enumeration(fitted):
    sbn, X = fitted
    exact = exact_log_px(X, sbn.generative_weights_, sbn.generative_biases_)
    mean = X.mean(axis=0)
    factorial = (X * np.log(mean) + (1 - X) * np.log(1 - mean)).sum(axis=1).mean()
    assert exact.mean() > factorial + 2.0  # independent pixels miss about 2.7 nats
    estimate, std = sbn.score_samples(X, return_std=True)
    assert estimate.shape == std.shape == (X.shape[0],)
    np.testing.assert_allclose(estimate, exact, atol=0.05)
    # The reported uncertainty is honest: errors are within a few standard deviations.
    assert (np.abs(estimate - exact) <= 5 * std + 1e-3).all()
    assert sbn.score(X) == pytest.approx(estimate.mean())


def test_fewer_samples_give_a_looser_bound_on_average(fitted):
    sbn, X = fitted
    exact = exact_log_px(X, sbn.generative_weights_, sbn.generative_biases_).mean()
    one = clone(sbn).set_params(n_eval_samples=1)
    one.__dict__.update({k: v for k, v in sbn.__dict__.items() if k.endswith("_")})
    elbo = one.score(X)
    assert (
        elbo < exact - 0.05
    )  # the one-sample estimate is the ELBO: a strict bound here
    log_px, std = one.score_samples(X, return_std=True)
    np.testing.assert_array_equal(
        std, 0.0
    )  # one sample: no spread of the weights to measure


def test_bound_curve_rises_and_stays_below_the_likelihood(fitted):
    sbn, X = fitted
    curve = np.array(sbn.bound_curve_)
    assert len(curve) == sbn.n_iter_ == 40
    assert curve[-5:].mean() > curve[:5].mean() + 1.0
    exact = exact_log_px(X, sbn.generative_weights_, sbn.generative_biases_).mean()
    assert curve[-1] < exact + 0.1


@pytest.mark.parametrize("K", [1, 4])
def test_deeper_and_reweighted_training_run_and_improve(K):
    X = two_cause_data(200, seed=1)
    sbn = SigmoidBeliefNet(
        (4, 3, 2),
        learning_rate=0.2,
        batch_size=10,
        max_iter=60,
        n_importance_samples=K,
        random_state=0,
        n_threads=1,
    ).fit(X)
    assert len(sbn.generative_weights_) == 3
    exact = exact_log_px(X, sbn.generative_weights_, sbn.generative_biases_).mean()
    mean = X.mean(axis=0)
    factorial = (X * np.log(mean) + (1 - X) * np.log(1 - mean)).sum(axis=1).mean()
    assert exact > factorial + 1.5


def test_score_samples_is_reproducible_row_by_row(fitted):
    sbn, X = fitted
    a = sbn.score_samples(X[:20])
    b = sbn.score_samples(X[[7, 3, 19]])
    np.testing.assert_array_equal(a[[7, 3, 19]], b)
    other = clone(sbn).set_params(random_state=1)
    other.__dict__.update({k: v for k, v in sbn.__dict__.items() if k.endswith("_")})
    assert not np.array_equal(
        other.score_samples(X[:20]), a
    )  # a different stream of samples


# --------------------------------------------------------------------------------------------
# sample and transform
# --------------------------------------------------------------------------------------------
def test_samples_reproduce_the_data_statistics(fitted):
    sbn, X = fitted
    S = sbn.sample(3000)
    assert S.shape == (3000, 8) and S.dtype == np.float32
    assert set(np.unique(S)) <= {0.0, 1.0}
    np.testing.assert_allclose(S.mean(axis=0), X.mean(axis=0), atol=0.06)
    # The pixels of one cause fire together, the two groups independently.
    c = np.corrcoef(S.T)
    assert c[0, 1] > 0.5 and abs(c[0, 5]) < 0.15
    np.testing.assert_array_equal(
        sbn.sample(10), sbn.sample(10)
    )  # same random_state, same draws


def test_transform_is_the_mean_field_recognition_pass(fitted):
    sbn, X = fitted
    Xb = (X > 0.5).astype(np.float32)
    h1 = 1 / (
        1 + np.exp(-(Xb @ sbn.recognition_weights_[0] + sbn.recognition_biases_[0]))
    )
    h2 = 1 / (
        1 + np.exp(-(h1 @ sbn.recognition_weights_[1] + sbn.recognition_biases_[1]))
    )
    top = sbn.transform(X)
    assert top.shape == (X.shape[0], 2) and top.dtype == np.float32
    np.testing.assert_allclose(top, h2, rtol=1e-5, atol=1e-6)
    both = clone(sbn).set_params(transform_layers="all")
    both.__dict__.update({k: v for k, v in sbn.__dict__.items() if k.endswith("_")})
    np.testing.assert_allclose(
        both.transform(X), np.hstack([h1, h2]), rtol=1e-5, atol=1e-6
    )
    assert list(both.get_feature_names_out()) == [
        f"sigmoidbeliefnet{i}" for i in range(5)
    ]


# --------------------------------------------------------------------------------------------
# Input handling, partial_fit, backends, pickling
# --------------------------------------------------------------------------------------------
def test_binarize_threshold_and_soft_targets():
    r = np.random.default_rng(0)
    P = r.random((60, 6))
    a = SigmoidBeliefNet((3,), max_iter=2, random_state=0, binarize=0.3).fit(P)
    b = SigmoidBeliefNet((3,), max_iter=2, random_state=0, binarize=None).fit(
        (P > 0.3).astype(float)
    )
    np.testing.assert_array_equal(a.recognition_weights_[0], b.recognition_weights_[0])
    soft = SigmoidBeliefNet((3,), max_iter=2, random_state=0, binarize=None).fit(P)
    assert np.isfinite(soft.score(P))
    with pytest.raises(
        ValueError, match=r"X must lie in \[0, 1\] when binarize=None.*max=1.99"
    ):
        SigmoidBeliefNet(binarize=None).fit(P * 2)
    with pytest.raises(ValueError, match="X must lie in"):
        soft.transform(P - 1)


def test_partial_fit_runs_one_epoch_per_call_and_checks_features():
    X = two_cause_data(100)
    sbn = SigmoidBeliefNet((3,), random_state=0)
    sbn.partial_fit(X[:50]).partial_fit(X[50:])
    assert sbn.n_iter_ == 2 and len(sbn.bound_curve_) == 2
    with pytest.raises(ValueError, match="features"):
        sbn.partial_fit(X[:, :5])


@pytest.mark.parametrize(
    "params,match",
    [
        (
            {"hidden_layer_sizes": (3, 0)},
            "hidden_layer_sizes must be a non-empty sequence of ints >= 1",
        ),
        ({"hidden_layer_sizes": ()}, "hidden_layer_sizes"),
        ({"learning_rate": 0}, "learning_rate"),
        ({"n_importance_samples": 0}, "n_importance_samples"),
        ({"transform_layers": "middle"}, "transform_layers"),
    ],
)
def test_bad_parameters_are_refused(params, match):
    with pytest.raises(ValueError, match=match):
        SigmoidBeliefNet(**params).fit(two_cause_data(20))


def test_sample_refuses_bad_counts(fitted):
    with pytest.raises(
        ValueError, match="n_samples must be an int >= 1. Received: n_samples=0"
    ):
        fitted[0].sample(0)


def test_numpy_and_cpu_backends_agree():
    X = two_cause_data(80)
    fits = [
        SigmoidBeliefNet(
            (4, 2),
            max_iter=3,
            n_importance_samples=2,
            random_state=0,
            backend=b,
            n_eval_samples=20,
        ).fit(X)
        for b in ("numpy", "cpu")
    ]
    for a, b in zip(
        fits[0].generative_weights_ + fits[0].recognition_weights_,
        fits[1].generative_weights_ + fits[1].recognition_weights_,
    ):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        fits[0].score_samples(X), fits[1].score_samples(X), rtol=1e-4
    )
    np.testing.assert_array_equal(fits[0].sample(5), fits[1].sample(5))


def test_pickle_round_trip_keeps_numpy_state(fitted):
    sbn, X = fitted
    restored = pickle.loads(pickle.dumps(sbn))
    assert all(
        isinstance(w, np.ndarray)
        for w in restored.generative_weights_ + restored.recognition_weights_
    )
    np.testing.assert_array_equal(restored.transform(X), sbn.transform(X))
    np.testing.assert_array_equal(
        restored.score_samples(X[:10]), sbn.score_samples(X[:10])
    )


def test_verbose_shows_a_progress_bar(capsys):
    SigmoidBeliefNet((2,), max_iter=2, verbose=1, random_state=0).fit(
        two_cause_data(30)
    )
    assert "SigmoidBeliefNet" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# The "sbn" pretrainer
# --------------------------------------------------------------------------------------------
def _net(layers, n_in, backend="cpu"):
    return Network(layers, (n_in,), get_ops(backend, n_threads=1), rng=0)


def test_pretrainer_is_registered():
    assert get_pretrainer("sbn") is SBNPretrainer


@pytest.mark.parametrize("mode", ["greedy", "joint"])
def test_pretrainer_copies_the_recognition_weights(mode):
    X = two_cause_data(100).astype(np.float32)
    net = _net([Dense(5), Sigmoid(), Dense(3), Sigmoid(), Dense(2)], 8)
    output_before = net.layers[4].get_weights()
    SBNPretrainer(mode=mode, max_iter=3, fix_units=False).pretrain(
        net, X, random_state=0
    )
    # The same SBN(s), trained with the seeds the pretrainer draws from random_state.
    rs = check_random_state(0)
    kw = dict(
        learning_rate=0.1,
        batch_size=20,
        max_iter=3,
        binarize=None,
        backend=get_ops("cpu", n_threads=1),
    )
    if mode == "joint":
        sbn = SigmoidBeliefNet((5, 3), random_state=rs.randint(2**31 - 1), **kw).fit(X)
        expected = list(zip(sbn.recognition_weights_, sbn.recognition_biases_))
    else:
        first = SigmoidBeliefNet((5,), random_state=rs.randint(2**31 - 1), **kw).fit(X)
        second = SigmoidBeliefNet((3,), random_state=rs.randint(2**31 - 1), **kw).fit(
            first.transform(X)
        )
        expected = [
            (first.recognition_weights_[0], first.recognition_biases_[0]),
            (second.recognition_weights_[0], second.recognition_biases_[0]),
        ]
    for i, (W, b) in zip((0, 2), expected):
        got = net.layers[i].get_weights()
        np.testing.assert_array_equal(got["W"], W)
        np.testing.assert_array_equal(got["b"], b)
    # The output layer is never pretrained.
    for k, v in net.layers[4].get_weights().items():
        np.testing.assert_array_equal(v, output_before[k])


def test_pretrainer_folds_the_minmax_rescaling_into_the_first_layer():
    r = np.random.default_rng(0)
    X = (r.random((80, 6)) * np.array([1, 2, 3, 4, 5, 6]) - 1).astype(
        np.float32
    )  # outside [0, 1]
    net = _net([Dense(4), Sigmoid(), Dense(2)], 6)
    SBNPretrainer(max_iter=2, fix_units=False).pretrain(net, X, random_state=0)
    low, high = X.min(axis=0), X.max(axis=0)
    scaled = (X - low) / (high - low)
    sbn = SigmoidBeliefNet(
        (4,),
        learning_rate=0.1,
        batch_size=20,
        max_iter=2,
        binarize=None,
        backend=get_ops("cpu", n_threads=1),
        random_state=check_random_state(0).randint(2**31 - 1),
    ).fit(scaled)
    # The dense layer computes the SBN's recognition pre-activations on the raw inputs.
    w = net.layers[0].get_weights()
    np.testing.assert_allclose(
        X @ w["W"] + w["b"],
        scaled @ sbn.recognition_weights_[0] + sbn.recognition_biases_[0],
        rtol=1e-4,
        atol=1e-4,
    )


def test_pretrainer_skips_non_dense_prefix_and_stops_at_other_weighted_layers():
    from neuroplug.pretrain.sbn import _dense_run

    net = _net(
        [Dense(5), Sigmoid(), Dense(4), Sigmoid(), Dense(3), Sigmoid(), Dense(2)], 8
    )
    assert _dense_run(net.layers) == [0, 2, 4]
    # Only the output layer: nothing to pretrain, with a warning, and nothing changes.
    net = _net([Dense(2)], 8)
    before = net.layers[0].get_weights()
    with pytest.warns(UserWarning, match="no hidden dense layer"):
        SBNPretrainer().pretrain(net, two_cause_data(20).astype(np.float32))
    np.testing.assert_array_equal(net.layers[0].get_weights()["W"], before["W"])


def test_pretrainer_input_errors():
    X = two_cause_data(20).astype(np.float32)
    net = _net([Dense(3), Sigmoid(), Dense(2)], 8)
    with pytest.raises(
        ValueError, match="mode must be 'greedy' or 'joint'. Received: mode='deep'"
    ):
        SBNPretrainer(mode="deep").pretrain(net, X)
    with pytest.raises(ValueError, match="scaling must be"):
        SBNPretrainer(scaling="zscore").pretrain(net, X)
    with pytest.raises(
        ValueError, match=r"inputs of dense layer 0 in \[0, 1\] with scaling='none'"
    ):
        SBNPretrainer(scaling="none").pretrain(net, X * 3)
    with pytest.raises(ValueError, match=r"X must have shape \(n, 8\)"):
        SBNPretrainer().pretrain(net, X[:, :4])


def test_pretrainer_binarizes_first_layer_inputs_only():
    r = np.random.default_rng(1)
    X = r.random((60, 8)).astype(np.float32)
    net = _net([Dense(4), Sigmoid(), Dense(3), Sigmoid(), Dense(2)], 8, backend="numpy")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SBNPretrainer(max_iter=2, binarize=0.5, fix_units=False).pretrain(
            net, X, random_state=3
        )
    rs = check_random_state(3)
    kw = dict(learning_rate=0.1, batch_size=20, max_iter=2, backend=get_ops("numpy"))
    first = SigmoidBeliefNet(
        (4,), binarize=0.5, random_state=rs.randint(2**31 - 1), **kw
    ).fit(X)
    second = SigmoidBeliefNet(
        (3,), binarize=None, random_state=rs.randint(2**31 - 1), **kw
    ).fit(first.transform(X))
    np.testing.assert_array_equal(
        net.layers[0].get_weights()["W"], first.recognition_weights_[0]
    )
    np.testing.assert_array_equal(
        net.layers[2].get_weights()["W"], second.recognition_weights_[0]
    )


class _RecordingSBN(SBNPretrainer):
    """Records the weights the pretrainer leaves in the network (class-level: the estimator clones it)."""

    records: list = []

    def pretrain(self, network, X, *, random_state=None, verbose=0):
        before = network.get_weights()
        super().pretrain(network, X, random_state=random_state, verbose=verbose)
        type(self).records.append((before, network.get_weights(), X.shape))


def test_cnn_classifier_with_the_sbn_pretrainer():
    from sklearn.datasets import load_digits

    from neuroplug.estimators import CNNClassifier

    X, y = load_digits(return_X_y=True)
    X, y = X[:400] / 16, y[:400]
    _RecordingSBN.records = []
    clf = CNNClassifier(
        layers=("dense:32", "sigmoid", "dense:16", "sigmoid"),
        pretrainer=_RecordingSBN(max_iter=20, learning_rate=0.3),
        max_iter=15,
        learning_rate=1e-2,
        random_state=0,
        n_threads=1,
    ).fit(X, y)
    ((before, after, shape),) = _RecordingSBN.records
    assert shape == (400, 64)
    # Both hidden dense layers (0 and 2) were initialised from an SBN; the output layer (4) was not.
    for i in (0, 2):
        assert not np.array_equal(before[i]["W"], after[i]["W"])
    np.testing.assert_array_equal(before[4]["W"], after[4]["W"])
    assert clf.score(X, y) > 0.85
    # By name, through the plugin registry.
    named = CNNClassifier(
        layers=("dense:16", "sigmoid"),
        pretrainer="sbn",
        max_iter=3,
        random_state=0,
        n_threads=1,
    ).fit(X[:100], y[:100])
    assert named.predict(X[:5]).shape == (5,)
