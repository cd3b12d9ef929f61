# cython: language_level=3
"""OpenMP availability and the effective number of threads.

The build may have no OpenMP (see setup.py); then every parallel loop runs on
one thread and :func:`openmp_enabled` says so.
"""

import os

cdef extern from "np_openmp.h":
    int NEUROPLUG_OPENMP
    int omp_get_max_threads() nogil


def openmp_enabled():
    """Return True when neuroplug_core was compiled with OpenMP."""
    return bool(NEUROPLUG_OPENMP)


def max_threads():
    """Return OpenMP's current thread limit (1 without OpenMP).

    This honours ``OMP_NUM_THREADS`` and a limit set through threadpoolctl.
    """
    return omp_get_max_threads()


def effective_n_threads(n_threads=None):
    """Resolve a user's ``n_threads`` to the number of threads kernels use.

    ``None`` means OpenMP's current limit, which is what threadpoolctl and
    ``OMP_NUM_THREADS`` set; a negative value counts back from the number of
    CPUs as in joblib (``-1`` = all).  The answer is never above the OpenMP limit,
    so an outer limit (a joblib or Dask worker) is never exceeded.
    """
    cdef int limit = omp_get_max_threads()
    if n_threads is None:
        return limit
    n_threads = int(n_threads)
    if n_threads == 0:
        raise ValueError("n_threads must be a non-zero integer or None. Received: n_threads=0")
    if n_threads < 0:
        n_threads = max(1, (os.cpu_count() or 1) + 1 + n_threads)
    return max(1, min(n_threads, limit))
