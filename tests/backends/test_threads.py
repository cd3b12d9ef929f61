"""Threads in the compiled ``cpu`` backend: same results on any thread count, limits honoured.

The kernels split the batch between OpenMP threads and never reduce across
threads in an order that depends on their number, so 1 and 2 threads must
give bit-identical results.  The shapes here are large enough for the
wrapper to actually use two threads (it runs tiny calls on one).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from threadpoolctl import ThreadpoolController, threadpool_limits

from neuroplug.backends import cython_ops, get_ops
from neuroplug.ops import Ops

conv = pytest.importorskip("neuroplug_core.conv")
openmp = pytest.importorskip("neuroplug_core._openmp")

REF = Ops()

# (N, C, H, W, F, K, stride, padding, groups): above the one-thread threshold of the wrapper.
CASES = [
    (16, 3, 20, 20, 16, 3, 1, 1, 1),
    (33, 4, 16, 15, 16, 5, 2, 2, 2),
    (24, 32, 9, 9, 32, 1, 1, 0, 1),
    (
        16,
        32,
        16,
        16,
        32,
        3,
        1,
        1,
        1,
    ),  # float32: Winograd F(2x2, 3x3), all three products
    (
        64,
        20,
        12,
        12,
        50,
        5,
        1,
        0,
        1,
    ),  # float32: Winograd F(2x2, 5x5), all three products
]


def flops(case):
    n, c, h, w, f, k, stride, padding, groups = case
    oh, ow = (h + 2 * padding - k) // stride + 1, (w + 2 * padding - k) // stride + 1
    return 2.0 * n * f * oh * ow * (c // groups) * k * k


def run_all(ops, case, dtype):
    n, c, h, w, f, k, stride, padding, groups = case
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, h, w)).astype(dtype)
    wt = rng.standard_normal((f, c // groups, k, k)).astype(dtype)
    b = rng.standard_normal(f).astype(dtype)
    kw = dict(stride=stride, padding=padding, groups=groups)
    y = ops.conv2d(x, wt, b, **kw)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = ops.conv2d_backward_input(dy, wt, x.shape, **kw)
    dw, db = ops.conv2d_backward_weights(dy, x, wt.shape, **kw)
    big = rng.standard_normal((n, f, 24, 24)).astype(dtype)
    p, am = ops.maxpool2d(big, 2)
    dp = ops.maxpool2d_backward(p, am, big.shape)
    m = ops.meanpool2d(big, 3, 2)
    dm = ops.meanpool2d_backward(m, big.shape, 3, 2)
    return [y, dx, dw, db, p, am, dp, m, dm]


def kernels():
    return conv.available_isas()


@pytest.mark.skipif(
    openmp.max_threads() < 2 or not openmp.openmp_enabled(),
    reason="needs OpenMP with 2 threads",
)
@pytest.mark.parametrize(
    "kernel,dtype",
    [(k, np.float32) for k in kernels()] + [(conv.available_isas()[-1], np.float64)],
)
@pytest.mark.parametrize("case", CASES)
def test_results_identical_with_1_and_2_threads(kernel, dtype, case):
    two_threads = get_ops("cpu", n_threads=2, simd=kernel)
    assert two_threads._threads(flops(case), cython_ops._MIN_FLOPS_PER_THREAD) == 2, (
        "the case is too small to use 2 threads"
    )
    one = run_all(get_ops("cpu", n_threads=1, simd=kernel), case, dtype)
    two = run_all(two_threads, case, dtype)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)
    # and both agree with the reference
    n, c, h, w, f, k, stride, padding, groups = case
    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, c, h, w))
    wt = rng.standard_normal((f, c // groups, k, k))
    b = rng.standard_normal(f)
    y_ref = REF.conv2d(
        x.astype(dtype).astype(np.float64),
        wt.astype(dtype).astype(np.float64),
        b.astype(dtype).astype(np.float64),
        stride=stride,
        padding=padding,
        groups=groups,
    )
    tol = 1e-5 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(one[0], y_ref, rtol=tol, atol=tol * np.abs(y_ref).max())


def test_thread_limit_is_honoured():
    assert get_ops("cpu", n_threads=1)._threads(1e12, 1.0) == 1
    assert get_ops("cpu", n_threads=10_000)._threads(1e12, 1.0) == openmp.max_threads()
    if openmp.openmp_enabled():
        with threadpool_limits(limits=1, user_api="openmp"):
            assert get_ops("cpu")._threads(1e12, 1.0) == 1
            assert get_ops("cpu", n_threads=2)._threads(1e12, 1.0) == 1


def test_tiny_calls_use_one_thread():
    ops = get_ops("cpu", n_threads=2)
    assert ops._threads(10.0, 100.0) == 1


def _blas_threads():
    return [
        lib.num_threads
        for lib in ThreadpoolController().lib_controllers
        if lib.user_api == "blas"
    ]


def test_blas_thread_count_is_restored():
    before = _blas_threads()
    run_all(get_ops("cpu"), CASES[0], np.float64)  # float64 runs on the BLAS path
    assert _blas_threads() == before
    with threadpool_limits(limits=1, user_api="blas"):
        run_all(get_ops("cpu"), CASES[0], np.float64)
        assert all(n == 1 for n in _blas_threads())
    assert _blas_threads() == before


def test_concurrent_python_threads_share_one_ops():
    ops = get_ops("cpu", n_threads=2)
    expected = {
        dtype: run_all(get_ops("cpu", n_threads=1), CASES[1], dtype)
        for dtype in (np.float32, np.float64)
    }
    dtypes = [np.float32, np.float64] * 3
    before = _blas_threads()
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda dt: run_all(ops, CASES[1], dt), dtypes))
    for dtype, got in zip(dtypes, results):
        for a, b in zip(got, expected[dtype]):
            np.testing.assert_array_equal(a, b)
    assert _blas_threads() == before


@pytest.mark.skipif(
    openmp.max_threads() < 2 or not openmp.openmp_enabled(),
    reason="needs OpenMP with 2 threads",
)
def test_rbm_epochs_are_reproducible_per_thread_count_and_agree_across_counts():
    """The RBM kernels split the weights by thread: bit-identical for a given count, equal to rounding across counts."""
    rng = np.random.default_rng(0)
    nh, nv = 257, 300
    X = (rng.random((400, nv)) < 0.4).astype(np.float32)
    W0 = rng.normal(0, 0.1, (nh, nv)).astype(np.float32)

    def fit(n_threads):
        ops = get_ops("cpu", n_threads=n_threads)
        W, bh, bv = W0.copy(), np.zeros(nh, np.float32), np.zeros(nv, np.float32)
        dW, dbh, dbv = np.zeros_like(W), np.zeros_like(bh), np.zeros_like(bv)
        ops.cd_epoch(
            X,
            W,
            bh,
            bv,
            dW,
            dbh,
            dbv,
            k=1,
            learning_rate=0.05,
            momentum=0.5,
            weight_decay=0.0,
            batch_size=100,
            visible="bernoulli",
            rng=ops.make_rng(3),
        )
        return W

    one, two = fit(1), fit(2)
    np.testing.assert_array_equal(two, fit(2))
    np.testing.assert_allclose(one, two, rtol=1e-5, atol=1e-6)
