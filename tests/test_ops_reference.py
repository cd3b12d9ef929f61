"""The NumPy reference Ops on small hand-computed cases.

Every other backend is tested against this reference, so here the reference
itself is checked against values worked out by hand.
"""

import numpy as np
import pytest

from neuroplug.ops import (
    Ops,
    conv2d_output_shape,
    normalize_padding,
    pool2d_output_shape,
)

ops = Ops()


def test_conv2d_hand_computed():
    x = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)
    w = np.array([[[[1.0, 0.0], [0.0, -1.0]]]])  # x[i,j] - x[i+1,j+1]
    y = ops.conv2d(x, w, np.array([0.5]))
    assert y.shape == (1, 1, 3, 3)
    np.testing.assert_array_equal(y, np.full((1, 1, 3, 3), -5 + 0.5))
    # stride 2, padding 1: windows start at -1, 1, 3.
    y = ops.conv2d(x, np.ones((1, 1, 2, 2)), stride=2, padding=1)
    np.testing.assert_array_equal(
        y[0, 0], [[0, 1 + 2, 3], [4 + 8, 5 + 6 + 9 + 10, 7 + 11], [12, 13 + 14, 15]]
    )


def test_conv2d_groups_and_connections():
    x = np.stack([np.ones((3, 3)), 2 * np.ones((3, 3))])[
        None
    ]  # channel 0 = 1, channel 1 = 2
    w = np.ones((2, 1, 3, 3))
    y = ops.conv2d(x, w, groups=2)
    np.testing.assert_array_equal(y.ravel(), [9, 18])
    w_full = np.ones((2, 2, 3, 3))
    table = np.array([[1, 0], [1, 1]])  # filter 0 sees only channel 0
    y = ops.conv2d(x, w_full, connections=table)
    np.testing.assert_array_equal(y.ravel(), [9, 27])
    dw, db = ops.conv2d_backward_weights(
        np.ones((1, 2, 1, 1)), x, w_full.shape, connections=table
    )
    assert (dw[0, 1] == 0).all() and (dw[0, 0] == 1).all() and (dw[1, 1] == 2).all()
    np.testing.assert_array_equal(db, [1, 1])
    dx = ops.conv2d_backward_input(
        np.ones((1, 2, 1, 1)), w_full, x.shape, connections=table
    )
    np.testing.assert_array_equal(dx[0, 0], 2 * np.ones((3, 3)))
    np.testing.assert_array_equal(dx[0, 1], np.ones((3, 3)))


def test_conv2d_backward_matches_finite_differences():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 5, 4))
    w = rng.standard_normal((4, 3, 3, 2))
    b = rng.standard_normal(4)
    kw = dict(stride=(2, 1), padding=(1, 0))
    dy = rng.standard_normal(ops.conv2d(x, w, b, **kw).shape)

    def loss(x_, w_, b_):
        return float((ops.conv2d(x_, w_, b_, **kw) * dy).sum())

    dx = ops.conv2d_backward_input(dy, w, x.shape, **kw)
    dw, db = ops.conv2d_backward_weights(dy, x, w.shape, **kw)
    eps = 1e-6
    for arr, grad, args in ((x, dx, 0), (w, dw, 1), (b, db, 2)):
        for idx in [tuple(rng.integers(0, s) for s in arr.shape) for _ in range(5)]:
            plus, minus = [a.copy() for a in (x, w, b)], [a.copy() for a in (x, w, b)]
            plus[args][idx] += eps
            minus[args][idx] -= eps
            numeric = (loss(*plus) - loss(*minus)) / (2 * eps)
            assert numeric == pytest.approx(grad[idx], rel=1e-6, abs=1e-8)


def test_maxpool_hand_computed_and_ragged_edge():
    x = np.array([[1, 5, 2, 0, 9], [3, 4, 8, 1, 9], [0, 0, 0, 0, 9]], dtype=np.float32)[
        None, None
    ]
    y, argmax = ops.maxpool2d(x, 2)
    # 3x5 input, 2x2 windows: the last row and column are dropped (floor).
    np.testing.assert_array_equal(y[0, 0], [[5, 8]])
    np.testing.assert_array_equal(argmax[0, 0], [[1, 7]])  # flat index row*5+col
    dx = ops.maxpool2d_backward(
        np.array([[[[10, 20]]]], dtype=np.float32), argmax, x.shape
    )
    expected = np.zeros_like(x)
    expected[0, 0, 0, 1] = 10
    expected[0, 0, 1, 2] = 20
    np.testing.assert_array_equal(dx, expected)


