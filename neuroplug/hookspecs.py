"""Every hook a neuroplug plugin can implement.

One module, one prefix: all hooks are named ``neuroplug_*`` and declared with
``HookspecMarker("neuroplug")``.  A plugin implements them with
:data:`neuroplug.hookimpl`.  The registering hooks receive a typed
:class:`neuroplug.registry.Register` object bound to the calling plugin, so the
registry can name the plugin in every error it raises.

The set is kept small on purpose: add a hook only when a plugin needs one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:  # pragma: no cover
    from .registry import Register

hookspec = pluggy.HookspecMarker("neuroplug")


@hookspec
def neuroplug_register_layers(register: Register) -> None:
    """Register layer types.

    Runs once per process, the first time a layer, pretrainer or backend is
    looked up (loading is lazy), for every plugin in registration order:
    built-in plugins first, then entry-point plugins.

    :param register: call ``register(name, layer_class)`` for each layer type.
        ``layer_class`` must subclass :class:`neuroplug.layers.Layer`.  The
        name is what users write in a layer spec (``"lrn:5"`` uses ``"lrn"``).

    Results: none are combined; every implementation runs.  Registering a name
    that another plugin already registered raises
    :class:`neuroplug.registry.DuplicateNameError` naming both plugins, and
    that plugin's registrations are skipped while all others stay usable.
    """


@hookspec
def neuroplug_register_pretrainers(register: Register) -> None:
    """Register pretrainers (for example ``"dbn"``, ``"sbn"``, ``"cdbn"``).

    Runs once per process, lazily, for every plugin in registration order.

    :param register: call ``register(name, pretrainer_class)``.  The class
        must subclass :class:`neuroplug.pretrain.Pretrainer` and implement
        ``pretrain(network, X, *, random_state=None, verbose=0)``.

    Results: none are combined; every implementation runs.  Duplicate names
    are rejected as for layers.
    """


@hookspec
def neuroplug_register_backends(register: Register) -> None:
    """Register compute backends (``Ops`` subclasses).

    Runs once per process, lazily, for every plugin in registration order.

    :param register: call ``register(name, ops_class)``.  ``ops_class`` must
        subclass :class:`neuroplug.ops.Ops`.  Users select it with
        ``backend="name"`` or ``backend="name:device"`` (the part after the
        colon is passed to the class as ``device``).

    Results: none are combined; every implementation runs.  Duplicate names
    are rejected as for layers.
    """


@hookspec
def neuroplug_register_callbacks(register: Register) -> None:
    """Register training callbacks (for example ``"checkpoint"``, ``"csv_logger"``).

    Runs once per process, lazily, for every plugin in registration order.

    :param register: call ``register(name, callback_class)``.  The class must
        subclass :class:`neuroplug.callbacks.Callback`; users name it in an
        estimator's ``callbacks=("name", ...)`` and it is built with its
        default parameters (pass an object to set them).

    Results: none are combined; every implementation runs.  Duplicate names
    are rejected as for layers.
    """
