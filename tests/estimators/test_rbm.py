"""RBM estimator: scikit-learn conformance, likelihoods (exact enumeration, AIS, pseudo-likelihood),
sampling, reproducibility and backends; and neuroplug.likelihood."""

from __future__ import annotations

import io
import itertools
import pickle
from contextlib import redirect_stderr

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV
from sklearn.utils.estimator_checks import parametrize_with_checks

from neuroplug.estimators import RBM
from neuroplug.likelihood import (
    ais_betas,
    base_visible_bias,
    rbm_log_likelihood,
    rbm_log_partition_ais,
    rbm_log_partition_exact,
)
from neuroplug.ops import Ops


@pytest.fixture(scope="module")
def digits_binary():
    X = load_digits().data / 16.0
    return (X > 0.5).astype(np.float64)


@pytest.fixture(scope="module")
def trained12(digits_binary):
    """An RBM with 12 hidden units trained on binarised digits: small enough to enumerate."""
    return RBM(
        12,
        learning_rate=0.05,
        batch_size=20,
        max_iter=8,
        ais_betas=3000,
        random_state=0,
    ).fit(digits_binary)


def _logsumexp(x):
    m = np.max(x)
    return m + np.log(np.exp(x - m).sum())


def _brute_log_z(W, bh, bv):
    """log Z summing exp(-E(v, h)) over every joint binary state."""
    nh, nv = W.shape
    H = np.array(list(itertools.product((0.0, 1.0), repeat=nh)))
    V = np.array(list(itertools.product((0.0, 1.0), repeat=nv)))
    neg_e = (V @ bv)[:, None] + (H @ bh)[None, :] + V @ W.T @ H.T
    return _logsumexp(neg_e.ravel())


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
        RBM(n_components=4, max_iter=3, batch_size=10, random_state=0),
        RBM(
            n_components=3,
            visible="gaussian",
            learning_rate=0.005,
            persistent=False,
            k=2,
            max_iter=2,
            batch_size=10,
            random_state=0,
        ),
    ],
    expected_failed_checks=lambda est: _SW_EQUIVALENCE,
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


# --------------------------------------------------------------------------------------------
# Exact log Z and AIS
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(3, 5), (6, 2)])
def test_exact_log_partition_against_brute_force(shape):
    r = np.random.default_rng(0)
    W = r.normal(0, 1, shape)
    bh, bv = r.normal(size=shape[0]), r.normal(size=shape[1])
    # (3, 5) enumerates the hidden layer, (6, 2) the visible one.
    assert rbm_log_partition_exact(W, bh, bv) == pytest.approx(
        _brute_log_z(W, bh, bv), abs=1e-10
    )


def test_exact_gaussian_log_partition_against_quadrature():
    """Gaussian visible units: compare with numerical integration over a 1-D visible unit."""
    W = np.array([[0.7], [-1.1]])
    bh, bv = np.array([0.3, -0.2]), np.array([0.4])
    v = np.linspace(-15, 15, 200001)[:, None]
    fe = Ops().rbm_free_energy(v, W, bh, bv, "gaussian")
    log_z = np.log(np.trapezoid(np.exp(-fe), v[:, 0]))
    assert rbm_log_partition_exact(W, bh, bv, "gaussian") == pytest.approx(
        log_z, abs=1e-8
    )


def test_probabilities_sum_to_one():
    r = np.random.default_rng(1)
    rbm = RBM(3, max_iter=2, random_state=0).fit(
        (r.random((40, 4)) < 0.5).astype(float)
    )
    V = np.array(list(itertools.product((0.0, 1.0), repeat=4)))
    for method in ("exact", "loglik"):
        assert _logsumexp(rbm.score_samples(V, method=method)) == pytest.approx(
            0.0, abs=1e-9
        )


def test_ais_within_a_tenth_of_a_nat_of_exact(trained12):
    rbm = trained12
    exact = rbm.log_partition("exact")
    log_z, std = rbm.log_partition("ais", return_std=True, random_state=0)
    assert abs(log_z - exact) < 0.1
    assert 0 < std < 0.1


