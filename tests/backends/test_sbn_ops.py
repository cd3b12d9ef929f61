"""Sigmoid belief net ops: the NumPy reference against exact enumeration and finite differences,
and the compiled backend against the reference, draw for draw."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from neuroplug.backends import get_ops

BACKENDS = ["numpy", "cpu"]


@pytest.fixture(params=BACKENDS)
def ops(request):
    # One thread: the arrays are tiny; test_threads_do_not_change_results covers several.
    return get_ops(request.param, n_threads=1)


def make_params(sizes, dtype=np.float64, seed=0, scale=1.0):
    """Random parameters ``(Wg, bg, Wr, br)`` for layer sizes ``(n_0, ..., n_L)``."""
    r = np.random.default_rng(seed)
    L = len(sizes) - 1
    Wg = [
        (scale * r.normal(size=(sizes[l + 1], sizes[l]))).astype(dtype)
        for l in range(L)
    ]
    bg = [(scale * r.normal(size=sizes[l])).astype(dtype) for l in range(L + 1)]
    Wr = [
        (scale * r.normal(size=(sizes[l], sizes[l + 1]))).astype(dtype)
        for l in range(L)
    ]
    br = [(scale * r.normal(size=sizes[l + 1])).astype(dtype) for l in range(L)]
    return Wg, bg, Wr, br


def copy_params(params):
    return [[np.array(a) for a in group] for group in params]


def binary_data(n, d, seed=1, dtype=np.float64):
    return (np.random.default_rng(seed).random((n, d)) < 0.4).astype(dtype)


# --------------------------------------------------------------------------------------------
# Independent plain-NumPy model code (log sigmoid form, float64) used as the ground truth
# --------------------------------------------------------------------------------------------
def _sig(a):
    return 1.0 / (1.0 + np.exp(-a))


def _log_bern(x, p):
    return (x * np.log(p) + (1 - x) * np.log(1 - p)).sum(axis=-1)


def log_joint(h, Wg, bg):
    """``log p(h_0, ..., h_L)`` for lists of arrays of matching leading shape."""
    L = len(Wg)
    out = _log_bern(h[L], _sig(bg[L]))
    for l in range(L):
        out = out + _log_bern(h[l], _sig(h[l + 1] @ Wg[l] + bg[l]))
    return out


def log_recognition(h, Wr, br):
    """``log q(h_1, ..., h_L | h_0)``."""
    return sum(_log_bern(h[l + 1], _sig(h[l] @ Wr[l] + br[l])) for l in range(len(Wr)))


def exact_log_px(X, Wg, bg):
    """``log p(x)`` by summing ``p(x, h)`` over every hidden configuration."""
    sizes = [b.shape[0] for b in bg]
    terms = []
    for bits in itertools.product((0.0, 1.0), repeat=sum(sizes[1:])):
        bits = np.array(bits)
        h = [X]
        start = 0
        for n in sizes[1:]:
            h.append(np.broadcast_to(bits[start : start + n], (X.shape[0], n)))
            start += n
        terms.append(log_joint(h, Wg, bg))
    terms = np.stack(terms, axis=1)
    peak = terms.max(axis=1, keepdims=True)
    return peak[:, 0] + np.log(np.exp(terms - peak).sum(axis=1))


def all_patterns(n):
    return np.array(list(itertools.product((0.0, 1.0), repeat=n)))


# --------------------------------------------------------------------------------------------
# The reference against exact enumeration
# --------------------------------------------------------------------------------------------
def test_exact_enumeration_sums_to_one():
    # Sanity of the ground truth itself: p(x) over all patterns sums to 1.
    Wg, bg, _, _ = make_params((4, 3, 2))
    assert np.exp(exact_log_px(all_patterns(4), Wg, bg)).sum() == pytest.approx(
        1.0, abs=1e-12
    )


def test_importance_weights_are_log_joint_minus_log_q_of_the_drawn_samples(ops):
    sizes = (5, 3, 2)
    Wg, bg, Wr, br = make_params(sizes)
    X = binary_data(4, 5)
    K = 6
    log_w = ops.to_numpy(
        ops.sbn_log_importance_weights(
            ops.asarray(X),
            *[[ops.asarray(a) for a in g] for g in (Wg, bg, Wr, br)],
            n_samples=K,
            rng=ops.make_rng(7),
        )
    )
    assert log_w.shape == (4, K)
    # Replay the documented draws: one (K, n_l) block of uniforms per layer, shared by the rows.
    r = np.random.Generator(np.random.PCG64(7))
    U = [r.random((K, n)) for n in sizes[1:]]
    for i in range(4):
        h = [np.repeat(X[i : i + 1], K, axis=0)]
        for l in range(2):
            h.append((U[l] < _sig(h[l] @ Wr[l] + br[l])).astype(float))
        expected = log_joint(h, Wg, bg) - log_recognition(h, Wr, br)
        np.testing.assert_allclose(log_w[i], expected, rtol=1e-12, atol=1e-12)


def test_importance_sampled_estimate_converges_to_the_exact_log_likelihood(ops):
    Wg, bg, _, _ = make_params((4, 3, 2), scale=0.8)
    # A broad proposal keeps the importance weights' variance small enough for K = 20000.
    _, _, Wr, br = make_params((4, 3, 2), scale=0.3, seed=1)
    X = all_patterns(4)
    exact = exact_log_px(X, Wg, bg)
    log_w = ops.to_numpy(
        ops.sbn_log_importance_weights(
            X, Wg, bg, Wr, br, n_samples=20000, rng=ops.make_rng(0)
        )
    )
    peak = log_w.max(axis=1, keepdims=True)
    estimate = peak[:, 0] + np.log(np.exp(log_w - peak).mean(axis=1))
    np.testing.assert_allclose(estimate, exact, atol=0.03)
    # One sample at a time the estimate is the ELBO: below log p(x) on average.
    assert (log_w.mean(axis=1) < exact).all()


def test_ancestral_samples_follow_the_model(ops):
    Wg, bg, _, _ = make_params((3, 2, 2), scale=1.5)
    n = 40000
    samples = [ops.to_numpy(s) for s in ops.sbn_sample(Wg, bg, n, ops.make_rng(3))]
    assert [s.shape for s in samples] == [(n, 3), (n, 2), (n, 2)]
    assert all(set(np.unique(s)) <= {0.0, 1.0} for s in samples)
    codes = samples[0] @ np.array([4.0, 2.0, 1.0])
    freq = np.bincount(codes.astype(int), minlength=8) / n
    np.testing.assert_allclose(
        freq, np.exp(exact_log_px(all_patterns(3), Wg, bg)), atol=0.01
    )


# --------------------------------------------------------------------------------------------
# The wake-sleep update is the documented gradient step (finite differences, float64)
# --------------------------------------------------------------------------------------------
def _fd_grad(f, param, eps=1e-6):
    g = np.zeros_like(param)
    for idx in np.ndindex(param.shape):
        old = param[idx]
        param[idx] = old + eps
        up = f()
        param[idx] = old - eps
        down = f()
        param[idx] = old
        g[idx] = (up - down) / (2 * eps)
    return g


@pytest.mark.parametrize("K", [1, 3])
def test_wake_sleep_step_is_the_documented_gradient_step(ops, K):
    sizes = (4, 3, 2)
    L = 2
    lr = 0.1
    Wg, bg, Wr, br = make_params(sizes, scale=0.7)
    X = binary_data(5, 4)
    m = X.shape[0]
    new = copy_params((Wg, bg, Wr, br))
    bound = ops.sbn_wake_sleep_epoch(
        X,
        *new,
        learning_rate=lr,
        batch_size=m,
        n_importance_samples=K,
        rng=ops.make_rng(11),
    )

    # Replay the wake draws: (m K, n_l) uniforms per hidden layer, rows i K + k.
    r = np.random.Generator(np.random.PCG64(11))
    h = [np.repeat(X, K, axis=0)]
    for l in range(L):
        h.append(
            (r.random((m * K, sizes[l + 1])) < _sig(h[l] @ Wr[l] + br[l])).astype(float)
        )
    log_w = (log_joint(h, Wg, bg) - log_recognition(h, Wr, br)).reshape(m, K)
    omega = np.exp(log_w - log_w.max(axis=1, keepdims=True))
    omega = (omega / omega.sum(axis=1, keepdims=True)).ravel()
    expected_bound = np.mean(np.log(np.exp(log_w).mean(axis=1)))
    assert bound == pytest.approx(expected_bound, rel=1e-10)

    # Generative step: lr times the gradient of (1/m) sum omega log p(x, h).
    Wg0, bg0 = copy_params((Wg, bg))
    f_gen = lambda: float((omega * log_joint(h, Wg0, bg0)).sum() / m)  # noqa: E731
    for group0, got in ((Wg0, new[0]), (bg0, new[1])):
        for p0, p1 in zip(group0, got):
            np.testing.assert_allclose(
                ops.to_numpy(p1), p0 + lr * _fd_grad(f_gen, p0), rtol=1e-7, atol=1e-9
            )

    # Recognition: with K > 1, half a step along the weighted wake gradient of log q first ...
    Wr_mid, br_mid = copy_params((Wr, br))
    if K > 1:
        Wr0, br0 = copy_params((Wr, br))
        f_wake = lambda: float((omega * log_recognition(h, Wr0, br0)).sum() / m)  # noqa: E731
        for p0, pm in zip(Wr0 + br0, Wr_mid + br_mid):
            pm += lr / 2 * _fd_grad(f_wake, p0)
    # ... then a (half) step along the gradient of log q on fantasies from the updated model,
    # drawn top-down: (m, n_L) uniforms for the top, then one block per layer below.
    Wg1, bg1 = [ops.to_numpy(a) for a in new[0]], [ops.to_numpy(a) for a in new[1]]
    s = [None] * (L + 1)
    s[L] = (r.random((m, sizes[L])) < _sig(bg1[L])).astype(float)
    for l in range(L - 1, -1, -1):
        s[l] = (r.random((m, sizes[l])) < _sig(s[l + 1] @ Wg1[l] + bg1[l])).astype(
            float
        )
    f_sleep = lambda: float(log_recognition(s, Wr_mid, br_mid).sum() / m)  # noqa: E731
    step = lr if K == 1 else lr / 2
    for pm, got in zip(Wr_mid + br_mid, list(new[2]) + list(new[3])):
        np.testing.assert_allclose(
            ops.to_numpy(got), pm + step * _fd_grad(f_sleep, pm), rtol=1e-7, atol=1e-9
        )


def two_cause_data(ops, n=300):
    """Binary data from an SBN with two independent causes, each switching on its own 4 pixels."""
    G = np.zeros((2, 8))
    G[0, :4] = G[1, 4:] = 6.0
    truth = ([G], [np.full(8, -3.0), np.zeros(2)])
    return ops.to_numpy(
        ops.sbn_sample(truth[0], truth[1], n, ops.make_rng(1))[0]
    ), truth


@pytest.mark.parametrize("K", [1, 3])
def test_wake_sleep_learns_the_structure_of_a_tiny_dataset(ops, K):
    X, truth = two_cause_data(ops)
    params = make_params((8, 3, 2), scale=0.01, seed=2)
    rng = ops.make_rng(4)
    for _ in range(40):
        ops.sbn_wake_sleep_epoch(
            X,
            *params,
            learning_rate=0.2,
            batch_size=10,
            n_importance_samples=K,
            rng=rng,
        )
    learned = exact_log_px(
        X, [ops.to_numpy(a) for a in params[0]], [ops.to_numpy(a) for a in params[1]]
    ).mean()
    # The best model of independent pixels misses the correlations by about 2.7 nats.
    mean = X.mean(axis=0)
    factorial = (X * np.log(mean) + (1 - X) * np.log(1 - mean)).sum(axis=1).mean()
    true = exact_log_px(X, *truth).mean()
    assert learned > factorial + 2.0
    assert learned > true - 0.15


# --------------------------------------------------------------------------------------------
# The compiled backend against the reference
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 2e-5)])
@pytest.mark.parametrize("sizes,K", [((7, 5), 1), ((7, 5, 4, 3), 1), ((7, 5, 4), 3)])
def test_cpu_wake_sleep_epoch_matches_reference(dtype, tol, sizes, K):
    ref, cpu = get_ops("numpy"), get_ops("cpu", n_threads=1)
    p_ref = make_params(sizes, dtype)
    p_cpu = copy_params(p_ref)
    X = binary_data(23, sizes[0], dtype=dtype)  # 23 rows: the last batch of 6 is ragged
    r_ref, r_cpu = ref.make_rng(5), cpu.make_rng(5)
    b_ref = ref.sbn_wake_sleep_epoch(
        X, *p_ref, learning_rate=0.1, batch_size=6, n_importance_samples=K, rng=r_ref
    )
    b_cpu = cpu.sbn_wake_sleep_epoch(
        X, *p_cpu, learning_rate=0.1, batch_size=6, n_importance_samples=K, rng=r_cpu
    )
    assert b_cpu == pytest.approx(b_ref, rel=tol)
    for g_ref, g_cpu in zip(p_ref, p_cpu):
        for a, b in zip(g_ref, g_cpu):
            assert b.dtype == dtype
            np.testing.assert_allclose(b, a, rtol=tol, atol=tol)
    # Both consumed exactly the same number of draws.
    assert r_cpu.random() == r_ref.random()


def test_cpu_wake_sleep_epoch_accepts_soft_targets_and_a_large_batch():
    ref, cpu = get_ops("numpy"), get_ops("cpu", n_threads=1)
    p_ref = make_params((6, 4))
    p_cpu = copy_params(p_ref)
    X = np.random.default_rng(0).random((9, 6))
    b_ref = ref.sbn_wake_sleep_epoch(
        X,
        *p_ref,
        learning_rate=0.05,
        batch_size=100,
        n_importance_samples=2,
        rng=ref.make_rng(1),
    )
    b_cpu = cpu.sbn_wake_sleep_epoch(
        X,
        *p_cpu,
        learning_rate=0.05,
        batch_size=100,
        n_importance_samples=2,
        rng=cpu.make_rng(1),
    )
    assert b_cpu == pytest.approx(b_ref, rel=1e-12)
    for g_ref, g_cpu in zip(p_ref, p_cpu):
        for a, b in zip(g_ref, g_cpu):
            np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cpu_sampling_matches_reference_exactly(dtype):
    ref, cpu = get_ops("numpy"), get_ops("cpu", n_threads=1)
    Wg, bg, _, _ = make_params((7, 5, 3), dtype)
    for a, b in zip(
        ref.sbn_sample(Wg, bg, 13, ref.make_rng(2)),
        cpu.sbn_sample(Wg, bg, 13, cpu.make_rng(2)),
    ):
        assert b.dtype == dtype
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("block_elements", [1, 50, 1 << 22])
def test_cpu_importance_weights_match_reference_in_any_row_blocks(
    dtype, tol, block_elements
):
    from neuroplug_core import sbn as core

    ref = get_ops("numpy")
    params = make_params((7, 5, 4), dtype)
    X = binary_data(11, 7, dtype=dtype)
    expected = ref.sbn_log_importance_weights(
        X, *params, n_samples=6, rng=ref.make_rng(3)
    )
    got = np.empty((11, 6), dtype=dtype)
    core.log_importance_weights(
        X, *params, got, ref.make_rng(3).bit_generator, 1, block_elements
    )
    np.testing.assert_allclose(got, expected, rtol=tol, atol=tol)
    via_ops = get_ops("cpu").sbn_log_importance_weights(
        X, *params, n_samples=6, rng=ref.make_rng(3)
    )
    np.testing.assert_array_equal(via_ops, got)


def test_importance_weights_of_a_row_do_not_depend_on_the_other_rows(ops):
    params = make_params((6, 4, 3))
    X = binary_data(8, 6)
    full = ops.to_numpy(
        ops.sbn_log_importance_weights(X, *params, n_samples=5, rng=ops.make_rng(9))
    )
    order = np.array([5, 2, 7])
    part = ops.to_numpy(
        ops.sbn_log_importance_weights(
            X[order], *params, n_samples=5, rng=ops.make_rng(9)
        )
    )
    np.testing.assert_allclose(part, full[order], rtol=1e-13, atol=1e-13)


def test_threads_do_not_change_results():
    # Large enough for the element-wise loops to go parallel.
    params = make_params((300, 200), np.float32, scale=0.1)
    X = binary_data(400, 300, dtype=np.float32)
    results = []
    for n_threads in (1, 2):
        ops = get_ops("cpu", n_threads=n_threads)
        p = copy_params(params)
        bound = ops.sbn_wake_sleep_epoch(
            X, *p, learning_rate=0.05, batch_size=200, rng=ops.make_rng(0)
        )
        log_w = ops.sbn_log_importance_weights(
            X[:50], *p, n_samples=40, rng=ops.make_rng(1)
        )
        results.append((bound, p, log_w))
    (b1, p1, w1), (b2, p2, w2) = results
    assert b1 == b2
    for g1, g2 in zip(p1, p2):
        for a, b in zip(g1, g2):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(w1, w2)


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------
def _epoch(ops, X, params, **kw):
    args = dict(
        learning_rate=0.1, batch_size=4, n_importance_samples=1, rng=ops.make_rng(0)
    )
    args.update(kw)
    return ops.sbn_wake_sleep_epoch(X, *params, **args)


def test_bad_hyper_parameters_are_refused(ops):
    params = make_params((4, 3))
    X = binary_data(5, 4)
    for kw, match in [
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"learning_rate": float("nan")}, "learning_rate"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"n_importance_samples": 0}, "n_importance_samples"),
    ]:
        with pytest.raises(ValueError, match=match):
            _epoch(ops, X, copy_params(params), **kw)
    with pytest.raises(ValueError, match="n_samples"):
        ops.sbn_sample(params[0], params[1], 0, ops.make_rng(0))
    with pytest.raises(ValueError, match="n_samples"):
        ops.sbn_log_importance_weights(X, *params, n_samples=-1, rng=ops.make_rng(0))


def test_inconsistent_parameters_are_refused(ops):
    Wg, bg, Wr, br = make_params((4, 3, 2))
    X = binary_data(5, 4)
    with pytest.raises(ValueError, match=r"X must have 4 columns.*X.shape=\(5, 3\)"):
        _epoch(ops, X[:, :3], (Wg, bg, Wr, br))
    with pytest.raises(ValueError, match="bg must hold one bias per layer"):
        _epoch(ops, X, (Wg, bg[:2], Wr, br))
    with pytest.raises(
        ValueError, match=r"Wr and br must hold one entry per hidden layer"
    ):
        _epoch(ops, X, (Wg, bg, Wr[:1], br))
    with pytest.raises(ValueError, match=r"Wg\[1\] must have shape"):
        _epoch(ops, X, ([Wg[0], Wg[1][:, :2]], bg, Wr, br))
    with pytest.raises(ValueError, match=r"Wr\[0\] must have shape \(4, 3\)"):
        _epoch(ops, X, (Wg, bg, [Wr[0].T.copy(), Wr[1]], br))
    with pytest.raises(ValueError, match=r"bg\[2\] must have shape \(2,\)"):
        _epoch(ops, X, (Wg, bg[:2] + [np.zeros(3)], Wr, br))
    with pytest.raises(TypeError, match=r"Wg\[0\] must have the same dtype"):
        _epoch(ops, X, ([Wg[0].astype(np.float32), Wg[1]], bg, Wr, br))
    with pytest.raises(TypeError, match="Wg must be a list"):
        _epoch(ops, X, (Wg[0], bg, Wr, br))
    with pytest.raises(ValueError, match="at least one"):
        ops.sbn_sample([], [np.zeros(3)], 2, ops.make_rng(0))
    with pytest.raises(ValueError, match="NaN"):
        _epoch(ops, np.full((5, 4), np.nan), (Wg, bg, Wr, br))


def test_cpu_refuses_parameters_it_could_not_update_in_place():
    cpu = get_ops("cpu")
    Wg, bg, Wr, br = make_params((4, 3))
    X = binary_data(5, 4)
    frozen = Wg[0].copy()
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match=r"Wg\[0\] must be a writable C-contiguous"):
        _epoch(cpu, X, ([frozen], bg, Wr, br))
    with pytest.raises(ValueError, match=r"Wr\[0\] must be a writable C-contiguous"):
        _epoch(cpu, X, (Wg, bg, [np.asfortranarray(Wr[0])], br))
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator"):
        _epoch(cpu, X, (Wg, bg, Wr, br), rng=np.random.RandomState(0))
