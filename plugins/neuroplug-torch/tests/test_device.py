"""Device selection: ``backend="torch"`` / ``"torch:cpu"`` / ``"torch:cuda:0"``."""

import pickle

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch",
    reason="PyTorch is not installed; the torch backend tests need it (CPU build: pip install torch --index-url https://download.pytorch.org/whl/cpu)",
)

from neuroplug_torch import TorchOps, resolve_device  # noqa: E402

from neuroplug.backends import get_ops  # noqa: E402


def test_default_device_prefers_cuda_then_mps_then_cpu():
    if torch.cuda.is_available():
        expected = "cuda"
    elif (
        getattr(torch.backends, "mps", None) is not None
        and torch.backends.mps.is_available()
    ):
        expected = "mps"
    else:
        expected = "cpu"
    assert resolve_device(None).type == expected
    assert TorchOps().torch_device.type == expected


def test_backend_names_resolve_through_get_ops():
    ops = get_ops("torch:cpu")
    assert (
        isinstance(ops, TorchOps)
        and ops.device == "cpu"
        and ops.torch_device == torch.device("cpu")
    )
    assert isinstance(get_ops("torch"), TorchOps)
    assert repr(ops) == "TorchOps(device='cpu')"


@pytest.mark.parametrize("device", ["gpu", "cuda:x", "tpu:0"])
def test_unknown_devices_are_value_errors(device):
    with pytest.raises(ValueError, match=r"Received: device="):
        TorchOps(device)


def test_non_string_device_is_a_type_error():
    with pytest.raises(TypeError, match="device must be a string"):
        TorchOps(0)


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="checks the message on machines without CUDA"
)
@pytest.mark.parametrize("device", ["cuda", "cuda:0"])
def test_cuda_without_cuda_says_so(device):
    with pytest.raises(
        ValueError, match=r"CUDA is not available here .*Received: device='cuda"
    ):
        get_ops(f"torch:{device}")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_devices_are_normalised_and_bounded():
    assert TorchOps("cuda").device == f"cuda:{torch.cuda.current_device()}"
    with pytest.raises(ValueError, match="CUDA device"):
        TorchOps(f"cuda:{torch.cuda.device_count()}")


def test_ops_pickle_and_work_after_unpickling(tops):
    tops.asarray(np.ones((2, 2, 1, 1), np.float32))  # fill a cache first
    copy = pickle.loads(pickle.dumps(tops))
    assert copy.device == tops.device and copy.check_finite == tops.check_finite
    assert float(copy.alloc(3).sum()) == 0.0


def test_n_threads_does_not_change_torch_threads():
    before = torch.get_num_threads()
    TorchOps("cpu", n_threads=1)
    assert torch.get_num_threads() == before  # process-wide state is left alone
