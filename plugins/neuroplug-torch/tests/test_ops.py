"""TorchOps against the NumPy reference, op by op, in float32 and float64."""

import inspect

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch",
    reason="PyTorch is not installed; the torch backend tests need it (CPU build: pip install torch --index-url https://download.pytorch.org/whl/cpu)",
)

from neuroplug_torch import TorchOps  # noqa: E402

from neuroplug.ops import Ops  # noqa: E402


def close(actual, expected, dtype, scale=1.0):
    """Compare a torch result (tensor, or float) with the reference's."""
    if isinstance(actual, torch.Tensor):
        actual = actual.cpu().numpy()
    tol = (2e-5 if np.dtype(dtype) == np.float32 else 1e-10) * scale
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol)


def rand(rng, shape, dtype, low=-1.0, high=1.0):
    return rng.uniform(low, high, size=shape).astype(dtype)


def test_every_reference_op_is_native_or_a_listed_fallback():
    ops_methods = {
        n for n in dir(Ops) if not n.startswith("_") and callable(getattr(Ops, n))
    }
    for name in ops_methods:
        if name in ("check_cd_epoch", "check_crbm_cd", "check_sbn_epoch"):
            # Extended with the in-place tensor checks, on top of the reference's.
            assert name in vars(TorchOps) and getattr(TorchOps, name) is not getattr(
                Ops, name
            )
        elif name.startswith("check_") or isinstance(
            inspect.getattr_static(Ops, name), staticmethod
        ):
            assert getattr(TorchOps, name) is getattr(
                Ops, name
            )  # validators and shape helpers are shared
        elif name in Ops.composite_ops and name not in vars(TorchOps):
            # Composite loops are inherited and run on TorchOps' own primitives.
            assert getattr(TorchOps, name) is getattr(Ops, name)
        elif name in TorchOps.fallback_ops:
            assert getattr(TorchOps, name)._neuroplug_fallback
        else:
            assert name in vars(TorchOps), f"{name} neither native nor wrapped"


# ------------------------------------------------------------------- arrays
def test_asarray_to_numpy_alloc(tops, dtype):
    x = np.arange(12, dtype=np.float64).reshape(3, 4)
    t = tops.asarray(x, dtype=dtype)
    assert isinstance(t, torch.Tensor) and t.device == tops.torch_device
    assert t.dtype == (torch.float32 if dtype == np.float32 else torch.float64)
    back = tops.to_numpy(t)
    assert isinstance(back, np.ndarray) and back.dtype == dtype
    np.testing.assert_array_equal(back, x)
    # Tensors pass through (same dtype and device: no copy); other dtypes convert.
    assert tops.asarray(t) is t or tops.asarray(t).data_ptr() == t.data_ptr()
    assert tops.asarray(t, dtype=np.float64).dtype == torch.float64
    # Non-contiguous and read-only inputs become contiguous, writable tensors.
    ro = np.asarray(x.T)
    ro.flags.writeable = False
    t2 = tops.asarray(ro)
    assert t2.is_contiguous()
    np.testing.assert_array_equal(tops.to_numpy(t2), x.T)
    t2 += 1  # must not touch the read-only array
    np.testing.assert_array_equal(ro, x.T)
    z = tops.alloc((2, 3), dtype)
    assert tuple(z.shape) == (2, 3) and not z.any() and z.device == tops.torch_device
    assert tuple(tops.alloc(5).shape) == (5,) and tops.alloc(5).dtype == torch.float32
    # Integer arrays keep their dtype (labels, argmax).
    assert tops.asarray(np.array([1, 2], dtype=np.int64)).dtype == torch.int64
    assert tops.to_numpy([1.0, 2.0]).tolist() == [1.0, 2.0]


def test_asarray_shares_memory_on_cpu_like_the_reference():
    tops = TorchOps("cpu")
    x = np.zeros(4, dtype=np.float32)
    t = tops.asarray(x)
    t += 1
    np.testing.assert_array_equal(
        x, 1
    )  # np.ascontiguousarray semantics: no copy when not needed


def test_asarray_rejects_bad_input():
    tops = TorchOps("cpu")
    with pytest.raises(TypeError, match="object array"):
        tops.asarray(np.array([object()]))
    with pytest.raises(TypeError, match="dtype"):
        tops.alloc(3, dtype="not-a-dtype")


