"""A third-party training callback: the example of the ``neuroplug_register_callbacks`` hook."""

from __future__ import annotations

import math
import numbers

from sklearn.utils._param_validation import Interval

from neuroplug.callbacks import Callback

__all__ = ["StopAtLoss"]


class StopAtLoss(Callback):
    """Stop training once the training loss falls below ``threshold`` (``callbacks=("stop_at_loss",)``).

    Parameters
    ----------
    threshold : float, default=0.05
        The loss at which training has gone far enough.
    """

    _parameter_constraints: dict = {
        "threshold": [Interval(numbers.Real, 0, None, closed="neither")]
    }

    def __init__(self, threshold: float = 0.05) -> None:
        self.threshold = threshold

    def on_epoch_end(self, info: dict) -> bool:
        """Ask to stop when this epoch's loss is below the threshold."""
        loss = float(info["stats"]["loss"])
        return math.isfinite(loss) and loss < float(self.threshold)
