"""Optimisers and learning-rate schedules against their closed-form updates."""

import numpy as np
import pytest
from sklearn.base import clone

from neuroplug.layers import Dense
from neuroplug.network import Network
from neuroplug.ops import Ops
from neuroplug.optimizers import (
    SGD,
    Adam,
    ConstantLR,
    ExponentialLR,
    InverseTimeLR,
    StepLR,
    get_optimizer,
    get_schedule,
)


def _layer(seed=0):
    net = Network([Dense(3)], (4,), Ops(), rng=seed, dtype=np.float64)
    return net.layers[0]


def _grads(step):
    rng = np.random.default_rng(step)
    return {"W": rng.standard_normal((4, 3)), "b": rng.standard_normal(3)}


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum(nesterov):
    layer = _layer()
    W, b = layer.params["W"].copy(), layer.params["b"].copy()
    vW, vb = np.zeros_like(W), np.zeros_like(b)
    opt = SGD(momentum=0.8, nesterov=nesterov)
    lr, alpha = 0.1, 0.01
    for step in range(4):
        g = _grads(step)
        layer.grads = {k: v.copy() for k, v in g.items()}
        opt.step([layer], lr, alpha)
        gW = g["W"] + alpha * W  # decay on weights only
        vW = 0.8 * vW - lr * gW
        vb = 0.8 * vb - lr * g["b"]
        W = W + (0.8 * vW - lr * gW if nesterov else vW)
        b = b + (0.8 * vb - lr * g["b"] if nesterov else vb)
    np.testing.assert_allclose(layer.params["W"], W, rtol=1e-12)
    np.testing.assert_allclose(layer.params["b"], b, rtol=1e-12)


def test_adam():
    layer = _layer()
    W = layer.params["W"].copy()
    m, v = np.zeros_like(W), np.zeros_like(W)
    opt = Adam(beta1=0.8, beta2=0.9, epsilon=1e-6)
    for t in range(1, 5):
        g = _grads(t)
        layer.grads = {k: val.copy() for k, val in g.items()}
        opt.step([layer], 0.05)
        m = 0.8 * m + 0.2 * g["W"]
        v = 0.9 * v + 0.1 * g["W"] ** 2
        W = W - 0.05 * (m / (1 - 0.8**t)) / (
            np.sqrt(v / (1 - 0.9**t)) + 1e-6 * np.sqrt(1 / (1 - 0.9**t))
        )
    np.testing.assert_allclose(layer.params["W"], W, rtol=1e-10)
    assert opt.t_ == 4


def test_reset_and_missing_gradients():
    layer = _layer()
    opt = Adam()
    layer.grads = {"W": np.ones((4, 3)), "b": None}
    b = layer.params["b"].copy()
    opt.step([layer], 0.1)
    np.testing.assert_array_equal(layer.params["b"], b)  # no gradient, no update
    opt.reset()
    assert opt.t_ == 0 and opt.state_ == {}


@pytest.mark.parametrize(
    "name, cls, kwargs",
    [
        ("adam", Adam, {}),
        ("sgd", SGD, {"nesterov": False}),
        ("nesterov", SGD, {"nesterov": True}),
        ("ADAM", Adam, {}),
    ],
)
def test_get_optimizer(name, cls, kwargs):
    opt = get_optimizer(name)
    assert type(opt) is cls
    for k, val in kwargs.items():
        assert getattr(opt, k) == val


def test_get_optimizer_clones_objects_and_refuses_unknown():
    original = SGD(momentum=0.5)
    opt = get_optimizer(original)
    assert opt is not original and opt.momentum == 0.5
    with pytest.raises(
        ValueError, match="optimizer must be one of adam, nesterov, sgd"
    ):
        get_optimizer("rmsprop")
    assert clone(Adam(beta1=0.5)).beta1 == 0.5


@pytest.mark.parametrize(
    "opt, message",
    [
        (SGD(momentum=1.5), "momentum"),
        (Adam(beta2=1.0), "beta2"),
        (Adam(epsilon=0), "epsilon"),
    ],
)
def test_bad_hyperparameters(opt, message):
    layer = _layer()
    layer.grads = _grads(0)
    with pytest.raises(ValueError, match=message):
        opt.step([layer], 0.1)


def test_schedules():
    assert [ConstantLR()(0.1, e) for e in (0, 5)] == [0.1, 0.1]
    assert [StepLR(2, 0.5)(1.0, e) for e in range(5)] == [1.0, 1.0, 0.5, 0.5, 0.25]
    assert ExponentialLR(0.9)(1.0, 2) == pytest.approx(0.81)
    assert InverseTimeLR(0.5)(1.0, 2) == pytest.approx(0.5)


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("constant", ConstantLR()),
        ("step", StepLR()),
        ("step:5,0.5", StepLR(5, 0.5)),
        ("step:3", StepLR(3)),
        ("exp", ExponentialLR()),
        ("exp:0.9", ExponentialLR(0.9)),
        ("invtime:0.2", InverseTimeLR(0.2)),
    ],
)
def test_get_schedule(spec, expected):
    sched = get_schedule(spec)
    assert type(sched) is type(expected) and sched.get_params() == expected.get_params()


@pytest.mark.parametrize(
    "spec",
    [
        "cosine",
        "step:0,0.5",
        "step:2.5",
        "exp:1.5",
        "step:a",
        "exp:0.5,2",
        3,
        "constant:2",
    ],
)
def test_bad_schedule(spec):
    with pytest.raises(ValueError, match="lr_schedule"):
        get_schedule(spec)
