"""How each model family trains, on one epoch driver (no scikit-learn here).

The floor below the estimators and the pretrainers: :mod:`.engine` holds the
epoch driver (batching, progress, Ctrl-C, divergence, history, stopping
rules, callbacks); :mod:`.supervised` trains a network by backprop,
:mod:`.rbm` an RBM by CD-k / PCD-k, :mod:`.sbn` a sigmoid belief net by
wake-sleep and :mod:`.crbm` a convolutional RBM.
"""

from .engine import (
    Callback,
    ChanceLevelWarning,
    FitReport,
    StoppingRule,
    TrainingDivergedError,
    TrainingInterrupted,
    run_epochs,
)

__all__ = [
    "Callback",
    "ChanceLevelWarning",
    "FitReport",
    "StoppingRule",
    "TrainingDivergedError",
    "TrainingInterrupted",
    "run_epochs",
]
