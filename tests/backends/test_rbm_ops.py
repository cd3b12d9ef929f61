"""RBM ops: the compiled CD-k / PCD-k epoch, Gibbs sampling, hidden probabilities and free
energies of every backend against the NumPy reference.

The Cython kernels draw their uniforms from the same NumPy generator, in the same order and
with NumPy's own conversions, so ``CythonOps`` must reproduce the reference draw for draw:
identical parameters (to rounding) and an identical generator state afterwards.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from neuroplug.backends import get_ops
from neuroplug.backends.cython_ops import CythonOps
from neuroplug.ops import Ops

VISIBLE = ["bernoulli", "gaussian"]
# Visible units and whether the chain samples them (only Bernoulli units can be sampled).
CHAINS = [("bernoulli", False), ("gaussian", False), ("bernoulli", True)]


def _problem(dtype, visible, n=53, nv=17, nh=9, seed=0):
    r = np.random.default_rng(seed)
    X = r.random((n, nv))
    if visible == "bernoulli":
        X = (X < 0.4).astype(float)
    else:
        X = r.standard_normal((n, nv))
    W = r.normal(0, 0.3, (nh, nv))
    bh = r.normal(0, 0.5, nh)
    bv = r.normal(0, 0.5, nv)
    # Non-zero momentum buffers so the momentum term is exercised from the first batch.
    dW = r.normal(0, 0.01, (nh, nv))
    dbh = r.normal(0, 0.01, nh)
    dbv = r.normal(0, 0.01, nv)
    return [np.ascontiguousarray(a, dtype=dtype) for a in (X, W, bh, bv, dW, dbh, dbv)]


def _run_epochs(ops, arrays, *, epochs, seed, chain, **kw):
    X, *params = (a.copy() for a in arrays)
    rng = ops.make_rng(seed)
    chain = None if chain is None else chain.copy()
    errs = [ops.cd_epoch(X, *params, rng=rng, chain=chain, **kw) for _ in range(epochs)]
    return errs, params, chain, rng


# --------------------------------------------------------------------------------------------
# The compiled epoch reproduces the reference
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("visible,sample_visible", CHAINS)
@pytest.mark.parametrize("persistent", [False, True])
@pytest.mark.parametrize("k", [1, 3])
def test_cd_epoch_matches_reference_draw_for_draw(
    dtype, visible, sample_visible, persistent, k
):
    arrays = _problem(dtype, visible)
    chain = (
        (np.random.default_rng(1).random((10, 9)) < 0.5).astype(dtype)
        if persistent
        else None
    )
    kw = dict(
        k=k,
        learning_rate=0.1,
        momentum=0.5,
        weight_decay=0.01,
        batch_size=10,
        visible=visible,
        sample_visible=sample_visible,
    )
    e_ref, p_ref, c_ref, rng_ref = _run_epochs(
        Ops(), arrays, epochs=3, seed=5, chain=chain, **kw
    )
    e_cy, p_cy, c_cy, rng_cy = _run_epochs(
        CythonOps(n_threads=1), arrays, epochs=3, seed=5, chain=chain, **kw
    )
    tol = 1e-11 if dtype == np.float64 else 2e-5
    for a, b in zip(p_ref, p_cy):
        assert a.dtype == b.dtype == dtype
        np.testing.assert_allclose(b, a, rtol=tol, atol=tol)
    np.testing.assert_allclose(e_cy, e_ref, rtol=tol)
    if persistent:
        np.testing.assert_array_equal(c_cy, c_ref)
    # Both consumed exactly the same number of draws.
    assert rng_cy.bit_generator.state == rng_ref.bit_generator.state


@pytest.mark.parametrize("visible,sample_visible", CHAINS)
@pytest.mark.parametrize("persistent", [True, False])
@pytest.mark.parametrize("k", [1, 2])
def test_cd_epoch_threads_give_the_reference_result(
    visible, sample_visible, persistent, k
):
    # Big enough (64 x 128 x 128 multiply-adds per product) for the kernels to split the work;
    # CD on two threads also draws each next batch's uniforms during the last hidden pass
    # (the last batch, of 22 rows, included).
    arrays = _problem(np.float64, visible, n=150, nv=128, nh=128, seed=3)
    chain = (
        (np.random.default_rng(2).random((64, 128)) < 0.5).astype(np.float64)
        if persistent
        else None
    )
    kw = dict(
        k=k,
        learning_rate=0.05,
        momentum=0.9,
        weight_decay=1e-3,
        batch_size=64,
        visible=visible,
        sample_visible=sample_visible,
    )
    _, p_ref, c_ref, rng_ref = _run_epochs(
        Ops(), arrays, epochs=2, seed=7, chain=chain, **kw
    )
    with threadpool_limits(2):
        _, p_cy, c_cy, rng_cy = _run_epochs(
            CythonOps(n_threads=2), arrays, epochs=2, seed=7, chain=chain, **kw
        )
    for a, b in zip(p_ref, p_cy):
        np.testing.assert_allclose(b, a, rtol=1e-10, atol=1e-12)
    if persistent:
        np.testing.assert_array_equal(c_cy, c_ref)
    assert rng_cy.bit_generator.state == rng_ref.bit_generator.state


def test_cd_epoch_last_batch_shorter_and_batch_larger_than_data():
    arrays = _problem(np.float64, "bernoulli", n=7)
    kw = dict(
        k=1, learning_rate=0.1, momentum=0.0, weight_decay=0.0, visible="bernoulli"
    )
    for batch_size in (3, 50):
        _, p_ref, _, _ = _run_epochs(
            Ops(), arrays, epochs=1, seed=0, chain=None, batch_size=batch_size, **kw
        )
        _, p_cy, _, _ = _run_epochs(
            CythonOps(),
            arrays,
            epochs=1,
            seed=0,
            chain=None,
            batch_size=batch_size,
            **kw,
        )
        for a, b in zip(p_ref, p_cy):
            np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14)


def _one_batch_by_hand(visible, **kw):
    """One compiled CD-1 batch of 4 rows with learning_rate 1 and no momentum or decay.

    Returns the data, the parameters before and after, the returned error, the
    generator used and a fresh generator with the same seed to replay the draws.
    """
    ops = CythonOps()
    X, W, bh, bv, *_ = _problem(np.float64, visible, n=4, nv=5, nh=3)
    before = W.copy(), bh.copy(), bv.copy()
    dW, dbh, dbv = np.zeros_like(W), np.zeros_like(bh), np.zeros_like(bv)
    rng = ops.make_rng(11)
    err = ops.cd_epoch(
        X,
        W,
        bh,
        bv,
        dW,
        dbh,
        dbv,
        k=1,
        learning_rate=1.0,
        momentum=0.0,
        weight_decay=0.0,
        batch_size=4,
        visible=visible,
        rng=rng,
        **kw,
    )
    return X, before, (W, bh, bv), err, rng, np.random.Generator(np.random.PCG64(11))


def test_cd_epoch_update_by_hand():
    """One batch with learning_rate 1: the update is exactly the CD statistics difference."""
    X, (W0, bh0, bv0), (W, bh, bv), err, rng, replay = _one_batch_by_hand("gaussian")
    # Replay the draws: h0 ~ p(h | v0), vk = h0 W + bv, phk = p(h | vk).
    ph0 = 1 / (1 + np.exp(-(X @ W0.T + bh0)))
    h0 = (replay.random(ph0.shape) < ph0).astype(float)
    vk = h0 @ W0 + bv0
    phk = 1 / (1 + np.exp(-(vk @ W0.T + bh0)))
    np.testing.assert_allclose(
        W - W0, (ph0.T @ X - phk.T @ vk) / 4, rtol=1e-12, atol=1e-12
    )
    np.testing.assert_allclose(
        bh - bh0, (ph0 - phk).mean(axis=0), rtol=1e-12, atol=1e-12
    )
    np.testing.assert_allclose(bv - bv0, (X - vk).mean(axis=0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(err, ((X - vk) ** 2).sum() / 4, rtol=1e-12)
    # CD-1 draws only h0: the last hidden sample is discarded, so it is not drawn.
    assert rng.bit_generator.state == replay.bit_generator.state


@pytest.mark.parametrize(
    "ops", [Ops(), CythonOps(n_threads=1)], ids=["reference", "cython"]
)
@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("sample_visible", [False, True])
def test_cd_epoch_draws_k_hidden_samples_per_batch_for_cd_and_k_for_pcd(
    ops, k, sample_visible
):
    X, W, bh, bv, dW, dbh, dbv = _problem(np.float64, "bernoulli", n=20)
    kw = dict(
        k=k,
        learning_rate=0.1,
        momentum=0.0,
        weight_decay=0.0,
        batch_size=10,
        visible="bernoulli",
        sample_visible=sample_visible,
    )
    for chain in (None, np.zeros((10, 9))):
        rng = ops.make_rng(3)
        ops.cd_epoch(
            X,
            W.copy(),
            bh.copy(),
            bv.copy(),
            dW.copy(),
            dbh.copy(),
            dbv.copy(),
            rng=rng,
            chain=chain,
            **kw,
        )
        # CD: h0 plus the k - 1 intermediate samples; PCD: the k chain steps; and with
        # sample_visible the k visible samples.
        expected = np.random.Generator(np.random.PCG64(3))
        for _ in range(2 * k):  # two batches
            expected.random((10, 9))
        for _ in range(2 * k if sample_visible else 0):
            expected.random((10, 17))
        assert rng.bit_generator.state == expected.bit_generator.state


def test_cd_epoch_with_sampled_visible_units_by_hand():
    """One CD-1 batch with learning_rate 1: the chain uses binary visible samples."""
    X, (W0, bh0, bv0), (W, bh, bv), err, rng, replay = _one_batch_by_hand(
        "bernoulli", sample_visible=True
    )
    sigmoid = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
    ph0 = sigmoid(X @ W0.T + bh0)
    h0 = (replay.random(ph0.shape) < ph0).astype(float)
    pv = sigmoid(h0 @ W0 + bv0)
    vk = (replay.random(pv.shape) < pv).astype(float)
    phk = sigmoid(vk @ W0.T + bh0)
    np.testing.assert_allclose(
        W - W0, (ph0.T @ X - phk.T @ vk) / 4, rtol=1e-12, atol=1e-12
    )
    np.testing.assert_allclose(bv - bv0, (X - vk).mean(axis=0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(err, ((X - vk) ** 2).sum() / 4, rtol=1e-12)
    assert rng.bit_generator.state == replay.bit_generator.state


@pytest.mark.parametrize("ops", [Ops(), CythonOps()], ids=["reference", "cython"])
def test_cd_epoch_samples_only_bernoulli_visible_units(ops):
    kw = dict(k=1, learning_rate=0.1, momentum=0.5, weight_decay=0.0, batch_size=10)
    X, *params = _problem(np.float64, "gaussian")
    with pytest.raises(
        ValueError, match="sample_visible=True .* needs visible='bernoulli'"
    ):
        ops.cd_epoch(
            X,
            *params,
            visible="gaussian",
            rng=ops.make_rng(0),
            sample_visible=True,
            **kw,
        )
    with pytest.raises(ValueError, match="sample_visible must be a bool"):
        ops.cd_epoch(
            X,
            *params,
            visible="bernoulli",
            rng=ops.make_rng(0),
            sample_visible="yes",
            **kw,
        )


@pytest.mark.parametrize("name", ["W", "bh", "chain"])
def test_cd_epoch_refuses_buffers_it_cannot_update_in_place(name):
    ops = CythonOps()
    X, W, bh, bv, dW, dbh, dbv = _problem(np.float64, "bernoulli")
    chain = np.zeros((10, 9))
    args = {"W": W, "bh": bh, "chain": chain}
    if name == "W":
        args["W"] = np.asfortranarray(W)
    elif name == "bh":
        args["bh"] = bh.astype(np.float32)
    else:
        args["chain"] = np.asfortranarray(chain)
    with pytest.raises(ValueError, match=name):
        ops.cd_epoch(
            X,
            args["W"],
            args["bh"],
            bv,
            dW,
            dbh,
            dbv,
            k=1,
            learning_rate=0.1,
            momentum=0.5,
            weight_decay=0.0,
            batch_size=10,
            visible="bernoulli",
            rng=ops.make_rng(0),
            chain=args["chain"],
        )


@pytest.mark.parametrize(
    "change, match",
    [
        ({"k": 0}, "k must be an int >= 1"),
        ({"batch_size": 0}, "batch_size must be an int >= 1"),
        ({"visible": "poisson"}, "visible must be"),
        ({"learning_rate": -1.0}, "learning_rate must be"),
        ({"momentum": float("nan")}, "momentum must be"),
        ({"rng": np.random.RandomState(0)}, "rng must be a numpy.random.Generator"),
        ({"chain": np.zeros((3, 9))}, "chain must have shape"),
        ({"chain": np.zeros((10, 8))}, "chain must have shape"),
    ],
)
def test_cd_epoch_argument_errors(change, match):
    ops = CythonOps()
    X, W, bh, bv, dW, dbh, dbv = _problem(np.float64, "bernoulli")
    kw = dict(
        k=1,
        learning_rate=0.1,
        momentum=0.5,
        weight_decay=0.0,
        batch_size=10,
        visible="bernoulli",
        rng=ops.make_rng(0),
        chain=None,
    )
    kw.update(change)
    with pytest.raises((ValueError, TypeError), match=match):
        ops.cd_epoch(X, W, bh, bv, dW, dbh, dbv, **kw)


def test_cd_epoch_shape_errors():
    ops = CythonOps()
    X, W, bh, bv, dW, dbh, dbv = _problem(np.float64, "bernoulli")
    kw = dict(
        k=1,
        learning_rate=0.1,
        momentum=0.5,
        weight_decay=0.0,
        batch_size=10,
        visible="bernoulli",
        rng=ops.make_rng(0),
    )
    with pytest.raises(ValueError, match="X must have n_visible=17"):
        ops.cd_epoch(X[:, :5].copy(), W, bh, bv, dW, dbh, dbv, **kw)
    with pytest.raises(ValueError, match="bh must have n_hidden=9"):
        ops.cd_epoch(X, W, bh[:4].copy(), bv, dW, dbh, dbv, **kw)
    with pytest.raises(ValueError, match="dW, dbh and dbv"):
        ops.cd_epoch(X, W, bh, bv, dW[:4].copy(), dbh, dbv, **kw)
    with pytest.raises(ValueError, match="NaN"):
        ops.cd_epoch(np.full_like(X, np.nan), W, bh, bv, dW, dbh, dbv, **kw)


# --------------------------------------------------------------------------------------------
# Sampling, probabilities, free energies
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("visible", VISIBLE)
def test_gibbs_matches_reference(dtype, visible):
    X, W, bh, bv, *_ = _problem(dtype, visible)
    ref = Ops().rbm_gibbs(X, W, bh, bv, steps=4, visible=visible, rng=Ops().make_rng(3))
    X_before = X.copy()
    cy = CythonOps().rbm_gibbs(
        X, W, bh, bv, steps=4, visible=visible, rng=CythonOps().make_rng(3)
    )
    np.testing.assert_array_equal(X, X_before)  # the caller's array is untouched
    tol = 1e-12 if dtype == np.float64 else 1e-5
    assert cy.dtype == dtype
    np.testing.assert_allclose(cy, ref, rtol=tol, atol=tol)


def test_gibbs_zero_steps_returns_a_copy():
    X, W, bh, bv, *_ = _problem(np.float64, "bernoulli")
    out = CythonOps().rbm_gibbs(
        X, W, bh, bv, steps=0, visible="bernoulli", rng=CythonOps().make_rng(0)
    )
    np.testing.assert_array_equal(out, X)
    assert out is not X


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_hidden_probs_visible_means_and_free_energy_match_reference(
    ops, ref_ops, dtype
):
    for visible in VISIBLE:
        X, W, bh, bv, *_ = _problem(dtype, visible)
        tol = 1e-10 if dtype == np.float64 else 2e-5
        got = ops.to_numpy(
            ops.rbm_hidden_probs(ops.asarray(X), ops.asarray(W), ops.asarray(bh))
        )
        np.testing.assert_allclose(
            got, ref_ops.rbm_hidden_probs(X, W, bh), rtol=tol, atol=tol
        )
        H = ref_ops.rbm_hidden_probs(X, W, bh)
        got = ops.to_numpy(
            ops.rbm_visible_means(
                ops.asarray(H), ops.asarray(W), ops.asarray(bv), visible
            )
        )
        np.testing.assert_allclose(
            got, ref_ops.rbm_visible_means(H, W, bv, visible), rtol=tol, atol=tol
        )
        fe = ops.to_numpy(
            ops.rbm_free_energy(
                ops.asarray(X),
                ops.asarray(W),
                ops.asarray(bh),
                ops.asarray(bv),
                visible,
            )
        )
        np.testing.assert_allclose(
            fe, ref_ops.rbm_free_energy(X, W, bh, bv, visible), rtol=tol, atol=tol * 10
        )


def test_free_energy_against_definition():
    """F(v) = -log sum_h exp(-E(v, h)) by enumerating the hidden states."""
    import itertools

    X, W, bh, bv, *_ = _problem(np.float64, "bernoulli", nh=4)
    H = np.array(list(itertools.product((0.0, 1.0), repeat=4)))
    for visible in VISIBLE:
        quad = (
            -(X @ bv) if visible == "bernoulli" else 0.5 * ((X - bv) ** 2).sum(axis=1)
        )
        neg_e = -quad[:, None] + (H @ bh)[None, :] + X @ W.T @ H.T
        expected = -np.log(np.exp(neg_e).sum(axis=1))
        got = CythonOps().rbm_free_energy(X, W, bh, bv, visible)
        np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_large_free_energy_threads_agree():
    r = np.random.default_rng(0)
    X = (r.random((300, 100)) < 0.5).astype(np.float64)
    W, bh, bv = r.normal(0, 0.1, (80, 100)), r.normal(size=80), r.normal(size=100)
    with threadpool_limits(2):
        got = CythonOps(n_threads=2).rbm_free_energy(X, W, bh, bv, "bernoulli")
    np.testing.assert_allclose(
        got, Ops().rbm_free_energy(X, W, bh, bv, "bernoulli"), rtol=1e-12
    )


def test_gibbs_samples_the_model_distribution(ops):
    """Every backend's Gibbs chain: visible frequencies match the exact marginals of a tiny RBM."""
    import itertools

    r = np.random.default_rng(4)
    W = r.normal(0, 1.5, (2, 3))
    bh, bv = r.normal(size=2), r.normal(size=3)
    V = np.array(list(itertools.product((0.0, 1.0), repeat=3)))
    p = np.exp(-Ops().rbm_free_energy(V, W, bh, bv, "bernoulli"))
    p /= p.sum()
    marg = p @ V
    v0 = (r.random((4000, 3)) < 0.5).astype(np.float64)
    out = ops.to_numpy(
        ops.rbm_gibbs(
            ops.asarray(v0),
            ops.asarray(W),
            ops.asarray(bh),
            ops.asarray(bv),
            steps=30,
            visible="bernoulli",
            rng=ops.make_rng(0),
        )
    )
    np.testing.assert_allclose(out.mean(axis=0), marg, atol=0.03)


