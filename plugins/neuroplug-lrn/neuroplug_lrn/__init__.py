"""neuroplug-lrn: an example third-party layer plugin for neuroplug.

It registers three layers the core does not have, through the
``neuroplug_register_layers`` hook in :mod:`neuroplug_lrn.plugin`:

* ``"lrn"``: :class:`LocalResponseNorm`, local response normalization across
  channels as in AlexNet;
* ``"elu"``: :class:`ELU`, the exponential linear unit;
* ``"gaussian_noise"``: :class:`GaussianNoise`, additive noise while training.

Once installed, they can be used by name in any estimator's layer stack, e.g.
``CNNClassifier(layers=("conv:8x3x3", "lrn:5", "elu", ...))``.
"""

from .layers import ELU, GaussianNoise, LocalResponseNorm

__version__ = "0.1.0"

__all__ = ["LocalResponseNorm", "ELU", "GaussianNoise", "__version__"]