def test_ais_gaussian_within_a_tenth_of_a_nat_of_exact():
    X = load_digits().data
    X = (X - X.mean(axis=0)) / (X.std(axis=0) + 1e-8)
    rbm = RBM(
        12,
        visible="gaussian",
        learning_rate=0.005,
        max_iter=5,
        ais_betas=3000,
        random_state=0,
    ).fit(X)
    exact = rbm.log_partition("exact")
    assert abs(rbm.log_partition("ais", random_state=0) - exact) < 0.1


def test_ais_result_fields_and_schedule():
    betas = ais_betas(29)
    assert (
        betas.shape == (30,)
        and betas[0] == 0
        and betas[-1] == 1
        and np.all(np.diff(betas) > 0)
    )
    assert np.sum(betas < 0.5) == 1 and np.sum((betas >= 0.5) & (betas < 0.9)) == 8
    r = np.random.default_rng(0)
    W, bh, bv = r.normal(0, 0.5, (4, 6)), r.normal(size=4), r.normal(size=6)
    res = rbm_log_partition_ais(
        W, bh, bv, n_runs=50, betas=300, random_state=0, ops="numpy"
    )
    assert (
        res.n_runs == 50
        and res.log_weights.shape == (50,)
        and res.betas.shape == (301,)
    )
    lo, hi = res.log_z_interval
    assert lo <= res.log_z <= hi
    assert 1 <= res.effective_sample_size <= 50
    assert (
        abs(res.log_z - rbm_log_partition_exact(W, bh, bv)) < 5 * res.log_z_std + 0.02
    )
    # Reproducible from the seed, on either backend.
    again = rbm_log_partition_ais(
        W, bh, bv, n_runs=50, betas=300, random_state=0, ops="cpu"
    )
    assert again.log_z == pytest.approx(res.log_z, abs=1e-9)


def test_ais_with_a_weightless_model_is_exact():
    """W = 0 and the base model equal to the RBM: every importance weight is 1."""
    bh, bv = np.array([0.5, -1.0]), np.array([0.2, 0.1, -0.3])
    res = rbm_log_partition_ais(
        np.zeros((2, 3)), bh, bv, base_bias=bv, n_runs=10, betas=10, random_state=0
    )
    assert res.log_z == pytest.approx(
        rbm_log_partition_exact(np.zeros((2, 3)), bh, bv), abs=1e-9
    )
    assert res.log_z_std == pytest.approx(0.0, abs=1e-12)


def test_likelihood_argument_errors():
    W, bh, bv = np.zeros((30, 40)), np.zeros(30), np.zeros(40)
    with pytest.raises(ValueError, match="Exact enumeration needs 2\\*\\*30"):
        rbm_log_partition_exact(W, bh, bv)
    with pytest.raises(ValueError, match="bh must have shape"):
        rbm_log_partition_exact(W, np.zeros(3), bv)
    with pytest.raises(ValueError, match="visible must be"):
        rbm_log_partition_ais(W, bh, bv, "binary")
    with pytest.raises(ValueError, match="n_runs must be"):
        rbm_log_partition_ais(W, bh, bv, n_runs=1)
    with pytest.raises(ValueError, match="betas must be"):
        rbm_log_partition_ais(W, bh, bv, betas=[0.0, 0.7, 0.5, 1.0])
    with pytest.raises(ValueError, match="base_bias must hold 40"):
        rbm_log_partition_ais(W, bh, bv, base_bias=np.zeros(3))
    with pytest.raises(ValueError, match="log_z must be a finite number"):
        rbm_log_likelihood(np.zeros((2, 40)), W, bh, bv, log_z=float("nan"))


def test_base_visible_bias():
    X = np.array([[1.0, 0.0], [1.0, 1.0]])
    b = base_visible_bias(X)
    assert b[0] > 3 and b[1] == pytest.approx(0.0)
    np.testing.assert_allclose(base_visible_bias(X, "gaussian"), [1.0, 0.5])