# ------------------------------------------------------------------ randomness
def test_rng_reproducible_and_distributions(tops, dtype):
    a = tops.random_uniform(tops.make_rng(3), (2000,), dtype)
    b = tops.random_uniform(tops.make_rng(3), (2000,), dtype)
    c = tops.random_uniform(tops.make_rng(4), (2000,), dtype)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.dtype == tops.asarray(np.zeros(1, dtype)).dtype
    assert (
        float(a.min()) >= 0 and float(a.max()) < 1 and abs(float(a.mean()) - 0.5) < 0.03
    )
    n = tops.random_normal(tops.make_rng(5), (4000,), dtype, scale=2.0)
    assert abs(float(n.mean())) < 0.15 and abs(float(n.std()) - 2.0) < 0.15
    p = tops.asarray(np.array([0.0, 1.0, 1.5, -0.5, 0.3] * 400, dtype=dtype))
    s = tops.to_numpy(tops.bernoulli(p, tops.make_rng(6)))
    assert s.dtype == dtype and set(np.unique(s)) <= {0.0, 1.0}
    np.testing.assert_array_equal(s[0::5], 0)
    np.testing.assert_array_equal(s[1::5], 1)
    np.testing.assert_array_equal(s[2::5], 1)  # p > 1 saturates, like the reference
    np.testing.assert_array_equal(s[3::5], 0)
    assert abs(s[4::5].mean() - 0.3) < 0.06
    mask = tops.to_numpy(tops.dropout_mask((4000,), 0.25, tops.make_rng(7), dtype))
    assert set(np.unique(mask)) == {0.0, np.float64(dtype.type(1) / dtype.type(0.75))}
    assert abs((mask == 0).mean() - 0.25) < 0.03


def test_make_rng_rejects_bad_seeds_and_foreign_generators():
    tops = TorchOps("cpu")
    for seed in (-1, 1.5, True, "3"):
        with pytest.raises(ValueError, match="seed"):
            tops.make_rng(seed)
    tops.make_rng(2**70)  # folded deterministically into 64 bits
    with pytest.raises(TypeError, match="torch.Generator"):
        tops.random_uniform(np.random.default_rng(0), (2,))
    with pytest.raises(TypeError, match="torch.Generator"):
        tops.bernoulli(tops.alloc(3), 0)


# ------------------------------------------------------------ dense algebra
@pytest.mark.parametrize("trans1", [False, True])
@pytest.mark.parametrize("trans2", [False, True])
def test_gemm(tops, ref, dtype, trans1, trans2):
    rng = np.random.default_rng(0)
    a = rand(rng, (4, 5) if trans1 else (5, 4), dtype)
    b = rand(rng, (3, 4) if trans2 else (4, 3), dtype)
    out = tops.gemm(tops.asarray(a), tops.asarray(b), trans1=trans1, trans2=trans2)
    close(out, ref.gemm(a, b, trans1=trans1, trans2=trans2), dtype)
    assert out.is_contiguous()


def test_affine(tops, ref, dtype):
    rng = np.random.default_rng(1)
    x, W, b = rand(rng, (6, 4), dtype), rand(rng, (4, 3), dtype), rand(rng, (3,), dtype)
    close(
        tops.affine(tops.asarray(x), tops.asarray(W), tops.asarray(b)),
        ref.affine(x, W, b),
        dtype,
    )
    close(tops.affine(tops.asarray(x), tops.asarray(W)), ref.affine(x, W), dtype)


# -------------------------------------------------------------- activations
@pytest.mark.parametrize("op", ["sigmoid", "tanh", "relu", "softplus"])
def test_activations(tops, ref, dtype, op):
    x = np.array([[-800.0, -30.0, -1.0, -0.0, 0.0, 0.5, 2.0, 30.0, 800.0]], dtype=dtype)
    close(getattr(tops, op)(tops.asarray(x)), getattr(ref, op)(x), dtype)


@pytest.mark.parametrize("op", ["sigmoid", "tanh", "relu"])
def test_activation_backward(tops, ref, dtype, op):
    rng = np.random.default_rng(2)
    y = getattr(ref, op)(rand(rng, (5, 7), dtype, -3, 3))
    dy = rand(rng, (5, 7), dtype)
    out = getattr(tops, op + "_backward")(tops.asarray(y), tops.asarray(dy))
    close(out, getattr(ref, op + "_backward")(y, dy), dtype)