def test_get_ops_cpu_is_cython():
    assert isinstance(get_ops("cpu"), CythonOps)


# --------------------------------------------------------------------------------------------
# Annealed importance sampling
# --------------------------------------------------------------------------------------------
def _ais_problem(dtype, nh=7, nv=11, seed=0):
    r = np.random.default_rng(seed)
    W = r.normal(0, 0.8, (nh, nv))
    bh, bv, bA = r.normal(size=nh), r.normal(size=nv), r.normal(size=nv)
    return [np.ascontiguousarray(a, dtype=dtype) for a in (W, bh, bv, bA)]


@pytest.mark.parametrize("n_threads", [1, 2])
def test_ais_log_weights_match_reference_draw_for_draw(n_threads):
    W, bh, bv, bA = _ais_problem(np.float64)
    betas = np.linspace(0, 1, 21) ** 2
    ref_rng, cy_rng = Ops().make_rng(4), CythonOps().make_rng(4)
    ref = Ops().rbm_ais_log_weights(
        W, bh, bv, bA, betas, n_runs=30, visible="bernoulli", rng=ref_rng
    )
    with threadpool_limits(n_threads):
        cy = CythonOps(n_threads=n_threads).rbm_ais_log_weights(
            W, bh, bv, bA, betas, n_runs=30, visible="bernoulli", rng=cy_rng
        )
    assert cy.dtype == np.float64 and cy.shape == (30,)
    np.testing.assert_allclose(cy, ref, rtol=1e-10, atol=1e-10)
    assert cy_rng.bit_generator.state == ref_rng.bit_generator.state


