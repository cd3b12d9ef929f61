"""Layers: the :class:`Layer` contract and the built-in layer types."""

from .activations import Activation, ReLU, Sigmoid, Softmax, Tanh
from .base import Layer
from .conv import LENET5_C3_CONNECTIONS, Conv2D
from .dense import Dense, WeightedLayer
from .dropout import Dropout
from .flatten import Flatten
from .pool import MaxPool2D, MeanPool2D, Pool2D
from .spec import build_layer, build_layers

__all__ = [
    "Layer",
    "WeightedLayer",
    "Activation",
    "Conv2D",
    "LENET5_C3_CONNECTIONS",
    "Dense",
    "Dropout",
    "Flatten",
    "MaxPool2D",
    "MeanPool2D",
    "Pool2D",
    "ReLU",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "build_layer",
    "build_layers",
]