@pytest.mark.parametrize("axis", [-1, 0])
def test_softmax_and_log_softmax(tops, ref, dtype, axis):
    x = np.array([[1.0, 2.0, 3.0], [-1000.0, 0.0, 1000.0]], dtype=dtype)
    close(tops.softmax(tops.asarray(x), axis=axis), ref.softmax(x, axis=axis), dtype)
    close(
        tops.log_softmax(tops.asarray(x), axis=axis),
        ref.log_softmax(x, axis=axis),
        dtype,
    )


# ------------------------------------------------------------------- losses
@pytest.mark.parametrize("labels_kind", ["numpy", "tensor"])
def test_softmax_cross_entropy(tops, ref, dtype, labels_kind):
    rng = np.random.default_rng(3)
    logits = rand(rng, (7, 4), dtype, -3, 3)
    labels = rng.integers(0, 4, 7)
    lab = labels if labels_kind == "numpy" else tops.asarray(labels)
    loss, grad = tops.softmax_cross_entropy(tops.asarray(logits), lab)
    ref_loss, ref_grad = ref.softmax_cross_entropy(logits, labels)
    assert isinstance(loss, float)
    close(loss, ref_loss, dtype)
    close(grad, ref_grad, dtype)


@pytest.mark.parametrize("bad", [[0, 4], [-1, 0]])
@pytest.mark.parametrize("labels_kind", ["numpy", "tensor"])
def test_softmax_cross_entropy_rejects_out_of_range_labels(tops, bad, labels_kind):
    logits = tops.alloc((2, 4))
    lab = np.array(bad) if labels_kind == "numpy" else tops.asarray(np.array(bad))
    with pytest.raises(ValueError, match=r"labels must be integers in \[0, 4\)"):
        tops.softmax_cross_entropy(logits, lab)
    with pytest.raises(ValueError, match="labels must have shape"):
        tops.softmax_cross_entropy(logits, np.array([0, 1, 2]))


def test_squared_loss(tops, ref, dtype):
    rng = np.random.default_rng(4)
    pred, target = rand(rng, (5, 3), dtype), rand(rng, (5, 3), dtype)
    loss, grad = tops.squared_loss(tops.asarray(pred), tops.asarray(target))
    ref_loss, ref_grad = ref.squared_loss(pred, target)
    close(loss, ref_loss, dtype)
    close(grad, ref_grad, dtype)


# --------------------------------------------------------------- optimisers
@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_update_in_place(tops, ref, dtype, nesterov):
    rng = np.random.default_rng(5)
    p, v = rand(rng, (4, 3), dtype), rand(rng, (4, 3), dtype)
    tp, tv = tops.asarray(p.copy()), tops.asarray(v.copy())
    for _ in range(3):
        g = rand(rng, (4, 3), dtype)
        ref.sgd_update(p, g, v, lr=0.1, momentum=0.9, nesterov=nesterov)
        assert (
            tops.sgd_update(
                tp, tops.asarray(g), tv, lr=0.1, momentum=0.9, nesterov=nesterov
            )
            is None
        )
    close(tp, p, dtype)
    close(tv, v, dtype)


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "explicit"])
def test_adam_update_in_place(tops, ref, dtype, fused):
    if fused and not hasattr(torch, "_fused_adam_"):
        pytest.skip("this torch has no fused Adam kernel")
    tops._fused_adam = fused
    rng = np.random.default_rng(6)
    p = rand(rng, (4, 3), dtype)
    m, v = np.zeros_like(p), np.zeros_like(p)
    tp, tm, tv = (
        tops.asarray(p.copy()),
        tops.alloc(p.shape, dtype),
        tops.alloc(p.shape, dtype),
    )
    kw = dict(
        lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-3
    )  # a large eps makes its placement matter
    for t in range(1, 5):
        g = rand(rng, (4, 3), dtype, -1e-2, 1e-2)
        ref.adam_update(p, g, m, v, t=t, **kw)
        tops.adam_update(tp, tops.asarray(g), tm, tv, t=t, **kw)
    assert tops._fused_adam == fused  # the fused path did not give up
    close(tp, p, dtype, scale=5)
    close(tm, m, dtype, scale=5)
    close(tv, v, dtype, scale=5)