def test_ais_log_weights_big_steps_do_not_overflow():
    """Short schedules take large steps: the increments stay exact (softplus differences)."""
    W, bh, bv, bA = _ais_problem(np.float32)
    W *= 60  # pre-activations of a few hundred
    betas = np.array([0.0, 0.5, 1.0])
    ref = Ops().rbm_ais_log_weights(
        W, bh, bv, bA, betas, n_runs=5, visible="bernoulli", rng=Ops().make_rng(0)
    )
    cy = CythonOps().rbm_ais_log_weights(
        W, bh, bv, bA, betas, n_runs=5, visible="bernoulli", rng=CythonOps().make_rng(0)
    )
    assert np.isfinite(cy).all()
    np.testing.assert_allclose(cy, ref, rtol=1e-4)


@pytest.mark.parametrize("visible", VISIBLE)
def test_ais_estimates_agree_across_backends(ops, visible):
    """Every backend's AIS estimate of Z / Z_A (mean of the weights) matches the exact ratio."""
    from neuroplug.likelihood import rbm_log_partition_exact

    W, bh, bv, bA = _ais_problem(np.float64, nh=5, nv=6)
    if visible == "gaussian":
        W *= 0.4
    log_w = np.asarray(
        ops.to_numpy(
            ops.rbm_ais_log_weights(
                ops.asarray(W),
                ops.asarray(bh),
                ops.asarray(bv),
                ops.asarray(bA),
                np.linspace(0, 1, 400),
                n_runs=200,
                visible=visible,
                rng=ops.make_rng(0),
            )
        )
    )
    log_za = (
        0.5 * 6 * np.log(2 * np.pi)
        if visible == "gaussian"
        else np.logaddexp(0, bA).sum()
    ) + 5 * np.log(2)
    estimate = log_za + np.log(np.mean(np.exp(log_w)))
    assert abs(estimate - rbm_log_partition_exact(W, bh, bv, visible)) < 0.05


