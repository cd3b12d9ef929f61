"""Pretrainers: the :class:`Pretrainer` contract and the built-in pretrainers."""

from .base import Pretrainer

__all__ = ["Pretrainer"]
