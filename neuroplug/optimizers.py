"""Optimisers (SGD with momentum / Nesterov, Adam) and learning-rate schedules.

An optimiser object holds hyper-parameters only (it is a scikit-learn
``BaseEstimator``, so it survives ``clone`` and can be grid-searched); the
state it builds while training (momentum buffers, Adam moments, step count)
lives in attributes ending in ``_`` created by :meth:`Optimizer.reset`.  The
learning rate is not part of the optimiser: the caller passes it to every
:meth:`Optimizer.step`, usually from a :class:`Schedule`, so estimators keep
``learning_rate`` as one plain hyper-parameter.

All arithmetic on parameters goes through the backend (``ops.sgd_update``,
``ops.adam_update``), which updates them in place.

String names accepted by :func:`get_optimizer`: ``"adam"``, ``"sgd"``
(momentum 0.9), ``"nesterov"`` (Nesterov momentum 0.9).

Schedule specs accepted by :func:`get_schedule`:

``"constant"``
    The base learning rate throughout.
``"step"`` or ``"step:S,G"``
    Multiply by ``G`` every ``S`` epochs (default ``S=10``, ``G=0.1``).
``"exp"`` or ``"exp:G"``
    Multiply by ``G`` every epoch (default ``G=0.95``).
``"invtime"`` or ``"invtime:D"``
    ``lr / (1 + D * epoch)`` (default ``D=0.1``).
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from typing import Any

from sklearn.base import BaseEstimator, clone
from sklearn.utils._param_validation import Interval

from ._validation import ValidatedParams

__all__ = [
    "Optimizer",
    "SGD",
    "Adam",
    "get_optimizer",
    "Schedule",
    "ConstantLR",
    "StepLR",
    "ExponentialLR",
    "InverseTimeLR",
    "get_schedule",
]


class Optimizer(ValidatedParams, BaseEstimator):
    """Base class: updates the parameters of a list of layers in place.

    Subclasses implement :meth:`_update` for one parameter.  Weight decay
    (L2, ``alpha``) is added to the gradient of every parameter with two or
    more dimensions (weights, not biases) before the update, which is the
    gradient of ``0.5 * alpha * sum(W**2)``; a layer opts a parameter out by
    naming it in its ``no_decay`` set.

    Hyper-parameters are declared in ``_parameter_constraints`` and checked
    once, when the estimator that uses the optimiser starts its fit.
    """

    _parameter_constraints: dict = {}

    def reset(self) -> None:
        """Forget all state (called at the start of a fresh fit)."""
        self.state_: dict[Any, tuple] = {}
        self.t_ = 0

    def step(
        self, layers: Iterable[Any], learning_rate: float, alpha: float = 0.0
    ) -> None:
        """One update of every parameter of ``layers`` from its ``grads``.

        Parameters
        ----------
        layers : iterable of Layer
            Initialised layers whose ``grads`` were filled by a backward pass.
        learning_rate : float
            Step size for this update.
        alpha : float, default=0.0
            L2 weight-decay strength.
        """
        if not hasattr(self, "state_"):
            self.reset()
        if self.t_ == 0:
            # Once per run of the optimiser, not per parameter and step: usually a no-op re-check of
            # what the estimator validated, but an optimiser used on its own gets the same errors.
            self._validate_params()
        self.t_ += 1
        for i, layer in enumerate(layers):
            grads = getattr(layer, "grads", None) or {}
            for key, param in layer.params.items():
                grad = grads.get(key)
                if grad is None:
                    continue
                if (
                    alpha
                    and len(param.shape) >= 2
                    and key not in getattr(layer, "no_decay", ())
                ):
                    grad = grad + alpha * param
                self._update(layer.ops, (i, key), param, grad, learning_rate)

    def _update(self, ops: Any, key: Any, param: Any, grad: Any, lr: float) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent with (Nesterov) momentum.

    ``v = momentum * v - lr * g``; ``w += v`` (or, with Nesterov,
    ``w += momentum * v - lr * g``; Sutskever et al. 2013).

    Parameters
    ----------
    momentum : float, default=0.9
        Momentum in ``[0, 1)``; 0 gives plain SGD.
    nesterov : bool, default=False
        Use Nesterov's accelerated gradient.
    """

    _parameter_constraints: dict = {
        "momentum": [Interval(numbers.Real, 0, 1, closed="left")],
        "nesterov": ["boolean"],
    }

    def __init__(self, momentum: float = 0.9, nesterov: bool = False) -> None:
        self.momentum = momentum
        self.nesterov = nesterov

    def _update(self, ops: Any, key: Any, param: Any, grad: Any, lr: float) -> None:
        state = self.state_.get(key)
        if state is None:
            state = self.state_[key] = (
                ops.alloc(tuple(param.shape), dtype=param.dtype),
            )
        ops.sgd_update(
            param,
            grad,
            state[0],
            lr=lr,
            momentum=float(self.momentum),
            nesterov=bool(self.nesterov),
        )


