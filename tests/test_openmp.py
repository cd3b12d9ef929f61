"""The compiled OpenMP helper of neuroplug_core."""

import os

import pytest
from threadpoolctl import threadpool_limits

from neuroplug_core import _openmp


def test_effective_threads_honours_limits():
    limit = _openmp.max_threads()
    assert _openmp.effective_n_threads() == limit
    assert _openmp.effective_n_threads(1) == 1
    assert 1 <= _openmp.effective_n_threads(-1) <= max(limit, 1)
    assert _openmp.effective_n_threads(10_000) == limit


def test_threadpoolctl_limit_is_seen():
    if not _openmp.openmp_enabled():
        pytest.skip("built without OpenMP")
    with threadpool_limits(limits=1, user_api="openmp"):
        assert _openmp.effective_n_threads() == 1
        assert _openmp.effective_n_threads(os.cpu_count() or 1) == 1


def test_zero_threads_refused():
    with pytest.raises(ValueError, match="n_threads=0"):
        _openmp.effective_n_threads(0)