def test_ais_argument_errors():
    ops = CythonOps()
    W, bh, bv, bA = _ais_problem(np.float64)
    kw = dict(n_runs=3, visible="bernoulli", rng=ops.make_rng(0))
    with pytest.raises(ValueError, match="betas must increase from 0 to 1"):
        ops.rbm_ais_log_weights(W, bh, bv, bA, [0.0, 0.5], **kw)
    with pytest.raises(ValueError, match="base_bias must have n_visible=11"):
        ops.rbm_ais_log_weights(W, bh, bv, bA[:3].copy(), [0.0, 1.0], **kw)
    with pytest.raises(ValueError, match="n_runs must be an int >= 1"):
        ops.rbm_ais_log_weights(
            W,
            bh,
            bv,
            bA,
            [0.0, 1.0],
            n_runs=0,
            visible="bernoulli",
            rng=ops.make_rng(0),
        )


# --------------------------------------------------------------------------------------------
# The unpacked float32 kernels for small batches agree with the BLAS path
# --------------------------------------------------------------------------------------------
_rbm_core = pytest.importorskip("neuroplug_core.rbm")


@pytest.mark.skipif(
    not _rbm_core.small_batch_available(),
    reason="the small-batch kernels need AVX2 and FMA",
)
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("persistent", [False, True])
@pytest.mark.parametrize("momentum", [0.0, 0.5])
@pytest.mark.parametrize("sample_visible", [False, True])
def test_small_batch_kernels_match_blas(
    n_threads, persistent, momentum, sample_visible
):
    # Odd sizes leave a tail in every loop of the kernels (rows by 3, hidden units by 4,
    # visible columns by 32 and by 8), the last batch has a single row, and 13 x 257 x 403
    # multiply-adds are enough for the wrapper to use two threads.
    arrays = _problem(np.float32, "bernoulli", n=157, nv=403, nh=257, seed=4)
    chain = (
        (np.random.default_rng(5).random((13, 257)) < 0.5).astype(np.float32)
        if persistent
        else None
    )
    kw = dict(
        k=2,
        learning_rate=0.05,
        momentum=momentum,
        weight_decay=1e-3,
        batch_size=13,
        visible="bernoulli",
        sample_visible=sample_visible,
    )
    e_blas, p_blas, c_blas, _ = _run_epochs(
        CythonOps(n_threads=n_threads, small_batch_max=0),
        arrays,
        epochs=2,
        seed=3,
        chain=chain,
        **kw,
    )
    assert _rbm_core.default_small_batch_max() >= 13
    e_small, p_small, c_small, rng_small = _run_epochs(
        CythonOps(n_threads=n_threads), arrays, epochs=2, seed=3, chain=chain, **kw
    )
    _, p_ref, _, rng_ref = _run_epochs(
        Ops(), arrays, epochs=2, seed=3, chain=chain, **kw
    )
    for a, b, c in zip(p_blas, p_small, p_ref):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=2e-5)
        np.testing.assert_allclose(b, c, rtol=1e-4, atol=2e-5)
    assert rng_small.bit_generator.state == rng_ref.bit_generator.state
    np.testing.assert_allclose(e_small, e_blas, rtol=1e-4)
    if persistent:
        np.testing.assert_array_equal(c_small, c_blas)