class Adam(Optimizer):
    """Adam (Kingma & Ba 2015).

    Parameters
    ----------
    beta1 : float, default=0.9
        Decay of the first-moment estimate, in ``[0, 1)``.
    beta2 : float, default=0.999
        Decay of the second-moment estimate, in ``[0, 1)``.
    epsilon : float, default=1e-8
        Added to the root of the second moment for numerical stability.
    """

    _parameter_constraints: dict = {
        "beta1": [Interval(numbers.Real, 0, 1, closed="left")],
        "beta2": [Interval(numbers.Real, 0, 1, closed="left")],
        "epsilon": [Interval(numbers.Real, 0, None, closed="neither")],
    }

    def __init__(
        self, beta1: float = 0.9, beta2: float = 0.999, epsilon: float = 1e-8
    ) -> None:
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon

    def _update(self, ops: Any, key: Any, param: Any, grad: Any, lr: float) -> None:
        state = self.state_.get(key)
        if state is None:
            shape = tuple(param.shape)
            state = self.state_[key] = (
                ops.alloc(shape, dtype=param.dtype),
                ops.alloc(shape, dtype=param.dtype),
            )
        ops.adam_update(
            param,
            grad,
            state[0],
            state[1],
            lr=lr,
            beta1=float(self.beta1),
            beta2=float(self.beta2),
            eps=float(self.epsilon),
            t=self.t_,
        )


_OPTIMIZERS = {
    "adam": lambda: Adam(),
    "sgd": lambda: SGD(momentum=0.9),
    "nesterov": lambda: SGD(momentum=0.9, nesterov=True),
}


def get_optimizer(optimizer: str | Optimizer) -> Optimizer:
    """Return a fresh optimiser for a name (``"adam"``, ``"sgd"``, ``"nesterov"``) or a clone of an object."""
    if isinstance(optimizer, Optimizer):
        return clone(optimizer)
    if isinstance(optimizer, str) and optimizer.lower() in _OPTIMIZERS:
        return _OPTIMIZERS[optimizer.lower()]()
    raise ValueError(
        f"optimizer must be one of {', '.join(sorted(_OPTIMIZERS))} or a neuroplug.optimizers.Optimizer "
        f"object. Received: optimizer={optimizer!r}"
    )


# ---------------------------------------------------------------------------
# Learning-rate schedules
# ---------------------------------------------------------------------------
class Schedule(ValidatedParams, BaseEstimator):
    """Learning rate as a function of the epoch (0-based) and the base rate.

    Hyper-parameters are declared in ``_parameter_constraints`` and checked
    once, when the estimator that uses the schedule starts its fit.
    """

    _parameter_constraints: dict = {}

    def __call__(self, base_lr: float, epoch: int) -> float:
        """Learning rate for ``epoch``."""
        raise NotImplementedError


class ConstantLR(Schedule):
    """The base learning rate at every epoch."""

    def __call__(self, base_lr: float, epoch: int) -> float:
        """``base_lr``."""
        return float(base_lr)