def test_in_place_ops_refuse_host_arrays():
    tops = TorchOps("cpu")
    p = np.zeros(3, np.float32)
    with pytest.raises(
        TypeError, match=r"param is updated in place.*Received: param of type ndarray"
    ):
        tops.sgd_update(p, p, tops.alloc(3), lr=0.1, momentum=0.0, nesterov=False)
    t = tops.alloc(3)
    with pytest.raises(ValueError, match="t must be an int >= 1"):
        tops.adam_update(
            t,
            t,
            tops.alloc(3),
            tops.alloc(3),
            lr=0.1,
            beta1=0.9,
            beta2=0.99,
            eps=1e-8,
            t=0,
        )


# ------------------------------------------------------------- convolution
CONV_CASES = [
    dict(x=(2, 3, 7, 6), w=(4, 3, 3, 2), kw={}),
    dict(x=(2, 3, 7, 6), w=(4, 3, 3, 3), kw=dict(stride=2, padding=1)),
    dict(x=(1, 2, 6, 7), w=(2, 2, 3, 3), kw=dict(stride=(2, 1), padding="same")),
    dict(
        x=(2, 4, 5, 5), w=(6, 2, 2, 2), kw=dict(groups=2, stride=(1, 2), padding=(0, 1))
    ),
    dict(
        x=(2, 3, 6, 6),
        w=(4, 3, 3, 3),
        kw=dict(connections=np.array([[1, 0, 0], [1, 1, 0], [0, 1, 1], [1, 1, 1]])),
    ),
    dict(
        x=(1, 4, 5, 5),
        w=(4, 2, 3, 3),
        kw=dict(groups=2, connections=np.array([[1, 0], [0, 1], [1, 1], [1, 0]])),
    ),
    dict(x=(3, 1, 8, 8), w=(5, 1, 5, 5), kw=dict(padding=2)),
]


@pytest.mark.parametrize("case", CONV_CASES, ids=range(len(CONV_CASES)))
def test_conv2d_forward_and_backward(tops, ref, dtype, case):
    rng = np.random.default_rng(7)
    x, w, b = (
        rand(rng, case["x"], dtype),
        rand(rng, case["w"], dtype),
        rand(rng, (case["w"][0],), dtype),
    )
    kw = case["kw"]
    y = ref.conv2d(x, w, b, **kw)
    ty = tops.conv2d(tops.asarray(x), tops.asarray(w), tops.asarray(b), **kw)
    close(ty, y, dtype, scale=3)
    close(
        tops.conv2d(tops.asarray(x), tops.asarray(w), **kw),
        ref.conv2d(x, w, **kw),
        dtype,
        scale=3,
    )
    dy = rand(rng, y.shape, dtype)
    dx = tops.conv2d_backward_input(tops.asarray(dy), tops.asarray(w), x.shape, **kw)
    assert tuple(dx.shape) == x.shape and dx.is_contiguous()
    close(dx, ref.conv2d_backward_input(dy, w, x.shape, **kw), dtype, scale=3)
    dw, db = tops.conv2d_backward_weights(
        tops.asarray(dy), tops.asarray(x), w.shape, **kw
    )
    ref_dw, ref_db = ref.conv2d_backward_weights(dy, x, w.shape, **kw)
    close(dw, ref_dw, dtype, scale=10)
    close(db, ref_db, dtype, scale=3)
    if kw.get("connections") is not None:
        table = np.asarray(kw["connections"]).astype(bool)
        assert not tops.to_numpy(dw)[~table].any()


BAD_CONV = [
    (
        dict(x=(1, 3, 5, 5), w=(2, 3, 3, 3)),
        dict(stride=0),
        ValueError,
        "stride must be >= 1",
    ),
    (
        dict(x=(1, 3, 5, 5), w=(2, 3, 3, 3)),
        dict(padding="full"),
        ValueError,
        "padding must be 'valid', 'same'",
    ),
    (
        dict(x=(1, 3, 5, 5), w=(2, 3, 2, 2)),
        dict(padding="same"),
        ValueError,
        "odd kernel",
    ),
    (dict(x=(1, 3, 5, 5), w=(2, 2, 3, 3)), {}, ValueError, r"w.shape\[1\] must equal"),
    (
        dict(x=(1, 3, 5, 5), w=(2, 3, 3, 3)),
        dict(groups=2),
        ValueError,
        "divisible by groups",
    ),
    (
        dict(x=(1, 3, 2, 2), w=(2, 3, 3, 3)),
        {},
        ValueError,
        "larger than the padded input",
    ),
    (
        dict(x=(1, 3, 5, 5), w=(2, 3, 3, 3)),
        dict(connections=np.ones((2, 2))),
        ValueError,
        "connections must have shape",
    ),
    (
        dict(x=(1, 3, 5, 5), w=(2, 3, 3, 3)),
        dict(connections=np.array([[1, 1, 1], [0, 0, 0]])),
        ValueError,
        "no input channel",
    ),
]


