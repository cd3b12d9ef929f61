"""Optimiser steps of every backend against the NumPy reference (in place, several steps)."""

from __future__ import annotations

import numpy as np
import pytest


def _state(shape, dtype, seed=0):
    r = np.random.default_rng(seed)
    p = r.standard_normal(shape).astype(dtype)
    g = r.standard_normal(shape).astype(dtype)
    m = (0.1 * r.standard_normal(shape)).astype(dtype)
    v = (0.01 * np.abs(r.standard_normal(shape))).astype(dtype)
    return [p, g, m, v]


@pytest.mark.parametrize("shape", [(3,), (50, 20, 5, 5), (40_001,)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_update_matches_reference(ops, ref_ops, shape, dtype):
    want = _state(shape, dtype)
    got = [ops.asarray(a.copy()) for a in want]
    kw = dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8)
    for t in (1, 2, 3):
        ref_ops.adam_update(*want, t=t, **kw)
        ops.adam_update(*got, t=t, **kw)
    tol = 1e-6 if dtype == np.float32 else 1e-14
    for name, a, b in zip("pgmv", want, got):
        np.testing.assert_allclose(ops.to_numpy(b), a, rtol=tol, atol=tol, err_msg=name)


def test_cpu_adam_falls_back_for_non_contiguous_parameters(ref_ops):
    pytest.importorskip("neuroplug_core.optim")
    from neuroplug.backends import get_ops

    cpu = get_ops("cpu", n_threads=2)
    base = _state((64, 64), np.float32, seed=1)
    want = [a[:, ::2].copy() for a in base]
    got = [a.copy() for a in base]
    views = [a[:, ::2] for a in got]
    ref_ops.adam_update(*want, lr=1e-2, beta1=0.9, beta2=0.99, eps=1e-7, t=5)
    cpu.adam_update(*views, lr=1e-2, beta1=0.9, beta2=0.99, eps=1e-7, t=5)
    for a, b in zip(want, views):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)
    # The other half of the parameters is untouched.
    np.testing.assert_array_equal(got[0][:, 1::2], base[0][:, 1::2])