# --------------------------------------------------------------------------------------------
# Scores
# --------------------------------------------------------------------------------------------
def test_pseudo_likelihood_against_free_energies(trained12, digits_binary):
    rbm = trained12
    X = digits_binary[:5]
    fe = rbm.free_energy(X)
    expected = np.zeros(5)
    for i in range(X.shape[1]):
        flipped = X.copy()
        flipped[:, i] = 1 - flipped[:, i]
        expected += -np.logaddexp(0, fe - rbm.free_energy(flipped))
    np.testing.assert_allclose(rbm.score_samples(X), expected, rtol=1e-10)
    np.testing.assert_allclose(
        rbm.score_samples(X, method="pseudo"), expected, rtol=1e-10
    )


def test_score_is_mean_log_likelihood_and_selects_models(digits_binary):
    X = digits_binary
    good = RBM(8, learning_rate=0.05, max_iter=3, random_state=0).fit(X)
    assert good.score(X) == pytest.approx(
        np.mean(good.score_samples(X, method="exact"))
    )
    assert good.score(X) < 0
    search = GridSearchCV(
        RBM(8, max_iter=3, random_state=0), {"learning_rate": [1e-6, 0.05]}, cv=2
    )
    search.fit(X)
    assert search.best_params_ == {"learning_rate": 0.05}


def test_log_partition_is_cached_until_refit(trained12):
    rbm = pickle.loads(pickle.dumps(trained12))
    assert rbm.log_partition() == rbm.log_partition("exact")
    rbm._log_z_cache[("exact", rbm.ais_runs, rbm.ais_betas)] = (123.0, 0.0)
    assert rbm.log_partition() == 123.0
    rbm.partial_fit(np.zeros((5, 64)))
    assert rbm.log_partition() != 123.0


def test_score_sample_errors(trained12):
    with pytest.raises(ValueError, match="method must be"):
        trained12.score_samples(np.zeros((2, 64)), method="bogus")
    with pytest.raises(ValueError, match="method must be 'auto', 'exact' or 'ais'"):
        trained12.log_partition("pseudo")
    gauss = RBM(3, visible="gaussian", max_iter=1, random_state=0).fit(
        np.random.default_rng(0).normal(size=(30, 4))
    )
    with pytest.raises(ValueError, match="only available for Bernoulli"):
        gauss.score_samples(np.zeros((2, 4)), method="pseudo")
    assert np.all(np.isfinite(gauss.score_samples(np.zeros((2, 4)))))
    big = RBM(30, max_iter=1, random_state=0).fit(np.zeros((5, 40)))
    with pytest.raises(ValueError, match="Exact enumeration"):
        big.log_partition("exact")


# --------------------------------------------------------------------------------------------
# Training, sampling, reproducibility, backends
# --------------------------------------------------------------------------------------------
def test_training_raises_the_likelihood(digits_binary):
    X = digits_binary
    untrained = RBM(12, learning_rate=1e-9, max_iter=1, random_state=0).fit(X)
    trained = RBM(12, batch_size=20, max_iter=5, random_state=0).fit(X)
    # The untrained model is the base-rate model (independent pixels): training must beat it clearly.
    assert trained.score(X) > untrained.score(X) + 1
    assert trained.reconstruction_errors_[-1] < trained.reconstruction_errors_[0]
    assert trained.n_iter_ == 5 and len(trained.reconstruction_errors_) == 5


