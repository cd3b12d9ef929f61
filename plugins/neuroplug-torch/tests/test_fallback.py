"""The generic fallback: a reference op without a native version runs on the host, correctly, warning once."""

import warnings

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch",
    reason="PyTorch is not installed; the torch backend tests need it (CPU build: pip install torch --index-url https://download.pytorch.org/whl/cpu)",
)

from neuroplug_torch import TorchFallbackWarning, TorchOps  # noqa: E402
from neuroplug_torch import ops as torch_ops_module  # noqa: E402
from neuroplug_torch.ops import fallback, install_fallbacks  # noqa: E402

from neuroplug.ops import Ops  # noqa: E402


class ExtOps(Ops):
    """A reference with an op that draws random numbers and updates an argument in place."""

    def noisy_accumulate(self, acc, x, rng, *, scale=1.0):
        """``acc += scale * x + uniform noise``; returns ``(sum of acc, noise)``."""
        noise = self.random_uniform(rng, x.shape, x.dtype)
        acc += scale * x + noise
        return float(acc.sum()), noise


@pytest.fixture
def fresh_warnings():
    saved = set(torch_ops_module._warned)
    torch_ops_module._warned.clear()
    yield
    torch_ops_module._warned.clear()
    torch_ops_module._warned.update(saved)


def _make_cls(names, base=Ops):
    cls = type("PartialTorchOps", (TorchOps,), {})
    install_fallbacks(cls, names, base=base)
    return cls


def test_fallback_matches_native_and_reference_and_warns_once(fresh_warnings):
    cls = _make_cls(["maxpool2d", "meanpool2d"])
    assert set(cls.fallback_ops) >= {"maxpool2d", "meanpool2d"}
    ops, native, ref = cls("cpu"), TorchOps("cpu"), Ops()
    x = np.random.default_rng(0).random((2, 3, 6, 6)).astype(np.float32)
    with pytest.warns(
        TorchFallbackWarning, match=r"PartialTorchOps has no native maxpool2d\(\)"
    ):
        y, am = ops.maxpool2d(ops.asarray(x), 2)
    assert isinstance(y, torch.Tensor) and am.dtype == torch.int64
    ny, nam = native.maxpool2d(native.asarray(x), 2)
    assert torch.equal(y, ny) and torch.equal(am, nam)
    np.testing.assert_array_equal(y.numpy(), ref.maxpool2d(x, 2)[0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second call must not warn again
        ops.maxpool2d(ops.asarray(x), 2)
    with pytest.warns(
        TorchFallbackWarning, match="meanpool2d"
    ):  # each op warns once on its own
        m = ops.meanpool2d(ops.asarray(x), 3, 1)
    np.testing.assert_allclose(m.numpy(), ref.meanpool2d(x, 3, 1), rtol=1e-6)
    # Errors are the reference's.
    with pytest.raises(ValueError, match="larger than the input"):
        ops.maxpool2d(ops.asarray(x), 7)


def test_fallback_converts_generators_and_keeps_in_place_updates(tops, fresh_warnings):
    cls = _make_cls(["noisy_accumulate"], base=ExtOps)
    ops = cls(tops.device)
    x = ops.asarray(np.ones((3, 2), np.float32))

    def run(seed):
        acc = ops.alloc((3, 2))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TorchFallbackWarning)
            total, noise = ops.noisy_accumulate(acc, x, ops.make_rng(seed), scale=2.0)
        return acc, total, noise

    acc, total, noise = run(5)
    assert isinstance(noise, torch.Tensor) and noise.device == ops.torch_device
    # The in-place update reached the caller's tensor (shared memory on the CPU, copied back elsewhere).
    np.testing.assert_allclose(ops.to_numpy(acc), 2.0 + ops.to_numpy(noise), rtol=1e-6)
    assert total == pytest.approx(float(acc.sum()), rel=1e-6)
    acc2, total2, _ = run(5)
    assert (
        torch.equal(acc, acc2) and total == total2
    )  # reproducible from the torch generator
    acc3, _, _ = run(6)
    assert not torch.equal(acc, acc3)


def test_fallback_of_an_unknown_method_is_an_error():
    with pytest.raises(AttributeError, match="no method 'nope'"):
        fallback("nope")
