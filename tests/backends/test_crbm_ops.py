"""ConvRBM ops (probabilistic max-pooling, CD-k): the NumPy reference against brute force, and the
compiled backend against the reference."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from neuroplug.backends import get_ops
from neuroplug.ops import Ops

BACKENDS = ["numpy", "cpu"]


@pytest.fixture(params=BACKENDS)
def ops(request):
    # One thread: the arrays are tiny, and OpenMP regions on a shared 2-core machine cost more than
    # the work.  test_threads_do_not_change_results covers several threads.
    return get_ops(request.param, n_threads=1)


def _brute_force_block_probs(logits: np.ndarray) -> np.ndarray:
    """Probabilities of the states (unit 0 on, ..., unit m-1 on, all off) by enumerating all 2**m
    binary configurations and keeping those with at most one unit on (the model's support)."""
    m = logits.size
    weights = {}
    for config in itertools.product((0, 1), repeat=m):
        if sum(config) > 1:
            continue  # probabilistic max-pooling: such states have probability zero
        energy = -float(np.dot(config, logits))
        state = config.index(1) if 1 in config else m
        weights[state] = np.exp(-energy)
    z = sum(weights.values())
    return np.array([weights[s] / z for s in range(m + 1)])


@pytest.mark.parametrize(
    "hw,pool", [((4, 6), (2, 2)), ((5, 7), (2, 3)), ((3, 3), (3, 3)), ((4, 5), (1, 1))]
)
def test_pool_probs_match_brute_force_and_sum_to_one(ops, hw, pool):
    rng = np.random.default_rng(0)
    pre = rng.normal(scale=3.0, size=(2, 3, *hw))
    pre[0, 0, 0, 0] = 40.0  # large logits must not overflow
    pre[1, 2, -1, -1] = -40.0
    h_probs, p_probs = ops.crbm_pool_probs(ops.asarray(pre), pool)
    h_probs, p_probs = ops.to_numpy(h_probs), ops.to_numpy(p_probs)
    ph, pw = -(-hw[0] // pool[0]), -(-hw[1] // pool[1])
    assert h_probs.shape == pre.shape and p_probs.shape == (2, 3, ph, pw)
    for n, f, bi, bj in itertools.product(range(2), range(3), range(ph), range(pw)):
        rows = slice(bi * pool[0], min((bi + 1) * pool[0], hw[0]))
        cols = slice(bj * pool[1], min((bj + 1) * pool[1], hw[1]))
        expected = _brute_force_block_probs(pre[n, f, rows, cols].ravel())
        got_units = h_probs[n, f, rows, cols].ravel()
        np.testing.assert_allclose(got_units, expected[:-1], rtol=1e-10, atol=1e-300)
        # the pooling unit is on exactly when one detection unit is on
        np.testing.assert_allclose(
            p_probs[n, f, bi, bj], 1.0 - expected[-1], rtol=1e-10, atol=1e-15
        )
        np.testing.assert_allclose(
            got_units.sum() + (1.0 - p_probs[n, f, bi, bj]), 1.0, rtol=1e-12
        )


def test_pool_size_one_is_an_ordinary_sigmoid(ops):
    pre = np.random.default_rng(1).normal(size=(2, 2, 3, 4)).astype(np.float32)
    h_probs, p_probs = ops.crbm_pool_probs(ops.asarray(pre), 1)
    np.testing.assert_allclose(ops.to_numpy(h_probs), 1 / (1 + np.exp(-pre)), rtol=1e-5)
    np.testing.assert_allclose(ops.to_numpy(p_probs), ops.to_numpy(h_probs), rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sampler_at_most_one_per_block_and_frequencies_match(ops, dtype):
    # 20000 copies of the same 2x3 block (one partial 2x1 block beside it with pool 2x2):
    # the empirical frequencies of the states must match the probabilities.
    logits = np.array([[0.5, -1.0, 1.5], [0.0, 2.0, -0.5]])
    n = 20000
    pre = np.broadcast_to(logits, (n, 1, 2, 3)).astype(dtype)
    h_probs, _ = ops.crbm_pool_probs(ops.asarray(pre), 2)
    h = ops.to_numpy(ops.crbm_sample_hidden(h_probs, 2, ops.make_rng(0)))
    assert h.dtype == dtype and set(np.unique(h)) <= {0.0, 1.0}
    full = h[:, 0, :, :2].reshape(n, 4)
    partial = h[:, 0, :, 2]
    assert full.sum(axis=1).max() <= 1 and partial.sum(axis=1).max() <= 1
    for block, block_logits in ((full, logits[:, :2].ravel()), (partial, logits[:, 2])):
        p = _brute_force_block_probs(block_logits)
        counts = np.append(block.sum(axis=0), n - block.sum())
        # 5 standard deviations of a binomial count: fails by chance with probability < 1e-5
        assert np.all(np.abs(counts - n * p) <= 5 * np.sqrt(n * p * (1 - p)) + 1), (
            counts,
            n * p,
        )


def test_sampler_reproducible_and_consumes_one_draw_per_block(ops):
    probs, _ = ops.crbm_pool_probs(
        ops.asarray(np.random.default_rng(2).normal(size=(3, 2, 5, 5))), 2
    )
    a = ops.to_numpy(ops.crbm_sample_hidden(probs, 2, ops.make_rng(7)))
    b = ops.to_numpy(ops.crbm_sample_hidden(probs, 2, ops.make_rng(7)))
    np.testing.assert_array_equal(a, b)
    rng = ops.make_rng(7)
    ops.crbm_sample_hidden(probs, 2, rng)
    reference = np.random.Generator(np.random.PCG64(7))
    reference.random(3 * 2 * 3 * 3)  # 3x3 blocks per 5x5 plane
    assert rng.random() == reference.random()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_compiled_kernels_match_reference(dtype):
    ref, cpu = get_ops("numpy"), get_ops("cpu", n_threads=1)
    rng = np.random.default_rng(3)
    pre = (rng.normal(scale=2.0, size=(4, 3, 7, 9))).astype(dtype)
    tol = (
        dict(rtol=2e-6, atol=1e-7)
        if dtype == np.float32
        else dict(rtol=1e-12, atol=1e-15)
    )
    for pool in [(2, 2), (3, 2), (1, 1), (7, 9)]:
        (h1, p1), (h2, p2) = (
            ref.crbm_pool_probs(pre, pool),
            cpu.crbm_pool_probs(pre, pool),
        )
        assert h2.dtype == dtype and p2.dtype == dtype
        np.testing.assert_allclose(h2, h1, **tol)
        np.testing.assert_allclose(p2, p1, **tol)
        s1 = ref.crbm_sample_hidden(h1, pool, ref.make_rng(11))
        s2 = cpu.crbm_sample_hidden(h1, pool, cpu.make_rng(11))
        np.testing.assert_array_equal(s2, s1)  # same uniforms, same inverse-CDF rule
    W = rng.normal(scale=0.3, size=(3, 2, 3, 3)).astype(dtype)
    bv = rng.normal(size=2).astype(dtype)
    bh = rng.normal(size=3).astype(dtype)
    h = (rng.random((4, 3, 5, 7)) < 0.2).astype(dtype)
    v = rng.random((4, 2, 7, 9)).astype(dtype)
    for visible in ("bernoulli", "gaussian"):
        np.testing.assert_allclose(
            cpu.crbm_visible_means(h, W, bv, v.shape, visible),
            ref.crbm_visible_means(h, W, bv, v.shape, visible),
            **tol,
        )
        np.testing.assert_allclose(
            cpu.crbm_free_energy(v, W, bh, bv, pool_size=2, visible=visible),
            ref.crbm_free_energy(v, W, bh, bv, pool_size=2, visible=visible),
            rtol=1e-5 if dtype == np.float32 else 1e-12,
        )


def test_free_energy_matches_brute_force(ops):
    # One 1x3x3 image, two 2x2 filters -> two 2x2 detection maps = one block each.
    rng = np.random.default_rng(4)
    v = rng.random((1, 1, 3, 3))
    W = rng.normal(size=(2, 1, 2, 2))
    bh = rng.normal(size=2)
    bv = rng.normal(size=1)
    pre = get_ops("numpy").conv2d(v, W, bh).reshape(2, 4)
    # Sum exp(-E(v, h)) over every joint state with at most one unit on per block.
    states = [None, 0, 1, 2, 3]
    total = 0.0
    for s0, s1 in itertools.product(states, states):
        neg_energy = float(bv[0] * v.sum())
        neg_energy += (pre[0, s0] if s0 is not None else 0.0) + (
            pre[1, s1] if s1 is not None else 0.0
        )
        total += np.exp(neg_energy)
    f = ops.to_numpy(
        ops.crbm_free_energy(
            ops.asarray(v),
            ops.asarray(W),
            ops.asarray(bh),
            ops.asarray(bv),
            pool_size=2,
            visible="bernoulli",
        )
    )
    np.testing.assert_allclose(f, [-np.log(total)], rtol=1e-12)


def test_positive_statistics_are_the_free_energy_gradient(ops):
    """The CD positive phase <v h> = conv2d_backward_weights(P(h|v), v) must equal -dF/dW
    (checked by central differences in float64), so the block posteriors are the model's."""
    rng = np.random.default_rng(5)
    v = ops.asarray(rng.random((2, 1, 6, 7)))
    W = rng.normal(scale=0.5, size=(2, 1, 3, 3))
    bh, bv = rng.normal(size=2), rng.normal(size=1)
    kw = dict(pool_size=2, visible="bernoulli", stride=1, padding=1)

    def free(Wx, bhx):
        return float(
            ops.to_numpy(
                ops.crbm_free_energy(
                    v, ops.asarray(Wx), ops.asarray(bhx), ops.asarray(bv), **kw
                )
            ).sum()
        )

    pre = ops.conv2d(v, ops.asarray(W), ops.asarray(bh), padding=1)
    h_probs, _ = ops.crbm_pool_probs(pre, 2)
    gW, gb = ops.conv2d_backward_weights(h_probs, v, W.shape, padding=1)
    eps = 1e-6
    num = np.zeros_like(W)
    for idx in np.ndindex(*W.shape):
        Wp, Wm = W.copy(), W.copy()
        Wp[idx] += eps
        Wm[idx] -= eps
        num[idx] = -(free(Wp, bh) - free(Wm, bh)) / (2 * eps)
    np.testing.assert_allclose(ops.to_numpy(gW), num, rtol=1e-6, atol=1e-8)
    num_b = np.array(
        [
            -(free(W, bh + eps * e) - free(W, bh - eps * e)) / (2 * eps)
            for e in np.eye(2)
        ]
    )
    np.testing.assert_allclose(ops.to_numpy(gb), num_b, rtol=1e-6, atol=1e-8)


def _cd_state(dtype, c_in=1, filters=4, kh=3, seed=6, groups=1):
    rng = np.random.default_rng(seed)
    W = (rng.normal(scale=0.05, size=(filters, c_in // groups, kh, kh))).astype(dtype)
    return [
        W,
        np.zeros(filters, dtype),
        np.zeros(c_in, dtype),
        np.zeros_like(W),
        np.zeros(filters, dtype),
        np.zeros(c_in, dtype),
    ]


@pytest.mark.parametrize(
    "dtype,visible,k,conv",
    [
        (np.float64, "bernoulli", 1, {}),
        (np.float64, "gaussian", 2, {"padding": 1}),
        (np.float64, "bernoulli", 1, {"stride": 2, "groups": 2}),
        (np.float32, "bernoulli", 1, {}),
    ],
)
def test_compiled_cd_epoch_matches_reference(dtype, visible, k, conv):
    """Fed the same random stream, the 'cpu' epoch (compiled conv and pooling kernels) follows the
    reference draw for draw: same samples, same parameters up to rounding."""
    c_in = 2 if conv.get("groups") else 1
    rng = np.random.default_rng(8)
    X = rng.random((23, c_in, 10, 9)).astype(dtype)
    if visible == "bernoulli":
        X = (X < 0.3).astype(dtype)
    results = {}
    for name in ("numpy", "cpu"):
        ops = get_ops(name, n_threads=1)
        state = _cd_state(dtype, c_in=c_in, groups=conv.get("groups", 1))
        gen = ops.make_rng(9)
        errs = [
            ops.crbm_cd_epoch(
                X,
                *state,
                k=k,
                pool_size=(2, 3),
                learning_rate=0.1,
                momentum=0.5,
                weight_decay=1e-3,
                sparsity_target=0.05,
                sparsity_cost=0.5,
                batch_size=8,
                visible=visible,
                rng=gen,
                **conv,
            )
            for _ in range(3)
        ]
        results[name] = (errs, [s.copy() for s in state], gen.random())
    (e1, s1, r1), (e2, s2, r2) = results["numpy"], results["cpu"]
    assert r1 == r2  # both consumed exactly the same number of draws
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(e2, e1, rtol=tol)
    for a, b in zip(s2, s1):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


def test_cd_epoch_update_rule_for_k1_without_sampling_noise():
    """With momentum 0 and one batch, the update is exactly the documented formula."""
    ops = get_ops("numpy")
    rng = np.random.default_rng(10)
    X = rng.random((5, 1, 6, 6))
    W, bh, bv, dW, dbh, dbv = _cd_state(np.float64, filters=2)
    W0, bh0, bv0 = W.copy(), bh.copy(), bv.copy()
    gen, twin = ops.make_rng(12), ops.make_rng(12)
    ops.crbm_cd_epoch(
        X,
        W,
        bh,
        bv,
        dW,
        dbh,
        dbv,
        k=1,
        pool_size=2,
        learning_rate=0.2,
        momentum=0.0,
        weight_decay=0.01,
        sparsity_target=0.1,
        sparsity_cost=0.3,
        batch_size=5,
        visible="bernoulli",
        rng=gen,
    )
    ph0, _ = ops.crbm_pool_probs(ops.conv2d(X, W0, bh0), 2)
    h = ops.crbm_sample_hidden(ph0, 2, twin)
    vk = ops.sigmoid(
        ops.conv2d_backward_input(h, W0, X.shape) + bv0[None, :, None, None]
    )
    phk, _ = ops.crbm_pool_probs(ops.conv2d(vk, W0, bh0), 2)
    P, Q = 5 * 4 * 4, 5 * 6 * 6
    gW0, gb0 = ops.conv2d_backward_weights(ph0, X, W.shape)
    gWk, gbk = ops.conv2d_backward_weights(phk, vk, W.shape)
    np.testing.assert_allclose(W, W0 + 0.2 * ((gW0 - gWk) / P - 0.01 * W0), rtol=1e-12)
    np.testing.assert_allclose(
        bh, bh0 + 0.2 * ((gb0 - gbk) / P + 0.3 * (0.1 - gb0 / P)), rtol=1e-12
    )
    np.testing.assert_allclose(bv, bv0 + 0.2 * (X.sum() - vk.sum()) / Q, rtol=1e-12)


def _stroke_images(n, rng):
    """Tiny 8x8 images of short horizontal or vertical strokes."""
    X = np.zeros((n, 1, 8, 8))
    for i in range(n):
        r, c = rng.integers(0, 5, size=2)
        if rng.random() < 0.5:
            X[i, 0, r, c : c + 4] = 1
        else:
            X[i, 0, r : r + 4, c] = 1
    return X


def test_training_lowers_reconstruction_error_and_free_energy(ops):
    rng = np.random.default_rng(13)
    X = ops.asarray(_stroke_images(60, rng))
    # Random images of the same density: the model must come to prefer the strokes over them.
    noise = ops.asarray((rng.random((60, 1, 8, 8)) < 4 / 64).astype(np.float64))
    state = [ops.asarray(s) for s in _cd_state(np.float64, filters=6, kh=4)]
    gen = ops.make_rng(14)
    W, bh, bv = state[:3]

    def gap():
        # Free energies are only comparable under the same parameters (same Z): compare data and noise.
        f = [
            float(
                ops.to_numpy(
                    ops.crbm_free_energy(x, W, bh, bv, pool_size=2, visible="bernoulli")
                ).mean()
            )
            for x in (X, noise)
        ]
        return f[1] - f[0]

    gap_before = gap()
    errs = [
        ops.crbm_cd_epoch(
            X,
            *state,
            k=1,
            pool_size=2,
            learning_rate=1.0,
            momentum=0.5,
            weight_decay=1e-4,
            sparsity_target=0.05,
            sparsity_cost=0.1,
            batch_size=10,
            visible="bernoulli",
            rng=gen,
        )
        for _ in range(20)
    ]
    assert errs[-1] < 0.5 * errs[0], errs
    gap_after = gap()
    # about 8 nats on these seeds: a factor e**3 is a margin no untrained model reaches
    assert gap_after > gap_before + 3, (gap_before, gap_after)


def test_threads_do_not_change_results():
    rng = np.random.default_rng(15)
    pre = rng.normal(size=(40, 5, 13, 13)).astype(
        np.float32
    )  # above the one-thread cut-off (32768)
    one, two = get_ops("cpu", n_threads=1), get_ops("cpu", n_threads=2)
    h1, p1 = one.crbm_pool_probs(pre, 2)
    h2, p2 = two.crbm_pool_probs(pre, 2)
    np.testing.assert_array_equal(h1, h2)
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(
        one.crbm_sample_hidden(h1, 2, one.make_rng(1)),
        two.crbm_sample_hidden(h1, 2, two.make_rng(1)),
    )


def test_bad_arguments_are_refused(ops):
    x = ops.asarray(np.zeros((2, 3, 4, 4), dtype=np.float32))
    with pytest.raises(ValueError, match="pool_size"):
        ops.crbm_pool_probs(x, 0)
    with pytest.raises(TypeError, match="pool_size"):
        ops.crbm_pool_probs(x, 1.5)
    with pytest.raises(ValueError, match="pre must be 4-D"):
        ops.crbm_pool_probs(ops.asarray(np.zeros((3, 4, 4), dtype=np.float32)), 2)
    with pytest.raises(ValueError, match="NaN"):
        ops.crbm_pool_probs(
            ops.asarray(np.full((1, 1, 2, 2), np.nan, dtype=np.float32)), 2
        )
    W = ops.asarray(np.zeros((3, 3, 2, 2), dtype=np.float32))
    h = ops.asarray(np.zeros((2, 3, 3, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="visible must be"):
        ops.crbm_visible_means(
            h, W, ops.asarray(np.zeros(3, np.float32)), (2, 3, 4, 4), "binary"
        )
    with pytest.raises(ValueError, match="bv must have one entry per visible channel"):
        ops.crbm_visible_means(
            h, W, ops.asarray(np.zeros(2, np.float32)), (2, 3, 4, 4), "bernoulli"
        )
    X = np.zeros((4, 1, 5, 5), np.float32)
    state = _cd_state(np.float32)
    common = dict(
        pool_size=2,
        learning_rate=0.1,
        momentum=0.0,
        weight_decay=0.0,
        sparsity_target=0.1,
        sparsity_cost=0.0,
        visible="bernoulli",
        rng=ops.make_rng(0),
    )
    with pytest.raises(ValueError, match="k must be a positive int. Received: k=0"):
        ops.crbm_cd_epoch(X, *state, k=0, batch_size=2, **common)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        ops.crbm_cd_epoch(X, *state, k=1, batch_size=0, **common)
    bad = list(state)
    bad[1] = np.zeros(5, np.float32)
    with pytest.raises(ValueError, match=r"bh must have shape \(4,\)"):
        ops.crbm_cd_epoch(X, *bad, k=1, batch_size=2, **common)
    bad = list(state)
    bad[0] = bad[0].astype(np.float64)
    with pytest.raises(TypeError, match="W must have the same dtype"):
        ops.crbm_cd_epoch(X, *bad, k=1, batch_size=2, **common)


def test_compiled_sampler_needs_a_numpy_generator():
    cpu = get_ops("cpu")
    probs = np.full((1, 1, 2, 2), 0.1)
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator"):
        cpu.crbm_sample_hidden(probs, 2, np.random.RandomState(0))


def test_reference_is_the_base_of_the_compiled_backend():
    # The compiled backend inherits the one-call epoch, so its loop is the reference's loop.
    assert type(get_ops("cpu")).crbm_cd_epoch is Ops.crbm_cd_epoch
