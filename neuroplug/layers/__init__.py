"""Layers: the :class:`Layer` contract and the built-in layer types."""

from .base import Layer

__all__ = ["Layer"]
