"""Fixtures for the torch backend's tests: TorchOps on every device this machine has."""

import numpy as np
import pytest

from neuroplug.ops import Ops

try:
    import torch
except (
    ImportError
):  # each test module then skips itself, saying why (pytest.importorskip)
    torch = None

DEVICES = ["cpu"] + (
    ["cuda"] if torch is not None and torch.cuda.is_available() else []
)


@pytest.fixture(params=DEVICES)
def tops(request):
    """A TorchOps on each available device (CPU always; CUDA where present)."""
    from neuroplug_torch import TorchOps

    return TorchOps(request.param)


@pytest.fixture
def ref():
    """The NumPy reference backend."""
    return Ops()


@pytest.fixture(params=[np.float32, np.float64], ids=["float32", "float64"])
def dtype(request):
    return np.dtype(request.param)


@pytest.fixture(autouse=True)
def no_tf32():
    """Compare exact float32 arithmetic on GPUs: TF32 (torch's default for cuDNN convolutions on
    Ampere and newer) rounds inputs to 10-bit mantissas, far outside the tests' tolerances."""
    if torch is None:
        yield
        return
    saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
