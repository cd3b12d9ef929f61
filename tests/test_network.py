"""Network: shapes, weights, full-network gradients, training steps, divergence."""

import numpy as np
import pytest

from neuroplug.layers import (
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    MaxPool2D,
    MeanPool2D,
    ReLU,
    Sigmoid,
    Tanh,
)
from neuroplug.network import (
    Network,
    SoftmaxCrossEntropy,
    SquaredError,
    TrainingDivergedError,
)
from neuroplug.ops import Ops
from neuroplug.optimizers import SGD, Adam
from neuroplug.testing import finite_difference_gradient


def _lenet_like():
    return [
        Conv2D(3, 3, padding=1),
        MaxPool2D(2),
        ReLU(),
        Conv2D(4, 2),
        MeanPool2D(2),
        Tanh(),
        Flatten(),
        Dense(5),
        Sigmoid(),
        Dense(3),
    ]


def test_shapes_and_forward_stop():
    net = Network(_lenet_like(), (2, 8, 8), Ops(), rng=0)
    assert net.shapes[0] == (2, 8, 8)
    assert (
        net.shapes[1] == (3, 8, 8)
        and net.shapes[2] == (3, 4, 4)
        and net.shapes[4] == (4, 3, 3)
    )
    assert net.output_shape == (3,)
    X = np.random.default_rng(0).random((4, 2, 8, 8), dtype=np.float32)
    assert net.forward(X).shape == (4, 3)
    assert net.forward(X, stop=2).shape == (4, 3, 4, 4)
    assert net.forward(X).dtype == np.float32
    assert net.n_params() == sum(
        p.size for layer in net.layers for p in layer.params.values()
    )


def test_weights_round_trip_and_errors():
    a = Network(_lenet_like(), (2, 8, 8), Ops(), rng=0)
    b = Network(_lenet_like(), (2, 8, 8), Ops(), rng=1)
    X = np.random.default_rng(0).random((3, 2, 8, 8), dtype=np.float32)
    assert not np.allclose(a.forward(X), b.forward(X))
    b.set_weights(a.get_weights())
    np.testing.assert_array_equal(a.forward(X), b.forward(X))
    weights = a.get_weights()
    weights[0]["W"][...] = 0  # get_weights returns copies
    assert a.layers[0].params["W"].any()
    with pytest.raises(ValueError, match="one dict per layer"):
        b.set_weights(weights[:-1])
    with pytest.raises(ValueError, match="parameters"):
        b.set_weights([{} if w else {"W": np.zeros(1)} for w in weights])


def test_same_seed_same_weights():
    a = Network(_lenet_like(), (2, 8, 8), Ops(), rng=3).get_weights()
    b = Network(_lenet_like(), (2, 8, 8), Ops(), rng=3).get_weights()
    for wa, wb in zip(a, b):
        for k in wa:
            np.testing.assert_array_equal(wa[k], wb[k])


def test_input_errors():
    ops = Ops()
    net = Network([Dense(2)], (4,), ops, rng=0)
    # The caller's Ops is left alone (issue 20); the layers' calls skip the check ...
    assert ops.check_finite is True and net.ops.check_finite is False
    with pytest.raises(ValueError, match=r"X must have shape \(n, 4\)"):
        net.forward(np.zeros((2, 5), np.float32))
    with pytest.raises(
        ValueError, match="NaN or infinity"
    ):  # ... the network checks its input once
        net.forward(np.array([[0, 1, np.nan, 2]], np.float32))
    with pytest.raises(TypeError, match="layers\\[1\\] must be a neuroplug Layer"):
        Network([Dense(2), "relu"], (4,), Ops())
    relu = ReLU()
    with pytest.raises(ValueError, match="appears twice"):
        Network([relu, relu], (4,), Ops())
    with pytest.raises(ValueError, match="input_shape"):
        Network([Dense(2)], (0,), Ops())
    with pytest.raises(ValueError, match="layer 1"):
        Network([Dense(2), Conv2D(2, 3)], (4,), Ops())


@pytest.mark.parametrize("loss", [SoftmaxCrossEntropy(), SquaredError()])
def test_full_network_gradients_match_finite_differences(loss):
    rng = np.random.default_rng(0)
    net = Network(_lenet_like(), (2, 8, 8), Ops(), rng=0, dtype=np.float64)
    X = rng.standard_normal((3, 2, 8, 8))
    target = (
        np.array([0, 2, 1])
        if isinstance(loss, SoftmaxCrossEntropy)
        else rng.standard_normal((3, 3))
    )

    def value(x=X):
        return loss(net.ops, net.forward(x, training=True), target)[0]

    out = net.forward(X, training=True)
    _, grad = loss(net.ops, out, target)
    dX = net.backward(grad)
    grads = [{k: g.copy() for k, g in layer.grads.items()} for layer in net.layers]
    idx = [
        tuple(int(j) for j in np.unravel_index(i, X.shape))
        for i in rng.choice(X.size, 12, replace=False)
    ]
    np.testing.assert_allclose(
        dX[tuple(np.array(idx).T)],
        finite_difference_gradient(value, X.copy(), idx),
        rtol=1e-5,
        atol=1e-8,
    )
    for layer, g in zip(net.layers, grads):
        for key, param in layer.params.items():
            pidx = [
                tuple(int(j) for j in np.unravel_index(i, param.shape))
                for i in rng.choice(param.size, min(6, param.size), replace=False)
            ]
            fd = finite_difference_gradient(lambda _p: value(), param, pidx)
            np.testing.assert_allclose(
                g[key][tuple(np.array(pidx).T)], fd, rtol=1e-5, atol=1e-8
            )


def test_training_reduces_the_loss_and_is_reproducible():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 1, 6, 6)).astype(np.float32)
    y = (X[:, 0, :3].sum(axis=(1, 2)) > 0).astype(np.int64)

    def run():
        net = Network(
            [Conv2D(4, 3), ReLU(), Dropout(0.2), Dense(2)], (1, 6, 6), Ops(), rng=5
        )
        opt = Adam()
        losses = [
            net.train_batch(X, y, SoftmaxCrossEntropy(), opt, 0.01) for _ in range(40)
        ]
        return losses, net.forward(X)

    losses, out = run()
    assert losses[-1] < 0.5 * losses[0]
    losses2, out2 = run()
    assert losses == losses2
    np.testing.assert_array_equal(out, out2)


def test_divergence_is_reported_with_advice():
    net = Network([Dense(3)], (2,), Ops(), rng=0, dtype=np.float64)
    X = np.array([[1e200, 1e200]])
    before = net.get_weights()
    with (
        pytest.raises(TrainingDivergedError, match="lower learning_rate"),
        np.errstate(all="ignore"),
    ):
        net.train_batch(X, np.array([[1.0, 1.0, 1.0]]), SquaredError(), SGD(), 0.1)
    np.testing.assert_array_equal(
        before[0]["W"], net.layers[0].params["W"]
    )  # no update was applied


def test_penalty_counts_weights_not_biases():
    net = Network([Dense(2)], (3,), Ops(), rng=0, dtype=np.float64)
    net.set_weights([{"W": np.ones((3, 2)), "b": np.full(2, 10.0)}])
    assert net.penalty() == pytest.approx(3.0)