@pytest.mark.parametrize("shapes,kw,exc,msg", BAD_CONV)
def test_conv2d_rejects_what_the_reference_rejects(tops, ref, shapes, kw, exc, msg):
    x, w = np.ones(shapes["x"], np.float32), np.ones(shapes["w"], np.float32)
    with pytest.raises(exc, match=msg):
        ref.conv2d(x, w, **kw)
    with pytest.raises(exc, match=msg):
        tops.conv2d(tops.asarray(x), tops.asarray(w), **kw)


def test_conv2d_dtype_and_value_checks(tops):
    x = tops.asarray(np.ones((1, 1, 4, 4), np.float32))
    with pytest.raises(TypeError, match="same dtype as the input"):
        tops.conv2d(x, tops.asarray(np.ones((1, 1, 2, 2))))
    with pytest.raises(TypeError, match="float32 or float64"):
        tops.conv2d(x.to(torch.bfloat16), x.to(torch.bfloat16))
    with pytest.raises(ValueError, match="must be 4-D"):
        tops.conv2d(x[0], tops.asarray(np.ones((1, 1, 2, 2), np.float32)))
    bad = x.clone()
    bad[0, 0, 1, 1] = float("nan")
    with pytest.raises(ValueError, match="NaN or infinity"):
        tops.conv2d(bad, tops.asarray(np.ones((1, 1, 2, 2), np.float32)))
    tops.check_finite = False
    tops.conv2d(
        bad, tops.asarray(np.ones((1, 1, 2, 2), np.float32))
    )  # inner layers skip the check
    w = tops.asarray(np.ones((1, 1, 2, 2), np.float32))
    with pytest.raises(ValueError, match=r"dy must have shape \(1, 1, 3, 3\)"):
        tops.conv2d_backward_input(tops.alloc((1, 1, 2, 2)), w, (1, 1, 4, 4))
    with pytest.raises(ValueError, match=r"dy must have shape \(1, 1, 3, 3\)"):
        tops.conv2d_backward_weights(tops.alloc((1, 1, 2, 2)), x, (1, 1, 2, 2))
    with pytest.raises(ValueError, match="x_shape must be 4 positive ints"):
        tops.conv2d_backward_input(tops.alloc((1, 1, 3, 3)), w, (1, 4, 4))


# ----------------------------------------------------------------- pooling
POOL_CASES = [
    ((2, 3, 6, 6), 2, None),
    ((1, 2, 7, 5), 2, None),
    ((2, 2, 7, 7), 3, 2),
    ((1, 1, 6, 8), (2, 3), (1, 2)),
]


@pytest.mark.parametrize("shape,size,stride", POOL_CASES)
def test_maxpool2d(tops, ref, dtype, shape, size, stride):
    rng = np.random.default_rng(8)
    x = rng.integers(0, 4, shape).astype(dtype)  # many ties: the first maximum must win
    y, am = ref.maxpool2d(x, size, stride)
    ty, tam = tops.maxpool2d(tops.asarray(x), size, stride)
    close(ty, y, dtype)
    assert tam.dtype == torch.int64
    np.testing.assert_array_equal(tops.to_numpy(tam), am)
    dy = rand(rng, y.shape, dtype)
    dx = tops.maxpool2d_backward(tops.asarray(dy), tam, x.shape)
    close(dx, ref.maxpool2d_backward(dy, am, x.shape), dtype)


def test_maxpool2d_backward_checks(tops):
    dy = tops.alloc((1, 1, 2, 2))
    with pytest.raises(ValueError, match="outside the input plane"):
        tops.maxpool2d_backward(
            dy, tops.asarray(np.full((1, 1, 2, 2), 16)), (1, 1, 4, 4)
        )
    with pytest.raises(ValueError, match="same shape"):
        tops.maxpool2d_backward(
            dy, tops.asarray(np.zeros((1, 1, 2, 3), np.int64)), (1, 1, 4, 4)
        )
    with pytest.raises(ValueError, match="larger than the input"):
        tops.maxpool2d(tops.alloc((1, 1, 2, 2)), 3)


