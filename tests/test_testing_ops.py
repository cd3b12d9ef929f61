"""The backend conformance kit: it passes the built-in backends and catches broken ones."""

import numpy as np
import pytest

from neuroplug.ops import Ops
from neuroplug.testing import (
    OPS_CHECKS,
    OpsCheckError,
    check_ops,
    ops_checks,
    parametrize_ops_checks,
)


@parametrize_ops_checks("numpy", "cpu")
def test_built_in_backends_conform(ops_check):
    ops_check()


class _WrongSigmoid(Ops):
    name = "wrong-sigmoid"

    def sigmoid(self, x):
        return 1.0 / (1.0 + np.exp(-x)) + 1e-3


class _ForgetsChecks(Ops):
    """Runs CD without validating its arguments: k=0 is silently accepted."""

    name = "forgets-checks"

    def check_cd_epoch(
        self,
        X,
        W,
        bh,
        bv,
        dW,
        dbh,
        dbv,
        *,
        k,
        batch_size,
        sample_visible=False,
        **kwargs,
    ):
        return max(int(k), 1), int(batch_size), bool(sample_visible)


class _IgnoresSeed(Ops):
    name = "ignores-seed"

    def make_rng(self, seed):
        return np.random.default_rng()


class _WrongDtype(Ops):
    name = "wrong-dtype"

    def relu(self, x):
        return np.maximum(x, 0).astype(np.float64)


@pytest.mark.parametrize(
    "backend, check, dtype, message",
    [
        (
            _WrongSigmoid,
            "check_activations",
            "float32",
            r"sigmoid: differs from the reference by up to 0.001 at index \(\d+, \d+\)",
        ),
        (
            _ForgetsChecks,
            "check_bad_input",
            "float32",
            r"cd_epoch with \{'k': 0\} was accepted",
        ),
        (
            _IgnoresSeed,
            "check_rng_contract",
            "float32",
            "random_uniform: the same seed gave different draws",
        ),
        (
            _WrongDtype,
            "check_activations",
            "float32",
            "relu: dtype float64, the reference gives float32",
        ),
    ],
)
def test_broken_backends_fail_the_check_that_covers_them(
    backend, check, dtype, message
):
    (one,) = [c for c in ops_checks(backend, dtypes=[dtype]) if c.name == check]
    with pytest.raises(OpsCheckError, match=message) as info:
        one()
    assert (
        info.value.check == check
        and info.value.backend == backend.__name__
        and info.value.dtype == dtype
    )
    assert str(info.value).startswith(
        f"backend {backend.__name__} ({dtype}) failed {check}: "
    )
    with pytest.raises(OpsCheckError):
        check_ops(backend)


def test_an_instance_and_skip_and_dtypes():
    checks = ops_checks(Ops(), dtypes=["float64"], skip=["check_conv"])
    assert [c.name for c in checks] == [n for n in OPS_CHECKS if n != "check_conv"]
    assert {c.dtype for c in checks} == {"float64"} and checks[0].id.endswith(
        "-float64-check_arrays"
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"skip": ["check_nothing"]}, "skip names unknown checks"),
        ({"dtypes": ["int32"]}, "dtypes must be float32 and/or float64"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ops_checks("numpy", **kwargs)


def test_unknown_backend_and_wrong_type():
    with pytest.raises(ValueError, match="Unknown backend 'nope'"):
        ops_checks("nope")
    with pytest.raises(TypeError, match="backend must be a registered backend name"):
        ops_checks(42)
