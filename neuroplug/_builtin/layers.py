"""Built-in plugin: the layer types that ship with neuroplug."""

from ..plugins import hookimpl


@hookimpl
def neuroplug_register_layers(register):
    """Register the built-in layers under the names used in layer specs.

    ``conv``, ``maxpool``, ``meanpool``, ``dense``, ``flatten``, ``sigmoid``,
    ``tanh``, ``relu``, ``softmax``, ``dropout`` (see
    :mod:`neuroplug.layers.spec` for the spec mini-language).
    """
    from ..layers.activations import ReLU, Sigmoid, Softmax, Tanh
    from ..layers.conv import Conv2D
    from ..layers.dense import Dense
    from ..layers.dropout import Dropout
    from ..layers.flatten import Flatten
    from ..layers.pool import MaxPool2D, MeanPool2D

    register("conv", Conv2D)
    register("maxpool", MaxPool2D)
    register("meanpool", MeanPool2D)
    register("dense", Dense)
    register("flatten", Flatten)
    register("sigmoid", Sigmoid)
    register("tanh", Tanh)
    register("relu", ReLU)
    register("softmax", Softmax)
    register("dropout", Dropout)