@pytest.mark.skipif(
    not _rbm_core.small_batch_available(),
    reason="the small-batch kernels need AVX2 and FMA",
)
def test_small_batch_kernels_sampling_and_free_energy_match_reference():
    X, W, bh, bv, *_ = _problem(np.float32, "bernoulli", n=7, nv=45, nh=30, seed=6)
    cpu, ref = CythonOps(n_threads=1), Ops()
    np.testing.assert_allclose(
        cpu.rbm_hidden_probs(X, W, bh),
        ref.rbm_hidden_probs(X, W, bh),
        rtol=1e-5,
        atol=1e-6,
    )
    got = cpu.rbm_gibbs(X, W, bh, bv, steps=3, visible="bernoulli", rng=cpu.make_rng(1))
    want = ref.rbm_gibbs(
        X, W, bh, bv, steps=3, visible="bernoulli", rng=ref.make_rng(1)
    )
    np.testing.assert_array_equal(got, want)


# --------------------------------------------------------------------------------------------
# Sparse epochs (float32 inputs that are mostly zeros) agree with the dense products
# --------------------------------------------------------------------------------------------
def _sparse_problem(density, n=157, nv=403, nh=257, seed=4):
    arrays = _problem(np.float32, "bernoulli", n=n, nv=nv, nh=nh, seed=seed)
    r = np.random.default_rng(seed + 1)
    arrays[0] = np.ascontiguousarray(
        (r.random((n, nv)) < density) * r.random((n, nv)), dtype=np.float32
    )
    return arrays