@pytest.mark.parametrize("shape,size,stride", POOL_CASES)
def test_meanpool2d(tops, ref, dtype, shape, size, stride):
    rng = np.random.default_rng(9)
    x = rand(rng, shape, dtype)
    y = ref.meanpool2d(x, size, stride)
    close(tops.meanpool2d(tops.asarray(x), size, stride), y, dtype)
    dy = rand(rng, y.shape, dtype)
    close(
        tops.meanpool2d_backward(tops.asarray(dy), x.shape, size, stride),
        ref.meanpool2d_backward(dy, x.shape, size, stride),
        dtype,
    )
    with pytest.raises(ValueError, match="dy must have shape"):
        tops.meanpool2d_backward(tops.asarray(dy[..., :-1]), x.shape, size, stride)


# --------------------------------------------------------------------- RBM
@pytest.fixture
def rbm_params(dtype):
    rng = np.random.default_rng(10)
    return dict(
        v=(rng.random((9, 6)) < 0.5).astype(dtype),
        W=rand(rng, (4, 6), dtype, -0.5, 0.5),
        bh=rand(rng, (4,), dtype, -0.1, 0.1),
        bv=rand(rng, (6,), dtype, -0.1, 0.1),
    )


@pytest.mark.parametrize("visible", ["bernoulli", "gaussian"])
def test_rbm_deterministic_ops(tops, ref, dtype, rbm_params, visible):
    p = rbm_params
    t = {k: tops.asarray(v) for k, v in p.items()}
    close(
        tops.rbm_hidden_probs(t["v"], t["W"], t["bh"]),
        ref.rbm_hidden_probs(p["v"], p["W"], p["bh"]),
        dtype,
    )
    h = ref.rbm_hidden_probs(p["v"], p["W"], p["bh"])
    close(
        tops.rbm_visible_means(tops.asarray(h), t["W"], t["bv"], visible),
        ref.rbm_visible_means(h, p["W"], p["bv"], visible),
        dtype,
    )
    close(
        tops.rbm_free_energy(t["v"], t["W"], t["bh"], t["bv"], visible),
        ref.rbm_free_energy(p["v"], p["W"], p["bh"], p["bv"], visible),
        dtype,
    )
    with pytest.raises(ValueError, match="visible must be 'bernoulli' or 'gaussian'"):
        tops.rbm_visible_means(tops.asarray(h), t["W"], t["bv"], "binary")


@pytest.mark.parametrize("visible", ["bernoulli", "gaussian"])
def test_rbm_sampling_ops_are_reproducible(tops, dtype, rbm_params, visible):
    t = {k: tops.asarray(v) for k, v in rbm_params.items()}
    a = tops.rbm_gibbs(
        t["v"], t["W"], t["bh"], t["bv"], steps=3, visible=visible, rng=tops.make_rng(0)
    )
    b = tops.rbm_gibbs(
        t["v"], t["W"], t["bh"], t["bv"], steps=3, visible=visible, rng=tops.make_rng(0)
    )
    assert torch.equal(a, b) and tuple(a.shape) == (9, 6)
    if visible == "bernoulli":
        assert set(np.unique(tops.to_numpy(a))) <= {0.0, 1.0}
    assert torch.equal(
        tops.rbm_gibbs(
            t["v"],
            t["W"],
            t["bh"],
            t["bv"],
            steps=0,
            visible=visible,
            rng=tops.make_rng(0),
        ),
        t["v"],
    )
    h = tops.bernoulli(tops.rbm_hidden_probs(t["v"], t["W"], t["bh"]), tops.make_rng(1))
    s1 = tops.rbm_sample_visible(h, t["W"], t["bv"], visible, tops.make_rng(2))
    s2 = tops.rbm_sample_visible(h, t["W"], t["bv"], visible, tops.make_rng(2))
    assert torch.equal(s1, s2)


def _threshold_bernoulli(ops):
    """Make ``ops.bernoulli`` deterministic (p > 0.5) so CD-k can be compared across backends."""

    def bern(p, rng):
        return (
            (p > 0.5).to(p.dtype)
            if isinstance(p, torch.Tensor)
            else (p > 0.5).astype(p.dtype)
        )

    ops.bernoulli = bern


