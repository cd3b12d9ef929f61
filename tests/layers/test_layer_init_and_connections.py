"""Activation-aware weight initialisation and the Conv2D connection table."""

import numpy as np
import pytest

from neuroplug.backends import get_ops
from neuroplug.layers import (
    LENET5_C3_CONNECTIONS,
    Conv2D,
    Dense,
    MaxPool2D,
    ReLU,
    Sigmoid,
    Tanh,
)
from neuroplug.layers.activations import resolve_init
from neuroplug.network import Network
from neuroplug.ops import Ops


def _net(layers, shape, seed=0):
    return Network(layers, shape, Ops(), rng=seed, dtype=np.float64)


def test_auto_init_follows_the_next_activation():
    n_in, n_out = 400, 300
    net = _net(
        [
            Dense(n_out),
            ReLU(),
            Dense(n_out),
            Tanh(),
            Dense(n_out),
            Sigmoid(),
            Dense(n_out),
        ],
        (n_in,),
    )
    he, tanh_layer, sig_layer, out_layer = (
        net.layers[i].params["W"] for i in (0, 2, 4, 6)
    )
    # He normal: std sqrt(2 / fan_in).
    assert np.std(he) == pytest.approx(np.sqrt(2.0 / n_in), rel=0.03)
    # Glorot uniform: bound sqrt(6 / (fan_in + fan_out)); sigmoid 4x; linear output Glorot.
    bound = np.sqrt(6.0 / (n_out + n_out))
    assert np.abs(tanh_layer).max() <= bound and np.abs(tanh_layer).max() > 0.95 * bound
    assert (
        np.abs(sig_layer).max() <= 4 * bound
        and np.abs(sig_layer).max() > 0.95 * 4 * bound
    )
    assert np.abs(out_layer).max() <= bound and np.abs(out_layer).max() > 0.95 * bound
    for i in (0, 2, 4, 6):
        assert not net.layers[i].params["b"].any()


def test_hint_passes_through_pooling_but_not_past_a_weighted_layer():
    net = _net(
        [Conv2D(64, 3), MaxPool2D(2), ReLU(), Conv2D(8, 3), Dense(5), Tanh()],
        (4, 12, 12),
    )
    assert net.layers[0]._activation_hint == "relu"
    assert (
        net.layers[3]._activation_hint is None
    )  # followed by a Dense, not an activation
    assert net.layers[4]._activation_hint == "tanh"
    fan_in = 4 * 9
    assert np.std(net.layers[0].params["W"]) == pytest.approx(
        np.sqrt(2.0 / fan_in), rel=0.05
    )


def test_explicit_init_wins():
    net = _net([Dense(500, init="lecun"), ReLU()], (300,))
    assert np.std(net.layers[0].params["W"]) == pytest.approx(
        np.sqrt(1.0 / 300), rel=0.03
    )


def test_bad_init():
    with pytest.raises(ValueError, match="init must be one of"):
        resolve_init("xavier", "relu")
    with pytest.raises(ValueError, match="init must be one of"):
        _net([Dense(3, init="xavier")], (4,))


def test_connection_table_weights_and_gradients():
    conn = LENET5_C3_CONNECTIONS
    net = _net([Conv2D(16, 5, connections=conn)], (6, 9, 9))
    layer = net.layers[0]
    W = layer.params["W"]
    assert not W[~conn].any()
    assert np.abs(W[conn]).min() > 0
    rng = np.random.default_rng(1)
    X = rng.standard_normal((2, 6, 9, 9))
    Y = net.forward(X, training=True)
    # Same as a dense convolution whose absent connections are zero.
    dense = _net([Conv2D(16, 5)], (6, 9, 9))
    dense.layers[0].set_weights({"W": W, "b": layer.params["b"]})
    np.testing.assert_allclose(Y, dense.forward(X), rtol=1e-12)
    net.backward(rng.standard_normal(Y.shape))
    dW = layer.grads["W"]
    assert not dW[~conn].any() and np.abs(dW[conn]).max() > 0


@pytest.mark.parametrize(
    "conn, message",
    [
        (np.ones((16, 5)), "must have shape"),
        (np.full((16, 6), 2), "only 0/1"),
        (np.vstack([np.zeros((1, 6)), np.ones((15, 6))]), "no input map"),
    ],
)
def test_bad_connection_table(conn, message):
    with pytest.raises(ValueError, match=message):
        _net([Conv2D(16, 5, connections=conn)], (6, 9, 9))


@pytest.mark.parametrize(
    "layer, shape, message",
    [
        (Conv2D(4, 3), (9,), "needs image input"),
        (Conv2D(4, 7), (1, 5, 5), "larger than its padded input"),
        (Conv2D(4, 3, groups=3), (2, 5, 5), "divisible by groups"),
        (Conv2D(4, 4, padding="same"), (1, 5, 5), "odd kernel"),
        (MaxPool2D(6), (1, 5, 5), "larger than its input"),
        (MaxPool2D(2), (25,), "needs image input"),
        (Dense(0), (4,), "units must be >= 1"),
    ],
)
def test_shape_errors_are_clear(layer, shape, message):
    with pytest.raises(ValueError, match=message):
        _net([layer], shape)


def test_first_layer_can_skip_its_input_gradient():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((3, 2, 6, 6))
    for cls in (lambda: Conv2D(3, 3), lambda: Dense(4)):
        net = _net([cls()], (2, 6, 6))
        Y = net.forward(X, training=True)
        dY = rng.standard_normal(Y.shape)
        full = net.backward(dY)
        grads = {k: v.copy() for k, v in net.layers[0].grads.items()}
        net.forward(X, training=True)
        assert net.backward(dY, input_grad=False) is None
        assert full.shape == X.shape
        for k in grads:
            np.testing.assert_array_equal(grads[k], net.layers[0].grads[k])
        assert net.layers[0].compute_input_grad is True  # restored after the pass


def test_layers_run_on_the_default_backend():
    net = Network(
        [Conv2D(4, 3, padding="same"), MaxPool2D(2), ReLU(), Dense(3)],
        (1, 8, 8),
        get_ops("cpu"),
        rng=0,
    )
    ref = Network(
        [Conv2D(4, 3, padding="same"), MaxPool2D(2), ReLU(), Dense(3)],
        (1, 8, 8),
        Ops(),
        rng=0,
    )
    X = np.random.default_rng(0).random((5, 1, 8, 8), dtype=np.float32)
    np.testing.assert_allclose(net.forward(X), ref.forward(X), rtol=1e-5, atol=1e-6)
