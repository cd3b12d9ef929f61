"""The layer-spec mini-language: parsing, defaults and error messages."""

import numpy as np
import pytest

from neuroplug.layers import (
    Conv2D,
    Dense,
    Dropout,
    MaxPool2D,
    MeanPool2D,
    ReLU,
    Softmax,
    build_layer,
    build_layers,
)
from neuroplug.layers.spec import split_spec
from neuroplug.registry import UnknownNameError


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("conv:20x5x5", Conv2D(20, (5, 5))),
        ("conv:20x5", Conv2D(20, (5, 5))),
        (
            "conv:8x3x5,stride=2,padding=same,groups=2",
            Conv2D(8, (3, 5), stride=2, padding="same", groups=2),
        ),
        (
            "conv:8x3x3,padding=1x2,stride=1x2,init=he",
            Conv2D(8, (3, 3), padding=(1, 2), stride=(1, 2), init="he"),
        ),
        ("maxpool:2", MaxPool2D(2)),
        ("maxpool:2x3,stride=2", MaxPool2D((2, 3), stride=2)),
        ("meanpool:3,stride=1x2", MeanPool2D(3, stride=(1, 2))),
        ("dense:500", Dense(500)),
        (" Dense : 10 , init=lecun ", Dense(10, init="lecun")),
        ("dropout:0.5", Dropout(0.5)),
        ("dropout", Dropout()),
        ("relu", ReLU()),
        ("softmax", Softmax()),
    ],
)
def test_spec_builds_the_layer(spec, expected):
    layer = build_layer(spec)
    assert type(layer) is type(expected)
    assert layer.get_params() == expected.get_params()


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ("conv", "missing"),
        ("conv:20", "filters x kernel"),
        ("conv:20x5x5x5", "filters x kernel"),
        ("conv:ax5x5", "integer"),
        ("conv:0x5x5", ">= 1"),
        ("conv:20x5x5,foo=1", "unknown option 'foo'"),
        ("conv:20x5x5,padding=wide", "padding"),
        ("conv:20x5x5,stride=1,stride=2", "given twice"),
        ("conv:20x5x5,3", "unexpected positional"),
        ("dense:", "nothing after ':'"),
        ("dense:-3", ">= 1"),
        ("dense:ten", "integer"),
        ("dropout:1.5", "0 <= rate < 1"),
        ("dropout:x", "number"),
        ("maxpool:0", ">= 1"),
        ("relu:3", "takes no arguments"),
        ("Bad Name", "lower-case layer name"),
    ],
)
def test_bad_spec_names_spec_and_format(spec, fragment):
    with pytest.raises(ValueError) as info:
        build_layer(spec)
    message = str(info.value)
    assert fragment in message
    assert repr(spec) in message or repr(spec.strip()) in message


def test_bad_conv_spec_shows_the_expected_format():
    with pytest.raises(ValueError, match=r"Expected format: 'conv:FxKHxKW'"):
        build_layer("conv:20")


def test_unknown_layer_lists_known_names():
    with pytest.raises(UnknownNameError) as info:
        build_layer("convolution:20x5x5")
    for name in (
        "conv",
        "maxpool",
        "meanpool",
        "dense",
        "flatten",
        "relu",
        "softmax",
        "dropout",
    ):
        assert name in str(info.value)


def test_layer_objects_are_cloned():
    conn = np.ones((4, 3), dtype=bool)
    original = Conv2D(4, 3, connections=conn)
    built = build_layer(original)
    assert built is not original
    assert built.get_params()["filters"] == 4
    assert np.array_equal(built.connections, conn)


@pytest.mark.parametrize("layers", ["conv:20x5x5", ReLU(), 3, None])
def test_build_layers_needs_a_sequence(layers):
    with pytest.raises(TypeError, match="layers must be a tuple"):
        build_layers(layers)


def test_entry_of_wrong_type():
    with pytest.raises(TypeError, match="spec string"):
        build_layers(["relu", 5])


def test_split_spec():
    assert split_spec("conv:20x5x5,stride=2") == ("conv", "20x5x5,stride=2")
    assert split_spec("relu") == ("relu", None)
    with pytest.raises(TypeError):
        split_spec(3)
