"""The plugin module named by the ``neuroplug`` entry point in ``pyproject.toml``.

neuroplug imports this module when it first looks up a layer, pretrainer,
backend or callback, and calls the hooks it finds here.  Keep it cheap to import: heavy
imports belong inside the hook or the layer classes.
"""

from __future__ import annotations

from neuroplug import hookimpl
from neuroplug.registry import Register

from .callbacks import StopAtLoss
from .layers import ELU, GaussianNoise, LocalResponseNorm

#: The names this plugin registers, in one place (the README and tests use it).
LAYERS = {
    "lrn": LocalResponseNorm,
    "elu": ELU,
    "gaussian_noise": GaussianNoise,
}


@hookimpl
def neuroplug_register_layers(register: Register) -> None:
    """Register ``"lrn"``, ``"elu"`` and ``"gaussian_noise"``."""
    for name, cls in LAYERS.items():
        register(name, cls)


@hookimpl
def neuroplug_register_callbacks(register: Register) -> None:
    """Register ``"stop_at_loss"``: a third-party callback, as an example of the hook."""
    register("stop_at_loss", StopAtLoss)