@pytest.mark.parametrize(
    "visible,sample_visible",
    [("bernoulli", False), ("gaussian", False), ("bernoulli", True)],
)
@pytest.mark.parametrize("persistent", [False, True])
def test_cd_epoch_matches_reference(
    tops, ref, dtype, visible, sample_visible, persistent
):
    rng = np.random.default_rng(11)
    X = (rng.random((11, 6)) < 0.4).astype(dtype)
    W, bh, bv = (
        rand(rng, (5, 6), dtype, -0.5, 0.5),
        rand(rng, (5,), dtype, -0.1, 0.1),
        rand(rng, (6,), dtype, -0.1, 0.1),
    )
    dW, dbh, dbv = (rand(rng, s, dtype, -0.01, 0.01) for s in ((5, 6), (5,), (6,)))
    chain = (rng.random((4, 5)) < 0.5).astype(dtype) if persistent else None
    _threshold_bernoulli(tops)
    _threshold_bernoulli(ref)
    ref_arrays = [a.copy() for a in (W, bh, bv, dW, dbh, dbv)]
    t_arrays = [tops.asarray(a.copy()) for a in (W, bh, bv, dW, dbh, dbv)]
    t_chain = None if chain is None else tops.asarray(chain.copy())
    ref_chain = None if chain is None else chain.copy()
    kw = dict(
        k=2,
        learning_rate=0.1,
        momentum=0.5,
        weight_decay=0.01,
        batch_size=4,
        visible=visible,
        sample_visible=sample_visible,
    )
    err = ref.cd_epoch(X, *ref_arrays, rng=ref.make_rng(0), chain=ref_chain, **kw)
    t_err = tops.cd_epoch(X, *t_arrays, rng=tops.make_rng(0), chain=t_chain, **kw)
    assert isinstance(t_err, float)
    close(t_err, err, dtype, scale=5)
    for got, want in zip(t_arrays, ref_arrays):
        close(got, want, dtype, scale=5)
    if persistent:
        close(t_chain, ref_chain, dtype)
    # X already on the device gives the same result as a host X.
    t2 = [tops.asarray(a.copy()) for a in (W, bh, bv, dW, dbh, dbv)]
    tops.cd_epoch(
        tops.asarray(X),
        *t2,
        rng=tops.make_rng(0),
        chain=None if chain is None else tops.asarray(chain.copy()),
        **kw,
    )
    for got, want in zip(t2, t_arrays):
        assert torch.equal(got, want)


def test_cd_epoch_reproducible_with_real_sampling(tops, dtype):
    rng = np.random.default_rng(12)
    X = (rng.random((10, 6)) < 0.4).astype(dtype)
    W0 = rand(rng, (3, 6), dtype, -0.1, 0.1)

    def run(seed):
        arrays = [
            tops.asarray(W0.copy()),
            tops.alloc(3, dtype),
            tops.alloc(6, dtype),
            tops.alloc((3, 6), dtype),
            tops.alloc(3, dtype),
            tops.alloc(6, dtype),
        ]
        err = tops.cd_epoch(
            X,
            *arrays,
            k=1,
            learning_rate=0.1,
            momentum=0.5,
            weight_decay=0.0,
            batch_size=3,
            visible="bernoulli",
            rng=tops.make_rng(seed),
        )
        return err, tops.to_numpy(arrays[0])

    (e1, w1), (e2, w2), (_, w3) = run(0), run(0), run(1)
    assert e1 == e2 and np.array_equal(w1, w2)
    assert not np.array_equal(w1, w3)


def test_cd_epoch_argument_checks(tops):
    W = tops.alloc((3, 4))
    args = [
        W,
        tops.alloc(3),
        tops.alloc(4),
        tops.alloc((3, 4)),
        tops.alloc(3),
        tops.alloc(4),
    ]
    kw = dict(
        k=1,
        learning_rate=0.1,
        momentum=0.0,
        weight_decay=0.0,
        batch_size=2,
        visible="bernoulli",
    )
    X = np.zeros((4, 4), np.float32)
    with pytest.raises(TypeError, match="dW is updated in place"):
        tops.cd_epoch(
            X,
            *args[:3],
            np.zeros((3, 4), np.float32),
            *args[4:],
            rng=tops.make_rng(0),
            **kw,
        )
    with pytest.raises(ValueError, match="k must be an int >= 1"):
        tops.cd_epoch(X, *args, rng=tops.make_rng(0), **{**kw, "k": 0})
    with pytest.raises(ValueError, match=r"chain must have shape \(>= 2, n_hidden=3\)"):
        tops.cd_epoch(X, *args, rng=tops.make_rng(0), chain=tops.alloc((1, 3)), **kw)
    with pytest.raises(ValueError, match="needs visible='bernoulli'"):
        tops.cd_epoch(
            X,
            *args,
            rng=tops.make_rng(0),
            **{**kw, "visible": "gaussian"},
            sample_visible=True,
        )


