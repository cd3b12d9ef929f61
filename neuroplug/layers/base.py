"""The layer contract shared by built-in and third-party layers."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator

__all__ = ["Layer"]


class Layer(BaseEstimator):
    """Base class of every layer.

    A layer's ``__init__`` only stores hyper-parameters (scikit-learn rules),
    so layer objects survive ``clone`` and can be grid-searched.  The
    lifecycle is:

    1. ``initialize(input_shape, ops, rng)`` binds the layer to a backend,
       allocates its parameters (``self.params``, a dict of backend arrays,
       initialised from the NumPy generator ``rng`` so that every backend
       starts from the same weights) and returns the output shape.
    2. ``forward(X, training=...)`` computes the output (caching what the
       backward pass needs when ``training`` is true).
    3. ``backward(dY)`` returns the gradient for the input and stores the
       parameter gradients in ``self.grads`` (same keys as ``self.params``).

    Shapes exclude the batch dimension: ``(channels, height, width)`` for
    images, ``(n_features,)`` for vectors.  All array work goes through
    ``self.ops`` so the layer runs on every backend.

    Spec strings: ``"name"`` or ``"name:args"`` in an estimator's ``layers``
    parameter; the registry finds the class by ``name`` and calls
    :meth:`from_spec` with ``args`` (the text after the colon, or ``None``),
    whose grammar is ``[positional] ("," key "=" value)*``.  A layer declares
    its spec options instead of writing ``from_spec``::

        class PReLU(Layer):
            spec_options = {"alpha": float, "shared": bool, "shape": tuple}
            spec_positional = "alpha"        # "prelu:0.25,shared=true"

            def __init__(self, alpha=0.25, shared=False, shape=()):
                ...

    ``spec_options`` maps each option (a keyword argument of ``__init__``) to
    ``int``, ``float``, ``bool`` (``true/false``, ``yes/no``, ``on/off``,
    ``1/0``), ``str``, ``tuple`` (a shape ``AxBxC``) or a callable converting
    the option's text; ``spec_positional`` names the option that may come
    first without its key.  ``spec_usage`` (generated from them when not
    set) is shown in spec errors and in ``help()`` of the class.

    L2 weight decay (the estimators' ``alpha``) applies to every parameter
    with two or more dimensions (weights, not biases); name a parameter in
    ``no_decay`` to opt it out (e.g. ``no_decay = frozenset({"W"})`` for a
    per-channel scale stored as a matrix).
    """

    ops: Any = None

    #: Options of the spec string: name -> int, float, bool, str, tuple or a converter (see the class docs).
    spec_options: ClassVar[dict[str, Any] | None] = None
    #: The option that may be given first without ``key=`` (``None``: every option needs its key).
    spec_positional: ClassVar[str | None] = None
    #: Parameter names excluded from L2 weight decay.
    no_decay: ClassVar[frozenset[str]] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        options = cls.__dict__.get("spec_options")
        if options is not None:
            from .spec import spec_converter

            if not isinstance(options, dict):
                raise TypeError(
                    f"{cls.__name__}.spec_options must be a dict. Received: {options!r}"
                )
            placeholders = {
                name: spec_converter(name, kind)[0] for name, kind in options.items()
            }
            positional = cls.spec_positional
            if positional is not None and positional not in options:
                raise TypeError(
                    f"{cls.__name__}.spec_positional must name one of spec_options ({', '.join(options)}). "
                    f"Received: {positional!r}"
                )
            if "spec_usage" not in cls.__dict__:
                parts = [f"[:{placeholders[positional]}]"] if positional else []
                parts += [f"[,{n}={p}]" for n, p in placeholders.items()]
                cls.spec_usage = "NAME" + "".join(parts)
        usage = getattr(cls, "spec_usage", None)
        if usage and cls.__doc__ and "Spec usage" not in cls.__doc__:
            # help(cls) shows how to write the layer in a spec string.
            cls.__doc__ = cls.__doc__.rstrip() + f"\n\n    Spec usage: {usage}\n"

    # -- spec mini-language ---------------------------------------------------
    @classmethod
    def from_spec(cls, args: str | None) -> Layer:
        """Build the layer from the text after ``name:`` in a spec string.

        With ``spec_options`` declared, parses ``args`` with them (see the
        class docs) and calls ``cls(**options)``; without, accepts no
        arguments.  A layer may override it; raise ``ValueError`` saying what
        was expected.
        """
        options = cls.spec_options
        if options is None:
            if args:
                raise ValueError(
                    f"layer {cls.__name__} takes no arguments in a spec string. Received: {args!r}"
                )
            return cls()
        from .spec import parse_args, spec_converter

        converters = {
            name: spec_converter(name, kind)[1] for name, kind in options.items()
        }
        positional = cls.spec_positional
        pos, kwargs = parse_args(args, positional=positional, options=converters)
        if pos is not None:
            if positional in kwargs:
                raise ValueError(
                    f"{positional} given both by position and as {positional}="
                )
            kwargs[positional] = converters[positional](pos)
        return cls(**kwargs)

    # -- lifecycle -----------------------------------------------------------
    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of the output for one sample of shape ``input_shape`` (default: unchanged)."""
        return tuple(input_shape)

    def init_params(
        self, input_shape: tuple[int, ...], rng: np.random.Generator, dtype: Any
    ) -> dict[str, np.ndarray]:
        """Return the initial parameters as NumPy arrays (default: none)."""
        return {}

    def initialize(
        self,
        input_shape: tuple[int, ...],
        ops: Any,
        rng: np.random.Generator,
        dtype: Any = np.float32,
    ) -> tuple[int, ...]:
        """Bind to ``ops``, create the parameters and return the output shape."""
        self.ops = ops
        self.dtype = np.dtype(dtype)
        self.input_shape_ = tuple(int(s) for s in input_shape)
        self.output_shape_ = tuple(int(s) for s in self.output_shape(self.input_shape_))
        self.params = {
            k: ops.asarray(v, dtype=self.dtype)
            for k, v in self.init_params(self.input_shape_, rng, self.dtype).items()
        }
        self.grads = {k: None for k in self.params}
        return self.output_shape_

    def forward(self, X: Any, *, training: bool = False) -> Any:
        """Compute the layer's output for the batch ``X``."""
        raise NotImplementedError

    def backward(self, dY: Any) -> Any:
        """Return the gradient for the input; store parameter gradients in ``self.grads``."""
        raise NotImplementedError

    def bind_rng(self, rng: Any) -> None:
        """Give the layer the backend generator it may draw from during training."""
        self.rng = rng

    # -- weights as NumPy, for pickling, saving and moving between backends --
    def get_weights(self) -> dict[str, np.ndarray]:
        """Parameters as NumPy arrays (copies)."""
        return {
            k: np.array(self.ops.to_numpy(v))
            for k, v in getattr(self, "params", {}).items()
        }

    def set_weights(self, weights: dict[str, np.ndarray]) -> None:
        """Load parameters from NumPy arrays of the right shapes."""
        for k, v in weights.items():
            if k not in self.params:
                raise ValueError(
                    f"{type(self).__name__} has no parameter {k!r}; it has {sorted(self.params)}"
                )
            if tuple(np.shape(v)) != tuple(self.params[k].shape):
                raise ValueError(
                    f"{type(self).__name__}.{k} must have shape {tuple(self.params[k].shape)}. Received: {np.shape(v)}"
                )
            self.params[k] = self.ops.asarray(v, dtype=self.dtype)
