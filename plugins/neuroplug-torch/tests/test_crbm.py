"""TorchOps' convolutional-RBM ops (probabilistic max-pooling, CD-k) against the NumPy reference."""

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


def same_uniforms(ops, seed):
    """Make ``ops.random_uniform`` replay a fixed NumPy stream, so two backends draw the same numbers."""
    gen = np.random.default_rng(seed)

    def random_uniform(rng, shape, dtype=np.float32):
        np_dtype = np.dtype(str(dtype).replace("torch.", ""))
        return ops.asarray(gen.random(tuple(shape)).astype(np_dtype))

    ops.random_uniform = random_uniform


@pytest.mark.parametrize(
    "hw,pool", [((4, 6), (2, 2)), ((5, 7), (2, 3)), ((3, 3), (1, 1))]
)
def test_pool_probs_and_sampling(tops, ref, dtype, hw, pool):
    rng = np.random.default_rng(0)
    pre = (rng.normal(scale=3.0, size=(2, 3, *hw))).astype(dtype)
    pre[0, 0, 0, 0] = 40.0  # large logits must not overflow
    h, p = tops.crbm_pool_probs(tops.asarray(pre), pool)
    ref_h, ref_p = ref.crbm_pool_probs(pre, pool)
    close(h, ref_h, dtype)
    close(p, ref_p, dtype)
    same_uniforms(tops, 1)
    same_uniforms(ref, 1)
    s = tops.crbm_sample_hidden(h, pool, tops.make_rng(0))
    np.testing.assert_array_equal(
        tops.to_numpy(s), ref.crbm_sample_hidden(ref_h, pool, ref.make_rng(0))
    )


def test_sampling_is_one_hot_per_block_and_reproducible(tops):
    probs, _ = tops.crbm_pool_probs(
        tops.asarray(np.random.default_rng(1).normal(size=(3, 2, 4, 4))), 2
    )
    a = tops.crbm_sample_hidden(probs, 2, tops.make_rng(5))
    b = tops.crbm_sample_hidden(probs, 2, tops.make_rng(5))
    assert torch.equal(a, b)
    per_block = tops.to_numpy(a).reshape(3, 2, 2, 2, 2, 2).sum(axis=(3, 5))
    assert per_block.max() <= 1 and set(np.unique(tops.to_numpy(a))) <= {0.0, 1.0}


CONV = [
    dict(),
    dict(stride=2, padding=1),
    dict(connections=np.array([[1, 0], [1, 1], [0, 1]])),
]


@pytest.mark.parametrize("conv", CONV, ids=range(len(CONV)))
@pytest.mark.parametrize("visible", ["bernoulli", "gaussian"])
def test_visible_means_and_free_energy(tops, ref, dtype, conv, visible):
    rng = np.random.default_rng(2)
    v = rng.random((2, 2, 7, 6)).astype(dtype)
    W = rng.normal(scale=0.3, size=(3, 2, 3, 3)).astype(dtype)
    bh, bv = rng.normal(size=3).astype(dtype), rng.normal(size=2).astype(dtype)
    pre = ref.conv2d(v, W, bh, **conv)
    h = (rng.random(pre.shape) < 0.3).astype(dtype)
    close(
        tops.crbm_visible_means(
            tops.asarray(h), tops.asarray(W), tops.asarray(bv), v.shape, visible, **conv
        ),
        ref.crbm_visible_means(h, W, bv, v.shape, visible, **conv),
        dtype,
    )
    close(
        tops.crbm_free_energy(
            tops.asarray(v),
            tops.asarray(W),
            tops.asarray(bh),
            tops.asarray(bv),
            pool_size=2,
            visible=visible,
            **conv,
        ),
        ref.crbm_free_energy(v, W, bh, bv, pool_size=2, visible=visible, **conv),
        dtype,
        scale=5,
    )
    with pytest.raises(ValueError, match="bv must have one entry per visible channel"):
        tops.crbm_visible_means(
            tops.asarray(h), tops.asarray(W), tops.asarray(bh), v.shape, visible, **conv
        )


@pytest.mark.parametrize("conv", CONV, ids=range(len(CONV)))
@pytest.mark.parametrize("visible,k", [("bernoulli", 1), ("gaussian", 2)])
@pytest.mark.parametrize("x_on_device", [False, True])
def test_crbm_cd_epoch_matches_reference(
    tops, ref, dtype, conv, visible, k, x_on_device
):
    rng = np.random.default_rng(3)
    X = rng.random((5, 2, 7, 6)).astype(dtype)
    W = rng.normal(scale=0.1, size=(3, 2, 3, 3)).astype(dtype)
    arrays = [
        W,
        rng.normal(scale=0.1, size=3).astype(dtype),
        rng.normal(scale=0.1, size=2).astype(dtype),
        np.zeros_like(W),
        np.zeros(3, dtype),
        np.zeros(2, dtype),
    ]
    kw = dict(
        k=k,
        pool_size=2,
        learning_rate=0.1,
        momentum=0.5,
        weight_decay=0.01,
        sparsity_target=0.1,
        sparsity_cost=0.5,
        batch_size=2,
        visible=visible,
        **conv,
    )
    same_uniforms(tops, 4)
    same_uniforms(ref, 4)
    ref_arrays = [a.copy() for a in arrays]
    t_arrays = [tops.asarray(a.copy()) for a in arrays]
    err = ref.crbm_cd_epoch(X, *ref_arrays, rng=ref.make_rng(0), **kw)
    t_err = tops.crbm_cd_epoch(
        tops.asarray(X) if x_on_device else X, *t_arrays, rng=tops.make_rng(0), **kw
    )
    assert isinstance(t_err, float)
    close(t_err, err, dtype, scale=20)
    for got, want in zip(t_arrays, ref_arrays):
        close(got, want, dtype, scale=20)


def test_crbm_cd_epoch_checks_like_the_reference(tops):
    X = np.ones((2, 1, 5, 5), np.float32)
    W = tops.asarray(np.ones((2, 1, 3, 3), np.float32))
    args = [
        W,
        tops.alloc(2),
        tops.alloc(1),
        tops.alloc((2, 1, 3, 3)),
        tops.alloc(2),
        tops.alloc(1),
    ]
    kw = dict(
        k=1,
        pool_size=2,
        learning_rate=0.1,
        momentum=0.0,
        weight_decay=0.0,
        sparsity_target=0.1,
        sparsity_cost=0.0,
        batch_size=2,
        visible="bernoulli",
    )
    with pytest.raises(ValueError, match="k must be a positive int"):
        tops.crbm_cd_epoch(X, *args, rng=tops.make_rng(0), **{**kw, "k": 0})
    with pytest.raises(ValueError, match=r"bh must have shape \(2,\)"):
        tops.crbm_cd_epoch(X, W, tops.alloc(3), *args[2:], rng=tops.make_rng(0), **kw)
    with pytest.raises(TypeError, match="same dtype as the input"):
        tops.crbm_cd_epoch(X.astype(np.float64), *args, rng=tops.make_rng(0), **kw)
    bad = X.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or infinity"):
        tops.crbm_cd_epoch(bad, *args, rng=tops.make_rng(0), **kw)
    with pytest.raises(TypeError, match="W is updated in place"):
        tops.crbm_cd_epoch(
            X, np.ones((2, 1, 3, 3), np.float32), *args[1:], rng=tops.make_rng(0), **kw
        )