def _sparse_run(mode, arrays, n_threads, chain, **kw):
    with threadpool_limits(n_threads):
        return _run_epochs(
            CythonOps(n_threads=n_threads, sparse=mode),
            arrays,
            epochs=2,
            seed=3,
            chain=chain,
            **kw,
        )


@pytest.mark.skipif(
    not _rbm_core.small_batch_available(),
    reason="the sparse products need AVX2 and FMA",
)
@pytest.mark.parametrize("n_threads", [1, 2])
@pytest.mark.parametrize("persistent", [False, True])
@pytest.mark.parametrize("k,momentum,decay", [(1, 0.5, 1e-3), (2, 0.0, 0.0)])
@pytest.mark.parametrize("sample_visible", [False, True])
def test_sparse_epochs_match_the_reference_and_the_dense_products(
    n_threads, persistent, k, momentum, decay, sample_visible
):
    # 257 hidden units leave column slices of 64, 32, 16, 8 and single columns on one and two
    # threads; 157 rows end with a batch of 37; 15% of the inputs are nonzero.  Sampled
    # visible states go through the sparse products too.
    arrays = _sparse_problem(0.15)
    chain = (
        (np.random.default_rng(5).random((40, 257)) < 0.5).astype(np.float32)
        if persistent
        else None
    )
    kw = dict(
        k=k,
        learning_rate=0.05,
        momentum=momentum,
        weight_decay=decay,
        batch_size=40,
        visible="bernoulli",
        sample_visible=sample_visible,
    )
    e_sp, p_sp, c_sp, rng_sp = _sparse_run("always", arrays, n_threads, chain, **kw)
    e_dn, p_dn, c_dn, _ = _sparse_run("never", arrays, n_threads, chain, **kw)
    e_ref, p_ref, c_ref, rng_ref = _run_epochs(
        Ops(), arrays, epochs=2, seed=3, chain=chain, **kw
    )
    for a, b, c in zip(p_dn, p_sp, p_ref):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=2e-5)
        np.testing.assert_allclose(b, c, rtol=1e-4, atol=2e-5)
    np.testing.assert_allclose(e_sp, e_dn, rtol=1e-4)
    if persistent:
        np.testing.assert_array_equal(c_sp, c_dn)
    assert rng_sp.bit_generator.state == rng_ref.bit_generator.state