@pytest.mark.parametrize("persistent", [False, True])
def test_cpu_and_numpy_backends_give_the_same_fit(digits_binary, persistent):
    X = digits_binary[:300]
    kw = dict(n_components=10, k=2, persistent=persistent, max_iter=2, random_state=3)
    a = RBM(backend="cpu", **kw).fit(X)
    b = RBM(backend="numpy", **kw).fit(X)
    np.testing.assert_allclose(a.components_, b.components_, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(
        a.intercept_visible_, b.intercept_visible_, rtol=1e-10, atol=1e-12
    )
    np.testing.assert_array_equal(a.sample(3, n_steps=5), b.sample(3, n_steps=5))


def test_sampled_visible_chain_trains_like_bernoulli_rbm(digits_binary):
    kw = dict(n_components=10, max_iter=2, random_state=3, sample_visible=True)
    a = RBM(backend="cpu", **kw).fit(digits_binary[:300])
    b = RBM(backend="numpy", **kw).fit(digits_binary[:300])
    np.testing.assert_allclose(a.components_, b.components_, rtol=1e-10, atol=1e-12)
    mean_field = RBM(backend="cpu", **dict(kw, sample_visible=False)).fit(
        digits_binary[:300]
    )
    assert not np.allclose(a.components_, mean_field.components_)
    # Another chain than the default's, and it learns too.
    X = digits_binary
    untrained = RBM(12, learning_rate=1e-9, max_iter=1, random_state=0).fit(X)
    trained = RBM(
        12, batch_size=20, max_iter=5, sample_visible=True, random_state=0
    ).fit(X)
    assert trained.score(X) > untrained.score(X) + 1


def test_backend_without_sample_visible_still_trains_the_default_chain(digits_binary):
    from neuroplug.ops import Ops

    class OlderOps(Ops):
        """A backend whose cd_epoch predates sample_visible."""

        def cd_epoch(
            self,
            X,
            W,
            bh,
            bv,
            dW,
            dbh,
            dbv,
            *,
            k,
            learning_rate,
            momentum,
            weight_decay,
            batch_size,
            visible,
            rng,
            chain=None,
        ):
            return super().cd_epoch(
                X,
                W,
                bh,
                bv,
                dW,
                dbh,
                dbv,
                k=k,
                learning_rate=learning_rate,
                momentum=momentum,
                weight_decay=weight_decay,
                batch_size=batch_size,
                visible=visible,
                rng=rng,
                chain=chain,
            )

    X = digits_binary[:100]
    old = RBM(4, max_iter=2, backend=OlderOps(), random_state=0).fit(X)
    new = RBM(4, max_iter=2, backend="numpy", random_state=0).fit(X)
    np.testing.assert_array_equal(old.components_, new.components_)
    with pytest.raises(TypeError, match="sample_visible"):
        RBM(4, max_iter=1, backend=OlderOps(), sample_visible=True, random_state=0).fit(
            X
        )


def test_sampled_visible_chain_needs_bernoulli_units():
    X = np.random.default_rng(0).standard_normal((30, 4))
    rbm = RBM(3, visible="gaussian", sample_visible=True, max_iter=1, random_state=0)
    with pytest.raises(
        ValueError, match="sample_visible=True .* needs visible='bernoulli'"
    ):
        rbm.fit(X)
    with pytest.raises(ValueError, match="needs visible='bernoulli'"):
        rbm.partial_fit(X)
    assert not hasattr(rbm, "components_")
    with pytest.raises(ValueError, match="sample_visible"):
        RBM(3, sample_visible="yes").fit(X > 0)


def test_random_state_reproducibility(digits_binary):
    X = digits_binary[:200].astype(np.float32)
    a = RBM(6, max_iter=2, random_state=1).fit(X)
    b = RBM(6, max_iter=2, random_state=1).fit(X)
    c = RBM(6, max_iter=2, random_state=2).fit(X)
    np.testing.assert_array_equal(a.components_, b.components_)
    assert not np.array_equal(a.components_, c.components_)
    assert a.components_.dtype == np.float32 and a.transform(X).dtype == np.float32
    np.testing.assert_array_equal(
        a.gibbs(X[:4], random_state=5), b.gibbs(X[:4], random_state=5)
    )


def test_partial_fit_continues(digits_binary):
    rbm = RBM(8, random_state=0)
    for _ in range(3):
        rbm.partial_fit(digits_binary)
    assert rbm.n_iter_ == 3 and rbm.n_samples_seen_ == 3 * digits_binary.shape[0]
    np.testing.assert_allclose(rbm.visible_mean_, digits_binary.mean(axis=0))
    assert rbm.reconstruction_errors_[-1] < rbm.reconstruction_errors_[0]


def test_sample_and_gibbs(trained12, digits_binary):
    rbm = trained12
    S = rbm.sample(1000, n_steps=100, random_state=0)
    assert S.shape == (1000, 64) and set(np.unique(S)) <= {0.0, 1.0}
    # The samples follow the model: compare with its exact marginals E[v] = sum_h p(h) E[v | h].
    W, bh, bv = rbm.components_, rbm.intercept_hidden_, rbm.intercept_visible_
    H = np.array(list(itertools.product((0.0, 1.0), repeat=12)))
    act = H @ W + bv
    log_ph = H @ bh + np.logaddexp(0, act).sum(axis=1)
    ph = np.exp(log_ph - log_ph.max())
    marginals = (ph / ph.sum()) @ (1 / (1 + np.exp(-act)))
    assert np.abs(S.mean(axis=0) - marginals).mean() < 0.015
    np.testing.assert_array_equal(S, rbm.sample(1000, n_steps=100, random_state=0))
    G = rbm.gibbs(digits_binary[:5], n_steps=2)
    assert G.shape == (5, 64) and set(np.unique(G)) <= {0.0, 1.0}
    np.testing.assert_array_equal(
        rbm.gibbs(digits_binary[:5], n_steps=0), digits_binary[:5]
    )
    with pytest.raises(ValueError, match="n_samples must be an int >= 1"):
        rbm.sample(0)
    with pytest.raises(ValueError, match="n_steps must be an int >= 0"):
        rbm.gibbs(digits_binary[:5], n_steps=-1)


def test_transform_is_hidden_probabilities(trained12, digits_binary):
    rbm = trained12
    X = digits_binary[:7]
    expected = 1 / (1 + np.exp(-(X @ rbm.components_.T + rbm.intercept_hidden_)))
    np.testing.assert_allclose(rbm.transform(X), expected, rtol=1e-12)
    assert list(rbm.get_feature_names_out()) == [f"rbm{i}" for i in range(12)]


def test_gaussian_rbm_learns_standardised_data():
    r = np.random.default_rng(0)
    z = r.normal(size=(500, 1))
    X = np.hstack([z, z, -z]) + 0.3 * r.normal(size=(500, 3))
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    rbm = RBM(
        4,
        visible="gaussian",
        learning_rate=0.01,
        batch_size=20,
        max_iter=20,
        random_state=0,
    ).fit(X)
    baseline = -0.5 * 3 * np.log(2 * np.pi) - 0.5 * (X**2).sum(axis=1).mean()  # N(0, I)
    assert rbm.score(X) > baseline
    S = rbm.sample(2000, n_steps=100, random_state=0)
    assert np.corrcoef(S[:, 0], S[:, 1])[0, 1] > 0.2
    assert np.corrcoef(S[:, 0], S[:, 2])[0, 1] < -0.2


def test_verbose_shows_a_progress_bar(digits_binary):
    buf = io.StringIO()
    with redirect_stderr(buf):
        RBM(4, max_iter=2, verbose=1, random_state=0).fit(digits_binary[:50])
    assert "recon_error" in buf.getvalue()


def test_divergence_is_reported():
    X = np.random.default_rng(0).normal(0, 30, size=(50, 5))
    with pytest.raises(FloatingPointError, match="lower learning_rate"):
        RBM(
            5,
            visible="gaussian",
            learning_rate=50.0,
            batch_size=10,
            max_iter=30,
            random_state=0,
        ).fit(X)


def test_pickle_round_trip(trained12, digits_binary):
    clone = pickle.loads(pickle.dumps(trained12))
    np.testing.assert_array_equal(
        clone.transform(digits_binary[:3]), trained12.transform(digits_binary[:3])
    )
