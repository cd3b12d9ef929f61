"""``Ops.gemm`` on every backend, and the compiled OpenMP-split GEMM of the ``cpu`` backend."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import ThreadpoolController

from neuroplug.backends import get_ops

SHAPES = [(3, 4, 5), (1, 7, 1), (128, 800, 500), (500, 300, 40), (37, 61, 1000)]


@pytest.mark.parametrize("m,k,n", SHAPES)
@pytest.mark.parametrize("trans1", [False, True])
@pytest.mark.parametrize("trans2", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gemm_matches_reference(ops, ref_ops, m, k, n, trans1, trans2, dtype):
    rng = np.random.default_rng(m * 1000 + k)
    a = rng.standard_normal((k, m) if trans1 else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans2 else (k, n)).astype(dtype)
    want = ref_ops.gemm(a, b, trans1=trans1, trans2=trans2)
    got = ops.to_numpy(
        ops.gemm(ops.asarray(a), ops.asarray(b), trans1=trans1, trans2=trans2)
    )
    assert got.shape == (m, n) and got.dtype == dtype
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * np.sqrt(k))


def _cpu(n_threads):
    pytest.importorskip("neuroplug_core.gemm")
    return get_ops("cpu", n_threads=n_threads)


@pytest.mark.parametrize("layout", ["fortran", "strided", "mixed-dtype"])
def test_cpu_gemm_other_layouts(layout):
    rng = np.random.default_rng(0)
    a = rng.standard_normal((300, 200)).astype(np.float32)
    b = rng.standard_normal((200, 400)).astype(np.float32)
    if layout == "fortran":
        a, b = np.asfortranarray(a), np.asfortranarray(b)
    elif layout == "strided":
        a, b = a[:, ::2], b[::2]
    else:
        b = b.astype(np.float64)
    got = _cpu(2).gemm(a, b)
    assert got.dtype == np.result_type(a, b) and got.flags.c_contiguous
    np.testing.assert_allclose(got, a.astype(np.float64) @ b, rtol=1e-4, atol=1e-3)


def test_cpu_gemm_is_bit_identical_on_1_and_2_threads():
    # 128 x 800 x 500 is above the threshold at which the product is split between threads.
    rng = np.random.default_rng(1)
    a = rng.standard_normal((128, 800)).astype(np.float32)
    w = rng.standard_normal((800, 500)).astype(np.float32)
    for trans1, trans2 in ((False, False), (True, False), (False, True), (True, True)):
        x = np.ascontiguousarray(a.T) if trans1 else a
        y = np.ascontiguousarray(w.T) if trans2 else w
        one = _cpu(1).gemm(x, y, trans1=trans1, trans2=trans2)
        np.testing.assert_array_equal(
            _cpu(2).gemm(x, y, trans1=trans1, trans2=trans2), one
        )
        np.testing.assert_allclose(one, a.astype(np.float64) @ w, rtol=1e-4, atol=1e-3)
    # Taller than wide: cut by rows.
    tall = np.ascontiguousarray(w.T)
    np.testing.assert_array_equal(_cpu(2).gemm(tall, a.T), _cpu(1).gemm(tall, a.T))


def test_cpu_gemm_empty_inner_dimension_gives_zeros():
    got = _cpu(2).gemm(np.zeros((3, 0), np.float32), np.zeros((0, 4), np.float32))
    np.testing.assert_array_equal(got, np.zeros((3, 4), np.float32))


def test_cpu_gemm_rejects_mismatched_inner_dimensions():
    with pytest.raises(ValueError, match="inner dimensions"):
        _cpu(1).gemm(np.ones((3, 4), np.float32), np.ones((5, 6), np.float32))


def test_cpu_gemm_leaves_blas_thread_counts_as_they_were():
    before = [lib.get_num_threads() for lib in ThreadpoolController().lib_controllers]
    a = np.ones((256, 512), np.float32)
    _cpu(2).gemm(a, a.T)
    assert [
        lib.get_num_threads() for lib in ThreadpoolController().lib_controllers
    ] == before
