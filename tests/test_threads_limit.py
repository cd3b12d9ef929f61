"""No oversubscription: inside joblib (loky) and Dask workers, n_workers x threads <= cores.

The kernels run on ``effective_n_threads(n_threads)`` OpenMP threads, which
never exceeds OpenMP's limit, and hold BLAS at one thread while they run.
joblib's loky backend starts its workers with ``OMP_NUM_THREADS`` and the
BLAS variables set to ``cpu_count() // n_jobs``, and Dask's nanny starts
its worker processes with them set to 1, so an estimator fitted in a
worker, whatever its ``n_threads``, keeps within its share of the machine.
See docs/scaling.md.
"""

from __future__ import annotations

import os
import sys

import pytest

joblib = pytest.importorskip("joblib")

N_CPUS = os.cpu_count() or 1
N_WORKERS = min(2, N_CPUS)


def _probe():
    """Thread counts seen inside a worker: OpenMP limit, what an estimator's backend uses, BLAS."""
    from neuroplug_core._openmp import effective_n_threads, openmp_enabled
    from threadpoolctl import threadpool_info

    # The class estimators get from get_ops("cpu", n_threads=...); imported directly to keep
    # the worker start light (the estimator path is checked in-process below).
    from neuroplug.backends.cython_ops import CythonOps

    ops = CythonOps(n_threads=-1)  # n_threads=-1 asks for every CPU of the machine
    blas = [
        info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"
    ]
    return {
        "openmp": openmp_enabled(),
        "effective": effective_n_threads(),
        "effective_all": effective_n_threads(-1),
        "estimator": ops._threads(),
        "blas": max(blas) if blas else 1,
        "pid": os.getpid(),
    }


def _check(results, n_workers):
    assert len(results) >= 1
    for r in results:
        for key in ("effective", "effective_all", "estimator", "blas"):
            assert r[key] * n_workers <= max(N_CPUS, n_workers), (key, r, N_CPUS)


def test_inside_loky_workers():
    import cloudpickle  # joblib's loky pickles functions with it too

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        results = joblib.Parallel(n_jobs=N_WORKERS, backend="loky")(
            joblib.delayed(_probe)() for _ in range(2 * N_WORKERS)
        )
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert all(r["pid"] != os.getpid() for r in results)
    _check(results, N_WORKERS)


def test_inside_dask_workers():
    distributed = pytest.importorskip("distributed")
    import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        with (
            distributed.LocalCluster(
                n_workers=N_WORKERS,
                processes=True,
                threads_per_worker=1,
                host="127.0.0.1",
                dashboard_address=None,
            ) as cluster,
            distributed.Client(cluster) as client,
        ):
            per_worker = client.run(_probe)
            # And through joblib's dask backend, as a grid search would run.
            with joblib.parallel_config(backend="dask"):
                through_joblib = joblib.Parallel(n_jobs=-1)(
                    joblib.delayed(_probe)() for _ in range(2 * N_WORKERS)
                )
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    assert len(per_worker) == N_WORKERS
    _check(list(per_worker.values()), N_WORKERS)
    _check(through_joblib, N_WORKERS)
    assert {r["pid"] for r in through_joblib} <= {r["pid"] for r in per_worker.values()}


def test_an_explicit_n_threads_never_exceeds_an_outer_limit():
    """threadpoolctl (what joblib and Dask rely on) caps even an explicit n_threads."""
    from neuroplug_core._openmp import openmp_enabled
    from threadpoolctl import threadpool_limits

    from neuroplug.estimators import RBM

    if not openmp_enabled():
        pytest.skip("built without OpenMP")
    with threadpool_limits(limits=1, user_api="openmp"):
        assert RBM(2, n_threads=8)._get_ops()._threads() == 1
        assert RBM(2, n_threads=-1)._get_ops()._threads() == 1
