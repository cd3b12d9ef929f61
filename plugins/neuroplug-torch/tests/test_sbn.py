"""TorchOps' sigmoid-belief-net ops (ancestral sampling, importance weights, wake-sleep) against the reference."""

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch",
    reason="PyTorch is not installed; the torch backend tests need it (CPU build: pip install torch --index-url https://download.pytorch.org/whl/cpu)",
)


def close(actual, expected, dtype, scale=1.0):
    if isinstance(actual, torch.Tensor):
        actual = actual.cpu().numpy()
    tol = (2e-5 if np.dtype(dtype) == np.float32 else 1e-10) * scale
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol)


def same_draws(ops, seed):
    """Make ``ops`` draw every uniform (Bernoulli samples included) from one fixed NumPy stream."""
    gen = np.random.default_rng(seed)

    def random_uniform(rng, shape, dtype=np.float32):
        np_dtype = np.dtype(str(dtype).replace("torch.", ""))
        return ops.asarray(gen.random(tuple(int(s) for s in shape)).astype(np_dtype))

    def bernoulli(p, rng):
        u = random_uniform(rng, p.shape, p.dtype)
        return (
            (u < p).to(p.dtype)
            if isinstance(p, torch.Tensor)
            else (u < p).astype(p.dtype)
        )

    ops.random_uniform = random_uniform
    ops.bernoulli = bernoulli


def make_sbn(dtype, sizes=(6, 4, 3), seed=0):
    rng = np.random.default_rng(seed)
    Wg = [
        rng.normal(scale=0.5, size=(sizes[l + 1], sizes[l])).astype(dtype)
        for l in range(len(sizes) - 1)
    ]
    bg = [rng.normal(scale=0.3, size=s).astype(dtype) for s in sizes]
    Wr = [
        rng.normal(scale=0.5, size=(sizes[l], sizes[l + 1])).astype(dtype)
        for l in range(len(sizes) - 1)
    ]
    br = [
        rng.normal(scale=0.3, size=sizes[l + 1]).astype(dtype)
        for l in range(len(sizes) - 1)
    ]
    X = (rng.random((7, sizes[0])) < 0.5).astype(dtype)
    return X, Wg, bg, Wr, br


def test_sbn_sample_matches_reference_with_the_same_draws(tops, ref, dtype):
    X, Wg, bg, _, _ = make_sbn(dtype)
    same_draws(tops, 1)
    same_draws(ref, 1)
    got = tops.sbn_sample(
        [tops.asarray(w) for w in Wg],
        [tops.asarray(b) for b in bg],
        5,
        tops.make_rng(0),
    )
    want = ref.sbn_sample(Wg, bg, 5, ref.make_rng(0))
    assert len(got) == len(want) == 3
    for g, w in zip(got, want):
        np.testing.assert_array_equal(tops.to_numpy(g), w)


def test_sbn_sample_is_reproducible_and_binary(tops, dtype):
    _, Wg, bg, _, _ = make_sbn(dtype)
    Wg, bg = [tops.asarray(w) for w in Wg], [tops.asarray(b) for b in bg]
    a = tops.sbn_sample(Wg, bg, 50, tops.make_rng(3))
    b = tops.sbn_sample(Wg, bg, 50, tops.make_rng(3))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert [tuple(s.shape) for s in a] == [(50, 6), (50, 4), (50, 3)]
    assert all(set(np.unique(tops.to_numpy(s))) <= {0.0, 1.0} for s in a)


def test_sbn_log_importance_weights(tops, ref, dtype):
    X, Wg, bg, Wr, br = make_sbn(dtype)
    same_draws(tops, 2)
    same_draws(ref, 2)
    t = [[tops.asarray(a) for a in arrs] for arrs in (Wg, bg, Wr, br)]
    got = tops.sbn_log_importance_weights(X, *t, n_samples=4, rng=tops.make_rng(0))
    want = ref.sbn_log_importance_weights(
        X, Wg, bg, Wr, br, n_samples=4, rng=ref.make_rng(0)
    )
    assert tuple(got.shape) == (7, 4)
    close(got, want, dtype, scale=5)
    # Common random numbers: a row's weights do not depend on the other rows (real torch draws).
    tops = type(tops)(tops.device)
    rows = tops.sbn_log_importance_weights(
        tops.asarray(X[2:4]), *t, n_samples=4, rng=tops.make_rng(9)
    )
    full = tops.sbn_log_importance_weights(
        tops.asarray(X), *t, n_samples=4, rng=tops.make_rng(9)
    )
    close(rows, tops.to_numpy(full)[2:4], dtype)


@pytest.mark.parametrize("K", [1, 3])
@pytest.mark.parametrize("x_on_device", [False, True])
def test_sbn_wake_sleep_epoch_matches_reference(tops, ref, dtype, K, x_on_device):
    X, Wg, bg, Wr, br = make_sbn(dtype, seed=4)
    same_draws(tops, 5)
    same_draws(ref, 5)
    ref_params = [[a.copy() for a in arrs] for arrs in (Wg, bg, Wr, br)]
    t_params = [[tops.asarray(a.copy()) for a in arrs] for arrs in (Wg, bg, Wr, br)]
    kw = dict(learning_rate=0.1, batch_size=3, n_importance_samples=K)
    want = ref.sbn_wake_sleep_epoch(X, *ref_params, rng=ref.make_rng(0), **kw)
    got = tops.sbn_wake_sleep_epoch(
        tops.asarray(X) if x_on_device else X, *t_params, rng=tops.make_rng(0), **kw
    )
    assert isinstance(got, float)
    close(got, want, dtype, scale=10)
    for t_list, r_list in zip(t_params, ref_params):
        for g, w in zip(t_list, r_list):
            close(g, w, dtype, scale=10)


def test_sbn_wake_sleep_real_draws_reproducible_and_checked(tops, dtype):
    X, Wg, bg, Wr, br = make_sbn(dtype, seed=6)

    def run(seed):
        params = [[tops.asarray(a.copy()) for a in arrs] for arrs in (Wg, bg, Wr, br)]
        bound = tops.sbn_wake_sleep_epoch(
            X,
            *params,
            learning_rate=0.05,
            batch_size=4,
            n_importance_samples=2,
            rng=tops.make_rng(seed),
        )
        return bound, tops.to_numpy(params[0][0])

    (b1, w1), (b2, w2), (_, w3) = run(0), run(0), run(1)
    assert b1 == b2 and np.array_equal(w1, w2) and not np.array_equal(w1, w3)
    params = [[tops.asarray(a.copy()) for a in arrs] for arrs in (Wg, bg, Wr, br)]
    with pytest.raises(ValueError, match="learning_rate must be a finite number > 0"):
        tops.sbn_wake_sleep_epoch(
            X, *params, learning_rate=0.0, batch_size=4, rng=tops.make_rng(0)
        )
    with pytest.raises(TypeError, match=r"Wg\[0\] is updated in place"):
        tops.sbn_wake_sleep_epoch(
            X, Wg, *params[1:], learning_rate=0.1, batch_size=4, rng=tops.make_rng(0)
        )
    with pytest.raises(ValueError, match="X must have 6 columns"):
        tops.sbn_wake_sleep_epoch(
            X[:, :5], *params, learning_rate=0.1, batch_size=4, rng=tops.make_rng(0)
        )
    with pytest.raises(TypeError, match="Wg must be a list"):
        tops.sbn_sample(params[0][0], params[1], 3, tops.make_rng(0))