@pytest.mark.skipif(
    not _rbm_core.small_batch_available(),
    reason="the sparse products need AVX2 and FMA",
)
@pytest.mark.parametrize("nh,n_threads", [(265, 1), (281, 2)])
@pytest.mark.parametrize("sample_visible", [False, True])
def test_sparse_positive_phase_covers_every_column_block(nh, n_threads, sample_visible):
    # The positive phase sums 16 columns at a time, then 8, then single columns: 265 hidden
    # units on one thread, and 281 on two (144 + 137), leave 9 columns after the last block
    # of 16, so each path runs; 405 pixels leave a tail of 5 after the rows' 8-wide packing.
    # The update's column blocks (64 or 32 wide, then 16, 8, single) end the same way.
    arrays = _sparse_problem(0.15, n=90, nv=405, nh=nh, seed=7)
    kw = dict(
        k=1,
        learning_rate=0.05,
        momentum=0.5,
        weight_decay=1e-3,
        batch_size=40,
        visible="bernoulli",
        sample_visible=sample_visible,
    )
    e_sp, p_sp, _, _ = _sparse_run("always", arrays, n_threads, None, **kw)
    e_ref, p_ref, _, _ = _run_epochs(Ops(), arrays, epochs=2, seed=3, chain=None, **kw)
    for got, want in zip(p_sp, p_ref):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=2e-5)
    np.testing.assert_allclose(e_sp, e_ref, rtol=1e-4)