def test_maxpool_overlapping_windows_accumulate():
    x = np.array([[0, 9, 0], [0, 0, 0], [0, 0, 0]], dtype=np.float64)[None, None]
    y, argmax = ops.maxpool2d(x, 2, stride=1)
    np.testing.assert_array_equal(y[0, 0], [[9, 9], [0, 0]])
    dx = ops.maxpool2d_backward(np.ones_like(y), argmax, x.shape)
    assert dx[0, 0, 0, 1] == 2  # chosen by two windows


def test_meanpool_hand_computed():
    x = np.arange(16, dtype=np.float64).reshape(1, 1, 4, 4)
    y = ops.meanpool2d(x, 2)
    np.testing.assert_array_equal(y[0, 0], [[2.5, 4.5], [10.5, 12.5]])
    dx = ops.meanpool2d_backward(np.ones_like(y), x.shape, 2)
    np.testing.assert_array_equal(dx, np.full_like(x, 0.25))


def test_shape_helpers():
    assert conv2d_output_shape((28, 28), (5, 5), (1, 1), (0, 0)) == (24, 24)
    assert conv2d_output_shape(
        (7, 7), (3, 3), (2, 2), normalize_padding("same", (3, 3))
    ) == (4, 4)
    assert pool2d_output_shape((5, 5), (2, 2), (2, 2)) == (2, 2)
    with pytest.raises(ValueError, match="odd kernel"):
        normalize_padding("same", (2, 2))
    with pytest.raises(ValueError, match="padding must be >= 0"):
        normalize_padding(-1, (3, 3))


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (
            dict(x=np.ones((1, 2, 4, 4)), w=np.ones((1, 3, 2, 2))),
            ValueError,
            r"w.shape\[1\] must equal",
        ),
        (
            dict(x=np.ones((2, 4, 4)), w=np.ones((1, 1, 2, 2))),
            ValueError,
            "x must be 4-D",
        ),
        (
            dict(x=np.ones((1, 1, 2, 2)), w=np.ones((1, 1, 3, 3))),
            ValueError,
            "larger than the padded input",
        ),
        (
            dict(x=np.ones((0, 1, 4, 4)), w=np.ones((1, 1, 2, 2))),
            ValueError,
            "must not be empty",
        ),
        (
            dict(x=np.ones((1, 1, 4, 4), dtype=int), w=np.ones((1, 1, 2, 2))),
            TypeError,
            "float32 or float64",
        ),
        (
            dict(x=np.ones((1, 1, 4, 4), "f4"), w=np.ones((1, 1, 2, 2))),
            TypeError,
            "same dtype",
        ),
        (
            dict(x=np.full((1, 1, 4, 4), np.nan), w=np.ones((1, 1, 2, 2))),
            ValueError,
            "NaN",
        ),
        (
            dict(x=np.ones((1, 1, 4, 4)), w=np.ones((1, 1, 2, 2)), stride=0),
            ValueError,
            "stride must be >= 1",
        ),
        (
            dict(x=np.ones((1, 2, 4, 4)), w=np.ones((3, 1, 2, 2)), groups=2),
            ValueError,
            "divisible by groups",
        ),
        (
            dict(
                x=np.ones((1, 2, 4, 4)),
                w=np.ones((2, 2, 2, 2)),
                connections=np.ones((2, 3)),
            ),
            ValueError,
            "connections must have shape",
        ),
        (
            dict(
                x=np.ones((1, 2, 4, 4)),
                w=np.ones((2, 2, 2, 2)),
                connections=np.array([[1, 1], [0, 0]]),
            ),
            ValueError,
            "no input channel",
        ),
    ],
)
def test_conv2d_bad_input(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        ops.conv2d(**kwargs)


def test_activations_and_losses():
    x = np.array([[-1000.0, 0.0, 1000.0]])
    np.testing.assert_allclose(ops.sigmoid(x), [[0.0, 0.5, 1.0]])
    np.testing.assert_allclose(
        ops.softmax(np.array([[0.0, np.log(3.0)]])), [[0.25, 0.75]]
    )
    np.testing.assert_allclose(
        ops.softplus(np.array([0.0, 1000.0])), [np.log(2), 1000.0]
    )
    np.testing.assert_array_equal(
        ops.relu_backward(np.array([0.0, 2.0]), np.array([5.0, 5.0])), [0, 5]
    )
    loss, grad = ops.softmax_cross_entropy(
        np.array([[0.0, np.log(3.0)], [0.0, 0.0]]), np.array([1, 0])
    )
    assert loss == pytest.approx((-np.log(0.75) - np.log(0.5)) / 2)
    np.testing.assert_allclose(grad, [[0.125, -0.125], [-0.25, 0.25]])
    loss, grad = ops.squared_loss(np.array([[1.0, 2.0]]), np.array([[0.0, 0.0]]))
    assert loss == 2.5 and grad.tolist() == [[1.0, 2.0]]


def test_optimiser_steps():
    p, g, v = np.array([1.0]), np.array([0.5]), np.array([0.0])
    ops.sgd_update(p, g, v, lr=0.1, momentum=0.9, nesterov=False)
    assert p[0] == pytest.approx(0.95) and v[0] == pytest.approx(-0.05)
    p, m, s = np.array([1.0]), np.array([0.0]), np.array([0.0])
    ops.adam_update(
        p, np.array([2.0]), m, s, lr=0.1, beta1=0.9, beta2=0.999, eps=0.0, t=1
    )
    assert p[0] == pytest.approx(0.9)  # the first Adam step moves by lr * sign(g)


def test_cd_epoch_with_zero_weights_hand_computed():
    # With W = 0 the hidden probabilities are sigmoid(bh) = 0.5 whatever the data,
    # reconstructions are sigmoid(bv) = 0.5, so the weight gradient is
    # 0.5 * (mean(v0) - 0.5) per unit and the visible bias moves by mean(v0) - 0.5.
    X = np.array([[1.0, 0.0], [1.0, 1.0]])
    W, bh, bv = np.zeros((3, 2)), np.zeros(3), np.zeros(2)
    dW, dbh, dbv = np.zeros_like(W), np.zeros_like(bh), np.zeros_like(bv)
    err = ops.cd_epoch(
        X,
        W,
        bh,
        bv,
        dW,
        dbh,
        dbv,
        k=1,
        learning_rate=0.1,
        momentum=0.0,
        weight_decay=0.0,
        batch_size=2,
        visible="bernoulli",
        rng=ops.make_rng(0),
    )
    np.testing.assert_allclose(W, np.tile(0.1 * 0.5 * (X.mean(0) - 0.5), (3, 1)))
    np.testing.assert_allclose(bv, 0.1 * (X.mean(0) - 0.5))
    np.testing.assert_allclose(bh, 0.0)
    assert err == pytest.approx(((X - 0.5) ** 2).sum() / 2)


def test_free_energy_matches_enumeration():
    rng = np.random.default_rng(1)
    W, bh, bv = (
        rng.standard_normal((3, 2)),
        rng.standard_normal(3),
        rng.standard_normal(2),
    )
    v = np.array([[1.0, 0.0]])
    hs = np.array(
        [[a, b, c] for a in (0, 1) for b in (0, 1) for c in (0, 1)], dtype=float
    )
    energies = -(hs @ W @ v[0]) - hs @ bh - v[0] @ bv
    expected = -np.log(np.exp(-energies).sum())
    assert ops.rbm_free_energy(v, W, bh, bv, "bernoulli")[0] == pytest.approx(expected)


def test_bernoulli_and_rng_are_reproducible():
    p = np.full((1000,), 0.3, dtype=np.float32)
    a = ops.bernoulli(p, ops.make_rng(5))
    b = ops.bernoulli(p, ops.make_rng(5))
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32 and set(np.unique(a)) <= {0.0, 1.0}
    assert 0.25 < a.mean() < 0.35


def test_device_other_than_cpu_refused():
    with pytest.raises(ValueError, match="CPU only"):
        Ops("cuda")
