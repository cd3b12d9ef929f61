"""The plugin's layers: the conformance checks, and values against independent formulas."""

import numpy as np
import pytest
from neuroplug_lrn import ELU, GaussianNoise, LocalResponseNorm

from neuroplug.ops import Ops
from neuroplug.testing import check_layer, parametrize_layer_checks


# -- the whole Layer contract, on every installed backend, in three lines ------
@parametrize_layer_checks(
    (
        LocalResponseNorm(3, alpha=0.8, beta=0.75, k=1.0),
        (6, 4, 3),
    ),  # a strong normalisation
    (
        LocalResponseNorm(4, alpha=2.0, beta=0.5, k=0.5),
        (5,),
    ),  # even window, vector input
    (ELU(alpha=0.7), (3, 5, 4)),
    (GaussianNoise(0.3), (7,)),
)
def test_layer_contract(layer_check):
    layer_check()


def test_spec_strings_pass_the_checks_too():
    check_layer("lrn:5,alpha=1e-4,beta=0.75,k=2", (7, 3, 3))


# -- values ------------------------------------------------------------------
def _init(layer, shape, dtype=np.float64):
    layer.initialize(shape, Ops(), np.random.default_rng(0), dtype)
    return layer


def lrn_by_definition(x, size, alpha, beta, k):
    """The AlexNet/Caffe formula written as a loop over channels."""
    out = np.empty_like(x)
    c = x.shape[1]
    for i in range(c):
        lo, hi = max(0, i - size // 2), min(c, i + (size - 1) // 2 + 1)
        out[:, i] = (
            x[:, i] / (k + alpha / size * (x[:, lo:hi] ** 2).sum(axis=1)) ** beta
        )
    return out


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8])
def test_lrn_matches_the_definition(size):
    x = np.random.default_rng(1).standard_normal((2, 6, 3, 2)) * 2
    layer = _init(LocalResponseNorm(size, alpha=0.3, beta=0.75, k=1.5), (6, 3, 2))
    np.testing.assert_allclose(
        layer.forward(x), lrn_by_definition(x, size, 0.3, 0.75, 1.5), rtol=1e-12
    )


def test_lrn_with_alpha_zero_only_divides_by_k_to_the_beta():
    x = np.random.default_rng(2).standard_normal((3, 4))
    layer = _init(LocalResponseNorm(3, alpha=0.0, beta=0.5, k=4.0), (4,))
    np.testing.assert_allclose(layer.forward(x), x / 2.0)


def test_elu_matches_expm1_including_extremes():
    x = np.array([[-800.0, -30.0, -1.0, -1e-9, 0.0, 1e-9, 2.0, 700.0]])
    layer = _init(ELU(alpha=0.5), (8,))
    y = layer.forward(x, training=True)
    expected = np.where(x > 0, x, 0.5 * np.expm1(np.minimum(x, 0)))
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-300)
    # The derivative: 1 for x > 0, alpha * exp(x) = y + alpha otherwise (exact
    # up to the rounding of y, hence the absolute tolerance far out on the left).
    np.testing.assert_allclose(
        layer.backward(np.ones_like(x)),
        np.where(x > 0, 1.0, 0.5 * np.exp(x)),
        rtol=1e-12,
        atol=1e-16,
    )


def test_gaussian_noise_statistics_and_inference_identity():
    x = np.zeros((400, 50), dtype=np.float32)
    ops = Ops()
    layer = GaussianNoise(0.2)
    layer.initialize((50,), ops, np.random.default_rng(0), np.float32)
    assert layer.forward(x) is x  # the identity at inference
    layer.bind_rng(ops.make_rng(3))
    noise = layer.forward(x, training=True)
    assert noise.dtype == np.float32
    assert abs(noise.mean()) < 0.01 and abs(noise.std() - 0.2) < 0.005
    np.testing.assert_array_equal(layer.backward(np.ones_like(x)), np.ones_like(x))


def test_gaussian_noise_needs_a_generator_to_train():
    layer = _init(GaussianNoise(0.1), (3,))
    with pytest.raises(RuntimeError, match="bind_rng"):
        layer.forward(np.zeros((2, 3)), training=True)


# -- spec strings and hyper-parameter errors -----------------------------------
@pytest.mark.parametrize(
    "cls, args, expected",
    [
        (LocalResponseNorm, None, {"size": 5, "alpha": 1e-4, "beta": 0.75, "k": 2.0}),
        (LocalResponseNorm, "3", {"size": 3, "alpha": 1e-4, "beta": 0.75, "k": 2.0}),
        (
            LocalResponseNorm,
            "7,alpha=0.001,beta=0.5,k=1",
            {"size": 7, "alpha": 0.001, "beta": 0.5, "k": 1.0},
        ),
        (
            LocalResponseNorm,
            "size=4",
            {"size": 4, "alpha": 1e-4, "beta": 0.75, "k": 2.0},
        ),
        (ELU, "0.5", {"alpha": 0.5}),
        (GaussianNoise, "stddev=0.05", {"stddev": 0.05}),
    ],
)
def test_from_spec(cls, args, expected):
    assert cls.from_spec(args).get_params() == expected


@pytest.mark.parametrize(
    "cls, args, message",
    [
        (LocalResponseNorm, "x", "size must be an integer"),
        (LocalResponseNorm, "0", "size must be >= 1"),
        (LocalResponseNorm, "3,gamma=1", "unknown option 'gamma'"),
        (LocalResponseNorm, "3,size=4", "size given both"),
        (LocalResponseNorm, "3,4", "unexpected positional item '4'"),
        (ELU, "fast", "alpha must be a number"),
    ],
)
def test_from_spec_errors(cls, args, message):
    with pytest.raises(ValueError, match=message):
        cls.from_spec(args)


@pytest.mark.parametrize(
    "layer, shape, message",
    [
        (
            LocalResponseNorm(size=0),
            (3, 4, 4),
            r"size must be an int >= 1. Received: size=0",
        ),
        (LocalResponseNorm(size=2.5), (3, 4, 4), r"Received: size=2.5"),
        (
            LocalResponseNorm(k=0),
            (3, 4, 4),
            r"k must be a real number > 0.0. Received: k=0",
        ),
        (LocalResponseNorm(alpha=-1), (3, 4, 4), r"Received: alpha=-1"),
        (
            LocalResponseNorm(),
            (3, 4),
            r"\(channels, height, width\) or \(features,\).*Received: input_shape=\(3, 4\)",
        ),
        (ELU(alpha=0), (3,), r"alpha must be a real number > 0.0. Received: alpha=0"),
        (GaussianNoise(stddev="big"), (3,), r"Received: stddev='big'"),
    ],
)
def test_bad_hyperparameters_are_refused_at_initialize(layer, shape, message):
    with pytest.raises(ValueError, match=message):
        layer.initialize(shape, Ops(), np.random.default_rng(0))


def test_backward_needs_a_training_forward():
    layer = _init(LocalResponseNorm(), (3, 2, 2))
    layer.forward(np.ones((1, 3, 2, 2)))  # inference caches nothing
    with pytest.raises(RuntimeError, match="forward\\(X, training=True\\)"):
        layer.backward(np.ones((1, 3, 2, 2)))
