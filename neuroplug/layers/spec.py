"""The layer-spec mini-language: short strings that name and configure a layer.

Estimators take their layer stack as a tuple of spec strings (or layer
objects), so the whole network is a plain, clone-safe hyper-parameter that a
grid search can vary::

    ("conv:20x5x5", "maxpool:2", "relu", "conv:50x5x5", "maxpool:2", "relu",
     "dense:500", "relu")

Grammar
-------
``spec := name [":" args]`` and ``args := [positional] ("," key "=" value)*``.
Spaces around tokens are ignored.  ``name`` is looked up in the layer
registry (built-in and plugin layers alike); ``args`` is handed to that
class's ``from_spec``.  The built-in layers understand:

===================  ==========================================  ==============================
spec                 meaning                                     options
===================  ==========================================  ==============================
``conv:FxKHxKW``     2-D convolution, F filters of KH x KW       ``stride=S|SxS``,
                     (``conv:FxK`` means a square K x K kernel)  ``padding=valid|same|P|PxP``,
                                                                 ``groups=G``, ``init=...``
``maxpool:S[xS]``    max pooling over S x S windows              ``stride=S|SxS`` (default: size)
``meanpool:S[xS]``   mean (average) pooling                      ``stride=S|SxS``
``dense:N``          fully connected layer with N units; flattens ``init=...``
                     image input by itself
``flatten``          (channels, height, width) -> one vector
``relu``, ``tanh``,  activations
``sigmoid``,
``softmax``
``dropout:R``        inverted dropout with drop rate 0 <= R < 1
===================  ==========================================  ==============================

``init`` is one of ``auto`` (default: chosen from the next activation in the
stack: He for ReLU, Glorot for tanh and linear outputs, 4x Glorot for
sigmoid), ``he``, ``glorot``, ``lecun``.

Examples: ``"conv:20x5x5,stride=1,padding=same,groups=1"``,
``"maxpool:2x2,stride=2"``, ``"dense:500"``, ``"dropout:0.5"``.

A bad spec raises ``ValueError`` naming the spec and the expected format; an
unknown layer name raises the registry's error listing the known names.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from sklearn.base import clone

from .base import Layer

__all__ = [
    "split_spec",
    "parse_args",
    "parse_int",
    "parse_float",
    "parse_pair",
    "parse_shape",
    "parse_bool",
    "spec_converter",
    "build_layer",
    "build_layers",
    "layer_name",
]

_NAME_RE = re.compile(r"^[a-z][a-z0-9_\-]*$")


def split_spec(spec: str) -> tuple[str, str | None]:
    """Split ``"name:args"`` into ``(name, args)``; ``args`` is ``None`` when absent."""
    if not isinstance(spec, str):
        raise TypeError(
            f"A layer spec must be a string or a Layer object. Received: spec={spec!r}"
        )
    name, sep, args = spec.strip().partition(":")
    name = name.strip().lower()
    if not _NAME_RE.match(name):
        raise ValueError(
            f"Invalid layer spec {spec!r}: expected 'name' or 'name:args' with a lower-case layer "
            f"name such as 'conv:20x5x5', 'maxpool:2', 'dense:500' or 'relu'. Received: spec={spec!r}"
        )
    args = args.strip()
    if sep and not args:
        raise ValueError(
            f"Invalid layer spec {spec!r}: nothing after ':'. Received: spec={spec!r}"
        )
    return name, (args or None)


def parse_int(text: str, what: str, *, minimum: int = 1) -> int:
    """Parse a whole number ``>= minimum``; ``what`` names it in the error."""
    try:
        value = int(text.strip())
    except ValueError:
        raise ValueError(
            f"{what} must be an integer. Received: {what}={text!r}"
        ) from None
    if value < minimum:
        raise ValueError(f"{what} must be >= {minimum}. Received: {what}={text!r}")
    return value


def parse_float(text: str, what: str) -> float:
    """Parse a real number; ``what`` names it in the error."""
    try:
        return float(text.strip())
    except ValueError:
        raise ValueError(
            f"{what} must be a number. Received: {what}={text!r}"
        ) from None


def parse_shape(
    text: str, what: str, *, length: Iterable[int] | None = None, minimum: int = 1
) -> tuple[int, ...]:
    """Parse ``"AxBxC"`` into a tuple of ints ``>= minimum`` whose length is one of ``length`` (any by default)."""
    parts = text.strip().lower().split("x")
    allowed = tuple(length) if length is not None else (len(parts),)
    if len(parts) not in allowed:
        expected = " or ".join(str(n) for n in allowed)
        raise ValueError(
            f"{what} must have {expected} 'x'-separated numbers. Received: {what}={text!r}"
        )
    return tuple(parse_int(p, what, minimum=minimum) for p in parts)


_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def parse_bool(text: str, what: str) -> bool:
    """Parse ``true/false`` (also ``yes/no``, ``on/off``, ``1/0``, any case); ``what`` names it in the error."""
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(
        f"{what} must be true or false (or yes/no, on/off, 1/0). Received: {what}={text!r}"
    )


def _parse_any_int(text: str, what: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError(
            f"{what} must be an integer. Received: {what}={text!r}"
        ) from None


#: What each type in a layer's ``spec_options`` parses (see :func:`spec_converter`).
SPEC_TYPES: dict[Any, tuple[str, Callable[[str, str], Any]]] = {
    int: ("INT", _parse_any_int),
    float: ("FLOAT", parse_float),
    bool: ("true|false", parse_bool),
    str: ("TEXT", lambda text, what: text.strip()),
    tuple: ("AxB...", lambda text, what: parse_shape(text, what, minimum=0)),
}


def spec_converter(name: str, kind: Any) -> tuple[str, Callable[[str], Any]]:
    """``(placeholder, converter)`` for option ``name`` declared as ``kind`` in a layer's ``spec_options``.

    ``kind`` is ``int``, ``float``, ``bool`` (``true``/``false``), ``str``,
    ``tuple`` (a shape ``"AxBxC"`` of ints >= 0) or any callable taking the
    option's text and returning its value (raise ``ValueError`` saying what
    was expected).  The placeholder is what the generated usage shows.
    """
    if kind in SPEC_TYPES:
        placeholder, parse = SPEC_TYPES[kind]
        return placeholder, lambda text: parse(text, name)
    if callable(kind):
        return name.upper(), kind
    raise TypeError(
        f"spec_options[{name!r}] must be int, float, bool, str, tuple or a callable converting the option's text. "
        f"Received: {kind!r}"
    )


def parse_pair(text: str, what: str, *, minimum: int = 1) -> int | tuple[int, int]:
    """Parse ``"S"`` (an int) or ``"SxT"`` (a pair)."""
    values = parse_shape(text, what, length=(1, 2), minimum=minimum)
    return values[0] if len(values) == 1 else (values[0], values[1])


def parse_args(
    args: str | None,
    *,
    positional: str | None,
    options: Mapping[str, Callable[[str], Any]],
) -> tuple[str | None, dict[str, Any]]:
    """Split ``args`` into the positional token and converted ``key=value`` options.

    Parameters
    ----------
    args : str or None
        The text after ``name:``.
    positional : str or None
        Name of the positional argument (for error messages), or ``None``
        when the layer takes none.
    options : mapping
        Allowed option names and the converter of each value.

    Returns
    -------
    (positional_text, options) : tuple
        ``positional_text`` is ``None`` when it was not given.
    """
    pos: str | None = None
    opts: dict[str, Any] = {}
    if args is None:
        return pos, opts
    for i, token in enumerate(t.strip() for t in args.split(",")):
        if not token:
            raise ValueError(f"empty item in {args!r}")
        key, eq, value = token.partition("=")
        if not eq:
            if i != 0 or positional is None:
                raise ValueError(
                    f"unexpected positional item {token!r}; options are key=value "
                    f"({', '.join(sorted(options)) or 'none accepted'})"
                )
            pos = token
            continue
        key = key.strip().lower()
        if key not in options:
            known = ", ".join(sorted(options)) or "none"
            raise ValueError(f"unknown option {key!r} (known options: {known})")
        if key in opts:
            raise ValueError(f"option {key!r} given twice")
        opts[key] = options[key](value.strip())
    return pos, opts


def layer_name(layer: Layer) -> str:
    """Short name of a layer object: its registered name if known, else its class name."""
    from ..plugins import get_plugin_manager

    for entry in get_plugin_manager().layers:
        if entry.obj is type(layer):
            return entry.name
    return type(layer).__name__


def build_layer(spec: str | Layer) -> Layer:
    """Return a fresh, uninitialised layer for a spec string or a layer object.

    Layer objects are cloned (their hyper-parameters kept, any fitted state
    dropped), so the caller's object is never modified.
    """
    if isinstance(spec, Layer):
        return clone(spec)
    if not isinstance(spec, str):
        raise TypeError(
            "Each entry of layers must be a spec string such as 'conv:20x5x5' or a "
            f"neuroplug.layers.Layer object. Received: {spec!r} of type {type(spec).__name__}"
        )
    from ..plugins import get_layer

    name, args = split_spec(spec)
    cls = get_layer(name)  # unknown names: the registry's error lists the known ones
    try:
        layer = cls.from_spec(args)
    except (ValueError, TypeError) as exc:
        usage = getattr(cls, "spec_usage", None)
        hint = f" Expected format: {usage}." if usage else ""
        raise ValueError(
            f"Invalid layer spec {spec!r}: {exc}.{hint} Received: spec={spec!r}"
        ) from exc
    if not isinstance(layer, Layer):
        raise TypeError(f"{cls.__name__}.from_spec returned {layer!r}, not a Layer")
    return layer


def build_layers(specs: Iterable[str | Layer]) -> list[Layer]:
    """:func:`build_layer` for each entry of ``specs`` (a tuple or list)."""
    if isinstance(specs, (str, Layer)) or not isinstance(specs, Iterable):
        raise TypeError(
            "layers must be a tuple of spec strings or Layer objects, e.g. "
            f"('conv:20x5x5', 'maxpool:2', 'relu', 'dense:100', 'relu'). Received: layers={specs!r}"
        )
    return [build_layer(s) for s in specs]


def check_positive_int(value: Any, name: str) -> int:
    """Return ``value`` as an int >= 1 or raise a clear error."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(f"{name} must be a positive int. Received: {name}={value!r}")
    if value < 1:
        raise ValueError(f"{name} must be >= 1. Received: {name}={value!r}")
    return int(value)