class StepLR(Schedule):
    """Multiply the rate by ``gamma`` every ``step_size`` epochs.

    Parameters
    ----------
    step_size : int, default=10
        Epochs between two decays.
    gamma : float, default=0.1
        Factor in ``(0, 1]``.
    """

    _parameter_constraints: dict = {
        "step_size": [Interval(numbers.Integral, 1, None, closed="left")],
        "gamma": [Interval(numbers.Real, 0, 1, closed="right")],
    }

    def __init__(self, step_size: int = 10, gamma: float = 0.1) -> None:
        self.step_size = step_size
        self.gamma = gamma

    def __call__(self, base_lr: float, epoch: int) -> float:
        """``base_lr * gamma ** (epoch // step_size)``."""
        return float(base_lr) * float(self.gamma) ** (int(epoch) // int(self.step_size))


class ExponentialLR(Schedule):
    """Multiply the rate by ``gamma`` every epoch.

    Parameters
    ----------
    gamma : float, default=0.95
        Factor in ``(0, 1]``.
    """

    _parameter_constraints: dict = {
        "gamma": [Interval(numbers.Real, 0, 1, closed="right")]
    }

    def __init__(self, gamma: float = 0.95) -> None:
        self.gamma = gamma

    def __call__(self, base_lr: float, epoch: int) -> float:
        """``base_lr * gamma ** epoch``."""
        return float(base_lr) * float(self.gamma) ** int(epoch)


class InverseTimeLR(Schedule):
    """``base_lr / (1 + decay * epoch)``.

    Parameters
    ----------
    decay : float, default=0.1
        Decay rate, ``>= 0``.
    """

    _parameter_constraints: dict = {
        "decay": [Interval(numbers.Real, 0, None, closed="left")]
    }

    def __init__(self, decay: float = 0.1) -> None:
        self.decay = decay

    def __call__(self, base_lr: float, epoch: int) -> float:
        """``base_lr / (1 + decay * epoch)``."""
        return float(base_lr) / (1.0 + float(self.decay) * int(epoch))


def _float_args(args: str, n_max: int, spec: str) -> list[float]:
    try:
        values = [float(a) for a in args.split(",")]
    except ValueError:
        values = []
    if not values or len(values) > n_max:
        raise ValueError(
            f"Invalid learning-rate schedule {spec!r}: bad arguments. Received: lr_schedule={spec!r}"
        )
    return values


def get_schedule(schedule: str | Schedule) -> Schedule:
    """Return a :class:`Schedule` for a spec string (see the module docstring) or a clone of an object."""
    if isinstance(schedule, Schedule):
        return clone(schedule)
    usage = "'constant', 'step[:S,G]', 'exp[:G]', 'invtime[:D]' or a neuroplug.optimizers.Schedule object"
    if not isinstance(schedule, str):
        raise ValueError(
            f"lr_schedule must be {usage}. Received: lr_schedule={schedule!r}"
        )
    name, _, args = schedule.strip().lower().partition(":")
    if name == "constant" and not args:
        return ConstantLR()
    if name == "step":
        if not args:
            return StepLR()
        values = _float_args(args, 2, schedule)
        if values[0] != int(values[0]) or values[0] < 1:
            raise ValueError(
                f"Invalid learning-rate schedule {schedule!r}: S must be a positive int. Received: lr_schedule={schedule!r}"
            )
        sched = StepLR(int(values[0]), *values[1:])
    elif name == "exp":
        sched = (
            ExponentialLR(*_float_args(args, 1, schedule)) if args else ExponentialLR()
        )
    elif name == "invtime":
        sched = (
            InverseTimeLR(*_float_args(args, 1, schedule)) if args else InverseTimeLR()
        )
    else:
        raise ValueError(
            f"lr_schedule must be {usage}. Received: lr_schedule={schedule!r}"
        )
    try:
        sched._validate_params()  # the values now, with the spec in the message
    except ValueError as exc:
        raise ValueError(
            f"Invalid learning-rate schedule {schedule!r}: {exc}. Received: lr_schedule={schedule!r}"
        ) from exc
    return sched
