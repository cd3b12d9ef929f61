"""Every layer name the built-in plugin registers passes check_layer through its spec string.

tests/layers/test_builtin_layer_conformance.py checks the built-in layer
classes with many configurations; this file checks the registry route users
take (a spec string, resolved by name, rebuilt by name from the safe model
format) and fails when a built-in layer is registered without an entry here.
"""

import numpy as np
import pytest

from neuroplug.plugins import PluginManager
from neuroplug.testing import check_layer


def _away_from_zero(rng, shape):
    # ReLU's kink at 0 would spoil finite differences.
    x = rng.standard_normal(shape)
    return np.where(np.abs(x) < 0.05, 0.5, x)


def _distinct(rng, shape):
    # Max pooling is not differentiable at ties: well-separated values.
    return (
        rng.permutation(int(np.prod(shape))).reshape(shape) * 0.1
        + rng.random(shape) * 0.01
    )


#: registered name -> (spec string, input shape, make_input)
SPECS = {
    "conv": ("conv:4x3x2,stride=2,padding=1", (2, 6, 5), None),
    "maxpool": ("maxpool:2", (2, 5, 4), _distinct),
    "meanpool": ("meanpool:2,stride=1", (2, 4, 5), None),
    "dense": ("dense:3", (2, 3, 2), None),
    "flatten": ("flatten", (2, 3, 2), None),
    "sigmoid": ("sigmoid", (5,), None),
    "tanh": ("tanh", (2, 3, 2), None),
    "relu": ("relu", (2, 3, 2), _away_from_zero),
    "softmax": ("softmax", (6,), None),
    "dropout": ("dropout:0.4", (2, 3, 2), None),
}


def test_every_builtin_layer_has_a_case():
    builtin = PluginManager(autoload=False, disabled=()).layers.by_plugin("layers")
    assert builtin, "the built-in plugin registered no layers"
    assert sorted(set(builtin) - set(SPECS)) == [], (
        "add a spec for each new built-in layer to SPECS"
    )


@pytest.mark.parametrize("name", sorted(SPECS))
def test_builtin_layer_by_spec(name):
    spec, shape, make_input = SPECS[name]
    check_layer(spec, shape, make_input=make_input)
