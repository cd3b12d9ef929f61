"""Every built-in layer passes the Layer conformance checks (neuroplug.testing).

The checks compare gradients with finite differences in float64 and every
installed backend with the NumPy reference.
"""

import numpy as np

from neuroplug.layers import (
    LENET5_C3_CONNECTIONS,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    MaxPool2D,
    MeanPool2D,
    ReLU,
    Sigmoid,
    Softmax,
    Tanh,
)
from neuroplug.testing import parametrize_layer_checks


def _away_from_zero(rng, shape):
    # ReLU has a kink at 0: keep finite differences clear of it.
    x = rng.standard_normal(shape)
    return np.where(np.abs(x) < 0.05, 0.5, x)


def _distinct(rng, shape):
    # Max pooling is not differentiable at ties: use well-separated values.
    return (
        rng.permutation(np.prod(shape)).reshape(shape) * 0.1 + rng.random(shape) * 0.01
    )


@parametrize_layer_checks(
    (Conv2D(4, 3), (3, 6, 5)),
    (Conv2D(4, (2, 3), stride=2, padding=1), (3, 7, 6)),
    (Conv2D(4, 3, padding="same", groups=2), (2, 5, 5)),
    (Conv2D(16, 3, connections=LENET5_C3_CONNECTIONS), (6, 5, 5)),
    (MeanPool2D(2), (3, 5, 4)),
    (MeanPool2D(3, stride=2), (2, 7, 6)),
    (Dense(5), (7,)),
    (Dense(4), (2, 3, 3)),
    (Flatten(), (3, 5, 4)),
    (Sigmoid(), (3, 5, 4)),
    (Tanh(), (6,)),
    (Softmax(), (7,)),
    (Dropout(0.3), (3, 5, 4)),
)
def test_builtin_layer(layer_check):
    layer_check()


@parametrize_layer_checks((ReLU(), (3, 5, 4)), make_input=_away_from_zero)
def test_relu(layer_check):
    layer_check()


@parametrize_layer_checks(
    (MaxPool2D(2), (3, 5, 4)), (MaxPool2D(3, stride=2), (2, 7, 6)), make_input=_distinct
)
def test_maxpool(layer_check):
    layer_check()
