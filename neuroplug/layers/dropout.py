"""Dropout layer."""

from __future__ import annotations

import numbers
from typing import Any

from .activations import check_batch
from .base import Layer
from .spec import parse_args, parse_float

__all__ = ["Dropout"]


class Dropout(Layer):
    """Inverted dropout (spec ``"dropout:R"``; Srivastava et al. 2014).

    While training, each input is zeroed with probability ``rate`` and the
    survivors are scaled by ``1 / (1 - rate)``, so prediction is the
    identity.  The mask comes from the backend generator the network binds
    (``bind_rng``), derived from the estimator's ``random_state``.

    Parameters
    ----------
    rate : float, default=0.5
        Drop probability, ``0 <= rate < 1``.
    """

    spec_usage = "'dropout:R' with a drop rate 0 <= R < 1"

    def __init__(self, rate: float = 0.5) -> None:
        self.rate = rate

    @classmethod
    def from_spec(cls, args: str | None) -> Dropout:
        """``"dropout:0.5"`` (``"dropout"`` alone means rate 0.5)."""
        pos, _ = parse_args(args, positional="rate", options={})
        if pos is None:
            return cls()
        layer = cls(parse_float(pos, "rate"))
        layer._check_rate()
        return layer

    def _check_rate(self) -> float:
        rate = self.rate
        if (
            not isinstance(rate, numbers.Real)
            or isinstance(rate, bool)
            or not 0.0 <= rate < 1.0
        ):
            raise ValueError(
                f"rate must be a number with 0 <= rate < 1. Received: rate={rate!r}"
            )
        return float(rate)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Unchanged; validates ``rate``."""
        self._check_rate()
        return tuple(input_shape)

    def forward(self, X: Any, *, training: bool = False) -> Any:
        """Apply a fresh mask when training; identity otherwise."""
        check_batch(self, X)
        rate = self._check_rate()
        if not training or rate == 0.0:
            self._mask = None
            return X
        rng = getattr(self, "rng", None)
        if rng is None:
            raise RuntimeError(
                "Dropout needs a generator: call bind_rng (the Network does) before training"
            )
        self._mask = self.ops.dropout_mask(X.shape, rate, rng, X.dtype)
        return X * self._mask

    def backward(self, dY: Any) -> Any:
        """Multiply by the same mask."""
        mask = getattr(self, "_mask", None)
        return dY if mask is None else dY * mask