@pytest.mark.skipif(
    not _rbm_core.small_batch_available(),
    reason="the sparse products need AVX2 and FMA",
)
def test_sparse_epochs_run_only_on_sparse_float32_bernoulli_data():
    kw = dict(k=1, learning_rate=0.05, momentum=0.5, weight_decay=1e-3, batch_size=40)
    sparse, dense = _sparse_problem(0.15), _sparse_problem(0.6)
    # "auto" takes the sparse products exactly where the data are mostly zeros ...
    for arrays, same_as in ((sparse, "always"), (dense, "never")):
        got = _sparse_run("auto", arrays, 2, None, visible="bernoulli", **kw)[1]
        want = _sparse_run(same_as, arrays, 2, None, visible="bernoulli", **kw)[1]
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)
    # ... and never for Gaussian units, float64 or batches of the unpacked kernels.
    gauss = _problem(np.float32, "gaussian", n=157, nv=403, nh=257, seed=4)
    cases = [
        (gauss, dict(visible="gaussian", **kw)),
        ([a.astype(np.float64) for a in sparse], dict(visible="bernoulli", **kw)),
        (
            sparse,
            dict(
                visible="bernoulli",
                **dict(kw, batch_size=_rbm_core.default_small_batch_max()),
            ),
        ),
    ]
    for arrays, kwargs in cases:
        got = _sparse_run("always", arrays, 1, None, **kwargs)[1]
        want = _sparse_run("never", arrays, 1, None, **kwargs)[1]
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="sparse must be one of"):
        CythonOps(sparse="sometimes")
    X, W, bh, bv, dW, dbh, dbv = (np.ascontiguousarray(a) for a in sparse[:7])
    with pytest.raises(ValueError, match="sparse_mode must be 0"):
        _rbm_core.cd_epoch(
            X,
            W,
            bh,
            bv,
            dW,
            dbh,
            dbv,
            1,
            0.1,
            0.5,
            0.0,
            40,
            False,
            np.random.default_rng(0).bit_generator,
            sparse_mode=3,
        )
    with pytest.raises(ValueError, match="small_batch_max must be -1"):
        _rbm_core.hidden_probs(
            X, W, bh, np.empty((X.shape[0], W.shape[0]), np.float32), small_batch_max=-2
        )


@pytest.mark.skipif(
    not _rbm_core.small_batch_available(),
    reason="the small-batch kernels need AVX2 and FMA",
)
def test_small_batch_option_travels_with_the_backend():
    """small_batch_max set on one backend (and kept through pickling) leaves another one's alone."""
    arrays = _problem(np.float32, "bernoulli", n=60, nv=403, nh=257, seed=4)
    kw = dict(
        k=1,
        learning_rate=0.05,
        momentum=0.5,
        weight_decay=1e-3,
        batch_size=13,
        visible="bernoulli",
    )
    blas = pickle.loads(pickle.dumps(CythonOps(n_threads=1, small_batch_max=0)))
    assert blas.small_batch_max == 0
    small = CythonOps(n_threads=1)
    p_blas = _run_epochs(blas, arrays, epochs=1, seed=3, chain=None, **kw)[1]
    p_small = _run_epochs(small, arrays, epochs=1, seed=3, chain=None, **kw)[1]
    with small.kernels(small_batch_max=0):
        p_again = _run_epochs(small, arrays, epochs=1, seed=3, chain=None, **kw)[1]
    for a, b, c in zip(p_blas, p_small, p_again):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-5)
        np.testing.assert_array_equal(a, c)  # the same kernels: the same bits
    # The unpacked kernels round differently from BLAS: equal weights would mean one path ran twice.
    assert not np.array_equal(p_blas[0], p_small[0])


def test_fewer_openmp_threads_than_asked_still_give_the_reference_result():
    # OMP_THREAD_LIMIT=1 (or OMP_DYNAMIC) can hand a parallel region fewer threads than it
    # asks for; every part of the work must still be done (it once left rows uncomputed).
    import os
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent("""
        import numpy as np
        from neuroplug.backends.cython_ops import CythonOps
        from neuroplug.ops import Ops
        r = np.random.default_rng(0)
        X = (r.random((150, 128)) < 0.4).astype(np.float64)
        W = r.normal(0, 0.3, (128, 128)); bh = r.normal(0, 0.3, 128); bv = r.normal(0, 0.3, 128)
        ref, cpu = Ops(), CythonOps(n_threads=2)
        out = []
        for ops in (ref, cpu):
            p = [a.copy() for a in (W, bh, bv, np.zeros_like(W), np.zeros(128), np.zeros(128))]
            ops.cd_epoch(X, *p, k=1, learning_rate=0.1, momentum=0.5, weight_decay=0.0, batch_size=64,
                         visible="bernoulli", rng=ops.make_rng(0), chain=None)
            out.append(p[0])
        assert np.abs(out[0] - out[1]).max() < 1e-10, "cd_epoch"
        assert np.allclose(cpu.rbm_hidden_probs(X, W, bh), ref.rbm_hidden_probs(X, W, bh), atol=1e-12)
        assert np.allclose(cpu.rbm_free_energy(X, W, bh, bv, "bernoulli"),
                           ref.rbm_free_energy(X, W, bh, bv, "bernoulli"), atol=1e-9)
        print("ok")
    """)
    env = dict(os.environ, OMP_THREAD_LIMIT="1")
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[
        -2000:
    ]
