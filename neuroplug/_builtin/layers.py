"""Built-in plugin: the layer types that ship with neuroplug."""

from ..plugins import hookimpl


@hookimpl
def neuroplug_register_layers(register):
    """Register the built-in layers."""
