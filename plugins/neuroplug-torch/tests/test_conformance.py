"""The backend conformance kit of neuroplug, run on TorchOps (CPU here; CUDA when present)."""

import pytest

from neuroplug.testing import parametrize_ops_checks


def _devices():
    import torch

    return ["torch:cpu"] + (["torch:cuda"] if torch.cuda.is_available() else [])


@parametrize_ops_checks(*_devices())
def test_torch_ops_conform(ops_check):
    ops_check()


def test_the_kit_sees_the_inherited_loops():
    # The loops TorchOps inherits run on its primitives: their results are torch tensors on its device.
    pytest.importorskip("torch")
    from neuroplug_torch.ops import TorchOps

    from neuroplug.ops import Ops

    assert (
        TorchOps.crbm_cd_epoch is Ops.crbm_cd_epoch
        and TorchOps.cd_epoch is Ops.cd_epoch
    )
    assert "cd_epoch" not in TorchOps.fallback_ops