def test_remembered_conv_checks_still_refuse_bad_calls():
    # With check_finite=False the shape checks are remembered per combination of arguments;
    # a combination that failed must fail every time, and a new one is checked afresh.
    tops = TorchOps("cpu", check_finite=False)
    x = tops.asarray(np.ones((1, 2, 5, 5), np.float32))
    w = tops.asarray(np.ones((3, 2, 3, 3), np.float32))
    assert tuple(tops.conv2d(x, w, stride=2).shape) == (1, 3, 2, 2)
    assert tuple(tops.conv2d(x, w, stride=2).shape) == (1, 3, 2, 2)  # remembered
    for _ in range(2):
        with pytest.raises(ValueError, match=r"w.shape\[1\] must equal"):
            tops.conv2d(tops.asarray(np.ones((1, 3, 5, 5), np.float32)), w, stride=2)
        with pytest.raises(ValueError, match="stride must be >= 1"):
            tops.conv2d(x, w, stride=0)
    with pytest.raises(TypeError, match="same dtype"):
        tops.conv2d(x.double(), w, stride=2)
    tops.conv2d(x, w, stride=[2, 2])  # unhashable arguments take the full path


def _replay_draws(ops, seed):
    """Make ``ops`` draw uniforms, normals and Bernoulli samples from one fixed NumPy stream."""
    gen = np.random.default_rng(seed)

    def np_dtype(dtype):
        return np.dtype(str(dtype).replace("torch.", ""))

    def random_uniform(rng, shape, dtype=np.float32):
        return ops.asarray(
            gen.random(tuple(int(s) for s in shape)).astype(np_dtype(dtype))
        )

    def random_normal(rng, shape, dtype=np.float32, scale=1.0):
        return ops.asarray(
            (scale * gen.standard_normal(tuple(int(s) for s in shape))).astype(
                np_dtype(dtype)
            )
        )

    def bernoulli(p, rng):
        u = random_uniform(rng, p.shape, p.dtype)
        return (
            (u < p).to(p.dtype)
            if isinstance(p, torch.Tensor)
            else (u < p).astype(p.dtype)
        )

    ops.random_uniform, ops.random_normal, ops.bernoulli = (
        random_uniform,
        random_normal,
        bernoulli,
    )


@pytest.mark.parametrize("visible", ["bernoulli", "gaussian"])
def test_rbm_ais_log_weights(tops, ref, dtype, rbm_params, visible):
    p = rbm_params
    base = np.full(6, 0.1, dtype=dtype)
    betas = np.linspace(0.0, 1.0, 7)
    _replay_draws(tops, 13)
    _replay_draws(ref, 13)
    got = tops.rbm_ais_log_weights(
        tops.asarray(p["W"]),
        tops.asarray(p["bh"]),
        tops.asarray(p["bv"]),
        tops.asarray(base),
        betas,
        n_runs=5,
        visible=visible,
        rng=tops.make_rng(0),
    )
    want = ref.rbm_ais_log_weights(
        p["W"],
        p["bh"],
        p["bv"],
        base,
        betas,
        n_runs=5,
        visible=visible,
        rng=ref.make_rng(0),
    )
    assert isinstance(got, np.ndarray) and got.dtype == np.float64 and got.shape == (5,)
    close(got, want, dtype, scale=5)
    with pytest.raises(ValueError, match="n_runs must be an int >= 1"):
        tops.rbm_ais_log_weights(
            tops.asarray(p["W"]),
            tops.asarray(p["bh"]),
            tops.asarray(p["bv"]),
            tops.asarray(base),
            betas,
            n_runs=0,
            visible=visible,
            rng=tops.make_rng(0),
        )
